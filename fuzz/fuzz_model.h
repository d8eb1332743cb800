/* fuzz/fuzz_model.h - the small fixed model of fuzz_model.c (also used by gen_seeds.c to write
   the seed model files): conv 3x3 (2 channels) + batch norm + ReLU + 2x2 max-pool + linear 3,
   on 1x4x4 inputs: 51 parameters and 4 batch-norm running statistics. other = 1 builds a model
   of a different architecture (linear 16 -> 3) for the "other architecture" seed. */
#ifndef NN_FUZZ_MODEL_H
#define NN_FUZZ_MODEL_H
static nn_model *fz_build_model(int other)
{
    nn_model *m = nn_model_new(7);
    nn_node *x = nn_input(m, 1, 4, 4), *h;
    if (other) {
        h = nn_linear(m, x, 3, NN_BIAS);
    } else {
        h = nn_conv2d(m, x, 2, 3, 1, 1, NN_BIAS);
        h = nn_maxpool2d(m, nn_relu(m, nn_batchnorm(m, h)), 2, 2);
        h = nn_linear(m, nn_flatten(m, h), 3, NN_BIAS);
    }
    if (nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2) != NN_OK) {
        fprintf(stderr, "fz_build_model: %s\n", nn_last_error());
        abort();
    }
    return m;
}
#endif
