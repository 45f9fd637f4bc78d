//! Resync with block devices on both sides, through Linux loop devices.
//!
//! Protects: a block device's length is found by seeking (its metadata says 0); its signature
//! equals the one of the file behind it; a delta or a local resync writes a block device in
//! place (zeros written, not punched; the size is fixed, never set) and a device whose size
//! differs from the source's is refused before a byte is written; a sealed delta applies onto
//! the device its signature was taken of, and is refused, the device untouched, on another.
//!
//! Needs root and `losetup`, so it is `#[ignore]`d in the default run; `.ci/run` runs it with
//! `--ignored` as root and fails if it cannot attach a loop device.

#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::path::Path;

use common::{Loop, ok};

use replicore::ErrorKind;
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::resync::{Delta, Signature, resync};

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            if (i / 65536) % 3 == 0 {
                return 0; // every third chunk all zeros
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn device_bytes(dev: &Path, len: usize) -> Vec<u8> {
    let mut b = std::fs::read(dev).unwrap();
    b.truncate(len);
    b
}

#[test]
#[ignore = "needs root and a loop device; .ci/run runs it with --ignored"]
fn block_devices_as_source_and_target() {
    const LEN: usize = 24 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (src_file, tgt_file) = (dir.path().join("src.img"), dir.path().join("tgt.img"));
    let source = pattern(LEN, 7);
    let mut target = source.clone();
    for at in [0usize, 5 << 20, 13 << 20, LEN - 70_000] {
        target[at..at + 70_000].fill(0xA5);
    }
    std::fs::write(&src_file, &source).unwrap();
    std::fs::write(&tgt_file, &target).unwrap();
    let (src, tgt) = (Loop::attach(&src_file), Loop::attach(&tgt_file));
    assert_eq!(
        std::fs::metadata(&tgt.0).unwrap().len(),
        0,
        "st_size of a device"
    );

    // The length is found by seeking: the device's signature is the file's.
    let sig = Signature::compute(&tgt.0, 65536, &mut ok).unwrap();
    assert_eq!(sig.disk_size(), LEN as u64);
    assert_eq!(sig, Signature::of(&target, 65536).unwrap());
    assert_eq!(
        sig,
        Signature::compute_serial(&tgt.0, 65536, &mut ok).unwrap()
    );

    // A delta from the source device applied onto the target device.
    let d = dir.path().join("d.rcdelta");
    let stats = Delta::compute(&src.0, &sig, std::fs::File::create(&d).unwrap(), &mut ok).unwrap();
    assert!(stats.data_chunks > 0 && stats.zero_chunks > 0, "{stats:?}");
    Delta::apply(&d, &tgt.0, &mut ok).unwrap();
    assert_eq!(device_bytes(&tgt.0, LEN), source);
    // Applying again converges (idempotent).
    Delta::apply(&d, &tgt.0, &mut ok).unwrap();
    assert_eq!(device_bytes(&tgt.0, LEN), source);

    // Sealed: a keyed signature of the device (as the file's), a sealed delta; refused on a
    // device holding another image of the same size, applied on the right one.
    let key = KeyFile::create(Secret::Key(&MasterKey::generate().unwrap()))
        .unwrap()
        .1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tgt.0)
        .unwrap()
        .write_all(&target)
        .unwrap();
    let keyed = Signature::compute_keyed(&tgt.0, 65536, &key, &mut ok).unwrap();
    assert_eq!(keyed, Signature::of_keyed(&target, 65536, &key).unwrap());
    let sd = dir.path().join("sealed.rcdelta");
    let f = std::fs::File::create(&sd).unwrap();
    Delta::compute_sealed(&src.0, &keyed, &key, f, &mut ok).unwrap();
    let other_file = dir.path().join("other.img");
    let other_bytes = pattern(LEN, 11);
    std::fs::write(&other_file, &other_bytes).unwrap();
    let other = Loop::attach(&other_file);
    let e = Delta::apply_sealed(&sd, &other.0, &key, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(device_bytes(&other.0, LEN), other_bytes);
    Delta::apply_sealed(&sd, &tgt.0, &key, &mut ok).unwrap();
    assert_eq!(device_bytes(&tgt.0, LEN), source);

    // A local resync onto the device after damage, and back (failback: roles swapped).
    // (Written through the device, so its page cache sees it.)
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tgt.0)
        .unwrap()
        .write_all(&target)
        .unwrap();
    assert_eq!(device_bytes(&tgt.0, LEN), target);
    let s = resync(&src.0, &tgt.0, 65536, &mut ok).unwrap();
    assert!(s.data_chunks > 0, "{s:?}");
    assert_eq!(device_bytes(&tgt.0, LEN), source);
    resync(&tgt.0, &src_file, 4096, &mut ok).unwrap();
    assert_eq!(std::fs::read(&src_file).unwrap(), source);

    // A device of another size than the source is refused before anything is written.
    let small_file = dir.path().join("small.img");
    std::fs::write(&small_file, vec![0x5Au8; 8 << 20]).unwrap();
    let small = Loop::attach(&small_file);
    let e = resync(&src.0, &small.0, 65536, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = Delta::apply(&d, &small.0, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(device_bytes(&small.0, 8 << 20), vec![0x5Au8; 8 << 20]);
}
