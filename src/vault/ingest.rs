//! Ingesting a bundle without the key: integrity, place in the chain, new blobs into packs,
//! the point committed by its group's head.

use std::collections::HashMap;
use std::path::Path;

use super::chain;
use super::head::Head;
use super::layout::{Layout, PackId, lock};
use super::pack::{ClosedPack, PACK_TARGET, PackIndex, PackWriter};
use super::point::{DiskInfo, PointFile};
use super::records::write_shipped_from;
use super::sorted_index::{Confirmed, Confirmer};
use super::{BlobIndex, Vault, repair, trust};
use crate::bundle::Bundle;
use crate::bundle::format::BundleKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::sys::LockMode;
use rayon::prelude::*;

/// What [`Vault::ingest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The bundle's group.
    pub group: String,
    /// The point's id and sequence number.
    pub point: PointId,
    /// The point's sequence number.
    pub seq: u64,
    /// False when the point was already in the chain (the same bundle ingested again): nothing
    /// was changed.
    pub added: bool,
    /// Blobs stored, and their stored bytes.
    pub blobs_stored: u64,
    /// Stored bytes of those blobs.
    pub bytes_stored: u64,
    /// Blobs of the bundle the vault held already.
    pub blobs_deduplicated: u64,
    /// Small packs combined into larger ones after the commit, when the vault was otherwise
    /// idle (so that it keeps about one file per 32 MiB stored whatever the number of points;
    /// see `docs/SCALE.md`).
    pub packs_combined: u64,
    /// The group's point files combined into a segment after the commit, when the vault was
    /// otherwise idle (so that a long chain is a few files; see `docs/SCALE.md`).
    pub point_files_combined: u64,
}

impl Vault {
    /// Ingests a bundle, without the key. Its integrity is checked (as [`Bundle::verify`]),
    /// and its authenticity: the point must be signed by the group's key (the one pinned with
    /// [`pin_key`](Self::pin_key), else the one the group's base named), else
    /// [`Authentication`](crate::ErrorKind::Authentication). A base bundle starts a group; an
    /// incremental one must name the group's newest point as its parent, cover every disk of
    /// the group at the same sizes, and be sealed under the group's key id, else
    /// [`ChainBroken`](crate::ErrorKind::ChainBroken) (gaps, forks, unknown groups). A bundle
    /// of a point already in the chain is a no-op, reported by [`Ingested::added`]. A blob is
    /// stored unless the vault holds it with the same sealed bytes; nothing is published
    /// before every check passed, and the point is committed atomically. Then, once the
    /// ingest's locks are let go and only when no other operation is at work in the vault,
    /// small packs are combined ([`Ingested::packs_combined`]; see `docs/SCALE.md`), so the
    /// vault keeps about one file per 32 MiB stored without a GC. Progress counts the
    /// bundle's stored blob bytes.
    pub fn ingest(&self, bundle: impl AsRef<Path>, progress: Progress<'_>) -> Result<Ingested> {
        let bundle = Bundle::open(bundle)?;
        // (0, total) first and (total, total) last, whether the point was added or was there.
        let total = bundle.blob_section_len();
        if !progress(0, total) {
            return Err(Error::Cancelled {
                what: "ingest".into(),
            });
        }
        let mut ingested = self.ingest_opened(&bundle, progress)?;
        if ingested.added {
            // The ingest's locks are let go: small packs are combined only when the vault is
            // otherwise idle. A failure is not the ingest's (its point is committed): the
            // vault is sound, and a later ingest lists the packs again and tries again.
            ingested.packs_combined = self.combine_small().unwrap_or_else(|_| {
                self.forget_index();
                0
            });
            // The same for the group's point files: a failure leaves them as they were (or a
            // segment beside them, with the group's in-progress marker: the next open cleans).
            ingested.point_files_combined = self.combine_new_points(&ingested.group).unwrap_or(0);
        }
        progress(total, total);
        Ok(ingested)
    }

    fn ingest_opened(&self, bundle: &Bundle, progress: Progress<'_>) -> Result<Ingested> {
        let h = bundle.header().clone();
        let _vault = self.lock(LockMode::Shared)?;
        let _group = lock(
            &self.layout.group_lock(&h.group),
            LockMode::Exclusive,
            &format!(
                "group `{}` in vault {}",
                h.group,
                self.layout.root().display()
            ),
        )?;
        let id = bundle.point_id();
        let head = Head::load(&self.layout, &h.group)?;
        let not_added = || Ingested {
            group: h.group.clone(),
            point: id,
            seq: h.seq,
            added: false,
            blobs_stored: 0,
            bytes_stored: 0,
            blobs_deduplicated: 0,
            packs_combined: 0,
            point_files_combined: 0,
        };
        let broken = |detail: String| Error::ChainBroken {
            group: h.group.clone(),
            detail,
        };
        // The key the point must be signed by: the group's (the base's or the pinned one).
        let mut signer = h.verifying_key;
        let count = match (&head, h.kind) {
            (None, BundleKind::Base) => 1,
            (None, BundleKind::Incremental) => {
                return Err(broken(format!(
                    "the vault has no chain for this group, so point {} (sequence {}) has \
                     nothing to follow; ingest the group's base bundle first",
                    id.to_hex(),
                    h.seq
                )));
            }
            (Some(head), _) if head.point == id => return Ok(not_added()),
            (Some(head), BundleKind::Incremental) if head.point == h.parent => {
                // Only the newest point is read: ingest stays O(1) in the chain's length.
                let tip = chain::tip(&self.layout, head)?;
                signer = tip.header.verifying_key;
                if h.verifying_key != signer {
                    return Err(not_signed_by(bundle, &signer));
                }
                check_fits(bundle, &tip)
                    .map_err(|d| broken(format!("{d}; resynchronize the group")))?;
                if h.seq <= head.seq {
                    return Err(broken(format!(
                        "sequence {} does not follow the head's {}: ingest the group's bundles \
                         in sequence order, or resynchronize the group",
                        h.seq, head.seq
                    )));
                }
                head.count + 1
            }
            (Some(head), kind) => {
                // Not the group's signer: say so before anything about the chain.
                let group_key = chain::tip(&self.layout, head)?.header.verifying_key;
                if h.verifying_key != group_key {
                    return Err(not_signed_by(bundle, &group_key));
                }
                let c = chain::load(&self.layout, &h.group)?;
                if chain::contains(&c, &id, h.seq)? {
                    return Ok(not_added());
                }
                return Err(broken(match kind {
                    BundleKind::Base => format!(
                        "the group already has a chain (head: sequence {}); a new base \
                         bundle starts a new group",
                        head.seq
                    ),
                    BundleKind::Incremental => format!(
                        "point {} (sequence {}) follows {}, but the group's newest point is \
                         {} (sequence {}): a gap or a fork; ingest the missing bundles first, \
                         or resynchronize the group",
                        id.to_hex(),
                        h.seq,
                        h.parent.to_hex(),
                        head.point.to_hex(),
                        head.seq
                    ),
                }));
            }
        };
        // A base is signed by the key it names; every point by the pinned one, if pinned.
        if let Some(pinned) = trust::load(&self.layout, &h.group)?
            && pinned != signer
        {
            return Err(not_signed_by(bundle, &pinned));
        }
        // Check the whole bundle and store what the vault lacks; nothing is published before
        // every byte checked out, and nothing is referenced until the head is replaced.
        let mut stored = Stored::default();
        let index = self.ingest_index()?;
        let mut held = Held::new(&self.layout, &index);
        // The signature is checked once the whole bundle read back sound (damage is Corrupt, a
        // forgery Authentication), before anything is published.
        let packs = stored.write(
            &self.layout,
            bundle,
            &mut held,
            self.ingest_batch,
            &mut *progress,
            || bundle.check_signature(&signer),
        )?;
        let stale = held.stale;
        // The snapshot is let go before the handle's copy is updated in place (a copy still
        // held would make that update clone the whole index: every ingest O(blobs)).
        drop(held);
        drop(index);
        // A failed commit leaves the packs: they are published, so another ingest may already
        // count on their blobs, and the head may be in place (a failed sync of its directory).
        // Packs no point references are GC's.
        self.commit(bundle, count)?;
        if stale {
            // Another process's GC removed packs the snapshot knew: list them again next time.
            self.forget_index();
        } else {
            self.note_published(packs);
            self.refresh_sorted();
        }
        Ok(Ingested {
            added: true,
            blobs_stored: stored.blobs,
            bytes_stored: stored.bytes,
            blobs_deduplicated: stored.deduplicated,
            ..not_added()
        })
    }
}

impl Vault {
    /// Publishes the point file of `bundle` and then the head naming it (the commit), inside
    /// the group's in-progress marker.
    fn commit(&self, bundle: &Bundle, count: u64) -> Result<()> {
        let h = bundle.header();
        let id = bundle.point_id();
        let file = PointFile {
            header_bytes: bundle.header_bytes().to_vec(),
            header: h.clone(),
            first: (h.parent, h.kind, h.seq),
            records: 1,
            shipped: 1,
            checkpoint: false,
            disks: bundle
                .disks()
                .iter()
                .map(|d| DiskInfo {
                    name: d.name.clone(),
                    size: d.size(),
                })
                .collect(),
            body: None,
        };
        repair::begin(&self.layout, &h.group)?;
        let path = self
            .layout
            .points(&h.group)
            .join(PointFile::file_name(h.seq, &id));
        file.publish(&path, true, |w| {
            write_shipped_from(
                w,
                &path,
                (bundle.header_bytes(), h),
                bundle.path(),
                bundle.manifests_span(),
                bundle.table_span(),
                bundle.signature(),
            )
        })?;
        Head {
            group: h.group.clone(),
            seq: h.seq,
            point: id,
            count,
        }
        .store(&self.layout)?;
        repair::end(&self.layout, &h.group)
    }
}

/// The error for a bundle whose header names another signer than the group's: transport damage
/// (the trailer does not hold) is `Corrupt`; a sound bundle signed by someone else is
/// `Authentication`.
fn not_signed_by(bundle: &Bundle, group_key: &crate::crypto::VerifyingKey) -> Error {
    let damaged = std::fs::File::open(bundle.path())
        .map_err(|e| Error::io("opening the bundle", Some(bundle.path()), e))
        .and_then(|f| {
            crate::format::trailer::verify_stream(&mut std::io::BufReader::new(f), "bundle")
        });
    match damaged {
        Err(e) => e.with_path(bundle.path()),
        Ok(_) => Error::Authentication {
            what: format!("bundle {}", bundle.path().display()),
            detail: format!(
                "it is signed by key {}, not by group `{}`'s key {group_key}: it was not made by \
                 the holder of the group's key",
                bundle.header().verifying_key,
                bundle.header().group
            ),
        },
    }
}

/// Whether an incremental bundle fits the group whose newest point is `tip`: the same disks at
/// the same sizes, the same key.
fn check_fits(bundle: &Bundle, tip: &PointFile) -> std::result::Result<(), String> {
    let h = bundle.header();
    if h.key_id() != tip.header.key_id() {
        return Err(format!(
            "the bundle is sealed under key {}; the group's chain under key {}",
            h.key_id(),
            tip.header.key_id()
        ));
    }
    // A disk's size may change from one point to the next (a resync point carries a resized
    // disk, signed like the rest): the fold gives each point its own size.
    for d in &tip.disks {
        if !bundle.disks().iter().any(|m| m.name == d.name) {
            return Err(format!("the point does not cover disk `{}`", d.name));
        }
    }
    if bundle.disks().len() != tip.disks.len() {
        return Err("the point lists disks the group does not have".into());
    }
    Ok(())
}

/// Which blobs the vault holds, for one ingest: the blob index's answer, taken only while the
/// pack it names and its index are still there (the snapshot may predate another process's GC, which
/// cannot run while the ingest holds the vault's shared lock). Each pack is looked at once. For
/// the packs the sorted index answers for, its answer counts once the pack's own index says the
/// same; an answer that cannot be confirmed is a blob stored again, never one taken as held.
pub(super) struct Held<'a> {
    layout: &'a Layout,
    index: &'a BlobIndex,
    packs: HashMap<PackId, bool>,
    confirmer: Confirmer<'a>,
    /// A pack the snapshot names is gone, or the sorted index said what its pack does not.
    stale: bool,
}

impl<'a> Held<'a> {
    pub(super) fn new(layout: &'a Layout, index: &'a BlobIndex) -> Self {
        Held {
            layout,
            index,
            packs: HashMap::new(),
            confirmer: Confirmer::new(layout),
            stale: false,
        }
    }

    pub(super) fn holds(&mut self, id: &BlobId, hash: &[u8; 32]) -> bool {
        let Some((pack, _)) = self.index.get(id, hash) else {
            return self.sorted_holds(id, hash);
        };
        let layout = self.layout;
        let there = *self
            .packs
            .entry(*pack)
            .or_insert_with(|| layout.pack_index(pack).is_file() && layout.pack(pack).is_file());
        self.stale |= !there;
        there || self.sorted_holds(id, hash)
    }

    fn sorted_holds(&mut self, id: &BlobId, hash: &[u8; 32]) -> bool {
        let Some(sorted) = &self.index.sorted else {
            return false;
        };
        match sorted.find(id, hash) {
            Ok(None) => false,
            Ok(Some(found)) => match self.confirmer.confirm(&found, id, hash) {
                Confirmed::Held(..) => true,
                Confirmed::Gone | Confirmed::Disagrees => {
                    self.stale = true;
                    false
                }
            },
            // Unreadable: the blob is stored, and the next ingest opens the index again.
            Err(_) => {
                self.stale = true;
                false
            }
        }
    }
}

/// Counts of what ingest stored.
#[derive(Default)]
struct Stored {
    blobs: u64,
    bytes: u64,
    deduplicated: u64,
}

impl Stored {
    /// Streams the bundle (checking it whole) and copies the blobs `index` lacks into packs:
    /// the caller's thread reads (and hashes the bundle's trailer), the pool hashes each stored
    /// blob for the pack index, a writer thread appends to the packs. The packs are published
    /// only once the whole bundle checked out.
    fn write(
        &mut self,
        layout: &Layout,
        bundle: &Bundle,
        held: &mut Held<'_>,
        batch_limit: usize,
        progress: Progress<'_>,
        authentic: impl FnOnce() -> Result<()>,
    ) -> Result<Vec<PackIndex>> {
        let total = bundle.blob_section_len();
        let mut done = 0u64;
        std::thread::scope(|scope| -> Result<Vec<PackIndex>> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Hashed>>(BATCHES_IN_FLIGHT - 2);
            let writer = scope.spawn(move || -> Result<Vec<ClosedPack>> {
                let mut open: Option<PackWriter> = None;
                // Full packs are closed at once (their write buffers freed): memory stays
                // bounded whatever the bundle's size; they are published once it all checked.
                let mut full = Vec::new();
                for batch in rx {
                    for (id, bytes, hash) in batch {
                        let w = match open.as_mut() {
                            Some(w) => w,
                            None => open.insert(PackWriter::create(layout)?),
                        };
                        w.add(&id, &bytes, hash)?;
                        if w.len() >= PACK_TARGET
                            && let Some(w) = open.take()
                        {
                            full.push(w.close()?);
                        }
                    }
                }
                if let Some(w) = open {
                    full.push(w.close()?);
                }
                Ok(full)
            });
            let mut batch: Vec<(usize, BlobId, Vec<u8>)> = Vec::new();
            let mut batch_bytes = 0usize;
            let rows = bundle.rows();
            let send = |batch: &mut Vec<(usize, BlobId, Vec<u8>)>| -> Result<()> {
                // Each blob's sealed bytes must be the ones the signed table names.
                let hashed: Vec<Hashed> = std::mem::take(batch)
                    .into_par_iter()
                    .map(|(i, id, b)| {
                        crate::bundle::check_sealed(&rows[i], &b)?;
                        Ok((id, b, rows[i].hash))
                    })
                    .collect::<Result<_>>()?;
                tx.send(hashed).map_err(|_| {
                    Error::io(
                        "writing a pack",
                        None,
                        std::io::Error::other("the pack writer stopped"),
                    )
                })
            };
            let read = bundle.for_each_entry(|i, id, bytes| {
                done += (super::pack::ENTRY_LEN + bytes.len()) as u64;
                if held.holds(id, &rows[i].hash) {
                    self.deduplicated += 1;
                } else {
                    self.blobs += 1;
                    self.bytes += bytes.len() as u64;
                    batch_bytes += bytes.len();
                    batch.push((i, *id, bytes.to_vec()));
                    if batch_bytes >= batch_limit {
                        batch_bytes = 0;
                        send(&mut batch)?;
                    }
                }
                if !progress(done, total) {
                    return Err(Error::Cancelled {
                        what: "ingest".into(),
                    });
                }
                Ok(())
            });
            let sent = read.and_then(|_| send(&mut batch));
            drop(tx);
            let packs = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // The bundle's own error explains a failed send; report it first.
            sent?;
            let packs = packs?;
            authentic()?;
            // A pack published is left if a later one fails: another ingest may already count
            // on it. Packs no point references are GC's.
            packs.into_iter().map(|w| w.publish(layout)).collect()
        })
    }
}

/// Stored bytes of new blobs hashed together on the pool, by default.
pub(super) const DEFAULT_BATCH: usize = 32 << 20;
/// Batches an ingest may hold at once: one being read and then checked on the pool, two queued
/// for the pack writer (the channel's bound), one being written.
pub(super) const BATCHES_IN_FLIGHT: usize = 4;
/// The smallest budget [`Vault::with_ingest_memory`] takes.
pub(super) const MIN_MEMORY: usize = 4 << 20;

/// A blob to store: id, stored bytes, their BLAKE3.
type Hashed = (BlobId, Vec<u8>, [u8; 32]);
