/*
 * The texts of replicore_last_error_message as a C host reads them: arguments named as the C
 * parameters and fields of include/replicore.h (`bytes`, `time_ns`, `policy->window_hours`),
 * never as the Rust ones; times in RFC 3339 and point ids in hex, never Rust debug output
 * (`AtOrBefore(SystemTime { tv_sec: .. })`, `Id(PointId(..))`); sizes in bytes.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define IMG_LEN (200000u)

/* Whether the last error holds every one of the (NULL-terminated) needles and none of what
 * Rust's debug formatting prints. */
static int says(const char *first, ...) {
    static const char *debug[] = {"{ ", " }", "Some(", "None", "::", "tv_sec", "SystemTime",
                                  "PointId(", "AtOrBefore", "EveryBytes", "Id(", NULL};
    const char *msg = replicore_last_error_message();
    int ok = msg != NULL;
    va_list ap;
    va_start(ap, first);
    for (const char *n = first; ok && n != NULL; n = va_arg(ap, const char *)) {
        if (strstr(msg, n) == NULL) {
            fprintf(stderr, "last error \"%s\" lacks \"%s\"\n", msg, n);
            ok = 0;
        }
    }
    va_end(ap);
    for (int i = 0; ok && debug[i] != NULL; i++) {
        if (strstr(msg, debug[i]) != NULL) {
            fprintf(stderr, "last error \"%s\" shows Rust debug syntax \"%s\"\n", msg, debug[i]);
            ok = 0;
        }
    }
    return ok;
}

int main(void) {
    char dir[] = "/tmp/replicore-c-messages-XXXXXX";
    char imgp[256], keyp[256], key2p[256], logp[256], statep[256], basep[256], vaultp[256];
    unsigned char *img = malloc(IMG_LEN);
    uint8_t master[REPLICORE_MASTER_KEY_LEN], id[REPLICORE_POINT_ID_LEN];
    replicore_key *key = NULL, *none = NULL;
    replicore_log *log = NULL, *second = NULL;
    replicore_vault *vault = NULL;
    replicore_signature *sig = NULL;
    replicore_extent_map *map = NULL;
    replicore_point_info info;
    replicore_replication_policy policy, p;
    replicore_retention_policy retention;
    replicore_resync_window window, w;
    uint64_t start = 0;

    if (mkdtemp(dir) == NULL || img == NULL) return 2;
    snprintf(imgp, sizeof imgp, "%s/os.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(key2p, sizeof key2p, "%s/none.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    for (size_t i = 0; i < IMG_LEN; i++) img[i] = (unsigned char)(i * 31 + i / 1000);
    write_file(imgp, img, IMG_LEN);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    const char *names[] = {"os"};
    const char *paths[] = {imgp};
    CHECK_STATUS(replicore_seed("vm-m", names, paths, 1, key, logp, statep, basep, 65536, NULL,
                                NULL, &log),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);

    /* Selectors: a time in RFC 3339, an id in hex. */
    CHECK_STATUS(replicore_vault_select(vault, "vm-m", REPLICORE_SELECT_AT_OR_BEFORE, 1, NULL, &info),
                 REPLICORE_ERR_NOT_FOUND);
    CHECK(says("group `vm-m`", "at or before 1970-01-01T00:00:00.000000001Z", NULL));
    memset(id, 0xab, sizeof id);
    CHECK_STATUS(replicore_vault_select(vault, "vm-m", REPLICORE_SELECT_ID, 0, id, &info),
                 REPLICORE_ERR_NOT_FOUND);
    CHECK(says("id abababababababababababababababababababababababababababababababab", NULL));
    CHECK_STATUS(replicore_vault_select(vault, "vm-m", 9, 0, NULL, &info), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`selector`", "9", NULL));
    CHECK_STATUS(replicore_vault_pin(vault, "vm-m", NULL, 1), REPLICORE_ERR_NULL_PARAMETER);
    CHECK(says("`point_id`", NULL));

    /* The log: C parameter names, not the Rust ones (`sync`, `time`, `resync threshold`). */
    CHECK_STATUS(replicore_log_set_sync_policy(log, REPLICORE_SYNC_EVERY_BYTES, 0),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`bytes`", "REPLICORE_SYNC_EVERY_BYTES", NULL));
    CHECK(strstr(replicore_last_error_message(), "`sync") == NULL);
    CHECK_STATUS(replicore_log_set_sync_policy(log, 7, 0), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`policy`", "7 is not a replicore_sync_policy", NULL));
    CHECK_STATUS(replicore_log_set_resync_threshold(log, 2000, 0), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`percent`", "2000%", NULL));
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, NULL, 1700000000000000000ull, NULL),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, NULL, 1600000000000000000ull, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`time_ns`", "2020-09-13T12:26:40Z", "2023-11-14T22:13:20Z", NULL));
    CHECK_STATUS(replicore_log_mark(log, 3, NULL, 0, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`kind`", NULL));
    CHECK_STATUS(replicore_log_write(log, 4, 0, img, 10), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`disk`", "index 4", "(1 disks)", NULL));
    CHECK_STATUS(replicore_log_write(log, 0, IMG_LEN - 5, img, 10), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`offset`", "10 bytes at offset 199995", "(200000 bytes)", NULL));
    CHECK_STATUS(replicore_log_open(logp, NULL, &second, NULL), REPLICORE_ERR_LOCKED);
    CHECK(says("g.rclog", "process ", NULL));

    /* Keys: both halves of a pair named. */
    CHECK_STATUS(replicore_key_generate(key2p, NULL, NULL, &none), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`master_key` and `passphrase`", "both are NULL", NULL));
    CHECK_STATUS(replicore_key_rotate(keyp, master, "pw", key2p, master, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`old_master_key` and `old_passphrase`", "both are given", NULL));

    /* Policies: the field as the host wrote it; states by name. */
    CHECK_STATUS(replicore_protection_check_move(99, REPLICORE_STATE_PROTECTED), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`from`", "99 is not a replicore_protection_state", NULL));
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_PROTECTED, 0), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`to`", NULL));
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_FAILED_OVER_TEST, REPLICORE_STATE_COMMITTED),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("from failed over (test) to committed", NULL));
    CHECK_STATUS(replicore_replication_policy_default(&policy), REPLICORE_OK);
    p = policy;
    p.frequency_seconds = 60;
    CHECK_STATUS(replicore_replication_policy_validate(&p), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`policy->frequency_seconds`", "60 seconds", NULL));
    p = policy;
    p.retention.window_hours = 0;
    CHECK_STATUS(replicore_replication_policy_validate(&p), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`policy->retention.window_hours`", "0 hours", NULL));
    p = policy;
    p.app_consistent_every_hours = 20;
    CHECK_STATUS(replicore_replication_policy_validate(&p), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`policy->app_consistent_every_hours`", "20 hours", NULL));
    retention = policy.retention;
    retention.keep_last = 0;
    CHECK_STATUS(replicore_retention_policy_validate(&retention), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`policy->keep_last`", "0 points", NULL));
    CHECK_STATUS(replicore_resync_window_default(&window), REPLICORE_OK);
    w = window;
    w.office_days = 0x80;
    CHECK_STATUS(replicore_resync_window_next_start(&w, 0, &start), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`window->office_days`", NULL));
    w = window;
    w.office_start_minute = 600;
    w.office_end_minute = 500;
    CHECK_STATUS(replicore_resync_window_next_start(&w, 0, &start), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`window->office_end_minute`", NULL));

    /* Sizes carry their unit. */
    CHECK_STATUS(replicore_extent_map_new(1ull << 50, &map), REPLICORE_ERR_LIMIT_EXCEEDED);
    CHECK(says("1125899906842624 bytes (1 PiB)", "limit of 70368744177664 bytes (64 TiB)", NULL));
    CHECK_STATUS(replicore_signature_compute(key, imgp, 3000, NULL, NULL, &sig), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(says("`chunk_size`", "3000 bytes", "4096 bytes (4 KiB)", NULL));

    replicore_extent_map_free(map);
    replicore_signature_free(sig);
    replicore_log_free(second);
    replicore_log_free(log);
    replicore_key_free(none);
    replicore_key_free(key);
    replicore_vault_free(vault);
    free(img);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
