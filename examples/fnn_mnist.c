/* fnn_mnist: Deep Learning Assignment 1, question 3. A 784-128-64-10 ReLU network on MNIST, inputs
   scaled to [0, 1] and normalised with mean 0.5 and std 0.5 (ToTensor + Normalize((0.5,), (0.5,))),
   Adam lr 1e-3, batch 64, 10 epochs, cross-entropy. The report also says the output layer has a
   softmax activation (before nn.CrossEntropyLoss, which applies its own log-softmax): the
   `softmax_output` variant trains exactly that, the `fnn` variant the usual logits. */
#define NN_IMPLEMENTATION
#include "common.h"

static const char *summary =
    "Deep Learning Assignment 1 (question 3): 784-128-64-10, ReLU, inputs (x/255 - 0.5)/0.5, Adam lr\n"
    "1e-3 (PyTorch's betas and eps), batch 64 reshuffled each epoch, 10 epochs, cross-entropy,\n"
    "PyTorch's default initialisation. Variants: fnn (cross-entropy on the logits) and softmax_output\n"
    "(the report's softmax output layer fed to cross-entropy, which applies a second softmax).\n"
    "train_loss and train_acc are the final model's on all 60 000 training images (eval mode); curves\n"
    "per epoch (running minibatch means for train, the 10 000 test images for val) in\n"
    "<out>/<variant>.csv. Runs on 1 thread unless --threads or NN_THREADS says otherwise (layers this\n"
    "small lose time to thread wake-ups).\n"
    "--quick: 10 000 training images, 1 epoch.";

typedef struct logger { const char *variant; FILE *csv; } logger;

static int on_epoch(const nn_epoch_report *r, void *user)
{
    logger *l = (logger *)user;
    ex_log_epoch(l->variant, r);
    fprintf(l->csv, "%d,%.6f,%.4f,%.6f,%.4f,%.4f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss,
            r->val_accuracy, r->seconds);
    return 0;
}

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, test;
    const char *only = "all";
    int batch = 64, v, ran = 0;
    float lr = 1e-3f;
    const char *variants[2] = {"fnn", "softmax_output"};
    ex_flag flags[] = {
        {"--variant", EX_STRING, &only, "fnn|softmax_output|all (default all)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 64)"},
        {"--lr", EX_FLOAT, &lr, "Adam learning rate (default 0.001)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    o.name = "fnn_mnist";
    o.epochs = 10;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    if (batch <= 0 || !(lr > 0.0f) || (strcmp(only, "all") && strcmp(only, variants[0]) && strcmp(only, variants[1]))) {
        ex_usage_error(&o, summary, flags, n_flags, "bad --variant, --batch or --lr");
    }
    if (!o.threads && !getenv("NN_THREADS")) ex_check(nn_set_threads(1), "nn_set_threads");
    ex_load_mnist(&o, &train, &test);
    if (o.quick) {
        ex_truncate(&train, 10000);
        if (!o.epochs_given) o.epochs = 1;
    }
    /* ToTensor then Normalize((0.5,), (0.5,)) */
    nn_dataset_scale(&train, 1.0 / 255.0);
    nn_dataset_scale(&test, 1.0 / 255.0);
    nn_dataset_normalize(&train, 0.5, 0.5);
    nn_dataset_normalize(&test, 0.5, 0.5);
    fprintf(stderr, "backend %s, %d thread(s); %d training images, %d epochs, batch %d\n", nn_backend_name(),
            nn_threads(), train.count, o.epochs, batch);

    for (v = 0; v < 2; v++) {
        nn_model *m;
        nn_node *h;
        nn_optimizer opt;
        nn_fit_options fit;
        nn_fit_result res;
        nn_metrics tr, te;
        logger l;
        ex_run run;
        char file[64];
        if (strcmp(only, "all") && strcmp(only, variants[v])) continue;
        m = nn_model_new(o.seed);
        h = nn_input(m, 1, 28, 28);
        h = nn_relu(m, nn_linear(m, h, 128, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 64, NN_BIAS));
        h = nn_linear(m, h, 10, NN_BIAS);
        if (v == 1) h = nn_softmax(m, h);
        ex_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch, variants[v]);
        fprintf(stderr, "[%s] %zu parameters\n", variants[v], nn_param_count(m));
        opt = nn_adam(lr, 0.0f);
        ex_run_begin(&run, &o, variants[v], m, &opt, NULL);
        ex_run_resume(&run);
        snprintf(file, sizeof file, "%s.csv", variants[v]);
        l.variant = variants[v];
        l.csv = ex_csv_open(&o, file, "epoch,train_loss,train_acc,val_loss,val_acc,seconds");
        fit = nn_fit_defaults(o.epochs, batch);
        fit.seed = o.seed;
        fit.validation = &test;
        fit.on_epoch = on_epoch;
        fit.user = &l;
        ex_run_fit(&run, &train, &fit, &res);
        ex_csv_close(l.csv);
        ex_check(nn_evaluate(m, &train, &tr), "evaluation");
        ex_check(nn_evaluate(m, &test, &te), "evaluation");
        ex_result(&o, variants[v], "train_loss=%.4f train_acc=%.2f test_loss=%.4f test_acc=%.2f params=%zu seconds=%.2f",
                  tr.loss, tr.accuracy, te.loss, te.accuracy, nn_param_count(m), res.seconds);
        nn_optimizer_free(&opt);
        nn_model_free(m);
        ran++;
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return ran ? 0 : 1;
}
