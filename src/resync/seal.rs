//! Sealed bodies of resync files: the frames of `docs/FORMAT.md` §9.1, shared by signatures and
//! deltas.
//!
//! A sealed body is cut into frames of at most [`FRAME_LEN`] bytes of plaintext, each encrypted
//! and authenticated with AES-256-GCM under a key of its own file (derived from the group key's
//! sealing subkey and the file's random salt), so a file is written and read in bounded memory
//! and a frame that is changed, dropped, moved or cut is refused.

use std::io::{Read, Write};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::codec::read_full;
use crate::format::{HashingReader, Reader, TrailerWriter, Writer};

/// Subkey context of the sealing of signatures and deltas (`docs/FORMAT.md` §11).
pub(crate) const CTX_SEALING: &str = "replicore 2026-12-01 resync sealing v1";

/// The most plaintext bytes of one frame.
pub(crate) const FRAME_LEN: usize = 1 << 20;
/// Bytes of a frame's header: plaintext length (u32), flags (u8), 3 reserved.
const FRAME_HEADER_LEN: usize = 4 + 1 + 3;
/// Bytes of an AES-GCM tag.
const TAG_LEN: usize = 16;
/// The flag of the last frame.
const FLAG_LAST: u8 = 1;

/// Bytes of the file salt in a resync file's header.
pub(crate) const SALT_LEN: usize = 32;

/// The AES-256-GCM cipher of one sealed file: keyed BLAKE3 of its salt under the sealing subkey.
fn file_cipher(key: &Key, salt: &[u8; SALT_LEN]) -> Aes256Gcm {
    let sealing = key.subkey(CTX_SEALING);
    let file_key = Zeroizing::new(*blake3::keyed_hash(&sealing, salt).as_bytes());
    Aes256Gcm::new(&(*file_key).into())
}

/// A fresh random file salt.
pub(crate) fn random_salt() -> Result<[u8; SALT_LEN]> {
    let mut s = [0u8; SALT_LEN];
    getrandom::fill(&mut s).map_err(|e| {
        Error::io(
            "drawing random bytes for a file salt",
            None,
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(s)
}

/// The nonce of frame `index`: the index (u64), then 4 zero bytes. Unique per file key.
fn nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_le_bytes());
    n
}

/// Associated data of a frame: the file's header, the frame index and the frame's header.
fn aad(header: &[u8], index: u64, frame_header: &[u8; FRAME_HEADER_LEN]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + 8 + FRAME_HEADER_LEN);
    a.extend_from_slice(header);
    a.extend_from_slice(&index.to_le_bytes());
    a.extend_from_slice(frame_header);
    a
}

fn frame_header(len: usize, last: bool) -> [u8; FRAME_HEADER_LEN] {
    let mut w = Writer::with_capacity(FRAME_HEADER_LEN);
    // len <= FRAME_LEN (1 MiB).
    w.u32(len as u32)
        .u8(if last { FLAG_LAST } else { 0 })
        .zeros(3);
    let mut h = [0u8; FRAME_HEADER_LEN];
    h.copy_from_slice(w.as_bytes());
    h
}

/// The body of a resync file being written: plain bytes, or sealed frames. Either way followed
/// by the BLAKE3 trailer.
pub(crate) struct BodyWriter<W: Write> {
    w: TrailerWriter<W>,
    /// None for a plain body.
    seal: Option<Box<Sealer>>,
}

/// The state of a sealed body being written.
struct Sealer {
    cipher: Aes256Gcm,
    header: Vec<u8>,
    buf: Vec<u8>,
    index: u64,
}

impl<W: Write> BodyWriter<W> {
    /// Writes `header` (the file's cleartext header) and starts the body: sealed under `key`
    /// with `salt` when given, else plain.
    pub fn start(
        out: W,
        header: &[u8],
        seal: Option<(&Key, &[u8; SALT_LEN])>,
    ) -> std::io::Result<Self> {
        let mut w = TrailerWriter::new(out);
        w.write_all(header)?;
        let seal = seal.map(|(key, salt)| {
            Box::new(Sealer {
                cipher: file_cipher(key, salt),
                header: header.to_vec(),
                buf: Vec::with_capacity(FRAME_LEN),
                index: 0,
            })
        });
        Ok(BodyWriter { w, seal })
    }

    /// Seals the last frame, writes the trailer; returns the inner writer and the file's length.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        if let Some(s) = &mut self.seal {
            s.seal_frame(&mut self.w, true)?;
        }
        let len = self.w.written() + 32;
        let (inner, _) = self.w.finish()?;
        Ok((inner, len))
    }
}

impl Sealer {
    fn seal_frame(&mut self, w: &mut impl Write, last: bool) -> std::io::Result<()> {
        let fh = frame_header(self.buf.len(), last);
        let a = aad(&self.header, self.index, &fh);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce(self.index)),
                &a,
                self.buf.as_mut_slice().into(),
            )
            .map_err(|_| std::io::Error::other("sealing a frame"))?;
        w.write_all(&fh)?;
        w.write_all(&self.buf)?;
        w.write_all(tag.as_slice())?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }
}

impl<W: Write> Write for BodyWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let Some(s) = &mut self.seal else {
            return self.w.write(data);
        };
        let n = data.len();
        while !data.is_empty() {
            // A full frame is sealed only once more data follows: the last frame is never empty
            // unless the whole body is.
            if s.buf.len() == FRAME_LEN {
                s.seal_frame(&mut self.w, false)?;
            }
            let take = (FRAME_LEN - s.buf.len()).min(data.len());
            s.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// The body of a resync file being read, plain or sealed, over a reader that checks the
/// trailer. Offsets in errors are file offsets for a plain body, plaintext offsets of the body
/// for a sealed one.
pub(crate) struct BodyReader<R: Read> {
    inner: Option<HashingReader<R>>,
    what: &'static str,
    sealed: Option<Box<Opened>>,
}

/// The state of a sealed body being read.
struct Opened {
    cipher: Aes256Gcm,
    header: Vec<u8>,
    index: u64,
    /// Plaintext of the current frame, and how much of it was consumed.
    buf: Vec<u8>,
    used: usize,
    last_seen: bool,
    /// Plaintext bytes consumed before the current frame.
    base: u64,
}

impl<R: Read> BodyReader<R> {
    /// A plain body following the header already read from `r`.
    pub fn plain(r: HashingReader<R>, what: &'static str) -> Self {
        BodyReader {
            inner: Some(r),
            what,
            sealed: None,
        }
    }

    /// A sealed body following `header` (already read from `r`), under `key` and `salt`.
    pub fn sealed(
        r: HashingReader<R>,
        what: &'static str,
        header: &[u8],
        key: &Key,
        salt: &[u8; SALT_LEN],
    ) -> Self {
        BodyReader {
            inner: Some(r),
            what,
            sealed: Some(Box::new(Opened {
                cipher: file_cipher(key, salt),
                header: header.to_vec(),
                index: 0,
                buf: Vec::new(),
                used: 0,
                last_seen: false,
                base: 0,
            })),
        }
    }

    fn inner(&mut self) -> Result<&mut HashingReader<R>> {
        self.inner.as_mut().ok_or_else(|| {
            Error::corrupt(
                self.what,
                None,
                "read past a failed check (a bug: report it)",
            )
        })
    }

    /// The position in the body: the file offset (plain) or the plaintext offset (sealed).
    pub fn position(&self) -> u64 {
        match (&self.sealed, &self.inner) {
            (Some(s), _) => s.base + s.used as u64,
            (None, Some(r)) => r.position(),
            (None, None) => 0,
        }
    }

    /// Authenticates the first frame of a sealed body (and with it the header, which every
    /// frame's associated data covers), so that nothing is acted on before.
    pub fn prime(&mut self) -> Result<()> {
        match &self.sealed {
            Some(s) if s.index == 0 => self.next_frame(),
            _ => Ok(()),
        }
    }

    /// Fills `buf` from the body; a body that ends first is Corrupt, naming `field`.
    pub fn fill(&mut self, buf: &mut [u8], field: &str) -> Result<()> {
        let at = self.position();
        if self.sealed.is_none() {
            return read_full(self.inner()?, buf, field, at);
        }
        let mut done = 0;
        while done < buf.len() {
            let s = self.sealed.as_mut().ok_or_else(|| {
                Error::corrupt(self.what, None, "a sealed body lost its state (a bug)")
            })?;
            if s.used == s.buf.len() {
                if s.last_seen {
                    return Err(Error::corrupt(
                        format!("{} {field}", self.what),
                        Some(at),
                        "the sealed body ends before this field",
                    ));
                }
                self.next_frame()?;
                continue;
            }
            let take = (s.buf.len() - s.used).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&s.buf[s.used..s.used + take]);
            s.used += take;
            done += take;
        }
        Ok(())
    }

    /// Reads, checks and decrypts the next frame.
    fn next_frame(&mut self) -> Result<()> {
        let what = self.what;
        let r = self.inner()?;
        let at = r.position();
        let mut fh = [0u8; FRAME_HEADER_LEN];
        read_full(r, &mut fh, &format!("{what} frame header"), at)?;
        let mut h = Reader::new(&fh, at, "frame header");
        let len = h.u32("plaintext length")? as usize;
        let flags = h.u8("flags")?;
        h.reserved("reserved", 3)?;
        if len > FRAME_LEN || flags & !FLAG_LAST != 0 {
            return Err(h.error(
                "frame header",
                format!(
                    "a length of {len} bytes (at most {FRAME_LEN} bytes) or flags {flags:#x} are \
                     invalid"
                ),
            ));
        }
        let last = flags & FLAG_LAST != 0;
        if !last && len != FRAME_LEN {
            return Err(h.error(
                "plaintext length",
                format!("a frame other than the last holds {FRAME_LEN} bytes, not {len} bytes"),
            ));
        }
        let s = self
            .sealed
            .as_mut()
            .ok_or_else(|| Error::corrupt(what, None, "a sealed body lost its state (a bug)"))?;
        s.base += s.buf.len() as u64;
        s.buf.clear();
        s.buf.resize(len, 0);
        s.used = 0;
        let r = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::corrupt(what, None, "read past a failed check (a bug)"))?;
        read_full(r, &mut s.buf, &format!("{what} frame"), at + 8)?;
        let mut tag = [0u8; TAG_LEN];
        read_full(
            r,
            &mut tag,
            &format!("{what} frame tag"),
            at + 8 + len as u64,
        )?;
        let a = aad(&s.header, s.index, &fh);
        let ok = s
            .cipher
            .decrypt_inout_detached(
                &Nonce::from(nonce(s.index)),
                &a,
                s.buf.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .is_ok();
        if !ok {
            let index = s.index;
            return Err(self.refuse(Error::Authentication {
                what: format!("sealed {what}"),
                detail: format!(
                    "frame {index} (at byte {at}) does not authenticate under this key: the file \
                     was sealed under another key, or frames were changed, moved or dropped"
                ),
            }));
        }
        s.index += 1;
        s.last_seen = last;
        Ok(())
    }

    /// Checks that the body ended exactly here (the last frame consumed whole, for a sealed
    /// body), then the trailer.
    pub fn finish(mut self) -> Result<()> {
        if let Some(s) = &self.sealed
            && (!s.last_seen || s.used != s.buf.len())
        {
            let at = self.position();
            let detail = if s.last_seen {
                "bytes follow the end of the sealed body"
            } else {
                "frames follow the end of the sealed body"
            };
            return Err(self.refuse(Error::corrupt(self.what, Some(at), detail)));
        }
        match self.inner.take() {
            Some(r) => r.finish(self.what).map(|_| ()),
            None => Err(Error::corrupt(self.what, None, "finished twice (a bug)")),
        }
    }

    /// The error to report for `e`, found before the trailer was checked: the rest of the file
    /// is read and the trailer checked first, so that damage in transport is reported as
    /// Corrupt, and `e` only when the file is intact as written.
    pub fn refuse(&mut self, e: Error) -> Error {
        match self.inner.take() {
            Some(r) => match r.drain(self.what) {
                Ok(()) => e,
                Err(damage) => damage,
            },
            None => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::crypto::{KeyFile, MasterKey, Secret};

    fn key() -> Key {
        KeyFile::create(Secret::Key(&MasterKey::generate().unwrap()))
            .unwrap()
            .1
    }

    const HEADER: &[u8] = b"a header of some bytes";

    fn seal(body: &[u8], key: &Key, salt: &[u8; SALT_LEN]) -> Vec<u8> {
        let mut w = BodyWriter::start(Vec::new(), HEADER, Some((key, salt))).unwrap();
        // In pieces of odd sizes, across frame edges.
        for piece in body.chunks(333_333) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap().0
    }

    fn open(file: &[u8], key: &Key, salt: &[u8; SALT_LEN], len: usize) -> Result<Vec<u8>> {
        let mut r = HashingReader::new(file);
        let mut h = vec![0u8; HEADER.len()];
        read_full(&mut r, &mut h, "header", 0)?;
        let mut body = BodyReader::sealed(r, "test file", HEADER, key, salt);
        body.prime()?;
        let mut out = vec![0u8; len];
        body.fill(&mut out, "body")?;
        body.finish()?;
        Ok(out)
    }

    /// Body lengths around the frame's edges.
    #[test]
    fn bodies_round_trip_across_frame_edges() {
        let (key, salt) = (key(), random_salt().unwrap());
        for len in [
            0,
            1,
            FRAME_LEN - 1,
            FRAME_LEN,
            FRAME_LEN + 1,
            2 * FRAME_LEN + 7,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = seal(&body, &key, &salt);
            let frames = len.div_ceil(FRAME_LEN).max(1);
            let overhead = HEADER.len() + frames * (FRAME_HEADER_LEN + TAG_LEN) + 32;
            assert_eq!(file.len(), len + overhead, "{len}");
            assert_eq!(open(&file, &key, &salt, len).unwrap(), body, "{len}");
            // Reading less than the body leaves bytes: Corrupt; more: Corrupt.
            if len > 0 {
                let e = open(&file, &key, &salt, len - 1).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{len}: {e}");
            }
            let e = open(&file, &key, &salt, len + 1).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{len}: {e}");
            // Another salt, another key: Authentication.
            let other = random_salt().unwrap();
            let e = open(&file, &key, &other, len).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Authentication, "{len}: {e}");
            let e = open(&file, &self::key(), &salt, len).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Authentication, "{len}: {e}");
        }
    }

    #[test]
    fn the_same_body_seals_differently_under_each_salt() {
        let key = key();
        let body = vec![0u8; 1000];
        let a = seal(&body, &key, &random_salt().unwrap());
        let b = seal(&body, &key, &random_salt().unwrap());
        assert_ne!(a[HEADER.len()..], b[HEADER.len()..]);
    }
}
