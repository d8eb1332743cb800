/* safetensors: nn_save_safetensors / nn_load_safetensors.

   - round trip: a trained CNN with batch norm and a bias-free linear layer, saved and loaded
     into a model built with another seed, gives back every parameter and statistic bit for bit,
     under PyTorch's state_dict names;
   - files written by hand (as PyTorch's would be) in F32, F16, BF16 and F64 load to the exact
     float values; I64 num_batches_tracked is read and ignored;
   - strict mode: a missing, extra or mis-shaped tensor, a non-float dtype or a non-finite value
     is an error that names it, and the model is unchanged; partial mode loads what matches and
     lists the rest;
   - hostile files: every malformed header below, and every truncation of a good file, is
     NN_ERROR_FORMAT (or IO) with the model unchanged. The PyTorch round trip itself is
     scripts/interop_check.sh. */
#include "test_common.h"

#define ASSERT_OK(call)                                                                                              \
    do {                                                                                                             \
        nn_status st_ = (call);                                                                                      \
        if (st_ != NN_OK) fail_msg("%s failed: %s (%s)", #call, nn_status_name(st_), nn_last_error());                 \
    } while (0)
#define EXPECT_ERROR(call, expected, needle) expect_error_((call), (expected), (needle), #call, __LINE__)

static void expect_error_(nn_status got, nn_status expected, const char *needle, const char *call, int line)
{
    if (got != expected)
        fail_msg("line %d: %s gave %s (\"%s\"), expected %s", line, call, nn_status_name(got), nn_last_error(),
                 nn_status_name(expected));
    if (needle && !strstr(nn_last_error(), needle))
        fail_msg("line %d: %s: message \"%s\" lacks \"%s\"", line, call, nn_last_error(), needle);
}

/* Files go to the current directory under a per-test name (portable: no /tmp on Windows). */
static const char *path_of(const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "nn_test_safetensors_%s.safetensors", name);
    return buf;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A file of the given header text (not padded) and data bytes. */
static void write_raw(const char *path, const char *json, size_t json_len, const void *data, size_t data_len)
{
    FILE *f = fopen(path, "wb");
    unsigned char length[8];
    if (!f) fail_msg("cannot create %s", path);
    put_u64(length, json_len);
    if (fwrite(length, 1, 8, f) != 8 || fwrite(json, 1, json_len, f) != json_len ||
        (data_len && fwrite(data, 1, data_len, f) != data_len) || fclose(f) != 0)
        fail_msg("cannot write %s", path);
}
static void write_file(const char *path, const char *json, const void *data, size_t data_len)
{
    write_raw(path, json, strlen(json), data, data_len);
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long end = 0;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) fail_msg("cannot read %s", path);
    buf = (unsigned char *)malloc((size_t)end + 1);
    if (!buf || fread(buf, 1, (size_t)end, f) != (size_t)end) fail_msg("cannot read %s", path);
    fclose(f);
    *size = (size_t)end;
    return buf;
}

/* conv 4@3x3 (no bias) - batch norm - relu - global average pool - linear 3 (no bias) */
static nn_model *small_cnn(uint64_t seed)
{
    nn_model *m = nn_model_new(seed);
    nn_node *h = nn_input(m, 2, 6, 6);
    h = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, h, 4, 3, 1, 1, NN_NO_BIAS)));
    h = nn_linear(m, nn_global_avgpool(m, h), 3, NN_NO_BIAS);
    ASSERT_OK(nn_compile(m, h, NN_LOSS_SOFTMAX_CROSS_ENTROPY, 8));
    return m;
}

/* linear 3 -> 2 with bias: weight [2, 3], bias [2] */
static nn_model *tiny_linear(void)
{
    nn_model *m = nn_model_new(1);
    nn_node *h = nn_linear(m, nn_input(m, 3, 1, 1), 2, NN_BIAS);
    ASSERT_OK(nn_compile(m, h, NN_LOSS_MSE, 4));
    return m;
}

static int same_floats(const float *a, const float *b, size_t n) { return n == 0 || memcmp(a, b, n * sizeof(float)) == 0; }

static void test_round_trip(void **unused)
{
    nn_model *a = small_cnn(1), *b = small_cnn(2);
    nn_optimizer opt = nn_sgd(0.1f, 0.9f, 0.0f);
    float x[8 * 2 * 6 * 6];
    int labels[8] = {0, 1, 2, 0, 1, 2, 0, 1}, step;
    size_t size;
    unsigned char *file;
    (void)unused;
    nn_test_fill(x, sizeof x / sizeof x[0], -1.0f, 1.0f);
    for (step = 0; step < 2; step++) ASSERT_OK(nn_train_step(a, &opt, x, labels, NULL, 8, NULL));
    ASSERT_OK(nn_save_safetensors(a, path_of("round")));
    if (same_floats(nn_params(a), nn_params(b), nn_param_count(a))) fail_msg("the two models start equal");
    ASSERT_OK(nn_load_safetensors(b, path_of("round"), NN_SAFETENSORS_STRICT, NULL, 0));
    if (!same_floats(nn_params(a), nn_params(b), nn_param_count(a))) fail_msg("parameters differ after the round trip");
    if (!same_floats(nn_state(a), nn_state(b), nn_state_count(a))) fail_msg("statistics differ after the round trip");
    file = read_all(path_of("round"), &size);
    {
        const char *want[] = {"\"conv2d1.weight\":{\"dtype\":\"F32\",\"shape\":[4, 2, 3, 3]",
                              "\"batchnorm1.weight\"", "\"batchnorm1.bias\"", "\"batchnorm1.running_mean\"",
                              "\"batchnorm1.running_var\"", "\"batchnorm1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]",
                              "\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[3, 4]"};
        uint64_t header = 0;
        size_t i;
        char *text;
        for (i = 0; i < 8; i++) header |= (uint64_t)file[i] << (8 * i);
        if (header % 8 != 0 || 8 + header > size) fail_msg("header length %llu", (unsigned long long)header);
        text = (char *)malloc(header + 1);
        memcpy(text, file + 8, header);
        text[header] = '\0';
        for (i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!strstr(text, want[i])) fail_msg("the header lacks %s: %s", want[i], text);
        if (strstr(text, "conv2d1.bias") || strstr(text, "linear1.bias")) fail_msg("a bias-free layer wrote a bias: %s", text);
        free(text);
    }
    free(file);
    remove(path_of("round"));
    nn_model_free(a);
    nn_model_free(b);
    nn_optimizer_free(&opt);
}

static void test_dtypes(void **unused)
{
    nn_model *m = tiny_linear();
    /* weight as F16: 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), -0;
       bias as BF16: 3.0 (0x4040), -0.15625 (0xBE20) */
    const unsigned char f16[12] = {0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x80};
    const unsigned char bf16[4] = {0x40, 0x40, 0x20, 0xBE};
    const float want_w[6] = {1.0f, -2.0f, 0.5f, 65504.0f, 5.9604644775390625e-8f, -0.0f}, want_b[2] = {3.0f, -0.15625f};
    unsigned char data[16 + 48];
    float *w, *b;
    size_t count;
    int i;
    (void)unused;
    memcpy(data, f16, 12);
    memcpy(data + 12, bf16, 4);
    write_file(path_of("dtypes"),
               "{\"__metadata__\":{\"format\":\"pt\"},\"linear1.weight\":{\"shape\":[2,3],\"dtype\":\"F16\","
               "\"data_offsets\":[0,12]},\"linear1.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}",
               data, 16);
    ASSERT_OK(nn_load_safetensors(m, path_of("dtypes"), NN_SAFETENSORS_STRICT, NULL, 0));
    w = nn_node_tensor(m, nn_node_at(m, 1), "weight", &count);
    b = nn_node_tensor(m, nn_node_at(m, 1), "bias", NULL);
    assert_int_equal(count, 6);
    if (!same_floats(w, want_w, 6) || !same_floats(b, want_b, 2)) fail_msg("F16/BF16 values converted wrongly");
    /* F64, in the other order in the file, with escaped names ("linear1.weight" spelt with \u) */
    {
        const double wd[6] = {0.25, -1.5, 3.0, 1e-3, -7.0, 100.0}, bd[2] = {-0.5, 0.125};
        memcpy(data, bd, 16);
        memcpy(data + 16, wd, 48);
        write_file(path_of("dtypes"),
                   "{\"linear1.bias\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                   "\"linear1.w\\u0065ight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[16,64]}}",
                   data, 64);
        ASSERT_OK(nn_load_safetensors(m, path_of("dtypes"), NN_SAFETENSORS_STRICT, NULL, 0));
        for (i = 0; i < 6; i++) assert_true(w[i] == (float)wd[i]);
        for (i = 0; i < 2; i++) assert_true(b[i] == (float)bd[i]);
    }
    remove(path_of("dtypes"));
    nn_model_free(m);
}

/* Writes a tiny_linear file whose entries are given, with data of 4-byte zeros... filled with
   small values (0.5 each float) so that loading it changes the model. */
static void write_linear(const char *name, const char *json, size_t data_len)
{
    unsigned char data[256];
    size_t i;
    for (i = 0; i + 4 <= data_len && i + 4 <= sizeof data; i += 4) {
        const float half = 0.5f;
        memcpy(data + i, &half, 4);
    }
    write_file(path_of(name), json, data, data_len);
}

static void test_strict_and_partial(void **unused)
{
    nn_model *m = tiny_linear();
    float before[8], *params = nn_params(m);
    char report[512];
    static const struct {
        const char *json;
        size_t data;
        nn_status status;
        const char *needle;
    } cases[] = {
        {"{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, NN_ERROR_SHAPE,
         "linear1.bias: missing"},
        {"{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
         "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}", 36, NN_ERROR_SHAPE,
         "fc.weight: in the file, but this model has no such tensor"},
        {"{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
         "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}", 32, NN_ERROR_SHAPE,
         "linear1.weight: shape [3, 2] in the file, [2, 3] in this model"},
        {"{\"linear1.weight\":{\"dtype\":\"I32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}", 32, NN_ERROR_SHAPE,
         "dtype I32 is not a float type"},
    };
    size_t i;
    (void)unused;
    memcpy(before, params, 8 * sizeof(float));
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_linear("strict", cases[i].json, cases[i].data);
        EXPECT_ERROR(nn_load_safetensors(m, path_of("strict"), NN_SAFETENSORS_STRICT, NULL, 0), cases[i].status,
                     cases[i].needle);
        if (!same_floats(params, before, 8)) fail_msg("case %zu changed the model", i);
    }
    /* a non-finite value: refused, nothing changed */
    {
        unsigned char data[32];
        const float inf = HUGE_VALF;
        memset(data, 0, sizeof data);
        memcpy(data + 28, &inf, 4);
        write_file(path_of("strict"),
                   "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                   "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
                   data, 32);
        EXPECT_ERROR(nn_load_safetensors(m, path_of("strict"), NN_SAFETENSORS_STRICT, NULL, 0), NN_ERROR_NONFINITE,
                     "linear1.bias[1] is not finite");
        if (!same_floats(params, before, 8)) fail_msg("a non-finite file changed the model");
    }
    /* partial: the weight loads (0.5 each), the bias is missing and fc.weight extra, both listed */
    write_linear("strict",
                 "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                 "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}",
                 28);
    ASSERT_OK(nn_load_safetensors(m, path_of("strict"), NN_SAFETENSORS_PARTIAL, report, sizeof report));
    for (i = 0; i < 6; i++) assert_true(params[i] == 0.5f);
    assert_true(params[6] == before[6] && params[7] == before[7]);
    if (!strstr(report, "linear1.bias: missing") || !strstr(report, "fc.weight: in the file"))
        fail_msg("the partial report is \"%s\"", report);
    /* a zero-size tensor at the offset where another begins, listed after it: the file is valid
       (the tensors sort by (begin, end)), and "empty" is the one tensor this model lacks */
    memcpy(params, before, 8 * sizeof(float));
    write_linear("strict",
                 "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                 "\"empty\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                 "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
                 32);
    ASSERT_OK(nn_load_safetensors(m, path_of("strict"), NN_SAFETENSORS_PARTIAL, report, sizeof report));
    for (i = 0; i < 8; i++) assert_true(params[i] == 0.5f);
    if (strcmp(report, "empty: in the file, but this model has no such tensor\n") != 0) fail_msg("the partial report is \"%s\"", report);
    remove(path_of("strict"));
    nn_model_free(m);
}

/* Each header must be refused as a malformed file, the model unchanged. Data: 32 bytes, the
   exact size of the two tensors of tiny_linear, unless an entry says otherwise. */
static void test_hostile_headers(void **unused)
{
#define W_ "\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define B_ "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}"
    static const char *const headers[] = {
        "",                                                  /* empty */
        "[]",                                                /* not an object */
        "{" W_ "," B_ "} x",                                 /* bytes after the object */
        "{" W_ "," B_,                                       /* not closed */
        "{" W_ "," B_ ",}",                                  /* trailing comma */
        "{" W_ "," W_ "," B_ "}",                            /* a name twice */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}," B_ "}", /* size != shape */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]}," B_ "}", /* overlap */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}",           /* a hole at the end */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
        "\"linear1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",             /* fine: any order */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,48]}," B_ "}", /* past the end */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}," B_ "}", /* begin > end */
        "{\"linear1.weight\":{\"dtype\":\"F33\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}", /* unknown dtype */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"x\":1}," B_ "}", /* member */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3]}," B_ "}",                       /* no offsets */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}," B_ "}", /* negative */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3.0],\"data_offsets\":[0,24]}," B_ "}", /* fraction */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[02,3],\"data_offsets\":[0,24]}," B_ "}", /* leading 0 */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],"
        "\"data_offsets\":[0,24]}," B_ "}",                                                      /* overflow */
        "{\"linear1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,99999999999999999999]}," B_ "}",
        "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}," W_ "," B_ "}",                               /* metadata nested */
        "{\"__metadata__\":{\"a\":1}," W_ "," B_ "}",                                           /* metadata number */
        "{\"linear1.\\ud800weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.\\qweight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.weight\\u0000x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}", /* a NUL */
        "{\"linear1.\nweight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.weight\" {\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_ "}",
        "{\"linear1.weight\":[]," B_ "}",
        "{\"linear1.weight\":{}," B_ "}",
        "{\"linear1.weight\":\"x\"," B_ "}",
    };
    nn_model *m = tiny_linear();
    float before[8], *params = nn_params(m);
    unsigned char data[32];
    size_t i;
    (void)unused;
    memset(data, 0, sizeof data);
    memcpy(before, params, sizeof before);
    for (i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        nn_status st;
        write_file(path_of("hostile"), headers[i], data, sizeof data);
        st = nn_load_safetensors(m, path_of("hostile"), NN_SAFETENSORS_STRICT, NULL, 0);
        if (i == 9) { /* the one good file: tensors in the other order, zeros */
            if (st != NN_OK) fail_msg("header %zu: %s", i, nn_last_error());
            memcpy(params, before, sizeof before);
            continue;
        }
        if (st != NN_ERROR_FORMAT) fail_msg("header %zu gave %s (\"%s\"), not a format error", i, nn_status_name(st), nn_last_error());
        if (!same_floats(params, before, 8)) fail_msg("header %zu changed the model", i);
    }
    /* header lengths that do not fit the file, including ones that overflow when added to 8 */
    {
        const uint64_t lengths[] = {0, 1, 41, UINT64_MAX, UINT64_MAX - 7, (uint64_t)1 << 63};
        for (i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            FILE *f = fopen(path_of("hostile"), "wb");
            unsigned char length[8];
            put_u64(length, lengths[i]);
            if (!f || fwrite(length, 1, 8, f) != 8 || fwrite("{}", 1, 2, f) != 2 || fclose(f) != 0) fail_msg("write");
            EXPECT_ERROR(nn_load_safetensors(m, path_of("hostile"), NN_SAFETENSORS_STRICT, NULL, 0), NN_ERROR_FORMAT, NULL);
        }
    }
    remove(path_of("hostile"));
    nn_model_free(m);
#undef W_
#undef B_
}

/* Every prefix of a good file, and every single-byte change of its header, is refused or loads
   a model without a crash; prefixes are always refused. */
static void test_truncations(void **unused)
{
    nn_model *a = small_cnn(3), *b = small_cnn(4);
    unsigned char *file;
    size_t size, cut;
    float *before = (float *)malloc(nn_param_count(b) * sizeof(float));
    (void)unused;
    ASSERT_OK(nn_save_safetensors(a, path_of("whole")));
    file = read_all(path_of("whole"), &size);
    memcpy(before, nn_params(b), nn_param_count(b) * sizeof(float));
    for (cut = 0; cut < size; cut += cut < 600 ? 1 : 97) {
        FILE *f = fopen(path_of("cut"), "wb");
        if (!f || (cut && fwrite(file, 1, cut, f) != cut) || fclose(f) != 0) fail_msg("write");
        if (nn_load_safetensors(b, path_of("cut"), NN_SAFETENSORS_STRICT, NULL, 0) == NN_OK)
            fail_msg("a file cut to %zu of %zu bytes loaded", cut, size);
        if (!same_floats(nn_params(b), before, nn_param_count(b))) fail_msg("a file cut to %zu bytes changed the model", cut);
    }
    remove(path_of("cut"));
    remove(path_of("whole"));
    free(file);
    free(before);
    nn_model_free(a);
    nn_model_free(b);
}

static void test_arguments(void **unused)
{
    nn_model *m = tiny_linear(), *raw = nn_model_new(1);
    (void)unused;
    EXPECT_ERROR(nn_save_safetensors(NULL, path_of("x")), NN_ERROR_STATE, NULL);
    EXPECT_ERROR(nn_save_safetensors(raw, path_of("x")), NN_ERROR_STATE, "compile");
    EXPECT_ERROR(nn_save_safetensors(m, ""), NN_ERROR_ARGUMENT, NULL);
    EXPECT_ERROR(nn_load_safetensors(m, "nn_test_safetensors_does_not_exist", NN_SAFETENSORS_STRICT, NULL, 0), NN_ERROR_IO, NULL);
    EXPECT_ERROR(nn_load_safetensors(raw, path_of("x"), NN_SAFETENSORS_STRICT, NULL, 0), NN_ERROR_STATE, NULL);
    nn_params(m)[3] = NAN;
    EXPECT_ERROR(nn_save_safetensors(m, path_of("x")), NN_ERROR_NONFINITE, "nothing was written");
    {
        FILE *f = fopen(path_of("x"), "rb");
        if (f) {
            fclose(f);
            fail_msg("a refused save left a file");
        }
    }
    nn_model_free(m);
    nn_model_free(raw);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_dtypes),     cmocka_unit_test(test_strict_and_partial),
    cmocka_unit_test(test_hostile_headers), cmocka_unit_test(test_truncations), cmocka_unit_test(test_arguments),
};
NN_TEST_MAIN("safetensors", tests)
