//! Failover onto existing storage: a block device (a LUN, a logical volume) or a pre-created
//! file, written in place. The target must hold the whole disk; every byte of the disk is
//! written (ranges the point holds as zeros are discarded or zeroed out where the device or
//! file system can, else written as zeros); bytes past the disk's size are left as they are.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::direct::{AlignedBuf, write_all_at};
use crate::error::{Error, Result};
use crate::sys::{Zeroed, zero_range};

/// Zeros written at once where the target cannot zero a range itself.
const ZERO_BUF: usize = 1 << 20;

/// An existing target opened for writing one disk.
pub(crate) struct Onto {
    file: File,
    path: PathBuf,
    /// Whether the target zeroes ranges itself (cleared at its first refusal).
    can_zero: bool,
    /// Bytes the target made zero by discard or zero-out, and bytes written as zeros.
    pub discarded: u64,
    pub zero_written: u64,
    zeros: Option<AlignedBuf>,
}

impl Onto {
    /// Opens `path` (a symbolic link is followed: `/dev/vg/lv` is one) for writing disk
    /// `disk` of `size` bytes: it must be a block device (opened exclusively, so not one that
    /// is mounted) or a regular file, of at least `size` bytes.
    pub fn open(path: &Path, disk: &str, size: u64) -> Result<Onto> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!(
                    "target {} for disk `{disk}` (a target must exist: a block device or a \
                     pre-created file)",
                    path.display()
                ),
            },
            _ => Error::io("opening the target", Some(path), e),
        })?;
        let block_device = is_block_device(&meta);
        if !block_device && !meta.is_file() {
            return Err(Error::invalid_argument(
                "target",
                format!(
                    "{} is neither a block device nor a regular file; disk `{disk}` cannot be \
                     written onto it",
                    path.display()
                ),
            ));
        }
        let mut file = crate::sys::open_existing_for_writing(path, block_device).map_err(|e| {
            if e.raw_os_error() == Some(BUSY) {
                Error::invalid_argument(
                    "target",
                    format!(
                        "the block device {} is in use (mounted, or open exclusively by \
                         another program); nothing was written",
                        path.display()
                    ),
                )
            } else {
                Error::io("opening the target", Some(path), e)
            }
        })?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("finding the target's size", Some(path), e))?;
        if len < size {
            let kind = if block_device { "block device" } else { "file" };
            return Err(Error::invalid_argument(
                "target",
                format!(
                    "the {kind} {} holds {len} bytes, less than the {size} bytes of disk \
                     `{disk}`; nothing was written (grow it, or choose a larger target)",
                    path.display()
                ),
            ));
        }
        Ok(Onto {
            file,
            path: path.to_path_buf(),
            can_zero: true,
            discarded: 0,
            zero_written: 0,
            zeros: None,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `len` bytes at `at` read as zeros: discarded or zeroed out by the target where it
    /// can, else written (directly while `*direct`, as [`write_all_at`] does).
    pub fn zero(&mut self, at: u64, len: u64, direct: &mut bool) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.can_zero {
            match zero_range(&self.file, at, len)? {
                Zeroed::Discarded | Zeroed::WrittenZeroes => {
                    self.discarded += len;
                    return Ok(());
                }
                // Refused for this range: an unaligned one (the disk's tail) may be all that
                // the device refuses, so only an aligned refusal turns zeroing off.
                Zeroed::Unsupported if at % 4096 == 0 && len % 4096 == 0 => {
                    self.can_zero = false;
                }
                Zeroed::Unsupported => {}
            }
        }
        let zeros = self.zeros.get_or_insert_with(|| AlignedBuf::new(ZERO_BUF));
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZERO_BUF as u64) as usize;
            write_all_at(&self.file, &zeros.as_slice()[..n], at + done, direct)?;
            done += n as u64;
        }
        self.zero_written += len;
        Ok(())
    }

    /// The (device, inode) pair that identifies the target, to refuse two disks onto one.
    pub fn identity(&self) -> Result<(u64, u64)> {
        let m = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading the target's metadata", Some(&self.path), e))?;
        Ok(file_identity(&m))
    }
}

/// (device, inode) of a file.
pub(crate) fn file_identity(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if is_block_device(m) {
            // Two device nodes of one device share its number, not their inode.
            return (u64::MAX, m.rdev());
        }
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

fn is_block_device(m: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_block_device()
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

#[cfg(target_os = "linux")]
const BUSY: i32 = libc::EBUSY;
#[cfg(not(target_os = "linux"))]
const BUSY: i32 = 16;
