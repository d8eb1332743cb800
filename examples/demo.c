/* demo: the ENGR 510 homework's model A (784-64-32-10, ReLU, Adam 1e-3, batch 64) on MNIST for 5
   epochs, inputs normalised by the training set's mean and std; prints the test accuracy and the
   time. `make demo` fetches MNIST, builds this and runs it. */
#define NN_IMPLEMENTATION
#include "common.h"

static int log_epoch(const nn_epoch_report *r, void *user)
{
    ex_log_epoch((const char *)user, r);
    return 0;
}

int main(int argc, char **argv)
{
    ex_options o = {0};
    nn_dataset train, test;
    double mean, std, t0;
    nn_model *m;
    nn_node *x, *h;
    nn_optimizer opt;
    nn_fit_options fit;
    nn_metrics metrics;
    ex_run run;

    o.name = "demo";
    o.epochs = 5;
    o.seed = 42;
    ex_parse(argc, argv, &o, "Trains a 784-64-32-10 MLP (Adam 1e-3, batch 64) on MNIST and prints the test accuracy.",
             NULL, 0);
    ex_load_mnist(&o, &train, &test);
    if (o.quick) {
        ex_truncate(&train, 10000);
        if (!o.epochs_given) o.epochs = 1;
    }
    nn_dataset_stats(&train, &mean, &std);
    nn_dataset_normalize(&train, mean, std);
    nn_dataset_normalize(&test, mean, std);

    m = nn_model_new(o.seed);
    x = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_linear(m, x, 64, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 32, NN_BIAS));
    ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 64, "784-64-32-10 MLP");
    fprintf(stderr, "backend %s, %d thread(s), %zu parameters, %d epochs\n", nn_backend_name(), nn_threads(),
            nn_param_count(m), o.epochs);
    opt = nn_adam(1e-3f, 0.0f);
    ex_run_begin(&run, &o, NULL, m, &opt, NULL);
    ex_run_resume(&run);
    fit = nn_fit_defaults(o.epochs, 64);
    fit.seed = o.seed;
    fit.on_epoch = log_epoch;
    fit.user = (void *)"demo";
    t0 = nn_seconds();
    ex_run_fit(&run, &train, &fit, NULL);
    ex_check(nn_evaluate(m, &test, &metrics), "evaluation");
    ex_result(&o, "demo", "test_acc=%.2f seconds=%.2f", metrics.accuracy, nn_seconds() - t0);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
