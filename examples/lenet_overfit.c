/* lenet_overfit: Project 3, part 2 - the LeNet of Homework 1 (conv 1->6 5x5, maxpool 2,
   ReLU, conv 6->16 5x5, maxpool 2, ReLU, dense 256-120-84-10 with ReLU: 44 426 parameters) trained
   with SGD and cross-entropy on the first 2 000 training images (variant first2000) and on all
   50 000 of MNIST's first 50 000 (variant full), validating on the last 10 000 after every epoch
   (curves_<variant>.csv). The report: 100 % training accuracy within 50 epochs on the full set,
   test accuracy 98.72 %, weights saved and loaded back, evaluated in eval mode.

   The report names SGD but not its settings: lr 0.01, momentum 0.9, batch 64 (Homework 1's LeNet
   run, the same network) are the defaults. Inputs are pixels / 255 (the report feeds part 1's
   arrays). */
#define NN_IMPLEMENTATION
#include "common.h"

#define TRAIN_SPLIT 50000

typedef struct config {
    float lr, momentum;
    int batch, small;
    const char *variant, *save, *load;
} config;

static nn_model *build(const ex_options *o, const config *c)
{
    nn_model *m = nn_model_new(o->seed);
    nn_node *x, *h;
    if (!m) {
        fprintf(stderr, "%s: out of memory\n", o->name);
        exit(1);
    }
    x = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, c->batch, "LeNet-5");
    return m;
}

/* What the RESULT line needs from the epochs (kept in checkpoints). */
typedef struct progress {
    nn_metrics tr, va;        /* the last epoch's evaluations */
    double best_val, train_seconds;
    int best_epoch, first_100;
} progress;

static void run_variant(const ex_options *o, const config *c, const char *variant, const nn_dataset *train,
                        const nn_dataset *val, const nn_dataset *test, int save_this)
{
    nn_model *m = build(o, c);
    nn_optimizer opt = nn_sgd(c->lr, c->momentum, 0.0f);
    nn_rng rng = nn_rng_new(o->seed);
    nn_metrics te, run;
    progress p;
    ex_run ck;
    double t0 = nn_seconds();
    char file[128];
    int epoch;
    FILE *f;
    memset(&p, 0, sizeof p);
    ex_run_begin(&ck, o, variant, m, &opt, NULL);
    ex_run_keep(&ck, "progress", &p, sizeof p);
    ex_run_resume(&ck);
    snprintf(file, sizeof file, "curves_%s.csv", variant);
    f = ex_csv_open(o, file, "epoch,train_loss,train_acc,val_loss,val_acc,batch_loss,batch_acc,seconds");
    fprintf(stderr, "[%s] %d training images, %d validation, %d epochs, batch %d, SGD lr %g momentum %g, %zu parameters\n",
            variant, train->count, val->count, o->epochs, c->batch, (double)c->lr, (double)c->momentum, nn_param_count(m));
    for (epoch = ex_run_epochs_done(&ck, &rng) + 1; epoch <= o->epochs; epoch++) {
        nn_metrics tr, va;
        double te0 = nn_seconds(), seconds;
        ex_check(nn_train_epoch(m, &opt, train, c->batch, &rng, 0, NULL, NULL, &run), "training");
        seconds = nn_seconds() - te0;
        p.train_seconds += seconds;
        /* accuracy over the whole training set at the epoch's end, in eval mode */
        ex_check(nn_evaluate(m, train, &tr), "evaluation (train)");
        ex_check(nn_evaluate(m, val, &va), "evaluation (validation)");
        if (va.accuracy > p.best_val) p.best_val = va.accuracy, p.best_epoch = epoch;
        if (!p.first_100 && tr.correct == tr.count) p.first_100 = epoch;
        p.tr = tr;
        p.va = va;
        fprintf(f, "%d,%.6f,%.4f,%.6f,%.4f,%.6f,%.4f,%.4f\n", epoch, tr.loss, tr.accuracy, va.loss, va.accuracy, run.loss,
                run.accuracy, seconds);
        fflush(f);
        fprintf(stderr, "[%s] epoch %3d  train loss %.4f acc %6.2f%%  val loss %.4f acc %6.2f%%  %.2fs\n", variant, epoch,
                tr.loss, tr.accuracy, va.loss, va.accuracy, seconds);
        ex_run_epoch_end(&ck, epoch, &rng);
    }
    ex_run_end(&ck);
    ex_csv_close(f);
    ex_check(nn_evaluate(m, test, &te), "test evaluation");
    /* first_100_epoch: the first epoch after which every training image was classified right (0: never) */
    ex_result(o, variant,
              "epochs=%d train_count=%d train_acc=%.2f val_acc=%.2f test_acc=%.2f train_loss=%.4f val_loss=%.4f "
              "test_loss=%.4f best_val_acc=%.2f best_epoch=%d first_100_epoch=%d params=%zu train_seconds=%.2f seconds=%.2f",
              o->epochs, train->count, p.tr.accuracy, p.va.accuracy, te.accuracy, p.tr.loss, p.va.loss, te.loss, p.best_val,
              p.best_epoch, p.first_100, nn_param_count(m), p.train_seconds, nn_seconds() - t0);
    if (save_this && c->save) {
        ex_check(nn_save(m, c->save), "save");
        fprintf(stderr, "[%s] saved the trained network to %s\n", variant, c->save);
    }
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

int main(int argc, char **argv)
{
    static const char *summary =
        "Project 3, part 2: Homework 1's LeNet (44 426 parameters), SGD + cross-entropy, trained on the first\n"
        "2 000 and on all of MNIST's first 50 000 training images (the last 10 000 validate); train and\n"
        "validation accuracy per epoch, test accuracy, save/load. The report gives no SGD settings or epoch\n"
        "count: lr 0.01, momentum 0.9, batch 64 as Homework 1, 50 epochs (the report: 100 % train accuracy\n"
        "within 50). Inputs are pixels / 255. Writes curves_<variant>.csv.";
    ex_options o;
    config c;
    nn_dataset train, val, test, small;
    ex_flag flags[] = {
        {"--variant", EX_STRING, &c.variant, "both|full|first2000 (default both)"},
        {"--lr", EX_FLOAT, &c.lr, "SGD learning rate (default 0.01)"},
        {"--momentum", EX_FLOAT, &c.momentum, "SGD momentum (default 0.9)"},
        {"--batch", EX_INT, &c.batch, "batch size (default 64)"},
        {"--small", EX_INT, &c.small, "images in the small training set (default 2000)"},
        {"--save", EX_STRING, &c.save, "FILE: save the trained network (the full variant's) with nn_save"},
        {"--load", EX_STRING, &c.load, "FILE: load a saved network and evaluate it on the test set (eval mode)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    int i;
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.name = "lenet_overfit";
    o.epochs = 50;
    o.seed = 42;
    c.lr = 0.01f;
    c.momentum = 0.9f;
    c.batch = 64;
    c.small = 2000;
    c.variant = "both";
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    {
        const char *bad = NULL;
        if (strcmp(c.variant, "both") && strcmp(c.variant, "full") && strcmp(c.variant, "first2000"))
            bad = "--variant must be both, full or first2000";
        else if (!(c.lr > 0.0f)) bad = "--lr must be positive";
        else if (!(c.momentum >= 0.0f && c.momentum < 1.0f)) bad = "--momentum must be in [0, 1)";
        else if (c.batch < 1 || c.batch > 65536) bad = "--batch must be in [1, 65536]";
        else if (c.small < 1 || c.small > TRAIN_SPLIT) bad = "--small must be in [1, 50000]";
        else if ((c.save && !*c.save) || (c.load && !*c.load)) bad = "--save/--load need a file name";
        if (bad) ex_usage_error(&o, summary, flags, n_flags, bad);
    }
    ex_load_mnist_split(&o, TRAIN_SPLIT, &train, &val, &test);
    if (o.quick) {
        /* a smoke test: 2 epochs, the full variant on the first 4 000 images, 2 000 validation images */
        if (!o.epochs_given) o.epochs = 2;
        ex_truncate(&train, 4000);
        ex_truncate(&val, 2000);
    }
    fprintf(stderr, "backend %s, %d thread(s)\n", nn_backend_name(), nn_threads());

    if (c.load) {
        nn_model *m = build(&o, &c);
        nn_metrics te;
        double t0 = nn_seconds();
        ex_check(nn_load(m, c.load), "load");
        ex_check(nn_evaluate(m, &test, &te), "test evaluation"); /* nn_evaluate runs in NN_EVAL mode */
        ex_result(&o, "loaded", "test_acc=%.2f test_loss=%.4f params=%zu seconds=%.2f", te.accuracy, te.loss,
                  nn_param_count(m), nn_seconds() - t0);
        nn_model_free(m);
    } else {
        int both = strcmp(c.variant, "both") == 0;
        for (i = 0; i < 2; i++) {
            const char *variant = i == 0 ? "first2000" : "full";
            if (!both && strcmp(c.variant, variant)) continue;
            if (i == 0) {
                ex_check(nn_dataset_slice(&train, 0, c.small < train.count ? c.small : train.count, &small), "subset");
                run_variant(&o, &c, variant, &small, &val, &test, !both);
                nn_dataset_free(&small);
            } else {
                run_variant(&o, &c, variant, &train, &val, &test, 1);
            }
        }
    }
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    nn_dataset_free(&test);
    return 0;
}
