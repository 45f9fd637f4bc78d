/*
 * Retention from C: the plan as a pure function (every rule, an invalid policy, NULL
 * arguments); a one-disk group with eight points an hour apart, seeded, shipped and ingested;
 * the vault's dry run matching the pure plan, a pin, prune, GC; every kept point failed over
 * and compared byte for byte with the disk as it was; verify clean with the key after each
 * step; the pruned points gone and the chain still taking new points.
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "replicore.h"

#define DISK_LEN (400000u)
#define POINTS 8
#define HOUR_NS 3600000000000ull
/* 2026-11-23 00:00 UTC, in nanoseconds. */
#define T0_NS 1795392000000000000ull


struct names {
    char paths[POINTS + 2][512];
    int n;
};

static int on_bundle(void *user, const char *path, uint64_t seq) {
    struct names *b = user;
    (void)seq;
    if (b->n < POINTS + 2) snprintf(b->paths[b->n++], sizeof b->paths[0], "%s", path);
    return 0;
}

static int on_group(void *user, const char *group) {
    int *seen = user;
    *seen += strcmp(group, "vm-r") == 0 ? 1 : 100;
    return 0;
}

static int stop_at_first(void *user, const char *group) {
    (void)user;
    (void)group;
    return 1;
}

static void pure_plan(void) {
    replicore_retention_policy p = {.window_hours = 2, .app_every_hours = 0, .extra_hourly = 1, .keep_last = 1};
    replicore_plan_point pts[5] = {
        {T0_NS, 1, 0},                /* old, the newest app point */
        {T0_NS + 1 * HOUR_NS, 0, 1},  /* old, pinned */
        {T0_NS + 2 * HOUR_NS, 0, 0},  /* old: expired */
        {T0_NS + 4 * HOUR_NS, 0, 0},  /* in the extra hour past the window */
        {T0_NS + 6 * HOUR_NS, 0, 0},  /* the newest */
    };
    uint32_t rules[5];
    uint64_t now = T0_NS + 6 * HOUR_NS + 30 * 60000000000ull;
    CHECK_STATUS(replicore_retention_plan(pts, 5, &p, now, rules), REPLICORE_OK);
    CHECK(rules[0] == REPLICORE_RULE_NEWEST_APP);
    CHECK(rules[1] == REPLICORE_RULE_PINNED);
    CHECK(rules[2] == REPLICORE_RULE_EXPIRED);
    CHECK(rules[3] == REPLICORE_RULE_EXTRA_HOURLY);
    CHECK(rules[4] == REPLICORE_RULE_NEWEST);
    CHECK_STATUS(replicore_retention_plan(NULL, 0, &p, now, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_retention_plan(NULL, 5, &p, now, rules), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_retention_plan(pts, 5, &p, now, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_retention_plan(pts, 5, NULL, now, rules), REPLICORE_ERR_NULL_PARAMETER);
    p.window_hours = 80;
    CHECK_STATUS(replicore_retention_plan(pts, 5, &p, now, rules), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "window_hours") != NULL);
    CHECK_STATUS(replicore_retention_policy_validate(&p), REPLICORE_ERR_INVALID_ARGUMENT);
    p.window_hours = 72;
    p.keep_last = 0;
    CHECK_STATUS(replicore_retention_policy_validate(&p), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "keep_last") != NULL);
    CHECK_STATUS(replicore_retention_policy_validate(NULL), REPLICORE_ERR_NULL_PARAMETER);
}

int main(void) {
    char dir[] = "/tmp/replicore-c-retention-XXXXXX";
    char diskp[256], keyp[256], logp[256], statep[256], basep[256], sealedp[256], vaultp[256];
    char out[256], img[400];
    unsigned char *disk = malloc(DISK_LEN);
    unsigned char *models[POINTS + 1];
    uint8_t master[REPLICORE_MASTER_KEY_LEN];
    replicore_key *key = NULL;
    replicore_log *log = NULL;
    replicore_vault *vault = NULL;
    replicore_tracker tracker;
    replicore_point_info before[POINTS + 2], after[POINTS + 2];
    replicore_plan_point facts[POINTS + 1];
    uint32_t rules[POINTS + 2], pure[POINTS + 1];
    replicore_prune_info dry, done;
    replicore_gc_info gc;
    struct names shipped = {0};
    uint64_t count = 0, damaged = 99, point = 0, images = 0;
    size_t n = 0, m = 0;

    pure_plan();
    if (mkdtemp(dir) == NULL || disk == NULL) return 2;
    snprintf(diskp, sizeof diskp, "%s/d.img", dir);
    snprintf(keyp, sizeof keyp, "%s/g.rckey", dir);
    snprintf(logp, sizeof logp, "%s/g.rclog", dir);
    snprintf(statep, sizeof statep, "%s/g.rcship", dir);
    snprintf(basep, sizeof basep, "%s/base.rcb", dir);
    snprintf(sealedp, sizeof sealedp, "%s/sealed.rclog", dir);
    snprintf(vaultp, sizeof vaultp, "%s/vault", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    for (size_t i = 0; i < DISK_LEN; i++) disk[i] = (unsigned char)(i * 7 + i / 1000);
    write_file(diskp, disk, DISK_LEN);

    CHECK_STATUS(replicore_master_key_generate(master), REPLICORE_OK);
    CHECK_STATUS(replicore_key_generate(keyp, master, NULL, &key), REPLICORE_OK);
    const char *names[] = {"d"};
    const char *paths[] = {diskp};
    CHECK_STATUS(replicore_seed("vm-r", names, paths, 1, key, logp, statep, basep, 16384, NULL, NULL, &log),
                 REPLICORE_OK);
    models[0] = malloc(DISK_LEN);
    memcpy(models[0], disk, DISK_LEN);
    /* Eight points an hour apart after the seed (taken now), each overwriting the front of
     * the disk; the third app-consistent. */
    const uint64_t t0 = (uint64_t)time(NULL) * 1000000000ull;
    for (int i = 1; i <= POINTS; i++) {
        unsigned char w[40000];
        memset(w, i, sizeof w);
        CHECK_STATUS(replicore_log_write(log, 0, (uint64_t)(i % 2) * 8192, w, sizeof w), REPLICORE_OK);
        memcpy(disk + (i % 2) * 8192, w, sizeof w);
        CHECK_STATUS(replicore_log_mark(log, i == 3 ? REPLICORE_MARKER_APP : REPLICORE_MARKER_CRASH, "",
                                        t0 + (uint64_t)i * HOUR_NS, &point),
                     REPLICORE_OK);
        models[i] = malloc(DISK_LEN);
        memcpy(models[i], disk, DISK_LEN);
    }
    CHECK_STATUS(replicore_log_rotate(log, sealedp, &tracker), REPLICORE_OK);
    CHECK_STATUS(replicore_ship(sealedp, key, statep, dir, on_bundle, &shipped, NULL, NULL, &count), REPLICORE_OK);
    CHECK(count == POINTS);
    CHECK_STATUS(replicore_vault_create(vaultp, &vault), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_ingest(vault, basep, NULL, NULL, NULL), REPLICORE_OK);
    for (int i = 0; i < shipped.n; i++)
        CHECK_STATUS(replicore_vault_ingest(vault, shipped.paths[i], NULL, NULL, NULL), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_points(vault, "vm-r", before, POINTS + 2, &n), REPLICORE_OK);
    CHECK(n == POINTS + 1);
    {
        int seen = 0;
        size_t groups = 0;
        CHECK_STATUS(replicore_vault_groups(vault, on_group, &seen, &groups), REPLICORE_OK);
        CHECK(seen == 1 && groups == 1);
        CHECK_STATUS(replicore_vault_groups(vault, stop_at_first, NULL, NULL), REPLICORE_ERR_CANCELLED);
        CHECK_STATUS(replicore_vault_groups(NULL, NULL, NULL, &groups), REPLICORE_ERR_NULL_PARAMETER);
    }

    /* Pin point 2; plan at point 8 + 30 min with a 2-hour window and one extra hour. */
    replicore_retention_policy p = {.window_hours = 2, .app_every_hours = 0, .extra_hourly = 1, .keep_last = 1};
    uint64_t now = t0 + POINTS * HOUR_NS + 30 * 60000000000ull;
    CHECK_STATUS(replicore_vault_pin(vault, "vm-r", before[2].id, 1), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_plan_prune(vault, "vm-r", &p, now, rules, POINTS + 2, &m), REPLICORE_OK);
    CHECK(m == n);
    for (size_t i = 0; i < n; i++) {
        facts[i].time_ns = before[i].time_ns;
        facts[i].app_consistent = before[i].consistency == 2;
        facts[i].pinned = i == 2;
    }
    CHECK_STATUS(replicore_retention_plan(facts, n, &p, now, pure), REPLICORE_OK);
    CHECK(memcmp(pure, rules, n * sizeof rules[0]) == 0);
    CHECK(rules[2] == REPLICORE_RULE_PINNED && rules[3] == REPLICORE_RULE_NEWEST_APP);
    CHECK(rules[0] == REPLICORE_RULE_EXPIRED && rules[POINTS] == REPLICORE_RULE_NEWEST);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += rules[i] != REPLICORE_RULE_EXPIRED;

    CHECK_STATUS(replicore_vault_prune(vault, &p, now, 1, &dry), REPLICORE_OK);
    CHECK(dry.groups == 1 && dry.points_kept == kept && dry.points_pruned == n - kept);
    CHECK_STATUS(replicore_vault_points(vault, "vm-r", after, POINTS + 2, &m), REPLICORE_OK);
    CHECK(m == n); /* a dry run changes nothing */
    CHECK_STATUS(replicore_vault_prune(vault, &p, now, 0, &done), REPLICORE_OK);
    CHECK(done.points_pruned == dry.points_pruned && done.merges == dry.merges && done.merges >= 2);
    CHECK_STATUS(replicore_vault_points(vault, "vm-r", after, POINTS + 2, &m), REPLICORE_OK);
    CHECK(m == kept);
    CHECK(after[0].kind == 1 && memcmp(after[0].parent, (uint8_t[32]){0}, 32) == 0);
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);
    CHECK_STATUS(replicore_vault_gc(vault, NULL, NULL, &gc), REPLICORE_OK);
    CHECK(gc.bytes_after < gc.bytes_before && gc.blobs_removed > 0 && gc.damaged_packs == 0);
    CHECK(gc.bytes_after >= gc.live_bytes);
    CHECK_STATUS(replicore_vault_verify(vault, key, NULL, NULL, NULL, &damaged), REPLICORE_OK);
    CHECK(damaged == 0);

    /* Every kept point, failed over, is the disk as it was. */
    for (size_t k = 0, i = 0; i < n; i++) {
        if (rules[i] == REPLICORE_RULE_EXPIRED) continue;
        char sub[300];
        snprintf(sub, sizeof sub, "%s/%zu", out, i);
        {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "mkdir -p %s", sub);
            CHECK(system(cmd) == 0);
        }
        CHECK(memcmp(after[k].id, before[i].id, 32) == 0);
        CHECK_STATUS(replicore_vault_failover(vault, "vm-r", REPLICORE_SELECT_ID, 0, after[k].id, key, sub, NULL,
                                              NULL, &images),
                     REPLICORE_OK);
        snprintf(img, sizeof img, "%s/d.img", sub);
        CHECK(images == 1 && same_file(img, models[i], DISK_LEN));
        k++;
    }
    /* The pruned point is gone: pinning it is NOT_FOUND; unpinning and pinning a kept one works. */
    CHECK_STATUS(replicore_vault_pin(vault, "vm-r", before[1].id, 1), REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_pin(vault, "vm-r", before[2].id, 0), REPLICORE_OK);
    CHECK_STATUS(replicore_vault_pin(vault, "vm-r", before[2].id, 0), REPLICORE_OK);
    /* Refusals. */
    CHECK_STATUS(replicore_vault_prune(NULL, &p, now, 0, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_prune(vault, NULL, now, 0, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_gc(NULL, NULL, NULL, NULL), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_pin(vault, "vm-r", NULL, 1), REPLICORE_ERR_NULL_PARAMETER);
    CHECK_STATUS(replicore_vault_plan_prune(vault, "nope", &p, now, NULL, 0, &m), REPLICORE_ERR_NOT_FOUND);
    CHECK_STATUS(replicore_vault_plan_prune(vault, "vm-r", &p, now, NULL, 3, &m), REPLICORE_ERR_NULL_PARAMETER);
    p.extra_hourly = 25;
    CHECK_STATUS(replicore_vault_prune(vault, &p, now, 0, NULL), REPLICORE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(replicore_last_error_message(), "extra_hourly") != NULL);

    replicore_vault_free(vault);
    replicore_log_free(log);
    replicore_key_free(key);
    free(disk);
    for (int i = 0; i <= POINTS; i++) free(models[i]);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
