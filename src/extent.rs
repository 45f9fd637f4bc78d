//! Extent maps: which bytes of a disk come from where.
//!
//! An [`ExtentMap`] covers a disk of a fixed size with non-overlapping, non-empty ranges, each
//! mapped to a [`Source`]: bytes of a blob (from an offset into it) or zeros. Bytes no extent
//! covers are a *gap*: in the map of one recovery point's changes a gap means "unchanged since
//! the previous point"; in a folded map (the whole disk at a point) it means "never written",
//! which reads as zeros. An explicit [`Source::Zero`] extent, by contrast, overrides older data
//! (a trim, or a write of zeros).
//!
//! Newer data wins: [`ExtentMap::insert`] splits and trims the extents it overlaps,
//! [`ExtentMap::overlay`] lays a newer map over an older one, and [`ExtentMap::fold`] folds a
//! chain from its base to its newest point. Each insert costs O(log n) plus O(log n) for each
//! extent it removes (so O(log n) amortized: an extent is removed at most once).
//!
//! ```
//! use replicore::{BlobId, ExtentMap, Piece, Source};
//!
//! let blob = BlobId([7; 32]);
//! let mut map = ExtentMap::new(1 << 20)?;
//! map.insert(0, 8192, Source::Blob { id: blob, offset: 0 })?;
//! map.insert(4096, 512, Source::Zero)?; // a trim in the middle splits the older extent
//! assert_eq!(map.len(), 3);
//! assert_eq!(map.lookup(4608, 100)?.next(), Some(Piece::Mapped(replicore::Extent {
//!     start: 4608,
//!     len: 100,
//!     source: Source::Blob { id: blob, offset: 4608 },
//! })));
//! # Ok::<(), replicore::Error>(())
//! ```

use std::collections::BTreeMap;
use std::collections::btree_map;

use crate::error::{Error, Result};
use crate::format::limits::MAX_DISK_SIZE;
use crate::id::BlobId;

/// Where the bytes of an extent come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Zeros (a trim, or data that was all zero).
    Zero,
    /// Bytes of a blob, starting `offset` bytes into its plaintext.
    Blob {
        /// The blob.
        id: BlobId,
        /// Offset into the blob's plaintext of the extent's first byte.
        offset: u64,
    },
}

/// What an extent can map to: a position in some data that advances byte by byte.
///
/// [`Source`] (blobs and zeros) is the default; the change log maps ranges to positions in the
/// log file with its own source type.
pub trait ExtentSource: Copy + Eq + std::fmt::Debug {
    /// The source of the byte `by` bytes further on. Only called with `by` below a length that
    /// [`check_len`](Self::check_len) accepted.
    fn advance(self, by: u64) -> Self;
    /// Whether `next` continues this source after `len` bytes, so two extents can be one.
    fn continued_by(self, len: u64, next: Self) -> bool;
    /// Refuses (InvalidArgument) a length whose positions would overflow.
    fn check_len(self, len: u64) -> Result<()>;
}

impl ExtentSource for Source {
    fn advance(self, by: u64) -> Source {
        match self {
            Source::Zero => Source::Zero,
            Source::Blob { id, offset } => Source::Blob {
                id,
                offset: offset + by,
            },
        }
    }

    fn continued_by(self, len: u64, next: Source) -> bool {
        match (self, next) {
            (Source::Zero, Source::Zero) => true,
            (Source::Blob { id: a, offset: o }, Source::Blob { id: b, offset: p }) => {
                a == b && o.checked_add(len) == Some(p)
            }
            _ => false,
        }
    }

    fn check_len(self, len: u64) -> Result<()> {
        match self {
            Source::Blob { offset, .. } if offset.checked_add(len).is_none() => {
                Err(Error::invalid_argument(
                    "source",
                    format!("blob offset {offset} + length {len} overflows 64 bits"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent<S = Source> {
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes (never zero).
    pub len: u64,
    /// Where the bytes come from.
    pub source: S,
}

impl<S> Extent<S> {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// A stretch of a disk as seen by iteration with gaps: mapped, or not covered by any extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Piece<S = Source> {
    /// Bytes covered by an extent (clipped to the range asked for).
    Mapped(Extent<S>),
    /// Bytes no extent covers.
    Gap {
        /// First byte.
        start: u64,
        /// Length (never zero).
        len: u64,
    },
}

impl<S> Piece<S> {
    /// First byte.
    pub fn start(&self) -> u64 {
        match self {
            Piece::Mapped(e) => e.start,
            Piece::Gap { start, .. } => *start,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Mapped(e) => e.len,
            Piece::Gap { len, .. } => *len,
        }
    }

    /// Always false: pieces are never empty (present for API symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry<S> {
    len: u64,
    source: S,
}

/// Non-overlapping byte ranges of one disk, each mapped to a [`Source`]. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentMap<S = Source> {
    disk_size: u64,
    /// Keyed by start; entries never overlap, are never empty and end within `disk_size`.
    map: BTreeMap<u64, Entry<S>>,
    mapped: u64,
}

impl<S: ExtentSource> ExtentMap<S> {
    /// An empty map (all gap) of a disk of `disk_size` bytes, at most 64 TiB.
    pub fn new(disk_size: u64) -> Result<Self> {
        check_disk_size(disk_size)?;
        Ok(ExtentMap {
            disk_size,
            map: BTreeMap::new(),
            mapped: 0,
        })
    }

    /// The size of the disk the map covers.
    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }

    /// The number of extents.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no extent is mapped.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes covered by extents (the disk size minus the gaps).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped
    }

    /// Maps `len` bytes from `start` to `source`; the new range wins over every older extent it
    /// overlaps, which are trimmed or split. A zero `len` changes nothing.
    ///
    /// Refused with InvalidArgument: a range past the end of the disk, or a blob offset whose
    /// range overflows.
    pub fn insert(&mut self, start: u64, len: u64, source: S) -> Result<()> {
        let end = self.check_range(start, len)?;
        source.check_len(len)?;
        if len == 0 {
            return Ok(());
        }
        self.clear_range(start, end);
        self.map.insert(start, Entry { len, source });
        self.mapped += len;
        Ok(())
    }

    /// Unmaps `[start, start + len)`, turning it into a gap.
    pub fn remove(&mut self, start: u64, len: u64) -> Result<()> {
        let end = self.check_range(start, len)?;
        self.clear_range(start, end);
        Ok(())
    }

    /// Removes every extent's part inside `[start, end)`; the caller checked the range.
    fn clear_range(&mut self, start: u64, end: u64) {
        if start == end {
            return;
        }
        // Fast path (most writes land on unmapped bytes): the last extent beginning before
        // `end` ends furthest of all that do, so if it ends by `start` nothing overlaps.
        match self.map.range(..end).next_back() {
            Some((&s, e)) if s + e.len > start => {}
            _ => return,
        }
        // An extent that begins before `start` and reaches into the range: keep its head and,
        // if it also reaches past `end`, its tail.
        if let Some((&s, &old)) = self.map.range(..start).next_back() {
            let old_end = s + old.len;
            if old_end > start {
                self.map.insert(
                    s,
                    Entry {
                        len: start - s,
                        source: old.source,
                    },
                );
                if old_end > end {
                    self.map.insert(
                        end,
                        Entry {
                            len: old_end - end,
                            source: old.source.advance(end - s),
                        },
                    );
                    self.mapped -= end - start;
                    return;
                }
                self.mapped -= old_end - start;
            }
        }
        // Extents that begin inside the range: drop them, keeping the tail of the last one.
        while let Some((&s, &old)) = self.map.range(start..end).next() {
            self.map.remove(&s);
            let old_end = s + old.len;
            if old_end > end {
                self.map.insert(
                    end,
                    Entry {
                        len: old_end - end,
                        source: old.source.advance(end - s),
                    },
                );
                self.mapped -= end - s;
                break;
            }
            self.mapped -= old.len;
        }
    }

    fn check_range(&self, start: u64, len: u64) -> Result<u64> {
        match start.checked_add(len) {
            Some(end) if end <= self.disk_size => Ok(end),
            _ => Err(Error::invalid_argument(
                "len",
                format!(
                    "{len} bytes at offset {start} reach past the end of the {}-byte disk",
                    self.disk_size
                ),
            )),
        }
    }

    /// Changes the disk size. Shrinking drops every mapping past the new end; growing adds a gap.
    pub fn set_disk_size(&mut self, disk_size: u64) -> Result<()> {
        check_disk_size(disk_size)?;
        if disk_size < self.disk_size {
            self.clear_range(disk_size, self.disk_size);
        }
        self.disk_size = disk_size;
        Ok(())
    }

    /// Lays `newer` over this map: every extent of `newer` wins where it overlaps, gaps of
    /// `newer` leave this map's data showing. The result has `newer`'s disk size (a disk that
    /// shrank loses its tail; one that grew gains a gap).
    pub fn overlay(&mut self, newer: &ExtentMap<S>) -> Result<()> {
        self.set_disk_size(newer.disk_size)?;
        if self.map.is_empty() {
            self.map = newer.map.clone();
            self.mapped = newer.mapped;
            return Ok(());
        }
        for e in newer.iter() {
            self.clear_range(e.start, e.end());
            self.map.insert(
                e.start,
                Entry {
                    len: e.len,
                    source: e.source,
                },
            );
            self.mapped += e.len;
        }
        Ok(())
    }

    /// Folds a chain of maps, oldest (the base) first, into one: the disk as of the newest map.
    /// An empty chain is InvalidArgument.
    pub fn fold<'a>(chain: impl IntoIterator<Item = &'a ExtentMap<S>>) -> Result<ExtentMap<S>>
    where
        S: 'a,
    {
        let mut chain = chain.into_iter();
        let Some(base) = chain.next() else {
            return Err(Error::invalid_argument(
                "chain",
                "cannot fold an empty chain of extent maps",
            ));
        };
        let mut out = base.clone();
        for newer in chain {
            out.overlay(newer)?;
        }
        Ok(out)
    }

    /// Merges neighbouring extents whose sources are contiguous (zeros next to zeros, or the
    /// same blob continuing at the next offset). The bytes each disk offset maps to are unchanged.
    pub fn coalesce(&mut self) {
        let mut out: BTreeMap<u64, Entry<S>> = BTreeMap::new();
        let mut cur: Option<(u64, Entry<S>)> = None;
        for (&s, &e) in &self.map {
            cur = match cur {
                Some((cs, mut ce))
                    if cs + ce.len == s && ce.source.continued_by(ce.len, e.source) =>
                {
                    ce.len += e.len;
                    Some((cs, ce))
                }
                Some((cs, ce)) => {
                    out.insert(cs, ce);
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((cs, ce)) = cur {
            out.insert(cs, ce);
        }
        self.map = out;
    }

    /// The extents in disk order.
    pub fn iter(&self) -> impl Iterator<Item = Extent<S>> + '_ {
        self.map.iter().map(|(&start, e)| Extent {
            start,
            len: e.len,
            source: e.source,
        })
    }

    /// The whole disk in order, extents and the gaps between them.
    pub fn pieces(&self) -> Pieces<'_, S> {
        Pieces {
            iter: self.map.range(0..self.disk_size),
            pos: 0,
            end: self.disk_size,
            pending: None,
        }
    }

    /// The `len` bytes from `start` in order, extents clipped to the range (their blob offsets
    /// moved to match) and the gaps between them. A range past the end is InvalidArgument.
    pub fn lookup(&self, start: u64, len: u64) -> Result<Pieces<'_, S>> {
        let end = self.check_range(start, len)?;
        // The extent containing `start`, if any, begins before it.
        let first = match self.map.range(..=start).next_back() {
            Some((&s, e)) if s + e.len > start => s,
            _ => start,
        };
        Ok(Pieces {
            iter: self.map.range(first..end),
            pos: start,
            end,
            pending: None,
        })
    }
}

fn check_disk_size(disk_size: u64) -> Result<()> {
    if disk_size > MAX_DISK_SIZE {
        return Err(Error::limit_exceeded(
            "disk size",
            MAX_DISK_SIZE,
            disk_size,
            "bytes",
        ));
    }
    Ok(())
}

/// Iterator over a range of an [`ExtentMap`], yielding [`Piece`]s with gaps. See
/// [`ExtentMap::pieces`] and [`ExtentMap::lookup`].
#[derive(Debug, Clone)]
pub struct Pieces<'a, S = Source> {
    iter: btree_map::Range<'a, u64, Entry<S>>,
    /// Next byte to yield.
    pos: u64,
    end: u64,
    /// An extent already taken from `iter` that begins after `pos` (a gap comes first).
    pending: Option<(u64, Entry<S>)>,
}

impl<S: ExtentSource> Iterator for Pieces<'_, S> {
    type Item = Piece<S>;

    fn next(&mut self) -> Option<Piece<S>> {
        if self.pos >= self.end {
            return None;
        }
        let next = self
            .pending
            .take()
            .or_else(|| self.iter.next().map(|(&s, &e)| (s, e)));
        let Some((s, e)) = next else {
            let gap = Piece::Gap {
                start: self.pos,
                len: self.end - self.pos,
            };
            self.pos = self.end;
            return Some(gap);
        };
        if s > self.pos {
            let gap_end = s.min(self.end);
            let gap = Piece::Gap {
                start: self.pos,
                len: gap_end - self.pos,
            };
            self.pos = gap_end;
            self.pending = Some((s, e));
            return Some(gap);
        }
        // The extent covers `pos` (it may begin before it when a lookup starts mid-extent).
        let clip_end = (s + e.len).min(self.end);
        let piece = Extent {
            start: self.pos,
            len: clip_end - self.pos,
            source: e.source.advance(self.pos - s),
        };
        self.pos = clip_end;
        Some(Piece::Mapped(piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn blob(n: u8, offset: u64) -> Source {
        Source::Blob {
            id: BlobId([n; 32]),
            offset,
        }
    }

    fn extents(m: &ExtentMap) -> Vec<(u64, u64, Source)> {
        m.iter().map(|e| (e.start, e.len, e.source)).collect()
    }

    #[test]
    fn insert_splits_the_middle_of_an_older_extent() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(10, 50, blob(1, 0)).unwrap();
        m.insert(20, 5, Source::Zero).unwrap();
        assert_eq!(
            extents(&m),
            vec![
                (10, 10, blob(1, 0)),
                (20, 5, Source::Zero),
                (25, 35, blob(1, 15))
            ]
        );
        assert_eq!(m.mapped_bytes(), 50);
    }

    #[test]
    fn insert_covers_several_and_trims_both_ends() {
        let mut m = ExtentMap::new(100).unwrap();
        for i in 0..5 {
            m.insert(i * 10, 10, blob(i as u8, 0)).unwrap();
        }
        m.insert(5, 30, blob(9, 100)).unwrap();
        assert_eq!(
            extents(&m),
            vec![
                (0, 5, blob(0, 0)),
                (5, 30, blob(9, 100)),
                (35, 5, blob(3, 5)),
                (40, 10, blob(4, 0))
            ]
        );
        assert_eq!(m.mapped_bytes(), 50);
    }

    #[test]
    fn boundaries_exactly_touching() {
        let mut m = ExtentMap::new(30).unwrap();
        m.insert(0, 10, blob(1, 0)).unwrap();
        m.insert(10, 10, blob(2, 0)).unwrap();
        m.insert(20, 10, blob(3, 0)).unwrap();
        // Exactly replaces the middle one, touching both neighbours.
        m.insert(10, 10, Source::Zero).unwrap();
        assert_eq!(
            extents(&m),
            vec![
                (0, 10, blob(1, 0)),
                (10, 10, Source::Zero),
                (20, 10, blob(3, 0))
            ]
        );
        // The last byte of the disk, and a zero-length insert at the very end.
        m.insert(29, 1, blob(4, 0)).unwrap();
        m.insert(30, 0, blob(4, 0)).unwrap();
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn out_of_range_is_refused_and_changes_nothing() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(0, 100, Source::Zero).unwrap();
        let before = m.clone();
        for (s, l) in [(0, 101), (100, 1), (u64::MAX, 1), (1, u64::MAX)] {
            let e = m.insert(s, l, Source::Zero).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{s} {l}");
            assert!(m.lookup(s, l).is_err());
        }
        let e = m.insert(0, 10, blob(1, u64::MAX - 5)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(m, before);
        assert_eq!(
            ExtentMap::<Source>::new(MAX_DISK_SIZE + 1)
                .unwrap_err()
                .kind(),
            ErrorKind::LimitExceeded
        );
    }

    #[test]
    fn pieces_show_gaps_everywhere() {
        let mut m = ExtentMap::new(50).unwrap();
        assert_eq!(
            m.pieces().collect::<Vec<_>>(),
            vec![Piece::Gap { start: 0, len: 50 }]
        );
        m.insert(10, 10, Source::Zero).unwrap();
        m.insert(40, 10, blob(1, 0)).unwrap();
        let p: Vec<_> = m.pieces().collect();
        assert_eq!(
            p,
            vec![
                Piece::Gap { start: 0, len: 10 },
                Piece::Mapped(Extent {
                    start: 10,
                    len: 10,
                    source: Source::Zero
                }),
                Piece::Gap { start: 20, len: 20 },
                Piece::Mapped(Extent {
                    start: 40,
                    len: 10,
                    source: blob(1, 0)
                }),
            ]
        );
        assert_eq!(ExtentMap::<Source>::new(0).unwrap().pieces().count(), 0);
    }

    #[test]
    fn lookup_clips_and_moves_offsets() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(10, 20, blob(1, 1000)).unwrap();
        let p: Vec<_> = m.lookup(15, 30).unwrap().collect();
        assert_eq!(
            p,
            vec![
                Piece::Mapped(Extent {
                    start: 15,
                    len: 15,
                    source: blob(1, 1005)
                }),
                Piece::Gap { start: 30, len: 15 }
            ]
        );
        let p: Vec<_> = m.lookup(0, 12).unwrap().collect();
        assert_eq!(
            p,
            vec![
                Piece::Gap { start: 0, len: 10 },
                Piece::Mapped(Extent {
                    start: 10,
                    len: 2,
                    source: blob(1, 1000)
                })
            ]
        );
        assert_eq!(m.lookup(50, 0).unwrap().count(), 0);
    }

    #[test]
    fn overlay_follows_the_newer_disk_size() {
        let mut old = ExtentMap::new(100).unwrap();
        old.insert(0, 100, blob(1, 0)).unwrap();
        let mut newer = ExtentMap::new(60).unwrap();
        newer.insert(50, 10, Source::Zero).unwrap();
        old.overlay(&newer).unwrap();
        assert_eq!(
            extents(&old),
            vec![(0, 50, blob(1, 0)), (50, 10, Source::Zero)]
        );
        let grown = ExtentMap::new(80).unwrap();
        old.overlay(&grown).unwrap();
        assert_eq!(old.pieces().last(), Some(Piece::Gap { start: 60, len: 20 }));
    }

    #[test]
    fn fold_empty_chain_is_refused() {
        let e = ExtentMap::<Source>::fold(std::iter::empty()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn coalesce_merges_only_contiguous_sources() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(0, 10, blob(1, 0)).unwrap();
        m.insert(10, 10, blob(1, 10)).unwrap(); // continues blob 1
        m.insert(20, 10, blob(1, 50)).unwrap(); // same blob, jumps
        m.insert(30, 10, Source::Zero).unwrap();
        m.insert(40, 10, Source::Zero).unwrap(); // zero after zero
        m.insert(51, 10, Source::Zero).unwrap(); // not adjacent
        m.coalesce();
        assert_eq!(
            extents(&m),
            vec![
                (0, 20, blob(1, 0)),
                (20, 10, blob(1, 50)),
                (30, 20, Source::Zero),
                (51, 10, Source::Zero)
            ]
        );
    }

    #[test]
    fn empty_ranges_change_nothing() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(0, 100, blob(1, 0)).unwrap();
        let before = m.clone();
        m.remove(50, 0).unwrap();
        m.insert(50, 0, Source::Zero).unwrap();
        assert_eq!(m, before);
    }

    #[test]
    fn remove_makes_a_gap() {
        let mut m = ExtentMap::new(100).unwrap();
        m.insert(0, 100, blob(1, 0)).unwrap();
        m.remove(10, 80).unwrap();
        assert_eq!(
            extents(&m),
            vec![(0, 10, blob(1, 0)), (90, 10, blob(1, 90))]
        );
        assert_eq!(m.mapped_bytes(), 20);
    }
}
