//! Writing chunks into a target image: positioned writes, holes for zeros, the final size.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::delta::{Change, Sink, each_change};
use super::hashing::ZERO_HASH;
use super::target::Expect;
use crate::error::{Error, Result};
use crate::sparse::data_parts;

/// What applying a delta did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyStats {
    /// Chunks written with data.
    pub data_chunks: u64,
    /// Chunks zeroed.
    pub zero_chunks: u64,
    /// Bytes of data written.
    pub data_bytes: u64,
    /// The target's size afterwards.
    pub final_size: u64,
}

/// A target image being brought up to date.
pub(crate) struct Applier {
    file: File,
    path: PathBuf,
    block_device: bool,
    chunk_size: u64,
    final_size: u64,
    stats: ApplyStats,
    /// Checks every chunk before it is overwritten (applying a delta; not a local resync).
    expect: Option<Expect>,
}

/// Whether `file` is a block device (no holes, a fixed size, found by seeking).
pub(crate) fn is_block_device(file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        file.metadata()
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

impl Applier {
    /// Opens `path` for writing. A missing target is created (new, 0600, never through a
    /// symbolic link: see [`crate::fsutil::create_private`]) when `create` is set or the delta
    /// was computed against an empty signature (`base_size` 0); otherwise it is NotFound. An
    /// existing target must be a regular file or a block device; a symbolic link is followed
    /// only to a block device (as `/dev/disk/by-id/...` names are), so a link planted where a
    /// new image is expected never redirects the writes to another file.
    pub fn open(
        path: &Path,
        chunk_size: u32,
        final_size: u64,
        base_size: u64,
        create: bool,
    ) -> Result<Applier> {
        let file = open_target(path, create || base_size == 0).map_err(|e| match e.kind() {
            crate::ErrorKind::NotFound => Error::NotFound {
                what: format!(
                    "target {} (the delta expects a {base_size}-byte image)",
                    path.display()
                ),
            },
            _ => e,
        })?;
        let block_device = is_block_device(&file);
        if block_device {
            use std::io::{Seek, SeekFrom};
            let len = (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io("sizing the target", Some(path), e))?;
            if len != final_size {
                return Err(Error::invalid_argument(
                    "target",
                    format!(
                        "block device {} has {len} bytes; the source has {final_size} bytes",
                        path.display()
                    ),
                ));
            }
        }
        Ok(Applier {
            file,
            path: path.to_path_buf(),
            block_device,
            chunk_size: u64::from(chunk_size),
            final_size,
            stats: ApplyStats {
                final_size,
                ..ApplyStats::default()
            },
            expect: None,
        })
    }

    /// Checks every chunk against `expect` just before it is overwritten.
    pub fn checking(mut self, expect: Expect) -> Applier {
        self.expect = Some(expect);
        self
    }

    /// Checks chunk `index` before it is overwritten, if this applier checks.
    fn check(&mut self, index: u64, old: &[u8; 32], new: &[u8; 32]) -> Result<()> {
        match &mut self.expect {
            Some(e) => e.check(&self.file, index, old, new),
            None => Ok(()),
        }
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(what.to_string(), Some(&self.path), e)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_all_at(&self.file, buf, pos)
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let (mut buf, mut pos) = (buf, pos);
            while !buf.is_empty() {
                let n = self.file.seek_write(buf, pos)?;
                buf = &buf[n..];
                pos += n as u64;
            }
            Ok(())
        }
    }

    /// Zeros `len` bytes at `pos`: a hole where the file system can punch one, else zeros.
    fn zero_range(&self, pos: u64, len: u64) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if !self.block_device && punch_hole(&self.file, pos, len) {
            return Ok(());
        }
        let zeros = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64);
            self.write_at(&zeros[..n as usize], pos + done)?;
            done += n;
        }
        Ok(())
    }

    /// Sets the final size and makes everything durable.
    pub fn finish(self) -> Result<ApplyStats> {
        if !self.block_device {
            self.file
                .set_len(self.final_size)
                .map_err(|e| self.io("setting the target's size", e))?;
        }
        self.file
            .sync_all()
            .map_err(|e| self.io("syncing the target", e))?;
        Ok(self.stats)
    }
}

impl Sink for Applier {
    fn data(&mut self, index: u64, hash: &[u8; 32], old: &[u8; 32], bytes: &[u8]) -> Result<()> {
        self.check(index, old, hash)?;
        let pos = index * self.chunk_size;
        if self.block_device {
            self.write_at(bytes, pos)
                .map_err(|e| self.io("writing the target", e))?;
        } else {
            // Long zeros in the chunk (a few small writes in it) are made holes, not written
            // (`sparse`): a new target stays as sparse as its source.
            let mut at = 0;
            for (s, n) in data_parts(bytes, pos).into_iter().chain([(bytes.len(), 0)]) {
                if s > at {
                    self.zero_range(pos + at as u64, (s - at) as u64)
                        .map_err(|e| self.io("zeroing the target", e))?;
                }
                if n > 0 {
                    self.write_at(&bytes[s..s + n], pos + s as u64)
                        .map_err(|e| self.io("writing the target", e))?;
                }
                at = s + n;
            }
        }
        self.stats.data_chunks += 1;
        self.stats.data_bytes += bytes.len() as u64;
        Ok(())
    }

    fn zero(&mut self, index: u64, len: u64, old: &[u8; 32]) -> Result<()> {
        self.check(index, old, &ZERO_HASH)?;
        self.zero_range(index * self.chunk_size, len)
            .map_err(|e| self.io("zeroing the target", e))?;
        self.stats.zero_chunks += 1;
        Ok(())
    }

    /// Writes a batch, then starts the write-back of what it dirtied without waiting for it, so
    /// that the disk writes while the next batch is hashed and the final sync has little left.
    fn batch(&mut self, changes: &[Change<'_>]) -> Result<()> {
        each_change(self, changes)?;
        #[cfg(target_os = "linux")]
        if !changes.is_empty() {
            crate::sys::start_writeback(&self.file);
        }
        Ok(())
    }
}

/// Opens the target `path` (see [`Applier::open`]); `may_create` creates a missing one.
fn open_target(path: &Path, may_create: bool) -> Result<File> {
    let open = |follow: bool| {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        #[cfg(unix)]
        if !follow {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(crate::sys::O_NOFOLLOW);
        }
        #[cfg(not(unix))]
        let _ = follow;
        o.open(path)
    };
    let not_a_target = |what: &str| {
        Error::invalid_argument(
            "target",
            format!(
                "{} is {what}: a target is a regular file or a block device (a symbolic link \
                 is followed only to a block device)",
                path.display()
            ),
        )
    };
    let file = match open(false) {
        Ok(f) => f,
        #[cfg(target_os = "linux")]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let f = open(true).map_err(|_| not_a_target("a symbolic link to a missing file"))?;
            if !is_block_device(&f) {
                return Err(not_a_target("a symbolic link to something else"));
            }
            f
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            crate::fsutil::create_private(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    what: format!(
                        "target {} (it appeared while being created)",
                        path.display()
                    ),
                },
                _ => Error::io("creating the target", Some(path), e),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                what: format!("target {}", path.display()),
            });
        }
        Err(e) => return Err(Error::io("opening the target", Some(path), e)),
    };
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if !regular && !is_block_device(&file) {
        return Err(not_a_target("neither"));
    }
    Ok(file)
}

/// Punches a hole (Linux `fallocate(PUNCH_HOLE | KEEP_SIZE)`); false where unsupported.
#[cfg(target_os = "linux")]
pub(crate) fn punch_hole(file: &File, pos: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(l)) = (libc::off_t::try_from(pos), libc::off_t::try_from(len)) else {
        return false;
    };
    // SAFETY: fallocate on a file descriptor this `File` owns for the duration of the call; it
    // touches no memory of ours.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            l,
        )
    };
    r == 0
}
