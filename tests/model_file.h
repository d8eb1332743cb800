/* tests/model_file.h - model files (format 2, docs/format.md) written byte by byte, independently
   of nn.h's writer: the tests, the reliability probe and the fuzz seeds use it to make valid files
   from a description and hostile ones by changing a single field. Everything here follows the
   document, not the library's code, so that the two check each other.

       mf_buf graph, parm, file;
       mf_node nodes[] = {MF_INPUT(1, 1, 4, "x"), MF_LINEAR(0, 3, 1, "fc")};
       mf_graph(&graph, NN_LOSS_SOFTMAX_CROSS_ENTROPY, nodes, 2);
       ...
       mf_file(&file, (mf_section[]){{"GRPH", &graph}, {"META", &meta}, {"PARM", &parm}, {"STAT", &stat}}, 4);

   A buffer holds up to MF_CAPACITY bytes; writing past it aborts (a test bug, not a library one). */
#ifndef NN_TEST_MODEL_FILE_H
#define NN_TEST_MODEL_FILE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_CAPACITY (1 << 16)
typedef struct mf_buf {
    unsigned char data[MF_CAPACITY];
    size_t size;
} mf_buf;

static inline unsigned char *mf_space(mf_buf *b, size_t n)
{
    if (n > MF_CAPACITY - b->size) {
        fprintf(stderr, "model_file.h: buffer full\n");
        abort();
    }
    b->size += n;
    return b->data + b->size - n;
}
static inline void mf_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline uint32_t mf_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void mf_u32(mf_buf *b, uint32_t v) { mf_le32(mf_space(b, 4), v); }
static inline void mf_u64(mf_buf *b, uint64_t v)
{
    mf_u32(b, (uint32_t)v);
    mf_u32(b, (uint32_t)(v >> 32));
}
static inline void mf_f32(mf_buf *b, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    mf_u32(b, bits);
}
static inline void mf_bytes(mf_buf *b, const void *p, size_t n)
{
    if (n) memcpy(mf_space(b, n), p, n);
}
/* u32 length, then the bytes */
static inline void mf_string(mf_buf *b, const char *s)
{
    mf_u32(b, (uint32_t)strlen(s));
    mf_bytes(b, s, strlen(s));
}

/* CRC-32 (zlib's: reflected polynomial 0xEDB88320, initial value and final xor 0xFFFFFFFF), bitwise */
static inline uint32_t mf_crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
/* the last 4 bytes become the CRC-32 of the rest */
static inline void mf_fix_crc(unsigned char *p, size_t n)
{
    if (n >= 4) mf_le32(p + n - 4, mf_crc32(p, n - 4));
}

/* One graph record (docs/format.md, "GRPH"). The macros fill the fields each op uses; a test
   changes one field afterwards to make a hostile record. */
typedef struct mf_node {
    uint32_t op;
    int32_t in0, in1, c, h, w, units, kernel, stride, pad, bias;
    uint32_t activation;
    float parameter;
    const char *name;
} mf_node;
/* op, inputs, output shape, units, kernel, stride, padding, bias, activation, parameter, name */
#define MF_NODE(op, a, b, c, h, w, units, k, s, p, bias, act, param, name) \
    {(uint32_t)(op), a, b, c, h, w, units, k, s, p, bias, (uint32_t)(act), param, name}
#define MF_INPUT(c, h, w, name) MF_NODE(0, -1, -1, c, h, w, 0, 0, 0, 0, 0, 0, 0.0f, name)
#define MF_LINEAR(x, out, bias, name) MF_NODE(1, x, -1, out, 1, 1, out, 0, 0, 0, bias, 0, 0.0f, name)
#define MF_CONV(x, c, h, w, k, s, p, bias, name) MF_NODE(2, x, -1, c, h, w, c, k, s, p, bias, 0, 0.0f, name)
#define MF_MAXPOOL(x, c, h, w, k, s, name) MF_NODE(3, x, -1, c, h, w, 0, k, s, 0, 0, 0, 0.0f, name)
#define MF_BATCHNORM(x, c, h, w, name) MF_NODE(6, x, -1, c, h, w, c, 0, 0, 0, 1, 0, 0.0f, name)
#define MF_DROPOUT(x, c, h, w, p, name) MF_NODE(7, x, -1, c, h, w, 0, 0, 0, 0, 0, 0, p, name)
#define MF_FLATTEN(x, c, name) MF_NODE(8, x, -1, c, 1, 1, 0, 0, 0, 0, 0, 0, 0.0f, name)
#define MF_ADD(a, b, c, h, w, name) MF_NODE(9, a, b, c, h, w, 0, 0, 0, 0, 0, 0, 0.0f, name)
#define MF_ACTIVATION(x, c, h, w, kind, param, name) MF_NODE(10, x, -1, c, h, w, 0, 0, 0, 0, 0, kind, param, name)

/* the GRPH payload: node count, loss, records */
static inline void mf_graph(mf_buf *b, uint32_t loss, const mf_node *nodes, int count)
{
    int i;
    mf_u32(b, (uint32_t)count);
    mf_u32(b, loss);
    for (i = 0; i < count; i++) {
        const mf_node *n = &nodes[i];
        mf_u32(b, n->op);
        mf_u32(b, (uint32_t)n->in0);
        mf_u32(b, (uint32_t)n->in1);
        mf_u32(b, (uint32_t)n->c);
        mf_u32(b, (uint32_t)n->h);
        mf_u32(b, (uint32_t)n->w);
        mf_u32(b, (uint32_t)n->units);
        mf_u32(b, (uint32_t)n->kernel);
        mf_u32(b, (uint32_t)n->stride);
        mf_u32(b, (uint32_t)n->pad);
        mf_u32(b, (uint32_t)n->bias);
        mf_u32(b, n->activation);
        mf_f32(b, n->parameter);
        mf_string(b, n->name);
    }
}
/* the META payload: pair count, then key and value strings */
static inline void mf_meta(mf_buf *b, const char *const *keys, const char *const *values, int count)
{
    int i;
    mf_u32(b, (uint32_t)count);
    for (i = 0; i < count; i++) {
        mf_string(b, keys[i]);
        mf_string(b, values[i]);
    }
}
/* the PARM or STAT payload: float32 values */
static inline void mf_floats(mf_buf *b, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) mf_f32(b, x[i]);
}

typedef struct mf_section {
    const char *tag;     /* 4 characters */
    const mf_buf *payload;
} mf_section;
/* header (magic, version 2, section count), the sections in the order given, the CRC */
static inline void mf_file(mf_buf *out, const mf_section *sections, int count)
{
    int i;
    out->size = 0;
    mf_bytes(out, "NNHMODEL", 8);
    mf_u32(out, 2);
    mf_u32(out, (uint32_t)count);
    for (i = 0; i < count; i++) {
        mf_bytes(out, sections[i].tag, 4);
        mf_u64(out, sections[i].payload->size);
        mf_bytes(out, sections[i].payload->data, sections[i].payload->size);
    }
    mf_u32(out, mf_crc32(out->data, out->size));
}

/* Where the payload of the section `tag` starts in a file (walking the section headers), and
   its length; -1 when the file has no such section. */
static inline long mf_find_section(const unsigned char *file, size_t size, const char *tag, uint64_t *length)
{
    size_t at = 16;
    while (at + 12 <= size - 4) {
        uint64_t n = mf_get32(file + at + 4) | (uint64_t)mf_get32(file + at + 8) << 32;
        if (memcmp(file + at, tag, 4) == 0) {
            if (length) *length = n;
            return (long)(at + 12);
        }
        if (n > size) break;
        at += 12 + (size_t)n;
    }
    return -1;
}
#endif
