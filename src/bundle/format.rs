//! The bytes of a bundle's header, manifests and footer (`docs/FORMAT.md` §13).

use crate::crypto::{KEY_FILE_LEN, KeyFile, KeyId, VerifyingKey};
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::format::limits::{MAX_DISKS_PER_GROUP, MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::format::stream::In;
use crate::format::{Reader, Writer};
use crate::id::{BlobId, PointId};
use crate::log::MarkerKind;

/// Major format version of `.rcb` this build reads and writes.
pub const VERSION_MAJOR: u16 = 2;
pub(crate) const VERSION_MINOR: u16 = 0;
/// The largest header.
pub(crate) const MAX_HEADER_LEN: usize =
    HEADER_FIXED + 2 + MAX_NAME_LEN + 2 + MAX_LABEL_LEN + 2 + KEY_FILE_LEN;
/// Bytes of a header before its group name.
const HEADER_FIXED: usize = 180;
/// The largest manifests section (1 GiB: 16 M extents).
pub(crate) const MAX_MANIFESTS_LEN: usize = 1 << 30;
/// Bytes of one manifest extent.
pub(crate) const EXTENT_LEN: usize = 64;
/// Bytes of a blob entry's header (before the stored bytes).
pub(crate) const BLOB_ENTRY_LEN: usize = 8 + 32;
/// Bytes of the footer.
pub(crate) const FOOTER_LEN: usize = 40;
/// Bytes of the point's signature.
pub(crate) const SIGNATURE_LEN: usize = crate::crypto::SIGNATURE_LEN;
/// Bytes of one row of a blob table.
pub(crate) const TABLE_ROW_LEN: usize = 72;
/// The most blobs one bundle may list: as many as the largest manifests could name (16 M).
pub(crate) const MAX_TABLE_ROWS: u64 = (MAX_MANIFESTS_LEN / EXTENT_LEN) as u64;
/// Blob entry tag byte.
pub(crate) const ENTRY_BLOB: u8 = 1;

/// The header of a blob entry (in a bundle, and in a vault pack): kind, reserved, stored
/// length, id.
pub(crate) fn blob_entry_header(id: &BlobId, stored_len: u32) -> [u8; BLOB_ENTRY_LEN] {
    let mut h = [0u8; BLOB_ENTRY_LEN];
    h[0] = ENTRY_BLOB;
    h[4..8].copy_from_slice(&stored_len.to_le_bytes());
    h[8..].copy_from_slice(id.as_bytes());
    h
}

/// Whether a bundle starts a group's chain or continues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundleKind {
    /// The initial replication (seed): every disk whole; no parent.
    Base,
    /// The changes of one recovery point over its parent.
    Incremental,
}

/// A bundle's header: what the recovery point is and where it sits in its group's chain. The
/// point's id is the BLAKE3 of these bytes as shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// Base or incremental.
    pub kind: BundleKind,
    /// Crash or app consistent.
    pub consistency: MarkerKind,
    /// The chunk grid the data was cut on.
    pub chunk_size: u32,
    /// The point's sequence number in its group (0 for the base).
    pub seq: u64,
    /// Time of the point, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The previous point's id (all zeros for a base).
    pub parent: PointId,
    /// Tracking session of the change log the point came from.
    pub epoch: [u8; 16],
    /// Generation of that change log.
    pub generation: u64,
    /// The group.
    pub group: String,
    /// Free text from the marker.
    pub label: String,
    /// The key the blobs are sealed under (with the wrapped data key, so that the customer's
    /// key alone unlocks a failover).
    pub key_file: KeyFile,
    /// BLAKE3 of the manifests section.
    pub manifests_digest: [u8; 32],
    /// BLAKE3 of the blob table (every blob the bundle carries, with the hash of its sealed
    /// bytes).
    pub blobs_digest: [u8; 32],
    /// The public key the point is signed with (derived from the group's data key).
    pub verifying_key: VerifyingKey,
    /// Disks in the manifests.
    pub disk_count: u32,
}

impl BundleHeader {
    /// The key id of the blobs.
    pub fn key_id(&self) -> KeyId {
        self.key_file.key_id()
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(512);
        w.u8(match self.kind {
            BundleKind::Base => 1,
            BundleKind::Incremental => 2,
        });
        w.u8(match self.consistency {
            MarkerKind::Crash => 1,
            MarkerKind::App => 2,
        });
        w.zeros(2)
            .u32(self.chunk_size)
            .u64(self.seq)
            .u64(self.time_ns);
        w.bytes(&self.parent.0)
            .bytes(&self.epoch)
            .u64(self.generation);
        w.bytes(&self.manifests_digest)
            .bytes(&self.blobs_digest)
            .bytes(&self.verifying_key.0)
            .u32(self.disk_count);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        w.string_u16("label", &self.label, MAX_LABEL_LEN)?;
        let kf = self.key_file.to_bytes();
        w.u16(kf.len() as u16).bytes(&kf);
        Ok(w.into_bytes())
    }

    pub(crate) fn decode(bytes: &[u8], at: u64) -> Result<BundleHeader> {
        let mut r = Reader::new(bytes, at, "bundle header");
        let kind = match r.u8("kind")? {
            1 => BundleKind::Base,
            2 => BundleKind::Incremental,
            k => return Err(r.error("kind", format!("unknown bundle kind {k}"))),
        };
        let consistency = match r.u8("consistency")? {
            1 => MarkerKind::Crash,
            2 => MarkerKind::App,
            k => return Err(r.error("consistency", format!("unknown consistency {k}"))),
        };
        r.reserved("reserved", 2)?;
        let chunk_size = r.u32("chunk size")?;
        if !chunk_size.is_power_of_two() || !(4096..=8 << 20).contains(&chunk_size) {
            return Err(r.error(
                "chunk size",
                format!("{chunk_size} bytes is not within 4 KiB to 8 MiB"),
            ));
        }
        let seq = r.u64("seq")?;
        let time_ns = r.u64("time")?;
        let parent = PointId(r.array("parent")?);
        let epoch = r.array("epoch")?;
        let generation = r.u64("generation")?;
        let manifests_digest = r.array("manifests digest")?;
        let blobs_digest = r.array("blob table digest")?;
        let verifying_key = VerifyingKey(r.array("verifying key")?);
        let disk_count = r.u32("disk count")?;
        if disk_count == 0 || disk_count as usize > MAX_DISKS_PER_GROUP {
            return Err(r.error(
                "disk count",
                format!("{disk_count} disks is not within 1 to 256 disks"),
            ));
        }
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        if group.is_empty() {
            return Err(r.error("group", "empty"));
        }
        let label = r.string_u16("label", MAX_LABEL_LEN)?.to_string();
        let kf_at = r.offset();
        let n = r.u16("key file length")?;
        let key_file = KeyFile::from_bytes(r.bytes("key file", usize::from(n))?).map_err(|e| {
            Error::corrupt(
                "bundle header field `key file`",
                Some(kf_at),
                e.without_advice(),
            )
        })?;
        r.finish()?;
        let is_base = kind == BundleKind::Base;
        if is_base != (parent == PointId::ZERO) {
            return Err(Error::corrupt(
                "bundle header field `parent`",
                Some(at),
                "a base bundle has no parent and an incremental one has one",
            ));
        }
        Ok(BundleHeader {
            kind,
            consistency,
            chunk_size,
            seq,
            time_ns,
            parent,
            epoch,
            generation,
            group,
            label,
            key_file,
            manifests_digest,
            blobs_digest,
            verifying_key,
            disk_count,
        })
    }
}

/// One row of a blob table: a blob a point carries, and the hash of its sealed bytes that the
/// point's signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableRow {
    pub id: BlobId,
    pub hash: [u8; 32],
    pub len: u32,
}

/// A blob table's bytes (`docs/FORMAT.md` §13).
pub(crate) fn encode_table(rows: &[TableRow]) -> Vec<u8> {
    let mut w = Writer::with_capacity(8 + rows.len() * TABLE_ROW_LEN);
    w.u64(rows.len() as u64);
    for r in rows {
        w.bytes(r.id.as_bytes()).bytes(&r.hash).u32(r.len).zeros(4);
    }
    w.into_bytes()
}

/// Decodes a blob table of at most `max_rows` rows (the count is checked against the cap and
/// the bytes before anything is allocated). Ids are unique.
pub(crate) fn decode_table(bytes: &[u8], at: u64, max_rows: u64) -> Result<Vec<TableRow>> {
    read_table(&mut In::slice(bytes, at, "blob table"), max_rows)
}

/// Reads a blob table as a stream: `r` is bounded to the table, which it must fill exactly.
pub(crate) fn read_table<R: std::io::Read>(r: &mut In<R>, max_rows: u64) -> Result<Vec<TableRow>> {
    let n = r.u64("row count")?;
    if n > max_rows || n.checked_mul(TABLE_ROW_LEN as u64) != Some(r.left) {
        return Err(r.err(
            "row count",
            format!(
                "{n} rows do not fill the {} bytes left (at most {max_rows} rows)",
                r.left
            ),
        ));
    }
    let mut rows = Vec::with_capacity(n as usize);
    let mut seen = std::collections::HashSet::with_capacity(n as usize);
    for _ in 0..n {
        let id = BlobId(r.array("blob id")?);
        let hash = r.array("sealed hash")?;
        let len = r.u32("stored length")?;
        r.reserved("reserved", 4)?;
        if !seen.insert(id) {
            return Err(r.err("blob id", format!("blob {id} is listed twice")));
        }
        rows.push(TableRow { id, hash, len });
    }
    Ok(rows)
}

/// One disk of a recovery point: its ranges mapped to blobs or zeros. In a base bundle the
/// unmapped ranges are zeros; in an incremental one they are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskManifest {
    /// The disk's name in its group.
    pub name: String,
    /// The ranges: [`Source::Blob`] (bytes of a blob of this bundle) or [`Source::Zero`].
    pub extents: ExtentMap<Source>,
}

impl DiskManifest {
    /// The disk's size.
    pub fn size(&self) -> u64 {
        self.extents.disk_size()
    }
}

pub(crate) fn encode_manifests(disks: &[DiskManifest]) -> Result<Vec<u8>> {
    let mut w = Writer::with_capacity(64);
    w.u32(disks.len() as u32);
    for d in disks {
        w.string_u16("disk name", &d.name, MAX_NAME_LEN)?;
        w.u64(d.size()).u64(d.extents.len() as u64);
        for e in d.extents.iter() {
            w.u64(e.start).u64(e.len);
            match e.source {
                Source::Zero => {
                    w.u8(0).zeros(7).zeros(32).u64(0);
                }
                Source::Blob { id, offset } => {
                    w.u8(1).zeros(7).bytes(id.as_bytes()).u64(offset);
                }
            }
        }
    }
    Ok(w.into_bytes())
}

pub(crate) fn decode_manifests(
    bytes: &[u8],
    at: u64,
    disk_count: u32,
) -> Result<Vec<DiskManifest>> {
    let mut r = In::slice(bytes, at, "bundle manifests");
    let disks = read_manifests(&mut r, disk_count)?;
    if r.left != 0 {
        return Err(r.err("end", format!("{} bytes after the manifests", r.left)));
    }
    Ok(disks)
}

/// Reads a manifests section (the caller bounds `r` to the section) as a stream: memory grows
/// with the extents read, never with a stored count or length.
pub(crate) fn read_manifests<R: std::io::Read>(
    r: &mut In<R>,
    disk_count: u32,
) -> Result<Vec<DiskManifest>> {
    let n = r.u32("disk count")?;
    if n != disk_count {
        return Err(r.err(
            "disk count",
            format!("{n} disks; the header says {disk_count} disks"),
        ));
    }
    let mut disks: Vec<DiskManifest> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = u64::from(r.u16("disk name length")?);
        let name = String::from_utf8(r.vec("disk name", len, MAX_NAME_LEN as u64)?)
            .map_err(|_| r.err("disk name", "not UTF-8"))?;
        if name.is_empty() || disks.iter().any(|d| d.name == name) {
            return Err(r.err("disk name", format!("`{name}` is empty or appears twice")));
        }
        let size = r.u64("disk size")?;
        let mut extents =
            ExtentMap::new(size).map_err(|e| r.err("disk size", e.without_advice()))?;
        let count = r.u64("extent count")?;
        if count > r.left / EXTENT_LEN as u64 {
            return Err(r.err(
                "extent count",
                format!("{count} extents cannot fit in the {} bytes left", r.left),
            ));
        }
        let mut end = 0u64;
        for _ in 0..count {
            let start = r.u64("extent start")?;
            let len = r.u64("extent length")?;
            let kind = r.u8("extent kind")?;
            r.reserved("reserved", 7)?;
            let id = BlobId(r.array("blob id")?);
            let offset = r.u64("blob offset")?;
            let source = match kind {
                0 => Source::Zero,
                1 => Source::Blob { id, offset },
                k => return Err(r.err("extent kind", format!("unknown kind {k}"))),
            };
            if len == 0 || start < end {
                return Err(r.err(
                    "extent start",
                    format!(
                        "the extent of {len} bytes at offset {start} is empty, or overlaps or \
                         precedes the one before"
                    ),
                ));
            }
            extents
                .insert(start, len, source)
                .map_err(|e| r.err("extent", e.without_advice()))?;
            end = start + len;
        }
        disks.push(DiskManifest { name, extents });
    }
    Ok(disks)
}

/// The footer: where the header is and how long the sections are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub header_offset: u64,
    pub header_len: u64,
    pub manifests_len: u64,
    pub table_len: u64,
    pub blob_count: u64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut w = Writer::with_capacity(FOOTER_LEN);
        w.u64(self.header_offset)
            .u64(self.header_len)
            .u64(self.manifests_len)
            .u64(self.table_len)
            .u64(self.blob_count);
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(w.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8], at: u64) -> Result<Footer> {
        let mut r = Reader::new(bytes, at, "bundle footer");
        let f = Footer {
            header_offset: r.u64("header offset")?,
            header_len: r.u64("header length")?,
            manifests_len: r.u64("manifests length")?,
            table_len: r.u64("blob table length")?,
            blob_count: r.u64("blob count")?,
        };
        r.finish()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MasterKey, Secret};

    #[test]
    fn the_largest_header_fits_its_cap_and_the_documented_offsets() {
        let (kf, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([1; 32]))).unwrap();
        let mut h = BundleHeader {
            kind: BundleKind::Incremental,
            consistency: MarkerKind::App,
            chunk_size: 1 << 20,
            seq: 7,
            time_ns: 9,
            parent: PointId([3; 32]),
            epoch: [4; 16],
            generation: 5,
            group: "g".repeat(MAX_NAME_LEN),
            label: "l".repeat(MAX_LABEL_LEN),
            key_file: kf,
            manifests_digest: [6; 32],
            blobs_digest: [7; 32],
            verifying_key: VerifyingKey([8; 32]),
            disk_count: 2,
        };
        let b = h.encode().unwrap();
        assert_eq!(b.len(), MAX_HEADER_LEN);
        assert_eq!(&b[24..56], &[3; 32]);
        assert_eq!(&b[80..112], &[6; 32]);
        assert_eq!(&b[112..144], &[7; 32]);
        assert_eq!(&b[144..176], &[8; 32]);
        assert_eq!(
            &b[HEADER_FIXED..HEADER_FIXED + 2],
            &(MAX_NAME_LEN as u16).to_le_bytes()
        );
        assert_eq!(BundleHeader::decode(&b, 0).unwrap(), h);
        h.parent = PointId::ZERO;
        let e = BundleHeader::decode(&h.encode().unwrap(), 0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
    }
}
