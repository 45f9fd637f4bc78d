//! Small packs combined, without the key: by GC (their live blobs) and right after an ingest
//! (every blob of the small packs the ingesting handle knows), so the vault keeps about one
//! file per 32 MiB stored whatever the number of points, and a new process's ingest lists a
//! packs directory that does not grow with the chain (`docs/SCALE.md`, files per stored byte).
//!
//! # Which packs
//!
//! A pack is small below [`SMALL_PACK`] (half a full pack) of entry bytes. Small packs fall in
//! tiers by size (under 1 KiB, 16 KiB, 256 KiB, 4 MiB, 32 MiB: each bound at most sixteen times
//! the one before); a tier's packs are combined once it has [`COMBINE_AT`] of them. Sixteen
//! packs of a tier hold at least the next tier's lower bound, so their combination leaves the
//! tier, and the new packs are cut evenly (none small once there is half a pack to copy): a
//! blob is copied at most once per tier, plus a few times in the first (whose packs may be
//! tinier than its bound), unless its copy meets a second copy of itself. GC combines all the
//! small packs once there are two (it runs alone and reports progress), so it leaves at most
//! one; an ingest combines one batch, the
//! smallest tier's smallest packs, sixteen or fewer once they hold a full pack's bytes (those
//! that do not read passed over, their bytes counted all the same: [`take_batch`]), so it
//! reads under 96 MiB twice (checked, then copied), copies as much, and holds the vault's
//! exclusive lock that long.
//!
//! # After an ingest
//!
//! Combining removes packs, so it runs only under the vault's exclusive lock, taken without
//! waiting once the ingest has let its locks go: when any other operation is at work in the
//! vault (another ingest, a failover, verify), it is left for a later ingest; while it runs,
//! another operation gets [`Locked`](crate::ErrorKind::Locked), as during GC. Under that lock
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
//! that does not read (a damaged blob, an I/O error) stays as it is (verify reports it) and the
//! others are combined.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layout::{Layout, PackId};
use super::pack::{
    ClosedPack, ENTRY_LEN, IndexEntry, PACK_TARGET, PackIndex, PackWriter, read_stored,
};
use super::sorted_index::SortedIndex;
use super::{BlobIndex, Vault};
use crate::error::{Error, ErrorKind, Result};
use crate::format::header::PREAMBLE_LEN;
use crate::format::trailer::TRAILER_LEN;
use crate::fsutil::{remove, sync_dir};
use crate::id::BlobId;
use crate::sys::LockMode;

/// A pack holding fewer entry bytes than this is small.
pub(super) const SMALL_PACK: u64 = PACK_TARGET / 2;
/// The small packs' tiers: entry bytes under each bound (the last is [`SMALL_PACK`]). Each
/// bound is at most sixteen times the one before, so sixteen packs of a tier hold at least the
/// next tier's lower bound: combined, they leave the tier.
const TIERS: [u64; 5] = [1 << 10, 16 << 10, 256 << 10, 4 << 20, SMALL_PACK];
/// A tier's packs are combined once it holds this many.
pub(super) const COMBINE_AT: usize = 16;

/// Entry bytes of a pack: its length without preamble and trailer.
pub(super) fn entry_bytes(pack_len: u64) -> u64 {
    pack_len.saturating_sub((PREAMBLE_LEN + TRAILER_LEN) as u64)
}

fn tier(size: u64) -> Option<usize> {
    TIERS.iter().position(|&b| size < b)
}

/// Each tier's small packs (indexes into `sizes`), those of a tier smallest first.
fn tiers(sizes: &[u64]) -> [Vec<usize>; TIERS.len()] {
    let mut per: [Vec<usize>; TIERS.len()] = Default::default();
    for (i, &s) in sizes.iter().enumerate() {
        if let Some(t) = tier(s) {
            per[t].push(i);
        }
    }
    for t in &mut per {
        t.sort_by_key(|&i| sizes[i]);
    }
    per
}

/// The batch an ingest combines, given each pack's entry bytes and whether a pack reads back
/// whole (asked in the order tried): the packs of the smallest tier that holds at least `at`,
/// smallest first, `at` of them, or fewer once they hold a full pack's bytes. One that does
/// not read is passed over and the next takes its place, but its bytes count towards what is
/// tried, which stops at a full pack's: so a combine reads under 96 MiB twice (checked, then
/// copied) and copies as much, and holds the vault's exclusive lock that long, however many
/// packs are bad. (The handle then leaves the bad ones out of its candidates until it lists
/// the packs again, so they cost one try each, not one per ingest.)
pub(super) fn take_batch(
    sizes: &[u64],
    at: usize,
    mut reads: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let at = at.max(2);
    let Some(tier) = tiers(sizes).into_iter().find(|t| t.len() >= at) else {
        return Vec::new();
    };
    let (mut batch, mut bytes, mut tried) = (Vec::new(), 0, 0);
    for i in tier {
        if batch.len() >= at || bytes >= PACK_TARGET || tried >= PACK_TARGET {
            break;
        }
        tried += sizes[i];
        if reads(i) {
            bytes += sizes[i];
            batch.push(i);
        }
    }
    batch
}

/// The batch when every candidate reads.
#[cfg(test)]
fn pick_batch(sizes: &[u64], at: usize) -> Vec<usize> {
    take_batch(sizes, at, |_| true)
}

/// Copies blobs, still sealed, out of packs into new ones, each checked against its recorded
/// hash on the way. The new packs are cut evenly: `total` bytes (those to copy) in as few
/// packs as the target allows, each closed once it holds its share, so they differ by at most
/// one blob (8 MiB): with more than a pack to copy, the last may be small again (and is
/// combined again later). Nothing is published before [`publish`](Self::publish).
pub(super) struct Copier<'a> {
    layout: &'a Layout,
    out: Option<PackWriter>,
    written: Vec<ClosedPack>,
    /// Entry bytes at which a new pack is closed.
    cut: u64,
}

impl<'a> Copier<'a> {
    pub fn new(layout: &'a Layout, total: u64) -> Self {
        let packs = total.div_ceil(PACK_TARGET).max(1);
        Copier {
            layout,
            out: None,
            written: Vec::new(),
            cut: total.div_ceil(packs).max(1),
        }
    }

    /// Reads `entries` of `pack`, each checked against its recorded hash: one pack's blobs in
    /// memory at a time. `None` when one of them is damaged: the pack must stay.
    pub fn read(pack: &File, path: &Path, entries: &[IndexEntry]) -> Result<Option<Vec<Vec<u8>>>> {
        let mut blobs = Vec::with_capacity(entries.len());
        for e in entries {
            match read_stored(pack, path, e, true) {
                Ok(b) => blobs.push(b),
                Err(err) if err.kind() == ErrorKind::Corrupt => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        Ok(Some(blobs))
    }

    /// Writes blobs [`read`](Self::read) returned for `entries`; `copied` is called with each
    /// entry's bytes as it is written.
    pub fn write(
        &mut self,
        entries: &[IndexEntry],
        blobs: Vec<Vec<u8>>,
        mut copied: impl FnMut(u64) -> Result<()>,
    ) -> Result<()> {
        for (e, b) in entries.iter().zip(blobs) {
            let w = match self.out.as_mut() {
                Some(w) => w,
                None => self.out.insert(PackWriter::create(self.layout)?),
            };
            w.add(&e.id, &b, e.hash)?;
            // A full pack is closed at once: its write buffer freed.
            if entry_bytes(w.len()) >= self.cut
                && let Some(w) = self.out.take()
            {
                self.written.push(w.close()?);
            }
            copied(ENTRY_LEN as u64 + u64::from(e.len))?;
        }
        Ok(())
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

/// Opens a pack to copy from.
pub(super) fn open_pack(layout: &Layout, pack: &PackId) -> Result<(File, PathBuf)> {
    let path = layout.pack(pack);
    let f = File::open(&path).map_err(|e| Error::io("opening a pack", Some(&path), e))?;
    Ok((f, path))
}

/// Whether `err` says a file is not there.
fn not_found(err: &Error) -> bool {
    matches!(err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Opens a pack to copy from; `None` when its file is gone (its index left: damage).
pub(super) fn open_existing(layout: &Layout, pack: &PackId) -> Result<Option<(File, PathBuf)>> {
    match open_pack(layout, pack) {
        Ok(opened) => Ok(Some(opened)),
        Err(err) if not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether each of `entries` of `pack` reads back against its recorded hash (one blob in
/// memory at a time): false when one is damaged, or the pack file is gone or shorter; an I/O
/// error is an error.
pub(super) fn reads_back(layout: &Layout, pack: &PackId, entries: &[IndexEntry]) -> Result<bool> {
    let Some((f, path)) = open_existing(layout, pack)? else {
        return Ok(false);
    };
    for e in entries {
        match read_stored(&f, &path, e, true) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::Corrupt => return Ok(false),
            Err(err) => return Err(err),
        }
    }
    Ok(true)
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
        match remove(&layout.pack(id), "a pack") {
            // Already gone (damage GC gave up on): its index is what had to go.
            Err(err) if not_found(&err) => {}
            other => other?,
        }
    }
    sync_dir(&layout.packs())
}

impl Vault {
    /// After an ingest committed and let its locks go: combines one batch of the small packs
    /// this handle knows, when a tier of them is full (see the module docs of
    /// `vault::combine`). Returns how many packs were combined (0 when there was nothing to
    /// do, or the vault was busy, or the handle's snapshot was no longer the vault's: then it
    /// is let go). A pack that does not read (damaged, or an I/O error) stays as it is and the
    /// others are combined; an error writing leaves the vault sound (the point is committed;
    /// a later ingest tries again).
    pub(super) fn combine_small(&self) -> Result<u64> {
        // The batch (`take_batch`), given whether each candidate reads back whole; packs
        // already found not to read are left out, so a few bad ones do not stall their tier.
        let batch = |snapshot: &BlobIndex, reads: &mut dyn FnMut(&PackIndex) -> bool| {
            let unreadable = self
                .unreadable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let small: Vec<&Arc<PackIndex>> = snapshot
                .packs
                .values()
                .filter(|p| entry_bytes(p.pack_len) < SMALL_PACK && !unreadable.contains(&p.pack))
                .collect();
            let sizes: Vec<u64> = small.iter().map(|p| entry_bytes(p.pack_len)).collect();
            take_batch(&sizes, self.combine_at, |i| reads(small[i]))
                .into_iter()
                .map(|i| Arc::clone(small[i]))
                .collect::<Vec<_>>()
        };
        let index = Arc::clone(&self.index.lock().unwrap_or_else(|e| e.into_inner()));
        if batch(&index, &mut |_| true).len() < 2 {
            return Ok(0);
        }
        drop(index);
        // Busy (another operation, or this handle's on another thread): a later ingest will.
        let Ok(_lock) = self.lock(LockMode::Exclusive) else {
            return Ok(0);
        };
        // The snapshot as it is now that no other operation runs (another thread's ingest may
        // have added to it meanwhile).
        let snapshot = Arc::clone(&self.index.lock().unwrap_or_else(|e| e.into_inner()));
        // The packs to combine must be none the vault's sorted index names (it is the one the
        // snapshot holds, which names none of them) and still there (another handle's combine
        // removes packs without replacing the sorted index). Under the lock, they stay.
        let stale = !SortedIndex::is_current(snapshot.sorted.as_deref(), &self.layout)
            || snapshot
                .packs
                .keys()
                .any(|p| !self.layout.pack_index(p).exists());
        if stale {
            self.forget_index();
            return Ok(0);
        }
        // Checked one blob at a time; one that does not read (damaged, gone, an I/O error) is
        // left where it is, for verify to report.
        let batch = batch(&snapshot, &mut |p| {
            let reads = matches!(reads_back(&self.layout, &p.pack, &p.entries), Ok(true));
            if !reads {
                let mut bad = self.unreadable.lock().unwrap_or_else(|e| e.into_inner());
                bad.insert(p.pack);
            }
            reads
        });
        if batch.len() < 2 {
            return Ok(0);
        }
        let bytes = batch.iter().map(|p| entry_bytes(p.pack_len)).sum();
        // The copy: its size now known, so the new packs are cut evenly. Each blob is checked
        // again as it is copied (from the page cache, now): a pack that no longer reads stops
        // the combine, nothing published.
        let mut copier = Copier::new(&self.layout, bytes);
        let mut held: HashSet<(BlobId, [u8; 32])> = HashSet::new();
        let mut combined: Vec<PackId> = Vec::new();
        for p in &batch {
            // A blob already copied from another of these packs is not copied twice.
            let entries: Vec<IndexEntry> = p
                .entries
                .iter()
                .filter(|e| held.insert((e.id, e.hash)))
                .copied()
                .collect();
            let (f, path) = open_pack(&self.layout, &p.pack)?;
            let Some(blobs) = Copier::read(&f, &path, &entries)? else {
                return Ok(0);
            };
            copier.write(&entries, blobs, |_| Ok(()))?;
            combined.push(p.pack);
        }
        drop((held, batch));
        if combined.len() < 2 {
            // Nothing worth a new pack: what was written is dropped unpublished.
            return Ok(0);
        }
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
        sizes.extend([100 * kib; 16]);
        sizes.extend([20 << 20; 3]);
        sizes.push(PACK_TARGET);
        assert_eq!(pick_batch(&sizes, 16), (15..31).collect::<Vec<_>>());
        assert_eq!(pick_batch(&sizes, 17), Vec::<usize>::new());
        // Sixteen packs of a tier hold at least the next tier's lower bound: combined, they
        // leave it (the last tier's, half a pack: no longer small).
        for t in 1..TIERS.len() {
            assert!(16 * TIERS[t - 1] >= TIERS[t], "tier {t}");
        }
        assert!(16 * TIERS[TIERS.len() - 2] >= SMALL_PACK);
        // A threshold under two would combine a lone pack into itself, forever.
        assert_eq!(pick_batch(&[kib], 1), Vec::<usize>::new());
        assert_eq!(pick_batch(&[kib, kib], 1), vec![0, 1]);
    }

    #[test]
    fn an_ingest_combines_one_bounded_batch_of_the_smallest_full_tier() {
        let mib = 1u64 << 20;
        // Forty packs of the last small tier, the largest first: the batch is the smallest,
        // and stops once it holds a full pack's bytes.
        let sizes: Vec<u64> = (0..40).map(|i| (31 - i % 27) * mib).collect();
        let batch = pick_batch(&sizes, 16);
        let bytes: u64 = batch.iter().map(|&i| sizes[i]).sum();
        assert!(batch.len() >= 2 && batch.len() <= 16, "{batch:?}");
        assert!(
            (PACK_TARGET..PACK_TARGET + SMALL_PACK).contains(&bytes),
            "{bytes}"
        );
        let largest = batch.iter().map(|&i| sizes[i]).max().unwrap();
        let left = (0..40).filter(|i| !batch.contains(i)).map(|i| sizes[i]);
        assert!(left.clone().all(|s| s >= largest), "not the smallest");
        // Two full tiers: only the smaller one, sixteen packs at most.
        let mut sizes = vec![100 << 10; 20];
        sizes.extend(vec![2 << 20; 20]);
        let batch = pick_batch(&sizes, 16);
        assert_eq!(batch.len(), 16);
        assert!(batch.iter().all(|&i| i < 20));
    }

    /// Packs that do not read are passed over, the next candidates taking their place, but
    /// what is tried stays under a full pack and one small one however many are bad: a
    /// vault's operator who drops many damaged small packs costs each idle ingest a bounded
    /// read, not the whole tier's.
    #[test]
    fn a_batch_passes_over_bad_packs_and_tries_a_bounded_amount() {
        let mib = 1u64 << 20;
        // Twenty packs of the last small tier, the first three bad: the next ones replace them.
        let sizes = vec![5 * mib; 20];
        let bad = |i: usize| i < 3;
        let batch = take_batch(&sizes, 16, |i| !bad(i));
        assert!(batch.iter().all(|&i| !bad(i)), "{batch:?}");
        let bytes: u64 = batch.iter().map(|&i| sizes[i]).sum();
        assert_eq!(batch.len(), 10, "{batch:?}");
        assert!(bytes < PACK_TARGET, "{bytes}");
        // Forty bad ones: tried until a full pack's bytes, then none combined.
        let sizes = vec![20 * mib; 40];
        let mut tried = 0;
        let batch = take_batch(&sizes, 16, |i| {
            tried += sizes[i];
            false
        });
        assert!(batch.is_empty());
        assert!(tried < PACK_TARGET + SMALL_PACK, "{tried}");
    }

    #[test]
    fn copies_are_cut_evenly_so_none_is_small_once_there_is_half_a_pack() {
        for (total, packs) in [
            (10u64 << 20, 1u64),
            (65 << 20, 2),
            (96 << 20, 2),
            (200 << 20, 4),
        ] {
            let layout = Layout::new(Path::new("/nonexistent"));
            let c = Copier::new(&layout, total);
            assert_eq!(total.div_ceil(c.cut), packs, "{total}");
            assert!(packs == 1 || c.cut >= SMALL_PACK, "{total}: {}", c.cut);
            assert!(c.cut <= PACK_TARGET);
        }
    }
}
