/* tools/interop_check.c - nn.h's half of the PyTorch round trip (make test's `interop` check;
   scripts/interop_check.sh runs the three steps, tests/pytorch/interop.py the other two).

   For each network PyTorch exported into DIR: build the same network in code, load
   DIR/<name>.safetensors (strict), run it in eval mode on DIR/<name>_input.bin and compare with
   PyTorch's DIR/<name>_logits.bin. Then train LeNet and ResNet-18 a few steps, save them as
   DIR/<name>_trained.safetensors with their logits, for PyTorch to load and check.

   Usage: interop_check DIR        exit status 0 when every comparison holds. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 8
#define CLASSES 10
#define TOLERANCE 1e-4 /* of the largest logit of the sample */

static int read_floats(const char *path, float *x, size_t count)
{
    FILE *f = fopen(path, "rb");
    size_t got = 0;
    if (f) {
        got = fread(x, sizeof(float), count, f);
        fclose(f);
    }
    if (got != count) fprintf(stderr, "interop_check: cannot read %zu floats from %s\n", count, path);
    return got == count ? 0 : -1;
}

static int write_floats(const char *path, const float *x, size_t count)
{
    FILE *f = fopen(path, "wb");
    size_t put = f ? fwrite(x, sizeof(float), count, f) : 0;
    if (f && fclose(f) != 0) put = 0;
    if (put != count) fprintf(stderr, "interop_check: cannot write %s\n", path);
    return put == count ? 0 : -1;
}

/* examples/cnn_compare.c's custom CNN (seed 001), dropout 0.25, log-softmax output */
static nn_model *custom_cnn(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_conv2d(m, h, 32, 3, 1, 0, NN_BIAS));
    h = nn_dropout(m, nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 64, 3, 1, 0, NN_BIAS), 2, 2)), 0.25f);
    h = nn_dropout(m, nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 64, 3, 1, 0, NN_BIAS), 2, 2)), 0.25f);
    h = nn_dropout(m, nn_relu(m, nn_linear(m, nn_flatten(m, h), 256, NN_BIAS)), 0.25f);
    h = nn_log_softmax(m, nn_linear(m, h, 10, NN_BIAS));
    if (nn_compile(m, h, NN_LOSS_NLL, batch) != NN_OK) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* bench/models.h's MLP, its linear layers named as torch.nn.Sequential(Flatten, Linear, ReLU,
   ...) numbers them: "1", "3", "5" */
static nn_model *mlp(uint64_t seed, int batch)
{
    nn_model *m = bm_mlp_relu(seed, batch);
    nn_node *n;
    int i, linear = 0;
    char name[16];
    for (i = 0; m && (n = nn_layer(m, i)) != NULL; i++) {
        if (nn_node_op(n) != NN_OP_LINEAR) continue;
        snprintf(name, sizeof name, "%d", 1 + 2 * linear++);
        if (nn_set_name(n, name) != NN_OK) {
            nn_model_free(m);
            return NULL;
        }
    }
    return m;
}

static const struct {
    const char *name;
    nn_model *(*build)(uint64_t seed, int batch);
    int train; /* trained here and sent back to PyTorch */
} networks[] = {
    {"mlp", mlp, 0},
    {"lenet", bm_lenet, 1},
    {"custom_cnn", custom_cnn, 0},
    {"resnet18", bm_resnet18, 1},
};

/* The largest |got - want| of each sample over its largest |want|. */
static double worst_difference(const float *got, const float *want)
{
    double worst = 0.0;
    int b, k;
    for (b = 0; b < BATCH; b++) {
        double scale = 0.0;
        for (k = 0; k < CLASSES; k++) scale = fmax(scale, fabs(want[b * CLASSES + k]));
        for (k = 0; k < CLASSES; k++) worst = fmax(worst, fabs(got[b * CLASSES + k] - want[b * CLASSES + k]) / scale);
    }
    return worst;
}

int main(int argc, char **argv)
{
    static float x[BATCH * 28 * 28], want[BATCH * CLASSES];
    char path[4096];
    int i, failures = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: interop_check DIR\n");
        return 2;
    }
    for (i = 0; i < (int)(sizeof networks / sizeof networks[0]); i++) {
        const char *name = networks[i].name;
        nn_model *m = networks[i].build(1, BATCH);
        double worst;
        if (!m) {
            fprintf(stderr, "interop_check: %s: %s\n", name, nn_last_error());
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s.safetensors", argv[1], name);
        if (nn_load_safetensors(m, path, NN_SAFETENSORS_STRICT, NULL, 0) != NN_OK) {
            fprintf(stderr, "interop_check: %s\n", nn_last_error());
            nn_model_free(m);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s_input.bin", argv[1], name);
        if (read_floats(path, x, sizeof x / sizeof x[0]) != 0) return 1;
        snprintf(path, sizeof path, "%s/%s_logits.bin", argv[1], name);
        if (read_floats(path, want, sizeof want / sizeof want[0]) != 0) return 1;
        if (nn_forward(m, x, BATCH, NN_EVAL) != NN_OK) {
            fprintf(stderr, "interop_check: %s: %s\n", name, nn_last_error());
            return 1;
        }
        worst = worst_difference(nn_output(m), want);
        printf("interop: nn.h runs PyTorch's %-10s (%zu parameters): largest difference %.2e of the largest logit %s\n",
               name, nn_param_count(m), worst, worst <= TOLERANCE ? "ok" : "FAIL");
        failures += worst > TOLERANCE;
        if (networks[i].train) {
            nn_optimizer opt = nn_sgd(0.01f, 0.9f, 0.0f);
            int labels[BATCH], step, b;
            for (b = 0; b < BATCH; b++) labels[b] = (b * 3) % CLASSES;
            for (step = 0; step < 3; step++)
                if (nn_train_step(m, &opt, x, labels, NULL, BATCH, NULL) != NN_OK) {
                    fprintf(stderr, "interop_check: %s: training: %s\n", name, nn_last_error());
                    return 1;
                }
            nn_optimizer_free(&opt);
            snprintf(path, sizeof path, "%s/%s_trained.safetensors", argv[1], name);
            if (nn_save_safetensors(m, path) != NN_OK || nn_forward(m, x, BATCH, NN_EVAL) != NN_OK) {
                fprintf(stderr, "interop_check: %s: %s\n", name, nn_last_error());
                return 1;
            }
            snprintf(path, sizeof path, "%s/%s_trained_logits.bin", argv[1], name);
            if (write_floats(path, nn_output(m), BATCH * CLASSES) != 0) return 1;
        }
        nn_model_free(m);
    }
    return failures ? 1 : 0;
}
