//! Shipping a sealed change log: one bundle per recovery point it closes.

use std::path::Path;

use rayon::prelude::*;

use super::format::{BundleHeader, BundleKind, DiskManifest};
use super::state::ShipState;
use super::writer::{BundleWriter, Stage, WrittenBundle};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::log::{LogReader, LogSource, Marker, MarkerKind, changes_by_point};
use crate::resync::Progress;

/// Plaintext read and encoded together (in parallel) while shipping or seeding.
pub(crate) const BATCH_BYTES: usize = 32 << 20;

/// How bundles are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipOptions {
    /// zstd level of the blobs (1 by default; higher shrinks text more, slower).
    pub level: i32,
    /// Replace a bundle already at a bundle's path (false by default: a bundle there holding
    /// the same point is kept and reported as shipped, anything else is AlreadyExists).
    pub replace: bool,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            level: crate::blob::DEFAULT_LEVEL,
            replace: false,
        }
    }
}

/// The file name of a bundle: the group (characters other than letters, digits, `.`, `_` and
/// `-` replaced by `_`) and the point's sequence number.
pub fn bundle_file_name(group: &str, seq: u64) -> String {
    let safe = crate::fsutil::safe_stem(group);
    format!("{safe}-{seq:012}.rcb")
}

/// Ships a sealed change log as one bundle per recovery point it closes (oldest first) into
/// `out_dir`, sealed under `key`, and advances `state` past it. Save `state` afterwards.
///
/// Writes are coalesced (a later write to the same bytes wins) and long writes are cut on the
/// group's chunk grid, so whole chunks deduplicate with the seed. The log must continue the
/// chain `state` describes: another tracking session (epoch) or a skipped or repeated
/// generation is [`ResyncRequired`](crate::ErrorKind::ResyncRequired). Shipping the same log
/// again after a crash (or a cancellation) before `state` was saved makes the same bundles
/// (same names, same point ids, byte for byte: sealing is deterministic): one already there
/// holding the same point is kept and reported again, so a retry simply succeeds; a different
/// file at a bundle's path is AlreadyExists unless `options.replace`. Bundles are created
/// 0600.
pub fn ship(
    sealed_log: impl AsRef<Path>,
    key: &Key,
    state: &mut ShipState,
    out_dir: impl AsRef<Path>,
    options: &ShipOptions,
    progress: Progress<'_>,
) -> Result<Vec<WrittenBundle>> {
    let path = sealed_log.as_ref();
    let reader = LogReader::open(path)?;
    let h = reader.header().clone();
    if reader.seal().is_none() {
        return Err(Error::invalid_argument(
            "sealed_log",
            format!(
                "{} is not sealed: rotate the change log first",
                path.display()
            ),
        ));
    }
    if key.id() != state.key_id {
        return Err(Error::invalid_argument(
            "key",
            format!(
                "the group is shipped under key {}, not {}",
                state.key_id,
                key.id()
            ),
        ));
    }
    if h.group != state.group {
        return Err(Error::invalid_argument(
            "sealed_log",
            format!("it belongs to group `{}`, not `{}`", h.group, state.group),
        ));
    }
    if h.epoch == state.epoch && h.generation.checked_add(1) == Some(state.next_generation) {
        // Shipped already (an agent that crashed after shipping and ships again): say so;
        // nothing needs a resync.
        return Err(Error::AlreadyDone {
            what: format!(
                "sealed log {} (generation {}) was shipped, up to point {}; ship the next \
                 sealed log",
                path.display(),
                h.generation,
                state.next_seq.saturating_sub(1)
            ),
        });
    }
    if h.epoch != state.epoch
        || h.generation != state.next_generation
        || h.first_point != state.next_seq
    {
        return Err(Error::ResyncRequired {
            reason: format!(
                "sealed log {} (generation {}, first point {}) does not follow what was shipped \
                 (generation {} and point {} of the same tracking session expected)",
                path.display(),
                h.generation,
                h.first_point,
                state.next_generation,
                state.next_seq
            ),
        });
    }
    let changes = changes_by_point(&reader)?;
    let mut points: Vec<(u64, Marker, Vec<ExtentMap<LogSource>>)> = changes
        .points
        .into_iter()
        .map(|p| (p.point, p.marker, p.disks))
        .collect();
    if let Some(open) = changes.open {
        // The seal closes the changes after the last marker as a crash-consistent point.
        let time_ns = points.last().map_or(h.created_ns, |p| p.1.time_ns);
        let label = "seal".to_string();
        let marker = Marker {
            kind: MarkerKind::Crash,
            time_ns,
            label,
        };
        points.push((h.first_point + points.len() as u64, marker, open));
    }
    let total: u64 = points
        .iter()
        .flat_map(|p| p.2.iter())
        .flat_map(|m| m.iter())
        .filter(|e| matches!(e.source, LogSource::Data { .. }))
        .map(|e| e.len)
        .sum();
    let mut done = 0u64;
    if !progress(0, total) {
        return Err(Error::Cancelled {
            what: "ship".into(),
        });
    }
    let mut out = Vec::new();
    let mut head = state.head;
    let mut head_time = state.head_time_ns;
    for (seq, marker, maps) in points {
        let name = bundle_file_name(&h.group, seq);
        let bundle_path = out_dir.as_ref().join(name);
        // Re-shipping after a crash: with `replace`, the new bundle replaces one of the same
        // name once published; without, one already there holding the same point is kept.
        let mut writer = if options.replace {
            BundleWriter::start(&bundle_path, true)?
        } else {
            BundleWriter::start_or_same(&bundle_path)?
        };
        let mut shipper = PointShipper::new(state.chunk_size);
        let mut disks = Vec::with_capacity(maps.len());
        writer.pipelined(key, options.level, |stage| {
            for (d, map) in maps.iter().enumerate() {
                let mut manifest = ExtentMap::new(map.disk_size())?;
                for e in map.iter() {
                    match e.source {
                        LogSource::Zero => manifest.insert(e.start, e.len, Source::Zero)?,
                        LogSource::Data { pos } => {
                            shipper.add(stage, &reader, &mut manifest, e.start, e.len, pos)?;
                            done += e.len;
                            if !progress(done, total) {
                                return Err(Error::Cancelled {
                                    what: "ship".into(),
                                });
                            }
                        }
                    }
                }
                shipper.flush(stage, &reader, &mut manifest)?;
                disks.push(DiskManifest {
                    name: h.disks[d].name.clone(),
                    extents: manifest,
                });
            }
            Ok(())
        })?;
        let header = BundleHeader {
            kind: BundleKind::Incremental,
            consistency: marker.kind,
            chunk_size: state.chunk_size,
            seq,
            time_ns: marker.time_ns,
            parent: head,
            epoch: h.epoch,
            generation: h.generation,
            group: h.group.clone(),
            label: marker.label,
            key_file: key.key_file().clone(),
            manifests_digest: [0; 32],
            blobs_digest: [0; 32],
            verifying_key: key.verifying_key(),
            disk_count: 0,
        };
        let written = writer.finish(header, &disks, key)?;
        head = written.point;
        head_time = written.time_ns;
        out.push(written);
    }
    state.head = head;
    state.head_time_ns = head_time;
    state.next_seq = h.first_point + out.len() as u64;
    state.next_generation += 1;
    progress(total, total);
    Ok(out)
}

/// Plaintext read from the log and encoded together while shipping: smaller than a seed's
/// batch so that reading and encoding a point's next batch overlap with writing its last.
const SHIP_BATCH_BYTES: usize = 16 << 20;

/// Batches the pieces of one point's writes, reads them from the log and stores them.
struct PointShipper {
    chunk: u64,
    /// (disk offset, length, log position) of the pieces waiting.
    pending: Vec<(u64, u64, u64)>,
    pending_bytes: usize,
    buf: Vec<u8>,
}

impl PointShipper {
    fn new(chunk_size: u32) -> Self {
        PointShipper {
            chunk: u64::from(chunk_size),
            pending: Vec::new(),
            pending_bytes: 0,
            buf: Vec::new(),
        }
    }

    /// Adds the write `start..start+len` whose data is at `pos` in the log, cut on the grid.
    fn add(
        &mut self,
        stage: &mut Stage<'_>,
        log: &LogReader,
        manifest: &mut ExtentMap<Source>,
        start: u64,
        len: u64,
        pos: u64,
    ) -> Result<()> {
        let end = start + len;
        let mut at = start;
        while at < end {
            let cut = ((at / self.chunk) + 1) * self.chunk;
            let n = cut.min(end) - at;
            self.pending.push((at, n, pos + (at - start)));
            self.pending_bytes += n as usize;
            at += n;
            if self.pending_bytes >= SHIP_BATCH_BYTES {
                self.flush(stage, log, manifest)?;
            }
        }
        Ok(())
    }

    fn flush(
        &mut self,
        stage: &mut Stage<'_>,
        log: &LogReader,
        manifest: &mut ExtentMap<Source>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.buf.resize(self.pending_bytes, 0);
        // Read on every core: a fresh buffer's page faults and the copies are spread too.
        let mut targets = Vec::with_capacity(self.pending.len());
        let mut rest = &mut self.buf[..];
        for &(_, n, pos) in &self.pending {
            let (a, b) = rest.split_at_mut(n as usize);
            targets.push((pos, a));
            rest = b;
        }
        targets
            .into_par_iter()
            .try_for_each(|(pos, t)| log.read_at(pos, t))?;
        let mut slices = Vec::with_capacity(self.pending.len());
        let mut rest = &self.buf[..];
        for &(_, n, _) in &self.pending {
            let (a, b) = rest.split_at(n as usize);
            slices.push(a);
            rest = b;
        }
        // Writes of zeros become zero extents: no blob.
        let ids = stage.add(&slices)?;
        for (&(start, n, _), id) in self.pending.iter().zip(ids) {
            let source = match id {
                None => Source::Zero,
                Some(id) => Source::Blob { id, offset: 0 },
            };
            manifest.insert(start, n, source)?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}
