//! Tracking recovered disks: after a failover, a change log bound to the point failed over to,
//! so that the recovered VM's writes are kept for the way back (reverse replication) from its
//! first write on.

use std::path::Path;

use super::state::ShipState;
use crate::crypto::Key;
use crate::error::Result;
use crate::id::PointId;
use crate::log::{ChangeLog, DiskSpec, LogConfig};

/// Where tracking starts: the point the disks were failed over to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFrom {
    /// The group.
    pub group: String,
    /// The point the images hold.
    pub point: PointId,
    /// Its sequence number: the first tracked point is the next.
    pub seq: u64,
    /// The group's chunk grid.
    pub chunk_size: u32,
    /// When the point was taken (nanoseconds since the Unix epoch).
    pub time_ns: u64,
}

/// Creates a change log at `log_path` for `disks` (as the recovered images are: names and
/// sizes) whose first point follows `from`, and the [`ShipState`] that ships it as the
/// continuation of `from` under `key`. AlreadyExists if a log is there, unless `replace`.
pub fn track(
    from: &TrackFrom,
    disks: Vec<DiskSpec>,
    key: &Key,
    log_path: impl AsRef<Path>,
    replace: bool,
) -> Result<(ChangeLog, ShipState)> {
    crate::resync::check_chunk_size(from.chunk_size)?;
    let mut config = LogConfig::new(from.group.clone(), disks);
    config.first_point = from.seq + 1;
    let log = ChangeLog::create_at(log_path.as_ref(), &config, replace)?;
    let state = ShipState {
        group: from.group.clone(),
        key_id: key.id(),
        epoch: log.header().epoch,
        next_generation: 0,
        next_seq: from.seq + 1,
        head: from.point,
        chunk_size: from.chunk_size,
        head_time_ns: from.time_ns,
    };
    Ok((log, state))
}
