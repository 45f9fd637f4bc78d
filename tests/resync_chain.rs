//! Resynchronization into the chain (issue 17, part 1): a group whose tracker was lost is
//! brought back by a point signature taken at the vault and a resync point shipped from the
//! primary's disks; the vault ingests it like any point, failover gives the disks byte for
//! byte, and replication goes on from the new log in the same chain.
//!
//! Protects: the resync point holds only the chunks that differ (none when nothing changed);
//! a signature of a point that is no longer the head is refused at ingest (ChainBroken); a
//! signature read with another key is Authentication, a damaged one Corrupt; a resync run again
//! after a failure simply works.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use replicore::ErrorKind;
use replicore::bundle::{ResyncOptions, resync_ship};
use replicore::log::MarkerKind;
use replicore::resync::point_sig::PointSignature;
use replicore::vault::{Selector, Vault};

/// Writes the model's disks as images under `dir`; returns (name, path) pairs.
fn images(dir: &Path, model: &[Vec<u8>]) -> Vec<(String, PathBuf)> {
    ["os", "data"]
        .iter()
        .zip(model)
        .map(|(n, bytes)| {
            let p = dir.join(format!("snap-{n}.img"));
            std::fs::write(&p, bytes).unwrap();
            (n.to_string(), p)
        })
        .collect()
}

fn refs(v: &[(String, PathBuf)]) -> Vec<(&str, &Path)> {
    v.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect()
}

fn failover_equals(v: &Vault, key: &replicore::crypto::Key, out: &Path, model: &[Vec<u8>]) {
    v.failover("vm-01", Selector::Latest, key, out, &mut ok)
        .unwrap();
    assert_eq!(std::fs::read(out.join("os.img")).unwrap(), model[0]);
    assert_eq!(std::fs::read(out.join("data.img")).unwrap(), model[1]);
}

#[test]
fn a_lost_tracker_is_resynchronized_into_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(7));
    g.write(0, 70_000, &noise(100_000, 3));
    g.mark(MarkerKind::Crash, "p1", 60);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    let mut bundles = vec![g.base.clone()];
    bundles.extend(g.rotate_and_ship(1));
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    let base_bytes = std::fs::metadata(&g.base).unwrap().len();

    // The tracker is lost: writes land that no log recorded (one chunk changed, one zeroed).
    let mut model = g.model.clone();
    model[0][3 * CS as usize + 10..3 * CS as usize + 5000].copy_from_slice(&noise(4990, 9));
    model[1][..CS as usize].fill(0);

    // At the vault: the newest point's signature, sealed, through a file.
    let sig = v
        .point_signature("vm-01", Selector::Latest, &g.key, &mut ok)
        .unwrap();
    assert_eq!(sig.seq, 1);
    let sig_path = dir.path().join("vm-01.rcpsig");
    sig.save(&sig_path, &g.key, false).unwrap();
    assert_eq!(PointSignature::load(&sig_path, &g.key).unwrap(), sig);
    // One written with an id missing would not read back: refused when written.
    let mut short = sig.clone();
    short.disks[0].ids.pop();
    let e = short
        .save(dir.path().join("short.rcpsig"), &g.key, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // Another key: Authentication; one flipped byte: Corrupt.
    let e = PointSignature::load(&sig_path, &key(8)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let mut bytes = std::fs::read(&sig_path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    let bad = dir.path().join("bad.rcpsig");
    std::fs::write(&bad, &bytes).unwrap();
    let e = PointSignature::load(&bad, &g.key).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

    // At the primary: the resync point from the disks' snapshot, with a new log.
    let snap = images(dir.path(), &model);
    let out = dir.path().join("resync-out");
    std::fs::create_dir(&out).unwrap();
    let log2 = dir.path().join("vm2.rclog");
    let r = resync_ship(
        &sig,
        &refs(&snap),
        &g.key,
        &log2,
        &out,
        &ResyncOptions::default(),
        &mut ok,
    )
    .unwrap();
    assert_eq!(r.bundle.seq, 2);
    assert_eq!(r.changed_chunks, 2, "one chunk of each disk");
    // Only the changed chunk's bytes travel (the zeroed one is a zero range, no blob).
    assert_eq!((r.bundle.blobs, r.bundle.plain_bytes), (1, u64::from(CS)));
    assert!(r.bundle.file_bytes < base_bytes / 2, "{r:?}");
    let ingested = v.ingest(&r.bundle.path, &mut ok).unwrap();
    assert!(ingested.added);
    failover_equals(&v, &g.key, &dir.path().join("fo-resync"), &model);

    // Replication goes on from the new log and state, in the same chain.
    let (mut log, mut state) = (r.log, r.state);
    log.record_write(1, 500, b"after the resync").unwrap();
    model[1][500..516].copy_from_slice(b"after the resync");
    log.mark(MarkerKind::App, "p3").unwrap();
    let sealed = dir.path().join("sealed-r.rclog");
    log.rotate(&sealed).unwrap();
    let shipped = replicore::bundle::ship(
        &sealed,
        &g.key,
        &mut state,
        &out,
        &replicore::bundle::ShipOptions::default(),
        &mut ok,
    )
    .unwrap();
    assert_eq!(shipped[0].seq, 3);
    v.ingest(&shipped[0].path, &mut ok).unwrap();
    failover_equals(&v, &g.key, &dir.path().join("fo-after"), &model);
    assert_eq!(v.points("vm-01").unwrap().len(), 4);

    // Nothing changed since: a resync point with no chunk (run again after a failure: the
    // log and bundle of the failed run are replaced; the old log's handle is closed first).
    drop(log);
    let sig = v
        .point_signature("vm-01", Selector::Latest, &g.key, &mut ok)
        .unwrap();
    let snap = images(dir.path(), &model);
    let again = ResyncOptions {
        replace: true,
        ..ResyncOptions::default()
    };
    let r = resync_ship(&sig, &refs(&snap), &g.key, &log2, &out, &again, &mut ok).unwrap();
    assert_eq!((r.changed_chunks, r.bundle.blobs), (0, 0));
    let stale = sig;
    v.ingest(&r.bundle.path, &mut ok).unwrap();
    failover_equals(&v, &g.key, &dir.path().join("fo-same"), &model);

    // A signature of a point that is no longer the head: the resync point does not follow.
    drop(r.log);
    let out2 = dir.path().join("stale-out");
    std::fs::create_dir(&out2).unwrap();
    let r = resync_ship(&stale, &refs(&snap), &g.key, &log2, &out2, &again, &mut ok).unwrap();
    let e = v.ingest(&r.bundle.path, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "{e}");
    // Disks that do not match the signature: refused before anything is written.
    let e = resync_ship(
        &stale,
        &refs(&snap[..1]),
        &g.key,
        dir.path().join("x.rclog"),
        &out2,
        &ResyncOptions::default(),
        &mut ok,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(!dir.path().join("x.rclog").exists());
}

/// A disk resized while nothing tracked (issue 17): the resync point carries the new sizes, one
/// disk grown (its new bytes shipped, the rest of the growth zeros) and one shrunk; older points
/// keep their sizes; replication goes on at the new sizes.
#[test]
fn a_resized_disk_is_carried_by_the_resync_point() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(9));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let old = g.model.clone();
    let mut model = old.clone();
    let grown = model[0].len() + 3 * CS as usize + 100;
    model[0].resize(grown, 0);
    let at = grown - 5000;
    model[0][at..at + 4000].copy_from_slice(&noise(4000, 11));
    let shrunk = model[1].len() - CS as usize - 10;
    model[1].truncate(shrunk);
    let sig = v
        .point_signature("vm-01", Selector::Latest, &g.key, &mut ok)
        .unwrap();
    let snap = images(dir.path(), &model);
    let out = dir.path().join("out-resize");
    std::fs::create_dir(&out).unwrap();
    let r = resync_ship(
        &sig,
        &refs(&snap),
        &g.key,
        dir.path().join("resized.rclog"),
        &out,
        &ResyncOptions::default(),
        &mut ok,
    )
    .unwrap();
    // `os`: its old short last chunk (5), now whole, and the new data across chunks 7 and 8;
    // `data`: its new short last chunk (1). Chunk 6 of `os` is new zeros: nothing to ship.
    assert_eq!((r.bundle.blobs, r.changed_chunks), (4, 4), "{r:?}");
    v.ingest(&r.bundle.path, &mut ok).unwrap();
    let points = v.points("vm-01").unwrap();
    assert_eq!(points[1].disks[0].size, grown as u64);
    assert_eq!(points[1].disks[1].size, shrunk as u64);
    failover_equals(&v, &g.key, &dir.path().join("fo-new"), &model);
    // The base keeps its sizes.
    let fo_old = dir.path().join("fo-old");
    v.failover(
        "vm-01",
        Selector::Id(points[0].id),
        &g.key,
        &fo_old,
        &mut ok,
    )
    .unwrap();
    assert_eq!(std::fs::read(fo_old.join("os.img")).unwrap(), old[0]);
    assert_eq!(std::fs::read(fo_old.join("data.img")).unwrap(), old[1]);
    // Replication goes on at the new sizes: a write past the old end of `os`.
    let (mut log, mut state) = (r.log, r.state);
    let tail = grown as u64 - 10;
    log.record_write(0, tail, b"0123456789").unwrap();
    model[0][tail as usize..].copy_from_slice(b"0123456789");
    log.mark(MarkerKind::Crash, "after").unwrap();
    let sealed = dir.path().join("sealed-resized.rclog");
    log.rotate(&sealed).unwrap();
    for b in replicore::bundle::ship(
        &sealed,
        &g.key,
        &mut state,
        &out,
        &replicore::bundle::ShipOptions::default(),
        &mut ok,
    )
    .unwrap()
    {
        v.ingest(&b.path, &mut ok).unwrap();
    }
    failover_equals(&v, &g.key, &dir.path().join("fo-after"), &model);
    assert!(v.verify(Some(&g.key), &mut ok).unwrap().is_ok());
}

/// The streamed signature (issue 17, memory bounded): `save_point_signature` writes what
/// `point_signature` holds, `resync_ship_from` reads it as needed; a truncated or damaged file
/// is refused at its end with nothing left behind (no bundle, no log).
#[test]
fn a_streamed_signature_resyncs_and_a_cut_one_leaves_nothing() {
    use replicore::bundle::resync_ship_from;
    use replicore::resync::point_sig::{PointSigReader, open_file};
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(10));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let path = dir.path().join("s.rcpsig");
    let head = v
        .save_point_signature("vm-01", Selector::Latest, &g.key, &path, false, &mut ok)
        .unwrap();
    let whole = PointSignature::load(&path, &g.key).unwrap();
    assert_eq!(whole.header(), head);
    assert_eq!(
        whole,
        v.point_signature("vm-01", Selector::Latest, &g.key, &mut ok)
            .unwrap()
    );
    let mut model = g.model.clone();
    model[1][10..20].copy_from_slice(b"0123456789");
    let snap = images(dir.path(), &model);
    let out = dir.path().join("out-stream");
    std::fs::create_dir(&out).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (name, bad) in [
        ("cut", bytes[..bytes.len() - 40].to_vec()),
        ("flipped", {
            let mut b = bytes.clone();
            let at = b.len() - 10;
            b[at] ^= 1;
            b
        }),
    ] {
        let p = dir.path().join(format!("{name}.rcpsig"));
        std::fs::write(&p, &bad).unwrap();
        let log = dir.path().join(format!("{name}.rclog"));
        let e = PointSigReader::open(open_file(&p).unwrap(), &g.key)
            .and_then(|r| {
                resync_ship_from(
                    r,
                    &refs(&snap),
                    &g.key,
                    &log,
                    &out,
                    &ResyncOptions::default(),
                    &mut ok,
                )
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{name}: {e}");
        assert!(!log.exists(), "{name}: the log was left");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{name}");
    }
    let r = resync_ship_from(
        PointSigReader::open(open_file(&path).unwrap(), &g.key).unwrap(),
        &refs(&snap),
        &g.key,
        dir.path().join("ok.rclog"),
        &out,
        &ResyncOptions::default(),
        &mut ok,
    )
    .unwrap();
    assert_eq!(r.changed_chunks, 1);
    v.ingest(&r.bundle.path, &mut ok).unwrap();
    failover_equals(&v, &g.key, &dir.path().join("fo-stream"), &model);
}

/// A sparse disk whose chunks are mostly holes with a few small writes in them (the resync
/// ship hashes such a chunk from a copy of its data ranges, the rest zeros, instead of faulting
/// the holes in through the map): the resync point fails over byte for byte, and only the
/// chunks the writes touched are in it.
#[test]
fn small_writes_in_the_holes_of_a_sparse_disk_resync_whole() {
    use replicore::bundle::{ResyncOptions, SeedOptions, resync_ship_from, seed};
    use replicore::resync::point_sig::{PointSigReader, open_file};
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(16 << 20).unwrap();
    let mib = 1u64 << 20;
    for (i, at) in [5 * mib + 8192, 9 * mib].into_iter().enumerate() {
        f.write_all_at(&noise(4096, i as u64), at).unwrap();
    }
    let k = key(5);
    let base = dir.path().join("base.rcb");
    seed(
        "vm-01",
        &[("disk", img.as_path())],
        &k,
        dir.path().join("a.rclog"),
        &base,
        &SeedOptions::default(),
        &mut ok,
    )
    .unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&base, &mut ok).unwrap();
    // Writes no log recorded: in a chunk that was a hole, beside a seeded write, across the
    // end of a chunk, and one 4 KiB of zeros over seeded data.
    for (i, at) in [mib + 4096, 5 * mib + 600_000, 13 * mib - 2048]
        .into_iter()
        .enumerate()
    {
        f.write_all_at(&noise(4096, 10 + i as u64), at).unwrap();
    }
    f.write_all_at(&[0; 4096], 9 * mib).unwrap();
    let sig = dir.path().join("vm-01.rcpsig");
    v.save_point_signature("vm-01", Selector::Latest, &k, &sig, false, &mut ok)
        .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let reader = PointSigReader::open(open_file(&sig).unwrap(), &k).unwrap();
    let r = resync_ship_from(
        reader,
        &[("disk", img.as_path())],
        &k,
        dir.path().join("b.rclog"),
        &out,
        &ResyncOptions::default(),
        &mut ok,
    )
    .unwrap();
    // Chunks 1, 5, 9 (zeroed), 12 and 13.
    assert_eq!(r.changed_chunks, 5, "{r:?}");
    v.ingest(&r.bundle.path, &mut ok).unwrap();
    let fo = dir.path().join("fo");
    std::fs::create_dir(&fo).unwrap();
    v.failover("vm-01", Selector::Latest, &k, &fo, &mut ok)
        .unwrap();
    assert!(std::fs::read(fo.join("disk.img")).unwrap() == std::fs::read(&img).unwrap());
}
