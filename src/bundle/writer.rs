//! Writing a bundle: blobs streamed first, then header, manifests, tag, footer and trailer, so
//! that a bundle of any size is written in one pass in bounded memory (manifests aside).

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::format::{
    BLOB_ENTRY_LEN, BundleHeader, DiskManifest, ENTRY_BLOB, Footer, VERSION_MAJOR, VERSION_MINOR,
    encode_manifests,
};
use crate::blob::{self, EncodedBlob};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::{TrailerWriter, Writer};
use crate::fsutil::AtomicFile;
use crate::id::{BlobId, PointId};

/// Bytes written between two write-back kicks.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// What a finished bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBundle {
    /// Where it is.
    pub path: PathBuf,
    /// Its recovery point's id.
    pub point: PointId,
    /// Its sequence number.
    pub seq: u64,
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
    out: TrailerWriter<BufWriter<AtomicFile>>,
    path: PathBuf,
    seen: HashSet<BlobId>,
    plain_bytes: u64,
    /// Bytes written when write-back was last started.
    kicked: u64,
}

impl BundleWriter {
    /// Starts a bundle at `path`, which must not exist.
    pub fn create(path: impl AsRef<Path>) -> Result<BundleWriter> {
        let path = path.as_ref();
        let file = AtomicFile::create(path, false)?;
        let mut out = TrailerWriter::new(BufWriter::with_capacity(1 << 20, file));
        out.write_all(&Preamble::new(FileKind::Bundle, VERSION_MAJOR, VERSION_MINOR).to_bytes())
            .map_err(|e| Error::io("writing the bundle", Some(path), e))?;
        Ok(BundleWriter {
            out,
            path: path.to_path_buf(),
            seen: HashSet::new(),
            plain_bytes: 0,
            kicked: 0,
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
        write_entry(&mut self.out, &self.path, blob, &mut self.plain_bytes)?;
        Ok(true)
    }

    /// Encodes `pieces` (plaintexts) in parallel and adds the new ones; returns each piece's
    /// id, in order. Ids are computed first, so data already in the bundle is not encoded again.
    pub fn add_plaintexts(
        &mut self,
        key: &Key,
        pieces: &[&[u8]],
        level: i32,
    ) -> Result<Vec<BlobId>> {
        let (ids, encoded) = encode_new(&self.seen, key, pieces, level)?;
        for b in &encoded {
            self.add_blob(b)?;
        }
        Ok(ids)
    }

    /// As [`add_plaintexts`](Self::add_plaintexts), pipelined: this batch is encoded on the
    /// pool while the calling thread writes the previous batch, which waits in `carry`. Call
    /// [`flush_carry`](Self::flush_carry) after the last batch.
    pub(crate) fn add_pipelined(
        &mut self,
        key: &Key,
        pieces: &[&[u8]],
        level: i32,
        carry: &mut Vec<EncodedBlob>,
    ) -> Result<Vec<BlobId>> {
        // The previous batch's new blobs join `seen` before this batch is deduplicated against
        // it; a blob both batches hold is then written once.
        carry.retain(|b| self.seen.insert(b.id));
        let prev = std::mem::take(carry);
        let mut next = None;
        let (seen, out, path, plain) =
            (&self.seen, &mut self.out, &self.path, &mut self.plain_bytes);
        let written = rayon::in_place_scope(|s| {
            s.spawn(|_| next = Some(encode_new(seen, key, pieces, level)));
            prev.iter()
                .try_for_each(|b| write_entry(out, path, b, plain))
        });
        let (ids, encoded) = next.expect("the encoding task ran")?;
        written?;
        *carry = encoded;
        self.kick_writeback();
        Ok(ids)
    }

    /// Starts the write-back of what was written since the last kick, every 64 MiB, so that
    /// the final sync has little left.
    fn kick_writeback(&mut self) {
        if self.out.written() - self.kicked >= WRITEBACK_EVERY {
            self.kicked = self.out.written();
            crate::sys::start_writeback(self.out.get_ref().get_ref().file());
        }
    }

    /// Writes what [`add_pipelined`](Self::add_pipelined) left in `carry`.
    pub(crate) fn flush_carry(&mut self, carry: &mut Vec<EncodedBlob>) -> Result<()> {
        for b in carry.drain(..) {
            self.add_blob(&b)?;
        }
        Ok(())
    }

    /// Writes the header (its manifests digest and disk count filled in here), the manifests,
    /// the authentication tag under `key`, the footer and the trailer; syncs and publishes.
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
        header.manifests_digest = *blake3::hash(&manifests).as_bytes();
        header.disk_count = disks.len() as u32;
        let head = header.encode()?;
        let point = PointId::of_header(&head);
        let mut mac = key.manifest_hasher();
        mac.update(&head).update(&manifests);
        let footer = Footer {
            header_offset: self.out.written(),
            header_len: head.len() as u64,
            manifests_len: manifests.len() as u64,
            blob_count: self.seen.len() as u64,
        };
        let io = |e| Error::io("writing the bundle", Some(&self.path), e);
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(&manifests).map_err(io)?;
        self.out.write_all(mac.finalize().as_bytes()).map_err(io)?;
        self.out.write_all(&footer.encode()).map_err(io)?;
        let (buf, _) = self.out.finish().map_err(io)?;
        let file = buf
            .into_inner()
            .map_err(|e| Error::io("writing the bundle", Some(&self.path), e.into_error()))?;
        file.commit()?;
        let file_bytes = std::fs::metadata(&self.path)
            .map_err(|e| Error::io("reading the bundle's size", Some(&self.path), e))?
            .len();
        Ok(WrittenBundle {
            path: self.path,
            point,
            seq: header.seq,
            blobs: footer.blob_count,
            plain_bytes: self.plain_bytes,
            file_bytes,
        })
    }
}

/// The ids of `pieces` and the encoded blobs of those not in `seen` (each id once).
fn encode_new(
    seen: &HashSet<BlobId>,
    key: &Key,
    pieces: &[&[u8]],
    level: i32,
) -> Result<(Vec<BlobId>, Vec<EncodedBlob>)> {
    let ids: Vec<BlobId> = pieces.par_iter().map(|p| key.blob_id(p)).collect();
    let mut fresh = HashSet::new();
    let todo: Vec<usize> = (0..pieces.len())
        .filter(|&i| !seen.contains(&ids[i]) && fresh.insert(ids[i]))
        .collect();
    let encoded = todo
        .par_iter()
        .map(|&i| blob::encode_with_id(key, ids[i], pieces[i], level))
        .collect::<Result<_>>()?;
    Ok((ids, encoded))
}

/// Writes one blob entry.
fn write_entry(
    out: &mut TrailerWriter<BufWriter<AtomicFile>>,
    path: &Path,
    blob: &EncodedBlob,
    plain_bytes: &mut u64,
) -> Result<()> {
    let mut h = Writer::with_capacity(BLOB_ENTRY_LEN);
    h.u8(ENTRY_BLOB)
        .zeros(3)
        .u32(blob.bytes.len() as u32)
        .bytes(blob.id.as_bytes());
    out.write_all(h.as_bytes())
        .and_then(|()| out.write_all(&blob.bytes))
        .map_err(|e| Error::io("writing the bundle", Some(path), e))?;
    *plain_bytes += blob::declared_len(&blob.bytes)? as u64;
    Ok(())
}
