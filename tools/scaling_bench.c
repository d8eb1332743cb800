/* tools/scaling_bench.c - one thread against two, in one process, for docs/scaling.md.

   Measures sgemm 512x512x512, LeNet's two convolutions (batch 64, forward + both backwards) and
   LeNet training steps (batch 64, SGD momentum 0.9, MNIST if --data has it, else random data),
   each with nn_set_threads(1) and nn_set_threads(2) in alternating rounds, so that a busy machine
   slows both alike; reports the best time of each and the speed-up. --epoch also times whole
   MNIST epochs (938 steps), 1 and 2 threads alternating, and reports the median of each. LeNet has no batch norm or dropout, so with 2
   threads nn_train_step splits each batch by samples (one half per thread, see
   nn_compute_gradients); the "kernel threads only" rows train a LeNet with
   nn_set_sample_split(m, 0), whose steps instead split each kernel's work.
   Then checks what the thread count changes: sgemm, convolution outputs and kernel-threaded
   training (bit for bit), and split training (the largest parameter difference after
   --check-steps steps, and two 2-thread runs bit for bit).

   Build: make scaling-bench (cc -O2 -fopenmp). Run: build/tools/scaling_bench [--data DIR]
   [--rounds N] [--steps N] [--epoch] [--epoch-runs N (default 3; implies --epoch)]
   [--check-steps N] */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static int rounds = 5, steps = 50, full_epoch = 0, check_steps = 100, epoch_runs = 3;
static const char *data_dir = "data/mnist";

static float *random_floats(size_t n, uint64_t seed)
{
    float *x = (float *)malloc(n * sizeof(float));
    nn_rng rng = nn_rng_new(seed);
    size_t i;
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (i = 0; i < n; i++) x[i] = nn_rng_uniform(&rng) * 2.0f - 1.0f;
    return x;
}

/* Ends the program when a library call fails (none should: the sizes here are fixed). */
static void must(nn_status status, const char *what)
{
    if (status != NN_OK) {
        fprintf(stderr, "scaling_bench: %s: %s\n", what, nn_last_error());
        exit(1);
    }
}

typedef void (*work_fn)(void *ctx);

static double cpu_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Per call, best over the rounds, for threads 1 and 2 (alternating, `reps` calls per timing):
   wall seconds, the calling thread's CPU seconds (it runs the serial parts and its share of each
   parallel region: on an idle machine the wall time would be about this, the critical path),
   and the whole process's CPU seconds (the work, with any spinning). */
static double cpu_main[2], cpu_all[2];
static void time_both(work_fn fn, void *ctx, int reps, double best[2])
{
    int r, t, i;
    best[0] = best[1] = cpu_main[0] = cpu_main[1] = cpu_all[0] = cpu_all[1] = 1e30;
    for (t = 1; t <= 2; t++) { /* warm-up */
        must(nn_set_threads(t), "nn_set_threads");
        fn(ctx);
    }
    for (r = 0; r < rounds; r++)
        for (t = 0; t < 2; t++) {
            double t0, c0, p0;
            must(nn_set_threads(t + 1), "nn_set_threads");
            t0 = nn_seconds();
            c0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
            p0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
            for (i = 0; i < reps; i++) fn(ctx);
            t0 = (nn_seconds() - t0) / reps;
            c0 = (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0) / reps;
            p0 = (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - p0) / reps;
            if (t0 < best[t]) best[t] = t0;
            if (c0 < cpu_main[t]) cpu_main[t] = c0;
            if (p0 < cpu_all[t]) cpu_all[t] = p0;
        }
}

static void report(const char *name, const double best[2], double per)
{
    printf("SCALING %-30s wall: 1 thread %8.3f ms, 2 threads %8.3f ms, speed-up %.2fx | critical path (main thread "
           "CPU): %.3f -> %.3f ms, %.2fx | process CPU %.3f -> %.3f ms\n",
           name, best[0] * 1e3 / per, best[1] * 1e3 / per, best[0] / best[1], cpu_main[0] * 1e3 / per,
           cpu_main[1] * 1e3 / per, cpu_main[0] / cpu_main[1], cpu_all[0] * 1e3 / per, cpu_all[1] * 1e3 / per);
    fflush(stdout);
}

/* ---- sgemm ---------------------------------------------------------------------------------- */
typedef struct { float *a, *b, *c, *ws; size_t ws_floats; } gemm_ctx;
static void gemm_run(void *p)
{
    gemm_ctx *g = (gemm_ctx *)p;
    must(nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 512, 512, 512, 1.0f, g->a, 512, g->b, 512, 0.0f, g->c, 512, g->ws,
                  g->ws_floats), "nn_sgemm");
}

/* ---- LeNet's convolutions --------------------------------------------------------------------- */
typedef struct {
    nn_conv2d_shape s[2];
    float *x[2], *w[2], *b[2], *y[2], *dy[2], *dx[2], *dw[2], *db[2], *ws;
    size_t ws_floats;
} conv_ctx;
static void conv_run(void *p)
{
    conv_ctx *c = (conv_ctx *)p;
    int l;
    for (l = 0; l < 2; l++) {
        must(nn_conv2d_forward(&c->s[l], c->x[l], c->w[l], c->b[l], c->y[l], c->ws, c->ws_floats), "conv forward");
        if (l == 1)
            must(nn_conv2d_backward_data(&c->s[l], c->dy[l], c->w[l], c->dx[l], c->ws, c->ws_floats), "conv backward");
        must(nn_conv2d_backward_weight(&c->s[l], c->x[l], c->dy[l], c->dw[l], c->db[l], c->ws, c->ws_floats),
             "conv backward");
    }
}

/* ---- LeNet training --------------------------------------------------------------------------- */
static nn_model *lenet(int threads_at_compile)
{
    const int saved = nn_threads();
    nn_model *m = nn_model_new(42);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 6, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    must(nn_set_threads(threads_at_compile), "nn_set_threads");
    if (nn_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 64) != NN_OK) {
        fprintf(stderr, "compile: %s\n", nn_last_error());
        exit(1);
    }
    must(nn_set_threads(saved), "nn_set_threads");
    return m;
}

typedef struct {
    nn_model *m;
    nn_optimizer opt;
    const nn_dataset *ds;
    int next, count; /* the next batch's first sample; steps per call */
} train_ctx;
static void train_run(void *p)
{
    train_ctx *t = (train_ctx *)p;
    int i;
    for (i = 0; i < t->count; i++) {
        if (t->next + 64 > t->ds->count) t->next = 0;
        if (nn_train_step(t->m, &t->opt, t->ds->x + (size_t)t->next * 784, t->ds->labels + t->next, NULL, 64, NULL) !=
            NN_OK) {
            fprintf(stderr, "train: %s\n", nn_last_error());
            exit(1);
        }
        t->next += 64;
    }
}

/* the phases of a step, for where the serial time is */
static void forward_run(void *p)
{
    train_ctx *t = (train_ctx *)p;
    int i;
    for (i = 0; i < t->count; i++) must(nn_forward(t->m, t->ds->x, 64, NN_TRAIN), "nn_forward");
}
static void backward_run(void *p) /* forward + backward */
{
    train_ctx *t = (train_ctx *)p;
    int i;
    for (i = 0; i < t->count; i++)
        must(nn_compute_gradients(t->m, t->ds->x, t->ds->labels, NULL, 64, NULL), "nn_compute_gradients");
}
static void optimizer_run(void *p)
{
    train_ctx *t = (train_ctx *)p;
    int i;
    for (i = 0; i < t->count; i++) must(nn_optimizer_step(t->m, &t->opt), "nn_optimizer_step");
}

/* Two LeNets compiled on 2 threads (split steps allowed or not), trained check_steps steps on
   threads_a and threads_b: 1 when their parameters are bit-identical; *diff gets the largest
   difference. */
static double split_diff_rel = 0.0;
static int train_pair(int allow_split, int threads_a, int threads_b, double *diff, train_ctx *t)
{
    nn_model *m[2];
    int k, same;
    size_t i, n;
    double worst = 0.0, biggest = 0.0;
    for (k = 0; k < 2; k++) {
        m[k] = lenet(2);
        nn_set_sample_split(m[k], allow_split);
        t->m = m[k];
        t->opt = nn_sgd(0.01f, 0.9f, 0.0f);
        t->next = 0;
        t->count = check_steps;
        must(nn_set_threads(k ? threads_b : threads_a), "nn_set_threads");
        train_run(t);
        nn_optimizer_free(&t->opt);
    }
    n = nn_param_count(m[0]);
    same = !memcmp(nn_params(m[0]), nn_params(m[1]), n * sizeof(float));
    for (i = 0; i < n; i++) {
        double d = nn_params(m[0])[i] - nn_params(m[1])[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
        if (nn_params(m[0])[i] > biggest) biggest = nn_params(m[0])[i];
        if (-nn_params(m[0])[i] > biggest) biggest = -nn_params(m[0])[i];
    }
    if (diff) {
        *diff = worst;
        split_diff_rel = worst / biggest;
    }
    nn_model_free(m[0]);
    nn_model_free(m[1]);
    return same;
}

int main(int argc, char **argv)
{
    int i, l;
    double best[2];
    gemm_ctx g;
    conv_ctx c;
    train_ctx t;
    nn_dataset ds;
    int have_mnist;
    char ip[512], lp[512];
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data_dir = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check-steps") && i + 1 < argc) check_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epoch")) full_epoch = 1;
        else if (!strcmp(argv[i], "--epoch-runs") && i + 1 < argc) {
            full_epoch = 1;
            epoch_runs = atoi(argv[++i]);
            if (epoch_runs < 1 || epoch_runs > 64) {
                fprintf(stderr, "scaling_bench: --epoch-runs takes 1..64\n");
                return 2;
            }
        }
        else {
            fprintf(stderr, "usage: scaling_bench [--data DIR] [--rounds N] [--steps N] [--epoch] [--epoch-runs N] "
                            "[--check-steps N]\n");
            return 2;
        }
    }
    must(nn_set_threads(2), "nn_set_threads");
    if (nn_threads() != 2) {
        fprintf(stderr, "scaling_bench: built without OpenMP (build with -fopenmp)\n");
        return 1;
    }
    printf("backend %s, %d rounds, best of each\n", nn_backend_name(), rounds);

    /* sgemm 512^3 */
    g.a = random_floats(512 * 512, 1);
    g.b = random_floats(512 * 512, 2);
    g.c = random_floats(512 * 512, 3);
    g.ws_floats = nn_sgemm_workspace_size(); /* for 2 threads */
    g.ws = random_floats(g.ws_floats, 4);
    time_both(gemm_run, &g, 10, best);
    report("sgemm 512x512x512", best, 1.0);
    printf("        (%.1f and %.1f GFLOP/s)\n", 2.0 * 512 * 512 * 512 / best[0] * 1e-9, 2.0 * 512 * 512 * 512 / best[1] * 1e-9);

    /* LeNet's convolutions, batch 64: conv1 1->6 on 28x28, conv2 6->16 on 12x12, 5x5 */
    memset(&c, 0, sizeof c);
    for (l = 0; l < 2; l++) {
        nn_conv2d_shape *s = &c.s[l];
        int oh, ow;
        size_t in, out, wn, ws;
        s->batch = 64;
        s->in_channels = l ? 6 : 1;
        s->in_height = s->in_width = l ? 12 : 28;
        s->out_channels = l ? 16 : 6;
        s->kernel_height = s->kernel_width = 5;
        s->stride_height = s->stride_width = 1;
        must(nn_conv2d_output_size(s, &oh, &ow), "nn_conv2d_output_size");
        in = (size_t)64 * s->in_channels * s->in_height * s->in_width;
        out = (size_t)64 * s->out_channels * oh * ow;
        wn = (size_t)s->out_channels * s->in_channels * 25;
        c.x[l] = random_floats(in, 10 + l);
        c.dx[l] = random_floats(in, 20 + l);
        c.w[l] = random_floats(wn, 30 + l);
        c.dw[l] = random_floats(wn, 40 + l);
        c.b[l] = random_floats((size_t)s->out_channels, 50 + l);
        c.db[l] = random_floats((size_t)s->out_channels, 60 + l);
        c.y[l] = random_floats(out, 70 + l);
        c.dy[l] = random_floats(out, 80 + l);
        ws = nn_conv2d_workspace_size(s);
        if (ws > c.ws_floats) c.ws_floats = ws;
    }
    c.ws = random_floats(c.ws_floats, 90);
    time_both(conv_run, &c, 5, best);
    report("LeNet convs fwd+bwd, batch 64", best, 1.0);

    /* LeNet training */
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte", data_dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte", data_dir);
    have_mnist = nn_mnist_load(ip, lp, &ds) == NN_OK;
    if (have_mnist) {
        nn_dataset_scale(&ds, 1.0 / 255.0);
    } else {
        memset(&ds, 0, sizeof ds);
        ds.count = 60000;
        ds.channels = 1;
        ds.height = ds.width = 28;
        ds.classes = 10;
        ds.x = random_floats((size_t)ds.count * 784, 5);
        ds.labels = (int *)malloc(sizeof(int) * (size_t)ds.count);
        for (i = 0; i < ds.count; i++) ds.labels[i] = i % 10;
    }
    printf("LeNet on %s (%d samples)\n", have_mnist ? "MNIST" : "random data (no MNIST found)", ds.count);
    t.m = lenet(2);
    nn_set_sample_split(t.m, 0);
    t.opt = nn_sgd(0.01f, 0.9f, 0.0f);
    t.ds = &ds;
    t.next = 0;
    t.count = steps;
    time_both(train_run, &t, 1, best);
    report("LeNet step, kernel threads only", best, steps);
    nn_optimizer_free(&t.opt);
    nn_model_free(t.m);
    t.m = lenet(2);
    t.opt = nn_sgd(0.01f, 0.9f, 0.0f);
    t.next = 0;
    time_both(train_run, &t, 1, best);
    report("LeNet train step, batch 64", best, steps);
    printf("        (an epoch of 938 steps: %.1f s and %.1f s; from the critical path: %.1f s and %.1f s)\n",
           best[0] / steps * 938, best[1] / steps * 938, cpu_main[0] / steps * 938, cpu_main[1] / steps * 938);
    time_both(forward_run, &t, 1, best);
    report("  LeNet forward", best, steps);
    time_both(backward_run, &t, 1, best);
    report("  LeNet nn_compute_gradients", best, steps);
    time_both(optimizer_run, &t, 1, best);
    report("  LeNet SGD update (44 426)", best, steps);
    if (full_epoch) {
        /* whole epochs, 1 and 2 threads alternating, epoch_runs times each: the median of each
           (a shared machine's occasional hiccup lands in one run, not in the median) */
        double e[2][64], med[2];
        int th, run;
        for (run = 0; run < epoch_runs; run++)
            for (th = 1; th <= 2; th++) {
                double t0;
                must(nn_set_threads(th), "nn_set_threads");
                nn_optimizer_reset(&t.opt);
                t.next = 0;
                t.count = (ds.count + 63) / 64;
                t0 = nn_seconds();
                train_run(&t);
                e[th - 1][run] = nn_seconds() - t0;
                printf("EPOCH run %d, %d thread(s): %.2f s\n", run + 1, th, e[th - 1][run]);
                fflush(stdout);
            }
        for (th = 0; th < 2; th++) {
            int i, j;
            for (i = 1; i < epoch_runs; i++) /* insertion sort: a handful of values */
                for (j = i; j > 0 && e[th][j - 1] > e[th][j]; j--) {
                    double tmp = e[th][j];
                    e[th][j] = e[th][j - 1];
                    e[th][j - 1] = tmp;
                }
            med[th] = epoch_runs % 2 ? e[th][epoch_runs / 2] : 0.5 * (e[th][epoch_runs / 2 - 1] + e[th][epoch_runs / 2]);
        }
        printf("SCALING %-30s wall, median of %d: 1 thread %8.2f s, 2 threads %8.2f s, speed-up %.2fx\n",
               "LeNet epoch (938 steps)", epoch_runs, med[0], med[1], med[0] / med[1]);
    }
    nn_optimizer_free(&t.opt);
    nn_model_free(t.m);

    /* does the thread count change any result? */
    {
        float *c1 = (float *)malloc(512 * 512 * sizeof(float)), *y1[2], *dw1[2], *dx1;
        int same_gemm, same_conv = 1, same_train, same_kernel_train, same_split_runs;
        double split_diff = 0.0;
        must(nn_set_threads(1), "nn_set_threads");
        gemm_run(&g);
        memcpy(c1, g.c, 512 * 512 * sizeof(float));
        conv_run(&c);
        for (l = 0; l < 2; l++) {
            size_t out = (size_t)64 * c.s[l].out_channels * (l ? 8 * 8 : 24 * 24), wn = (size_t)c.s[l].out_channels * c.s[l].in_channels * 25;
            y1[l] = (float *)malloc(out * sizeof(float));
            dw1[l] = (float *)malloc(wn * sizeof(float));
            memcpy(y1[l], c.y[l], out * sizeof(float));
            memcpy(dw1[l], c.dw[l], wn * sizeof(float));
        }
        dx1 = (float *)malloc((size_t)64 * 6 * 12 * 12 * sizeof(float));
        memcpy(dx1, c.dx[1], (size_t)64 * 6 * 12 * 12 * sizeof(float));
        must(nn_set_threads(2), "nn_set_threads");
        gemm_run(&g);
        same_gemm = !memcmp(c1, g.c, 512 * 512 * sizeof(float));
        conv_run(&c);
        for (l = 0; l < 2; l++) {
            size_t out = (size_t)64 * c.s[l].out_channels * (l ? 8 * 8 : 24 * 24), wn = (size_t)c.s[l].out_channels * c.s[l].in_channels * 25;
            same_conv &= !memcmp(y1[l], c.y[l], out * sizeof(float)) && !memcmp(dw1[l], c.dw[l], wn * sizeof(float));
        }
        same_conv &= !memcmp(dx1, c.dx[1], (size_t)64 * 6 * 12 * 12 * sizeof(float));
        /* training: kernel threads only, then split steps */
        same_kernel_train = train_pair(0, 1, 2, NULL, &t);
        same_train = train_pair(1, 1, 2, &split_diff, &t);
        same_split_runs = train_pair(1, 2, 2, NULL, &t);
        printf("IDENTICAL sgemm 512^3 output, 1 vs 2 threads: %s\n", same_gemm ? "bit-identical" : "DIFFERENT");
        printf("IDENTICAL LeNet conv outputs and gradients, 1 vs 2 threads: %s\n", same_conv ? "bit-identical" : "DIFFERENT");
        printf("IDENTICAL LeNet parameters after %d steps with kernel threads only, 1 vs 2 threads: %s\n", check_steps,
               same_kernel_train ? "bit-identical" : "DIFFERENT");
        printf("IDENTICAL LeNet parameters after %d split steps, 1 vs 2 threads: %s (largest difference %.3g, %.3g of "
               "the largest parameter)\n",
               check_steps, same_train ? "bit-identical" : "rounding apart", split_diff, split_diff_rel);
        printf("IDENTICAL LeNet parameters after %d split steps, two runs on 2 threads: %s\n", check_steps,
               same_split_runs ? "bit-identical" : "DIFFERENT");
        free(c1);
        free(dx1);
        for (l = 0; l < 2; l++) {
            free(y1[l]);
            free(dw1[l]);
        }
    }
    return 0;
}
