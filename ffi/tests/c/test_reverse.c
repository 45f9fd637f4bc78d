/*
 * The way back from C (issue 17): a two-disk group seeded, shipped and ingested; an unplanned
 * failover with the recovered disks tracked; the recovered VM's writes; the original site's
 * stale disks signed, the reverse resync point shipped from the recovered disks and applied to
 * them; reverse replication applied in order; refusals (a replay, a gap's stand-in, a disk
 * missing, unknown flags, NULLs, a forbidden protection move); the recorded protection state
 * and its last error; why a resync is needed; a group's status at the recovery site.
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

/* A guest write on the recovered VM: its log, its image, its model. */
static void guest_write(replicore_log *log, uint32_t disk, const char *path, unsigned char *model, long at,
                        const char *text) {
    size_t n = strlen(text);
    CHECK_STATUS(replicore_log_write(log, disk, (uint64_t)at, (const uint8_t *)text, n), REPLICORE_OK);
    patch(path, at, text, n);
    memcpy(model + at, text, n);
}

int main(void) {
    char dir[] = "/tmp/replicore-c-reverse-XXXXXX";
    char osp[256], datap[256], keyp[256], logp[256], statep[256], basep[256], sealedp[300];
    char vaultp[256], recdir[256], rosp[300], rdatap[300], rlogp[300], rstatep[300], rprotp[300];
    char osigp[256], ostatep[256], revdir[256], revlogp[300], revstatep[300];
    unsigned char *os = malloc(OS_LEN), *data = malloc(DATA_LEN);
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_key *key = NULL;
    replicore_log *log = NULL, *rlog = NULL, *revlog = NULL;
    replicore_vault *vault = NULL;
    replicore_tracker tracker;
    replicore_point_info latest;
    replicore_resync_info info;
    replicore_apply_info applied;
    replicore_group_status gs;
    struct bundle_paths shipped = {0}, rev = {0};
    uint64_t count = 0, point = 0, since = 0;
    uint32_t state = 0, mask = 0;
    replicore_status last = REPLICORE_OK;

    if (mkdtemp(dir) == NULL || !os || !data) return 2;
    snprintf(osp, sizeof osp, "%s/os.img", dir);
    snprintf(datap, sizeof datap, "%s/data.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(recdir, sizeof recdir, "%s/recovered", dir);
    snprintf(rosp, sizeof rosp, "%s/os.img", recdir);
    snprintf(rdatap, sizeof rdatap, "%s/data.img", recdir);
    snprintf(rlogp, sizeof rlogp, "%s/rec.rclog", recdir);
    snprintf(rstatep, sizeof rstatep, "%s/rec.rcship", recdir);
    snprintf(rprotp, sizeof rprotp, "%s/vm-b.rcprot", recdir);
    snprintf(osigp, sizeof osigp, "%s/original.rcpsig", dir);
    snprintf(ostatep, sizeof ostatep, "%s/vm-b.rcapply", dir);
    snprintf(revdir, sizeof revdir, "%s/rev", dir);
    snprintf(revlogp, sizeof revlogp, "%s/rev.rclog", recdir);
    snprintf(revstatep, sizeof revstatep, "%s/rev.rcship", recdir);
    for (size_t i = 0; i < OS_LEN; i++) os[i] = (unsigned char)(i * 7 + i / 1003);
    for (size_t i = 0; i < DATA_LEN; i++) data[i] = (unsigned char)("way back "[i % 9]);
    write_file(osp, os, OS_LEN);
    write_file(datap, data, DATA_LEN);

    /* Seed, replicate one point, ingest. */
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    const char *names[] = {"os", "data"};
    const char *paths[] = {osp, datap};
    const char *rpaths[] = {rosp, rdatap};
    CHECK_STATUS(replicore_seed("vm-b", names, paths, 2, key, logp, statep, basep, 65536, NULL, NULL, &log),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_log_write(log, 0, 4096, (const uint8_t *)"shipped", 7), REPLICORE_OK);
    patch(osp, 4096, "shipped", 7);
    memcpy(os + 4096, "shipped", 7);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_APP, "p1", 0, &point), REPLICORE_OK);
    snprintf(sealedp, sizeof sealedp, "%s/sealed.rclog", dir);
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, dir, collect_bundle_path, &shipped, NULL, NULL, &count),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_select(vault, "vm-b", REPLICORE_SELECT_LATEST, 0, NULL, &latest), REPLICORE_OK);

    /* The recovery site's status: two points, on time, its bytes; a failure's class counts. */
    CHECK_STATUS(replicore_vault_group_status(vault, "vm-b", 0, 300, REPLICORE_OK, &gs), REPLICORE_OK);
    CHECK(gs.points == 2 && gs.head_seq == 1 && gs.has_app_consistent && gs.app_seq == 1);
    CHECK(gs.health == REPLICORE_HEALTH_HEALTHY && gs.stored_bytes > 0);
    CHECK(memcmp(gs.head_id, latest.id, 32) == 0);
    CHECK_STATUS(replicore_vault_group_status(vault, "vm-b", 0, 300, REPLICORE_ERR_CORRUPT, &gs), REPLICORE_OK);
    CHECK(gs.health == REPLICORE_HEALTH_CRITICAL);
    CHECK_STATUS(replicore_vault_group_status(vault, "vm-b", gs.head_time_ns + 1200000000000ull, 300,
                                              REPLICORE_OK, &gs),
                 REPLICORE_OK);
    CHECK(gs.health == REPLICORE_HEALTH_WARNING && gs.lag_ns == 1200000000000ull);
    CHECK_STATUS(replicore_vault_group_status(vault, "vm-b", 0, 60, REPLICORE_OK, &gs),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_vault_group_status(vault, "nope", 0, 300, REPLICORE_OK, &gs), REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_group_status(vault, "vm-b", 0, 300, REPLICORE_OK, NULL),
                 REPLICORE_ERR_NULL_PARAMETER);

    /* The primary is lost with writes it never shipped. */
    replicore_log_free(log);
    log = NULL;
    patch(datap, 1000, "lost with the primary", 21);

    /* Unplanned failover, the recovered disks tracked from the point. */
    CHECK_STATUS(replicore_vault_failover(vault, "vm-b", REPLICORE_SELECT_LATEST, 0, NULL, key, recdir, NULL, NULL,
                                          &count),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_vault_track_failover(vault, "vm-b", latest.id, key, rlogp, rstatep, 0x4, &rlog),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_vault_track_failover(vault, "vm-b", NULL, key, rlogp, rstatep, 0, &rlog),
                 REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_track_failover(vault, "vm-b", latest.id, key, rlogp, rstatep, 0, &rlog),
                 REPLICORE_OK);
    CHECK(rlog != NULL);
    {
        replicore_log *again = NULL;
        /* A log there already; replacing it while a handle has it open is refused too. */
        CHECK_STATUS(replicore_vault_track_failover(vault, "vm-b", latest.id, key, rlogp, rstatep, 0, &again),
                     REPLICORE_ERR_ALREADY_EXISTS);
        CHECK_STATUS(replicore_vault_track_failover(vault, "vm-b", latest.id, key, rlogp, rstatep,
                                                    REPLICORE_REPLACE, &again),
                     REPLICORE_ERR_LOCKED);
        CHECK(again == NULL);
    }
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", REPLICORE_STATE_FAILED_OVER_UNPLANNED), REPLICORE_OK);
    CHECK_STATUS(replicore_protection_load(rprotp, "vm-b", &state, &since, &last), REPLICORE_OK);
    CHECK(state == REPLICORE_STATE_FAILED_OVER_UNPLANNED && since > 0 && last == REPLICORE_OK);
    guest_write(rlog, 0, rosp, os, 70000, "recovered VM write");
    guest_write(rlog, 1, rdatap, data, 64, "recovered");
    replicore_log_free(rlog);
    rlog = NULL;

    /* The original site comes back: its stale disks signed. */
    CHECK_STATUS(replicore_resync_sign("vm-b", key, names, paths, 2, 0, osigp, ostatep, 0x2, NULL, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_resync_sign("vm-b", key, names, paths, 2, 0, osigp, ostatep, 0, NULL, NULL),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_resync_sign("vm-b", key, names, paths, 2, 0, osigp, ostatep, 0, NULL, NULL),
                 REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_resync_sign("vm-b", key, names, NULL, 2, 0, osigp, ostatep, 0, NULL, NULL),
                 REPLICORE_ERR_NULL_PARAMETER);

    /* Reprotect: committed, reprotecting (a shortcut refused first); the reverse resync point. */
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", REPLICORE_STATE_REPROTECTING),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", REPLICORE_STATE_COMMITTED), REPLICORE_OK);
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", REPLICORE_STATE_REPROTECTING), REPLICORE_OK);
    CHECK_STATUS(replicore_protection_move(rprotp, "other", REPLICORE_STATE_PROTECTED),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", 99), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(mkdir(revdir, 0700) == 0);
    CHECK_STATUS(replicore_resync_ship(osigp, key, names, rpaths, 2, revlogp, revstatep, revdir, 0,
                                       collect_bundle_path, &rev, NULL, NULL, &revlog, &info),
                 REPLICORE_OK);
    CHECK(rev.n == 1 && info.seq == 1 && info.changed_chunks >= 2 && revlog != NULL);

    /* Applied to the original disks: refusals first, the disks untouched; then the point. */
    CHECK_STATUS(replicore_apply(rev.paths[0], key, names, paths, 1, ostatep, NULL, NULL, &applied),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_apply(NULL, key, names, paths, 2, ostatep, NULL, NULL, &applied),
                 REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_apply(shipped.paths[0], key, names, paths, 2, ostatep, NULL, NULL, &applied),
                 REPLICORE_ERR_CHAIN_BROKEN);
    CHECK_STATUS(replicore_apply(rev.paths[0], key, names, paths, 2, ostatep, NULL, NULL, &applied), REPLICORE_OK);
    CHECK(applied.seq == 1 && memcmp(applied.point_id, info.point_id, 32) == 0 && applied.data_bytes > 0);
    CHECK(same_file(osp, os, OS_LEN));
    CHECK(same_file(datap, data, DATA_LEN));
    CHECK_STATUS(replicore_apply(rev.paths[0], key, names, paths, 2, ostatep, NULL, NULL, NULL),
                 REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_protection_move(rprotp, "vm-b", REPLICORE_STATE_PROTECTED), REPLICORE_OK);

    /* Reverse replication, applied in order; the earlier point again is a replay. */
    for (int round = 0; round < 2; round++) {
        struct bundle_paths got = {0};
        char text[32];
        snprintf(text, sizeof text, "reverse round %d", round);
        guest_write(revlog, (uint32_t)round, round ? rdatap : rosp, round ? data : os, 9000 + round, text);
        CHECK_STATUS(replicore_log_mark(revlog, REPLICORE_MARKER_CRASH, "rev", 0, &point), REPLICORE_OK);
        snprintf(sealedp, sizeof sealedp, "%s/rev-sealed-%d.rclog", recdir, round);
        CHECK_STATUS(replicore_log_rotate(revlog, sealedp, &tracker), REPLICORE_OK);
        CHECK_STATUS(replicore_ship(sealedp, key, revstatep, revdir, collect_bundle_path, &got, NULL, NULL, &count),
                     REPLICORE_OK);
        CHECK(count == 1);
        CHECK_STATUS(replicore_apply(got.paths[0], key, names, paths, 2, ostatep, NULL, NULL, &applied),
                     REPLICORE_OK);
        CHECK(applied.seq == (uint64_t)round + 2);
    }
    CHECK(same_file(osp, os, OS_LEN));
    CHECK(same_file(datap, data, DATA_LEN));
    CHECK_STATUS(replicore_apply(rev.paths[0], key, names, paths, 2, ostatep, NULL, NULL, NULL),
                 REPLICORE_ERR_CHAIN_BROKEN);

    /* Why a resync is needed: nothing; a resized disk; a lost tracker. */
    {
        const char *one[] = {"os"};
        uint64_t sizes[] = {OS_LEN + 4096};
        uint8_t epoch[16] = {0};
        char gone[300];
        CHECK_STATUS(replicore_log_resync_reasons(revlogp, NULL, NULL, NULL, 0, &mask), REPLICORE_OK);
        CHECK(mask == 0);
        CHECK_STATUS(replicore_log_resync_reasons(revlogp, NULL, one, sizes, 1, &mask), REPLICORE_OK);
        CHECK(mask == REPLICORE_RESYNC_DISK_RESIZED);
        CHECK_STATUS(replicore_log_resync_reasons(revlogp, epoch, NULL, NULL, 0, &mask), REPLICORE_OK);
        CHECK(mask == REPLICORE_RESYNC_TRACKER_LOST);
        snprintf(gone, sizeof gone, "%s/gone.rclog", dir);
        CHECK_STATUS(replicore_log_resync_reasons(gone, epoch, NULL, NULL, 0, &mask), REPLICORE_OK);
        CHECK(mask == REPLICORE_RESYNC_TRACKER_LOST);
        CHECK_STATUS(replicore_log_resync_reasons(gone, NULL, NULL, NULL, 0, &mask), REPLICORE_ERR_NOT_FOUND);
        CHECK_STATUS(replicore_log_resync_reasons(revlogp, NULL, one, NULL, 1, &mask), REPLICORE_ERR_NULL_PARAMETER);
    }

    /* The last error: noted, read back, cleared by a success. */
    CHECK_STATUS(replicore_protection_note_error(rprotp, "vm-b", REPLICORE_ERR_IO), REPLICORE_OK);
    CHECK_STATUS(replicore_protection_load(rprotp, "vm-b", &state, NULL, &last), REPLICORE_OK);
    CHECK(state == REPLICORE_STATE_PROTECTED && last == REPLICORE_ERR_IO);
    CHECK_STATUS(replicore_protection_note_error(rprotp, "vm-b", REPLICORE_OK), REPLICORE_OK);
    CHECK_STATUS(replicore_protection_load(rprotp, "vm-b", &state, NULL, &last), REPLICORE_OK);
    CHECK(last == REPLICORE_OK);
    CHECK_STATUS(replicore_protection_note_error(rprotp, "vm-b", 12345), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_protection_load(ostatep, "vm-b", &state, NULL, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_protection_load("/tmp/replicore-none.rcprot", "vm-b", &state, NULL, NULL),
                 REPLICORE_ERR_NOT_FOUND);

    replicore_log_free(revlog);
    replicore_vault_free(vault);
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
