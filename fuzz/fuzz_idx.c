/* fuzz/fuzz_idx.c - libFuzzer target for nn_mnist_load (IDX image + label files).

   The first input byte picks the variant:
     even: the rest is the IDX image file; the label file is made to match it (magic 0x801,
           the count from the image header when that is small, labels i % 10), so the image
           reader is exercised down to the end;
     odd:  bytes 1-2 (little-endian) give the length L of the image file; the next L bytes are
           the image file and what follows is the label file (both files fuzzed).
   Checks (abort() on violation, so libFuzzer reports it; ASan/UBSan/LeakSanitizer catch the
   rest): the status is NN_OK exactly when an independent re-implementation of the IDX rules
   below says the pair is valid, otherwise NN_ERROR_FORMAT with a message and the output struct
   untouched; on NN_OK every pixel, label, the shape and the class count match the bytes.

   Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_idx.c -lm
   (or `make fuzz-smoke` / `make fuzz`, see fuzz/fuzz.mk). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "fuzz_common.h"

static uint32_t be32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

/* The IDX pair is valid when both headers are whole, the magics are right, no dimension is 0,
   rows and cols are at most 4096 (the reader's documented limit), the counts agree and each
   file holds exactly the bytes its header announces. */
static int oracle_valid(const uint8_t *img, size_t img_size, const uint8_t *lab, size_t lab_size)
{
    uint64_t count, rows, cols;
    if (img_size < 16 || lab_size < 8) return 0;
    if (be32(img) != 0x803 || be32(lab) != 0x801) return 0;
    count = be32(img + 4);
    rows = be32(img + 8);
    cols = be32(img + 12);
    if (!count || !rows || !cols || rows > 4096 || cols > 4096) return 0;
    if (count * rows * cols != img_size - 16) return 0;
    if (be32(lab + 4) != count || lab_size - 8 != count) return 0;
    return 1;
}

static void check(const uint8_t *img, size_t img_size, const uint8_t *lab, size_t lab_size)
{
    const char *ip = fz_path("images"), *lp = fz_path("labels");
    nn_dataset ds, before;
    nn_status st;
    int valid = oracle_valid(img, img_size, lab, lab_size);
    fz_write(ip, img, img_size);
    fz_write(lp, lab, lab_size);
    memset(&ds, 0xA5, sizeof ds);
    before = ds;
    st = nn_mnist_load(ip, lp, &ds);
    if (st != NN_OK) {
        FZ_CHECK(!valid);
        FZ_CHECK(st == NN_ERROR_FORMAT);
        FZ_CHECK(nn_last_error()[0] != 0);
        FZ_CHECK(memcmp(&ds, &before, sizeof ds) == 0); /* untouched */
        return;
    }
    FZ_CHECK(valid);
    {
        size_t pixels = (size_t)be32(img + 8) * be32(img + 12), i;
        int max_label = 0;
        FZ_CHECK(ds.count == (int)be32(img + 4));
        FZ_CHECK(ds.channels == 1 && ds.height == (int)be32(img + 8) && ds.width == (int)be32(img + 12));
        FZ_CHECK(nn_dataset_sample_size(&ds) == (int)pixels);
        FZ_CHECK(ds.x && ds.labels && !ds.targets);
        for (i = 0; i < (size_t)ds.count * pixels; i++) FZ_CHECK(ds.x[i] == (float)img[16 + i]);
        for (i = 0; i < (size_t)ds.count; i++) {
            FZ_CHECK(ds.labels[i] == lab[8 + i]);
            if (ds.labels[i] > max_label) max_label = ds.labels[i];
        }
        FZ_CHECK(ds.classes == max_label + 1);
        for (i = 0; i < (size_t)ds.count; i++) FZ_CHECK(ds.labels[i] >= 0 && ds.labels[i] < ds.classes);
    }
    nn_dataset_free(&ds);
    FZ_CHECK(ds.x == NULL && ds.labels == NULL && ds.count == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if ((data[0] & 1) == 0) {
        const uint8_t *img = data + 1;
        size_t img_size = size - 1;
        static uint8_t lab[8 + 65536];
        size_t lab_size = 8;
        uint32_t count = img_size >= 8 ? be32(img + 4) : 1;
        lab[0] = lab[1] = 0; lab[2] = 8; lab[3] = 1;
        lab[4] = (uint8_t)(count >> 24); lab[5] = (uint8_t)(count >> 16); lab[6] = (uint8_t)(count >> 8); lab[7] = (uint8_t)count;
        if (count <= 65536) {
            uint32_t i;
            for (i = 0; i < count; i++) lab[8 + i] = (uint8_t)(i % 10);
            lab_size += count;
        }
        check(img, img_size, lab, lab_size);
    } else {
        size_t len, rest = size - 1;
        const uint8_t *p = data + 1;
        if (rest < 2) return 0;
        len = (size_t)p[0] | ((size_t)p[1] << 8);
        p += 2;
        rest -= 2;
        if (len > rest) len = rest;
        check(p, len, p + len, rest - len);
    }
    return 0;
}
