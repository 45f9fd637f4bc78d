//! Fuzz targets' checks, run as ordinary tests on their seed corpora and on every input a past
//! fuzz crash was found with.
//!
//! Protects: a fixed crash stays fixed (its input lives under `tests/data/fuzz/<target>/`, named
//! after what it found), and the seed corpora in `fuzz/corpus/` stay what the generator below
//! makes (`UPDATE_CORPUS=1 cargo test --test fuzz_regressions` rewrites them).

use std::io::Write;
use std::path::{Path, PathBuf};

use replicore::format::TrailerWriter;
use replicore::format::header::FileKind;
use replicore::format::{Preamble, Writer};

#[path = "../fuzz/checks/delta_apply.rs"]
mod delta_apply;
#[path = "../fuzz/checks/format_primitives.rs"]
mod format_primitives;
#[path = "../fuzz/checks/log_open.rs"]
mod log_open;
#[path = "../fuzz/checks/signature_read.rs"]
mod signature_read;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file in `dir` (which must exist and hold at least one file).
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} is empty", dir.display());
    out
}

/// Seeds for `format_primitives`: a valid preamble of every kind, a sealed file, and one whose
/// second half a read program walks through every reader method.
fn format_primitives_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for kind in FileKind::ALL {
        let name = kind.name().replace(' ', "_");
        seeds.push((
            format!("preamble_{name}"),
            Preamble::new(kind, 1, 0).to_bytes().to_vec(),
        ));
    }
    let mut w = TrailerWriter::new(Vec::new());
    w.write_all(&Preamble::new(FileKind::Signature, 1, 0).to_bytes())
        .unwrap();
    w.write_all(b"body bytes of a small sealed file").unwrap();
    seeds.push(("sealed".into(), w.finish().unwrap().0));
    let program = [0u8, 1, 2, 3, 4 | 8, 5 | 8, 6 | 16, 7 | 8];
    let mut body = Writer::new();
    body.u8(1).u16(2).u32(3).u64(4).u32(5).u64(6);
    body.string_u16("s", "disk-0", 64).unwrap();
    body.bytes(&[0xee; 37]);
    let mut prog = program.to_vec();
    prog.resize(body.len(), 0);
    prog.extend_from_slice(body.as_bytes());
    seeds.push(("read_program".into(), prog));
    seeds
}

#[test]
fn format_primitives_seed_corpus_is_current() {
    let dir = root().join("fuzz/corpus/format_primitives");
    for (name, bytes) in format_primitives_seeds() {
        let path = dir.join(&name);
        if std::env::var_os("UPDATE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} is stale: run with UPDATE_CORPUS=1",
            path.display()
        );
    }
}

#[test]
fn format_primitives_corpus_and_regressions() {
    run_corpus("format_primitives", format_primitives::check);
}

/// Runs `check` on target's seed corpus and on its regression inputs.
fn run_corpus(target: &str, check: fn(&[u8])) {
    for dir in [
        root().join("fuzz/corpus").join(target),
        root().join("tests/data/fuzz").join(target),
    ] {
        for (path, bytes) in inputs(&dir) {
            eprintln!("{}", path.display());
            check(&bytes);
        }
    }
}

/// Seeds for `log_open`: an active log with every record type, the same log with a torn tail,
/// and a sealed log. Their ids and times are random, so the committed seeds are checked for
/// what they are (valid logs of each kind), not byte for byte.
fn log_open_seeds() -> Vec<(String, Vec<u8>)> {
    use replicore::log::{ChangeLog, DiskSpec, LogConfig, MarkerKind};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.rclog");
    let cfg = LogConfig::new(
        "vm",
        vec![DiskSpec::new("os", 1 << 16), DiskSpec::new("data", 4096)],
    );
    let mut log = ChangeLog::create(&path, &cfg).unwrap();
    log.record_write(0, 512, b"guest data").unwrap();
    log.record_trim(1, 0, 4096).unwrap();
    log.mark(MarkerKind::App, "vss").unwrap();
    log.record_write(1, 100, &[7; 64]).unwrap();
    log.sync().unwrap();
    let active = std::fs::read(&path).unwrap();
    let torn = active[..active.len() - 20].to_vec();
    log.rotate(dir.path().join("sealed.rclog")).unwrap();
    let sealed = std::fs::read(dir.path().join("sealed.rclog")).unwrap();
    vec![
        ("active".into(), active),
        ("torn_tail".into(), torn),
        ("sealed".into(), sealed),
    ]
}

#[test]
fn log_open_seed_corpus_is_current() {
    use replicore::log::{LogReader, MemStorage};
    let dir = root().join("fuzz/corpus/log_open");
    for (name, bytes) in log_open_seeds() {
        let path = dir.join(&name);
        if std::env::var_os("UPDATE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: run with UPDATE_CORPUS=1", path.display()));
        let r = LogReader::from_storage(Box::new(MemStorage::from_bytes(committed))).unwrap();
        match name.as_str() {
            "active" => {
                assert!(r.seal().is_none() && r.torn_tail().is_none() && r.record_count() == 4)
            }
            "torn_tail" => assert!(r.torn_tail().is_some() && r.record_count() == 3),
            _ => assert!(r.seal().is_some() && r.record_count() == 5),
        }
    }
}

#[test]
fn log_open_corpus_and_regressions() {
    run_corpus("log_open", log_open::check);
}

/// Seeds for `signature_read` and `delta_apply`: a small image pair's signature and delta, with
/// data, zero and grown chunks. Deterministic, so checked byte for byte. The seeds are stored
/// without their trailer: the fuzz checks add one (and also try the input as it is).
/// Named seed files.
type Seeds = Vec<(String, Vec<u8>)>;

fn resync_seeds() -> (Seeds, Seeds) {
    use replicore::resync::{Delta, Signature};
    let target: Vec<u8> = (0..9000u32).map(|i| (i % 7) as u8).collect();
    let mut source = target.clone();
    source[100..200].fill(1);
    source[4096..8192].fill(0);
    source.extend_from_slice(&[3; 5000]);
    // An incompressible chunk, stored raw (the others are stored compressed).
    let mut x = 0x9e37_79b9_u64;
    for b in &mut source[8192..12288] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let sig = Signature::of(&target, 4096).unwrap();
    let mut sig_bytes = Vec::new();
    sig.to_writer(&mut sig_bytes).unwrap();
    let mut delta = Vec::new();
    Delta::compute_in_memory(&source, &sig, &mut delta, &mut |_, _| true).unwrap();
    let strip = |mut v: Vec<u8>| {
        v.truncate(v.len() - 32);
        v
    };
    let empty = Signature::of(&[], 4096).unwrap();
    let mut empty_bytes = Vec::new();
    empty.to_writer(&mut empty_bytes).unwrap();
    (
        vec![
            ("small".into(), strip(sig_bytes)),
            ("empty".into(), strip(empty_bytes)),
        ],
        vec![("small".into(), strip(delta))],
    )
}

#[test]
fn resync_seed_corpora_are_current() {
    let (sigs, deltas) = resync_seeds();
    for (target, seeds) in [("signature_read", sigs), ("delta_apply", deltas)] {
        let dir = root().join("fuzz/corpus").join(target);
        for (name, bytes) in seeds {
            let path = dir.join(&name);
            if std::env::var_os("UPDATE_CORPUS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is stale: run with UPDATE_CORPUS=1",
                path.display()
            );
        }
    }
}

#[test]
fn resync_corpora_and_regressions() {
    run_corpus("signature_read", signature_read::check);
    run_corpus("delta_apply", delta_apply::check);
}
