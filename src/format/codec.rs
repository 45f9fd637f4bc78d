//! Little-endian codecs: a checked [`Reader`] over untrusted bytes and a [`Writer`] that builds
//! them. All integers on disk are little-endian and fixed-width (`docs/FORMAT.md` §1).

use std::io::{self, Read};

use super::checked;
use crate::error::{Error, Result};

/// A cursor over untrusted bytes whose every read is bounds-checked and names its field.
///
/// Errors are [`Corrupt`](crate::ErrorKind::Corrupt) with the structure name given at
/// construction, the field, and the absolute byte offset (`base` + position), so a message
/// reads "corrupt signature header field `chunk size` in byte 12: ...".
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which starts at byte `base` of its file; `what` names the structure.
    pub fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// The absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + checked::to_u64(self.pos)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error about `field` at the current offset.
    pub fn error(&self, field: &str, detail: impl Into<String>) -> Error {
        Error::corrupt(
            format!("{} field `{field}`", self.what),
            Some(self.offset()),
            detail,
        )
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, field: &str, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(
                field,
                format!("truncated: needs {n} bytes, {} left", self.remaining()),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(field, N)?);
        Ok(out)
    }

    /// A `u8`.
    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &str) -> Result<u16> {
        self.array(field).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &str) -> Result<u32> {
        self.array(field).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &str) -> Result<u64> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A `u32` length checked against `cap` (inclusive) before the caller allocates.
    pub fn len_u32(&mut self, field: &str, cap: usize) -> Result<usize> {
        let at = self.offset();
        let v = self.u32(field)?;
        self.cap(field, u64::from(v), cap, at)
    }

    /// A `u64` length checked against `cap` (inclusive) before the caller allocates.
    pub fn len_u64(&mut self, field: &str, cap: usize) -> Result<usize> {
        let at = self.offset();
        let v = self.u64(field)?;
        self.cap(field, v, cap, at)
    }

    fn cap(&self, field: &str, v: u64, cap: usize, at: u64) -> Result<usize> {
        checked::len(v, cap, field).map_err(|_| {
            Error::corrupt(
                format!("{} field `{field}`", self.what),
                Some(at),
                format!("a length of {v} bytes exceeds the cap of {cap} bytes"),
            )
        })
    }

    /// A UTF-8 string stored as a `u16` byte length and the bytes, at most `cap` bytes.
    pub fn string_u16(&mut self, field: &str, cap: usize) -> Result<&'a str> {
        let at = self.offset();
        let n = self.u16(field)?;
        let n = self.cap(field, u64::from(n), cap, at)?;
        let at = self.offset();
        let raw = self.bytes(field, n)?;
        std::str::from_utf8(raw).map_err(|e| {
            Error::corrupt(
                format!("{} field `{field}`", self.what),
                Some(at),
                format!("not valid UTF-8: {e}"),
            )
        })
    }

    /// `n` reserved bytes, which this version writes as zero and ignores on read (a later minor
    /// version may use them).
    pub fn reserved(&mut self, field: &str, n: usize) -> Result<()> {
        self.bytes(field, n).map(|_| ())
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error("end", format!("{n} unexpected bytes after the last field"))),
        }
    }
}

/// Builds little-endian encoded bytes.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends `n` zero bytes (reserved space).
    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    /// Appends a string as a `u16` length and UTF-8 bytes; refuses (LimitExceeded) one longer
    /// than `cap` bytes, naming `field`.
    pub fn string_u16(&mut self, field: &str, s: &str, cap: usize) -> Result<&mut Self> {
        let cap = cap.min(usize::from(u16::MAX));
        let n = checked::arg_len(checked::to_u64(s.len()), cap, field)?;
        // n <= u16::MAX by the cap above.
        Ok(self.u16(n as u16).bytes(s.as_bytes()))
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Fills `buf` from a stream; a short stream is Corrupt ("truncated") naming `what` and the
/// absolute `offset` where the read began, other failures are Io.
pub fn read_full(r: &mut impl Read, buf: &mut [u8], what: &str, offset: u64) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::corrupt(
            what,
            Some(offset),
            format!(
                "truncated: the stream ends within these {} bytes",
                buf.len()
            ),
        ),
        _ => Error::io(format!("reading {what}"), None, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.u8(7)
            .u16(0x1234)
            .u32(0xdead_beef)
            .u64(u64::MAX - 1)
            .zeros(3);
        w.string_u16("name", "disk-0", 255).unwrap();
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes, 100, "test header");
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 0x1234);
        assert_eq!(r.u32("c").unwrap(), 0xdead_beef);
        assert_eq!(r.u64("d").unwrap(), u64::MAX - 1);
        r.reserved("pad", 3).unwrap();
        assert_eq!(r.string_u16("name", 255).unwrap(), "disk-0");
        r.finish().unwrap();
        assert_eq!(r.offset(), 100 + bytes.len() as u64);
    }

    #[test]
    fn little_endian_on_disk() {
        let mut w = Writer::new();
        w.u32(1);
        assert_eq!(w.as_bytes(), &[1, 0, 0, 0]);
    }

    #[test]
    fn truncation_names_field_and_offset() {
        let bytes = [1u8, 2, 3];
        let mut r = Reader::new(&bytes, 40, "pack index");
        r.u8("kind").unwrap();
        let e = r.u32("count").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        let msg = e.to_string();
        assert!(msg.contains("pack index field `count`"), "{msg}");
        assert!(msg.contains("byte 41"), "{msg}");
        assert!(msg.contains("needs 4 bytes, 2 left"), "{msg}");
    }

    #[test]
    fn lengths_are_capped_before_allocation() {
        let bytes = u32::MAX.to_le_bytes();
        let e = Reader::new(&bytes, 0, "t")
            .len_u32("blob count", 1 << 20)
            .unwrap_err();
        assert!(e.to_string().contains("exceeds the cap"), "{e}");
        let bytes = 9u64.to_le_bytes();
        assert_eq!(Reader::new(&bytes, 0, "t").len_u64("n", 9).unwrap(), 9);
    }

    #[test]
    fn strings_are_checked() {
        let mut bad = vec![2u8, 0, 0xff, 0xfe];
        let e = Reader::new(&bad, 0, "t")
            .string_u16("label", 10)
            .unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        bad[0] = 11;
        let e = Reader::new(&bad, 0, "t")
            .string_u16("label", 10)
            .unwrap_err();
        assert!(e.to_string().contains("cap of 10"), "{e}");
        let e = Writer::new().string_u16("label", "abcdef", 5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let bytes = [0u8; 5];
        let mut r = Reader::new(&bytes, 0, "t");
        r.u32("x").unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn read_full_reports_truncation_as_corrupt() {
        let mut src: &[u8] = &[1, 2];
        let mut buf = [0u8; 4];
        let e = read_full(&mut src, &mut buf, "record", 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("byte 8"), "{e}");
    }
}
