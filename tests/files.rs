//! Files are created safely: the attacks of issue 15 item 6, each performed.
//!
//! Protects: no operation of the library writes through a symbolic link that someone else
//! planted, whether at the output path or at a temporary name it could guess (the old
//! `<path>.tmp`, `<path>.creating`, `<path>.rotating-tmp`, or a guess of the new
//! `.<name>.<16 hex>.tmp` form): the link's target is never touched, and the operation either
//! refuses (`AlreadyExists`, or an error naming the path) or writes its own new file. Outputs
//! never replace an existing file unless asked, including one that appears while the output is
//! being written. Every created file has mode 0600 (under an ordinary umask here; under umask 0
//! in `tests/files_umask.rs`, which needs a process of its own).

mod common;

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::{key, ok, seeded};
use replicore::crypto::{KeyFile, MasterKey, Secret};
use replicore::log::{ChangeLog, DiskSpec, LogConfig};
use replicore::vault::{FailoverOptions, Selector, Vault};
use replicore::{ErrorKind, OutputFile};

const VICTIM: &[u8] = b"another user's file: must stay as it is";

/// A file the attacker wants overwritten, and its expected bytes.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, VICTIM).unwrap();
    v
}

fn untouched(v: &Path) {
    assert_eq!(
        std::fs::read(v).unwrap(),
        VICTIM,
        "{} was written",
        v.display()
    );
}

/// A regular file (not a link) of mode 0600.
fn private_file(p: &Path) {
    let m = std::fs::symlink_metadata(p).unwrap();
    assert!(
        m.file_type().is_file(),
        "{} is not a regular file",
        p.display()
    );
    assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{}", p.display());
}

/// `p` with `suffix` appended to its name.
fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Links at every name an attacker could guess for `p`'s temporary files, to `target`.
fn plant_guesses(p: &Path, target: &Path) {
    let name = p.file_name().unwrap().to_str().unwrap();
    for guess in [
        suffixed(p, ".tmp"),
        suffixed(p, ".creating"),
        suffixed(p, ".rotating-tmp"),
        p.with_file_name(format!(".{name}.0000000000000000.tmp")),
    ] {
        symlink(target, guess).unwrap();
    }
}

#[test]
fn a_link_at_an_output_is_refused_and_a_replacing_write_replaces_the_link_itself() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let out = dir.path().join("out.bin");
    symlink(&v, &out).unwrap();
    let e = OutputFile::create(&out, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("out.bin"), "{e}");
    // A dangling link counts too: following it would create the file it names.
    let dangling = dir.path().join("dangling.bin");
    let named = dir.path().join("created-by-following");
    symlink(&named, &dangling).unwrap();
    let e = OutputFile::create(&dangling, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(!named.exists());

    let mut f = OutputFile::create(&out, true).unwrap();
    f.write_all(b"mine").unwrap();
    f.commit().unwrap();
    untouched(&v);
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    private_file(&out);
}

#[test]
fn a_file_appearing_while_an_output_is_written_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let mut f = OutputFile::create(&out, false).unwrap();
    f.write_all(b"mine").unwrap();
    std::fs::write(&out, VICTIM).unwrap();
    let e = f.commit().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    untouched(&out);
    // And the same with a link planted meanwhile: refused, the link left as it is.
    let v = victim(dir.path());
    let out2 = dir.path().join("out2.bin");
    let f = OutputFile::create(&out2, false).unwrap();
    symlink(&v, &out2).unwrap();
    assert_eq!(f.commit().unwrap_err().kind(), ErrorKind::AlreadyExists);
    untouched(&v);
    assert!(
        std::fs::symlink_metadata(&out2)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Nothing but the files above is left (no temporary file).
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["out.bin", "out2.bin", "victim"]);
}

#[test]
fn a_key_file_is_never_saved_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let (file, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([5; 32]))).unwrap();
    let at_link = dir.path().join("linked.rckey");
    symlink(&v, &at_link).unwrap();
    let e = file.save(&at_link, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    let path = dir.path().join("g.rckey");
    plant_guesses(&path, &v);
    file.save(&path, false).unwrap();
    untouched(&v);
    private_file(&path);
    assert_eq!(KeyFile::load(&path).unwrap().key_id(), file.key_id());
}

#[test]
fn seeding_writes_its_own_log_and_bundle_whatever_links_are_planted() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    // The names `common::seeded` uses.
    for p in ["vm.rclog", "base.rcb"] {
        plant_guesses(&dir.path().join(p), &v);
    }
    let g = seeded(dir.path(), key(1));
    untouched(&v);
    private_file(&g.log_path);
    private_file(&g.base);

    // A link at the outputs themselves is refused, and the link's target is not created.
    let other = tempfile::tempdir().unwrap();
    let named = other.path().join("created-by-following");
    symlink(&named, other.path().join("base.rcb")).unwrap();
    let images = dir.path().join("os.img");
    let e = replicore::bundle::seed(
        "g",
        &[("os", images.as_path())],
        &g.key,
        other.path().join("vm.rclog"),
        other.path().join("base.rcb"),
        &Default::default(),
        &mut ok,
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(!named.exists());
    assert!(
        !other.path().join("vm.rclog").exists(),
        "the failed seed's log is removed"
    );
}

#[test]
fn a_change_log_is_never_created_or_sealed_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let config = LogConfig::new("g", vec![DiskSpec::new("d", 1 << 20)]);
    let at_link = dir.path().join("linked.rclog");
    symlink(&v, &at_link).unwrap();
    let e = ChangeLog::create(&at_link, &config).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    let path = dir.path().join("vm.rclog");
    plant_guesses(&path, &v);
    let mut log = ChangeLog::create(&path, &config).unwrap();
    log.record_write(0, 0, b"guest").unwrap();
    let sealed = dir.path().join("sealed.rclog");
    symlink(&v, &sealed).unwrap();
    let e = log.rotate(&sealed).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    untouched(&v);
    let sealed = dir.path().join("sealed-2.rclog");
    plant_guesses(&sealed, &v);
    drop(log);
    let (mut log, _) = ChangeLog::open(
        &path,
        None,
        replicore::log::SyncPolicy::Manual,
        Default::default(),
    )
    .unwrap();
    log.rotate(&sealed).unwrap();
    untouched(&v);
    private_file(&path);
    private_file(&sealed);
}

/// A vault holding `g`'s base, and the group's key.
fn vault_with_base(dir: &Path) -> (Vault, common::Group) {
    let g = seeded(dir, key(2));
    let vault = Vault::create(dir.join("vault")).unwrap();
    vault.ingest(&g.base, &mut ok).unwrap();
    (vault, g)
}

#[test]
fn failover_and_materialize_never_write_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let (vault, g) = vault_with_base(dir.path());
    let out = dir.path().join("failover");
    std::fs::create_dir(&out).unwrap();
    for disk in ["os.img", "data.img"] {
        plant_guesses(&out.join(disk), &v);
    }
    // A link at an image's own path: refused before anything is written.
    symlink(&v, out.join("data.img")).unwrap();
    let e = vault
        .failover("vm-01", Selector::Latest, &g.key, &out, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("data.img"), "{e}");
    assert!(!out.join("os.img").exists());
    // Asked to replace: the link itself is replaced, its target untouched.
    let replace = FailoverOptions {
        replace: true,
        ..FailoverOptions::default()
    };
    let written = vault
        .failover_with("vm-01", Selector::Latest, &g.key, &out, &replace, &mut ok)
        .unwrap();
    untouched(&v);
    for (m, want) in written.iter().zip(&g.model) {
        private_file(&m.path);
        assert_eq!(&std::fs::read(&m.path).unwrap(), want);
    }

    let point = vault.points("vm-01").unwrap()[0].id;
    let image = dir.path().join("one.img");
    plant_guesses(&image, &v);
    vault
        .materialize("vm-01", point, "os", &g.key, &image, &mut ok)
        .unwrap();
    untouched(&v);
    private_file(&image);
    let e = vault
        .materialize("vm-01", point, "os", &g.key, &image, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}

#[test]
fn a_vault_lock_file_is_never_opened_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, g) = vault_with_base(dir.path());
    let root = vault.path().to_path_buf();
    let named = dir.path().join("created-by-following");
    std::fs::remove_file(root.join("lock")).unwrap();
    symlink(&named, root.join("lock")).unwrap();
    let e = vault.ingest(&g.base, &mut ok).unwrap_err();
    assert!(e.to_string().contains("lock"), "{e}");
    let e = vault
        .failover("vm-01", Selector::Latest, &g.key, dir.path(), &mut ok)
        .unwrap_err();
    assert!(e.to_string().contains("lock"), "{e}");
    assert!(!named.exists());
}

#[test]
fn a_resync_to_a_missing_target_never_follows_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let source = dir.path().join("source.img");
    std::fs::write(&source, common::noise(300_000, 9)).unwrap();
    let cs = 64 << 10;

    // A dangling link where the new image is to be created: following it would create the
    // file it names.
    let named = dir.path().join("created-by-following");
    let target = dir.path().join("target.img");
    symlink(&named, &target).unwrap();
    let e = replicore::resync::resync(&source, &target, cs, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("target.img"), "{e}");
    assert!(!named.exists());

    // A link to another user's regular file.
    let target = dir.path().join("target2.img");
    symlink(&v, &target).unwrap();
    let e = replicore::resync::resync(&source, &target, cs, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    untouched(&v);

    // No link: the target is created new and private.
    let target = dir.path().join("target3.img");
    replicore::resync::resync(&source, &target, cs, &mut ok).unwrap();
    private_file(&target);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&source).unwrap()
    );
}

#[test]
fn a_crashed_writers_temporary_file_is_removed_by_the_next_and_a_planted_link_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let v = victim(dir.path());
    let out = dir.path().join("out.bin");
    let stale = dir.path().join(".out.bin.0123456789abcdef.tmp");
    std::fs::write(&stale, b"torn").unwrap();
    let link = dir.path().join(".out.bin.fedcba9876543210.tmp");
    symlink(&v, &link).unwrap();
    let mut f = OutputFile::create(&out, false).unwrap();
    f.write_all(b"mine").unwrap();
    f.commit().unwrap();
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "a link is not ours to remove"
    );
    untouched(&v);
}

#[test]
fn a_link_planted_as_an_interrupted_rotation_is_never_put_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::new("g", vec![DiskSpec::new("d", 1 << 20)]);
    // Another log the attacker wants this host to append to.
    let other = dir.path().join("other.rclog");
    drop(ChangeLog::create(&other, &config).unwrap());
    let before = std::fs::read(&other).unwrap();
    let path = dir.path().join("vm.rclog");
    symlink(&other, suffixed(&path, ".rotating")).unwrap();
    let e = ChangeLog::open(
        &path,
        None,
        replicore::log::SyncPolicy::Manual,
        Default::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!path.exists());
    assert_eq!(std::fs::read(&other).unwrap(), before);
}
