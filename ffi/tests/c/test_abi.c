/*
 * The C ABI's machinery, from C: version numbers against Cargo.toml, NULL arguments, error
 * paths with their messages, the callback convention, handles freed (ASan and valgrind check
 * that nothing leaks or is touched after free).
 *
 * Build: ffi/tests/run-c-tests.sh (defines EXPECTED_VERSION from Cargo.toml).
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "replicore.h"

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (from Cargo.toml)"
#endif


static int message_has(const char *needle) {
    const char *msg = replicore_last_error_message();
    if (msg == NULL || strstr(msg, needle) == NULL) {
        fprintf(stderr, "last error \"%s\" lacks \"%s\"\n", msg ? msg : "(null)", needle);
        return 0;
    }
    return 1;
}

static void test_version(void) {
    char composed[64];
    snprintf(composed, sizeof composed, "%d.%d.%d", REPLICORE_VERSION_MAJOR,
             REPLICORE_VERSION_MINOR, REPLICORE_VERSION_PATCH);
    CHECK(strcmp(replicore_version(), EXPECTED_VERSION) == 0);
    CHECK(strcmp(composed, EXPECTED_VERSION) == 0);
    CHECK(REPLICORE_VERSION_NUMBER ==
          REPLICORE_VERSION_MAJOR * 1000000 + REPLICORE_VERSION_MINOR * 1000 +
              REPLICORE_VERSION_PATCH);
    CHECK(replicore_version_number() == REPLICORE_VERSION_NUMBER);
    CHECK(replicore_abi_version() == REPLICORE_ABI_VERSION);
}

static void test_status_names(void) {
    CHECK(strcmp(replicore_status_name(REPLICORE_OK), "REPLICORE_OK") == 0);
    CHECK(strcmp(replicore_status_name(REPLICORE_ERR_CORRUPT), "REPLICORE_ERR_CORRUPT") == 0);
    CHECK(strcmp(replicore_status_name(200), "REPLICORE_ERR_CORRUPT") == 0);
    CHECK(replicore_status_name(5) == NULL);
    CHECK(replicore_status_name(0xffffffffu) == NULL);
}

static void test_null_arguments(void) {
    replicore_extent_map *map = NULL;
    uint64_t count = 0, mapped = 0;
    uint8_t id[32] = {0};

    CHECK_STATUS(replicore_extent_map_new(100, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK(message_has("map_out"));
    CHECK_STATUS(replicore_extent_map_insert_zero(NULL, 0, 1), REPLICORE_ERR_NULL_PARAMETER);
    CHECK(message_has("`map`"));
    CHECK_STATUS(replicore_extent_map_insert_blob(NULL, 0, 1, id, 32, 0),
                 REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_stats(NULL, &count, &mapped), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_coalesce(NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_overlay(NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_lookup(NULL, 0, 0, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    replicore_extent_map_free(NULL);

    CHECK_STATUS(replicore_extent_map_new(100, &map), REPLICORE_OK);
    CHECK(map != NULL);
    CHECK_STATUS(replicore_extent_map_insert_blob(map, 0, 1, NULL, 32, 0),
                 REPLICORE_ERR_NULL_PARAMETER);
    CHECK(message_has("blob_id"));
    CHECK_STATUS(replicore_extent_map_stats(map, NULL, &mapped), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_stats(map, &count, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_extent_map_overlay(map, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK(message_has("newer"));
    CHECK_STATUS(replicore_extent_map_lookup(map, 0, 10, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK(message_has("callback"));
    replicore_extent_map_free(map);
}

static void test_error_paths(void) {
    replicore_extent_map *map = (replicore_extent_map *)0x1; /* must stay untouched on failure */
    uint8_t id[32];
    memset(id, 0xab, sizeof id);

    CHECK_STATUS(replicore_extent_map_new(UINT64_MAX, &map), REPLICORE_ERR_LIMIT_EXCEEDED);
    CHECK(message_has("disk size"));
    CHECK(map == (replicore_extent_map *)0x1);

    CHECK_STATUS(replicore_extent_map_new(4096, &map), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_insert_zero(map, 4000, 200), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(message_has("past the end of the 4096-byte disk"));
    CHECK_STATUS(replicore_extent_map_insert_blob(map, 0, 10, id, 31, 0),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(message_has("32 bytes, not 31"));
    CHECK_STATUS(replicore_extent_map_insert_blob(map, 0, 10, id, 32, UINT64_MAX - 2),
                 REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(message_has("overflows"));
    /* A success leaves the last error as it was. */
    CHECK_STATUS(replicore_extent_map_insert_zero(map, 0, 10), REPLICORE_OK);
    CHECK(message_has("overflows"));
    replicore_extent_map_free(map);
}

struct collected {
    replicore_piece pieces[16];
    int count;
    int stop_after;
};

static int collect(void *user, const replicore_piece *piece) {
    struct collected *c = user;
    if (c->count < 16) c->pieces[c->count] = *piece;
    c->count++;
    return c->stop_after > 0 && c->count >= c->stop_after;
}

static void test_map_and_callbacks(void) {
    replicore_extent_map *map = NULL, *newer = NULL;
    uint8_t a[32], b[32];
    uint64_t count = 0, mapped = 0;
    struct collected c;
    memset(a, 0xaa, sizeof a);
    memset(b, 0xbb, sizeof b);

    CHECK_STATUS(replicore_extent_map_new(1000, &map), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_insert_blob(map, 100, 400, a, 32, 0), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_new(1000, &newer), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_insert_blob(newer, 200, 100, b, 32, 5000), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_insert_zero(newer, 900, 100), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_overlay(map, newer), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_stats(map, &count, &mapped), REPLICORE_OK);
    CHECK(count == 4);
    CHECK(mapped == 500);

    memset(&c, 0, sizeof c);
    CHECK_STATUS(replicore_extent_map_lookup(map, 150, 800, collect, &c), REPLICORE_OK);
    CHECK(c.count == 5);
    /* [150,200) blob a @50, [200,300) blob b @5000, [300,500) blob a @200, [500,900) gap,
       [900,950) zero. */
    CHECK(c.pieces[0].kind == REPLICORE_PIECE_BLOB && c.pieces[0].start == 150 &&
          c.pieces[0].len == 50 && c.pieces[0].blob_offset == 50 && c.pieces[0].blob_id[0] == 0xaa);
    CHECK(c.pieces[1].kind == REPLICORE_PIECE_BLOB && c.pieces[1].blob_offset == 5000 &&
          c.pieces[1].blob_id[31] == 0xbb);
    CHECK(c.pieces[2].kind == REPLICORE_PIECE_BLOB && c.pieces[2].start == 300 &&
          c.pieces[2].blob_offset == 200);
    CHECK(c.pieces[3].kind == REPLICORE_PIECE_GAP && c.pieces[3].start == 500 &&
          c.pieces[3].len == 400);
    CHECK(c.pieces[4].kind == REPLICORE_PIECE_ZERO && c.pieces[4].len == 50);

    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    CHECK_STATUS(replicore_extent_map_lookup(map, 0, 1000, collect, &c), REPLICORE_ERR_CANCELLED);
    CHECK(c.count == 2);
    CHECK(message_has("cancelled"));

    /* Overlaying a map on itself is allowed and changes nothing. */
    CHECK_STATUS(replicore_extent_map_overlay(map, map), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_coalesce(map), REPLICORE_OK);
    CHECK_STATUS(replicore_extent_map_stats(map, &count, &mapped), REPLICORE_OK);
    CHECK(count == 4 && mapped == 500);

    replicore_extent_map_free(newer);
    replicore_extent_map_free(map);
}

int main(void) {
    test_version();
    test_status_names();
    test_null_arguments();
    test_error_paths();
    test_map_and_callbacks();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
