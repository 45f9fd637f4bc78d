//! The sorted blob index kept current by ingests between GCs (`Vault::refresh_sorted`), with a
//! small refresh threshold: as a host runs it (a new process per ingest, or one agent's handle,
//! two groups at once), and cut at every file operation.
//!
//! Protects: a new handle reads fewer pack indexes than the threshold, whenever GC last ran,
//! and still takes every stored blob as held; the sorted index is sound after every ingest
//! (verify reads it whole, against the pack indexes); a refresh cut anywhere loses no point
//! and leaves a sound vault; refreshes of two groups' ingests racing each other leave one.

use std::path::Path;

use super::ingest::Held;
use super::retention_crash_tests::{bundles, copy_dir, operator_prunes_and_collects};
use super::sorted_index::SortedIndex;
use super::{PackIndex, Vault};
use crate::ErrorKind;
use crate::crypto::Key;
use crate::fsutil::fault;

const REFRESH: usize = 3;

fn ok(_: u64, _: u64) -> bool {
    true
}

fn open(root: &Path) -> Vault {
    let mut v = Vault::open(root).unwrap();
    v.sorted_refresh = REFRESH;
    v
}

/// Packs the vault's sorted index does not name.
fn unnamed(v: &Vault) -> usize {
    let named: Vec<_> = SortedIndex::open(&v.layout)
        .unwrap()
        .map(|s| s.packs().copied().collect())
        .unwrap_or_default();
    let on_disk = v.layout.pack_ids().unwrap();
    on_disk.iter().filter(|p| !named.contains(p)).count()
}

/// Every point of `group` materializes as its model; verify with the key is clean.
fn check(v: &Vault, group: &str, key: &Key, models: &[Vec<u8>], out: &Path) {
    let r = v.verify(Some(key), &mut ok).unwrap();
    assert!(r.is_ok(), "{r:?}");
    for (i, p) in v.points(group).unwrap().iter().enumerate() {
        v.materialize(group, p.id, "d", key, out, &mut ok).unwrap();
        assert_eq!(std::fs::read(out).unwrap(), models[i], "point {i}");
        std::fs::remove_file(out).unwrap();
    }
}

/// A new handle takes every blob stored as held (through the sorted index or the pack indexes
/// it does not name, which it reads: fewer than the threshold when `bounded`).
pub(super) fn every_blob_held_by_a_new_handle(root: &Path, bounded: bool) {
    let v = open(root);
    let index = v.ingest_index().unwrap();
    assert!(
        !bounded || index.packs.len() < REFRESH,
        "{} indexes read",
        index.packs.len()
    );
    let mut held = Held::new(&v.layout, &index);
    for id in v.layout.pack_ids().unwrap() {
        for e in PackIndex::load(&v.layout, &id).unwrap().entries {
            assert!(held.holds(&e.id, &e.hash), "blob {} not held", e.id);
        }
    }
}

#[test]
fn new_handles_keep_the_sorted_index_current_without_a_gc() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    for (i, b) in bundles.iter().enumerate() {
        // A new process per ingest, as the command line does.
        let r = open(&root).ingest(b, &mut ok).unwrap();
        assert!(r.added);
        let v = open(&root);
        assert!(unnamed(&v) < REFRESH, "after ingest {i}: {}", unnamed(&v));
        assert!(v.verify(None, &mut ok).unwrap().is_ok());
        every_blob_held_by_a_new_handle(&root, true);
    }
    assert!(SortedIndex::open(&open(&root).layout).unwrap().is_some());
    check(&open(&root), "g", &key, &models, &dir.path().join("m.img"));
    // One long-lived handle (an agent) refreshes the same way, and lets its indexes go.
    let root = dir.path().join("agent");
    Vault::create(&root).unwrap();
    let agent = open(&root);
    for b in &bundles {
        agent.ingest(b, &mut ok).unwrap();
        assert!(agent.ingest_index().unwrap().packs.len() < REFRESH);
    }
    assert!(unnamed(&agent) < REFRESH);
    check(&agent, "g", &key, &models, &dir.path().join("m.img"));
}

#[test]
fn a_refresh_cut_at_any_file_operation_loses_nothing() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    // Two points in, no sorted index yet: the third ingest's handle holds three packs.
    let pristine = dir.path().join("pristine");
    Vault::create(&pristine).unwrap();
    for b in &bundles[..2] {
        open(&pristine).ingest(b, &mut ok).unwrap();
    }
    assert!(
        SortedIndex::open(&open(&pristine).layout)
            .unwrap()
            .is_none()
    );
    let root = dir.path().join("v");
    let out = dir.path().join("m.img");
    let (mut cut_refreshes, mut cuts) = (0, 0);
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open(&root);
        fault::plan(Some((&root, n)));
        let r = v.ingest(&bundles[2], &mut ok);
        fault::plan(None);
        let v = open(&root);
        let points = v.points("g").unwrap().len();
        check(&v, "g", &key, &models, &out);
        let refreshed = SortedIndex::open(&v.layout).unwrap().is_some();
        match r {
            Ok(_) if refreshed => break,
            // Committed; the refresh was cut (not the ingest's failure).
            Ok(_) => {
                assert_eq!(points, 3);
                cut_refreshes += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                cuts += 1;
            }
        }
        // Whatever the cut, the rest of the chain goes in, and the index comes right.
        for b in &bundles[2..] {
            open(&root).ingest(b, &mut ok).unwrap();
        }
        let v = open(&root);
        assert!(unnamed(&v) < REFRESH);
        check(&v, "g", &key, &models, &out);
    }
    assert!(cuts >= 5 && cut_refreshes >= 3, "{cuts} {cut_refreshes}");
}

#[test]
fn refreshes_of_two_groups_ingesting_at_once_leave_a_sound_index() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&da).unwrap();
    std::fs::create_dir(&db).unwrap();
    let a = bundles(&da, "ga");
    let b = bundles(&db, "gb");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    std::thread::scope(|s| {
        // A new handle per ingest for one group, one long-lived handle for the other; an
        // ingest that meets the other's vault lock at a bad time retries.
        s.spawn(|| {
            for bundle in &a.0 {
                while let Err(e) = open(&root).ingest(bundle, &mut ok) {
                    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
                }
            }
        });
        s.spawn(|| {
            let agent = open(&root);
            for bundle in &b.0 {
                while let Err(e) = agent.ingest(bundle, &mut ok) {
                    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
                }
            }
        });
    });
    let v = open(&root);
    let out = dir.path().join("m.img");
    check(&v, "ga", &a.1, &a.2, &out);
    check(&v, "gb", &b.1, &b.2, &out);
    // The last refresh may have been skipped (the other group's replaced the index first).
    every_blob_held_by_a_new_handle(&root, false);
}

/// An agent's handle opened the sorted index before another process pruned and collected
/// garbage (removing packs and writing its own): the agent's next refresh does not write back
/// an index naming the removed packs; it lets its snapshot go and reads the vault again.
#[test]
fn a_refresh_after_another_process_gc_does_not_name_removed_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let agent = open(&root);
    for b in &bundles[..5] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let (pruned, gc) = operator_prunes_and_collects(&root, 4);
    assert!(pruned >= 3, "{pruned}");
    assert!(gc.packs_removed + gc.packs_rewritten >= 1, "{gc:?}");
    for b in &bundles[5..] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let r = agent.verify(Some(&key), &mut ok).unwrap();
    assert!(r.is_ok(), "{r:?}");
    let kept = agent.points("g").unwrap();
    assert!(kept.len() < bundles.len(), "{kept:?}");
    let out = dir.path().join("m.img");
    for p in &kept {
        agent
            .materialize("g", p.id, "d", &key, &out, &mut ok)
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), models[p.seq as usize]);
        std::fs::remove_file(&out).unwrap();
    }
}

/// An agent's handle over points of few, small blobs (ingests combine their packs, so the
/// packs stay few while their entries grow): once it holds the entries bound it names their
/// packs too, so neither it nor a new handle holds more, whatever the number of points.
/// Without the bound, the agent's handle held every entry of the vault.
#[test]
fn a_handle_holds_a_bounded_number_of_entries() {
    const ENTRIES: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut agent = Vault::open(&root).unwrap();
    agent.sorted_refresh_entries = ENTRIES;
    agent.combine_at = 3;
    let mut stored = 0;
    for b in &bundles {
        stored += agent.ingest(b, &mut ok).unwrap().blobs_stored;
        let held = agent.index.lock().unwrap().blobs.len();
        assert!(held < ENTRIES, "{held} entries held");
        let mut fresh = Vault::open(&root).unwrap();
        fresh.sorted_refresh_entries = ENTRIES;
        let read = fresh.ingest_index().unwrap().blobs.len();
        assert!(read < ENTRIES, "{read} entries read by a new handle");
    }
    assert!(stored as usize > 2 * ENTRIES, "{stored} blobs stored");
    check(&agent, "g", &key, &models, &dir.path().join("m.img"));
    every_blob_held_by_a_new_handle(&root, false);
}
