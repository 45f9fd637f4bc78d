//! `replicore seed` and `replicore ship`: on the primary.

use std::path::{Path, PathBuf};

use replicore::bundle::{
    SeedOptions, ShipOptions, ShipState, seed as seed_group, ship as ship_log,
};
use replicore::log::LogReader;

use crate::args::{SeedArgs, ShipArgs, size};
use crate::keys;
use crate::out::{Bar, bytes, forceable};
use crate::{CmdResult, Failure};

/// Where a group's ship state is kept: `GROUP.rcship` (the name made safe) in `dir`.
pub fn state_path(dir: &Path, group: &str) -> PathBuf {
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.rcship"))
}

pub fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

pub fn seed(a: SeedArgs) -> CmdResult {
    let mut disks: Vec<(String, PathBuf)> = Vec::new();
    for d in &a.disks {
        let (name, path) = d
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("--disk `{d}`: expected NAME=IMAGE")))?;
        disks.push((name.to_string(), PathBuf::from(path)));
    }
    let key = keys::load(&a.key, &a.pass)?;
    let mut opts = SeedOptions {
        replace: a.force,
        ..SeedOptions::default()
    };
    if let Some(s) = &a.chunk_size {
        opts.chunk_size = size(s, "--chunk-size")?;
    }
    let state = state_path(parent(&a.log), &a.group);
    if !a.force && std::fs::symlink_metadata(&state).is_ok() {
        return Err(forceable(replicore::Error::AlreadyExists {
            what: format!(
                "ship state {} (the group is seeded already)",
                state.display()
            ),
        }));
    }
    let list: Vec<(&str, &Path)> = disks
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let bar = Bar::new("seed");
    let s = seed_group(
        &a.group,
        &list,
        &key,
        &a.log,
        &a.out,
        &opts,
        &mut bar.callback(),
    )
    .map_err(forceable)?;
    drop(bar);
    s.state.save(&state)?;
    // A seed starts the group's protection over: protected, whatever was recorded before.
    replicore::bundle::ProtectionRecord {
        group: a.group.clone(),
        state: replicore::policy::ProtectionState::Protected,
        since: std::time::SystemTime::now(),
        last_error: None,
    }
    .save(crate::reverse_cmd::protection_path(
        parent(&a.log),
        &a.group,
    ))?;
    println!("{}", s.bundle.path.display());
    eprintln!(
        "seeded group `{}`: {} blobs, {} of data in a {} bundle; log {}, ship state {}",
        a.group,
        s.bundle.blobs,
        bytes(s.bundle.plain_bytes),
        bytes(std::fs::metadata(&s.bundle.path).map_or(0, |m| m.len())),
        a.log.display(),
        state.display()
    );
    Ok(())
}

pub fn ship(a: ShipArgs) -> CmdResult {
    let state_file = match &a.state {
        Some(s) => s.clone(),
        None => {
            let group = LogReader::open(&a.sealed)?.header().group.clone();
            state_path(parent(&a.sealed), &group)
        }
    };
    let mut state = ShipState::load(&state_file)?;
    let key = keys::load(&a.key, &a.pass)?;
    let prot = crate::reverse_cmd::protection_path(parent(&state_file), &state.group);
    if let Some(r) = replicore::bundle::ProtectionRecord::load(&prot)? {
        if r.state == replicore::policy::ProtectionState::ResyncRequired {
            return Err(Failure::Lib(replicore::Error::ResyncRequired {
                reason: format!(
                    "group `{}` is recorded as needing a resync ({}): resync it into its \
                     chain (replicore vault signature, then replicore resync ship)",
                    state.group,
                    prot.display()
                ),
            }));
        }
    }
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| replicore::Error::io("creating", Some(&a.out_dir), e))?;
    let bar = Bar::new("ship");
    let shipped = ship_log(
        &a.sealed,
        &key,
        &mut state,
        &a.out_dir,
        &ShipOptions {
            replace: a.force,
            ..ShipOptions::default()
        },
        &mut bar.callback(),
    )
    .map_err(|e| {
        // The failure's class, for status and health (a retry that succeeds clears it); a
        // log shipped already is no failure.
        if !matches!(e, replicore::Error::AlreadyDone { .. }) {
            let _ = replicore::bundle::ProtectionRecord::note_error(
                &prot,
                &state.group,
                e.kind(),
                std::time::SystemTime::now(),
            );
        }
        if e.kind() == replicore::ErrorKind::ResyncRequired {
            // Recorded so that status and the next ship say so (if the state machine allows).
            let _ = crate::reverse_cmd::step(
                parent(&state_file),
                &state.group,
                &[replicore::policy::ProtectionState::ResyncRequired],
                true,
            );
        }
        forceable(e)
    })?;
    drop(bar);
    state.save(&state_file)?;
    replicore::bundle::ProtectionRecord::clear_error(&prot, &state.group)?;
    for b in &shipped {
        println!("{}", b.path.display());
    }
    if let Some(last) = shipped.last() {
        eprintln!(
            "shipped {} points of group `{}`, the last sequence {} (give it to failover and verify \
             as --expect-seq to catch a rolled-back vault)",
            shipped.len(),
            state.group,
            last.seq
        );
    }
    Ok(())
}
