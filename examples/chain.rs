//! A day of recovery points for one disk, folded into the disk as of the newest point.
//!
//! Simulates what the vault does at failover, on the extent maps alone: 24 hourly points of a
//! 64 GiB disk, each with 20,000 guest writes (4 KiB to 256 KiB, 4 KiB-aligned, with a hot
//! region that is rewritten often) and a few trims, folded from the base to the newest point.
//! Then shows how bad input is refused.
//!
//! Run: `cargo run --release --example chain`

use std::time::Instant;

use replicore::{BlobId, ExtentMap, Piece, Source};

const GIB: u64 = 1 << 30;
const DISK: u64 = 64 * GIB;
const POINTS: u64 = 24;
const WRITES_PER_POINT: u64 = 20_000;

/// xorshift64*: deterministic, so every run shows the same numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn main() -> replicore::Result<()> {
    let mut rng = Rng(0x7e91_ca7e);
    let mut chain = Vec::new();
    for point in 0..POINTS {
        let mut map = ExtentMap::new(DISK)?;
        // One blob per point holds that point's writes back to back (as a bundle would).
        let blob = BlobId(*blake3::hash(&point.to_le_bytes()).as_bytes());
        let mut blob_offset = 0;
        for _ in 0..WRITES_PER_POINT {
            let len = 4096 * (1 + rng.next() % 64);
            // Half the writes land in a hot 1 GiB region (a database's log and tables).
            let region = if rng.next() % 2 == 0 { GIB } else { DISK };
            let start = (rng.next() % ((region - len) / 4096)) * 4096;
            if rng.next() % 50 == 0 {
                map.insert(start, len, Source::Zero)?; // a trim
            } else {
                map.insert(
                    start,
                    len,
                    Source::Blob {
                        id: blob,
                        offset: blob_offset,
                    },
                )?;
                blob_offset += len;
            }
        }
        chain.push(map);
    }

    let t = Instant::now();
    let mut disk = ExtentMap::fold(&chain)?;
    let fold_time = t.elapsed();
    let before = disk.len();
    disk.coalesce();

    let (mut gaps, mut zero, mut data) = (0u64, 0u64, 0u64);
    for p in disk.pieces() {
        match p {
            Piece::Gap { len, .. } => gaps += len,
            Piece::Mapped(e) if e.source == Source::Zero => zero += e.len,
            Piece::Mapped(e) => data += e.len,
        }
    }
    let total: usize = chain.iter().map(ExtentMap::len).sum();
    println!(
        "{POINTS} recovery points of a {} GiB disk, {total} extents in all",
        DISK / GIB
    );
    println!(
        "folded in {fold_time:.1?}: {before} extents, {} after coalescing",
        disk.len()
    );
    println!(
        "the disk at the newest point: {:.2} GiB from blobs, {:.2} GiB trimmed to zero, {:.2} GiB never written",
        data as f64 / GIB as f64,
        zero as f64 / GIB as f64,
        gaps as f64 / GIB as f64
    );

    println!("\nbad input is refused with a typed error:");
    let e = disk.insert(DISK - 4096, 8192, Source::Zero).unwrap_err();
    println!("  {:?}: {e}", e.kind());
    let e = ExtentMap::<Source>::new(u64::MAX).unwrap_err();
    println!("  {:?}: {e}", e.kind());
    Ok(())
}
