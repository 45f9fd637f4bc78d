//! `replicore status`: what an operator watches, on the primary and at the recovery site.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replicore::bundle::{ProtectionRecord, ShipState};
use replicore::log::{LogReader, ResyncCheck, resync_reasons};
use replicore::policy::{Health, ReplicationFrequency};
use replicore::vault::Vault;
use serde_json::{Value, json};

use crate::args::StatusArgs;
use crate::out::{bytes, format_time, parse_time};
use crate::{CmdResult, Failure};

pub fn run(a: StatusArgs) -> CmdResult {
    let frequency = ReplicationFrequency::from_secs(a.frequency)
        .map_err(|e| e.renaming_argument("frequency", "--frequency"))?;
    let now = match &a.now {
        Some(t) => parse_time(t, "--now")?,
        None => SystemTime::now(),
    };
    let mut out = json!({});
    if let Some(log) = &a.log {
        let disks = crate::reverse_cmd::disk_pairs(&a.disks)?;
        out["primary"] = primary(log, &disks, frequency, now)?;
    }
    if let Some(dir) = &a.vault {
        out["recovery_site"] = recovery_site(dir, frequency, now)?;
    }
    if a.json {
        println!("{out:#}");
        return Ok(());
    }
    if let Some(p) = out.get("primary") {
        println!(
            "primary, group `{}`: {} pending (resync threshold {}), last point shipped: {}{}; \
             health {}",
            p["group"].as_str().unwrap_or_default(),
            bytes(p["pending_bytes"].as_u64().unwrap_or(0)),
            bytes(p["threshold_bytes"].as_u64().unwrap_or(0)),
            p["last_shipped_seq"]
                .as_u64()
                .map_or("none".to_string(), |s| format!("sequence {s}")),
            p["last_shipped_time"]
                .as_str()
                .map_or(String::new(), |t| format!(
                    " at {t} (lag {} s)",
                    p["lag_seconds"].as_u64().unwrap_or(0)
                )),
            p["health"].as_str().unwrap_or("unknown")
        );
        if let Some(state) = p["protection"].as_str() {
            println!("  protection: {state}");
        }
        if let Some(e) = p["last_error"].as_object() {
            println!(
                "  last error: {} at {}",
                e["class"].as_str().unwrap_or_default(),
                e["time"].as_str().unwrap_or_default()
            );
        }
        for r in p["resync"]["reasons"].as_array().into_iter().flatten() {
            println!(
                "  resync needed: {} ({})",
                r["reason"].as_str().unwrap_or_default(),
                r["detail"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(v) = out.get("recovery_site") {
        println!(
            "recovery site {}: {} stored",
            v["vault"].as_str().unwrap_or_default(),
            bytes(v["stored_bytes"].as_u64().unwrap_or(0))
        );
        for g in v["groups"].as_array().into_iter().flatten() {
            println!(
                "  group `{}`: {}; {} points ({} stored), newest sequence {} at {} (lag {} s), newest app-consistent {}",
                g["group"].as_str().unwrap_or_default(),
                g["health"].as_str().unwrap_or_default(),
                g["points"],
                bytes(g["stored_bytes"].as_u64().unwrap_or(0)),
                g["head_seq"],
                g["head_time"].as_str().unwrap_or_default(),
                g["lag_seconds"],
                g["newest_app_consistent"]["seq"]
                    .as_u64()
                    .map_or("none".to_string(), |s| format!("sequence {s}"))
            );
        }
    }
    Ok(())
}

/// The primary's side: the active log, the ship state and the protection state beside it.
fn primary(
    log: &Path,
    disks: &[(String, std::path::PathBuf)],
    frequency: ReplicationFrequency,
    now: SystemTime,
) -> Result<Value, Failure> {
    let dir = crate::ship_cmd::parent(log);
    let r = match LogReader::open(log) {
        Ok(r) => r,
        Err(e) if e.kind() == replicore::ErrorKind::NotFound => {
            return lost_tracker(log, dir, frequency, now);
        }
        Err(e) => return Err(e.into()),
    };
    let h = r.header().clone();
    let state_path = crate::ship_cmd::state_path(dir, &h.group);
    let state = match ShipState::load(&state_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == replicore::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let mut sizes = Vec::with_capacity(disks.len());
    for (name, path) in disks {
        let len = std::fs::metadata(path)
            .map_err(|e| replicore::Error::io("reading the size of", Some(path), e))?
            .len();
        sizes.push((name.as_str(), len));
    }
    let check = ResyncCheck {
        epoch: state.as_ref().map(|s| s.epoch),
        disk_sizes: &sizes,
        threshold: None,
    };
    let reasons = resync_reasons(log, &check)?;
    let total = h.total_disk_size();
    let record = ProtectionRecord::load(crate::reverse_cmd::protection_path(dir, &h.group))?;
    let last_error = record.as_ref().and_then(|r| r.last_error);
    let head_time = state
        .as_ref()
        .filter(|s| s.head_time_ns != 0)
        .map(|s| UNIX_EPOCH + Duration::from_nanos(s.head_time_ns));
    let lag = head_time.map(|t| now.duration_since(t).unwrap_or_default());
    let health = lag.map(|l| {
        Health::of(
            l,
            frequency,
            !reasons.is_empty(),
            last_error.map(|(k, _)| k),
        )
    });
    Ok(json!({
        "group": h.group,
        "log": log.display().to_string(),
        "pending_bytes": r.pending_bytes(),
        "threshold_bytes": (u128::from(total) * 50 / 100) as u64,
        "resync": {
            "needed": !reasons.is_empty(),
            "reasons": reasons.iter().map(|n| json!({
                "reason": n.reason.name(),
                "detail": n.detail,
            })).collect::<Vec<_>>(),
        },
        "last_shipped_seq": state.as_ref().and_then(|s| s.next_seq.checked_sub(1)),
        "last_shipped_point": state.as_ref().map(|s| s.head.to_hex()),
        "last_shipped_time": head_time.map(format_time),
        "lag_seconds": lag.map(|l| l.as_secs()),
        "protection": record.as_ref().map(|r| r.state.to_string()),
        "last_error": last_error.map(|(k, t)| json!({"class": k.name(), "time": format_time(t)})),
        "health": health.map(|h| h.name()),
    }))
}

/// The primary's side when its log is gone: the one ship state beside where it was says which
/// group lost its tracker.
fn lost_tracker(
    log: &Path,
    dir: &Path,
    frequency: ReplicationFrequency,
    now: SystemTime,
) -> Result<Value, Failure> {
    let states: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| replicore::Error::io("listing", Some(dir), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rcship"))
        .collect();
    let [path] = states.as_slice() else {
        return Err(Failure::Lib(replicore::Error::NotFound {
            what: format!(
                "change log {} (and no single ship state beside it names its group)",
                log.display()
            ),
        }));
    };
    let state = ShipState::load(path)?;
    let reasons = resync_reasons(
        log,
        &ResyncCheck {
            epoch: Some(state.epoch),
            ..ResyncCheck::default()
        },
    )?;
    let head_time =
        (state.head_time_ns != 0).then(|| UNIX_EPOCH + Duration::from_nanos(state.head_time_ns));
    let lag = head_time.map(|t| now.duration_since(t).unwrap_or_default());
    Ok(json!({
        "group": state.group,
        "log": log.display().to_string(),
        "resync": {
            "needed": true,
            "reasons": reasons.iter().map(|n| json!({
                "reason": n.reason.name(),
                "detail": n.detail,
            })).collect::<Vec<_>>(),
        },
        "last_shipped_seq": state.next_seq.checked_sub(1),
        "last_shipped_point": state.head.to_hex(),
        "last_shipped_time": head_time.map(format_time),
        "lag_seconds": lag.map(|l| l.as_secs()),
        "health": Health::of(lag.unwrap_or_default(), frequency, true, None).name(),
    }))
}

/// The recovery site's side: every group of the vault.
fn recovery_site(
    dir: &Path,
    frequency: ReplicationFrequency,
    now: SystemTime,
) -> Result<Value, Failure> {
    let v = Vault::open(dir)?;
    let mut groups = Vec::new();
    for g in v.groups()? {
        let s = match v.group_status(&g, frequency, now, None) {
            Ok(s) => s,
            Err(e) if e.kind() == replicore::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        groups.push(json!({
            "group": g,
            "points": s.points,
            "head_seq": s.head.seq,
            "head_time": format_time(s.head.time),
            "lag_seconds": s.lag.as_secs(),
            "newest_app_consistent": s.newest_app_consistent.as_ref().map_or(Value::Null, |p| json!({
                "seq": p.seq,
                "time": format_time(p.time),
            })),
            "stored_bytes": s.stored_bytes,
            "health": s.health.name(),
        }));
    }
    let stored: u64 = std::fs::read_dir(dir.join("packs"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(json!({
        "vault": dir.display().to_string(),
        "stored_bytes": stored,
        "groups": groups,
    }))
}
