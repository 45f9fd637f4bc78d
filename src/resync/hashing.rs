//! Hashing the chunks of an image: plain or keyed BLAKE3, all-zero chunks recognised without
//! hashing, batches hashed in parallel and pipelined with what consumes them.

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::Progress;
use crate::crypto::{Key, KeyId};
use crate::error::{Error, Result};

/// Subkey context of keyed chunk hashes (`docs/FORMAT.md` §11).
pub(crate) const CTX_CHUNK_HASH: &str = "replicore 2026-12-01 resync chunk hash v1";

/// The hash stored for a chunk that is all zeros (its BLAKE3 is never computed).
pub(crate) const ZERO_HASH: [u8; 32] = [0; 32];

/// Bytes hashed between two progress reports (and the batch of chunks hashed in parallel).
pub(crate) const BATCH_BYTES: usize = 64 << 20;

/// Whether `b` is all zeros; stops at the first 4 KiB block that is not.
pub(crate) fn is_zero(b: &[u8]) -> bool {
    b.chunks(4096)
        .all(|blk| blk.iter().fold(0u8, |acc, &x| acc | x) == 0)
}

/// How the chunks of a signature are hashed: plain BLAKE3, or BLAKE3 keyed by the group key's
/// chunk-hash subkey (so that a hash tells nothing about the data to whoever lacks the key).
#[derive(Clone)]
pub(crate) enum ChunkHasher {
    Plain,
    Keyed {
        key_id: KeyId,
        key: Zeroizing<[u8; 32]>,
    },
}

impl ChunkHasher {
    /// Keyed by `key`'s chunk-hash subkey.
    pub fn keyed(key: &Key) -> ChunkHasher {
        ChunkHasher::Keyed {
            key_id: key.id(),
            key: key.subkey(CTX_CHUNK_HASH),
        }
    }

    /// Plain, or keyed by `key`.
    pub fn new(key: Option<&Key>) -> ChunkHasher {
        key.map_or(ChunkHasher::Plain, ChunkHasher::keyed)
    }

    /// The key id of a keyed hasher; None for plain.
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            ChunkHasher::Plain => None,
            ChunkHasher::Keyed { key_id, .. } => Some(*key_id),
        }
    }

    /// The stored hash of one chunk: [`ZERO_HASH`] for zeros, else its (keyed) BLAKE3.
    pub fn chunk(&self, chunk: &[u8]) -> [u8; 32] {
        if is_zero(chunk) {
            return ZERO_HASH;
        }
        match self {
            ChunkHasher::Plain => *blake3::hash(chunk).as_bytes(),
            ChunkHasher::Keyed { key, .. } => *blake3::keyed_hash(key, chunk).as_bytes(),
        }
    }
}

/// Whether the hashes `a` and `b` are equal, compared in constant time.
pub(crate) fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from(*a) == blake3::Hash::from(*b)
}

/// Where the data of an image may be: `(start, end)` → the ranges of that span holding data.
pub(crate) type DataRanges<'a> = &'a dyn Fn(u64, u64) -> Vec<(u64, u64)>;

/// Every byte of an in-memory image may be data.
pub(crate) fn all_data(start: u64, end: u64) -> Vec<(u64, u64)> {
    vec![(start, end)]
}

/// What [`hash_batches`] hashes, and how.
pub(crate) struct Batches<'a> {
    pub bytes: &'a [u8],
    pub data: DataRanges<'a>,
    pub chunk_size: u32,
    pub hasher: &'a ChunkHasher,
    pub parallel: bool,
}

/// Hashes the chunks of `bytes` in batches, in parallel or serially, reporting progress after
/// each batch; `each` receives every batch's first chunk index and hashes, in order. Chunks
/// that `data` says lie wholly in holes get [`ZERO_HASH`] without their pages being touched.
///
/// In parallel, the batches are pipelined: while `each` handles one batch on the caller's
/// thread (writing a target, compressing a delta), the pool hashes the next, so the writes and
/// the hashing overlap. At most two batches' hashes are held.
pub(crate) fn hash_batches(
    b: Batches<'_>,
    progress: Progress<'_>,
    what: &str,
    mut each: impl FnMut(u64, &[[u8; 32]]) -> Result<()>,
) -> Result<()> {
    let Batches {
        bytes,
        data,
        chunk_size,
        hasher,
        parallel,
    } = b;
    let cs = chunk_size as usize;
    let per_batch = (BATCH_BYTES / cs).max(1) * cs;
    let total = bytes.len() as u64;
    let mut first = 0u64;
    // Hands one batch's hashes to `each`, then reports progress.
    let mut deliver = |hashes: &[[u8; 32]], progress: &mut dyn FnMut(u64, u64) -> bool| {
        each(first, hashes)?;
        first += hashes.len() as u64;
        let done = (first * u64::from(chunk_size)).min(total);
        if progress(done, total) {
            Ok(())
        } else {
            Err(Error::Cancelled {
                what: what.to_string(),
            })
        }
    };
    let mut pending: Option<Vec<[u8; 32]>> = None;
    for (b, batch) in bytes.chunks(per_batch).enumerate() {
        let base = (b * per_batch) as u64;
        let ranges = data(base, base + batch.len() as u64);
        if !parallel {
            let hashes = hash_batch(batch, base, cs, &ranges, hasher, false);
            deliver(&hashes, progress)?;
            continue;
        }
        let mut next = None;
        rayon::in_place_scope(|s| {
            s.spawn(|_| next = Some(hash_batch(batch, base, cs, &ranges, hasher, true)));
            match pending.take() {
                Some(prev) => deliver(&prev, progress),
                None => Ok(()),
            }
        })?;
        pending = next;
    }
    match pending {
        Some(last) => deliver(&last, progress),
        None => Ok(()),
    }
}

/// The hashes of one batch starting at byte `base`; `ranges` are its data ranges.
fn hash_batch(
    batch: &[u8],
    base: u64,
    cs: usize,
    ranges: &[(u64, u64)],
    hasher: &ChunkHasher,
    parallel: bool,
) -> Vec<[u8; 32]> {
    let hash = |(i, chunk): (usize, &[u8])| {
        let (c0, c1) = (base + (i * cs) as u64, base + (i * cs + chunk.len()) as u64);
        // The first range ending after c0 overlaps the chunk if it starts before c1.
        let k = ranges.partition_point(|&(_, e)| e <= c0);
        match ranges.get(k) {
            Some(&(s, _)) if s < c1 => hasher.chunk(chunk),
            _ => ZERO_HASH,
        }
    };
    if parallel {
        batch.par_chunks(cs).enumerate().map(hash).collect()
    } else {
        batch.chunks(cs).enumerate().map(hash).collect()
    }
}
