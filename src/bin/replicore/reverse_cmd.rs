//! The way back after a failover: `replicore apply` (bundles onto a replica's disks, in chain
//! order), `replicore resync sign` (the stale disks' signature for a reverse resync), the
//! tracking `failover --log` starts, and `replicore protection` (a group's protection state at
//! a site, and the moves the state machine allows).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use replicore::bundle::{ApplyState, ProtectionRecord, apply as apply_bundle, sign_for_apply};
use replicore::policy::{FailoverKind, ProtectionState};

use crate::args::{ApplyArgs, ProtectionArgs, SignArgs, size};
use crate::keys;
use crate::out::{Bar, forceable};
use crate::ship_cmd::{parent, state_path};
use crate::{CmdResult, Failure};

/// `NAME=PATH` pairs of `--disk`.
pub fn disk_pairs(disks: &[String]) -> Result<Vec<(String, PathBuf)>, Failure> {
    disks
        .iter()
        .map(|d| {
            d.split_once('=')
                .map(|(n, p)| (n.to_string(), PathBuf::from(p)))
                .ok_or_else(|| Failure::Usage(format!("--disk `{d}`: expected NAME=IMAGE")))
        })
        .collect()
}

fn refs(v: &[(String, PathBuf)]) -> Vec<(&str, &Path)> {
    v.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect()
}

/// Where a group's protection state is kept at a site: `GROUP.rcprot` in `dir`.
pub fn protection_path(dir: &Path, group: &str) -> PathBuf {
    state_path(dir, group).with_extension("rcprot")
}

/// Where a replica's apply state is kept by default: `GROUP.rcapply` beside the first disk.
fn apply_state_path(given: &Option<PathBuf>, disks: &[(String, PathBuf)], group: &str) -> PathBuf {
    given.clone().unwrap_or_else(|| {
        let dir = disks.first().map_or(Path::new("."), |(_, p)| parent(p));
        state_path(dir, group).with_extension("rcapply")
    })
}

/// Moves the group's recorded state through `moves` (checked), when a record exists; with none,
/// the last move is recorded as it stands. `save` false only checks.
pub fn step(dir: &Path, group: &str, moves: &[ProtectionState], save: bool) -> CmdResult {
    let path = protection_path(dir, group);
    let exists = ProtectionRecord::load(&path)?.is_some();
    if exists {
        if save {
            ProtectionRecord::advance(&path, group, moves, SystemTime::now())?;
        } else {
            ProtectionRecord::check(&path, group, moves)?;
        }
    } else if let (true, Some(last)) = (save, moves.last()) {
        ProtectionRecord {
            group: group.into(),
            state: *last,
            since: SystemTime::now(),
            last_error: None,
        }
        .save(&path)?;
    }
    Ok(())
}

/// The moves a resync into a chain makes from `dir`'s recorded state: a failed-over site is
/// committed and reprotecting first.
pub fn resync_moves(dir: &Path, group: &str) -> Result<Vec<ProtectionState>, Failure> {
    use ProtectionState::*;
    let now = ProtectionRecord::load(protection_path(dir, group))?.map(|r| r.state);
    let mut moves = match now {
        Some(FailedOver(FailoverKind::Planned | FailoverKind::Unplanned)) => {
            vec![Committed, Reprotecting]
        }
        Some(Committed) => vec![Reprotecting],
        _ => Vec::new(),
    };
    moves.extend([ResyncRequired, Resynchronizing]);
    Ok(moves)
}

/// `replicore apply`.
pub fn apply(a: ApplyArgs) -> CmdResult {
    let disks = disk_pairs(&a.disks)?;
    let key = keys::load(&a.key, &a.pass)?;
    let mut bundles: Vec<(u64, PathBuf)> = Vec::with_capacity(a.bundles.len());
    for b in &a.bundles {
        let seq = replicore::bundle::Bundle::open(b)?.header().seq;
        bundles.push((seq, b.clone()));
    }
    bundles.sort();
    let group = match &a.state {
        Some(p) => ApplyState::load(p)?.group,
        None => a.group.clone().ok_or_else(|| {
            Failure::Usage("--group or --state is needed to find the disks' apply state".into())
        })?,
    };
    let state = apply_state_path(&a.state, &disks, &group);
    for (_, b) in &bundles {
        let bar = Bar::new("apply");
        let r = apply_bundle(b, &key, &refs(&disks), &state, &mut bar.callback())?;
        drop(bar);
        println!("{}", b.display());
        eprintln!(
            "applied point {} of group `{group}` ({} bytes written, {} zeroed); the disks hold it",
            r.seq, r.data_bytes, r.zeroed_bytes
        );
    }
    Ok(())
}

/// `replicore resync sign`.
pub fn sign(a: SignArgs) -> CmdResult {
    let disks = disk_pairs(&a.disks)?;
    let key = keys::load(&a.key, &a.pass)?;
    let cs = match &a.chunk_size {
        Some(s) => size(s, "--chunk-size")?,
        None => replicore::resync::DEFAULT_CHUNK_SIZE,
    };
    let state = apply_state_path(&a.state, &disks, &a.group);
    let bar = Bar::new("sign");
    let sig = sign_for_apply(
        &a.group,
        &refs(&disks),
        &key,
        cs,
        &a.out,
        &state,
        a.force,
        &mut bar.callback(),
    )
    .map_err(forceable)?;
    drop(bar);
    println!("{}", a.out.display());
    let chunks: u64 = (0..sig.disks.len()).map(|i| sig.chunks(i)).sum();
    eprintln!(
        "signed {} disks of group `{}` ({chunks} chunks); apply state {} expects the resync \
         point made against it (seq 1)",
        sig.disks.len(),
        a.group,
        state.display()
    );
    Ok(())
}

/// The state names operators type.
fn parse_state(s: &str) -> Result<ProtectionState, Failure> {
    use ProtectionState::*;
    Ok(match s {
        "enabling" => Enabling,
        "initial-replication" => InitialReplication,
        "protected" => Protected,
        "resync-required" => ResyncRequired,
        "resynchronizing" => Resynchronizing,
        "critical" => Critical,
        "failed-over-test" => FailedOver(FailoverKind::Test),
        "failed-over-planned" => FailedOver(FailoverKind::Planned),
        "failed-over-unplanned" => FailedOver(FailoverKind::Unplanned),
        "committed" => Committed,
        "reprotecting" => Reprotecting,
        _ => {
            return Err(Failure::Usage(format!(
                "--set `{s}`: expected one of enabling, initial-replication, protected, \
                 resync-required, resynchronizing, critical, failed-over-test, \
                 failed-over-planned, failed-over-unplanned, committed, reprotecting"
            )));
        }
    })
}

/// `replicore protection`.
pub fn protection(a: ProtectionArgs) -> CmdResult {
    let path = protection_path(&a.dir, &a.group);
    if let Some(to) = &a.set {
        let to = parse_state(to)?;
        if ProtectionRecord::load(&path)?.is_none() {
            return Err(Failure::Lib(replicore::Error::NotFound {
                what: format!(
                    "protection state {} (seed, resync ship or failover --log record one)",
                    path.display()
                ),
            }));
        }
        ProtectionRecord::advance(&path, &a.group, &[to], SystemTime::now())?;
    }
    let Some(r) = ProtectionRecord::load(&path)? else {
        return Err(Failure::Lib(replicore::Error::NotFound {
            what: format!("protection state {}", path.display()),
        }));
    };
    let since = r
        .since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let since = replicore::format::rfc3339(since);
    if a.json {
        let v = serde_json::json!({
            "group": r.group,
            "state": r.state.to_string(),
            "since": since,
        });
        println!("{v}");
    } else {
        println!("{}: {} since {since}", r.group, r.state);
    }
    Ok(())
}

/// After a failover with `--log`: the recovered disks' log, its ship state and the site's
/// protection state (failed over) beside it.
#[allow(clippy::too_many_arguments)]
pub fn track_after_failover(
    v: &replicore::vault::Vault,
    group: &str,
    point: replicore::id::PointId,
    written: &[replicore::vault::Materialized],
    key: &replicore::crypto::Key,
    log: &Path,
    kind: FailoverKind,
    force: bool,
) -> CmdResult {
    use replicore::bundle::{TrackFrom, track};
    use replicore::log::DiskSpec;
    let p = v.select(group, replicore::vault::Selector::Id(point))?;
    let dir = parent(log);
    step(dir, group, &[ProtectionState::FailedOver(kind)], false)?;
    let specs = written
        .iter()
        .map(|m| DiskSpec::new(m.disk.clone(), m.size))
        .collect();
    let from = TrackFrom {
        group: group.into(),
        point: p.id,
        seq: p.seq,
        chunk_size: p.chunk_size,
        time_ns: p
            .time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    };
    let (_log, state) = track(&from, specs, key, log, force).map_err(forceable)?;
    let sp = state_path(dir, group);
    state.save(&sp)?;
    step(dir, group, &[ProtectionState::FailedOver(kind)], true)?;
    eprintln!(
        "tracking the recovered disks in {} (ship state {}): their writes ship as points after \
         seq {}",
        log.display(),
        sp.display(),
        p.seq
    );
    Ok(())
}
