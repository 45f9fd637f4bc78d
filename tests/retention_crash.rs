//! Crash safety of prune and GC with a real process: a child prunes and collects garbage in a
//! vault and is killed (SIGKILL) at many instants; the vault is reopened and checked.
//!
//! Protects: after a kill anywhere in prune or GC, the vault holds every point the plan keeps
//! and only points of the original chain, in order; each materializes as its model; verify
//! with the key is clean; no temporary file survives open; pruning and collecting again end
//! with exactly the kept points.
//!
//! A harness-less test: the same binary is the parent (the tests) and, with `CHILD_ENV` set,
//! the child process that prunes and gets killed. (Cuts at every file operation, without a
//! process: `vault::retention_crash_tests` in the library.)

mod common;
#[path = "common/kill.rs"]
mod kill;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use replicore::PointId;
use replicore::policy::RetentionPolicy;
use replicore::vault::{Selector, Vault};

const CHILD_ENV: &str = "REPLICORE_RETENTION_CRASH_CHILD";

fn main() {
    kill::main(
        CHILD_ENV,
        child,
        &[("a_killed_prune_or_gc_keeps_every_kept_point", kills)],
    );
}

const POLICY: RetentionPolicy = RetentionPolicy {
    window_hours: 1,
    app_every_hours: None,
    extra_hourly: 24,
    keep_last: 1,
};

/// The time both sides prune at: an hour and a half after the newest point, so that every
/// point is past the window and one an hour is kept: several merges.
fn now(v: &Vault) -> SystemTime {
    v.points("vm-01").unwrap().last().unwrap().time + Duration::from_secs(5400)
}

/// The child: prunes and collects garbage in `work/vault`, saying when it starts.
fn child(work: &Path) {
    let v = Vault::open(work.join("vault")).unwrap();
    let t = now(&v);
    let mut out = std::io::stdout();
    writeln!(out, "start").unwrap();
    out.flush().unwrap();
    v.prune(&POLICY, t).unwrap();
    v.gc(&mut ok).unwrap();
}

fn kills() {
    let root = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history_every(root.path(), 8, 41, 1200);
    let pristine = root.path().join("pristine");
    let v = Vault::create(&pristine).unwrap();
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    let all: Vec<PointId> = v.points("vm-01").unwrap().iter().map(|p| p.id).collect();
    let kept: Vec<PointId> = v.plan_prune(&POLICY, now(&v)).unwrap().groups[0]
        .points
        .iter()
        .filter(|p| p.rule.keeps())
        .map(|p| p.point.id)
        .collect();
    assert!(
        kept.len() < all.len() / 2,
        "{} of {}",
        kept.len(),
        all.len()
    );
    let fresh = |name: &str| {
        let work = root.path().join(name);
        copy_dir(&pristine, &work.join("vault"));
        work
    };
    // How long prune and GC take here, from the child's "start" on.
    let full = fresh("full");
    let v = Vault::open(full.join("vault")).unwrap();
    let t = Instant::now();
    v.prune(&POLICY, now(&v)).unwrap();
    v.gc(&mut ok).unwrap();
    let whole = t.elapsed();
    drop(v);
    let out = root.path().join("out");
    let check = |vault: &Path| -> usize {
        let v = Vault::open(vault).unwrap();
        let ids: Vec<PointId> = v.points("vm-01").unwrap().iter().map(|p| p.id).collect();
        let mut rest = all.iter();
        for id in &ids {
            assert!(
                rest.any(|a| a == id),
                "a point not of the chain, or out of order"
            );
        }
        for k in &kept {
            assert!(ids.contains(k), "a kept point was lost");
        }
        let r = v.verify(Some(&g.key), &mut ok).unwrap();
        assert!(r.is_ok(), "{r:?}");
        for id in &ids {
            let i = all.iter().position(|a| a == id).unwrap();
            let dir = out.join(id.to_hex());
            std::fs::create_dir_all(&dir).unwrap();
            v.failover("vm-01", Selector::Id(*id), &g.key, &dir, &mut ok)
                .unwrap();
            assert_eq!(std::fs::read(dir.join("os.img")).unwrap(), models[i][0]);
            assert_eq!(std::fs::read(dir.join("data.img")).unwrap(), models[i][1]);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(no_tmp(vault), "a temporary file survived open");
        ids.len()
    };
    assert_eq!(check(&full.join("vault")), kept.len());
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..32u32 {
        let work = fresh(&format!("k{k}"));
        kill::run_child_and_kill(CHILD_ENV, &work, 1, whole * k / 24);
        let vault = work.join("vault");
        seen.insert(check(&vault));
        let v = Vault::open(&vault).unwrap();
        v.prune(&POLICY, now(&v)).unwrap();
        v.gc(&mut ok).unwrap();
        assert_eq!(check(&vault), kept.len());
    }
    print!("(kills left {seen:?} points of {}) ", all.len());
}

fn no_tmp(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            no_tmp(&p)
        } else {
            p.extension().is_none_or(|e| e != "tmp")
        }
    })
}
