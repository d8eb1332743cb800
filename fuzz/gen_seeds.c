/* fuzz/gen_seeds.c - writes the seed corpora in fuzz/corpus/<target>/ (they are checked in;
   run `make fuzz-seeds` to regenerate them). Each seed is in the input format of its target:
     fuzz_idx/:   a variant byte, then (even) an image file, or (odd) a 2-byte image length, the
             image file and the label file;
     fuzz_model/: a flag byte (odd: the target fixes the CRC), then a model file written by nn_save
             (format 2: the fixed model of fuzz_model.h, another architecture, a model with every
             op kind and metadata, one ending in softmax). The v1-* seeds are format-1 files
             written by the nn.h of that format (commit ed410dd) and are kept as they are;
     fuzz_checkpoint/: a flag byte (bit 0: the target fixes the CRC; bits 1-2: the optimizer kind it
             loads into; bit 3: it passes a schedule, of the kind in bits 4-6), then a checkpoint
             of the fixed model of fuzz_model.h trained two steps, written by nn_checkpoint_save,
             with the optimizer and schedule the flag names (every optimizer and schedule kind
             once, metadata and a run state in some), and a model file (refused);
     fuzz_safetensors/: a flag byte (odd: partial mode), then a safetensors file (nn_save_safetensors
             of the fixed model and of another architecture; one written by hand in F16/BF16);
     fuzz_args/:  NUL-separated command-line arguments.
   Usage: gen_seeds DIR  (DIR/<target> must exist for every target) */
#define _POSIX_C_SOURCE 200809L
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_model.h"

static const char *dir;

static void put(const char *sub, const char *name, const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static size_t idx_images(unsigned char *p, unsigned count, unsigned rows, unsigned cols)
{
    unsigned i, n = count * rows * cols;
    unsigned v[4] = {0x803, count, rows, cols};
    for (i = 0; i < 4; i++) {
        p[4 * i] = (unsigned char)(v[i] >> 24); p[4 * i + 1] = (unsigned char)(v[i] >> 16);
        p[4 * i + 2] = (unsigned char)(v[i] >> 8); p[4 * i + 3] = (unsigned char)v[i];
    }
    for (i = 0; i < n; i++) p[16 + i] = (unsigned char)(i * 37);
    return 16 + n;
}

static size_t idx_labels(unsigned char *p, unsigned count)
{
    unsigned i;
    p[0] = p[1] = 0; p[2] = 8; p[3] = 1;
    p[4] = (unsigned char)(count >> 24); p[5] = (unsigned char)(count >> 16); p[6] = (unsigned char)(count >> 8); p[7] = (unsigned char)count;
    for (i = 0; i < count; i++) p[8 + i] = (unsigned char)(i % 10);
    return 8 + count;
}

static void idx_seed(const char *name, unsigned count, unsigned rows, unsigned cols, int pair)
{
    unsigned char buf[4096], img[2048], lab[512];
    size_t ni = idx_images(img, count, rows, cols), nl = idx_labels(lab, count);
    if (!pair) {
        buf[0] = 0;
        memcpy(buf + 1, img, ni);
        put("fuzz_idx", name, buf, 1 + ni, NULL, 0);
    } else {
        buf[0] = 1;
        buf[1] = (unsigned char)ni;
        buf[2] = (unsigned char)(ni >> 8);
        memcpy(buf + 3, img, ni);
        memcpy(buf + 3 + ni, lab, nl);
        put("fuzz_idx", name, buf, 3 + ni + nl, NULL, 0);
    }
}

/* every op kind, several activations, metadata: input 2x6x6, conv, batch norm, leaky ReLU,
   max-pool, 1x1 conv without bias, residual add, average pool, global average, sigmoid,
   flatten, dropout, linear, tanh, scaled tanh, linear, log-softmax (NLL) */
static nn_model *every_op_model(void)
{
    nn_model *m = nn_model_new(3);
    nn_node *h = nn_leaky_relu(m, nn_batchnorm(m, nn_conv2d(m, nn_input(m, 2, 6, 6), 4, 3, 1, 1, NN_BIAS)), 0.1f);
    nn_node *p = nn_maxpool2d(m, h, 2, 2);
    h = nn_add_nodes(m, p, nn_conv2d(m, p, 4, 1, 1, 0, NN_NO_BIAS));
    h = nn_sigmoid(m, nn_global_avgpool(m, nn_avgpool2d(m, h, 2, 1)));
    h = nn_tanh(m, nn_linear(m, nn_dropout(m, nn_flatten(m, h), 0.2f), 5, NN_BIAS));
    h = nn_log_softmax(m, nn_linear(m, nn_scaled_tanh(m, h), 3, NN_BIAS));
    if (nn_set_name(h, "log_probabilities") != NN_OK || nn_compile(m, h, NN_LOSS_NLL, 2) != NN_OK ||
        nn_set_meta(m, "mean", "0.1307") != NN_OK ||
        nn_set_meta(m, "classes", "cat,dog,bird") != NN_OK) {
        fprintf(stderr, "every_op_model: %s\n", nn_last_error());
        exit(1);
    }
    return m;
}

/* input 4 -> linear 3 -> softmax, no loss */
static nn_model *softmax_model(void)
{
    nn_model *m = nn_model_new(4);
    if (nn_compile(m, nn_softmax(m, nn_linear(m, nn_input(m, 1, 1, 4), 3, NN_BIAS)), NN_LOSS_NONE, 2) != NN_OK) exit(1);
    return m;
}

/* which: 0 the fixed model, 1 another architecture, 2 every op, 3 softmax */
static void model_seed(const char *name, int which, int flag)
{
    char tmp[] = "/tmp/nn_seed_XXXXXX";
    unsigned char buf[1 << 16];
    size_t n;
    FILE *f;
    nn_model *m = which == 2 ? every_op_model() : which == 3 ? softmax_model() : fz_build_model(which);
    int fd = mkstemp(tmp);
    if (fd < 0) exit(1);
    close(fd);
    if (nn_save(m, tmp) != NN_OK) {
        fprintf(stderr, "%s\n", nn_last_error());
        exit(1);
    }
    f = fopen(tmp, "rb");
    buf[0] = (unsigned char)flag;
    n = fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    remove(tmp);
    put("fuzz_model", name, buf, 1 + n, NULL, 0);
    nn_model_free(m);
}

/* A safetensors file of the fixed model (which 0) or another architecture (1), written by
   nn_save_safetensors; flag odd: the target loads it in partial mode. */
static void safetensors_seed(const char *name, int which, int flag)
{
    char tmp[] = "/tmp/nn_seed_XXXXXX";
    unsigned char buf[1 << 16];
    size_t n;
    FILE *f;
    nn_model *m = fz_build_model(which);
    int fd = mkstemp(tmp);
    if (fd < 0) exit(1);
    close(fd);
    if (nn_save_safetensors(m, tmp) != NN_OK) {
        fprintf(stderr, "%s\n", nn_last_error());
        exit(1);
    }
    f = fopen(tmp, "rb");
    buf[0] = (unsigned char)flag;
    n = fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    remove(tmp);
    put("fuzz_safetensors", name, buf, 1 + n, NULL, 0);
    nn_model_free(m);
}

/* A hand-written file in the other dtypes and escapes: the linear layer of the fixed model as
   F16 weight, BF16 bias, with an escaped name and metadata. */
static void safetensors_dtype_seed(void)
{
    static const char header[] = "{\"__metadata__\":{\"format\":\"pt\"},\"linear1.w\\u0065ight\":{\"dtype\":\"F16\","
                                 "\"shape\":[3,8],\"data_offsets\":[0,48]},\"linear1.bias\":{\"dtype\":\"BF16\","
                                 "\"shape\":[3],\"data_offsets\":[48,54]}}";
    unsigned char buf[1 + 8 + sizeof header + 54];
    const size_t len = sizeof header - 1;
    size_t i;
    buf[0] = 1;
    for (i = 0; i < 8; i++) buf[1 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 9, header, len);
    for (i = 0; i < 54; i += 2) {
        buf[9 + len + i] = 0x00;
        buf[9 + len + i + 1] = 0x3C; /* 1.0 as F16; 0x3C00 as BF16 is 0.0078125 */
    }
    put("fuzz_safetensors", "dtypes-partial", buf, 9 + len + 54, NULL, 0);
}

/* A checkpoint of the fixed model after two training steps with optimizer kind `opt_kind` and, if
   schedule_kind >= 0, a schedule of that kind; with_run: a run state and metadata too. */
static void checkpoint_seed(const char *name, int opt_kind, int schedule_kind, int with_run, int fix_crc)
{
    static const int milestones[2] = {2, 5};
    char tmp[] = "/tmp/nn_seed_XXXXXX";
    unsigned char buf[1 << 16];
    float x[2 * 16];
    int labels[2] = {0, 2}, i;
    size_t n;
    FILE *f;
    nn_model *m = fz_build_model(0);
    nn_optimizer o = opt_kind == 0 ? nn_sgd(0.1f, 0.9f, 0.0f) : opt_kind == 1 ? nn_adam(0.01f, 0.0f)
                     : opt_kind == 2 ? nn_adamw(0.01f, 0.01f) : nn_rmsprop(0.01f, 0.0f);
    nn_schedule s;
    nn_fit_state run;
    int fd = mkstemp(tmp);
    if (fd < 0) exit(1);
    close(fd);
    switch (schedule_kind) {
    case 0: s = nn_step_lr(2, 0.5); break;
    case 1: s = nn_multi_step_lr(milestones, 2, 0.1); break;
    case 2: s = nn_exponential_lr(0.9); break;
    case 3: s = nn_cosine_annealing_lr(10, 0.0); if (nn_schedule_warmup(&s, 2, 0.5) != NN_OK) exit(1); break;
    case 4: s = nn_one_cycle_lr(0.1, 20); break;
    default: s = nn_reduce_lr_on_plateau(0.5, 1); break;
    }
    memset(&run, 0, sizeof run);
    if (with_run) {
        run.started = 1;
        run.epochs_done = 3;
        run.batches_done = 1;
        run.steps = 13;
        run.epoch_rng = 0x9e3779b97f4a7c15ull;
        run.sample_count = 10;
        run.batch_size = 2;
        run.best_val_loss = 0.5;
        run.epoch_loss_sum = 2.25;
        run.epoch_samples = run.check_samples = 2;
        run.epoch_correct = run.check_correct = 1;
        run.check_loss_sum = 2.25;
        if (nn_set_meta(m, "mean", "0.1307") != NN_OK) exit(1);
    }
    for (i = 0; i < 2 * 16; i++) x[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    if (schedule_kind >= 0 && nn_schedule_start(&s, &o) != NN_OK) exit(1);
    for (i = 0; i < 2; i++)
        if (nn_train_step(m, &o, x, labels, NULL, 2, NULL) != NN_OK ||
            (schedule_kind >= 0 && (schedule_kind == 5 ? nn_schedule_plateau_step(&s, &o, 1.0) : nn_schedule_step(&s, &o)) != NN_OK)) {
            fprintf(stderr, "checkpoint_seed: %s\n", nn_last_error());
            exit(1);
        }
    if (nn_checkpoint_save(m, &o, schedule_kind >= 0 ? &s : NULL, &run, tmp) != NN_OK) {
        fprintf(stderr, "%s\n", nn_last_error());
        exit(1);
    }
    f = fopen(tmp, "rb");
    buf[0] = (unsigned char)(fix_crc | opt_kind << 1 | (schedule_kind >= 0 ? 8 | schedule_kind << 4 : 0));
    n = fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    remove(tmp);
    put("fuzz_checkpoint", name, buf, 1 + n, NULL, 0);
    nn_optimizer_free(&o);
    nn_model_free(m);
}

static void args_seed(const char *name, const char *const *argv)
{
    unsigned char buf[1024];
    size_t n = 0;
    for (; *argv; argv++) {
        size_t k = strlen(*argv) + 1;
        memcpy(buf + n, *argv, k);
        n += k;
    }
    put("fuzz_args", name, buf, n ? n - 1 : 0, NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    idx_seed("images-3x4x4", 3, 4, 4, 0);
    idx_seed("pair-3x4x4", 3, 4, 4, 1);
    idx_seed("pair-1x28x28", 1, 28, 28, 1);
    idx_seed("pair-12x2x3", 12, 2, 3, 1);
    model_seed("v2-model-raw", 0, 0);
    model_seed("v2-model-fixcrc", 0, 1);
    model_seed("v2-other-arch-fixcrc", 1, 1);
    model_seed("v2-every-op-fixcrc", 2, 1);
    model_seed("v2-softmax-fixcrc", 3, 1);
    safetensors_seed("model-strict", 0, 0);
    safetensors_seed("model-partial", 0, 1);
    safetensors_seed("other-arch-partial", 1, 1);
    safetensors_dtype_seed();
    checkpoint_seed("sgd-fixcrc", 0, -1, 1, 1);
    checkpoint_seed("sgd-steplr-raw", 0, 0, 0, 0);
    checkpoint_seed("sgd-multisteplr-fixcrc", 0, 1, 0, 1);
    checkpoint_seed("adam-exponential-fixcrc", 1, 2, 1, 1);
    checkpoint_seed("adam-cosine-warmup-fixcrc", 1, 3, 0, 1);
    checkpoint_seed("adamw-onecycle-fixcrc", 2, 4, 1, 1);
    checkpoint_seed("rmsprop-plateau-fixcrc", 3, 5, 1, 1);
    {
        /* a model file: refused by nn_checkpoint_load */
        unsigned char buf[1 << 16];
        char path[1024];
        FILE *f;
        size_t n;
        snprintf(path, sizeof path, "%s/fuzz_model/v2-model-fixcrc", dir);
        f = fopen(path, "rb");
        if (!f) exit(1);
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        put("fuzz_checkpoint", "model-file-fixcrc", buf, n, NULL, 0);
    }
    {
        static const char *const a1[] = {"--epochs", "3", "--seed", "7", "--quick", "--precision", "bf16", NULL};
        static const char *const a2[] = {"--data", "d", "--out", "o", "--threads", "2", "--lr", "0.5", NULL};
        static const char *const a3[] = {"--n", "-4", "--wd", "1e-3", "--name", "abc", "--bn", "--widths", "5,25,50", NULL};
        static const char *const a4[] = {"--help", NULL};
        static const char *const a5[] = {"--epochs", "99999999999", NULL};
        static const char *const a6[] = {"--bogus", NULL};
        static const char *const a7[] = {"--seed", NULL};
        static const char *const a8[] = {"--checkpoint", "run.ckpt", "--resume", "--summary", NULL};
        static const char *const a9[] = {"--resume", "--epochs", "2", NULL};
        args_seed("valid-common", a1);
        args_seed("valid-paths", a2);
        args_seed("valid-flags", a3);
        args_seed("help", a4);
        args_seed("overflow", a5);
        args_seed("unknown", a6);
        args_seed("missing-value", a7);
        args_seed("checkpoint-resume", a8);
        args_seed("resume-alone", a9);
    }
    return 0;
}
