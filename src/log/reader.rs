//! [`LogReader`]: reading a change log, sealed or not, without changing it.

use std::fs::File;
use std::path::Path;

use super::format::{LogHeader, Marker, RECORD_HEADER_LEN, RecordType, Seal};
use super::scan::{self, Scanner, Step, Summary, TornTail};
use super::storage::{FileStorage, LogStorage};
use crate::error::{Error, Result};

/// One record and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Byte offset of the record in the log.
    pub pos: u64,
    /// Sequence number.
    pub seq: u64,
    /// What it says.
    pub body: RecordBody,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// `data` was written to `disk` at `offset`.
    Write {
        /// Disk index in the log header.
        disk: u16,
        /// Byte offset on the disk.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `len` bytes of `disk` from `offset` were trimmed.
    Trim {
        /// Disk index in the log header.
        disk: u16,
        /// Byte offset on the disk.
        offset: u64,
        /// Length of the range.
        len: u64,
    },
    /// A recovery point was closed.
    Marker(Marker),
}

impl Record {
    /// Byte offset in the log of a write's first data byte.
    pub fn data_pos(&self) -> u64 {
        self.pos + RECORD_HEADER_LEN as u64
    }
}

/// A change log opened for reading. Opening verifies the whole log: every record's checks and
/// CRC, and a sealed log's seal. An unsealed log's torn tail is reported, not removed.
pub struct LogReader {
    st: Box<dyn LogStorage>,
    summary: Summary,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens the log file at `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<LogReader> {
        let path = path.as_ref();
        let f = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("change log {}", path.display()),
            },
            _ => Error::io("opening the change log", Some(path), e),
        })?;
        let st =
            FileStorage::new(f).map_err(|e| Error::io("opening the change log", Some(path), e))?;
        Self::from_storage(Box::new(st)).map_err(|e| e.with_path(path))
    }

    /// Opens a log held by any storage.
    pub fn from_storage(st: Box<dyn LogStorage>) -> Result<LogReader> {
        let summary = scan::scan(st.as_ref(), |_| Ok(()))?;
        Ok(LogReader { st, summary })
    }

    /// The log's header.
    pub fn header(&self) -> &LogHeader {
        &self.summary.header
    }

    /// The seal, if the log is sealed.
    pub fn seal(&self) -> Option<Seal> {
        self.summary.seal.map(|(_, s)| s)
    }

    /// The torn tail of an unsealed log, if it has one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.summary.torn.as_ref()
    }

    /// Records (the seal excluded).
    pub fn record_count(&self) -> u64 {
        self.summary.records
    }

    /// Markers: the recovery points the log closes.
    pub fn marker_count(&self) -> u64 {
        self.summary.markers
    }

    /// Bytes of records (the header and a seal excluded), as
    /// [`ChangeLog::pending_bytes`](super::ChangeLog::pending_bytes) counts them: what the
    /// resync threshold is measured against.
    pub fn pending_bytes(&self) -> u64 {
        let end = self
            .summary
            .seal
            .map_or(self.summary.good_end, |(at, _)| at);
        end.saturating_sub(self.summary.header_len)
    }

    /// Bytes of write payloads.
    pub fn payload_bytes(&self) -> u64 {
        self.summary.payload_bytes
    }

    /// The records in order, the seal excluded.
    pub fn records(&self) -> Result<Records<'_>> {
        Ok(Records {
            sc: Scanner::new(self.st.as_ref())?,
            end: self.summary.good_end,
        })
    }

    /// Reads `buf.len()` bytes of the log from `pos` (a write's data: see [`Record::data_pos`]).
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        self.st
            .read_at(pos, buf)
            .map_err(|e| Error::io("reading the change log", None, e))
    }
}

/// Iterator over a log's records; see [`LogReader::records`].
pub struct Records<'a> {
    sc: Scanner<'a>,
    end: u64,
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.sc.pos >= self.end {
            return None;
        }
        let found = match self.sc.step() {
            Ok(Step::Record(f)) => f,
            Ok(Step::End) => return None,
            // The log was verified when opened: it changed since.
            Ok(Step::Bad { at, why }) => {
                self.end = 0;
                return Some(Err(Error::corrupt(
                    "change log record",
                    Some(at),
                    format!("{why} (the log changed after it was opened)"),
                )));
            }
            Err(e) => {
                self.end = 0;
                return Some(Err(e));
            }
        };
        let h = found.header;
        let body = match h.kind {
            RecordType::Write => RecordBody::Write {
                disk: h.disk,
                offset: h.offset,
                data: found.payload,
            },
            RecordType::Trim => RecordBody::Trim {
                disk: h.disk,
                offset: h.offset,
                len: h.len,
            },
            RecordType::Marker => {
                match Marker::decode(&found.payload, found.at + RECORD_HEADER_LEN as u64) {
                    Ok(m) => RecordBody::Marker(m),
                    Err(e) => {
                        self.end = 0;
                        return Some(Err(e));
                    }
                }
            }
            RecordType::Seal => return None,
        };
        Some(Ok(Record {
            pos: found.at,
            seq: h.seq,
            body,
        }))
    }
}
