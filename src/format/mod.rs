//! Shared on-disk primitives: magic and version preambles, checked little-endian codecs, caps
//! and checked arithmetic for untrusted numbers, and the BLAKE3 trailer.
//!
//! The byte layouts live in `docs/FORMAT.md`, which is the one source of truth; code comments
//! point there rather than repeat it. Every decoder in the crate reads through
//! [`Reader`] (or the streaming helpers beside it), so a truncated or hostile
//! input yields [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) naming the field and offset,
//! never a panic or an allocation driven by an unchecked length.

pub mod checked;
pub mod codec;
pub mod header;
pub mod limits;
pub mod magic;
pub(crate) mod stream;
pub mod time;
pub mod trailer;
pub mod units;

pub use codec::{Reader, Writer};
pub use header::{FileKind, Preamble};
pub use time::rfc3339;
pub use trailer::{HashingReader, TrailerWriter};
pub use units::{bytes, quantity};
