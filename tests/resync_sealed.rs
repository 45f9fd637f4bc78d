//! Sealed resync artefacts, and apply's check of the target.
//!
//! Protects: with the group key, a signature says nothing about the data (keyed hashes, an
//! encrypted body) and a delta carries no plaintext; another key is Authentication; any flipped
//! byte, a truncated file, frames reordered or dropped are refused before the target is touched
//! (its bytes checked unchanged); a delta applied onto a target that is not the image its
//! signature was taken of (another image, an older copy, another size) is refused and the
//! target left unchanged, keyed or plain; an apply interrupted after some chunks converges when
//! run again; files of the previous major version are UnsupportedVersion.

use std::path::{Path, PathBuf};

use common::{noise as rnd, ok};
use replicore::ErrorKind;
use replicore::crypto::Key;
use replicore::resync::{Delta, Signature};

mod common;

const CS: u32 = 4096;
/// Plaintext bytes of a full frame (`docs/FORMAT.md` §9.1).
const FRAME: usize = 1 << 20;
/// Bytes of a delta's header, where its body (the first frame) starts.
const DELTA_HEADER: usize = 120;

/// A fresh group key (a new random data key each call).
fn key() -> Key {
    common::key(7)
}

/// `bytes` with its trailer recomputed (as a forger who knows the format would).
fn retrailed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 32;
    let h = blake3::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(h.as_bytes());
    bytes
}

fn sealed_sig(img: &[u8], key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    Signature::of_keyed(img, CS, key)
        .unwrap()
        .to_writer_sealed(&mut out, key)
        .unwrap();
    out
}

/// A scratch directory with a source, a target and the sealed delta between them.
struct Pair {
    _dir: tempfile::TempDir,
    source: Vec<u8>,
    target: Vec<u8>,
    t: PathBuf,
    d: PathBuf,
    key: Key,
}

impl Pair {
    fn new(source: Vec<u8>, target: Vec<u8>, keyed: bool) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (s, t, d) = (
            dir.path().join("s.img"),
            dir.path().join("t.img"),
            dir.path().join("x.rcdelta"),
        );
        std::fs::write(&s, &source).unwrap();
        std::fs::write(&t, &target).unwrap();
        let key = key();
        let out = std::fs::File::create(&d).unwrap();
        if keyed {
            let sig = Signature::compute_keyed(&t, CS, &key, &mut ok).unwrap();
            Delta::compute_sealed(&s, &sig, &key, out, &mut ok).unwrap();
        } else {
            let sig = Signature::compute(&t, CS, &mut ok).unwrap();
            Delta::compute(&s, &sig, out, &mut ok).unwrap();
        }
        Pair {
            _dir: dir,
            source,
            target,
            t,
            d,
            key,
        }
    }

    fn apply(&self, delta: &Path, keyed: bool) -> replicore::Result<replicore::resync::ApplyStats> {
        if keyed {
            Delta::apply_sealed(delta, &self.t, &self.key, &mut ok)
        } else {
            Delta::apply(delta, &self.t, &mut ok)
        }
    }

    /// Applies `bytes` as a delta: it must be refused with `kind` (any kind if None), and the
    /// target left as it was.
    fn refused(&self, bytes: &[u8], kind: Option<ErrorKind>, what: &str) {
        let bad = self.d.with_extension("bad");
        std::fs::write(&bad, bytes).unwrap();
        let e = match self.apply(&bad, true) {
            Ok(st) => panic!("{what} was applied: {st:?}"),
            Err(e) => e,
        };
        if let Some(k) = kind {
            assert_eq!(e.kind(), k, "{what}: {e}");
        }
        assert_eq!(
            std::fs::read(&self.t).unwrap(),
            self.target,
            "{what} changed the target: {e}"
        );
    }
}

fn one_chunk_changed() -> (Vec<u8>, Vec<u8>) {
    let target = rnd(5 * CS as usize + 1000, 1);
    let mut source = target.clone();
    source[CS as usize + 10..CS as usize + 2000].copy_from_slice(&rnd(1990, 9));
    source[3 * CS as usize..4 * CS as usize].fill(0);
    (source, target)
}

#[test]
fn sealed_round_trip_and_idempotent_apply() {
    let key = key();
    for (source, target) in [
        one_chunk_changed(),
        (rnd(20_000, 3), rnd(9_000, 4)),
        (rnd(9_000, 5), rnd(20_000, 6)),
        (rnd(9_000, 7), Vec::new()),
        (Vec::new(), rnd(9_000, 8)),
    ] {
        let bytes = sealed_sig(&target, &key);
        let sig = Signature::from_reader_sealed(&bytes[..], &key).unwrap();
        assert_eq!(sig, Signature::of_keyed(&target, CS, &key).unwrap());
        assert_eq!(sig.key_id(), Some(key.id()));
        let mut delta = Vec::new();
        Delta::compute_sealed_in_memory(&source, &sig, &key, &mut delta, &mut ok).unwrap();
        let mut t = target.clone();
        Delta::apply_sealed_in_memory(&delta, &mut t, &key, 1 << 30, &mut ok).unwrap();
        assert_eq!(t, source);
        Delta::apply_sealed_in_memory(&delta, &mut t, &key, 1 << 30, &mut ok).unwrap();
        assert_eq!(t, source, "applying twice changes nothing");
    }
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source, target, true);
    let st = p.apply(&p.d, true).unwrap();
    assert_eq!((st.data_chunks, st.zero_chunks), (1, 1));
    assert_eq!(std::fs::read(&p.t).unwrap(), p.source);
    p.apply(&p.d, true).unwrap();
    assert_eq!(std::fs::read(&p.t).unwrap(), p.source);
}

#[test]
fn a_sealed_signature_and_delta_reveal_nothing() {
    let img = rnd(64 * CS as usize, 11);
    let (k1, k2) = (key(), key());
    let (s1, s2) = (
        Signature::of_keyed(&img, CS, &k1).unwrap(),
        Signature::of_keyed(&img, CS, &k2).unwrap(),
    );
    let plain = Signature::of(&img, CS).unwrap();
    for i in 0..plain.hashes().len() {
        assert_ne!(
            s1.hashes()[i],
            s2.hashes()[i],
            "chunk {i}: same under two keys"
        );
        assert_ne!(
            s1.hashes()[i],
            plain.hashes()[i],
            "chunk {i}: keyed is plain"
        );
    }
    let file = sealed_sig(&img, &k1);
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (p, k) in plain.hashes().iter().zip(s1.hashes()) {
        assert!(
            !has(&file, p),
            "a chunk's plain BLAKE3 is in the sealed signature"
        );
        assert!(
            !has(&file, k),
            "a keyed hash is in the clear in the sealed signature"
        );
    }
    // A sealed delta holds none of the changed (incompressible) data in the clear.
    let mut source = img.clone();
    let secret = rnd(CS as usize, 12);
    source[5 * CS as usize..6 * CS as usize].copy_from_slice(&secret);
    let mut delta = Vec::new();
    Delta::compute_sealed_in_memory(&source, &s1, &k1, &mut delta, &mut ok).unwrap();
    assert!(delta.len() > CS as usize, "the chunk is in the delta");
    assert!(!has(&delta, &secret[..32]), "plaintext in the sealed delta");
    assert!(!has(&delta, &blake3::hash(&secret).as_bytes()[..]));
    // The plain delta does carry it: the flag in the header says which is which.
    let mut plain_delta = Vec::new();
    Delta::compute_in_memory(&source, &plain, &mut plain_delta, &mut ok).unwrap();
    assert!(has(&plain_delta, &secret[..32]));
    assert_eq!(
        (plain_delta[20], delta[20]),
        (0, 1),
        "mode byte: plain, sealed"
    );
}

#[test]
fn another_key_or_mode_is_refused() {
    let (k1, k2) = (key(), key());
    let img = rnd(20_000, 13);
    let file = sealed_sig(&img, &k1);
    let e = Signature::from_reader_sealed(&file[..], &k2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let e = Signature::from_reader(&file[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("sealed"), "{e}");
    // With a key, a plain signature is refused: anyone can write one.
    let mut plain = Vec::new();
    Signature::of(&img, CS)
        .unwrap()
        .to_writer(&mut plain)
        .unwrap();
    let e = Signature::from_reader_sealed(&plain[..], &k1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    // A keyed signature is not written plain, nor under another key, nor used with another.
    let sig = Signature::of_keyed(&img, CS, &k1).unwrap();
    assert_eq!(
        sig.to_writer(Vec::new()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        sig.to_writer_sealed(Vec::new(), &k2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let e = Delta::compute_sealed_in_memory(&img, &sig, &k2, Vec::new(), &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    // Deltas: another key, or a plain delta given to the sealed apply, or the reverse.
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source.clone(), target.clone(), true);
    let e = Delta::apply_sealed(&p.d, &p.t, &k2, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let e = Delta::apply(&p.d, &p.t, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let plain = Pair::new(source, target, false);
    let e = Delta::apply_sealed(&plain.d, &plain.t, &plain.key, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    for q in [&p, &plain] {
        assert_eq!(std::fs::read(&q.t).unwrap(), q.target);
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused_before_the_target_is_touched() {
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source, target, true);
    let delta = std::fs::read(&p.d).unwrap();
    for i in 0..delta.len() {
        let mut b = delta.clone();
        b[i] ^= 0x20;
        // Damage: the trailer catches it, whatever the byte.
        p.refused(&b, Some(ErrorKind::Corrupt), &format!("byte {i}"));
        // Forgery (the trailer recomputed): refused all the same. A field out of its range is
        // Corrupt; the key id, the salt and a frame's contents are the key's to catch.
        let keyed =
            (72..DELTA_HEADER).contains(&i) || (DELTA_HEADER + 8..delta.len() - 32).contains(&i);
        let kind = keyed.then_some(ErrorKind::Authentication);
        if i < delta.len() - 32 {
            p.refused(&retrailed(b), kind, &format!("forged byte {i}"));
        }
    }
    let img = rnd(20_000, 14);
    let sig = sealed_sig(&img, &p.key);
    for i in 0..sig.len() {
        let mut b = sig.clone();
        b[i] ^= 0x20;
        let e = Signature::from_reader_sealed(&b[..], &p.key).unwrap_err();
        if i >= 16 {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "byte {i}: {e}");
        } else {
            assert_ne!(e.kind(), ErrorKind::Authentication, "byte {i}: {e}");
        }
    }
}

#[test]
fn truncated_files_are_refused() {
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source, target, true);
    let delta = std::fs::read(&p.d).unwrap();
    for cut in (0..delta.len()).step_by(37) {
        p.refused(
            &delta[..cut],
            Some(ErrorKind::Corrupt),
            &format!("cut {cut}"),
        );
        if cut > 32 {
            p.refused(
                &retrailed(delta[..cut].to_vec()),
                None,
                &format!("cut {cut}"),
            );
        }
    }
    let sig = sealed_sig(&rnd(20_000, 15), &p.key);
    for cut in 0..sig.len() {
        assert!(Signature::from_reader_sealed(&sig[..cut], &p.key).is_err());
    }
}

#[test]
fn frames_reordered_dropped_or_cut_are_refused() {
    // A delta of more than three frames: 3.5 MiB of incompressible chunks.
    let source = rnd(3 * FRAME + FRAME / 2, 16);
    let p = Pair::new(source, Vec::new(), true);
    let delta = std::fs::read(&p.d).unwrap();
    let full = 8 + FRAME + 16; // frame header, plaintext, tag
    let frame = |k: usize| DELTA_HEADER + k * full..DELTA_HEADER + (k + 1) * full;
    let mut swapped = delta.clone();
    swapped[frame(0)].copy_from_slice(&delta[frame(1)]);
    swapped[frame(1)].copy_from_slice(&delta[frame(0)]);
    p.refused(
        &retrailed(swapped),
        Some(ErrorKind::Authentication),
        "frames 0 and 1 swapped",
    );
    let dropped = [&delta[..frame(1).start], &delta[frame(1).end..]].concat();
    p.refused(
        &retrailed(dropped),
        Some(ErrorKind::Authentication),
        "frame 1 dropped",
    );
    // Cut after a full frame, with its flag set as the last: its tag no longer authenticates.
    let mut cut = delta[..frame(1).end].to_vec();
    cut[frame(1).start + 4] = 1;
    cut.extend_from_slice(&[0; 32]);
    p.refused(
        &retrailed(cut),
        Some(ErrorKind::Authentication),
        "cut at frame 2",
    );
    let cut = [&delta[..frame(2).end], &[0; 32][..]].concat();
    p.refused(
        &retrailed(cut),
        Some(ErrorKind::Corrupt),
        "last frames missing",
    );
    // Intact, it applies (the target grows from nothing).
    p.apply(&p.d, true).unwrap();
    assert_eq!(std::fs::read(&p.t).unwrap(), p.source);
}

#[test]
fn apply_onto_the_wrong_target_is_refused_and_leaves_it_unchanged() {
    for keyed in [true, false] {
        let (source, target) = one_chunk_changed();
        let p = Pair::new(source.clone(), target.clone(), keyed);
        let wrong = |bytes: &[u8], what: &str| {
            std::fs::write(&p.t, bytes).unwrap();
            let e = p.apply(&p.d, keyed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{what}: {e}");
            assert!(
                e.to_string()
                    .contains("not the image the signature was taken of"),
                "{what}: {e}"
            );
            assert_eq!(
                std::fs::read(&p.t).unwrap(),
                bytes,
                "{what}: target changed"
            );
        };
        wrong(&rnd(target.len(), 99), "another image");
        // An older copy: a chunk the delta overwrites was different then; the first chunk
        // the delta writes matches, so only a check of every chunk before writing catches it.
        let mut older = target.clone();
        older[3 * CS as usize + 5] ^= 1;
        wrong(&older, "an older copy");
        wrong(&target[..target.len() - 1], "a shorter target");
        wrong(&[&target[..], &[0; 4096][..]].concat(), "a longer target");
        // The right one applies.
        std::fs::write(&p.t, &target).unwrap();
        p.apply(&p.d, keyed).unwrap();
        assert_eq!(std::fs::read(&p.t).unwrap(), source);
    }
}

#[test]
fn an_interrupted_apply_converges_when_run_again() {
    // A crash after some chunks: every chunk is old or new (a copy, half applied).
    let target = rnd(2 << 20, 17);
    let mut source = target.clone();
    for k in (0..source.len()).step_by(7 * CS as usize) {
        source[k..k + 100].fill(0xAB);
    }
    source.extend_from_slice(&rnd(300_000, 18)); // grows, so the size is in between
    let p = Pair::new(source.clone(), target.clone(), true);
    let mut half = source[..source.len() / 2 / CS as usize * CS as usize].to_vec();
    half.extend_from_slice(&target[half.len()..]);
    std::fs::write(&p.t, &half).unwrap();
    p.apply(&p.d, true).unwrap();
    assert_eq!(std::fs::read(&p.t).unwrap(), source);

    // Cancelled by the progress callback in the write pass, after its first report (4 MiB).
    let target = vec![7u8; 9 << 20];
    let source = rnd(9 << 20, 19);
    let p = Pair::new(source.clone(), target.clone(), true);
    let mut calls = Vec::new();
    let e = Delta::apply_sealed(&p.d, &p.t, &p.key, &mut |done, total| {
        calls.push(done);
        done <= total / 2
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    let now = std::fs::read(&p.t).unwrap();
    assert!(
        now != target && now != source,
        "cancelled in the middle: {calls:?}"
    );
    let st = Delta::apply_sealed(&p.d, &p.t, &p.key, &mut ok).unwrap();
    assert_eq!(st.final_size, source.len() as u64);
    assert_eq!(std::fs::read(&p.t).unwrap(), source);
}

#[test]
fn a_torn_chunk_is_refused_not_guessed() {
    // A power cut mid-chunk leaves a chunk that is neither old nor new: apply refuses it (a new
    // signature of the target, and a delta against it, repair it).
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source.clone(), target.clone(), true);
    let mut torn = target.clone();
    let c = CS as usize;
    torn[c..c + 100].copy_from_slice(&source[c..c + 100]);
    torn[c + 100..c + 2000].copy_from_slice(&rnd(1900, 20)); // neither
    std::fs::write(&p.t, &torn).unwrap();
    let e = p.apply(&p.d, true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let sig = Signature::compute_keyed(&p.t, CS, &p.key, &mut ok).unwrap();
    let d2 = p.d.with_extension("2");
    let out = std::fs::File::create(&d2).unwrap();
    let s = p.t.with_extension("src");
    std::fs::write(&s, &source).unwrap();
    Delta::compute_sealed(&s, &sig, &p.key, out, &mut ok).unwrap();
    p.apply(&d2, true).unwrap();
    assert_eq!(std::fs::read(&p.t).unwrap(), source);
}

#[test]
fn files_of_the_previous_major_version_are_refused() {
    let img = rnd(9000, 21);
    let key = key();
    for sealed in [false, true] {
        let mut sig = Vec::new();
        let s = if sealed {
            Signature::of_keyed(&img, CS, &key).unwrap()
        } else {
            Signature::of(&img, CS).unwrap()
        };
        if sealed {
            s.to_writer_sealed(&mut sig, &key).unwrap();
        } else {
            s.to_writer(&mut sig).unwrap();
        }
        sig[8] = 1;
        let sig = retrailed(sig);
        let e = if sealed {
            Signature::from_reader_sealed(&sig[..], &key).unwrap_err()
        } else {
            Signature::from_reader(&sig[..]).unwrap_err()
        };
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion, "{e}");
    }
    let (source, target) = one_chunk_changed();
    let p = Pair::new(source, target, true);
    let mut d = std::fs::read(&p.d).unwrap();
    d[8] = 1;
    p.refused(
        &retrailed(d),
        Some(ErrorKind::UnsupportedVersion),
        "version 1",
    );
}

/// The streamed forms (issue 18: memory bounded): a signature written as the image is hashed
/// reads back as the in-memory one, plain and sealed; a delta computed from the signature's
/// file is the in-memory one's (it applies to the same bytes); a signature of the other mode,
/// or under another key, is refused.
#[test]
fn streamed_signature_and_delta_match_the_in_memory_ones() {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    for (n, (source, target)) in [
        one_chunk_changed(),
        (rnd(20_000, 3), rnd(9_000, 4)),
        (rnd(9_000, 5), rnd(20_000, 6)),
        (rnd(9_000, 7), Vec::new()),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, t) = (
            dir.path().join(format!("s{n}")),
            dir.path().join(format!("t{n}")),
        );
        std::fs::write(&s, &source).unwrap();
        std::fs::write(&t, &target).unwrap();
        for keyed in [false, true] {
            let k = keyed.then_some(&key);
            let mut bytes = Vec::new();
            let (size, root) = Signature::write_of_image(&t, CS, k, &mut bytes, &mut ok).unwrap();
            let (read, want) = if keyed {
                (
                    Signature::from_reader_sealed(&bytes[..], &key).unwrap(),
                    Signature::of_keyed(&target, CS, &key).unwrap(),
                )
            } else {
                (
                    Signature::from_reader(&bytes[..]).unwrap(),
                    Signature::of(&target, CS).unwrap(),
                )
            };
            assert_eq!(read, want);
            assert_eq!((size, root), (target.len() as u64, want.root()));
            let sig = dir.path().join(format!("sig{n}{keyed}"));
            std::fs::write(&sig, &bytes).unwrap();
            let mut delta = Vec::new();
            let st = Delta::compute_from_file(&s, &sig, k, &mut delta, &mut ok).unwrap();
            assert_eq!(st.chunks, source.len().div_ceil(CS as usize) as u64);
            let mut got = target.clone();
            if keyed {
                Delta::apply_sealed_in_memory(&delta, &mut got, &key, 1 << 30, &mut ok).unwrap();
            } else {
                Delta::apply_in_memory(&delta, &mut got, 1 << 30, &mut ok).unwrap();
            }
            assert_eq!(got, source);
            // The other mode, or another key: refused.
            let other = if keyed { None } else { Some(&key) };
            assert!(Delta::compute_from_file(&s, &sig, other, &mut Vec::new(), &mut ok).is_err());
            if keyed {
                let e = Delta::compute_from_file(
                    &s,
                    &sig,
                    Some(&common::key(8)),
                    &mut Vec::new(),
                    &mut ok,
                )
                .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
            }
        }
    }
}
