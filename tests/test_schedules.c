/* test_schedules.c - learning-rate schedules, gradient clipping and nn_model_summary, run once per
   backend (the schedules are backend-free arithmetic; clipping and nn_fit run the kernels).

   1. Schedules against PyTorch (tests/fixtures/torch_schedules.h, written by
      tests/pytorch/gen_schedules.py): 25 cases of StepLR, MultiStepLR, ExponentialLR,
      CosineAnnealingLR, OneCycleLR (two and three phases, cycled momentum of SGD and Adam) and
      ReduceLROnPlateau (min/max, rel/abs, cooldown, min_lr, eps, driven by a fixed metric
      sequence with plateaus), each also behind a linear warm-up, over 50-300 steps. After the
      start and after every step the schedule's rate (a double) must be within 1e-7 relative of
      PyTorch's (|got - want| <= 1e-7 * |want|; exact when PyTorch's is 0); the worst measured
      error is 0 (the same recurrences in the same order give the same doubles), so the bound
      only leaves room for a libm whose cos rounds differently. The optimizer's rate must be
      that double rounded to float, and a cycled momentum (SGD's momentum, Adam's beta1) the
      PyTorch momentum rounded to float. A copy of a schedule taken mid-run continues exactly as
      the original (its state is plain data), and every bad setting or misuse is refused with a
      message and nothing changed.
   2. Clipping against torch.nn.utils on fixed gradient vectors of a 39-parameter network:
      clip_grad_norm_ above, far above and below the limit and with a limit of 0, clip_grad_value_
      with some and with no values beyond the limit. The returned norm (double) within 1e-6
      relative of PyTorch's float32 norm; the clipped gradients within 2 float ulps of PyTorch's
      (its factor max_norm / (norm + 1e-6) is computed in float32 from a float32 norm, ours in
      double, so the factor may differ in its last bit; measured: 0 ulps in every case);
      untouched, bit for bit, below the limit.
      Non-finite gradients: refused with nothing changed by default, PyTorch's NaNs with the
      keep-going policy.
   3. nn_fit: a schedule stepped per epoch (cosine with warm-up), per step (one-cycle), on the
      validation loss and on the train loss (plateau), and clipping by value and norm, each give
      the rates (in the on_epoch reports) and the parameters (bit for bit) of the same training
      written by hand with nn_train_epoch / nn_compute_gradients, nn_clip_grad_*,
      nn_optimizer_step and nn_schedule_*; options nn_fit cannot use are refused before training.
   4. nn_model_summary: one table line per node the output depends on (an unused branch is left
      out), the totals equal nn_param_count and nn_state_count, the memory lines add up and the
      parameter and gradient bytes are 4 * nn_param_count; a buffer too small is refused with
      nothing written and the needed length reported.
   Each test runs on one thread. */
#include "test_common.h"
#include <float.h>
#include "fixtures/torch_schedules.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

/* st must be `expected`, with a non-empty message that contains `needle` (if not NULL). */
static void expect_error_(nn_status st, nn_status expected, const char *needle, const char *what, int line)
{
    const char *msg = nn_last_error();
    if (st != expected)
        fail_msg("line %d: %s returned %s, expected %s (message \"%s\")", line, what, nn_status_name(st),
                 nn_status_name(expected), msg);
    if (!msg || !*msg) fail_msg("line %d: %s failed without a message", line, what);
    if (needle && !strstr(msg, needle))
        fail_msg("line %d: %s: message \"%s\" does not mention \"%s\"", line, what, msg, needle);
}
#define EXPECT_ERROR(call, expected, needle) expect_error_((call), (expected), (needle), #call, __LINE__)

static int verbose(void)
{
    const char *v = getenv("NN_SCHEDULES_VERBOSE");
    return v && *v && *v != '0';
}

/* ---------------------------------------------------------------------------------------
   1. Schedules against PyTorch
   --------------------------------------------------------------------------------------- */
static nn_schedule schedule_of(const torch_schedule_case *c)
{
    nn_schedule s;
    switch (c->kind) {
    case NN_SCHEDULE_STEP: s = nn_step_lr(c->step_size, c->gamma); break;
    case NN_SCHEDULE_MULTI_STEP: s = nn_multi_step_lr(c->milestones, c->milestone_count, c->gamma); break;
    case NN_SCHEDULE_EXPONENTIAL: s = nn_exponential_lr(c->gamma); break;
    case NN_SCHEDULE_COSINE: s = nn_cosine_annealing_lr(c->t_max, c->min_rate); break;
    case NN_SCHEDULE_ONE_CYCLE:
        s = nn_one_cycle_lr(c->max_rate, c->total_steps);
        s.pct_start = c->pct_start;
        s.div_factor = c->div_factor;
        s.final_div_factor = c->final_div_factor;
        s.three_phase = c->three_phase;
        break;
    default:
        s = nn_reduce_lr_on_plateau(c->factor, c->patience);
        s.cooldown = c->cooldown;
        s.threshold = c->threshold;
        s.eps = c->eps;
        s.min_rate = c->min_rate;
        s.mode_max = c->mode_max;
        s.threshold_abs = c->threshold_abs;
        break;
    }
    if (c->warmup_steps) ASSERT_OK(nn_schedule_warmup(&s, c->warmup_steps, c->warmup_start_factor));
    return s;
}

/* Relative error of got against want (0 when both are 0, infinite when only want is). */
static double rel_error(double got, double want)
{
    if (got == want) return 0.0;
    return want == 0.0 ? INFINITY : fabs(got - want) / fabs(want);
}

static void check_rate(const torch_schedule_case *c, const nn_schedule *s, const nn_optimizer *o, int t, double *worst)
{
    const double e = rel_error(s->rate, c->rates[t]);
    if (!(e <= 1e-7))
        fail_msg("%s: rate after step %d is %.17g, PyTorch %.17g (relative error %.3g)", c->name, t, s->rate, c->rates[t], e);
    if (o->learning_rate != (float)c->rates[t])
        fail_msg("%s: step %d: the optimizer's rate %.9g is not PyTorch's rounded to float (%.9g)", c->name, t,
                 (double)o->learning_rate, (double)(float)c->rates[t]);
    if (c->momenta) {
        const float momentum = c->adam ? o->beta1 : o->momentum;
        if (momentum != (float)c->momenta[t])
            fail_msg("%s: step %d: momentum %.9g, PyTorch %.9g", c->name, t, (double)momentum, c->momenta[t]);
    }
    if (e > *worst) *worst = e;
}

static void test_schedules_match_pytorch(void **state)
{
    size_t i;
    double worst_all = 0.0;
    (void)state;
    for (i = 0; i < COUNT(torch_schedule_cases); i++) {
        const torch_schedule_case *c = &torch_schedule_cases[i];
        nn_schedule s = schedule_of(c);
        nn_optimizer o = c->adam ? nn_adam((float)c->base_rate, 0.0f) : nn_sgd((float)c->base_rate, 0.9f, 0.0f);
        double worst = 0.0;
        int t;
        if ((double)(float)c->base_rate != c->base_rate) fail_msg("%s: the base rate is not a float", c->name);
        ASSERT_OK(nn_schedule_start(&s, &o));
        check_rate(c, &s, &o, 0, &worst);
        for (t = 1; t <= c->steps; t++) {
            if (c->kind == NN_SCHEDULE_PLATEAU) ASSERT_OK(nn_schedule_plateau_step(&s, &o, c->metrics[t]));
            else ASSERT_OK(nn_schedule_step(&s, &o));
            check_rate(c, &s, &o, t, &worst);
        }
        if (s.step != c->steps) fail_msg("%s: %ld steps counted, %d taken", c->name, (long)s.step, c->steps);
        if (verbose()) printf("  %-22s %4d steps, worst relative error %.3g\n", c->name, c->steps, worst);
        if (worst > worst_all) worst_all = worst;
    }
    if (verbose()) printf("  all schedules: worst relative error %.3g\n", worst_all);
}

/* The values of the enum are pinned: checkpoint files will store them. */
static void test_schedule_enum_values(void **state)
{
    (void)state;
    assert_int_equal(NN_SCHEDULE_STEP, 0);
    assert_int_equal(NN_SCHEDULE_MULTI_STEP, 1);
    assert_int_equal(NN_SCHEDULE_EXPONENTIAL, 2);
    assert_int_equal(NN_SCHEDULE_COSINE, 3);
    assert_int_equal(NN_SCHEDULE_ONE_CYCLE, 4);
    assert_int_equal(NN_SCHEDULE_PLATEAU, 5);
    assert_int_equal(NN_SCHEDULE_COUNT, 6);
}

/* A copy taken mid-run is a snapshot: both continue alike (what a checkpoint relies on). */
static void test_schedule_copy_continues(void **state)
{
    const int milestones[3] = {4, 9, 9};
    nn_schedule kinds[6];
    size_t k;
    (void)state;
    kinds[0] = nn_step_lr(3, 0.5);
    kinds[1] = nn_multi_step_lr(milestones, 3, 0.3);
    kinds[2] = nn_exponential_lr(0.9);
    kinds[3] = nn_cosine_annealing_lr(10, 0.01);
    kinds[4] = nn_one_cycle_lr(0.4, 40);
    kinds[5] = nn_reduce_lr_on_plateau(0.5, 1);
    for (k = 0; k < COUNT(kinds); k++) {
        nn_schedule a = kinds[k], b;
        nn_optimizer oa = nn_sgd(0.25f, 0.0f, 0.0f), ob;
        int t;
        ASSERT_OK(nn_schedule_warmup(&a, 3, 0.25));
        ASSERT_OK(nn_schedule_start(&a, &oa));
        for (t = 0; t < 20; t++) {
            if (a.kind == NN_SCHEDULE_PLATEAU) ASSERT_OK(nn_schedule_plateau_step(&a, &oa, 1.0 + (t % 3)));
            else ASSERT_OK(nn_schedule_step(&a, &oa));
        }
        b = a;
        ob = oa;
        for (t = 20; t < 40; t++) {
            if (a.kind == NN_SCHEDULE_PLATEAU) {
                ASSERT_OK(nn_schedule_plateau_step(&a, &oa, 1.0 + (t % 3)));
                ASSERT_OK(nn_schedule_plateau_step(&b, &ob, 1.0 + (t % 3)));
            } else {
                ASSERT_OK(nn_schedule_step(&a, &oa));
                ASSERT_OK(nn_schedule_step(&b, &ob));
            }
            if (memcmp(&a, &b, sizeof a) != 0 || oa.learning_rate != ob.learning_rate || oa.momentum != ob.momentum)
                fail_msg("kind %d: the copy diverged at step %d (%.17g vs %.17g)", (int)a.kind, t + 1, a.rate, b.rate);
        }
        if (a.kind == NN_SCHEDULE_PLATEAU && !(a.rate < 0.25)) fail_msg("the plateau schedule never reduced its rate");
    }
}

/* Each call must fail with `expected` and leave the schedule and the optimizer as they were. */
#define EXPECT_REFUSED(call, s, o, expected, needle) do { \
        nn_schedule s_before_ = *(s); nn_optimizer o_before_ = *(o); \
        EXPECT_ERROR(call, expected, needle); \
        if (memcmp(&s_before_, (s), sizeof s_before_) != 0) fail_msg("line %d: %s changed the schedule", __LINE__, #call); \
        if (memcmp(&o_before_, (o), sizeof o_before_) != 0) fail_msg("line %d: %s changed the optimizer", __LINE__, #call); \
    } while (0)

static void test_schedule_errors(void **state)
{
    const int bad_order[2] = {10, 5}, zero[1] = {0};
    int many[NN_SCHEDULE_MAX_MILESTONES + 1], i;
    nn_optimizer o = nn_sgd(0.1f, 0.9f, 0.0f);
    nn_schedule s;
    (void)state;
    for (i = 0; i <= NN_SCHEDULE_MAX_MILESTONES; i++) many[i] = 10 * (i + 1);
    /* settings refused by nn_schedule_start */
    s = nn_step_lr(0, 0.1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "step_size");
    s = nn_step_lr(10, NAN);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "gamma");
    s = nn_multi_step_lr(bad_order, 2, 0.1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "non-decreasing");
    s = nn_multi_step_lr(zero, 1, 0.1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "positive");
    s = nn_multi_step_lr(NULL, 3, 0.1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "milestones");
    s = nn_multi_step_lr(many, NN_SCHEDULE_MAX_MILESTONES + 1, 0.1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "milestones");
    s = nn_exponential_lr(INFINITY);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "gamma");
    s = nn_cosine_annealing_lr(0, 0.0);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "t_max");
    s = nn_one_cycle_lr(-1.0, 100);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "one cycle");
    s = nn_one_cycle_lr(0.1, 0);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "one cycle");
    s = nn_one_cycle_lr(0.1, 10);
    s.pct_start = 0.1; /* phase 1 ends at step 0: PyTorch divides by zero */
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "empty");
    s = nn_reduce_lr_on_plateau(1.0, 10);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "factor");
    s = nn_reduce_lr_on_plateau(0.1, -1);
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "patience");
    s = nn_step_lr(10, 0.1);
    s.kind = NN_SCHEDULE_COUNT;
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "unknown");
    s = nn_step_lr(10, 0.1);
    s.warmup_steps = 5;
    s.warmup_start_factor = 0.0;
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "warm-up");
    s = nn_step_lr(10, 0.1);
    o.learning_rate = NAN;
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "base rate");
    o.learning_rate = 0.1f;
    EXPECT_ERROR(nn_schedule_start(NULL, &o), NN_ERROR_ARGUMENT, "null");
    EXPECT_ERROR(nn_schedule_start(&s, NULL), NN_ERROR_ARGUMENT, "null");
    /* warm-up arguments */
    EXPECT_REFUSED(nn_schedule_warmup(&s, 0, 0.5), &s, &o, NN_ERROR_ARGUMENT, "steps");
    EXPECT_REFUSED(nn_schedule_warmup(&s, 5, 0.0), &s, &o, NN_ERROR_ARGUMENT, "factor");
    EXPECT_REFUSED(nn_schedule_warmup(&s, 5, 1.5), &s, &o, NN_ERROR_ARGUMENT, "factor");
    EXPECT_REFUSED(nn_schedule_warmup(&s, 5, NAN), &s, &o, NN_ERROR_ARGUMENT, "factor");
    EXPECT_ERROR(nn_schedule_warmup(NULL, 5, 0.5), NN_ERROR_ARGUMENT, "null");
    /* order of calls */
    EXPECT_REFUSED(nn_schedule_step(&s, &o), &s, &o, NN_ERROR_STATE, "nn_schedule_start");
    ASSERT_OK(nn_schedule_start(&s, &o));
    EXPECT_REFUSED(nn_schedule_start(&s, &o), &s, &o, NN_ERROR_STATE, "started");
    EXPECT_REFUSED(nn_schedule_warmup(&s, 5, 0.5), &s, &o, NN_ERROR_STATE, "started");
    EXPECT_REFUSED(nn_schedule_plateau_step(&s, &o, 1.0), &s, &o, NN_ERROR_ARGUMENT, "not a plateau");
    EXPECT_ERROR(nn_schedule_step(&s, NULL), NN_ERROR_ARGUMENT, "null");
    s = nn_reduce_lr_on_plateau(0.5, 2);
    ASSERT_OK(nn_schedule_start(&s, &o));
    EXPECT_REFUSED(nn_schedule_step(&s, &o), &s, &o, NN_ERROR_ARGUMENT, "metric");
    EXPECT_REFUSED(nn_schedule_plateau_step(&s, &o, NAN), &s, &o, NN_ERROR_ARGUMENT, "NaN");
    /* one-cycle: total_steps steps, then a clear error (PyTorch raises) */
    s = nn_one_cycle_lr(0.1, 20);
    ASSERT_OK(nn_schedule_warmup(&s, 4, 0.5));
    ASSERT_OK(nn_schedule_start(&s, &o));
    for (i = 0; i < 24; i++) ASSERT_OK(nn_schedule_step(&s, &o));
    EXPECT_REFUSED(nn_schedule_step(&s, &o), &s, &o, NN_ERROR_STATE, "all its 20 steps");
    nn_optimizer_free(&o);
}

/* ---------------------------------------------------------------------------------------
   2. Clipping against torch.nn.utils
   --------------------------------------------------------------------------------------- */
static nn_model *clip_model(void)
{
    nn_model *m = nn_model_new(5);
    nn_node *h = nn_relu(m, nn_linear(m, nn_input(m, 5, 1, 1), 4, NN_BIAS));
    ASSERT_OK(nn_compile(m, nn_linear(m, h, 3, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 4));
    if (nn_param_count(m) != TORCH_CLIP_PARAMS) fail_msg("clip model: %zu parameters", nn_param_count(m));
    return m;
}

/* Distance in float ulps (same sign, finite). */
static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

static void test_clip_matches_pytorch(void **state)
{
    nn_model *m = clip_model();
    float *g = nn_grads(m);
    size_t i, k;
    (void)state;
    for (k = 0; k < COUNT(torch_clip_cases); k++) {
        const torch_clip_case *c = &torch_clip_cases[k];
        int64_t worst = 0;
        memcpy(g, c->grads, sizeof(float) * TORCH_CLIP_PARAMS);
        if (c->by_value) {
            ASSERT_OK(nn_clip_grad_value(m, c->limit));
        } else {
            double norm = -1.0;
            ASSERT_OK(nn_clip_grad_norm(m, c->limit, &norm));
            if (!(rel_error(norm, c->norm) <= 1e-6)) fail_msg("%s: norm %.9g, PyTorch %.9g", c->name, norm, c->norm);
        }
        if (!c->changed && memcmp(g, c->grads, sizeof(float) * TORCH_CLIP_PARAMS) != 0)
            fail_msg("%s: below the limit, yet the gradients changed", c->name);
        for (i = 0; i < TORCH_CLIP_PARAMS; i++) {
            const int64_t d = ulps(g[i], c->clipped[i]);
            if (d > 2) fail_msg("%s: gradient %zu is %.9g, PyTorch %.9g (%ld ulps)", c->name, i, (double)g[i], (double)c->clipped[i], (long)d);
            if (d > worst) worst = d;
        }
        if (verbose()) printf("  %-16s worst %ld ulps\n", c->name, (long)worst);
    }
    nn_model_free(m);
}

static void test_clip_nonfinite(void **state)
{
    nn_model *m = clip_model();
    float *g = nn_grads(m), before[TORCH_CLIP_PARAMS];
    double norm = -7.0;
    size_t i;
    (void)state;
    nn_test_fill(g, TORCH_CLIP_PARAMS, -1.0f, 1.0f);
    g[3] = NAN;
    memcpy(before, g, sizeof before);
    EXPECT_ERROR(nn_clip_grad_norm(m, 1.0, &norm), NN_ERROR_NONFINITE, "norm is nan");
    if (memcmp(before, g, sizeof before) != 0 || norm != -7.0) fail_msg("a refused clip changed the gradients or the norm");
    EXPECT_ERROR(nn_clip_grad_value(m, 0.5), NN_ERROR_NONFINITE, "gradient 3");
    if (memcmp(before, g, sizeof before) != 0) fail_msg("a refused clip changed the gradients");
    g[3] = -INFINITY;
    memcpy(before, g, sizeof before);
    EXPECT_ERROR(nn_clip_grad_norm(m, 1.0, NULL), NN_ERROR_NONFINITE, "inf");
    EXPECT_ERROR(nn_clip_grad_value(m, 0.5), NN_ERROR_NONFINITE, "-inf");
    if (memcmp(before, g, sizeof before) != 0) fail_msg("a refused clip changed the gradients");
    /* keep going: PyTorch's results (an infinite norm makes the factor 0: inf * 0 = NaN, the rest 0) */
    nn_set_nonfinite_policy(m, 1);
    ASSERT_OK(nn_clip_grad_value(m, 0.5));
    if (g[3] != -0.5f) fail_msg("keep-going clip_grad_value: -inf became %g, want -0.5", (double)g[3]);
    g[3] = -INFINITY;
    ASSERT_OK(nn_clip_grad_norm(m, 1.0, &norm));
    if (!isinf(norm)) fail_msg("norm %g, want inf", norm);
    for (i = 0; i < TORCH_CLIP_PARAMS; i++)
        if (i == 3 ? !isnan(g[i]) : g[i] != 0.0f) fail_msg("keep-going clip by an infinite norm: gradient %zu is %g", i, (double)g[i]);
    g[5] = NAN;
    g[3] = 2.0f;
    ASSERT_OK(nn_clip_grad_value(m, 0.5));
    if (!isnan(g[5]) || g[3] != 0.5f) fail_msg("keep-going clip_grad_value: NaN must stay NaN, 2 become 0.5");
    ASSERT_OK(nn_clip_grad_norm(m, 1.0, &norm));
    for (i = 0; i < TORCH_CLIP_PARAMS; i++)
        if (!isnan(g[i])) fail_msg("keep-going clip by a NaN norm: gradient %zu is %g, want NaN", i, (double)g[i]);
    /* arguments */
    nn_set_nonfinite_policy(m, 0);
    EXPECT_ERROR(nn_clip_grad_norm(m, -1.0, NULL), NN_ERROR_ARGUMENT, "max_norm");
    EXPECT_ERROR(nn_clip_grad_norm(m, NAN, NULL), NN_ERROR_ARGUMENT, "max_norm");
    EXPECT_ERROR(nn_clip_grad_value(m, -0.5), NN_ERROR_ARGUMENT, "clip_value");
    EXPECT_ERROR(nn_clip_grad_norm(NULL, 1.0, NULL), NN_ERROR_STATE, "compile");
    EXPECT_ERROR(nn_clip_grad_value(NULL, 1.0), NN_ERROR_STATE, "compile");
    nn_model_free(m);
    {
        nn_model *u = nn_model_new(1);
        nn_input(u, 2, 1, 1);
        EXPECT_ERROR(nn_clip_grad_norm(u, 1.0, NULL), NN_ERROR_STATE, "compile");
        nn_model_free(u);
    }
}

/* ---------------------------------------------------------------------------------------
   3. nn_fit: the same training as a loop written by hand
   --------------------------------------------------------------------------------------- */
/* Four classes in 8 dimensions, from a fixed rule, with label noise so that the loss plateaus. */
static void make_data(nn_dataset *ds, int count, uint64_t seed)
{
    nn_rng rng = nn_rng_new(seed);
    int i, j;
    ASSERT_OK(nn_dataset_alloc(ds, count, 8, 1, 1, 4, 0));
    for (i = 0; i < count; i++) {
        float *v = ds->x + (size_t)i * 8;
        double a = 0.0, b = 0.0;
        for (j = 0; j < 8; j++) {
            v[j] = nn_rng_normal(&rng);
            a += v[j] * (j % 2 ? 0.5 : -0.25);
            b += v[j] * (j < 4 ? 0.3 : -0.3);
        }
        ds->labels[i] = nn_rng_uniform(&rng) < 0.2f ? (int)nn_rng_below(&rng, 4) : (a > 0) * 2 + (b > 0);
    }
}

static nn_model *fit_model(void)
{
    nn_model *m = nn_model_new(77);
    nn_node *h = nn_relu(m, nn_linear(m, nn_input(m, 8, 1, 1), 16, NN_BIAS));
    ASSERT_OK(nn_compile(m, nn_linear(m, h, 4, NN_BIAS), NN_LOSS_SOFTMAX_CROSS_ENTROPY, 16));
    return m;
}

typedef struct rate_log { int count; double rates[64]; } rate_log;
static int log_rate(const nn_epoch_report *r, void *user)
{
    rate_log *log = (rate_log *)user;
    if (log->count < 64) log->rates[log->count++] = r->learning_rate;
    return 0;
}

/* The hand loop's per-step stepping: nn_train_epoch's on_step steps the schedule. */
typedef struct hand_steps { nn_schedule *s; nn_optimizer *o; double last_rate; } hand_steps;
static int step_schedule(int64_t step, float loss, void *user)
{
    hand_steps *h = (hand_steps *)user;
    (void)step;
    (void)loss;
    h->last_rate = h->o->learning_rate; /* the rate this step used */
    ASSERT_OK(nn_schedule_step(h->s, h->o));
    return 0;
}

enum { PER_EPOCH, PER_STEP, ON_VALIDATION, ON_TRAIN_LOSS };

/* nn_fit with schedule s stepped as `how`, against the same training by hand; the rates of the
   epoch reports, the schedules' states and the final parameters must agree exactly. Returns the
   rates. */
static rate_log fit_vs_hand(nn_schedule s, int how, int epochs)
{
    nn_dataset train, val;
    nn_model *a = fit_model(), *b = fit_model();
    nn_optimizer oa = nn_sgd(0.2f, 0.9f, 0.0f), ob = oa;
    nn_fit_options fo = nn_fit_defaults(epochs, 16);
    nn_schedule hs = s;
    hand_steps steps;
    rate_log fit_log, hand_log;
    int e;
    make_data(&train, 200, 1);
    make_data(&val, 100, 2);
    memset(&fit_log, 0, sizeof fit_log);
    memset(&hand_log, 0, sizeof hand_log);
    fo.shuffle = 0; /* nn_train_epoch with no rng takes the dataset's order too */
    fo.progress = 0;
    fo.schedule = &s;
    fo.schedule_per_step = how == PER_STEP;
    fo.validation = how == ON_VALIDATION ? &val : NULL;
    fo.on_epoch = log_rate;
    fo.user = &fit_log;
    ASSERT_OK(nn_fit(a, &oa, &train, &fo, NULL));

    ASSERT_OK(nn_schedule_start(&hs, &ob));
    steps.s = &hs;
    steps.o = &ob;
    for (e = 0; e < epochs; e++) {
        nn_metrics tm, vm;
        steps.last_rate = ob.learning_rate;
        ASSERT_OK(nn_train_epoch(b, &ob, &train, 16, NULL, 0, how == PER_STEP ? step_schedule : NULL, &steps, &tm));
        hand_log.rates[hand_log.count++] = steps.last_rate;
        if (how == PER_EPOCH) {
            ASSERT_OK(nn_schedule_step(&hs, &ob));
        } else if (how == ON_VALIDATION) {
            ASSERT_OK(nn_evaluate(b, &val, &vm));
            ASSERT_OK(nn_schedule_plateau_step(&hs, &ob, vm.loss));
        } else if (how == ON_TRAIN_LOSS) {
            ASSERT_OK(nn_schedule_plateau_step(&hs, &ob, tm.loss));
        }
    }
    if (fit_log.count != epochs) fail_msg("nn_fit reported %d epochs, ran %d", fit_log.count, epochs);
    for (e = 0; e < epochs; e++)
        if (fit_log.rates[e] != hand_log.rates[e])
            fail_msg("schedule kind %d, stepping %d: epoch %d rate %.9g in nn_fit, %.9g by hand", (int)s.kind, how, e + 1,
                     fit_log.rates[e], hand_log.rates[e]);
    if (memcmp(&s, &hs, sizeof s) != 0) fail_msg("schedule kind %d, stepping %d: the schedules' states differ", (int)s.kind, how);
    if (oa.learning_rate != ob.learning_rate || oa.momentum != ob.momentum) fail_msg("the optimizers' settings differ");
    if (memcmp(nn_params(a), nn_params(b), nn_param_count(a) * sizeof(float)) != 0)
        fail_msg("schedule kind %d, stepping %d: nn_fit's parameters differ from the hand loop's", (int)s.kind, how);
    nn_optimizer_free(&oa);
    nn_optimizer_free(&ob);
    nn_model_free(a);
    nn_model_free(b);
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    return fit_log;
}

/* The number of distinct values among the first n rates. */
static int distinct(const rate_log *log)
{
    int i, j, d = 0;
    for (i = 0; i < log->count; i++) {
        for (j = 0; j < i && log->rates[j] != log->rates[i]; j++) {}
        d += j == i;
    }
    return d;
}

static void test_fit_schedule_per_epoch(void **state)
{
    nn_schedule s = nn_cosine_annealing_lr(8, 0.01), ref;
    nn_optimizer o = nn_sgd(0.2f, 0.9f, 0.0f);
    rate_log log;
    int e;
    (void)state;
    ASSERT_OK(nn_schedule_warmup(&s, 3, 0.1));
    log = fit_vs_hand(s, PER_EPOCH, 12);
    /* and the rates are the schedule's own sequence, the one checked against PyTorch */
    ref = s;
    ASSERT_OK(nn_schedule_start(&ref, &o));
    for (e = 0; e < 12; e++) {
        if (log.rates[e] != (double)(float)ref.rate)
            fail_msg("epoch %d: rate %.9g, the schedule's %.9g", e + 1, log.rates[e], ref.rate);
        ASSERT_OK(nn_schedule_step(&ref, &o));
    }
}

static void test_fit_schedule_per_step(void **state)
{
    rate_log log;
    (void)state;
    log = fit_vs_hand(nn_one_cycle_lr(0.3, 13 * 6), PER_STEP, 6); /* 200 samples, batches of 16: 13 steps */
    if (distinct(&log) != 6) fail_msg("one-cycle per step: %d distinct epoch rates in 6 epochs", distinct(&log));
}

static void test_fit_schedule_plateau(void **state)
{
    nn_schedule s = nn_reduce_lr_on_plateau(0.5, 0);
    rate_log log;
    (void)state;
    s.threshold = 0.05; /* only a 5% better loss counts: the rate falls now and then */
    log = fit_vs_hand(s, ON_VALIDATION, 12);
    if (distinct(&log) < 2) fail_msg("plateau on the validation loss never reduced the rate");
    log = fit_vs_hand(s, ON_TRAIN_LOSS, 12);
    if (distinct(&log) < 2) fail_msg("plateau on the train loss never reduced the rate");
}

/* nn_fit's clipping = nn_compute_gradients, nn_clip_grad_value, nn_clip_grad_norm and
   nn_optimizer_step per batch, bit for bit; the norm limit bites on most steps. */
static void test_fit_clipping(void **state)
{
    nn_dataset train;
    nn_model *a = fit_model(), *b = fit_model();
    nn_optimizer oa = nn_adam(0.01f, 0.0f), ob = oa;
    nn_fit_options fo = nn_fit_defaults(3, 16);
    int e, first, clipped = 0, steps = 0;
    (void)state;
    make_data(&train, 200, 3);
    fo.shuffle = 0;
    fo.progress = 0;
    fo.clip_grad_value = 0.05;
    fo.clip_grad_norm = 0.1;
    ASSERT_OK(nn_fit(a, &oa, &train, &fo, NULL));
    for (e = 0; e < 3; e++)
        for (first = 0; first < train.count; first += 16) {
            const int n = train.count - first < 16 ? train.count - first : 16;
            double norm;
            ASSERT_OK(nn_compute_gradients(b, train.x + (size_t)first * 8, train.labels + first, NULL, n, NULL));
            ASSERT_OK(nn_clip_grad_value(b, 0.05));
            ASSERT_OK(nn_clip_grad_norm(b, 0.1, &norm));
            clipped += norm > 0.1;
            steps++;
            ASSERT_OK(nn_optimizer_step(b, &ob));
        }
    if (memcmp(nn_params(a), nn_params(b), nn_param_count(a) * sizeof(float)) != 0)
        fail_msg("nn_fit with clipping differs from the hand loop");
    if (clipped < steps / 2) fail_msg("the norm limit bit on %d of %d steps only", clipped, steps);
    nn_optimizer_free(&oa);
    nn_optimizer_free(&ob);
    nn_model_free(a);
    nn_model_free(b);
    nn_dataset_free(&train);
}

/* Options nn_fit cannot use are refused before any training. */
static void test_fit_options_refused(void **state)
{
    nn_dataset train;
    nn_model *m = fit_model();
    nn_optimizer o = nn_sgd(0.1f, 0.0f, 0.0f);
    nn_fit_options fo = nn_fit_defaults(2, 16);
    nn_schedule s = nn_reduce_lr_on_plateau(0.5, 1);
    float *before = (float *)malloc(nn_param_count(m) * sizeof(float));
    (void)state;
    make_data(&train, 64, 4);
    memcpy(before, nn_params(m), nn_param_count(m) * sizeof(float));
    fo.progress = 0;
    fo.schedule = &s;
    fo.schedule_per_step = 1;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fo, NULL), NN_ERROR_ARGUMENT, "once per epoch");
    fo.schedule_per_step = 0;
    fo.clip_grad_norm = -1.0;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fo, NULL), NN_ERROR_ARGUMENT, "clip_grad_norm");
    fo.clip_grad_norm = 0.0;
    fo.clip_grad_value = NAN;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fo, NULL), NN_ERROR_ARGUMENT, "clip_grad_value");
    fo.clip_grad_value = 0.0;
    s = nn_step_lr(0, 0.5);
    EXPECT_ERROR(nn_fit(m, &o, &train, &fo, NULL), NN_ERROR_ARGUMENT, "step_size");
    if (memcmp(before, nn_params(m), nn_param_count(m) * sizeof(float)) != 0 || o.learning_rate != 0.1f || s.started)
        fail_msg("a refused nn_fit changed the model, the optimizer or the schedule");
    /* a one-cycle schedule one epoch too short: nn_fit stops with the schedule's error */
    s = nn_one_cycle_lr(0.3, 4 * 2 - 1);
    fo.schedule_per_step = 1;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fo, NULL), NN_ERROR_STATE, "all its 7 steps");
    free(before);
    nn_optimizer_free(&o);
    nn_model_free(m);
    nn_dataset_free(&train);
}

/* ---------------------------------------------------------------------------------------
   4. nn_model_summary
   --------------------------------------------------------------------------------------- */
/* The value after `label` on the first line that starts with it (after spaces), or -1. */
static double summary_value(const char *text, const char *label)
{
    const char *p = text;
    while (p && *p) {
        const char *line = p;
        while (*line == ' ') line++;
        if (strncmp(line, label, strlen(label)) == 0) return strtod(line + strlen(label), NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1.0;
}

static void test_summary(void **state)
{
    nn_model *m = nn_model_new(3);
    nn_node *x = nn_input(m, 1, 12, 12), *c, *h, *r, *y;
    char *text, *line;
    size_t length = 0, length2 = 0, rows = 0;
    int rules = 0, i;
    double total = 0.0;
    const char *items[6] = {"parameters ", "gradients ", "batch-norm state ", "activations ", "workspace ", "thread replicas "};
    (void)state;
    c = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, 4, 3, 1, 1, NN_NO_BIAS)));   /* nodes 1-3 */
    h = nn_conv2d(m, c, 4, 3, 1, 1, NN_BIAS);                                    /* 4 */
    r = nn_add_nodes(m, h, c);                                                    /* 5 */
    nn_linear(m, nn_flatten(m, c), 3, NN_BIAS);                                   /* 6, 7: not used by the output */
    h = nn_dropout(m, nn_maxpool2d(m, r, 2, 0), 0.25f);                           /* 8, 9 */
    y = nn_linear(m, nn_flatten(m, h), 5, NN_BIAS);                               /* 10, 11 */
    EXPECT_ERROR(nn_model_summary(m, NULL, 0, &length), NN_ERROR_STATE, "compile");
    ASSERT_OK(nn_compile(m, y, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8));
    ASSERT_OK(nn_model_summary(m, NULL, 0, &length));
    text = (char *)malloc(length + 1);
    memset(text, 'x', length + 1);
    EXPECT_ERROR(nn_model_summary(m, text, length, &length2), NN_ERROR_ARGUMENT, "bytes");
    for (i = 0; i <= (int)length; i++)
        if (text[i] != 'x') fail_msg("a refused nn_model_summary wrote into the buffer (byte %d)", i);
    if (length2 != length) fail_msg("the refused call reported %zu bytes, the measuring one %zu", length2, length);
    ASSERT_OK(nn_model_summary(m, text, length + 1, &length2));
    if (length2 != length || strlen(text) != length) fail_msg("summary length %zu, measured %zu", strlen(text), length);
    if (verbose()) printf("%s", text);
    /* the table: the lines between the second and the third rule */
    for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "-----", 5) == 0) rules++;
        else if (rules == 2) rows++;
    }
    if (rules != 3 || rows != 10) fail_msg("%d rules and %zu table lines, want 3 and 10 (12 nodes, 2 unused)", rules, rows);
    if (!strstr(text, "conv2d 3x3 s1 p1 no bias") || !strstr(text, "4x12x12") || !strstr(text, "4,3") ||
        !strstr(text, "dropout p=0.25") || !strstr(text, "maxpool2d 2x2 s2"))
        fail_msg("the table lacks an expected entry:\n%s", text);
    if (summary_value(text, "trainable parameters") != (double)nn_param_count(m) ||
        summary_value(text, "non-trainable values") != (double)nn_state_count(m) || nn_state_count(m) != 8)
        fail_msg("totals: %g trainable, %g non-trainable; nn_param_count %zu, nn_state_count %zu", summary_value(text, "trainable parameters"),
                 summary_value(text, "non-trainable values"), nn_param_count(m), nn_state_count(m));
    if (summary_value(text, "parameters ") != 4.0 * nn_param_count(m) || summary_value(text, "gradients ") != 4.0 * nn_param_count(m) ||
        summary_value(text, "batch-norm state ") != 8.0 * nn_state_count(m))
        fail_msg("memory lines disagree with the counts:\n%s", text);
    for (i = 0; i < 6; i++) {
        const double v = summary_value(text, items[i]);
        if (v < 0) fail_msg("no memory line %s", items[i]);
        total += v;
    }
    if (summary_value(text, "total ") != total || !(summary_value(text, "activations ") > 0))
        fail_msg("the memory lines do not add up to the total:\n%s", text);
    /* freezing the last layer moves its parameters from the trainable total to the other one */
    ASSERT_OK(nn_set_trainable(y, 0));
    ASSERT_OK(nn_model_summary(m, NULL, 0, &length));
    free(text);
    text = (char *)malloc(length + 1);
    ASSERT_OK(nn_model_summary(m, text, length + 1, &length2));
    {
        const double frozen = (double)(nn_node_size(h) * 5 + 5);
        if (summary_value(text, "trainable parameters") != (double)nn_param_count(m) - frozen ||
            summary_value(text, "non-trainable values") != (double)nn_state_count(m) + frozen)
            fail_msg("totals with the last layer frozen (%g values):\n%s", frozen, text);
    }
    free(text);
    nn_model_free(m);
}

/* Each test starts from the same test-data seed, on one thread. */
static int t_threads;
static int t_setup(void **state)
{
    (void)state;
    t_threads = nn_threads();
    nn_test_seed = 0x9E3779B97F4A7C15ull;
    return nn_set_threads(1) == NN_OK ? 0 : -1;
}
static int t_teardown(void **state)
{
    (void)state;
    return nn_set_threads(t_threads) == NN_OK ? 0 : -1;
}
#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)

static const struct CMUnitTest tests[] = {
    T(test_schedules_match_pytorch),
    T(test_schedule_enum_values),
    T(test_schedule_copy_continues),
    T(test_schedule_errors),
    T(test_clip_matches_pytorch),
    T(test_clip_nonfinite),
    T(test_fit_schedule_per_epoch),
    T(test_fit_schedule_per_step),
    T(test_fit_schedule_plateau),
    T(test_fit_clipping),
    T(test_fit_options_refused),
    T(test_summary),
};

NN_TEST_MAIN("schedules", tests)
