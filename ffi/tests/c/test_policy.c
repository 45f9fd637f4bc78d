/*
 * Policies from C: the default replication policy and its validation (every field's range, a
 * frequency that is not offered, app-consistent points further apart than the retention
 * window); the retry back-off and which statuses it applies to; protection state moves; the
 * resync window's next start. Prints "N passed, N failed"; exits non-zero on any failure.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "replicore.h"

/* 2026-11-23, a Monday, 00:00 UTC, in nanoseconds. */
#define MONDAY_NS 1795392000000000000ull
#define MIN_NS 60000000000ull

int main(void) {
    replicore_replication_policy p, q;
    replicore_resync_window w;
    uint64_t start = 0;

    CHECK_STATUS(replicore_replication_policy_default(&p), REPLICORE_OK);
    CHECK(p.frequency_seconds == 300 && p.retention.window_hours == 24 && p.retention.keep_last == 1);
    CHECK_STATUS(replicore_replication_policy_validate(&p), REPLICORE_OK);
    q = p;
    q.frequency_seconds = 60;
    CHECK_STATUS(replicore_replication_policy_validate(&q), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "30, 300 or 900") != NULL);
    q = p;
    q.retention.window_hours = 73;
    CHECK_STATUS(replicore_replication_policy_validate(&q), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "window_hours") != NULL);
    q = p;
    q.retention.window_hours = 4;
    q.app_consistent_every_hours = 6;
    CHECK_STATUS(replicore_replication_policy_validate(&q), REPLICORE_ERR_INVALID_ARGUMENT);
    q.app_consistent_every_hours = 4;
    CHECK_STATUS(replicore_replication_policy_validate(&q), REPLICORE_OK);
    CHECK_STATUS(replicore_replication_policy_validate(NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_replication_policy_default(NULL), REPLICORE_ERR_NULL_PARAMETER);

    /* Retries: 1, 2, 4, 8, 10 minutes, then every 30; only for failures that may pass. */
    CHECK(replicore_retry_delay_seconds(1) == 60 && replicore_retry_delay_seconds(5) == 600);
    CHECK(replicore_retry_delay_seconds(6) == 1800 && replicore_retry_delay_seconds(1000) == 1800);
    CHECK(replicore_status_is_recoverable(REPLICORE_ERR_IO));
    CHECK(replicore_status_is_recoverable(REPLICORE_ERR_LOCKED));
    CHECK(!replicore_status_is_recoverable(REPLICORE_ERR_CORRUPT));
    CHECK(!replicore_status_is_recoverable(REPLICORE_ERR_AUTHENTICATION));
    CHECK(!replicore_status_is_recoverable(REPLICORE_ERR_CHAIN_BROKEN));
    CHECK(!replicore_status_is_recoverable(REPLICORE_OK));
    CHECK(!replicore_status_is_recoverable(12345));

    /* Protection states. */
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_PROTECTED, REPLICORE_STATE_FAILED_OVER_TEST),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_FAILED_OVER_PLANNED, REPLICORE_STATE_COMMITTED),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_COMMITTED, REPLICORE_STATE_REPROTECTING),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_protection_check_move(REPLICORE_STATE_ENABLING, REPLICORE_STATE_PROTECTED),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "from enabling to protected") != NULL);
    CHECK_STATUS(replicore_protection_check_move(0, REPLICORE_STATE_PROTECTED), REPLICORE_ERR_INVALID_ARGUMENT);

    /* Resync window: office hours Monday to Friday 08:00-18:00. */
    CHECK_STATUS(replicore_resync_window_default(&w), REPLICORE_OK);
    CHECK(w.office_days == 0x1f && w.office_start_minute == 480 && w.office_end_minute == 1080);
    CHECK_STATUS(replicore_resync_window_next_start(&w, MONDAY_NS + 570 * MIN_NS, &start), REPLICORE_OK);
    CHECK(start == MONDAY_NS + 1080 * MIN_NS);
    CHECK_STATUS(replicore_resync_window_next_start(&w, MONDAY_NS + 60 * MIN_NS, &start), REPLICORE_OK);
    CHECK(start == MONDAY_NS + 60 * MIN_NS);
    w.office_days = 0x80;
    CHECK_STATUS(replicore_resync_window_next_start(&w, MONDAY_NS, &start), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(replicore_resync_window_next_start(NULL, MONDAY_NS, &start), REPLICORE_ERR_NULL_PARAMETER);

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
