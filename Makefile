# nn.h - build, test, demo, benchmarks, examples, experiments.
# `make demo` and `make test` do everything from a fresh clone (they install what is missing).

CC      ?= cc
CXX     ?= c++
BUILD   := build
WARN    := -Wall -Wextra -Wpedantic -Werror
CSTD    := -std=c99
OPT     ?= -O2
OPENMP  ?= -fopenmp
CFLAGS_LIB := $(CSTD) $(OPT) $(WARN) $(OPENMP) -I.
LDLIBS_LIB := -lm
DATA    := data/mnist
SETUP   := scripts/setup.sh

.PHONY: all setup data demo test test-header test-native test-neon test-sanitize \
        examples experiments plots bench bench-compare clean help

all: examples

help:
	@echo "make demo          fetch MNIST, build, train 784-64-32-10 for 5 epochs, print test accuracy"
	@echo "make test          every test (all backends, NEON under qemu, Windows under wine, sanitizers, examples --quick)"
	@echo "make examples      build every example into $(BUILD)/examples/"
	@echo "make experiments   run every example at the reports' settings (long)"
	@echo "make plots         draw every figure from results/ with gnuplot"
	@echo "make bench         Google Benchmark microbenchmarks (flags via BENCH_ARGS=...)"
	@echo "make bench-compare nn.h vs PyTorch, OpenBLAS and oneDNN; writes docs/performance.md"
	@echo "make data          fetch and verify MNIST into $(DATA)"

setup:
	@$(SETUP) build test neon

data:
	@scripts/fetch_mnist.sh $(DATA)

$(BUILD):
	@mkdir -p $(BUILD)

clean:
	rm -rf $(BUILD)

-include tests/tests.mk
-include examples/examples.mk
-include examples/mpi/mpi.mk
-include bench/bench.mk
-include fuzz/fuzz.mk

# A fingerprint of training on every backend and 1/2 threads (tools/bit_identity.c): run it before
# and after a refactor and compare, e.g. `make bit-identity > before.txt`.
$(BUILD)/tools/bit_identity: tools/bit_identity.c bench/models.h nn.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(WARN) $(OPENMP) -I. -Ibench $< -o $@ -lm

bit-identity: $(BUILD)/tools/bit_identity
	@for b in scalar avx2 avx512 neon; do for t in 1 2; do \
	  if NN_BACKEND=$$b $(BUILD)/tools/bit_identity 2>/dev/null | head -1 | grep -q "backend $$b "; then \
	    NN_BACKEND=$$b NN_THREADS=$$t $(BUILD)/tools/bit_identity || exit 1; fi; done; done

.PHONY: bit-identity
