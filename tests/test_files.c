/* test_files.c - cmocka tests of nn.h's file formats (section 6): model files (nn_save,
   nn_load) and IDX files (nn_mnist_load), plus the MNIST files themselves when data/mnist
   exists (relative to the current directory; skipped with a message otherwise).

   Model files. A round trip restores the parameters and the batch-norm statistics bit for bit.
   Every damaged file must be refused with an error and a message, and must leave the model
   bit for bit as it was: every truncation (lengths 0 .. size-1 of a 212-byte file), every
   byte position flipped with three different masks, a wrong magic, a newer version, a NaN
   parameter and an infinite value (all with the CRC recomputed, so that only the field itself
   is wrong; the values as NN_ERROR_NONFINITE), files from two other
   architectures (one with the same parameter count), and a missing file. nn_save into a
   directory that does not exist fails with NN_ERROR_IO; nn_save whose temporary file cannot be
   created fails with NN_ERROR_IO and leaves the existing file intact; nn_save over an existing
   file replaces it and leaves no temporary behind.
   Format assumptions (from the header's description, "magic, version, architecture
   fingerprint, counts and CRC-32, little-endian", and "writes a temporary file and renames it
   over path"): the magic is the first 8 bytes, the version a little-endian u32 at offset 8,
   the last 4 bytes the CRC-32 (zlib's polynomial) of everything before them, and the temporary
   file is "<path>.tmp". A test that depends on one of these says so when it fails.

   IDX files are written by the tests into a fresh temporary directory: a good pair must load
   exactly; a wrong magic (either file), a count that disagrees with the file size (truncated
   and padded, either file), a header shorter than its fixed size, a zero count, rows or
   columns, a label count different from the image count, and a missing file (either) must
   each fail with NN_ERROR_FORMAT (NN_ERROR_IO for a missing file), a message naming the file,
   and the output dataset untouched.

   MNIST: 60000/10000 images of 28x28, the label counts per class, and nn_dataset_stats over
   the training pixels: mean 33.318421449829934, std 78.56748998339798, to 1e-9. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */
#include "test_common.h"
#include <sys/stat.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail_msg("out of memory (%lu bytes)", (unsigned long)bytes);
    return p;
}

/* ------------------------------------------------------------------ temporary files */
/* A fresh directory on /dev/shm when there is one (the damaged-file test writes ~900 small
   files; rewriting a file on ext4 costs ~5 ms each), else under /tmp. */
typedef struct tmpdir { char path[64]; } tmpdir;

static void tmpdir_new(tmpdir *d)
{
    strcpy(d->path, "/dev/shm/nn_test_files_XXXXXX");
    if (nn_test_mkdtemp(d->path)) return;
    strcpy(d->path, "/tmp/nn_test_files_XXXXXX");
    if (!nn_test_mkdtemp(d->path)) fail_msg("mkdtemp failed");
}
static const char *tmp_path(const tmpdir *d, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", d->path, name);
    return buf;
}
/* Removes the given names (ignoring missing ones) and the directory. */
static void tmpdir_remove(const tmpdir *d, const char *const *names, size_t count)
{
    char p[160];
    size_t i;
    for (i = 0; i < count; i++) {
        tmp_path(d, names[i], p, sizeof p);
        remove(p);
        rmdir(p);
    }
    rmdir(d->path);
}

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = fwrite(data, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}
static void write_or_fail(const char *path, const void *data, size_t size)
{
    if (write_file(path, data, size) != 0) fail_msg("cannot write %s", path);
}

/* The whole file in a fresh buffer (NULL if it cannot be read). */
static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long end;
    unsigned char *buf;
    *size = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = (unsigned char *)xmalloc((size_t)end + 1);
    if (fread(buf, 1, (size_t)end, f) != (size_t)end) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *size = (size_t)end;
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* CRC-32, zlib's polynomial (reflected 0xEDB88320), bitwise. */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (b = 0; b < 8; b++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}
static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}
static void fix_crc(unsigned char *buf, size_t size) { put_le32(buf + size - 4, crc32_of(buf, size - 4)); }

/* ------------------------------------------------------------------ models */
static nn_model *compiled(nn_model *m, nn_node *y, nn_loss loss, int max_batch)
{
    nn_status st;
    char msg[600];
    if (!m) fail_msg("nn_model_new returned NULL");
    st = nn_compile(m, y, loss, max_batch);
    if (st != NN_OK) {
        snprintf(msg, sizeof msg, "%s", nn_last_error());
        nn_model_free(m);
        fail_msg("nn_compile: %s (%s)", nn_status_name(st), msg);
    }
    return m;
}

/* input 3 -> linear 4 -> batchnorm -> activation -> linear 2 (or 3): 34 parameters, 8 state
   values, a 212-byte file */
static nn_model *small_model(uint64_t seed, nn_activation act, int outputs)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_batchnorm(m, nn_linear(m, nn_input(m, 3, 1, 1), 4, NN_BIAS));
    h = nn_activation_node(m, h, act, 0.0f);
    return compiled(m, nn_linear(m, h, outputs, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4);
}

/* a CNN with batch norm, for the round trip */
static nn_model *cnn_model(uint64_t seed)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, nn_input(m, 1, 8, 8), 4, 3, 1, 1, NN_BIAS)));
    h = nn_maxpool2d(m, h, 2, 2);
    h = nn_dropout(m, nn_flatten(m, h), 0.2f);
    h = nn_batchnorm(m, nn_linear(m, h, 16, NN_BIAS));
    return compiled(m, nn_linear(m, nn_relu(m, h), 5, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8);
}

/* A few train steps, so the parameters and running stats are nobody's defaults. */
static void train_a_little(nn_model *m, int steps)
{
    const int batch = 4, in = nn_input_size(m), out = nn_output_size(m);
    float *x = (float *)xmalloc((size_t)batch * in * sizeof(float));
    int labels[4], s, i;
    nn_optimizer o = nn_adam(0.01f, 0.0f);
    for (s = 0; s < steps; s++) {
        nn_test_fill(x, (size_t)batch * in, -1.0f, 1.0f);
        for (i = 0; i < batch; i++) labels[i] = (s + 3 * i) % out;
        ASSERT_OK(nn_train_step(m, &o, x, labels, NULL, batch, NULL));
    }
    nn_optimizer_free(&o);
    free(x);
}

typedef struct snapshot { float *params, *state; size_t np, ns; } snapshot;
static snapshot take(nn_model *m)
{
    snapshot s;
    s.np = nn_param_count(m);
    s.ns = nn_state_count(m);
    s.params = (float *)xmalloc((s.np + 1) * sizeof(float));
    s.state = (float *)xmalloc((s.ns + 1) * sizeof(float));
    memcpy(s.params, nn_params(m), s.np * sizeof(float));
    memcpy(s.state, nn_state(m), s.ns * sizeof(float));
    return s;
}
static int same_as(nn_model *m, const snapshot *s)
{
    return nn_param_count(m) == s->np && nn_state_count(m) == s->ns &&
           memcmp(nn_params(m), s->params, s->np * sizeof(float)) == 0 &&
           memcmp(nn_state(m), s->state, s->ns * sizeof(float)) == 0;
}
static void drop(snapshot *s)
{
    free(s->params);
    free(s->state);
}

/* nn_load(m, path) must fail (with `expected`, or any error if expected == NN_OK) with a
   message, and leave m unchanged. Returns 0 if so, else prints and returns 1. */
static int expect_load_fails(nn_model *m, const char *path, nn_status expected, const char *needle, const char *what)
{
    snapshot before = take(m);
    nn_status st = nn_load(m, path);
    const char *msg = nn_last_error();
    int bad = 0;
    if (st == NN_OK) {
        printf("  FAIL %s: nn_load accepted it\n", what);
        bad = 1;
    } else if (expected != NN_OK && st != expected) {
        printf("  FAIL %s: nn_load returned %s, expected %s (\"%s\")\n", what, nn_status_name(st), nn_status_name(expected), msg);
        bad = 1;
    } else if (!msg || !*msg) {
        printf("  FAIL %s: nn_load failed without a message\n", what);
        bad = 1;
    } else if (needle && !strstr(msg, needle)) {
        printf("  FAIL %s: message \"%s\" does not mention \"%s\"\n", what, msg, needle);
        bad = 1;
    }
    if (!same_as(m, &before)) {
        printf("  FAIL %s: the failed nn_load changed the model\n", what);
        bad = 1;
    }
    drop(&before);
    return bad;
}

static void test_model_round_trip(void **state)
{
    tmpdir d;
    char path[160], tmp[170];
    static const char *names[] = {"cnn.nn", "cnn.nn.tmp"};
    nn_model *a = cnn_model(1), *b = cnn_model(2);
    snapshot sa, sb;
    float x[3 * 64], *ya;
    size_t size;
    unsigned char *file;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "cnn.nn", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    train_a_little(a, 3);
    sa = take(a);
    sb = take(b);
    if (memcmp(sa.params, sb.params, sa.np * sizeof(float)) == 0 || memcmp(sa.state, sb.state, sa.ns * sizeof(float)) == 0)
        fail_msg("the two models already agree: the round trip would prove nothing");
    ASSERT_OK(nn_save(a, path));
    if (exists(tmp)) fail_msg("nn_save left %s behind", tmp);
    file = read_file(path, &size);
    if (!file) fail_msg("cannot read back %s", path);
    if (size != 40 + 4 * (sa.np + sa.ns) + 4)
        printf("  note: %lu-byte file for %lu parameters and %lu state values\n", (unsigned long)size,
               (unsigned long)sa.np, (unsigned long)sa.ns);
    if (get_le32(file + size - 4) != crc32_of(file, size - 4))
        fail_msg("format assumption: the last 4 bytes are not the CRC-32 of the rest");
    free(file);
    ASSERT_OK(nn_load(b, path));
    if (!same_as(b, &sa)) fail_msg("after nn_load the parameters or running stats differ from the saved model's");
    if (!same_as(a, &sa)) fail_msg("nn_save changed the model");
    /* and they compute the same function */
    nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
    ASSERT_OK(nn_forward(a, x, 3, NN_EVAL));
    ya = (float *)xmalloc(3 * 5 * sizeof(float));
    memcpy(ya, nn_output(a), 3 * 5 * sizeof(float));
    ASSERT_OK(nn_forward(b, x, 3, NN_EVAL));
    if (memcmp(ya, nn_output(b), 3 * 5 * sizeof(float)) != 0) fail_msg("the loaded model's eval output differs");
    free(ya);
    drop(&sa);
    drop(&sb);
    nn_model_free(a);
    nn_model_free(b);
    tmpdir_remove(&d, names, COUNT(names));
}

/* Every truncation and every flipped byte of a small model's file is refused. */
static void test_model_damaged(void **state)
{
    tmpdir d;
    char good[160], bad[160];
    static const char *names[] = {"good.nn", "bad.nn"};
    nn_model *a = small_model(3, NN_ACTIVATION_TANH, 2), *b = small_model(4, NN_ACTIVATION_TANH, 2);
    unsigned char *file, *copy;
    size_t size, len, pos;
    int failures = 0, m;
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "good.nn", good, sizeof good);
    tmp_path(&d, "bad.nn", bad, sizeof bad);
    train_a_little(a, 2);
    train_a_little(b, 1);
    ASSERT_OK(nn_save(a, good));
    file = read_file(good, &size);
    if (!file || size < 48) fail_msg("cannot read back %s (%lu bytes)", good, (unsigned long)size);
    copy = (unsigned char *)xmalloc(size);
    for (len = 0; len < size; len++) {
        char what[64];
        write_or_fail(bad, file, len);
        snprintf(what, sizeof what, "truncated to %lu of %lu bytes", (unsigned long)len, (unsigned long)size);
        failures += expect_load_fails(b, bad, NN_OK, bad, what);
        if (failures > 8) break;
    }
    for (pos = 0; pos < size && failures <= 8; pos++)
        for (m = 0; m < (int)COUNT(masks); m++) {
            char what[64];
            memcpy(copy, file, size);
            copy[pos] ^= masks[m];
            write_or_fail(bad, copy, size);
            snprintf(what, sizeof what, "byte %lu of %lu xor 0x%02x", (unsigned long)pos, (unsigned long)size, masks[m]);
            failures += expect_load_fails(b, bad, NN_OK, bad, what);
        }
    /* one byte too many */
    memcpy(copy, file, size);
    {
        unsigned char *longer = (unsigned char *)xmalloc(size + 1);
        memcpy(longer, file, size);
        longer[size] = 0;
        write_or_fail(bad, longer, size + 1);
        failures += expect_load_fails(b, bad, NN_OK, bad, "one byte appended");
        free(longer);
    }
    /* the good file still loads (the failures were the damage's doing) */
    ASSERT_OK(nn_load(b, good));
    free(file);
    free(copy);
    nn_model_free(a);
    nn_model_free(b);
    tmpdir_remove(&d, names, COUNT(names));
    if (failures) fail_msg("%d damaged file(s) were not refused cleanly (details above)", failures);
}

/* A wrong magic, a newer version and non-finite values, each with a correct CRC. */
static void test_model_magic_version(void **state)
{
    tmpdir d;
    char good[160], bad[160];
    static const char *names[] = {"good.nn", "bad.nn"};
    nn_model *a = small_model(5, NN_ACTIVATION_TANH, 2), *b = small_model(6, NN_ACTIVATION_TANH, 2);
    unsigned char *file;
    size_t size;
    uint32_t version;
    int failures = 0;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "good.nn", good, sizeof good);
    tmp_path(&d, "bad.nn", bad, sizeof bad);
    ASSERT_OK(nn_save(a, good));
    file = read_file(good, &size);
    if (!file) fail_msg("cannot read back %s", good);
    if (get_le32(file + size - 4) != crc32_of(file, size - 4))
        fail_msg("format assumption: the last 4 bytes are not the CRC-32 of the rest");
    file[0] ^= 0x20; /* "NNHMODEL" -> "nNHMODEL" */
    fix_crc(file, size);
    write_or_fail(bad, file, size);
    failures += expect_load_fails(b, bad, NN_ERROR_FORMAT, bad, "wrong magic (CRC fixed)");
    memcpy(file, "GIF89a\0\0", 8);
    fix_crc(file, size);
    write_or_fail(bad, file, size);
    failures += expect_load_fails(b, bad, NN_ERROR_FORMAT, bad, "another format's magic (CRC fixed)");
    free(file);
    file = read_file(good, &size);
    version = get_le32(file + 8);
    if (version == 0 || version > 1000) fail_msg("format assumption: version %u at offset 8 is implausible", (unsigned)version);
    put_le32(file + 8, version + 1);
    fix_crc(file, size);
    write_or_fail(bad, file, size);
    failures += expect_load_fails(b, bad, NN_ERROR_FORMAT, "version", "a newer version (CRC fixed)");
    put_le32(file + 8, 0xFFFFFFFFu);
    fix_crc(file, size);
    write_or_fail(bad, file, size);
    failures += expect_load_fails(b, bad, NN_ERROR_FORMAT, "version", "version 0xFFFFFFFF (CRC fixed)");
    free(file);
    /* well-formed but not finite: a NaN first parameter, an infinite last value (CRC fixed) */
    {
        static const struct { int from_end; uint32_t bits; const char *needle, *what; } cases[] = {
            {0, 0x7FC00000u, "parameter 0", "a NaN parameter (CRC fixed)"},
            {1, 0xFF800000u, "not finite", "an infinite last value (CRC fixed)"},
        };
        size_t k;
        for (k = 0; k < COUNT(cases); k++) {
            file = read_file(good, &size);
            put_le32(cases[k].from_end ? file + size - 8 : file + 40, cases[k].bits);
            fix_crc(file, size);
            write_or_fail(bad, file, size);
            failures += expect_load_fails(b, bad, NN_ERROR_NONFINITE, cases[k].needle, cases[k].what);
            free(file);
        }
    }
    nn_model_free(a);
    nn_model_free(b);
    tmpdir_remove(&d, names, COUNT(names));
    if (failures) fail_msg("%d file(s) were not refused cleanly (details above)", failures);
}

/* Files from other architectures; a missing file. */
static void test_model_other_architecture(void **state)
{
    tmpdir d;
    char pa[160], pb[160], missing[160];
    static const char *names[] = {"tanh.nn", "wide.nn"};
    nn_model *tanh_model = small_model(7, NN_ACTIVATION_TANH, 2);
    nn_model *relu_model = small_model(8, NN_ACTIVATION_RELU, 2);   /* same counts, other graph */
    nn_model *wide_model = small_model(9, NN_ACTIVATION_TANH, 3);   /* other counts */
    int failures = 0;
    (void)state;
    if (nn_param_count(tanh_model) != nn_param_count(relu_model) || nn_state_count(tanh_model) != nn_state_count(relu_model))
        fail_msg("the two models should have the same counts");
    tmpdir_new(&d);
    tmp_path(&d, "tanh.nn", pa, sizeof pa);
    tmp_path(&d, "wide.nn", pb, sizeof pb);
    tmp_path(&d, "missing.nn", missing, sizeof missing);
    ASSERT_OK(nn_save(tanh_model, pa));
    ASSERT_OK(nn_save(wide_model, pb));
    failures += expect_load_fails(relu_model, pa, NN_OK, pa, "same counts, ReLU instead of tanh");
    failures += expect_load_fails(tanh_model, pb, NN_OK, pb, "3 outputs into a 2-output model");
    failures += expect_load_fails(wide_model, pa, NN_OK, pa, "2 outputs into a 3-output model");
    failures += expect_load_fails(tanh_model, missing, NN_ERROR_IO, missing, "a missing file");
    failures += expect_load_fails(tanh_model, d.path, NN_OK, NULL, "a directory");
    ASSERT_OK(nn_load(tanh_model, pa));
    nn_model_free(tanh_model);
    nn_model_free(relu_model);
    nn_model_free(wide_model);
    tmpdir_remove(&d, names, COUNT(names));
    if (failures) fail_msg("%d file(s) were not refused cleanly (details above)", failures);
}

static void test_model_save_errors(void **state)
{
    tmpdir d;
    char target[160], tmp[170], nodir[200];
    static const char *names[] = {"model.nn", "model.nn.tmp"};
    nn_model *a = small_model(10, NN_ACTIVATION_TANH, 2), *b = small_model(11, NN_ACTIVATION_TANH, 2);
    nn_model *c = small_model(12, NN_ACTIVATION_TANH, 2), *raw;
    unsigned char *before, *after;
    size_t size_before, size_after;
    snapshot sb;
    nn_status st;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "model.nn", target, sizeof target);
    snprintf(tmp, sizeof tmp, "%s.tmp", target);
    /* a directory that does not exist */
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/model.nn", d.path);
    st = nn_save(a, nodir);
    if (st != NN_ERROR_IO || !*nn_last_error())
        fail_msg("nn_save into a missing directory: %s (\"%s\"), expected NN_ERROR_IO", nn_status_name(st), nn_last_error());
    if (exists(nodir)) fail_msg("nn_save into a missing directory created the file");
    /* over an existing file: replaced */
    ASSERT_OK(nn_save(a, target));
    ASSERT_OK(nn_save(b, target));
    if (exists(tmp)) fail_msg("nn_save left %s behind", tmp);
    sb = take(b);
    ASSERT_OK(nn_load(c, target));
    if (!same_as(c, &sb)) fail_msg("nn_save over an existing file did not replace it");
    drop(&sb);
    /* the temporary cannot be created (a directory in its way): NN_ERROR_IO, target intact */
    before = read_file(target, &size_before);
    if (!before) fail_msg("cannot read %s", target);
    if (nn_test_mkdir(tmp) != 0) fail_msg("cannot create the directory %s", tmp);
    st = nn_save(a, target);
    after = read_file(target, &size_after);
    rmdir(tmp);
    if (st == NN_OK)
        fail_msg("nn_save succeeded with a directory at %s (format assumption: nn_save writes <path>.tmp)", tmp);
    if (st != NN_ERROR_IO || !*nn_last_error()) fail_msg("nn_save with an unwritable temporary: %s, expected NN_ERROR_IO", nn_status_name(st));
    if (!after || size_after != size_before || memcmp(before, after, size_before) != 0)
        fail_msg("a failed nn_save damaged the existing %s", target);
    free(before);
    free(after);
    /* misuse */
    raw = nn_model_new(1);
    (void)nn_linear(raw, nn_input(raw, 2, 1, 1), 2, NN_BIAS);
    st = nn_save(raw, target);
    if (st != NN_ERROR_STATE) fail_msg("nn_save of an uncompiled model: %s", nn_status_name(st));
    st = nn_load(raw, target);
    if (st != NN_ERROR_STATE) fail_msg("nn_load into an uncompiled model: %s", nn_status_name(st));
    st = nn_save(a, "");
    if (st != NN_ERROR_ARGUMENT) fail_msg("nn_save to \"\": %s", nn_status_name(st));
    st = nn_save(a, NULL);
    if (st != NN_ERROR_ARGUMENT) fail_msg("nn_save to NULL: %s", nn_status_name(st));
    st = nn_load(a, NULL);
    if (st == NN_OK) fail_msg("nn_load from NULL succeeded");
    nn_model_free(raw);
    nn_model_free(a);
    nn_model_free(b);
    nn_model_free(c);
    tmpdir_remove(&d, names, COUNT(names));
}

/* ------------------------------------------------------------------ IDX files */
#define IDX_N 5
#define IDX_R 3
#define IDX_C 4
static const unsigned char idx_labels[IDX_N] = {3, 0, 9, 1, 4};

/* images: 16-byte header + pixels; labels: 8-byte header + labels. Returns sizes. */
static size_t make_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols)
{
    size_t i, pixels = (size_t)IDX_N * IDX_R * IDX_C;
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (i = 0; i < pixels; i++) buf[16 + i] = (unsigned char)((i * 37 + 11) % 256);
    return 16 + pixels;
}
static size_t make_labels(unsigned char *buf, uint32_t magic, uint32_t n)
{
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    memcpy(buf + 8, idx_labels, IDX_N);
    return 8 + IDX_N;
}

static void test_idx_good(void **state)
{
    tmpdir d;
    char pi[160], pl[160];
    static const char *names[] = {"img", "lab"};
    unsigned char img[16 + IDX_N * IDX_R * IDX_C + 8], lab[8 + IDX_N + 8];
    nn_dataset ds, part;
    size_t i;
    double mean, std, sum = 0.0, sq = 0.0;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "img", pi, sizeof pi);
    tmp_path(&d, "lab", pl, sizeof pl);
    write_or_fail(pi, img, make_images(img, 0x803, IDX_N, IDX_R, IDX_C));
    write_or_fail(pl, lab, make_labels(lab, 0x801, IDX_N));
    ASSERT_OK(nn_mnist_load(pi, pl, &ds));
    tmpdir_remove(&d, names, COUNT(names));
    if (ds.count != IDX_N || ds.channels != 1 || ds.height != IDX_R || ds.width != IDX_C)
        fail_msg("loaded %d samples of %dx%dx%d, expected %d of 1x%dx%d", ds.count, ds.channels, ds.height, ds.width, IDX_N,
                 IDX_R, IDX_C);
    if (ds.classes != 10) fail_msg("classes %d, expected 10 (the largest label is 9)", ds.classes);
    if (!ds.x || !ds.labels) fail_msg("no pixels or labels");
    if (ds.targets) fail_msg("targets for a label file");
    for (i = 0; i < (size_t)IDX_N * IDX_R * IDX_C; i++) {
        if (ds.x[i] != (float)img[16 + i]) fail_msg("pixel %lu: %g, file has %d", (unsigned long)i, (double)ds.x[i], img[16 + i]);
        sum += img[16 + i];
    }
    for (i = 0; i < IDX_N; i++)
        if (ds.labels[i] != idx_labels[i]) fail_msg("label %lu: %d, file has %d", (unsigned long)i, ds.labels[i], idx_labels[i]);
    /* nn_dataset_stats: population mean and std in double */
    mean = sum / (IDX_N * IDX_R * IDX_C);
    for (i = 0; i < (size_t)IDX_N * IDX_R * IDX_C; i++) sq += (img[16 + i] - mean) * (img[16 + i] - mean);
    std = sqrt(sq / (IDX_N * IDX_R * IDX_C));
    {
        double m2, s2;
        nn_dataset_stats(&ds, &m2, &s2);
        if (fabs(m2 - mean) > 1e-12 * mean || fabs(s2 - std) > 1e-12 * std)
            fail_msg("nn_dataset_stats: %.15g %.15g, expected %.15g %.15g", m2, s2, mean, std);
    }
    /* a slice is a copy of its samples */
    ASSERT_OK(nn_dataset_slice(&ds, 1, 3, &part));
    if (part.count != 3 || part.labels[0] != idx_labels[1] || part.x[0] != ds.x[IDX_R * IDX_C] || part.x == ds.x)
        fail_msg("nn_dataset_slice(1, 3) is not a copy of samples 1..3");
    nn_dataset_free(&part);
    nn_dataset_free(&ds);
    if (ds.x || ds.labels || ds.count) fail_msg("nn_dataset_free did not clear the dataset");
}

/* nn_mnist_load_scaled: every byte value v loads as v / 255 in float, torchvision's ToTensor
   (PyTorch 1.13: torch.arange(256, dtype=torch.uint8).float().div(255)[1] has the bits 0x3B808081),
   so 0 -> 0 and 255 -> 1 exactly; a broken file fails as nn_mnist_load does, out untouched. */
static void test_idx_scaled(void **state)
{
    tmpdir d;
    char pi[160], pl[160];
    static const char *names[] = {"img", "lab", "short"};
    unsigned char img[16 + 256], lab[8 + 1];
    nn_dataset ds, sentinel;
    uint32_t bits;
    int v;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "img", pi, sizeof pi);
    tmp_path(&d, "lab", pl, sizeof pl);
    put_be32(img, 0x803);
    put_be32(img + 4, 1);
    put_be32(img + 8, 16);
    put_be32(img + 12, 16);
    for (v = 0; v < 256; v++) img[16 + v] = (unsigned char)v;
    put_be32(lab, 0x801);
    put_be32(lab + 4, 1);
    lab[8] = 7;
    write_or_fail(pi, img, sizeof img);
    write_or_fail(pl, lab, sizeof lab);
    ASSERT_OK(nn_mnist_load_scaled(pi, pl, &ds));
    if (ds.count != 1 || ds.height != 16 || ds.width != 16 || ds.labels[0] != 7) fail_msg("wrong shape or label");
    for (v = 0; v < 256; v++)
        if (ds.x[v] != (float)v / 255.0f) fail_msg("byte %d loads as %.9g, not %d/255", v, (double)ds.x[v], v);
    memcpy(&bits, &ds.x[1], 4);
    if (bits != 0x3B808081u || ds.x[0] != 0.0f || ds.x[255] != 1.0f)
        fail_msg("bytes 0, 1, 255 load as %.9g, %.9g (bits 0x%08lX), %.9g", (double)ds.x[0], (double)ds.x[1],
                 (unsigned long)bits, (double)ds.x[255]);
    nn_dataset_free(&ds);
    /* a truncated image file: the error nn_mnist_load gives, nothing written */
    tmp_path(&d, "short", pi, sizeof pi);
    write_or_fail(pi, img, sizeof img - 1);
    memset(&ds, 0x5A, sizeof ds);
    sentinel = ds;
    if (nn_mnist_load_scaled(pi, pl, &ds) != NN_ERROR_FORMAT || !strstr(nn_last_error(), "short"))
        fail_msg("a truncated image file: \"%s\"", nn_last_error());
    if (memcmp(&ds, &sentinel, sizeof ds) != 0) fail_msg("a failed nn_mnist_load_scaled changed its output");
    tmpdir_remove(&d, names, COUNT(names));
}

/* One broken pair: the load must fail with `expected`, a message naming `culprit`, and leave
   *out as it was. Returns 1 (and prints) otherwise. */
static int expect_idx_fails(const char *pi, const char *pl, nn_status expected, const char *culprit, const char *what)
{
    nn_dataset out, sentinel;
    nn_status st;
    const char *msg;
    memset(&sentinel, 0x5A, sizeof sentinel);
    out = sentinel;
    st = nn_mnist_load(pi, pl, &out);
    msg = nn_last_error();
    if (st == NN_OK) {
        printf("  FAIL %s: nn_mnist_load accepted it\n", what);
        nn_dataset_free(&out);
        return 1;
    }
    if (st != expected) {
        printf("  FAIL %s: %s, expected %s (\"%s\")\n", what, nn_status_name(st), nn_status_name(expected), msg);
        return 1;
    }
    if (!msg || !strstr(msg, culprit)) {
        printf("  FAIL %s: message \"%s\" does not name %s\n", what, msg ? msg : "", culprit);
        return 1;
    }
    if (memcmp(&out, &sentinel, sizeof out) != 0) {
        printf("  FAIL %s: the output dataset was changed\n", what);
        return 1;
    }
    return 0;
}

static void test_idx_broken(void **state)
{
    tmpdir d;
    char gi[160], gl[160], bi[160], bl[160], missing[160];
    static const char *names[] = {"img", "lab", "bad-img", "bad-lab"};
    unsigned char img[16 + IDX_N * IDX_R * IDX_C + 8], lab[8 + IDX_N + 8];
    size_t ni, nl;
    int f = 0;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "img", gi, sizeof gi);
    tmp_path(&d, "lab", gl, sizeof gl);
    tmp_path(&d, "bad-img", bi, sizeof bi);
    tmp_path(&d, "bad-lab", bl, sizeof bl);
    tmp_path(&d, "missing", missing, sizeof missing);
    ni = make_images(img, 0x803, IDX_N, IDX_R, IDX_C);
    nl = make_labels(lab, 0x801, IDX_N);
    write_or_fail(gi, img, ni);
    write_or_fail(gl, lab, nl);

    /* wrong magic */
    make_images(img, 0x801, IDX_N, IDX_R, IDX_C); write_or_fail(bi, img, ni);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image magic 0x801");
    make_images(img, 0x0D03, IDX_N, IDX_R, IDX_C); write_or_fail(bi, img, ni);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image magic 0xD03 (floats)");
    make_labels(lab, 0x803, IDX_N); write_or_fail(bl, lab, nl);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "label magic 0x803");
    /* counts that disagree with the file size */
    make_images(img, 0x803, IDX_N, IDX_R, IDX_C);
    write_or_fail(bi, img, ni - 1);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image file one byte short");
    img[ni] = 7;
    write_or_fail(bi, img, ni + 1);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image file one byte long");
    write_or_fail(bi, img, 10);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image file shorter than its header");
    write_or_fail(bi, img, 0);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "empty image file");
    make_images(img, 0x803, IDX_N + 1, IDX_R, IDX_C); write_or_fail(bi, img, ni);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "image count one more than the pixels");
    make_labels(lab, 0x801, IDX_N);
    write_or_fail(bl, lab, nl - 1);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "label file one byte short");
    lab[nl] = 2;
    write_or_fail(bl, lab, nl + 1);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "label file one byte long");
    write_or_fail(bl, lab, 5);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "label file shorter than its header");
    /* zero dimensions (the file sizes agree with the header) */
    make_images(img, 0x803, 0, IDX_R, IDX_C); write_or_fail(bi, img, 16);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "zero images");
    make_images(img, 0x803, IDX_N, 0, IDX_C); write_or_fail(bi, img, 16);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "zero rows");
    make_images(img, 0x803, IDX_N, IDX_R, 0); write_or_fail(bi, img, 16);
    f += expect_idx_fails(bi, gl, NN_ERROR_FORMAT, bi, "zero columns");
    /* label count different from the image count (each file consistent with its size) */
    make_labels(lab, 0x801, IDX_N - 1); write_or_fail(bl, lab, nl - 1);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "4 labels for 5 images");
    make_labels(lab, 0x801, IDX_N + 1); lab[8 + IDX_N] = 1; write_or_fail(bl, lab, nl + 1);
    f += expect_idx_fails(gi, bl, NN_ERROR_FORMAT, bl, "6 labels for 5 images");
    /* missing files */
    f += expect_idx_fails(missing, gl, NN_ERROR_IO, missing, "missing image file");
    f += expect_idx_fails(gi, missing, NN_ERROR_IO, missing, "missing label file");
    /* the good pair still loads */
    {
        nn_dataset ds;
        ASSERT_OK(nn_mnist_load(gi, gl, &ds));
        nn_dataset_free(&ds);
    }
    tmpdir_remove(&d, names, COUNT(names));
    if (f) fail_msg("%d broken IDX file(s) were not refused cleanly (details above)", f);
}

/* ------------------------------------------------------------------ MNIST itself */
static int have_mnist(void)
{
    FILE *f = fopen("data/mnist/train-images-idx3-ubyte", "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static void check_label_counts(const nn_dataset *ds, const int *expected, const char *which)
{
    int counts[10] = {0}, i;
    for (i = 0; i < ds->count; i++) {
        if (ds->labels[i] < 0 || ds->labels[i] > 9) fail_msg("%s: label %d of sample %d", which, ds->labels[i], i);
        counts[ds->labels[i]]++;
    }
    for (i = 0; i < 10; i++)
        if (counts[i] != expected[i]) fail_msg("%s: %d samples of class %d, expected %d", which, counts[i], i, expected[i]);
}

static void test_mnist_files(void **state)
{
    static const int train_counts[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    static const int test_counts[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    nn_dataset train, test;
    double mean, std;
    (void)state;
    if (!have_mnist()) {
        print_message("  skipping: data/mnist not found (run `make data`; the IDX reader is covered by the synthetic files)\n");
        skip();
    }
    ASSERT_OK(nn_mnist_load("data/mnist/train-images-idx3-ubyte", "data/mnist/train-labels-idx1-ubyte", &train));
    if (train.count != 60000 || train.channels != 1 || train.height != 28 || train.width != 28 || train.classes != 10) {
        nn_dataset_free(&train);
        fail_msg("training set: %d of %dx%dx%d, %d classes", train.count, train.channels, train.height, train.width, train.classes);
    }
    check_label_counts(&train, train_counts, "training set");
    nn_dataset_stats(&train, &mean, &std);
    nn_dataset_free(&train);
    if (fabs(mean - 33.318421449829934) > 1e-9 || fabs(std - 78.56748998339798) > 1e-9)
        fail_msg("training pixels: mean %.15f std %.14f, expected 33.318421449829934 and 78.56748998339798", mean, std);
    ASSERT_OK(nn_mnist_load("data/mnist/t10k-images-idx3-ubyte", "data/mnist/t10k-labels-idx1-ubyte", &test));
    if (test.count != 10000 || test.height != 28 || test.width != 28) {
        nn_dataset_free(&test);
        fail_msg("test set: %d of %dx%d", test.count, test.height, test.width);
    }
    check_label_counts(&test, test_counts, "test set");
    nn_dataset_free(&test);
}

/* NN_TEST_TIMES=1 prints each test's wall time. */
static double t_start;
static int t_setup(void **state)
{
    (void)state;
    nn_test_seed = 0x9E3779B97F4A7C15ull;
    t_start = nn_seconds();
    return 0;
}
static int t_teardown(void **state)
{
    const char *v = getenv("NN_TEST_TIMES");
    (void)state;
    if (v && *v && *v != '0') printf("  (%.3f s)\n", nn_seconds() - t_start);
    return 0;
}
#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)

static const struct CMUnitTest tests[] = {
    T(test_model_round_trip),
    T(test_model_damaged),
    T(test_model_magic_version),
    T(test_model_other_architecture),
    T(test_model_save_errors),
    T(test_idx_good),
    T(test_idx_broken),
    T(test_idx_scaled),
    T(test_mnist_files),
};

NN_TEST_MAIN("files", tests)
