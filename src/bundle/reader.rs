//! Reading a bundle: [`Bundle::open`] reads its header and manifests; [`Bundle::verify`] checks
//! every byte without the key; [`Bundle::verify_with_key`] also authenticates every blob.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::format::{
    BLOB_ENTRY_LEN, BundleHeader, DiskManifest, ENTRY_BLOB, FOOTER_LEN, Footer, MAX_HEADER_LEN,
    MAX_MANIFESTS_LEN, TAG_LEN, VERSION_MAJOR, decode_manifests,
};
use crate::blob::{self, BLOB_OVERHEAD, MAX_BLOB_LEN};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::trailer::TRAILER_LEN;
use crate::format::{HashingReader, Reader, checked, codec::read_full};
use crate::id::{BlobId, PointId};

const WHAT: &str = "bundle";
/// Stored bytes of blobs decoded together by `verify_with_key`.
const VERIFY_BATCH: usize = 64 << 20;

/// An opened bundle: header and manifests read and checked for shape; blobs not read yet.
#[derive(Debug, Clone)]
pub struct Bundle {
    path: PathBuf,
    header: BundleHeader,
    header_bytes: Vec<u8>,
    disks: Vec<DiskManifest>,
    tag: [u8; TAG_LEN],
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
        Preamble::read(&mut f, FileKind::Bundle, VERSION_MAJOR)?;
        let fixed = (PREAMBLE_LEN + TAG_LEN + FOOTER_LEN + TRAILER_LEN) as u64;
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
        {
            return bad(format!(
                "header of {} bytes or manifests of {} bytes beyond the caps",
                footer.header_len, footer.manifests_len
            ));
        }
        let end = checked::add(footer.header_offset, footer.header_len, "header end")
            .and_then(|e| checked::add(e, footer.manifests_len, "manifests end"))
            .and_then(|e| checked::add(e, TAG_LEN as u64, "tag end"));
        if footer.header_offset < PREAMBLE_LEN as u64 || end.ok() != Some(footer_at) {
            return bad(format!(
                "sections at {}+{}+{} do not end at the footer ({footer_at})",
                footer.header_offset, footer.header_len, footer.manifests_len
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
        // Lengths checked against caps and the file's size above.
        let mut header_bytes = vec![0u8; footer.header_len as usize];
        read_full(
            &mut f,
            &mut header_bytes,
            "bundle header",
            footer.header_offset,
        )?;
        let header = BundleHeader::decode(&header_bytes, footer.header_offset)?;
        let m_at = footer.header_offset + footer.header_len;
        let mut manifests = vec![0u8; footer.manifests_len as usize];
        read_full(&mut f, &mut manifests, "bundle manifests", m_at)?;
        if *blake3::hash(&manifests).as_bytes() != header.manifests_digest {
            return Err(Error::corrupt(
                "bundle manifests",
                Some(m_at),
                "they do not match the digest in the header",
            ));
        }
        let disks = decode_manifests(&manifests, m_at, header.disk_count)?;
        let mut tag = [0u8; TAG_LEN];
        read_full(&mut f, &mut tag, "bundle tag", footer_at - TAG_LEN as u64)?;
        Ok(Bundle {
            path: path.to_path_buf(),
            point: PointId::of_header(&header_bytes),
            header,
            header_bytes,
            disks,
            tag,
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

    /// The manifests' authentication tag.
    pub(crate) fn tag(&self) -> &[u8; TAG_LEN] {
        &self.tag
    }

    /// Checks every byte without the key: the trailer, every blob entry's shape, each blob id
    /// present once, every blob referenced and every reference present, extents within their
    /// blobs' declared sizes, and the sections unchanged since [`open`](Self::open).
    pub fn verify(&self) -> Result<BundleStats> {
        self.for_each_blob(|_, _| Ok(()))
    }

    /// As [`verify`](Self::verify), and with the key: the header names this key, the manifests'
    /// authentication tag holds, and every blob decrypts, decompresses and hashes to its id.
    pub fn verify_with_key(&self, key: &Key) -> Result<BundleStats> {
        if self.header.key_id() != key.id() {
            return Err(Error::Authentication {
                what: format!("bundle {}", self.path.display()),
                detail: format!(
                    "it is sealed under key {}, not {}",
                    self.header.key_id(),
                    key.id()
                ),
            });
        }
        let mut mac = key.manifest_hasher();
        mac.update(&self.header_bytes);
        let mut manifests_reader = self.section_reader()?;
        let mut left = self.footer.manifests_len;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            manifests_reader
                .read_exact(&mut buf[..n])
                .map_err(io_err(&self.path))?;
            mac.update(&buf[..n]);
            left -= n as u64;
        }
        if mac.finalize() != blake3::Hash::from(self.tag) {
            return Err(Error::Authentication {
                what: format!("bundle {}", self.path.display()),
                detail: "the header and manifests do not authenticate under this key".into(),
            });
        }
        let mut batch: Vec<(BlobId, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;
        let flush = |batch: &mut Vec<(BlobId, Vec<u8>)>| -> Result<()> {
            batch
                .par_iter()
                .try_for_each(|(id, stored)| blob::decode(key, id, stored).map(|_| ()))?;
            batch.clear();
            Ok(())
        };
        let stats = self.for_each_blob(|id, stored| {
            batch_bytes += stored.len();
            batch.push((*id, stored.to_vec()));
            if batch_bytes >= VERIFY_BATCH {
                batch_bytes = 0;
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        Ok(stats)
    }

    fn section_reader(&self) -> Result<BufReader<File>> {
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(
            self.footer.header_offset + self.footer.header_len,
        ))
        .map_err(io_err(&self.path))?;
        Ok(BufReader::new(f))
    }

    /// Reads the blobs in order, handing each id and stored bytes to `f`, and checks the whole
    /// file as [`verify`](Self::verify) does. Nothing `f` saw is verified until this returns
    /// `Ok`: a caller storing blobs commits only then.
    pub fn for_each_blob(
        &self,
        mut f: impl FnMut(&BlobId, &[u8]) -> Result<()>,
    ) -> Result<BundleStats> {
        self.for_each_inner(&mut f)
            .map_err(|e| e.with_path(&self.path))
    }

    fn for_each_inner(
        &self,
        f: &mut dyn FnMut(&BlobId, &[u8]) -> Result<()>,
    ) -> Result<BundleStats> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, file));
        Preamble::read(&mut r, FileKind::Bundle, VERSION_MAJOR)?;
        // Every blob's declared plaintext length, to check the references against.
        let mut lens: HashMap<BlobId, u64> = HashMap::new();
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
            let plain = blob::declared_len(&stored)
                .map_err(|e| Error::corrupt(format!("bundle blob {id}"), Some(at), e.to_string()))?
                as u64;
            if lens.insert(id, plain).is_some() {
                return Err(Error::corrupt(
                    WHAT,
                    Some(at),
                    format!("blob {id} appears twice"),
                ));
            }
            stats.blobs += 1;
            stats.stored_bytes += n as u64;
            stats.plain_bytes += plain;
            f(&id, &stored)?;
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
        let mut mh = blake3::Hasher::new();
        let mut left = self.footer.manifests_len;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            read_full(&mut r, &mut buf[..n], "bundle manifests", m_at)?;
            mh.update(&buf[..n]);
            left -= n as u64;
        }
        let mut tail = [0u8; TAG_LEN + FOOTER_LEN];
        let t_at = r.position();
        read_full(&mut r, &mut tail, "bundle tag and footer", t_at)?;
        r.finish(WHAT)?;
        if head != self.header_bytes
            || *mh.finalize().as_bytes() != self.header.manifests_digest
            || tail[..TAG_LEN] != self.tag
            || tail[TAG_LEN..] != self.footer.encode()
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
    fn check_references(&self, lens: &HashMap<BlobId, u64>, at: u64) -> Result<()> {
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
                            "disk `{}` reads {}+{} of blob {id}, which holds {plain} bytes",
                            d.name, offset, e.len
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
