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
