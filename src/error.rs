//! The one error type of the crate.
//!
//! Every fallible call returns [`Result<T>`](crate::Result). An [`Error`] carries what happened
//! and where (field, byte offset, path); [`Error::kind`] gives a stable, field-less
//! [`ErrorKind`] that callers (and the C ABI, which maps each kind to a status code) can match
//! on without parsing messages. Messages end with what to do next.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A specialized `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable classification of an [`Error`].
///
/// New kinds may be added in minor releases (the enum is `#[non_exhaustive]`); an existing kind
/// never changes its meaning. The C ABI maps each kind to a fixed `replicore_status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "ffi-exhaustive"), non_exhaustive)]
pub enum ErrorKind {
    /// The operating system refused a read, write, sync, rename or similar call.
    Io,
    /// Stored or received bytes are damaged or were not written by replicore.
    Corrupt,
    /// A key or passphrase is wrong, or authenticated data was tampered with.
    Authentication,
    /// The caller passed an argument that cannot be honoured.
    InvalidArgument,
    /// A file was written by a format version this build cannot read.
    UnsupportedVersion,
    /// A recovery point does not continue the chain it is meant to extend.
    ChainBroken,
    /// A named thing (file, group, disk, recovery point) does not exist.
    NotFound,
    /// A thing to be created exists already.
    AlreadyExists,
    /// Another user holds a lock that this operation needs.
    Locked,
    /// A progress callback asked the operation to stop.
    Cancelled,
    /// A size or count is beyond a documented limit.
    LimitExceeded,
    /// Delta replication cannot continue; a full resynchronization is needed.
    ResyncRequired,
}

impl ErrorKind {
    /// Every kind, in declaration order (for tables and exhaustive tests).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Io,
        ErrorKind::Corrupt,
        ErrorKind::Authentication,
        ErrorKind::InvalidArgument,
        ErrorKind::UnsupportedVersion,
        ErrorKind::ChainBroken,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Locked,
        ErrorKind::Cancelled,
        ErrorKind::LimitExceeded,
        ErrorKind::ResyncRequired,
    ];

    /// A short, stable, lower-case name (`"corrupt"`, `"invalid argument"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Io => "i/o error",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::UnsupportedVersion => "unsupported format version",
            ErrorKind::ChainBroken => "recovery-point chain broken",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Locked => "locked",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::ResyncRequired => "resynchronization required",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where in stored bytes something was found: an optional file path and an optional byte offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, when known.
    pub path: Option<PathBuf>,
    /// The byte offset from the start of the file or stream, when known.
    pub offset: Option<u64>,
}

impl Location {
    /// A location that is only a byte offset.
    pub fn offset(offset: u64) -> Self {
        Location {
            path: None,
            offset: Some(offset),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.offset) {
            (Some(p), Some(o)) => write!(f, "{} at byte {o}", p.display()),
            (Some(p), None) => write!(f, "{}", p.display()),
            (None, Some(o)) => write!(f, "byte {o}"),
            (None, None) => f.write_str("an unknown place"),
        }
    }
}

/// The error of every fallible replicore call.
///
/// Match on [`Error::kind`] rather than on variants: the variants carry the details and may
/// gain fields, the kinds are stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation.
    #[error("{context}{}: {source}; check the path, permissions and free space, then retry", fmt_path(.path))]
    Io {
        /// What replicore was doing ("writing the change log", ...).
        context: String,
        /// The file involved, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Stored or received bytes are damaged.
    #[error(
        "corrupt {what} in {location}: {detail}; the data is damaged or was not written by \
         replicore: restore it from another copy or resynchronize"
    )]
    Corrupt {
        /// The structure or field that failed to decode.
        what: String,
        /// Where it was found.
        location: Location,
        /// What exactly was wrong.
        detail: String,
    },

    /// Authentication failed.
    #[error(
        "authentication failed for {what}: {detail}; check that the right key or passphrase is used"
    )]
    Authentication {
        /// What could not be authenticated.
        what: String,
        /// Why (wrong key, tampered data, ...).
        detail: String,
    },

    /// An argument cannot be honoured.
    #[error("invalid argument `{argument}`: {detail}")]
    InvalidArgument {
        /// The argument's name.
        argument: String,
        /// What is wrong with it and what is allowed.
        detail: String,
    },

    /// A file of an unsupported format version.
    #[error(
        "unsupported {what} format version {found} (this build reads version {expected}){}; \
         use a replicore release that supports it",
        fmt_path(.path)
    )]
    UnsupportedVersion {
        /// The file type.
        what: String,
        /// The major version this build reads.
        expected: u16,
        /// The major version found.
        found: u16,
        /// The file, when known.
        path: Option<PathBuf>,
    },

    /// A recovery point does not continue the chain.
    #[error("recovery-point chain of group `{group}` is broken: {detail}")]
    ChainBroken {
        /// The group.
        group: String,
        /// What does not fit, and what to do (ingest a missing bundle first, resynchronize).
        detail: String,
    },

    /// Something named does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },

    /// What was asked was done already (kind [`AlreadyExists`](ErrorKind::AlreadyExists)):
    /// nothing to do, nothing changed.
    #[error("{what}: it was done already, nothing changed")]
    AlreadyDone {
        /// What, and what to do instead.
        what: String,
    },

    /// Something to be created exists already.
    #[error("{what} already exists; choose another name or remove it first")]
    AlreadyExists {
        /// What exists.
        what: String,
    },

    /// A lock is held by another user.
    #[error("{what} is locked by another user; retry when that operation has finished")]
    Locked {
        /// What is locked.
        what: String,
    },

    /// A progress callback cancelled the operation.
    #[error("{what} was cancelled by the caller")]
    Cancelled {
        /// The operation.
        what: String,
    },

    /// A documented limit was exceeded.
    #[error(
        "{what} is {}, beyond the limit of {}",
        crate::format::quantity(*.found, .unit),
        crate::format::quantity(*.limit, .unit)
    )]
    LimitExceeded {
        /// What is too large.
        what: String,
        /// The limit.
        limit: u64,
        /// The value found.
        found: u64,
        /// What the numbers count: `"bytes"`, `"records"`, ...
        unit: &'static str,
    },

    /// Delta replication cannot continue.
    #[error(
        "resynchronization required: {reason}; resynchronize the group into its chain (a point \
         signature of its newest point from the vault, `replicore vault signature`, then \
         `replicore resync ship` of the disks from a snapshot)"
    )]
    ResyncRequired {
        /// Why.
        reason: String,
    },
}

fn fmt_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" ({})", p.display()),
        None => String::new(),
    }
}

impl Error {
    /// The stable classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Authentication { .. } => ErrorKind::Authentication,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::ChainBroken { .. } => ErrorKind::ChainBroken,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } | Error::AlreadyDone { .. } => ErrorKind::AlreadyExists,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::ResyncRequired { .. } => ErrorKind::ResyncRequired,
        }
    }

    /// An I/O error with what was being done and the file involved.
    pub fn io(context: impl Into<String>, path: Option<&Path>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// Damaged data: `what` failed to decode at `offset` because of `detail`.
    pub fn corrupt(
        what: impl Into<String>,
        offset: Option<u64>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            what: what.into(),
            location: Location { path: None, offset },
            detail: detail.into(),
        }
    }

    /// An argument that cannot be honoured.
    pub fn invalid_argument(argument: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            argument: argument.into(),
            detail: detail.into(),
        }
    }

    /// A value beyond a documented limit; both numbers count `unit` (`"bytes"`, ...).
    pub fn limit_exceeded(
        what: impl Into<String>,
        limit: u64,
        found: u64,
        unit: &'static str,
    ) -> Self {
        Error::LimitExceeded {
            what: what.into(),
            limit,
            found,
            unit,
        }
    }

    /// Renames the argument an [`InvalidArgument`](Error::InvalidArgument) error names, when it
    /// is `from`: a binding whose users pass the argument under another name (a C parameter, a
    /// command-line flag) reports it under theirs. Other errors are returned unchanged.
    #[must_use]
    pub fn renaming_argument(mut self, from: &str, to: &str) -> Self {
        if let Error::InvalidArgument { argument, .. } = &mut self
            && argument == from
        {
            *argument = to.to_string();
        }
        self
    }

    /// The message without the advice on what to do next, to embed in the detail of another
    /// error (whose own message gives the advice once).
    pub(crate) fn without_advice(&self) -> String {
        match self {
            Error::Corrupt {
                what,
                location,
                detail,
            } => format!("corrupt {what} in {location}: {detail}"),
            Error::Authentication { what, detail } => {
                format!("authentication failed for {what}: {detail}")
            }
            Error::UnsupportedVersion {
                what,
                expected,
                found,
                path,
            } => format!(
                "unsupported {what} format version {found} (this build reads version \
                 {expected}){}",
                fmt_path(path)
            ),
            e => e.to_string(),
        }
    }

    /// Attaches a file path to errors that name a place and do not have one yet, and to the
    /// refusal of a file of another type (argument `file`: "this is a replicore change log,
    /// not a bundle").
    ///
    /// Decoders know byte offsets but not file names; the code that opened the file adds it.
    #[must_use]
    pub fn with_path(mut self, file: &Path) -> Self {
        match &mut self {
            Error::Io { path, .. } | Error::UnsupportedVersion { path, .. } if path.is_none() => {
                *path = Some(file.to_path_buf())
            }
            Error::Corrupt { location, .. } if location.path.is_none() => {
                location.path = Some(file.to_path_buf())
            }
            Error::InvalidArgument { argument, detail } if argument == "file" => {
                let named = file.display().to_string();
                if !detail.starts_with(&named) {
                    *detail = format!("{named}: {detail}");
                }
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_distinct_and_named() {
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn corrupt_message_says_what_where_and_next_step() {
        let e = Error::corrupt("log record header", Some(4096), "CRC mismatch")
            .with_path(Path::new("/var/lib/x.rclog"));
        let msg = e.to_string();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(msg.contains("log record header"), "{msg}");
        assert!(msg.contains("/var/lib/x.rclog at byte 4096"), "{msg}");
        assert!(msg.contains("CRC mismatch"), "{msg}");
        assert!(msg.contains("resynchronize"), "{msg}");
    }

    #[test]
    fn with_path_does_not_overwrite() {
        let e = Error::io("reading", Some(Path::new("/a")), io::Error::other("x"))
            .with_path(Path::new("/b"));
        assert!(e.to_string().contains("(/a)"), "{e}");
    }

    #[test]
    fn limits_carry_their_unit() {
        let e = Error::limit_exceeded("disk size", 64 << 40, (64 << 40) + 1, "bytes");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(
            e.to_string(),
            "disk size is 70368744177665 bytes, beyond the limit of 70368744177664 bytes (64 TiB)"
        );
    }

    #[test]
    fn an_argument_is_renamed_only_when_it_matches() {
        let e = Error::invalid_argument("time", "before the last point")
            .renaming_argument("time", "time_ns")
            .renaming_argument("offset", "x");
        assert_eq!(
            e.to_string(),
            "invalid argument `time_ns`: before the last point"
        );
        let io = Error::io("reading", None, io::Error::other("x")).renaming_argument("time", "y");
        assert_eq!(io.kind(), ErrorKind::Io);
    }

    #[test]
    fn unsupported_version_reports_both_numbers() {
        let e = Error::UnsupportedVersion {
            what: "signature".into(),
            expected: 1,
            found: 7,
            path: None,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("version 7") && msg.contains("version 1"),
            "{msg}"
        );
    }
}
