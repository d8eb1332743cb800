/* tests/mpi/test_mpi.c - nn_mpi.h under mpirun (driven by tests/mpi/run.sh).

   test_mpi unit        with any number of ranks: every check below, each agreed over the ranks;
                        rank 0 prints "ok"/"FAIL" lines and "SUMMARY mpi-<N>ranks passed=P failed=F"
   test_mpi fail-load   the last rank cannot read its data: every rank must exit 1 with
                        "rank R of N: ..." (nn_mpi_agree), none may hang
   (with NN_GRAD_SUM, error messages and the non-finite policy checked in test_companion)
   test_mpi probe       an allreduce over the ranks, nothing else (run.sh's check of mpirun's flags)
   test_mpi die         the last rank exits abruptly while the others are in a collective:
                        mpirun must end the job (checked by run.sh with a timeout)

   Equivalence tolerance: N ranks with shards of a global batch of 64 against one process with
   the batch of 64, after 3 steps of SGD (lr 0.05, momentum 0.9): every parameter within
   TOL_ABS + TOL_REL * |p|. The sums run in another order (per shard, then across ranks), so
   the results differ by rounding only; with one rank they are bit-identical. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <mpi.h>
#define NN_MPI_IMPLEMENTATION
#include "nn_mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_ABS 2e-6
#define TOL_REL 2e-5
#define GLOBAL_BATCH 64
#define STEPS 3

static int rank, ranks, passed, failed;

/* Every rank says whether its part passed; rank 0 prints the verdict. */
static void check(const char *name, int ok, const char *detail)
{
    int all_ok = ok;
    MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok) fprintf(stderr, "[rank %d] %s: %s\n", rank, name, detail ? detail : "failed");
    if (all_ok) passed++;
    else failed++;
    if (rank == 0) {
        printf("%s %s%s%s%s\n", all_ok ? "  ok  " : "  FAIL", name, detail ? " (" : "", detail ? detail : "",
               detail ? ")" : "");
        fflush(stdout);
    }
}

static double max_over_ranks(double v)
{
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

/* ---- models and data -------------------------------------------------------------------- */
typedef enum { MLP, LENET, BN_MLP } kind;

static nn_model *build(kind k, uint64_t seed, int max_batch)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h;
    if (k == LENET) {
        h = nn_input(m, 1, 28, 28);
        h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 6, 5, 1, 0, NN_BIAS), 2, 2));
        h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
        h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
        h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    } else {
        h = nn_input(m, 1, 28, 28);
        h = nn_linear(m, h, 32, NN_BIAS);
        if (k == BN_MLP) h = nn_batchnorm(m, h);
        h = nn_relu(m, h);
        h = nn_relu(m, nn_linear(m, h, 16, NN_BIAS));
    }
    if (nn_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, max_batch) != NN_OK) {
        fprintf(stderr, "compile: %s\n", nn_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return m;
}

/* The same pseudo-random data on every rank (its own generator, not the library's). */
static float *x_all;
static int *labels_all;
static void make_data(int count)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int i;
    x_all = (float *)malloc(sizeof(float) * 784 * (size_t)count);
    labels_all = (int *)malloc(sizeof(int) * (size_t)count);
    for (i = 0; i < 784 * count; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x_all[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    for (i = 0; i < count; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        labels_all[i] = (int)((s >> 33) % 10);
    }
}

/* Shards of GLOBAL_BATCH: "equal" (nn_mpi_shard), "uneven" (one sample moved from the last
   rank to the first: 33 + 31 on two ranks), "empty" (rank 0 has all, the others none). */
static void shard_of(const char *how, int *first, int *count)
{
    nn_mpi_shard(GLOBAL_BATCH, rank, ranks, first, count);
    if (!strcmp(how, "uneven") && ranks > 1) {
        if (rank == 0) *count += 1;
        else *first += 1;
        if (rank == ranks - 1) *count -= 1;
    } else if (!strcmp(how, "empty")) {
        *first = 0;
        *count = rank == 0 ? GLOBAL_BATCH : 0;
    }
}

/* max over parameters and ranks of |a - b| / (TOL_ABS + TOL_REL |b|), and of |a - b| */
static double compare(const float *a, const float *b, size_t n, double *max_abs)
{
    size_t i;
    double worst = 0.0, worst_abs = 0.0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), r = d / (TOL_ABS + TOL_REL * fabs((double)b[i]));
        if (!(r <= worst)) worst = r; /* NaN makes it fail */
        if (d > worst_abs) worst_abs = d;
    }
    *max_abs = max_over_ranks(worst_abs);
    return max_over_ranks(worst);
}

/* ---- the checks ------------------------------------------------------------------------- */
static void test_shard(void)
{
    int ok = 1, r, n, first, count, next;
    char detail[128];
    for (n = 1; n <= 5; n++) {
        int total = 0;
        next = 0;
        for (r = 0; r < n; r++) {
            nn_mpi_shard(64 + n - 1, r, n, &first, &count);
            ok &= first == next && (count == (64 + n - 1) / n || count == (64 + n - 1) / n + 1);
            next = first + count;
            total += count;
        }
        ok &= total == 64 + n - 1;
    }
    nn_mpi_shard(2, 3, 4, &first, &count); /* more ranks than samples: empty shards */
    ok &= count == 0;
    nn_mpi_shard(64, 0, 2, &first, &count);
    snprintf(detail, sizeof detail, "64 over 2 ranks: first %d count %d", first, count);
    check("nn_mpi_shard splits contiguously, sizes differ by at most one", ok && count == 32, detail);
}

static void test_broadcast(void)
{
    nn_model *m = build(LENET, 100 + (uint64_t)rank, GLOBAL_BATCH), *ref = build(LENET, 100, GLOBAL_BATCH);
    nn_status st = nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    int same = st == NN_OK && !memcmp(nn_params(m), nn_params(ref), nn_param_count(m) * sizeof(float));
    check("broadcast_params gives every rank rank 0's parameters", same, st == NN_OK ? NULL : nn_mpi_last_error());
    st = nn_mpi_check_replicas(m, MPI_COMM_WORLD);
    check("check_replicas after broadcast", st == NN_OK, st == NN_OK ? NULL : nn_mpi_last_error());
    nn_model_free(m);
    nn_model_free(ref);
}

static void test_equivalence(kind k, const char *how)
{
    char name[160], detail[600];
    nn_model *m = build(k, 7, GLOBAL_BATCH), *ref = build(k, 7, GLOBAL_BATCH);
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 0.0f), ref_opt = nn_sgd(0.05f, 0.9f, 0.0f);
    nn_status st = nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    int step, first, count, ok = st == NN_OK, identical;
    double worst = 0.0, worst_abs = 0.0, loss_diff = 0.0;
    shard_of(how, &first, &count);
    for (step = 0; step < STEPS && ok; step++) {
        const int offset = step * GLOBAL_BATCH; /* a new global batch each step */
        float loss = 0.0f, ref_loss = 0.0f;
        st = nn_mpi_train_step(m, &opt, x_all + (size_t)(offset + first) * 784, labels_all + offset + first, NULL, count,
                               MPI_COMM_WORLD, &loss);
        ok = st == NN_OK && nn_train_step(ref, &ref_opt, x_all + (size_t)offset * 784, labels_all + offset, NULL,
                                          GLOBAL_BATCH, &ref_loss) == NN_OK;
        if (fabs(loss - ref_loss) > loss_diff) loss_diff = fabs(loss - ref_loss);
    }
    if (ok) worst = compare(nn_params(m), nn_params(ref), nn_param_count(m), &worst_abs);
    loss_diff = max_over_ranks(loss_diff);
    identical = ok && worst_abs == 0.0;
    snprintf(name, sizeof name, "%s, %s shards (%d here): %d steps match one process with batch %d",
             k == LENET ? "LeNet" : "MLP", how, count, STEPS, GLOBAL_BATCH);
    if (!ok) snprintf(detail, sizeof detail, "%s", nn_mpi_last_error());
    else
        snprintf(detail, sizeof detail, "max |diff| %.3g, %.2f of the tolerance, loss diff %.3g%s", worst_abs, worst,
                 loss_diff, identical ? ", bit-identical" : "");
    check(name, ok && worst <= 1.0 && loss_diff <= 1e-5, detail);
    if (ranks == 1 && !strcmp(how, "equal")) check("one rank: bit-identical to nn_train_step", identical, detail);
    st = nn_mpi_check_replicas(m, MPI_COMM_WORLD);
    snprintf(name, sizeof name, "%s, %s shards: replicas bitwise identical", k == LENET ? "LeNet" : "MLP", how);
    check(name, st == NN_OK, st == NN_OK ? NULL : nn_mpi_last_error());
    nn_optimizer_free(&opt);
    nn_optimizer_free(&ref_opt);
    nn_model_free(m);
    nn_model_free(ref);
}

/* One rank's shard is too large for the model: every rank must return the error and keep its
   parameters; a NaN in one rank's input: every rank skips the update. */
static void test_errors(void)
{
    nn_model *m = build(MLP, 7, GLOBAL_BATCH);
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 0.0f);
    float *before = (float *)malloc(nn_param_count(m) * sizeof(float)), loss, saved;
    const int bad = ranks - 1, first = 0;
    int count = rank == bad ? GLOBAL_BATCH + 1 : 8, ok;
    char expect[64], detail[600];
    nn_status st;
    nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    memcpy(before, nn_params(m), nn_param_count(m) * sizeof(float));
    st = nn_mpi_train_step(m, &opt, x_all + first, labels_all + first, NULL, count, MPI_COMM_WORLD, &loss);
    snprintf(expect, sizeof expect, "rank %d of %d: ", bad, ranks);
    ok = st == NN_ERROR_ARGUMENT && !strncmp(nn_mpi_last_error(), expect, strlen(expect)) &&
         !memcmp(before, nn_params(m), nn_param_count(m) * sizeof(float));
    snprintf(detail, sizeof detail, "%s", nn_mpi_last_error());
    check("a failing forward on one rank: the same error on every rank, no update", ok, detail);

    saved = x_all[5];
    if (rank == bad) x_all[5] = NAN;
    st = nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, 8, MPI_COMM_WORLD, &loss);
    x_all[5] = saved;
    ok = st == NN_ERROR_NONFINITE && !memcmp(before, nn_params(m), nn_param_count(m) * sizeof(float));
    snprintf(detail, sizeof detail, "%s", nn_mpi_last_error());
    check("a NaN on one rank: NN_ERROR_NONFINITE on every rank, no update", ok, detail);

    st = nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, 8, MPI_COMM_WORLD, &loss);
    check("training goes on after those errors", st == NN_OK, st == NN_OK ? NULL : nn_mpi_last_error());

    st = nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, 0, MPI_COMM_WORLD, &loss);
    check("every shard empty: NN_ERROR_ARGUMENT everywhere", st == NN_ERROR_ARGUMENT, nn_mpi_last_error());

    st = nn_mpi_agree(MPI_COMM_WORLD, rank == bad ? NN_ERROR_IO : NN_OK, "cannot open data/x");
    snprintf(detail, sizeof detail, "%s", nn_mpi_last_error());
    ok = st == NN_ERROR_IO && !strncmp(nn_mpi_last_error(), expect, strlen(expect)) &&
         strstr(nn_mpi_last_error(), "cannot open data/x") != NULL;
    check("nn_mpi_agree: one rank's failure, its status and message on every rank", ok, detail);
    check("nn_mpi_agree: NN_OK when all are fine", nn_mpi_agree(MPI_COMM_WORLD, NN_OK, NULL) == NN_OK, NULL);

    if (ranks > 1) {
        nn_model *other = build(rank == bad ? LENET : MLP, 7, GLOBAL_BATCH);
        st = nn_mpi_broadcast_params(other, MPI_COMM_WORLD);
        snprintf(detail, sizeof detail, "%s", nn_mpi_last_error());
        check("different models on the ranks: NN_ERROR_SHAPE on every rank", st == NN_ERROR_SHAPE, detail);
        nn_model_free(other);
    }
    free(before);
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

/* Batch norm: per-rank statistics; the parameters stay in step, the running statistics drift
   until nn_mpi_average_state. */
static void test_batchnorm(void)
{
    nn_model *m = build(BN_MLP, 9, GLOBAL_BATCH);
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 0.0f);
    int first, count, step, params_same, ok;
    nn_status st = nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    unsigned long long h = 0, lo, hi;
    size_t i;
    nn_mpi_shard(GLOBAL_BATCH, rank, ranks, &first, &count);
    for (step = 0; step < STEPS && st == NN_OK; step++)
        st = nn_mpi_train_step(m, &opt, x_all + (size_t)(step * GLOBAL_BATCH + first) * 784,
                               labels_all + step * GLOBAL_BATCH + first, NULL, count, MPI_COMM_WORLD, NULL);
    /* parameters alone identical? (state excluded) */
    for (i = 0; i < nn_param_count(m) * sizeof(float); i++) h = (h ^ ((unsigned char *)nn_params(m))[i]) * 0x100000001B3ull;
    lo = hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    params_same = lo == hi;
    check("batch norm: parameters identical on every rank", st == NN_OK && params_same,
          st == NN_OK ? NULL : nn_mpi_last_error());
    if (ranks > 1) { /* each rank normalised its own shard: the running statistics differ */
        h = 0;
        for (i = 0; i < nn_state_count(m) * sizeof(float); i++) h = (h ^ ((unsigned char *)nn_state(m))[i]) * 0x100000001B3ull;
        lo = hi = h;
        MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
        check("batch norm: per-rank statistics, so the running statistics differ before averaging", lo != hi, NULL);
    }
    st = nn_mpi_average_state(m, MPI_COMM_WORLD);
    ok = st == NN_OK && nn_mpi_check_replicas(m, MPI_COMM_WORLD) == NN_OK;
    check("batch norm: running statistics identical after average_state", ok, ok ? NULL : nn_mpi_last_error());
    nn_optimizer_free(&opt);
    nn_model_free(m);
}

static void test_evaluate(void)
{
    nn_model *m = build(MLP, 11, 16);
    nn_dataset ds;
    nn_metrics whole, split;
    nn_status st;
    char detail[200];
    memset(&ds, 0, sizeof ds);
    ds.count = 101;
    ds.channels = 1;
    ds.height = ds.width = 28;
    ds.classes = 10;
    ds.x = x_all;
    ds.labels = labels_all;
    st = nn_evaluate(m, &ds, &whole);
    if (st == NN_OK) st = nn_mpi_evaluate(m, &ds, MPI_COMM_WORLD, &split);
    snprintf(detail, sizeof detail, "%d/%d correct, loss %.6f vs %.6f", st == NN_OK ? split.correct : -1, whole.count,
             st == NN_OK ? split.loss : 0.0, whole.loss);
    check("nn_mpi_evaluate over shards equals nn_evaluate",
          st == NN_OK && split.correct == whole.correct && split.count == whole.count &&
              fabs(split.loss - whole.loss) < 1e-5,
          detail);
    nn_model_free(m);
}

/* NN_GRAD_SUM: the summed gradients add up across ranks as they are; nn_last_error() gets the
   message too; keep_going applies a non-finite update on every rank. */
static void test_companion(void)
{
    nn_model *m = build(MLP, 7, GLOBAL_BATCH), *ref = build(MLP, 7, GLOBAL_BATCH);
    nn_optimizer opt = nn_sgd(0.001f, 0.9f, 0.0f), ref_opt = nn_sgd(0.001f, 0.9f, 0.0f);
    int first, count, step, ok = 1;
    double worst, worst_abs;
    char detail[600];
    nn_status st;
    float loss, saved;
    nn_set_grad_reduction(m, NN_GRAD_SUM);
    nn_set_grad_reduction(ref, NN_GRAD_SUM);
    shard_of("uneven", &first, &count);
    for (step = 0; step < STEPS && ok; step++) {
        const int offset = step * GLOBAL_BATCH;
        ok = nn_mpi_train_step(m, &opt, x_all + (size_t)(offset + first) * 784, labels_all + offset + first, NULL, count,
                               MPI_COMM_WORLD, NULL) == NN_OK &&
             nn_train_step(ref, &ref_opt, x_all + (size_t)offset * 784, labels_all + offset, NULL, GLOBAL_BATCH, NULL) ==
                 NN_OK;
    }
    worst = compare(nn_params(m), nn_params(ref), nn_param_count(m), &worst_abs);
    snprintf(detail, sizeof detail, "max |diff| %.3g, %.2f of the tolerance", worst_abs, worst);
    check("NN_GRAD_SUM, uneven shards: matches one process with batch 64", ok && worst <= 1.0, detail);

    st = nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, rank == ranks - 1 ? GLOBAL_BATCH + 1 : 8, MPI_COMM_WORLD,
                           &loss);
    ok = st != NN_OK && !strcmp(nn_last_error(), nn_mpi_last_error());
    snprintf(detail, sizeof detail, "%s", nn_last_error());
    check("nn_last_error() has nn_mpi's message", ok, detail);

    nn_set_nonfinite_policy(m, 1);
    saved = x_all[3];
    if (rank == ranks - 1) x_all[3] = NAN;
    st = nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, 8, MPI_COMM_WORLD, &loss);
    x_all[3] = saved;
    ok = st == NN_OK && nn_mpi_check_replicas(m, MPI_COMM_WORLD) == NN_OK;
    check("keep_going: a non-finite step is applied, on every rank alike", ok, ok ? NULL : nn_mpi_last_error());
    nn_optimizer_free(&opt);
    nn_optimizer_free(&ref_opt);
    nn_model_free(m);
    nn_model_free(ref);
}

/* ---- the failure modes run.sh watches ---------------------------------------------------- */
static int fail_load(void)
{
    nn_dataset ds;
    nn_status st = NN_OK;
    char message[512] = "";
    memset(&ds, 0, sizeof ds);
    if (rank == ranks - 1) { /* this rank's data is missing */
        st = nn_mnist_load("/nonexistent/train-images-idx3-ubyte", "/nonexistent/train-labels-idx1-ubyte", &ds);
        snprintf(message, sizeof message, "%s", nn_last_error());
    }
    st = nn_mpi_agree(MPI_COMM_WORLD, st, message);
    if (st != NN_OK) {
        fprintf(stderr, "test_mpi (rank %d): cannot start: %s\n", rank, nn_mpi_last_error());
        MPI_Finalize();
        return 1;
    }
    nn_dataset_free(&ds);
    fprintf(stderr, "test_mpi (rank %d): unexpectedly every rank loaded its data\n", rank);
    MPI_Finalize();
    return 0;
}

static int die(void)
{
    nn_model *m = build(MLP, 7, GLOBAL_BATCH);
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 0.0f);
    float loss;
    int step;
    nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    if (rank == ranks - 1) {
        fprintf(stderr, "test_mpi (rank %d): exiting abruptly\n", rank);
        exit(3);
    }
    for (step = 0; step < 1000; step++) /* blocks in the allreduce until mpirun ends the job */
        if (nn_mpi_train_step(m, &opt, x_all, labels_all, NULL, 8, MPI_COMM_WORLD, &loss) != NN_OK) {
            fprintf(stderr, "test_mpi (rank %d): %s\n", rank, nn_mpi_last_error());
            return 1;
        }
    fprintf(stderr, "test_mpi (rank %d): the dead rank went unnoticed\n", rank);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "unit";
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    make_data(STEPS * GLOBAL_BATCH + 1);
    if (!strcmp(mode, "probe")) { /* run.sh: does mpirun work here with these flags? */
        int one = 1;
        MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0) printf("probe: %d ranks\n", one);
        MPI_Finalize();
        return one == ranks ? 0 : 1;
    }
    if (!strcmp(mode, "fail-load")) return fail_load();
    if (!strcmp(mode, "die")) return die();
    if (strcmp(mode, "unit") != 0) {
        if (rank == 0) fprintf(stderr, "usage: test_mpi [unit|probe|fail-load|die]\n");
        MPI_Finalize();
        return 2;
    }
    if (rank == 0) printf("== nn_mpi on %d rank(s), backend %s, %d thread(s) each\n", ranks, nn_backend_name(), nn_threads());
    test_shard();
    test_broadcast();
    test_equivalence(MLP, "equal");
    test_equivalence(LENET, "equal");
    test_equivalence(LENET, "uneven");
    test_equivalence(MLP, "uneven");
    test_equivalence(LENET, "empty");
    test_errors();
    test_batchnorm();
    test_evaluate();
    test_companion();
    if (rank == 0) printf("SUMMARY mpi-%dranks passed=%d failed=%d\n", ranks, passed, failed);
    free(x_all);
    free(labels_all);
    MPI_Finalize();
    return failed ? 1 : 0;
}
