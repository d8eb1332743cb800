/* test_training.c - freezing, gradient accumulation, nn_backward_from's contract and the
   tensor accessors, against first principles (test_torch.c has the PyTorch fixtures of
   freezing and of a custom loss).

   This file compiles its own private copy of the implementation (NN_STATIC, as test_alloc.c
   does) so that it can look at what a backward ran: context 0's per-node "gradient ready" flags
   say which nodes' output gradients were computed, i.e. which backwards ran.

   1. Freezing skips work: with the first two layers of an MLP frozen the backward computes the
      output gradient of the last layer alone (one node, against 5 unfrozen), the trainable
      layer's gradients are bit-identical to the unfrozen model's, and with the input gradient
      on the frozen layers pass it on (bit-identical to the unfrozen input gradient). A layer
      frozen after a backward reads 0 at once and after the next backward; the counts; errors.
   2. Freezing in a split step (2 threads): the frozen layer is bit-identical after SGD steps
      with weight decay, its gradient 0; the rest within 1e-5 of one thread.
   3. Accumulation: k = 3 backwards of 4 samples (through nn_backward, nn_compute_gradients and
      nn_backward_from) with NN_GRAD_SUM give one backward of 12 samples to 1e-5 of the largest
      value; with NN_GRAD_MEAN 3 times its mean; nn_zero_grads and a second round give the same
      bits; nn_train_step uses its batch's gradient alone (bit-identical to a model that does not
      accumulate); nn_input_gradient_norm leaves the sum alone; turning it off overwrites again;
      a frozen layer stays 0. The split path (2 threads): 2 split backwards of 8 = one of 16.
   4. nn_backward_from: refused before a forward, for NULL and non-finite dy (nothing changed).
   5. Tensors: names and counts per op, every accessor against the flat buffers' offsets
      computed here, the documented layouts (linear [out][in], conv2d [out][in][kh][kw]) by
      one-hot inputs, nn_node_count/nn_node_at, and NULL plus a message for each misuse. */
#include <stddef.h>
#include <stdlib.h>
#define NN_STATIC
#define NN_IMPLEMENTATION
/* the same gcc 12 false positive as in test_alloc.c, from inlining nn_conv2d into this file */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "nn.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include "test_common.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

/* st must be `expected`, with a message that contains `needle` (if not NULL). */
static void expect_error_(nn_status st, nn_status expected, const char *needle, const char *what, int line)
{
    const char *msg = nn_last_error();
    if (st != expected)
        fail_msg("line %d: %s returned %s, expected %s (message \"%s\")", line, what, nn_status_name(st),
                 nn_status_name(expected), msg);
    if (!msg || !*msg) fail_msg("line %d: %s failed without a message", line, what);
    if (needle && !strstr(msg, needle)) fail_msg("line %d: %s: message \"%s\" does not mention \"%s\"", line, what, msg, needle);
}
#define EXPECT_ERROR(call, expected, needle) expect_error_((call), (expected), (needle), #call, __LINE__)

/* p must be NULL with a message that contains needle. */
static void expect_null_(const void *p, const char *needle, const char *what, int line)
{
    if (p) fail_msg("line %d: %s returned a pointer, expected NULL", line, what);
    if (!strstr(nn_last_error(), needle))
        fail_msg("line %d: %s: message \"%s\" does not mention \"%s\"", line, what, nn_last_error(), needle);
}
#define EXPECT_NULL(call, needle) do { nn_set_error(NN_OK, "%s", ""); expect_null_((call), (needle), #call, __LINE__); } while (0)

static float *fmalloc(size_t n)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p) fail_msg("out of memory");
    return p;
}

static double max_abs(const float *x, size_t n)
{
    double worst = 0.0;
    size_t i;
    for (i = 0; i < n; i++) worst = fmax(worst, fabs((double)x[i]));
    return worst;
}

/* |got - want| <= rel * max|want| element-wise */
static void expect_close(const char *what, const float *got, const float *want, size_t n, double rel)
{
    const double bound = rel * fmax(max_abs(want, n), 1e-30);
    size_t i;
    for (i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= bound))
            fail_msg("%s: element %lu is %.9g, expected %.9g (bound %.3g)", what, (unsigned long)i, (double)got[i],
                     (double)want[i], bound);
}

static int all_zero(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

/* Nodes whose output gradient the last whole-batch backward computed. */
static int gradients_computed(const nn_model *m)
{
    int i, n = 0;
    for (i = 0; i < m->count; i++) n += m->contexts[0].grad_ready[i] != 0;
    return n;
}

/* input 12 -> linear 10 -> tanh -> linear 8 -> tanh -> linear 4 (MSE, or cross-entropy): the
   layers are nodes 1, 3, 5 and nn_layer 0, 1, 2. tanh: no kinks, so sums regroup smoothly. */
static nn_model *mlp(nn_loss loss, int max_batch)
{
    nn_model *m = nn_model_new(5);
    nn_node *h = nn_tanh(m, nn_linear(m, nn_input(m, 12, 1, 1), 10, NN_BIAS));
    h = nn_linear(m, nn_tanh(m, nn_linear(m, h, 8, NN_BIAS)), 4, NN_BIAS);
    ASSERT_OK(nn_compile(m, h, loss, max_batch));
    return m;
}

/* ------------------------------------------------------------------ 1. freezing skips work */
static void test_freeze_skips_backward(void **state)
{
    nn_model *free_model = mlp(NN_LOSS_SOFTMAX_CROSS_ENTROPY, 6), *m = mlp(NN_LOSS_SOFTMAX_CROSS_ENTROPY, 6);
    const size_t p = nn_param_count(m);
    float x[6 * 12], *input_grad = fmalloc(6 * 12), *grads = fmalloc(p);
    int labels[6] = {0, 3, 1, 2, 3, 0};
    size_t at, n;
    (void)state;
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    /* unfrozen: every node but the input has its output gradient computed */
    ASSERT_OK(nn_forward(free_model, x, 6, NN_TRAIN));
    ASSERT_OK(nn_backward(free_model, labels, NULL, NULL));
    if (gradients_computed(free_model) != 5) fail_msg("unfrozen: %d output gradients, expected 5", gradients_computed(free_model));
    memcpy(grads, nn_grads(free_model), p * sizeof(float));

    /* the first two layers frozen: only the last layer's backward runs, without its dx */
    ASSERT_OK(nn_set_trainable(nn_layer(m, 0), 0));
    ASSERT_OK(nn_set_trainable(nn_layer(m, 1), 0));
    ASSERT_OK(nn_forward(m, x, 6, NN_TRAIN));
    ASSERT_OK(nn_backward(m, labels, NULL, NULL));
    if (gradients_computed(m) != 1 || !m->contexts[0].grad_ready[m->output->index])
        fail_msg("first two layers frozen: %d output gradients computed, expected only the output's", gradients_computed(m));
    if (m->nodes[1]->needs_grad || m->nodes[2]->needs_grad || m->nodes[3]->needs_grad || m->nodes[4]->needs_grad)
        fail_msg("a frozen prefix node was marked as needing a gradient");
    at = (size_t)(nn_node_weights(m, nn_layer(m, 2), &n) - nn_params(m));
    if (!all_zero(nn_grads(m), at)) fail_msg("the frozen layers' gradients are not 0");
    if (memcmp(nn_grads(m) + at, grads + at, (p - at) * sizeof(float)) != 0)
        fail_msg("the last layer's gradients differ from the unfrozen model's");

    /* only the first frozen: the middle layer's backward runs, but not its dx */
    ASSERT_OK(nn_set_trainable(nn_layer(m, 1), 1));
    ASSERT_OK(nn_backward(m, labels, NULL, NULL));
    if (gradients_computed(m) != 3) fail_msg("first layer frozen: %d output gradients, expected 3", gradients_computed(m));
    if (memcmp(nn_grads(m) + 130, grads + 130, (p - 130) * sizeof(float)) != 0 || !all_zero(nn_grads(m), 130))
        fail_msg("first layer frozen: gradients are not the unfrozen ones with the first layer's 0");

    /* the input gradient is still honoured: it flows through the frozen layers, unchanged */
    ASSERT_OK(nn_set_trainable(nn_layer(m, 1), 0));
    nn_set_input_gradient(free_model, 1);
    nn_set_input_gradient(m, 1);
    ASSERT_OK(nn_backward(free_model, labels, NULL, NULL));
    memcpy(input_grad, nn_input_gradient(free_model), sizeof x);
    ASSERT_OK(nn_backward(m, labels, NULL, NULL));
    if (gradients_computed(m) != 6) fail_msg("input gradient on: %d output gradients, expected all 6", gradients_computed(m));
    if (!nn_input_gradient(m) || memcmp(nn_input_gradient(m), input_grad, sizeof x) != 0)
        fail_msg("input gradient through frozen layers differs from the unfrozen model's");
    if (!all_zero(nn_grads(m), at)) fail_msg("the frozen layers got gradients when the input gradient was on");
    free(input_grad);
    free(grads);
    nn_model_free(free_model);
    nn_model_free(m);
}

/* Freezing after a backward zeroes the slice at once; the counts; misuse. */
static void test_freeze_state_and_errors(void **state)
{
    nn_model *m = nn_model_new(1);
    nn_node *in = nn_input(m, 12, 1, 1), *a = nn_linear(m, in, 10, NN_BIAS), *r = nn_relu(m, a);
    nn_node *b = nn_linear(m, r, 3, NN_NO_BIAS);
    float x[2 * 12];
    int labels[2] = {1, 2};
    size_t n;
    float *g;
    (void)state;
    /* before nn_compile: flags only */
    ASSERT_OK(nn_set_trainable(b, 0));
    if (nn_node_trainable(b) || !nn_node_trainable(a) || nn_node_trainable(r) || nn_node_trainable(NULL))
        fail_msg("nn_node_trainable: linear 1 / frozen linear 0 / relu 0 / NULL 0 expected");
    if (nn_trainable_param_count(m) != 0) fail_msg("an uncompiled model reports trainable parameters");
    EXPECT_ERROR(nn_set_trainable(NULL, 0), NN_ERROR_ARGUMENT, "null node");
    EXPECT_ERROR(nn_set_trainable(r, 0), NN_ERROR_ARGUMENT, "no parameters");
    EXPECT_ERROR(nn_set_trainable(in, 0), NN_ERROR_ARGUMENT, "no parameters");
    ASSERT_OK(nn_set_trainable(b, 1));
    ASSERT_OK(nn_compile(m, b, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2));
    if (nn_param_count(m) != 130 + 30 || nn_trainable_param_count(m) != 160) fail_msg("counts before freezing");
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    ASSERT_OK(nn_forward(m, x, 2, NN_TRAIN));
    ASSERT_OK(nn_backward(m, labels, NULL, NULL));
    g = nn_node_weight_grads(m, a, &n);
    if (all_zero(g, n)) fail_msg("the test needs a non-zero gradient");
    ASSERT_OK(nn_set_trainable(a, 0)); /* after nn_compile and a backward */
    if (!all_zero(g, 130)) fail_msg("freezing did not zero the gradient"); /* weights and bias: the first 130 */
    if (nn_trainable_param_count(m) != 30) fail_msg("trainable %lu, expected 30", (unsigned long)nn_trainable_param_count(m));
    ASSERT_OK(nn_backward(m, labels, NULL, NULL));
    if (!all_zero(nn_grads(m), 130)) fail_msg("a frozen layer got a gradient");
    if (all_zero(nn_grads(m) + 130, 30)) fail_msg("the trainable layer got no gradient");
    nn_model_free(m);
}

/* ------------------------------------------------------------------ 2. freezing, split */
/* big enough for nn.h to split a step of 8 samples over 2 threads (as test_engine's split tests) */
static nn_model *split_model(int max_batch)
{
    nn_model *m = nn_model_new(21);
    nn_node *a = nn_relu(m, nn_conv2d(m, nn_input(m, 1, 16, 16), 16, 3, 1, 1, NN_BIAS));
    nn_node *h = nn_maxpool2d(m, nn_relu(m, nn_conv2d(m, a, 16, 3, 1, 1, NN_BIAS)), 2, 2);
    h = nn_tanh(m, nn_linear(m, nn_flatten(m, h), 64, NN_BIAS));
    h = nn_linear(m, h, 10, NN_BIAS);
    ASSERT_OK(nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch));
    return m;
}

/* layer 1 (the second convolution) frozen, 3 SGD steps with weight decay on `threads` threads;
   returns the parameters; *split: whether the steps were split by samples */
static float *frozen_split_run(int threads, const float *x, const int *labels, int *split)
{
    nn_model *m;
    nn_optimizer o = nn_sgd(0.05f, 0.9f, 0.01f);
    float *params, *before;
    size_t at, n, bn, p;
    int s;
    ASSERT_OK(nn_set_threads(threads));
    m = split_model(8);
    ASSERT_OK(nn_set_trainable(nn_layer(m, 1), 0));
    p = nn_param_count(m);
    at = (size_t)(nn_node_weights(m, nn_layer(m, 1), &n) - nn_params(m));
    (void)nn_node_bias(m, nn_layer(m, 1), &bn);
    n += bn;
    before = fmalloc(n);
    memcpy(before, nn_params(m) + at, n * sizeof(float));
    for (s = 0; s < 3; s++) ASSERT_OK(nn_train_step(m, &o, x + (size_t)s * 8 * 256, labels + s * 8, NULL, 8, NULL));
    if (memcmp(before, nn_params(m) + at, n * sizeof(float)) != 0) fail_msg("%d threads: the frozen layer moved", threads);
    if (!all_zero(nn_grads(m) + at, n) || !all_zero(o.state + at, n))
        fail_msg("%d threads: the frozen layer has a gradient or momentum", threads);
    *split = nn_backward(m, labels, NULL, NULL) == NN_ERROR_STATE;
    params = fmalloc(p);
    memcpy(params, nn_params(m), p * sizeof(float));
    free(before);
    nn_optimizer_free(&o);
    nn_model_free(m);
    ASSERT_OK(nn_set_threads(1));
    return params;
}

static void test_freeze_split_step(void **state)
{
    float *x = fmalloc(3 * 8 * 256), *one, *two;
    int labels[24], i, split1, split2;
    size_t p;
    nn_model *probe;
    (void)state;
    nn_test_fill(x, 3 * 8 * 256, -1.0f, 1.0f);
    for (i = 0; i < 24; i++) labels[i] = (i * 7) % 10;
    one = frozen_split_run(1, x, labels, &split1);
    two = frozen_split_run(2, x, labels, &split2);
    if (split1) fail_msg("one thread split the step");
#ifdef _OPENMP
    if (!split2) fail_msg("two threads did not split the step");
#endif
    probe = split_model(1);
    p = nn_param_count(probe);
    nn_model_free(probe);
    expect_close("frozen conv, 2 threads vs 1: parameters after 3 steps", two, one, p, 1e-5);
    free(one);
    free(two);
    free(x);
}

/* ------------------------------------------------------------------ 3. accumulation */
/* d(MSE)/d(output) with NN_GRAD_SUM, by hand: 2 (y - t) / K */
static void mse_dy(const float *y, const float *t, int count, int K, float *dy)
{
    int i;
    for (i = 0; i < count * K; i++) dy[i] = 2.0f * (y[i] - t[i]) / (float)K;
}

/* 3 backwards of 4 samples, each by another entry point; returns a copy of nn_grads */
static float *accumulate_three(nn_model *m, const float *x, const float *t)
{
    const size_t p = nn_param_count(m);
    float dy[4 * 4], *out = fmalloc(p);
    ASSERT_OK(nn_forward(m, x, 4, NN_TRAIN));
    ASSERT_OK(nn_backward(m, NULL, t, NULL));
    ASSERT_OK(nn_compute_gradients(m, x + 4 * 12, NULL, t + 4 * 4, 4, NULL));
    ASSERT_OK(nn_forward(m, x + 8 * 12, 4, NN_TRAIN));
    mse_dy(nn_output(m), t + 8 * 4, 4, 4, dy);
    if (nn_get_grad_reduction(m) == NN_GRAD_MEAN) nn_scale(COUNT(dy), 0.25f, dy);
    ASSERT_OK(nn_backward_from(m, dy));
    memcpy(out, nn_grads(m), p * sizeof(float));
    return out;
}

static void test_accumulation(void **state)
{
    nn_model *whole = mlp(NN_LOSS_MSE, 12), *m = mlp(NN_LOSS_MSE, 4), *plain = mlp(NN_LOSS_MSE, 4);
    const size_t p = nn_param_count(m);
    float x[12 * 12], t[12 * 4], *sum, *again, *mean, *one_batch = fmalloc(p);
    nn_optimizer o1 = nn_sgd(0.1f, 0.0f, 0.0f), o2 = nn_sgd(0.1f, 0.0f, 0.0f);
    nn_dataset ds;
    double norm;
    (void)state;
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    nn_test_fill(t, COUNT(t), -1.0f, 1.0f);
    /* reference: one batch of 12, summed */
    nn_set_grad_reduction(whole, NN_GRAD_SUM);
    ASSERT_OK(nn_compute_gradients(whole, x, NULL, t, 12, NULL));
    memcpy(one_batch, nn_grads(whole), p * sizeof(float));

    if (nn_get_grad_accumulation(m)) fail_msg("accumulation is on by default");
    ASSERT_OK(nn_set_grad_accumulation(m, 1));
    if (!nn_get_grad_accumulation(m)) fail_msg("nn_get_grad_accumulation after enabling it");
    nn_set_grad_reduction(m, NN_GRAD_SUM);
    ASSERT_OK(nn_zero_grads(m));
    sum = accumulate_three(m, x, t);
    expect_close("3 x 4 samples accumulated (NN_GRAD_SUM) vs one batch of 12", sum, one_batch, p, 1e-5);
    ASSERT_OK(nn_zero_grads(m));
    if (!all_zero(nn_grads(m), p)) fail_msg("nn_zero_grads left values");
    again = accumulate_three(m, x, t);
    if (memcmp(again, sum, p * sizeof(float)) != 0) fail_msg("a second round after nn_zero_grads is not bit-identical");

    /* the mean: each backward adds its batch's mean, 3 of them = 3 x the mean over 12 */
    nn_set_grad_reduction(m, NN_GRAD_MEAN);
    ASSERT_OK(nn_zero_grads(m));
    mean = accumulate_three(m, x, t);
    nn_scale(p, 3.0f / 12.0f, one_batch);
    expect_close("3 x 4 samples accumulated (NN_GRAD_MEAN) vs 3 x the mean of 12", mean, one_batch, p, 1e-5);

    /* nn_input_gradient_norm while accumulating: nn_grads keeps the sum */
    nn_set_input_gradient(m, 1);
    ASSERT_OK(nn_dataset_alloc(&ds, 5, 12, 1, 1, 0, 4));
    memcpy(ds.x, x, 5 * 12 * sizeof(float));
    memcpy(ds.targets, t, 5 * 4 * sizeof(float));
    ASSERT_OK(nn_input_gradient_norm(m, &ds, 4, &norm));
    if (memcmp(nn_grads(m), mean, p * sizeof(float)) != 0) fail_msg("nn_input_gradient_norm changed the accumulated gradients");
    nn_set_input_gradient(m, 0);

    /* nn_train_step ignores the mode: its batch's gradient alone, the same bits as without it */
    ASSERT_OK(nn_train_step(m, &o1, x, NULL, t, 4, NULL));
    ASSERT_OK(nn_train_step(plain, &o2, x, NULL, t, 4, NULL));
    if (memcmp(nn_grads(m), nn_grads(plain), p * sizeof(float)) != 0 || memcmp(nn_params(m), nn_params(plain), p * sizeof(float)) != 0)
        fail_msg("nn_train_step while accumulating differs from nn_train_step without");

    /* off again: a backward overwrites */
    ASSERT_OK(nn_set_grad_accumulation(m, 0));
    ASSERT_OK(nn_compute_gradients(m, x, NULL, t, 4, NULL));
    ASSERT_OK(nn_compute_gradients(plain, x, NULL, t, 4, NULL));
    if (memcmp(nn_grads(m), nn_grads(plain), p * sizeof(float)) != 0) fail_msg("after disabling, a backward still adds");

    EXPECT_ERROR(nn_zero_grads(NULL), NN_ERROR_STATE, "nn_zero_grads");
    EXPECT_ERROR(nn_set_grad_accumulation(NULL, 1), NN_ERROR_ARGUMENT, "null model");
    nn_dataset_free(&ds);
    nn_optimizer_free(&o1);
    nn_optimizer_free(&o2);
    free(sum);
    free(again);
    free(mean);
    free(one_batch);
    nn_model_free(whole);
    nn_model_free(m);
    nn_model_free(plain);
}

/* enabled before nn_compile; a frozen layer stays 0 through accumulated backwards */
static void test_accumulation_before_compile_frozen(void **state)
{
    nn_model *m = nn_model_new(5);
    nn_node *a = nn_linear(m, nn_input(m, 12, 1, 1), 10, NN_BIAS);
    nn_node *y = nn_linear(m, nn_tanh(m, a), 4, NN_BIAS);
    float x[8 * 12], t[8 * 4], first[44];
    size_t n;
    (void)state;
    ASSERT_OK(nn_set_grad_accumulation(m, 1));
    ASSERT_OK(nn_compile(m, y, NN_LOSS_MSE, 8));
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    nn_test_fill(t, COUNT(t), -1.0f, 1.0f);
    ASSERT_OK(nn_compute_gradients(m, x, NULL, t, 8, NULL));
    memcpy(first, nn_grads(m) + 130, sizeof first);
    ASSERT_OK(nn_compute_gradients(m, x, NULL, t, 8, NULL));
    for (n = 0; n < COUNT(first); n++)
        if (nn_grads(m)[130 + n] != 2.0f * first[n]) fail_msg("the same batch twice is not twice the gradient (exact)");
    ASSERT_OK(nn_set_trainable(a, 0));
    ASSERT_OK(nn_compute_gradients(m, x, NULL, t, 8, NULL));
    if (nn_node_weight_grads(m, a, &n) != nn_grads(m) || !all_zero(nn_grads(m), 130))
        fail_msg("a frozen layer's accumulated gradient is not 0");
    for (n = 0; n < COUNT(first); n++)
        if (nn_grads(m)[130 + n] != 3.0f * first[n]) fail_msg("the trainable layer did not add its third gradient");
    nn_model_free(m);
}

/* The split path: 2 split backwards of 8 samples add up to one backward of 16 on one thread. */
static void test_accumulation_split(void **state)
{
    float *x = fmalloc(16 * 256), *whole;
    int labels[16], i, split;
    nn_model *m;
    size_t p;
    (void)state;
    nn_test_fill(x, 16 * 256, -1.0f, 1.0f);
    for (i = 0; i < 16; i++) labels[i] = (i * 3) % 10;
    ASSERT_OK(nn_set_threads(1));
    m = split_model(16);
    p = nn_param_count(m);
    nn_set_grad_reduction(m, NN_GRAD_SUM);
    ASSERT_OK(nn_compute_gradients(m, x, labels, NULL, 16, NULL));
    whole = fmalloc(p);
    memcpy(whole, nn_grads(m), p * sizeof(float));
    nn_model_free(m);

    ASSERT_OK(nn_set_threads(2));
    m = split_model(8);
    nn_set_grad_reduction(m, NN_GRAD_SUM);
    ASSERT_OK(nn_set_grad_accumulation(m, 1));
    ASSERT_OK(nn_compute_gradients(m, x, labels, NULL, 8, NULL));
    ASSERT_OK(nn_compute_gradients(m, x + 8 * 256, labels + 8, NULL, 8, NULL));
    expect_close("2 threads, 2 x 8 samples accumulated vs one batch of 16 on one thread", nn_grads(m), whole, p, 1e-5);
    split = nn_backward(m, labels, NULL, NULL) == NN_ERROR_STATE; /* (adds to nn_grads when it runs) */
#ifdef _OPENMP
    if (!split) fail_msg("two threads did not split the backward");
#else
    (void)split;
#endif
    ASSERT_OK(nn_set_threads(1));
    free(whole);
    free(x);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ 4. nn_backward_from */
static void test_backward_from_errors(void **state)
{
    nn_model *m = mlp(NN_LOSS_NONE, 3);
    const size_t p = nn_param_count(m);
    float x[3 * 12], dy[3 * 4], *before = fmalloc(p);
    (void)state;
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    nn_test_fill(dy, COUNT(dy), -1.0f, 1.0f);
    EXPECT_ERROR(nn_backward_from(NULL, dy), NN_ERROR_STATE, "nn_forward first");
    EXPECT_ERROR(nn_backward_from(m, dy), NN_ERROR_STATE, "nn_forward first");
    ASSERT_OK(nn_forward(m, x, 3, NN_TRAIN));
    EXPECT_ERROR(nn_backward_from(m, NULL), NN_ERROR_ARGUMENT, "null");
    ASSERT_OK(nn_backward_from(m, dy));
    memcpy(before, nn_grads(m), p * sizeof(float));
    dy[5] = NAN;
    EXPECT_ERROR(nn_backward_from(m, dy), NN_ERROR_NONFINITE, "sample 1");
    dy[5] = INFINITY;
    EXPECT_ERROR(nn_backward_from(m, dy), NN_ERROR_NONFINITE, "inf");
    if (memcmp(before, nn_grads(m), p * sizeof(float)) != 0) fail_msg("a refused nn_backward_from changed nn_grads");
    EXPECT_ERROR(nn_backward(m, NULL, NULL, NULL), NN_ERROR_STATE, "without a loss");
    free(before);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ 5. tensors */
static void test_tensor_names(void **state)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 2, 5, 5), *c = nn_conv2d(m, x, 3, 3, 1, 0, NN_NO_BIAS), *bn = nn_batchnorm(m, c);
    nn_node *r = nn_relu(m, bn), *l = nn_linear(m, nn_flatten(m, r), 4, NN_BIAS);
    static const char *bn_names[] = {"weight", "bias", "running_mean", "running_var"};
    int i;
    (void)state;
    if (nn_node_tensor_count(x) != 0 || nn_node_tensor_count(r) != 0 || nn_node_tensor_count(NULL) != 0)
        fail_msg("input, relu and NULL have tensors");
    if (nn_node_tensor_count(c) != 1 || strcmp(nn_node_tensor_name(c, 0), "weight") != 0 || nn_node_tensor_name(c, 1))
        fail_msg("conv2d without bias: expected weight only");
    if (nn_node_tensor_count(l) != 2 || strcmp(nn_node_tensor_name(l, 0), "weight") != 0 ||
        strcmp(nn_node_tensor_name(l, 1), "bias") != 0)
        fail_msg("linear: expected weight, bias");
    if (nn_node_tensor_count(bn) != 4) fail_msg("batchnorm: %d tensors, expected 4", nn_node_tensor_count(bn));
    for (i = 0; i < 4; i++)
        if (strcmp(nn_node_tensor_name(bn, i), bn_names[i]) != 0) fail_msg("batchnorm tensor %d is %s", i, nn_node_tensor_name(bn, i));
    if (nn_node_tensor_name(bn, 4) || nn_node_tensor_name(bn, -1) || nn_node_tensor_name(NULL, 0))
        fail_msg("out-of-range tensor names are not NULL");
    if (nn_node_count(m) != 6 || nn_node_count(NULL) != 0) fail_msg("nn_node_count %d, expected 6", nn_node_count(m));
    if (nn_node_at(m, 0) != x || nn_node_at(m, 1) != c || nn_node_at(m, 2) != bn || nn_node_at(m, 3) != r ||
        nn_node_op(nn_node_at(m, 4)) != NN_OP_FLATTEN || nn_node_at(m, 5) != l)
        fail_msg("nn_node_at does not follow the build order");
    if (nn_node_at(m, 6) || nn_node_at(m, -1) || nn_node_at(NULL, 0)) fail_msg("nn_node_at out of range is not NULL");
    EXPECT_NULL(nn_node_tensor(m, l, "weight", NULL), "compile the model first");
    nn_model_free(m);
}

/* Every accessor against offsets computed here: parameters in build order, weight then bias;
   state per batch norm, running mean then running variance. */
static void test_tensor_offsets(void **state)
{
    nn_model *m = nn_model_new(1), *other = mlp(NN_LOSS_MSE, 1);
    nn_node *x = nn_input(m, 2, 5, 5), *c = nn_conv2d(m, x, 3, 3, 1, 0, NN_NO_BIAS), *bn = nn_batchnorm(m, c);
    nn_node *l = nn_linear(m, nn_flatten(m, nn_relu(m, bn)), 4, NN_BIAS);
    nn_node *dead = nn_linear(m, x, 2, NN_BIAS); /* not an ancestor of the output */
    float *params, *grads, *st;
    size_t n, k;
    (void)state;
    ASSERT_OK(nn_compile(m, l, NN_LOSS_MSE, 2));
    params = nn_params(m);
    grads = nn_grads(m);
    st = nn_state(m);
    if (nn_param_count(m) != 54 + 3 + 3 + 4 * 27 + 4) fail_msg("param count %lu", (unsigned long)nn_param_count(m));
    {
        /* conv weight [3][2][3][3] at 0; bn gamma at 54, beta at 57; linear weight [4][27] at 60, bias at 168 */
        const struct { nn_node *node; const char *name; float *base; size_t offset, count; } rows[] = {
            {c, "weight", params, 0, 54}, {bn, "weight", params, 54, 3}, {bn, "bias", params, 57, 3},
            {bn, "running_mean", st, 0, 3}, {bn, "running_var", st, 3, 3}, {l, "weight", params, 60, 108},
            {l, "bias", params, 168, 4}};
        for (k = 0; k < COUNT(rows); k++) {
            float *got = nn_node_tensor(m, rows[k].node, rows[k].name, &n);
            if (got != rows[k].base + rows[k].offset || n != rows[k].count)
                fail_msg("nn_node_tensor(%s of node %d): offset %ld count %lu, expected %lu and %lu", rows[k].name,
                         rows[k].node->index, (long)(got - rows[k].base), (unsigned long)n, (unsigned long)rows[k].offset,
                         (unsigned long)rows[k].count);
            if (rows[k].base == st) {
                EXPECT_NULL(nn_node_tensor_grad(m, rows[k].node, rows[k].name, &n), "no gradient");
                if (n != 0) fail_msg("count not 0 for a refused tensor");
            } else if (nn_node_tensor_grad(m, rows[k].node, rows[k].name, &n) != grads + rows[k].offset || n != rows[k].count) {
                fail_msg("nn_node_tensor_grad(%s of node %d): wrong slice", rows[k].name, rows[k].node->index);
            }
        }
    }
    /* the older accessors name the same slices */
    if (nn_node_weights(m, l, &n) != params + 60 || nn_node_bias(m, l, &n) != params + 168 ||
        nn_node_weight_grads(m, l, &n) != grads + 60 || nn_node_bias_grads(m, l, &n) != grads + 168 || n != 4)
        fail_msg("nn_node_weights/bias/weight_grads/bias_grads disagree with the offsets");
    if (nn_node_bias_grads(m, c, &n) || n != 0) fail_msg("nn_node_bias_grads of a conv without bias");
    if (nn_node_bias_grads(m, bn, &n) != grads + 57 || n != 3) fail_msg("nn_node_bias_grads of the batch norm (beta)");
    /* misuse: NULL and a message, count 0 */
    n = 99;
    EXPECT_NULL(nn_node_tensor(m, c, "bias", &n), "has no tensor \"bias\" (it has weight)");
    if (n != 0) fail_msg("count not 0 after a refusal");
    EXPECT_NULL(nn_node_tensor(m, bn, "gamma", NULL), "it has weight, bias, running_mean, running_var");
    EXPECT_NULL(nn_node_tensor(m, x, "weight", NULL), "it has none");
    EXPECT_NULL(nn_node_tensor(m, l, NULL, NULL), "null tensor name");
    EXPECT_NULL(nn_node_tensor(m, NULL, "weight", NULL), "null node");
    EXPECT_NULL(nn_node_tensor(NULL, l, "weight", NULL), "null model");
    EXPECT_NULL(nn_node_tensor(other, l, "weight", NULL), "another model");
    EXPECT_NULL(nn_node_tensor_grad(m, dead, "weight", NULL), "not used by the output");
    nn_model_free(m);
    nn_model_free(other);
}

/* The documented layouts, read through the outputs of one-hot inputs: linear y[o] = W[o][i] + b[o]
   for x = e_i; conv2d (3x3 input, 3x3 kernel, one output pixel) y[o] = W[o][c][ky][kx] for x one-hot
   at (c, ky, kx). */
static void test_tensor_layouts(void **state)
{
    nn_model *lm = nn_model_new(1), *cm = nn_model_new(1);
    nn_node *l = nn_linear(lm, nn_input(lm, 5, 1, 1), 3, NN_BIAS);
    nn_node *c = nn_conv2d(cm, nn_input(cm, 2, 3, 3), 4, 3, 1, 0, NN_NO_BIAS);
    float *w, *b, x[18];
    size_t n, i, o;
    (void)state;
    ASSERT_OK(nn_compile(lm, l, NN_LOSS_NONE, 1));
    ASSERT_OK(nn_compile(cm, c, NN_LOSS_NONE, 1));
    w = nn_node_tensor(lm, l, "weight", &n);
    b = nn_node_tensor(lm, l, "bias", NULL);
    for (i = 0; i < n; i++) w[i] = (float)i;
    for (o = 0; o < 3; o++) b[o] = 100.0f * (float)(o + 1);
    for (i = 0; i < 5; i++) {
        memset(x, 0, sizeof x);
        x[i] = 1.0f;
        ASSERT_OK(nn_forward(lm, x, 1, NN_EVAL));
        for (o = 0; o < 3; o++)
            if (nn_output(lm)[o] != w[o * 5 + i] + b[o]) fail_msg("linear weight is not [out][in]");
    }
    w = nn_node_tensor(cm, c, "weight", &n);
    if (n != 4 * 2 * 3 * 3) fail_msg("conv weight count %lu", (unsigned long)n);
    for (i = 0; i < n; i++) w[i] = (float)i;
    for (i = 0; i < 18; i++) { /* i = (channel, ky, kx) */
        memset(x, 0, sizeof x);
        x[i] = 1.0f;
        ASSERT_OK(nn_forward(cm, x, 1, NN_EVAL));
        for (o = 0; o < 4; o++)
            if (nn_output(cm)[o] != w[o * 18 + i]) fail_msg("conv weight is not [out][in][kh][kw]");
    }
    nn_model_free(lm);
    nn_model_free(cm);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_freeze_skips_backward),
    cmocka_unit_test(test_freeze_state_and_errors),
    cmocka_unit_test(test_freeze_split_step),
    cmocka_unit_test(test_accumulation),
    cmocka_unit_test(test_accumulation_before_compile_frozen),
    cmocka_unit_test(test_accumulation_split),
    cmocka_unit_test(test_backward_from_errors),
    cmocka_unit_test(test_tensor_names),
    cmocka_unit_test(test_tensor_offsets),
    cmocka_unit_test(test_tensor_layouts),
};

NN_TEST_MAIN("training", tests)
