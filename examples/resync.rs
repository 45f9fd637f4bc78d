//! Resync timing tool, used by `benches/peers/resync.sh` to compare with rsync, rdiff and b3sum
//! on the shared benchmark images.
//!
//! ```text
//! cargo run --release --example resync -- run SOURCE TARGET [CHUNK]        # local resync
//! cargo run --release --example resync -- steps SOURCE TARGET DIR [CHUNK]  # signature, delta file, apply
//! cargo run --release --example resync -- signature IMAGE [CHUNK]          # signature only
//! ```
//! Prints one line of `key=value` figures (seconds and bytes), ending with `peak_anon_kib`: the
//! highest anonymous resident memory (`RssAnon` in /proc/self/status, sampled every 5 ms) —
//! the memory a mapped image's pages do not count in, and which must not grow with the disk.

use std::time::Instant;

use replicore::resync::{DEFAULT_CHUNK_SIZE, Delta, Signature, resync};

#[path = "support/anon.rs"]
mod anon;
use anon::AnonSampler;

fn chunk(arg: Option<&String>) -> u32 {
    arg.map(|s| s.parse().expect("chunk size in bytes"))
        .unwrap_or(DEFAULT_CHUNK_SIZE)
}

fn main() -> replicore::Result<()> {
    let sampler = AnonSampler::start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = &mut |_: u64, _: u64| true;
    match args.first().map(String::as_str) {
        Some("run") => {
            let t = Instant::now();
            let s = resync(&args[1], &args[2], chunk(args.get(3)), ok)?;
            println!(
                "mode=run seconds={:.3} chunks={} data_chunks={} zero_chunks={} data_bytes={}",
                t.elapsed().as_secs_f64(),
                s.chunks,
                s.data_chunks,
                s.zero_chunks,
                s.data_bytes
            );
        }
        Some("steps") => {
            let dir = std::path::Path::new(&args[3]);
            let t0 = Instant::now();
            let sig = Signature::compute(&args[2], chunk(args.get(4)), ok)?;
            let t1 = Instant::now();
            let delta = dir.join("resync.rcdelta");
            let f = std::fs::File::create(&delta)
                .map_err(|e| replicore::Error::io("create", Some(&delta), e))?;
            let d = Delta::compute(&args[1], &sig, std::io::BufWriter::new(f), ok)?;
            let t2 = Instant::now();
            let a = Delta::apply(&delta, &args[2], ok)?;
            let t3 = Instant::now();
            println!(
                "mode=steps signature={:.3} delta={:.3} apply={:.3} total={:.3} delta_bytes={} data_bytes={} data_chunks={} zero_chunks={}",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                (t3 - t0).as_secs_f64(),
                d.delta_bytes,
                a.data_bytes,
                a.data_chunks,
                a.zero_chunks
            );
        }
        Some("signature") => {
            let t = Instant::now();
            let sig = Signature::compute(&args[1], chunk(args.get(2)), ok)?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "mode=signature seconds={secs:.3} bytes={} zero_chunks={} chunks={} gb_per_s={:.2}",
                sig.disk_size(),
                sig.zero_chunks(),
                sig.hashes().len(),
                sig.disk_size() as f64 / secs / 1e9
            );
        }
        _ => eprintln!("usage: resync run|steps|signature ... (see the source)"),
    }
    println!("peak_anon_kib={}", sampler.peak());
    Ok(())
}
