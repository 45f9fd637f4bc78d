//! Resync hot paths beside their physical limit, measured in the same run.
//!
//! - `signature`: `Signature::compute` of a 256 MiB image against the floor of hashing every
//!   byte with BLAKE3 on all cores in 64 KiB pieces (what `b3sum` does, in process). The image
//!   is realistic, not flattering: a third zeros, a third compressible records, a third random,
//!   in runs of 1 to 16 MiB. Skipping zero chunks lets the signature beat the floor.
//! - `resync_1pct`: a whole local resync (the target's signature, the source's hashes, the copy)
//!   of a 256 MiB pair with 1% of it rewritten by scattered 4–256 KiB writes, against the floor
//!   of hashing both images.
//!
//! - `signature_written`: the same signature written to a file, plain (BLAKE3) beside sealed
//!   (keyed BLAKE3, AES-256-GCM frames): the cost of sealing a signature.
//! - `delta_1pct`: the delta of the 1% pair against the stale image's signature, plain beside
//!   sealed (every entry and its data encrypted and authenticated).
//! - `apply_1pct`: that delta applied onto a fresh copy of the stale image, plain beside sealed
//!   (both check every chunk they overwrite against the signature first; sealed also
//!   authenticates every frame in the check pass and again in the write pass).
//!
//! The comparison with rsync, rdiff and b3sum on the 4 GiB images of ../shared/bench is
//! `benches/peers/resync.sh`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};
use replicore::resync::{DEFAULT_CHUNK_SIZE, Delta, Signature, resync};

#[path = "support/images.rs"]
mod images;
use images::{SIZE, changed, image};

fn floor_hash(bytes: &[u8]) -> usize {
    bytes
        .par_chunks(DEFAULT_CHUNK_SIZE as usize)
        .map(|c| blake3::hash(c).as_bytes()[0] as usize)
        .sum()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let base = image(7);
    let new = changed(&base);
    let (bp, np, tp) = (
        dir.path().join("base.img"),
        dir.path().join("new.img"),
        dir.path().join("target.img"),
    );
    std::fs::write(&bp, &base).unwrap();
    std::fs::write(&np, &new).unwrap();

    let mut g = c.benchmark_group("signature");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("replicore_signature_64KiB", |b| {
        b.iter(|| {
            Signature::compute(&bp, DEFAULT_CHUNK_SIZE, &mut |_, _| true)
                .unwrap()
                .zero_chunks()
        })
    });
    g.bench_function("floor_blake3_all_cores", |b| {
        b.iter(|| floor_hash(black_box(&base)))
    });
    g.finish();

    let mut g = c.benchmark_group("resync_1pct");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(2 * SIZE as u64));
    // A fresh stale copy for each run, made durable outside the timing (the resync's own final
    // sync then pays only for what it wrote).
    let copy_base = |to: &Path| {
        std::fs::copy(&bp, to).unwrap();
        std::fs::File::open(to).unwrap().sync_all().unwrap();
    };
    g.bench_function("replicore_resync", |b| {
        b.iter_custom(|n| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..n {
                copy_base(&tp);
                let t = std::time::Instant::now();
                resync(&np, &tp, DEFAULT_CHUNK_SIZE, &mut |_, _| true).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("floor_blake3_both_images", |b| {
        b.iter(|| floor_hash(&base) + floor_hash(&new))
    });
    g.finish();

    sealed(c, &bp, &np, &tp);
}

/// Plain beside sealed: signature, delta and apply of the 1% pair.
fn sealed(c: &mut Criterion, bp: &Path, np: &Path, tp: &Path) {
    let key: Key = KeyFile::create(Secret::Key(&MasterKey::from_bytes([9; 32])))
        .unwrap()
        .1;
    let ok = &mut |_: u64, _: u64| true;
    let cs = DEFAULT_CHUNK_SIZE;
    let mut g = c.benchmark_group("signature_written");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("plain", |b| {
        b.iter(|| {
            let sig = Signature::compute(bp, cs, &mut |_, _| true).unwrap();
            sig.to_writer(std::io::sink()).unwrap()
        })
    });
    g.bench_function("sealed", |b| {
        b.iter(|| {
            let sig = Signature::compute_keyed(bp, cs, &key, &mut |_, _| true).unwrap();
            sig.to_writer_sealed(std::io::sink(), &key).unwrap()
        })
    });
    g.finish();

    let plain_sig = Signature::compute(bp, cs, ok).unwrap();
    let keyed_sig = Signature::compute_keyed(bp, cs, &key, ok).unwrap();
    let mut g = c.benchmark_group("delta_1pct");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("plain", |b| {
        b.iter(|| Delta::compute(np, &plain_sig, std::io::sink(), &mut |_, _| true).unwrap())
    });
    g.bench_function("sealed", |b| {
        b.iter(|| {
            Delta::compute_sealed(np, &keyed_sig, &key, std::io::sink(), &mut |_, _| true).unwrap()
        })
    });
    g.finish();

    let (pd, sd) = (tp.with_extension("plain"), tp.with_extension("sealed"));
    let st = Delta::compute(np, &plain_sig, std::fs::File::create(&pd).unwrap(), ok).unwrap();
    let f = std::fs::File::create(&sd).unwrap();
    Delta::compute_sealed(np, &keyed_sig, &key, f, ok).unwrap();
    let mut g = c.benchmark_group("apply_1pct");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(st.delta_bytes));
    for (name, delta) in [("plain", &pd), ("sealed", &sd)] {
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..n {
                    std::fs::copy(bp, tp).unwrap();
                    std::fs::File::open(tp).unwrap().sync_all().unwrap();
                    let t = std::time::Instant::now();
                    let ok = &mut |_: u64, _: u64| true;
                    match name {
                        "plain" => Delta::apply(delta, tp, ok).unwrap(),
                        _ => Delta::apply_sealed(delta, tp, &key, ok).unwrap(),
                    };
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
