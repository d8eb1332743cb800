# make test: header builds, unit tests on every backend (NEON under qemu, Windows under wine),
# sanitizers, examples.
TEST_SOURCES := $(filter-out tests/nn_impl.c,$(wildcard tests/test_*.c))
TEST_NAMES   := $(notdir $(TEST_SOURCES:.c=))
TEST_NATIVE  := $(addprefix $(BUILD)/tests/,$(TEST_NAMES))
TEST_ASAN    := $(addprefix $(BUILD)/tests-asan/,$(TEST_NAMES))
TEST_ARM64   := $(addprefix $(BUILD)/tests-arm64/,$(TEST_NAMES))
TEST_CFLAGS  := $(CSTD) -O2 $(WARN) -I. -Itests
ASAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ARM64_CC     := aarch64-linux-gnu-gcc
TEST_WIN64   := $(addprefix $(BUILD)/tests-win64/,$(addsuffix .exe,$(TEST_NAMES)))
WIN64_CC     := x86_64-w64-mingw32-gcc

$(BUILD)/tests/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(OPENMP) -c $< -o $@
$(BUILD)/tests/%: tests/%.c $(BUILD)/tests/nn_impl.o tests/test_common.h nn.h
	$(CC) $(TEST_CFLAGS) $(OPENMP) $< $(BUILD)/tests/nn_impl.o -lcmocka -lm -pthread -o $@

$(BUILD)/tests-asan/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -O1 $(ASAN_FLAGS) $(OPENMP) -c $< -o $@
$(BUILD)/tests-asan/%: tests/%.c $(BUILD)/tests-asan/nn_impl.o tests/test_common.h nn.h
	$(CC) $(TEST_CFLAGS) -O1 $(ASAN_FLAGS) $(OPENMP) $< $(BUILD)/tests-asan/nn_impl.o -lcmocka -lm -pthread -o $@

# aarch64: cmocka's API from the small shim in tests/cmocka_shim, linked statically for qemu.
$(BUILD)/tests-arm64/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(ARM64_CC) $(TEST_CFLAGS) -c $< -o $@
$(BUILD)/tests-arm64/%: tests/%.c $(BUILD)/tests-arm64/nn_impl.o tests/test_common.h nn.h
	$(ARM64_CC) $(TEST_CFLAGS) -Itests/cmocka_shim $< $(BUILD)/tests-arm64/nn_impl.o -lm -pthread -static -o $@

# ThreadSanitizer on tests/test_threads.c (threads sharing models, first uses racing), on the best
# backend with no backend named, so that the kernel table too is chosen lazily by racing threads.
# Built without -fopenmp: libgomp is not instrumented for ThreadSanitizer, which would report
# OpenMP's own synchronisation as races.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -g
$(BUILD)/tests-tsan/test_threads: tests/test_threads.c tests/nn_impl.c tests/test_common.h nn.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -O1 $(TSAN_FLAGS) tests/nn_impl.c $< -lcmocka -lm -pthread -o $@

test-tsan: $(BUILD)/tests-tsan/test_threads
	@mkdir -p $(BUILD)/extra-checks
	@echo "== ThreadSanitizer: test_threads"
	@if env -u NN_BACKEND TSAN_OPTIONS="halt_on_error=1" $< > $<.log 2>&1; then \
	  p=$$(sed -nE 's/^SUMMARY .* passed=([0-9]+) failed=0$$/\1/p' $<.log); \
	  echo "tsan $${p:-0} $$([ -n "$$p" ] && echo 0 || echo 1)" > $(BUILD)/extra-checks/tsan.summary; \
	  echo "  ok    tsan test_threads ($${p:-no summary})"; [ -n "$$p" ]; \
	else \
	  echo "tsan 0 1" > $(BUILD)/extra-checks/tsan.summary; \
	  echo "  FAIL  tsan test_threads: see $<.log"; grep -m1 -A30 "ThreadSanitizer\|FAIL" $<.log; exit 1; \
	fi

# Windows x86-64: mingw-w64, cmocka's API from the shim, linked statically for wine. nn_impl.o is
# built as a user would build nn.h; the tests' own printf calls use %zu, so they get mingw's C99
# printf (__USE_MINGW_ANSI_STDIO).
$(BUILD)/tests-win64/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(WIN64_CC) $(TEST_CFLAGS) $(OPENMP) -c $< -o $@
$(BUILD)/tests-win64/%.exe: tests/%.c $(BUILD)/tests-win64/nn_impl.o tests/test_common.h nn.h
	$(WIN64_CC) $(TEST_CFLAGS) $(OPENMP) -D__USE_MINGW_ANSI_STDIO=1 -Itests/cmocka_shim $< $(BUILD)/tests-win64/nn_impl.o \
	  -lm -static -o $@

# The Windows build of the tests under wine, best backend and scalar (scripts/windows_check.sh).
test-windows:
	@scripts/windows_check.sh $(BUILD) $(TEST_NAMES)

test-valgrind:
	@scripts/valgrind_check.sh $(BUILD)

test-header:
	@scripts/check_header.sh $(BUILD)

# Every relative link and image in the tracked Markdown files resolves (scripts/check_links.py).
check-links:
	@python3 scripts/check_links.py

# Two programs built from nn.h alone: one trains and saves, the other rebuilds the model with
# nn_model_load and must predict the same classes (tests/standalone/).
test-standalone:
	@scripts/standalone_check.sh $(BUILD)

# PyTorch <-> nn.h through safetensors, both ways (scripts/interop_check.sh; SKIP without PyTorch).
test-interop:
	@scripts/interop_check.sh $(BUILD)

# A training example killed with SIGKILL at random moments (and while a checkpoint is written) and
# resumed from its checkpoint each time ends with the uninterrupted run's model file, RESULT lines
# and CSV files (scripts/resume_check.sh, about 6 s).
test-resume: $(BUILD)/examples/sigmoid_mlp
	@scripts/resume_check.sh $(BUILD)

# Every check; each extra one is counted through build/extra-checks/*.summary (scripts/extra_check.sh).
test: setup
	@$(SETUP) data bench mpi fuzz windows torch
	@rm -rf $(BUILD)/extra-checks
	@mkdir -p $(BUILD)/extra-checks
	@scripts/fetch_mnist.sh $(DATA)
	-@$(MAKE) --no-print-directory test-header
	@$(MAKE) --no-print-directory -j2 $(TEST_NATIVE) $(TEST_ASAN) $(TEST_ARM64) $(EXAMPLES)
	@scripts/extra_check.sh links check-links $(BUILD)
	@scripts/extra_check.sh standalone test-standalone $(BUILD)
	@scripts/extra_check.sh interop test-interop $(BUILD)
	@scripts/extra_check.sh examples test-examples $(BUILD)
	@scripts/extra_check.sh resume test-resume $(BUILD)
	@scripts/extra_check.sh bench bench-smoke $(BUILD)
	@scripts/extra_check.sh mpi test-mpi $(BUILD)
	@scripts/extra_check.sh fuzz fuzz-smoke $(BUILD)
	@scripts/extra_check.sh valgrind test-valgrind $(BUILD)
	@scripts/extra_check.sh tsan test-tsan $(BUILD)
	@scripts/extra_check.sh windows test-windows $(BUILD)
	@scripts/run_tests.sh $(BUILD) $(TEST_NAMES)

.PHONY: test-header test-valgrind test-tsan test-windows check-links test-standalone test-interop test-resume
