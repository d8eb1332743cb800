/* mlp_optimizers: ENGR 510 homework, questions 12-14. Model A (784-64-32-10, ReLU) trained with
   Adam lr 1e-3, plain SGD lr 1e-3 and plain SGD lr 1e-2, and the shallower model B (784-256-10)
   with Adam; loss and accuracy on the training set, test accuracy, time, weight counts and
   convergence curves. */
#define NN_IMPLEMENTATION
#include "common.h"
#include "engr510_common.h"


static const char *summary =
    "ENGR 510 homework (questions 12-14): model A = 784-64-32-10 and model B = 784-256-10, ReLU,\n"
    "cross-entropy, PyTorch's default initialisation, inputs scaled to [0, 1], trained on all\n"
    "60 000 training images reshuffled each epoch. Variants: adam_lr1e-3 (A, Adam lr 1e-3),\n"
    "sgd_lr1e-3 and sgd_lr1e-2 (A, plain SGD: no momentum, PyTorch's default), and\n"
    "shallow_adam_lr1e-3 (B, Adam lr 1e-3).\n"
    "The report states neither the epochs, the batch size nor the input scaling. The defaults\n"
    "(2 epochs of batch 10, [0, 1] inputs) are the setting under which its three optimiser\n"
    "results hold together in PyTorch runs (tools/pytorch/mlp_optimizers.py, see\n"
    "docs/experiments/mlp_optimizers.md): SGD 1e-3 needs ~12 000 steps to reach the report's\n"
    "loss 0.64 / 82 %, which is where SGD 1e-2 is at 0.18-0.22 / 94 %, and only a small batch\n"
    "keeps Adam as far from convergence as the report's 0.121 / 96.9 %. Raw 0..255 inputs make\n"
    "SGD 1e-3 beat SGD 1e-2, the opposite of the report.\n"
    "RESULT: train_loss/train_acc = the final model on all 60 000 training images (eval mode);\n"
    "epoch_loss/epoch_acc = the last epoch's minibatch means (what a training loop prints);\n"
    "weights = parameters without biases (nn_weight_count); seconds = training time without the\n"
    "curves' test-set passes. Curves in <out>/<variant>.csv,\n"
    "--points rows per epoch (train = minibatch means since the previous row, val = the test set).\n"
    "Runs on 1 thread unless --threads or NN_THREADS says otherwise (layers this small lose time\n"
    "to thread wake-ups). --quick: 10 000 training and 2 000 test images, 1 epoch.";

typedef struct variant {
    const char *name;
    int shallow;   /* model B */
    int adam;
    float lr;
} variant;

int main(int argc, char **argv)
{
    static const variant variants[] = {
        {"adam_lr1e-3", 0, 1, 1e-3f},
        {"sgd_lr1e-3", 0, 0, 1e-3f},
        {"sgd_lr1e-2", 0, 0, 1e-2f},
        {"shallow_adam_lr1e-3", 1, 1, 1e-3f},
    };
    const int n_variants = (int)(sizeof variants / sizeof variants[0]);
    ex_options o = {0};
    nn_dataset train, test;
    const char *only = "all", *scale = "unit";
    int batch = ENGR510_BATCH, points = 10, v, ran = 0;
    ex_flag flags[] = {
        {"--variant", EX_STRING, &only, "adam_lr1e-3|sgd_lr1e-3|sgd_lr1e-2|shallow_adam_lr1e-3|all (default all)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 10)"},
        {"--scale", EX_STRING, &scale, "input scaling: unit (x/255, default), raw (0..255) or standard (mean/std)"},
        {"--points", EX_INT, &points, "curve points per epoch (default 10)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    o.name = "mlp_optimizers";
    o.epochs = ENGR510_EPOCHS;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    for (v = 0; v < n_variants; v++)
        if (!strcmp(only, "all") || !strcmp(only, variants[v].name)) break;
    if (o.quick && !o.epochs_given) o.epochs = 1;
    if (v == n_variants || batch <= 0 || points <= 0 || !engr510_load(&o, scale, &train, &test)) {
        ex_usage_error(&o, summary, flags, n_flags, "bad --variant, --batch, --scale or --points");
    }
    fprintf(stderr, "backend %s, %d thread(s); %d training images, %d epochs, batch %d, %s inputs\n",
            nn_backend_name(), nn_threads(), train.count, o.epochs, batch, scale);

    for (v = 0; v < n_variants; v++) {
        const variant *vr = &variants[v];
        nn_model *m;
        nn_optimizer opt;
        engr510_outcome r;
        if (strcmp(only, "all") && strcmp(only, vr->name)) continue;
        m = engr510_model(vr->shallow, NN_LOSS_SOFTMAX_CROSS_ENTROPY, o.seed, batch);
        fprintf(stderr, "[%s] %s, %zu weights, %zu parameters, %s lr %g\n", vr->name,
                vr->shallow ? "784-256-10" : "784-64-32-10", nn_weight_count(m), nn_param_count(m),
                vr->adam ? "Adam" : "SGD", (double)vr->lr);
        opt = vr->adam ? nn_adam(vr->lr, 0.0f) : nn_sgd(vr->lr, 0.0f, 0.0f);
        r = engr510_train(&o, vr->name, m, &opt, &train, &test, batch, points);
        ex_result(&o, vr->name,
                  "train_loss=%.4f train_acc=%.2f test_acc=%.2f epoch_loss=%.4f epoch_acc=%.2f weights=%zu params=%zu "
                  "seconds=%.2f",
                  r.train.loss, r.train.accuracy, r.test.accuracy, r.last.train_loss, r.last.train_accuracy,
                  nn_weight_count(m), nn_param_count(m), r.seconds);
        nn_optimizer_free(&opt);
        nn_model_free(m);
        ran++;
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return ran ? 0 : 1;
}
