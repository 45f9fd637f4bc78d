//! Retention timing tool, used by `benches/peers/retention.sh` to compare with restic.
//!
//! ```text
//! cargo run --release --example retention -- build N WORK
//! cargo run --release --example retention -- stage WORK I
//! cargo run --release --example retention -- prune N WORK
//! ```
//! `build` makes `WORK/vault` holding a base and N points 30 seconds apart (the chain of
//! `benches/support/retention_chain.rs`). `stage` writes the disk as of point I to
//! `WORK/stage/disk.img` (I = 0 writes the seeded disk; I > 0 applies point I's writes to the
//! file there) and prints the point's time in RFC 3339, for `restic backup --time`. `prune`
//! times the dry run, prune and GC of `WORK/vault` by the bench policy at the time after point
//! N and prints `key=value` figures.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Instant, UNIX_EPOCH};

use replicore::vault::Vault;

#[path = "../benches/support/retention_chain.rs"]
mod chain;

fn main() -> replicore::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: retention build N WORK | stage WORK I | prune N WORK";
    let arg = |i: usize| args.get(i).map(String::as_str).expect(usage);
    let num = |i: usize| arg(i).parse::<u64>().expect(usage);
    match arg(1) {
        "build" => {
            let work = Path::new(arg(3));
            std::fs::create_dir_all(work).expect("creating WORK");
            let t = Instant::now();
            chain::build(work, num(2));
            println!("built={} seconds={:.3}", num(2), t.elapsed().as_secs_f64());
        }
        "stage" => {
            let (work, i) = (Path::new(arg(2)), num(3));
            let stage = work.join("stage");
            std::fs::create_dir_all(&stage).expect("creating WORK/stage");
            let img = stage.join("disk.img");
            if i == 0 {
                std::fs::write(&img, chain::disk()).expect("writing the disk");
            } else {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&img)
                    .expect("opening the staged disk");
                for (at, data) in chain::writes(i) {
                    f.write_all_at(&data, at).expect("writing the staged disk");
                }
            }
            let secs = chain::time(i).duration_since(UNIX_EPOCH).unwrap().as_secs();
            println!("{}", rfc3339(secs));
        }
        "prune" | "prune-all" => {
            let (n, work) = (num(2), Path::new(arg(3)));
            let v = Vault::open(work.join("vault"))?;
            let mut now = chain::now(n);
            let mut policy = chain::POLICY;
            if arg(1) == "prune-all" {
                now += std::time::Duration::from_secs(1000 * 3600);
                policy = replicore::policy::RetentionPolicy {
                    window_hours: 1,
                    app_every_hours: None,
                    extra_hourly: 0,
                    keep_last: 1,
                };
            }
            let t = Instant::now();
            let dry = v.plan_prune(&policy, now)?;
            let plan_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let r = v.prune(&policy, now)?;
            let prune_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let gc = v.gc(&mut |_, _| true)?;
            let gc_s = t.elapsed().as_secs_f64();
            assert_eq!(dry.pruned(), r.pruned());
            println!(
                "seconds={:.3} plan={plan_s:.3} prune={prune_s:.3} gc={gc_s:.3} kept={} pruned={} \
                 packs_before={} packs_after={} bytes_before={} bytes_after={} live_bytes={}",
                plan_s + prune_s + gc_s,
                r.kept(),
                r.pruned(),
                gc.packs_before,
                gc.packs_after,
                gc.bytes_before,
                gc.bytes_after,
                gc.live_bytes
            );
        }
        _ => panic!("{usage}"),
    }
    Ok(())
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC), the form restic's `--time` takes.
fn rfc3339(secs: u64) -> String {
    replicore::format::rfc3339(secs * 1_000_000_000)
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
}
