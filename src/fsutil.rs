//! Crash-safe file publication (write to an unpredictable temporary name, sync, rename, sync
//! the directory) and the one way the crate creates a file: [`create_private`].
//!
//! Every file the crate creates is new (created exclusively: a file or symbolic link already
//! at the name is refused, never followed or truncated), opened without following a link
//! (`O_NOFOLLOW`), and private to its owner (mode 0600, set again after creation so that no
//! umask changes it). Temporary files are named `.<file name>.<16 random hex digits>.tmp` in the
//! destination's directory, so another user cannot guess the name and plant a link there.

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

/// The options every file of the crate is opened with: read and write, mode 0600, and no
/// symbolic link followed at the last component (off Linux, where the flag is not at hand, the
/// exclusive creation of [`create_private`] still refuses a link).
fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(crate::sys::O_NOFOLLOW);
    }
    o
}

/// Creates a new file at `path`, readable and writable by its owner only (0600 whatever the
/// umask), without following a symbolic link: a file or link already there is an
/// [`std::io::ErrorKind::AlreadyExists`] error. Every file the crate creates goes through here
/// (temporary files of [`AtomicFile`], resync targets) or, for lock files, [`open_lock_file`].
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    let file = private_options().create_new(true).open(path)?;
    #[cfg(unix)]
    {
        // The umask can only clear bits of 0600; this makes the mode exact (an odd umask such
        // as 0o200 would otherwise leave the owner unable to write).
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = file.set_permissions(fs::Permissions::from_mode(0o600)) {
            drop(file);
            let _ = fs::remove_file(path);
            return Err(e);
        }
    }
    Ok(file)
}

/// Opens the lock file at `path`, creating it (as [`create_private`] does) when missing; never
/// through a symbolic link. Unlike [`create_private`] an existing file is opened: lock files
/// are shared by everyone who locks.
pub(crate) fn open_lock_file(path: &Path) -> std::io::Result<File> {
    match create_private(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => private_options().open(path),
        r => r,
    }
}

/// Creates the directory `path` and any missing parents, each new one 0700 (less under an odd
/// umask): the vault's directories, which hold only the owner's files.
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

/// `.<file name>.<16 random hex digits>.tmp` beside `path`.
fn temp_name(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid_argument("path", format!("{} does not name a file", path.display()))
    })?;
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| {
        Error::io(
            "drawing a temporary name",
            Some(path),
            std::io::Error::other(e.to_string()),
        )
    })?;
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{:016x}.tmp", u64::from_le_bytes(r)));
    Ok(parent_dir(path).join(s))
}

/// Whether `candidate` is a temporary name [`temp_name`] gives for `path`.
fn is_temp_of(candidate: &Path, path: &Path) -> bool {
    let (Some(c), Some(n)) = (
        candidate.file_name().and_then(|c| c.to_str()),
        path.file_name().and_then(|n| n.to_str()),
    ) else {
        return false;
    };
    c.strip_prefix('.')
        .and_then(|c| c.strip_prefix(n))
        .and_then(|c| c.strip_prefix('.'))
        .and_then(|c| c.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the temporary files an interrupted writer of `path` left (a crashed seed's bundle,
/// a killed failover's image). Each writer holds an exclusive lock on its temporary file until
/// it publishes or removes it, so a file that can be locked has no writer left. Best effort:
/// what cannot be removed stays. Only on Linux, where the locks are real (see [`crate::sys`]).
fn remove_stale_temps(path: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !is_temp_of(&p, path) {
            continue;
        }
        let Ok(f) = private_options().open(&p) else {
            continue;
        };
        let regular = f.metadata().is_ok_and(|m| m.is_file());
        if regular && crate::sys::try_lock(&f, crate::sys::LockMode::Exclusive).unwrap_or(false) {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Creates a new temporary file for `path` and locks it (see [`remove_stale_temps`]). The lock
/// is taken after the creation, so the name is checked to still be this file once it is held.
fn create_temp(path: &Path) -> Result<(File, PathBuf)> {
    for _ in 0..8 {
        let tmp = temp_name(path)?;
        fault::check(&tmp).map_err(|e| Error::io("creating", Some(&tmp), e))?;
        let file = match create_private(&tmp) {
            Ok(f) => f,
            // Another file under a random name: draw another.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("creating", Some(&tmp), e)),
        };
        let _ = crate::sys::try_lock(&file, crate::sys::LockMode::Exclusive);
        if same_file(&file, &tmp) {
            return Ok((file, tmp));
        }
        // A cleaner removed it before the lock was held: start again under a new name.
    }
    Err(Error::io(
        "creating a temporary file",
        Some(path),
        std::io::Error::other("no free temporary name after 8 tries"),
    ))
}

/// Whether `path` names `file` itself (not another file put there since).
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// Renames `from` to `to` unless something (a symbolic link included) is at `to`, atomically:
/// [`AlreadyExists`](crate::ErrorKind::AlreadyExists) naming `to` then.
pub(crate) fn rename_noreplace(from: &Path, to: &Path, what: &str) -> Result<()> {
    crate::sys::rename_noreplace(from, to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            what: format!("{what} {}", to.display()),
        },
        _ => Error::io(format!("renaming the {what} into place"), Some(to), e),
    })
}

/// A file being written under an unpredictable temporary name (see the module docs),
/// published at `path` by [`commit`](AtomicFile::commit): until then a crash leaves `path` as
/// it was. Dropping it uncommitted removes the temporary file; a temporary file a crash left
/// is removed by the next `AtomicFile` of the same path.
///
/// Publication never follows a symbolic link at `path`: when replacing, the rename replaces
/// the link itself (its target is untouched); otherwise anything at `path`, a link included,
/// is [`AlreadyExists`](crate::ErrorKind::AlreadyExists), checked atomically by the rename
/// (`renameat2(RENAME_NOREPLACE)`, or link and unlink where that is missing).
pub(crate) struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
    replace: bool,
}

impl AtomicFile {
    /// Starts writing `path`; `replace` allows an existing file there to be replaced, else
    /// [`AlreadyExists`](crate::ErrorKind::AlreadyExists) (now, and again at publication if
    /// one appeared meanwhile).
    pub fn create(path: &Path, replace: bool) -> Result<AtomicFile> {
        if !replace && fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("{}", path.display()),
            });
        }
        AtomicFile::start(path, replace)
    }

    /// As [`create`](Self::create) without replacing, but a file already at `path` is refused
    /// only when publishing (for a writer that then compares the two).
    pub fn create_checked_at_commit(path: &Path) -> Result<AtomicFile> {
        AtomicFile::start(path, false)
    }

    /// As [`create`](Self::create), for a directory whose leftovers its owner removes (the
    /// vault's open): without the scan for this name's stale temporary files, which lists the
    /// whole directory at every file (a vault's packs and point directories hold thousands).
    pub fn create_unscanned(path: &Path, replace: bool) -> Result<AtomicFile> {
        if !replace && fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("{}", path.display()),
            });
        }
        AtomicFile::begin(path, replace)
    }

    fn start(path: &Path, replace: bool) -> Result<AtomicFile> {
        remove_stale_temps(path);
        AtomicFile::begin(path, replace)
    }

    fn begin(path: &Path, replace: bool) -> Result<AtomicFile> {
        let (file, tmp) = create_temp(path)?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            path: path.to_path_buf(),
            replace,
        })
    }

    /// The file being written (to start its write-back early, see [`crate::sys`]).
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("not committed")
    }

    /// Where the file appears once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data, renames it into place and syncs the directory.
    pub fn commit(self) -> Result<()> {
        self.commit_keep().map(drop)
    }

    /// As [`commit`](Self::commit), returning the file (open for reading and writing).
    pub fn commit_keep(mut self) -> Result<File> {
        let file = self.file.take().expect("committed once");
        let unpublished = |e| {
            let _ = fs::remove_file(&self.tmp);
            e
        };
        fault::check(&self.tmp)
            .and_then(|()| file.sync_all())
            .map_err(|e| unpublished(Error::io("syncing", Some(&self.tmp), e)))?;
        fault::check(&self.path)
            .map_err(|e| unpublished(Error::io("renaming into place", Some(&self.path), e)))?;
        if self.replace {
            fs::rename(&self.tmp, &self.path)
                .map_err(|e| Error::io("renaming into place", Some(&self.path), e))
        } else {
            rename_noreplace(&self.tmp, &self.path, "file")
        }
        .map_err(unpublished)?;
        sync_dir(parent_dir(&self.path))?;
        Ok(file)
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

/// As [`write_atomic`], in a directory whose leftovers its owner removes (see
/// [`AtomicFile::create_unscanned`]).
pub(crate) fn write_atomic_unscanned(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let mut f = AtomicFile::create_unscanned(path, replace)?;
    f.write_all(bytes)
        .map_err(|e| Error::io("writing", Some(&f.tmp), e))?;
    f.commit()
}

/// A new output file of the caller's (a signature, a delta, any file a host writes through
/// this crate), created as the crate creates its own: under an unpredictable temporary name,
/// exclusively, without following links, mode 0600 whatever the umask, and published at its
/// path only by [`commit`](OutputFile::commit) (synced, renamed, the directory synced).
/// Without `replace`, an existing file or link at the path is
/// [`AlreadyExists`](crate::ErrorKind::AlreadyExists), checked again atomically when the file
/// is published; with it, the rename replaces what is there (a link itself, never its
/// target). Dropped uncommitted, nothing is left behind.
///
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("report.txt");
/// let mut out = replicore::OutputFile::create(&path, false)?;
/// out.write_all(b"done")?;
/// out.commit()?;
/// let again = replicore::OutputFile::create(&path, false);
/// assert_eq!(again.err().map(|e| e.kind()), Some(replicore::ErrorKind::AlreadyExists));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OutputFile(AtomicFile);

impl OutputFile {
    /// Starts writing `path`; `replace` allows an existing file there to be replaced.
    pub fn create(path: impl AsRef<Path>, replace: bool) -> Result<OutputFile> {
        AtomicFile::create(path.as_ref(), replace).map(OutputFile)
    }

    /// Where the file will be published.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Syncs the data and publishes the file at its path.
    pub fn commit(self) -> Result<()> {
        self.0.commit()
    }
}

impl std::fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFile")
            .field("path", &self.0.path)
            .finish_non_exhaustive()
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
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
            format!("{} bytes; the largest is {max} bytes", meta.len()),
        )
        .with_path(path));
    }
    fs::read(path).map_err(|e| Error::io(format!("reading the {what}"), Some(path), e))
}

/// The paths of the entries of `dir`.
/// Opens `path` for reading only if it is a regular file (a symbolic link is followed): a FIFO,
/// a device or a directory named like a vault file is [`Corrupt`](crate::ErrorKind::Corrupt)
/// `what`, and opening never waits (for a FIFO's writer). Gives the file and its length.
pub(crate) fn open_regular(path: &Path, what: &str) -> Result<(File, u64)> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(crate::sys::O_NONBLOCK);
    }
    let f = o.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: format!("{what} {}", path.display()),
        },
        _ => Error::io("opening", Some(path), e),
    })?;
    let m = f
        .metadata()
        .map_err(|e| Error::io("reading the size of", Some(path), e))?;
    if !m.is_file() {
        return Err(Error::corrupt(what, None, "not a regular file").with_path(path));
    }
    Ok((f, m.len()))
}

pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io("listing", Some(dir), e))? {
        out.push(e.map_err(|e| Error::io("listing", Some(dir), e))?.path());
    }
    Ok(out)
}

/// The file name a failover writes disk `disk` to: its [`safe_stem`] (with a leading dot made
/// `_.`, so that "." and ".." never become directory entries) and `.img`. Two disks of one
/// group must not share it: seed refuses such names.
pub(crate) fn image_name(disk: &str) -> String {
    let safe = safe_stem(disk);
    let safe = if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    format!("{safe}.img")
}

/// Refuses disk names that a failover would write to one file name ("a b" and "a_b").
pub(crate) fn check_image_names<'a>(disks: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for d in disks {
        let n = image_name(d);
        if let Some((_, other)) = seen.iter().find(|(m, _)| *m == n) {
            return Err(Error::invalid_argument(
                "disks",
                format!(
                    "disks `{other}` and `{d}` would both be failed over to the file {n}: give \
                     them names that differ in ASCII letters, digits, '.', '_' or '-'"
                ),
            ));
        }
        seen.push((n, d));
    }
    Ok(())
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
