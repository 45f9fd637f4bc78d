/*
 * Trust from C (issue 15): a group's verifying key pinned in a vault, a forged base of the same
 * group (another key) refused; every point's listing names its signer; prune then compact into
 * a signed checkpoint, every byte of the newest point still right; a head behind the shipped
 * sequence refused (rollback); a lost head reported by verify and rebuilt; NULL arguments.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define DISK_LEN (1u << 20)


/* Seeds group "vm-t" from `disk` in `dir` under a new key; ships `points` points. */
static void primary(const char *dir, unsigned char *disk, int points, replicore_key **key,
                    char *base, struct bundle_paths *shipped, uint64_t *last_seq) {
    char img[400], keyp[400], logp[400], statep[400], sealed[400];
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_log *log = NULL;
    replicore_tracker tracker;
    uint64_t point = 0, count = 0;
    mkdir(dir, 0700);
    snprintf(img, sizeof img, "%s/os.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(base, 400, "%s/base.rcb", dir);
    snprintf(sealed, sizeof sealed, "%s/sealed.rclog", dir);
    write_file(img, disk, DISK_LEN);
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, key), REPLICORE_OK);
    const char *names[] = {"os"};
    const char *paths[] = {img};
    CHECK_STATUS(replicore_seed("vm-t", names, paths, 1, *key, logp, statep, base, 65536, NULL,
                                NULL, &log),
                 REPLICORE_OK);
    for (int i = 0; i < points; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "point %d", i);
        CHECK_STATUS(replicore_log_write(log, 0, 70000u * (unsigned)i, (const uint8_t *)text, (size_t)len),
                     REPLICORE_OK);
        memcpy(disk + 70000u * (unsigned)i, text, (size_t)len);
        CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, "t", 0, &point), REPLICORE_OK);
    }
    CHECK_STATUS(replicore_log_rotate(log, sealed, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealed, *key, statep, dir, collect_bundle_path, shipped, NULL, NULL, &count), REPLICORE_OK);
    CHECK(count == (uint64_t)points);
    *last_seq = point;
    replicore_log_free(log);
}

int main(void) {
    char dir[] = "/tmp/replicore-c-trust-XXXXXX";
    char pdir[300], fdir[300], base[400], fbase[400], vaultp[300], heads[400], out[300], img[400];
    unsigned char *disk = malloc(DISK_LEN), *forged = malloc(DISK_LEN);
    replicore_key *key = NULL, *fkey = NULL;
    replicore_vault *vault = NULL;
    replicore_ingest_info ingest;
    replicore_point_info points[8];
    replicore_prune_info pruned;
    replicore_compact_info compact;
    struct bundle_paths shipped = {0}, fshipped = {0};
    uint8_t vk[REPLICORE_VERIFYING_KEY_LEN], fvk[REPLICORE_VERIFYING_KEY_LEN];
    uint64_t last_seq = 0, fseq = 0, head = 0, damaged = 0, count = 0;
    size_t n = 0;

    if (mkdtemp(dir) == NULL || !disk || !forged) return 2;
    for (size_t i = 0; i < DISK_LEN; i++) disk[i] = (unsigned char)(i * 7 + i / 4099);
    memcpy(forged, disk, DISK_LEN);
    snprintf(pdir, sizeof pdir, "%s/primary", dir);
    snprintf(fdir, sizeof fdir, "%s/forger", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(out, sizeof out, "%s/failover", dir);
    mkdir(out, 0700);
    primary(pdir, disk, 3, &key, base, &shipped, &last_seq);
    primary(fdir, forged, 1, &fkey, fbase, &fshipped, &fseq);

    CHECK_STATUS(replicore_key_verifying_key(key, vk), REPLICORE_OK);
    CHECK_STATUS(replicore_key_verifying_key(fkey, fvk), REPLICORE_OK);
    CHECK(memcmp(vk, fvk, sizeof vk) != 0);

    /* Pinned before the base arrives: the forger's base of the same group is refused. */
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pin_key(vault, "vm-t", vk, 0), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pin_key(vault, "vm-t", fvk, 0), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_vault_ingest(vault, fbase, NULL, NULL, &ingest), REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_vault_ingest(vault, base, NULL, NULL, &ingest), REPLICORE_OK);
    for (int i = 0; i < shipped.n; i++)
        CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[i], NULL, NULL, &ingest), REPLICORE_OK);
    CHECK(ingest.seq == last_seq);
    /* The forger's next point (their key, the group's name): refused. */
    CHECK_STATUS(replicore_vault_ingest(vault, fshipped.paths[0], NULL, NULL, &ingest),
                 REPLICORE_ERR_AUTHENTICATION);

    CHECK_STATUS(replicore_vault_points(vault, "vm-t", points, 8, &n), REPLICORE_OK);
    CHECK(n == 4);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(memcmp(points[i].verifying_key, vk, sizeof vk) == 0);
        CHECK(points[i].checkpoint == 0 && points[i].merged == 0);
    }

    /* The head against the last shipped sequence: equal is fine, ahead of it is a rollback. */
    CHECK_STATUS(replicore_vault_expect_seq(vault, "vm-t", last_seq, &head), REPLICORE_OK);
    CHECK(head == last_seq);
    CHECK_STATUS(replicore_vault_expect_seq(vault, "vm-t", last_seq + 1, &head),
                 REPLICORE_ERR_CHAIN_BROKEN);

    /* Prune to the newest point, then compact it into a signed checkpoint. */
    replicore_retention_policy policy = {1, 0, 0, 1};
    uint64_t far = (uint64_t)time(NULL) * 1000000000ull + 400ull * 3600 * 1000000000ull;
    CHECK_STATUS(replicore_vault_prune(vault, &policy, far, 0, &pruned), REPLICORE_OK);
    CHECK(pruned.points_pruned == 3 && pruned.points_kept == 1);
    CHECK_STATUS(replicore_vault_compact(vault, "vm-t", fkey, &compact), REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_vault_compact(vault, "vm-t", key, &compact), REPLICORE_OK);
    CHECK(compact.records_before == 4 && compact.shipped == 4 && compact.seq == last_seq);
    CHECK(compact.bytes_after < compact.bytes_before);
    CHECK_STATUS(replicore_vault_points(vault, "vm-t", points, 8, &n), REPLICORE_OK);
    CHECK(n == 1 && points[0].checkpoint == 1 && points[0].merged == 3);
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    CHECK_STATUS(replicore_vault_failover(vault, "vm-t", REPLICORE_SELECT_LATEST, 0, NULL, key, out,
                                          NULL, NULL, &count),
                 REPLICORE_OK);
    snprintf(img, sizeof img, "%s/os.img", out);
    CHECK(count == 1 && same_file(img, disk, DISK_LEN));

    /* A lost head: verify reports it; rebuilt from the signed point files. */
    snprintf(heads, sizeof heads, "%s/heads", vaultp);
    DIR *d = opendir(heads);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[1000];
        snprintf(p, sizeof p, "%s/%s", heads, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    CHECK_STATUS(replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 1);
    CHECK_STATUS(replicore_vault_rebuild_head(vault, "vm-t", &head), REPLICORE_OK);
    CHECK(head == last_seq);
    CHECK_STATUS(replicore_vault_rebuild_head(vault, "vm-t", &head), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);

    /* NULL arguments. */
    CHECK_STATUS(replicore_key_verifying_key(NULL, vk), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_key_verifying_key(key, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_pin_key(vault, "vm-t", NULL, 1), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_expect_seq(vault, NULL, 1, &head), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_compact(vault, "vm-t", key, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_rebuild_head(NULL, "vm-t", &head), REPLICORE_ERR_NULL_PARAMETER);

    replicore_vault_free(vault);
    replicore_key_free(key);
    replicore_key_free(fkey);
    free(disk);
    free(forged);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
