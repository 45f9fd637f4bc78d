//! Failover as a host relies on it (issue 16): all or nothing across a group's disks (a
//! cancellation at any progress call, or a failure on any disk, leaves no image and no
//! temporary file), a missing output directory is created, progress counts the disks' bytes at
//! least every 8 MiB from (0, total) to (total, total), and disks can be written onto existing
//! files (block devices: tests/failover_blockdev.rs), every byte of the disk, the rest kept.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use replicore::ErrorKind;
use replicore::log::MarkerKind;
use replicore::vault::{FailoverOptions, Selector, Vault};

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn failover_is_all_or_nothing_and_creates_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(5));
    g.write(0, 70_000, &noise(200_000, 3));
    g.write(1, 1000, b"second disk");
    let model = g.mark(MarkerKind::Crash, "p", 60);
    let mut bundles = vec![g.base.clone()];
    bundles.extend(g.rotate_and_ship(1));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    // How many progress calls a whole failover makes.
    let mut calls = 0u32;
    let probe = dir.path().join("probe");
    v.failover("vm-01", Selector::Latest, &g.key, &probe, &mut |_, _| {
        calls += 1;
        true
    })
    .unwrap();
    assert!(calls >= 2, "{calls} progress calls");
    // Cancelled at each call in turn: nothing published, nothing left.
    for stop in 1..=calls {
        let out = dir.path().join(format!("cancel-{stop}/new/dir"));
        let mut n = 0u32;
        let e = v
            .failover("vm-01", Selector::Latest, &g.key, &out, &mut |_, _| {
                n += 1;
                n < stop
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "stop {stop}: {e}");
        assert!(entries(&out).is_empty(), "stop {stop}: {:?}", entries(&out));
    }
    // (A cancellation at a call of the second disk is that disk failing: the first disk's
    // image, written by then, was not left behind.) An image in the way of the second disk:
    // refused before anything is written.
    let out = dir.path().join("failing");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("data.img"), b"in the way").unwrap();
    let e = v
        .failover("vm-01", Selector::Latest, &g.key, &out, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(entries(&out), ["data.img"]);
    // And a whole failover into a missing directory.
    let fresh = dir.path().join("a/b/c");
    let written = v
        .failover("vm-01", Selector::Latest, &g.key, &fresh, &mut ok)
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(std::fs::read(fresh.join("os.img")).unwrap(), model[0]);
    assert_eq!(std::fs::read(fresh.join("data.img")).unwrap(), model[1]);
}

/// A vault holding the two-disk group of `common` after one shipped interval, and the model.
fn vault_with_group(dir: &Path) -> (Vault, Group, Vec<Vec<u8>>) {
    let mut g = seeded(dir, key(5));
    g.write(0, 70_000, &noise(200_000, 3));
    g.write(1, 1000, b"second disk");
    let model = g.mark(MarkerKind::Crash, "p", 60);
    let mut bundles = vec![g.base.clone()];
    bundles.extend(g.rotate_and_ship(1));
    let v = Vault::create(dir.join("vault")).unwrap();
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    (v, g, model)
}

/// Disks and the targets they go onto.
type Targets<'a> = Vec<(&'a str, PathBuf)>;

fn onto(targets: &[(&str, &Path)]) -> FailoverOptions {
    FailoverOptions {
        replace: false,
        targets: targets
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_path_buf()))
            .collect(),
    }
}

#[test]
fn failover_onto_pre_created_files_writes_every_byte_and_keeps_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (v, g, model) = vault_with_group(dir.path());
    // Targets full of other bytes: a larger file for `os`, an exact one for `data`.
    let os_t = dir.path().join("lun-os");
    let tail = noise(10_000, 77);
    let mut garbage = noise(model[0].len(), 9);
    garbage.extend_from_slice(&tail);
    std::fs::write(&os_t, &garbage).unwrap();
    let data_t = dir.path().join("lun-data");
    std::fs::write(&data_t, vec![0xA5u8; model[1].len()]).unwrap();
    let out = dir.path().join("unused");
    let written = v
        .failover_with(
            "vm-01",
            Selector::Latest,
            &g.key,
            &out,
            &onto(&[("os", &os_t), ("data", &data_t)]),
            &mut ok,
        )
        .unwrap();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|m| m.onto_existing));
    assert_eq!(written[0].path, os_t);
    let got = std::fs::read(&os_t).unwrap();
    assert_eq!(
        got.len(),
        model[0].len() + tail.len(),
        "the size never changes"
    );
    assert_eq!(
        &got[..model[0].len()],
        &model[0][..],
        "every byte of the disk"
    );
    assert_eq!(
        &got[model[0].len()..],
        &tail[..],
        "bytes past the disk are kept"
    );
    assert_eq!(std::fs::read(&data_t).unwrap(), model[1]);
    // The data disk is mostly zeros: they were made zero by the file system, not written.
    assert!(written[1].zeroed_bytes > 0, "{:?}", written[1]);
    assert!(
        !out.exists(),
        "no output directory is made when every disk has a target"
    );
}

#[test]
fn failover_onto_a_target_and_a_new_image_together() {
    let dir = tempfile::tempdir().unwrap();
    let (v, g, model) = vault_with_group(dir.path());
    let data_t = dir.path().join("lun-data");
    std::fs::write(&data_t, noise(model[1].len(), 4)).unwrap();
    let out = dir.path().join("images");
    let written = v
        .failover_with(
            "vm-01",
            Selector::Latest,
            &g.key,
            &out,
            &onto(&[("data", &data_t)]),
            &mut ok,
        )
        .unwrap();
    assert_eq!(written.len(), 2);
    assert!(!written[0].onto_existing && written[1].onto_existing);
    assert_eq!(std::fs::read(out.join("os.img")).unwrap(), model[0]);
    assert_eq!(std::fs::read(&data_t).unwrap(), model[1]);
    assert_eq!(entries(&out), ["os.img"]);
    // Without an output directory, a disk with no target is refused before anything.
    let e = v
        .failover_with(
            "vm-01",
            Selector::Latest,
            &g.key,
            "",
            &onto(&[("data", &data_t)]),
            &mut ok,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("disk `os`"), "{e}");
}

#[test]
fn unusable_targets_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (v, g, model) = vault_with_group(dir.path());
    let out = dir.path().join("images");
    let big = dir.path().join("big");
    let before = noise(model[0].len() + 5, 1);
    std::fs::write(&big, &before).unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, noise(model[1].len() - 1, 2)).unwrap();
    let cases: Vec<(Targets, ErrorKind, &str)> = vec![
        // One byte short: the disk would not fit.
        (
            vec![("os", big.clone()), ("data", small.clone())],
            ErrorKind::InvalidArgument,
            "less than",
        ),
        // Missing: a target is existing storage, never created.
        (
            vec![("os", big.clone()), ("data", dir.path().join("nope"))],
            ErrorKind::NotFound,
            "must exist",
        ),
        // A directory, a character device.
        (
            vec![("os", big.clone()), ("data", dir.path().to_path_buf())],
            ErrorKind::InvalidArgument,
            "neither a block device",
        ),
        (
            vec![("os", big.clone()), ("data", PathBuf::from("/dev/null"))],
            ErrorKind::InvalidArgument,
            "neither a block device",
        ),
        // Two disks onto one file (the second name through a symbolic link).
        (
            vec![("os", big.clone()), ("data", dir.path().join("big-link"))],
            ErrorKind::InvalidArgument,
            "same file",
        ),
        // A disk the group lacks; a disk named twice.
        (
            vec![("swap", big.clone())],
            ErrorKind::NotFound,
            "its disks: os, data",
        ),
        (
            vec![("os", big.clone()), ("os", big.clone())],
            ErrorKind::InvalidArgument,
            "two targets",
        ),
    ];
    std::os::unix::fs::symlink(&big, dir.path().join("big-link")).unwrap();
    for (targets, kind, says) in cases {
        let options = FailoverOptions {
            replace: false,
            targets: targets
                .iter()
                .map(|(n, p)| (n.to_string(), p.clone()))
                .collect(),
        };
        let e = v
            .failover_with("vm-01", Selector::Latest, &g.key, &out, &options, &mut ok)
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{targets:?}: {e}");
        assert!(e.to_string().contains(says), "{targets:?}: {e}");
        assert_eq!(std::fs::read(&big).unwrap(), before, "{targets:?}");
        assert!(entries(&out).is_empty(), "{targets:?}");
    }
    // Materialize onto a target refuses the same way, and writes the disk when it fits.
    let point = v.select("vm-01", Selector::Latest).unwrap().id;
    let e = v
        .materialize_onto("vm-01", point, "data", &g.key, &small, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let m = v
        .materialize_onto("vm-01", point, "os", &g.key, &big, &mut ok)
        .unwrap();
    assert!(m.onto_existing);
    let got = std::fs::read(&big).unwrap();
    assert_eq!(&got[..model[0].len()], &model[0][..]);
    assert_eq!(&got[model[0].len()..], &before[model[0].len()..]);
}

/// Progress as a host sees it: disk bytes, (0, total) first, (total, total) last, never more
/// than 8 MiB apart, never backwards; a cancellation at any call leaves a new image nowhere.
#[test]
fn progress_counts_disk_bytes_at_least_every_8_mib() {
    let dir = tempfile::tempdir().unwrap();
    // One disk of 20 MiB and 777 bytes, data at its start, middle and end; one tiny disk.
    let mut big = vec![0u8; (20 << 20) + 777];
    big[..100_000].copy_from_slice(&noise(100_000, 1));
    big[9 << 20..(9 << 20) + 5000].copy_from_slice(&noise(5000, 2));
    let n = big.len();
    big[n - 3000..].copy_from_slice(&noise(3000, 3));
    let tiny = noise(4096, 4);
    let (bp, tp) = (dir.path().join("big.img"), dir.path().join("tiny.img"));
    std::fs::write(&bp, &big).unwrap();
    std::fs::write(&tp, &tiny).unwrap();
    let key = key(8);
    let base = dir.path().join("base.rcb");
    replicore::bundle::seed(
        "g",
        &[("big", bp.as_path()), ("tiny", tp.as_path())],
        &key,
        dir.path().join("g.rclog"),
        &base,
        &replicore::bundle::SeedOptions::default(),
        &mut ok,
    )
    .unwrap();
    let v = Vault::create(dir.path().join("vault")).unwrap();
    v.ingest(&base, &mut ok).unwrap();
    let total = (big.len() + tiny.len()) as u64;
    let mut calls: Vec<(u64, u64)> = Vec::new();
    let out = dir.path().join("images");
    v.failover("g", Selector::Latest, &key, &out, &mut |d, t| {
        calls.push((d, t));
        true
    })
    .unwrap();
    assert_eq!(calls.first(), Some(&(0, total)), "{calls:?}");
    assert_eq!(calls.last(), Some(&(total, total)), "{calls:?}");
    for w in calls.windows(2) {
        assert_eq!(w[1].1, total);
        assert!(w[0].0 <= w[1].0, "{calls:?}");
        assert!(w[1].0 - w[0].0 <= 8 << 20, "{calls:?}");
    }
    assert!(calls.len() >= 5, "{calls:?}");
    assert_eq!(std::fs::read(out.join("big.img")).unwrap(), big);
    assert_eq!(std::fs::read(out.join("tiny.img")).unwrap(), tiny);
    // Cancelled at each call: no new image, no temporary file.
    for stop in 0..calls.len() {
        let out = dir.path().join(format!("cancel-{stop}"));
        let mut n = 0;
        let e = v
            .failover("g", Selector::Latest, &key, &out, &mut |_, _| {
                n += 1;
                n <= stop
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "stop {stop}: {e}");
        assert!(entries(&out).is_empty(), "stop {stop}: {:?}", entries(&out));
    }
    // Onto a target, the same calls; the target holds every byte afterwards.
    let t = dir.path().join("lun");
    std::fs::write(&t, vec![0xEEu8; big.len() + 4096]).unwrap();
    let mut onto_calls = Vec::new();
    let point = v.select("g", Selector::Latest).unwrap().id;
    v.materialize_onto("g", point, "big", &key, &t, &mut |d, t| {
        onto_calls.push((d, t));
        true
    })
    .unwrap();
    assert_eq!(onto_calls.first(), Some(&(0, big.len() as u64)));
    assert_eq!(
        onto_calls.last(),
        Some(&(big.len() as u64, big.len() as u64))
    );
    let got = std::fs::read(&t).unwrap();
    assert_eq!(&got[..big.len()], &big[..]);
    assert!(got[big.len()..].iter().all(|&b| b == 0xEE));
}
