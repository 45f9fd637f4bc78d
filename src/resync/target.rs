//! Checking a target before a delta overwrites it: its size, and every chunk the delta writes,
//! which must still be what the signature recorded (not yet applied) or already what the delta
//! writes (applied by an interrupted run). See `docs/FORMAT.md` §10.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::delta::Sink;
use super::hashing::{ChunkHasher, ZERO_HASH, same_hash};
use super::{chunk_count, chunk_len};
use crate::error::{Error, Result};

/// Read access to a target's current bytes; bytes past its end read as zeros.
pub(crate) trait TargetBytes {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<()>;
}

impl TargetBytes for [u8] {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
        let start = usize::try_from(pos).unwrap_or(usize::MAX).min(self.len());
        let n = (self.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self[start..start + n]);
        buf[n..].fill(0);
        Ok(())
    }
}

impl TargetBytes for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            #[cfg(unix)]
            let n = std::os::unix::fs::FileExt::read_at(self, &mut buf[done..], pos + done as u64);
            #[cfg(windows)]
            let n =
                std::os::windows::fs::FileExt::seek_read(self, &mut buf[done..], pos + done as u64);
            match n {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        buf[done..].fill(0);
        Ok(())
    }
}

/// A missing target (of a delta computed against an empty image): every byte reads as zero.
pub(crate) struct Missing;

impl TargetBytes for Missing {
    fn read_at(&self, buf: &mut [u8], _pos: u64) -> std::io::Result<()> {
        buf.fill(0);
        Ok(())
    }
}

/// The shape of a delta's target: what its signature saw and what the delta makes of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub chunk_size: u32,
    /// The image size of the target's signature.
    pub base_size: u64,
    /// The size the delta makes the target.
    pub final_size: u64,
}

impl Shape {
    /// Checks a target's current size before anything is read or written. A file must have
    /// the signature's size, or the final size (applied), or, for a delta that grows the
    /// image, a size between (an interrupted apply extended it). A block device has a fixed
    /// size: it must hold both.
    pub fn check_size(&self, path: &Path, len: u64, block_device: bool) -> Result<()> {
        let (b, f) = (self.base_size, self.final_size);
        let ok = if block_device {
            len == f && len >= b
        } else {
            len == b || len == f || (b < len && len < f)
        };
        if ok {
            return Ok(());
        }
        let kind = if block_device { "block device" } else { "file" };
        Err(Error::invalid_argument(
            "target",
            format!(
                "the {kind} {} has {len} bytes; the delta's signature was taken of a {b}-byte \
                 image and the delta makes it {f} bytes: this is not the image the signature was \
                 taken of; nothing was written (take a new signature of this target)",
                path.display()
            ),
        ))
    }
}

/// Checks chunks of a target against a delta's hashes.
pub(crate) struct Expect {
    shape: Shape,
    hasher: ChunkHasher,
    path: PathBuf,
    buf: Vec<u8>,
    /// True once writing has started (the message then says so).
    applying: bool,
}

impl Expect {
    pub fn new(shape: Shape, hasher: ChunkHasher, path: &Path, applying: bool) -> Expect {
        Expect {
            shape,
            hasher,
            path: path.to_path_buf(),
            buf: Vec::new(),
            applying,
        }
    }

    /// Checks that chunk `index` of `t` is `old` (as the signature recorded it; zeros past the
    /// signature's end) or `new` (as the delta writes it).
    pub fn check(
        &mut self,
        t: &(impl TargetBytes + ?Sized),
        index: u64,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<()> {
        let Shape {
            chunk_size: cs,
            base_size,
            final_size,
        } = self.shape;
        let new_len = chunk_len(final_size, cs, index) as usize;
        let old_len = if index < chunk_count(base_size, cs) {
            chunk_len(base_size, cs, index) as usize
        } else {
            new_len
        };
        let pos = index * u64::from(cs);
        self.buf.resize(old_len.max(new_len), 0);
        t.read_at(&mut self.buf, pos)
            .map_err(|e| Error::io("reading the target", Some(&self.path), e))?;
        if same_hash(&self.hasher.chunk(&self.buf[..old_len]), old)
            || same_hash(&self.hasher.chunk(&self.buf[..new_len]), new)
        {
            return Ok(());
        }
        let what = if self.applying {
            "the target changed while the delta was being applied; the chunks before it were \
             written"
        } else {
            "this is not the image the signature was taken of (another image, an older or newer \
             copy, or one changed since); nothing was written"
        };
        Err(Error::invalid_argument(
            "target",
            format!(
                "chunk {index} (bytes {pos}..{}) of {} is neither what the signature recorded \
                 nor what the delta writes there: {what}. Take a new signature of this target \
                 and compute a new delta",
                pos + new_len.max(old_len) as u64,
                self.path.display()
            ),
        ))
    }
}

/// The check pass of an apply: every chunk the delta writes is checked, nothing is written.
pub(crate) struct Checker<'a, T: TargetBytes + ?Sized> {
    pub target: &'a T,
    pub expect: Expect,
    pub chunks: u64,
}

impl<T: TargetBytes + ?Sized> Sink for Checker<'_, T> {
    fn data(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], _bytes: &[u8]) -> Result<()> {
        self.chunks += 1;
        self.expect.check(self.target, index, old, hash)
    }

    fn zero(&mut self, index: u64, _len: u64, old: &[u8; 32]) -> Result<()> {
        self.chunks += 1;
        self.expect.check(self.target, index, old, &ZERO_HASH)
    }
}
