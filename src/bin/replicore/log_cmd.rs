//! `replicore log`: capture, mark, rotate, inspect.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use replicore::log::{ChangeLog, LogReader, MarkerKind, RecordBody, ResyncThreshold, SyncPolicy};
use serde_json::{Value, json};

use crate::args::{CaptureArgs, Kind, LogCmd};
use crate::out::{Bar, forceable, format_time, parse_time};
use crate::{CmdResult, Failure};

/// The largest piece of a write recorded at once.
const PIECE: u64 = 4 << 20;
/// The largest extents file read.
const MAX_EXTENTS_FILE: u64 = 256 << 20;

pub fn run(c: LogCmd) -> CmdResult {
    match c {
        LogCmd::Capture(a) => capture(a),
        LogCmd::Mark(a) => {
            let mut log = open(&a.logfile)?;
            let kind = match a.kind {
                Kind::Crash => MarkerKind::Crash,
                Kind::App => MarkerKind::App,
            };
            let time = match &a.time {
                Some(t) => parse_time(t, "--time")?,
                None => std::time::SystemTime::now(),
            };
            let seq = log.mark_at(kind, &a.label, time)?;
            log.sync()?;
            println!("point {seq} ({}) at {}", kind_name(kind), format_time(time));
            Ok(())
        }
        LogCmd::Rotate(a) => {
            let mut log = open(&a.logfile)?;
            if a.force {
                remove_existing(&a.sealed_out)?;
            }
            let r = log.rotate(&a.sealed_out).map_err(forceable)?;
            println!(
                "{} sealed: generation {}, {} points, {} records",
                r.sealed_path.display(),
                r.generation,
                r.points,
                r.records
            );
            Ok(())
        }
        LogCmd::Inspect(a) => inspect(&a.logfile, a.json),
    }
}

/// Removes the file at `path` if there is one (a symbolic link itself, never its target).
fn remove_existing(path: &Path) -> Result<(), Failure> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(replicore::Error::io("removing", Some(path), e).into())
        }
        _ => Ok(()),
    }
}

fn kind_name(k: MarkerKind) -> &'static str {
    match k {
        MarkerKind::Crash => "crash",
        MarkerKind::App => "app",
    }
}

/// Opens an active log, recovering a torn tail (a note on stderr says so).
fn open(path: &Path) -> Result<ChangeLog, Failure> {
    let (log, recovery) =
        ChangeLog::open(path, None, SyncPolicy::Manual, ResyncThreshold::default())?;
    if let Some(t) = recovery.torn {
        eprintln!(
            "replicore: note: {}: dropped a torn tail of {} bytes at byte {} ({})",
            path.display(),
            t.bytes,
            t.at,
            t.why
        );
    }
    Ok(log)
}

/// One extent of the extents file.
struct Extent {
    start: u64,
    length: u64,
    zero: bool,
}

fn extents(src: &str) -> Result<Vec<Extent>, Failure> {
    let mut text = String::new();
    let read = if src == "-" {
        std::io::stdin()
            .take(MAX_EXTENTS_FILE + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(src)
            .and_then(|f| f.take(MAX_EXTENTS_FILE + 1).read_to_string(&mut text))
    };
    read.map_err(|e| {
        let err = replicore::Error::io("reading the extents file", Some(Path::new(src)), e);
        Failure::Lib(err)
    })?;
    if text.len() as u64 > MAX_EXTENTS_FILE {
        return Err(Failure::Usage(format!(
            "the extents file {src} is larger than {MAX_EXTENTS_FILE} bytes"
        )));
    }
    let bad = |m: String| Failure::Usage(format!("extents file {src}: {m}"));
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let arr = v
        .as_array()
        .ok_or_else(|| bad("expected a JSON array of {\"start\", \"length\"} objects".into()))?;
    arr.iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |k: &str| {
                e.get(k).and_then(Value::as_u64).ok_or_else(|| {
                    bad(format!("entry {i}: `{k}` is missing or not a whole number"))
                })
            };
            Ok(Extent {
                start: field("start")?,
                length: field("length")?,
                zero: e.get("zero").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

fn capture(a: CaptureArgs) -> CmdResult {
    let list = extents(&a.extents)?;
    let mut log = open(&a.logfile)?;
    let disk = log.disk_index(&a.disk).ok_or_else(|| {
        Failure::Usage(format!(
            "disk `{}` is not in the log's group (its disks: {})",
            a.disk,
            log.header()
                .disks
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let image = std::fs::File::open(&a.image)
        .map_err(|e| replicore::Error::io("opening the image", Some(&a.image), e))?;
    let total: u64 = list.iter().filter(|e| !e.zero).map(|e| e.length).sum();
    let bar = Bar::new("capture");
    let mut progress = bar.callback();
    let (mut done, mut writes, mut trims) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    for e in &list {
        if e.length == 0 {
            continue;
        }
        if e.zero {
            log.record_trim(disk, e.start, e.length)?;
            trims += 1;
            continue;
        }
        let mut at = e.start;
        let end = e.start.checked_add(e.length).ok_or_else(|| {
            Failure::Usage(format!(
                "extents file {}: the extent of {} bytes at offset {} ends past 2^64 bytes",
                a.extents, e.length, e.start
            ))
        })?;
        while at < end {
            let n = (end - at).min(PIECE);
            buf.resize(n as usize, 0);
            image.read_exact_at(&mut buf, at).map_err(|err| {
                replicore::Error::io(
                    format!("reading {n} bytes at byte {at} (past the image's end?)"),
                    Some(&a.image),
                    err,
                )
            })?;
            log.record_write(disk, at, &buf)?;
            at += n;
            done += n;
            progress(done, total);
        }
        writes += 1;
    }
    log.sync()?;
    println!(
        "recorded {writes} writes ({} bytes) and {trims} trims on disk `{}`; pending {} bytes{}",
        done,
        a.disk,
        log.pending_bytes(),
        if log.needs_resync() {
            " (past the resync threshold: a resync is needed)"
        } else {
            ""
        }
    );
    Ok(())
}

fn inspect(path: &Path, as_json: bool) -> CmdResult {
    let r = LogReader::open(path)?;
    let h = r.header().clone();
    let mut markers = Vec::new();
    let (mut writes, mut trims) = (0u64, 0u64);
    for rec in r.records()? {
        match rec?.body {
            RecordBody::Write { .. } => writes += 1,
            RecordBody::Trim { .. } => trims += 1,
            RecordBody::Marker(m) => markers.push(m),
        }
    }
    let time = |ns: u64| format_time(UNIX_EPOCH + Duration::from_nanos(ns));
    let seal = r.seal();
    // The file alone: a torn tail, the pending bytes against the default threshold.
    let reasons: Vec<serde_json::Value> =
        replicore::log::resync_reasons(path, &replicore::log::ResyncCheck::default())?
            .iter()
            .map(|n| json!({"reason": n.reason.name(), "detail": n.detail}))
            .collect();
    let v = json!({
        "path": path.display().to_string(),
        "group": h.group,
        "sealed": seal.is_some(),
        "generation": h.generation,
        "first_point": h.first_point,
        "created": time(h.created_ns),
        "disks": h.disks.iter().map(|d| json!({"name": d.name, "size": d.size})).collect::<Vec<_>>(),
        "records": r.record_count(),
        "writes": writes,
        "trims": trims,
        "payload_bytes": r.payload_bytes(),
        "torn_tail_bytes": r.torn_tail().map_or(0, |t| t.bytes),
        "resync": {"needed": !reasons.is_empty(), "reasons": reasons},
        "points": markers.iter().enumerate().map(|(i, m)| json!({
            "seq": h.first_point + i as u64,
            "kind": kind_name(m.kind),
            "time": time(m.time_ns),
            "label": m.label,
        })).collect::<Vec<_>>(),
    });
    if as_json {
        println!("{v:#}");
        return Ok(());
    }
    println!(
        "{}: {} change log of group `{}`, generation {}, created {}",
        path.display(),
        if seal.is_some() { "sealed" } else { "active" },
        h.group,
        h.generation,
        time(h.created_ns)
    );
    for d in &h.disks {
        println!("  disk {}: {} bytes", d.name, d.size);
    }
    println!(
        "  {} records: {writes} writes ({} bytes), {trims} trims, {} points",
        r.record_count(),
        r.payload_bytes(),
        markers.len()
    );
    if let Some(t) = r.torn_tail() {
        println!(
            "  torn tail: {} bytes at byte {} ({})",
            t.bytes, t.at, t.why
        );
    }
    for why in &reasons {
        println!(
            "  resync needed: {} ({})",
            why["reason"].as_str().unwrap_or_default(),
            why["detail"].as_str().unwrap_or_default()
        );
    }
    for (i, m) in markers.iter().enumerate() {
        println!(
            "  point {} {} {} {}",
            h.first_point + i as u64,
            kind_name(m.kind),
            time(m.time_ns),
            m.label
        );
    }
    Ok(())
}
