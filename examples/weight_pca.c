/* weight_pca: Homework 1, HW1-2 "visualise the optimisation process". An MLP with 3 dense layers
   (784-10-20-10, ReLU: 8 240 weights, 8 280 parameters with the biases) is trained on MNIST 8
   times from different seeds with Adam lr 4e-4, batch 1000, for 45 epochs; every 3 epochs all
   of its weights are collected. PCA reduces the 120 collected weight vectors (all runs together)
   to 2-D, once for the whole model and once for the first layer alone; the scatter plots show
   the 8 trajectories annotated with the test accuracy at each point.

   From the report: the layer count, 8 240 weights, Adam 4e-4, batch 1000, 45 epochs, every 3
   epochs, 8 runs, cross-entropy, ReLU. From its notebook (hw1/HW1_2_PCA.ipynb): the widths
   784-10-20-10 (whose weights, biases left out, are exactly the 8 240), weight decay 1e-4,
   inputs scaled to [0, 1] (ToTensor), PCA over all runs' snapshots together. PCA here: the
   snapshots are centred, their Gram matrix (120 x 120, in double) is diagonalised by cyclic
   Jacobi rotations, and each component's sign is fixed as scikit-learn's svd_flip does (the
   largest |score| is positive). */
#define NN_IMPLEMENTATION
#include "common.h"

typedef struct run_state {
    int run, every, snapshots, max_snapshots;
    size_t whole_size;
    float *whole;      /* [max_snapshots][whole_size] */
    int *epoch_of;     /* [max_snapshots] */
    double *acc_of;    /* test accuracy at each snapshot */
    double *loss_of;   /* test loss at each snapshot */
    nn_model *model;
    FILE *csv;
    char variant[32];
} run_state;

static int on_epoch(const nn_epoch_report *r, void *user)
{
    run_state *s = (run_state *)user;
    fprintf(s->csv, "%d,%.6f,%.4f,%.6f,%.4f\n", r->epoch, r->train_loss, r->train_accuracy, r->val_loss,
            r->val_accuracy);
    ex_log_epoch(s->variant, r);
    if (r->epoch % s->every == 0 && s->snapshots < s->max_snapshots) {
        size_t n = nn_weights_gather(s->model, s->whole + (size_t)s->snapshots * s->whole_size);
        if (n != s->whole_size) {
            fprintf(stderr, "weight_pca: gathered %zu weights, expected %zu\n", n, s->whole_size);
            exit(1);
        }
        s->epoch_of[s->snapshots] = r->epoch;
        s->acc_of[s->snapshots] = r->val_accuracy;
        s->loss_of[s->snapshots] = r->val_loss;
        s->snapshots++;
    }
    return 0;
}

/* Eigen-decomposition of the symmetric n x n matrix a (destroyed) by cyclic Jacobi rotations:
   values[k] and the column k of vectors (n x n, row-major) are the k-th pair, unsorted. */
static void jacobi_eigen(int n, double *a, double *values, double *vectors)
{
    int i, j, k, sweep;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) vectors[i * n + j] = i == j;
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                total += a[i * n + j] * a[i * n + j];
                if (i != j) off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * total || off == 0) break;
        for (i = 0; i < n - 1; i++)
            for (j = i + 1; j < n; j++) {
                double aij = a[i * n + j], theta, t, c, s;
                if (fabs(aij) < 1e-300) continue;
                theta = (a[j * n + j] - a[i * n + i]) / (2.0 * aij);
                t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                c = 1.0 / sqrt(t * t + 1.0);
                s = t * c;
                for (k = 0; k < n; k++) { /* columns i, j */
                    double aki = a[k * n + i], akj = a[k * n + j];
                    a[k * n + i] = c * aki - s * akj;
                    a[k * n + j] = s * aki + c * akj;
                }
                for (k = 0; k < n; k++) { /* rows i, j */
                    double aik = a[i * n + k], ajk = a[j * n + k];
                    a[i * n + k] = c * aik - s * ajk;
                    a[j * n + k] = s * aik + c * ajk;
                }
                for (k = 0; k < n; k++) {
                    double vki = vectors[k * n + i], vkj = vectors[k * n + j];
                    vectors[k * n + i] = c * vki - s * vkj;
                    vectors[k * n + j] = s * vki + c * vkj;
                }
            }
    }
    for (i = 0; i < n; i++) values[i] = a[i * n + i];
}

/* PCA of n snapshots of which only columns [offset, offset+d) of each row (row stride `stride`)
   are used: scores (n x 2) of the first two components and their explained-variance ratios. */
static void pca2(int n, size_t d, size_t offset, size_t stride, const float *rows, double *scores, double ratio[2])
{
    double *mean = (double *)calloc(d, sizeof(double)), *centred = (double *)malloc((size_t)n * d * sizeof(double));
    double *gram = (double *)malloc((size_t)n * n * sizeof(double)), *values = (double *)malloc((size_t)n * sizeof(double));
    double *vectors = (double *)malloc((size_t)n * n * sizeof(double)), trace = 0;
    int i, j, k, best[2] = {-1, -1};
    size_t c;
    if (!mean || !centred || !gram || !values || !vectors) {
        fprintf(stderr, "weight_pca: out of memory for the PCA\n");
        exit(1);
    }
    for (i = 0; i < n; i++)
        for (c = 0; c < d; c++) mean[c] += rows[(size_t)i * stride + offset + c];
    for (c = 0; c < d; c++) mean[c] /= n;
    for (i = 0; i < n; i++)
        for (c = 0; c < d; c++) centred[(size_t)i * d + c] = rows[(size_t)i * stride + offset + c] - mean[c];
    for (i = 0; i < n; i++)
        for (j = i; j < n; j++) {
            double s = 0;
            const double *a = centred + (size_t)i * d, *b = centred + (size_t)j * d;
            for (c = 0; c < d; c++) s += a[c] * b[c];
            gram[i * n + j] = gram[j * n + i] = s;
        }
    for (i = 0; i < n; i++) trace += gram[i * n + i];
    jacobi_eigen(n, gram, values, vectors);
    for (k = 0; k < 2; k++)
        for (i = 0; i < n; i++)
            if ((k == 0 || i != best[0]) && (best[k] < 0 || values[i] > values[best[k]])) best[k] = i;
    for (k = 0; k < 2; k++) {
        double lambda = values[best[k]] > 0 ? values[best[k]] : 0, sign = 1, biggest = 0;
        for (i = 0; i < n; i++) /* svd_flip: the entry of largest magnitude is positive */
            if (fabs(vectors[i * n + best[k]]) > fabs(biggest)) biggest = vectors[i * n + best[k]];
        if (biggest < 0) sign = -1;
        for (i = 0; i < n; i++) scores[i * 2 + k] = sign * sqrt(lambda) * vectors[i * n + best[k]];
        ratio[k] = trace > 0 ? lambda / trace : 0;
    }
    free(mean);
    free(centred);
    free(gram);
    free(values);
    free(vectors);
}

int main(int argc, char **argv)
{
    ex_options o = {0};
    int runs = 8, every = 3, batch = 1000, train_subset = 0, r, i, total = 0, per_run;
    float lr = 4e-4f, weight_decay = 1e-4f;
    nn_dataset train, test;
    size_t whole_size = 0, layer1_size = 0;
    float *snapshots;
    int *epoch_of, *run_of;
    double *acc_of, *loss_of, *scores_whole, *scores_layer1, ratio_whole[2], ratio_layer1[2];
    double *final_acc, *final_loss, *final_train_acc, *run_seconds;
    size_t *param_count;
    FILE *f;
    ex_flag flags[] = {
        {"--runs", EX_INT, &runs, "training runs from different seeds (seed, seed+1, ...; default 8)"},
        {"--every", EX_INT, &every, "collect the weights every this many epochs (default 3)"},
        {"--batch", EX_INT, &batch, "batch size (default 1000)"},
        {"--lr", EX_FLOAT, &lr, "Adam learning rate (default 4e-4)"},
        {"--weight-decay", EX_FLOAT, &weight_decay, "Adam weight decay (default 1e-4, the report notebook's)"},
        {"--train-subset", EX_INT, &train_subset, "train on the first N images only (default 0 = all 60000)"},
    };
    const int n_flags = (int)(sizeof flags / sizeof flags[0]);
    o.name = "weight_pca";
    o.epochs = 45;
    o.seed = 1;
    ex_parse(argc, argv, &o,
             "Trains a 784-10-20-10 ReLU MLP (8240 weights) on MNIST 8 times (Adam 4e-4, weight decay 1e-4,\n"
             "batch 1000, 45 epochs, inputs scaled to [0, 1]), collects its weights every 3 epochs and reduces\n"
             "them to 2-D by PCA (all runs together), for the whole model and for the first layer. Writes\n"
             "run<k>.csv (epoch,train_loss,train_acc,val_loss,val_acc; val = the test set), pca_whole.csv and\n"
             "pca_layer1.csv (run,epoch,pc1,pc2,test_acc,test_loss). 1 thread unless --threads or NN_THREADS.",
             flags, n_flags);
    if (runs < 1 || every < 1 || batch < 1 || !(lr > 0) || !(weight_decay >= 0) || train_subset < 0) {
        fprintf(stderr, "weight_pca: --runs, --every and --batch must be positive, --lr > 0, the others >= 0\n\n");
        ex_usage(stderr, &o, "", flags, n_flags);
        return 2;
    }
    if (o.quick) {
        if (!o.epochs_given) o.epochs = 6;
        if (!train_subset) train_subset = 10000;
        if (runs > 3) runs = 3;
    }
    if (o.epochs / every < 1) {
        fprintf(stderr, "weight_pca: --epochs %d collects no snapshot at --every %d\n\n", o.epochs, every);
        ex_usage(stderr, &o, "", flags, n_flags);
        return 2;
    }
    per_run = o.epochs / every;
    if (runs * per_run < 3) {
        fprintf(stderr, "weight_pca: %d snapshot(s) in all: PCA needs at least 3\n", runs * per_run);
        return 2;
    }
    /* A model this small gains nothing from the kernels' threads (and loses much on a busy
       machine), so one thread is the default here. */
    if (o.threads == 0 && !getenv("NN_THREADS")) ex_check(nn_set_threads(1), "nn_set_threads");
    ex_load_mnist(&o, &train, &test);
    if (train_subset) ex_truncate(&train, train_subset);
    nn_dataset_scale(&train, 1.0 / 255.0);
    nn_dataset_scale(&test, 1.0 / 255.0);
    if (batch > train.count) batch = train.count;

    final_acc = (double *)calloc((size_t)runs, sizeof(double));
    final_loss = (double *)calloc((size_t)runs, sizeof(double));
    final_train_acc = (double *)calloc((size_t)runs, sizeof(double));
    run_seconds = (double *)calloc((size_t)runs, sizeof(double));
    param_count = (size_t *)calloc((size_t)runs, sizeof(size_t));
    epoch_of = (int *)calloc((size_t)runs * per_run, sizeof(int));
    run_of = (int *)calloc((size_t)runs * per_run, sizeof(int));
    acc_of = (double *)calloc((size_t)runs * per_run, sizeof(double));
    loss_of = (double *)calloc((size_t)runs * per_run, sizeof(double));
    snapshots = NULL;
    if (!final_acc || !final_loss || !final_train_acc || !run_seconds || !param_count || !epoch_of || !run_of ||
        !acc_of || !loss_of) {
        fprintf(stderr, "weight_pca: out of memory\n");
        return 1;
    }

    for (r = 0; r < runs; r++) {
        nn_model *m = nn_model_new(o.seed + (uint64_t)r);
        nn_node *x = nn_input(m, 1, 28, 28), *h;
        nn_optimizer opt;
        nn_fit_options fit;
        nn_metrics train_metrics, test_metrics;
        run_state s;
        ex_run run;
        char file[64];
        double t0;
        h = nn_relu(m, nn_linear(m, nn_flatten(m, x), 10, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 20, NN_BIAS));
        ex_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, batch, "784-10-20-10 MLP");
        if (r == 0) {
            size_t n1 = 0;
            whole_size = nn_weights_gather(m, NULL);
            nn_node_weights(m, nn_layer(m, 0), &n1);
            layer1_size = n1;
            snapshots = (float *)malloc((size_t)runs * per_run * whole_size * sizeof(float));
            if (!snapshots) {
                fprintf(stderr, "weight_pca: out of memory for the snapshots\n");
                return 1;
            }
            fprintf(stderr, "weight_pca: %zu parameters (%zu weights, first layer %zu), %d runs x %d epochs, "
                            "%d training images, backend %s, %d thread(s)\n",
                    nn_param_count(m), whole_size, layer1_size, runs, o.epochs, train.count, nn_backend_name(),
                    nn_threads());
        }
        param_count[r] = nn_param_count(m);
        memset(&s, 0, sizeof s);
        s.run = r;
        s.every = every;
        s.max_snapshots = per_run;
        s.whole_size = whole_size;
        s.whole = snapshots + (size_t)r * per_run * whole_size;
        s.epoch_of = epoch_of + r * per_run;
        s.acc_of = acc_of + r * per_run;
        s.loss_of = loss_of + r * per_run;
        s.model = m;
        snprintf(s.variant, sizeof s.variant, "run%d", r + 1);
        snprintf(file, sizeof file, "run%d.csv", r + 1);
        opt = nn_adam(lr, weight_decay);
        /* the snapshots collected so far: the PCA needs every run's */
        ex_run_begin(&run, &o, s.variant, m, &opt, NULL);
        ex_run_keep(&run, "snapshots", &s.snapshots, sizeof s.snapshots);
        ex_run_keep(&run, "weights", s.whole, (size_t)per_run * whole_size * sizeof(float));
        ex_run_keep(&run, "epochs", s.epoch_of, (size_t)per_run * sizeof(int));
        ex_run_keep(&run, "accuracies", s.acc_of, (size_t)per_run * sizeof(double));
        ex_run_keep(&run, "losses", s.loss_of, (size_t)per_run * sizeof(double));
        ex_run_resume(&run);
        s.csv = ex_csv_open(&o, file, "epoch,train_loss,train_acc,val_loss,val_acc");
        fit = nn_fit_defaults(o.epochs, batch);
        fit.seed = o.seed + (uint64_t)r;
        fit.validation = &test;
        fit.on_epoch = on_epoch;
        fit.user = &s;
        t0 = nn_seconds();
        ex_run_fit(&run, &train, &fit, NULL);
        run_seconds[r] = nn_seconds() - t0;
        ex_csv_close(s.csv);
        ex_check(nn_evaluate(m, &test, &test_metrics), "evaluation");
        ex_check(nn_evaluate(m, &train, &train_metrics), "evaluation");
        final_acc[r] = test_metrics.accuracy;
        final_loss[r] = test_metrics.loss;
        final_train_acc[r] = train_metrics.accuracy;
        for (i = 0; i < s.snapshots; i++) run_of[total + i] = r;
        if (s.snapshots != per_run) {
            fprintf(stderr, "weight_pca: run %d collected %d snapshots, expected %d\n", r + 1, s.snapshots, per_run);
            return 1;
        }
        total += s.snapshots;
        nn_optimizer_free(&opt);
        nn_model_free(m);
    }

    scores_whole = (double *)malloc((size_t)total * 2 * sizeof(double));
    scores_layer1 = (double *)malloc((size_t)total * 2 * sizeof(double));
    if (!scores_whole || !scores_layer1) {
        fprintf(stderr, "weight_pca: out of memory\n");
        return 1;
    }
    /* The first layer's weights are the first layer1_size values of each snapshot. */
    pca2(total, whole_size, 0, whole_size, snapshots, scores_whole, ratio_whole);
    pca2(total, layer1_size, 0, whole_size, snapshots, scores_layer1, ratio_layer1);
    for (i = 0; i < 2; i++) {
        const double *sc = i == 0 ? scores_whole : scores_layer1;
        int k;
        f = ex_csv_open(&o, i == 0 ? "pca_whole.csv" : "pca_layer1.csv", "run,epoch,pc1,pc2,test_acc,test_loss");
        for (k = 0; k < total; k++)
            fprintf(f, "%d,%d,%.6f,%.6f,%.2f,%.4f\n", run_of[k] + 1, epoch_of[k], sc[k * 2], sc[k * 2 + 1], acc_of[k],
                    loss_of[k]);
        ex_csv_close(f);
    }
    for (r = 0; r < runs; r++) {
        char variant[32];
        snprintf(variant, sizeof variant, "run%d", r + 1);
        ex_result(&o, variant,
                  "seed=%llu params=%zu weights=%zu final_acc=%.2f final_loss=%.4f train_acc=%.2f whole_evr1=%.4f "
                  "whole_evr2=%.4f layer1_evr1=%.4f layer1_evr2=%.4f seconds=%.2f",
                  (unsigned long long)(o.seed + (uint64_t)r), param_count[r], whole_size, final_acc[r], final_loss[r],
                  final_train_acc[r], ratio_whole[0], ratio_whole[1], ratio_layer1[0], ratio_layer1[1],
                  run_seconds[r]);
    }
    ex_result(&o, "pca",
              "snapshots=%d weights=%zu layer1_weights=%zu whole_evr1=%.4f whole_evr2=%.4f layer1_evr1=%.4f "
              "layer1_evr2=%.4f",
              total, whole_size, layer1_size, ratio_whole[0], ratio_whole[1], ratio_layer1[0], ratio_layer1[1]);
    free(snapshots);
    free(scores_whole);
    free(scores_layer1);
    free(epoch_of);
    free(run_of);
    free(acc_of);
    free(loss_of);
    free(final_acc);
    free(final_loss);
    free(final_train_acc);
    free(run_seconds);
    free(param_count);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
