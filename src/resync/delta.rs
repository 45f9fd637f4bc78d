//! Deltas (`.rcdelta`, `docs/FORMAT.md` §10): computing, writing and reading them.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::apply::{Applier, ApplyStats};
use rayon::prelude::*;

use super::image::Image;
use super::signature::{DataRanges, RootHasher, ZERO_HASH, all_data, chunk_hash, hash_batches};
use super::{Progress, Signature, check_chunk_size, chunk_count, chunk_len};
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::MAX_DISK_SIZE;
use crate::format::trailer::verify_stream;
use crate::format::{HashingReader, Reader, TrailerWriter, Writer};

/// Major format version of `.rcdelta` this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
const HEADER_REST: usize = 4 + 4 + 8 + 8 + 32;
const ENTRY_LEN: usize = 16;
const KIND_DATA: u8 = 1;
const KIND_ZERO: u8 = 2;
const KIND_ZSTD: u8 = 3;
/// zstd level for delta chunks: the fastest, since a resync is bound by hashing.
const ZSTD_LEVEL: i32 = 1;
const KIND_END: u8 = 0xff;

/// Where the chunks that differ go: a delta file, or straight into a target.
pub(crate) trait Sink {
    fn data(&mut self, index: u64, hash: &[u8; 32], bytes: &[u8]) -> Result<()>;
    fn zero(&mut self, index: u64, len: u64) -> Result<()>;

    /// The chunks of one batch that differ, in order.
    fn batch(&mut self, changes: &[Change<'_>]) -> Result<()> {
        for c in changes {
            match *c {
                Change::Data { index, hash, bytes } => self.data(index, hash, bytes)?,
                Change::Zero { index, len } => self.zero(index, len)?,
            }
        }
        Ok(())
    }
}

/// A chunk that differs.
#[derive(Clone, Copy)]
pub(crate) enum Change<'a> {
    Data {
        index: u64,
        hash: &'a [u8; 32],
        bytes: &'a [u8],
    },
    Zero {
        index: u64,
        len: u64,
    },
}

/// What computing a delta found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaStats {
    /// Chunks of the source.
    pub chunks: u64,
    /// Chunks sent as data.
    pub data_chunks: u64,
    /// Chunks sent as zeros.
    pub zero_chunks: u64,
    /// Bytes of chunk data sent.
    pub data_bytes: u64,
    /// Bytes of the delta file (0 when none was written).
    pub delta_bytes: u64,
    /// The source's signature root.
    pub source_root: blake3::Hash,
}

/// Compares `src` chunk by chunk with `target` and hands every chunk that differs to `sink`.
pub(crate) fn diff(
    src: &[u8],
    data: DataRanges<'_>,
    target: &Signature,
    parallel: bool,
    progress: Progress<'_>,
    sink: &mut dyn Sink,
) -> Result<DeltaStats> {
    let cs = target.chunk_size();
    let disk_size = src.len() as u64;
    if disk_size > MAX_DISK_SIZE {
        return Err(Error::limit_exceeded(
            "source image size",
            MAX_DISK_SIZE,
            disk_size,
        ));
    }
    let mut root = RootHasher::new(cs, disk_size);
    let mut stats = DeltaStats {
        chunks: chunk_count(disk_size, cs),
        data_chunks: 0,
        zero_chunks: 0,
        data_bytes: 0,
        delta_bytes: 0,
        source_root: blake3::Hash::from([0; 32]),
    };
    let theirs = target.hashes();
    hash_batches(
        src,
        data,
        cs,
        parallel,
        progress,
        "delta computation",
        |first, hashes| {
            let mut changes = Vec::new();
            for (k, h) in hashes.iter().enumerate() {
                root.update(h);
                let index = first + k as u64;
                let same = match theirs.get(index as usize) {
                    Some(t) => t == h,
                    // Past the target's end: the target grows with zeros.
                    None => *h == ZERO_HASH,
                };
                if same {
                    continue;
                }
                let start = (index * u64::from(cs)) as usize;
                let len = chunk_len(disk_size, cs, index);
                if *h == ZERO_HASH {
                    changes.push(Change::Zero { index, len });
                    stats.zero_chunks += 1;
                } else {
                    changes.push(Change::Data {
                        index,
                        hash: h,
                        bytes: &src[start..start + len as usize],
                    });
                    stats.data_chunks += 1;
                    stats.data_bytes += len;
                }
            }
            sink.batch(&changes)
        },
    )?;
    stats.source_root = root.finalize();
    Ok(stats)
}

/// Writes entries of a delta file.
struct DeltaWriter<W: Write> {
    w: TrailerWriter<W>,
    entries: u64,
}

impl<W: Write> DeltaWriter<W> {
    fn entry(&mut self, kind: u8, len: u64, index: u64) -> Result<()> {
        let mut e = Writer::with_capacity(ENTRY_LEN);
        // len is a chunk length, at most 8 MiB.
        e.u8(kind).zeros(3).u32(len as u32).u64(index);
        self.w.write_all(e.as_bytes()).map_err(write_err)?;
        self.entries += 1;
        Ok(())
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("writing the delta", None, e)
}

impl<W: Write> DeltaWriter<W> {
    fn raw(&mut self, index: u64, hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
        self.entry(KIND_DATA, bytes.len() as u64, index)?;
        self.w.write_all(hash).map_err(write_err)?;
        self.w.write_all(bytes).map_err(write_err)
    }

    fn compressed(&mut self, index: u64, len: u64, hash: &[u8; 32], packed: &[u8]) -> Result<()> {
        self.entry(KIND_ZSTD, len, index)?;
        self.w.write_all(hash).map_err(write_err)?;
        let mut n = Writer::with_capacity(8);
        // packed.len() < len <= 8 MiB.
        n.u32(packed.len() as u32).u32(0);
        self.w.write_all(n.as_bytes()).map_err(write_err)?;
        self.w.write_all(packed).map_err(write_err)
    }
}

impl<W: Write> Sink for DeltaWriter<W> {
    fn data(&mut self, index: u64, hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
        self.raw(index, hash, bytes)
    }

    fn zero(&mut self, index: u64, len: u64) -> Result<()> {
        self.entry(KIND_ZERO, len, index)
    }

    /// Compresses the batch's data chunks in parallel (zstd level 1), keeping a chunk
    /// compressed only where that makes it smaller, then writes the entries in order.
    fn batch(&mut self, changes: &[Change<'_>]) -> Result<()> {
        let packed: Vec<Option<Vec<u8>>> = changes
            .par_iter()
            .map(|c| match c {
                Change::Data { bytes, .. } => compress(bytes),
                Change::Zero { .. } => None,
            })
            .collect();
        for (c, p) in changes.iter().zip(packed) {
            match (*c, p) {
                (Change::Data { index, hash, bytes }, Some(p)) => {
                    self.compressed(index, bytes.len() as u64, hash, &p)?
                }
                (Change::Data { index, hash, bytes }, None) => self.raw(index, hash, bytes)?,
                (Change::Zero { index, len }, _) => self.zero(index, len)?,
            }
        }
        Ok(())
    }
}

/// `bytes` compressed, if that makes them smaller.
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    crate::compress::compress_smaller(bytes, ZSTD_LEVEL)
}

/// The header of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeltaHeader {
    pub chunk_size: u32,
    pub final_size: u64,
    pub base_size: u64,
    pub base_root: [u8; 32],
}

/// Resync deltas: the chunks of a source that differ from a target's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta;

impl Delta {
    /// Computes the delta of the image at `source` against `target` (the stale copy's
    /// signature) and streams it to `out` (`.rcdelta`), in bounded memory, hashing the source
    /// in parallel. Progress counts source bytes hashed; returning false cancels.
    pub fn compute(
        source: impl AsRef<Path>,
        target: &Signature,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        let image = Image::open(source.as_ref())?;
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        Self::compute_with(image.bytes(), &data, target, out, progress)
            .map_err(|e| e.with_path(image.path()))
    }

    /// [`compute`](Self::compute) for a source held in memory.
    pub fn compute_in_memory(
        src: &[u8],
        target: &Signature,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        Self::compute_with(src, &all_data, target, out, progress)
    }

    fn compute_with(
        src: &[u8],
        data: DataRanges<'_>,
        target: &Signature,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        let mut head = Writer::with_capacity(PREAMBLE_LEN + HEADER_REST);
        Preamble::new(FileKind::Delta, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(target.chunk_size())
            .u32(0)
            .u64(src.len() as u64)
            .u64(target.disk_size());
        head.bytes(target.root().as_bytes());
        let mut w = DeltaWriter {
            w: TrailerWriter::new(BufWriter::with_capacity(1 << 20, out)),
            entries: 0,
        };
        w.w.write_all(head.as_bytes()).map_err(write_err)?;
        let mut stats = diff(src, data, target, true, progress, &mut w)?;
        let mut end = Writer::with_capacity(ENTRY_LEN + 32);
        end.u8(KIND_END)
            .zeros(3)
            .u32(0)
            .u64(w.entries)
            .bytes(stats.source_root.as_bytes());
        w.w.write_all(end.as_bytes()).map_err(write_err)?;
        stats.delta_bytes = w.w.written() + 32;
        let (mut buf, _) = w.w.finish().map_err(write_err)?;
        buf.flush().map_err(write_err)?;
        Ok(stats)
    }

    /// Applies the delta file at `delta` to the image at `target`: the whole delta's trailer is
    /// verified first (a damaged delta is refused before the target is touched), then every
    /// chunk is written at its place (checked against the source's hash), zero chunks are
    /// punched out as holes, the final size is set and the target synced. Idempotent: after a
    /// crash mid-apply, apply again. A missing target is created only for a delta computed
    /// against an empty signature. Progress counts delta bytes read.
    pub fn apply(
        delta: impl AsRef<Path>,
        target: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        let (delta, target) = (delta.as_ref(), target.as_ref());
        let open = || File::open(delta).map_err(|e| Error::io("opening the delta", Some(delta), e));
        let mut f = open()?;
        verify_stream(&mut BufReader::with_capacity(1 << 20, &mut f), "delta")
            .map_err(|e| e.with_path(delta))?;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("reading the delta", Some(delta), e))?;
        let total = f.metadata().map(|m| m.len()).unwrap_or(0);
        let applier = read(BufReader::with_capacity(1 << 20, f), total, progress, |h| {
            Applier::open(target, h.chunk_size, h.final_size, h.base_size, false)
        })
        .map_err(|e| e.with_path(delta))?;
        applier.finish()
    }
}

/// A target held in memory.
struct MemTarget<'a> {
    bytes: &'a mut Vec<u8>,
    chunk_size: u64,
    stats: ApplyStats,
}

impl Sink for MemTarget<'_> {
    fn data(&mut self, index: u64, _hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
        let at = (index * self.chunk_size) as usize;
        if self.bytes.len() < at + bytes.len() {
            self.bytes.resize(at + bytes.len(), 0);
        }
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        self.stats.data_chunks += 1;
        self.stats.data_bytes += bytes.len() as u64;
        Ok(())
    }

    fn zero(&mut self, index: u64, len: u64) -> Result<()> {
        let at = ((index * self.chunk_size) as usize).min(self.bytes.len());
        let end = (at + len as usize).min(self.bytes.len());
        self.bytes[at..end].fill(0);
        self.stats.zero_chunks += 1;
        Ok(())
    }
}

impl Delta {
    /// [`apply`](Self::apply) to an image held in memory (`target` is resized to the final
    /// size). The delta's trailer is verified before `target` is touched; a final size above
    /// `max_size` is LimitExceeded (before anything is allocated).
    pub fn apply_in_memory(
        delta: &[u8],
        target: &mut Vec<u8>,
        max_size: u64,
        progress: Progress<'_>,
    ) -> Result<ApplyStats> {
        crate::format::trailer::verify_slice(delta, "delta")?;
        let t = read(delta, delta.len() as u64, progress, |h| {
            let limit = max_size.min(usize::MAX as u64 >> 1);
            if h.final_size > limit {
                return Err(Error::limit_exceeded(
                    "final size of an in-memory target",
                    limit,
                    h.final_size,
                ));
            }
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
}

/// Reads a delta, checking every entry, and hands them to the sink `make` returns for its
/// header; returns the sink. The caller verified the trailer already, or acts only after this
/// returns.
pub(crate) fn read<S: Sink>(
    r: impl Read,
    total: u64,
    progress: Progress<'_>,
    make: impl FnOnce(&DeltaHeader) -> Result<S>,
) -> Result<S> {
    let mut r = HashingReader::new(r);
    Preamble::read(&mut r, FileKind::Delta, VERSION_MAJOR)?;
    let mut rest = [0u8; HEADER_REST];
    read_full(&mut r, &mut rest, "delta header", PREAMBLE_LEN as u64)?;
    let mut h = Reader::new(&rest, PREAMBLE_LEN as u64, "delta header");
    let at = h.offset();
    let chunk_size = h.u32("chunk size")?;
    check_chunk_size(chunk_size)
        .map_err(|e| Error::corrupt("delta header field `chunk size`", Some(at), e.to_string()))?;
    h.reserved("reserved", 4)?;
    let final_size = h.u64("final size")?;
    let base_size = h.u64("base size")?;
    for (v, name) in [(final_size, "final size"), (base_size, "base size")] {
        if v > MAX_DISK_SIZE {
            return Err(h.error(name, format!("{v} exceeds 64 TiB")));
        }
    }
    let header = DeltaHeader {
        chunk_size,
        final_size,
        base_size,
        base_root: h.array("base root")?,
    };
    let mut sink = make(&header)?;
    let chunks = chunk_count(final_size, chunk_size);
    let mut data = vec![0u8; chunk_size as usize];
    let mut packed = vec![0u8; chunk_size as usize];
    let mut next_min = 0u64; // entries come in increasing chunk order
    let mut entries = 0u64;
    let mut reported = 0u64;
    loop {
        let at = r.position();
        let mut e = [0u8; ENTRY_LEN];
        read_full(&mut r, &mut e, "delta entry", at)?;
        let mut er = Reader::new(&e, at, "delta entry");
        let kind = er.u8("kind")?;
        er.reserved("reserved", 3)?;
        let len = u64::from(er.u32("length")?);
        let index = er.u64("chunk index")?;
        if kind == KIND_END {
            if index != entries {
                return Err(er.error(
                    "entry count",
                    format!("the end says {index} entries, {entries} were read"),
                ));
            }
            let mut root = [0u8; 32];
            let pos = r.position();
            read_full(&mut r, &mut root, "delta source root", pos)?;
            r.finish("delta")?;
            let _ = root;
            return Ok(sink);
        }
        if index >= chunks || index < next_min {
            return Err(er.error(
                "chunk index",
                format!("{index} is out of order or past the last chunk ({chunks} chunks)"),
            ));
        }
        let want = chunk_len(final_size, chunk_size, index);
        if len != want {
            return Err(er.error(
                "length",
                format!("chunk {index} is {want} bytes, the entry says {len}"),
            ));
        }
        match kind {
            KIND_DATA => {
                let mut hash = [0u8; 32];
                read_full(&mut r, &mut hash, "delta chunk hash", at + ENTRY_LEN as u64)?;
                let buf = &mut data[..len as usize];
                read_full(&mut r, buf, "delta chunk data", at + ENTRY_LEN as u64 + 32)?;
                if hash == ZERO_HASH
                    || blake3::Hash::from(chunk_hash(buf)) != blake3::Hash::from(hash)
                {
                    return Err(Error::corrupt(
                        "delta chunk",
                        Some(at),
                        format!("chunk {index} does not match the source's hash"),
                    ));
                }
                sink.data(index, &hash, buf)?;
            }
            KIND_ZSTD => {
                let mut hash = [0u8; 32];
                read_full(&mut r, &mut hash, "delta chunk hash", at + ENTRY_LEN as u64)?;
                let mut n = [0u8; 8];
                read_full(
                    &mut r,
                    &mut n,
                    "delta compressed length",
                    at + ENTRY_LEN as u64 + 32,
                )?;
                let mut nr = Reader::new(&n, at + ENTRY_LEN as u64 + 32, "delta entry");
                let packed_len = nr.u32("compressed length")? as usize;
                nr.reserved("reserved", 4)?;
                if packed_len >= len as usize {
                    return Err(nr.error(
                        "compressed length",
                        format!("{packed_len} is not below the chunk's {len} bytes"),
                    ));
                }
                let packed_buf = &mut packed[..packed_len];
                read_full(
                    &mut r,
                    packed_buf,
                    "delta compressed chunk",
                    at + ENTRY_LEN as u64 + 40,
                )?;
                let buf = &mut data[..len as usize];
                let ok = matches!(zstd::bulk::decompress_to_buffer(&packed[..packed_len], &mut buf[..]), Ok(n) if n == buf.len());
                if !ok
                    || hash == ZERO_HASH
                    || blake3::Hash::from(chunk_hash(buf)) != blake3::Hash::from(hash)
                {
                    return Err(Error::corrupt(
                        "delta chunk",
                        Some(at),
                        format!(
                            "compressed chunk {index} does not decompress to the source's bytes"
                        ),
                    ));
                }
                sink.data(index, &hash, buf)?;
            }
            KIND_ZERO => sink.zero(index, len)?,
            k => return Err(er.error("kind", format!("unknown entry kind {k}"))),
        }
        entries += 1;
        next_min = index + 1;
        if r.position() - reported >= 64 << 20 {
            reported = r.position();
            if !progress(reported, total) {
                return Err(Error::Cancelled {
                    what: "delta apply".into(),
                });
            }
        }
    }
}
