//! A large file written in one sequential pass around the page cache (`O_DIRECT`).
//!
//! A seed writes gigabytes that the host only moves elsewhere. Through the page cache every
//! byte is copied into freshly allocated cache pages (on a virtual machine often the dearest
//! part of the write: a guest's freed memory is handed back to the hypervisor and faulted in
//! again) and evicts what the host's guests had cached. Written directly, the bytes go from one
//! reused, aligned buffer to the device. Where direct I/O is refused (a file system without it,
//! a device with larger blocks, off Linux) the same writer falls back to ordinary writes, so
//! callers see one behaviour; durability still comes only from the caller's sync.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::fsutil::AtomicFile;

/// Alignment of the buffer, of each direct write's length and of the file offset.
pub(crate) const ALIGN: usize = 4096;
/// Bytes gathered before one write (a multiple of [`ALIGN`]).
const CAP: usize = 8 << 20;

/// Buffers writes to an [`AtomicFile`] in aligned blocks written directly; see the module docs.
pub(crate) struct DirectWriter {
    file: AtomicFile,
    raw: Vec<u8>,
    /// Where the aligned [`CAP`] bytes start in `raw`.
    start: usize,
    /// Bytes waiting in the buffer.
    len: usize,
    /// Whether writes currently bypass the page cache.
    direct: bool,
}

impl DirectWriter {
    /// Wraps `file`, asking for direct I/O (falls back silently when refused).
    pub fn new(file: AtomicFile) -> DirectWriter {
        let raw = vec![0u8; CAP + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        let direct = start < ALIGN && crate::sys::set_direct(file.file(), true);
        DirectWriter {
            file,
            raw,
            start,
            len: 0,
            direct,
        }
    }

    /// The file being written.
    pub fn file(&self) -> &AtomicFile {
        &self.file
    }

    /// Whether the bytes written so far bypassed the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what is buffered and returns the file, back in ordinary (cached) mode.
    pub fn into_inner(mut self) -> io::Result<AtomicFile> {
        self.flush()?;
        self.buffered();
        Ok(self.file)
    }

    /// Leaves direct mode for good (the file offset may not stay aligned).
    fn buffered(&mut self) {
        if self.direct {
            self.direct = !crate::sys::set_direct(self.file.file(), false);
        }
    }

    /// Writes the buffer out. A direct write the kernel refuses (`EINVAL`: alignment or block
    /// size it does not support) is retried as an ordinary write.
    fn drain(&mut self) -> io::Result<()> {
        let mut done = 0;
        while done < self.len {
            let part = &self.raw[self.start + done..self.start + self.len];
            match self.file.write(part) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                    self.buffered();
                    if self.direct {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.len = 0;
        Ok(())
    }
}

/// A zeroed buffer of `len` bytes whose start is [`ALIGN`]ed, as direct I/O needs.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

/// Writes `data` at offset `at` of `file`: directly while `*direct` (the caller turned direct
/// I/O on, and `data`'s address, length and `at` are [`ALIGN`]ed), else ordinarily. A direct
/// write the kernel refuses (`EINVAL`) turns direct I/O off for the file and is redone.
pub(crate) fn write_all_at(file: &File, data: &[u8], at: u64, direct: &mut bool) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match file.write_at(&data[done..], at + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(EINVAL) => {
                if !crate::sys::set_direct(file, false) {
                    return Err(e);
                }
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
const EINVAL: i32 = libc::EINVAL;
#[cfg(not(target_os = "linux"))]
const EINVAL: i32 = 22;

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CAP - self.len);
        let at = self.start + self.len;
        self.raw[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == CAP {
            self.drain()?;
        }
        Ok(n)
    }

    /// Writes everything buffered. A tail that is not a whole number of blocks is written in
    /// ordinary mode, which the file then keeps.
    fn flush(&mut self) -> io::Result<()> {
        if self.len % ALIGN != 0 {
            self.buffered();
        }
        self.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_byte_in_order_whatever_the_pieces() {
        let dir = tempfile::tempdir().unwrap();
        for total in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            CAP - 1,
            CAP,
            CAP + 1,
            2 * CAP + ALIGN + 7,
        ] {
            let path = dir.path().join(format!("f{total}"));
            let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let mut w = DirectWriter::new(AtomicFile::create(&path, false).unwrap());
            // Pieces of varied sizes, some straddling the buffer's end.
            let mut at = 0;
            let mut step = 1;
            while at < total {
                let n = step.min(total - at);
                w.write_all(&data[at..at + n]).unwrap();
                at += n;
                step = step * 7 % 1_000_003 + 1;
            }
            w.into_inner().unwrap().commit().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "{total} bytes");
        }
    }

    #[test]
    fn a_flush_mid_stream_keeps_the_bytes_and_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectWriter::new(AtomicFile::create(&path, false).unwrap());
        w.write_all(&[1; 5000]).unwrap();
        w.flush().unwrap();
        assert!(!w.is_direct(), "an unaligned tail ends direct mode");
        w.write_all(&[2; CAP + 3]).unwrap();
        w.into_inner().unwrap().commit().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 5000 + CAP + 3);
        assert!(got[..5000].iter().all(|&b| b == 1) && got[5000..].iter().all(|&b| b == 2));
    }
}
