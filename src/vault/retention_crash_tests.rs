//! Crash safety of prune and GC: each is failed at every file operation in turn (the disk dead
//! from there on, through `fsutil::fault`), the vault reopened and checked.
//!
//! Protects: after a prune cut anywhere, the chain holds every kept point and only points of
//! the original chain, in order; verify is clean with the key; every point materializes as
//! its model; pruning again finishes the job. After a GC cut anywhere, the same, and GC again
//! ends where an uninterrupted GC ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Vault;
use crate::ErrorKind;
use crate::bundle::{SeedOptions, seed, ship};
use crate::crypto::{Key, KeyFile, MasterKey, Secret};
use crate::fsutil::fault;
use crate::id::PointId;
use crate::log::MarkerKind;
use crate::policy::RetentionPolicy;

const T0: u64 = 1_700_000_000;

pub(super) fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// A vault at `dir/pristine` holding a chain of a one-disk group, points an hour apart, some
/// app-consistent; the disk's model at every point.
fn chain(dir: &Path) -> (PathBuf, Key, Vec<Vec<u8>>) {
    let (bundles, key, models) = bundles(dir, "g");
    let root = dir.join("pristine");
    let v = Vault::create(&root).unwrap();
    for b in &bundles {
        v.ingest(b, &mut |_, _| true).unwrap();
    }
    (root, key, models)
}

/// The bundles of such a chain of group `group` (base first, in `dir`), its key, and the
/// disk's model at every point.
pub(super) fn bundles(dir: &Path, group: &str) -> (Vec<PathBuf>, Key, Vec<Vec<u8>>) {
    let img = dir.join("d.img");
    let mut disk: Vec<u8> = (0..400_000u32).map(|i| (i * 13 % 253) as u8).collect();
    std::fs::write(&img, &disk).unwrap();
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([4; 32]))).unwrap();
    let opts = SeedOptions {
        chunk_size: 16 << 10,
        time: Some(t(0)),
        ..SeedOptions::default()
    };
    let ok = &mut |_, _| true;
    let mut bundles = vec![dir.join("base.rcb")];
    let disks = [("d", img.as_path())];
    let mut s = seed(
        group,
        &disks,
        &key,
        dir.join("l.rclog"),
        &bundles[0],
        &opts,
        ok,
    )
    .unwrap();
    let mut models = vec![disk.clone()];
    for i in 1..=8u64 {
        // Overlapping writes: what pruned points wrote is overwritten, so GC has work.
        let at = (i % 2) * 8192;
        let data = vec![i as u8; 20_000 + 3_000 * i as usize];
        s.log.record_write(0, at, &data).unwrap();
        disk[at as usize..at as usize + data.len()].copy_from_slice(&data);
        let kind = if i % 3 == 0 {
            MarkerKind::App
        } else {
            MarkerKind::Crash
        };
        s.log.mark_at(kind, "", t(i * 3600)).unwrap();
        models.push(disk.clone());
    }
    let sealed = dir.join("s.rclog");
    s.log.rotate(&sealed).unwrap();
    let shipped = ship(&sealed, &key, &mut s.state, dir, &Default::default(), ok).unwrap();
    bundles.extend(shipped.into_iter().map(|b| b.path));
    (bundles, key, models)
}

/// Another process (an operator) prunes the chain of `bundles` to its newest point, as of
/// `hours` after its base, and collects garbage: returns the points pruned and GC's report.
pub(super) fn operator_prunes_and_collects(root: &Path, hours: u64) -> (usize, super::GcReport) {
    let operator = Vault::open(root).unwrap();
    let policy = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last: 1,
    };
    let now = t(hours * 3600 + 600);
    let pruned = operator.prune(&policy, now).unwrap().pruned();
    (pruned, operator.gc(&mut |_, _| true).unwrap())
}

pub(super) fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// The vault holds, in order, a sub-list of `all` that contains every id of `kept`; each
/// point materializes as its model; verify with the key is clean. Returns the ids held.
fn check(
    root: &Path,
    key: &Key,
    all: &[PointId],
    kept: &[PointId],
    models: &[Vec<u8>],
) -> Vec<PointId> {
    let v = Vault::open(root).unwrap();
    let ids: Vec<PointId> = v.points("g").unwrap().iter().map(|p| p.id).collect();
    let mut at = all.iter();
    for id in &ids {
        assert!(
            at.any(|a| a == id),
            "{id:?} is not in the original chain, in order"
        );
    }
    for k in kept {
        assert!(ids.contains(k), "kept point {k:?} lost");
    }
    let r = v.verify(Some(key), &mut |_, _| true).unwrap();
    assert!(r.is_ok(), "{r:?}");
    let out = root.with_extension("img");
    for id in &ids {
        let i = all.iter().position(|a| a == id).unwrap();
        v.materialize("g", *id, "d", key, &out, &mut |_, _| true)
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), models[i], "point {i}");
        std::fs::remove_file(&out).unwrap();
    }
    ids
}

#[test]
fn prune_and_gc_cut_at_any_file_operation_keep_every_kept_point() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (pristine, key, models) = chain(dir.path());
    let policy = RetentionPolicy {
        window_hours: 2,
        app_every_hours: None,
        extra_hourly: 1,
        keep_last: 1,
    };
    let now = t(8 * 3600 + 600);
    let v = Vault::open(&pristine).unwrap();
    let all: Vec<PointId> = v.points("g").unwrap().iter().map(|p| p.id).collect();
    let plan = v.plan_prune(&policy, now).unwrap();
    let kept: Vec<PointId> = plan.groups[0]
        .points
        .iter()
        .filter(|p| p.rule.keeps())
        .map(|p| p.point.id)
        .collect();
    assert!(kept.len() >= 3 && kept.len() < all.len() - 3, "{kept:?}");
    // The reference: prune and GC uninterrupted.
    let reference = dir.path().join("reference");
    copy_dir(&pristine, &reference);
    let v = Vault::open(&reference).unwrap();
    v.prune(&policy, now).unwrap();
    let want = v.gc(&mut |_, _| true).unwrap();
    let root = dir.path().join("v");
    let mut cuts = 0;
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = Vault::open(&root).unwrap();
        fault::plan(Some((&root, n)));
        let r = v.prune(&policy, now);
        fault::plan(None);
        let held = check(&root, &key, &all, &kept, &models);
        let v = Vault::open(&root).unwrap();
        match r {
            Ok(_) => {
                assert_eq!(held, kept);
                break;
            }
            Err(e) => {
                cuts += 1;
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                v.prune(&policy, now).unwrap();
                assert_eq!(check(&root, &key, &all, &kept, &models), kept);
            }
        }
    }
    assert!(cuts >= 4, "{cuts} cuts");
    // GC, from the pruned vault.
    let pruned = dir.path().join("pruned");
    copy_dir(&pristine, &pruned);
    Vault::open(&pruned).unwrap().prune(&policy, now).unwrap();
    let mut gc_cuts = 0;
    for n in 0.. {
        copy_dir(&pruned, &root);
        let v = Vault::open(&root).unwrap();
        fault::plan(Some((&root, n)));
        let r = v.gc(&mut |_, _| true);
        fault::plan(None);
        assert_eq!(check(&root, &key, &all, &kept, &models), kept);
        let v = Vault::open(&root).unwrap();
        match r {
            Ok(_) => break,
            Err(e) => {
                gc_cuts += 1;
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                let done = v.gc(&mut |_, _| true).unwrap();
                assert_eq!(done.live_bytes, want.live_bytes);
                // Once finished, a GC finds nothing left to remove.
                let again = v.gc(&mut |_, _| true).unwrap();
                assert_eq!(
                    (again.packs_removed, again.packs_rewritten),
                    (0, 0),
                    "{done:?} {again:?} {n}"
                );
                assert!(again.bytes_after <= want.bytes_after, "{again:?} {want:?}");
            }
        }
    }
    assert!(gc_cuts >= 4, "{gc_cuts} cuts");
}

/// Compaction cut at every file operation: every kept point still reads as its model (the
/// first file old or compacted, both the same map), verify is clean, and compacting again
/// finishes the job: one signed checkpoint standing for every shipped point before it.
#[test]
fn compaction_cut_at_any_file_operation_keeps_every_point() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (pristine, key, models) = chain(dir.path());
    let policy = RetentionPolicy {
        window_hours: 2,
        app_every_hours: None,
        extra_hourly: 1,
        keep_last: 1,
    };
    let now = t(8 * 3600 + 600);
    let all: Vec<PointId> = Vault::open(&pristine)
        .unwrap()
        .points("g")
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    let pruned = dir.path().join("pruned");
    copy_dir(&pristine, &pruned);
    Vault::open(&pruned).unwrap().prune(&policy, now).unwrap();
    let kept: Vec<PointId> = Vault::open(&pruned)
        .unwrap()
        .points("g")
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    let root = dir.path().join("v");
    let mut cuts = 0;
    for n in 0.. {
        copy_dir(&pruned, &root);
        let v = Vault::open(&root).unwrap();
        fault::plan(Some((&root, n)));
        let r = v.compact("g", &key);
        fault::plan(None);
        assert_eq!(check(&root, &key, &all, &kept, &models), kept);
        let v = Vault::open(&root).unwrap();
        let done = match r {
            Ok(done) => {
                assert!(done.records_before > 1, "{done:?}");
                break;
            }
            Err(e) => {
                cuts += 1;
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                v.compact("g", &key).unwrap()
            }
        };
        let first = &v.points("g").unwrap()[0];
        assert!(first.checkpoint, "{done:?}");
        assert_eq!(check(&root, &key, &all, &kept, &models), kept);
    }
    assert!(cuts >= 3, "{cuts} cuts");
}
