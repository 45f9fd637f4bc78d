/*
 * The change log from C: create, record writes and trims, mark, refuse bad arguments, rotate,
 * sync, reopen after a simulated torn tail and check what came back, continuity checks.
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


#define RECORD 4096
#define HEADER 40

int main(void) {
    char dir[] = "/tmp/replicore-c-XXXXXX";
    char path[256], sealed[256];
    unsigned char data[RECORD];
    replicore_log *log = NULL;
    replicore_tracker tracker, wrong;
    replicore_recovery rec;
    uint64_t pending = 0, point = 0;
    bool resync = true;
    struct stat st;
    replicore_disk_spec disks[2] = {{"os", 1 << 20}, {"data", 64 << 10}};
    replicore_disk_spec twins[2] = {{"os", 1 << 20}, {"os", 1 << 20}};

    if (mkdtemp(dir) == NULL) return 2;
    snprintf(path, sizeof path, "%s/vm.rclog", dir);
    snprintf(sealed, sizeof sealed, "%s/vm.g0.rclog", dir);
    memset(data, 0x5a, sizeof data);

    /* Bad arguments. */
    CHECK_STATUS(replicore_log_create(NULL, "vm", disks, 2, &log), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_log_create(path, "vm", NULL, 2, &log), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_log_create(path, "vm", disks, 2, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_log_create(path, "vm", twins, 2, &log), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "appears twice") != NULL);
    CHECK(log == NULL);

    CHECK_STATUS(replicore_log_create(path, "vm", disks, 2, &log), REPLICORE_OK);
    CHECK_STATUS(replicore_log_create(path, "vm", disks, 2, &log), REPLICORE_ERR_ALREADY_EXISTS);
    for (int i = 0; i < 100; i++) {
        CHECK_STATUS(replicore_log_write(log, 0, (uint64_t)i * RECORD, data, RECORD), REPLICORE_OK);
    }
    CHECK_STATUS(replicore_log_trim(log, 1, 0, 8192), REPLICORE_OK);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, NULL, 1600000000000000000ull, &point),
                 REPLICORE_OK);
    CHECK(point == 1);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_APP, "vss", 1700000000000000000ull, &point),
                 REPLICORE_OK);
    CHECK(point == 2);
    /* Marks move forward in time; the refusal says both times as an operator reads them. */
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_CRASH, NULL, 1650000000000000000ull, &point),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "2023-11-14T22:13:20Z") != NULL);
    CHECK(point == 2);
    CHECK_STATUS(replicore_log_write(log, 1, (64 << 10) - 1, data, 2), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "past the end of disk `data`") != NULL);
    CHECK_STATUS(replicore_log_write(log, 5, 0, data, 1), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_log_write(log, 0, 0, NULL, 1), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_log_mark(log, 7, NULL, 0, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_log_set_sync_policy(log, 9, 0), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_log_set_sync_policy(log, REPLICORE_SYNC_EVERY_BYTES, 1 << 20), REPLICORE_OK);

    CHECK_STATUS(replicore_log_pending_bytes(log, &pending), REPLICORE_OK);
    CHECK(pending > 100 * (RECORD + HEADER));
    CHECK_STATUS(replicore_log_needs_resync(log, &resync), REPLICORE_OK);
    CHECK(!resync); /* 400 KiB of log, 50% of 1.06 MiB of disks not reached */
    CHECK_STATUS(replicore_log_set_resync_threshold(log, 0, 1000), REPLICORE_OK);
    CHECK_STATUS(replicore_log_needs_resync(log, &resync), REPLICORE_OK);
    CHECK(resync);
    CHECK_STATUS(replicore_log_pending_bytes(NULL, &pending), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_log_needs_resync(log, NULL), REPLICORE_ERR_NULL_PARAMETER);

    /* Rotate: the sealed log exists, tracking goes on in generation 1. */
    CHECK_STATUS(replicore_log_rotate(log, sealed, &tracker), REPLICORE_OK);
    CHECK(tracker.generation == 1);
    CHECK(strcmp(tracker.group, "vm") == 0);
    CHECK(access(sealed, F_OK) == 0);
    CHECK_STATUS(replicore_log_rotate(log, sealed, NULL), REPLICORE_ERR_ALREADY_EXISTS);
    CHECK_STATUS(replicore_log_pending_bytes(log, &pending), REPLICORE_OK);
    CHECK(pending == 0);
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(replicore_log_write(log, 0, 0, data, RECORD), REPLICORE_OK);
    }
    CHECK_STATUS(replicore_log_sync(log), REPLICORE_OK);
    replicore_log_free(log);
    log = NULL;

    /* A torn tail: the last record lost its last 10 bytes. */
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size - 10) == 0);
    memset(&rec, 0xff, sizeof rec);
    CHECK_STATUS(replicore_log_open(path, &tracker, &log, &rec), REPLICORE_OK);
    CHECK(rec.torn_bytes == RECORD + HEADER - 10);
    CHECK(rec.has_records);
    CHECK(rec.rotation == REPLICORE_ROTATION_NONE);
    CHECK_STATUS(replicore_log_pending_bytes(log, &pending), REPLICORE_OK);
    CHECK(pending == 2 * (RECORD + HEADER));
    /* Sequence numbers run on across generations: 100 writes, 1 trim, 2 markers, the seal,
       then the two records that survived. */
    CHECK(rec.last_seq == 100 + 1 + 2 + 1 + 1);
    CHECK_STATUS(replicore_log_write(log, 0, 0, data, RECORD), REPLICORE_OK);
    CHECK_STATUS(replicore_log_sync(log), REPLICORE_OK);
    replicore_log_free(log);
    log = NULL;

    /* Continuity: another session's epoch, a missing log. */
    wrong = tracker;
    wrong.epoch[0] ^= 1;
    CHECK_STATUS(replicore_log_open(path, &wrong, &log, NULL), REPLICORE_ERR_RESYNC_REQUIRED);
    CHECK(strstr(replicore_last_error_message(), "epoch") != NULL);
    CHECK(log == NULL);
    CHECK_STATUS(replicore_log_open(path, NULL, &log, NULL), REPLICORE_OK);
    replicore_log_free(log);
    log = NULL;
    CHECK(unlink(path) == 0);
    CHECK_STATUS(replicore_log_open(path, &tracker, &log, NULL), REPLICORE_ERR_RESYNC_REQUIRED);
    CHECK_STATUS(replicore_log_open(path, NULL, &log, NULL), REPLICORE_ERR_NOT_FOUND);
    replicore_log_free(NULL);

    unlink(sealed);
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
