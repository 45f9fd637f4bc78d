//! Combining a group's small point files into segments (`vault::segment`, `docs/FORMAT.md`
//! §15.7 and §15.10), without the key, so that a vault holds about one file per 16 MiB of point
//! files whatever the number of points.
//!
//! - After an ingest, when the group has [`SEGMENT_AFTER`] point files of their own past every
//!   segment and the vault is otherwise idle (the exclusive lock, taken without waiting), they
//!   are written as one segment; then, when a size tier of segments (under 256 KiB, 4 MiB, a
//!   full segment of 16 MiB) holds [`MERGE_AT`] consecutive ones, the oldest of them, up to a
//!   full segment's worth, are merged into one. So a point file is copied about three times
//!   (into a segment, then once per tier), an ingest reads at most two full segments' worth
//!   and nothing older (it stays O(1) in the chain's length), and a group keeps fewer than
//!   [`SEGMENT_AFTER`] files of its own and [`MERGE_AT`] segments per tier besides its full
//!   segments.
//! - GC writes again the runs of a group's points that are not in full, clean segments, when a
//!   run is in two files or more or holds rows no point reads (points pruned, or replaced by
//!   the merged file pruning wrote): `vault::point_runs` says which. So after a GC a group holds
//!   one file per full segment's worth of point files, plus one, no two segments overlapping,
//!   and a GC copies what the ingests added since the last one, what pruning or a crash
//!   disturbed, and the segment after each such place.
//!
//! # Crash safety
//!
//! Every point file of a run is checked before any is copied (its trailer; its summary names
//! the point the chain walk found there), copied byte for byte and compared with what was
//! checked, and read back from the published segment. Only then, inside the group's
//! in-progress marker, are the files it replaces removed: the segments, newest generation
//! first, then the point files of their own. A run with a point file that does not check is
//! not written when it replaces segments (see [`write_segments`]), and a segment no point is
//! read from stays when it backs a point whose file does not check. A crash leaves
//! the new segment beside some of the old files; a point the walk finds in several reads the
//! same in each (the same bytes), and opening the vault removes what the walk no longer reads.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::Vault;
use super::chain::{self, Names};
use super::head::Head;
use super::point::{Loc, PointFile, open};
use super::point_runs::{self, At, Seg};
use super::segment::{MAX_ENTRY, MAX_GENERATION, SegName, Segment, encode_table};
use crate::bundle::format::BundleKind;
use crate::error::{Error, Result};
use crate::format::stream::In;
use crate::format::trailer::TRAILER_LEN;
use crate::fsutil::{AtomicFile, remove, sync_dir};
use crate::id::PointId;
use crate::sys::LockMode;

/// Point files of their own newer than the newest segment's start that an ingest lets
/// accumulate before it combines them.
pub(crate) const SEGMENT_AFTER: usize = 64;
/// Segments of a size tier merged into one once there are this many.
pub(crate) const MERGE_AT: usize = 16;

/// A point file to copy into a segment.
#[derive(Debug, Clone)]
struct Source {
    seq: u64,
    id: PointId,
    loc: Loc,
}

impl Vault {
    /// After an ingest into `group`: combines its newest point files into a segment when there
    /// are [`SEGMENT_AFTER`] of them past every segment and no other operation is at work in
    /// the vault, then merges a tier of small segments when it has [`MERGE_AT`] (see the
    /// module docs). Returns the point files copied.
    pub(super) fn combine_new_points(&self, group: &str) -> Result<u64> {
        let dir = self.layout.points(group);
        let head = || {
            Head::load(&self.layout, group)?.ok_or_else(|| Error::NotFound {
                what: format!("group `{group}`"),
            })
        };
        // The sequence numbers past every segment that may hold a point of the chain (not one
        // named past the head), and whether enough files of their own are there.
        let fresh = |names: &Names, head: &Head| {
            let floor = names
                .segment_names
                .iter()
                .filter(|n| n.first <= head.seq)
                .map(|n| n.last.saturating_add(1))
                .max()
                .unwrap_or(0);
            let n = names.file_seqs().filter(|&s| s >= floor).count();
            (floor, n >= self.segment_after)
        };
        if !fresh(&Names::list(&dir, |_| false)?, &head()?).1 {
            return Ok(0);
        }
        // Busy (another operation, or this handle's on another thread): a later ingest will.
        let Ok(_lock) = self.lock(LockMode::Exclusive) else {
            return Ok(0);
        };
        // No segment's table is read: a point past every segment is a file of its own.
        let names = Names::list(&dir, |_| false)?;
        let head = head()?;
        let (floor, due) = fresh(&names, &head);
        if !due {
            return Ok(0);
        }
        // The newest points, newest first, down to `floor`, at most a segment's worth.
        let mut run: Vec<Source> = Vec::new();
        let mut bytes = 0u64;
        let mut want = head.point;
        let mut above = u64::MAX;
        // The next point is below `above`: below `floor` when `above` is not above it.
        while above > floor && bytes < self.segment_full {
            let Some((_, loc, file)) = names.find(&dir, &want)? else {
                break;
            };
            let seq = file.header.seq;
            let len = entry_len(&loc)?;
            if seq < floor || seq >= above || file.header.group != group || len > MAX_ENTRY {
                break;
            }
            bytes += len;
            above = file.first.2;
            run.push(Source { seq, id: want, loc });
            if file.first.1 == BundleKind::Base {
                break;
            }
            want = file.first.0;
        }
        if run.len() < 2 {
            return Ok(0);
        }
        run.reverse();
        super::repair::begin(&self.layout, group)?;
        let full = self.segment_full;
        let mut copied = write_segments(&dir, (names.next_generation(), full), &[(run, vec![])])?;
        copied += self.merge_tier(&dir)?;
        super::repair::end(&self.layout, group)?;
        Ok(copied)
    }

    /// Merges the oldest [`MERGE_AT`] or more consecutive segments of the smallest size tier
    /// (under 256 KiB, 4 MiB, a full segment) that has as many, up to a full segment's worth,
    /// into one; nothing when two segments' ranges overlap (after a crash: GC's). Every row is
    /// copied (those no point reads go when GC writes the group's segments again).
    fn merge_tier(&self, dir: &Path) -> Result<u64> {
        let names = Names::list(dir, |_| false)?;
        let mut segs: Vec<(SegName, u64)> = Vec::with_capacity(names.segment_names.len());
        for n in &names.segment_names {
            let path = dir.join(n.file_name());
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io("reading the size of", Some(&path), e))?
                .len();
            segs.push((*n, len));
        }
        segs.sort_by_key(|(n, _)| n.first);
        if segs.windows(2).any(|w| w[0].0.last >= w[1].0.first) {
            return Ok(0);
        }
        let full = self.segment_full;
        let mut low = 0;
        for high in [256 << 10, 4 << 20, full] {
            let tier = |len: u64| (low..high.min(full)).contains(&len);
            // The oldest run of consecutive segments of this tier with MERGE_AT of them.
            let mut from = 0;
            while from < segs.len() {
                let n = segs[from..].iter().take_while(|(_, l)| tier(*l)).count();
                if n >= self.segment_merge {
                    let mut take = 0;
                    let mut bytes = 0;
                    while take < n && bytes < full {
                        bytes += segs[from + take].1;
                        take += 1;
                    }
                    return self.merge(dir, &segs[from..from + take], names.next_generation());
                }
                from += n.max(1);
            }
            low = high;
        }
        Ok(0)
    }

    /// Writes the rows of the segments `merged` (consecutive) into one of generation
    /// `generation`, then removes them.
    fn merge(&self, dir: &Path, merged: &[(SegName, u64)], generation: u64) -> Result<u64> {
        let mut old = Vec::with_capacity(merged.len());
        let mut sources = Vec::new();
        for (n, _) in merged {
            let s = Segment::open(&dir.join(n.file_name()), *n)?;
            sources.extend(s.entries.iter().map(|e| Source {
                seq: e.seq,
                id: e.id,
                loc: s.loc(e),
            }));
            old.push(s);
        }
        let old: Vec<&Segment> = old.iter().collect();
        // One segment: the merged ones hold under a full segment before the last.
        write_segments(dir, (generation, u64::MAX), &[(sources, old)])
    }

    /// GC's pass over `group`'s point files (see the module docs and `vault::point_runs`).
    /// Returns the point files combined.
    pub(super) fn combine_all_points(&self, group: &str) -> Result<u64> {
        let chain = chain::load(&self.layout, group)?;
        let dir = chain.dir().to_path_buf();
        let names = Names::list(&dir, |_| true)?;
        // Segments the chain reads nothing from (an interrupted combine's, a planted one) go
        // first: one of a higher generation would otherwise be read before what is written.
        let read = chain.files();
        let (kept, dead): (Vec<&Segment>, Vec<&Segment>) =
            names.segments.iter().partition(|s| read.contains(&s.path));
        let dead: Vec<&Segment> = dead
            .into_iter()
            .filter(|s| !backs_a_damaged_point(s, &chain))
            .collect();
        let index: HashMap<&Path, usize> = kept
            .iter()
            .enumerate()
            .map(|(k, s)| (s.path.as_path(), k))
            .collect();
        let segs: Vec<Seg> = kept
            .iter()
            .map(|s| Seg {
                first: s.name.first,
                last: s.name.last,
                bytes: s.entries.iter().map(|e| e.len).sum(),
            })
            .collect();
        let mut points = Vec::with_capacity(chain.links.len());
        let mut at = Vec::with_capacity(chain.links.len());
        for l in &chain.links {
            let loc = chain.loc(l);
            let len = entry_len(&loc)?;
            let segment = match loc.is_file() {
                true => None,
                false => index.get(loc.path.as_path()).copied(),
            };
            at.push(At {
                seq: l.seq,
                segment,
                len,
            });
            points.push(Source {
                seq: l.seq,
                id: l.id,
                loc,
            });
        }
        let plan = point_runs::plan(&at, &segs, self.segment_full);
        if dead.is_empty() && plan.runs.is_empty() {
            return Ok(0);
        }
        super::repair::begin(&self.layout, group)?;
        for s in &dead {
            remove(&s.path, "a point segment no point is read from")?;
        }
        let mut copied = 0;
        if !plan.runs.is_empty() {
            // Above every segment's that stays, those kept because they back a damaged point
            // included.
            let generation = names
                .segments
                .iter()
                .filter(|s| !dead.iter().any(|d| d.path == s.path))
                .map(|s| s.name.generation + 1)
                .max()
                .unwrap_or(0);
            let runs: Vec<(Vec<Source>, Vec<&Segment>)> = plan
                .runs
                .iter()
                .map(|r| {
                    let sources = (r.points.clone())
                        .filter(|&i| at[i].segment.is_some() || at[i].len <= MAX_ENTRY)
                        .map(|i| points[i].clone())
                        .collect();
                    (sources, r.replaced.iter().map(|&k| kept[k]).collect())
                })
                .collect();
            copied = write_segments(&dir, (generation, self.segment_full), &runs)?;
        }
        sync_dir(&dir)?;
        super::repair::end(&self.layout, group)?;
        Ok(copied)
    }
}

/// Whether `s`, a segment the chain walk reads nothing from, holds a row of a point whose file
/// of its own (read instead) does not check: that row may be the point's only sound copy, so
/// the segment stays (verify reports the damaged file).
pub(super) fn backs_a_damaged_point(s: &Segment, chain: &chain::Chain) -> bool {
    s.entries.iter().any(|e| {
        let Ok(at) = chain.links.binary_search_by_key(&e.seq, |l| l.seq) else {
            return false;
        };
        let l = &chain.links[at];
        let loc = chain.loc(l);
        l.id == e.id
            && loc.is_file()
            && check(&Source {
                seq: l.seq,
                id: l.id,
                loc,
            })
            .is_err()
    })
}

/// The length of the point file at `loc`.
fn entry_len(loc: &Loc) -> Result<u64> {
    match loc.within {
        Some((_, len)) => Ok(len),
        None => std::fs::metadata(&loc.path)
            .map(|m| m.len())
            .map_err(|e| Error::io("reading the size of", Some(&loc.path), e)),
    }
}

/// Writes each run of `runs` (consecutive points, oldest first, with the segments it
/// replaces) into segments of `full` bytes or more each (a run holding less is one smaller
/// segment; the last of a run takes in what would be short of `full`), from generation
/// `generation` on, no segment holding points of two runs; then removes the segments the runs
/// written replace (newest generation first) and the copied point files of their own. Every
/// point file of a run is checked first. When one does not check, it stays where it is; a run
/// that replaces segments is then not written at all (a row of one may be that point's only
/// sound copy, and a new segment beside the old would overlap it), one that replaces none (an
/// ingest's files of their own) copies the others. Returns the point files copied.
fn write_segments(
    dir: &Path,
    (mut generation, full): (u64, u64),
    runs: &[(Vec<Source>, Vec<&Segment>)],
) -> Result<u64> {
    let mut copied: Vec<&Source> = Vec::new();
    let mut old: Vec<&Segment> = Vec::new();
    let mut batch: Vec<(&Source, blake3::Hash, u64)> = Vec::new();
    for (run, replaced) in runs {
        let checked: Vec<Option<(blake3::Hash, u64)>> = run.iter().map(|s| check(s).ok()).collect();
        if !replaced.is_empty() && checked.iter().any(Option::is_none) {
            continue;
        }
        // The bytes of the run from each point on.
        let mut rest: u64 = checked.iter().flatten().map(|(_, len)| len).sum();
        let mut bytes = 0u64;
        for (i, (s, c)) in run.iter().zip(&checked).enumerate() {
            if let Some((hash, len)) = *c {
                rest -= len;
                bytes += len;
                batch.push((s, hash, len));
            }
            let cut = bytes >= full && rest >= full;
            if !batch.is_empty() && (cut || i + 1 == run.len()) {
                publish(dir, generation, &batch)?;
                generation += 1;
                copied.extend(batch.drain(..).map(|(s, _, _)| s));
                bytes = 0;
            }
        }
        old.extend(replaced);
    }
    // The old segments, newest generation first: an older one may hold the points a newer
    // one's link to.
    old.sort_by_key(|s| std::cmp::Reverse(s.name.generation));
    for s in old {
        remove(&s.path, "a combined point segment")?;
    }
    for s in &copied {
        if s.loc.is_file() {
            remove(&s.loc.path, "a combined point file")?;
        }
    }
    sync_dir(dir)?;
    Ok(copied.len() as u64)
}

/// Reads the point file `s` whole and checks it: its trailer, and that its summary names the
/// point `s` says. Gives its trailer (which, checked, stands for all its bytes) and its length.
fn check(s: &Source) -> Result<(blake3::Hash, u64)> {
    let bytes = read_entry(&s.loc)?;
    let trailer = sealed(&bytes, &s.loc)?;
    let n = bytes.len() - TRAILER_LEN;
    let damaged =
        |d: &str| Error::corrupt("recovery-point file", None, d.to_string()).with_path(&s.loc.path);
    let mut r = In {
        inner: &bytes[..n],
        at: 0,
        left: n as u64,
        what: "recovery-point file",
    };
    let p = PointFile::read_summary(&mut r)?;
    if p.id() != s.id || p.header.seq != s.seq {
        return Err(damaged("it holds another point than the chain found there"));
    }
    Ok((trailer, bytes.len() as u64))
}

/// The trailer of the point file `bytes` (read from `loc`), checked against the bytes before
/// it: equal trailers then mean equal files.
fn sealed(bytes: &[u8], loc: &Loc) -> Result<blake3::Hash> {
    let n = bytes.len() - TRAILER_LEN;
    let h = blake3::hash(&bytes[..n]);
    if h.as_bytes() != &bytes[n..] {
        return Err(Error::corrupt(
            "recovery-point file",
            Some(n as u64),
            "its trailer does not match its bytes",
        )
        .with_path(&loc.path));
    }
    Ok(h)
}

/// The bytes of the point file at `loc` (at most [`MAX_ENTRY`]).
fn read_entry(loc: &Loc) -> Result<Vec<u8>> {
    let (f, len) = open(loc)?;
    if !(TRAILER_LEN as u64..=MAX_ENTRY).contains(&len) {
        return Err(Error::limit_exceeded(
            "a point file in a segment",
            MAX_ENTRY,
            len,
            "bytes",
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", Some(&loc.path), e))?;
    if bytes.len() as u64 != len {
        return Err(Error::corrupt(
            "recovery-point file",
            Some(bytes.len() as u64),
            "it is shorter than it was",
        )
        .with_path(&loc.path));
    }
    Ok(bytes)
}

/// Publishes one segment of `batch` (each point file with the hash it was checked with), each
/// copied and compared, then read back from the published file.
fn publish(dir: &Path, generation: u64, batch: &[(&Source, blake3::Hash, u64)]) -> Result<PathBuf> {
    if generation > MAX_GENERATION {
        return Err(Error::limit_exceeded(
            "a point segment's generation",
            MAX_GENERATION,
            generation,
            "",
        ));
    }
    let name = SegName {
        first: batch[0].0.seq,
        last: batch[batch.len() - 1].0.seq,
        generation,
    };
    let path = dir.join(name.file_name());
    let rows: Vec<(u64, PointId, u64)> = batch
        .iter()
        .map(|(s, _, len)| (s.seq, s.id, *len))
        .collect();
    let changed = |loc: &Loc| {
        Error::corrupt(
            "recovery-point file",
            None,
            "it changed between its check and its copy into a segment",
        )
        .with_path(&loc.path)
    };
    let file = AtomicFile::create_unscanned(&path, false)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io("writing a point segment", Some(&path), e);
    w.write_all(&encode_table(generation, &rows)).map_err(io)?;
    for (s, hash, _) in batch {
        let bytes = read_entry(&s.loc)?;
        if sealed(&bytes, &s.loc).ok() != Some(*hash) {
            return Err(changed(&s.loc));
        }
        w.write_all(&bytes).map_err(io)?;
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.commit()?;
    // Read back: the table, and each point file's bytes. What does not read back goes.
    let seg = Segment::open(&path, name).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })?;
    let same = seg.entries.len() == batch.len()
        && seg.entries.iter().zip(batch).all(|(e, (s, hash, _))| {
            e.seq == s.seq
                && e.id == s.id
                && read_entry(&seg.loc(e))
                    .and_then(|b| sealed(&b, &seg.loc(e)))
                    .is_ok_and(|h| h == *hash)
        });
    if !same {
        let _ = std::fs::remove_file(&path);
        return Err(
            Error::corrupt("point segment", None, "it does not read back as written")
                .with_path(&path),
        );
    }
    Ok(path)
}
