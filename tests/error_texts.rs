//! Error texts, as C hosts read them (`replicore_last_error_message`) and operators see them on
//! the command line.
//!
//! Protects: no message shows Rust debug formatting (`AtOrBefore(SystemTime { tv_sec: .. })`,
//! `Id(PointId(..))`, `KdfParams { .. }`, a byte array as `[52, 43, ..]`, `Some(..)`, paths
//! between quotes); times are RFC 3339 and ids hex; the numbers of size, length and limit
//! messages carry their unit. The errors are provoked through the public API: wrong arguments,
//! missing and damaged files, selectors by time and by id, a locked log, a wrong key.

mod common;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use replicore::bundle::Bundle;
use replicore::crypto::{KdfParams, KeyFile, MasterKey, Secret, VerifyingKey};
use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, LogReader, MarkerKind, ResyncThreshold, SyncPolicy,
};
use replicore::policy::{
    FailoverKind, ProtectionState, ReplicationFrequency, ReplicationPolicy, ResyncWindow,
    RetentionPolicy,
};
use replicore::resync::{Delta, Signature, resync};
use replicore::vault::{Selector, Vault};
use replicore::{Error, ErrorKind, ExtentMap, PointId, Source};

/// What Rust's `{:?}` prints and no message may: `Name(Inner(`, struct braces, options,
/// paths, type names, a byte array.
fn debug_syntax(msg: &str) -> Option<&'static str> {
    const FORBIDDEN: [&str; 14] = [
        "{ ",
        " }",
        "Some(",
        "None",
        "::",
        "tv_sec",
        "SystemTime",
        "PointId(",
        "BlobId(",
        "KdfParams",
        "EveryBytes",
        "AtOrBefore",
        "FailedOver(",
        "\"/",
    ];
    if let Some(f) = FORBIDDEN.iter().find(|f| msg.contains(**f)) {
        return Some(f);
    }
    // `Word(Word(`: a tuple variant around another.
    let b = msg.as_bytes();
    let word = |i: usize| b[i].is_ascii_alphanumeric() || b[i] == b'_';
    for (i, _) in msg.match_indices('(') {
        let mut j = i + 1;
        while j < b.len() && word(j) {
            j += 1;
        }
        if j > i + 1 && j < b.len() && b[j] == b'(' && i > 0 && word(i - 1) {
            return Some("Name(Name(");
        }
    }
    // `[12, 34`: a byte array.
    for (i, _) in msg.match_indices('[') {
        let rest = &msg[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if digits > 0 && rest[digits..].starts_with(", ") {
            return Some("[byte, byte");
        }
    }
    None
}

/// The message of `r`'s error, after checking its kind and that it has no debug syntax.
#[track_caller]
fn message<T: std::fmt::Debug>(r: replicore::Result<T>, kind: ErrorKind) -> String {
    let e: Error = r.expect_err("the call must fail");
    let msg = e.to_string();
    assert_eq!(e.kind(), kind, "{msg}");
    if let Some(f) = debug_syntax(&msg) {
        panic!("Rust debug syntax ({f}) in: {msg}");
    }
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

/// `msg` holds each of `parts`.
#[track_caller]
fn holds(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{p}` missing in: {msg}");
    }
}

#[test]
fn the_checker_catches_debug_syntax() {
    for bad in [
        "no point at or before AtOrBefore(SystemTime { tv_sec: 0, tv_nsec: 0 })",
        "point Id(PointId(abab..)) not found",
        "wrong magic [52, 43, 4c]",
        "Some(3) is not allowed",
        "Wrap(Inner(1))",
        "opening \"/tmp/x\"",
    ] {
        assert!(debug_syntax(bad).is_some(), "{bad}");
    }
    for good in [
        "a point of group `vm` at or before 1970-01-01T00:00:00Z not found",
        "failed over (test) to committed",
        "disk size is 70368744177665 bytes, beyond the limit of 70368744177664 bytes (64 TiB)",
        "invalid argument `disks[].name`: ...",
    ] {
        assert_eq!(debug_syntax(good), None, "{good}");
    }
}

#[test]
fn extent_maps_name_sizes_in_bytes() {
    let msg = message(
        ExtentMap::<Source>::new((64 << 40) + 1),
        ErrorKind::LimitExceeded,
    );
    holds(
        &msg,
        &[
            "70368744177665 bytes",
            "limit of 70368744177664 bytes (64 TiB)",
        ],
    );
    let mut m = ExtentMap::new(4096).unwrap();
    let msg = message(
        m.insert(4000, 200, Source::Zero),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &["`len`", "200 bytes at offset 4000", "4096-byte disk"],
    );
}

fn disks() -> Vec<DiskSpec> {
    vec![DiskSpec::new("os", 1 << 20), DiskSpec::new("data", 1 << 16)]
}

#[test]
fn change_log_arguments_are_named_with_units() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.rclog");
    let create = |c: &LogConfig| ChangeLog::create(&path, c).map(|_| ());

    let msg = message(
        create(&LogConfig::new("", disks())),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["`group`", "not 0 bytes"]);
    let msg = message(
        create(&LogConfig::new("vm", vec![])),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["`disks`", "not 0 disks"]);
    let msg = message(
        create(&LogConfig::new(
            "vm",
            vec![DiskSpec::new("a", 1), DiskSpec::new("a", 1)],
        )),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["`a` appears twice"]);
    let msg = message(
        create(&LogConfig::new("vm", vec![DiskSpec::new("a", u64::MAX)])),
        ErrorKind::LimitExceeded,
    );
    holds(&msg, &["18446744073709551615 bytes", "(64 TiB)"]);
    let mut c = LogConfig::new("vm", disks());
    c.sync = SyncPolicy::EveryBytes(0);
    let msg = message(create(&c), ErrorKind::InvalidArgument);
    holds(&msg, &["`sync policy`", "not 0 bytes"]);
    let mut c = LogConfig::new("vm", disks());
    c.resync_threshold = ResyncThreshold::Percent(2000);
    let msg = message(create(&c), ErrorKind::InvalidArgument);
    holds(&msg, &["`resync threshold`", "2000%", "1% to 1000%"]);

    let mut log = ChangeLog::create(&path, &LogConfig::new("vm", disks())).unwrap();
    let msg = message(log.record_write(2, 0, b"x"), ErrorKind::InvalidArgument);
    holds(&msg, &["`disk`", "index 2", "(2 disks)"]);
    let msg = message(
        log.record_write(1, 65530, &[1; 10]),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &["`offset`", "10 bytes at offset 65530", "(65536 bytes)"],
    );
    let msg = message(
        log.set_sync_policy(SyncPolicy::EveryBytes(0)),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["`sync policy`"]);
    let msg = message(
        log.mark(MarkerKind::Crash, &"x".repeat(2000)),
        ErrorKind::LimitExceeded,
    );
    holds(&msg, &["label is 2000 bytes", "limit of 1024 bytes"]);
    // Times: RFC 3339, never a SystemTime.
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    log.mark_at(MarkerKind::Crash, "", at(1_700_000_000))
        .unwrap();
    let msg = message(
        log.mark_at(MarkerKind::Crash, "", at(1_600_000_000)),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &["`time`", "2020-09-13T12:26:40Z", "2023-11-14T22:13:20Z"],
    );
    let msg = message(
        log.mark_at(MarkerKind::Crash, "", UNIX_EPOCH - Duration::from_secs(1)),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["before 1970"]);

    // A second handle: Locked, saying who holds it and what to do.
    let msg = message(
        ChangeLog::open(&path, None, SyncPolicy::Manual, ResyncThreshold::default()),
        ErrorKind::Locked,
    );
    holds(
        &msg,
        &[&format!("process {}", std::process::id()), "close it"],
    );
}

#[test]
fn damaged_and_missing_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("none.rclog");
    let msg = message(LogReader::open(&missing), ErrorKind::NotFound);
    holds(&msg, &["change log", "none.rclog"]);

    let junk = tmp.path().join("junk.rclog");
    std::fs::write(&junk, [0x52u8; 200]).unwrap();
    let msg = message(LogReader::open(&junk), ErrorKind::Corrupt);
    // The magic in hex, not as a Rust byte array.
    holds(&msg, &["5252525252525252", "junk.rclog"]);

    let path = tmp.path().join("a.rclog");
    drop(ChangeLog::create(&path, &LogConfig::new("vm", disks())).unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let cut = tmp.path().join("cut.rclog");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let msg = message(LogReader::open(&cut), ErrorKind::Corrupt);
    holds(&msg, &["bytes"]);
}

#[test]
fn keys_report_lengths_and_parameters_readably() {
    let msg = message(MasterKey::from_slice(&[0; 5]), ErrorKind::InvalidArgument);
    holds(&msg, &["32 bytes", "not 5 bytes"]);
    let weak = KdfParams {
        memory_kib: 4,
        iterations: 0,
        parallelism: 1,
    };
    let msg = message(
        KeyFile::create_with(Secret::Passphrase(b"pw"), weak).map(|_| ()),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["4 KiB of memory", "0 iterations", "1 lanes"]);
    let msg = message(
        KeyFile::from_bytes(b"not a key file at all").map(|_| ()),
        ErrorKind::Corrupt,
    );
    assert!(msg.contains("key file"), "{msg}");
    let (file, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([1; 32]))).unwrap();
    let msg = message(
        file.unlock(Secret::Key(&MasterKey::from_bytes([2; 32])))
            .map(|_| ()),
        ErrorKind::Authentication,
    );
    holds(&msg, &["wrong key or passphrase"]);
    let msg = message(VerifyingKey::from_hex("zz"), ErrorKind::InvalidArgument);
    holds(&msg, &["64 hex digits"]);
}

#[test]
fn policies_name_fields_states_and_units() {
    let msg = message(
        ReplicationFrequency::from_secs(60),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &["`frequency`", "60 seconds", "30, 300 or 900 seconds"],
    );
    let p = RetentionPolicy {
        window_hours: 0,
        ..RetentionPolicy::default()
    };
    let msg = message(p.validate(), ErrorKind::InvalidArgument);
    holds(&msg, &["`window_hours`", "0 hours", "1 to 72 hours"]);
    let p = RetentionPolicy {
        keep_last: 0,
        ..RetentionPolicy::default()
    };
    holds(
        &message(p.validate(), ErrorKind::InvalidArgument),
        &["`keep_last`", "0 points"],
    );
    let p = ReplicationPolicy {
        app_consistent_every_hours: Some(20),
        ..ReplicationPolicy::default()
    };
    holds(
        &message(p.validate(), ErrorKind::InvalidArgument),
        &["`app_consistent_every_hours`", "20 hours"],
    );
    let w = ResyncWindow {
        office_start_minute: 600,
        office_end_minute: 500,
        ..ResyncWindow::default()
    };
    holds(
        &message(w.validate(), ErrorKind::InvalidArgument),
        &["`office_end_minute`", "minute 600 to minute 500"],
    );
    let w = ResyncWindow {
        utc_offset_minutes: 5000,
        ..ResyncWindow::default()
    };
    holds(
        &message(w.validate(), ErrorKind::InvalidArgument),
        &["`utc_offset_minutes`", "5000 minutes"],
    );
    let msg = message(
        ProtectionState::FailedOver(FailoverKind::Test).move_to(ProtectionState::Committed),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["from failed over (test) to committed"]);
}

#[test]
fn resync_names_chunk_sizes_in_bytes_and_missing_images() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    std::fs::write(&img, noise(100_000, 1)).unwrap();
    let msg = message(
        Signature::compute(&img, 3000, &mut ok),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &[
            "`chunk_size`",
            "3000 bytes",
            "4096 bytes (4 KiB)",
            "8388608 bytes (8 MiB)",
        ],
    );
    let msg = message(
        resync(&img, tmp.path().join("b.img"), 1 << 30, &mut ok),
        ErrorKind::InvalidArgument,
    );
    holds(&msg, &["1073741824 bytes (1 GiB)"]);
    let msg = message(
        Signature::compute(tmp.path().join("none.img"), 65536, &mut ok),
        ErrorKind::NotFound,
    );
    holds(&msg, &["image", "none.img"]);

    // A delta for a target that is not the image its signature was taken of.
    let sig = Signature::compute(&img, 65536, &mut ok).unwrap();
    let src = tmp.path().join("src.img");
    std::fs::write(&src, noise(150_000, 2)).unwrap();
    let delta = tmp.path().join("d.rcdelta");
    let mut out = replicore::OutputFile::create(&delta, false).unwrap();
    Delta::compute(&src, &sig, &mut out, &mut ok).unwrap();
    out.commit().unwrap();
    let other = tmp.path().join("other.img");
    std::fs::write(&other, noise(7, 3)).unwrap();
    let msg = message(
        Delta::apply(&delta, &other, &mut ok),
        ErrorKind::InvalidArgument,
    );
    holds(
        &msg,
        &["`target`", "7 bytes", "100000-byte", "150000 bytes"],
    );
    // A keyed signature's mode, in words rather than a Rust function name.
    let k = key(1);
    let keyed = Signature::compute_keyed(&img, 65536, &k, &mut ok).unwrap();
    let mut sink = Vec::new();
    let msg = message(
        Delta::compute_in_memory(&noise(10, 1), &keyed, &mut sink, &mut ok),
        ErrorKind::InvalidArgument,
    );
    assert!(!msg.contains("compute_"), "{msg}");
    let msg = message(
        Delta::compute_sealed_in_memory(&noise(10, 1), &sig, &k, &mut sink, &mut ok),
        ErrorKind::InvalidArgument,
    );
    assert!(!msg.contains("compute_"), "{msg}");
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

#[test]
fn vaults_bundles_selectors_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = seeded(tmp.path(), key(7));
    g.write(0, 4096, &noise(8192, 9));
    g.mark(MarkerKind::App, "app", 60);
    let incs = g.rotate_and_ship(1);

    // Bundles: damaged, truncated, the wrong kind of file.
    let bad = tmp.path().join("bad.rcb");
    std::fs::copy(&g.base, &bad).unwrap();
    let len = std::fs::metadata(&bad).unwrap().len() as usize;
    flip(&bad, len / 2);
    let b = Bundle::open(&bad).and_then(|b| b.verify());
    holds(&message(b, ErrorKind::Corrupt), &["bad.rcb"]);
    let cut = tmp.path().join("cut.rcb");
    std::fs::write(&cut, &std::fs::read(&g.base).unwrap()[..40]).unwrap();
    holds(
        &message(Bundle::open(&cut).map(|_| ()), ErrorKind::Corrupt),
        &["40 bytes"],
    );
    holds(
        &message(
            Bundle::open(&g.log_path).map(|_| ()),
            ErrorKind::InvalidArgument,
        ),
        &["vm.rclog: this is a replicore change log, not a bundle"],
    );

    // The vault: missing, selectors by time and by id, a wrong key.
    let msg = message(
        Vault::open(tmp.path().join("no-vault")).map(|_| ()),
        ErrorKind::NotFound,
    );
    holds(&msg, &["no-vault"]);
    let v = Vault::create(tmp.path().join("vault")).unwrap();
    let msg = message(v.ingest(&incs[0], &mut ok), ErrorKind::ChainBroken);
    holds(&msg, &["base bundle first"]);
    v.ingest(&g.base, &mut ok).unwrap();
    v.ingest(&incs[0], &mut ok).unwrap();
    let msg = message(
        v.select("vm-01", Selector::AtOrBefore(UNIX_EPOCH)),
        ErrorKind::NotFound,
    );
    holds(
        &msg,
        &["group `vm-01`", "at or before 1970-01-01T00:00:00Z"],
    );
    let id = PointId([0xab; 32]);
    let msg = message(v.select("vm-01", Selector::Id(id)), ErrorKind::NotFound);
    holds(&msg, &[&id.to_hex()]);
    let msg = message(v.select("nope", Selector::Latest), ErrorKind::NotFound);
    holds(&msg, &["group `nope`"]);
    let latest = v.select("vm-01", Selector::Latest).unwrap();
    let msg = message(
        v.materialize(
            "vm-01",
            latest.id,
            "os",
            &key(8),
            tmp.path().join("os.img"),
            &mut ok,
        ),
        ErrorKind::Authentication,
    );
    holds(&msg, &["key"]);
    let msg = message(
        v.materialize(
            "vm-01",
            latest.id,
            "swap",
            &g.key,
            tmp.path().join("swap.img"),
            &mut ok,
        ),
        ErrorKind::NotFound,
    );
    holds(&msg, &["disk `swap`"]);
    let msg = message(
        v.failover(
            "vm-01",
            Selector::Latest,
            &key(8),
            tmp.path().join("fo"),
            &mut ok,
        ),
        ErrorKind::Authentication,
    );
    holds(&msg, &["key"]);
    let msg = message(v.expect_seq("vm-01", 1000), ErrorKind::ChainBroken);
    holds(&msg, &["sequence", "1000"]);
    let msg = message(
        Vault::create(tmp.path().join("vault")).map(|_| ()),
        ErrorKind::AlreadyExists,
    );
    holds(&msg, &["vault"]);
}

#[test]
fn renamed_arguments_keep_their_message() {
    let e = Error::invalid_argument("chunk_size", "3000 bytes is not a power of two")
        .renaming_argument("chunk_size", "--chunk-size");
    assert_eq!(
        e.to_string(),
        "invalid argument `--chunk-size`: 3000 bytes is not a power of two"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}
