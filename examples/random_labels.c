/* random_labels: Homework 1, HW1-3 "can a network fit random labels?". LeNet (44 426 parameters)
   trained with Adam (lr 1e-4), batch 100, for 100 epochs on MNIST training images whose labels
   have been permuted at random (nn_dataset_shuffle_labels); the test set keeps its true labels.
   The story: the training loss falls (the network memorises noise) while the test loss rises.
   Curve: results/random_labels/lenet.csv (epoch, train loss/accuracy on the random labels,
   test loss/accuracy on the true ones). */
#define NN_IMPLEMENTATION
#include "common.h"

typedef struct curve {
    FILE *csv;
    nn_epoch_report first, last;
} curve;

static int on_epoch(const nn_epoch_report *r, void *user)
{
    curve *c = (curve *)user;
    ex_log_epoch("lenet", r);
    if (r->epoch == 1) c->first = *r;
    c->last = *r;
    fprintf(c->csv, "%d,%.6f,%.4f,%.6f,%.4f,%.3f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss,
            r->val_accuracy, r->seconds);
    fflush(c->csv);
    return 0;
}

static const char *summary =
    "Homework 1 HW1-3: LeNet fitted to MNIST with randomly permuted training labels (Adam 1e-4, batch 100,\n"
    "100 epochs); the test set keeps its true labels. Inputs are normalised with the training set's mean\n"
    "and standard deviation (the report's notebook uses Normalize(0.1307, 0.3081), the same values).\n"
    "Train loss/accuracy per epoch are running means over the epoch's minibatches (against the random\n"
    "labels); the RESULT line's train figures are a full evaluation after training.\n"
    "--quick: 1000 training and 1000 test images, 3 epochs.";

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, test;
    nn_model *m;
    nn_node *x, *h;
    nn_optimizer opt;
    nn_fit_options fit;
    nn_metrics train_m, test_m;
    nn_rng rng;
    curve c;
    ex_run run;
    double mean, std, t0;
    float lr = 1e-4f;
    int batch = 100, train_size = 60000;
    ex_flag flags[] = {
        {"--lr", EX_FLOAT, &lr, "Adam learning rate (default 1e-4; betas 0.9/0.999, eps 1e-8: PyTorch's defaults)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 100)"},
        {"--train-size", EX_INT, &train_size, "use the first N training images (default 60000, all of them)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);

    o.name = "random_labels";
    o.epochs = 100;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    if (lr <= 0.0f || batch <= 0 || train_size <= 0) {
        ex_usage_error(&o, summary, flags, n_flags, "--lr, --batch and --train-size must be positive");
    }
    ex_load_mnist(&o, &train, &test);
    if (o.quick) {
        train_size = train_size < 1000 ? train_size : 1000;
        ex_truncate(&test, 1000);
        if (!o.epochs_given) o.epochs = 3;
    }
    ex_truncate(&train, train_size);
    nn_dataset_stats(&train, &mean, &std);
    nn_dataset_normalize(&train, mean, std);
    nn_dataset_normalize(&test, mean, std);
    rng = nn_rng_new(o.seed ^ 0x5eedULL);
    nn_dataset_shuffle_labels(&train, &rng);

    m = nn_model_new(o.seed);
    x = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch < 500 ? 500 : batch, "LeNet-5");
    fprintf(stderr, "backend %s, %d thread(s), %zu parameters, %d epochs, %d training images (random labels)\n",
            nn_backend_name(), nn_threads(), nn_param_count(m), o.epochs, train.count);

    memset(&c, 0, sizeof c);
    opt = nn_adam(lr, 0.0f);
    ex_run_begin(&run, &o, NULL, m, &opt, NULL);
    ex_run_keep(&run, "first", &c.first, sizeof c.first); /* epoch 1's report: RESULT's epoch1_ figures */
    ex_run_keep(&run, "last", &c.last, sizeof c.last);
    ex_run_resume(&run);
    c.csv = ex_csv_open(&o, "lenet.csv", "epoch,train_loss,train_acc,val_loss,val_acc,seconds");
    fit = nn_fit_defaults(o.epochs, batch);
    fit.seed = o.seed;
    fit.validation = &test;
    fit.on_epoch = on_epoch;
    fit.user = &c;
    t0 = nn_seconds();
    ex_run_fit(&run, &train, &fit, NULL);
    ex_csv_close(c.csv);
    ex_check(nn_evaluate(m, &train, &train_m), "evaluation (train)");
    ex_check(nn_evaluate(m, &test, &test_m), "evaluation (test)");
    ex_result(&o, "lenet",
              "params=%zu train_size=%d epochs=%d train_loss=%.4f train_acc=%.2f test_loss=%.4f test_acc=%.2f "
              "epoch1_train_loss=%.4f epoch1_test_loss=%.4f seconds=%.2f",
              nn_param_count(m), train.count, o.epochs, train_m.loss, train_m.accuracy, test_m.loss, test_m.accuracy,
              c.first.train_loss, c.first.val_loss, nn_seconds() - t0);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
