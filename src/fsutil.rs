//! Crash-safe file publication: write to a temporary name, sync, rename, sync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fault::check(dir).map_err(|e| Error::io("syncing the directory", Some(dir), e))?;
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing the directory", Some(dir), e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A file being written under a temporary name (`<path>.tmp`), published at `path` by
/// [`commit`](AtomicFile::commit): until then a crash leaves `path` as it was. Dropping it
/// uncommitted removes the temporary file.
pub(crate) struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`; `replace` allows an existing file there to be replaced, else
    /// [`AlreadyExists`](crate::ErrorKind::AlreadyExists).
    pub fn create(path: &Path, replace: bool) -> Result<AtomicFile> {
        if !replace && path.exists() {
            return Err(Error::AlreadyExists {
                what: format!("{}", path.display()),
            });
        }
        let tmp = with_suffix(path, ".tmp");
        fault::check(&tmp).map_err(|e| Error::io("creating", Some(&tmp), e))?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io("creating", Some(&tmp), e))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The file being written (to start its write-back early, see [`crate::sys`]).
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("not committed")
    }

    /// Syncs the data, renames it into place and syncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("committed once");
        fault::check(&self.tmp)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("syncing", Some(&self.tmp), e))?;
        drop(file);
        fault::check(&self.path)
            .and_then(|()| fs::rename(&self.tmp, &self.path))
            .map_err(|e| Error::io("renaming into place", Some(&self.path), e))?;
        sync_dir(parent_dir(&self.path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        fault::check(&self.tmp)?;
        self.file.as_mut().expect("not committed").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Removes a file (`what` names it in errors); the removal asks [`fault::check`] first.
pub(crate) fn remove(path: &Path, what: &str) -> Result<()> {
    fault::check(path)
        .and_then(|()| fs::remove_file(path))
        .map_err(|e| Error::io(format!("removing {what}"), Some(path), e))
}

/// Writes `bytes` to `path` crash-safely (see [`AtomicFile`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let mut f = AtomicFile::create(path, replace)?;
    f.write_all(bytes)
        .map_err(|e| Error::io("writing", Some(&f.tmp), e))?;
    f.commit()
}

/// Reads a small file whole: `what` names it in errors; a file longer than `max` bytes is
/// [`Corrupt`](crate::ErrorKind::Corrupt) before anything is allocated for it.
pub(crate) fn read_small(path: &Path, what: &str, max: usize) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: format!("{what} {}", path.display()),
        },
        _ => Error::io(format!("reading the {what}"), Some(path), e),
    })?;
    if meta.len() > max as u64 {
        return Err(Error::corrupt(
            what,
            Some(0),
            format!("{} bytes; the largest is {max}", meta.len()),
        )
        .with_path(path));
    }
    fs::read(path).map_err(|e| Error::io(format!("reading the {what}"), Some(path), e))
}

/// The paths of the entries of `dir`.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io("listing", Some(dir), e))? {
        out.push(e.map_err(|e| Error::io("listing", Some(dir), e))?.path());
    }
    Ok(out)
}

/// `name` usable as a file name: characters other than ASCII letters, digits, `.`, `_` and `-`
/// replaced by `_`. (Group and disk names come from bundles: never trust them as paths.)
pub(crate) fn safe_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Injected I/O failures for the crash-safety unit tests: every file creation, write, sync,
/// rename and directory sync of [`AtomicFile`] (so every file a vault or bundle writer
/// publishes), and every [`remove`] asks [`check`](fault::check) first. Compiled out of non-test builds.
pub(crate) mod fault {
    use std::path::Path;

    #[cfg(test)]
    static PLAN: std::sync::Mutex<Option<(std::path::PathBuf, usize)>> =
        std::sync::Mutex::new(None);

    /// Fails the operation on `path` when a test's plan says so.
    #[cfg(test)]
    pub fn check(path: &Path) -> std::io::Result<()> {
        let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
        match plan.as_mut() {
            Some((dir, left)) if path.starts_with(&*dir) => {
                if *left == 0 {
                    return Err(std::io::Error::other(format!(
                        "injected failure at {}",
                        path.display()
                    )));
                }
                *left -= 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub fn check(_: &Path) -> std::io::Result<()> {
        Ok(())
    }

    /// Serializes the tests that inject failures: the plan is one for the whole process, so a
    /// test's `plan(None)` must not end another's injection. Hold it for the whole test.
    #[cfg(test)]
    pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the operation after `ok` successful ones under `dir` fail, and every one after
    /// it (a dead disk); `None` stops injecting.
    #[cfg(test)]
    pub fn plan(dir: Option<(&Path, usize)>) {
        *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = dir.map(|(d, n)| (d.to_path_buf(), n));
    }
}
