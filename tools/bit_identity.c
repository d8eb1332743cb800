/* tools/bit_identity.c - a fingerprint of training, to prove that a refactor changes no bit.

   Trains every seed network of bench/models.h plus a model that uses every other op (batch
   norm, dropout, average pooling, every activation, softmax/log-softmax, each loss) for a few
   steps on synthetic data, through nn_train_step, nn_fit (validation, early stopping) and
   nn_train_epoch, with each optimiser, and prints one line per run: the loss of every step and
   an FNV-1a hash of the parameters, the batch-norm state and the last output. Run it before and
   after a change on the same backend and thread count; the lines must be equal.

       make bit-identity            # every backend this CPU has, 1 and 2 threads
       build/tools/bit_identity     # the current backend (NN_BACKEND) and thread count */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"

#include <stdio.h>
#include <string.h>

static uint64_t fnv1a(uint64_t h, const void *data, size_t bytes)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    for (i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t model_hash(nn_model *m, int count)
{
    uint64_t h = 14695981039346656037ull;
    h = fnv1a(h, nn_params(m), nn_param_count(m) * sizeof(float));
    if (nn_state_count(m)) h = fnv1a(h, nn_state(m), nn_state_count(m) * sizeof(float));
    h = fnv1a(h, nn_output(m), (size_t)count * (size_t)nn_output_size(m) * sizeof(float));
    return h;
}

/* Every op and loss not in the seed networks. */
static nn_model *all_ops_model(uint64_t seed, int batch, nn_loss loss, int head)
{
    nn_model *m = nn_model_new(seed);
    nn_node *x = nn_input(m, 3, 12, 12), *a, *b, *h;
    a = nn_leaky_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 8, 3, 1, 1, NN_BIAS)), 0.1f);
    b = nn_tanh(m, nn_conv2d(m, x, 8, 1, 1, 0, NN_NO_BIAS));
    h = nn_add_nodes(m, a, b);
    h = nn_avgpool2d(m, nn_maxpool2d(m, h, 3, 1), 2, 2);
    h = nn_scaled_tanh(m, nn_conv2d(m, h, 6, 3, 2, 1, NN_BIAS));
    h = nn_dropout(m, nn_flatten(m, h), 0.25f);
    h = nn_sigmoid(m, nn_batchnorm(m, nn_linear(m, h, 24, NN_BIAS)));
    h = nn_linear(m, nn_relu(m, nn_linear(m, h, 16, NN_NO_BIAS)), 10, NN_BIAS);
    if (head == 1) h = nn_log_softmax(m, h);
    if (head == 2) h = nn_softmax(m, h);
    if (nn_compile(m, h, loss, batch) != NN_OK) {
        fprintf(stderr, "bit_identity: %s\n", nn_last_error());
        nn_model_free(m);
        return NULL;
    }
    return m;
}

static void fill(nn_rng *rng, float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = nn_rng_normal(rng);
}

static int run_steps(const char *name, nn_model *m, nn_optimizer opt, int steps, int batch, int mse)
{
    nn_rng rng = nn_rng_new(7);
    size_t in = (size_t)nn_input_size(m), out = (size_t)nn_output_size(m);
    float *x = (float *)malloc(in * (size_t)batch * sizeof(float));
    float *t = (float *)malloc(out * (size_t)batch * sizeof(float));
    int *labels = (int *)malloc((size_t)batch * sizeof(int));
    int s, i, ok = 1;
    if (!m || !x || !t || !labels) ok = 0;
    printf("%-16s", name);
    for (s = 0; ok && s < steps; s++) {
        float loss = 0.0f;
        fill(&rng, x, in * (size_t)batch);
        fill(&rng, t, out * (size_t)batch);
        for (i = 0; i < batch; i++) labels[i] = (int)nn_rng_below(&rng, (uint32_t)out);
        if (nn_train_step(m, &opt, x, mse ? NULL : labels, mse ? t : NULL, batch - (s & 1), &loss) != NN_OK) {
            printf(" error: %s", nn_last_error());
            ok = 0;
        } else {
            printf(" %.9g", (double)loss);
        }
    }
    if (ok) {
        ok = nn_forward(m, x, batch, NN_EVAL) == NN_OK;
        printf(" hash %016llx\n", ok ? (unsigned long long)model_hash(m, batch) : 0ull);
    } else {
        printf("\n");
    }
    nn_optimizer_free(&opt);
    nn_model_free(m);
    free(x);
    free(t);
    free(labels);
    return ok;
}

static int on_epoch(const nn_epoch_report *r, void *user)
{
    (void)user;
    printf(" e%d %.9g %.9g %.9g", r->epoch, r->train_loss, r->val_loss, r->val_accuracy);
    return 0;
}

static int run_fit(const char *name, nn_model *m, nn_optimizer opt, int use_epoch)
{
    nn_dataset train, val;
    nn_rng rng = nn_rng_new(11);
    int ok = m != NULL, i;
    memset(&train, 0, sizeof train);
    memset(&val, 0, sizeof val);
    printf("%-16s", name);
    if (ok) ok = nn_dataset_alloc(&train, 300, 1, 28, 28, 10, 0) == NN_OK && nn_dataset_alloc(&val, 100, 1, 28, 28, 10, 0) == NN_OK;
    if (ok) {
        fill(&rng, train.x, (size_t)train.count * 784);
        fill(&rng, val.x, (size_t)val.count * 784);
        for (i = 0; i < train.count; i++) train.labels[i] = (int)nn_rng_below(&rng, 10);
        for (i = 0; i < val.count; i++) val.labels[i] = (int)nn_rng_below(&rng, 10);
    }
    if (ok && use_epoch) {
        nn_rng order = nn_rng_new(5);
        nn_metrics metrics;
        for (i = 0; ok && i < 2; i++) {
            ok = nn_train_epoch(m, &opt, &train, 32, &order, 0, NULL, NULL, &metrics) == NN_OK;
            if (ok) printf(" %.9g %.9g", metrics.loss, metrics.accuracy);
        }
    } else if (ok) {
        nn_fit_options fit = nn_fit_defaults(3, 32);
        nn_fit_result res;
        fit.validation = &val;
        fit.checks_per_epoch = 2;
        fit.patience = 3;
        fit.progress = 0;
        fit.on_epoch = on_epoch;
        ok = nn_fit(m, &opt, &train, &fit, &res) == NN_OK;
        if (ok) printf(" epochs %d steps %lld best %.9g", res.epochs, (long long)res.steps, res.best_val_loss);
    }
    if (ok) {
        nn_metrics metrics;
        ok = nn_evaluate(m, &val, &metrics) == NN_OK;
        if (ok) printf(" eval %.9g %.9g hash %016llx\n", metrics.loss, metrics.accuracy, (unsigned long long)model_hash(m, 32));
    }
    if (!ok) printf(" error: %s\n", nn_last_error());
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    return ok;
}

int main(void)
{
    int ok = 1;
    nn_optimizer rms = nn_rmsprop(1e-3f, 1e-4f), sgd_nesterov = nn_sgd(0.05f, 0.9f, 1e-4f);
    rms.momentum = 0.5f;
    sgd_nesterov.nesterov = 1;
    printf("backend %s threads %d\n", nn_backend_name(), nn_threads());
    ok &= run_steps("mlp_relu", bm_mlp_relu(1, 64), nn_adam(1e-3f, 0.0f), 4, 64, 0);
    ok &= run_steps("mlp_sigmoid", bm_mlp_sigmoid(2, 32), nn_sgd(0.1f, 0.0f, 0.0f), 4, 32, 0);
    ok &= run_steps("lenet", bm_lenet(3, 64), nn_sgd(0.01f, 0.9f, 0.0f), 4, 64, 0);
    ok &= run_steps("resnet18", bm_resnet18(4, 8), nn_sgd(0.01f, 0.9f, 0.0f), 2, 8, 0);
    ok &= run_steps("all_ops_ce", all_ops_model(5, 16, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 0), nn_adamw(1e-3f, 1e-2f), 4, 16, 0);
    ok &= run_steps("all_ops_nll", all_ops_model(6, 16, NN_LOSS_NLL, 1), rms, 4, 16, 0);
    ok &= run_steps("all_ops_mse", all_ops_model(7, 16, NN_LOSS_MSE, 2), sgd_nesterov, 4, 16, 1);
    ok &= run_steps("all_ops_smse", all_ops_model(8, 16, NN_LOSS_SOFTMAX_MSE, 0), nn_adam(1e-3f, 1e-3f), 4, 16, 0);
    ok &= run_fit("fit_lenet", bm_lenet(9, 32), nn_sgd(0.01f, 0.9f, 0.0f), 0);
    ok &= run_fit("fit_mlp", bm_mlp_relu(10, 32), nn_adam(1e-3f, 0.0f), 0);
    ok &= run_fit("epoch_lenet", bm_lenet(11, 32), nn_sgd(0.01f, 0.9f, 0.0f), 1);
    return ok ? 0 : 1;
}
