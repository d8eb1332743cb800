# Fuzzing with libFuzzer (clang -fsanitize=fuzzer,address,undefined). Include from the Makefile
# (after BUILD and SETUP are set):  -include fuzz/fuzz.mk
#   make fuzz          each target for FUZZ_SECONDS (default 60), one after another
#   make fuzz-smoke    each target for FUZZ_SMOKE_SECONDS (default 3); writes
#                      $(BUILD)/extra-checks/fuzz.summary ("fuzz <passed> <failed>", targets)
#   make fuzz-seeds    regenerate the checked-in seed corpora fuzz/corpus/<target>/
# Targets: fuzz_idx (nn_mnist_load), fuzz_model (nn_load and nn_model_load, model file formats 1 and 2),
# fuzz_checkpoint (nn_checkpoint_load), fuzz_args (examples' ex_parse), fuzz_safetensors (nn_load_safetensors).
FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_TARGETS   := fuzz_idx fuzz_model fuzz_checkpoint fuzz_args fuzz_safetensors
FUZZ_BINS      := $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
FUZZ_CFLAGS    := -std=c99 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
                  -fno-sanitize-recover=undefined -I. -Ifuzz -Iexamples

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz/fuzz_model.h nn.h examples/common.h | fuzz-setup
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< -o $@ -lm

$(BUILD)/fuzz/gen_seeds: fuzz/gen_seeds.c fuzz/fuzz_model.h nn.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -O1 -Wall -Wextra -Werror -I. -Ifuzz $< -o $@ -lm

fuzz-setup:
	@$(SETUP) fuzz

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) "" $(FUZZ_TARGETS)

# Never stops make: a target that cannot be built (no clang/libFuzzer) or that fails is counted
# as failed in the summary.
fuzz-smoke:
	@mkdir -p $(BUILD)/extra-checks
	-@$(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory -k $(FUZZ_BINS)
	-@fuzz/run.sh $(BUILD) $(FUZZ_SMOKE_SECONDS) $(BUILD)/extra-checks/fuzz.summary $(FUZZ_TARGETS)

fuzz-seeds: $(BUILD)/fuzz/gen_seeds
	@mkdir -p $(addprefix fuzz/corpus/,$(FUZZ_TARGETS))
	$(BUILD)/fuzz/gen_seeds fuzz/corpus

.PHONY: fuzz fuzz-setup fuzz-build fuzz-smoke fuzz-seeds
