//! The second half of `replicore demo`: the DR cycle after the primary's tracker is lost —
//! resync into the chain, unplanned failover with the recovered disks tracked, reprotect (the
//! stale primary disks resynchronized from the recovered ones), reverse replication and a
//! planned failback applied to them, and reprotect forward into the original chain. Every
//! step is checked byte for byte.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use replicore::bundle::{
    ResyncOptions, ShipOptions, TrackFrom, apply, resync_ship, resync_ship_from, ship,
    sign_for_apply, track,
};
use replicore::crypto::Key;
use replicore::log::{ChangeLog, DiskSpec, MarkerKind};
use replicore::resync::DEFAULT_CHUNK_SIZE;
use replicore::resync::point_sig::{PointSigReader, open_file};
use replicore::vault::{Selector, Vault};

use crate::out::bytes;
use crate::{CmdResult, Failure};

const GROUP: &str = "demo-vm";

/// What the cycle measured, for the report.
pub struct CycleReport {
    /// (chunks changed, chunks, bundle bytes) of the resync into the chain.
    pub resync: (u64, u64, u64),
    /// Bytes the reverse resync shipped, and the apply's time.
    pub reverse: (u64, Duration),
    /// Reverse points applied (the planned failback's last among them).
    pub applied: u64,
    /// Bytes of the forward reprotect's resync point.
    pub forward: u64,
    /// The whole cycle's time.
    pub time: Duration,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Failure {
    let path = path.to_path_buf();
    move |e| Failure::Lib(replicore::Error::io(what, Some(&path), e))
}

fn ok(_: u64, _: u64) -> bool {
    true
}

/// A write to an image and, when tracking, to the log.
fn write(log: Option<&mut ChangeLog>, disk: usize, img: &Path, at: u64, data: &[u8]) -> CmdResult {
    if let Some(l) = log {
        l.record_write(disk, at, data)?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .map_err(io("opening", img))?;
    f.write_all_at(data, at).map_err(io("writing", img))
}

/// The two sets of images hold the same bytes, else Damage naming `step`.
fn same(a: &[PathBuf], b: &[PathBuf], step: &str) -> CmdResult {
    for (x, y) in a.iter().zip(b) {
        let ax = std::fs::read(x).map_err(io("reading", x))?;
        let by = std::fs::read(y).map_err(io("reading", y))?;
        if ax != by {
            return Err(Failure::Damage(format!(
                "{step}: {} differs from {}",
                x.display(),
                y.display()
            )));
        }
    }
    Ok(())
}

/// The newest point fails over to the images' bytes.
fn head_is(vault: &Vault, key: &Key, images: &[PathBuf], dir: &Path, step: &str) -> CmdResult {
    let out = dir.join(format!("check-{}", step.replace(' ', "-")));
    let m = vault.failover(GROUP, Selector::Latest, key, &out, &mut ok)?;
    let got: Vec<PathBuf> = m.into_iter().map(|m| m.path).collect();
    same(&got, images, step)?;
    std::fs::remove_dir_all(&out).map_err(io("removing", &out))
}

fn pairs<'a>(names: &[&'a str], images: &'a [PathBuf]) -> Vec<(&'a str, &'a Path)> {
    names
        .iter()
        .copied()
        .zip(images.iter().map(PathBuf::as_path))
        .collect()
}

/// Runs the cycle. `images` are the primary's disks (its tracker is lost now: `log` is
/// dropped), `dir` the demo's scratch directory, `fill` the guest's random bytes.
pub fn run(
    vault: &Vault,
    key: &Key,
    log: ChangeLog,
    images: &[PathBuf],
    dir: &Path,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<CycleReport, Failure> {
    let started = Instant::now();
    let names = ["os", "data"];
    let p = |n: &str| dir.join(n);
    let out = p("cycle-bundles");
    std::fs::create_dir_all(&out).map_err(io("creating", &out))?;
    let mut data = vec![0u8; 2 << 20];

    // 1. The primary's tracker is lost; writes land untracked; resync into the chain.
    drop(log);
    std::fs::remove_file(p("vm.rclog")).map_err(io("removing", &p("vm.rclog")))?;
    fill(&mut data);
    write(None, 0, &images[0], 9 << 20, &data)?;
    write(None, 1, &images[1], 1 << 20, &data[..64 << 10])?;
    let sig = vault.point_signature(GROUP, Selector::Latest, key, &mut ok)?;
    let r = resync_ship(
        &sig,
        &pairs(&names, images),
        key,
        p("vm-2.rclog"),
        &out,
        &ResyncOptions::default(),
        &mut ok,
    )?;
    vault.ingest(&r.bundle.path, &mut ok)?;
    head_is(vault, key, images, dir, "resync into the chain")?;
    let resync = (r.changed_chunks, r.chunks, r.bundle.file_bytes);
    let (mut log, mut state) = (r.log, r.state);

    // Replication goes on from the new log.
    fill(&mut data[..256 << 10]);
    write(Some(&mut log), 0, &images[0], 20 << 20, &data[..256 << 10])?;
    log.mark(MarkerKind::App, "after resync")?;
    log.rotate(p("sealed-r.rclog"))?;
    for b in ship(
        p("sealed-r.rclog"),
        key,
        &mut state,
        &out,
        &ShipOptions::default(),
        &mut ok,
    )? {
        vault.ingest(&b.path, &mut ok)?;
    }
    head_is(vault, key, images, dir, "replication after the resync")?;
    // The primary takes writes it never ships, then the site is lost.
    drop(log);
    write(None, 0, &images[0], 30 << 20, &data[..4096])?;

    // 2. Unplanned failover to the newest app-consistent point, the recovered disks tracked.
    let point = vault.select(GROUP, Selector::LatestAppConsistent)?;
    let rec_dir = p("recovered");
    let m = vault.failover(GROUP, Selector::Id(point.id), key, &rec_dir, &mut ok)?;
    let rec: Vec<PathBuf> = m.iter().map(|m| m.path.clone()).collect();
    let specs = m
        .iter()
        .map(|m| DiskSpec::new(m.disk.clone(), m.size))
        .collect();
    let from = TrackFrom {
        group: GROUP.into(),
        point: point.id,
        seq: point.seq,
        chunk_size: point.chunk_size,
        time_ns: point
            .time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    };
    let (mut rlog, _) = track(&from, specs, key, rec_dir.join("rec.rclog"), false)?;
    fill(&mut data);
    write(Some(&mut rlog), 0, &rec[0], 5 << 20, &data)?;
    drop(rlog);

    // 3. Reprotect: the stale primary disks signed, the differing chunks shipped back as the
    //    reverse chain's first point, applied.
    let osig = p("primary.rcpsig");
    let ostate = p("demo-vm.rcapply");
    sign_for_apply(
        GROUP,
        &pairs(&names, images),
        key,
        DEFAULT_CHUNK_SIZE,
        &osig,
        &ostate,
        false,
        &mut ok,
    )?;
    let rev = p("reverse-bundles");
    std::fs::create_dir_all(&rev).map_err(io("creating", &rev))?;
    let reader = PointSigReader::open(open_file(&osig)?, key)?;
    let r = resync_ship_from(
        reader,
        &pairs(&names, &rec),
        key,
        rec_dir.join("rev.rclog"),
        &rev,
        &ResyncOptions::default(),
        &mut ok,
    )?;
    let t = Instant::now();
    apply(
        &r.bundle.path,
        key,
        &pairs(&names, images),
        &ostate,
        &mut ok,
    )?;
    let reverse = (r.bundle.file_bytes, t.elapsed());
    same(images, &rec, "reprotect")?;
    let (mut rlog, mut rstate) = (r.log, r.state);

    // 4. Reverse replication, then the planned failback: the recovered VM stops after its
    //    last writes; they ship and apply, and the primary's disks are identical to it.
    let mut applied = 0;
    for (i, label) in ["reverse", "failback"].iter().enumerate() {
        fill(&mut data[..128 << 10]);
        write(Some(&mut rlog), i, &rec[i], 3 << 20, &data[..128 << 10])?;
        rlog.mark(MarkerKind::App, label)?;
        let sealed = rec_dir.join(format!("sealed-{label}.rclog"));
        rlog.rotate(&sealed)?;
        for b in ship(
            &sealed,
            key,
            &mut rstate,
            &rev,
            &ShipOptions::default(),
            &mut ok,
        )? {
            apply(&b.path, key, &pairs(&names, images), &ostate, &mut ok)?;
            applied += 1;
        }
        same(images, &rec, label)?;
    }
    drop(rlog);

    // 5. Reprotect forward: the primary resyncs into the original chain, which goes on.
    let sig = vault.point_signature(GROUP, Selector::Latest, key, &mut ok)?;
    let options = ResyncOptions {
        time: Some(SystemTime::now()),
        ..ResyncOptions::default()
    };
    let r = resync_ship(
        &sig,
        &pairs(&names, images),
        key,
        p("vm-3.rclog"),
        &out,
        &options,
        &mut ok,
    )?;
    vault.ingest(&r.bundle.path, &mut ok)?;
    head_is(vault, key, images, dir, "reprotect forward")?;
    Ok(CycleReport {
        resync,
        reverse,
        applied,
        forward: r.bundle.file_bytes,
        time: started.elapsed(),
    })
}

/// The report's lines.
pub fn print(r: &CycleReport, base_size: u64) {
    println!(
        "resync       tracker lost: a resync point of {} of {} chunks, a {} bundle (re-seeding: {}); replication goes on in the same chain",
        r.resync.0,
        r.resync.1,
        bytes(r.resync.2),
        bytes(base_size)
    );
    println!(
        "failback     unplanned failover (recovered disks tracked), reprotect: {} shipped back and applied in {:.2} s; {} reverse points applied, the last after the VM stopped (planned failback); reprotect forward: a {} resync point; every byte checked; {:.2} s in all",
        bytes(r.reverse.0),
        r.reverse.1.as_secs_f64(),
        r.applied,
        bytes(r.forward),
        r.time.as_secs_f64()
    );
}
