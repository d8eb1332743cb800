/* test_threads.c - cmocka tests of nn.h used from several threads (pthreads): a model runs one
   pass at a time, and the process-wide choices made on first use (the thread count and the
   kernel table) do not race.

   1. First compiles at once (this test runs first, before anything else of the library has
      run in this process): 4 threads meet at a barrier, then each builds, compiles and runs its
      own first model, so they race to choose the thread count and (without a backend argument)
      the kernel table. Each output must equal, bit for bit, that of the same model built again
      afterwards on the main thread; every thread must have seen the same nn_threads() and
      nn_backend_name().
   2. A busy model refuses every entry: a holder thread sits inside nn_train_epoch's on_step
      callback (inside a pass, deterministically: no timing), and there first calls nn_evaluate
      on the same model itself (re-entry from the holding thread works). Meanwhile the main
      thread calls every public entry that reads or writes the model's buffers: each returns
      NN_ERROR_STATE with "<function>: the model is in use by another thread", and nothing
      changes (parameters, batch-norm state, the optimizer passed in stays unbound, a
      nn_fit_state stays zeroed, nn_save writes no file). Released, the model works again.
   3. The hold is released on every path: after failing calls of several kinds on the main
      thread (bad count, NaN input, a dataset that does not fit, a missing file, an optimizer
      bound to another model, an error inside nn_fit), another thread's nn_forward succeeds.
   4. Hammering: 4 threads share one model and call nn_forward and nn_evaluate in a loop. At
      their first call the holder (as in 2) is inside a pass, so each gets NN_ERROR_STATE (at
      least 4 refusals, certain). Once the holder has left, they run freely: every call returns
      NN_OK or NN_ERROR_STATE (the first to come succeeds), and every nn_evaluate that succeeds
      reports exactly the single-thread loss and correct count (bit for bit). Last, each thread in turn evaluates alone: NN_OK and the
      same answer. The answer of a pass is checked through nn_evaluate, which computes it while
      holding the model: nn_output's pointer is read outside any pass, so another thread's
      next pass may overwrite what it points to (the manual says so).

   5. Inference contexts: 4 threads, one model, a context each, many batches: bit for bit the
      model's own eval forward; a context refuses a model held by another thread's pass.

   make test also builds this file with -fsanitize=thread, without -fopenmp (libgomp is not
   built with ThreadSanitizer, so its own synchronisation would be reported as races), and
   runs it on the best backend with no backend argument (the kernel table is chosen lazily by
   test 1's threads). */
#define _POSIX_C_SOURCE 200809L /* pthread barriers, mkdtemp */
#include "test_common.h"
#include <pthread.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

#define IN 16
#define HIDDEN 24
#define OUT 4
#define SAMPLES 40

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail_msg("out of memory (%lu bytes)", (unsigned long)bytes);
    return p;
}

/* 16 -> 24 (batch norm, ReLU) -> 4, softmax cross-entropy: batch norm so that a pass also
   writes the model's state. NULL if it does not compile (the caller reports nn_last_error). */
static nn_model *build(uint64_t seed, int batch_norm)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_linear(m, nn_input(m, IN, 1, 1), HIDDEN, NN_BIAS);
    if (batch_norm) h = nn_batchnorm(m, h);
    h = nn_linear(m, nn_relu(m, h), OUT, NN_BIAS);
    if (nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, SAMPLES) != NN_OK) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

static void make_data(nn_dataset *ds, int count)
{
    int i;
    memset(ds, 0, sizeof *ds);
    ds->count = count;
    ds->channels = IN;
    ds->height = ds->width = 1;
    ds->classes = OUT;
    ds->x = (float *)xmalloc((size_t)count * IN * sizeof(float));
    ds->labels = (int *)xmalloc((size_t)count * sizeof(int));
    nn_test_fill(ds->x, (size_t)count * IN, -1.0f, 1.0f);
    for (i = 0; i < count; i++) ds->labels[i] = i % OUT;
}

static void free_data(nn_dataset *ds)
{
    free(ds->x);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

static void start(pthread_t *t, void *(*body)(void *), void *arg)
{
    if (pthread_create(t, NULL, body, arg) != 0) fail_msg("pthread_create failed");
}

/* ------------------------------------------------------------------ 1. first compiles at once */
#define RACERS 4
typedef struct racer {
    pthread_barrier_t *go;
    int index;
    nn_status st;
    char message[256];
    int threads;
    const char *backend;
    float out[8 * OUT];
} racer;

static float race_input[8 * IN];

static void *race_body(void *arg)
{
    racer *r = (racer *)arg;
    nn_model *m;
    pthread_barrier_wait(r->go);
    m = build(100 + (uint64_t)r->index, 0);
    r->st = m ? nn_forward(m, race_input, 8, NN_EVAL) : NN_ERROR_STATE;
    snprintf(r->message, sizeof r->message, "%s", m && r->st == NN_OK ? "" : nn_last_error());
    if (r->st == NN_OK) memcpy(r->out, nn_output(m), sizeof r->out);
    r->threads = nn_threads();
    r->backend = nn_backend_name();
    nn_model_free(m);
    return NULL;
}

static void test_first_compiles_race(void **state)
{
    pthread_barrier_t go;
    pthread_t t[RACERS];
    racer r[RACERS];
    int i;
    (void)state;
    nn_test_fill(race_input, COUNT(race_input), -1.0f, 1.0f);
    pthread_barrier_init(&go, NULL, RACERS);
    for (i = 0; i < RACERS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].go = &go;
        r[i].index = i;
        start(&t[i], race_body, &r[i]);
    }
    for (i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < RACERS; i++) {
        nn_model *m;
        if (r[i].st != NN_OK) fail_msg("thread %d: its first model failed: %s (%s)", i, nn_status_name(r[i].st), r[i].message);
        if (r[i].threads != nn_threads() || r[i].threads < 1 || strcmp(r[i].backend, nn_backend_name()) != 0)
            fail_msg("thread %d saw %d threads and the %s backend; now %d and %s", i, r[i].threads, r[i].backend,
                     nn_threads(), nn_backend_name());
        m = build(100 + (uint64_t)i, 0);
        if (!m) fail_msg("nn_compile: %s", nn_last_error());
        ASSERT_OK(nn_forward(m, race_input, 8, NN_EVAL));
        if (memcmp(nn_output(m), r[i].out, sizeof r[i].out) != 0)
            fail_msg("thread %d: the output of its model differs from the same model's on one thread", i);
        nn_model_free(m);
    }
}

/* ------------------------------------------------------------------ the holder */
/* A thread inside a pass on a model until released: nn_train_epoch (SGD with learning rate 0:
   the parameters stay as they are) calls on_step inside its pass; there the holder evaluates
   the model itself, then meets the others at `inside` and waits at `release`. */
typedef struct holder {
    nn_model *model;
    const nn_dataset *data;
    pthread_barrier_t inside, release;
    nn_status st, reentry;
    nn_metrics reentry_metrics;
} holder;

static int hold_step(int64_t step, float loss, void *user)
{
    holder *h = (holder *)user;
    (void)step;
    (void)loss;
    h->reentry = nn_evaluate(h->model, h->data, &h->reentry_metrics);
    pthread_barrier_wait(&h->inside);
    pthread_barrier_wait(&h->release);
    return 1;
}

static void *hold_body(void *arg)
{
    holder *h = (holder *)arg;
    nn_optimizer still = nn_sgd(0.0f, 0.0f, 0.0f);
    h->st = nn_train_epoch(h->model, &still, h->data, 8, NULL, 1, hold_step, h, NULL);
    nn_optimizer_free(&still);
    return NULL;
}

/* Starts a holder with `waiters` other threads to meet at its barriers. */
static void hold_start(holder *h, pthread_t *t, nn_model *m, const nn_dataset *data, unsigned waiters)
{
    memset(h, 0, sizeof *h);
    h->model = m;
    h->data = data;
    h->reentry = NN_ERROR_STATE;
    pthread_barrier_init(&h->inside, NULL, waiters + 1);
    pthread_barrier_init(&h->release, NULL, waiters + 1);
    start(t, hold_body, h);
}

/* After the holder thread was joined. */
static void hold_finish(holder *h, const nn_metrics *alone)
{
    pthread_barrier_destroy(&h->inside);
    pthread_barrier_destroy(&h->release);
    if (h->st != NN_OK) fail_msg("the holder's nn_train_epoch: %s", nn_status_name(h->st));
    if (h->reentry != NN_OK) fail_msg("nn_evaluate from an on_step callback (the thread holding the model): %s",
                                      nn_status_name(h->reentry));
    if (alone && (h->reentry_metrics.loss != alone->loss || h->reentry_metrics.correct != alone->correct))
        fail_msg("nn_evaluate from the callback: loss %.17g, %d correct; alone %.17g, %d", h->reentry_metrics.loss,
                 h->reentry_metrics.correct, alone->loss, alone->correct);
}

/* ------------------------------------------------------------------ 2. every entry refuses */
typedef enum entry {
    E_FORWARD, E_BACKWARD, E_COMPUTE_LOSS, E_COMPUTE_GRADIENTS, E_TRAIN_STEP, E_OPTIMIZER_BIND, E_OPTIMIZER_STEP, E_EVALUATE,
    E_CONFUSION_MATRIX, E_INPUT_GRADIENT_NORM, E_FIT, E_TRAIN_EPOCH, E_SAVE, E_LOAD, E_COMPILE, E_INIT_WEIGHTS,
    E_INIT_BIASES, E_PARAMS_INTERPOLATE, E_PARAMS_COPY_TO, E_PARAMS_COPY_FROM, E_BACKWARD_FROM, E_ZERO_GRADS,
    E_CLIP_GRAD_NORM, E_CLIP_GRAD_VALUE, E_PREDICT, E_PREDICT_CLASSES, E_COUNT
} entry;
static const char *const entry_names[E_COUNT] = {
    "nn_forward", "nn_backward", "nn_compute_loss", "nn_compute_gradients", "nn_train_step", "nn_optimizer_bind",
    "nn_optimizer_step",
    "nn_evaluate", "nn_confusion_matrix", "nn_input_gradient_norm", "nn_fit", "nn_train_epoch", "nn_save", "nn_load",
    "nn_compile", "nn_init_weights", "nn_init_biases", "nn_params_interpolate", "nn_params_copy", "nn_params_copy",
    "nn_backward_from", "nn_zero_grads", "nn_clip_grad_norm", "nn_clip_grad_value", "nn_predict", "nn_predict_classes"};

typedef struct caller {
    nn_model *other;            /* a free model of the same architecture */
    const nn_dataset *data;
    const char *saved, *unsaved; /* a file saved from the model; a path nothing may create */
    nn_optimizer opt;           /* unbound: must stay so */
    nn_fit_state run;           /* zeroed: must stay so */
    float *ab;                  /* two parameter vectors for nn_params_interpolate */
} caller;

static nn_status call_entry(nn_model *m, entry e, caller *c)
{
    const nn_dataset *d = c->data;
    int labels[8], matrix[OUT * OUT];
    float loss;
    double norm;
    nn_metrics metrics;
    nn_fit_options fit = nn_fit_defaults(1, 8);
    const size_t n = nn_param_count(c->other);
    memcpy(labels, d->labels, sizeof labels);
    fit.progress = 0;
    fit.state = &c->run;
    switch (e) {
    case E_FORWARD: return nn_forward(m, d->x, 8, NN_EVAL);
    case E_BACKWARD: return nn_backward(m, labels, NULL, &loss);
    case E_COMPUTE_LOSS: return nn_compute_loss(m, labels, NULL, &loss);
    case E_COMPUTE_GRADIENTS: return nn_compute_gradients(m, d->x, labels, NULL, 8, &loss);
    case E_TRAIN_STEP: return nn_train_step(m, &c->opt, d->x, labels, NULL, 8, &loss);
    case E_OPTIMIZER_BIND: return nn_optimizer_bind(m, &c->opt);
    case E_OPTIMIZER_STEP: return nn_optimizer_step(m, &c->opt);
    case E_EVALUATE: return nn_evaluate(m, d, &metrics);
    case E_CONFUSION_MATRIX: return nn_confusion_matrix(m, d, matrix);
    case E_INPUT_GRADIENT_NORM: return nn_input_gradient_norm(m, d, 8, &norm);
    case E_FIT: return nn_fit(m, &c->opt, d, &fit, NULL);
    case E_TRAIN_EPOCH: return nn_train_epoch(m, &c->opt, d, 8, NULL, 0, NULL, NULL, NULL);
    case E_SAVE: return nn_save(m, c->unsaved);
    case E_LOAD: return nn_load(m, c->saved);
    case E_COMPILE: return nn_compile(m, nn_layer(m, 0), NN_LOSS_NONE, 4);
    case E_INIT_WEIGHTS: return nn_init_weights(m, NULL, NN_INIT_ZEROS, 0.0f, 0.0f);
    case E_INIT_BIASES: return nn_init_biases(m, NULL, NN_INIT_CONSTANT, 1.0f, 0.0f);
    case E_PARAMS_INTERPOLATE: return nn_params_interpolate(m, c->ab, c->ab + n, 0.5f);
    case E_PARAMS_COPY_TO: return nn_params_copy(m, c->other);
    case E_PARAMS_COPY_FROM: return nn_params_copy(c->other, m);
    case E_BACKWARD_FROM: return nn_backward_from(m, c->ab); /* any finite values: refused before they are read */
    case E_ZERO_GRADS: return nn_zero_grads(m);
    case E_CLIP_GRAD_NORM: return nn_clip_grad_norm(m, 1e-3, &norm);
    case E_CLIP_GRAD_VALUE: return nn_clip_grad_value(m, 1e-3);
    case E_PREDICT: return nn_predict(m, d->x, 8, c->ab);
    case E_PREDICT_CLASSES: return nn_predict_classes(m, d->x, 8, labels);
    case E_COUNT: break;
    }
    return NN_OK;
}

static void test_busy_model_refuses_every_entry(void **state)
{
    char dir[64], saved[96], unsaved[96], needle[96];
    nn_dataset data;
    nn_model *m = build(7, 1), *other = build(8, 1);
    nn_metrics alone;
    holder h;
    pthread_t t;
    caller c;
    size_t np, ns;
    float *p0, *s0, *q0;
    int e;
    (void)state;
    if (!m || !other) fail_msg("nn_compile: %s", nn_last_error());
    make_data(&data, SAMPLES);
    strcpy(dir, "/tmp/nn_test_threads_XXXXXX");
    if (!nn_test_mkdtemp(dir)) fail_msg("mkdtemp failed");
    snprintf(saved, sizeof saved, "%s/saved.nn", dir);
    snprintf(unsaved, sizeof unsaved, "%s/unsaved.nn", dir);
    ASSERT_OK(nn_save(m, saved));
    ASSERT_OK(nn_evaluate(m, &data, &alone));
    nn_set_input_gradient(m, 1);
    np = nn_param_count(m);
    ns = nn_state_count(m);
    memset(&c, 0, sizeof c);
    c.other = other;
    c.data = &data;
    c.saved = saved;
    c.unsaved = unsaved;
    c.opt = nn_adam(0.01f, 0.0f);
    c.ab = (float *)xmalloc(2 * np * sizeof(float));
    nn_test_fill(c.ab, 2 * np, -1.0f, 1.0f);

    hold_start(&h, &t, m, &data, 1);
    pthread_barrier_wait(&h.inside);
    /* the holder is inside its pass (it ran one training step with learning rate 0: the
       parameters are the ones saved, the batch-norm state has moved) */
    p0 = (float *)xmalloc(np * sizeof(float));
    s0 = (float *)xmalloc(ns * sizeof(float));
    q0 = (float *)xmalloc(np * sizeof(float));
    memcpy(p0, nn_params(m), np * sizeof(float));
    memcpy(s0, nn_state(m), ns * sizeof(float));
    memcpy(q0, nn_params(other), np * sizeof(float));
    for (e = 0; e < E_COUNT; e++) {
        nn_status st = call_entry(m, (entry)e, &c);
        snprintf(needle, sizeof needle, "%s: the model is in use by another thread", entry_names[e]);
        if (st != NN_ERROR_STATE || !strstr(nn_last_error(), needle)) {
            pthread_barrier_wait(&h.release);
            pthread_join(t, NULL);
            fail_msg("%s on a model another thread is inside: %s (\"%s\"), expected NN_ERROR_STATE and \"%s\"",
                     entry_names[e], nn_status_name(st), nn_last_error(), needle);
        }
    }
    if (memcmp(p0, nn_params(m), np * sizeof(float)) || memcmp(s0, nn_state(m), ns * sizeof(float)) ||
        memcmp(q0, nn_params(other), np * sizeof(float)))
        fail_msg("a refused call changed the parameters or the batch-norm state");
    if (c.opt.state || c.opt.bound_model || c.opt.step) fail_msg("a refused call bound the optimizer passed to it");
    if (c.run.started || c.run.steps) fail_msg("a refused nn_fit changed its nn_fit_state");
    if (access(unsaved, F_OK) == 0) fail_msg("a refused nn_save wrote %s", unsaved);
    pthread_barrier_wait(&h.release);
    pthread_join(t, NULL);
    hold_finish(&h, NULL);
    if (h.reentry_metrics.count != SAMPLES) fail_msg("nn_evaluate from the callback covered %d samples", h.reentry_metrics.count);
    /* released: the same calls work again (one of each kind) */
    ASSERT_OK(nn_forward(m, data.x, 8, NN_EVAL));
    ASSERT_OK(nn_params_copy(other, m));
    ASSERT_OK(nn_save(m, unsaved));
    remove(saved);
    remove(unsaved);
    rmdir(dir);
    nn_optimizer_free(&c.opt);
    free(c.ab);
    free(p0);
    free(s0);
    free(q0);
    free_data(&data);
    nn_model_free(m);
    nn_model_free(other);
}

/* ------------------------------------------------------------------ 3. released on errors */
typedef struct prober { nn_model *model; const float *x; nn_status st; } prober;
static void *probe_body(void *arg)
{
    prober *p = (prober *)arg;
    p->st = nn_forward(p->model, p->x, 8, NN_EVAL);
    return NULL;
}

/* nn_forward from a new thread: NN_OK unless the model is still held. */
static nn_status forward_elsewhere(nn_model *m, const float *x)
{
    prober p;
    pthread_t t;
    p.model = m;
    p.x = x;
    p.st = NN_ERROR_STATE;
    start(&t, probe_body, &p);
    pthread_join(t, NULL);
    return p.st;
}

static void test_hold_released_on_errors(void **state)
{
    nn_dataset data, wrong;
    nn_model *m = build(9, 1), *other = build(10, 1);
    nn_optimizer opt = nn_sgd(0.1f, 0.0f, 0.0f), foreign = nn_sgd(0.1f, 0.0f, 0.0f);
    nn_fit_options fit = nn_fit_defaults(1, 8);
    float *nan_x = (float *)xmalloc(8 * IN * sizeof(float));
    float loss;
    int labels[8] = {0, 1, 2, 3, 0, 1, 2, 3}, k;
    (void)state;
    if (!m || !other) fail_msg("nn_compile: %s", nn_last_error());
    make_data(&data, SAMPLES);
    make_data(&wrong, 8);
    wrong.channels = IN - 1;
    memcpy(nan_x, data.x, 8 * IN * sizeof(float));
    nan_x[5] = NAN;
    fit.progress = 0;
    ASSERT_OK(nn_optimizer_bind(other, &foreign));
    for (k = 0; k < 7; k++) {
        nn_status st = NN_OK;
        const char *what = "";
        switch (k) {
        case 0: what = "nn_forward, count 0"; st = nn_forward(m, data.x, 0, NN_EVAL); break;
        case 1: what = "nn_train_step, a NaN input"; st = nn_train_step(m, &opt, nan_x, labels, NULL, 8, &loss); break;
        case 2: what = "nn_evaluate, samples of another size"; st = nn_evaluate(m, &wrong, NULL); break;
        case 3: what = "nn_load, a missing file"; st = nn_load(m, "/nonexistent/model.nn"); break;
        case 4: what = "nn_train_step, an optimizer bound to another model";
            st = nn_train_step(m, &foreign, data.x, labels, NULL, 8, &loss); break;
        case 5: { /* a failure inside nn_fit's loop: a NaN sample */
            float keep = data.x[3];
            what = "nn_fit, a NaN sample";
            data.x[3] = NAN;
            st = nn_fit(m, &opt, &data, &fit, NULL);
            data.x[3] = keep;
            break;
        }
        case 6: what = "nn_params_copy, models of other sizes"; st = nn_params_copy(m, NULL); break;
        }
        if (st == NN_OK) fail_msg("%s succeeded", what);
        if (forward_elsewhere(m, data.x) != NN_OK)
            fail_msg("after %s failed (%s), another thread's nn_forward: %s", what, nn_status_name(st), nn_last_error());
    }
    nn_optimizer_free(&opt);
    nn_optimizer_free(&foreign);
    free(nan_x);
    free_data(&data);
    wrong.channels = IN;
    free_data(&wrong);
    nn_model_free(m);
    nn_model_free(other);
}

/* ------------------------------------------------------------------ 4. hammering */
#define HAMMERS 4
typedef struct hammer {
    nn_model *model;
    const nn_dataset *data;
    holder *hold;
    pthread_barrier_t *done;    /* every hammer through its rounds */
    pthread_mutex_t *lock;
    pthread_cond_t *turn_changed;
    int *turn;                  /* -1 until the holder has left; then whose turn it is to evaluate alone */
    int index, rounds;
    nn_metrics alone;           /* the single-thread answer */
    /* results */
    int first_refused, ok, refused, wrong, other;
    nn_status last_bad;
    char message[256];
    int alone_ok;
} hammer;

static void hammer_note(hammer *h, nn_status st, int right)
{
    if (st == NN_OK && right) {
        h->ok++;
    } else if (st == NN_ERROR_STATE && strstr(nn_last_error(), "in use by another thread")) {
        h->refused++;
    } else {
        if (st == NN_OK) h->wrong++;
        else h->other++;
        h->last_bad = st;
        snprintf(h->message, sizeof h->message, "%s", nn_last_error());
    }
}

static int same_answer(const nn_metrics *a, const nn_metrics *b) { return a->loss == b->loss && a->correct == b->correct; }

static void *hammer_body(void *arg)
{
    hammer *h = (hammer *)arg;
    const float *x = h->data->x + (size_t)(h->index * 8) * IN;
    nn_metrics got;
    nn_status st;
    int r;
    /* the holder is inside a pass: a certain refusal */
    pthread_barrier_wait(&h->hold->inside);
    st = nn_forward(h->model, x, 8, NN_EVAL);
    h->first_refused = st == NN_ERROR_STATE && strstr(nn_last_error(), "nn_forward: the model is in use by another thread");
    pthread_barrier_wait(&h->hold->release);
    /* the rounds start once the holder has left (on 2 cores it may otherwise wait for a core
       until the rounds are over): the first call to come then finds the model free */
    pthread_mutex_lock(h->lock);
    while (*h->turn < 0) pthread_cond_wait(h->turn_changed, h->lock);
    pthread_mutex_unlock(h->lock);
    for (r = 0; r < h->rounds; r++) {
        st = nn_forward(h->model, x, 8 - r % 4, NN_EVAL);
        hammer_note(h, st, 1);
        memset(&got, 0, sizeof got);
        st = nn_evaluate(h->model, h->data, &got);
        hammer_note(h, st, st != NN_OK || same_answer(&got, &h->alone));
    }
    /* each thread alone in turn, after the others' rounds */
    pthread_barrier_wait(h->done);
    pthread_mutex_lock(h->lock);
    while (*h->turn != h->index) pthread_cond_wait(h->turn_changed, h->lock);
    pthread_mutex_unlock(h->lock);
    memset(&got, 0, sizeof got);
    st = nn_evaluate(h->model, h->data, &got);
    h->alone_ok = st == NN_OK && same_answer(&got, &h->alone);
    pthread_mutex_lock(h->lock);
    (*h->turn)++;
    pthread_cond_broadcast(h->turn_changed);
    pthread_mutex_unlock(h->lock);
    return NULL;
}

static void test_hammer_one_model(void **state)
{
    nn_dataset data;
    nn_model *m = build(11, 0);
    nn_metrics alone;
    holder hold;
    pthread_t holder_thread, t[HAMMERS];
    pthread_barrier_t done;
    hammer h[HAMMERS];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
    int turn = -1, i, ok = 0, refused = 0;
    (void)state;
    if (!m) fail_msg("nn_compile: %s", nn_last_error());
    make_data(&data, SAMPLES);
    ASSERT_OK(nn_evaluate(m, &data, &alone));
    hold_start(&hold, &holder_thread, m, &data, HAMMERS);
    pthread_barrier_init(&done, NULL, HAMMERS);
    for (i = 0; i < HAMMERS; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].model = m;
        h[i].data = &data;
        h[i].hold = &hold;
        h[i].done = &done;
        h[i].lock = &lock;
        h[i].turn_changed = &turn_changed;
        h[i].turn = &turn;
        h[i].index = i;
        h[i].rounds = 200;
        h[i].alone = alone;
        start(&t[i], hammer_body, &h[i]);
    }
    pthread_join(holder_thread, NULL);
    pthread_mutex_lock(&lock);
    turn = 0;
    pthread_cond_broadcast(&turn_changed);
    pthread_mutex_unlock(&lock);
    for (i = 0; i < HAMMERS; i++) pthread_join(t[i], NULL);
    hold_finish(&hold, &alone);
    pthread_barrier_destroy(&done);
    for (i = 0; i < HAMMERS; i++) {
        if (!h[i].first_refused) fail_msg("thread %d: nn_forward while the holder was inside a pass was not refused", i);
        if (h[i].wrong) fail_msg("thread %d: %d calls returned NN_OK with another answer than one thread's", i, h[i].wrong);
        if (h[i].other)
            fail_msg("thread %d: %d calls failed otherwise, the last %s (%s)", i, h[i].other, nn_status_name(h[i].last_bad),
                     h[i].message);
        if (!h[i].alone_ok) fail_msg("thread %d: nn_evaluate alone did not give one thread's answer", i);
        ok += h[i].ok;
        refused += h[i].refused;
    }
    if (ok + refused != HAMMERS * 2 * 200) fail_msg("%d calls counted, %d made", ok + refused, HAMMERS * 2 * 200);
    if (ok == 0) fail_msg("no call succeeded while threads shared the model (%d refused)", refused);
    print_message("      %d calls succeeded, %d were refused (plus the %d certain refusals)\n", ok, refused, HAMMERS);
    ASSERT_OK(nn_evaluate(m, &data, &alone));
    if (!same_answer(&alone, &h[0].alone)) fail_msg("the model's answer changed");
    pthread_mutex_destroy(&lock);
    pthread_cond_destroy(&turn_changed);
    free_data(&data);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ 5. inference contexts */
#define CTX_THREADS 4
#define CTX_BATCHES 12
#define CTX_ROUNDS 6
#define CTX_IN (3 * 10 * 10)
#define CTX_OUT 5

/* conv 8@3x3 - batch norm - ReLU, a residual conv block, max-pool, dropout, linear 5: every kind
   of buffer a pass writes (arena, argmax, conv workspace, batch-norm saved statistics). */
static nn_model *build_cnn(void)
{
    nn_model *m = nn_model_new(11);
    nn_node *x = nn_input(m, 3, 10, 10), *a, *h;
    a = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 8, 3, 1, 1, NN_NO_BIAS)));
    h = nn_relu(m, nn_add_nodes(m, nn_conv2d(m, a, 8, 3, 1, 1, NN_BIAS), a));
    h = nn_dropout(m, nn_maxpool2d(m, h, 2, 2), 0.3f);
    h = nn_linear(m, h, CTX_OUT, NN_BIAS);
    if (nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8) != NN_OK) fail_msg("nn_compile: %s", nn_last_error());
    return m;
}

typedef struct ctx_worker {
    nn_model *model;
    const float *x;             /* CTX_BATCHES batches of 8 samples */
    const int *counts;          /* samples of each batch */
    const float *want;          /* the model's own nn_forward(NN_EVAL) outputs, per batch */
    int index, passes, wrong;
    nn_status st;
    char message[256];
} ctx_worker;

static void *ctx_body(void *arg)
{
    ctx_worker *w = (ctx_worker *)arg;
    nn_context *c = NULL;
    int round, i;
    w->st = nn_context_new(w->model, &c);
    if (w->st != NN_OK) {
        snprintf(w->message, sizeof w->message, "%s", nn_last_error());
        return NULL;
    }
    for (round = 0; round < CTX_ROUNDS; round++)
        for (i = 0; i < CTX_BATCHES; i++) {
            const int b = (i * (w->index + 1) + round) % CTX_BATCHES; /* each thread its own order */
            w->st = nn_context_forward(c, w->x + (size_t)b * 8 * CTX_IN, w->counts[b]);
            if (w->st != NN_OK) {
                snprintf(w->message, sizeof w->message, "%s", nn_last_error());
                nn_context_free(c);
                return NULL;
            }
            w->passes++;
            if (memcmp(nn_context_output(c), w->want + (size_t)b * 8 * CTX_OUT, (size_t)w->counts[b] * CTX_OUT * sizeof(float)))
                w->wrong++;
        }
    nn_context_free(c);
    return NULL;
}

/* 4 threads, each with its own context on one shared model, run 12 batches (1 to 8 samples) 6
   times each in their own orders: every output equals, bit for bit, the model's own
   nn_forward(NN_EVAL) of that batch, and the model is unchanged. While another thread holds the
   model inside a training pass, a context refuses to run (NN_ERROR_STATE); the holding thread
   itself may use one. */
static void test_inference_contexts(void **state)
{
    nn_model *m = build_cnn();
    nn_optimizer opt = nn_sgd(0.05f, 0.9f, 0.0f);
    float *x = (float *)xmalloc((size_t)CTX_BATCHES * 8 * CTX_IN * sizeof(float));
    float *want = (float *)xmalloc((size_t)CTX_BATCHES * 8 * CTX_OUT * sizeof(float));
    float *params = (float *)xmalloc(nn_param_count(m) * sizeof(float));
    int counts[CTX_BATCHES], labels[8] = {0, 1, 2, 3, 4, 0, 1, 2}, i;
    ctx_worker w[CTX_THREADS];
    pthread_t t[CTX_THREADS];
    nn_context *c = NULL;
    (void)state;
    nn_test_fill(x, (size_t)CTX_BATCHES * 8 * CTX_IN, -1.0f, 1.0f);
    for (i = 0; i < 3; i++) ASSERT_OK(nn_train_step(m, &opt, x + (size_t)i * 8 * CTX_IN, labels, NULL, 8, NULL));
    for (i = 0; i < CTX_BATCHES; i++) {
        counts[i] = 1 + (i * 5) % 8;
        ASSERT_OK(nn_forward(m, x + (size_t)i * 8 * CTX_IN, counts[i], NN_EVAL));
        memcpy(want + (size_t)i * 8 * CTX_OUT, nn_output(m), (size_t)counts[i] * CTX_OUT * sizeof(float));
    }
    memcpy(params, nn_params(m), nn_param_count(m) * sizeof(float));
    for (i = 0; i < CTX_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].model = m;
        w[i].x = x;
        w[i].counts = counts;
        w[i].want = want;
        w[i].index = i;
        start(&t[i], ctx_body, &w[i]);
    }
    for (i = 0; i < CTX_THREADS; i++) pthread_join(t[i], NULL);
    for (i = 0; i < CTX_THREADS; i++) {
        if (w[i].st != NN_OK) fail_msg("context thread %d: %s (%s)", i, nn_status_name(w[i].st), w[i].message);
        if (w[i].passes != CTX_ROUNDS * CTX_BATCHES || w[i].wrong)
            fail_msg("context thread %d: %d of %d passes differ from the model's own forward", i, w[i].wrong, w[i].passes);
    }
    if (memcmp(params, nn_params(m), nn_param_count(m) * sizeof(float))) fail_msg("context passes changed the parameters");
    /* a model held by a training pass on another thread: contexts wait their turn */
    {
        nn_dataset data;
        holder h;
        pthread_t ht;
        nn_model *small = build(5, 1);
        nn_context *sc = NULL;
        float in[IN];
        make_data(&data, SAMPLES);
        memcpy(in, data.x, sizeof in);
        ASSERT_OK(nn_context_new(small, &sc));
        hold_start(&h, &ht, small, &data, 1);
        pthread_barrier_wait(&h.inside);
        {
            const nn_status st = nn_context_forward(sc, in, 1);
            pthread_barrier_wait(&h.release);
            pthread_join(ht, NULL);
            if (st != NN_ERROR_STATE || !strstr(nn_last_error(), "nn_context_forward: the model is running a pass"))
                fail_msg("a context on a model inside another thread's training pass: %s (%s)", nn_status_name(st),
                         nn_last_error());
        }
        hold_finish(&h, NULL);
        ASSERT_OK(nn_context_forward(sc, in, 1));
        nn_context_free(sc);
        free_data(&data);
        nn_model_free(small);
    }
    /* arguments */
    if (nn_context_new(NULL, &c) != NN_ERROR_STATE || c) fail_msg("nn_context_new(NULL): %s", nn_last_error());
    ASSERT_OK(nn_context_new(m, &c));
    if (nn_context_max_batch(c) != 8 || nn_context_output(c)) fail_msg("a new context: max batch or output wrong");
    if (nn_context_forward(c, x, 9) != NN_ERROR_ARGUMENT || nn_context_forward(c, NULL, 1) != NN_ERROR_ARGUMENT)
        fail_msg("nn_context_forward accepted 9 samples or a null input");
    nn_context_free(c);
    nn_optimizer_free(&opt);
    free(x);
    free(want);
    free(params);
    nn_model_free(m);
}

/* test_first_compiles_race must come first: nothing may have chosen the thread count before. */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_first_compiles_race),
    cmocka_unit_test(test_busy_model_refuses_every_entry),
    cmocka_unit_test(test_hold_released_on_errors),
    cmocka_unit_test(test_hammer_one_model),
    cmocka_unit_test(test_inference_contexts),
};

NN_TEST_MAIN("threads", tests)
