//! Seed and blob-encoding hot paths beside the pipeline's limit, measured in the same run.
//!
//! - `seed`: `bundle::seed` of a 256 MiB image (a third zeros, a third compressible records, a
//!   third random) into a base bundle, against the limit: the same non-zero 1 MiB chunks each
//!   hashed with keyed BLAKE3, compressed with zstd -1 and sealed with AES-256-GCM on every
//!   core, with no framing, deduplication or writing. Throughput counts image bytes.
//! - `blob_encode_1MiB`: one thread encoding 1 MiB of records beside the same three stages on
//!   one thread.
//!
//! The comparison with restic and borg on the 4 GiB images of ../shared/bench is
//! `benches/peers/bundle.sh`.

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use replicore::bundle::{SeedOptions, seed};
use replicore::crypto::{KeyFile, MasterKey, Secret};

#[path = "support/images.rs"]
mod images;
use images::{SIZE, image};

const CHUNK: usize = 1 << 20;

/// Keyed BLAKE3, zstd -1 and AES-256-GCM of one chunk: the work per byte the pipeline cannot
/// avoid.
fn limit_one(chunk: &[u8], cipher: &Aes256Gcm) -> usize {
    let id = blake3::keyed_hash(&[1; 32], chunk);
    let mut packed = zstd::bulk::compress(chunk, 1).unwrap();
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from([0; 12]),
            id.as_bytes(),
            packed.as_mut_slice().into(),
        )
        .unwrap();
    packed.len() + tag.len()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let img = image(11);
    let path = dir.path().join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([3; 32]))).unwrap();
    let cipher = Aes256Gcm::new(&[2u8; 32].into());
    let nonzero: Vec<&[u8]> = img
        .chunks(CHUNK)
        .filter(|c| c.iter().any(|&b| b != 0))
        .collect();

    let mut g = c.benchmark_group("seed");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    let mut n = 0u32;
    g.bench_function("replicore_seed_1MiB", |b| {
        b.iter(|| {
            n += 1;
            let (log, out) = (
                dir.path().join(format!("{n}.rclog")),
                dir.path().join(format!("{n}.rcb")),
            );
            let s = seed(
                "g",
                &[("d", path.as_path())],
                &key,
                &log,
                &out,
                &SeedOptions::default(),
                &mut |_, _| true,
            )
            .unwrap();
            std::fs::remove_file(&log).unwrap();
            std::fs::remove_file(&out).unwrap();
            s.bundle.blobs
        })
    });
    g.bench_function("limit_blake3_zstd1_aesgcm_all_cores", |b| {
        b.iter(|| {
            nonzero
                .par_iter()
                .map(|c| limit_one(black_box(c), &cipher))
                .sum::<usize>()
        })
    });
    g.finish();

    let records = &img[..];
    let rec_chunk = nonzero
        .iter()
        .find(|c| c.iter().take(4096).all(|b| b.is_ascii()))
        .copied()
        .unwrap_or(&records[..CHUNK]);
    let mut g = c.benchmark_group("blob_encode_1MiB");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.bench_function("replicore_blob_encode", |b| {
        b.iter(|| {
            replicore::blob::encode(&key, black_box(rec_chunk), 1)
                .unwrap()
                .bytes
                .len()
        })
    });
    g.bench_function("limit_one_thread", |b| {
        b.iter(|| limit_one(black_box(rec_chunk), &cipher))
    });
    g.finish();

    // What signing adds to a blob's encoding (docs/FORMAT.md §12, §13): the derived nonce, a
    // keyed BLAKE3 over the compressed body (a raw blob's hashes 40 bytes); and the BLAKE3 of
    // the sealed bytes, which the point's signed blob table lists. Beside the encoding of the
    // same chunk, compressible and random, for their share of it.
    let random: Vec<u8> = {
        let mut r = images::Rng(0x9e37_79b9_7f4a_7c15);
        (0..CHUNK).map(|_| r.next() as u8).collect()
    };
    for (name, chunk) in [("records", rec_chunk), ("random", &random[..])] {
        let mut g = c.benchmark_group(format!("signing_share_1MiB_{name}"));
        g.throughput(Throughput::Bytes(CHUNK as u64));
        let sealed = replicore::blob::encode(&key, chunk, 1).unwrap().bytes;
        g.bench_function("blob_encode", |b| {
            b.iter(|| {
                replicore::blob::encode(&key, black_box(chunk), 1)
                    .unwrap()
                    .bytes
                    .len()
            })
        });
        let body = if sealed[0] == 2 {
            &sealed[20..sealed.len() - 16]
        } else {
            &sealed[..0]
        };
        g.bench_function("nonce_keyed_blake3", |b| {
            b.iter(|| blake3::keyed_hash(&[7; 32], black_box(body)))
        });
        g.bench_function("sealed_hash_blake3", |b| {
            b.iter(|| blake3::hash(black_box(&sealed)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
