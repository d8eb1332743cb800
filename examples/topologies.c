/* topologies: TDT4265 Assignment 2, task 4. The tricks-of-the-trade network with every trick on
   (fan-in initialisation, 1.7159 tanh(2x/3), momentum 0.9 with lr 0.02) and five hidden topologies:
   64, 32, 128, 60-60 and ten layers of 64; accuracy, loss, and the time per epoch. */
#define NN_IMPLEMENTATION
#include "common.h"
#include "tricks_common.h"

static const char *summary =
    "TDT4265 Assignment 2 (task 4): 784-H-10 networks with all three tricks (N(0, 1/fan_in) weights,\n"
    "1.7159 tanh(2x/3), SGD lr 0.02 with momentum 0.9), batch 32, on the first 20 000 training\n"
    "images normalised with the training pixels' mean/std, validating on the 10 000 test images 5\n"
    "times per epoch, early stopping after 50 checks without a better validation loss (at most\n"
    "50 epochs). Hidden layers: h64, h32, h128, h2x60 (60-60: 51 300 parameters) and h10x64.\n"
    "Only the first layer has a bias (the course's bias trick). Reports seconds_per_epoch\n"
    "(training only, validation passes excluded). Writes <out>/<variant>.csv, a row per\n"
    "validation check.\n"
    "Runs on 1 thread unless --threads or NN_THREADS says otherwise (layers this small lose time\n"
    "to thread wake-ups).\n"
    "--quick: 2 000 training and 2 000 validation images, 2 epochs.";

typedef struct topology { const char *variant; int n; int width[TRICKS_MAX_HIDDEN]; } topology;

int main(int argc, char **argv)
{
    static const topology topologies[] = {
        {"h64", 1, {64}}, {"h32", 1, {32}}, {"h128", 1, {128}}, {"h2x60", 2, {60, 60}},
        {"h10x64", 10, {64, 64, 64, 64, 64, 64, 64, 64, 64, 64}},
    };
    const int n_topologies = (int)(sizeof topologies / sizeof topologies[0]);
    ex_options o = {0};
    nn_dataset train, val;
    double mean, std, spe_h64 = 0.0, spe_h10x64 = 0.0;
    const char *only = "all";
    int patience = 50, batch = 32, i, j, ran = 0;
    ex_flag flags[] = {
        {"--variant", EX_STRING, &only, "h64|h32|h128|h2x60|h10x64|all (default all)"},
        {"--patience", EX_INT, &patience, "validation checks without improvement before stopping (default 50; 0 = never)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 32)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    o.name = "topologies";
    o.epochs = 50;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    if (patience < 0 || batch <= 0) {
        ex_usage_error(&o, summary, flags, n_flags, "--patience must be >= 0 and --batch > 0");
    }
    for (i = 0; i < n_topologies; i++)
        if (!strcmp(only, "all") || !strcmp(only, topologies[i].variant)) break;
    if (i == n_topologies) {
        fprintf(stderr, "topologies: unknown variant '%s'\n\n", only);
        ex_usage(stderr, &o, summary, flags, n_flags);
        return 2;
    }
    if (o.quick && !o.epochs_given) o.epochs = 2;

    tricks_load(&o, &train, &val, &mean, &std);
    fprintf(stderr, "backend %s, %d thread(s); %d training images, %d validation images, at most %d epochs\n",
            nn_backend_name(), nn_threads(), train.count, val.count, o.epochs);
    for (i = 0; i < n_topologies; i++) {
        tricks_config c;
        tricks_outcome r;
        if (strcmp(only, "all") && strcmp(only, topologies[i].variant)) continue;
        memset(&c, 0, sizeof c);
        c.variant = topologies[i].variant;
        c.n_hidden = topologies[i].n;
        for (j = 0; j < c.n_hidden; j++) c.hidden[j] = topologies[i].width[j];
        c.improved_init = 1;
        c.improved_sigmoid = 1;
        c.momentum = 0.9f;
        c.learning_rate = 0.02f;
        r = tricks_run(&o, &c, &train, &val, batch, patience);
        if (!strcmp(c.variant, "h64")) spe_h64 = r.seconds_per_epoch;
        if (!strcmp(c.variant, "h10x64")) spe_h10x64 = r.seconds_per_epoch;
        ex_result(&o, c.variant,
                  "train_loss=%.4f val_loss=%.4f train_acc=%.2f val_acc=%.2f epochs=%d steps=%lld params=%zu "
                  "stopped_early=%d seconds_per_epoch=%.3f seconds=%.2f",
                  r.train.loss, r.val.loss, r.train.accuracy, r.val.accuracy, r.fit.epochs, (long long)r.fit.steps,
                  r.params, r.fit.stopped_early, r.seconds_per_epoch, r.fit.seconds);
        ran++;
    }
    if (spe_h64 > 0.0 && spe_h10x64 > 0.0)
        ex_result(&o, "time_ratio", "h10x64_over_h64=%.2f", spe_h10x64 / spe_h64);
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    return ran ? 0 : 1;
}
