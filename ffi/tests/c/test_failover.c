/*
 * Failover from C as a hypervisor host does it (issue 16): the worker pool sized first; the
 * point's label, key id and disks listed; a failover onto a pre-created file (a LUN stand-in,
 * larger than the disk) beside a new image, the written files reported; every disk onto
 * targets with no output directory; a loop device as target where root and losetup allow;
 * refusals (a target too small, unknown flags, NULL targets) that write nothing; progress in
 * disk bytes from 0 to the total, never more than 8 MiB apart, cancelled at every call leaving
 * no image; pins and the pinned key listed.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "check.h"
#include "replicore.h"

#define OS_LEN (10u << 20) /* more than one 8 MiB step */
#define DATA_LEN (300000u)
#define TAIL 4096u

struct images {
    int n;
    char disk[4][64], path[4][512];
    uint64_t size[4];
    uint32_t onto[4];
};

static int on_image(void *user, const char *disk, const char *path, uint64_t size, uint32_t onto) {
    struct images *im = user;
    if (im->n < 4) {
        snprintf(im->disk[im->n], sizeof im->disk[0], "%s", disk);
        snprintf(im->path[im->n], sizeof im->path[0], "%s", path);
        im->size[im->n] = size;
        im->onto[im->n] = onto;
        im->n++;
    }
    return 0;
}

struct disks {
    int n;
    char name[4][64];
    uint64_t size[4];
};

static int on_disk(void *user, const char *name, uint64_t size) {
    struct disks *d = user;
    if (d->n < 4) {
        snprintf(d->name[d->n], sizeof d->name[0], "%s", name);
        d->size[d->n++] = size;
    }
    return 0;
}

/* Progress as seen: the calls, their order and steps; cancels at call `stop` (0: never). */
struct progress {
    int calls, stop, monotonic, small_steps;
    uint64_t first_done, last_done, total, last;
};

static int on_progress(void *user, uint64_t done, uint64_t total) {
    struct progress *p = user;
    if (p->calls == 0) {
        p->first_done = done;
        p->monotonic = 1;
        p->small_steps = 1;
    } else {
        if (done < p->last) p->monotonic = 0;
        if (done - p->last > (8u << 20)) p->small_steps = 0;
    }
    p->last = done;
    p->last_done = done;
    p->total = total;
    p->calls++;
    return p->stop != 0 && p->calls >= p->stop;
}

static int on_pin(void *user, const uint8_t *id) {
    memcpy(user, id, 32);
    return 0;
}

/* Entries of a directory (0 when missing). */
static int entries(const char *path) {
    DIR *d = opendir(path);
    int n = 0;
    if (d == NULL) return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Whether the file's first `len` bytes are `want` and the next `tail` bytes are all `fill`. */
static int holds(const char *path, const unsigned char *want, size_t len, size_t tail, int fill) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    unsigned char *got = malloc(len + tail + 1);
    size_t n = got ? fread(got, 1, len + tail + 1, f) : 0;
    fclose(f);
    int ok = got != NULL && n >= len + tail && memcmp(got, want, len) == 0;
    for (size_t i = 0; ok && i < tail; i++) ok = got[len + i] == fill;
    free(got);
    return ok;
}

static void fill_file(const char *path, size_t len, int byte) {
    unsigned char *b = malloc(len);
    if (b == NULL) abort();
    memset(b, byte, len);
    write_file(path, b, len);
    free(b);
}

int main(void) {
    char dir[] = "/tmp/replicore-c-failover-XXXXXX";
    char osp[256], datap[256], keyp[256], logp[256], statep[256], basep[256], sealedp[256];
    char vaultp[256], out[256], lun[256], lun_os[256], small[256], img[400];
    unsigned char *os = malloc(OS_LEN), *data = malloc(DATA_LEN);
    uint8_t master[REPLICORE_MASTER_KEY_LEN], kid[16], vk[32], pinned_vk[32], pin[32];
    replicore_key *key = NULL;
    replicore_log *log = NULL;
    replicore_vault *vault = NULL;
    replicore_point_info latest;
    replicore_tracker tracker;
    struct bundle_paths shipped = {0};
    uint64_t count = 0, point = 0;
    uint32_t pinned = 9;
    size_t n = 0;

    /* The pool first, as a host bounds it: the same size again is fine, another is refused. */
    CHECK_STATUS(replicore_set_thread_count(2), REPLICORE_OK);
    CHECK_STATUS(replicore_set_thread_count(2), REPLICORE_OK);
    CHECK_STATUS(replicore_set_thread_count(3), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "2 threads") != NULL);

    if (mkdtemp(dir) == NULL || !os || !data) return 2;
    snprintf(osp, sizeof osp, "%s/os.img", dir);
    snprintf(datap, sizeof datap, "%s/data.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(sealedp, sizeof sealedp, "%s/sealed.rclog", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(out, sizeof out, "%s/images", dir);
    snprintf(lun, sizeof lun, "%s/lun-data", dir);
    snprintf(lun_os, sizeof lun_os, "%s/lun-os", dir);
    snprintf(small, sizeof small, "%s/lun-small", dir);
    memset(os, 0, OS_LEN);
    for (size_t i = 0; i < (1u << 20); i++) os[i] = (unsigned char)(i * 13 + i / 777);
    for (size_t i = 9u << 20; i < (9u << 20) + 5000; i++) os[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < DATA_LEN; i++) data[i] = (unsigned char)("replicore lun "[i % 14]);
    write_file(osp, os, OS_LEN);
    write_file(datap, data, DATA_LEN);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    CHECK_STATUS(replicore_key_id(key, kid), REPLICORE_OK);
    CHECK_STATUS(replicore_key_verifying_key(key, vk), REPLICORE_OK);
    const char *names[] = {"os", "data"};
    const char *paths[] = {osp, datap};
    CHECK_STATUS(replicore_seed("vm-f", names, paths, 2, key, logp, statep, basep, 65536, NULL,
                                NULL, &log),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_log_write(log, 1, 100, (const uint8_t *)"after the seed", 14), REPLICORE_OK);
    memcpy(data + 100, "after the seed", 14);
    CHECK_STATUS(replicore_log_mark(log, REPLICORE_MARKER_APP, "vss: sql quiesced", 0, &point),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, dir, collect_bundle_path, &shipped, NULL,
                                NULL, &count),
                 REPLICORE_OK);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[0], NULL, NULL, NULL), REPLICORE_OK);

    /* The point names its label and key; the group's disks with their sizes. */
    CHECK_STATUS(replicore_vault_select(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, &latest),
                 REPLICORE_OK);
    CHECK(strcmp(latest.label, "vss: sql quiesced") == 0);
    CHECK(memcmp(latest.key_id, kid, 16) == 0 && memcmp(latest.verifying_key, vk, 32) == 0);
    {
        struct disks d = {0};
        CHECK_STATUS(replicore_vault_disks(vault, "vm-f", NULL, on_disk, &d, &n), REPLICORE_OK);
        CHECK(n == 2 && d.n == 2);
        CHECK(strcmp(d.name[0], "os") == 0 && d.size[0] == OS_LEN);
        CHECK(strcmp(d.name[1], "data") == 0 && d.size[1] == DATA_LEN);
        CHECK_STATUS(replicore_vault_disks(vault, "vm-f", latest.parent, NULL, NULL, &n), REPLICORE_OK);
        CHECK(n == 2);
        CHECK_STATUS(replicore_vault_disks(vault, "nope", NULL, NULL, NULL, &n), REPLICORE_ERR_NOT_FOUND);
    }

    /* `data` onto a pre-created file larger than the disk, `os` as a new image. */
    fill_file(lun, DATA_LEN + TAIL, 0xEE);
    {
        replicore_failover_target t[] = {{"data", lun}};
        struct images im = {0};
        struct progress p = {0};
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, key,
                                                 out, t, 1, 0, on_image, &im, on_progress, &p),
                     REPLICORE_OK);
        CHECK(im.n == 2);
        CHECK(strcmp(im.disk[0], "os") == 0 && im.onto[0] == 0 && im.size[0] == OS_LEN);
        CHECK(strcmp(im.disk[1], "data") == 0 && im.onto[1] == 1 && strcmp(im.path[1], lun) == 0);
        CHECK(same_file(im.path[0], os, OS_LEN));
        CHECK(holds(lun, data, DATA_LEN, TAIL, 0xEE));
        /* Progress in disk bytes: 0 first, the total last, at most 8 MiB apart. */
        CHECK(p.calls >= 3 && p.first_done == 0 && p.total == OS_LEN + DATA_LEN);
        CHECK(p.last_done == p.total && p.monotonic && p.small_steps);
        /* Cancelled at each call: no new image (the target is written in place). */
        int calls = p.calls;
        for (int stop = 1; stop <= calls; stop++) {
            char d[300];
            struct progress c = {0};
            c.stop = stop;
            snprintf(d, sizeof d, "%s/cancel-%d", dir, stop);
            CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL,
                                                     key, d, t, 1, 0, NULL, NULL, on_progress, &c),
                         REPLICORE_ERR_CANCELLED);
            CHECK(entries(d) == 0);
        }
    }
    /* Every disk onto a target, no output directory. */
    fill_file(lun_os, OS_LEN, 0x11);
    fill_file(lun, DATA_LEN, 0x22);
    {
        replicore_failover_target t[] = {{"os", lun_os}, {"data", lun}};
        struct images im = {0};
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST_APP, 0, NULL,
                                                 key, NULL, t, 2, 0, on_image, &im, NULL, NULL),
                     REPLICORE_OK);
        CHECK(im.n == 2 && im.onto[0] == 1 && im.onto[1] == 1);
        CHECK(same_file(lun_os, os, OS_LEN) && same_file(lun, data, DATA_LEN));
        /* One disk without a target and no directory: refused. */
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, key,
                                                 NULL, t + 1, 1, 0, NULL, NULL, NULL, NULL),
                     REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK(strstr(replicore_last_error_message(), "disk `os`") != NULL);
        /* Unknown flags; targets NULL with a count. */
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, key,
                                                 out, t, 2, 0x80, NULL, NULL, NULL, NULL),
                     REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, key,
                                                 out, NULL, 2, 0, NULL, NULL, NULL, NULL),
                     REPLICORE_ERR_NULL_PARAMETER);
    }
    /* A target one byte short: refused, nothing written (the other target untouched too). */
    fill_file(small, DATA_LEN - 1, 0x33);
    fill_file(lun_os, OS_LEN, 0x44);
    {
        replicore_failover_target t[] = {{"os", lun_os}, {"data", small}};
        char d[300];
        snprintf(d, sizeof d, "%s/refused", dir);
        CHECK_STATUS(replicore_vault_failover_to(vault, "vm-f", REPLICORE_SELECT_LATEST, 0, NULL, key,
                                                 d, t, 2, 0, NULL, NULL, NULL, NULL),
                     REPLICORE_ERR_INVALID_ARGUMENT);
        CHECK(strstr(replicore_last_error_message(), "less than") != NULL);
        CHECK(holds(small, data, 0, DATA_LEN - 1, 0x33) && holds(lun_os, os, 0, OS_LEN, 0x44));
        CHECK(entries(d) == 0);
    }
    /* One disk onto a target. */
    CHECK_STATUS(replicore_vault_materialize_onto(vault, "vm-f", latest.id, "os", key, lun_os, NULL, NULL),
                 REPLICORE_OK);
    CHECK(same_file(lun_os, os, OS_LEN));
    CHECK_STATUS(replicore_vault_materialize_onto(vault, "vm-f", latest.id, "data", key, small, NULL, NULL),
                 REPLICORE_ERR_INVALID_ARGUMENT);

    /* A loop device as target, where this machine allows it. */
    if (geteuid() == 0 && system("losetup -f >/dev/null 2>&1") == 0) {
        char cmd[600], dev[128] = {0};
        snprintf(img, sizeof img, "%s/loop-backing", dir);
        fill_file(img, OS_LEN + 65536, 0x55);
        snprintf(cmd, sizeof cmd, "losetup --find --show %s", img);
        FILE *f = popen(cmd, "r");
        CHECK(f != NULL && fgets(dev, sizeof dev, f) != NULL);
        if (f) pclose(f);
        dev[strcspn(dev, "\n")] = 0;
        if (dev[0]) {
            CHECK_STATUS(replicore_vault_materialize_onto(vault, "vm-f", latest.id, "os", key, dev, NULL,
                                                          NULL),
                         REPLICORE_OK);
            CHECK(holds(dev, os, OS_LEN, 65536, 0x55));
            snprintf(cmd, sizeof cmd, "losetup -d %s", dev);
            CHECK(system(cmd) == 0);
        }
    } else {
        printf("NOT RUN: the loop-device target needs root and a free loop device\n");
    }

    /* Pins, and the pinned key. */
    CHECK_STATUS(replicore_vault_pins(vault, "vm-f", NULL, NULL, &n), REPLICORE_OK);
    CHECK(n == 0);
    CHECK_STATUS(replicore_vault_pin(vault, "vm-f", latest.parent, 1), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pins(vault, "vm-f", on_pin, pin, &n), REPLICORE_OK);
    CHECK(n == 1 && memcmp(pin, latest.parent, 32) == 0);
    CHECK_STATUS(replicore_vault_pinned_key(vault, "vm-f", pinned_vk, &pinned), REPLICORE_OK);
    CHECK(pinned == 0);
    CHECK_STATUS(replicore_vault_pin_key(vault, "vm-f", vk, 0), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pinned_key(vault, "vm-f", pinned_vk, &pinned), REPLICORE_OK);
    CHECK(pinned == 1 && memcmp(pinned_vk, vk, 32) == 0);
    CHECK_STATUS(replicore_vault_pinned_key(vault, "vm-f", NULL, &pinned), REPLICORE_ERR_NULL_PARAMETER);

    replicore_vault_free(vault);
    replicore_log_free(log);
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
