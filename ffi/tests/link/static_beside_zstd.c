/*
 * The static library beside the system's libzstd: a host that links libreplicore.a and its own
 * libzstd must get its own zstd, while replicore keeps using the zstd bundled inside it.
 *
 * The installed archive exports only replicore_* symbols (ffi/pkg/localize.sh), so the host's
 * ZSTD_* calls resolve to the system library: ZSTD_versionNumber() equals the
 * ZSTD_VERSION_NUMBER of the system's zstd.h (the bundled zstd is another release), and with
 * a static libzstd.a there are no duplicate definitions. Before localization the same link
 * bound the host's ZSTD_versionNumber to the bundled copy.
 *
 * Build: ffi/tests/run-c-tests.sh (links the installed static library and -lzstd, shared and
 * static). Prints "N passed, N failed" and exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "replicore.h"

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (from Cargo.toml)"
#endif

#define CHUNK 65536u
#define SIZE (16u * CHUNK)

/* The host's own zstd: the version of the header it was compiled against, and a round trip. */
static void host_zstd(void) {
    unsigned version = ZSTD_versionNumber();
    printf("host zstd: ZSTD_versionNumber() %u, zstd.h %u\n", version, ZSTD_VERSION_NUMBER);
    CHECK(version == ZSTD_VERSION_NUMBER);

    static const char text[] = "the host compresses this with its own libzstd; "
                               "the host compresses this with its own libzstd";
    size_t bound = ZSTD_compressBound(sizeof text);
    char *packed = malloc(bound), *back = malloc(sizeof text);
    if (packed == NULL || back == NULL) abort();
    size_t n = ZSTD_compress(packed, bound, text, sizeof text, 3);
    CHECK(!ZSTD_isError(n) && n < sizeof text);
    CHECK(ZSTD_getFrameContentSize(packed, n) == sizeof text);
    size_t m = ZSTD_decompress(back, sizeof text, packed, n);
    CHECK(m == sizeof text && memcmp(back, text, sizeof text) == 0);
    free(packed);
    free(back);
}

/* replicore with its bundled zstd: a delta of compressible chunks is smaller than their data
 * (zstd ran) and applies back to the source. */
static void replicore_round_trip(void) {
    CHECK(strcmp(replicore_version(), EXPECTED_VERSION) == 0);

    char dir[] = "/tmp/replicore-c-zstd-XXXXXX";
    char src[256], tgt[256], deltap[256], keyp[256];
    unsigned char *source = malloc(SIZE), *target = malloc(SIZE);
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_key *key = NULL;
    replicore_signature *sig = NULL;
    replicore_delta_stats ds = {0};
    replicore_apply_stats as = {0};

    if (mkdtemp(dir) == NULL || source == NULL || target == NULL) abort();
    snprintf(src, sizeof src, "%s/source.img", dir);
    snprintf(tgt, sizeof tgt, "%s/target.img", dir);
    snprintf(deltap, sizeof deltap, "%s/x.rcdelta", dir);
    snprintf(keyp, sizeof keyp, "%s/k.rckey", dir);
    for (size_t i = 0; i < SIZE; i++) target[i] = (unsigned char)(i * 7 + (i >> 12));
    memcpy(source, target, SIZE);
    for (size_t i = 0; i < 4 * CHUNK; i++) /* four chunks of text: compressible */
        source[3 * CHUNK + i] = (unsigned char)"replicated guest write "[i % 23];
    write_file(src, source, SIZE);
    write_file(tgt, target, SIZE);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    CHECK_STATUS(replicore_signature_compute(key, tgt, CHUNK, NULL, NULL, &sig), REPLICORE_OK);
    CHECK_STATUS(replicore_delta_compute(sig, key, src, deltap, NULL, NULL, &ds), REPLICORE_OK);
    printf("replicore %s: delta of %llu data bytes in %llu bytes\n", replicore_version(),
           (unsigned long long)ds.data_bytes, (unsigned long long)ds.delta_bytes);
    CHECK(ds.data_chunks == 4 && ds.data_bytes == 4 * CHUNK);
    CHECK(ds.delta_bytes < ds.data_bytes / 4);
    CHECK_STATUS(replicore_delta_apply(key, deltap, tgt, NULL, NULL, &as), REPLICORE_OK);
    CHECK(as.data_chunks == 4 && as.final_size == SIZE);
    CHECK(same_file(tgt, source, SIZE));

    replicore_signature_free(sig);
    replicore_key_free(key);
    unlink(src);
    unlink(tgt);
    unlink(deltap);
    unlink(keyp);
    rmdir(dir);
    free(source);
    free(target);
}

int main(void) {
    host_zstd();
    replicore_round_trip();
    host_zstd(); /* the host's zstd still works after replicore's ran */
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
