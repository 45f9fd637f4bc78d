//! Crash safety of a seed: a real process killed at many points of seeding, and the states a
//! crash can leave (the new log, a torn temporary bundle) recovered as the docs of `seed` say.
//!
//! Protects: a killed seed never leaves a published bundle that is incomplete (the bundle path
//! either does not exist or holds a bundle that verifies and reproduces the images); a leftover
//! log is never overwritten by a second seed (AlreadyExists), and once removed, seeding again
//! succeeds, replaces any torn temporary file and leaves none behind.
//!
//! A harness-less test: the same binary is the parent (the tests) and, with `CHILD_ENV` set,
//! the child process that seeds and gets killed.

mod common;
#[path = "common/kill.rs"]
mod kill;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{materialize, noise, ok};
use replicore::ErrorKind;
use replicore::bundle::{Bundle, SeedOptions, seed};
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};

const CHILD_ENV: &str = "REPLICORE_SEED_CRASH_CHILD";
const DISKS: usize = 6;
const CS: u32 = 16 << 10;

fn main() {
    kill::main(
        CHILD_ENV,
        child,
        &[
            ("a_killed_seed_is_never_published_torn", killed_seeds),
            ("a_crash_leftover_is_recovered_as_documented", leftovers),
        ],
    );
}

/// The group's disk images: noise, repeats, zeros and text, one per progress report.
fn images() -> Vec<Vec<u8>> {
    (0..DISKS)
        .map(|d| {
            let mut img = noise(12 * CS as usize + 777 * d, d as u64 + 1);
            img[CS as usize..3 * CS as usize].fill(0);
            let text = format!("disk {d} line\n").repeat(CS as usize / 8);
            img[5 * CS as usize..][..text.len()].copy_from_slice(text.as_bytes());
            img
        })
        .collect()
}

fn image_paths(dir: &Path) -> Vec<(String, PathBuf)> {
    (0..DISKS)
        .map(|d| (format!("d{d}"), dir.join(format!("d{d}.img"))))
        .collect()
}

const MASTER: [u8; 32] = [5; 32];

/// Creates the key file every seed under `root` uses (the parent's and the children's).
fn create_key(root: &Path) {
    let (file, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes(MASTER))).unwrap();
    file.save(root.join("key.rckey"), false).unwrap();
}

/// The key of a seed in `dir`, a directory under the root [`create_key`] prepared.
fn key(dir: &Path) -> Key {
    KeyFile::load(dir.parent().unwrap().join("key.rckey"))
        .unwrap()
        .unlock(Secret::Key(&MasterKey::from_bytes(MASTER)))
        .unwrap()
}

fn options() -> SeedOptions {
    SeedOptions {
        chunk_size: CS,
        ..SeedOptions::default()
    }
}

fn seed_in(dir: &Path) -> replicore::Result<replicore::bundle::Seeded> {
    seed_with(dir, &mut ok)
}

fn seed_with(
    dir: &Path,
    progress: replicore::resync::Progress<'_>,
) -> replicore::Result<replicore::bundle::Seeded> {
    let paths = image_paths(dir);
    let disks: Vec<(&str, &Path)> = paths
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    seed(
        "vm-kill",
        &disks,
        &key(dir),
        dir.join("vm.rclog"),
        dir.join("base.rcb"),
        &options(),
        progress,
    )
}

/// The child: seeds, reporting each progress step on stdout, then says "seeded".
fn child(dir: &Path) {
    let mut out = std::io::stdout();
    let seeded = seed_with(dir, &mut |done, _| {
        // One line per disk read (not the opening report, before any work).
        if done > 0 {
            writeln!(out, "progress {done}").unwrap();
            out.flush().unwrap();
        }
        true
    })
    .unwrap();
    drop(seeded);
    writeln!(out, "seeded").unwrap();
    out.flush().unwrap();
}

fn write_images(dir: &Path) -> Vec<Vec<u8>> {
    let imgs = images();
    for ((_, p), img) in image_paths(dir).iter().zip(&imgs) {
        std::fs::write(p, img).unwrap();
    }
    imgs
}

/// Whatever a kill left, the bundle path holds nothing or a whole, correct bundle.
fn check_published(dir: &Path, imgs: &[Vec<u8>]) -> bool {
    let base = dir.join("base.rcb");
    if !base.exists() {
        return false;
    }
    assert!(
        dir.join("vm.rclog").exists(),
        "the log is created before the bundle"
    );
    let b = Bundle::open(&base).unwrap();
    b.verify_with_key(&key(dir)).unwrap();
    assert_eq!(materialize(&[&b], &key(dir)), imgs);
    true
}

/// The documented recovery: remove the new log (and a published bundle whose state the host
/// did not save), seed again.
fn recover(dir: &Path, imgs: &[Vec<u8>]) {
    for f in ["vm.rclog", "base.rcb"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let s = seed_in(dir).unwrap();
    assert_eq!(
        temps(dir),
        0,
        "the next seed removes a crashed one's temporary bundle"
    );
    let b = Bundle::open(&s.bundle.path).unwrap();
    b.verify_with_key(&key(dir)).unwrap();
    assert_eq!(materialize(&[&b], &key(dir)), imgs);
}

/// Temporary files of the bundle `base.rcb` in `dir` (`.base.rcb.<16 hex>.tmp`).
fn temps(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with(".base.rcb.") && n.ends_with(".tmp")
        })
        .count()
}

fn killed_seeds() {
    let root = tempfile::tempdir().unwrap();
    create_key(root.path());
    // How long a whole child run takes, to spread the kills over it.
    let full = root.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let imgs = write_images(&full);
    let t = Instant::now();
    kill::run_child_and_kill(CHILD_ENV, &full, DISKS + 1, Duration::ZERO);
    let whole = t.elapsed();
    assert!(check_published(&full, &imgs), "an uncut child publishes");

    let mut published = 0;
    let mut cuts = 0;
    let mut torn = 0;
    for lines in 0..=DISKS {
        for frac in [0u32, 1, 3] {
            let dir = root.path().join(format!("cut-{lines}-{frac}"));
            std::fs::create_dir(&dir).unwrap();
            write_images(&dir);
            kill::run_child_and_kill(CHILD_ENV, &dir, lines, whole * frac / (4 * DISKS as u32));
            cuts += 1;
            torn += usize::from(temps(&dir) > 0);
            published += usize::from(check_published(&dir, &imgs));
            recover(&dir, &imgs);
        }
    }
    // Timing decides where each kill lands; most must land before the publication.
    assert!(
        published < cuts,
        "{published} of {cuts} kills came too late"
    );
    print!("({cuts} kills: {torn} left a temporary bundle, {published} a published one) ");
}

fn leftovers() {
    let root = tempfile::tempdir().unwrap();
    create_key(root.path());
    let done = root.path().join("done");
    std::fs::create_dir(&done).unwrap();
    let imgs = write_images(&done);
    let full = std::fs::read(seed_in(&done).unwrap().bundle.path).unwrap();
    for cut in [0, 1, 100, full.len() / 2, full.len() - 1, full.len()] {
        let dir = root.path().join(format!("cut-{cut}"));
        std::fs::create_dir(&dir).unwrap();
        write_images(&dir);
        // A crash after the log was created, with the bundle's temporary file torn at `cut`.
        drop(seed_in(&dir).unwrap());
        std::fs::remove_file(dir.join("base.rcb")).unwrap();
        std::fs::write(dir.join(".base.rcb.00000000deadbeef.tmp"), &full[..cut]).unwrap();
        let log = std::fs::read(dir.join("vm.rclog")).unwrap();
        // A second seed never overwrites the log: it may hold tracked writes.
        let e = seed_in(&dir).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read(dir.join("vm.rclog")).unwrap(), log);
        recover(&dir, &imgs);
    }
}
