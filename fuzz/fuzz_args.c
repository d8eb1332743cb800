/* fuzz/fuzz_args.c - libFuzzer target for the examples' command-line parser, ex_parse() in
   examples/common.h, with one flag of every kind (int, float, double, string, switch, list).

   THE exit() TRICK. ex_parse ends the program with exit(2) on a bad command line and exit(0)
   after --help. To fuzz it in-process without editing common.h, this file includes every
   system header common.h needs first (their include guards make common.h's own #includes
   no-ops), then
       #define exit(status) fz_exit(status)
   before including common.h, so the calls inside ex_parse go to fz_exit(), which records the
   status and longjmp()s back into the fuzz callback. stdout and stderr are redirected the same
   way (#undef + #define to a FILE* on /dev/null) so the usage text does not flood the log;
   libFuzzer's and the sanitizers' own reports are unaffected. nn.h's implementation is compiled
   before those macros, so the library itself is untouched.

   Input: NUL-separated arguments (argv[0] is "fuzz"; at most 64 are used).
   Checks (abort() on violation): an independent re-implementation of the documented rules
   (the oracle below) predicts the outcome, and it must match: success with exactly the
   predicted values (epochs >= 1, threads >= 0, seed an integer < 1.8e19, floats finite and
   within float range, lists of 1..32 positive ints, --checkpoint a non-empty file name that
   --resume needs), or "exit" 0 for --help/-h, or "exit" 2 for anything wrong, never anything else.
   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iexamples fuzz/fuzz_args.c -lm */
#define _POSIX_C_SOURCE 200809L
#define NN_IMPLEMENTATION
#include "nn.h"
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static jmp_buf fz_jump;
static int fz_status;
static FILE *fz_sink;
static void fz_exit(int status) __attribute__((noreturn));
static void fz_exit(int status)
{
    fz_status = status;
    longjmp(fz_jump, 1);
}
#define exit(status) fz_exit(status)
#undef stdout
#define stdout fz_sink
#undef stderr
#define stderr fz_sink
#include "common.h"
#undef exit
#undef stdout
#undef stderr
#define stdout stdout
#define stderr stderr

#define FZ_CHECK(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* ---- the values ex_parse writes ---- */
static ex_options opts;
static int f_int;
static float f_float;
static double f_double;
static const char *f_string;
static int f_switch;
static ex_int_list f_list;
static const ex_flag flags[] = {
    {"--n", EX_INT, &f_int, "an int (default 5)"},
    {"--lr", EX_FLOAT, &f_float, "a float (default 0.1)"},
    {"--wd", EX_DOUBLE, &f_double, "a double (default 0)"},
    {"--name", EX_STRING, &f_string, "a string (default x)"},
    {"--bn", EX_SWITCH, &f_switch, "a switch"},
    {"--widths", EX_INT_LIST, &f_list, "a list (default 8)"},
};

static void reset(void)
{
    memset(&opts, 0, sizeof opts);
    ex_summary_requested = 0;
    ex_precision = NN_PRECISION_FP32;
    opts.name = "fuzz";
    opts.epochs = 3;
    opts.seed = 42;
    f_int = 5;
    f_float = 0.1f;
    f_double = 0.0;
    f_string = "x";
    f_switch = 0;
    memset(&f_list, 0, sizeof f_list);
    f_list.count = 1;
    f_list.values[0] = 8;
}

/* ---- the oracle: the rules, written out independently ---- */
typedef struct expect {
    int status; /* -1: success, 0: help, 2: error */
    int epochs, epochs_given, threads, quick, n, sw, summary, bf16, resume;
    uint64_t seed;
    const char *data, *out, *string, *checkpoint;
    double d;
    float f;
    ex_int_list list;
} expect;

/* A decimal int: optional white space, an optional sign, digits, nothing after; in int range. */
static int o_int(const char *s, int *out)
{
    int neg = 0, digits = 0;
    long long v = 0;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        v = v * 10 + (*s - '0');
        if (v > (long long)INT_MAX + 1) v = (long long)INT_MAX + 2; /* saturate: out of range */
    }
    if (!digits || *s) return 0;
    if (neg) v = -v;
    if (v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

/* A finite double that strtod takes whole without a range error. */
static int o_double(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int o_list(const char *s, ex_int_list *l)
{
    char item[600];
    const char *p = s;
    if (strlen(s) >= 512) return 0; /* common.h's buffer */
    l->count = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int v;
        memcpy(item, p, len);
        item[len] = 0;
        if (l->count == EX_MAX_LIST || !o_int(item, &v) || v <= 0) return 0;
        l->values[l->count++] = v;
        if (!comma) break;
        p = comma + 1;
    }
    return 1;
}

static expect oracle(int argc, char **argv)
{
    expect e;
    int i;
    memset(&e, 0, sizeof e);
    e.status = -1;
    e.epochs = 3;
    e.seed = 42;
    e.data = "data/mnist";
    e.n = 5;
    e.f = 0.1f;
    e.string = "x";
    e.list.count = 1;
    e.list.values[0] = 8;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            e.status = 0;
            return e;
        }
        if (!strcmp(a, "--quick")) {
            e.quick = 1;
            takes = 0;
        } else if (!strcmp(a, "--summary")) {
            e.summary = 1;
            takes = 0;
        } else if (!strcmp(a, "--resume")) {
            e.resume = 1;
            takes = 0;
        } else if (!strcmp(a, "--checkpoint")) {
            ok = v && *v;
            e.checkpoint = v;
        } else if (!strcmp(a, "--bn")) {
            e.sw = 1;
            takes = 0;
        } else if (!strcmp(a, "--data")) {
            e.data = v;
        } else if (!strcmp(a, "--out")) {
            e.out = v;
        } else if (!strcmp(a, "--name")) {
            if (v) e.string = v;
        } else if (!strcmp(a, "--epochs")) {
            e.epochs_given = 1;
            ok = v && o_int(v, &e.epochs) && e.epochs >= 1;
        } else if (!strcmp(a, "--threads")) {
            ok = v && o_int(v, &e.threads) && e.threads >= 1;
        } else if (!strcmp(a, "--precision")) {
            ok = v && (!strcmp(v, "bf16") || !strcmp(v, "fp32"));
            if (ok) e.bf16 = !strcmp(v, "bf16");
        } else if (!strcmp(a, "--n")) {
            ok = v && o_int(v, &e.n);
        } else if (!strcmp(a, "--seed")) {
            double s;
            ok = v && o_double(v, &s) && s >= 0 && s == floor(s) && s < 1.8e19;
            if (ok) e.seed = (uint64_t)s;
        } else if (!strcmp(a, "--lr")) {
            double d;
            ok = v && o_double(v, &d) && fabs(d) <= FLT_MAX;
            if (ok) e.f = (float)d;
        } else if (!strcmp(a, "--wd")) {
            ok = v && o_double(v, &e.d);
        } else if (!strcmp(a, "--widths")) {
            ok = v && o_list(v, &e.list);
        } else {
            e.status = 2; /* unknown option */
            return e;
        }
        if (!ok || (takes && !v)) {
            e.status = 2;
            return e;
        }
        if (takes) i++;
    }
    if (e.resume && !e.checkpoint) e.status = 2; /* --resume needs --checkpoint */
    return e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_sink = fopen("/dev/null", "w");
    if (!fz_sink) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[1 << 16];
    static char *args[66];
    static int argc;
    static expect e;
    size_t i, start = 0;
    if (size >= sizeof buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    args[0] = (char *)"fuzz";
    argc = 1;
    for (i = 0; i <= size && argc < 65; i++)
        if (buf[i] == 0) {
            if (i < size || i > start) args[argc++] = buf + start; /* a trailing NUL ends the list */
            start = i + 1;
        }
    args[argc] = NULL;
    reset();
    e = oracle(argc, args);
    fz_status = -1;
    if (setjmp(fz_jump) == 0) ex_parse(argc, args, &opts, "fuzzing ex_parse", flags, (int)(sizeof flags / sizeof flags[0]));
    FZ_CHECK(fz_status == e.status);
    if (fz_status != -1) return 0;
    /* success: values as predicted, and in range */
    FZ_CHECK(opts.epochs == e.epochs && opts.epochs >= 1);
    FZ_CHECK(opts.epochs_given == e.epochs_given);
    FZ_CHECK(opts.threads == e.threads && opts.threads >= 0);
    FZ_CHECK(opts.quick == e.quick);
    FZ_CHECK(ex_summary_requested == e.summary);
    FZ_CHECK(ex_precision == (e.bf16 ? NN_PRECISION_BF16 : NN_PRECISION_FP32));
    FZ_CHECK(opts.resume == e.resume && opts.checkpoint == e.checkpoint);
    FZ_CHECK(opts.seed == e.seed && (double)opts.seed < 1.8e19);
    FZ_CHECK(opts.data_dir && opts.data_dir == e.data);
    FZ_CHECK(opts.out_dir && (e.out ? opts.out_dir == e.out : !strcmp(opts.out_dir, "results/fuzz")));
    FZ_CHECK(f_int == e.n);
    FZ_CHECK(isfinite(f_float) && f_float == e.f);
    FZ_CHECK(isfinite(f_double) && f_double == e.d);
    FZ_CHECK(f_string == e.string || !strcmp(f_string, e.string));
    FZ_CHECK(f_switch == e.sw);
    FZ_CHECK(f_list.count >= 1 && f_list.count <= EX_MAX_LIST && f_list.count == e.list.count);
    for (i = 0; i < (size_t)f_list.count; i++) FZ_CHECK(f_list.values[i] > 0 && f_list.values[i] == e.list.values[i]);
    return 0;
}
