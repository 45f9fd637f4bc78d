//! Retention beside its limit, at three chain lengths, in the same run.
//!
//! The vaults hold a base and N points 30 seconds apart (N = 2,000 is the 17 hours at
//! the fastest policy); each timed run works on a fresh copy, synced first (copying and
//! removing it are not timed).
//!
//! - `prune_gc/2000`: `Vault::plan_prune` (the dry run an operator looks at), `Vault::prune`
//!   and `Vault::gc` by the bench policy (4-hour window, 12 extra hourly points, app-consistent
//!   points every 2 hours for another window): 1,507 points pruned, 494 kept.
//! - `prune_all_gc/N`, N = 500, 1,000, 2,000: prune and GC of every point but the newest, so the
//!   work grows with the chain alone: pruning grows linearly when each doubling of N about
//!   doubles the time (quadratically, it would quadruple).
//! - `read_points/2000`: the limit every prune pays: reading each point file once, nothing
//!   decoded or written.
//! - `plan/2000`: the pure plan alone.
//!
//! The comparison with `restic forget --prune` on a repository of the same history is
//! `benches/peers/retention.sh`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use replicore::policy::{PlanPoint, RetentionPolicy, plan};
use replicore::vault::Vault;

#[path = "support/retention_chain.rs"]
mod chain;

fn read_tree(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        n += if p.is_dir() {
            read_tree(&p)
        } else {
            std::fs::read(&p).unwrap().len() as u64
        };
    }
    n
}

/// A directory removed when dropped.
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Times `run` on a fresh, synced copy of `template` per iteration (copy and removal untimed).
fn on_copies(
    b: &mut criterion::Bencher<'_>,
    dir: &Path,
    template: &Path,
    run: impl Fn(&Vault) -> usize,
) {
    let mut k = 0u32;
    b.iter_batched(
        || {
            k += 1;
            let to = dir.join(format!("run-{k}"));
            chain::copy_tree(template, &to);
            // Flush the copy, so that its writeback is not paid by the timed fsyncs.
            std::process::Command::new("sync").status().unwrap();
            to
        },
        |to| {
            let v = Vault::open(&to).unwrap();
            assert!(run(&v) > 0);
            // Removed once criterion drops it, outside the timing.
            Removed(to)
        },
        BatchSize::PerIteration,
    )
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut g = c.benchmark_group("retention");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    // Everything but the newest point pruned: the work grows with the chain alone.
    let all = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last: 1,
    };
    for n in [500u64, 1000, 2000] {
        let built = dir.path().join(format!("built-{n}"));
        std::fs::create_dir_all(&built).unwrap();
        let template = chain::build(&built, n);
        let late = chain::now(n) + Duration::from_secs(1000 * 3600);
        g.bench_with_input(BenchmarkId::new("prune_all_gc", n), &n, |b, _| {
            on_copies(b, dir.path(), &template, |v| {
                let r = v.prune(&all, late).unwrap();
                black_box(v.gc(&mut |_, _| true).unwrap());
                r.pruned()
            })
        });
        if n < 2000 {
            continue;
        }
        g.bench_with_input(BenchmarkId::new("prune_gc", n), &n, |b, &n| {
            on_copies(b, dir.path(), &template, |v| {
                let now = chain::now(n);
                black_box(v.plan_prune(&chain::POLICY, now).unwrap());
                let r = v.prune(&chain::POLICY, now).unwrap();
                black_box(v.gc(&mut |_, _| true).unwrap());
                r.pruned()
            })
        });
        g.bench_with_input(BenchmarkId::new("read_points", n), &n, |b, _| {
            b.iter(|| black_box(read_tree(&template.join("points"))))
        });
        let v = Vault::open(&template).unwrap();
        let points: Vec<PlanPoint> = v
            .points("bench")
            .unwrap()
            .iter()
            .map(|p| PlanPoint {
                time: p.time,
                app_consistent: p.consistency == replicore::log::MarkerKind::App,
                pinned: false,
            })
            .collect();
        g.bench_function(BenchmarkId::new("plan", n), |b| {
            b.iter(|| black_box(plan(&points, &chain::POLICY, chain::now(n)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
