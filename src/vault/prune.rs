//! Pruning by retention policy, without the key: each pruned point's changes are merged into
//! the next kept point, so every kept point materializes exactly as before and the chain stays
//! one hash chain of shipped headers (`docs/FORMAT.md` §15.4, §15.7).
//!
//! # Commit protocol
//!
//! A run of pruned points `P1 .. Pk` before a kept point `K` becomes one point file for `K`:
//! the records of `P1 .. Pk, K` copied as they are (signed headers, manifests and blob tables:
//! a hash chain), which every read folds (newer wins). When `P1` is the chain's first point,
//! the fold is a full base. Nothing the vault computes is stored, so nothing a keyless pruner
//! wrote can change a map. The new file replaces `K`'s (same name, same id) by an atomic
//! rename, inside the group's in-progress marker. The head never changes: it names the newest
//! point (never pruned) and counts shipped points, which merging keeps.
//!
//! So after a crash at any instant, each kept point's file is either the old one or the merged
//! one, and both chains link: from a merged `K` the walk goes to the point before `P1`; from an
//! old `K` it goes through `Pk .. P1`, whose files are only removed after every merged file is
//! published. Every kept point materializes the same either way; what pruning had not finished
//! is done by the next prune (the plan at the same `now` is the same), and pruned files left
//! behind are leftovers that [`Vault::open`] and GC remove. Blobs only pruned points used stay
//! in their packs until [`Vault::gc`].

use std::time::SystemTime;

use super::chain;
use super::chain::{Chain, Link};
use super::pins;
use super::point::{PointFile, RecoveryPoint};
use super::records::copy_span;
use super::{Vault, head::Head};
use crate::bundle::format::BundleKind;
use crate::error::{Error, Result};
use crate::fsutil::{remove, sync_dir};
use crate::id::PointId;
use crate::log::MarkerKind;
use crate::policy::{PlanPoint, RetentionPolicy, Rule, plan};
use crate::sys::LockMode;

/// One point and what the plan decided for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPoint {
    /// The point, as it was before pruning.
    pub point: RecoveryPoint,
    /// Whether an operator pinned it.
    pub pinned: bool,
    /// The rule that keeps it, or [`Rule::Expired`] when it is pruned.
    pub rule: Rule,
}

/// Pruned points merged into the kept point after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The kept point that took their changes.
    pub into: PointId,
    /// Its sequence number.
    pub seq: u64,
    /// The pruned points, oldest first.
    pub pruned: Vec<PointId>,
    /// Whether `into` became the chain's new base (the pruned points began the chain).
    pub new_base: bool,
}

/// What pruning planned, and did, for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPrune {
    /// The group.
    pub group: String,
    /// Every point of the chain before pruning, oldest first, with its decision.
    pub points: Vec<PlannedPoint>,
    /// The merges (planned, for a dry run).
    pub merges: Vec<Merge>,
}

/// What [`Vault::prune`] or [`Vault::plan_prune`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// False for a dry run ([`Vault::plan_prune`]): nothing was changed.
    pub applied: bool,
    /// Every group, sorted by name.
    pub groups: Vec<GroupPrune>,
}

impl PruneReport {
    /// Points pruned (or that would be).
    pub fn pruned(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.points)
            .filter(|p| !p.rule.keeps())
            .count()
    }

    /// Points kept.
    pub fn kept(&self) -> usize {
        self.groups.iter().map(|g| g.points.len()).sum::<usize>() - self.pruned()
    }
}

impl Vault {
    /// The retention plan for every group at `now`, changing nothing (a dry run of
    /// [`prune`](Self::prune)). Runs beside ingests and readers.
    pub fn plan_prune(&self, policy: &RetentionPolicy, now: SystemTime) -> Result<PruneReport> {
        policy.validate()?;
        let _lock = self.lock(LockMode::Shared)?;
        let mut report = PruneReport::default();
        for group in self.group_names()? {
            let (_, infos) = chain::load_with(&self.layout, &group, PointFile::info)?;
            report
                .groups
                .push(self.plan_group(&group, infos, policy, now)?);
        }
        Ok(report)
    }

    /// Prunes every group by `policy` at `now`, without the key (see the module docs of
    /// `vault::prune`): each pruned point is merged into the next kept one, the oldest kept
    /// point becoming the base when the chain's first points go; then the chain is read back
    /// and checked. Runs alone (the vault lock, exclusive: [`Locked`](crate::ErrorKind::Locked)
    /// while anyone else works in the vault). Space is given back by [`gc`](Self::gc).
    pub fn prune(&self, policy: &RetentionPolicy, now: SystemTime) -> Result<PruneReport> {
        policy.validate()?;
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut report = PruneReport {
            applied: true,
            groups: Vec::new(),
        };
        for group in self.group_names()? {
            let (chain, infos) = chain::load_with(&self.layout, &group, PointFile::info)?;
            let planned = self.plan_group(&group, infos, policy, now)?;
            if planned.merges.is_empty() {
                report.groups.push(planned);
                continue;
            }
            let keep: Vec<bool> = planned.points.iter().map(|p| p.rule.keeps()).collect();
            // Every file whose records are copied is read whole and checked before anything
            // changes.
            let merged = merge(&chain, &keep)?;
            super::repair::begin(&self.layout, &group)?;
            for m in &merged {
                let path = chain.file_path(m.into);
                m.file.publish(&path, true, |w| {
                    for s in &m.sources {
                        let from = chain.loc(s.link);
                        if copy_span(&from, s.span, w, &path)? != s.span_hash {
                            return Err(Error::corrupt(
                                "recovery-point file",
                                None,
                                "it changed between its checks and the copy of its records",
                            )
                            .with_path(&from.path));
                        }
                    }
                    Ok(())
                })?;
            }
            // Every kept point now links past the pruned ones: their files are leftovers (those
            // in segments stay there until a GC writes the segments again).
            for (l, k) in chain.links.iter().zip(&keep) {
                let loc = chain.loc(l);
                if !k && loc.is_file() {
                    remove(&loc.path, "a pruned point")?;
                }
            }
            sync_dir(&self.layout.points(&group))?;
            super::repair::end(&self.layout, &group)?;
            // Read back: the chain links, counts the same shipped points, and holds the kept
            // ones in order.
            let after = chain::load(&self.layout, &group)?;
            let kept = chain
                .links
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(l, _)| l.id);
            if after.head != chain.head || !after.links.iter().map(|l| l.id).eq(kept) {
                return Err(Error::corrupt(
                    format!("chain of group `{group}`"),
                    None,
                    "after pruning it does not hold exactly the kept points",
                ));
            }
            report.groups.push(planned);
        }
        Ok(report)
    }

    /// Every group's name, from the heads (a damaged head stops the operation).
    pub(super) fn group_names(&self) -> Result<Vec<String>> {
        let mut names = Head::all(&self.layout)?
            .into_iter()
            .map(|(_, h)| h.map(|h| h.group))
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn plan_group(
        &self,
        group: &str,
        infos: Vec<RecoveryPoint>,
        policy: &RetentionPolicy,
        now: SystemTime,
    ) -> Result<GroupPrune> {
        let pinned = pins::read(&self.layout, group)?;
        let facts: Vec<PlanPoint> = infos
            .iter()
            .map(|p| PlanPoint {
                time: p.time,
                app_consistent: p.consistency == MarkerKind::App,
                pinned: pinned.contains(&p.id),
            })
            .collect();
        let rules = plan(&facts, policy, now)?;
        let mut merges = Vec::new();
        let mut run: Vec<PointId> = Vec::new();
        for (i, (p, r)) in infos.iter().zip(&rules).enumerate() {
            if !r.keeps() {
                run.push(p.id);
            } else if !run.is_empty() {
                merges.push(Merge {
                    into: p.id,
                    seq: p.seq,
                    new_base: run.len() == i,
                    pruned: std::mem::take(&mut run),
                });
            }
        }
        Ok(GroupPrune {
            group: group.to_string(),
            points: infos
                .into_iter()
                .zip(facts)
                .zip(rules)
                .map(|((point, f), rule)| PlannedPoint {
                    point,
                    pinned: f.pinned,
                    rule,
                })
                .collect(),
            merges,
        })
    }
}

/// A file whose records a merged point file copies: the byte range of its records and their
/// BLAKE3, as its whole read checked them.
struct Source<'a> {
    link: &'a Link,
    span: (u64, u64),
    span_hash: blake3::Hash,
}

/// The new file of a kept point that takes pruned ones.
struct Merged<'a> {
    /// The kept point whose file it replaces.
    into: &'a Link,
    /// Its summary.
    file: PointFile,
    /// The files whose records it holds, in order (the kept point's own last).
    sources: Vec<Source<'a>>,
}

/// The new files of the kept points that take pruned ones; `keep` has one flag per point and
/// keeps the last. Every file is read whole (checked) here, one at a time, before anything
/// changes: what is kept of one a merge copies is its records' span and hash.
fn merge<'a>(chain: &'a Chain, keep: &[bool]) -> Result<Vec<Merged<'a>>> {
    let mut out = Vec::new();
    let mut run: Vec<Source<'a>> = Vec::new();
    for (l, &k) in chain.links.iter().zip(keep) {
        // Every file is read whole, kept ones too: the plan was made from the summaries the
        // walk read, which a file's records and signature must bear out before anything goes.
        let p = chain.read(l)?;
        if k && run.is_empty() {
            continue;
        }
        let body = p.file.body()?;
        run.push(Source {
            link: l,
            span: body.span,
            span_hash: body.span_hash,
        });
        if !k {
            continue;
        }
        let first = run[0].link;
        let mut records = 0u64;
        let mut shipped = 0u64;
        for s in &run {
            records = records.saturating_add(s.link.records);
            shipped = shipped.saturating_add(s.link.shipped);
        }
        debug_assert!(first.first.1 == BundleKind::Base || first.first.0 != PointId::ZERO);
        let file = PointFile {
            first: first.first,
            records,
            shipped,
            checkpoint: first.checkpoint,
            body: None,
            ..p.file
        };
        out.push(Merged {
            into: l,
            file,
            sources: std::mem::take(&mut run),
        });
    }
    if !run.is_empty() {
        return Err(Error::invalid_argument(
            "keep",
            "the newest point is always kept: a pruned run must end in a kept point",
        ));
    }
    Ok(out)
}
