/* test_kernels.c - cmocka tests for section 3 of nn.h (the kernels), run once per backend.

   Every kernel is compared with an independent naive reference written here in double
   precision (plain loops), and, when the backend under test is not "scalar", also with the
   library's scalar backend (tolerance: twice the reference tolerance, since both sides may
   sit on opposite sides of the truth).

   Sizes: a full run takes about 1-2 s per backend natively (12 s under qemu). With NN_TEST_QUICK
   set (to anything but "0"), or on an aarch64 build (which here runs under qemu, about 3 s),
   quick() reduces: random cases (sgemm 300 -> 80, conv 150 -> 40, pooling 100 -> 30), the
   1..40 sweeps from all four transposes to one per size, the large GEMMs (300x257x511 ->
   150x67x300, which still crosses the cache blocks; k 5000 -> 2000; 784 -> 200; 6x36864x25 ->
   6x4096x25), LeNet conv batch 8 -> 2, and the exp/tanh/sigmoid sweeps 2^21 -> 2^18 points.
   NN_TEST_QUICK=0 forces the full sizes everywhere. NN_TEST_TIMES=1 prints each test's time.

   Tolerances (|got - ref| <= ...):
     sgemm        1e-5*k*max|A|*max|B|*|alpha| + 1e-6*|beta|*max|C0| + 1e-6
     conv2d       1e-5*terms*max|in1|*max|in2| + 1e-6 (terms = the length of each sum)
     pooling      max: exact; average: 1e-6 + 1e-6*window*max|x|
     activations  identity/relu/leaky: 1.2e-7 relative (a single rounding);
                  sigmoid, tanh: 1e-6 relative; scaled tanh: 1.5e-6 relative (two more roundings);
                  backward of smooth kinds: 4e-6*|dy| + 1e-5 relative
     vec_exp/tanh 1e-6 relative (exp over [-87, 88], tanh over [-20, 20] and down to 1e-37)
     softmax      1e-5 relative + 1e-8; log-softmax 5e-6 + 1e-6 relative
     reductions   1e-5 * (sum of |terms|) (the condition-aware relative error)
     axpy/add/bias_add/scale  1.2e-7 relative to the magnitudes involved (one or two roundings)
     batch norm   bounds from its summation order, stated above bn_sum_bound; bit-identical to the
                  scalar backend where no a*b + c can have been contracted (TWINS_EXACT)
   Checks inside a test do not stop at the first failure: each failing check prints the kernel,
   backend, shape and worst error, and the test asserts at its end that none failed.

   Conventions this file assumes beyond the header's comments (failures would say so):
     - max pooling: ties go to the first index in row-major window order;
       argmax holds either the flat index into x or the index within the (n, c) plane
       (both are accepted, but one convention must hold for every output);
     - pooling backward overwrites dx (dx is pre-filled with NaN);
     - the pooling kernels refuse a bad shape or a NULL tensor with a status and a message and
       write nothing (test_pool2d_kernels_reject, test_global_avgpool_reject);
     - sgemm with k == 0 computes C = beta*C, and m == 0 or n == 0 is a no-op returning NN_OK. */
#include "test_common.h"
#include <float.h>
#include <limits.h>

/* ---------------------------------------------------------------------------------------
   Harness: backend bookkeeping, failure notes, aligned buffers, random integers
   --------------------------------------------------------------------------------------- */
static char g_backend[32];
static int g_failures, g_printed;
static double g_started;

static int setup(void **state)
{
    (void)state;
    snprintf(g_backend, sizeof g_backend, "%s", nn_backend_name());
    g_failures = 0;
    g_printed = 0;
    g_started = nn_seconds();
    return 0;
}
/* Restores the backend under test even when a test failed on the way (cmocka runs the
   teardown after a failed assertion). NN_TEST_TIMES=1 prints each test's wall time. */
static int teardown(void **state)
{
    const char *times = getenv("NN_TEST_TIMES");
    (void)state;
    if (strcmp(nn_backend_name(), g_backend) != 0 && nn_set_backend(g_backend) != NN_OK) return -1;
    if (times && *times && strcmp(times, "0") != 0) printf("    (%.3f s)\n", nn_seconds() - g_started);
    return 0;
}
#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static void note(const char *fmt, ...)
{
    va_list ap;
    g_failures++;
    if (++g_printed > 25) {
        if (g_printed == 26) printf("    ... (further failures not printed)\n");
        return;
    }
    printf("    FAIL [%s] ", g_backend);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}
#define CHECK(cond, ...) do { if (!(cond)) note(__VA_ARGS__); } while (0)
/* Notes a failure unless call returns NN_OK. Expands to a block that runs call once. */
#define CHECK_OK(label, call) do { \
        nn_status check_ok_status_ = (call); \
        CHECK(check_ok_status_ == NN_OK, "%s: %s (%s)", label, nn_status_name(check_ok_status_), nn_last_error()); \
    } while (0)
#define FINISH() do { \
        if (g_failures) printf("    %d check(s) failed on backend %s\n", g_failures, g_backend); \
        assert_int_equal(g_failures, 0); } while (0)

static int is_scalar(void) { return strcmp(g_backend, "scalar") == 0; }
/* Switch to the scalar backend for a computation; no assertion may happen before back(). */
static int to_scalar(void)
{
    if (nn_set_backend("scalar") != NN_OK) { note("cannot switch to the scalar backend"); return 0; }
    return 1;
}
static void back(void)
{
    if (nn_set_backend(g_backend) != NN_OK || strcmp(nn_backend_name(), g_backend) != 0)
        note("cannot switch back to backend %s", g_backend);
}

static int quick(void)
{
    const char *q = getenv("NN_TEST_QUICK");
    if (q && *q) return strcmp(q, "0") != 0;
#if defined(__aarch64__) || defined(__arm__)
    return 1;
#else
    return strcmp(g_backend, "neon") == 0;
#endif
}

/* 64-byte aligned float buffers (workspaces must be). */
static float *falloc(size_t n)
{
    unsigned char *raw = (unsigned char *)malloc((n + 1) * sizeof(float) + 64 + sizeof(void *));
    uintptr_t p;
    if (!raw) fail_msg("out of memory (%zu floats)", n);
    p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    return (float *)p;
}
static void ffree(float *p) { if (p) free(((void **)p)[-1]); }
static double *dalloc(size_t n)
{
    double *p = (double *)malloc((n + 1) * sizeof(double));
    if (!p) fail_msg("out of memory (%zu doubles)", n);
    return p;
}
static int rnd(int lo, int hi) /* uniform in [lo, hi] */
{
    int v = lo + (int)nn_test_uniform(0.0f, (float)(hi - lo + 1));
    return v > hi ? hi : v;
}
static void fill_value(float *x, size_t n, float v) { size_t i; for (i = 0; i < n; i++) x[i] = v; }
static double max_abs(const float *x, size_t n)
{
    double m = 0; size_t i;
    for (i = 0; i < n; i++) if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}
static void to_double(const float *x, size_t n, double *out) { size_t i; for (i = 0; i < n; i++) out[i] = x[i]; }
static int same_bits(const float *a, const float *b, size_t n, size_t *where)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) { *where = i; return 0; }
    return 1;
}

/* |got - ref| <= atol + rtol*|ref| (+ tol_i[i] if given), for every i; NaN where the reference
   is finite fails, a NaN reference demands NaN. Prints the worst element on failure. */
static int check_close(const char *label, const float *got, const double *ref, size_t n,
                       double atol, double rtol, const double *tol_i)
{
    size_t i, bad = 0, worst = 0;
    double worst_ratio = -1, max_err = 0, worst_tol = 0;
    for (i = 0; i < n; i++) {
        double g = got[i], r = ref[i], err, tol, ratio;
        if (isnan(r)) {
            if (!isnan(g)) { bad++; if (worst_ratio < INFINITY) { worst_ratio = INFINITY; worst = i; } }
            continue;
        }
        if (g == r) continue;
        err = fabs(g - r);
        tol = atol + rtol * fabs(r) + (tol_i ? tol_i[i] : 0.0);
        if (isnan(err) || isinf(err)) ratio = INFINITY;
        else ratio = tol > 0 ? err / tol : INFINITY;
        if (!(err <= tol)) bad++;
        if (!isnan(err) && err > max_err) max_err = err;
        if (ratio > worst_ratio) { worst_ratio = ratio; worst = i; worst_tol = tol; }
    }
    if (bad) {
        note("%s: %zu of %zu wrong; worst at [%zu]: got %.9g, want %.9g (err %.3g, tol %.3g); max err %.3g",
             label, bad, n, worst, (double)got[worst], ref[worst], fabs((double)got[worst] - ref[worst]),
             worst_tol, max_err);
        return 0;
    }
    return 1;
}
/* The same against a float result (the scalar backend's), at twice the tolerance. */
static int check_vs_scalar(const char *label, const float *got, const float *scalar, size_t n,
                           double atol, double rtol, const double *tol_i)
{
    double *r = dalloc(n), *t = NULL;
    char buf[400];
    int ok;
    size_t i;
    to_double(scalar, n, r);
    if (tol_i) { t = dalloc(n); for (i = 0; i < n; i++) t[i] = 2 * tol_i[i]; }
    snprintf(buf, sizeof buf, "%s vs scalar backend", label);
    ok = check_close(buf, got, r, n, 2 * atol, 2 * rtol, t);
    free(r);
    free(t);
    return ok;
}
/* Sentinel guard cells after an output: a kernel must not write past its count. */
#define GUARD 16
#define SENTINEL 1234.5f
static void set_guard(float *x, size_t n) { fill_value(x + n, GUARD, SENTINEL); }
static void check_guard(const char *label, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < GUARD; i++)
        if (x[n + i] != SENTINEL) { note("%s: wrote past the end (element %zu = %g)", label, n + i, (double)x[n + i]); return; }
}

/* ---------------------------------------------------------------------------------------
   SGEMM
   --------------------------------------------------------------------------------------- */
typedef struct gemm_case { int ta, tb, m, n, k; float alpha, beta; int pa, pb, pc; } gemm_case;
/* A, B and C start this many floats after a 64-byte boundary (they need not be aligned). */
static int g_misalign;

static void ref_sgemm(const gemm_case *g, const float *a, int lda, const float *b, int ldb,
                      const float *c0, int ldc, double *out)
{
    int i, j, p;
    for (i = 0; i < g->m; i++)
        for (j = 0; j < g->n; j++) {
            double s = 0;
            for (p = 0; p < g->k; p++) {
                double av = g->ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = g->tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            s *= g->alpha;
            if (g->beta != 0) s += (double)g->beta * c0[(size_t)i * ldc + j];
            out[(size_t)i * g->n + j] = s;
        }
}

static void run_gemm(const gemm_case *g, float *ws)
{
    int arows = g->ta ? g->k : g->m, acols = g->ta ? g->m : g->k;
    int brows = g->tb ? g->n : g->k, bcols = g->tb ? g->k : g->n;
    int lda = acols + g->pa, ldb = bcols + g->pb, ldc = g->n + g->pc;
    size_t asz = (size_t)arows * lda, bsz = (size_t)brows * ldb, csz = (size_t)g->m * ldc;
    size_t mn = (size_t)g->m * g->n, where;
    int off = g_misalign;
    float *abase = falloc(asz + off), *bbase = falloc(bsz + off), *c0 = falloc(csz), *c1base = falloc(csz + off);
    float *c2base = falloc(csz + off), *a = abase + off, *b = bbase + off, *c1 = c1base + off, *c2 = c2base + off;
    float *p1 = falloc(mn), *p2 = falloc(mn), *acopy = falloc(asz), *bcopy = falloc(bsz);
    double *ref = dalloc(mn);
    double amax, bmax, cmax = 0, tol;
    nn_status s1, s2;
    char label[300];
    int r, c, i;

    snprintf(label, sizeof label, "sgemm %c%c m=%d n=%d k=%d alpha=%g beta=%g lda=%d ldb=%d ldc=%d%s",
             g->ta ? 'T' : 'N', g->tb ? 'T' : 'N', g->m, g->n, g->k, (double)g->alpha, (double)g->beta,
             lda, ldb, ldc, off ? (off == 1 ? " misaligned+1" : off == 2 ? " misaligned+2" : " misaligned+3") : "");
    /* padding of A and B holds NaN: reading it into a result would show */
    for (r = 0; r < arows; r++)
        for (c = 0; c < lda; c++) a[(size_t)r * lda + c] = c < acols ? nn_test_uniform(-1, 1) : NAN;
    for (r = 0; r < brows; r++)
        for (c = 0; c < ldb; c++) b[(size_t)r * ldb + c] = c < bcols ? nn_test_uniform(-1, 1) : NAN;
    /* C: NaN when beta == 0 (must not be read), padding holds a sentinel (must not be written) */
    for (r = 0; r < g->m; r++)
        for (c = 0; c < ldc; c++)
            c0[(size_t)r * ldc + c] = c >= g->n ? SENTINEL : g->beta == 0 ? NAN : nn_test_uniform(-1, 1);
    amax = 0; bmax = 0;
    for (r = 0; r < arows; r++) for (c = 0; c < acols; c++) if (fabs(a[(size_t)r * lda + c]) > amax) amax = fabs(a[(size_t)r * lda + c]);
    for (r = 0; r < brows; r++) for (c = 0; c < bcols; c++) if (fabs(b[(size_t)r * ldb + c]) > bmax) bmax = fabs(b[(size_t)r * ldb + c]);
    if (g->beta != 0)
        for (r = 0; r < g->m; r++) for (c = 0; c < g->n; c++) if (fabs(c0[(size_t)r * ldc + c]) > cmax) cmax = fabs(c0[(size_t)r * ldc + c]);
    tol = 1e-5 * g->k * amax * bmax * fabs(g->alpha) + 1e-6 * fabs(g->beta) * cmax + 1e-6;

    memcpy(acopy, a, asz * sizeof(float));
    memcpy(bcopy, b, bsz * sizeof(float));
    memcpy(c1, c0, csz * sizeof(float));
    memcpy(c2, c0, csz * sizeof(float));
    s1 = nn_sgemm(g->ta ? NN_TRANSPOSE : NN_NO_TRANSPOSE, g->tb ? NN_TRANSPOSE : NN_NO_TRANSPOSE,
                  g->m, g->n, g->k, g->alpha, a, lda, b, ldb, g->beta, c1, ldc, NULL, 0);
    s2 = nn_sgemm(g->ta ? NN_TRANSPOSE : NN_NO_TRANSPOSE, g->tb ? NN_TRANSPOSE : NN_NO_TRANSPOSE,
                  g->m, g->n, g->k, g->alpha, a, lda, b, ldb, g->beta, c2, ldc, ws, nn_sgemm_workspace_size());
    CHECK(s1 == NN_OK && s2 == NN_OK, "%s: status %s (workspace NULL) / %s (workspace): %s", label,
          nn_status_name(s1), nn_status_name(s2), nn_last_error());
    for (r = 0; r < g->m; r++) {
        memcpy(p1 + (size_t)r * g->n, c1 + (size_t)r * ldc, (size_t)g->n * sizeof(float));
        memcpy(p2 + (size_t)r * g->n, c2 + (size_t)r * ldc, (size_t)g->n * sizeof(float));
        for (c = g->n; c < ldc; c++)
            if (c1[(size_t)r * ldc + c] != SENTINEL || c2[(size_t)r * ldc + c] != SENTINEL) {
                note("%s: wrote into C's padding at row %d column %d", label, r, c);
                r = g->m;
                break;
            }
    }
    CHECK(memcmp(a, acopy, asz * sizeof(float)) == 0 && memcmp(b, bcopy, bsz * sizeof(float)) == 0,
          "%s: modified A or B", label);
    if (!same_bits(p1, p2, mn, &where))
        note("%s: workspace=NULL and workspace differ at [%zu]: %.9g vs %.9g", label, where,
             (double)p1[where], (double)p2[where]);
    ref_sgemm(g, a, lda, b, ldb, c0, ldc, ref);
    check_close(label, p1, ref, mn, tol, 0, NULL);

    if (!is_scalar()) {
        memcpy(c2, c0, csz * sizeof(float));
        if (to_scalar()) {
            s2 = nn_sgemm(g->ta ? NN_TRANSPOSE : NN_NO_TRANSPOSE, g->tb ? NN_TRANSPOSE : NN_NO_TRANSPOSE,
                          g->m, g->n, g->k, g->alpha, a, lda, b, ldb, g->beta, c2, ldc, NULL, 0);
            back();
            for (i = 0; i < g->m; i++) memcpy(p2 + (size_t)i * g->n, c2 + (size_t)i * ldc, (size_t)g->n * sizeof(float));
            CHECK(s2 == NN_OK, "%s: scalar backend status %s", label, nn_status_name(s2));
            check_vs_scalar(label, p1, p2, mn, tol, 0, NULL);
        }
    }
    ffree(abase); ffree(bbase); ffree(c0); ffree(c1base); ffree(c2base); ffree(p1); ffree(p2);
    ffree(acopy); ffree(bcopy);
    free(ref);
}

static const float ALPHAS[] = { 1.0f, -1.0f, 0.5f, 2.5f, 0.0f, -0.75f };
static const float BETAS[] = { 0.0f, 1.0f, -0.5f, 0.25f, 0.0f };

static float *gemm_workspace(void)
{
    return falloc(nn_sgemm_workspace_size());
}

/* One dimension swept over 1..40 with the other two fixed, every transpose combination. */
static void test_sgemm_sweeps(void **state)
{
    float *ws = gemm_workspace();
    int s, which, t, count = 0;
    (void)state;
    for (s = 1; s <= 40; s++)
        for (which = 0; which < 3; which++)
            for (t = 0; t < 4; t++) {
                gemm_case g;
                if (quick() && t != (s + which) % 4) continue;
                g.ta = t & 1; g.tb = t >> 1;
                g.m = which == 0 ? s : which == 1 ? 9 : 17;
                g.n = which == 1 ? s : which == 2 ? 9 : 17;
                g.k = which == 2 ? s : which == 0 ? 9 : 17;
                g.alpha = ALPHAS[count % 6];
                g.beta = BETAS[count % 5];
                g.pa = count % 3; g.pb = (count / 3) % 3; g.pc = (count / 9) % 3;
                g_misalign = count % 7 == 3 ? 1 + count % 3 : 0;
                run_gemm(&g, ws);
                count++;
            }
    ffree(ws);
    g_misalign = 0;
    FINISH();
}

/* Random shapes 1..40 (primes included by chance and on purpose), alpha, beta, paddings. */
static void test_sgemm_random(void **state)
{
    static const int primes[] = { 1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37 };
    float *ws = gemm_workspace();
    int i, cases = quick() ? 80 : 300;
    (void)state;
    for (i = 0; i < cases; i++) {
        gemm_case g;
        g.ta = rnd(0, 1); g.tb = rnd(0, 1);
        if (i % 3 == 0) { g.m = primes[rnd(0, 12)]; g.n = primes[rnd(0, 12)]; g.k = primes[rnd(0, 12)]; }
        else { g.m = rnd(1, 40); g.n = rnd(1, 40); g.k = rnd(1, 40); }
        g.alpha = ALPHAS[rnd(0, 5)];
        g.beta = BETAS[rnd(0, 4)];
        g.pa = rnd(0, 1) ? 0 : rnd(1, 9); g.pb = rnd(0, 1) ? 0 : rnd(1, 9); g.pc = rnd(0, 1) ? 0 : rnd(1, 9);
        g_misalign = i % 4 == 1 ? rnd(1, 3) : 0;
        run_gemm(&g, ws);
    }
    ffree(ws);
    g_misalign = 0;
    FINISH();
}

/* K=1, M=1, N=1, tall-skinny, wide, long K, and a few large ones. */
static void test_sgemm_shapes(void **state)
{
    float *ws = gemm_workspace();
    int q = quick(), i, t;
    gemm_case list[] = {
        /*  ta tb    m      n     k   alpha  beta  pa pb pc */
        { 0, 0,  37,    41,    1,  1.0f, 0.0f, 0, 0, 0 },
        { 1, 1,  37,    41,    1, -1.0f, 1.0f, 3, 0, 2 },
        { 0, 0,   1,   300,   77,  1.0f, 0.0f, 0, 0, 0 },
        { 1, 0,   1,   300,   77,  0.5f, 1.0f, 0, 5, 0 },
        { 0, 0, 300,     1,   77,  1.0f, 0.0f, 0, 0, 0 },
        { 0, 1, 300,     1,   77,  2.0f, 0.5f, 1, 1, 1 },
        { 0, 0,   1,     1,    1,  1.0f, 0.0f, 0, 0, 0 },
        { 1, 1,   1,     1,    1,  3.0f, 2.0f, 0, 0, 0 },
        { 0, 0,   2,     3, q ? 2000 : 5000, 1.0f, 0.0f, 0, 0, 0 },
        { 0, 1,  64,   q ? 200 : 784, 64, 1.0f, 0.0f, 0, 0, 0 },   /* linear layer forward */
        { 1, 0,  q ? 200 : 784, 64, 64, 1.0f, 1.0f, 0, 0, 0 },    /* weight gradient, accumulate */
        { 0, 0,   6, q ? 4096 : 36864, 25, 1.0f, 0.0f, 0, 0, 0 }, /* conv as im2col GEMM */
        { 0, 0, q ? 150 : 300, q ? 67 : 257, q ? 300 : 511, 1.0f, 0.0f, 0, 0, 0 },
        { 1, 1, q ? 150 : 300, q ? 67 : 257, q ? 300 : 511, -0.5f, 0.5f, 1, 2, 3 },
        { 0, 0, 129,   129,  129,  1.0f, 0.0f, 0, 0, 0 },
    };
    (void)state;
    for (i = 0; i < (int)(sizeof list / sizeof list[0]); i++) {
        g_misalign = i % 5 == 4 ? 1 : 0;
        run_gemm(&list[i], ws);
    }
    g_misalign = 0;
    for (t = 0; t < 4; t++) {
        gemm_case tall = { 0, 0, 1000, 3, 7, 1.0f, 0.0f, 0, 0, 0 };
        gemm_case wide = { 0, 0, 3, 1000, 5, 1.0f, 0.0f, 0, 0, 0 };
        tall.ta = wide.ta = t & 1;
        tall.tb = wide.tb = t >> 1;
        tall.beta = t == 3 ? 1.0f : 0.0f;
        wide.alpha = t == 2 ? -2.0f : 1.0f;
        run_gemm(&tall, ws);
        run_gemm(&wide, ws);
    }
    ffree(ws);
    FINISH();
}

/* The workspace contract across nn_set_threads: a workspace of nn_sgemm_workspace_size()
   floats obtained with 1 thread must still be enough after nn_set_threads(4) (or the call
   must not use more than it was given); checked with sentinel cells after the workspace.
   Also: the result does not depend on the thread count (bit for bit). */
static void test_sgemm_threads(void **state)
{
    const int m = 200, n = 300, k = 100, saved = nn_threads();
    size_t size1, i, guard, where;
    float *a = falloc((size_t)m * k), *b = falloc((size_t)k * n), *c1 = falloc((size_t)m * n), *c2 = falloc((size_t)m * n);
    float *ws;
    double *ref = dalloc((size_t)m * n);
    gemm_case g = { 0, 0, 200, 300, 100, 1.0f, 0.0f, 0, 0, 0 };
    nn_status s;
    (void)state;
    nn_test_fill(a, (size_t)m * k, -1, 1);
    nn_test_fill(b, (size_t)k * n, -1, 1);
    ref_sgemm(&g, a, k, b, n, NULL, n, ref);

    CHECK_OK("nn_set_threads", nn_set_threads(1));
    size1 = nn_sgemm_workspace_size();
    guard = 3 * size1 + 64;
    ws = falloc(size1 + guard);
    fill_value(ws + size1, guard, SENTINEL);
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, m, n, k, 1.0f, a, k, b, n, 0.0f, c1, n, NULL, 0);
    CHECK(s == NN_OK, "sgemm 200x300x100 with 1 thread: %s", nn_status_name(s));
    CHECK_OK("nn_set_threads", nn_set_threads(4));
    fill_value(c2, (size_t)m * n, NAN);
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, m, n, k, 1.0f, a, k, b, n, 0.0f, c2, n, ws, size1);
    CHECK(s == NN_OK, "sgemm 200x300x100 with 4 threads: %s", nn_status_name(s));
    for (i = 0; i < guard; i++)
        if (ws[size1 + i] != SENTINEL) {
            note("sgemm NN m=200 n=300 k=100: workspace of nn_sgemm_workspace_size() = %zu floats taken with 1 thread, "
                 "then nn_set_threads(4) (nn_threads() = %d): the call wrote past its end (first at +%zu floats)",
                 size1, nn_threads(), i);
            break;
        }
    check_close("sgemm NN m=200 n=300 k=100 after nn_set_threads(4)", c2, ref, (size_t)m * n, 1e-5 * k + 1e-6, 0, NULL);
    /* thread count does not change the result */
    CHECK_OK("nn_set_threads", nn_set_threads(2));
    fill_value(c2, (size_t)m * n, NAN);
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, m, n, k, 1.0f, a, k, b, n, 0.0f, c2, n, NULL, 0);
    CHECK_OK("nn_set_threads", nn_set_threads(saved));
    if (!same_bits(c1, c2, (size_t)m * n, &where))
        note("sgemm NN m=200 n=300 k=100: 1 thread and 2 threads differ at [%zu]: %.9g vs %.9g", where,
             (double)c1[where], (double)c2[where]);
    check_close("sgemm NN m=200 n=300 k=100 (1 thread)", c1, ref, (size_t)m * n, 1e-5 * k + 1e-6, 0, NULL);
    ffree(a); ffree(b); ffree(c1); ffree(c2); ffree(ws);
    free(ref);
    FINISH();
}

/* Zero sizes, k == 0, and argument errors (which must leave C alone). */
static void test_sgemm_edge(void **state)
{
    float a[64], b[64], c[64], c0[64];
    double ref[64];
    nn_status s;
    int i;
    (void)state;
    nn_test_fill(a, 64, -1, 1);
    nn_test_fill(b, 64, -1, 1);
    nn_test_fill(c0, 64, -1, 1);

    memcpy(c, c0, sizeof c);
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 0, 4, 3, 1.0f, a, 3, b, 4, 0.0f, c, 4, NULL, 0);
    CHECK(s == NN_OK, "sgemm m=0: status %s, want NN_OK", nn_status_name(s));
    CHECK(memcmp(c, c0, sizeof c) == 0, "sgemm m=0 changed C");
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 0, 3, 1.0f, a, 3, b, 1, 0.0f, c, 1, NULL, 0);
    CHECK(s == NN_OK, "sgemm n=0: status %s, want NN_OK", nn_status_name(s));
    CHECK(memcmp(c, c0, sizeof c) == 0, "sgemm n=0 changed C");

    /* k == 0: C = beta*C (the product is an empty sum) */
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 5, 0, 1.0f, a, 1, b, 5, 0.5f, c, 5, NULL, 0);
    CHECK(s == NN_OK, "sgemm k=0: status %s, want NN_OK", nn_status_name(s));
    for (i = 0; i < 20; i++) ref[i] = 0.5 * c0[i];
    check_close("sgemm m=4 n=5 k=0 beta=0.5", c, ref, 20, 1e-7, 0, NULL);
    CHECK(memcmp(c + 20, c0 + 20, 44 * sizeof(float)) == 0, "sgemm k=0 wrote outside C");
    fill_value(c, 20, NAN);
    s = nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 5, 0, 1.0f, a, 1, b, 5, 0.0f, c, 5, NULL, 0);
    CHECK(s == NN_OK, "sgemm k=0 beta=0: status %s", nn_status_name(s));
    for (i = 0; i < 20; i++) ref[i] = 0;
    check_close("sgemm m=4 n=5 k=0 beta=0 (C was NaN)", c, ref, 20, 0, 0, NULL);

    /* argument errors */
#define EXPECT_REJECT(what, call) do { \
        memcpy(c, c0, sizeof c); \
        s = call; \
        CHECK(s != NN_OK, "sgemm %s: status NN_OK, want an error", what); \
        CHECK(memcmp(c, c0, sizeof c) == 0, "sgemm %s: failed but changed C", what); \
    } while (0)
    EXPECT_REJECT("m=-1", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, -1, 4, 3, 1.0f, a, 3, b, 4, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("k=-2", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, -2, 1.0f, a, 3, b, 4, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("NN lda=2 < k=3", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, a, 2, b, 4, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("TN lda=3 < m=4", nn_sgemm(NN_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, a, 3, b, 4, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("NN ldb=3 < n=4", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, a, 3, b, 3, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("NT ldb=2 < k=3", nn_sgemm(NN_NO_TRANSPOSE, NN_TRANSPOSE, 4, 4, 3, 1.0f, a, 3, b, 2, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("ldc=3 < n=4", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, a, 3, b, 4, 0.0f, c, 3, NULL, 0));
    EXPECT_REJECT("a=NULL", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, NULL, 3, b, 4, 0.0f, c, 4, NULL, 0));
    EXPECT_REJECT("c=NULL", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 4, 4, 3, 1.0f, a, 3, b, 4, 0.0f, NULL, 4, NULL, 0));
#undef EXPECT_REJECT
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Convolution
   --------------------------------------------------------------------------------------- */
static int ref_out(int in, int k, int s, int p) { return in + 2 * p < k ? 0 : (in + 2 * p - k) / s + 1; }

#define XI(n, c, h, w) ((((size_t)(n) * sh->in_channels + (c)) * sh->in_height + (h)) * sh->in_width + (w))
#define WI(o, c, i, j) ((((size_t)(o) * sh->in_channels + (c)) * sh->kernel_height + (i)) * sh->kernel_width + (j))
#define YI(n, o, h, w) ((((size_t)(n) * sh->out_channels + (o)) * oh + (h)) * ow + (w))

static void ref_conv_forward(const nn_conv2d_shape *sh, int oh, int ow, const float *x, const float *w,
                             const float *bias, double *y)
{
    int n, o, i, j, c, ki, kj;
    for (n = 0; n < sh->batch; n++) for (o = 0; o < sh->out_channels; o++)
        for (i = 0; i < oh; i++) for (j = 0; j < ow; j++) {
            double s = bias ? bias[o] : 0.0;
            for (c = 0; c < sh->in_channels; c++) for (ki = 0; ki < sh->kernel_height; ki++) for (kj = 0; kj < sh->kernel_width; kj++) {
                int ih = i * sh->stride_height - sh->pad_height + ki, iw = j * sh->stride_width - sh->pad_width + kj;
                if (ih < 0 || ih >= sh->in_height || iw < 0 || iw >= sh->in_width) continue;
                s += (double)x[XI(n, c, ih, iw)] * w[WI(o, c, ki, kj)];
            }
            y[YI(n, o, i, j)] = s;
        }
}
/* The adjoints: dx = sum dy*w over the outputs each input feeds, dw = sum dy*x over the batch. */
static void ref_conv_backward(const nn_conv2d_shape *sh, int oh, int ow, const float *x, const float *w,
                              const float *dy, double *dx, double *dw, double *db)
{
    int n, o, i, j, c, ki, kj;
    size_t nx = (size_t)sh->batch * sh->in_channels * sh->in_height * sh->in_width;
    size_t nw = (size_t)sh->out_channels * sh->in_channels * sh->kernel_height * sh->kernel_width;
    memset(dx, 0, nx * sizeof(double));
    memset(dw, 0, nw * sizeof(double));
    memset(db, 0, (size_t)sh->out_channels * sizeof(double));
    for (n = 0; n < sh->batch; n++) for (o = 0; o < sh->out_channels; o++)
        for (i = 0; i < oh; i++) for (j = 0; j < ow; j++) {
            double g = dy[YI(n, o, i, j)];
            db[o] += g;
            for (c = 0; c < sh->in_channels; c++) for (ki = 0; ki < sh->kernel_height; ki++) for (kj = 0; kj < sh->kernel_width; kj++) {
                int ih = i * sh->stride_height - sh->pad_height + ki, iw = j * sh->stride_width - sh->pad_width + kj;
                if (ih < 0 || ih >= sh->in_height || iw < 0 || iw >= sh->in_width) continue;
                dx[XI(n, c, ih, iw)] += g * w[WI(o, c, ki, kj)];
                dw[WI(o, c, ki, kj)] += g * x[XI(n, c, ih, iw)];
            }
        }
}

static void run_conv(const nn_conv2d_shape *sh, int use_bias, int use_dbias)
{
    int oh = -1, ow = -1, eoh = ref_out(sh->in_height, sh->kernel_height, sh->stride_height, sh->pad_height);
    int eow = ref_out(sh->in_width, sh->kernel_width, sh->stride_width, sh->pad_width);
    size_t nx, nw, ny, nws, k_fwd, k_bwd_data, k_bwd_w;
    float *x, *w, *bias, *y, *y2, *dy, *dx, *dx2, *dw, *dw2, *db, *db2, *ws;
    double *ry, *rdx, *rdw, *rdb, tol;
    nn_status s;
    char label[300];

    snprintf(label, sizeof label, "conv2d N=%d C=%d H=%d W=%d -> O=%d kernel=%dx%d stride=%dx%d pad=%dx%d bias=%s dbias=%s",
             sh->batch, sh->in_channels, sh->in_height, sh->in_width, sh->out_channels, sh->kernel_height,
             sh->kernel_width, sh->stride_height, sh->stride_width, sh->pad_height, sh->pad_width,
             use_bias ? "yes" : "NULL", use_dbias ? "yes" : "NULL");
    s = nn_conv2d_output_size(sh, &oh, &ow);
    if (s != NN_OK || oh != eoh || ow != eow) {
        note("%s: output size %s %dx%d, want %dx%d (%s)", label, nn_status_name(s), oh, ow, eoh, eow, nn_last_error());
        return;
    }
    nx = (size_t)sh->batch * sh->in_channels * sh->in_height * sh->in_width;
    nw = (size_t)sh->out_channels * sh->in_channels * sh->kernel_height * sh->kernel_width;
    ny = (size_t)sh->batch * sh->out_channels * oh * ow;
    nws = nn_conv2d_workspace_size(sh);
    x = falloc(nx); w = falloc(nw); bias = falloc(sh->out_channels); y = falloc(ny); y2 = falloc(ny);
    dy = falloc(ny); dx = falloc(nx); dx2 = falloc(nx); dw = falloc(nw); dw2 = falloc(nw);
    db = falloc(sh->out_channels); db2 = falloc(sh->out_channels); ws = falloc(nws);
    ry = dalloc(ny); rdx = dalloc(nx); rdw = dalloc(nw); rdb = dalloc(sh->out_channels);
    nn_test_fill(x, nx, -1, 1);
    nn_test_fill(w, nw, -1, 1);
    nn_test_fill(bias, sh->out_channels, -1, 1);
    nn_test_fill(dy, ny, -1, 1);
    k_fwd = (size_t)sh->in_channels * sh->kernel_height * sh->kernel_width + 1;
    k_bwd_data = (size_t)sh->out_channels * sh->kernel_height * sh->kernel_width;
    k_bwd_w = (size_t)sh->batch * oh * ow;

    ref_conv_forward(sh, oh, ow, x, w, use_bias ? bias : NULL, ry);
    ref_conv_backward(sh, oh, ow, x, w, dy, rdx, rdw, rdb);

    /* forward, without and with a workspace; the output is pre-filled with NaN */
    tol = 1e-5 * k_fwd * max_abs(x, nx) * max_abs(w, nw) + 1e-6;
    fill_value(y, ny, NAN);
    s = nn_conv2d_forward(sh, x, w, use_bias ? bias : NULL, y, NULL, 0);
    CHECK(s == NN_OK, "%s: forward (workspace NULL) status %s: %s", label, nn_status_name(s), nn_last_error());
    check_close(label, y, ry, ny, tol, 0, NULL);
    fill_value(y2, ny, NAN);
    s = nn_conv2d_forward(sh, x, w, use_bias ? bias : NULL, y2, ws, nws);
    CHECK(s == NN_OK, "%s: forward (workspace) status %s: %s", label, nn_status_name(s), nn_last_error());
    check_close(label, y2, ry, ny, tol, 0, NULL);
    if (!is_scalar()) {
        fill_value(y2, ny, NAN);
        if (to_scalar()) { CHECK_OK(label, nn_conv2d_forward(sh, x, w, use_bias ? bias : NULL, y2, NULL, 0)); back(); }
        check_vs_scalar(label, y, y2, ny, tol, 0, NULL);
    }

    /* backward data (overwrites dx: pre-filled with NaN) */
    tol = 1e-5 * k_bwd_data * max_abs(dy, ny) * max_abs(w, nw) + 1e-6;
    fill_value(dx, nx, NAN);
    s = nn_conv2d_backward_data(sh, dy, w, dx, NULL, 0);
    CHECK(s == NN_OK, "%s: backward_data (workspace NULL) status %s: %s", label, nn_status_name(s), nn_last_error());
    {
        char l2[340];
        snprintf(l2, sizeof l2, "%s backward_data", label);
        check_close(l2, dx, rdx, nx, tol, 0, NULL);
        fill_value(dx2, nx, NAN);
        s = nn_conv2d_backward_data(sh, dy, w, dx2, ws, nws);
        CHECK(s == NN_OK, "%s: status %s: %s", l2, nn_status_name(s), nn_last_error());
        check_close(l2, dx2, rdx, nx, tol, 0, NULL);
        if (!is_scalar()) {
            fill_value(dx2, nx, NAN);
            if (to_scalar()) { CHECK_OK(l2, nn_conv2d_backward_data(sh, dy, w, dx2, NULL, 0)); back(); }
            check_vs_scalar(l2, dx, dx2, nx, tol, 0, NULL);
        }

        /* backward weight (overwrites dw and dbias) */
        snprintf(l2, sizeof l2, "%s backward_weight", label);
        tol = 1e-5 * k_bwd_w * max_abs(dy, ny) * max_abs(x, nx) + 1e-6;
        fill_value(dw, nw, NAN);
        fill_value(db, sh->out_channels, NAN);
        s = nn_conv2d_backward_weight(sh, x, dy, dw, use_dbias ? db : NULL, NULL, 0);
        CHECK(s == NN_OK, "%s: status %s: %s", l2, nn_status_name(s), nn_last_error());
        check_close(l2, dw, rdw, nw, tol, 0, NULL);
        if (use_dbias) {
            char l3[360];
            snprintf(l3, sizeof l3, "%s dbias", l2);
            check_close(l3, db, rdb, sh->out_channels, 1e-5 * k_bwd_w * max_abs(dy, ny) + 1e-6, 0, NULL);
        }
        fill_value(dw2, nw, NAN);
        fill_value(db2, sh->out_channels, NAN);
        s = nn_conv2d_backward_weight(sh, x, dy, dw2, use_dbias ? db2 : NULL, ws, nws);
        CHECK(s == NN_OK, "%s (workspace): status %s: %s", l2, nn_status_name(s), nn_last_error());
        check_close(l2, dw2, rdw, nw, tol, 0, NULL);
        if (use_dbias) check_close(l2, db2, rdb, sh->out_channels, 1e-5 * k_bwd_w * max_abs(dy, ny) + 1e-6, 0, NULL);
        if (!is_scalar()) {
            fill_value(dw2, nw, NAN);
            if (to_scalar()) { CHECK_OK(l2, nn_conv2d_backward_weight(sh, x, dy, dw2, NULL, NULL, 0)); back(); }
            check_vs_scalar(l2, dw, dw2, nw, tol, 0, NULL);
        }
    }
    ffree(x); ffree(w); ffree(bias); ffree(y); ffree(y2); ffree(dy); ffree(dx); ffree(dx2);
    ffree(dw); ffree(dw2); ffree(db); ffree(db2); ffree(ws);
    free(ry); free(rdx); free(rdw); free(rdb);
}

static void test_conv2d_random(void **state)
{
    int i, done = 0, cases = quick() ? 40 : 150;
    (void)state;
    for (i = 0; done < cases; i++) {
        nn_conv2d_shape sh;
        sh.batch = rnd(1, 3); sh.in_channels = rnd(1, 5); sh.in_height = rnd(1, 12); sh.in_width = rnd(1, 12);
        sh.out_channels = rnd(1, 5); sh.kernel_height = rnd(1, 5); sh.kernel_width = rnd(1, 5);
        sh.stride_height = rnd(1, 3); sh.stride_width = rnd(1, 3); sh.pad_height = rnd(0, 2); sh.pad_width = rnd(0, 2);
        if (sh.in_height + 2 * sh.pad_height < sh.kernel_height || sh.in_width + 2 * sh.pad_width < sh.kernel_width)
            continue; /* impossible shapes: test_conv2d_reject */
        run_conv(&sh, i % 2, (i / 2) % 2);
        done++;
    }
    FINISH();
}

/* Layer-sized shapes (LeNet, a 3x3 same-padding block, a 1x1 projection, strided). */
static void test_conv2d_layers(void **state)
{
    int q = quick();
    nn_conv2d_shape list[] = {
        /* N  C   H   W   O  kh kw sh sw ph pw */
        { q ? 2 : 8, 1, 28, 28, 6, 5, 5, 1, 1, 0, 0 },
        { q ? 2 : 8, 6, 12, 12, 16, 5, 5, 1, 1, 0, 0 },
        { 2, q ? 8 : 16, 16, 16, q ? 8 : 16, 3, 3, 1, 1, 1, 1 },
        { 2, 16, 9, 9, 32, 1, 1, 1, 1, 0, 0 },
        { 3, 3, 17, 23, 8, 3, 3, 2, 2, 1, 1 },
        { 1, 2, 31, 7, 3, 7, 3, 3, 1, 2, 0 },
        /* Winograd F(4x4, 3x3) and F(2x2, 3x3) (stride-1 3x3, >= 16 channels each way): several chunks of
           tiles crossing images, odd sizes (padded edge tiles), padding 0 and 2, rows of more
           tiles than one transform call takes */
        { 3, 16, q ? 24 : 30, 30, 16, 3, 3, 1, 1, 1, 1 },
        { 2, 16, 13, 11, 24, 3, 3, 1, 1, 1, 1 },
        { 2, 17, 9, 10, 16, 3, 3, 1, 1, 0, 0 },
        { 1, 16, 7, 7, 20, 3, 3, 1, 1, 2, 2 },
        { 1, 16, 3, 140, 16, 3, 3, 1, 1, 1, 1 },
        { 2, 16, 3, 9, 20, 3, 3, 1, 1, 1, 1 },   /* F(2x2): outputs under 4 rows */
        { 2, 20, 5, 12, 16, 3, 3, 1, 1, 0, 0 },
    };
    int i;
    (void)state;
    for (i = 0; i < (int)(sizeof list / sizeof list[0]); i++) run_conv(&list[i], 1, i % 2);
    FINISH();
}

/* Finite differences of loss = sum(y * r) on one shape: dL/dx = backward_data(r),
   dL/dw = backward_weight(x, r), dL/dbias = sum of r. The convolution is linear in x and w,
   so the central difference is exact up to rounding (h = 0.1: rounding error ~1e-4). */
static void test_conv2d_finite_difference(void **state)
{
    nn_conv2d_shape sh = { 2, 3, 7, 6, 2, 3, 2, 2, 1, 1, 0 };
    int oh, ow;
    size_t nx, nw, ny, i;
    float *x, *w, *b, *y, *r, *dx, *dw, *db;
    const float h = 0.1f;
    double worst = 0;
    (void)state;
    assert_int_equal(nn_conv2d_output_size(&sh, &oh, &ow), NN_OK);
    assert_int_equal(oh, 4);
    assert_int_equal(ow, 5);
    nx = 2 * 3 * 7 * 6; nw = 2 * 3 * 3 * 2; ny = (size_t)2 * 2 * oh * ow;
    x = falloc(nx); w = falloc(nw); b = falloc(2); y = falloc(ny); r = falloc(ny);
    dx = falloc(nx); dw = falloc(nw); db = falloc(2);
    nn_test_fill(x, nx, -1, 1); nn_test_fill(w, nw, -1, 1); nn_test_fill(b, 2, -1, 1); nn_test_fill(r, ny, -1, 1);
    CHECK(nn_conv2d_backward_data(&sh, r, w, dx, NULL, 0) == NN_OK, "conv2d FD: backward_data failed");
    CHECK(nn_conv2d_backward_weight(&sh, x, r, dw, db, NULL, 0) == NN_OK, "conv2d FD: backward_weight failed");
#define LOSS(out) do { size_t q_; out = 0; \
        CHECK(nn_conv2d_forward(&sh, x, w, b, y, NULL, 0) == NN_OK, "conv2d FD: forward failed"); \
        for (q_ = 0; q_ < ny; q_++) out += (double)y[q_] * r[q_]; } while (0)
#define FD_PARAM(arr, count, grad, name) \
    for (i = 0; i < (count); i++) { \
        float keep = arr[i]; double lp, lm, fd, err; \
        arr[i] = keep + h; LOSS(lp); arr[i] = keep - h; LOSS(lm); arr[i] = keep; \
        fd = (lp - lm) / (2.0 * h); err = fabs(fd - grad[i]); \
        if (err > worst) worst = err; \
        CHECK(err <= 1e-3 + 1e-3 * fabs(fd), "conv2d finite difference N=2 C=3 7x6 O=2 k=3x2 s=2x1 p=1x0: d/d%s[%zu] = %.7g by backward, %.7g by finite difference", \
              name, i, (double)grad[i], fd); \
    }
    FD_PARAM(x, nx, dx, "x")
    FD_PARAM(w, nw, dw, "w")
    FD_PARAM(b, (size_t)2, db, "bias")
#undef FD_PARAM
#undef LOSS
    printf("    conv2d finite difference [%s]: max |backward - FD| = %.3g\n", g_backend, worst);
    ffree(x); ffree(w); ffree(b); ffree(y); ffree(r); ffree(dx); ffree(dw); ffree(db);
    FINISH();
}

/* Impossible shapes are rejected and change nothing. */
static void test_conv2d_reject(void **state)
{
    /* N  C  H  W  O kh kw sh sw ph pw */
    static const nn_conv2d_shape bad[] = {
        { 1, 1, 2, 2, 1, 5, 1, 1, 1, 1, 0 },  /* kernel 5 > padded height 4 */
        { 1, 1, 4, 3, 1, 1, 4, 1, 1, 0, 0 },  /* kernel 4 > width 3 */
        { 1, 1, 3, 3, 1, 6, 6, 1, 1, 1, 1 },  /* kernel 6 > padded 5 */
        { 1, 0, 4, 4, 1, 3, 3, 1, 1, 0, 0 },  /* in_channels 0 */
        { 1, 1, 0, 4, 1, 1, 1, 1, 1, 0, 0 },  /* height 0 */
        { 1, 1, 4, -4, 1, 1, 1, 1, 1, 0, 0 }, /* negative width */
        { 1, 1, 4, 4, 0, 3, 3, 1, 1, 0, 0 },  /* out_channels 0 */
        { 1, 1, 4, 4, 1, 0, 3, 1, 1, 0, 0 },  /* kernel height 0 */
        { 1, 1, 4, 4, 1, 3, -1, 1, 1, 0, 0 }, /* negative kernel width */
        { 1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0 },  /* stride 0 */
        { 1, 1, 4, 4, 1, 3, 3, 1, -2, 0, 0 }, /* negative stride */
        { 1, 1, 4, 4, 1, 3, 3, 1, 1, -1, 0 }, /* negative padding */
        { -1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0 }, /* negative batch */
    };
    float x[256], w[256], y[256], y0[256];
    int i, oh, ow;
    nn_status s;
    (void)state;
    nn_test_fill(x, 256, -1, 1);
    nn_test_fill(w, 256, -1, 1);
    nn_test_fill(y0, 256, -1, 1);
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        const nn_conv2d_shape *sh = &bad[i];
        oh = ow = -77;
        s = nn_conv2d_output_size(sh, &oh, &ow);
        CHECK(s != NN_OK, "conv2d_output_size N=%d C=%d H=%d W=%d O=%d kernel=%dx%d stride=%dx%d pad=%dx%d: NN_OK (%dx%d), want an error",
              sh->batch, sh->in_channels, sh->in_height, sh->in_width, sh->out_channels, sh->kernel_height, sh->kernel_width,
              sh->stride_height, sh->stride_width, sh->pad_height, sh->pad_width, oh, ow);
        CHECK(oh == -77 && ow == -77, "conv2d_output_size bad shape #%d failed but wrote the output size (%dx%d)", i, oh, ow);
        memcpy(y, y0, sizeof y);
        s = nn_conv2d_forward(sh, x, w, NULL, y, NULL, 0);
        CHECK(s != NN_OK, "conv2d_forward bad shape #%d: NN_OK, want an error", i);
        CHECK(memcmp(y, y0, sizeof y) == 0, "conv2d_forward bad shape #%d failed but wrote y", i);
    }
    {   /* the boundary: kernel == padded input is fine (1x1 output) */
        nn_conv2d_shape ok = { 1, 1, 2, 3, 1, 4, 5, 1, 1, 1, 1 };
        s = nn_conv2d_output_size(&ok, &oh, &ow);
        CHECK(s == NN_OK && oh == 1 && ow == 1, "conv2d_output_size H=2 W=3 kernel=4x5 pad=1: %s %dx%d, want NN_OK 1x1",
              nn_status_name(s), oh, ow);
    }
    s = nn_conv2d_output_size(NULL, &oh, &ow);
    CHECK(s != NN_OK, "conv2d_output_size(NULL shape): NN_OK, want an error");
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Pooling
   --------------------------------------------------------------------------------------- */
static void pool_label(char *buf, size_t size, const char *kind, const nn_pool2d_shape *p)
{
    snprintf(buf, size, "%s N=%d C=%d H=%d W=%d kernel=%dx%d stride=%dx%d pad=%dx%d", kind, p->batch, p->channels,
             p->in_height, p->in_width, p->kernel_height, p->kernel_width, p->stride_height, p->stride_width,
             p->pad_height, p->pad_width);
}

/* data: 0 uniform, 1 small integers (many ties), 2 all negative (padding must not win) */
static void run_pool(const nn_pool2d_shape *p, int data)
{
    int oh = -1, ow = -1, eoh = ref_out(p->in_height, p->kernel_height, p->stride_height, p->pad_height);
    int eow = ref_out(p->in_width, p->kernel_width, p->stride_width, p->pad_width);
    int n, c, i, j, ki, kj, plane_ok = 1, flat_ok = 1;
    size_t nx, ny, q, first_plane_bad = 0, first_flat_bad = 0;
    float *x, *y, *y2, *dy, *dx, *dx2;
    int32_t *am, *am2;
    double *ry, *rdx, *rya, *rdxa;
    size_t *rarg;
    char label[300], l2[340];
    nn_status s;
    const int H = p->in_height, W = p->in_width;

    s = nn_pool2d_output_size(p, &oh, &ow);
    pool_label(label, sizeof label, data == 1 ? "maxpool2d (ties)" : data == 2 ? "maxpool2d (negative)" : "maxpool2d", p);
    if (s != NN_OK || oh != eoh || ow != eow) {
        note("%s: output size %s %dx%d, want %dx%d (%s)", label, nn_status_name(s), oh, ow, eoh, eow, nn_last_error());
        return;
    }
    nx = (size_t)p->batch * p->channels * H * W;
    ny = (size_t)p->batch * p->channels * oh * ow;
    x = falloc(nx); y = falloc(ny); y2 = falloc(ny); dy = falloc(ny); dx = falloc(nx); dx2 = falloc(nx);
    am = (int32_t *)malloc((ny + 1) * sizeof(int32_t)); am2 = (int32_t *)malloc((ny + 1) * sizeof(int32_t));
    rarg = (size_t *)malloc((ny + 1) * sizeof(size_t));
    ry = dalloc(ny); rdx = dalloc(nx); rya = dalloc(ny); rdxa = dalloc(nx);
    if (!am || !am2 || !rarg) fail_msg("out of memory");
    if (data == 1) for (q = 0; q < nx; q++) x[q] = (float)rnd(-2, 2);
    else if (data == 2) nn_test_fill(x, nx, -5, -1);
    else nn_test_fill(x, nx, -1, 1);
    nn_test_fill(dy, ny, -1, 1);

    /* references: max (first index wins), average (divide by the full window) */
    memset(rdx, 0, nx * sizeof(double));
    memset(rdxa, 0, nx * sizeof(double));
    for (n = 0; n < p->batch; n++) for (c = 0; c < p->channels; c++) {
        size_t plane = ((size_t)n * p->channels + c) * H * W, oplane = ((size_t)n * p->channels + c) * oh * ow;
        for (i = 0; i < oh; i++) for (j = 0; j < ow; j++) {
            double best = -INFINITY, sum = 0;
            size_t arg = 0, o = oplane + (size_t)i * ow + j;
            for (ki = 0; ki < p->kernel_height; ki++) for (kj = 0; kj < p->kernel_width; kj++) {
                int ih = i * p->stride_height - p->pad_height + ki, iw = j * p->stride_width - p->pad_width + kj;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                sum += x[plane + (size_t)ih * W + iw];
                if (x[plane + (size_t)ih * W + iw] > best) { best = x[plane + (size_t)ih * W + iw]; arg = plane + (size_t)ih * W + iw; }
            }
            ry[o] = best;
            rarg[o] = arg;
            rdx[arg] += dy[o];
            rya[o] = sum / (p->kernel_height * p->kernel_width);
            for (ki = 0; ki < p->kernel_height; ki++) for (kj = 0; kj < p->kernel_width; kj++) {
                int ih = i * p->stride_height - p->pad_height + ki, iw = j * p->stride_width - p->pad_width + kj;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                rdxa[plane + (size_t)ih * W + iw] += (double)dy[o] / (p->kernel_height * p->kernel_width);
            }
        }
    }

    /* max forward with and without argmax */
    fill_value(y, ny, NAN);
    for (q = 0; q < ny; q++) am[q] = -5;
    CHECK_OK(label, nn_maxpool2d_forward(p, x, y, am));
    check_close(label, y, ry, ny, 0, 0, NULL);
    fill_value(y2, ny, NAN);
    CHECK_OK(label, nn_maxpool2d_forward(p, x, y2, NULL));
    snprintf(l2, sizeof l2, "%s argmax=NULL", label);
    check_close(l2, y2, ry, ny, 0, 0, NULL);
    /* argmax: the flat index into x, or the index within the (n, c) plane; one for all */
    for (q = 0; q < ny; q++) {
        size_t plane_start = (q / ((size_t)oh * ow)) * H * W;
        if (plane_ok && (size_t)(int64_t)am[q] != rarg[q] - plane_start) { plane_ok = 0; first_plane_bad = q; }
        if (flat_ok && (size_t)(int64_t)am[q] != rarg[q]) { flat_ok = 0; first_flat_bad = q; }
    }
    if (!plane_ok && !flat_ok) {
        q = first_flat_bad > first_plane_bad ? first_flat_bad : first_plane_bad;
        note("%s: argmax[%zu] = %d, want %zu (flat index) or %zu (index in the plane); value there %g, max %g",
             label, q, (int)am[q], rarg[q], rarg[q] - (q / ((size_t)oh * ow)) * H * W, (double)x[rarg[q]], ry[q]);
    }
    /* max backward routes dy to the argmax (overwriting dx) */
    fill_value(dx, nx, NAN);
    snprintf(l2, sizeof l2, "%s backward", label);
    CHECK_OK(l2, nn_maxpool2d_backward(p, dy, am, dx));
    check_close(l2, dx, rdx, nx, 1e-6, 1e-6, NULL);
    if (!is_scalar()) {
        fill_value(y2, ny, NAN);
        fill_value(dx2, nx, NAN);
        for (q = 0; q < ny; q++) am2[q] = -5;
        if (to_scalar()) {
            CHECK_OK(label, nn_maxpool2d_forward(p, x, y2, am2));
            CHECK_OK(label, nn_maxpool2d_backward(p, dy, am, dx2));
            back();
        }
        check_vs_scalar(label, y, y2, ny, 0, 0, NULL);
        CHECK(memcmp(am, am2, ny * sizeof(int32_t)) == 0, "%s: argmax differs from the scalar backend's", label);
        check_vs_scalar(l2, dx, dx2, nx, 1e-6, 1e-6, NULL);
    }

    /* average */
    pool_label(label, sizeof label, "avgpool2d", p);
    {
        double tol = 1e-6 + 1e-6 * p->kernel_height * p->kernel_width * max_abs(x, nx);
        double tolb = 1e-6 + 1e-6 * p->kernel_height * p->kernel_width * max_abs(dy, ny);
        fill_value(y, ny, NAN);
        CHECK_OK(label, nn_avgpool2d_forward(p, x, y));
        check_close(label, y, rya, ny, tol, 0, NULL);
        fill_value(dx, nx, NAN);
        snprintf(l2, sizeof l2, "%s backward", label);
        CHECK_OK(l2, nn_avgpool2d_backward(p, dy, dx));
        check_close(l2, dx, rdxa, nx, tolb, 0, NULL);
        if (!is_scalar()) {
            fill_value(y2, ny, NAN);
            fill_value(dx2, nx, NAN);
            if (to_scalar()) {
                CHECK_OK(label, nn_avgpool2d_forward(p, x, y2));
                CHECK_OK(label, nn_avgpool2d_backward(p, dy, dx2));
                back();
            }
            check_vs_scalar(label, y, y2, ny, tol, 0, NULL);
            check_vs_scalar(l2, dx, dx2, nx, tolb, 0, NULL);
        }
    }
    ffree(x); ffree(y); ffree(y2); ffree(dy); ffree(dx); ffree(dx2);
    free(am); free(am2); free(rarg); free(ry); free(rdx); free(rya); free(rdxa);
}

static void test_pool2d(void **state)
{
    static const nn_pool2d_shape fixed[] = {
        /* N  C   H   W  kh kw sh sw ph pw */
        { 2, 3, 28, 28, 2, 2, 2, 2, 0, 0 },   /* LeNet */
        { 1, 2, 7, 7, 3, 3, 2, 2, 1, 1 },     /* odd size, stride != kernel, padded */
        { 1, 1, 5, 9, 3, 2, 1, 3, 1, 0 },     /* non-square everything */
        { 2, 2, 13, 11, 3, 3, 1, 1, 1, 1 },   /* overlapping windows */
        { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 },
        { 1, 4, 6, 6, 6, 6, 1, 1, 0, 0 },     /* one window */
        { 1, 17, 9, 9, 2, 2, 2, 2, 1, 1 },
        /* the 2x2 stride-2 kernel (nn__maxpool2x2_row_*): output widths around the vector widths */
        { 1, 2, 4, 2, 2, 2, 2, 2, 0, 0 },     /* 1 output per row */
        { 1, 2, 6, 17, 2, 2, 2, 2, 0, 0 },    /* 8 (odd input width: the last column is unused) */
        { 1, 2, 4, 34, 2, 2, 2, 2, 0, 0 },    /* 17 */
        { 1, 1, 4, 50, 2, 2, 2, 2, 0, 0 },    /* 25 */
        { 2, 2, 5, 64, 2, 2, 2, 2, 0, 0 },    /* 32, odd input height */
        { 1, 1, 2, 78, 2, 2, 2, 2, 0, 0 },    /* 39 */
    };
    int i, data, done = 0, cases = quick() ? 30 : 100;
    (void)state;
    for (i = 0; i < (int)(sizeof fixed / sizeof fixed[0]); i++)
        for (data = 0; data < 3; data++) run_pool(&fixed[i], data);
    for (i = 0; done < cases; i++) {
        nn_pool2d_shape p;
        p.batch = rnd(1, 2); p.channels = rnd(1, 4); p.in_height = rnd(1, 13); p.in_width = rnd(1, 13);
        p.kernel_height = rnd(1, 4); p.kernel_width = rnd(1, 4); p.stride_height = rnd(1, 3); p.stride_width = rnd(1, 3);
        p.pad_height = rnd(0, p.kernel_height / 2); p.pad_width = rnd(0, p.kernel_width / 2);
        if (p.in_height + 2 * p.pad_height < p.kernel_height || p.in_width + 2 * p.pad_width < p.kernel_width) continue;
        run_pool(&p, i % 3);
        done++;
    }
    FINISH();
}

/* NaN in max pooling: a NaN wins its window and stays (PyTorch propagates it); among several,
   the first in row-major window order; ties among numbers go to the first too. Every backend
   against this rule written out, for the 2x2 stride-2 kernel at widths around the vector widths
   and for the general path. */
static void test_maxpool2d_nan(void **state)
{
    static const nn_pool2d_shape shapes[] = {
        { 1, 3, 6, 40, 2, 2, 2, 2, 0, 0 }, { 2, 2, 4, 18, 2, 2, 2, 2, 0, 0 }, { 1, 2, 4, 66, 2, 2, 2, 2, 0, 0 },
        { 1, 2, 7, 9, 3, 3, 2, 2, 1, 1 },
    };
    int k;
    (void)state;
    for (k = 0; k < (int)(sizeof shapes / sizeof shapes[0]); k++) {
        const nn_pool2d_shape *p = &shapes[k];
        int oh, ow, plane, i, j, ki, kj, bad = 0;
        size_t nx, ny, q;
        float *x, *y;
        int32_t *am;
        char label[300];
        pool_label(label, sizeof label, "maxpool2d with NaN", p);
        if (nn_pool2d_output_size(p, &oh, &ow) != NN_OK) fail_msg("%s: bad test shape", label);
        nx = (size_t)p->batch * p->channels * p->in_height * p->in_width;
        ny = (size_t)p->batch * p->channels * oh * ow;
        x = falloc(nx);
        y = falloc(ny);
        am = (int32_t *)malloc(ny * sizeof(int32_t));
        if (!am) fail_msg("out of memory");
        for (q = 0; q < nx; q++) x[q] = rnd(0, 9) == 0 ? NAN : (float)rnd(-3, 3); /* ties and NaNs */
        CHECK_OK(label, nn_maxpool2d_forward(p, x, y, am));
        for (plane = 0; plane < p->batch * p->channels && !bad; plane++)
            for (i = 0; i < oh && !bad; i++)
                for (j = 0; j < ow && !bad; j++) {
                    const size_t base = (size_t)plane * p->in_height * p->in_width, o = ((size_t)plane * oh + i) * ow + j;
                    float best = 0.0f;
                    long at = -1;
                    for (ki = 0; ki < p->kernel_height; ki++)
                        for (kj = 0; kj < p->kernel_width; kj++) {
                            const int ih = i * p->stride_height - p->pad_height + ki, iw = j * p->stride_width - p->pad_width + kj;
                            float v;
                            if (ih < 0 || ih >= p->in_height || iw < 0 || iw >= p->in_width) continue;
                            v = x[base + (size_t)ih * p->in_width + iw];
                            if (at < 0 || (isnan(v) && !isnan(best)) || v > best) {
                                best = v;
                                at = (long)(base + (size_t)ih * p->in_width + iw);
                            }
                        }
                    if ((isnan(best) != isnan(y[o])) || (!isnan(best) && best != y[o]) || am[o] != at) {
                        note("%s: output %zu is %g at %d, want %g at %ld", label, o, (double)y[o], (int)am[o], (double)best, at);
                        bad = 1;
                    }
                }
        ffree(x);
        ffree(y);
        free(am);
    }
    FINISH();
}

/* Pooling shapes every check must refuse (nn_pool2d_output_size and each pooling kernel). */
static const nn_pool2d_shape bad_pool_shapes[] = {
    { 1, 1, 3, 3, 4, 1, 1, 1, 0, 0 },  /* kernel 4 > height 3 */
    { 1, 1, 3, 3, 1, 6, 1, 1, 0, 1 },  /* kernel 6 > padded width 5 */
    { 1, 1, 3, 3, 0, 1, 1, 1, 0, 0 },  /* kernel 0 */
    { 1, 1, 3, 3, 2, 2, 0, 1, 0, 0 },  /* stride 0 */
    { 1, 1, 0, 3, 1, 1, 1, 1, 0, 0 },  /* height 0 */
    { 1, 0, 3, 3, 1, 1, 1, 1, 0, 0 },  /* channels 0 */
    { -1, 1, 3, 3, 1, 1, 1, 1, 0, 0 }, /* negative batch */
    { 1, 1, 3, -3, 1, 1, 1, 1, 0, 0 }, /* negative width */
    { 1, 1, 3, 3, 2, 2, 1, 1, -1, 0 }, /* negative padding */
    { 1, 1, 3, 3, 2, 2, 1, 1, 2, 0 },  /* padding more than half the kernel */
};

static void test_pool2d_reject(void **state)
{
    const nn_pool2d_shape *bad = bad_pool_shapes;
    int i, oh, ow;
    nn_status s;
    (void)state;
    for (i = 0; i < (int)(sizeof bad_pool_shapes / sizeof bad_pool_shapes[0]); i++) {
        char label[200];
        pool_label(label, sizeof label, "pool2d_output_size", &bad[i]);
        oh = ow = -77;
        s = nn_pool2d_output_size(&bad[i], &oh, &ow);
        CHECK(s != NN_OK, "%s: NN_OK (%dx%d), want an error", label, oh, ow);
        CHECK(oh == -77 && ow == -77, "%s: failed but wrote the output size (%dx%d)", label, oh, ow);
    }
    {
        nn_pool2d_shape ok = { 1, 1, 7, 8, 3, 2, 2, 3, 1, 1 };
        s = nn_pool2d_output_size(&ok, &oh, &ow);
        CHECK(s == NN_OK && oh == 4 && ow == 3, "pool2d_output_size 7x8 kernel 3x2 stride 2x3 pad 1x1: %s %dx%d, want 4x3",
              nn_status_name(s), oh, ow);
    }
    FINISH();
}

/* Output buffers for the refusal tests: filled with SENTINEL (argmax with -7) before each call. */
#define POOL_BUFFER 64
static void pool_buffers_reset(float *out, int32_t *argmax)
{
    int i;
    fill_value(out, POOL_BUFFER, SENTINEL);
    for (i = 0; i < POOL_BUFFER; i++) argmax[i] = -7;
    nn_set_error(NN_OK, "%s", ""); /* so that a refusal must leave its own message */
}
/* A pooling kernel's refusal: the status wanted, a message, and its output buffers unchanged. */
static void check_refused(const char *label, nn_status got, nn_status want, const float *out, const int32_t *argmax)
{
    int i, changed = 0;
    for (i = 0; i < POOL_BUFFER; i++) changed += out[i] != SENTINEL || argmax[i] != -7;
    CHECK(got == want, "%s: %s, want %s", label, nn_status_name(got), nn_status_name(want));
    CHECK(nn_last_error()[0] != 0, "%s: refused without a message", label);
    CHECK(changed == 0, "%s: refused but changed %d output values", label, changed);
}

/* Each pooling kernel refuses bad shapes and a NULL shape, and each NULL tensor under a valid
   shape, with NN_ERROR_SHAPE or NN_ERROR_ARGUMENT, a message and its outputs untouched. */
static void test_pool2d_kernels_reject(void **state)
{
    const nn_pool2d_shape *bad = bad_pool_shapes;
    static const char *const kernels[] = { "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward",
                                           "avgpool2d_backward" };
    static const nn_pool2d_shape good = { 1, 1, 4, 4, 2, 2, 2, 2, 0, 0 }; /* 16 values in, 4 out */
    const int shapes = (int)(sizeof bad_pool_shapes / sizeof bad_pool_shapes[0]);
    float in[POOL_BUFFER], out[POOL_BUFFER];
    int32_t argmax[POOL_BUFFER];
    char label[240];
    int i, k;
    (void)state;
    nn_test_fill(in, POOL_BUFFER, -1, 1);
    for (i = 0; i <= shapes; i++) {
        const nn_pool2d_shape *p = i < shapes ? &bad[i] : NULL; /* the last round: a NULL shape */
        for (k = 0; k < 4; k++) {
            nn_status got;
            if (p) pool_label(label, sizeof label, kernels[k], p);
            else snprintf(label, sizeof label, "%s(NULL shape)", kernels[k]);
            pool_buffers_reset(out, argmax);
            got = k == 0 ? nn_maxpool2d_forward(p, in, out, argmax)
                : k == 1 ? nn_maxpool2d_backward(p, in, argmax, out)
                : k == 2 ? nn_avgpool2d_forward(p, in, out)
                         : nn_avgpool2d_backward(p, in, out);
            check_refused(label, got, p ? NN_ERROR_SHAPE : NN_ERROR_ARGUMENT, out, argmax);
        }
    }
    for (k = 0; k < 8; k++) {
        static const char *const cases[] = {
            "maxpool2d_forward(x NULL)", "maxpool2d_forward(y NULL)", "maxpool2d_backward(dy NULL)",
            "maxpool2d_backward(argmax NULL)", "maxpool2d_backward(dx NULL)", "avgpool2d_forward(x NULL)",
            "avgpool2d_backward(dy NULL)", "avgpool2d_backward(dx NULL)",
        };
        nn_status got;
        pool_buffers_reset(out, argmax);
        switch (k) {
        case 0: got = nn_maxpool2d_forward(&good, NULL, out, argmax); break;
        case 1: got = nn_maxpool2d_forward(&good, in, NULL, argmax); break;
        case 2: got = nn_maxpool2d_backward(&good, NULL, argmax, out); break;
        case 3: got = nn_maxpool2d_backward(&good, in, NULL, out); break;
        case 4: got = nn_maxpool2d_backward(&good, in, argmax, NULL); break;
        case 5: got = nn_avgpool2d_forward(&good, NULL, out); break;
        case 6: got = nn_avgpool2d_backward(&good, NULL, out); break;
        default: got = nn_avgpool2d_backward(&good, in, NULL); break;
        }
        check_refused(cases[k], got, NN_ERROR_ARGUMENT, out, argmax);
    }
    /* the same buffers with every pointer given: NN_OK and each 2x2 window's maximum */
    pool_buffers_reset(out, argmax);
    CHECK_OK("maxpool2d_forward 4x4, window 2", nn_maxpool2d_forward(&good, in, out, argmax));
    for (i = 0; i < 4; i++) {
        const int top = (i / 2) * 8 + (i % 2) * 2; /* the window's top-left input */
        const float want = fmaxf(fmaxf(in[top], in[top + 1]), fmaxf(in[top + 4], in[top + 5]));
        CHECK(out[i] == want, "maxpool2d_forward 4x4, window 2: output %d is %g, want %g", i, (double)out[i], (double)want);
    }
    CHECK(out[4] == SENTINEL, "maxpool2d_forward 4x4, window 2: wrote past its 4 outputs");
    FINISH();
}

/* Sizes (batch, channels, spatial) every kernel over [batch][channels][spatial] refuses: not
   positive, or a tensor of 2^31 values or more. */
static const int bad_channel_sizes[][3] = {
    { 0, 1, 4 }, { 1, 0, 4 }, { 1, 1, 0 }, { -1, 1, 4 }, { 1, -2, 4 }, { 1, 1, -4 }, { 65536, 65536, 1 },
    { 1, 2, INT_MAX },
};
#define BAD_CHANNEL_SIZES ((int)(sizeof bad_channel_sizes / sizeof bad_channel_sizes[0]))

/* The global average pool refuses sizes that are not positive, a tensor of 2^31 values or more,
   and NULL tensors, in both directions, with its output untouched. */
static void test_global_avgpool_reject(void **state)
{
    const int (*sizes)[3] = bad_channel_sizes, shapes = BAD_CHANNEL_SIZES;
    float in[POOL_BUFFER], out[POOL_BUFFER];
    int32_t untouched[POOL_BUFFER];
    char label[200];
    int i, backward;
    (void)state;
    nn_test_fill(in, POOL_BUFFER, -1, 1);
    for (backward = 0; backward < 2; backward++) {
        const char *name = backward ? "global_avgpool_backward" : "global_avgpool_forward";
        /* after the bad sizes, two rounds of a valid 2 x 3 x 4 tensor: input NULL, then output NULL */
        for (i = 0; i < shapes + 2; i++) {
            const int batch = i < shapes ? sizes[i][0] : 2, channels = i < shapes ? sizes[i][1] : 3;
            const int spatial = i < shapes ? sizes[i][2] : 4;
            const float *x = i == shapes ? NULL : in;
            float *y = i == shapes + 1 ? NULL : out;
            nn_status got;
            snprintf(label, sizeof label, "%s(batch %d, channels %d, spatial %d%s)", name, batch, channels, spatial,
                     i < shapes ? "" : x ? ", output NULL" : ", input NULL");
            pool_buffers_reset(out, untouched);
            got = backward ? nn_global_avgpool_backward(batch, channels, spatial, x, y)
                           : nn_global_avgpool_forward(batch, channels, spatial, x, y);
            check_refused(label, got, i < shapes ? NN_ERROR_SHAPE : NN_ERROR_ARGUMENT, out, untouched);
        }
    }
    FINISH();
}

static void test_global_avgpool(void **state)
{
    static const int spatials[] = { 1, 2, 3, 7, 8, 16, 17, 49, 64, 100, 1000 };
    int si, b, c, s, rows;
    (void)state;
    for (si = 0; si < (int)(sizeof spatials / sizeof spatials[0]); si++)
        for (rows = 0; rows < 3; rows++) {
            int batch = 1 + rows, channels = 1 + (si * 3 + rows * 5) % 9, sp = spatials[si];
            size_t nx = (size_t)batch * channels * sp, ny = (size_t)batch * channels;
            float *x = falloc(nx), *y = falloc(ny + GUARD), *dy = falloc(ny), *dx = falloc(nx + GUARD), *t = falloc(nx + GUARD);
            double *ry = dalloc(ny), *rdx = dalloc(nx), tol;
            char label[200], l2[240];
            snprintf(label, sizeof label, "global_avgpool batch=%d channels=%d spatial=%d", batch, channels, sp);
            nn_test_fill(x, nx, -1, 1);
            nn_test_fill(dy, ny, -1, 1);
            for (b = 0; b < batch; b++) for (c = 0; c < channels; c++) {
                double sum = 0;
                size_t o = (size_t)b * channels + c;
                for (s = 0; s < sp; s++) sum += x[o * sp + s];
                ry[o] = sum / sp;
                for (s = 0; s < sp; s++) rdx[o * sp + s] = (double)dy[o] / sp;
            }
            tol = 1e-6 + 1e-5 * max_abs(x, nx);
            fill_value(y, ny, NAN); set_guard(y, ny);
            CHECK_OK(label, nn_global_avgpool_forward(batch, channels, sp, x, y));
            check_close(label, y, ry, ny, tol, 0, NULL);
            check_guard(label, y, ny);
            snprintf(l2, sizeof l2, "%s backward", label);
            fill_value(dx, nx, NAN); set_guard(dx, nx);
            CHECK_OK(l2, nn_global_avgpool_backward(batch, channels, sp, dy, dx));
            check_close(l2, dx, rdx, nx, 0, 1.2e-7, NULL);
            check_guard(l2, dx, nx);
            if (!is_scalar()) {
                if (to_scalar()) { CHECK_OK(label, nn_global_avgpool_forward(batch, channels, sp, x, t)); back(); }
                check_vs_scalar(label, y, t, ny, tol, 0, NULL);
                if (to_scalar()) { CHECK_OK(l2, nn_global_avgpool_backward(batch, channels, sp, dy, t)); back(); }
                check_vs_scalar(l2, dx, t, nx, 0, 1.2e-7, NULL);
            }
            ffree(x); ffree(y); ffree(dy); ffree(dx); ffree(t); free(ry); free(rdx);
        }
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Activations, exp, tanh
   --------------------------------------------------------------------------------------- */
typedef struct act_variant { nn_activation kind; float param; const char *name; } act_variant;
static const act_variant ACTS[] = {
    { NN_ACTIVATION_IDENTITY, 0.0f, "identity" },
    { NN_ACTIVATION_RELU, 0.0f, "relu" },
    { NN_ACTIVATION_LEAKY_RELU, 0.01f, "leaky_relu(0.01)" },
    { NN_ACTIVATION_LEAKY_RELU, 0.2f, "leaky_relu(0.2)" },
    { NN_ACTIVATION_SIGMOID, 0.0f, "sigmoid" },
    { NN_ACTIVATION_TANH, 0.0f, "tanh" },
    { NN_ACTIVATION_SCALED_TANH, 0.0f, "scaled_tanh" },
};
#define NACTS ((int)(sizeof ACTS / sizeof ACTS[0]))

static double act_ref(const act_variant *a, double x)
{
    switch (a->kind) {
    case NN_ACTIVATION_IDENTITY: return x;
    case NN_ACTIVATION_RELU: return x > 0 ? x : 0.0;
    case NN_ACTIVATION_LEAKY_RELU: return x > 0 ? x : (double)a->param * x;
    case NN_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case NN_ACTIVATION_TANH: return tanh(x);
    case NN_ACTIVATION_SCALED_TANH: return 1.7159 * tanh(2.0 * x / 3.0);
    case NN_ACTIVATION_COUNT: break; /* not an activation */
    }
    return NAN;
}
static double act_dref(const act_variant *a, double x)
{
    double t;
    switch (a->kind) {
    case NN_ACTIVATION_IDENTITY: return 1.0;
    case NN_ACTIVATION_RELU: return x > 0 ? 1.0 : 0.0;
    case NN_ACTIVATION_LEAKY_RELU: return x > 0 ? 1.0 : (double)a->param;
    case NN_ACTIVATION_SIGMOID: t = 1.0 / (1.0 + exp(-x)); return t * (1 - t);
    case NN_ACTIVATION_TANH: t = tanh(x); return 1 - t * t;
    case NN_ACTIVATION_SCALED_TANH: t = tanh(2.0 * x / 3.0); return 1.7159 * 2.0 / 3.0 * (1 - t * t);
    case NN_ACTIVATION_COUNT: break; /* not an activation */
    }
    return NAN;
}
static int act_smooth(const act_variant *a)
{
    return a->kind == NN_ACTIVATION_SIGMOID || a->kind == NN_ACTIVATION_TANH || a->kind == NN_ACTIVATION_SCALED_TANH;
}
static double act_rtol(const act_variant *a)
{
    return a->kind == NN_ACTIVATION_SCALED_TANH ? 1.5e-6 : act_smooth(a) ? 1e-6 : 1.2e-7;
}

static void run_activation(const act_variant *a, size_t n, float range)
{
    size_t off = n % 4 == 1 ? 1 + n % 3 : 0; /* some buffers start off a 64-byte boundary */
    float *xb = falloc(n + GUARD + off), *yb = falloc(n + GUARD + off), *yf = falloc(n + GUARD), *dy = falloc(n + GUARD);
    float *dxb = falloc(n + GUARD + off), *t = falloc(n + GUARD);
    float *x = xb + off, *y = yb + off, *dx = dxb + off;
    double *ry = dalloc(n), *rdx = dalloc(n), *tol = dalloc(n), rtol = act_rtol(a), brtol;
    size_t i;
    char label[160], l2[200];
    snprintf(label, sizeof label, "activation_forward %s n=%zu%s", a->name, n, off ? " misaligned" : "");
    snprintf(l2, sizeof l2, "activation_backward %s n=%zu%s", a->name, n, off ? " misaligned" : "");
    nn_test_fill(x, n, -range, range);
    nn_test_fill(dy, n, -2, 2);
    for (i = 0; i < n; i++) {
        if (x[i] == 0.0f) x[i] = 0.5f; /* the derivative of relu at 0 is a convention */
        ry[i] = act_ref(a, x[i]);
        yf[i] = (float)ry[i];
        rdx[i] = act_dref(a, x[i]) * dy[i];
        tol[i] = act_smooth(a) ? 4e-6 * fabs(dy[i]) : 0.0;
    }
    brtol = act_smooth(a) ? 1e-5 : 1.2e-7;

    fill_value(y, n, NAN); set_guard(y, n);
    nn_activation_forward(a->kind, a->param, n, x, y);
    check_close(label, y, ry, n, 0, rtol, NULL);
    check_guard(label, y, n);
    /* y == x */
    memcpy(t, x, n * sizeof(float)); set_guard(t, n);
    nn_activation_forward(a->kind, a->param, n, t, t);
    {
        char l3[240];
        snprintf(l3, sizeof l3, "%s (y aliases x)", label);
        check_close(l3, t, ry, n, 0, rtol, NULL);
        check_guard(l3, t, n);
    }
    fill_value(dx, n, NAN); set_guard(dx, n);
    nn_activation_backward(a->kind, a->param, n, x, yf, dy, dx);
    check_close(l2, dx, rdx, n, 0, brtol, tol);
    check_guard(l2, dx, n);
    /* dx == dy */
    memcpy(t, dy, n * sizeof(float)); set_guard(t, n);
    nn_activation_backward(a->kind, a->param, n, x, yf, t, t);
    {
        char l3[240];
        snprintf(l3, sizeof l3, "%s (dx aliases dy)", l2);
        check_close(l3, t, rdx, n, 0, brtol, tol);
        check_guard(l3, t, n);
    }
    if (!is_scalar() && n > 0) {
        if (to_scalar()) { nn_activation_forward(a->kind, a->param, n, x, t); back(); }
        check_vs_scalar(label, y, t, n, 0, rtol, NULL);
        if (to_scalar()) { nn_activation_backward(a->kind, a->param, n, x, yf, dy, t); back(); }
        check_vs_scalar(l2, dx, t, n, 0, brtol, tol);
    }
    ffree(xb); ffree(yb); ffree(yf); ffree(dy); ffree(dxb); ffree(t);
    free(ry); free(rdx); free(tol);
}

static void test_activations(void **state)
{
    int k;
    size_t n;
    (void)state;
    for (k = 0; k < NACTS; k++) {
        for (n = 0; n <= 70; n++) run_activation(&ACTS[k], n, 6.0f);
        run_activation(&ACTS[k], 100000, 10.0f);
    }
    FINISH();
}

/* Largest relative error of f over x[0..n) against ref, with a floor for tiny references. */
typedef void (*vec_fn)(size_t, const float *, float *);
static void sigmoid_fn(size_t n, const float *x, float *y) { nn_activation_forward(NN_ACTIVATION_SIGMOID, 0.0f, n, x, y); }
static void scaled_tanh_fn(size_t n, const float *x, float *y) { nn_activation_forward(NN_ACTIVATION_SCALED_TANH, 0.0f, n, x, y); }

static void sweep(const char *name, vec_fn f, double (*ref)(double), const float *x, size_t n, double rtol)
{
    float *y = falloc(n + GUARD), *t = NULL;
    double *r = dalloc(n), worst = 0;
    size_t i, wi = 0;
    char label[200];
    snprintf(label, sizeof label, "%s sweep over [%g, %g], %zu points", name, (double)x[0], (double)x[n - 1], n);
    for (i = 0; i < n; i++) r[i] = ref(x[i]);
    fill_value(y, n, NAN); set_guard(y, n);
    f(n, x, y);
    for (i = 0; i < n; i++) {
        double e = r[i] != 0 ? fabs(y[i] - r[i]) / fabs(r[i]) : fabs((double)y[i]);
        if (!(e <= worst)) { worst = e; wi = i; }
    }
    printf("    %s [%s]: max relative error %.3g at x=%.9g\n", label, g_backend, worst, (double)x[wi]);
    check_close(label, y, r, n, 1e-38, rtol, NULL);
    check_guard(label, y, n);
    if (!is_scalar()) {
        t = falloc(n);
        if (to_scalar()) { f(n, x, t); back(); }
        check_vs_scalar(label, y, t, n, 1e-38, rtol, NULL);
        ffree(t);
    }
    ffree(y);
    free(r);
}
static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }
static double scaled_tanh_d(double x) { return 1.7159 * tanh(2.0 * x / 3.0); }

static float *linspace(double lo, double hi, size_t n)
{
    float *x = falloc(n + GUARD);
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * (double)i / (double)(n - 1));
    return x;
}
/* +-10^e for e over [lo, hi], sorted ascending by magnitude, alternating signs */
static float *logspace(double lo, double hi, size_t n)
{
    float *x = falloc(n + GUARD);
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)((i % 2 ? -1 : 1) * pow(10.0, lo + (hi - lo) * (double)i / (double)(n - 1)));
    return x;
}

static void test_vec_exp_tanh_sigmoid_accuracy(void **state)
{
    size_t n = quick() ? ((size_t)1 << 18) : ((size_t)1 << 21);
    float *x;
    (void)state;
    x = linspace(-87.0, 88.0, n);
    sweep("vec_exp", nn_vec_exp, exp, x, n, 1e-6);
    ffree(x);
    x = linspace(-1e-3, 1e-3, 4097);
    sweep("vec_exp near 0", nn_vec_exp, exp, x, 4097, 1e-6);
    ffree(x);
    x = linspace(-20.0, 20.0, n);
    sweep("vec_tanh", nn_vec_tanh, tanh, x, n, 1e-6);
    ffree(x);
    x = logspace(-37.0, 0.0, 20001);
    sweep("vec_tanh tiny (|x| from 1e-37 to 1)", nn_vec_tanh, tanh, x, 20001, 1e-6);
    ffree(x);
    x = linspace(-87.0, 88.0, n);
    sweep("sigmoid", sigmoid_fn, sigmoid_d, x, n, 1e-6);
    ffree(x);
    x = linspace(-20.0, 20.0, n / 4);
    sweep("scaled_tanh", scaled_tanh_fn, scaled_tanh_d, x, n / 4, 1.5e-6);
    ffree(x);
    FINISH();
}

/* NaN in -> NaN out (without touching the neighbours), huge finite inputs give the limits. */
static void test_special_values(void **state)
{
    enum { N = 37 };
    static const size_t nan_at[] = { 0, 5, 16, 17, 36 };
    float x[N + GUARD], y[N + GUARD];
    size_t i, j;
    int f;
    (void)state;
    for (f = 0; f < 4; f++) {
        static const char *names[] = { "vec_exp", "vec_tanh", "sigmoid", "scaled_tanh" };
        static double (*const refs[])(double) = { exp, tanh, sigmoid_d, scaled_tanh_d };
        nn_test_fill(x, N, -3, 3);
        for (j = 0; j < sizeof nan_at / sizeof nan_at[0]; j++) x[nan_at[j]] = NAN;
        fill_value(y, N, 0.0f); set_guard(y, N);
        if (f == 0) nn_vec_exp(N, x, y);
        else if (f == 1) nn_vec_tanh(N, x, y);
        else if (f == 2) sigmoid_fn(N, x, y);
        else scaled_tanh_fn(N, x, y);
        for (i = 0; i < N; i++) {
            if (isnan(x[i])) CHECK(isnan(y[i]), "%s(NaN) at [%zu] of %d = %g, want NaN", names[f], i, N, (double)y[i]);
            else {
                double r = refs[f](x[i]);
                CHECK(fabs(y[i] - r) <= 2e-6 * fabs(r), "%s(%g) next to NaNs = %.9g, want %.9g", names[f], (double)x[i], (double)y[i], r);
            }
        }
        check_guard(names[f], y, N);
    }
    {   /* huge and infinite inputs */
        static const float big[] = { 1e30f, -1e30f, FLT_MAX, -FLT_MAX, 100.0f, -100.0f, 89.0f, -89.0f };
        const int nb = (int)(sizeof big / sizeof big[0]);
        float in[16], out[16];
        int k;
        for (k = 0; k < nb; k++) in[k] = big[k];
        in[nb] = INFINITY; in[nb + 1] = -INFINITY;
        for (f = 0; f < 3; f++) {
            const char *name = f == 0 ? "vec_tanh" : f == 1 ? "sigmoid" : "scaled_tanh";
            double lim = f == 2 ? 1.7159 : 1.0;
            fill_value(out, 16, NAN);
            if (f == 0) nn_vec_tanh((size_t)nb + 2, in, out);
            else if (f == 1) sigmoid_fn((size_t)nb + 2, in, out);
            else scaled_tanh_fn((size_t)nb + 2, in, out);
            for (k = 0; k < nb + 2; k++) {
                double want = in[k] > 0 ? lim : f == 1 ? 0.0 : -lim;
                CHECK(isfinite(out[k]) && fabs(out[k] - want) <= 1e-6 * lim, "%s(%g) = %.9g, want %.9g",
                      name, (double)in[k], (double)out[k], want);
            }
        }
        fill_value(out, 16, NAN);
        nn_vec_exp((size_t)nb + 2, in, out);
        for (k = 0; k < nb + 2; k++) {
            if (in[k] > 0) CHECK(out[k] >= 1e38f, "vec_exp(%g) = %g, want >= 1e38 (or inf)", (double)in[k], (double)out[k]);
            else CHECK(out[k] >= 0.0f && out[k] <= FLT_MIN, "vec_exp(%g) = %g, want within [0, FLT_MIN]", (double)in[k], (double)out[k]);
        }
        /* exp and tanh in place */
        for (k = 0; k < 16; k++) in[k] = (float)(k - 8) * 0.37f;
        memcpy(out, in, sizeof out);
        nn_vec_exp(16, out, out);
        for (k = 0; k < 16; k++) CHECK(fabs(out[k] - exp(in[k])) <= 1e-6 * exp(in[k]), "vec_exp in place (%g) = %.9g", (double)in[k], (double)out[k]);
        memcpy(out, in, sizeof out);
        nn_vec_tanh(16, out, out);
        for (k = 0; k < 16; k++) CHECK(fabs(out[k] - tanh(in[k])) <= 1e-6 * fabs(tanh(in[k])) + 1e-38, "vec_tanh in place (%g) = %.9g", (double)in[k], (double)out[k]);
    }
    /* exp(0) and tanh(0) exactly */
    x[0] = 0.0f;
    nn_vec_exp(1, x, y);
    CHECK(y[0] == 1.0f, "vec_exp(0) = %.9g, want 1", (double)y[0]);
    nn_vec_tanh(1, x, y);
    CHECK(y[0] == 0.0f, "vec_tanh(0) = %.9g, want 0", (double)y[0]);
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Softmax, log-softmax, cross-entropy
   --------------------------------------------------------------------------------------- */
/* row-wise softmax and log-softmax in double */
static void ref_softmax(int rows, int cols, const float *x, double *p, double *lp)
{
    int r, c;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double m = -INFINITY, s = 0;
        for (c = 0; c < cols; c++) if (xr[c] > m) m = xr[c];
        for (c = 0; c < cols; c++) s += exp((double)xr[c] - m);
        for (c = 0; c < cols; c++) {
            if (p) p[(size_t)r * cols + c] = exp((double)xr[c] - m) / s;
            if (lp) lp[(size_t)r * cols + c] = ((double)xr[c] - m) - log(s);
        }
    }
}
/* logits: kind 0 in [-5, 5]; 1 offset by +-1e4 per row; 2 rows spanning [-1e4, 1e4] */
static void make_logits(float *x, int rows, int cols, int kind)
{
    int r, c;
    nn_test_fill(x, (size_t)rows * cols, -5, 5);
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            float *v = &x[(size_t)r * cols + c];
            if (kind == 1) *v += (r % 2 ? -1e4f : 1e4f);
            else if (kind == 2 && c % 3 == 0) *v = (c / 3) % 2 ? -1e4f + *v : 1e4f + *v;
        }
}

static void run_softmax(int rows, int cols, int kind)
{
    size_t n = (size_t)rows * cols, i;
    float *x = falloc(n + GUARD), *y = falloc(n + GUARD), *t = falloc(n + GUARD), *yf = falloc(n), *lyf = falloc(n);
    float *dy = falloc(n), *dx = falloc(n + GUARD);
    double *p = dalloc(n), *lp = dalloc(n), *rdx = dalloc(n), *tol = dalloc(n);
    int r, c;
    char label[200];
    static const char *kinds[] = { "logits in [-5,5]", "logits +-1e4", "logits spanning +-1e4" };

    make_logits(x, rows, cols, kind);
    nn_test_fill(dy, n, -1, 1);
    ref_softmax(rows, cols, x, p, lp);
    for (i = 0; i < n; i++) { yf[i] = (float)p[i]; lyf[i] = (float)lp[i]; }

    /* softmax forward, also in place */
    snprintf(label, sizeof label, "softmax_forward rows=%d cols=%d %s", rows, cols, kinds[kind]);
    fill_value(y, n, NAN); set_guard(y, n);
    nn_softmax_forward(rows, cols, x, y);
    check_close(label, y, p, n, 1e-8, 1e-5, NULL);
    check_guard(label, y, n);
    memcpy(t, x, n * sizeof(float)); set_guard(t, n);
    nn_softmax_forward(rows, cols, t, t);
    strcat(label, " (in place)");
    check_close(label, t, p, n, 1e-8, 1e-5, NULL);
    check_guard(label, t, n);
    if (!is_scalar()) {
        if (to_scalar()) { nn_softmax_forward(rows, cols, x, t); back(); }
        check_vs_scalar(label, y, t, n, 1e-8, 1e-5, NULL);
    }
    /* log-softmax forward */
    snprintf(label, sizeof label, "log_softmax_forward rows=%d cols=%d %s", rows, cols, kinds[kind]);
    fill_value(y, n, NAN); set_guard(y, n);
    nn_log_softmax_forward(rows, cols, x, y);
    check_close(label, y, lp, n, 5e-6, 1e-6, NULL);
    check_guard(label, y, n);
    memcpy(t, x, n * sizeof(float)); set_guard(t, n);
    nn_log_softmax_forward(rows, cols, t, t);
    strcat(label, " (in place)");
    check_close(label, t, lp, n, 5e-6, 1e-6, NULL);
    if (!is_scalar()) {
        if (to_scalar()) { nn_log_softmax_forward(rows, cols, x, t); back(); }
        check_vs_scalar(label, y, t, n, 5e-6, 1e-6, NULL);
    }

    /* softmax backward: dx = p * (dy - <dy, p>), analytic Jacobian in double */
    for (r = 0; r < rows; r++) {
        double dot = 0, maxdy = 0;
        for (c = 0; c < cols; c++) {
            dot += (double)dy[(size_t)r * cols + c] * p[(size_t)r * cols + c];
            if (fabs(dy[(size_t)r * cols + c]) > maxdy) maxdy = fabs(dy[(size_t)r * cols + c]);
        }
        for (c = 0; c < cols; c++) {
            i = (size_t)r * cols + c;
            rdx[i] = p[i] * (dy[i] - dot);
            tol[i] = 1e-6 * maxdy * (1.0 + p[i] * cols);
        }
    }
    snprintf(label, sizeof label, "softmax_backward rows=%d cols=%d %s", rows, cols, kinds[kind]);
    fill_value(dx, n, NAN); set_guard(dx, n);
    nn_softmax_backward(rows, cols, yf, dy, dx);
    check_close(label, dx, rdx, n, 0, 1e-5, tol);
    check_guard(label, dx, n);
    if (!is_scalar()) {
        if (to_scalar()) { nn_softmax_backward(rows, cols, yf, dy, t); back(); }
        check_vs_scalar(label, dx, t, n, 0, 1e-5, tol);
    }
    /* log-softmax backward: dx = dy - p * sum(dy) */
    for (r = 0; r < rows; r++) {
        double sum = 0, maxdy = 0;
        for (c = 0; c < cols; c++) {
            sum += dy[(size_t)r * cols + c];
            if (fabs(dy[(size_t)r * cols + c]) > maxdy) maxdy = fabs(dy[(size_t)r * cols + c]);
        }
        for (c = 0; c < cols; c++) {
            i = (size_t)r * cols + c;
            rdx[i] = dy[i] - p[i] * sum;
            tol[i] = 1e-6 * maxdy + p[i] * (2e-6 * fabs(sum) + 1e-7 * cols * maxdy);
        }
    }
    snprintf(label, sizeof label, "log_softmax_backward rows=%d cols=%d %s", rows, cols, kinds[kind]);
    fill_value(dx, n, NAN); set_guard(dx, n);
    nn_log_softmax_backward(rows, cols, lyf, dy, dx);
    check_close(label, dx, rdx, n, 0, 1e-5, tol);
    check_guard(label, dx, n);
    if (!is_scalar()) {
        if (to_scalar()) { nn_log_softmax_backward(rows, cols, lyf, dy, t); back(); }
        check_vs_scalar(label, dx, t, n, 0, 1e-5, tol);
    }
    ffree(x); ffree(y); ffree(t); ffree(yf); ffree(lyf); ffree(dy); ffree(dx);
    free(p); free(lp); free(rdx); free(tol);
}

static void test_softmax(void **state)
{
    static const int cols_list[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000 };
    int ci, rows, kind;
    (void)state;
    for (ci = 0; ci < (int)(sizeof cols_list / sizeof cols_list[0]); ci++)
        for (rows = 1; rows <= 4; rows += 3)
            for (kind = 0; kind < 3; kind++) run_softmax(rows, cols_list[ci], kind);
    FINISH();
}

/* Finite differences through the library's own forward: L = sum(r * f(x)). */
static void test_softmax_finite_difference(void **state)
{
    enum { R = 2, C = 7 };
    float x[R * C], y[R * C], r[R * C], g[R * C], yp[R * C], ym[R * C];
    const float h = 1e-2f;
    int which, i, j;
    (void)state;
    for (which = 0; which < 2; which++) {
        const char *name = which ? "log_softmax" : "softmax";
        double worst = 0;
        nn_test_fill(x, R * C, -2, 2);
        nn_test_fill(r, R * C, -1, 1);
        if (which) { nn_log_softmax_forward(R, C, x, y); nn_log_softmax_backward(R, C, y, r, g); }
        else { nn_softmax_forward(R, C, x, y); nn_softmax_backward(R, C, y, r, g); }
        for (i = 0; i < R * C; i++) {
            float keep = x[i];
            double lp = 0, lm = 0, fd;
            x[i] = keep + h;
            if (which) nn_log_softmax_forward(R, C, x, yp); else nn_softmax_forward(R, C, x, yp);
            x[i] = keep - h;
            if (which) nn_log_softmax_forward(R, C, x, ym); else nn_softmax_forward(R, C, x, ym);
            x[i] = keep;
            for (j = 0; j < R * C; j++) { lp += (double)r[j] * yp[j]; lm += (double)r[j] * ym[j]; }
            fd = (lp - lm) / (2.0 * h);
            if (fabs(fd - g[i]) > worst) worst = fabs(fd - g[i]);
            CHECK(fabs(fd - g[i]) <= 1e-3, "%s_backward rows=%d cols=%d: d/dx[%d] = %.7g, finite difference %.7g",
                  name, R, C, i, (double)g[i], fd);
        }
        printf("    %s finite difference [%s]: max |backward - FD| = %.3g\n", name, g_backend, worst);
    }
    FINISH();
}

/* Huge logits: results stay finite and right. */
static void test_softmax_extremes(void **state)
{
    float x[4], y[4];
    (void)state;
    x[0] = 1e30f; x[1] = 0.0f; x[2] = -1e30f; x[3] = 5.0f;
    nn_softmax_forward(1, 4, x, y);
    CHECK(y[0] == 1.0f && y[1] >= 0.0f && y[1] <= 1e-30f && y[2] >= 0.0f && y[2] <= 1e-30f && y[3] >= 0.0f && y[3] <= 1e-30f,
          "softmax([1e30, 0, -1e30, 5]) = [%g, %g, %g, %g], want [1, 0, 0, 0]", (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
    nn_log_softmax_forward(1, 4, x, y);
    CHECK(fabs(y[0]) <= 1e-6 && fabs(y[1] + 1e30) <= 1e24 && fabs(y[2] + 2e30) <= 2e24 && fabs(y[3] + 1e30) <= 1e24,
          "log_softmax([1e30, 0, -1e30, 5]) = [%g, %g, %g, %g], want [0, -1e30, -2e30, -1e30]",
          (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
    x[0] = FLT_MAX; x[1] = FLT_MAX;
    nn_softmax_forward(1, 2, x, y);
    CHECK(fabs(y[0] - 0.5) <= 1e-6 && fabs(y[1] - 0.5) <= 1e-6, "softmax([FLT_MAX, FLT_MAX]) = [%g, %g], want [0.5, 0.5]",
          (double)y[0], (double)y[1]);
    x[0] = -FLT_MAX; x[1] = FLT_MAX;
    nn_softmax_forward(1, 2, x, y);
    CHECK(y[0] >= 0.0f && y[0] <= 1e-30f && y[1] == 1.0f, "softmax([-FLT_MAX, FLT_MAX]) = [%g, %g], want [0, 1]",
          (double)y[0], (double)y[1]);
    x[0] = -1e30f; x[1] = -1e30f; x[2] = -1e30f;
    nn_softmax_forward(1, 3, x, y);
    CHECK(fabs(y[0] - 1.0 / 3) <= 1e-6 && fabs(y[1] - 1.0 / 3) <= 1e-6 && fabs(y[2] - 1.0 / 3) <= 1e-6,
          "softmax([-1e30, -1e30, -1e30]) = [%g, %g, %g], want thirds", (double)y[0], (double)y[1], (double)y[2]);
    FINISH();
}

static void run_cross_entropy(int rows, int cols, int kind, float grad_scale)
{
    size_t n = (size_t)rows * cols, i;
    float *x = falloc(n), *g = falloc(n + GUARD), *t = falloc(n + GUARD), loss, loss2, loss_s = 0;
    int *labels = (int *)malloc((size_t)rows * sizeof(int)), r;
    double *p = dalloc(n), *lp = dalloc(n), *rg = dalloc(n), ref = 0;
    char label[200];
    static const char *kinds[] = { "logits in [-5,5]", "logits +-1e4", "logits spanning +-1e4" };
    if (!labels) fail_msg("out of memory");
    make_logits(x, rows, cols, kind);
    for (r = 0; r < rows; r++) labels[r] = rnd(0, cols - 1);
    ref_softmax(rows, cols, x, p, lp);
    for (r = 0; r < rows; r++) ref -= lp[(size_t)r * cols + labels[r]];
    ref /= rows;
    for (i = 0; i < n; i++) rg[i] = grad_scale * (p[i] - ((int)(i % cols) == labels[i / cols] ? 1.0 : 0.0));
    snprintf(label, sizeof label, "softmax_cross_entropy rows=%d cols=%d %s grad_scale=%g", rows, cols, kinds[kind], (double)grad_scale);

    fill_value(g, n, NAN); set_guard(g, n);
    loss = nn_softmax_cross_entropy(rows, cols, x, labels, g, grad_scale);
    CHECK(fabs(loss - ref) <= 1e-6 + 1e-5 * fabs(ref), "%s: loss %.9g, want %.9g (err %.3g)", label, (double)loss, ref, fabs(loss - ref));
    {
        char l2[240];
        snprintf(l2, sizeof l2, "%s gradient", label);
        check_close(l2, g, rg, n, 1e-7 * fabs(grad_scale), 1e-5, NULL);
        check_guard(l2, g, n);
        loss2 = nn_softmax_cross_entropy(rows, cols, x, labels, NULL, grad_scale);
        CHECK(fabs(loss2 - ref) <= 1e-6 + 1e-5 * fabs(ref), "%s (dlogits NULL): loss %.9g, want %.9g", label, (double)loss2, ref);
        if (!is_scalar()) {
            if (to_scalar()) { loss_s = nn_softmax_cross_entropy(rows, cols, x, labels, t, grad_scale); back(); }
            CHECK(fabs(loss - loss_s) <= 2e-6 + 2e-5 * fabs(ref), "%s: loss %.9g, scalar backend %.9g", label, (double)loss, (double)loss_s);
            check_vs_scalar(l2, g, t, n, 1e-7 * fabs(grad_scale), 1e-5, NULL);
        }
    }
    ffree(x); ffree(g); ffree(t); free(labels); free(p); free(lp); free(rg);
}

static void test_cross_entropy(void **state)
{
    static const int rows_list[] = { 1, 2, 3, 5, 8, 17 };
    static const int cols_list[] = { 1, 2, 3, 7, 10, 16, 17, 100, 1000 };
    int ri, ci, kind;
    (void)state;
    for (ri = 0; ri < 6; ri++)
        for (ci = 0; ci < 9; ci++)
            for (kind = 0; kind < 3; kind++)
                run_cross_entropy(rows_list[ri], cols_list[ci], kind,
                                  kind == 0 ? 1.0f / rows_list[ri] : kind == 1 ? 1.0f : 0.37f);
    {   /* extreme logits and bad labels */
        float x[4] = { 1e30f, -1e30f, 1e4f, -1e4f }, g[4];
        int lab[2] = { 1, 0 };
        float loss = nn_softmax_cross_entropy(2, 2, x, lab, g, 0.5f);
        CHECK(isfinite(loss) && fabs(loss - 1e30) <= 1e24, "softmax_cross_entropy([[1e30,-1e30] label 1, [1e4,-1e4] label 0]) = %g, want 1e30 (mean of 2e30 and 0)",
              (double)loss);
        CHECK(fabs(g[0] - 0.5) <= 1e-6 && fabs(g[1] + 0.5) <= 1e-6 && fabs(g[2]) <= 1e-6 && fabs(g[3]) <= 1e-6,
              "softmax_cross_entropy extreme gradient = [%g, %g, %g, %g], want [0.5, -0.5, 0, 0]",
              (double)g[0], (double)g[1], (double)g[2], (double)g[3]);
        lab[0] = 2;
        loss = nn_softmax_cross_entropy(1, 2, x + 2, lab, NULL, 1.0f);
        CHECK(isnan(loss), "softmax_cross_entropy with label 2 of 2 classes = %g, want NaN", (double)loss);
        lab[0] = -1;
        loss = nn_softmax_cross_entropy(1, 2, x + 2, lab, NULL, 1.0f);
        CHECK(isnan(loss), "softmax_cross_entropy with label -1 = %g, want NaN", (double)loss);
    }
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Vector work
   --------------------------------------------------------------------------------------- */
static void run_vector(size_t n, int positive)
{
    size_t off = n % 4 == 1 ? 1 + n % 3 : 0; /* some buffers start off a 64-byte boundary */
    float *xb = falloc(n + GUARD + off), *y = falloc(n + GUARD), *zb = falloc(n + GUARD + off), *t = falloc(n + GUARD);
    float *x = xb + off, *z = zb + off;
    double *ref = dalloc(n), *tol = dalloc(n), rs = 0, rss = 0, rd = 0, as = 0, ad = 0;
    float alpha = -0.8125f, got, gs;
    size_t i;
    char label[120];
    nn_test_fill(x, n, positive ? 0.0f : -1.0f, 1.0f);
    nn_test_fill(y, n, positive ? 0.0f : -1.0f, 1.0f);

    /* axpy */
    snprintf(label, sizeof label, "axpy n=%zu", n);
    memcpy(z, y, n * sizeof(float)); set_guard(z, n);
    for (i = 0; i < n; i++) { ref[i] = (double)y[i] + (double)alpha * x[i]; tol[i] = 1.2e-7 * (fabs(y[i]) + fabs(alpha * x[i])); }
    nn_axpy(n, alpha, x, z);
    check_close(label, z, ref, n, 0, 0, tol);
    check_guard(label, z, n);
    if (!is_scalar() && n) {
        memcpy(t, y, n * sizeof(float));
        if (to_scalar()) { nn_axpy(n, alpha, x, t); back(); }
        check_vs_scalar(label, z, t, n, 0, 0, tol);
    }
    /* scale */
    snprintf(label, sizeof label, "scale n=%zu", n);
    memcpy(z, x, n * sizeof(float)); set_guard(z, n);
    for (i = 0; i < n; i++) ref[i] = (double)1.3f * x[i];
    nn_scale(n, 1.3f, z);
    check_close(label, z, ref, n, 0, 1.2e-7, NULL);
    check_guard(label, z, n);
    if (!is_scalar() && n) {
        memcpy(t, x, n * sizeof(float));
        if (to_scalar()) { nn_scale(n, 1.3f, t); back(); }
        check_vs_scalar(label, z, t, n, 0, 1.2e-7, NULL);
    }
    /* add */
    snprintf(label, sizeof label, "add n=%zu", n);
    fill_value(z, n, NAN); set_guard(z, n);
    for (i = 0; i < n; i++) { ref[i] = (double)x[i] + y[i]; tol[i] = 1.2e-7 * (fabs(x[i]) + fabs(y[i])); }
    nn_add(n, x, y, z);
    check_close(label, z, ref, n, 0, 0, tol);
    check_guard(label, z, n);
    if (!is_scalar() && n) {
        if (to_scalar()) { nn_add(n, x, y, t); back(); }
        check_vs_scalar(label, z, t, n, 0, 0, tol);
    }
    /* reductions: relative 1e-5 of the sum of |terms| */
    for (i = 0; i < n; i++) {
        rs += x[i]; as += fabs(x[i]);
        rss += (double)x[i] * x[i];
        rd += (double)x[i] * y[i]; ad += fabs((double)x[i] * y[i]);
    }
    got = nn_sum(n, x);
    CHECK(fabs(got - rs) <= 1e-5 * as, "sum n=%zu%s: %.9g, want %.9g (err %.3g, tol %.3g)",
          n, positive ? " (positive)" : "", (double)got, rs, fabs(got - rs), 1e-5 * as);
    if (!is_scalar()) {
        if (to_scalar()) { gs = nn_sum(n, x); back(); CHECK(fabs(got - gs) <= 2e-5 * as, "sum n=%zu: %.9g, scalar backend %.9g", n, (double)got, (double)gs); }
    }
    got = nn_sum_squares(n, x);
    CHECK(fabs(got - rss) <= 1e-5 * rss, "sum_squares n=%zu: %.9g, want %.9g (err %.3g, tol %.3g)",
          n, (double)got, rss, fabs(got - rss), 1e-5 * rss);
    if (!is_scalar()) {
        if (to_scalar()) { gs = nn_sum_squares(n, x); back(); CHECK(fabs(got - gs) <= 2e-5 * rss, "sum_squares n=%zu: %.9g, scalar backend %.9g", n, (double)got, (double)gs); }
    }
    got = nn_dot(n, x, y);
    CHECK(fabs(got - rd) <= 1e-5 * ad, "dot n=%zu%s: %.9g, want %.9g (err %.3g, tol %.3g)",
          n, positive ? " (positive)" : "", (double)got, rd, fabs(got - rd), 1e-5 * ad);
    if (!is_scalar()) {
        if (to_scalar()) { gs = nn_dot(n, x, y); back(); CHECK(fabs(got - gs) <= 2e-5 * ad, "dot n=%zu: %.9g, scalar backend %.9g", n, (double)got, (double)gs); }
    }
    ffree(xb); ffree(y); ffree(zb); ffree(t); free(ref); free(tol);
}

static void test_vector_ops(void **state)
{
    size_t n;
    (void)state;
    for (n = 0; n <= 70; n++) run_vector(n, n % 2);
    run_vector(1000, 0);
    run_vector(1001, 1);
    run_vector(100003, 0);
    run_vector(100003, 1);
    run_vector(100000, 1);
    FINISH();
}

static void test_bias(void **state)
{
    static const int spatials[] = { 1, 2, 3, 7, 16, 17, 49, 100 };
    int si, rows, channels;
    (void)state;
    for (si = 0; si < 8; si++)
        for (rows = 1; rows <= 3; rows++)
            for (channels = 1; channels <= 17; channels += 4) {
                int sp = spatials[si], r, c, s;
                size_t n = (size_t)rows * channels * sp;
                float *x = falloc(n + GUARD), *x0 = falloc(n), *bias = falloc(channels), *db = falloc(channels + GUARD), *t = falloc(n + GUARD);
                double *ref = dalloc(n), *tol = dalloc(n), *rdb = dalloc(channels), sumabs = 0;
                char label[160];
                nn_test_fill(x0, n, -1, 1);
                nn_test_fill(bias, channels, -1, 1);
                for (r = 0; r < rows; r++) for (c = 0; c < channels; c++) for (s = 0; s < sp; s++) {
                    size_t i = ((size_t)r * channels + c) * sp + s;
                    ref[i] = (double)x0[i] + bias[c];
                    tol[i] = 1.2e-7 * (fabs(x0[i]) + fabs(bias[c]));
                }
                for (c = 0; c < channels; c++) {
                    double sum = 0;
                    for (r = 0; r < rows; r++) for (s = 0; s < sp; s++) {
                        sum += x0[((size_t)r * channels + c) * sp + s];
                        sumabs += fabs(x0[((size_t)r * channels + c) * sp + s]);
                    }
                    rdb[c] = sum;
                }
                snprintf(label, sizeof label, "bias_add rows=%d channels=%d spatial=%d", rows, channels, sp);
                memcpy(x, x0, n * sizeof(float)); set_guard(x, n);
                nn_bias_add(rows, channels, sp, bias, x);
                check_close(label, x, ref, n, 0, 0, tol);
                check_guard(label, x, n);
                if (!is_scalar()) {
                    memcpy(t, x0, n * sizeof(float));
                    if (to_scalar()) { nn_bias_add(rows, channels, sp, bias, t); back(); }
                    check_vs_scalar(label, x, t, n, 0, 0, tol);
                }
                snprintf(label, sizeof label, "bias_backward rows=%d channels=%d spatial=%d", rows, channels, sp);
                fill_value(db, channels, NAN); set_guard(db, channels);
                nn_bias_backward(rows, channels, sp, x0, db);
                check_close(label, db, rdb, channels, 1e-5 * sumabs / channels + 1e-7, 0, NULL);
                check_guard(label, db, channels);
                if (!is_scalar()) {
                    if (to_scalar()) { nn_bias_backward(rows, channels, sp, x0, t); back(); }
                    check_vs_scalar(label, db, t, channels, 1e-5 * sumabs / channels + 1e-7, 0, NULL);
                }
                ffree(x); ffree(x0); ffree(bias); ffree(db); ffree(t); free(ref); free(tol); free(rdb);
            }
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Batch norm
   --------------------------------------------------------------------------------------- */
/* A channel's sums: its values are batch runs of S floats (one per sample). The kernels sum a
   run in 32 partial sums (element i into sum i % 32) folded in halves and add the runs' sums in
   double, so a sum of terms t is within bn_sum_bound(S) * sum|t| of the exact one: ceil(S/32) - 1
   roundings in a partial sum, 5 in the fold, and one to spare (u = 2^-24). The other bounds
   follow from it; each output is checked against a double reference computed from the inputs the
   kernel itself had (y and the backward from the mean and 1/std the forward saved):
     saved mean     e_m = bn_sum_bound(S) mean|x| + u |mean|           (+ its rounding to float)
     variance       e_v = (bn_sum_bound(S) + 3u)(var + e_m^2) + e_m^2  ((x - mean)^2 is 2 roundings
                                                                         from a mean e_m off)
     saved 1/std    (e_v / (2 (var + eps)) + u) / std
     running stats  0.1 e_m and 0.1 e_v N/(N-1) (N = batch * S), + u of the value
     y              4u (|gamma (x - mean) / std| + |beta|)              (4 roundings)
     dbeta          bn_sum_bound(S) sum|dy| + u |dbeta|
     dgamma         (bn_sum_bound(S) + 2u) sum|dy (x - mean)| / std + u |dgamma|
     dx             |gamma / std| (e_k2 + |xhat| e_k3 + 6u (|dy| + |k2| + |xhat k3|)), where
                    k2 = dbeta / N and k3 = dgamma / N (0 in eval mode) with their errors e_k2, e_k3
   Against the scalar backend every output is bit-identical where neither side can have had
   a*b + c contracted into an FMA (the vector kernels do the scalar twin's operations in its
   order): GCC contracts only in its GNU modes, and then in the AVX2 and AVX-512 functions too;
   clang within an expression, where the target has FMA (the scalar code on aarch64). Elsewhere
   the two agree to 1e-5 of the largest value. */
#define U24 5.9604644775390625e-8
#if defined(__clang__) ? !defined(__FP_FAST_FMAF) : defined(__STRICT_ANSI__)
#define TWINS_EXACT 1
#else
#define TWINS_EXACT 0
#endif
static double bn_sum_bound(int S) { return ((S + 31) / 32 + 5) * U24; }

typedef struct bn_outputs { float *running_mean, *running_var, *saved, *y, *dgamma, *dbeta, *dx; } bn_outputs;
typedef struct bn_inputs {
    int batch, channels, spatial;
    float *x, *dy, *gamma, *beta, *running_mean, *running_var; /* the running statistics before the call */
} bn_inputs;

static bn_outputs bn_alloc(const bn_inputs *in)
{
    const size_t n = (size_t)in->batch * in->channels * in->spatial, c = (size_t)in->channels;
    bn_outputs o;
    o.running_mean = falloc(c + GUARD); o.running_var = falloc(c + GUARD); o.saved = falloc(2 * c + GUARD);
    o.y = falloc(n + GUARD); o.dgamma = falloc(c + GUARD); o.dbeta = falloc(c + GUARD); o.dx = falloc(n + GUARD);
    return o;
}
static void bn_free(bn_outputs *o)
{
    ffree(o->running_mean); ffree(o->running_var); ffree(o->saved); ffree(o->y); ffree(o->dgamma); ffree(o->dbeta);
    ffree(o->dx);
}

/* nn_batchnorm_forward then nn_batchnorm_backward on the current backend, into o (every output
   first NaN, with guard cells after it). in_place: y is a copy of x and dx one of dy. */
static void bn_run(const char *label, const bn_inputs *in, int training, int in_place, bn_outputs *o)
{
    const size_t n = (size_t)in->batch * in->channels * in->spatial, c = (size_t)in->channels;
    float *dy = in->dy;
    fill_value(o->saved, 2 * c, NAN); set_guard(o->saved, 2 * c);
    fill_value(o->dgamma, c, NAN); set_guard(o->dgamma, c);
    fill_value(o->dbeta, c, NAN); set_guard(o->dbeta, c);
    memcpy(o->running_mean, in->running_mean, c * sizeof(float)); set_guard(o->running_mean, c);
    memcpy(o->running_var, in->running_var, c * sizeof(float)); set_guard(o->running_var, c);
    if (in_place) memcpy(o->y, in->x, n * sizeof(float)); else fill_value(o->y, n, NAN);
    set_guard(o->y, n);
    CHECK_OK(label, nn_batchnorm_forward(in->batch, in->channels, in->spatial, in_place ? o->y : in->x, in->gamma,
                                         in->beta, o->running_mean, o->running_var, training, o->saved, o->y));
    if (in_place) { memcpy(o->dx, in->dy, n * sizeof(float)); dy = o->dx; } else fill_value(o->dx, n, NAN);
    set_guard(o->dx, n);
    CHECK_OK(label, nn_batchnorm_backward(in->batch, in->channels, in->spatial, in->x, dy, in->gamma, o->saved,
                                          training, o->dgamma, o->dbeta, o->dx));
    check_guard(label, o->saved, 2 * c); check_guard(label, o->dgamma, c); check_guard(label, o->dbeta, c);
    check_guard(label, o->running_mean, c); check_guard(label, o->running_var, c);
    check_guard(label, o->y, n); check_guard(label, o->dx, n);
}

/* Every output of bn_run against the double reference, with the bounds above. */
static void bn_check_reference(const char *label, const bn_inputs *in, int training, const bn_outputs *o)
{
    const int B = in->batch, C = in->channels, S = in->spatial;
    const size_t n = (size_t)B * C * S, N = (size_t)B * S;
    const double sum_bound = bn_sum_bound(S), eps = 1e-5;
    double *ry = dalloc(n), *ty = dalloc(n), *rdx = dalloc(n), *tdx = dalloc(n), *rsaved = dalloc(2 * C);
    double *tsaved = dalloc(2 * C), *rrm = dalloc(C), *trm = dalloc(C), *rrv = dalloc(C), *trv = dalloc(C);
    double *rdg = dalloc(C), *tdg = dalloc(C), *rdb = dalloc(C), *tdb = dalloc(C);
    char l2[240];
    int b, c, s;
    for (c = 0; c < C; c++) {
        const double fm = o->saved[c], fi = o->saved[C + c], g = in->gamma[c];
        double sum = 0, sum_abs = 0, sq = 0, sum_dy = 0, abs_dy = 0, sum_dyx = 0, abs_dyx = 0, mean, var;
        double k1, k2, k3, e_k2, e_k3;
#define BN_AT(b, s) (((size_t)(b) * C + c) * S + (s))
        for (b = 0; b < B; b++) for (s = 0; s < S; s++) { sum += in->x[BN_AT(b, s)]; sum_abs += fabs(in->x[BN_AT(b, s)]); }
        mean = sum / (double)N;
        for (b = 0; b < B; b++) for (s = 0; s < S; s++) sq += (in->x[BN_AT(b, s)] - mean) * (in->x[BN_AT(b, s)] - mean);
        var = sq / (double)N;
        if (training) {
            const double e_m = sum_bound * sum_abs / (double)N + U24 * fabs(mean);
            const double e_v = (sum_bound + 3 * U24) * (var + e_m * e_m) + e_m * e_m;
            rsaved[c] = mean; tsaved[c] = e_m;
            rsaved[C + c] = 1 / sqrt(var + eps); tsaved[C + c] = (e_v / (2 * (var + eps)) + U24) * rsaved[C + c];
            rrm[c] = 0.9 * in->running_mean[c] + 0.1 * mean; trm[c] = 0.1 * e_m + U24 * fabs(rrm[c]);
            rrv[c] = 0.9 * in->running_var[c] + 0.1 * (N > 1 ? var * (double)N / (double)(N - 1) : var);
            trv[c] = 0.1 * e_v * (N > 1 ? (double)N / (double)(N - 1) : 1.0) + U24 * fabs(rrv[c]);
        } else { /* the running statistics, untouched */
            rsaved[c] = rrm[c] = in->running_mean[c]; tsaved[c] = trm[c] = 0;
            rrv[c] = in->running_var[c]; trv[c] = 0;
            rsaved[C + c] = 1 / sqrt((double)in->running_var[c] + eps); tsaved[C + c] = U24 * rsaved[C + c];
        }
        /* from here on the mean and 1/std the kernel saved */
        for (b = 0; b < B; b++) for (s = 0; s < S; s++) {
            const size_t i = BN_AT(b, s);
            const double t = g * (in->x[i] - fm) * fi, d = in->dy[i];
            ry[i] = t + in->beta[c];
            ty[i] = 4 * U24 * (fabs(t) + fabs(in->beta[c]));
            sum_dy += d; abs_dy += fabs(d);
            sum_dyx += d * (in->x[i] - fm); abs_dyx += fabs(d * (in->x[i] - fm));
        }
        rdb[c] = sum_dy; tdb[c] = sum_bound * abs_dy + U24 * fabs(sum_dy);
        rdg[c] = sum_dyx * fi; tdg[c] = (sum_bound + 2 * U24) * abs_dyx * fi + U24 * fabs(rdg[c]);
        k1 = g * fi;
        k2 = training ? rdb[c] / (double)N : 0; e_k2 = training ? tdb[c] / (double)N + U24 * fabs(k2) : 0;
        k3 = training ? rdg[c] / (double)N : 0; e_k3 = training ? tdg[c] / (double)N + U24 * fabs(k3) : 0;
        for (b = 0; b < B; b++) for (s = 0; s < S; s++) {
            const size_t i = BN_AT(b, s);
            const double xh = (in->x[i] - fm) * fi, d = in->dy[i];
            rdx[i] = k1 * (d - k2 - xh * k3);
            tdx[i] = fabs(k1) * (e_k2 + fabs(xh) * e_k3 + 6 * U24 * (fabs(d) + fabs(k2) + fabs(xh * k3)));
        }
#undef BN_AT
    }
#define BN_CHECK(what, got, ref, tol, count) \
    (snprintf(l2, sizeof l2, "%s: %s", label, what), check_close(l2, got, ref, count, 0, 0, tol))
    BN_CHECK("saved mean", o->saved, rsaved, tsaved, (size_t)C);
    BN_CHECK("saved 1/std", o->saved + C, rsaved + C, tsaved + C, (size_t)C);
    BN_CHECK("running mean", o->running_mean, rrm, trm, (size_t)C);
    BN_CHECK("running var", o->running_var, rrv, trv, (size_t)C);
    BN_CHECK("y", o->y, ry, ty, n);
    BN_CHECK("dbeta", o->dbeta, rdb, tdb, (size_t)C);
    BN_CHECK("dgamma", o->dgamma, rdg, tdg, (size_t)C);
    BN_CHECK("dx", o->dx, rdx, tdx, n);
#undef BN_CHECK
    free(ry); free(ty); free(rdx); free(tdx); free(rsaved); free(tsaved); free(rrm); free(trm); free(rrv); free(trv);
    free(rdg); free(tdg); free(rdb); free(tdb);
}

/* got and want bit-identical (exact), or within 1e-5 of want's largest value */
static void bn_same(const char *label, const char *what, const float *got, const float *want, size_t n, int exact)
{
    char l2[240];
    size_t where;
    snprintf(l2, sizeof l2, "%s: %s", label, what);
    if (!exact) {
        double *r = dalloc(n);
        to_double(want, n, r);
        check_close(l2, got, r, n, 1e-5 * max_abs(want, n) + 1e-30, 0, NULL);
        free(r);
    } else if (!same_bits(got, want, n, &where)) {
        note("%s: [%zu] is %.9g, %.9g in the other run (not bit-identical)", l2, where, (double)got[where],
             (double)want[where]);
    }
}
static void bn_compare(const char *label, const bn_inputs *in, const bn_outputs *a, const bn_outputs *b, int exact)
{
    const size_t n = (size_t)in->batch * in->channels * in->spatial, c = (size_t)in->channels;
    bn_same(label, "saved", a->saved, b->saved, 2 * c, exact);
    bn_same(label, "running mean", a->running_mean, b->running_mean, c, exact);
    bn_same(label, "running var", a->running_var, b->running_var, c, exact);
    bn_same(label, "y", a->y, b->y, n, exact);
    bn_same(label, "dgamma", a->dgamma, b->dgamma, c, exact);
    bn_same(label, "dbeta", a->dbeta, b->dbeta, c, exact);
    bn_same(label, "dx", a->dx, b->dx, n, exact);
}

/* Random data whose channels have different offsets and spreads (channel 2 sits at 40, spread
   over +-2.5: a mean 16 times the spread). */
static bn_inputs bn_inputs_new(int batch, int channels, int spatial)
{
    const size_t n = (size_t)batch * channels * spatial;
    bn_inputs in;
    int b, c, s;
    in.batch = batch; in.channels = channels; in.spatial = spatial;
    in.x = falloc(n); in.dy = falloc(n);
    in.gamma = falloc(channels); in.beta = falloc(channels); in.running_mean = falloc(channels); in.running_var = falloc(channels);
    for (b = 0; b < batch; b++)
        for (c = 0; c < channels; c++)
            for (s = 0; s < spatial; s++)
                in.x[((size_t)b * channels + c) * spatial + s] =
                    (c == 2 ? 40.0f : 0.5f * (float)c - 1.0f) + (0.5f + (float)c) * nn_test_uniform(-1, 1);
    nn_test_fill(in.dy, n, -1, 1);
    nn_test_fill(in.gamma, channels, 0.25f, 2);
    nn_test_fill(in.beta, channels, -1, 1);
    nn_test_fill(in.running_mean, channels, -1, 1);
    nn_test_fill(in.running_var, channels, 0.1f, 3);
    return in;
}
static void bn_inputs_free(bn_inputs *in)
{
    ffree(in->x); ffree(in->dy); ffree(in->gamma); ffree(in->beta); ffree(in->running_mean); ffree(in->running_var);
}

/* Both kernels refuse the sizes global average pooling refuses and each NULL pointer (but dx),
   with NN_ERROR_SHAPE or NN_ERROR_ARGUMENT, a message, and nothing written. */
static void test_batchnorm_reject(void **state)
{
    enum { B = 2, C = 3, S = 4, N = B * C * S, OUTPUTS = 7 };
    float x[N], dy[N], gamma[C], beta[C], out[OUTPUTS][N];
    float *running_mean = out[0], *running_var = out[1], *saved = out[2], *y = out[3], *dgamma = out[4];
    float *dbeta = out[5], *dx = out[6];
    char label[200];
    int i, k, backward;
    (void)state;
    nn_test_fill(x, N, -1, 1);
    nn_test_fill(dy, N, -1, 1);
    nn_test_fill(gamma, C, -1, 1);
    nn_test_fill(beta, C, -1, 1);
    for (backward = 0; backward < 2; backward++) {
        const int pointers = backward ? 6 : 7; /* the ones that must not be NULL */
        /* the bad sizes, then a valid B x C x S with each pointer NULL in turn */
        for (i = 0; i < BAD_CHANNEL_SIZES + pointers; i++) {
            const int bad = i < BAD_CHANNEL_SIZES, batch = bad ? bad_channel_sizes[i][0] : B;
            const int channels = bad ? bad_channel_sizes[i][1] : C, spatial = bad ? bad_channel_sizes[i][2] : S;
            const int null = bad ? -1 : i - BAD_CHANNEL_SIZES;
            nn_status got;
            int changed = 0;
#define BN_ARG(k, p) (null == (k) ? NULL : (p))
            for (k = 0; k < OUTPUTS; k++) fill_value(out[k], N, SENTINEL);
            if (backward)
                got = nn_batchnorm_backward(batch, channels, spatial, BN_ARG(0, x), BN_ARG(1, dy), BN_ARG(2, gamma),
                                            BN_ARG(3, saved), 1, BN_ARG(4, dgamma), BN_ARG(5, dbeta), dx);
            else
                got = nn_batchnorm_forward(batch, channels, spatial, BN_ARG(0, x), BN_ARG(1, gamma), BN_ARG(2, beta),
                                           BN_ARG(3, running_mean), BN_ARG(4, running_var), 1, BN_ARG(5, saved),
                                           BN_ARG(6, y));
#undef BN_ARG
            snprintf(label, sizeof label, "nn_batchnorm_%s(batch %d, channels %d, spatial %d, pointer %d NULL)",
                     backward ? "backward" : "forward", batch, channels, spatial, null);
            for (k = 0; k < OUTPUTS * N; k++) changed += out[k / N][k % N] != SENTINEL;
            CHECK(got == (bad ? NN_ERROR_SHAPE : NN_ERROR_ARGUMENT), "%s: %s, want %s", label, nn_status_name(got),
                  nn_status_name(bad ? NN_ERROR_SHAPE : NN_ERROR_ARGUMENT));
            CHECK(nn_last_error()[0] != 0, "%s: refused without a message", label);
            CHECK(changed == 0, "%s: refused but changed %d output values", label, changed);
        }
    }
    FINISH();
}

/* Training and eval passes at the odd sizes around the kernels' 32-lane blocks and vector widths
   (S = 1 is batchnorm1d, which every backend runs on the scalar kernels), against the double
   reference, the scalar backend, and themselves run in place (y = x, dx = dy). */
static void test_batchnorm(void **state)
{
    static const int spatials[] = { 1, 3, 17, 49, 784 }, batches[] = { 1, 3, 64 };
    int si, bi, training;
    (void)state;
    for (si = 0; si < 5; si++)
        for (bi = 0; bi < 3; bi++)
            for (training = 1; training >= 0; training--) {
                bn_inputs in = bn_inputs_new(batches[bi], 3, spatials[si]);
                bn_outputs o = bn_alloc(&in), t = bn_alloc(&in);
                char label[160];
                snprintf(label, sizeof label, "batchnorm %s batch=%d channels=3 spatial=%d", training ? "train" : "eval",
                         in.batch, in.spatial);
                bn_run(label, &in, training, 0, &o);
                bn_check_reference(label, &in, training, &o);
                bn_run(label, &in, training, 1, &t);
                bn_compare(label, &in, &t, &o, 1);
                if (!is_scalar() && to_scalar()) {
                    char l2[200];
                    bn_run(label, &in, training, 0, &t);
                    back();
                    snprintf(l2, sizeof l2, "%s vs scalar backend", label);
                    bn_compare(l2, &in, &o, &t, TWINS_EXACT);
                }
                bn_free(&o); bn_free(&t); bn_inputs_free(&in);
            }
    FINISH();
}

/* Threads split the channels, and each channel's arithmetic does not depend on them: a shape
   large enough to be split (64 x 8 x 784 values) gives the same bits on 1 and 2 threads. */
static void test_batchnorm_threads(void **state)
{
    const int saved = nn_threads();
    bn_inputs in = bn_inputs_new(64, 8, 784);
    bn_outputs one = bn_alloc(&in), two = bn_alloc(&in);
    (void)state;
    CHECK_OK("nn_set_threads", nn_set_threads(1));
    bn_run("batchnorm 64x8x784, 1 thread", &in, 1, 0, &one);
    CHECK_OK("nn_set_threads", nn_set_threads(2));
    bn_run("batchnorm 64x8x784, 2 threads", &in, 1, 0, &two);
    CHECK_OK("nn_set_threads", nn_set_threads(saved));
    bn_compare("batchnorm 64x8x784, 1 vs 2 threads", &in, &two, &one, 1);
    bn_check_reference("batchnorm 64x8x784", &in, 1, &one);
    bn_free(&one); bn_free(&two); bn_inputs_free(&in);
    FINISH();
}

/* ---------------------------------------------------------------------------------------
   Platform: backend selection
   --------------------------------------------------------------------------------------- */
static void test_backend_selection(void **state)
{
    static const char *names[] = { "scalar", "avx2", "avx512", "neon" };
    nn_status s;
    int i;
    (void)state;
    CHECK(nn_backend_supported("scalar") == 1, "nn_backend_supported(\"scalar\") = %d, want 1", nn_backend_supported("scalar"));
    CHECK(nn_backend_supported("nonsense") == 0, "nn_backend_supported(\"nonsense\") = %d, want 0", nn_backend_supported("nonsense"));
    CHECK(nn_backend_supported(g_backend) == 1, "the backend under test (%s) is not supported?", g_backend);

    s = nn_set_backend("nonsense");
    CHECK(s != NN_OK, "nn_set_backend(\"nonsense\") = NN_OK, want an error");
    CHECK(s == NN_ERROR_ARGUMENT, "nn_set_backend(\"nonsense\") = %s, want NN_ERROR_ARGUMENT", nn_status_name(s));
    CHECK(strcmp(nn_backend_name(), g_backend) == 0, "after nn_set_backend(\"nonsense\") the backend is %s, want %s (unchanged)",
          nn_backend_name(), g_backend);
    CHECK(nn_last_error()[0] != '\0', "nn_set_backend(\"nonsense\") left no message in nn_last_error()");
    s = nn_set_backend(NULL);
    CHECK(s != NN_OK, "nn_set_backend(NULL) = NN_OK, want an error");
    CHECK(strcmp(nn_backend_name(), g_backend) == 0, "after nn_set_backend(NULL) the backend is %s", nn_backend_name());

    for (i = 0; i < 4; i++) {
        int supported = nn_backend_supported(names[i]);
        s = nn_set_backend(names[i]);
        if (supported) {
            CHECK(s == NN_OK, "nn_set_backend(\"%s\") = %s although supported", names[i], nn_status_name(s));
            CHECK(strcmp(nn_backend_name(), names[i]) == 0, "after nn_set_backend(\"%s\") the name is %s", names[i], nn_backend_name());
        } else {
            CHECK(s != NN_OK, "nn_set_backend(\"%s\") = NN_OK although unsupported", names[i]);
            CHECK(s == NN_ERROR_UNSUPPORTED, "nn_set_backend(\"%s\") (unsupported) = %s, want NN_ERROR_UNSUPPORTED", names[i], nn_status_name(s));
        }
        if (nn_set_backend(g_backend) != NN_OK) note("cannot return to %s", g_backend);
        if (!supported)
            CHECK(strcmp(nn_backend_name(), g_backend) == 0, "unsupported %s changed the backend to %s", names[i], nn_backend_name());
    }
#if defined(__x86_64__) || defined(__i386__)
    CHECK(!nn_backend_supported("neon"), "neon reported as supported on x86");
#endif
#if defined(__aarch64__)
    CHECK(!nn_backend_supported("avx2") && !nn_backend_supported("avx512"), "avx2/avx512 reported as supported on aarch64");
#endif
    s = nn_set_backend("best");
    CHECK(s == NN_OK, "nn_set_backend(\"best\") = %s", nn_status_name(s));
    CHECK(nn_backend_supported(nn_backend_name()) == 1 && strcmp(nn_backend_name(), "best") != 0,
          "after nn_set_backend(\"best\") the name is %s, want a concrete supported backend", nn_backend_name());
    if (nn_set_backend(g_backend) != NN_OK) note("cannot return to %s", g_backend);
    FINISH();
}

static const struct CMUnitTest tests[] = {
    TEST(test_backend_selection),
    TEST(test_sgemm_edge),
    TEST(test_sgemm_sweeps),
    TEST(test_sgemm_random),
    TEST(test_sgemm_shapes),
    TEST(test_sgemm_threads),
    TEST(test_conv2d_random),
    TEST(test_conv2d_layers),
    TEST(test_conv2d_finite_difference),
    TEST(test_conv2d_reject),
    TEST(test_pool2d),
    TEST(test_maxpool2d_nan),
    TEST(test_pool2d_reject),
    TEST(test_pool2d_kernels_reject),
    TEST(test_global_avgpool_reject),
    TEST(test_global_avgpool),
    TEST(test_activations),
    TEST(test_vec_exp_tanh_sigmoid_accuracy),
    TEST(test_special_values),
    TEST(test_softmax),
    TEST(test_softmax_finite_difference),
    TEST(test_softmax_extremes),
    TEST(test_cross_entropy),
    TEST(test_vector_ops),
    TEST(test_bias),
    TEST(test_batchnorm_reject),
    TEST(test_batchnorm),
    TEST(test_batchnorm_threads),
};

NN_TEST_MAIN("kernels", tests)
