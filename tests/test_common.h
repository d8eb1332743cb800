/* Shared by every test program: cmocka, the backend under test, a summary line the runner
   (scripts/run_tests.sh) adds up. The library itself is compiled in tests/nn_impl.c. */
#ifndef NN_TEST_COMMON_H
#define NN_TEST_COMMON_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include "nn.h"

#define NN_TEST_SKIP_EXIT 77

/* The file-system calls the tests share, on POSIX and on Windows (mingw-w64, run under wine):
   nn_test_mkdtemp makes a fresh directory from a template ending in XXXXXX (mkdtemp), and
   nn_test_mkdir one of mode 0700. A test that needs what Windows lacks (symlinks, file-size
   limits, permission bits) skips there with NN_TEST_SKIP_ON_WINDOWS("why"). */
#ifdef _WIN32
#include <direct.h>
#include <io.h>
static inline char *nn_test_mkdtemp(char *path) { return _mktemp(path) && _mkdir(path) == 0 ? path : NULL; }
#define nn_test_mkdir(path) _mkdir(path)
#define NN_TEST_SKIP_ON_WINDOWS(why) do { print_message("  skipping on Windows: %s\n", why); skip(); } while (0)
#else
#define nn_test_mkdtemp(path) mkdtemp(path)
#define nn_test_mkdir(path) mkdir(path, 0700)
#endif

/* Runs the tests on the backend named by argv[1] (or NN_BACKEND, or the best one), prints
   "SUMMARY <backend> passed=N failed=M", and returns the exit status for main. */
static int nn_test_run(const char *group, const struct CMUnitTest *tests, size_t count, int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : getenv("NN_BACKEND");
    int failed;
    if (backend && *backend) {
        if (!nn_backend_supported(backend)) {
            printf("SKIP %s: this CPU has no %s\n", group, backend);
            return NN_TEST_SKIP_EXIT;
        }
        if (nn_set_backend(backend) != NN_OK) {
            printf("SKIP %s: %s\n", group, nn_last_error());
            return NN_TEST_SKIP_EXIT;
        }
    }
    failed = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
    printf("SUMMARY %s %s passed=%d failed=%d\n", nn_backend_name(), group, (int)count - failed, failed);
    return failed ? 1 : 0;
}
#define NN_TEST_MAIN(group, tests) \
    int main(int argc, char **argv) { return nn_test_run(group, tests, sizeof(tests) / sizeof(tests[0]), argc, argv); }

/* A deterministic fill for test data, independent of the library's PRNG. */
static uint64_t nn_test_seed = 0x9E3779B97F4A7C15ull;
static inline float nn_test_uniform(float lo, float hi)
{
    nn_test_seed ^= nn_test_seed << 13; nn_test_seed ^= nn_test_seed >> 7; nn_test_seed ^= nn_test_seed << 17;
    return lo + (hi - lo) * (float)((nn_test_seed >> 40) * (1.0 / 16777216.0));
}
static inline void nn_test_fill(float *x, size_t n, float lo, float hi)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = nn_test_uniform(lo, hi);
}
#endif
