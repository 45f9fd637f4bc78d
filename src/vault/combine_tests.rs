//! Small packs combined after ingests (`vault::combine`), with a small threshold, as a host
//! runs it (a new process per ingest, one agent's handle, an operator's commands beside it),
//! cut at every file operation, and attacked through the files.
//!
//! Protects: without a GC, the packs directory stays bounded whatever the number of points
//! (against one pack per ingest without combining); every point still materializes as its
//! model and verify is clean; a new handle takes every stored blob as held; a combine cut
//! anywhere loses no point and leaves a sound vault; a busy vault (any other operation) is
//! left alone; a small pack with a damaged blob is never removed (verify still reports it); a
//! handle whose snapshot another process's GC made stale combines nothing.

use std::path::Path;

use super::Vault;
use super::layout::lock_vault;
use super::retention_crash_tests::{bundles, copy_dir, operator_prunes_and_collects};
use super::sorted_index::SortedIndex;
use super::sorted_refresh_tests::every_blob_held_by_a_new_handle;
use crate::ErrorKind;
use crate::crypto::Key;
use crate::fsutil::fault;
use crate::sys::LockMode;

const AT: usize = 3;

fn ok(_: u64, _: u64) -> bool {
    true
}

fn open(root: &Path, at: usize) -> Vault {
    let mut v = Vault::open(root).unwrap();
    v.combine_at = at;
    v
}

fn packs(v: &Vault) -> usize {
    v.layout.pack_ids().unwrap().len()
}

/// Every point of `group` materializes as its model (by sequence number); verify with the key
/// is clean; a new handle takes every stored blob as held.
fn check(v: &Vault, group: &str, key: &Key, models: &[Vec<u8>], out: &Path) {
    let r = v.verify(Some(key), &mut ok).unwrap();
    assert!(r.is_ok(), "{r:?}");
    for p in v.points(group).unwrap() {
        v.materialize(group, p.id, "d", key, out, &mut ok).unwrap();
        assert_eq!(std::fs::read(out).unwrap(), models[p.seq as usize], "{p:?}");
        std::fs::remove_file(out).unwrap();
    }
    every_blob_held_by_a_new_handle(v.path(), false);
}

#[test]
fn ingests_keep_the_packs_directory_bounded_without_a_gc() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    // Without combining, one pack per ingest: what the bound below is measured against.
    let plain = dir.path().join("plain");
    Vault::create(&plain).unwrap();
    for b in &bundles {
        assert_eq!(
            open(&plain, usize::MAX)
                .ingest(b, &mut ok)
                .unwrap()
                .packs_combined,
            0
        );
    }
    assert_eq!(packs(&open(&plain, AT)), bundles.len());
    // A new process per ingest, as the command line does: at most AT - 1 small packs of a tier
    // stay (they are all in the first tier here).
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut combined = 0;
    for (i, b) in bundles.iter().enumerate() {
        let r = open(&root, AT).ingest(b, &mut ok).unwrap();
        assert!(r.added);
        combined += r.packs_combined;
        let v = open(&root, AT);
        assert!(packs(&v) < AT, "after ingest {i}: {} packs", packs(&v));
    }
    assert!(combined >= bundles.len() as u64 - 1, "{combined}");
    check(&open(&root, AT), "g", &key, &models, &out);
    // One long-lived handle (an agent) combines the same way.
    let root = dir.path().join("agent");
    Vault::create(&root).unwrap();
    let agent = open(&root, AT);
    for b in &bundles {
        agent.ingest(b, &mut ok).unwrap();
        assert!(packs(&agent) < AT);
    }
    check(&agent, "g", &key, &models, &out);
    // GC after combining finds nothing small to combine, and the points are intact.
    let gc = agent.gc(&mut ok).unwrap();
    assert!(gc.packs_after <= gc.packs_before, "{gc:?}");
    check(&agent, "g", &key, &models, &out);
}

#[test]
fn a_combine_cut_at_any_file_operation_loses_nothing() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    // Two points in, two small packs: the third ingest combines three.
    let pristine = dir.path().join("pristine");
    Vault::create(&pristine).unwrap();
    for b in &bundles[..2] {
        open(&pristine, AT).ingest(b, &mut ok).unwrap();
    }
    assert_eq!(packs(&open(&pristine, AT)), 2);
    let root = dir.path().join("v");
    let out = dir.path().join("m.img");
    let (mut cut_combines, mut cuts) = (0, 0);
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open(&root, AT);
        fault::plan(Some((&root, n)));
        let r = v.ingest(&bundles[2], &mut ok);
        fault::plan(None);
        let v = open(&root, AT);
        let points = v.points("g").unwrap().len();
        check(&v, "g", &key, &models[..points], &out);
        match r {
            Ok(r) if r.packs_combined == 3 => break,
            // Committed; the combine was cut (not the ingest's failure).
            Ok(r) => {
                assert_eq!((points, r.packs_combined), (3, 0));
                cut_combines += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                assert!(points == 2 || points == 3, "{points}");
                cuts += 1;
            }
        }
        // Whatever the cut, the rest of the chain goes in, and the packs come right.
        let from = v.points("g").unwrap().len();
        for b in &bundles[from..] {
            open(&root, AT).ingest(b, &mut ok).unwrap();
        }
        let v = open(&root, AT);
        check(&v, "g", &key, &models, &out);
        assert!(packs(&v) < 2 * AT, "{} packs", packs(&v));
    }
    assert!(cuts >= 5 && cut_combines >= 5, "{cuts} {cut_combines}");
}

#[test]
fn a_busy_vault_is_left_alone_until_an_idle_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    {
        // Another process reading the vault (a failover, verify) all along.
        let _reader = lock_vault(&open(&root, AT).layout, LockMode::Shared).unwrap();
        for b in &bundles[..4] {
            let r = open(&root, AT).ingest(b, &mut ok).unwrap();
            assert_eq!(r.packs_combined, 0, "{r:?}");
        }
        assert_eq!(packs(&open(&root, AT)), 4);
    }
    let r = open(&root, AT).ingest(&bundles[4], &mut ok).unwrap();
    assert_eq!(r.packs_combined, 5, "{r:?}");
    for b in &bundles[5..] {
        open(&root, AT).ingest(b, &mut ok).unwrap();
    }
    check(
        &open(&root, AT),
        "g",
        &key,
        &models,
        &dir.path().join("m.img"),
    );
}

/// The vault's operator (or a failing disk) flips a byte of a blob in a small pack: the combine
/// copies the other packs and leaves that one where it is, so verify still names the damage
/// and the points that do not read it still materialize.
#[test]
fn a_small_pack_with_a_damaged_blob_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    open(&root, AT).ingest(&bundles[0], &mut ok).unwrap();
    let base = open(&root, AT).layout.pack_ids().unwrap();
    open(&root, AT).ingest(&bundles[1], &mut ok).unwrap();
    let v = open(&root, AT);
    // The second point's pack.
    let damaged = v
        .layout
        .pack_ids()
        .unwrap()
        .into_iter()
        .find(|id| !base.contains(id))
        .unwrap();
    let entry = super::PackIndex::load(&v.layout, &damaged).unwrap().entries[0];
    let path = v.layout.pack(&damaged);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(entry.offset + 7) as usize] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let r = open(&root, AT).ingest(&bundles[2], &mut ok).unwrap();
    assert_eq!(r.packs_combined, 2, "{r:?}");
    let v = open(&root, AT);
    assert!(v.layout.pack_ids().unwrap().contains(&damaged));
    let report = v.verify(Some(&key), &mut ok).unwrap();
    assert!(!report.is_ok(), "{report:?}");
    let out = dir.path().join("m.img");
    let points = v.points("g").unwrap();
    v.materialize("g", points[0].id, "d", &key, &out, &mut ok)
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), models[0]);
    std::fs::remove_file(&out).unwrap();
    let e = v
        .materialize("g", points[1].id, "d", &key, &out, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

/// An agent's handle opened the packs before another process pruned and collected garbage:
/// its next combine sees that the sorted index is no longer the one it holds, combines
/// nothing, and lets its snapshot go; the following ingests combine again.
#[test]
fn a_combine_after_another_process_gc_removes_nothing_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let agent = open(&root, AT);
    for b in &bundles[..4] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let (pruned, _) = operator_prunes_and_collects(&root, 3);
    assert!(pruned >= 2, "{pruned}");
    for b in &bundles[4..] {
        agent.ingest(b, &mut ok).unwrap();
    }
    assert!(packs(&agent) <= 2 * AT, "{}", packs(&agent));
    assert!(agent.points("g").unwrap().len() < bundles.len());
    check(&agent, "g", &key, &models, &dir.path().join("m.img"));
}

/// An agent's handle knows packs another process's ingest then combined (and removed): the
/// agent's refresh of the sorted index must not name them. Before the refresh checked that
/// each pack it names is there, it wrote an index naming removed packs.
#[test]
fn a_refresh_never_names_packs_another_handle_combined() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut agent = open(&root, usize::MAX);
    agent.sorted_refresh = 3;
    for b in &bundles[..2] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let known = agent.layout.pack_ids().unwrap();
    let r = open(&root, AT).ingest(&bundles[2], &mut ok).unwrap();
    assert_eq!(r.packs_combined, 3, "{r:?}");
    for b in &bundles[3..] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let on_disk = agent.layout.pack_ids().unwrap();
    assert!(known.iter().all(|p| !on_disk.contains(p)));
    if let Some(sorted) = SortedIndex::open(&agent.layout).unwrap() {
        for p in sorted.packs() {
            assert!(
                on_disk.contains(p),
                "the sorted index names removed pack {p:?}"
            );
        }
    }
    check(&agent, "g", &key, &models, &dir.path().join("m.img"));
}
