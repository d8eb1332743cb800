/* fuzz/fuzz_safetensors.c - libFuzzer target for nn_load_safetensors.

   The small model of fuzz_model.h (conv + batch norm + linear) is compiled once; each input is
   written to a file and loaded into it, strict and partial in turn (the first input byte picks).
   Checks (abort() on violation):
     - on any error the parameters and the batch-norm state are bit-identical to before, the
       status is NN_ERROR_FORMAT, NN_ERROR_SHAPE or NN_ERROR_NONFINITE, and there is a message;
     - on NN_OK every parameter and statistic is finite (then the snapshot is restored).
   Seeds: fuzz/corpus/fuzz_safetensors/ (fuzz/gen_seeds.c writes them).
   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ifuzz fuzz/fuzz_safetensors.c -lm */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "fuzz_common.h"
#include "fuzz_model.h"

static nn_model *model;
static float *snap_params, *snap_state;
static size_t n_params, n_state;

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
    const char *path = fz_path("model.safetensors");
    char report[256];
    nn_status st;
    size_t i;
    if (size < 1 || size > (1 << 20)) return 0;
    fz_write(path, data + 1, size - 1);
    st = nn_load_safetensors(model, path, data[0] & 1 ? NN_SAFETENSORS_PARTIAL : NN_SAFETENSORS_STRICT, report,
                             sizeof report);
    if (st != NN_OK) {
        if (st != NN_ERROR_FORMAT && st != NN_ERROR_SHAPE && st != NN_ERROR_NONFINITE) {
            fprintf(stderr, "invariant failed: status %s (%s)\n", nn_status_name(st), nn_last_error());
            abort();
        }
        if (!nn_last_error()[0]) {
            fprintf(stderr, "invariant failed: an error without a message\n");
            abort();
        }
        if (memcmp(nn_params(model), snap_params, n_params * sizeof(float)) != 0 ||
            memcmp(nn_state(model), snap_state, n_state * sizeof(float)) != 0) {
            fprintf(stderr, "invariant failed: a refused file changed the model (%s)\n", nn_last_error());
            abort();
        }
        return 0;
    }
    for (i = 0; i < n_params; i++)
        if (!isfinite(nn_params(model)[i])) abort();
    for (i = 0; i < n_state; i++)
        if (!isfinite(nn_state(model)[i])) abort();
    memcpy(nn_params(model), snap_params, n_params * sizeof(float));
    memcpy(nn_state(model), snap_state, n_state * sizeof(float));
    return 0;
}
