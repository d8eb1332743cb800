/* flatness_interpolation: Homework 1, HW1-3 "flatness vs generalisation, part 1". Two copies of a
   784-30-50-10 ReLU MLP (25 610 parameters, the report's notebook's "3 linear layers") are trained
   on MNIST with plain SGD, one with batch 100 and one with batch 500; then the parameters
   theta(alpha) = (1 - alpha) * theta_batch100 + alpha * theta_batch500 are evaluated at 50 values
   of alpha evenly spaced in [-1, 2]: train and test loss and accuracy against alpha.
   The report does this at lr 1e-3 and at lr 1e-2: --lr (default 1e-3) and --lr2 (default 1e-2,
   0 skips it) run both in one go.
   Files: results/flatness_interpolation/lr<lr>_batch<B>.csv (training curves) and
   lr<lr>_interpolation.csv (alpha,train_loss,train_acc,test_loss,test_acc). */
#define NN_IMPLEMENTATION
#include "common.h"

typedef struct curve {
    const char *variant;
    FILE *csv;
} curve;

static int on_epoch(const nn_epoch_report *r, void *user)
{
    curve *c = (curve *)user;
    ex_log_epoch(c->variant, r);
    fprintf(c->csv, "%d,%.6f,%.4f,%.6f,%.4f,%.3f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss,
            r->val_accuracy, r->seconds);
    fflush(c->csv);
    return 0;
}

static nn_model *build_mlp(uint64_t seed, int max_batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_linear(m, h, 30, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 50, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch, "784-30-50-10 MLP");
    return m;
}

/* Trains one end-point model; returns it, its parameters copied into params. */
static nn_model *train_end_point(const ex_options *o, const nn_dataset *train, const nn_dataset *test, float lr, int batch,
                                 uint64_t seed, const char *lr_tag, float *params)
{
    nn_model *m = build_mlp(seed, batch < 1000 ? 1000 : batch);
    nn_optimizer opt = nn_sgd(lr, 0.0f, 0.0f);
    nn_fit_options fit = nn_fit_defaults(o->epochs, batch);
    nn_metrics tr, te;
    char variant[64], file[96];
    curve c;
    ex_run run;
    double t0 = nn_seconds();
    snprintf(variant, sizeof variant, "%sbatch%d", lr_tag, batch);
    snprintf(file, sizeof file, "lr%g_batch%d.csv", (double)lr, batch);
    ex_run_begin(&run, o, variant, m, &opt, NULL);
    ex_run_resume(&run);
    c.variant = variant;
    c.csv = ex_csv_open(o, file, "epoch,train_loss,train_acc,val_loss,val_acc,seconds");
    fit.seed = seed;
    fit.validation = test;
    fit.on_epoch = on_epoch;
    fit.user = &c;
    fprintf(stderr, "[%s] lr %g, batch %d, %zu parameters, %d epochs\n", variant, (double)lr, batch, nn_param_count(m),
            o->epochs);
    ex_run_fit(&run, train, &fit, NULL);
    ex_csv_close(c.csv);
    ex_check(nn_evaluate(m, train, &tr), "evaluation (train)");
    ex_check(nn_evaluate(m, test, &te), "evaluation (test)");
    ex_result(o, variant, "params=%zu lr=%g batch=%d train_loss=%.4f train_acc=%.2f test_loss=%.4f test_acc=%.2f seconds=%.2f",
              nn_param_count(m), (double)lr, batch, tr.loss, tr.accuracy, te.loss, te.accuracy, nn_seconds() - t0);
    memcpy(params, nn_params(m), nn_param_count(m) * sizeof(float));
    nn_optimizer_free(&opt);
    return m;
}

static void run_lr(const ex_options *o, const nn_dataset *train, const nn_dataset *test, float lr, int batch1, int batch2,
                   int points, const char *lr_tag)
{
    nn_model *m1, *m2, *probe;
    float *p1, *p2;
    size_t n;
    FILE *csv;
    char file[96], variant[64];
    double worst_acc = 1e9, worst_alpha = 0, acc_m1 = 0, acc_2 = 0, mid_acc = 0, mid_dist = 1e9;
    int i;
    probe = build_mlp(o->seed, 1000);
    n = nn_param_count(probe);
    p1 = (float *)malloc(n * sizeof(float));
    p2 = (float *)malloc(n * sizeof(float));
    if (!p1 || !p2) {
        fprintf(stderr, "flatness_interpolation: out of memory\n");
        exit(1);
    }
    /* different seeds: two independently initialised and shuffled models, as in the report */
    m1 = train_end_point(o, train, test, lr, batch1, o->seed, lr_tag, p1);
    m2 = train_end_point(o, train, test, lr, batch2, o->seed + 1, lr_tag, p2);
    snprintf(file, sizeof file, "lr%g_interpolation.csv", (double)lr);
    csv = ex_csv_open(o, file, "alpha,train_loss,train_acc,test_loss,test_acc");
    for (i = 0; i < points; i++) {
        const double alpha = points > 1 ? -1.0 + 3.0 * i / (points - 1) : 0.0;
        nn_metrics tr, te;
        ex_check(nn_params_interpolate(probe, p1, p2, (float)alpha), "interpolation");
        ex_check(nn_evaluate(probe, train, &tr), "evaluation (train)");
        ex_check(nn_evaluate(probe, test, &te), "evaluation (test)");
        fprintf(csv, "%.6f,%.6f,%.4f,%.6f,%.4f\n", alpha, tr.loss, tr.accuracy, te.loss, te.accuracy);
        fprintf(stderr, "[interpolation lr %g] alpha %6.3f  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%\n",
                (double)lr, alpha, tr.loss, tr.accuracy, te.loss, te.accuracy);
        if (alpha >= 0.0 && alpha <= 1.0 && te.accuracy < worst_acc) {
            worst_acc = te.accuracy;
            worst_alpha = alpha;
        }
        if (fabs(alpha - 0.5) < mid_dist) {
            mid_dist = fabs(alpha - 0.5);
            mid_acc = te.accuracy;
        }
        if (i == 0) acc_m1 = te.accuracy;
        if (i == points - 1) acc_2 = te.accuracy;
    }
    ex_csv_close(csv);
    snprintf(variant, sizeof variant, "%sinterpolation", lr_tag);
    ex_result(o, variant, "lr=%g points=%d test_acc_alpha_m1=%.2f test_acc_alpha_mid=%.2f min_test_acc_0_1=%.2f "
              "alpha_of_min=%.3f test_acc_alpha_2=%.2f",
              (double)lr, points, acc_m1, mid_acc, worst_acc == 1e9 ? 0.0 : worst_acc, worst_alpha, acc_2);
    free(p1);
    free(p2);
    nn_model_free(m1);
    nn_model_free(m2);
    nn_model_free(probe);
}

static const char *summary =
    "Homework 1 HW1-3 flatness part 1: a 784-30-50-10 ReLU MLP trained with SGD at batch 100 and at batch 500,\n"
    "then train/test loss and accuracy of (1-alpha)*theta_100 + alpha*theta_500 for 50 alphas in [-1, 2];\n"
    "at lr 1e-3 and again at lr 1e-2. The report states neither epochs nor input scaling: 10 epochs (the\n"
    "notebook's), inputs = pixels/255 (ToTensor). Train figures are full evaluations in eval mode.\n"
    "--quick: 5000 training and 1000 test images, 2 epochs, 11 alphas, --lr2 skipped.";

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, test;
    float lr = 1e-3f, lr2 = 1e-2f;
    int batch1 = 100, batch2 = 500, points = 50;
    char tag[32];
    ex_flag flags[] = {
        {"--lr", EX_FLOAT, &lr, "SGD learning rate (default 1e-3; momentum 0, PyTorch's default)"},
        {"--lr2", EX_FLOAT, &lr2, "a second learning rate, run after the first (default 1e-2; 0 skips it)"},
        {"--batch1", EX_INT, &batch1, "batch size of the first model, alpha = 0 (default 100)"},
        {"--batch2", EX_INT, &batch2, "batch size of the second model, alpha = 1 (default 500)"},
        {"--points", EX_INT, &points, "number of alphas in [-1, 2] (default 50)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);

    o.name = "flatness_interpolation";
    o.epochs = 10;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    if (lr <= 0.0f || lr2 < 0.0f || batch1 <= 0 || batch2 <= 0 || points < 2) {
        ex_usage_error(&o, summary, flags, n_flags, "--lr and the batch sizes must be positive, --lr2 >= 0, --points >= 2");
    }
    ex_load_mnist(&o, &train, &test);
    if (o.quick) {
        ex_truncate(&train, 5000);
        ex_truncate(&test, 1000);
        if (!o.epochs_given) o.epochs = 2;
        points = 11;
        lr2 = 0.0f;
    }
    nn_dataset_scale(&train, 1.0 / 255.0);
    nn_dataset_scale(&test, 1.0 / 255.0);
    fprintf(stderr, "backend %s, %d thread(s), %d training images, %d epochs per model\n", nn_backend_name(), nn_threads(),
            train.count, o.epochs);
    run_lr(&o, &train, &test, lr, batch1, batch2, points, "");
    if (lr2 > 0.0f) {
        snprintf(tag, sizeof tag, "lr%g_", (double)lr2);
        run_lr(&o, &train, &test, lr2, batch1, batch2, points, tag);
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
