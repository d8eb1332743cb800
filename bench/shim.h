/* bench/shim.h - a small C API over Google Benchmark (C++), so that benchmarks can be written in
   C99 against nn.h like any user program. bench/shim.cc implements it.

       static void bm_axpy(nnb_state *s, void *user)
       {
           size_t n = *(size_t *)user;
           ... allocate and fill x, y outside the loop ...
           while (nnb_keep_running(s)) nn_axpy(n, 0.5f, x, y);
           nnb_set_items_per_iteration(s, (double)n);
           nnb_set_bytes_per_iteration(s, 12.0 * n);
           nnb_set_flops_per_iteration(s, 2.0 * n);   // reported as GFLOPS
       }
       ...
       int main(int argc, char **argv)
       {
           static size_t n = 1 << 20;
           nnb_register("axpy/best/1M", bm_axpy, &n);
           return nnb_main(argc, argv);               // Google Benchmark's flags all work
       }

   The per-iteration setters may be called anywhere in the function: the shim multiplies them by
   the iteration count when the function returns. Rows are timed by the calling thread's CPU
   time (Google Benchmark's default: right for single-threaded kernels, and robust when other
   processes share the cores); nnb_use_real_time(1) before registering switches to wall-clock
   time, which multi-threaded kernels need (Google Benchmark then appends "/real_time" to the
   names). A row skipped with nnb_skip() (for example "CPU lacks avx512") is reported as SKIPPED
   and does not change the exit status. */
#ifndef NNB_SHIM_H
#define NNB_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnb_state nnb_state;         /* one run of one benchmark (wraps benchmark::State) */
typedef struct nnb_benchmark nnb_benchmark; /* a registered benchmark (for its options) */
typedef void (*nnb_function)(nnb_state *state, void *user);

typedef enum nnb_unit { NNB_NS = 0, NNB_US, NNB_MS, NNB_S } nnb_unit;

/* Registers a benchmark; name is copied, user is passed to fn on every run. */
nnb_benchmark *nnb_register(const char *name, nnb_function fn, void *user);
/* Time the rows registered after this call in wall-clock time (1) or the calling thread's CPU
   time (0, the default). */
void nnb_use_real_time(int enabled);
/* The FMA peak in FLOP/s (0: unknown). Rows with a FLOP count then also report peak% = their
   GFLOPS as a percentage of it. */
void nnb_set_peak_flops(double flops_per_second);
/* The time unit of the row's report (default ns). */
void nnb_set_unit(nnb_benchmark *b, nnb_unit unit);
/* This row's minimum measuring time, used unless --benchmark_min_time is on the command line
   (Google Benchmark then appends "/min_time:S" to the row's name). */
void nnb_set_min_time(nnb_benchmark *b, double seconds);
/* A key/value pair for the report's context (machine, library versions). */
void nnb_add_context(const char *key, const char *value);

/* The measuring loop: while (nnb_keep_running(state)) { ... } */
int nnb_keep_running(nnb_state *state);
int64_t nnb_iterations(const nnb_state *state); /* iterations so far (all of them after the loop) */
void nnb_pause_timing(nnb_state *state);
void nnb_resume_timing(nnb_state *state);

/* Counters, per iteration; reported as rates: items_per_second, bytes_per_second, GFLOPS. */
void nnb_set_items_per_iteration(nnb_state *state, double items);
void nnb_set_bytes_per_iteration(nnb_state *state, double bytes);
void nnb_set_flops_per_iteration(nnb_state *state, double flops);
/* A counter of its own per iteration, reported as a rate like GFLOPS (e.g. a row's percentage
   of a peak other than the FMA peak: FLOPs * 100 / that peak per iteration). */
void nnb_set_rate_counter(nnb_state *state, const char *name, double per_iteration);
/* A plain user counter (not a rate), e.g. a loss value or a thread count. */
void nnb_set_counter(nnb_state *state, const char *name, double value);
void nnb_set_label(nnb_state *state, const char *label);

/* Skips the row with a reason ("CPU lacks avx512"); call before the loop, then return.
   Reported as "SKIPPED: reason" on the console and as an error row ("skipped: reason") in
   JSON/CSV. nnb_fail() is the same for real failures ("FAILED: reason"). Neither makes the
   program's exit status non-zero. */
void nnb_skip(nnb_state *state, const char *reason);
void nnb_fail(nnb_state *state, const char *reason);

/* Keeps the compiler from discarding a computation whose result is otherwise unused. */
void nnb_do_not_optimize(const void *pointer);

/* Removes "--name=value" or "--name value" from argv (updating *argc) and returns value, or
   NULL when the flag is absent; for the program's own flags before nnb_main sees argv. */
const char *nnb_take_flag(int *argc, char **argv, const char *name);

/* Passes argv to Google Benchmark (every --benchmark_* flag works), runs the registered rows
   that the filter selects and returns the exit status: 0, or 1 for unrecognised flags. */
int nnb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
