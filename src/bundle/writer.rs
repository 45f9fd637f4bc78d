//! Writing a bundle: blobs streamed first, then header, manifests, tag, footer and trailer, so
//! that a bundle of any size is written in one pass in bounded memory (manifests aside).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::format::{
    BundleHeader, DiskManifest, Footer, TableRow, VERSION_MAJOR, VERSION_MINOR, blob_entry_header,
    encode_manifests, encode_table,
};
use crate::blob::{self, EncodedBlob};
use crate::crypto::Key;
use crate::direct::DirectWriter;
use crate::error::{Error, Result};
use crate::format::TrailerWriter;
use crate::format::header::{FileKind, Preamble};
use crate::fsutil::AtomicFile;
use crate::id::{BlobId, PointId};
use crate::resync::signature::is_zero;

/// Bytes written between two write-back kicks.
const WRITEBACK_EVERY: u64 = 64 << 20;
/// Encoded batches that may wait for the writer thread.
pub(crate) const QUEUE: usize = 2;

/// Buffers of written blobs, handed back to the encoders.
type Spare = std::sync::Mutex<Vec<Vec<u8>>>;
/// The most bytes of spare buffers kept (their capacity).
const MAX_SPARE_BYTES: usize = 32 << 20;

/// The producing side of [`BundleWriter::pipelined`].
pub(crate) struct Stage<'a> {
    spare: &'a Spare,
    seen: &'a mut HashSet<BlobId>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<EncodedBlob>>>,
    key: &'a Key,
    level: i32,
}

impl Stage<'_> {
    /// Encodes `pieces` in parallel and queues the new ones for writing: one pass per piece
    /// (zero check, id, encoding), so the pool has one task list per batch. Returns each
    /// piece's id in order, `None` for a piece of zeros (stored as no blob).
    pub fn add(&mut self, pieces: &[&[u8]]) -> Result<Vec<Option<BlobId>>> {
        self.add_unless(pieces, None)
    }

    /// As [`add`](Self::add), except that a piece whose id is `known[i]` (the id its place
    /// holds already) is not encoded; its id is still returned. `None` for zeros.
    pub fn add_unless(
        &mut self,
        pieces: &[&[u8]],
        known: Option<&[[u8; 32]]>,
    ) -> Result<Vec<Option<BlobId>>> {
        let (seen, key, level, spare) = (&*self.seen, self.key, self.level, self.spare);
        let done: Vec<Option<(BlobId, Option<EncodedBlob>)>> = pieces
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                if is_zero(p) {
                    return Ok(None);
                }
                let id = key.blob_id(p);
                if seen.contains(&id) || known.is_some_and(|k| k[i] == id.0) {
                    return Ok(Some((id, None)));
                }
                let buf = spare
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .unwrap_or_default();
                Ok(Some((id, Some(blob::encode_into(key, id, p, level, buf)?))))
            })
            .collect::<Result<_>>()?;
        let mut ids = Vec::with_capacity(done.len());
        let mut fresh = Vec::new();
        for d in done {
            match d {
                None => ids.push(None),
                Some((id, blob)) => {
                    ids.push(Some(id));
                    // A piece repeated within the batch was encoded twice: keep one.
                    if let Some(b) = blob
                        && self.seen.insert(id)
                    {
                        fresh.push(b);
                    }
                }
            }
        }
        if !fresh.is_empty() {
            let tx = self.tx.as_ref().expect("the stage is open");
            tx.send(fresh).map_err(|_| {
                Error::io(
                    "writing the bundle",
                    None,
                    std::io::Error::other("the writer thread stopped"),
                )
            })?;
        }
        Ok(ids)
    }
}

/// What a finished bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBundle {
    /// Where it is.
    pub path: PathBuf,
    /// Its recovery point's id.
    pub point: PointId,
    /// Its sequence number.
    pub seq: u64,
    /// When the point was taken (nanoseconds since the Unix epoch).
    pub time_ns: u64,
    /// Blobs stored.
    pub blobs: u64,
    /// Plaintext bytes of those blobs.
    pub plain_bytes: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
}

/// Writes one bundle. Blobs go in first (each id once), then [`finish`](Self::finish) writes
/// the header and manifests and publishes the file crash-safely (temporary name, sync, rename).
pub struct BundleWriter {
    out: TrailerWriter<DirectWriter>,
    path: PathBuf,
    seen: HashSet<BlobId>,
    /// Every blob written, in order: the blob table the signature covers.
    rows: Vec<TableRow>,
    plain_bytes: u64,
    /// Bytes written when write-back was last started.
    kicked: u64,
    /// Whether a bundle already at `path` with the same point id counts as this one.
    same_ok: bool,
}

impl BundleWriter {
    /// Starts a bundle at `path`, which must not exist (a symbolic link there counts). The
    /// file is created 0600 under a temporary name (see [`OutputFile`](crate::OutputFile)).
    pub fn create(path: impl AsRef<Path>) -> Result<BundleWriter> {
        Self::start(path.as_ref(), false)
    }

    /// As [`create`](Self::create); `replace` replaces a file already at `path` when this one
    /// is published (until then the old one stays).
    pub(crate) fn start(path: &Path, replace: bool) -> Result<BundleWriter> {
        BundleWriter::open(path, AtomicFile::create(path, replace)?, false)
    }

    /// Starts a bundle at `path` as [`start`](Self::start) does without replacing, except
    /// that a file already there holding the same bytes (sealing is deterministic, so shipping
    /// the same point again makes them) is taken as this one when publishing: shipping again
    /// what was shipped writes nothing new.
    pub(crate) fn start_or_same(path: &Path) -> Result<BundleWriter> {
        BundleWriter::open(path, AtomicFile::create_checked_at_commit(path)?, true)
    }

    fn open(path: &Path, file: AtomicFile, same_ok: bool) -> Result<BundleWriter> {
        // Gigabytes the host only moves on: written around the page cache where possible.
        let mut out = TrailerWriter::new(DirectWriter::new(file));
        out.write_all(&Preamble::new(FileKind::Bundle, VERSION_MAJOR, VERSION_MINOR).to_bytes())
            .map_err(|e| Error::io("writing the bundle", Some(path), e))?;
        Ok(BundleWriter {
            out,
            path: path.to_path_buf(),
            seen: HashSet::new(),
            rows: Vec::new(),
            plain_bytes: 0,
            kicked: 0,
            same_ok,
        })
    }

    /// Whether a blob of this id is already in the bundle.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.seen.contains(id)
    }

    /// Adds a sealed blob; a second blob of the same id is skipped (returns false).
    pub fn add_blob(&mut self, blob: &EncodedBlob) -> Result<bool> {
        if !self.seen.insert(blob.id) {
            return Ok(false);
        }
        write_entry(
            &mut self.out,
            &self.path,
            blob,
            &mut self.plain_bytes,
            &mut self.rows,
        )?;
        Ok(true)
    }

    /// Runs `produce` with a [`Stage`] that encodes batches of plaintexts on the pool while a
    /// writer thread appends the previous batches to the file (at most [`QUEUE`] batches
    /// wait), so that encoding never waits for the disk and writing never waits for encoding.
    pub(crate) fn pipelined<R>(
        &mut self,
        key: &Key,
        level: i32,
        produce: impl FnOnce(&mut Stage<'_>) -> Result<R>,
    ) -> Result<R> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<EncodedBlob>>(QUEUE);
        let (out, path, plain, kicked, rows) = (
            &mut self.out,
            &self.path,
            &mut self.plain_bytes,
            &mut self.kicked,
            &mut self.rows,
        );
        let seen = &mut self.seen;
        let spare = Spare::default();
        std::thread::scope(|scope| {
            let spare_w = &spare;
            let writer = scope.spawn(move || -> Result<()> {
                for batch in rx {
                    for b in &batch {
                        write_entry(out, path, b, plain, rows)?;
                    }
                    let mut s = spare_w.lock().unwrap_or_else(|e| e.into_inner());
                    let mut kept: usize = s.iter().map(Vec::capacity).sum();
                    for b in batch {
                        if kept + b.bytes.capacity() <= MAX_SPARE_BYTES {
                            kept += b.bytes.capacity();
                            s.push(b.bytes);
                        }
                    }
                    drop(s);
                    if out.written() - *kicked >= WRITEBACK_EVERY {
                        *kicked = out.written();
                        crate::sys::start_writeback(out.get_ref().file().file());
                    }
                }
                Ok(())
            });
            let mut stage = Stage {
                spare: &spare,
                seen,
                tx: Some(tx),
                key,
                level,
            };
            let produced = produce(&mut stage);
            stage.tx = None; // ends the writer's loop
            let written = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // A write error explains a failed send; report it first.
            written?;
            produced
        })
    }

    /// Writes the header (its manifests and blob table digests, verifying key and disk count
    /// filled in here), the manifests, the blob table, the point's signature under `key`, the
    /// footer and the trailer; syncs and publishes.
    ///
    /// Every blob the manifests reference must have been added.
    pub fn finish(
        mut self,
        mut header: BundleHeader,
        disks: &[DiskManifest],
        key: &Key,
    ) -> Result<WrittenBundle> {
        for d in disks {
            for e in d.extents.iter() {
                if let crate::Source::Blob { id, .. } = e.source
                    && !self.seen.contains(&id)
                {
                    return Err(Error::invalid_argument(
                        "manifests",
                        format!(
                            "disk `{}` references blob {id}, which was not added",
                            d.name
                        ),
                    ));
                }
            }
        }
        if header.key_id() != key.id() {
            return Err(Error::invalid_argument(
                "header",
                "its key file is not the key the blobs are sealed under",
            ));
        }
        let manifests = encode_manifests(disks)?;
        let table = encode_table(&self.rows);
        header.manifests_digest = *blake3::hash(&manifests).as_bytes();
        header.blobs_digest = *blake3::hash(&table).as_bytes();
        header.verifying_key = key.verifying_key();
        header.disk_count = disks.len() as u32;
        let head = header.encode()?;
        let point = PointId::of_header(&head);
        let signature = key.sign(crate::crypto::SIGNED_POINT, &point.0);
        let footer = Footer {
            header_offset: self.out.written(),
            header_len: head.len() as u64,
            manifests_len: manifests.len() as u64,
            table_len: table.len() as u64,
            blob_count: self.seen.len() as u64,
        };
        let io = |e| Error::io("writing the bundle", Some(&self.path), e);
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(&manifests).map_err(io)?;
        self.out.write_all(&table).map_err(io)?;
        self.out.write_all(&signature).map_err(io)?;
        self.out.write_all(&footer.encode()).map_err(io)?;
        let (buf, hash) = self.out.finish().map_err(io)?;
        let file = buf.into_inner().map_err(io)?;
        match file.commit() {
            Ok(()) => {}
            Err(e) if self.same_ok && e.kind() == crate::ErrorKind::AlreadyExists => {
                // The same bytes only: a file whose intact trailer is this one's hash (not
                // merely the same header: a damaged or cut copy is not taken as shipped).
                let same = File::open(&self.path).ok().and_then(|f| {
                    let mut r = std::io::BufReader::new(f);
                    crate::format::trailer::verify_stream(&mut r, "bundle").ok()
                });
                if same.map(|(_, h)| h) != Some(hash) {
                    return Err(Error::AlreadyExists {
                        what: format!(
                            "{} (not the bundle of point {} this ship makes, or a damaged copy \
                             of it: move it away)",
                            self.path.display(),
                            point.to_hex()
                        ),
                    });
                }
            }
            Err(e) => return Err(e),
        }
        let file_bytes = std::fs::metadata(&self.path)
            .map_err(|e| Error::io("reading the bundle's size", Some(&self.path), e))?
            .len();
        Ok(WrittenBundle {
            path: self.path,
            point,
            seq: header.seq,
            time_ns: header.time_ns,
            blobs: footer.blob_count,
            plain_bytes: self.plain_bytes,
            file_bytes,
        })
    }
}

/// Writes one blob entry.
fn write_entry(
    out: &mut TrailerWriter<DirectWriter>,
    path: &Path,
    blob: &EncodedBlob,
    plain_bytes: &mut u64,
    rows: &mut Vec<TableRow>,
) -> Result<()> {
    out.write_all(&blob_entry_header(&blob.id, blob.bytes.len() as u32))
        .and_then(|()| out.write_all(&blob.bytes))
        .map_err(|e| Error::io("writing the bundle", Some(path), e))?;
    *plain_bytes += blob::declared_len(&blob.bytes)? as u64;
    rows.push(TableRow {
        id: blob.id,
        hash: blob.sealed_hash,
        len: blob.bytes.len() as u32,
    });
    Ok(())
}
