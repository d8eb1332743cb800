/* examples/common.h - what every example shares: the command line, MNIST loading, CSV files,
   RESULT lines and per-epoch logging. Each example is one C file that includes this after
   defining NN_IMPLEMENTATION; nothing here is part of the library. */
#ifndef NN_EXAMPLES_COMMON_H
#define NN_EXAMPLES_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdir, isatty */
#endif
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "nn.h"

#if defined(__GNUC__) || defined(__clang__)
#define EX_API static __attribute__((unused))
#else
#define EX_API static
#endif

/* ---- options ---------------------------------------------------------------------------- */
typedef struct ex_options {
    const char *name;     /* the example's name: results/<name>, RESULT <name> ... */
    const char *data_dir; /* --data DIR (default data/mnist) */
    const char *out_dir;  /* --out DIR (default results/<name>) */
    int epochs;           /* --epochs N (the example's default, or as given) */
    int epochs_given;     /* 1 when --epochs was on the command line */
    uint64_t seed;        /* --seed S */
    int threads;          /* --threads T (0: the library's default) */
    int quick;            /* --quick: a reduced run for smoke tests (< 15 s) */
    char out_buffer[512];
} ex_options;

/* --summary: ex_summary (and so ex_compile) prints each model's table. Set by ex_parse. */
static int ex_summary_requested;
/* --precision fp32|bf16: what ex_compile sets on each model (nn_set_precision). Set by ex_parse. */
static nn_precision ex_precision = NN_PRECISION_FP32;

typedef enum ex_flag_kind { EX_INT, EX_FLOAT, EX_DOUBLE, EX_STRING, EX_SWITCH, EX_INT_LIST } ex_flag_kind;

/* An example-specific flag. EX_SWITCH sets an int to 1; EX_INT_LIST parses "5,25,50" into an
   ex_int_list. */
typedef struct ex_flag {
    const char *name; /* "--lr" */
    ex_flag_kind kind;
    void *value;
    const char *help; /* one line, with the default */
} ex_flag;

#define EX_MAX_LIST 32
typedef struct ex_int_list { int count; int values[EX_MAX_LIST]; } ex_int_list;

EX_API void ex_usage(FILE *to, const ex_options *o, const char *summary, const ex_flag *flags, int n_flags)
{
    int i;
    fprintf(to, "usage: %s [options]\n%s\n\ncommon options:\n", o->name, summary);
    fprintf(to, "  --help            this text\n");
    fprintf(to, "  --data DIR        MNIST directory (default data/mnist; `make data` fetches it)\n");
    fprintf(to, "  --out DIR         where CSV files go (default results/%s)\n", o->name);
    fprintf(to, "  --epochs N        training epochs (default %d)\n", o->epochs);
    fprintf(to, "  --seed S          random seed (default %llu)\n", (unsigned long long)o->seed);
    fprintf(to, "  --threads T       kernel threads (default: NN_THREADS or all cores)\n");
    fprintf(to, "  --quick           a reduced run (fewer epochs, a subset) for smoke tests\n");
    fprintf(to, "  --summary         print each model's layer table (nn_model_summary) on stdout before training\n");
    fprintf(to, "  --precision P     fp32 (default) or bf16: linear and conv products in bf16, as PyTorch's autocast\n");
    if (n_flags) fprintf(to, "\n%s options:\n", o->name);
    for (i = 0; i < n_flags; i++) fprintf(to, "  %-17s %s\n", flags[i].name, flags[i].help);
}

EX_API int ex_parse_int(const char *text, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

EX_API int ex_parse_double(const char *text, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

EX_API int ex_parse_list(const char *text, ex_int_list *list)
{
    char buf[512], *p, *comma;
    if (strlen(text) >= sizeof buf) return 0;
    strcpy(buf, text);
    list->count = 0;
    for (p = buf; p; p = comma ? comma + 1 : NULL) {
        int v;
        comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (list->count == EX_MAX_LIST || !ex_parse_int(p, &v) || v <= 0) return 0;
        list->values[list->count++] = v;
    }
    return list->count > 0;
}

/* Parses argv. Defaults must be set in *o (name, epochs, seed) and in the flags' values.
   --help prints usage and exits 0; anything wrong prints the reason and usage, exits 2. */
EX_API void ex_parse(int argc, char **argv, ex_options *o, const char *summary, const ex_flag *flags, int n_flags)
{
    int i, j;
    if (!o->data_dir) o->data_dir = "data/mnist";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes_value = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            ex_usage(stdout, o, summary, flags, n_flags);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
            takes_value = 0;
        } else if (!strcmp(a, "--summary")) {
            ex_summary_requested = 1;
            takes_value = 0;
        } else if (!strcmp(a, "--data")) {
            o->data_dir = v;
        } else if (!strcmp(a, "--out")) {
            o->out_dir = v;
        } else if (!strcmp(a, "--epochs")) {
            ok = v && ex_parse_int(v, &o->epochs) && o->epochs > 0;
            o->epochs_given = 1;
        } else if (!strcmp(a, "--seed")) {
            double s;
            ok = v && ex_parse_double(v, &s) && s >= 0 && s == floor(s) && s < 1.8e19;
            if (ok) o->seed = (uint64_t)s;
        } else if (!strcmp(a, "--threads")) {
            ok = v && ex_parse_int(v, &o->threads) && o->threads > 0;
        } else if (!strcmp(a, "--precision")) {
            ok = v && (!strcmp(v, "fp32") || !strcmp(v, "bf16"));
            if (ok) ex_precision = !strcmp(v, "bf16") ? NN_PRECISION_BF16 : NN_PRECISION_FP32;
        } else {
            for (j = 0; j < n_flags; j++)
                if (!strcmp(a, flags[j].name)) break;
            if (j == n_flags) {
                fprintf(stderr, "%s: unknown option '%s'\n\n", o->name, a);
                ex_usage(stderr, o, summary, flags, n_flags);
                exit(2);
            }
            switch (flags[j].kind) {
            case EX_SWITCH: *(int *)flags[j].value = 1; takes_value = 0; break;
            case EX_INT: ok = v && ex_parse_int(v, (int *)flags[j].value); break;
            case EX_FLOAT: {
                double d;
                ok = v && ex_parse_double(v, &d) && fabs(d) <= FLT_MAX;
                if (ok) *(float *)flags[j].value = (float)d;
                break;
            }
            case EX_DOUBLE: ok = v && ex_parse_double(v, (double *)flags[j].value); break;
            case EX_STRING: ok = v != NULL; if (ok) *(const char **)flags[j].value = v; break;
            case EX_INT_LIST: ok = v && ex_parse_list(v, (ex_int_list *)flags[j].value); break;
            }
        }
        if (takes_value && !v) ok = 0;
        if (!ok) {
            fprintf(stderr, "%s: bad or missing value for %s%s%s\n\n", o->name, a, v ? ": " : "", v ? v : "");
            ex_usage(stderr, o, summary, flags, n_flags);
            exit(2);
        }
        if (takes_value) i++;
    }
    if (!o->out_dir) {
        snprintf(o->out_buffer, sizeof o->out_buffer, "results/%s", o->name);
        o->out_dir = o->out_buffer;
    }
    if (o->threads > 0 && nn_set_threads(o->threads) != NN_OK) {
        fprintf(stderr, "%s: %s\n", o->name, nn_last_error());
        exit(2);
    }
}

/* Ends the program on a library error: message on stderr, exit status 1. */
EX_API void ex_check(nn_status status, const char *what)
{
    if (status != NN_OK) {
        fprintf(stderr, "error: %s: %s\n", what, nn_last_error());
        exit(1);
    }
}

/* ---- models ----------------------------------------------------------------------------- */
/* With --summary: nn_model_summary's table of model m under a title, on stdout, once per distinct
   table (an example that trains the same model several times prints it once). */
EX_API void ex_summary(const nn_model *m, const char *title)
{
    static uint64_t printed[64];
    static int n_printed;
    uint64_t hash = 14695981039346656037ull; /* FNV-1a of the text */
    size_t length = 0, i;
    char *text;
    int k;
    if (!ex_summary_requested) return;
    ex_check(nn_model_summary(m, NULL, 0, &length), "model summary");
    text = (char *)malloc(length + 1);
    if (!text) {
        fprintf(stderr, "error: out of memory for the model summary\n");
        exit(1);
    }
    ex_check(nn_model_summary(m, text, length + 1, NULL), "model summary");
    for (i = 0; i < length; i++) hash = (hash ^ (unsigned char)text[i]) * 1099511628211ull;
    for (k = 0; k < n_printed && printed[k] != hash; k++) {}
    if (k == n_printed) {
        if (n_printed < 64) printed[n_printed++] = hash;
        printf("\n== %s\n%s\n", title, text);
        fflush(stdout);
    }
    free(text);
}

/* nn_set_precision (--precision) and nn_compile, or exit 1 with the library's message ("compile
   <title>: ..."); then ex_summary. */
EX_API void ex_compile(nn_model *m, nn_node *output, nn_loss loss, int max_batch, const char *title)
{
    char what[256];
    snprintf(what, sizeof what, "compile %s", title);
    ex_check(nn_set_precision(m, ex_precision), what);
    ex_check(nn_compile(m, output, loss, max_batch), what);
    ex_summary(m, title);
}

/* ---- data ------------------------------------------------------------------------------- */
/* Loads MNIST's training and test sets (pixel values 0..255). Missing files: a message that
   names `make data`, exit status 1. */
EX_API void ex_load_mnist(const ex_options *o, nn_dataset *train, nn_dataset *test)
{
    char images[1024], labels[1024];
    const char *names[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
                               {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    nn_dataset *out[2];
    int k;
    out[0] = train;
    out[1] = test;
    for (k = 0; k < 2; k++) {
        FILE *probe;
        if (!out[k]) continue;
        snprintf(images, sizeof images, "%s/%s", o->data_dir, names[k][0]);
        snprintf(labels, sizeof labels, "%s/%s", o->data_dir, names[k][1]);
        probe = fopen(images, "rb");
        if (!probe) {
            fprintf(stderr, "%s: MNIST not found in %s (missing %s). Run `make data` to fetch it.\n", o->name,
                    o->data_dir, names[k][0]);
            exit(1);
        }
        fclose(probe);
        if (nn_mnist_load(images, labels, out[k]) != NN_OK) {
            fprintf(stderr, "%s: %s\n", o->name, nn_last_error());
            exit(1);
        }
    }
}

/* MNIST scaled to [0, 1] (ToTensor), the 60 000 training images split into the first
   train_count (train) and the rest (val); exits 1 when the set does not have 60 000 images. */
EX_API void ex_load_mnist_split(const ex_options *o, int train_count, nn_dataset *train, nn_dataset *val,
                                nn_dataset *test)
{
    nn_dataset all;
    ex_load_mnist(o, &all, test);
    nn_dataset_scale(&all, 1.0 / 255.0);
    nn_dataset_scale(test, 1.0 / 255.0);
    if (all.count != 60000) {
        fprintf(stderr, "%s: expected 60 000 training images, found %d\n", o->name, all.count);
        exit(1);
    }
    ex_check(nn_dataset_slice(&all, 0, train_count, train), "split");
    ex_check(nn_dataset_slice(&all, train_count, all.count - train_count, val), "split");
    nn_dataset_free(&all);
}

/* A flag value that parsed but makes no sense: the reason and usage on stderr, exit 2. */
EX_API void ex_usage_error(const ex_options *o, const char *summary, const ex_flag *flags, int n_flags,
                           const char *reason)
{
    fprintf(stderr, "%s: %s\n\n", o->name, reason);
    ex_usage(stderr, o, summary, flags, n_flags);
    exit(2);
}

/* The first `count` samples of ds, in place (the rest are dropped). */
EX_API void ex_truncate(nn_dataset *ds, int count)
{
    nn_dataset head;
    if (count <= 0 || count >= ds->count) return;
    ex_check(nn_dataset_slice(ds, 0, count, &head), "subset");
    nn_dataset_free(ds);
    *ds = head;
}

/* ---- output ----------------------------------------------------------------------------- */
EX_API void ex_mkdirs(const char *path)
{
    char buf[1024];
    size_t i, n = strlen(path);
    if (n >= sizeof buf) return;
    strcpy(buf, path);
    for (i = 1; i <= n; i++)
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            mkdir(buf, 0777);
            buf[i] = c;
        }
}

/* Opens <out>/<file> for writing with the header line; exits 1 when it cannot. */
EX_API FILE *ex_csv_open(const ex_options *o, const char *file, const char *header)
{
    char path[1024];
    FILE *f;
    ex_mkdirs(o->out_dir);
    snprintf(path, sizeof path, "%s/%s", o->out_dir, file);
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", o->name, path, strerror(errno));
        exit(1);
    }
    fprintf(f, "%s\n", header);
    return f;
}

EX_API void ex_csv_close(FILE *f)
{
    if (f && fclose(f) != 0) {
        fprintf(stderr, "error: writing a CSV file failed\n");
        exit(1);
    }
}

/* "RESULT <example> <variant> key=value ..." on stdout: accuracies in percent with two decimals,
   losses with four, as the callers format them. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
EX_API void ex_result(const ex_options *o, const char *variant, const char *format, ...)
{
    va_list args;
    printf("RESULT %s %s ", o->name, variant);
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
}

/* Per-epoch log line on stderr. */
EX_API void ex_log_epoch(const char *variant, const nn_epoch_report *r)
{
    fprintf(stderr, "[%s] epoch %3d  train loss %.4f acc %6.2f%%", variant, r->epoch, r->train_loss, r->train_accuracy);
    if (r->val_loss != 0.0 || r->val_accuracy != 0.0)
        fprintf(stderr, "  val loss %.4f acc %6.2f%%", r->val_loss, r->val_accuracy);
    if (r->learning_rate > 0.0) fprintf(stderr, "  lr %.3g", r->learning_rate);
    fprintf(stderr, "  %.2fs\n", r->seconds);
}

#endif
