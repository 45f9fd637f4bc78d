//! A long chain for the retention benches: a 32 MiB disk seeded, then one point every 30
//! seconds (the fastest replication policy), each with four 4 KiB guest writes (two into a hot
//! journal region, two anywhere) at places drawn from a fixed sequence, an app-consistent point
//! every 2 hours. Shared by `benches/retention.rs`
//! and `examples/retention.rs` (whose `stage` command applies the same writes to a file, for
//! restic).

#![allow(dead_code)] // each user takes a part

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replicore::bundle::{SeedOptions, ShipOptions, seed, ship};
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};
use replicore::log::MarkerKind;
use replicore::policy::RetentionPolicy;
use replicore::vault::Vault;

/// Bytes of the disk.
pub const DISK: usize = 32 << 20;
/// Seconds between points.
pub const STEP: u64 = 30;
/// Every this many points is app-consistent (2 hours).
pub const APP_EVERY: u64 = 240;
/// When the base is taken.
pub const T0: u64 = 1_790_000_000;

/// What the benches prune by: a 4-hour window, 12 extra hourly points, app-consistent points
/// every 2 hours for another window, the newest point.
pub const POLICY: RetentionPolicy = RetentionPolicy {
    window_hours: 4,
    app_every_hours: Some(2),
    extra_hourly: 12,
    keep_last: 1,
};

/// When point `i` (1-based; 0 is the base) is taken.
pub fn time(i: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + i * STEP)
}

/// The time a chain of `points` points is pruned at: 30 seconds after its newest point.
pub fn now(points: u64) -> SystemTime {
    time(points + 1)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The disk as seeded: random bytes.
pub fn disk() -> Vec<u8> {
    let mut r = Rng(0x5eed);
    (0..DISK / 8).flat_map(|_| r.next().to_le_bytes()).collect()
}

/// The guest writes of point `i` (1-based): four 4 KiB writes of fresh bytes, 4 KiB aligned:
/// two into a hot 256 KiB region (a journal, rewritten all the time), two anywhere.
pub fn writes(i: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ i.wrapping_mul(0x1000_0000_01b3));
    (0..4)
        .map(|k| {
            let slots = if k < 2 { 64 } else { DISK as u64 / 4096 };
            let at = (r.next() % slots) * 4096;
            let data = (0..512).flat_map(|_| r.next().to_le_bytes()).collect();
            (at, data)
        })
        .collect()
}

/// A fixed key.
pub fn key() -> Key {
    KeyFile::create(Secret::Key(&MasterKey::from_bytes([7; 32])))
        .unwrap()
        .1
}

/// Builds, in `dir`, the base and `points` incremental bundles, and a vault holding them all
/// (`dir/vault`). Returns the vault's path.
pub fn build(dir: &Path, points: u64) -> PathBuf {
    let key = key();
    let img = dir.join("disk.img");
    std::fs::write(&img, disk()).unwrap();
    let opts = SeedOptions {
        chunk_size: 1 << 20,
        time: Some(time(0)),
        ..SeedOptions::default()
    };
    let base = dir.join("base.rcb");
    let ok = &mut |_, _| true;
    let disks = [("disk", img.as_path())];
    let mut s = seed("bench", &disks, &key, dir.join("l.rclog"), &base, &opts, ok).unwrap();
    let vault = dir.join("vault");
    let v = Vault::create(&vault).unwrap();
    v.ingest(&base, ok).unwrap();
    let out = dir.join("bundles");
    std::fs::create_dir_all(&out).unwrap();
    // Shipped a thousand points a log, ingested as they come.
    let mut i = 1;
    while i <= points {
        let end = (i + 999).min(points);
        for p in i..=end {
            for (at, data) in writes(p) {
                s.log.record_write(0, at, &data).unwrap();
            }
            let kind = if p % APP_EVERY == 0 {
                MarkerKind::App
            } else {
                MarkerKind::Crash
            };
            s.log.mark_at(kind, "", time(p)).unwrap();
        }
        let sealed = dir.join(format!("sealed-{i}.rclog"));
        s.log.rotate(&sealed).unwrap();
        let shipped = ship(
            &sealed,
            &key,
            &mut s.state,
            &out,
            &ShipOptions::default(),
            ok,
        )
        .unwrap();
        for b in shipped {
            v.ingest(&b.path, ok).unwrap();
            std::fs::remove_file(&b.path).unwrap();
        }
        std::fs::remove_file(&sealed).unwrap();
        i = end + 1;
    }
    vault
}

/// Copies a vault directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}
