/*
 * Threads from C: one change-log handle takes record_write from four threads at once (each
 * writing its own region, and all of them one shared block), then the points are shipped and
 * ingested by one thread while three others list, verify and materialize beside it. Checks:
 * every region is exactly what its thread wrote last, the shared block is one whole write of
 * one thread (records are whole and totally ordered, never interleaved), every read beside
 * ingest sees whole points and correct bytes. Run under ThreadSanitizer too.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define WRITERS 4
#define ROUNDS 200
#define REGION (256u << 10)
#define SHARED_AT ((uint64_t)WRITERS * REGION)
#define BLOCK 4096u
#define DISK_LEN (SHARED_AT + BLOCK)
#define POINTS 4

static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;
static replicore_log *changelog;
static replicore_vault *vault;
static replicore_key *key;
static char dir[] = "/tmp/replicore-c-threads-XXXXXX";
static unsigned char base_image[DISK_LEN];
static int ingest_done;

static void locked_check(int ok, const char *what) {
    pthread_mutex_lock(&check_mu);
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "check failed: %s: %s\n", what, replicore_last_error_message());
    }
    pthread_mutex_unlock(&check_mu);
}

/* The byte writer `w` writes in round `r` at offset `i` of its buffers. */
static unsigned char pattern(int w, int r, size_t i) {
    return (unsigned char)(w * 61 + r * 7 + i % 13 + 1);
}

static void *writer(void *arg) {
    int w = (int)(intptr_t)arg;
    static _Thread_local unsigned char buf[REGION];
    int ok = 1;
    for (int r = 0; r < ROUNDS; r++) {
        size_t len = BLOCK * (1 + (size_t)(r % 8));
        uint64_t off = (uint64_t)w * REGION + (uint64_t)(r * 4096 % (REGION - len));
        for (size_t i = 0; i < len; i++) buf[i] = pattern(w, r, i);
        ok &= replicore_log_write(changelog, 0, off, buf, len) == REPLICORE_OK;
        for (size_t i = 0; i < BLOCK; i++) buf[i] = pattern(w, r, 0);
        ok &= replicore_log_write(changelog, 0, SHARED_AT, buf, BLOCK) == REPLICORE_OK;
    }
    locked_check(ok, "record_write from several threads");
    return NULL;
}

/* The region of writer `w` as its writes left it (rounds in order). */
static void expected_region(int w, unsigned char *out) {
    memcpy(out, base_image + (size_t)w * REGION, REGION);
    for (int r = 0; r < ROUNDS; r++) {
        size_t len = BLOCK * (1 + (size_t)(r % 8));
        size_t off = (size_t)(r * 4096 % (REGION - len));
        for (size_t i = 0; i < len; i++) out[off + i] = pattern(w, r, i);
    }
}

static int read_file(const char *path, unsigned char *out, size_t len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    size_t n = fread(out, 1, len, f);
    fclose(f);
    return n == len;
}

/* A reader beside ingest: lists, verifies, materializes the base and checks its bytes. */
static void *reader(void *arg) {
    int id = (int)(intptr_t)arg, rounds = 0;
    static _Thread_local unsigned char got[DISK_LEN];
    replicore_point_info points[POINTS + 2];
    for (;;) {
        pthread_mutex_lock(&check_mu);
        int done = ingest_done;
        pthread_mutex_unlock(&check_mu);
        size_t n = 0;
        replicore_status s = replicore_vault_points(vault, "g", points, POINTS + 2, &n);
        locked_check(s == REPLICORE_OK && n >= 1 && n <= POINTS + 1, "listing beside ingest");
        if (s == REPLICORE_OK && n >= 1) {
            for (size_t i = 1; i < n && i < POINTS + 2; i++)
                locked_check(memcmp(points[i].parent, points[i - 1].id, 32) == 0, "a listed chain links");
            char out[300];
            snprintf(out, sizeof out, "%s/r%d-%d.img", dir, id, rounds);
            s = replicore_vault_materialize(vault, "g", points[0].id, "d", key, out, NULL, NULL);
            locked_check(s == REPLICORE_OK && read_file(out, got, DISK_LEN) &&
                             memcmp(got, base_image, DISK_LEN) == 0,
                         "materialize beside ingest");
            unlink(out);
        }
        uint64_t damaged = 1;
        s = replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged);
        locked_check(s == REPLICORE_OK && damaged == 0, "verify beside ingest");
        rounds++;
        if (done) break;
    }
    return NULL;
}

struct names {
    char paths[POINTS + 1][512];
    int n;
};

static int on_bundle(void *user, const char *path, uint64_t seq) {
    struct names *b = user;
    (void)seq;
    if (b->n < POINTS + 1) snprintf(b->paths[b->n++], sizeof b->paths[0], "%s", path);
    return 0;
}

int main(void) {
    char disk[300], keyp[300], logp[300], statep[300], basep[300], vaultp[300], sealed[300];
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    if (mkdtemp(dir) == NULL) return 2;
    snprintf(disk, sizeof disk, "%s/d.img", dir);
    snprintf(keyp, sizeof keyp, "%s/k.rckey", dir);
    snprintf(logp, sizeof logp, "%s/l.rclog", dir);
    snprintf(statep, sizeof statep, "%s/l.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    for (size_t i = 0; i < DISK_LEN; i++) base_image[i] = (unsigned char)(i * 7 / 4096);
    FILE *f = fopen(disk, "wb");
    if (f == NULL || fwrite(base_image, 1, DISK_LEN, f) != DISK_LEN) return 2;
    fclose(f);
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    const char *names[] = {"d"};
    const char *images[] = {disk};
    CHECK_STATUS(replicore_seed("g", names, images, 1, key, logp, statep, basep, 65536, NULL, NULL, &changelog),
                 REPLICORE_OK);

    /* Four writers on one log handle, for several points. */
    uint64_t point = 0;
    for (int p = 0; p < POINTS; p++) {
        pthread_t t[WRITERS];
        for (intptr_t w = 0; w < WRITERS; w++) pthread_create(&t[w], NULL, writer, (void *)w);
        for (int w = 0; w < WRITERS; w++) pthread_join(t[w], NULL);
        CHECK_STATUS(replicore_log_mark(changelog, REPLICORE_MARKER_CRASH, "", 0, &point), REPLICORE_OK);
    }
    replicore_tracker tracker;
    snprintf(sealed, sizeof sealed, "%s/sealed.rclog", dir);
    CHECK_STATUS(replicore_log_rotate(changelog, sealed, &tracker), REPLICORE_OK);
    struct names shipped = {0};
    uint64_t count = 0;
    CHECK_STATUS(replicore_ship(sealed, key, statep, dir, on_bundle, &shipped, NULL, NULL, &count), REPLICORE_OK);
    CHECK(count == POINTS && shipped.n == POINTS);

    /* Ingest on this thread while three readers work beside it. */
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);
    pthread_t readers[3];
    for (intptr_t r = 0; r < 3; r++) pthread_create(&readers[r], NULL, reader, (void *)r);
    for (int i = 0; i < shipped.n; i++)
        locked_check(replicore_vault_ingest(vault, shipped.paths[i], NULL, NULL, NULL) == REPLICORE_OK,
                     "ingest beside readers");
    pthread_mutex_lock(&check_mu);
    ingest_done = 1;
    pthread_mutex_unlock(&check_mu);
    for (int r = 0; r < 3; r++) pthread_join(readers[r], NULL);

    /* The newest point: each region as its writer left it, the shared block one whole write. */
    char out[300];
    static unsigned char got[DISK_LEN], want[REGION];
    replicore_point_info latest;
    CHECK_STATUS(replicore_vault_select(vault, "g", REPLICORE_SELECT_LATEST, 0, NULL, &latest), REPLICORE_OK);
    snprintf(out, sizeof out, "%s/latest.img", dir);
    CHECK_STATUS(replicore_vault_materialize(vault, "g", latest.id, "d", key, out, NULL, NULL), REPLICORE_OK);
    CHECK(read_file(out, got, DISK_LEN));
    for (int w = 0; w < WRITERS; w++) {
        expected_region(w, want);
        CHECK(memcmp(got + (size_t)w * REGION, want, REGION) == 0);
    }
    int whole = 0;
    for (int w = 0; w < WRITERS; w++) {
        int same = 1;
        for (size_t i = 0; i < BLOCK; i++) same &= got[SHARED_AT + i] == pattern(w, ROUNDS - 1, 0);
        whole |= same;
    }
    CHECK(whole);

    replicore_vault_free(vault);
    replicore_log_free(changelog);
    replicore_key_free(key);
    snprintf(out, sizeof out, "rm -rf %s", dir);
    if (system(out) != 0) failed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
