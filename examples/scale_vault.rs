//! Long chains and many groups (issue 18): builds a vault holding one group of POINTS points
//! (a 1 MiB disk, one 4 KiB write and a crash-consistent marker every 30 seconds, shipped and
//! ingested in rounds of 500 by one vault handle, as an agent does) and GROUPS other groups of
//! two points each, then times what an operator and an agent do: open, ingest one more point,
//! list the points and the groups, plan a prune, prune (the older half of the chain's span),
//! GC, ingest again after the GC, keyless verify. Run it at two sizes to see how each step
//! grows (`benches/peers/scale.sh` runs 10,000 + 100 and 100,000 + 1,000):
//!
//!   cargo run --release --example scale_vault -- POINTS GROUPS DIR
//!
//! Prints one TSV row per step: step, seconds. DIR is created (and left for inspection).

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use replicore::bundle::{SeedOptions, ShipOptions, ShipState, seed, ship};
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};
use replicore::log::{ChangeLog, MarkerKind};
use replicore::policy::RetentionPolicy;
use replicore::vault::Vault;

const DISK: usize = 1 << 20;
const ROUND: u64 = 500;
const T0: u64 = 1_800_000_000;

fn ok(_: u64, _: u64) -> bool {
    true
}

/// Seeds `group` from a fresh 1 MiB image in `dir`; returns its log and state.
fn seeded(
    dir: &Path,
    group: &str,
    key: &Key,
    vault: &Vault,
) -> replicore::Result<(ChangeLog, ShipState)> {
    let img = dir.join(format!("{group}.img"));
    let bytes: Vec<u8> = (0..DISK).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&img, bytes).map_err(|e| replicore::Error::io("writing", Some(&img), e))?;
    let base = dir.join(format!("{group}-base.rcb"));
    let options = SeedOptions {
        chunk_size: 64 << 10,
        time: Some(UNIX_EPOCH + Duration::from_secs(T0)),
        ..SeedOptions::default()
    };
    let s = seed(
        group,
        &[("disk", img.as_path())],
        key,
        dir.join(format!("{group}.rclog")),
        &base,
        &options,
        &mut ok,
    )?;
    vault.ingest(&base, &mut ok)?;
    std::fs::remove_file(&base).ok();
    std::fs::remove_file(&img).ok();
    Ok((s.log, s.state))
}

/// `n` more points of `log`, shipped and ingested; returns the time of the newest and the
/// seconds the last round's ingests took.
fn points(
    dir: &Path,
    log: &mut ChangeLog,
    state: &mut ShipState,
    key: &Key,
    vault: &Vault,
    from: u64,
    n: u64,
) -> replicore::Result<(u64, f64)> {
    let out = dir.join("out");
    let mut ingesting = 0.0;
    std::fs::create_dir_all(&out).map_err(|e| replicore::Error::io("creating", Some(&out), e))?;
    let mut i = from;
    while i < from + n {
        let round = ROUND.min(from + n - i);
        for _ in 0..round {
            i += 1;
            let at = (i * 40_961) % (DISK as u64 - 4096);
            log.record_write(0, at, &i.to_le_bytes().repeat(512))?;
            log.mark_at(
                MarkerKind::Crash,
                "",
                UNIX_EPOCH + Duration::from_secs(T0 + i * 30),
            )?;
        }
        let sealed = dir.join("sealed.rclog");
        log.rotate(&sealed)?;
        ingesting = 0.0;
        for b in ship(&sealed, key, state, &out, &ShipOptions::default(), &mut ok)? {
            let t = Instant::now();
            vault.ingest(&b.path, &mut ok)?;
            ingesting += t.elapsed().as_secs_f64();
            std::fs::remove_file(&b.path).ok();
        }
        std::fs::remove_file(&sealed).ok();
    }
    Ok((T0 + i * 30, ingesting))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    /// glibc: gives the heap's free memory back to the system.
    fn malloc_trim(pad: usize) -> i32;
}

fn timed<T>(label: &str, f: impl FnOnce() -> replicore::Result<T>) -> replicore::Result<T> {
    // The step's own peak resident memory: what earlier steps freed given back to the system
    // (glibc keeps it otherwise, and it would count), then the high-water mark reset (Linux).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; no Rust object is touched.
    unsafe {
        malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let out = f()?;
    println!("{label}\t{:.3}", t.elapsed().as_secs_f64());
    if let Some(mib) = peak_mib() {
        println!("{label}: peak resident MiB\t{mib:.1}");
    }
    Ok(out)
}

/// The process's peak resident memory (VmHWM: file pages included) in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib as f64 / 1024.0)
}

/// How many files of the vault's packs directory end in `.ext`, and their bytes.
fn packs_of(dir: &Path, ext: &str) -> replicore::Result<String> {
    let packs = dir.join("vault").join("packs");
    let sizes: Vec<u64> = std::fs::read_dir(&packs)
        .map_err(|e| replicore::Error::io("listing", Some(&packs), e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .collect();
    Ok(format!(
        "{} ({} bytes)",
        sizes.len(),
        sizes.iter().sum::<u64>()
    ))
}

/// The long group's point files: files of their own and segments, and their bytes.
fn points_of(vault: &Vault) -> replicore::Result<String> {
    let dir = vault.points_dir("long");
    let (mut own, mut segments, mut bytes) = (0, 0, 0);
    for e in std::fs::read_dir(&dir).map_err(|e| replicore::Error::io("listing", Some(&dir), e))? {
        let e = e.map_err(|e| replicore::Error::io("listing", Some(&dir), e))?;
        match e.path().extension().and_then(|x| x.to_str()) {
            Some("rcpt") => own += 1,
            Some("rcseg") => segments += 1,
            _ => continue,
        }
        bytes += e.metadata().map_or(0, |m| m.len());
    }
    Ok(format!(
        "{own} point files and {segments} segments ({bytes} bytes)"
    ))
}

/// Every file in the vault (recursively), and their bytes.
fn vault_files(dir: &Path) -> replicore::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| replicore::Error::io("listing", Some(&d), e))? {
            let e = e.map_err(|e| replicore::Error::io("listing", Some(&d), e))?;
            let m = e
                .metadata()
                .map_err(|err| replicore::Error::io("reading", Some(&e.path()), err))?;
            if m.is_dir() {
                dirs.push(e.path());
            } else {
                files += 1;
                bytes += m.len();
            }
        }
    }
    Ok((files, bytes))
}

/// The vault's files against one per 16 MiB stored plus three per group (its head, its lock
/// file, its newest segment) and five of the vault's own (`docs/SCALE.md`, files per stored
/// byte): what GC leaves. Fails when `after_gc` and the vault holds more.
fn files_per_byte(dir: &Path, groups: u64, after_gc: bool) -> replicore::Result<String> {
    let (files, bytes) = vault_files(&dir.join("vault"))?;
    let bound = bytes.div_ceil(16 << 20) + 3 * groups + 5;
    if after_gc && files > bound {
        return Err(replicore::Error::invalid_argument(
            "vault",
            format!("{files} files after GC for {bytes} bytes and {groups} groups: over {bound}"),
        ));
    }
    Ok(format!(
        "{files} files, {bytes} bytes ({:.0} KiB a file; after GC at most {bound}: one per 16 MiB, 3 per group, 5)",
        bytes as f64 / files.max(1) as f64 / 1024.0
    ))
}

fn main() -> replicore::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        || replicore::Error::invalid_argument("arguments", "usage: scale_vault POINTS GROUPS DIR");
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    let groups: u64 = args.get(2).and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    let dir = Path::new(args.get(3).ok_or_else(usage)?);
    std::fs::create_dir_all(dir).map_err(|e| replicore::Error::io("creating", Some(dir), e))?;
    let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([9; 32])))?;
    let vault = Vault::create(dir.join("vault"))?;
    let t = Instant::now();
    let (mut log, mut state) = seeded(dir, "long", &key, &vault)?;
    let (last, round) = points(dir, &mut log, &mut state, &key, &vault, 0, n)?;
    for g in 0..groups {
        let name = format!("g{g:05}");
        let (mut l, mut s) = seeded(dir, &name, &key, &vault)?;
        points(dir, &mut l, &mut s, &key, &vault, 0, 1)?;
    }
    println!(
        "build ({n} points, {groups} more groups)\t{:.1}",
        t.elapsed().as_secs_f64()
    );
    if let Some(mib) = peak_mib() {
        println!("build: peak resident MiB\t{mib:.1}");
    }
    println!(
        "ingest of a point, mean of the chain's last {} (one handle)\t{:.4}",
        ROUND.min(n),
        round / ROUND.min(n).max(1) as f64
    );
    // Ingests combine small packs as they go: no GC has run yet.
    println!("pack files before GC\t{}", packs_of(dir, "rcpack")?);
    // And point files into segments.
    println!("long group's files before GC\t{}", points_of(&vault)?);
    println!(
        "vault files before GC\t{}",
        files_per_byte(dir, groups + 1, false)?
    );
    let vault = timed("open", || Vault::open(dir.join("vault")))?;
    timed("ingest of one more point", || {
        points(dir, &mut log, &mut state, &key, &vault, n, 1)
    })?;
    let listed = timed("list the long group's points", || vault.points("long"))?;
    assert_eq!(listed.len() as u64, n + 2);
    drop(listed);
    // Again, its files now in the page cache (the first listing after the build may read them
    // from the device).
    timed("list the long group's points again", || {
        vault.points("long").map(drop)
    })?;
    // One at a time, as the command line lists them.
    let mut count = 0u64;
    timed("list the long group's points one at a time", || {
        vault.each_point("long", |_| {
            count += 1;
            Ok(())
        })
    })?;
    assert_eq!(count, n + 2);
    timed("list the groups", || vault.groups())?;
    let now = UNIX_EPOCH + Duration::from_secs(last + 60);
    // The newest half of the chain is kept: the same share is pruned at every size.
    let policy = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last: (n / 2).max(1) as u32,
    };
    timed("plan a prune", || vault.plan_prune(&policy, now).map(drop))?;
    let pruned = timed("prune", || vault.prune(&policy, now))?;
    println!("points pruned\t{}", pruned.pruned());
    timed("gc", || vault.gc(&mut ok))?;
    println!("pack files after GC\t{}", packs_of(dir, "rcpack")?);
    println!("sorted blob index after GC\t{}", packs_of(dir, "rcmidx")?);
    println!("long group's files after GC\t{}", points_of(&vault)?);
    println!(
        "vault files after GC\t{}",
        files_per_byte(dir, groups + 1, true)?
    );
    let vault = Vault::open(dir.join("vault"))?;
    timed(
        "ingest of one more point after the GC (fresh handle)",
        || points(dir, &mut log, &mut state, &key, &vault, n + 1, 1),
    )?;
    let report = timed("keyless verify", || vault.verify(None, &mut ok))?;
    if !report.is_ok() {
        return Err(replicore::Error::corrupt(
            "vault",
            None,
            "verify found damage",
        ));
    }
    Ok(())
}
