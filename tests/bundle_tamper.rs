//! Tampering with bundles and blobs.
//!
//! Protects: any flipped byte or truncation of a bundle is refused by `verify` without the
//! key; an attacker who also recomputes the (unkeyed) trailer is caught by `verify_with_key`
//! (or the change is harmless: the contents and point id stay the same); a blob spliced in
//! from another bundle, reordered blobs (the signed blob table fixes their order), another
//! group's header, and the wrong key.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use replicore::ErrorKind;
use replicore::bundle::Bundle;
use replicore::log::MarkerKind;

const TRAILER: usize = 32;
/// Bytes of the footer (header offset, header, manifests and table lengths, blob count).
const FOOTER: usize = 40;

fn fix_trailer(b: &mut [u8]) {
    let n = b.len() - TRAILER;
    let h = blake3::hash(&b[..n]);
    b[n..].copy_from_slice(h.as_bytes());
}

/// (offset, total length) of each blob entry.
fn entries(b: &[u8], header_offset: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 16;
    while at < header_offset {
        let n = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, 40 + n));
        at += 40 + n;
    }
    out
}

fn header_offset(b: &[u8]) -> usize {
    let f = b.len() - TRAILER - FOOTER;
    u64::from_le_bytes(b[f..f + 8].try_into().unwrap()) as usize
}

/// A small group: the base and two small incremental bundles.
fn small(dir: &Path, k: u8, group_tag: &[u8]) -> (Group, Vec<PathBuf>) {
    let mut g = seeded(dir, key(k));
    g.write(0, 100, group_tag);
    g.write(1, 5000, b"second disk");
    g.mark(MarkerKind::Crash, "one", 1);
    g.write(0, 9000, b"another small write");
    g.trim(1, 0, 4096);
    g.mark(MarkerKind::App, "two", 2);
    let paths = g.rotate_and_ship(1);
    (g, paths)
}

fn check(path: &Path, key: &replicore::crypto::Key) -> replicore::Result<()> {
    let b = Bundle::open(path)?;
    b.verify()?;
    b.verify_with_key(key).map(|_| ())
}

#[test]
fn every_flip_and_truncation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (g, paths) = small(dir.path(), 1, b"payload");
    let orig = std::fs::read(&paths[0]).unwrap();
    assert!(orig.len() < 4096, "{}", orig.len());
    let original = Bundle::open(&paths[0]).unwrap();
    let want = blobs(&original, &g.key);
    let t = dir.path().join("t.rcb");
    for i in 0..orig.len() {
        let mut b = orig.clone();
        b[i] ^= 0x10;
        std::fs::write(&t, &b).unwrap();
        let e = Bundle::open(&t).and_then(|x| x.verify()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion),
            "flip {i}: {e}"
        );
        // With the trailer recomputed: refused with the key, or harmless.
        fix_trailer(&mut b);
        std::fs::write(&t, &b).unwrap();
        match check(&t, &g.key) {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Corrupt | ErrorKind::Authentication | ErrorKind::UnsupportedVersion
                ),
                "flip {i}: {e}"
            ),
            Ok(()) => {
                let x = Bundle::open(&t).unwrap();
                assert_eq!(x.point_id(), original.point_id(), "flip {i}");
                assert_eq!(x.disks(), original.disks(), "flip {i}");
                assert_eq!(blobs(&x, &g.key), want, "flip {i}");
            }
        }
    }
    for n in 0..orig.len() {
        std::fs::write(&t, &orig[..n]).unwrap();
        assert!(check(&t, &g.key).is_err(), "truncated to {n}");
    }
}

#[test]
fn wrong_key_spliced_blob_reordering_and_foreign_header() {
    let dir = tempfile::tempdir().unwrap();
    let (g, paths) = small(dir.path(), 2, b"payload");
    let b0 = std::fs::read(&paths[0]).unwrap();
    let b1 = std::fs::read(&paths[1]).unwrap();
    let t = dir.path().join("t.rcb");

    let e = Bundle::open(&paths[0])
        .unwrap()
        .verify_with_key(&key(3))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);

    // A blob moved from bundle 1 into bundle 0 in place of one of its own.
    let (e0, e1) = (
        entries(&b0, header_offset(&b0)),
        entries(&b1, header_offset(&b1)),
    );
    let (at, len) = e0[0];
    let (bat, blen) = e1[0];
    let mut spliced = b0[..at].to_vec();
    spliced.extend_from_slice(&b1[bat..bat + blen]);
    spliced.extend_from_slice(&b0[at + len..]);
    // Keep the footer's header offset true so that only the blob differs.
    let f = spliced.len() - TRAILER - FOOTER;
    let ho = (header_offset(&b0) + blen - len) as u64;
    spliced[f..f + 8].copy_from_slice(&ho.to_le_bytes());
    fix_trailer(&mut spliced);
    std::fs::write(&t, &spliced).unwrap();
    let e = check(&t, &g.key).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Authentication),
        "{e}"
    );

    // Blobs in another order: the signed table lists them in the order written.
    assert!(e0.len() >= 2, "{e0:?}");
    let mut swapped = b0[..16].to_vec();
    let (a, b) = (e0[0], e0[1]);
    swapped.extend_from_slice(&b0[b.0..b.0 + b.1]);
    swapped.extend_from_slice(&b0[a.0..a.0 + a.1]);
    swapped.extend_from_slice(&b0[b.0 + b.1..]);
    fix_trailer(&mut swapped);
    std::fs::write(&t, &swapped).unwrap();
    assert_eq!(check(&t, &g.key).unwrap_err().kind(), ErrorKind::Corrupt);

    // The header of another group's bundle (same key) put on this one's blobs and manifests.
    let dir2 = tempfile::tempdir().unwrap();
    let mut other = seeded_as(dir2.path(), key(2), "vm-02");
    other.write(0, 100, b"payload");
    other.mark(MarkerKind::Crash, "one", 1);
    let p2 = other.rotate_and_ship(1);
    let o = std::fs::read(&p2[0]).unwrap();
    let (ho, oho) = (header_offset(&b0), header_offset(&o));
    let hl = |b: &[u8]| {
        let f = b.len() - TRAILER - FOOTER;
        u64::from_le_bytes(b[f + 8..f + 16].try_into().unwrap()) as usize
    };
    let mut foreign = b0[..ho].to_vec();
    foreign.extend_from_slice(&o[oho..oho + hl(&o)]);
    foreign.extend_from_slice(&b0[ho + hl(&b0)..]);
    let f = foreign.len() - TRAILER - FOOTER;
    foreign[f + 8..f + 16].copy_from_slice(&(hl(&o) as u64).to_le_bytes());
    fix_trailer(&mut foreign);
    std::fs::write(&t, &foreign).unwrap();
    let e = check(&t, &g.key).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Authentication),
        "{e}"
    );
    assert_eq!(Bundle::open(&p2[0]).unwrap().header().group, "vm-02");
}
