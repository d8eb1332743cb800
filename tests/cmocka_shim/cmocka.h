/* A tiny cmocka-compatible shim for cross builds without a target cmocka (for example the
   aarch64 build run under qemu): put this directory first on the include path, -Itests/cmocka_shim,
   and link nothing. It implements only the subset the tests use: struct CMUnitTest,
   cmocka_unit_test(_setup_teardown), cmocka_run_group_tests / _cmocka_run_group_tests,
   assert_true/false, assert_int_(not_)equal, assert_float_(not_)equal, assert_(non_)null,
   assert_in_range, assert_string_equal, assert_memory_equal, fail, fail_msg, skip,
   print_message, print_error, test_malloc/test_calloc/test_free (no leak checking).
   Output mimics cmocka's ("[ RUN      ]", "[       OK ]", "[  FAILED  ]"); the return value
   of the group runner is the number of failed tests, like cmocka's. */
#ifndef NN_CMOCKA_SHIM_H
#define NN_CMOCKA_SHIM_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CMS__UNUSED __attribute__((unused))
#else
#define CMS__UNUSED
#endif

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);
struct CMUnitTest {
    const char *name;
    CMUnitTestFunction test_func;
    CMFixtureFunction setup_func;
    CMFixtureFunction teardown_func;
    void *initial_state;
};
#define cmocka_unit_test(f) { #f, f, NULL, NULL, NULL }
#define cmocka_unit_test_setup(f, setup) { #f, f, setup, NULL, NULL }
#define cmocka_unit_test_teardown(f, teardown) { #f, f, NULL, teardown, NULL }
#define cmocka_unit_test_setup_teardown(f, setup, teardown) { #f, f, setup, teardown, NULL }
#define cmocka_unit_test_prestate(f, state) { #f, f, NULL, NULL, state }

static jmp_buf cms__jmp;
static int cms__skipped;

static CMS__UNUSED void print_message(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vprintf(format, ap);
    va_end(ap);
    fflush(stdout);
}
static CMS__UNUSED void print_error(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
}
static CMS__UNUSED void cms__fail(const char *file, int line, const char *format, ...)
{
    va_list ap;
    printf("[  ERROR   ] --- ");
    va_start(ap, format);
    vprintf(format, ap);
    va_end(ap);
    printf("\n[   LINE   ] --- %s:%d: error: Failure!\n", file, line);
    fflush(stdout);
    longjmp(cms__jmp, 1);
}
#define fail() cms__fail(__FILE__, __LINE__, "fail()")
#define fail_msg(...) cms__fail(__FILE__, __LINE__, __VA_ARGS__)
#define skip() do { cms__skipped = 1; longjmp(cms__jmp, 2); } while (0)
#define assert_true(c) do { if (!(c)) cms__fail(__FILE__, __LINE__, "%s", #c); } while (0)
#define assert_false(c) do { if (c) cms__fail(__FILE__, __LINE__, "%s", #c); } while (0)
#define assert_null(p) do { if ((p) != NULL) cms__fail(__FILE__, __LINE__, "%s is not NULL", #p); } while (0)
#define assert_non_null(p) do { if ((p) == NULL) cms__fail(__FILE__, __LINE__, "%s is NULL", #p); } while (0)
#define assert_int_equal(a, b) do { intmax_t cms_a = (intmax_t)(a), cms_b = (intmax_t)(b); \
        if (cms_a != cms_b) cms__fail(__FILE__, __LINE__, "%jd != %jd", cms_a, cms_b); } while (0)
#define assert_int_not_equal(a, b) do { intmax_t cms_a = (intmax_t)(a), cms_b = (intmax_t)(b); \
        if (cms_a == cms_b) cms__fail(__FILE__, __LINE__, "%jd == %jd", cms_a, cms_b); } while (0)
#define assert_in_range(v, lo, hi) do { intmax_t cms_v = (intmax_t)(v); \
        if (cms_v < (intmax_t)(lo) || cms_v > (intmax_t)(hi)) \
            cms__fail(__FILE__, __LINE__, "%jd is not within [%jd, %jd]", cms_v, (intmax_t)(lo), (intmax_t)(hi)); } while (0)
#define assert_float_equal(a, b, eps) do { double cms_a = (double)(a), cms_b = (double)(b), cms_d = cms_a - cms_b; \
        if (!((cms_d < 0 ? -cms_d : cms_d) <= (double)(eps))) \
            cms__fail(__FILE__, __LINE__, "%f != %f (epsilon %g)", cms_a, cms_b, (double)(eps)); } while (0)
#define assert_float_not_equal(a, b, eps) do { double cms_a = (double)(a), cms_b = (double)(b), cms_d = cms_a - cms_b; \
        if ((cms_d < 0 ? -cms_d : cms_d) <= (double)(eps)) \
            cms__fail(__FILE__, __LINE__, "%f == %f (epsilon %g)", cms_a, cms_b, (double)(eps)); } while (0)
#define assert_string_equal(a, b) do { const char *cms_a = (a), *cms_b = (b); \
        if (strcmp(cms_a, cms_b) != 0) cms__fail(__FILE__, __LINE__, "\"%s\" != \"%s\"", cms_a, cms_b); } while (0)
#define assert_memory_equal(a, b, size) do { \
        if (memcmp((a), (b), (size)) != 0) cms__fail(__FILE__, __LINE__, "%s and %s differ", #a, #b); } while (0)
#define test_malloc(size) malloc(size)
#define test_calloc(n, size) calloc(n, size)
#define test_realloc(p, size) realloc(p, size)
#define test_free(p) free(p)

static CMS__UNUSED int _cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *const tests,
                                               const size_t num_tests, CMFixtureFunction group_setup,
                                               CMFixtureFunction group_teardown)
{
    /* volatile: modified between setjmp and longjmp */
    volatile size_t i, failed = 0, skipped = 0;
    void *group_state = NULL;
    printf("[==========] Running %zu test(s).\n", (size_t)num_tests);
    if (group_setup && group_setup(&group_state) != 0) {
        printf("[  ERROR   ] %s: group setup failed\n", group_name);
        return (int)num_tests;
    }
    for (i = 0; i < num_tests; i++) {
        void *state = tests[i].initial_state ? tests[i].initial_state : group_state;
        volatile int ok = 1, setup_ok = 1;
        printf("[ RUN      ] %s\n", tests[i].name);
        fflush(stdout);
        cms__skipped = 0;
        if (tests[i].setup_func && tests[i].setup_func(&state) != 0) { ok = 0; setup_ok = 0; }
        if (setup_ok) {
            if (setjmp(cms__jmp) == 0) tests[i].test_func(&state);
            else if (!cms__skipped) ok = 0;
            if (tests[i].teardown_func && tests[i].teardown_func(&state) != 0) ok = 0;
        }
        if (cms__skipped) { skipped++; printf("[  SKIPPED ] %s\n", tests[i].name); }
        else if (ok) printf("[       OK ] %s\n", tests[i].name);
        else { failed++; printf("[  FAILED  ] %s\n", tests[i].name); }
        fflush(stdout);
    }
    if (group_teardown) group_teardown(&group_state);
    printf("[==========] %zu test(s) run.\n", (size_t)num_tests);
    printf("[  PASSED  ] %zu test(s).\n", (size_t)(num_tests - failed - skipped));
    if (skipped) printf("[  SKIPPED ] %zu test(s).\n", (size_t)skipped);
    if (failed) printf("[  FAILED  ] %zu test(s).\n", (size_t)failed);
    return (int)failed;
}
#define cmocka_run_group_tests(tests, setup, teardown) \
    _cmocka_run_group_tests(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
#define cmocka_run_group_tests_name(name, tests, setup, teardown) \
    _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
#endif
