/* test_checkpoint.c - checkpoints (nn_checkpoint_save, nn_checkpoint_load, docs/format.md) and
   nn_fit's checkpoint and resume options.

   The model: 1x4x4 input, conv 3x3 (2 channels) + batch norm + ReLU, flatten, dropout 0.25,
   linear 3 (so a checkpoint must carry batch-norm statistics and the model's random stream, which
   draws the dropout masks); 44 samples in batches of 8 (6 steps per epoch, the last of 4).

   - A run interrupted and resumed is the run never interrupted, bit for bit, for every optimizer
     kind with a schedule: SGD (momentum, Nesterov, weight decay) with a warmed-up cosine schedule
     per step, Adam with OneCycleLR per step (which cycles beta1), AdamW with StepLR per epoch,
     RMSProp (momentum) with ReduceLROnPlateau per epoch on the train loss (no validation set, so
     the epoch's loss must survive the interruption). Run A trains 3 epochs with nn_fit. Run B
     stops (on_check) after step 8, inside epoch 2, with checkpoint_every_steps = 1 (per-step
     schedules) or checkpoint_each_epoch (per-epoch schedules: the checkpoint at the stop must not
     have stepped the schedule for the part of the epoch); fresh objects then resume from its file
     (resume = 1, epochs = 3: the whole run's) and finish.
     The final checkpoints of A and B are the same bytes (parameters, statistics, optimizer
     moments and step, schedule, run state, random stream); B's epoch reports for epochs 2 and 3
     and its checks equal A's bit for bit (the resumed epoch's train loss covers its steps before
     the interruption too). A missing file with resume = 1 starts the run afresh.
   - nn_checkpoint_save then nn_checkpoint_load into fresh objects (another seed, other
     hyper-parameters, another schedule of the same kind) restores everything: saving them
     again gives the same bytes, and three more training steps on both give the same parameters
     (the dropout masks continue). The metadata travels with the model.
   - Refusals, each with its status and a message, and with the model (parameters, statistics,
     metadata), the optimizer (every field and its state), the schedule and the run state
     unchanged: another model's graph (NN_ERROR_SHAPE), another optimizer kind, a schedule
     missing, extra or of another kind (NN_ERROR_ARGUMENT), an optimizer bound to another model
     (NN_ERROR_STATE), a model file, a future version, a checkpoint cut at every length, NaN in
     the parameters, the optimizer state, the optimizer's settings and the schedule (CRC fixed:
     NN_ERROR_NONFINITE), every byte changed with the CRC fixed (refused, or accepted and saving
     back the same bytes). nn_load and nn_model_load refuse a checkpoint. nn_checkpoint_save
     refuses NaN, a foreign optimizer, an invalid schedule or run state and an uncompiled model,
     writing nothing and keeping the previous file.
   - nn_fit with resume: a checkpoint stopped inside an epoch and a call with another batch
     size, or a damaged file, is an error with nothing changed; a run done (all its epochs, or
     stopped early) trains no further. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */
#include "test_common.h"
#include <unistd.h>

#define ASSERT_OK(call) do { nn_status st_ = (call); \
        if (st_ != NN_OK) fail_msg("%s: %s (%s)", #call, nn_status_name(st_), nn_last_error()); } while (0)

/* st must be `expected`, with a message that contains `needle` (if not NULL). */
static void expect_error_(nn_status st, nn_status expected, const char *needle, const char *what, int line)
{
    const char *msg = nn_last_error();
    if (st != expected)
        fail_msg("line %d: %s returned %s, expected %s (message \"%s\")", line, what, nn_status_name(st),
                 nn_status_name(expected), msg);
    if (!msg[0] || (needle && !strstr(msg, needle)))
        fail_msg("line %d: %s: message \"%s\" lacks \"%s\"", line, what, msg, needle ? needle : "");
}
#define EXPECT_ERROR(call, expected, needle) expect_error_((call), (expected), (needle), #call, __LINE__)

/* ------------------------------------------------------------------ files */
typedef struct tmpdir { char path[64]; } tmpdir;

static void tmpdir_new(tmpdir *d)
{
    strcpy(d->path, "/dev/shm/nn_test_ckpt_XXXXXX");
    if (nn_test_mkdtemp(d->path)) return;
    strcpy(d->path, "/tmp/nn_test_ckpt_XXXXXX");
    if (!nn_test_mkdtemp(d->path)) fail_msg("mkdtemp failed");
}
static const char *tmp_path(const tmpdir *d, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", d->path, name);
    return buf;
}
static void tmpdir_remove(const tmpdir *d, const char *const *names, size_t count)
{
    char p[160];
    size_t i;
    for (i = 0; i < count; i++) {
        remove(tmp_path(d, names[i], p, sizeof p));
        snprintf(p, sizeof p, "%s/%s.tmp", d->path, names[i]);
        remove(p);
    }
    rmdir(d->path);
}

static void write_or_fail(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int ok = f != NULL;
    if (ok) ok = fwrite(data, 1, size, f) == size;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok) fail_msg("cannot write %s", path);
}

/* The whole file in a fresh buffer; fails the test if it cannot be read. */
static unsigned char *read_or_fail(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long end = 0;
    unsigned char *buf;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) fail_msg("cannot read %s", path);
    buf = (unsigned char *)malloc((size_t)end + 1);
    if (!buf || fread(buf, 1, (size_t)end, f) != (size_t)end) fail_msg("cannot read %s", path);
    fclose(f);
    *size = (size_t)end;
    return buf;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static int same_files(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = read_or_fail(a, &na), *y = read_or_fail(b, &nb);
    const int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static uint32_t crc32_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (b = 0; b < 8; b++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
static void fix_crc(unsigned char *p, size_t n) { put_le32(p + n - 4, crc32_ref(p, n - 4)); }

/* The payload offset of section `tag` (walking the section headers after the 16-byte header). */
static size_t section_at(const unsigned char *buf, size_t n, const char *tag, size_t *length)
{
    size_t at = 16;
    while (at + 12 <= n - 4) {
        const size_t len = (size_t)le32(buf + at + 4) | ((size_t)le32(buf + at + 8) << 32);
        if (!memcmp(buf + at, tag, 4)) {
            if (length) *length = len;
            return at + 12;
        }
        at += 12 + len;
    }
    fail_msg("no section %s", tag);
    return 0;
}

/* ------------------------------------------------------------------ the model, data, optimizers */
static nn_model *net(uint64_t seed, int outputs)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 1, 4, 4);
    h = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, h, 2, 3, 1, 1, NN_BIAS)));
    h = nn_dropout(m, nn_flatten(m, h), 0.25f);
    h = nn_linear(m, h, outputs, NN_BIAS);
    if (!m || nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8) != NN_OK) fail_msg("net: %s", nn_last_error());
    return m;
}

static void make_data(nn_dataset *ds, int count, uint64_t seed)
{
    int i;
    nn_test_seed = seed;
    if (nn_dataset_alloc(ds, count, 1, 4, 4, 3, 0) != NN_OK) fail_msg("dataset: %s", nn_last_error());
    nn_test_fill(ds->x, (size_t)count * 16, -1.0f, 1.0f);
    for (i = 0; i < count; i++) ds->labels[i] = (ds->x[i * 16] > 0.3f) + (ds->x[i * 16 + 5] > 0.0f);
}

#define KINDS 4
static nn_optimizer make_opt(int kind)
{
    nn_optimizer o;
    switch (kind) {
    case 0: o = nn_sgd(0.05f, 0.9f, 1e-3f); o.nesterov = 1; break;
    case 1: o = nn_adam(0.01f, 1e-3f); break;
    case 2: o = nn_adamw(0.01f, 1e-2f); break;
    default: o = nn_rmsprop(0.005f, 0.0f); o.momentum = 0.5f; break;
    }
    return o;
}
/* kind 0: cosine with a warm-up per step; 1: one cycle per step; 2: StepLR per epoch; 3: plateau per epoch. */
static nn_schedule make_schedule(int kind, int *per_step)
{
    nn_schedule s;
    switch (kind) {
    case 0: s = nn_cosine_annealing_lr(10, 0.001); if (nn_schedule_warmup(&s, 3, 0.2) != NN_OK) fail_msg("warmup"); break;
    case 1: s = nn_one_cycle_lr(0.02, 18); break;
    case 2: s = nn_step_lr(1, 0.7); break;
    default: s = nn_reduce_lr_on_plateau(0.5, 0); break;
    }
    *per_step = kind < 2;
    return s;
}

/* What on_epoch and on_check saw, and when to stop. */
typedef struct run_log {
    int epochs, checks;
    nn_epoch_report epoch[8], check[64];
    int64_t stop_after; /* on_check returns 1 after this step (0: never) */
} run_log;
static int log_epoch(const nn_epoch_report *r, void *user)
{
    run_log *l = (run_log *)user;
    if (l->epochs < 8) l->epoch[l->epochs++] = *r;
    return 0;
}
static int log_check(const nn_epoch_report *r, void *user)
{
    run_log *l = (run_log *)user;
    if (l->checks < 64) l->check[l->checks++] = *r;
    return l->stop_after && r->steps == l->stop_after;
}
/* Two reports say the same but for the time. */
static void same_report(const nn_epoch_report *a, const nn_epoch_report *b, const char *what, int i)
{
    if (a->epoch != b->epoch || a->steps != b->steps || memcmp(&a->train_loss, &b->train_loss, sizeof(double)) ||
        memcmp(&a->train_accuracy, &b->train_accuracy, sizeof(double)) || memcmp(&a->val_loss, &b->val_loss, sizeof(double)) ||
        memcmp(&a->val_accuracy, &b->val_accuracy, sizeof(double)) ||
        memcmp(&a->learning_rate, &b->learning_rate, sizeof(double)))
        fail_msg("%s %d: epoch %d step %lld loss %.17g acc %.17g val %.17g lr %.17g; uninterrupted: epoch %d step %lld loss "
                 "%.17g acc %.17g val %.17g lr %.17g", what, i, a->epoch, (long long)a->steps, a->train_loss, a->train_accuracy,
                 a->val_loss, a->learning_rate, b->epoch, (long long)b->steps, b->train_loss, b->train_accuracy, b->val_loss,
                 b->learning_rate);
}

/* ------------------------------------------------------------------ an interrupted run = the run */
static void test_resume_is_the_uninterrupted_run(void **state)
{
    static const char *const names[] = {"a.ckpt", "b.ckpt", "fresh.ckpt", "plain.ckpt"};
    tmpdir d;
    nn_dataset train, val;
    char pa[160], pb[160], pf[160], pp[160];
    int kind;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "a.ckpt", pa, sizeof pa);
    tmp_path(&d, "b.ckpt", pb, sizeof pb);
    tmp_path(&d, "fresh.ckpt", pf, sizeof pf);
    tmp_path(&d, "plain.ckpt", pp, sizeof pp);
    make_data(&train, 44, 3);
    make_data(&val, 16, 4);
    for (kind = 0; kind < KINDS; kind++) {
        nn_model *ma = net(11, 3), *mb = net(11, 3), *mc = net(11, 3);
        nn_optimizer oa = make_opt(kind), ob = make_opt(kind), oc = make_opt(kind);
        int per_step, i;
        nn_schedule sa = make_schedule(kind, &per_step), sb = make_schedule(kind, &per_step), sc = make_schedule(kind, &per_step);
        nn_fit_state ra, rb, rc;
        nn_fit_options fit = nn_fit_defaults(3, 8);
        nn_fit_result res;
        run_log la, lb, lc;
        memset(&ra, 0, sizeof ra);
        memset(&rb, 0, sizeof rb);
        memset(&rc, 0, sizeof rc);
        memset(&la, 0, sizeof la);
        memset(&lb, 0, sizeof lb);
        memset(&lc, 0, sizeof lc);
        fit.seed = 5;
        fit.progress = 0;
        fit.checks_per_epoch = 6; /* a check after every step */
        fit.validation = kind == 3 ? NULL : &val; /* the plateau schedule steps on the epoch's train loss */
        fit.schedule_per_step = per_step;
        fit.on_epoch = log_epoch;
        fit.on_check = log_check;
        /* A: uninterrupted */
        fit.schedule = &sa;
        fit.state = &ra;
        fit.user = &la;
        ASSERT_OK(nn_fit(ma, &oa, &train, &fit, NULL));
        ASSERT_OK(nn_checkpoint_save(ma, &oa, &sa, &ra, pa));
        /* B: stopped after step 8 (inside epoch 2), with a checkpoint every step (kinds 0, 1) or at every
           epoch's end, which comes early at the stop (kinds 2, 3: the per-epoch schedules do not step then) */
        remove(pb);
        fit.schedule = &sb;
        fit.state = &rb;
        fit.user = &lb;
        fit.checkpoint_path = pb;
        fit.checkpoint_every_steps = kind < 2;
        fit.checkpoint_each_epoch = kind >= 2;
        fit.resume = 1;
        lb.stop_after = 8;
        ASSERT_OK(nn_fit(mb, &ob, &train, &fit, &res));
        if (rb.steps != 8 || rb.epochs_done != 1 || rb.batches_done != 2 || res.steps != 8)
            fail_msg("kind %d: the interrupted run stands at step %lld, epoch %d, batch %d", kind, (long long)rb.steps,
                     rb.epochs_done, rb.batches_done);
        nn_model_free(mb);
        nn_optimizer_free(&ob);
        /* ... and resumed into fresh objects: epochs = 3 is the whole run's */
        mb = net(99, 3);
        ob = make_opt(kind);
        ob.learning_rate = 123.0f; /* the file's settings replace these */
        sb = make_schedule(kind, &per_step);
        memset(&rb, 0, sizeof rb);
        lb.stop_after = 0;
        lb.epochs = 0;
        ASSERT_OK(nn_fit(mb, &ob, &train, &fit, &res));
        if (res.epochs != 2 || res.steps != 18 - 8)
            fail_msg("kind %d: the resumed call ran %d epochs and %lld steps, want 2 and 10", kind, res.epochs, (long long)res.steps);
        if (!same_files(pa, pb)) fail_msg("kind %d: the resumed run's final checkpoint differs from the uninterrupted run's", kind);
        if (memcmp(nn_params(ma), nn_params(mb), nn_param_count(ma) * sizeof(float)) != 0)
            fail_msg("kind %d: parameters differ", kind);
        if (lb.epochs != 2) fail_msg("kind %d: %d epoch reports after resuming, want 2", kind, lb.epochs);
        for (i = 0; i < 2; i++) same_report(&lb.epoch[i], &la.epoch[i + 1], "epoch report", i + 2);
        if (la.checks != 18 || lb.checks != 18) fail_msg("kind %d: %d and %d checks, want 18", kind, la.checks, lb.checks);
        for (i = 0; i < 18; i++) same_report(&lb.check[i], &la.check[i], "check", i + 1);
        /* C: resume = 1 without a file starts afresh (and leaves the run's checkpoint) */
        remove(pf);
        fit.schedule = &sc;
        fit.state = &rc;
        fit.user = &lc;
        fit.checkpoint_path = pf;
        fit.checkpoint_every_steps = 0;
        fit.checkpoint_each_epoch = 1;
        ASSERT_OK(nn_fit(mc, &oc, &train, &fit, &res));
        if (res.epochs != 3 || !same_files(pa, pf)) fail_msg("kind %d: a fresh start with resume differs", kind);
        fit.checkpoint_each_epoch = 0;
        fit.checkpoint_path = NULL;
        fit.resume = 0;
        nn_model_free(ma);
        nn_model_free(mb);
        nn_model_free(mc);
        nn_optimizer_free(&oa);
        nn_optimizer_free(&ob);
        nn_optimizer_free(&oc);
    }
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    tmpdir_remove(&d, names, sizeof names / sizeof names[0]);
}

/* ------------------------------------------------------------------ save, load, save: the same bytes */
static void train_steps(nn_model *m, nn_optimizer *o, nn_schedule *s, const nn_dataset *ds, int steps)
{
    int i;
    for (i = 0; i < steps; i++) {
        ASSERT_OK(nn_train_step(m, o, ds->x + (size_t)(i % 5) * 8 * 16, ds->labels + (i % 5) * 8, NULL, 8, NULL));
        if (s) ASSERT_OK(nn_schedule_step(s, o));
    }
}

static void test_round_trip(void **state)
{
    static const char *const names[] = {"one.ckpt", "two.ckpt"};
    tmpdir d;
    nn_dataset train;
    char p1[160], p2[160];
    int kind;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "one.ckpt", p1, sizeof p1);
    tmp_path(&d, "two.ckpt", p2, sizeof p2);
    make_data(&train, 44, 7);
    for (kind = 0; kind < KINDS; kind++) {
        nn_model *a = net(21, 3), *b = net(22, 3);
        nn_optimizer oa = make_opt(kind), ob = make_opt(kind);
        int per_step;
        nn_schedule sa = make_schedule(kind == 3 ? 0 : kind, &per_step), sb;
        nn_fit_state ra, rb;
        ASSERT_OK(nn_set_meta(a, "classes", "zero,one,two"));
        ASSERT_OK(nn_schedule_start(&sa, &oa));
        train_steps(a, &oa, &sa, &train, 4);
        memset(&ra, 0, sizeof ra);
        ra.started = 1;
        ra.epochs_done = 3;
        ra.batches_done = 2;
        ra.steps = 20;
        ra.epoch_rng = 0x123456789abcdefull;
        ra.sample_count = 44;
        ra.batch_size = 8;
        ra.best_val_loss = 0.75;
        ra.checks_since_best = 2;
        ra.epoch_loss_sum = 12.5;
        ra.epoch_samples = 16;
        ra.epoch_correct = 9;
        ra.check_loss_sum = 6.25;
        ra.check_samples = 8;
        ra.check_correct = 4;
        ASSERT_OK(nn_checkpoint_save(a, &oa, &sa, &ra, p1));
        /* fresh objects with other values everywhere */
        ob.learning_rate = 7.0f;
        ob.weight_decay = 0.5f;
        ob.beta2 = 0.5f;
        sb = make_schedule(kind == 3 ? 0 : kind, &per_step);
        sb.t_max = 77;
        sb.max_rate = 0.5;
        sb.gamma = 0.1;
        memset(&rb, 0xA5, sizeof rb);
        ASSERT_OK(nn_checkpoint_load(b, &ob, &sb, &rb, p1));
        if (memcmp(nn_params(a), nn_params(b), nn_param_count(a) * sizeof(float)) != 0 ||
            memcmp(nn_state(a), nn_state(b), nn_state_count(a) * sizeof(float)) != 0)
            fail_msg("kind %d: parameters or statistics differ after loading", kind);
        if (ob.step != oa.step || ob.learning_rate != oa.learning_rate || ob.weight_decay != oa.weight_decay ||
            ob.beta1 != oa.beta1 || ob.beta2 != oa.beta2 || ob.momentum != oa.momentum || ob.nesterov != oa.nesterov ||
            ob.state_count != oa.state_count || memcmp(ob.state, oa.state, oa.state_count * sizeof(float)) != 0)
            fail_msg("kind %d: the optimizer differs after loading", kind);
        if (rb.steps != 20 || rb.epoch_rng != ra.epoch_rng || rb.epoch_correct != 9 || rb.check_loss_sum != 6.25 ||
            rb.best_val_loss != 0.75)
            fail_msg("kind %d: the run state differs after loading", kind);
        if (sb.t_max != sa.t_max || sb.max_rate != sa.max_rate || sb.gamma != sa.gamma || sb.step != sa.step ||
            sb.rate != sa.rate || sb.started != 1)
            fail_msg("kind %d: the schedule differs after loading", kind);
        if (!nn_get_meta(b, "classes") || strcmp(nn_get_meta(b, "classes"), "zero,one,two") != 0)
            fail_msg("kind %d: the metadata did not travel", kind);
        ASSERT_OK(nn_checkpoint_save(b, &ob, &sb, &rb, p2));
        if (!same_files(p1, p2)) fail_msg("kind %d: saving what was loaded gives other bytes", kind);
        /* the run goes on the same: parameters, moments, rates and dropout masks */
        train_steps(a, &oa, &sa, &train, 3);
        train_steps(b, &ob, &sb, &train, 3);
        if (memcmp(nn_params(a), nn_params(b), nn_param_count(a) * sizeof(float)) != 0)
            fail_msg("kind %d: three more steps after loading differ", kind);
        /* no schedule, no run state: a checkpoint of just the model and the optimizer */
        ASSERT_OK(nn_checkpoint_save(a, &oa, NULL, NULL, p1));
        memset(&rb, 0x5A, sizeof rb);
        ASSERT_OK(nn_checkpoint_load(b, &ob, NULL, &rb, p1));
        if (rb.started || rb.steps || rb.epochs_done) fail_msg("kind %d: no run state should load as a zeroed one", kind);
        ASSERT_OK(nn_checkpoint_load(b, &ob, NULL, NULL, p1));
        nn_model_free(a);
        nn_model_free(b);
        nn_optimizer_free(&oa);
        nn_optimizer_free(&ob);
    }
    /* an optimizer that has taken no step yet is saved with zero moments, and loads bound */
    {
        nn_model *a = net(5, 3), *b = net(6, 3);
        nn_optimizer oa = nn_adam(0.01f, 0.0f), ob = nn_adam(0.5f, 0.0f);
        size_t i;
        ASSERT_OK(nn_checkpoint_save(a, &oa, NULL, NULL, p1));
        ASSERT_OK(nn_checkpoint_load(b, &ob, NULL, NULL, p1));
        if (!ob.state || ob.state_count != 2 * nn_param_count(b) || ob.step != 0 || ob.learning_rate != 0.01f)
            fail_msg("an optimizer without state: %zu floats, step %lld", ob.state_count, (long long)ob.step);
        for (i = 0; i < ob.state_count; i++)
            if (ob.state[i] != 0.0f) fail_msg("moment %zu is %g, want 0", i, (double)ob.state[i]);
        nn_model_free(a);
        nn_model_free(b);
        nn_optimizer_free(&oa);
        nn_optimizer_free(&ob);
    }
    nn_dataset_free(&train);
    tmpdir_remove(&d, names, sizeof names / sizeof names[0]);
}

/* ------------------------------------------------------------------ refusals change nothing */
/* Everything a load may change, copied. */
typedef struct snapshot {
    float *params, *stats, *moments;
    nn_optimizer opt;
    nn_schedule schedule;
    nn_fit_state run;
    char meta[64];
} snapshot;

static void take(snapshot *s, nn_model *m, const nn_optimizer *o, const nn_schedule *sc, const nn_fit_state *r)
{
    const char *meta = nn_get_meta(m, "k");
    s->params = (float *)malloc(nn_param_count(m) * sizeof(float));
    s->stats = (float *)malloc(nn_state_count(m) * sizeof(float));
    s->moments = (float *)malloc((o->state_count + 1) * sizeof(float));
    if (!s->params || !s->stats || !s->moments) fail_msg("out of memory");
    memcpy(s->params, nn_params(m), nn_param_count(m) * sizeof(float));
    memcpy(s->stats, nn_state(m), nn_state_count(m) * sizeof(float));
    if (o->state) memcpy(s->moments, o->state, o->state_count * sizeof(float));
    memcpy(&s->opt, o, sizeof *o);
    if (sc) memcpy(&s->schedule, sc, sizeof *sc);
    if (r) memcpy(&s->run, r, sizeof *r);
    snprintf(s->meta, sizeof s->meta, "%s", meta ? meta : "(none)");
}
static void unchanged(const snapshot *s, nn_model *m, const nn_optimizer *o, const nn_schedule *sc, const nn_fit_state *r,
                      const char *what)
{
    const char *meta = nn_get_meta(m, "k");
    if (memcmp(s->params, nn_params(m), nn_param_count(m) * sizeof(float)) != 0 ||
        memcmp(s->stats, nn_state(m), nn_state_count(m) * sizeof(float)) != 0)
        fail_msg("%s: the parameters or statistics changed", what);
    if (memcmp(&s->opt, o, sizeof *o) != 0 || (o->state && memcmp(s->moments, o->state, o->state_count * sizeof(float)) != 0))
        fail_msg("%s: the optimizer changed", what);
    if ((sc && memcmp(&s->schedule, sc, sizeof *sc) != 0) || (r && memcmp(&s->run, r, sizeof *r) != 0))
        fail_msg("%s: the schedule or the run state changed", what);
    if (strcmp(s->meta, meta ? meta : "(none)") != 0) fail_msg("%s: the metadata changed", what);
}
static void release(snapshot *s)
{
    free(s->params);
    free(s->stats);
    free(s->moments);
}

/* The target of the refusal tests: a trained SGD model with a StepLR schedule and a run state. */
typedef struct target {
    nn_model *m;
    nn_optimizer o;
    nn_schedule s;
    nn_fit_state r;
} target;
static void target_new(target *t, const nn_dataset *ds)
{
    t->m = net(31, 3);
    t->o = nn_sgd(0.1f, 0.9f, 0.0f);
    t->s = nn_step_lr(2, 0.5);
    ASSERT_OK(nn_set_meta(t->m, "k", "target"));
    ASSERT_OK(nn_schedule_start(&t->s, &t->o));
    train_steps(t->m, &t->o, &t->s, ds, 2);
    memset(&t->r, 0, sizeof t->r);
    t->r.started = 1;
    t->r.epochs_done = 1;
    t->r.steps = 6;
    t->r.best_val_loss = INFINITY;
}
static void target_free(target *t)
{
    nn_optimizer_free(&t->o);
    nn_model_free(t->m);
}

/* nn_checkpoint_load of path into t must fail with status and needle and change nothing. */
static void refused(target *t, nn_schedule *schedule, const char *path, nn_status status, const char *needle, const char *what)
{
    snapshot s;
    nn_status st;
    take(&s, t->m, &t->o, schedule, &t->r);
    st = nn_checkpoint_load(t->m, &t->o, schedule, &t->r, path);
    expect_error_(st, status, needle, what, __LINE__);
    unchanged(&s, t->m, &t->o, schedule, &t->r, what);
    release(&s);
}

/* The file with the 4 bytes at `at` replaced by v and the CRC recomputed, written to path. */
static void patched(const unsigned char *good, size_t n, size_t at, uint32_t v, const char *path)
{
    unsigned char *copy = (unsigned char *)malloc(n);
    if (!copy) fail_msg("out of memory");
    memcpy(copy, good, n);
    put_le32(copy + at, v);
    fix_crc(copy, n);
    write_or_fail(path, copy, n);
    free(copy);
}

/* The same for the 8 bytes at `at`. */
static void patched64(const unsigned char *good, size_t n, size_t at, uint64_t v, const char *path)
{
    unsigned char *copy = (unsigned char *)malloc(n);
    if (!copy) fail_msg("out of memory");
    memcpy(copy, good, n);
    put_le32(copy + at, (uint32_t)v);
    put_le32(copy + at + 4, (uint32_t)(v >> 32));
    fix_crc(copy, n);
    write_or_fail(path, copy, n);
    free(copy);
}

static void test_refusals(void **state)
{
    static const char *const names[] = {"good.ckpt", "case.ckpt", "model.nn", "again.ckpt", "plain.ckpt"};
    tmpdir d;
    nn_dataset train;
    target t;
    char good[160], bad[160], model_file[160], again[160], plain[160];
    unsigned char *file, *copy;
    size_t n, i, at, len;
    int accepted = 0;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "good.ckpt", good, sizeof good);
    tmp_path(&d, "case.ckpt", bad, sizeof bad);
    tmp_path(&d, "model.nn", model_file, sizeof model_file);
    tmp_path(&d, "again.ckpt", again, sizeof again);
    tmp_path(&d, "plain.ckpt", plain, sizeof plain);
    make_data(&train, 44, 9);
    /* the file: another trained model of the same graph, SGD, StepLR */
    {
        target src;
        target_new(&src, &train);
        ASSERT_OK(nn_set_meta(src.m, "k", "file"));
        train_steps(src.m, &src.o, &src.s, &train, 3);
        src.r.steps = 9;
        ASSERT_OK(nn_checkpoint_save(src.m, &src.o, &src.s, &src.r, good));
        ASSERT_OK(nn_checkpoint_save(src.m, &src.o, NULL, &src.r, plain));
        ASSERT_OK(nn_save(src.m, model_file));
        target_free(&src);
    }
    target_new(&t, &train);
    file = read_or_fail(good, &n);
    copy = (unsigned char *)malloc(n);
    if (!copy) fail_msg("out of memory");

    /* objects that do not fit the file */
    {
        nn_model *other = net(31, 4);
        nn_optimizer o = nn_sgd(0.1f, 0.9f, 0.0f);
        nn_schedule s = nn_step_lr(2, 0.5);
        snapshot snap;
        take(&snap, other, &o, &s, NULL);
        EXPECT_ERROR(nn_checkpoint_load(other, &o, &s, NULL, good), NN_ERROR_SHAPE, "the file has linear with 3 outputs, this model 4");
        unchanged(&snap, other, &o, &s, NULL, "another graph");
        release(&snap);
        nn_model_free(other);
    }
    {
        nn_optimizer keep = t.o, adam = nn_adam(0.01f, 0.0f);
        t.o = adam;
        refused(&t, &t.s, good, NN_ERROR_ARGUMENT, "the checkpoint's optimizer is SGD, the one to continue it Adam", "another optimizer kind");
        t.o = keep;
    }
    {
        nn_schedule cosine = nn_cosine_annealing_lr(5, 0.0);
        refused(&t, NULL, good, NN_ERROR_ARGUMENT, "has a StepLR schedule, the one to continue it no schedule", "a schedule missing");
        refused(&t, &cosine, good, NN_ERROR_ARGUMENT, "has a StepLR schedule, the one to continue it a CosineAnnealingLR schedule",
                "another schedule kind");
        refused(&t, &t.s, plain, NN_ERROR_ARGUMENT, "has no schedule, the one to continue it a StepLR schedule", "an extra schedule");
    }
    {
        nn_model *elsewhere = net(31, 3);
        nn_optimizer bound = nn_sgd(0.1f, 0.9f, 0.0f), keep = t.o;
        ASSERT_OK(nn_optimizer_bind(elsewhere, &bound));
        t.o = bound;
        refused(&t, &t.s, good, NN_ERROR_STATE, "bound to another model", "an optimizer bound to another model");
        t.o = keep;
        nn_optimizer_free(&bound);
        nn_model_free(elsewhere);
    }
    /* files that are not this kind of file, or not whole */
    refused(&t, &t.s, model_file, NN_ERROR_FORMAT, "a model file (nn_save), not a checkpoint", "a model file");
    {
        nn_model *out = (nn_model *)&out;
        snapshot snap;
        take(&snap, t.m, &t.o, NULL, NULL);
        EXPECT_ERROR(nn_load(t.m, good), NN_ERROR_FORMAT, "a checkpoint (nn_checkpoint_save), not a model file");
        unchanged(&snap, t.m, &t.o, NULL, NULL, "nn_load of a checkpoint");
        release(&snap);
        EXPECT_ERROR(nn_model_load(good, 4, &out), NN_ERROR_FORMAT, "nn_checkpoint_load reads checkpoints");
        if (out) fail_msg("nn_model_load returned a model from a checkpoint");
    }
    patched(file, n, 8, 2, bad);
    refused(&t, &t.s, bad, NN_ERROR_FORMAT, "checkpoint version 2, this build reads version 1 (written by a newer nn.h)",
            "a future version");
    for (i = 0; i < n; i++) {
        write_or_fail(bad, file, i);
        refused(&t, &t.s, bad, NN_ERROR_FORMAT, NULL, "a truncated checkpoint");
    }
    memcpy(copy, file, n);
    copy[n / 2] ^= 0x10;
    write_or_fail(bad, copy, n);
    refused(&t, &t.s, bad, NN_ERROR_FORMAT, "checksum mismatch", "a flipped bit");
    /* NaN where a value goes, the CRC fixed */
    at = section_at(file, n, "PARM", &len);
    patched(file, n, at + 4, 0x7FC00000u, bad);
    refused(&t, &t.s, bad, NN_ERROR_NONFINITE, "parameter 1 is not finite", "a NaN parameter");
    at = section_at(file, n, "OPTM", &len);
    if (len != 56 + 4 * nn_param_count(t.m)) fail_msg("OPTM holds %zu bytes, want 56 + 4 per parameter", len);
    patched(file, n, at + 56 + 4 * 3, 0x7F800000u, bad);
    refused(&t, &t.s, bad, NN_ERROR_NONFINITE, "optimizer state value 3 is not finite", "an infinite moment");
    patched(file, n, at + 4, 0xFFC00000u, bad);
    refused(&t, &t.s, bad, NN_ERROR_NONFINITE, "the optimizer's learning_rate is", "a NaN learning rate");
    patched(file, n, at, 7, bad);
    refused(&t, &t.s, bad, NN_ERROR_FORMAT, "optimizer kind 7", "an unknown optimizer kind");
    at = section_at(file, n, "SCHD", &len);
    if (len != 252) fail_msg("SCHD holds %zu bytes, want 252", len);
    patched64(file, n, at + 228, 0x7FF0000000000000ull, bad); /* the rate: +infinity */
    refused(&t, &t.s, bad, NN_ERROR_NONFINITE, "the schedule's rate is inf", "an infinite rate");
    patched(file, n, at + 4, 0, bad); /* StepLR's step_size 0 */
    refused(&t, &t.s, bad, NN_ERROR_FORMAT, "step_size 0", "an invalid schedule setting");
    at = section_at(file, n, "RUNS", &len);
    if (len != 92) fail_msg("RUNS holds %zu bytes, want 92", len);
    patched(file, n, at + 8, 2, bad); /* started = 2 */
    refused(&t, &t.s, bad, NN_ERROR_FORMAT, "not one a run can have", "a run state out of range");

    /* every byte changed with the CRC fixed: refused with nothing changed, or a file that saves back to
       itself (a change of a node's name or of the loss in the graph, which a load does not compare, as
       nn_load: back to the file before the change) */
    at = section_at(file, n, "GRPH", &len);
    for (i = 16; i + 4 < n; i++) {
        snapshot snap;
        nn_status st;
        memcpy(copy, file, n);
        copy[i] ^= (unsigned char)(i % 3 == 0 ? 0x01 : i % 3 == 1 ? 0x80 : 0xFF);
        fix_crc(copy, n);
        write_or_fail(bad, copy, n);
        take(&snap, t.m, &t.o, &t.s, &t.r);
        st = nn_checkpoint_load(t.m, &t.o, &t.s, &t.r, bad);
        if (st != NN_OK) {
            if (st != NN_ERROR_FORMAT && st != NN_ERROR_NONFINITE && st != NN_ERROR_SHAPE && st != NN_ERROR_ARGUMENT)
                fail_msg("byte %zu: %s (%s)", i, nn_status_name(st), nn_last_error());
            unchanged(&snap, t.m, &t.o, &t.s, &t.r, "a changed byte");
        } else {
            accepted++;
            ASSERT_OK(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, again));
            if (!same_files(i >= at && i < at + len ? good : bad, again))
                fail_msg("byte %zu: an accepted file does not save back to its bytes", i);
        }
        release(&snap);
    }
    if (accepted == 0) fail_msg("no changed byte was accepted (values should be)");

    /* saving refuses what a load would refuse, writing nothing over the previous file */
    {
        nn_optimizer keep = t.o;
        nn_schedule bad_schedule = t.s;
        nn_fit_state bad_run = t.r;
        nn_model *elsewhere = net(31, 3), *uncompiled = nn_model_new(1);
        nn_optimizer bound = nn_sgd(0.1f, 0.0f, 0.0f);
        float p0 = nn_params(t.m)[0], s2;
        ASSERT_OK(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, again));
        nn_params(t.m)[0] = NAN;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, again), NN_ERROR_NONFINITE, "parameter 0 is nan");
        nn_params(t.m)[0] = p0;
        s2 = t.o.state[2];
        t.o.state[2] = INFINITY;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, again), NN_ERROR_NONFINITE, "optimizer state value 2 is inf");
        t.o.state[2] = s2;
        t.o.momentum = NAN;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, again), NN_ERROR_NONFINITE, "momentum");
        t.o = keep;
        ASSERT_OK(nn_optimizer_bind(elsewhere, &bound));
        EXPECT_ERROR(nn_checkpoint_save(t.m, &bound, &t.s, &t.r, again), NN_ERROR_STATE, "bound to another model");
        EXPECT_ERROR(nn_checkpoint_save(t.m, NULL, &t.s, &t.r, again), NN_ERROR_ARGUMENT, "null optimizer");
        bad_schedule.step_size = 0;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &bad_schedule, &t.r, again), NN_ERROR_ARGUMENT, "step_size 0");
        bad_schedule = t.s;
        bad_schedule.rate = NAN;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &bad_schedule, &t.r, again), NN_ERROR_NONFINITE, "rate");
        bad_run.batches_done = -1;
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, &t.s, &bad_run, again), NN_ERROR_ARGUMENT, "not one a run can have");
        EXPECT_ERROR(nn_checkpoint_save(uncompiled, &t.o, NULL, NULL, again), NN_ERROR_STATE, "compile the model first");
        EXPECT_ERROR(nn_checkpoint_save(t.m, &t.o, NULL, NULL, ""), NN_ERROR_ARGUMENT, "empty file name");
        /* the file saved before the refusals is intact */
        ASSERT_OK(nn_checkpoint_save(t.m, &t.o, &t.s, &t.r, good));
        if (!same_files(good, again)) fail_msg("a refused save changed the file saved before it");
        nn_optimizer_free(&bound);
        nn_model_free(elsewhere);
        nn_model_free(uncompiled);
    }
    free(file);
    free(copy);
    target_free(&t);
    nn_dataset_free(&train);
    tmpdir_remove(&d, names, sizeof names / sizeof names[0]);
}

/* ------------------------------------------------------------------ nn_fit's resume */
static void test_fit_resume(void **state)
{
    static const char *const names[] = {"run.ckpt", "junk.ckpt", "none.ckpt"};
    tmpdir d;
    nn_dataset train, val;
    char path[160], junk[160], none[160];
    nn_model *m = net(41, 3);
    nn_optimizer o = nn_adam(0.01f, 0.0f);
    nn_fit_options fit = nn_fit_defaults(2, 8);
    nn_fit_state run;
    nn_fit_result res;
    run_log log;
    snapshot snap;
    (void)state;
    tmpdir_new(&d);
    tmp_path(&d, "run.ckpt", path, sizeof path);
    tmp_path(&d, "junk.ckpt", junk, sizeof junk);
    tmp_path(&d, "none.ckpt", none, sizeof none);
    make_data(&train, 44, 12);
    make_data(&val, 16, 13);
    memset(&run, 0, sizeof run);
    memset(&log, 0, sizeof log);
    fit.progress = 0;
    fit.checks_per_epoch = 6;
    fit.on_check = log_check;
    fit.user = &log;
    fit.state = &run;
    fit.checkpoint_path = path;
    fit.checkpoint_every_steps = 4;
    fit.resume = 1;
    log.stop_after = 4; /* a checkpoint inside epoch 1 */
    ASSERT_OK(nn_fit(m, &o, &train, &fit, &res));
    if (!file_exists(path) || run.steps != 4) fail_msg("no checkpoint after step 4 (%lld steps)", (long long)run.steps);
    log.stop_after = 0;
    /* continuing inside that epoch needs its batch size */
    take(&snap, m, &o, NULL, &run);
    fit.batch_size = 4;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fit, &res), NN_ERROR_ARGUMENT, "the run stopped after batch 4");
    unchanged(&snap, m, &o, NULL, &run, "resume with another batch size");
    fit.batch_size = 8;
    /* a file that exists but is not a checkpoint: an error, never a fresh start */
    write_or_fail(junk, "not a checkpoint", 16);
    fit.checkpoint_path = junk;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fit, &res), NN_ERROR_FORMAT, "not an nn.h checkpoint (bad magic");
    unchanged(&snap, m, &o, NULL, &run, "resume from a damaged file");
    if (!file_exists(junk)) fail_msg("the damaged file was removed");
    fit.checkpoint_path = NULL;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fit, &res), NN_ERROR_ARGUMENT, "resume needs a checkpoint_path");
    fit.checkpoint_path = "";
    EXPECT_ERROR(nn_fit(m, &o, &train, &fit, &res), NN_ERROR_ARGUMENT, "not an empty one");
    fit.checkpoint_path = path;
    fit.checkpoint_every_steps = -1;
    EXPECT_ERROR(nn_fit(m, &o, &train, &fit, &res), NN_ERROR_ARGUMENT, "checkpoint_every_steps -1");
    fit.checkpoint_every_steps = 4;
    unchanged(&snap, m, &o, NULL, &run, "refused options");
    release(&snap);
    /* the rest of the run: 2 epochs in all */
    ASSERT_OK(nn_fit(m, &o, &train, &fit, &res));
    if (res.epochs != 2 || res.steps != 8 || run.epochs_done != 2 || o.step != 12)
        fail_msg("resumed: %d epochs and %lld steps in the call, %d epochs and %lld optimizer steps in all", res.epochs,
                 (long long)res.steps, run.epochs_done, (long long)o.step);
    /* done: a resumed call trains no further (and does not rewrite the checkpoint) */
    take(&snap, m, &o, NULL, &run);
    ASSERT_OK(nn_fit(m, &o, &train, &fit, &res));
    if (res.epochs != 0 || res.steps != 0) fail_msg("a finished run trained %d epochs, %lld steps", res.epochs, (long long)res.steps);
    unchanged(&snap, m, &o, NULL, &run, "a finished run");
    release(&snap);
    /* stopped early: with resume it stays stopped, whatever the epochs */
    {
        nn_model *e = net(42, 3);
        nn_optimizer frozen = nn_sgd(0.0f, 0.0f, 0.0f);
        nn_fit_options es = nn_fit_defaults(5, 8);
        nn_fit_state r;
        memset(&r, 0, sizeof r);
        remove(none);
        es.progress = 0;
        es.validation = &val;
        es.patience = 2;
        es.state = &r;
        es.checkpoint_path = none;
        es.resume = 1;
        ASSERT_OK(nn_fit(e, &frozen, &train, &es, &res));
        if (!res.stopped_early || !r.stopped_early || r.epochs_done != 3) fail_msg("not stopped early after 3 epochs");
        memset(&r, 0, sizeof r);
        es.epochs = 50;
        ASSERT_OK(nn_fit(e, &frozen, &train, &es, &res));
        if (!res.stopped_early || res.epochs != 0 || res.steps != 0 || !r.stopped_early)
            fail_msg("a run stopped early trained on after resuming: %d epochs, %lld steps", res.epochs, (long long)res.steps);
        nn_optimizer_free(&frozen);
        nn_model_free(e);
    }
    nn_optimizer_free(&o);
    nn_model_free(m);
    nn_dataset_free(&train);
    nn_dataset_free(&val);
    tmpdir_remove(&d, names, sizeof names / sizeof names[0]);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_resume_is_the_uninterrupted_run),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_refusals),
    cmocka_unit_test(test_fit_resume),
};

NN_TEST_MAIN("checkpoint", tests)
