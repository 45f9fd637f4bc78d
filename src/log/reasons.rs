//! Why a group's delta replication cannot go on from its active log, as the systems this
//! project follows trigger a resynchronization: the tracker lost (the log missing, or of
//! another tracking session than the primary shipped from), the log not closed cleanly (a torn
//! tail), the pending bytes past the resync threshold, a disk resized since tracking started.

use std::path::Path;

use super::reader::LogReader;
use super::writer::ResyncThreshold;
use crate::error::{ErrorKind, Result};

/// One reason a resync is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResyncReason {
    /// The log is missing, or belongs to another tracking session than the one shipped from.
    TrackerLost,
    /// The log ends in a torn record: the host stopped without closing it.
    NotClosedCleanly,
    /// The pending bytes reached the resync threshold.
    PastThreshold,
    /// A disk's size is not the one the log tracks.
    DiskResized,
}

impl ResyncReason {
    /// Every reason, in the order [`resync_reasons`] reports them.
    pub const ALL: [ResyncReason; 4] = [
        ResyncReason::TrackerLost,
        ResyncReason::NotClosedCleanly,
        ResyncReason::PastThreshold,
        ResyncReason::DiskResized,
    ];

    /// "tracker lost", "not closed cleanly", "pending bytes past the threshold", "disk resized".
    pub fn name(self) -> &'static str {
        match self {
            ResyncReason::TrackerLost => "tracker lost",
            ResyncReason::NotClosedCleanly => "not closed cleanly",
            ResyncReason::PastThreshold => "pending bytes past the threshold",
            ResyncReason::DiskResized => "disk resized",
        }
    }
}

impl std::fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A reason, with what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncNeed {
    /// The reason.
    pub reason: ResyncReason,
    /// What was found, for the operator.
    pub detail: String,
}

/// What the primary knows besides the log: the tracking session it shipped from, and the
/// disks' sizes now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncCheck<'a> {
    /// The epoch of the session the ship state continues (None: not checked; with it, a
    /// missing log is a lost tracker rather than NotFound).
    pub epoch: Option<[u8; 16]>,
    /// Every disk's size now (name, bytes); disks not named are not checked.
    pub disk_sizes: &'a [(&'a str, u64)],
    /// The threshold (the default, 50% of the disks, unless given).
    pub threshold: Option<ResyncThreshold>,
}

/// Why the active log at `path` cannot carry delta replication on; empty when it can. Reads
/// the log (a torn tail is found, not repaired); damage other than a torn tail is Corrupt.
pub fn resync_reasons(path: impl AsRef<Path>, check: &ResyncCheck<'_>) -> Result<Vec<ResyncNeed>> {
    let path = path.as_ref();
    let mut out = Vec::new();
    let r = match LogReader::open(path) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound && check.epoch.is_some() => {
            out.push(ResyncNeed {
                reason: ResyncReason::TrackerLost,
                detail: format!(
                    "the change log {} is missing: the changes since the last shipped point \
                     are unknown",
                    path.display()
                ),
            });
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let h = r.header();
    if let Some(epoch) = check.epoch
        && epoch != h.epoch
    {
        out.push(ResyncNeed {
            reason: ResyncReason::TrackerLost,
            detail: "the log belongs to another tracking session than the one shipped from".into(),
        });
    }
    if let Some(t) = r.torn_tail() {
        out.push(ResyncNeed {
            reason: ResyncReason::NotClosedCleanly,
            detail: format!(
                "a torn tail of {} bytes at byte {} ({})",
                t.bytes, t.at, t.why
            ),
        });
    }
    let total = h.total_disk_size();
    // As ChangeLog::needs_resync measures it.
    let threshold = match check.threshold.unwrap_or_default() {
        ResyncThreshold::Percent(p) => u128::from(total) * u128::from(p) / 100,
        ResyncThreshold::Bytes(b) => u128::from(b),
    };
    if r.seal().is_none() && u128::from(r.pending_bytes()) >= threshold {
        out.push(ResyncNeed {
            reason: ResyncReason::PastThreshold,
            detail: format!(
                "{} bytes pending, the threshold is {threshold} bytes",
                r.pending_bytes()
            ),
        });
    }
    for (name, size) in check.disk_sizes {
        if let Some(d) = h.disks.iter().find(|d| d.name == *name)
            && d.size != *size
        {
            out.push(ResyncNeed {
                reason: ResyncReason::DiskResized,
                detail: format!(
                    "disk `{name}` is {size} bytes; the log tracks {} bytes",
                    d.size
                ),
            });
        }
    }
    Ok(out)
}
