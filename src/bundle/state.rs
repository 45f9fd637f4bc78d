//! A group's shipping state on its primary (`.rcship`, `docs/FORMAT.md` §14): where the chain
//! stands, so that the next sealed log is shipped as its continuation.

use std::path::Path;

use crate::crypto::KeyId;
use crate::error::Result;
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::{Reader, Writer, trailer};
use crate::fsutil::{read_small, write_atomic};
use crate::id::PointId;

/// Major format version of `.rcship` this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 1;
/// The largest ship-state file.
const MAX_LEN: usize = 16 + 16 + 16 + 8 + 8 + 32 + 8 + 2 + MAX_NAME_LEN + 8 + 32;

/// Where a group's chain stands on the primary: the last point shipped and the log that must
/// come next. [`seed`](super::seed) creates it; [`ship`](super::ship) advances it. Keep it with
/// the change log and save it after every ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipState {
    /// The group.
    pub group: String,
    /// The key every bundle of the group is sealed under.
    pub key_id: KeyId,
    /// The tracking session the next sealed log must belong to.
    pub epoch: [u8; 16],
    /// The generation the next sealed log must have.
    pub next_generation: u64,
    /// The sequence number of the next point.
    pub next_seq: u64,
    /// The last point shipped: the parent of the next.
    pub head: PointId,
    /// The chunk grid long writes are cut on (the seed's chunk size).
    pub chunk_size: u32,
    /// When the last point shipped was taken (nanoseconds since the Unix epoch; 0 when not
    /// known: a state written by version 1.0).
    pub head_time_ns: u64,
}

impl ShipState {
    /// The file's bytes, trailer included.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(MAX_LEN);
        Preamble::new(FileKind::ShipState, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.bytes(&self.key_id.0).bytes(&self.epoch);
        w.u64(self.next_generation)
            .u64(self.next_seq)
            .bytes(&self.head.0);
        w.u32(self.chunk_size).zeros(4);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        w.u64(self.head_time_ns);
        let mut b = w.into_bytes();
        let h = blake3::hash(&b);
        b.extend_from_slice(h.as_bytes());
        Ok(b)
    }

    /// Parses a ship-state file.
    pub fn from_bytes(bytes: &[u8]) -> Result<ShipState> {
        Preamble::decode_slice(bytes, FileKind::ShipState, VERSION_MAJOR)?;
        let body = trailer::verify_slice(bytes, "ship state")?;
        let mut r = Reader::new(body, 0, "ship state");
        let preamble = Preamble::decode(&mut r, FileKind::ShipState, VERSION_MAJOR)?;
        let key_id = KeyId(r.array("key id")?);
        let epoch = r.array("epoch")?;
        let next_generation = r.u64("next generation")?;
        let next_seq = r.u64("next seq")?;
        let head = PointId(r.array("head")?);
        let chunk_size = r.u32("chunk size")?;
        if !chunk_size.is_power_of_two() || !(4096..=8 << 20).contains(&chunk_size) {
            return Err(r.error(
                "chunk size",
                format!("{chunk_size} bytes is not within 4 KiB to 8 MiB"),
            ));
        }
        r.reserved("reserved", 4)?;
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        if group.is_empty() {
            return Err(r.error("group", "empty"));
        }
        // Version 1.1 added the head's time after the group.
        let head_time_ns = if preamble.minor >= 1 {
            r.u64("head time")?
        } else {
            0
        };
        r.finish()?;
        Ok(ShipState {
            head_time_ns,
            group,
            key_id,
            epoch,
            next_generation,
            next_seq,
            head,
            chunk_size,
        })
    }

    /// Reads a ship-state file.
    pub fn load(path: impl AsRef<Path>) -> Result<ShipState> {
        let path = path.as_ref();
        let bytes = read_small(path, "ship state", MAX_LEN)?;
        Self::from_bytes(&bytes).map_err(|e| e.with_path(path))
    }

    /// Writes the state crash-safely, replacing the previous one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ShipState {
        ShipState {
            group: "g".into(),
            key_id: KeyId([1; 16]),
            epoch: [2; 16],
            next_generation: 3,
            next_seq: 4,
            head: PointId([5; 32]),
            chunk_size: 1 << 16,
            head_time_ns: 1_800_000_000_000_000_000,
        }
    }

    #[test]
    fn a_version_1_0_state_still_reads_without_the_head_time() {
        let s = state();
        let b = s.to_bytes().unwrap();
        assert_eq!(ShipState::from_bytes(&b).unwrap(), s);
        // 1.0: minor 0, no time after the group.
        let mut old = b[..b.len() - 32 - 8].to_vec();
        old[10] = 0;
        let h = blake3::hash(&old);
        old.extend_from_slice(h.as_bytes());
        let read = ShipState::from_bytes(&old).unwrap();
        assert_eq!(
            read,
            ShipState {
                head_time_ns: 0,
                ..s
            }
        );
        // A 1.1 file without its time is short: refused.
        let mut short = b[..b.len() - 32 - 8].to_vec();
        let h = blake3::hash(&short);
        short.extend_from_slice(h.as_bytes());
        assert!(ShipState::from_bytes(&short).is_err());
    }
}
