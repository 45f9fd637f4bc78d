//! System calls std has no safe wrapper for, each behind a safe function.

use std::fs::File;

/// Starts write-back of the file's dirty pages (`sync_file_range(SYNC_FILE_RANGE_WRITE)`)
/// without waiting for it, so that the disk writes while the caller goes on and the final
/// `sync_all` (which alone gives durability) has little left. Failure only loses the overlap;
/// a no-op off Linux.
pub(crate) fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a system call on a file descriptor `file` owns for the duration of the call;
        // it touches no memory of ours.
        let _ =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Turns direct I/O (`O_DIRECT`: writes bypass the page cache) on or off for `file`; false when
/// the system refuses or has no such mode. Writes in direct mode must be aligned (see
/// [`crate::direct`]), and a refused one fails with `EINVAL`.
pub(crate) fn set_direct(file: &File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a file descriptor `file` owns for the duration of the calls; F_GETFL
        // and F_SETFL touch no memory of ours.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return false;
            }
            let want = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            libc::fcntl(fd, libc::F_SETFL, want) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, on);
        false
    }
}

/// How [`try_lock`] locks a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Any number of shared holders at once.
    Shared,
    /// One holder, and no shared one.
    Exclusive,
}

/// Takes an advisory lock (`flock`) on `file` without waiting: `Ok(false)` when another open
/// file (in this process or another) holds a conflicting one. Released when `file` closes.
pub(crate) fn try_lock(file: &File, mode: LockMode) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        } | libc::LOCK_NB;
        loop {
            // SAFETY: flock on a file descriptor `file` owns for the duration of the call; it
            // touches no memory of ours.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(false),
                _ => return Err(e),
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, mode);
        Ok(true)
    }
}

/// The `open` flag that refuses a symbolic link as the last component (`O_NOFOLLOW`). 0 off
/// Linux, where libc is not linked: there an exclusive creation (`O_CREAT | O_EXCL`) still
/// refuses a link, but opening an existing lock file follows one.
#[cfg(target_os = "linux")]
pub(crate) const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;
/// See the Linux definition.
#[cfg(not(target_os = "linux"))]
pub(crate) const O_NOFOLLOW: i32 = 0;

/// The `open` flag that does not wait (`O_NONBLOCK`): opening a FIFO for reading returns at
/// once instead of waiting for a writer. 0 off Linux.
#[cfg(target_os = "linux")]
pub(crate) const O_NONBLOCK: i32 = libc::O_NONBLOCK;
/// See the Linux definition.
#[cfg(not(target_os = "linux"))]
pub(crate) const O_NONBLOCK: i32 = 0;

/// Renames `from` to `to` unless something is at `to` (a symbolic link included): an
/// [`AlreadyExists`](std::io::ErrorKind::AlreadyExists) error then, decided atomically by the
/// file system. `renameat2(RENAME_NOREPLACE)` on Linux; where it is missing (another system, a
/// file system without the flag) a hard link to `to` (which fails the same way on anything
/// there) and the removal of `from`. A file system with neither gives the error of the link.
pub(crate) fn rename_noreplace(
    from: &std::path::Path,
    to: &std::path::Path,
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: two NUL-terminated strings that live across the call, which only reads them.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
    }
    std::fs::hard_link(from, to)?;
    // Published under both names now; a failed removal leaves a leftover temporary name only.
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// How [`zero_range`] made a range read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zeroed {
    /// Deallocated (a hole in a file; a discard that guarantees zeros on a block device).
    Discarded,
    /// Zeroed by the file system or the device (unwritten extents; `WRITE ZEROES`).
    WrittenZeroes,
    /// Neither is supported here: the caller writes the zeros.
    Unsupported,
}

/// Makes `len` bytes of `file` at `at` read as zeros without writing them where the system
/// can: `fallocate(PUNCH_HOLE | KEEP_SIZE)` (a hole in a file; on a block device a discard
/// that must return zeros, else refused), then `fallocate(ZERO_RANGE | KEEP_SIZE)`. The size
/// never changes. [`Zeroed::Unsupported`] when neither applies (another file system or
/// device, a range the device cannot align, off Linux).
pub(crate) fn zero_range(file: &File, at: u64, len: u64) -> std::io::Result<Zeroed> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) else {
            return Ok(Zeroed::Unsupported);
        };
        for (mode, done) in [
            (libc::FALLOC_FL_PUNCH_HOLE, Zeroed::Discarded),
            (libc::FALLOC_FL_ZERO_RANGE, Zeroed::WrittenZeroes),
        ] {
            loop {
                // SAFETY: a system call on a file descriptor `file` owns for the duration of
                // the call; it touches no memory of ours.
                let r = unsafe {
                    libc::fallocate(file.as_raw_fd(), mode | libc::FALLOC_FL_KEEP_SIZE, off, n)
                };
                if r == 0 {
                    return Ok(done);
                }
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENODEV | libc::ENOSYS) => break,
                    _ => return Err(e),
                }
            }
        }
        Ok(Zeroed::Unsupported)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, at, len);
        Ok(Zeroed::Unsupported)
    }
}

/// Opens an existing block device exclusively (`O_EXCL`: refused with `EBUSY` while the
/// device is mounted or held by another exclusive opener), or a regular file, for writing
/// without creating or truncating it.
pub(crate) fn open_existing_for_writing(
    path: &std::path::Path,
    block_device: bool,
) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).read(true);
    #[cfg(target_os = "linux")]
    if block_device {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_EXCL);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = block_device;
    o.open(path)
}
