# Benchmarks (included by the Makefile).
#   make bench          build and run every microbenchmark row (Google Benchmark flags via BENCH_ARGS,
#                       e.g. BENCH_ARGS="--benchmark_filter=^sgemm/ --threads=2")
#   make bench-build    only build build/bench/bench_kernels and build/bench/train_compare
#   make bench-smoke    every row for one short iteration (CI)
#   make bench-compare  nn.h vs PyTorch end to end (NCHW and channels_last) + GEMM/conv vs OpenBLAS
#                       (as shipped and forced to AVX-512) and oneDNN; writes docs/performance.md
#                       (settings via BENCH_* variables: see scripts/bench_compare.sh)
BENCH_DIR      := $(BUILD)/bench
BENCH_CFLAGS   := $(CSTD) $(OPT) $(WARN) $(OPENMP) -I. -Ibench
BENCH_CXXFLAGS := -std=c++11 $(OPT) -Wall -Wextra -Werror -Ibench
BENCH_LDLIBS   := -lbenchmark -lpthread -lopenblas -lm
# (linked by $(CC) with -lstdc++, so that the OpenMP runtime is the C compiler's)
BENCH_BINS     := $(BENCH_DIR)/bench_kernels $(BENCH_DIR)/train_compare

# The onednn rows are compiled only where oneDNN's header is (libdnnl-dev, installed by
# scripts/setup.sh bench); elsewhere they are skipped with a message. The choice is kept in a
# stamp file named after it, so that bench_kernels.o is rebuilt when it changes.
BENCH_ONEDNN   := $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.h),on,off)
ifeq ($(BENCH_ONEDNN),on)
BENCH_CFLAGS   += -DNN_BENCH_ONEDNN
BENCH_LDLIBS   += -ldnnl
endif
BENCH_ONEDNN_STAMP := $(BENCH_DIR)/onednn-$(BENCH_ONEDNN).stamp

$(BENCH_ONEDNN_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BENCH_DIR)/onednn-*.stamp
	@touch $@
	@if [ $(BENCH_ONEDNN) = off ]; then \
	  echo "bench: no /usr/include/oneapi/dnnl/dnnl.h (libdnnl-dev): the onednn rows will be skipped"; fi

$(BENCH_DIR)/shim.o: bench/shim.cc bench/shim.h
	@mkdir -p $(@D)
	$(CXX) $(BENCH_CXXFLAGS) -c $< -o $@

$(BENCH_DIR)/bench_kernels.o: bench/bench_kernels.c bench/shim.h bench/models.h nn.h $(BENCH_ONEDNN_STAMP)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@

$(BENCH_DIR)/bench_kernels: $(BENCH_DIR)/bench_kernels.o $(BENCH_DIR)/shim.o
	$(CC) $(OPENMP) $^ -o $@ $(BENCH_LDLIBS) -lstdc++

$(BENCH_DIR)/train_compare: bench/train_compare.c bench/models.h nn.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $< -o $@ -lm

bench-build:
	@$(SETUP) bench
	@$(MAKE) --no-print-directory $(BENCH_BINS)

bench: bench-build
	$(BENCH_DIR)/bench_kernels $(BENCH_ARGS)

# One short pass over every row: --benchmark_min_time=0.01 gives the slow rows (ResNet-18
# steps, big scalar GEMMs) a single iteration.
bench-smoke: bench-build
	$(BENCH_DIR)/bench_kernels --benchmark_min_time=0.01 $(BENCH_ARGS)

bench-compare: bench-build
	@$(SETUP) torch
	@scripts/fetch_mnist.sh $(DATA)
	@scripts/bench_compare.sh $(BUILD)

.PHONY: bench-build bench-smoke
