//! The point signature (`.rcpsig`, `docs/FORMAT.md` §16): the chunk ids of every disk of one
//! recovery point, taken at the recovery site with the group's key, bound to the point's id,
//! sealed. The primary compares its disks against it and ships only the chunks that differ as
//! the next point of the chain (a resync into the chain).
//!
//! A chunk's id is the id its bytes would have as a blob (`Key::blob_id`, a keyed BLAKE3: it
//! says nothing about the data to whoever lacks the key), or 32 zero bytes for a chunk of
//! zeros. Blobs are cut on the same chunk grid, so most chunks of a point are one whole blob
//! whose id the vault knows without decrypting anything.

use std::io::{Read, Write};
use std::path::Path;

use super::seal::{BodyWriter, SALT_LEN};
use super::sealing::{MODE_SEALED, Sealing};
use super::{check_chunk_size, chunk_count};
use crate::crypto::{Key, KeyId};
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::limits::{MAX_DISK_SIZE, MAX_DISKS_PER_GROUP, MAX_NAME_LEN};
use crate::format::{HashingReader, Reader, Writer};
use crate::id::PointId;

/// Major version of the format.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version of the format.
pub const VERSION_MINOR: u16 = 0;

/// Bytes of the fixed part of the header (preamble to reserved).
const FIXED_LEN: usize = 116;
/// The longest header: the fixed part, the group and every disk with the longest names.
const MAX_HEADER_LEN: usize =
    FIXED_LEN + 2 + MAX_NAME_LEN + MAX_DISKS_PER_GROUP * (2 + MAX_NAME_LEN + 8);

/// The id a chunk of zeros has in a point signature.
pub const ZERO_CHUNK: [u8; 32] = [0; 32];

/// One disk of a point signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIds {
    /// The disk's name.
    pub name: String,
    /// Its size in bytes at the point.
    pub size: u64,
    /// The id of each chunk ([`ZERO_CHUNK`] for zeros).
    pub ids: Vec<[u8; 32]>,
}

/// The chunk ids of every disk of a recovery point; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSignature {
    /// The group.
    pub group: String,
    /// The point the ids were taken of: the resync point's parent.
    pub point: PointId,
    /// Its sequence number: the resync point's is the next.
    pub seq: u64,
    /// The group's chunk grid.
    pub chunk_size: u32,
    /// The id of the group's key.
    pub key_id: KeyId,
    /// Every disk, in the point's order.
    pub disks: Vec<DiskIds>,
}

/// The id of a chunk's bytes in a point signature.
pub fn chunk_id(key: &Key, bytes: &[u8]) -> [u8; 32] {
    if bytes.iter().all(|&b| b == 0) {
        ZERO_CHUNK
    } else {
        key.blob_id(bytes).0
    }
}

impl PointSignature {
    /// Writes the signature sealed under `key` (the group's: its id must be the signature's).
    pub fn to_writer(&self, w: impl Write, key: &Key) -> Result<()> {
        if key.id() != self.key_id {
            return Err(Error::invalid_argument(
                "key",
                format!(
                    "the signature holds ids under key {}, not key {}",
                    self.key_id,
                    key.id()
                ),
            ));
        }
        // What the reader checks, so that what is written reads back.
        check_chunk_size(self.chunk_size)?;
        if self.disks.is_empty() || self.disks.len() > MAX_DISKS_PER_GROUP {
            return Err(Error::invalid_argument(
                "disks",
                format!(
                    "{} disks is outside 1 to {MAX_DISKS_PER_GROUP}",
                    self.disks.len()
                ),
            ));
        }
        for d in &self.disks {
            if d.size > MAX_DISK_SIZE || d.ids.len() as u64 != chunk_count(d.size, self.chunk_size)
            {
                return Err(Error::invalid_argument(
                    "disks",
                    format!(
                        "disk `{}` of {} bytes holds {} chunk ids, not one per chunk of {} bytes \
                         (at most 64 TiB)",
                        d.name,
                        d.size,
                        d.ids.len(),
                        self.chunk_size
                    ),
                ));
            }
        }
        let io = |e| Error::io("writing the point signature", None, e);
        let sealing = Sealing::new(Some(key))?;
        let mut head = Writer::with_capacity(MAX_HEADER_LEN);
        Preamble::new(FileKind::PointSignature, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        let mut rest = Writer::with_capacity(MAX_HEADER_LEN);
        rest.string_u16("group", &self.group, MAX_NAME_LEN)?;
        for d in &self.disks {
            rest.string_u16("disk name", &d.name, MAX_NAME_LEN)?;
            rest.u64(d.size);
        }
        let len = FIXED_LEN + rest.as_bytes().len();
        head.u32(len as u32)
            .u32(self.chunk_size)
            .u64(self.seq)
            .bytes(&self.point.0)
            .bytes(&sealing.key_id)
            .bytes(&sealing.salt)
            .u16(self.disks.len() as u16)
            .zeros(2)
            .bytes(rest.as_bytes());
        let mut w = BodyWriter::start(w, head.as_bytes(), sealing.seal(Some(key))).map_err(io)?;
        for d in &self.disks {
            for id in &d.ids {
                w.write_all(id).map_err(io)?;
            }
        }
        let (mut inner, _) = w.finish().map_err(io)?;
        inner.flush().map_err(io)
    }

    /// Writes the signature to a new file at `path` (0600; an existing file is AlreadyExists
    /// unless `replace`).
    pub fn save(&self, path: impl AsRef<Path>, key: &Key, replace: bool) -> Result<()> {
        let mut out = crate::fsutil::OutputFile::create(path.as_ref(), replace)?;
        self.to_writer(std::io::BufWriter::new(&mut out), key)?;
        out.commit()
    }

    /// Reads a point signature sealed under `key`, streaming (memory grows with the ids
    /// actually read, never with a claimed size). Nothing is returned before the trailer
    /// verified. Damage is Corrupt; another key's, or a forged one, is Authentication.
    pub fn from_reader(r: impl Read, key: &Key) -> Result<PointSignature> {
        let mut r = HashingReader::new(r);
        let mut header = vec![0u8; FIXED_LEN];
        read_full(
            &mut r,
            &mut header[..PREAMBLE_LEN],
            "point signature preamble",
            0,
        )?;
        Preamble::decode_slice(
            &header[..PREAMBLE_LEN],
            FileKind::PointSignature,
            VERSION_MAJOR,
        )?;
        read_full(
            &mut r,
            &mut header[PREAMBLE_LEN..],
            "point signature header",
            16,
        )?;
        let mut h = Reader::new(&header[PREAMBLE_LEN..], 16, "point signature header");
        let len = h.u32("header length")? as usize;
        if !(FIXED_LEN + 2..=MAX_HEADER_LEN).contains(&len) {
            return Err(h.error(
                "header length",
                format!(
                    "{len} bytes is outside {} to {MAX_HEADER_LEN} bytes",
                    FIXED_LEN + 2
                ),
            ));
        }
        let at = h.offset();
        let chunk_size = h.u32("chunk size")?;
        check_chunk_size(chunk_size).map_err(|_| {
            Error::corrupt(
                "point signature header field `chunk size`",
                Some(at),
                format!("{chunk_size} bytes is not a chunk size"),
            )
        })?;
        let seq = h.u64("sequence")?;
        let point = PointId(h.array("point id")?);
        let key_id: [u8; 16] = h.array("key id")?;
        let salt: [u8; SALT_LEN] = h.array("salt")?;
        let count = h.u16("disk count")? as usize;
        h.reserved("reserved", 2)?;
        if count == 0 || count > MAX_DISKS_PER_GROUP {
            return Err(h.error(
                "disk count",
                format!("{count} disks is outside 1 to {MAX_DISKS_PER_GROUP}"),
            ));
        }
        header.resize(len, 0);
        read_full(
            &mut r,
            &mut header[FIXED_LEN..],
            "point signature header",
            FIXED_LEN as u64,
        )?;
        let mut v = Reader::new(
            &header[FIXED_LEN..],
            FIXED_LEN as u64,
            "point signature header",
        );
        let group = v.string_u16("group", MAX_NAME_LEN)?.to_string();
        let mut disks = Vec::with_capacity(count);
        for _ in 0..count {
            let name = v.string_u16("disk name", MAX_NAME_LEN)?.to_string();
            let at = v.offset();
            let size = v.u64("disk size")?;
            if size > MAX_DISK_SIZE {
                return Err(v.error(
                    "disk size",
                    format!("{size} bytes at byte {at} exceeds 64 TiB"),
                ));
            }
            disks.push(DiskIds {
                name,
                size,
                ids: Vec::new(),
            });
        }
        if v.remaining() != 0 {
            return Err(v.error(
                "header length",
                format!("{} bytes follow the last disk", v.remaining()),
            ));
        }
        let sealing =
            Sealing::decode(MODE_SEALED, key_id, salt).map_err(|d| v.error("key id", d))?;
        let mut body = sealing.open_body(r, "point signature", &header, Some(key))?;
        body.prime()?;
        let mut buf = [0u8; 32];
        for d in &mut disks {
            for _ in 0..chunk_count(d.size, chunk_size) {
                body.fill(&mut buf, "chunk id")?;
                d.ids.push(buf);
            }
        }
        body.finish()?;
        Ok(PointSignature {
            group,
            point,
            seq,
            chunk_size,
            key_id: KeyId(key_id),
            disks,
        })
    }

    /// Reads the point signature at `path`; see [`from_reader`](Self::from_reader).
    pub fn load(path: impl AsRef<Path>, key: &Key) -> Result<PointSignature> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("point signature {}", path.display()),
            },
            _ => Error::io("opening the point signature", Some(path), e),
        })?;
        PointSignature::from_reader(std::io::BufReader::new(f), key).map_err(|e| e.with_path(path))
    }
}
