//! Point segments (`docs/FORMAT.md` §15.10): many small point files of one group, each kept
//! verbatim (its own summary, signed records and trailer), in one file with a table of their
//! sequence numbers, ids and places. So a chain of 100,000 points is a few dozen files, not
//! 100,000, and nothing changes in what a keyless reader can check: each point file read from a
//! segment is checked as it would be on its own, and must be the point the chain walk looks for.
//!
//! A segment is written whole and published like every vault file; it is never changed. It is
//! named `<first seq>-<last seq>-<generation>.rcseg`, the generation one above every segment
//! of the group when it was written: a point found in several files is read from its file of
//! its own first (pruning and compaction write a kept point's new form there), then from the
//! segment of the highest generation (a segment copies what the walk read).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::layout::{VERSION_MAJOR, VERSION_MINOR};
use super::point::Loc;
use crate::error::{Error, Result};
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::{Reader, Writer};
use crate::id::PointId;

/// A segment takes no more point files once it holds this many bytes.
pub(crate) const SEGMENT_FULL: u64 = 16 << 20;
/// Point files larger than this stay files of their own (they hold a segment's worth).
pub(crate) const MAX_ENTRY: u64 = SEGMENT_FULL;
/// The most bytes a segment holds: point files under two full segments' worth before the last
/// (a merge of segments each under a full one), the last one, and their table.
pub(crate) const MAX_SEGMENT: u64 =
    2 * SEGMENT_FULL + MAX_ENTRY + (3 * SEGMENT_FULL / MIN_ENTRY + 1) * ROW + FIXED + DIGEST;
/// The highest generation a segment's name may carry: one above it is always there for the next.
pub(crate) const MAX_GENERATION: u64 = 1 << 62;
/// Bytes of the fixed part: preamble, generation, entry count.
const FIXED: u64 = PREAMBLE_LEN as u64 + 8 + 8;
/// Bytes of one table row: sequence number, id, offset, length.
const ROW: u64 = 8 + 32 + 8 + 8;
/// The table's digest.
const DIGEST: u64 = 32;
/// Fewer bytes than any point file has (its summary's fixed fields, 80 bytes, and its trailer):
/// a bound on the rows a file of some length can hold.
const MIN_ENTRY: u64 = 112;

/// One point file in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub id: PointId,
    pub offset: u64,
    pub len: u64,
}

/// A segment's name: the first and last sequence numbers it holds and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SegName {
    pub first: u64,
    pub last: u64,
    pub generation: u64,
}

impl SegName {
    pub fn file_name(&self) -> String {
        format!(
            "{:012}-{:012}-{:012}.rcseg",
            self.first, self.last, self.generation
        )
    }

    /// Parses [`file_name`](Self::file_name)'s spelling only; `None` for any other name.
    pub fn parse(name: &str) -> Option<SegName> {
        let stem = name.strip_suffix(".rcseg")?;
        let mut parts = stem.split('-');
        let mut next = || -> Option<u64> {
            let digits = parts.next()?;
            let v: u64 = digits.parse().ok()?;
            (format!("{v:012}") == digits).then_some(v)
        };
        let n = SegName {
            first: next()?,
            last: next()?,
            generation: next()?,
        };
        let fits = n.first <= n.last && n.generation <= MAX_GENERATION;
        (parts.next().is_none() && fits).then_some(n)
    }
}

/// A segment's table, read and checked (see [`Segment::open`]).
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub name: SegName,
    pub entries: Vec<Entry>,
}

impl Segment {
    /// Reads the table of the segment at `path`, named `name`: its digest, its rows in order of
    /// sequence number, their runs back to back from the table's end to the file's end, and the
    /// name's numbers against the table's. The point files themselves are checked when read.
    pub fn open(path: &Path, name: SegName) -> Result<Segment> {
        let (mut f, len) = crate::fsutil::open_regular(path, "point segment")?;
        let mut fixed = [0u8; FIXED as usize];
        f.read_exact(&mut fixed).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => damaged(path, Some(0), "truncated".into()),
            _ => Error::io("reading", Some(path), e),
        })?;
        let (generation, count) = decode_fixed(&fixed, len).map_err(|e| e.with_path(path))?;
        // Bounded by the file's length (checked above).
        let mut table = vec![0u8; (ROW * count + DIGEST) as usize];
        f.read_exact(&mut table)
            .map_err(|e| Error::io("reading", Some(path), e))?;
        let entries = decode_table(&fixed, &table, len).map_err(|e| e.with_path(path))?;
        let (first, last) = (entries[0].seq, entries[entries.len() - 1].seq);
        if (first, last, generation) != (name.first, name.last, name.generation) {
            return Err(damaged(
                path,
                Some(16),
                format!(
                    "it holds sequence numbers {first} to {last}, generation {generation}, \
                     not what its name says"
                ),
            ));
        }
        Ok(Segment {
            path: path.to_path_buf(),
            name,
            entries,
        })
    }

    /// Where entry `e`'s point file is.
    pub fn loc(&self, e: &Entry) -> Loc {
        Loc {
            path: self.path.clone(),
            within: Some((e.offset, e.len)),
        }
    }
}

fn damaged(path: &Path, at: Option<u64>, detail: String) -> Error {
    Error::corrupt("point segment", at, detail).with_path(path)
}

/// The generation and entry count, checked against a file of `len` bytes.
fn decode_fixed(fixed: &[u8], len: u64) -> Result<(u64, u64)> {
    if len > MAX_SEGMENT {
        // What a table of that file would take is not allocated (a sparse file costs nothing).
        return Err(Error::limit_exceeded(
            "a point segment",
            MAX_SEGMENT,
            len,
            "bytes",
        ));
    }
    let mut r = Reader::new(fixed, 0, "point segment");
    Preamble::decode(&mut r, FileKind::PointSegment, VERSION_MAJOR)?;
    let generation = r.u64("generation")?;
    let count = r.u64("entry count")?;
    let fits = count
        .checked_mul(ROW + MIN_ENTRY)
        .and_then(|b| b.checked_add(FIXED + DIGEST))
        .is_some_and(|b| b <= len);
    if count == 0 || !fits {
        return Err(r.error(
            "entry count",
            format!("{count} point files cannot be in a file of {len} bytes"),
        ));
    }
    Ok((generation, count))
}

/// The rows of `table` (rows, then their digest), checked.
fn decode_table(fixed: &[u8], table: &[u8], len: u64) -> Result<Vec<Entry>> {
    let (rows, digest) = table.split_at(table.len() - DIGEST as usize);
    let mut h = blake3::Hasher::new();
    h.update(fixed).update(rows);
    if h.finalize().as_bytes() != digest {
        return Err(Error::corrupt(
            "point segment",
            Some(FIXED),
            "its table does not match its digest",
        ));
    }
    let mut r = Reader::new(rows, FIXED, "point segment");
    let mut at = FIXED + table.len() as u64;
    let mut entries = Vec::with_capacity(rows.len() / ROW as usize);
    while r.remaining() > 0 {
        let e = Entry {
            seq: r.u64("sequence number")?,
            id: PointId(r.array("point id")?),
            offset: r.u64("offset")?,
            len: r.u64("length")?,
        };
        if entries.last().is_some_and(|p: &Entry| p.seq >= e.seq) {
            return Err(r.error("sequence number", "not above the row before it"));
        }
        if e.offset != at || e.len < MIN_ENTRY || e.len > MAX_ENTRY {
            return Err(r.error(
                "offset",
                "the point files are not back to back after the table, each of a point file's size",
            ));
        }
        at += e.len;
        entries.push(e);
    }
    if at != len {
        return Err(Error::corrupt(
            "point segment",
            Some(at),
            format!("its point files end at byte {at}, the file at {len}"),
        ));
    }
    Ok(entries)
}

/// The fixed part and table of a segment of generation `generation` holding point files of
/// `rows`' sequence numbers, ids and lengths, in that order.
pub(crate) fn encode_table(generation: u64, rows: &[(u64, PointId, u64)]) -> Vec<u8> {
    let mut w = Writer::with_capacity((FIXED + ROW * rows.len() as u64 + DIGEST) as usize);
    Preamble::new(FileKind::PointSegment, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
    w.u64(generation).u64(rows.len() as u64);
    let mut at = FIXED + ROW * rows.len() as u64 + DIGEST;
    for (seq, id, len) in rows {
        w.u64(*seq).bytes(&id.0).u64(at).u64(*len);
        at += len;
    }
    let mut bytes = w.into_bytes();
    let digest = blake3::hash(&bytes);
    bytes.extend_from_slice(digest.as_bytes());
    bytes
}

/// A segment held in memory, its table checked and each point file read whole and checked
/// (what the fuzz target runs): the segment written again from what was read.
pub(crate) fn check_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    let len = bytes.len() as u64;
    let fixed = bytes
        .get(..FIXED as usize)
        .ok_or_else(|| Error::corrupt("point segment", Some(0), "truncated"))?;
    let (generation, count) = decode_fixed(fixed, len)?;
    let table = &bytes[FIXED as usize..(FIXED + ROW * count + DIGEST) as usize];
    let entries = decode_table(fixed, table, len)?;
    let mut files = Vec::with_capacity(entries.len());
    for e in &entries {
        let file = &bytes[e.offset as usize..(e.offset + e.len) as usize];
        let p = super::point::PointFile::read_from(file, e.len)?;
        if p.id() != e.id || p.header.seq != e.seq {
            return Err(Error::corrupt(
                "point segment",
                Some(e.offset),
                "a point file is not the point its row names",
            ));
        }
        files.push(file.to_vec());
    }
    encode(generation, &files)
}

/// A segment of generation `generation` holding the point files `files` (whole, in order of
/// sequence number), in memory.
pub(crate) fn encode(generation: u64, files: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut rows = Vec::with_capacity(files.len());
    for f in files {
        let len = f.len() as u64;
        let p = super::point::PointFile::read_from(&f[..], len)?;
        rows.push((p.header.seq, p.id(), len));
    }
    let mut out = encode_table(generation, &rows);
    for f in files {
        out.extend_from_slice(f);
    }
    Ok(out)
}
