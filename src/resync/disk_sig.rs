//! A point signature of disk images rather than of a vault point: the reprotect of a failback.
//! After an unplanned failover the original site's disks are stale (they hold the chain's
//! newest points and writes never shipped); their signature, taken with the group's key, lets
//! the recovery site ship only the chunks that differ from its recovered images, as a resync
//! point the original site applies ([`crate::bundle::apply()`]).
//!
//! Such disks are no point of any chain: the signature names a point id derived from what it
//! holds (keyed, so it says nothing about the data), with sequence number 0; the resync point
//! made against it is seq 1 of the reverse chain, and the apply state that
//! [`crate::bundle::sign_for_apply`] writes beside the disks expects exactly it.

use std::path::Path;

use rayon::prelude::*;

use super::Progress;
use super::image::Image;
use super::point_sig::{DiskIds, PointSignature, ZERO_CHUNK, chunk_id};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::limits::MAX_DISKS_PER_GROUP;
use crate::id::PointId;

/// Derivation context of the point id of a disk signature.
const CTX_DISKS_POINT: &str = "replicore 2026-12-02 disk signature point v1";
/// Chunks hashed together (and between progress reports): 64 MiB of 64 KiB chunks.
const BATCH_BYTES: usize = 64 << 20;

/// The point signature of the group's disks as they are now (`(name, image path)`, in the
/// group's order), on the `chunk_size` grid (the group's), with `key` (the group's). Reads every
/// disk once, in parallel batches; holes are zeros without reading. Progress counts the
/// disks' bytes.
pub fn sign_disks(
    group: &str,
    disks: &[(&str, &Path)],
    key: &Key,
    chunk_size: u32,
    progress: Progress<'_>,
) -> Result<PointSignature> {
    super::check_chunk_size(chunk_size)?;
    if group.is_empty() {
        return Err(Error::invalid_argument("group", "empty"));
    }
    if disks.is_empty() || disks.len() > MAX_DISKS_PER_GROUP {
        return Err(Error::invalid_argument(
            "disks",
            format!(
                "{} disks given: allowed 1 to {MAX_DISKS_PER_GROUP}",
                disks.len()
            ),
        ));
    }
    for (i, (n, _)) in disks.iter().enumerate() {
        if disks[..i].iter().any(|(m, _)| m == n) {
            return Err(Error::invalid_argument(
                "disks",
                format!("disk `{n}` is given twice"),
            ));
        }
    }
    let images = disks
        .iter()
        .map(|(_, p)| Image::open(p))
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = images.iter().map(|i| i.bytes().len() as u64).sum();
    let cancelled = || Error::Cancelled {
        what: "disk signature".into(),
    };
    if !progress(0, total) {
        return Err(cancelled());
    }
    let cs = chunk_size as usize;
    let mut done = 0u64;
    let mut out = Vec::with_capacity(disks.len());
    for ((name, _), image) in disks.iter().zip(&images) {
        let bytes = image.bytes();
        let mut ids = Vec::with_capacity(bytes.len().div_ceil(cs));
        let per_batch = (BATCH_BYTES / cs).max(1) * cs;
        for (b, batch) in bytes.chunks(per_batch).enumerate() {
            let base = (b * per_batch) as u64;
            let ranges = image.data_ranges(base, base + batch.len() as u64);
            let part: Vec<[u8; 32]> = batch
                .par_chunks(cs)
                .enumerate()
                .map(|(i, c)| {
                    let (c0, c1) = (base + (i * cs) as u64, base + (i * cs + c.len()) as u64);
                    let k = ranges.partition_point(|&(_, e)| e <= c0);
                    match ranges.get(k) {
                        Some(&(s, _)) if s < c1 => chunk_id(key, c),
                        _ => ZERO_CHUNK,
                    }
                })
                .collect();
            ids.extend(part);
            done += batch.len() as u64;
            if !progress(done, total) {
                return Err(cancelled());
            }
        }
        out.push(DiskIds {
            name: name.to_string(),
            size: bytes.len() as u64,
            ids,
        });
    }
    let point = disks_point(group, chunk_size, key, &out);
    Ok(PointSignature {
        group: group.to_string(),
        point,
        seq: 0,
        chunk_size,
        key_id: key.id(),
        disks: out,
    })
}

/// The id a disk signature names: keyed by the group key, over the group, grid and every id.
fn disks_point(group: &str, chunk_size: u32, key: &Key, disks: &[DiskIds]) -> PointId {
    let mut h = blake3::Hasher::new_keyed(&key.subkey(CTX_DISKS_POINT));
    h.update(&(group.len() as u64).to_le_bytes())
        .update(group.as_bytes())
        .update(&chunk_size.to_le_bytes());
    for d in disks {
        h.update(&(d.name.len() as u64).to_le_bytes())
            .update(d.name.as_bytes())
            .update(&d.size.to_le_bytes());
        for id in &d.ids {
            h.update(id);
        }
    }
    PointId(*h.finalize().as_bytes())
}
