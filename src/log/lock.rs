//! The exclusive lock of a change log (`docs/FORMAT.md` §8.5): one writing handle per log, in
//! this process or any other. A second open is [`Locked`](crate::ErrorKind::Locked), naming the
//! process that holds the log, so that a hung agent and its restarted successor never append
//! to one log through two handles (records written through the second would be lost).
//!
//! The lock is an advisory `flock` on `<log>.lock` beside the log (never renamed, so it holds
//! across rotations), taken before anything of the log is read or repaired, and released when
//! the handle is dropped or its process ends. The file holds the holder's process id, for the
//! message; it is never removed. Descriptors are close-on-exec, but a fork shares them until
//! its exec: a host that reopens a log at the instant another of its threads forks may see
//! Locked, and retries as after any Locked.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::{open_lock_file, with_suffix};
use crate::sys::{LockMode, try_lock};

/// A held log lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct LogLock {
    _file: File,
}

/// Locks the log at `path` for this handle, or says who holds it.
pub(crate) fn lock(path: &Path) -> Result<LogLock> {
    let lock_path = with_suffix(path, ".lock");
    let io = |e| Error::io("locking the change log", Some(&lock_path), e);
    let mut file = open_lock_file(&lock_path).map_err(io)?;
    if !try_lock(&file, LockMode::Exclusive).map_err(io)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let by = if !holder.is_empty() && holder.bytes().all(|b| b.is_ascii_digit()) {
            format!("process {holder}")
        } else {
            "another handle".to_string()
        };
        return Err(Error::Locked {
            what: format!(
                "change log {} (open for appending by {by}; one handle per log: close it, or \
                 end that process, first)",
                path.display()
            ),
        });
    }
    // Ours: say who holds it (best effort; the lock itself is what counts).
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| write!(file, "{}", std::process::id()));
    Ok(LogLock { _file: file })
}
