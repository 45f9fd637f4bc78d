//! `replicore status`: what an operator watches, on the primary and at the recovery site.

use std::path::Path;
use std::time::SystemTime;

use replicore::bundle::ShipState;
use replicore::log::{LogReader, MarkerKind};
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
        out["primary"] = primary(log)?;
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
            "primary, group `{}`: {} pending (resync threshold {}), last point shipped: {}",
            p["group"].as_str().unwrap_or_default(),
            bytes(p["pending_bytes"].as_u64().unwrap_or(0)),
            bytes(p["threshold_bytes"].as_u64().unwrap_or(0)),
            p["last_shipped_seq"]
                .as_u64()
                .map_or("none".to_string(), |s| format!("sequence {s}"))
        );
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
                "  group `{}`: {}; {} points, newest sequence {} at {} (lag {} s), newest app-consistent {}",
                g["group"].as_str().unwrap_or_default(),
                g["health"].as_str().unwrap_or_default(),
                g["points"],
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

/// The primary's side: the active log and the ship state beside it.
fn primary(log: &Path) -> Result<Value, Failure> {
    let r = LogReader::open(log)?;
    let h = r.header().clone();
    let threshold = h.total_disk_size() / 2;
    let mut reasons = crate::log_cmd::resync_reasons(&r);
    let state_path = crate::ship_cmd::state_path(crate::ship_cmd::parent(log), &h.group);
    let state = ShipState::load(&state_path).ok();
    if let Some(s) = &state
        && s.epoch != h.epoch
    {
        reasons.push(json!({
            "reason": "tracker lost",
            "detail": format!(
                "the log belongs to another tracking session than the ship state {}",
                state_path.display()
            ),
        }));
    }
    Ok(json!({
        "group": h.group,
        "log": log.display().to_string(),
        "pending_bytes": r.payload_bytes(),
        "threshold_bytes": threshold,
        "resync": {"needed": !reasons.is_empty(), "reasons": reasons},
        "last_shipped_seq": state.as_ref().and_then(|s| s.next_seq.checked_sub(1)),
        "last_shipped_point": state.as_ref().map(|s| s.head.to_hex()),
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
        let points = v.points(&g)?;
        let Some(head) = points.last() else { continue };
        let lag = now.duration_since(head.time).unwrap_or_default();
        let app = points
            .iter()
            .rev()
            .find(|p| p.consistency == MarkerKind::App);
        let health = Health::of(lag, frequency, false, None);
        groups.push(json!({
            "group": g,
            "points": points.len(),
            "head_seq": head.seq,
            "head_time": format_time(head.time),
            "lag_seconds": lag.as_secs(),
            "newest_app_consistent": app.map_or(Value::Null, |p| json!({
                "seq": p.seq,
                "time": format_time(p.time),
            })),
            "health": health.name(),
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
