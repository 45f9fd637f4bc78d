//! Retention in the vault: the plan, pins, prune (merging pruned points into their successors)
//! and garbage collection, without the key.
//!
//! Protects: for random chains and policies, every point the plan keeps materializes byte for
//! byte as before prune and GC, and nothing else is left; the chain of shipped headers still
//! verifies and the chain goes on (ingest after prune, a pruned bundle again is a no-op); after
//! GC the packs hold the blobs the kept points need, within a quarter of slack, and no more; GC
//! never runs beside a reader and keeps a blob that an ingest deduplicated against after it was
//! pruned; tampering with the merged headers is found by verify.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use proptest::prelude::*;
use replicore::bundle::{Bundle, BundleKind};
use replicore::crypto::Key;
use replicore::log::MarkerKind;
use replicore::policy::{RetentionPolicy, Rule};
use replicore::vault::{Selector, Vault};
use replicore::{BlobId, ErrorKind, ExtentMap, PointId, Source};

const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn ingest_all(v: &Vault, bundles: &[PathBuf]) {
    for b in bundles {
        assert!(v.ingest(b, &mut ok).unwrap().added);
    }
}

/// Fails every listed point over and compares both disks with the models.
fn check_points(v: &Vault, key: &Key, ids: &[PointId], models: &[&Vec<Vec<u8>>], out: &Path) {
    for (id, model) in ids.iter().zip(models) {
        let dir = out.join(id.to_hex());
        std::fs::create_dir_all(&dir).unwrap();
        v.failover("vm-01", Selector::Id(*id), key, &dir, &mut ok)
            .unwrap();
        assert_eq!(std::fs::read(dir.join("os.img")).unwrap(), model[0]);
        assert_eq!(std::fs::read(dir.join("data.img")).unwrap(), model[1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The blobs (and their stored bytes with entry headers) that a vault holding only the kept
/// points needs, from the bundles themselves: each kept point's changes since the kept point
/// before it, folded (from the base for the first kept point).
fn needed(bundles: &[PathBuf], keep: &[bool]) -> (HashSet<BlobId>, u64) {
    let opened: Vec<Bundle> = bundles.iter().map(|b| Bundle::open(b).unwrap()).collect();
    let mut sizes: HashMap<BlobId, u64> = HashMap::new();
    for b in &opened {
        b.for_each_blob(|id, s| {
            sizes.insert(*id, 40 + s.len() as u64);
            Ok(())
        })
        .unwrap();
    }
    let mut need = HashSet::new();
    let mut run: Option<Vec<ExtentMap<Source>>> = None;
    for (b, &k) in opened.iter().zip(keep) {
        let maps: Vec<ExtentMap<Source>> = b.disks().iter().map(|d| d.extents.clone()).collect();
        match run.as_mut() {
            None => run = Some(maps),
            Some(r) => {
                for (m, n) in r.iter_mut().zip(&maps) {
                    m.overlay(n).unwrap();
                }
            }
        }
        if k {
            for m in run.take().unwrap() {
                for e in m.iter() {
                    if let Source::Blob { id, .. } = e.source {
                        need.insert(id);
                    }
                }
            }
        }
    }
    let bytes = need.iter().map(|id| sizes[id]).sum();
    (need, bytes)
}

fn policy(window: u32, app: Option<u32>, extra: u32, keep_last: u32) -> RetentionPolicy {
    RetentionPolicy {
        window_hours: window,
        app_every_hours: app,
        extra_hourly: extra,
        keep_last,
    }
}

/// One random case: a chain 20 minutes a point, a policy, a time, maybe a pin.
fn prune_and_gc_keep_exactly_the_planned_points(
    seed: u64,
    intervals: u32,
    p: RetentionPolicy,
    later: u64,
    pin: Option<usize>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history_every(dir.path(), intervals, seed, 1200);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let before = v.points("vm-01").unwrap();
    if let Some(i) = pin {
        v.pin("vm-01", before[i % before.len()].id).unwrap();
    }
    let now = before.last().unwrap().time + Duration::from_secs(later);
    let dry = v.plan_prune(&p, now).unwrap();
    assert!(!dry.applied);
    assert_eq!(
        v.points("vm-01").unwrap(),
        before,
        "a dry run changes nothing"
    );
    let report = v.prune(&p, now).unwrap();
    assert!(report.applied);
    assert_eq!(
        report.groups, dry.groups,
        "prune does what the dry run planned"
    );
    let rules: Vec<Rule> = report.groups[0].points.iter().map(|x| x.rule).collect();
    let keep: Vec<bool> = rules.iter().map(|r| r.keeps()).collect();
    assert!(keep[keep.len() - 1]);
    if let Some(i) = pin {
        assert_eq!(rules[i % rules.len()], Rule::Pinned);
    }
    let kept_ids: Vec<PointId> = before
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| p.id)
        .collect();
    let kept_models: Vec<&Vec<Vec<u8>>> = models
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(m, _)| m)
        .collect();
    let after = v.points("vm-01").unwrap();
    assert_eq!(after.iter().map(|p| p.id).collect::<Vec<_>>(), kept_ids);
    assert_eq!(after[0].kind, BundleKind::Base);
    assert_eq!(after[0].parent, PointId::ZERO);
    for w in after.windows(2) {
        assert_eq!(w[1].parent, w[0].id);
        assert_eq!(w[1].kind, BundleKind::Incremental);
    }
    let merged: u64 = after.iter().map(|p| p.merged).sum();
    assert_eq!(merged as usize, report.pruned());
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
    let out = dir.path().join("out");
    check_points(&v, &g.key, &kept_ids, &kept_models, &out);
    // Pruning again at the same time changes nothing.
    let again = v.prune(&p, now).unwrap();
    assert_eq!(again.pruned(), 0);
    let gc = v.gc(&mut ok).unwrap();
    let (need, need_bytes) = needed(&bundles, &keep);
    assert_eq!(gc.live_blobs as usize, need.len(), "{gc:?}");
    assert_eq!(gc.live_bytes, need_bytes, "{gc:?}");
    assert!(gc.bytes_after >= need_bytes);
    // No pack is more than a quarter dead; each has a 48-byte frame.
    assert!(
        gc.bytes_after <= need_bytes + need_bytes / 3 + 48 * gc.packs_after,
        "{gc:?}"
    );
    let r = v.verify(Some(&g.key), &mut ok).unwrap();
    assert!(r.is_ok(), "{r:?}");
    check_points(&v, &g.key, &kept_ids, &kept_models, &out);
    // A second GC finds nothing more to do.
    let gc2 = v.gc(&mut ok).unwrap();
    assert_eq!(
        (gc2.packs_removed, gc2.packs_rewritten, gc2.blobs_removed),
        (0, 0, 0)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn kept_points_are_byte_identical_after_prune_and_gc(
        seed in 1u64..1 << 40,
        intervals in 2u32..7,
        window in 1u32..4,
        app in proptest::option::of(1u32..3),
        extra in 0u32..4,
        keep_last in 1u32..4,
        later in 0u64..4 * 3600,
        pin in proptest::option::of(0usize..30),
    ) {
        prune_and_gc_keep_exactly_the_planned_points(
            seed, intervals, policy(window, app, extra, keep_last), later, pin,
        );
    }
}

#[test]
fn everything_past_a_short_window_goes_and_the_newest_becomes_the_base() {
    // A chain with app-consistent points at a few places; far in the future only the newest
    // point and the newest app-consistent point stay.
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history_every(dir.path(), 5, 21, 1200);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let before = v.points("vm-01").unwrap();
    let now = before.last().unwrap().time + Duration::from_secs(100 * 3600);
    let r = v.prune(&policy(1, None, 0, 1), now).unwrap();
    let app = before
        .iter()
        .rposition(|p| p.consistency == MarkerKind::App);
    let want: Vec<usize> = app
        .into_iter()
        .filter(|&i| i + 1 != before.len())
        .chain([before.len() - 1])
        .collect();
    let after = v.points("vm-01").unwrap();
    assert_eq!(
        after.iter().map(|p| p.id).collect::<Vec<_>>(),
        want.iter().map(|&i| before[i].id).collect::<Vec<_>>()
    );
    assert!(r.groups[0].merges[0].new_base);
    assert_eq!(r.kept(), want.len());
    let ms: Vec<&Vec<Vec<u8>>> = want.iter().map(|&i| &models[i]).collect();
    check_points(
        &v,
        &g.key,
        &after.iter().map(|p| p.id).collect::<Vec<_>>(),
        &ms,
        dir.path(),
    );
}

#[test]
fn pinned_points_stay_until_unpinned() {
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history_every(dir.path(), 3, 7, 1200);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let before = v.points("vm-01").unwrap();
    let pinned = before[1].id;
    v.pin("vm-01", pinned).unwrap();
    v.pin("vm-01", pinned).unwrap(); // again: a no-op
    assert_eq!(v.pins("vm-01").unwrap(), [pinned]);
    let e = v.pin("vm-01", PointId([9; 32])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let now = before.last().unwrap().time + Duration::from_secs(1000 * 3600);
    let p = policy(1, None, 0, 1);
    v.prune(&p, now).unwrap();
    let ids: Vec<PointId> = v.points("vm-01").unwrap().iter().map(|p| p.id).collect();
    assert!(ids.contains(&pinned));
    check_points(&v, &g.key, &[pinned], &[&models[1]], dir.path());
    v.unpin("vm-01", pinned).unwrap();
    v.unpin("vm-01", pinned).unwrap(); // again: a no-op
    assert!(v.pins("vm-01").unwrap().is_empty());
    v.prune(&p, now).unwrap();
    let ids: Vec<PointId> = v.points("vm-01").unwrap().iter().map(|p| p.id).collect();
    assert!(!ids.contains(&pinned));
}

#[test]
fn the_chain_goes_on_after_pruning_and_a_pruned_bundle_again_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let (mut g, bundles, mut models) = history_every(dir.path(), 3, 8, 1200);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let last = v.points("vm-01").unwrap().last().unwrap().time;
    v.prune(
        &policy(1, None, 0, 2),
        last + Duration::from_secs(30 * 3600),
    )
    .unwrap();
    v.gc(&mut ok).unwrap();
    assert_eq!(v.points("vm-01").unwrap().len(), 2);
    for b in &bundles {
        assert!(!v.ingest(b, &mut ok).unwrap().added, "{}", b.display());
    }
    g.write(1, 7, b"after pruning");
    models.push(g.mark(MarkerKind::App, "later", 100_000));
    let next = g.rotate_and_ship(99);
    ingest_all(&v, &next);
    let after = v.points("vm-01").unwrap();
    assert_eq!(after.len(), 3);
    check_points(
        &v,
        &g.key,
        &[after[2].id],
        &[models.last().unwrap()],
        dir.path(),
    );
    assert!(v.verify(Some(&g.key), &mut ok).unwrap().is_ok());
}

#[test]
fn gc_keeps_a_blob_that_an_ingest_reused_after_its_points_were_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(5));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let cs = CS as usize;
    let x = noise(cs, 77);
    // B writes X over chunk 0 of the data disk; C overwrites it: only B references X.
    g.write(1, 0, &x);
    g.mark(MarkerKind::Crash, "b", 60);
    g.write(1, 0, &noise(cs, 78));
    g.mark(MarkerKind::Crash, "c", 7200);
    ingest_all(&v, &g.rotate_and_ship(0));
    let now = at(7200 + 1800);
    let r = v.prune(&policy(1, None, 0, 1), now).unwrap();
    assert_eq!(r.pruned(), 2);
    // D writes X again: ingest finds X in a pack (dead since the prune) and stores nothing.
    g.write(1, 0, &x);
    let d_model = g.mark(MarkerKind::Crash, "d", 7300);
    let d = g.rotate_and_ship(1);
    let ing = v.ingest(&d[0], &mut ok).unwrap();
    assert_eq!(
        (ing.blobs_stored, ing.blobs_deduplicated),
        (0, 1),
        "{ing:?}"
    );
    // GC never runs beside a reader: a failover holding the vault keeps it out.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let d_id = v.points("vm-01").unwrap().last().unwrap().id;
    std::thread::scope(|s| {
        let out = dir.path().join("held");
        std::fs::create_dir(&out).unwrap();
        let v = &v;
        let key = &g.key;
        let d_model = &d_model;
        let reader = s.spawn(move || {
            let mut first = true;
            v.failover("vm-01", Selector::Id(d_id), key, &out, &mut |_, _| {
                if first {
                    first = false;
                    held_tx.send(()).unwrap();
                    rx.recv().unwrap();
                }
                true
            })
            .unwrap();
            assert_eq!(std::fs::read(out.join("data.img")).unwrap(), d_model[1]);
        });
        held_rx.recv().unwrap();
        assert_eq!(v.gc(&mut ok).unwrap_err().kind(), ErrorKind::Locked);
        assert_eq!(
            v.prune(&policy(1, None, 0, 1), now).unwrap_err().kind(),
            ErrorKind::Locked
        );
        tx.send(()).unwrap();
        reader.join().unwrap();
    });
    // X is live again: GC keeps it, and removes only C's chunk (the small packs it combines
    // copy X with the rest).
    let gc = v.gc(&mut ok).unwrap();
    assert_eq!(gc.blobs_removed, 1, "{gc:?}");
    assert!(v.verify(Some(&g.key), &mut ok).unwrap().is_ok());
    check_points(&v, &g.key, &[d_id], &[&d_model], dir.path());
}

#[test]
fn gc_rewrites_mostly_dead_packs_and_removes_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(6));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let cs = CS as usize;
    // One pack with four chunks, three of which the next point overwrites.
    for c in 0..3 {
        g.write(1, (c * cs) as u64, &noise(cs, 100 + c as u64));
    }
    g.write(0, 0, &noise(cs, 200));
    g.mark(MarkerKind::Crash, "a", 60);
    ingest_all(&v, &g.rotate_and_ship(0));
    for c in 0..3 {
        g.write(1, (c * cs) as u64, &noise(cs, 300 + c as u64));
    }
    let model = g.mark(MarkerKind::Crash, "b", 7200);
    ingest_all(&v, &g.rotate_and_ship(1));
    let r = v.prune(&policy(1, None, 0, 1), at(7300)).unwrap();
    assert_eq!(r.pruned(), 2);
    let gc = v.gc(&mut ok).unwrap();
    assert!(gc.packs_rewritten >= 1, "{gc:?}");
    assert!(gc.bytes_after < gc.bytes_before, "{gc:?}");
    assert_eq!(gc.packs_written, 1, "{gc:?}");
    assert!(v.verify(Some(&g.key), &mut ok).unwrap().is_ok());
    let id = v.points("vm-01").unwrap()[0].id;
    check_points(&v, &g.key, &[id], &[&model], dir.path());
}

#[test]
fn verify_finds_a_merged_header_tampered_with_or_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bundles, _) = history_every(dir.path(), 3, 9, 1200);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let last = v.points("vm-01").unwrap().last().unwrap().time;
    v.prune(
        &policy(1, None, 0, 1),
        last + Duration::from_secs(50 * 3600),
    )
    .unwrap();
    let files = replicore_files(&v.points_dir("vm-01"));
    assert_eq!(files.len(), 1);
    let good = std::fs::read(&files[0]).unwrap();
    // The summary (docs/FORMAT.md §15.4): record count at 16, shipped count at 24, the point's
    // header at 82 (its length at 80), then the disk list; the records follow.
    let u16_at =
        |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let count = u64::from_le_bytes(good[16..24].try_into().unwrap()) as usize;
    assert_eq!(count, bundles.len());
    let mut at = 82 + u16_at(&good, 80);
    let disks = u32::from_le_bytes(good[at..at + 4].try_into().unwrap());
    at += 4;
    for _ in 0..disks {
        at += 2 + u16_at(&good, at) + 8;
    }
    // The first record: kind and 7 reserved bytes, its header's length and bytes, ...
    let first_header = at + 10;
    let first_len = u16_at(&good, at + 8);
    let retrail = |mut body: Vec<u8>| {
        body.truncate(body.len() - 32);
        let h = blake3::hash(&body);
        body.extend_from_slice(h.as_bytes());
        body
    };
    // A flipped byte in the oldest record's header, trailer recomputed: the next record no
    // longer names it.
    let mut flipped = good.clone();
    flipped[first_header + first_len - 1] ^= 1;
    // The oldest record left out (a spliced chain), counts lowered, trailer recomputed.
    let ml_at = first_header + first_len;
    let ml = u64::from_le_bytes(good[ml_at..ml_at + 8].try_into().unwrap()) as usize;
    let tl_at = ml_at + 8 + ml;
    let tl = u64::from_le_bytes(good[tl_at..tl_at + 8].try_into().unwrap()) as usize;
    let record_end = tl_at + 8 + tl + 64;
    let mut spliced = good[..at].to_vec();
    spliced[16..24].copy_from_slice(&(count as u64 - 1).to_le_bytes());
    spliced[24..32].copy_from_slice(&(count as u64 - 1).to_le_bytes());
    spliced.extend_from_slice(&good[record_end..]);
    for bad in [retrail(flipped), retrail(spliced)] {
        std::fs::write(&files[0], bad).unwrap();
        let r = v.verify(None, &mut ok).unwrap();
        assert!(!r.is_ok(), "tampering not found");
    }
    std::fs::write(&files[0], good).unwrap();
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
}

fn replicore_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn an_invalid_policy_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    for (p, field) in [
        (policy(0, None, 0, 1), "window_hours"),
        (policy(73, None, 0, 1), "window_hours"),
        (policy(24, Some(13), 0, 1), "app_every_hours"),
        (policy(24, None, 25, 1), "extra_hourly"),
        (policy(24, None, 0, 0), "keep_last"),
    ] {
        for e in [
            v.prune(&p, at(0)).unwrap_err(),
            v.plan_prune(&p, at(0)).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.to_string().contains(field), "{e}");
        }
    }
    // An empty vault: nothing to do.
    let r = v.prune(&RetentionPolicy::default(), at(0)).unwrap();
    assert_eq!((r.pruned(), r.kept()), (0, 0));
    assert_eq!(v.gc(&mut ok).unwrap().packs_after, 0);
}

/// Runs `f` while `reader` walks the points of group `big` (holding the vault's shared lock).
fn while_busy(reader: &Vault, f: impl FnOnce()) {
    let (started, start) = std::sync::mpsc::channel::<()>();
    let (finished, done) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut first = true;
            reader
                .each_point("big", |_| {
                    if std::mem::take(&mut first) {
                        started.send(()).unwrap();
                        done.recv().unwrap();
                    }
                    Ok(())
                })
                .unwrap();
        });
        start.recv().unwrap();
        f();
        finished.send(()).unwrap();
    });
}

#[test]
fn gc_combines_many_small_packs_ingests_could_not() {
    use replicore::bundle::{SeedOptions, seed, ship};
    // An 8 MiB disk; each point rewrites 3 MiB of it with new bytes, so every ingest writes one
    // small (3 MiB) pack.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    let disk = std::cell::RefCell::new(noise(8 << 20, 5));
    std::fs::write(&img, &*disk.borrow()).unwrap();
    let k = key(9);
    let opts = SeedOptions::default();
    let base = dir.path().join("base.rcb");
    let mut s = seed(
        "big",
        &[("d", img.as_path())],
        &k,
        dir.path().join("l.rclog"),
        &base,
        &opts,
        &mut ok,
    )
    .unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    // Another operation reads the vault while the points come in (a slow reader of its
    // points, in another thread): the ingests cannot combine their packs (that needs the
    // vault to themselves), so GC does.
    let reader = Vault::open(v.path()).unwrap();
    v.ingest(&base, &mut ok).unwrap();
    let packs = |v: &Vault| {
        std::fs::read_dir(v.path().join("packs"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "rcpack")
            })
            .count()
    };
    let combined = std::cell::Cell::new(0);
    let mut round = |i: u64| {
        let at = (i % 2) * (4 << 20);
        let data = noise(3 << 20, 100 + 2 * i); // (noise's seeds 2k and 2k+1 agree)
        s.log.record_write(0, at, &data).unwrap();
        disk.borrow_mut()[at as usize..at as usize + data.len()].copy_from_slice(&data);
        s.log.mark(MarkerKind::Crash, "").unwrap();
        let sealed = dir.path().join(format!("s{i}.rclog"));
        s.log.rotate(&sealed).unwrap();
        for b in ship(
            &sealed,
            &k,
            &mut s.state,
            dir.path(),
            &Default::default(),
            &mut ok,
        )
        .unwrap()
        {
            let r = v.ingest(&b.path, &mut ok).unwrap();
            assert!(r.added);
            combined.set(combined.get() + r.packs_combined);
        }
    };
    // Twenty small packs of 3 MiB (one tier; the base's 8 MiB is in the next), no sorted index
    // naming them: idle, the sixteenth ingest would have combined them.
    while_busy(&reader, || (1..=20).for_each(&mut round));
    assert_eq!(combined.get(), 0);
    let before = packs(&v);
    assert!(before >= 21, "{before} packs");
    let gc = v.gc(&mut ok).unwrap();
    assert!(gc.packs_rewritten >= 20, "{gc:?}");
    assert!(
        packs(&v) <= before - 18,
        "{} packs after {before}: {gc:?}",
        packs(&v)
    );
    assert!(v.verify(Some(&k), &mut ok).unwrap().is_ok());
    let out = dir.path().join("last.img");
    let last = v.points("big").unwrap().last().unwrap().id;
    v.materialize("big", last, "d", &k, &out, &mut ok).unwrap();
    assert!(std::fs::read(&out).unwrap() == *disk.borrow());
    let again = v.gc(&mut ok).unwrap();
    assert_eq!(
        (again.packs_rewritten, again.packs_written),
        (0, 0),
        "{again:?}"
    );
    // The vault idle between ingests: they combine small packs themselves, sixteen at a time
    // (no GC): the packs directory does not grow with the points.
    let after_gc = packs(&v);
    for i in 21..=52 {
        round(i);
        // At most fifteen small packs, beside one new large pack per sixteen combined.
        let outputs = (combined.get() / 16) as usize;
        assert!(
            packs(&v) <= after_gc + outputs + 15,
            "{} packs after {after_gc}, round {i}, {} combined",
            packs(&v),
            combined.get()
        );
    }
    assert!(combined.get() >= 32, "{} packs combined", combined.get());
    assert!(v.verify(Some(&k), &mut ok).unwrap().is_ok());
    std::fs::remove_file(&out).unwrap();
    let last = v.points("big").unwrap().last().unwrap().id;
    v.materialize("big", last, "d", &k, &out, &mut ok).unwrap();
    assert!(std::fs::read(&out).unwrap() == *disk.borrow());
}
