/*
 * A host agent, written from include/replicore.h and the README alone, the way a hypervisor
 * vendor's engineer would (issue 16):
 *
 *   - the library's worker pool is sized first (2 threads);
 *   - group `vm-host` (three disks of odd sizes, with holes and an all-zero disk) and group
 *     `vm-aux` (two disks) are seeded, both sealed under the host's one key, into one vault;
 *   - three writer threads (the I/O filter) share ONE change-log handle of `vm-host` and write
 *     and trim random extents (seeded PRNG) on its disks, while the main thread (the timer)
 *     marks crash- and app-consistent points with labels at times moving forward, rotates,
 *     ships (`replicore_ship`, a user pointer per callback) and ingests every bundle into the
 *     vault; `vm-aux` is written, marked and shipped by the main thread beside them;
 *   - an in-memory model holds every disk's bytes at every point;
 *   - every point of both groups is listed (labels, times, consistency, kinds, chain, key) and
 *     failed over (`replicore_vault_failover_to`, one disk onto a pre-created target file that
 *     is reused from point to point, the others as new images reported by the image callback)
 *     and compared with the model byte for byte;
 *   - the failures a host meets: a second open of the open log (LOCKED), a mark back in time,
 *     an incremental before its parent (CHAIN_BROKEN), a damaged bundle (CORRUPT) and then the
 *     good copy, a sealed log shipped twice, a ship stopped by its bundle callback and shipped
 *     again, an ingest and a failover cancelled from the progress callback (no image left),
 *     images already there (and REPLACE), a target too small, the wrong key, a rollback check
 *     ahead of the head, a restart with a stale tracker, a damaged pack found by verify;
 *     after every one of them the last-error message must read without Rust syntax;
 *   - retention: plan (the vault's against the pure plan), dry run, prune, GC, then every kept
 *     point failed over again and compared, verify with the key clean, and the chain taking a
 *     new point after the prune.
 *
 * How the writers and the marking thread agree on the model (the "freeze" a host does for a
 * crash-consistent point): every guest write holds the rwlock `quiesce` shared from the log
 * call through the model update, and the disk's mutex (the disk's request queue: writes to
 * one disk are ordered, so the model of a disk sees them in the log's order). The marking
 * thread takes `quiesce` exclusively: no write is in flight, so the log's marker falls between
 * the same writes as the model's snapshot, and the snapshot is exact. It also rotates under
 * the freeze, so that the sealed log ends with the marker. Writers are paced by a gate: each
 * interval lets OPS_PER_INTERVAL writes through (so the work does not depend on the speed of
 * the machine, valgrind included), and the main thread waits for them before it freezes.
 *
 * Two behaviours this program found wrong in the library it was first written against, fixed
 * since and checked here: a ship stopped by its bundle callback left bundles that blocked the
 * retry (a retry now keeps and reports them); a rotation after writes past a point dated ahead
 * of the clock failed, naming a `time` argument rotate does not take (the rotation's point is
 * now timed just after it).
 *
 * Environment: REPLICORE_HOST_SEED=N changes the PRNG seed (printed at start);
 * REPLICORE_HOST_VERBOSE=1 prints every error message the program provokes.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define WRITERS 3
#define INTERVALS 12
#define OPS_PER_INTERVAL 18
#define MAX_EXTENT (256u << 10)
#define MAX_DISKS 3
#define MAX_POINTS (INTERVALS + 4)
#define MIN_NS 60000000000ull
#define HOUR_NS 3600000000000ull
#define TARGET_TAIL 8192u
#define MAGIC_BUNDLES 0xB0DD1E5u
#define MAGIC_PROGRESS 0x9A0C4E55u
#define MAGIC_IMAGES 0x1AA6E5u

/* ---- error messages ---------------------------------------------------------------------- */

static int verbose;

/* What must not appear in a message meant for an operator: Rust's debug formatting. */
static const char *const rust_syntax[] = {"::", "Some(", "None", "{ ", " }", "SystemTime", "PointId(", "Id("};

/* The thread's last error message after an expected failure of `call`: present, and free of
 * Rust syntax. */
static void check_message_clean(const char *call) {
    const char *m = replicore_last_error_message();
    const char *bad = NULL;
    if (m == NULL || m[0] == '\0') bad = "(empty)";
    for (size_t i = 0; bad == NULL && i < sizeof rust_syntax / sizeof rust_syntax[0]; i++)
        if (strstr(m, rust_syntax[i]) != NULL) bad = rust_syntax[i];
    if (bad == NULL) {
        passed++;
        if (verbose) printf("message after %s:\n    %s\n", call, m);
    } else {
        failed++;
        fprintf(stderr, "message after %s has %s: %s\n", call, bad, m ? m : "(NULL)");
    }
}

/* A call that must fail with `expected`, leaving a clean message. */
#define CHECK_ERROR(call, expected)       \
    do {                                  \
        CHECK_STATUS(call, expected);     \
        check_message_clean(#call);       \
    } while (0)

/* ---- the model --------------------------------------------------------------------------- */

struct disk {
    const char *name;
    const char *file;               /* the image name a failover writes: `<name>.img`, sanitized */
    uint64_t size;
    unsigned char *cur;             /* the disk now */
    unsigned char *at[MAX_POINTS];  /* the disk at each point, by sequence number */
    pthread_mutex_t mu;             /* the disk's queue: orders writes to this disk */
    char image[512];                /* the seed image */
};

struct group {
    const char *name;
    int ndisks;
    struct disk disk[MAX_DISKS];
    replicore_log *log;
    char log_path[512], state_path[512], base_path[512];
    int points; /* so far, the base included; the next point's sequence number */
    uint64_t time_ns[MAX_POINTS];
    uint64_t base_after; /* the base was taken between time_ns[0] and this */
    uint32_t consistency[MAX_POINTS];
    char label[MAX_POINTS][96];
    int by_rotation[MAX_POINTS]; /* closed by a rotation: time and label the library's */
    int rotations;
    char sealed[512];      /* the sealed log waiting to be shipped, or "" */
    uint64_t shipped_seq;  /* the last point shipped */
    replicore_tracker first_tracker;
};

static char dir[] = "/tmp/replicore-c-host-XXXXXX";
static char outbox[128], vault_path[128], lun[128];
static struct group g1 = {
    .name = "vm-host",
    .ndisks = 3,
    .disk = {{.name = "os", .file = "os.img", .size = (3u << 19) + 12345},
             {.name = "data-01", .file = "data-01.img", .size = 1348577},
             {.name = "scratch space", .file = "scratch_space.img", .size = (512u << 10) + 4097}},
};
static struct group g2 = {
    .name = "vm-aux",
    .ndisks = 2,
    .disk = {{.name = "boot", .file = "boot.img", .size = (1u << 20) + 333},
             {.name = "swap", .file = "swap.img", .size = 600001}},
};
static replicore_key *key;
static replicore_vault *vault;
static uint64_t seed_value = 20261123;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n) { return n == 0 ? 0 : rng_next(s) % n; }

/* Guest data: zeros (written, not trimmed), text that compresses, or noise. */
static void fill(uint64_t *rng, unsigned char *buf, size_t len) {
    uint64_t kind = below(rng, 5);
    if (kind == 0) {
        memset(buf, 0, len);
    } else if (kind == 1) {
        static const char text[] = "INSERT INTO orders VALUES (42, 'replicore', now()); ";
        size_t at = (size_t)below(rng, sizeof text - 1);
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)text[(at + i) % (sizeof text - 1)];
    } else {
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = rng_next(rng);
            size_t n = len - i < 8 ? len - i : 8;
            memcpy(buf + i, &v, n);
        }
    }
}

/* A random extent of a disk of `size` bytes: tiny, page-sized, large; aligned, at the end,
 * across a 64 KiB chunk edge, anywhere. Never empty. */
static void pick_extent(uint64_t *rng, uint64_t size, uint64_t *off_out, uint64_t *len_out) {
    uint64_t r = below(rng, 10), len, off;
    if (r < 4) len = 1 + below(rng, 4096);
    else if (r < 8) len = 4096 * (1 + below(rng, 16));
    else len = 65536 + below(rng, MAX_EXTENT - 65536);
    if (len > size) len = size;
    switch (below(rng, 4)) {
    case 0: off = 4096 * below(rng, size / 4096); break;
    case 1: off = size - len; break;
    case 2: {
        uint64_t edge = 65536 * (1 + below(rng, size / 65536));
        off = edge > len / 2 ? edge - len / 2 : 0;
        break;
    }
    default: off = below(rng, size); break;
    }
    if (off >= size) off = size - 1;
    if (len > size - off) len = size - off;
    *off_out = off;
    *len_out = len;
}

static void snapshot(struct group *g, int seq) {
    for (int k = 0; k < g->ndisks; k++) {
        g->disk[k].at[seq] = malloc(g->disk[k].size);
        if (g->disk[k].at[seq] == NULL) abort();
        memcpy(g->disk[k].at[seq], g->disk[k].cur, g->disk[k].size);
    }
}

/* ---- the writers ------------------------------------------------------------------------- */

static pthread_rwlock_t quiesce = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER, quota_cv = PTHREAD_COND_INITIALIZER;
static int gate_ops, gate_quota, gate_stop;

struct writer {
    pthread_t thread;
    int id;
    uint64_t rng;
    int writes, trims, errors;
    char first_error[512];
};

/* One thread of the I/O filter: guest writes and trims on random disks of `vm-host`. */
static void *writer_main(void *arg) {
    struct writer *w = arg;
    unsigned char *buf = malloc(MAX_EXTENT);
    if (buf == NULL) abort();
    for (;;) {
        pthread_mutex_lock(&gate_mu);
        while (!gate_stop && gate_ops >= gate_quota) pthread_cond_wait(&gate_cv, &gate_mu);
        if (gate_stop) {
            pthread_mutex_unlock(&gate_mu);
            break;
        }
        if (++gate_ops == gate_quota) pthread_cond_signal(&quota_cv);
        pthread_mutex_unlock(&gate_mu);

        uint32_t k = (uint32_t)below(&w->rng, (uint64_t)g1.ndisks);
        struct disk *d = &g1.disk[k];
        uint64_t off, len;
        pick_extent(&w->rng, d->size, &off, &len);
        int trim = below(&w->rng, 5) == 0;
        if (!trim) fill(&w->rng, buf, (size_t)len);

        pthread_rwlock_rdlock(&quiesce);
        pthread_mutex_lock(&d->mu);
        replicore_status s = trim ? replicore_log_trim(g1.log, k, off, len)
                                  : replicore_log_write(g1.log, k, off, buf, (size_t)len);
        if (s == REPLICORE_OK) {
            if (trim) memset(d->cur + off, 0, (size_t)len);
            else memcpy(d->cur + off, buf, (size_t)len);
            if (trim) w->trims++;
            else w->writes++;
        } else if (w->errors++ == 0) {
            snprintf(w->first_error, sizeof w->first_error, "%s of %llu bytes at %llu on disk %u: %s: %s",
                     trim ? "trim" : "write", (unsigned long long)len, (unsigned long long)off, k,
                     replicore_status_name(s), replicore_last_error_message());
        }
        pthread_mutex_unlock(&d->mu);
        pthread_rwlock_unlock(&quiesce);
    }
    free(buf);
    return NULL;
}

/* Lets the next interval's writes through. */
static void open_interval(void) {
    pthread_mutex_lock(&gate_mu);
    gate_ops = 0;
    gate_quota = OPS_PER_INTERVAL;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* Waits until the interval's writes were let through (the last ones may still be in flight:
 * the freeze waits for them). */
static void await_interval(void) {
    pthread_mutex_lock(&gate_mu);
    while (gate_ops < gate_quota) pthread_cond_wait(&quota_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

/* ---- callbacks --------------------------------------------------------------------------- */

struct progress {
    uint32_t magic;
    int calls, stop_at, monotonic, wrong_user;
    uint64_t first_done, last_done, total;
};

static int on_progress(void *user, uint64_t done, uint64_t total) {
    struct progress *p = user;
    if (p == NULL || p->magic != MAGIC_PROGRESS) {
        /* A bug: the pointer is another callback's. Count it where the caller can see it. */
        failed++;
        fprintf(stderr, "progress callback got a user pointer that is not its own\n");
        return 0;
    }
    if (p->calls == 0) {
        p->first_done = done;
        p->monotonic = 1;
    } else if (done < p->last_done || total != p->total) {
        p->monotonic = 0;
    }
    p->last_done = done;
    p->total = total;
    p->calls++;
    return p->stop_at != 0 && p->calls >= p->stop_at;
}

/* Progress from 0 to its total, never back. */
static int progress_whole(const struct progress *p) {
    return p->calls >= 2 && p->first_done == 0 && p->last_done == p->total && p->monotonic;
}

struct bundles {
    uint32_t magic;
    int n, stop_at;
    char path[8][512];
    uint64_t seq[8];
};

static int on_bundle(void *user, const char *path, uint64_t seq) {
    struct bundles *b = user;
    if (b == NULL || b->magic != MAGIC_BUNDLES) {
        failed++;
        fprintf(stderr, "bundle callback got a user pointer that is not its own\n");
        return 0;
    }
    if (b->n < 8) {
        snprintf(b->path[b->n], sizeof b->path[0], "%s", path);
        b->seq[b->n] = seq;
        b->n++;
    }
    return b->stop_at != 0 && b->n >= b->stop_at;
}

struct images {
    uint32_t magic;
    int n;
    char disk[4][256], path[4][512];
    uint64_t size[4];
    uint32_t onto[4];
};

static int on_image(void *user, const char *disk, const char *path, uint64_t size, uint32_t onto) {
    struct images *im = user;
    if (im == NULL || im->magic != MAGIC_IMAGES) {
        failed++;
        fprintf(stderr, "image callback got a user pointer that is not its own\n");
        return 0;
    }
    if (im->n < 4) {
        snprintf(im->disk[im->n], sizeof im->disk[0], "%s", disk);
        snprintf(im->path[im->n], sizeof im->path[0], "%s", path);
        im->size[im->n] = size;
        im->onto[im->n] = onto;
    }
    im->n++;
    return 0;
}

struct disk_list {
    int n;
    char name[4][256];
    uint64_t size[4];
};

static int on_disk(void *user, const char *name, uint64_t size) {
    struct disk_list *d = user;
    if (d->n < 4) {
        snprintf(d->name[d->n], sizeof d->name[0], "%s", name);
        d->size[d->n] = size;
    }
    d->n++;
    return 0;
}

struct group_list {
    int n;
    char name[4][256];
};

static int on_group(void *user, const char *group) {
    struct group_list *g = user;
    if (g->n < 4) snprintf(g->name[g->n], sizeof g->name[0], "%s", group);
    g->n++;
    return 0;
}

static int on_pin(void *user, const uint8_t *id) {
    memcpy(user, id, REPLICORE_POINT_ID_LEN);
    return 0;
}

/* ---- files ------------------------------------------------------------------------------- */

static int entries(const char *path) {
    DIR *d = opendir(path);
    int n = 0;
    if (d == NULL) return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether the file at `path` is `want` (`len` bytes), followed by `tail` bytes of `fill`
 * (exactly `len` bytes long when `tail` is 0); says where it differs when it does not. */
static int file_holds(const char *path, const unsigned char *want, uint64_t len, uint64_t tail, int fill_byte,
                      const char *what) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open %s\n", what, path);
        return 0;
    }
    unsigned char *got = malloc(len + tail + 1);
    if (got == NULL) abort();
    size_t n = fread(got, 1, len + tail + 1, f);
    fclose(f);
    int ok = n == len + tail;
    if (!ok) fprintf(stderr, "%s: %s holds %zu bytes, expected %llu\n", what, path, n,
                     (unsigned long long)(len + tail));
    if (ok && memcmp(got, want, len) == 0) len = 0; /* the same: no need to find where not */
    for (uint64_t i = 0; ok && i < len; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "%s: %s differs from the model at byte %llu (0x%02x, expected 0x%02x)\n", what, path,
                    (unsigned long long)i, got[i], want[i]);
            ok = 0;
        }
    for (uint64_t i = 0; ok && i < tail; i++)
        if (got[n - tail + i] != fill_byte) {
            fprintf(stderr, "%s: the tail of %s past the disk changed at byte %llu\n", what, path,
                    (unsigned long long)(n - tail + i));
            ok = 0;
        }
    free(got);
    return ok;
}

static void fill_file(const char *path, uint64_t len, int byte) {
    unsigned char *b = malloc(len);
    if (b == NULL) abort();
    memset(b, byte, len);
    write_file(path, b, len);
    free(b);
}

/* Copies `from` to `to` with one byte, at a PRNG-chosen offset in the middle half, XORed with
 * a PRNG-chosen non-zero mask. */
static void copy_damaged(const char *from, const char *to, uint64_t *rng, long *at_out, int *mask_out) {
    FILE *f = fopen(from, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0) abort();
    long len = ftell(f);
    unsigned char *b = malloc((size_t)len);
    if (b == NULL || fseek(f, 0, SEEK_SET) != 0 || fread(b, 1, (size_t)len, f) != (size_t)len) abort();
    fclose(f);
    long at = len / 4 + (long)below(rng, (uint64_t)(len / 2));
    int mask = 1 + (int)below(rng, 255);
    b[at] ^= (unsigned char)mask;
    write_file(to, b, (size_t)len);
    free(b);
    *at_out = at;
    *mask_out = mask;
}

/* XORs one byte of the file in place (a pack on the vault's disk going bad). */
static int flip_byte(const char *path, long at, int mask) {
    int fd = open(path, O_RDWR);
    unsigned char c;
    if (fd < 0) return 0;
    int ok = pread(fd, &c, 1, at) == 1;
    c ^= (unsigned char)mask;
    ok = ok && pwrite(fd, &c, 1, at) == 1;
    close(fd);
    return ok;
}

/* ---- seeding, marking, shipping ---------------------------------------------------------- */

/* Writes the disk's seed image: holes (never written), zero runs written as data, text and
 * noise; the all-zero disk is one hole. */
static void make_seed_image(struct disk *d, uint64_t *rng, int all_zero) {
    d->cur = calloc(1, d->size);
    if (d->cur == NULL) abort();
    int fd = open(d->image, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)d->size) != 0) abort();
    if (!all_zero) {
        for (uint64_t off = 0; off < d->size; off += 65536) {
            uint64_t len = d->size - off < 65536 ? d->size - off : 65536;
            uint64_t kind = below(rng, 6);
            if (kind == 0) continue; /* a hole */
            fill(rng, d->cur + off, (size_t)len);
            if (kind == 1) memset(d->cur + off, 0, (size_t)len); /* zeros, written */
            if (pwrite(fd, d->cur + off, (size_t)len, (off_t)off) != (ssize_t)len) abort();
        }
    }
    close(fd);
    d->at[0] = malloc(d->size);
    if (d->at[0] == NULL) abort();
    memcpy(d->at[0], d->cur, d->size);
}

static uint64_t now_ns(void);

/* In verbose mode, the time since the previous phase. */
static void phase(const char *what) {
    static uint64_t last;
    uint64_t t = now_ns();
    if (verbose && last != 0) printf("phase: %s: %.2f s\n", what, (double)(t - last) / 1e9);
    last = t;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void seed_group(struct group *g, uint64_t *rng, uint32_t chunk) {
    const char *names[MAX_DISKS], *images[MAX_DISKS];
    for (int k = 0; k < g->ndisks; k++) {
        struct disk *d = &g->disk[k];
        pthread_mutex_init(&d->mu, NULL);
        snprintf(d->image, sizeof d->image, "%s/seed-%s-%d.img", dir, g->name, k);
        make_seed_image(d, rng, strcmp(d->name, "scratch space") == 0 || strcmp(d->name, "swap") == 0);
        names[k] = d->name;
        images[k] = d->image;
    }
    snprintf(g->log_path, sizeof g->log_path, "%s/%s.rclog", dir, g->name);
    snprintf(g->state_path, sizeof g->state_path, "%s/%s.rcship", dir, g->name);
    snprintf(g->base_path, sizeof g->base_path, "%s/%s-base.rcb", outbox, g->name);
    struct progress p = {.magic = MAGIC_PROGRESS};
    uint64_t before = now_ns();
    CHECK_STATUS(replicore_seed(g->name, names, images, (size_t)g->ndisks, key, g->log_path, g->state_path,
                                g->base_path, chunk, on_progress, &p, &g->log),
                 REPLICORE_OK);
    uint64_t after = now_ns();
    CHECK(g->log != NULL && progress_whole(&p));
    g->points = 1;
    g->time_ns[0] = before; /* the base is taken during the call: checked against [before, after] */
    g->base_after = after;
    g->consistency[0] = REPLICORE_MARKER_CRASH;
    g->label[0][0] = '\0';
}

/* Closes the next point of `g` (the caller holds the freeze for `vm-host`). */
static void mark(struct group *g, uint32_t kind, const char *label, uint64_t time_ns) {
    uint64_t seq = 9999;
    CHECK_STATUS(replicore_log_mark(g->log, kind, label, time_ns, &seq), REPLICORE_OK);
    CHECK(seq == (uint64_t)g->points);
    g->time_ns[g->points] = time_ns;
    g->consistency[g->points] = kind;
    snprintf(g->label[g->points], sizeof g->label[0], "%s", label ? label : "");
    snapshot(g, g->points);
    g->points++;
}

static void rotate(struct group *g) {
    replicore_tracker t;
    snprintf(g->sealed, sizeof g->sealed, "%s/%s-%02d.rclog", dir, g->name, g->rotations);
    CHECK_STATUS(replicore_log_rotate(g->log, g->sealed, &t), REPLICORE_OK);
    CHECK(strcmp(t.group, g->name) == 0);
    if (g->rotations == 0) g->first_tracker = t;
    g->rotations++;
}

static size_t point_count(const char *group) {
    size_t n = 0;
    if (replicore_vault_points(vault, group, NULL, 0, &n) != REPLICORE_OK) return (size_t)-1;
    return n;
}

/* Ingests a bundle that must add point `seq`. */
static void ingest(const char *path, uint64_t seq) {
    replicore_ingest_info info;
    struct progress p = {.magic = MAGIC_PROGRESS};
    memset(&info, 0xAB, sizeof info);
    CHECK_STATUS(replicore_vault_ingest(vault, path, on_progress, &p, &info), REPLICORE_OK);
    CHECK(info.added == 1 && info.seq == seq);
    CHECK(progress_whole(&p));
}

/* The special cases a host meets, one per rotation of `vm-host`. */
enum ship_case { SHIP_PLAIN, SHIP_OUT_OF_ORDER, SHIP_STOPPED, SHIP_DAMAGED, INGEST_CANCELLED };
static const enum ship_case ship_cases[] = {SHIP_OUT_OF_ORDER, SHIP_STOPPED, SHIP_DAMAGED, INGEST_CANCELLED};
#define SHIP_CASE(rotation) ((rotation) < 4 ? ship_cases[rotation] : SHIP_PLAIN)

/* Ships the sealed log of `g` and ingests its bundles, oldest first. */
static void ship_and_ingest(struct group *g, enum ship_case how, uint64_t *rng) {
    struct bundles b = {.magic = MAGIC_BUNDLES};
    struct progress p = {.magic = MAGIC_PROGRESS};
    uint64_t count = 0, first = g->shipped_seq + 1;
    if (g->sealed[0] == '\0') return;

    if (how == SHIP_STOPPED) {
        /* The host's bundle callback says stop (its outbox is full, say). The header: the
         * ship state is not advanced and every bundle written stays; shipping the same log
         * again keeps them, reports them all again and saves the state. */
        b.stop_at = 1;
        CHECK_ERROR(replicore_ship(g->sealed, key, g->state_path, outbox, on_bundle, &b, NULL, NULL, &count),
                    REPLICORE_ERR_CANCELLED);
        CHECK(b.n == 1 && exists(b.path[0]));
        char stopped_first[512];
        snprintf(stopped_first, sizeof stopped_first, "%s", b.path[0]);
        memset(&b, 0, sizeof b);
        b.magic = MAGIC_BUNDLES;
        CHECK_STATUS(replicore_ship(g->sealed, key, g->state_path, outbox, on_bundle, &b, on_progress, &p,
                                    &count),
                     REPLICORE_OK);
        CHECK(b.n >= 1 && strcmp(b.path[0], stopped_first) == 0);
    } else {
        CHECK_STATUS(replicore_ship(g->sealed, key, g->state_path, outbox, on_bundle, &b, on_progress, &p, &count),
                     REPLICORE_OK);
    }
    uint64_t want = (uint64_t)g->points - first;
    CHECK(count == want && (uint64_t)b.n == want);
    CHECK(progress_whole(&p));
    for (int i = 0; i < b.n && i < 8; i++) CHECK(b.seq[i] == first + (uint64_t)i);
    /* The same sealed log again: shipped already, nothing changes. */
    {
        struct bundles none = {.magic = MAGIC_BUNDLES};
        CHECK_ERROR(replicore_ship(g->sealed, key, g->state_path, outbox, on_bundle, &none, NULL, NULL, NULL),
                    REPLICORE_ERR_ALREADY_EXISTS);
        CHECK(none.n == 0);
    }

    size_t before = point_count(g->name);
    for (int i = 0; i < b.n && i < 8; i++) {
        if (i == 0 && b.n >= 2 && how == SHIP_OUT_OF_ORDER) {
            /* The inbox delivered the second bundle first. */
            CHECK_ERROR(replicore_vault_ingest(vault, b.path[1], NULL, NULL, NULL), REPLICORE_ERR_CHAIN_BROKEN);
            CHECK(point_count(g->name) == before);
        }
        if (i == 1 && how == SHIP_DAMAGED) {
            /* A copy damaged on the way (one byte XORed), then the good one. */
            char bad[600];
            long at;
            int mask;
            snprintf(bad, sizeof bad, "%s/damaged.rcb", dir);
            copy_damaged(b.path[i], bad, rng, &at, &mask);
            replicore_status s = replicore_vault_ingest(vault, bad, NULL, NULL, NULL);
            CHECK_STATUS(s, REPLICORE_ERR_CORRUPT);
            check_message_clean("replicore_vault_ingest of a damaged bundle");
            if (s != REPLICORE_ERR_CORRUPT)
                fprintf(stderr, "    (byte %ld XOR 0x%02x of %s)\n", at, mask, b.path[i]);
            CHECK(point_count(g->name) == before + (size_t)i);
            CHECK_ERROR(replicore_bundle_verify(bad, NULL, NULL), REPLICORE_ERR_CORRUPT);
            unlink(bad);
        }
        if (i == 0 && how == INGEST_CANCELLED) {
            /* The operator cancels the first ingest from the progress callback. */
            struct progress c = {.magic = MAGIC_PROGRESS, .stop_at = 1};
            CHECK_ERROR(replicore_vault_ingest(vault, b.path[0], on_progress, &c, NULL), REPLICORE_ERR_CANCELLED);
            CHECK(point_count(g->name) == before);
        }
        ingest(b.path[i], first + (uint64_t)i);
    }
    CHECK(point_count(g->name) == before + (size_t)b.n);
    /* The same bundle twice: nothing changes. */
    if (b.n > 0) {
        replicore_ingest_info info;
        CHECK_STATUS(replicore_vault_ingest(vault, b.path[b.n - 1], NULL, NULL, &info), REPLICORE_OK);
        CHECK(info.added == 0);
    }
    for (int i = 0; i < b.n && i < 8; i++) unlink(b.path[i]); /* delivered: the outbox empties */
    unlink(g->sealed);
    g->sealed[0] = '\0';
    g->shipped_seq = (uint64_t)g->points - 1;
}

/* A few writes and trims of `vm-aux`, from the main thread. */
static void write_aux(uint64_t *rng, unsigned char *buf) {
    for (int n = 0; n < 3; n++) {
        uint32_t k = (uint32_t)below(rng, (uint64_t)g2.ndisks);
        struct disk *d = &g2.disk[k];
        uint64_t off, len;
        pick_extent(rng, d->size, &off, &len);
        if (below(rng, 4) == 0) {
            CHECK_STATUS(replicore_log_trim(g2.log, k, off, len), REPLICORE_OK);
            memset(d->cur + off, 0, (size_t)len);
        } else {
            fill(rng, buf, (size_t)len);
            CHECK_STATUS(replicore_log_write(g2.log, k, off, buf, (size_t)len), REPLICORE_OK);
            memcpy(d->cur + off, buf, (size_t)len);
        }
    }
}

/* ---- the recovery site ------------------------------------------------------------------- */

/* Lists the points of `g` and checks them against what the host marked. */
static size_t check_points(struct group *g, replicore_point_info *pts, size_t cap, const uint8_t *kid,
                           const uint8_t *vk) {
    size_t n = 0;
    CHECK_STATUS(replicore_vault_points(vault, g->name, NULL, 0, &n), REPLICORE_OK);
    CHECK(n == (size_t)g->points && n <= cap);
    CHECK_STATUS(replicore_vault_points(vault, g->name, pts, cap, &n), REPLICORE_OK);
    uint64_t total = 0;
    for (int k = 0; k < g->ndisks; k++) total += g->disk[k].size;
    for (size_t i = 0; i < n && i < cap; i++) {
        const replicore_point_info *p = &pts[i];
        CHECK(p->seq == i);
        CHECK(p->kind == (i == 0 ? 1u : 2u));
        CHECK(p->consistency == g->consistency[i]);
        CHECK(p->disks == (uint64_t)g->ndisks && p->total_size == total);
        CHECK(p->merged == 0 && p->checkpoint == 0);
        CHECK(memcmp(p->key_id, kid, REPLICORE_KEY_ID_LEN) == 0);
        CHECK(memcmp(p->verifying_key, vk, REPLICORE_VERIFYING_KEY_LEN) == 0);
        CHECK(memchr(p->label, '\0', sizeof p->label) != NULL);
        if (i == 0) {
            static const uint8_t zero[REPLICORE_POINT_ID_LEN];
            CHECK(memcmp(p->parent, zero, sizeof zero) == 0);
            CHECK(p->time_ns >= g->time_ns[0] && p->time_ns <= g->base_after);
        } else {
            CHECK(memcmp(p->parent, pts[i - 1].id, REPLICORE_POINT_ID_LEN) == 0);
            if (g->by_rotation[i]) {
                CHECK(p->time_ns >= pts[i - 1].time_ns);
                g->time_ns[i] = p->time_ns;
                continue;
            }
            CHECK(p->time_ns == g->time_ns[i] && p->time_ns > pts[i - 1].time_ns);
            if (strcmp(p->label, g->label[i]) != 0) {
                failed++;
                fprintf(stderr, "%s point %zu: label \"%s\", marked \"%s\"\n", g->name, i, p->label, g->label[i]);
            } else {
                passed++;
            }
        }
    }
    /* Every point has the group's disks, named and sized as seeded, in order. */
    for (size_t i = 0; i < n && i < cap; i++) {
        struct disk_list d = {0};
        size_t count = 0;
        CHECK_STATUS(replicore_vault_disks(vault, g->name, pts[i].id, on_disk, &d, &count), REPLICORE_OK);
        CHECK(count == (size_t)g->ndisks && d.n == g->ndisks);
        for (int k = 0; k < g->ndisks && k < 4; k++)
            CHECK(strcmp(d.name[k], g->disk[k].name) == 0 && d.size[k] == g->disk[k].size);
    }
    return n;
}

/* Fails `g` over at point `p` (its model: sequence number `seq`), `data-01` of `vm-host` onto
 * the pre-created target `lun` (reused from point to point: every byte must be written), and
 * compares every image with the model. */
static void failover_and_compare(struct group *g, const replicore_point_info *p, uint64_t seq, const char *tag) {
    char out[400], what[200];
    struct images im = {.magic = MAGIC_IMAGES};
    struct progress pr = {.magic = MAGIC_PROGRESS};
    replicore_failover_target target = {"data-01", lun};
    int with_target = g == &g1;
    uint64_t total = 0;
    snprintf(out, sizeof out, "%s/failover/%s-%s-%llu", dir, g->name, tag, (unsigned long long)seq);
    snprintf(what, sizeof what, "%s at point %llu (%s)", g->name, (unsigned long long)seq, tag);
    CHECK_STATUS(replicore_vault_failover_to(vault, g->name, REPLICORE_SELECT_ID, 0, p->id, key, out,
                                             with_target ? &target : NULL, with_target ? 1 : 0, 0, on_image, &im,
                                             on_progress, &pr),
                 REPLICORE_OK);
    for (int k = 0; k < g->ndisks; k++) total += g->disk[k].size;
    CHECK(progress_whole(&pr) && pr.total == total);
    CHECK(im.n == g->ndisks);
    for (int k = 0; k < g->ndisks && k < im.n && k < 4; k++) {
        struct disk *d = &g->disk[k];
        CHECK(strcmp(im.disk[k], d->name) == 0 && im.size[k] == d->size);
        if (with_target && k == 1) {
            CHECK(im.onto[k] == 1 && strcmp(im.path[k], lun) == 0);
            CHECK(file_holds(lun, d->at[seq], d->size, TARGET_TAIL, 0xEE, what));
        } else {
            const char *slash = strrchr(im.path[k], '/');
            CHECK(im.onto[k] == 0 && slash != NULL && strcmp(slash + 1, d->file) == 0);
            CHECK(file_holds(im.path[k], d->at[seq], d->size, 0, 0, what));
            unlink(im.path[k]);
        }
    }
    CHECK(entries(out) == 0);
    rmdir(out);
}

/* Retention: the plan, the dry run, the prune; every kept point failed over again. */
static void retention(struct group *groups[2], uint64_t now) {
    replicore_retention_policy policy = {.window_hours = 2, .app_every_hours = 4, .extra_hourly = 1, .keep_last = 2};
    static replicore_point_info before[2][MAX_POINTS], after[MAX_POINTS];
    uint32_t rules[2][MAX_POINTS], pure[MAX_POINTS];
    size_t n[2], expired_total = 0, kept_total = 0;
    uint8_t pinned_id[REPLICORE_POINT_ID_LEN] = {0};
    CHECK_STATUS(replicore_retention_policy_validate(&policy), REPLICORE_OK);
    /* The operator pins an old point of vm-host (a test failover of it is running). */
    CHECK_STATUS(replicore_vault_points(vault, g1.name, before[0], MAX_POINTS, &n[0]), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pin(vault, g1.name, before[0][2].id, 1), REPLICORE_OK);
    {
        size_t pins = 0;
        CHECK_STATUS(replicore_vault_pins(vault, g1.name, on_pin, pinned_id, &pins), REPLICORE_OK);
        CHECK(pins == 1 && memcmp(pinned_id, before[0][2].id, REPLICORE_POINT_ID_LEN) == 0);
    }
    for (int gi = 0; gi < 2; gi++) {
        struct group *g = groups[gi];
        size_t m = 0;
        CHECK_STATUS(replicore_vault_points(vault, g->name, before[gi], MAX_POINTS, &n[gi]), REPLICORE_OK);
        CHECK_STATUS(replicore_vault_plan_prune(vault, g->name, &policy, now, rules[gi], MAX_POINTS, &m),
                     REPLICORE_OK);
        CHECK(m == n[gi]);
        /* The vault's plan is the pure plan over the same facts. */
        replicore_plan_point facts[MAX_POINTS];
        for (size_t i = 0; i < n[gi]; i++) {
            facts[i].time_ns = before[gi][i].time_ns;
            facts[i].app_consistent = before[gi][i].consistency == REPLICORE_MARKER_APP;
            facts[i].pinned = gi == 0 && i == 2;
        }
        CHECK_STATUS(replicore_retention_plan(facts, n[gi], &policy, now, pure), REPLICORE_OK);
        CHECK(memcmp(pure, rules[gi], n[gi] * sizeof pure[0]) == 0);
        CHECK(rules[gi][n[gi] - 1] == REPLICORE_RULE_NEWEST);
        if (gi == 0) CHECK(rules[0][2] == REPLICORE_RULE_PINNED);
        for (size_t i = 0; i < n[gi]; i++) {
            if (rules[gi][i] == REPLICORE_RULE_EXPIRED) expired_total++;
            else kept_total++;
        }
    }
    CHECK(expired_total > 0 && kept_total > 4);
    replicore_prune_info dry, done;
    CHECK_STATUS(replicore_vault_prune(vault, &policy, now, 1, &dry), REPLICORE_OK);
    CHECK(dry.groups == 2 && dry.points_pruned == expired_total && dry.points_kept == kept_total);
    CHECK(point_count(g1.name) == n[0] && point_count(g2.name) == n[1]);
    CHECK_STATUS(replicore_vault_prune(vault, &policy, now, 0, &done), REPLICORE_OK);
    CHECK(done.points_pruned == dry.points_pruned && done.points_kept == dry.points_kept &&
          done.merges == dry.merges);
    replicore_gc_info gc;
    struct progress gp = {.magic = MAGIC_PROGRESS};
    CHECK_STATUS(replicore_vault_gc(vault, on_progress, &gp, &gc), REPLICORE_OK);
    CHECK(gc.damaged_packs == 0 && gc.bytes_after <= gc.bytes_before && gp.calls >= 2);
    uint64_t damaged = 99;
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    damaged = 99;
    CHECK_STATUS(replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);

    /* The kept points, in order, each standing for the pruned ones before it; failed over,
     * each is the disks as they were at its point. */
    for (int gi = 0; gi < 2; gi++) {
        struct group *g = groups[gi];
        size_t m = 0, k = 0;
        uint64_t run = 0;
        CHECK_STATUS(replicore_vault_points(vault, g->name, after, MAX_POINTS, &m), REPLICORE_OK);
        for (size_t i = 0; i < n[gi]; i++) {
            if (rules[gi][i] == REPLICORE_RULE_EXPIRED) {
                run++;
                continue;
            }
            if (k >= m) break;
            CHECK(memcmp(after[k].id, before[gi][i].id, REPLICORE_POINT_ID_LEN) == 0);
            CHECK(after[k].seq == before[gi][i].seq && after[k].time_ns == before[gi][i].time_ns);
            CHECK(strcmp(after[k].label, before[gi][i].label) == 0);
            CHECK(after[k].merged == run);
            CHECK(k == 0 ? after[k].kind == 1 : memcmp(after[k].parent, after[k - 1].id, REPLICORE_POINT_ID_LEN) == 0);
            failover_and_compare(g, &after[k], before[gi][i].seq, "kept");
            run = 0;
            k++;
        }
        CHECK(k == m);
    }
    /* The pruned point is gone; the pin is lifted. */
    for (size_t i = 0; i < n[0]; i++)
        if (rules[0][i] == REPLICORE_RULE_EXPIRED) {
            replicore_point_info info;
            CHECK_ERROR(replicore_vault_select(vault, g1.name, REPLICORE_SELECT_ID, 0, before[0][i].id, &info),
                        REPLICORE_ERR_NOT_FOUND);
            CHECK_ERROR(replicore_vault_pin(vault, g1.name, before[0][i].id, 1), REPLICORE_ERR_NOT_FOUND);
            break;
        }
    CHECK_STATUS(replicore_vault_pin(vault, g1.name, before[0][2].id, 0), REPLICORE_OK);
    /* An out-of-range policy. */
    policy.window_hours = 0;
    CHECK_ERROR(replicore_vault_prune(vault, &policy, now, 1, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(void) {
    char keyp[300], wrong_keyp[300];
    uint8_t master[REPLICORE_MASTER_KEY_LEN], kid[REPLICORE_KEY_ID_LEN], vk[REPLICORE_VERIFYING_KEY_LEN];
    replicore_key *wrong = NULL;
    struct writer writers[WRITERS];
    static replicore_point_info pts[MAX_POINTS];
    const char *env;
    uint64_t rng;
    unsigned char *aux_buf = malloc(MAX_EXTENT);

    /* The pool first, before any other call. */
    CHECK_STATUS(replicore_set_thread_count(2), REPLICORE_OK);
    if ((env = getenv("REPLICORE_HOST_SEED")) != NULL) seed_value = strtoull(env, NULL, 10);
    verbose = getenv("REPLICORE_HOST_VERBOSE") != NULL;
    printf("test_host: seed %llu\n", (unsigned long long)seed_value);
    rng = seed_value;
    if (mkdtemp(dir) == NULL || aux_buf == NULL) return 2;
    snprintf(outbox, sizeof outbox, "%s/outbox", dir);
    snprintf(vault_path, sizeof vault_path, "%s/vault", dir);
    snprintf(lun, sizeof lun, "%s/lun-data-01", dir);
    snprintf(keyp, sizeof keyp, "%s/host.rckey", dir);
    snprintf(wrong_keyp, sizeof wrong_keyp, "%s/other.rckey", dir);
    if (mkdir(outbox, 0700) != 0) return 2;

    /* One key for the host's VMs (verify with it then covers the whole vault); another
     * host's key to be refused. */
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(key, kid), REPLICORE_OK);
    CHECK_STATUS(replicore_key_verifying_key(key, vk), REPLICORE_OK);
    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(wrong_keyp, master, NULL, &wrong), REPLICORE_OK);
    memset(master, 0, sizeof master);
    CHECK_ERROR(replicore_key_generate(keyp, master, NULL, &wrong), REPLICORE_ERR_ALREADY_EXISTS);

    phase("start");
    seed_group(&g1, &rng, 65536);
    seed_group(&g2, &rng, 0);
    CHECK_ERROR(replicore_seed(g1.name, (const char *const[]){"os"}, (const char *const[]){g1.disk[0].image}, 1,
                               key, g1.log_path, g1.state_path, g1.base_path, 0, NULL, NULL, NULL),
                REPLICORE_ERR_ALREADY_EXISTS);
    if (g1.log == NULL || g2.log == NULL) {
        char cmd[400];
        fprintf(stderr, "seeding failed: nothing more to check\n");
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }

    phase("seeding");
    /* The recovery site: a vault, the pinned verifying key, both bases. */
    CHECK_STATUS(replicore_vault_create(vault_path, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pin_key(vault, g1.name, vk, 0), REPLICORE_OK);
    ingest(g1.base_path, 0);
    ingest(g2.base_path, 0);
    unlink(g1.base_path);
    unlink(g2.base_path);

    /* Points every hour of simulated time from a minute after the seeds. */
    const uint64_t t0 = now_ns() + MIN_NS;
#define T(i) (t0 + (uint64_t)(i) * HOUR_NS)

    phase("the bases ingested");
    for (int w = 0; w < WRITERS; w++) {
        writers[w] = (struct writer){.id = w, .rng = seed_value * 1000003u + (uint64_t)w * 7919u + 1};
        pthread_create(&writers[w].thread, NULL, writer_main, &writers[w]);
    }
    int rotation = 0;
    for (int i = 1; i <= INTERVALS; i++) {
        open_interval();

        /* While the guest writes: the other VM's writes, and shipping what was sealed. */
        write_aux(&rng, aux_buf);
        if (i == 1) {
            /* A second agent (or a restarted one that forgot to close) opens the log. */
            replicore_log *second = NULL;
            replicore_recovery rec;
            char pid[32];
            CHECK_ERROR(replicore_log_open(g1.log_path, NULL, &second, &rec), REPLICORE_ERR_LOCKED);
            snprintf(pid, sizeof pid, "%ld", (long)getpid());
            CHECK(second == NULL && strstr(replicore_last_error_message(), pid) != NULL);
        }
        if (g1.sealed[0] != '\0') {
            ship_and_ingest(&g1, SHIP_CASE(rotation), &rng);
            rotation++;
        }
        if (g2.sealed[0] != '\0') ship_and_ingest(&g2, SHIP_PLAIN, &rng);

        await_interval();
        /* The freeze: no guest write in flight while the point is closed and the log rotated. */
        pthread_rwlock_wrlock(&quiesce);
        if (i == 5) {
            /* The host's clock stepped back. */
            CHECK_ERROR(replicore_log_mark(g1.log, REPLICORE_MARKER_CRASH, "clock stepped back", T(i - 2), NULL),
                        REPLICORE_ERR_INVALID_ARGUMENT);
        }
        char label[96];
        if (i % 4 == 3) {
            snprintf(label, sizeof label, "vss #%d: sql quiesced — café ✓", i);
            mark(&g1, REPLICORE_MARKER_APP, label, T(i));
        } else if (i == 8) {
            mark(&g1, REPLICORE_MARKER_CRASH, NULL, T(i));
        } else {
            snprintf(label, sizeof label, "crash #%d", i);
            mark(&g1, REPLICORE_MARKER_CRASH, label, T(i));
        }
        if (i % 3 == 0 || i == INTERVALS) rotate(&g1);
        pthread_rwlock_unlock(&quiesce);

        if (i % 2 == 0) {
            snprintf(label, sizeof label, "aux %d", i);
            mark(&g2, i % 4 == 0 ? REPLICORE_MARKER_APP : REPLICORE_MARKER_CRASH, label, T(i) + 10 * MIN_NS);
        }
        if (i % 4 == 0) rotate(&g2);
    }
    pthread_mutex_lock(&gate_mu);
    gate_stop = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    int total_writes = 0, total_trims = 0;
    for (int w = 0; w < WRITERS; w++) {
        pthread_join(writers[w].thread, NULL);
        CHECK(writers[w].errors == 0);
        if (writers[w].errors != 0) fprintf(stderr, "writer %d: %s\n", w, writers[w].first_error);
        total_writes += writers[w].writes;
        total_trims += writers[w].trims;
    }
    CHECK(total_writes + total_trims == INTERVALS * OPS_PER_INTERVAL && total_trims > 0);
    ship_and_ingest(&g1, SHIP_CASE(rotation), &rng);
    ship_and_ingest(&g2, SHIP_PLAIN, &rng);
    /* vm-aux is written after its last point: the host rotates anyway. The header promises a sealed log; the library closes the writes with a point of
     * its own (crash-consistent, labelled "rotation", at the time of the call). */
    write_aux(&rng, aux_buf);
    {
        replicore_tracker t;
        snprintf(g2.sealed, sizeof g2.sealed, "%s/%s-%02d.rclog", dir, g2.name, g2.rotations);
        replicore_status s = replicore_log_rotate(g2.log, g2.sealed, &t);
        /* The points were marked at explicit times ahead of the wall clock (as after the
         * host's clock stepped back): the point rotation adds is timed just after them. */
        CHECK_STATUS(s, REPLICORE_OK);
        if (s == REPLICORE_OK) {
            g2.consistency[g2.points] = REPLICORE_MARKER_CRASH;
            g2.by_rotation[g2.points] = 1;
            snapshot(&g2, g2.points);
            g2.points++;
            g2.rotations++;
        } else {
            check_message_clean("replicore_log_rotate after writes past the last point");
            g2.sealed[0] = '\0';
            mark(&g2, REPLICORE_MARKER_CRASH, "closing", T(INTERVALS) + 20 * MIN_NS);
            rotate(&g2);
        }
    }
    ship_and_ingest(&g2, SHIP_PLAIN, &rng);

    phase("the intervals (writes, marks, ships, ingests)");
    /* The recovery site: both groups, in name order. */
    {
        struct group_list gl = {0};
        size_t count = 0;
        CHECK_STATUS(replicore_vault_groups(vault, on_group, &gl, &count), REPLICORE_OK);
        CHECK(count == 2 && gl.n == 2 && strcmp(gl.name[0], "vm-aux") == 0 && strcmp(gl.name[1], "vm-host") == 0);
    }
    uint64_t head = 0;
    CHECK_STATUS(replicore_vault_expect_seq(vault, g1.name, g1.shipped_seq, &head), REPLICORE_OK);
    CHECK(head == g1.shipped_seq);
    CHECK_ERROR(replicore_vault_expect_seq(vault, g1.name, g1.shipped_seq + 1, &head), REPLICORE_ERR_CHAIN_BROKEN);
    {
        uint64_t damaged = 99;
        CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
        CHECK(damaged == 0);
        CHECK_ERROR(replicore_vault_verify(vault, wrong, NULL, NULL, NULL, &damaged), REPLICORE_ERR_AUTHENTICATION);
    }

    phase("verify");
    /* Every point of each group, listed and failed over. */
    fill_file(lun, g1.disk[1].size + TARGET_TAIL, 0xEE);
    struct group *groups[2] = {&g1, &g2};
    for (int gi = 0; gi < 2; gi++) {
        struct group *g = groups[gi];
        size_t n = check_points(g, pts, MAX_POINTS, kid, vk);
        for (size_t i = 0; i < n && i < MAX_POINTS; i++) failover_and_compare(g, &pts[i], i, "every");
        /* Selectors agree with the marks. */
        replicore_point_info picked;
        int last_app = -1;
        for (int i = 0; i < g->points; i++)
            if (g->consistency[i] == REPLICORE_MARKER_APP) last_app = i;
        CHECK_STATUS(replicore_vault_select(vault, g->name, REPLICORE_SELECT_LATEST, 0, NULL, &picked), REPLICORE_OK);
        CHECK(picked.seq == (uint64_t)g->points - 1);
        CHECK_STATUS(replicore_vault_select(vault, g->name, REPLICORE_SELECT_LATEST_APP, 0, NULL, &picked),
                     REPLICORE_OK);
        CHECK((int)picked.seq == last_app);
        CHECK_STATUS(replicore_vault_select(vault, g->name, REPLICORE_SELECT_AT_OR_BEFORE,
                                            g->time_ns[3] + MIN_NS, NULL, &picked),
                     REPLICORE_OK);
        CHECK(picked.seq == 3);
        CHECK_ERROR(replicore_vault_select(vault, g->name, REPLICORE_SELECT_AT_OR_BEFORE, g->time_ns[0] - HOUR_NS,
                                           NULL, &picked),
                    REPLICORE_ERR_NOT_FOUND);
    }
    {
        size_t n = 0;
        CHECK_ERROR(replicore_vault_points(vault, "vm-gone", pts, MAX_POINTS, &n), REPLICORE_ERR_NOT_FOUND);
    }

    phase("every point failed over");
    /* Failover refusals and cancellations: nothing published. */
    {
        char out[400], small[400];
        replicore_failover_target target = {"data-01", lun};
        struct images im = {.magic = MAGIC_IMAGES};
        struct progress full = {.magic = MAGIC_PROGRESS};
        snprintf(out, sizeof out, "%s/failover/latest", dir);
        CHECK_STATUS(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out, &target,
                                                 1, 0, on_image, &im, on_progress, &full),
                     REPLICORE_OK);
        CHECK(im.n == 3 && entries(out) == 2);
        /* Again into the same directory: the images are there. Then with REPLACE. */
        CHECK_ERROR(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out, &target, 1,
                                                0, NULL, NULL, NULL, NULL),
                    REPLICORE_ERR_ALREADY_EXISTS);
        im.n = 0;
        CHECK_STATUS(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out, &target,
                                                 1, REPLICORE_FAILOVER_REPLACE, on_image, &im, NULL, NULL),
                     REPLICORE_OK);
        CHECK(im.n == 3 && file_holds(im.path[0], g1.disk[0].at[g1.points - 1], g1.disk[0].size, 0, 0, "replaced"));
        for (int k = 0; k < 3 && k < im.n; k++)
            if (im.onto[k] == 0) unlink(im.path[k]);
        rmdir(out);
        /* Cancelled from the progress callback at its first call and at its last. */
        int stops[2] = {1, full.calls};
        for (int s = 0; s < 2; s++) {
            struct progress c = {.magic = MAGIC_PROGRESS, .stop_at = stops[s]};
            struct images none = {.magic = MAGIC_IMAGES};
            snprintf(out, sizeof out, "%s/failover/cancel-%d", dir, s);
            CHECK_ERROR(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out,
                                                    &target, 1, 0, on_image, &none, on_progress, &c),
                        REPLICORE_ERR_CANCELLED);
            CHECK(none.n == 0 && entries(out) == 0);
            rmdir(out);
            struct progress c2 = {.magic = MAGIC_PROGRESS, .stop_at = s == 0 ? 1 : 2};
            CHECK_ERROR(replicore_vault_failover(vault, g2.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out,
                                                 on_progress, &c2, NULL),
                        REPLICORE_ERR_CANCELLED);
            CHECK(entries(out) == 0);
            rmdir(out);
        }
        /* A target one byte short of the disk; the wrong key. */
        snprintf(small, sizeof small, "%s/lun-small", dir);
        fill_file(small, g1.disk[1].size - 1, 0x33);
        target.path = small;
        snprintf(out, sizeof out, "%s/failover/refused", dir);
        CHECK_ERROR(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, key, out, &target, 1,
                                                0, NULL, NULL, NULL, NULL),
                    REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK(entries(out) == 0);
        CHECK_ERROR(replicore_vault_failover_to(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, wrong, out, NULL, 0,
                                                0, NULL, NULL, NULL, NULL),
                    REPLICORE_ERR_AUTHENTICATION);
        CHECK(entries(out) == 0);
        rmdir(out);
        unlink(small);
    }

    phase("failover refusals");
    /* Retention at half an hour past the last point, then replication goes on. */
    retention(groups, T(INTERVALS) + 30 * MIN_NS);
    {
        uint64_t off = g1.disk[0].size - 5000;
        unsigned char after_prune[5000];
        memset(after_prune, 0x5A, sizeof after_prune);
        CHECK_STATUS(replicore_log_write(g1.log, 0, off, after_prune, sizeof after_prune), REPLICORE_OK);
        memcpy(g1.disk[0].cur + off, after_prune, sizeof after_prune);
        CHECK_STATUS(replicore_log_trim(g1.log, 1, 0, 65536), REPLICORE_OK);
        memset(g1.disk[1].cur, 0, 65536);
        mark(&g1, REPLICORE_MARKER_APP, "after the prune", T(INTERVALS + 1));
        rotate(&g1);
        ship_and_ingest(&g1, SHIP_PLAIN, &rng);
        replicore_point_info latest;
        CHECK_STATUS(replicore_vault_select(vault, g1.name, REPLICORE_SELECT_LATEST, 0, NULL, &latest), REPLICORE_OK);
        CHECK(latest.seq == (uint64_t)g1.points - 1 && strcmp(latest.label, "after the prune") == 0);
        failover_and_compare(&g1, &latest, latest.seq, "after-prune");
        uint64_t damaged = 99;
        CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
        CHECK(damaged == 0);
    }

    phase("retention and the point after it");
    /* The agent restarts: the log reopens with the tracker it kept; a stale tracker is a resync. */
    {
        replicore_tracker now_tracker;
        replicore_recovery rec;
        CHECK_STATUS(replicore_log_tracker(g1.log, &now_tracker), REPLICORE_OK);
        replicore_log_free(g1.log);
        g1.log = NULL;
        CHECK_STATUS(replicore_log_open(g1.log_path, &now_tracker, &g1.log, &rec), REPLICORE_OK);
        CHECK(rec.torn_bytes == 0 && rec.rotation == REPLICORE_ROTATION_NONE);
        replicore_log_free(g1.log);
        g1.log = NULL;
        CHECK_ERROR(replicore_log_open(g1.log_path, &g1.first_tracker, &g1.log, &rec), REPLICORE_ERR_RESYNC_REQUIRED);
        CHECK(g1.log == NULL);
    }

    /* A pack goes bad on the vault's disk: verify finds it and says where. */
    {
        char cmd[600], pack[512] = {0};
        snprintf(cmd, sizeof cmd, "ls -S %s/packs/*.rcpack 2>/dev/null | head -n 1", vault_path);
        FILE *f = popen(cmd, "r");
        CHECK(f != NULL && fgets(pack, sizeof pack, f) != NULL);
        if (f) pclose(f);
        pack[strcspn(pack, "\n")] = '\0';
        struct stat st;
        if (pack[0] && stat(pack, &st) == 0) {
            CHECK(flip_byte(pack, (long)(st.st_size / 2), 1 + (int)below(&rng, 255)));
            uint64_t damaged = 0;
            CHECK_STATUS(replicore_vault_verify(vault, NULL, NULL, NULL, NULL, &damaged), REPLICORE_OK);
            CHECK(damaged > 0);
            check_message_clean("replicore_vault_verify of a damaged pack");
        }
    }

    phase("restart and damage");
    replicore_vault_free(vault);
    replicore_log_free(g1.log);
    replicore_log_free(g2.log);
    replicore_key_free(key);
    replicore_key_free(wrong);
    for (int gi = 0; gi < 2; gi++)
        for (int k = 0; k < groups[gi]->ndisks; k++) {
            struct disk *d = &groups[gi]->disk[k];
            free(d->cur);
            for (int p = 0; p < MAX_POINTS; p++) free(d->at[p]);
            pthread_mutex_destroy(&d->mu);
        }
    free(aux_buf);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("test_host: %d guest writes and %d trims from %d threads, %d + %d points\n", total_writes, total_trims,
           WRITERS, g1.points, g2.points);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
