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

/// What a point signature says before its ids: the point, the grid, the key, the disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSigHeader {
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
    /// Every disk, in the point's order: (name, size in bytes).
    pub disks: Vec<(String, u64)>,
}

impl PointSigHeader {
    /// How many ids disk `i` has: one per chunk.
    pub fn chunks(&self, i: usize) -> u64 {
        chunk_count(self.disks[i].1, self.chunk_size)
    }

    /// What the reader checks, so that what is written reads back.
    fn validate(&self, key: &Key) -> Result<()> {
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
        if let Some((name, size)) = self.disks.iter().find(|(_, s)| *s > MAX_DISK_SIZE) {
            return Err(Error::invalid_argument(
                "disks",
                format!("disk `{name}` of {size} bytes is larger than 64 TiB"),
            ));
        }
        Ok(())
    }
}

/// Writes a point signature as its ids come, sealed in 1 MiB frames: memory stays bounded
/// whatever the disks' size. Every disk must get exactly one id per chunk, in order.
pub struct PointSigWriter<W: Write> {
    w: BodyWriter<W>,
    /// Ids still expected, per disk from the current one.
    left: Vec<u64>,
    disk: usize,
}

impl<W: Write> PointSigWriter<W> {
    /// Writes the header to `w` and starts the sealed body under `key` (the header's key).
    pub fn start(w: W, header: &PointSigHeader, key: &Key) -> Result<Self> {
        header.validate(key)?;
        let sealing = Sealing::new(Some(key))?;
        let mut head = Writer::with_capacity(MAX_HEADER_LEN);
        Preamble::new(FileKind::PointSignature, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        let mut rest = Writer::with_capacity(MAX_HEADER_LEN);
        rest.string_u16("group", &header.group, MAX_NAME_LEN)?;
        for (name, size) in &header.disks {
            rest.string_u16("disk name", name, MAX_NAME_LEN)?;
            rest.u64(*size);
        }
        let len = FIXED_LEN + rest.as_bytes().len();
        head.u32(len as u32)
            .u32(header.chunk_size)
            .u64(header.seq)
            .bytes(&header.point.0)
            .bytes(&sealing.key_id)
            .bytes(&sealing.salt)
            .u16(header.disks.len() as u16)
            .zeros(2)
            .bytes(rest.as_bytes());
        let w =
            BodyWriter::start(w, head.as_bytes(), sealing.seal(Some(key))).map_err(write_err)?;
        let left = (0..header.disks.len()).map(|i| header.chunks(i)).collect();
        Ok(PointSigWriter { w, left, disk: 0 })
    }

    /// Appends ids of the current disk, moving to the next disk when one is complete; more
    /// ids than the disks have chunks is InvalidArgument.
    pub fn ids(&mut self, mut ids: &[[u8; 32]]) -> Result<()> {
        while !ids.is_empty() {
            while self.left.get(self.disk) == Some(&0) {
                self.disk += 1;
            }
            let Some(left) = self.left.get_mut(self.disk) else {
                return Err(Error::invalid_argument(
                    "disks",
                    "more chunk ids than the disks have chunks",
                ));
            };
            let n = (*left).min(ids.len() as u64) as usize;
            for id in &ids[..n] {
                self.w.write_all(id).map_err(write_err)?;
            }
            *left -= n as u64;
            ids = &ids[n..];
        }
        Ok(())
    }

    /// Seals the last frame and writes the trailer; fewer ids than chunks is InvalidArgument.
    pub fn finish(self) -> Result<W> {
        if let Some(i) = self.left.iter().position(|&l| l != 0) {
            return Err(Error::invalid_argument(
                "disks",
                format!("disk {i} lacks {} chunk ids", self.left[i]),
            ));
        }
        let (mut inner, _) = self.w.finish().map_err(write_err)?;
        inner.flush().map_err(write_err)?;
        Ok(inner)
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("writing the point signature", None, e)
}

/// Reads a point signature's ids as they are needed: memory stays bounded whatever the
/// disks' size. Every frame is authenticated before its ids are handed out; the trailer (and
/// with it the file's end) only at [`finish`](Self::finish): act on nothing irrevocably
/// before it returned `Ok`.
pub struct PointSigReader<R: Read> {
    body: super::seal::BodyReader<R>,
    header: PointSigHeader,
    left: u64,
}

impl<R: Read> PointSigReader<R> {
    /// Reads and checks the header, and authenticates the first frame with `key`. Damage is
    /// Corrupt; another key's, or a forged one, is Authentication.
    pub fn open(r: R, key: &Key) -> Result<Self> {
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
            disks.push((name, size));
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
        let left = disks
            .iter()
            .map(|(_, size)| chunk_count(*size, chunk_size))
            .sum();
        Ok(PointSigReader {
            body,
            header: PointSigHeader {
                group,
                point,
                seq,
                chunk_size,
                key_id: KeyId(key_id),
                disks,
            },
            left,
        })
    }

    /// The header.
    pub fn header(&self) -> &PointSigHeader {
        &self.header
    }

    /// Appends the next `n` ids (in file order: every chunk of the first disk, then the next)
    /// to `out`; more than the file holds is InvalidArgument.
    pub fn read_ids(&mut self, n: u64, out: &mut Vec<[u8; 32]>) -> Result<()> {
        if n > self.left {
            return Err(Error::invalid_argument(
                "n",
                format!(
                    "{n} chunk ids asked; the signature holds {} more",
                    self.left
                ),
            ));
        }
        let mut buf = [0u8; 32];
        for _ in 0..n {
            self.body.fill(&mut buf, "chunk id")?;
            out.push(buf);
        }
        self.left -= n;
        Ok(())
    }

    /// Skips the next `n` ids.
    pub fn skip_ids(&mut self, mut n: u64) -> Result<()> {
        let mut sink = Vec::new();
        while n > 0 {
            let k = n.min(1 << 14);
            sink.clear();
            self.read_ids(k, &mut sink)?;
            n -= k;
        }
        Ok(())
    }

    /// Reads what is left and checks the end of the file: its last frame and its trailer.
    pub fn finish(mut self) -> Result<()> {
        let left = self.left;
        self.skip_ids(left)?;
        self.body.finish()
    }
}

/// Builds a [`PointSignature`] in memory from its ids handed over in file order, in pieces of
/// any size.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    disks: Vec<DiskIds>,
}

impl Collector {
    /// Takes the next ids.
    pub fn push(&mut self, h: &PointSigHeader, mut ids: &[[u8; 32]]) {
        while !ids.is_empty() && self.open_next(h) {
            let i = self.disks.len() - 1;
            let d = &mut self.disks[i];
            let n = ((h.chunks(i) - d.ids.len() as u64) as usize).min(ids.len());
            d.ids.extend_from_slice(&ids[..n]);
            ids = &ids[n..];
        }
    }

    /// Starts the next disk when the current one is complete; false past the last.
    fn open_next(&mut self, h: &PointSigHeader) -> bool {
        let i = self.disks.len();
        if i > 0 && (self.disks[i - 1].ids.len() as u64) < h.chunks(i - 1) {
            return true;
        }
        let Some((name, size)) = h.disks.get(i) else {
            return false;
        };
        self.disks.push(DiskIds {
            name: name.clone(),
            size: *size,
            ids: Vec::new(),
        });
        true
    }

    /// The signature (disks that got no id, having no chunk, included).
    pub fn finish(mut self, h: PointSigHeader) -> PointSignature {
        while self.disks.len() < h.disks.len() {
            let (name, size) = &h.disks[self.disks.len()];
            self.disks.push(DiskIds {
                name: name.clone(),
                size: *size,
                ids: Vec::new(),
            });
        }
        PointSignature {
            group: h.group,
            point: h.point,
            seq: h.seq,
            chunk_size: h.chunk_size,
            key_id: h.key_id,
            disks: self.disks,
        }
    }
}

impl PointSignature {
    /// The header of this signature.
    pub fn header(&self) -> PointSigHeader {
        PointSigHeader {
            group: self.group.clone(),
            point: self.point,
            seq: self.seq,
            chunk_size: self.chunk_size,
            key_id: self.key_id,
            disks: self
                .disks
                .iter()
                .map(|d| (d.name.clone(), d.size))
                .collect(),
        }
    }

    /// Writes the signature sealed under `key` (the group's: its id must be the signature's).
    pub fn to_writer(&self, w: impl Write, key: &Key) -> Result<()> {
        let header = self.header();
        header.validate(key)?;
        for (i, d) in self.disks.iter().enumerate() {
            if d.ids.len() as u64 != header.chunks(i) {
                return Err(Error::invalid_argument(
                    "disks",
                    format!(
                        "disk `{}` of {} bytes holds {} chunk ids, not one per chunk of {} bytes",
                        d.name,
                        d.size,
                        d.ids.len(),
                        self.chunk_size
                    ),
                ));
            }
        }
        let mut w = PointSigWriter::start(w, &header, key)?;
        for d in &self.disks {
            w.ids(&d.ids)?;
        }
        w.finish().map(|_| ())
    }

    /// Writes the signature to a new file at `path` (0600; an existing file is AlreadyExists
    /// unless `replace`).
    pub fn save(&self, path: impl AsRef<Path>, key: &Key, replace: bool) -> Result<()> {
        let mut out = crate::fsutil::OutputFile::create(path.as_ref(), replace)?;
        self.to_writer(std::io::BufWriter::new(&mut out), key)?;
        out.commit()
    }

    /// Reads a point signature sealed under `key` whole (memory grows with the ids actually
    /// read, never with a claimed size; 32 bytes per chunk: [`PointSigReader`] streams them).
    /// Nothing is returned before the trailer verified. Damage is Corrupt; another key's, or
    /// a forged one, is Authentication.
    pub fn from_reader(r: impl Read, key: &Key) -> Result<PointSignature> {
        let mut r = PointSigReader::open(r, key)?;
        let h = r.header().clone();
        let mut disks = Vec::with_capacity(h.disks.len());
        for (i, (name, size)) in h.disks.iter().enumerate() {
            let mut ids = Vec::new();
            // In steps, so that a huge claimed size costs only what the file holds.
            let mut left = h.chunks(i);
            while left > 0 {
                let n = left.min(1 << 14);
                r.read_ids(n, &mut ids)?;
                left -= n;
            }
            disks.push(DiskIds {
                name: name.clone(),
                size: *size,
                ids,
            });
        }
        r.finish()?;
        Ok(PointSignature {
            group: h.group,
            point: h.point,
            seq: h.seq,
            chunk_size: h.chunk_size,
            key_id: h.key_id,
            disks,
        })
    }

    /// Reads the point signature at `path`; see [`from_reader`](Self::from_reader).
    pub fn load(path: impl AsRef<Path>, key: &Key) -> Result<PointSignature> {
        let path = path.as_ref();
        let r = open_file(path)?;
        PointSignature::from_reader(r, key).map_err(|e| e.with_path(path))
    }
}

/// Opens the point signature at `path` for reading (NotFound named as such).
pub fn open_file(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: format!("point signature {}", path.display()),
        },
        _ => Error::io("opening the point signature", Some(path), e),
    })?;
    Ok(std::io::BufReader::with_capacity(1 << 20, f))
}
