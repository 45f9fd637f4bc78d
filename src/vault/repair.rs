//! Leftovers of interrupted operations, and a head rebuilt from intact point files. Opening a
//! vault never deletes what might be data: only an explicit in-progress marker
//! (`points/<group>/in-progress`, `docs/FORMAT.md` §15.7) proves that point files the head does
//! not reach are unfinished work.

use std::path::{Path, PathBuf};

use super::Vault;
use super::chain;
use super::head::Head;
use super::layout::{Layout, PENDING};
use super::point::{Loc, PointFile, StoredPoint, stream};
use super::records::Record;
use super::segment::{SegName, Segment};
use crate::bundle::format::BundleKind;
use crate::error::{Error, Result};
use crate::fsutil::{list_dir, remove, sync_dir, write_atomic};
use crate::id::PointId;
use crate::sys::LockMode;

/// The (sequence, id) of every record of a point file, oldest first (a checkpoint gives the
/// point it stands at).
pub(crate) fn record_ids(loc: &Loc) -> Result<Vec<(u64, PointId)>> {
    let mut r = stream(loc, 1 << 20)?;
    let summary = PointFile::read_summary(&mut r).map_err(|e| e.with_path(&loc.path))?;
    let mut out = Vec::new();
    for _ in 0..summary.records {
        let rec = Record::read(&mut r).map_err(|e| e.with_path(&loc.path))?;
        out.push((rec.header.seq, rec.id()));
    }
    Ok(out)
}

/// Marks `group`'s point files as being changed (before an ingest or prune writes any).
pub(crate) fn begin(layout: &Layout, group: &str) -> Result<()> {
    let dir = layout.points(group);
    crate::fsutil::create_private_dir(&dir).map_err(|e| Error::io("creating", Some(&dir), e))?;
    crate::fsutil::write_atomic_unscanned(&layout.pending(group), &[], true)
}

/// Ends what [`begin`] started, once the head and every file are published.
pub(crate) fn end(layout: &Layout, group: &str) -> Result<()> {
    remove(&layout.pending(group), "an in-progress marker")?;
    sync_dir(&layout.points(group))
}

/// Removes what interrupted operations left: temporary files, packs without an index, and, in a
/// group whose in-progress marker says an operation did not finish, the point files its head
/// does not reach (all of them when the group has no head: its first ingest did not commit).
/// Point files of a group without a marker are never removed, whatever their head: a missing
/// or damaged head is damage for verify to report and [`Vault::rebuild_head`] to repair. Runs
/// only under the exclusive vault lock. Indexed packs nothing references are GC's job.
pub(crate) fn clean_leftovers(layout: &Layout) -> Result<()> {
    let remove_leftover = |p: &Path| remove(p, "a leftover");
    let is = |p: &Path, ext: &str| p.extension().is_some_and(|e| e == ext);
    for p in list_dir(&layout.packs())? {
        let orphan = is(&p, "rcpack") && !p.with_extension("rcidx").exists();
        if is(&p, "tmp") || orphan {
            remove_leftover(&p)?;
        }
    }
    for p in list_dir(&layout.heads())? {
        if is(&p, "tmp") {
            remove_leftover(&p)?;
        }
    }
    let trust = layout.root().join("trust");
    if trust.exists() {
        for p in list_dir(&trust)? {
            if is(&p, "tmp") {
                remove_leftover(&p)?;
            }
        }
    }
    for dir in list_dir(&layout.root().join("points"))? {
        // A temporary file is never committed data (publishing renames it away).
        for p in list_dir(&dir)? {
            if is(&p, "tmp") {
                remove_leftover(&p)?;
            }
        }
        let marker = dir.join(PENDING);
        if !marker.exists() {
            continue;
        }
        let Some(stem) = dir.file_name() else {
            continue;
        };
        // A group's points directory and its head file share a name (not `set_extension`:
        // group names may hold dots).
        let head_path = crate::fsutil::with_suffix(&layout.heads().join(stem), ".rchead");
        // A set: a long chain's directory is not searched once per file.
        let chain = if !head_path.exists() {
            None
        } else {
            // A head or chain that does not load is damage: touch nothing.
            match Head::read(&head_path).and_then(|h| chain::load(layout, &h.group)) {
                Ok(c) if c.dir() == dir => Some(c),
                _ => continue,
            }
        };
        let keep: std::collections::HashSet<PathBuf> =
            chain.as_ref().map(chain::Chain::files).unwrap_or_default();
        for p in list_dir(&dir)? {
            if keep.contains(&p) || p == marker {
                continue;
            }
            // A segment holding the only sound copy of a point whose file does not check.
            let backs = |c: &chain::Chain| {
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(SegName::parse);
                name.and_then(|n| Segment::open(&p, n).ok())
                    .is_some_and(|s| super::combine_points::backs_a_damaged_point(&s, c))
            };
            if !chain.as_ref().is_some_and(backs) {
                remove_leftover(&p)?;
            }
        }
        remove_leftover(&marker)?;
        sync_dir(&dir)?;
        if keep.is_empty() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

/// Point directories holding point files but no head (a lost head: open never removes such
/// files without an in-progress marker; [`Vault::rebuild_head`] writes the head again), each
/// with what to tell the operator.
pub(crate) fn headless_groups(layout: &Layout) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for dir in list_dir(&layout.root().join("points"))? {
        let Some(stem) = dir.file_name() else {
            continue;
        };
        let head = crate::fsutil::with_suffix(&layout.heads().join(stem), ".rchead");
        if head.exists() {
            continue;
        }
        let points = list_dir(&dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rcpt" || e == "rcseg"))
            .count();
        if points > 0 {
            out.push((
                dir,
                format!(
                    "{points} point files or segments and no head ({} is missing): the group's newest point \
                     is unknown; rebuild the head from the intact, signed point files \
                     (`replicore vault rebuild-head`; replicore_vault_rebuild_head from C)",
                    head.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// What [`Vault::rebuild_head`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltHead {
    /// The newest point whose chain links back to a base through intact, signed files.
    pub point: PointId,
    /// Its sequence number.
    pub seq: u64,
    /// Point files in the chain.
    pub points: u64,
    /// Point files that did not read, or were signed by another key (left where they are).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Vault {
    /// Writes a head for `group` from its point files, when the head is missing or damaged:
    /// every file is read whole and its signature checked (under the group's pinned key, or the
    /// one its files agree on), and the head names the newest point whose chain links back to
    /// a base. Without the key. A head that reads is [`AlreadyExists`](crate::ErrorKind::AlreadyExists).
    ///
    /// It cannot tell a rolled-back chain (newest files removed): check the result against the
    /// last sequence number the primary shipped ([`expect_seq`](Self::expect_seq)).
    pub fn rebuild_head(&self, group: &str) -> Result<RebuiltHead> {
        let _lock = self.lock(LockMode::Exclusive)?;
        if let Ok(Some(h)) = Head::load(&self.layout, group) {
            return Err(Error::AlreadyExists {
                what: format!(
                    "the head of group `{group}` (sequence {}): it reads, nothing to rebuild",
                    h.seq
                ),
            });
        }
        let dir = self.layout.points(group);
        let pinned = super::trust::load(&self.layout, group)?;
        let mut skipped = Vec::new();
        // Every point file of its own, and every one a segment holds, each with its rank: a
        // point found in several files is read from the one the chain walk would read it
        // from (its file of its own, then the segment of the highest generation).
        let mut locs: Vec<(Loc, std::cmp::Reverse<u64>)> = Vec::new();
        for path in list_dir(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(n) = SegName::parse(name) {
                match Segment::open(&path, n) {
                    Ok(s) => locs.extend(
                        s.entries
                            .iter()
                            .map(|e| (s.loc(e), std::cmp::Reverse(n.generation))),
                    ),
                    Err(e) => skipped.push((path, e.to_string())),
                }
            } else if path.extension().is_some_and(|e| e == "rcpt") {
                locs.push((Loc::file(path), std::cmp::Reverse(u64::MAX)));
            }
        }
        // In an order of their own, whatever the file system lists first.
        locs.sort_by(|a, b| (&a.0.path, a.0.within).cmp(&(&b.0.path, b.0.within)));
        let mut files: Vec<(StoredPoint, std::cmp::Reverse<u64>)> = Vec::new();
        for (loc, rank) in locs {
            let what = |d: String| (loc.path.clone(), format!("{loc}: {d}"));
            match PointFile::read(&loc) {
                Ok(f) if f.header.group != group => {
                    skipped.push(what(format!("a point of group `{}`", f.header.group)))
                }
                Ok(f) if pinned.is_some_and(|k| k != f.header.verifying_key) => {
                    skipped.push(what("signed by another key than the pinned one".into()))
                }
                Ok(file) => files.push((StoredPoint { loc, file }, rank)),
                Err(e) => skipped.push(what(e.to_string())),
            }
        }
        // Newest first; of one point's forms, the one the walk reads first.
        files.sort_by_key(|(p, rank)| (std::cmp::Reverse(p.file.header.seq), *rank));
        let files: Vec<StoredPoint> = files.into_iter().map(|(p, _)| p).collect();
        for tip in &files {
            let mut count = 0u64;
            let mut n = 0u64;
            let mut at = tip;
            let linked = loop {
                count = count.saturating_add(at.file.shipped);
                n += 1;
                let (parent, kind, first_seq) = at.file.first;
                if kind == BundleKind::Base {
                    break true;
                }
                let Some(prev) = files.iter().find(|p| {
                    p.file.id() == parent
                        && p.file.header.seq < first_seq
                        && p.file.header.verifying_key == tip.file.header.verifying_key
                }) else {
                    break false;
                };
                at = prev;
            };
            if linked {
                let head = Head {
                    group: group.to_string(),
                    seq: tip.file.header.seq,
                    point: tip.file.id(),
                    count,
                };
                crate::fsutil::create_private_dir(&self.layout.heads())
                    .map_err(|e| Error::io("creating", Some(&self.layout.heads()), e))?;
                write_atomic(&self.layout.head(group), &head.encode()?, true)?;
                chain::load(&self.layout, group)?.check_all()?;
                return Ok(RebuiltHead {
                    point: head.point,
                    seq: head.seq,
                    points: n,
                    skipped,
                });
            }
        }
        Err(Error::NotFound {
            what: format!(
                "a chain of intact, signed point files of group `{group}` in {} that links back \
                 to a base",
                dir.display()
            ),
        })
    }
}
