//! Small packs combined, without the key: by GC (their live blobs) and right after an ingest
//! (every blob of the small packs the ingesting handle knows), so the vault keeps about one
//! file per 32 MiB stored whatever the number of points, and a new process's ingest lists a
//! packs directory that does not grow with the chain (`docs/SCALE.md`, files per stored byte).
//!
//! # Which packs
//!
//! A pack is small below [`SMALL_PACK`] (half a full pack) of entry bytes. Small packs fall in
//! tiers by size (under 128 KiB, under 2 MiB, under 32 MiB); a tier's packs are combined once it
//! has [`COMBINE_AT`] of them. Sixteen packs of a tier make at least one of the next, so a blob
//! is copied a bounded number of times (a few in the first tier, whose packs may be tiny, then
//! once per tier) and a combine copies at most sixteen small packs' bytes.
//!
//! # After an ingest
//!
//! Combining removes packs, so it runs only under the vault's exclusive lock, taken without
//! waiting once the ingest has let its locks go: when any other operation is at work in the
//! vault (another ingest, a failover, verify), it is left for a later ingest. Under that lock
//! it checks that the sorted blob index the handle holds is still the vault's (no GC, no other
//! ingest's refresh since), so that index names none of the packs to combine (they are those
//! the handle read because it names them not), and that each of them is still there (another
//! handle's combine removes packs without changing the sorted index). The protocol is GC's,
//! without the sorted index: the new packs published (pack, then index), then the old indexes
//! removed and the directory synced, then the old packs. The new packs are not named by the
//! sorted index either, so a new handle reads their indexes and may combine them again. An
//! ingest's refresh of the sorted index checks, under the shared lock, that each pack it names
//! is there, so it never names a combined pack. A crash leaves the old packs, or old and new
//! side by side (a blob stored twice: the next GC keeps one copy), or a pack without an index
//! (a leftover). Each blob is read back against its recorded hash before its pack goes; a pack
//! with a damaged blob stays as it is (verify reports it).

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;

use super::layout::{Layout, PackId};
use super::pack::{
    ClosedPack, ENTRY_LEN, IndexEntry, PACK_TARGET, PackIndex, PackWriter, read_stored,
};
use super::sorted_index::SortedIndex;
use super::{BlobIndex, Vault};
use crate::error::{ErrorKind, Result};
use crate::format::header::PREAMBLE_LEN;
use crate::format::trailer::TRAILER_LEN;
use crate::fsutil::{remove, sync_dir};
use crate::id::BlobId;
use crate::sys::LockMode;

/// A pack holding fewer entry bytes than this is small.
pub(super) const SMALL_PACK: u64 = PACK_TARGET / 2;
/// The small packs' tiers: entry bytes under each bound (the last is [`SMALL_PACK`]).
const TIERS: [u64; 3] = [128 << 10, 2 << 20, SMALL_PACK];
/// A tier's packs are combined once it holds this many.
pub(super) const COMBINE_AT: usize = 16;

/// Entry bytes of a pack: its length without preamble and trailer.
pub(super) fn entry_bytes(pack_len: u64) -> u64 {
    pack_len.saturating_sub((PREAMBLE_LEN + TRAILER_LEN) as u64)
}

/// Which packs to combine, given each one's bytes (entry bytes, or live bytes for GC): every
/// small pack of every tier that holds at least `at` of them. Indexes into `sizes`, in order.
pub(super) fn pick(sizes: &[u64], at: usize) -> Vec<usize> {
    let tier = |s: u64| TIERS.iter().position(|&b| s < b);
    let mut per = [0usize; TIERS.len()];
    for t in sizes.iter().filter_map(|&s| tier(s)) {
        per[t] += 1;
    }
    (0..sizes.len())
        .filter(|&i| tier(sizes[i]).is_some_and(|t| per[t] >= at.max(2)))
        .collect()
}

/// Copies blobs, still sealed, out of packs into new ones, each checked against its recorded
/// hash on the way; a new pack is closed once full. Nothing is published before
/// [`publish`](Self::publish).
pub(super) struct Copier<'a> {
    layout: &'a Layout,
    out: Option<PackWriter>,
    written: Vec<ClosedPack>,
}

impl<'a> Copier<'a> {
    pub fn new(layout: &'a Layout) -> Self {
        Copier {
            layout,
            out: None,
            written: Vec::new(),
        }
    }

    /// Copies `entries` of `pack` (each read and checked first: one pack's blobs in memory at
    /// a time). False, with nothing copied, when one of them is damaged: the pack must stay.
    /// `copied` is called with each entry's bytes as it is written.
    pub fn copy(
        &mut self,
        pack: &PackId,
        entries: &[IndexEntry],
        mut copied: impl FnMut(u64) -> Result<()>,
    ) -> Result<bool> {
        let path = self.layout.pack(pack);
        let f = File::open(&path)
            .map_err(|e| crate::error::Error::io("opening a pack", Some(&path), e))?;
        let mut blobs = Vec::with_capacity(entries.len());
        for e in entries {
            match read_stored(&f, &path, e, true) {
                Ok(b) => blobs.push(b),
                Err(err) if err.kind() == ErrorKind::Corrupt => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        for (e, b) in entries.iter().zip(blobs) {
            let w = match self.out.as_mut() {
                Some(w) => w,
                None => self.out.insert(PackWriter::create(self.layout)?),
            };
            w.add(&e.id, &b, e.hash)?;
            // A full pack is closed at once: its write buffer freed.
            if w.len() >= PACK_TARGET
                && let Some(w) = self.out.take()
            {
                self.written.push(w.close()?);
            }
            copied(ENTRY_LEN as u64 + u64::from(e.len))?;
        }
        Ok(true)
    }

    /// Publishes the new packs (each pack, then its index).
    pub fn publish(mut self) -> Result<Vec<PackIndex>> {
        if let Some(w) = self.out.take() {
            self.written.push(w.close()?);
        }
        self.written
            .into_iter()
            .map(|w| w.publish(self.layout))
            .collect()
    }
}

/// Removes packs: their indexes first (a pack without an index is a leftover), the directory
/// synced, then the packs.
pub(super) fn remove_packs(layout: &Layout, ids: &[PackId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for id in ids {
        remove(&layout.pack_index(id), "a pack index")?;
    }
    sync_dir(&layout.packs())?;
    for id in ids {
        remove(&layout.pack(id), "a pack")?;
    }
    sync_dir(&layout.packs())
}

impl Vault {
    /// After an ingest committed and let its locks go: combines the small packs this handle
    /// knows, when a tier of them is full (see the module docs of `vault::combine`). Returns
    /// how many packs were combined (0 when there was nothing to do, or the vault was busy, or
    /// the handle's snapshot was no longer the vault's: then it is let go). An error leaves
    /// the vault sound (the point is committed; the next ingest tries again).
    pub(super) fn combine_small(&self) -> Result<u64> {
        let snapshot = Arc::clone(&self.index.lock().unwrap_or_else(|e| e.into_inner()));
        let small: Vec<&PackIndex> = snapshot
            .packs
            .values()
            .map(|p| &**p)
            .filter(|p| entry_bytes(p.pack_len) < SMALL_PACK)
            .collect();
        let sizes: Vec<u64> = small.iter().map(|p| entry_bytes(p.pack_len)).collect();
        let picked: Vec<&PackIndex> = pick(&sizes, self.combine_at)
            .into_iter()
            .map(|i| small[i])
            .collect();
        if picked.is_empty() {
            return Ok(0);
        }
        // Busy (another operation, or this handle's on another thread): a later ingest will.
        let Ok(_lock) = self.lock(LockMode::Exclusive) else {
            return Ok(0);
        };
        // The picked packs must be none the vault's sorted index names (it is the one the
        // snapshot holds, which names none of them) and still there (another handle's combine
        // may have removed them). Under the lock, they stay.
        if !SortedIndex::is_current(snapshot.sorted.as_deref(), &self.layout)
            || picked
                .iter()
                .any(|p| !self.layout.pack_index(&p.pack).exists())
        {
            self.forget_index();
            return Ok(0);
        }
        let mut copier = Copier::new(&self.layout);
        let mut held: HashSet<(BlobId, [u8; 32])> = HashSet::new();
        let mut combined: Vec<PackId> = Vec::new();
        for p in picked {
            // A blob already copied from another of these packs is not copied twice; one in a
            // pack left because it was damaged is (only copied packs' blobs count).
            let entries: Vec<IndexEntry> = p
                .entries
                .iter()
                .filter(|e| !held.contains(&(e.id, e.hash)))
                .copied()
                .collect();
            if copier.copy(&p.pack, &entries, |_| Ok(()))? {
                held.extend(p.entries.iter().map(|e| (e.id, e.hash)));
                combined.push(p.pack);
            }
        }
        drop(held);
        let new = copier.publish()?;
        // The new packs are not in the sorted index either: a new handle reads their indexes
        // (so it may combine them again, a tier up), as it read the old ones'.
        remove_packs(&self.layout, &combined)?;
        let going: HashSet<&PackId> = combined.iter().collect();
        let mut fresh = BlobIndex {
            listed: true,
            sorted: snapshot.sorted.clone(),
            ..BlobIndex::default()
        };
        for p in snapshot.packs.values().filter(|p| !going.contains(&p.pack)) {
            fresh.add(Arc::clone(p));
        }
        for p in new {
            fresh.add(Arc::new(p));
        }
        drop(going);
        *self.index.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(combined.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tier_is_picked_once_it_is_full_and_nothing_else() {
        let kib = 1u64 << 10;
        // Fifteen tiny packs, sixteen middling ones, three large small ones, a full one.
        let mut sizes = vec![4 * kib; 15];
        sizes.extend([500 * kib; 16]);
        sizes.extend([20 << 20; 3]);
        sizes.push(PACK_TARGET);
        assert_eq!(pick(&sizes, 16), (15..31).collect::<Vec<_>>());
        assert_eq!(pick(&sizes, 17), Vec::<usize>::new());
        // Sixteen of the first tier combine into at least one pack of the next, whatever their
        // size in it: a blob climbs a tier each time, except in the first.
        assert!(16 * TIERS[0] >= TIERS[1] && 16 * TIERS[1] >= TIERS[2]);
        // A threshold under two would combine a lone pack into itself, forever.
        assert_eq!(pick(&[kib], 1), Vec::<usize>::new());
        assert_eq!(pick(&[kib, kib], 1), vec![0, 1]);
    }
}
