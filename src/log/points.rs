//! From records to recovery points: the coalesced changes of each point, per disk.

use super::format::Marker;
use super::reader::{LogReader, RecordBody};
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, ExtentSource};

/// Where a changed range's bytes are, in a change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// Trimmed: zeros.
    Zero,
    /// Written: the bytes at this offset of the log file (and on).
    Data {
        /// Byte offset in the log of the range's first byte.
        pos: u64,
    },
}

impl ExtentSource for LogSource {
    fn advance(self, by: u64) -> Self {
        match self {
            LogSource::Zero => LogSource::Zero,
            LogSource::Data { pos } => LogSource::Data { pos: pos + by },
        }
    }

    fn continued_by(self, len: u64, next: Self) -> bool {
        match (self, next) {
            (LogSource::Zero, LogSource::Zero) => true,
            (LogSource::Data { pos: a }, LogSource::Data { pos: b }) => {
                a.checked_add(len) == Some(b)
            }
            _ => false,
        }
    }

    fn check_len(self, len: u64) -> Result<()> {
        match self {
            LogSource::Data { pos } if pos.checked_add(len).is_none() => Err(
                Error::invalid_argument("source", format!("log position {pos} + {len} overflows")),
            ),
            _ => Ok(()),
        }
    }
}

/// The changes of one recovery point: for each disk of the log (in header order), the ranges
/// written or trimmed since the previous marker, later writes winning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointChanges {
    /// The point's sequence number.
    pub point: u64,
    /// The marker that closed it.
    pub marker: Marker,
    /// One map per disk.
    pub disks: Vec<ExtentMap<LogSource>>,
}

/// A log's changes, point by point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChanges {
    /// Every recovery point the log closes, oldest first.
    pub points: Vec<PointChanges>,
    /// Changes after the last marker (not yet a point), one map per disk, if any.
    pub open: Option<Vec<ExtentMap<LogSource>>>,
}

/// The changes of every recovery point the log closes; see [`LogChanges`].
pub fn changes_by_point(reader: &LogReader) -> Result<LogChanges> {
    let header = reader.header();
    let fresh = || {
        header
            .disks
            .iter()
            .map(|d| ExtentMap::new(d.size))
            .collect::<Result<Vec<_>>>()
    };
    let mut points = Vec::new();
    let mut current = fresh()?;
    let mut dirty = false;
    for rec in reader.records()? {
        let rec = rec?;
        let data_pos = rec.data_pos();
        match rec.body {
            RecordBody::Write { disk, offset, data } => {
                let len = data.len() as u64;
                current[usize::from(disk)].insert(
                    offset,
                    len,
                    LogSource::Data { pos: data_pos },
                )?;
                dirty = true;
            }
            RecordBody::Trim { disk, offset, len } => {
                current[usize::from(disk)].insert(offset, len, LogSource::Zero)?;
                dirty = true;
            }
            RecordBody::Marker(marker) => {
                let point = header.first_point + points.len() as u64;
                for m in &mut current {
                    m.coalesce();
                }
                points.push(PointChanges {
                    point,
                    marker,
                    disks: std::mem::replace(&mut current, fresh()?),
                });
                dirty = false;
            }
        }
    }
    Ok(LogChanges {
        points,
        open: dirty.then_some(current),
    })
}
