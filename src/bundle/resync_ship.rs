//! Resynchronization into the chain: at the primary, the group's disks (from a snapshot the
//! host took) are compared with a point signature the recovery site took of the group's newest
//! point, and the chunks that differ are shipped as the next point of the same chain; a new
//! change log tracks the writes from the snapshot on, as a seed's does. Replication then goes
//! on from it: no new group, no base shipped again.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{BundleHeader, BundleKind, DiskManifest};
use super::ship::{BATCH_BYTES, bundle_file_name};
use super::state::ShipState;
use super::writer::{BundleWriter, WrittenBundle};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::log::{ChangeLog, DiskSpec, LogConfig, MarkerKind};
use crate::resync::Progress;
use crate::resync::image::Image;
use crate::resync::point_sig::{PointSigHeader, PointSigReader, PointSignature, ZERO_CHUNK};

/// How a resync point is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncOptions {
    /// zstd level of the blobs.
    pub level: i32,
    /// Consistency of the snapshot the images come from (crash by default).
    pub consistency: MarkerKind,
    /// The point's label ("resync" by default).
    pub label: String,
    /// The point's time (now by default).
    pub time: Option<SystemTime>,
    /// Replace files already at the log and bundle paths (false by default: AlreadyExists).
    pub replace: bool,
}

impl Default for ResyncOptions {
    fn default() -> Self {
        ResyncOptions {
            level: crate::blob::DEFAULT_LEVEL,
            consistency: MarkerKind::Crash,
            label: "resync".into(),
            time: None,
            replace: false,
        }
    }
}

/// What [`resync_ship`] produced.
pub struct Resynced {
    /// The resync point's bundle: the next point of the chain.
    pub bundle: WrittenBundle,
    /// The group's shipping state from now on (save it beside the log).
    pub state: ShipState,
    /// The new change log, tracking since before the images were read.
    pub log: ChangeLog,
    /// Chunks whose bytes differed from the signature's (shipped, or zeroed).
    pub changed_chunks: u64,
    /// Chunks compared.
    pub chunks: u64,
}

impl std::fmt::Debug for Resynced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resynced")
            .field("bundle", &self.bundle)
            .field("state", &self.state)
            .field("changed_chunks", &self.changed_chunks)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

/// Resynchronizes `sig`'s group into its chain: creates a new change log at `log_path` (so
/// writes that land while the images are read are tracked), reads every disk (`(name, image
/// path)`: the signature's disks, by name; a disk resized since the point is carried with
/// its new size), and writes to `out_dir` one
/// bundle, the point after the signature's, holding only the chunks whose id differs from the
/// signature's (chunks that became zeros as zero ranges), compressed, sealed and signed like any
/// point. The vault ingests it without the key; it must still be the group's newest point (a
/// signature of an older point gives ChainBroken at ingest: take a new signature).
///
/// `sig` must be sealed under `key` (it was read with it). On failure or cancellation neither
/// the log nor the bundle is left; a crash leaves at most the new log, which the next resync
/// (with `options.replace`) replaces: a resync is simply run again.
pub fn resync_ship(
    sig: &PointSignature,
    disks: &[(&str, &Path)],
    key: &Key,
    log_path: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    options: &ResyncOptions,
    progress: Progress<'_>,
) -> Result<Resynced> {
    let header = sig.header();
    let mut ids = MemIds {
        sig,
        disk: 0,
        at: 0,
    };
    resync_inner(
        &header,
        &mut ids,
        disks,
        key,
        log_path.as_ref(),
        out_dir.as_ref(),
        options,
        progress,
    )
}

/// As [`resync_ship`], reading the signature's ids as they are needed from `sig` (memory
/// bounded whatever the disks' size). The file's end is checked before the bundle is
/// published: a truncated or damaged signature leaves nothing.
pub fn resync_ship_from<R: Read>(
    sig: PointSigReader<R>,
    disks: &[(&str, &Path)],
    key: &Key,
    log_path: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    options: &ResyncOptions,
    progress: Progress<'_>,
) -> Result<Resynced> {
    let header = sig.header().clone();
    let mut ids = StreamIds(Some(sig));
    resync_inner(
        &header,
        &mut ids,
        disks,
        key,
        log_path.as_ref(),
        out_dir.as_ref(),
        options,
        progress,
    )
}

/// Where the signature's ids come from, in file order.
trait Ids {
    /// Appends the next `n` ids to `out`.
    fn next(&mut self, n: u64, out: &mut Vec<[u8; 32]>) -> Result<()>;
    /// Skips the next `n` ids.
    fn skip(&mut self, n: u64) -> Result<()>;
    /// Checks that the source ended well (the file's trailer).
    fn done(&mut self) -> Result<()>;
}

struct MemIds<'a> {
    sig: &'a PointSignature,
    disk: usize,
    at: usize,
}

impl Ids for MemIds<'_> {
    fn next(&mut self, mut n: u64, out: &mut Vec<[u8; 32]>) -> Result<()> {
        while n > 0 {
            let Some(d) = self.sig.disks.get(self.disk) else {
                return Err(Error::invalid_argument("n", "past the signature's last id"));
            };
            let k = ((d.ids.len() - self.at) as u64).min(n) as usize;
            out.extend_from_slice(&d.ids[self.at..self.at + k]);
            self.at += k;
            n -= k as u64;
            if self.at == d.ids.len() {
                self.disk += 1;
                self.at = 0;
            }
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let mut sink = Vec::new();
        self.next(n, &mut sink)
    }

    fn done(&mut self) -> Result<()> {
        Ok(())
    }
}

struct StreamIds<R: Read>(Option<PointSigReader<R>>);

impl<R: Read> StreamIds<R> {
    fn reader(&mut self) -> Result<&mut PointSigReader<R>> {
        self.0
            .as_mut()
            .ok_or_else(|| Error::invalid_argument("signature", "read past its end"))
    }
}

impl<R: Read> Ids for StreamIds<R> {
    fn next(&mut self, n: u64, out: &mut Vec<[u8; 32]>) -> Result<()> {
        self.reader()?.read_ids(n, out)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.reader()?.skip_ids(n)
    }

    fn done(&mut self) -> Result<()> {
        match self.0.take() {
            Some(r) => r.finish(),
            None => Ok(()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn resync_inner(
    sig: &PointSigHeader,
    ids: &mut dyn Ids,
    disks: &[(&str, &Path)],
    key: &Key,
    log_path: &Path,
    out_dir: &Path,
    options: &ResyncOptions,
    progress: Progress<'_>,
) -> Result<Resynced> {
    if sig.key_id != key.id() {
        return Err(Error::invalid_argument(
            "key",
            format!(
                "the signature is under key {}, not key {}",
                sig.key_id,
                key.id()
            ),
        ));
    }
    crate::resync::check_chunk_size(sig.chunk_size)?;
    if disks.len() != sig.disks.len() {
        return Err(Error::invalid_argument(
            "disks",
            format!(
                "{} disks given; group `{}` has {} ({})",
                disks.len(),
                sig.group,
                sig.disks.len(),
                names(sig)
            ),
        ));
    }
    let images = sig
        .disks
        .iter()
        .map(|(dname, _)| {
            let Some((_, path)) = disks.iter().find(|(n, _)| n == dname) else {
                return Err(Error::invalid_argument(
                    "disks",
                    format!(
                        "disk `{}` of group `{}` is not given (its disks: {})",
                        dname,
                        sig.group,
                        names(sig)
                    ),
                ));
            };
            Image::open(path)
        })
        .collect::<Result<Vec<_>>>()?;
    // A disk may have been resized since the point: the new log and the point take its size.
    let specs: Vec<DiskSpec> = sig
        .disks
        .iter()
        .zip(&images)
        .map(|((name, _), i)| DiskSpec::new(name.clone(), i.bytes().len() as u64))
        .collect();
    let seq = sig.seq + 1;
    let mut config = LogConfig::new(sig.group.clone(), specs);
    config.first_point = seq + 1;
    let log = ChangeLog::create_at(log_path, &config, options.replace)?;
    let out = out_dir.join(bundle_file_name(&sig.group, seq));
    match write_point(sig, ids, &images, key, &log, &out, options, progress) {
        Ok((bundle, changed, chunks)) => {
            let state = ShipState {
                group: sig.group.clone(),
                key_id: key.id(),
                epoch: log.header().epoch,
                next_generation: 0,
                next_seq: seq + 1,
                head: bundle.point,
                chunk_size: sig.chunk_size,
                head_time_ns: bundle.time_ns,
            };
            Ok(Resynced {
                bundle,
                state,
                log,
                changed_chunks: changed,
                chunks,
            })
        }
        Err(e) => {
            drop(log);
            let _ = std::fs::remove_file(log_path);
            Err(e)
        }
    }
}

/// The bytes of chunk `c` (at image offset `c0`) for hashing: the image's own bytes when data
/// covers it whole, else a copy holding its data ranges (`ranges`, sorted, those from the
/// first that ends past `c0`) and zeros elsewhere, so that the holes of a chunk with a few
/// small writes are never faulted in through the map page by page. Same bytes either way.
fn data_of<'a>(c: &'a [u8], c0: u64, ranges: &[(u64, u64)]) -> Cow<'a, [u8]> {
    let c1 = c0 + c.len() as u64;
    if ranges.first().is_some_and(|&(s, e)| s <= c0 && e >= c1) {
        return Cow::Borrowed(c);
    }
    let mut out = vec![0u8; c.len()];
    for &(s, e) in ranges.iter().take_while(|&&(s, _)| s < c1) {
        let (s, e) = ((s.max(c0) - c0) as usize, (e.min(c1) - c0) as usize);
        if s < e {
            out[s..e].copy_from_slice(&c[s..e]);
        }
    }
    Cow::Owned(out)
}

fn names(sig: &PointSigHeader) -> String {
    let n: Vec<&str> = sig.disks.iter().map(|(n, _)| n.as_str()).collect();
    n.join(", ")
}

/// Writes the resync point; returns it, the chunks that differed and the chunks compared.
#[allow(clippy::too_many_arguments)]
fn write_point(
    sig: &PointSigHeader,
    ids: &mut dyn Ids,
    images: &[Image],
    key: &Key,
    log: &ChangeLog,
    out: &Path,
    options: &ResyncOptions,
    progress: Progress<'_>,
) -> Result<(WrittenBundle, u64, u64)> {
    let cs = sig.chunk_size as usize;
    let total: u64 = images.iter().map(|i| i.bytes().len() as u64).sum();
    let mut done = 0u64;
    let cancelled = || Error::Cancelled {
        what: "resync ship".into(),
    };
    if !progress(0, total) {
        return Err(cancelled());
    }
    let mut writer = BundleWriter::start(out, options.replace)?;
    let mut manifests = Vec::with_capacity(images.len());
    let (mut changed, mut compared) = (0u64, 0u64);
    writer.pipelined(key, options.level, |stage| {
        for (di, ((dname, _), image)) in sig.disks.iter().zip(images).enumerate() {
            let bytes = image.bytes();
            // The signature's ids of this disk, read batch by batch (a shrunk disk leaves
            // some to skip; a grown one reads zeros past them).
            let sig_chunks = sig.chunks(di);
            let mut consumed = 0u64;
            let mut old_ids: Vec<[u8; 32]> = Vec::new();
            // Its size now (a resized disk: chunks past the point's end read as zeros there).
            let mut map = ExtentMap::new(bytes.len() as u64)?;
            let per_batch = (BATCH_BYTES / cs).max(1) * cs;
            // The data ahead is read from the device while a batch is hashed.
            let mut ahead = image.read_ahead();
            for (b, batch) in bytes.chunks(per_batch).enumerate() {
                let base = (b * per_batch) as u64;
                ahead.advance(base);
                let first = (b * (per_batch / cs)) as u64;
                let in_batch = batch.len().div_ceil(cs) as u64;
                old_ids.clear();
                let n = sig_chunks.saturating_sub(first).min(in_batch);
                ids.next(n, &mut old_ids)?;
                consumed += n;
                let ranges = image.data_ranges(base, base + batch.len() as u64);
                let mut pieces: Vec<(u64, Cow<'_, [u8]>)> = Vec::new();
                let mut known: Vec<[u8; 32]> = Vec::new();
                for (i, c) in batch.chunks(cs).enumerate() {
                    let old = old_ids.get(i).copied().unwrap_or(ZERO_CHUNK);
                    let (c0, c1) = (base + (i * cs) as u64, base + (i * cs + c.len()) as u64);
                    let k = ranges.partition_point(|&(_, e)| e <= c0);
                    let in_hole = !matches!(ranges.get(k), Some(&(s, _)) if s < c1);
                    compared += 1;
                    if in_hole {
                        // A hole reads as zeros: a change only where the point had data.
                        if old != ZERO_CHUNK {
                            map.insert(c0, c.len() as u64, Source::Zero)?;
                            changed += 1;
                        }
                        continue;
                    }
                    pieces.push((c0, data_of(c, c0, &ranges[k..])));
                    known.push(old);
                }
                let slices: Vec<&[u8]> = pieces.iter().map(|p| &*p.1).collect();
                let ids = stage.add_unless(&slices, Some(&known))?;
                for (((start, c), id), old) in pieces.iter().zip(ids).zip(&known) {
                    match id {
                        Some(id) if id.0 == *old => {}
                        Some(id) => {
                            map.insert(*start, c.len() as u64, Source::Blob { id, offset: 0 })?;
                            changed += 1;
                        }
                        None if *old == ZERO_CHUNK => {}
                        None => {
                            map.insert(*start, c.len() as u64, Source::Zero)?;
                            changed += 1;
                        }
                    }
                }
                done += batch.len() as u64;
                if !progress(done, total) {
                    return Err(cancelled());
                }
            }
            ids.skip(sig_chunks - consumed)?;
            manifests.push(DiskManifest {
                name: dname.clone(),
                extents: map,
            });
        }
        Ok(())
    })?;
    // The whole signature read and its end checked before anything is published.
    ids.done()?;
    let time = options.time.unwrap_or_else(SystemTime::now);
    let time_ns = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let header = BundleHeader {
        kind: BundleKind::Incremental,
        consistency: options.consistency,
        chunk_size: sig.chunk_size,
        seq: sig.seq + 1,
        time_ns,
        parent: sig.point,
        epoch: log.header().epoch,
        generation: 0,
        group: sig.group.clone(),
        label: options.label.clone(),
        key_file: key.key_file().clone(),
        manifests_digest: [0; 32],
        blobs_digest: [0; 32],
        verifying_key: key.verifying_key(),
        disk_count: 0,
    };
    let bundle = writer.finish(header, &manifests, key)?;
    progress(total, total);
    Ok((bundle, changed, compared))
}
