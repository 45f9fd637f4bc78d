//! Crash safety of the reverse resync and of apply (issue 17): each is failed at every file
//! operation in turn (the disk dead from there on, through `fsutil::fault`), then run again.
//!
//! Protects: a resync ship cut anywhere leaves at most its log, and run again (replacing it)
//! makes a point that applies to exactly the source's bytes; an apply cut anywhere leaves the
//! state naming the point in flight (or the old head), nothing else is accepted, and applying
//! the same bundle again ends with the disks byte-identical to the source.

use std::path::{Path, PathBuf};

use super::{ApplyState, ResyncOptions, apply, resync_ship, sign_for_apply};
use crate::crypto::{Key, KeyFile, MasterKey, Secret};
use crate::fsutil::fault;

const CS: u32 = 16 << 10;

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn key() -> Key {
    KeyFile::create(Secret::Key(&MasterKey::from_bytes([6; 32])))
        .unwrap()
        .1
}

/// Stale original disks and newer recovered ones (some chunks changed, some zeroed, one disk
/// grown), both under `dir`.
type Disks = Vec<(&'static str, PathBuf)>;

fn disks(dir: &Path) -> (Disks, Disks) {
    let stale_a = noise(20 * CS as usize + 100, 1);
    let stale_b = noise(6 * CS as usize, 2);
    let mut new_a = stale_a.clone();
    for i in (0..20).step_by(3) {
        let at = i * CS as usize + 50;
        new_a[at..at + 900].copy_from_slice(&noise(900, i as u64 + 10));
    }
    new_a[CS as usize..2 * CS as usize].fill(0);
    let mut new_b = stale_b.clone();
    new_b.extend(noise(3 * CS as usize, 3));
    let mut out = (Vec::new(), Vec::new());
    for (side, a, b) in [("orig", &stale_a, &stale_b), ("rec", &new_a, &new_b)] {
        let d = dir.join(side);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.img"), a).unwrap();
        std::fs::write(d.join("b.img"), b).unwrap();
        let v = vec![("a", d.join("a.img")), ("b", d.join("b.img"))];
        if side == "orig" {
            out.0 = v;
        } else {
            out.1 = v;
        }
    }
    out
}

fn refs<'a>(v: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    v.iter().map(|(n, p)| (*n, p.as_path())).collect()
}

fn same(a: &[(&'static str, PathBuf)], b: &[(&'static str, PathBuf)]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| std::fs::read(&x.1).unwrap() == std::fs::read(&y.1).unwrap())
}

#[test]
fn a_reverse_resync_and_its_apply_cut_anywhere_end_byte_identical() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (orig, rec) = disks(dir.path());
    let k = key();
    let ok = &mut |_, _| true;
    let sig_path = dir.path().join("orig.rcpsig");
    let state = dir.path().join("orig").join("g.rcapply");
    let head = sign_for_apply("g", &refs(&orig), &k, CS, &sig_path, &state, false, ok).unwrap();
    let sig = crate::resync::point_sig::PointSignature::load(&sig_path, &k).unwrap();
    assert_eq!(sig.header(), head);
    let pristine: Vec<Vec<u8>> = orig.iter().map(|d| std::fs::read(&d.1).unwrap()).collect();
    let state0 = std::fs::read(&state).unwrap();
    let restore = || {
        for (d, b) in orig.iter().zip(&pristine) {
            std::fs::write(&d.1, b).unwrap();
        }
        std::fs::write(&state, &state0).unwrap();
    };
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let log = dir.path().join("rec").join("rev.rclog");
    let again = ResyncOptions {
        replace: true,
        ..ResyncOptions::default()
    };

    // Resync ship, cut at every file operation under `out`, then run again.
    let mut cuts = 0;
    loop {
        fault::plan(Some((&out, cuts)));
        let r = resync_ship(&sig, &refs(&rec), &k, &log, &out, &again, ok);
        fault::plan(None);
        let done = r.is_ok();
        drop(r);
        let r = resync_ship(&sig, &refs(&rec), &k, &log, &out, &again, ok).unwrap();
        restore();
        apply(&r.bundle.path, &k, &refs(&orig), &state, ok).unwrap();
        assert!(same(&orig, &rec), "resync cut after {cuts} operations");
        restore();
        if done {
            break;
        }
        cuts += 1;
    }
    assert!(cuts >= 3, "the resync ship made {cuts} file operations");

    // Apply, cut at every write, sync and state save, then the same bundle again.
    let r = resync_ship(&sig, &refs(&rec), &k, &log, &out, &again, ok).unwrap();
    let bundle = r.bundle.path.clone();
    drop(r);
    let root = dir.path().to_path_buf();
    let mut cuts = 0;
    loop {
        restore();
        fault::plan(Some((&root, cuts)));
        let first = apply(&bundle, &k, &refs(&orig), &state, ok);
        fault::plan(None);
        if first.is_ok() {
            assert!(same(&orig, &rec));
            break;
        }
        let st = ApplyState::load(&state).unwrap();
        let point = super::Bundle::open(&bundle).unwrap().point_id();
        if st.head == point {
            // Cut after the new state was in place (its directory sync failed): done already.
            assert!(
                same(&orig, &rec),
                "cut {cuts}: the state says done, the disks differ"
            );
            let e = apply(&bundle, &k, &refs(&orig), &state, ok).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::AlreadyExists, "{e}");
        } else {
            assert!(
                st.applying == Some(point) || st.head == sig.point,
                "cut {cuts}: the state names neither the point in flight nor the old head"
            );
            apply(&bundle, &k, &refs(&orig), &state, ok).unwrap();
        }
        assert!(same(&orig, &rec), "apply cut after {cuts} operations");
        let st = ApplyState::load(&state).unwrap();
        assert_eq!((st.applying, st.next_seq), (None, 2));
        cuts += 1;
    }
    assert!(cuts >= 5, "the apply made {cuts} file operations");
}

#[test]
fn a_reverse_resync_and_its_apply_cancelled_anywhere_end_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (orig, rec) = disks(dir.path());
    let k = key();
    let ok = &mut |_, _| true;
    let sig_path = dir.path().join("orig.rcpsig");
    let state = dir.path().join("orig").join("g.rcapply");
    sign_for_apply("g", &refs(&orig), &k, CS, &sig_path, &state, false, ok).unwrap();
    let sig = crate::resync::point_sig::PointSignature::load(&sig_path, &k).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let log = dir.path().join("rec").join("rev.rclog");
    let again = ResyncOptions {
        replace: true,
        ..ResyncOptions::default()
    };
    // Resync ship cancelled at its n-th progress call: nothing left; run again.
    for n in 0.. {
        let mut calls = 0;
        let mut cancel = |_, _| {
            calls += 1;
            calls <= n
        };
        match resync_ship(&sig, &refs(&rec), &k, &log, &out, &again, &mut cancel) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::Cancelled, "{e}");
                assert!(!log.exists(), "call {n}: the log was left");
                assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "call {n}");
            }
        }
    }
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Apply cancelled at its n-th progress call, then applied again: the source's bytes.
    let pristine: Vec<Vec<u8>> = orig.iter().map(|d| std::fs::read(&d.1).unwrap()).collect();
    let state0 = std::fs::read(&state).unwrap();
    for n in 0.. {
        for (d, b) in orig.iter().zip(&pristine) {
            std::fs::write(&d.1, b).unwrap();
        }
        std::fs::write(&state, &state0).unwrap();
        let mut calls = 0;
        let mut cancel = |_, _| {
            calls += 1;
            calls <= n
        };
        match apply(&bundle, &k, &refs(&orig), &state, &mut cancel) {
            Ok(_) => {
                assert!(same(&orig, &rec));
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::Cancelled, "{e}");
                apply(&bundle, &k, &refs(&orig), &state, ok).unwrap();
                assert!(same(&orig, &rec), "apply cancelled at call {n}");
            }
        }
    }
}
