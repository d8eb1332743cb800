/* fuzz/fuzz_checkpoint.c - libFuzzer target for the checkpoint reader, nn_checkpoint_load
   (docs/format.md), into the small model of fuzz_model.h, an optimizer, a schedule and a run state.

   The first input byte is a flag: bit 0 set makes the target recompute the CRC-32 in the last 4
   bytes (so the fuzzer gets past the checksum to the sections and their values); bits 1-2 pick
   the optimizer kind it is loaded into (SGD, Adam, AdamW, RMSProp); bit 3 set passes a schedule,
   of the kind bits 4-6 pick (modulo the kinds), else none. The rest is written to a file and
   loaded with nn_checkpoint_load.
   Checks (abort() on violation):
     - on any error the status is NN_ERROR_FORMAT, NN_ERROR_SHAPE, NN_ERROR_ARGUMENT (another
       optimizer or schedule kind) or NN_ERROR_NONFINITE, there is a message, and the model's
       parameters, batch-norm state and metadata, the optimizer (every field, and it has no state
       yet), the schedule and the run state are exactly as before (memcmp against snapshots);
     - on NN_OK the parameters and statistics are the PARM and STAT floats of the file, the
       optimizer is bound with the file's kind and as many floats of state as the model needs; the
       objects save (nn_checkpoint_save) to a file whose sections after GRPH are the input's byte
       for byte (GRPH holds the node names and the loss, which a load does not compare, as
       nn_load), and that file loads again; then the objects are made afresh for the next input.
   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_checkpoint.c -lm */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "fuzz_common.h"
#include "fuzz_model.h"

static nn_model *model;
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

/* The payload of section `tag` (walking the section headers after the 16-byte header), or NULL. */
static const uint8_t *section(const uint8_t *buf, size_t n, const char *tag, size_t *length)
{
    size_t at = 16;
    while (n >= 4 && at + 12 <= n - 4) {
        uint64_t len = le32(buf + at + 4) | ((uint64_t)le32(buf + at + 8) << 32);
        if (len > n - 4 - (at + 12)) return NULL;
        if (!memcmp(buf + at, tag, 4)) {
            *length = (size_t)len;
            return buf + at + 12;
        }
        at += 12 + (size_t)len;
    }
    return NULL;
}

/* values[0..count) equal the little-endian floats at p */
static void check_values(const float *values, const uint8_t *p, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++) {
        uint32_t got;
        memcpy(&got, values + i, 4);
        FZ_CHECK(got == le32(p + 4 * i));
    }
}

static nn_schedule make_schedule(int kind)
{
    static const int milestones[2] = {2, 5};
    switch (kind % NN_SCHEDULE_COUNT) {
    case 0: return nn_step_lr(2, 0.5);
    case 1: return nn_multi_step_lr(milestones, 2, 0.1);
    case 2: return nn_exponential_lr(0.9);
    case 3: return nn_cosine_annealing_lr(10, 0.0);
    case 4: return nn_one_cycle_lr(0.1, 20);
    default: return nn_reduce_lr_on_plateau(0.5, 1);
    }
}

static nn_optimizer make_optimizer(int kind)
{
    switch (kind) {
    case 0: return nn_sgd(0.1f, 0.9f, 0.0f);
    case 1: return nn_adam(0.01f, 0.0f);
    case 2: return nn_adamw(0.01f, 0.01f);
    default: return nn_rmsprop(0.01f, 0.0f);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 20], again[1 << 20];
    const char *path = fz_path("run.ckpt"), *copy = fz_path("again.ckpt");
    nn_optimizer opt, opt_before;
    nn_schedule schedule, schedule_before;
    nn_fit_state run, run_before;
    nn_schedule *s = NULL;
    nn_status st;
    size_t n;
    if (size < 1 || size - 1 > sizeof buf) return 0;
    n = size - 1;
    memcpy(buf, data + 1, n);
    if ((data[0] & 1) && n >= 4) {
        uint32_t c = crc32_ref(buf, n - 4);
        buf[n - 4] = (uint8_t)c; buf[n - 3] = (uint8_t)(c >> 8); buf[n - 2] = (uint8_t)(c >> 16); buf[n - 1] = (uint8_t)(c >> 24);
    }
    fz_write(path, buf, n);
    opt = make_optimizer((data[0] >> 1) & 3);
    memset(&schedule, 0, sizeof schedule);
    if (data[0] & 8) {
        schedule = make_schedule(data[0] >> 4);
        s = &schedule;
    }
    memset(&run, 0x5A, sizeof run);
    opt_before = opt;
    memcpy(&schedule_before, &schedule, sizeof schedule);
    memcpy(&run_before, &run, sizeof run);
    st = nn_checkpoint_load(model, &opt, s, &run, path);
    if (st != NN_OK) {
        FZ_CHECK(st == NN_ERROR_FORMAT || st == NN_ERROR_SHAPE || st == NN_ERROR_ARGUMENT || st == NN_ERROR_NONFINITE);
        FZ_CHECK(nn_last_error()[0] != 0);
        FZ_CHECK(memcmp(nn_params(model), snap_params, n_params * sizeof(float)) == 0);
        FZ_CHECK(memcmp(nn_state(model), snap_state, n_state * sizeof(float)) == 0);
        FZ_CHECK(nn_get_meta(model, "mean") == NULL);
        FZ_CHECK(memcmp(&opt, &opt_before, sizeof opt) == 0 && opt.state == NULL);
        FZ_CHECK(memcmp(&schedule, &schedule_before, sizeof schedule) == 0);
        FZ_CHECK(memcmp(&run, &run_before, sizeof run) == 0);
        return 0;
    }
    {
        const uint8_t *p;
        size_t len = 0, got, k;
        static const char *const tags[] = {"META", "PARM", "STAT", "OPTM", "SCHD", "RUNS"};
        FILE *f;
        FZ_CHECK(n >= 16 && memcmp(buf, "NNHCHKPT", 8) == 0 && le32(buf + 8) == 1);
        p = section(buf, n, "PARM", &len);
        FZ_CHECK(p && len == 4 * n_params);
        check_values(nn_params(model), p, n_params);
        p = section(buf, n, "STAT", &len);
        FZ_CHECK(p && len == 4 * n_state);
        check_values(nn_state(model), p, n_state);
        FZ_CHECK(opt.state && opt.state_count == (opt.kind == NN_OPTIMIZER_SGD ? 1 : 2) * n_params);
        FZ_CHECK(opt.kind == opt_before.kind);
        /* canonical: the objects save back to the input's sections (GRPH aside) */
        FZ_CHECK(nn_checkpoint_save(model, &opt, s, &run, copy) == NN_OK);
        f = fopen(copy, "rb");
        FZ_CHECK(f != NULL);
        got = fread(again, 1, sizeof again, f);
        fclose(f);
        for (k = 0; k < sizeof tags / sizeof tags[0]; k++) {
            size_t la = 0, lb = 0;
            const uint8_t *a = section(buf, n, tags[k], &la), *b = section(again, got, tags[k], &lb);
            FZ_CHECK((a == NULL) == (b == NULL));
            FZ_CHECK(!a || (la == lb && memcmp(a, b, la) == 0));
        }
        FZ_CHECK(nn_checkpoint_load(model, &opt, s, &run, copy) == NN_OK);
    }
    nn_optimizer_free(&opt);
    nn_model_free(model); /* a fresh model (no metadata) for the next input */
    model = fz_build_model(0);
    return 0;
}
