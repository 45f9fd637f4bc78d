//! The BLAKE3 trailer: the last 32 bytes of a bundle, signature or delta are the BLAKE3 hash of
//! every byte before them (`docs/FORMAT.md` §4).
//!
//! Its job is transport damage without the key: anyone can check a file end to end before
//! acting on it. It is not authentication (anyone can recompute it); that is the keyed tags'
//! job. Digests are compared in constant time (`blake3::Hash`'s equality).

use std::io::{self, Read, Write};

use super::checked;
use crate::error::{Error, Result};

/// Length of the trailer.
pub const TRAILER_LEN: usize = 32;

/// Buffer size for streaming verification.
const CHUNK: usize = 64 * 1024;

/// A writer that hashes everything written through it; [`finish`](Self::finish) appends the
/// trailer.
#[derive(Debug)]
pub struct TrailerWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> TrailerWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        TrailerWriter {
            inner,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }

    /// Bytes written so far (the trailer excluded).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The writer being wrapped.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Writes the trailer and returns the inner writer and the hash it wrote.
    ///
    /// Nothing is flushed or synced: that is the caller's durability decision.
    pub fn finish(mut self) -> io::Result<(W, blake3::Hash)> {
        let hash = self.hasher.finalize();
        self.inner.write_all(hash.as_bytes())?;
        Ok((self.inner, hash))
    }
}

impl<W: Write> Write for TrailerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += checked::to_u64(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn mismatch(what: &str, body_len: u64) -> Error {
    Error::corrupt(
        format!("{what} trailer"),
        Some(body_len),
        "BLAKE3 trailer does not match the contents (damaged in storage or transit)",
    )
}

fn too_short(what: &str, len: u64) -> Error {
    Error::corrupt(
        format!("{what} trailer"),
        Some(0),
        format!("truncated: {len} bytes cannot hold a {TRAILER_LEN}-byte trailer"),
    )
}

/// Verifies the trailer of a whole file held in memory; returns the body (without trailer).
pub fn verify_slice<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    let Some(body_len) = bytes.len().checked_sub(TRAILER_LEN) else {
        return Err(too_short(what, checked::to_u64(bytes.len())));
    };
    let (body, trailer) = bytes.split_at(body_len);
    let mut stored = [0u8; TRAILER_LEN];
    stored.copy_from_slice(trailer);
    if blake3::hash(body) == blake3::Hash::from(stored) {
        Ok(body)
    } else {
        Err(mismatch(what, checked::to_u64(body_len)))
    }
}

/// What to report when a file's preamble names another version: transport or storage damage
/// (`Corrupt`) when the file's trailer does not hold, so that a flipped version byte never
/// tells an operator to upgrade; `err` (the version's refusal) when it does.
pub fn version_or_damage(path: &std::path::Path, what: &str, err: Error) -> Error {
    if err.kind() != crate::ErrorKind::UnsupportedVersion {
        return err;
    }
    let checked = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading the {what}"), Some(path), e))
        .and_then(|f| verify_stream(&mut std::io::BufReader::new(f), what));
    match checked {
        Err(damage) if damage.kind() == crate::ErrorKind::Corrupt => damage.with_path(path),
        _ => err,
    }
}

/// Verifies the trailer of a whole stream in bounded memory; returns the body length and hash.
///
/// Use this before acting on a file that will then be read a second time (a delta is verified
/// before a target is touched).
pub fn verify_stream(r: &mut impl Read, what: &str) -> Result<(u64, blake3::Hash)> {
    verify_rest(r, blake3::Hasher::new(), 0, what)
}

/// Verifies the trailer of the rest of a stream whose first `body_len` bytes `hasher` has seen.
fn verify_rest(
    r: &mut impl Read,
    mut hasher: blake3::Hasher,
    mut body_len: u64,
    what: &str,
) -> Result<(u64, blake3::Hash)> {
    let mut buf = vec![0u8; CHUNK + TRAILER_LEN];
    let mut filled = 0usize;
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("reading {what}"), None, e)),
        };
        filled += n;
        if filled == buf.len() {
            let body = filled - TRAILER_LEN;
            hasher.update(&buf[..body]);
            body_len += checked::to_u64(body);
            buf.copy_within(body..filled, 0);
            filled = TRAILER_LEN;
        }
    }
    if filled < TRAILER_LEN {
        return Err(too_short(what, body_len + checked::to_u64(filled)));
    }
    let body = filled - TRAILER_LEN;
    hasher.update(&buf[..body]);
    body_len += checked::to_u64(body);
    let mut stored = [0u8; TRAILER_LEN];
    stored.copy_from_slice(&buf[body..filled]);
    let hash = hasher.finalize();
    if hash == blake3::Hash::from(stored) {
        Ok((body_len, hash))
    } else {
        Err(mismatch(what, body_len))
    }
}

/// A reader that hashes everything read through it, for single-pass parsing of a file that
/// ends in a trailer. [`finish`](Self::finish) reads the trailer and checks it.
///
/// Whatever was parsed before `finish` succeeds is unverified: a caller must not act on it
/// irreversibly until then.
#[derive(Debug)]
pub struct HashingReader<R: Read> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, positioned at the start of the file.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            read: 0,
        }
    }

    /// Bytes read (and hashed) so far.
    pub fn position(&self) -> u64 {
        self.read
    }

    /// The BLAKE3 of everything read so far (for a section checked against a digest).
    pub fn digest(&self) -> blake3::Hash {
        self.hasher.finalize()
    }

    /// Reads the trailer, which must follow immediately and end the stream, and checks it.
    pub fn finish(mut self, what: &str) -> Result<(R, blake3::Hash)> {
        let mut stored = [0u8; TRAILER_LEN];
        super::codec::read_full(
            &mut self.inner,
            &mut stored,
            &format!("{what} trailer"),
            self.read,
        )?;
        let hash = self.hasher.finalize();
        if hash != blake3::Hash::from(stored) {
            return Err(mismatch(what, self.read));
        }
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => return Ok((self.inner, hash)),
                Ok(_) => {
                    return Err(Error::corrupt(
                        format!("{what} trailer"),
                        Some(self.read + checked::to_u64(TRAILER_LEN)),
                        "unexpected bytes after the trailer",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("reading {what}"), None, e)),
            }
        }
    }
}

impl<R: Read> HashingReader<R> {
    /// Reads the rest of the stream and checks the trailer over the whole of it, for a parser
    /// that stopped early at an error: damage in transport (Corrupt) is then reported before
    /// what the parser found. Memory stays bounded.
    pub fn drain(mut self, what: &str) -> Result<()> {
        verify_rest(&mut self.inner, self.hasher, self.read, what).map(|_| ())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += checked::to_u64(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut w = TrailerWriter::new(Vec::new());
        w.write_all(body).unwrap();
        assert_eq!(w.written(), body.len() as u64);
        let (out, hash) = w.finish().unwrap();
        assert_eq!(hash, blake3::hash(body));
        out
    }

    /// Body sizes around the streaming buffer's edges.
    const SIZES: [usize; 9] = [
        0,
        1,
        31,
        32,
        33,
        CHUNK - 1,
        CHUNK,
        CHUNK + 32,
        3 * CHUNK + 7,
    ];

    #[test]
    fn every_size_verifies_three_ways() {
        for n in SIZES {
            let body: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let file = sealed(&body);
            assert_eq!(verify_slice(&file, "t").unwrap(), &body[..]);
            let (len, _) = verify_stream(&mut &file[..], "t").unwrap();
            assert_eq!(len, n as u64);
            let mut hr = HashingReader::new(&file[..]);
            let mut back = vec![0u8; n];
            hr.read_exact(&mut back).unwrap();
            assert_eq!(back, body);
            hr.finish("t").unwrap();
        }
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let body: Vec<u8> = (0..100u8).collect();
        let file = sealed(&body);
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify_slice(&bad, "t").unwrap_err().kind(),
                ErrorKind::Corrupt
            );
            assert_eq!(
                verify_stream(&mut &bad[..], "t").unwrap_err().kind(),
                ErrorKind::Corrupt
            );
        }
    }

    #[test]
    fn truncation_and_extra_bytes_are_caught() {
        let file = sealed(b"hello");
        for cut in 0..file.len() {
            assert!(verify_slice(&file[..cut], "t").is_err());
            assert!(verify_stream(&mut &file[..cut], "t").is_err());
        }
        let mut longer = file.clone();
        longer.push(0);
        let mut hr = HashingReader::new(&longer[..]);
        let mut body = [0u8; 5];
        hr.read_exact(&mut body).unwrap();
        let e = hr.finish("t").unwrap_err();
        assert!(e.to_string().contains("after the trailer"), "{e}");
    }
}
