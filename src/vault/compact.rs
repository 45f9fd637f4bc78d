//! Compaction, with the key: the chain's first point file, which holds the signed records of
//! every point pruning merged into it since the chain began, becomes one checkpoint the key
//! holder signs (`docs/FORMAT.md` §15.4): the full map of every disk at that point, the blobs it
//! reads with their sealed hashes, how many shipped points it stands for and the first point
//! the chain ever shipped. So the metadata a chain keeps stays bounded however long it runs.
//!
//! The records are checked before anything is signed (each file's signatures, under the key's
//! verifying key), so the checkpoint states nothing the key holder did not sign before. The
//! new file replaces the old one by an atomic rename (same name, same point), inside the
//! group's in-progress marker: a crash leaves the old file or the new one, and both read the
//! same.

use std::collections::HashSet;

use super::Vault;
use super::chain;
use super::point::PointFile;
use super::records::{Checkpoint, put};
use crate::bundle::format::{
    BundleKind, MAX_MANIFESTS_LEN, TableRow, encode_manifests, encode_table,
};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::id::PointId;
use crate::sys::LockMode;

/// What [`Vault::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The group.
    pub group: String,
    /// The point the checkpoint stands at (the chain's first kept point).
    pub point: PointId,
    /// Its sequence number.
    pub seq: u64,
    /// Records its file held before (1 when there was nothing to compact).
    pub records_before: u64,
    /// Shipped points the checkpoint stands for.
    pub shipped: u64,
    /// Bytes of its file before and after.
    pub bytes_before: u64,
    /// Bytes of its file after.
    pub bytes_after: u64,
}

impl Vault {
    /// Replaces the records accumulated in the first point file of `group` with one checkpoint
    /// signed by `key` (see the module docs of `vault::compact`). Needs the group's key; runs
    /// alone (the vault lock, exclusive). A file that already holds one record is left as it
    /// is.
    pub fn compact(&self, group: &str, key: &Key) -> Result<Compacted> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let chain = chain::load(&self.layout, group)?;
        chain.check_all()?;
        let first = &chain.read(&chain.links[0])?;
        super::materialize::authenticate(first, key)?;
        let size = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| Error::io("reading the size of", Some(p), e))
        };
        let bytes_before = match first.loc.within {
            Some((_, len)) => len,
            None => size(&first.loc.path)?,
        };
        let mut done = Compacted {
            group: group.to_string(),
            point: first.file.id(),
            seq: first.file.header.seq,
            records_before: first.file.records,
            shipped: first.file.shipped,
            bytes_before,
            bytes_after: bytes_before,
        };
        if first.file.records == 1 {
            return Ok(done);
        }
        let body = first.file.body()?;
        let first_point = body.first_point.ok_or_else(|| {
            Error::corrupt(
                format!("chain of group `{group}`"),
                None,
                "its first point file does not start the chain",
            )
        })?;
        debug_assert_eq!(first.file.first.1, BundleKind::Base);
        let manifests = encode_manifests(&body.folded)?;
        if manifests.len() > MAX_MANIFESTS_LEN {
            return Err(Error::limit_exceeded(
                "a checkpoint's manifests",
                MAX_MANIFESTS_LEN as u64,
                manifests.len() as u64,
                "bytes",
            ));
        }
        // Every blob the map reads, each in every form a record signed.
        let mut seen = HashSet::new();
        let mut rows: Vec<TableRow> = Vec::new();
        for d in &body.folded {
            for e in d.extents.iter() {
                if let Source::Blob { id, .. } = e.source
                    && seen.insert(id)
                {
                    rows.extend(body.hashes.rows_of(&id));
                }
            }
        }
        let table = encode_table(&rows);
        let c = Checkpoint {
            shipped: first.file.shipped,
            first_point,
            header: &first.file.header_bytes,
            manifests: &manifests,
            table: &table,
        };
        let record = c.signed(key);
        let file = PointFile {
            header_bytes: first.file.header_bytes.clone(),
            header: first.file.header.clone(),
            first: (PointId::ZERO, BundleKind::Base, first.file.header.seq),
            records: 1,
            shipped: first.file.shipped,
            checkpoint: true,
            disks: first.file.disks.clone(),
            body: None,
        };
        super::repair::begin(&self.layout, group)?;
        let path = chain.file_path(&chain.links[0]);
        file.publish(&path, true, |w| put(w, &record, &path))?;
        super::repair::end(&self.layout, group)?;
        // Read back: the same chain, the same maps.
        let after = chain::load(&self.layout, group)?;
        let same = after.head == chain.head
            && after.links.len() == chain.links.len()
            && after.read(&after.links[0])?.file.decode_disks()? == body.folded;
        if !same {
            return Err(Error::corrupt(
                format!("chain of group `{group}`"),
                None,
                "after compaction it does not read as before",
            ));
        }
        done.bytes_after = size(&path)?;
        Ok(done)
    }
}
