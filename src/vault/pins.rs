//! Pins: points an operator protects from pruning (during a test failover, an investigation),
//! one empty file per pinned point (`docs/FORMAT.md` §15.6).

use std::collections::HashSet;

use super::Vault;
use super::chain;
use super::layout::Layout;
use crate::error::{Error, Result};
use crate::fsutil::{list_dir, sync_dir, write_atomic};
use crate::id::PointId;
use crate::sys::LockMode;

impl Vault {
    /// Pins point `point` of `group`: pruning keeps it until it is unpinned. Pinning a pinned
    /// point is a no-op; a point not in the chain is [`NotFound`](crate::ErrorKind::NotFound).
    pub fn pin(&self, group: &str, point: PointId) -> Result<()> {
        let _lock = self.lock(LockMode::Shared)?;
        let chain = chain::load(&self.layout, group)?;
        if !chain.links.iter().any(|l| l.id == point) {
            return Err(Error::NotFound {
                what: format!("point {} in group `{group}`", point.to_hex()),
            });
        }
        let dir = self.layout.pins(group);
        crate::fsutil::create_private_dir(&dir)
            .map_err(|e| Error::io("creating", Some(&dir), e))?;
        write_atomic(&dir.join(pin_name(&point)), &[], true)
    }

    /// Unpins a point; unpinning a point that is not pinned is a no-op.
    pub fn unpin(&self, group: &str, point: PointId) -> Result<()> {
        let _lock = self.lock(LockMode::Shared)?;
        let dir = self.layout.pins(group);
        let path = dir.join(pin_name(&point));
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing a pin", Some(&path), e)),
        }
    }

    /// The pinned points of `group`.
    pub fn pins(&self, group: &str) -> Result<Vec<PointId>> {
        let _lock = self.lock(LockMode::Shared)?;
        let mut v: Vec<PointId> = read(&self.layout, group)?.into_iter().collect();
        v.sort();
        Ok(v)
    }
}

/// A pin file's name.
fn pin_name(point: &PointId) -> String {
    format!("{}.pin", point.to_hex())
}

/// The pins of `group` (none when it has no pins directory). Names that are not a pin's are
/// ignored (a temporary file of an interrupted pin among them).
pub(crate) fn read(layout: &Layout, group: &str) -> Result<HashSet<PointId>> {
    let dir = layout.pins(group);
    if !dir.is_dir() {
        return Ok(HashSet::new());
    }
    Ok(list_dir(&dir)?
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_suffix(".pin")
                .and_then(PointId::from_hex)
        })
        .collect())
}
