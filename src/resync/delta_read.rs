//! Reading deltas (`.rcdelta`, `docs/FORMAT.md` §10) and applying them: the trailer is
//! verified, then the whole delta is read and authenticated while every chunk it writes is
//! checked against the target (nothing written), then it is read again and applied.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::apply::{Applier, ApplyStats, is_block_device};
use super::delta::{
    Delta, ENTRY_LEN, HEADER_LEN, KIND_DATA, KIND_END, KIND_ZERO, KIND_ZSTD, Sink, VERSION_MAJOR,
};
use super::hashing::{ChunkHasher, ZERO_HASH, same_hash};
use super::seal::BodyReader;
use super::sealing::Sealing;
use super::target::{Checker, Expect, Missing, Shape};
use super::{Progress, bad_chunk_size, check_chunk_size, chunk_count, chunk_len};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::MAX_DISK_SIZE;
use crate::format::trailer::verify_stream;
use crate::format::{HashingReader, Reader};

/// Body bytes read between two progress reports of an apply.
const REPORT_EVERY: u64 = 4 << 20;

/// The header of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeltaHeader {
    pub chunk_size: u32,
    pub final_size: u64,
    pub base_size: u64,
    pub base_root: [u8; 32],
}

impl DeltaHeader {
    fn shape(&self) -> Shape {
        Shape {
            chunk_size: self.chunk_size,
            base_size: self.base_size,
            final_size: self.final_size,
        }
    }
}

/// One pass of an apply over a delta: `(body bytes read, delta length)` → continue or not.
type Pass<'a> = &'a mut dyn FnMut(u64) -> Result<()>;

impl Delta {
    /// Applies the plain delta file at `delta` to the image at `target`: the delta's trailer
    /// is verified, then every chunk it writes is checked against the target (it must be what
    /// the signature recorded, or already what the delta writes: a wrong or stale target is
    /// InvalidArgument before anything is written), then every chunk is written at its place
    /// (checked again just before), zero chunks are punched out as holes, the final size is
    /// set and the target synced. Idempotent: after a crash mid-apply, apply again. A missing
    /// target is created only for a delta computed against an empty signature. Progress
    /// counts delta bytes read over both passes. A sealed delta is InvalidArgument.
    pub fn apply(
        delta: impl AsRef<Path>,
        target: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        apply_file(delta.as_ref(), target.as_ref(), None, progress)
    }

    /// As [`apply`](Self::apply) for a delta sealed under `key`: every frame is authenticated
    /// before the target is touched (Authentication for another key, a plain delta, or frames
    /// changed, moved or dropped; Corrupt for damage the trailer catches).
    pub fn apply_sealed(
        delta: impl AsRef<Path>,
        target: impl AsRef<Path>,
        key: &Key,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        apply_file(delta.as_ref(), target.as_ref(), Some(key), progress)
    }

    /// [`apply`](Self::apply) to an image held in memory (`target` is resized to the final
    /// size). The delta is verified and checked against `target` before `target` is touched;
    /// a final size above `max_size` is LimitExceeded (before anything is allocated).
    pub fn apply_in_memory(
        delta: &[u8],
        target: &mut Vec<u8>,
        max_size: u64,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        apply_memory(delta, target, None, max_size, progress)
    }

    /// [`apply_sealed`](Self::apply_sealed) to an image held in memory.
    pub fn apply_sealed_in_memory(
        delta: &[u8],
        target: &mut Vec<u8>,
        key: &Key,
        max_size: u64,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        apply_memory(delta, target, Some(key), max_size, progress)
    }
}

/// The progress of pass `n` (0 or 1) of two over a delta of `total` bytes.
fn pass<'a>(
    progress: &'a mut dyn FnMut(u64, u64) -> bool,
    n: u64,
    total: u64,
) -> impl FnMut(u64) -> Result<()> + 'a {
    move |pos| {
        let done = (n * total + pos.min(total)).min(2 * total);
        if progress(done, 2 * total) {
            Ok(())
        } else {
            Err(Error::Cancelled {
                what: "delta apply".into(),
            })
        }
    }
}

fn apply_file(
    delta: &Path,
    target: &Path,
    key: Option<&Key>,
    progress: Progress<'_>,
) -> Result<ApplyStats> {
    let reading = |e| Error::io("reading the delta", Some(delta), e);
    let mut f = File::open(delta).map_err(|e| Error::io("opening the delta", Some(delta), e))?;
    verify_stream(&mut BufReader::with_capacity(1 << 20, &mut f), "delta")
        .map_err(|e| e.with_path(delta))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let hasher = ChunkHasher::new(key);

    // Pass 1: authenticate everything and check the target; nothing is written.
    f.seek(SeekFrom::Start(0)).map_err(reading)?;
    let mut p = pass(&mut *progress, 0, total);
    let r = BufReader::with_capacity(1 << 20, &mut f);
    read(r, key, &mut p, |h| check_pass(target, h, &hasher)).map_err(|e| e.with_path(delta))?;
    drop(p);

    // Pass 2: write.
    f.seek(SeekFrom::Start(0)).map_err(reading)?;
    let mut p = pass(&mut *progress, 1, total);
    let r = BufReader::with_capacity(1 << 20, &mut f);
    let applier = read(r, key, &mut p, |h| {
        let expect = Expect::new(h.shape(), hasher.clone(), target, true);
        Applier::open(target, h.chunk_size, h.final_size, h.base_size, false)
            .map(|a| a.checking(expect))
    })
    .map_err(|e| e.with_path(delta))?;
    applier.finish()
}

/// The sink of the check pass over a file target: opened read-only, its size checked.
fn check_pass(target: &Path, h: &DeltaHeader, hasher: &ChunkHasher) -> Result<FileCheck> {
    let expect = Expect::new(h.shape(), hasher.clone(), target, false);
    let file = match File::open(target) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && h.base_size == 0 => {
            return Ok(FileCheck::Missing(Checker {
                target: &Missing,
                expect,
                chunks: 0,
            }));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                what: format!(
                    "target {} (the delta expects a {}-byte image)",
                    target.display(),
                    h.base_size
                ),
            });
        }
        Err(e) => return Err(Error::io("opening the target", Some(target), e)),
    };
    let len = (&file)
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("sizing the target", Some(target), e))?;
    h.shape().check_size(target, len, is_block_device(&file))?;
    Ok(FileCheck::File(file, expect))
}

/// The check pass's sink over a file, or over a missing target.
enum FileCheck {
    File(File, Expect),
    Missing(Checker<'static, Missing>),
}

impl Sink for FileCheck {
    fn data(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], bytes: &[u8]) -> Result<()> {
        match self {
            FileCheck::File(f, e) => e.check(f, index, old, hash),
            FileCheck::Missing(c) => c.data(index, hash, old, bytes),
        }
    }

    fn zero(&mut self, index: u64, len: u64, old: &[u8; 32]) -> Result<()> {
        match self {
            FileCheck::File(f, e) => e.check(f, index, old, &ZERO_HASH),
            FileCheck::Missing(c) => c.zero(index, len, old),
        }
    }
}

/// A target held in memory.
struct MemTarget<'a> {
    bytes: &'a mut Vec<u8>,
    chunk_size: u64,
    stats: ApplyStats,
}

impl Sink for MemTarget<'_> {
    fn data(&mut self, index: u64, _hash: &[u8; 32], _old: &[u8; 32], bytes: &[u8]) -> Result<()> {
        let at = (index * self.chunk_size) as usize;
        if self.bytes.len() < at + bytes.len() {
            self.bytes.resize(at + bytes.len(), 0);
        }
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        self.stats.data_chunks += 1;
        self.stats.data_bytes += bytes.len() as u64;
        Ok(())
    }

    fn zero(&mut self, index: u64, len: u64, _old: &[u8; 32]) -> Result<()> {
        let at = ((index * self.chunk_size) as usize).min(self.bytes.len());
        let end = (at + len as usize).min(self.bytes.len());
        self.bytes[at..end].fill(0);
        self.stats.zero_chunks += 1;
        Ok(())
    }
}

fn apply_memory(
    delta: &[u8],
    target: &mut Vec<u8>,
    key: Option<&Key>,
    max_size: u64,
    progress: Progress<'_>,
) -> Result<ApplyStats> {
    crate::format::trailer::verify_slice(delta, "delta")?;
    let total = delta.len() as u64;
    let hasher = ChunkHasher::new(key);
    let limit = max_size.min(usize::MAX as u64 >> 1);
    let fits = |h: &DeltaHeader| {
        if h.final_size > limit {
            return Err(Error::limit_exceeded(
                "final size of an in-memory target",
                limit,
                h.final_size,
                "bytes",
            ));
        }
        Ok(())
    };
    let mut p = pass(&mut *progress, 0, total);
    read(delta, key, &mut p, |h| {
        fits(h)?;
        let path = Path::new("(in memory)");
        h.shape().check_size(path, target.len() as u64, false)?;
        Ok(Checker {
            target: &target[..],
            expect: Expect::new(h.shape(), hasher.clone(), path, false),
            chunks: 0,
        })
    })?;
    drop(p);
    let mut p = pass(&mut *progress, 1, total);
    let t = read(delta, key, &mut p, |h| {
        fits(h)?;
        Ok(MemTarget {
            bytes: target,
            chunk_size: u64::from(h.chunk_size),
            stats: ApplyStats {
                final_size: h.final_size,
                ..ApplyStats::default()
            },
        })
    })?;
    let size = t.stats.final_size as usize;
    t.bytes.resize(size, 0);
    Ok(t.stats)
}

/// Reads a delta (plain without a key, sealed under `key` with one), checking every entry,
/// and hands them to the sink `make` returns for its header; returns the sink. The caller
/// verified the trailer already, or acts only after this returns.
pub(crate) fn read<S: Sink>(
    r: impl Read,
    key: Option<&Key>,
    progress: Pass<'_>,
    make: impl FnOnce(&DeltaHeader) -> Result<S>,
) -> Result<S> {
    let mut r = HashingReader::new(r);
    let mut head = [0u8; HEADER_LEN];
    read_full(&mut r, &mut head[..PREAMBLE_LEN], "delta preamble", 0)?;
    Preamble::decode_slice(&head[..PREAMBLE_LEN], FileKind::Delta, VERSION_MAJOR)?;
    read_full(
        &mut r,
        &mut head[PREAMBLE_LEN..],
        "delta header",
        PREAMBLE_LEN as u64,
    )?;
    let mut h = Reader::new(&head[PREAMBLE_LEN..], PREAMBLE_LEN as u64, "delta header");
    let at = h.offset();
    let chunk_size = h.u32("chunk size")?;
    check_chunk_size(chunk_size).map_err(|_| {
        Error::corrupt(
            "delta header field `chunk size`",
            Some(at),
            bad_chunk_size(chunk_size),
        )
    })?;
    let mode = h.u8("mode")?;
    h.reserved("reserved", 3)?;
    let final_size = h.u64("final size")?;
    let base_size = h.u64("base size")?;
    for (v, name) in [(final_size, "final size"), (base_size, "base size")] {
        if v > MAX_DISK_SIZE {
            return Err(h.error(name, format!("{v} bytes exceeds 64 TiB")));
        }
    }
    let header = DeltaHeader {
        chunk_size,
        final_size,
        base_size,
        base_root: h.array("base root")?,
    };
    let key_id = h.array("key id")?;
    let salt = h.array("salt")?;
    let sealing = Sealing::decode(mode, key_id, salt).map_err(|d| h.error("mode", d))?;
    let mut body = sealing.open_body(r, "delta", &head, key)?;
    body.prime()?;
    let mut sink = make(&header)?;
    let mut entries = Entries::new(&header, ChunkHasher::new(key));
    loop {
        if !entries.next(&mut body, &mut sink)? {
            body.finish()?;
            // The end of the pass: every byte read.
            progress(u64::MAX)?;
            return Ok(sink);
        }
        if body.position() - entries.reported >= REPORT_EVERY {
            entries.reported = body.position();
            progress(entries.reported)?;
        }
    }
}

/// The state of the entry parser.
struct Entries {
    h: DeltaHeader,
    /// How the source's chunks were hashed (as the target's signature was).
    hasher: ChunkHasher,
    chunks: u64,
    base_chunks: u64,
    data: Vec<u8>,
    packed: Vec<u8>,
    /// Entries come in strictly increasing chunk order.
    next_min: u64,
    count: u64,
    reported: u64,
}

impl Entries {
    fn new(h: &DeltaHeader, hasher: ChunkHasher) -> Entries {
        Entries {
            h: *h,
            hasher,
            chunks: chunk_count(h.final_size, h.chunk_size),
            base_chunks: chunk_count(h.base_size, h.chunk_size),
            // chunk_size was checked: at most 8 MiB.
            data: vec![0u8; h.chunk_size as usize],
            packed: vec![0u8; h.chunk_size as usize],
            next_min: 0,
            count: 0,
            reported: 0,
        }
    }

    /// Reads one entry and hands it to `sink`; false after the end entry.
    fn next<R: Read>(&mut self, r: &mut BodyReader<R>, sink: &mut impl Sink) -> Result<bool> {
        let at = r.position();
        let mut e = [0u8; ENTRY_LEN];
        r.fill(&mut e, "entry")?;
        let mut er = Reader::new(&e, at, "delta entry");
        let kind = er.u8("kind")?;
        er.reserved("reserved", 3)?;
        let len = u64::from(er.u32("length")?);
        let index = er.u64("chunk index")?;
        if kind == KIND_END {
            if index != self.count || len != 0 {
                return Err(er.error(
                    "entry count",
                    format!("the end says {index} entries, {} were read", self.count),
                ));
            }
            let mut root = [0u8; 32];
            r.fill(&mut root, "source root")?;
            return Ok(false);
        }
        if index >= self.chunks || index < self.next_min {
            return Err(er.error(
                "chunk index",
                format!(
                    "{index} is out of order or past the last chunk ({} chunks)",
                    self.chunks
                ),
            ));
        }
        let want = chunk_len(self.h.final_size, self.h.chunk_size, index);
        if len != want {
            return Err(er.error(
                "length",
                format!("chunk {index} is {want} bytes, the entry says {len} bytes"),
            ));
        }
        let bad = |detail: String| Error::corrupt("delta chunk", Some(at), detail);
        let mut hash = [0u8; 32];
        if kind == KIND_DATA || kind == KIND_ZSTD {
            r.fill(&mut hash, "chunk hash")?;
        }
        let mut old = [0u8; 32];
        r.fill(&mut old, "target chunk hash")?;
        if index >= self.base_chunks && old != ZERO_HASH {
            return Err(bad(format!(
                "chunk {index} lies past the target's end, yet its target hash is not zeros"
            )));
        }
        let buf = &mut self.data[..len as usize];
        match kind {
            KIND_DATA => r.fill(buf, "chunk data")?,
            KIND_ZSTD => {
                let mut n = [0u8; 8];
                let nat = r.position();
                r.fill(&mut n, "compressed length")?;
                let mut nr = Reader::new(&n, nat, "delta entry");
                let packed_len = nr.u32("compressed length")? as usize;
                nr.reserved("reserved", 4)?;
                if packed_len >= len as usize {
                    return Err(nr.error(
                        "compressed length",
                        format!("{packed_len} bytes is not below the chunk's {len} bytes"),
                    ));
                }
                let packed = &mut self.packed[..packed_len];
                r.fill(packed, "compressed chunk")?;
                let ok = matches!(zstd::bulk::decompress_to_buffer(&packed[..], &mut buf[..]), Ok(n) if n == buf.len());
                if !ok {
                    return Err(bad(format!(
                        "compressed chunk {index} does not decompress to {len} bytes"
                    )));
                }
            }
            KIND_ZERO => {}
            k => return Err(er.error("kind", format!("unknown entry kind {k}"))),
        }
        if kind == KIND_ZERO {
            sink.zero(index, len, &old)?;
        } else {
            let got = self.hasher.chunk(&self.data[..len as usize]);
            if hash == ZERO_HASH || !same_hash(&got, &hash) {
                return Err(bad(format!(
                    "chunk {index} does not match the source's hash"
                )));
            }
            sink.data(index, &hash, &old, &self.data[..len as usize])?;
        }
        self.count += 1;
        self.next_min = index + 1;
        Ok(true)
    }
}
