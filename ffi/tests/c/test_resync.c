/*
 * Resync from C: compute and write a signature, read it back, compute a delta, apply it, resync
 * two paths, each with the progress callback; cancellation; refusals.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"


#define SIZE (3u << 20)

struct progress {
    int calls;
    uint64_t last_done, last_total;
    int cancel;
};

static int on_progress(void *user, uint64_t done, uint64_t total) {
    struct progress *p = user;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    return p->cancel;
}

static int same_as(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc(len + 1);
    size_t n = f ? fread(buf, 1, len + 1, f) : 0;
    int same = f != NULL && n == len && memcmp(buf, data, len) == 0;
    if (f) fclose(f);
    free(buf);
    return same;
}

int main(void) {
    char dir[] = "/tmp/replicore-c-XXXXXX";
    char src[256], tgt[256], sigp[256], deltap[256], other[256];
    unsigned char *source = malloc(SIZE), *target = malloc(SIZE);
    replicore_signature *sig = NULL, *back = NULL;
    replicore_delta_stats ds;
    replicore_apply_stats as;
    struct progress prog = {0};
    uint32_t cs = 0;
    uint64_t size = 0, count = 0;

    if (mkdtemp(dir) == NULL || !source || !target) return 2;
    snprintf(src, sizeof src, "%s/source.img", dir);
    snprintf(tgt, sizeof tgt, "%s/target.img", dir);
    snprintf(sigp, sizeof sigp, "%s/target.rcsig", dir);
    snprintf(deltap, sizeof deltap, "%s/x.rcdelta", dir);
    snprintf(other, sizeof other, "%s/other.img", dir);
    for (size_t i = 0; i < SIZE; i++) target[i] = (unsigned char)(i * 7 + (i >> 12));
    memcpy(source, target, SIZE);
    memset(source + 130000, 0xee, 5000);      /* two 64 KiB chunks change */
    memset(source + (2u << 20), 0, 1u << 19); /* eight chunks become zeros */
    write_file(src, source, SIZE);
    write_file(tgt, target, SIZE);

    /* Signature of the target, written and read back. */
    CHECK_STATUS(replicore_signature_compute(tgt, 65536, on_progress, &prog, &sig), REPLICORE_OK);
    CHECK(prog.calls >= 1 && prog.last_done == SIZE && prog.last_total == SIZE);
    CHECK_STATUS(replicore_signature_write(sig, sigp), REPLICORE_OK);
    /* Outputs never replace a file. */
    CHECK_STATUS(replicore_signature_write(sig, sigp), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_signature_read(sigp, &back), REPLICORE_OK);
    CHECK_STATUS(replicore_signature_info(back, &cs, &size, &count), REPLICORE_OK);
    CHECK(cs == 65536 && size == SIZE && count == SIZE / 65536);

    /* Delta from the source, applied to the target. */
    memset(&prog, 0, sizeof prog);
    CHECK_STATUS(replicore_delta_compute(src, back, deltap, on_progress, &prog, &ds), REPLICORE_OK);
    CHECK(prog.calls >= 1);
    CHECK(ds.data_chunks == 2 && ds.zero_chunks == 8 && ds.data_bytes == 2 * 65536);
    CHECK_STATUS(replicore_delta_apply(deltap, tgt, NULL, NULL, &as), REPLICORE_OK);
    CHECK(as.data_chunks == 2 && as.zero_chunks == 8 && as.final_size == SIZE);
    CHECK(same_as(tgt, source, SIZE));
    /* Applying again changes nothing. */
    CHECK_STATUS(replicore_delta_apply(deltap, tgt, NULL, NULL, NULL), REPLICORE_OK);
    CHECK(same_as(tgt, source, SIZE));

    /* Resync of two paths: a missing target is created; cancelling stops it. */
    memset(&prog, 0, sizeof prog);
    prog.cancel = 1;
    CHECK_STATUS(replicore_resync(src, other, 65536, on_progress, &prog, NULL), REPLICORE_ERR_CANCELLED);
    CHECK(prog.calls == 1);
    CHECK(strstr(replicore_last_error_message(), "cancelled") != NULL);
    memset(&prog, 0, sizeof prog);
    CHECK_STATUS(replicore_resync(src, other, 65536, on_progress, &prog, &as), REPLICORE_OK);
    CHECK(same_as(other, source, SIZE));
    CHECK(as.final_size == SIZE);

    /* Refusals. */
    CHECK_STATUS(replicore_signature_compute(tgt, 1000, NULL, NULL, &sig), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "power of two") != NULL);
    CHECK_STATUS(replicore_signature_compute(NULL, 65536, NULL, NULL, &sig), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_read(deltap, &sig), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_delta_apply(sigp, tgt, NULL, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_delta_compute(src, NULL, deltap, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_info(back, NULL, &size, &count), REPLICORE_ERR_NULL_PARAMETER);
    {
        /* A damaged delta is refused and the target left alone. */
        FILE *f = fopen(deltap, "r+b");
        fseek(f, 200, SEEK_SET);
        fputc(0x42, f);
        fclose(f);
        write_file(tgt, target, SIZE);
        CHECK_STATUS(replicore_delta_apply(deltap, tgt, NULL, NULL, NULL), REPLICORE_ERR_CORRUPT);
        CHECK(same_as(tgt, target, SIZE));
    }

    replicore_signature_free(sig);
    replicore_signature_free(back);
    replicore_signature_free(NULL);
    unlink(src);
    unlink(tgt);
    unlink(sigp);
    unlink(deltap);
    unlink(other);
    rmdir(dir);
    free(source);
    free(target);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
