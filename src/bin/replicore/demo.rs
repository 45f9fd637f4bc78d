//! `replicore demo`: the whole job on a sample two-disk VM in a temporary directory, checked
//! and reported.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use replicore::bundle::{SeedOptions, ShipOptions, seed, ship};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::log::MarkerKind;
use replicore::policy::RetentionPolicy;
use replicore::vault::{Selector, Vault};

use crate::out::bytes;
use crate::{CmdResult, Failure};

const OS: usize = 48 << 20;
const DATA: usize = 16 << 20;
/// Hours of history, a point every 15 minutes, shipped every hour.
const HOURS: u64 = 12;
const POINTS_PER_HOUR: u64 = 4;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// A sample disk: regions of zeros, of compressible records and of random bytes.
fn sample_disk(len: usize, r: &mut Rng) -> Vec<u8> {
    let mut d = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let run = ((1 + r.below(4)) << 20).min((len - at) as u64) as usize;
        match r.below(3) {
            0 => {} // zeros: a hole in the image
            1 => {
                let mut line = 0u64;
                let mut i = at;
                while i < at + run {
                    let rec = format!(
                        "{line:08} INFO service=replica status=ok lag_ms={}\n",
                        r.below(900)
                    );
                    let n = rec.len().min(at + run - i);
                    d[i..i + n].copy_from_slice(&rec.as_bytes()[..n]);
                    i += n;
                    line += 1;
                }
            }
            _ => r.fill(&mut d[at..at + run]),
        }
        at += run;
    }
    d
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Failure {
    let (what, path) = (what.to_string(), path.to_path_buf());
    move |e| Failure::Lib(replicore::Error::io(what, Some(&path), e))
}

/// The demo's temporary directory, removed when dropped.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mbps(n: u64, d: Duration) -> String {
    format!("{:.0} MB/s", n as f64 / 1e6 / d.as_secs_f64().max(1e-9))
}

pub fn run() -> CmdResult {
    let started = Instant::now();
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("replicore-demo-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let scratch = Scratch(dir.clone());
    let p = |n: &str| scratch.0.join(n);
    println!("replicore demo in {}", dir.display());

    // Primary: a two-disk VM, seeded 12 hours ago.
    let mut r = Rng(0x0dd_ba11);
    let mut model = vec![sample_disk(OS, &mut r), sample_disk(DATA, &mut r)];
    let names = ["os", "data"];
    let images: Vec<PathBuf> = names.iter().map(|n| p(&format!("{n}.img"))).collect();
    for (img, d) in images.iter().zip(&model) {
        std::fs::write(img, d).map_err(io("writing", img))?;
    }
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::generate()?))?;
    let now = SystemTime::now();
    let t0 = now - Duration::from_secs(HOURS * 3600);
    let opts = SeedOptions {
        time: Some(t0),
        ..SeedOptions::default()
    };
    let disks: Vec<(&str, &Path)> = names
        .iter()
        .copied()
        .zip(images.iter().map(PathBuf::as_path))
        .collect();
    let t = Instant::now();
    let mut s = seed(
        "demo-vm",
        &disks,
        &key,
        p("vm.rclog"),
        p("base.rcb"),
        &opts,
        &mut |_, _| true,
    )?;
    let seed_time = t.elapsed();
    let base_size = std::fs::metadata(p("base.rcb"))
        .map_err(io("reading", &p("base.rcb")))?
        .len();
    let disk_bytes = (OS + DATA) as u64;

    // Recovery site.
    let vault = Vault::create(p("vault"))?;
    let t = Instant::now();
    let base = vault.ingest(p("base.rcb"), &mut |_, _| true)?;
    let mut ingest_time = t.elapsed();
    let (mut stored, mut dedup) = (base.blobs_stored, base.blobs_deduplicated);

    // Twelve hours of guest writes: a point every 15 minutes, app-consistent every 4 hours,
    // shipped and ingested every hour.
    let out = p("bundles");
    std::fs::create_dir_all(&out).map_err(io("creating", &out))?;
    let (mut shipped, mut bundle_bytes, mut written) = (0u64, 0u64, 0u64);
    let mut app_model: Option<(SystemTime, Vec<Vec<u8>>)> = None;
    let files: Vec<std::fs::File> = images
        .iter()
        .map(|i| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(i)
                .map_err(io("opening", i))
        })
        .collect::<Result<_, _>>()?;
    for hour in 0..HOURS {
        for q in 1..=POINTS_PER_HOUR {
            for _ in 0..1 + r.below(6) {
                let d = r.below(2) as usize;
                let size = model[d].len() as u64;
                // Half the writes land in a hot region (a journal), half anywhere.
                let at = if r.below(2) == 0 {
                    r.below(1 << 20)
                } else {
                    r.below(size - 4096)
                } & !511;
                let len = ((1 + r.below(64)) * 4096).min(size - at);
                let range = at as usize..(at + len) as usize;
                if r.below(10) == 0 {
                    s.log.record_trim(d, at, len)?;
                    model[d][range.clone()].fill(0);
                } else {
                    let mut data = vec![0u8; len as usize];
                    if r.below(2) == 0 {
                        r.fill(&mut data);
                    } else {
                        data.iter_mut()
                            .enumerate()
                            .for_each(|(i, b)| *b = b"guest log line\n"[i % 15]);
                    }
                    s.log.record_write(d, at, &data)?;
                    model[d][range.clone()].copy_from_slice(&data);
                    written += len;
                }
                files[d]
                    .write_all_at(&model[d][range], at)
                    .map_err(io("writing", &images[d]))?;
            }
            let minute = hour * 60 + q * 60 / POINTS_PER_HOUR;
            let time = t0 + Duration::from_secs(minute * 60);
            let app = minute % 240 == 0;
            let kind = if app {
                MarkerKind::App
            } else {
                MarkerKind::Crash
            };
            s.log.mark_at(kind, if app { "vss" } else { "" }, time)?;
            if app {
                app_model = Some((time, model.clone()));
            }
        }
        let sealed = p(&format!("sealed-{hour}.rclog"));
        s.log.rotate(&sealed)?;
        for b in ship(
            &sealed,
            &key,
            &mut s.state,
            &out,
            &ShipOptions::default(),
            &mut |_, _| true,
        )? {
            bundle_bytes += std::fs::metadata(&b.path)
                .map_err(io("reading", &b.path))?
                .len();
            shipped += 1;
            let t = Instant::now();
            let i = vault.ingest(&b.path, &mut |_, _| true)?;
            ingest_time += t.elapsed();
            stored += i.blobs_stored;
            dedup += i.blobs_deduplicated;
        }
    }
    let vault_before = dir_size(&p("vault"));

    // Retention: 4-hour window, app-consistent points every 4 hours for 4 more, 4 extra hours.
    let policy = RetentionPolicy {
        window_hours: 4,
        app_every_hours: Some(4),
        extra_hourly: 4,
        keep_last: 1,
    };
    let t = Instant::now();
    let pruned = vault.prune(&policy, now)?;
    let gc = vault.gc(&mut |_, _| true)?;
    let prune_time = t.elapsed();
    let report = vault.verify(Some(&key), &mut |_, _| true)?;
    if !report.is_ok() {
        let found: Vec<String> = report
            .damage
            .iter()
            .map(|d| format!("{}: {}", d.object, d.detail))
            .collect();
        return Err(Failure::Damage(format!(
            "verify after prune found {} damaged objects: {}",
            found.len(),
            found.join("; ")
        )));
    }
    let kept = vault.points("demo-vm")?;

    // Test failover of the newest app-consistent point, checked byte for byte.
    let (app_time, app_disks) =
        app_model.ok_or_else(|| Failure::Other("no app-consistent point".into()))?;
    let point = vault.select("demo-vm", Selector::LatestAppConsistent)?;
    if point.time != app_time {
        return Err(Failure::Other(
            "the newest app-consistent point is not the one marked".into(),
        ));
    }
    let fo = p("failover");
    std::fs::create_dir_all(&fo).map_err(io("creating", &fo))?;
    let t = Instant::now();
    let written_images =
        vault.failover("demo-vm", Selector::Id(point.id), &key, &fo, &mut |_, _| {
            true
        })?;
    let failover_time = t.elapsed();
    for (m, want) in written_images.iter().zip(&app_disks) {
        let got = std::fs::read(&m.path).map_err(io("reading", &m.path))?;
        if got != *want {
            return Err(Failure::Damage(format!(
                "failover: {} differs from the disk at the point",
                m.path.display()
            )));
        }
    }

    // The DR cycle: a lost tracker, resync, failover, reprotect, failback, reprotect forward.
    let mut fill = |b: &mut [u8]| r.fill(b);
    let cycle = crate::demo_cycle::run(&vault, &key, s.log, &images, &dir, &mut fill)?;

    println!();
    println!(
        "primary      2 disks, {} ({} of data, zeros and text and random regions)",
        bytes(disk_bytes),
        bytes(nonzero(&images))
    );
    println!(
        "seed         base bundle {} ({:.1}x smaller than the disks) in {:.2} s, {}",
        bytes(base_size),
        disk_bytes as f64 / base_size as f64,
        seed_time.as_secs_f64(),
        mbps(disk_bytes, seed_time)
    );
    println!(
        "replication  {} points over {} hours ({} app-consistent), {} of guest writes shipped as {} in {} bundles",
        shipped + 1,
        HOURS,
        HOURS / 4,
        bytes(written),
        bytes(bundle_bytes),
        shipped
    );
    println!(
        "vault        {} blobs stored, {} deduplicated; ingest {:.2} s in all; {} before retention",
        stored,
        dedup,
        ingest_time.as_secs_f64(),
        bytes(vault_before)
    );
    println!(
        "retention    window 4 h, app every 4 h, 4 extra hours: {} points kept, {} pruned; GC {} -> {}; {:.2} s; verify with the key: clean",
        kept.len(),
        pruned.pruned(),
        bytes(gc.bytes_before),
        bytes(gc.bytes_after),
        prune_time.as_secs_f64()
    );
    println!(
        "failover     test failover of app-consistent point {} ({}): {} written in {:.2} s, {}; every byte checked",
        point.seq,
        &point.id.to_hex()[..16],
        bytes(written_images.iter().map(|m| m.size).sum()),
        failover_time.as_secs_f64(),
        mbps(disk_bytes, failover_time)
    );
    crate::demo_cycle::print(&cycle, base_size);
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn nonzero(images: &[PathBuf]) -> u64 {
    images
        .iter()
        .filter_map(|i| std::fs::read(i).ok())
        .map(|d| {
            d.chunks(4096)
                .filter(|c| c.iter().any(|&b| b != 0))
                .map(|c| c.len() as u64)
                .sum::<u64>()
        })
        .sum()
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}
