//! Resync: signatures, deltas and apply on random image pairs.
//!
//! Protects: after apply (or `resync`), the target is byte-identical to the source for every
//! shape of pair (sizes not multiples of the chunk size, all-zero, all-different, identical,
//! grown, shrunk); the parallel signature equals the serial one; applying twice, or after a
//! partial apply, converges; damaged signature and delta files are refused with a typed error,
//! and a damaged delta never touches the target; cancellation stops work.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use replicore::ErrorKind;
use replicore::resync::{Delta, Signature, resync};

const CS: u32 = 4096;

fn ok(_: u64, _: u64) -> bool {
    true
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Sizes around the chunk size, and larger images that take the memory-map path (>= 1 MiB).
fn shapes() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let rnd = |n: usize, seed: u64| -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let base = rnd(3 * 4096 + 1234, 1);
    let mut changed = base.clone();
    changed[5000..5100].fill(7);
    let mut big = rnd(1 << 21, 2);
    big[(1 << 20)..(1 << 20) + 300_000].fill(0);
    let mut big_changed = big.clone();
    big_changed[100..200].fill(1);
    big_changed[(1 << 20) + 8192..(1 << 20) + 12288].fill(9); // inside the zero run
    big_changed[1_500_000..1_600_000].fill(0); // new zeros
    vec![
        ("identical", base.clone(), base.clone()),
        ("one chunk changed", changed.clone(), base.clone()),
        ("all different", rnd(base.len(), 3), base.clone()),
        ("all zero source", vec![0; base.len()], base.clone()),
        ("all zero target", base.clone(), vec![0; base.len()]),
        ("grown", rnd(base.len() + 9000, 4), base.clone()),
        (
            "grown with zeros",
            [base.clone(), vec![0; 10_000]].concat(),
            base.clone(),
        ),
        ("shrunk", base[..5000].to_vec(), base.clone()),
        ("shrunk to nothing", Vec::new(), base.clone()),
        ("from nothing", base.clone(), Vec::new()),
        ("large, mapped", big_changed, big),
    ]
}

fn via_delta_file(dir: &Path, source: &[u8], target: &[u8]) -> replicore::resync::DeltaStats {
    let (s, t, d) = (dir.join("s.img"), dir.join("t.img"), dir.join("x.rcdelta"));
    write(&s, source);
    write(&t, target);
    let sig = Signature::compute(&t, CS, &mut ok).unwrap();
    let mut sig_bytes = Vec::new();
    sig.to_writer(&mut sig_bytes).unwrap();
    let sig = Signature::from_reader(&sig_bytes[..]).unwrap();
    let stats = Delta::compute(&s, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    assert_eq!(stats.delta_bytes, std::fs::metadata(&d).unwrap().len());
    Delta::apply(&d, &t, &mut ok).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), source);
    // Idempotent.
    Delta::apply(&d, &t, &mut ok).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), source);
    stats
}

#[test]
fn every_shape_ends_identical_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, target) in shapes() {
        let stats = via_delta_file(dir.path(), &source, &target);
        if name == "identical" {
            assert_eq!(stats.data_chunks + stats.zero_chunks, 0, "{name}");
        }
        if name == "one chunk changed" {
            assert_eq!((stats.data_chunks, stats.data_bytes), (1, 4096), "{name}");
        }
        let (s, t) = (dir.path().join("s2.img"), dir.path().join("t2.img"));
        write(&s, &source);
        write(&t, &target);
        resync(&s, &t, CS, &mut ok).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), source, "{name}");
    }
}

#[test]
fn zero_chunks_become_holes() {
    let dir = tempfile::tempdir().unwrap();
    let target = vec![0xabu8; 4 << 20];
    let mut source = target.clone();
    source[(1 << 20)..(3 << 20)].fill(0);
    let stats = via_delta_file(dir.path(), &source, &target);
    assert_eq!(stats.zero_chunks, 512);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(dir.path().join("t.img"))
            .unwrap()
            .blocks()
            * 512;
        assert!(
            blocks <= (2 << 20) + 65536,
            "{blocks} bytes allocated: the zero chunks were written, not punched"
        );
    }
}

#[test]
fn a_resync_to_a_missing_target_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (dir.path().join("s"), dir.path().join("new"));
    write(&s, b"some bytes that are not a whole chunk");
    let stats = resync(&s, &t, CS, &mut ok).unwrap();
    assert_eq!(stats.data_chunks, 1);
    assert_eq!(std::fs::read(&t).unwrap(), std::fs::read(&s).unwrap());
}

#[test]
fn a_partial_apply_converges_when_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_, source, target) = shapes()
        .into_iter()
        .find(|s| s.0 == "large, mapped")
        .unwrap();
    let (s, t, d) = (
        dir.path().join("s"),
        dir.path().join("t"),
        dir.path().join("d"),
    );
    write(&s, &source);
    write(&t, &target);
    let sig = Signature::compute(&t, CS, &mut ok).unwrap();
    Delta::compute(&s, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    // A crash mid-apply left some chunks new, some old, and the size unset.
    let mut half = target.clone();
    half[..source.len() / 2].copy_from_slice(&source[..source.len() / 2]);
    write(&t, &half);
    Delta::apply(&d, &t, &mut ok).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), source);
}

#[test]
fn serial_and_parallel_signatures_agree() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, _) in shapes() {
        let p = dir.path().join("img");
        write(&p, &source);
        for cs in [4096, 65536, 8 << 20] {
            let par = Signature::compute(&p, cs, &mut ok).unwrap();
            let ser = Signature::compute_serial(&p, cs, &mut ok).unwrap();
            assert_eq!(par, ser, "{name} at {cs}");
            assert_eq!(par.root(), ser.root());
            assert_eq!(par.disk_size(), source.len() as u64);
        }
    }
}

#[test]
fn bad_arguments_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img");
    write(&p, &vec![1u8; 3 << 20]);
    for cs in [0, 1000, 2048, 16 << 20, 65537] {
        assert_eq!(
            Signature::compute(&p, cs, &mut ok).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{cs}"
        );
    }
    assert_eq!(
        Signature::compute(dir.path().join("missing"), CS, &mut ok)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let mut calls = 0;
    let e = Signature::compute(&p, CS, &mut |_, _| {
        calls += 1;
        false
    })
    .unwrap_err();
    assert_eq!((e.kind(), calls), (ErrorKind::Cancelled, 1));
    let e = resync(&p, dir.path().join("t"), CS, &mut |_, _| false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    // A delta against a non-empty signature does not create a missing target.
    let sig = Signature::compute(&p, CS, &mut ok).unwrap();
    let d = dir.path().join("d");
    Delta::compute(&p, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    assert_eq!(
        Delta::apply(&d, dir.path().join("nope"), &mut ok)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

fn is_refusal(k: ErrorKind) -> bool {
    matches!(
        k,
        ErrorKind::Corrupt | ErrorKind::UnsupportedVersion | ErrorKind::InvalidArgument
    )
}

#[test]
fn damaged_signatures_are_refused() {
    let img: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let sig = Signature::of(&img, CS).unwrap();
    let mut bytes = Vec::new();
    sig.to_writer(&mut bytes).unwrap();
    for cut in 0..bytes.len() {
        let e = Signature::from_reader(&bytes[..cut]).unwrap_err();
        assert!(is_refusal(e.kind()), "cut {cut}: {e}");
    }
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let e = Signature::from_reader(&bad[..]).unwrap_err();
        assert!(is_refusal(e.kind()), "byte {i}: {e}");
    }
}

#[test]
fn damaged_deltas_never_touch_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let (_, source, target) = shapes()
        .into_iter()
        .find(|s| s.0 == "one chunk changed")
        .unwrap();
    let (s, t, d, bad) = (
        dir.path().join("s"),
        dir.path().join("t"),
        dir.path().join("d"),
        dir.path().join("bad"),
    );
    write(&s, &source);
    write(&t, &target);
    let sig = Signature::compute(&t, CS, &mut ok).unwrap();
    Delta::compute(&s, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    let delta = std::fs::read(&d).unwrap();
    let mut cases: Vec<Vec<u8>> = (0..delta.len())
        .step_by(7)
        .map(|cut| delta[..cut].to_vec())
        .collect();
    for i in 0..delta.len() {
        let mut b = delta.clone();
        b[i] ^= 0x04;
        cases.push(b);
    }
    for case in cases {
        std::fs::File::create(&bad)
            .unwrap()
            .write_all(&case)
            .unwrap();
        let e = Delta::apply(&bad, &t, &mut ok).unwrap_err();
        assert!(is_refusal(e.kind()), "{e}");
        assert_eq!(
            std::fs::read(&t).unwrap(),
            target,
            "a damaged delta changed the target: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_pairs(src_len in 0usize..40_000, tgt_len in 0usize..40_000, edits in prop::collection::vec((0usize..40_000, 1usize..5000, 0u8..3), 0..8), seed in any::<u8>()) {
        let dir = tempfile::tempdir().unwrap();
        let target: Vec<u8> = (0..tgt_len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        let mut source: Vec<u8> = (0..src_len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        for (at, len, kind) in edits {
            let at = at.min(src_len);
            let end = (at + len).min(src_len);
            source[at..end].fill(match kind { 0 => 0, 1 => 0x55, _ => seed });
        }
        via_delta_file(dir.path(), &source, &target);
    }
}

#[test]
fn holes_of_sparse_images_hash_as_zeros_without_being_read() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sparse.img");
    let mut f = std::fs::File::create(&p).unwrap();
    f.set_len(64 << 20).unwrap();
    // Data in three places (one straddling a chunk boundary), holes everywhere else.
    for (at, byte) in [(0u64, 1u8), ((20 << 20) + 65_500, 2), ((64 << 20) - 100, 3)] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[byte; 100]).unwrap();
    }
    drop(f);
    let bytes = std::fs::read(&p).unwrap();
    let from_file = Signature::compute(&p, 65536, &mut ok).unwrap();
    assert_eq!(from_file, Signature::of(&bytes, 65536).unwrap());
    assert_eq!(
        from_file,
        Signature::compute_serial(&p, 65536, &mut ok).unwrap()
    );
    assert_eq!(from_file.hashes().len() as u64 - from_file.zero_chunks(), 4);
    // A resync between sparse images copies just those chunks.
    let t = dir.path().join("t.img");
    std::fs::File::create(&t)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let stats = resync(&p, &t, 65536, &mut ok).unwrap();
    assert_eq!(stats.data_chunks, 4);
    assert_eq!(std::fs::read(&t).unwrap(), bytes);
}

/// Writes `marks` (offset, byte) as 100-byte runs into a sparse file of `len` bytes.
fn sparse(path: &Path, len: u64, marks: &[(u64, u8)]) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    for &(at, byte) in marks {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[byte; 100]).unwrap();
    }
}

/// Images of several 64 MiB hashing batches: the batches are pipelined (the next hashed while
/// the previous is written), so this checks order, progress and cancellation across batches.
#[test]
fn large_images_resync_across_batches_in_order() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (dir.path().join("s.img"), dir.path().join("t.img"));
    let len = 3 * 64 * MIB + 5 * MIB + 123;
    let marks: Vec<(u64, u8)> = [
        0,
        64 * MIB - 50,
        64 * MIB,
        130 * MIB,
        192 * MIB + 7,
        len - 100,
    ]
    .iter()
    .zip(1u8..)
    .map(|(&at, b)| (at, b))
    .collect();
    sparse(&s, len, &marks);
    sparse(&t, len - 3 * MIB, &marks[1..2]);
    let mut seen = Vec::new();
    let stats = resync(&s, &t, 65536, &mut |d, total| {
        seen.push((d, total));
        true
    })
    .unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), std::fs::read(&s).unwrap());
    assert_eq!(stats.chunks, len.div_ceil(65536));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    let total = seen[0].1;
    assert_eq!(seen.last(), Some(&(total, total)));
    // Through a delta file, from a grown target back (shrinks), serial and parallel signatures.
    sparse(&t, len + 9 * MIB, &marks[2..4]);
    let sig = Signature::compute(&t, 65536, &mut ok).unwrap();
    assert_eq!(sig, Signature::compute_serial(&t, 65536, &mut ok).unwrap());
    let d = dir.path().join("d");
    Delta::compute(&s, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    Delta::apply(&d, &t, &mut ok).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), std::fs::read(&s).unwrap());
    // Cancelled after the second batch: no third report, and the call fails as Cancelled.
    let mut calls = 0;
    let e = Signature::compute(&s, 65536, &mut |_, _| {
        calls += 1;
        calls < 2
    })
    .unwrap_err();
    assert_eq!((e.kind(), calls), (ErrorKind::Cancelled, 2));
}

/// Small writes in the holes of sparse images, on either side (the local resync compares a
/// chunk that is partly a hole by its data ranges only, never faulting the holes in): every
/// case ends byte for byte, and only the chunks that differ are written.
#[test]
fn small_writes_in_the_holes_of_sparse_images_resync_whole() {
    use std::os::unix::fs::FileExt;
    const K: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (dir.path().join("s.img"), dir.path().join("t.img"));
    let len = 64 * K + 1000;
    let noise = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
            .collect()
    };
    let (fs, ft) = (
        std::fs::File::create(&s).unwrap(),
        std::fs::File::create(&t).unwrap(),
    );
    fs.set_len(len).unwrap();
    ft.set_len(len).unwrap();
    // (offset, bytes on the source, bytes on the target); None: a hole there.
    type Case = (u64, Option<Vec<u8>>, Option<Vec<u8>>);
    let four = 4096usize;
    let cases: Vec<Case> = vec![
        // The same 4 KiB on both, in otherwise empty chunks: nothing to copy.
        (K + 8192, Some(noise(four, 1)), Some(noise(four, 1))),
        // Only on the source; only on the target (zeroed there).
        (3 * K + 4096, Some(noise(four, 2)), None),
        (5 * K, None, Some(noise(four, 3))),
        // At different places of one chunk, the same bytes.
        (7 * K, Some(noise(four, 4)), None),
        (7 * K + 32768, None, Some(noise(four, 4))),
        // Differing by one byte; zeros written over a hole on one side.
        (
            9 * K + 12288,
            Some(noise(four, 5)),
            Some({
                let mut v = noise(four, 5);
                v[100] ^= 1;
                v
            }),
        ),
        (11 * K, Some(vec![0; four]), None),
        // Across a chunk's end, on the source only.
        (13 * K - 2048, Some(noise(four, 6)), None),
        // In the last, short chunk.
        (64 * K + 100, Some(noise(512, 7)), Some(noise(512, 8))),
    ];
    for (at, src, tgt) in &cases {
        if let Some(b) = src {
            fs.write_all_at(b, *at).unwrap();
        }
        if let Some(b) = tgt {
            ft.write_all_at(b, *at).unwrap();
        }
    }
    let want = std::fs::read(&s).unwrap();
    let stats = resync(&s, &t, K as u32, &mut ok).unwrap();
    assert_eq!(std::fs::read(&t).unwrap(), want);
    // Chunks 3 (data), 5 (zeroed), 7 (differs: the same bytes at other places), 9 (one
    // byte), 12 and 13 (across the end), 64 (the last); 1 and 11 are already the same.
    assert_eq!((stats.data_chunks, stats.zero_chunks), (6, 1), "{stats:?}");
}

/// A sparse source whose 1 MiB chunks hold a single 4 KiB write each, resynced into a missing
/// target (created) and onto one full of 0xff: the new target is as sparse as the source (not
/// a whole chunk allocated per write), and both end byte for byte the source.
#[cfg(unix)]
#[test]
fn long_zeros_in_a_chunk_are_holes_in_the_target() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.img");
    let mut model = vec![0u8; (16 << 20) + 1000];
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(model.len() as u64).unwrap();
    for c in 0..17usize {
        let at = ((c << 20) + c * 40_960).min(model.len() - 4096);
        let data: Vec<u8> = (0..4096).map(|i| (i * 7 + c + 1) as u8 | 1).collect();
        model[at..at + 4096].copy_from_slice(&data);
        f.write_all_at(&data, at as u64).unwrap();
    }
    drop(f);
    let new = dir.path().join("new.img");
    resync(&src, &new, 1 << 20, &mut ok).unwrap();
    assert_eq!(std::fs::read(&new).unwrap(), model);
    let allocated = std::fs::metadata(&new).unwrap().blocks() * 512;
    assert!(
        allocated <= 17 * (128 << 10),
        "{allocated} bytes allocated: whole chunks written"
    );
    let full = dir.path().join("full.img");
    write(&full, &vec![0xff; model.len()]);
    resync(&src, &full, 1 << 20, &mut ok).unwrap();
    assert_eq!(std::fs::read(&full).unwrap(), model);
}
