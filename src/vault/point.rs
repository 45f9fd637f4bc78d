//! Recovery-point files (immutable; `docs/FORMAT.md` §15.4) and what a caller sees of a point.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::layout::{VERSION_MAJOR, VERSION_MINOR};
use crate::bundle::format::{
    BundleHeader, BundleKind, DiskManifest, MAX_HEADER_LEN, MAX_MANIFESTS_LEN, TAG_LEN,
    decode_manifests,
};
use crate::error::{Error, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::{MAX_DISKS_PER_GROUP, MAX_NAME_LEN};
use crate::format::trailer::{TRAILER_LEN, verify_slice};
use crate::format::{Reader, Writer};
use crate::fsutil::read_small;
use crate::id::PointId;
use crate::log::MarkerKind;

/// The most shipped headers one point file may carry (its own and those pruning merged in).
pub(crate) const MAX_HEADERS: usize = 1 << 20;
/// The largest point file.
const MAX_POINT_FILE: usize = 64
    + MAX_HEADERS.saturating_mul(2 + 512)
    + MAX_DISKS_PER_GROUP * (2 + MAX_NAME_LEN + 8)
    + MAX_MANIFESTS_LEN
    + TAG_LEN
    + TRAILER_LEN;

/// One disk of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// Its name in the group.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A recovery point as the vault lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The point's id: the BLAKE3 of the header it was shipped with.
    pub id: PointId,
    /// Its sequence number in the group (0 for the base).
    pub seq: u64,
    /// The group.
    pub group: String,
    /// When the point was taken (the marker's time).
    pub time: SystemTime,
    /// Crash or app consistent.
    pub consistency: MarkerKind,
    /// The marker's label.
    pub label: String,
    /// The previous point's id in the chain as it stands ([`PointId::ZERO`] for the base):
    /// after pruning, the newest kept point before it.
    pub parent: PointId,
    /// Base (the chain's first point: a seed, or the oldest kept point after pruning) or
    /// incremental.
    pub kind: BundleKind,
    /// How many pruned points were merged into this one (0 for a point as shipped).
    pub merged: u64,
    /// Every disk of the group at this point.
    pub disks: Vec<DiskInfo>,
}

/// Which point to pick ([`Vault::select`](super::Vault::select)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// The newest point.
    Latest,
    /// The newest app-consistent point.
    LatestAppConsistent,
    /// The newest point taken at or before this time.
    AtOrBefore(SystemTime),
    /// The point with this id.
    Id(PointId),
}

impl Selector {
    /// Picks from `points` (oldest first).
    pub(crate) fn pick<'a>(&self, points: &'a [RecoveryPoint]) -> Option<&'a RecoveryPoint> {
        match *self {
            Selector::Latest => points.last(),
            Selector::LatestAppConsistent => points
                .iter()
                .rev()
                .find(|p| p.consistency == MarkerKind::App),
            Selector::AtOrBefore(t) => points.iter().rev().find(|p| p.time <= t),
            Selector::Id(id) => points.iter().find(|p| p.id == id),
        }
    }
}

/// A point file's content.
#[derive(Debug, Clone)]
pub(crate) struct PointFile {
    /// Set once pruning merged earlier points in: the tag then covers only the last header's
    /// original manifests, which are no longer stored.
    pub merged: bool,
    /// Shipped headers, oldest first; the last is this point's own.
    pub headers: Vec<Vec<u8>>,
    /// The last header, decoded.
    pub header: BundleHeader,
    /// The first header's parent, kind and sequence number: where this file links into the
    /// chain.
    pub first: (PointId, BundleKind, u64),
    pub disks: Vec<DiskInfo>,
    /// The manifests section (as shipped, unless merged); empty when only the prefix was read.
    pub manifests: Vec<u8>,
    pub tag: [u8; TAG_LEN],
}

impl PointFile {
    /// The point's id.
    pub fn id(&self) -> PointId {
        PointId::of_header(self.headers.last().expect("at least one header"))
    }

    /// File name in the group's directory.
    pub fn file_name(seq: u64, id: &PointId) -> String {
        format!("{seq:012}-{}.rcpt", &id.to_hex()[..16])
    }

    pub fn info(&self) -> RecoveryPoint {
        let h = &self.header;
        RecoveryPoint {
            id: self.id(),
            seq: h.seq,
            group: h.group.clone(),
            time: UNIX_EPOCH + Duration::from_nanos(h.time_ns),
            consistency: h.consistency,
            label: h.label.clone(),
            parent: self.first.0,
            kind: self.first.1,
            merged: self.headers.len() as u64 - 1,
            disks: self.disks.clone(),
        }
    }

    /// The manifests, decoded (the file must have been read whole).
    pub fn decode_disks(&self) -> Result<Vec<DiskManifest>> {
        decode_manifests(&self.manifests, 0, self.header.disk_count)
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(256 + self.manifests.len());
        Preamble::new(FileKind::Manifest, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.u8(u8::from(self.merged)).zeros(3);
        w.u32(self.headers.len() as u32);
        for h in &self.headers {
            w.u16(h.len() as u16).bytes(h);
        }
        w.u32(self.disks.len() as u32);
        for d in &self.disks {
            w.string_u16("disk name", &d.name, MAX_NAME_LEN)?;
            w.u64(d.size);
        }
        w.u64(self.manifests.len() as u64)
            .bytes(&self.manifests)
            .bytes(&self.tag);
        let mut bytes = w.into_bytes();
        let h = blake3::hash(&bytes);
        bytes.extend_from_slice(h.as_bytes());
        Ok(bytes)
    }

    /// Reads and checks a whole point file: trailer, shape, manifests digest (unless merged).
    pub fn read(path: &Path) -> Result<PointFile> {
        let bytes = read_small(path, "recovery-point file", MAX_POINT_FILE)?;
        let body = verify_slice(&bytes, "recovery-point file").map_err(|e| e.with_path(path))?;
        Self::decode(body, true).map_err(|e| e.with_path(path))
    }

    /// Decodes a point file's body (trailer already checked); `whole` also reads the manifests.
    /// Parses what comes before the manifests, up to and including their length.
    fn decode_front(r: &mut Reader<'_>) -> Result<Front> {
        Preamble::decode(r, FileKind::Manifest, VERSION_MAJOR)?;
        let merged = match r.u8("flags")? {
            0 => false,
            1 => true,
            f => return Err(r.error("flags", format!("unknown flags {f:#x}"))),
        };
        r.reserved("reserved", 3)?;
        let n = r.u32("header count")? as usize;
        if n == 0 || n > MAX_HEADERS {
            return Err(r.error("header count", format!("{n} is not 1..{MAX_HEADERS}")));
        }
        // Each header takes at least its length field: the count is bounded by the bytes left.
        if n > r.remaining() / 2 {
            return Err(r.error("header count", "more headers than the file can hold"));
        }
        let mut headers: Vec<Vec<u8>> = Vec::with_capacity(n);
        let mut first = None;
        let mut prev: Option<BundleHeader> = None;
        for _ in 0..n {
            let at = r.offset();
            let len = usize::from(r.u16("header length")?);
            if len > MAX_HEADER_LEN {
                return Err(r.error("header length", format!("{len} > {MAX_HEADER_LEN}")));
            }
            let h = r.bytes("header", len)?;
            let decoded = BundleHeader::decode(h, at + 2)?;
            // The merged headers are a hash chain: each names the one before it.
            if let (Some(p), Some(last)) = (&prev, headers.last()) {
                if decoded.kind != BundleKind::Incremental
                    || decoded.parent != PointId::of_header(last)
                    || decoded.seq <= p.seq
                    || decoded.group != p.group
                    || decoded.key_id() != p.key_id()
                {
                    return Err(Error::corrupt(
                        "recovery-point file",
                        Some(at),
                        "its merged headers do not form a hash chain (each an incremental \
                         of the same group and key, naming the one before it)",
                    ));
                }
            } else {
                first = Some((decoded.parent, decoded.kind, decoded.seq));
            }
            prev = Some(decoded);
            headers.push(h.to_vec());
        }
        let (header, first) = (prev.expect("n >= 1"), first.expect("n >= 1"));
        if merged != (n > 1) {
            return Err(Error::corrupt(
                "recovery-point file",
                Some(16),
                format!(
                    "flag merged is {merged} with {n} headers: a point has one header unless pruning merged others into it"
                ),
            ));
        }
        let dn = r.u32("disk count")?;
        if dn != header.disk_count {
            return Err(r.error(
                "disk count",
                format!("{dn} disks; the header says {}", header.disk_count),
            ));
        }
        let mut disks = Vec::with_capacity(dn as usize);
        for _ in 0..dn {
            let name = r.string_u16("disk name", MAX_NAME_LEN)?.to_string();
            let size = r.u64("disk size")?;
            disks.push(DiskInfo { name, size });
        }
        let ml = r.len_u64("manifests length", MAX_MANIFESTS_LEN)?;
        Ok(Front {
            merged,
            headers,
            header,
            first,
            disks,
            manifests_len: ml,
        })
    }

    pub fn decode(body: &[u8], whole: bool) -> Result<PointFile> {
        let mut r = Reader::new(body, 0, "recovery-point file");
        let Front {
            merged,
            headers,
            header,
            first,
            disks,
            manifests_len: ml,
        } = Self::decode_front(&mut r)?;
        let m_at = r.offset();
        let manifests = r.bytes("manifests", ml)?;
        let tag = r.array("tag")?;
        r.finish()?;
        let p = PointFile {
            merged,
            headers,
            header,
            first,
            disks,
            manifests: if whole {
                manifests.to_vec()
            } else {
                Vec::new()
            },
            tag,
        };
        if whole {
            if !merged && *blake3::hash(manifests).as_bytes() != p.header.manifests_digest {
                return Err(Error::corrupt(
                    "recovery-point file",
                    Some(m_at),
                    "the manifests do not match the digest in the point's header",
                ));
            }
            let decoded = p.decode_disks()?;
            let same = decoded.len() == p.disks.len()
                && decoded
                    .iter()
                    .zip(&p.disks)
                    .all(|(m, d)| m.name == d.name && m.size() == d.size);
            if !same {
                return Err(Error::corrupt(
                    "recovery-point file",
                    Some(m_at),
                    "the disk list does not match the manifests",
                ));
            }
        }
        Ok(p)
    }

    /// Reads a point file for listing: only what comes before its manifests (whose length must
    /// fit the file's), so listing a chain does not read every manifest. Neither the trailer
    /// nor the manifests are checked (that is [`read`](Self::read)'s job, before anything
    /// relies on the data), and the tag is left zero.
    pub fn read_listing(path: &Path) -> Result<PointFile> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("recovery-point file {}", path.display()),
            },
            _ => Error::io("opening", Some(path), e),
        })?;
        let len = f
            .metadata()
            .map_err(|e| Error::io("reading the size of", Some(path), e))?
            .len();
        if len > MAX_POINT_FILE as u64 {
            return Err(Error::corrupt(
                "recovery-point file",
                Some(0),
                format!("{len} bytes; the largest is {MAX_POINT_FILE}"),
            )
            .with_path(path));
        }
        // Read a prefix; grow it while the front does not fit in it.
        let mut want = len.min(64 << 10);
        loop {
            let mut buf = vec![0u8; want as usize];
            f.read_exact_at(&mut buf, 0)
                .map_err(|e| Error::io("reading", Some(path), e))?;
            let mut r = Reader::new(&buf, 0, "recovery-point file");
            match Self::decode_front(&mut r) {
                Ok(front) => {
                    let end = r.offset() as u128
                        + front.manifests_len as u128
                        + (TAG_LEN + TRAILER_LEN) as u128;
                    if end != u128::from(len) {
                        return Err(Error::corrupt(
                            "recovery-point file",
                            Some(r.offset()),
                            "the manifests' length does not fit the file",
                        )
                        .with_path(path));
                    }
                    return Ok(PointFile {
                        merged: front.merged,
                        headers: front.headers,
                        header: front.header,
                        first: front.first,
                        disks: front.disks,
                        manifests: Vec::new(),
                        tag: [0; TAG_LEN],
                    });
                }
                Err(_) if want < len => want = len.min(want * 8),
                Err(e) => return Err(e.with_path(path)),
            }
        }
    }
}

/// What comes before a point file's manifests.
struct Front {
    merged: bool,
    headers: Vec<Vec<u8>>,
    header: BundleHeader,
    first: (PointId, BundleKind, u64),
    disks: Vec<DiskInfo>,
    manifests_len: usize,
}

/// A point file on disk.
#[derive(Debug, Clone)]
pub(crate) struct StoredPoint {
    pub path: PathBuf,
    pub file: PointFile,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyFile, MasterKey, Secret};

    fn file(headers: usize) -> PointFile {
        let (kf, _) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([2; 32]))).unwrap();
        let mut header = BundleHeader {
            kind: BundleKind::Incremental,
            consistency: MarkerKind::App,
            chunk_size: 1 << 20,
            seq: 0,
            time_ns: 5,
            parent: PointId([1; 32]),
            epoch: [3; 16],
            generation: 0,
            group: "g".into(),
            label: "l".repeat(200),
            key_file: kf,
            manifests_digest: [0; 32],
            disk_count: 1,
        };
        let manifests =
            crate::bundle::format::encode_manifests(&[crate::bundle::format::DiskManifest {
                name: "d".into(),
                extents: crate::ExtentMap::new(4096).unwrap(),
            }])
            .unwrap();
        header.manifests_digest = *blake3::hash(&manifests).as_bytes();
        // A hash chain of headers, as pruning leaves them.
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for i in 0..headers {
            header.seq = i as u64 + 1;
            if let Some(last) = chain.last() {
                header.parent = PointId::of_header(last);
            }
            chain.push(header.encode().unwrap());
        }
        PointFile {
            merged: headers > 1,
            headers: chain,
            header,
            first: (PointId([1; 32]), BundleKind::Incremental, 1),
            disks: vec![DiskInfo {
                name: "d".into(),
                size: 4096,
            }],
            manifests,
            tag: [9; TAG_LEN],
        }
    }

    #[test]
    fn listing_reads_the_front_of_small_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        // 400 headers of about 400 bytes: the front outgrows the first 64 KiB read.
        for n in [1, 400] {
            let f = file(n);
            let path = dir.path().join(format!("{n}.rcpt"));
            std::fs::write(&path, f.encode().unwrap()).unwrap();
            let listed = PointFile::read_listing(&path).unwrap();
            assert_eq!(listed.headers, f.headers);
            assert_eq!(listed.disks, f.disks);
            assert_eq!(listed.id(), f.id());
            let whole = PointFile::read(&path).unwrap();
            assert_eq!(whole.manifests, f.manifests);
            // Cut short: the manifests no longer fit.
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
            let e = PointFile::read_listing(&path).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        }
    }
}
