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

const SIZE: usize = 256 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A third zeros, a third records (compressible), a third random, in runs of 1–16 MiB.
fn image(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        let run = ((1 + rng.next() % 16) << 20).min((SIZE - out.len()) as u64) as usize;
        match rng.next() % 3 {
            0 => out.resize(out.len() + run, 0),
            1 => {
                let start = out.len();
                while out.len() < start + run {
                    let rec = format!(
                        "{},host-{},GET /api/items/{},200,{}\n",
                        rng.next() % 100_000,
                        rng.next() % 16,
                        rng.next() % 5000,
                        rng.next() % 900
                    );
                    out.extend_from_slice(rec.as_bytes());
                }
                out.truncate(start + run);
            }
            _ => out.extend((0..run).map(|_| rng.next() as u8)),
        }
    }
    out
}

/// `base` with 1% of its bytes rewritten by scattered writes of 4–256 KiB.
fn changed(base: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let mut rng = Rng(99);
    let mut written = 0;
    while written < SIZE / 100 {
        let len = 4096 << (rng.next() % 7);
        let at = (rng.next() as usize % (SIZE - len)) & !4095;
        for b in &mut out[at..at + len] {
            *b = rng.next() as u8;
        }
        written += len;
    }
    out
}

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
