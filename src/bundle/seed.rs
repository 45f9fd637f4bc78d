//! Seeding: the initial replication of a group's disk images into a base bundle, and the
//! group's first change log so that tracking starts at the seed's snapshot.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{BundleHeader, BundleKind, DiskManifest};
use super::ship::BATCH_BYTES;
use super::state::ShipState;
use super::writer::{BundleWriter, WrittenBundle};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::id::PointId;
use crate::log::{ChangeLog, DiskSpec, LogConfig, MarkerKind};
use crate::resync::Progress;
use crate::resync::image::Image;

/// The default seed chunk: 1 MiB.
pub const DEFAULT_SEED_CHUNK: u32 = 1 << 20;

/// How a seed is cut and labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    /// The chunk grid (a power of two from 4 KiB to 8 MiB; 1 MiB by default). Later shipped
    /// writes are cut on the same grid.
    pub chunk_size: u32,
    /// zstd level of the blobs.
    pub level: i32,
    /// Consistency of the snapshot the images come from (crash by default).
    pub consistency: MarkerKind,
    /// Label of the base point.
    pub label: String,
    /// Time of the base point (now by default).
    pub time: Option<SystemTime>,
    /// Replace files already at the log and bundle paths (false by default: AlreadyExists).
    pub replace: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            chunk_size: DEFAULT_SEED_CHUNK,
            level: crate::blob::DEFAULT_LEVEL,
            consistency: MarkerKind::Crash,
            label: "seed".into(),
            time: None,
            replace: false,
        }
    }
}

/// What [`seed`] produced.
pub struct Seeded {
    /// The base bundle.
    pub bundle: WrittenBundle,
    /// The group's shipping state (save it beside the log).
    pub state: ShipState,
    /// The group's first change log, tracking since before the images were read.
    pub log: ChangeLog,
}

/// Seeds a group: creates its first change log at `log_path` (so writes that land while the
/// images are copied are tracked), then reads every image (`(disk name, image path)`, from a
/// snapshot the host took) into the base bundle `out`: chunks of `options.chunk_size`,
/// all-zero chunks and holes skipped, identical chunks stored once, read through a memory map
/// and encoded on every core, streamed in bounded memory. Progress counts image bytes.
///
/// On failure or cancellation neither the log nor the bundle is left behind. A file (or
/// symbolic link) already at `log_path` or `out` is never overwritten (AlreadyExists) unless
/// `options.replace`; both are created 0600. After a crash (power cut, killed process) the
/// bundle is either published whole or not at all (only its temporary file
/// `.<name>.<random>.tmp` may remain, which the next seed to the same path removes), but the
/// new log is left: remove it, and the bundle if the returned
/// [`ShipState`] was not saved, and seed again from a fresh snapshot, since the log may hold
/// writes relative to the old one (`tests/seed_crash.rs` kills seeds at many points).
pub fn seed(
    group: &str,
    disks: &[(&str, &Path)],
    key: &Key,
    log_path: impl AsRef<Path>,
    out: impl AsRef<Path>,
    options: &SeedOptions,
    progress: Progress<'_>,
) -> Result<Seeded> {
    crate::resync::check_chunk_size(options.chunk_size)?;
    // Refused now rather than at failover, when it matters most.
    crate::fsutil::check_image_names(disks.iter().map(|(n, _)| *n))?;
    let images = disks
        .iter()
        .map(|(_, p)| Image::open(p))
        .collect::<Result<Vec<_>>>()?;
    let specs: Vec<DiskSpec> = disks
        .iter()
        .zip(&images)
        .map(|((n, _), i)| DiskSpec::new(*n, i.bytes().len() as u64))
        .collect();
    let log_path = log_path.as_ref();
    let log = ChangeLog::create_at(log_path, &LogConfig::new(group, specs), options.replace)?;
    let result = write_base(
        group,
        disks,
        &images,
        key,
        &log,
        out.as_ref(),
        options,
        progress,
    );
    match result {
        Ok((bundle, state)) => Ok(Seeded { bundle, state, log }),
        Err(e) => {
            drop(log);
            let _ = std::fs::remove_file(log_path);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_base(
    group: &str,
    disks: &[(&str, &Path)],
    images: &[Image],
    key: &Key,
    log: &ChangeLog,
    out: &Path,
    options: &SeedOptions,
    progress: Progress<'_>,
) -> Result<(WrittenBundle, ShipState)> {
    let cs = options.chunk_size as usize;
    let total: u64 = images.iter().map(|i| i.bytes().len() as u64).sum();
    let mut done = 0u64;
    if !progress(0, total) {
        return Err(Error::Cancelled {
            what: "seed".into(),
        });
    }
    let mut writer = BundleWriter::start(out, options.replace)?;
    let mut manifests = Vec::with_capacity(images.len());
    writer.pipelined(key, options.level, |stage| {
        for ((name, _), image) in disks.iter().zip(images) {
            let bytes = image.bytes();
            let mut map = ExtentMap::new(bytes.len() as u64)?;
            let per_batch = (BATCH_BYTES / cs).max(1) * cs;
            for (b, batch) in bytes.chunks(per_batch).enumerate() {
                let base = (b * per_batch) as u64;
                let ranges = image.data_ranges(base, base + batch.len() as u64);
                // Chunks not wholly in a hole; all-zero ones are left out by the stage.
                let chunks: Vec<(u64, &[u8])> = batch
                    .chunks(cs)
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let (c0, c1) = (base + (i * cs) as u64, base + (i * cs + c.len()) as u64);
                        let k = ranges.partition_point(|&(_, e)| e <= c0);
                        matches!(ranges.get(k), Some(&(s, _)) if s < c1).then_some((c0, c))
                    })
                    .collect();
                let slices: Vec<&[u8]> = chunks.iter().map(|c| c.1).collect();
                let ids = stage.add(&slices)?;
                for ((start, c), id) in chunks.iter().zip(ids) {
                    if let Some(id) = id {
                        map.insert(*start, c.len() as u64, Source::Blob { id, offset: 0 })?;
                    }
                }
                done += batch.len() as u64;
                if !progress(done, total) {
                    return Err(Error::Cancelled {
                        what: "seed".into(),
                    });
                }
            }
            manifests.push(DiskManifest {
                name: (*name).to_string(),
                extents: map,
            });
        }
        Ok(())
    })?;
    let time = options.time.unwrap_or_else(SystemTime::now);
    let time_ns = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let epoch = log.header().epoch;
    let header = BundleHeader {
        kind: BundleKind::Base,
        consistency: options.consistency,
        chunk_size: options.chunk_size,
        seq: 0,
        time_ns,
        parent: PointId::ZERO,
        epoch,
        generation: 0,
        group: group.to_string(),
        label: options.label.clone(),
        key_file: key.key_file().clone(),
        manifests_digest: [0; 32],
        blobs_digest: [0; 32],
        verifying_key: key.verifying_key(),
        disk_count: 0,
    };
    let bundle = writer.finish(header, &manifests, key)?;
    // The end, once the bundle is published (too late to cancel).
    progress(total, total);
    let state = ShipState {
        group: group.to_string(),
        key_id: key.id(),
        epoch,
        next_generation: 0,
        next_seq: log.header().first_point,
        head: bundle.point,
        chunk_size: options.chunk_size,
        head_time_ns: bundle.time_ns,
    };
    Ok((bundle, state))
}
