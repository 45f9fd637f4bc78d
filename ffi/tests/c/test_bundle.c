/*
 * Keys and bundles from C: generate, load and rotate keys (raw key and passphrase); seed a
 * group, record writes, rotate and ship; verify bundles with and without the key; refusals
 * (wrong key, wrong passphrase, damaged bundle, a log shipped twice, NULL arguments).
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define IMG (1u << 20)

struct seen {
    int bundles, progress_calls;
    uint64_t last_seq;
    char last_path[512];
};

static int on_progress(void *user, uint64_t done, uint64_t total) {
    struct seen *s = user;
    s->progress_calls++;
    return done > total; /* never cancels unless the library misreports */
}

static int on_bundle(void *user, const char *path, uint64_t seq) {
    struct seen *s = user;
    s->bundles++;
    s->last_seq = seq;
    snprintf(s->last_path, sizeof s->last_path, "%s", path);
    return 0;
}

int main(void) {
    char dir[] = "/tmp/replicore-c-bundle-XXXXXX";
    char img[256], keyp[256], key2p[256], keypw[256], logp[256], statep[256], basep[256];
    char sealedp[256], outd[256], broken[256];
    uint8_t master[REPLICORE_MASTER_KEY_LEN], master2[REPLICORE_MASTER_KEY_LEN];
    uint8_t id1[REPLICORE_KEY_ID_LEN], id2[REPLICORE_KEY_ID_LEN];
    unsigned char *image = malloc(IMG);
    replicore_key *key = NULL, *again = NULL, *rotated = NULL, *pw = NULL;
    replicore_log *log = NULL;
    replicore_bundle_info info, base_info;
    struct seen seen = {0};
    uint64_t count = 0, point = 0;
    replicore_tracker tracker;

    if (mkdtemp(dir) == NULL || image == NULL) return 2;
    snprintf(img, sizeof img, "%s/os.img", dir);
    snprintf(keyp, sizeof keyp, "%s/group.rckey", dir);
    snprintf(key2p, sizeof key2p, "%s/rotated.rckey", dir);
    snprintf(keypw, sizeof keypw, "%s/pw.rckey", dir);
    snprintf(logp, sizeof logp, "%s/vm.rclog", dir);
    snprintf(statep, sizeof statep, "%s/vm.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(sealedp, sizeof sealedp, "%s/sealed-0.rclog", dir);
    snprintf(outd, sizeof outd, "%s", dir);
    snprintf(broken, sizeof broken, "%s/broken.rcb", dir);
    for (size_t i = 0; i < IMG; i++) image[i] = (i / 65536) % 3 == 0 ? 0 : (unsigned char)(i * 7 + i / 513);
    write_file(img, image, IMG);

    /* Keys. */
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_master_key_generate(master2), REPLICORE_OK);
    CHECK(memcmp(master, master2, sizeof master) != 0);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &again), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_key_generate(keypw, master, "both", &again), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_key_load(keyp, master2, NULL, &again), REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_key_load(keyp, master, NULL, &again), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(key, id1), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(again, id2), REPLICORE_OK);
    CHECK(memcmp(id1, id2, sizeof id1) == 0);
    replicore_key_free(again);
    again = NULL;
    CHECK_STATUS(replicore_key_rotate(keyp, master, NULL, key2p, NULL, "new passphrase"), REPLICORE_OK);
    CHECK_STATUS(replicore_key_load(key2p, master, NULL, &rotated), REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_key_load(key2p, NULL, "wrong", &rotated), REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_key_load(key2p, NULL, "new passphrase", &rotated), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(rotated, id2), REPLICORE_OK);
    CHECK(memcmp(id1, id2, sizeof id1) == 0); /* rotation keeps the key id */
    CHECK_STATUS(replicore_key_generate(keypw, NULL, "pw", &pw), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(NULL, id2), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_key_id(key, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_master_key_generate(NULL), REPLICORE_ERR_NULL_PARAMETER);

    /* Seed, track, rotate, ship. */
    const char *names[] = {"os"};
    const char *paths[] = {img};
    CHECK_STATUS(replicore_seed("vm-01", names, paths, 1, key, logp, statep, basep, 65536,
                                on_progress, &seen, &log),
                 REPLICORE_OK);
    CHECK(seen.progress_calls > 0);
    CHECK_STATUS(replicore_bundle_verify(basep, NULL, &base_info), REPLICORE_OK);
    CHECK(base_info.kind == 1 && base_info.seq == 0 && base_info.disks == 1);
    CHECK(base_info.blobs > 0 && base_info.plain_bytes < IMG); /* zero chunks skipped */
    CHECK_STATUS(replicore_bundle_verify(basep, key, &info), REPLICORE_OK);
    CHECK_STATUS(replicore_bundle_verify(basep, rotated, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_bundle_verify(basep, pw, NULL), REPLICORE_ERR_AUTHENTICATION);

    CHECK_STATUS(replicore_log_write(log, 0, 4096, (const uint8_t *)"guest write", 11), REPLICORE_OK);
    CHECK_STATUS(replicore_log_trim(log, 0, 65536, 4096), REPLICORE_OK);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_APP, "vss", 0, &point), REPLICORE_OK);
    CHECK(point == 1);
    CHECK_STATUS(replicore_log_write(log, 0, 0, image + 8192, 70000), REPLICORE_OK);
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    /* One user pointer per callback: bundles to `seen`, progress to `ship_progress`. */
    struct seen ship_progress = {0};
    int before = seen.progress_calls;
    CHECK_STATUS(replicore_ship(sealedp, key, statep, outd, on_bundle, &seen, on_progress,
                                &ship_progress, &count),
                 REPLICORE_OK);
    CHECK(count == 2 && seen.bundles == 2 && seen.last_seq == 2);
    CHECK(seen.progress_calls == before && ship_progress.progress_calls >= 2);
    CHECK(ship_progress.bundles == 0);
    CHECK_STATUS(replicore_bundle_verify(seen.last_path, key, &info), REPLICORE_OK);
    CHECK(info.kind == 2 && info.seq == 2 && info.consistency == 1);
    {
        /* The bundle names its key: the group key's id and verifying key. */
        uint8_t kid[16], vk[32];
        CHECK_STATUS(replicore_key_id(key, kid), REPLICORE_OK);
        CHECK_STATUS(replicore_key_verifying_key(key, vk), REPLICORE_OK);
        CHECK(memcmp(info.key_id, kid, 16) == 0 && memcmp(info.verifying_key, vk, 32) == 0);
    }
    /* The same sealed log again: shipped already (an agent that crashed after shipping), not
     * a resync; nothing changes. */
    CHECK_STATUS(replicore_ship(sealedp, key, statep, outd, NULL, NULL, NULL, NULL, NULL),
                 REPLICORE_ERR_ALREADY_EXISTS);
    CHECK(strstr(replicore_last_error_message(), "was shipped") != NULL);
    CHECK_STATUS(replicore_ship(sealedp, NULL, statep, outd, NULL, NULL, NULL, NULL, NULL),
                 REPLICORE_ERR_NULL_PARAMETER);

    /* A damaged bundle. */
    {
        FILE *f = fopen(seen.last_path, "rb");
        unsigned char buf[1 << 16];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        CHECK(n > 100 && n < sizeof buf);
        buf[n / 2] ^= 1;
        write_file(broken, buf, n);
        CHECK_STATUS(replicore_bundle_verify(broken, NULL, NULL), REPLICORE_ERR_CORRUPT);
    }
    CHECK_STATUS(replicore_bundle_verify(NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);

    replicore_log_free(log);
    replicore_key_free(key);
    replicore_key_free(rotated);
    replicore_key_free(pw);
    replicore_key_free(NULL);
    free(image);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
