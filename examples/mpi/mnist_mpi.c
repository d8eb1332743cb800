/* mnist_mpi: data-parallel LeNet on MNIST over MPI with nn_mpi.h. conv 1->6 5x5, maxpool 2, ReLU,
   conv 6->16 5x5, maxpool 2, ReLU, dense 256-120-84-10 (44 426 parameters), SGD lr 0.01
   momentum 0.9, global batch 64 split over the ranks, inputs pixels / 255.

   Every rank loads MNIST, shuffles it with the same seed (the same order everywhere), and takes
   its contiguous shard of each global batch of 64 (nn_mpi_shard: 32 + 32 on two ranks); one
   nn_mpi_train_step per batch averages the gradients with one MPI_Allreduce, so N ranks train
   the same model as one process with batch 64, up to float rounding. After each epoch the ranks
   evaluate their shards of the test set (nn_mpi_evaluate) and check that their parameters are
   still bitwise identical. Rank 0 alone prints and writes results/mnist_mpi/epochs_ranks<N>.csv
   and "RESULT mnist_mpi ranks<N> test_acc=... seconds=...".

   Build: make mpi-examples (mpicc). Run:
       mpirun -np 2 build/mpi/mnist_mpi --quick
   As root, or with more ranks than cores on one host:
       mpirun --allow-run-as-root --oversubscribe -np 2 build/mpi/mnist_mpi
   Threads: each rank uses NN_THREADS / --threads, or else the cores it may run on, divided by
   the ranks on its host. Open MPI binds each rank to one core when there are at most two ranks
   (so one rank alone gets one thread): to give one rank several threads, add --bind-to none.
   On a machine shared with other jobs, set OMP_WAIT_POLICY=passive (docs/scaling.md).
   --checkpoint FILE: rank 0 writes FILE at every epoch's end; with --resume every rank continues
   from it (on one host, or with FILE on a file system all ranks see). */
#define NN_IMPLEMENTATION
#include "common.h"
#include <mpi.h>
#define NN_MPI_IMPLEMENTATION
#include "nn_mpi.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static int rank, ranks;

/* The figures of the epochs so far that the RESULT line needs (kept in checkpoints). */
typedef struct progress {
    nn_metrics metrics; /* the last epoch's test evaluation */
    double total_seconds;
} progress;

/* Ends every rank: after an error that all ranks share (nn_mpi_* agreed on it) each finalises;
   after an MPI failure the others may be stuck in a collective, so abort the job. */
static void fatal(nn_status st, const char *what)
{
    fprintf(stderr, "mnist_mpi (rank %d of %d): %s: %s\n", rank, ranks, what, nn_mpi_last_error());
    if (st == NN_ERROR_IO) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
    exit(1);
}

/* Loads one IDX pair; a message instead of exiting, so that the ranks can agree first. */
static nn_status load(const ex_options *o, const char *images, const char *labels, nn_dataset *out, char *message,
                      size_t size)
{
    char ip[1024], lp[1024];
    nn_status st;
    snprintf(ip, sizeof ip, "%s/%s", o->data_dir, images);
    snprintf(lp, sizeof lp, "%s/%s", o->data_dir, labels);
    st = nn_mnist_load(ip, lp, out);
    if (st != NN_OK) snprintf(message, size, "%s (run `make data` to fetch MNIST)", nn_last_error());
    return st;
}

int main(int argc, char **argv)
{
    ex_options o = {0};
    int batch = 64, train_count = 0, test_count = 0, epoch, local_ranks = 1;
    float lr = 0.01f, momentum = 0.9f;
    ex_flag flags[] = {
        {"--batch", EX_INT, &batch, "global batch size, split over the ranks (default 64)"},
        {"--lr", EX_FLOAT, &lr, "SGD learning rate (default 0.01)"},
        {"--momentum", EX_FLOAT, &momentum, "SGD momentum (default 0.9)"},
        {"--train", EX_INT, &train_count, "use the first N training images (default all; --quick 6400)"},
        {"--test", EX_INT, &test_count, "use the first N test images (default all; --quick 2000)"},
    };
    nn_dataset train, test;
    nn_status st;
    char message[1200] = "", variant[32], file[64];
    nn_model *m;
    nn_node *x, *h;
    nn_optimizer opt;
    nn_rng rng;
    progress p;
    ex_run ck;
    int *order, *labels, first, count;
    float *xb;

    FILE *csv = NULL;
    MPI_Comm local;

    o.name = "mnist_mpi";
    o.epochs = 5;
    o.seed = 42;
    /* before MPI_Init: --help and bad flags end every rank the same way, before MPI starts */
    ex_parse(argc, argv, &o,
             "Data-parallel LeNet on MNIST over MPI (nn_mpi.h): run with mpirun -np N; the global batch is split "
             "over the ranks.",
             flags, (int)(sizeof flags / sizeof flags[0]));
    if (batch <= 0 || train_count < 0 || test_count < 0) {
        fprintf(stderr, "mnist_mpi: --batch must be positive, --train and --test non-negative\n");
        return 2;
    }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    /* threads: unless told, share this host's cores among its ranks */
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_ranks);
        MPI_Comm_free(&local);
    }
    if (o.threads == 0 && !getenv("NN_THREADS")) {
#ifdef _OPENMP
        int cores = omp_get_num_procs(); /* the cores this rank may run on (mpirun binds ranks) */
#else
        int cores = 1;
#endif
        ex_check(nn_set_threads(cores > local_ranks ? cores / local_ranks : 1), "nn_set_threads");
    }

    /* every rank loads the data; if any cannot, every rank says so and exits */
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    st = load(&o, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", &train, message, sizeof message);
    if (st == NN_OK) st = load(&o, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", &test, message, sizeof message);
    st = nn_mpi_agree(MPI_COMM_WORLD, st, message);
    if (st != NN_OK) fatal(st, "cannot start");
    if (o.quick) {
        if (!train_count) train_count = 6400;
        if (!test_count) test_count = 2000;
        if (!o.epochs_given) o.epochs = 2;
    }
    if (train_count) ex_truncate(&train, train_count);
    if (test_count) ex_truncate(&test, test_count);
    nn_dataset_scale(&train, 1.0 / 255.0);
    nn_dataset_scale(&test, 1.0 / 255.0);

    /* the same model everywhere: built from the same seed, then rank 0's weights broadcast */
    m = nn_model_new(o.seed);
    x = nn_input(m, 1, 28, 28);
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
    h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
    h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
    nn_mpi_shard(batch, 0, ranks, &first, &count); /* rank 0's shard is the largest */
    st = nn_compile(m, nn_linear(m, h, 10, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, count > 0 ? count : 1);
    if (st != NN_OK) snprintf(message, sizeof message, "compile: %s", nn_last_error());
    st = nn_mpi_agree(MPI_COMM_WORLD, st, message);
    if (st != NN_OK) fatal(st, "cannot build the model");
    if (rank == 0) ex_summary(m, "LeNet-5 (rank 0's shard of each batch)");
    st = nn_mpi_broadcast_params(m, MPI_COMM_WORLD);
    if (st != NN_OK) fatal(st, "broadcast");

    opt = nn_sgd(lr, momentum, 0.0f);
    rng = nn_rng_new(o.seed);
    order = (int *)malloc(sizeof(int) * (size_t)train.count);
    xb = (float *)malloc(sizeof(float) * 784 * (size_t)(count > 0 ? count : 1));
    labels = (int *)malloc(sizeof(int) * (size_t)(count > 0 ? count : 1));
    if (!order || !xb || !labels) {
        fprintf(stderr, "mnist_mpi: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    snprintf(variant, sizeof variant, "ranks%d", ranks);
    /* --checkpoint: every rank reads the file on --resume (the ranks' models and optimizers are
       replicas), rank 0 alone writes it */
    memset(&p, 0, sizeof p);
    ex_run_begin(&ck, &o, NULL, m, &opt, NULL);
    ex_run_keep(&ck, "progress", &p, sizeof p);
    ck.no_save = rank != 0;
    ex_run_resume(&ck);
    if (rank == 0) {
        fprintf(stderr,
                "[%s] %d rank(s), %d thread(s) each, backend %s; %d training and %d test images, %d epochs, "
                "global batch %d (%d on rank 0), SGD lr %g momentum %g, %zu parameters\n",
                variant, ranks, nn_threads(), nn_backend_name(), train.count, test.count, o.epochs, batch, count,
                (double)lr, (double)momentum, nn_param_count(m));
        snprintf(file, sizeof file, "epochs_%s.csv", variant);
        csv = ex_csv_open(&o, file, "epoch,train_loss,test_loss,test_acc,seconds,compute_seconds,wait_seconds,allreduce_seconds");
    }

    for (epoch = ex_run_epochs_done(&ck, &rng) + 1; epoch <= o.epochs; epoch++) {
        double t0, seconds, loss_sum = 0.0;
        int start, steps = 0, i;
        nn_mpi_stats stats;
        for (i = 0; i < train.count; i++) order[i] = i;
        nn_rng_shuffle(&rng, order, train.count); /* the same permutation on every rank */
        nn_mpi_reset_stats();
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = nn_seconds();
        for (start = 0; start < train.count; start += batch) {
            const int global = train.count - start < batch ? train.count - start : batch;
            float loss;
            nn_mpi_shard(global, rank, ranks, &first, &count);
            if (count > 0) nn_dataset_gather(&train, order + start + first, count, xb, labels);
            st = nn_mpi_train_step(m, &opt, xb, labels, NULL, count, MPI_COMM_WORLD, &loss);
            if (st != NN_OK) fatal(st, "training");
            loss_sum += loss;
            steps++;
        }
        seconds = nn_seconds() - t0;
        p.total_seconds += seconds;
        nn_mpi_get_stats(&stats);
        st = nn_mpi_evaluate(m, &test, MPI_COMM_WORLD, &p.metrics);
        if (st != NN_OK) fatal(st, "evaluation");
        st = nn_mpi_check_replicas(m, MPI_COMM_WORLD);
        if (st != NN_OK) fatal(st, "replica check");
        if (rank == 0) {
            fprintf(stderr,
                    "[%s] epoch %3d  train loss %.4f  test loss %.4f acc %6.2f%%  %.2fs (rank 0: compute %.2fs, "
                    "waiting %.2fs, allreduce %.2fs)\n",
                    variant, epoch, loss_sum / steps, p.metrics.loss, p.metrics.accuracy, seconds, stats.compute_seconds,
                    stats.sync_seconds, stats.allreduce_seconds);
            fprintf(csv, "%d,%.6f,%.6f,%.2f,%.3f,%.3f,%.3f,%.3f\n", epoch, loss_sum / steps, p.metrics.loss,
                    p.metrics.accuracy, seconds, stats.compute_seconds, stats.sync_seconds, stats.allreduce_seconds);
            fflush(csv);
        }
        ex_run_epoch_end(&ck, epoch, &rng);
    }
    ex_run_end(&ck);
    if (rank == 0) {
        ex_csv_close(csv);
        ex_result(&o, variant, "test_acc=%.2f seconds=%.2f epoch_seconds=%.2f threads=%d", p.metrics.accuracy,
                  p.total_seconds, p.total_seconds / o.epochs, nn_threads());
    }
    free(order);
    free(xb);
    free(labels);
    nn_optimizer_free(&opt);
    nn_model_free(m);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    MPI_Finalize();
    return 0;
}
