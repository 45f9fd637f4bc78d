//! Deltas (`.rcdelta`, `docs/FORMAT.md` §10): computing and writing them. Reading and applying:
//! `delta_read.rs`.

use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

use super::hashing::{Batches, ChunkHasher, DataRanges, ZERO_HASH, all_data, hash_batches};
use super::image::Image;
use super::seal::{BodyWriter, SALT_LEN};
use super::sealing::Sealing;
use super::signature::RootHasher;
use super::{Progress, Signature, chunk_count, chunk_len};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::Writer;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::MAX_DISK_SIZE;

/// Major format version of `.rcdelta` this build reads and writes.
pub const VERSION_MAJOR: u16 = 2;
pub(crate) const VERSION_MINOR: u16 = 0;
/// Bytes of a delta header after the preamble: chunk size, mode, reserved, final size, base
/// size, base root, key id, salt.
pub(crate) const HEADER_REST: usize = 4 + 1 + 3 + 8 + 8 + 32 + 16 + SALT_LEN;
/// Bytes of a delta header, preamble included (the body follows).
pub(crate) const HEADER_LEN: usize = PREAMBLE_LEN + HEADER_REST;
const _: () = assert!(HEADER_LEN == 120);
/// Bytes of an entry's header: kind, reserved, length, chunk index.
pub(crate) const ENTRY_LEN: usize = 1 + 3 + 4 + 8;
pub(crate) const KIND_DATA: u8 = 1;
pub(crate) const KIND_ZERO: u8 = 2;
pub(crate) const KIND_ZSTD: u8 = 3;
pub(crate) const KIND_END: u8 = 0xff;
/// zstd level for delta chunks: the fastest, since a resync is bound by hashing.
const ZSTD_LEVEL: i32 = 1;

/// Where the chunks that differ go: a delta file, a target, or a check of a target. `old` is
/// the target's hash of the chunk as its signature gave it (zeros past its end).
pub(crate) trait Sink {
    fn data(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], bytes: &[u8]) -> Result<()>;
    fn zero(&mut self, index: u64, len: u64, old: &[u8; 32]) -> Result<()>;

    /// The chunks of one batch that differ, in order.
    fn batch(&mut self, changes: &[Change<'_>]) -> Result<()> {
        each_change(self, changes)
    }
}

/// Hands every change to `sink`'s `data` or `zero`, in order.
pub(crate) fn each_change(sink: &mut (impl Sink + ?Sized), changes: &[Change<'_>]) -> Result<()> {
    for c in changes {
        match *c {
            Change::Data {
                index,
                hash,
                old,
                bytes,
            } => sink.data(index, hash, old, bytes)?,
            Change::Zero { index, len, old } => sink.zero(index, len, old)?,
        }
    }
    Ok(())
}

/// A chunk that differs.
#[derive(Clone, Copy)]
pub(crate) enum Change<'a> {
    Data {
        index: u64,
        hash: &'a [u8; 32],
        old: &'a [u8; 32],
        bytes: &'a [u8],
    },
    Zero {
        index: u64,
        len: u64,
        old: &'a [u8; 32],
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

/// The source being compared: its bytes, where its data is, how its chunks are hashed (as the
/// target's signature was).
pub(crate) struct Source<'a> {
    pub bytes: &'a [u8],
    pub data: DataRanges<'a>,
    pub hasher: &'a ChunkHasher,
    pub parallel: bool,
}

/// Where the target's hashes come from, in chunk order: a signature in memory, or one read from
/// its file as the source is hashed.
pub(crate) trait TargetHashes {
    /// The signature's chunk size.
    fn chunk_size(&self) -> u32;
    /// Appends the next `n` hashes (fewer past the target's end) to `out`.
    fn next(&mut self, n: usize, out: &mut Vec<[u8; 32]>) -> Result<()>;
}

/// A signature in memory, read in order.
struct InMemory<'a> {
    sig: &'a Signature,
    at: usize,
}

impl TargetHashes for InMemory<'_> {
    fn chunk_size(&self) -> u32 {
        self.sig.chunk_size()
    }

    fn next(&mut self, n: usize, out: &mut Vec<[u8; 32]>) -> Result<()> {
        let all = self.sig.hashes();
        let end = (self.at + n).min(all.len());
        out.extend_from_slice(&all[self.at.min(end)..end]);
        self.at = end;
        Ok(())
    }
}

/// A signature read from its file as it is needed.
pub(crate) struct Streamed<R: std::io::Read> {
    pub reader: super::signature::SignatureReader<R>,
    /// Hashes not yet read.
    pub left: u64,
}

impl<R: std::io::Read> TargetHashes for Streamed<R> {
    fn chunk_size(&self) -> u32 {
        self.reader.chunk_size()
    }

    fn next(&mut self, n: usize, out: &mut Vec<[u8; 32]>) -> Result<()> {
        let n = (n as u64).min(self.left);
        self.reader.read(n, out)?;
        self.left -= n;
        Ok(())
    }
}

/// Hashes read through, their root computed as they go.
struct Checking<R: std::io::Read> {
    inner: Streamed<R>,
    root: super::signature::RootHasher,
}

impl<R: std::io::Read> TargetHashes for Checking<R> {
    fn chunk_size(&self) -> u32 {
        self.inner.chunk_size()
    }

    fn next(&mut self, n: usize, out: &mut Vec<[u8; 32]>) -> Result<()> {
        let from = out.len();
        self.inner.next(n, out)?;
        for h in &out[from..] {
            self.root.update(h);
        }
        Ok(())
    }
}

/// Compares the source chunk by chunk with the target's hashes (read in order) and hands
/// every chunk that differs to `sink`, with the target's hash of it.
pub(crate) fn diff_from(
    src: Source<'_>,
    target: &mut dyn TargetHashes,
    progress: Progress<'_>,
    sink: &mut dyn Sink,
) -> Result<DeltaStats> {
    let cs = target.chunk_size();
    let bytes = src.bytes;
    let disk_size = bytes.len() as u64;
    if disk_size > MAX_DISK_SIZE {
        return Err(Error::limit_exceeded(
            "source image size",
            MAX_DISK_SIZE,
            disk_size,
            "bytes",
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
    let mut theirs: Vec<[u8; 32]> = Vec::new();
    let b = Batches {
        bytes,
        data: src.data,
        chunk_size: cs,
        hasher: src.hasher,
        parallel: src.parallel,
    };
    hash_batches(b, progress, "delta computation", |first, hashes| {
        theirs.clear();
        target.next(hashes.len(), &mut theirs)?;
        let mut changes = Vec::new();
        for (k, h) in hashes.iter().enumerate() {
            root.update(h);
            let index = first + k as u64;
            // Past the target's end, the target grows with zeros.
            let old = theirs.get(k).unwrap_or(&ZERO_HASH);
            if old == h {
                continue;
            }
            let start = (index * u64::from(cs)) as usize;
            let len = chunk_len(disk_size, cs, index);
            if *h == ZERO_HASH {
                changes.push(Change::Zero { index, len, old });
                stats.zero_chunks += 1;
            } else {
                changes.push(Change::Data {
                    index,
                    hash: h,
                    old,
                    bytes: &bytes[start..start + len as usize],
                });
                stats.data_chunks += 1;
                stats.data_bytes += len;
            }
        }
        sink.batch(&changes)
    })?;
    stats.source_root = root.finalize();
    Ok(stats)
}

/// Writes entries of a delta file.
struct DeltaWriter<W: Write> {
    w: BodyWriter<W>,
    entries: u64,
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("writing the delta", None, e)
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

    fn hashes(&mut self, hash: &[u8; 32], old: &[u8; 32]) -> Result<()> {
        self.w.write_all(hash).map_err(write_err)?;
        self.w.write_all(old).map_err(write_err)
    }

    fn raw(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], bytes: &[u8]) -> Result<()> {
        self.entry(KIND_DATA, bytes.len() as u64, index)?;
        self.hashes(hash, old)?;
        self.w.write_all(bytes).map_err(write_err)
    }

    fn compressed(&mut self, c: &Change<'_>, packed: &[u8]) -> Result<()> {
        let Change::Data {
            index,
            hash,
            old,
            bytes,
        } = *c
        else {
            return Ok(());
        };
        self.entry(KIND_ZSTD, bytes.len() as u64, index)?;
        self.hashes(hash, old)?;
        let mut n = Writer::with_capacity(8);
        // packed.len() < len <= 8 MiB.
        n.u32(packed.len() as u32).u32(0);
        self.w.write_all(n.as_bytes()).map_err(write_err)?;
        self.w.write_all(packed).map_err(write_err)
    }
}

impl<W: Write> Sink for DeltaWriter<W> {
    fn data(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], bytes: &[u8]) -> Result<()> {
        self.raw(index, hash, old, bytes)
    }

    fn zero(&mut self, index: u64, len: u64, old: &[u8; 32]) -> Result<()> {
        self.entry(KIND_ZERO, len, index)?;
        self.w.write_all(old).map_err(write_err)
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
                (Change::Data { .. }, Some(p)) => self.compressed(c, &p)?,
                (
                    Change::Data {
                        index,
                        hash,
                        old,
                        bytes,
                    },
                    None,
                ) => self.raw(index, hash, old, bytes)?,
                (Change::Zero { index, len, old }, _) => self.zero(index, len, old)?,
            }
        }
        Ok(())
    }
}

/// `bytes` compressed, if that makes them smaller.
fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
    crate::compress::compress_smaller(bytes, ZSTD_LEVEL)
}

/// Resync deltas: the chunks of a source that differ from a target's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta;

impl Delta {
    /// Computes the plain delta of the image at `source` against `target` (the stale copy's
    /// plain signature) and streams it to `out` (`.rcdelta`), in bounded memory, hashing the
    /// source in parallel. Progress counts source bytes hashed; returning false cancels. A
    /// plain delta carries the changed chunks in the clear: for a delta that leaves the host,
    /// use [`compute_sealed`](Self::compute_sealed).
    pub fn compute(
        source: impl AsRef<Path>,
        target: &Signature,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        Self::compute_file(source.as_ref(), target, None, out, progress)
    }

    /// As [`compute`](Self::compute) against a keyed signature (computed with `key`), sealed
    /// under `key`: every entry, and the data it carries, encrypted and authenticated.
    pub fn compute_sealed(
        source: impl AsRef<Path>,
        target: &Signature,
        key: &Key,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        Self::compute_file(source.as_ref(), target, Some(key), out, progress)
    }

    fn compute_file(
        source: &Path,
        target: &Signature,
        key: Option<&Key>,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        target.check_mode(key, "computing a delta")?;
        let image = Image::open(source)?;
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        Self::compute_with(image.bytes(), &data, target, key, out, progress)
            .map_err(|e| e.with_path(image.path()))
    }

    /// [`compute`](Self::compute) for a source held in memory.
    pub fn compute_in_memory(
        src: &[u8],
        target: &Signature,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        target.check_mode(None, "computing a delta")?;
        Self::compute_with(src, &all_data, target, None, out, progress)
    }

    /// [`compute_sealed`](Self::compute_sealed) for a source held in memory.
    pub fn compute_sealed_in_memory(
        src: &[u8],
        target: &Signature,
        key: &Key,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        target.check_mode(Some(key), "computing a delta")?;
        Self::compute_with(src, &all_data, target, Some(key), out, progress)
    }

    /// As [`compute`](Self::compute) (without `key`) or [`compute_sealed`](Self::compute_sealed)
    /// (with it), reading the target's signature from the file at `signature` as the source is
    /// hashed, so that memory stays bounded whatever the images' size (a [`Signature`] holds 32
    /// bytes a chunk). The file is read twice: once for its root, which the delta's header
    /// names, then for the comparison; it must not change meanwhile (the second read's root is
    /// checked against the first's before this returns). Write `out` to a file that is
    /// published only when this returns `Ok`.
    pub fn compute_from_file(
        source: impl AsRef<Path>,
        signature: impl AsRef<Path>,
        key: Option<&Key>,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        let sig_path = signature.as_ref();
        let open =
            || -> Result<super::signature::SignatureReader<std::io::BufReader<std::fs::File>>> {
                let f = std::fs::File::open(sig_path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound {
                        what: format!("signature {}", sig_path.display()),
                    },
                    _ => Error::io("opening the signature", Some(sig_path), e),
                })?;
                super::signature::SignatureReader::open(
                    std::io::BufReader::with_capacity(1 << 20, f),
                    key,
                )
            };
        let in_file = |e: Error| e.with_path(sig_path);
        // First read: the root, and the file's end checked.
        let mut first = open().map_err(in_file)?;
        let (cs, base_size) = (first.chunk_size(), first.disk_size());
        let mut root = super::signature::RootHasher::new(cs, base_size);
        let mut buf = Vec::new();
        while first.left() > 0 {
            buf.clear();
            let n = first.left().min(1 << 14);
            first.read(n, &mut buf).map_err(in_file)?;
            for h in &buf {
                root.update(h);
            }
        }
        first.finish().map_err(in_file)?;
        let root = root.finalize();
        // Second read: the comparison, streamed, the root computed again as it goes.
        let second = open().map_err(in_file)?;
        let left = second.left();
        let image = Image::open(source.as_ref())?;
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        let mut target = Checking {
            inner: Streamed {
                reader: second,
                left,
            },
            root: super::signature::RootHasher::new(cs, base_size),
        };
        let stats = Self::write_delta(
            image.bytes(),
            &data,
            &mut target,
            (cs, base_size, root),
            key,
            out,
            progress,
        )
        .map_err(|e| e.with_path(image.path()))?;
        // The hashes past the source's end (a target larger than the source), then the end.
        while target.inner.left > 0 {
            buf.clear();
            let n = target.inner.left.min(1 << 14) as usize;
            target.next(n, &mut buf).map_err(in_file)?;
        }
        let Checking { inner, root: again } = target;
        inner.reader.finish().map_err(in_file)?;
        if again.finalize() != root {
            return Err(Error::corrupt(
                "signature",
                None,
                "it changed while the delta was computed",
            )
            .with_path(sig_path));
        }
        Ok(stats)
    }

    fn compute_with(
        src: &[u8],
        data: DataRanges<'_>,
        target: &Signature,
        key: Option<&Key>,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        let meta = (target.chunk_size(), target.disk_size(), target.root());
        Self::write_delta(
            src,
            data,
            &mut InMemory { sig: target, at: 0 },
            meta,
            key,
            out,
            progress,
        )
    }

    /// Writes the delta of `src` against `target`'s hashes; `meta` is the target signature's
    /// (chunk size, image size, root).
    fn write_delta(
        src: &[u8],
        data: DataRanges<'_>,
        target: &mut dyn TargetHashes,
        meta: (u32, u64, blake3::Hash),
        key: Option<&Key>,
        out: impl Write,
        progress: Progress<'_>,
    ) -> Result<DeltaStats> {
        let (chunk_size, base_size, root) = meta;
        let sealing = Sealing::new(key)?;
        let mut head = Writer::with_capacity(HEADER_LEN);
        Preamble::new(FileKind::Delta, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(chunk_size)
            .u8(sealing.mode())
            .zeros(3)
            .u64(src.len() as u64)
            .u64(base_size)
            .bytes(root.as_bytes())
            .bytes(&sealing.key_id)
            .bytes(&sealing.salt);
        let out = BufWriter::with_capacity(1 << 20, out);
        let mut w = DeltaWriter {
            w: BodyWriter::start(out, head.as_bytes(), sealing.seal(key)).map_err(write_err)?,
            entries: 0,
        };
        let hasher = ChunkHasher::new(key);
        let source = Source {
            bytes: src,
            data,
            hasher: &hasher,
            parallel: true,
        };
        let mut stats = diff_from(source, target, progress, &mut w)?;
        let mut end = Writer::with_capacity(ENTRY_LEN + 32);
        end.u8(KIND_END)
            .zeros(3)
            .u32(0)
            .u64(w.entries)
            .bytes(stats.source_root.as_bytes());
        w.w.write_all(end.as_bytes()).map_err(write_err)?;
        let (mut buf, len) = w.w.finish().map_err(write_err)?;
        stats.delta_bytes = len;
        buf.flush().map_err(write_err)?;
        Ok(stats)
    }
}
