//! Vault timing tool, used by `benches/peers/vault.sh` to compare with restic and borg on the
//! shared benchmark images.
//!
//! ```text
//! cargo run --release --example vault -- seed IMAGE WORK VAULT
//! cargo run --release --example vault -- ingest WORK VAULT
//! cargo run --release --example vault -- round IMAGE WRITES WORK VAULT
//! cargo run --release --example vault -- failover WORK VAULT OUTDIR base|latest
//! cargo run --release --example vault -- verify WORK VAULT
//! cargo run --release --example vault -- verify-keyless WORK VAULT
//! ```
//! `seed` creates a key (`WORK/key.rckey`, raw key in `WORK/master`), seeds IMAGE (1 MiB
//! chunks) into `WORK` with its change log and ship state (timed) and creates VAULT; `ingest`
//! ingests the base (timed). `round` records the guest writes listed in WRITES (`offset length` per line) with
//! IMAGE's bytes into the change log, marks, rotates, ships and ingests the point (timed as
//! capture + ship, and ingest). `failover` writes every disk of the base or latest point into
//! OUTDIR (timed). `verify` checks the vault with the key (timed), `verify-keyless` without it. Each prints one line of
//! `key=value` figures ending with `peak_anon_kib`.

use std::io::BufRead;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use replicore::bundle::{SeedOptions, ShipOptions, ShipState, seed, ship};
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};
use replicore::log::{ChangeLog, MarkerKind, ResyncThreshold, SyncPolicy};
use replicore::vault::{Selector, Vault};

#[path = "support/anon.rs"]
mod anon;
use anon::AnonSampler;

const GROUP: &str = "bench";

fn key(work: &Path) -> replicore::Result<Key> {
    let master = std::fs::read(work.join("master")).expect("reading WORK/master");
    KeyFile::load(work.join("key.rckey"))?.unlock(Secret::Key(&MasterKey::from_slice(&master)?))
}

fn main() -> replicore::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: vault seed IMAGE WORK VAULT | ingest WORK VAULT | round IMAGE WRITES WORK VAULT | \
                 failover WORK VAULT OUTDIR base|latest | verify WORK VAULT | verify-keyless WORK VAULT";
    let arg = |i: usize| args.get(i).map(String::as_str).expect(usage);
    let sampler = AnonSampler::start();
    let mode = arg(1);
    match mode {
        "seed" => {
            let (image, work, vault) = (Path::new(arg(2)), Path::new(arg(3)), arg(4));
            std::fs::create_dir_all(work).expect("creating WORK");
            let master = MasterKey::generate()?;
            std::fs::write(work.join("master"), master.as_bytes()).expect("writing WORK/master");
            let (file, key) = KeyFile::create(Secret::Key(&master))?;
            file.save(work.join("key.rckey"), true)?;
            let t = Instant::now();
            let s = seed(
                GROUP,
                &[("disk", image)],
                &key,
                work.join("disk.rclog"),
                work.join("base.rcb"),
                &SeedOptions::default(),
                &mut |_, _| true,
            )?;
            let seed_s = t.elapsed().as_secs_f64();
            s.state.save(work.join("state.rcship"))?;
            Vault::create(vault)?;
            println!(
                "mode=seed seed={seed_s:.3} bundle_bytes={} peak_anon_kib={}",
                s.bundle.file_bytes,
                sampler.peak()
            );
        }
        "ingest" => {
            let (work, vault) = (Path::new(arg(2)), Vault::open(arg(3))?);
            let t = Instant::now();
            let i = vault.ingest(work.join("base.rcb"), &mut |_, _| true)?;
            println!(
                "mode=ingest seconds={:.3} stored_bytes={} peak_anon_kib={}",
                t.elapsed().as_secs_f64(),
                i.bytes_stored,
                sampler.peak()
            );
        }
        "round" => {
            let (image, writes, work, vault) =
                (arg(2), arg(3), Path::new(arg(4)), Vault::open(arg(5))?);
            let key = key(work)?;
            let mut state = ShipState::load(work.join("state.rcship"))?;
            let (mut log, _) = ChangeLog::open(
                work.join("disk.rclog"),
                None,
                SyncPolicy::Manual,
                ResyncThreshold::default(),
            )?;
            let img = std::fs::File::open(image).expect("opening IMAGE");
            let list = std::io::BufReader::new(std::fs::File::open(writes).expect("WRITES"));
            let t = Instant::now();
            let mut buf = Vec::new();
            for line in list.lines() {
                let line = line.expect("reading WRITES");
                let mut it = line
                    .split_whitespace()
                    .map(|v| v.parse::<u64>().expect("a number"));
                let (at, len) = (it.next().expect("offset"), it.next().expect("length"));
                buf.resize(len as usize, 0);
                img.read_exact_at(&mut buf, at).expect("reading IMAGE");
                log.record_write(0, at, &buf)?;
            }
            log.mark(MarkerKind::Crash, "interval")?;
            let sealed = work.join("sealed.rclog");
            let _ = std::fs::remove_file(&sealed);
            log.rotate(&sealed)?;
            let out = work.join("out");
            std::fs::create_dir_all(&out).expect("creating WORK/out");
            let shipped = ship(
                &sealed,
                &key,
                &mut state,
                &out,
                &ShipOptions::default(),
                &mut |_, _| true,
            )?;
            state.save(work.join("state.rcship"))?;
            let ship_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut stored = 0;
            for b in &shipped {
                stored += vault.ingest(&b.path, &mut |_, _| true)?.bytes_stored;
            }
            let ingest_s = t.elapsed().as_secs_f64();
            println!(
                "mode=round capture_ship={ship_s:.3} ingest={ingest_s:.3} bundle_bytes={} stored_bytes={stored} peak_anon_kib={}",
                shipped.iter().map(|b| b.file_bytes).sum::<u64>(),
                sampler.peak()
            );
        }
        "failover" => {
            let (work, vault, out) = (Path::new(arg(2)), Vault::open(arg(3))?, arg(4));
            let key = key(work)?;
            let selector = match arg(5) {
                "latest" => Selector::Latest,
                _ => Selector::Id(vault.points(GROUP)?[0].id),
            };
            std::fs::create_dir_all(out).expect("creating OUTDIR");
            let t = Instant::now();
            let written = vault.failover(GROUP, selector, &key, out, &mut |_, _| true)?;
            println!(
                "mode=failover seconds={:.3} data_bytes={} peak_anon_kib={}",
                t.elapsed().as_secs_f64(),
                written.iter().map(|m| m.data_bytes).sum::<u64>(),
                sampler.peak()
            );
        }
        "verify" | "verify-keyless" => {
            let (work, vault) = (Path::new(arg(2)), Vault::open(arg(3))?);
            let key = (mode == "verify").then(|| key(work)).transpose()?;
            let t = Instant::now();
            let r = vault.verify(key.as_ref(), &mut |_, _| true)?;
            assert!(r.is_ok(), "{r:?}");
            println!(
                "mode={mode} seconds={:.3} blobs={} decrypted={} peak_anon_kib={}",
                t.elapsed().as_secs_f64(),
                r.blobs,
                r.blobs_decrypted,
                sampler.peak()
            );
        }
        _ => panic!("{usage}"),
    }
    Ok(())
}
