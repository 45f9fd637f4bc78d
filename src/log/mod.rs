//! The change log: a crash-safe journal of a group's guest writes, trims and consistency
//! markers (`.rclog`, `docs/FORMAT.md` §8).
//!
//! The host appends every write it sees with [`ChangeLog::record_write`] (trims with
//! [`record_trim`](ChangeLog::record_trim)), closes a recovery point with
//! [`mark`](ChangeLog::mark) at each replication interval (crash-consistent) or after quiescing
//! the applications (app-consistent), and calls [`sync`](ChangeLog::sync) as its durability
//! barrier: nothing recorded before a `sync` that returned is ever lost. At each interval
//! [`rotate`](ChangeLog::rotate) seals the log into a file to ship and goes on tracking in the
//! next generation.
//!
//! Crash safety, case by case:
//!
//! | crash during | on reopen |
//! | --- | --- |
//! | create | the log is written to a temporary name (unpredictable, created 0600 without following links: see `fsutil`) and renamed: it exists whole or not at all |
//! | an append | the torn tail (an incomplete or failing last record) is truncated and reported; a bad record *followed by a valid one* is damage and is reported as Corrupt, never skipped |
//! | rotate, before the seal is durable | a torn seal is a torn tail: the log is as before the rotation |
//! | rotate, after the seal, before the rename | the seal is removed again (the rotation is rolled back); the caller rotates again |
//! | rotate, between the two renames | the next generation's log is put in place (the rotation is completed); the sealed log is at the path the caller gave |
//!
//! Tracker continuity: a host keeps [`ChangeLog::tracker`] with the VM's configuration and hands
//! it to [`ChangeLog::open`]. A missing log, a log of another group or tracking session
//! (epoch), or a generation other than the one expected (or the one after it, when the host
//! crashed between a rotation and saving the new state) is
//! [`ResyncRequired`](crate::ErrorKind::ResyncRequired): changes may have been missed, and only a
//! checksum resync can tell which. Nothing of that kind is ever accepted silently.

mod format;
mod lock;
mod points;
mod reader;
mod reasons;
mod scan;
pub mod storage;
mod writer;

pub use format::{
    DiskSpec, LogHeader, MAX_WRITE_PAYLOAD, Marker, MarkerKind, RECORD_HEADER_LEN, RecordType, Seal,
};
pub use points::{LogChanges, LogSource, PointChanges, changes_by_point};
pub use reader::{LogReader, Record, RecordBody, Records};
pub use reasons::{ResyncCheck, ResyncNeed, ResyncReason, resync_reasons};
pub use scan::TornTail;
pub use storage::{FileStorage, LogStorage, MemStorage};
pub use writer::{
    ChangeLog, LogConfig, Recovery, ResyncThreshold, Rotated, RotationRecovery, SyncPolicy,
    TrackerState,
};
