//! Content identifiers shared by several layers.

use std::fmt;

/// `bytes` as lower-case hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of a blob: a keyed BLAKE3 hash of its plaintext (see `docs/FORMAT.md`).
///
/// Equality is constant-time, as for every digest the crate compares.
#[derive(Clone, Copy, Eq, Hash, PartialOrd, Ord)]
#[allow(clippy::derived_hash_with_manual_eq)] // equality is byte equality, only constant-time
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
}

impl PartialEq for BlobId {
    fn eq(&self, other: &Self) -> bool {
        blake3::Hash::from(self.0) == blake3::Hash::from(other.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 8 bytes are enough to tell ids apart in logs and test failures.
        write!(f, "BlobId({}..)", &self.to_hex()[..16])
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; 32]> for BlobId {
    fn from(b: [u8; 32]) -> Self {
        BlobId(b)
    }
}

/// The id of a recovery point: the BLAKE3 of the bundle header it was shipped with. That
/// header names its parent's id, so a group's points form a hash chain.
#[derive(Clone, Copy, Eq, Hash, PartialOrd, Ord)]
#[allow(clippy::derived_hash_with_manual_eq)] // equality is byte equality, only constant-time
pub struct PointId(pub [u8; 32]);

impl PointId {
    /// No point: the parent of a base.
    pub const ZERO: PointId = PointId([0; 32]);

    /// The id of a header's bytes.
    pub fn of_header(header: &[u8]) -> PointId {
        PointId(*blake3::hash(header).as_bytes())
    }

    /// The id as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }

    /// Parses [`to_hex`](Self::to_hex)'s form (64 hex digits, either case); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<PointId> {
        if s.len() != 64 {
            return None;
        }
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| PointId(*h.as_bytes()))
    }
}

impl PartialEq for PointId {
    fn eq(&self, other: &Self) -> bool {
        blake3::Hash::from(self.0) == blake3::Hash::from(other.0)
    }
}

impl fmt::Debug for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PointId({}..)", &self.to_hex()[..16])
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_equality() {
        let a = BlobId([0xab; 32]);
        assert_eq!(a.to_hex().len(), 64);
        assert!(a.to_hex().starts_with("abab"));
        assert_eq!(a, BlobId([0xab; 32]));
        assert_ne!(a, BlobId([0xac; 32]));
        assert_eq!(format!("{a:?}"), "BlobId(abababababababab..)");
    }
}
