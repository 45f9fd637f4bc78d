//! The vault: ingest without the key, chains, points, failover, verify.
//!
//! Protects: ingest refuses what does not continue a group's chain (ChainBroken) and treats the
//! same bundle again as a no-op; only new blobs are stored; every point materializes byte for
//! byte as the model disks were at its marker (end to end from guest writes); selectors pick
//! the right points; a point lacking a disk is refused; verify finds a flipped byte without the
//! key and names the points it affects; the key is needed (and checked) to fail over.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use replicore::ErrorKind;
use replicore::bundle::{Bundle, BundleKind, BundleWriter, DiskManifest};
use replicore::log::MarkerKind;
use replicore::vault::{Selector, Vault};
use replicore::{ExtentMap, PointId};

fn ingest_all(v: &Vault, bundles: &[PathBuf]) {
    for b in bundles {
        assert!(v.ingest(b, &mut ok).unwrap().added);
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn every_point_materializes_as_the_model_was_at_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history(dir.path(), 6, 11);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let points = v.points("vm-01").unwrap();
    assert_eq!(points.len(), bundles.len());
    assert_eq!(points[0].kind, BundleKind::Base);
    for (i, p) in points.iter().enumerate() {
        let b = Bundle::open(&bundles[i]).unwrap();
        assert_eq!(p.id, b.point_id());
        assert_eq!(p.seq, b.header().seq);
        assert_eq!(p.label, b.header().label);
        assert_eq!(p.consistency, b.header().consistency);
        assert_eq!(
            p.parent,
            if i == 0 {
                PointId::ZERO
            } else {
                points[i - 1].id
            }
        );
        let names: Vec<&str> = p.disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["os", "data"]);
        let out = dir.path().join(format!("failover-{i}"));
        std::fs::create_dir(&out).unwrap();
        let written = v
            .failover("vm-01", Selector::Id(p.id), &g.key, &out, &mut ok)
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(read(&out.join("os.img")), models[i][0], "point {i}");
        assert_eq!(read(&out.join("data.img")), models[i][1], "point {i}");
    }
    // One disk alone, with progress reaching its total: the disk's size.
    let mut last = (0, 1);
    let one = dir.path().join("one.img");
    let m = v
        .materialize("vm-01", points[3].id, "data", &g.key, &one, &mut |d, t| {
            last = (d, t);
            true
        })
        .unwrap();
    assert_eq!(read(&one), models[3][1]);
    assert_eq!(last.0, last.1);
    assert_eq!(m.size, last.0);
    assert!(m.data_bytes > 0 && m.data_bytes <= m.size);
    // The image is sparse where the data is zero (the base's zero chunk is a hole).
    let meta = std::fs::metadata(dir.path().join("failover-0/os.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() * 512 < meta.len(), "{} blocks", meta.blocks());
}

#[test]
fn ingest_refuses_what_does_not_continue_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bundles, _) = history(dir.path(), 3, 5);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    // An incremental of an unknown group.
    let e = v.ingest(&bundles[1], &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "{e}");
    let base = v.ingest(&bundles[0], &mut ok).unwrap();
    assert!(base.added && base.blobs_stored > 0);
    // A gap.
    let e = v.ingest(&bundles[2], &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "{e}");
    assert!(e.to_string().contains("gap or a fork"), "{e}");
    // A damaged bundle: refused, nothing committed.
    let bad = dir.path().join("bad.rcb");
    let mut bytes = read(&bundles[1]);
    bytes[100] ^= 1;
    std::fs::write(&bad, bytes).unwrap();
    let e = v.ingest(&bad, &mut ok).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Corrupt), "{e}");
    assert_eq!(v.points("vm-01").unwrap().len(), 1);
    ingest_all(&v, &bundles[1..]);
    // The same bundles again: no-ops, reported as such.
    for b in &bundles {
        let again = v.ingest(b, &mut ok).unwrap();
        assert!(!again.added && again.blobs_stored == 0);
    }
    assert_eq!(v.points("vm-01").unwrap().len(), bundles.len());
    // Another base for the group, from another key: not the group's signer.
    let other = tempfile::tempdir().unwrap();
    let g2 = seeded(other.path(), key(4));
    let e = v.ingest(&g2.base, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    // A bundle of another chain of the same group name (another data key, so another
    // signer): refused as not the group's before anything about the chain.
    let fork_dir = other.path().join("f");
    std::fs::create_dir(&fork_dir).unwrap();
    let (_, fork, _) = history(&fork_dir, 1, 9);
    let e = v.ingest(&fork[1], &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(v.points("vm-01").unwrap().len(), bundles.len());
}

#[test]
fn dedup_stores_only_blobs_the_vault_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(5));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    let base = v.ingest(&g.base, &mut ok).unwrap();
    // Rewrite chunk 0 of the os disk with its own seeded bytes: the same blob id.
    let chunk = g.model[0][..CS as usize].to_vec();
    g.write(0, 0, &chunk);
    g.write(1, 5, b"new");
    g.mark(MarkerKind::Crash, "", 10);
    let b = g.rotate_and_ship(0);
    let inc = v.ingest(&b[0], &mut ok).unwrap();
    assert_eq!(inc.blobs_deduplicated, 1, "{inc:?}");
    assert_eq!(inc.blobs_stored, 1, "{inc:?}");
    assert!(inc.bytes_stored < base.bytes_stored);
}

#[test]
fn selectors_pick_the_right_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(6));
    let mut bundles = vec![g.base.clone()];
    for (i, (kind, secs)) in [
        (MarkerKind::Crash, 100),
        (MarkerKind::App, 200),
        (MarkerKind::Crash, 300),
    ]
    .into_iter()
    .enumerate()
    {
        g.write(0, i as u64, b"x");
        g.mark(kind, "", secs);
    }
    bundles.extend(g.rotate_and_ship(0));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let p = v.points("vm-01").unwrap();
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
    let pick = |s| v.select("vm-01", s).unwrap().id;
    assert_eq!(pick(Selector::Latest), p[3].id);
    assert_eq!(pick(Selector::LatestAppConsistent), p[2].id);
    assert_eq!(pick(Selector::AtOrBefore(t(250))), p[2].id);
    assert_eq!(pick(Selector::AtOrBefore(t(300))), p[3].id);
    assert_eq!(pick(Selector::Id(p[1].id)), p[1].id);
    let e = v
        .select("vm-01", Selector::AtOrBefore(UNIX_EPOCH))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = v.points("nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(v.groups().unwrap(), ["vm-01"]);
}

#[test]
fn a_point_that_lacks_a_disk_of_the_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(7));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let base = Bundle::open(&g.base).unwrap();
    let mut header = base.header().clone();
    header.kind = BundleKind::Incremental;
    header.parent = base.point_id();
    header.seq = 1;
    let only_os = vec![DiskManifest {
        name: "os".into(),
        extents: ExtentMap::new(g.model[0].len() as u64).unwrap(),
    }];
    let path = dir.path().join("one-disk.rcb");
    BundleWriter::create(&path)
        .unwrap()
        .finish(header, &only_os, &g.key)
        .unwrap();
    let e = v.ingest(&path, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "{e}");
    assert!(e.to_string().contains("disk `data`"), "{e}");
}

#[test]
fn verify_finds_a_flipped_byte_without_the_key_and_names_the_points() {
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, _) = history(dir.path(), 2, 7);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles);
    let sound = v.verify(None, &mut ok).unwrap();
    assert!(sound.is_ok(), "{sound:?}");
    assert_eq!(sound.points, bundles.len() as u64);
    let keyed = v.verify(Some(&g.key), &mut ok).unwrap();
    assert!(keyed.is_ok() && keyed.blobs_decrypted > 0, "{keyed:?}");
    // Another key: those groups are reported as not checked with it.
    let other = v.verify(Some(&key(9)), &mut ok).unwrap();
    assert_eq!(other.other_key_groups, ["vm-01"]);
    // ... and that is an error for the host asking whether the key is right (issue 16).
    let e = other.check_key_opened(Some("vm-01")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    other.check_key_opened(Some("vm-02")).unwrap();
    keyed.check_key_opened(None).unwrap();
    // Flip one stored byte of the base's first blob.
    let packs = dir.path().join("vault/packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rcpack"))
        .min_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = read(&pack);
    bytes[16 + 40 + 20] ^= 0x10;
    std::fs::write(&pack, bytes).unwrap();
    let r = v.verify(None, &mut ok).unwrap();
    assert!(!r.is_ok());
    let blob = r
        .damage
        .iter()
        .find(|d| d.object.starts_with("blob "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(!blob.points.is_empty(), "{r:?}");
    // Failing over a point that needs it: Authentication or Corrupt, never wrong data.
    let (_, seq, id) = blob.points[0].clone();
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let e = v
        .failover("vm-01", Selector::Id(id), &g.key, &out, &mut ok)
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Authentication | ErrorKind::Corrupt),
        "point {seq}: {e}"
    );
}

#[test]
fn failover_needs_the_groups_key() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(8));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let e = v
        .failover("vm-01", Selector::Latest, &key(8), &out, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(std::fs::read_dir(&out).unwrap().next().is_none());
}

#[test]
fn create_and_open_refuse_what_is_not_a_vault() {
    let dir = tempfile::tempdir().unwrap();
    let e = Vault::open(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    let e = Vault::create(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let vd = dir.path().join("v");
    Vault::create(&vd).unwrap();
    assert_eq!(
        Vault::create(&vd).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let f = vd.join("replicore-vault");
    let good = read(&f);
    // A newer major version (with a valid trailer) is refused, not guessed at.
    let mut newer = good[..good.len() - 32].to_vec();
    newer[8] = 3;
    newer.extend_from_slice(blake3::hash(&newer).as_bytes());
    std::fs::write(&f, &newer).unwrap();
    let e = Vault::open(&vd).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedVersion, "{e}");
    // So is the version before signed points (1): no migration, a clear refusal.
    newer[8] = 1;
    let n = newer.len() - 32;
    let h = blake3::hash(&newer[..n]);
    newer[n..].copy_from_slice(h.as_bytes());
    std::fs::write(&f, &newer).unwrap();
    let e = Vault::open(&vd).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedVersion, "{e}");
    let mut bytes = good;
    bytes[20] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    assert_eq!(Vault::open(&vd).unwrap_err().kind(), ErrorKind::Corrupt);
}

#[test]
fn a_test_failover_runs_while_ingest_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history(dir.path(), 4, 17);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles[..2]);
    let p1 = v.points("vm-01").unwrap()[1].id;
    let out = dir.path().join("test-failover");
    std::fs::create_dir(&out).unwrap();
    std::thread::scope(|s| {
        // Ingest goes on from another thread while the test failover of point 1 runs.
        let ingest = s.spawn(|| {
            for b in &bundles[2..] {
                assert!(v.ingest(b, &mut ok).unwrap().added);
            }
        });
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir(&out).unwrap();
            v.failover("vm-01", Selector::Id(p1), &g.key, &out, &mut ok)
                .unwrap();
            assert_eq!(read(&out.join("os.img")), models[1][0]);
            assert_eq!(read(&out.join("data.img")), models[1][1]);
        }
        ingest.join().unwrap();
    });
    assert_eq!(v.points("vm-01").unwrap().len(), bundles.len());
    let last = dir.path().join("last");
    std::fs::create_dir(&last).unwrap();
    v.failover("vm-01", Selector::Latest, &g.key, &last, &mut ok)
        .unwrap();
    assert_eq!(read(&last.join("os.img")), models[bundles.len() - 1][0]);
}

#[test]
fn pieces_across_the_materialize_window_edges_land_where_they_belong() {
    use replicore::bundle::{SeedOptions, seed};
    let dir = tempfile::tempdir().unwrap();
    let w: usize = 32 << 20; // materialize assembles 32 MiB windows
    let mut img = vec![0u8; 2 * w + 5000];
    img[w - 70_000..w + 70_000].copy_from_slice(&noise(140_000, 1));
    img[2 * w..].copy_from_slice(&noise(5000, 2));
    let path = dir.path().join("big.img");
    std::fs::write(&path, &img).unwrap();
    let k = key(12);
    let opts = SeedOptions {
        chunk_size: 64 << 10,
        ..SeedOptions::default()
    };
    let disks = [("big", path.as_path())];
    let base = dir.path().join("base.rcb");
    let mut s = seed(
        "g",
        &disks,
        &k,
        dir.path().join("l.rclog"),
        &base,
        &opts,
        &mut ok,
    )
    .unwrap();
    // Unaligned writes and a trim across both window edges and the disk's unaligned end.
    let mut model = img.clone();
    for (at, len, seed) in [
        (w - 3001, 7777, 3),
        (2 * w - 1, 2, 4),
        (2 * w + 4000, 1000, 5),
    ] {
        let data = noise(len, seed);
        s.log.record_write(0, at as u64, &data).unwrap();
        model[at..at + len].copy_from_slice(&data);
    }
    s.log.record_trim(0, (w + 10) as u64, 5000).unwrap();
    model[w + 10..w + 5010].fill(0);
    s.log.mark(MarkerKind::Crash, "edges").unwrap();
    s.log.rotate(dir.path().join("s.rclog")).unwrap();
    let shipped = replicore::bundle::ship(
        dir.path().join("s.rclog"),
        &k,
        &mut s.state,
        dir.path(),
        &Default::default(),
        &mut ok,
    )
    .unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&base, &mut ok).unwrap();
    v.ingest(&shipped[0].path, &mut ok).unwrap();
    for (i, want) in [&img, &model].into_iter().enumerate() {
        let id = v.points("g").unwrap()[i].id;
        let out = dir.path().join(format!("p{i}.img"));
        v.materialize("g", id, "big", &k, &out, &mut ok).unwrap();
        let got = read(&out);
        assert_eq!(got.len(), want.len());
        let first_diff = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "point {i}");
    }
}

#[test]
fn cancelling_ingest_failover_and_verify_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(13));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    let stop = &mut |_: u64, _: u64| false;
    let e = v.ingest(&g.base, stop).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(v.groups().unwrap().is_empty());
    let packs = dir.path().join("vault/packs");
    assert_eq!(
        std::fs::read_dir(&packs).unwrap().count(),
        0,
        "no pack left"
    );
    v.ingest(&g.base, &mut ok).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let e = v
        .failover("vm-01", Selector::Latest, &g.key, &out, stop)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "no image left");
    let e = v.verify(Some(&g.key), stop).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
}

#[test]
fn reopening_keeps_the_points_of_groups_whose_names_need_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded_as(dir.path(), key(14), "vm.01/web tier");
    let path = dir.path().join("vault");
    Vault::create(&path)
        .unwrap()
        .ingest(&g.base, &mut ok)
        .unwrap();
    // Opening alone (no one else in the vault) cleans leftovers: a committed point is not one.
    let v = Vault::open(&path).unwrap();
    assert_eq!(v.points("vm.01/web tier").unwrap().len(), 1);
    assert_eq!(v.groups().unwrap(), ["vm.01/web tier"]);
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
}

#[test]
fn verify_names_the_points_a_truncated_pack_takes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(15));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let pack = std::fs::read_dir(dir.path().join("vault/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rcpack"))
        .unwrap();
    let bytes = read(&pack);
    std::fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
    let r = v.verify(None, &mut ok).unwrap();
    let blobs: Vec<_> = r
        .damage
        .iter()
        .filter(|d| d.object.starts_with("blob "))
        .collect();
    assert!(!blobs.is_empty(), "{r:?}");
    assert!(blobs.iter().all(|d| d.points.len() == 1), "{r:?}");
}

#[test]
fn verify_beside_ingest_finds_nothing_damaged() {
    // Verify reads the chains before listing the packs: an ingest beside it publishes a point's
    // packs before its head, so a point verify sees never lacks its blobs (it once reported
    // "the vault lacks it" for a point committed between the two steps).
    let dir = tempfile::tempdir().unwrap();
    let (g, bundles, _) = history(dir.path(), 6, 23);
    let v = Vault::create(dir.path().join("vault")).unwrap();
    ingest_all(&v, &bundles[..1]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let ingest = s.spawn(|| {
            for b in &bundles[1..] {
                assert!(v.ingest(b, &mut ok).unwrap().added);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut rounds = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || rounds == 0 {
            let r = v.verify(None, &mut ok).unwrap();
            assert!(r.is_ok(), "{r:?}");
            let r = v.verify(Some(&g.key), &mut ok).unwrap();
            assert!(r.is_ok(), "{r:?}");
            rounds += 1;
        }
        ingest.join().unwrap();
    });
}

/// Ingest reports (0, total) first and (total, total) last, for a point it adds and for one
/// that was there already (issue 16: a host's progress bar always starts and ends).
#[test]
fn ingest_progress_starts_and_ends_added_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let g = seeded(dir.path(), key(4));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    for round in 0..2 {
        let mut calls: Vec<(u64, u64)> = Vec::new();
        let i = v
            .ingest(&g.base, &mut |d, t| {
                calls.push((d, t));
                true
            })
            .unwrap();
        assert_eq!(i.added, round == 0);
        let total = calls[0].1;
        assert!(total > 0);
        assert_eq!(calls.first(), Some(&(0, total)), "round {round}: {calls:?}");
        assert_eq!(
            calls.last(),
            Some(&(total, total)),
            "round {round}: {calls:?}"
        );
    }
}

/// An agent's vault handle keeps its blob index between ingests instead of listing the packs
/// each time. Another process's prune and GC then remove a pack that snapshot still names, and
/// the agent's next bundle brings the same blob again: the ingest must store it, not count on
/// the collected pack (the point would name a blob the vault lacks: lost at failover).
#[test]
fn a_long_lived_handle_never_counts_on_a_pack_another_process_collected() {
    use replicore::policy::RetentionPolicy;
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(3));
    let agent = Vault::create(dir.path().join("vault")).unwrap();
    assert!(agent.ingest(&g.base, &mut ok).unwrap().added);
    let (x, y) = (noise(CS as usize, 41), noise(CS as usize, 42));
    g.write(0, 0, &x);
    g.mark(MarkerKind::Crash, "x", 60);
    g.write(0, 0, &y);
    g.mark(MarkerKind::Crash, "y", 120);
    for b in g.rotate_and_ship(0) {
        assert!(agent.ingest(&b, &mut ok).unwrap().added);
    }
    // The operator keeps only the newest point: x is overwritten, its pack collected.
    let operator = Vault::open(dir.path().join("vault")).unwrap();
    let policy = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last: 1,
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 10 * 3600);
    assert_eq!(operator.prune(&policy, now).unwrap().pruned(), 2);
    let gc = operator.gc(&mut ok).unwrap();
    assert!(gc.packs_removed >= 1, "{gc:?}");
    // x again, through the agent's handle: stored anew, and the point fails over whole.
    g.write(0, 0, &x);
    let want = g.mark(MarkerKind::Crash, "x again", 180);
    let bundles = g.rotate_and_ship(1);
    assert_eq!(bundles.len(), 1);
    let r = agent.ingest(&bundles[0], &mut ok).unwrap();
    assert_eq!((r.blobs_stored, r.blobs_deduplicated), (1, 0), "{r:?}");
    let out = dir.path().join("fo");
    std::fs::create_dir(&out).unwrap();
    agent
        .failover("vm-01", Selector::Latest, &g.key, &out, &mut ok)
        .unwrap();
    assert_eq!(read(&out.join("os.img")), want[0]);
    assert_eq!(read(&out.join("data.img")), want[1]);
    assert!(agent.verify(None, &mut ok).unwrap().is_ok());
    // And the agent goes on: its index was read again, the next blob of x deduplicated.
    g.write(1, 0, &x);
    g.mark(MarkerKind::Crash, "x on data", 240);
    let r = agent.ingest(&g.rotate_and_ship(2)[0], &mut ok).unwrap();
    assert_eq!((r.blobs_stored, r.blobs_deduplicated), (0, 1), "{r:?}");
}

/// The packs directory's pack ids (file stems of the `.rcidx` files).
fn pack_stems(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("rcidx".as_ref()))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A new handle's ingest (what a fresh `replicore vault ingest` process does) looks the
/// bundle's blobs up in the sorted index the last GC wrote and reads only the pack-index
/// entries they need, not whole pack indexes: a damaged trailer of the index does not stop it
/// (verify reports that), and it still deduplicates, against the packs the sorted
/// index names and against packs ingested since (whose indexes it reads).
#[test]
fn a_new_handle_deduplicates_through_the_sorted_index_gc_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&da).unwrap();
    std::fs::create_dir(&db).unwrap();
    let mut a = seeded_as(&da, key(5), "vm-a");
    let b = seeded_as(&db, key(6), "vm-b");
    let root = dir.path().join("vault");
    let v = Vault::create(&root).unwrap();
    v.ingest(&a.base, &mut ok).unwrap();
    v.ingest(&b.base, &mut ok).unwrap();
    assert!(!root.join("packs/blobs.rcmidx").exists());
    // GC combines the two small packs into one, which the sorted index names.
    let gc = v.gc(&mut ok).unwrap();
    assert_eq!((gc.packs_before, gc.packs_after), (2, 1), "{gc:?}");
    let b_pack = pack_stems(&root).pop().unwrap();
    assert!(root.join("packs/blobs.rcmidx").is_file());
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
    // The pack's index is damaged (its trailer): a handle reading whole indexes would stop.
    let b_index = root.join(format!("packs/{b_pack}.rcidx"));
    let pristine = read(&b_index);
    let mut flipped = pristine.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&b_index, &flipped).unwrap();
    // vm-a's chunk 0 rewritten with its own seeded bytes (a blob the base's pack holds), and
    // one new chunk.
    let chunk = a.model[0][..CS as usize].to_vec();
    a.write(0, 0, &chunk);
    a.write(1, 5, b"new");
    a.mark(MarkerKind::Crash, "", 10);
    let first = a.rotate_and_ship(0);
    let fresh = Vault::open(&root).unwrap();
    let r = fresh.ingest(&first[0], &mut ok).unwrap();
    assert_eq!((r.blobs_stored, r.blobs_deduplicated), (1, 1), "{r:?}");
    // The same new chunk again, through another new handle: its pack came after the GC, so
    // that handle reads its index (and deduplicates against it).
    a.write(1, 5, b"new");
    let want = a.mark(MarkerKind::Crash, "", 20);
    let second = a.rotate_and_ship(1);
    let r = Vault::open(&root)
        .unwrap()
        .ingest(&second[0], &mut ok)
        .unwrap();
    assert_eq!((r.blobs_stored, r.blobs_deduplicated), (0, 1), "{r:?}");
    // Verify names the damaged index; once it is whole again, all is well, and vm-a's newest
    // point fails over byte for byte.
    let report = v.verify(None, &mut ok).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.object.ends_with(&format!("{b_pack}.rcidx"))),
        "{report:?}"
    );
    std::fs::write(&b_index, &pristine).unwrap();
    assert!(v.verify(None, &mut ok).unwrap().is_ok());
    let out = dir.path().join("fo");
    std::fs::create_dir(&out).unwrap();
    v.failover("vm-a", Selector::Latest, &a.key, &out, &mut ok)
        .unwrap();
    assert_eq!(read(&out.join("os.img")), want[0]);
    assert_eq!(read(&out.join("data.img")), want[1]);
}

/// A sparse disk whose 1 MiB chunks hold a few small writes each (a guest's scattered 4 KiB
/// writes on a large disk): the failover image is sparse where the disk was, not a whole
/// chunk allocated per write. Before, a 1 TiB disk with 2,000 such writes failed over to an
/// image holding 2 GB more than the disk (`benches/peers/scale.sh`).
#[test]
fn failover_leaves_the_zeros_of_a_chunk_as_holes() {
    use replicore::bundle::{SeedOptions, seed};
    use replicore::crypto::{KeyFile, MasterKey, Secret};
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.img");
    let mut model = vec![0u8; 16 << 20];
    // One 4 KiB write in each of the sixteen chunks, at a different place in each.
    for c in 0..16usize {
        let at = (c << 20) + c * 40_960;
        model[at..at + 4096].copy_from_slice(&noise(4096, c as u64 + 1));
    }
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(model.len() as u64).unwrap();
    for c in 0..16usize {
        let at = (c << 20) + c * 40_960;
        std::os::unix::fs::FileExt::write_all_at(&f, &model[at..at + 4096], at as u64).unwrap();
    }
    drop(f);
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([8; 32]))).unwrap();
    let opts = SeedOptions {
        chunk_size: 1 << 20,
        ..SeedOptions::default()
    };
    let base = dir.path().join("base.rcb");
    let disks = [("d", img.as_path())];
    let log = dir.path().join("l.rclog");
    seed("g", &disks, &key, log, &base, &opts, &mut ok).unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&base, &mut ok).unwrap();
    let out = dir.path().join("fo");
    std::fs::create_dir(&out).unwrap();
    v.failover("g", Selector::Latest, &key, &out, &mut ok)
        .unwrap();
    let got = out.join("d.img");
    assert_eq!(read(&got), model);
    // Sixteen blocks of data, each with the short zeros beside it that are written rather
    // than left as holes (under 64 KiB), and whatever the file system keeps: far below the
    // sixteen MiB of whole chunks.
    let allocated = std::fs::metadata(&got).unwrap().blocks() * 512;
    assert!(
        allocated <= 16 * (68 << 10) + (256 << 10),
        "{allocated} bytes allocated"
    );
}
