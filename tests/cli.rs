//! The `replicore` binary through whole scenarios, and bad input.
//!
//! Protects: every verb works as the README's walkthrough uses it (keygen, seed, log capture
//! from a qemu-img style extents list with a trim, marks, inspect, rotate, ship, vault init,
//! ingest, points --json, prune dry run and real, gc, verify, failover by every selector form,
//! resync signature/delta/apply and run, key rotate, demo), with the images failed over equal
//! to the disks as they were; bad input gives the documented exit code and a one-line error;
//! no verb replaces an existing output without `--force` (exit 5, one line naming the file),
//! and every output is created 0600.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const PASS: &str = "correct horse battery staple";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` (no terminal, REPLICORE_PASSPHRASE from `pass`).
fn rc(args: &[&str], pass: Option<&str>) -> Run {
    rc_in(args, pass, None)
}

fn rc_in(args: &[&str], pass: Option<&str>, stdin: Option<&str>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_replicore"));
    c.args(args)
        .env_remove("REPLICORE_PASSPHRASE")
        .env_remove("REPLICORE_NEW_PASSPHRASE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = pass {
        c.env("REPLICORE_PASSPHRASE", p);
    }
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs and expects success.
fn ok(args: &[&str], pass: Option<&str>) -> String {
    let r = rc(args, pass);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

/// Runs and expects exit `code` with a one-line error naming `needle`.
fn fails(args: &[&str], pass: Option<&str>, code: i32, needle: &str) {
    let r = rc(args, pass);
    assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.len() == 1 || code == 2,
        "{args:?}: not one line: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Primary {
    dir: PathBuf,
    key: PathBuf,
    os: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

/// A keyed, seeded two-disk group in `dir`.
fn primary(dir: &Path) -> Primary {
    let p = Primary {
        dir: dir.to_path_buf(),
        key: dir.join("g.rckey"),
        os: dir.join("os.img"),
        data: dir.join("data.img"),
        log: dir.join("vm.rclog"),
    };
    let mut os = common::noise(3 << 20, 1);
    os[1 << 20..2 << 20].fill(0);
    std::fs::write(&p.os, &os).unwrap();
    std::fs::write(&p.data, b"data disk ".repeat(100_000)).unwrap();
    let out = ok(&["keygen", "--out", s(&p.key)], Some(PASS));
    assert!(out.contains("key "), "{out}");
    let (disks, base) = (seed_disks(&p), dir.join("base.rcb"));
    let out = ok(&seed_args(&p, &disks, &base), Some(PASS));
    assert_eq!(out.trim(), s(&base));
    assert!(dir.join("vm_1.rcship").exists());
    p
}

/// The `--disk` values of `p`'s seed.
fn seed_disks(p: &Primary) -> [String; 2] {
    [format!("os={}", s(&p.os)), format!("data={}", s(&p.data))]
}

/// The arguments of `p`'s seed into the base bundle `base`.
fn seed_args<'a>(p: &'a Primary, disks: &'a [String; 2], base: &'a Path) -> [&'a str; 15] {
    [
        "seed",
        "--key",
        s(&p.key),
        "--group",
        "vm 1",
        "--disk",
        &disks[0],
        "--disk",
        &disks[1],
        "--log",
        s(&p.log),
        "--out",
        s(base),
        "--chunk-size",
        "64K",
    ]
}

/// `log capture` of `disk` from `image` with the extents file `extents`.
fn capture(p: &Primary, disk: &str, image: &Path, extents: &Path) -> String {
    ok(
        &[
            "log",
            "capture",
            s(&p.log),
            "--disk",
            disk,
            "--image",
            s(image),
            "--extents",
            s(extents),
        ],
        None,
    )
}

fn patch(path: &Path, at: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, at).unwrap();
}

#[test]
fn the_whole_job_through_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = primary(tmp.path());
    let dir = &p.dir;
    let base_os = std::fs::read(&p.os).unwrap();
    let base_data = std::fs::read(&p.data).unwrap();
    // Point 1 (crash): the guest wrote 100 KiB of os at 5000 and trimmed 64 KiB of data.
    patch(&p.os, 5000, &[0xab; 100_000]);
    std::fs::write(
        dir.join("ext.json"),
        r#"[{"start": 5000, "length": 100000, "depth": 0, "data": true}]"#,
    )
    .unwrap();
    let out = capture(&p, "os", &p.os, &dir.join("ext.json"));
    assert!(out.contains("1 writes"), "{out}");
    patch(&p.data, 65536, &[0; 65536]);
    let r = rc_in(
        &[
            "log",
            "capture",
            s(&p.log),
            "--disk",
            "data",
            "--image",
            s(&p.data),
            "--extents",
            "-",
        ],
        None,
        Some(r#"[{"start": 65536, "length": 65536, "zero": true}]"#),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 trims"), "{}", r.stdout);
    ok(
        &[
            "log",
            "mark",
            s(&p.log),
            "--kind",
            "crash",
            "--label",
            "five",
            "--time",
            "2026-11-25T10:00:00Z",
        ],
        None,
    );
    let p1_os = std::fs::read(&p.os).unwrap();
    let p1_data = std::fs::read(&p.data).unwrap();
    // Point 2 (app), an hour later.
    patch(&p.data, 10, b"application consistent");
    std::fs::write(dir.join("ext2.json"), r#"[{"start": 10, "length": 22}]"#).unwrap();
    capture(&p, "data", &p.data, &dir.join("ext2.json"));
    ok(
        &[
            "log",
            "mark",
            s(&p.log),
            "--kind",
            "app",
            "--label",
            "vss",
            "--time",
            "2026-11-25T11:00:00+00:00",
        ],
        None,
    );
    let inspect: Value =
        serde_json::from_str(&ok(&["log", "inspect", s(&p.log), "--json"], None)).unwrap();
    assert_eq!(inspect["group"], "vm 1");
    assert_eq!(inspect["sealed"], false);
    assert_eq!(inspect["writes"], 2);
    assert_eq!(inspect["trims"], 1);
    assert_eq!(inspect["points"][1]["kind"], "app");
    assert_eq!(inspect["points"][0]["time"], "2026-11-25T10:00:00Z");
    assert_eq!(inspect["resync"]["needed"], false, "{inspect}");
    let sealed = dir.join("sealed-1.rclog");
    ok(
        &["log", "rotate", s(&p.log), "--sealed-out", s(&sealed)],
        None,
    );
    assert!(ok(&["log", "inspect", s(&sealed)], None).contains("sealed change log"));
    let out_dir = dir.join("out");
    let shipped = ok(&ship_args(&p.key, &sealed, &out_dir), Some(PASS));
    let bundles: Vec<&str> = shipped.lines().collect();
    assert_eq!(bundles.len(), 2, "{shipped}");

    // Recovery site.
    let vault = dir.join("vault");
    ok(&["vault", "init", s(&vault)], None);
    let base = dir.join("base.rcb");
    let mut ingest = vec!["vault", "ingest", s(&vault), s(&base)];
    ingest.extend(&bundles);
    let out = ok(&ingest, None);
    assert_eq!(out.matches(" ingested").count(), 3, "{out}");
    let points: Value =
        serde_json::from_str(&ok(&["vault", "points", s(&vault), "--json"], None)).unwrap();
    let pts = points.as_array().unwrap();
    assert_eq!(pts.len(), 3);
    assert_eq!(pts[1]["seq"], 1);
    assert_eq!(pts[1]["group"], "vm 1");
    assert_eq!(pts[1]["kind"], "crash");
    assert_eq!(pts[1]["label"], "five");
    assert_eq!(pts[1]["time"], "2026-11-25T10:00:00Z");
    assert_eq!(pts[2]["kind"], "app");
    assert_eq!(pts[0]["disks"][0]["name"], "os");
    assert_eq!(pts[0]["disks"][1]["size"], 1_000_000);
    let id1 = pts[1]["id"].as_str().unwrap().to_string();
    assert_eq!(id1.len(), 64);

    // Failover by every selector form.
    let n = std::cell::Cell::new(0);
    let check = |point: &str, os: &[u8], data: &[u8]| {
        n.set(n.get() + 1);
        let fo = dir.join(format!("fo-{}", n.get()));
        let out = ok(
            &[
                "failover",
                s(&vault),
                "--group",
                "vm 1",
                "--point",
                point,
                "--key",
                s(&p.key),
                "--out-dir",
                s(&fo),
            ],
            Some(PASS),
        );
        assert_eq!(out.lines().count(), 2, "{out}");
        assert_eq!(std::fs::read(fo.join("os.img")).unwrap(), os, "{point}");
        assert_eq!(std::fs::read(fo.join("data.img")).unwrap(), data, "{point}");
    };
    let p2_os = std::fs::read(&p.os).unwrap();
    let p2_data = std::fs::read(&p.data).unwrap();
    check("latest", &p2_os, &p2_data);
    check("latest-app", &p2_os, &p2_data);
    check(&id1, &p1_os, &p1_data);
    check(&id1[..12], &p1_os, &p1_data);
    check("at:2026-11-25T10:30:00Z", &p1_os, &p1_data);
    let base_id = pts[0]["id"].as_str().unwrap();
    check(base_id, &base_os, &base_data);

    // Onto existing storage: both disks onto pre-created files (no --out-dir), one larger than
    // its disk (its tail kept); a target one byte short is refused (exit 2), nothing written.
    let (lun_os, lun_data) = (dir.join("lun-os"), dir.join("lun-data"));
    std::fs::write(&lun_os, vec![0x5Au8; p2_os.len() + 100]).unwrap();
    std::fs::write(&lun_data, vec![0x5Au8; p2_data.len()]).unwrap();
    let (t_os, t_data) = (
        format!("os={}", lun_os.display()),
        format!("data={}", lun_data.display()),
    );
    let onto = |t_os: &str| {
        [
            "failover",
            s(&vault),
            "--group",
            "vm 1",
            "--point",
            "latest",
            "--key",
            s(&p.key),
            "--target",
            t_os,
            "--target",
        ]
        .map(str::to_string)
    };
    let mut args = onto(&t_os).to_vec();
    args.push(t_data.clone());
    let out = ok(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(PASS),
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    let got = std::fs::read(&lun_os).unwrap();
    assert_eq!(&got[..p2_os.len()], &p2_os[..]);
    assert!(got[p2_os.len()..].iter().all(|&b| b == 0x5A));
    assert_eq!(std::fs::read(&lun_data).unwrap(), p2_data);
    let short = dir.join("lun-short");
    std::fs::write(&short, vec![0x5Au8; p2_os.len() - 1]).unwrap();
    let mut args = onto(&format!("os={}", short.display())).to_vec();
    args.push(t_data);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(PASS),
        2,
        "less than",
    );
    assert!(std::fs::read(&short).unwrap().iter().all(|&b| b == 0x5A));

    // Retention: a dry run, then the real prune, years on (window 24 h; the base is stamped
    // with the real time, so a fixed time just after the points would not stay past it): only
    // the newest point (also the newest app-consistent one) stays, and the base and point 1
    // are merged into it.
    let prune = |dry: bool| {
        let mut a = vec![
            "vault",
            "prune",
            s(&vault),
            "--window",
            "24",
            "--now",
            "2036-01-01T00:00:00Z",
            "--json",
        ];
        if dry {
            a.push("--dry-run");
        }
        serde_json::from_str::<Value>(&ok(&a, None)).unwrap()
    };
    let plan = prune(true);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["pruned"], 2);
    assert_eq!(plan["groups"][0]["points"][0]["rule"], "expired");
    assert_eq!(plan["groups"][0]["points"][2]["rule"], "newest");
    let pts_after_dry: Value =
        serde_json::from_str(&ok(&["vault", "points", s(&vault), "--json"], None)).unwrap();
    assert_eq!(pts_after_dry.as_array().unwrap().len(), 3);
    let done = prune(false);
    assert_eq!(done["pruned"], 2);
    assert!(ok(&["vault", "gc", s(&vault)], None).contains("packs"));
    let left: Value = serde_json::from_str(&ok(
        &["vault", "points", s(&vault), "--group", "vm 1", "--json"],
        None,
    ))
    .unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["merged"], 2);
    let v: Value = serde_json::from_str(&ok(
        &["vault", "verify", s(&vault), "--key", s(&p.key), "--json"],
        Some(PASS),
    ))
    .unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["blobs_decrypted"].as_u64().unwrap() > 0);
    check("latest", &p2_os, &p2_data);

    // Trust (issue 15): the verifying key pinned, the merged first point compacted into a
    // signed checkpoint, a head behind the shipped sequence refused, a lost head rebuilt.
    let shown: Value = serde_json::from_str(&ok(
        &["key", "show", "--key", s(&p.key), "--json"],
        Some(PASS),
    ))
    .unwrap();
    let vk = shown["verifying_key"].as_str().unwrap().to_string();
    assert_eq!(vk.len(), 64);
    assert_eq!(left[0]["verifying_key"], vk.as_str());
    ok(
        &[
            "vault",
            "pin-key",
            s(&vault),
            "--group",
            "vm 1",
            "--verifying-key",
            &vk,
        ],
        None,
    );
    fails(
        &[
            "vault",
            "pin-key",
            s(&vault),
            "--group",
            "vm 1",
            "--verifying-key",
            &"ab".repeat(32),
            "--replace",
        ],
        None,
        4,
        "signed by key",
    );
    assert!(
        ok(
            &[
                "vault",
                "compact",
                s(&vault),
                "--group",
                "vm 1",
                "--key",
                s(&p.key)
            ],
            Some(PASS)
        )
        .contains("checkpoint")
    );
    let compacted: Value = serde_json::from_str(&ok(
        &["vault", "points", s(&vault), "--group", "vm 1", "--json"],
        None,
    ))
    .unwrap();
    assert_eq!(compacted[0]["checkpoint"], true);
    let head_seq = compacted[0]["seq"].as_u64().unwrap();
    let ahead = (head_seq + 1).to_string();
    let exact = head_seq.to_string();
    ok(
        &[
            "vault",
            "verify",
            s(&vault),
            "--group",
            "vm 1",
            "--expect-seq",
            &exact,
        ],
        None,
    );
    fails(
        &[
            "vault",
            "verify",
            s(&vault),
            "--group",
            "vm 1",
            "--expect-seq",
            &ahead,
        ],
        None,
        5,
        "rolled back",
    );
    fails(
        &[
            "failover",
            s(&vault),
            "--group",
            "vm 1",
            "--point",
            "latest",
            "--key",
            s(&p.key),
            "--out-dir",
            s(&dir.join("fo-rollback")),
            "--expect-seq",
            &ahead,
        ],
        Some(PASS),
        5,
        "rolled back",
    );
    for h in std::fs::read_dir(vault.join("heads")).unwrap() {
        std::fs::remove_file(h.unwrap().path()).unwrap();
    }
    fails(&["vault", "verify", s(&vault)], None, 3, "no head");
    assert!(
        ok(
            &["vault", "rebuild-head", s(&vault), "--group", "vm 1"],
            None
        )
        .contains("head written")
    );
    ok(
        &["vault", "verify", s(&vault), "--key", s(&p.key)],
        Some(PASS),
    );
    check("latest", &p2_os, &p2_data);

    // Failback: the failed-over os disk changed on the recovery site; resync it back, by
    // signature + delta + apply, and by a local run.
    let fo_os = dir.join("fo-1/os.img");
    patch(&fo_os, 70_000, &[0x77; 200_000]);
    let sig = dir.join("os.rcsig");
    let delta = dir.join("os.rcdelta");
    let stale = std::fs::read(&p.os).unwrap();
    let out = ok(
        &[
            "resync",
            "signature",
            s(&p.os),
            "--out",
            s(&sig),
            "--chunk-size",
            "16K",
            "--key",
            s(&p.key),
        ],
        Some(PASS),
    );
    assert!(out.contains("sealed signature"), "{out}");
    // Neither --key nor --plain: a usage error, so that no plain file is written by accident.
    fails(
        &[
            "resync",
            "delta",
            s(&fo_os),
            "--signature",
            s(&sig),
            "--out",
            s(&delta),
        ],
        None,
        2,
        "--plain",
    );
    // A sealed signature read without its key.
    fails(
        &[
            "resync",
            "delta",
            s(&fo_os),
            "--signature",
            s(&sig),
            "--out",
            s(&delta),
            "--plain",
        ],
        None,
        2,
        "sealed",
    );
    ok(
        &[
            "resync",
            "delta",
            s(&fo_os),
            "--signature",
            s(&sig),
            "--out",
            s(&delta),
            "--key",
            s(&p.key),
        ],
        Some(PASS),
    );
    // Onto another image than the signature's: refused, nothing written.
    let other = dir.join("other.img");
    std::fs::write(&other, vec![0x33u8; stale.len()]).unwrap();
    fails(
        &["resync", "apply", s(&other), s(&delta), "--key", s(&p.key)],
        Some(PASS),
        2,
        "not the image the signature was taken of",
    );
    assert_eq!(std::fs::read(&other).unwrap(), vec![0x33u8; stale.len()]);
    ok(
        &["resync", "apply", s(&p.os), s(&delta), "--key", s(&p.key)],
        Some(PASS),
    );
    assert_eq!(
        std::fs::read(&p.os).unwrap(),
        std::fs::read(&fo_os).unwrap()
    );
    // The same, keyless, back to the stale copy.
    std::fs::write(&other, &stale).unwrap();
    let (psig, pdelta) = (dir.join("plain.rcsig"), dir.join("plain.rcdelta"));
    ok(
        &[
            "resync",
            "signature",
            s(&other),
            "--out",
            s(&psig),
            "--plain",
        ],
        None,
    );
    ok(
        &[
            "resync",
            "delta",
            s(&fo_os),
            "--signature",
            s(&psig),
            "--out",
            s(&pdelta),
            "--plain",
        ],
        None,
    );
    fails(
        &["resync", "apply", s(&other), s(&pdelta), "--key", s(&p.key)],
        Some(PASS),
        4,
        "plain",
    );
    ok(&["resync", "apply", s(&other), s(&pdelta), "--plain"], None);
    assert_eq!(
        std::fs::read(&other).unwrap(),
        std::fs::read(&fo_os).unwrap()
    );
    let copy = dir.join("copy.img");
    ok(&["resync", "run", s(&fo_os), s(&copy)], None);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&fo_os).unwrap()
    );

    // Key rotation: the new file opens with the new passphrase only; bundles stay readable.
    let new_key = dir.join("new.rckey");
    let r = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_replicore"));
        c.args([
            "key",
            "rotate",
            "--key",
            s(&p.key),
            "--out",
            s(&new_key),
            "--passphrase-env",
            "OLD_PW",
            "--new-passphrase-env",
            "NEW_PW",
        ])
        .env("OLD_PW", PASS)
        .env("NEW_PW", "a new one")
        .stdin(Stdio::null());
        c.output().unwrap()
    };
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let fo = dir.join("fo-new");
    ok(&failover_latest(&vault, &new_key, &fo), Some("a new one"));
    fails(
        &failover_latest(&vault, &new_key, &dir.join("fo-x")),
        Some(PASS),
        4,
        "passphrase",
    );
}

#[test]
fn bad_input_gives_the_documented_exit_code_and_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = primary(tmp.path());
    let dir = &p.dir;
    let vault = dir.join("vault");
    ok(&["vault", "init", s(&vault)], None);
    let base = dir.join("base.rcb");
    let bytes = std::fs::read(&base).unwrap();
    // Truncated and flipped bundles: corruption (3); nothing committed.
    let cut = dir.join("cut.rcb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails(&["vault", "ingest", s(&vault), s(&cut)], None, 3, "error:");
    let flipped = dir.join("flipped.rcb");
    let mut f = bytes.clone();
    f[bytes.len() / 3] ^= 0x40;
    std::fs::write(&flipped, &f).unwrap();
    fails(
        &["vault", "ingest", s(&vault), s(&flipped)],
        None,
        3,
        "error:",
    );
    assert_eq!(ok(&["vault", "points", s(&vault)], None), "");
    // Missing files: 6.
    fails(
        &["vault", "ingest", s(&vault), s(&dir.join("nope.rcb"))],
        None,
        6,
        "nope.rcb",
    );
    fails(
        &["vault", "points", s(&dir.join("no-vault"))],
        None,
        6,
        "no-vault",
    );
    fails(
        &["log", "inspect", s(&dir.join("none.rclog"))],
        None,
        6,
        "none.rclog",
    );
    // Wrong passphrase: 4. No passphrase and no terminal: 2.
    let sealed = dir.join("s.rclog");
    ok(&["log", "mark", s(&p.log), "--kind", "crash"], None);
    // A point before the last one: the flag is named as typed, the times in RFC 3339.
    fails(
        &[
            "log",
            "mark",
            s(&p.log),
            "--kind",
            "crash",
            "--time",
            "2000-01-01T00:00:00Z",
        ],
        None,
        2,
        "invalid argument `--time`: 2000-01-01T00:00:00Z is before",
    );
    ok(
        &["log", "rotate", s(&p.log), "--sealed-out", s(&sealed)],
        None,
    );
    let out_dir = dir.join("out");
    fails(
        &[
            "ship",
            "--key",
            s(&p.key),
            s(&sealed),
            "--out-dir",
            s(&out_dir),
        ],
        Some("wrong"),
        4,
        "passphrase",
    );
    fails(
        &[
            "ship",
            "--key",
            s(&p.key),
            s(&sealed),
            "--out-dir",
            s(&out_dir),
        ],
        None,
        2,
        "no passphrase",
    );
    fails(
        &[
            "ship",
            "--key",
            s(&p.key),
            s(&sealed),
            "--out-dir",
            s(&out_dir),
            "--passphrase-env",
            "UNSET_VAR_X",
        ],
        None,
        2,
        "UNSET_VAR_X",
    );
    // An incremental before its base: broken chain (5).
    let inc = ok(
        &[
            "ship",
            "--key",
            s(&p.key),
            s(&sealed),
            "--out-dir",
            s(&out_dir),
        ],
        Some(PASS),
    );
    fails(
        &["vault", "ingest", s(&vault), inc.trim()],
        None,
        5,
        "base bundle first",
    );
    ok(&["vault", "ingest", s(&vault), s(&base), inc.trim()], None);
    // Wrong key for failover: 4 (another key file, its own passphrase).
    let other = dir.join("other.rckey");
    ok(&["keygen", "--out", s(&other)], Some("other"));
    fails(
        &[
            "failover",
            s(&vault),
            "--group",
            "vm 1",
            "--point",
            "latest",
            "--key",
            s(&other),
            "--out-dir",
            s(&dir.join("fo")),
        ],
        Some("other"),
        4,
        "key",
    );
    // Bad arguments: 2.
    fails(
        &["vault", "prune", s(&vault), "--window", "0"],
        None,
        2,
        "invalid argument `--window`: 0 hours is out of range",
    );
    fails(
        &[
            "vault",
            "prune",
            s(&vault),
            "--window",
            "24",
            "--now",
            "yesterday",
        ],
        None,
        2,
        "RFC 3339",
    );
    fails(
        &[
            "failover",
            s(&vault),
            "--group",
            "vm 1",
            "--point",
            "zz",
            "--key",
            s(&p.key),
            "--out-dir",
            "x",
        ],
        Some(PASS),
        2,
        "--point",
    );
    fails(&["frobnicate"], None, 2, "frobnicate");
    fails(&["seed", "--key", s(&p.key)], None, 2, "required");
    fails(
        &[
            "resync",
            "signature",
            s(&p.os),
            "--out",
            s(&dir.join("x.sig")),
            "--chunk-size",
            "3K",
            "--plain",
        ],
        None,
        2,
        "invalid argument `--chunk-size`: 3072 bytes (3 KiB) is not a power of two",
    );
    fails(
        &[
            "log",
            "capture",
            s(&p.log),
            "--disk",
            "os",
            "--image",
            s(&p.os),
            "--extents",
            "-",
        ],
        None,
        2,
        "extents",
    );
    // A keygen onto an existing file: conflict (5).
    fails(&["keygen", "--out", s(&p.key)], Some(PASS), 5, "exists");
    // A flipped byte in a pack: verify says corruption (3).
    let pack = std::fs::read_dir(vault.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rcpack"))
        .unwrap();
    let mut b = std::fs::read(&pack).unwrap();
    b[200] ^= 1;
    std::fs::write(&pack, b).unwrap();
    fails(&["vault", "verify", s(&vault)], None, 3, "damaged");
    // Help and version succeed.
    assert!(ok(&["--help"], None).contains("Exit codes"));
    assert!(ok(&["--version"], None).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_demo_runs_the_whole_job_and_checks_it() {
    let out = ok(&["demo"], None);
    assert_eq!(out.matches("every byte checked").count(), 2, "{out}");
    assert!(out.contains("points kept"), "{out}");
}

/// The arguments of a ship of `sealed` into `out_dir`.
fn ship_args<'a>(key: &'a Path, sealed: &'a Path, out_dir: &'a Path) -> [&'a str; 6] {
    ["ship", "--key", s(key), s(sealed), "--out-dir", s(out_dir)]
}

/// The arguments of a failover of the latest point of group `vm 1`.
fn failover_latest<'a>(vault: &'a Path, key: &'a Path, out_dir: &'a Path) -> [&'a str; 10] {
    [
        "failover",
        s(vault),
        "--group",
        "vm 1",
        "--point",
        "latest",
        "--key",
        s(key),
        "--out-dir",
        s(out_dir),
    ]
}

/// Asserts `p` is a regular file of mode 0600.
fn private_file(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    assert!(m.is_file(), "{}", p.display());
    assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", p.display());
}

/// Runs `args` onto an existing output: exit 5 with one line naming `output` and `--force`,
/// the output untouched; then with `--force`: success, and `output` replaced by a 0600 file.
fn refuses_then_forced(args: &[&str], pass: Option<&str>, output: &Path) -> String {
    let before = std::fs::read(output).unwrap();
    let name = output.file_name().unwrap().to_str().unwrap();
    let r = rc(args, pass);
    assert_eq!(r.code, 5, "{args:?}: {}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(name) && r.stderr.contains("--force replaces it"),
        "{args:?}: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(output).unwrap(), before, "{args:?} wrote");
    let forced: Vec<&str> = args.iter().copied().chain(["--force"]).collect();
    let out = ok(&forced, pass);
    assert_ne!(std::fs::read(output).unwrap(), before, "{args:?} --force");
    private_file(output);
    out
}

#[test]
fn every_output_verb_refuses_an_existing_output_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = primary(dir);
    private_file(&p.key);
    private_file(&p.log);

    // keygen and key rotate.
    let k2 = dir.join("k2.rckey");
    std::fs::write(&k2, b"not a key").unwrap();
    refuses_then_forced(&["keygen", "--out", s(&k2)], Some(PASS), &k2);
    std::fs::write(&k2, b"not a key").unwrap();
    let rotate = [
        "key",
        "rotate",
        "--key",
        s(&p.key),
        "--out",
        s(&k2),
        "--new-passphrase-env",
        "REPLICORE_PASSPHRASE",
    ];
    refuses_then_forced(&rotate, Some(PASS), &k2);

    // seed: the ship state, log and bundle exist (a new tracking session with --force).
    let base = dir.join("base.rcb");
    let disks = seed_disks(&p);
    let seed = seed_args(&p, &disks, &base);
    let state = dir.join("vm_1.rcship");
    refuses_then_forced(&seed, Some(PASS), &state);
    private_file(&p.log);
    private_file(&base);

    // log rotate.
    ok(&["log", "mark", s(&p.log), "--kind", "crash"], None);
    let sealed = dir.join("sealed.rclog");
    std::fs::write(&sealed, b"not a log").unwrap();
    let rotate = ["log", "rotate", s(&p.log), "--sealed-out", s(&sealed)];
    refuses_then_forced(&rotate, None, &sealed);
    assert!(ok(&["log", "inspect", s(&sealed)], None).contains("sealed change log"));

    // ship again after a crash before the state was saved: the same bundle names.
    let saved = std::fs::read(&state).unwrap();
    let out_dir = dir.join("bundles");
    let ship = ship_args(&p.key, &sealed, &out_dir);
    let shipped = ok(&ship, Some(PASS));
    let bundle = PathBuf::from(shipped.lines().next().unwrap());
    private_file(&bundle);
    std::fs::write(&state, &saved).unwrap();
    std::fs::write(&bundle, b"not a bundle").unwrap();
    refuses_then_forced(&ship, Some(PASS), &bundle);

    // failover.
    let vault = dir.join("vault");
    ok(&["vault", "init", s(&vault)], None);
    ok(&["vault", "ingest", s(&vault), s(&base), s(&bundle)], None);
    let fo = dir.join("fo");
    std::fs::create_dir(&fo).unwrap();
    std::fs::write(fo.join("data.img"), b"not an image").unwrap();
    let failover = failover_latest(&vault, &p.key, &fo);
    refuses_then_forced(&failover, Some(PASS), &fo.join("data.img"));
    private_file(&fo.join("os.img"));
    assert_eq!(
        std::fs::read(fo.join("data.img")).unwrap(),
        std::fs::read(&p.data).unwrap()
    );

    // resync signature and delta.
    let sig = dir.join("os.rcsig");
    std::fs::write(&sig, b"not a signature").unwrap();
    refuses_then_forced(
        &["resync", "signature", s(&p.os), "--out", s(&sig), "--plain"],
        None,
        &sig,
    );
    let delta = dir.join("os.rcdelta");
    std::fs::write(&delta, b"not a delta").unwrap();
    let args = [
        "resync",
        "delta",
        s(&p.data),
        "--signature",
        s(&sig),
        "--out",
        s(&delta),
        "--plain",
    ];
    refuses_then_forced(&args, None, &delta);
}

/// A resync into the chain through the command line (issue 17): the tracker lost, the vault's
/// point signature, `resync ship` of the disks, ingest, failover equals the disks; the wrong
/// group is a usage error.
#[test]
fn a_group_resyncs_into_its_chain_through_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = primary(tmp.path());
    let vault = tmp.path().join("vault");
    ok(&["vault", "init", s(&vault)], None);
    ok(
        &[
            "vault",
            "ingest",
            s(&vault),
            s(&tmp.path().join("base.rcb")),
        ],
        None,
    );
    // Writes no log saw.
    patch(&p.os, 70_000, &common::noise(5000, 4));
    patch(&p.data, 0, b"rewritten while nothing tracked");
    let sig = tmp.path().join("vm1.rcpsig");
    let out = ok(
        &[
            "vault",
            "signature",
            s(&vault),
            "--group",
            "vm 1",
            "--key",
            s(&p.key),
            "--out",
            s(&sig),
        ],
        Some(PASS),
    );
    assert_eq!(out.trim(), s(&sig));
    let disks = seed_disks(&p);
    let outbox = tmp.path().join("outbox");
    let log2 = tmp.path().join("vm-2.rclog");
    let args = |group: &'static str| {
        [
            "resync",
            "ship",
            "--key",
            s(&p.key),
            "--signature",
            s(&sig),
            "--group",
            group,
            "--disk",
            &disks[0],
            "--disk",
            &disks[1],
            "--log",
            s(&log2),
            "--out-dir",
            s(&outbox),
        ]
        .map(str::to_string)
    };
    let a = args("vm 2");
    fails(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(PASS),
        2,
        "not `vm 2`",
    );
    let a = args("vm 1");
    let bundle = ok(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(PASS),
    );
    ok(&["vault", "ingest", s(&vault), bundle.trim()], None);
    let fo = tmp.path().join("fo");
    ok(&failover_latest(&vault, &p.key, &fo), Some(PASS));
    assert_eq!(
        std::fs::read(fo.join("os.img")).unwrap(),
        std::fs::read(&p.os).unwrap()
    );
    assert_eq!(
        std::fs::read(fo.join("data.img")).unwrap(),
        std::fs::read(&p.data).unwrap()
    );
    // The ship state beside the new log continues the chain: sequence 2 next.
    let st = replicore::bundle::ShipState::load(tmp.path().join("vm_1.rcship")).unwrap();
    assert_eq!(st.next_seq, 2);
}

/// `log inspect --json` says why a resync is needed (issue 17): a torn tail (not closed
/// cleanly) and pending bytes past the default threshold, each with its detail.
#[test]
fn log_inspect_says_why_a_resync_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = primary(tmp.path());
    // Past 50% of the disks (3 MiB + 1 MB): capture most of the os disk as written.
    let extents = tmp.path().join("all.json");
    std::fs::write(&extents, r#"[{"start": 0, "length": 3145728}]"#).unwrap();
    capture(&p, "os", &p.os, &extents);
    let inspect = |path: &Path| -> Value {
        serde_json::from_str(&ok(&["log", "inspect", s(path), "--json"], None)).unwrap()
    };
    let v = inspect(&p.log);
    assert_eq!(v["resync"]["needed"], true, "{v}");
    assert_eq!(
        v["resync"]["reasons"][0]["reason"], "pending bytes past the threshold",
        "{v}"
    );
    // A torn tail: the last record cut.
    let len = std::fs::metadata(&p.log).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p.log)
        .unwrap();
    f.set_len(len - 100).unwrap();
    let v = inspect(&p.log);
    assert_eq!(
        v["resync"]["reasons"][0]["reason"], "not closed cleanly",
        "{v}"
    );
    assert!(ok(&["log", "inspect", s(&p.log)], None).contains("resync needed: not closed cleanly"));
}

/// `replicore status` (issue 17): the primary's pending bytes and last point shipped, the
/// recovery site's groups with their newest points and a health judged from the lag.
#[test]
fn status_shows_what_an_operator_watches() {
    let tmp = tempfile::tempdir().unwrap();
    let p = primary(tmp.path());
    let vault = tmp.path().join("vault");
    ok(&["vault", "init", s(&vault)], None);
    ok(
        &[
            "vault",
            "ingest",
            s(&vault),
            s(&tmp.path().join("base.rcb")),
        ],
        None,
    );
    let status = |now: &str| -> Value {
        let out = ok(
            &[
                "status",
                "--vault",
                s(&vault),
                "--log",
                s(&p.log),
                "--now",
                now,
                "--json",
            ],
            None,
        );
        serde_json::from_str(&out).unwrap()
    };
    // The base was taken now: healthy now, a warning in 20 minutes, critical in 2 hours.
    let now = std::time::SystemTime::now();
    let at = |secs: u64| {
        humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(secs)).to_string()
    };
    let v = status(&at(10));
    assert_eq!(v["primary"]["group"], "vm 1", "{v}");
    assert_eq!(v["primary"]["last_shipped_seq"], 0, "{v}");
    assert_eq!(v["primary"]["resync"]["needed"], false, "{v}");
    let g = &v["recovery_site"]["groups"][0];
    assert_eq!(
        (g["group"].as_str(), g["head_seq"].as_u64()),
        (Some("vm 1"), Some(0))
    );
    assert_eq!(g["health"], "healthy", "{v}");
    assert!(v["recovery_site"]["stored_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        status(&at(1200))
            .pointer("/recovery_site/groups/0/health")
            .unwrap(),
        "warning"
    );
    assert_eq!(
        status(&at(7200))
            .pointer("/recovery_site/groups/0/health")
            .unwrap(),
        "critical"
    );
    // The primary: the last shipped point's time and lag, its protection state and health.
    let v = status(&at(10));
    assert!(v["primary"]["last_shipped_time"].is_string(), "{v}");
    assert!(v["primary"]["lag_seconds"].as_u64().unwrap() >= 9, "{v}");
    assert_eq!(v["primary"]["protection"], "protected", "{v}");
    assert_eq!(v["primary"]["health"], "healthy", "{v}");
    assert_eq!(
        status(&at(7200)).pointer("/primary/health").unwrap(),
        "critical"
    );
    let g = &v["recovery_site"]["groups"][0];
    assert!(g["stored_bytes"].as_u64().unwrap() > 0, "{v}");
    // A ship that fails (a damaged copy of the sealed log: its seal is gone) leaves its
    // class; the health says so until a ship succeeds.
    let sealed = tmp.path().join("sealed.rclog");
    ok(
        &["log", "rotate", s(&p.log), "--sealed-out", s(&sealed)],
        None,
    );
    let mut bytes = std::fs::read(&sealed).unwrap();
    let at_byte = bytes.len() - 5;
    bytes[at_byte] ^= 0x40;
    let bad = tmp.path().join("bad.rclog");
    std::fs::write(&bad, &bytes).unwrap();
    let out = tmp.path().join("outbox");
    let state = tmp.path().join("vm_1.rcship");
    let r = rc(
        &[
            "ship",
            "--key",
            s(&p.key),
            "--state",
            s(&state),
            "--out-dir",
            s(&out),
            s(&bad),
        ],
        Some(PASS),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v = status(&at(10));
    assert_eq!(
        v["primary"]["last_error"]["class"], "invalid argument",
        "{v}"
    );
    assert_eq!(v["primary"]["health"], "critical", "{v}");
    ok(
        &["ship", "--key", s(&p.key), "--out-dir", s(&out), s(&sealed)],
        Some(PASS),
    );
    let v = status(&at(10));
    assert!(v["primary"]["last_error"].is_null(), "{v}");
    // A disk resized since tracking started: a reason to resync.
    let os = std::fs::OpenOptions::new().write(true).open(&p.os).unwrap();
    os.set_len((4 << 20) + 512).unwrap();
    let disk = format!("os={}", s(&p.os));
    let out = ok(
        &["status", "--log", s(&p.log), "--disk", &disk, "--json"],
        None,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let reasons = v["primary"]["resync"]["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["reason"] == "disk resized"), "{v}");
    // The log gone while the ship state is there: the tracker is lost.
    std::fs::rename(&p.log, tmp.path().join("moved.rclog")).unwrap();
    let r = rc(&["log", "inspect", s(&p.log), "--json"], None);
    assert_eq!(r.code, 6, "{}", r.stderr);
    let out = ok(&["status", "--log", s(&p.log), "--json"], None);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["primary"]["group"], "vm 1", "{v}");
    assert_eq!(
        v["primary"]["resync"]["reasons"][0]["reason"], "tracker lost",
        "{v}"
    );
    assert_eq!(v["primary"]["health"], "critical", "{v}");
    // Text, and a bad interval.
    let text = ok(&["status", "--vault", s(&vault)], None);
    assert!(text.contains("group `vm 1`"), "{text}");
    fails(
        &["status", "--vault", s(&vault), "--frequency", "60"],
        None,
        2,
        "--frequency",
    );
}

/// The way back through the command line (issue 17): failover with `--log` records the site as
/// failed over and tracks the recovered disks; `resync sign` at the original site, `resync
/// ship` at the recovery site (committed, reprotecting, then protected) and `apply` bring the
/// stale original disks to the recovered ones; applying again is exit 5; a move the state
/// machine forbids is exit 2.
#[test]
fn reprotect_and_apply_through_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("primary");
    std::fs::create_dir(&pdir).unwrap();
    let p = primary(&pdir);
    let vault = tmp.path().join("vault");
    ok(&["vault", "init", s(&vault)], None);
    ok(
        &["vault", "ingest", s(&vault), s(&pdir.join("base.rcb"))],
        None,
    );
    let show = |dir: &Path| {
        ok(
            &["protection", "--dir", s(dir), "--group", "vm 1", "--json"],
            None,
        )
    };
    assert!(show(&pdir).contains("\"state\":\"protected\""));

    // Unplanned failover, tracked.
    let rec = tmp.path().join("recovered");
    let rlog = rec.join("rec.rclog");
    let mut fo = failover_latest(&vault, &p.key, &rec)
        .map(str::to_string)
        .to_vec();
    fo.extend(["--log".to_string(), s(&rlog).to_string()]);
    ok(
        &fo.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(PASS),
    );
    assert!(rlog.exists() && rec.join("vm_1.rcship").exists());
    assert!(
        show(&rec).contains("failed over (unplanned)"),
        "{}",
        show(&rec)
    );
    // The recovered VM writes; the original disks took writes that never shipped.
    patch(&rec.join("os.img"), 10_000, &common::noise(70_000, 8));
    patch(&p.data, 5, b"lost with the primary");

    // Reprotect: signature of the stale disks, reverse resync point, apply.
    let osig = tmp.path().join("original.rcpsig");
    let odisks = seed_disks(&p);
    ok(
        &[
            "resync",
            "sign",
            "--key",
            s(&p.key),
            "--group",
            "vm 1",
            "--disk",
            &odisks[0],
            "--disk",
            &odisks[1],
            "--out",
            s(&osig),
        ],
        Some(PASS),
    );
    let rdisks = [
        format!("os={}", s(&rec.join("os.img"))),
        format!("data={}", s(&rec.join("data.img"))),
    ];
    let rev = tmp.path().join("rev");
    let bundle = ok(
        &[
            "resync",
            "ship",
            "--key",
            s(&p.key),
            "--signature",
            s(&osig),
            "--group",
            "vm 1",
            "--disk",
            &rdisks[0],
            "--disk",
            &rdisks[1],
            "--log",
            s(&rec.join("rev.rclog")),
            "--out-dir",
            s(&rev),
        ],
        Some(PASS),
    );
    assert!(
        show(&rec).contains("\"state\":\"protected\""),
        "{}",
        show(&rec)
    );
    let apply = [
        "apply",
        "--key",
        s(&p.key),
        "--group",
        "vm 1",
        "--disk",
        &odisks[0],
        "--disk",
        &odisks[1],
        bundle.trim(),
    ];
    ok(&apply, Some(PASS));
    for n in ["os.img", "data.img"] {
        assert_eq!(
            std::fs::read(pdir.join(n)).unwrap(),
            std::fs::read(rec.join(n)).unwrap(),
            "{n}"
        );
    }
    fails(&apply, Some(PASS), 5, "the disks hold it");
    // The forward base is no continuation of the reverse chain: refused, exit 5.
    let base = pdir.join("base.rcb");
    let mut fwd = apply;
    fwd[9] = s(&base);
    fails(&fwd, Some(PASS), 5, "does not follow");
    fails(
        &[
            "protection",
            "--dir",
            s(&rec),
            "--group",
            "vm 1",
            "--set",
            "committed",
        ],
        None,
        2,
        "from protected to committed",
    );
}
