//! `replicore vault ...` and `replicore failover`: on the recovery site.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use replicore::PointId;
use replicore::log::MarkerKind;
use replicore::policy::RetentionPolicy;
use replicore::vault::{FailoverOptions, RecoveryPoint, Selector, Vault};
use serde_json::{Value, json};

use crate::args::{FailoverArgs, PruneArgs, VaultCmd};
use crate::keys;
use crate::out::{Bar, bytes, forceable, format_time, parse_time};
use crate::{CmdResult, Failure};

pub fn run(c: VaultCmd) -> CmdResult {
    match c {
        VaultCmd::Init { dir } => {
            Vault::create(&dir)?;
            println!("created vault {}", dir.display());
            Ok(())
        }
        VaultCmd::Ingest { dir, bundles } => {
            let v = Vault::open(&dir)?;
            for b in bundles {
                let bar = Bar::new("ingest");
                let i = v.ingest(&b, &mut bar.callback())?;
                drop(bar);
                let mut combined = match i.packs_combined {
                    0 => String::new(),
                    n => format!("; {n} small packs combined"),
                };
                if i.point_files_combined > 0 {
                    combined += &format!(
                        "; {} point files combined into a segment",
                        i.point_files_combined
                    );
                }
                println!(
                    "{} {}: group `{}` point {} {}; {} blobs stored ({}), {} already held{combined}",
                    b.display(),
                    if i.added {
                        "ingested"
                    } else {
                        "already in the vault"
                    },
                    i.group,
                    i.seq,
                    &i.point.to_hex()[..16],
                    i.blobs_stored,
                    bytes(i.bytes_stored),
                    i.blobs_deduplicated
                );
            }
            Ok(())
        }
        VaultCmd::Points { dir, group, json } => points(&dir, group.as_deref(), json),
        VaultCmd::Prune(a) => prune(a),
        VaultCmd::Gc { dir } => {
            let v = Vault::open(&dir)?;
            let bar = Bar::new("gc");
            let r = v.gc(&mut bar.callback())?;
            drop(bar);
            println!(
                "packs {} -> {} ({} removed, {} rewritten into {}); {} -> {} ({} live); {} blob copies dropped",
                r.packs_before,
                r.packs_after,
                r.packs_removed,
                r.packs_rewritten,
                r.packs_written,
                bytes(r.bytes_before),
                bytes(r.bytes_after),
                bytes(r.live_bytes),
                r.blobs_removed
            );
            if r.point_files_combined > 0 {
                println!(
                    "{} point files written into segments",
                    r.point_files_combined
                );
            }
            if !r.damaged_packs.is_empty() {
                eprintln!(
                    "replicore: note: {} damaged packs were left as they are; run `replicore vault verify`",
                    r.damaged_packs.len()
                );
            }
            Ok(())
        }
        VaultCmd::Compact {
            dir,
            group,
            key,
            pass,
        } => {
            let v = Vault::open(&dir)?;
            let key = keys::load(&key, &pass)?;
            let c = v.compact(&group, &key)?;
            if c.records_before == 1 {
                println!(
                    "group `{group}`: its first point file (point {}) holds one record; nothing to compact",
                    c.seq
                );
            } else {
                println!(
                    "group `{group}`: point {} now holds one signed checkpoint for {} shipped points ({} records, {} -> {})",
                    c.seq,
                    c.shipped,
                    c.records_before,
                    bytes(c.bytes_before),
                    bytes(c.bytes_after)
                );
            }
            Ok(())
        }
        VaultCmd::Signature {
            dir,
            group,
            key,
            pass,
            point,
            out,
            force,
        } => {
            let v = Vault::open(&dir)?;
            let key = keys::load(&key, &pass)?;
            let sel = selector(&v, &group, &point)?;
            if !force && std::fs::symlink_metadata(&out).is_ok() {
                return Err(forceable(replicore::Error::AlreadyExists {
                    what: format!("{}", out.display()),
                }));
            }
            let bar = Bar::new("signature");
            let sig = v
                .save_point_signature(&group, sel, &key, &out, force, &mut bar.callback())
                .map_err(forceable)?;
            drop(bar);
            println!("{}", out.display());
            eprintln!(
                "point signature of group `{group}` at point {} (sequence {}): {} disks, {} chunks",
                &sig.point.to_hex()[..16],
                sig.seq,
                sig.disks.len(),
                (0..sig.disks.len()).map(|i| sig.chunks(i)).sum::<u64>()
            );
            Ok(())
        }
        VaultCmd::RebuildHead { dir, group } => {
            let v = Vault::open(&dir)?;
            let r = v.rebuild_head(&group)?;
            for (p, why) in &r.skipped {
                eprintln!("replicore: skipped {}: {why}", p.display());
            }
            println!(
                "group `{group}`: head written at point {} (sequence {}), {} point files; check the sequence against the last one the primary shipped",
                &r.point.to_hex()[..16],
                r.seq,
                r.points
            );
            Ok(())
        }
        VaultCmd::PinKey {
            dir,
            group,
            verifying_key,
            replace,
        } => {
            let v = Vault::open(&dir)?;
            let vk = replicore::crypto::VerifyingKey::from_hex(&verifying_key)?;
            v.pin_key(&group, vk, replace)?;
            println!("group `{group}`: points must be signed by {vk}");
            Ok(())
        }
        VaultCmd::Verify {
            dir,
            key,
            pass,
            group,
            expect_seq,
            json: as_json,
        } => {
            let v = Vault::open(&dir)?;
            if let (Some(g), Some(seq)) = (&group, expect_seq) {
                v.expect_seq(g, seq)?;
            }
            let key = key.map(|k| keys::load(&k, &pass)).transpose()?;
            let bar = Bar::new("verify");
            let r = v.verify(key.as_ref(), &mut bar.callback())?;
            drop(bar);
            if as_json {
                let v = json!({
                    "ok": r.is_ok(),
                    "packs": r.packs, "blobs": r.blobs, "groups": r.groups, "points": r.points,
                    "blobs_decrypted": r.blobs_decrypted,
                    "other_key_groups": r.other_key_groups,
                    "damage": r.damage.iter().map(|d| json!({
                        "object": d.object, "detail": d.detail,
                        "points": d.points.iter().map(|(g, s, id)| json!({"group": g, "seq": s, "id": id.to_hex()})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                });
                println!("{v:#}");
            } else {
                println!(
                    "checked {} packs ({} blobs), {} groups, {} points; {} blobs decrypted",
                    r.packs, r.blobs, r.groups, r.points, r.blobs_decrypted
                );
                for g in &r.other_key_groups {
                    println!("group `{g}` is sealed under another key: checked without it");
                }
                for d in &r.damage {
                    println!(
                        "DAMAGED {}: {} ({} points affected)",
                        d.object,
                        d.detail,
                        d.points.len()
                    );
                }
            }
            if key.is_some() {
                r.check_key_opened(group.as_deref())?;
            }
            if r.is_ok() {
                Ok(())
            } else {
                Err(Failure::Damage(format!(
                    "{} objects damaged; the first: {}: {}; restore from another copy or \
                     resynchronize the affected groups",
                    r.damage.len(),
                    r.damage[0].object,
                    r.damage[0].detail
                )))
            }
        }
    }
}

fn kind(k: MarkerKind) -> &'static str {
    match k {
        MarkerKind::Crash => "crash",
        MarkerKind::App => "app",
    }
}

fn point_json(p: &RecoveryPoint) -> Value {
    json!({
        "id": p.id.to_hex(),
        "seq": p.seq,
        "group": p.group,
        "time": format_time(p.time),
        "kind": kind(p.consistency),
        "label": p.label,
        "disks": p.disks.iter().map(|d| json!({"name": d.name, "size": d.size})).collect::<Vec<_>>(),
        "merged": p.merged,
        "checkpoint": p.checkpoint,
        "verifying_key": p.verifying_key.to_hex(),
        "key_id": p.key_id.to_hex(),
    })
}

fn points(dir: &Path, group: Option<&str>, as_json: bool) -> CmdResult {
    let v = Vault::open(dir)?;
    let groups = match group {
        Some(g) => vec![g.to_string()],
        None => v.groups()?,
    };
    // Every chain read first (the vault's lock is not held while a slow reader takes the
    // output, and a chain that does not read prints nothing), then printed.
    let mut all = Vec::new();
    for g in &groups {
        all.extend(v.points(g)?);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        if as_json {
            // The pretty form of one JSON array, written element by element.
            for (i, p) in all.iter().enumerate() {
                let item = format!("{:#}", point_json(p)).replace('\n', "\n  ");
                write!(out, "{}  {item}", if i == 0 { "[\n" } else { ",\n" })?;
            }
            out.write_all(if all.is_empty() { b"[]\n" } else { b"\n]\n" })?;
        } else {
            for p in &all {
                writeln!(
                    out,
                    "{} {:>6} {} {:<5} {} {}{}",
                    p.group,
                    p.seq,
                    format_time(p.time),
                    kind(p.consistency),
                    &p.id.to_hex()[..16],
                    p.label,
                    match (p.checkpoint, p.merged) {
                        (true, n) => format!(" (signed checkpoint of {} shipped points)", n + 1),
                        (false, 0) => String::new(),
                        (false, n) => format!(" (holds {n} pruned points)"),
                    }
                )?;
            }
        }
        out.flush()
    })();
    match written {
        // A reader that stops early (`| head`) ends the listing, quietly.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(replicore::Error::io("writing the list of points", None, e).into())
        }
        _ => Ok(()),
    }
}

fn prune(a: PruneArgs) -> CmdResult {
    let policy = RetentionPolicy {
        window_hours: a.window,
        app_every_hours: a.app_every,
        extra_hourly: a.extra_hourly,
        keep_last: a.keep_last,
    };
    let now = match &a.now {
        Some(t) => parse_time(t, "--now")?,
        None => SystemTime::now(),
    };
    let v = Vault::open(&a.dir)?;
    let r = if a.dry_run {
        v.plan_prune(&policy, now)?
    } else {
        v.prune(&policy, now)?
    };
    if a.json {
        let groups: Vec<Value> = r
            .groups
            .iter()
            .map(|g| {
                json!({
                    "group": g.group,
                    "points": g.points.iter().map(|p| {
                        let mut o = point_json(&p.point);
                        o["keep"] = json!(p.rule.keeps());
                        o["rule"] = json!(p.rule.name());
                        o["pinned"] = json!(p.pinned);
                        o
                    }).collect::<Vec<_>>(),
                    "merges": g.merges.iter().map(|m| json!({
                        "into": m.into.to_hex(),
                        "seq": m.seq,
                        "pruned": m.pruned.iter().map(PointId::to_hex).collect::<Vec<_>>(),
                        "new_base": m.new_base,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let v = json!({
            "dry_run": a.dry_run,
            "now": format_time(now),
            "kept": r.kept(),
            "pruned": r.pruned(),
            "groups": groups,
        });
        println!("{v:#}");
        return Ok(());
    }
    for g in &r.groups {
        for p in &g.points {
            println!(
                "{} {:>6} {} {:<5} {} {}",
                g.group,
                p.point.seq,
                format_time(p.point.time),
                kind(p.point.consistency),
                if p.rule.keeps() { "keep " } else { "prune" },
                p.rule.name()
            );
        }
    }
    println!(
        "{}{} points kept, {} pruned",
        if a.dry_run { "dry run: " } else { "" },
        r.kept(),
        r.pruned()
    );
    if !a.dry_run && r.pruned() > 0 {
        println!("run `replicore vault gc` to give the space back");
    }
    Ok(())
}

/// Parses `latest`, `latest-app`, a point id (64 hex digits, or a unique prefix of at least 8
/// among the group's points) or `at:RFC3339`.
fn selector(v: &Vault, group: &str, s: &str) -> Result<Selector, Failure> {
    Ok(match s {
        "latest" => Selector::Latest,
        "latest-app" => Selector::LatestAppConsistent,
        _ if s.starts_with("at:") => {
            Selector::AtOrBefore(parse_time(&s[3..], "--point at:RFC3339")?)
        }
        _ => {
            if let Some(id) = PointId::from_hex(s) {
                return Ok(Selector::Id(id));
            }
            let lower = s.to_ascii_lowercase();
            if lower.len() < 8 || !lower.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Failure::Usage(format!(
                    "--point `{s}`: expected latest, latest-app, at:RFC3339 or a point id (at least 8 hex digits)"
                )));
            }
            let mut found: Vec<PointId> = Vec::new();
            v.each_point(group, |p| {
                if p.id.to_hex().starts_with(&lower) {
                    found.push(p.id);
                }
                Ok(())
            })?;
            match found.as_slice() {
                [id] => Selector::Id(*id),
                [] => {
                    return Err(Failure::Lib(replicore::Error::NotFound {
                        what: format!("a point of group `{group}` whose id starts with {lower}"),
                    }));
                }
                _ => {
                    return Err(Failure::Usage(format!(
                        "--point {lower} matches {} points: give more digits",
                        found.len()
                    )));
                }
            }
        }
    })
}

pub fn failover(a: FailoverArgs) -> CmdResult {
    let v = Vault::open(&a.dir)?;
    let sel = selector(&v, &a.group, &a.point)?;
    let key = keys::load(&a.key, &a.pass)?;
    if let Some(seq) = a.expect_seq {
        v.expect_seq(&a.group, seq)?;
    }
    let mut options = FailoverOptions {
        replace: a.force,
        targets: Vec::new(),
    };
    for t in &a.targets {
        let (name, path) = t
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("--target `{t}`: expected NAME=PATH")))?;
        options
            .targets
            .push((name.to_string(), PathBuf::from(path)));
    }
    let kind = match a.kind.as_str() {
        "unplanned" => replicore::policy::FailoverKind::Unplanned,
        "planned" => replicore::policy::FailoverKind::Planned,
        "test" => replicore::policy::FailoverKind::Test,
        k => {
            return Err(Failure::Usage(format!(
                "--kind `{k}`: expected unplanned, planned or test"
            )));
        }
    };
    if let Some(log) = &a.log {
        if !a.force && std::fs::symlink_metadata(log).is_ok() {
            return Err(forceable(replicore::Error::AlreadyExists {
                what: format!("change log {}", log.display()),
            }));
        }
    }
    let bar = Bar::new("failover");
    let out_dir = a.out_dir.clone().unwrap_or_default();
    let written = v
        .failover_with(&a.group, sel, &key, &out_dir, &options, &mut bar.callback())
        .map_err(forceable)?;
    drop(bar);
    for m in &written {
        println!("{}", m.path.display());
    }
    if let Some(m) = written.first() {
        eprintln!(
            "failed group `{}` over to point {}: {} disks",
            a.group,
            &m.point.to_hex()[..16],
            written.len()
        );
        if let Some(log) = &a.log {
            crate::reverse_cmd::track_after_failover(
                &v, &a.group, m.point, &written, &key, log, kind, a.force,
            )?;
        }
    }
    Ok(())
}
