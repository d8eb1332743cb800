/* bf16 mixed precision (issue 19): nn_bf16_round against hand-computed cases, nn_sgemm_bf16 on
   the backend under test against (1) the order docs/kernels.md "bf16" documents, bit for bit,
   (2) the scalar backend, (3) a double-precision product of the rounded operands, and models in
   NN_PRECISION_BF16: their linear and conv layers are exactly the bf16 GEMM of their inputs, and
   a few training steps stay close to float's, and one step of a small CNN matches PyTorch's
   bf16 autocast (tests/fixtures/torch_bf16.h, from tests/pytorch/gen_fixtures.py).

       build/tests/test_bf16 [scalar|avx2|avx512|neon] */
#include "test_common.h"
#include "fixtures/torch_bf16.h"
#include <float.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)
/* st must be `expected`, with a message that contains `needle`. */
static void expect_error_(nn_status st, nn_status expected, const char *needle, const char *what, int line)
{
    const char *msg = nn_last_error();
    if (st != expected)
        fail_msg("line %d: %s returned %s, expected %s (message \"%s\")", line, what, nn_status_name(st),
                 nn_status_name(expected), msg);
    if (needle && !strstr(msg, needle)) fail_msg("line %d: %s: message \"%s\" does not mention \"%s\"", line, what, msg, needle);
}
#define EXPECT_ERROR(call, expected, needle) expect_error_((call), (expected), (needle), #call, __LINE__)

static float *fmalloc(size_t n)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p) fail_msg("out of memory");
    return p;
}
static uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static float float_of(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

/* vdpbf16ps (AVX512_BF16) adds each pair of k's products at once and flushes bf16 subnormals to 0 */
static int dpbf16(void) { return strcmp(nn_backend_bf16_path(), "vdpbf16ps") == 0; }

/* The backend under test, restored after a test that switched to scalar. */
static char g_backend[16];
static int setup(void **state) { (void)state; snprintf(g_backend, sizeof g_backend, "%s", nn_backend_name()); return 0; }
static int teardown(void **state) { (void)state; return nn_set_backend(g_backend) == NN_OK ? 0 : -1; }
#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- nn_bf16_round ---------------------------------------------------------------------- */
static void test_round_cases(void **state)
{
    static const struct { uint32_t in, out; const char *what; } cases[] = {
        {0x3F800000u, 0x3F800000u, "1 is a bf16"},
        {0x3F808000u, 0x3F800000u, "1 + 2^-8: a tie, to the even 1"},
        {0x3F818000u, 0x3F820000u, "1 + 3*2^-8: a tie, to the even 1 + 2^-6"},
        {0x3F808001u, 0x3F810000u, "just above a tie rounds up"},
        {0x3F807FFFu, 0x3F800000u, "just below a tie rounds down"},
        {0xBF808000u, 0xBF800000u, "-(1 + 2^-8): ties to even, sign kept"},
        {0xBF818000u, 0xBF820000u, "-(1 + 3*2^-8)"},
        {0x3FFFFFFFu, 0x40000000u, "just below 2 rounds up into the next exponent"},
        {0x3FFF8000u, 0x40000000u, "a tie below 2 goes to the even 2"},
        {0x7F7F7FFFu, 0x7F7F0000u, "below the largest bf16's tie"},
        {0x7F7F8000u, 0x7F800000u, "the largest bf16 + half an ulp: a tie to even overflows to infinity"},
        {0x7F7FFFFFu, 0x7F800000u, "FLT_MAX overflows to infinity"},
        {0x7F800000u, 0x7F800000u, "+infinity"},
        {0xFF800000u, 0xFF800000u, "-infinity"},
        {0x00000000u, 0x00000000u, "+0"},
        {0x80000000u, 0x80000000u, "-0"},
        {0x00000001u, 0x00000000u, "the smallest subnormal rounds to +0"},
        {0x80000001u, 0x80000000u, "and its negative to -0"},
        {0x00008000u, 0x00000000u, "subnormal tie to the even 0"},
        {0x00018000u, 0x00020000u, "subnormal tie to the even 2^-148"},
        {0x0000C000u, 0x00010000u, "subnormal above a tie rounds up"},
        {0x007FFFFFu, 0x00800000u, "the largest subnormal rounds up to the smallest normal"},
        {0x00810000u, 0x00810000u, "a normal bf16 near the bottom is kept"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < COUNT(cases); i++) {
        uint32_t got = bits_of(nn_bf16_round(float_of(cases[i].in)));
        if (got != cases[i].out) fail_msg("nn_bf16_round(0x%08X) = 0x%08X, want 0x%08X (%s)", (unsigned)cases[i].in, (unsigned)got, (unsigned)cases[i].out, cases[i].what);
    }
}

static void test_round_nan(void **state)
{
    static const uint32_t nans[] = {0x7FC00000u, 0x7FC00001u, 0x7F800001u, 0x7F80FFFFu, 0xFF810000u, 0x7FFFFFFFu, 0xFFFFFFFFu};
    size_t i;
    (void)state;
    for (i = 0; i < COUNT(nans); i++) {
        uint32_t got = bits_of(nn_bf16_round(float_of(nans[i])));
        /* a NaN, quiet, the sign and the upper payload kept, the low half zero */
        uint32_t want = (nans[i] | 0x00400000u) & 0xFFFF0000u;
        if (got != want) fail_msg("nn_bf16_round(NaN 0x%08X) = 0x%08X, want the quiet NaN 0x%08X", (unsigned)nans[i], (unsigned)got, (unsigned)want);
    }
}

/* Every bf16 is kept; every float rounds to one of its two bf16 neighbours, the nearer one. */
static void test_round_sweep(void **state)
{
    uint32_t u;
    (void)state;
    for (u = 0; u < 0x7F800000u; u += 0x1003u) {
        float x = float_of(u), r = nn_bf16_round(x);
        float lo = float_of(u & 0xFFFF0000u), hi = float_of((u & 0xFFFF0000u) + 0x10000u); /* past the top: inf */
        const int e = (int)(u >> 23); /* the spacing of bf16 values around x, even where hi is inf */
        double dl = (double)x - lo, dh = (double)lo + ldexp(1.0, (e ? e : 1) - 127 - 7) - x;
        if (bits_of(r) & 0xFFFFu) fail_msg("nn_bf16_round(0x%08X) has low bits", (unsigned)u);
        if (r != lo && r != hi) fail_msg("nn_bf16_round(0x%08X) is not a neighbour", (unsigned)u);
        if ((dl < dh && r != lo) || (dh < dl && r != hi)) fail_msg("nn_bf16_round(0x%08X) is not the nearer neighbour", (unsigned)u);
        if (nn_bf16_round(-x) != -r) fail_msg("nn_bf16_round(-x) != -nn_bf16_round(x) at 0x%08X", (unsigned)u);
    }
}

/* The backend's in-place panel rounding (inside nn_sgemm_bf16): with B = 1 (and A = 1), row
   (column) values come out as nn_bf16_round of them, for each edge case and many patterns, on
   both operand sides, at lengths around the vector widths. */
static void test_gemm_rounds_like_scalar(void **state)
{
    const int n = 77;
    float *x = fmalloc((size_t)n), one = 1.0f, *out = fmalloc((size_t)n);
    static const uint32_t special[] = {0x3F808000u, 0x3F818000u, 0x7F7FFFFFu, 0x7F800000u, 0xFF800000u, 0x00018000u,
                                       0x007FFFFFu, 0x80000001u, 0x7F800001u, 0xFFC00001u};
    int i, side, len;
    (void)state;
    for (i = 0; i < n; i++) x[i] = i < (int)COUNT(special) ? float_of(special[i]) : float_of((uint32_t)(0x2F000000u + 0x00731531u * (uint32_t)i) ^ (i & 1 ? 0x80000000u : 0));
    for (side = 0; side < 2; side++)
        for (len = 1; len <= n; len += 19) {
            if (side == 0) /* B is 1 x len: C (1 x len) = 1 * B */
                ASSERT_OK(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 1, len, 1, 1.0f, &one, 1, x, len, 0.0f, out, len, NULL, 0));
            else /* A is len x 1: C (len x 1) = A * 1 */
                ASSERT_OK(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, len, 1, 1, 1.0f, x, 1, &one, 1, 0.0f, out, 1, NULL, 0));
            for (i = 0; i < len; i++) {
                float want = nn_bf16_round(x[i]); /* a zero comes out +0: the sum starts at +0 */
                if (dpbf16() && fabsf(want) < FLT_MIN) want = 0.0f; /* vdpbf16ps reads subnormals as 0 */
                if (want != want ? out[i] == out[i] : want == 0.0f ? out[i] != 0.0f : bits_of(out[i]) != bits_of(want))
                    fail_msg("%s, %s side, length %d: element %d (0x%08X) gave 0x%08X, want 0x%08X", nn_backend_name(),
                             side ? "A" : "B", len, i, (unsigned)bits_of(x[i]), (unsigned)bits_of(out[i]), (unsigned)bits_of(want));
            }
        }
    free(x);
    free(out);
}

/* ---- nn_sgemm_bf16 ---------------------------------------------------------------------- */
#define KC 256 /* every table's KC: the documented order sums each block of 256 k, then adds them */

/* element (i, p) of op(A) */
static float at(const float *a, int ld, int t, int i, int p) { return t ? a[(size_t)p * ld + i] : a[(size_t)i * ld + p]; }

/* The documented order, for alpha = 1, beta = 0: per block of KC k, products of rounded operands
   added one at a time in float from 0 in k order, the blocks' sums added to C in order. With
   pairs (vdpbf16ps, as Intel's manual defines it): per pair of k, the odd k's product first. */
static float documented(const float *a, int lda, int ta, const float *b, int ldb, int tb, int i, int j, int k, int pairs)
{
    float c = 0.0f;
    int p0, p;
    for (p0 = 0; p0 < k; p0 += KC) {
        volatile float acc = 0.0f; /* volatile: no contraction, no reassociation */
        const int end = k < p0 + KC ? k : p0 + KC;
        for (p = p0; p < end; p += pairs ? 2 : 1) {
            volatile float prod = nn_bf16_round(at(a, lda, ta, i, p)) * nn_bf16_round(at(b, ldb, !tb, j, p));
            if (pairs && p + 1 < end) {
                volatile float odd = nn_bf16_round(at(a, lda, ta, i, p + 1)) * nn_bf16_round(at(b, ldb, !tb, j, p + 1));
                acc = acc + odd;
            }
            acc = acc + prod;
        }
        c = p0 == 0 ? acc : c + acc;
    }
    return c;
}

typedef struct { int m, n, k; } dims;
static const dims g_dims[] = {{1, 1, 1}, {7, 13, 5}, {6, 64, 33}, {13, 70, 256}, {31, 17, 257}, {65, 129, 300}, {5, 3, 600}, {150, 40, 19}};

static void fill_mixed(float *x, size_t n)
{
    size_t i;
    nn_test_fill(x, n, -2.0f, 2.0f);
    for (i = 0; i < n; i += 7) x[i] *= 1000.0f; /* magnitudes apart, so that the rounding matters */
}

static void test_gemm_documented_order(void **state)
{
    size_t d;
    int ta, tb;
    (void)state;
    for (d = 0; d < COUNT(g_dims); d++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++) {
                const int m = g_dims[d].m, n = g_dims[d].n, k = g_dims[d].k;
                const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                float *a = fmalloc((size_t)(ta ? k : m) * lda), *b = fmalloc((size_t)(tb ? n : k) * ldb);
                float *c = fmalloc((size_t)m * ldc);
                int i, j;
                fill_mixed(a, (size_t)(ta ? k : m) * lda);
                fill_mixed(b, (size_t)(tb ? n : k) * ldb);
                for (i = 0; i < m * ldc; i++) c[i] = NAN; /* beta = 0: C is not read */
                ASSERT_OK(nn_sgemm_bf16((nn_transpose)ta, (nn_transpose)tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc, NULL, 0));
                for (i = 0; i < m; i++)
                    for (j = 0; j < n; j++) {
                        float want = documented(a, lda, ta, b, ldb, tb, i, j, k, dpbf16());
                        if (bits_of(c[(size_t)i * ldc + j]) != bits_of(want))
                            fail_msg("%s %dx%dx%d ta %d tb %d: C[%d][%d] = %.9g, the documented order gives %.9g",
                                     nn_backend_name(), m, n, k, ta, tb, i, j, c[(size_t)i * ldc + j], want);
                    }
                free(a);
                free(b);
                free(c);
            }
}

/* alpha and beta: against a double product of the rounded operands, within the float
   accumulation's error bound k * 2^-24 * sum |a b| (plus the epilogue's rounding), and against
   the scalar backend within 2^-22 of the magnitudes (the epilogue alpha*acc + beta*c may be one
   fused multiply-add on one backend and two roundings on another), or, on the vdpbf16ps path
   (another order), within twice the bound. */
static void test_gemm_alpha_beta(void **state)
{
    static const float alphas[] = {1.0f, -0.5f, 3.0f}, betas[] = {0.0f, 1.0f, 0.25f};
    size_t d, s;
    int ta, tb;
    (void)state;
    for (d = 0; d < COUNT(g_dims); d++)
        for (s = 0; s < COUNT(alphas); s++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++) {
                    const int m = g_dims[d].m, n = g_dims[d].n, k = g_dims[d].k;
                    const int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
                    const float alpha = alphas[s], beta = betas[(s + (size_t)ta + 2 * (size_t)tb) % COUNT(betas)];
                    float *a = fmalloc((size_t)m * k), *b = fmalloc((size_t)k * n), *c0 = fmalloc((size_t)m * n);
                    float *c = fmalloc((size_t)m * n), *cs = fmalloc((size_t)m * n);
                    int i, j, p;
                    fill_mixed(a, (size_t)m * k);
                    fill_mixed(b, (size_t)k * n);
                    nn_test_fill(c0, (size_t)m * n, -50.0f, 50.0f);
                    memcpy(c, c0, (size_t)m * n * sizeof(float));
                    memcpy(cs, c0, (size_t)m * n * sizeof(float));
                    ASSERT_OK(nn_sgemm_bf16((nn_transpose)ta, (nn_transpose)tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, 0));
                    ASSERT_OK(nn_set_backend("scalar"));
                    ASSERT_OK(nn_sgemm_bf16((nn_transpose)ta, (nn_transpose)tb, m, n, k, alpha, a, lda, b, ldb, beta, cs, ldc, NULL, 0));
                    ASSERT_OK(nn_set_backend(g_backend));
                    for (i = 0; i < m; i++)
                        for (j = 0; j < n; j++) {
                            double exact = 0.0, mag = 0.0, want, bound, got = c[(size_t)i * n + j];
                            for (p = 0; p < k; p++) {
                                double prod = (double)nn_bf16_round(at(a, lda, ta, i, p)) * nn_bf16_round(at(b, ldb, !tb, j, p));
                                exact += prod;
                                mag += fabs(prod);
                            }
                            want = alpha * exact + beta * (double)c0[(size_t)i * n + j];
                            mag = fabs(alpha) * mag + fabs(beta * (double)c0[(size_t)i * n + j]);
                            bound = (k + 2) * ldexp(mag, -24);
                            if (fabs(got - want) > bound)
                                fail_msg("%s %dx%dx%d alpha %g beta %g: C[%d][%d] = %.9g, exact %.9g, off by %.3g > %.3g",
                                         nn_backend_name(), m, n, k, alpha, beta, i, j, got, want, fabs(got - want), bound);
                            if (fabs(got - cs[(size_t)i * n + j]) > (dpbf16() ? 2 * bound : ldexp(mag, -22)))
                                fail_msg("%s %dx%dx%d: C[%d][%d] = %.9g, scalar backend %.9g", nn_backend_name(), m, n, k, i, j, got,
                                         cs[(size_t)i * n + j]);
                        }
                    free(a);
                    free(b);
                    free(c0);
                    free(c);
                    free(cs);
                }
}

static void test_gemm_refusals(void **state)
{
    float a[4] = {1, 2, 3, 4}, c[4] = {9, 9, 9, 9};
    size_t i;
    (void)state;
    EXPECT_ERROR(nn_sgemm_bf16(NN_NO_TRANSPOSE, (nn_transpose)2, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2, NULL, 0), NN_ERROR_ARGUMENT, "nn_sgemm_bf16");
    EXPECT_ERROR(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 2, 2, 2, 1.0f, a, 1, a, 2, 0.0f, c, 2, NULL, 0), NN_ERROR_ARGUMENT, "leading dimension");
    EXPECT_ERROR(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 2, 2, 2, 1.0f, NULL, 2, a, 2, 0.0f, c, 2, NULL, 0), NN_ERROR_ARGUMENT, "null");
    EXPECT_ERROR(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2, c, 4), NN_ERROR_ARGUMENT, "workspace");
    for (i = 0; i < 4; i++) if (c[i] != 9.0f) fail_msg("a refused nn_sgemm_bf16 changed C");
}

/* ---- models in bf16 ----------------------------------------------------------------------- */
static void test_precision_setting(void **state)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 4, 1, 1);
    (void)state;
    if (nn_get_precision(m) != NN_PRECISION_FP32) fail_msg("the default precision is not NN_PRECISION_FP32");
    EXPECT_ERROR(nn_set_precision(NULL, NN_PRECISION_BF16), NN_ERROR_ARGUMENT, "null");
    EXPECT_ERROR(nn_set_precision(m, (nn_precision)7), NN_ERROR_ARGUMENT, "7");
    EXPECT_ERROR(nn_set_precision(m, (nn_precision)-1), NN_ERROR_ARGUMENT, NULL);
    if (nn_get_precision(m) != NN_PRECISION_FP32) fail_msg("a refused nn_set_precision changed the precision");
    ASSERT_OK(nn_set_precision(m, NN_PRECISION_BF16));
    if (nn_get_precision(m) != NN_PRECISION_BF16) fail_msg("nn_get_precision does not give NN_PRECISION_BF16 after setting it");
    ASSERT_OK(nn_compile(m, nn_linear(m, x, 3, NN_BIAS), NN_LOSS_MSE, 2));
    EXPECT_ERROR(nn_set_precision(m, NN_PRECISION_FP32), NN_ERROR_STATE, "nn_compile");
    if (nn_get_precision(m) != NN_PRECISION_BF16) fail_msg("nn_set_precision after nn_compile changed the precision");
    if (nn_get_precision(NULL) != NN_PRECISION_FP32) fail_msg("nn_get_precision(NULL) is not NN_PRECISION_FP32");
    nn_model_free(m);
}

/* A bf16 linear layer is the bf16 GEMM of its input and weights, bit for bit, in all three
   products: y = x W^T + b, dW = dy^T x, dx = dy W. */
static void test_linear_is_bf16_gemm(void **state)
{
    const int batch = 9, in = 300, out = 21;
    nn_model *m = nn_model_new(3);
    nn_node *x = nn_input(m, in, 1, 1);
    float *xs = fmalloc((size_t)batch * in), *dy = fmalloc((size_t)batch * out), *want = fmalloc((size_t)out * in);
    const float *w, *bias;
    size_t count, i;
    (void)state;
    ASSERT_OK(nn_set_precision(m, NN_PRECISION_BF16));
    ASSERT_OK(nn_compile(m, nn_linear(m, x, out, NN_BIAS), NN_LOSS_NONE, batch));
    nn_set_input_gradient(m, 1);
    fill_mixed(xs, (size_t)batch * in);
    fill_mixed(dy, (size_t)batch * out);
    w = nn_node_tensor(m, nn_layer(m, 0), "weight", &count);
    bias = nn_node_tensor(m, nn_layer(m, 0), "bias", &count);
    if (!w || !bias) fail_msg("no weight or bias tensor");
    ASSERT_OK(nn_forward(m, xs, batch, NN_TRAIN));
    ASSERT_OK(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_TRANSPOSE, batch, out, in, 1.0f, xs, in, w, in, 0.0f, want, out, NULL, 0));
    for (i = 0; i < (size_t)batch * out; i++) {
        float y = want[i] + bias[i % out];
        if (bits_of(nn_output(m)[i]) != bits_of(y)) fail_msg("%s: forward output %zu = %.9g, the bf16 GEMM gives %.9g", nn_backend_name(), i, nn_output(m)[i], y);
    }
    ASSERT_OK(nn_backward_from(m, dy));
    ASSERT_OK(nn_sgemm_bf16(NN_TRANSPOSE, NN_NO_TRANSPOSE, out, in, batch, 1.0f, dy, out, xs, in, 0.0f, want, in, NULL, 0));
    for (i = 0; i < (size_t)out * in; i++)
        if (bits_of(nn_grads(m)[i]) != bits_of(want[i])) fail_msg("%s: weight gradient %zu = %.9g, the bf16 GEMM gives %.9g", nn_backend_name(), i, nn_grads(m)[i], want[i]);
    ASSERT_OK(nn_sgemm_bf16(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, batch, in, out, 1.0f, dy, out, w, in, 0.0f, want, in, NULL, 0));
    for (i = 0; i < (size_t)batch * in; i++)
        if (bits_of(nn_input_gradient(m)[i]) != bits_of(want[i])) fail_msg("%s: input gradient %zu = %.9g, the bf16 GEMM gives %.9g", nn_backend_name(), i, nn_input_gradient(m)[i], want[i]);
    nn_model_free(m);
    free(xs);
    free(dy);
    free(want);
}

/* A bf16 convolution is the float convolution of the rounded input and weights, bit for bit,
   where the float path is the im2col GEMM too (a 5x5 kernel with padding: neither Winograd nor
   the direct kernel); and a 3x3 (Winograd in float) and a LeNet-like 5x5 unpadded one (direct in
   float) take the im2col GEMM in bf16, so they match that too. */
static void test_conv_is_bf16_gemm(void **state)
{
    static const struct { int c, hw, k, kernel, stride, pad; } convs[] = {{3, 11, 40, 5, 1, 2}, {8, 10, 16, 3, 1, 1}, {1, 12, 6, 5, 1, 0}, {4, 9, 8, 3, 2, 1}};
    size_t v;
    (void)state;
    for (v = 0; v < COUNT(convs); v++) {
        const int batch = 3;
        nn_model *m = nn_model_new(5);
        nn_node *x = nn_input(m, convs[v].c, convs[v].hw, convs[v].hw);
        nn_conv2d_shape s;
        size_t in_size = (size_t)convs[v].c * convs[v].hw * convs[v].hw, out_size, count, i;
        float *xs, *xr, *wr, *want;
        const float *w, *bias;
        int oh, ow;
        ASSERT_OK(nn_set_precision(m, NN_PRECISION_BF16));
        ASSERT_OK(nn_compile(m, nn_conv2d(m, x, convs[v].k, convs[v].kernel, convs[v].stride, convs[v].pad, NN_BIAS), NN_LOSS_NONE, batch));
        out_size = (size_t)nn_output_size(m);
        xs = fmalloc(batch * in_size);
        xr = fmalloc(batch * in_size);
        want = fmalloc(batch * out_size);
        fill_mixed(xs, batch * in_size);
        for (i = 0; i < batch * in_size; i++) xr[i] = nn_bf16_round(xs[i]);
        w = nn_node_tensor(m, nn_layer(m, 0), "weight", &count);
        bias = nn_node_tensor(m, nn_layer(m, 0), "bias", &i);
        wr = fmalloc(count);
        for (i = 0; i < count; i++) wr[i] = nn_bf16_round(w[i]);
        memset(&s, 0, sizeof s);
        s.batch = batch;
        s.in_channels = convs[v].c;
        s.in_height = s.in_width = convs[v].hw;
        s.out_channels = convs[v].k;
        s.kernel_height = s.kernel_width = convs[v].kernel;
        s.stride_height = s.stride_width = convs[v].stride;
        s.pad_height = s.pad_width = convs[v].pad;
        ASSERT_OK(nn_conv2d_output_size(&s, &oh, &ow));
        ASSERT_OK(nn_forward(m, xs, batch, NN_EVAL));
        if (v == 0 && !dpbf16()) { /* the float conv of the rounded operands: the im2col GEMM too, same order */
            ASSERT_OK(nn_conv2d_forward(&s, xr, wr, bias, want, NULL, 0));
            for (i = 0; i < batch * out_size; i++)
                if (bits_of(nn_output(m)[i]) != bits_of(want[i]))
                    fail_msg("%s: bf16 conv output %zu = %.9g, float conv of the rounded operands %.9g", nn_backend_name(), i, nn_output(m)[i], want[i]);
        } else { /* against a double convolution of the rounded operands */
            int n, k, y, xx, c, ky, kx;
            for (n = 0; n < batch; n++)
                for (k = 0; k < s.out_channels; k++)
                    for (y = 0; y < oh; y++)
                        for (xx = 0; xx < ow; xx++) {
                            double sum = bias[k], mag = fabs(bias[k]), got;
                            for (c = 0; c < s.in_channels; c++)
                                for (ky = 0; ky < s.kernel_height; ky++)
                                    for (kx = 0; kx < s.kernel_width; kx++) {
                                        int iy = y * s.stride_height - s.pad_height + ky, ix = xx * s.stride_width - s.pad_width + kx;
                                        double prod;
                                        if (iy < 0 || ix < 0 || iy >= s.in_height || ix >= s.in_width) continue;
                                        prod = (double)xr[(((size_t)n * s.in_channels + c) * s.in_height + iy) * s.in_width + ix] *
                                               wr[(((size_t)k * s.in_channels + c) * s.kernel_height + ky) * s.kernel_width + kx];
                                        sum += prod;
                                        mag += fabs(prod);
                                    }
                            got = nn_output(m)[(((size_t)n * s.out_channels + k) * oh + y) * ow + xx];
                            if (fabs(got - sum) > (s.in_channels * s.kernel_height * s.kernel_width + 2) * ldexp(mag, -24))
                                fail_msg("%s: conv %zu output (%d,%d,%d,%d) = %.9g, exact %.9g", nn_backend_name(), v, n, k, y, xx, got, sum);
                        }
        }
        nn_model_free(m);
        free(xs);
        free(xr);
        free(wr);
        free(want);
    }
}

/* An MLP and a small CNN trained a few steps in bf16 and in float from the same start. bf16
   keeps 8 significant bits: each product is off by up to 2^-8 relative, so a gradient entry is
   off by up to 2^-8 of the sum of its products' magnitudes, which where the products cancel is
   many times the entry itself (here one step's parameter change differs by 1.6-1.8 % in L1, and
   5 steps by 1.5-2.8 %; the losses by under 1e-4 relative). Bounds: losses within 0.5 %, the
   parameters within 5 % of their change; and the bf16 run is not the float run. */
static nn_model *small_net(int cnn, nn_precision precision, int batch)
{
    nn_model *m = nn_model_new(11);
    nn_node *x = nn_input(m, 1, 12, 12), *h;
    if (cnn) {
        h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 3, 1, 1, NN_BIAS), 2, 2));
        h = nn_relu(m, nn_conv2d(m, h, 8, 3, 2, 1, NN_BIAS));
        h = nn_linear(m, nn_flatten(m, h), 10, NN_BIAS);
    } else {
        h = nn_relu(m, nn_linear(m, nn_flatten(m, x), 64, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 32, NN_BIAS));
        h = nn_linear(m, h, 10, NN_BIAS);
    }
    if (nn_set_precision(m, precision) != NN_OK || nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch) != NN_OK)
        fail_msg("small_net: %s", nn_last_error());
    return m;
}

static void test_training_close_to_fp32(void **state)
{
    const int batch = 16, steps = 5;
    int cnn;
    (void)state;
    for (cnn = 0; cnn < 2; cnn++) {
        nn_model *f = small_net(cnn, NN_PRECISION_FP32, batch), *b = small_net(cnn, NN_PRECISION_BF16, batch);
        nn_optimizer of = nn_sgd(0.05f, 0.9f, 0.0f), ob = nn_sgd(0.05f, 0.9f, 0.0f);
        float *xs = fmalloc((size_t)batch * 144), *start = fmalloc(nn_param_count(f));
        int labels[16], step, i;
        double moved = 0.0, apart = 0.0;
        size_t p;
        nn_test_fill(xs, (size_t)batch * 144, 0.0f, 1.0f);
        for (i = 0; i < batch; i++) labels[i] = i % 10;
        memcpy(start, nn_params(f), nn_param_count(f) * sizeof(float));
        for (p = 0; p < nn_param_count(f); p++)
            if (nn_params(f)[p] != nn_params(b)[p]) fail_msg("the two models do not start equal");
        for (step = 0; step < steps; step++) {
            float lf, lb;
            ASSERT_OK(nn_train_step(f, &of, xs, labels, NULL, batch, &lf));
            ASSERT_OK(nn_train_step(b, &ob, xs, labels, NULL, batch, &lb));
            if (fabs(lf - lb) > 0.005 * fabs(lf)) fail_msg("%s step %d: bf16 loss %g, float %g", cnn ? "CNN" : "MLP", step, lb, lf);
        }
        for (p = 0; p < nn_param_count(f); p++) {
            moved += fabs((double)nn_params(f)[p] - start[p]);
            apart += fabs((double)nn_params(f)[p] - nn_params(b)[p]);
        }
        if (!(apart <= 0.05 * moved)) fail_msg("%s: bf16 parameters %g apart from float's after a change of %g", cnn ? "CNN" : "MLP", apart, moved);
        if (apart == 0.0) fail_msg("%s: bf16 training gave float's parameters bit for bit", cnn ? "CNN" : "MLP");
        nn_optimizer_free(&of);
        nn_optimizer_free(&ob);
        nn_model_free(f);
        nn_model_free(b);
        free(xs);
        free(start);
    }
}

/* One SGD step of the fixture's CNN in bf16 against torch.autocast: the logits, the loss, the
   gradient and the parameters after the step, each within torch_bf16_tolerance (2^-6) of its
   largest magnitude. PyTorch also rounds each conv/linear output to bf16 and keeps activations in
   bf16 where nn.h keeps float; gen_fixtures.py measures nn.h's semantics (emulated in float64)
   at under 2^-7 from autocast, float32 at a similar distance. */
static void check_close(const char *what, const float *got, const float *want, size_t n)
{
    double scale = 0.0;
    size_t i;
    for (i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= torch_bf16_tolerance * scale))
            fail_msg("%s: %s[%zu] = %.9g, autocast %.9g (allowed %.3g)", nn_backend_name(), what, i, got[i], want[i], torch_bf16_tolerance * scale);
}

static void test_torch_autocast_step(void **state)
{
    const int batch = torch_bf16_batch;
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 2, 8, 8), *h;
    nn_optimizer opt = nn_sgd(torch_bf16_lr, 0.0f, 0.0f);
    float loss;
    (void)state;
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 3, 1, 1, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_conv2d(m, h, 8, 3, 2, 1, NN_BIAS));
    h = nn_linear(m, nn_flatten(m, h), 10, NN_BIAS);
    ASSERT_OK(nn_set_precision(m, NN_PRECISION_BF16));
    ASSERT_OK(nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch));
    if (nn_param_count(m) != COUNT(torch_bf16_params)) fail_msg("%zu parameters, the fixture has %zu", nn_param_count(m), COUNT(torch_bf16_params));
    memcpy(nn_params(m), torch_bf16_params, sizeof torch_bf16_params);
    ASSERT_OK(nn_train_step(m, &opt, torch_bf16_x, torch_bf16_labels, NULL, batch, &loss));
    check_close("output", nn_output(m), torch_bf16_output, COUNT(torch_bf16_output));
    check_close("loss", &loss, &torch_bf16_loss, 1);
    check_close("grad", nn_grads(m), torch_bf16_grad, COUNT(torch_bf16_grad));
    check_close("params after the step", nn_params(m), torch_bf16_after, COUNT(torch_bf16_after));
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

static const struct CMUnitTest tests[] = {
    TEST(test_round_cases),
    TEST(test_round_nan),
    TEST(test_round_sweep),
    TEST(test_gemm_rounds_like_scalar),
    TEST(test_gemm_documented_order),
    TEST(test_gemm_alpha_beta),
    TEST(test_gemm_refusals),
    TEST(test_precision_setting),
    TEST(test_linear_is_bf16_gemm),
    TEST(test_conv_is_bf16_gemm),
    TEST(test_training_close_to_fp32),
    TEST(test_torch_autocast_step),
};
NN_TEST_MAIN("bf16", tests)
