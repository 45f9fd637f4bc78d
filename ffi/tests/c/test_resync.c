/*
 * Resync from C: compute a keyed signature, write it sealed and read it back, compute a sealed
 * delta, apply it; the same streamed by file (signature written as hashed, delta computed from
 * the signature file); resync two paths, each with the progress callback; cancellation; refusals:
 * another key, a damaged delta, a target that is not the image the signature was taken of.
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

/* Whether `needle` occurs in the file at `path` (of `len` bytes at most). */
static int contains(const char *path, const unsigned char *needle, size_t n, size_t len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc(len);
    size_t got = f ? fread(buf, 1, len, f) : 0;
    int found = 0;
    for (size_t i = 0; i + n <= got && !found; i++) found = memcmp(buf + i, needle, n) == 0;
    if (f) fclose(f);
    free(buf);
    return found;
}

int main(void) {
    char dir[] = "/tmp/replicore-c-XXXXXX";
    char src[256], tgt[256], sigp[256], deltap[256], other[256], k1p[256], k2p[256];
    char sig2p[256], delta2p[256], scratch[256];
    unsigned char *source = malloc(SIZE), *target = malloc(SIZE), *wrong = malloc(SIZE);
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_key *k1 = NULL, *k2 = NULL;
    replicore_signature *sig = NULL, *back = NULL;
    replicore_delta_stats ds;
    replicore_apply_stats as;
    struct progress prog = {0};
    uint32_t cs = 0;
    uint64_t size = 0, count = 0;
    unsigned char marker[64];

    if (mkdtemp(dir) == NULL || !source || !target || !wrong) return 2;
    snprintf(src, sizeof src, "%s/source.img", dir);
    snprintf(tgt, sizeof tgt, "%s/target.img", dir);
    snprintf(sigp, sizeof sigp, "%s/target.rcsig", dir);
    snprintf(deltap, sizeof deltap, "%s/x.rcdelta", dir);
    snprintf(other, sizeof other, "%s/other.img", dir);
    snprintf(k1p, sizeof k1p, "%s/k1.rckey", dir);
    snprintf(k2p, sizeof k2p, "%s/k2.rckey", dir);
    snprintf(sig2p, sizeof sig2p, "%s/streamed.rcsig", dir);
    snprintf(delta2p, sizeof delta2p, "%s/streamed.rcdelta", dir);
    snprintf(scratch, sizeof scratch, "%s/scratch", dir);
    for (size_t i = 0; i < SIZE; i++) target[i] = (unsigned char)(i * 7 + (i >> 12));
    memcpy(source, target, SIZE);
    memset(source + 130000, 0xee, 5000);      /* two 64 KiB chunks change */
    memset(source + (2u << 20), 0, 1u << 19); /* eight chunks become zeros */
    for (size_t i = 0; i < sizeof marker; i++) marker[i] = (unsigned char)(0xc0 ^ i);
    memcpy(source + 140000, marker, sizeof marker); /* plaintext to look for in the delta */
    memcpy(wrong, target, SIZE);
    memset(wrong + 131072, 0x11, 100);        /* another image: a written chunk differs */
    write_file(src, source, SIZE);
    write_file(tgt, target, SIZE);
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(k1p, master, NULL, &k1), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(k2p, master, NULL, &k2), REPLICORE_OK);

    /* Keyed signature of the target, written sealed and read back. */
    CHECK_STATUS(replicore_signature_compute(k1, tgt, 65536, on_progress, &prog, &sig), REPLICORE_OK);
    CHECK(prog.calls >= 1 && prog.last_done == SIZE && prog.last_total == SIZE);
    CHECK_STATUS(replicore_signature_write(sig, k1, sigp), REPLICORE_OK);
    /* Outputs never replace a file. */
    CHECK_STATUS(replicore_signature_write(sig, k1, sigp), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_signature_read(k1, sigp, &back), REPLICORE_OK);
    CHECK_STATUS(replicore_signature_info(back, &cs, &size, &count), REPLICORE_OK);
    CHECK(cs == 65536 && size == SIZE && count == SIZE / 65536);
    /* Another key: cannot read it, cannot write this signature under it. */
    {
        replicore_signature *nope = NULL;
        CHECK_STATUS(replicore_signature_read(k2, sigp, &nope), REPLICORE_ERR_AUTHENTICATION);
        CHECK(nope == NULL);
        CHECK_STATUS(replicore_signature_write(sig, k2, sigp), REPLICORE_ERR_INVALID_ARGUMENT);
    }

    /* Sealed delta from the source: the changed bytes are not in it in the clear. */
    memset(&prog, 0, sizeof prog);
    CHECK_STATUS(replicore_delta_compute(back, k1, src, deltap, on_progress, &prog, &ds), REPLICORE_OK);
    CHECK(prog.calls >= 1);
    CHECK(ds.data_chunks == 2 && ds.zero_chunks == 8 && ds.data_bytes == 2 * 65536);
    CHECK(!contains(deltap, marker, sizeof marker, (size_t)ds.delta_bytes));

    /* Streamed by file (memory bounded whatever the disk): the same signature and delta. */
    {
        replicore_signature *streamed = NULL;
        replicore_delta_stats sds;
        memset(&prog, 0, sizeof prog);
        CHECK_STATUS(replicore_signature_write_of_image(k1, tgt, 65536, sig2p, on_progress, &prog), REPLICORE_OK);
        CHECK(prog.calls >= 1 && prog.last_done == SIZE && prog.last_total == SIZE);
        CHECK_STATUS(replicore_signature_write_of_image(k1, tgt, 65536, sig2p, NULL, NULL), REPLICORE_ERR_ALREADY_EXISTS);
        CHECK_STATUS(replicore_signature_read(k1, sig2p, &streamed), REPLICORE_OK);
        CHECK_STATUS(replicore_signature_info(streamed, &cs, &size, &count), REPLICORE_OK);
        CHECK(cs == 65536 && size == SIZE && count == SIZE / 65536);
        replicore_signature_free(streamed);
        memset(&prog, 0, sizeof prog);
        CHECK_STATUS(replicore_delta_compute_from_file(sig2p, k1, src, delta2p, on_progress, &prog, &sds), REPLICORE_OK);
        CHECK(prog.calls >= 1);
        CHECK(sds.data_chunks == ds.data_chunks && sds.zero_chunks == ds.zero_chunks && sds.data_bytes == ds.data_bytes);
        CHECK(!contains(delta2p, marker, sizeof marker, (size_t)sds.delta_bytes));
        /* It applies to a copy of the target: the source, byte for byte. */
        write_file(scratch, target, SIZE);
        CHECK_STATUS(replicore_delta_apply(k1, delta2p, scratch, NULL, NULL, NULL), REPLICORE_OK);
        CHECK(same_as(scratch, source, SIZE));
        unlink(scratch);
        /* Refused, nothing left behind: another key, the memory handle's signature file under
         * the wrong key, a bad chunk size, a cancel, NULLs. */
        CHECK_STATUS(replicore_delta_compute_from_file(sig2p, k2, src, scratch, NULL, NULL, NULL), REPLICORE_ERR_AUTHENTICATION);
        CHECK(access(scratch, F_OK) != 0);
        CHECK_STATUS(replicore_delta_compute_from_file(deltap, k1, src, scratch, NULL, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK(strstr(replicore_last_error_message(), "sig_path") != NULL || strstr(replicore_last_error_message(), "signature") != NULL);
        CHECK(access(scratch, F_OK) != 0);
        CHECK_STATUS(replicore_signature_write_of_image(k1, tgt, 1000, scratch, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK(access(scratch, F_OK) != 0);
        memset(&prog, 0, sizeof prog);
        prog.cancel = 1;
        CHECK_STATUS(replicore_signature_write_of_image(k1, tgt, 65536, scratch, on_progress, &prog), REPLICORE_ERR_CANCELLED);
        CHECK(access(scratch, F_OK) != 0);
        CHECK_STATUS(replicore_signature_write_of_image(NULL, tgt, 65536, scratch, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_signature_write_of_image(k1, NULL, 65536, scratch, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_signature_write_of_image(k1, tgt, 65536, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_delta_compute_from_file(NULL, k1, src, scratch, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_delta_compute_from_file(sig2p, NULL, src, scratch, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_delta_compute_from_file(sig2p, k1, NULL, scratch, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK_STATUS(replicore_delta_compute_from_file(sig2p, k1, src, NULL, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
        CHECK(access(scratch, F_OK) != 0);
    }

    /* Wrong key, wrong target, cancelled: refused, the target unchanged. */
    CHECK_STATUS(replicore_delta_apply(k2, deltap, tgt, NULL, NULL, NULL), REPLICORE_ERR_AUTHENTICATION);
    CHECK(same_as(tgt, target, SIZE));
    write_file(other, wrong, SIZE);
    CHECK_STATUS(replicore_delta_apply(k1, deltap, other, NULL, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "not the image the signature was taken of") != NULL);
    CHECK(same_as(other, wrong, SIZE));
    memset(&prog, 0, sizeof prog);
    prog.cancel = 1;
    CHECK_STATUS(replicore_delta_apply(k1, deltap, tgt, on_progress, &prog, NULL), REPLICORE_ERR_CANCELLED);
    CHECK(prog.calls == 1);
    CHECK(same_as(tgt, target, SIZE));

    /* Applied, then applied again: nothing changes. */
    memset(&prog, 0, sizeof prog);
    CHECK_STATUS(replicore_delta_apply(k1, deltap, tgt, on_progress, &prog, &as), REPLICORE_OK);
    CHECK(prog.calls >= 2 && prog.last_done == prog.last_total);
    CHECK(as.data_chunks == 2 && as.zero_chunks == 8 && as.final_size == SIZE);
    CHECK(same_as(tgt, source, SIZE));
    CHECK_STATUS(replicore_delta_apply(k1, deltap, tgt, NULL, NULL, NULL), REPLICORE_OK);
    CHECK(same_as(tgt, source, SIZE));
    unlink(other);

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
    CHECK_STATUS(replicore_signature_compute(k1, tgt, 1000, NULL, NULL, &sig), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "power of two") != NULL);
    CHECK_STATUS(replicore_signature_compute(k1, NULL, 65536, NULL, NULL, &sig), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_compute(NULL, tgt, 65536, NULL, NULL, &sig), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_write(sig, NULL, sigp), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_read(NULL, sigp, &sig), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_read(k1, deltap, &sig), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_delta_apply(k1, sigp, tgt, NULL, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_delta_apply(NULL, deltap, tgt, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_delta_compute(NULL, k1, src, deltap, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_delta_compute(back, NULL, src, deltap, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_signature_info(back, NULL, &size, &count), REPLICORE_ERR_NULL_PARAMETER);
    {
        /* A damaged delta is refused and the target left alone. */
        /* (Flipped, not overwritten: the sealed bytes are random, and may already hold any
         * given value.) */
        FILE *f = fopen(deltap, "r+b");
        fseek(f, 200, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 200, SEEK_SET);
        fputc(c ^ 0x42, f);
        fclose(f);
        write_file(tgt, target, SIZE);
        CHECK_STATUS(replicore_delta_apply(k1, deltap, tgt, NULL, NULL, NULL), REPLICORE_ERR_CORRUPT);
        CHECK(same_as(tgt, target, SIZE));
    }

    replicore_signature_free(sig);
    replicore_signature_free(back);
    replicore_signature_free(NULL);
    replicore_key_free(k1);
    replicore_key_free(k2);
    unlink(src);
    unlink(tgt);
    unlink(sigp);
    unlink(deltap);
    unlink(other);
    unlink(k1p);
    unlink(k2p);
    unlink(sig2p);
    unlink(delta2p);
    rmdir(dir);
    free(source);
    free(target);
    free(wrong);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
