/* tests/valgrind_train.c - a short, complete workout of nn.h for valgrind's memcheck
   (scripts/valgrind_check.sh runs it): small enough to finish in seconds under valgrind, wide
   enough to touch every layer, loss, optimiser, the fit loop, model files and the IDX reader.
     1. MLP 64-32-16-10 (ReLU, dropout, batch norm 1-D) on 256 synthetic 8x8 samples: nn_fit
        2 epochs, batch 32, Adam, validation set with early stopping; nn_evaluate.
     2. CNN on 12x12 inputs: conv 3x3 + batch norm + ReLU + max-pool, conv 3x3 + residual 1x1
        conv + add, avg-pool, global avg-pool, linear; SGD with Nesterov momentum, 5
        nn_train_step; input gradients; nn_confusion_matrix.
     3. Other losses and activations: log-softmax + NLL (RMSProp), sigmoid/tanh/scaled tanh/
        leaky ReLU + MSE (AdamW), softmax + NN_LOSS_SOFTMAX_MSE.
     4. nn_save / nn_load round trip (bit-exact), a corrupt copy rejected without change.
     5. nn_mnist_load of tiny IDX files written here, nn_dataset_stats/normalize/slice.
     6. The kernel API with self-allocated workspaces (nn_sgemm, nn_conv2d_*).
   Exits 0 when every call returned what it should; prints the failing call otherwise.
   Build: cc -std=c99 -O2 -g -fopenmp -I. tests/valgrind_train.c -lm */
#define _POSIX_C_SOURCE 200809L
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define EXPECT(call, want)                                                                             \
    do {                                                                                               \
        nn_status st_ = (call);                                                                        \
        if (st_ != (want)) {                                                                           \
            fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #call,     \
                    nn_status_name(st_), nn_last_error(), nn_status_name(want));                       \
            failures++;                                                                                \
        }                                                                                              \
    } while (0)
#define OK(call) EXPECT(call, NN_OK)

static nn_dataset synthetic(int count, int c, int h, int w, int classes, uint64_t seed)
{
    nn_dataset ds;
    nn_rng rng = nn_rng_new(seed);
    int i, j, size = c * h * w;
    memset(&ds, 0, sizeof ds);
    ds.count = count;
    ds.channels = c;
    ds.height = h;
    ds.width = w;
    ds.classes = classes;
    ds.x = (float *)malloc((size_t)count * size * sizeof(float));
    ds.labels = (int *)malloc((size_t)count * sizeof(int));
    for (i = 0; i < count; i++) {
        int label = (int)nn_rng_below(&rng, (uint32_t)classes);
        ds.labels[i] = label;
        for (j = 0; j < size; j++)
            ds.x[(size_t)i * size + j] = 0.3f * nn_rng_normal(&rng) + ((j * classes / size) == label ? 1.0f : 0.0f);
    }
    return ds;
}

static void free_plain(nn_dataset *ds) /* allocated here with malloc, not by the library */
{
    free(ds->x);
    free(ds->labels);
    free(ds->targets);
    memset(ds, 0, sizeof *ds);
}

static int on_epoch(const nn_epoch_report *r, void *user)
{
    (void)user;
    printf("  mlp epoch %d: loss %.4f acc %.1f%% val %.4f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss);
    return 0;
}

static void mlp(void)
{
    nn_dataset train = synthetic(256, 1, 8, 8, 10, 1), val = synthetic(64, 1, 8, 8, 10, 2);
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_relu(m, nn_linear(m, nn_input(m, 1, 8, 8), 32, NN_BIAS));
    nn_optimizer opt = nn_adam(1e-2f, 1e-4f);
    nn_fit_options fit = nn_fit_defaults(2, 32);
    nn_fit_result res;
    nn_metrics met;
    h = nn_dropout(m, h, 0.2f);
    h = nn_relu(m, nn_batchnorm(m, nn_linear(m, h, 16, NN_BIAS)));
    OK(nn_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 32));
    fit.validation = &val;
    fit.checks_per_epoch = 2;
    fit.patience = 5;
    fit.progress = 0;
    fit.on_epoch = on_epoch;
    OK(nn_fit(m, &opt, &train, &fit, &res));
    OK(nn_evaluate(m, &val, &met));
    printf("mlp: %d epochs, %lld steps, val acc %.1f%%\n", res.epochs, (long long)res.steps, met.accuracy);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    free_plain(&train);
    free_plain(&val);
}

static void cnn(const char *dir)
{
    nn_dataset data = synthetic(16, 1, 12, 12, 4, 3);
    nn_model *m = nn_model_new(2), *copy;
    nn_node *x = nn_input(m, 1, 12, 12), *h, *r, *y;
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 1e-4f);
    int labels[8], matrix[16], step;
    float loss, *snap;
    char path[512], bad[512];
    FILE *f;
    h = nn_maxpool2d(m, nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 4, 3, 1, 1, NN_BIAS))), 2, 0); /* 4x6x6 */
    r = nn_conv2d(m, h, 6, 1, 1, 0, NN_NO_BIAS);
    h = nn_relu(m, nn_add_nodes(m, nn_conv2d(m, h, 6, 3, 1, 1, NN_BIAS), r));
    h = nn_avgpool2d(m, h, 2, 2); /* 6x3x3 */
    h = nn_global_avgpool(m, h);
    y = nn_linear(m, nn_flatten(m, h), 4, NN_BIAS);
    OK(nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8));
    opt.nesterov = 1;
    nn_set_input_gradient(m, 1);
    for (step = 0; step < 5; step++) {
        int i;
        for (i = 0; i < 8; i++) labels[i] = data.labels[(step * 8 + i) % 16];
        OK(nn_train_step(m, &opt, data.x + (size_t)((step * 8) % 16) * 144, labels, NULL, 8, &loss));
    }
    if (!nn_input_gradient(m)) {
        fprintf(stderr, "no input gradient\n");
        failures++;
    }
    OK(nn_confusion_matrix(m, &data, matrix));
    printf("cnn: loss after 5 steps %.4f, %zu parameters, %zu state\n", (double)loss, nn_param_count(m), nn_state_count(m));

    /* model files */
    snprintf(path, sizeof path, "%s/cnn.nn", dir);
    snprintf(bad, sizeof bad, "%s/cnn-bad.nn", dir);
    OK(nn_save(m, path));
    copy = nn_model_new(99);
    {
        nn_node *cx = nn_input(copy, 1, 12, 12), *ch, *cr;
        ch = nn_maxpool2d(copy, nn_relu(copy, nn_batchnorm(copy, nn_conv2d(copy, cx, 4, 3, 1, 1, NN_BIAS))), 2, 0);
        cr = nn_conv2d(copy, ch, 6, 1, 1, 0, NN_NO_BIAS);
        ch = nn_relu(copy, nn_add_nodes(copy, nn_conv2d(copy, ch, 6, 3, 1, 1, NN_BIAS), cr));
        ch = nn_global_avgpool(copy, nn_avgpool2d(copy, ch, 2, 2));
        OK(nn_compile(copy, nn_linear(copy, nn_flatten(copy, ch), 4, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8));
    }
    snap = (float *)malloc(nn_param_count(copy) * sizeof(float));
    memcpy(snap, nn_params(copy), nn_param_count(copy) * sizeof(float));
    f = fopen(bad, "wb");
    if (f) {
        fwrite("NNHMODEL\1\0\0\0garbage", 1, 20, f);
        fclose(f);
    }
    EXPECT(nn_load(copy, bad), NN_ERROR_FORMAT);
    if (memcmp(snap, nn_params(copy), nn_param_count(copy) * sizeof(float)) != 0) {
        fprintf(stderr, "failed nn_load changed the parameters\n");
        failures++;
    }
    OK(nn_load(copy, path));
    if (memcmp(nn_params(m), nn_params(copy), nn_param_count(m) * sizeof(float)) != 0 ||
        memcmp(nn_state(m), nn_state(copy), nn_state_count(m) * sizeof(float)) != 0) {
        fprintf(stderr, "nn_load did not restore the saved parameters\n");
        failures++;
    }
    remove(path);
    remove(bad);
    free(snap);
    nn_model_free(copy);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    free_plain(&data);
}

static void other_losses(void)
{
    nn_dataset data = synthetic(16, 1, 1, 12, 3, 4);
    float targets[16 * 3], loss;
    int i;
    { /* log-softmax + NLL, RMSProp with momentum */
        nn_model *m = nn_model_new(3);
        nn_node *h = nn_tanh(m, nn_linear(m, nn_input(m, 1, 1, 12), 8, NN_BIAS));
        nn_optimizer opt = nn_rmsprop(1e-3f, 0.0f);
        opt.momentum = 0.5f;
        OK(nn_compile(m, nn_log_softmax(m, nn_linear(m, h, 3, NN_BIAS)), NN_LOSS_NLL, 16));
        for (i = 0; i < 3; i++) OK(nn_train_step(m, &opt, data.x, data.labels, NULL, 16, &loss));
        nn_optimizer_free(&opt);
        nn_model_free(m);
    }
    { /* sigmoid / scaled tanh / leaky ReLU + MSE, AdamW, summed gradients */
        nn_model *m = nn_model_new(4);
        nn_node *h = nn_sigmoid(m, nn_linear(m, nn_input(m, 1, 1, 12), 8, NN_BIAS));
        nn_optimizer opt = nn_adamw(1e-3f, 1e-2f);
        h = nn_leaky_relu(m, nn_scaled_tanh(m, nn_linear(m, h, 8, NN_NO_BIAS)), 0.01f);
        OK(nn_compile(m, nn_linear(m, h, 3, NN_BIAS), NN_LOSS_MSE, 16));
        nn_set_grad_reduction(m, NN_GRAD_SUM);
        for (i = 0; i < 16 * 3; i++) targets[i] = (float)(i % 3) * 0.5f;
        for (i = 0; i < 3; i++) OK(nn_train_step(m, &opt, data.x, NULL, targets, 16, &loss));
        nn_optimizer_free(&opt);
        nn_model_free(m);
    }
    { /* softmax + SOFTMAX_MSE, re-initialised weights */
        nn_model *m = nn_model_new(5);
        nn_node *h = nn_linear(m, nn_input(m, 1, 1, 12), 3, NN_BIAS);
        nn_optimizer opt = nn_sgd(0.1f, 0.0f, 0.0f);
        OK(nn_compile(m, h, NN_LOSS_SOFTMAX_MSE, 16));
        OK(nn_init_weights(m, NULL, NN_INIT_XAVIER_UNIFORM, 0, 0));
        OK(nn_init_biases(m, NULL, NN_INIT_ZEROS, 0, 0));
        for (i = 0; i < 3; i++) OK(nn_train_step(m, &opt, data.x, data.labels, NULL, 16, &loss));
        nn_optimizer_free(&opt);
        nn_model_free(m);
    }
    free_plain(&data);
}

static void put_be32(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static void idx(const char *dir)
{
    unsigned char img[16 + 10 * 5 * 5], lab[8 + 10];
    char ip[512], lp[512];
    nn_dataset ds, part;
    double mean, std;
    FILE *f;
    int i;
    put_be32(img, 0x803); put_be32(img + 4, 10); put_be32(img + 8, 5); put_be32(img + 12, 5);
    for (i = 0; i < 250; i++) img[16 + i] = (unsigned char)(i * 7);
    put_be32(lab, 0x801); put_be32(lab + 4, 10);
    for (i = 0; i < 10; i++) lab[8 + i] = (unsigned char)(i % 4);
    snprintf(ip, sizeof ip, "%s/img", dir);
    snprintf(lp, sizeof lp, "%s/lab", dir);
    f = fopen(ip, "wb"); fwrite(img, 1, sizeof img, f); fclose(f);
    f = fopen(lp, "wb"); fwrite(lab, 1, sizeof lab - 1, f); fclose(f); /* one label short */
    EXPECT(nn_mnist_load(ip, lp, &ds), NN_ERROR_FORMAT);
    f = fopen(lp, "wb"); fwrite(lab, 1, sizeof lab, f); fclose(f);
    OK(nn_mnist_load(ip, lp, &ds));
    nn_dataset_stats(&ds, &mean, &std);
    nn_dataset_normalize(&ds, mean, std);
    OK(nn_dataset_slice(&ds, 3, 5, &part));
    printf("idx: %d samples of %dx%d, %d classes; slice of %d\n", ds.count, ds.height, ds.width, ds.classes, part.count);
    nn_dataset_free(&part);
    nn_dataset_free(&ds);
    remove(ip);
    remove(lp);
}

static void kernels(void)
{
    static float a[37 * 29], b[37 * 41], c[29 * 41], x[2 * 3 * 9 * 9], w[5 * 3 * 3 * 3], y[2 * 5 * 9 * 9], dw[5 * 27], db[5];
    nn_conv2d_shape s = {2, 3, 9, 9, 5, 3, 3, 1, 1, 1, 1};
    nn_rng rng = nn_rng_new(6);
    size_t i;
    for (i = 0; i < sizeof a / sizeof a[0]; i++) a[i] = nn_rng_normal(&rng);
    for (i = 0; i < sizeof b / sizeof b[0]; i++) b[i] = nn_rng_normal(&rng);
    for (i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = nn_rng_normal(&rng);
    for (i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = nn_rng_normal(&rng);
    OK(nn_sgemm(NN_TRANSPOSE, NN_NO_TRANSPOSE, 29, 41, 37, 1.0f, a, 29, b, 41, 0.0f, c, 41, NULL, 0));
    OK(nn_conv2d_forward(&s, x, w, db, y, NULL, 0));
    OK(nn_conv2d_backward_data(&s, y, w, x, NULL, 0));
    OK(nn_conv2d_backward_weight(&s, x, y, dw, db, NULL, 0));
}

int main(void)
{
    char dir[] = "/tmp/nn_valgrind.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("backend %s, %d thread(s)\n", nn_backend_name(), nn_threads());
    mlp();
    cnn(dir);
    other_losses();
    idx(dir);
    kernels();
    rmdir(dir);
    printf("%s\n", failures ? "FAILED" : "all calls returned what they should");
    return failures ? 1 : 0;
}
