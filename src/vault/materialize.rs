//! Materializing points (failover): a disk at a point is its chain folded from the base (newer
//! wins), written as a raw image, sparse where the data is zero. Blobs are read from their
//! packs, authenticated and decompressed on every core, in bounded memory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::chain;
use super::pack::{IndexEntry, read_stored};
use super::point::StoredPoint;
use super::records::SignedHashes;
use super::{PackId, Selector, Vault};
use crate::blob;
use crate::crypto::Key;
use crate::direct::{ALIGN, AlignedBuf, write_all_at};
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::fsutil::AtomicFile;
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::sys::LockMode;

/// How [`Vault::failover_with`] writes its images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailoverOptions {
    /// Replace an image already at an output path (false by default: AlreadyExists, before
    /// any image is written).
    pub replace: bool,
}

/// One disk image [`Vault::materialize`] or [`Vault::failover`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// The point.
    pub point: PointId,
    /// The disk.
    pub disk: String,
    /// The image written.
    pub path: PathBuf,
    /// The disk's size.
    pub size: u64,
    /// Bytes written from blobs (the rest is zeros, left as holes).
    pub data_bytes: u64,
    /// Blobs decoded.
    pub blobs: u64,
}

impl Vault {
    /// Writes disk `disk` of `group` as it was at `point` to a new raw image at `out` (which
    /// must not exist, a symbolic link counting; it is created 0600 under a temporary name and
    /// appears only once complete and synced). Needs the group's key: every
    /// blob is authenticated as it is read, and the points' manifests too. Progress counts the
    /// bytes written from blobs.
    pub fn materialize(
        &self,
        group: &str,
        point: PointId,
        disk: &str,
        key: &Key,
        out: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Materialized> {
        let _lock = self.lock(LockMode::Shared)?;
        let (maps, hashes) = self.folded(group, point, key)?;
        let Some((_, map)) = maps.iter().find(|(n, _)| n == disk) else {
            return Err(Error::NotFound {
                what: format!("disk `{disk}` in group `{group}`"),
            });
        };
        let total = map_data_bytes(map);
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        let (written, file) = self.write_disk(
            (point, disk),
            (map, &hashes),
            key,
            (out.as_ref(), false),
            &mut report,
        )?;
        file.commit()?;
        Ok(written)
    }

    /// Fails a group over: writes every disk of the point `selector` picks as
    /// `out_dir/<disk>.img` (characters other than letters, digits, `.`, `_` and `-` in a disk
    /// name become `_`), each created 0600 as [`materialize`](Self::materialize) does; an
    /// image already there is AlreadyExists, and `out_dir` is created when missing. All or
    /// nothing: on success every image is published, on any error or a cancellation none is
    /// (nor any temporary file). Progress counts bytes written from blobs across the disks.
    pub fn failover(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        out_dir: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Vec<Materialized>> {
        let options = FailoverOptions::default();
        self.failover_with(group, selector, key, out_dir, &options, progress)
    }

    /// As [`failover`](Self::failover), with `options` (to replace existing images).
    pub fn failover_with(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        out_dir: impl AsRef<Path>,
        options: &FailoverOptions,
        progress: Progress<'_>,
    ) -> Result<Vec<Materialized>> {
        let point = self.select(group, selector)?.id;
        let _lock = self.lock(LockMode::Shared)?;
        let (maps, hashes) = self.folded(group, point, key)?;
        let dir = out_dir.as_ref();
        crate::fsutil::create_private_dir(dir)
            .map_err(|e| Error::io("creating the output directory", Some(dir), e))?;
        let mut names: Vec<String> = Vec::new();
        for (disk, _) in &maps {
            let name = crate::fsutil::image_name(disk);
            if names.contains(&name) {
                return Err(Error::invalid_argument(
                    "out_dir",
                    format!("two disks of group `{group}` would both be written to {name}"),
                ));
            }
            let out = out_dir.as_ref().join(&name);
            if !options.replace && std::fs::symlink_metadata(&out).is_ok() {
                return Err(Error::AlreadyExists {
                    what: format!("image {}", out.display()),
                });
            }
            names.push(name);
        }
        let total: u64 = maps.iter().map(|(_, m)| map_data_bytes(m)).sum();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        // All or nothing: every image is written and synced under its temporary name first
        // (a failure or a cancellation drops them, and their temporary files go); then all are
        // published; a failure there removes the new images already published.
        let mut pending = Vec::with_capacity(maps.len());
        for ((disk, map), name) in maps.iter().zip(&names) {
            let out = out_dir.as_ref().join(name);
            pending.push(self.write_disk(
                (point, disk),
                (map, &hashes),
                key,
                (&out, options.replace),
                &mut report,
            )?);
        }
        let mut published: Vec<Materialized> = Vec::with_capacity(pending.len());
        for (m, file) in pending {
            if let Err(e) = file.commit() {
                if !options.replace {
                    for p in &published {
                        let _ = std::fs::remove_file(&p.path);
                    }
                }
                return Err(e);
            }
            published.push(m);
        }
        Ok(published)
    }

    /// Every disk of `group` at `point`: the chain's signed manifests folded, after checking
    /// that every point is signed by `key`'s verifying key; and every blob they carry with its
    /// signed sealed hashes.
    fn folded(&self, group: &str, point: PointId, key: &Key) -> Result<(Disks, SignedHashes)> {
        let (_, chain) = chain::load(&self.layout, group, true)?;
        let Some(at) = chain.iter().position(|p| p.file.id() == point) else {
            return Err(Error::NotFound {
                what: format!("point {} in group `{group}`", point.to_hex()),
            });
        };
        let chain = &chain[..=at];
        let mut folded: Option<Disks> = None;
        let mut hashes = SignedHashes::default();
        for p in chain {
            authenticate(p, key)?;
            hashes.extend(&p.file.body()?.hashes);
            let disks = p.file.decode_disks()?;
            match folded.as_mut() {
                None => {
                    folded = Some(disks.into_iter().map(|d| (d.name, d.extents)).collect());
                }
                Some(f) => {
                    for d in disks {
                        let Some((_, m)) = f.iter_mut().find(|(n, _)| *n == d.name) else {
                            return Err(Error::corrupt(
                                "recovery-point file",
                                None,
                                format!("disk `{}` is not in the group's base", d.name),
                            )
                            .with_path(&p.path));
                        };
                        m.overlay(&d.extents)?;
                    }
                }
            }
        }
        Ok((folded.expect("a chain has a base"), hashes))
    }

    /// Writes disk `disk` of `point`, whose map is `map` and whose blobs' signed forms are
    /// `hashes`, to `out` (replacing a file there only when asked).
    fn write_disk(
        &self,
        (point, disk): (PointId, &str),
        (map, hashes): (&ExtentMap<Source>, &SignedHashes),
        key: &Key,
        (out, replace): (&Path, bool),
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(Materialized, AtomicFile)> {
        let pieces: Vec<Piece> = map
            .iter()
            .filter_map(|e| match e.source {
                Source::Blob { id, offset } => Some(Piece {
                    start: e.start,
                    len: e.len,
                    id,
                    offset,
                }),
                Source::Zero => None,
            })
            .collect();
        let locs = self.locate(&pieces, hashes, disk, point)?;
        let file = AtomicFile::create(out, replace)?;
        let image = file.file();
        // Around the page cache where the file system allows it (see `crate::direct`).
        let mut direct = crate::sys::set_direct(image, true);
        let size = map.disk_size();
        let io = |e| Error::io("writing the image", Some(out), e);
        let mut written = 0u64;
        let mut blobs = 0u64;
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(AlignedBuf, u64, Vec<(u64, u64)>)>(1);
            let (back, free) = std::sync::mpsc::channel::<AlignedBuf>();
            let direct = &mut direct;
            let writer = scope.spawn(move || -> std::io::Result<()> {
                for (buf, w0, runs) in rx {
                    for (at, n) in runs {
                        let from = (at - w0) as usize;
                        write_all_at(image, &buf.as_slice()[from..from + n as usize], at, direct)?;
                    }
                    let _ = back.send(buf);
                }
                Ok(())
            });
            let mut spare = vec![
                AlignedBuf::new(WINDOW as usize),
                AlignedBuf::new(WINDOW as usize),
            ];
            let mut first = 0;
            let produced = (|| -> Result<()> {
                let mut w0 = 0;
                while w0 < size {
                    let w1 = (w0 + WINDOW).min(size);
                    while first < pieces.len() && pieces[first].end() <= w0 {
                        first += 1;
                    }
                    let here: Vec<Piece> = pieces[first..]
                        .iter()
                        .take_while(|p| p.start < w1)
                        .map(|p| p.clip(w0, w1))
                        .collect();
                    if !here.is_empty() {
                        let mut buf = match spare.pop() {
                            Some(b) => b,
                            None => free.recv().map_err(|_| writer_gone(out))?,
                        };
                        let runs = fill(&mut buf, w0, &here, &locs, key)?;
                        blobs += runs.1;
                        let n: u64 = here.iter().map(|p| p.len).sum();
                        written += n;
                        tx.send((buf, w0, runs.0)).map_err(|_| writer_gone(out))?;
                        if !progress(n) {
                            return Err(Error::Cancelled {
                                what: "materialize".into(),
                            });
                        }
                    }
                    w0 = w1;
                }
                Ok(())
            })();
            drop(tx);
            let w = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            w.map_err(io)?;
            produced
        })?;
        if direct {
            crate::sys::set_direct(image, false);
        }
        image.set_len(size).map_err(io)?;
        Ok((
            Materialized {
                point,
                disk: disk.to_string(),
                path: out.to_path_buf(),
                size,
                data_bytes: written,
                blobs,
            },
            file,
        ))
    }

    /// Where each blob `pieces` read is stored in a form its signature covers, with its pack
    /// opened.
    fn locate(
        &self,
        pieces: &[Piece],
        hashes: &SignedHashes,
        disk: &str,
        point: PointId,
    ) -> Result<Locations> {
        let index = self.refreshed_index()?;
        let mut blobs = HashMap::new();
        let mut packs: HashMap<PackId, (File, PathBuf)> = HashMap::new();
        for p in pieces {
            if blobs.contains_key(&p.id) {
                continue;
            }
            let Some((pack, e)) = hashes.of(&p.id).find_map(|h| index.get(&p.id, &h)) else {
                return Err(Error::corrupt(
                    format!("disk `{disk}` at point {}", point.to_hex()),
                    None,
                    format!(
                        "it reads blob {}, which the vault lacks in the form the points' \
                         signatures cover (missing, or only a forged or damaged copy)",
                        p.id
                    ),
                ));
            };
            if !packs.contains_key(pack) {
                let path = self.layout.pack(pack);
                let f =
                    File::open(&path).map_err(|e| Error::io("opening a pack", Some(&path), e))?;
                packs.insert(*pack, (f, path));
            }
            blobs.insert(p.id, (*pack, *e));
        }
        Ok(Locations { blobs, packs })
    }
}

/// Every disk of a point by name, with its map.
type Disks = Vec<(String, ExtentMap<Source>)>;

/// Bytes of the image assembled in memory and written together.
const WINDOW: u64 = 32 << 20;

/// A range of the disk read from a blob.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: u64,
    len: u64,
    id: BlobId,
    /// Offset in the blob's plaintext.
    offset: u64,
}

impl Piece {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The part within `w0..w1`.
    fn clip(&self, w0: u64, w1: u64) -> Piece {
        let start = self.start.max(w0);
        let end = self.end().min(w1);
        Piece {
            start,
            len: end - start,
            id: self.id,
            offset: self.offset + (start - self.start),
        }
    }
}

/// Where a blob's bytes go in a window: (target, offset in the blob's plaintext).
type Targets<'a> = Vec<(&'a mut [u8], u64)>;

/// Blob locations and open packs.
struct Locations {
    blobs: HashMap<BlobId, (PackId, IndexEntry)>,
    packs: HashMap<PackId, (File, PathBuf)>,
}

fn writer_gone(out: &Path) -> Error {
    Error::io(
        "writing the image",
        Some(out),
        std::io::Error::other("the writer thread stopped"),
    )
}

/// Assembles the window at `w0` (`pieces` in disk order, within it) in `buf`: the runs of
/// aligned blocks the pieces touch, with what they do not cover zeroed, each blob decoded
/// (authenticated) once on the pool. Returns the runs (disk offset, length) and the number of
/// blobs decoded.
fn fill(
    buf: &mut AlignedBuf,
    w0: u64,
    pieces: &[Piece],
    locs: &Locations,
    key: &Key,
) -> Result<(Vec<(u64, u64)>, u64)> {
    let a = ALIGN as u64;
    let b = buf.as_mut_slice();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut cursor = w0; // end of what is filled or zeroed
    for p in pieces {
        let lo = p.start / a * a;
        let hi = p.end().div_ceil(a) * a;
        match runs.last_mut() {
            Some(r) if lo <= r.0 + r.1 => {
                b[(cursor - w0) as usize..(p.start - w0) as usize].fill(0);
                r.1 = r.1.max(hi - r.0);
            }
            _ => {
                if let Some(r) = runs.last() {
                    b[(cursor - w0) as usize..(r.0 + r.1 - w0) as usize].fill(0);
                }
                b[(lo - w0) as usize..(p.start - w0) as usize].fill(0);
                runs.push((lo, hi - lo));
            }
        }
        cursor = p.end();
    }
    if let Some(r) = runs.last() {
        b[(cursor - w0) as usize..(r.0 + r.1 - w0) as usize].fill(0);
    }
    // Disjoint targets, grouped by blob.
    let mut by_blob: HashMap<BlobId, Targets<'_>> = HashMap::new();
    let mut rest = b;
    let mut base = w0;
    for p in pieces {
        let (_, tail) = rest.split_at_mut((p.start - base) as usize);
        let (mine, tail) = tail.split_at_mut(p.len as usize);
        rest = tail;
        base = p.end();
        by_blob.entry(p.id).or_default().push((mine, p.offset));
    }
    let groups: Vec<(BlobId, Targets<'_>)> = by_blob.into_iter().collect();
    let n = groups.len() as u64;
    groups.into_par_iter().try_for_each(|(id, targets)| {
        let (pack, e) = &locs.blobs[&id];
        let (f, path) = &locs.packs[pack];
        // Checked against the signed hash first: damage is Corrupt, not a decryption failure.
        let stored = read_stored(f, path, e, true)?;
        let plain = blob::decode(key, &id, &stored).map_err(|err| err.with_path(path))?;
        for (t, off) in targets {
            let piece = off
                .checked_add(t.len() as u64)
                .filter(|&end| end <= plain.len() as u64)
                .map(|end| &plain[off as usize..end as usize])
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("blob {id}"),
                        None,
                        format!(
                            "a manifest reads {off}+{} of its {} bytes",
                            t.len(),
                            plain.len()
                        ),
                    )
                })?;
            t.copy_from_slice(piece);
        }
        Ok(())
    })?;
    Ok((runs, n))
}

/// Checks that the point is sealed under `key` and signed by its verifying key (its file's
/// signatures were checked when it was read whole).
pub(super) fn authenticate(p: &StoredPoint, key: &Key) -> Result<()> {
    let h = &p.file.header;
    if h.key_id() != key.id() || h.verifying_key != key.verifying_key() {
        return Err(Error::Authentication {
            what: format!("group `{}`", h.group),
            detail: format!(
                "its points are sealed under key {} and signed by {}, not by key {}",
                h.key_id(),
                h.verifying_key,
                key.id()
            ),
        });
    }
    p.file.body()?;
    Ok(())
}

/// Bytes of a disk mapped to blobs.
fn map_data_bytes(map: &ExtentMap<Source>) -> u64 {
    map.iter()
        .filter(|e| matches!(e.source, Source::Blob { .. }))
        .map(|e| e.len)
        .sum()
}
