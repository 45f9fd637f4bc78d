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

#[path = "../fuzz/checks/format_primitives.rs"]
mod format_primitives;

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
    for dir in [
        "fuzz/corpus/format_primitives",
        "tests/data/fuzz/format_primitives",
    ] {
        for (path, bytes) in inputs(&root().join(dir)) {
            eprintln!("{}", path.display());
            format_primitives::check(&bytes);
        }
    }
}
