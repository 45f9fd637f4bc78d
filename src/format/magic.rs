//! Every magic number of every replicore file, in one place.
//!
//! DO NOT MODIFY an existing value: files in the field carry them. A new file type gets a new
//! constant here (and a row in `docs/FORMAT.md` §2). A change that alters the preamble layout
//! itself, which readers rely on to report a version, gets a new magic rather than a new major.
//!
//! Layout of each magic: byte 0 is `0x89` (a non-ASCII byte: a 7-bit or text-mode transfer
//! damages it visibly), bytes 1..6 are five ASCII letters naming the type, bytes 6..8 are
//! `\r\n` (a CR-LF translation changes the length and is detected).

/// Change log, active or sealed (`.rclog`).
pub const CHANGE_LOG: [u8; 8] = *b"\x89RCLOG\r\n";
/// Shipped bundle of one recovery point (`.rcb`).
pub const BUNDLE: [u8; 8] = *b"\x89RCBDL\r\n";
/// Fixed-chunk signature of a disk image (`.rcsig`).
pub const SIGNATURE: [u8; 8] = *b"\x89RCSIG\r\n";
/// Resync delta (`.rcdelta`).
pub const DELTA: [u8; 8] = *b"\x89RCDLT\r\n";
/// Key file: the wrapped data key.
pub const KEY_FILE: [u8; 8] = *b"\x89RCKEY\r\n";
/// Vault format marker file.
pub const VAULT: [u8; 8] = *b"\x89RCVLT\r\n";
/// Vault pack file (many encrypted blobs).
pub const PACK: [u8; 8] = *b"\x89RCPAK\r\n";
/// Vault pack index.
pub const PACK_INDEX: [u8; 8] = *b"\x89RCIDX\r\n";
/// Vault recovery-point manifest.
pub const MANIFEST: [u8; 8] = *b"\x89RCMAN\r\n";
/// Vault group head.
pub const GROUP_HEAD: [u8; 8] = *b"\x89RCHED\r\n";

/// Shipping state of a group on its primary (`.rcship`).
pub const SHIP_STATE: [u8; 8] = *b"\x89RCSHP\r\n";
/// A group's pinned verifying key in a vault (`.rctrust`).
pub const TRUST: [u8; 8] = *b"\x89RCTRU\r\n";
/// The chunk ids of every disk of a recovery point, for a resync into its chain (`.rcpsig`).
pub const POINT_SIGNATURE: [u8; 8] = *b"\x89RCPSG\r\n";
/// Where a replica's disks stand in the chain applied to them (`.rcapply`).
pub const APPLY_STATE: [u8; 8] = *b"\x89RCAPL\r\n";
/// A group's protection state at one site (`.rcprot`).
pub const PROTECTION: [u8; 8] = *b"\x89RCPRO\r\n";
/// A vault's sorted index of every blob of its packs, written by GC (`packs/blobs.rcmidx`).
pub const BLOB_INDEX: [u8; 8] = *b"\x89RCMIX\r\n";
/// A segment of a group's point files in a vault (`.rcseg`).
pub const POINT_SEGMENT: [u8; 8] = *b"\x89RCSEG\r\n";

/// All magics with their file-type names, for diagnostics and uniqueness tests.
pub const ALL: [([u8; 8], &str); 17] = [
    (CHANGE_LOG, "change log"),
    (BUNDLE, "bundle"),
    (SIGNATURE, "signature"),
    (DELTA, "delta"),
    (KEY_FILE, "key file"),
    (VAULT, "vault marker"),
    (PACK, "pack"),
    (PACK_INDEX, "pack index"),
    (MANIFEST, "manifest"),
    (GROUP_HEAD, "group head"),
    (SHIP_STATE, "ship state"),
    (TRUST, "pinned verifying key"),
    (POINT_SIGNATURE, "point signature"),
    (APPLY_STATE, "apply state"),
    (PROTECTION, "protection state"),
    (BLOB_INDEX, "vault blob index"),
    (POINT_SEGMENT, "point segment"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_unique_and_well_formed() {
        for (i, (a, name)) in ALL.iter().enumerate() {
            assert_eq!(a[0], 0x89, "{name}");
            assert_eq!(&a[6..], b"\r\n", "{name}");
            assert!(a[1..6].iter().all(u8::is_ascii_uppercase), "{name}");
            for (b, other) in &ALL[i + 1..] {
                assert_ne!(a, b, "{name} and {other} share a magic");
            }
        }
    }
}
