/*
 * An example host shaped like a hypervisor's replication agent, on one machine:
 *
 *   filter threads  feed the guest's writes into the change log (one log handle, shared);
 *   a timer         marks a recovery point and rotates the log every interval;
 *   a shipper       turns each sealed log into bundles;
 *   a recovery site ingests the bundles, then prunes, collects garbage and fails over,
 *                   printing progress through the callback, and checks every byte;
 *   the way back    the recovered disk tracked from the failover on; the original site's
 *                   stale disk signed and brought to the recovered one by a reverse resync
 *                   point (reprotect); the recovered VM's last writes shipped and applied after
 *                   it stops (planned failback); the original disk resynchronized into the
 *                   original chain (reprotect forward). Every step checked byte for byte.
 *
 * Build (after ffi/install.sh --prefix PREFIX):
 *   cc -std=c11 -pthread agent.c $(pkg-config --cflags --libs replicore)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "replicore.h"

#define DISK_LEN (8u << 20)
#define INTERVALS 5
#define INTERVAL_US 60000
#define FILTERS 2

/* Prints the failing call with the library's last error and stops the program. */
#define TRY(call)                                                                        \
    do {                                                                                 \
        replicore_status s_ = (call);                                                    \
        if (s_ != REPLICORE_OK) {                                                        \
            fprintf(stderr, "agent: %s: %s: %s\n", #call, replicore_status_name(s_),     \
                    replicore_last_error_message());                                     \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* A small blocking queue of paths, closed by its producer. */
struct queue {
    char items[64][512];
    int head, tail, closed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void push(struct queue *q, const char *path) {
    pthread_mutex_lock(&q->mu);
    snprintf(q->items[q->tail++ % 64], sizeof q->items[0], "%s", path);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void close_queue(struct queue *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Takes the next path into `out`; 0 once the queue is closed and empty. */
static int pop(struct queue *q, char *out, size_t len) {
    pthread_mutex_lock(&q->mu);
    while (q->head == q->tail && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
    int got = q->head != q->tail;
    if (got) snprintf(out, len, "%s", q->items[q->head++ % 64]);
    pthread_mutex_unlock(&q->mu);
    return got;
}

static char dir[] = "/tmp/replicore-agent-XXXXXX";
static char disk_path[256], key_path[256], log_path[256], state_path[256], vault_path[256];
static FILE *disk;
static pthread_mutex_t disk_mu = PTHREAD_MUTEX_INITIALIZER;
static replicore_log *changelog;
static replicore_key *key;
static replicore_vault *vault;
static atomic_int stop_filters;
static struct queue sealed = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static struct queue bundles = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A filter: the guest's writes to its half of the disk, each applied to the image and recorded
 * in the shared change log (the image lock only keeps this program's own copy consistent; the
 * log handle needs no lock of the host's). */
static void *filter(void *arg) {
    uint64_t half = (uint64_t)(uintptr_t)arg, seed = 0x9e3779b97f4a7c15ull + half;
    static _Thread_local uint8_t buf[65536];
    while (!atomic_load(&stop_filters)) {
        uint64_t len = 512 * (1 + next_random(&seed) % 128);
        uint64_t off = half * (DISK_LEN / 2) + (next_random(&seed) % (DISK_LEN / 2 - len)) / 512 * 512;
        for (uint64_t i = 0; i < len; i++) buf[i] = (uint8_t)next_random(&seed);
        pthread_mutex_lock(&disk_mu);
        if (fseek(disk, (long)off, SEEK_SET) != 0 || fwrite(buf, 1, len, disk) != len) abort();
        pthread_mutex_unlock(&disk_mu);
        TRY(replicore_log_write(changelog, 0, off, buf, len));
        usleep(500);
    }
    return NULL;
}

/* The timer: starts the filters, marks and rotates every interval (app-consistent every third),
 * then stops the guest for a last, quiesced point. */
static void *timer(void *arg) {
    (void)arg;
    pthread_t filters[FILTERS];
    for (uintptr_t i = 0; i < FILTERS; i++) pthread_create(&filters[i], NULL, filter, (void *)i);
    for (int i = 1; i <= INTERVALS; i++) {
        if (i == INTERVALS) {
            atomic_store(&stop_filters, 1);
            for (int f = 0; f < FILTERS; f++) pthread_join(filters[f], NULL);
            pthread_mutex_lock(&disk_mu);
            fflush(disk);
            pthread_mutex_unlock(&disk_mu);
        } else {
            usleep(INTERVAL_US);
        }
        char path[512], label[32];
        uint64_t point = 0;
        replicore_tracker tracker;
        snprintf(label, sizeof label, "interval %d", i);
        TRY(replicore_log_mark(changelog, i % 3 == 0 ? REPLICORE_MARKER_APP : REPLICORE_MARKER_CRASH,
                               label, 0, &point));
        snprintf(path, sizeof path, "%s/sealed-%d.rclog", dir, i);
        TRY(replicore_log_rotate(changelog, path, &tracker));
        printf("timer: point %llu marked, log sealed as %s\n", (unsigned long long)point, path);
        push(&sealed, path);
    }
    close_queue(&sealed);
    return NULL;
}

static int on_bundle(void *user, const char *path, uint64_t seq) {
    (void)seq;
    push(user, path);
    return 0;
}

/* The shipper: every sealed log into bundles, for the recovery site. */
static void *shipper(void *arg) {
    (void)arg;
    char path[512], out[300];
    snprintf(out, sizeof out, "%s/outbox", dir);
    while (pop(&sealed, path, sizeof path)) {
        uint64_t n = 0;
        TRY(replicore_ship(path, key, state_path, out, on_bundle, &bundles, NULL, NULL, &n));
        printf("shipper: %s -> %llu bundles\n", path, (unsigned long long)n);
    }
    close_queue(&bundles);
    return NULL;
}

/* Progress in quarters: the callback a host would feed its own UI with. */
static int progress(void *user, uint64_t done, uint64_t total) {
    int *last = user;
    int q = total ? (int)(done * 4 / total) : 4;
    if (q > *last) {
        printf("  failover %d%%\n", q * 25);
        *last = q;
    }
    return 0; /* non-zero would cancel */
}

/* The recovery site: ingests as bundles arrive, then retention and a failover. */
static void *recovery(void *arg) {
    (void)arg;
    char path[512];
    while (pop(&bundles, path, sizeof path)) {
        replicore_ingest_info info;
        TRY(replicore_vault_ingest(vault, path, NULL, NULL, &info));
        printf("recovery: point %llu ingested, %llu new blobs (%llu bytes), %llu deduplicated\n",
               (unsigned long long)info.seq, (unsigned long long)info.blobs_stored,
               (unsigned long long)info.bytes_stored, (unsigned long long)info.blobs_deduplicated);
    }
    /* Two days on, a 24-hour window keeps the newest and the newest app-consistent points. */
    replicore_retention_policy policy = {.window_hours = 24, .app_every_hours = 0, .extra_hourly = 0, .keep_last = 1};
    replicore_prune_info pruned;
    replicore_gc_info gc;
    uint64_t later = ((uint64_t)time(NULL) + 48 * 3600) * 1000000000ull;
    TRY(replicore_vault_prune(vault, &policy, later, 0, &pruned));
    TRY(replicore_vault_gc(vault, NULL, NULL, &gc));
    printf("recovery: pruned %llu points, kept %llu; gc %llu -> %llu pack bytes\n",
           (unsigned long long)pruned.points_pruned, (unsigned long long)pruned.points_kept,
           (unsigned long long)gc.bytes_before, (unsigned long long)gc.bytes_after);
    char out[300];
    int last = -1;
    uint64_t images = 0;
    snprintf(out, sizeof out, "%s/recovered", dir);
    TRY(replicore_vault_failover(vault, "vm-agent", REPLICORE_SELECT_LATEST, 0, NULL, key, out, progress,
                                 &last, &images));
    return NULL;
}

static int same_files(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Writes `text` at `at` of the image at `path` and, unless NULL, records it in `log`. */
static void write_at(replicore_log *log, const char *path, long at, const char *text) {
    FILE *f = fopen(path, "r+b");
    size_t n = strlen(text);
    if (f == NULL || fseek(f, at, SEEK_SET) != 0 || fwrite(text, 1, n, f) != n) abort();
    fclose(f);
    if (log) TRY(replicore_log_write(log, 0, (uint64_t)at, (const uint8_t *)text, n));
}

/* The one bundle a call reports. */
static int one_bundle(void *user, const char *path, uint64_t seq) {
    (void)seq;
    snprintf(user, 512, "%s", path);
    return 0;
}

/* The DR cycle's way back, after the failover to the newest point; 1 when every byte held. */
static int way_back(void) {
    char rec_disk[400], rec_log[300], rec_state[300], osig[300], ostate[300], rev[300], rev_log[300];
    char rev_state[300], bundle[512], sealed_log[300], fsig[300], flog[300], check[300], got[400];
    const char *names[] = {"disk0"};
    const char *original[] = {disk_path};
    const char *recovered[] = {rec_disk};
    replicore_point_info latest;
    replicore_log *rlog = NULL, *revlog = NULL, *flog_h = NULL;
    replicore_resync_info info;
    replicore_apply_info applied;
    replicore_tracker tracker;
    uint64_t n = 0, point = 0;
    int ok = 1;
    snprintf(rec_disk, sizeof rec_disk, "%s/recovered/disk0.img", dir);
    snprintf(rec_log, sizeof rec_log, "%s/recovered/rec.rclog", dir);
    snprintf(rec_state, sizeof rec_state, "%s/recovered/rec.rcship", dir);
    snprintf(osig, sizeof osig, "%s/original.rcpsig", dir);
    snprintf(ostate, sizeof ostate, "%s/original.rcapply", dir);
    snprintf(rev, sizeof rev, "%s/reverse", dir);
    snprintf(rev_log, sizeof rev_log, "%s/recovered/rev.rclog", dir);
    snprintf(rev_state, sizeof rev_state, "%s/recovered/rev.rcship", dir);
    if (mkdir(rev, 0700) != 0) return 0;

    /* The recovered disk is tracked from the point failed over to; the VM writes. */
    TRY(replicore_vault_select(vault, "vm-agent", REPLICORE_SELECT_LATEST, 0, NULL, &latest));
    TRY(replicore_vault_track_failover(vault, "vm-agent", latest.id, key, rec_log, rec_state, 0, &rlog));
    write_at(rlog, rec_disk, 12345, "the recovered VM writes");
    /* The original site had a write it never shipped: its disk is stale and diverged. */
    write_at(NULL, disk_path, 777, "lost with the primary");
    replicore_log_free(rlog);

    /* Reprotect: the stale disk signed; the differing chunks shipped back and applied. */
    TRY(replicore_resync_sign("vm-agent", key, names, original, 1, 0, osig, ostate, 0, NULL, NULL));
    TRY(replicore_resync_ship(osig, key, names, recovered, 1, rev_log, rev_state, rev, 0, one_bundle, bundle, NULL,
                              NULL, &revlog, &info));
    TRY(replicore_apply(bundle, key, names, original, 1, ostate, NULL, NULL, &applied));
    ok &= same_files(disk_path, rec_disk);
    printf("way back: reprotect shipped %llu of %llu chunks (%llu bytes) back; the original disk %s\n",
           (unsigned long long)info.changed_chunks, (unsigned long long)info.chunks,
           (unsigned long long)info.bundle_bytes, ok ? "equals the recovered one" : "DIFFERS");

    /* Planned failback: the recovered VM's last writes, then it stops; shipped and applied. */
    write_at(revlog, rec_disk, 4096 * 3, "last write before failback");
    TRY(replicore_log_mark(revlog, REPLICORE_MARKER_APP, "failback", 0, &point));
    snprintf(sealed_log, sizeof sealed_log, "%s/recovered/rev-sealed.rclog", dir);
    TRY(replicore_log_rotate(revlog, sealed_log, &tracker));
    TRY(replicore_ship(sealed_log, key, rev_state, rev, one_bundle, bundle, NULL, NULL, &n));
    TRY(replicore_apply(bundle, key, names, original, 1, ostate, NULL, NULL, &applied));
    replicore_log_free(revlog);
    ok &= same_files(disk_path, rec_disk);
    printf("way back: planned failback applied point %llu; the original disk %s\n",
           (unsigned long long)applied.seq, ok ? "equals the recovered one" : "DIFFERS");

    /* Reprotect forward: the original disk resyncs into the original chain. */
    snprintf(fsig, sizeof fsig, "%s/forward.rcpsig", dir);
    snprintf(flog, sizeof flog, "%s/agent-2.rclog", dir);
    snprintf(check, sizeof check, "%s/check", dir);
    TRY(replicore_vault_point_signature(vault, "vm-agent", NULL, key, fsig, NULL, NULL));
    snprintf(sealed_log, sizeof sealed_log, "%s/outbox", dir);
    TRY(replicore_resync_ship(fsig, key, names, original, 1, flog, state_path, sealed_log, 0, one_bundle, bundle,
                              NULL, NULL, &flog_h, &info));
    TRY(replicore_vault_ingest(vault, bundle, NULL, NULL, NULL));
    TRY(replicore_vault_failover(vault, "vm-agent", REPLICORE_SELECT_LATEST, 0, NULL, key, check, NULL, NULL, &n));
    snprintf(got, sizeof got, "%s/disk0.img", check);
    ok &= same_files(disk_path, got);
    printf("way back: reprotect forward, resync point %llu (%llu chunks changed); its failover %s\n",
           (unsigned long long)info.seq, (unsigned long long)info.changed_chunks,
           ok ? "equals the original disk" : "DIFFERS");
    replicore_log_free(flog_h);
    return ok;
}

int main(void) {
    if (mkdtemp(dir) == NULL) return 2;
    snprintf(disk_path, sizeof disk_path, "%s/disk.img", dir);
    snprintf(key_path, sizeof key_path, "%s/agent.rckey", dir);
    snprintf(log_path, sizeof log_path, "%s/agent.rclog", dir);
    snprintf(state_path, sizeof state_path, "%s/agent.rcship", dir);
    snprintf(vault_path, sizeof vault_path, "%s/vault", dir);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/outbox", dir);
    if (mkdir(sub, 0700) != 0) return 2;
    snprintf(sub, sizeof sub, "%s/recovered", dir);
    if (mkdir(sub, 0700) != 0) return 2;
    disk = fopen(disk_path, "w+b");
    if (disk == NULL) return 2;
    for (uint32_t i = 0; i < DISK_LEN; i++) fputc(i % 4096 < 2048 ? 0 : (int)(i * 31 % 251), disk);
    fflush(disk);

    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    TRY(replicore_master_key_generate(master));
    TRY(replicore_key_generate(key_path, master, NULL, &key));
    const char *names[] = {"disk0"};
    const char *images[] = {disk_path};
    char base[300];
    snprintf(base, sizeof base, "%s/base.rcb", dir);
    TRY(replicore_seed("vm-agent", names, images, 1, key, log_path, state_path, base, 65536, NULL, NULL,
                       &changelog));
    TRY(replicore_vault_create(vault_path, &vault));
    push(&bundles, base);
    printf("agent: seeded vm-agent (%u bytes) in %s\n", DISK_LEN, dir);

    pthread_t t_timer, t_shipper, t_recovery;
    pthread_create(&t_recovery, NULL, recovery, NULL);
    pthread_create(&t_shipper, NULL, shipper, NULL);
    pthread_create(&t_timer, NULL, timer, NULL);
    pthread_join(t_timer, NULL);
    pthread_join(t_shipper, NULL);
    pthread_join(t_recovery, NULL);

    char recovered[400];
    snprintf(recovered, sizeof recovered, "%s/recovered/disk0.img", dir);
    int ok = same_files(disk_path, recovered);
    printf("agent: the failed-over disk %s the guest's disk\n", ok ? "equals" : "DIFFERS FROM");
    fflush(disk);
    ok &= way_back();

    fclose(disk);
    replicore_log_free(changelog);
    replicore_vault_free(vault);
    replicore_key_free(key);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) ok = 0;
    return ok ? 0 : 1;
}
