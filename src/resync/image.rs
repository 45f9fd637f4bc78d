//! Read access to a disk image (regular file or block device), mapped or read.
//!
//! The one place in the crate that maps files. The mapped bytes are lent out only as `&[u8]`
//! tied to the `Image`'s lifetime. [`Image::data_ranges`] asks the file system where the holes
//! of a sparse image are, so that hashing can skip them without touching their pages.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Images smaller than this are read into memory instead of mapped.
const MAP_MIN: u64 = 1 << 20;

enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

/// A disk image opened for reading.
pub(crate) struct Image {
    bytes: Bytes,
    path: PathBuf,
    file: File,
    /// Block devices have no holes to ask about: every byte is read.
    block_device: bool,
}

impl Image {
    /// Opens `path`. Its length is found by seeking, which also works for block devices.
    pub fn open(path: &Path) -> Result<Image> {
        let mut f = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("image {}", path.display()),
            },
            _ => Error::io("opening the image", Some(path), e),
        })?;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("finding the image's size", Some(path), e))?;
        let bytes = if len < MAP_MIN {
            let mut buf = Vec::with_capacity(len as usize);
            f.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("reading the image", Some(path), e))?;
            f.read_to_end(&mut buf)
                .map_err(|e| Error::io("reading the image", Some(path), e))?;
            Bytes::Read(buf)
        } else {
            // SAFETY: the map is read-only and private to this value. If another process
            // changes the file while it is mapped, reads see some mix of old and new bytes
            // (never undefined behaviour in practice for a file that is not truncated); that is
            // the documented contract of resync on a live image: hash a snapshot, not a disk in
            // use. A file truncated under the map faults (SIGBUS), as it would for any reader.
            let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&f) }
                .map_err(|e| Error::io("mapping the image", Some(path), e))?;
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            Bytes::Mapped(map)
        };
        Ok(Image {
            bytes,
            path: path.to_path_buf(),
            block_device: super::apply::is_block_device(&f),
            file: f,
        })
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }

    /// The ranges of `[start, end)` that may hold data, in order: holes of a sparse file are
    /// left out, as far as the file system tells (`SEEK_DATA`/`SEEK_HOLE` on Linux). Where it
    /// cannot tell, the whole range. Holes read as zeros, so skipping them changes no hash.
    pub fn data_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        #[cfg(target_os = "linux")]
        if !self.block_device
            && let Some(r) = seek_data_ranges(&self.file, start, end)
        {
            return r;
        }
        vec![(start, end)]
    }

    /// Where the first data at or after `from` may be: the image's length when only holes
    /// follow, `from` itself when the file system cannot tell (a block device: every byte).
    pub fn next_data(&self, from: u64) -> u64 {
        let len = self.bytes().len() as u64;
        if from >= len {
            return len;
        }
        #[cfg(target_os = "linux")]
        if !self.block_device {
            use std::os::fd::AsRawFd;
            match lseek(self.file.as_raw_fd(), from, libc::SEEK_DATA) {
                Some(Ok(d)) => return d.min(len),
                Some(Err(libc::ENXIO)) => return len,
                _ => {}
            }
        }
        from
    }

    /// A read-ahead for a reader going through the image from its start (see [`ReadAhead`]).
    pub fn read_ahead(&self) -> ReadAhead<'_> {
        ReadAhead {
            image: self,
            next: 0,
            queued: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes of data a [`ReadAhead`] keeps advised from its reader on: the batch it is about to
/// read and the next one's worth.
const AHEAD_DATA: u64 = 128 << 20;
/// How far past its reader a [`ReadAhead`] looks for data, at most.
const AHEAD_SPAN: u64 = 64 << 30;
/// The stretch of the image whose data ranges a [`ReadAhead`] asks for at a time.
const AHEAD_STEP: u64 = 64 << 20;

/// Keeps the kernel reading an image's data ahead of a reader that goes through it in order:
/// the data ranges after the reader are advised (`MADV_WILLNEED` on the map) until
/// [`AHEAD_DATA`] bytes of data, or [`AHEAD_SPAN`] bytes of the image, lie ahead of it. The data
/// comes from the device in large reads while the reader works, rather than page fault by page
/// fault; on a sparse image, where a batch holds little data or none, it reaches past many
/// batches. Best effort; nothing for an image read into memory.
pub(crate) struct ReadAhead<'a> {
    image: &'a Image,
    /// The image is advised up to here.
    next: u64,
    /// Data ranges advised that the reader has not passed, and their bytes.
    queued: VecDeque<(u64, u64)>,
    queued_bytes: u64,
}

impl ReadAhead<'_> {
    /// The reader has read everything before `at`: advises what follows.
    pub fn advance(&mut self, at: u64) {
        let Bytes::Mapped(m) = &self.image.bytes else {
            return;
        };
        while let Some(&(s, e)) = self.queued.front()
            && e <= at
        {
            self.queued.pop_front();
            self.queued_bytes -= e - s;
        }
        let len = m.len() as u64;
        self.next = self.next.max(at);
        let limit = len.min(at.saturating_add(AHEAD_SPAN));
        while self.queued_bytes < AHEAD_DATA && self.next < limit {
            let end = (self.next + AHEAD_STEP).min(limit);
            for (s, e) in self.image.data_ranges(self.next, end) {
                let _ = m.advise_range(memmap2::Advice::WillNeed, s as usize, (e - s) as usize);
                self.queued.push_back((s, e));
                self.queued_bytes += e - s;
            }
            self.next = end;
        }
    }
}

/// `lseek(fd, pos, whence)`: the new offset, or the `errno`; None for an offset past `off_t`.
/// `fd` is an image's, whose file position nothing else uses (the image is read through the
/// map).
#[cfg(target_os = "linux")]
fn lseek(
    fd: std::os::fd::RawFd,
    pos: u64,
    whence: libc::c_int,
) -> Option<std::result::Result<u64, i32>> {
    let off = libc::off_t::try_from(pos).ok()?;
    // SAFETY: lseek on a descriptor an `Image` owns, open for its lifetime.
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Some(Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(0)))
    } else {
        Some(Ok(r as u64))
    }
}

/// Data ranges of `[start, end)` by `lseek(SEEK_DATA / SEEK_HOLE)`; None if unsupported.
#[cfg(target_os = "linux")]
fn seek_data_ranges(file: &File, start: u64, end: u64) -> Option<Vec<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let lseek = |pos: u64, whence| lseek(fd, pos, whence);
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let data = match lseek(pos, libc::SEEK_DATA)? {
            Ok(d) => d,
            Err(libc::ENXIO) => break, // only a hole from `pos` to the end of the file
            Err(_) => return None,
        };
        if data >= end {
            break;
        }
        let hole = match lseek(data, libc::SEEK_HOLE)? {
            Ok(h) => h,
            Err(_) => return None,
        };
        out.push((data, hole.min(end)));
        pos = hole;
    }
    Some(out)
}
