/*
 * The vault from C: a two-disk group seeded, written to, marked (crash and app), shipped and
 * ingested; points listed and selected; the group failed over at each point and every byte
 * compared with the disks as they were; a disk materialized alone; verify with and without the
 * key, and after a flipped byte; refusals (chain broken, wrong key, NULL arguments).
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



static int on_progress(void *user, uint64_t done, uint64_t total) {
    (void)user;
    return done > total;
}

int main(void) {
    char dir[] = "/tmp/replicore-c-vault-XXXXXX";
    char osp[256], datap[256], keyp[256], logp[256], statep[256], basep[256], sealedp[256];
    char vaultp[256], out[256], img[400], one[256];
    unsigned char *os = malloc(OS_LEN), *data = malloc(DATA_LEN);
    unsigned char *os0 = malloc(OS_LEN), *data0 = malloc(DATA_LEN);
    unsigned char *os1 = malloc(OS_LEN), *data1 = malloc(DATA_LEN);
    uint8_t master[REPLICORE_MASTER_KEY_LEN], other[REPLICORE_MASTER_KEY_LEN];
    replicore_key *key = NULL, *wrong = NULL;
    replicore_log *log = NULL;
    replicore_vault *vault = NULL, *again = NULL;
    replicore_ingest_info ingest;
    replicore_point_info points[4], picked;
    replicore_tracker tracker;
    struct bundle_paths shipped = {0};
    uint64_t count = 0, damaged = 99, point = 0;
    size_t n = 0;

    if (mkdtemp(dir) == NULL || !os || !data || !os0 || !data0 || !os1 || !data1) return 2;
    snprintf(osp, sizeof osp, "%s/os.img", dir);
    snprintf(datap, sizeof datap, "%s/data.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(sealedp, sizeof sealedp, "%s/sealed.rclog", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(out, sizeof out, "%s", dir);
    snprintf(one, sizeof one, "%s/one.img", dir);
    for (size_t i = 0; i < OS_LEN; i++) os[i] = (i / 65536) % 4 == 1 ? 0 : (unsigned char)(i * 13 + i / 777);
    for (size_t i = 0; i < DATA_LEN; i++) data[i] = (unsigned char)("replicore vault "[i % 16]);
    write_file(osp, os, OS_LEN);
    write_file(datap, data, DATA_LEN);
    memcpy(os0, os, OS_LEN);
    memcpy(data0, data, DATA_LEN);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_master_key_generate(other), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    {
        char wp[300];
        snprintf(wp, sizeof wp, "%s/wrong.rckey", dir);
        CHECK_STATUS(replicore_key_generate(wp, other, NULL, &wrong), REPLICORE_OK);
    }
    const char *names[] = {"os", "data"};
    const char *paths[] = {osp, datap};
    CHECK_STATUS(replicore_seed("vm-c", names, paths, 2, key, logp, statep, basep, 65536, NULL,
                                NULL, &log),
                 REPLICORE_OK);

    /* Point 1 (crash): a write across a chunk edge on os, a trim on data. */
    CHECK_STATUS(replicore_log_write(log, 0, 65530, (const uint8_t *)"across the edge", 15), REPLICORE_OK);
    memcpy(os + 65530, "across the edge", 15);
    CHECK_STATUS(replicore_log_trim(log, 1, 4096, 8192), REPLICORE_OK);
    memset(data + 4096, 0, 8192);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, "5 min", 0, &point), REPLICORE_OK);
    memcpy(os1, os, OS_LEN);
    memcpy(data1, data, DATA_LEN);
    /* Point 2 (app): data's last bytes. */
    CHECK_STATUS(replicore_log_write(log, 1, DATA_LEN - 3, (const uint8_t *)"end", 3), REPLICORE_OK);
    memcpy(data + DATA_LEN - 3, "end", 3);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_APP, "vss", 0, &point), REPLICORE_OK);
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, out, collect_bundle_path, &shipped, NULL, NULL, &count), REPLICORE_OK);
    CHECK(count == 2 && shipped.n == 2);

    /* Ingest: an incremental before its base is refused; then the chain; again is a no-op. */
    CHECK_STATUS(replicore_vault_open(vaultp, &vault), REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, &ingest),
                 REPLICORE_ERR_CHAIN_BROKEN);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, on_progress, NULL, &ingest), REPLICORE_OK);
    CHECK(ingest.added == 1 && ingest.seq == 0 && ingest.blobs_stored > 0);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, &ingest), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[1], NULL, NULL, &ingest), REPLICORE_OK);
    CHECK(ingest.added == 1);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[1], NULL, NULL, &ingest), REPLICORE_OK);
    CHECK(ingest.added == 0 && ingest.blobs_stored == 0);

    /* A handle whose ingests hold at most 4 MiB of blobs; a budget under 4 MiB is refused. */
    replicore_vault *bounded = NULL;
    CHECK_STATUS(replicore_vault_open_bounded(vaultp, 1 << 20, &bounded), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(bounded == NULL);
    CHECK_STATUS(replicore_vault_open_bounded(NULL, 4 << 20, &bounded), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_open_bounded(vaultp, 4 << 20, &bounded), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(bounded, shipped.paths[1], NULL, NULL, &ingest), REPLICORE_OK);
    CHECK(ingest.added == 0);
    replicore_vault_free(bounded);

    /* Points, from another handle. */
    CHECK_STATUS(replicore_vault_open(vaultp, &again), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_points(again, "vm-c", NULL, 0, &n), REPLICORE_OK);
    CHECK(n == 3);
    CHECK_STATUS(replicore_vault_points(again, "vm-c", points, 4, &n), REPLICORE_OK);
    CHECK(n == 3 && points[0].kind == 1 && points[1].kind == 2 && points[2].consistency == 2);
    CHECK(points[0].disks == 2 && points[0].total_size == OS_LEN + DATA_LEN);
    CHECK(memcmp(points[1].parent, points[0].id, REPLICORE_POINT_ID_LEN) == 0);
    CHECK_STATUS(replicore_vault_points(again, "nope", points, 4, &n), REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_select(again, "vm-c", REPLICORE_SELECT_LATEST_APP, 0, NULL, &picked),
                 REPLICORE_OK);
    CHECK(picked.seq == points[2].seq);
    CHECK_STATUS(replicore_vault_select(again, "vm-c", REPLICORE_SELECT_ID, 0, points[1].id, &picked),
                 REPLICORE_OK);
    CHECK(picked.seq == points[1].seq);
    CHECK_STATUS(replicore_vault_select(again, "vm-c", REPLICORE_SELECT_AT_OR_BEFORE, 1, NULL, &picked),
                 REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_select(again, "vm-c", REPLICORE_SELECT_ID, 0, NULL, &picked),
                 REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_select(again, "vm-c", 99, 0, NULL, &picked), REPLICORE_ERR_INVALID_ARGUMENT);

    /* Fail the group over at each point and compare every byte. */
    const unsigned char *want_os[] = {os0, os1, os};
    const unsigned char *want_data[] = {data0, data1, data};
    for (int p = 0; p < 3; p++) {
        char d[300];
        snprintf(d, sizeof d, "%s/failover-%d", dir, p);
        CHECK(mkdir(d, 0700) == 0);
        CHECK_STATUS(replicore_vault_failover(vault, "vm-c", REPLICORE_SELECT_ID, 0, points[p].id, key, d,
                                              on_progress, NULL, &count),
                     REPLICORE_OK);
        CHECK(count == 2);
        snprintf(img, sizeof img, "%s/os.img", d);
        CHECK(same_file(img, want_os[p], OS_LEN));
        snprintf(img, sizeof img, "%s/data.img", d);
        CHECK(same_file(img, want_data[p], DATA_LEN));
    }
    CHECK_STATUS(replicore_vault_materialize(vault, "vm-c", points[1].id, "data", key, one, NULL, NULL),
                 REPLICORE_OK);
    CHECK(same_file(one, data1, DATA_LEN));
    CHECK_STATUS(replicore_vault_materialize(vault, "vm-c", points[1].id, "data", key, one, NULL, NULL),
                 REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_vault_failover(vault, "vm-c", REPLICORE_SELECT_LATEST, 0, NULL, wrong, out,
                                          NULL, NULL, NULL),
                 REPLICORE_ERR_AUTHENTICATION);
    CHECK_STATUS(replicore_vault_failover(vault, "vm-c", REPLICORE_SELECT_LATEST, 0, NULL, NULL, out,
                                          NULL, NULL, NULL),
                 REPLICORE_ERR_NULL_PARAMETER);

    /* Verify, then flip one byte of a pack. */
    CHECK_STATUS(replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, on_progress, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    /* Another group's key opens nothing here: an error, not an OK that checked nothing. */
    CHECK_STATUS(replicore_vault_verify(vault, wrong, NULL, NULL, NULL, &damaged), REPLICORE_ERR_AUTHENTICATION);
    CHECK(strstr(replicore_last_error_message(), "vm-c") != NULL);
    CHECK_STATUS(replicore_vault_verify(vault, wrong, "vm-c", NULL, NULL, &damaged), REPLICORE_ERR_AUTHENTICATION);
    /* Scoped to the key's group. */
    CHECK_STATUS(replicore_vault_verify(vault, key, "vm-c", NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    CHECK_STATUS(replicore_vault_verify(vault, key, "nope", NULL, NULL, &damaged), REPLICORE_ERR_NOT_FOUND);
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd,
                 /* Inverted, not overwritten: a byte that already held 0xff would stay. */
                 "f=$(ls -S %s/packs/*.rcpack | head -n 1) && "
                 "b=$(dd if=\"$f\" bs=1 skip=100 count=1 status=none | od -An -tu1 | tr -d ' ') && "
                 "printf \"$(printf '\\\\%%03o' $((b ^ 255)))\" | "
                 "dd of=\"$f\" bs=1 seek=100 conv=notrunc status=none",
                 vaultp);
        CHECK(system(cmd) == 0);
    }
    CHECK_STATUS(replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged > 0);
    CHECK(strstr(replicore_last_error_message(), ".rcpack") != NULL || strstr(replicore_last_error_message(), "blob") != NULL);
    CHECK_STATUS(replicore_vault_verify(NULL, NULL, NULL, NULL, NULL, &damaged), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_ingest(vault, NULL, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_create(NULL, &again), REPLICORE_ERR_NULL_PARAMETER);

    replicore_vault_free(vault);
    replicore_vault_free(again);
    replicore_vault_free(NULL);
    replicore_log_free(log);
    replicore_key_free(key);
    replicore_key_free(wrong);
    free(os);
    free(data);
    free(os0);
    free(data0);
    free(os1);
    free(data1);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
