//! Where a replica's disks stand in the chain applied to them (`.rcapply`, `docs/FORMAT.md`
//! §17): the point they hold, and the point being applied when an apply was interrupted.
//! [`apply`](super::apply()) reads it to refuse a gap, a fork or a replay, and advances it.

use std::path::Path;

use crate::crypto::KeyId;
use crate::error::Result;
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::{Reader, Writer, trailer};
use crate::fsutil::{read_small, write_atomic};
use crate::id::PointId;

/// Major format version of `.rcapply` this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
/// The largest apply-state file.
const MAX_LEN: usize = 16 + 16 + 32 + 8 + 8 + 32 + 8 + 2 + MAX_NAME_LEN + 32;

/// Where a replica's disks stand: see the module docs. Kept beside the disks' images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyState {
    /// The group whose points are applied.
    pub group: String,
    /// The key the group's bundles are sealed under.
    pub key_id: KeyId,
    /// The point the disks hold: the parent the next bundle must have.
    pub head: PointId,
    /// The sequence number the next bundle must have.
    pub next_seq: u64,
    /// A point whose apply started and did not finish: the disks are part way between `head`
    /// and it, and only it can be applied (again) until it is done.
    pub applying: Option<PointId>,
}

impl ApplyState {
    /// The file's bytes, trailer included.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(MAX_LEN);
        Preamble::new(FileKind::ApplyState, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.bytes(&self.key_id.0)
            .bytes(&self.head.0)
            .u64(self.next_seq);
        w.u8(u8::from(self.applying.is_some())).zeros(7);
        w.bytes(&self.applying.unwrap_or(PointId::ZERO).0);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        let mut b = w.into_bytes();
        let h = blake3::hash(&b);
        b.extend_from_slice(h.as_bytes());
        Ok(b)
    }

    /// Parses an apply-state file.
    pub fn from_bytes(bytes: &[u8]) -> Result<ApplyState> {
        Preamble::decode_slice(bytes, FileKind::ApplyState, VERSION_MAJOR)?;
        let body = trailer::verify_slice(bytes, "apply state")?;
        let mut r = Reader::new(body, 0, "apply state");
        Preamble::decode(&mut r, FileKind::ApplyState, VERSION_MAJOR)?;
        let key_id = KeyId(r.array("key id")?);
        let head = PointId(r.array("head")?);
        let next_seq = r.u64("next seq")?;
        let flag = r.u8("applying flag")?;
        r.reserved("reserved", 7)?;
        let applying = PointId(r.array("applying")?);
        let applying = match flag {
            0 if applying == PointId::ZERO => None,
            0 => return Err(r.error("applying", "a point is named but the flag is 0")),
            1 => Some(applying),
            f => return Err(r.error("applying flag", format!("{f} is neither 0 nor 1"))),
        };
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        if group.is_empty() {
            return Err(r.error("group", "empty"));
        }
        r.finish()?;
        Ok(ApplyState {
            group,
            key_id,
            head,
            next_seq,
            applying,
        })
    }

    /// Reads an apply-state file.
    pub fn load(path: impl AsRef<Path>) -> Result<ApplyState> {
        let path = path.as_ref();
        let bytes = read_small(path, "apply state", MAX_LEN)?;
        Self::from_bytes(&bytes).map_err(|e| e.with_path(path))
    }

    /// Writes the state crash-safely (renamed into place, synced), replacing the previous one
    /// unless `replace` is false and one is there (AlreadyExists).
    pub fn save(&self, path: impl AsRef<Path>, replace: bool) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?, replace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let mut s = ApplyState {
            group: "g".into(),
            key_id: KeyId([3; 16]),
            head: PointId([7; 32]),
            next_seq: 9,
            applying: None,
        };
        for applying in [None, Some(PointId([8; 32]))] {
            s.applying = applying;
            let b = s.to_bytes().unwrap();
            assert_eq!(ApplyState::from_bytes(&b).unwrap(), s);
            for i in 0..b.len() {
                let mut bad = b.clone();
                bad[i] ^= 0x10;
                assert!(ApplyState::from_bytes(&bad).is_err(), "byte {i}");
            }
            assert!(ApplyState::from_bytes(&b[..b.len() - 1]).is_err());
        }
    }
}
