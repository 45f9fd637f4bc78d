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
pub(super) fn check(v: &Vault, group: &str, key: &Key, models: &[Vec<u8>], out: &Path) {
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
    // stay (the base's pack is in the second tier here, every other point's in the first).
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut combined = 0;
    for (i, b) in bundles.iter().enumerate() {
        let r = open(&root, AT).ingest(b, &mut ok).unwrap();
        assert!(r.added);
        combined += r.packs_combined;
        let v = open(&root, AT);
        // Two tiers used here: the first's combined packs climb to the second.
        assert!(
            packs(&v) <= 2 * (AT - 1),
            "after ingest {i}: {} packs",
            packs(&v)
        );
    }
    assert!(combined >= 2 * AT as u64, "{combined}");
    check(&open(&root, AT), "g", &key, &models, &out);
    // One long-lived handle (an agent) combines the same way.
    let root = dir.path().join("agent");
    Vault::create(&root).unwrap();
    let agent = open(&root, AT);
    for b in &bundles {
        agent.ingest(b, &mut ok).unwrap();
        assert!(packs(&agent) <= 2 * (AT - 1));
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
    // Three points in, two small packs in the first tier: the fourth ingest combines three.
    let pristine = dir.path().join("pristine");
    Vault::create(&pristine).unwrap();
    for b in &bundles[..3] {
        open(&pristine, AT).ingest(b, &mut ok).unwrap();
    }
    assert_eq!(packs(&open(&pristine, AT)), 3);
    let root = dir.path().join("v");
    let out = dir.path().join("m.img");
    let (mut cut_combines, mut cuts) = (0, 0);
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open(&root, AT);
        fault::plan(Some((&root, n)));
        let r = v.ingest(&bundles[3], &mut ok);
        fault::plan(None);
        let v = open(&root, AT);
        let points = v.points("g").unwrap().len();
        check(&v, "g", &key, &models[..points], &out);
        match r {
            Ok(r) if r.packs_combined == 3 => break,
            // Committed; the combine was cut (not the ingest's failure).
            Ok(r) => {
                assert_eq!((points, r.packs_combined), (4, 0));
                cut_combines += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                assert!(points == 3 || points == 4, "{points}");
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
        for b in &bundles[..5] {
            let r = open(&root, AT).ingest(b, &mut ok).unwrap();
            assert_eq!(r.packs_combined, 0, "{r:?}");
        }
        assert_eq!(packs(&open(&root, AT)), 5);
    }
    // One batch: AT packs of the first tier (which holds five).
    let r = open(&root, AT).ingest(&bundles[5], &mut ok).unwrap();
    assert_eq!(r.packs_combined, AT as u64, "{r:?}");
    for b in &bundles[6..] {
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
    assert_eq!(r.packs_combined, 0, "{r:?}");
    // The first tier is full: the damaged pack stays, the two others are combined.
    let r = open(&root, AT).ingest(&bundles[3], &mut ok).unwrap();
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
    // Its fourth pack (the next ingest's) makes it refresh.
    agent.sorted_refresh = 4;
    for b in &bundles[..3] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let known = agent.layout.pack_ids().unwrap();
    let r = open(&root, AT).ingest(&bundles[3], &mut ok).unwrap();
    assert_eq!(r.packs_combined, 3, "{r:?}");
    for b in &bundles[4..] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let on_disk = agent.layout.pack_ids().unwrap();
    let gone = known.iter().filter(|p| !on_disk.contains(p)).count();
    assert_eq!(
        gone, 2,
        "the agent's two packs of the first tier are combined"
    );
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

/// An agent's handle read packs the sorted index did not name; then another process's ingest
/// refreshed the sorted index, naming them. The agent's combine must not remove them (the
/// sorted index would name packs that are gone): it sees the index is not the one it holds,
/// combines nothing and lets its snapshot go.
#[test]
fn a_combine_never_removes_packs_another_refresh_named() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut agent = open(&root, usize::MAX);
    for b in &bundles[..4] {
        agent.ingest(b, &mut ok).unwrap();
    }
    let mut other = open(&root, usize::MAX);
    other.sorted_refresh = 1;
    other.ingest(&bundles[4], &mut ok).unwrap();
    let named: Vec<_> = SortedIndex::open(&other.layout)
        .unwrap()
        .expect("the other ingest refreshed the sorted index")
        .packs()
        .copied()
        .collect();
    assert_eq!(named.len(), 5);
    agent.combine_at = AT;
    let r = agent.ingest(&bundles[5], &mut ok).unwrap();
    assert_eq!(r.packs_combined, 0, "{r:?}");
    let on_disk = agent.layout.pack_ids().unwrap();
    assert!(named.iter().all(|p| on_disk.contains(p)));
    // Its next ingests read the vault again and combine.
    let mut combined = 0;
    for b in &bundles[6..] {
        combined += agent.ingest(b, &mut ok).unwrap().packs_combined;
    }
    assert!(combined >= AT as u64, "{combined}");
    check(&agent, "g", &key, &models, &dir.path().join("m.img"));
}

/// Puts packs in the handle's snapshot, as if an ingest had read them.
fn hold(v: &Vault, packs: &[&std::sync::Arc<super::PackIndex>]) {
    let mut index = v.index.lock().unwrap();
    let i = std::sync::Arc::make_mut(&mut index);
    i.listed = true;
    for p in packs {
        i.add(std::sync::Arc::clone(p));
    }
}

/// Refreshes the sorted index: how many packs it then names.
fn refreshed(v: &Vault) -> usize {
    v.refresh_sorted();
    SortedIndex::open(&v.layout)
        .unwrap()
        .unwrap()
        .packs()
        .count()
}

/// A refresh of the sorted index names the large packs and leaves the few small ones out (and
/// in the handle), so ingests go on combining them; when small ones are many (combining could
/// not keep up) or hold many entries, it names all but the smallest (under half of either
/// bound), so the handle's memory stays bounded.
#[test]
fn a_refresh_leaves_few_small_packs_to_combine() {
    use super::pack::PackWriter;
    use crate::id::BlobId;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v");
    let mut v = Vault::create(&root).unwrap();
    v.sorted_refresh = 3;
    let pack = |blobs: u8, len: usize| {
        let mut w = PackWriter::create(&v.layout).unwrap();
        for i in 0..blobs {
            let stored = vec![i ^ len as u8; len];
            let id = BlobId(*blake3::hash(&[i, len as u8, (len >> 8) as u8]).as_bytes());
            w.add(&id, &stored, *blake3::hash(&stored).as_bytes())
                .unwrap();
        }
        std::sync::Arc::new(w.close().unwrap().publish(&v.layout).unwrap())
    };
    // Two large packs (five blobs of 7 MiB each) and one small.
    let (a, b, c) = (pack(5, 7 << 20), pack(5, (7 << 20) + 1), pack(2, 4096));
    hold(&v, &[&a, &b, &c]);
    v.refresh_sorted();
    let named: Vec<_> = SortedIndex::open(&v.layout)
        .unwrap()
        .unwrap()
        .packs()
        .copied()
        .collect();
    assert_eq!(named.len(), 2);
    assert!(named.contains(&a.pack) && named.contains(&b.pack));
    let held: Vec<_> = v.index.lock().unwrap().packs.keys().copied().collect();
    assert_eq!(held, vec![c.pack]);
    // Two more small ones: three small packs of three, more than half; all but the smallest
    // named.
    let (d, e) = (pack(1, 1000), pack(1, 2000));
    hold(&v, &[&d, &e]);
    let named = refreshed(&v);
    assert_eq!(named, 4);
    let held: Vec<_> = v.index.lock().unwrap().packs.keys().copied().collect();
    assert_eq!(held, vec![d.pack]);
    // Few small packs of many entries (points of tiny blobs): named past half the entries
    // bound, the smallest kept. Without it, the handle would hold every entry of them.
    v.sorted_refresh = 256;
    v.sorted_refresh_entries = 8;
    let (f, g) = (pack(2, 10), pack(6, 3000));
    hold(&v, &[&f, &g]);
    // f, d and g (smallest first): nine entries of three packs.
    let named = refreshed(&v);
    assert_eq!(named, 5);
    let index = v.index.lock().unwrap();
    let mut held: Vec<_> = index.packs.keys().copied().collect();
    held.sort();
    let mut want = vec![d.pack, f.pack];
    want.sort();
    assert_eq!(held, want);
    assert_eq!(index.blobs.len(), 3);
}

/// A pack that does not read (here its pack file is gone, its index left: an I/O error) is
/// passed over and the next candidate takes its place, so a few bad packs do not stall their
/// tier; the bad pack stays for verify to report.
#[test]
fn a_pack_that_does_not_read_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, _, _) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    for b in &bundles[..6] {
        open(&root, usize::MAX).ingest(b, &mut ok).unwrap();
    }
    let v = open(&root, AT);
    // The first tier's smallest packs (the next point's is as small): the first a batch would
    // take. Without passing over them, fewer than two packs would read and none be combined.
    let all: Vec<_> = v
        .layout
        .pack_ids()
        .unwrap()
        .into_iter()
        .map(|id| super::PackIndex::load(&v.layout, &id).unwrap())
        .collect();
    let least = all.iter().map(|p| p.pack_len).min().unwrap();
    let bad: Vec<_> = all
        .iter()
        .filter(|p| p.pack_len == least)
        .map(|p| p.pack)
        .collect();
    assert!(bad.len() >= 2, "{} packs of the least size", bad.len());
    for id in &bad {
        std::fs::remove_file(v.layout.pack(id)).unwrap();
    }
    let agent = open(&root, AT);
    let r = agent.ingest(&bundles[6], &mut ok).unwrap();
    assert_eq!(r.packs_combined, AT as u64, "{r:?}");
    assert!(bad.iter().all(|id| v.layout.pack_index(id).exists()));
    assert!(!v.verify(None, &mut ok).unwrap().is_ok());
    // The handle passes over the bad packs it tried from now on, without reading them again
    // (however large, they would count towards what its next combines try).
    let unreadable = agent.unreadable.lock().unwrap().clone();
    assert!(!unreadable.is_empty() && unreadable.iter().all(|id| bad.contains(id)));
}

/// How a copy of a pack is damaged.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// A byte of its first blob flipped.
    Flip,
    /// Its pack file removed, its index left.
    Gone,
    /// Cut to half its length.
    Cut,
}

/// A blob stored two or three times (another process's ingest stored it again, or a combine
/// was cut before it removed its old packs) whose first copies in pack order are damaged (a
/// failing disk, or the vault's operator, who can pick a copy's name to set its order): GC
/// keeps a copy that reads back and drops the damaged ones, so every point still materializes
/// and verify turns clean. Without reading the kept copy back, GC removed the only sound one;
/// taking the next copy unread, it did so when two were damaged; treating a pack file gone or
/// cut short as an I/O error, GC failed at every run.
#[test]
fn gc_keeps_a_sound_copy_of_a_blob_stored_more_than_once() {
    for (copies, damaged, how) in [
        (2, 1, Damage::Flip),
        (3, 2, Damage::Flip),
        (2, 1, Damage::Gone),
        (3, 2, Damage::Cut),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (bundles, key, models) = bundles(dir.path(), "g");
        let root = dir.path().join("v");
        Vault::create(&root).unwrap();
        for b in &bundles[..3] {
            open(&root, usize::MAX).ingest(b, &mut ok).unwrap();
        }
        let v = open(&root, usize::MAX);
        // The first point's pack, stored again under new names.
        let x = v
            .layout
            .pack_ids()
            .unwrap()
            .iter()
            .map(|id| super::PackIndex::load(&v.layout, id).unwrap())
            .max_by_key(|p| p.entries.len())
            .unwrap();
        let mut all = vec![x.pack];
        for _ in 1..copies {
            let y = super::layout::PackId::random().unwrap();
            std::fs::copy(v.layout.pack(&x.pack), v.layout.pack(&y)).unwrap();
            let copy = super::PackIndex {
                pack: y,
                ..x.clone()
            };
            std::fs::write(v.layout.pack_index(&y), copy.encode()).unwrap();
            all.push(y);
        }
        all.sort();
        for id in &all[..damaged] {
            let path = v.layout.pack(id);
            let mut bytes = std::fs::read(&path).unwrap();
            match how {
                Damage::Flip => bytes[(x.entries[0].offset + 7) as usize] ^= 0x20,
                Damage::Gone => bytes.clear(),
                Damage::Cut => bytes.truncate(bytes.len() / 2),
            }
            match how {
                Damage::Gone => std::fs::remove_file(&path).unwrap(),
                _ => std::fs::write(&path, &bytes).unwrap(),
            }
        }
        let case = format!("{copies} copies, {damaged} {how:?}");
        let v = open(&root, AT);
        assert!(!v.verify(None, &mut ok).unwrap().is_ok(), "{case}");
        // Before any GC, every point fails over from the copy that reads back.
        let out = dir.path().join("m.img");
        for p in v.points("g").unwrap() {
            v.materialize("g", p.id, "d", &key, &out, &mut ok).unwrap();
            assert_eq!(
                std::fs::read(&out).unwrap(),
                models[p.seq as usize],
                "{case}"
            );
            std::fs::remove_file(&out).unwrap();
        }
        let r = open(&root, AT).gc(&mut ok).unwrap();
        assert!(r.damaged_packs.is_empty(), "{case}: {r:?}");
        let v = open(&root, AT);
        let left = v.layout.pack_ids().unwrap();
        assert!(all[..damaged].iter().all(|id| !left.contains(id)), "{case}");
        check(&v, "g", &key, &models, &dir.path().join("m.img"));
    }
}
