/* tests/reliability_probe.c - feeds nn.h hostile inputs and prints what it answers, as the
   Markdown table rows of docs/reliability.md (scripts/reliability_table.sh builds this with
   AddressSanitizer + UndefinedBehaviorSanitizer and runs it; a sanitizer report or a crash in
   a row shows up in the document).
   Usage: reliability_probe idx|model2|model|safetensors|checkpoint|save [DIR]|api | args [ARGS...] | crash CASE
     idx    IDX image/label files: wrong magic, truncated headers, count vs size both ways,
            zero and huge dimensions, label count mismatch, missing file, a directory, a pipe
     model2 model files of format 2 (what nn_save writes), through nn_model_load and nn_load:
            truncated at every length and at every section boundary, every bit flipped, every
            byte changed with the CRC fixed, a bad CRC, bad op, activation and loss codes,
            inputs out of range, absurd sizes, sections duplicated, unknown, missing or out of
            order, bad names, a graph nn_compile or a builder refuses, bad metadata, NaN values
     safetensors  safetensors files through nn_load_safetensors, strict and partial: truncated at
            every length, every bit flipped, every header byte inverted, header lengths 0, beyond
            the file and overflowing, JSON errors, names, offsets, sizes, dtypes, ranks, NaN and
            infinite values in every float dtype, missing, extra and mis-shaped tensors, many
            entries, bad arguments; nn_save_safetensors refusals
     model  model files of format 1 (written here the way nn.h wrote them before format 2):
            truncated at every length, every single bit flipped, wrong magic, a newer version,
            another architecture (different count; same count), a huge count, an appended
            byte, NaN weights, missing file, a directory
     checkpoint  checkpoints (nn_checkpoint_load into a model built in code, an Adam optimizer, a
            StepLR schedule and a run state): truncated at every length and section boundary, every
            bit flipped, every byte changed with the CRC fixed, wrong magic and versions, a model
            file, a checkpoint to the model readers, another model, optimizer or schedule, NaN
            values, bad optimizer, schedule and run-state fields, missing sections; nn_fit resuming
            from a checkpoint it cannot continue; nn_checkpoint_save refusing a NaN
     save   nn_save over a good file when the save cannot succeed (optional argument: a small
            tmpfs mount point for a real "disk full" and a read-only remount; needs root)
     api    API misuse: null pointers, training before nn_compile, count > max batch, labels out
            of range, NaN input, wrong order, bad sizes
     args   the rest of the command line goes to ex_parse (examples/common.h, with one flag of
            each kind: --lr float, --wd double, --n int, --name string, --bn switch, --widths
            list); prints the parsed values, or ex_parse exits (2 on error, 0 for --help)
     crash  one input per process that crashed or hit undefined behaviour (confusion-label,
            pool-pad, pool-size, conv-kernel, conv-input, conv-builder)
   Every row: | kind | how it is made | status | message |. Temporary paths print as $TMP. */
#define _POSIX_C_SOURCE 200809L
#define NN_IMPLEMENTATION
#include "nn.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../examples/common.h"
#include "model_file.h"

static char dir[64];

/* nn_last_error() with the temporary directory shown as $TMP, '|' escaped and bytes outside
   printable ASCII (a hostile file's name) as \xNN */
static const char *message(void)
{
    static char out[1200];
    const char *e = nn_last_error();
    size_t n = strlen(dir), o = 0;
    while (*e && o < sizeof out - 8) {
        if (n && !strncmp(e, dir, n)) {
            memcpy(out + o, "$TMP", 4);
            o += 4;
            e += n;
        } else if (*e == '|') {
            out[o++] = '\\';
            out[o++] = *e++;
        } else if ((unsigned char)*e < 0x20 || (unsigned char)*e > 0x7E) {
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02X", (unsigned char)*e++);
        } else {
            out[o++] = *e++;
        }
    }
    out[o] = 0;
    return out;
}

static void row(const char *kind, const char *how, nn_status st, const char *extra)
{
    printf("| %s | %s | %s%s%s | %s |\n", kind, how, st == NN_OK ? "NN_OK" : "", st == NN_OK ? "" : "NN_ERROR_",
           st == NN_OK ? "" : (st == NN_ERROR_ARGUMENT ? "ARGUMENT" : st == NN_ERROR_SHAPE ? "SHAPE" : st == NN_ERROR_MEMORY ? "MEMORY"
                                : st == NN_ERROR_IO ? "IO" : st == NN_ERROR_FORMAT ? "FORMAT" : st == NN_ERROR_UNSUPPORTED ? "UNSUPPORTED"
                                : st == NN_ERROR_NONFINITE ? "NONFINITE" : "STATE"),
           st == NN_OK && extra ? extra : (st == NN_OK ? "" : message()));
    fflush(stdout);
}

static const char *status_text(nn_status st)
{
    switch (st) {
    case NN_OK: return "NN_OK";
    case NN_ERROR_ARGUMENT: return "NN_ERROR_ARGUMENT";
    case NN_ERROR_SHAPE: return "NN_ERROR_SHAPE";
    case NN_ERROR_MEMORY: return "NN_ERROR_MEMORY";
    case NN_ERROR_IO: return "NN_ERROR_IO";
    case NN_ERROR_FORMAT: return "NN_ERROR_FORMAT";
    case NN_ERROR_UNSUPPORTED: return "NN_ERROR_UNSUPPORTED";
    case NN_ERROR_NONFINITE: return "NN_ERROR_NONFINITE";
    case NN_ERROR_STATE: return "NN_ERROR_STATE";
    case NN_STATUS_COUNT: break; /* not a status */
    }
    return "?";
}

/* A step that sets up the rows after it: if it fails, they would mean nothing. */
static void setup_ok(nn_status st, const char *what)
{
    if (st != NN_OK) {
        fprintf(stderr, "reliability_probe: %s: %s\n", what, nn_last_error());
        exit(1);
    }
}

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static void write_file(const char *path, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- IDX ------------------------------------------------------------------------------------ */
static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* an image file: header (magic, count, rows, cols) then `pixels` bytes */
static size_t img_file(unsigned char *p, uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, size_t pixels)
{
    size_t i;
    be32(p, magic); be32(p + 4, count); be32(p + 8, rows); be32(p + 12, cols);
    for (i = 0; i < pixels; i++) p[16 + i] = (unsigned char)(i * 13);
    return 16 + pixels;
}

static size_t lab_file(unsigned char *p, uint32_t magic, uint32_t count, size_t labels, int value)
{
    size_t i;
    be32(p, magic); be32(p + 4, count);
    for (i = 0; i < labels; i++) p[8 + i] = (unsigned char)(value >= 0 ? value : (int)(i % 10));
    return 8 + labels;
}

static void idx_case(const char *kind, const char *how, const unsigned char *img, size_t ni, const unsigned char *lab, size_t nl)
{
    char ip[128], lp[128], extra[200];
    nn_dataset ds;
    nn_status st;
    path_in(ip, sizeof ip, "images");
    path_in(lp, sizeof lp, "labels");
    write_file(ip, img, ni);
    write_file(lp, lab, nl);
    st = nn_mnist_load(ip, lp, &ds);
    if (st == NN_OK) {
        snprintf(extra, sizeof extra, "accepted: %d samples of %dx%d, %d classes", ds.count, ds.height, ds.width, ds.classes);
        nn_dataset_free(&ds);
    }
    row(kind, how, st, extra);
}

static void probe_idx(void)
{
    static unsigned char img[16 + 4096], lab[8 + 64];
    size_t ni, nl = lab_file(lab, 0x801, 4, 4, -1);
    char ip[128], lp[128], missing[128];
    nn_dataset ds;
    int fds[2];

    ni = img_file(img, 0x803, 4, 3, 3, 36);
    idx_case("valid (reference)", "4 images of 3x3, 4 labels", img, ni, lab, nl);
    ni = img_file(img, 0x804, 4, 3, 3, 36);
    idx_case("image: wrong magic", "magic 0x00000804 (4 dimensions)", img, ni, lab, nl);
    ni = img_file(img, 0x0D03, 4, 3, 3, 36);
    idx_case("image: wrong magic", "magic 0x00000D03 (float pixels)", img, ni, lab, nl);
    idx_case("image: labels given as images", "the label file passed as the image file", lab, nl, lab, nl);
    ni = img_file(img, 0x803, 4, 3, 3, 36);
    idx_case("image: truncated header", "first 10 bytes of a valid file", img, 10, lab, nl);
    idx_case("image: empty file", "0 bytes", img, 0, lab, nl);
    ni = img_file(img, 0x803, 5, 3, 3, 36);
    idx_case("image: count > data", "header says 5 images of 3x3, file holds 4", img, ni, lab, nl);
    ni = img_file(img, 0x803, 3, 3, 3, 36);
    idx_case("image: count < data", "header says 3 images, file holds 4 (9 extra bytes)", img, ni, lab, nl);
    ni = img_file(img, 0x803, 4, 3, 3, 35);
    idx_case("image: last image short", "4 images of 3x3 but 35 pixel bytes", img, ni, lab, nl);
    ni = img_file(img, 0x803, 0, 3, 3, 0);
    idx_case("image: zero count", "count 0, no pixels", img, ni, lab, lab_file(lab, 0x801, 0, 0, -1));
    nl = lab_file(lab, 0x801, 4, 4, -1);
    ni = img_file(img, 0x803, 4, 0, 3, 0);
    idx_case("image: zero rows", "rows 0", img, ni, lab, nl);
    ni = img_file(img, 0x803, 4, 3, 0, 0);
    idx_case("image: zero cols", "cols 0", img, ni, lab, nl);
    ni = img_file(img, 0x803, 1, 5000, 1, 4096);
    idx_case("image: rows > 4096", "1 image of 5000x1", img, ni, lab, lab_file(lab, 0x801, 1, 1, -1));
    ni = img_file(img, 0x803, 0xFFFFFFFFu, 4096, 4096, 36);
    idx_case("image: huge dimensions", "count 2^32-1 images of 4096x4096 (2^56 pixels), 36 bytes of data", img, ni, lab, nl);
    ni = img_file(img, 0x803, 1u << 30, 4096, 4096, 36);
    idx_case("image: product > INT_MAX", "count 2^30 images of 4096x4096 (2^54 pixels), 36 bytes of data", img, ni, lab, nl);
    ni = img_file(img, 0x803, 65536, 65536, 65536, 36);
    idx_case("image: 2^16 in every dimension", "count, rows and cols 65536 each (2^48 pixels), 36 bytes of data", img, ni, lab, nl);
    ni = img_file(img, 0x803, 4, 3, 3, 36);
    nl = lab_file(lab, 0x801, 3, 3, -1);
    idx_case("labels: count mismatch", "4 images, label header says 3 (3 labels)", img, ni, lab, nl);
    nl = lab_file(lab, 0x801, 5, 5, -1);
    idx_case("labels: count mismatch", "4 images, label header says 5 (5 labels)", img, ni, lab, nl);
    nl = lab_file(lab, 0x801, 4, 3, -1);
    idx_case("labels: truncated data", "header says 4 labels, file holds 3", img, ni, lab, nl);
    nl = lab_file(lab, 0x801, 4, 6, -1);
    idx_case("labels: extra data", "header says 4 labels, file holds 6", img, ni, lab, nl);
    nl = lab_file(lab, 0x803, 4, 4, -1);
    idx_case("labels: wrong magic", "magic 0x00000803", img, ni, lab, nl);
    idx_case("labels: truncated header", "first 6 bytes", img, ni, lab, 6);
    nl = lab_file(lab, 0x801, 4, 4, 200);
    idx_case("labels: value 200", "every label 200 (not a digit)", img, ni, lab, nl);

    path_in(ip, sizeof ip, "images");
    path_in(lp, sizeof lp, "labels");
    path_in(missing, sizeof missing, "missing");
    nl = lab_file(lab, 0x801, 4, 4, -1);
    write_file(ip, img, ni);
    write_file(lp, lab, nl);
    row("image: missing file", "a path that does not exist", nn_mnist_load(missing, lp, &ds), NULL);
    row("labels: missing file", "a path that does not exist", nn_mnist_load(ip, missing, &ds), NULL);
    row("image: a directory", "the temporary directory as the image file", nn_mnist_load(dir, lp, &ds), NULL);
    row("labels: a directory", "the temporary directory as the label file", nn_mnist_load(ip, dir, &ds), NULL);
    row("image: NULL path", "nn_mnist_load(NULL, labels, &ds)", nn_mnist_load(NULL, lp, &ds), NULL);
    row("image: empty path", "nn_mnist_load(\"\", labels, &ds)", nn_mnist_load("", lp, &ds), NULL);
    if (pipe(fds) == 0) {
        char fdpath[64];
        nn_status st;
        if (write(fds[1], img, ni) != (ssize_t)ni) perror("write");
        close(fds[1]);
        snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fds[0]);
        st = nn_mnist_load(fdpath, lp, &ds);
        if (st == NN_OK) nn_dataset_free(&ds);
        row("image: a pipe", "a valid image file written into a pipe, read as /dev/fd/N (like `<(zcat ...)`)", st, "accepted");
        close(fds[0]);
    }
    remove(ip);
    remove(lp);
}

/* ---- model files ---------------------------------------------------------------------------- */
static nn_model *model_a(void) /* 8 -> 6 (batch norm, ReLU) -> 3 */
{
    nn_model *m = nn_model_new(5);
    nn_node *h = nn_relu(m, nn_batchnorm(m, nn_linear(m, nn_input(m, 1, 1, 8), 6, NN_BIAS)));
    setup_ok(nn_compile(m, nn_linear(m, h, 3, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), "nn_compile");
    return m;
}
static nn_model *model_tanh(void) /* same parameter count, another activation */
{
    nn_model *m = nn_model_new(5);
    nn_node *h = nn_tanh(m, nn_batchnorm(m, nn_linear(m, nn_input(m, 1, 1, 8), 6, NN_BIAS)));
    setup_ok(nn_compile(m, nn_linear(m, h, 3, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), "nn_compile");
    return m;
}
static nn_model *model_other(void) /* a different parameter count */
{
    nn_model *m = nn_model_new(5);
    setup_ok(nn_compile(m, nn_linear(m, nn_input(m, 1, 1, 8), 3, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), "nn_compile");
    return m;
}

static uint32_t crc32_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (b = 0; b < 8; b++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
static void fix_crc(unsigned char *p, size_t n)
{
    uint32_t c = crc32_ref(p, n - 4);
    p[n - 4] = (unsigned char)c; p[n - 3] = (unsigned char)(c >> 8); p[n - 2] = (unsigned char)(c >> 16); p[n - 1] = (unsigned char)(c >> 24);
}
static void le32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }

/* A format-1 file, the way nn_save wrote them before format 2 (magic, version 1, reserved,
   architecture fingerprint, parameter and state counts, the values, CRC-32): the probe is built
   with the implementation, so it uses the fingerprint nn_load still checks such files with. */
static void save_v1(nn_model *m, const char *path)
{
    const size_t total = NN__FILE_V1_HEADER + 4 * (m->param_count + m->state_count) + 4;
    unsigned char *buf = (unsigned char *)malloc(total);
    memcpy(buf, "NNHMODEL", 8);
    nn__put_u32(buf + 8, 1);
    nn__put_u32(buf + 12, 0);
    nn__put_u64(buf + 16, nn__fingerprint(m));
    nn__put_u64(buf + 24, m->param_count);
    nn__put_u64(buf + 32, m->state_count);
    nn__put_floats(buf + NN__FILE_V1_HEADER, m->params, m->param_count);
    nn__put_floats(buf + NN__FILE_V1_HEADER + 4 * m->param_count, m->state, m->state_count);
    nn__put_u32(buf + total - 4, nn__crc32(buf, total - 4));
    write_file(path, buf, total);
    free(buf);
}

static size_t read_all(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f) fclose(f);
    return n;
}

/* loads path into m; returns the status and whether params and state stayed bit-identical */
static nn_status load_checked(nn_model *m, const char *path, int *unchanged)
{
    size_t np = nn_param_count(m), ns = nn_state_count(m);
    float *p = (float *)malloc(np * sizeof(float)), *s = (float *)malloc(ns * sizeof(float) + 4);
    nn_status st;
    memcpy(p, nn_params(m), np * sizeof(float));
    memcpy(s, nn_state(m), ns * sizeof(float));
    st = nn_load(m, path);
    *unchanged = !memcmp(p, nn_params(m), np * sizeof(float)) && !memcmp(s, nn_state(m), ns * sizeof(float));
    memcpy(nn_params(m), p, np * sizeof(float)); /* back to the same start for the next case */
    memcpy(nn_state(m), s, ns * sizeof(float));
    free(p);
    free(s);
    return st;
}

static void model_case(nn_model *m, const char *kind, const char *how, const unsigned char *data, size_t n)
{
    char path[128], extra[200];
    int unchanged;
    nn_status st;
    path_in(path, sizeof path, "case.nn");
    write_file(path, data, n);
    st = load_checked(m, path, &unchanged);
    snprintf(extra, sizeof extra, "accepted (parameters replaced)");
    if (st != NN_OK && !unchanged) {
        printf("| %s | %s | %s | %s **(the model was changed!)** |\n", kind, how, status_text(st), message());
        return;
    }
    row(kind, how, st, extra);
}

/* many cases folded into one row: counts per status, the distinct messages (up to 4) */
typedef struct tally {
    int count[9], changed, total;
    char messages[4][300];
    int n_messages;
} tally;

static void tally_add(tally *t, nn_status st, int unchanged)
{
    int i;
    const char *msg = message();
    t->count[st]++;
    t->total++;
    if (!unchanged && st != NN_OK) t->changed++;
    if (st == NN_OK) return;
    for (i = 0; i < t->n_messages; i++)
        if (!strcmp(t->messages[i], msg)) return;
    if (t->n_messages < 4) snprintf(t->messages[t->n_messages++], sizeof t->messages[0], "%s", msg);
}

static void tally_row(const tally *t, const char *kind, const char *how)
{
    int s, first = 1, i;
    printf("| %s | %s | ", kind, how);
    for (s = 0; s < 9; s++)
        if (t->count[s]) {
            printf("%s%s x%d", first ? "" : ", ", status_text((nn_status)s), t->count[s]);
            first = 0;
        }
    printf("%s | ", t->changed ? " **model changed on error!**" : "");
    for (i = 0; i < t->n_messages; i++) printf("%s\"%s\"", i ? "; " : "", t->messages[i]);
    printf(" |\n");
    fflush(stdout);
}

static void probe_model(void)
{
    static unsigned char good[1 << 14], buf[1 << 14];
    char path[128], other[128], missing[128], how[200];
    nn_model *m = model_a(), *o = model_other(), *t = model_tanh();
    size_t n, i;
    int unchanged, bit;
    tally tr, tf;
    path_in(path, sizeof path, "good.nn");
    path_in(other, sizeof other, "other.nn");
    path_in(missing, sizeof missing, "missing.nn");
    save_v1(m, path);
    n = read_all(path, good, sizeof good);

    model_case(m, "valid (reference)", "a format-1 file of the same architecture", good, n);
    memset(&tr, 0, sizeof tr);
    for (i = 0; i < n; i++) {
        path_in(path, sizeof path, "trunc.nn");
        write_file(path, good, i);
        tally_add(&tr, load_checked(m, path, &unchanged), unchanged);
    }
    snprintf(how, sizeof how, "the valid %zu-byte file cut at every length 0..%zu", n, n - 1);
    tally_row(&tr, "truncated (every length)", how);
    memset(&tf, 0, sizeof tf);
    for (i = 0; i < n; i++)
        for (bit = 0; bit < 8; bit++) {
            memcpy(buf, good, n);
            buf[i] ^= (unsigned char)(1u << bit);
            path_in(path, sizeof path, "flip.nn");
            write_file(path, buf, n);
            tally_add(&tf, load_checked(m, path, &unchanged), unchanged);
        }
    snprintf(how, sizeof how, "each of the %zu bits of the valid file flipped, one at a time", n * 8);
    tally_row(&tf, "flipped bits (every bit)", how);
    memset(&tf, 0, sizeof tf);
    for (i = 0; i + 4 < n; i++) {
        memcpy(buf, good, n);
        buf[i] ^= 0xFF;
        fix_crc(buf, n);
        path_in(path, sizeof path, "flip.nn");
        write_file(path, buf, n);
        tally_add(&tf, load_checked(m, path, &unchanged), unchanged);
    }
    snprintf(how, sizeof how, "each of the %zu bytes before the CRC inverted, CRC recomputed", n - 4);
    tally_row(&tf, "flipped bytes, valid CRC", how);

    memcpy(buf, good, n);
    buf[0] = 'X';
    model_case(m, "wrong magic", "first byte 'X'", buf, n);
    model_case(m, "wrong magic", "an IDX file (magic 0x00000803) of the same size", (const unsigned char *)"\0\0\x08\x03", 4);
    memcpy(buf, good, n);
    le32(buf + 8, 3);
    fix_crc(buf, n);
    model_case(m, "newer version", "version field 3, CRC recomputed", buf, n);
    memcpy(buf, good, n);
    le32(buf + 8, 0);
    fix_crc(buf, n);
    model_case(m, "older version", "version field 0, CRC recomputed", buf, n);
    save_v1(o, other);
    {
        size_t no = read_all(other, buf, sizeof buf);
        model_case(m, "other architecture", "saved from a 8->3 linear model (27 parameters)", buf, no);
    }
    save_v1(t, other);
    {
        size_t no = read_all(other, buf, sizeof buf);
        model_case(m, "other architecture, same sizes", "saved from the same layers with tanh instead of ReLU", buf, no);
    }
    memcpy(buf, good, n);
    le32(buf + 24, 0); le32(buf + 28, 0x100);
    fix_crc(buf, n);
    model_case(m, "huge parameter count", "count field 2^40, CRC recomputed", buf, n);
    memcpy(buf, good, n);
    le32(buf + 24, 0xFFFFFFFFu); le32(buf + 28, 0xFFFFFFFFu);
    le32(buf + 32, 0xFFFFFFFFu); le32(buf + 36, 0xFFFFFFFFu);
    fix_crc(buf, n);
    model_case(m, "counts overflow", "parameter and state counts 2^64-1 (sum wraps), CRC recomputed", buf, n);
    memcpy(buf, good, n);
    buf[n] = 0;
    model_case(m, "appended byte", "one 0 byte after the CRC", buf, n + 1);
    memcpy(buf, good, n);
    buf[n] = 0; buf[n + 1] = 0; buf[n + 2] = 0; buf[n + 3] = 0;
    le32(buf + 24, (uint32_t)nn_param_count(m) + 1);
    fix_crc(buf, n + 4);
    model_case(m, "one parameter more", "count + 1, 4 more bytes, CRC recomputed", buf, n + 4);
    memcpy(buf, good, n);
    for (i = 40; i < n - 4; i += 4) le32(buf + i, 0x7FC00000u);
    fix_crc(buf, n);
    model_case(m, "NaN weights", "every parameter and statistic a quiet NaN, valid CRC", buf, n);
    memcpy(buf, good, n);
    le32(buf + 40 + 4 * nn_param_count(m) + 4 * 6, 0xBF800000u); /* running variance[0] = -1 */
    fix_crc(buf, n);
    model_case(m, "negative variance", "a batch-norm running variance of -1, valid CRC", buf, n);
    model_case(m, "empty file", "0 bytes", buf, 0);
    {
        int un;
        nn_status st = load_checked(m, missing, &un);
        row("missing file", "a path that does not exist", st, NULL);
        st = load_checked(m, dir, &un);
        row("a directory", "the temporary directory as the model file", st, NULL);
        st = load_checked(m, NULL, &un);
        row("NULL path", "nn_load(m, NULL)", st, NULL);
    }
    remove(path);
    remove(other);
    path_in(path, sizeof path, "good.nn"); remove(path);
    path_in(path, sizeof path, "trunc.nn"); remove(path);
    path_in(path, sizeof path, "case.nn"); remove(path);
    nn_model_free(m);
    nn_model_free(o);
    nn_model_free(t);
}

/* ---- model files, format 2 -------------------------------------------------------------------- */
/* Each file goes to nn_model_load (max batch 4) and to nn_load into model_a() built in code. The
   row shows both statuses and the first failure's message; it flags in bold a model returned
   with an error, a model in code changed by a failed nn_load, and a file nn_model_load accepts
   that does not save back to the same bytes. */
static nn_model *code2;
static float *code2_params, *code2_state;

/* a step that must work for the table to mean anything */
static void must(nn_status st, const char *what)
{
    if (st == NN_OK) return;
    fprintf(stderr, "reliability_probe: %s: %s\n", what, nn_last_error());
    exit(1);
}

static void code2_reset(void)
{
    memcpy(nn_params(code2), code2_params, nn_param_count(code2) * sizeof(float));
    memcpy(nn_state(code2), code2_state, nn_state_count(code2) * sizeof(float));
    must(nn_set_meta(code2, "mean", "0.5"), "nn_set_meta");
}

typedef struct answer2 {
    nn_status rebuilt, loaded;
    int bad_out, changed, not_canonical;
    char message[700];
} answer2;

/* path holds the file (written from data unless data is NULL) */
static answer2 load_both(const char *path, const unsigned char *data, size_t n)
{
    static unsigned char again[1 << 14];
    char again_path[128];
    answer2 a;
    nn_model *out = (nn_model *)&out;
    memset(&a, 0, sizeof a);
    if (data) write_file(path, data, n);
    a.rebuilt = nn_model_load(path, 4, &out);
    if (a.rebuilt != NN_OK) {
        a.bad_out = out != NULL;
        snprintf(a.message, sizeof a.message, "%s", message());
    } else {
        path_in(again_path, sizeof again_path, "again.nn");
        a.not_canonical = nn_save(out, again_path) != NN_OK || read_all(again_path, again, sizeof again) != n ||
                          (data && memcmp(again, data, n) != 0);
        remove(again_path);
        nn_model_free(out);
    }
    a.loaded = nn_load(code2, path);
    if (a.loaded != NN_OK) {
        const char *v = nn_get_meta(code2, "mean");
        a.changed = memcmp(nn_params(code2), code2_params, nn_param_count(code2) * sizeof(float)) != 0 ||
                    memcmp(nn_state(code2), code2_state, nn_state_count(code2) * sizeof(float)) != 0 || !v || strcmp(v, "0.5");
        if (!a.message[0]) snprintf(a.message, sizeof a.message, "%s", message());
    }
    if (!a.message[0]) snprintf(a.message, sizeof a.message, "accepted by both");
    code2_reset();
    return a;
}

static void row2(const char *kind, const char *how, const answer2 *a)
{
    printf("| %s | %s | %s%s%s | %s%s | %s |\n", kind, how, status_text(a->rebuilt), a->bad_out ? " **(a model came back!)**" : "",
           a->not_canonical ? " **(saves other bytes!)**" : "", status_text(a->loaded),
           a->changed ? " **(the model was changed!)**" : "", a->message);
    fflush(stdout);
}

static void case2(const char *kind, const char *how, const unsigned char *data, size_t n)
{
    char path[128];
    answer2 a;
    path_in(path, sizeof path, "case2.nn");
    a = load_both(path, data, n);
    row2(kind, how, &a);
}

/* many cases in one row: the statuses of each reader with counts, the distinct messages of
   nn_model_load's failures (up to 4) */
typedef struct tally2 {
    tally rebuilt, loaded;
    int bad_out, not_canonical;
} tally2;

static void tally2_add(tally2 *t, const answer2 *a)
{
    int i;
    t->rebuilt.count[a->rebuilt]++;
    t->loaded.count[a->loaded]++;
    t->loaded.changed += a->changed;
    t->bad_out += a->bad_out;
    t->not_canonical += a->not_canonical;
    if (a->rebuilt == NN_OK) return;
    for (i = 0; i < t->rebuilt.n_messages; i++)
        if (!strcmp(t->rebuilt.messages[i], a->message)) return;
    if (t->rebuilt.n_messages < 4) snprintf(t->rebuilt.messages[t->rebuilt.n_messages++], sizeof t->rebuilt.messages[0], "%s", a->message);
}

static void tally_counts(const tally *t)
{
    int s, first = 1;
    for (s = 0; s < 9; s++)
        if (t->count[s]) {
            printf("%s%s x%d", first ? "" : ", ", status_text((nn_status)s), t->count[s]);
            first = 0;
        }
}

static void tally2_row(const tally2 *t, const char *kind, const char *how)
{
    int i;
    printf("| %s | %s | ", kind, how);
    tally_counts(&t->rebuilt);
    if (t->bad_out) printf(" **(%d returned a model!)**", t->bad_out);
    if (t->not_canonical) printf(" **(%d saved other bytes!)**", t->not_canonical);
    printf(" | ");
    tally_counts(&t->loaded);
    if (t->loaded.changed) printf(" **(%d changed the model!)**", t->loaded.changed);
    printf(" | ");
    for (i = 0; i < t->rebuilt.n_messages; i++) printf("%s\"%s\"", i ? "; " : "", t->rebuilt.messages[i]);
    printf(" |\n");
    fflush(stdout);
}

/* offset of graph record i in a format-2 file (records follow the GRPH payload's 8-byte head) */
static size_t record_at(const unsigned char *file, size_t n, int i)
{
    size_t at = (size_t)mf_find_section(file, n, "GRPH", NULL) + 8;
    while (i-- > 0) at += 56 + mf_get32(file + at + 52);
    return at;
}
enum { R_OP = 0, R_IN0 = 4, R_IN1 = 8, R_C = 12, R_H = 16, R_W = 20, R_UNITS = 24, R_KERNEL = 28, R_BIAS = 40, R_ACT = 44,
       R_NAME_LENGTH = 52, R_NAME = 56 };

/* the reference file with the u32 at record `layer`'s field (layer -1: at the absolute offset
   `field`) set to v, the CRC fixed */
static void case2_u32(const char *kind, const char *how, const unsigned char *good, size_t n, int layer, size_t field, uint32_t v)
{
    static unsigned char buf[1 << 14];
    memcpy(buf, good, n);
    le32(buf + (layer >= 0 ? record_at(good, n, layer) : 0) + field, v);
    fix_crc(buf, n);
    case2(kind, how, buf, n);
}

/* a payload of the reference file copied into b */
static void payload(mf_buf *b, const unsigned char *good, size_t n, const char *tag)
{
    uint64_t length = 0;
    long at = mf_find_section(good, n, tag, &length);
    b->size = 0;
    mf_bytes(b, good + at, (size_t)length);
}

static void probe_model2(void)
{
    static unsigned char good[1 << 14], buf[1 << 14];
    static mf_buf g, mt, pa, stt, extra, file;
    char path[128], other[128], how[200];
    nn_model *t = model_tanh(), *o = model_other();
    size_t n, i, boundary[8];
    int bit, k;
    tally2 tr, tf;
    code2 = model_a();
    code2_params = (float *)malloc(nn_param_count(code2) * sizeof(float));
    code2_state = (float *)malloc(nn_state_count(code2) * sizeof(float));
    memcpy(code2_params, nn_params(code2), nn_param_count(code2) * sizeof(float));
    memcpy(code2_state, nn_state(code2), nn_state_count(code2) * sizeof(float));
    must(nn_set_meta(code2, "mean", "0.5"), "nn_set_meta");
    path_in(path, sizeof path, "good2.nn");
    path_in(other, sizeof other, "other2.nn");
    must(nn_save(code2, path), "nn_save");
    n = read_all(path, good, sizeof good);

    case2("valid (reference)", "nn_save of the model, with the metadata mean=0.5", good, n);
    memset(&tr, 0, sizeof tr);
    for (i = 0; i < n; i++) {
        answer2 a = load_both(path, good, i);
        tally2_add(&tr, &a);
    }
    snprintf(how, sizeof how, "the valid %zu-byte file cut at every length 0..%zu", n, n - 1);
    tally2_row(&tr, "truncated (every length)", how);
    /* at each section boundary: after the file header, after each section's header, after each payload */
    k = 0;
    boundary[k++] = 16;
    {
        static const char *const tags[4] = {"GRPH", "META", "PARM", "STAT"};
        int s;
        for (s = 0; s < 4; s++) {
            uint64_t length = 0;
            long at = mf_find_section(good, n, tags[s], &length);
            boundary[k++] = (size_t)at;
            if (s == 3) boundary[k++] = (size_t)at + (size_t)length;
        }
    }
    {
        static const char *const where[6] = {"after the file header", "after the GRPH section's header", "after the graph",
                                             "after the metadata", "after the parameters", "after the statistics (no CRC)"};
        for (i = 0; i < (size_t)k; i++) {
            snprintf(how, sizeof how, "cut %s (%zu of %zu bytes)", where[i], boundary[i], n);
            case2("truncated at a section boundary", how, good, boundary[i]);
        }
    }
    memset(&tf, 0, sizeof tf);
    for (i = 0; i < n; i++)
        for (bit = 0; bit < 8; bit++) {
            answer2 a;
            memcpy(buf, good, n);
            buf[i] ^= (unsigned char)(1u << bit);
            a = load_both(path, buf, n);
            tally2_add(&tf, &a);
        }
    snprintf(how, sizeof how, "each of the %zu bits of the valid file flipped, one at a time", n * 8);
    tally2_row(&tf, "flipped bits (every bit)", how);
    memset(&tf, 0, sizeof tf);
    for (i = 0; i + 4 < n; i++) {
        answer2 a;
        memcpy(buf, good, n);
        buf[i] ^= 0xFF;
        fix_crc(buf, n);
        a = load_both(path, buf, n);
        tally2_add(&tf, &a);
    }
    snprintf(how, sizeof how, "each of the %zu bytes before the CRC inverted, CRC recomputed (accepted files must save back "
             "the same bytes)", n - 4);
    tally2_row(&tf, "changed bytes, valid CRC", how);

    memcpy(buf, good, n);
    buf[n - 1] ^= 1;
    case2("bad CRC", "last byte of the CRC flipped", buf, n);
    memcpy(buf, good, n);
    buf[0] = 'X';
    case2("wrong magic", "first byte 'X'", buf, n);
    case2_u32("newer version", "version field 3, CRC recomputed", good, n, -1, 8, 3);
    case2_u32("bad op code", "layer 2's op 99, CRC recomputed", good, n, 2, R_OP, 99);
    case2_u32("bad activation code", "layer 3's (ReLU) activation 77, CRC recomputed", good, n, 3, R_ACT, 77);
    case2_u32("bad loss code", "loss 12, CRC recomputed", good, n, -1, (size_t)mf_find_section(good, n, "GRPH", NULL) + 4, 12);
    case2_u32("input out of range", "layer 1's input is layer 3 (a later one)", good, n, 1, R_IN0, 3);
    case2_u32("input out of range", "layer 2's input is layer 2 (itself)", good, n, 2, R_IN0, 2);
    case2_u32("input out of range", "layer 2's input is -2", good, n, 2, R_IN0, (uint32_t)-2);
    case2_u32("input out of range", "layer 4's input is 2^31-1", good, n, 4, R_IN0, 0x7FFFFFFFu);
    case2_u32("extra input", "layer 3 (ReLU) gets a second input, layer 0", good, n, 3, R_IN1, 0);
    case2_u32("absurd size", "node count 2^32-1", good, n, -1, (size_t)mf_find_section(good, n, "GRPH", NULL), 0xFFFFFFFFu);
    case2_u32("absurd size", "node count 5000", good, n, -1, (size_t)mf_find_section(good, n, "GRPH", NULL), 5000);
    {
        long at = mf_find_section(good, n, "GRPH", NULL);
        memcpy(buf, good, n);
        le32(buf + at - 8, 0);
        le32(buf + at - 4, 0x80000000u);
        fix_crc(buf, n);
        case2("absurd size", "GRPH section length 2^63", buf, n);
        at = mf_find_section(good, n, "PARM", NULL);
        memcpy(buf, good, n);
        le32(buf + at - 4, 0x100);
        fix_crc(buf, n);
        case2("absurd size", "PARM section length + 2^40", buf, n);
    }
    case2_u32("absurd size", "layer 1's name length 2^32-1", good, n, 1, R_NAME_LENGTH, 0xFFFFFFFFu);
    {
        memcpy(buf, good, n);
        le32(buf + record_at(good, n, 1) + R_UNITS, 1u << 30);
        le32(buf + record_at(good, n, 1) + R_C, 1u << 30);
        fix_crc(buf, n);
        case2("absurd size", "layer 1 (linear) with 2^30 outputs", buf, n);
        memcpy(buf, good, n);
        le32(buf + record_at(good, n, 0) + R_H, 65536);
        le32(buf + record_at(good, n, 0) + R_W, 65536);
        fix_crc(buf, n);
        case2("absurd size", "an input of 1x65536x65536", buf, n);
    }
    {
        /* valid files of graphs too big or that nn_compile refuses, written with tests/model_file.h */
        const mf_node big[2] = {MF_INPUT(64, 1024, 1024, "in"), MF_ACTIVATION(0, 64, 1024, 1024, 1, 0.0f, "act")};
        const mf_node one[2] = {MF_INPUT(1, 1, 4, "in"), MF_LINEAR(0, 1, 1, "fc")};
        mf_section sections[4] = {{"GRPH", &g}, {"META", &mt}, {"PARM", &pa}, {"STAT", &stt}};
        g.size = mt.size = pa.size = stt.size = 0;
        mf_graph(&g, 0, big, 2);
        mf_u32(&mt, 0);
        mf_file(&file, sections, 4);
        case2("absurd size", "a valid file: input 64x1024x1024 and a ReLU (768 MiB per sample in buffers)", file.data, file.size);
        g.size = 0;
        mf_graph(&g, 1, one, 2);
        for (i = 0; i < 5; i++) mf_f32(&pa, 0.5f);
        mf_file(&file, sections, 4);
        case2("graph nn_compile refuses", "a valid file: linear 4 -> 1 with softmax cross-entropy (one class)", file.data, file.size);
    }
    case2_u32("setting a builder ignores", "layer 1 (linear) with kernel 5", good, n, 1, R_KERNEL, 5);
    case2_u32("setting a builder changes", "layer 1's bias flag 2", good, n, 1, R_BIAS, 2);
    case2_u32("wrong output shape", "layer 1 (linear 6) says 7 outputs", good, n, 1, R_C, 7);
    case2_u32("second input layer", "layer 3 (ReLU) made an input layer", good, n, 3, R_OP, 0);
    case2_u32("layer leading nowhere", "layer 4 (the output) takes layer 2, so layer 3 leads nowhere", good, n, 4, R_IN0, 2);
    {
        size_t at = record_at(good, n, 1) + R_NAME;
        memcpy(buf, good, n);
        buf[at + 2] = ' ';
        fix_crc(buf, n);
        case2("bad name", "a space in layer 1's name", buf, n);
        memcpy(buf, good, n);
        memcpy(buf + at, "linear2", 7); /* layer 1 "linear1" becomes layer 4's "linear2" */
        fix_crc(buf, n);
        case2("duplicate names", "layer 1 renamed linear2, the name of layer 4", buf, n);
    }
    /* sections rearranged */
    payload(&g, good, n, "GRPH");
    payload(&mt, good, n, "META");
    payload(&pa, good, n, "PARM");
    payload(&stt, good, n, "STAT");
    extra.size = 0;
    mf_u32(&extra, 1);
    {
        const mf_section twice[5] = {{"GRPH", &g}, {"GRPH", &g}, {"META", &mt}, {"PARM", &pa}, {"STAT", &stt}};
        const mf_section unknown[5] = {{"GRPH", &g}, {"META", &mt}, {"PARM", &pa}, {"STAT", &stt}, {"OPTM", &extra}};
        const mf_section missing[3] = {{"GRPH", &g}, {"META", &mt}, {"PARM", &pa}};
        const mf_section swapped[4] = {{"GRPH", &g}, {"PARM", &pa}, {"META", &mt}, {"STAT", &stt}};
        mf_file(&file, twice, 5);
        case2("duplicate section", "GRPH twice", file.data, file.size);
        mf_file(&file, unknown, 5);
        case2("unknown section", "a section tagged OPTM after STAT (4 bytes)", file.data, file.size);
        mf_file(&file, missing, 3);
        case2("missing section", "no STAT section", file.data, file.size);
        mf_file(&file, swapped, 4);
        case2("sections out of order", "PARM before META", file.data, file.size);
    }
    case2_u32("wrong section count", "the header announces 5 sections", good, n, -1, 12, 5);
    memcpy(buf, good, n);
    buf[n] = 0;
    case2("appended byte", "one 0 byte after the CRC", buf, n + 1);
    /* metadata */
    {
        const mf_section sections[4] = {{"GRPH", &g}, {"META", &mt}, {"PARM", &pa}, {"STAT", &stt}};
        static const char *const dup_keys[2] = {"mean", "mean"}, *const dup_values[2] = {"1", "2"};
        static const char *const space_key[1] = {"my mean"}, *const one_value[1] = {"1"};
        for (k = 0; k < 5; k++) {
            static const char *const hows[5] = {"pair count 2^32-1", "a value length of 2^31", "the key mean twice",
                                                "a key with a space", "a value holding a NUL byte"};
            mt.size = 0;
            if (k == 0) mf_u32(&mt, 0xFFFFFFFFu);
            if (k == 1) { mf_u32(&mt, 1); mf_string(&mt, "mean"); mf_u32(&mt, 0x80000000u); }
            if (k == 2) mf_meta(&mt, dup_keys, dup_values, 2);
            if (k == 3) mf_meta(&mt, space_key, one_value, 1);
            if (k == 4) { mf_u32(&mt, 1); mf_string(&mt, "mean"); mf_u32(&mt, 3); mf_bytes(&mt, "0\0.5", 3); }
            mf_file(&file, sections, 4);
            case2("bad metadata", hows[k], file.data, file.size);
        }
        payload(&mt, good, n, "META");
        pa.size -= 4;
        mf_file(&file, sections, 4);
        case2("one parameter missing", "PARM 4 bytes short (and the file too)", file.data, file.size);
    }
    {
        long parm = mf_find_section(good, n, "PARM", NULL), stat = mf_find_section(good, n, "STAT", NULL);
        memcpy(buf, good, n);
        for (i = (size_t)parm; i < (size_t)stat - 12; i += 4) le32(buf + i, 0x7FC00000u);
        fix_crc(buf, n);
        case2("NaN weights", "every parameter a quiet NaN, valid CRC", buf, n);
        case2_u32("infinite statistic", "a running variance +inf, valid CRC", good, n, -1, (size_t)stat + 4 * 6, 0x7F800000u);
        case2_u32("negative variance", "a running variance of -1, valid CRC", good, n, -1, (size_t)stat + 4 * 6, 0xBF800000u);
    }
    must(nn_save(t, other), "nn_save");
    {
        size_t no = read_all(other, buf, sizeof buf);
        case2("other architecture, same sizes", "saved from the same layers with tanh instead of ReLU", buf, no);
    }
    must(nn_save(o, other), "nn_save");
    {
        size_t no = read_all(other, buf, sizeof buf);
        case2("other architecture", "saved from a 8->3 linear model", buf, no);
    }
    save_v1(code2, other);
    {
        size_t no = read_all(other, buf, sizeof buf);
        case2("format 1", "the same model in a format-1 file (no graph)", buf, no);
    }
    case2("empty file", "0 bytes", buf, 0);
    {
        char missing[128];
        answer2 a;
        path_in(missing, sizeof missing, "missing.nn");
        a = load_both(missing, NULL, 0);
        row2("missing file", "a path that does not exist", &a);
        a = load_both(dir, NULL, 0);
        row2("a directory", "the temporary directory as the model file", &a);
    }
    {
        nn_model *out = (nn_model *)&out;
        nn_status st = nn_model_load(NULL, 4, &out);
        printf("| NULL path | nn_model_load(NULL, 4, &model), nn_load(model, NULL) | %s%s | %s | %s |\n", status_text(st),
               out ? " **(a model came back!)**" : "", status_text(nn_load(code2, NULL)), message());
        st = nn_model_load(path, 0, &out);
        printf("| max batch 0 | nn_model_load(path, 0, &model) | %s | | %s |\n", status_text(st), message());
        st = nn_model_load(path, 4, NULL);
        printf("| NULL result | nn_model_load(path, 4, NULL) | %s | | %s |\n", status_text(st), message());
    }
    remove(path);
    remove(other);
    path_in(path, sizeof path, "case2.nn");
    remove(path);
    nn_model_free(code2);
    nn_model_free(t);
    nn_model_free(o);
    free(code2_params);
    free(code2_state);
}

/* ---- safetensors ------------------------------------------------------------------------------ */
/* Each file goes to nn_load_safetensors twice, into model_a() built in code: strict, then partial
   with a report. Before each load the model holds its own initial values; the files hold a donor
   model_a()'s, every one set apart from those, so every tensor a load takes changes the model. A
   failed load must leave the model bit-identical (flagged in bold otherwise); a partial load that
   succeeds says how many of the model's 8 tensors it took, and must not have changed a tensor its
   report names (flagged otherwise). */
static nn_model *st_model;
static float *st_params, *st_state;
#define ST_TENSORS 8 /* model_a's tensors with values: two linear layers' weight and bias, batch norm's four */

typedef struct st_answer {
    nn_status strict, partial;
    int strict_changed, partial_changed; /* a failed load changed the model */
    int taken;                           /* tensors a successful partial load changed */
    int reported_changed;                /* of those, tensors its report names */
    double seconds;                      /* of both loads */
    char message[700], report[1000];
} st_answer;

static void st_reset(void)
{
    memcpy(nn_params(st_model), st_params, nn_param_count(st_model) * sizeof(float));
    memcpy(nn_state(st_model), st_state, nn_state_count(st_model) * sizeof(float));
}
static int st_changed(void)
{
    return memcmp(nn_params(st_model), st_params, nn_param_count(st_model) * sizeof(float)) != 0 ||
           memcmp(nn_state(st_model), st_state, nn_state_count(st_model) * sizeof(float)) != 0;
}

/* the tensors a successful load changed, and how many of them its report names */
static void st_count_taken(st_answer *a)
{
    int i, k;
    for (i = 0; i < nn_node_count(st_model); i++) {
        nn_node *n = nn_node_at(st_model, i);
        for (k = 0; k < nn_node_tensor_count(n); k++) {
            const char *tensor = nn_node_tensor_name(n, k);
            size_t count;
            const float *now = nn_node_tensor(st_model, n, tensor, &count);
            const int statistic = !strncmp(tensor, "running_", 8);
            const float *before;
            char key[160];
            int changed;
            if (!now) continue;
            before = (statistic ? st_state : st_params) + (now - (statistic ? nn_state(st_model) : nn_params(st_model)));
            changed = memcmp(now, before, count * sizeof(float)) != 0;
            snprintf(key, sizeof key, "%s.%s:", nn_node_name(n), tensor);
            a->taken += changed;
            a->reported_changed += changed && strstr(a->report, key) != NULL;
        }
    }
}

static st_answer st_load(const char *path, const unsigned char *data, size_t n)
{
    st_answer a;
    double t0;
    memset(&a, 0, sizeof a);
    if (data) write_file(path, data, n);
    st_reset();
    t0 = nn_seconds();
    a.strict = nn_load_safetensors(st_model, path, NN_SAFETENSORS_STRICT, NULL, 0);
    a.seconds = nn_seconds() - t0;
    if (a.strict != NN_OK) {
        a.strict_changed = st_changed();
        snprintf(a.message, sizeof a.message, "%s", message());
    }
    st_reset();
    t0 = nn_seconds();
    a.partial = nn_load_safetensors(st_model, path, NN_SAFETENSORS_PARTIAL, a.report, sizeof a.report);
    a.seconds += nn_seconds() - t0;
    if (a.partial != NN_OK) {
        a.partial_changed = st_changed();
        a.report[0] = 0;
        if (!a.message[0]) snprintf(a.message, sizeof a.message, "%s", message());
    } else {
        st_count_taken(&a);
    }
    st_reset();
    return a;
}

/* the report's first lines, joined by "; " ('|' escaped; at most 3 lines, then how many more) */
static void st_print_report(const char *report)
{
    int lines = 0, shown = 0;
    const char *p;
    for (p = report; *p; p++) lines += *p == '\n';
    for (p = report; *p && shown < 3; p++) {
        if (*p == '\n') {
            if (++shown < 3 && p[1]) printf("; ");
        } else if (*p == '|') {
            printf("\\|");
        } else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E) {
            printf("\\x%02X", (unsigned char)*p);
        } else {
            putchar(*p);
        }
    }
    if (lines > 3) printf("; ... (%d lines in all, as many as the report's 1000 bytes held)", lines);
}

static void st_row(const char *kind, const char *how, const st_answer *a)
{
    printf("| %s | %s | %s%s | %s", kind, how, status_text(a->strict), a->strict_changed ? " **(the model was changed!)**" : "",
           status_text(a->partial));
    if (a->partial == NN_OK) printf(", took %d of %d", a->taken, ST_TENSORS);
    if (a->partial_changed) printf(" **(the model was changed!)**");
    if (a->reported_changed) printf(" **(it changed %d tensors its report names!)**", a->reported_changed);
    printf(" | %s", a->message);
    if (a->report[0]) {
        printf("%sreport: ", a->message[0] ? "; partial " : "partial ");
        st_print_report(a->report);
    } else if (!a->message[0]) {
        printf("accepted, nothing reported");
    }
    printf(" |\n");
    fflush(stdout);
}

static void st_case(const char *kind, const char *how, const unsigned char *data, size_t n)
{
    char path[128];
    st_answer a;
    path_in(path, sizeof path, "case.safetensors");
    a = st_load(path, data, n);
    st_row(kind, how, &a);
}

/* A file: the 8-byte little-endian header length, the header, the data. */
static void st_file(mf_buf *f, const char *json, size_t json_length, const unsigned char *data, size_t n)
{
    f->size = 0;
    mf_u64(f, json_length);
    mf_bytes(f, json, json_length);
    mf_bytes(f, data, n);
}

/* A header entry as JSON text per field (so that a case can put anything there) and its data. */
typedef struct st_entry {
    char name[320], dtype[24], shape[128], offsets[64]; /* offsets "": the running total */
    unsigned char data[512];
    size_t size;
} st_entry;
static st_entry st_ref[ST_TENSORS + 1]; /* the donor's tensors in F32, and num_batches_tracked */
static const int st_ref_count = ST_TENSORS + 1;

/* The file of entries e[0..count), after `before` (raw JSON text, such as a __metadata__ member
   and a comma) inside the object; written into f. */
static void st_entries_file(mf_buf *f, const st_entry *e, int count, const char *before)
{
    static char json[1 << 16];
    static unsigned char data[1 << 14];
    size_t at = 0, size = 0;
    int i;
    at += (size_t)snprintf(json + at, sizeof json - at, "{%s", before);
    for (i = 0; i < count; i++) {
        char offsets[64];
        if (e[i].offsets[0]) snprintf(offsets, sizeof offsets, "%s", e[i].offsets);
        else snprintf(offsets, sizeof offsets, "[%zu, %zu]", size, size + e[i].size);
        at += (size_t)snprintf(json + at, sizeof json - at, "%s\"%s\": {\"dtype\": %s, \"shape\": %s, \"data_offsets\": %s}",
                               i ? ", " : "", e[i].name, e[i].dtype, e[i].shape, offsets);
        memcpy(data + size, e[i].data, e[i].size);
        size += e[i].size;
    }
    at += (size_t)snprintf(json + at, sizeof json - at, "}");
    st_file(f, json, at, data, size);
}

/* the reference entries with entry `which` (by name) replaced by the given fields (NULL: kept) */
static int st_find_ref(const char *name)
{
    int i;
    for (i = 0; i < st_ref_count; i++)
        if (!strcmp(st_ref[i].name, name)) return i;
    fprintf(stderr, "reliability_probe: no tensor %s\n", name);
    exit(1);
}
static void st_edit_case(const char *kind, const char *how, const char *name, const char *dtype, const char *shape,
                         const char *offsets, const void *data, size_t size)
{
    static st_entry e[ST_TENSORS + 1];
    static mf_buf f;
    const int i = st_find_ref(name);
    memcpy(e, st_ref, sizeof e);
    if (dtype) snprintf(e[i].dtype, sizeof e[i].dtype, "\"%s\"", dtype);
    if (shape) snprintf(e[i].shape, sizeof e[i].shape, "%s", shape);
    if (offsets) snprintf(e[i].offsets, sizeof e[i].offsets, "%s", offsets);
    if (data) {
        memcpy(e[i].data, data, size);
        e[i].size = size;
    }
    st_entries_file(&f, e, st_ref_count, "");
    st_case(kind, how, f.data, f.size);
}

/* a header given as raw JSON text, with the reference data section (the donor's tensors in order) */
static void st_json_case(const char *kind, const char *how, const char *json)
{
    static unsigned char data[1 << 14];
    static mf_buf f;
    size_t size = 0;
    int i;
    for (i = 0; i < st_ref_count; i++) {
        memcpy(data + size, st_ref[i].data, st_ref[i].size);
        size += st_ref[i].size;
    }
    st_file(&f, json, strlen(json), data, size);
    st_case(kind, how, f.data, f.size);
}

typedef struct st_tally {
    tally strict, partial;
    int reported_changed, accepted_took[ST_TENSORS + 1];
} st_tally;

/* 1 if a and b differ at most in their numbers (so a tally shows one message of each kind) */
static int same_but_numbers(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (isdigit((unsigned char)*a)) a++;
            while (isdigit((unsigned char)*b)) b++;
        } else if (*a++ != *b++) {
            return 0;
        }
    }
    return *a == *b;
}

static void st_tally_add(st_tally *t, const st_answer *a)
{
    int i;
    t->strict.count[a->strict]++;
    t->partial.count[a->partial]++;
    t->strict.changed += a->strict_changed;
    t->partial.changed += a->partial_changed;
    t->reported_changed += a->reported_changed;
    if (a->partial == NN_OK && a->taken <= ST_TENSORS) t->accepted_took[a->taken]++;
    if (a->strict == NN_OK) return;
    for (i = 0; i < t->strict.n_messages; i++)
        if (same_but_numbers(t->strict.messages[i], a->message)) return;
    if (t->strict.n_messages < 4) snprintf(t->strict.messages[t->strict.n_messages++], sizeof t->strict.messages[0], "%s", a->message);
}

static void st_tally_row(const st_tally *t, const char *kind, const char *how)
{
    int i;
    printf("| %s | %s | ", kind, how);
    tally_counts(&t->strict);
    if (t->strict.changed) printf(" **(%d changed the model!)**", t->strict.changed);
    printf(" | ");
    tally_counts(&t->partial);
    if (t->partial.changed) printf(" **(%d changed the model!)**", t->partial.changed);
    if (t->reported_changed) printf(" **(%d changed reported tensors!)**", t->reported_changed);
    printf(" | ");
    for (i = 0; i < t->strict.n_messages; i++) printf("%s\"%s\"", i ? "; " : "", t->strict.messages[i]);
    if (t->partial.count[NN_OK]) {
        int k, first = 1;
        printf("%spartial loads that succeeded took ", t->strict.n_messages ? "; " : "");
        for (k = ST_TENSORS; k >= 0; k--)
            if (t->accepted_took[k]) {
                printf("%s%d tensors x%d", first ? "" : ", ", k, t->accepted_took[k]);
                first = 0;
            }
    }
    printf(" |\n");
    fflush(stdout);
}

static void probe_safetensors(void)
{
    static unsigned char good[1 << 14], buf[1 << 14];
    static mf_buf f;
    static st_entry e[2 * (ST_TENSORS + 1)];
    char path[128], how[300], name[400];
    nn_model *donor = model_a();
    size_t n, i, header;
    int k, bit, count;
    st_tally tt;

    /* the donor: every parameter and statistic set apart from any initial value (variances > 0) */
    for (i = 0; i < nn_param_count(donor); i++) nn_params(donor)[i] = 0.5f + 0.001f * (float)i;
    for (i = 0; i < nn_state_count(donor); i++) nn_state(donor)[i] = 0.25f + 0.001f * (float)i;
    st_model = model_a();
    st_params = (float *)malloc(nn_param_count(st_model) * sizeof(float));
    st_state = (float *)malloc(nn_state_count(st_model) * sizeof(float));
    memcpy(st_params, nn_params(st_model), nn_param_count(st_model) * sizeof(float));
    memcpy(st_state, nn_state(st_model), nn_state_count(st_model) * sizeof(float));
    /* the reference entries: each tensor of the donor in F32 in state_dict order, with batch
       norm's num_batches_tracked (I64 0) after its four */
    count = 0;
    for (i = 0; i < (size_t)nn_node_count(donor); i++) {
        nn_node *node = nn_node_at(donor, (int)i);
        for (k = 0; k < nn_node_tensor_count(node); k++) {
            const char *tensor = nn_node_tensor_name(node, k);
            size_t values;
            const float *v = nn_node_tensor(donor, node, tensor, &values);
            st_entry *r = &st_ref[count++];
            snprintf(r->name, sizeof r->name, "%s.%s", nn_node_name(node), tensor);
            snprintf(r->dtype, sizeof r->dtype, "\"F32\"");
            if (nn_node_op(node) == NN_OP_LINEAR && !strcmp(tensor, "weight"))
                snprintf(r->shape, sizeof r->shape, "[%d, %zu]", nn_node_size(node), values / (size_t)nn_node_size(node));
            else
                snprintf(r->shape, sizeof r->shape, "[%zu]", values);
            nn__put_floats(r->data, v, values);
            r->size = 4 * values;
        }
        if (nn_node_op(node) == NN_OP_BATCHNORM) {
            st_entry *r = &st_ref[count++];
            snprintf(r->name, sizeof r->name, "%s.num_batches_tracked", nn_node_name(node));
            snprintf(r->dtype, sizeof r->dtype, "\"I64\"");
            snprintf(r->shape, sizeof r->shape, "[]");
            r->size = 8;
        }
    }
    if (count != st_ref_count) {
        fprintf(stderr, "reliability_probe: model_a has %d safetensors entries, expected %d\n", count, st_ref_count);
        exit(1);
    }
    path_in(path, sizeof path, "good.safetensors");
    must(nn_save_safetensors(donor, path), "nn_save_safetensors");
    n = read_all(path, good, sizeof good);
    header = (size_t)nn__get_u64(good);

    st_case("valid (reference)", "nn_save_safetensors of the donor", good, n);
    st_entries_file(&f, st_ref, st_ref_count, "");
    st_case("valid (reference)", "the same tensors written by the probe (no `__metadata__`, no padding)", f.data, f.size);

    memset(&tt, 0, sizeof tt);
    for (i = 0; i < n; i++) {
        st_answer a = st_load(path, good, i);
        st_tally_add(&tt, &a);
    }
    snprintf(how, sizeof how, "the valid %zu-byte file (%zu-byte header) cut at every length 0..%zu", n, header, n - 1);
    st_tally_row(&tt, "truncated (every length)", how);
    memset(&tt, 0, sizeof tt);
    for (i = 0; i < n; i++)
        for (bit = 0; bit < 8; bit++) {
            st_answer a;
            memcpy(buf, good, n);
            buf[i] ^= (unsigned char)(1u << bit);
            a = st_load(path, buf, n);
            st_tally_add(&tt, &a);
        }
    snprintf(how, sizeof how, "each of the %zu bits of the valid file flipped, one at a time (a flip in the data section is "
             "another valid file)", n * 8);
    st_tally_row(&tt, "flipped bits (every bit)", how);
    memset(&tt, 0, sizeof tt);
    for (i = 8; i < 8 + header; i++) {
        st_answer a;
        memcpy(buf, good, n);
        buf[i] ^= 0xFF;
        a = st_load(path, buf, n);
        st_tally_add(&tt, &a);
    }
    snprintf(how, sizeof how, "each of the %zu header bytes inverted (a byte >= 0x80 in a name passes as UTF-8, unchecked)", header);
    st_tally_row(&tt, "inverted header bytes", how);

    /* the header length */
    {
        const struct { uint64_t length; const char *how; } lengths[] = {
            {0, "0"}, {1, "1"}, {7, "7 (the header cut inside)"}, {(uint64_t)n - 8 + 1, "the file's size - 8 + 1 (one byte beyond the file)"},
            {(uint64_t)100 << 20 | 1, "100 MiB + 1 (above the reference implementation's limit)"},
            {(uint64_t)1 << 63, "2^63"}, {UINT64_MAX - 7, "2^64 - 8 (8 + length wraps to 0)"}, {UINT64_MAX, "2^64 - 1"}};
        for (k = 0; k < (int)(sizeof lengths / sizeof lengths[0]); k++) {
            memcpy(buf, good, n);
            nn__put_u64(buf, lengths[k].length);
            snprintf(how, sizeof how, "header length field %s", lengths[k].how);
            st_case("header length", how, buf, n);
        }
        memcpy(buf, good, n);
        nn__put_u64(buf, n - 8);
        st_case("header length", "the whole rest of the file (the data read as JSON text)", buf, n);
    }
    st_case("empty file", "0 bytes", good, 0);
    st_case("short file", "7 bytes", good, 7);
    {
        /* a model file (nn_save) passed as a safetensors file */
        char model_path[128];
        size_t mn;
        path_in(model_path, sizeof model_path, "model.nn");
        must(nn_save(donor, model_path), "nn_save");
        mn = read_all(model_path, buf, sizeof buf);
        remove(model_path);
        st_case("a model file", "nn_save's file of the donor (magic NNHMODEL read as a header length)", buf, mn);
    }

    /* JSON */
    {
        static const struct { const char *kind, *how, *json; } cases[] = {
            {"JSON: not an object", "the header []", "[]"},
            {"JSON: not an object", "a byte-order mark before the {", "\xEF\xBB\xBF{}"},
            {"JSON: unclosed object", "{\"linear1.weight\": {...}", "{\"linear1.weight\": {\"dtype\": \"F32\", \"shape\": [6, 8], \"data_offsets\": [0, 192]}"},
            {"JSON: trailing bytes", "`} x` after the object", "{} x"},
            {"JSON: trailing bytes", "}} (one brace too many)", "{}}"},
            {"JSON: trailing comma", "{\"__metadata__\": {},}", "{\"__metadata__\": {},}"},
            {"JSON: unclosed string", "a name whose closing quote is missing", "{\"linear1.weight: {}}"},
            {"JSON: bad escape", "\\q in a name", "{\"linear1.\\qweight\": {}}"},
            {"JSON: bad escape", "\\x41 in a name", "{\"linear1.\\x41\": {}}"},
            {"JSON: bad escape", "\\u12 (two hex digits) at the end of the header", "{\"a\\u12"},
            {"JSON: bad escape", "\\u00g1 (a non-hex digit)", "{\"a\\u00g1\": {}}"},
            {"JSON: lone surrogate", "\\ud800 (a high surrogate alone)", "{\"linear1.\\ud800weight\": {}}"},
            {"JSON: lone surrogate", "\\udc00 (a low surrogate alone)", "{\"linear1.\\udc00weight\": {}}"},
            {"JSON: lone surrogate", "\\ud800\\u0041 (high, then not a low one)", "{\"a\\ud800\\u0041\": {}}"},
            {"JSON: control character", "a raw tab inside a name", "{\"linear1.\tweight\": {}}"},
            {"JSON: duplicate key", "dtype twice in an entry",
             "{\"linear2.bias\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]}}"},
            {"JSON: unknown member", "an entry with \"note\": \"x\"",
             "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12], \"note\": \"x\"}}"},
            {"JSON: missing member", "an entry without data_offsets", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3]}}"},
            {"JSON: nesting where a value is expected", "\"dtype\": {\"F32\": 1}",
             "{\"linear2.bias\": {\"dtype\": {\"F32\": 1}, \"shape\": [3], \"data_offsets\": [0, 12]}}"},
            {"JSON: nesting where a value is expected", "\"shape\": [[3]]",
             "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [[3]], \"data_offsets\": [0, 12]}}"},
            {"JSON: nesting where a value is expected", "an entry that is an array", "{\"linear2.bias\": [\"F32\", [3], [0, 12]]}"},
            {"JSON: nesting where a value is expected", "`__metadata__` holding an object",
             "{\"__metadata__\": {\"format\": {\"pt\": 1}}}"},
            {"JSON: other value types", "\"dtype\": null", "{\"linear2.bias\": {\"dtype\": null, \"shape\": [3], \"data_offsets\": [0, 12]}}"},
            {"JSON: other value types", "`__metadata__` holding a number", "{\"__metadata__\": {\"version\": 1}}"},
            {"JSON: numbers", "a shape of [3.0]", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3.0], \"data_offsets\": [0, 12]}}"},
            {"JSON: numbers", "a shape of [3e0]", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3e0], \"data_offsets\": [0, 12]}}"},
            {"JSON: numbers", "a shape of [03]", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [03], \"data_offsets\": [0, 12]}}"},
            {"JSON: numbers", "a shape of [-3]", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [-3], \"data_offsets\": [0, 12]}}"},
            {"JSON: numbers", "a shape of [+3]", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [+3], \"data_offsets\": [0, 12]}}"},
            {"JSON: numbers", "an offset of 2^53 + 1", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 9007199254740993]}}"},
            {"JSON: numbers", "an offset of 10^20", "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 100000000000000000000]}}"},
        };
        for (k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) st_json_case(cases[k].kind, cases[k].how, cases[k].json);
    }
    st_file(&f, "{}", 2, NULL, 0);
    st_case("no tensors", "the header {} and no data", f.data, f.size);
    {
        /* 30 000 nested arrays as a shape: a reader that recursed would exhaust its stack */
        static char json[40000];
        size_t at = (size_t)snprintf(json, sizeof json, "{\"linear2.bias\": {\"dtype\": \"F32\", \"shape\": ");
        for (i = 0; i < 30000; i++) json[at++] = '[';
        json[at] = 0;
        st_json_case("JSON: deep nesting", "a shape of 30 000 nested arrays", json);
    }
    {
        /* a tensor name of 300 bytes; the duplicates and aliases of a real name */
        memset(name, 'a', 300);
        name[300] = 0;
        snprintf((char *)buf, sizeof buf, "{\"%s\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}}", name);
        st_json_case("names", "a tensor name of 300 bytes", (const char *)buf);
    }
    memcpy(e, st_ref, sizeof st_ref);
    memcpy(&e[st_ref_count], &st_ref[st_find_ref("linear2.bias")], sizeof e[0]);
    st_entries_file(&f, e, st_ref_count + 1, "");
    st_case("names", "linear2.bias twice (its data twice too)", f.data, f.size);
    snprintf(e[st_ref_count].name, sizeof e[0].name, "linear2.bi\\u0061s");
    st_entries_file(&f, e, st_ref_count + 1, "");
    st_case("names", "linear2.bias, and linear2.bi\\u0061s (the same name, escaped)", f.data, f.size);
    memcpy(e, st_ref, sizeof st_ref);
    snprintf(e[st_find_ref("linear2.bias")].name, sizeof e[0].name, "linear2.bi\\u0061s");
    st_entries_file(&f, e, st_ref_count, "");
    st_case("names", "linear2.bias spelt linear2.bi\\u0061s", f.data, f.size);
    snprintf(e[st_find_ref("linear2.bias")].name, sizeof e[0].name, "linear2.bias\\u0000evil");
    st_entries_file(&f, e, st_ref_count, "");
    st_case("names", "linear2.bias spelt linear2.bias\\u0000evil (an escaped NUL, then more)", f.data, f.size);
    snprintf(e[st_find_ref("linear2.bias")].name, sizeof e[0].name, "linear2.bias\xff");
    st_entries_file(&f, e, st_ref_count, "");
    st_case("names", "linear2.bias followed by the byte 0xFF (not UTF-8)", f.data, f.size);
    snprintf(e[st_find_ref("linear2.bias")].name, sizeof e[0].name, "__metadata__");
    st_entries_file(&f, e, st_ref_count, "");
    st_case("names", "linear2.bias's entry named `__metadata__`", f.data, f.size);
    memcpy(e, st_ref, sizeof st_ref);
    st_entries_file(&f, e, st_ref_count, "\"__metadata__\": {\"format\": \"pt\"}, \"__metadata__\": {\"format\": \"np\"}, ");
    st_case("names", "`__metadata__` twice", f.data, f.size);

    /* offsets and sizes */
    st_edit_case("offsets overlap", "linear1.bias at [184, 208], inside linear1.weight", "linear1.bias", NULL, NULL, "[184, 208]", NULL, 0);
    st_edit_case("offsets leave a hole", "linear1.bias at [196, 220] (4 bytes unused before it)", "linear1.bias", NULL, NULL,
                 "[196, 220]", NULL, 0);
    {
        size_t total = 0;
        for (k = 0; k < st_ref_count; k++) total += st_ref[k].size;
        snprintf(how, sizeof how, "[%zu, %zu]", total - 12, total + 4);
        st_edit_case("offsets past the end", "linear2.bias's end 4 bytes beyond the data section", "linear2.bias", NULL, NULL, how,
                     NULL, 0);
        snprintf(how, sizeof how, "[%zu, %zu]", total, total - 12);
        st_edit_case("offsets begin > end", "linear2.bias at [end, begin]", "linear2.bias", NULL, NULL, how, NULL, 0);
        snprintf(how, sizeof how, "[%zu]", total - 12);
        st_edit_case("offsets malformed", "linear2.bias's data_offsets with one number", "linear2.bias", NULL, NULL, how, NULL, 0);
        snprintf(how, sizeof how, "[%zu, %zu, %zu]", total - 12, total, total);
        st_edit_case("offsets malformed", "linear2.bias's data_offsets with three numbers", "linear2.bias", NULL, NULL, how, NULL, 0);
    }
    for (k = 0; k < 2; k++) {
        /* a zero-size tensor at offset 0, where linear1.weight begins too: valid in either order
           (the reference implementation sorts by (begin, end)) */
        e[k] = st_ref[0];
        e[1 - k] = st_ref[0];
        snprintf(e[1 - k].name, sizeof e[0].name, "empty");
        snprintf(e[1 - k].shape, sizeof e[0].shape, "[0]");
        snprintf(e[1 - k].offsets, sizeof e[0].offsets, "[0, 0]");
        e[1 - k].size = 0;
        memcpy(&e[2], &st_ref[1], (size_t)(st_ref_count - 1) * sizeof e[0]);
        st_entries_file(&f, e, st_ref_count + 1, "");
        st_case("zero-size tensor", k ? "an extra tensor of shape [0] at [0, 0], listed before linear1.weight at [0, 192]"
                                      : "an extra tensor of shape [0] at [0, 0], listed after linear1.weight at [0, 192]",
                f.data, f.size);
    }
    {
        unsigned char extra[16];
        memset(extra, 0, sizeof extra);
        memcpy(extra, st_ref[st_find_ref("linear2.bias")].data, 12);
        st_edit_case("size != shape x dtype", "linear2.bias: shape [3] F32 with 16 bytes", "linear2.bias", NULL, NULL, NULL, extra, 16);
        st_edit_case("size != shape x dtype", "linear2.bias: shape [3] F32 with 8 bytes", "linear2.bias", NULL, NULL, NULL, extra, 8);
        st_edit_case("size != shape x dtype", "linear2.bias: shape [3] F16 with 12 bytes (F32's)", "linear2.bias", "F16", NULL, NULL,
                     NULL, 0);
    }
    st_edit_case("unknown dtype", "linear2.bias of dtype F33", "linear2.bias", "F33", NULL, NULL, NULL, 0);
    st_edit_case("unknown dtype", "linear2.bias of dtype f32 (lower case)", "linear2.bias", "f32", NULL, NULL, NULL, 0);
    st_edit_case("unknown dtype", "linear2.bias of dtype Q4_0 (a quantised type of another format)", "linear2.bias", "Q4_0", NULL,
                 NULL, NULL, 0);
    st_edit_case("non-float dtype", "linear2.bias as I32 (12 bytes)", "linear2.bias", "I32", NULL, NULL, NULL, 0);
    {
        unsigned char raw[24];
        memset(raw, 1, sizeof raw);
        st_edit_case("non-float dtype", "linear2.bias as I64 (24 bytes)", "linear2.bias", "I64", NULL, NULL, raw, 24);
        st_edit_case("non-float dtype", "linear2.bias as BOOL (3 bytes)", "linear2.bias", "BOOL", NULL, NULL, raw, 3);
        st_edit_case("non-float dtype", "linear2.bias as F8_E4M3 (3 bytes)", "linear2.bias", "F8_E4M3", NULL, NULL, raw, 3);
    }
    st_edit_case("rank", "linear2.bias of shape [1, 1, 1, 1, 1, 1, 1, 3] (8 dimensions: parsed, then a shape mismatch)",
                 "linear2.bias", NULL, "[1, 1, 1, 1, 1, 1, 1, 3]", NULL, NULL, 0);
    st_edit_case("rank > 8", "linear2.bias of shape [1, 1, 1, 1, 1, 1, 1, 1, 3] (9 dimensions)", "linear2.bias", NULL,
                 "[1, 1, 1, 1, 1, 1, 1, 1, 3]", NULL, NULL, 0);
    st_edit_case("dimension overflow", "linear2.bias of shape [2^40, 2^40, 2^40] (the byte count overflows 64 bits)",
                 "linear2.bias", NULL, "[1099511627776, 1099511627776, 1099511627776]", NULL, NULL, 0);
    st_edit_case("dimension overflow", "linear2.bias of shape [2^40 + 1]", "linear2.bias", NULL, "[1099511627777]", NULL, NULL, 0);
    st_edit_case("dimension overflow", "linear2.bias of shape [2^32, 2^32, 0] and 0 bytes (the product passes 2^64 before the 0)",
                 "linear2.bias", NULL, "[4294967296, 4294967296, 0]", NULL, "", 0);

    /* values */
    {
        /* linear2.bias = {1, bad, 0.5} in each float dtype, little-endian */
        static const struct { const char *kind, *how, *dtype; unsigned char bytes[24]; size_t size; } bad[] = {
            {"NaN value", "linear2.bias in F16: 1, NaN (0x7E00), 0.5", "F16", {0x00, 0x3C, 0x00, 0x7E, 0x00, 0x38}, 6},
            {"infinite value", "linear2.bias in F16: 1, +inf (0x7C00), 0.5", "F16", {0x00, 0x3C, 0x00, 0x7C, 0x00, 0x38}, 6},
            {"NaN value", "linear2.bias in BF16: 1, NaN (0x7FC0), 0.5", "BF16", {0x80, 0x3F, 0xC0, 0x7F, 0x00, 0x3F}, 6},
            {"NaN value", "linear2.bias in F32: 1, NaN, 0.5", "F32", {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0xC0, 0x7F, 0x00, 0x00, 0x00, 0x3F}, 12},
            {"infinite value", "linear2.bias in F32: 1, -inf, 0.5", "F32", {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x80, 0xFF, 0x00, 0x00, 0x00, 0x3F}, 12},
            {"NaN value", "linear2.bias in F64: 1, NaN, 0.5", "F64",
             {0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F, 0, 0, 0, 0, 0, 0, 0xE0, 0x3F}, 24},
            {"value beyond float", "linear2.bias in F64: 1, 1e300, 0.5", "F64",
             {0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x9C, 0x75, 0x00, 0x88, 0x3C, 0xE4, 0x37, 0x7E, 0, 0, 0, 0, 0, 0, 0xE0, 0x3F}, 24},
        };
        for (k = 0; k < (int)(sizeof bad / sizeof bad[0]); k++)
            st_edit_case(bad[k].kind, bad[k].how, "linear2.bias", bad[k].dtype, NULL, NULL, bad[k].bytes, bad[k].size);
    }
    {
        /* a NaN in the batch-norm running variance */
        unsigned char raw[24];
        memcpy(raw, st_ref[st_find_ref("batchnorm1.running_var")].data, 24);
        le32(raw + 8, 0x7FC00000u);
        st_edit_case("NaN value", "batchnorm1.running_var[2] a NaN (F32)", "batchnorm1.running_var", NULL, NULL, NULL, raw, 24);
        le32(raw + 8, 0xBF800000u);
        st_edit_case("negative variance", "batchnorm1.running_var[2] = -1 (F32)", "batchnorm1.running_var", NULL, NULL, NULL, raw, 24);
    }

    /* tensors the model does not have, or has in another shape: strict refuses, partial reports */
    for (k = 0; k < 3; k++) {
        static const char *const which[3] = {"linear1.weight", "batchnorm1.running_mean", "batchnorm1.num_batches_tracked"};
        const int skip = st_find_ref(which[k]);
        int j, m = 0;
        for (j = 0; j < st_ref_count; j++)
            if (j != skip) e[m++] = st_ref[j];
        st_entries_file(&f, e, m, "");
        snprintf(how, sizeof how, "no %s", which[k]);
        st_case("missing tensor", how, f.data, f.size);
    }
    {
        int m = 0;
        for (k = 0; k < st_ref_count; k++)
            if (strncmp(st_ref[k].name, "linear1.", 8) != 0) e[m++] = st_ref[k];
        st_entries_file(&f, e, m, "");
        st_case("missing tensors", "no linear1 (its weight and bias)", f.data, f.size);
    }
    memcpy(e, st_ref, sizeof st_ref);
    memcpy(&e[st_ref_count], &st_ref[st_find_ref("linear2.bias")], sizeof e[0]);
    snprintf(e[st_ref_count].name, sizeof e[0].name, "linear3.bias");
    st_entries_file(&f, e, st_ref_count + 1, "");
    st_case("extra tensor", "linear3.bias as well", f.data, f.size);
    memcpy(&e[st_ref_count + 1], &st_ref[st_find_ref("batchnorm1.num_batches_tracked")], sizeof e[0]);
    snprintf(e[st_ref_count + 1].name, sizeof e[0].name, "relu1.num_batches_tracked");
    st_entries_file(&f, e, st_ref_count + 2, "");
    st_case("extra tensors", "linear3.bias and relu1.num_batches_tracked as well", f.data, f.size);
    st_edit_case("mis-shaped tensor", "linear1.weight transposed: [8, 6]", "linear1.weight", NULL, "[8, 6]", NULL, NULL, 0);
    st_edit_case("mis-shaped tensor", "linear1.weight flattened: [48]", "linear1.weight", NULL, "[48]", NULL, NULL, 0);
    st_edit_case("mis-shaped tensor", "linear1.bias of shape [1, 6]", "linear1.bias", NULL, "[1, 6]", NULL, NULL, 0);
    st_edit_case("mis-shaped tensor", "batchnorm1.num_batches_tracked of shape [2] (16 bytes)", "batchnorm1.num_batches_tracked",
                 NULL, "[2]", NULL, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    st_edit_case("num_batches_tracked", "of shape [1] (accepted, as a scalar)", "batchnorm1.num_batches_tracked", NULL, "[1]", NULL,
                 NULL, 0);
    st_edit_case("num_batches_tracked", "as F32 []", "batchnorm1.num_batches_tracked", "F32", NULL, NULL, "\0\0\0\0", 4);
    st_edit_case("num_batches_tracked", "as I64 with the value 2^63 - 1 (read and ignored)", "batchnorm1.num_batches_tracked", NULL,
                 NULL, NULL, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
    {
        /* only the head: the partial mode's use (fine-tuning a new last layer) */
        int m = 0;
        for (k = 0; k < st_ref_count; k++)
            if (strncmp(st_ref[k].name, "linear2.", 8) != 0) e[m++] = st_ref[k];
        memcpy(&e[m], &st_ref[st_find_ref("linear2.weight")], sizeof e[0]);
        snprintf(e[m].shape, sizeof e[0].shape, "[2, 6]");
        e[m++].size = 48;
        memcpy(&e[m], &st_ref[st_find_ref("linear2.bias")], sizeof e[0]);
        snprintf(e[m].shape, sizeof e[0].shape, "[2]");
        e[m++].size = 8;
        st_entries_file(&f, e, m, "");
        st_case("another head", "linear2 with 2 outputs instead of 3 (weight [2, 6], bias [2])", f.data, f.size);
    }
    {
        /* many entries: zero-size extra tensors at the end of the data section */
        static const int counts[2] = {5000, 20000};
        size_t total = 0, cap, at;
        char *json;
        unsigned char *file;
        for (k = 0; k < st_ref_count; k++) total += st_ref[k].size;
        for (k = 0; k < 2; k++) {
            int j;
            st_answer a;
            cap = (size_t)counts[k] * 96 + 4096;
            json = (char *)malloc(cap);
            file = (unsigned char *)malloc(cap + total + 8);
            at = (size_t)snprintf(json, cap, "{");
            {
                size_t offset = 0;
                for (j = 0; j < st_ref_count; j++) {
                    at += (size_t)snprintf(json + at, cap - at, "%s\"%s\": {\"dtype\": %s, \"shape\": %s, \"data_offsets\": [%zu, %zu]}",
                                           j ? ", " : "", st_ref[j].name, st_ref[j].dtype, st_ref[j].shape, offset,
                                           offset + st_ref[j].size);
                    offset += st_ref[j].size;
                }
            }
            for (j = 0; j < counts[k]; j++)
                at += (size_t)snprintf(json + at, cap - at, ", \"extra%d\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [%zu, %zu]}",
                                       j, total, total);
            at += (size_t)snprintf(json + at, cap - at, "}");
            nn__put_u64(file, at);
            memcpy(file + 8, json, at);
            for (j = 0, i = 8 + at; j < st_ref_count; i += st_ref[j].size, j++) memcpy(file + i, st_ref[j].data, st_ref[j].size);
            path_in(path, sizeof path, "case.safetensors");
            a = st_load(path, file, i);
            snprintf(how, sizeof how, "%d extra zero-size tensors (a %zu-byte header); both loads took %.1f s", counts[k], at,
                     a.seconds);
            st_row("many entries", how, &a);
            free(json);
            free(file);
        }
    }

    /* files and arguments */
    {
        char missing[128];
        st_answer a;
        nn_model *raw = nn_model_new(1);
        path_in(path, sizeof path, "case.safetensors");
        write_file(path, good, n);
        path_in(missing, sizeof missing, "missing.safetensors");
        a = st_load(missing, NULL, 0);
        st_row("missing file", "a path that does not exist", &a);
        a = st_load(dir, NULL, 0);
        st_row("a directory", "the temporary directory as the file", &a);
        a = st_load("", NULL, 0);
        st_row("empty path", "\"\"", &a);
        nn_status st = nn_load_safetensors(st_model, NULL, NN_SAFETENSORS_STRICT, NULL, 0);
        printf("| NULL path | nn_load_safetensors(model, NULL, ...) | %s | | %s |\n", status_text(st), message());
        st = nn_load_safetensors(st_model, path, 7, NULL, 0);
        printf("| unknown mode | nn_load_safetensors(model, path, 7, ...) | %s | | %s |\n", status_text(st), message());
        st = nn_load_safetensors(NULL, path, NN_SAFETENSORS_STRICT, NULL, 0);
        printf("| NULL model | nn_load_safetensors(NULL, path, ...) | %s | | %s |\n", status_text(st), message());
        (void)nn_input(raw, 1, 1, 8);
        st = nn_load_safetensors(raw, path, NN_SAFETENSORS_STRICT, NULL, 0);
        printf("| model not compiled | nn_load_safetensors(an uncompiled model, path, ...) | %s | | %s |\n", status_text(st), message());
        {
            char tiny[8];
            memcpy(e, st_ref, sizeof st_ref);
            e[st_ref_count] = st_ref[0];
            snprintf(e[st_ref_count].name, sizeof e[0].name, "linear3.weight");
            st_entries_file(&f, e, st_ref_count + 1, "");
            write_file(path, f.data, f.size);
            memset(tiny, 'x', sizeof tiny);
            st = nn_load_safetensors(st_model, path, NN_SAFETENSORS_PARTIAL, tiny, sizeof tiny);
            printf("| report too small | partial, an 8-byte report, one extra tensor | | %s, report \"%s\"%s | truncated, "
                   "NUL-terminated |\n", status_text(st), memchr(tiny, 0, sizeof tiny) ? tiny : "(not terminated!)",
                   memchr(tiny, 0, sizeof tiny) ? "" : " **(no NUL!)**");
            st_reset();
            st = nn_load_safetensors(st_model, path, NN_SAFETENSORS_PARTIAL, NULL, 0);
            printf("| no report | partial, report NULL, one extra tensor | | %s | %s |\n", status_text(st),
                   st == NN_OK ? "loaded, the mismatch not reported anywhere" : message());
            st_reset();
        }
        nn_model_free(raw);
    }
    /* saving */
    {
        char sub[600];
        const float keep = nn_params(donor)[5];
        nn_status st;
        nn_params(donor)[5] = NAN;
        path_in(sub, sizeof sub, "nan.safetensors");
        st = nn_save_safetensors(donor, sub);
        printf("| save: a NaN parameter | nn_save_safetensors of a model whose parameter 5 is NaN | %s | | %s; %s |\n",
               status_text(st), message(), access(sub, F_OK) == 0 ? "**a file was written**" : "no file written");
        nn_params(donor)[5] = keep;
        path_in(sub, sizeof sub, "no/such/dir/m.safetensors");
        st = nn_save_safetensors(donor, sub);
        printf("| save: missing directory | nn_save_safetensors under a directory that does not exist | %s | | %s |\n",
               status_text(st), message());
        st = nn_save_safetensors(st_model, "");
        printf("| save: empty path | nn_save_safetensors(model, \"\") | %s | | %s |\n", status_text(st), message());
    }
    remove(path);
    path_in(path, sizeof path, "good.safetensors");
    remove(path);
    nn_model_free(donor);
    nn_model_free(st_model);
    free(st_params);
    free(st_state);
}

/* ---- checkpoints ------------------------------------------------------------------------------ */
/* The run: model_a() with Adam and a StepLR schedule after 3 steps, a run state inside an epoch,
   the metadata mean=0.5. Each file goes to nn_checkpoint_load into a model_a() built in code, an
   Adam optimizer, a StepLR schedule and a run state; the row flags in bold a failed load that
   changed any of them (compared bit for bit with snapshots) and an accepted file whose sections
   after GRPH do not save back to the same bytes. */
typedef struct ckpt_target {
    nn_model *m;
    nn_optimizer o;
    nn_schedule s;
    nn_fit_state r;
} ckpt_target;
static ckpt_target ck;
static float *ck_params, *ck_state, *ck_moments;
static nn_optimizer ck_opt;
static nn_schedule ck_sched;
static nn_fit_state ck_run;

static void ck_train(nn_model *m, nn_optimizer *o, nn_schedule *s, int steps)
{
    float x[4 * 8];
    int labels[4] = {0, 1, 2, 1}, i;
    for (i = 0; i < 4 * 8; i++) x[i] = (float)((i * 5) % 9) / 9.0f - 0.4f;
    for (i = 0; i < steps; i++) {
        must(nn_train_step(m, o, x, labels, NULL, 4, NULL), "nn_train_step");
        if (s) must(nn_schedule_step(s, o), "nn_schedule_step");
    }
}

/* the target as it was made (a run of its own: 1 step), for every case */
static void ck_snapshot(void)
{
    memcpy(ck_params, nn_params(ck.m), nn_param_count(ck.m) * sizeof(float));
    memcpy(ck_state, nn_state(ck.m), nn_state_count(ck.m) * sizeof(float));
    memcpy(ck_moments, ck.o.state, ck.o.state_count * sizeof(float));
    memcpy(&ck_opt, &ck.o, sizeof ck.o);
    memcpy(&ck_sched, &ck.s, sizeof ck.s);
    memcpy(&ck_run, &ck.r, sizeof ck.r);
}
static void ck_restore(void)
{
    memcpy(nn_params(ck.m), ck_params, nn_param_count(ck.m) * sizeof(float));
    memcpy(nn_state(ck.m), ck_state, nn_state_count(ck.m) * sizeof(float));
    must(nn_set_meta(ck.m, "mean", "target"), "nn_set_meta");
    memcpy(&ck.o, &ck_opt, sizeof ck.o);
    memcpy(ck.o.state, ck_moments, ck.o.state_count * sizeof(float));
    memcpy(&ck.s, &ck_sched, sizeof ck.s);
    memcpy(&ck.r, &ck_run, sizeof ck.r);
}
static int ck_changed(void)
{
    const char *v = nn_get_meta(ck.m, "mean");
    return memcmp(nn_params(ck.m), ck_params, nn_param_count(ck.m) * sizeof(float)) != 0 ||
           memcmp(nn_state(ck.m), ck_state, nn_state_count(ck.m) * sizeof(float)) != 0 || !v || strcmp(v, "target") != 0 ||
           memcmp(&ck.o, &ck_opt, sizeof ck.o) != 0 || memcmp(ck.o.state, ck_moments, ck.o.state_count * sizeof(float)) != 0 ||
           memcmp(&ck.s, &ck_sched, sizeof ck.s) != 0 || memcmp(&ck.r, &ck_run, sizeof ck.r) != 0;
}

/* the sections after GRPH of two checkpoints are the same bytes */
static int ck_same_sections(const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
    static const char *const tags[] = {"META", "PARM", "STAT", "OPTM", "SCHD", "RUNS"};
    int k;
    for (k = 0; k < 6; k++) {
        uint64_t la = 0, lb = 0;
        const long pa = mf_find_section(a, na, tags[k], &la), pb = mf_find_section(b, nb, tags[k], &lb);
        if ((pa < 0) != (pb < 0) || (pa >= 0 && (la != lb || memcmp(a + pa, b + pb, (size_t)la) != 0))) return 0;
    }
    return 1;
}

/* loads path into the target: the status, whether a failure changed it, whether an accepted file
   saves back to other bytes; the target is restored for the next case */
static nn_status ck_load(const char *path, nn_schedule *schedule, int *changed, int *not_canonical)
{
    static unsigned char in[1 << 14], again[1 << 14];
    char again_path[128];
    nn_status st = nn_checkpoint_load(ck.m, &ck.o, schedule, &ck.r, path);
    *changed = *not_canonical = 0;
    if (st != NN_OK) {
        *changed = ck_changed();
    } else {
        const size_t n = read_all(path, in, sizeof in);
        path_in(again_path, sizeof again_path, "again.ckpt");
        *not_canonical = nn_checkpoint_save(ck.m, &ck.o, schedule, &ck.r, again_path) != NN_OK ||
                         !ck_same_sections(in, n, again, read_all(again_path, again, sizeof again));
        remove(again_path);
    }
    ck_restore();
    return st;
}

/* data (n bytes) written to case.ckpt, or (data NULL) the file at `file`, to the target */
static void ck_case_at(const char *kind, const char *how, const char *file, const unsigned char *data, size_t n,
                       nn_schedule *schedule)
{
    char path[128];
    int changed, not_canonical;
    nn_status st;
    path_in(path, sizeof path, "case.ckpt");
    if (data) write_file(path, data, n);
    else snprintf(path, sizeof path, "%s", file);
    st = ck_load(path, schedule, &changed, &not_canonical);
    printf("| %s | %s | %s%s%s | %s |\n", kind, how, status_text(st), changed ? " **(changed the objects!)**" : "",
           not_canonical ? " **(saves other bytes!)**" : "", st == NN_OK ? "accepted" : message());
    fflush(stdout);
}
static void ck_case(const char *kind, const char *how, const unsigned char *data, size_t n, nn_schedule *schedule)
{
    ck_case_at(kind, how, NULL, data, n, schedule);
}

static void ck_tally_row(const tally *t, int not_canonical, const char *kind, const char *how)
{
    int i;
    printf("| %s | %s | ", kind, how);
    tally_counts(t);
    if (t->changed) printf(" **(%d changed the objects!)**", t->changed);
    if (not_canonical) printf(" **(%d saved other bytes!)**", not_canonical);
    printf(" | ");
    for (i = 0; i < t->n_messages; i++) printf("%s\"%s\"", i ? "; " : "", t->messages[i]);
    printf(" |\n");
    fflush(stdout);
}

/* the file with the `width` bytes at `at` of section `tag`'s payload replaced by v, CRC fixed */
static void ck_patch(unsigned char *buf, const unsigned char *good, size_t n, const char *tag, size_t at, uint64_t v, int width)
{
    const long p = mf_find_section(good, n, tag, NULL);
    memcpy(buf, good, n);
    le32(buf + p + at, (uint32_t)v);
    if (width == 8) le32(buf + p + at + 4, (uint32_t)(v >> 32));
    fix_crc(buf, n);
}

/* the file without section tag (the header's section count lowered, CRC fixed); returns its size */
static size_t ck_drop(unsigned char *buf, const unsigned char *good, size_t n, const char *tag)
{
    uint64_t length = 0;
    const long p = mf_find_section(good, n, tag, &length);
    const size_t start = (size_t)p - 12, end = (size_t)p + (size_t)length;
    memcpy(buf, good, start);
    memcpy(buf + start, good + end, n - end);
    le32(buf + 12, mf_get32(good + 12) - 1);
    fix_crc(buf, n - (end - start));
    return n - (end - start);
}

static void probe_checkpoint(void)
{
    static unsigned char good[1 << 14], buf[1 << 14], model_file[1 << 14];
    char path[128], other[128], how[200];
    nn_model *src = model_a();
    nn_optimizer so = nn_adam(0.01f, 0.0f);
    nn_schedule ss = nn_step_lr(2, 0.5), cosine = nn_cosine_annealing_lr(5, 0.0);
    nn_fit_state sr;
    size_t n, nm, i, boundary[8];
    int bit, k, changed, not_canonical, bad_canonical;
    long at;
    tally tr;
    /* the file */
    must(nn_set_meta(src, "mean", "0.5"), "nn_set_meta");
    must(nn_schedule_start(&ss, &so), "nn_schedule_start");
    ck_train(src, &so, &ss, 3);
    memset(&sr, 0, sizeof sr);
    sr.started = 1;
    sr.epochs_done = 1;
    sr.batches_done = 1;
    sr.steps = 3;
    sr.epoch_rng = 77;
    sr.sample_count = 8;
    sr.batch_size = 4;
    sr.best_val_loss = INFINITY;
    sr.epoch_loss_sum = sr.check_loss_sum = 4.5;
    sr.epoch_samples = sr.check_samples = 4;
    sr.epoch_correct = sr.check_correct = 2;
    path_in(path, sizeof path, "good.ckpt");
    must(nn_checkpoint_save(src, &so, &ss, &sr, path), "nn_checkpoint_save");
    n = read_all(path, good, sizeof good);
    path_in(other, sizeof other, "model.nn");
    must(nn_save(src, other), "nn_save");
    nm = read_all(other, model_file, sizeof model_file);
    /* the target */
    ck.m = model_a();
    ck.o = nn_adam(0.02f, 0.0f);
    ck.s = nn_step_lr(2, 0.5);
    must(nn_schedule_start(&ck.s, &ck.o), "nn_schedule_start");
    ck_train(ck.m, &ck.o, &ck.s, 1);
    memset(&ck.r, 0, sizeof ck.r);
    must(nn_set_meta(ck.m, "mean", "target"), "nn_set_meta");
    ck_params = (float *)malloc(nn_param_count(ck.m) * sizeof(float));
    ck_state = (float *)malloc(nn_state_count(ck.m) * sizeof(float));
    ck_moments = (float *)malloc(ck.o.state_count * sizeof(float));
    ck_snapshot();

    snprintf(how, sizeof how, "nn_checkpoint_save of the run (Adam, StepLR, 3 steps, a run state inside an epoch; %zu bytes)", n);
    ck_case("valid (reference)", how, good, n, &ck.s);
    memset(&tr, 0, sizeof tr);
    path_in(path, sizeof path, "cut.ckpt");
    for (i = 0; i < n; i++) {
        write_file(path, good, i);
        tally_add(&tr, ck_load(path, &ck.s, &changed, &not_canonical), !changed);
        if (changed) fprintf(stderr, "reliability_probe: cut at %zu: %s changed the objects\n", i, message());
    }
    snprintf(how, sizeof how, "the valid %zu-byte file cut at every length 0..%zu", n, n - 1);
    ck_tally_row(&tr, 0, "truncated (every length)", how);
    boundary[0] = 16;
    for (k = 0; k < 7; k++) {
        uint64_t length = 0;
        static const char *const tags[7] = {"GRPH", "META", "PARM", "STAT", "OPTM", "SCHD", "RUNS"};
        at = mf_find_section(good, n, tags[k], &length);
        boundary[k + 1] = (size_t)at + (size_t)length;
    }
    for (k = 0; k < 8; k++) {
        static const char *const after[8] = {"the file header", "the graph", "the metadata", "the parameters", "the statistics",
                                             "the optimizer", "the schedule", "the run state (no CRC)"};
        snprintf(how, sizeof how, "cut after %s (%zu of %zu bytes)", after[k], boundary[k], n);
        ck_case("truncated at a section boundary", how, good, boundary[k], &ck.s);
    }
    memset(&tr, 0, sizeof tr);
    for (i = 0; i < n; i++)
        for (bit = 0; bit < 8; bit++) {
            memcpy(buf, good, n);
            buf[i] ^= (unsigned char)(1u << bit);
            write_file(path, buf, n);
            tally_add(&tr, ck_load(path, &ck.s, &changed, &not_canonical), !changed);
        }
    snprintf(how, sizeof how, "each of the %zu bits of the valid file flipped, one at a time", n * 8);
    ck_tally_row(&tr, 0, "flipped bits (every bit)", how);
    memset(&tr, 0, sizeof tr);
    bad_canonical = 0;
    for (i = 16; i + 4 < n; i++)
        for (k = 0; k < 3; k++) {
            static const unsigned char masks[3] = {0x01, 0x80, 0xFF};
            memcpy(buf, good, n);
            buf[i] ^= masks[k];
            fix_crc(buf, n);
            write_file(path, buf, n);
            tally_add(&tr, ck_load(path, &ck.s, &changed, &not_canonical), !changed);
            bad_canonical += not_canonical;
        }
    snprintf(how, sizeof how, "each of the %zu bytes after the header changed (xor 0x01, 0x80, 0xFF), CRC recomputed", n - 20);
    ck_tally_row(&tr, bad_canonical, "changed bytes, valid CRC", how);

    memcpy(buf, good, n);
    buf[0] = 'X';
    ck_case("wrong magic", "first byte 'X'", buf, n, &ck.s);
    memcpy(buf, good, n);
    le32(buf + 8, 2);
    fix_crc(buf, n);
    ck_case("future version", "version field 2, CRC recomputed", buf, n, &ck.s);
    le32(buf + 8, 0);
    fix_crc(buf, n);
    ck_case("older version", "version field 0, CRC recomputed", buf, n, &ck.s);
    ck_case("a model file", "nn_save of the same model", model_file, nm, &ck.s);
    path_in(path, sizeof path, "good.ckpt");
    {
        int changed_model = 0;
        nn_model *out = (nn_model *)&out;
        nn_status st;
        st = nn_load(ck.m, path);
        changed_model = ck_changed();
        printf("| a checkpoint to nn_load | the valid checkpoint | %s%s | %s |\n", status_text(st),
               changed_model ? " **(changed the model!)**" : "", message());
        ck_restore();
        st = nn_model_load(path, 4, &out);
        printf("| a checkpoint to nn_model_load | the valid checkpoint | %s%s | %s |\n", status_text(st),
               out ? " **(a model came back!)**" : "", message());
    }
    {
        /* an optimizer, schedule and run state of their own (the target's optimizer is bound to its model) */
        nn_model *t = model_tanh(), *o = model_other();
        nn_optimizer fresh = nn_adam(0.01f, 0.0f);
        nn_schedule sched = nn_step_lr(2, 0.5);
        nn_fit_state run;
        float p0 = nn_params(t)[0];
        nn_status st;
        memset(&run, 0, sizeof run);
        st = nn_checkpoint_load(t, &fresh, &sched, &run, path);
        printf("| wrong model | loaded into the same layers with tanh instead of ReLU (an unbound Adam optimizer) | %s%s | %s |\n",
               status_text(st), fresh.state || sched.started || run.started || nn_params(t)[0] != p0 ? " **(changed!)**" : "",
               message());
        p0 = nn_params(o)[0];
        st = nn_checkpoint_load(o, &fresh, &sched, &run, path);
        printf("| wrong model | loaded into a 8->3 linear model (27 parameters) | %s%s | %s |\n", status_text(st),
               fresh.state || sched.started || run.started || nn_params(o)[0] != p0 ? " **(changed!)**" : "", message());
        nn_optimizer_free(&fresh);
        nn_model_free(t);
        nn_model_free(o);
    }
    {
        nn_optimizer keep = ck.o, sgd = nn_sgd(0.1f, 0.9f, 0.0f);
        nn_model *elsewhere = model_a();
        nn_status st;
        ck.o = sgd;
        st = nn_checkpoint_load(ck.m, &ck.o, &ck.s, &ck.r, path);
        printf("| wrong optimizer | an Adam run loaded with an SGD optimizer | %s | %s |\n", status_text(st), message());
        ck.o = nn_adam(0.01f, 0.0f);
        must(nn_optimizer_bind(elsewhere, &ck.o), "nn_optimizer_bind");
        st = nn_checkpoint_load(ck.m, &ck.o, &ck.s, &ck.r, path);
        printf("| wrong optimizer | an Adam optimizer bound to another model | %s | %s |\n", status_text(st), message());
        nn_optimizer_free(&ck.o);
        nn_model_free(elsewhere);
        ck.o = keep;
        if (ck_changed()) printf("| wrong optimizer | **the model, schedule or run state changed!** | | |\n");
        ck_restore();
    }
    ck_case("wrong schedule", "loaded without a schedule (NULL)", good, n, NULL);
    ck_case("wrong schedule", "loaded with a CosineAnnealingLR schedule", good, n, &cosine);
    ck_case("wrong schedule", "the SCHD section removed (count and CRC fixed): no schedule, loaded with one", buf,
            ck_drop(buf, good, n, "SCHD"), &ck.s);
    ck_patch(buf, good, n, "PARM", 4, 0x7FC00000u, 4);
    ck_case("non-finite value", "parameter 1 a quiet NaN, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "OPTM", 56 + 4 * 5, 0x7F800000u, 4);
    ck_case("non-finite value", "optimizer moment 5 +infinity, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "OPTM", 4, 0xFFC00000u, 4);
    ck_case("non-finite value", "the learning rate a NaN, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "SCHD", 228, 0x7FF0000000000000ull, 8);
    ck_case("non-finite value", "the schedule's rate +infinity, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "RUNS", 44, 0x7FF8000000000000ull, 8);
    ck_case("non-finite value", "the run's best validation loss a NaN, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "OPTM", 0, 9, 4);
    ck_case("bad optimizer", "optimizer kind 9, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "OPTM", 48, 2 * 87 + 1, 8);
    ck_case("bad optimizer", "state count 175 (Adam keeps 2 x 87), CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "OPTM", 40, (uint64_t)1 << 63, 8);
    ck_case("bad optimizer", "step count 2^63, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "SCHD", 4, 0, 4);
    ck_case("bad schedule", "StepLR's step_size 0, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "SCHD", 0, 17, 4);
    ck_case("bad schedule", "schedule kind 17, CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "RUNS", 16, 2, 4);
    ck_case("bad run state", "batch 2 done of an epoch of 8 samples in batches of 4 (2 batches), CRC recomputed", buf, n, &ck.s);
    ck_patch(buf, good, n, "RUNS", 8, 2, 4);
    ck_case("bad run state", "started = 2, CRC recomputed", buf, n, &ck.s);
    ck_case("missing section", "the OPTM section removed (section count and CRC fixed)", buf, ck_drop(buf, good, n, "OPTM"), &ck.s);
    ck_case("missing section", "the RUNS section removed (section count and CRC fixed)", buf, ck_drop(buf, good, n, "RUNS"), &ck.s);
    {
        /* a model file with a checkpoint's section appended: refused by the model readers */
        uint64_t length = 0;
        const long p = mf_find_section(good, n, "OPTM", &length);
        nn_model *out = (nn_model *)&out;
        nn_status st;
        memcpy(buf, model_file, nm - 4);
        memcpy(buf + nm - 4, good + p - 12, (size_t)length + 12);
        le32(buf + 12, 5);
        fix_crc(buf, nm + (size_t)length + 12);
        write_file(other, buf, nm + (size_t)length + 12);
        st = nn_model_load(other, 4, &out);
        printf("| a model file with an OPTM section | the model file with the checkpoint's OPTM appended, count and CRC fixed, to nn_model_load | %s%s | %s |\n",
               status_text(st), out ? " **(a model came back!)**" : "", message());
    }
    ck_case("empty file", "0 bytes", buf, 0, &ck.s);
    path_in(other, sizeof other, "missing.ckpt");
    ck_case_at("missing file", "a path that does not exist", other, NULL, 0, &ck.s);
    ck_case_at("a directory", "the temporary directory as the checkpoint", dir, NULL, 0, &ck.s);
    /* nn_fit: resuming */
    {
        nn_dataset train;
        nn_fit_options fit = nn_fit_defaults(2, 4);
        nn_status st;
        int c;
        must(nn_dataset_alloc(&train, 8, 1, 1, 8, 3, 0), "nn_dataset_alloc");
        for (c = 0; c < 8 * 8; c++) train.x[c] = (float)((c * 3) % 7) / 7.0f;
        for (c = 0; c < 8; c++) train.labels[c] = c % 3;
        fit.progress = 0;
        fit.schedule = &ck.s;
        fit.state = &ck.r;
        fit.resume = 1;
        path_in(path, sizeof path, "good.ckpt");
        fit.checkpoint_path = path;
        fit.batch_size = 2;
        st = nn_fit(ck.m, &ck.o, &train, &fit, NULL);
        printf("| nn_fit resume, another batch size | the run stopped after batch 1 of 2 in batches of 4; nn_fit with resume in batches of 2 | %s%s | %s |\n",
               status_text(st), ck_changed() ? " **(changed the objects!)**" : "", message());
        ck_restore();
        path_in(other, sizeof other, "junk.ckpt");
        write_file(other, (const unsigned char *)"junk", 4);
        fit.checkpoint_path = other;
        fit.batch_size = 4;
        st = nn_fit(ck.m, &ck.o, &train, &fit, NULL);
        printf("| nn_fit resume, damaged file | a 4-byte file at checkpoint_path; nn_fit with resume | %s%s | %s |\n", status_text(st),
               ck_changed() ? " **(changed the objects!)**" : "", message());
        ck_restore();
        remove(other);
        nn_dataset_free(&train);
    }
    /* saving */
    {
        nn_status st;
        float kept = ck.o.state[3];
        path_in(path, sizeof path, "save.ckpt");
        must(nn_checkpoint_save(ck.m, &ck.o, &ck.s, &ck.r, path), "nn_checkpoint_save");
        n = read_all(path, good, sizeof good);
        ck.o.state[3] = NAN;
        st = nn_checkpoint_save(ck.m, &ck.o, &ck.s, &ck.r, path);
        ck.o.state[3] = kept;
        printf("| saving a NaN moment | nn_checkpoint_save over a good checkpoint, optimizer moment 3 a NaN | %s | %s (the previous file: %s) |\n",
               status_text(st), message(), read_all(path, buf, sizeof buf) == n && !memcmp(buf, good, n) ? "intact" : "**changed!**");
        remove(path);
    }
    path_in(path, sizeof path, "good.ckpt"); remove(path);
    path_in(path, sizeof path, "cut.ckpt"); remove(path);
    path_in(path, sizeof path, "case.ckpt"); remove(path);
    path_in(path, sizeof path, "model.nn"); remove(path);
    nn_optimizer_free(&so);
    nn_optimizer_free(&ck.o);
    nn_model_free(src);
    nn_model_free(ck.m);
    free(ck_params);
    free(ck_state);
    free(ck_moments);
}

/* ---- API misuse -------------------------------------------------------------------------------- */
static void probe_api(void)
{
    nn_model *m = nn_model_new(1), *c = model_a(), *o;
    nn_node *x = nn_input(m, 1, 1, 8), *y = nn_linear(m, x, 3, NN_BIAS);
    nn_optimizer opt = nn_sgd(0.1f, 0.0f, 0.0f);
    float xb[8 * 8], loss = 0;
    int labels[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    nn_dataset ds;
    nn_status st;
    char extra[200];
    memset(xb, 0, sizeof xb);
    row("train before compile", "nn_train_step on a built, uncompiled model", nn_train_step(m, &opt, xb, labels, NULL, 4, &loss), NULL);
    row("forward before compile", "nn_forward on an uncompiled model", nn_forward(m, xb, 4, NN_EVAL), NULL);
    row("backward before forward", "nn_backward on a fresh compiled model", nn_backward(c, labels, NULL, &loss), NULL);
    row("save before compile", "nn_save of an uncompiled model", nn_save(m, "/nonexistent/x"), NULL);
    row("null model", "nn_compile(NULL, ...)", nn_compile(NULL, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), NULL);
    row("null output node", "nn_compile(m, NULL, ...)", nn_compile(m, NULL, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), NULL);
    o = nn_model_new(2);
    row("node of another model", "nn_linear(m2, node_of_m, ...) then nn_compile(m2)",
        (nn_linear(o, x, 3, NN_BIAS), nn_compile(o, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4)), NULL);
    nn_model_free(o);
    row("max_batch 0", "nn_compile(..., 0)", nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 0), NULL);
    row("max_batch 2^31-1", "nn_compile(..., INT_MAX)", nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, INT_MAX), NULL);
    row("unknown loss", "nn_compile(..., (nn_loss)42, 4)", nn_compile(m, y, (nn_loss)42, 4), NULL);
    o = nn_model_new(3);
    row("classification loss, 1 output", "linear 8->1 with NN_LOSS_SOFTMAX_CROSS_ENTROPY",
        nn_compile(o, nn_linear(o, nn_input(o, 1, 1, 8), 1, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), NULL);
    nn_model_free(o);
    o = nn_model_new(3);
    row("zero-sized input", "nn_input(m, 0, 28, 28)", nn_compile(o, nn_linear(o, nn_input(o, 0, 28, 28), 3, NN_BIAS), NN_LOSS_NONE, 4), NULL);
    nn_model_free(o);
    o = nn_model_new(3);
    row("input size overflow", "nn_input(m, 65536, 65536, 65536)",
        nn_compile(o, nn_linear(o, nn_input(o, 65536, 65536, 65536), 3, NN_BIAS), NN_LOSS_NONE, 4), NULL);
    nn_model_free(o);
    o = nn_model_new(3);
    row("kernel larger than input", "conv 5x5 on a 1x3x3 input",
        nn_compile(o, nn_conv2d(o, nn_input(o, 1, 3, 3), 2, 5, 1, 0, NN_BIAS), NN_LOSS_NONE, 4), NULL);
    nn_model_free(o);
    o = nn_model_new(3);
    row("two inputs", "nn_input twice on one model",
        (nn_input(o, 1, 1, 4), nn_compile(o, nn_linear(o, nn_input(o, 1, 1, 4), 2, NN_BIAS), NN_LOSS_NONE, 4)), NULL);
    nn_model_free(o);
    o = nn_model_new(3);
    {
        nn_node *in = nn_input(o, 1, 1, 4);
        row("residual of different shapes", "nn_add_nodes(1x1x4, 1x1x5)",
            nn_compile(o, nn_add_nodes(o, in, nn_linear(o, in, 5, NN_BIAS)), NN_LOSS_NONE, 4), NULL);
    }
    nn_model_free(o);
    row("compile twice", "nn_compile on a compiled model", nn_compile(c, nn_layer(c, 0), NN_LOSS_NONE, 4), NULL);
    row("count > max batch", "nn_train_step(..., count 5) on max_batch 4", nn_train_step(c, &opt, xb, labels, NULL, 5, &loss), NULL);
    row("count 0", "nn_train_step(..., count 0)", nn_train_step(c, &opt, xb, labels, NULL, 0, &loss), NULL);
    row("null input", "nn_train_step(..., x NULL, ...)", nn_train_step(c, &opt, NULL, labels, NULL, 4, &loss), NULL);
    row("null labels", "nn_train_step(..., labels NULL) with a classification loss", nn_train_step(c, &opt, xb, NULL, NULL, 4, &loss), NULL);
    row("null optimizer", "nn_train_step(m, NULL, ...)", nn_train_step(c, NULL, xb, labels, NULL, 4, &loss), NULL);
    labels[1] = 3;
    row("label out of range", "label 3 with 3 outputs", nn_train_step(c, &opt, xb, labels, NULL, 4, &loss), NULL);
    labels[1] = -1;
    row("negative label", "label -1", nn_train_step(c, &opt, xb, labels, NULL, 4, &loss), NULL);
    labels[1] = 1;
    {
        nn_optimizer neg = nn_sgd(-0.1f, 0.0f, 0.0f), nan_lr = nn_sgd(NAN, 0.0f, 0.0f), bogus = nn_sgd(0.1f, 0, 0);
        bogus.kind = (nn_optimizer_kind)9;
        row("negative learning rate", "nn_sgd(-0.1, 0, 0)", nn_train_step(c, &neg, xb, labels, NULL, 4, &loss), NULL);
        row("NaN learning rate", "nn_sgd(NAN, 0, 0)", nn_train_step(c, &nan_lr, xb, labels, NULL, 4, &loss), NULL);
        row("unknown optimizer kind", "opt.kind = 9", nn_train_step(c, &bogus, xb, labels, NULL, 4, &loss), NULL);
        nn_optimizer_free(&neg);
        nn_optimizer_free(&nan_lr);
        nn_optimizer_free(&bogus);
    }
    row("unknown mode", "nn_forward(..., (nn_mode)7)", nn_forward(c, xb, 4, (nn_mode)7), NULL);
    xb[3] = NAN;
    st = nn_forward(c, xb, 4, NN_EVAL);
    snprintf(extra, sizeof extra, "output[0] = %g (NaN propagates; no check in nn_forward)", st == NN_OK ? (double)nn_output(c)[0] : 0.0);
    row("NaN input (forward)", "one NaN in the batch, nn_forward eval", st, extra);
    st = nn_train_step(c, &opt, xb, labels, NULL, 4, &loss);
    row("NaN input (train step)", "one NaN in the batch, nn_train_step", st, NULL);
    memset(&ds, 0, sizeof ds);
    ds.count = 8;
    ds.channels = ds.height = 1;
    ds.width = 8;
    ds.classes = 3;
    ds.x = xb;
    ds.labels = labels;
    {
        nn_metrics met;
        st = nn_evaluate(c, &ds, &met);
        snprintf(extra, sizeof extra, "loss %g, accuracy %.1f%% (a NaN sample is evaluated, not rejected)", met.loss, met.accuracy);
        row("NaN input (evaluate)", "one NaN in an 8-sample dataset, nn_evaluate", st, extra);
    }
    xb[3] = 0;
    {
        nn_fit_options fit = nn_fit_defaults(1, 16);
        fit.progress = 0;
        row("fit: batch > max batch", "nn_fit with batch_size 16 on max_batch 4", nn_fit(c, &opt, &ds, &fit, NULL), NULL);
        fit = nn_fit_defaults(-1, 4);
        row("fit: negative epochs", "nn_fit with epochs -1", nn_fit(c, &opt, &ds, &fit, NULL), NULL);
        ds.width = 7;
        fit = nn_fit_defaults(1, 4);
        row("fit: sample size mismatch", "a dataset of 7-value samples for an 8-input model", nn_fit(c, &opt, &ds, &fit, NULL), NULL);
        ds.width = 8;
        ds.count = 0;
        row("fit: empty dataset", "count 0", nn_fit(c, &opt, &ds, &fit, NULL), NULL);
        ds.count = 8;
        row("fit: null options", "nn_fit(m, &opt, &ds, NULL, NULL)", nn_fit(c, &opt, &ds, NULL, NULL), NULL);
    }
    {
        nn_dataset part;
        row("slice out of range", "nn_dataset_slice(ds of 8, first 6, count 3)", nn_dataset_slice(&ds, 6, 3, &part), NULL);
        row("slice overflow", "nn_dataset_slice(first INT_MAX, count 1)", nn_dataset_slice(&ds, INT_MAX, 1, &part), NULL);
        row("slice negative", "nn_dataset_slice(first -1, count 2)", nn_dataset_slice(&ds, -1, 2, &part), NULL);
    }
    {
        int matrix[9];
        ds.classes = 4;
        row("confusion matrix, classes > outputs", "ds.classes 4 for a 3-output model", nn_confusion_matrix(c, &ds, matrix), NULL);
        ds.classes = 3;
    }
    row("threads -1", "nn_set_threads(-1)", nn_set_threads(-1), NULL);
    row("unknown backend", "nn_set_backend(\"sse9\")", nn_set_backend("sse9"), NULL);
    {
        nn_conv2d_shape s = {1, 1, 4, 4, 1, 5, 5, 1, 1, 0, 0};
        int oh, ow;
        static float a[256];
        row("conv kernel > input", "nn_conv2d_output_size: 5x5 kernel, 4x4 input", nn_conv2d_output_size(&s, &oh, &ow), NULL);
        row("conv null shape", "nn_conv2d_forward(NULL, ...)", nn_conv2d_forward(NULL, a, a, NULL, a, NULL, 0), NULL);
        s.kernel_height = s.kernel_width = 3;
        row("conv workspace too small", "nn_conv2d_forward with a 4-float workspace", nn_conv2d_forward(&s, a, a, NULL, a, a, 4), NULL);
        row("sgemm negative size", "nn_sgemm(m = -1)", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2, NULL, 0), NULL);
        row("sgemm lda too small", "nn_sgemm(2x2 A with lda 1)", nn_sgemm(NN_NO_TRANSPOSE, NN_NO_TRANSPOSE, 2, 2, 2, 1, a, 1, a, 2, 0, a, 2, NULL, 0), NULL);
    }
    nn_optimizer_free(&opt);
    nn_model_free(m);
    nn_model_free(c);
}

/* ---- saving over a good file ---------------------------------------------------------------- */
/* Saves `m` to path after a good file was saved there; prints whether the old file survived. */
static void save_case(const char *kind, const char *how, nn_model *m, const char *path, int have_old, int tmp_was_there)
{
    static unsigned char before[1 << 14], after[1 << 14];
    char tmp[600];
    size_t nb = 0, na;
    nn_status st;
    int intact, tmp_left;
    if (have_old) nb = read_all(path, before, sizeof before);
    nn_params(m)[0] += 1.0f; /* so that a successful save would write different bytes */
    st = nn_save(m, path);
    na = read_all(path, after, sizeof after);
    intact = have_old ? (na == nb && !memcmp(before, after, nb)) : access(path, F_OK) != 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    tmp_left = !tmp_was_there && access(tmp, F_OK) == 0;
    {
        const char *msg = st == NN_OK ? "" : message();
        printf("| %s | %s | %s | %s | %s%s |\n", kind, how, status_text(st), msg,
               st == NN_OK ? (have_old ? (intact ? "**not replaced**" : "replaced") : "written")
                           : (have_old ? (intact ? "old file intact" : "**old file damaged**")
                                       : access(path, F_OK) == 0 ? "existing entry untouched" : "nothing created"),
               tmp_left ? ", **.tmp left behind**" : "");
    }
    fflush(stdout);
}

static void probe_save(const char *tiny_fs)
{
    nn_model *m = model_a();
    char path[600], sub[600], cmd[700];
    struct stat sb;
    path_in(path, sizeof path, "good.nn");
    setup_ok(nn_save(m, path), "nn_save");
    save_case("replace (reference)", "nn_save over a good file", m, path, 1, 0);
    path_in(path, sizeof path, "no/such/dir/m.nn");
    save_case("missing directory", "a path under a directory that does not exist", m, path, 0, 0);
    path_in(sub, sizeof sub, "plain");
    write_file(sub, (const unsigned char *)"x", 1);
    snprintf(path, sizeof path, "%s/m.nn", sub);
    save_case("parent is a file", "plain/m.nn where plain is a regular file (ENOTDIR)", m, path, 0, 0);
    path_in(path, sizeof path, "eisdir.nn");
    setup_ok(nn_save(m, path), "nn_save");
    snprintf(sub, sizeof sub, "%s.tmp", path);
    mkdir(sub, 0700);
    save_case("temporary name is a directory", "m.nn.tmp exists as a directory (EISDIR)", m, path, 1, 1);
    rmdir(sub);
    {
        /* a file-size limit: the write fails part way with EFBIG, as on a full disk */
        struct rlimit old, small;
        path_in(path, sizeof path, "full.nn");
        setup_ok(nn_save(m, path), "nn_save");
        if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
            void (*handler)(int) = signal(SIGXFSZ, SIG_IGN);
            small = old;
            small.rlim_cur = 64;
            if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
                save_case("disk full (file-size limit)", "RLIMIT_FSIZE of 64 bytes: the write fails part way (EFBIG)", m, path,
                          1, 0);
                setrlimit(RLIMIT_FSIZE, &old);
            }
            signal(SIGXFSZ, handler);
        }
    }
    {
        /* a symlink planted at the temporary's name must not be written through */
        char victim[600];
        unsigned char back[16];
        path_in(path, sizeof path, "linked-tmp.nn");
        setup_ok(nn_save(m, path), "nn_save");
        path_in(victim, sizeof victim, "victim.txt");
        write_file(victim, (const unsigned char *)"precious", 8);
        snprintf(sub, sizeof sub, "%s.tmp", path);
        if (symlink(victim, sub) == 0) {
            save_case("temporary name is a symlink", "m.nn.tmp -> victim.txt, planted before the save", m, path, 1, 1);
            printf("| | (after it) | | victim.txt %s; m.nn.tmp %s | |\n",
                   read_all(victim, back, sizeof back) == 8 && !memcmp(back, "precious", 8) ? "kept its 8 bytes"
                                                                                          : "**was overwritten**",
                   lstat(sub, &sb) == 0 ? "**still there**" : "is gone");
        }
        remove(sub);
        remove(victim);
    }
    {
        const float keep = nn_params(m)[2];
        path_in(path, sizeof path, "nan.nn");
        setup_ok(nn_save(m, path), "nn_save");
        nn_params(m)[2] = NAN;
        save_case("model with a NaN", "parameter 2 is NaN", m, path, 1, 0);
        nn_params(m)[2] = keep;
    }
    path_in(path, sizeof path, "adir");
    mkdir(path, 0700);
    save_case("destination is a directory", "the target path is a directory (rename fails)", m, path, 0, 0);
    rmdir(path);
    path_in(sub, sizeof sub, "ro");
    mkdir(sub, 0700);
    snprintf(path, sizeof path, "%s/m.nn", sub);
    setup_ok(nn_save(m, path), "nn_save");
    chmod(sub, 0500);
    if (access(sub, W_OK) != 0) save_case("read-only directory", "chmod 0500 on the directory (not root)", m, path, 1, 0);
    else printf("| read-only directory | chmod 0500 on the directory | (not testable: running as root, which ignores the mode) | | |\n");
    chmod(sub, 0700);
    {
        char linked[600];
        path_in(linked, sizeof linked, "target.nn");
        setup_ok(nn_save(m, linked), "nn_save");
        path_in(path, sizeof path, "link.nn");
        if (symlink(linked, path) == 0) {
            save_case("destination is a symlink", "link.nn -> target.nn", m, path, 1, 0);
            printf("| | (after it) | | link.nn is %s; target.nn %s | |\n",
                   lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) ? "still a symlink" : "now a regular file (the link was replaced)",
                   "kept the old contents");
        }
    }
    if (tiny_fs) {
        /* a real full file system: a small tmpfs mounted by the script, filled to leave less
           room than a model file needs; the good file was saved before filling it */
        char filler[600];
        FILE *f;
        snprintf(path, sizeof path, "%s/m.nn", tiny_fs);
        setup_ok(nn_save(m, path), "nn_save");
        snprintf(filler, sizeof filler, "%s/filler", tiny_fs);
        f = fopen(filler, "wb");
        if (f) {
            static unsigned char zeros[4096];
            while (fwrite(zeros, 1, sizeof zeros, f) == sizeof zeros && fflush(f) == 0) {}
            fclose(f);
        }
        save_case("disk full (tmpfs)", "a 64 KB tmpfs filled up after the good file was saved", m, path, 1, 0);
        remove(filler);
        snprintf(cmd, sizeof cmd, "mount -o remount,ro '%s'", tiny_fs);
        if (system(cmd) == 0) {
            save_case("read-only file system", "the same tmpfs remounted read-only (EROFS)", m, path, 1, 0);
            snprintf(cmd, sizeof cmd, "mount -o remount,rw '%s'", tiny_fs);
            if (system(cmd) != 0) fprintf(stderr, "remount rw failed\n");
        }
        remove(path);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    nn_model_free(m);
}

/* ---- one case per process: the inputs that crashed or hit undefined behaviour when this was
   written (nn.h findings in docs/reliability.md); prints a row if the library answers ---- */
static int probe_crash(const char *which)
{
    nn_status st = NN_OK;
    if (!strcmp(which, "confusion-label")) {
        nn_model *m = nn_model_new(1);
        nn_node *y = nn_linear(m, nn_input(m, 1, 1, 2), 3, NN_BIAS);
        nn_dataset ds;
        float x[4] = {1, 2, 3, 4};
        int labels[2] = {0, 7}, *matrix = (int *)malloc(9 * sizeof(int));
        setup_ok(nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2), "nn_compile");
        memset(&ds, 0, sizeof ds);
        ds.count = 2; ds.channels = ds.height = 1; ds.width = 2; ds.classes = 3; ds.x = x; ds.labels = labels;
        st = nn_confusion_matrix(m, &ds, matrix);
        free(matrix);
        nn_model_free(m);
        row("confusion matrix, label >= classes", "ds.classes 3, a label 7, 3x3 matrix", st, "accepted");
    } else if (!strcmp(which, "pool-pad")) {
        nn_pool2d_shape s = {1, 1, 4, 4, 2, 2, 1, 1, 0x40000000, 0};
        int oh, ow;
        st = nn_pool2d_output_size(&s, &oh, &ow);
        row("pool padding 2^30", "nn_pool2d_output_size, pad_height 2^30", st, "accepted");
    } else if (!strcmp(which, "pool-size")) {
        nn_pool2d_shape s = {INT_MAX, INT_MAX, INT_MAX, INT_MAX, 1, 1, 1, 1, 0, 0};
        int oh, ow;
        st = nn_pool2d_output_size(&s, &oh, &ow);
        row("pool tensor size overflow", "nn_pool2d_output_size, batch = channels = height = width = INT_MAX", st, "accepted");
    } else if (!strcmp(which, "conv-kernel")) {
        nn_conv2d_shape s = {1, INT_MAX, 1, 1, 1, INT_MAX, INT_MAX, 1, 1, 0x40000000, 0x40000000};
        int oh, ow;
        st = nn_conv2d_output_size(&s, &oh, &ow);
        row("conv C*K*K overflow", "nn_conv2d_output_size, in_channels = kernel = INT_MAX, pad 2^30", st, "accepted");
    } else if (!strcmp(which, "conv-input")) {
        nn_conv2d_shape s = {1, INT_MAX / 4, INT_MAX, INT_MAX, 1, 1, 1, INT_MAX, INT_MAX, 0, 0};
        int oh, ow;
        st = nn_conv2d_output_size(&s, &oh, &ow);
        row("conv C*H*W overflow", "nn_conv2d_output_size, in_channels INT_MAX/4, 2^31-1 x 2^31-1 input, stride INT_MAX", st, "accepted");
    } else if (!strcmp(which, "conv-builder")) {
        nn_model *m = nn_model_new(1);
        nn_node *x = nn_input(m, (1 << 28) - 1, 1, 1);
        st = nn_compile(m, nn_conv2d(m, x, 1, INT_MAX, 1, 0x40000000, NN_BIAS), NN_LOSS_NONE, 1);
        nn_model_free(m);
        row("conv builder overflow", "nn_input(2^28-1 channels, 1x1) + nn_conv2d(kernel INT_MAX, padding 2^30)", st, "accepted");
    } else {
        fprintf(stderr, "unknown case %s\n", which);
        return 2;
    }
    return 0;
}

/* ---- CLI --------------------------------------------------------------------------------------- */
static int probe_args(int argc, char **argv)
{
    ex_options o;
    float lr = 0.1f;
    double wd = 0.0;
    int n = 5, bn = 0, i;
    const char *name = "x";
    ex_int_list widths = {1, {8}};
    const ex_flag flags[] = {
        {"--lr", EX_FLOAT, &lr, "a float"}, {"--wd", EX_DOUBLE, &wd, "a double"}, {"--n", EX_INT, &n, "an int"},
        {"--name", EX_STRING, &name, "a string"}, {"--bn", EX_SWITCH, &bn, "a switch"}, {"--widths", EX_INT_LIST, &widths, "a list"},
    };
    memset(&o, 0, sizeof o);
    o.name = "probe";
    o.epochs = 3;
    o.seed = 42;
    ex_parse(argc, argv, &o, "reliability probe", flags, (int)(sizeof flags / sizeof flags[0]));
    printf("accepted: epochs=%d seed=%llu threads=%d quick=%d data=\"%s\" out=\"%s\" lr=%g wd=%g n=%d name=\"%s\" bn=%d widths=",
           o.epochs, (unsigned long long)o.seed, o.threads, o.quick, o.data_dir, o.out_dir, (double)lr, wd, n, name, bn);
    for (i = 0; i < widths.count; i++) printf("%s%d", i ? "," : "", widths.values[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: reliability_probe idx|model2|model|safetensors|checkpoint|save [DIR]|api|args [ARGS...]|crash CASE\n");
        return 2;
    }
    if (!strcmp(argv[1], "args")) return probe_args(argc - 1, argv + 1);
    if (!strcmp(argv[1], "crash") && argc > 2) return probe_crash(argv[2]);
    snprintf(dir, sizeof dir, "/tmp/nn_probe.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (!strcmp(argv[1], "idx")) probe_idx();
    else if (!strcmp(argv[1], "model")) probe_model();
    else if (!strcmp(argv[1], "model2")) probe_model2();
    else if (!strcmp(argv[1], "safetensors")) probe_safetensors();
    else if (!strcmp(argv[1], "checkpoint")) probe_checkpoint();
    else if (!strcmp(argv[1], "api")) probe_api();
    else if (!strcmp(argv[1], "save")) probe_save(argc > 2 ? argv[2] : NULL);
    rmdir(dir);
    return 0;
}
