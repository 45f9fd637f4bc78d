/* Check macros shared by the C tests: count passes and failures, print what failed with the
 * library's last error, and let main() end with "N passed, N failed". */
#ifndef REPLICORE_TEST_CHECK_H
#define REPLICORE_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replicore.h"

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_STATUS(call, expected)                                                   \
    do {                                                                               \
        replicore_status s_ = (call);                                                  \
        if (s_ == (expected)) {                                                        \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s (%u), expected %s: %s\n", __FILE__,  \
                    __LINE__, #call, replicore_status_name(s_), (unsigned)s_,          \
                    #expected, replicore_last_error_message());                        \
        }                                                                              \
    } while (0)

/* Writes `len` bytes to a new file at `path` (aborts on failure: a test fixture). */
static inline void write_file(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) abort();
    fclose(f);
}

/* Whether the file at `path` holds exactly the `len` bytes at `want`. */
static inline int same_file(const char *path, const unsigned char *want, size_t len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    unsigned char *got = malloc(len + 1);
    size_t n = got ? fread(got, 1, len + 1, f) : 0;
    fclose(f);
    int same = got != NULL && n == len && memcmp(got, want, len) == 0;
    free(got);
    return same;
}

/* The paths of the bundles a ship reports (up to 8): an `on_bundle` callback and its state. */
struct bundle_paths {
    char paths[8][512];
    int n;
};

static inline int collect_bundle_path(void *user, const char *path, uint64_t seq) {
    struct bundle_paths *b = user;
    (void)seq;
    if (b->n < 8) snprintf(b->paths[b->n++], sizeof b->paths[0], "%s", path);
    return 0;
}

#endif
