# make test: header builds, unit tests on every backend (NEON under qemu), sanitizers, examples.
TEST_SOURCES := $(filter-out tests/nn_impl.c,$(wildcard tests/test_*.c))
TEST_NAMES   := $(notdir $(TEST_SOURCES:.c=))
TEST_NATIVE  := $(addprefix $(BUILD)/tests/,$(TEST_NAMES))
TEST_ASAN    := $(addprefix $(BUILD)/tests-asan/,$(TEST_NAMES))
TEST_ARM64   := $(addprefix $(BUILD)/tests-arm64/,$(TEST_NAMES))
TEST_CFLAGS  := $(CSTD) -O2 $(WARN) -I. -Itests
ASAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ARM64_CC     := aarch64-linux-gnu-gcc

$(BUILD)/tests/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(OPENMP) -c $< -o $@
$(BUILD)/tests/%: tests/%.c $(BUILD)/tests/nn_impl.o tests/test_common.h nn.h
	$(CC) $(TEST_CFLAGS) $(OPENMP) $< $(BUILD)/tests/nn_impl.o -lcmocka -lm -o $@

$(BUILD)/tests-asan/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -O1 $(ASAN_FLAGS) $(OPENMP) -c $< -o $@
$(BUILD)/tests-asan/%: tests/%.c $(BUILD)/tests-asan/nn_impl.o tests/test_common.h nn.h
	$(CC) $(TEST_CFLAGS) -O1 $(ASAN_FLAGS) $(OPENMP) $< $(BUILD)/tests-asan/nn_impl.o -lcmocka -lm -o $@

# aarch64: cmocka's API from the small shim in tests/cmocka_shim, linked statically for qemu.
$(BUILD)/tests-arm64/nn_impl.o: tests/nn_impl.c nn.h
	@mkdir -p $(@D)
	$(ARM64_CC) $(TEST_CFLAGS) -c $< -o $@
$(BUILD)/tests-arm64/%: tests/%.c $(BUILD)/tests-arm64/nn_impl.o tests/test_common.h nn.h
	$(ARM64_CC) $(TEST_CFLAGS) -Itests/cmocka_shim $< $(BUILD)/tests-arm64/nn_impl.o -lm -static -o $@

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

# Every check; each extra one is counted through build/extra-checks/*.summary (scripts/extra_check.sh).
test: setup
	@$(SETUP) data bench mpi fuzz
	@rm -rf $(BUILD)/extra-checks
	@mkdir -p $(BUILD)/extra-checks
	@scripts/fetch_mnist.sh $(DATA)
	-@$(MAKE) --no-print-directory test-header
	@$(MAKE) --no-print-directory -j2 $(TEST_NATIVE) $(TEST_ASAN) $(TEST_ARM64) $(EXAMPLES)
	@scripts/extra_check.sh links check-links $(BUILD)
	@scripts/extra_check.sh standalone test-standalone $(BUILD)
	@scripts/extra_check.sh examples test-examples $(BUILD)
	@scripts/extra_check.sh bench bench-smoke $(BUILD)
	@scripts/extra_check.sh mpi test-mpi $(BUILD)
	@scripts/extra_check.sh fuzz fuzz-smoke $(BUILD)
	@scripts/extra_check.sh valgrind test-valgrind $(BUILD)
	@scripts/run_tests.sh $(BUILD) $(TEST_NAMES)

.PHONY: test-header test-valgrind check-links test-standalone
