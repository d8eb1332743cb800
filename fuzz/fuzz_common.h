/* fuzz/fuzz_common.h - what the libFuzzer targets share: a private scratch directory (in
   /dev/shm when it exists, so the per-input file writes stay in memory) and a file writer. */
#ifndef NN_FUZZ_COMMON_H
#define NN_FUZZ_COMMON_H
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fz_dir[256];

static void fz_cleanup(void);
static char fz_paths[4][300];
static int fz_path_count;

/* A path inside the scratch directory (created on first use, removed at exit). */
static const char *fz_path(const char *name)
{
    int i;
    if (!fz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/nnfuzz.XXXXXX", base);
        if (!mkdtemp(fz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    for (i = 0; i < fz_path_count; i++)
        if (!strcmp(strrchr(fz_paths[i], '/') + 1, name)) return fz_paths[i];
    if (fz_path_count == 4) abort();
    snprintf(fz_paths[fz_path_count], sizeof fz_paths[0], "%s/%s", fz_dir, name);
    return fz_paths[fz_path_count++];
}

static void fz_cleanup(void)
{
    int i;
    char tmp[320];
    for (i = 0; i < fz_path_count; i++) {
        remove(fz_paths[i]);
        snprintf(tmp, sizeof tmp, "%s.tmp", fz_paths[i]);
        remove(tmp);
    }
    if (fz_dir[0]) rmdir(fz_dir);
}

static void fz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

#define FZ_CHECK(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)
#endif
