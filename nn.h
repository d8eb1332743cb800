/* nn.h - a single-header neural-network library in C99, with SIMD kernels chosen at run time.

   QUICK START
   -----------
   In exactly ONE C or C++ file of your project:

       #define NN_IMPLEMENTATION
       #include "nn.h"

   and include "nn.h" without the define everywhere else. Build with any C99 or C++ compiler,
   no -m flags needed: the AVX2 and AVX-512 kernels carry their own target attributes and are
   chosen at run time from what the CPU (and the OS) support. Add -fopenmp for threads.

       nn_model *m = nn_model_new(42);
       nn_node *x = nn_input(m, 1, 28, 28);
       nn_node *h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, x, 6, 5, 1, 0, NN_BIAS), 2, 2));
       h = nn_relu(m, nn_maxpool2d(m, nn_conv2d(m, h, 16, 5, 1, 0, NN_BIAS), 2, 2));
       h = nn_relu(m, nn_linear(m, nn_flatten(m, h), 120, NN_BIAS));
       h = nn_relu(m, nn_linear(m, h, 84, NN_BIAS));
       nn_node *y = nn_linear(m, h, 10, NN_BIAS);
       if (nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 64) != NN_OK)
           fprintf(stderr, "%s\n", nn_last_error());
       nn_optimizer opt = nn_sgd(0.01f, 0.9f, 0.0f);
       float loss;
       nn_train_step(m, &opt, images, labels, NULL, 64, &loss);   // images: 64*784 floats
       nn_save(m, "lenet.nn");                                   // nn_load() checks everything
       nn_optimizer_free(&opt);
       nn_model_free(m);

   BUILD OPTIONS (define before including)
   ---------------------------------------
       NN_IMPLEMENTATION   emit the implementation in this translation unit
       NN_STATIC           make every function static (private to one file)
       NN_MALLOC(size) / NN_FREE(ptr)   replace malloc/free (define both)
       NN_NO_SIMD          compile only the portable scalar kernels
       NN_ASSERT(x)        replace assert() for the library's own invariants
   Environment at run time:
       NN_BACKEND=scalar|avx2|avx512|neon   force a kernel table (default: the fastest available)
       NN_THREADS=N                          thread count when built with -fopenmp

   CONVENTIONS
   -----------
   Tensors are float32, row-major, NCHW. Functions that can fail return nn_status; on failure
   nn_last_error() says what went wrong and nothing the caller owns has been changed.
   Sizes are int (every tensor the library handles has fewer than 2^31 elements per dimension,
   products are checked for overflow) or size_t for flat buffers.

   API GROUPS (see docs/api.md for the one-line contract of each function)
   ----------
   errors        nn_last_error, nn_status_name
   platform      nn_set_backend, nn_backend_name, nn_backend_supported, nn_set_threads, nn_threads,
                 nn_seconds, nn_rng_*
   kernels       nn_sgemm, nn_conv2d_*, nn_maxpool2d_*, nn_avgpool2d_*, nn_global_avgpool_*,
                 nn_activation_*, nn_vec_exp, nn_vec_tanh, nn_softmax_*, nn_log_softmax_*,
                 nn_softmax_cross_entropy, nn_axpy, nn_scale, nn_add, nn_dot, nn_sum,
                 nn_sum_squares, nn_bias_*
   graph         nn_model_new/free, nn_input, nn_linear, nn_conv2d, pooling, nn_batchnorm,
                 nn_dropout, nn_flatten, nn_add_nodes, activations, nn_compile
   training      nn_forward, nn_backward, nn_train_step, nn_optimizer_*, nn_sgd, nn_adam,
                 nn_adamw, nn_rmsprop, nn_init_*, nn_evaluate, nn_confusion_matrix, nn_fit
   data & files  nn_mnist_load, nn_dataset_*, nn_save, nn_load

   LICENSE: MIT (see the end of this file).
*/
#ifndef NN_H_INCLUDED
#define NN_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

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

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
   1. Errors
   ====================================================================================== */
typedef enum nn_status {
    NN_OK = 0,
    NN_ERROR_ARGUMENT,    /* a null pointer, a negative size, an unknown name or value */
    NN_ERROR_SHAPE,       /* shapes that do not fit together */
    NN_ERROR_MEMORY,      /* an allocation failed */
    NN_ERROR_IO,          /* open, read, write or rename failed */
    NN_ERROR_FORMAT,      /* a file whose contents are not what they claim */
    NN_ERROR_UNSUPPORTED, /* the CPU lacks the requested backend */
    NN_ERROR_NONFINITE,   /* a NaN or infinite loss or gradient; the update was not applied */
    NN_ERROR_STATE        /* called in the wrong order (for example training before nn_compile) */
} nn_status;

/* The message of the most recent failure on this thread ("" if none). */
NNDEF const char *nn_last_error(void);
NNDEF const char *nn_status_name(nn_status status);

/* ======================================================================================
   2. Platform: backends, threads, time, random numbers
   ====================================================================================== */
/* "scalar", "avx2", "avx512", "neon", or "best". An unsupported name keeps the current one. */
NNDEF nn_status nn_set_backend(const char *name);
NNDEF const char *nn_backend_name(void);
NNDEF int nn_backend_supported(const char *name);
/* Threads for the kernels when built with -fopenmp (1 otherwise). 0 means all cores. */
NNDEF nn_status nn_set_threads(int threads);
NNDEF int nn_threads(void);
/* Monotonic wall-clock seconds. */
NNDEF double nn_seconds(void);

/* A small, fast PRNG (splitmix64), identical on every platform. */
typedef struct nn_rng { uint64_t state; } nn_rng;
NNDEF nn_rng nn_rng_new(uint64_t seed);
NNDEF uint32_t nn_rng_u32(nn_rng *rng);
NNDEF uint32_t nn_rng_below(nn_rng *rng, uint32_t bound); /* uniform in [0, bound), bound > 0 */
NNDEF float nn_rng_uniform(nn_rng *rng);                  /* uniform in [0, 1) */
NNDEF float nn_rng_normal(nn_rng *rng);                   /* standard normal */
NNDEF void nn_rng_shuffle(nn_rng *rng, int *values, int count); /* Fisher-Yates */

/* ======================================================================================
   3. Kernels (dispatched to the current backend)
   ====================================================================================== */
typedef enum nn_transpose { NN_NO_TRANSPOSE = 0, NN_TRANSPOSE = 1 } nn_transpose;

/* C = alpha*op(A)*op(B) + beta*C, row-major. op(A) is m x k, op(B) is k x n.
   workspace: nn_sgemm_workspace_size() floats, 64-byte aligned, or NULL to let the call
   allocate (and free) its own. When beta == 0, C is not read (it may hold NaNs). */
NNDEF size_t nn_sgemm_workspace_size(void);
NNDEF nn_status nn_sgemm(nn_transpose transpose_a, nn_transpose transpose_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                         float *c, int ldc, float *workspace);

/* 2-D convolution, NCHW input, weights [out_channels][in_channels][kernel_h][kernel_w]. */
typedef struct nn_conv2d_shape {
    int batch, in_channels, in_height, in_width;
    int out_channels, kernel_height, kernel_width;
    int stride_height, stride_width, pad_height, pad_width;
} nn_conv2d_shape;
/* Checks the shape; fills the output size. */
NNDEF nn_status nn_conv2d_output_size(const nn_conv2d_shape *shape, int *out_height, int *out_width);
NNDEF size_t nn_conv2d_workspace_size(const nn_conv2d_shape *shape); /* floats */
/* y = conv(x, w) + bias (bias may be NULL). workspace may be NULL (allocated per call). */
NNDEF nn_status nn_conv2d_forward(const nn_conv2d_shape *shape, const float *x, const float *w,
                                  const float *bias, float *y, float *workspace);
/* dx = gradient with respect to x (overwritten). */
NNDEF nn_status nn_conv2d_backward_data(const nn_conv2d_shape *shape, const float *dy,
                                        const float *w, float *dx, float *workspace);
/* dw (and dbias if not NULL) = gradients with respect to the weights, summed over the batch
   (overwritten). */
NNDEF nn_status nn_conv2d_backward_weight(const nn_conv2d_shape *shape, const float *x,
                                          const float *dy, float *dw, float *dbias, float *workspace);

/* Pooling windows over NCHW tensors; padded cells never win a max and count as zeros in an
   average (PyTorch's count_include_pad=True). */
typedef struct nn_pool2d_shape {
    int batch, channels, in_height, in_width;
    int kernel_height, kernel_width, stride_height, stride_width, pad_height, pad_width;
} nn_pool2d_shape;
NNDEF nn_status nn_pool2d_output_size(const nn_pool2d_shape *shape, int *out_height, int *out_width);
/* argmax (may be NULL) records the input index of each output's maximum, for the backward. */
NNDEF void nn_maxpool2d_forward(const nn_pool2d_shape *shape, const float *x, float *y, int32_t *argmax);
NNDEF void nn_maxpool2d_backward(const nn_pool2d_shape *shape, const float *dy, const int32_t *argmax, float *dx);
NNDEF void nn_avgpool2d_forward(const nn_pool2d_shape *shape, const float *x, float *y);
NNDEF void nn_avgpool2d_backward(const nn_pool2d_shape *shape, const float *dy, float *dx);
/* x [batch][channels][spatial] -> y [batch][channels] */
NNDEF void nn_global_avgpool_forward(int batch, int channels, int spatial, const float *x, float *y);
NNDEF void nn_global_avgpool_backward(int batch, int channels, int spatial, const float *dy, float *dx);

typedef enum nn_activation {
    NN_ACTIVATION_IDENTITY = 0,
    NN_ACTIVATION_RELU,
    NN_ACTIVATION_LEAKY_RELU,  /* parameter: the negative slope */
    NN_ACTIVATION_SIGMOID,
    NN_ACTIVATION_TANH,
    NN_ACTIVATION_SCALED_TANH  /* 1.7159 * tanh(2x/3), LeCun's "improved sigmoid" */
} nn_activation;
/* y = f(x) elementwise; y may alias x. */
NNDEF void nn_activation_forward(nn_activation kind, float parameter, size_t count, const float *x, float *y);
/* dx = f'(x) * dy, given both x and y = f(x) (each kernel reads whichever it needs); dx may alias dy. */
NNDEF void nn_activation_backward(nn_activation kind, float parameter, size_t count, const float *x,
                                  const float *y, const float *dy, float *dx);
/* Vectorised exp and tanh (max relative error 1e-6 over the normal range; NaN in, NaN out). */
NNDEF void nn_vec_exp(size_t count, const float *x, float *y);
NNDEF void nn_vec_tanh(size_t count, const float *x, float *y);

/* Row-wise softmax and log-softmax of x [rows][cols]; y may alias x. */
NNDEF void nn_softmax_forward(int rows, int cols, const float *x, float *y);
NNDEF void nn_log_softmax_forward(int rows, int cols, const float *x, float *y);
/* dx from y (the forward's output) and dy. */
NNDEF void nn_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx);
NNDEF void nn_log_softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx);
/* Mean cross-entropy of softmax(logits) against integer labels, stable for any finite logits.
   If dlogits is not NULL it receives grad_scale * (softmax - onehot) per row.
   Labels outside [0, cols) make the result NaN. */
NNDEF float nn_softmax_cross_entropy(int rows, int cols, const float *logits, const int *labels,
                                     float *dlogits, float grad_scale);

/* The vector work of training. */
NNDEF void nn_axpy(size_t count, float alpha, const float *x, float *y);  /* y += alpha*x */
NNDEF void nn_scale(size_t count, float alpha, float *x);                  /* x *= alpha */
NNDEF void nn_add(size_t count, const float *x, const float *y, float *z); /* z = x + y */
NNDEF float nn_dot(size_t count, const float *x, const float *y);
NNDEF float nn_sum(size_t count, const float *x);
NNDEF float nn_sum_squares(size_t count, const float *x);
/* x[r][i][s] += bias[i] for r < rows, i < channels, s < spatial (linear: spatial = 1). */
NNDEF void nn_bias_add(int rows, int channels, int spatial, const float *bias, float *x);
/* dbias[i] = sum over r, s of dy[r][i][s] (overwritten). */
NNDEF void nn_bias_backward(int rows, int channels, int spatial, const float *dy, float *dbias);

/* ======================================================================================
   4. Graph: a static graph built once, compiled for a batch size, run many times
   ====================================================================================== */
typedef struct nn_model nn_model;
typedef struct nn_node nn_node;

#define NN_BIAS 1
#define NN_NO_BIAS 0

typedef enum nn_loss {
    NN_LOSS_NONE = 0,             /* inference only */
    NN_LOSS_SOFTMAX_CROSS_ENTROPY,/* output = logits, targets = labels (PyTorch CrossEntropyLoss) */
    NN_LOSS_NLL,                  /* output = log-probabilities (from nn_log_softmax), labels */
    NN_LOSS_MSE,                  /* output vs float targets, mean over all elements (MSELoss) */
    NN_LOSS_SOFTMAX_MSE           /* MSE between softmax(output) and one-hot labels */
} nn_loss;

/* A new, empty model; seed drives initialisation and dropout. NULL when out of memory. */
NNDEF nn_model *nn_model_new(uint64_t seed);
NNDEF void nn_model_free(nn_model *model);

/* Node builders. They return NULL on a bad argument (and the model remembers the error, so
   nn_compile fails with that message: builders can be chained without checks). */
NNDEF nn_node *nn_input(nn_model *model, int channels, int height, int width);
NNDEF nn_node *nn_linear(nn_model *model, nn_node *x, int out_features, int bias);
NNDEF nn_node *nn_conv2d(nn_model *model, nn_node *x, int out_channels, int kernel, int stride,
                         int padding, int bias);
NNDEF nn_node *nn_maxpool2d(nn_model *model, nn_node *x, int kernel, int stride);
NNDEF nn_node *nn_avgpool2d(nn_model *model, nn_node *x, int kernel, int stride);
NNDEF nn_node *nn_global_avgpool(nn_model *model, nn_node *x);
/* Batch normalisation over the channel axis (1-D for vectors, 2-D for images): PyTorch's
   BatchNorm1d/2d with momentum 0.1, eps 1e-5, affine weight 1 and bias 0. */
NNDEF nn_node *nn_batchnorm(nn_model *model, nn_node *x);
NNDEF nn_node *nn_dropout(nn_model *model, nn_node *x, float drop_probability);
NNDEF nn_node *nn_flatten(nn_model *model, nn_node *x);
NNDEF nn_node *nn_add_nodes(nn_model *model, nn_node *a, nn_node *b); /* residual sum */
NNDEF nn_node *nn_activation(nn_model *model, nn_node *x, nn_activation kind, float parameter);
NNDEF nn_node *nn_relu(nn_model *model, nn_node *x);
NNDEF nn_node *nn_leaky_relu(nn_model *model, nn_node *x, float negative_slope);
NNDEF nn_node *nn_sigmoid(nn_model *model, nn_node *x);
NNDEF nn_node *nn_tanh(nn_model *model, nn_node *x);
NNDEF nn_node *nn_scaled_tanh(nn_model *model, nn_node *x);
NNDEF nn_node *nn_softmax(nn_model *model, nn_node *x);
NNDEF nn_node *nn_log_softmax(nn_model *model, nn_node *x);

/* Plans every buffer for batches of up to max_batch samples, allocates the parameters and
   initialises them with PyTorch's defaults. Smaller batches run without re-planning. */
NNDEF nn_status nn_compile(nn_model *model, nn_node *output, nn_loss loss, int max_batch);

/* Shapes and counts. */
NNDEF int nn_node_size(const nn_node *node); /* features per sample: channels*height*width */
NNDEF void nn_node_shape(const nn_node *node, int *channels, int *height, int *width);
NNDEF int nn_input_size(const nn_model *model);
NNDEF int nn_output_size(const nn_model *model);

/* All trainable parameters live in one flat buffer, their gradients in another of the same
   layout; batch-norm running statistics in a third ("state", saved with the model). */
NNDEF size_t nn_param_count(const nn_model *model);
NNDEF size_t nn_weight_count(const nn_model *model); /* parameters that are not biases */
NNDEF float *nn_params(nn_model *model);
NNDEF float *nn_grads(nn_model *model);
NNDEF size_t nn_state_count(const nn_model *model);
NNDEF float *nn_state(nn_model *model);
/* A layer's weight and bias slices of the flat buffers (count 0 and NULL when absent). */
NNDEF float *nn_node_weights(nn_model *model, nn_node *layer, size_t *count);
NNDEF float *nn_node_bias(nn_model *model, nn_node *layer, size_t *count);
NNDEF float *nn_node_weight_grads(nn_model *model, nn_node *layer, size_t *count);
/* The index-th layer that has parameters (linear, conv2d, batchnorm), in build order, or NULL. */
NNDEF nn_node *nn_layer(nn_model *model, int index);

/* ======================================================================================
   5. Training
   ====================================================================================== */
typedef enum nn_mode { NN_EVAL = 0, NN_TRAIN = 1 } nn_mode;
typedef enum nn_grad_reduction { NN_GRAD_MEAN = 0, NN_GRAD_SUM = 1 } nn_grad_reduction;

/* Gradient over a batch: averaged (PyTorch's default) or summed over the samples. */
NNDEF void nn_set_grad_reduction(nn_model *model, nn_grad_reduction reduction);
/* Compute d(loss)/d(input) in nn_backward (off by default: it costs a layer's backward). */
NNDEF void nn_set_input_gradient(nn_model *model, int enabled);
/* By default a step whose loss or gradient is not finite returns NN_ERROR_NONFINITE and leaves
   the parameters as they were; with keep_going = 1 the update is applied anyway. */
NNDEF void nn_set_nonfinite_policy(nn_model *model, int keep_going);

/* Runs the graph on count samples (count <= max_batch). */
NNDEF nn_status nn_forward(nn_model *model, const float *x, int count, nn_mode mode);
NNDEF const float *nn_output(const nn_model *model); /* [count][nn_output_size] of the last forward */
/* Loss of the last forward against labels (or float targets for NN_LOSS_MSE) and the gradients
   of every parameter (overwriting nn_grads). loss may be NULL. */
NNDEF nn_status nn_backward(nn_model *model, const int *labels, const float *targets, float *loss);
/* Loss only, no gradients (evaluation). */
NNDEF nn_status nn_compute_loss(nn_model *model, const int *labels, const float *targets, float *loss);
NNDEF const float *nn_input_gradient(const nn_model *model); /* [count][nn_input_size] */

typedef enum nn_optimizer_kind { NN_OPTIMIZER_SGD, NN_OPTIMIZER_ADAM, NN_OPTIMIZER_ADAMW, NN_OPTIMIZER_RMSPROP } nn_optimizer_kind;
typedef struct nn_optimizer {
    nn_optimizer_kind kind;
    float learning_rate, weight_decay;
    float momentum, dampening; int nesterov; /* SGD; RMSProp uses momentum too */
    float beta1, beta2, epsilon;             /* Adam, AdamW */
    float alpha;                             /* RMSProp smoothing */
    int64_t step;                            /* updates applied so far */
    float *state;                            /* allocated on the first step (or nn_optimizer_bind) */
    size_t state_count;
} nn_optimizer;
/* PyTorch's defaults: SGD dampening 0, no Nesterov; Adam betas (0.9, 0.999), eps 1e-8; AdamW
   the same with decoupled decay; RMSProp alpha 0.99, eps 1e-8, momentum 0. Fields may be set. */
NNDEF nn_optimizer nn_sgd(float learning_rate, float momentum, float weight_decay);
NNDEF nn_optimizer nn_adam(float learning_rate, float weight_decay);
NNDEF nn_optimizer nn_adamw(float learning_rate, float weight_decay);
NNDEF nn_optimizer nn_rmsprop(float learning_rate, float weight_decay);
NNDEF nn_status nn_optimizer_bind(nn_optimizer *opt, nn_model *model); /* allocates the state */
NNDEF nn_status nn_optimizer_step(nn_optimizer *opt, nn_model *model);
NNDEF void nn_optimizer_reset(nn_optimizer *opt); /* zero the state and the step count */
NNDEF void nn_optimizer_free(nn_optimizer *opt);

/* forward (train mode) + backward + optimizer step. loss may be NULL. */
NNDEF nn_status nn_train_step(nn_model *model, nn_optimizer *opt, const float *x, const int *labels,
                              const float *targets, int count, float *loss);

typedef enum nn_init {
    NN_INIT_PYTORCH = 0,   /* weights Kaiming-uniform(a=sqrt 5), biases U(+-1/sqrt(fan_in)) */
    NN_INIT_ZEROS,
    NN_INIT_CONSTANT,      /* a */
    NN_INIT_NORMAL,        /* N(0, a^2) */
    NN_INIT_UNIFORM,       /* U(a, b) */
    NN_INIT_FAN_IN_NORMAL, /* N(0, 1/fan_in) (LeCun) */
    NN_INIT_XAVIER_UNIFORM,
    NN_INIT_XAVIER_NORMAL,
    NN_INIT_HE_UNIFORM,
    NN_INIT_HE_NORMAL
} nn_init;
/* Re-initialise one layer's weights or biases (layer NULL: every layer that has them) from
   the model's random stream. */
NNDEF nn_status nn_init_weights(nn_model *model, nn_node *layer, nn_init init, float a, float b);
NNDEF nn_status nn_init_biases(nn_model *model, nn_node *layer, nn_init init, float a, float b);

/* ======================================================================================
   6. Data, metrics, training loop, model files
   ====================================================================================== */
typedef struct nn_dataset {
    int count;                       /* samples */
    int channels, height, width;     /* per-sample shape */
    int classes;                     /* labels are in [0, classes) */
    float *x;                        /* [count][channels*height*width] */
    int *labels;                     /* [count] */
} nn_dataset;

/* Reads an IDX image file and its label file (MNIST, Fashion-MNIST). Pixels become floats with
   their raw values 0..255; scale or normalise afterwards. Every header field is checked
   against the others and against the file size. */
NNDEF nn_status nn_mnist_load(const char *images_path, const char *labels_path, nn_dataset *out);
NNDEF void nn_dataset_free(nn_dataset *ds);
NNDEF int nn_dataset_sample_size(const nn_dataset *ds);
/* Mean and standard deviation (population) of every value, computed in double. */
NNDEF void nn_dataset_stats(const nn_dataset *ds, double *mean, double *std);
/* x = (x - mean) / std for every value. */
NNDEF void nn_dataset_normalize(nn_dataset *ds, double mean, double std);
NNDEF void nn_dataset_scale(nn_dataset *ds, double factor);
/* A copy of samples [first, first+count). */
NNDEF nn_status nn_dataset_slice(const nn_dataset *ds, int first, int count, nn_dataset *out);
/* Shuffles the labels among the samples (the random-labels experiment). */
NNDEF void nn_dataset_shuffle_labels(nn_dataset *ds, nn_rng *rng);
/* Copies the samples idx[0..count) into x and labels (either may be NULL). */
NNDEF void nn_dataset_gather(const nn_dataset *ds, const int *idx, int count, float *x, int *labels);

typedef struct nn_metrics { double loss; double accuracy; int correct, count; } nn_metrics;
/* Mean loss and accuracy (percent) in eval mode, in batches of the compiled size. */
NNDEF nn_status nn_evaluate(nn_model *model, const nn_dataset *ds, nn_metrics *out);
/* matrix[true_label*classes + predicted] counts, classes = ds->classes. */
NNDEF nn_status nn_confusion_matrix(nn_model *model, const nn_dataset *ds, int *matrix);

typedef struct nn_epoch_report {
    int epoch;                  /* 1-based */
    int64_t steps;              /* optimizer steps so far */
    double train_loss;          /* mean of the epoch's minibatch losses */
    double train_accuracy;      /* percent, of the epoch's minibatch predictions */
    double val_loss, val_accuracy; /* at the epoch's end, if a validation set was given */
    double seconds;             /* wall time of the epoch's training */
} nn_epoch_report;

typedef struct nn_fit_options {
    int epochs, batch_size;
    int shuffle;                     /* reshuffle each epoch (1 by default from nn_fit_defaults) */
    uint64_t seed;                   /* for the shuffling */
    const nn_dataset *validation;    /* may be NULL */
    int checks_per_epoch;            /* validations per epoch for early stopping (>= 1) */
    int patience;                    /* stop after this many checks without a better val loss; 0 = never */
    int progress;                    /* -1 auto (stderr is a terminal), 0 off, 1 on */
    /* Called after each epoch; return non-zero to stop training. */
    int (*on_epoch)(const nn_epoch_report *report, void *user);
    void *user;
} nn_fit_options;
typedef struct nn_fit_result {
    int epochs;                      /* epochs run (the last one may be partial when early stopping) */
    int64_t steps;
    int stopped_early;
    double best_val_loss;
    double seconds;
} nn_fit_result;
NNDEF nn_fit_options nn_fit_defaults(int epochs, int batch_size);
NNDEF nn_status nn_fit(nn_model *model, nn_optimizer *opt, const nn_dataset *train,
                       const nn_fit_options *options, nn_fit_result *result);

/* Model files: magic, version, architecture fingerprint, counts and CRC-32, little-endian.
   nn_save writes a temporary file and renames it over path; nn_load checks everything before
   it changes the model and leaves it untouched on any error. */
NNDEF nn_status nn_save(const nn_model *model, const char *path);
NNDEF nn_status nn_load(nn_model *model, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* NN_H_INCLUDED */
