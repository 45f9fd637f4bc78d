//! Change log append throughput beside its floor, measured in the same run.
//!
//! The floor is what a checksummed journal cannot do less than: a raw `write()` of the same
//! payload bytes to a file in the same directory, one call per record, plus one CRC32 pass over
//! them. The change log adds a 40-byte header per record, buffering (small records) or a
//! vectored write (large ones), and its bookkeeping. Goals: at least 0.9 of the floor's
//! throughput for 64 KiB writes and 0.7 for 4 KiB ones.
//!
//! The second group syncs every 1 MiB (the change log's `SyncPolicy::EveryBytes`), against the
//! same floor with an `fdatasync` every 1 MiB: records per second when durability is paid for.
//!
//! Files live under the target directory (a real file system, not tmpfs), and each iteration
//! writes a fresh file of 32 MiB (16 MiB when syncing), so the page cache's state is the same
//! for both sides.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use replicore::log::{ChangeLog, DiskSpec, LogConfig, SyncPolicy};

const MIB: usize = 1 << 20;

fn payload(total: usize) -> Vec<u8> {
    // Incompressible-looking bytes (the log does not compress; this only avoids zero pages).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..total)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn config(sync: SyncPolicy) -> LogConfig {
    let mut c = LogConfig::new("bench", vec![DiskSpec::new("os", 64 << 30)]);
    c.sync = sync;
    c
}

fn run_log(dir: &Path, data: &[u8], record: usize, sync: SyncPolicy) -> Duration {
    let path = dir.join("bench.rclog");
    let _ = std::fs::remove_file(&path);
    let mut log = ChangeLog::create(&path, &config(sync)).unwrap();
    let start = Instant::now();
    for (i, chunk) in data.chunks(record).enumerate() {
        log.record_write(0, (i * record) as u64, chunk).unwrap();
    }
    if sync == SyncPolicy::Manual {
        log.flush().unwrap();
    } else {
        log.sync().unwrap();
    }
    let t = start.elapsed();
    drop(log);
    std::fs::remove_file(&path).unwrap();
    t
}

fn run_floor(dir: &Path, data: &[u8], record: usize, sync_every: Option<usize>) -> Duration {
    let path = dir.join("floor.bin");
    let mut f: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let start = Instant::now();
    let mut unsynced = 0;
    for chunk in data.chunks(record) {
        black_box(crc32fast::hash(chunk));
        f.write_all(chunk).unwrap();
        unsynced += chunk.len();
        if let Some(every) = sync_every {
            if unsynced >= every {
                f.sync_data().unwrap();
                unsynced = 0;
            }
        }
    }
    if sync_every.is_some() {
        f.sync_data().unwrap();
    }
    let t = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    t
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = payload(32 * MIB);
    let mut g = c.benchmark_group("log_append_manual_sync");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for record in [4096usize, 64 << 10] {
        let kib = record / 1024;
        g.bench_function(BenchmarkId::new("change_log", format!("{kib}KiB")), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| run_log(dir.path(), &data, record, SyncPolicy::Manual))
                    .sum()
            })
        });
        g.bench_function(
            BenchmarkId::new("floor_write_crc32", format!("{kib}KiB")),
            |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| run_floor(dir.path(), &data, record, None))
                        .sum()
                })
            },
        );
    }
    g.finish();
}

fn bench_synced(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = payload(16 * MIB);
    let record = 4096;
    let mut g = c.benchmark_group("log_append_sync_every_MiB");
    g.sample_size(10);
    g.throughput(Throughput::Elements((data.len() / record) as u64));
    g.bench_function("change_log_4KiB", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    run_log(
                        dir.path(),
                        &data,
                        record,
                        SyncPolicy::EveryBytes(MIB as u64),
                    )
                })
                .sum()
        })
    });
    g.bench_function("floor_write_crc32_fdatasync_4KiB", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| run_floor(dir.path(), &data, record, Some(MIB)))
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_synced);
criterion_main!(benches);
