//! Materializing points (failover): a disk at a point is its chain folded from the base (newer
//! wins), written as a raw image, sparse where the data is zero. Blobs are read from their
//! packs, authenticated and decompressed on every core, in bounded memory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::chain;
use super::layout::Layout;
use super::onto::Onto;
use super::pack::{IndexEntry, read_stored};
use super::point::StoredPoint;
use super::records::SignedHashes;
use super::{BlobIndex, PackId, Selector, Vault};
use crate::blob;
use crate::crypto::Key;
use crate::direct::{ALIGN, AlignedBuf, write_all_at};
use crate::error::{Error, ErrorKind, Result};
use crate::extent::{ExtentMap, Source};
use crate::fsutil::AtomicFile;
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::sparse::data_parts;
use crate::sys::LockMode;

/// How [`Vault::failover_with`] writes its images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailoverOptions {
    /// Replace an image already at an output path (false by default: AlreadyExists, before
    /// any image is written).
    pub replace: bool,
    /// Disks written onto existing storage instead of a new image in the output directory:
    /// (disk name, path of a block device or a pre-created file of at least the disk's size).
    /// See [`Vault::materialize_onto`].
    pub targets: Vec<(String, PathBuf)>,
}

/// One disk image [`Vault::materialize`] or [`Vault::failover`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// The point.
    pub point: PointId,
    /// The disk.
    pub disk: String,
    /// The image written (a new file, or the existing target written onto).
    pub path: PathBuf,
    /// Whether `path` is an existing target written in place (block device or file) rather
    /// than a new image.
    pub onto_existing: bool,
    /// The disk's size.
    pub size: u64,
    /// Bytes taken from blobs (their blocks of zeros left as holes in a new image); the rest is
    /// zeros: holes in a new image; on an existing target, `zeroed_bytes` of it discarded or
    /// zeroed out and the rest written as zeros.
    pub data_bytes: u64,
    /// On an existing target, bytes the device or file system made zero without their being
    /// written (discard, zero-out, holes punched); 0 for a new image.
    pub zeroed_bytes: u64,
    /// Blobs decoded.
    pub blobs: u64,
}

/// Where failover will write a disk: checked before anything is written.
enum Planned {
    /// An existing target, opened and its size checked.
    Onto(Onto),
    /// A new image at this path.
    New(PathBuf),
}

/// Where a disk is written.
enum Out {
    /// A new image, published only when complete.
    New(AtomicFile),
    /// An existing block device or file, written in place.
    Onto(Onto),
}

impl Out {
    fn file(&self) -> &File {
        match self {
            Out::New(f) => f.file(),
            Out::Onto(o) => o.file(),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Out::New(f) => f.path(),
            Out::Onto(o) => o.path(),
        }
    }

    /// Publishes a new image (an existing target was synced when written).
    fn commit(self) -> Result<()> {
        match self {
            Out::New(f) => f.commit(),
            Out::Onto(_) => Ok(()),
        }
    }
}

impl Vault {
    /// Writes disk `disk` of `group` as it was at `point` to a new raw image at `out` (which
    /// must not exist, a symbolic link counting; it is created 0600 under a temporary name and
    /// appears only once complete and synced; zeros are left as holes). Needs the group's
    /// key: every blob is authenticated as it is read, and the points' manifests too.
    /// Progress counts the disk's bytes (its size is the total), reported at the start, after
    /// every 8 MiB at most, and at the end once the image is synced.
    pub fn materialize(
        &self,
        group: &str,
        point: PointId,
        disk: &str,
        key: &Key,
        out: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Materialized> {
        let out = out.as_ref();
        self.materialize_to(group, point, disk, key, progress, |_| {
            AtomicFile::create(out, false).map(Out::New)
        })
    }

    /// As [`materialize`](Self::materialize), onto existing storage at `target`: a block
    /// device (a LUN, a logical volume; opened exclusively, so not while mounted) or a regular
    /// file, of at least the disk's size (else InvalidArgument before anything is written).
    /// Every byte of the disk is written: ranges the point holds as zeros are discarded or
    /// zeroed out where the device or file system supports it (holes punched in a file), else
    /// written as zeros; bytes past the disk's size are left as they are. The target is synced
    /// before the last progress call. Written in place, it is not all or nothing: after an
    /// error or a cancellation its first bytes may hold the point and the rest what was there.
    pub fn materialize_onto(
        &self,
        group: &str,
        point: PointId,
        disk: &str,
        key: &Key,
        target: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Materialized> {
        let target = target.as_ref();
        self.materialize_to(group, point, disk, key, progress, |size| {
            Onto::open(target, disk, size).map(Out::Onto)
        })
    }

    fn materialize_to(
        &self,
        group: &str,
        point: PointId,
        disk: &str,
        key: &Key,
        progress: Progress<'_>,
        open: impl FnOnce(u64) -> Result<Out>,
    ) -> Result<Materialized> {
        let _lock = self.lock(LockMode::Shared)?;
        let (maps, hashes, _) = self.folded(group, point, key)?;
        let Some((_, map)) = maps.iter().find(|(n, _)| n == disk) else {
            return Err(missing_disk(group, disk, &maps));
        };
        let out = open(map.disk_size())?;
        let total = map.disk_size();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        if !report(0) {
            return Err(cancelled());
        }
        let (written, out) =
            self.write_disk((point, disk), (map, &hashes), key, out, &mut report)?;
        out.commit()?;
        Ok(written)
    }

    /// Fails a group over: writes every disk of the point `selector` picks as
    /// `out_dir/<disk>.img` (characters other than letters, digits, `.`, `_` and `-` in a disk
    /// name become `_`), each created 0600 as [`materialize`](Self::materialize) does; an
    /// image already there is AlreadyExists, and `out_dir` is created when missing. All or
    /// nothing: on success every image is published, on any error or a cancellation none is
    /// (nor any temporary file). Progress counts the disks' bytes (the sum of their sizes is
    /// the total), as [`materialize`](Self::materialize) reports them.
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

    /// As [`failover`](Self::failover), with `options`: replacing existing images, and
    /// writing some disks onto existing storage (`options.targets`, as
    /// [`materialize_onto`](Self::materialize_onto) does) instead of new images in `out_dir`
    /// (created only when a disk is written there; it may be empty when every disk has a
    /// target). Every target is opened and its size
    /// checked before anything is written; the targets are written and synced before the new
    /// images are published, so an error or a cancellation publishes no new image, but leaves
    /// the targets partly written (see [`materialize_onto`](Self::materialize_onto)).
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
        let (maps, hashes, _) = self.folded(group, point, key)?;
        let dir = out_dir.as_ref();
        for (i, (name, _)) in options.targets.iter().enumerate() {
            if !maps.iter().any(|(d, _)| d == name) {
                return Err(missing_disk(group, name, &maps));
            }
            if options.targets[..i].iter().any(|(d, _)| d == name) {
                return Err(Error::invalid_argument(
                    "targets",
                    format!("disk `{name}` is given two targets"),
                ));
            }
        }
        let target_of = |disk: &str| {
            options
                .targets
                .iter()
                .find(|(d, _)| d == disk)
                .map(|(_, p)| p.as_path())
        };
        // Check every output before anything is written: new images' names and paths, targets'
        // kinds and sizes, and that no two disks go to one file.
        let mut names: Vec<String> = Vec::new();
        let mut planned: Vec<Option<Planned>> = Vec::with_capacity(maps.len());
        let mut seen: Vec<((u64, u64), PathBuf)> = Vec::new();
        for (disk, map) in &maps {
            let (path, identity) = if let Some(t) = target_of(disk) {
                let onto = Onto::open(t, disk, map.disk_size())?;
                let id = onto.identity()?;
                planned.push(Some(Planned::Onto(onto)));
                (t.to_path_buf(), Some(id))
            } else {
                let name = crate::fsutil::image_name(disk);
                if names.contains(&name) {
                    return Err(Error::invalid_argument(
                        "out_dir",
                        format!("two disks of group `{group}` would both be written to {name}"),
                    ));
                }
                let out = dir.join(&name);
                let existing = std::fs::symlink_metadata(&out).ok();
                if !options.replace && existing.is_some() {
                    return Err(Error::AlreadyExists {
                        what: format!("image {}", out.display()),
                    });
                }
                names.push(name);
                planned.push(Some(Planned::New(out.clone())));
                let id = existing.map(|m| super::onto::file_identity(&m));
                (out, id)
            };
            if let Some(id) = identity {
                if let Some((_, other)) = seen.iter().find(|(i, _)| *i == id) {
                    return Err(Error::invalid_argument(
                        "targets",
                        format!(
                            "{} and {} are the same file: two disks cannot be written onto it",
                            other.display(),
                            path.display()
                        ),
                    ));
                }
                seen.push((id, path));
            }
        }
        if !names.is_empty() {
            if dir.as_os_str().is_empty() {
                return Err(Error::invalid_argument(
                    "out_dir",
                    format!(
                        "no output directory was given, and {} of group `{group}` have no \
                         target",
                        maps.iter()
                            .filter(|(d, _)| target_of(d).is_none())
                            .map(|(d, _)| format!("disk `{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            crate::fsutil::create_private_dir(dir)
                .map_err(|e| Error::io("creating the output directory", Some(dir), e))?;
        }
        let total: u64 = maps.iter().map(|(_, m)| m.disk_size()).sum();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        if !report(0) {
            return Err(failover_cancelled(cancelled()));
        }
        // Targets first, then the new images, each written and synced (new ones under their
        // temporary names: a failure or a cancellation drops them, and their temporary files
        // go); then all new images are published; a failure there removes the new images
        // already published.
        let mut order: Vec<usize> = (0..maps.len()).collect();
        order.sort_by_key(|&i| matches!(planned[i], Some(Planned::New(_))));
        let mut pending = Vec::with_capacity(maps.len());
        for i in order {
            let (disk, map) = &maps[i];
            let out = match planned[i].take().expect("each disk once") {
                Planned::Onto(onto) => Out::Onto(onto),
                Planned::New(path) => Out::New(AtomicFile::create(&path, options.replace)?),
            };
            pending.push((
                i,
                self.write_disk((point, disk), (map, &hashes), key, out, &mut report)
                    .map_err(failover_cancelled)?,
            ));
        }
        pending.sort_by_key(|(i, _)| *i);
        let mut published: Vec<Materialized> = Vec::with_capacity(pending.len());
        for (_, (m, out)) in pending {
            if let Err(e) = out.commit() {
                if !options.replace {
                    for p in published.iter().filter(|p| !p.onto_existing) {
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
    /// Also the point's chunk grid.
    pub(super) fn folded(
        &self,
        group: &str,
        point: PointId,
        key: &Key,
    ) -> Result<(Disks, SignedHashes, u32)> {
        let chain = chain::load(&self.layout, group)?;
        let Some(at) = chain.links.iter().position(|l| l.id == point) else {
            return Err(Error::NotFound {
                what: format!("point {} in group `{group}`", point.to_hex()),
            });
        };
        let mut chunk_size = 0;
        let mut folded: Option<Disks> = None;
        let mut hashes = SignedHashes::default();
        // One point file in memory at a time, oldest first.
        for l in &chain.links[..=at] {
            let mut p = chain.read(l)?;
            authenticate(&p, key)?;
            chunk_size = p.file.header.chunk_size;
            p.file.body()?;
            let body = p.file.body.take().expect("read whole");
            hashes.extend(&body.hashes);
            let disks = body.folded;
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
                            .with_path(&p.loc.path));
                        };
                        m.overlay(&d.extents)?;
                    }
                }
            }
        }
        // The newer files too (checked, not folded): the selection and a rollback check
        // (`expect_seq`) read their summaries, which their records and signatures must bear
        // out, or a summary-only forgery past the chosen point would pass for the head.
        for l in &chain.links[at + 1..] {
            chain.read(l)?;
        }
        Ok((folded.expect("a chain has a base"), hashes, chunk_size))
    }

    /// Writes disk `disk` of `point`, whose map is `map` and whose blobs' signed forms are
    /// `hashes`, to `out`, and syncs it. Progress is told the bytes of each window of the disk
    /// once it is queued for writing, the last one's once the disk is synced.
    fn write_disk(
        &self,
        (point, disk): (PointId, &str),
        (map, hashes): (&ExtentMap<Source>, &SignedHashes),
        key: &Key,
        mut out: Out,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(Materialized, Out)> {
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
        let size = map.disk_size();
        let path = out.path().to_path_buf();
        let io = |e| Error::io("writing the image", Some(&path), e);
        let mut written = 0u64;
        let mut blobs = 0u64;
        // In place, every byte is written and nothing past the disk's end.
        let in_place = matches!(out, Out::Onto(_));
        // Around the page cache where the file system allows it (see `crate::direct`).
        let mut direct = crate::sys::set_direct(out.file(), true);
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Window>(1);
            let (back, free) = std::sync::mpsc::channel::<AlignedBuf>();
            let direct = &mut direct;
            let out = &mut out;
            let writer = scope.spawn(move || write_windows(out, rx, back, direct));
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
                    let mut window = Window {
                        buf: None,
                        w0,
                        runs: Vec::new(),
                        zeros: Vec::new(),
                    };
                    if !here.is_empty() {
                        let mut buf = match spare.pop() {
                            Some(b) => b,
                            None => free.recv().map_err(|_| writer_gone(&path))?,
                        };
                        let (runs, n) = fill(&mut buf, w0, &here, &locs, key)?;
                        blobs += n;
                        written += here.iter().map(|p| p.len).sum::<u64>();
                        window.buf = Some(buf);
                        window.runs = runs;
                    }
                    if in_place {
                        for r in &mut window.runs {
                            r.1 = r.1.min(size - r.0);
                        }
                        window.zeros = gaps(w0, w1, &window.runs);
                    }
                    if window.buf.is_some() || !window.zeros.is_empty() {
                        tx.send(window).map_err(|_| writer_gone(&path))?;
                    }
                    if w1 < size && !progress(w1 - w0) {
                        return Err(cancelled());
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
            crate::sys::set_direct(out.file(), false);
        }
        let zeroed_bytes = match &out {
            Out::New(f) => {
                f.file().set_len(size).map_err(io)?;
                0
            }
            Out::Onto(o) => o.discarded,
        };
        out.file()
            .sync_all()
            .map_err(|e| Error::io("syncing the image", Some(&path), e))?;
        let last = if size == 0 {
            0
        } else {
            (size - 1) % WINDOW + 1
        };
        if !progress(last) {
            return Err(cancelled());
        }
        Ok((
            Materialized {
                point,
                disk: disk.to_string(),
                path,
                onto_existing: in_place,
                size,
                data_bytes: written,
                zeroed_bytes,
                blobs,
            },
            out,
        ))
    }

    /// Where each blob `pieces` read is stored in a form its signature covers, with its pack
    /// opened.
    pub(super) fn locate(
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
            let mut at = (*pack, *e);
            if let Err(missing) = open_pack(&self.layout, &mut packs, pack) {
                // Its pack file is gone (its index left): another stored copy in a form the
                // signatures cover serves as well (a blob may be in two packs, FORMAT §15).
                let other = index
                    .other_copies(&p.id, pack)
                    .filter(|(_, e)| hashes.of(&p.id).any(|h| h == e.hash))
                    .find(|(q, _)| open_pack(&self.layout, &mut packs, q).is_ok());
                at = other.ok_or(missing)?;
            }
            blobs.insert(p.id, at);
        }
        Ok(Locations {
            blobs,
            packs,
            index,
            layout: self.layout.clone(),
        })
    }
}

/// Opens pack `id` into `packs` unless it is there already.
fn open_pack(
    layout: &super::layout::Layout,
    packs: &mut HashMap<PackId, (File, PathBuf)>,
    id: &PackId,
) -> Result<()> {
    if !packs.contains_key(id) {
        let path = layout.pack(id);
        let f = File::open(&path).map_err(|e| Error::io("opening a pack", Some(&path), e))?;
        packs.insert(*id, (f, path));
    }
    Ok(())
}

/// Every disk of a point by name, with its map.
pub(super) type Disks = Vec<(String, ExtentMap<Source>)>;

/// Bytes of the image assembled in memory and written together (progress is reported, and
/// a cancellation seen, at least this often).
const WINDOW: u64 = 8 << 20;

/// One window of a disk for the writer: `runs` (disk offset, length) of `buf` (which starts at
/// disk offset `w0`) to write, and `zeros`, ranges to make zero (on an existing target only).
struct Window {
    buf: Option<AlignedBuf>,
    w0: u64,
    runs: Vec<(u64, u64)>,
    zeros: Vec<(u64, u64)>,
}

/// Zeros made at once: contiguous ranges are joined up to this size.
const ZERO_RUN: u64 = 256 << 20;

/// The writer thread: writes each window's runs, zeros its gaps (joined across windows), and
/// hands the buffer back.
fn write_windows(
    out: &mut Out,
    rx: std::sync::mpsc::Receiver<Window>,
    back: std::sync::mpsc::Sender<AlignedBuf>,
    direct: &mut bool,
) -> std::io::Result<()> {
    let mut pending: Option<(u64, u64)> = None;
    let new = matches!(out, Out::New(_));
    for w in rx {
        if let Some(buf) = &w.buf {
            for &(at, n) in &w.runs {
                let from = (at - w.w0) as usize;
                let run = &buf.as_slice()[from..from + n as usize];
                if new {
                    // A new image is all holes: zeros in a blob (a chunk holding a few small
                    // writes) stay holes (`sparse`).
                    for (i, len) in data_parts(run, at) {
                        write_all_at(out.file(), &run[i..i + len], at + i as u64, direct)?;
                    }
                } else {
                    write_all_at(out.file(), run, at, direct)?;
                }
            }
        }
        if let Out::Onto(onto) = out {
            for &(at, n) in &w.zeros {
                match &mut pending {
                    Some((s, l)) if *s + *l == at && *l + n <= ZERO_RUN => *l += n,
                    _ => {
                        if let Some((s, l)) = pending.replace((at, n)) {
                            onto.zero(s, l, direct)?;
                        }
                    }
                }
            }
        }
        if let Some(buf) = w.buf {
            let _ = back.send(buf);
        }
    }
    if let (Out::Onto(onto), Some((s, l))) = (out, pending) {
        onto.zero(s, l, direct)?;
    }
    Ok(())
}

/// The parts of `w0..w1` outside `runs` (sorted, disjoint, within it).
fn gaps(w0: u64, w1: u64, runs: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = w0;
    for &(s, n) in runs {
        if s > at {
            out.push((at, s - at));
        }
        at = at.max(s + n);
    }
    if at < w1 {
        out.push((at, w1 - at));
    }
    out
}

fn cancelled() -> Error {
    Error::Cancelled {
        what: "materialize".into(),
    }
}

/// A cancellation during a failover, named so.
fn failover_cancelled(e: Error) -> Error {
    match e {
        Error::Cancelled { .. } => Error::Cancelled {
            what: "failover".into(),
        },
        e => e,
    }
}

/// NotFound for a disk a point lacks, naming the disks it has.
fn missing_disk(group: &str, disk: &str, maps: &Disks) -> Error {
    let have: Vec<&str> = maps.iter().map(|(n, _)| n.as_str()).collect();
    Error::NotFound {
        what: format!(
            "disk `{disk}` in group `{group}` (its disks: {})",
            have.join(", ")
        ),
    }
}

/// A range of the disk read from a blob.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece {
    pub start: u64,
    pub len: u64,
    pub id: BlobId,
    /// Offset in the blob's plaintext.
    pub offset: u64,
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
pub(super) struct Locations {
    pub blobs: HashMap<BlobId, (PackId, IndexEntry)>,
    pub packs: HashMap<PackId, (File, PathBuf)>,
    /// The blob index they were found in, for another copy of a damaged one.
    index: Arc<BlobIndex>,
    layout: Layout,
}

impl Locations {
    /// Blob `id`'s stored bytes, checked against the hash its signatures cover, and the pack
    /// they came from. When that copy is damaged (a flipped byte, a pack cut short), another
    /// stored copy with the same sealed bytes serves (a blob may be in two packs, FORMAT §15:
    /// another process's ingest stored it again, a combine was cut), so a failover does not
    /// wait for a GC to drop the damaged copy.
    pub fn read(&self, id: &BlobId) -> Result<(Vec<u8>, &Path)> {
        let (pack, e) = &self.blobs[id];
        let (f, path) = &self.packs[pack];
        match read_stored(f, path, e, true) {
            Ok(stored) => Ok((stored, path)),
            Err(err) if err.kind() == ErrorKind::Corrupt => self
                .other_copy(id, e, pack)
                .map(|s| (s, path.as_path()))
                .ok_or(err),
            Err(err) => Err(err),
        }
    }

    fn other_copy(&self, id: &BlobId, e: &IndexEntry, pack: &PackId) -> Option<Vec<u8>> {
        self.index
            .other_copies(id, pack)
            .filter(|(_, x)| x.hash == e.hash)
            .find_map(|(q, x)| {
                let path = self.layout.pack(&q);
                let f = File::open(&path).ok()?;
                read_stored(&f, &path, &x, true).ok()
            })
    }
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
        // Checked against the signed hash first: damage is Corrupt, not a decryption failure.
        let (stored, path) = locs.read(&id)?;
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
                            "a manifest reads {} bytes at offset {off} of its {} bytes",
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
