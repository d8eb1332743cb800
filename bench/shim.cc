// bench/shim.cc - the C API of bench/shim.h on top of Google Benchmark (tested with 1.7.1).
#include "shim.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

struct nnb_state {
    benchmark::State *state;
    double items, bytes, flops;
    bool has_items, has_bytes, has_flops;
    std::vector<std::pair<std::string, double> > rates; // nnb_set_rate_counter, per iteration
};

struct nnb_benchmark {
    benchmark::internal::Benchmark *benchmark;
    double min_time; // 0: Google Benchmark's default
};

namespace {

const char kSkipPrefix[] = "skipped: ";
const char kFailPrefix[] = "failed: ";
bool g_real_time = false;
double g_peak_flops = 0.0;

std::vector<nnb_benchmark *> &registry()
{
    static std::vector<nnb_benchmark *> all;
    return all;
}

void run_one(benchmark::State &st, nnb_function fn, void *user)
{
    nnb_state s;
    s.state = &st;
    s.items = s.bytes = s.flops = 0.0;
    s.has_items = s.has_bytes = s.has_flops = false;
    fn(&s, user);
    if (st.error_occurred()) return;
    const double iterations = static_cast<double>(st.iterations());
    if (s.has_items) st.SetItemsProcessed(static_cast<int64_t>(s.items * iterations));
    if (s.has_bytes) st.SetBytesProcessed(static_cast<int64_t>(s.bytes * iterations));
    if (s.has_flops) st.counters["GFLOPS"] = benchmark::Counter(s.flops * iterations / 1e9, benchmark::Counter::kIsRate);
    if (s.has_flops && g_peak_flops > 0.0) // a rate too: (FLOPs / peak FLOP/s) / seconds = fraction of the peak
        st.counters["peak%"] = benchmark::Counter(s.flops * iterations * 100.0 / g_peak_flops, benchmark::Counter::kIsRate);
    for (size_t i = 0; i < s.rates.size(); i++)
        st.counters[s.rates[i].first] = benchmark::Counter(s.rates[i].second * iterations, benchmark::Counter::kIsRate);
}

// The value of --name=value (or -name=value) in argv, or NULL.
const char *flag_value(int argc, char **argv, const char *name)
{
    const size_t n = std::strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') continue;
        a += a[1] == '-' ? 2 : 1;
        if (std::strncmp(a, name, n) == 0 && a[n] == '=') return a + n + 1;
    }
    return NULL;
}

bool truthy(const char *v)
{
    return !(std::strcmp(v, "false") == 0 || std::strcmp(v, "0") == 0 || std::strcmp(v, "no") == 0 ||
             std::strcmp(v, "off") == 0 || std::strcmp(v, "f") == 0 || std::strcmp(v, "n") == 0);
}

// The console reporter, except that rows skipped with nnb_skip() read "SKIPPED: reason" instead
// of "ERROR OCCURRED: 'skipped: reason'".
class SkipAwareConsoleReporter : public benchmark::ConsoleReporter {
  public:
    explicit SkipAwareConsoleReporter(OutputOptions options) : ConsoleReporter(options) {}

  protected:
    void PrintRunData(const Run &run) BENCHMARK_OVERRIDE
    {
        const std::string &m = run.error_message;
        const size_t prefix = sizeof kSkipPrefix - 1;
        if (run.error_occurred && m.compare(0, prefix, kSkipPrefix) == 0) {
            std::ostream &out = GetOutputStream();
            const bool color = (output_options_ & OO_Color) != 0;
            out << std::left << std::setw(static_cast<int>(name_field_width_)) << run.benchmark_name() << ' '
                << (color ? "\033[33m" : "") << "SKIPPED: " << m.substr(prefix) << (color ? "\033[m" : "") << '\n';
            return;
        }
        ConsoleReporter::PrintRunData(run);
    }
};

} // namespace

extern "C" {

nnb_benchmark *nnb_register(const char *name, nnb_function fn, void *user)
{
    nnb_benchmark *b = new nnb_benchmark;
    b->benchmark = benchmark::RegisterBenchmark(name, [fn, user](benchmark::State &st) { run_one(st, fn, user); });
    if (g_real_time) b->benchmark->UseRealTime();
    b->min_time = 0.0;
    registry().push_back(b);
    return b;
}

void nnb_use_real_time(int enabled) { g_real_time = enabled != 0; }
void nnb_set_peak_flops(double flops_per_second) { g_peak_flops = flops_per_second; }

void nnb_set_unit(nnb_benchmark *b, nnb_unit unit)
{
    static const benchmark::TimeUnit units[] = {benchmark::kNanosecond, benchmark::kMicrosecond,
                                                benchmark::kMillisecond, benchmark::kSecond};
    if (b && unit >= NNB_NS && unit <= NNB_S) b->benchmark->Unit(units[unit]);
}

void nnb_set_min_time(nnb_benchmark *b, double seconds)
{
    if (b && seconds > 0.0) b->min_time = seconds;
}

void nnb_add_context(const char *key, const char *value) { benchmark::AddCustomContext(key, value); }

int nnb_keep_running(nnb_state *s) { return s->state->KeepRunning() ? 1 : 0; }
int64_t nnb_iterations(const nnb_state *s) { return static_cast<int64_t>(s->state->iterations()); }
void nnb_pause_timing(nnb_state *s) { s->state->PauseTiming(); }
void nnb_resume_timing(nnb_state *s) { s->state->ResumeTiming(); }

void nnb_set_items_per_iteration(nnb_state *s, double items)
{
    s->items = items;
    s->has_items = true;
}
void nnb_set_bytes_per_iteration(nnb_state *s, double bytes)
{
    s->bytes = bytes;
    s->has_bytes = true;
}
void nnb_set_flops_per_iteration(nnb_state *s, double flops)
{
    s->flops = flops;
    s->has_flops = true;
}
void nnb_set_counter(nnb_state *s, const char *name, double value) { s->state->counters[name] = value; }
void nnb_set_rate_counter(nnb_state *s, const char *name, double per_iteration)
{
    s->rates.push_back(std::make_pair(std::string(name), per_iteration)); // times the iterations in run_one
}
void nnb_set_label(nnb_state *s, const char *label) { s->state->SetLabel(label); }

void nnb_skip(nnb_state *s, const char *reason)
{
    std::string m = std::string(kSkipPrefix) + (reason ? reason : "");
    s->state->SkipWithError(m.c_str());
}

void nnb_fail(nnb_state *s, const char *reason)
{
    std::string m = std::string(kFailPrefix) + (reason ? reason : "");
    s->state->SkipWithError(m.c_str());
}

void nnb_do_not_optimize(const void *pointer)
{
    benchmark::DoNotOptimize(pointer);
    benchmark::ClobberMemory();
}

const char *nnb_take_flag(int *argc, char **argv, const char *name)
{
    const size_t n = std::strlen(name);
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *value = NULL;
        int used = 0;
        if (std::strncmp(a, name, n) == 0 && a[n] == '=') {
            value = a + n + 1;
            used = 1;
        } else if (std::strcmp(a, name) == 0 && i + 1 < *argc) {
            value = argv[i + 1];
            used = 2;
        }
        if (used) {
            for (int j = i; j + used <= *argc; j++) argv[j] = argv[j + used]; // moves the final NULL too
            *argc -= used;
            return value;
        }
    }
    return NULL;
}

int nnb_main(int argc, char **argv)
{
    // Read what Google Benchmark's Initialize() will consume.
    const bool min_time_given = flag_value(argc, argv, "benchmark_min_time") != NULL;
    const char *format = flag_value(argc, argv, "benchmark_format");
    const char *color = flag_value(argc, argv, "benchmark_color");
    const char *tabular = flag_value(argc, argv, "benchmark_counters_tabular");

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (!min_time_given)
        for (size_t i = 0; i < registry().size(); i++)
            if (registry()[i]->min_time > 0.0) registry()[i]->benchmark->MinTime(registry()[i]->min_time);

    if (!format || std::strcmp(format, "console") == 0) {
        int options = benchmark::ConsoleReporter::OO_None;
        bool use_color;
        if (!color || std::strcmp(color, "auto") == 0) {
            const char *term = std::getenv("TERM");
            use_color = isatty(STDOUT_FILENO) && term && std::strcmp(term, "dumb") != 0;
        } else {
            use_color = truthy(color);
        }
        if (use_color) options |= benchmark::ConsoleReporter::OO_Color;
        if (tabular && truthy(tabular)) options |= benchmark::ConsoleReporter::OO_Tabular;
        SkipAwareConsoleReporter reporter(static_cast<benchmark::ConsoleReporter::OutputOptions>(options));
        benchmark::RunSpecifiedBenchmarks(&reporter);
    } else {
        benchmark::RunSpecifiedBenchmarks();
    }
    benchmark::Shutdown();
    return 0;
}

} // extern "C"
