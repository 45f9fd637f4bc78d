//! Where a vault keeps what (`docs/FORMAT.md` §15), its format file, and its locks.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::trailer::{TRAILER_LEN, verify_slice};
use crate::format::{Reader, Writer};
use crate::fsutil::{create_private_dir, read_small, sync_dir, write_atomic};
use crate::sys::{LockMode, try_lock};

/// Major version of the vault layout and of its files.
pub const VERSION_MAJOR: u16 = 2;
/// Minor version written.
pub const VERSION_MINOR: u16 = 0;

/// The format file at the vault's root.
pub(crate) const FORMAT_FILE: &str = "replicore-vault";
const LOCK_FILE: &str = "lock";
/// The name of a group's in-progress marker in its points directory.
pub(crate) const PENDING: &str = "in-progress";
const FORMAT_FILE_LEN: usize = 16 + 16 + 8 + TRAILER_LEN;

/// Paths inside a vault.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn packs(&self) -> PathBuf {
        self.root.join("packs")
    }

    pub fn pack(&self, id: &PackId) -> PathBuf {
        self.packs().join(format!("{}.rcpack", id.to_hex()))
    }

    pub fn pack_index(&self, id: &PackId) -> PathBuf {
        self.packs().join(format!("{}.rcidx", id.to_hex()))
    }

    /// Every pack that has an index (a pack exists for readers only then), sorted.
    pub fn pack_ids(&self) -> Result<Vec<PackId>> {
        let mut ids: Vec<PackId> = crate::fsutil::list_dir(&self.packs())?
            .iter()
            .filter_map(|p| {
                p.file_name()?
                    .to_str()?
                    .strip_suffix(".rcidx")
                    .and_then(PackId::from_hex)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn points(&self, group: &str) -> PathBuf {
        self.root.join("points").join(group_dir(group))
    }

    pub fn head(&self, group: &str) -> PathBuf {
        self.root
            .join("heads")
            .join(format!("{}.rchead", group_dir(group)))
    }

    pub fn heads(&self) -> PathBuf {
        self.root.join("heads")
    }

    /// The directory of a group's pins (created when the first point is pinned).
    pub fn pins(&self, group: &str) -> PathBuf {
        self.root.join("pins").join(group_dir(group))
    }

    /// The group's pinned verifying key (`docs/FORMAT.md` §15.8).
    pub fn trust(&self, group: &str) -> PathBuf {
        self.root
            .join("trust")
            .join(format!("{}.rctrust", group_dir(group)))
    }

    /// The marker of an operation in progress on a group's point files (§15.7): while it
    /// exists, point files the head does not reach are leftovers.
    pub fn pending(&self, group: &str) -> PathBuf {
        self.points(group).join(PENDING)
    }

    pub fn group_lock(&self, group: &str) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("{}.lock", group_dir(group)))
    }

    /// Every directory a vault has.
    fn dirs(&self) -> [PathBuf; 5] {
        [
            self.packs(),
            self.root.join("points"),
            self.heads(),
            self.root.join("locks"),
            self.root.clone(),
        ]
    }
}

/// A pack's name: 16 random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub [u8; 16]);

impl PackId {
    pub(crate) fn random() -> Result<PackId> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| {
            Error::io(
                "drawing a pack id",
                None,
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(PackId(b))
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`to_hex`](Self::to_hex)'s form.
    pub(crate) fn from_hex(s: &str) -> Option<PackId> {
        if s.len() != 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(PackId(b))
    }
}

/// A group's directory and file stem: its name with characters other than letters, digits,
/// `.`, `_` and `-` replaced by `_`, then `-` and 16 hex digits of the BLAKE3 of the name, so
/// that two names that read alike never share files.
pub(crate) fn group_dir(group: &str) -> String {
    let safe = crate::fsutil::safe_stem(group);
    let h = blake3::hash(group.as_bytes()).to_hex();
    format!("{safe}-{}", &h[..16])
}

/// Creates the directories and the format file of a new vault in `root` (created if missing,
/// else empty). New directories are 0700, files 0600 (see `crate::fsutil`).
pub(crate) fn create(layout: &Layout) -> Result<()> {
    let root = layout.root();
    if root.join(FORMAT_FILE).exists() {
        return Err(Error::AlreadyExists {
            what: format!("vault {}", root.display()),
        });
    }
    create_private_dir(root).map_err(|e| Error::io("creating the vault", Some(root), e))?;
    if fs::read_dir(root)
        .map_err(|e| Error::io("listing", Some(root), e))?
        .next()
        .is_some()
    {
        return Err(Error::invalid_argument(
            "dir",
            format!(
                "{} is not empty: a vault is created in a new or empty directory",
                root.display()
            ),
        ));
    }
    for d in layout.dirs() {
        create_private_dir(&d).map_err(|e| Error::io("creating", Some(&d), e))?;
    }
    let mut w = Writer::with_capacity(FORMAT_FILE_LEN);
    Preamble::new(FileKind::Vault, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
    w.bytes(&PackId::random()?.0).u64(now_ns());
    let mut bytes = w.into_bytes();
    let h = blake3::hash(&bytes);
    bytes.extend_from_slice(h.as_bytes());
    write_atomic(&root.join(FORMAT_FILE), &bytes, false)?;
    sync_dir(root)
}

/// Checks the format file of an existing vault.
pub(crate) fn check(layout: &Layout) -> Result<()> {
    let path = layout.root().join(FORMAT_FILE);
    if !layout.root().is_dir() || !path.exists() {
        return Err(Error::NotFound {
            what: format!("vault {} (no {FORMAT_FILE} file)", layout.root().display()),
        });
    }
    let bytes = read_small(&path, "vault format file", FORMAT_FILE_LEN)?;
    let body = verify_slice(&bytes, "vault format file").map_err(|e| e.with_path(&path))?;
    let mut r = Reader::new(body, 0, "vault format file");
    Preamble::decode(&mut r, FileKind::Vault, VERSION_MAJOR).map_err(|e| e.with_path(&path))?;
    r.bytes("vault id", 16)?;
    r.u64("created")?;
    r.finish().map_err(|e| e.with_path(&path))
}

/// A held advisory lock; released on drop. Lock files are created 0600 and never opened
/// through a symbolic link (see [`crate::fsutil::open_lock_file`]).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Takes the vault's lock (`mode`), or the lock file `path` for a narrower one, without waiting:
/// [`Locked`](crate::ErrorKind::Locked) when another user holds a conflicting lock.
pub(crate) fn lock(path: &Path, mode: LockMode, what: &str) -> Result<Lock> {
    let file = crate::fsutil::open_lock_file(path)
        .map_err(|e| Error::io("opening the lock file", Some(path), e))?;
    if try_lock(&file, mode).map_err(|e| Error::io("locking", Some(path), e))? {
        Ok(Lock { _file: file })
    } else {
        Err(Error::Locked { what: what.into() })
    }
}

/// The vault-wide lock of the vault at `layout`.
pub(crate) fn lock_vault(layout: &Layout, mode: LockMode) -> Result<Lock> {
    lock(
        &layout.root().join(LOCK_FILE),
        mode,
        &format!("vault {}", layout.root().display()),
    )
}

/// Nanoseconds since the Unix epoch (0 for a clock before it).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
