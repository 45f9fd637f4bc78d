//! Ingesting a bundle without the key: integrity, place in the chain, new blobs into packs,
//! the point committed by its group's head.

use std::path::Path;

use super::chain;
use super::head::Head;
use super::layout::{Layout, lock};
use super::pack::{PACK_TARGET, PackWriter};
use super::point::{DiskInfo, PointFile};
use super::{BlobIndex, Vault};
use crate::bundle::Bundle;
use crate::bundle::format::{BundleKind, encode_manifests};
use crate::error::{Error, Result};
use crate::fsutil::list_dir;
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
}

impl Vault {
    /// Ingests a bundle, without the key. Its integrity is checked (as
    /// [`Bundle::verify`]); a base bundle starts a group; an incremental one must name the
    /// group's newest point as its parent, cover every disk of the group at the same sizes, and
    /// be sealed under the group's key id, else [`ChainBroken`](crate::ErrorKind::ChainBroken)
    /// (gaps, forks, unknown groups). The same bundle again is a no-op, reported by
    /// [`Ingested::added`]. Only blobs the vault lacks are stored; the point is committed
    /// atomically. Progress counts the bundle's stored blob bytes.
    pub fn ingest(&self, bundle: impl AsRef<Path>, progress: Progress<'_>) -> Result<Ingested> {
        let bundle = Bundle::open(bundle)?;
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
        };
        let broken = |detail: String| Error::ChainBroken {
            group: h.group.clone(),
            detail,
        };
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
                check_fits(&bundle, &tip).map_err(broken)?;
                if h.seq <= head.seq {
                    return Err(broken(format!(
                        "sequence {} does not follow the head's {}",
                        h.seq, head.seq
                    )));
                }
                head.count + 1
            }
            (Some(head), kind) => {
                let (_, c) = chain::load(&self.layout, &h.group, false)?;
                if chain::contains(&c, &id) {
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
                         {} (sequence {}): a gap or a fork",
                        id.to_hex(),
                        h.seq,
                        h.parent.to_hex(),
                        head.point.to_hex(),
                        head.seq
                    ),
                }));
            }
        };
        // Check the whole bundle and store what the vault lacks; nothing is referenced until
        // the head is replaced, so a failure leaves at most packs for GC.
        let mut stored = Stored::default();
        let index = self.refreshed_index()?;
        stored.write(&self.layout, &bundle, &index, progress)?;
        let manifests = encode_manifests(bundle.disks())?;
        if *blake3::hash(&manifests).as_bytes() != h.manifests_digest {
            return Err(Error::corrupt(
                "bundle manifests",
                None,
                "they do not encode back to the bytes the header's digest names",
            )
            .with_path(bundle.path()));
        }
        let file = PointFile {
            merged: false,
            headers: vec![bundle.header_bytes().to_vec()],
            header: h.clone(),
            first: (h.parent, h.kind, h.seq),
            disks: bundle
                .disks()
                .iter()
                .map(|d| DiskInfo {
                    name: d.name.clone(),
                    size: d.size(),
                })
                .collect(),
            manifests,
            tag: *bundle.tag(),
        };
        let dir = self.layout.points(&h.group);
        crate::fsutil::create_private_dir(&dir)
            .map_err(|e| Error::io("creating", Some(&dir), e))?;
        let path = dir.join(PointFile::file_name(h.seq, &id));
        crate::fsutil::write_atomic(&path, &file.encode()?, true)?;
        Head {
            group: h.group.clone(),
            seq: h.seq,
            point: id,
            count,
        }
        .store(&self.layout)?;
        Ok(Ingested {
            added: true,
            blobs_stored: stored.blobs,
            bytes_stored: stored.bytes,
            blobs_deduplicated: stored.deduplicated,
            ..not_added()
        })
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
    for d in &tip.disks {
        match bundle.disks().iter().find(|m| m.name == d.name) {
            None => return Err(format!("the point does not cover disk `{}`", d.name)),
            Some(m) if m.size() != d.size => {
                return Err(format!(
                    "disk `{}` is {} bytes in the point and {} in the group",
                    d.name,
                    m.size(),
                    d.size
                ));
            }
            Some(_) => {}
        }
    }
    if bundle.disks().len() != tip.disks.len() {
        return Err("the point lists disks the group does not have".into());
    }
    Ok(())
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
        index: &BlobIndex,
        progress: Progress<'_>,
    ) -> Result<()> {
        let total = bundle.blob_section_len();
        let mut done = 0u64;
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Hashed>>(2);
            let writer = scope.spawn(move || -> Result<Vec<PackWriter>> {
                let mut open: Option<PackWriter> = None;
                let mut full = Vec::new();
                for batch in rx {
                    for (id, bytes, hash) in batch {
                        let w = match open.as_mut() {
                            Some(w) => w,
                            None => open.insert(PackWriter::create(layout)?),
                        };
                        w.add(&id, &bytes, hash)?;
                        if w.len() >= PACK_TARGET {
                            full.extend(open.take());
                        }
                    }
                }
                full.extend(open);
                Ok(full)
            });
            let mut batch: Vec<(BlobId, Vec<u8>)> = Vec::new();
            let mut batch_bytes = 0usize;
            let send = |batch: &mut Vec<(BlobId, Vec<u8>)>| -> Result<()> {
                let hashed: Vec<Hashed> = std::mem::take(batch)
                    .into_par_iter()
                    .map(|(id, b)| {
                        let h = *blake3::hash(&b).as_bytes();
                        (id, b, h)
                    })
                    .collect();
                tx.send(hashed).map_err(|_| {
                    Error::io(
                        "writing a pack",
                        None,
                        std::io::Error::other("the pack writer stopped"),
                    )
                })
            };
            let read = bundle.for_each_blob(|id, bytes| {
                done += (super::pack::ENTRY_LEN + bytes.len()) as u64;
                if index.contains(id) {
                    self.deduplicated += 1;
                } else {
                    self.blobs += 1;
                    self.bytes += bytes.len() as u64;
                    batch_bytes += bytes.len();
                    batch.push((*id, bytes.to_vec()));
                    if batch_bytes >= HASH_BATCH {
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
            for w in packs? {
                w.finish(layout)?;
            }
            Ok(())
        })
    }
}

/// Stored bytes of new blobs hashed together on the pool.
const HASH_BATCH: usize = 32 << 20;

/// A blob to store: id, stored bytes, their BLAKE3.
type Hashed = (BlobId, Vec<u8>, [u8; 32]);

/// Removes what interrupted operations left: temporary files, packs without an index, point
/// files their group's head does not reach (or of a group without a head). Runs only under the
/// exclusive vault lock. Indexed packs nothing references are garbage collection's job.
pub(crate) fn clean_leftovers(layout: &Layout) -> Result<()> {
    let remove = |p: &Path| {
        std::fs::remove_file(p).map_err(|e| Error::io("removing a leftover", Some(p), e))
    };
    let is = |p: &Path, ext: &str| p.extension().is_some_and(|e| e == ext);
    for p in list_dir(&layout.packs())? {
        let orphan = is(&p, "rcpack") && !p.with_extension("rcidx").exists();
        if is(&p, "tmp") || orphan {
            remove(&p)?;
        }
    }
    for p in list_dir(&layout.heads())? {
        if is(&p, "tmp") {
            remove(&p)?;
        }
    }
    // A group's points directory and its head file share a name.
    for dir in list_dir(&layout.root().join("points"))? {
        let Some(stem) = dir.file_name() else {
            continue;
        };
        // (Not `set_extension`: group names may hold dots.)
        let head_path = crate::fsutil::with_suffix(&layout.heads().join(stem), ".rchead");
        let keep: Vec<std::path::PathBuf> = if !head_path.exists() {
            // The first ingest of a group crashed before its head: nothing is committed.
            Vec::new()
        } else {
            // A head or chain that does not load is damage for verify to report: touch nothing.
            match Head::read(&head_path).and_then(|h| chain::load(layout, &h.group, false)) {
                Ok((_, c)) if c.first().is_some_and(|p| p.path.parent() == Some(&dir)) => {
                    c.into_iter().map(|p| p.path).collect()
                }
                _ => continue,
            }
        };
        for p in list_dir(&dir)? {
            if !keep.contains(&p) {
                remove(&p)?;
            }
        }
        if keep.is_empty() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}
