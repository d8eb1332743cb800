/* ce_vs_mse: ENGR 510 homework question 15 and Deep Learning Assignment 1 questions 1-2. The same
   classifier (the ENGR 510 homework's model A, 784-64-32-10 ReLU) trained with softmax +
   cross-entropy and with softmax + mean squared error against one-hot targets; loss and accuracy
   curves show how much more slowly MSE learns: its gradient carries the softmax's p(1-p) factors,
   which vanish when an output saturates, and (as PyTorch's MSELoss) it is averaged over the 10
   outputs too. */
#define NN_IMPLEMENTATION
#include "common.h"
#include "engr510_common.h"

static const char *summary =
    "ENGR 510 homework (Q15) / Deep Learning Assignment 1 (Q1-2): model A (784-64-32-10, ReLU,\n"
    "PyTorch's initialisation), inputs scaled to [0, 1], trained with NN_LOSS_SOFTMAX_CROSS_ENTROPY\n"
    "(variants ce, ce_sgd) and with NN_LOSS_SOFTMAX_MSE = PyTorch's MSELoss(softmax(logits), one_hot)\n"
    "(mse, mse_sgd). ce/mse use the ENGR 510 homework's optimiser, Adam lr 1e-3; ce_sgd/mse_sgd plain\n"
    "SGD lr 1e-2 (no momentum), where the loss's gradient scale is not normalised away. Epochs and\n"
    "batch are mlp_optimizers' defaults (2 epochs of batch 10: the reports state none).\n"
    "RESULT: train_loss = the variant's own loss and train_ce = cross-entropy, both of the final\n"
    "model on all training images; steps_to_90 / steps_to_95 = first curve point with test\n"
    "accuracy >= 90 % / 95 % (-1: never). Curves in <out>/<variant>.csv, --points rows per epoch.\n"
    "Runs on 1 thread unless --threads or NN_THREADS says otherwise.\n"
    "--quick: 10 000 training and 2 000 test images, 1 epoch.";

typedef struct variant { const char *name; nn_loss loss; int adam; float lr; } variant;

int main(int argc, char **argv)
{
    static const variant variants[] = {
        {"ce", NN_LOSS_SOFTMAX_CROSS_ENTROPY, 1, 1e-3f},
        {"mse", NN_LOSS_SOFTMAX_MSE, 1, 1e-3f},
        {"ce_sgd", NN_LOSS_SOFTMAX_CROSS_ENTROPY, 0, 1e-2f},
        {"mse_sgd", NN_LOSS_SOFTMAX_MSE, 0, 1e-2f},
    };
    const int n_variants = (int)(sizeof variants / sizeof variants[0]);
    ex_options o = {0};
    nn_dataset train, test;
    const char *only = "all";
    int batch = ENGR510_BATCH, points = 10, v, ran = 0;
    ex_flag flags[] = {
        {"--variant", EX_STRING, &only, "ce|mse|ce_sgd|mse_sgd|all (default all)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 10)"},
        {"--points", EX_INT, &points, "curve points per epoch (default 10)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    o.name = "ce_vs_mse";
    o.epochs = ENGR510_EPOCHS;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    for (v = 0; v < n_variants; v++)
        if (!strcmp(only, "all") || !strcmp(only, variants[v].name)) break;
    if (v == n_variants || batch <= 0 || points <= 0) {
        ex_usage_error(&o, summary, flags, n_flags, "bad --variant, --batch or --points");
    }
    if (o.quick && !o.epochs_given) o.epochs = 1;
    engr510_load(&o, "unit", &train, &test);
    fprintf(stderr, "backend %s, %d thread(s); %d training images, %d epochs, batch %d\n", nn_backend_name(),
            nn_threads(), train.count, o.epochs, batch);

    for (v = 0; v < n_variants; v++) {
        const variant *vr = &variants[v];
        nn_model *m;
        nn_optimizer opt;
        engr510_outcome r;
        if (strcmp(only, "all") && strcmp(only, vr->name)) continue;
        m = engr510_model(0, vr->loss, o.seed, batch);
        fprintf(stderr, "[%s] %s, %s lr %g\n", vr->name, vr->loss == NN_LOSS_SOFTMAX_MSE ? "softmax + MSE" : "cross-entropy",
                vr->adam ? "Adam" : "SGD", (double)vr->lr);
        opt = vr->adam ? nn_adam(vr->lr, 0.0f) : nn_sgd(vr->lr, 0.0f, 0.0f);
        r = engr510_train(&o, vr->name, m, &opt, &train, &test, batch, points);
        ex_result(&o, vr->name,
                  "train_loss=%.4f train_ce=%.4f train_acc=%.2f test_acc=%.2f steps_to_90=%lld steps_to_95=%lld steps=%lld "
                  "seconds=%.2f",
                  r.train.loss, r.train_ce, r.train.accuracy, r.test.accuracy, (long long)r.steps_to_90,
                  (long long)r.steps_to_95, (long long)r.last.steps, r.seconds);
        nn_optimizer_free(&opt);
        nn_model_free(m);
        ran++;
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return ran ? 0 : 1;
}
