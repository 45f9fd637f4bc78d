//! Fixed-chunk signatures (`.rcsig`, `docs/FORMAT.md` §9).

use std::io::{Read, Write};
use std::path::Path;

use super::hashing::{Batches, ChunkHasher, all_data, hash_batches};
use super::image::Image;
use super::seal::{BodyWriter, SALT_LEN};
use super::sealing::Sealing;
use super::{Progress, bad_chunk_size, check_chunk_size, chunk_count};
use crate::crypto::{Key, KeyId};
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::MAX_DISK_SIZE;
use crate::format::{HashingReader, Reader, Writer};

pub(crate) use super::hashing::{ZERO_HASH, is_zero};

/// Major format version of `.rcsig` this build reads and writes.
pub const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 0;
/// Bytes of a signature header after the preamble: chunk size, mode, reserved, image size,
/// chunk count, key id, salt.
const HEADER_REST: usize = 4 + 1 + 3 + 8 + 8 + 16 + SALT_LEN;
/// Bytes of a signature header, preamble included (the body follows).
const HEADER_LEN: usize = PREAMBLE_LEN + HEADER_REST;
const _: () = assert!(HEADER_LEN == 88);

/// The fixed-chunk checksums of a disk image: one hash per chunk (zeros for an all-zero chunk),
/// the chunk size and the image's size. The hashes are plain BLAKE3 (a *plain* signature, for
/// local use), or BLAKE3 keyed by the group key (a *keyed* signature, written sealed: it says
/// nothing about the data to whoever lacks the key). See `docs/FORMAT.md` §9.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    chunk_size: u32,
    disk_size: u64,
    hashes: Vec<[u8; 32]>,
    /// The key the hashes are keyed by; None for plain BLAKE3.
    key_id: Option<KeyId>,
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature")
            .field("chunk_size", &self.chunk_size)
            .field("disk_size", &self.disk_size)
            .field("chunks", &self.hashes.len())
            .field("key_id", &self.key_id)
            .field("root", &self.root().to_hex())
            .finish()
    }
}

impl Signature {
    /// The plain signature of the image at `path` (a regular file or a block device), hashed
    /// over a memory map with every core (rayon). `chunk_size` is a power of two from 4 KiB to
    /// 8 MiB ([`DEFAULT_CHUNK_SIZE`](super::DEFAULT_CHUNK_SIZE) is 64 KiB).
    /// `progress(done, total)` is called after every 64 MiB; returning false cancels
    /// (Cancelled). For a signature that leaves the host, use
    /// [`compute_keyed`](Self::compute_keyed).
    pub fn compute(
        path: impl AsRef<Path>,
        chunk_size: u32,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        Self::compute_with(
            path.as_ref(),
            chunk_size,
            &ChunkHasher::Plain,
            true,
            progress,
        )
    }

    /// As [`compute`](Self::compute), with every chunk's hash keyed by `key` (its chunk-hash
    /// subkey): the signature is then written sealed ([`to_writer_sealed`](Self::to_writer_sealed)).
    pub fn compute_keyed(
        path: impl AsRef<Path>,
        chunk_size: u32,
        key: &Key,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        let h = ChunkHasher::keyed(key);
        Self::compute_with(path.as_ref(), chunk_size, &h, true, progress)
    }

    /// [`compute`](Self::compute) on the calling thread only: the serial twin the parallel path
    /// is tested against, and a choice for hosts that must not use other cores.
    pub fn compute_serial(
        path: impl AsRef<Path>,
        chunk_size: u32,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        Self::compute_with(
            path.as_ref(),
            chunk_size,
            &ChunkHasher::Plain,
            false,
            progress,
        )
    }

    fn compute_with(
        path: &Path,
        chunk_size: u32,
        hasher: &ChunkHasher,
        parallel: bool,
        progress: Progress<'_>,
    ) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        let image = Image::open(path)?;
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        let b = Batches {
            bytes: image.bytes(),
            data: &data,
            chunk_size,
            hasher,
            parallel,
        };
        Self::of_image(b, progress)
    }

    /// The signature of an image's bytes, skipping what `data` says are holes.
    pub(crate) fn of_image(b: Batches<'_>, progress: Progress<'_>) -> Result<Signature> {
        let disk_size = b.bytes.len() as u64;
        if disk_size > MAX_DISK_SIZE {
            return Err(Error::limit_exceeded(
                "image size",
                MAX_DISK_SIZE,
                disk_size,
                "bytes",
            ));
        }
        let (chunk_size, key_id) = (b.chunk_size, b.hasher.key_id());
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
        hash_batches(b, progress, "signature computation", |_, h| {
            hashes.extend_from_slice(h);
            Ok(())
        })?;
        Ok(Signature {
            chunk_size,
            disk_size,
            hashes,
            key_id,
        })
    }

    /// The plain signature of an image held in memory.
    pub fn of(bytes: &[u8], chunk_size: u32) -> Result<Signature> {
        Self::of_with(bytes, chunk_size, &ChunkHasher::Plain)
    }

    /// The keyed signature of an image held in memory.
    pub fn of_keyed(bytes: &[u8], chunk_size: u32, key: &Key) -> Result<Signature> {
        Self::of_with(bytes, chunk_size, &ChunkHasher::keyed(key))
    }

    fn of_with(bytes: &[u8], chunk_size: u32, hasher: &ChunkHasher) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        let b = Batches {
            bytes,
            data: &all_data,
            chunk_size,
            hasher,
            parallel: true,
        };
        Self::of_image(b, &mut |_, _| true)
    }

    /// The plain signature of an empty (or missing) image.
    pub fn empty(chunk_size: u32) -> Result<Signature> {
        check_chunk_size(chunk_size)?;
        Ok(Signature {
            chunk_size,
            disk_size: 0,
            hashes: Vec::new(),
            key_id: None,
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

    /// The id of the key the hashes are keyed by; None for a plain signature.
    pub fn key_id(&self) -> Option<KeyId> {
        self.key_id
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

    /// Checks that the signature's hashes are keyed by `key` (Some) or plain (None).
    pub(crate) fn check_mode(&self, key: Option<&Key>, doing: &str) -> Result<()> {
        match (self.key_id, key) {
            (None, None) => Ok(()),
            (Some(id), Some(k)) if id == k.id() => Ok(()),
            (Some(id), Some(k)) => Err(Error::invalid_argument(
                "key",
                format!(
                    "{doing}: the signature is keyed by key {id}, the key given is {}",
                    k.id()
                ),
            )),
            (Some(id), None) => Err(Error::invalid_argument(
                "signature",
                format!(
                    "{doing}: the signature is keyed by key {id}; use the sealed form with that key"
                ),
            )),
            (None, Some(_)) => Err(Error::invalid_argument(
                "signature",
                format!("{doing}: the signature is plain; compute it with the key"),
            )),
        }
    }

    /// Writes a plain signature (`.rcsig`, keyless: anyone who holds the file reads its
    /// hashes) to `w`, ending with the BLAKE3 trailer. A keyed signature is InvalidArgument:
    /// it is written with [`to_writer_sealed`](Self::to_writer_sealed).
    pub fn to_writer(&self, w: impl Write) -> Result<()> {
        self.check_mode(None, "writing a plain signature")?;
        self.write_with(w, None)
    }

    /// Writes a keyed signature sealed under `key` (encrypted and authenticated, in frames;
    /// the header stays readable), ending with the BLAKE3 trailer. The signature must have been
    /// computed with the same key.
    pub fn to_writer_sealed(&self, w: impl Write, key: &Key) -> Result<()> {
        self.check_mode(Some(key), "writing a sealed signature")?;
        self.write_with(w, Some(key))
    }

    fn write_with(&self, w: impl Write, key: Option<&Key>) -> Result<()> {
        let io = |e| Error::io("writing the signature", None, e);
        let sealing = Sealing::new(key)?;
        let mut head = Writer::with_capacity(HEADER_LEN);
        Preamble::new(FileKind::Signature, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(self.chunk_size)
            .u8(sealing.mode())
            .zeros(3)
            .u64(self.disk_size)
            .u64(self.hashes.len() as u64)
            .bytes(&sealing.key_id)
            .bytes(&sealing.salt);
        let mut w = BodyWriter::start(w, head.as_bytes(), sealing.seal(key)).map_err(io)?;
        for h in &self.hashes {
            w.write_all(h).map_err(io)?;
        }
        let (mut inner, _) = w.finish().map_err(io)?;
        inner.flush().map_err(io)
    }

    /// Reads a plain signature written by [`to_writer`](Self::to_writer), streaming: memory
    /// grows with the hashes actually read (32 bytes a chunk), never with a claimed count.
    /// Nothing is returned before the trailer has been verified. A sealed signature is
    /// InvalidArgument (read it with [`from_reader_sealed`](Self::from_reader_sealed)).
    pub fn from_reader(r: impl Read) -> Result<Signature> {
        Self::read_with(r, None)
    }

    /// Reads a signature sealed under `key`, as [`from_reader`](Self::from_reader) does.
    /// Damage is Corrupt (the trailer); a signature sealed under another key, or whose frames
    /// do not authenticate, is Authentication; so is a plain signature (anyone can forge one).
    pub fn from_reader_sealed(r: impl Read, key: &Key) -> Result<Signature> {
        Self::read_with(r, Some(key))
    }

    fn read_with(r: impl Read, key: Option<&Key>) -> Result<Signature> {
        let mut r = SignatureReader::open(r, key)?;
        let (chunk_size, disk_size, key_id) = (r.chunk_size, r.disk_size, r.key_id);
        let mut hashes = Vec::new();
        // In steps, so that a huge claimed count costs only what the file holds.
        while r.left > 0 {
            let n = r.left.min(1 << 14);
            r.read(n, &mut hashes)?;
        }
        r.finish()?;
        Ok(Signature {
            chunk_size,
            disk_size,
            hashes,
            key_id,
        })
    }

    /// Computes the signature of the image at `path` (plain, or keyed and sealed under `key`)
    /// and streams it to `w` as it is hashed: memory stays bounded whatever the image's size
    /// (a [`Signature`] holds 32 bytes a chunk). Returns the image's size and the signature's
    /// root. Progress as [`compute`](Self::compute).
    pub fn write_of_image(
        path: impl AsRef<Path>,
        chunk_size: u32,
        key: Option<&Key>,
        w: impl Write,
        progress: Progress<'_>,
    ) -> Result<(u64, blake3::Hash)> {
        check_chunk_size(chunk_size)?;
        let image = Image::open(path.as_ref())?;
        let disk_size = image.bytes().len() as u64;
        if disk_size > MAX_DISK_SIZE {
            return Err(Error::limit_exceeded(
                "image size",
                MAX_DISK_SIZE,
                disk_size,
                "bytes",
            ));
        }
        let io = |e| Error::io("writing the signature", None, e);
        let sealing = Sealing::new(key)?;
        let mut head = Writer::with_capacity(HEADER_LEN);
        Preamble::new(FileKind::Signature, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(chunk_size)
            .u8(sealing.mode())
            .zeros(3)
            .u64(disk_size)
            .u64(chunk_count(disk_size, chunk_size))
            .bytes(&sealing.key_id)
            .bytes(&sealing.salt);
        let mut body = BodyWriter::start(w, head.as_bytes(), sealing.seal(key)).map_err(io)?;
        let hasher = ChunkHasher::new(key);
        let data = |s: u64, e: u64| image.data_ranges(s, e);
        let b = Batches {
            bytes: image.bytes(),
            data: &data,
            chunk_size,
            hasher: &hasher,
            parallel: true,
        };
        let mut root = RootHasher::new(chunk_size, disk_size);
        hash_batches(b, progress, "signature computation", |_, hashes| {
            for h in hashes {
                root.update(h);
                body.write_all(h).map_err(io)?;
            }
            Ok(())
        })?;
        let (mut inner, _) = body.finish().map_err(io)?;
        inner.flush().map_err(io)?;
        Ok((disk_size, root.finalize()))
    }
}

/// Reads a signature's hashes as they are needed (memory bounded whatever the image's size):
/// the header first, then the hashes in chunk order, each frame of a sealed body
/// authenticated before its hashes are handed out; the file's end (its trailer) only at
/// [`finish`](Self::finish): act on nothing irrevocably before it returned `Ok`.
pub struct SignatureReader<R: Read> {
    body: super::seal::BodyReader<R>,
    chunk_size: u32,
    disk_size: u64,
    key_id: Option<KeyId>,
    left: u64,
}

impl<R: Read> SignatureReader<R> {
    /// Reads and checks the header; with `key`, the signature must be sealed under it, without,
    /// plain (see [`Signature::from_reader_sealed`]).
    pub fn open(r: R, key: Option<&Key>) -> Result<Self> {
        let mut r = HashingReader::new(r);
        let mut header = [0u8; HEADER_LEN];
        read_full(&mut r, &mut header[..PREAMBLE_LEN], "signature preamble", 0)?;
        Preamble::decode_slice(&header[..PREAMBLE_LEN], FileKind::Signature, VERSION_MAJOR)?;
        read_full(&mut r, &mut header[PREAMBLE_LEN..], "signature header", 16)?;
        let mut h = Reader::new(&header[PREAMBLE_LEN..], 16, "signature header");
        let at = h.offset();
        let chunk_size = h.u32("chunk size")?;
        check_chunk_size(chunk_size).map_err(|_| {
            Error::corrupt(
                "signature header field `chunk size`",
                Some(at),
                bad_chunk_size(chunk_size),
            )
        })?;
        let mode = h.u8("mode")?;
        h.reserved("reserved", 3)?;
        let at = h.offset();
        let disk_size = h.u64("disk size")?;
        if disk_size > MAX_DISK_SIZE {
            return Err(h.error(
                "disk size",
                format!("{disk_size} bytes at byte {at} exceeds 64 TiB"),
            ));
        }
        let count = h.u64("chunk count")?;
        if count != chunk_count(disk_size, chunk_size) {
            return Err(h.error(
                "chunk count",
                format!(
                    "{count} chunks cannot cover {disk_size} bytes in chunks of {chunk_size} bytes"
                ),
            ));
        }
        let key_id = h.array("key id")?;
        let salt = h.array("salt")?;
        let sealing = Sealing::decode(mode, key_id, salt).map_err(|d| h.error("mode", d))?;
        let mut body = sealing.open_body(r, "signature", &header, key)?;
        body.prime()?;
        Ok(SignatureReader {
            body,
            chunk_size,
            disk_size,
            key_id: sealing.sealed.then_some(KeyId(sealing.key_id)),
            left: count,
        })
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The size of the image the signature was taken of.
    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }

    /// The key the hashes are keyed by (None: plain).
    pub fn key_id(&self) -> Option<KeyId> {
        self.key_id
    }

    /// Hashes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Appends the next `n` hashes to `out`; more than the file holds is InvalidArgument.
    pub fn read(&mut self, n: u64, out: &mut Vec<[u8; 32]>) -> Result<()> {
        if n > self.left {
            return Err(Error::invalid_argument(
                "n",
                format!("{n} hashes asked; the signature holds {} more", self.left),
            ));
        }
        let mut buf = [0u8; 32];
        for _ in 0..n {
            self.body.fill(&mut buf, "hash")?;
            out.push(buf);
        }
        self.left -= n;
        Ok(())
    }

    /// Reads what is left and checks the end of the file.
    pub fn finish(mut self) -> Result<()> {
        let mut sink = Vec::new();
        while self.left > 0 {
            let n = self.left.min(1 << 14);
            sink.clear();
            self.read(n, &mut sink)?;
        }
        self.body.finish()
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
