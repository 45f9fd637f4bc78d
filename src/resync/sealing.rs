//! The mode fields of a signature's or a delta's header (`docs/FORMAT.md` §9, §10): plain or
//! sealed, the id of the key a sealed file is sealed under, its salt; and which body a reader
//! holding (or not holding) a key may read.

use std::io::Read;

use super::seal::{BodyReader, SALT_LEN, random_salt};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::format::HashingReader;

/// Mode byte of a resync file's header: a plain file (keyless, readable by anyone).
pub(crate) const MODE_PLAIN: u8 = 0;
/// Mode byte of a resync file's header: a sealed file (keyed hashes, encrypted body).
pub(crate) const MODE_SEALED: u8 = 1;

/// The sealing fields of a resync file's header: its mode, the id of the key it is sealed
/// under and its salt (both zero in a plain file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealing {
    pub sealed: bool,
    pub key_id: [u8; 16],
    pub salt: [u8; SALT_LEN],
}

impl Sealing {
    /// A plain file's fields.
    pub const PLAIN: Sealing = Sealing {
        sealed: false,
        key_id: [0; 16],
        salt: [0; SALT_LEN],
    };

    /// Fresh fields for a file sealed under `key`, or plain ones.
    pub fn new(key: Option<&Key>) -> Result<Sealing> {
        Ok(match key {
            None => Sealing::PLAIN,
            Some(k) => Sealing {
                sealed: true,
                key_id: k.id().0,
                salt: random_salt()?,
            },
        })
    }

    /// Decodes the mode byte (at its place in the header), checking the fields of a plain
    /// file are zero; `key_id` and `salt` are decoded by the caller at their own places.
    pub fn decode(
        mode: u8,
        key_id: [u8; 16],
        salt: [u8; SALT_LEN],
    ) -> std::result::Result<Sealing, String> {
        match mode {
            MODE_PLAIN if key_id == [0; 16] && salt == [0; SALT_LEN] => Ok(Sealing::PLAIN),
            MODE_PLAIN => Err("a plain file carries a key id or salt".into()),
            MODE_SEALED => Ok(Sealing {
                sealed: true,
                key_id,
                salt,
            }),
            m => Err(format!("unknown mode {m} (0 plain, 1 sealed)")),
        }
    }

    /// The mode byte.
    pub fn mode(&self) -> u8 {
        if self.sealed { MODE_SEALED } else { MODE_PLAIN }
    }

    /// The key to seal a body with, for [`BodyWriter::start`].
    pub fn seal<'a>(&'a self, key: Option<&'a Key>) -> Option<(&'a Key, &'a [u8; SALT_LEN])> {
        key.filter(|_| self.sealed).map(|k| (k, &self.salt))
    }

    /// The body that follows `header` (every byte of the file's header, already read from
    /// `r`), for a reader holding `key` (None: keyless). A sealed file needs the key it was
    /// sealed under; with a key, a plain file is refused (anyone can forge one). Each refusal
    /// is reported only after the trailer was found intact (else Corrupt).
    pub fn open_body<R: Read>(
        &self,
        r: HashingReader<R>,
        what: &'static str,
        header: &[u8],
        key: Option<&Key>,
    ) -> Result<BodyReader<R>> {
        let refuse = |r: HashingReader<R>, e: Error| match r.drain(what) {
            Ok(()) => Err(e),
            Err(damage) => Err(damage),
        };
        let id = crate::crypto::KeyId(self.key_id);
        match (self.sealed, key) {
            (false, None) => Ok(BodyReader::plain(r, what)),
            (true, Some(k)) if k.id() == id => {
                Ok(BodyReader::sealed(r, what, header, k, &self.salt))
            }
            (true, Some(k)) => refuse(
                r,
                Error::Authentication {
                    what: format!("sealed {what}"),
                    detail: format!("it is sealed under key {id}, the key given is {}", k.id()),
                },
            ),
            (true, None) => refuse(
                r,
                Error::invalid_argument(
                    what,
                    format!("the {what} is sealed under key {id}: give that key to read it"),
                ),
            ),
            (false, Some(_)) => refuse(
                r,
                Error::Authentication {
                    what: format!("plain {what}"),
                    detail: format!(
                        "the {what} is plain (keyless, unauthenticated: anyone can write one); \
                         with a key only a sealed {what} is accepted"
                    ),
                },
            ),
        }
    }
}
