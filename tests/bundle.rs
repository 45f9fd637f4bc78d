//! Seeding, shipping and reading bundles.
//!
//! Protects: a seed skips zero chunks and stores repeated chunks once; every shipped point,
//! folded over the base, gives the disks as they were at its marker; the chain links each
//! bundle to its parent; long writes are cut on the chunk grid so whole chunks dedup with the
//! seed; shipping says a log was shipped already (AlreadyExists), refuses a log that does not
//! follow (ResyncRequired), an unsealed log, another
//! key; key rotation keeps blob ids; progress and cancellation.

mod common;

use common::*;
use replicore::ErrorKind;
use replicore::bundle::{Bundle, BundleKind, ShipOptions, ship};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::log::MarkerKind;
use replicore::{PointId, Source};

#[test]
fn seed_then_ship_reproduces_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(1));
    let base = Bundle::open(&g.base).unwrap();
    let stats = base.verify_with_key(&g.key).unwrap();
    // os: 6 chunks, one zero, one repeating another: 4 blobs; data: 2 chunks of text.
    assert_eq!(stats.blobs, 4 + 2, "{stats:?}");
    assert_eq!(base.header().kind, BundleKind::Base);
    assert_eq!(base.header().parent, PointId::ZERO);
    assert_eq!(g.state.head, base.point_id());
    assert_eq!(materialize(&[&base], &g.key), g.model);

    // Point 1: overlapping writes (the later wins), a trim, a long write across chunks.
    g.write(0, 10, &noise(5000, 9));
    g.write(0, 4000, &noise(3000, 10));
    g.trim(1, 0, 8192);
    // Chunks 3 and 4 of the seeded image written over chunks 2 and 3.
    let long = images()[0].1[3 * CS as usize..5 * CS as usize].to_vec();
    g.write(0, CS as u64 * 2, &long);
    let p1 = g.mark(MarkerKind::Crash, "5 min", 300);
    // Point 2: app-consistent, a write at the disk's very end.
    let end = g.model[0].len() as u64;
    g.write(0, end - 10, b"0123456789");
    g.write(0, 5 * CS as u64, &[0u8; 1024]); // a write of zeros ships as a zero extent
    g.write(1, 70_000, &noise(200_000, 11)[..100_000]);
    let p2 = g.mark(MarkerKind::App, "vss", 600);
    let paths = g.rotate_and_ship(1);
    assert_eq!(paths.len(), 2);
    let b1 = Bundle::open(&paths[0]).unwrap();
    let b2 = Bundle::open(&paths[1]).unwrap();
    for b in [&b1, &b2] {
        b.verify().unwrap();
        b.verify_with_key(&g.key).unwrap();
        assert_eq!(b.disks().len(), 2, "every disk of the group in every point");
    }
    assert_eq!((b1.header().seq, b2.header().seq), (1, 2));
    assert_eq!(b1.header().parent, base.point_id());
    assert_eq!(b2.header().parent, b1.point_id());
    assert_eq!(b2.header().consistency, MarkerKind::App);
    assert_eq!(b2.header().label, "vss");
    let z = b2.disks()[0]
        .extents
        .iter()
        .find(|e| e.start == 5 * CS as u64)
        .unwrap();
    assert_eq!((z.len, z.source), (1024, Source::Zero));
    assert_eq!(materialize(&[&base, &b1], &g.key), p1);
    assert_eq!(materialize(&[&base, &b1, &b2], &g.key), p2);
    // The long write was cut on the grid: its chunk-sized pieces are the seed's blobs.
    let seed_ids: Vec<_> = base.disks()[0].extents.iter().map(|e| e.source).collect();
    let grid = b1.disks()[0]
        .extents
        .iter()
        .filter(|e| e.start >= 2 * CS as u64 && e.start + e.len <= 4 * CS as u64)
        .collect::<Vec<_>>();
    assert_eq!(grid.len(), 2);
    for e in grid {
        assert_eq!(e.len, CS as u64);
        assert!(
            seed_ids.contains(&e.source),
            "{e:?} should dedup with the seed"
        );
        assert!(matches!(e.source, Source::Blob { offset: 0, .. }));
    }

    // The next log continues the chain.
    g.write(1, 0, b"after rotation");
    let p3 = g.mark(MarkerKind::Crash, "", 900);
    let paths3 = g.rotate_and_ship(2);
    let b3 = Bundle::open(&paths3[0]).unwrap();
    assert_eq!(b3.header().parent, b2.point_id());
    assert_eq!(b3.header().generation, 1);
    assert_eq!(materialize(&[&base, &b1, &b2, &b3], &g.key), p3);
}

#[test]
fn ship_refuses_logs_that_do_not_follow() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(2));
    g.write(0, 0, b"x");
    g.mark(MarkerKind::Crash, "", 1);
    let sealed = dir.path().join("s1.rclog");
    g.log.rotate(&sealed).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = ShipOptions::default();
    let before = g.state.clone();
    ship(&sealed, &g.key, &mut g.state, &out, &o, &mut ok).unwrap();
    // The same log again (an agent that crashed after shipping ships again): said to be
    // shipped already, not a resync (issue 16), and nothing changes.
    let shipped = g.state.clone();
    let e = ship(&sealed, &g.key, &mut g.state, &out, &o, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("was shipped"), "{e}");
    assert_eq!(g.state, shipped);
    // Another tracking session.
    let mut other = before.clone();
    other.epoch[0] ^= 1;
    let e = ship(&sealed, &g.key, &mut other, &out, &o, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired);
    // Re-shipping from the state saved before (a crash before it was saved) makes the same
    // bundles: those already there are kept and reported, the state advances as the first
    // ship's did, nothing is rewritten.
    let mut again = before.clone();
    let first = g.state.head;
    let files: Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p.clone(), std::fs::read(&p).unwrap(), m)
        })
        .collect();
    let redone = ship(&sealed, &g.key, &mut again, &out, &o, &mut ok).unwrap();
    assert_eq!(again, g.state);
    assert_eq!(redone.last().unwrap().point, first);
    for (p, bytes, modified) in &files {
        assert_eq!(&std::fs::read(p).unwrap(), bytes);
        assert_eq!(&std::fs::metadata(p).unwrap().modified().unwrap(), modified);
    }
    // A damaged copy of the same bundle (its header intact), or another file, where a bundle
    // goes: refused, the state left alone.
    let good = std::fs::read(&redone[0].path).unwrap();
    let mut damaged = good.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    for other in [damaged, b"not this bundle".to_vec()] {
        let mut again = before.clone();
        std::fs::write(&redone[0].path, &other).unwrap();
        let e = ship(&sealed, &g.key, &mut again, &out, &o, &mut ok).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("a damaged copy"), "{e}");
        assert_eq!(again, before, "a refused ship leaves the state alone");
    }
    let replace = ShipOptions {
        replace: true,
        ..ShipOptions::default()
    };
    let mut again = before.clone();
    ship(&sealed, &g.key, &mut again, &out, &replace, &mut ok).unwrap();
    assert_eq!(again.head, first);
    // Another key; an active (unsealed) log.
    let mut s = before.clone();
    let e = ship(&sealed, &key(3), &mut s, &out, &o, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = ship(&g.log_path, &g.key, &mut s, &out, &o, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // Cancellation.
    g.write(0, 0, &vec![1u8; 300_000]);
    g.mark(MarkerKind::Crash, "", 2);
    let sealed2 = dir.path().join("s2.rclog");
    g.log.rotate(&sealed2).unwrap();
    let mut s = g.state.clone();
    let e = ship(&sealed2, &g.key, &mut s, &out, &o, &mut |_, _| false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(s, g.state, "a cancelled ship leaves the state alone");
}

#[test]
fn ship_state_round_trips_and_refuses_damage() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(4));
    let p = dir.path().join("vm.rcship");
    g.state.save(&p).unwrap();
    assert_eq!(replicore::bundle::ShipState::load(&p).unwrap(), g.state);
    let bytes = std::fs::read(&p).unwrap();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        let e = replicore::bundle::ShipState::from_bytes(&b).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion),
            "{i}: {e}"
        );
        assert!(replicore::bundle::ShipState::from_bytes(&bytes[..i]).is_err());
    }
}

#[test]
fn rotating_the_customer_key_keeps_blob_ids_and_dedup() {
    let mk = MasterKey::from_bytes([5; 32]);
    let (file, k1) = KeyFile::create(Secret::Key(&mk)).unwrap();
    let mk2 = MasterKey::from_bytes([6; 32]);
    let rotated = file.rewrap(Secret::Key(&mk), Secret::Key(&mk2)).unwrap();
    let k2 = rotated.unlock(Secret::Key(&mk2)).unwrap();
    assert_eq!(k1.id(), k2.id());
    let data = noise(10_000, 1);
    let b = replicore::blob::encode(&k1, &data, 1).unwrap();
    assert_eq!(k2.blob_id(&data), b.id);
    assert_eq!(replicore::blob::decode(&k2, &b.id, &b.bytes).unwrap(), data);
}

#[test]
fn seed_refuses_bad_arguments_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    std::fs::write(&img, noise(300_000, 2)).unwrap();
    let k = key(7);
    let log = dir.path().join("l.rclog");
    let out = dir.path().join("b.rcb");
    let disks = [("a", img.as_path())];
    let mut o = replicore::bundle::SeedOptions {
        chunk_size: 3000,
        ..Default::default()
    };
    let e = replicore::bundle::seed("g", &disks, &k, &log, &out, &o, &mut ok)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    o.chunk_size = 4096;
    let e = replicore::bundle::seed("g", &disks, &k, &log, &out, &o, &mut |_, _| false)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(!log.exists() && !out.exists());
    let missing = [("a", dir.path().join("nope.img"))];
    let m: Vec<(&str, &std::path::Path)> = missing.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let e = replicore::bundle::seed("g", &m, &k, &log, &out, &o, &mut ok)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Disk names a failover would write to one file: refused at seed (issue 16).
    let img2 = dir.path().join("b.img");
    std::fs::write(&img2, noise(5000, 3)).unwrap();
    let clash = [("a b", img.as_path()), ("a_b", img2.as_path())];
    let e = replicore::bundle::seed("g", &clash, &k, &log, &out, &o, &mut ok)
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("a_b.img"), "{e}");
    assert!(!log.exists() && !out.exists());
}

/// A ship cut short by a crash (some bundles published, the next one's temporary file holding a
/// prefix of its bytes, the ship state not yet saved) is redone from the saved state: the same
/// point ids, every bundle verifies, no temporary file is left.
#[test]
fn a_ship_cut_at_any_point_is_redone_from_the_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(8));
    for p in 0..3u64 {
        g.write(0, 1000 * p, &noise(20_000, p));
        g.mark(MarkerKind::Crash, "", p);
    }
    let sealed = dir.path().join("s.rclog");
    g.log.rotate(&sealed).unwrap();
    let saved = g.state.clone();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Shipping again after a crash writes the same names: it must be allowed to replace them.
    let o = ShipOptions {
        replace: true,
        ..ShipOptions::default()
    };
    let mut state = saved.clone();
    let first = ship(&sealed, &g.key, &mut state, &out, &o, &mut ok).unwrap();
    let ids: Vec<PointId> = first.iter().map(|b| b.point).collect();
    let full: Vec<Vec<u8>> = first
        .iter()
        .map(|b| std::fs::read(&b.path).unwrap())
        .collect();
    for published in 0..first.len() {
        for cut in [
            0,
            1,
            16,
            full[published].len() / 2,
            full[published].len() - 1,
        ] {
            // The crash: bundles after `published` gone, its temporary file torn at `cut`.
            for b in &first[published..] {
                let _ = std::fs::remove_file(&b.path);
            }
            let name = first[published].path.file_name().unwrap().to_str().unwrap();
            let tmp = out.join(format!(".{name}.00000000deadbeef.tmp"));
            std::fs::write(&tmp, &full[published][..cut]).unwrap();
            let mut again = saved.clone();
            let redone = ship(&sealed, &g.key, &mut again, &out, &o, &mut ok).unwrap();
            assert_eq!(redone.iter().map(|b| b.point).collect::<Vec<_>>(), ids);
            assert_eq!(again, state, "published {published}, cut {cut}");
            for b in &redone {
                Bundle::open(&b.path)
                    .unwrap()
                    .verify_with_key(&g.key)
                    .unwrap();
            }
            assert!(!tmp.exists());
        }
    }
}
