//! Reading a change log's records off storage, checking each, and telling a torn tail from
//! damage (`docs/FORMAT.md` §8.4).
//!
//! The rule: records are read in order; the first one that is incomplete, fails its checks or
//! its CRC ends the good part. If any valid record can be found anywhere after it, the log is
//! damaged ([`Corrupt`](crate::ErrorKind::Corrupt)): a torn write only ever loses a tail.
//! Otherwise the bytes from there on are a torn tail, which recovery truncates and reports.

use super::format::{
    LogHeader, MAX_HEADER_LEN, RECORD_HEADER_LEN, RecordHeader, RecordType, SEAL_PAYLOAD_LEN, Seal,
};
use super::storage::LogStorage;
use crate::error::{Error, Result};
use crate::format::header::PREAMBLE_LEN;

/// Bytes read from storage at a time.
const WINDOW: usize = 1 << 20;

/// A record as found: its header, position and (when asked for) payload.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub at: u64,
    /// The header's bytes as stored.
    pub raw: [u8; RECORD_HEADER_LEN],
    pub header: RecordHeader,
    pub payload: Vec<u8>,
}

/// What reading the next record gave.
#[derive(Debug)]
pub(crate) enum Step {
    Record(Found),
    /// The good part ends at the end of the store.
    End,
    /// The record at `at` is incomplete or fails a check.
    Bad {
        at: u64,
        why: String,
    },
}

/// A sequential reader of records with a read-ahead window.
pub(crate) struct Scanner<'a> {
    st: &'a dyn LogStorage,
    pub header: LogHeader,
    pub header_len: u64,
    len: u64,
    pub pos: u64,
    pub next_seq: u64,
    win: Vec<u8>,
    win_start: u64,
}

fn io_err(e: std::io::Error) -> Error {
    Error::io("reading the change log", None, e)
}

impl<'a> Scanner<'a> {
    /// Reads and checks the header. A store too short for its header, or a header that fails
    /// its CRC, is Corrupt: a log is created whole (temp file, sync, rename).
    pub fn new(st: &'a dyn LogStorage) -> Result<Scanner<'a>> {
        let len = st.size().map_err(io_err)?;
        let prefix_len = PREAMBLE_LEN + 8;
        if len < prefix_len as u64 {
            return Err(Error::corrupt(
                "change log header",
                Some(0),
                format!("truncated: the file has {len} bytes, too few for a header"),
            ));
        }
        let mut prefix = [0u8; PREAMBLE_LEN + 8];
        st.read_at(0, &mut prefix).map_err(io_err)?;
        let hlen = LogHeader::announced_len(&prefix)?;
        if (hlen as u64) > len {
            return Err(Error::corrupt(
                "change log header",
                Some(0),
                format!("truncated: the header has {hlen} bytes, the file {len} bytes"),
            ));
        }
        debug_assert!(hlen <= MAX_HEADER_LEN);
        let mut hbytes = vec![0u8; hlen];
        st.read_at(0, &mut hbytes).map_err(io_err)?;
        let header = LogHeader::decode(&hbytes)?;
        Ok(Scanner {
            st,
            next_seq: header.first_record,
            header,
            header_len: hlen as u64,
            len,
            pos: hlen as u64,
            win: Vec::new(),
            win_start: 0,
        })
    }

    /// The store's length when the scan began.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// `n` bytes at `pos`, which the caller checked lie within the store.
    fn bytes(&mut self, pos: u64, n: usize) -> Result<&[u8]> {
        let in_window =
            pos >= self.win_start && pos + n as u64 <= self.win_start + self.win.len() as u64;
        if !in_window {
            let want = n.max(WINDOW) as u64;
            let take = want.min(self.len - pos) as usize;
            self.win.resize(take, 0);
            self.st.read_at(pos, &mut self.win).map_err(io_err)?;
            self.win_start = pos;
        }
        let off = (pos - self.win_start) as usize;
        Ok(&self.win[off..off + n])
    }

    /// Checks the record at `at` fully (header, CRC, and sequence `seq` if given) without
    /// moving; returns it with its payload when it is valid.
    fn check_at(
        &mut self,
        at: u64,
        seq: Option<u64>,
    ) -> Result<std::result::Result<Found, String>> {
        if self.len - at < RECORD_HEADER_LEN as u64 {
            return Ok(Err(format!(
                "incomplete record header ({} of {RECORD_HEADER_LEN} bytes)",
                self.len - at
            )));
        }
        let mut h = [0u8; RECORD_HEADER_LEN];
        h.copy_from_slice(self.bytes(at, RECORD_HEADER_LEN)?);
        let header = match RecordHeader::decode(&h, at, &self.header) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let body = at + RECORD_HEADER_LEN as u64;
        let plen = header.payload_len as usize;
        if self.len - body < plen as u64 {
            return Ok(Err(format!(
                "incomplete payload ({} of {plen} bytes)",
                self.len - body
            )));
        }
        let payload = self.bytes(body, plen)?;
        if !header.crc_matches(&h, |c| c.update(payload)) {
            return Ok(Err("CRC32 mismatch".into()));
        }
        if let Some(want) = seq {
            if header.seq != want {
                return Ok(Err(format!(
                    "sequence {} where {want} was expected",
                    header.seq
                )));
            }
        }
        let payload = payload.to_vec();
        Ok(Ok(Found {
            at,
            raw: h,
            header,
            payload,
        }))
    }

    /// Reads the next record and moves past it if it is valid.
    pub fn step(&mut self) -> Result<Step> {
        if self.pos == self.len {
            return Ok(Step::End);
        }
        let at = self.pos;
        match self.check_at(at, Some(self.next_seq))? {
            Ok(found) => {
                self.pos = at + RECORD_HEADER_LEN as u64 + u64::from(found.header.payload_len);
                self.next_seq += 1;
                Ok(Step::Record(found))
            }
            Err(why) => Ok(Step::Bad { at, why }),
        }
    }

    /// The position of a valid record anywhere after `after` whose sequence number could
    /// follow the good part, if there is one.
    pub fn valid_record_after(&mut self, after: u64) -> Result<Option<u64>> {
        let last = self.len.saturating_sub(RECORD_HEADER_LEN as u64);
        // A record after `after` has a sequence number above the next expected one, by at most
        // the number of records that fit in between.
        let max_seq = self
            .next_seq
            .saturating_add((self.len - after) / RECORD_HEADER_LEN as u64);
        let min_seq = self.next_seq;
        let mut q = after + 1;
        while q <= last {
            // One window at a time: cheap filters (type byte, sequence range) on the bytes in
            // memory, the full check only for the candidates that pass them.
            let span = ((last - q) as usize).min(WINDOW - RECORD_HEADER_LEN);
            let chunk = self.bytes(q, span + RECORD_HEADER_LEN)?;
            let candidates: Vec<u64> = (0..=span)
                .filter(|&i| {
                    let h = &chunk[i..i + RECORD_HEADER_LEN];
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&h[16..24]);
                    let seq = u64::from_le_bytes(s);
                    (1..=4).contains(&h[4]) && seq >= min_seq && seq <= max_seq
                })
                .map(|i| q + i as u64)
                .collect();
            for c in candidates {
                if self.check_at(c, None)?.is_ok() {
                    return Ok(Some(c));
                }
            }
            q += span as u64 + 1;
        }
        Ok(None)
    }
}

/// A torn tail found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the good part ends.
    pub at: u64,
    /// Bytes after it.
    pub bytes: u64,
    /// What was wrong with the first bad record.
    pub why: String,
}

/// Everything a full scan learned.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub header: LogHeader,
    pub header_len: u64,
    /// Records before the seal, or in the good part of an unsealed log.
    pub records: u64,
    pub payload_bytes: u64,
    pub markers: u64,
    /// The type of the last record before the seal, if any.
    pub last_kind: Option<RecordType>,
    /// Sequence number the next record would have.
    pub next_seq: u64,
    /// End of the good part (the seal included, when sealed).
    pub good_end: u64,
    /// The seal and its position.
    pub seal: Option<(u64, Seal)>,
    pub torn: Option<TornTail>,
    /// BLAKE3 of the bytes before the seal (or of the good part, when unsealed).
    pub body_hash: blake3::Hash,
}

/// Reads the whole log, checking every record; calls `visit` for each good record before the
/// seal. Changes nothing.
pub(crate) fn scan(
    st: &dyn LogStorage,
    mut visit: impl FnMut(&Found) -> Result<()>,
) -> Result<Summary> {
    let mut sc = Scanner::new(st)?;
    let mut hasher = blake3::Hasher::new();
    let hb_len = sc.header_len as usize;
    let hb = sc.bytes(0, hb_len)?.to_vec();
    hasher.update(&hb);
    let mut sum = Summary {
        header: sc.header.clone(),
        header_len: sc.header_len,
        records: 0,
        payload_bytes: 0,
        markers: 0,
        last_kind: None,
        next_seq: 0,
        good_end: 0,
        seal: None,
        torn: None,
        body_hash: blake3::Hash::from([0; 32]),
    };
    loop {
        match sc.step()? {
            Step::End => {
                sum.good_end = sc.pos;
                break;
            }
            Step::Bad { at, why } => {
                if let Some(q) = sc.valid_record_after(at)? {
                    return Err(Error::corrupt(
                        "change log record",
                        Some(at),
                        format!(
                            "{why}, yet a valid record follows at byte {q}: this is damage, not a torn write"
                        ),
                    ));
                }
                sum.torn = Some(TornTail {
                    at,
                    bytes: sc.len() - at,
                    why,
                });
                sum.good_end = at;
                break;
            }
            Step::Record(f) if f.header.kind == RecordType::Seal => {
                let seal = Seal::decode(&f.payload, f.at + RECORD_HEADER_LEN as u64)?;
                let bad = |d: String| Err(Error::corrupt("change log seal", Some(f.at), d));
                if seal.records != sum.records || seal.payload_bytes != sum.payload_bytes {
                    return bad(format!(
                        "the seal counts {} records and {} payload bytes, the log holds {} records \
                         and {} payload bytes",
                        seal.records, seal.payload_bytes, sum.records, sum.payload_bytes
                    ));
                }
                if hasher.finalize() != blake3::Hash::from(seal.body_hash) {
                    return bad("the BLAKE3 of the log body does not match the seal".into());
                }
                let end = f.at + (RECORD_HEADER_LEN + SEAL_PAYLOAD_LEN) as u64;
                if end != sc.len() {
                    return bad(format!("{} bytes follow the seal", sc.len() - end));
                }
                sum.seal = Some((f.at, seal));
                sum.good_end = end;
                break;
            }
            Step::Record(f) => {
                hasher.update(&f.raw);
                hasher.update(&f.payload);
                sum.records += 1;
                match f.header.kind {
                    RecordType::Write => sum.payload_bytes += u64::from(f.header.payload_len),
                    RecordType::Marker => sum.markers += 1,
                    _ => {}
                }
                sum.last_kind = Some(f.header.kind);
                visit(&f)?;
            }
        }
    }
    sum.next_seq = sc.next_seq;
    sum.body_hash = hasher.finalize();
    Ok(sum)
}
