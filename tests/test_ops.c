/* The op table: pinned op values (model files store them), names, node kinds, and the parts of
   nn_compile that read the table (parameter counts, weights versus affine parameters, the
   sample split). */
#include "test_common.h"

/* Every value as it was first published. A failure here means an op was renumbered or
   inserted: saved models that use a later op would stop loading. Append new ops instead. */
static void test_op_values_pinned(void **state)
{
    static const struct { nn_op op; int value; const char *name; } pinned[] = {
        {NN_OP_INPUT, 0, "input"},           {NN_OP_LINEAR, 1, "linear"},
        {NN_OP_CONV2D, 2, "conv2d"},         {NN_OP_MAXPOOL2D, 3, "maxpool2d"},
        {NN_OP_AVGPOOL2D, 4, "avgpool2d"},   {NN_OP_GLOBAL_AVGPOOL, 5, "global_avgpool"},
        {NN_OP_BATCHNORM, 6, "batchnorm"},   {NN_OP_DROPOUT, 7, "dropout"},
        {NN_OP_FLATTEN, 8, "flatten"},       {NN_OP_ADD, 9, "add"},
        {NN_OP_ACTIVATION, 10, "activation"}, {NN_OP_SOFTMAX, 11, "softmax"},
        {NN_OP_LOG_SOFTMAX, 12, "log_softmax"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        if ((int)pinned[i].op != pinned[i].value) fail_msg("op %s is %d, was %d", pinned[i].name, (int)pinned[i].op, pinned[i].value);
        if (strcmp(nn_op_name(pinned[i].op), pinned[i].name) != 0)
            fail_msg("op %d is named %s, expected %s", pinned[i].value, nn_op_name(pinned[i].op), pinned[i].name);
    }
    /* every op has a row in the table, and only those */
    if ((int)NN_OP_COUNT < (int)(sizeof pinned / sizeof pinned[0])) fail_msg("NN_OP_COUNT %d too small", (int)NN_OP_COUNT);
    for (i = 0; i < (size_t)NN_OP_COUNT; i++)
        if (strcmp(nn_op_name((nn_op)i), "unknown") == 0) fail_msg("op %d has no name", (int)i);
    assert_string_equal(nn_op_name(NN_OP_COUNT), "unknown");
    assert_string_equal(nn_op_name((nn_op)-1), "unknown");
}

static void test_node_kinds(void **state)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 3, 8, 8), *c = nn_conv2d(m, x, 4, 3, 1, 1, NN_BIAS), *b = nn_batchnorm(m, c);
    nn_node *r = nn_relu(m, b), *p = nn_maxpool2d(m, r, 2, 2), *a = nn_avgpool2d(m, p, 2, 2);
    nn_node *g = nn_global_avgpool(m, nn_add_nodes(m, a, a)), *f = nn_flatten(m, g);
    nn_node *d = nn_dropout(m, f, 0.5f), *l = nn_linear(m, d, 3, NN_BIAS);
    nn_node *s = nn_softmax(m, l), *ls = nn_log_softmax(m, l);
    const struct { nn_node *node; nn_op op; } expect[] = {
        {x, NN_OP_INPUT}, {c, NN_OP_CONV2D}, {b, NN_OP_BATCHNORM}, {r, NN_OP_ACTIVATION},
        {p, NN_OP_MAXPOOL2D}, {a, NN_OP_AVGPOOL2D}, {g, NN_OP_GLOBAL_AVGPOOL}, {f, NN_OP_FLATTEN},
        {d, NN_OP_DROPOUT}, {l, NN_OP_LINEAR}, {s, NN_OP_SOFTMAX}, {ls, NN_OP_LOG_SOFTMAX},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_non_null(expect[i].node);
        assert_int_equal(nn_node_op(expect[i].node), expect[i].op);
    }
    assert_int_equal(nn_node_op(NULL), NN_OP_COUNT);
    nn_model_free(m);
}

/* Parameter and state counts come from each op's shape rule; batch norm's gamma is not a weight
   (nn_weight_count) and nn_weights_gather writes exactly nn_weight_count floats. */
static void test_counts_from_table(void **state)
{
    nn_model *m = nn_model_new(2);
    nn_node *x = nn_input(m, 3, 8, 8), *h;
    size_t weights, gathered, count;
    float *out;
    (void)state;
    h = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 4, 3, 1, 1, NN_NO_BIAS))); /* 108 weights, bn 4 + 4, state 8 */
    h = nn_linear(m, nn_flatten(m, h), 5, NN_BIAS);                           /* 1280 + 5 */
    h = nn_batchnorm(m, h);                                                   /* 5 + 5, state 10 */
    assert_int_equal(nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4), NN_OK);
    assert_int_equal(nn_param_count(m), 108 + 8 + 1280 + 5 + 10);
    assert_int_equal(nn_state_count(m), 8 + 10);
    weights = nn_weight_count(m);
    assert_int_equal(weights, 108 + 1280);
    assert_int_equal(nn_weights_gather(m, NULL), weights);
    out = (float *)malloc((weights + 1) * sizeof(float));
    assert_non_null(out);
    out[weights] = 12345.0f; /* a guard just past what nn_weight_count promises */
    gathered = nn_weights_gather(m, out);
    assert_int_equal(gathered, weights);
    assert_true(out[weights] == 12345.0f);
    assert_true(memcmp(out, nn_node_weights(m, nn_layer(m, 0), &count), 108 * sizeof(float)) == 0);
    assert_int_equal(count, 108);
    free(out);
    /* batch norm's running statistics start at mean 0, variance 1 */
    assert_true(nn_state(m)[0] == 0.0f && nn_state(m)[4] == 1.0f && nn_state(m)[8] == 0.0f && nn_state(m)[13] == 1.0f);
    nn_model_free(m);
}

/* A failed builder leaves nothing behind: the model has the nodes it had. */
static void test_failed_builder_adds_nothing(void **state)
{
    nn_model *m = nn_model_new(3);
    nn_node *x = nn_input(m, 1, 4, 4), *y;
    (void)state;
    assert_null(nn_conv2d(m, x, 2, 5, 1, 0, NN_BIAS)); /* 5x5 on 4x4 */
    assert_non_null(strstr(nn_last_error(), "nn_conv2d: conv2d:"));
    assert_null(nn_layer(m, 0));
    /* the model still reports the first error at compile time */
    y = nn_linear(m, x, 2, NN_BIAS);
    assert_non_null(y);
    assert_int_equal(nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 2), NN_ERROR_SHAPE);
    nn_model_free(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_op_values_pinned),
    cmocka_unit_test(test_node_kinds),
    cmocka_unit_test(test_counts_from_table),
    cmocka_unit_test(test_failed_builder_adds_nothing),
};
NN_TEST_MAIN("ops", tests)
