/* tricks_of_trade: TDT4265 Assignment 2, tasks 2-3. Pre-processing (the training pixels' mean and
   std), then a 784-64-10 sigmoid MLP trained with SGD and early stopping, alone and with each of
   LeCun's "tricks of the trade": fan-in weight initialisation, the improved sigmoid
   1.7159 tanh(2x/3), and momentum. */
#define NN_IMPLEMENTATION
#include "common.h"
#include "tricks_common.h"

static const char *summary =
    "TDT4265 Assignment 2 (tasks 2-3): normalises MNIST with the training pixels' mean/std, then trains\n"
    "784-64-10 (sigmoid hidden, softmax + cross-entropy, bias on the first layer only: 50 880\n"
    "parameters) with SGD lr 0.1, batch 32, reshuffled each epoch, weights U(-1, 1), on the first\n"
    "20 000 training images, validating on the 10 000 test images 5 times per epoch and stopping\n"
    "after 50 checks without a better validation loss (at most 50 epochs). Variants: base,\n"
    "improved_init (N(0, 1/fan_in)), improved_sigmoid (1.7159 tanh(2x/3)), momentum (0.9 with\n"
    "lr 0.02), each trick alone on the base. Writes <out>/<variant>.csv, a row per validation\n"
    "check.\n"
    "Runs on 1 thread unless --threads or NN_THREADS says otherwise (layers this small lose time\n"
    "to thread wake-ups).\n"
    "--quick: 2 000 training and 2 000 validation images, 3 epochs.";

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, val;
    double mean, std;
    const char *only = "all";
    int patience = 50, batch = 32, i, ran = 0;
    tricks_config configs[4];
    ex_flag flags[] = {
        {"--variant", EX_STRING, &only, "base|improved_init|improved_sigmoid|momentum|all (default all)"},
        {"--patience", EX_INT, &patience, "validation checks without improvement before stopping (default 50; 0 = never)"},
        {"--batch", EX_INT, &batch, "minibatch size (default 32)"},
    };
    o.name = "tricks_of_trade";
    o.epochs = 50;
    o.seed = 42;
    ex_parse(argc, argv, &o, summary, flags, (int)(sizeof flags / sizeof flags[0]));
    if (patience < 0 || batch <= 0) {
        fprintf(stderr, "tricks_of_trade: --patience must be >= 0 and --batch > 0\n\n");
        ex_usage(stderr, &o, summary, flags, (int)(sizeof flags / sizeof flags[0]));
        return 2;
    }
    if (o.quick && !o.epochs_given) o.epochs = 3;

    memset(configs, 0, sizeof configs);
    for (i = 0; i < 4; i++) {
        configs[i].hidden[0] = 64;
        configs[i].n_hidden = 1;
        configs[i].learning_rate = 0.1f;
    }
    configs[0].variant = "base";
    configs[1].variant = "improved_init";
    configs[1].improved_init = 1;
    configs[2].variant = "improved_sigmoid";
    configs[2].improved_sigmoid = 1;
    configs[3].variant = "momentum";
    configs[3].momentum = 0.9f;
    configs[3].learning_rate = 0.02f;
    for (i = 0; i < 4; i++)
        if (!strcmp(only, "all") || !strcmp(only, configs[i].variant)) break;
    if (i == 4) {
        fprintf(stderr, "tricks_of_trade: unknown variant '%s'\n\n", only);
        ex_usage(stderr, &o, summary, flags, (int)(sizeof flags / sizeof flags[0]));
        return 2;
    }

    tricks_load(&o, &train, &val, &mean, &std);
    ex_result(&o, "preprocess", "mean=%.15g std=%.15g", mean, std);
    fprintf(stderr, "backend %s, %d thread(s); %d training images, %d validation images, at most %d epochs\n",
            nn_backend_name(), nn_threads(), train.count, val.count, o.epochs);
    for (i = 0; i < 4; i++) {
        tricks_outcome r;
        if (strcmp(only, "all") && strcmp(only, configs[i].variant)) continue;
        r = tricks_run(&o, &configs[i], &train, &val, batch, patience);
        ex_result(&o, configs[i].variant,
                  "train_loss=%.4f val_loss=%.4f train_acc=%.2f val_acc=%.2f epochs=%d steps=%lld params=%zu "
                  "stopped_early=%d seconds=%.2f",
                  r.train.loss, r.val.loss, r.train.accuracy, r.val.accuracy, r.fit.epochs, (long long)r.fit.steps,
                  r.params, r.fit.stopped_early, r.fit.seconds);
        ran++;
    }
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    return ran ? 0 : 1;
}
