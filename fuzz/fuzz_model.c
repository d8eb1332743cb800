/* fuzz/fuzz_model.c - libFuzzer target for nn_load (model files).

   One small model (fuzz_model.h) is compiled once. Each input is written to a file and loaded
   into it. The first input byte is a flag: if it is odd, the CRC-32 in the last 4 bytes of the
   file is recomputed before writing, so the fuzzer also gets past the checksum to the header,
   count and architecture checks and the copy itself; if even, the rest is written as is.
   Checks (abort() on violation):
     - on any error the parameters and the batch-norm state are bit-identical to before
       (memcmp against a snapshot), the status is NN_ERROR_FORMAT, NN_ERROR_SHAPE or (a
       well-formed file holding a NaN or an infinity) NN_ERROR_NONFINITE, and there is a
       message;
     - on NN_OK the parameters and state are exactly the floats stored in the file, all of
       them finite (then the snapshot is restored for the next input).
   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_model.c -lm */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "fuzz_common.h"
#include "fuzz_model.h"

static nn_model *model;
static float *snap_params, *snap_state;
static size_t n_params, n_state;

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 20];
    const char *path = fz_path("model.nn");
    size_t n;
    nn_status st;
    if (size < 1 || size - 1 > sizeof buf) return 0;
    n = size - 1;
    memcpy(buf, data + 1, n);
    if ((data[0] & 1) && n >= 4) {
        uint32_t c = crc32_ref(buf, n - 4);
        buf[n - 4] = (uint8_t)c; buf[n - 3] = (uint8_t)(c >> 8); buf[n - 2] = (uint8_t)(c >> 16); buf[n - 1] = (uint8_t)(c >> 24);
    }
    fz_write(path, buf, n);
    st = nn_load(model, path);
    if (st != NN_OK) {
        FZ_CHECK(st == NN_ERROR_FORMAT || st == NN_ERROR_SHAPE || st == NN_ERROR_NONFINITE);
        FZ_CHECK(nn_last_error()[0] != 0);
        FZ_CHECK(memcmp(nn_params(model), snap_params, n_params * sizeof(float)) == 0);
        FZ_CHECK(memcmp(nn_state(model), snap_state, n_state * sizeof(float)) == 0);
        return 0;
    }
    /* accepted: exactly the file's floats (little-endian) after the 40-byte header */
    FZ_CHECK(n == 40 + 4 * (n_params + n_state) + 4);
    FZ_CHECK(memcmp(buf, "NNHMODEL", 8) == 0);
    {
        size_t i;
        for (i = 0; i < n_params + n_state; i++) {
            const uint8_t *p = buf + 40 + 4 * i;
            uint32_t bits = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24), got;
            memcpy(&got, i < n_params ? nn_params(model) + i : nn_state(model) + (i - n_params), 4);
            FZ_CHECK(got == bits);
            FZ_CHECK((bits & 0x7F800000u) != 0x7F800000u); /* NaN and infinity are refused */
        }
    }
    memcpy(nn_params(model), snap_params, n_params * sizeof(float));
    memcpy(nn_state(model), snap_state, n_state * sizeof(float));
    return 0;
}
