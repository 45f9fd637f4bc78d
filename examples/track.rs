//! The source side of replication, as far as it is built: a guest's writes tracked in a change
//! log through three replication intervals, rotated into sealed logs, a power cut in the middle
//! of the fourth interval, recovery, and the recovery points read back from the sealed logs.
//!
//! Run: `cargo run --release --example track`

use std::time::Instant;

use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, LogReader, MarkerKind, ResyncThreshold, SyncPolicy,
    changes_by_point,
};

const MIB: u64 = 1 << 20;

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
    let dir = tempfile::tempdir()
        .map_err(|e| replicore::Error::io("creating a scratch directory", None, e))?;
    let path = dir.path().join("vm-01.rclog");
    let mut config = LogConfig::new(
        "vm-01",
        vec![
            DiskSpec::new("os", 8 << 30),
            DiskSpec::new("data", 32 << 30),
        ],
    );
    config.sync = SyncPolicy::EveryBytes(4 * MIB);
    let mut log = ChangeLog::create(&path, &config)?;
    println!(
        "tracking group vm-01 (os 8 GiB, data 32 GiB) in {}",
        path.display()
    );

    let mut rng = Rng(0x5eed);
    let block = vec![0xa5u8; 64 << 10];
    let mut sealed = Vec::new();
    for interval in 0..4 {
        let start = Instant::now();
        let mut bytes = 0u64;
        for _ in 0..2_000 {
            let disk = (rng.next() % 2) as usize;
            let size = config.disks[disk].size;
            let len = 4096 * (1 + rng.next() % 16);
            let offset = (rng.next() % ((size - len) / 4096)) * 4096;
            if rng.next() % 40 == 0 {
                log.record_trim(disk, offset, len)?;
            } else {
                log.record_write(disk, offset, &block[..len as usize])?;
                bytes += len;
            }
        }
        let kind = if interval == 1 {
            MarkerKind::App
        } else {
            MarkerKind::Crash
        };
        if interval == 3 {
            // Power cut: records since the last sync may be lost; the log must not care.
            let tracker = log.tracker();
            drop(log);
            let len = std::fs::metadata(&path)
                .map_err(|e| replicore::Error::io("stat", Some(&path), e))?
                .len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| replicore::Error::io("open", Some(&path), e))?;
            file.set_len(len - 1234)
                .map_err(|e| replicore::Error::io("cut", Some(&path), e))?;
            let (l, recovery) = ChangeLog::open(
                &path,
                Some(&tracker),
                config.sync,
                ResyncThreshold::default(),
            )?;
            let torn = recovery.torn.expect("a cut mid-record leaves a torn tail");
            println!(
                "interval 4: power cut; reopened: dropped a torn tail of {} bytes at byte {}, {} records kept",
                torn.bytes,
                torn.at,
                l.records()
            );
            log = l;
            break;
        }
        let point = log.mark(kind, &format!("interval {}", interval + 1))?;
        let sealed_path = dir.path().join(format!("vm-01.g{interval}.rclog"));
        let rotated = log.rotate(&sealed_path)?;
        println!(
            "interval {}: {:.1} MiB written in {:.1?}; point {point} ({kind:?}) sealed in generation {} ({} records)",
            interval + 1,
            bytes as f64 / MIB as f64,
            start.elapsed(),
            rotated.generation,
            rotated.records
        );
        sealed.push(sealed_path);
    }
    log.sync()?;
    println!(
        "needs resync: {} (pending {} KiB)",
        log.needs_resync(),
        log.pending_bytes() / 1024
    );

    println!("\nrecovery points in the sealed logs:");
    for p in &sealed {
        let r = LogReader::open(p)?;
        let seal = r.seal().expect("sealed");
        for pc in changes_by_point(&r)?.points {
            let changed: u64 = pc.disks.iter().map(|m| m.mapped_bytes()).sum();
            let extents: usize = pc.disks.iter().map(|m| m.len()).sum();
            println!(
                "  point {} {:?} \"{}\": {:.1} MiB changed in {} extents (log {} records, {:.1} MiB of data)",
                pc.point,
                pc.marker.kind,
                pc.marker.label,
                changed as f64 / MIB as f64,
                extents,
                seal.records,
                seal.payload_bytes as f64 / MIB as f64
            );
        }
    }
    Ok(())
}
