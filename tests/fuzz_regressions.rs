//! Fuzz targets' checks, run as ordinary tests on their seed corpora and on every input a past
//! fuzz crash was found with.
//!
//! Protects: a fixed crash stays fixed (its input lives under `tests/data/fuzz/<target>/`, named
//! after what it found), and the seed corpora in `fuzz/corpus/` stay what the generator below
//! makes (`UPDATE_CORPUS=1 cargo test --test fuzz_regressions` rewrites them).

// Each fuzz check is also the root of a fuzz target, so each includes the fixed-key module
// itself; here they meet in one crate.
#![allow(clippy::duplicate_mod)]

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
#[path = "../fuzz/checks/point_signature_read.rs"]
mod point_signature_read;
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

/// Seeds for `signature_read` and `delta_apply`: a small image's signature and the delta of
/// a source with data, zero, compressed, raw and grown chunks against the fuzz check's scratch
/// target, plain (deterministic, checked byte for byte) and sealed under the fixed key (random
/// salts: checked for what they are). The seeds are stored without their trailer: the fuzz
/// checks add one (and also try the input as it is).
/// Named seed files.
type Seeds = Vec<(String, Vec<u8>)>;

/// Plain and sealed signature seeds, plain and sealed delta seeds.
fn resync_seeds() -> [Seeds; 4] {
    use replicore::resync::{Delta, Signature};
    let key = fixed_key::key();
    let target: Vec<u8> = (0..9000u32).map(|i| (i % 7) as u8).collect();
    let scratch = delta_apply::SCRATCH;
    let mut source = scratch.to_vec();
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
    let strip = |mut v: Vec<u8>| {
        v.truncate(v.len() - 32);
        v
    };
    let plain_sig = |img: &[u8]| {
        let mut b = Vec::new();
        Signature::of(img, 4096).unwrap().to_writer(&mut b).unwrap();
        strip(b)
    };
    let sealed_sig = |img: &[u8]| {
        let mut b = Vec::new();
        let sig = Signature::of_keyed(img, 4096, &key).unwrap();
        sig.to_writer_sealed(&mut b, &key).unwrap();
        strip(b)
    };
    let mut delta = Vec::new();
    let sig = Signature::of(scratch, 4096).unwrap();
    Delta::compute_in_memory(&source, &sig, &mut delta, &mut |_, _| true).unwrap();
    let mut sealed_delta = Vec::new();
    let sig = Signature::of_keyed(scratch, 4096, &key).unwrap();
    Delta::compute_sealed_in_memory(&source, &sig, &key, &mut sealed_delta, &mut |_, _| true)
        .unwrap();
    [
        vec![
            ("small".into(), plain_sig(&target)),
            ("empty".into(), plain_sig(&[])),
        ],
        vec![
            ("sealed_small".into(), sealed_sig(&target)),
            ("sealed_empty".into(), sealed_sig(&[])),
        ],
        vec![("small".into(), strip(delta))],
        vec![("sealed_small".into(), strip(sealed_delta))],
    ]
}

#[test]
fn resync_seed_corpora_are_current() {
    use replicore::resync::{Delta, Signature};
    let [sigs, sealed_sigs, deltas, sealed_deltas] = resync_seeds();
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
    let key = fixed_key::key();
    let with_trailer = |b: &[u8]| [b, blake3::hash(b).as_bytes()].concat();
    random_seeds("signature_read", sealed_sigs, |_, b| {
        Signature::from_reader_sealed(&with_trailer(b)[..], &key).is_ok()
    });
    random_seeds("delta_apply", sealed_deltas, |_, b| {
        let mut t = delta_apply::SCRATCH.to_vec();
        Delta::apply_sealed_in_memory(&with_trailer(b), &mut t, &key, 1 << 20, &mut |_, _| true)
            .is_ok_and(|s| s.data_chunks == 3 && s.zero_chunks == 1)
    });
}

#[test]
fn resync_corpora_and_regressions() {
    run_corpus("signature_read", signature_read::check);
    run_corpus("delta_apply", delta_apply::check);
}

/// Seeds for `point_signature_read`: point signatures of one and of three disks (one empty),
/// sealed under the fixed key (random salts: checked for what they are), without trailers.
#[test]
fn point_signature_seed_corpus_is_current() {
    use replicore::PointId;
    use replicore::resync::point_sig::{DiskIds, PointSignature, ZERO_CHUNK, chunk_id};
    let key = fixed_key::key();
    let one = PointSignature {
        group: "vm-01".into(),
        point: PointId([5; 32]),
        seq: 7,
        chunk_size: 4096,
        key_id: key.id(),
        disks: vec![DiskIds {
            name: "os".into(),
            size: 10_000,
            ids: vec![
                chunk_id(&key, b"a chunk"),
                ZERO_CHUNK,
                chunk_id(&key, b"tail"),
            ],
        }],
    };
    let mut three = one.clone();
    three.disks.push(DiskIds {
        name: "empty".into(),
        size: 0,
        ids: Vec::new(),
    });
    three.disks.push(DiskIds {
        name: "data disk".into(),
        size: 4096,
        ids: vec![chunk_id(&key, b"data")],
    });
    let seed = |s: &PointSignature| {
        let mut b = Vec::new();
        s.to_writer(&mut b, &key).unwrap();
        strip_trailer(b)
    };
    let with_trailer = |b: &[u8]| [b, blake3::hash(b).as_bytes()].concat();
    let seeds = vec![
        ("one_disk".to_string(), seed(&one)),
        ("three_disks".to_string(), seed(&three)),
    ];
    random_seeds("point_signature_read", seeds, |name, b| {
        let want = if name == "one_disk" { &one } else { &three };
        PointSignature::from_reader(&with_trailer(b)[..], &key).is_ok_and(|s| &s == want)
    });
    run_corpus("point_signature_read", point_signature_read::check);
}

#[path = "../fuzz/checks/blob_decode.rs"]
mod blob_decode;
#[path = "../fuzz/checks/bundle_read.rs"]
mod bundle_read;
#[path = "../fuzz/checks/fixed_key.rs"]
mod fixed_key;
#[path = "../fuzz/checks/key_file.rs"]
mod key_file;
#[path = "../fuzz/checks/ship_state.rs"]
mod ship_state;

/// Writes `seeds` into `fuzz/corpus/<target>/` under UPDATE_CORPUS; otherwise reads the
/// committed ones back (they hold random nonces and ids, so each is checked by `is_valid`, not
/// byte for byte).
fn random_seeds(target: &str, seeds: Seeds, is_valid: impl Fn(&str, &[u8]) -> bool) {
    let dir = root().join("fuzz/corpus").join(target);
    for (name, bytes) in seeds {
        let path = dir.join(&name);
        if std::env::var_os("UPDATE_CORPUS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: run with UPDATE_CORPUS=1", path.display()));
        assert!(
            is_valid(&name, &committed),
            "{} is not a valid seed",
            path.display()
        );
    }
}

fn strip_trailer(mut v: Vec<u8>) -> Vec<u8> {
    v.truncate(v.len() - 32);
    v
}

/// A base bundle of a tiny two-disk group and one incremental bundle, under the fixed key.
fn bundle_seeds() -> Seeds {
    use replicore::bundle::{SeedOptions, ShipOptions, seed, ship};
    use replicore::log::MarkerKind;
    let dir = tempfile::tempdir().unwrap();
    let key = fixed_key::key();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    let mut img = vec![0u8; 3 * 4096 + 100];
    img[..4096].fill(b'a');
    img[8192..8300].copy_from_slice(&[9; 108]);
    std::fs::write(&a, &img).unwrap();
    std::fs::write(&b, b"disk b").unwrap();
    let o = SeedOptions {
        chunk_size: 4096,
        ..SeedOptions::default()
    };
    let disks = [("a", a.as_path()), ("b", b.as_path())];
    let log = dir.path().join("l.rclog");
    let base = dir.path().join("base.rcb");
    let mut s = seed("vm", &disks, &key, &log, &base, &o, &mut |_, _| true).unwrap();
    s.log.record_write(0, 4000, b"across a chunk edge").unwrap();
    s.log.record_trim(1, 0, 3).unwrap();
    s.log.mark(MarkerKind::App, "vss").unwrap();
    s.log.rotate(dir.path().join("sealed.rclog")).unwrap();
    let shipped = ship(
        dir.path().join("sealed.rclog"),
        &key,
        &mut s.state,
        dir.path(),
        &ShipOptions::default(),
        &mut |_, _| true,
    )
    .unwrap();
    vec![
        ("base".into(), strip_trailer(std::fs::read(&base).unwrap())),
        (
            "incremental".into(),
            strip_trailer(std::fs::read(&shipped[0].path).unwrap()),
        ),
    ]
}

#[test]
fn bundle_blob_key_and_state_seed_corpora_are_valid() {
    use replicore::bundle::{Bundle, ShipState};
    use replicore::crypto::{KdfParams, KeyFile, Secret};
    let key = fixed_key::key();
    let with_trailer = |b: &[u8]| {
        let mut v = b.to_vec();
        v.extend_from_slice(blake3::hash(b).as_bytes());
        v
    };
    random_seeds("bundle_read", bundle_seeds(), |_, b| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.rcb");
        std::fs::write(&p, with_trailer(b)).unwrap();
        Bundle::open(&p)
            .and_then(|x| x.verify_with_key(&key))
            .is_ok()
    });

    let compressible = b"guest data ".repeat(500);
    let mut x = 5u64;
    let random: Vec<u8> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let blob_seeds = [
        ("zstd", &compressible[..]),
        ("raw", &random[..]),
        ("empty", &[][..]),
    ]
    .iter()
    .map(|(n, p)| {
        let e = replicore::blob::encode(&key, p, 1).unwrap();
        let mut v = e.id.0.to_vec();
        v.extend_from_slice(&e.bytes);
        (n.to_string(), v)
    })
    .collect();
    random_seeds("blob_decode", blob_seeds, |_, b| {
        let id = replicore::BlobId(b[..32].try_into().unwrap());
        replicore::blob::decode(&key, &id, &b[32..]).is_ok()
    });

    let cheap = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let (pw, _) = KeyFile::create_with(Secret::Passphrase(b"fuzz"), cheap).unwrap();
    let key_seeds = vec![
        (
            "raw_key".into(),
            strip_trailer(fixed_key::KEY_FILE.to_vec()),
        ),
        ("passphrase".into(), strip_trailer(pw.to_bytes())),
    ];
    random_seeds("key_file", key_seeds, |name, b| {
        let f = KeyFile::from_bytes(&with_trailer(b)).unwrap();
        match name {
            "raw_key" => f.unlock(Secret::Key(&fixed_key::master())).is_ok(),
            _ => f.unlock(Secret::Passphrase(b"fuzz")).is_ok(),
        }
    });

    let state = ShipState {
        group: "vm-01".into(),
        key_id: key.id(),
        epoch: [1; 16],
        next_generation: 3,
        next_seq: 12,
        head: replicore::PointId([2; 32]),
        chunk_size: 1 << 20,
        head_time_ns: 1_800_000_000_000_000_000,
    };
    let state_seeds = vec![("state".into(), strip_trailer(state.to_bytes().unwrap()))];
    random_seeds("ship_state", state_seeds, |_, b| {
        ShipState::from_bytes(&with_trailer(b)).is_ok()
    });
}

#[path = "../fuzz/checks/apply_state.rs"]
mod apply_state;
#[path = "../fuzz/checks/protection_state.rs"]
mod protection_state;

/// Seeds of the site-state targets: an apply state (at rest, and mid-apply) and a protection
/// state of several kinds (the committed seeds are checked to parse).
#[test]
fn make_site_state_seeds() {
    use replicore::bundle::{ApplyState, ProtectionRecord};
    use replicore::policy::{FailoverKind, ProtectionState};
    let with_trailer = |b: &[u8]| [b, blake3::hash(b).as_bytes()].concat();
    let mut a = ApplyState {
        group: "vm-01".into(),
        key_id: replicore::crypto::KeyId([5; 16]),
        head: replicore::PointId([2; 32]),
        next_seq: 4,
        applying: None,
    };
    let mut seeds = vec![("rest".to_string(), strip_trailer(a.to_bytes().unwrap()))];
    a.applying = Some(replicore::PointId([3; 32]));
    seeds.push(("applying".into(), strip_trailer(a.to_bytes().unwrap())));
    random_seeds("apply_state", seeds, |_, b| {
        ApplyState::from_bytes(&with_trailer(b)).is_ok()
    });
    let seeds = [
        ProtectionState::Protected,
        ProtectionState::FailedOver(FailoverKind::Unplanned),
        ProtectionState::Reprotecting,
    ]
    .into_iter()
    .map(|state| {
        let r = ProtectionRecord {
            group: "vm-01".into(),
            state,
            since: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            last_error: (state == ProtectionState::Protected).then_some((
                replicore::ErrorKind::Io,
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_060),
            )),
        };
        (
            format!("{state}").replace([' ', '(', ')'], "-"),
            strip_trailer(r.to_bytes().unwrap()),
        )
    })
    .collect();
    random_seeds("protection_state", seeds, |_, b| {
        ProtectionRecord::from_bytes(&with_trailer(b)).is_ok()
    });
}

#[test]
fn site_state_corpora_and_regressions() {
    run_corpus("apply_state", apply_state::check);
    run_corpus("protection_state", protection_state::check);
}

#[test]
fn bundle_blob_key_and_state_corpora_and_regressions() {
    run_corpus("bundle_read", bundle_read::check);
    run_corpus("blob_decode", blob_decode::check);
    run_corpus("key_file", key_file::check);
    run_corpus("ship_state", ship_state::check);
}

#[path = "../fuzz/checks/vault_files.rs"]
mod vault_files;
#[path = "../fuzz/checks/vault_ingest.rs"]
mod vault_ingest;

/// A vault holding the bundle seeds' base and incremental: its files are the `vault_files`
/// seeds; the incremental, onto the committed base, is the `vault_ingest` seed.
#[test]
fn vault_seed_corpora_are_valid() {
    use replicore::vault::{Vault, fuzzing};
    let with_trailer = |b: &[u8]| {
        let mut v = b.to_vec();
        v.extend_from_slice(blake3::hash(b).as_bytes());
        v
    };
    let seeds = bundle_seeds();
    let base_path = root().join("fuzz/checks/vault_base.rcb");
    if std::env::var_os("UPDATE_CORPUS").is_some() {
        std::fs::write(&base_path, with_trailer(&seeds[0].1)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::create(dir.path().join("v")).unwrap();
    v.pin_key("pinned", replicore::crypto::VerifyingKey([7; 32]), false)
        .unwrap();
    for (name, b) in &seeds {
        let p = dir.path().join(name);
        std::fs::write(&p, with_trailer(b)).unwrap();
        v.ingest(&p, &mut |_, _| true).unwrap();
    }
    let mut files: Seeds = Vec::new();
    let mut stack = vec![dir.path().join("v")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let bytes = || std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            match p.extension().and_then(|e| e.to_str()) {
                _ if p.is_dir() => stack.push(p.clone()),
                Some("rcidx") => files.push((
                    format!("index-{}", &name[..8]),
                    [&[0][..], &bytes()].concat(),
                )),
                Some("rcpt") => files.push((
                    format!("point-{}", &name[..12]),
                    [&[1][..], &strip_trailer(bytes())].concat(),
                )),
                Some("rchead") => files.push(("head".into(), [&[2][..], &bytes()].concat())),
                Some("rctrust") => files.push(("trust".into(), [&[3][..], &bytes()].concat())),
                _ => {}
            }
        }
    }
    // A segment of each group's point files.
    let mut by_group: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for g in v.groups().unwrap() {
        for p in std::fs::read_dir(v.points_dir(&g)).unwrap() {
            let p = p.unwrap().path();
            if p.extension().is_some_and(|e| e == "rcpt") {
                by_group.entry(v.points_dir(&g)).or_default().push(p);
            }
        }
    }
    for mut paths in by_group.into_values() {
        paths.sort();
        let whole: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let seg = fuzzing::segment_of(&whole).unwrap();
        files.push(("segment".into(), [&[5][..], &seg].concat()));
    }
    // A merged point file: the base pruned into the incremental.
    let far = std::time::SystemTime::now() + std::time::Duration::from_secs(1 << 30);
    let policy = replicore::policy::RetentionPolicy {
        window_hours: 1,
        ..Default::default()
    };
    let pruned = v.prune(&policy, far).unwrap();
    assert_eq!(pruned.pruned(), 1, "{pruned:?}");
    for g in v.groups().unwrap() {
        for p in std::fs::read_dir(v.points_dir(&g)).unwrap() {
            let bytes = std::fs::read(p.unwrap().path()).unwrap();
            assert_eq!(
                bytes[16..24],
                2u64.to_le_bytes(),
                "the one point left holds both records"
            );
            files.push((
                "pointmerged".into(),
                [&[1][..], &strip_trailer(bytes)].concat(),
            ));
        }
    }
    // The sorted blob index GC writes.
    v.gc(&mut |_, _| true).unwrap();
    let sorted = std::fs::read(dir.path().join("v/packs/blobs.rcmidx")).unwrap();
    files.push(("sorted".into(), [&[4][..], &sorted].concat()));
    files.sort();
    // Names by kind and sequence, not by random pack ids: a regeneration replaces them.
    let mut named: Seeds = Vec::new();
    for (i, (n, b)) in files.into_iter().enumerate() {
        let kind = n.split('-').next().unwrap();
        named.push((format!("{kind}-{i}"), b));
    }
    random_seeds("vault_files", named, |_, b| match b[0] {
        0 => fuzzing::pack_index(&b[1..]).is_ok(),
        1 => fuzzing::point_file(&with_trailer(&b[1..])).is_ok(),
        3 => fuzzing::trust(&b[1..]).is_ok(),
        4 => fuzzing::sorted_index(&b[1..]).is_ok(),
        5 => fuzzing::point_segment(&b[1..]).is_ok(),
        _ => fuzzing::head(&b[1..]).is_ok(),
    });
    let base = std::fs::read(&base_path).unwrap();
    random_seeds("vault_ingest", vec![seeds[1].clone()], |_, b| {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::create(dir.path().join("v")).unwrap();
        let (bp, ip) = (dir.path().join("b.rcb"), dir.path().join("i.rcb"));
        std::fs::write(&bp, &base).unwrap();
        std::fs::write(&ip, with_trailer(b)).unwrap();
        v.ingest(&bp, &mut |_, _| true).is_ok()
            && v.ingest(&ip, &mut |_, _| true).is_ok_and(|i| i.added)
    });
}

#[test]
fn vault_corpora_and_regressions() {
    run_corpus("vault_files", vault_files::check);
    run_corpus("vault_ingest", vault_ingest::check);
}
