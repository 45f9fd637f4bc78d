//! [`ChangeLog`]: appending records, syncing, recovery on open, rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::{
    DiskSpec, LogHeader, MAX_WRITE_PAYLOAD, Marker, MarkerKind, RECORD_HEADER_LEN, RecordHeader,
    RecordType, Seal, VERSION_MINOR,
};
use super::scan::{self, TornTail};
use super::storage::{FileStorage, LogStorage};
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{AtomicFile, parent_dir, rename_noreplace, sync_dir, with_suffix};

/// Appends buffer up to this many bytes before writing.
const BUFFER_CAP: usize = 1 << 20;
/// Payloads of at least this size bypass the buffer (one vectored write, no copy). Smaller ones
/// are copied into the buffer: a memory copy costs less than a system call per record
/// (`benches/log_append.rs`: 64 KiB records written directly reached 0.74 of the floor,
/// buffered 1.0).
const DIRECT_MIN: usize = 256 << 10;

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every record (slowest, nothing is ever at risk).
    EveryRecord,
    /// Whenever this many bytes were appended since the last sync.
    EveryBytes(u64),
    /// Only when the host calls [`ChangeLog::sync`] (or rotates).
    Manual,
}

/// When [`ChangeLog::needs_resync`] says delta replication should give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncThreshold {
    /// Pending log bytes at or above this percentage of the group's total disk size (1 to 1000).
    Percent(u16),
    /// Pending log bytes at or above this many bytes.
    Bytes(u64),
}

impl Default for ResyncThreshold {
    /// 50% of the group's total disk size, as Hyper-V Replica does.
    fn default() -> Self {
        ResyncThreshold::Percent(50)
    }
}

/// What a new log tracks and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The group's name (1 to 255 bytes of UTF-8).
    pub group: String,
    /// The group's disks (1 to 256, names unique); records name a disk by its index here.
    pub disks: Vec<DiskSpec>,
    /// Sequence number of the first recovery point the first marker closes.
    pub first_point: u64,
    /// When appends are made durable.
    pub sync: SyncPolicy,
    /// When delta replication should give up for a resync.
    pub resync_threshold: ResyncThreshold,
}

impl LogConfig {
    /// A configuration with manual syncs, the default resync threshold, and points from 1
    /// (point 0 being the initial replication).
    pub fn new(group: impl Into<String>, disks: Vec<DiskSpec>) -> Self {
        LogConfig {
            group: group.into(),
            disks,
            first_point: 1,
            sync: SyncPolicy::Manual,
            resync_threshold: ResyncThreshold::default(),
        }
    }
}

/// What a host keeps to prove, at the next open, that the log it finds is the one it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackerState {
    /// The group.
    pub group: String,
    /// The tracking session's random id.
    pub epoch: [u8; 16],
    /// The log's generation.
    pub generation: u64,
}

/// How an interrupted rotation was finished on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationRecovery {
    /// The crash came after the seal and before the sealed log was renamed: the seal was
    /// removed, the log is as before the rotation; rotate again.
    RolledBack,
    /// The crash came between the renames: the next generation's log was put in place. The
    /// sealed log (of the previous generation) is where the interrupted `rotate` was told.
    Completed {
        /// Generation of the sealed log.
        sealed_generation: u64,
    },
}

/// What [`ChangeLog::open`] had to repair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn tail that was truncated.
    pub torn: Option<TornTail>,
    /// The sequence number of the last record kept, if any.
    pub last_seq: Option<u64>,
    /// An interrupted rotation that was finished.
    pub rotation: Option<RotationRecovery>,
}

/// The result of [`ChangeLog::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// Where the sealed log is.
    pub sealed_path: PathBuf,
    /// The sealed log's generation.
    pub generation: u64,
    /// Recovery points the sealed log closes.
    pub points: u64,
    /// Records in the sealed log (the seal excluded).
    pub records: u64,
    /// The tracker state to keep from now on.
    pub tracker: TrackerState,
}

/// An open change log, appending. See the [module docs](super).
///
/// Not shareable between threads without a lock (`&mut self` methods); the C handle adds one.
pub struct ChangeLog {
    st: Box<dyn LogStorage>,
    path: Option<PathBuf>,
    header: LogHeader,
    header_len: u64,
    sync_policy: SyncPolicy,
    threshold: ResyncThreshold,
    buf: Vec<u8>,
    /// Bytes of the log, buffered ones included.
    len: u64,
    /// `len` at the last completed sync.
    synced: u64,
    next_seq: u64,
    records: u64,
    payload_bytes: u64,
    markers: u64,
    last_kind: Option<RecordType>,
    /// Set by a failed write or sync: the state of the bytes is unknown until reopened.
    failed: Option<String>,
    /// The log's exclusive lock (a log on a file; see `log::lock`).
    _lock: Option<super::lock::LogLock>,
    /// Time of the newest marker this handle knows (of this log, or of the generations it
    /// rotated from), ns since the epoch: a marker may not go back before it.
    last_mark_ns: Option<u64>,
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeLog")
            .field("path", &self.path)
            .field("group", &self.header.group)
            .field("generation", &self.header.generation)
            .field("len", &self.len)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

fn random_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id)
        .map_err(|e| Error::io("drawing a random id", None, io::Error::other(e.to_string())))?;
    Ok(id)
}

fn unix_ns(t: SystemTime) -> Result<u64> {
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid_argument("time", "times before 1970 cannot be recorded"))?;
    u64::try_from(d.as_nanos())
        .map_err(|_| Error::invalid_argument("time", "times after 2554 cannot be recorded"))
}

/// Publishes a new log at `path` holding `header` (see [`AtomicFile`]: written under a temporary
/// name, synced, renamed, the directory synced) and returns it open. Without `replace`, a file
/// at `path` is AlreadyExists.
fn publish_new_log(path: &Path, header: &[u8], replace: bool) -> Result<File> {
    let mut f = AtomicFile::create(path, replace).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => Error::AlreadyExists {
            what: format!("change log {}", path.display()),
        },
        _ => e,
    })?;
    io::Write::write_all(&mut f, header)
        .map_err(|e| Error::io("writing the log header", Some(path), e))?;
    f.commit_keep()
}

fn open_append(path: &Path) -> Result<FileStorage> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening the change log", Some(path), e))?;
    storage_of(f, path)
}

fn storage_of(f: File, path: &Path) -> Result<FileStorage> {
    FileStorage::new(f).map_err(|e| Error::io("opening the change log", Some(path), e))
}

impl ChangeLog {
    /// Creates a new log at `path` for a new tracking session (a random epoch, generation 0).
    /// An existing file (or symbolic link) is AlreadyExists. The log is written to a temporary
    /// name, synced and renamed, so it exists whole or not at all; it is created 0600.
    pub fn create(path: impl AsRef<Path>, config: &LogConfig) -> Result<ChangeLog> {
        Self::create_at(path.as_ref(), config, false)
    }

    /// As [`create`](Self::create); `replace` replaces a file at `path` (a seed asked to).
    pub(crate) fn create_at(path: &Path, config: &LogConfig, replace: bool) -> Result<ChangeLog> {
        // A log there is AlreadyExists whoever holds it (checked again when it is published).
        if !replace && fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("change log {}", path.display()),
            });
        }
        let lock = super::lock::lock(path)?;
        let header = Self::new_header(config, random_id()?, 0, config.first_point, 0)?;
        let bytes = header.encode()?;
        let file = publish_new_log(path, &bytes, replace)?;
        let st = storage_of(file, path)?;
        let mut log = Self::from_parts(
            Box::new(st),
            header,
            bytes.len() as u64,
            config.sync,
            config.resync_threshold,
        );
        log.path = Some(path.to_path_buf());
        log._lock = Some(lock);
        Ok(log)
    }

    /// Creates a new log on any storage (an in-memory one for tests, a host's own device).
    /// The storage must be empty. Such a log cannot [`rotate`](Self::rotate), which needs files.
    pub fn create_on(mut st: Box<dyn LogStorage>, config: &LogConfig) -> Result<ChangeLog> {
        let header = Self::new_header(config, random_id()?, 0, config.first_point, 0)?;
        let bytes = header.encode()?;
        let len = st
            .size()
            .map_err(|e| Error::io("reading the storage length", None, e))?;
        if len != 0 {
            return Err(Error::invalid_argument(
                "storage",
                format!("must be empty, holds {len} bytes"),
            ));
        }
        st.append(&[IoSlice::new(&bytes)])
            .and_then(|()| st.sync())
            .map_err(|e| Error::io("writing the log header", None, e))?;
        Ok(Self::from_parts(
            st,
            header,
            bytes.len() as u64,
            config.sync,
            config.resync_threshold,
        ))
    }

    fn new_header(
        config: &LogConfig,
        epoch: [u8; 16],
        generation: u64,
        first_point: u64,
        first_record: u64,
    ) -> Result<LogHeader> {
        check_threshold(config.resync_threshold)?;
        check_sync(config.sync)?;
        let header = LogHeader {
            minor: VERSION_MINOR,
            log_id: random_id()?,
            epoch,
            generation,
            first_point,
            created_ns: unix_ns(SystemTime::now())?,
            first_record,
            group: config.group.clone(),
            disks: config.disks.clone(),
        };
        header.validate()?;
        Ok(header)
    }

    fn from_parts(
        st: Box<dyn LogStorage>,
        header: LogHeader,
        header_len: u64,
        sync_policy: SyncPolicy,
        threshold: ResyncThreshold,
    ) -> ChangeLog {
        ChangeLog {
            st,
            path: None,
            next_seq: header.first_record,
            header,
            header_len,
            sync_policy,
            threshold,
            buf: Vec::with_capacity(BUFFER_CAP),
            len: header_len,
            synced: header_len,
            records: 0,
            payload_bytes: 0,
            markers: 0,
            last_kind: None,
            failed: None,
            _lock: None,
            last_mark_ns: None,
        }
    }

    /// Opens the log at `path` for appending, recovering it after an unclean stop: a torn tail
    /// is truncated, an interrupted rotation finished (see the module docs), and, when `expect`
    /// is given, the log's continuity with what the host last saw is checked.
    ///
    /// A missing log is ResyncRequired when `expect` is given (changes were tracked and are
    /// gone), NotFound otherwise. Damage is Corrupt.
    pub fn open(
        path: impl AsRef<Path>,
        expect: Option<&TrackerState>,
        sync: SyncPolicy,
        threshold: ResyncThreshold,
    ) -> Result<(ChangeLog, Recovery)> {
        let path = path.as_ref();
        // Before anything is read or repaired: another handle may be appending or rotating.
        let lock = super::lock::lock(path)?;
        let rotating = with_suffix(path, ".rotating");
        let mut completed_rotation = false;
        // (A symbolic link at `<path>.rotating` is not a rotation's: never renamed into place.)
        let rotating_meta = fs::symlink_metadata(&rotating);
        if !path.exists() {
            if rotating_meta.as_ref().is_ok_and(|m| m.is_file()) {
                // Crashed between the two renames of a rotation: finish it.
                fs::rename(&rotating, path)
                    .map_err(|e| Error::io("completing an interrupted rotation", Some(path), e))?;
                sync_dir(parent_dir(path))?;
                completed_rotation = true;
            } else if expect.is_some() {
                return Err(Error::ResyncRequired {
                    reason: format!(
                        "the change log {} is missing, so the changes since the last shipped point are unknown",
                        path.display()
                    ),
                });
            } else {
                return Err(Error::NotFound {
                    what: format!("change log {}", path.display()),
                });
            }
        } else if rotating_meta.is_ok() {
            // Crashed before the sealed log was renamed: the next log was never put in place.
            fs::remove_file(&rotating)
                .map_err(|e| Error::io("removing an unfinished rotation", Some(&rotating), e))?;
            sync_dir(parent_dir(path))?;
        }
        let st = open_append(path)?;
        let (mut log, mut recovery) =
            Self::open_on(Box::new(st), expect, sync, threshold).map_err(|e| e.with_path(path))?;
        if completed_rotation && recovery.rotation.is_none() {
            recovery.rotation = Some(RotationRecovery::Completed {
                sealed_generation: log.header.generation.saturating_sub(1),
            });
        }
        log.path = Some(path.to_path_buf());
        log._lock = Some(lock);
        Ok((log, recovery))
    }

    /// [`open`](Self::open) on any storage. A sealed log found here has its seal removed (an
    /// interrupted rotation is rolled back).
    pub fn open_on(
        mut st: Box<dyn LogStorage>,
        expect: Option<&TrackerState>,
        sync: SyncPolicy,
        threshold: ResyncThreshold,
    ) -> Result<(ChangeLog, Recovery)> {
        check_threshold(threshold)?;
        check_sync(sync)?;
        // The newest marker's time: a marker may not go back before it.
        let mut last_mark_ns = None;
        let summary = scan::scan(st.as_ref(), |f| {
            if f.header.kind == RecordType::Marker {
                last_mark_ns = Some(Marker::decode(&f.payload, f.at)?.time_ns);
            }
            Ok(())
        })?;
        if let Some(want) = expect {
            check_continuity(&summary.header, want)?;
        }
        let mut recovery = Recovery {
            torn: summary.torn.clone(),
            last_seq: None,
            rotation: None,
        };
        let keep = match summary.seal {
            Some((at, _)) => {
                recovery.rotation = Some(RotationRecovery::RolledBack);
                at
            }
            None => summary.good_end,
        };
        let len = st
            .size()
            .map_err(|e| Error::io("reading the change log length", None, e))?;
        if keep != len {
            st.truncate(keep)
                .map_err(|e| Error::io("truncating the torn tail of the change log", None, e))?;
        }
        if summary.records > 0 {
            recovery.last_seq = Some(summary.next_seq - 1 - u64::from(summary.seal.is_some()));
        }
        let mut log = Self::from_parts(st, summary.header, summary.header_len, sync, threshold);
        log.len = keep;
        log.synced = keep;
        log.next_seq = summary.next_seq - u64::from(summary.seal.is_some());
        log.records = summary.records;
        log.payload_bytes = summary.payload_bytes;
        log.markers = summary.markers;
        log.last_kind = summary.last_kind;
        log.last_mark_ns = last_mark_ns;
        Ok((log, recovery))
    }

    /// Changes when records are made durable from now on.
    pub fn set_sync_policy(&mut self, sync: SyncPolicy) -> Result<()> {
        check_sync(sync)?;
        self.sync_policy = sync;
        Ok(())
    }

    /// Changes when [`needs_resync`](Self::needs_resync) says to give up on delta replication.
    pub fn set_resync_threshold(&mut self, threshold: ResyncThreshold) -> Result<()> {
        check_threshold(threshold)?;
        self.threshold = threshold;
        Ok(())
    }

    /// The log's header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// The index of the disk called `name`, for `record_write` and `record_trim`.
    pub fn disk_index(&self, name: &str) -> Option<usize> {
        self.header.disks.iter().position(|d| d.name == name)
    }

    /// What the host should keep to check continuity at the next open.
    pub fn tracker(&self) -> TrackerState {
        TrackerState {
            group: self.header.group.clone(),
            epoch: self.header.epoch,
            generation: self.header.generation,
        }
    }

    /// Bytes of records in this log (the header excluded): what waits to be shipped.
    pub fn pending_bytes(&self) -> u64 {
        self.len - self.header_len
    }

    /// Records in this log.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether the pending log has reached the resync threshold.
    pub fn needs_resync(&self) -> bool {
        let limit = match self.threshold {
            ResyncThreshold::Bytes(b) => u128::from(b),
            ResyncThreshold::Percent(p) => {
                u128::from(self.header.total_disk_size()) * u128::from(p) / 100
            }
        };
        u128::from(self.pending_bytes()) >= limit
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(Error::io(
                "recording a change",
                self.path.as_deref(),
                io::Error::other(format!(
                    "the log refuses records after a failed write or sync ({why}); reopen it to recover"
                )),
            )),
        }
    }

    fn check_range(&self, disk: usize, offset: u64, len: u64) -> Result<()> {
        let Some(d) = self.header.disks.get(disk) else {
            return Err(Error::invalid_argument(
                "disk",
                format!(
                    "index {disk} is not a disk of group `{}` ({} disks)",
                    self.header.group,
                    self.header.disks.len()
                ),
            ));
        };
        match offset.checked_add(len) {
            Some(end) if end <= d.size => Ok(()),
            _ => Err(Error::invalid_argument(
                "offset",
                format!(
                    "{len} bytes at offset {offset} reach past the end of disk `{}` ({} bytes)",
                    d.name, d.size
                ),
            )),
        }
    }

    fn fail(&mut self, what: &str, e: io::Error) -> Error {
        self.failed = Some(format!("{what}: {e}"));
        Error::io(what.to_string(), self.path.as_deref(), e)
    }

    /// Hands buffered records to the storage without waiting for them to be durable (readers
    /// of the file then see them). [`sync`](Self::sync) is the durability barrier.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        self.write_buffer()
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.st.append(&[IoSlice::new(&self.buf)]);
        self.buf.clear();
        r.map_err(|e| self.fail("writing the change log", e))
    }

    /// Appends one record; `payload` is at most 16 MiB (callers split writes).
    fn append(
        &mut self,
        kind: RecordType,
        disk: u16,
        offset: u64,
        len: u64,
        payload: &[u8],
    ) -> Result<()> {
        let rec = RecordHeader {
            crc: 0,
            kind,
            disk,
            payload_len: payload.len() as u32,
            seq: self.next_seq,
            offset,
            len,
        };
        let h = rec.encode(payload);
        let n = (RECORD_HEADER_LEN + payload.len()) as u64;
        if payload.len() >= DIRECT_MIN {
            let r = self.st.append(&[
                IoSlice::new(&self.buf),
                IoSlice::new(&h),
                IoSlice::new(payload),
            ]);
            self.buf.clear();
            r.map_err(|e| self.fail("writing the change log", e))?;
        } else {
            if self.buf.len() + RECORD_HEADER_LEN + payload.len() > BUFFER_CAP {
                self.write_buffer()?;
            }
            self.buf.extend_from_slice(&h);
            self.buf.extend_from_slice(payload);
        }
        self.len += n;
        self.next_seq += 1;
        self.records += 1;
        self.last_kind = Some(rec.kind);
        match self.sync_policy {
            SyncPolicy::EveryRecord => self.sync(),
            SyncPolicy::EveryBytes(b) if self.len - self.synced >= b => self.sync(),
            _ => Ok(()),
        }
    }

    /// Records that `data` was written to disk `disk` at `offset`. Writes longer than
    /// [`MAX_WRITE_PAYLOAD`] become several records. Out of range: InvalidArgument.
    pub fn record_write(&mut self, disk: usize, offset: u64, data: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.check_range(disk, offset, data.len() as u64)?;
        let mut pos = offset;
        for chunk in data.chunks(MAX_WRITE_PAYLOAD) {
            let len = chunk.len() as u64;
            // `disk` < 256 by check_range; chunk.len() <= 16 MiB.
            self.append(RecordType::Write, disk as u16, pos, len, chunk)?;
            self.payload_bytes += len;
            pos += len;
        }
        Ok(())
    }

    /// Records that `len` bytes of disk `disk` from `offset` were trimmed (read as zeros).
    pub fn record_trim(&mut self, disk: usize, offset: u64, len: u64) -> Result<()> {
        self.check_usable()?;
        self.check_range(disk, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.append(RecordType::Trim, disk as u16, offset, len, &[])
    }

    /// Closes a recovery point now; returns its sequence number.
    pub fn mark(&mut self, kind: MarkerKind, label: &str) -> Result<u64> {
        self.mark_at(kind, label, SystemTime::now())
    }

    /// Closes a recovery point with an explicit time (imports, tests); returns its sequence
    /// number. A label over 1024 bytes is LimitExceeded.
    pub fn mark_at(&mut self, kind: MarkerKind, label: &str, time: SystemTime) -> Result<u64> {
        self.check_usable()?;
        let time_ns = unix_ns(time)?;
        if let Some(last) = self.last_mark_ns
            && time_ns < last
        {
            return Err(Error::invalid_argument(
                "time",
                format!(
                    "{} is before the previous point's time, {}: points must move forward in \
                     time (or \"at or before\" a time would be ambiguous)",
                    crate::format::rfc3339(time_ns),
                    crate::format::rfc3339(last)
                ),
            ));
        }
        let payload = Marker {
            kind,
            time_ns,
            label: label.to_string(),
        }
        .encode()?;
        self.append(RecordType::Marker, 0, 0, 0, &payload)?;
        self.last_mark_ns = Some(time_ns);
        self.markers += 1;
        Ok(self.header.first_point + self.markers - 1)
    }

    /// Makes every record so far durable (`fdatasync`): the durability barrier.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        self.write_buffer()?;
        self.st
            .sync()
            .map_err(|e| self.fail("syncing the change log", e))?;
        self.synced = self.len;
        Ok(())
    }

    /// Seals this log into `sealed_path` and goes on tracking in the next generation at the
    /// same path. If the last record is not a marker, a crash-consistent one (labelled
    /// "rotation", timed now or, if the previous point's time is later, 1 ns after it) closes
    /// the changes first. The sealed log is verified record by record before
    /// the seal is written. Crash safety: see the module docs. A file or symbolic link at
    /// `sealed_path` is AlreadyExists, before anything is done and again, atomically, when the
    /// sealed log is renamed there; the next generation's log is created 0600.
    pub fn rotate(&mut self, sealed_path: impl AsRef<Path>) -> Result<Rotated> {
        let sealed_path = sealed_path.as_ref();
        self.check_usable()?;
        let Some(path) = self.path.clone() else {
            return Err(Error::invalid_argument(
                "log",
                "rotation needs a log created or opened on a file",
            ));
        };
        if fs::symlink_metadata(sealed_path).is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("sealed log {}", sealed_path.display()),
            });
        }
        if matches!(self.last_kind, Some(k) if k != RecordType::Marker) {
            // Writes after the last point close as a crash-consistent point now, or just after
            // that point when the host marked with times ahead of this clock (points move
            // forward in time; rotation never fails for it).
            let now = unix_ns(SystemTime::now())?;
            let at = self
                .last_mark_ns
                .map_or(now, |last| now.max(last.saturating_add(1)));
            self.mark_at(
                MarkerKind::Crash,
                "rotation",
                UNIX_EPOCH + Duration::from_nanos(at),
            )?;
        }
        self.sync()?;
        let summary = scan::scan(self.st.as_ref(), |_| Ok(())).map_err(|e| e.with_path(&path))?;
        if summary.torn.is_some() || summary.seal.is_some() || summary.records != self.records {
            self.failed = Some("the log on storage differs from what was written".into());
            return Err(Error::corrupt(
                "change log",
                Some(summary.good_end),
                "the log on storage differs from what this handle wrote",
            )
            .with_path(&path));
        }
        let sealed_records = self.records;
        let seal = Seal {
            records: self.records,
            payload_bytes: self.payload_bytes,
            body_hash: *summary.body_hash.as_bytes(),
        };
        let payload = seal.encode();
        self.append(RecordType::Seal, 0, 0, 0, &payload)?;
        self.sync()?;

        let config = LogConfig {
            group: self.header.group.clone(),
            disks: self.header.disks.clone(),
            first_point: self.header.first_point + self.markers,
            sync: self.sync_policy,
            resync_threshold: self.threshold,
        };
        let next = Self::new_header(
            &config,
            self.header.epoch,
            self.header.generation + 1,
            config.first_point,
            self.next_seq,
        )?;
        let next_bytes = next.encode()?;
        let rotating = with_suffix(&path, ".rotating");
        let steps = (|| {
            drop(publish_new_log(&rotating, &next_bytes, true)?);
            rename_noreplace(&path, sealed_path, "sealed log")?;
            sync_dir(parent_dir(sealed_path))?;
            fs::rename(&rotating, &path)
                .map_err(|e| Error::io("putting the next log in place", Some(&path), e))?;
            sync_dir(parent_dir(&path))?;
            open_append(&path)
        })();
        let st = match steps {
            Ok(st) => st,
            Err(e) => {
                self.failed = Some(format!("rotation failed: {e}"));
                return Err(e);
            }
        };
        let rotated = Rotated {
            sealed_path: sealed_path.to_path_buf(),
            generation: self.header.generation,
            points: self.markers,
            records: sealed_records,
            tracker: TrackerState {
                group: next.group.clone(),
                epoch: next.epoch,
                generation: next.generation,
            },
        };
        let mut fresh = Self::from_parts(
            Box::new(st),
            next,
            next_bytes.len() as u64,
            self.sync_policy,
            self.threshold,
        );
        fresh.path = Some(path);
        // The lock (on `<path>.lock`, which stays) goes on with the log.
        fresh._lock = self._lock.take();
        fresh.last_mark_ns = self.last_mark_ns;
        *self = fresh;
        Ok(rotated)
    }
}

fn check_threshold(threshold: ResyncThreshold) -> Result<()> {
    match threshold {
        ResyncThreshold::Percent(p) if !(1..=1000).contains(&p) => Err(Error::invalid_argument(
            "resync threshold",
            format!("{p}% of the disks' size is not within 1% to 1000%"),
        )),
        _ => Ok(()),
    }
}

/// A policy that syncs every so many bytes needs a positive count.
fn check_sync(sync: SyncPolicy) -> Result<()> {
    if sync == SyncPolicy::EveryBytes(0) {
        return Err(Error::invalid_argument(
            "sync policy",
            "syncing every N bytes needs a positive N, not 0 bytes",
        ));
    }
    Ok(())
}

fn check_continuity(found: &LogHeader, want: &TrackerState) -> Result<()> {
    let reason = if found.group != want.group {
        format!(
            "the change log belongs to group `{}`, not `{}`",
            found.group, want.group
        )
    } else if found.epoch != want.epoch {
        "the change log belongs to another tracking session (its epoch differs)".to_string()
    } else if found.generation != want.generation
        && Some(found.generation) != want.generation.checked_add(1)
    {
        format!(
            "the change log is generation {}, but generation {} was expected: logs were lost or an old one restored",
            found.generation, want.generation
        )
    } else {
        return Ok(());
    };
    Err(Error::ResyncRequired { reason })
}

impl Drop for ChangeLog {
    /// Writes out buffered records (not synced: durability is what `sync` promises).
    fn drop(&mut self) {
        if self.failed.is_none() {
            let _ = self.write_buffer();
        }
    }
}
