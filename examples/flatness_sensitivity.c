/* flatness_sensitivity: Homework 1, HW1-3 "flatness vs generalisation, part 2". A 784-20-30-10 ReLU
   MLP (16 640 parameters, the report's notebook's "3 linear layers") is trained on MNIST with
   plain SGD (lr 1e-3) once per batch size (5, 25, 50, 100, 200 by default); for each trained model
   we measure the loss, the accuracy and the sensitivity of the loss to the input on the test set.

   Sensitivity, precisely: for test sample i let g_i = d loss_i / d x_i, the gradient of that
   sample's own cross-entropy with respect to its 784 input pixels (scaled to [0, 1]), in eval
   mode. G is the 10 000 x 784 matrix of the g_i. We print
       frobenius   = ||G||_F = sqrt(sum_i |g_i|^2)            (the report's "Frobenius norm")
       sensitivity = ||G||_F / sqrt(N)                        (root-mean-square |g_i|)
   sensitivity does not depend on the test-set size. It is not the gradient of the batch-mean
   loss (the library's default reduction), which would be ||G||_F / N for the whole set; see
   nn_input_gradient_norm in nn.h.
   Files: results/flatness_sensitivity/batch<B>.csv (per-epoch curves, with the sensitivity at
   each epoch's end) and sensitivity.csv (one row per batch size). */
#define NN_IMPLEMENTATION
#include "common.h"

typedef struct curve {
    const char *variant;
    FILE *csv;
    nn_model *model;
    const nn_dataset *test;
} curve;

/* ||G||_F over ds; input gradients are switched on only for the measurement (they would cost
   the first layer a second GEMM in every training step). */
static double input_gradient_frobenius(nn_model *m, const nn_dataset *ds)
{
    double frob = 0.0;
    nn_set_input_gradient(m, 1);
    ex_check(nn_input_gradient_norm(m, ds, 1000, &frob), "sensitivity");
    nn_set_input_gradient(m, 0);
    return frob;
}

static int on_epoch(const nn_epoch_report *r, void *user)
{
    curve *c = (curve *)user;
    double frob = input_gradient_frobenius(c->model, c->test);
    ex_log_epoch(c->variant, r);
    fprintf(c->csv, "%d,%.6f,%.4f,%.6f,%.4f,%.6f,%.3f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss,
            r->val_accuracy, frob / sqrt((double)c->test->count), r->seconds);
    fflush(c->csv);
    return 0;
}

static nn_model *build_mlp(uint64_t seed, int max_batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_linear(m, h, 20, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 30, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch, "784-20-30-10 MLP");
    return m;
}

static const char *summary =
    "Homework 1 HW1-3 flatness part 2: a 784-20-30-10 ReLU MLP trained with SGD lr 1e-3 at each batch size;\n"
    "test loss, accuracy and sensitivity against batch size. sensitivity = sqrt(mean over test samples of\n"
    "|d loss_i / d x_i|^2), frobenius = the Frobenius norm of the 10000 x 784 matrix of those gradients\n"
    "(= sensitivity * sqrt(10000)); inputs = pixels/255. The report states no epoch count: 50, the\n"
    "notebook's. Every model starts from the same initial weights unless --separate-init.\n"
    "--quick: 3000 training and 1000 test images, 2 epochs, batch sizes 25,100,200 (unless given).";

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, test;
    nn_model *init;
    FILE *table;
    float lr = 1e-3f;
    ex_int_list sizes = {5, {5, 25, 50, 100, 200}};
    int i, same_init = 1, separate_init = 0;
    ex_flag flags[] = {
        {"--lr", EX_FLOAT, &lr, "SGD learning rate (default 1e-3; momentum 0, PyTorch's default)"},
        {"--batch-sizes", EX_INT_LIST, &sizes, "comma-separated batch sizes (default 5,25,50,100,200)"},
        {"--separate-init", EX_SWITCH, &separate_init, "initialise each model from its own seed (default: one shared init)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);

    o.name = "flatness_sensitivity";
    o.epochs = 50;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    if (lr <= 0.0f) {
        ex_usage_error(&o, summary, flags, n_flags, "--lr must be positive");
    }
    same_init = !separate_init;
    ex_load_mnist(&o, &train, &test);
    if (o.quick) {
        ex_truncate(&train, 3000);
        ex_truncate(&test, 1000);
        if (!o.epochs_given) o.epochs = 2;
        if (sizes.count == 5 && sizes.values[0] == 5) {
            sizes.count = 3;
            sizes.values[0] = 25;
            sizes.values[1] = 100;
            sizes.values[2] = 200;
        }
    }
    nn_dataset_scale(&train, 1.0 / 255.0);
    nn_dataset_scale(&test, 1.0 / 255.0);
    fprintf(stderr, "backend %s, %d thread(s), %d training images, %d epochs per model\n", nn_backend_name(), nn_threads(),
            train.count, o.epochs);

    init = build_mlp(o.seed, 1000);
    table = ex_csv_open(&o, "sensitivity.csv",
                          "batch_size,train_loss,train_acc,test_loss,test_acc,sensitivity,frobenius,seconds");
    for (i = 0; i < sizes.count; i++) {
        const int batch = sizes.values[i];
        nn_model *m = build_mlp(same_init ? o.seed : o.seed + (uint64_t)batch, batch < 1000 ? 1000 : batch);
        nn_optimizer opt = nn_sgd(lr, 0.0f, 0.0f);
        nn_fit_options fit = nn_fit_defaults(o.epochs, batch);
        nn_metrics tr, te;
        char variant[32], file[48];
        double frob, sens, t0 = nn_seconds(), seconds;
        curve c;
        ex_run run;
        if (same_init) ex_check(nn_params_copy(m, init), "copying the initial parameters");
        snprintf(variant, sizeof variant, "batch%d", batch);
        snprintf(file, sizeof file, "batch%d.csv", batch);
        ex_run_begin(&run, &o, variant, m, &opt, NULL);
        ex_run_resume(&run);
        c.variant = variant;
        c.model = m;
        c.test = &test;
        c.csv = ex_csv_open(&o, file, "epoch,train_loss,train_acc,val_loss,val_acc,sensitivity,seconds");
        fit.seed = o.seed + (uint64_t)batch;
        fit.validation = &test;
        fit.on_epoch = on_epoch;
        fit.user = &c;
        fprintf(stderr, "[%s] %zu parameters, lr %g\n", variant, nn_param_count(m), (double)lr);
        ex_run_fit(&run, &train, &fit, NULL);
        ex_csv_close(c.csv);
        seconds = nn_seconds() - t0;
        ex_check(nn_evaluate(m, &train, &tr), "evaluation (train)");
        ex_check(nn_evaluate(m, &test, &te), "evaluation (test)");
        frob = input_gradient_frobenius(m, &test);
        sens = frob / sqrt((double)test.count);
        fprintf(table, "%d,%.6f,%.4f,%.6f,%.4f,%.6f,%.6f,%.3f\n", batch, tr.loss, tr.accuracy, te.loss, te.accuracy, sens,
                frob, seconds);
        fflush(table);
        ex_result(&o, variant,
                  "params=%zu batch=%d sensitivity=%.4f frobenius=%.4f train_loss=%.4f train_acc=%.2f test_loss=%.4f "
                  "test_acc=%.2f seconds=%.2f",
                  nn_param_count(m), batch, sens, frob, tr.loss, tr.accuracy, te.loss, te.accuracy, seconds);
        nn_optimizer_free(&opt);
        nn_model_free(m);
    }
    ex_csv_close(table);
    nn_model_free(init);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
