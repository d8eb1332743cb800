/* bench/train_compare.c - nn.h's side of the end-to-end comparison with PyTorch
   (bench/pytorch/train_compare.py is the other side; scripts/bench_compare.sh runs both).

   Same data (MNIST, normalised by the training set's mean and standard deviation), models
   (bench/models.h), hyper-parameters and thread count as the PyTorch script:
     mlp_relu     784-64-32-10 ReLU, Adam 1e-3, batch 64      -> epoch time, test accuracy
     mlp_sigmoid  784-64-10 sigmoid, SGD lr 0.1, batch 32     -> epoch time, test accuracy
     lenet        LeNet-5, SGD lr 0.01 momentum 0.9, batch 64 -> epoch time, test accuracy
     resnet18     ResNet-18 (28x28), SGD lr 0.01 momentum 0.9, batch 64, a fixed number of
                  steps after warm-up steps                   -> training images per second
   Only training is timed (nn_fit's per-epoch wall time: shuffling, batching, forward, backward,
   update); the test evaluation afterwards is not. One machine-readable line per model:
     BENCH nnh <model> threads=<t> ... epoch_seconds=<s> epoch_cpu_seconds=<c> test_acc=<a>
     BENCH nnh resnet18 threads=<t> ... images_per_second=<x> step_cpu_seconds=<c>
   (cpu: the process's CPU time, all threads; with one thread it is a check on a busy machine,
   where wall time counts the time other processes held the core.)

   Usage: train_compare [--model NAME|all] [--threads T] [--epochs E] [--limit N]
                        [--resnet-steps S] [--warmup W] [--data DIR] [--seed S] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct settings {
    const char *model, *data;
    int threads, epochs, limit, resnet_steps, warmup;
    unsigned long seed;
} settings;

static void usage(FILE *to)
{
    fprintf(to, "usage: train_compare [options]\n"
                "  --model NAME      mlp_relu, mlp_sigmoid, lenet, resnet18 or all (default all)\n"
                "  --threads T       nn.h threads (default 1)\n"
                "  --epochs E        training epochs for the MLPs and LeNet (default 1)\n"
                "  --limit N         train on the first N training images (default 0: all 60000)\n"
                "  --resnet-steps S  timed ResNet-18 steps (default 10)\n"
                "  --warmup W        untimed ResNet-18 steps before them (default 2)\n"
                "  --data DIR        MNIST IDX files (default data/mnist)\n"
                "  --seed S          initialisation and shuffling seed (default 1)\n");
}

static int parse_int(const char *text, int minimum, int *out)
{
    char *end;
    long v;
    if (!text) return 0;
    v = strtol(text, &end, 10);
    if (*end || end == text || v < minimum || v > 1000000000L) return 0;
    *out = (int)v;
    return 1;
}

static void parse(int argc, char **argv, settings *s)
{
    int i, ok, seed = 1;
    s->model = "all";
    s->data = "data/mnist";
    s->threads = 1;
    s->epochs = 1;
    s->limit = 0;
    s->resnet_steps = 10;
    s->warmup = 2;
    for (i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--model")) ok = v != NULL, s->model = v;
        else if (!strcmp(a, "--data")) ok = v != NULL, s->data = v;
        else if (!strcmp(a, "--threads")) ok = parse_int(v, 1, &s->threads);
        else if (!strcmp(a, "--epochs")) ok = parse_int(v, 1, &s->epochs);
        else if (!strcmp(a, "--limit")) ok = parse_int(v, 0, &s->limit);
        else if (!strcmp(a, "--resnet-steps")) ok = parse_int(v, 1, &s->resnet_steps);
        else if (!strcmp(a, "--warmup")) ok = parse_int(v, 0, &s->warmup);
        else if (!strcmp(a, "--seed")) ok = parse_int(v, 0, &seed);
        else {
            fprintf(stderr, "train_compare: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
        if (!ok) {
            fprintf(stderr, "train_compare: bad or missing value for %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    s->seed = (unsigned long)seed;
    if (strcmp(s->model, "all") && !bm_find_model(s->model)) {
        fprintf(stderr, "train_compare: unknown model '%s'\n", s->model);
        usage(stderr);
        exit(2);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "train_compare: %s: %s\n", what, nn_last_error());
    exit(1);
}

static void load(const settings *s, nn_dataset *train, nn_dataset *test)
{
    char images[1024], labels[1024];
    double mean, std;
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte", s->data);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte", s->data);
    if (nn_mnist_load(images, labels, train) != NN_OK) die("MNIST training set (run `make data`)");
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", s->data);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", s->data);
    if (nn_mnist_load(images, labels, test) != NN_OK) die("MNIST test set");
    /* the full training set's statistics, whatever --limit keeps */
    nn_dataset_stats(train, &mean, &std);
    nn_dataset_normalize(train, mean, std);
    nn_dataset_normalize(test, mean, std);
    if (s->limit > 0 && s->limit < train->count) {
        nn_dataset head;
        if (nn_dataset_slice(train, 0, s->limit, &head) != NN_OK) die("subset");
        nn_dataset_free(train);
        *train = head;
    }
}

typedef struct epoch_log {
    const char *model;
    double seconds;
    int epochs;
} epoch_log;

static int on_epoch(const nn_epoch_report *r, void *user)
{
    epoch_log *log = (epoch_log *)user;
    log->seconds += r->seconds;
    log->epochs++;
    fprintf(stderr, "[nnh %s] epoch %d  train loss %.4f acc %.2f%%  %.2fs\n", log->model, r->epoch, r->train_loss,
            r->train_accuracy, r->seconds);
    return 0;
}

static void run_fit(const settings *s, const bm_model_spec *spec, const nn_dataset *train, const nn_dataset *test)
{
    nn_model *m = spec->build(s->seed, spec->batch);
    nn_optimizer opt;
    nn_fit_options fit;
    nn_metrics metrics;
    epoch_log log;
    clock_t cpu0;
    double cpu;
    if (!m) die(spec->name);
    opt = bm_optimizer(spec);
    fit = nn_fit_defaults(s->epochs, spec->batch);
    fit.seed = s->seed;
    fit.progress = 0;
    fit.on_epoch = on_epoch;
    memset(&log, 0, sizeof log);
    log.model = spec->name;
    fit.user = &log;
    cpu0 = clock();
    if (nn_fit(m, &opt, train, &fit, NULL) != NN_OK) die("training");
    cpu = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
    if (nn_evaluate(m, test, &metrics) != NN_OK) die("evaluation");
    printf("BENCH nnh %s threads=%d backend=%s epochs=%d train_samples=%d batch=%d epoch_seconds=%.3f "
           "epoch_cpu_seconds=%.3f test_acc=%.2f\n",
           spec->name, nn_threads(), nn_backend_name(), log.epochs, train->count, spec->batch,
           log.epochs ? log.seconds / log.epochs : 0.0, log.epochs ? cpu / log.epochs : 0.0, metrics.accuracy);
    fflush(stdout);
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

/* Timed steps on consecutive batches of the training set (cycling), after untimed warm-up. */
static void run_steps(const settings *s, const bm_model_spec *spec, const nn_dataset *train)
{
    const int batch = spec->batch, size = nn_dataset_sample_size(train);
    const int batches = train->count / batch;
    nn_model *m = spec->build(s->seed, batch);
    nn_optimizer opt;
    double t0 = 0.0, seconds, cpu;
    clock_t cpu0 = 0;
    float loss = 0.0f;
    int step;
    if (!m) die(spec->name);
    if (batches < 1) {
        fprintf(stderr, "train_compare: fewer than %d training images\n", batch);
        exit(1);
    }
    opt = bm_optimizer(spec);
    for (step = 0; step < s->warmup + s->resnet_steps; step++) {
        const int b = step % batches;
        if (step == s->warmup) {
            t0 = nn_seconds();
            cpu0 = clock();
        }
        if (nn_train_step(m, &opt, train->x + (size_t)b * batch * size, train->labels + (size_t)b * batch, NULL, batch,
                          &loss) != NN_OK)
            die("training step");
    }
    seconds = nn_seconds() - t0;
    cpu = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
    fprintf(stderr, "[nnh %s] %d steps in %.2fs, last loss %.4f\n", spec->name, s->resnet_steps, seconds, loss);
    printf("BENCH nnh %s threads=%d backend=%s steps=%d warmup=%d batch=%d step_seconds=%.4f "
           "step_cpu_seconds=%.4f images_per_second=%.2f\n",
           spec->name, nn_threads(), nn_backend_name(), s->resnet_steps, s->warmup, batch, seconds / s->resnet_steps,
           cpu / s->resnet_steps, (double)s->resnet_steps * batch / seconds);
    fflush(stdout);
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

int main(int argc, char **argv)
{
    settings s;
    nn_dataset train, test;
    int i;
    parse(argc, argv, &s);
    if (nn_set_threads(s.threads) != NN_OK) die("threads");
    load(&s, &train, &test);
    for (i = 0; i < BM_MODEL_COUNT; i++) {
        const bm_model_spec *spec = &bm_models[i];
        if (strcmp(s.model, "all") && strcmp(s.model, spec->name)) continue;
        if (!strcmp(spec->name, "resnet18"))
            run_steps(&s, spec, &train);
        else
            run_fit(&s, spec, &train, &test);
    }
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
