//! Pack files (many sealed blobs each, copied verbatim from bundles) and their indexes, which
//! also record the BLAKE3 of every stored blob so that a vault is checked without the key
//! (`docs/FORMAT.md` §15.2–15.3).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::layout::{Layout, PackId, VERSION_MAJOR, VERSION_MINOR};
use crate::blob::{BLOB_OVERHEAD, MAX_BLOB_LEN};
use crate::bundle::format::blob_entry_header;
use crate::direct::DirectWriter;
use crate::error::{Error, Result};
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::trailer::{TRAILER_LEN, verify_slice};
use crate::format::{Reader, TrailerWriter, Writer};
use crate::fsutil::{AtomicFile, read_small, write_atomic_unscanned};
use crate::id::BlobId;

/// A pack is closed once it holds this many bytes.
pub(crate) const PACK_TARGET: u64 = 64 << 20;
/// Bytes of a blob entry's header in a pack, as in bundles.
pub(crate) const ENTRY_LEN: usize = crate::bundle::format::BLOB_ENTRY_LEN;
/// The largest stored blob.
const MAX_STORED: usize = MAX_BLOB_LEN + BLOB_OVERHEAD;
/// The largest pack: the target plus one largest entry.
const MAX_PACK_LEN: u64 = PACK_TARGET + (ENTRY_LEN + MAX_STORED) as u64 + 64;
/// Bytes of one index entry.
const INDEX_ENTRY_LEN: usize = 80;
const INDEX_FIXED: usize = PREAMBLE_LEN + 16 + 8 + 8;
/// The largest index: one entry per smallest possible blob of the largest pack.
const MAX_INDEX_LEN: usize =
    INDEX_FIXED + INDEX_ENTRY_LEN * (MAX_PACK_LEN as usize / (ENTRY_LEN + BLOB_OVERHEAD)) + 32;

/// Where one stored blob is in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub id: BlobId,
    /// Offset of the stored bytes (after the entry header).
    pub offset: u64,
    pub len: u32,
    /// BLAKE3 of the stored bytes.
    pub hash: [u8; 32],
}

impl IndexEntry {
    /// Decodes one 80-byte index entry, its stored length checked to be in range.
    fn decode(r: &mut Reader<'_>) -> Result<IndexEntry> {
        let id = BlobId(r.array("blob id")?);
        let offset = r.u64("offset")?;
        let len = r.u32("stored length")?;
        r.reserved("reserved", 4)?;
        let hash = r.array("stored hash")?;
        if (len as usize) < BLOB_OVERHEAD || len as usize > MAX_STORED {
            return Err(r.error(
                "stored length",
                format!("{len} bytes is outside {BLOB_OVERHEAD} to {MAX_STORED} bytes"),
            ));
        }
        Ok(IndexEntry {
            id,
            offset,
            len,
            hash,
        })
    }
}

/// A pack's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackIndex {
    pub pack: PackId,
    pub pack_len: u64,
    pub entries: Vec<IndexEntry>,
}

impl PackIndex {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(INDEX_FIXED + INDEX_ENTRY_LEN * self.entries.len() + TRAILER_LEN);
        Preamble::new(FileKind::PackIndex, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.bytes(&self.pack.0)
            .u64(self.pack_len)
            .u64(self.entries.len() as u64);
        for e in &self.entries {
            w.bytes(e.id.as_bytes())
                .u64(e.offset)
                .u32(e.len)
                .zeros(4)
                .bytes(&e.hash);
        }
        let mut bytes = w.into_bytes();
        let h = blake3::hash(&bytes);
        bytes.extend_from_slice(h.as_bytes());
        bytes
    }

    /// Decodes and checks an index: trailer, shape, entries in pack order, not overlapping,
    /// within the pack.
    pub fn decode(bytes: &[u8]) -> Result<PackIndex> {
        let body = verify_slice(bytes, "pack index")?;
        let mut r = Reader::new(body, 0, "pack index");
        Preamble::decode(&mut r, FileKind::PackIndex, VERSION_MAJOR)?;
        let pack = PackId(r.array("pack id")?);
        let pack_len = r.u64("pack length")?;
        if !(PREAMBLE_LEN as u64 + TRAILER_LEN as u64..=MAX_PACK_LEN).contains(&pack_len) {
            return Err(r.error("pack length", format!("{pack_len} bytes is out of range")));
        }
        let count = r.u64("entry count")?;
        if count.checked_mul(INDEX_ENTRY_LEN as u64) != Some(r.remaining() as u64) {
            return Err(r.error(
                "entry count",
                format!(
                    "{count} entries do not fill the {} bytes left",
                    r.remaining()
                ),
            ));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut next = PREAMBLE_LEN as u64;
        for _ in 0..count {
            let IndexEntry {
                id,
                offset,
                len,
                hash,
            } = IndexEntry::decode(&mut r)?;
            if offset != next + ENTRY_LEN as u64
                || offset + u64::from(len) > pack_len - TRAILER_LEN as u64
            {
                return Err(r.error(
                    "offset",
                    format!("blob {id} at byte {offset} is not where the pack's entries put it"),
                ));
            }
            next = offset + u64::from(len);
            entries.push(IndexEntry {
                id,
                offset,
                len,
                hash,
            });
        }
        if next + TRAILER_LEN as u64 != pack_len {
            return Err(r.error("pack length", "the entries do not fill the pack"));
        }
        Ok(PackIndex {
            pack,
            pack_len,
            entries,
        })
    }

    /// Reads the index of pack `id`.
    pub fn load(layout: &Layout, id: &PackId) -> Result<PackIndex> {
        let path = layout.pack_index(id);
        let bytes = read_small(&path, "pack index", MAX_INDEX_LEN)?;
        let index = Self::decode(&bytes).map_err(|e| e.with_path(&path))?;
        if index.pack != *id {
            return Err(
                Error::corrupt("pack index", Some(16), "it names another pack").with_path(&path),
            );
        }
        Ok(index)
    }
}

/// A pack's index opened to read single entries ([`entry`](Self::entry)) without reading it
/// whole: its preamble, pack id, entry count and length are checked on opening; its trailer is
/// not (a whole read does that: [`PackIndex::load`], verify). For a caller that confirms what
/// it reads (the blob index's answers), never for reading blobs.
#[derive(Debug)]
pub(crate) struct IndexEntries {
    file: File,
    path: PathBuf,
    count: u64,
}

impl IndexEntries {
    /// Opens pack `id`'s index; `None` when it is not there (or not a file).
    pub fn open(layout: &Layout, id: &PackId) -> Result<Option<IndexEntries>> {
        let path = layout.pack_index(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening a pack index", Some(&path), e)),
        };
        let io = |e| Error::io("reading a pack index", Some(&path), e);
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; INDEX_FIXED];
        if len < (INDEX_FIXED + TRAILER_LEN) as u64 {
            return Err(
                Error::corrupt("pack index", Some(0), format!("{len} bytes is too short"))
                    .with_path(&path),
            );
        }
        file.read_exact_at(&mut head, 0).map_err(io)?;
        let mut r = Reader::new(&head, 0, "pack index");
        let shape = (|| {
            Preamble::decode(&mut r, FileKind::PackIndex, VERSION_MAJOR)?;
            let pack = PackId(r.array("pack id")?);
            r.u64("pack length")?;
            let count = r.u64("entry count")?;
            if pack != *id {
                return Err(r.error("pack id", "it names another pack"));
            }
            let want = count
                .checked_mul(INDEX_ENTRY_LEN as u64)
                .and_then(|n| n.checked_add((INDEX_FIXED + TRAILER_LEN) as u64));
            if want != Some(len) {
                return Err(r.error(
                    "entry count",
                    format!("{count} entries do not fill the file's {len} bytes"),
                ));
            }
            Ok(count)
        })();
        let count = shape.map_err(|e| e.with_path(&path))?;
        Ok(Some(IndexEntries { file, path, count }))
    }

    /// Entries in the index.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Entry `i` (pack order), its stored length checked to be in range.
    pub fn entry(&self, i: u64) -> Result<IndexEntry> {
        if i >= self.count {
            return Err(Error::corrupt(
                "pack index",
                None,
                format!("entry {i} is past its {} entries", self.count),
            )
            .with_path(&self.path));
        }
        let at = INDEX_FIXED as u64 + i * INDEX_ENTRY_LEN as u64;
        let mut buf = [0u8; INDEX_ENTRY_LEN];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|e| Error::io("reading a pack index", Some(&self.path), e))?;
        IndexEntry::decode(&mut Reader::new(&buf, at, "pack index"))
            .map_err(|e| e.with_path(&self.path))
    }
}

/// Reads a blob's stored bytes from its pack; `check` also compares them with the index's
/// BLAKE3 ([`Corrupt`](crate::ErrorKind::Corrupt) when they differ).
pub(crate) fn read_stored(
    pack: &File,
    path: &std::path::Path,
    e: &IndexEntry,
    check: bool,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; e.len as usize];
    pack.read_exact_at(&mut buf, e.offset).map_err(|err| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            // A pack shorter than its index says: damage, like a flipped byte.
            Error::corrupt(
                format!("blob {} in its pack", e.id),
                Some(e.offset),
                "the pack ends before it",
            )
            .with_path(path)
        } else {
            Error::io("reading a pack", Some(path), err)
        }
    })?;
    if check && *blake3::hash(&buf).as_bytes() != e.hash {
        return Err(Error::corrupt(
            format!("blob {} in its pack", e.id),
            Some(e.offset),
            "its stored bytes do not match the BLAKE3 in the pack index",
        )
        .with_path(path));
    }
    Ok(buf)
}

/// Writes one pack: blobs appended verbatim, then (on [`close`](Self::close)) the trailer; then
/// ([`ClosedPack::publish`]) the pack published, then its index published. A pack without an index is a leftover.
pub(crate) struct PackWriter {
    id: PackId,
    path: PathBuf,
    out: TrailerWriter<DirectWriter>,
    entries: Vec<IndexEntry>,
}

impl PackWriter {
    pub fn create(layout: &Layout) -> Result<PackWriter> {
        let id = PackId::random()?;
        let path = layout.pack(&id);
        let mut out = TrailerWriter::new(DirectWriter::new(AtomicFile::create_unscanned(
            &path, false,
        )?));
        out.write_all(&Preamble::new(FileKind::Pack, VERSION_MAJOR, VERSION_MINOR).to_bytes())
            .map_err(|e| Error::io("writing a pack", Some(&path), e))?;
        Ok(PackWriter {
            id,
            path,
            out,
            entries: Vec::new(),
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.written()
    }

    /// Appends a sealed blob; `hash` is the BLAKE3 of `stored`.
    pub fn add(&mut self, id: &BlobId, stored: &[u8], hash: [u8; 32]) -> Result<()> {
        self.out
            .write_all(&blob_entry_header(id, stored.len() as u32))
            .and_then(|()| self.out.write_all(stored))
            .map_err(|e| Error::io("writing a pack", Some(&self.path), e))?;
        self.entries.push(IndexEntry {
            id: *id,
            offset: self.out.written() - stored.len() as u64,
            len: stored.len() as u32,
            hash,
        });
        Ok(())
    }

    /// Writes the rest of the pack and its trailer, and lets the write buffer go: a pack that
    /// filled up while more come costs its index entries and a file handle until it is
    /// published (or dropped: its temporary file is removed).
    pub fn close(self) -> Result<ClosedPack> {
        let io = |e| Error::io("writing a pack", Some(&self.path), e);
        let (w, _) = self.out.finish().map_err(io)?;
        let file = w.into_inner().map_err(io)?;
        Ok(ClosedPack {
            id: self.id,
            path: self.path,
            file,
            entries: self.entries,
        })
    }
}

/// A pack written whole but not yet published ([`PackWriter::close`]).
pub(crate) struct ClosedPack {
    id: PackId,
    path: PathBuf,
    file: AtomicFile,
    entries: Vec<IndexEntry>,
}

impl ClosedPack {
    /// Publishes the pack (synced, renamed into place) and then its index.
    pub fn publish(self, layout: &Layout) -> Result<PackIndex> {
        self.file.commit()?;
        let index = PackIndex {
            pack: self.id,
            pack_len: std::fs::metadata(&self.path)
                .map_err(|e| Error::io("reading a pack's size", Some(&self.path), e))?
                .len(),
            entries: self.entries,
        };
        write_atomic_unscanned(&layout.pack_index(&self.id), &index.encode(), false)?;
        Ok(index)
    }
}
