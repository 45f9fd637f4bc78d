//! Resynchronizing two local images ([`resync`](super::resync)) in one streaming pass: both
//! are read through their memory maps a batch at a time and compared chunk by chunk on every
//! core, the chunks that differ written to the target as they are found. No signature is held:
//! memory stays bounded whatever the disks' size, and ranges that are holes in both images
//! are skipped without reading.

use rayon::prelude::*;

use super::apply::Applier;
use super::delta::{Change, Sink};
use super::hashing::{BATCH_BYTES, ZERO_HASH, is_zero};
use super::image::Image;
use super::{Progress, ResyncStats};
use crate::error::{Error, Result};

/// What chunk `i` of a batch needs.
enum Need {
    Nothing,
    Data,
    Zero,
}

/// Brings the target (`target`, open in `applier`; `old` its bytes before, empty when new) to
/// `src`'s bytes; progress counts both images' bytes compared (`total`).
pub(super) fn run(
    src: &Image,
    old: Option<&Image>,
    applier: &mut Applier,
    chunk_size: u32,
    total: u64,
    progress: Progress<'_>,
) -> Result<ResyncStats> {
    let cs = chunk_size as usize;
    let s = src.bytes();
    let t: &[u8] = old.map_or(&[], |i| i.bytes());
    let per_batch = (BATCH_BYTES / cs).max(1) * cs;
    let mut stats = ResyncStats::default();
    let mut done = 0u64;
    let cancelled = || Error::Cancelled {
        what: "resync".into(),
    };
    if !progress(0, total) {
        return Err(cancelled());
    }
    // The data ahead is read from the device while a batch is compared.
    let mut src_ahead = src.read_ahead();
    let mut old_ahead = old.map(Image::read_ahead);
    for (b, batch) in s.chunks(per_batch).enumerate() {
        let base = b * per_batch;
        let end = base + batch.len();
        src_ahead.advance(base as u64);
        if let Some(o) = old_ahead.as_mut() {
            o.advance(base as u64);
        }
        let src_data = src.data_ranges(base as u64, end as u64);
        let tgt_data = old.map_or(Vec::new(), |i| {
            i.data_ranges(base as u64, (end.min(t.len()).max(base)) as u64)
        });
        let has = |ranges: &[(u64, u64)], c0: u64, c1: u64| {
            let k = ranges.partition_point(|&(_, e)| e <= c0);
            matches!(ranges.get(k), Some(&(s, _)) if s < c1)
        };
        let needs: Vec<Need> = batch
            .par_chunks(cs)
            .enumerate()
            .map(|(i, c)| {
                let c0 = base + i * cs;
                let c1 = c0 + c.len();
                let in_src = has(&src_data, c0 as u64, c1 as u64);
                // The target's bytes of the chunk: what it holds, then zeros once it is resized.
                let old = &t[c0.min(t.len())..c1.min(t.len())];
                let old_is_hole =
                    old.is_empty() || !has(&tgt_data, c0 as u64, (c0 + old.len()) as u64);
                if !in_src {
                    // The source reads zeros here.
                    return if old_is_hole || is_zero(old) {
                        Need::Nothing
                    } else {
                        Need::Zero
                    };
                }
                let same = if old_is_hole {
                    is_zero(c)
                } else {
                    old == &c[..old.len()] && is_zero(&c[old.len()..])
                };
                if same {
                    Need::Nothing
                } else if is_zero(c) {
                    Need::Zero
                } else {
                    Need::Data
                }
            })
            .collect();
        let changes: Vec<Change<'_>> = needs
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let index = (base / cs + i) as u64;
                let c0 = i * cs;
                let bytes = &batch[c0..(c0 + cs).min(batch.len())];
                match n {
                    Need::Nothing => None,
                    Need::Data => Some(Change::Data {
                        index,
                        hash: &ZERO_HASH,
                        old: &ZERO_HASH,
                        bytes,
                    }),
                    Need::Zero => Some(Change::Zero {
                        index,
                        len: bytes.len() as u64,
                        old: &ZERO_HASH,
                    }),
                }
            })
            .collect();
        stats.chunks += needs.len() as u64;
        for c in &changes {
            match c {
                Change::Data { bytes, .. } => {
                    stats.data_chunks += 1;
                    stats.data_bytes += bytes.len() as u64;
                }
                Change::Zero { .. } => stats.zero_chunks += 1,
            }
        }
        applier.batch(&changes)?;
        done += 2 * batch.len() as u64;
        if !progress(done.min(total), total) {
            return Err(cancelled());
        }
    }
    progress(total, total);
    Ok(stats)
}
