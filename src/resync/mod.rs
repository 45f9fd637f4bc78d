//! Fixed-chunk resynchronization and failback: signatures, deltas, apply.
//!
//! When delta replication cannot continue (the change log reached its resync threshold, tracking
//! was lost, the chain broke), the two copies of a disk are compared chunk by chunk:
//!
//! 1. the side holding the stale copy (the *target*) computes its [`Signature`]: one BLAKE3
//!    hash per fixed chunk, all-zero chunks flagged without hashing;
//! 2. the side holding the current copy (the *source*) computes a [`Delta`] against it: the
//!    chunks whose hashes differ, as data or as zeros, streamed to a writer;
//! 3. the target applies the delta: every chunk it overwrites checked against the target's
//!    signature first, then positioned writes, zero chunks punched out as holes, every written
//!    chunk checked against the source's hash, the final size set. Applying is idempotent:
//!    after a crash mid-apply, applying the same delta again converges.
//!
//! **Failback** is the same operation with the roles swapped: after a failover, the recovery
//! site's disk is the source and the original primary's disk the target, so only the chunks
//! that changed since are sent back.
//!
//! [`resync`] does all three for two local paths without writing a delta file.
//!
//! **Sealed artefacts.** Signatures and deltas that travel between sites are made with the
//! group's [`Key`](crate::crypto::Key) ([`Signature::compute_keyed`],
//! [`Signature::to_writer_sealed`], [`Delta::compute_sealed`], [`Delta::apply_sealed`]): the
//! chunk hashes are keyed BLAKE3 (a hash tells nothing about the data without the key) and the
//! files are encrypted and authenticated with AES-256-GCM in 1 MiB frames. Plain files (flagged
//! in their header) remain for copies that never leave the host. Either way a delta carries, for
//! every chunk it writes, the target's hash of that chunk, and apply reads and checks every such
//! chunk of the target before writing any: a delta meant for another image, or an older copy,
//! is refused with the target untouched (`docs/FORMAT.md` §9, §10).
//!
//! Images are read through a memory map and hashed in parallel with rayon; memory stays bounded
//! (the signature's 32 bytes per chunk aside), whatever the disk's size.

#[allow(unsafe_code)] // fallocate: see apply.rs
mod apply;
mod delta;
mod delta_read;
pub mod disk_sig;
mod hashing;
#[allow(unsafe_code)] // the memory map: see image.rs
pub(crate) mod image;
mod local;
pub mod point_sig;
mod seal;
mod sealing;
pub(crate) mod signature;
mod target;

pub use apply::ApplyStats;
pub(crate) use apply::{is_block_device, punch_hole};
pub use delta::{Delta, DeltaStats};
pub use signature::{Signature, SignatureReader};

use std::path::Path;

use crate::error::{Error, Result};

/// A progress callback: `(done, total)` in bytes; return `false` to cancel the operation, which
/// then fails with [`Cancelled`](crate::ErrorKind::Cancelled). Called on the caller's thread.
/// Seed, ship, ingest, verify, GC, materialize and failover call it with `(0, total)` before
/// their work and with `(total, total)` once it is done (a cancellation there is honoured only
/// where nothing is committed yet: failover's images are not published); what each counts is
/// in its documentation (failover: the disks' bytes, reported at least every 8 MiB).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

/// The default chunk size: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;
/// The smallest chunk size: 4 KiB.
pub const MIN_CHUNK_SIZE: u32 = 4 << 10;
/// The largest chunk size: 8 MiB.
pub const MAX_CHUNK_SIZE: u32 = 8 << 20;

pub(crate) fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if chunk_size.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "chunk_size",
            bad_chunk_size(chunk_size),
        ))
    }
}

/// What is wrong with a chunk size [`check_chunk_size`] refuses.
pub(crate) fn bad_chunk_size(chunk_size: u32) -> String {
    format!(
        "{} is not a power of two from {} to {}",
        crate::format::bytes(u64::from(chunk_size)),
        crate::format::bytes(u64::from(MIN_CHUNK_SIZE)),
        crate::format::bytes(u64::from(MAX_CHUNK_SIZE))
    )
}

/// Chunks covering `disk_size` bytes.
pub(crate) fn chunk_count(disk_size: u64, chunk_size: u32) -> u64 {
    disk_size.div_ceil(u64::from(chunk_size))
}

/// Length of chunk `index` of a `disk_size`-byte image (the last may be short).
pub(crate) fn chunk_len(disk_size: u64, chunk_size: u32, index: u64) -> u64 {
    let start = index.saturating_mul(u64::from(chunk_size));
    disk_size.saturating_sub(start).min(u64::from(chunk_size))
}

/// What [`resync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResyncStats {
    /// Chunks compared.
    pub chunks: u64,
    /// Chunks whose data was copied.
    pub data_chunks: u64,
    /// Chunks zeroed (punched out).
    pub zero_chunks: u64,
    /// Bytes of data copied.
    pub data_bytes: u64,
}

/// Makes `target` byte-identical to `source` (two local paths), copying only the chunks that
/// differ: the target's signature, the source's hashes and the copy, without a delta file. A
/// missing target is created. Progress counts the bytes of both images hashed.
///
/// Failback is this call with the roles swapped.
pub fn resync(
    source: impl AsRef<Path>,
    target: impl AsRef<Path>,
    chunk_size: u32,
    progress: Progress<'_>,
) -> Result<ResyncStats> {
    let (source, target) = (source.as_ref(), target.as_ref());
    check_chunk_size(chunk_size)?;
    let src = image::Image::open(source)?;
    // The applier opens (or creates) the target first: it refuses what must not be written
    // (a symbolic link to a file, a directory); then the target is read through its own map,
    // dropped before the applier sets the final size (a map must not outlive a truncation).
    let mut applier = apply::Applier::open(target, chunk_size, src.bytes().len() as u64, 0, true)?;
    let old = image::Image::open(target)?;
    let total = src.bytes().len() as u64 * 2;
    let stats = local::run(&src, Some(&old), &mut applier, chunk_size, total, progress);
    drop(old);
    let stats = stats?;
    applier.finish()?;
    Ok(stats)
}
