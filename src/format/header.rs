//! The 16-byte preamble every replicore file starts with: magic, major and minor version
//! (`docs/FORMAT.md` §2).
//!
//! Version policy: a reader accepts exactly the major version it was built for and any minor
//! version of it (minor versions only add meaning to bytes earlier minors reserve as zero); a
//! different major is refused with [`UnsupportedVersion`](crate::ErrorKind::UnsupportedVersion)
//! naming the expected and found numbers. Nothing is ever guessed.

use std::io::Read;

use super::codec::{Reader, Writer, read_full};
use super::magic;
use crate::error::{Error, Result};

/// Byte offset of the magic.
pub const MAGIC_OFFSET: usize = 0;
/// Byte offset of the major version (`u16`).
pub const MAJOR_OFFSET: usize = MAGIC_OFFSET + 8;
/// Byte offset of the minor version (`u16`).
pub const MINOR_OFFSET: usize = MAJOR_OFFSET + 2;
/// Byte offset of the reserved word (`u32`, written as zero).
pub const RESERVED_OFFSET: usize = MINOR_OFFSET + 2;
/// Length of the preamble.
pub const PREAMBLE_LEN: usize = RESERVED_OFFSET + 4;
const _: () = assert!(PREAMBLE_LEN == 16);

/// The type of a replicore file, as told by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// Change log (`.rclog`).
    ChangeLog,
    /// Bundle (`.rcb`).
    Bundle,
    /// Signature (`.rcsig`).
    Signature,
    /// Delta (`.rcdelta`).
    Delta,
    /// Key file.
    KeyFile,
    /// Vault marker.
    Vault,
    /// Vault pack.
    Pack,
    /// Vault pack index.
    PackIndex,
    /// Recovery-point manifest.
    Manifest,
    /// Group head.
    GroupHead,
    /// Shipping state of a group on its primary.
    ShipState,
    /// A group's pinned verifying key in a vault.
    Trust,
    /// The chunk ids of a recovery point's disks (`.rcpsig`).
    PointSignature,
    /// Where a replica's disks stand in the chain applied to them (`.rcapply`).
    ApplyState,
    /// A group's protection state at one site (`.rcprot`).
    Protection,
    /// A vault's sorted index of the blobs of its packs (`packs/blobs.rcmidx`).
    BlobIndex,
    /// A segment of a group's point files in a vault (`.rcseg`).
    PointSegment,
}

impl FileKind {
    /// Every kind.
    pub const ALL: [FileKind; 17] = [
        FileKind::ChangeLog,
        FileKind::Bundle,
        FileKind::Signature,
        FileKind::Delta,
        FileKind::KeyFile,
        FileKind::Vault,
        FileKind::Pack,
        FileKind::PackIndex,
        FileKind::Manifest,
        FileKind::GroupHead,
        FileKind::ShipState,
        FileKind::Trust,
        FileKind::PointSignature,
        FileKind::ApplyState,
        FileKind::Protection,
        FileKind::BlobIndex,
        FileKind::PointSegment,
    ];

    /// The magic this kind's files start with.
    pub fn magic(self) -> [u8; 8] {
        match self {
            FileKind::ChangeLog => magic::CHANGE_LOG,
            FileKind::Bundle => magic::BUNDLE,
            FileKind::Signature => magic::SIGNATURE,
            FileKind::Delta => magic::DELTA,
            FileKind::KeyFile => magic::KEY_FILE,
            FileKind::Vault => magic::VAULT,
            FileKind::Pack => magic::PACK,
            FileKind::PackIndex => magic::PACK_INDEX,
            FileKind::Manifest => magic::MANIFEST,
            FileKind::GroupHead => magic::GROUP_HEAD,
            FileKind::ShipState => magic::SHIP_STATE,
            FileKind::Trust => magic::TRUST,
            FileKind::PointSignature => magic::POINT_SIGNATURE,
            FileKind::ApplyState => magic::APPLY_STATE,
            FileKind::Protection => magic::PROTECTION,
            FileKind::BlobIndex => magic::BLOB_INDEX,
            FileKind::PointSegment => magic::POINT_SEGMENT,
        }
    }

    /// A human name ("change log", "signature", ...).
    pub fn name(self) -> &'static str {
        let m = self.magic();
        magic::ALL
            .iter()
            .find(|(v, _)| *v == m)
            .map_or("file", |(_, n)| n)
    }

    /// The kind whose magic is `m`, if any.
    pub fn from_magic(m: &[u8; 8]) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.magic() == *m)
    }
}

/// A decoded preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The file type.
    pub kind: FileKind,
    /// Major version: incompatible changes.
    pub major: u16,
    /// Minor version: compatible additions.
    pub minor: u16,
}

impl Preamble {
    /// A preamble for a file of `kind` at version `major.minor`.
    pub fn new(kind: FileKind, major: u16, minor: u16) -> Self {
        Preamble { kind, major, minor }
    }

    /// Appends the 16 encoded bytes.
    pub fn encode(&self, w: &mut Writer) {
        w.bytes(&self.kind.magic())
            .u16(self.major)
            .u16(self.minor)
            .u32(0);
    }

    /// The 16 encoded bytes.
    pub fn to_bytes(&self) -> [u8; PREAMBLE_LEN] {
        let mut w = Writer::with_capacity(PREAMBLE_LEN);
        self.encode(&mut w);
        let mut out = [0u8; PREAMBLE_LEN];
        out.copy_from_slice(w.as_bytes());
        out
    }

    /// Decodes a preamble, requiring a file of `expected` kind at major version `major`.
    ///
    /// Another replicore file type is InvalidArgument (the caller handed over the wrong file);
    /// unknown bytes are Corrupt; another major version is UnsupportedVersion.
    pub fn decode(r: &mut Reader<'_>, expected: FileKind, major: u16) -> Result<Preamble> {
        let m: [u8; 8] = r.array("magic")?;
        match FileKind::from_magic(&m) {
            Some(k) if k == expected => {}
            Some(other) => {
                return Err(Error::invalid_argument(
                    "file",
                    format!(
                        "this is a replicore {}, not a {}",
                        other.name(),
                        expected.name()
                    ),
                ));
            }
            None => {
                return Err(Error::corrupt(
                    format!("{} preamble", expected.name()),
                    Some(0),
                    format!(
                        "wrong magic {}: not a replicore {}",
                        m.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                        expected.name()
                    ),
                ));
            }
        }
        let found = r.u16("major version")?;
        let minor = r.u16("minor version")?;
        r.reserved("reserved", 4)?;
        if found != major {
            return Err(Error::UnsupportedVersion {
                what: expected.name().to_string(),
                expected: major,
                found,
                path: None,
            });
        }
        Ok(Preamble {
            kind: expected,
            major: found,
            minor,
        })
    }

    /// Decodes a preamble from `bytes` (which must hold at least the preamble).
    pub fn decode_slice(bytes: &[u8], expected: FileKind, major: u16) -> Result<Preamble> {
        Self::decode(&mut Reader::new(bytes, 0, "preamble"), expected, major)
    }

    /// Reads and decodes a preamble from the start of a stream.
    pub fn read(r: &mut impl Read, expected: FileKind, major: u16) -> Result<Preamble> {
        let mut buf = [0u8; PREAMBLE_LEN];
        read_full(r, &mut buf, &format!("{} preamble", expected.name()), 0)?;
        Self::decode_slice(&buf, expected, major)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trip_and_layout() {
        let p = Preamble::new(FileKind::Signature, 1, 3);
        let b = p.to_bytes();
        assert_eq!(&b[MAGIC_OFFSET..MAJOR_OFFSET], &magic::SIGNATURE);
        assert_eq!(&b[MAJOR_OFFSET..MINOR_OFFSET], &[1, 0]);
        assert_eq!(&b[MINOR_OFFSET..RESERVED_OFFSET], &[3, 0]);
        assert_eq!(&b[RESERVED_OFFSET..], &[0; 4]);
        assert_eq!(
            Preamble::decode_slice(&b, FileKind::Signature, 1).unwrap(),
            p
        );
        assert_eq!(
            Preamble::read(&mut &b[..], FileKind::Signature, 1).unwrap(),
            p
        );
    }

    #[test]
    fn newer_major_is_refused_with_both_numbers() {
        let b = Preamble::new(FileKind::Delta, 2, 0).to_bytes();
        let e = Preamble::decode_slice(&b, FileKind::Delta, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
        assert!(matches!(
            e,
            Error::UnsupportedVersion {
                expected: 1,
                found: 2,
                ..
            }
        ));
    }

    #[test]
    fn newer_minor_is_accepted() {
        let b = Preamble::new(FileKind::Delta, 1, 9).to_bytes();
        assert_eq!(
            Preamble::decode_slice(&b, FileKind::Delta, 1)
                .unwrap()
                .minor,
            9
        );
    }

    #[test]
    fn wrong_type_and_garbage_are_told_apart() {
        let b = Preamble::new(FileKind::Bundle, 1, 0).to_bytes();
        let e = Preamble::decode_slice(&b, FileKind::Signature, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("bundle, not a signature"), "{e}");
        let e = Preamble::decode_slice(&[0u8; 16], FileKind::Signature, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        let e = Preamble::read(&mut &b[..5], FileKind::Bundle, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn every_kind_has_a_name() {
        for k in FileKind::ALL {
            assert_ne!(k.name(), "file");
            assert_eq!(FileKind::from_magic(&k.magic()), Some(k));
        }
    }
}
