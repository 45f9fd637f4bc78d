//! GC's plan for a group's point files (`vault::combine_points`): which points it writes again
//! into segments, in runs of consecutive points, and which files stay as they are.
//!
//! A segment stays when it is settled (a full segment's bytes or more, at most a quarter of
//! them rows no point reads) and clean (every point whose sequence number is in its range is
//! read from it, or is a point file too large for a segment). Every other point is in a run,
//! with three rules applied until nothing changes:
//!
//! - a segment that does not stay is read within one run (what a run replaces is read by
//!   nobody else);
//! - a segment that stays and any of whose points is in a run is in the run whole;
//! - a run short of a full segment's bytes that is not the newest takes in what follows it (a
//!   segment that stays, or a point file too large for one).
//!
//! A run is written again when it is in two files or more, or a segment it reads holds rows no
//! point reads. Written runs become segments of a full segment's bytes or more (the newest run
//! may be smaller), and none reaches into a segment that stays. So after a GC a group holds one
//! file per full segment of point files, plus one, and a GC copies what the ingests added since
//! the last one, what pruning or a crash disturbed, and the segment after each such place.

use std::ops::Range;

use super::segment::MAX_ENTRY;

/// A point of the chain, oldest first.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub seq: u64,
    /// The segment it is read from (an index into the segments), or `None`: a file of its own.
    pub segment: Option<usize>,
    /// Its point file's length.
    pub len: u64,
}

/// A segment the chain reads from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seg {
    pub first: u64,
    pub last: u64,
    /// Bytes of all its rows.
    pub bytes: u64,
}

/// What GC writes again: runs of consecutive points, oldest first.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub runs: Vec<Run>,
}

/// A run of consecutive points to write again.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Run {
    /// Indexes into the points.
    pub points: Range<usize>,
    /// The segments it reads (indexes, ascending), which go once it is written; no other run
    /// reads them.
    pub replaced: Vec<usize>,
}

/// The plan for `points` (the chain, oldest first) read from `segs`, segments being full at
/// `full` bytes.
pub(super) fn plan(points: &[At], segs: &[Seg], full: u64) -> Plan {
    let n = points.len();
    let too_large = |i: usize| points[i].segment.is_none() && points[i].len > MAX_ENTRY;
    // Each segment's points (first and last index) and the bytes read from it.
    let mut span: Vec<Option<(usize, usize)>> = vec![None; segs.len()];
    let mut read = vec![0u64; segs.len()];
    for (i, p) in points.iter().enumerate() {
        if let Some(k) = p.segment {
            read[k] += p.len;
            span[k].get_or_insert((i, i)).1 = i;
        }
    }
    let mut stays: Vec<bool> = (0..segs.len())
        .map(|k| {
            let (Some((lo, hi)), s) = (span[k], &segs[k]) else {
                return false;
            };
            s.bytes >= full
                && s.bytes.saturating_sub(read[k]) * 4 <= s.bytes
                && (lo..=hi).all(|i| points[i].segment == Some(k) || too_large(i))
                && (lo == 0 || points[lo - 1].seq < s.first)
                && (hi + 1 == n || points[hi + 1].seq > s.last)
        })
        .collect();
    let mut moving: Vec<bool> = (0..n)
        .map(|i| !too_large(i) && !points[i].segment.is_some_and(|k| stays[k]))
        .collect();
    loop {
        let mut changed = false;
        for (k, span) in span.iter().enumerate() {
            let Some((lo, hi)) = *span else { continue };
            if stays[k] && !moving[lo..=hi].iter().any(|&m| m) {
                continue;
            }
            stays[k] = false;
            for m in &mut moving[lo..=hi] {
                changed |= !*m;
                *m = true;
            }
        }
        for r in runs(&moving) {
            let bytes: u64 = points[r.clone()]
                .iter()
                .filter(|p| p.len <= MAX_ENTRY)
                .map(|p| p.len)
                .sum();
            if r.end < n && bytes < full {
                // What follows: the point files too large for a segment in one step, and the
                // first point after them.
                let mut i = r.end;
                while i < n && too_large(i) {
                    moving[i] = true;
                    i += 1;
                }
                if i < n {
                    moving[i] = true;
                }
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut plan = Plan { runs: Vec::new() };
    for r in runs(&moving) {
        let mut read_from: Vec<usize> =
            points[r.clone()].iter().filter_map(|p| p.segment).collect();
        read_from.sort_unstable();
        read_from.dedup();
        let own = (r.clone())
            .filter(|&i| points[i].segment.is_none() && !too_large(i))
            .count();
        let garbage = read_from.iter().any(|&k| segs[k].bytes > read[k]);
        if own + read_from.len() >= 2 || garbage {
            plan.runs.push(Run {
                points: r,
                replaced: read_from,
            });
        }
    }
    plan
}

/// The maximal runs of `true`.
fn runs(moving: &[bool]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < moving.len() {
        if moving[i] {
            let start = i;
            while i < moving.len() && moving[i] {
                i += 1;
            }
            out.push(start..i);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: u64 = 100;

    /// The plan's runs as (start, end), and the segments it replaces.
    fn of(p: Plan) -> (Vec<(usize, usize)>, Vec<usize>) {
        let runs = p.runs.iter().map(|r| (r.points.start, r.points.end));
        let mut replaced: Vec<usize> = p.runs.iter().flat_map(|r| r.replaced.clone()).collect();
        replaced.sort_unstable();
        (runs.collect(), replaced)
    }

    /// Points of `len` bytes, sequence numbers from 1, each read from the segment given (or
    /// a file of its own), and the segments with their ranges and bytes as the points say.
    fn chain(at: &[(Option<usize>, u64)]) -> (Vec<At>, Vec<Seg>) {
        let points: Vec<At> = at
            .iter()
            .enumerate()
            .map(|(i, &(segment, len))| At {
                seq: i as u64 + 1,
                segment,
                len,
            })
            .collect();
        let count = at.iter().filter_map(|a| a.0).max().map_or(0, |k| k + 1);
        let segs = (0..count)
            .map(|k| {
                let mine = points.iter().filter(|p| p.segment == Some(k));
                Seg {
                    first: mine.clone().map(|p| p.seq).min().unwrap(),
                    last: mine.clone().map(|p| p.seq).max().unwrap(),
                    bytes: mine.map(|p| p.len).sum(),
                }
            })
            .collect();
        (points, segs)
    }

    #[test]
    fn full_segments_and_the_newest_stay_new_files_are_one_run() {
        let mut at = vec![(Some(0), 50), (Some(0), 50), (Some(1), 60), (Some(1), 60)];
        at.push((Some(2), 10));
        let (points, segs) = chain(&at);
        // Two full segments and a small newest one: nothing to do.
        let nothing = Plan { runs: vec![] };
        assert_eq!(plan(&points, &segs, FULL), nothing);
        // Files of their own after it: they and the newest segment are the run.
        at.extend([(None, 10), (None, 10)]);
        let (points, segs) = chain(&at);
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(4, 7)], vec![2]));
    }

    #[test]
    fn a_file_of_its_own_at_the_start_takes_in_one_segment_not_the_chain() {
        // Pruning's merged first point, then three full segments.
        let mut at = vec![(None, 30)];
        for k in 0..3 {
            at.extend([(Some(k), 60), (Some(k), 60)]);
        }
        let (points, segs) = chain(&at);
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(0, 3)], vec![0]));
    }

    #[test]
    fn a_merged_file_inside_a_full_segment_moves_that_segment() {
        // The second point's newer form is a file of its own: its row is not read, and the
        // segment is no longer clean.
        let mut at = vec![(Some(0), 60); 5];
        at.extend([(Some(1), 60), (Some(1), 60)]);
        let (mut points, segs) = chain(&at);
        points[1].segment = None;
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(0, 5)], vec![0]));
        // A short one: the run takes in the next segment.
        let (mut points, segs) = chain(&[
            (Some(0), 20),
            (Some(0), 20),
            (Some(0), 20),
            (Some(0), 20),
            (Some(1), 60),
            (Some(1), 60),
            (Some(2), 60),
            (Some(2), 60),
        ]);
        points[1].segment = None;
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(0, 6)], vec![0, 1]));
    }

    #[test]
    fn overlapping_segments_after_a_crash_are_written_again() {
        // Segment 0 (newer) holds points 1 to 3; segment 1, older, also holds 2 and 3 and 4
        // and 5 (its range 2..5 overlaps).
        let (points, mut segs) = chain(&[
            (Some(0), 60),
            (Some(0), 60),
            (Some(0), 60),
            (Some(1), 60),
            (Some(1), 60),
        ]);
        // Rows 2 and 3 are not read: a quarter of its bytes, so it is full enough to stay
        // but for its range.
        segs[1].first = 2;
        segs[1].bytes = 160;
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(3, 5)], vec![1]));
    }

    #[test]
    fn a_segment_read_on_both_sides_of_a_full_one_is_one_run() {
        // Segment 0 is read by points 1 and 4 (a crash's leftover shape); segment 1 is full.
        let (points, mut segs) = chain(&[
            (Some(0), 10),
            (Some(1), 60),
            (Some(1), 60),
            (Some(0), 10),
            (None, 10),
        ]);
        segs[0].last = 4;
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(0, 5)], vec![0, 1]));
    }

    #[test]
    fn point_files_too_large_for_a_segment_stay_where_they_are() {
        let big = MAX_ENTRY + 1;
        let (points, segs) = chain(&[(None, big), (Some(0), 60), (Some(0), 60), (None, big)]);
        assert!(plan(&points, &segs, FULL).runs.is_empty());
        // A small file between two large ones: nothing to combine it with.
        let (points, segs) = chain(&[(None, big), (None, 10), (None, big), (None, 10)]);
        let p = plan(&points, &segs, FULL);
        assert_eq!(of(p), (vec![(1, 4)], vec![]));
    }
}
