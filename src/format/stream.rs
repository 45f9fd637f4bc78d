//! Reading untrusted fields from a stream in bounded memory (`docs/FORMAT.md` §1).

use std::io::Read;

use super::codec::read_full;
use crate::error::{Error, Result};

/// A stream of a file's bytes with how many may still be read (those before its trailer, or
/// before the end of a section), so that no length read from it allocates more than the file
/// holds; every field read names itself and its offset in errors.
pub(crate) struct In<R: Read> {
    pub inner: R,
    pub at: u64,
    pub left: u64,
    pub what: &'static str,
}

impl<R: Read> In<R> {
    pub fn err(&self, field: &str, detail: impl Into<String>) -> Error {
        Error::corrupt(
            format!("{} field `{field}`", self.what),
            Some(self.at),
            detail,
        )
    }

    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(field, &mut b)?;
        Ok(b)
    }

    fn fill(&mut self, field: &str, buf: &mut [u8]) -> Result<()> {
        let n = buf.len() as u64;
        if n > self.left {
            return Err(self.err(field, "truncated: the file ends within it"));
        }
        read_full(&mut self.inner, buf, self.what, self.at)?;
        self.at += n;
        self.left -= n;
        Ok(())
    }

    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// `n` bytes, `n` checked against `cap` and against the bytes left first.
    pub fn vec(&mut self, field: &str, n: u64, cap: u64) -> Result<Vec<u8>> {
        if n > cap || n > self.left {
            return Err(self.err(
                field,
                format!("{n} bytes; at most {cap}, and {} are left", self.left),
            ));
        }
        let mut b = vec![0u8; n as usize];
        self.fill(field, &mut b)?;
        Ok(b)
    }

    pub fn reserved(&mut self, field: &str, n: usize) -> Result<()> {
        let mut b = [0u8; 8];
        let b = &mut b[..n.min(8)];
        self.fill(field, b)?;
        if b.iter().any(|&x| x != 0) {
            return Err(self.err(field, "reserved bytes are not zero"));
        }
        Ok(())
    }
}

impl<'a> In<&'a [u8]> {
    /// Reads the slice `bytes`, found at offset `at` of a `what`.
    pub fn slice(bytes: &'a [u8], at: u64, what: &'static str) -> Self {
        In {
            inner: bytes,
            at,
            left: bytes.len() as u64,
            what,
        }
    }
}
