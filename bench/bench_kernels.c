/* bench/bench_kernels.c - Google Benchmark microbenchmarks of nn.h's kernels (through
   bench/shim.h), with OpenBLAS's cblas_sgemm and oneDNN as the references in the same binary.

   Rows are named <kernel>/<impl>/<shape>, impl one of scalar, avx2, avx512, neon (nn.h's kernel
   tables, chosen with nn_set_backend), openblas or onednn. A backend the CPU lacks is skipped
   with the reason. Also train_step/<model> (whole training steps on the default backend) and
   peak/<isa>/fma (independent FMA chains in registers: the core's peak FLOP rate), and
   peak/avx512/bf16 (independent vdpbf16ps chains: the AVX512_BF16 peak, 2 multiply-adds per lane).

   Every row that counts FLOPs reports GFLOPS and peak%: its GFLOPS as a percentage of the FMA
   peak measured once before the rows run (the fma_peak line of the header; times the thread
   count). Google Benchmark prints peak% with a "/s" because it is computed as a rate; the
   number is the percentage. The bf16 GEMM rows (sgemm_bf16*: nn_sgemm_bf16, float GEMM on
   bf16-rounded operands) also report bf16_peak%, their share of the vdpbf16ps peak (the
   bf16_peak line of the header), where the CPU has AVX512_BF16.

   The onednn rows (dnnl_sgemm for every GEMM shape; oneDNN's convolution primitives for every
   convolution shape and pass) are compiled when bench.mk finds oneDNN's header, which defines
   NN_BENCH_ONEDNN and links -ldnnl; otherwise they are skipped with the reason. Their label
   names the implementation oneDNN picked (e.g. "jit:avx512_core") and the layouts of its
   tensors in oneDNN's notation (aBcd16b: NCHW with 16-channel blocks, PyTorch's nChw16c).

   Usage: bench_kernels [--threads N] [Google Benchmark flags]
       --threads N   nn.h, OpenBLAS and oneDNN threads (default 1: single-core numbers, timed by
                     the thread's CPU time; with N > 1 rows are timed by the wall clock and Google
                     Benchmark appends /real_time to their names)
   e.g.  bench_kernels --benchmark_filter='^sgemm/' --benchmark_format=json
         bench_kernels --benchmark_min_time=0.01           (smoke: every row, briefly)
   `make bench BENCH_ARGS=...` builds and runs it. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include "shim.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#define BENCH_ARM64 1
#endif

/* OpenBLAS (cblas.h from libopenblas-dev declares these too; repeated for other cblas.h). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

/* oneDNN: BENCH_ONEDNN when its rows can run, else BENCH_ONEDNN_MISSING says why they are
   skipped. They use oneDNN 2.x's C API (3.0 replaced the operation descriptors) and hold oneDNN
   to --threads with omp_set_num_threads, which needs its OpenMP runtime (Debian's build) and
   this program built with OpenMP (the same libgomp). */
#ifdef NN_BENCH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#if DNNL_VERSION_MAJOR == 2 && DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP && defined(_OPENMP)
#define BENCH_ONEDNN 1
#else
#define BENCH_ONEDNN_MISSING "the onednn rows need oneDNN 2.x built with OpenMP, and OpenMP here"
#endif
#else
#define BENCH_ONEDNN_MISSING "built without oneDNN (libdnnl-dev: scripts/setup.sh bench installs it)"
#endif

static const char *const nn_impls[] = {"scalar", "avx2", "avx512", "neon"};
#define NN_IMPL_COUNT 4
static int g_threads = 1;

/* ---- helpers ---------------------------------------------------------------------------- */
static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0) n = 1;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return NULL;
    return (float *)p;
}

static float *random_floats(size_t n, nn_rng *rng, float scale)
{
    float *p = alloc_floats(n);
    size_t i;
    if (p)
        for (i = 0; i < n; i++) p[i] = scale * nn_rng_normal(rng);
    return p;
}

static int is_openblas(const char *impl) { return !strcmp(impl, "openblas"); }
static int is_onednn(const char *impl) { return !strcmp(impl, "onednn"); }

/* Makes impl the active nn.h backend; skips the row (and returns 0) when the CPU lacks it, or
   when impl is onednn and this build has no oneDNN. */
static int select_impl(nnb_state *s, const char *impl)
{
    char why[96];
    if (is_openblas(impl)) return 1;
    if (is_onednn(impl)) {
#ifdef BENCH_ONEDNN
        return 1;
#else
        nnb_skip(s, BENCH_ONEDNN_MISSING);
        return 0;
#endif
    }
    if (!nn_backend_supported(impl)) {
        snprintf(why, sizeof why, "CPU lacks %s", impl);
        nnb_skip(s, why);
        return 0;
    }
    if (nn_set_backend(impl) != NN_OK) {
        nnb_fail(s, nn_last_error());
        return 0;
    }
    return 1;
}

static int check(nnb_state *s, nn_status status)
{
    if (status == NN_OK) return 1;
    nnb_fail(s, nn_last_error());
    return 0;
}

/* The timed loop of a row: repeats call, which check() has seen succeed with the same arguments,
   while the benchmark runs; a later failure (a library bug) still fails the row. */
#define TIMED_LOOP(s, call) do { \
        int timed_failed_ = 0; \
        while (nnb_keep_running(s)) timed_failed_ |= (call) != NN_OK; \
        if (timed_failed_) nnb_fail(s, nn_last_error()); \
    } while (0)

static int check_alloc(nnb_state *s, int ok)
{
    if (!ok) nnb_fail(s, "out of memory");
    return ok;
}

/* Registered rows keep their case here for the program's lifetime. */
static void *keep(const void *value, size_t size)
{
    void *p = malloc(size);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    memcpy(p, value, size);
    return p;
}

/* ---- oneDNN ------------------------------------------------------------------------------ */
#ifdef BENCH_ONEDNN
/* One CPU engine and stream for every row, made on first use and freed at exit. */
static dnnl_engine_t g_onednn_engine;
static dnnl_stream_t g_onednn_stream;

/* Fails the row with oneDNN's status (and returns 0) unless status is dnnl_success. */
static int onednn_check(nnb_state *s, dnnl_status_t status, const char *what)
{
    char why[160];
    if (status == dnnl_success) return 1;
    snprintf(why, sizeof why, "%s: %s", what, dnnl_status2str(status));
    nnb_fail(s, why);
    return 0;
}

static int onednn_start(nnb_state *s)
{
    if (!g_onednn_engine && !onednn_check(s, dnnl_engine_create(&g_onednn_engine, dnnl_cpu, 0), "dnnl_engine_create"))
        return 0;
    if (!g_onednn_stream &&
        !onednn_check(s, dnnl_stream_create(&g_onednn_stream, g_onednn_engine, dnnl_stream_default_flags),
                      "dnnl_stream_create"))
        return 0;
    return 1;
}

static void onednn_stop(void)
{
    if (g_onednn_stream) dnnl_stream_destroy(g_onednn_stream);
    if (g_onednn_engine) dnnl_engine_destroy(g_onednn_engine);
}

/* A blocked layout in oneDNN's notation: the dimensions a, b, c, d from the largest stride to
   the smallest (upper case when blocked), then the inner blocks: "abcd" is NCHW, "acdb" NHWC,
   "aBcd16b" NCHW in 16-channel blocks (nChw16c), "ABcd16b16a" OIHW in 16x16 blocks. */
static void onednn_layout(const dnnl_memory_desc_t *md, char *out, size_t size)
{
    const dnnl_blocking_desc_t *blocking = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], blocked[DNNL_MAX_NDIMS], i, j;
    size_t length = 0;
    if (md->format_kind != dnnl_blocked || md->ndims > DNNL_MAX_NDIMS) {
        snprintf(out, size, "%s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    for (i = 0; i < md->ndims; i++) {
        order[i] = i;
        blocked[i] = 0;
    }
    for (i = 0; i < blocking->inner_nblks; i++) blocked[blocking->inner_idxs[i]] = 1;
    for (i = 1; i < md->ndims; i++) /* insertion sort, largest stride first; ties keep a, b, c order */
        for (j = i; j > 0 && blocking->strides[order[j - 1]] < blocking->strides[order[j]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (i = 0; i < md->ndims && length + 1 < size; i++) out[length++] = (char)((blocked[order[i]] ? 'A' : 'a') + order[i]);
    out[length] = '\0';
    for (i = 0; i < blocking->inner_nblks && length < size; i++) {
        const int n = snprintf(out + length, size - length, "%d%c", (int)blocking->inner_blks[i],
                               'a' + (int)blocking->inner_idxs[i]);
        if (n < 0) break;
        length += (size_t)n;
    }
}
#endif

/* ---- sgemm ------------------------------------------------------------------------------ */
typedef struct gemm_case {
    const char *impl;
    int m, n, k, ta, tb;
    int bf16; /* nn_sgemm_bf16 */
} gemm_case;

static double g_bf16_peak = 0.0; /* FLOP/s of vdpbf16ps (0: the CPU has no AVX512_BF16) */

static void bm_sgemm(nnb_state *s, void *user)
{
    const gemm_case *c = (const gemm_case *)user;
    nn_rng rng = nn_rng_new(1);
    const int lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n, ldc = c->n;
    const int reference = is_openblas(c->impl) || is_onednn(c->impl); /* not nn.h: no workspace */
    size_t ws_floats = nn_sgemm_workspace_size();
    float *a, *b, *out, *ws;
    if (!select_impl(s, c->impl)) return;
    a = random_floats((size_t)c->m * c->k, &rng, 1.0f);
    b = random_floats((size_t)c->k * c->n, &rng, 1.0f);
    out = alloc_floats((size_t)c->m * c->n);
    ws = reference ? NULL : alloc_floats(ws_floats);
    if (check_alloc(s, a && b && out && (ws || reference))) {
        if (is_openblas(c->impl)) {
            const enum CBLAS_TRANSPOSE ta = c->ta ? CblasTrans : CblasNoTrans, tb = c->tb ? CblasTrans : CblasNoTrans;
            while (nnb_keep_running(s))
                cblas_sgemm(CblasRowMajor, ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc);
#ifdef BENCH_ONEDNN
        } else if (is_onednn(c->impl)) { /* row-major, like cblas_sgemm with CblasRowMajor */
            const char ta = c->ta ? 'T' : 'N', tb = c->tb ? 'T' : 'N';
            char label[64];
            if (onednn_check(s, dnnl_sgemm(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc), "dnnl_sgemm"))
                while (nnb_keep_running(s)) dnnl_sgemm(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc);
            snprintf(label, sizeof label, "dnnl_sgemm, isa %s", dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()));
            nnb_set_label(s, label);
#endif
        } else {
            const nn_transpose ta = c->ta ? NN_TRANSPOSE : NN_NO_TRANSPOSE, tb = c->tb ? NN_TRANSPOSE : NN_NO_TRANSPOSE;
            if (c->bf16) {
                if (check(s, nn_sgemm_bf16(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc, ws, ws_floats)))
                    TIMED_LOOP(s,
                        nn_sgemm_bf16(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc, ws, ws_floats));
                if (g_bf16_peak > 0.0) nnb_set_rate_counter(s, "bf16_peak%", 2.0 * c->m * c->n * c->k * 100.0 / (g_bf16_peak * g_threads));
            } else if (check(s, nn_sgemm(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc, ws, ws_floats))) {
                TIMED_LOOP(s,
                    nn_sgemm(ta, tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, ldc, ws, ws_floats));
            }
        }
        nnb_do_not_optimize(out);
        nnb_set_flops_per_iteration(s, 2.0 * c->m * c->n * c->k);
    }
    free(a);
    free(b);
    free(out);
    free(ws);
}

static void register_sgemm(void)
{
    /* m, n, k, transpose A, transpose B. 64x64x784 and 256x64x784: a 784-input linear layer's
       forward (x W^T: _nt); 64x784x64: its backward (dy W) and weight gradient (dy^T x: _tn);
       6x36864x25 and 16x4096x150: LeNet's convolutions as im2col GEMMs (batch 64). */
    static const int shapes[][5] = {
        {64, 64, 784, 0, 0},   {64, 64, 784, 0, 1},    {64, 784, 64, 0, 0},    {64, 784, 64, 1, 0},
        {256, 64, 784, 0, 0},  {256, 64, 784, 0, 1},   {128, 128, 128, 0, 0},  {512, 512, 512, 0, 0},
        {512, 512, 512, 0, 1}, {512, 512, 512, 1, 0},  {1024, 1024, 1024, 0, 0}, {6, 36864, 25, 0, 0},
        {16, 4096, 150, 0, 0},
    };
    static const char *const impls[] = {"scalar", "avx2", "avx512", "neon", "openblas", "onednn"};
    size_t i, j;
    int bf16;
    for (bf16 = 0; bf16 < 2; bf16++) /* the bf16 rows (nn.h's backends only) after the float ones */
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (j = 0; j < sizeof impls / sizeof impls[0]; j++) {
            gemm_case c;
            char name[128];
            const char *variant = shapes[i][3] ? "_tn" : shapes[i][4] ? "_nt" : "";
            if (bf16 && (is_openblas(impls[j]) || is_onednn(impls[j]))) continue;
            c.bf16 = bf16;
            c.impl = impls[j];
            c.m = shapes[i][0];
            c.n = shapes[i][1];
            c.k = shapes[i][2];
            c.ta = shapes[i][3];
            c.tb = shapes[i][4];
            snprintf(name, sizeof name, "sgemm%s%s/%s/%dx%dx%d", bf16 ? "_bf16" : "", variant, c.impl, c.m, c.n, c.k);
            nnb_register(name, bm_sgemm, keep(&c, sizeof c));
        }
}

/* ---- convolution ------------------------------------------------------------------------ */
typedef enum conv_pass { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHT } conv_pass;

typedef struct conv_case {
    const char *impl;
    conv_pass pass;
    nn_conv2d_shape shape;
} conv_case;

/* The reference: per image, im2col (same layout as nn.h's) then one cblas_sgemm. */
static void im2col(const nn_conv2d_shape *s, int oh, int ow, const float *x, float *col)
{
    int c, ky, kx, oy, ox;
    for (c = 0; c < s->in_channels; c++)
        for (ky = 0; ky < s->kernel_height; ky++)
            for (kx = 0; kx < s->kernel_width; kx++) {
                const float *xc = x + (size_t)c * s->in_height * s->in_width;
                for (oy = 0; oy < oh; oy++) {
                    const int iy = oy * s->stride_height - s->pad_height + ky;
                    for (ox = 0; ox < ow; ox++) {
                        const int ix = ox * s->stride_width - s->pad_width + kx;
                        *col++ = iy >= 0 && iy < s->in_height && ix >= 0 && ix < s->in_width
                                     ? xc[(size_t)iy * s->in_width + ix]
                                     : 0.0f;
                    }
                }
            }
}

static void conv_forward_openblas(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *w, float *y,
                                  float *col)
{
    const int ckk = s->in_channels * s->kernel_height * s->kernel_width, spatial = oh * ow;
    int b;
    for (b = 0; b < s->batch; b++) {
        im2col(s, oh, ow, x + (size_t)b * s->in_channels * s->in_height * s->in_width, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_channels, spatial, ckk, 1.0f, w, ckk, col, spatial,
                    0.0f, y + (size_t)b * s->out_channels * spatial, spatial);
    }
}

#ifdef BENCH_ONEDNN
/* oneDNN's convolution as a framework uses it: the primitive picks its preferred layouts
   (dnnl_format_tag_any), the inputs are reordered into them from NCHW/OIHW once, and the primitive
   is made once; the timed loop only executes it. The backward primitives are made with the
   forward one as their hint, as in training. x, w and y play the roles of bm_conv's loops:
   (x, w) -> y forward, (dy = y, w) -> dx = x, (x, dy = y) -> dw = w. Returns 0 on failure. */
static int conv_onednn(nnb_state *s, const conv_case *c, int oh, int ow, float *x, float *w, float *y)
{
    enum { X, W, Y, TENSORS };
    const nn_conv2d_shape *sh = &c->shape;
    const dnnl_dims_t dims[TENSORS] = {{sh->batch, sh->in_channels, sh->in_height, sh->in_width},
                                       {sh->out_channels, sh->in_channels, sh->kernel_height, sh->kernel_width},
                                       {sh->batch, sh->out_channels, oh, ow}};
    const dnnl_format_tag_t user_tags[TENSORS] = {dnnl_nchw, dnnl_oihw, dnnl_nchw};
    const dnnl_dims_t strides = {sh->stride_height, sh->stride_width}, padding = {sh->pad_height, sh->pad_width};
    /* Per pass, each tensor's execution argument, its memory descriptor query, and whether it is read. */
    static const int args[3][TENSORS] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                                         {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
                                         {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST}};
    static const dnnl_query_t queries[3][TENSORS] = {
        {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
        {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
        {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md}};
    static const int inputs[3][TENSORS] = {{1, 1, 0}, {0, 1, 1}, {1, 0, 1}};
    float *user_data[TENSORS];
    dnnl_memory_desc_t any[TENSORS], user[TENSORS];
    dnnl_convolution_desc_t forward_desc, desc;
    dnnl_primitive_desc_t forward_pd = NULL, pd = NULL;
    dnnl_primitive_t primitive = NULL;
    dnnl_memory_t memory[TENSORS] = {NULL, NULL, NULL};
    dnnl_exec_arg_t exec_args[TENSORS];
    const char *impl = "?";
    char label[192], layouts[TENSORS][32];
    int ok, t;
    user_data[X] = x;
    user_data[W] = w;
    user_data[Y] = y;
    ok = onednn_start(s);
    for (t = 0; ok && t < TENSORS; t++)
        ok = onednn_check(s, dnnl_memory_desc_init_by_tag(&any[t], 4, dims[t], dnnl_f32, dnnl_format_tag_any),
                          "dnnl_memory_desc_init_by_tag") &&
             onednn_check(s, dnnl_memory_desc_init_by_tag(&user[t], 4, dims[t], dnnl_f32, user_tags[t]),
                          "dnnl_memory_desc_init_by_tag");
    ok = ok &&
         onednn_check(s, dnnl_convolution_forward_desc_init(&forward_desc, dnnl_forward_training, dnnl_convolution_direct,
                                                            &any[X], &any[W], NULL, &any[Y], strides, padding, padding),
                      "dnnl_convolution_forward_desc_init") &&
         onednn_check(s, dnnl_primitive_desc_create(&forward_pd, &forward_desc, NULL, g_onednn_engine, NULL),
                      "dnnl_primitive_desc_create (forward)");
    if (ok && c->pass == CONV_FWD) {
        pd = forward_pd;
        forward_pd = NULL;
    } else if (ok) {
        ok = c->pass == CONV_BWD_DATA
                 ? onednn_check(s, dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &any[X],
                                                                           &any[W], &any[Y], strides, padding, padding),
                                "dnnl_convolution_backward_data_desc_init")
                 : onednn_check(s, dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &any[X],
                                                                              &any[W], NULL, &any[Y], strides, padding,
                                                                              padding),
                                "dnnl_convolution_backward_weights_desc_init");
        ok = ok && onednn_check(s, dnnl_primitive_desc_create(&pd, &desc, NULL, g_onednn_engine, forward_pd),
                                "dnnl_primitive_desc_create (backward)");
    }
    ok = ok && onednn_check(s, dnnl_primitive_create(&primitive, pd), "dnnl_primitive_create");
    /* Each tensor in the primitive's layout; the inputs filled from the NCHW/OIHW data. */
    for (t = 0; ok && t < TENSORS; t++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, queries[c->pass][t], 0);
        ok = onednn_check(s, md ? dnnl_memory_create(&memory[t], md, g_onednn_engine, DNNL_MEMORY_ALLOCATE)
                                : dnnl_runtime_error,
                          "dnnl_memory_create");
        if (ok) onednn_layout(md, layouts[t], sizeof layouts[t]);
        if (ok && inputs[c->pass][t]) {
            dnnl_memory_t from = NULL;
            dnnl_primitive_desc_t reorder_pd = NULL;
            dnnl_primitive_t reorder = NULL;
            dnnl_exec_arg_t reorder_args[2];
            ok = onednn_check(s, dnnl_memory_create(&from, &user[t], g_onednn_engine, user_data[t]), "dnnl_memory_create") &&
                 onednn_check(s, dnnl_reorder_primitive_desc_create(&reorder_pd, &user[t], g_onednn_engine, md,
                                                                    g_onednn_engine, NULL),
                              "dnnl_reorder_primitive_desc_create") &&
                 onednn_check(s, dnnl_primitive_create(&reorder, reorder_pd), "dnnl_primitive_create (reorder)");
            reorder_args[0].arg = DNNL_ARG_FROM;
            reorder_args[0].memory = from;
            reorder_args[1].arg = DNNL_ARG_TO;
            reorder_args[1].memory = memory[t];
            ok = ok && onednn_check(s, dnnl_primitive_execute(reorder, g_onednn_stream, 2, reorder_args), "reorder") &&
                 onednn_check(s, dnnl_stream_wait(g_onednn_stream), "dnnl_stream_wait");
            if (reorder) dnnl_primitive_destroy(reorder);
            if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
            if (from) dnnl_memory_destroy(from);
        }
        exec_args[t].arg = args[c->pass][t];
        exec_args[t].memory = memory[t];
    }
    ok = ok && onednn_check(s, dnnl_primitive_execute(primitive, g_onednn_stream, TENSORS, exec_args), "execute") &&
         onednn_check(s, dnnl_stream_wait(g_onednn_stream), "dnnl_stream_wait");
    if (ok) {
        while (nnb_keep_running(s)) {
            dnnl_primitive_execute(primitive, g_onednn_stream, TENSORS, exec_args);
            dnnl_stream_wait(g_onednn_stream);
        }
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        /* e.g. "jit:avx512_core, x aBcd16b, w ABcd16b16a, y aBcd16b" */
        snprintf(label, sizeof label, "%s, x %s, w %s, y %s", impl, layouts[X], layouts[W], layouts[Y]);
        nnb_set_label(s, label);
    }
    for (t = 0; t < TENSORS; t++)
        if (memory[t]) dnnl_memory_destroy(memory[t]);
    if (primitive) dnnl_primitive_destroy(primitive);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (forward_pd) dnnl_primitive_desc_destroy(forward_pd);
    return ok;
}
#endif

static void bm_conv(nnb_state *s, void *user)
{
    const conv_case *c = (const conv_case *)user;
    const nn_conv2d_shape *sh = &c->shape;
    nn_rng rng = nn_rng_new(2);
    int oh = 0, ow = 0;
    size_t nx, nw, ny, nws;
    float *x, *w, *y, *ws;
    if (!select_impl(s, c->impl)) return;
    if (!check(s, nn_conv2d_output_size(sh, &oh, &ow))) return;
    nx = (size_t)sh->batch * sh->in_channels * sh->in_height * sh->in_width;
    nw = (size_t)sh->out_channels * sh->in_channels * sh->kernel_height * sh->kernel_width;
    ny = (size_t)sh->batch * sh->out_channels * oh * ow;
    nws = is_openblas(c->impl)  ? (size_t)sh->in_channels * sh->kernel_height * sh->kernel_width * oh * ow
          : is_onednn(c->impl) ? 0 /* oneDNN keeps its own scratchpad */
                               : nn_conv2d_workspace_size(sh);
    x = random_floats(nx, &rng, 1.0f);
    w = random_floats(nw, &rng, 0.1f);
    y = random_floats(ny, &rng, 1.0f);
    ws = alloc_floats(nws);
    if (check_alloc(s, x && w && y && ws)) {
        int ok = 1;
        if (is_openblas(c->impl)) {
            while (nnb_keep_running(s)) conv_forward_openblas(sh, oh, ow, x, w, y, ws);
#ifdef BENCH_ONEDNN
        } else if (is_onednn(c->impl)) {
            ok = conv_onednn(s, c, oh, ow, x, w, y);
#endif
        } else if (c->pass == CONV_FWD) {
            if ((ok = check(s, nn_conv2d_forward(sh, x, w, NULL, y, ws, nws))))
                TIMED_LOOP(s, nn_conv2d_forward(sh, x, w, NULL, y, ws, nws));
        } else if (c->pass == CONV_BWD_DATA) { /* dy = y, dx = x */
            if ((ok = check(s, nn_conv2d_backward_data(sh, y, w, x, ws, nws))))
                TIMED_LOOP(s, nn_conv2d_backward_data(sh, y, w, x, ws, nws));
        } else { /* dw = w */
            if ((ok = check(s, nn_conv2d_backward_weight(sh, x, y, w, NULL, ws, nws))))
                TIMED_LOOP(s, nn_conv2d_backward_weight(sh, x, y, w, NULL, ws, nws));
        }
        if (ok) {
            nnb_do_not_optimize(y);
            nnb_do_not_optimize(x);
            nnb_do_not_optimize(w);
            nnb_set_flops_per_iteration(s, 2.0 * (double)ny * sh->in_channels * sh->kernel_height * sh->kernel_width);
            nnb_set_items_per_iteration(s, sh->batch); /* images */
        }
    }
    free(x);
    free(w);
    free(y);
    free(ws);
}

static void register_conv(void)
{
    /* tag, in channels, height/width, out channels, kernel, padding; batch 64, stride 1 */
    static const struct {
        const char *tag;
        int c, hw, oc, k, pad;
    } layers[] = {
        {"lenet1", 1, 28, 6, 5, 0},     {"lenet2", 6, 12, 16, 5, 0},    {"resnet", 64, 28, 64, 3, 1},
        {"resnet", 128, 14, 128, 3, 1}, {"resnet", 256, 7, 256, 3, 1}, {"resnet", 512, 4, 512, 3, 1},
    };
    static const char *const pass_names[] = {"conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weight"};
    /* nn.h's backends, OpenBLAS (forward only: im2col + cblas_sgemm), oneDNN (every pass) */
    static const char *const impls[] = {"scalar", "avx2", "avx512", "neon", "openblas", "onednn"};
    size_t i, j;
    int p;
    for (p = CONV_FWD; p <= CONV_BWD_WEIGHT; p++)
        for (i = 0; i < sizeof layers / sizeof layers[0]; i++)
            for (j = 0; j < sizeof impls / sizeof impls[0]; j++) {
                conv_case c;
                char name[160];
                if (is_openblas(impls[j]) && p != CONV_FWD) continue;
                memset(&c, 0, sizeof c);
                c.impl = impls[j];
                c.pass = (conv_pass)p;
                c.shape.batch = 64;
                c.shape.in_channels = layers[i].c;
                c.shape.in_height = c.shape.in_width = layers[i].hw;
                c.shape.out_channels = layers[i].oc;
                c.shape.kernel_height = c.shape.kernel_width = layers[i].k;
                c.shape.stride_height = c.shape.stride_width = 1;
                c.shape.pad_height = c.shape.pad_width = layers[i].pad;
                /* e.g. conv2d_fwd/avx512/lenet1_b64_1x28x28_o6k5p0 */
                snprintf(name, sizeof name, "%s/%s/%s_b64_%dx%dx%d_o%dk%dp%d", pass_names[p], c.impl, layers[i].tag,
                         layers[i].c, layers[i].hw, layers[i].hw, layers[i].oc, layers[i].k, layers[i].pad);
                nnb_set_unit(nnb_register(name, bm_conv, keep(&c, sizeof c)), NNB_US);
            }
}

/* ---- activations, softmax + cross-entropy, pooling --------------------------------------- */
typedef struct act_case {
    const char *impl;
    nn_activation kind;
    float parameter;
    int backward;
} act_case;

#define ACT_COUNT ((size_t)1 << 20)

static void bm_activation(nnb_state *s, void *user)
{
    const act_case *c = (const act_case *)user;
    nn_rng rng = nn_rng_new(3);
    float *x, *y, *dy, *dx;
    if (!select_impl(s, c->impl)) return;
    x = random_floats(ACT_COUNT, &rng, 3.0f);
    y = alloc_floats(ACT_COUNT);
    dy = random_floats(ACT_COUNT, &rng, 1.0f);
    dx = alloc_floats(ACT_COUNT);
    if (check_alloc(s, x && y && dy && dx)) {
        nn_activation_forward(c->kind, c->parameter, ACT_COUNT, x, y);
        if (c->backward)
            while (nnb_keep_running(s)) nn_activation_backward(c->kind, c->parameter, ACT_COUNT, x, y, dy, dx);
        else
            while (nnb_keep_running(s)) nn_activation_forward(c->kind, c->parameter, ACT_COUNT, x, y);
        nnb_do_not_optimize(y);
        nnb_do_not_optimize(dx);
        nnb_set_items_per_iteration(s, (double)ACT_COUNT);
        /* forward: read x, write y; backward: read x or y and dy, write dx */
        nnb_set_bytes_per_iteration(s, (c->backward ? 12.0 : 8.0) * (double)ACT_COUNT);
    }
    free(x);
    free(y);
    free(dy);
    free(dx);
}

typedef struct xent_case {
    const char *impl;
    int rows, cols;
} xent_case;

static void bm_softmax_xent(nnb_state *s, void *user)
{
    const xent_case *c = (const xent_case *)user;
    nn_rng rng = nn_rng_new(4);
    const size_t n = (size_t)c->rows * c->cols;
    float *logits, *dlogits, loss = 0.0f;
    int *labels = (int *)malloc((size_t)c->rows * sizeof(int)), r;
    if (!select_impl(s, c->impl)) {
        free(labels);
        return;
    }
    logits = random_floats(n, &rng, 2.0f);
    dlogits = alloc_floats(n);
    if (check_alloc(s, logits && dlogits && labels)) {
        for (r = 0; r < c->rows; r++) labels[r] = (int)nn_rng_below(&rng, (uint32_t)c->cols);
        while (nnb_keep_running(s))
            loss += nn_softmax_cross_entropy(c->rows, c->cols, logits, labels, dlogits, 1.0f / (float)c->rows);
        nnb_do_not_optimize(&loss);
        nnb_do_not_optimize(dlogits);
        nnb_set_items_per_iteration(s, c->rows);
        nnb_set_bytes_per_iteration(s, 8.0 * (double)n);
    }
    free(logits);
    free(dlogits);
    free(labels);
}

typedef struct pool_case {
    const char *impl;
    int max, backward;
} pool_case;

static void bm_pool(nnb_state *s, void *user)
{
    const pool_case *c = (const pool_case *)user;
    nn_rng rng = nn_rng_new(5);
    nn_pool2d_shape sh;
    int oh = 0, ow = 0;
    size_t nx, ny;
    float *x, *y, *dx;
    int32_t *argmax;
    memset(&sh, 0, sizeof sh);
    sh.batch = 64;
    sh.channels = 6;
    sh.in_height = sh.in_width = 24;
    sh.kernel_height = sh.kernel_width = sh.stride_height = sh.stride_width = 2;
    if (!select_impl(s, c->impl)) return;
    if (!check(s, nn_pool2d_output_size(&sh, &oh, &ow))) return;
    nx = (size_t)sh.batch * sh.channels * sh.in_height * sh.in_width;
    ny = (size_t)sh.batch * sh.channels * oh * ow;
    x = random_floats(nx, &rng, 1.0f);
    y = random_floats(ny, &rng, 1.0f);
    dx = alloc_floats(nx);
    argmax = (int32_t *)malloc(ny * sizeof(int32_t));
    if (check_alloc(s, x && y && dx && argmax)) {
        if (c->max) {
            const int ok = check(s, nn_maxpool2d_forward(&sh, x, y, argmax)); /* the backward needs its argmax */
            if (ok && c->backward)
                TIMED_LOOP(s, nn_maxpool2d_backward(&sh, y, argmax, dx));
            else if (ok)
                TIMED_LOOP(s, nn_maxpool2d_forward(&sh, x, y, argmax));
        } else if (c->backward) {
            if (check(s, nn_avgpool2d_backward(&sh, y, dx)))
                TIMED_LOOP(s, nn_avgpool2d_backward(&sh, y, dx));
        } else if (check(s, nn_avgpool2d_forward(&sh, x, y))) {
            TIMED_LOOP(s, nn_avgpool2d_forward(&sh, x, y));
        }
        nnb_do_not_optimize(y);
        nnb_do_not_optimize(dx);
        nnb_set_items_per_iteration(s, (double)nx); /* input elements */
        nnb_set_bytes_per_iteration(s, 4.0 * (double)(nx + ny) + (c->max ? 4.0 * (double)ny : 0.0));
    }
    free(x);
    free(y);
    free(dx);
    free(argmax);
}

static void register_elementwise(void)
{
    static const struct {
        const char *name;
        nn_activation kind;
        float parameter;
    } acts[] = {
        {"relu", NN_ACTIVATION_RELU, 0.0f},       {"leaky_relu", NN_ACTIVATION_LEAKY_RELU, 0.01f},
        {"sigmoid", NN_ACTIVATION_SIGMOID, 0.0f}, {"tanh", NN_ACTIVATION_TANH, 0.0f},
        {"scaled_tanh", NN_ACTIVATION_SCALED_TANH, 0.0f},
    };
    static const int xent_shapes[][2] = {{64, 10}, {1024, 1000}};
    static const char *const pool_names[] = {"avgpool_fwd", "avgpool_bwd", "maxpool_fwd", "maxpool_bwd"};
    size_t i;
    int j, d;
    char name[128];
    for (i = 0; i < sizeof acts / sizeof acts[0]; i++)
        for (d = 0; d < 2; d++)
            for (j = 0; j < NN_IMPL_COUNT; j++) {
                act_case c;
                c.impl = nn_impls[j];
                c.kind = acts[i].kind;
                c.parameter = acts[i].parameter;
                c.backward = d;
                snprintf(name, sizeof name, "%s_%s/%s/1M", acts[i].name, d ? "bwd" : "fwd", c.impl);
                nnb_set_unit(nnb_register(name, bm_activation, keep(&c, sizeof c)), NNB_US);
            }
    for (i = 0; i < sizeof xent_shapes / sizeof xent_shapes[0]; i++)
        for (j = 0; j < NN_IMPL_COUNT; j++) {
            xent_case c;
            c.impl = nn_impls[j];
            c.rows = xent_shapes[i][0];
            c.cols = xent_shapes[i][1];
            snprintf(name, sizeof name, "softmax_xent/%s/%dx%d", c.impl, c.rows, c.cols);
            nnb_set_unit(nnb_register(name, bm_softmax_xent, keep(&c, sizeof c)), NNB_US);
        }
    for (d = 0; d < 4; d++)
        for (j = 0; j < NN_IMPL_COUNT; j++) {
            pool_case c;
            c.impl = nn_impls[j];
            c.max = d >= 2;
            c.backward = d & 1;
            snprintf(name, sizeof name, "%s/%s/64x6x24x24_2x2", pool_names[d], c.impl);
            nnb_set_unit(nnb_register(name, bm_pool, keep(&c, sizeof c)), NNB_US);
        }
}

/* ---- batch norm ------------------------------------------------------------------------------ */
/* Training passes over a batch of 64: the forward (statistics, running statistics, y) and the
   backward (the two channel sums, dx) of one batch-norm layer, at ResNet-18's four feature-map
   sizes on 28x28 inputs and at a batchnorm1d layer of 1024 features. GB/s counts the least the
   pass must move (forward: x read, y written; backward: x and dy read, dx written), although the
   forward reads x three times and the backward twice. */
typedef struct bn_case {
    const char *impl;
    int backward, channels, spatial;
} bn_case;

static void bm_batchnorm(nnb_state *s, void *user)
{
    const bn_case *c = (const bn_case *)user;
    const int batch = 64;
    const size_t n = (size_t)batch * c->channels * c->spatial, nc = (size_t)c->channels;
    nn_rng rng = nn_rng_new(9);
    float *x, *dy, *y, *dx, *gamma, *beta, *stats, *saved, *grads;
    if (!select_impl(s, c->impl)) return;
    x = random_floats(n, &rng, 2.0f);
    dy = random_floats(n, &rng, 1.0f);
    y = alloc_floats(n);
    dx = alloc_floats(n);
    gamma = random_floats(nc, &rng, 1.0f);
    beta = random_floats(nc, &rng, 1.0f);
    stats = random_floats(2 * nc, &rng, 1.0f); /* running mean, running variance */
    saved = alloc_floats(2 * nc);
    grads = alloc_floats(2 * nc); /* dgamma, dbeta */
    if (check_alloc(s, x && dy && y && dx && gamma && beta && stats && saved && grads)) {
        size_t i;
        for (i = 0; i < nc; i++) stats[nc + i] = 1.0f + stats[nc + i] * stats[nc + i];
        if (check(s, nn_batchnorm_forward(batch, c->channels, c->spatial, x, gamma, beta, stats, stats + nc, 1, saved, y))) {
            if (c->backward)
                TIMED_LOOP(s,
                    nn_batchnorm_backward(batch, c->channels, c->spatial, x, dy, gamma, saved, 1, grads, grads + nc, dx));
            else
                TIMED_LOOP(s,
                    nn_batchnorm_forward(batch, c->channels, c->spatial, x, gamma, beta, stats, stats + nc, 1, saved, y));
            nnb_do_not_optimize(y);
            nnb_do_not_optimize(dx);
            nnb_do_not_optimize(grads);
            nnb_set_items_per_iteration(s, (double)n);
            nnb_set_bytes_per_iteration(s, (c->backward ? 12.0 : 8.0) * (double)n);
        }
    }
    free(x);
    free(dy);
    free(y);
    free(dx);
    free(gamma);
    free(beta);
    free(stats);
    free(saved);
    free(grads);
}

static void register_batchnorm(void)
{
    static const int shapes[][2] = {{64, 784}, {128, 196}, {256, 49}, {512, 16}, {1024, 1}}; /* channels, H*W */
    static const int sides[] = {28, 14, 7, 4, 1};
    size_t i;
    int j, d;
    char name[96];
    for (d = 0; d < 2; d++)
        for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (j = 0; j < NN_IMPL_COUNT; j++) {
                bn_case c;
                c.impl = nn_impls[j];
                c.backward = d;
                c.channels = shapes[i][0];
                c.spatial = shapes[i][1];
                /* e.g. batchnorm2d_fwd/avx512/b64_64x28x28, batchnorm1d_bwd/scalar/b64_1024 */
                if (c.spatial == 1)
                    snprintf(name, sizeof name, "batchnorm1d_%s/%s/b64_%d", d ? "bwd" : "fwd", c.impl, c.channels);
                else
                    snprintf(name, sizeof name, "batchnorm2d_%s/%s/b64_%dx%dx%d", d ? "bwd" : "fwd", c.impl, c.channels,
                             sides[i], sides[i]);
                nnb_set_unit(nnb_register(name, bm_batchnorm, keep(&c, sizeof c)), NNB_US);
            }
}

/* ---- optimiser step over ~1M parameters -------------------------------------------------- */
typedef struct opt_case {
    const char *impl;
    int adam;
} opt_case;

static void bm_optimizer_step(nnb_state *s, void *user)
{
    const opt_case *c = (const opt_case *)user;
    nn_rng rng = nn_rng_new(6);
    nn_model *m;
    nn_node *x;
    nn_optimizer opt;
    size_t i, n;
    float *g;
    if (!select_impl(s, c->impl)) return;
    m = nn_model_new(7);
    x = nn_input(m, 1000, 1, 1);
    if (!check(s, nn_compile(m, nn_linear(m, x, 1000, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 1))) {
        nn_model_free(m);
        return;
    }
    n = nn_param_count(m); /* 1,001,000 */
    g = nn_grads(m);
    for (i = 0; i < n; i++) g[i] = 0.01f * nn_rng_normal(&rng);
    opt = c->adam ? nn_adam(1e-3f, 0.0f) : nn_sgd(0.01f, 0.9f, 0.0f);
    if (check(s, nn_optimizer_step(m, &opt))) { /* binds the state; the first step is special */
        TIMED_LOOP(s, nn_optimizer_step(m, &opt));
        nnb_do_not_optimize(nn_params(m));
        nnb_set_items_per_iteration(s, (double)n);
        /* SGD: read p, g, momentum; write p, momentum. Adam: read p, g, m, v; write p, m, v. */
        nnb_set_bytes_per_iteration(s, (c->adam ? 28.0 : 20.0) * (double)n);
    }
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

static void register_optimizers(void)
{
    int j, a;
    char name[96];
    for (a = 0; a < 2; a++)
        for (j = 0; j < NN_IMPL_COUNT; j++) {
            opt_case c;
            c.impl = nn_impls[j];
            c.adam = a;
            snprintf(name, sizeof name, "%s/%s/1001000", a ? "adam_step" : "sgd_momentum_step", c.impl);
            nnb_set_unit(nnb_register(name, bm_optimizer_step, keep(&c, sizeof c)), NNB_US);
        }
}

/* ---- whole training steps ---------------------------------------------------------------- */
/* The model, its optimiser and a batch of random data are built on the row's first run and
   kept (Google Benchmark calls a row several times while it settles the iteration count). */
typedef struct train_case {
    const bm_model_spec *spec;
    nn_precision precision;     /* train_step_bf16/<model>: NN_PRECISION_BF16 */
    nn_model *model;
    nn_optimizer opt;
    float *x;
    int *labels;
    int ready;
} train_case;

static train_case g_train[2 * BM_MODEL_COUNT]; /* fp32, then bf16 */

static void bm_train_step(nnb_state *s, void *user)
{
    train_case *c = (train_case *)user;
    const int batch = c->spec->batch; /* 64 (mlp_sigmoid: 32, its training batch) */
    float loss = 0.0f;
    char label[64];
    const char *forced = getenv("NN_BACKEND"); /* honoured here as in any program; "best" otherwise */
    if (!check(s, nn_set_backend(forced && *forced && nn_backend_supported(forced) ? forced : "best"))) return;
    if (!c->ready) {
        nn_rng rng = nn_rng_new(8);
        int i;
        bm_precision = c->precision;
        c->model = c->spec->build(42, batch);
        bm_precision = NN_PRECISION_FP32;
        if (!c->model) {
            nnb_fail(s, nn_last_error());
            return;
        }
        c->opt = bm_optimizer(c->spec);
        c->x = random_floats((size_t)batch * nn_input_size(c->model), &rng, 1.0f);
        c->labels = (int *)malloc(batch * sizeof(int));
        if (!check_alloc(s, c->x && c->labels)) return;
        for (i = 0; i < batch; i++) c->labels[i] = (int)nn_rng_below(&rng, 10);
        /* warm-up: binds the optimiser state, touches every buffer */
        if (!check(s, nn_train_step(c->model, &c->opt, c->x, c->labels, NULL, batch, &loss))) return;
        c->ready = 1;
    }
    TIMED_LOOP(s, nn_train_step(c->model, &c->opt, c->x, c->labels, NULL, batch, &loss));
    nnb_do_not_optimize(&loss);
    nnb_set_items_per_iteration(s, batch); /* images per second */
    snprintf(label, sizeof label, "%s%s, batch %d, %s", nn_backend_name(),
             c->precision == NN_PRECISION_BF16 ? (strcmp(nn_backend_bf16_path(), "vdpbf16ps") ? " bf16 rounded" : " bf16 vdpbf16ps") : "",
             batch, c->spec->optimizer);
    nnb_set_label(s, label);
}

static void free_train_cases(void)
{
    int i;
    for (i = 0; i < 2 * BM_MODEL_COUNT; i++) {
        nn_model_free(g_train[i].model);
        nn_optimizer_free(&g_train[i].opt);
        free(g_train[i].x);
        free(g_train[i].labels);
    }
}

static void register_train_steps(void)
{
    int i;
    char name[64];
    /* ResNet-18 takes 1-3 s a step: with the default --benchmark_min_time (0.5 s) it runs one
       timed step after the untimed warm-up; add --benchmark_repetitions for more. */
    for (i = 0; i < 2 * BM_MODEL_COUNT; i++) {
        const int bf16 = i >= BM_MODEL_COUNT;
        g_train[i].spec = &bm_models[i % BM_MODEL_COUNT];
        g_train[i].precision = bf16 ? NN_PRECISION_BF16 : NN_PRECISION_FP32;
        snprintf(name, sizeof name, "train_step%s/%s", bf16 ? "_bf16" : "", g_train[i].spec->name);
        nnb_set_unit(nnb_register(name, bm_train_step, &g_train[i]), NNB_MS);
    }
}

/* ---- FMA peak ----------------------------------------------------------------------------- */
/* Independent chains a = a*b + c in registers: enough of them to cover the FMA latency times the
   FMA units (Zen 4: 4 cycles x 2 units = 8 chains; 12 and 24 leave room). Each iteration of the
   benchmark runs PEAK_STEPS steps of every chain. */
#define PEAK_STEPS 16384

#ifdef BENCH_X86
#define PEAK_FMA8(op, v)                                                                                               \
    v##0 = op(v##0, b, c); v##1 = op(v##1, b, c); v##2 = op(v##2, b, c); v##3 = op(v##3, b, c);                        \
    v##4 = op(v##4, b, c); v##5 = op(v##5, b, c); v##6 = op(v##6, b, c); v##7 = op(v##7, b, c)

__attribute__((target("avx2,fma"))) static float peak_avx2(int steps)
{
    const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f), a3 = _mm256_set1_ps(0.3f);
    __m256 a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f), a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f);
    __m256 e0 = _mm256_set1_ps(0.8f), e1 = _mm256_set1_ps(0.9f), e2 = _mm256_set1_ps(1.0f), e3 = _mm256_set1_ps(1.1f);
    float out[8];
    int i;
    for (i = 0; i < steps; i++) {
        PEAK_FMA8(_mm256_fmadd_ps, a);
        e0 = _mm256_fmadd_ps(e0, b, c);
        e1 = _mm256_fmadd_ps(e1, b, c);
        e2 = _mm256_fmadd_ps(e2, b, c);
        e3 = _mm256_fmadd_ps(e3, b, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(e0, e1), _mm256_add_ps(e2, e3)));
    _mm256_storeu_ps(out, a0);
    return out[0] + out[7];
}
#define PEAK_AVX2_FLOPS (2.0 * 8 * 12)

__attribute__((target("avx512f"))) static float peak_avx512(int steps)
{
    const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f), a3 = _mm512_set1_ps(0.3f);
    __m512 a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f), a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f);
    __m512 d0 = _mm512_set1_ps(0.8f), d1 = _mm512_set1_ps(0.9f), d2 = _mm512_set1_ps(1.0f), d3 = _mm512_set1_ps(1.1f);
    __m512 d4 = _mm512_set1_ps(1.2f), d5 = _mm512_set1_ps(1.3f), d6 = _mm512_set1_ps(1.4f), d7 = _mm512_set1_ps(1.5f);
    __m512 f0 = _mm512_set1_ps(1.6f), f1 = _mm512_set1_ps(1.7f), f2 = _mm512_set1_ps(1.8f), f3 = _mm512_set1_ps(1.9f);
    __m512 f4 = _mm512_set1_ps(2.0f), f5 = _mm512_set1_ps(2.1f), f6 = _mm512_set1_ps(2.2f), f7 = _mm512_set1_ps(2.3f);
    int i;
    for (i = 0; i < steps; i++) {
        PEAK_FMA8(_mm512_fmadd_ps, a);
        PEAK_FMA8(_mm512_fmadd_ps, d);
        PEAK_FMA8(_mm512_fmadd_ps, f);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    d0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(d0, d1), _mm512_add_ps(d2, d3)),
                       _mm512_add_ps(_mm512_add_ps(d4, d5), _mm512_add_ps(d6, d7)));
    f0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
                       _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7)));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, _mm512_add_ps(d0, f0)));
}
#define PEAK_AVX512_FLOPS (2.0 * 16 * 24)

/* AVX512_BF16 (CPUID leaf 7 sub-leaf 1, EAX bit 5) with the AVX-512 state the OS saves. */
static int has_avx512_bf16(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!nn_backend_supported("avx512") || __get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;
}

/* vdpbf16ps chains: each lane of each instruction adds two bf16 products (4 FLOPs). 24 chains
   cover the latency (Zen 4: 6 cycles) times the units. */
#define PEAK_DP8(v) \
    v##0 = _mm512_dpbf16_ps(v##0, x, y); v##1 = _mm512_dpbf16_ps(v##1, x, y); v##2 = _mm512_dpbf16_ps(v##2, x, y); \
    v##3 = _mm512_dpbf16_ps(v##3, x, y); v##4 = _mm512_dpbf16_ps(v##4, x, y); v##5 = _mm512_dpbf16_ps(v##5, x, y); \
    v##6 = _mm512_dpbf16_ps(v##6, x, y); v##7 = _mm512_dpbf16_ps(v##7, x, y)
__attribute__((target("avx512f,avx512bf16"))) static float peak_avx512_bf16(int steps)
{
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80), y = (__m512bh)_mm512_set1_epi32(0x3A803A80);
    /* distinct starts, or the compiler merges the identical chains into one */
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f), a3 = _mm512_set1_ps(0.3f);
    __m512 a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f), a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f);
    __m512 d0 = _mm512_set1_ps(0.8f), d1 = _mm512_set1_ps(0.9f), d2 = _mm512_set1_ps(1.0f), d3 = _mm512_set1_ps(1.1f);
    __m512 d4 = _mm512_set1_ps(1.2f), d5 = _mm512_set1_ps(1.3f), d6 = _mm512_set1_ps(1.4f), d7 = _mm512_set1_ps(1.5f);
    __m512 f0 = _mm512_set1_ps(1.6f), f1 = _mm512_set1_ps(1.7f), f2 = _mm512_set1_ps(1.8f), f3 = _mm512_set1_ps(1.9f);
    __m512 f4 = _mm512_set1_ps(2.0f), f5 = _mm512_set1_ps(2.1f), f6 = _mm512_set1_ps(2.2f), f7 = _mm512_set1_ps(2.3f);
    int i;
    for (i = 0; i < steps; i++) {
        PEAK_DP8(a);
        PEAK_DP8(d);
        PEAK_DP8(f);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    d0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(d0, d1), _mm512_add_ps(d2, d3)),
                       _mm512_add_ps(_mm512_add_ps(d4, d5), _mm512_add_ps(d6, d7)));
    f0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
                       _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7)));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, _mm512_add_ps(d0, f0)));
}
#define PEAK_AVX512_BF16_FLOPS (4.0 * 16 * 24)

/* The vdpbf16ps peak in FLOP/s, timed for about 50 ms; 0 without AVX512_BF16. */
static double measure_bf16_peak(void)
{
    double start, seconds;
    float sink = 0.0f;
    long calls = 0;
    volatile int steps = PEAK_STEPS; /* read anew each call: the calls cannot be merged into one */
    if (!has_avx512_bf16()) return 0.0;
    start = nn_seconds();
    do {
        sink += peak_avx512_bf16(steps);
        calls++;
        seconds = nn_seconds() - start;
    } while (seconds < 0.05);
    nnb_do_not_optimize(&sink);
    return calls * PEAK_AVX512_BF16_FLOPS * PEAK_STEPS / seconds;
}
#else
static double measure_bf16_peak(void) { return 0.0; }
#endif

#ifdef BENCH_ARM64
static float peak_neon(int steps)
{
    const float32x4_t b = vdupq_n_f32(0.999f), c = vdupq_n_f32(1e-3f);
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.1f), a2 = vdupq_n_f32(0.2f), a3 = vdupq_n_f32(0.3f);
    float32x4_t a4 = vdupq_n_f32(0.4f), a5 = vdupq_n_f32(0.5f), a6 = vdupq_n_f32(0.6f), a7 = vdupq_n_f32(0.7f);
    float32x4_t d0 = vdupq_n_f32(0.8f), d1 = vdupq_n_f32(0.9f), d2 = vdupq_n_f32(1.0f), d3 = vdupq_n_f32(1.1f);
    float32x4_t d4 = vdupq_n_f32(1.2f), d5 = vdupq_n_f32(1.3f), d6 = vdupq_n_f32(1.4f), d7 = vdupq_n_f32(1.5f);
    int i;
#define PEAK_NEON_FMA(x, y, z) vfmaq_f32(z, x, y)
    for (i = 0; i < steps; i++) {
        PEAK_FMA8(PEAK_NEON_FMA, a);
        PEAK_FMA8(PEAK_NEON_FMA, d);
    }
    a0 = vaddq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)), vaddq_f32(vaddq_f32(a4, a5), vaddq_f32(a6, a7)));
    d0 = vaddq_f32(vaddq_f32(vaddq_f32(d0, d1), vaddq_f32(d2, d3)), vaddq_f32(vaddq_f32(d4, d5), vaddq_f32(d6, d7)));
    return vaddvq_f32(vaddq_f32(a0, d0));
}
#define PEAK_NEON_FLOPS (2.0 * 4 * 16)
#endif

static void bm_peak(nnb_state *s, void *user)
{
    const char *isa = (const char *)user;
    float sink = 0.0f;
    double flops_per_step = 0.0;
    char why[64];
    if (!nn_backend_supported(strcmp(isa, "avx512_bf16") ? isa : "avx512")) {
        snprintf(why, sizeof why, "CPU lacks %s", isa);
        nnb_skip(s, why);
        return;
    }
#ifdef BENCH_X86
    if (!strcmp(isa, "avx2")) {
        while (nnb_keep_running(s)) sink += peak_avx2(PEAK_STEPS);
        flops_per_step = PEAK_AVX2_FLOPS;
    } else if (!strcmp(isa, "avx512_bf16")) {
        if (!has_avx512_bf16()) {
            nnb_skip(s, "CPU lacks avx512_bf16");
            return;
        }
        while (nnb_keep_running(s)) sink += peak_avx512_bf16(PEAK_STEPS);
        flops_per_step = PEAK_AVX512_BF16_FLOPS;
    } else if (!strcmp(isa, "avx512")) {
        while (nnb_keep_running(s)) sink += peak_avx512(PEAK_STEPS);
        flops_per_step = PEAK_AVX512_FLOPS;
    }
#endif
#ifdef BENCH_ARM64
    if (!strcmp(isa, "neon")) {
        while (nnb_keep_running(s)) sink += peak_neon(PEAK_STEPS);
        flops_per_step = PEAK_NEON_FLOPS;
    }
#endif
    if (flops_per_step == 0.0) { /* supported by nn.h but not probed by this build */
        snprintf(why, sizeof why, "no %s probe in this build", isa);
        nnb_skip(s, why);
        return;
    }
    nnb_do_not_optimize(&sink);
    nnb_set_flops_per_iteration(s, flops_per_step * PEAK_STEPS);
}

/* The core's FMA peak in FLOP/s: the best ISA's chains, timed for about 50 ms each before the
   rows run, so that every GEMM and convolution row can say which fraction of it it reached. */
static double measure_peak(void)
{
    double best = 0.0;
    float sink = 0.0f;
    int isa;
    for (isa = 0; isa < 3; isa++) {
        double flops_per_call = 0.0, start, seconds;
        long calls = 0;
        if (isa == 0 && !nn_backend_supported("avx2")) continue;
        if (isa == 1 && !nn_backend_supported("avx512")) continue;
        if (isa == 2 && !nn_backend_supported("neon")) continue;
        start = nn_seconds();
        do {
#ifdef BENCH_X86
            if (isa == 0) sink += peak_avx2(PEAK_STEPS), flops_per_call = PEAK_AVX2_FLOPS * PEAK_STEPS;
            if (isa == 1) sink += peak_avx512(PEAK_STEPS), flops_per_call = PEAK_AVX512_FLOPS * PEAK_STEPS;
#endif
#ifdef BENCH_ARM64
            if (isa == 2) sink += peak_neon(PEAK_STEPS), flops_per_call = PEAK_NEON_FLOPS * PEAK_STEPS;
#endif
            calls++;
            seconds = nn_seconds() - start;
        } while (seconds < 0.05 && flops_per_call > 0.0);
        if (flops_per_call > 0.0 && calls * flops_per_call / seconds > best) best = calls * flops_per_call / seconds;
    }
    nnb_do_not_optimize(&sink);
    return best;
}

static void register_peak(void)
{
    static const char *const isas[] = {"avx2", "avx512", "neon"};
    size_t i;
    char name[64];
    for (i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        snprintf(name, sizeof name, "peak/%s/fma", isas[i]);
        nnb_set_unit(nnb_register(name, bm_peak, (void *)isas[i]), NNB_US);
    }
    nnb_set_unit(nnb_register("peak/avx512/bf16", bm_peak, (void *)"avx512_bf16"), NNB_US);
}

/* ---- main -------------------------------------------------------------------------------- */
int main(int argc, char **argv)
{
    const char *threads = nnb_take_flag(&argc, argv, "--threads");
    char text[64];
    int status;
    if (threads) {
        g_threads = atoi(threads);
        if (g_threads <= 0) {
            fprintf(stderr, "bench_kernels: --threads needs a positive count, got '%s'\n", threads);
            return 2;
        }
    }
    if (nn_set_threads(g_threads) != NN_OK) {
        fprintf(stderr, "bench_kernels: %s\n", nn_last_error());
        return 2;
    }
    openblas_set_num_threads(g_threads);
#ifdef BENCH_ONEDNN
    omp_set_num_threads(g_threads); /* oneDNN's OpenMP build runs omp_get_max_threads() threads */
#endif
    /* One thread: the thread's CPU time (robust on a shared machine). More: wall-clock time
       (the rows' names then end in /real_time). */
    nnb_use_real_time(g_threads > 1);

    snprintf(text, sizeof text, "%d", nn_threads());
    nnb_add_context("nn_threads", text);
    nnb_add_context("nn_best_backend", nn_backend_name());
    snprintf(text, sizeof text, "%d", g_threads);
    nnb_add_context("openblas_threads", text);
    nnb_add_context("openblas_config", openblas_get_config());
#ifdef BENCH_ONEDNN
    {
        const dnnl_version_t *v = dnnl_version();
        snprintf(text, sizeof text, "%d.%d.%d, %s runtime, isa %s", v->major, v->minor, v->patch,
                 dnnl_runtime2str(v->cpu_runtime), dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()));
        nnb_add_context("onednn", text);
        snprintf(text, sizeof text, "%d", omp_get_max_threads());
        nnb_add_context("onednn_threads", text);
    }
#else
    nnb_add_context("onednn", BENCH_ONEDNN_MISSING);
#endif

    {
        const double peak = measure_peak() * g_threads;
        snprintf(text, sizeof text, "%.1f GFLOP/s (%d thread%s; the 100%% of the peak%% counters)", peak / 1e9, g_threads,
                 g_threads == 1 ? "" : "s");
        nnb_add_context("fma_peak", text);
        nnb_set_peak_flops(peak);
        g_bf16_peak = measure_bf16_peak();
        if (g_bf16_peak > 0.0)
            snprintf(text, sizeof text, "%.1f GFLOP/s (vdpbf16ps, %d thread%s; the 100%% of bf16_peak%%)",
                     g_bf16_peak * g_threads / 1e9, g_threads, g_threads == 1 ? "" : "s");
        else
            snprintf(text, sizeof text, "none (the CPU has no AVX512_BF16)");
        nnb_add_context("bf16_peak", text);
    }
    register_peak();
    register_sgemm();
    register_conv();
    register_elementwise();
    register_batchnorm();
    register_optimizers();
    register_train_steps();
    status = nnb_main(argc, argv);
    free_train_cases();
#ifdef BENCH_ONEDNN
    onednn_stop();
#endif
    return status;
}
