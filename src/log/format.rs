//! Encoding and decoding of the change log's header and records (`docs/FORMAT.md` §8).
//!
//! Pure functions over byte slices: no I/O, so the same code serves the writer, recovery, the
//! reader and the fuzz target.

use crate::error::{Error, Result};
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::{MAX_DISK_SIZE, MAX_DISKS_PER_GROUP, MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::format::{Reader, Writer, checked};

/// Major format version this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// Minor format version this build writes.
pub const VERSION_MINOR: u16 = 0;

// Header layout (FORMAT.md §8.1).
const HEADER_LEN_OFFSET: usize = PREAMBLE_LEN;
const LOG_ID_OFFSET: usize = HEADER_LEN_OFFSET + 8; // u32 length, u32 reserved
const FIXED_HEADER_LEN: usize = LOG_ID_OFFSET + 16 + 16 + 8 + 8 + 8 + 8 + 2 + 2;
const _: () = assert!(FIXED_HEADER_LEN == 92);
/// Largest header: the fixed part, the group name, and the largest disk table, plus the CRC.
pub const MAX_HEADER_LEN: usize =
    FIXED_HEADER_LEN + 2 + MAX_NAME_LEN + MAX_DISKS_PER_GROUP * (2 + MAX_NAME_LEN + 8) + 4;

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 40;
/// Largest payload of one write record; longer writes are split into several records.
pub const MAX_WRITE_PAYLOAD: usize = 16 << 20;
const MARKER_FIXED: usize = 16;
/// Largest payload of a marker record.
pub const MAX_MARKER_PAYLOAD: usize = MARKER_FIXED + 2 + MAX_LABEL_LEN;
/// Payload length of a seal record.
pub const SEAL_PAYLOAD_LEN: usize = 8 + 8 + 32;

/// One disk of the group, as listed in the log header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiskSpec {
    /// Name, unique in the group (1 to 255 bytes of UTF-8).
    pub name: String,
    /// Size in bytes (at most 64 TiB).
    pub size: u64,
}

impl DiskSpec {
    /// A disk of `size` bytes called `name`.
    pub fn new(name: impl Into<String>, size: u64) -> Self {
        DiskSpec {
            name: name.into(),
            size,
        }
    }
}

/// The change log's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHeader {
    /// Minor version of the file.
    pub minor: u16,
    /// Random id of this log file.
    pub log_id: [u8; 16],
    /// Random id of the tracking session; kept across rotations, new after a resync.
    pub epoch: [u8; 16],
    /// 0 for the first log of an epoch, one more at each rotation.
    pub generation: u64,
    /// Sequence number of the first recovery point a marker of this log closes.
    pub first_point: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Sequence number of the first record.
    pub first_record: u64,
    /// The group's name.
    pub group: String,
    /// The group's disks; a record names one by its index here.
    pub disks: Vec<DiskSpec>,
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid_argument(
            what,
            format!(
                "`{name}` must be 1 to {MAX_NAME_LEN} bytes of UTF-8, not {} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

impl LogHeader {
    /// Checks a header about to be written: names, sizes, disk count, unique disk names.
    pub fn validate(&self) -> Result<()> {
        check_name("group", &self.group)?;
        if self.disks.is_empty() || self.disks.len() > MAX_DISKS_PER_GROUP {
            return Err(Error::invalid_argument(
                "disks",
                format!(
                    "a group has 1 to {MAX_DISKS_PER_GROUP} disks, not {} disks",
                    self.disks.len()
                ),
            ));
        }
        for (i, d) in self.disks.iter().enumerate() {
            check_name("disk name", &d.name)?;
            if d.size > MAX_DISK_SIZE {
                return Err(Error::limit_exceeded(
                    format!("size of disk `{}`", d.name),
                    MAX_DISK_SIZE,
                    d.size,
                    "bytes",
                ));
            }
            if self.disks[..i].iter().any(|o| o.name == d.name) {
                return Err(Error::invalid_argument(
                    "disks",
                    format!("disk name `{}` appears twice", d.name),
                ));
            }
        }
        Ok(())
    }

    /// The encoded header, CRC included.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut w = Writer::with_capacity(256);
        Preamble::new(FileKind::ChangeLog, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.u32(0).u32(0); // header length, patched below; reserved
        w.bytes(&self.log_id).bytes(&self.epoch);
        w.u64(self.generation)
            .u64(self.first_point)
            .u64(self.created_ns)
            .u64(self.first_record);
        // Validated above: at most MAX_DISKS_PER_GROUP (256) disks.
        w.u16(self.disks.len() as u16).u16(0);
        debug_assert_eq!(w.len(), FIXED_HEADER_LEN);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        for d in &self.disks {
            w.string_u16("disk name", &d.name, MAX_NAME_LEN)?;
            w.u64(d.size);
        }
        let mut bytes = w.into_bytes();
        let len = bytes.len() + 4;
        debug_assert!(len <= MAX_HEADER_LEN);
        bytes[HEADER_LEN_OFFSET..HEADER_LEN_OFFSET + 4]
            .copy_from_slice(&(len as u32).to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        Ok(bytes)
    }

    /// The total header length announced by the first bytes of a log (at least
    /// `PREAMBLE_LEN + 8` of them), checked against the cap; the preamble is checked too.
    pub fn announced_len(prefix: &[u8]) -> Result<usize> {
        let mut r = Reader::new(prefix, 0, "change log header");
        Preamble::decode(&mut r, FileKind::ChangeLog, VERSION_MAJOR)?;
        let at = r.offset();
        let len = r.len_u32("header length", MAX_HEADER_LEN)?;
        if len < FIXED_HEADER_LEN + 2 + 4 {
            return Err(Error::corrupt(
                "change log header field `header length`",
                Some(at),
                format!("{len} bytes is shorter than the smallest header"),
            ));
        }
        Ok(len)
    }

    /// Decodes a whole header (exactly `announced_len` bytes).
    pub fn decode(bytes: &[u8]) -> Result<LogHeader> {
        let len = Self::announced_len(bytes)?;
        if bytes.len() != len {
            return Err(Error::corrupt(
                "change log header",
                Some(0),
                format!("truncated: {} of {len} bytes", bytes.len()),
            ));
        }
        let (body, crc) = bytes.split_at(len - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != stored {
            return Err(Error::corrupt(
                "change log header",
                Some(0),
                "CRC32 mismatch",
            ));
        }
        let mut r = Reader::new(body, 0, "change log header");
        let pre = Preamble::decode(&mut r, FileKind::ChangeLog, VERSION_MAJOR)?;
        r.u32("header length")?;
        r.reserved("reserved", 4)?;
        let log_id = r.array("log id")?;
        let epoch = r.array("epoch")?;
        let generation = r.u64("generation")?;
        let first_point = r.u64("first point")?;
        let created_ns = r.u64("created")?;
        let first_record = r.u64("first record")?;
        let at = r.offset();
        let count = usize::from(r.u16("disk count")?);
        r.reserved("reserved", 2)?;
        if count == 0 || count > MAX_DISKS_PER_GROUP {
            return Err(Error::corrupt(
                "change log header field `disk count`",
                Some(at),
                format!("{count} disks is not within 1 to {MAX_DISKS_PER_GROUP} disks"),
            ));
        }
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        let mut disks = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string_u16("disk name", MAX_NAME_LEN)?.to_string();
            let at = r.offset();
            let size = r.u64("disk size")?;
            if size > MAX_DISK_SIZE {
                return Err(r.error(
                    "disk size",
                    format!("{size} bytes at byte {at} exceeds 64 TiB"),
                ));
            }
            disks.push(DiskSpec { name, size });
        }
        r.finish()?;
        let header = LogHeader {
            minor: pre.minor,
            log_id,
            epoch,
            generation,
            first_point,
            created_ns,
            first_record,
            group,
            disks,
        };
        header.validate().map_err(|e| {
            Error::corrupt(
                "change log header",
                Some(0),
                format!("invalid contents: {e}"),
            )
        })?;
        Ok(header)
    }

    /// Total size of all disks.
    pub fn total_disk_size(&self) -> u64 {
        self.disks.iter().map(|d| d.size).sum()
    }
}

/// The type of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// Data written to a disk.
    Write = 1,
    /// A range of a disk unmapped (reads as zeros).
    Trim = 2,
    /// A consistency marker closing a recovery point.
    Marker = 3,
    /// The seal that ends a sealed log.
    Seal = 4,
}

impl RecordType {
    fn from_u8(v: u8) -> Option<RecordType> {
        match v {
            1 => Some(RecordType::Write),
            2 => Some(RecordType::Trim),
            3 => Some(RecordType::Marker),
            4 => Some(RecordType::Seal),
            _ => None,
        }
    }
}

/// A decoded record header, checked against the log header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC32 stored in the record.
    pub crc: u32,
    /// Type.
    pub kind: RecordType,
    /// Disk index (write and trim).
    pub disk: u16,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// Sequence number.
    pub seq: u64,
    /// Disk offset (write and trim).
    pub offset: u64,
    /// Range length (write: the payload length; trim: the range).
    pub len: u64,
}

impl RecordHeader {
    /// Encodes the header with its CRC over the header fields and `payload`.
    pub fn encode(&self, payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[4] = self.kind as u8;
        h[6..8].copy_from_slice(&self.disk.to_le_bytes());
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.offset.to_le_bytes());
        h[32..40].copy_from_slice(&self.len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[4..]);
        crc.update(payload);
        h[0..4].copy_from_slice(&crc.finalize().to_le_bytes());
        h
    }

    /// Decodes and checks a record header found at byte `at`: known type, payload within its
    /// type's cap, the range within the disk. The CRC is checked by the caller, who holds the
    /// payload.
    pub fn decode(h: &[u8; RECORD_HEADER_LEN], at: u64, log: &LogHeader) -> Result<RecordHeader> {
        let bad = |detail: String| Error::corrupt("change log record header", Some(at), detail);
        let le32 = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let le64 = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let kind = RecordType::from_u8(h[4])
            .ok_or_else(|| bad(format!("unknown record type {}", h[4])))?;
        let rec = RecordHeader {
            crc: le32(0),
            kind,
            disk: u16::from_le_bytes([h[6], h[7]]),
            payload_len: le32(8),
            seq: le64(16),
            offset: le64(24),
            len: le64(32),
        };
        let payload = rec.payload_len as usize;
        match kind {
            RecordType::Write | RecordType::Trim => {
                let disk = log.disks.get(usize::from(rec.disk)).ok_or_else(|| {
                    bad(format!(
                        "disk index {} but the log has {} disks",
                        rec.disk,
                        log.disks.len()
                    ))
                })?;
                let end = checked::add(rec.offset, rec.len, "record range")?;
                if end > disk.size {
                    return Err(bad(format!(
                        "range {}..{end} is past the end of disk `{}` ({} bytes)",
                        rec.offset, disk.name, disk.size
                    )));
                }
                let want = if kind == RecordType::Write {
                    rec.len
                } else {
                    0
                };
                if kind == RecordType::Write && payload > MAX_WRITE_PAYLOAD {
                    return Err(bad(format!(
                        "a write payload of {payload} bytes exceeds the cap of \
                         {MAX_WRITE_PAYLOAD} bytes"
                    )));
                }
                if u64::from(rec.payload_len) != want {
                    return Err(bad(format!(
                        "a payload of {payload} bytes, expected {want} bytes for a range of {} \
                         bytes",
                        rec.len
                    )));
                }
            }
            RecordType::Marker => {
                if !(MARKER_FIXED + 2..=MAX_MARKER_PAYLOAD).contains(&payload) {
                    return Err(bad(format!(
                        "a marker payload of {payload} bytes is outside {} to \
                         {MAX_MARKER_PAYLOAD} bytes",
                        MARKER_FIXED + 2
                    )));
                }
            }
            RecordType::Seal => {
                if payload != SEAL_PAYLOAD_LEN {
                    return Err(bad(format!(
                        "a seal payload of {payload} bytes, expected {SEAL_PAYLOAD_LEN} bytes"
                    )));
                }
            }
        }
        if kind != RecordType::Write
            && kind != RecordType::Trim
            && (rec.disk, rec.offset, rec.len) != (0, 0, 0)
        {
            return Err(bad("a marker or seal names a disk range".into()));
        }
        Ok(rec)
    }

    /// Whether `payload` matches the stored CRC.
    pub fn crc_matches(
        &self,
        h: &[u8; RECORD_HEADER_LEN],
        payload_crc: impl FnOnce(&mut crc32fast::Hasher),
    ) -> bool {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[4..]);
        payload_crc(&mut crc);
        crc.finalize() == self.crc
    }
}

/// Consistency of a recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    /// Crash-consistent: the disks as a power cut would have left them.
    Crash,
    /// Application-consistent: taken after the applications quiesced (VSS-style).
    App,
}

/// A marker's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Crash or app consistent.
    pub kind: MarkerKind,
    /// Time of the point, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Free text (at most 1024 bytes).
    pub label: String,
}

impl Marker {
    /// The encoded payload.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(MARKER_FIXED + 2 + self.label.len());
        w.u8(match self.kind {
            MarkerKind::Crash => 1,
            MarkerKind::App => 2,
        });
        w.zeros(7).u64(self.time_ns);
        w.string_u16("label", &self.label, MAX_LABEL_LEN)?;
        Ok(w.into_bytes())
    }

    /// Decodes a payload found at byte `at`.
    pub fn decode(payload: &[u8], at: u64) -> Result<Marker> {
        let mut r = Reader::new(payload, at, "change log marker");
        let kind = match r.u8("kind")? {
            1 => MarkerKind::Crash,
            2 => MarkerKind::App,
            k => return Err(r.error("kind", format!("unknown marker kind {k}"))),
        };
        r.reserved("reserved", 7)?;
        let time_ns = r.u64("time")?;
        let label = r.string_u16("label", MAX_LABEL_LEN)?.to_string();
        r.finish()?;
        Ok(Marker {
            kind,
            time_ns,
            label,
        })
    }
}

/// A seal's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// Records before the seal.
    pub records: u64,
    /// Bytes of write payloads before the seal.
    pub payload_bytes: u64,
    /// BLAKE3 of every byte of the file before the seal record.
    pub body_hash: [u8; 32],
}

impl Seal {
    /// The encoded payload.
    pub fn encode(&self) -> [u8; SEAL_PAYLOAD_LEN] {
        let mut out = [0u8; SEAL_PAYLOAD_LEN];
        out[0..8].copy_from_slice(&self.records.to_le_bytes());
        out[8..16].copy_from_slice(&self.payload_bytes.to_le_bytes());
        out[16..].copy_from_slice(&self.body_hash);
        out
    }

    /// Decodes a payload found at byte `at`.
    pub fn decode(payload: &[u8], at: u64) -> Result<Seal> {
        let mut r = Reader::new(payload, at, "change log seal");
        let seal = Seal {
            records: r.u64("records")?,
            payload_bytes: r.u64("payload bytes")?,
            body_hash: r.array("body hash")?,
        };
        r.finish()?;
        Ok(seal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    pub(crate) fn header() -> LogHeader {
        LogHeader {
            minor: VERSION_MINOR,
            log_id: [1; 16],
            epoch: [2; 16],
            generation: 3,
            first_point: 4,
            created_ns: 5,
            first_record: 6,
            group: "vm-01".into(),
            disks: vec![DiskSpec::new("os", 1 << 30), DiskSpec::new("data", 1 << 20)],
        }
    }

    #[test]
    fn header_round_trip_and_crc() {
        let h = header();
        let b = h.encode().unwrap();
        assert_eq!(LogHeader::announced_len(&b).unwrap(), b.len());
        assert_eq!(LogHeader::decode(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(LogHeader::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn header_validation() {
        let mut h = header();
        h.disks.push(DiskSpec::new("os", 1));
        assert_eq!(h.encode().unwrap_err().kind(), ErrorKind::InvalidArgument);
        let mut h = header();
        h.group = String::new();
        assert_eq!(h.encode().unwrap_err().kind(), ErrorKind::InvalidArgument);
        let mut h = header();
        h.disks[0].size = MAX_DISK_SIZE + 1;
        assert_eq!(h.encode().unwrap_err().kind(), ErrorKind::LimitExceeded);
        let mut h = header();
        h.disks.clear();
        assert_eq!(h.encode().unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn record_header_checks() {
        let log = header();
        let rec = RecordHeader {
            crc: 0,
            kind: RecordType::Write,
            disk: 1,
            payload_len: 4,
            seq: 9,
            offset: 8,
            len: 4,
        };
        let h = rec.encode(b"abcd");
        let back = RecordHeader::decode(&h, 0, &log).unwrap();
        assert!(back.crc_matches(&h, |c| c.update(b"abcd")));
        assert!(!back.crc_matches(&h, |c| c.update(b"abce")));
        // Past the end of the 1 MiB disk.
        let past = RecordHeader {
            offset: (1 << 20) - 2,
            ..rec
        }
        .encode(b"abcd");
        assert!(RecordHeader::decode(&past, 0, &log).is_err());
        let unknown_disk = RecordHeader { disk: 2, ..rec }.encode(b"abcd");
        assert!(RecordHeader::decode(&unknown_disk, 0, &log).is_err());
        let mismatch = RecordHeader { len: 5, ..rec }.encode(b"abcd");
        assert!(RecordHeader::decode(&mismatch, 0, &log).is_err());
        let mut bad_type = h;
        bad_type[4] = 9;
        assert!(RecordHeader::decode(&bad_type, 0, &log).is_err());
    }

    #[test]
    fn marker_and_seal_round_trip() {
        let m = Marker {
            kind: MarkerKind::App,
            time_ns: 123,
            label: "vss".into(),
        };
        assert_eq!(Marker::decode(&m.encode().unwrap(), 0).unwrap(), m);
        let long = Marker {
            label: "x".repeat(MAX_LABEL_LEN + 1),
            ..m
        };
        assert_eq!(long.encode().unwrap_err().kind(), ErrorKind::LimitExceeded);
        let s = Seal {
            records: 1,
            payload_bytes: 2,
            body_hash: [3; 32],
        };
        assert_eq!(Seal::decode(&s.encode(), 0).unwrap(), s);
    }
}

#[cfg(test)]
mod layout {
    use super::*;

    /// The numbers docs/FORMAT.md §8 states.
    #[test]
    fn documented_sizes() {
        assert_eq!(MAX_HEADER_LEN, 68_193);
        assert_eq!(MAX_MARKER_PAYLOAD, 1042);
        assert_eq!(SEAL_PAYLOAD_LEN, 48);
        assert_eq!(MAX_WRITE_PAYLOAD, 16 << 20);
    }
}
