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
//! The comparison with rsync, rdiff and b3sum on the 4 GiB images of ../shared/bench is
//! `benches/peers/resync.sh`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use replicore::resync::{DEFAULT_CHUNK_SIZE, Signature, resync};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
