/*
 * Resynchronization into the chain from C (issue 17): a two-disk group seeded, shipped and
 * ingested; its tracker lost while the disks changed (writes no log saw); the vault's point
 * signature of the newest point; the resync point shipped from the disks with a new log;
 * ingested; failover equals the disks; replication goes on from the new log and state in the
 * same chain; refusals (an existing signature file, a missing disk, unknown flags, a stale
 * signature at ingest).
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define OS_LEN (1u << 20)
#define DATA_LEN (300000u)

static void patch(const char *path, long at, const void *data, size_t len) {
    FILE *f = fopen(path, "r+b");
    if (f == NULL || fseek(f, at, SEEK_SET) != 0 || fwrite(data, 1, len, f) != len) abort();
    fclose(f);
}

int main(void) {
    char dir[] = "/tmp/replicore-c-chain-XXXXXX";
    char osp[256], datap[256], keyp[256], logp[256], log2p[256], statep[256], basep[256];
    char sealedp[256], vaultp[256], out[256], sigp[256], fo[300], img[400];
    unsigned char *os = malloc(OS_LEN), *data = malloc(DATA_LEN);
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_key *key = NULL;
    replicore_log *log = NULL, *log2 = NULL;
    replicore_vault *vault = NULL;
    replicore_tracker tracker;
    replicore_resync_info info;
    replicore_point_info latest;
    struct bundle_paths shipped = {0}, resynced = {0};
    uint64_t count = 0, point = 0;

    if (mkdtemp(dir) == NULL || !os || !data) return 2;
    snprintf(osp, sizeof osp, "%s/os.img", dir);
    snprintf(datap, sizeof datap, "%s/data.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(log2p, sizeof log2p, "%s/g-2.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(sealedp, sizeof sealedp, "%s/sealed.rclog", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(out, sizeof out, "%s", dir);
    snprintf(sigp, sizeof sigp, "%s/g.rcpsig", dir);
    for (size_t i = 0; i < OS_LEN; i++) os[i] = (unsigned char)(i * 31 + i / 999);
    for (size_t i = 0; i < DATA_LEN; i++) data[i] = (unsigned char)("chain resync "[i % 13]);
    write_file(osp, os, OS_LEN);
    write_file(datap, data, DATA_LEN);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    const char *names[] = {"os", "data"};
    const char *paths[] = {osp, datap};
    CHECK_STATUS(replicore_seed("vm-r", names, paths, 2, key, logp, statep, basep, 65536, NULL, NULL, &log),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_log_write(log, 0, 100, (const uint8_t *)"tracked", 7), REPLICORE_OK);
    patch(osp, 100, "tracked", 7);
    memcpy(os + 100, "tracked", 7);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, "p1", 0, &point), REPLICORE_OK);
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, out, collect_bundle_path, &shipped, NULL, NULL, &count),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, NULL), REPLICORE_OK);

    /* The tracker is lost (the agent died, its log with it); the disks change meanwhile. */
    replicore_log_free(log);
    log = NULL;
    unlink(logp);
    patch(osp, 200000, "untracked write on os", 21);
    memcpy(os + 200000, "untracked write on os", 21);
    patch(datap, 5, "untracked", 9);
    memcpy(data + 5, "untracked", 9);

    /* At the vault: the newest point's signature. */
    CHECK_STATUS(replicore_vault_point_signature(vault, "vm-r", NULL, key, sigp, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_point_signature(vault, "vm-r", NULL, key, sigp, NULL, NULL),
                 REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_vault_point_signature(vault, "nope", NULL, key, "/tmp/never", NULL, NULL),
                 REPLICORE_ERR_NOT_FOUND);

    /* At the primary: refusals first, nothing written. */
    CHECK_STATUS(replicore_resync_ship(sigp, key, names, paths, 1, log2p, statep, out, 0, NULL, NULL, NULL,
                                       NULL, NULL, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(access(log2p, F_OK) != 0);
    CHECK_STATUS(replicore_resync_ship(sigp, key, names, paths, 2, log2p, statep, out, 0x10, NULL, NULL, NULL,
                                       NULL, NULL, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    /* The resync point: only the two changed chunks. */
    CHECK_STATUS(replicore_resync_ship(sigp, key, names, paths, 2, log2p, statep, out, 0, collect_bundle_path,
                                       &resynced, NULL, NULL, &log2, &info),
                 REPLICORE_OK);
    CHECK(resynced.n == 1 && info.seq == 2 && info.changed_chunks == 2 && log2 != NULL);
    CHECK(info.chunks == OS_LEN / 65536 + (DATA_LEN + 65535) / 65536);
    CHECK(info.plain_bytes == 2 * 65536);
    CHECK_STATUS(replicore_vault_ingest(vault, resynced.paths[0], NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_select(vault, "vm-r", REPLICORE_SELECT_LATEST, 0, NULL, &latest), REPLICORE_OK);
    CHECK(latest.seq == 2 && memcmp(latest.id, info.point_id, 32) == 0);
    snprintf(fo, sizeof fo, "%s/fo-1", dir);
    CHECK_STATUS(replicore_vault_failover(vault, "vm-r", REPLICORE_SELECT_LATEST, 0, NULL, key, fo, NULL, NULL,
                                          &count),
                 REPLICORE_OK);
    snprintf(img, sizeof img, "%s/os.img", fo);
    CHECK(same_file(img, os, OS_LEN));
    snprintf(img, sizeof img, "%s/data.img", fo);
    CHECK(same_file(img, data, DATA_LEN));

    /* Replication goes on from the new log and the saved state. */
    CHECK_STATUS(replicore_log_write(log2, 1, 1000, (const uint8_t *)"after", 5), REPLICORE_OK);
    memcpy(data + 1000, "after", 5);
    CHECK_STATUS(replicore_log_mark(log2, REPLICORE_MARKER_APP, "p3", 0, &point), REPLICORE_OK);
    CHECK(point == 3);
    snprintf(sealedp, sizeof sealedp, "%s/sealed-2.rclog", dir);
    CHECK_STATUS(replicore_log_rotate(log2, sealedp, &tracker), REPLICORE_OK);
    memset(&shipped, 0, sizeof shipped);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, out, collect_bundle_path, &shipped, NULL, NULL, &count),
                 REPLICORE_OK);
    CHECK(count == 1);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, NULL), REPLICORE_OK);
    snprintf(fo, sizeof fo, "%s/fo-2", dir);
    CHECK_STATUS(replicore_vault_failover(vault, "vm-r", REPLICORE_SELECT_LATEST, 0, NULL, key, fo, NULL, NULL,
                                          &count),
                 REPLICORE_OK);
    snprintf(img, sizeof img, "%s/data.img", fo);
    CHECK(same_file(img, data, DATA_LEN));

    /* The old signature is stale now: its resync point does not follow the head. */
    {
        char out2[300], log3[300];
        struct bundle_paths stale = {0};
        snprintf(out2, sizeof out2, "%s/stale", dir);
        snprintf(log3, sizeof log3, "%s/g-3.rclog", dir);
        CHECK(mkdir(out2, 0700) == 0);
        snprintf(img, sizeof img, "%s/stale.rcship", dir);
        CHECK_STATUS(replicore_resync_ship(sigp, key, names, paths, 2, log3, img, out2, 0, collect_bundle_path,
                                           &stale, NULL, NULL, NULL, NULL),
                     REPLICORE_OK);
        CHECK_STATUS(replicore_vault_ingest(vault, stale.paths[0], NULL, NULL, NULL), REPLICORE_ERR_CHAIN_BROKEN);
    }

    replicore_vault_free(vault);
    replicore_log_free(log2);
    replicore_key_free(key);
    free(os);
    free(data);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
