//! The records of a recovery-point file (`docs/FORMAT.md` §15.4): each shipped point's signed
//! metadata (header, manifests, blob table, signature), or one checkpoint the key holder
//! signed, read as a stream in memory that grows with what the records map, not with how many
//! there are.
//!
//! Nothing in a point file is computed by the vault and trusted: a file's map is the fold of
//! its records' manifests, computed on every read, and every record is covered by a signature
//! (the last shipped record's signature covers the records before it through the parent ids of
//! their headers, a checkpoint's its own bytes).

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::bundle::format::{
    BundleHeader, BundleKind, DiskManifest, MAX_HEADER_LEN, MAX_MANIFESTS_LEN, MAX_TABLE_ROWS,
    SIGNATURE_LEN, TABLE_ROW_LEN, TableRow, decode_manifests, decode_table,
};
use crate::crypto::{SIGNED_CHECKPOINT, SIGNED_POINT, VerifyingKey};
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::format::Writer;
pub(crate) use crate::format::stream::In;
use crate::id::{BlobId, PointId};

/// A record as the shipped bundle's metadata.
pub(crate) const RECORD_SHIPPED: u8 = 1;
/// A record as a checkpoint signed by the key holder.
pub(crate) const RECORD_CHECKPOINT: u8 = 2;
/// The largest blob table of one record.
pub(crate) const MAX_TABLE_LEN: u64 = 8 + MAX_TABLE_ROWS * TABLE_ROW_LEN as u64;
/// The fewest bytes a record takes (kind, lengths, a minimal header, an empty table,
/// signature): bounds a stored record count by the bytes of the file.
pub(crate) const MIN_RECORD_LEN: u64 = 8 + 2 + 180 + 8 + 8 + 8 + SIGNATURE_LEN as u64;

/// Every signed (id, sealed hash) pair of some records: the stored copies of a blob that may
/// stand for it. One id may have more than one honest sealed form (a chunk sealed at another
/// compression level); each is signed.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignedHashes {
    first: HashMap<BlobId, ([u8; 32], u32)>,
    more: Vec<TableRow>,
}

impl SignedHashes {
    pub fn add(&mut self, row: &TableRow) {
        match self.first.get(&row.id) {
            None => {
                self.first.insert(row.id, (row.hash, row.len));
            }
            Some((h, _)) if *h == row.hash => {}
            Some(_) => {
                if !self
                    .more
                    .iter()
                    .any(|r| r.id == row.id && r.hash == row.hash)
                {
                    self.more.push(*row);
                }
            }
        }
    }

    pub fn extend(&mut self, other: &SignedHashes) {
        for row in other.rows() {
            self.add(&row);
        }
    }

    /// The signed rows of `id` (none when no record carries it).
    pub fn rows_of(&self, id: &BlobId) -> impl Iterator<Item = TableRow> + '_ {
        let id = *id;
        self.first
            .get(&id)
            .map(|(hash, len)| TableRow {
                id,
                hash: *hash,
                len: *len,
            })
            .into_iter()
            .chain(self.more.iter().filter(move |r| r.id == id).copied())
    }

    /// The signed sealed hashes of `id`.
    pub fn of(&self, id: &BlobId) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.rows_of(id).map(|r| r.hash)
    }

    pub fn rows(&self) -> impl Iterator<Item = TableRow> + '_ {
        self.first
            .iter()
            .map(|(id, (hash, len))| TableRow {
                id: *id,
                hash: *hash,
                len: *len,
            })
            .chain(self.more.iter().copied())
    }
}

/// A shipped record's bytes (ingest streams them: see [`write_shipped_from`]).
#[cfg(test)]
pub(crate) fn shipped_record(
    header: &[u8],
    manifests: &[u8],
    table: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Vec<u8> {
    let mut w = Writer::with_capacity(40 + header.len() + manifests.len() + table.len());
    w.u8(RECORD_SHIPPED).zeros(7);
    w.u16(header.len() as u16).bytes(header);
    w.u64(manifests.len() as u64).bytes(manifests);
    w.u64(table.len() as u64).bytes(table);
    w.bytes(signature);
    w.into_bytes()
}

/// What a checkpoint states (and its signature covers): the point it stands at, how many
/// shipped points it stands for, the first point the chain ever shipped, the full map of every
/// disk there, and the blobs that map reads.
pub(crate) struct Checkpoint<'a> {
    pub shipped: u64,
    pub first_point: PointId,
    pub header: &'a [u8],
    pub manifests: &'a [u8],
    pub table: &'a [u8],
}

impl Checkpoint<'_> {
    /// The bytes the signature covers (the record after its kind, up to the signature).
    pub fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.header.len() + self.manifests.len());
        w.u64(self.shipped).bytes(&self.first_point.0);
        w.u16(self.header.len() as u16).bytes(self.header);
        w.u64(self.manifests.len() as u64).bytes(self.manifests);
        w.u64(self.table.len() as u64).bytes(self.table);
        w.into_bytes()
    }

    /// The record's bytes, signed with `key` (the body encoded once).
    pub fn signed(&self, key: &crate::crypto::Key) -> Vec<u8> {
        let body = self.body();
        let signature = key.sign(SIGNED_CHECKPOINT, blake3::hash(&body).as_bytes());
        let mut b = vec![RECORD_CHECKPOINT, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&body);
        b.extend_from_slice(&signature);
        b
    }

    /// The digest a checkpoint signature signs.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&self.body()).as_bytes()
    }
}

/// One record, decoded and checked on its own.
pub(crate) struct Record {
    pub header_bytes: Vec<u8>,
    pub header: BundleHeader,
    pub manifests: Vec<DiskManifest>,
    pub rows: Vec<TableRow>,
    /// For a checkpoint: shipped points it stands for, first point ever shipped.
    pub checkpoint: Option<(u64, PointId)>,
    pub signature: [u8; SIGNATURE_LEN],
    /// Byte range of the record in the file.
    pub span: (u64, u64),
}

impl Record {
    pub fn id(&self) -> PointId {
        PointId::of_header(&self.header_bytes)
    }

    /// Reads one record: its digests checked against its header, its manifests' references
    /// against its blob table (a shipped record's tables list exactly what it references).
    pub fn read<R: Read>(r: &mut In<R>) -> Result<Record> {
        let start = r.at;
        let kind = r.u8("record kind")?;
        r.reserved("reserved", 7)?;
        let checkpoint = match kind {
            RECORD_SHIPPED => None,
            RECORD_CHECKPOINT => Some((r.u64("shipped count")?, PointId(r.array("first point")?))),
            k => return Err(r.err("record kind", format!("unknown record kind {k}"))),
        };
        let h_at = r.at + 2;
        let hl = u64::from(r.u16("header length")?);
        let header_bytes = r.vec("header", hl, MAX_HEADER_LEN as u64)?;
        let header = BundleHeader::decode(&header_bytes, h_at)?;
        let m_at = r.at + 8;
        let ml = r.u64("manifests length")?;
        let manifests_bytes = r.vec("manifests", ml, MAX_MANIFESTS_LEN as u64)?;
        let t_at = r.at + 8;
        let tl = r.u64("blob table length")?;
        let table_bytes = r.vec("blob table", tl, MAX_TABLE_LEN)?;
        let signature = r.array("signature")?;
        let rows = decode_table(&table_bytes, t_at, MAX_TABLE_ROWS)?;
        let manifests = decode_manifests(&manifests_bytes, m_at, header.disk_count)?;
        match checkpoint {
            None => {
                if *blake3::hash(&manifests_bytes).as_bytes() != header.manifests_digest
                    || *blake3::hash(&table_bytes).as_bytes() != header.blobs_digest
                {
                    return Err(Error::corrupt(
                        "recovery-point record",
                        Some(start),
                        "its manifests or blob table do not match the digests in its header",
                    ));
                }
            }
            Some((shipped, first)) => {
                let c = Checkpoint {
                    shipped,
                    first_point: first,
                    header: &header_bytes,
                    manifests: &manifests_bytes,
                    table: &table_bytes,
                };
                if shipped == 0 {
                    return Err(r.err(
                        "shipped count",
                        "a checkpoint stands for at least one point",
                    ));
                }
                if !header
                    .verifying_key
                    .verifies(SIGNED_CHECKPOINT, &c.digest(), &signature)
                {
                    return Err(Error::Authentication {
                        what: format!("checkpoint of group `{}` at sequence {}", header.group, header.seq),
                        detail: "its signature does not verify under the key its header names: it was not made by the holder of the group's key, or it was altered".into(),
                    });
                }
            }
        }
        check_references(&manifests, &rows, start)?;
        Ok(Record {
            header_bytes,
            header,
            manifests,
            rows,
            checkpoint,
            signature,
            span: (start, r.at),
        })
    }

    /// Checks a shipped record's signature under the key its header names.
    pub fn check_signature(&self) -> Result<()> {
        let vk: &VerifyingKey = &self.header.verifying_key;
        if !vk.verifies(SIGNED_POINT, &self.id().0, &self.signature) {
            return Err(Error::Authentication {
                what: format!(
                    "recovery point {} of group `{}`",
                    self.header.seq, self.header.group
                ),
                detail: "its signature does not verify under the key its header names: it was \
                         not made by the holder of the group's key, or it was altered"
                    .into(),
            });
        }
        Ok(())
    }

    /// Where a file starting with this record links into its chain: (parent, kind, sequence).
    pub fn link(&self) -> (PointId, BundleKind, u64) {
        if self.checkpoint.is_some() {
            (PointId::ZERO, BundleKind::Base, self.header.seq)
        } else {
            (self.header.parent, self.header.kind, self.header.seq)
        }
    }
}

/// Every blob the manifests read is in the table.
fn check_references(manifests: &[DiskManifest], rows: &[TableRow], at: u64) -> Result<()> {
    let ids: std::collections::HashSet<BlobId> = rows.iter().map(|r| r.id).collect();
    for d in manifests {
        for e in d.extents.iter() {
            if let Source::Blob { id, .. } = e.source
                && !ids.contains(&id)
            {
                return Err(Error::corrupt(
                    "recovery-point record",
                    Some(at),
                    format!(
                        "disk `{}` reads blob {id}, which the record's blob table lacks",
                        d.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that `next` continues `prev` inside one file: an incremental of the same group, key
/// and verifying key, naming `prev` as its parent, with a higher sequence number.
pub(crate) fn check_follows(prev: &Record, next: &Record) -> Result<()> {
    let (p, n) = (&prev.header, &next.header);
    if next.checkpoint.is_some()
        || n.kind != BundleKind::Incremental
        || n.parent != prev.id()
        || n.seq <= p.seq
        || n.group != p.group
        || n.key_id() != p.key_id()
        || n.verifying_key != p.verifying_key
    {
        return Err(Error::corrupt(
            "recovery-point file",
            Some(next.span.0),
            "its records do not form a hash chain (each an incremental of the same group and \
             key, naming the one before it; a checkpoint only first)",
        ));
    }
    Ok(())
}

/// Writes `bytes` to `w`, mapping the error.
pub(crate) fn put(w: &mut impl Write, bytes: &[u8], path: &std::path::Path) -> Result<()> {
    w.write_all(bytes)
        .map_err(|e| Error::io("writing a recovery-point file", Some(path), e))
}

/// Copies the bytes `span` of the point file at `loc` into `out`, returning their BLAKE3 (a
/// caller that copies a section it checked before compares it: the file may have changed
/// since).
pub(crate) fn copy_span(
    loc: &super::point::Loc,
    span: (u64, u64),
    out: &mut impl Write,
    out_path: &std::path::Path,
) -> Result<blake3::Hash> {
    use std::io::{Seek, SeekFrom};
    let path = &loc.path;
    let (mut f, len) = super::point::open(loc)?;
    let want = span.1 - span.0;
    if span.1 > len {
        return Err(short(loc, span));
    }
    f.get_mut()
        .seek(SeekFrom::Current(span.0 as i64))
        .map_err(|e| Error::io("reading", Some(path), e))?;
    f.set_limit(want);
    let mut r = crate::format::HashingReader::new(f);
    let n = std::io::copy(&mut r, out)
        .map_err(|e| Error::io("copying records into", Some(out_path), e))?;
    if n != want {
        return Err(short(loc, span));
    }
    Ok(r.digest())
}

fn short(loc: &super::point::Loc, span: (u64, u64)) -> Error {
    Error::corrupt(
        "copied section",
        Some(span.0),
        "the file is shorter than it was when it was checked",
    )
    .with_path(&loc.path)
}

/// Writes a shipped record (§15.4) whose manifests and blob table are copied from the bundle
/// at `bundle` (sections `manifests` and `table`: offset, length), each checked against the
/// header's digests as it is copied, so a bundle changed after its checks is refused.
pub(crate) fn write_shipped_from(
    out: &mut impl Write,
    out_path: &std::path::Path,
    header: (&[u8], &BundleHeader),
    bundle: &std::path::Path,
    manifests: (u64, u64),
    table: (u64, u64),
    signature: &[u8; SIGNATURE_LEN],
) -> Result<()> {
    let mut w = Writer::with_capacity(16 + header.0.len());
    w.u8(RECORD_SHIPPED).zeros(7);
    w.u16(header.0.len() as u16).bytes(header.0);
    w.u64(manifests.1);
    put(out, w.as_bytes(), out_path)?;
    let bundle = &super::point::Loc::file(bundle.to_path_buf());
    let m = copy_span(
        bundle,
        (manifests.0, manifests.0 + manifests.1),
        out,
        out_path,
    )?;
    put(out, &table.1.to_le_bytes(), out_path)?;
    let t = copy_span(bundle, (table.0, table.0 + table.1), out, out_path)?;
    if m != blake3::Hash::from(header.1.manifests_digest)
        || t != blake3::Hash::from(header.1.blobs_digest)
    {
        return Err(Error::corrupt(
            "bundle",
            None,
            "its manifests or blob table changed while it was being ingested",
        )
        .with_path(&bundle.path));
    }
    put(out, signature, out_path)
}
