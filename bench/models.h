/* bench/models.h - the networks that the benchmarks train, shared by bench_kernels.c
   (train_step rows) and train_compare.c (end-to-end runs). bench/pytorch/train_compare.py
   builds the same networks in PyTorch; keep the two in step.

   Include after nn.h. Every builder returns a compiled model (loss: softmax cross-entropy) or
   NULL with nn_last_error() set. */
#ifndef NN_BENCH_MODELS_H
#define NN_BENCH_MODELS_H

#include <string.h>
#include "nn.h"

#if defined(__GNUC__) || defined(__clang__)
#define BM_API static __attribute__((unused))
#else
#define BM_API static
#endif

/* The precision the builders compile their models in (nn_set_precision). */
static nn_precision bm_precision = NN_PRECISION_FP32;

static nn_model *bm_compile(nn_model *m, nn_node *y, int batch)
{
    if (!m) return NULL;
    if (nn_set_precision(m, bm_precision) != NN_OK || nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch) != NN_OK) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* Seed model A: 784-64-32-10, ReLU (trained with Adam 1e-3, batch 64). */
BM_API nn_model *bm_mlp_relu(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_linear(m, h, 64, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 32, NN_BIAS));
    return bm_compile(m, nn_linear(m, h, 10, NN_BIAS), batch);
}

/* Seed model B: 784-64-10, sigmoid (trained with SGD lr 0.1, batch 32). */
BM_API nn_model *bm_mlp_sigmoid(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_sigmoid(m, nn_linear(m, h, 64, NN_BIAS));
    return bm_compile(m, nn_linear(m, h, 10, NN_BIAS), batch);
}

/* LeNet-5 as in nn.h's quick start: conv 6@5x5, max-pool 2, ReLU, conv 16@5x5, max-pool 2, ReLU,
   120, 84, 10 (trained with SGD lr 0.01 momentum 0.9, batch 64). */
BM_API nn_model *bm_lenet(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 6, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    return bm_compile(m, nn_linear(m, h, 10, NN_BIAS), batch);
}

static nn_node *bm_conv_bn(nn_model *m, nn_node *x, int out_channels, int kernel, int stride, int padding)
{
    return nn_batchnorm(m, nn_conv2d(m, x, out_channels, kernel, stride, padding, NN_NO_BIAS));
}

/* torchvision's BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the input (through a 1x1
   conv with stride and BN when the shape changes), then ReLU. */
static nn_node *bm_basic_block(nn_model *m, nn_node *x, int out_channels, int stride)
{
    int in_channels = 0;
    nn_node *h, *shortcut = x;
    nn_node_shape(x, &in_channels, NULL, NULL);
    h = nn_relu(m, bm_conv_bn(m, x, out_channels, 3, stride, 1));
    h = bm_conv_bn(m, h, out_channels, 3, 1, 1);
    if (stride != 1 || in_channels != out_channels) shortcut = bm_conv_bn(m, x, out_channels, 1, stride, 0);
    return nn_relu(m, nn_add_nodes(m, h, shortcut));
}

/* ResNet-18 for 28x28x1 inputs: BasicBlocks [2,2,2,2] of widths 64/128/256/512 (strides 1,2,2,2:
   28x28 -> 14 -> 7 -> 4), batch norm, a 3x3 stride-1 stem (64 channels) without max-pool,
   global average pool, linear 512 -> 10. Convolutions have no bias. 11.2 M parameters. */
BM_API nn_model *bm_resnet18(uint64_t seed, int batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 28, 28);
    int stage;
    h = nn_relu(m, bm_conv_bn(m, h, 64, 3, 1, 1));
    for (stage = 0; stage < 4; stage++) {
        h = bm_basic_block(m, h, 64 << stage, stage == 0 ? 1 : 2);
        h = bm_basic_block(m, h, 64 << stage, 1);
    }
    h = nn_global_avgpool(m, h);
    return bm_compile(m, nn_linear(m, h, 10, NN_BIAS), batch);
}

typedef struct bm_model_spec {
    const char *name;
    nn_model *(*build)(uint64_t seed, int batch);
    int batch;
    const char *optimizer; /* "adam" (lr 1e-3), "sgd" (lr 0.1), "sgd_momentum" (lr 0.01, momentum 0.9) */
} bm_model_spec;

static const bm_model_spec bm_models[] = {
    {"mlp_relu", bm_mlp_relu, 64, "adam"},
    {"mlp_sigmoid", bm_mlp_sigmoid, 32, "sgd"},
    {"lenet", bm_lenet, 64, "sgd_momentum"},
    {"resnet18", bm_resnet18, 64, "sgd_momentum"},
};
#define BM_MODEL_COUNT ((int)(sizeof bm_models / sizeof bm_models[0]))

BM_API const bm_model_spec *bm_find_model(const char *name)
{
    int i;
    for (i = 0; i < BM_MODEL_COUNT; i++)
        if (!strcmp(bm_models[i].name, name)) return &bm_models[i];
    return NULL;
}

BM_API nn_optimizer bm_optimizer(const bm_model_spec *spec)
{
    if (!strcmp(spec->optimizer, "adam")) return nn_adam(1e-3f, 0.0f);
    if (!strcmp(spec->optimizer, "sgd")) return nn_sgd(0.1f, 0.0f, 0.0f);
    return nn_sgd(0.01f, 0.9f, 0.0f);
}

#endif
