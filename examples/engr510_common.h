/* examples/engr510_common.h - the setup of the ENGR 510 homework, shared by
   mlp_optimizers.c and ce_vs_mse.c: data scaled to [0, 1], models A (784-64-32-10) and
   B (784-256-10), and a training run that writes a convergence curve (several points per
   epoch) and evaluates the final model. Include after common.h. */
#ifndef NN_EXAMPLES_ENGR510_COMMON_H
#define NN_EXAMPLES_ENGR510_COMMON_H

/* The defaults that make the report's three optimiser results hold together (see
   docs/experiments/mlp_optimizers.md). */
#define ENGR510_EPOCHS 2
#define ENGR510_BATCH 10

/* Sets 1 thread (unless --threads or NN_THREADS), loads MNIST (10 000 training and 2 000 test
   images with --quick) and scales the pixels: "unit" x/255 (the default), "raw" 0..255, "standard" by the
   training set's mean and std. Returns 0 for an unknown scaling. */
EX_API int engr510_load(const ex_options *o, const char *scale, nn_dataset *train, nn_dataset *test)
{
    if (strcmp(scale, "unit") && strcmp(scale, "raw") && strcmp(scale, "standard")) return 0;
    /* layers this small lose time to thread wake-ups */
    if (!o->threads && !getenv("NN_THREADS")) ex_check(nn_set_threads(1), "nn_set_threads");
    ex_load_mnist(o, train, test);
    if (o->quick) {
        ex_truncate(train, 10000);
        ex_truncate(test, 2000);
    }
    if (!strcmp(scale, "unit")) {
        nn_dataset_scale(train, 1.0 / 255.0);
        nn_dataset_scale(test, 1.0 / 255.0);
    } else if (!strcmp(scale, "standard")) {
        double mean, std;
        nn_dataset_stats(train, &mean, &std);
        nn_dataset_normalize(train, mean, std);
        nn_dataset_normalize(test, mean, std);
    }
    return 1;
}

/* Model A (784-64-32-10) or B (784-256-10), ReLU, PyTorch's initialisation, compiled for
   batches of up to max(batch, 500) so that evaluation runs in big batches. */
EX_API nn_model *engr510_model(int shallow, nn_loss loss, uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h;
    if (!m) ex_check(NN_ERROR_MEMORY, "model");
    h = nn_input(m, 1, 28, 28);
    if (shallow) {
        h = nn_relu(m, nn_linear(m, h, 256, NN_BIAS));
    } else {
        h = nn_relu(m, nn_linear(m, h, 64, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 32, NN_BIAS));
    }
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), loss, batch > 500 ? batch : 500, shallow ? "784-256-10 MLP" : "784-64-32-10 MLP");
    return m;
}

typedef struct engr510_outcome {
    nn_metrics train, test;  /* the final model on all training images and on the test set */
    double train_ce;         /* cross-entropy of the final model on the training set, whatever the loss */
    nn_epoch_report last;    /* the last epoch's report (minibatch means) */
    double seconds;          /* training time without the curve's test-set passes */
    int64_t steps_to_90;     /* first curve point with test accuracy >= 90 % (-1: never) */
    int64_t steps_to_95;     /* the same for 95 % */
} engr510_outcome;

typedef struct engr510_log {
    const char *variant;
    FILE *csv;
    int steps_per_epoch;
    engr510_outcome *out;
} engr510_log;

EX_API int engr510_on_check(const nn_epoch_report *r, void *user)
{
    engr510_log *l = (engr510_log *)user;
    fprintf(l->csv, "%.4f,%lld,%.6f,%.4f,%.6f,%.4f\n", (double)r->steps / l->steps_per_epoch, (long long)r->steps,
            r->train_loss, r->train_accuracy, r->val_loss, r->val_accuracy);
    if (l->out->steps_to_90 < 0 && r->val_accuracy >= 90.0) l->out->steps_to_90 = r->steps;
    if (l->out->steps_to_95 < 0 && r->val_accuracy >= 95.0) l->out->steps_to_95 = r->steps;
    return 0;
}

EX_API int engr510_on_epoch(const nn_epoch_report *r, void *user)
{
    engr510_log *l = (engr510_log *)user;
    ex_log_epoch(l->variant, r);
    l->out->last = *r;
    l->out->seconds += r->seconds;
    return 0;
}

/* Mean softmax cross-entropy of the model's outputs (logits) on ds. */
EX_API double engr510_cross_entropy(nn_model *m, const nn_dataset *ds, int batch)
{
    const int size = nn_dataset_sample_size(ds);
    double sum = 0.0;
    int first;
    for (first = 0; first < ds->count; first += batch) {
        int n = ds->count - first < batch ? ds->count - first : batch;
        ex_check(nn_forward(m, ds->x + (size_t)first * size, n, NN_EVAL), "forward");
        sum += (double)nn_softmax_cross_entropy(n, nn_output_size(m), nn_output(m), ds->labels + first, NULL, 0.0f) * n;
    }
    return sum / ds->count;
}

/* Trains m with opt for o->epochs epochs of `batch` (reshuffled each epoch from o->seed),
   writing <out>/<variant>.csv with `points` rows per epoch (train: minibatch means since the
   previous row; val: the test set), then evaluates the final model. */
EX_API engr510_outcome engr510_train(const ex_options *o, const char *variant, nn_model *m, nn_optimizer *opt,
                           const nn_dataset *train, const nn_dataset *test, int batch, int points)
{
    engr510_outcome out;
    engr510_log l;
    nn_fit_options fit;
    ex_run run;
    char file[128];
    memset(&out, 0, sizeof out);
    out.steps_to_90 = out.steps_to_95 = -1;
    ex_run_begin(&run, o, variant, m, opt, NULL);
    ex_run_keep(&run, "outcome", &out, sizeof out); /* the last report, the training time, the steps to 90 and 95 % */
    ex_run_resume(&run);
    snprintf(file, sizeof file, "%s.csv", variant);
    l.variant = variant;
    l.csv = ex_csv_open(o, file, "epoch,steps,train_loss,train_acc,val_loss,val_acc");
    l.steps_per_epoch = (train->count + batch - 1) / batch;
    l.out = &out;
    fit = nn_fit_defaults(o->epochs, batch);
    fit.seed = o->seed;
    fit.validation = test;
    fit.checks_per_epoch = points;
    fit.on_epoch = engr510_on_epoch;
    fit.on_check = engr510_on_check;
    fit.user = &l;
    ex_run_fit(&run, train, &fit, NULL);
    ex_csv_close(l.csv);
    ex_check(nn_evaluate(m, train, &out.train), "evaluation");
    ex_check(nn_evaluate(m, test, &out.test), "evaluation");
    out.train_ce = engr510_cross_entropy(m, train, batch > 500 ? batch : 500);
    return out;
}

#endif
