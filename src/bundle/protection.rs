//! A group's protection state at one site (`.rcprot`, `docs/FORMAT.md` §18), kept beside its
//! change log: what an operator reads with `replicore protection`, and what every step that
//! changes it checks against [`ProtectionState::can_move_to`] before it runs.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, ErrorKind, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::{Reader, Writer, trailer};
use crate::fsutil::{read_small, write_atomic};
use crate::policy::{FailoverKind, ProtectionState};

/// Major format version of `.rcprot` this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
const MAX_LEN: usize = 16 + 8 + 8 + 8 + 2 + MAX_NAME_LEN + 32;

/// A group's protection state at one site, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionRecord {
    /// The group.
    pub group: String,
    /// Where it stands.
    pub state: ProtectionState,
    /// When it got there.
    pub since: SystemTime,
    /// The class of the last failure of a step at this site since the state was entered or
    /// last succeeded, and when (what health is judged by besides the lag).
    pub last_error: Option<(ErrorKind, SystemTime)>,
}

fn error_code(k: ErrorKind) -> u8 {
    ErrorKind::ALL
        .iter()
        .position(|x| *x == k)
        .map_or(0, |i| i as u8 + 1)
}

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn code(s: ProtectionState) -> (u8, u8) {
    use ProtectionState::*;
    match s {
        Enabling => (1, 0),
        InitialReplication => (2, 0),
        Protected => (3, 0),
        ResyncRequired => (4, 0),
        Resynchronizing => (5, 0),
        Critical => (6, 0),
        FailedOver(FailoverKind::Test) => (7, 1),
        FailedOver(FailoverKind::Planned) => (7, 2),
        FailedOver(FailoverKind::Unplanned) => (7, 3),
        Committed => (8, 0),
        Reprotecting => (9, 0),
    }
}

fn decode(state: u8, kind: u8) -> Option<ProtectionState> {
    ProtectionState::ALL
        .into_iter()
        .find(|s| code(*s) == (state, kind))
}

impl ProtectionRecord {
    /// The file's bytes, trailer included.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(MAX_LEN);
        Preamble::new(FileKind::Protection, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        let (s, k) = code(self.state);
        let (e, et) = self
            .last_error
            .map_or((0, 0), |(k, t)| (error_code(k), ns(t)));
        w.u8(s).u8(k).u8(e).zeros(5);
        w.u64(ns(self.since)).u64(et);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        let mut b = w.into_bytes();
        let h = blake3::hash(&b);
        b.extend_from_slice(h.as_bytes());
        Ok(b)
    }

    /// Parses a protection-state file.
    pub fn from_bytes(bytes: &[u8]) -> Result<ProtectionRecord> {
        Preamble::decode_slice(bytes, FileKind::Protection, VERSION_MAJOR)?;
        let body = trailer::verify_slice(bytes, "protection state")?;
        let mut r = Reader::new(body, 0, "protection state");
        Preamble::decode(&mut r, FileKind::Protection, VERSION_MAJOR)?;
        let s = r.u8("state")?;
        let k = r.u8("failover kind")?;
        let Some(state) = decode(s, k) else {
            return Err(r.error("state", format!("unknown state {s} (failover kind {k})")));
        };
        let e = r.u8("last error")?;
        r.reserved("reserved", 5)?;
        let since = UNIX_EPOCH + Duration::from_nanos(r.u64("since")?);
        let et = r.u64("last error time")?;
        let last_error = match e {
            0 if et == 0 => None,
            0 => return Err(r.error("last error time", "set, with no error")),
            e => match ErrorKind::ALL.get(usize::from(e) - 1) {
                Some(k) => Some((*k, UNIX_EPOCH + Duration::from_nanos(et))),
                None => return Err(r.error("last error", format!("unknown error class {e}"))),
            },
        };
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        if group.is_empty() {
            return Err(r.error("group", "empty"));
        }
        r.finish()?;
        Ok(ProtectionRecord {
            group,
            state,
            since,
            last_error,
        })
    }

    /// Reads a protection-state file; None if there is none.
    pub fn load(path: impl AsRef<Path>) -> Result<Option<ProtectionRecord>> {
        let path = path.as_ref();
        match read_small(path, "protection state", MAX_LEN) {
            Ok(bytes) => Self::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| e.with_path(path)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the record crash-safely, replacing the previous one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?, true)
    }

    /// Checks that `group`'s state at `path` (Enabling when there is none yet) can go through
    /// `moves` in order, without writing: InvalidArgument naming the state and the refused move.
    pub fn check(path: &Path, group: &str, moves: &[ProtectionState]) -> Result<ProtectionState> {
        let mut s = match Self::load(path)? {
            Some(r) if r.group != group => {
                return Err(Error::invalid_argument(
                    "group",
                    format!(
                        "{} holds the state of group `{}`, not `{group}`",
                        path.display(),
                        r.group
                    ),
                ));
            }
            Some(r) => r.state,
            None => ProtectionState::Enabling,
        };
        for to in moves {
            if s != *to {
                s = s.move_to(*to)?;
            }
        }
        Ok(s)
    }

    /// As [`check`](Self::check), then saves the last state at `now` (any move clears the
    /// last error; staying in the same state keeps it and its time).
    pub fn advance(
        path: &Path,
        group: &str,
        moves: &[ProtectionState],
        now: SystemTime,
    ) -> Result<ProtectionState> {
        let before = Self::load(path)?;
        let state = Self::check(path, group, moves)?;
        let (since, last_error) = match before {
            Some(b) if moves.iter().all(|m| *m == b.state) => (b.since, b.last_error),
            _ => (now, None),
        };
        ProtectionRecord {
            group: group.to_string(),
            state,
            since,
            last_error,
        }
        .save(path)?;
        Ok(state)
    }

    /// Records at `path` that a step of `group` failed with `kind` at `now` (the state stays;
    /// a group with no record gets none). [`clear_error`](Self::clear_error) after a success.
    pub fn note_error(path: &Path, group: &str, kind: ErrorKind, now: SystemTime) -> Result<()> {
        match Self::load(path)? {
            Some(mut r) if r.group == group => {
                r.last_error = Some((kind, now));
                r.save(path)
            }
            _ => Ok(()),
        }
    }

    /// Clears the last error at `path` after a step of `group` succeeded.
    pub fn clear_error(path: &Path, group: &str) -> Result<()> {
        match Self::load(path)? {
            Some(mut r) if r.group == group && r.last_error.is_some() => {
                r.last_error = None;
                r.save(path)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_damage_is_refused() {
        for state in ProtectionState::ALL {
            for last_error in [
                None,
                Some((
                    ErrorKind::Io,
                    UNIX_EPOCH + Duration::from_secs(1_800_000_100),
                )),
            ] {
                let r = ProtectionRecord {
                    group: "g".into(),
                    state,
                    since: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                    last_error,
                };
                let b = r.to_bytes().unwrap();
                assert_eq!(ProtectionRecord::from_bytes(&b).unwrap(), r);
                for i in 0..b.len() {
                    let mut bad = b.clone();
                    bad[i] ^= 0x04;
                    assert!(ProtectionRecord::from_bytes(&bad).is_err(), "byte {i}");
                }
            }
        }
    }

    #[test]
    fn moves_are_checked_and_saved() {
        use ProtectionState::*;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.rcprot");
        let now = SystemTime::now();
        let s = ProtectionRecord::advance(&p, "g", &[InitialReplication, Protected], now).unwrap();
        assert_eq!(s, Protected);
        let e = ProtectionRecord::advance(&p, "g", &[Reprotecting], now).unwrap_err();
        assert!(
            e.to_string().contains("from protected to reprotecting"),
            "{e}"
        );
        assert_eq!(
            ProtectionRecord::load(&p).unwrap().unwrap().state,
            Protected
        );
        let e = ProtectionRecord::check(&p, "h", &[]).unwrap_err();
        assert!(e.to_string().contains("group `g`"), "{e}");
    }
}
