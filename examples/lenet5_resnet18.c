/* lenet5_resnet18: Deep Learning Assignment 1, solution 4 - LeNet-5 trained for 10
   epochs against ResNet-18 trained for one epoch, compared by their loss after the same number of
   steps (the report: ResNet-18 0.48 "after just a few steps" against 1.07 for LeNet-5 at the same
   point of epoch 1) and by test accuracy (the report: LeNet-5 88.36 % after 10 epochs; the
   dataset is not named and the figure fits Fashion-MNIST: --dataset fashion).

   The report names neither layers nor optimiser for these two models. The defaults are those of
   its other network (solution 3): Adam lr 1e-3, batch 64, cross-entropy, inputs normalised with
   mean 0.5 and std 0.5 (pixel / 127.5 - 1).
   LeNet-5: conv 1->6 5x5 pad 2, ReLU, maxpool 2; conv 6->16 5x5, ReLU, maxpool 2; dense
   400-120-84-10 with ReLU (61 706 parameters; the usual PyTorch LeNet-5 for 28x28 input).
   ResNet-18: BasicBlocks [2,2,2,2] of widths 64/128/256/512 (3x3 convs without bias, batch norm,
   ReLU; a 1x1 stride-2 conv + batch norm shortcut where the shape changes), global average pooling,
   dense 512-10; for 28x28 input a 3x3 stride-1 stem without the max-pool (11 172 810 parameters).

   --steps N stops each model after N optimiser steps (ResNet-18 does about 20-60 images/s on this
   kind of CPU: a full epoch takes a while). steps_<variant>.csv has every step's loss (and the mean of the last 10),
   curves_<variant>.csv one row per epoch (validation = the test set: the report has no other). */
#define NN_IMPLEMENTATION
#include "common.h"

#define MIN_OF(a, b) ((a) < (b) ? (a) : (b))
#define MAX_OF(a, b) ((a) > (b) ? (a) : (b))

typedef struct config {
    const char *dataset, *variant;
    float lr;
    int batch, steps, compare_step, resnet_epochs, test_count;
} config;

/* ---- models ----------------------------------------------------------------------------- */
static nn_model *build_lenet5(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *x, *h;
    if (!m) return NULL;
    x = nn_input(m, 1, 28, 28);
    h = nn_maxpool2d(m, nn_relu(m, nn_conv2d(m, x, 6, 5, 1, 2, NN_BIAS)), 2, 2);
    h = nn_maxpool2d(m, nn_relu(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS)), 2, 2);
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch, "LeNet-5");
    return m;
}

static nn_node *conv_bn(nn_model *m, nn_node *x, int out, int kernel, int stride)
{
    return nn_batchnorm(m, nn_conv2d(m, x, out, kernel, stride, kernel / 2, NN_NO_BIAS));
}

/* torchvision's BasicBlock: relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x)) */
static nn_node *basic_block(nn_model *m, nn_node *x, int out, int stride)
{
    int channels = 0;
    nn_node *h, *shortcut = x;
    nn_node_shape(x, &channels, NULL, NULL);
    h = nn_relu(m, conv_bn(m, x, out, 3, stride));
    h = conv_bn(m, h, out, 3, 1);
    if (stride != 1 || channels != out) shortcut = conv_bn(m, x, out, 1, stride);
    return nn_relu(m, nn_add_nodes(m, h, shortcut));
}

static nn_model *build_resnet18(uint64_t seed, int batch)
{
    static const int widths[4] = {64, 128, 256, 512};
    nn_model *m = nn_model_new(seed);
    nn_node *h;
    int stage, block;
    if (!m) return NULL;
    h = nn_relu(m, conv_bn(m, nn_input(m, 1, 28, 28), 64, 3, 1)); /* 28x28: 3x3 stride-1 stem, no max-pool */
    for (stage = 0; stage < 4; stage++)
        for (block = 0; block < 2; block++)
            h = basic_block(m, h, widths[stage], block == 0 && stage > 0 ? 2 : 1);
    h = nn_global_avgpool(m, h);
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch, "ResNet-18");
    return m;
}

/* ---- training ----------------------------------------------------------------------------- */
typedef struct step_log {
    const char *variant;
    FILE *csv;
    float *losses;      /* every step's loss (kept in checkpoints) */
    int64_t total;      /* steps so far (over epochs) */
    int epoch, log_every, images_per_step;
    double t0, since;   /* start time, last log time */
} step_log;

/* The figures of the epochs so far that the RESULT line needs (kept in checkpoints). */
typedef struct progress {
    int64_t total;      /* steps */
    nn_metrics run, te; /* the last epoch's training means and test evaluation */
    double train_seconds;
} progress;

static int on_step(int64_t step, float loss, void *user)
{
    step_log *s = (step_log *)user;
    (void)step;
    double mean10 = 0.0;
    int64_t j, first;
    s->losses[s->total] = loss;
    s->total++;
    first = s->total > 10 ? s->total - 10 : 0;
    for (j = first; j < s->total; j++) mean10 += s->losses[j];
    fprintf(s->csv, "%lld,%d,%.6f,%.6f\n", (long long)s->total, s->epoch, (double)loss, mean10 / (double)(s->total - first));
    if (s->total % s->log_every == 0) {
        double now = nn_seconds(), mean = 0.0;
        int64_t i, n = s->total < s->log_every ? s->total : s->log_every;
        for (i = s->total - n; i < s->total; i++) mean += s->losses[i];
        fprintf(stderr, "[%s] step %6lld  epoch %d  loss %.4f (mean of the last %lld %.4f)  %.1f images/s\n", s->variant,
                (long long)s->total, s->epoch, (double)loss, (long long)n, mean / (double)n,
                (double)(s->log_every * s->images_per_step) / (now - s->since));
        s->since = now;
    }
    return 0;
}

typedef struct outcome {
    double loss_at, mean_at, seconds, images_per_s;
    int compare_step;
} outcome;

static void run_variant(const ex_options *o, const config *c, const char *variant, int epochs, const nn_dataset *train,
                        const nn_dataset *test, outcome *res)
{
    nn_model *m = strcmp(variant, "lenet5") == 0 ? build_lenet5(o->seed, c->batch) : build_resnet18(o->seed, c->batch);
    nn_optimizer opt = nn_adam(c->lr, 0.0f);
    nn_rng rng = nn_rng_new(o->seed);
    step_log log;
    progress p;
    ex_run ck;
    char file[128];
    FILE *curves;
    int64_t steps_per_epoch = (train->count + c->batch - 1) / c->batch, budget;
    int epoch, k, i;
    double t0 = nn_seconds(), mean;
    if (!m) {
        fprintf(stderr, "%s: out of memory\n", o->name);
        exit(1);
    }
    budget = (int64_t)epochs * steps_per_epoch;
    if (c->steps > 0 && c->steps < budget) budget = c->steps;
    memset(&log, 0, sizeof log);
    log.variant = variant;
    log.losses = (float *)malloc((size_t)budget * sizeof(float));
    log.log_every = strcmp(variant, "lenet5") == 0 ? 100 : 10;
    log.images_per_step = c->batch;
    if (!log.losses) {
        fprintf(stderr, "%s: out of memory\n", o->name);
        exit(1);
    }
    memset(&p, 0, sizeof p);
    ex_run_begin(&ck, o, variant, m, &opt, NULL);
    ex_run_keep(&ck, "progress", &p, sizeof p);
    ex_run_keep(&ck, "losses", log.losses, (size_t)budget * sizeof(float));
    ex_run_resume(&ck);
    log.total = p.total;
    snprintf(file, sizeof file, "steps_%s.csv", variant);
    log.csv = ex_csv_open(o, file, "step,epoch,loss,loss_mean10");
    snprintf(file, sizeof file, "curves_%s.csv", variant);
    curves = ex_csv_open(o, file, "epoch,train_loss,train_acc,val_loss,val_acc,steps,seconds");
    fprintf(stderr, "[%s] %s: %d training images, %d test, %d epoch(s) of %lld steps%s, batch %d, Adam lr %g, %zu parameters\n",
            variant, c->dataset, train->count, test->count, epochs, (long long)steps_per_epoch,
            budget < (int64_t)epochs * steps_per_epoch ? " (stopped early by --steps)" : "", c->batch, (double)c->lr,
            nn_param_count(m));
    for (epoch = ex_run_epochs_done(&ck, &rng) + 1; epoch <= epochs && log.total < budget; epoch++) {
        double e0 = nn_seconds(), seconds;
        log.epoch = epoch;
        log.since = e0;
        ex_check(nn_train_epoch(m, &opt, train, c->batch, &rng, (int)MIN_OF(budget - log.total, steps_per_epoch), on_step,
                                &log, &p.run),
                 "training");
        seconds = nn_seconds() - e0;
        p.train_seconds += seconds;
        p.total = log.total;
        ex_check(nn_evaluate(m, test, &p.te), "test evaluation");
        fprintf(curves, "%d,%.6f,%.4f,%.6f,%.4f,%lld,%.3f\n", epoch, p.run.loss, p.run.accuracy, p.te.loss, p.te.accuracy,
                (long long)log.total, seconds);
        fflush(curves);
        fprintf(stderr, "[%s] epoch %2d  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  %.1fs\n", variant, epoch,
                p.run.loss, p.run.accuracy, p.te.loss, p.te.accuracy, seconds);
        ex_run_epoch_end(&ck, epoch, &rng);
    }
    epoch = ex_run_epochs_done(&ck, NULL) + 1;
    ex_run_end(&ck);
    ex_csv_close(curves);
    ex_csv_close(log.csv);
    /* the loss "after the same number of steps": the batch loss at step k, and the mean of the 10
       batch losses up to k (less noisy) */
    k = (int)MIN_OF((int64_t)c->compare_step, log.total);
    for (mean = 0.0, i = MAX_OF(0, k - 10); i < k; i++) mean += log.losses[i];
    res->compare_step = k;
    res->loss_at = log.losses[k - 1];
    res->mean_at = mean / (k - MAX_OF(0, k - 10));
    res->seconds = p.train_seconds;
    res->images_per_s = (double)log.total * c->batch / p.train_seconds;
    ex_result(o, variant,
              "dataset=%s epochs=%d steps=%lld compare_step=%d step_loss=%.4f step_loss_mean10=%.4f train_loss=%.4f "
              "train_acc=%.2f test_acc=%.2f test_loss=%.4f test_count=%d params=%zu images_per_s=%.1f train_seconds=%.2f "
              "seconds=%.2f",
              c->dataset, epoch - 1, (long long)log.total, k, res->loss_at, res->mean_at, p.run.loss, p.run.accuracy,
              p.te.accuracy, p.te.loss, test->count, nn_param_count(m), res->images_per_s, p.train_seconds, nn_seconds() - t0);
    free(log.losses);
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

/* ---- data --------------------------------------------------------------------------------- */
static void load_data(const ex_options *o, const config *c, nn_dataset *train, nn_dataset *test)
{
    if (strcmp(c->dataset, "fashion") == 0) {
        static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                       "t10k-labels-idx1-ubyte"};
        char path[1024];
        int i;
        for (i = 0; i < 4; i++) {
            FILE *probe;
            snprintf(path, sizeof path, "%s/%s", o->data_dir, names[i]);
            probe = fopen(path, "rb");
            if (!probe) {
                fprintf(stderr,
                        "%s: Fashion-MNIST not found in %s (missing %s). Run scripts/fetch_fashion.sh to fetch it "
                        "(`make data` fetches MNIST only).\n",
                        o->name, o->data_dir, names[i]);
                exit(1);
            }
            fclose(probe);
        }
    }
    ex_load_mnist(o, train, test);
}

int main(int argc, char **argv)
{
    static const char *summary =
        "Deep Learning Assignment 1, solution 4: LeNet-5 for 10 epochs against ResNet-18 for one epoch (3x3\n"
        "stride-1 stem, no max-pool, BasicBlocks [2,2,2,2], widths 64-512, batch norm, global average\n"
        "pooling) on MNIST or Fashion-MNIST: the loss of both after the same number of steps, and test\n"
        "accuracy. The report names no optimiser for them: Adam lr 1e-3, batch 64 and inputs normalised with\n"
        "mean 0.5, std 0.5, as its other network. --epochs sets LeNet-5's epochs. Writes steps_<variant>.csv\n"
        "and curves_<variant>.csv.";
    ex_options o;
    config c;
    nn_dataset train, test;
    outcome res[2];
    int ran[2] = {0, 0}, i, data_given = 0, batch_given = 0;
    ex_flag flags[] = {
        {"--dataset", EX_STRING, &c.dataset, "mnist|fashion (default mnist; fashion reads data/fashion unless --data)"},
        {"--variant", EX_STRING, &c.variant, "both|lenet5|resnet18 (default both)"},
        {"--steps", EX_INT, &c.steps, "N: stop each model after N steps (default 0: LeNet-5's epochs, ResNet-18's one)"},
        {"--compare-step", EX_INT, &c.compare_step, "K: report each model's loss at step K (default 100)"},
        {"--resnet-epochs", EX_INT, &c.resnet_epochs, "ResNet-18's epochs (default 1)"},
        {"--lr", EX_FLOAT, &c.lr, "Adam learning rate (default 0.001)"},
        {"--batch", EX_INT, &c.batch, "batch size (default 64)"},
        {"--test-count", EX_INT, &c.test_count, "N: evaluate on the first N test images (default 0: all 10 000)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.name = "lenet5_resnet18";
    o.epochs = 10;
    o.seed = 42;
    c.dataset = "mnist";
    c.variant = "both";
    c.lr = 1e-3f;
    c.batch = 64;
    c.compare_step = 100;
    c.resnet_epochs = 1;
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--data")) data_given = 1;
        else if (!strcmp(argv[i], "--batch")) batch_given = 1;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    {
        const char *bad = NULL;
        if (strcmp(c.dataset, "mnist") && strcmp(c.dataset, "fashion")) bad = "--dataset must be mnist or fashion";
        else if (strcmp(c.variant, "both") && strcmp(c.variant, "lenet5") && strcmp(c.variant, "resnet18"))
            bad = "--variant must be both, lenet5 or resnet18";
        else if (c.steps < 0) bad = "--steps must be 0 or more";
        else if (c.compare_step < 1) bad = "--compare-step must be positive";
        else if (c.resnet_epochs < 1) bad = "--resnet-epochs must be positive";
        else if (!(c.lr > 0.0f)) bad = "--lr must be positive";
        else if (c.batch < 1 || c.batch > 4096) bad = "--batch must be in [1, 4096]";
        else if (c.test_count < 0) bad = "--test-count must be 0 or more";
        if (bad) {
            fprintf(stderr, "%s: %s\n\n", o.name, bad);
            ex_usage(stderr, &o, summary, flags, n_flags);
            return 2;
        }
    }
    if (!data_given && strcmp(c.dataset, "fashion") == 0) o.data_dir = "data/fashion";
    load_data(&o, &c, &train, &test);
    /* transforms.Normalize((0.5,), (0.5,)) after ToTensor: x / 255 * 2 - 1 */
    nn_dataset_normalize(&train, 127.5, 127.5);
    nn_dataset_normalize(&test, 127.5, 127.5);
    if (o.quick) {
        /* a smoke test: LeNet-5 one epoch on 4 000 images, ResNet-18 2 steps of 16 images, 100 test images */
        if (!o.epochs_given) o.epochs = 1;
        ex_truncate(&train, 4000);
        if (!c.test_count) c.test_count = 100;
    }
    if (c.test_count) ex_truncate(&test, c.test_count);
    fprintf(stderr, "backend %s, %d thread(s)\n", nn_backend_name(), nn_threads());
    for (i = 0; i < 2; i++) {
        const char *variant = i == 0 ? "lenet5" : "resnet18";
        config run = c;
        if (strcmp(c.variant, "both") && strcmp(c.variant, variant)) continue;
        if (o.quick && i == 1 && !run.steps) run.steps = 2;
        if (o.quick && i == 1 && !batch_given) run.batch = 16;
        run_variant(&o, &run, variant, i == 0 ? o.epochs : c.resnet_epochs, &train, &test, &res[i]);
        ran[i] = 1;
    }
    if (ran[0] && ran[1]) {
        ex_result(&o, "compare",
                  "dataset=%s lenet5_step=%d resnet18_step=%d lenet5_loss=%.4f resnet18_loss=%.4f lenet5_loss_mean10=%.4f "
                  "resnet18_loss_mean10=%.4f",
                  c.dataset, res[0].compare_step, res[1].compare_step, res[0].loss_at, res[1].loss_at, res[0].mean_at,
                  res[1].mean_at);
        if (res[0].compare_step != res[1].compare_step)
            fprintf(stderr, "note: the two models were compared at different steps (%d, %d): one ran fewer steps\n",
                    res[0].compare_step, res[1].compare_step);
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
