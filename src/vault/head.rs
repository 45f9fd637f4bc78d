//! A group's head: the newest committed point (`docs/FORMAT.md` §15.5). Replacing it is what
//! commits a point.

use super::layout::{Layout, VERSION_MAJOR, VERSION_MINOR};
use crate::error::Result;
use crate::format::header::{FileKind, Preamble};
use crate::format::limits::MAX_NAME_LEN;
use crate::format::trailer::verify_slice;
use crate::format::{Reader, Writer};
use std::path::{Path, PathBuf};

use crate::fsutil::{list_dir, read_small, write_atomic_unscanned};
use crate::id::PointId;

const MAX_HEAD_LEN: usize = 16 + 2 + MAX_NAME_LEN + 8 + 32 + 8 + 32;

/// Where a group's chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub group: String,
    /// The newest point's sequence number and id.
    pub seq: u64,
    pub point: PointId,
    /// Points in the chain.
    pub count: u64,
}

impl Head {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(MAX_HEAD_LEN);
        Preamble::new(FileKind::GroupHead, VERSION_MAJOR, VERSION_MINOR).encode(&mut w);
        w.string_u16("group", &self.group, MAX_NAME_LEN)?;
        w.u64(self.seq).bytes(&self.point.0).u64(self.count);
        let mut bytes = w.into_bytes();
        let h = blake3::hash(&bytes);
        bytes.extend_from_slice(h.as_bytes());
        Ok(bytes)
    }

    pub fn decode(bytes: &[u8]) -> Result<Head> {
        let body = verify_slice(bytes, "group head")?;
        let mut r = Reader::new(body, 0, "group head");
        Preamble::decode(&mut r, FileKind::GroupHead, VERSION_MAJOR)?;
        let group = r.string_u16("group", MAX_NAME_LEN)?.to_string();
        let seq = r.u64("seq")?;
        let point = PointId(r.array("point id")?);
        let count = r.u64("point count")?;
        r.finish()?;
        if count == 0 {
            return Err(r.error("point count", "a head names at least one point"));
        }
        Ok(Head {
            group,
            seq,
            point,
            count,
        })
    }

    /// Reads the head file at `path`.
    pub fn read(path: &Path) -> Result<Head> {
        let bytes = read_small(path, "group head", MAX_HEAD_LEN)?;
        Self::decode(&bytes).map_err(|e| e.with_path(path))
    }

    /// Every head file of the vault, sorted by path, with what reading it gave: a damaged one
    /// is an error in the list, not a failure of the listing.
    pub fn all(layout: &Layout) -> Result<Vec<(PathBuf, Result<Head>)>> {
        let mut paths: Vec<PathBuf> = list_dir(&layout.heads())?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rchead"))
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|p| {
                let h = Self::read(&p);
                (p, h)
            })
            .collect())
    }

    /// The head of `group`, or `None` when the group has none.
    pub fn load(layout: &Layout, group: &str) -> Result<Option<Head>> {
        let path = layout.head(group);
        if !path.exists() {
            return Ok(None);
        }
        let head = Self::read(&path)?;
        if head.group != group {
            return Err(crate::Error::corrupt(
                "group head",
                Some(16),
                format!("it names group `{}`, not `{group}`", head.group),
            )
            .with_path(&path));
        }
        Ok(Some(head))
    }

    /// Publishes this head (the commit of its point).
    pub fn store(&self, layout: &Layout) -> Result<()> {
        write_atomic_unscanned(&layout.head(&self.group), &self.encode()?, true)
    }
}
