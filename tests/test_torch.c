/* nn.h against PyTorch: small networks rebuilt with nn.h's builders, given the exact initial
   parameters, inputs and labels of tests/fixtures/torch_reference.h, and compared with the
   outputs, losses, gradients, input gradients, batch-norm running statistics, eval-mode
   outputs and optimiser trajectories PyTorch computed for them; a focal loss written in C
   through nn_backward_from; trajectories with layers frozen. No PyTorch at run time: the
   header is written once by tests/pytorch/gen_fixtures.py (float64 reference, rounded to float32).

   Tolerance, for every check unless said otherwise: element-wise
       |got - expected| <= 1e-5 + 1e-4 * |expected|
   (float32 PyTorch itself lands within 1.5% of that bound: the generator prints the figures).
   A failing check prints the case, the quantity, how many elements are off and the worst one;
   NN_TORCH_VERBOSE=1 prints every check with its worst error in units of the tolerance. */
#include "test_common.h"
#include "fixtures/torch_reference.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ATOL 1e-5
#define RTOL 1e-4

static int verbose(void)
{
    const char *v = getenv("NN_TORCH_VERBOSE");
    return v && *v && *v != '0';
}

/* Element-wise |got - expected| <= atol + rtol*|expected|. Returns 1 (and prints) on failure. */
static int check_close(const char *name, const char *what, const float *got, const float *expected,
                       size_t n, double atol, double rtol)
{
    size_t i, bad = 0, worst = 0, shown = 0;
    double worst_ratio = -1.0;
    if (!got) {
        printf("  FAIL %s %s: nn.h returned NULL\n", name, what);
        return 1;
    }
    for (i = 0; i < n; i++) {
        double e = expected[i], g = got[i], d = fabs(g - e), tol = atol + rtol * fabs(e);
        double r = d == 0.0 ? 0.0 : d / tol;
        if (r != r) r = HUGE_VAL; /* NaN */
        if (!(d <= tol)) bad++;
        if (r > worst_ratio) { worst_ratio = r; worst = i; }
    }
    if (bad || verbose())
        printf("  %s %s %s: %lu of %lu elements off (tolerance %g + %g*|expected|); worst [%lu] "
               "expected %.9g got %.9g (%.3g x tolerance)\n",
               bad ? "FAIL" : "ok  ", name, what, (unsigned long)bad, (unsigned long)n, atol, rtol,
               (unsigned long)worst, (double)expected[worst], (double)got[worst], worst_ratio);
    if (bad) {
        printf("       off:");
        for (i = 0; i < n && shown < 8; i++) {
            double e = expected[i], d = fabs((double)got[i] - e);
            if (!(d <= atol + rtol * fabs(e))) {
                printf(" [%lu] %.7g vs %.7g;", (unsigned long)i, (double)got[i], e);
                shown++;
            }
        }
        printf("%s\n", bad > shown ? " ..." : "");
    }
    return bad ? 1 : 0;
}

static int check_status(const char *name, const char *what, nn_status st)
{
    if (st == NN_OK) return 0;
    printf("  FAIL %s %s: %s (%s)\n", name, what, nn_status_name(st), nn_last_error());
    return 1;
}

static int check_count(const char *name, const char *what, size_t got, size_t expected)
{
    if (got == expected) return 0;
    printf("  FAIL %s %s: nn.h has %lu, PyTorch %lu\n", name, what, (unsigned long)got, (unsigned long)expected);
    return 1;
}

static nn_model *compiled(nn_model *m, nn_node *y, nn_loss loss, int max_batch)
{
    nn_status st = nn_compile(m, y, loss, max_batch);
    if (st != NN_OK) {
        printf("  nn_compile failed: %s (%s)\n", nn_status_name(st), nn_last_error());
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------------ one forward/backward case */
typedef struct torch_case {
    const char *name;
    int batch;
    const float *params; size_t param_count;
    const float *x; size_t x_count;
    const float *output; size_t output_count;
    float loss;
    const float *grad; size_t grad_count;
    const float *dx; size_t dx_count;
    /* optional */
    const int *labels;
    const float *targets;
    const float *state0, *state, *eval_output; size_t state_count;
} torch_case;

#define TORCH_CASE(id) { #id, torch_##id##_batch, \
    torch_##id##_params, COUNT(torch_##id##_params), torch_##id##_x, COUNT(torch_##id##_x), \
    torch_##id##_output, COUNT(torch_##id##_output), torch_##id##_loss, \
    torch_##id##_grad, COUNT(torch_##id##_grad), torch_##id##_dx, COUNT(torch_##id##_dx), \
    NULL, NULL, NULL, NULL, NULL, 0 }
#define TORCH_BN(c, id) ((c).state0 = torch_##id##_state0, (c).state = torch_##id##_state, \
    (c).eval_output = torch_##id##_eval_output, (c).state_count = COUNT(torch_##id##_state))

/* Loads the case's parameters (and running stats) into m, runs a train-mode forward and a
   backward, and compares everything; then an eval-mode forward. Frees m. Returns failures. */
static int run_case(const torch_case *c, nn_model *m)
{
    int f = 0;
    float loss = NAN, loss2 = NAN;
    const char *n = c->name;
    nn_status st;
    if (!m) {
        printf("  FAIL %s: the model did not build\n", n);
        return 1;
    }
    /* the layouts must agree before anything can be compared */
    if (check_count(n, "nn_param_count", nn_param_count(m), c->param_count) ||
        check_count(n, "nn_state_count", nn_state_count(m), c->state_count) ||
        check_count(n, "input floats (nn_input_size*batch)", (size_t)nn_input_size(m) * (size_t)c->batch, c->x_count) ||
        check_count(n, "output floats (nn_output_size*batch)", (size_t)nn_output_size(m) * (size_t)c->batch, c->output_count)) {
        nn_model_free(m);
        return 1;
    }
    if (c->state0) /* nn_compile's running stats are PyTorch's: mean 0, var 1 (exact) */
        f += check_close(n, "running stats after nn_compile (exact)", nn_state(m), c->state0, c->state_count, 0.0, 0.0);
    memcpy(nn_params(m), c->params, c->param_count * sizeof(float));
    if (c->state0) memcpy(nn_state(m), c->state0, c->state_count * sizeof(float));
    nn_set_input_gradient(m, 1);

    st = nn_forward(m, c->x, c->batch, NN_TRAIN);
    if (check_status(n, "nn_forward(NN_TRAIN)", st)) { nn_model_free(m); return f + 1; }
    f += check_close(n, "output (train forward)", nn_output(m), c->output, c->output_count, ATOL, RTOL);

    st = nn_backward(m, c->labels, c->targets, &loss);
    if (check_status(n, "nn_backward", st)) { nn_model_free(m); return f + 1; }
    f += check_close(n, "loss", &loss, &c->loss, 1, ATOL, RTOL);
    f += check_close(n, "gradient of the parameters", nn_grads(m), c->grad, c->grad_count, ATOL, RTOL);
    f += check_close(n, "gradient of the input", nn_input_gradient(m), c->dx, c->dx_count, ATOL, RTOL);
    st = nn_compute_loss(m, c->labels, c->targets, &loss2);
    if (!check_status(n, "nn_compute_loss", st))
        f += check_close(n, "nn_compute_loss", &loss2, &c->loss, 1, ATOL, RTOL);
    else
        f++;

    if (c->state) {
        float *before = (float *)malloc(c->state_count * sizeof(float));
        f += check_close(n, "running stats after the train forward", nn_state(m), c->state, c->state_count, ATOL, RTOL);
        if (before) memcpy(before, nn_state(m), c->state_count * sizeof(float));
        st = nn_forward(m, c->x, c->batch, NN_EVAL);
        if (!check_status(n, "nn_forward(NN_EVAL)", st)) {
            f += check_close(n, "output (eval forward with the running stats)", nn_output(m), c->eval_output,
                             c->output_count, ATOL, RTOL);
            if (before) /* nn.h's own values before and after: exact */
                f += check_close(n, "running stats unchanged by the eval forward", nn_state(m), before,
                                 c->state_count, 0.0, 0.0);
        } else {
            f++;
        }
        free(before);
    } else {
        /* no batch norm, no dropout: the eval forward is the train forward */
        st = nn_forward(m, c->x, c->batch, NN_EVAL);
        if (!check_status(n, "nn_forward(NN_EVAL)", st))
            f += check_close(n, "output (eval forward)", nn_output(m), c->output, c->output_count, ATOL, RTOL);
        else
            f++;
    }
    nn_model_free(m);
    return f;
}

/* Runs an eval forward on max_batch random samples first, so that a case run afterwards on
   fewer samples finds the buffers full of another batch's values (stale rows must not leak
   into its outputs, losses or batch statistics). Eval mode: the running stats stay as they are. */
static nn_model *dirtied(nn_model *m, int max_batch)
{
    float *x;
    size_t n;
    if (!m) return NULL;
    n = (size_t)nn_input_size(m) * (size_t)max_batch;
    x = (float *)malloc(n * sizeof(float));
    if (!x) return m;
    nn_test_fill(x, n, -3.0f, 3.0f);
    if (nn_forward(m, x, max_batch, NN_EVAL) != NN_OK)
        printf("  note: eval forward on %d random samples failed: %s\n", max_batch, nn_last_error());
    free(x);
    return m;
}

#define EXPECT_NO_FAILURES(f) do { if (f) fail_msg("%d check(s) differ from PyTorch (details above)", (f)); } while (0)

/* ------------------------------------------------------------------ models */
/* a. Linear(6,5)-ReLU-Linear(5,4)-ReLU-Linear(4,3), cross-entropy */
static nn_model *build_mlp_relu_ce(int max_batch)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 6, 1, 1);
    h = nn_relu(m, nn_linear(m, h, 5, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 4, NN_BIAS));
    h = nn_linear(m, h, 3, NN_BIAS);
    return compiled(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch);
}

static void test_mlp_relu_ce(void **state)
{
    torch_case c = TORCH_CASE(mlp_relu_ce);
    int f;
    (void)state;
    c.labels = torch_mlp_relu_ce_labels;
    f = run_case(&c, build_mlp_relu_ce(c.batch));
    EXPECT_NO_FAILURES(f);
}

/* the same, compiled for 16 samples, run on 16 random ones, then on the case's 4 */
static void test_mlp_relu_ce_max_batch_16(void **state)
{
    torch_case c = TORCH_CASE(mlp_relu_ce);
    int f;
    (void)state;
    c.name = "mlp_relu_ce(max_batch 16)";
    c.labels = torch_mlp_relu_ce_labels;
    f = run_case(&c, dirtied(build_mlp_relu_ce(16), 16));
    EXPECT_NO_FAILURES(f);
}

/* b. Linear(5,4)-act-Linear(4,3) [-log_softmax | -softmax] */
enum { TAIL_NONE, TAIL_SOFTMAX, TAIL_LOG_SOFTMAX };
static nn_model *build_small_mlp(int max_batch, nn_activation act, float parameter, int tail, nn_loss loss)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 5, 1, 1);
    h = nn_linear(m, h, 4, NN_BIAS);
    switch (act) {
    case NN_ACTIVATION_RELU: h = nn_relu(m, h); break;
    case NN_ACTIVATION_LEAKY_RELU: h = nn_leaky_relu(m, h, parameter); break;
    case NN_ACTIVATION_SIGMOID: h = nn_sigmoid(m, h); break;
    case NN_ACTIVATION_TANH: h = nn_tanh(m, h); break;
    case NN_ACTIVATION_SCALED_TANH: h = nn_scaled_tanh(m, h); break;
    default: h = NULL; break;
    }
    h = nn_linear(m, h, 3, NN_BIAS);
    if (tail == TAIL_SOFTMAX) h = nn_softmax(m, h);
    if (tail == TAIL_LOG_SOFTMAX) h = nn_log_softmax(m, h);
    return compiled(m, h, loss, max_batch);
}

#define ACTIVATION_TEST(id, act, parameter) \
    static void test_##id(void **state) \
    { \
        torch_case c = TORCH_CASE(id); \
        int f; \
        (void)state; \
        c.labels = torch_##id##_labels; \
        f = run_case(&c, build_small_mlp(c.batch, act, parameter, TAIL_NONE, NN_LOSS_SOFTMAX_CROSS_ENTROPY)); \
        EXPECT_NO_FAILURES(f); \
    }
ACTIVATION_TEST(act_sigmoid, NN_ACTIVATION_SIGMOID, 0.0f)
ACTIVATION_TEST(act_tanh, NN_ACTIVATION_TANH, 0.0f)
ACTIVATION_TEST(act_leaky_relu_001, NN_ACTIVATION_LEAKY_RELU, 0.01f)
ACTIVATION_TEST(act_leaky_relu_02, NN_ACTIVATION_LEAKY_RELU, 0.2f)
ACTIVATION_TEST(act_scaled_tanh, NN_ACTIVATION_SCALED_TANH, 0.0f)

/* NN_LOSS_SOFTMAX_MSE on the logits: MSELoss(softmax(logits), one_hot) */
static void test_softmax_mse(void **state)
{
    torch_case c = TORCH_CASE(softmax_mse);
    int f;
    (void)state;
    c.labels = torch_softmax_mse_labels;
    f = run_case(&c, build_small_mlp(c.batch, NN_ACTIVATION_RELU, 0.0f, TAIL_NONE, NN_LOSS_SOFTMAX_MSE));
    EXPECT_NO_FAILURES(f);
}

/* the same loss built as an nn_softmax node + NN_LOSS_MSE against one-hot float targets:
   same loss and gradients, the output is the probabilities */
static void test_softmax_node_mse(void **state)
{
    torch_case c = TORCH_CASE(softmax_mse);
    int f;
    (void)state;
    c.name = "softmax_node_mse";
    c.output = torch_softmax_mse_probs;
    c.targets = torch_softmax_mse_onehot;
    f = run_case(&c, build_small_mlp(c.batch, NN_ACTIVATION_RELU, 0.0f, TAIL_SOFTMAX, NN_LOSS_MSE));
    EXPECT_NO_FAILURES(f);
}

static void test_log_softmax_nll(void **state)
{
    torch_case c = TORCH_CASE(log_softmax_nll);
    int f;
    (void)state;
    c.labels = torch_log_softmax_nll_labels;
    f = run_case(&c, build_small_mlp(c.batch, NN_ACTIVATION_TANH, 0.0f, TAIL_LOG_SOFTMAX, NN_LOSS_NLL));
    EXPECT_NO_FAILURES(f);
}

/* Linear(1,8)-LeakyReLU(0.01)-Linear(8,1), MSE against float targets */
static void test_mse_regression(void **state)
{
    torch_case c = TORCH_CASE(mse_regression);
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 1, 1, 1);
    int f;
    (void)state;
    h = nn_leaky_relu(m, nn_linear(m, h, 8, NN_BIAS), 0.01f);
    h = nn_linear(m, h, 1, NN_BIAS);
    c.targets = torch_mse_regression_targets;
    f = run_case(&c, compiled(m, h, NN_LOSS_MSE, c.batch));
    EXPECT_NO_FAILURES(f);
}

/* c. 2x9x9 -> conv(3,3,s1,p1) -> maxpool 2 -> relu -> conv(4,3,s2,p1) -> relu -> avgpool 2
   -> flatten -> linear 5 */
static nn_model *build_cnn_with(int max_batch, nn_loss loss)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 2, 9, 9);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 3, 3, 1, 1, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_conv2d(m, h, 4, 3, 2, 1, NN_BIAS));
    h = nn_flatten(m, nn_avgpool2d(m, h, 2, 2));
    h = nn_linear(m, h, 5, NN_BIAS);
    return compiled(m, h, loss, max_batch);
}
static nn_model *build_cnn(int max_batch) { return build_cnn_with(max_batch, NN_LOSS_SOFTMAX_CROSS_ENTROPY); }

static void test_cnn(void **state)
{
    torch_case c = TORCH_CASE(cnn);
    int f;
    (void)state;
    c.labels = torch_cnn_labels;
    f = run_case(&c, build_cnn(c.batch));
    EXPECT_NO_FAILURES(f);
}

static void test_cnn_max_batch_8(void **state)
{
    torch_case c = TORCH_CASE(cnn);
    int f;
    (void)state;
    c.name = "cnn(max_batch 8)";
    c.labels = torch_cnn_labels;
    f = run_case(&c, dirtied(build_cnn(8), 8));
    EXPECT_NO_FAILURES(f);
}

/* 2x7x10 -> conv(3, 3, stride 2, pad 1, no bias) -> 3x4x5 -> flatten, MSE */
static void test_conv_nobias(void **state)
{
    torch_case c = TORCH_CASE(conv_nobias);
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 2, 7, 10);
    int f;
    (void)state;
    h = nn_flatten(m, nn_conv2d(m, h, 3, 3, 2, 1, NN_NO_BIAS));
    c.targets = torch_conv_nobias_targets;
    f = run_case(&c, compiled(m, h, NN_LOSS_MSE, c.batch));
    EXPECT_NO_FAILURES(f);
}

/* d. residual block with batch norm */
static nn_model *build_resblock(int max_batch)
{
    nn_model *m = nn_model_new(1);
    nn_node *x = nn_input(m, 3, 6, 6);
    nn_node *a, *s, *h;
    a = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 4, 3, 1, 1, NN_NO_BIAS)));
    a = nn_batchnorm(m, nn_conv2d(m, a, 4, 3, 1, 1, NN_NO_BIAS));
    s = nn_batchnorm(m, nn_conv2d(m, x, 4, 1, 1, 0, NN_NO_BIAS));
    h = nn_relu(m, nn_add_nodes(m, a, s));
    h = nn_flatten(m, nn_global_avgpool(m, h));
    h = nn_linear(m, h, 3, NN_BIAS);
    return compiled(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch);
}

static void test_resblock(void **state)
{
    torch_case c = TORCH_CASE(resblock);
    int f;
    (void)state;
    c.labels = torch_resblock_labels;
    TORCH_BN(c, resblock);
    f = run_case(&c, build_resblock(c.batch));
    EXPECT_NO_FAILURES(f);
}

/* compiled for 7, run on 7 random samples, then on the case's 4: the batch statistics must
   cover the 4 samples only */
static void test_resblock_max_batch_7(void **state)
{
    torch_case c = TORCH_CASE(resblock);
    int f;
    (void)state;
    c.name = "resblock(max_batch 7)";
    c.labels = torch_resblock_labels;
    TORCH_BN(c, resblock);
    f = run_case(&c, dirtied(build_resblock(7), 7));
    EXPECT_NO_FAILURES(f);
}

/* Linear(6,5)-BatchNorm1d(5)-ReLU-Linear(5,3) */
static nn_model *build_mlp_batchnorm1d(int max_batch)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_input(m, 6, 1, 1);
    h = nn_relu(m, nn_batchnorm(m, nn_linear(m, h, 5, NN_BIAS)));
    h = nn_linear(m, h, 3, NN_BIAS);
    return compiled(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch);
}

static void test_mlp_batchnorm1d(void **state)
{
    torch_case c = TORCH_CASE(mlp_batchnorm1d);
    int f;
    (void)state;
    c.labels = torch_mlp_batchnorm1d_labels;
    TORCH_BN(c, mlp_batchnorm1d);
    f = run_case(&c, build_mlp_batchnorm1d(c.batch));
    EXPECT_NO_FAILURES(f);
}

static void test_mlp_batchnorm1d_max_batch_9(void **state)
{
    torch_case c = TORCH_CASE(mlp_batchnorm1d);
    int f;
    (void)state;
    c.name = "mlp_batchnorm1d(max_batch 9)";
    c.labels = torch_mlp_batchnorm1d_labels;
    TORCH_BN(c, mlp_batchnorm1d);
    f = run_case(&c, dirtied(build_mlp_batchnorm1d(9), 9));
    EXPECT_NO_FAILURES(f);
}

/* ------------------------------------------------------------------ e. optimisers */
/* Three steps on case a's network and batch, params compared after each step with PyTorch's.
   losses: the (mean) loss before each step; losses_sum and grad_sum for NN_GRAD_SUM (then the
   reported loss may be either the mean or the sum: nn.h's header does not say which). */
static int run_optimizer(const char *name, nn_optimizer *opt, const float *traj, const float *losses,
                         const float *losses_sum, const float *grad_sum, int use_train_step)
{
    const size_t p = COUNT(torch_mlp_relu_ce_params);
    const int batch = torch_mlp_relu_ce_batch;
    nn_model *m = build_mlp_relu_ce(batch);
    int f = 0, step;
    char what[96];
    if (!m) { printf("  FAIL %s: the model did not build\n", name); return 1; }
    if (check_count(name, "nn_param_count", nn_param_count(m), p)) { nn_model_free(m); return 1; }
    memcpy(nn_params(m), torch_mlp_relu_ce_params, p * sizeof(float));
    if (losses_sum) nn_set_grad_reduction(m, NN_GRAD_SUM);
    for (step = 0; step < 3; step++) {
        float loss = NAN;
        nn_status st;
        if (use_train_step) {
            st = nn_train_step(m, opt, torch_mlp_relu_ce_x, torch_mlp_relu_ce_labels, NULL, batch, &loss);
            sprintf(what, "nn_train_step %d", step + 1);
            if (check_status(name, what, st)) { f++; break; }
        } else {
            st = nn_forward(m, torch_mlp_relu_ce_x, batch, NN_TRAIN);
            if (st == NN_OK) st = nn_backward(m, torch_mlp_relu_ce_labels, NULL, &loss);
            sprintf(what, "forward/backward before step %d", step + 1);
            if (check_status(name, what, st)) { f++; break; }
            if (step == 0 && grad_sum)
                f += check_close(name, "gradient with NN_GRAD_SUM (= CrossEntropyLoss(reduction='sum'))",
                                 nn_grads(m), grad_sum, p, ATOL, RTOL);
            st = nn_optimizer_step(m, opt);
            sprintf(what, "nn_optimizer_step %d", step + 1);
            if (check_status(name, what, st)) { f++; break; }
        }
        sprintf(what, "loss before step %d", step + 1);
        if (losses_sum) {
            /* either reading of "the loss" under NN_GRAD_SUM is accepted */
            double dm = fabs(loss - losses[step]), ds = fabs(loss - losses_sum[step]);
            if (!(dm <= ATOL + RTOL * fabs(losses[step])) && !(ds <= ATOL + RTOL * fabs(losses_sum[step]))) {
                printf("  FAIL %s %s: got %.9g, PyTorch's mean %.9g, sum %.9g\n", name, what, (double)loss,
                       (double)losses[step], (double)losses_sum[step]);
                f++;
            } else if (verbose()) {
                printf("  ok   %s %s: got %.9g = the %s\n", name, what, (double)loss, dm <= ds ? "mean" : "sum");
            }
        } else {
            f += check_close(name, what, &loss, &losses[step], 1, ATOL, RTOL);
        }
        sprintf(what, "params after step %d", step + 1);
        f += check_close(name, what, nn_params(m), traj + (size_t)step * p, p, ATOL, RTOL);
    }
    if (opt->step != 3) {
        printf("  FAIL %s: optimizer step count %ld after 3 steps\n", name, (long)opt->step);
        f++;
    }
    nn_optimizer_free(opt);
    nn_model_free(m);
    return f;
}

static int check_adam_defaults(const char *name, const nn_optimizer *o)
{
    if (o->beta1 == 0.9f && o->beta2 == 0.999f && o->epsilon == 1e-8f) return 0;
    printf("  FAIL %s: defaults beta1 %.9g beta2 %.9g eps %.9g, PyTorch's are 0.9, 0.999, 1e-8\n", name,
           (double)o->beta1, (double)o->beta2, (double)o->epsilon);
    return 1;
}

static int check_rmsprop_defaults(const char *name, const nn_optimizer *o)
{
    if (o->alpha == 0.99f && o->epsilon == 1e-8f) return 0;
    printf("  FAIL %s: defaults alpha %.9g eps %.9g, PyTorch's are 0.99, 1e-8\n", name, (double)o->alpha,
           (double)o->epsilon);
    return 1;
}

static void test_opt_sgd(void **state)
{
    nn_optimizer o = nn_sgd(torch_opt_sgd_lr, 0.0f, 0.0f);
    int f;
    (void)state;
    f = run_optimizer("opt_sgd", &o, torch_opt_sgd_traj, torch_opt_sgd_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_sgd_momentum(void **state)
{
    nn_optimizer o = nn_sgd(torch_opt_sgd_momentum_lr, torch_opt_sgd_momentum_momentum, 0.0f);
    int f;
    (void)state;
    f = run_optimizer("opt_sgd_momentum", &o, torch_opt_sgd_momentum_traj, torch_opt_sgd_momentum_losses, NULL,
                      NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_sgd_nesterov_wd(void **state)
{
    nn_optimizer o = nn_sgd(torch_opt_sgd_nesterov_wd_lr, torch_opt_sgd_nesterov_wd_momentum,
                            torch_opt_sgd_nesterov_wd_weight_decay);
    int f;
    (void)state;
    o.nesterov = torch_opt_sgd_nesterov_wd_nesterov;
    f = run_optimizer("opt_sgd_nesterov_wd", &o, torch_opt_sgd_nesterov_wd_traj, torch_opt_sgd_nesterov_wd_losses,
                      NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_sgd_dampening_wd(void **state)
{
    nn_optimizer o = nn_sgd(torch_opt_sgd_dampening_wd_lr, torch_opt_sgd_dampening_wd_momentum,
                            torch_opt_sgd_dampening_wd_weight_decay);
    int f;
    (void)state;
    o.dampening = torch_opt_sgd_dampening_wd_dampening;
    f = run_optimizer("opt_sgd_dampening_wd", &o, torch_opt_sgd_dampening_wd_traj,
                      torch_opt_sgd_dampening_wd_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_adam(void **state)
{
    nn_optimizer o = nn_adam(torch_opt_adam_lr, 0.0f);
    int f;
    (void)state;
    f = check_adam_defaults("opt_adam", &o);
    f += run_optimizer("opt_adam", &o, torch_opt_adam_traj, torch_opt_adam_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

/* the Adam trajectory again, through nn_train_step */
static void test_opt_adam_train_step(void **state)
{
    nn_optimizer o = nn_adam(torch_opt_adam_lr, 0.0f);
    int f;
    (void)state;
    f = run_optimizer("opt_adam(nn_train_step)", &o, torch_opt_adam_traj, torch_opt_adam_losses, NULL, NULL, 1);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_adam_wd(void **state)
{
    nn_optimizer o = nn_adam(torch_opt_adam_wd_lr, torch_opt_adam_wd_weight_decay);
    int f;
    (void)state;
    f = run_optimizer("opt_adam_wd", &o, torch_opt_adam_wd_traj, torch_opt_adam_wd_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_adamw(void **state)
{
    nn_optimizer o = nn_adamw(torch_opt_adamw_lr, torch_opt_adamw_weight_decay);
    int f;
    (void)state;
    f = check_adam_defaults("opt_adamw", &o);
    f += run_optimizer("opt_adamw", &o, torch_opt_adamw_traj, torch_opt_adamw_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_rmsprop(void **state)
{
    nn_optimizer o = nn_rmsprop(torch_opt_rmsprop_lr, 0.0f);
    int f;
    (void)state;
    f = check_rmsprop_defaults("opt_rmsprop", &o);
    f += run_optimizer("opt_rmsprop", &o, torch_opt_rmsprop_traj, torch_opt_rmsprop_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

static void test_opt_rmsprop_wd_momentum(void **state)
{
    nn_optimizer o = nn_rmsprop(torch_opt_rmsprop_wd_momentum_lr, torch_opt_rmsprop_wd_momentum_weight_decay);
    int f;
    (void)state;
    o.momentum = torch_opt_rmsprop_wd_momentum_momentum;
    f = run_optimizer("opt_rmsprop_wd_momentum", &o, torch_opt_rmsprop_wd_momentum_traj,
                      torch_opt_rmsprop_wd_momentum_losses, NULL, NULL, 0);
    EXPECT_NO_FAILURES(f);
}

/* NN_GRAD_SUM: gradients of CrossEntropyLoss(reduction='sum'), then SGD */
static void test_opt_sgd_sum(void **state)
{
    nn_optimizer o = nn_sgd(torch_opt_sgd_sum_lr, 0.0f, 0.0f);
    int f;
    (void)state;
    f = run_optimizer("opt_sgd_sum", &o, torch_opt_sgd_sum_traj, torch_opt_sgd_sum_losses,
                      torch_opt_sgd_sum_losses_sum, torch_opt_sgd_sum_grad, 0);
    EXPECT_NO_FAILURES(f);
}

/* ------------------------------------------------------------------ f. custom loss, freezing */
/* A focal loss written here: mean over the batch of -(1 - p_t)^gamma log p_t, p = softmax of the
   output, and its gradient with respect to the output worked out by hand:
       dL/dp_t = gamma (1 - p_t)^(gamma-1) log p_t - (1 - p_t)^gamma / p_t
       dL/dz_j = dL/dp_t * p_t * ([j = label] - p_j) / batch
   fed to nn_backward_from on case cnn's network compiled with NN_LOSS_NONE; then one SGD step. */
static void test_focal_loss_cnn(void **state)
{
    const int batch = torch_cnn_batch, K = 5;
    const double gamma = torch_focal_cnn_gamma;
    nn_model *m = build_cnn_with(batch, NN_LOSS_NONE);
    nn_optimizer o = nn_sgd(torch_focal_cnn_lr, 0.0f, 0.0f);
    float dy[3 * 5], loss;
    double total = 0.0;
    const char *n = "focal_cnn";
    int f = 0, r, j;
    (void)state;
    if (!m) fail_msg("the model did not build");
    if (check_count(n, "nn_param_count", nn_param_count(m), COUNT(torch_focal_cnn_grad))) fail_msg("layouts differ");
    memcpy(nn_params(m), torch_cnn_params, sizeof torch_cnn_params);
    nn_set_input_gradient(m, 1);
    if (check_status(n, "nn_forward(NN_TRAIN)", nn_forward(m, torch_cnn_x, batch, NN_TRAIN))) fail_msg("forward failed");
    for (r = 0; r < batch; r++) {
        const float *z = nn_output(m) + (size_t)r * K;
        const int label = torch_cnn_labels[r];
        double top = z[0], sum = 0.0, p[5], pt, dpt;
        for (j = 1; j < K; j++)
            if (z[j] > top) top = z[j];
        for (j = 0; j < K; j++) {
            p[j] = exp((double)z[j] - top);
            sum += p[j];
        }
        for (j = 0; j < K; j++) p[j] /= sum;
        pt = p[label];
        total += -pow(1.0 - pt, gamma) * log(pt);
        dpt = gamma * pow(1.0 - pt, gamma - 1.0) * log(pt) - pow(1.0 - pt, gamma) / pt;
        for (j = 0; j < K; j++) dy[r * K + j] = (float)(dpt * pt * ((j == label) - p[j]) / batch);
    }
    loss = (float)(total / batch);
    f += check_close(n, "focal loss (computed here from nn_output)", &loss, &torch_focal_cnn_loss, 1, ATOL, RTOL);
    if (check_status(n, "nn_backward_from", nn_backward_from(m, dy))) fail_msg("nn_backward_from failed");
    f += check_close(n, "gradient of the parameters", nn_grads(m), torch_focal_cnn_grad, COUNT(torch_focal_cnn_grad), ATOL, RTOL);
    f += check_close(n, "gradient of the input", nn_input_gradient(m), torch_focal_cnn_dx, COUNT(torch_focal_cnn_dx), ATOL, RTOL);
    f += check_status(n, "nn_optimizer_step", nn_optimizer_step(m, &o));
    f += check_close(n, "params after one SGD step", nn_params(m), torch_focal_cnn_params_after,
                     COUNT(torch_focal_cnn_params_after), ATOL, RTOL);
    /* the model has no loss of its own: the built-in training calls refuse */
    if (nn_train_step(m, &o, torch_cnn_x, torch_cnn_labels, NULL, batch, NULL) != NN_ERROR_STATE) {
        printf("  FAIL %s: nn_train_step on an NN_LOSS_NONE model did not return NN_ERROR_STATE\n", n);
        f++;
    }
    nn_optimizer_free(&o);
    nn_model_free(m);
    EXPECT_NO_FAILURES(f);
}

/* Three nn_train_steps with the layers nn_layer(m, frozen[i]) frozen, against PyTorch's
   trajectory with the same modules at requires_grad False. After every step: the other
   parameters within tolerance; the frozen ones bit-identical to their start, their slice of
   nn_grads 0 and their optimiser state 0 (weight decay is on in every case); after the last,
   the running statistics (batch norm still updates them, as PyTorch does). */
static int run_frozen(const char *name, nn_model *m, const float *params, const int *frozen, int frozen_count,
                      nn_optimizer *o, const float *x, const int *labels, int batch, const float *traj,
                      const float *state_after)
{
    const size_t p = nn_param_count(m);
    size_t trainable = p, at[4], len[4];
    int f = 0, step, i;
    char what[128];
    for (i = 0; i < frozen_count; i++) {
        nn_node *layer = nn_layer(m, frozen[i]);
        size_t wn = 0, bn = 0;
        float *w = nn_node_weights(m, layer, &wn);
        (void)nn_node_bias(m, layer, &bn);
        at[i] = (size_t)(w - nn_params(m));
        len[i] = wn + bn;
        trainable -= len[i];
        f += check_status(name, "nn_set_trainable", nn_set_trainable(layer, 0));
    }
    f += check_count(name, "nn_trainable_param_count", nn_trainable_param_count(m), trainable);
    memcpy(nn_params(m), params, p * sizeof(float));
    for (step = 0; step < 3 && !f; step++) {
        const size_t states = o->kind == NN_OPTIMIZER_SGD ? 1 : 2;
        size_t k, s;
        sprintf(what, "nn_train_step %d", step + 1);
        if (check_status(name, what, nn_train_step(m, o, x, labels, NULL, batch, NULL))) { f++; break; }
        sprintf(what, "params after step %d", step + 1);
        f += check_close(name, what, nn_params(m), traj + (size_t)step * p, p, ATOL, RTOL);
        for (i = 0; i < frozen_count; i++) {
            if (memcmp(nn_params(m) + at[i], params + at[i], len[i] * sizeof(float)) != 0) {
                printf("  FAIL %s: frozen layer %d moved in step %d\n", name, frozen[i], step + 1);
                f++;
            }
            for (k = 0; k < len[i]; k++) {
                int bad = nn_grads(m)[at[i] + k] != 0.0f;
                for (s = 0; s < states; s++) bad |= o->state[s * p + at[i] + k] != 0.0f;
                if (bad) {
                    printf("  FAIL %s: frozen layer %d has a gradient or optimiser state after step %d\n", name,
                           frozen[i], step + 1);
                    f++;
                    break;
                }
            }
        }
    }
    if (state_after) f += check_close(name, "running stats after 3 steps", nn_state(m), state_after, nn_state_count(m), ATOL, RTOL);
    nn_optimizer_free(o);
    nn_model_free(m);
    return f;
}

/* The four optimisers of the freezing fixtures, weight decay on in each. */
#define FROZEN_OPTIMIZERS(run, id) do { \
        nn_optimizer sgd = nn_sgd(torch_freeze_##id##_sgd_lr, torch_freeze_##id##_sgd_momentum, \
                                  torch_freeze_##id##_sgd_weight_decay); \
        nn_optimizer adam = nn_adam(torch_freeze_##id##_adam_lr, torch_freeze_##id##_adam_weight_decay); \
        nn_optimizer adamw = nn_adamw(torch_freeze_##id##_adamw_lr, torch_freeze_##id##_adamw_weight_decay); \
        nn_optimizer rmsprop = nn_rmsprop(torch_freeze_##id##_rmsprop_lr, torch_freeze_##id##_rmsprop_weight_decay); \
        rmsprop.momentum = torch_freeze_##id##_rmsprop_momentum; \
        f += run(#id "(sgd)", &sgd, torch_freeze_##id##_sgd_traj); \
        f += run(#id "(adam)", &adam, torch_freeze_##id##_adam_traj); \
        f += run(#id "(adamw)", &adamw, torch_freeze_##id##_adamw_traj); \
        f += run(#id "(rmsprop)", &rmsprop, torch_freeze_##id##_rmsprop_traj); \
    } while (0)

static int run_frozen_mlp(const char *name, int frozen_layer, nn_optimizer *o, const float *traj)
{
    return run_frozen(name, build_mlp_relu_ce(torch_mlp_relu_ce_batch), torch_mlp_relu_ce_params, &frozen_layer, 1, o,
                      torch_mlp_relu_ce_x, torch_mlp_relu_ce_labels, torch_mlp_relu_ce_batch, traj, NULL);
}
static int run_frozen_middle(const char *name, nn_optimizer *o, const float *traj) { return run_frozen_mlp(name, 1, o, traj); }
static int run_frozen_first(const char *name, nn_optimizer *o, const float *traj) { return run_frozen_mlp(name, 0, o, traj); }

/* the middle linear layer frozen: its input gradient still reaches the first layer */
static void test_freeze_mlp_middle(void **state)
{
    int f = 0;
    (void)state;
    FROZEN_OPTIMIZERS(run_frozen_middle, mlp_middle);
    EXPECT_NO_FAILURES(f);
}

/* the first linear layer frozen: its backward is skipped */
static void test_freeze_mlp_first(void **state)
{
    int f = 0;
    (void)state;
    FROZEN_OPTIMIZERS(run_frozen_first, mlp_first);
    EXPECT_NO_FAILURES(f);
}

/* the batch norm of Linear-BatchNorm1d-ReLU-Linear frozen: gamma and beta stay, the running
   statistics move as in PyTorch's train mode */
static void test_freeze_batchnorm1d(void **state)
{
    nn_optimizer o = nn_sgd(torch_freeze_batchnorm1d_sgd_lr, torch_freeze_batchnorm1d_sgd_momentum,
                            torch_freeze_batchnorm1d_sgd_weight_decay);
    const int frozen = 1;
    int f;
    (void)state;
    f = run_frozen("batchnorm1d(sgd)", build_mlp_batchnorm1d(torch_mlp_batchnorm1d_batch), torch_mlp_batchnorm1d_params,
                   &frozen, 1, &o, torch_mlp_batchnorm1d_x, torch_mlp_batchnorm1d_labels, torch_mlp_batchnorm1d_batch,
                   torch_freeze_batchnorm1d_sgd_traj, torch_freeze_batchnorm1d_sgd_state);
    EXPECT_NO_FAILURES(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mlp_relu_ce),
    cmocka_unit_test(test_mlp_relu_ce_max_batch_16),
    cmocka_unit_test(test_act_sigmoid),
    cmocka_unit_test(test_act_tanh),
    cmocka_unit_test(test_act_leaky_relu_001),
    cmocka_unit_test(test_act_leaky_relu_02),
    cmocka_unit_test(test_act_scaled_tanh),
    cmocka_unit_test(test_softmax_mse),
    cmocka_unit_test(test_softmax_node_mse),
    cmocka_unit_test(test_log_softmax_nll),
    cmocka_unit_test(test_mse_regression),
    cmocka_unit_test(test_cnn),
    cmocka_unit_test(test_cnn_max_batch_8),
    cmocka_unit_test(test_conv_nobias),
    cmocka_unit_test(test_resblock),
    cmocka_unit_test(test_resblock_max_batch_7),
    cmocka_unit_test(test_mlp_batchnorm1d),
    cmocka_unit_test(test_mlp_batchnorm1d_max_batch_9),
    cmocka_unit_test(test_opt_sgd),
    cmocka_unit_test(test_opt_sgd_momentum),
    cmocka_unit_test(test_opt_sgd_nesterov_wd),
    cmocka_unit_test(test_opt_sgd_dampening_wd),
    cmocka_unit_test(test_opt_adam),
    cmocka_unit_test(test_opt_adam_train_step),
    cmocka_unit_test(test_opt_adam_wd),
    cmocka_unit_test(test_opt_adamw),
    cmocka_unit_test(test_opt_rmsprop),
    cmocka_unit_test(test_opt_rmsprop_wd_momentum),
    cmocka_unit_test(test_opt_sgd_sum),
    cmocka_unit_test(test_focal_loss_cnn),
    cmocka_unit_test(test_freeze_mlp_middle),
    cmocka_unit_test(test_freeze_mlp_first),
    cmocka_unit_test(test_freeze_batchnorm1d),
};

NN_TEST_MAIN("torch", tests)
