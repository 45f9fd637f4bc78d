//! ExtentMap insert and overlay at one million extents.
//!
//! The "physical limit" of an in-memory ordered map is the ordered map itself: the baseline
//! inserts the same keys into a bare `BTreeMap<u64, u64>`. An ExtentMap insert costs the
//! baseline's O(log n) plus the split and trim work; the ratio of the two is the figure to watch
//! (it stays flat as n grows if inserts are O(log n), and would grow with n if they were O(n)).
//!
//! Inputs are not flattering: 4 KiB-aligned writes at random offsets with random lengths
//! (4 KiB to 64 KiB), so inserts overlap, split and trim older extents, on a 1 TiB disk.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use replicore::{BlobId, ExtentMap, Source};

const DISK: u64 = 1 << 40;

/// A small deterministic generator (xorshift64*), so every run measures the same inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` writes: (start, len, source).
fn writes(n: usize, seed: u64) -> Vec<(u64, u64, Source)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let len = 4096 * (1 + rng.next() % 16);
            let start = (rng.next() % (DISK / 4096 - 16)) * 4096;
            let id = BlobId(blake3::hash(&(i as u64).to_le_bytes()).into());
            (start, len, Source::Blob { id, offset: 0 })
        })
        .collect()
}

fn build(ws: &[(u64, u64, Source)]) -> ExtentMap {
    let mut m = ExtentMap::new(DISK).unwrap();
    for &(s, l, src) in ws {
        m.insert(s, l, src).unwrap();
    }
    m
}

fn bench_insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("extent_insert");
    g.sample_size(10);
    for n in [10_000usize, 1_000_000] {
        let ws = writes(n, 0x5eed);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("extent_map", n), &ws, |b, ws| {
            b.iter(|| black_box(build(ws)).len())
        });
        g.bench_with_input(BenchmarkId::new("baseline_btreemap", n), &ws, |b, ws| {
            b.iter(|| {
                let mut m = BTreeMap::new();
                for &(s, l, _) in ws {
                    m.insert(s, l);
                }
                black_box(m).len()
            })
        });
    }
    g.finish();
}

fn bench_overlay(c: &mut Criterion) {
    let mut g = c.benchmark_group("extent_overlay");
    g.sample_size(10);
    let n = 1_000_000usize;
    let older = build(&writes(n, 1));
    let newer = build(&writes(n, 2));
    g.throughput(Throughput::Elements(newer.len() as u64));
    g.bench_function(BenchmarkId::new("overlay_1M_on_1M", n), |b| {
        b.iter_batched(
            || older.clone(),
            |mut m| {
                m.overlay(&newer).unwrap();
                m.len()
            },
            BatchSize::LargeInput,
        )
    });
    // Baseline: the same inserts into a bare ordered map holding the older map's keys.
    let older_keys: BTreeMap<u64, u64> = older.iter().map(|e| (e.start, e.len)).collect();
    g.bench_function(BenchmarkId::new("baseline_btreemap", n), |b| {
        b.iter_batched(
            || older_keys.clone(),
            |mut m| {
                for e in newer.iter() {
                    m.insert(e.start, e.len);
                }
                m.len()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_insert, bench_overlay);
criterion_main!(benches);
