/* ---- Math kernels: exp, tanh, activations, softmax (scalar, AVX2, AVX-512, NEON) ------------

   Every backend runs the same algorithm (Cephes expf/tanhf), so they agree to an ulp or two:
   exp      clamp x to [-104, 89] (beyond that the float result is 0 or +inf anyway), n = round(x/ln2),
            r = x - n*ln2 in two parts (Cody-Waite), exp(r) = 1 + r + r^2*P(r) with P of degree 5,
            times 2^n applied as 2^(n/2) * 2^(n-n/2) (AVX-512: scalef), so an overflowing result
            becomes +inf and a subnormal one is rounded once instead of being garbage.
   tanh     |x| < 0.625: odd polynomial (tanh(x) = x holds for tiny x); else (1-e)/(1+e) with
            e = exp(-2|x|) <= 0.29, which cannot overflow and loses nothing to cancellation; the
            sign is copied back afterwards, so tanh is exactly odd.
   sigmoid  e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e): no overflow for either sign, and relative-
            accurate for negative x down to subnormal results.
   Measured max relative error (double reference, normal results): exp 8e-8, tanh 1.5e-7, sigmoid
   1.7e-7, scaled tanh 2.2e-7 on every backend (bound 1e-6).
   NaN in gives NaN out. Note _mm256/_mm512_min/max_ps return the SECOND operand if either is NaN,
   so the constant always goes first to let a NaN through. */

#define NN__EXP_HI 89.0f           /* above ln(FLT_MAX) = 88.72: exp = +inf falls out of 2^128 */
#define NN__EXP_LO (-104.0f)       /* below ln(2^-150): the rounded result is 0 */
#define NN__LOG2E 1.44269504088896341f
#define NN__EXP_C1 0.693359375f    /* ln2 = C1 - C2; C1 has 9 bits so n*C1 is exact */
#define NN__EXP_C2 (-2.12194440e-4f)
#define NN__EXP_P0 1.9875691500e-4f
#define NN__EXP_P1 1.3981999507e-3f
#define NN__EXP_P2 8.3334519073e-3f
#define NN__EXP_P3 4.1665795894e-2f
#define NN__EXP_P4 1.6666665459e-1f
#define NN__EXP_P5 5.0000001201e-1f
#define NN__TANH_SMALL 0.625f      /* below: polynomial; above: (1-e)/(1+e) */
#define NN__TANH_T0 (-5.70498872745e-3f)
#define NN__TANH_T1 2.06390887954e-2f
#define NN__TANH_T2 (-5.37397155531e-2f)
#define NN__TANH_T3 1.33314422036e-1f
#define NN__TANH_T4 (-3.33332819422e-1f)
#define NN__STANH_A 1.7159f        /* scaled tanh: A * tanh(B x) */
#define NN__STANH_B 0.666666667f
#define NN__STANH_K 0.388523030f   /* B / A: f'(x) = (B/A) (A - y)(A + y) */
#define NN__NEG_FLT_MAX (-3.40282347e+38f) /* log-softmax floor: a finite stand-in for -inf */

/* ---- scalar ---- */

static float nn__pow2i_scalar(int k) /* 2^k for -126 <= k <= 127, built from the exponent bits */
{
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float nn__exp1_scalar(float x)
{
    float fn, r, z, p;
    int k, k1;
    if (x != x) return x; /* NaN: keeps the float -> int conversion below defined */
    if (x > NN__EXP_HI) x = NN__EXP_HI;
    if (x < NN__EXP_LO) x = NN__EXP_LO;
    fn = x * NN__LOG2E;
    k = (int)(fn + 256.5f) - 256; /* round half up without a branch: fn + 256.5 > 0 after the clamp */
    fn = (float)k;
    r = x - fn * NN__EXP_C1;
    r = r - fn * NN__EXP_C2;
    z = r * r;
    p = NN__EXP_P0;
    p = p * r + NN__EXP_P1;
    p = p * r + NN__EXP_P2;
    p = p * r + NN__EXP_P3;
    p = p * r + NN__EXP_P4;
    p = p * r + NN__EXP_P5;
    p = p * z + r;
    p = p + 1.0f;
    /* two factors, as 2^k alone may not be a normal float; k1 = floor(k/2) without a signed
       division or a right shift of a negative int (k >= -150) */
    k1 = (int)((unsigned)(k + 256) >> 1) - 128;
    return p * nn__pow2i_scalar(k1) * nn__pow2i_scalar(k - k1);
}

static float nn__tanh1_scalar(float x)
{
    float a = fabsf(x), r;
    if (a < NN__TANH_SMALL) {
        float s = a * a, p = NN__TANH_T0;
        p = p * s + NN__TANH_T1;
        p = p * s + NN__TANH_T2;
        p = p * s + NN__TANH_T3;
        p = p * s + NN__TANH_T4;
        r = p * s * a + a;
    } else { /* also NaN */
        float e = nn__exp1_scalar(-2.0f * a);
        r = (1.0f - e) / (1.0f + e);
    }
    return copysignf(r, x);
}

static float nn__sigmoid1_scalar(float x)
{
    float e = nn__exp1_scalar(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

static void nn__exp_scalar(size_t n, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < n; i++) y[i] = nn__exp1_scalar(x[i]);
}

static void nn__tanh_scalar(size_t n, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < n; i++) y[i] = nn__tanh1_scalar(x[i]);
}

static void nn__activation_forward_scalar(nn_activation kind, float p, size_t n, const float *x, float *y)
{
    size_t i;
    switch (kind) {
    case NN_ACTIVATION_RELU: /* x < 0 rather than x > 0 so NaN passes through */
        for (i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : p * x[i];
        break;
    case NN_ACTIVATION_SIGMOID:
        for (i = 0; i < n; i++) y[i] = nn__sigmoid1_scalar(x[i]);
        break;
    case NN_ACTIVATION_TANH:
        for (i = 0; i < n; i++) y[i] = nn__tanh1_scalar(x[i]);
        break;
    case NN_ACTIVATION_SCALED_TANH:
        for (i = 0; i < n; i++) y[i] = NN__STANH_A * nn__tanh1_scalar(NN__STANH_B * x[i]);
        break;
    default: /* identity */
        if (n && y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

/* Derivatives from y where that is cheaper; (1-y)(1+y) rather than 1-y*y because 1-y is exact
   for y near 1, where 1-y*y would cancel. */
static void nn__activation_backward_scalar(nn_activation kind, float p, size_t n, const float *x,
                                           const float *y, const float *dy, float *dx)
{
    size_t i;
    switch (kind) {
    case NN_ACTIVATION_RELU:
        for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : p * dy[i];
        break;
    case NN_ACTIVATION_SIGMOID:
        for (i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
        break;
    case NN_ACTIVATION_TANH:
        for (i = 0; i < n; i++) dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i]));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        for (i = 0; i < n; i++) dx[i] = dy[i] * (NN__STANH_K * ((NN__STANH_A - y[i]) * (NN__STANH_A + y[i])));
        break;
    default:
        if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

/* Max-subtracted, so every exp argument is <= 0 and the row sum is in [1, cols]. A NaN anywhere
   in a row makes the sum NaN and so the whole row NaN, whatever the max reduction did with it.
   Log-softmax is floored at -FLT_MAX: x - max can overflow to -inf for inputs near +-FLT_MAX. */
static void nn__softmax_rows_scalar(int rows, int cols, const float *x, float *y, int log_softmax)
{
    size_t n = cols > 0 ? (size_t)cols : 0, i;
    int r;
    if (rows <= 0 || n == 0) return;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        float m = xr[0];
        double s = 0.0;
        for (i = 1; i < n; i++) m = xr[i] > m ? xr[i] : m;
        for (i = 0; i < n; i++) {
            float e = nn__exp1_scalar(xr[i] - m);
            if (!log_softmax) yr[i] = e;
            s += e;
        }
        if (log_softmax) {
            float ls = logf((float)s);
            for (i = 0; i < n; i++) {
                float v = (xr[i] - m) - ls;
                yr[i] = v < NN__NEG_FLT_MAX ? NN__NEG_FLT_MAX : v;
            }
        } else {
            float inv = 1.0f / (float)s;
            for (i = 0; i < n; i++) yr[i] *= inv;
        }
    }
}

#if NN__X86
/* ---- AVX2 + FMA ---- */

NN__TARGET_AVX2 static inline __m256 nn__exp8_avx2(__m256 x)
{
    __m256 fn, r, z, p;
    __m256i k, k1, k2, bias = _mm256_set1_epi32(127);
    x = _mm256_min_ps(_mm256_set1_ps(NN__EXP_HI), _mm256_max_ps(_mm256_set1_ps(NN__EXP_LO), x));
    fn = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(NN__LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(NN__EXP_C1), x);
    r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(NN__EXP_C2), r);
    z = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(_mm256_set1_ps(NN__EXP_P0), r, _mm256_set1_ps(NN__EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN__EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN__EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN__EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN__EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
    k = _mm256_cvtps_epi32(fn); /* NaN gives junk here, but p is already NaN */
    k1 = _mm256_srai_epi32(k, 1);
    k2 = _mm256_sub_epi32(k, k1);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23)));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23)));
}

NN__TARGET_AVX2 static inline __m256 nn__tanh8_avx2(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 a = _mm256_andnot_ps(sign, x), s = _mm256_mul_ps(a, a), p, e, small, large;
    p = _mm256_fmadd_ps(_mm256_set1_ps(NN__TANH_T0), s, _mm256_set1_ps(NN__TANH_T1));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(NN__TANH_T2));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(NN__TANH_T3));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(NN__TANH_T4));
    small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), a, a);
    e = nn__exp8_avx2(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    large = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    /* NaN compares false, takes the large branch, which is NaN too */
    small = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(NN__TANH_SMALL), _CMP_LT_OQ));
    return _mm256_or_ps(small, _mm256_and_ps(x, sign));
}

NN__TARGET_AVX2 static inline __m256 nn__sigmoid8_avx2(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = nn__exp8_avx2(_mm256_or_ps(x, _mm256_set1_ps(-0.0f))); /* exp(-|x|) */
    __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

/* Lanes [0, r) set, for maskload/maskstore of an r-float tail (masked-off lanes are not touched). */
NN__TARGET_AVX2 static inline __m256i nn__tailmask8_avx2(size_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

NN__TARGET_AVX2 static inline float nn__hsum8_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

NN__TARGET_AVX2 static inline float nn__hmax8_avx2(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* out[i] = EXPR for i < n, where EXPR reads the __m256 v = in[i..i+7]; the tail uses masked
   loads and stores, so it computes exactly what the body would. */
#define NN__MAP1_AVX2(n, in, out, EXPR) do { \
        size_t i_ = 0; __m256 v; \
        for (; i_ + 8 <= (n); i_ += 8) { v = _mm256_loadu_ps((in) + i_); _mm256_storeu_ps((out) + i_, (EXPR)); } \
        if (i_ < (n)) { \
            __m256i m_ = nn__tailmask8_avx2((n) - i_); \
            v = _mm256_maskload_ps((in) + i_, m_); \
            _mm256_maskstore_ps((out) + i_, m_, (EXPR)); \
        } \
    } while (0)
/* The same over two inputs, v from a and w from b. */
#define NN__MAP2_AVX2(n, a, b, out, EXPR) do { \
        size_t i_ = 0; __m256 v, w; \
        for (; i_ + 8 <= (n); i_ += 8) { \
            v = _mm256_loadu_ps((a) + i_); w = _mm256_loadu_ps((b) + i_); \
            _mm256_storeu_ps((out) + i_, (EXPR)); \
        } \
        if (i_ < (n)) { \
            __m256i m_ = nn__tailmask8_avx2((n) - i_); \
            v = _mm256_maskload_ps((a) + i_, m_); w = _mm256_maskload_ps((b) + i_, m_); \
            _mm256_maskstore_ps((out) + i_, m_, (EXPR)); \
        } \
    } while (0)

NN__TARGET_AVX2 static void nn__exp_avx2(size_t n, const float *x, float *y)
{
    NN__MAP1_AVX2(n, x, y, nn__exp8_avx2(v));
}

NN__TARGET_AVX2 static void nn__tanh_avx2(size_t n, const float *x, float *y)
{
    NN__MAP1_AVX2(n, x, y, nn__tanh8_avx2(v));
}

NN__TARGET_AVX2 static void nn__activation_forward_avx2(nn_activation kind, float p, size_t n, const float *x, float *y)
{
    const __m256 zero = _mm256_setzero_ps(), vp = _mm256_set1_ps(p);
    const __m256 sa = _mm256_set1_ps(NN__STANH_A), sb = _mm256_set1_ps(NN__STANH_B);
    switch (kind) {
    case NN_ACTIVATION_RELU: /* max(0, v) returns v when v is NaN */
        NN__MAP1_AVX2(n, x, y, _mm256_max_ps(zero, v));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP1_AVX2(n, x, y, _mm256_blendv_ps(_mm256_mul_ps(vp, v), v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP1_AVX2(n, x, y, nn__sigmoid8_avx2(v));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP1_AVX2(n, x, y, nn__tanh8_avx2(v));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP1_AVX2(n, x, y, _mm256_mul_ps(sa, nn__tanh8_avx2(_mm256_mul_ps(sb, v))));
        break;
    default:
        if (n && y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

NN__TARGET_AVX2 static void nn__activation_backward_avx2(nn_activation kind, float p, size_t n, const float *x,
                                                         const float *y, const float *dy, float *dx)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), vp = _mm256_set1_ps(p);
    const __m256 sa = _mm256_set1_ps(NN__STANH_A), sk = _mm256_set1_ps(NN__STANH_K);
    switch (kind) {
    case NN_ACTIVATION_RELU:
        NN__MAP2_AVX2(n, x, dy, dx, _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ), w));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP2_AVX2(n, x, dy, dx, _mm256_blendv_ps(_mm256_mul_ps(vp, w), w, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP2_AVX2(n, y, dy, dx, _mm256_mul_ps(w, _mm256_mul_ps(v, _mm256_sub_ps(one, v))));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP2_AVX2(n, y, dy, dx, _mm256_mul_ps(w, _mm256_mul_ps(_mm256_sub_ps(one, v), _mm256_add_ps(one, v))));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP2_AVX2(n, y, dy, dx, _mm256_mul_ps(w, _mm256_mul_ps(sk, _mm256_mul_ps(_mm256_sub_ps(sa, v), _mm256_add_ps(sa, v)))));
        break;
    default:
        if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

NN__TARGET_AVX2 static void nn__softmax_rows_avx2(int rows, int cols, const float *x, float *y, int log_softmax)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), floor_ = _mm256_set1_ps(NN__NEG_FLT_MAX);
    size_t n = cols > 0 ? (size_t)cols : 0, i;
    int r;
    if (rows <= 0 || n == 0) return;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        __m256 vm = ninf, vs = _mm256_setzero_ps(), vmx;
        __m256i mask = nn__tailmask8_avx2(n & 7);
        float m, s;
        for (i = 0; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(xr + i));
        if (i < n) vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, _mm256_maskload_ps(xr + i, mask), _mm256_castsi256_ps(mask)));
        m = nn__hmax8_avx2(vm);
        vmx = _mm256_set1_ps(m);
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 e = nn__exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vmx));
            if (!log_softmax) _mm256_storeu_ps(yr + i, e);
            vs = _mm256_add_ps(vs, e);
        }
        if (i < n) {
            __m256 e = nn__exp8_avx2(_mm256_sub_ps(_mm256_maskload_ps(xr + i, mask), vmx));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
            if (!log_softmax) _mm256_maskstore_ps(yr + i, mask, e);
            vs = _mm256_add_ps(vs, e);
        }
        s = nn__hsum8_avx2(vs);
        if (log_softmax) {
            const __m256 ls = _mm256_set1_ps(logf(s));
            NN__MAP1_AVX2(n, xr, yr, _mm256_max_ps(floor_, _mm256_sub_ps(_mm256_sub_ps(v, vmx), ls)));
        } else {
            const __m256 inv = _mm256_set1_ps(1.0f / s);
            NN__MAP1_AVX2(n, yr, yr, _mm256_mul_ps(v, inv));
        }
    }
}

/* ---- AVX-512 ---- */

#if defined(__GNUC__) && !defined(__clang__)
/* g++ 12 at -O2 reports the deliberate self-initialisation inside _mm512_undefined_ps() (GCC's own
   AVX-512 headers, used by most intrinsics) as -Wmaybe-uninitialized once inlined here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

NN__TARGET_AVX512 static inline __m512 nn__exp16_avx512(__m512 x)
{
    __m512 fn, r, z, p;
    x = _mm512_min_ps(_mm512_set1_ps(NN__EXP_HI), _mm512_max_ps(_mm512_set1_ps(NN__EXP_LO), x));
    fn = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(NN__LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(NN__EXP_C1), x);
    r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(NN__EXP_C2), r);
    z = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(_mm512_set1_ps(NN__EXP_P0), r, _mm512_set1_ps(NN__EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN__EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN__EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN__EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN__EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, fn); /* p * 2^fn with one rounding, overflow to inf, subnormals */
}

NN__TARGET_AVX512 static inline __m512 nn__tanh16_avx512(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_castps_si512(_mm512_set1_ps(-0.0f));
    __m512 a = _mm512_abs_ps(x), s = _mm512_mul_ps(a, a), p, e, small, large;
    p = _mm512_fmadd_ps(_mm512_set1_ps(NN__TANH_T0), s, _mm512_set1_ps(NN__TANH_T1));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(NN__TANH_T2));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(NN__TANH_T3));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(NN__TANH_T4));
    small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), a, a);
    e = nn__exp16_avx512(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    large = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    small = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(NN__TANH_SMALL), _CMP_LT_OQ), large, small);
    /* copy the sign of x back: bits of x where sign is set, else of small (0xca = a ? b : c) */
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(x), _mm512_castps_si512(small), 0xca));
}

NN__TARGET_AVX512 static inline __m512 nn__sigmoid16_avx512(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = nn__exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), e, one);
    return _mm512_div_ps(num, _mm512_add_ps(one, e));
}

#define NN__TAIL_MASK_AVX512(r) ((__mmask16)((1u << (r)) - 1u))
/* As NN__MAP1_AVX2 / NN__MAP2_AVX2, 16 lanes, masked tail. */
#define NN__MAP1_AVX512(n, in, out, EXPR) do { \
        size_t i_ = 0; __m512 v; \
        for (; i_ + 16 <= (n); i_ += 16) { v = _mm512_loadu_ps((in) + i_); _mm512_storeu_ps((out) + i_, (EXPR)); } \
        if (i_ < (n)) { \
            __mmask16 m_ = NN__TAIL_MASK_AVX512((n) - i_); \
            v = _mm512_maskz_loadu_ps(m_, (in) + i_); \
            _mm512_mask_storeu_ps((out) + i_, m_, (EXPR)); \
        } \
    } while (0)
#define NN__MAP2_AVX512(n, a, b, out, EXPR) do { \
        size_t i_ = 0; __m512 v, w; \
        for (; i_ + 16 <= (n); i_ += 16) { \
            v = _mm512_loadu_ps((a) + i_); w = _mm512_loadu_ps((b) + i_); \
            _mm512_storeu_ps((out) + i_, (EXPR)); \
        } \
        if (i_ < (n)) { \
            __mmask16 m_ = NN__TAIL_MASK_AVX512((n) - i_); \
            v = _mm512_maskz_loadu_ps(m_, (a) + i_); w = _mm512_maskz_loadu_ps(m_, (b) + i_); \
            _mm512_mask_storeu_ps((out) + i_, m_, (EXPR)); \
        } \
    } while (0)

NN__TARGET_AVX512 static void nn__exp_avx512(size_t n, const float *x, float *y)
{
    NN__MAP1_AVX512(n, x, y, nn__exp16_avx512(v));
}

NN__TARGET_AVX512 static void nn__tanh_avx512(size_t n, const float *x, float *y)
{
    NN__MAP1_AVX512(n, x, y, nn__tanh16_avx512(v));
}

NN__TARGET_AVX512 static void nn__activation_forward_avx512(nn_activation kind, float p, size_t n, const float *x, float *y)
{
    const __m512 zero = _mm512_setzero_ps(), vp = _mm512_set1_ps(p);
    const __m512 sa = _mm512_set1_ps(NN__STANH_A), sb = _mm512_set1_ps(NN__STANH_B);
    switch (kind) {
    case NN_ACTIVATION_RELU:
        NN__MAP1_AVX512(n, x, y, _mm512_max_ps(zero, v));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP1_AVX512(n, x, y, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), _mm512_mul_ps(vp, v), v));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP1_AVX512(n, x, y, nn__sigmoid16_avx512(v));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP1_AVX512(n, x, y, nn__tanh16_avx512(v));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP1_AVX512(n, x, y, _mm512_mul_ps(sa, nn__tanh16_avx512(_mm512_mul_ps(sb, v))));
        break;
    default:
        if (n && y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

NN__TARGET_AVX512 static void nn__activation_backward_avx512(nn_activation kind, float p, size_t n, const float *x,
                                                             const float *y, const float *dy, float *dx)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), vp = _mm512_set1_ps(p);
    const __m512 sa = _mm512_set1_ps(NN__STANH_A), sk = _mm512_set1_ps(NN__STANH_K);
    switch (kind) {
    case NN_ACTIVATION_RELU:
        NN__MAP2_AVX512(n, x, dy, dx, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), w));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP2_AVX512(n, x, dy, dx, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), _mm512_mul_ps(vp, w), w));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP2_AVX512(n, y, dy, dx, _mm512_mul_ps(w, _mm512_mul_ps(v, _mm512_sub_ps(one, v))));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP2_AVX512(n, y, dy, dx, _mm512_mul_ps(w, _mm512_mul_ps(_mm512_sub_ps(one, v), _mm512_add_ps(one, v))));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP2_AVX512(n, y, dy, dx, _mm512_mul_ps(w, _mm512_mul_ps(sk, _mm512_mul_ps(_mm512_sub_ps(sa, v), _mm512_add_ps(sa, v)))));
        break;
    default:
        if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

NN__TARGET_AVX512 static void nn__softmax_rows_avx512(int rows, int cols, const float *x, float *y, int log_softmax)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY), floor_ = _mm512_set1_ps(NN__NEG_FLT_MAX);
    size_t n = cols > 0 ? (size_t)cols : 0, i;
    int r;
    if (rows <= 0 || n == 0) return;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        __m512 vm = ninf, vs = _mm512_setzero_ps(), vmx;
        __mmask16 mask = NN__TAIL_MASK_AVX512(n & 15);
        float s;
        for (i = 0; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(xr + i));
        if (i < n) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, mask, xr + i));
        vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
        for (i = 0; i + 16 <= n; i += 16) {
            __m512 e = nn__exp16_avx512(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vmx));
            if (!log_softmax) _mm512_storeu_ps(yr + i, e);
            vs = _mm512_add_ps(vs, e);
        }
        if (i < n) {
            __m512 e = nn__exp16_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, xr + i), vmx));
            if (!log_softmax) _mm512_mask_storeu_ps(yr + i, mask, e);
            vs = _mm512_mask_add_ps(vs, mask, vs, e);
        }
        s = _mm512_reduce_add_ps(vs);
        if (log_softmax) {
            const __m512 ls = _mm512_set1_ps(logf(s));
            NN__MAP1_AVX512(n, xr, yr, _mm512_max_ps(floor_, _mm512_sub_ps(_mm512_sub_ps(v, vmx), ls)));
        } else {
            const __m512 inv = _mm512_set1_ps(1.0f / s);
            NN__MAP1_AVX512(n, yr, yr, _mm512_mul_ps(v, inv));
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#undef NN__MAP1_AVX2
#undef NN__MAP2_AVX2
#undef NN__MAP1_AVX512
#undef NN__MAP2_AVX512
#undef NN__TAIL_MASK_AVX512
#endif /* NN__X86 */

#if NN__ARM64
/* ---- NEON (AArch64) ---- */

static inline float32x4_t nn__exp4_neon(float32x4_t x)
{
    float32x4_t fn, r, z, p;
    int32x4_t k, k1, k2, bias = vdupq_n_s32(127);
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(NN__EXP_LO)), vdupq_n_f32(NN__EXP_HI)); /* FMAX/FMIN keep NaN */
    fn = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(NN__LOG2E)));
    r = vfmsq_f32(x, fn, vdupq_n_f32(NN__EXP_C1));
    r = vfmsq_f32(r, fn, vdupq_n_f32(NN__EXP_C2));
    z = vmulq_f32(r, r);
    p = vfmaq_f32(vdupq_n_f32(NN__EXP_P1), vdupq_n_f32(NN__EXP_P0), r);
    p = vfmaq_f32(vdupq_n_f32(NN__EXP_P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(NN__EXP_P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(NN__EXP_P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(NN__EXP_P5), p, r);
    p = vaddq_f32(vfmaq_f32(r, p, z), vdupq_n_f32(1.0f));
    k = vcvtq_s32_f32(fn); /* fn is integral; NaN converts to 0 and p is NaN anyway */
    k1 = vshrq_n_s32(k, 1);
    k2 = vsubq_s32(k, k1);
    p = vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, bias), 23)));
    return vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k2, bias), 23)));
}

static inline float32x4_t nn__tanh4_neon(float32x4_t x)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t a = vabsq_f32(x), s = vmulq_f32(a, a), p, e, small, large;
    p = vfmaq_f32(vdupq_n_f32(NN__TANH_T1), vdupq_n_f32(NN__TANH_T0), s);
    p = vfmaq_f32(vdupq_n_f32(NN__TANH_T2), p, s);
    p = vfmaq_f32(vdupq_n_f32(NN__TANH_T3), p, s);
    p = vfmaq_f32(vdupq_n_f32(NN__TANH_T4), p, s);
    small = vfmaq_f32(a, vmulq_f32(p, s), a);
    e = nn__exp4_neon(vmulq_f32(a, vdupq_n_f32(-2.0f)));
    large = vdivq_f32(vsubq_f32(one, e), vaddq_f32(one, e));
    small = vbslq_f32(vcltq_f32(a, vdupq_n_f32(NN__TANH_SMALL)), small, large);
    return vbslq_f32(vdupq_n_u32(0x80000000u), x, small);
}

static inline float32x4_t nn__sigmoid4_neon(float32x4_t x)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t e = nn__exp4_neon(vnegq_f32(vabsq_f32(x)));
    float32x4_t num = vbslq_f32(vcgeq_f32(x, vdupq_n_f32(0.0f)), one, e);
    return vdivq_f32(num, vaddq_f32(one, e));
}

/* out[i] = EXPR over 4-float vectors; the tail goes through a zero-padded stack buffer so it
   computes exactly what the body would. */
#define NN__MAP1_NEON(n, in, out, EXPR) do { \
        size_t i_ = 0; float32x4_t v; \
        for (; i_ + 4 <= (n); i_ += 4) { v = vld1q_f32((in) + i_); vst1q_f32((out) + i_, (EXPR)); } \
        if (i_ < (n)) { \
            float b_[4] = {0.0f, 0.0f, 0.0f, 0.0f}; \
            memcpy(b_, (in) + i_, ((n) - i_) * sizeof(float)); \
            v = vld1q_f32(b_); vst1q_f32(b_, (EXPR)); \
            memcpy((out) + i_, b_, ((n) - i_) * sizeof(float)); \
        } \
    } while (0)
#define NN__MAP2_NEON(n, a, b, out, EXPR) do { \
        size_t i_ = 0; float32x4_t v, w; \
        for (; i_ + 4 <= (n); i_ += 4) { \
            v = vld1q_f32((a) + i_); w = vld1q_f32((b) + i_); vst1q_f32((out) + i_, (EXPR)); \
        } \
        if (i_ < (n)) { \
            float b1_[4] = {0.0f, 0.0f, 0.0f, 0.0f}, b2_[4] = {0.0f, 0.0f, 0.0f, 0.0f}; \
            memcpy(b1_, (a) + i_, ((n) - i_) * sizeof(float)); \
            memcpy(b2_, (b) + i_, ((n) - i_) * sizeof(float)); \
            v = vld1q_f32(b1_); w = vld1q_f32(b2_); vst1q_f32(b1_, (EXPR)); \
            memcpy((out) + i_, b1_, ((n) - i_) * sizeof(float)); \
        } \
    } while (0)

static void nn__exp_neon(size_t n, const float *x, float *y)
{
    NN__MAP1_NEON(n, x, y, nn__exp4_neon(v));
}

static void nn__tanh_neon(size_t n, const float *x, float *y)
{
    NN__MAP1_NEON(n, x, y, nn__tanh4_neon(v));
}

static void nn__activation_forward_neon(nn_activation kind, float p, size_t n, const float *x, float *y)
{
    const float32x4_t zero = vdupq_n_f32(0.0f), vp = vdupq_n_f32(p);
    const float32x4_t sa = vdupq_n_f32(NN__STANH_A), sb = vdupq_n_f32(NN__STANH_B);
    switch (kind) {
    case NN_ACTIVATION_RELU: /* select, not FMAX, to match the other backends on -0 */
        NN__MAP1_NEON(n, x, y, vbslq_f32(vcltq_f32(v, zero), zero, v));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP1_NEON(n, x, y, vbslq_f32(vcgtq_f32(v, zero), v, vmulq_f32(vp, v)));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP1_NEON(n, x, y, nn__sigmoid4_neon(v));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP1_NEON(n, x, y, nn__tanh4_neon(v));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP1_NEON(n, x, y, vmulq_f32(sa, nn__tanh4_neon(vmulq_f32(sb, v))));
        break;
    default:
        if (n && y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

static void nn__activation_backward_neon(nn_activation kind, float p, size_t n, const float *x,
                                         const float *y, const float *dy, float *dx)
{
    const float32x4_t zero = vdupq_n_f32(0.0f), one = vdupq_n_f32(1.0f), vp = vdupq_n_f32(p);
    const float32x4_t sa = vdupq_n_f32(NN__STANH_A), sk = vdupq_n_f32(NN__STANH_K);
    switch (kind) {
    case NN_ACTIVATION_RELU:
        NN__MAP2_NEON(n, x, dy, dx, vbslq_f32(vcgtq_f32(v, zero), w, zero));
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        NN__MAP2_NEON(n, x, dy, dx, vbslq_f32(vcgtq_f32(v, zero), w, vmulq_f32(vp, w)));
        break;
    case NN_ACTIVATION_SIGMOID:
        NN__MAP2_NEON(n, y, dy, dx, vmulq_f32(w, vmulq_f32(v, vsubq_f32(one, v))));
        break;
    case NN_ACTIVATION_TANH:
        NN__MAP2_NEON(n, y, dy, dx, vmulq_f32(w, vmulq_f32(vsubq_f32(one, v), vaddq_f32(one, v))));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        NN__MAP2_NEON(n, y, dy, dx, vmulq_f32(w, vmulq_f32(sk, vmulq_f32(vsubq_f32(sa, v), vaddq_f32(sa, v)))));
        break;
    default:
        if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

static void nn__softmax_rows_neon(int rows, int cols, const float *x, float *y, int log_softmax)
{
    const float32x4_t floor_ = vdupq_n_f32(NN__NEG_FLT_MAX);
    size_t n = cols > 0 ? (size_t)cols : 0, i;
    int r;
    if (rows <= 0 || n == 0) return;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        float32x4_t vm = vdupq_n_f32(-INFINITY), vs = vdupq_n_f32(0.0f), vmx;
        float s;
        for (i = 0; i + 4 <= n; i += 4) vm = vmaxq_f32(vm, vld1q_f32(xr + i));
        vmx = vdupq_n_f32(vmaxvq_f32(vm));
        for (; i < n; i++) vmx = vmaxq_f32(vmx, vdupq_n_f32(xr[i]));
        for (i = 0; i + 4 <= n; i += 4) {
            float32x4_t e = nn__exp4_neon(vsubq_f32(vld1q_f32(xr + i), vmx));
            if (!log_softmax) vst1q_f32(yr + i, e);
            vs = vaddq_f32(vs, e);
        }
        if (i < n) {
            float b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float32x4_t e;
            memcpy(b, xr + i, (n - i) * sizeof(float));
            e = nn__exp4_neon(vsubq_f32(vld1q_f32(b), vmx));
            vst1q_f32(b, e);
            if (!log_softmax) memcpy(yr + i, b, (n - i) * sizeof(float));
            memset(b + (n - i), 0, (4 - (n - i)) * sizeof(float)); /* only live lanes go into the sum */
            vs = vaddq_f32(vs, vld1q_f32(b));
        }
        s = vaddvq_f32(vs);
        if (log_softmax) {
            const float32x4_t ls = vdupq_n_f32(logf(s));
            NN__MAP1_NEON(n, xr, yr, vmaxq_f32(vsubq_f32(vsubq_f32(v, vmx), ls), floor_));
        } else {
            const float32x4_t inv = vdupq_n_f32(1.0f / s);
            NN__MAP1_NEON(n, yr, yr, vmulq_f32(v, inv));
        }
    }
}

#undef NN__MAP1_NEON
#undef NN__MAP2_NEON
#endif /* NN__ARM64 */

#undef NN__EXP_HI
#undef NN__EXP_LO
#undef NN__LOG2E
#undef NN__EXP_C1
#undef NN__EXP_C2
#undef NN__EXP_P0
#undef NN__EXP_P1
#undef NN__EXP_P2
#undef NN__EXP_P3
#undef NN__EXP_P4
#undef NN__EXP_P5
#undef NN__TANH_SMALL
#undef NN__TANH_T0
#undef NN__TANH_T1
#undef NN__TANH_T2
#undef NN__TANH_T3
#undef NN__TANH_T4
#undef NN__STANH_A
#undef NN__STANH_B
#undef NN__STANH_K
#undef NN__NEG_FLT_MAX
