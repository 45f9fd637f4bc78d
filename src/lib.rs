//! # replicore
//!
//! The core of a disaster-recovery replication system for virtual machine disks, in the spirit
//! of Hyper-V Replica and Azure Site Recovery: guest writes tracked in a crash-safe change log,
//! shipped as compressed and encrypted bundles, kept as recovery-point chains on a recovery site,
//! pruned by retention policy, resynchronized by fixed-chunk checksums and materialized for
//! failover and failback. replicore does no networking: it produces and consumes files, and the
//! host moves them.
//!
//! The pieces, bottom to top:
//!
//! - [`Error`] and its stable [`ErrorKind`], which the C ABI maps to status codes;
//! - [`format`](mod@format): magic and version preambles, checked little-endian codecs with hard
//!   caps, and the BLAKE3 trailer, as specified in `docs/FORMAT.md`;
//! - [`ExtentMap`]: which bytes of a disk come from which blob, with "newer wins" insertion,
//!   overlay and chain folding, the operation a recovery point's materialization is built on;
//! - [`log`]: the crash-safe change log of guest writes, trims and markers;
//! - [`crypto`] and [`blob`]: key files, derived keys, sealed and deduplicated blobs;
//! - [`bundle`]: seeding disk images and shipping sealed logs as encrypted bundles;
//! - [`vault`]: the recovery site's store: ingest, points, failover, verify, and retention
//!   (prune and garbage collection) without the key;
//! - [`resync`]: fixed-chunk signatures, deltas and apply, for resync and failback;
//! - [`policy`]: replication and retention policies, the retention plan, retry back-off, the
//!   protection state machine.
//!
//! ## Example: fold a chain of recovery points
//!
//! ```
//! use replicore::{BlobId, ExtentMap, Piece, Source};
//!
//! const MIB: u64 = 1 << 20;
//! // The base point wrote the whole 4 MiB disk from one blob.
//! let mut base = ExtentMap::new(4 * MIB)?;
//! base.insert(0, 4 * MIB, Source::Blob { id: BlobId([1; 32]), offset: 0 })?;
//! // The next point rewrote one MiB and trimmed another.
//! let mut next = ExtentMap::new(4 * MIB)?;
//! next.insert(MIB, MIB, Source::Blob { id: BlobId([2; 32]), offset: 0 })?;
//! next.insert(3 * MIB, MIB, Source::Zero)?;
//!
//! let disk = ExtentMap::fold([&base, &next])?;
//! let sources: Vec<_> = disk.pieces().map(|p| match p {
//!     Piece::Mapped(e) => (e.start / MIB, e.source),
//!     Piece::Gap { start, .. } => (start / MIB, Source::Zero),
//! }).collect();
//! assert_eq!(sources, [
//!     (0, Source::Blob { id: BlobId([1; 32]), offset: 0 }),
//!     (1, Source::Blob { id: BlobId([2; 32]), offset: 0 }),
//!     (2, Source::Blob { id: BlobId([1; 32]), offset: 2 * MIB }),
//!     (3, Source::Zero),
//! ]);
//! # Ok::<(), replicore::Error>(())
//! ```
//!
//! ## Conventions
//!
//! - Every on-disk format is specified byte by byte in `docs/FORMAT.md`; all integers are
//!   little-endian; readers refuse another major version rather than guess.
//! - Bad input is an [`Error`], never a panic: decoders check every length against a hard cap
//!   before allocating and use checked arithmetic on every untrusted number.
//! - Every file the crate creates is new and private: created exclusively under an
//!   unpredictable temporary name, never through a symbolic link, mode 0600 whatever the umask,
//!   and renamed into place once synced; an existing output is replaced only when the caller
//!   asks. [`OutputFile`] gives a caller's own outputs the same treatment.

#![deny(missing_docs)]
// unsafe only in the few named places that map files or call the OS (each with a SAFETY
// comment): src/resync/image.rs, src/resync/apply.rs and src/sys.rs (sync_file_range, fcntl,
// flock, renameat2).
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod blob;
pub mod bundle;
mod compress;
pub mod crypto;
mod direct;
pub mod error;
pub mod extent;
pub mod format;
mod fsutil;
pub mod id;
pub mod log;
pub mod policy;
pub mod resync;
mod sparse;
#[allow(unsafe_code)] // sync_file_range, fcntl, flock, renameat2: see sys.rs
mod sys;
pub mod vault;

pub use error::{Error, ErrorKind, Location, Result};
pub use extent::{Extent, ExtentMap, ExtentSource, Piece, Pieces, Source};
pub use fsutil::OutputFile;
pub use id::{BlobId, PointId};

/// The crate version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
