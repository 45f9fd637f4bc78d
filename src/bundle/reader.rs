//! Reading a bundle: [`Bundle::open`] reads its header and manifests; [`Bundle::verify`] checks
//! every byte without the key; [`Bundle::verify_with_key`] also authenticates every blob.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::format::{
    BLOB_ENTRY_LEN, BundleHeader, DiskManifest, ENTRY_BLOB, FOOTER_LEN, Footer, MAX_HEADER_LEN,
    MAX_MANIFESTS_LEN, MAX_TABLE_ROWS, SIGNATURE_LEN, TABLE_ROW_LEN, TableRow, VERSION_MAJOR,
    read_manifests, read_table,
};
use crate::blob::{self, BLOB_OVERHEAD, MAX_BLOB_LEN};
use crate::crypto::{Key, SIGNED_POINT, VerifyingKey};
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::stream::In;
use crate::format::trailer::TRAILER_LEN;
use crate::format::{HashingReader, Reader, checked, codec::read_full};
use crate::id::{BlobId, PointId};

const WHAT: &str = "bundle";
/// Stored bytes of blobs decoded together by `verify_with_key`.
const VERIFY_BATCH: usize = 64 << 20;

/// What [`Bundle::for_each_entry`] hands each blob to: its row, id and stored bytes.
type EntryFn<'a> = dyn FnMut(usize, &BlobId, &[u8]) -> Result<()> + 'a;

/// An opened bundle: header and manifests read and checked for shape; blobs not read yet.
#[derive(Debug, Clone)]
pub struct Bundle {
    path: PathBuf,
    header: BundleHeader,
    header_bytes: Vec<u8>,
    disks: Vec<DiskManifest>,
    /// The blob table's rows.
    rows: Arc<Vec<TableRow>>,
    signature: [u8; SIGNATURE_LEN],
    footer: Footer,
    point: PointId,
}

/// What [`Bundle::verify`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleStats {
    /// Blobs in the bundle.
    pub blobs: u64,
    /// Their stored (sealed) bytes.
    pub stored_bytes: u64,
    /// Their plaintext bytes, as declared.
    pub plain_bytes: u64,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io("reading the bundle", Some(path), e)
}

impl Bundle {
    /// Opens a bundle: preamble, footer, header and manifests, checked for shape and for the
    /// manifests digest. The blobs and the trailer are checked by [`verify`](Self::verify).
    pub fn open(path: impl AsRef<Path>) -> Result<Bundle> {
        let path = path.as_ref();
        Self::open_inner(path).map_err(|e| e.with_path(path))
    }

    fn open_inner(path: &Path) -> Result<Bundle> {
        let mut f = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("bundle {}", path.display()),
            },
            _ => Error::io("opening the bundle", Some(path), e),
        })?;
        let len = f.metadata().map_err(io_err(path))?.len();
        Preamble::read(&mut f, FileKind::Bundle, VERSION_MAJOR)
            .map_err(|e| crate::format::trailer::version_or_damage(path, WHAT, e))?;
        let fixed = (PREAMBLE_LEN + SIGNATURE_LEN + FOOTER_LEN + TRAILER_LEN) as u64;
        if len < fixed {
            return Err(Error::corrupt(
                WHAT,
                Some(0),
                format!("truncated: {len} bytes cannot hold a bundle"),
            ));
        }
        let footer_at = len - (FOOTER_LEN + TRAILER_LEN) as u64;
        let mut fb = [0u8; FOOTER_LEN];
        f.seek(SeekFrom::Start(footer_at)).map_err(io_err(path))?;
        read_full(&mut f, &mut fb, "bundle footer", footer_at)?;
        let footer = Footer::decode(&fb, footer_at)?;
        let bad = |d: String| Err(Error::corrupt("bundle footer", Some(footer_at), d));
        if footer.header_len > MAX_HEADER_LEN as u64
            || footer.manifests_len > MAX_MANIFESTS_LEN as u64
            || footer.blob_count > MAX_TABLE_ROWS
        {
            return bad(format!(
                "header of {} bytes, manifests of {} bytes or {} blobs beyond the caps",
                footer.header_len, footer.manifests_len, footer.blob_count
            ));
        }
        // The count is capped: the table's length follows from it.
        if footer.table_len != 8 + footer.blob_count * TABLE_ROW_LEN as u64 {
            return bad(format!(
                "a blob table of {} bytes does not list {} blobs",
                footer.table_len, footer.blob_count
            ));
        }
        let end = checked::add(footer.header_offset, footer.header_len, "header end")
            .and_then(|e| checked::add(e, footer.manifests_len, "manifests end"))
            .and_then(|e| checked::add(e, footer.table_len, "blob table end"))
            .and_then(|e| checked::add(e, SIGNATURE_LEN as u64, "signature end"));
        if footer.header_offset < PREAMBLE_LEN as u64 || end.ok() != Some(footer_at) {
            return bad(format!(
                "sections at {}+{}+{}+{} do not end at the footer ({footer_at})",
                footer.header_offset, footer.header_len, footer.manifests_len, footer.table_len
            ));
        }
        if footer.blob_count > (footer.header_offset - PREAMBLE_LEN as u64) / BLOB_ENTRY_LEN as u64
        {
            return bad(format!(
                "{} blobs cannot fit before the header",
                footer.blob_count
            ));
        }
        f.seek(SeekFrom::Start(footer.header_offset))
            .map_err(io_err(path))?;
        // Every length below was checked against its cap and against the file's size above.
        let mut header_bytes = vec![0u8; footer.header_len as usize];
        read_full(
            &mut f,
            &mut header_bytes,
            "bundle header",
            footer.header_offset,
        )?;
        let header = BundleHeader::decode(&header_bytes, footer.header_offset)?;
        // The manifests and the table, read as streams (memory grows with what they hold,
        // not with a stored length) and checked against the header's digests.
        let m_at = footer.header_offset + footer.header_len;
        let t_at = m_at + footer.manifests_len;
        let mut f = std::io::BufReader::with_capacity(1 << 16, f);
        let disks = section(
            &mut f,
            m_at,
            footer.manifests_len,
            "bundle manifests",
            |r| read_manifests(r, header.disk_count),
            &header.manifests_digest,
        )?;
        let rows = section(
            &mut f,
            t_at,
            footer.table_len,
            "bundle blob table",
            |r| read_table(r, footer.blob_count),
            &header.blobs_digest,
        )?;
        let mut signature = [0u8; SIGNATURE_LEN];
        read_full(
            &mut f,
            &mut signature,
            "bundle signature",
            footer_at - SIGNATURE_LEN as u64,
        )?;
        Ok(Bundle {
            path: path.to_path_buf(),
            point: PointId::of_header(&header_bytes),
            header,
            header_bytes,
            disks,
            rows: Arc::new(rows),
            signature,
            footer,
        })
    }

    /// The header.
    pub fn header(&self) -> &BundleHeader {
        &self.header
    }

    /// The recovery point's id (BLAKE3 of the header bytes).
    pub fn point_id(&self) -> PointId {
        self.point
    }

    /// The header's bytes as shipped (what the point id hashes).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// One manifest per disk.
    pub fn disks(&self) -> &[DiskManifest] {
        &self.disks
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blobs the footer counts.
    pub fn blob_count(&self) -> u64 {
        self.footer.blob_count
    }

    /// Bytes of the blob entries (entry headers included).
    pub(crate) fn blob_section_len(&self) -> u64 {
        self.footer.header_offset - PREAMBLE_LEN as u64
    }

    /// The point's signature.
    pub(crate) fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// Where the manifests are in the file: (offset, length).
    pub(crate) fn manifests_span(&self) -> (u64, u64) {
        let at = self.footer.header_offset + self.footer.header_len;
        (at, self.footer.manifests_len)
    }

    /// Where the blob table is in the file: (offset, length).
    pub(crate) fn table_span(&self) -> (u64, u64) {
        let (m, ml) = self.manifests_span();
        (m + ml, self.footer.table_len)
    }

    /// The blob table: every blob the bundle carries, in order, with its signed sealed hash.
    pub(crate) fn rows(&self) -> &[TableRow] {
        &self.rows
    }

    /// Checks the point's signature against `vk` (the group's verifying key), without the data
    /// key: [`Authentication`](crate::ErrorKind::Authentication) unless the header names `vk`
    /// and the signature is `vk`'s over the point id (which hashes the header, and through its
    /// digests the manifests and the blob table).
    pub fn check_signature(&self, vk: &VerifyingKey) -> Result<()> {
        let what = || format!("bundle {}", self.path.display());
        if self.header.verifying_key != *vk {
            return Err(Error::Authentication {
                what: what(),
                detail: format!(
                    "it is signed by key {}, not by the group's key {vk}",
                    self.header.verifying_key
                ),
            });
        }
        if !vk.verifies(SIGNED_POINT, &self.point.0, &self.signature) {
            return Err(Error::Authentication {
                what: what(),
                detail: "its signature does not verify: it was not made by the holder of the \
                         group's key, or the point was altered"
                    .into(),
            });
        }
        Ok(())
    }

    /// Checks every byte without the key: the trailer, the point's signature by the key its
    /// header names, every blob entry's shape and its sealed bytes against the signed blob
    /// table, every blob referenced and every reference present, extents within their blobs'
    /// declared sizes, and the sections unchanged since [`open`](Self::open).
    pub fn verify(&self) -> Result<BundleStats> {
        let stats = self.check_blobs(&|_, _| Ok(()))?;
        // After the trailer held: damage is Corrupt, a forgery Authentication.
        self.check_signature(&self.header.verifying_key)?;
        Ok(stats)
    }

    /// As [`verify`](Self::verify), and with the key: the header names this key and its
    /// verifying key, and every blob decrypts, decompresses and hashes to its id.
    pub fn verify_with_key(&self, key: &Key) -> Result<BundleStats> {
        if self.header.key_id() != key.id() || self.header.verifying_key != key.verifying_key() {
            return Err(Error::Authentication {
                what: format!("bundle {}", self.path.display()),
                detail: format!(
                    "it is sealed under key {}, not {}",
                    self.header.key_id(),
                    key.id()
                ),
            });
        }
        let stats = self.check_blobs(&|id, stored| blob::decode(key, id, stored).map(|_| ()))?;
        self.check_signature(&key.verifying_key())?;
        Ok(stats)
    }

    /// Streams the blobs and checks each one's sealed bytes against the signed table, then
    /// `also`, in batches on the pool.
    fn check_blobs(
        &self,
        also: &(dyn Fn(&BlobId, &[u8]) -> Result<()> + Sync),
    ) -> Result<BundleStats> {
        let mut batch: Vec<(usize, BlobId, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;
        let rows = Arc::clone(&self.rows);
        let flush = |batch: &mut Vec<(usize, BlobId, Vec<u8>)>| -> Result<()> {
            batch.par_iter().try_for_each(|(i, id, stored)| {
                check_sealed(&rows[*i], stored)?;
                also(id, stored)
            })?;
            batch.clear();
            Ok(())
        };
        let stats = self.for_each_entry(|i, id, stored| {
            batch_bytes += stored.len();
            batch.push((i, *id, stored.to_vec()));
            if batch_bytes >= VERIFY_BATCH {
                batch_bytes = 0;
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        Ok(stats)
    }

    /// Reads the blobs in order, handing each id and stored bytes to `f` once they match the
    /// signed blob table, and checks the whole file as [`verify`](Self::verify) does (the
    /// signature aside). Nothing `f` saw is verified until this returns `Ok`: a caller storing
    /// blobs commits only then.
    pub fn for_each_blob(
        &self,
        mut f: impl FnMut(&BlobId, &[u8]) -> Result<()>,
    ) -> Result<BundleStats> {
        self.for_each_entry(|i, id, stored| {
            check_sealed(&self.rows[i], stored)?;
            f(id, stored)
        })
    }

    /// As [`for_each_blob`](Self::for_each_blob), handing each blob's row in the blob table
    /// too, without checking the sealed bytes against the table's hashes: that is `f`'s job
    /// (see [`check_sealed`]), done where the caller hashes anyway (on the pool).
    pub(crate) fn for_each_entry(
        &self,
        mut f: impl FnMut(usize, &BlobId, &[u8]) -> Result<()>,
    ) -> Result<BundleStats> {
        self.for_each_inner(&mut f)
            .map_err(|e| e.with_path(&self.path))
    }

    fn for_each_inner(&self, f: &mut EntryFn<'_>) -> Result<BundleStats> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, file));
        Preamble::read(&mut r, FileKind::Bundle, VERSION_MAJOR)?;
        // Every blob's declared plaintext length, by its row (at most the footer's count).
        let mut lens: Vec<u64> = Vec::with_capacity(self.rows.len());
        let mut stats = BundleStats {
            blobs: 0,
            stored_bytes: 0,
            plain_bytes: 0,
        };
        let mut stored = Vec::new();
        while r.position() < self.footer.header_offset {
            let at = r.position();
            let mut eh = [0u8; BLOB_ENTRY_LEN];
            read_full(&mut r, &mut eh, "bundle blob entry", at)?;
            let mut er = Reader::new(&eh, at, "bundle blob entry");
            let kind = er.u8("kind")?;
            er.reserved("reserved", 3)?;
            let n = er.len_u32("stored length", MAX_BLOB_LEN + BLOB_OVERHEAD)?;
            let id = BlobId(er.array("blob id")?);
            if kind != ENTRY_BLOB {
                return Err(er.error("kind", format!("unknown entry kind {kind}")));
            }
            // Stop at the first entry the signed table does not list (in its order).
            let i = lens.len();
            match self.rows.get(i) {
                Some(row) if row.id == id && row.len as usize == n => {}
                Some(_) => {
                    return Err(er.error(
                        "blob id",
                        format!("entry {i} (blob {id}) is not the blob table's row {i}"),
                    ));
                }
                None => {
                    return Err(er.error(
                        "kind",
                        format!("more blobs than the {} the footer counts", self.rows.len()),
                    ));
                }
            }
            if r.position() + n as u64 > self.footer.header_offset {
                return Err(er.error("stored length", "the blob runs into the header"));
            }
            stored.resize(n, 0);
            read_full(
                &mut r,
                &mut stored,
                "bundle blob",
                at + BLOB_ENTRY_LEN as u64,
            )?;
            let plain = blob::declared_len(&stored).map_err(|e| {
                Error::corrupt(format!("bundle blob {id}"), Some(at), e.without_advice())
            })? as u64;
            lens.push(plain);
            stats.blobs += 1;
            stats.stored_bytes += n as u64;
            stats.plain_bytes += plain;
            f(i, &id, &stored)?;
        }
        // The sections after the blobs must be what `open` read.
        let mut head = vec![0u8; self.header_bytes.len()];
        read_full(
            &mut r,
            &mut head,
            "bundle header",
            self.footer.header_offset,
        )?;
        let m_at = r.position();
        let mut buf = vec![0u8; 1 << 16];
        let mut digest = |len: u64| -> Result<blake3::Hash> {
            let mut h = blake3::Hasher::new();
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                read_full(&mut r, &mut buf[..n], "bundle manifests and table", m_at)?;
                h.update(&buf[..n]);
                left -= n as u64;
            }
            Ok(h.finalize())
        };
        let manifests = digest(self.footer.manifests_len)?;
        let table = digest(self.footer.table_len)?;
        let mut tail = [0u8; SIGNATURE_LEN + FOOTER_LEN];
        let t_at = r.position();
        read_full(&mut r, &mut tail, "bundle signature and footer", t_at)?;
        r.finish(WHAT)?;
        if head != self.header_bytes
            || manifests != blake3::Hash::from(self.header.manifests_digest)
            || table != blake3::Hash::from(self.header.blobs_digest)
            || tail[..SIGNATURE_LEN] != self.signature
            || tail[SIGNATURE_LEN..] != self.footer.encode()
        {
            return Err(Error::corrupt(
                WHAT,
                Some(t_at),
                "it changed since it was opened",
            ));
        }
        if stats.blobs != self.footer.blob_count {
            return Err(Error::corrupt(
                "bundle footer",
                Some(t_at),
                format!(
                    "it counts {} blobs; the bundle holds {}",
                    self.footer.blob_count, stats.blobs
                ),
            ));
        }
        self.check_references(&lens, t_at)?;
        Ok(stats)
    }

    /// Every reference present and within its blob; every blob referenced.
    fn check_references(&self, lens: &[u64], at: u64) -> Result<()> {
        let by_id: HashMap<BlobId, u64> = self
            .rows
            .iter()
            .zip(lens)
            .map(|(r, l)| (r.id, *l))
            .collect();
        let lens = &by_id;
        let mut used: HashMap<BlobId, bool> = lens.keys().map(|k| (*k, false)).collect();
        for d in &self.disks {
            for e in d.extents.iter() {
                let Source::Blob { id, offset } = e.source else {
                    continue;
                };
                let Some(&plain) = lens.get(&id) else {
                    return Err(Error::corrupt(
                        "bundle manifests",
                        Some(at),
                        format!(
                            "disk `{}` references blob {id}, which the bundle lacks",
                            d.name
                        ),
                    ));
                };
                if offset.checked_add(e.len).is_none_or(|end| end > plain) {
                    return Err(Error::corrupt(
                        "bundle manifests",
                        Some(at),
                        format!(
                            "disk `{}` reads {} bytes at offset {} of blob {id}, which holds \
                             {plain} bytes",
                            d.name, e.len, offset
                        ),
                    ));
                }
                used.insert(id, true);
            }
        }
        if let Some((id, _)) = used.iter().find(|(_, u)| !**u) {
            return Err(Error::corrupt(
                WHAT,
                Some(at),
                format!("blob {id} is not referenced by any manifest"),
            ));
        }
        Ok(())
    }
}

/// Reads the section of `len` bytes at `at` of `f` (positioned there) with `read`, which must
/// consume it exactly, and checks its BLAKE3 against `digest`.
fn section<T>(
    f: &mut impl Read,
    at: u64,
    len: u64,
    what: &'static str,
    read: impl FnOnce(&mut In<HashingReader<std::io::Take<&mut dyn Read>>>) -> Result<T>,
    digest: &[u8; 32],
) -> Result<T> {
    let dynf: &mut dyn Read = f;
    let mut r = In {
        inner: HashingReader::new(dynf.take(len)),
        at,
        left: len,
        what,
    };
    let out = read(&mut r)?;
    if r.left != 0 {
        return Err(r.err("end", format!("{} bytes after what it holds", r.left)));
    }
    if r.inner.digest() != blake3::Hash::from(*digest) {
        return Err(Error::corrupt(
            what,
            Some(at),
            "it does not match the digest in the header",
        ));
    }
    Ok(out)
}

/// Checks a blob's sealed bytes against its row of a signed blob table.
pub(crate) fn check_sealed(row: &TableRow, stored: &[u8]) -> Result<()> {
    if *blake3::hash(stored).as_bytes() != row.hash {
        return Err(Error::corrupt(
            format!("blob {}", row.id),
            None,
            "its sealed bytes do not match the hash the point's signature covers",
        ));
    }
    Ok(())
}
