/* examples/tricks_common.h - the setup of TDT4265 Assignment 2 ("tricks of the trade"), shared by
   tricks_of_trade.c and topologies.c: the data split, the model with its trick switches, and
   the early-stopped training run with its CSV curve and RESULT line. Include after common.h.

   The course's code (TDT4265 assignment 2, numpy) uses the "bias trick": every image gets a
   constant 1 appended (785 inputs), so the first layer has a bias (a 785th weight row that is
   initialised like the other weights) and no other layer has one. Hence 50 880 parameters for
   784-64-10 = (784+1)*64 + 64*10, and 51 300 for 784-60-60-10.
   Include after common.h. */
#ifndef NN_EXAMPLES_TRICKS_COMMON_H
#define NN_EXAMPLES_TRICKS_COMMON_H

#define TRICKS_MAX_HIDDEN 16

/* The report's loader: the first 20 000 training images (625 steps of 32 per epoch), the
   10 000 test images as the validation set. */
#define TRICKS_TRAIN_COUNT 20000

typedef struct tricks_config {
    const char *variant;      /* RESULT variant and CSV name */
    int hidden[TRICKS_MAX_HIDDEN];
    int n_hidden;
    int improved_init;        /* N(0, 1/fan_in) instead of U(-1, 1) */
    int improved_sigmoid;     /* 1.7159 tanh(2x/3) instead of the logistic sigmoid */
    float learning_rate;      /* 0.1 (0.02 with momentum) */
    float momentum;           /* 0 or 0.9 */
} tricks_config;

/* Sets 1 thread (unless --threads or NN_THREADS), loads MNIST, prints the training set's pixel mean and std (over all 60 000 images, 0..255),
   normalises both sets with them and keeps the first TRICKS_TRAIN_COUNT training images
   (fewer, and a validation subset, with --quick). Returns the stats. */
EX_API void tricks_load(const ex_options *o, nn_dataset *train, nn_dataset *val, double *mean, double *std)
{
    double lib_mean, lib_std;
    /* 1 thread unless asked otherwise: layers this small lose time to thread wake-ups */
    if (!o->threads && !getenv("NN_THREADS")) ex_check(nn_set_threads(1), "nn_set_threads");
    ex_load_mnist(o, train, val);
    nn_dataset_stats(train, mean, std);
    nn_dataset_stats(train, &lib_mean, &lib_std);
    fprintf(stderr, "training pixels (60 000 images, 0..255): mean %.15g, std %.15g (nn_dataset_stats: %.15g, %.15g)\n",
            *mean, *std, lib_mean, lib_std);
    nn_dataset_normalize(train, *mean, *std);
    nn_dataset_normalize(val, *mean, *std);
    ex_truncate(train, o->quick ? 2000 : TRICKS_TRAIN_COUNT);
    if (o->quick) ex_truncate(val, 2000);
}

/* 784 - hidden... - 10; sigmoid or scaled-tanh hidden units; the first layer has a bias, the
   others none (the bias trick); softmax + cross-entropy. Initialised as the config says. */
EX_API nn_model *tricks_build(const tricks_config *c, uint64_t seed, int max_batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h, *first = NULL;
    int i;
    if (!m) ex_check(NN_ERROR_MEMORY, "model");
    h = nn_input(m, 1, 28, 28);
    for (i = 0; i < c->n_hidden; i++) {
        h = nn_linear(m, h, c->hidden[i], i == 0 ? NN_BIAS : NN_NO_BIAS);
        if (i == 0) first = h;
        h = c->improved_sigmoid ? nn_scaled_tanh(m, h) : nn_sigmoid(m, h);
    }
    h = nn_linear(m, h, 10, NN_NO_BIAS);
    ex_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch, "sigmoid MLP");
    if (c->improved_init) {
        /* N(0, 1/fan_in); the first layer's fan-in is 785 with the bias trick's constant input. */
        const float s = (float)(1.0 / sqrt(785.0));
        ex_check(nn_init_weights(m, NULL, NN_INIT_FAN_IN_NORMAL, 0.0f, 0.0f), "init");
        ex_check(nn_init_weights(m, first, NN_INIT_NORMAL, s, 0.0f), "init");
        ex_check(nn_init_biases(m, first, NN_INIT_NORMAL, s, 0.0f), "init");
    } else {
        ex_check(nn_init_weights(m, NULL, NN_INIT_UNIFORM, -1.0f, 1.0f), "init");
        ex_check(nn_init_biases(m, first, NN_INIT_UNIFORM, -1.0f, 1.0f), "init");
    }
    return m;
}

typedef struct tricks_sums {
    double train_seconds; /* summed over complete epochs */
    int full_epochs;
} tricks_sums;
typedef struct tricks_log {
    const char *variant;
    FILE *csv;
    tricks_sums sums;     /* kept in checkpoints */
    int steps_per_epoch;
} tricks_log;

/* Every validation check (5 per epoch): one CSV row; the epoch column is fractional. */
EX_API int tricks_on_check(const nn_epoch_report *r, void *user)
{
    tricks_log *log = (tricks_log *)user;
    fprintf(log->csv, "%.2f,%lld,%.6f,%.4f,%.6f,%.4f\n", (double)r->steps / log->steps_per_epoch, (long long)r->steps,
            r->train_loss, r->train_accuracy, r->val_loss, r->val_accuracy);
    return 0;
}

EX_API int tricks_on_epoch(const nn_epoch_report *r, void *user)
{
    tricks_log *log = (tricks_log *)user;
    ex_log_epoch(log->variant, r);
    if (r->steps == (int64_t)r->epoch * log->steps_per_epoch) { /* a complete epoch */
        log->sums.train_seconds += r->seconds;
        log->sums.full_epochs++;
    }
    return 0;
}

typedef struct tricks_outcome {
    nn_metrics train, val;
    nn_fit_result fit;
    size_t params;
    double seconds_per_epoch; /* training only (validation passes excluded) */
} tricks_outcome;

/* Trains one configuration: SGD, batch 32, shuffled each epoch, at most o->epochs epochs,
   validation 5 times per epoch, stop after 50 checks without a better validation loss. Writes
   <out>/<variant>.csv (one row per validation check: train loss/accuracy are the means over
   the minibatches since the previous check) and evaluates the final model on both sets. */
EX_API tricks_outcome tricks_run(const ex_options *o, const tricks_config *c, const nn_dataset *train,
                                 const nn_dataset *val, int batch, int patience)
{
    tricks_outcome out;
    tricks_log log;
    nn_fit_options fit;
    nn_optimizer opt;
    nn_model *m = tricks_build(c, o->seed, batch);
    ex_run run;
    char file[256];
    memset(&out, 0, sizeof out);
    memset(&log, 0, sizeof log);
    out.params = nn_param_count(m);
    fprintf(stderr, "[%s] %zu parameters, lr %g, momentum %g, %s init, %s\n", c->variant, out.params,
            (double)c->learning_rate, (double)c->momentum, c->improved_init ? "N(0,1/fan_in)" : "U(-1,1)",
            c->improved_sigmoid ? "1.7159 tanh(2x/3)" : "sigmoid");
    opt = nn_sgd(c->learning_rate, c->momentum, 0.0f);
    ex_run_begin(&run, o, c->variant, m, &opt, NULL);
    ex_run_keep(&run, "sums", &log.sums, sizeof log.sums);
    ex_run_resume(&run);
    snprintf(file, sizeof file, "%s.csv", c->variant);
    log.variant = c->variant;
    log.csv = ex_csv_open(o, file, "epoch,steps,train_loss,train_acc,val_loss,val_acc");
    log.steps_per_epoch = (train->count + batch - 1) / batch;
    fit = nn_fit_defaults(o->epochs, batch);
    fit.seed = o->seed;
    fit.validation = val;
    fit.checks_per_epoch = 5;
    fit.patience = patience;
    fit.on_epoch = tricks_on_epoch;
    fit.on_check = tricks_on_check;
    fit.user = &log;
    ex_run_fit(&run, train, &fit, &out.fit);
    ex_csv_close(log.csv);
    ex_check(nn_evaluate(m, train, &out.train), "evaluation");
    ex_check(nn_evaluate(m, val, &out.val), "evaluation");
    out.seconds_per_epoch = log.sums.full_epochs ? log.sums.train_seconds / log.sums.full_epochs : 0.0;
    fprintf(stderr, "[%s] %s after %lld steps (%d epochs)\n", c->variant,
            out.fit.stopped_early ? "early stop" : "done", (long long)out.fit.steps, out.fit.epochs);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    return out;
}

#endif
