//! Seed and ship timing tool, used by `benches/peers/bundle.sh` to compare with restic and borg
//! on the shared benchmark images.
//!
//! ```text
//! cargo run --release --example bundle -- seed IMAGE WORKDIR [CHUNK]
//! cargo run --release --example bundle -- ship IMAGE CHANGED WRITES WORKDIR [CHUNK]
//! cargo run --release --example bundle -- limit IMAGE [CHUNK]
//! ```
//! `limit` times the pipeline's limit in process: every non-zero chunk of IMAGE hashed with
//! keyed BLAKE3, compressed with zstd -1 and sealed with AES-256-GCM on every core, with no
//! framing, deduplication, skipping of incompressible data, or writing.
//! `seed` seeds one disk from IMAGE into WORKDIR (timed). `ship` seeds IMAGE (untimed), then
//! records the guest writes listed in WRITES (one `offset length` per line) with CHANGED's
//! bytes into the change log, marks a point, rotates and ships it (timed: what a primary does
//! per interval). Prints one line of `key=value` figures ending with `peak_anon_kib`.

use std::io::BufRead;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use replicore::bundle::{SeedOptions, ShipOptions, seed, ship};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::log::MarkerKind;

#[path = "support/anon.rs"]
mod anon;
use anon::AnonSampler;

fn main() -> replicore::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: bundle seed IMAGE WORKDIR [CHUNK] | ship IMAGE CHANGED WRITES WORKDIR [CHUNK]";
    let mode = args.get(1).expect(usage).as_str();
    if mode == "limit" {
        limit(&args[2], args.get(3));
        return Ok(());
    }
    let (image, work, chunk) = match mode {
        "seed" => (&args[2], &args[3], args.get(4)),
        "ship" => (&args[2], &args[5], args.get(6)),
        _ => panic!("{usage}"),
    };
    let work = Path::new(work);
    std::fs::create_dir_all(work).expect("creating WORKDIR");
    let options = SeedOptions {
        chunk_size: chunk.map_or(1 << 20, |c| c.parse().expect("chunk size in bytes")),
        ..SeedOptions::default()
    };
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::generate()?))?;
    let sampler = AnonSampler::start();
    let t = Instant::now();
    let disks = [("disk", Path::new(image))];
    let mut s = seed(
        "bench",
        &disks,
        &key,
        work.join("disk.rclog"),
        work.join("base.rcb"),
        &options,
        &mut |_, _| true,
    )?;
    let seed_s = t.elapsed().as_secs_f64();
    let base_bytes = s.bundle.file_bytes;
    if mode == "seed" {
        let size = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
        println!(
            "mode=seed seconds={seed_s:.3} image_bytes={size} bundle_bytes={base_bytes} blobs={} plain_bytes={} peak_anon_kib={}",
            s.bundle.blobs,
            s.bundle.plain_bytes,
            sampler.peak()
        );
        return Ok(());
    }
    let changed = std::fs::File::open(&args[3]).expect("opening CHANGED");
    let writes: Vec<(u64, usize)> =
        std::io::BufReader::new(std::fs::File::open(&args[4]).expect("WRITES"))
            .lines()
            .map(|l| {
                let l = l.expect("reading WRITES");
                let mut it = l
                    .split_whitespace()
                    .map(|v| v.parse::<u64>().expect("a number"));
                (
                    it.next().expect("offset"),
                    it.next().expect("length") as usize,
                )
            })
            .collect();
    let t = Instant::now();
    let mut buf = Vec::new();
    let mut captured = 0u64;
    for &(offset, len) in &writes {
        buf.resize(len, 0);
        changed
            .read_exact_at(&mut buf, offset)
            .expect("reading CHANGED");
        s.log.record_write(0, offset, &buf)?;
        captured += len as u64;
    }
    s.log.mark(MarkerKind::Crash, "interval")?;
    s.log.sync()?;
    let capture_s = t.elapsed().as_secs_f64();
    let sealed = work.join("sealed.rclog");
    s.log.rotate(&sealed)?;
    let rotate_s = t.elapsed().as_secs_f64() - capture_s;
    let shipped = ship(
        &sealed,
        &key,
        &mut s.state,
        work,
        &ShipOptions::default(),
        &mut |_, _| true,
    )?;
    let total_s = t.elapsed().as_secs_f64();
    let bundle_bytes: u64 = shipped.iter().map(|b| b.file_bytes).sum();
    println!(
        "mode=ship seconds={total_s:.3} capture={capture_s:.3} rotate={rotate_s:.3} seed={seed_s:.3} writes={} captured_bytes={captured} bundle_bytes={bundle_bytes} base_bytes={base_bytes} peak_anon_kib={}",
        writes.len(),
        sampler.peak()
    );
    Ok(())
}

fn limit(image: &str, chunk: Option<&String>) {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use rayon::prelude::*;
    let cs: usize = chunk.map_or(1 << 20, |c| c.parse().expect("chunk size in bytes"));
    let bytes = std::fs::read(image).expect("reading IMAGE");
    let cipher = aes_gcm::Aes256Gcm::new(&[2u8; 32].into());
    let chunks: Vec<&[u8]> = bytes
        .par_chunks(cs)
        .filter(|c| c.iter().any(|&b| b != 0))
        .collect();
    let t = Instant::now();
    let out: usize = chunks
        .par_iter()
        .map(|c| {
            let id = blake3::keyed_hash(&[1; 32], c);
            let mut packed = zstd::bulk::compress(c, 1).expect("zstd");
            let nonce = aes_gcm::Nonce::from([0; 12]);
            cipher
                .encrypt_inout_detached(&nonce, id.as_bytes(), packed.as_mut_slice().into())
                .expect("aes-gcm");
            packed.len()
        })
        .sum();
    println!(
        "mode=limit seconds={:.3} nonzero_bytes={} compressed_bytes={out}",
        t.elapsed().as_secs_f64(),
        chunks.iter().map(|c| c.len()).sum::<usize>()
    );
}
