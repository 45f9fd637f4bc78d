//! Every file the library creates is 0600 whatever the umask (issue 15 item 6).
//!
//! Protects: key files, change logs (active and sealed), bundles, the ship state, the vault's
//! format, lock, pack, index, point and head files, failover and materialized images, resync
//! targets and `OutputFile`s are created 0600 under umask 0 (which would leave 0666), and the
//! vault's directories 0700; key files, logs, targets and outputs are 0600 under an odd umask
//! that clears the owner's write bit too (0o277, which would leave 0400). The umask is process-wide, so this test is a binary of its own
//! (`harness = false`) and runs alone.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{key, ok, seeded};
use replicore::bundle::{ShipOptions, ship};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::log::{ChangeLog, DiskSpec, LogConfig, MarkerKind};
use replicore::vault::{Selector, Vault};

fn main() {
    let inputs = ["os.img", "data.img"];
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: umask only changes the process's file creation mask.
    unsafe { libc::umask(0o000) };
    write_everything(dir.path());
    // The test's own inputs (images written by `common::seeded` with std::fs::write) are under
    // the umask's mode: only what the library created is checked.
    let mut files = 0;
    check(dir.path(), &inputs, &mut files);
    assert!(files >= 15, "only {files} files checked");
    println!("umask 000: {files} files created 0600");

    // An umask that clears the owner's write bit: files are made 0600 again after creation.
    // (Directories are made before it is set: a directory the owner cannot write is of no use.)
    let odd = tempfile::tempdir().unwrap();
    let input = odd.path().join("os.img");
    std::fs::write(&input, common::noise(200_000, 4)).unwrap();
    // SAFETY: as above.
    unsafe { libc::umask(0o277) };
    write_single_files(odd.path(), &input);
    // SAFETY: as above.
    unsafe { libc::umask(0o022) };
    let mut files = 0;
    check(odd.path(), &inputs, &mut files);
    // The key file, the log and its lock file, the resync target, the output.
    assert_eq!(files, 5);
    println!("umask 277: {files} files created 0600");
    println!("files_umask: ok");
}

/// A key file, a change log, a resync target and an output file in the existing `dir`.
fn write_single_files(dir: &Path, input: &Path) {
    let (file, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([4; 32]))).unwrap();
    file.save(dir.join("g.rckey"), false).unwrap();
    let config = LogConfig::new("g", vec![DiskSpec::new("d", 1 << 20)]);
    drop(ChangeLog::create(dir.join("vm.rclog"), &config).unwrap());
    replicore::resync::resync(input, dir.join("target.img"), 64 << 10, &mut ok).unwrap();
    let mut f = replicore::OutputFile::create(dir.join("out.bin"), false).unwrap();
    f.write_all(b"output").unwrap();
    f.commit().unwrap();
}

/// Every kind of file the library creates, in `dir`.
fn write_everything(dir: &Path) {
    let (file, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([3; 32]))).unwrap();
    file.save(dir.join("g.rckey"), false).unwrap();
    let mut g = seeded(dir, key(3));
    g.write(0, 4096, b"guest write");
    g.mark(MarkerKind::Crash, "one", 60);
    let sealed = dir.join("sealed.rclog");
    g.log.rotate(&sealed).unwrap();
    let out = dir.join("bundles");
    std::fs::create_dir(&out).unwrap();
    let opts = ShipOptions::default();
    let shipped = ship(&sealed, &g.key, &mut g.state, &out, &opts, &mut ok).unwrap();
    g.state.save(dir.join("vm.rcship")).unwrap();

    let vault = Vault::create(dir.join("vault")).unwrap();
    vault.ingest(&g.base, &mut ok).unwrap();
    for b in &shipped {
        vault.ingest(&b.path, &mut ok).unwrap();
    }
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    vault
        .failover("vm-01", Selector::Latest, &g.key, &images, &mut ok)
        .unwrap();
    let point = vault.points("vm-01").unwrap()[0].id;
    vault
        .materialize("vm-01", point, "os", &g.key, dir.join("one.img"), &mut ok)
        .unwrap();

    replicore::resync::resync(
        dir.join("os.img"),
        dir.join("target.img"),
        64 << 10,
        &mut ok,
    )
    .unwrap();
    let mut f = replicore::OutputFile::create(dir.join("out.bin"), false).unwrap();
    f.write_all(b"output").unwrap();
    f.commit().unwrap();
}

/// Asserts every file under `dir` but `inputs` is a 0600 regular file, every directory the
/// library made at most 0700; counts the files.
fn check(dir: &Path, inputs: &[&str], files: &mut usize) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        if m.is_dir() {
            // Directories of the vault (the test makes `bundles` and `images` itself).
            if p.ancestors()
                .any(|a| a.file_name().is_some_and(|n| n == "vault"))
            {
                assert_eq!(mode & !0o700, 0, "{} is {mode:o}", p.display());
            }
            check(&p, inputs, files);
        } else if !inputs
            .iter()
            .any(|i| p.file_name().is_some_and(|n| n == *i))
        {
            assert!(m.is_file(), "{} is not a regular file", p.display());
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            *files += 1;
        }
    }
}
