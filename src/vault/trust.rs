//! A group's pinned verifying key (`docs/FORMAT.md` §15.8): set by the host before (or after)
//! the group's base arrives, so that keyless ingest and verify refuse points signed by any
//! other key, a forged base included. Without a pin, a group trusts the key its base named.

use super::Vault;
use super::layout::{Layout, VERSION_MAJOR, VERSION_MINOR};
use crate::crypto::VerifyingKey;
use crate::error::{Error, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::trailer::verify_slice;
use crate::format::{Reader, Writer};
use crate::fsutil::{read_small, write_atomic};
use crate::sys::LockMode;

const MAX_LEN: usize = 16 + 2 + MAX_NAME_LEN + 32 + 32;

pub(crate) fn encode(group: &str, vk: &VerifyingKey) -> Result<Vec<u8>> {
    let mut w = Writer::with_capacity(MAX_LEN);
    Preamble::new(FileKind::Trust, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
    w.string_u16("group", group, MAX_NAME_LEN)?;
    w.bytes(&vk.0);
    let mut b = w.into_bytes();
    let h = blake3::hash(&b);
    b.extend_from_slice(h.as_bytes());
    Ok(b)
}

/// Decodes a pin file: (group, key).
pub(crate) fn decode(bytes: &[u8]) -> Result<(String, VerifyingKey)> {
    let body = verify_slice(bytes, "pinned verifying key")?;
    let mut r = Reader::new(body, 0, "pinned verifying key");
    Preamble::decode(&mut r, FileKind::Trust, VERSION_MAJOR)?;
    let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
    let vk = VerifyingKey(r.array("verifying key")?);
    r.finish()?;
    Ok((group, vk))
}

/// The key pinned for `group`, if any. A damaged pin is an error, never "no pin".
pub(crate) fn load(layout: &Layout, group: &str) -> Result<Option<VerifyingKey>> {
    let path = layout.trust(group);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_small(&path, "pinned verifying key", MAX_LEN)?;
    let (g, vk) = decode(&bytes).map_err(|e| e.with_path(&path))?;
    if g != group {
        return Err(Error::corrupt(
            "pinned verifying key",
            Some(16),
            format!("it names group `{g}`, not `{group}`"),
        )
        .with_path(&path));
    }
    Ok(Some(vk))
}

/// Refuses `vk` when `group` has a pinned key that differs.
pub(crate) fn check(layout: &Layout, group: &str, vk: &VerifyingKey) -> Result<()> {
    match load(layout, group)? {
        Some(pinned) if pinned != *vk => Err(Error::Authentication {
            what: format!("group `{group}`"),
            detail: format!(
                "its points are signed by key {vk}, but the key pinned for it is {pinned}"
            ),
        }),
        _ => Ok(()),
    }
}

impl Vault {
    /// Pins the verifying key of `group` ([`Key::verifying_key`](crate::crypto::Key::verifying_key)
    /// at the primary; `replicore key show` prints it): from then on ingest and verify refuse
    /// any point of the group signed by another key, a forged base included. Pinning a group
    /// whose chain is signed by another key is [`Authentication`](crate::ErrorKind::Authentication);
    /// replacing a pin needs `replace`.
    pub fn pin_key(&self, group: &str, vk: VerifyingKey, replace: bool) -> Result<()> {
        let _lock = self.lock(LockMode::Shared)?;
        if let Some(head) = super::head::Head::load(&self.layout, group)? {
            let tip = super::chain::tip(&self.layout, &head)?;
            if tip.header.verifying_key != vk {
                return Err(Error::Authentication {
                    what: format!("group `{group}`"),
                    detail: format!(
                        "its chain is signed by key {}, not {vk}",
                        tip.header.verifying_key
                    ),
                });
            }
        }
        let path = self.layout.trust(group);
        let dir = crate::fsutil::parent_dir(&path).to_path_buf();
        crate::fsutil::create_private_dir(&dir)
            .map_err(|e| Error::io("creating", Some(&dir), e))?;
        write_atomic(&path, &encode(group, &vk)?, replace)
    }

    /// The verifying key pinned for `group`, if any.
    pub fn pinned_key(&self, group: &str) -> Result<Option<VerifyingKey>> {
        let _lock = self.lock(LockMode::Shared)?;
        load(&self.layout, group)
    }
}
