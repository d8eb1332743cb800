/* examples/common.h - what every example shares: the command line, MNIST loading, CSV files,
   RESULT lines and per-epoch logging. Each example is one C file that includes this after
   defining NN_IMPLEMENTATION; nothing here is part of the library. */
#ifndef NN_EXAMPLES_COMMON_H
#define NN_EXAMPLES_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdir, isatty, fileno, ftruncate */
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
#include <unistd.h>
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
    const char *checkpoint; /* --checkpoint FILE: checkpoints of the training (ex_run below), or NULL */
    int resume;           /* --resume: continue from the checkpoint if it exists */
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
    fprintf(to, "  --checkpoint FILE write a checkpoint at every epoch's end and at the end of training (FILE.<model>\n");
    fprintf(to, "                    for each model of an example that trains several)\n");
    fprintf(to, "  --resume          continue from the --checkpoint FILE if it exists (else start afresh): the same\n");
    fprintf(to, "                    results, CSV files and RESULT lines as a run never interrupted\n");
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
        } else if (!strcmp(a, "--resume")) {
            o->resume = 1;
            takes_value = 0;
        } else if (!strcmp(a, "--checkpoint")) {
            ok = v && *v;
            o->checkpoint = v;
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
    if (o->resume && !o->checkpoint) {
        fprintf(stderr, "%s: --resume needs --checkpoint FILE\n\n", o->name);
        ex_usage(stderr, o, summary, flags, n_flags);
        exit(2);
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

/* The CSV files open now. A checkpoint (ex_run below) records the length of each, and a resumed
   run cuts each back to the length its checkpoint recorded, so that rows written after that
   checkpoint are written again, once, and the files end as those of a run never interrupted. */
#define EX_MAX_CSV 16
typedef struct ex_csv_file {
    FILE *f;
    char path[1024], header[1024];
    int pending; /* opened with --resume before any checkpoint was read: kept as it is until one is */
} ex_csv_file;
static ex_csv_file ex_csvs[EX_MAX_CSV];
static char *ex_resumed_csvs;   /* "<length> <path>" lines of the checkpoint ex_run_resume read last, or NULL */
static int ex_resume_started;   /* ex_run_resume has run: a CSV opened now continues only if that checkpoint knows it */

/* The length the last checkpoint read recorded for path, or -1. */
static long ex_resumed_length(const char *path)
{
    const char *p = ex_resumed_csvs;
    const size_t n = strlen(path);
    while (p && *p) {
        char *end;
        const long length = strtol(p, &end, 10);
        const char *eol = strchr(end, '\n');
        if (*end == ' ' && eol && (size_t)(eol - end - 1) == n && !strncmp(end + 1, path, n)) return length;
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

/* Cuts the open CSV back to length bytes and writes on from there; exits 1 when the file holds
   fewer (it was changed or replaced since the checkpoint). */
static void ex_csv_cut(ex_csv_file *c, long length)
{
    long size = -1;
    if (fflush(c->f) != 0 || fseek(c->f, 0, SEEK_END) != 0 || (size = ftell(c->f)) < length) {
        fprintf(stderr, "error: --resume: %s holds %ld bytes, fewer than the %ld it held at the checkpoint (changed since?); "
                "remove the checkpoint to start afresh\n", c->path, size, length);
        exit(1);
    }
    if (ftruncate(fileno(c->f), (off_t)length) != 0 || fseek(c->f, length, SEEK_SET) != 0) {
        fprintf(stderr, "error: --resume: cannot cut %s back to %ld bytes: %s\n", c->path, length, strerror(errno));
        exit(1);
    }
    c->pending = 0;
}

/* Opens <out>/<file> for writing with the header line (with --resume, continues it where the
   checkpoint left it); exits 1 when it cannot. */
EX_API FILE *ex_csv_open(const ex_options *o, const char *file, const char *header)
{
    char path[1024];
    FILE *f = NULL;
    long length = -1;
    int k;
    ex_mkdirs(o->out_dir);
    snprintf(path, sizeof path, "%s/%s", o->out_dir, file);
    for (k = 0; k < EX_MAX_CSV && ex_csvs[k].f; k++) {}
    if (k == EX_MAX_CSV) {
        fprintf(stderr, "%s: more than %d CSV files open\n", o->name, EX_MAX_CSV);
        exit(1);
    }
    if (o->resume) {
        length = ex_resumed_length(path);
        if (length >= 0 || !ex_resume_started) f = fopen(path, "r+");
        if (!f && length > 0) {
            fprintf(stderr, "error: --resume: cannot open %s, which the checkpoint says held %ld bytes: %s\n", path, length,
                    strerror(errno));
            exit(1);
        }
    }
    ex_csvs[k].pending = f && length < 0;
    if (!f) {
        f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot write %s: %s\n", o->name, path, strerror(errno));
            exit(1);
        }
        fprintf(f, "%s\n", header);
    }
    ex_csvs[k].f = f;
    snprintf(ex_csvs[k].path, sizeof ex_csvs[k].path, "%s", path);
    snprintf(ex_csvs[k].header, sizeof ex_csvs[k].header, "%s", header);
    if (length >= 0) ex_csv_cut(&ex_csvs[k], length);
    else if (ex_csvs[k].pending) fseek(f, 0, SEEK_END);
    return f;
}

EX_API void ex_csv_close(FILE *f)
{
    int k;
    for (k = 0; f && k < EX_MAX_CSV; k++)
        if (ex_csvs[k].f == f) memset(&ex_csvs[k], 0, sizeof ex_csvs[k]);
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

/* ---- checkpoints: --checkpoint FILE and --resume ------------------------------------------
   A model's training run, checkpointed at every epoch's end and when it is finished, so that a
   program killed at any moment and started again with --resume ends with the same model, CSV files
   and RESULT lines as a run never interrupted (timings aside). The checkpoint (nn_checkpoint_save)
   holds the model, its optimizer, the run's position (nn_fit_state) and, in the model's metadata
   under "ex." keys (removed again after every save and load, so a model saved with nn_save has
   none): the example's own figures registered with ex_run_keep, the length of every open CSV file,
   and "ex.done" once the model's training is finished. An example that trains several models one
   after another gives each its own file, FILE.<tag>; a finished model's file makes a resumed run
   skip to its results (which it recomputes) and go on with the next model.
       ex_run run;
       ex_run_begin(&run, &o, "variant", m, &opt, NULL);    // tag NULL: FILE itself
       ex_run_keep(&run, "last", &last, sizeof last);      // plain data the results need
       ex_run_resume(&run);                                 // --resume and FILE exists: load it
       csv = ex_csv_open(&o, "variant.csv", header);        // after the resume: cut back to the checkpoint
       ex_run_fit(&run, &train, &fit, &res);                // nn_fit, checkpointing each epoch; or a loop:
       for (e = ex_run_epochs_done(&run, &rng) + 1; e <= o.epochs; e++) { ...; ex_run_epoch_end(&run, e, &rng); }
       ex_run_end(&run);                                    // (ex_run_fit calls it) the finished checkpoint */
#define EX_MAX_KEEP 8
#define EX_KEEP_CHUNK 30000 /* bytes per metadata value (as hex: 60000 of the 65535 a value may hold) */
typedef struct ex_run {
    const ex_options *o;
    char path[1024];            /* FILE or FILE.<tag>; "" without --checkpoint */
    char tag[64];
    nn_model *model;
    nn_optimizer *opt;
    nn_schedule *schedule;
    nn_fit_state state;         /* the run's position: nn_fit's, or a loop's epochs_done and shuffle generator */
    int resumed, finished;
    int no_save;                /* set: read a checkpoint but never write one (an MPI rank other than 0) */
    int keeps;
    const char *keep_name[EX_MAX_KEEP];
    void *keep_data[EX_MAX_KEEP];
    size_t keep_bytes[EX_MAX_KEEP];
    int (*on_epoch)(const nn_epoch_report *, void *); /* the example's nn_fit callbacks, while ex_run_fit wraps them */
    int (*on_check)(const nn_epoch_report *, void *);
    void *user;
} ex_run;

/* A run of model m with optimizer opt (and schedule, may be NULL); tag names the model in the
   file name (FILE.<tag>) and in messages, NULL for an example that trains one model. */
EX_API void ex_run_begin(ex_run *r, const ex_options *o, const char *tag, nn_model *m, nn_optimizer *opt, nn_schedule *schedule)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->model = m;
    r->opt = opt;
    r->schedule = schedule;
    snprintf(r->tag, sizeof r->tag, "%s", tag ? tag : o->name);
    if (o->checkpoint &&
        (size_t)snprintf(r->path, sizeof r->path, tag ? "%s.%s" : "%s", o->checkpoint, tag) >= sizeof r->path) {
        fprintf(stderr, "%s: --checkpoint: the file name is too long\n", o->name);
        exit(2);
    }
}

/* Registers bytes at data (plain data, no pointers) to be saved with every checkpoint and restored
   by ex_run_resume; name (letters, digits, '_') tells them apart. Before ex_run_resume. */
EX_API void ex_run_keep(ex_run *r, const char *name, void *data, size_t bytes)
{
    if (r->keeps == EX_MAX_KEEP || bytes == 0 || bytes > (size_t)EX_KEEP_CHUNK * 200) {
        fprintf(stderr, "%s: ex_run_keep(%s): more than %d regions, or an empty or oversized one\n", r->o->name, name, EX_MAX_KEEP);
        exit(1);
    }
    r->keep_name[r->keeps] = name;
    r->keep_data[r->keeps] = data;
    r->keep_bytes[r->keeps++] = bytes;
}

static void ex_run_set_meta(ex_run *r, const char *key, const char *value)
{
    if (nn_set_meta(r->model, key, value) != NN_OK) {
        fprintf(stderr, "error: checkpoint of %s: %s\n", r->tag, nn_last_error());
        exit(1);
    }
}

/* Puts the kept regions (as hex, in chunks "ex.<name>.<k>"), the open CSV files' lengths ("ex.csv")
   and the finished flag ("ex.done") into the model's metadata, for the checkpoint written next. */
static void ex_run_stash(ex_run *r)
{
    static const char hex[] = "0123456789abcdef";
    char key[64], *text = (char *)malloc(2 * EX_KEEP_CHUNK + 1), *csv = (char *)malloc(EX_MAX_CSV * 1100 + 1);
    size_t used = 0, at, i;
    int k, chunk;
    if (!text || !csv) {
        fprintf(stderr, "error: out of memory for a checkpoint\n");
        exit(1);
    }
    for (k = 0; k < r->keeps; k++)
        for (chunk = 0, at = 0; at < r->keep_bytes[k]; chunk++, at += EX_KEEP_CHUNK) {
            const unsigned char *p = (const unsigned char *)r->keep_data[k] + at;
            const size_t n = r->keep_bytes[k] - at < EX_KEEP_CHUNK ? r->keep_bytes[k] - at : EX_KEEP_CHUNK;
            for (i = 0; i < n; i++) {
                text[2 * i] = hex[p[i] >> 4];
                text[2 * i + 1] = hex[p[i] & 15];
            }
            text[2 * n] = 0;
            snprintf(key, sizeof key, "ex.%s.%d", r->keep_name[k], chunk);
            ex_run_set_meta(r, key, text);
        }
    csv[0] = 0;
    for (k = 0; k < EX_MAX_CSV; k++)
        if (ex_csvs[k].f && !ex_csvs[k].pending) {
            long length;
            if (fflush(ex_csvs[k].f) != 0 || (length = ftell(ex_csvs[k].f)) < 0) {
                fprintf(stderr, "error: writing %s failed\n", ex_csvs[k].path);
                exit(1);
            }
            used += (size_t)sprintf(csv + used, "%ld %s\n", length, ex_csvs[k].path);
        }
    ex_run_set_meta(r, "ex.csv", csv);
    if (r->finished) ex_run_set_meta(r, "ex.done", "1");
    free(text);
    free(csv);
}

/* Takes them out of the model's metadata again. */
static void ex_run_unstash(ex_run *r)
{
    char key[64];
    int k, chunk;
    for (k = 0; k < r->keeps; k++)
        for (chunk = 0;; chunk++) {
            snprintf(key, sizeof key, "ex.%s.%d", r->keep_name[k], chunk);
            if (!nn_get_meta(r->model, key)) break;
            ex_run_set_meta(r, key, NULL);
        }
    ex_run_set_meta(r, "ex.csv", NULL);
    ex_run_set_meta(r, "ex.done", NULL);
}

/* Writes the checkpoint now (nothing without --checkpoint). */
EX_API void ex_run_save(ex_run *r)
{
    nn_status st;
    if (!r->path[0] || r->no_save) return;
    ex_run_stash(r);
    st = nn_checkpoint_save(r->model, r->opt, r->schedule, &r->state, r->path);
    ex_run_unstash(r);
    if (st != NN_OK) {
        fprintf(stderr, "error: checkpoint of %s: %s\n", r->tag, nn_last_error());
        exit(1);
    }
}

/* The model's training is finished: a last checkpoint that says so. */
EX_API void ex_run_end(ex_run *r)
{
    r->finished = 1;
    ex_run_save(r);
}

/* With --resume and an existing checkpoint file: loads it into the model, optimizer, schedule and
   run state, restores the kept regions and cuts the open CSV files back (CSV files opened later
   are cut when they are opened), and returns 1. Otherwise a fresh start (CSV files kept open
   until now start again) and 0. A file that exists but does not fit is an error: its message on
   stderr, exit status 1, the file left as it is. */
EX_API int ex_run_resume(ex_run *r)
{
    FILE *probe;
    char key[64];
    const char *csv;
    int k, chunk;
    ex_resume_started = 1;
    free(ex_resumed_csvs);
    ex_resumed_csvs = NULL;
    errno = 0;
    probe = r->path[0] && r->o->resume ? fopen(r->path, "rb") : NULL;
    if (!probe && r->path[0] && r->o->resume && errno != ENOENT) {
        fprintf(stderr, "error: --resume: cannot read %s: %s\n", r->path, strerror(errno));
        exit(1);
    }
    if (!probe) {
        for (k = 0; k < EX_MAX_CSV; k++)
            if (ex_csvs[k].f && ex_csvs[k].pending) { /* nothing to continue: it starts again */
                ex_csv_cut(&ex_csvs[k], 0);
                fprintf(ex_csvs[k].f, "%s\n", ex_csvs[k].header);
            }
        return 0;
    }
    fclose(probe);
    if (nn_checkpoint_load(r->model, r->opt, r->schedule, &r->state, r->path) != NN_OK) {
        fprintf(stderr, "error: --resume: %s (remove the file to start afresh)\n", nn_last_error());
        exit(1);
    }
    for (k = 0; k < r->keeps; k++) {
        size_t at = 0, n, i;
        unsigned char *p = (unsigned char *)r->keep_data[k];
        const char *text;
        for (chunk = 0;; chunk++, at += n) {
            snprintf(key, sizeof key, "ex.%s.%d", r->keep_name[k], chunk);
            if (!(text = nn_get_meta(r->model, key))) break;
            n = strlen(text) / 2;
            if (at + n > r->keep_bytes[k]) break;
            for (i = 0; i < n; i++) {
                const char *hi = strchr("0123456789abcdef", text[2 * i]), *lo = strchr("0123456789abcdef", text[2 * i + 1]);
                p[at + i] = (unsigned char)((hi && *hi ? hi - "0123456789abcdef" : 0) * 16 + (lo && *lo ? lo - "0123456789abcdef" : 0));
            }
        }
        if (at != r->keep_bytes[k] || text) {
            fprintf(stderr, "error: --resume: %s holds no %s of %zu bytes (written by another example or command line?); "
                    "remove it to start afresh\n", r->path, r->keep_name[k], r->keep_bytes[k]);
            exit(1);
        }
    }
    csv = nn_get_meta(r->model, "ex.csv");
    if (csv && !(ex_resumed_csvs = (char *)malloc(strlen(csv) + 1))) {
        fprintf(stderr, "error: out of memory\n");
        exit(1);
    }
    if (csv) strcpy(ex_resumed_csvs, csv);
    for (k = 0; k < EX_MAX_CSV; k++)
        if (ex_csvs[k].f) {
            const long length = ex_resumed_length(ex_csvs[k].path);
            if (length >= 0 || ex_csvs[k].pending) ex_csv_cut(&ex_csvs[k], length >= 0 ? length : 0);
            if (length < 0 && ftell(ex_csvs[k].f) == 0) fprintf(ex_csvs[k].f, "%s\n", ex_csvs[k].header);
        }
    r->finished = nn_get_meta(r->model, "ex.done") != NULL;
    ex_run_unstash(r);
    r->resumed = 1;
    fprintf(stderr, "[%s] resumed from %s after %d epoch(s), %lld step(s)%s\n", r->tag, r->path, r->state.epochs_done,
            (long long)r->opt->step, r->finished ? ", where its training had finished" : "");
    return 1;
}

/* nn_fit's callbacks, wrapped: the example's, then (at an epoch's end) the figures for the
   checkpoint nn_fit writes next. */
static int ex_run_on_epoch(const nn_epoch_report *report, void *user)
{
    ex_run *r = (ex_run *)user;
    const int stop = r->on_epoch ? r->on_epoch(report, r->user) : 0;
    if (r->path[0]) ex_run_stash(r);
    return stop;
}
static int ex_run_on_check(const nn_epoch_report *report, void *user)
{
    ex_run *r = (ex_run *)user;
    return r->on_check(report, r->user);
}

/* nn_fit(model, opt, train, fit) continuing the run (fit->epochs: the whole run's), with a
   checkpoint at every epoch's end, then ex_run_end. result (may be NULL) gets the whole run's
   epochs (a partial last one counted), steps, early stop and best validation loss, and the
   seconds of this call. */
EX_API void ex_run_fit(ex_run *r, const nn_dataset *train, const nn_fit_options *fit, nn_fit_result *result)
{
    nn_fit_options o = *fit;
    nn_fit_result res;
    memset(&res, 0, sizeof res);
    if (r->state.started) o.epochs = r->state.stopped_early || fit->epochs < r->state.epochs_done ? 0 : fit->epochs - r->state.epochs_done;
    o.state = &r->state;
    o.schedule = r->schedule;
    if (r->path[0] && !r->no_save) {
        o.checkpoint_path = r->path;
        o.checkpoint_each_epoch = 1;
    }
    r->on_epoch = fit->on_epoch;
    r->on_check = fit->on_check;
    r->user = fit->user;
    o.on_epoch = ex_run_on_epoch;
    o.on_check = fit->on_check ? ex_run_on_check : NULL;
    o.user = r;
    if (o.epochs > 0) {
        const nn_status st = nn_fit(r->model, r->opt, train, &o, &res);
        ex_run_unstash(r);
        ex_check(st, "training");
    }
    if (!r->finished) ex_run_end(r);
    if (result) {
        *result = res;
        result->epochs = r->state.epochs_done + (r->state.batches_done > 0);
        result->steps = r->state.steps;
        result->stopped_early = r->state.stopped_early;
        result->best_val_loss = r->state.started ? r->state.best_val_loss : INFINITY;
    }
}

/* A hand-written loop's position: the epochs it has done (continue with the next one) and, when
   rng is not NULL and the run has started, its shuffle generator. */
EX_API int ex_run_epochs_done(const ex_run *r, nn_rng *rng)
{
    if (rng && r->state.started) rng->state = r->state.epoch_rng;
    return r->state.epochs_done;
}

/* The end of a hand-written loop's epoch: the run's position (epochs done, the generator for the
   next epoch, the optimizer's steps), then a checkpoint. */
EX_API void ex_run_epoch_end(ex_run *r, int epochs_done, const nn_rng *rng)
{
    r->state.started = 1;
    r->state.epochs_done = epochs_done;
    r->state.epoch_rng = rng ? rng->state : 0;
    r->state.steps = r->opt->step;
    ex_run_save(r);
}

#endif
