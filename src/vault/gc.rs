//! Garbage collection, without the key: blobs that no point's manifests reference are dropped;
//! packs that hold none of the others are removed, packs that are mostly dead are rewritten by
//! copying their live blobs, still sealed, into new packs, and many small packs are combined
//! the same way.
//!
//! # What GC may remove, and why a concurrent ingest or materialize never misses a blob
//!
//! GC holds the vault lock exclusively from its mark phase to its last removal; ingest,
//! materialize, failover and verify hold it shared for their whole run. So while GC runs, no
//! point is added and no blob is read, and a blob GC finds unreferenced stays unreferenced
//! until it is gone. An ingest that ran before GC may have skipped storing a blob the vault
//! held only for pruned points (deduplication): its point, committed under the shared lock,
//! references the blob, so the next mark phase finds it live. A `Vault` handle keeps its blob
//! index between operations: failover, materialize and GC list the packs first and rebuild it
//! when the set changed; ingest does not list (an agent's ingest must not cost the vault's
//! number of packs), and takes a blob as held only while the pack its snapshot names still has
//! its index, which no GC can remove while the ingest holds the shared lock. A pack another
//! process added since is not in the snapshot: a blob it holds is stored again, and the next GC
//! keeps one copy.
//!
//! # Commit protocol
//!
//! New packs are published (pack, then index) before anything is removed; then the sorted blob
//! index of the packs that stay (`sorted_index`, what a new handle's ingest looks blobs up in;
//! ingests also rewrite it between GCs, under the shared lock) replaces the old one; then the indexes of the packs that go are removed and the directory
//! synced, then those packs. So the sorted index never names a removed pack. A crash leaves
//! either the old packs, or old and new side by side (a blob stored twice: the next GC keeps
//! one copy), or packs without an index, which are leftovers. A blob is always in some indexed
//! pack from before GC began until after it ended.

use std::collections::{HashMap, HashSet};

use super::Vault;
use super::chain;
use super::combine::{Copier, SMALL_PACK, entry_bytes, open_existing, reads_back, remove_packs};
use super::head::Head;
use super::layout::PackId;
use super::pack::{ENTRY_LEN, IndexEntry, PackIndex};
use super::repair::clean_leftovers;
use super::sorted_index::SortedIndex;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::id::BlobId;
use crate::resync::Progress;
use crate::sys::LockMode;

/// A pack is rewritten when more than this share of its blob bytes is dead (so after GC no
/// pack is more than a quarter dead).
const REWRITE_DEAD_PER_4: u64 = 1;

/// What [`Vault::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Packs before and after.
    pub packs_before: u64,
    /// Packs after.
    pub packs_after: u64,
    /// Packs removed because nothing in them was referenced.
    pub packs_removed: u64,
    /// Packs whose live blobs were copied into new packs (and which were removed): those more
    /// than a quarter dead, and the small ones (under 32 MiB live) once there are two.
    pub packs_rewritten: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Blobs referenced by some point.
    pub live_blobs: u64,
    /// Stored bytes of those blobs, entry headers included: what any vault holding these
    /// points needs at least.
    pub live_bytes: u64,
    /// Blob copies dropped (unreferenced, or a second copy); dead blobs in packs that are
    /// mostly live stay until their pack is rewritten.
    pub blobs_removed: u64,
    /// Pack bytes before and after.
    pub bytes_before: u64,
    /// Pack bytes after.
    pub bytes_after: u64,
    /// Packs left as they were because a blob to copy out of them did not match its recorded
    /// hash (verify says which points that affects).
    pub damaged_packs: Vec<PackId>,
    /// Point files written again into segments (see `vault::point_runs`): a group's runs of
    /// points outside full, clean segments, when in two files or more or reading a segment that
    /// held rows no point reads.
    pub point_files_combined: u64,
}

/// Each blob stored more than once: the plan of the copy kept first, and the other copies
/// (plan, entry), in pack order.
type Copies = HashMap<(BlobId, [u8; 32]), (usize, Vec<(usize, IndexEntry)>)>;

/// One pack's fate: what GC keeps of its index (not the dead entries).
struct PackPlan {
    pack: PackId,
    pack_len: u64,
    /// Entries in its index.
    entries: usize,
    /// Its entries GC keeps (live, and this is the copy kept).
    live: Vec<IndexEntry>,
    /// It held a damaged copy of a blob stored twice (the other copy is kept): rewritten, so
    /// the damaged one goes.
    gave_up_a_copy: bool,
}

impl PackPlan {
    fn live_bytes(&self) -> u64 {
        self.live
            .iter()
            .map(|e| ENTRY_LEN as u64 + u64::from(e.len))
            .sum()
    }

    fn entry_bytes(&self) -> u64 {
        entry_bytes(self.pack_len)
    }
}

impl Vault {
    /// Collects garbage (see the module docs of `vault::gc`): removes what interrupted
    /// operations left, then every blob no point references, rewriting packs that are more
    /// than a quarter dead; small packs (under 32 MiB) are combined, all of them once there are
    /// two, and each group's small point files (`vault::combine_points`). A blob stored twice keeps a copy that reads
    /// back right. Runs alone (the vault lock, exclusive); any chain that does not load stops
    /// it before anything is removed. Progress counts the bytes of the packs to
    /// rewrite, as they are copied.
    pub fn gc(&self, progress: Progress<'_>) -> Result<GcReport> {
        let _lock = self.lock(LockMode::Exclusive)?;
        clean_leftovers(&self.layout)?;
        let mut point_files_combined = 0;
        for group in self.group_names()? {
            point_files_combined += self.combine_all_points(&group)?;
        }
        let mut live = self.mark()?;
        // The pack indexes are read one at a time, not into a blob index: a vault of many
        // small packs (one per ingest until a GC) is not held whole. The handle's snapshot is
        // dropped too; the next operation lists the packs again.
        self.forget_index();
        let pack_ids = self.layout.pack_ids()?;
        let mut report = GcReport {
            packs_before: pack_ids.len() as u64,
            point_files_combined,
            ..GcReport::default()
        };
        // The copy of each live blob GC keeps: the first in pack order. A second copy (another
        // process's ingest stored it again, a combine cut before it removed its old packs) is
        // noted: it goes only once the kept one reads back right.
        let mut plans: Vec<PackPlan> = Vec::with_capacity(pack_ids.len());
        let mut kept_at: HashMap<(BlobId, [u8; 32]), usize> = HashMap::with_capacity(live.len());
        let mut copies = Copies::new();
        for id in &pack_ids {
            let pi = PackIndex::load(&self.layout, id)?;
            report.bytes_before += pi.pack_len;
            let mut kept = Vec::new();
            for e in &pi.entries {
                let key = (e.id, e.hash);
                if live.remove(&key) {
                    kept_at.insert(key, plans.len());
                    kept.push(*e);
                } else if let Some(&at) = kept_at.get(&key) {
                    copies
                        .entry(key)
                        .or_insert((at, Vec::new()))
                        .1
                        .push((plans.len(), *e));
                }
            }
            plans.push(PackPlan {
                pack: pi.pack,
                pack_len: pi.pack_len,
                entries: pi.entries.len(),
                live: kept,
                gave_up_a_copy: false,
            });
        }
        drop((live, kept_at));
        self.keep_sound_copies(&mut plans, copies)?;
        report.live_blobs = plans.iter().map(|p| p.live.len() as u64).sum();
        report.live_bytes = plans.iter().map(PackPlan::live_bytes).sum();
        let (mut gone, mut rewrite, mut small) = (Vec::new(), Vec::new(), Vec::new());
        for p in plans {
            let (l, all) = (p.live_bytes(), p.entry_bytes());
            if l == 0 {
                gone.push(p);
            } else if p.gave_up_a_copy || (all - l) * 4 > all * REWRITE_DEAD_PER_4 {
                rewrite.push(p);
            } else if l < SMALL_PACK {
                small.push(p);
            }
        }
        // Small packs (an ingest every 30 seconds writes one each, until the ingests combine
        // them by tiers, `vault::combine`) are combined, all of them once there are two, or
        // with the packs rewritten (whose copies would make a small pack of their own): GC
        // leaves at most one, so the vault keeps about one file per pack's worth of data
        // whatever the number of points. It reads what ingests wrote since the last GC and one
        // small pack from before.
        if small.len() >= 2 || !(small.is_empty() || rewrite.is_empty()) {
            rewrite.append(&mut small);
        }
        report.packs_removed = gone.len() as u64;
        // Copy the live blobs of the packs to rewrite into new packs.
        let total: u64 = rewrite.iter().map(PackPlan::live_bytes).sum();
        let mut done = 0u64;
        if !progress(0, total) {
            return Err(Error::Cancelled { what: "gc".into() });
        }
        let mut copier = Copier::new(&self.layout, total);
        let mut copied = Vec::new();
        for p in rewrite {
            let Some((f, path)) = open_existing(&self.layout, &p.pack)? else {
                report.damaged_packs.push(p.pack);
                continue;
            };
            let Some(blobs) = Copier::read(&f, &path, &p.live)? else {
                // Removing nothing from it, and copying nothing: verify reports the damage.
                report.damaged_packs.push(p.pack);
                continue;
            };
            copier.write(&p.live, blobs, |n| {
                done += n;
                if progress(done, total) {
                    Ok(())
                } else {
                    Err(Error::Cancelled { what: "gc".into() })
                }
            })?;
            copied.push(p);
        }
        let published = copier.publish()?;
        report.packs_written = published.len() as u64;
        report.packs_rewritten = copied.len() as u64;
        report.blobs_removed = gone
            .iter()
            .chain(&copied)
            .map(|p| (p.entries - p.live.len()) as u64)
            .sum();
        // The new packs are published: now the old ones go, indexes first.
        let old: Vec<PackId> = gone.iter().chain(&copied).map(|p| p.pack).collect();
        drop((gone, copied));
        // The sorted index of the packs that stay, before any pack goes: whatever the crash,
        // the index names only packs that are there. Their indexes are read again (after a GC
        // they are few: small packs were combined).
        let going: HashSet<&PackId> = old.iter().collect();
        let mut stay: Vec<PackIndex> = Vec::new();
        for id in pack_ids.iter().filter(|id| !going.contains(id)) {
            stay.push(PackIndex::load(&self.layout, id)?);
        }
        stay.extend(published);
        stay.sort_by_key(|p| p.pack);
        SortedIndex::write(&self.layout, &stay.iter().collect::<Vec<_>>())?;
        remove_packs(&self.layout, &old)?;
        report.packs_after = stay.len() as u64;
        report.bytes_after = stay.iter().map(|p| p.pack_len).sum();
        progress(total, total);
        Ok(report)
    }

    /// For each blob stored more than once, reads back the copy GC would keep; a damaged one
    /// (or one in a pack file gone or cut short) is given up for the first other copy that
    /// reads back, which is then kept, and its pack rewritten; when none does, nothing changes
    /// (verify reports the damage). So GC never removes the only sound copy of a blob.
    fn keep_sound_copies(&self, plans: &mut [PackPlan], copies: Copies) -> Result<()> {
        for (key, (kept_at, spares)) in copies {
            let Some(kept) = plans[kept_at]
                .live
                .iter()
                .position(|e| (e.id, e.hash) == key)
            else {
                continue;
            };
            let entry = plans[kept_at].live[kept];
            if reads_back(&self.layout, &plans[kept_at].pack, &[entry])? {
                continue;
            }
            for (at, spare) in spares {
                if reads_back(&self.layout, &plans[at].pack, &[spare])? {
                    plans[kept_at].live.remove(kept);
                    plans[kept_at].gave_up_a_copy = true;
                    plans[at].live.push(spare);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every blob some point of some group references. A head or chain that does not load
    /// stops GC: it could not tell what that group needs.
    /// Every stored form of a blob some point reads that its signatures cover: (id, sealed
    /// hash). A copy of another form (a forged one, another group's under the same id) is dead.
    fn mark(&self) -> Result<HashSet<(BlobId, [u8; 32])>> {
        // A group whose head is lost still owns its blobs: stop before anything is removed.
        if let Some((dir, why)) = super::repair::headless_groups(&self.layout)?.pop() {
            return Err(Error::corrupt(
                "vault",
                None,
                format!("garbage collection needs every group's chain: {why}"),
            )
            .with_path(&dir));
        }
        let mut live = HashSet::new();
        for (path, head) in Head::all(&self.layout)? {
            let group = head
                .map_err(|e| {
                    Error::corrupt(
                        "group head",
                        None,
                        format!(
                            "garbage collection needs every group's chain: {}",
                            e.without_advice()
                        ),
                    )
                    .with_path(&path)
                })?
                .group;
            let chain = chain::load(&self.layout, &group)?;
            // One point file in memory at a time.
            for l in &chain.links {
                let p = chain.read(l)?;
                let body = p.file.body()?;
                for d in &body.folded {
                    for e in d.extents.iter() {
                        if let Source::Blob { id, .. } = e.source {
                            live.extend(body.hashes.of(&id).map(|h| (id, h)));
                        }
                    }
                }
            }
        }
        Ok(live)
    }
}
