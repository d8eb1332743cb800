/* nn_mpi.h - data-parallel training for nn.h over MPI: a companion header, stb-style.

   QUICK START
   -----------
   In exactly ONE C file, after nn.h and mpi.h:

       #define NN_IMPLEMENTATION        (here or in another file of the program)
       #include "nn.h"
       #include <mpi.h>
       #define NN_MPI_IMPLEMENTATION
       #include "nn_mpi.h"

   Build with mpicc (add -fopenmp for threads) and run with `mpirun -np N ./program`. As root on
   one host with fewer cores than ranks: `mpirun --allow-run-as-root --oversubscribe -np N`.

       MPI_Init(&argc, &argv);
       ... build and compile the same model on every rank ...
       nn_mpi_broadcast_params(m, MPI_COMM_WORLD);            // rank 0's weights everywhere
       for each global batch of B samples (the same order on every rank):
           nn_mpi_shard(B, rank, ranks, &first, &count);     // this rank's slice of it
           nn_mpi_train_step(m, &opt, x + first*size, labels + first, NULL, count,
                             MPI_COMM_WORLD, &loss);          // loss: the global batch's mean
       MPI_Finalize();

   WHAT A STEP DOES
   ----------------
   nn_mpi_train_step runs forward + backward on the local shard (nn.h averages over the local
   batch with NN_GRAD_MEAN, the default; an NN_GRAD_SUM model sums, see below),
   multiplies the gradient by local_count / global_count, sums it over the ranks with one
   MPI_Allreduce of the flat gradient buffer (nn_grads, nn_param_count floats, in place,
   float32), and applies nn_optimizer_step
   on every rank. The sum is then the gradient of the mean loss over the whole global batch,
   also when the shards have unequal sizes (or some are empty), so N ranks with shards of
   B/N samples follow the same trajectory as one process with batch B, up to float rounding
   (the sums are taken in another order: after 3 steps of LeNet the parameters differ by at
   most 1.5e-8; tests/mpi allows 2e-6 + 2e-5 |p|; one rank is bit-identical to nn_train_step). Every rank applies the identical update to identical parameters,
   so the replicas stay identical (nn_mpi_check_replicas verifies it bit for bit).

   Before the gradient, a small MPI_Allreduce of three doubles (the local sample count, the
   local loss sum and a failure flag) gives every rank the global count and the global mean
   loss, and lets a rank whose forward or backward failed tell the others, so that every rank
   returns the error (with the failing rank's message) instead of waiting in the big
   allreduce. A loss or gradient that is not finite skips the update on every rank alike
   (NN_ERROR_NONFINITE): the decision is taken on the summed gradient, identical everywhere.

   Messages also go to nn_last_error(); an NN_GRAD_SUM model gets the gradient of the global
   batch's summed loss (no weighting); nn_set_nonfinite_policy(model, 1) applies non-finite
   updates as nn.h does.

   BATCH NORMALISATION
   -------------------
   Per-rank batch statistics, like PyTorch's DistributedDataParallel without SyncBatchNorm:
   each rank normalises its shard with the shard's own mean and variance, so with batch norm
   N ranks are NOT equivalent to one process with the global batch (they are without it).
   The running statistics (nn_state) are updated locally and drift apart across ranks; the
   gradients stay synchronised. Call nn_mpi_average_state before evaluating or saving (the
   mean over the ranks), or nn_mpi_broadcast_params to take rank 0's (DDP's
   broadcast_buffers). Dropout: each rank draws its masks from its model's own stream; seed
   the models differently per rank (nn_model_new(seed + rank)) and broadcast the parameters.

   ERRORS
   ------
   Functions return nn_status; the message is in nn_mpi_last_error() and nn_last_error()
   (errors that came from nn.h are passed on with their message).
   Every function that takes a communicator is collective: call it on every rank, in the same
   order. They install MPI_ERRORS_RETURN on the communicator, so an MPI failure becomes
   NN_ERROR_IO with MPI's error string rather than an abort; after one, other ranks may be
   blocked in a collective: exit with a non-zero status (Open MPI's mpirun then ends the
   whole job) or call MPI_Abort. nn_mpi_agree turns a local failure (a file that one rank
   cannot read) into the same error on every rank.

   API
   ---
   nn_mpi_broadcast_params(model, comm)     rank 0's parameters and batch-norm state to all
                                            (checks that every rank has the same counts)
   nn_mpi_train_step(model, opt, x_local, labels_local, targets_local, local_count, comm, &loss)
   nn_mpi_allreduce_grads(model, local_count, comm, &global_count)
                                            the gradient synchronisation alone (after
                                            nn_backward or nn_compute_gradients; no
                                            finiteness check, no update),
                                            for hand-written loops
   nn_mpi_shard(global_count, rank, ranks, &first, &count)   contiguous split, the first
                                            global_count % ranks ranks get one sample more
   nn_mpi_evaluate(model, ds, comm, &metrics)   each rank evaluates its shard of ds (every rank
                                            holds all of ds); metrics are the whole set's
   nn_mpi_average_state(model, comm)        batch-norm running statistics := mean over ranks
   nn_mpi_check_replicas(model, comm)       NN_OK if parameters and state are bitwise equal
   nn_mpi_agree(comm, local_status, local_message)   NN_OK everywhere, or the lowest failing
                                            rank's status everywhere, its message in
                                            nn_mpi_last_error() as "rank R of N: ..."
   nn_mpi_stats / nn_mpi_get_stats / nn_mpi_reset_stats   time spent computing vs in the
                                            allreduces (this process)
   nn_mpi_last_error()

   LICENSE: MIT (see the end of this file).
*/
#ifndef NN_MPI_H_INCLUDED
#define NN_MPI_H_INCLUDED

#ifndef NN_H_INCLUDED
#error "nn_mpi.h: include nn.h first"
#endif
#ifndef MPI_VERSION
#error "nn_mpi.h: include mpi.h first"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Where the time of nn_mpi_train_step goes, summed over the calls of this process. */
typedef struct nn_mpi_stats {
    int64_t steps;
    double compute_seconds;   /* forward + backward + optimizer step */
    double sync_seconds;      /* the small allreduce: mostly waiting for the slowest rank */
    double allreduce_seconds; /* the gradient allreduce: the transfer itself */
} nn_mpi_stats;

NNDEF const char *nn_mpi_last_error(void); /* the message of the last nn_mpi failure on this thread */
NNDEF void nn_mpi_shard(int global_count, int rank, int ranks, int *first, int *count);
NNDEF nn_status nn_mpi_agree(MPI_Comm comm, nn_status local_status, const char *local_message);
NNDEF nn_status nn_mpi_broadcast_params(nn_model *model, MPI_Comm comm);
NNDEF nn_status nn_mpi_allreduce_grads(nn_model *model, int local_count, MPI_Comm comm, int *global_count);
NNDEF nn_status nn_mpi_train_step(nn_model *model, nn_optimizer *opt, const float *x_local, const int *labels_local,
                                  const float *targets_local, int local_count, MPI_Comm comm, float *loss);
NNDEF nn_status nn_mpi_evaluate(nn_model *model, const nn_dataset *ds, MPI_Comm comm, nn_metrics *out);
NNDEF nn_status nn_mpi_average_state(nn_model *model, MPI_Comm comm);
NNDEF nn_status nn_mpi_check_replicas(nn_model *model, MPI_Comm comm);
NNDEF void nn_mpi_get_stats(nn_mpi_stats *out);
NNDEF void nn_mpi_reset_stats(void);

#ifdef __cplusplus
}
#endif
#endif /* NN_MPI_H_INCLUDED */

/* ######################################################################################
   IMPLEMENTATION
   ###################################################################################### */
#ifdef NN_MPI_IMPLEMENTATION
#ifndef NN_MPI__IMPLEMENTATION_DONE
#define NN_MPI__IMPLEMENTATION_DONE

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__cplusplus) && __cplusplus >= 201103L
#define NN_MPI__THREAD_LOCAL thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define NN_MPI__THREAD_LOCAL __thread
#elif defined(_MSC_VER)
#define NN_MPI__THREAD_LOCAL __declspec(thread)
#else
#define NN_MPI__THREAD_LOCAL
#endif

#define NN_MPI__MESSAGE 480
#define NN_MPI__CHUNK ((size_t)1 << 28) /* elements per MPI call: MPI counts are int */

static NN_MPI__THREAD_LOCAL char nn_mpi__error_text[NN_MPI__MESSAGE];
static nn_mpi_stats nn_mpi__stats;

NNDEF const char *nn_mpi_last_error(void) { return nn_mpi__error_text; }

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static nn_status nn_mpi__fail(nn_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(nn_mpi__error_text, sizeof nn_mpi__error_text, format, args);
    va_end(args);
    nn_set_error(status, "%s", nn_mpi__error_text); /* nn_last_error() says the same */
    return status;
}

/* NN_GRAD_SUM models give sums, which add up across ranks as they are; the policy for
   non-finite steps. */
static int nn_mpi__grad_is_sum(const nn_model *m)
{
    return nn_get_grad_reduction(m) == NN_GRAD_SUM;
}
static int nn_mpi__keep_going(const nn_model *m)
{
    return nn_get_nonfinite_policy(m);
}

/* An error that nn.h reported: its message, prefixed. */
static nn_status nn_mpi__from_nn(nn_status status, const char *who)
{
    return nn_mpi__fail(status, "%s: %s", who, nn_last_error());
}

static nn_status nn_mpi__mpi_fail(int code, const char *who, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", code);
    return nn_mpi__fail(NN_ERROR_IO, "%s: %s failed: %s", who, call, text);
}

/* Checks the communicator and makes MPI errors on it return instead of aborting. */
static nn_status nn_mpi__begin(MPI_Comm comm, const char *who, int *rank, int *ranks)
{
    int code;
    if (comm == MPI_COMM_NULL) return nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: MPI_COMM_NULL", who);
    code = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Comm_set_errhandler");
    code = MPI_Comm_rank(comm, rank);
    if (code == MPI_SUCCESS) code = MPI_Comm_size(comm, ranks);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Comm_rank/size");
    return NN_OK;
}

/* In-place sum (op MPI_SUM) or any op, in chunks that fit MPI's int counts. */
static int nn_mpi__allreduce_floats(float *data, size_t count, MPI_Op op, MPI_Comm comm)
{
    size_t at;
    for (at = 0; at < count; at += NN_MPI__CHUNK) {
        size_t n = count - at < NN_MPI__CHUNK ? count - at : NN_MPI__CHUNK;
        int code = MPI_Allreduce(MPI_IN_PLACE, data + at, (int)n, MPI_FLOAT, op, comm);
        if (code != MPI_SUCCESS) return code;
    }
    return MPI_SUCCESS;
}

static int nn_mpi__bcast_floats(float *data, size_t count, int root, MPI_Comm comm)
{
    size_t at;
    for (at = 0; at < count; at += NN_MPI__CHUNK) {
        size_t n = count - at < NN_MPI__CHUNK ? count - at : NN_MPI__CHUNK;
        int code = MPI_Bcast(data + at, (int)n, MPI_FLOAT, root, comm);
        if (code != MPI_SUCCESS) return code;
    }
    return MPI_SUCCESS;
}

NNDEF void nn_mpi_shard(int global_count, int rank, int ranks, int *first, int *count)
{
    int base, extra, f = 0, c = 0;
    if (global_count > 0 && ranks > 0 && rank >= 0 && rank < ranks) {
        base = global_count / ranks;
        extra = global_count % ranks;
        c = base + (rank < extra);
        f = rank * base + (rank < extra ? rank : extra);
    }
    if (first) *first = f;
    if (count) *count = c;
}

/* Every rank knows that `failures` ranks failed: the lowest failing rank sends its status and
   message to all, and every rank returns them. */
static nn_status nn_mpi__share_failure(MPI_Comm comm, int rank, int ranks, int failures, int local_failed,
                                       nn_status local_status, const char *who)
{
    int lowest = local_failed ? rank : INT_MAX, code, status = (int)local_status;
    char message[NN_MPI__MESSAGE];
    code = MPI_Allreduce(MPI_IN_PLACE, &lowest, 1, MPI_INT, MPI_MIN, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce");
    if (lowest == INT_MAX) return nn_mpi__fail(NN_ERROR_STATE, "%s: inconsistent failure flags", who);
    memset(message, 0, sizeof message);
    if (rank == lowest) snprintf(message, sizeof message, "%s", nn_mpi__error_text);
    code = MPI_Bcast(&status, 1, MPI_INT, lowest, comm);
    if (code == MPI_SUCCESS) code = MPI_Bcast(message, (int)sizeof message, MPI_CHAR, lowest, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Bcast");
    message[sizeof message - 1] = 0;
    if (status == NN_OK) status = NN_ERROR_STATE;
    if (failures > 1) /* 0: not counted */
        return nn_mpi__fail((nn_status)status, "rank %d of %d (and %d more): %s", lowest, ranks, failures - 1, message);
    return nn_mpi__fail((nn_status)status, "rank %d of %d: %s", lowest, ranks, message);
}

NNDEF nn_status nn_mpi_agree(MPI_Comm comm, nn_status local_status, const char *local_message)
{
    int rank, ranks, failed = local_status != NN_OK, code;
    nn_status st = nn_mpi__begin(comm, "nn_mpi_agree", &rank, &ranks);
    if (st != NN_OK) return st;
    if (failed) nn_mpi__fail(local_status, "%s", local_message ? local_message : nn_status_name(local_status));
    code = MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, "nn_mpi_agree", "MPI_Allreduce");
    if (failed == 0) return NN_OK;
    return nn_mpi__share_failure(comm, rank, ranks, failed, local_status != NN_OK, local_status, "nn_mpi_agree");
}

/* Collective: every rank's model is compiled and has the same parameter and state counts. */
static nn_status nn_mpi__same_model(nn_model *m, MPI_Comm comm, int rank, int ranks, const char *who)
{
    /* min and max of each count in one MPI_MIN: {p, -p, s, -s}; -1 for an unusable model */
    long long v[4];
    int ok = m != NULL && nn_params(m) != NULL, code;
    nn_status local = NN_OK;
    v[0] = ok ? (long long)nn_param_count(m) : -1;
    v[1] = -v[0];
    v[2] = ok ? (long long)nn_state_count(m) : -1;
    v[3] = -v[2];
    code = MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_LONG_LONG, MPI_MIN, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce");
    if (v[0] == -v[1] && v[2] == -v[3] && v[0] >= 0) return NN_OK;
    if (v[0] < 0) { /* some rank has no usable model: those ranks are the failures */
        if (!ok) local = nn_mpi__fail(NN_ERROR_STATE, "%s: null or uncompiled model", who);
    } else { /* every rank is usable but the counts differ: all fail, rank 0 reports */
        local = nn_mpi__fail(NN_ERROR_SHAPE, "%s: the ranks' models differ (%lld..%lld parameters, %lld..%lld state)",
                             who, v[0], -v[1], v[2], -v[3]);
    }
    return nn_mpi__share_failure(comm, rank, ranks, 0, local != NN_OK, local, who);
}

NNDEF nn_status nn_mpi_broadcast_params(nn_model *m, MPI_Comm comm)
{
    int rank, ranks, code;
    nn_status st = nn_mpi__begin(comm, "nn_mpi_broadcast_params", &rank, &ranks);
    if (st != NN_OK) return st;
    st = nn_mpi__same_model(m, comm, rank, ranks, "nn_mpi_broadcast_params");
    if (st != NN_OK) return st;
    code = nn_mpi__bcast_floats(nn_params(m), nn_param_count(m), 0, comm);
    if (code == MPI_SUCCESS && nn_state_count(m) > 0) code = nn_mpi__bcast_floats(nn_state(m), nn_state_count(m), 0, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, "nn_mpi_broadcast_params", "MPI_Bcast");
    return NN_OK;
}

NNDEF nn_status nn_mpi_average_state(nn_model *m, MPI_Comm comm)
{
    int rank, ranks, code;
    nn_status st = nn_mpi__begin(comm, "nn_mpi_average_state", &rank, &ranks);
    if (st != NN_OK) return st;
    st = nn_mpi__same_model(m, comm, rank, ranks, "nn_mpi_average_state");
    if (st != NN_OK || nn_state_count(m) == 0) return st;
    code = nn_mpi__allreduce_floats(nn_state(m), nn_state_count(m), MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, "nn_mpi_average_state", "MPI_Allreduce");
    nn_scale(nn_state_count(m), 1.0f / (float)ranks, nn_state(m));
    return NN_OK;
}

static uint64_t nn_mpi__hash(uint64_t h, const float *x, size_t count)
{
    const unsigned char *p = (const unsigned char *)x;
    size_t i, n = count * sizeof(float);
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull; /* FNV-1a */
    return h;
}

NNDEF nn_status nn_mpi_check_replicas(nn_model *m, MPI_Comm comm)
{
    int rank, ranks, code;
    unsigned long long h[2];
    nn_status st = nn_mpi__begin(comm, "nn_mpi_check_replicas", &rank, &ranks);
    if (st != NN_OK) return st;
    st = nn_mpi__same_model(m, comm, rank, ranks, "nn_mpi_check_replicas");
    if (st != NN_OK) return st;
    h[0] = nn_mpi__hash(0xCBF29CE484222325ull, nn_params(m), nn_param_count(m));
    h[0] = nn_mpi__hash(h[0], nn_state(m), nn_state_count(m));
    h[1] = ~h[0];
    code = MPI_Allreduce(MPI_IN_PLACE, h, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, "nn_mpi_check_replicas", "MPI_Allreduce");
    if (h[0] != ~h[1])
        return nn_mpi__fail(NN_ERROR_STATE, "nn_mpi_check_replicas: the %d ranks' parameters or state differ", ranks);
    return NN_OK;
}

/* After the small allreduce: the gradient, scaled by local/global, summed over the ranks. */
static nn_status nn_mpi__sum_grads(nn_model *m, int local_count, double global_count, MPI_Comm comm, const char *who)
{
    const size_t n = nn_param_count(m);
    float *g = nn_grads(m);
    int code;
    if (local_count == 0) memset(g, 0, n * sizeof(float)); /* an empty shard adds nothing */
    else if ((double)local_count != global_count && !nn_mpi__grad_is_sum(m)) nn_scale(n, (float)((double)local_count / global_count), g);
    code = nn_mpi__allreduce_floats(g, n, MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce of the gradient");
    return NN_OK;
}

NNDEF nn_status nn_mpi_allreduce_grads(nn_model *m, int local_count, MPI_Comm comm, int *global_count)
{
    static const char who[] = "nn_mpi_allreduce_grads";
    int rank, ranks, code;
    double meta[2];
    nn_status st = nn_mpi__begin(comm, who, &rank, &ranks), local = NN_OK;
    if (st != NN_OK) return st;
    if (!m || !nn_grads(m)) local = nn_mpi__fail(NN_ERROR_STATE, "%s: null or uncompiled model", who);
    else if (local_count < 0) local = nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: local count %d", who, local_count);
    meta[0] = local == NN_OK ? (double)local_count : 0.0;
    meta[1] = local != NN_OK;
    code = MPI_Allreduce(MPI_IN_PLACE, meta, 2, MPI_DOUBLE, MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce");
    if (meta[1] > 0) return nn_mpi__share_failure(comm, rank, ranks, (int)meta[1], local != NN_OK, local, who);
    if (meta[0] <= 0) return nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: every shard is empty", who);
    if (global_count) *global_count = (int)meta[0];
    return nn_mpi__sum_grads(m, local_count, meta[0], comm, who);
}

NNDEF nn_status nn_mpi_train_step(nn_model *m, nn_optimizer *opt, const float *x, const int *labels,
                                  const float *targets, int local_count, MPI_Comm comm, float *loss)
{
    static const char who[] = "nn_mpi_train_step";
    int rank, ranks, code;
    float local_loss = 0.0f, norm;
    double meta[3], t0 = MPI_Wtime(), t1, t2, t3;
    nn_status st = nn_mpi__begin(comm, who, &rank, &ranks), local = NN_OK;
    if (st != NN_OK) return st;
    /* 1. the local shard: a failure here is reported to every rank below, not left as a hang */
    if (!m || !nn_grads(m)) local = nn_mpi__fail(NN_ERROR_STATE, "%s: null or uncompiled model", who);
    else if (!opt) local = nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: null optimizer", who);
    else if (local_count < 0) local = nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: local count %d", who, local_count);
    else if (local_count > 0) {
        /* the step's own gradient, as nn_train_step's, whatever the accumulation mode */
        if (nn_get_grad_accumulation(m)) local = nn_zero_grads(m);
        if (local == NN_OK) local = nn_compute_gradients(m, x, labels, targets, local_count, &local_loss);
        if (local != NN_OK) nn_mpi__from_nn(local, who);
    }
    t1 = MPI_Wtime();
    /* 2. global count, loss sum and failures */
    meta[0] = local == NN_OK ? (double)local_count : 0.0;
    meta[1] = local == NN_OK && local_count > 0 ? (double)local_loss * local_count : 0.0;
    meta[2] = local != NN_OK;
    code = MPI_Allreduce(MPI_IN_PLACE, meta, 3, MPI_DOUBLE, MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce");
    if (meta[2] > 0) return nn_mpi__share_failure(comm, rank, ranks, (int)meta[2], local != NN_OK, local, who);
    if (meta[0] <= 0) return nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: every shard is empty", who);
    t2 = MPI_Wtime();
    /* 3. the gradient of the global batch mean, identical on every rank */
    st = nn_mpi__sum_grads(m, local_count, meta[0], comm, who);
    if (st != NN_OK) return st;
    t3 = MPI_Wtime();
    if (loss) *loss = (float)(meta[1] / meta[0]);
    /* 4. the same decision and the same update everywhere */
    norm = nn_sum_squares(nn_param_count(m), nn_grads(m));
    if ((!isfinite(meta[1]) || !isfinite(norm)) && !nn_mpi__keep_going(m))
        return nn_mpi__fail(NN_ERROR_NONFINITE, "%s: %s is not finite (loss %g); the update was skipped on every rank",
                            who, isfinite(meta[1]) ? "the gradient" : "the loss", meta[1] / meta[0]);
    st = nn_optimizer_step(m, opt);
    if (st != NN_OK) return nn_mpi__from_nn(st, who);
    nn_mpi__stats.steps++;
    nn_mpi__stats.compute_seconds += (t1 - t0) + (MPI_Wtime() - t3);
    nn_mpi__stats.sync_seconds += t2 - t1;
    nn_mpi__stats.allreduce_seconds += t3 - t2;
    return NN_OK;
}

NNDEF nn_status nn_mpi_evaluate(nn_model *m, const nn_dataset *ds, MPI_Comm comm, nn_metrics *out)
{
    static const char who[] = "nn_mpi_evaluate";
    int rank, ranks, first = 0, count = 0, code;
    double sums[4] = {0.0, 0.0, 0.0, 0.0}; /* loss sum, correct, count, failed */
    nn_status st = nn_mpi__begin(comm, who, &rank, &ranks), local = NN_OK;
    if (st != NN_OK) return st;
    if (!ds || ds->count <= 0 || !ds->x) {
        local = nn_mpi__fail(NN_ERROR_ARGUMENT, "%s: empty dataset", who);
    } else {
        nn_mpi_shard(ds->count, rank, ranks, &first, &count);
        if (count > 0) {
            nn_dataset view = *ds;
            nn_metrics part;
            const size_t size = (size_t)nn_dataset_sample_size(ds);
            view.count = count;
            view.x = ds->x + (size_t)first * size;
            if (ds->labels) view.labels = ds->labels + first;
            if (ds->targets) view.targets = ds->targets + (size_t)first * ds->target_size;
            local = nn_evaluate(m, &view, &part);
            if (local != NN_OK) nn_mpi__from_nn(local, who);
            else {
                sums[0] = part.loss * count;
                sums[1] = part.correct;
                sums[2] = count;
            }
        }
    }
    sums[3] = local != NN_OK;
    code = MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, comm);
    if (code != MPI_SUCCESS) return nn_mpi__mpi_fail(code, who, "MPI_Allreduce");
    if (sums[3] > 0) return nn_mpi__share_failure(comm, rank, ranks, (int)sums[3], local != NN_OK, local, who);
    if (out) {
        out->count = (int)sums[2];
        out->correct = (int)sums[1];
        out->loss = sums[0] / sums[2];
        out->accuracy = 100.0 * sums[1] / sums[2];
    }
    return NN_OK;
}

NNDEF void nn_mpi_get_stats(nn_mpi_stats *out)
{
    if (out) *out = nn_mpi__stats;
}
NNDEF void nn_mpi_reset_stats(void) { memset(&nn_mpi__stats, 0, sizeof nn_mpi__stats); }

#endif /* NN_MPI__IMPLEMENTATION_DONE */
#endif /* NN_MPI_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
   MIT License

   Copyright (c) 2026 the nn.h authors

   Permission is hereby granted, free of charge, to any person obtaining a copy
   of this software and associated documentation files (the "Software"), to deal
   in the Software without restriction, including without limitation the rights
   to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
   copies of the Software, and to permit persons to whom the Software is
   furnished to do so, subject to the following conditions:

   The above copyright notice and this permission notice shall be included in all
   copies or substantial portions of the Software.

   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
   FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
   AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
   LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
   SOFTWARE.
------------------------------------------------------------------------------
*/
