/* serve_mnist: inference from many threads on one model, through inference contexts
   (nn_context: each thread its own activations and workspace, the parameters shared).

   The model: a model file (--model FILE, rebuilt by nn_model_load), or a safetensors file loaded
   (strict) into LeNet or the 784-64-32-10 MLP built in code (--safetensors FILE --arch lenet|mlp;
   docs/interop.md writes one from PyTorch); with neither, the --arch network is trained here
   first (Adam 1e-3, batch 64, --epochs on the 60 000 training images; one epoch of 10 000 with
   --quick) and saved as <out>/<arch>.nn and <out>/<arch>.safetensors for a later run to serve.

   Then it classifies MNIST's 10 000 test images --passes times in batches of --batch, first from
   one thread, then from T threads (--threads, default nn_threads()): every thread owns an
   nn_context on the one model and takes the next batch from a shared atomic counter. It prints
   the throughput and accuracy of both runs, and exits 1 unless every batch the T threads served
   gave bit for bit the probabilities of the one-thread run.

   Inputs are pixels / 255 (torchvision's ToTensor), as PyTorch models trained on ToTensor's
   images expect. The MLP's linear layers are named "1", "3" and "5", the names
   torch.nn.Sequential(Flatten, Linear, ReLU, Linear, ReLU, Linear) gives them; LeNet keeps
   nn.h's default names (conv2d1, conv2d2, linear1, linear2, linear3). */
#define NN_IMPLEMENTATION
#include "common.h"
#include <pthread.h>

#define MAX_THREADS 256

typedef struct server {
    nn_model *model;
    const nn_dataset *test;
    int batch, batches, passes;  /* batch size, batches per pass over the test set, passes */
    float *reference;            /* [test count][outputs]: the one-thread run's probabilities */
    int write_reference;         /* the one-thread run: its first pass writes reference, later ones compare */
    int next;                    /* the next batch (of passes * batches), taken with an atomic add */
} server;

typedef struct worker {
    server *server;
    nn_context *context;
    float *out;                  /* [batch][outputs] */
    int batches, correct;        /* batches served; right answers in the first pass */
    int mismatches;              /* samples whose probabilities differ from the reference */
    nn_status status;
    char error[512];             /* nn_last_error() of the failure (thread-local, so copied here) */
    pthread_t thread;
} worker;

/* the index of the largest value, the first one on a tie (nn_predict_classes's rule) */
static int argmax(const float *v, int n)
{
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static void *serve(void *arg)
{
    worker *w = (worker *)arg;
    server *s = w->server;
    const int inputs = nn_input_size(s->model), outputs = nn_output_size(s->model);
    const size_t row = (size_t)outputs * sizeof(float);
    for (;;) {
        const int k = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED);
        int pass, first, count, i;
        float *reference;
        if (k >= s->passes * s->batches) break;
        pass = k / s->batches;
        first = (k % s->batches) * s->batch;
        count = s->test->count - first < s->batch ? s->test->count - first : s->batch;
        w->status = nn_context_predict(w->context, s->test->x + (size_t)first * inputs, count, w->out);
        if (w->status != NN_OK) {
            snprintf(w->error, sizeof w->error, "%s", nn_last_error());
            break;
        }
        w->batches++;
        reference = s->reference + (size_t)first * outputs;
        if (s->write_reference && pass == 0) memcpy(reference, w->out, (size_t)count * row);
        else
            for (i = 0; i < count; i++) w->mismatches += memcmp(reference + (size_t)i * outputs, w->out + (size_t)i * outputs, row) != 0;
        if (pass == 0)
            for (i = 0; i < count; i++) w->correct += argmax(w->out + (size_t)i * outputs, outputs) == s->test->labels[first + i];
    }
    return NULL;
}

typedef struct run_result {
    double seconds, images_per_second, accuracy;
    int mismatches;
} run_result;

/* Serves every pass from `threads` threads (workers w[0..threads)); exits 1 on an error. */
static run_result run(const ex_options *o, server *s, worker *w, int threads, int write_reference)
{
    run_result r;
    double t0;
    int t, correct = 0;
    memset(&r, 0, sizeof r);
    s->next = 0;
    s->write_reference = write_reference;
    for (t = 0; t < threads; t++) {
        w[t].batches = w[t].correct = w[t].mismatches = 0;
        w[t].status = NN_OK;
    }
    t0 = nn_seconds();
    for (t = 0; t < threads; t++)
        if (pthread_create(&w[t].thread, NULL, serve, &w[t]) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", o->name, t);
            exit(1);
        }
    for (t = 0; t < threads; t++) pthread_join(w[t].thread, NULL);
    r.seconds = nn_seconds() - t0;
    fprintf(stderr, "%d thread(s): %.3f s, batches per thread:", threads, r.seconds);
    for (t = 0; t < threads; t++) {
        if (w[t].status != NN_OK) {
            fprintf(stderr, "\nerror: thread %d: %s\n", t, w[t].error);
            exit(1);
        }
        fprintf(stderr, " %d", w[t].batches);
        correct += w[t].correct;
        r.mismatches += w[t].mismatches;
    }
    fprintf(stderr, "\n");
    r.images_per_second = (double)s->passes * s->test->count / r.seconds;
    r.accuracy = 100.0 * correct / s->test->count;
    return r;
}

static nn_model *build(const ex_options *o, const char *arch, int max_batch)
{
    nn_model *m = nn_model_new(o->seed);
    nn_node *h;
    if (!m) {
        fprintf(stderr, "%s: out of memory\n", o->name);
        exit(1);
    }
    h = nn_input(m, 1, 28, 28);
    if (!strcmp(arch, "lenet")) {
        h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 6, 5, 1, 0, NN_BIAS), 2, 2));
        h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
        h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
        ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch, "LeNet");
    } else {
        nn_node *fc1 = nn_linear(m, h, 64, NN_BIAS), *fc2 = nn_linear(m, nn_relu(m, fc1), 32, NN_BIAS);
        nn_node *fc3 = nn_linear(m, nn_relu(m, fc2), 10, NN_BIAS);
        ex_check(nn_set_name(fc1, "1"), "naming the layers");
        ex_check(nn_set_name(fc2, "3"), "naming the layers");
        ex_check(nn_set_name(fc3, "5"), "naming the layers");
        ex_compile(m, fc3, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch, "784-64-32-10 MLP");
    }
    return m;
}

static int log_epoch(const nn_epoch_report *r, void *user)
{
    ex_log_epoch((const char *)user, r);
    return 0;
}

/* MNIST with pixels / 255, as nn_mnist_load_scaled (ToTensor) gives them */
static void scale_pixels(nn_dataset *ds)
{
    size_t i, n = (size_t)ds->count * (size_t)nn_dataset_sample_size(ds);
    for (i = 0; i < n; i++) ds->x[i] /= 255.0f;
}

int main(int argc, char **argv)
{
    static const char summary[] =
        "Classifies MNIST's test set from one thread, then from T threads (--threads T, default all cores),\n"
        "each with its own nn_context on one shared model; prints images/s and accuracy of both and checks\n"
        "that the T threads' probabilities equal the one thread's bit for bit (exit 1 otherwise). The model:\n"
        "--model FILE (nn_model_load), or --safetensors FILE --arch lenet|mlp, or else the --arch network\n"
        "trained here first and saved as <out>/<arch>.nn and <out>/<arch>.safetensors. Inputs: pixels / 255.";
    ex_options o;
    const char *model_path = NULL, *safetensors_path = NULL, *arch = "lenet", *source;
    int batch = 64, passes = 3, threads, t;
    ex_flag flags[] = {
        {"--model", EX_STRING, &model_path, "FILE: serve this model file (nn_model_load)"},
        {"--safetensors", EX_STRING, &safetensors_path, "FILE: load these weights (strict) into --arch built in code"},
        {"--arch", EX_STRING, &arch, "lenet|mlp: the network to build and load or train (default lenet)"},
        {"--batch", EX_INT, &batch, "images per inference batch (default 64)"},
        {"--passes", EX_INT, &passes, "passes over the test set per run (default 3; 1 with --quick)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    int passes_given = 0, i;
    nn_dataset test;
    nn_model *m;
    server s;
    worker *w;
    run_result one, many;

    memset(&o, 0, sizeof o);
    o.name = "serve_mnist";
    o.epochs = 1;
    o.seed = 42;
    for (i = 1; i < argc; i++) passes_given |= !strcmp(argv[i], "--passes");
    ex_parse(argc, argv, &o, summary, flags, n_flags);
    {
        const char *bad = NULL;
        if (strcmp(arch, "lenet") && strcmp(arch, "mlp")) bad = "--arch must be lenet or mlp";
        else if (model_path && safetensors_path) bad = "give --model or --safetensors, not both";
        else if ((model_path && !*model_path) || (safetensors_path && !*safetensors_path)) bad = "--model/--safetensors need a file name";
        else if (batch < 1 || batch > 10000) bad = "--batch must be in [1, 10000]";
        else if (passes < 1 || passes > 1000) bad = "--passes must be in [1, 1000]";
        else if (o.threads > MAX_THREADS) bad = "--threads must be at most 256";
        if (bad) ex_usage_error(&o, summary, flags, n_flags, bad);
    }
    if (o.quick && !passes_given) passes = 1;
    threads = o.threads > 0 ? o.threads : nn_threads();
    if (threads > MAX_THREADS) threads = MAX_THREADS;

    if (model_path) {
        source = "model";
        ex_check(nn_model_load(model_path, batch, &m), "loading the model");
        ex_summary(m, model_path);
    } else if (safetensors_path) {
        source = "safetensors";
        m = build(&o, arch, batch);
        ex_check(nn_load_safetensors(m, safetensors_path, NN_SAFETENSORS_STRICT, NULL, 0), "loading the weights");
    } else {
        nn_dataset train;
        nn_optimizer opt = nn_adam(1e-3f, 0.0f);
        nn_fit_options fit = nn_fit_defaults(o.epochs, 64);
        char path[1100];
        source = "trained";
        ex_load_mnist(&o, &train, NULL);
        scale_pixels(&train);
        if (o.quick) ex_truncate(&train, 10000);
        m = build(&o, arch, batch > 64 ? batch : 64);
        fit.seed = o.seed;
        fit.on_epoch = log_epoch;
        fit.user = (void *)arch;
        fprintf(stderr, "training %s: %d images, %d epoch(s), Adam 1e-3, batch 64\n", arch, train.count, o.epochs);
        {
            ex_run run; /* --checkpoint FILE / --resume, as every training example */
            ex_run_begin(&run, &o, NULL, m, &opt, NULL);
            ex_run_resume(&run);
            ex_run_fit(&run, &train, &fit, NULL);
        }
        ex_check(nn_set_meta(m, "input", "MNIST pixels / 255"), "metadata");
        ex_mkdirs(o.out_dir);
        snprintf(path, sizeof path, "%s/%s.nn", o.out_dir, arch);
        ex_check(nn_save(m, path), "saving the model");
        snprintf(path, sizeof path, "%s/%s.safetensors", o.out_dir, arch);
        ex_check(nn_save_safetensors(m, path), "saving the weights");
        fprintf(stderr, "saved %s/%s.nn and %s\n", o.out_dir, arch, path);
        nn_optimizer_free(&opt);
        nn_dataset_free(&train);
    }
    if (nn_input_size(m) != 28 * 28 || nn_output_size(m) != 10) {
        fprintf(stderr, "%s: the model takes %d values and gives %d; MNIST needs 784 and 10\n", o.name, nn_input_size(m),
                nn_output_size(m));
        return 1;
    }
    ex_load_mnist(&o, NULL, &test);
    scale_pixels(&test);

    memset(&s, 0, sizeof s);
    s.model = m;
    s.test = &test;
    s.batch = batch;
    s.batches = (test.count + batch - 1) / batch;
    s.passes = passes;
    s.reference = (float *)malloc((size_t)test.count * 10 * sizeof(float));
    w = (worker *)calloc((size_t)threads, sizeof *w);
    if (!s.reference || !w) {
        fprintf(stderr, "%s: out of memory\n", o.name);
        return 1;
    }
    for (t = 0; t < threads; t++) {
        w[t].server = &s;
        w[t].out = (float *)malloc((size_t)batch * 10 * sizeof(float));
        if (!w[t].out) {
            fprintf(stderr, "%s: out of memory\n", o.name);
            return 1;
        }
        ex_check(nn_context_new(m, &w[t].context), "nn_context_new");
    }
    fprintf(stderr, "serving %s (%s, %zu parameters): %d test images, %d pass(es), batch %d, backend %s\n",
            source, model_path ? model_path : safetensors_path ? safetensors_path : arch,
            nn_param_count(m), test.count, passes, batch, nn_backend_name());

    one = run(&o, &s, w, 1, 1);
    many = run(&o, &s, w, threads, 0);
    ex_result(&o, "single", "source=%s threads=1 batch=%d images=%d passes=%d accuracy=%.2f images_per_s=%.0f seconds=%.3f",
              source, batch, test.count, passes, one.accuracy, one.images_per_second, one.seconds);
    ex_result(&o, "parallel",
              "source=%s threads=%d batch=%d images=%d passes=%d accuracy=%.2f images_per_s=%.0f seconds=%.3f speedup=%.2f "
              "mismatches=%d",
              source, threads, batch, test.count, passes, many.accuracy, many.images_per_second, many.seconds,
              one.seconds / many.seconds, one.mismatches + many.mismatches);
    if (one.mismatches + many.mismatches)
        fprintf(stderr, "error: %d served predictions differ from the one-thread run's\n", one.mismatches + many.mismatches);

    for (t = 0; t < threads; t++) {
        nn_context_free(w[t].context);
        free(w[t].out);
    }
    free(w);
    free(s.reference);
    nn_model_free(m);
    nn_dataset_free(&test);
    return one.mismatches + many.mismatches ? 1 : 0;
}
