/* train_save.c - the first of two programs built from nn.h alone (tests/standalone/README.md):
   trains a small MLP on three Gaussian blobs in 4 dimensions, saves it with its class names as
   metadata, and writes 30 test inputs (as hexadecimal floats, exact) with the class it predicts
   for each, for load_predict.c to check.
   Usage: train_save MODEL_FILE PREDICTIONS_FILE */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>

#define FEATURES 4
#define CLASSES 3

static int fail(const char *what)
{
    fprintf(stderr, "train_save: %s: %s\n", what, nn_last_error());
    return 1;
}

/* count samples of class (i % 3), each a point near its class's centre */
static void blobs(nn_rng *rng, float *x, int *labels, int count)
{
    static const float centre[CLASSES][FEATURES] = {{1, 1, 0, 0}, {-1, 0, 1, 0}, {0, -1, -1, 1}};
    int i, k;
    for (i = 0; i < count; i++) {
        labels[i] = i % CLASSES;
        for (k = 0; k < FEATURES; k++) x[i * FEATURES + k] = centre[labels[i]][k] + 0.5f * nn_rng_normal(rng);
    }
}

int main(int argc, char **argv)
{
    enum { TRAIN = 600, TEST = 30 };
    nn_rng rng = nn_rng_new(7);
    nn_dataset train;
    nn_model *m;
    nn_node *h;
    nn_optimizer opt;
    nn_fit_options fit;
    nn_metrics metrics;
    float test_x[TEST * FEATURES];
    int test_labels[TEST], predicted[TEST], i, k;
    FILE *out;
    if (argc != 3) {
        fprintf(stderr, "usage: train_save MODEL_FILE PREDICTIONS_FILE\n");
        return 2;
    }
    if (nn_dataset_alloc(&train, TRAIN, 1, 1, FEATURES, CLASSES, 0) != NN_OK) return fail("nn_dataset_alloc");
    blobs(&rng, train.x, train.labels, TRAIN);
    blobs(&rng, test_x, test_labels, TEST);

    m = nn_model_new(42);
    h = nn_relu(m, nn_linear(m, nn_input(m, 1, 1, FEATURES), 16, NN_BIAS));
    if (nn_compile(m, nn_linear(m, h, CLASSES, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 32) != NN_OK) return fail("nn_compile");
    opt = nn_adam(0.01f, 0.0f);
    fit = nn_fit_defaults(10, 32);
    fit.progress = 0;
    if (nn_fit(m, &opt, &train, &fit, NULL) != NN_OK) return fail("nn_fit");
    if (nn_evaluate(m, &train, &metrics) != NN_OK) return fail("nn_evaluate");
    printf("train_save: training accuracy %.1f%%\n", metrics.accuracy);
    if (metrics.accuracy < 90.0) {
        fprintf(stderr, "train_save: the MLP did not learn the blobs\n");
        return 1;
    }
    if (nn_set_meta(m, "classes", "north,west,south") != NN_OK) return fail("nn_set_meta");
    if (nn_save(m, argv[1]) != NN_OK) return fail("nn_save");

    if (nn_predict_classes(m, test_x, TEST, predicted) != NN_OK) return fail("nn_predict_classes");
    out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    for (i = 0; i < TEST; i++) {
        for (k = 0; k < FEATURES; k++) fprintf(out, "%a ", (double)test_x[i * FEATURES + k]);
        fprintf(out, "%d\n", predicted[i]);
    }
    if (fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    printf("train_save: saved %s; %d predictions in %s\n", argv[1], TEST, argv[2]);
    nn_optimizer_free(&opt);
    nn_dataset_free(&train);
    nn_model_free(m);
    return 0;
}
