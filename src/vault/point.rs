//! Recovery-point files (immutable; `docs/FORMAT.md` §15.4) and what a caller sees of a point.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::layout::{VERSION_MAJOR, VERSION_MINOR};
use super::records::{
    In, MIN_RECORD_LEN, RECORD_CHECKPOINT, RECORD_SHIPPED, Record, SignedHashes, check_follows, put,
};
use crate::bundle::format::{BundleHeader, BundleKind, DiskManifest, MAX_HEADER_LEN};
use crate::crypto::{KeyId, VerifyingKey};
use crate::error::{Error, Result};
use crate::format::Writer;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::trailer::{HashingReader, TRAILER_LEN, TrailerWriter};
use crate::fsutil::AtomicFile;
use crate::id::PointId;
use crate::log::MarkerKind;

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
    /// How many earlier shipped points this one stands for besides itself (pruned points
    /// merged into it, or those a checkpoint replaced; 0 for a point as shipped).
    pub merged: u64,
    /// Whether the point's file starts with a checkpoint the key holder signed (`vault
    /// compact`), which stands for every shipped point before it.
    pub checkpoint: bool,
    /// The public key that signed the point (derived from the group's key).
    pub verifying_key: VerifyingKey,
    /// The id of the key the point's blobs are sealed under (the group's key).
    pub key_id: KeyId,
    /// Every disk of the group at this point.
    pub disks: Vec<DiskInfo>,
    /// The group's chunk grid (the seed's chunk size).
    pub chunk_size: u32,
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

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Selector::Latest => f.write_str("latest"),
            Selector::LatestAppConsistent => f.write_str("latest app-consistent"),
            Selector::AtOrBefore(t) => {
                let ns = t
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                write!(f, "at or before {}", crate::format::rfc3339(ns))
            }
            Selector::Id(id) => write!(f, "id {}", id.to_hex()),
        }
    }
}

impl Selector {
    /// Picks from a chain's `links` (oldest first).
    pub(crate) fn pick_link<'a>(
        &self,
        links: &'a [super::chain::Link],
    ) -> Option<&'a super::chain::Link> {
        match *self {
            Selector::Latest => links.last(),
            Selector::LatestAppConsistent => links
                .iter()
                .rev()
                .find(|l| l.consistency == MarkerKind::App),
            Selector::AtOrBefore(t) => links
                .iter()
                .rev()
                .find(|l| UNIX_EPOCH + Duration::from_nanos(l.time_ns) <= t),
            Selector::Id(id) => links.iter().find(|l| l.id == id),
        }
    }
}

/// A point file: its summary, and for a whole read what its records map.
#[derive(Debug, Clone)]
pub(crate) struct PointFile {
    /// The point's own header (its last record's), as shipped: the point's id is its BLAKE3.
    pub header_bytes: Vec<u8>,
    pub header: BundleHeader,
    /// The first record's parent, kind and sequence number: where this file links into the
    /// chain.
    pub first: (PointId, BundleKind, u64),
    /// Records in the file.
    pub records: u64,
    /// Shipped points the records stand for (a checkpoint stands for many).
    pub shipped: u64,
    /// Whether the first record is a checkpoint.
    pub checkpoint: bool,
    pub disks: Vec<DiskInfo>,
    /// What the records map: set by a whole read only.
    pub body: Option<Body>,
}

/// What a point file's records map, from a whole read.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    /// The records' manifests folded (newer wins): a full map of every disk when the first
    /// record is a base or a checkpoint, the changes since the previous point file otherwise.
    pub folded: Vec<DiskManifest>,
    /// Every blob the records carry, with its signed sealed hashes.
    pub hashes: SignedHashes,
    /// Byte range of the records in the file.
    pub span: (u64, u64),
    /// BLAKE3 of those bytes as they were read and checked.
    pub span_hash: blake3::Hash,
    /// The first point the chain ever shipped, when this file starts the chain (a base record's
    /// id, or what a checkpoint states).
    pub first_point: Option<PointId>,
}

impl PointFile {
    /// The point's id.
    pub fn id(&self) -> PointId {
        PointId::of_header(&self.header_bytes)
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
            merged: self.shipped - 1,
            checkpoint: self.checkpoint,
            verifying_key: h.verifying_key,
            key_id: h.key_id(),
            disks: self.disks.clone(),
            chunk_size: h.chunk_size,
        }
    }

    /// What the records map (the file must have been read whole).
    pub fn body(&self) -> Result<&Body> {
        self.body.as_ref().ok_or_else(|| {
            Error::invalid_argument("point file", "only its summary was read, not its records")
        })
    }

    /// The records' manifests, folded (the file must have been read whole).
    pub fn decode_disks(&self) -> Result<Vec<DiskManifest>> {
        Ok(self.body()?.folded.clone())
    }

    /// The summary's bytes: everything before the records.
    fn summary_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(256);
        Preamble::new(FileKind::Manifest, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.u64(self.records).u64(self.shipped);
        w.u8(if self.checkpoint {
            RECORD_CHECKPOINT
        } else {
            RECORD_SHIPPED
        });
        w.u8(match self.first.1 {
            BundleKind::Base => 1,
            BundleKind::Incremental => 2,
        });
        w.zeros(6).u64(self.first.2).bytes(&self.first.0.0);
        w.u16(self.header_bytes.len() as u16)
            .bytes(&self.header_bytes);
        w.u32(self.disks.len() as u32);
        for d in &self.disks {
            w.string_u16("disk name", &d.name, MAX_NAME_LEN)?;
            w.u64(d.size);
        }
        Ok(w.into_bytes())
    }

    /// Writes this summary and then `records` (written by the closure) to `w`, then the
    /// trailer. The caller guarantees that the records are the ones the summary describes;
    /// every read checks it.
    pub fn write<W: Write>(
        &self,
        w: W,
        path: &Path,
        records: impl FnOnce(&mut TrailerWriter<W>) -> Result<()>,
    ) -> Result<W> {
        let mut out = TrailerWriter::new(w);
        put(&mut out, &self.summary_bytes()?, path)?;
        records(&mut out)?;
        let (w, _) = out
            .finish()
            .map_err(|e| Error::io("writing a recovery-point file", Some(path), e))?;
        Ok(w)
    }

    /// Publishes this summary and `records` at `path` crash-safely (replacing a file there
    /// only when `replace`).
    pub fn publish(
        &self,
        path: &Path,
        replace: bool,
        records: impl FnOnce(&mut TrailerWriter<std::io::BufWriter<AtomicFile>>) -> Result<()>,
    ) -> Result<()> {
        let file = AtomicFile::create_unscanned(path, replace)?;
        let w = self.write(
            std::io::BufWriter::with_capacity(1 << 20, file),
            path,
            records,
        )?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io("writing a recovery-point file", Some(path), e.into_error()))?;
        file.commit()
    }

    /// Reads a point file's summary from `r`.
    pub(crate) fn read_summary<R: Read>(r: &mut In<R>) -> Result<PointFile> {
        let mut pre = [0u8; PREAMBLE_LEN];
        r.inner
            .read_exact(&mut pre)
            .map_err(|_| r.err("preamble", "truncated"))?;
        Preamble::decode_slice(&pre, FileKind::Manifest, VERSION_MAJOR)?;
        r.at += PREAMBLE_LEN as u64;
        r.left = r.left.saturating_sub(PREAMBLE_LEN as u64);
        let records = r.u64("record count")?;
        let shipped = r.u64("shipped count")?;
        if records == 0 || records > r.left / MIN_RECORD_LEN || shipped < records {
            return Err(r.err(
                "record count",
                format!("{records} records standing for {shipped} points cannot be in this file"),
            ));
        }
        let checkpoint = match r.u8("first record kind")? {
            RECORD_SHIPPED => false,
            RECORD_CHECKPOINT => true,
            k => return Err(r.err("first record kind", format!("unknown kind {k}"))),
        };
        let kind = match r.u8("link kind")? {
            1 => BundleKind::Base,
            2 => BundleKind::Incremental,
            k => return Err(r.err("link kind", format!("unknown kind {k}"))),
        };
        r.reserved("reserved", 6)?;
        let seq = r.u64("link sequence")?;
        let parent = PointId(r.array("link parent")?);
        let h_at = r.at + 2;
        let hl = u64::from(r.u16("header length")?);
        let header_bytes = r.vec("header", hl, MAX_HEADER_LEN as u64)?;
        let header = BundleHeader::decode(&header_bytes, h_at)?;
        let dn = r.u32("disk count")?;
        if dn != header.disk_count {
            return Err(r.err(
                "disk count",
                format!("{dn} disks; the header says {}", header.disk_count),
            ));
        }
        // The records run from the first one's sequence number up to the point's own: a file
        // that says otherwise could make a chain walk go round.
        if seq > header.seq {
            return Err(r.err(
                "link sequence",
                format!(
                    "its records start at sequence {seq}, past the point's own {}",
                    header.seq
                ),
            ));
        }
        let mut disks = Vec::with_capacity(dn as usize);
        for _ in 0..dn {
            let n = u64::from(r.u16("disk name length")?);
            let name = String::from_utf8(r.vec("disk name", n, MAX_NAME_LEN as u64)?)
                .map_err(|_| r.err("disk name", "not UTF-8"))?;
            let size = r.u64("disk size")?;
            disks.push(DiskInfo { name, size });
        }
        Ok(PointFile {
            header_bytes,
            header,
            first: (parent, kind, seq),
            records,
            shipped,
            checkpoint,
            disks,
            body: None,
        })
    }

    /// Reads and checks a whole point file from `r` (`len` bytes, trailer included): the
    /// summary, every record (digests, hash chain, signatures under the key the headers name),
    /// the summary against the records, the trailer.
    pub fn read_from<R: Read>(r: R, len: u64) -> Result<PointFile> {
        let mut r = In {
            inner: HashingReader::new(r),
            at: 0,
            left: len
                .checked_sub(TRAILER_LEN as u64)
                .ok_or_else(|| Error::corrupt("recovery-point file", Some(0), "truncated"))?,
            what: "recovery-point file",
        };
        let mut file = Self::read_summary(&mut r)?;
        let start = r.at;
        // The records, hashed on their own too (a prune that copies them checks the copy).
        let mut rr = In {
            inner: HashingReader::new(&mut r.inner),
            at: r.at,
            left: r.left,
            what: r.what,
        };
        let mut folded: Vec<DiskManifest> = Vec::new();
        let mut hashes = SignedHashes::default();
        let mut shipped = 0u64;
        // Of the first record: its link, checkpoint, kind and id.
        let mut first = None;
        let mut prev: Option<Record> = None;
        for _ in 0..file.records {
            let mut rec = Record::read(&mut rr)?;
            let manifests = std::mem::take(&mut rec.manifests);
            match &prev {
                Some(p) => {
                    check_follows(p, &rec)?;
                    for d in manifests {
                        let Some(m) = folded.iter_mut().find(|m| m.name == d.name) else {
                            return Err(Error::corrupt(
                                "recovery-point file",
                                Some(rec.span.0),
                                format!("disk `{}` is not in the records before it", d.name),
                            ));
                        };
                        m.extents.overlay(&d.extents)?;
                    }
                }
                None => {
                    folded = manifests;
                    first = Some((rec.link(), rec.checkpoint, rec.header.kind, rec.id()));
                }
            }
            for row in std::mem::take(&mut rec.rows) {
                hashes.add(&row);
            }
            shipped = shipped
                .checked_add(rec.checkpoint.map_or(1, |c| c.0))
                .ok_or_else(|| rr.err("shipped count", "overflows"))?;
            prev = Some(rec);
        }
        let end = rr.at;
        let span_hash = rr.inner.digest();
        drop(rr);
        let In { inner, .. } = r;
        inner.finish("recovery-point file")?;
        let (first, last) = (first.expect("records >= 1"), prev.expect("records >= 1"));
        let (link, checkpoint, first_kind, first_id) = first;
        // The last shipped record's signature covers every header before it (their ids are
        // its ancestors'); a checkpoint's signature was checked when it was read.
        if last.checkpoint.is_none() {
            last.check_signature()?;
        }
        let bad = |d: &str| {
            Err(Error::corrupt(
                "recovery-point file",
                Some(16),
                d.to_string(),
            ))
        };
        if last.header_bytes != file.header_bytes {
            return bad("its summary names another point than its last record");
        }
        if link != file.first || file.checkpoint != checkpoint.is_some() {
            return bad("its summary links it into the chain elsewhere than its first record");
        }
        if shipped != file.shipped {
            return bad("its summary counts other shipped points than its records");
        }
        let same = folded.len() == file.disks.len()
            && folded
                .iter()
                .zip(&file.disks)
                .all(|(m, d)| m.name == d.name && m.size() == d.size);
        if !same {
            return bad("its disk list does not match its records");
        }
        let first_point = match checkpoint {
            Some((_, p)) => Some(p),
            None if first_kind == BundleKind::Base => Some(first_id),
            None => None,
        };
        file.body = Some(Body {
            folded,
            hashes,
            span: (start, end),
            span_hash,
            first_point,
        });
        Ok(file)
    }

    /// Reads and checks a whole point file (see [`read_from`](Self::read_from)), on its own or
    /// in a segment.
    pub fn read(loc: &Loc) -> Result<PointFile> {
        let (f, len) = open(loc)?;
        Self::read_from(std::io::BufReader::with_capacity(1 << 20, f), len).map_err(|e| {
            crate::format::trailer::version_or_damage(&loc.path, "recovery-point file", e)
                .with_path(&loc.path)
        })
    }

    /// Reads a point file for listing: its summary only, so listing a chain does not read its
    /// records. Nothing is checked beyond the summary's shape ([`read`](Self::read) checks
    /// everything before anything relies on the data).
    pub fn read_listing(loc: &Loc) -> Result<PointFile> {
        Self::read_summary(&mut stream(loc, 16 << 10)?).map_err(|e| e.with_path(&loc.path))
    }
}

/// Where a point file's bytes are: a file of its own, or a run of a segment's
/// (`vault::segment`, `docs/FORMAT.md` §15.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub path: PathBuf,
    /// Offset and length in a segment; `None` for a file of its own.
    pub within: Option<(u64, u64)>,
}

impl Loc {
    /// A point file of its own at `path`.
    pub fn file(path: PathBuf) -> Loc {
        Loc { path, within: None }
    }

    /// Whether the point file is a file of its own.
    pub fn is_file(&self) -> bool {
        self.within.is_none()
    }
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.within {
            None => write!(f, "{}", self.path.display()),
            Some((at, len)) => write!(f, "{} (bytes {at}..{})", self.path.display(), at + len),
        }
    }
}

/// A point file as a stream of its bytes before the trailer, read through a buffer of `buf`
/// bytes.
pub(crate) fn stream(
    loc: &Loc,
    buf: usize,
) -> Result<In<std::io::BufReader<std::io::Take<std::fs::File>>>> {
    let (f, len) = open(loc)?;
    Ok(In {
        inner: std::io::BufReader::with_capacity(buf, f),
        at: 0,
        left: len.saturating_sub(TRAILER_LEN as u64),
        what: "recovery-point file",
    })
}

/// Opens a point file, positioned at its first byte and limited to its bytes, and gives its
/// length. A segment shorter than the run it should hold is `Corrupt`.
pub(crate) fn open(loc: &Loc) -> Result<(std::io::Take<std::fs::File>, u64)> {
    use std::io::{Seek, SeekFrom};
    let path = &loc.path;
    let what = if loc.is_file() {
        "recovery-point file"
    } else {
        "point segment"
    };
    let (mut f, size) = crate::fsutil::open_regular(path, what)?;
    let Some((at, len)) = loc.within else {
        return Ok((f.take(size), size));
    };
    if at.checked_add(len).is_none_or(|end| end > size) {
        return Err(Error::corrupt(
            "point segment",
            Some(size),
            format!("it ends before the point file it holds at bytes {at}.."),
        )
        .with_path(path));
    }
    f.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io("reading", Some(path), e))?;
    Ok((f.take(len), len))
}

/// A point file on disk.
#[derive(Debug, Clone)]
pub(crate) struct StoredPoint {
    pub loc: Loc,
    pub file: PointFile,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bundle::format::{encode_manifests, encode_table};
    use crate::crypto::{Key, KeyFile, MasterKey, SIGNED_POINT, Secret};
    use crate::vault::records::shipped_record;

    /// A point file of `n` signed records of an incremental chain (one 4 KiB disk, no
    /// changes), as pruning leaves them, written to `path`.
    pub(crate) fn synthetic(path: &Path, n: u64, key: &Key) -> PointFile {
        let manifests = encode_manifests(&[DiskManifest {
            name: "d".into(),
            extents: crate::ExtentMap::new(4096).unwrap(),
        }])
        .unwrap();
        let table = encode_table(&[]);
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
            label: String::new(),
            key_file: key.key_file().clone(),
            manifests_digest: *blake3::hash(&manifests).as_bytes(),
            blobs_digest: *blake3::hash(&table).as_bytes(),
            verifying_key: key.verifying_key(),
            disk_count: 1,
        };
        let mut file = PointFile {
            header_bytes: Vec::new(),
            header: header.clone(),
            first: (PointId([1; 32]), BundleKind::Incremental, 1),
            records: n,
            shipped: n,
            checkpoint: false,
            disks: vec![DiskInfo {
                name: "d".into(),
                size: 4096,
            }],
            body: None,
        };
        // The records are written as they are made; the summary needs the last header, so
        // it is computed first (headers are cheap).
        let mut parent = PointId([1; 32]);
        for i in 0..n {
            header.seq = i + 1;
            header.parent = parent;
            parent = PointId::of_header(&header.encode().unwrap());
        }
        file.header = header.clone();
        file.header_bytes = header.encode().unwrap();
        let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        file.write(out, path, |w| {
            let mut parent = PointId([1; 32]);
            for i in 0..n {
                header.seq = i + 1;
                header.parent = parent;
                let bytes = header.encode().unwrap();
                parent = PointId::of_header(&bytes);
                // Only the last record's signature is checked on read; sign it alone.
                let sig = if i + 1 == n {
                    key.sign(SIGNED_POINT, &parent.0)
                } else {
                    [0; 64]
                };
                put(w, &shipped_record(&bytes, &manifests, &table, &sig), path)?;
            }
            Ok(())
        })
        .unwrap()
        .into_inner()
        .unwrap();
        file
    }

    #[test]
    fn records_read_whole_and_for_listing_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([2; 32]))).unwrap();
        for n in [1, 400] {
            let path = dir.path().join(format!("{n}.rcpt"));
            let f = synthetic(&path, n, &key);
            let listed = PointFile::read_listing(&Loc::file(path.clone())).unwrap();
            assert_eq!(
                (listed.id(), listed.records, &listed.disks),
                (f.id(), n, &f.disks)
            );
            let whole = PointFile::read(&Loc::file(path.clone())).unwrap();
            assert_eq!((whole.id(), whole.shipped), (f.id(), n));
            assert_eq!(whole.decode_disks().unwrap().len(), 1);
            // Cut short, or a flipped byte in the last record (its signature's coverage).
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
            assert_eq!(
                PointFile::read(&Loc::file(path.clone()))
                    .unwrap_err()
                    .kind(),
                crate::ErrorKind::Corrupt
            );
            let mut flipped = bytes.clone();
            let at = bytes.len() - 32 - 64 - 20;
            flipped[at] ^= 1;
            std::fs::write(&path, &flipped).unwrap();
            assert!(PointFile::read(&Loc::file(path.clone())).is_err());
        }
    }

    /// The time bomb of version 1: point files refused more than 2^20 headers, which a year of
    /// 30-second points reaches without a compaction. A chain past it reads (records are read
    /// as a stream, their number bounded only by the file's bytes): about 500 MB, some seconds.
    #[test]
    fn a_chain_past_the_old_cap_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([4; 32]))).unwrap();
        let n = (1u64 << 20) + 1;
        let path = dir.path().join("long.rcpt");
        let f = synthetic(&path, n, &key);
        let whole = PointFile::read(&Loc::file(path.clone())).unwrap();
        assert_eq!((whole.id(), whole.records, whole.shipped), (f.id(), n, n));
        assert_eq!(
            PointFile::read_listing(&Loc::file(path.clone()))
                .unwrap()
                .records,
            n
        );
    }
}
