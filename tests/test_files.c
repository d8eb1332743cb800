/* test_files.c - cmocka tests of nn.h's file formats (section 6): model files (nn_save, nn_load,
   nn_model_load), node names and metadata, prediction, and IDX files (nn_mnist_load), plus the
   MNIST files themselves when data/mnist exists (relative to the current directory; skipped with a
   message otherwise).

   Model files (format 2, docs/format.md). A round trip restores the parameters and the batch-norm
   statistics bit for bit, into a model built in code (nn_load) and into one rebuilt from the
   file alone (nn_model_load: an MLP, a CNN with batch norm and dropout, a residual block, a model
   with unused nodes), which computes the same outputs, saves the same bytes and trains on
   bit for bit like the original. Every damaged file must be refused with an error and a message,
   and must leave the model bit for bit as it was (nn_load) or return no model (nn_model_load):
   every truncation, every byte position flipped with three masks, a wrong magic, a newer
   version, a NaN parameter and an infinite value (all with the CRC recomputed), files from other
   architectures, a missing file; every byte inverted with the CRC recomputed is either refused or
   accepted as a model that saves exactly those bytes. Hostile files written byte by byte with
   tests/model_file.h (bad op, activation and loss codes, inputs out of range, absurd counts and
   lengths, bad names, unused layers, settings a builder would not make, sections duplicated,
   unknown, missing or out of order, bad metadata, a graph needing more than NN_LOAD_MAX_BYTES)
   are refused with the expected status and message by both readers, and a failed nn_load keeps
   the metadata; a file from that writer and from nn_save agree byte for byte. nn_load's
   mismatch messages are checked word for word for every kind of difference; names and the loss
   may differ. The committed format-1 file (tests/fixtures/model_v1.h, from the last nn.h that
   wrote it) still loads exactly, and its damaged copies are refused. nn_save into a directory
   that does not exist fails with NN_ERROR_IO; nn_save whose temporary file cannot be created
   fails with NN_ERROR_IO and leaves the existing file intact; nn_save over an existing file
   replaces it and leaves no temporary behind; a model of more layers than a file holds (4096)
   is refused, writing nothing.
   Names: the defaults ("conv2d1", "relu2", "leaky_relu1"), nn_set_name's rules and duplicates,
   nn_compile refusing a name a later default takes. Metadata: set, replace, remove, limits,
   through a file both ways. Prediction: nn_predict equals the library's softmax (or exp, or
   the raw outputs, by loss) of nn_forward's outputs bit for bit and a softmax in double to 3e-6,
   for more samples than max_batch; nn_predict_classes is the argmax; bad arguments.
   Format assumptions the older tests make (docs/format.md): the magic is the first 8 bytes,
   the version a little-endian u32 at offset 8, the last 4 bytes the CRC-32 (zlib's polynomial)
   of everything before them, and the temporary file is "<path>.tmp". A test that depends on one
   of these says so when it fails.

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
#include "model_file.h"
#include "fixtures/model_v1.h"
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
    if (get_le32(file + size - 4) != crc32_of(file, size - 4))
        fail_msg("format assumption: the last 4 bytes are not the CRC-32 of the rest");
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
    /* rebuilt from the file alone: the same values, the same function, the same file */
    {
        nn_model *c = NULL;
        unsigned char *again;
        size_t again_size;
        ASSERT_OK(nn_model_load(path, 8, &c));
        if (!c || !same_as(c, &sa)) fail_msg("nn_model_load: the parameters or running stats differ from the saved model's");
        ASSERT_OK(nn_forward(c, x, 3, NN_EVAL));
        if (memcmp(ya, nn_output(c), 3 * 5 * sizeof(float)) != 0) fail_msg("nn_model_load: the rebuilt model's eval output differs");
        ASSERT_OK(nn_save(c, path));
        again = read_file(path, &again_size);
        if (!again || again_size != size || memcmp(again, file, size) != 0)
            fail_msg("the rebuilt model saves another file (%lu bytes, the original %lu)", (unsigned long)again_size,
                     (unsigned long)size);
        free(again);
        nn_model_free(c);
    }
    free(file);
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
            long parm;
            file = read_file(good, &size);
            parm = mf_find_section(file, size, "PARM", NULL);
            if (parm < 0) fail_msg("format assumption: no PARM section in %s", good);
            put_le32(cases[k].from_end ? file + size - 8 : file + parm, cases[k].bits);
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
    /* a file holds at most 4096 layers: 4096 save and load again, 4097 are refused, writing nothing */
    {
        int layers;
        for (layers = 4096; layers <= 4097; layers++) {
            nn_model *deep = nn_model_new(1), *back = NULL;
            nn_node *h = nn_input(deep, 1, 1, 2);
            int i;
            for (i = 1; i < layers; i++) h = nn_relu(deep, h);
            deep = compiled(deep, h, NN_LOSS_NONE, 1);
            remove(target);
            st = nn_save(deep, target);
            if (layers == 4096) {
                ASSERT_OK(st);
                ASSERT_OK(nn_model_load(target, 1, &back));
                if (strcmp(nn_node_name(h), "relu4095") != 0) fail_msg("the last of 4096 layers is called %s", nn_node_name(h));
                nn_model_free(back);
            } else if (st != NN_ERROR_ARGUMENT || exists(target) || !strstr(nn_last_error(), "4097 layers")) {
                fail_msg("nn_save of 4097 layers: %s (\"%s\"), expected NN_ERROR_ARGUMENT and no file", nn_status_name(st),
                         nn_last_error());
            }
            nn_model_free(deep);
        }
    }
    nn_model_free(raw);
    nn_model_free(a);
    nn_model_free(b);
    nn_model_free(c);
    tmpdir_remove(&d, names, COUNT(names));
}

/* ------------------------------------------------------------------ format 2: rebuilding, names, metadata */
/* Saves a, rebuilds it with nn_model_load (max batch 4) and checks that the rebuilt model has the
   same parameters, statistics and sizes, computes the same eval outputs bit for bit, and saves
   the same bytes (so the graph, names, loss and metadata came back too). Returns the rebuilt
   model (the caller frees it). */
static nn_model *check_rebuild(nn_model *a, const tmpdir *d, const char *what)
{
    char path[160];
    nn_model *b = NULL;
    snapshot sa = take(a);
    unsigned char *file, *again;
    size_t size, again_size;
    const int in = nn_input_size(a), out = nn_output_size(a);
    float *x = (float *)xmalloc(3 * (size_t)in * sizeof(float)), *ya = (float *)xmalloc(3 * (size_t)out * sizeof(float));
    tmp_path(d, "rebuild.nn", path, sizeof path);
    ASSERT_OK(nn_save(a, path));
    file = read_file(path, &size);
    ASSERT_OK(nn_model_load(path, 4, &b));
    if (!b) fail_msg("%s: nn_model_load returned NN_OK and no model", what);
    if (!same_as(b, &sa)) fail_msg("%s: the rebuilt model's parameters or statistics differ", what);
    if (nn_input_size(b) != in || nn_output_size(b) != out || nn_weight_count(b) != nn_weight_count(a))
        fail_msg("%s: rebuilt with %d inputs, %d outputs, %lu weights (saved: %d, %d, %lu)", what, nn_input_size(b),
                 nn_output_size(b), (unsigned long)nn_weight_count(b), in, out, (unsigned long)nn_weight_count(a));
    nn_test_fill(x, 3 * (size_t)in, -1.0f, 1.0f);
    ASSERT_OK(nn_forward(a, x, 3, NN_EVAL));
    memcpy(ya, nn_output(a), 3 * (size_t)out * sizeof(float));
    ASSERT_OK(nn_forward(b, x, 3, NN_EVAL));
    if (memcmp(ya, nn_output(b), 3 * (size_t)out * sizeof(float)) != 0) fail_msg("%s: the rebuilt model's outputs differ", what);
    ASSERT_OK(nn_save(b, path));
    again = read_file(path, &again_size);
    if (!file || !again || again_size != size || memcmp(file, again, size) != 0)
        fail_msg("%s: the rebuilt model saves another file", what);
    remove(path);
    free(file);
    free(again);
    free(x);
    free(ya);
    drop(&sa);
    return b;
}

/* input 6 -> linear 8 ("hidden") -> relu -> linear 3 ("logits"), cross-entropy */
static nn_model *mlp_model(uint64_t seed, int max_batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_linear(m, nn_input(m, 1, 1, 6), 8, NN_BIAS), *y;
    ASSERT_OK(nn_set_name(h, "hidden"));
    y = nn_linear(m, nn_relu(m, h), 3, NN_BIAS);
    ASSERT_OK(nn_set_name(y, "logits"));
    return compiled(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch);
}

/* a residual block: conv -> relu, conv (no bias), their sum, leaky ReLU, global average, linear */
static nn_model *residual_model(uint64_t seed)
{
    nn_model *m = nn_model_new(seed);
    nn_node *a = nn_relu(m, nn_conv2d(m, nn_input(m, 2, 6, 6), 4, 3, 1, 1, NN_BIAS));
    nn_node *b = nn_conv2d(m, a, 4, 3, 1, 1, NN_NO_BIAS);
    nn_node *h = nn_leaky_relu(m, nn_add_nodes(m, a, b), 0.1f);
    return compiled(m, nn_linear(m, nn_global_avgpool(m, h), 3, NN_BIAS), NN_LOSS_MSE, 4);
}

static void test_model_load_rebuilds(void **state)
{
    tmpdir d;
    static const char *names[] = {"rebuild.nn"};
    nn_model *models[3], *b;
    const char *what[3] = {"MLP", "CNN with batch norm and dropout", "residual block"};
    int k;
    (void)state;
    tmpdir_new(&d);
    models[0] = mlp_model(21, 4);
    models[1] = cnn_model(22);
    models[2] = residual_model(23);
    train_a_little(models[0], 2);
    train_a_little(models[1], 2);
    {
        /* nodes the output does not depend on are not saved: the rebuilt model has only the others
           (and their names, "linear2" staying "linear2") */
        nn_model *m = nn_model_new(24);
        nn_node *x = nn_input(m, 1, 1, 5), *h = nn_tanh(m, nn_linear(m, x, 4, NN_BIAS));
        nn_node *y;
        (void)nn_linear(m, h, 7, NN_BIAS);      /* linear2: a dead branch */
        (void)nn_relu(m, x);                    /* another */
        y = nn_linear(m, h, 3, NN_BIAS);        /* linear3 */
        m = compiled(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4);
        b = check_rebuild(m, &d, "a model with unused nodes");
        if (nn_param_count(b) != 4 * 5 + 4 + 3 * 4 + 3 || strcmp(nn_node_name(nn_layer(b, 1)), "linear3") != 0)
            fail_msg("unused nodes: %lu parameters and a last layer called %s after nn_model_load",
                     (unsigned long)nn_param_count(b), nn_node_name(nn_layer(b, 1)));
        nn_model_free(b);
        nn_model_free(m);
    }
    for (k = 0; k < 3; k++) {
        b = check_rebuild(models[k], &d, what[k]);
        if (k == 0) {
            /* names came back; and training goes on from the same point: one SGD step on each */
            float x[4 * 6];
            int labels[4] = {0, 2, 1, 2};
            nn_optimizer oa = nn_sgd(0.1f, 0.0f, 0.0f), ob = nn_sgd(0.1f, 0.0f, 0.0f);
            if (strcmp(nn_node_name(nn_layer(b, 0)), "hidden") || strcmp(nn_node_name(nn_layer(b, 1)), "logits"))
                fail_msg("names after nn_model_load: %s, %s (saved: hidden, logits)", nn_node_name(nn_layer(b, 0)),
                         nn_node_name(nn_layer(b, 1)));
            nn_set_sample_split(models[0], 0);
            nn_set_sample_split(b, 0);
            nn_test_fill(x, COUNT(x), -1.0f, 1.0f);
            ASSERT_OK(nn_train_step(models[0], &oa, x, labels, NULL, 4, NULL));
            ASSERT_OK(nn_train_step(b, &ob, x, labels, NULL, 4, NULL));
            if (memcmp(nn_params(models[0]), nn_params(b), nn_param_count(b) * sizeof(float)) != 0)
                fail_msg("one SGD step on the rebuilt MLP gives other parameters than on the original");
            nn_optimizer_free(&oa);
            nn_optimizer_free(&ob);
        }
        nn_model_free(b);
        nn_model_free(models[k]);
    }
    tmpdir_remove(&d, names, COUNT(names));
}

static void test_node_names(void **state)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 1, 6, 6);
    nn_node *c1 = nn_conv2d(m, x, 2, 3, 1, 1, NN_BIAS), *r1 = nn_relu(m, c1);
    nn_node *c2 = nn_conv2d(m, r1, 2, 3, 1, 1, NN_BIAS), *r2 = nn_relu(m, c2), *t = nn_tanh(m, r2);
    nn_node *l1 = nn_linear(m, nn_flatten(m, t), 4, NN_BIAS), *k1 = nn_leaky_relu(m, l1, 0.1f);
    nn_node *l2 = nn_linear(m, k1, 3, NN_BIAS), *late;
    const nn_node *nodes[] = {x, c1, r1, c2, r2, t, l1, k1, l2};
    static const char *const expected[] = {"input1", "conv2d1", "relu1", "conv2d2", "relu2", "tanh1", "linear1", "leaky_relu1",
                                           "linear2"};
    static const char *const bad[] = {"", "two words", "tab\tname", "caf\xc3\xa9",
                                      "a123456789012345678901234567890123456789012345678901234567890123"};
    size_t i;
    nn_status st;
    (void)state;
    for (i = 0; i < COUNT(nodes); i++)
        if (strcmp(nn_node_name(nodes[i]), expected[i]) != 0)
            fail_msg("default name of node %lu: \"%s\", expected \"%s\"", (unsigned long)i, nn_node_name(nodes[i]), expected[i]);
    if (strcmp(nn_node_name(NULL), "") != 0) fail_msg("nn_node_name(NULL) is not \"\"");
    for (i = 0; i < COUNT(bad); i++) {
        st = nn_set_name(l1, bad[i]);
        if (st != NN_ERROR_ARGUMENT || !strstr(nn_last_error(), "nn_set_name"))
            fail_msg("nn_set_name(\"%s\"): %s (\"%s\"), expected NN_ERROR_ARGUMENT", bad[i], nn_status_name(st), nn_last_error());
    }
    if (nn_set_name(l1, NULL) != NN_ERROR_ARGUMENT || nn_set_name(NULL, "x") != NN_ERROR_ARGUMENT)
        fail_msg("nn_set_name with NULL was not NN_ERROR_ARGUMENT");
    if (strcmp(nn_node_name(l1), "linear1") != 0) fail_msg("a refused name changed the node's: \"%s\"", nn_node_name(l1));
    /* 63 characters is the longest; a name another node has is refused, renaming to its own name is fine */
    ASSERT_OK(nn_set_name(l1, "a12345678901234567890123456789012345678901234567890123456789012"));
    ASSERT_OK(nn_set_name(l1, "fc1"));
    ASSERT_OK(nn_set_name(l1, "fc1"));
    ASSERT_OK(nn_set_name(l1, nn_node_name(l1)));
    st = nn_set_name(l2, "fc1");
    if (st != NN_ERROR_ARGUMENT || !strstr(nn_last_error(), "fc1")) fail_msg("a duplicate name: %s (\"%s\")", nn_status_name(st), nn_last_error());
    if (strcmp(nn_node_name(l2), "linear2") != 0) fail_msg("a refused duplicate renamed the node");
    /* a name that a later node gets by default: nn_compile refuses, naming both */
    ASSERT_OK(nn_set_name(k1, "linear3"));
    late = nn_linear(m, l2, 2, NN_BIAS);
    if (strcmp(nn_node_name(late), "linear3") != 0) fail_msg("the third linear is \"%s\", expected linear3", nn_node_name(late));
    st = nn_compile(m, late, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2);
    if (st != NN_ERROR_ARGUMENT || !strstr(nn_last_error(), "\"linear3\"") || !strstr(nn_last_error(), "8 and 10"))
        fail_msg("nn_compile with two nodes called linear3: %s (\"%s\")", nn_status_name(st), nn_last_error());
    ASSERT_OK(nn_set_name(late, "out"));
    ASSERT_OK(nn_compile(m, late, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2));
    /* names may still change after nn_compile */
    ASSERT_OK(nn_set_name(c1, "stem"));
    if (strcmp(nn_node_name(c1), "stem") != 0) fail_msg("renaming after nn_compile did not stick");
    nn_model_free(m);
}

static void test_model_metadata(void **state)
{
    tmpdir d;
    char path[160], longer[NN_META_MAX_VALUE + 2], key[16];
    static const char *names[] = {"meta.nn"};
    nn_model *a = mlp_model(31, 4), *b = mlp_model(32, 4), *c = NULL;
    int i;
    nn_status st;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "meta.nn", path, sizeof path);
    if (nn_get_meta(a, "mean") != NULL || nn_get_meta(NULL, "mean") != NULL || nn_get_meta(a, NULL) != NULL)
        fail_msg("nn_get_meta found something in a fresh model (or for NULL)");
    ASSERT_OK(nn_set_meta(a, "mean", "0.1307"));
    ASSERT_OK(nn_set_meta(a, "std", "0.3081"));
    ASSERT_OK(nn_set_meta(a, "classes", "zero,one,two \xe2\x9c\x93")); /* values are bytes: UTF-8 is fine */
    ASSERT_OK(nn_set_meta(a, "empty", ""));
    ASSERT_OK(nn_set_meta(a, "mean", "0.5"));           /* replaced */
    ASSERT_OK(nn_set_meta(a, "gone", "x"));
    ASSERT_OK(nn_set_meta(a, "gone", NULL));            /* removed */
    ASSERT_OK(nn_set_meta(a, "never-set", NULL));       /* removing a missing key is fine */
    if (strcmp(nn_get_meta(a, "mean"), "0.5") || strcmp(nn_get_meta(a, "empty"), "") || nn_get_meta(a, "gone"))
        fail_msg("nn_set_meta: replace, empty value or removal did not take");
    /* refused, changing nothing */
    memset(longer, 'v', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    if ((st = nn_set_meta(a, "long", longer)) != NN_ERROR_ARGUMENT) fail_msg("a %d-byte value: %s", NN_META_MAX_VALUE + 1, nn_status_name(st));
    longer[NN_META_MAX_VALUE] = 0;
    ASSERT_OK(nn_set_meta(a, "long", longer));          /* the longest value */
    if ((st = nn_set_meta(a, "two words", "x")) != NN_ERROR_ARGUMENT) fail_msg("a key with a space: %s", nn_status_name(st));
    if ((st = nn_set_meta(a, "", "x")) != NN_ERROR_ARGUMENT) fail_msg("an empty key: %s", nn_status_name(st));
    if ((st = nn_set_meta(a, NULL, "x")) != NN_ERROR_ARGUMENT) fail_msg("a NULL key: %s", nn_status_name(st));
    if ((st = nn_set_meta(NULL, "k", "x")) != NN_ERROR_ARGUMENT) fail_msg("a NULL model: %s", nn_status_name(st));
    for (i = 0; i < NN_META_MAX_ENTRIES; i++) {
        snprintf(key, sizeof key, "k%d", i);
        st = nn_set_meta(b, key, "v");
        if (st != NN_OK) fail_msg("key %d of %d: %s", i, NN_META_MAX_ENTRIES, nn_last_error());
    }
    if ((st = nn_set_meta(b, "one-more", "v")) != NN_ERROR_ARGUMENT) fail_msg("key %d: %s", NN_META_MAX_ENTRIES + 1, nn_status_name(st));
    ASSERT_OK(nn_set_meta(b, "k7", "replaced")); /* replacing still works at the limit */
    /* through a file: nn_model_load restores them, nn_load replaces b's with the file's */
    ASSERT_OK(nn_save(a, path));
    ASSERT_OK(nn_model_load(path, 2, &c));
    ASSERT_OK(nn_load(b, path));
    for (i = 0; i < 2; i++) {
        nn_model *m = i ? b : c;
        if (strcmp(nn_get_meta(m, "mean"), "0.5") || strcmp(nn_get_meta(m, "std"), "0.3081") ||
            strcmp(nn_get_meta(m, "classes"), "zero,one,two \xe2\x9c\x93") || strcmp(nn_get_meta(m, "empty"), "") ||
            strcmp(nn_get_meta(m, "long"), longer) || nn_get_meta(m, "gone"))
            fail_msg("%s: the metadata did not come back as saved", i ? "nn_load" : "nn_model_load");
    }
    if (nn_get_meta(b, "k7") != NULL) fail_msg("nn_load kept a key the file does not have");
    nn_model_free(a);
    nn_model_free(b);
    nn_model_free(c);
    tmpdir_remove(&d, names, COUNT(names));
}

/* ------------------------------------------------------------------ format 2: graph mismatch messages */
/* input 1x8x8 -> conv2d (out, kernel, stride, pad, bias) -> relu -> flatten -> linear 2 */
static nn_model *conv_variant(int out, int kernel, int stride, int pad, int bias)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_relu(m, nn_conv2d(m, nn_input(m, 1, 8, 8), out, kernel, stride, pad, bias));
    return compiled(m, nn_linear(m, nn_flatten(m, h), 2, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2);
}
/* input (size) -> linear 4 -> leaky relu (slope) -> dropout (p) -> linear 2, then `extra` more relus */
static nn_model *mlp_variant(int size, float slope, float p, int extra)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_dropout(m, nn_leaky_relu(m, nn_linear(m, nn_input(m, 1, 1, size), 4, NN_BIAS), slope), p);
    h = nn_linear(m, h, 2, NN_BIAS);
    while (extra-- > 0) h = nn_relu(m, h);
    return compiled(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2);
}
/* input 4 -> linear 4 -> relu -> linear 4 (from layer `from`) -> add(layer 3, layer `other`) -> linear 2 */
static nn_model *add_variant(int from, int other)
{
    nn_model *m = nn_model_new(1);
    nn_node *n[4], *h;
    n[0] = nn_input(m, 1, 1, 4);
    n[1] = nn_linear(m, n[0], 4, NN_BIAS);
    n[2] = nn_relu(m, n[1]);
    n[3] = nn_linear(m, n[from], 4, NN_BIAS);
    h = nn_add_nodes(m, n[3], n[other]);
    return compiled(m, nn_linear(m, h, 2, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2);
}
/* input 1x4 -> linear 3 (no bias) -> linear 2 */
static nn_model *linear_variant(int first_is_conv)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 1, 2, 2);
    nn_node *h = first_is_conv ? nn_conv2d(m, x, 3, 2, 1, 0, NN_NO_BIAS) : nn_linear(m, x, 3, NN_NO_BIAS);
    return compiled(m, nn_linear(m, h, 2, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2);
}

/* nn_load(into, file saved from `from`) must fail with NN_ERROR_SHAPE, the message
   "<path>: <expected>", and leave `into` as it was. Frees both models. */
static int expect_mismatch(nn_model *from, nn_model *into, const char *path, const char *expected)
{
    char want[400];
    int bad;
    ASSERT_OK(nn_save(from, path));
    snprintf(want, sizeof want, "%s: %s", path, expected);
    bad = expect_load_fails(into, path, NN_ERROR_SHAPE, NULL, expected);
    if (!bad && strcmp(nn_last_error(), want) != 0) {
        printf("  FAIL message\n    got      \"%s\"\n    expected \"%s\"\n", nn_last_error(), want);
        bad = 1;
    }
    nn_model_free(from);
    nn_model_free(into);
    return bad;
}

static void test_model_mismatch_messages(void **state)
{
    tmpdir d;
    char path[160];
    static const char *names[] = {"m.nn"};
    int f = 0;
    nn_model *a, *b;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "m.nn", path, sizeof path);
    f += expect_mismatch(small_model(1, NN_ACTIVATION_TANH, 2), small_model(2, NN_ACTIVATION_RELU, 2), path,
                         "layer 3 (relu1): the file has tanh, this model relu");
    f += expect_mismatch(small_model(1, NN_ACTIVATION_TANH, 2), small_model(2, NN_ACTIVATION_TANH, 3), path,
                         "layer 4 (linear2): the file has linear with 2 outputs, this model 3");
    f += expect_mismatch(linear_variant(1), linear_variant(0), path, "layer 1 (linear1): the file has conv2d, this model linear");
    f += expect_mismatch(conv_variant(16, 3, 1, 1, 1), conv_variant(32, 3, 1, 1, 1), path,
                         "layer 1 (conv2d1): the file has conv2d with 16 outputs, this model 32");
    f += expect_mismatch(conv_variant(4, 3, 1, 1, 1), conv_variant(4, 5, 1, 1, 1), path,
                         "layer 1 (conv2d1): the file has conv2d with kernel 3, this model 5");
    f += expect_mismatch(conv_variant(4, 3, 1, 1, 1), conv_variant(4, 3, 2, 1, 1), path,
                         "layer 1 (conv2d1): the file has conv2d with stride 1, this model 2");
    f += expect_mismatch(conv_variant(4, 3, 1, 1, 1), conv_variant(4, 3, 1, 0, 1), path,
                         "layer 1 (conv2d1): the file has conv2d with padding 1, this model 0");
    f += expect_mismatch(conv_variant(4, 3, 1, 1, 1), conv_variant(4, 3, 1, 1, 0), path,
                         "layer 1 (conv2d1): the file has conv2d with a bias, this model without");
    f += expect_mismatch(mlp_variant(5, 0.1f, 0.5f, 0), mlp_variant(5, 0.2f, 0.5f, 0), path,
                         "layer 2 (leaky_relu1): the file has leaky_relu with negative slope 0.1, this model 0.2");
    f += expect_mismatch(mlp_variant(5, 0.1f, 0.25f, 0), mlp_variant(5, 0.1f, 0.5f, 0), path,
                         "layer 3 (dropout1): the file has dropout with probability 0.25, this model 0.5");
    f += expect_mismatch(mlp_variant(6, 0.1f, 0.5f, 0), mlp_variant(5, 0.1f, 0.5f, 0), path,
                         "layer 0 (input1): the file has input of 1x1x6, this model 1x1x5");
    f += expect_mismatch(add_variant(2, 2), add_variant(1, 2), path, "layer 3 (linear2): the file's linear takes layer 2, this model's layer 1");
    f += expect_mismatch(add_variant(2, 2), add_variant(2, 1), path, "layer 4 (add1): the file adds layers 3 and 2, this model 3 and 1");
    f += expect_mismatch(mlp_variant(5, 0.1f, 0.5f, 1), mlp_variant(5, 0.1f, 0.5f, 0), path,
                         "the file's graph has 6 layers, this model 5: the file goes on with layer 5 (relu1, relu)");
    f += expect_mismatch(mlp_variant(5, 0.1f, 0.5f, 0), mlp_variant(5, 0.1f, 0.5f, 2), path,
                         "the file's graph has 5 layers, this model 7: layer 5 (relu1) is not in the file");
    /* names and the loss are not the architecture: these load */
    a = small_model(3, NN_ACTIVATION_TANH, 2);
    b = nn_model_new(4);
    {
        nn_node *h = nn_batchnorm(b, nn_linear(b, nn_input(b, 3, 1, 1), 4, NN_BIAS));
        nn_node *y = nn_linear(b, nn_tanh(b, h), 2, NN_BIAS);
        ASSERT_OK(nn_set_name(y, "renamed"));
        b = compiled(b, y, NN_LOSS_SOFTMAX_MSE, 4);
        ASSERT_OK(nn_save(a, path));
        ASSERT_OK(nn_load(b, path));
        if (memcmp(nn_params(a), nn_params(b), nn_param_count(a) * sizeof(float)) != 0) fail_msg("other names: not loaded");
        if (strcmp(nn_node_name(y), "renamed") != 0) fail_msg("nn_load renamed a node of the model: \"%s\"", nn_node_name(y));
    }
    nn_model_free(a);
    nn_model_free(b);
    tmpdir_remove(&d, names, COUNT(names));
    if (f) fail_msg("%d mismatch(es) not reported as expected (details above)", f);
}

/* ------------------------------------------------------------------ format 1 still loads */
/* tests/fixtures/model_v1.h, written by the last nn_save of format 1 (see gen_model_v1.c for the model) */
static nn_model *v1_architecture(uint64_t seed, int channels)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_conv2d(m, nn_input(m, 1, 4, 4), channels, 3, 1, 1, NN_BIAS);
    h = nn_maxpool2d(m, nn_relu(m, nn_batchnorm(m, h)), 2, 2);
    h = nn_linear(m, nn_dropout(m, nn_flatten(m, h), 0.25f), 3, NN_BIAS);
    return compiled(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4);
}

static void test_model_v1_file(void **state)
{
    tmpdir d;
    char path[160], bad[160];
    static const char *names[] = {"v1.nn", "bad.nn"};
    nn_model *m = v1_architecture(99, 2), *other = v1_architecture(99, 3), *loaded = NULL;
    const size_t np = nn_param_count(m), ns = nn_state_count(m), size = sizeof model_v1_file;
    unsigned char copy[sizeof model_v1_file];
    size_t i, len;
    int failures = 0;
    nn_status st;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "v1.nn", path, sizeof path);
    tmp_path(&d, "bad.nn", bad, sizeof bad);
    write_or_fail(path, model_v1_file, size);
    if (size != 40 + 4 * (np + ns) + 4) fail_msg("the fixture has %lu bytes, the model %lu values", (unsigned long)size, (unsigned long)(np + ns));
    ASSERT_OK(nn_load(m, path));
    for (i = 0; i < np + ns; i++) {
        uint32_t bits = get_le32(model_v1_file + 40 + 4 * i), got;
        memcpy(&got, i < np ? nn_params(m) + i : nn_state(m) + (i - np), 4);
        if (got != bits) fail_msg("value %lu after loading the version-1 file: 0x%08x, the file has 0x%08x", (unsigned long)i, got, bits);
    }
    /* still checked: another architecture, every truncation, every flipped byte */
    failures += expect_load_fails(other, path, NN_ERROR_SHAPE, "different architecture", "version 1, 3 channels instead of 2");
    for (len = 0; len < size && failures < 8; len++) {
        write_or_fail(bad, model_v1_file, len);
        failures += expect_load_fails(m, bad, NN_OK, bad, "version 1, truncated");
    }
    for (i = 0; i < size && failures < 8; i++) {
        memcpy(copy, model_v1_file, size);
        copy[i] ^= 0x10;
        write_or_fail(bad, copy, size);
        failures += expect_load_fails(m, bad, NN_OK, bad, "version 1, a flipped bit");
    }
    /* nn_model_load needs a graph */
    st = nn_model_load(path, 4, &loaded);
    if (st != NN_ERROR_FORMAT || loaded || !strstr(nn_last_error(), "version-1"))
        fail_msg("nn_model_load of a version-1 file: %s (\"%s\")", nn_status_name(st), nn_last_error());
    nn_model_free(m);
    nn_model_free(other);
    tmpdir_remove(&d, names, COUNT(names));
    if (failures) fail_msg("%d damaged version-1 file(s) were not refused cleanly (details above)", failures);
}

/* ------------------------------------------------------------------ format 2: hostile files */
/* nn_model_load(path) must fail with `expected` (any error for NN_OK), a message containing
   needle, and *out NULL. Returns 1 (and prints) otherwise. */
static int expect_model_load_fails(const char *path, nn_status expected, const char *needle, const char *what)
{
    nn_model *out = (nn_model *)&out; /* not NULL: the call must clear it */
    nn_status st = nn_model_load(path, 4, &out);
    if (st == NN_OK) {
        printf("  FAIL %s: nn_model_load accepted it\n", what);
        nn_model_free(out);
        return 1;
    }
    if (out) {
        printf("  FAIL %s: *out is not NULL after an error\n", what);
        return 1;
    }
    if ((expected != NN_OK && st != expected) || !*nn_last_error() || (needle && !strstr(nn_last_error(), needle))) {
        printf("  FAIL %s: %s (\"%s\"), expected %s mentioning \"%s\"\n", what, nn_status_name(st), nn_last_error(),
               nn_status_name(expected), needle ? needle : "");
        return 1;
    }
    return 0;
}

/* The reference file of the hostile cases, from tests/model_file.h: input 1x1x4 ("in"),
   linear 3 ("fc"), relu ("act"), linear 2 ("out"), cross-entropy, 23 parameters, metadata
   mean=0.5; the code model of the same graph is hostile_model(). */
static mf_node hostile_nodes[4];
static void hostile_reset(void)
{
    const mf_node nodes[4] = {MF_INPUT(1, 1, 4, "in"), MF_LINEAR(0, 3, 1, "fc"), MF_ACTIVATION(1, 3, 1, 1, 1, 0.0f, "act"),
                              MF_LINEAR(2, 2, 1, "out")};
    memcpy(hostile_nodes, nodes, sizeof nodes);
}
static nn_model *hostile_model(void)
{
    nn_model *m = nn_model_new(5);
    nn_node *h = nn_relu(m, nn_linear(m, nn_input(m, 1, 1, 4), 3, NN_BIAS));
    return compiled(m, nn_linear(m, h, 2, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4);
}
/* The file from hostile_nodes (count nodes), with the sections of `order` (a string of the
   letters G, M, P, S; X is an unknown section), `params` parameters (value i/32 each, except
   bad_param when >= 0, which is NaN) and the section count `announced` (-1: the true count). */
static void hostile_file(mf_buf *file, int count, uint32_t loss, const char *order, int params, int bad_param, int announced)
{
    static mf_buf graph, meta, parm, stat, extra;
    static const char *const keys[] = {"mean"}, *const values[] = {"0.5"};
    mf_section sections[8];
    int i, n = 0;
    graph.size = meta.size = parm.size = stat.size = extra.size = 0;
    mf_graph(&graph, loss, hostile_nodes, count);
    mf_meta(&meta, keys, values, 1);
    for (i = 0; i < params; i++) mf_f32(&parm, i == bad_param ? (float)NAN : (float)i / 32.0f);
    mf_u32(&extra, 7);
    for (; *order; order++) {
        sections[n].tag = *order == 'G' ? "GRPH" : *order == 'M' ? "META" : *order == 'P' ? "PARM" : *order == 'S' ? "STAT" : "XTRA";
        sections[n].payload = *order == 'G' ? &graph : *order == 'M' ? &meta : *order == 'P' ? &parm : *order == 'S' ? &stat : &extra;
        n++;
    }
    mf_file(file, sections, n);
    if (announced >= 0) {
        mf_le32(file->data + 12, (uint32_t)announced);
        mf_fix_crc(file->data, file->size);
    }
}

/* 1 (and a message) when a failed nn_load changed the metadata the reference file gave */
static int meta_changed(const nn_model *m, const char *what)
{
    const char *v = nn_get_meta(m, "mean");
    if (v && strcmp(v, "0.5") == 0 && !nn_get_meta(m, "other")) return 0;
    printf("  FAIL %s: the failed nn_load changed the metadata\n", what);
    return 1;
}

static void test_model_load_hostile(void **state)
{
    tmpdir d;
    char path[160], again_path[160];
    static const char *names[] = {"h.nn", "again.nn"};
    static mf_buf file;
    nn_model *code = hostile_model(), *loaded = NULL;
    unsigned char *again;
    size_t again_size;
    int f = 0;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "h.nn", path, sizeof path);
    tmp_path(&d, "again.nn", again_path, sizeof again_path);
    /* the reference file loads, and the library writes it back byte for byte */
    hostile_reset();
    hostile_file(&file, 4, 1, "GMPS", 23, -1, -1);
    write_or_fail(path, file.data, file.size);
    ASSERT_OK(nn_model_load(path, 4, &loaded));
    ASSERT_OK(nn_save(loaded, again_path));
    again = read_file(again_path, &again_size);
    if (!again || again_size != file.size || memcmp(again, file.data, file.size) != 0)
        fail_msg("tests/model_file.h and nn_save disagree on the bytes of the same model (%lu and %lu bytes)",
                 (unsigned long)file.size, (unsigned long)again_size);
    free(again);
    nn_model_free(loaded);
    ASSERT_OK(nn_load(code, path));
#define HOSTILE(status, needle, what, change, count, loss, order, params, bad_param, announced)        \
    do {                                                                                             \
        hostile_reset();                                                                             \
        change;                                                                                      \
        hostile_file(&file, count, loss, order, params, bad_param, announced);                       \
        write_or_fail(path, file.data, file.size);                                                   \
        f += expect_model_load_fails(path, status, needle, what);                                    \
        f += expect_load_fails(code, path, NN_OK, path, what);                                       \
        f += meta_changed(code, what);                                                               \
    } while (0)
#define NODE_CASE(status, needle, what, change) HOSTILE(status, needle, what, change, 4, 1, "GMPS", 23, -1, -1)
    NODE_CASE(NN_ERROR_FORMAT, "unknown op 99", "op code 99", hostile_nodes[1].op = 99);
    NODE_CASE(NN_ERROR_FORMAT, "unknown activation 6", "activation code 6", hostile_nodes[2].activation = 6);
    NODE_CASE(NN_ERROR_FORMAT, "input 0 is 2", "an input from a later layer", hostile_nodes[1].in0 = 2);
    NODE_CASE(NN_ERROR_FORMAT, "input 0 is 1", "an input from the layer itself", hostile_nodes[1].in0 = 1);
    NODE_CASE(NN_ERROR_FORMAT, "input 0 is -5", "input index -5", hostile_nodes[1].in0 = -5);
    NODE_CASE(NN_ERROR_FORMAT, "input 1 is 0", "a second input for relu", hostile_nodes[2].in1 = 0);
    NODE_CASE(NN_ERROR_FORMAT, "first layer must be the input", "a linear layer first", hostile_nodes[0] = hostile_nodes[1]);
    NODE_CASE(NN_ERROR_FORMAT, "second input", "a second input layer", (hostile_nodes[2] = hostile_nodes[0], hostile_nodes[2].name = "in2"));
    NODE_CASE(NN_ERROR_FORMAT, "name", "an empty name", hostile_nodes[1].name = "");
    NODE_CASE(NN_ERROR_FORMAT, "name", "a name with a space", hostile_nodes[1].name = "f c");
    NODE_CASE(NN_ERROR_FORMAT, "name", "a 64-character name",
              hostile_nodes[1].name = "a123456789012345678901234567890123456789012345678901234567890123");
    NODE_CASE(NN_ERROR_FORMAT, "both called \"fc\"", "two layers called fc", hostile_nodes[3].name = "fc");
    NODE_CASE(NN_ERROR_FORMAT, "does not lead to the output", "a layer nothing uses", hostile_nodes[3].in0 = 1);
    NODE_CASE(NN_ERROR_FORMAT, "kernel 3", "a kernel for a linear layer", hostile_nodes[1].kernel = 3);
    NODE_CASE(NN_ERROR_FORMAT, "bias flag 2", "bias flag 2", hostile_nodes[1].bias = 2);
    NODE_CASE(NN_ERROR_FORMAT, "output 5x1x1", "a wrong output shape", hostile_nodes[1].c = 5);
    NODE_CASE(NN_ERROR_FORMAT, "out_features must be positive", "-3 outputs", (hostile_nodes[1].units = -3, hostile_nodes[1].c = -3));
    NODE_CASE(NN_ERROR_FORMAT, "sizes must be positive", "an input of 0 values", hostile_nodes[0].w = 0);
    NODE_CASE(NN_ERROR_FORMAT, "not finite", "a NaN activation parameter", hostile_nodes[2].parameter = (float)NAN);
    HOSTILE(NN_ERROR_FORMAT, "1 to 4096", "no nodes", (void)0, 0, 1, "GMPS", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "unknown loss 9", "loss code 9", (void)0, 4, 9, "GMPS", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "PARM section holds 88 bytes", "one parameter missing", (void)0, 4, 1, "GMPS", 22, -1, -1);
    HOSTILE(NN_ERROR_NONFINITE, "parameter 7 is not finite", "a NaN parameter", (void)0, 4, 1, "GMPS", 23, 7, -1);
    HOSTILE(NN_ERROR_FORMAT, "unknown section \"XTRA\"", "an unknown section", (void)0, 4, 1, "GMPSX", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "GRPH appears twice", "the graph twice", (void)0, 4, 1, "GGMPS", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "is out of order", "parameters before metadata", (void)0, 4, 1, "GPMS", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "no STAT section", "no statistics section", (void)0, 4, 1, "GMP", 23, -1, -1);
    HOSTILE(NN_ERROR_FORMAT, "announces 5 sections", "a section count of 5", (void)0, 4, 1, "GMPS", 23, -1, 5);
    /* a node count of 2^32-1, a section length of 2^63: refused before anything is allocated */
    hostile_reset();
    hostile_file(&file, 4, 1, "GMPS", 23, -1, -1);
    mf_le32(file.data + 28, 0xFFFFFFFFu);
    mf_fix_crc(file.data, file.size);
    write_or_fail(path, file.data, file.size);
    f += expect_model_load_fails(path, NN_ERROR_FORMAT, "4294967295 nodes", "node count 2^32-1");
    hostile_file(&file, 4, 1, "GMPS", 23, -1, -1);
    mf_le32(file.data + 20, 0);
    mf_le32(file.data + 24, 0x80000000u);
    mf_fix_crc(file.data, file.size);
    write_or_fail(path, file.data, file.size);
    f += expect_model_load_fails(path, NN_ERROR_FORMAT, "announces 9223372036854775808", "graph length 2^63");
    f += expect_load_fails(code, path, NN_ERROR_FORMAT, "announces", "graph length 2^63");
    /* a bad CRC, a newer version */
    hostile_file(&file, 4, 1, "GMPS", 23, -1, -1);
    file.data[file.size - 1] ^= 1;
    write_or_fail(path, file.data, file.size);
    f += expect_model_load_fails(path, NN_ERROR_FORMAT, "checksum", "a bad CRC");
    file.data[file.size - 1] ^= 1;
    mf_le32(file.data + 8, 3);
    mf_fix_crc(file.data, file.size);
    write_or_fail(path, file.data, file.size);
    f += expect_model_load_fails(path, NN_ERROR_FORMAT, "version 3", "version 3");
    /* an input of 64x1024x1024 values: more buffers than NN_LOAD_MAX_BYTES for batches of 4 */
    {
        static mf_buf graph, no_pairs, none;
        const mf_node big[2] = {MF_INPUT(64, 1024, 1024, "in"), MF_ACTIVATION(0, 64, 1024, 1024, 1, 0.0f, "act")};
        mf_section sections[4] = {{"GRPH", &graph}, {"META", &no_pairs}, {"PARM", &none}, {"STAT", &none}};
        graph.size = no_pairs.size = none.size = 0;
        mf_graph(&graph, 0, big, 2);
        mf_u32(&no_pairs, 0);
        mf_file(&file, sections, 4);
        write_or_fail(path, file.data, file.size);
        f += expect_model_load_fails(path, NN_ERROR_MEMORY, "NN_LOAD_MAX_BYTES", "a 64x1024x1024 input");
    }
    /* metadata: a key twice, a key with a space, a value with a NUL, 300 pairs */
    {
        static mf_buf graph, meta, parm, stat;
        static const char *const k2[] = {"mean", "mean"}, *const v2[] = {"1", "2"};
        static const char *const k1[] = {"my key"}, *const v1[] = {"1"};
        mf_section sections[4] = {{"GRPH", &graph}, {"META", &meta}, {"PARM", &parm}, {"STAT", &stat}};
        int k;
        hostile_reset();
        graph.size = parm.size = stat.size = 0;
        mf_graph(&graph, 1, hostile_nodes, 4);
        for (k = 0; k < 23; k++) mf_f32(&parm, 0.5f);
        for (k = 0; k < 4; k++) {
            static const char *const needles[] = {"appears twice", "metadata key 0", "holds a NUL", "300 pairs"};
            meta.size = 0;
            if (k == 0) mf_meta(&meta, k2, v2, 2);
            if (k == 1) mf_meta(&meta, k1, v1, 1);
            if (k == 2) {
                mf_u32(&meta, 1);
                mf_string(&meta, "mean");
                mf_u32(&meta, 3);
                mf_bytes(&meta, "a\0b", 3);
            }
            if (k == 3) mf_u32(&meta, 300);
            mf_file(&file, sections, 4);
            write_or_fail(path, file.data, file.size);
            f += expect_model_load_fails(path, NN_ERROR_FORMAT, needles[k], needles[k]);
            f += expect_load_fails(code, path, NN_ERROR_FORMAT, needles[k], needles[k]);
            f += meta_changed(code, needles[k]);
        }
    }
#undef NODE_CASE
#undef HOSTILE
    nn_model_free(code);
    tmpdir_remove(&d, names, COUNT(names));
    if (f) fail_msg("%d hostile file(s) were not refused cleanly (details above)", f);
}

/* Every truncation and every flipped byte of a format-2 file through nn_model_load; then every
   byte inverted with the CRC fixed: either refused, or accepted as a model that saves exactly
   those bytes again (the reader accepts only what the writer would write). */
static void test_model_load_damaged(void **state)
{
    tmpdir d;
    char good[160], bad[160], again_path[160];
    static const char *names[] = {"good.nn", "bad.nn", "again.nn"};
    nn_model *a = small_model(41, NN_ACTIVATION_TANH, 2);
    unsigned char *file, *copy;
    size_t size, i;
    int failures = 0, accepted = 0, m;
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "good.nn", good, sizeof good);
    tmp_path(&d, "bad.nn", bad, sizeof bad);
    tmp_path(&d, "again.nn", again_path, sizeof again_path);
    train_a_little(a, 2);
    ASSERT_OK(nn_set_meta(a, "mean", "0.25"));
    ASSERT_OK(nn_save(a, good));
    file = read_file(good, &size);
    if (!file) fail_msg("cannot read back %s", good);
    copy = (unsigned char *)xmalloc(size + 1);
    for (i = 0; i < size && failures <= 8; i++) {
        write_or_fail(bad, file, i);
        failures += expect_model_load_fails(bad, NN_OK, bad, "truncated");
    }
    for (i = 0; i < size && failures <= 8; i++)
        for (m = 0; m < (int)COUNT(masks); m++) {
            memcpy(copy, file, size);
            copy[i] ^= masks[m];
            write_or_fail(bad, copy, size);
            failures += expect_model_load_fails(bad, NN_OK, bad, "a flipped byte");
        }
    memcpy(copy, file, size);
    copy[size] = 0;
    write_or_fail(bad, copy, size + 1);
    failures += expect_model_load_fails(bad, NN_OK, bad, "one byte appended");
    for (i = 0; i + 4 < size && failures <= 8; i++) {
        nn_model *loaded = NULL;
        nn_status st;
        memcpy(copy, file, size);
        copy[i] ^= 0xFF;
        fix_crc(copy, size);
        write_or_fail(bad, copy, size);
        st = nn_model_load(bad, 4, &loaded);
        if (st == NN_OK) {
            unsigned char *again;
            size_t again_size;
            accepted++;
            ASSERT_OK(nn_save(loaded, again_path));
            again = read_file(again_path, &again_size);
            if (!again || again_size != size || memcmp(again, copy, size) != 0) {
                printf("  FAIL byte %lu inverted: accepted, but the model saves other bytes\n", (unsigned long)i);
                failures++;
            }
            free(again);
            nn_model_free(loaded);
        } else if (loaded || !*nn_last_error()) {
            printf("  FAIL byte %lu inverted: %s without a message or with a model\n", (unsigned long)i, nn_status_name(st));
            failures++;
        }
    }
    if (accepted == 0) fail_msg("no inverted byte was accepted: the parameters' bytes should be");
    free(file);
    free(copy);
    nn_model_free(a);
    tmpdir_remove(&d, names, COUNT(names));
    if (failures) fail_msg("%d damaged file(s) were not handled cleanly (details above)", failures);
}

/* ------------------------------------------------------------------ prediction */
/* eval forward of x[first .. first+count) through nn_forward, copied out */
static void forward_rows(nn_model *m, const float *x, int first, int count, float *y)
{
    const int in = nn_input_size(m), out = nn_output_size(m);
    ASSERT_OK(nn_forward(m, x + (size_t)first * in, count, NN_EVAL));
    memcpy(y + (size_t)first * out, nn_output(m), (size_t)count * out * sizeof(float));
}

static void test_predict(void **state)
{
    enum { N = 11, MAXB = 4 };
    static const nn_loss losses[] = {NN_LOSS_SOFTMAX_CROSS_ENTROPY, NN_LOSS_NLL, NN_LOSS_MSE, NN_LOSS_NONE, NN_LOSS_SOFTMAX_MSE};
    float x[N * 6], raw[N * 3], out[N * 3 + 1];
    int classes[N + 1];
    size_t li;
    (void)state;
    nn_test_fill(x, COUNT(x), -2.0f, 2.0f);
    for (li = 0; li < COUNT(losses); li++) {
        const nn_loss loss = losses[li];
        nn_model *m = nn_model_new(50 + li);
        nn_node *y = nn_linear(m, nn_tanh(m, nn_linear(m, nn_input(m, 1, 1, 6), 5, NN_BIAS)), 3, NN_BIAS);
        int r, c, first;
        if (loss == NN_LOSS_NLL) y = nn_log_softmax(m, y);
        m = compiled(m, y, loss, MAXB);
        nn_set_sample_split(m, 0);
        /* 11 samples, 4 at most per pass: 3 passes */
        for (first = 0; first < N; first += MAXB) forward_rows(m, x, first, N - first < MAXB ? N - first : MAXB, raw);
        out[N * 3] = 12345.0f;
        ASSERT_OK(nn_predict(m, x, N, out));
        if (out[N * 3] != 12345.0f) fail_msg("nn_predict wrote past count * outputs");
        /* bit for bit the library's own softmax or exp of the outputs */
        {
            float ref[N * 3];
            if (loss == NN_LOSS_SOFTMAX_CROSS_ENTROPY || loss == NN_LOSS_SOFTMAX_MSE) nn_softmax_forward(N, 3, raw, ref);
            else if (loss == NN_LOSS_NLL) nn_vec_exp(N * 3, raw, ref);
            else memcpy(ref, raw, sizeof ref);
            if (memcmp(ref, out, sizeof ref) != 0) fail_msg("loss %d: nn_predict differs from the kernels applied to nn_forward", (int)loss);
        }
        for (r = 0; r < N; r++) {
            double mx = raw[r * 3], sum = 0.0;
            for (c = 1; c < 3; c++) mx = fmax(mx, raw[r * 3 + c]);
            for (c = 0; c < 3; c++) sum += exp((double)raw[r * 3 + c] - mx);
            for (c = 0; c < 3; c++) {
                double want = raw[r * 3 + c];
                if (loss == NN_LOSS_SOFTMAX_CROSS_ENTROPY || loss == NN_LOSS_SOFTMAX_MSE) want = exp(raw[r * 3 + c] - mx) / sum;
                if (loss == NN_LOSS_NLL) want = exp((double)raw[r * 3 + c]);
                if (loss == NN_LOSS_MSE || loss == NN_LOSS_NONE ? out[r * 3 + c] != raw[r * 3 + c]
                                                                : fabs(out[r * 3 + c] - want) > 3e-6)
                    fail_msg("loss %d, sample %d, output %d: nn_predict %.9g, expected %.9g (logit %.9g)", (int)loss, r, c,
                             (double)out[r * 3 + c], want, (double)raw[r * 3 + c]);
            }
        }
        classes[N] = -7;
        ASSERT_OK(nn_predict_classes(m, x, N, classes));
        if (classes[N] != -7) fail_msg("nn_predict_classes wrote past count");
        for (r = 0; r < N; r++) {
            int best = 0;
            for (c = 1; c < 3; c++)
                if (raw[r * 3 + c] > raw[r * 3 + best]) best = c;
            if (classes[r] != best) fail_msg("loss %d, sample %d: class %d, the largest output is %d", (int)loss, r, classes[r], best);
        }
        /* arguments */
        if (nn_predict(m, NULL, N, out) != NN_ERROR_ARGUMENT || nn_predict(m, x, N, NULL) != NN_ERROR_ARGUMENT ||
            nn_predict(m, x, -1, out) != NN_ERROR_ARGUMENT || nn_predict_classes(m, x, N, NULL) != NN_ERROR_ARGUMENT ||
            nn_predict(NULL, x, N, out) != NN_ERROR_STATE)
            fail_msg("nn_predict accepted a NULL pointer, a negative count or no model");
        out[0] = 777.0f;
        ASSERT_OK(nn_predict(m, x, 0, out));
        if (out[0] != 777.0f) fail_msg("nn_predict of 0 samples wrote something");
        nn_model_free(m);
    }
    {
        nn_model *raw_model = nn_model_new(1);
        (void)nn_linear(raw_model, nn_input(raw_model, 1, 1, 6), 3, NN_BIAS);
        if (nn_predict(raw_model, x, 1, out) != NN_ERROR_STATE) fail_msg("nn_predict on an uncompiled model was not NN_ERROR_STATE");
        nn_model_free(raw_model);
    }
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
    T(test_model_load_rebuilds),
    T(test_node_names),
    T(test_model_metadata),
    T(test_model_mismatch_messages),
    T(test_model_v1_file),
    T(test_model_load_hostile),
    T(test_model_load_damaged),
    T(test_predict),
    T(test_idx_good),
    T(test_idx_broken),
    T(test_idx_scaled),
    T(test_mnist_files),
};

NN_TEST_MAIN("files", tests)
