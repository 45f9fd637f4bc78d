//! Crash safety of ingest: cut after every file an ingest publishes (with the next one's
//! temporary file torn), and a real process killed at many points while ingesting a chain.
//!
//! Protects: after any crash the vault holds exactly the committed points (a prefix of the
//! chain), each materializes as the model was, verify finds nothing damaged, leftovers are
//! removed on open, and ingesting again completes the chain.
//!
//! A harness-less test: the same binary is the parent (the tests) and, with `CHILD_ENV` set,
//! the child process that ingests and gets killed.

mod common;
#[path = "common/kill.rs"]
mod kill;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use replicore::crypto::Key;
use replicore::vault::{Selector, Vault};

const CHILD_ENV: &str = "REPLICORE_VAULT_CRASH_CHILD";

fn main() {
    kill::main(
        CHILD_ENV,
        child,
        &[
            (
                "an_ingest_cut_after_any_file_keeps_the_committed_points",
                cuts,
            ),
            ("a_killed_ingest_leaves_a_prefix_of_the_chain", kills),
        ],
    );
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files(from) {
        let t = to.join(&f);
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), t).unwrap();
    }
    for d in ["packs", "points", "heads", "locks"] {
        std::fs::create_dir_all(to.join(d)).unwrap();
    }
}

/// The vault holds exactly the first `n` points, each as the model was, and verifies.
fn check_prefix(vault: &Path, key: &Key, models: &[Vec<Vec<u8>>], n: usize, out: &Path) {
    let v = Vault::open(vault).unwrap();
    let points = if n == 0 {
        assert!(v.groups().unwrap().is_empty());
        Vec::new()
    } else {
        v.points("vm-01").unwrap()
    };
    assert_eq!(points.len(), n);
    let report = v.verify(Some(key), &mut ok).unwrap();
    assert!(report.is_ok(), "{report:?}");
    for (i, p) in points.iter().enumerate() {
        let dir = out.join(format!("p{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        v.failover("vm-01", Selector::Id(p.id), key, &dir, &mut ok)
            .unwrap();
        assert_eq!(std::fs::read(dir.join("os.img")).unwrap(), models[i][0]);
        assert_eq!(std::fs::read(dir.join("data.img")).unwrap(), models[i][1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        !files(vault)
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "tmp")),
        "a temporary file survived open"
    );
}

fn cuts() {
    let root = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history(root.path(), 2, 21);
    let vault = root.path().join("vault");
    let v = Vault::create(&vault).unwrap();
    let out = root.path().join("out");
    let mut cuts = 0;
    for (i, b) in bundles.iter().enumerate() {
        let before = root.path().join("before");
        let _ = std::fs::remove_dir_all(&before);
        copy_tree(&vault, &before);
        let old = files(&vault);
        v.ingest(b, &mut ok).unwrap();
        let after = files(&vault);
        // Published files in publication order: each pack before its index, then the group's
        // in-progress marker (empty; removed again after the head), the point file, then the
        // head (which replaces the previous one).
        let mut order: Vec<PathBuf> = after
            .iter()
            .filter(|f| !old.contains(f) && f.extension().is_some_and(|e| e == "rcpack"))
            .flat_map(|p| [p.clone(), p.with_extension("rcidx")])
            .collect();
        let point: Vec<PathBuf> = after
            .iter()
            .filter(|f| !old.contains(f) && f.extension().is_some_and(|e| e == "rcpt"))
            .cloned()
            .collect();
        order.extend(point.iter().map(|p| p.with_file_name("in-progress")));
        order.extend(point);
        order.extend(
            after
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "rchead"))
                .cloned(),
        );
        for k in 0..=order.len() {
            for torn in [0.0, 0.5] {
                let cut = root.path().join("cut");
                let _ = std::fs::remove_dir_all(&cut);
                copy_tree(&before, &cut);
                // The marker is gone from the finished vault: it is published empty.
                let read = |f: &PathBuf| std::fs::read(vault.join(f)).unwrap_or_default();
                for f in &order[..k] {
                    std::fs::create_dir_all(cut.join(f).parent().unwrap()).unwrap();
                    std::fs::write(cut.join(f), read(f)).unwrap();
                }
                if let Some(next) = order.get(k) {
                    let bytes = read(next);
                    std::fs::create_dir_all(cut.join(next).parent().unwrap()).unwrap();
                    // The name `fsutil::AtomicFile` gives it: `.<name>.<16 hex>.tmp`.
                    let name = next.file_name().unwrap().to_str().unwrap();
                    let tmp = cut
                        .join(next)
                        .with_file_name(format!(".{name}.00000000deadbeef.tmp"));
                    let n = (bytes.len() as f64 * torn) as usize;
                    std::fs::write(tmp, &bytes[..n]).unwrap();
                }
                cuts += 1;
                let committed = if k == order.len() { i + 1 } else { i };
                check_prefix(&cut, &g.key, &models, committed, &out);
                // Ingesting again completes the point.
                let again = Vault::open(&cut).unwrap();
                assert_eq!(again.ingest(b, &mut ok).unwrap().added, k < order.len());
                assert_eq!(again.points("vm-01").unwrap().len(), i + 1);
            }
        }
    }
    assert!(cuts > 2 * bundles.len(), "{cuts} cuts");
}

/// The child: ingests the bundles listed in `work/list`, printing a line after each.
fn child(work: &Path) {
    let list = std::fs::read_to_string(work.join("list")).unwrap();
    let v = Vault::open(work.join("vault")).unwrap();
    let mut out = std::io::stdout();
    for b in list.lines() {
        v.ingest(b, &mut ok).unwrap();
        writeln!(out, "ingested").unwrap();
        out.flush().unwrap();
    }
}

fn kills() {
    let root = tempfile::tempdir().unwrap();
    let (g, bundles, models) = history(root.path(), 3, 33);
    let list: String = bundles
        .iter()
        .map(|b| format!("{}\n", b.display()))
        .collect();
    let out = root.path().join("out");
    let fresh = |name: &str| {
        let work = root.path().join(name);
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("list"), &list).unwrap();
        Vault::create(work.join("vault")).unwrap();
        work
    };
    let full = fresh("full");
    let t = Instant::now();
    kill::run_child_and_kill(CHILD_ENV, &full, bundles.len() + 1, Duration::ZERO);
    let whole = t.elapsed();
    check_prefix(&full.join("vault"), &g.key, &models, bundles.len(), &out);
    let mut seen = std::collections::BTreeSet::new();
    for lines in 0..bundles.len() {
        for frac in [0u32, 1, 2] {
            let work = fresh(&format!("k{lines}-{frac}"));
            kill::run_child_and_kill(
                CHILD_ENV,
                &work,
                lines,
                whole * frac / (3 * bundles.len() as u32),
            );
            let vault = work.join("vault");
            let v = Vault::open(&vault).unwrap();
            let n = v.points("vm-01").map_or(0, |p| p.len());
            assert!(n >= lines, "{n} points after {lines} reported ingests");
            seen.insert(n);
            check_prefix(&vault, &g.key, &models, n, &out);
            for b in &bundles {
                v.ingest(b, &mut ok).unwrap();
            }
            assert_eq!(v.points("vm-01").unwrap().len(), bundles.len());
            assert!(v.verify(None, &mut ok).unwrap().is_ok());
        }
    }
    print!("(kills left {:?} points) ", seen);
}
