//! The vault: the recovery site's store of every group's chain of recovery points,
//! deduplicated and still encrypted. It ingests bundles, lists and selects points and checks
//! itself without the key; only materializing a point (failover) needs it. Layout and files:
//! `docs/FORMAT.md` §15.
//!
//! ```text
//! DIR/replicore-vault               format file (version)
//! DIR/packs/<id>.rcpack, .rcidx     immutable packs of sealed blobs, and their indexes
//! DIR/packs/blobs.rcmidx            sorted index of every blob of the packs GC left (a cache)
//! DIR/points/<group>/<seq>-<id>.rcpt immutable recovery-point files (shipped header + manifests)
//! DIR/points/<group>/*.rcseg        segments: many small point files of the group, byte for byte
//! DIR/heads/<group>.rchead          the group's newest point: replacing it commits a point
//! DIR/lock, DIR/locks/<group>.lock  advisory locks
//! ```
//!
//! Every file is written under a temporary name, synced, renamed and its directory synced;
//! nothing is rewritten in place. A point is committed when its group's head names it, so a
//! crash leaves at most leftovers (temporary files, a pack not yet referenced, a point file
//! the head does not name), which readers ignore and [`Vault::open`] removes when nobody else
//! is working in the vault.
//!
//! # Locking
//!
//! Advisory locks (`flock`), taken without waiting: a conflicting user gets
//! [`Locked`](crate::ErrorKind::Locked) and should retry later, never a damaged vault.
//!
//! | operation | vault lock (`DIR/lock`) | group lock (`DIR/locks/<group>.lock`) |
//! | --- | --- | --- |
//! | [`ingest`](Vault::ingest) | shared | exclusive, for the bundle's group |
//! | combining small packs after an ingest's commit (`vault::combine`) | exclusive, tried; skipped when busy (under 96 MiB copied) | — |
//! | combining the group's point files after an ingest's commit (`vault::combine_points`), every 64 ingests | exclusive, tried; skipped when busy (under 32 MiB copied) | — |
//! | [`points`](Vault::points), [`select`](Vault::select), [`groups`](Vault::groups) | shared | — |
//! | [`materialize`](Vault::materialize), [`failover`](Vault::failover) | shared | — |
//! | [`verify`](Vault::verify) | shared | — |
//! | cleaning leftovers in [`open`](Vault::open) | exclusive, tried; skipped when busy | — |
//! | [`plan_prune`](Vault::plan_prune), [`pin`](Vault::pin), [`unpin`](Vault::unpin), [`pins`](Vault::pins) | shared | — |
//! | [`prune`](Vault::prune), [`gc`](Vault::gc) | exclusive | — |
//!
//! So ingests of different groups, materializes and verifies run side by side; two ingests of
//! one group do not (the second gets Locked); prune and GC run alone. An ingest that finds
//! the vault idle after its commit combines a batch of small packs alone: another operation
//! starting meanwhile gets Locked for that long (under 96 MiB read, hashed, written and synced:
//! about a second on a disk, more on a slow network share), as while the vault is
//! opened and leftovers are cleaned. Readers see a group as of
//! its head when they read it: a point committed meanwhile is simply not seen yet.

mod chain;
mod combine;
mod combine_points;
#[cfg(test)]
mod combine_points_tests;
#[cfg(test)]
mod combine_tests;
mod compact;
mod gc;
mod head;
mod ingest;
mod layout;
mod materialize;
mod onto;
mod pack;
mod pins;
mod point;
mod point_runs;
mod point_sig;
mod prune;
mod records;
mod repair;
#[cfg(test)]
mod retention_crash_tests;
mod segment;
#[cfg(test)]
mod segment_attack_tests;
mod sorted_index;
#[cfg(test)]
mod sorted_refresh_tests;
mod status;
mod trust;
mod verify;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use compact::Compacted;
pub use gc::GcReport;
pub use ingest::Ingested;
pub use layout::{PackId, VERSION_MAJOR};
pub use materialize::{FailoverOptions, Materialized};
pub use point::{DiskInfo, RecoveryPoint, Selector};
pub use prune::{GroupPrune, Merge, PlannedPoint, PruneReport};
pub use repair::RebuiltHead;
pub use status::GroupStatus;
pub use verify::{Damage, VerifyReport};

use self::layout::{Layout, Lock, lock_vault};
use self::pack::{IndexEntry, PackIndex};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::sys::LockMode;

/// A vault on a directory. Shareable between threads (`Send + Sync`): every operation takes
/// the locks it needs for its duration (see the module docs).
#[derive(Debug)]
pub struct Vault {
    layout: Layout,
    /// The latest snapshot of the blob index; operations hold their own `Arc` of it, so the
    /// lock is held only while the snapshot is refreshed, never during an operation's I/O.
    index: Mutex<Arc<BlobIndex>>,
    /// Stored bytes of new blobs an ingest gathers into one batch (see
    /// [`with_ingest_memory`](Vault::with_ingest_memory)).
    ingest_batch: usize,
    /// Packs the sorted index does not name that an ingest's handle holds before it writes a
    /// new one naming them ([`Vault::refresh_sorted`]).
    sorted_refresh: usize,
    /// Blob entries of such packs it holds before it does so
    /// ([`sorted_index::REFRESH_ENTRIES`]), whatever their number of packs.
    sorted_refresh_entries: usize,
    /// Small packs of a tier an ingest's handle combines ([`combine::COMBINE_AT`]).
    combine_at: usize,
    /// Point files of their own an ingest lets accumulate before it combines them
    /// ([`combine_points::SEGMENT_AFTER`]).
    segment_after: usize,
    /// Bytes at which a segment takes no more point files ([`segment::SEGMENT_FULL`]).
    segment_full: u64,
    /// Segments of a size tier an ingest merges ([`combine_points::MERGE_AT`]).
    segment_merge: usize,
    /// Packs this handle's combines found not to read back (damage, for verify to report and
    /// GC to leave): passed over without being read again until the handle lists the packs
    /// again ([`forget_index`](Self::forget_index)).
    unreadable: Mutex<HashSet<PackId>>,
}

/// Every stored blob's place, from the pack indexes. A stored blob is known by its id and the
/// BLAKE3 of its sealed bytes together: a copy whose bytes differ from the signed ones (another
/// group's garbage under a known id, a damaged copy) is never taken for it.
#[derive(Debug, Default, Clone)]
pub(crate) struct BlobIndex {
    packs: HashMap<PackId, Arc<PackIndex>>,
    blobs: HashMap<(BlobId, [u8; 32]), (PackId, IndexEntry)>,
    /// Whether the packs directory was listed into it at least once (a new handle's is empty).
    listed: bool,
    /// The sorted index GC wrote, answering for the packs it names, which `packs` then lacks
    /// (an ingest's index: see [`Vault::ingest_index`]); `None` once every pack is read.
    sorted: Option<Arc<sorted_index::SortedIndex>>,
}

impl BlobIndex {
    pub fn get(&self, id: &BlobId, hash: &[u8; 32]) -> Option<&(PackId, IndexEntry)> {
        self.blobs.get(&(*id, *hash))
    }

    /// The stored copies of blob `id` in packs other than `except` (a blob may be in two packs:
    /// another process's ingest stored it again, a combine was cut), any sealed form: each
    /// caller keeps only the forms it can trust. Scans every entry: for damage, not for a hot
    /// path.
    fn other_copies<'a>(
        &'a self,
        id: &'a BlobId,
        except: &'a PackId,
    ) -> impl Iterator<Item = (PackId, IndexEntry)> + 'a {
        self.packs
            .values()
            .filter(move |i| i.pack != *except)
            .flat_map(move |i| {
                i.entries
                    .iter()
                    .filter(move |e| e.id == *id)
                    .map(move |e| (i.pack, *e))
            })
    }

    fn add(&mut self, index: Arc<PackIndex>) {
        for e in &index.entries {
            self.blobs.entry((e.id, e.hash)).or_insert((index.pack, *e));
        }
        self.packs.insert(index.pack, index);
    }
}

impl Vault {
    /// Creates a vault in `dir` (created if missing; it must be empty).
    pub fn create(dir: impl AsRef<Path>) -> Result<Vault> {
        let layout = Layout::new(dir.as_ref());
        layout::create(&layout)?;
        Self::open(dir)
    }

    /// Opens the vault in `dir`: checks its format file, and when no one else is working in
    /// it, removes what an interrupted operation left behind.
    pub fn open(dir: impl AsRef<Path>) -> Result<Vault> {
        let layout = Layout::new(dir.as_ref());
        layout::check(&layout)?;
        if let Ok(lock) = lock_vault(&layout, LockMode::Exclusive) {
            repair::clean_leftovers(&layout)?;
            drop(lock);
        }
        Ok(Vault {
            layout,
            index: Mutex::new(Arc::default()),
            ingest_batch: ingest::DEFAULT_BATCH,
            sorted_refresh: sorted_index::REFRESH_PACKS,
            sorted_refresh_entries: sorted_index::REFRESH_ENTRIES,
            combine_at: combine::COMBINE_AT,
            segment_after: combine_points::SEGMENT_AFTER,
            segment_full: segment::SEGMENT_FULL,
            segment_merge: combine_points::MERGE_AT,
            unreadable: Mutex::default(),
        })
    }

    /// Bounds the blob bytes an ingest holds at once: new blobs are checked in batches of a
    /// quarter of `bytes`, and at most four batches are in flight (one being read and checked
    /// on the pool, two queued, one being written to a pack). The default is 128 MiB; a smaller budget (at least
    /// 4 MiB, each batch holding at least one blob) trades throughput for memory on a small
    /// host. On top come the open pack's 8 MiB write buffer and the bundle reader's 1 MiB.
    pub fn with_ingest_memory(mut self, bytes: usize) -> Result<Vault> {
        if bytes < ingest::MIN_MEMORY {
            return Err(Error::invalid_argument(
                "bytes",
                format!(
                    "{bytes} bytes is below the smallest ingest budget, {} bytes",
                    ingest::MIN_MEMORY
                ),
            ));
        }
        self.ingest_batch = bytes / ingest::BATCHES_IN_FLIGHT;
        Ok(self)
    }

    /// The vault's directory.
    pub fn path(&self) -> &Path {
        self.layout.root()
    }

    /// Takes the vault lock for one operation.
    fn lock(&self, mode: LockMode) -> Result<Lock> {
        lock_vault(&self.layout, mode)
    }

    /// The blob index, brought up to date with the packs on disk (another process may have
    /// added some).
    fn refreshed_index(&self) -> Result<Arc<BlobIndex>> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let on_disk = self.layout.pack_ids()?;
        let new: Vec<&PackId> = on_disk
            .iter()
            .filter(|p| !index.packs.contains_key(*p))
            .collect();
        if on_disk.len() == index.packs.len() + new.len() {
            // Only packs added (ingests): read just their indexes. Cloned only while another
            // operation still holds the previous index; else updated in place, so a run of
            // ingests costs each its own packs, not the vault's.
            if !new.is_empty() {
                let loaded = new
                    .into_iter()
                    .map(|id| PackIndex::load(&self.layout, id).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?;
                let shared = Arc::make_mut(&mut index);
                for p in loaded {
                    shared.add(p);
                }
            }
            if !index.listed || index.sorted.is_some() {
                let whole = Arc::make_mut(&mut index);
                whole.listed = true;
                // Every pack's index is read now: the sorted one has nothing more to say.
                whole.sorted = None;
            }
        } else {
            // Packs removed (GC): rebuilt, reusing the indexes already read.
            let mut fresh = BlobIndex::default();
            for id in on_disk {
                match index.packs.get(&id) {
                    Some(p) => fresh.add(Arc::clone(p)),
                    None => fresh.add(Arc::new(PackIndex::load(&self.layout, &id)?)),
                }
            }
            fresh.listed = true;
            *index = Arc::new(fresh);
        }
        Ok(Arc::clone(&index))
    }

    /// The blob index an ingest deduplicates against, without listing the packs directory
    /// (which would make every ingest cost the vault's number of packs): the snapshot this
    /// handle holds, listed only on its first use. Packs another process added since are not
    /// in it: their blobs are stored again if a bundle brings them (GC keeps one copy). Packs a
    /// GC removed may still be: the ingest takes a blob as held only while its pack's index
    /// still exists, which under the vault's shared lock it does until the ingest ends.
    ///
    /// A new handle opens the vault's sorted index (`sorted_index`, written by GC and by
    /// ingests), which answers for the packs it names by range, one lookup per blob; only the
    /// other packs' indexes are read (fewer than [`sorted_index::REFRESH_PACKS`], see
    /// [`refresh_sorted`](Self::refresh_sorted)). Without one, or with one that does not open
    /// (verify reports it), every pack's index is read.
    fn ingest_index(&self) -> Result<Arc<BlobIndex>> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.listed {
            return Ok(Arc::clone(&index));
        }
        let sorted = sorted_index::SortedIndex::open(&self.layout).unwrap_or(None);
        let covered: HashSet<&PackId> = sorted.iter().flat_map(|s| s.packs()).collect();
        let mut fresh = BlobIndex::default();
        for id in self.layout.pack_ids()? {
            if covered.contains(&id) {
                continue;
            }
            match index.packs.get(&id) {
                Some(p) => fresh.add(Arc::clone(p)),
                None => fresh.add(Arc::new(PackIndex::load(&self.layout, &id)?)),
            }
        }
        drop(covered);
        fresh.listed = true;
        fresh.sorted = sorted.map(Arc::new);
        *index = Arc::new(fresh);
        Ok(Arc::clone(&index))
    }

    /// Adds the packs this handle's ingest published to its snapshot of the blob index: in
    /// place, unless another operation still holds the snapshot (then it is copied once).
    fn note_published(&self, packs: Vec<PackIndex>) {
        if packs.is_empty() {
            return;
        }
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let shared = Arc::make_mut(&mut index);
        for p in packs {
            if !shared.packs.contains_key(&p.pack) {
                shared.add(Arc::new(p));
            }
        }
    }

    /// After an ingest committed, under the vault's shared lock: once this handle holds
    /// [`sorted_refresh`](Self::sorted_refresh) packs that the sorted index does not name (those
    /// ingested since the last GC or refresh, its own included), or their entries number
    /// [`sorted_refresh_entries`](Self::sorted_refresh_entries), it writes a new sorted index
    /// naming them too (the old one's entries streamed, only the new ones sorted in memory) and
    /// lets their indexes go; the smallest small packs, which ingests combine, stay out of it
    /// (and in the handle) while they are fewer than half of either. So a new handle reads
    /// fewer than that many pack indexes and entries, whenever GC last ran, and an agent's
    /// handle holds fewer (besides what one ingest adds). Only while the sorted index it holds
    /// is still the vault's (no GC since, which may have removed packs, and no other ingest's
    /// refresh); then every pack it names is there, and stays while the lock is held. A
    /// failure is not the ingest's: the point is committed, the next ingest tries again.
    fn refresh_sorted(&self) {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.packs.len() < self.sorted_refresh
            && index.blobs.len() < self.sorted_refresh_entries
        {
            return;
        }
        // Every pack it would name must be there: another handle's combine (`vault::combine`)
        // removes packs the sorted index does not name without replacing it. Under the shared
        // lock, those there stay.
        if !sorted_index::SortedIndex::is_current(index.sorted.as_deref(), &self.layout)
            || index
                .packs
                .keys()
                .any(|p| !self.layout.pack_index(p).exists())
        {
            *index = Arc::default();
            return;
        }
        // The smallest small packs stay out of it, so that ingests go on combining them
        // (`vault::combine`): fewer than half of either bound. Larger ones, and small ones past
        // that (a vault too busy for ingests to combine, or points of many tiny blobs), are
        // named: left to GC to combine.
        let small = |p: &PackIndex| combine::entry_bytes(p.pack_len) < combine::SMALL_PACK;
        let mut smallest: Vec<&Arc<PackIndex>> =
            index.packs.values().filter(|p| small(p)).collect();
        smallest.sort_by_key(|p| (p.pack_len, p.pack));
        let (mut kept, mut entries) = (Vec::new(), 0usize);
        for p in smallest {
            entries += p.entries.len();
            if (kept.len() + 1) * 2 >= self.sorted_refresh
                || entries * 2 >= self.sorted_refresh_entries
            {
                break;
            }
            kept.push(Arc::clone(p));
        }
        let out: HashSet<PackId> = kept.iter().map(|p| p.pack).collect();
        let added: Vec<&PackIndex> = index
            .packs
            .values()
            .map(|p| &**p)
            .filter(|p| !out.contains(&p.pack))
            .collect();
        if let Ok(new) =
            sorted_index::SortedIndex::merge(&self.layout, index.sorted.as_deref(), &added)
        {
            let mut fresh = BlobIndex {
                listed: true,
                sorted: Some(Arc::new(new)),
                ..BlobIndex::default()
            };
            for p in kept {
                fresh.add(p);
            }
            *index = Arc::new(fresh);
        }
    }

    /// Drops this handle's snapshot of the blob index: the next operation lists the packs.
    fn forget_index(&self) {
        *self.index.lock().unwrap_or_else(|e| e.into_inner()) = Arc::default();
        self.unreadable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Every group with at least one point, sorted by name; a damaged head is
    /// [`Corrupt`](crate::ErrorKind::Corrupt) ([`verify`](Self::verify) reports it as damage).
    pub fn groups(&self) -> Result<Vec<String>> {
        let _lock = self.lock(LockMode::Shared)?;
        self.group_names()
    }

    /// The points of `group`, oldest first. A long chain's list is large (a few hundred bytes
    /// a point): [`each_point`](Self::each_point) hands them over one at a time instead.
    pub fn points(&self, group: &str) -> Result<Vec<RecoveryPoint>> {
        let _lock = self.lock(LockMode::Shared)?;
        Ok(chain::load_with(&self.layout, group, point::PointFile::info)?.1)
    }

    /// Calls `f` with each point of `group`, oldest first, holding one at a time (and the
    /// chain's links, a few dozen bytes a point). The chain is walked and checked before the
    /// first call, so an error from the chain comes before any point; an error from `f` stops
    /// the walk and is returned. The vault's shared lock is held through the calls: while `f`
    /// waits (on a slow reader, say), GC, prune and compact are refused with
    /// [`Locked`](crate::ErrorKind::Locked), so `f` should not block.
    pub fn each_point(
        &self,
        group: &str,
        mut f: impl FnMut(RecoveryPoint) -> Result<()>,
    ) -> Result<()> {
        let _lock = self.lock(LockMode::Shared)?;
        let chain = chain::load(&self.layout, group)?;
        for l in &chain.links {
            f(chain.info(l)?)?;
        }
        Ok(())
    }

    /// The point of `group` that `selector` picks; [`NotFound`](crate::ErrorKind::NotFound)
    /// when none fits.
    pub fn select(&self, group: &str, selector: Selector) -> Result<RecoveryPoint> {
        let _lock = self.lock(LockMode::Shared)?;
        let chain = chain::load(&self.layout, group)?;
        match selector.pick_link(&chain.links) {
            Some(l) => chain.info(l),
            None => Err(Error::NotFound {
                what: format!("a point of group `{group}` ({selector})"),
            }),
        }
    }

    /// Where the files of `group`'s points are (for tools and tests).
    pub fn points_dir(&self, group: &str) -> PathBuf {
        self.layout.points(group)
    }

    /// Where the head of `group` is (for tools and tests).
    pub fn head_path(&self, group: &str) -> PathBuf {
        self.layout.head(group)
    }

    /// Refuses a head behind the last sequence number the primary shipped (its ship state
    /// holds it): a vault rolled back (a head pointed at an older point, newer files removed)
    /// is [`ChainBroken`](crate::ErrorKind::ChainBroken) instead of an old point taken for the
    /// latest. Returns the head's sequence number.
    pub fn expect_seq(&self, group: &str, seq: u64) -> Result<u64> {
        let _lock = self.lock(LockMode::Shared)?;
        let head = head::Head::load(&self.layout, group)?.ok_or_else(|| Error::NotFound {
            what: format!("group `{group}` in vault {}", self.layout.root().display()),
        })?;
        if head.seq < seq {
            return Err(Error::ChainBroken {
                group: group.to_string(),
                detail: format!(
                    "its newest point has sequence {}, but the primary shipped up to {seq}: the \
                     vault was rolled back or lost points; do not fail over to it as the latest \
                     before finding out why",
                    head.seq
                ),
            });
        }
        Ok(head.seq)
    }
}

/// Parsers of the vault's files for the fuzz targets (not a stable API): each decodes untrusted
/// bytes and returns the file encoded again, which must decode to the same thing.
#[doc(hidden)]
pub mod fuzzing {
    use crate::error::Result;

    /// A pack index (with its trailer).
    pub fn pack_index(bytes: &[u8]) -> Result<Vec<u8>> {
        super::pack::PackIndex::decode(bytes).map(|i| i.encode())
    }

    /// A recovery-point file, read whole and checked (its trailer included), written again
    /// from what was read: the same bytes.
    pub fn point_file(bytes: &[u8]) -> Result<Vec<u8>> {
        let p = super::point::PointFile::read_from(bytes, bytes.len() as u64)?;
        let span = p.body()?.span;
        let path = std::path::Path::new("fuzz");
        p.write(Vec::new(), path, |w| {
            let records = &bytes[span.0 as usize..span.1 as usize];
            assert_eq!(blake3::hash(records), p.body()?.span_hash);
            super::records::put(w, records, path)
        })
    }

    /// A segment of point files (`docs/FORMAT.md` §15.10): its table checked, each point file
    /// read whole and checked against its row, the segment written again from what was read.
    pub fn point_segment(bytes: &[u8]) -> Result<Vec<u8>> {
        super::segment::check_bytes(bytes)
    }

    /// A segment of generation 7 holding `files` (whole point files, in order of sequence
    /// number): how the seed corpus is made.
    pub fn segment_of(files: &[Vec<u8>]) -> Result<Vec<u8>> {
        super::segment::encode(7, files)
    }

    /// A pinned verifying key (with its trailer).
    pub fn trust(bytes: &[u8]) -> Result<Vec<u8>> {
        let (group, vk) = super::trust::decode(bytes)?;
        super::trust::encode(&group, &vk)
    }

    /// A group head (with its trailer).
    pub fn head(bytes: &[u8]) -> Result<Vec<u8>> {
        let h = super::head::Head::decode(bytes)?;
        h.encode()
    }

    /// The vault's sorted blob index, held in memory: opened (its shape checked), every entry
    /// looked up, then checked whole. Returns the entries found by lookup; never panics.
    pub fn sorted_index(bytes: &[u8]) -> Result<u64> {
        let s = super::sorted_index::SortedIndex::from_bytes(bytes.to_vec())?;
        let mut keys = Vec::new();
        let checked = s.check(|_, id, hash| {
            keys.push((*id, *hash));
            true
        });
        // Lookups run on damaged files too (an ingest does not read the trailer).
        let mut found = 0;
        for (id, hash) in keys.iter().chain(&[(crate::id::BlobId([7; 32]), [9; 32])]) {
            found += u64::from(s.find(id, hash)?.is_some());
        }
        checked.map(|_| found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::bundle::{SeedOptions, seed};
    use crate::crypto::{KeyFile, MasterKey, Secret};

    /// A vault and a base bundle of a one-disk group, not yet ingested.
    fn setup(dir: &Path) -> (Vault, PathBuf) {
        let img = dir.join("d.img");
        std::fs::write(&img, vec![7u8; 100_000]).unwrap();
        let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([1; 32]))).unwrap();
        let base = dir.join("base.rcb");
        let opts = SeedOptions {
            chunk_size: 16 << 10,
            ..SeedOptions::default()
        };
        let disks = [("d", img.as_path())];
        let ok = &mut |_, _| true;
        seed("g", &disks, &key, dir.join("l.rclog"), &base, &opts, ok).unwrap();
        (Vault::create(dir.join("v")).unwrap(), base)
    }

    #[test]
    fn locks_follow_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let (v, base) = setup(dir.path());
        // An exclusive user (prune, GC) keeps ingest and readers out.
        let ex = lock_vault(&v.layout, LockMode::Exclusive).unwrap();
        assert_eq!(
            v.ingest(&base, &mut |_, _| true).unwrap_err().kind(),
            ErrorKind::Locked
        );
        assert_eq!(v.groups().unwrap_err().kind(), ErrorKind::Locked);
        assert_eq!(
            lock_vault(&v.layout, LockMode::Exclusive)
                .unwrap_err()
                .kind(),
            ErrorKind::Locked
        );
        drop(ex);
        // Readers share with each other and with an ingest of another group.
        let sh = lock_vault(&v.layout, LockMode::Shared).unwrap();
        assert!(v.ingest(&base, &mut |_, _| true).unwrap().added);
        assert_eq!(v.points("g").unwrap().len(), 1);
        // Two ingests of one group do not run at once.
        let g = layout::lock(&v.layout.group_lock("g"), LockMode::Exclusive, "g").unwrap();
        assert_eq!(
            v.ingest(&base, &mut |_, _| true).unwrap_err().kind(),
            ErrorKind::Locked
        );
        drop((g, sh));
        assert!(!v.ingest(&base, &mut |_, _| true).unwrap().added);
    }

    #[test]
    fn open_removes_leftovers_only_when_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (v, base) = setup(dir.path());
        v.ingest(&base, &mut |_, _| true).unwrap();
        let root = v.path().to_path_buf();
        let leftovers = [
            root.join("packs/0123456789abcdef0123456789abcdef.rcpack"),
            // Temporary names as `fsutil::AtomicFile` draws them.
            root.join("packs/.x.rcpack.0123456789abcdef.tmp"),
            root.join("heads/.y.rchead.0123456789abcdef.tmp"),
            v.points_dir("g").join("000000000009-0000000000000000.rcpt"),
            root.join("points/other-0000000000000000/000000000000-0000000000000000.rcpt"),
            // The in-progress markers that make the point files above leftovers.
            v.points_dir("g").join(layout::PENDING),
            root.join("points/other-0000000000000000")
                .join(layout::PENDING),
        ];
        for l in &leftovers {
            std::fs::create_dir_all(l.parent().unwrap()).unwrap();
            std::fs::write(l, b"left").unwrap();
        }
        // Without a marker, point files are never taken for leftovers, whatever their head.
        let kept = root.join("points/third-0000000000000000/000000000000-0000000000000000.rcpt");
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::write(&kept, b"maybe data").unwrap();
        let busy = lock_vault(&v.layout, LockMode::Shared).unwrap();
        Vault::open(&root).unwrap();
        assert!(
            leftovers.iter().all(|l| l.exists()),
            "busy: nothing removed"
        );
        drop(busy);
        let v = Vault::open(&root).unwrap();
        for l in &leftovers {
            assert!(!l.exists(), "{} left", l.display());
        }
        assert!(kept.exists(), "a point file without a marker was removed");
        std::fs::remove_dir_all(kept.parent().unwrap()).unwrap();
        assert_eq!(v.points("g").unwrap().len(), 1);
        assert!(v.verify(None, &mut |_, _| true).unwrap().is_ok());
    }

    #[test]
    fn a_damaged_head_is_reported_and_its_points_are_never_cleaned_away() {
        let dir = tempfile::tempdir().unwrap();
        let (v, base) = setup(dir.path());
        v.ingest(&base, &mut |_, _| true).unwrap();
        let head = v.layout.head("g");
        let mut bytes = std::fs::read(&head).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&head, bytes).unwrap();
        let points: Vec<PathBuf> = std::fs::read_dir(v.points_dir("g"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(points.len(), 1);
        let v = Vault::open(v.path()).unwrap();
        assert!(
            points[0].exists(),
            "open removed a point its damaged head names"
        );
        let r = v.verify(None, &mut |_, _| true).unwrap();
        assert!(
            r.damage.iter().any(|d| d.object.contains("rchead")),
            "{r:?}"
        );
        assert_eq!(v.groups().unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn an_ingest_failing_at_any_file_operation_keeps_the_committed_points() {
        use crate::fsutil::fault;
        use crate::log::MarkerKind;
        let _alone = fault::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("d.img");
        let mut disk: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&img, &disk).unwrap();
        let (_, key) = KeyFile::create(Secret::Key(&MasterKey::from_bytes([3; 32]))).unwrap();
        let opts = SeedOptions {
            chunk_size: 16 << 10,
            ..SeedOptions::default()
        };
        let ok = &mut |_, _| true;
        let base = dir.path().join("base.rcb");
        let disks = [("d", img.as_path())];
        let mut s = seed(
            "g",
            &disks,
            &key,
            dir.path().join("l.rclog"),
            &base,
            &opts,
            ok,
        )
        .unwrap();
        let models = [disk.clone(), {
            s.log.record_write(0, 1000, &[5; 40_000]).unwrap();
            disk[1000..41_000].fill(5);
            disk.clone()
        }];
        s.log.mark(MarkerKind::Crash, "").unwrap();
        s.log.rotate(dir.path().join("s.rclog")).unwrap();
        let shipped = crate::bundle::ship(
            dir.path().join("s.rclog"),
            &key,
            &mut s.state,
            dir.path(),
            &Default::default(),
            ok,
        )
        .unwrap();
        let bundles = [base, shipped[0].path.clone()];
        let root = dir.path().join("v");
        Vault::create(&root).unwrap();
        let mut cuts = 0;
        for (i, b) in bundles.iter().enumerate() {
            for n in 0.. {
                let v = Vault::open(&root).unwrap();
                fault::plan(Some((&root, n)));
                let r = v.ingest(b, &mut |_, _| true);
                fault::plan(None);
                // Reopening removes what the failed ingest left.
                let v = Vault::open(&root).unwrap();
                let now = v.points("g").map_or(0, |p| p.len());
                assert!(v.verify(Some(&key), &mut |_, _| true).unwrap().is_ok());
                for (k, p) in v.points("g").into_iter().flatten().enumerate() {
                    let out = dir.path().join(format!("m{i}-{n}-{k}.img"));
                    v.materialize("g", p.id, "d", &key, &out, &mut |_, _| true)
                        .unwrap();
                    assert_eq!(std::fs::read(&out).unwrap(), models[k]);
                    std::fs::remove_file(out).unwrap();
                }
                match r {
                    Ok(done) => {
                        assert!(done.added && now == i + 1);
                        break;
                    }
                    Err(e) => {
                        cuts += 1;
                        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                        if now == i + 1 {
                            // Failed after the head was published (syncing its directory): the
                            // point is committed, and ingesting it again is a no-op.
                            assert!(!v.ingest(b, &mut |_, _| true).unwrap().added);
                            break;
                        }
                        assert_eq!(now, i, "cut {n}: {e}");
                    }
                }
            }
        }
        assert!(cuts >= 10, "{cuts} cuts");
        // A fresh vault for each cut of the base, so that no attempt finds blobs an earlier one
        // left: a cut after the head is in place (its directory's sync) leaves the point whole,
        // its packs kept (a failed commit removes nothing it published).
        let mut committed_by_a_failed_ingest = 0;
        for n in 0.. {
            let root = dir.path().join(format!("fresh-{n}"));
            Vault::create(&root).unwrap();
            let v = Vault::open(&root).unwrap();
            fault::plan(Some((&root, n)));
            let r = v.ingest(&bundles[0], &mut |_, _| true);
            fault::plan(None);
            let v = Vault::open(&root).unwrap();
            if let Ok(p) = v.points("g") {
                let out = dir.path().join(format!("fresh-{n}.img"));
                v.materialize("g", p[0].id, "d", &key, &out, &mut |_, _| true)
                    .unwrap();
                assert_eq!(std::fs::read(&out).unwrap(), models[0], "cut {n}");
                committed_by_a_failed_ingest += usize::from(r.is_err());
            }
            if r.is_ok() {
                break;
            }
        }
        assert!(committed_by_a_failed_ingest >= 1);
    }
}
