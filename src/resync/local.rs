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
    let mut base = 0usize;
    while base < s.len() {
        let end = (base + per_batch).min(s.len());
        let batch = &s[base..end];
        src_ahead.advance(base as u64);
        if let Some(o) = old_ahead.as_mut() {
            o.advance(base as u64);
        }
        let src_data = src.data_ranges(base as u64, end as u64);
        let tgt_data = old.map_or(Vec::new(), |i| {
            i.data_ranges(base as u64, (end.min(t.len()).max(base)) as u64)
        });
        if src_data.is_empty() && tgt_data.is_empty() {
            // Holes in both (zeros on both sides): nothing to compare or write, up to the next
            // data in either image, whole batches at a time: no cost per chunk or per batch
            // for the empty stretches of a sparse disk.
            let next = [Some(src), old]
                .into_iter()
                .flatten()
                .map(|i| i.next_data(end as u64))
                .min()
                .unwrap_or(end as u64) as usize;
            let to = (next.max(end) / per_batch * per_batch).clamp(end, s.len());
            stats.chunks += (to - base).div_ceil(cs) as u64;
            done += 2 * (to - base) as u64;
            base = to;
            if !progress(done.min(total), total) {
                return Err(cancelled());
            }
            continue;
        }
        let needs: Vec<Need> = batch
            .par_chunks(cs)
            .enumerate()
            .map(|(i, c)| {
                let c0 = (base + i * cs) as u64;
                let c1 = c0 + c.len() as u64;
                // The target's bytes of the chunk: what it holds (`o0..o1`, empty past its end),
                // then zeros once it is resized.
                let tlen = t.len() as u64;
                let (o0, o1) = (c0.min(tlen), c1.min(tlen));
                let src_in = clip(&src_data, c0, c1);
                let old_in = clip(&tgt_data, o0, o1);
                if covers(&src_in, c0, c1) && covers(&old_in, o0, o1) {
                    // Data throughout in both: compared through the maps as they are.
                    let old = &t[o0 as usize..o1 as usize];
                    return if old == &c[..old.len()] && is_zero(&c[old.len()..]) {
                        Need::Nothing
                    } else if is_zero(c) {
                        Need::Zero
                    } else {
                        Need::Data
                    };
                }
                // Partly holes (a few small writes in a sparse disk): only the data ranges are
                // read; a hole's pages are never faulted in (holes read as zeros).
                let d = compare_ranges(s, t, &src_in, &old_in, c0, c1);
                if src_in.is_empty() || d.src_zero {
                    if d.old_zero {
                        Need::Nothing
                    } else {
                        Need::Zero
                    }
                } else if d.same {
                    Need::Nothing
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
        base = end;
        if !progress(done.min(total), total) {
            return Err(cancelled());
        }
    }
    progress(total, total);
    Ok(stats)
}

/// The parts of `ranges` (sorted, not overlapping) inside `[c0, c1)`.
fn clip(ranges: &[(u64, u64)], c0: u64, c1: u64) -> Vec<(u64, u64)> {
    let k = ranges.partition_point(|&(_, e)| e <= c0);
    ranges[k..]
        .iter()
        .take_while(|&&(s, _)| s < c1)
        .map(|&(s, e)| (s.max(c0), e.min(c1)))
        .collect()
}

/// Whether clipped `ranges` cover `[c0, c1)` whole (ranges from the file system are maximal,
/// so one range does).
fn covers(ranges: &[(u64, u64)], c0: u64, c1: u64) -> bool {
    c0 == c1 || ranges.first() == Some(&(c0, c1))
}

/// What [`compare_ranges`] found of a chunk.
#[derive(Debug, PartialEq, Eq)]
struct Compared {
    /// The source's and the target's bytes of the chunk are the same.
    same: bool,
    /// The source's bytes are all zeros.
    src_zero: bool,
    /// The target's bytes are all zeros.
    old_zero: bool,
}

/// Compares chunk `[c0, c1)` of the source `s` and the target `t` reading only their data
/// ranges there (`src_in`, `old_in`, clipped to the chunk; the target's to its length):
/// everything else reads as zeros without being touched.
fn compare_ranges(
    s: &[u8],
    t: &[u8],
    src_in: &[(u64, u64)],
    old_in: &[(u64, u64)],
    c0: u64,
    c1: u64,
) -> Compared {
    let src_zero = src_in
        .iter()
        .all(|&(a, b)| is_zero(&s[a as usize..b as usize]));
    let old_zero = old_in
        .iter()
        .all(|&(a, b)| is_zero(&t[a as usize..b as usize]));
    // Every boundary of either side's ranges cuts the chunk into pieces that are data or
    // zeros on each side.
    let mut cuts: Vec<u64> = src_in
        .iter()
        .chain(old_in)
        .flat_map(|&(a, b)| [a, b])
        .chain([c0, c1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let inside = |ranges: &[(u64, u64)], a: u64| {
        let k = ranges.partition_point(|&(_, e)| e <= a);
        ranges.get(k).is_some_and(|&(s, _)| s <= a)
    };
    let same = cuts.windows(2).all(|w| {
        let (a, b) = (w[0] as usize, w[1] as usize);
        match (inside(src_in, w[0]), inside(old_in, w[0])) {
            (true, true) => s[a..b] == t[a..b],
            (true, false) => is_zero(&s[a..b]),
            (false, true) => is_zero(&t[a..b]),
            (false, false) => true,
        }
    });
    Compared {
        same,
        src_zero,
        old_zero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a chunk's data ranges may lie on either side, against a byte-by-byte model
    /// (holes as zeros).
    #[test]
    fn comparing_by_ranges_agrees_with_comparing_bytes() {
        let n = 64u64;
        let shapes: Vec<Vec<(u64, u64)>> = vec![
            vec![],
            vec![(0, 64)],
            vec![(0, 8)],
            vec![(8, 24)],
            vec![(56, 64)],
            vec![(0, 8), (40, 48)],
            vec![(4, 60)],
        ];
        let mut checked = 0;
        for sr in &shapes {
            for tr in &shapes {
                for fill in 0..4u8 {
                    // Bytes in the data ranges: the same, zeros, or different on each side.
                    let s: Vec<u8> = (0..n as u8).map(|i| i % 7 + 1).collect();
                    let mut t = s.clone();
                    match fill {
                        1 => t.iter_mut().for_each(|b| *b = 0),
                        2 => t[20] ^= 0x5a,
                        3 => t[60] = 0,
                        _ => {}
                    }
                    let model = |bytes: &[u8], ranges: &[(u64, u64)]| -> Vec<u8> {
                        (0..n)
                            .map(|i| {
                                if ranges.iter().any(|&(a, b)| a <= i && i < b) {
                                    bytes[i as usize]
                                } else {
                                    0
                                }
                            })
                            .collect()
                    };
                    let (ms, mt) = (model(&s, sr), model(&t, tr));
                    let want = Compared {
                        same: ms == mt,
                        src_zero: is_zero(&ms),
                        old_zero: is_zero(&mt),
                    };
                    assert_eq!(
                        compare_ranges(&s, &t, sr, tr, 0, n),
                        want,
                        "{sr:?} {tr:?} {fill}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7 * 7 * 4);
        assert_eq!(
            clip(&[(0, 10), (20, 30), (40, 50)], 5, 45),
            vec![(5, 10), (20, 30), (40, 45)]
        );
        assert!(covers(&[(8, 16)], 8, 16) && !covers(&[(8, 12)], 8, 16) && covers(&[], 8, 8));
    }
}
