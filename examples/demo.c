/* make demo: seed 000's model A (784-64-32-10, ReLU, Adam 1e-3, batch 64) on MNIST for 5 epochs,
   inputs normalised by the training set's mean and std; prints the test accuracy. */
#include <stdio.h>
#include <stdlib.h>
#define NN_IMPLEMENTATION
#include "nn.h"

static int report(const nn_epoch_report *r, void *user)
{
    (void)user;
    fprintf(stderr, "epoch %d  loss %.4f  train %.2f%%  %.2f s\n", r->epoch, r->train_loss, r->train_accuracy, r->seconds);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "data/mnist";
    char images[512], labels[512];
    nn_dataset train, test;
    double mean, std, t0;
    nn_model *m;
    nn_node *x, *h;
    nn_optimizer opt;
    nn_fit_options fit;
    nn_metrics metrics;

    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte", dir);
    if (nn_mnist_load(images, labels, &train) != NN_OK) {
        fprintf(stderr, "demo: %s (run `make data`)\n", nn_last_error());
        return 1;
    }
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", dir);
    if (nn_mnist_load(images, labels, &test) != NN_OK) {
        fprintf(stderr, "demo: %s (run `make data`)\n", nn_last_error());
        nn_dataset_free(&train);
        return 1;
    }
    nn_dataset_stats(&train, &mean, &std);
    nn_dataset_normalize(&train, mean, std);
    nn_dataset_normalize(&test, mean, std);

    m = nn_model_new(42);
    x = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_linear(m, x, 64, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 32, NN_BIAS));
    if (nn_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 64) != NN_OK) {
        fprintf(stderr, "demo: %s\n", nn_last_error());
        return 1;
    }
    printf("backend %s, %d thread(s), %zu parameters\n", nn_backend_name(), nn_threads(), nn_param_count(m));
    opt = nn_adam(1e-3f, 0.0f);
    fit = nn_fit_defaults(5, 64);
    fit.on_epoch = report;
    t0 = nn_seconds();
    if (nn_fit(m, &opt, &train, &fit, NULL) != NN_OK || nn_evaluate(m, &test, &metrics) != NN_OK) {
        fprintf(stderr, "demo: %s\n", nn_last_error());
        return 1;
    }
    printf("RESULT demo test_acc=%.2f seconds=%.2f\n", metrics.accuracy, nn_seconds() - t0);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
