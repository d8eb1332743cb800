/* fuzz/fuzz_model.c - libFuzzer target for the model-file readers: nn_load (into a model built in
   code, format 1 or 2) and nn_model_load (format 2, rebuilding the model from the file alone).

   One small model (fuzz_model.h) is compiled once. Each input is written to a file, loaded into
   it with nn_load, and rebuilt from it with nn_model_load. The first input byte is a flag: if it
   is odd, the CRC-32 in the last 4 bytes of the file is recomputed before writing, so the fuzzer
   also gets past the checksum to the sections, the graph, the settings, the metadata and the
   values; if even, the rest is written as is.
   Checks (abort() on violation):
     nn_load
     - on any error the parameters, the batch-norm state and the metadata are as before (memcmp
       against a snapshot; the model has no metadata), the status is NN_ERROR_FORMAT,
       NN_ERROR_SHAPE or (a well-formed file holding a NaN or an infinity) NN_ERROR_NONFINITE,
       and there is a message;
     - on NN_OK the parameters and state are exactly the floats stored in the file (after the
       40-byte header in format 1; the PARM and STAT sections in format 2), all finite; then the
       model is rebuilt for the next input.
     nn_model_load
     - on any error *out is NULL, the status is NN_ERROR_FORMAT, NN_ERROR_NONFINITE or
       NN_ERROR_MEMORY (a graph whose buffers exceed NN_LOAD_MAX_BYTES, 16 MB here), and there is
       a message; nothing leaks (LeakSanitizer);
     - on NN_OK the model saves exactly the input's bytes again (the reader accepts only what the
       writer writes), and for inputs under 2 KB an eval forward pass on zeros succeeds.
   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_model.c -lm */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define NN_IMPLEMENTATION
#define NN_LOAD_MAX_BYTES 16777216.0
#include "nn.h"
#include "fuzz_common.h"
#include "fuzz_model.h"

static nn_model *model;
static volatile float sink;
static float *snap_params, *snap_state;
static size_t n_params, n_state;

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

static uint32_t crc32_ref(const uint8_t *p, size_t n)
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

/* The payload offset of section `tag` in a format-2 file (walking the section headers), or 0. */
static size_t section_at(const uint8_t *buf, size_t n, const char *tag, size_t *length)
{
    size_t at = 16;
    while (n >= 4 && at + 12 <= n - 4) {
        uint64_t len = le32(buf + at + 4) | ((uint64_t)le32(buf + at + 8) << 32);
        if (len > n) return 0;
        if (!memcmp(buf + at, tag, 4)) {
            *length = (size_t)len;
            return at + 12;
        }
        at += 12 + (size_t)len;
    }
    return 0;
}

/* values[0..count) of the model equal the little-endian floats at p, all finite */
static void check_values(const float *values, const uint8_t *p, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++) {
        uint32_t bits = le32(p + 4 * i), got;
        memcpy(&got, values + i, 4);
        FZ_CHECK(got == bits);
        FZ_CHECK((bits & 0x7F800000u) != 0x7F800000u); /* NaN and infinity are refused */
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    model = fz_build_model(0);
    n_params = nn_param_count(model);
    n_state = nn_state_count(model);
    snap_params = (float *)malloc(n_params * sizeof(float));
    snap_state = (float *)malloc(n_state * sizeof(float));
    memcpy(snap_params, nn_params(model), n_params * sizeof(float));
    memcpy(snap_state, nn_state(model), n_state * sizeof(float));
    return 0;
}

static void fuzz_load(const uint8_t *buf, size_t n, const char *path)
{
    nn_status st = nn_load(model, path);
    if (st != NN_OK) {
        FZ_CHECK(st == NN_ERROR_FORMAT || st == NN_ERROR_SHAPE || st == NN_ERROR_NONFINITE);
        FZ_CHECK(nn_last_error()[0] != 0);
        FZ_CHECK(memcmp(nn_params(model), snap_params, n_params * sizeof(float)) == 0);
        FZ_CHECK(memcmp(nn_state(model), snap_state, n_state * sizeof(float)) == 0);
        FZ_CHECK(nn_get_meta(model, "mean") == NULL);
        return;
    }
    FZ_CHECK(n >= 12 && memcmp(buf, "NNHMODEL", 8) == 0);
    if (le32(buf + 8) == 1) {
        /* format 1: the floats after the 40-byte header */
        FZ_CHECK(n == 40 + 4 * (n_params + n_state) + 4);
        check_values(nn_params(model), buf + 40, n_params);
        check_values(nn_state(model), buf + 40 + 4 * n_params, n_state);
    } else {
        size_t lp = 0, ls = 0, at_p = section_at(buf, n, "PARM", &lp), at_s = section_at(buf, n, "STAT", &ls);
        FZ_CHECK(le32(buf + 8) == 2 && at_p && at_s && lp == 4 * n_params && ls == 4 * n_state);
        check_values(nn_params(model), buf + at_p, n_params);
        check_values(nn_state(model), buf + at_s, n_state);
    }
    nn_model_free(model); /* a fresh model (no metadata) for the next input */
    model = fz_build_model(0);
}

static void fuzz_model_load(const uint8_t *buf, size_t n, const char *path)
{
    nn_model *m = (nn_model *)&m;
    nn_status st = nn_model_load(path, 2, &m);
    if (st != NN_OK) {
        FZ_CHECK(m == NULL);
        FZ_CHECK(st == NN_ERROR_FORMAT || st == NN_ERROR_NONFINITE || st == NN_ERROR_MEMORY);
        FZ_CHECK(nn_last_error()[0] != 0);
        return;
    }
    FZ_CHECK(m != NULL);
    {
        /* canonical: saving the rebuilt model gives back the very bytes it was read from */
        static uint8_t again[1 << 20];
        const char *copy = fz_path("again.nn");
        FILE *f;
        size_t got;
        FZ_CHECK(nn_save(m, copy) == NN_OK);
        f = fopen(copy, "rb");
        FZ_CHECK(f != NULL);
        got = fread(again, 1, sizeof again, f);
        fclose(f);
        FZ_CHECK(got == n && memcmp(again, buf, n) == 0);
    }
    if (n < 2048) {
        const int in = nn_input_size(m), out = nn_output_size(m);
        float *x = (float *)calloc((size_t)in, sizeof(float));
        int i;
        FZ_CHECK(x != NULL);
        FZ_CHECK(nn_forward(m, x, 1, NN_EVAL) == NN_OK);
        for (i = 0; i < out; i++) sink += nn_output(m)[i]; /* read every output (not necessarily finite:
                                                                a negative running variance is allowed) */
        free(x);
    }
    nn_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 20];
    const char *path = fz_path("model.nn");
    size_t n;
    if (size < 1 || size - 1 > sizeof buf) return 0;
    n = size - 1;
    memcpy(buf, data + 1, n);
    if ((data[0] & 1) && n >= 4) {
        uint32_t c = crc32_ref(buf, n - 4);
        buf[n - 4] = (uint8_t)c; buf[n - 3] = (uint8_t)(c >> 8); buf[n - 2] = (uint8_t)(c >> 16); buf[n - 1] = (uint8_t)(c >> 24);
    }
    fz_write(path, buf, n);
    fuzz_load(buf, n, path);
    fuzz_model_load(buf, n, path);
    return 0;
}
