//! What an operator watches at the recovery site, per group: the newest point and its lag,
//! the newest app-consistent point, the points kept, the bytes the group's blobs take, and
//! the health those give.

use std::collections::HashMap;
use std::time::SystemTime;

use super::pack::ENTRY_LEN;
use super::point::RecoveryPoint;
use super::{Vault, chain};
use crate::error::{Error, ErrorKind, Result};
use crate::extent::Source;
use crate::log::MarkerKind;
use crate::policy::{Health, ReplicationFrequency};
use crate::sys::LockMode;

/// A group's status at the recovery site ([`Vault::group_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: String,
    /// Points kept.
    pub points: u64,
    /// The newest point.
    pub head: RecoveryPoint,
    /// The newest app-consistent point, if any is kept.
    pub newest_app_consistent: Option<RecoveryPoint>,
    /// Stored bytes of the blobs the group's points reference, each once, entry headers
    /// included: what the group alone would take in a vault.
    pub stored_bytes: u64,
    /// How old the newest point is at the time asked (zero if it is in the future).
    pub lag: std::time::Duration,
    /// Its health: from the lag against the replication interval and the last error given.
    pub health: Health,
}

impl Vault {
    /// The status of `group` at `now`, replicating every `frequency`; `last_error` is the
    /// class of the last failure of a step for the group since its newest point (the host's
    /// agent knows it: a failed ingest, a refused bundle), if any. NotFound for an unknown
    /// group or one with no point.
    pub fn group_status(
        &self,
        group: &str,
        frequency: ReplicationFrequency,
        now: SystemTime,
        last_error: Option<ErrorKind>,
    ) -> Result<GroupStatus> {
        let _lock = self.lock(LockMode::Shared)?;
        let chain = chain::load(&self.layout, group)?;
        let mut blobs: HashMap<crate::BlobId, u64> = HashMap::new();
        // What is reported of a point comes from its file read whole (checked), one at a time.
        let (mut head, mut newest_app): (Option<RecoveryPoint>, Option<RecoveryPoint>) =
            (None, None);
        for l in &chain.links {
            let p = chain.read(l)?;
            let body = p.file.body()?;
            for d in &body.folded {
                for e in d.extents.iter() {
                    if let Source::Blob { id, .. } = e.source {
                        let len = body.hashes.rows_of(&id).map(|r| r.len).max().unwrap_or(0);
                        blobs.insert(id, ENTRY_LEN as u64 + u64::from(len));
                    }
                }
            }
            if l.consistency == MarkerKind::App {
                newest_app = Some(p.file.info());
            }
            if chain.links.last() == Some(l) {
                head = Some(p.file.info());
            }
        }
        let Some(head) = head else {
            return Err(Error::NotFound {
                what: format!("a point of group `{group}`"),
            });
        };
        let lag = now.duration_since(head.time).unwrap_or_default();
        Ok(GroupStatus {
            group: group.to_string(),
            points: chain.links.len() as u64,
            newest_app_consistent: newest_app,
            stored_bytes: blobs.values().sum(),
            lag,
            health: Health::of(lag, frequency, false, last_error),
            head,
        })
    }
}
