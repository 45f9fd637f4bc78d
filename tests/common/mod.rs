//! Shared fixtures of the bundle tests: a seeded group with a shipped log, and a reference
//! materializer (base manifests folded with each incremental, newest wins) to check contents.

#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use replicore::bundle::{Bundle, BundleKind, SeedOptions, ShipOptions, ShipState, seed, ship};
use replicore::crypto::{Key, KeyFile, MasterKey, Secret};
use replicore::log::MarkerKind;
use replicore::{BlobId, Source, blob};

pub const CS: u32 = 64 << 10;

pub fn ok(_: u64, _: u64) -> bool {
    true
}

pub fn key(b: u8) -> Key {
    KeyFile::create(Secret::Key(&MasterKey::from_bytes([b; 32])))
        .unwrap()
        .1
}

pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Disk images: random, text, zero and repeated chunks, sizes off the chunk grid.
pub fn images() -> Vec<(&'static str, Vec<u8>)> {
    let mut a = noise(5 * CS as usize + 1234, 3);
    a[CS as usize..2 * CS as usize].fill(0);
    let (c0, c1) = a.split_at_mut(3 * CS as usize);
    c1[..CS as usize].copy_from_slice(&c0[..CS as usize]); // chunk 3 repeats chunk 0
    let text = b"replicore bundle test line\n".repeat(4000);
    a[4 * CS as usize..4 * CS as usize + 1000].copy_from_slice(&text[..1000]);
    let mut b = vec![0u8; 3 * CS as usize];
    b[100..100 + text.len().min(70_000)].copy_from_slice(&text[..text.len().min(70_000)]);
    vec![("os", a), ("data", b)]
}

/// A seeded group in `dir` with its images and the model's state at each shipped point.
pub struct Group {
    pub dir: PathBuf,
    pub key: Key,
    pub state: ShipState,
    pub base: PathBuf,
    pub log: replicore::log::ChangeLog,
    pub log_path: PathBuf,
    pub model: Vec<Vec<u8>>,
}

pub fn seeded(dir: &Path, key: Key) -> Group {
    seeded_as(dir, key, "vm-01")
}

/// As [`seeded`], for the group `group`.
pub fn seeded_as(dir: &Path, key: Key, group: &str) -> Group {
    let imgs = images();
    let mut paths = Vec::new();
    for (name, bytes) in &imgs {
        let p = dir.join(format!("{name}.img"));
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    let disks: Vec<(&str, &Path)> = imgs
        .iter()
        .zip(&paths)
        .map(|((n, _), p)| (*n, p.as_path()))
        .collect();
    let log_path = dir.join("vm.rclog");
    let base = dir.join("base.rcb");
    let options = SeedOptions {
        chunk_size: CS,
        time: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        ..SeedOptions::default()
    };
    let s = seed(group, &disks, &key, &log_path, &base, &options, &mut ok).unwrap();
    Group {
        dir: dir.to_path_buf(),
        key,
        state: s.state,
        base,
        log: s.log,
        log_path,
        model: imgs.into_iter().map(|(_, b)| b).collect(),
    }
}

impl Group {
    pub fn write(&mut self, disk: usize, at: u64, data: &[u8]) {
        self.log.record_write(disk, at, data).unwrap();
        self.model[disk][at as usize..at as usize + data.len()].copy_from_slice(data);
    }

    pub fn trim(&mut self, disk: usize, at: u64, len: u64) {
        self.log.record_trim(disk, at, len).unwrap();
        self.model[disk][at as usize..(at + len) as usize].fill(0);
    }

    pub fn mark(&mut self, kind: MarkerKind, label: &str, secs: u64) -> Vec<Vec<u8>> {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        self.log.mark_at(kind, label, t).unwrap();
        self.model.clone()
    }

    /// Rotates and ships; returns the bundle paths.
    pub fn rotate_and_ship(&mut self, n: u32) -> Vec<PathBuf> {
        let sealed = self.dir.join(format!("sealed-{n}.rclog"));
        self.log.rotate(&sealed).unwrap();
        let out = self.dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        ship(
            &sealed,
            &self.key,
            &mut self.state,
            &out,
            &ShipOptions::default(),
            &mut ok,
        )
        .unwrap()
        .into_iter()
        .map(|b| b.path)
        .collect()
    }
}

/// Every blob of a bundle, decoded.
pub fn blobs(bundle: &Bundle, key: &Key) -> HashMap<BlobId, Vec<u8>> {
    let mut out = HashMap::new();
    bundle
        .for_each_blob(|id, stored| {
            out.insert(*id, blob::decode(key, id, stored)?);
            Ok(())
        })
        .unwrap();
    out
}

/// The disks after applying `bundles` (a base first) in order.
pub fn materialize(bundles: &[&Bundle], key: &Key) -> Vec<Vec<u8>> {
    let mut disks: Vec<Vec<u8>> = Vec::new();
    for (i, b) in bundles.iter().enumerate() {
        assert_eq!(b.header().kind == BundleKind::Base, i == 0);
        let data = blobs(b, key);
        if i == 0 {
            disks = b
                .disks()
                .iter()
                .map(|d| vec![0u8; d.size() as usize])
                .collect();
        }
        for (d, m) in disks.iter_mut().zip(b.disks()) {
            for e in m.extents.iter() {
                let r = e.start as usize..(e.start + e.len) as usize;
                match e.source {
                    Source::Zero => d[r].fill(0),
                    Source::Blob { id, offset } => {
                        let o = offset as usize;
                        d[r].copy_from_slice(&data[&id][o..o + e.len as usize]);
                    }
                }
            }
        }
    }
    disks
}

pub fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// A group with `intervals` shipped intervals of random writes, trims and markers; returns the
/// group, every bundle (base first) and the model disks at each point (base first).
pub fn history(dir: &Path, intervals: u32, seed: u64) -> (Group, Vec<PathBuf>, Vec<Vec<Vec<u8>>>) {
    history_every(dir, intervals, seed, 30)
}

/// As [`history`], with points `step` seconds apart (the base at 1,700,000,000 s).
pub fn history_every(
    dir: &Path,
    intervals: u32,
    seed: u64,
    step: u64,
) -> (Group, Vec<PathBuf>, Vec<Vec<Vec<u8>>>) {
    let mut g = seeded(dir, key(3));
    let mut bundles = vec![g.base.clone()];
    let mut models = vec![g.model.clone()];
    let mut r = rng(seed);
    let mut secs = 0;
    for i in 0..intervals {
        for _ in 0..1 + r(3) {
            for _ in 0..1 + r(4) {
                let d = r(2) as usize;
                let size = g.model[d].len() as u64;
                let at = r(size);
                let len = (1 + r(3 * CS as u64)).min(size - at);
                if r(5) == 0 {
                    g.trim(d, at, len);
                } else {
                    g.write(d, at, &noise(len as usize, r(1 << 30)));
                }
            }
            secs += step;
            let kind = if r(3) == 0 {
                MarkerKind::App
            } else {
                MarkerKind::Crash
            };
            models.push(g.mark(kind, &format!("p{secs}"), secs));
        }
        bundles.extend(g.rotate_and_ship(i));
    }
    (g, bundles, models)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// A Linux loop device over a file (needs root and `losetup`), detached on drop.
pub struct Loop(pub PathBuf);

impl Loop {
    pub fn attach(file: &Path) -> Loop {
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("running losetup (this test needs root and util-linux)");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.0)
            .status();
    }
}
