/* test_alloc.c - nn.h's allocations, counted through NN_MALLOC / NN_FREE.

   This file compiles its own copy of the implementation with counting NN_MALLOC/NN_FREE, made
   private with NN_STATIC: every nn_* call here goes to that copy, so linking tests/nn_impl.o as
   well (as tests/tests.mk does for every test program) is harmless - its extern copy is unused.

   1. After the first nn_train_step (where the optimiser allocates its state, once) training
      allocates nothing: an MLP with SGD momentum, and a CNN with batch norm and dropout with
      Adam (on 1 and, with OpenMP, 2 threads), including a smaller last batch; nor do eval
      forwards, nn_backward with input gradients, nn_compute_loss, nn_evaluate and
      nn_optimizer_reset.
   2. nn_model_free and nn_optimizer_free give back every block (the live count returns to
      where it was), also after builder errors, failed compiles, nn_save/nn_load, nn_fit and
      nn_mnist_load.
   3. Allocation failure: for every k, the k-th allocation of a whole session (build, compile,
      train, fit, save, load, IDX load) fails; every call must then fail cleanly (NULL or an
      error status, never a crash), and after freeing everything the live count is zero. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */
#include <stddef.h>
#include <stdlib.h>

static size_t alloc_calls, free_calls, fail_at; /* fail_at: the 1-based call that returns NULL; 0 never */
static long live_blocks;
static int injected;

static void *count_malloc(size_t size)
{
    void *p;
    alloc_calls++;
    if (fail_at && alloc_calls == fail_at) {
        injected = 1;
        return NULL;
    }
    p = malloc(size);
    if (p) live_blocks++;
    return p;
}
static void count_free(void *p)
{
    if (!p) return;
    free_calls++;
    live_blocks--;
    free(p);
}

#define NN_MALLOC(size) count_malloc(size)
#define NN_FREE(ptr) count_free(ptr)
#define NN_STATIC
#define NN_IMPLEMENTATION
#define NN_SPLIT_MAX_BYTES ((size_t)64 << 20) /* test_split_memory_cap */
/* gcc 12 -O2 inlines nn_conv2d into this file's callers and then warns that its `oh`/`ow` may
   be used uninitialised (they are set whenever nn__conv_check returns NN_OK, which gcc cannot
   see through the non-inlinable varargs nn__fail). Reported; silenced here only. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "nn.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include "test_common.h"
#include <unistd.h>

#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

static nn_model *mlp(int max_batch)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_relu(m, nn_linear(m, nn_input(m, 64, 1, 1), 48, NN_BIAS));
    h = nn_linear(m, nn_tanh(m, nn_linear(m, h, 32, NN_BIAS)), 10, NN_BIAS);
    if (nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch) != NN_OK) fail_msg("compile: %s", nn_last_error());
    return m;
}

static nn_model *cnn(int max_batch)
{
    nn_model *m = nn_model_new(2);
    nn_node *x = nn_input(m, 1, 12, 12), *h, *r;
    h = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 6, 3, 1, 1, NN_BIAS)));
    r = nn_batchnorm(m, nn_conv2d(m, h, 6, 3, 1, 1, NN_NO_BIAS));
    h = nn_maxpool2d(m, nn_relu(m, nn_add_nodes(m, h, r)), 2, 2);
    h = nn_avgpool2d(m, nn_conv2d(m, h, 8, 3, 2, 1, NN_BIAS), 2, 1);
    h = nn_dropout(m, nn_flatten(m, h), 0.3f);
    h = nn_relu(m, nn_batchnorm(m, nn_linear(m, h, 24, NN_BIAS)));
    h = nn_log_softmax(m, nn_linear(m, h, 10, NN_BIAS));
    if (nn_compile(m, h, NN_LOSS_NLL, max_batch) != NN_OK) fail_msg("compile: %s", nn_last_error());
    return m;
}

/* A CNN without batch norm or dropout: with 2 threads its training steps split by samples. */
static nn_model *plain_cnn(int max_batch)
{
    nn_model *m = nn_model_new(3);
    nn_node *a = nn_relu(m, nn_conv2d(m, nn_input(m, 1, 16, 16), 8, 3, 1, 1, NN_BIAS));
    nn_node *h = nn_maxpool2d(m, nn_add_nodes(m, a, nn_conv2d(m, a, 8, 3, 1, 1, NN_NO_BIAS)), 2, 2);
    h = nn_linear(m, nn_relu(m, nn_linear(m, nn_flatten(m, h), 64, NN_BIAS)), 10, NN_BIAS);
    if (nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch) != NN_OK) fail_msg("compile: %s", nn_last_error());
    return m;
}

/* Trains `steps` steps (the last one on a smaller batch) and checks that no step after the
   first allocates; then eval/backward/loss/evaluate/reset allocate nothing either. With
   input_gradient the steps compute d(loss)/d(input) too (and so never split by samples). */
static void no_alloc_after_first_step(nn_model *m, nn_optimizer *o, int max_batch, int steps, int input_gradient,
                                      const char *what)
{
    const int in = nn_input_size(m);
    float *x = (float *)malloc((size_t)max_batch * in * sizeof(float)), loss;
    int *labels = (int *)malloc((size_t)max_batch * sizeof(int)), s, i;
    size_t after_first = 0, optimizer_allocs;
    nn_dataset ds;
    nn_metrics metrics;
    if (!x || !labels) fail_msg("out of memory");
    nn_test_fill(x, (size_t)max_batch * in, 0.0f, 1.0f);
    for (i = 0; i < max_batch; i++) labels[i] = (i * 3) % 10;
    nn_set_input_gradient(m, input_gradient);
    for (s = 0; s < steps; s++) {
        size_t before = alloc_calls;
        int count = s == steps - 1 ? max_batch / 2 + 1 : max_batch;
        ASSERT_OK(nn_train_step(m, o, x, labels, NULL, count, &loss));
        if (s == 0) {
            optimizer_allocs = alloc_calls - before;
            if (optimizer_allocs != 1)
                fail_msg("%s: the first train step made %lu allocations, expected 1 (the optimizer state)", what,
                         (unsigned long)optimizer_allocs);
            after_first = alloc_calls;
        } else if (alloc_calls != before) {
            fail_msg("%s: train step %d (batch %d) made %lu allocations", what, s + 1, count,
                     (unsigned long)(alloc_calls - before));
        }
    }
    if (alloc_calls != after_first) fail_msg("%s: training allocated", what);
    ASSERT_OK(nn_forward(m, x, 3, NN_EVAL));
    ASSERT_OK(nn_compute_loss(m, labels, NULL, &loss));
    ASSERT_OK(nn_forward(m, x, max_batch, NN_TRAIN));
    ASSERT_OK(nn_backward(m, labels, NULL, &loss));
    nn_optimizer_reset(o);
    ASSERT_OK(nn_optimizer_step(m, o));
    memset(&ds, 0, sizeof ds);
    ds.count = max_batch;
    ds.classes = 10;
    ds.x = x;
    ds.labels = labels;
    ds.channels = 1;
    ds.height = 1;
    ds.width = in;
    ASSERT_OK(nn_evaluate(m, &ds, &metrics));
    if (alloc_calls != after_first)
        fail_msg("%s: eval forward / backward / loss / optimizer reset+step / nn_evaluate made %lu allocations", what,
                 (unsigned long)(alloc_calls - after_first));
    free(x);
    free(labels);
}

static void test_mlp_train_step_no_alloc(void **state)
{
    long live0 = live_blocks;
    nn_model *m;
    nn_optimizer o = nn_sgd(0.05f, 0.9f, 1e-4f);
    (void)state;
    m = mlp(16);
    no_alloc_after_first_step(m, &o, 16, 6, 1, "MLP, SGD momentum");
    nn_optimizer_free(&o);
    nn_model_free(m);
    if (live_blocks != live0) fail_msg("%ld blocks still live after nn_model_free and nn_optimizer_free", live_blocks - live0);
}

static void cnn_case(int threads)
{
    long live0 = live_blocks;
    const int saved = nn_threads();
    nn_model *m;
    nn_optimizer o = nn_adam(1e-3f, 1e-4f);
    char what[64];
    ASSERT_OK(nn_set_threads(threads));
    snprintf(what, sizeof what, "CNN with batch norm and dropout, Adam, %d thread(s)", nn_threads());
    m = cnn(8);
    no_alloc_after_first_step(m, &o, 8, 5, 1, what);
    nn_optimizer_free(&o);
    nn_model_free(m);
    ASSERT_OK(nn_set_threads(saved));
    if (live_blocks != live0) fail_msg("%ld blocks still live after nn_model_free and nn_optimizer_free", live_blocks - live0);
}
static void test_cnn_train_step_no_alloc(void **state)
{
    (void)state;
    cnn_case(1);
}
static void test_cnn_train_step_no_alloc_2_threads(void **state)
{
    (void)state;
#ifdef _OPENMP
    cnn_case(2);
#else
    print_message("  built without OpenMP: one thread only\n");
    cnn_case(1);
#endif
}

/* A step split by samples over 2 threads (each thread its own replica of the activations,
   made by nn_compile) allocates nothing either. */
static void test_split_train_step_no_alloc(void **state)
{
    long live0 = live_blocks;
    const int saved = nn_threads();
    nn_model *m;
    nn_optimizer o = nn_adam(1e-3f, 0.0f);
    (void)state;
    ASSERT_OK(nn_set_threads(2));
    m = plain_cnn(16);
    no_alloc_after_first_step(m, &o, 16, 5, 0, "CNN without batch norm, Adam, steps split over 2 threads");
    nn_optimizer_free(&o);
    nn_model_free(m);
    ASSERT_OK(nn_set_threads(saved));
    if (live_blocks != live0) fail_msg("%ld blocks still live after nn_model_free and nn_optimizer_free", live_blocks - live0);
}

/* NN_SPLIT_MAX_BYTES (64 MiB in this file): the plain CNN at max batch 16 gets its replica
   (~1.3 MB) and splits a 16-sample step (nn_backward then refuses to run without a new
   forward); at max batch 1024 a replica would take ~80 MB, so nn_compile makes none and the same
   step runs whole (nn_backward works after it). */
static void test_split_memory_cap(void **state)
{
    const int saved = nn_threads();
    int labels[16], i, split[2], k;
    float *x = (float *)malloc(16 * 256 * sizeof(float));
    (void)state;
    if (!x) fail_msg("out of memory");
    nn_test_fill(x, 16 * 256, 0.0f, 1.0f);
    for (i = 0; i < 16; i++) labels[i] = i % 10;
    ASSERT_OK(nn_set_threads(2));
    for (k = 0; k < 2; k++) {
        nn_model *m = plain_cnn(k == 0 ? 16 : 1024);
        nn_optimizer o = nn_sgd(0.01f, 0.0f, 0.0f);
        ASSERT_OK(nn_train_step(m, &o, x, labels, NULL, 16, NULL));
        split[k] = nn_backward(m, labels, NULL, NULL) == NN_ERROR_STATE;
        nn_optimizer_free(&o);
        nn_model_free(m);
    }
    ASSERT_OK(nn_set_threads(saved));
    free(x);
#ifdef _OPENMP
    if (!split[0]) fail_msg("max batch 16 (a ~1.3 MB replica): the step did not split");
#endif
    if (split[1]) fail_msg("max batch 1024 (an ~80 MB replica, over the 64 MiB cap): the step split");
}

/* Each optimiser allocates its state once; RMSProp and Adam too. */
static void test_optimizers_alloc_once(void **state)
{
    nn_optimizer opts[5];
    int k, s;
    long live0 = live_blocks;
    nn_model *m = mlp(4);
    float x[4 * 64];
    int labels[4] = {1, 2, 3, 4};
    (void)state;
    opts[0] = nn_sgd(0.1f, 0.0f, 0.0f);
    opts[1] = nn_sgd(0.1f, 0.9f, 0.0f);
    opts[2] = nn_adam(0.01f, 0.0f);
    opts[3] = nn_adamw(0.01f, 0.01f);
    opts[4] = nn_rmsprop(0.01f, 0.0f);
    opts[4].momentum = 0.5f;
    nn_test_fill(x, 4 * 64, 0.0f, 1.0f);
    for (k = 0; k < 5; k++) {
        size_t before = alloc_calls;
        for (s = 0; s < 4; s++) ASSERT_OK(nn_train_step(m, &opts[k], x, labels, NULL, 4, NULL));
        if (alloc_calls - before != 1) fail_msg("optimizer %d: %lu allocations in 4 steps, expected 1", k, (unsigned long)(alloc_calls - before));
        before = alloc_calls;
        ASSERT_OK(nn_optimizer_bind(m, &opts[k]));
        if (alloc_calls != before) fail_msg("optimizer %d: nn_optimizer_bind on a bound optimizer allocated", k);
        nn_optimizer_free(&opts[k]);
        nn_optimizer_free(&opts[k]); /* twice is harmless */
    }
    nn_model_free(m);
    if (live_blocks != live0) fail_msg("%ld blocks still live", live_blocks - live0);
}

/* Everything given back: after errors, and around save/load/fit. */
static void test_everything_released(void **state)
{
    long live0 = live_blocks;
    nn_model *m, *m2;
    nn_node *x;
    char dir[64], path[128];
    nn_optimizer o = nn_sgd(0.1f, 0.9f, 0.0f);
    nn_dataset ds;
    nn_fit_options fo = nn_fit_defaults(2, 8);
    int i;
    (void)state;
    /* builder errors, then free */
    m = nn_model_new(3);
    x = nn_input(m, 3, 5, 5);
    (void)nn_conv2d(m, x, 4, 7, 1, 0, NN_BIAS);
    (void)nn_linear(m, nn_relu(m, x), -1, NN_BIAS);
    if (nn_compile(m, x, NN_LOSS_NONE, 4) == NN_OK) fail_msg("compile after a builder error succeeded");
    nn_model_free(m);
    if (live_blocks != live0) fail_msg("builder errors: %ld blocks live after nn_model_free", live_blocks - live0);
    /* a model that was never compiled */
    m = nn_model_new(4);
    for (i = 0, x = nn_input(m, 8, 1, 1); i < 40; i++) x = nn_tanh(m, x); /* grows the node table */
    nn_model_free(m);
    if (live_blocks != live0) fail_msg("uncompiled model: %ld blocks live after nn_model_free", live_blocks - live0);
    /* save, load, fit */
    strcpy(dir, "/tmp/nn_test_alloc_XXXXXX");
    if (!nn_test_mkdtemp(dir)) fail_msg("mkdtemp failed");
    snprintf(path, sizeof path, "%s/m.nn", dir);
    m = mlp(8);
    m2 = mlp(8);
    ASSERT_OK(nn_save(m, path));
    ASSERT_OK(nn_load(m2, path));
    if (nn_load(m2, "/nonexistent/m.nn") == NN_OK) fail_msg("loaded a missing file");
    remove(path);
    rmdir(dir);
    memset(&ds, 0, sizeof ds);
    ds.count = 20;
    ds.channels = 64;
    ds.height = ds.width = 1;
    ds.classes = 10;
    ds.x = (float *)malloc(20 * 64 * sizeof(float));
    ds.labels = (int *)malloc(20 * sizeof(int));
    if (!ds.x || !ds.labels) fail_msg("out of memory");
    nn_test_fill(ds.x, 20 * 64, 0.0f, 1.0f);
    for (i = 0; i < 20; i++) ds.labels[i] = i % 10;
    fo.progress = 0;
    fo.validation = &ds;
    ASSERT_OK(nn_fit(m, &o, &ds, &fo, NULL));
    free(ds.x);
    free(ds.labels);
    nn_optimizer_free(&o);
    nn_model_free(m);
    nn_model_free(m2);
    if (live_blocks != live0) fail_msg("save/load/fit: %ld blocks live after freeing everything", live_blocks - live0);
}

/* ------------------------------------------------------------------ failure injection */
static void write_bytes(const char *path, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) fail_msg("cannot write %s", path);
    fclose(f);
}

/* One whole session; every call may fail (any allocation may be the injected one), none may
   crash; returns the number of calls that reported an error. */
/* A model compiled for 2 threads (so with a replica of its buffers for split steps) and one
   split training step. */
static int split_session(void)
{
    static float x[16 * 256];
    int labels[16], errors = 0, i, saved = nn_threads();
    nn_optimizer o = nn_sgd(0.01f, 0.9f, 0.0f);
    nn_model *m = nn_model_new(7);
    nn_node *a, *h;
    ASSERT_OK(nn_set_threads(2));
    nn_test_fill(x, 16 * 256, 0.0f, 1.0f);
    for (i = 0; i < 16; i++) labels[i] = i % 10;
    a = nn_relu(m, nn_conv2d(m, nn_input(m, 1, 16, 16), 8, 3, 1, 1, NN_BIAS));
    h = nn_maxpool2d(m, nn_add_nodes(m, a, nn_conv2d(m, a, 8, 3, 1, 1, NN_NO_BIAS)), 2, 2);
    h = nn_linear(m, nn_flatten(m, h), 10, NN_BIAS);
    errors += nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 16) != NN_OK;
    errors += nn_train_step(m, &o, x, labels, NULL, 16, NULL) != NN_OK;
    nn_optimizer_free(&o);
    nn_model_free(m);
    ASSERT_OK(nn_set_threads(saved));
    return errors;
}

static int session(const char *model_path, const char *img_path, const char *lab_path)
{
    nn_model *m, *m2;
    nn_node *h;
    nn_optimizer o = nn_adam(1e-3f, 0.0f);
    float x[4 * 64];
    int labels[4] = {0, 1, 2, 3}, errors = 0, i;
    nn_dataset ds, idx;
    nn_fit_options fo = nn_fit_defaults(1, 4);
    nn_test_fill(x, 4 * 64, 0.0f, 1.0f);
    m = nn_model_new(5);
    h = nn_relu(m, nn_batchnorm(m, nn_linear(m, nn_input(m, 64, 1, 1), 16, NN_BIAS)));
    h = nn_dropout(m, h, 0.2f);
    for (i = 0; i < 20; i++) h = nn_add_nodes(m, h, nn_tanh(m, h)); /* enough nodes to grow the table twice */
    h = nn_linear(m, h, 10, NN_BIAS);
    errors += nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4) != NN_OK;
    errors += nn_train_step(m, &o, x, labels, NULL, 4, NULL) != NN_OK;
    errors += nn_train_step(m, &o, x, labels, NULL, 2, NULL) != NN_OK;
    errors += nn_save(m, model_path) != NN_OK;
    m2 = nn_model_new(6);
    h = nn_relu(m2, nn_batchnorm(m2, nn_linear(m2, nn_input(m2, 64, 1, 1), 16, NN_BIAS)));
    h = nn_dropout(m2, h, 0.2f);
    for (i = 0; i < 20; i++) h = nn_add_nodes(m2, h, nn_tanh(m2, h));
    h = nn_linear(m2, h, 10, NN_BIAS);
    errors += nn_compile(m2, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4) != NN_OK;
    errors += nn_load(m2, model_path) != NN_OK;
    memset(&ds, 0, sizeof ds);
    ds.count = 4;
    ds.channels = 64;
    ds.height = ds.width = 1;
    ds.classes = 10;
    ds.x = x;
    ds.labels = labels;
    fo.progress = 0;
    nn_optimizer_reset(&o); /* its moments were m's: reset unbinds it, so m2 may take the state over */
    errors += nn_fit(m2, &o, &ds, &fo, NULL) != NN_OK;
    if (nn_mnist_load(img_path, lab_path, &idx) == NN_OK) {
        nn_dataset part;
        if (nn_dataset_slice(&idx, 1, 2, &part) == NN_OK) nn_dataset_free(&part);
        else errors++;
        nn_dataset_free(&idx);
    } else {
        errors++;
    }
    nn_optimizer_free(&o);
    nn_model_free(m);
    nn_model_free(m2);
    errors += split_session();
    return errors;
}

static void test_allocation_failures(void **state)
{
    char dir[64], model_path[128], img_path[128], lab_path[128];
    unsigned char img[16 + 3 * 2 * 2], lab[8 + 3];
    size_t k, total;
    int errors;
    (void)state;
    strcpy(dir, "/tmp/nn_test_alloc_XXXXXX");
    if (!nn_test_mkdtemp(dir)) fail_msg("mkdtemp failed");
    snprintf(model_path, sizeof model_path, "%s/m.nn", dir);
    snprintf(img_path, sizeof img_path, "%s/img", dir);
    snprintf(lab_path, sizeof lab_path, "%s/lab", dir);
    memset(img, 0, sizeof img);
    memset(lab, 0, sizeof lab);
    img[2] = 8; img[3] = 3; img[7] = 3; img[11] = 2; img[15] = 2; /* 3 images of 2x2 */
    lab[2] = 8; lab[3] = 1; lab[7] = 3; lab[8] = 1; lab[9] = 2;    /* 3 labels */
    write_bytes(img_path, img, sizeof img);
    write_bytes(lab_path, lab, sizeof lab);
    /* a clean run: no errors, and the count of allocations */
    fail_at = 0;
    alloc_calls = 0;
    live_blocks = 0;
    errors = session(model_path, img_path, lab_path);
    total = alloc_calls;
    if (errors) fail_msg("the session without injected failures reported %d errors (%s)", errors, nn_last_error());
    if (live_blocks != 0) fail_msg("the session leaked %ld blocks", live_blocks);
    for (k = 1; k <= total; k++) {
        fail_at = k;
        alloc_calls = 0;
        live_blocks = 0;
        injected = 0;
        errors = session(model_path, img_path, lab_path);
        fail_at = 0;
        if (!injected) fail_msg("allocation %lu of %lu was never made", (unsigned long)k, (unsigned long)total);
        if (errors == 0) fail_msg("allocation %lu of %lu failed, yet every call reported success", (unsigned long)k, (unsigned long)total);
        if (live_blocks != 0)
            fail_msg("allocation %lu of %lu failed: %ld blocks leaked after freeing everything", (unsigned long)k,
                     (unsigned long)total, live_blocks);
    }
    remove(model_path);
    remove(img_path);
    remove(lab_path);
    rmdir(dir);
    if (total < 20) fail_msg("only %lu allocations in a whole session?", (unsigned long)total);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mlp_train_step_no_alloc),
    cmocka_unit_test(test_cnn_train_step_no_alloc),
    cmocka_unit_test(test_cnn_train_step_no_alloc_2_threads),
    cmocka_unit_test(test_split_train_step_no_alloc),
    cmocka_unit_test(test_split_memory_cap),
    cmocka_unit_test(test_optimizers_alloc_once),
    cmocka_unit_test(test_everything_released),
    cmocka_unit_test(test_allocation_failures),
};

NN_TEST_MAIN("alloc", tests)
