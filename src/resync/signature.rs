//! Fixed-chunk signatures (`.rcsig`, `docs/FORMAT.md` §9).

use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;

use super::image::Image;
use super::{Progress, check_chunk_size, chunk_count};
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_DISK_SIZE;
use crate::format::{HashingReader, Reader, TrailerWriter, Writer};

/// Major format version of `.rcsig` this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
/// Bytes of a signature header after the preamble.
const HEADER_REST: usize = 4 + 4 + 8 + 8;

/// The hash stored for a chunk that is all zeros (its BLAKE3 is never computed).
pub(crate) const ZERO_HASH: [u8; 32] = [0; 32];

/// Bytes hashed between two progress reports (and the batch of chunks hashed in parallel).
pub(crate) const BATCH_BYTES: usize = 64 << 20;

/// Whether `b` is all zeros; stops at the first 4 KiB block that is not.
pub(crate) fn is_zero(b: &[u8]) -> bool {
    b.chunks(4096)
        .all(|blk| blk.iter().fold(0u8, |acc, &x| acc | x) == 0)
}

/// The stored hash of one chunk: [`ZERO_HASH`] for zeros, else its BLAKE3.
pub(crate) fn chunk_hash(chunk: &[u8]) -> [u8; 32] {
    if is_zero(chunk) {
        ZERO_HASH
    } else {
        *blake3::hash(chunk).as_bytes()
    }
}

/// Where the data of an image may be: `(start, end)` → the ranges of that span holding data.
pub(crate) type DataRanges<'a> = &'a dyn Fn(u64, u64) -> Vec<(u64, u64)>;

/// Every byte of an in-memory image may be data.
pub(crate) fn all_data(start: u64, end: u64) -> Vec<(u64, u64)> {
    vec![(start, end)]
}

/// Hashes the chunks of `bytes` in batches, in parallel or serially, reporting progress after
/// each batch; `each` receives every batch's first chunk index and hashes, in order. Chunks
/// that `data` says lie wholly in holes get [`ZERO_HASH`] without their pages being touched.
///
/// In parallel, the batches are pipelined: while `each` handles one batch on the caller's
/// thread (writing a target, compressing a delta), the pool hashes the next, so the writes and
/// the hashing overlap. At most two batches' hashes are held.
pub(crate) fn hash_batches(
    bytes: &[u8],
    data: DataRanges<'_>,
    chunk_size: u32,
    parallel: bool,
    progress: Progress<'_>,
    what: &str,
    mut each: impl FnMut(u64, &[[u8; 32]]) -> Result<()>,
) -> Result<()> {
    let cs = chunk_size as usize;
    let per_batch = (BATCH_BYTES / cs).max(1) * cs;
    let total = bytes.len() as u64;
    let mut first = 0u64;
    // Hands one batch's hashes to `each`, then reports progress.
    let mut deliver = |hashes: &[[u8; 32]], progress: &mut dyn FnMut(u64, u64) -> bool| {
        each(first, hashes)?;
        first += hashes.len() as u64;
        let done = (first * u64::from(chunk_size)).min(total);
        if progress(done, total) {
            Ok(())
        } else {
            Err(Error::Cancelled {
                what: what.to_string(),
            })
        }
    };
    let mut pending: Option<Vec<[u8; 32]>> = None;
    for (b, batch) in bytes.chunks(per_batch).enumerate() {
        let base = (b * per_batch) as u64;
        let ranges = data(base, base + batch.len() as u64);
        if !parallel {
            let hashes = hash_batch(batch, base, cs, &ranges, false);
            deliver(&hashes, progress)?;
            continue;
        }
        let mut next = None;
        rayon::in_place_scope(|s| {
            s.spawn(|_| next = Some(hash_batch(batch, base, cs, &ranges, true)));
            match pending.take() {
                Some(prev) => deliver(&prev, progress),
                None => Ok(()),
            }
        })?;
        pending = next;
    }
    match pending {
        Some(last) => deliver(&last, progress),
        None => Ok(()),
    }
}

/// The hashes of one batch starting at byte `base`; `ranges` are its data ranges.
fn hash_batch(
    batch: &[u8],
    base: u64,
    cs: usize,
    ranges: &[(u64, u64)],
    parallel: bool,
) -> Vec<[u8; 32]> {
    let hash = |(i, chunk): (usize, &[u8])| {
        let (c0, c1) = (base + (i * cs) as u64, base + (i * cs + chunk.len()) as u64);
        // The first range ending after c0 overlaps the chunk if it starts before c1.
        let k = ranges.partition_point(|&(_, e)| e <= c0);
        match ranges.get(k) {
            Some(&(s, _)) if s < c1 => chunk_hash(chunk),
            _ => ZERO_HASH,
        }
    };
    if parallel {
        batch.par_chunks(cs).enumerate().map(hash).collect()
    } else {
        batch.chunks(cs).enumerate().map(hash).collect()
    }
}

/// The fixed-chunk checksums of a disk image: one BLAKE3 hash per chunk (zeros for an all-zero
/// chunk), the chunk size and the image's size. See `docs/FORMAT.md` §9.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    chunk_size: u32,
    disk_size: u64,
    hashes: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature")
            .field("chunk_size", &self.chunk_size)
            .field("disk_size", &self.disk_size)
            .field("chunks", &self.hashes.len())
            .field("root", &self.root().to_hex())
            .finish()
    }
}

impl Signature {
    /// The signature of the image at `path` (a regular file or a block device), hashed over a
    /// memory map with every core (rayon). `chunk_size` is a power of two from 4 KiB to 8 MiB
    /// ([`DEFAULT_CHUNK_SIZE`](super::DEFAULT_CHUNK_SIZE) is 64 KiB). `progress(done, total)`
    /// is called after every 64 MiB; returning false cancels (Cancelled).
    pub fn compute(
        path: impl AsRef<Path>,
        chunk_size: u32,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        Self::compute_with(path.as_ref(), chunk_size, true, progress)
    }

    /// [`compute`](Self::compute) on the calling thread only: the serial twin the parallel path
    /// is tested against, and a choice for hosts that must not use other cores.
    pub fn compute_serial(
        path: impl AsRef<Path>,
        chunk_size: u32,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        Self::compute_with(path.as_ref(), chunk_size, false, progress)
    }

    fn compute_with(
        path: &Path,
        chunk_size: u32,
        parallel: bool,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        let image = Image::open(path)?;
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        Self::of_image(image.bytes(), &data, chunk_size, parallel, progress)
    }

    /// The signature of an image's bytes, skipping what `data` says are holes.
    pub(crate) fn of_image(
        bytes: &[u8],
        data: DataRanges<'_>,
        chunk_size: u32,
        parallel: bool,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        let disk_size = bytes.len() as u64;
        if disk_size > MAX_DISK_SIZE {
            return Err(Error::limit_exceeded(
                "image size",
                MAX_DISK_SIZE,
                disk_size,
            ));
        }
        let count = chunk_count(disk_size, chunk_size);
        let mut hashes = Vec::new();
        // 32 bytes a chunk: a 64 TiB image in 4 KiB chunks would need 512 GiB. Refuse, not abort.
        usize::try_from(count)
            .ok()
            .and_then(|n| hashes.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                Error::io(
                    format!("reserving {count} × 32 bytes for the signature (choose a larger chunk size)"),
                    None,
                    std::io::ErrorKind::OutOfMemory.into(),
                )
            })?;
        hash_batches(
            bytes,
            data,
            chunk_size,
            parallel,
            progress,
            "signature computation",
            |_, h| {
                hashes.extend_from_slice(h);
                Ok(())
            },
        )?;
        Ok(Signature {
            chunk_size,
            disk_size,
            hashes,
        })
    }

    /// The signature of an image held in memory.
    pub fn of(bytes: &[u8], chunk_size: u32) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        Self::of_image(bytes, &all_data, chunk_size, true, &mut |_, _| true)
    }

    /// The signature of an empty (or missing) image.
    pub fn empty(chunk_size: u32) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        Ok(Signature {
            chunk_size,
            disk_size: 0,
            hashes: Vec::new(),
        })
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Size of the image in bytes.
    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }

    /// The chunks' hashes, in order (all zeros for an all-zero chunk).
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// Chunks that are all zeros.
    pub fn zero_chunks(&self) -> u64 {
        self.hashes.iter().filter(|h| **h == ZERO_HASH).count() as u64
    }

    /// A digest naming this signature: BLAKE3 of the chunk size, the image size and every hash
    /// (`docs/FORMAT.md` §9). Two images with the same root have the same contents.
    pub fn root(&self) -> blake3::Hash {
        let mut h = RootHasher::new(self.chunk_size, self.disk_size);
        for c in &self.hashes {
            h.update(c);
        }
        h.finalize()
    }

    /// Writes the signature (`.rcsig`) to `w`, ending with the BLAKE3 trailer.
    pub fn to_writer(&self, w: impl Write) -> Result<()> {
        let io = |e| Error::io("writing the signature", None, e);
        let mut w = TrailerWriter::new(w);
        let mut head = Writer::with_capacity(16 + HEADER_REST);
        Preamble::new(FileKind::Signature, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(self.chunk_size)
            .u32(0)
            .u64(self.disk_size)
            .u64(self.hashes.len() as u64);
        w.write_all(head.as_bytes()).map_err(io)?;
        for h in &self.hashes {
            w.write_all(h).map_err(io)?;
        }
        let (mut inner, _) = w.finish().map_err(io)?;
        inner.flush().map_err(io)
    }

    /// Reads a signature written by [`to_writer`](Self::to_writer), streaming: memory grows
    /// with the hashes actually read (32 bytes a chunk), never with a claimed count. Nothing is
    /// returned before the trailer has been verified.
    pub fn from_reader(r: impl Read) -> Result<Signature> {
        let mut r = HashingReader::new(r);
        let pre = Preamble::read(&mut r, FileKind::Signature, VERSION_MAJOR)?;
        let _ = pre;
        let mut rest = [0u8; HEADER_REST];
        read_full(&mut r, &mut rest, "signature header", 16)?;
        let mut h = Reader::new(&rest, 16, "signature header");
        let at = h.offset();
        let chunk_size = h.u32("chunk size")?;
        check_chunk_size(chunk_size).map_err(|e| {
            Error::corrupt(
                "signature header field `chunk size`",
                Some(at),
                e.to_string(),
            )
        })?;
        h.reserved("reserved", 4)?;
        let at = h.offset();
        let disk_size = h.u64("disk size")?;
        if disk_size > MAX_DISK_SIZE {
            return Err(h.error(
                "disk size",
                format!("{disk_size} at byte {at} exceeds 64 TiB"),
            ));
        }
        let count = h.u64("chunk count")?;
        if count != chunk_count(disk_size, chunk_size) {
            return Err(h.error(
                "chunk count",
                format!("{count} chunks cannot cover {disk_size} bytes in chunks of {chunk_size}"),
            ));
        }
        let mut hashes = Vec::new();
        let mut buf = [0u8; 32];
        for i in 0..count {
            read_full(
                &mut r,
                &mut buf,
                "signature hash",
                16 + HEADER_REST as u64 + i * 32,
            )?;
            hashes.push(buf);
        }
        r.finish("signature")?;
        Ok(Signature {
            chunk_size,
            disk_size,
            hashes,
        })
    }
}

/// Incremental computation of a signature root (`docs/FORMAT.md` §9).
pub(crate) struct RootHasher(blake3::Hasher);

impl RootHasher {
    pub fn new(chunk_size: u32, disk_size: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("replicore 2026 signature root v1");
        h.update(&chunk_size.to_le_bytes());
        h.update(&disk_size.to_le_bytes());
        RootHasher(h)
    }

    pub fn update(&mut self, chunk_hash: &[u8; 32]) {
        self.0.update(chunk_hash);
    }

    pub fn finalize(&self) -> blake3::Hash {
        self.0.finalize()
    }
}
