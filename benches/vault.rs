//! Vault hot paths beside their limits, measured in the same run.
//!
//! - `ingest`: `Vault::ingest` of the base bundle of a 256 MiB image (a third zeros, a third
//!   compressible records, a third random) into a new vault, against the limit: reading the
//!   bundle's bytes hashed with BLAKE3 three times (the bundle's trailer, each stored blob for
//!   the pack index, the pack's trailer), side by side on every core, with no reading or
//!   writing. Throughput
//!   counts bundle bytes.
//! - `materialize`: `Vault::materialize` of that base point into a new image, against the
//!   limit: every blob of it decoded (AES-256-GCM opened, zstd decompressed, id re-hashed) on
//!   every core, with no reading from packs or writing. Throughput counts image bytes.
//!
//! The comparison with restic and borg on the 4 GiB images of ../shared/bench is
//! `benches/peers/vault.sh`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use replicore::bundle::{Bundle, SeedOptions, seed};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::vault::Vault;
use replicore::{BlobId, blob};

#[path = "support/images.rs"]
mod images;
use images::{SIZE, image};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, image(13)).unwrap();
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([4; 32]))).unwrap();
    let base = dir.path().join("base.rcb");
    let disks = [("disk", path.as_path())];
    let opts = SeedOptions::default();
    let log = dir.path().join("l.rclog");
    seed("g", &disks, &key, &log, &base, &opts, &mut |_, _| true).unwrap();
    let bundle_bytes = std::fs::read(&base).unwrap();
    let mut blobs: Vec<(BlobId, Vec<u8>)> = Vec::new();
    Bundle::open(&base)
        .unwrap()
        .for_each_blob(|id, b| {
            blobs.push((*id, b.to_vec()));
            Ok(())
        })
        .unwrap();

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bundle_bytes.len() as u64));
    let mut n = 0u32;
    g.bench_function("replicore_ingest", |b| {
        b.iter(|| {
            n += 1;
            let v = Vault::create(dir.path().join(format!("v{n}"))).unwrap();
            black_box(v.ingest(&base, &mut |_, _| true).unwrap());
            drop(v);
            std::fs::remove_dir_all(dir.path().join(format!("v{n}"))).unwrap();
        })
    });
    g.bench_function("limit_blake3_x3", |b| {
        b.iter(|| {
            // The two whole-file hashes are sequential by nature; run them side by side with
            // the per-blob hashes on the pool.
            let (whole, (pack, each)) = rayon::join(
                || blake3::hash(&bundle_bytes),
                || {
                    rayon::join(
                        || blake3::hash(&bundle_bytes),
                        || {
                            blobs
                                .par_iter()
                                .map(|(_, s)| blake3::hash(s))
                                .collect::<Vec<_>>()
                        },
                    )
                },
            );
            black_box((whole, pack, each))
        })
    });
    g.finish();

    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&base, &mut |_, _| true).unwrap();
    let point = v.points("g").unwrap()[0].id;
    let mut g = c.benchmark_group("materialize");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("replicore_materialize", |b| {
        b.iter(|| {
            n += 1;
            let out = dir.path().join(format!("m{n}.img"));
            black_box(
                v.materialize("g", point, "disk", &key, &out, &mut |_, _| true)
                    .unwrap(),
            );
            std::fs::remove_file(out).unwrap();
        })
    });
    g.bench_function("limit_decode_all_cores", |b| {
        b.iter(|| {
            let n: usize = blobs
                .par_iter()
                .map(|(id, s)| blob::decode(&key, id, s).unwrap().len())
                .sum();
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
