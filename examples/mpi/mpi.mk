# MPI: nn_mpi.h's example and tests, built with mpicc (included by the Makefile).
#   make mpi-examples   build/mpi/mnist_mpi (run: mpirun -np 2 build/mpi/mnist_mpi --quick)
#   make test-mpi       tests/mpi/run.sh: nn_mpi.h's tests on 1, 2 and 3 ranks, failure modes,
#                       mnist_mpi --quick; writes $(BUILD)/extra-checks/mpi.summary ("mpi P F").
#                       Skips (prints SKIP, writes "mpi 0 0", exit 0) without mpicc or mpirun:
#                       scripts/setup.sh mpi installs Open MPI.
#   make scaling-bench  build/tools/scaling_bench: 1 vs 2 threads (plain cc, no MPI), docs/scaling.md
MPICC       ?= mpicc
MPI_DIR     := $(BUILD)/mpi
MPI_CFLAGS  := $(CSTD) -O2 $(WARN) $(OPENMP) -I. -Iexamples

$(MPI_DIR)/mnist_mpi: examples/mpi/mnist_mpi.c nn.h nn_mpi.h examples/common.h
	@mkdir -p $(@D)
	$(MPICC) $(MPI_CFLAGS) $< -o $@ -lm

$(MPI_DIR)/test_mpi: tests/mpi/test_mpi.c nn.h nn_mpi.h
	@mkdir -p $(@D)
	$(MPICC) $(MPI_CFLAGS) $< -o $@ -lm

mpi-examples: $(MPI_DIR)/mnist_mpi

test-mpi:
	@MAKE="$(MAKE)" BUILD="$(BUILD)" DATA="$(DATA)" tests/mpi/run.sh

$(BUILD)/tools/scaling_bench: tools/scaling_bench.c nn.h
	@mkdir -p $(@D)
	$(CC) $(CSTD) -O2 $(WARN) $(OPENMP) -I. $< -o $@ -lm

scaling-bench: $(BUILD)/tools/scaling_bench

.PHONY: mpi-examples test-mpi scaling-bench
