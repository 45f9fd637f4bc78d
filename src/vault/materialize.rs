//! Materializing points (failover): a disk at a point is its chain folded from the base (newer
//! wins), written as a raw image, sparse where the data is zero. Blobs are read from their
//! packs, authenticated and decompressed on every core, in bounded memory.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::chain;
use super::pack::{IndexEntry, read_stored};
use super::point::StoredPoint;
use super::{PackId, Selector, Vault};
use crate::blob;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::fsutil::AtomicFile;
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::sys::LockMode;

/// Stored bytes of blobs decoded together.
const BATCH_BYTES: u64 = 64 << 20;

/// One disk image [`Vault::materialize`] or [`Vault::failover`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// The point.
    pub point: PointId,
    /// The disk.
    pub disk: String,
    /// The image written.
    pub path: PathBuf,
    /// The disk's size.
    pub size: u64,
    /// Bytes written from blobs (the rest is zeros, left as holes).
    pub data_bytes: u64,
    /// Blobs decoded.
    pub blobs: u64,
}

/// Where each range of a blob goes: (disk offset, length, offset in the blob).
type Targets = Vec<(u64, u64, u64)>;

impl Vault {
    /// Writes disk `disk` of `group` as it was at `point` to a new raw image at `out` (which
    /// must not exist; it appears only once complete and synced). Needs the group's key: every
    /// blob is authenticated as it is read, and the points' manifests too. Progress counts the
    /// bytes written from blobs.
    pub fn materialize(
        &self,
        group: &str,
        point: PointId,
        disk: &str,
        key: &Key,
        out: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Materialized> {
        let _lock = self.lock(LockMode::Shared)?;
        let maps = self.folded(group, point, key)?;
        let Some((_, map)) = maps.iter().find(|(n, _)| n == disk) else {
            return Err(Error::NotFound {
                what: format!("disk `{disk}` in group `{group}`"),
            });
        };
        let total = map_data_bytes(map);
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        self.write_disk(point, disk, map, key, out.as_ref(), &mut report)
    }

    /// Fails a group over: writes every disk of the point `selector` picks as
    /// `out_dir/<disk>.img` (characters other than letters, digits, `.`, `_` and `-` in a disk
    /// name become `_`). Progress counts bytes written from blobs across the disks.
    pub fn failover(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        out_dir: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<Vec<Materialized>> {
        let point = self.select(group, selector)?.id;
        let _lock = self.lock(LockMode::Shared)?;
        let maps = self.folded(group, point, key)?;
        let mut names: Vec<String> = Vec::new();
        for (disk, _) in &maps {
            let name = image_name(disk);
            if names.contains(&name) {
                return Err(Error::invalid_argument(
                    "out_dir",
                    format!("two disks of group `{group}` would both be written to {name}"),
                ));
            }
            names.push(name);
        }
        let total: u64 = maps.iter().map(|(_, m)| map_data_bytes(m)).sum();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total)
        };
        maps.iter()
            .zip(&names)
            .map(|((disk, map), name)| {
                let out = out_dir.as_ref().join(name);
                self.write_disk(point, disk, map, key, &out, &mut report)
            })
            .collect()
    }

    /// Every disk of `group` at `point`: the chain's manifests folded, after checking the key
    /// and authenticating each point's manifests.
    fn folded(
        &self,
        group: &str,
        point: PointId,
        key: &Key,
    ) -> Result<Vec<(String, ExtentMap<Source>)>> {
        let (_, chain) = chain::load(&self.layout, group, true)?;
        let Some(at) = chain.iter().position(|p| p.file.id() == point) else {
            return Err(Error::NotFound {
                what: format!("point {} in group `{group}`", point.to_hex()),
            });
        };
        let chain = &chain[..=at];
        let mut folded: Option<Vec<(String, ExtentMap<Source>)>> = None;
        for p in chain {
            authenticate(p, key)?;
            let disks = p.file.decode_disks()?;
            match folded.as_mut() {
                None => {
                    folded = Some(disks.into_iter().map(|d| (d.name, d.extents)).collect());
                }
                Some(f) => {
                    for d in disks {
                        let Some((_, m)) = f.iter_mut().find(|(n, _)| *n == d.name) else {
                            return Err(Error::corrupt(
                                "recovery-point file",
                                None,
                                format!("disk `{}` is not in the group's base", d.name),
                            )
                            .with_path(&p.path));
                        };
                        m.overlay(&d.extents)?;
                    }
                }
            }
        }
        Ok(folded.expect("a chain has a base"))
    }

    fn write_disk(
        &self,
        point: PointId,
        disk: &str,
        map: &ExtentMap<Source>,
        key: &Key,
        out: &Path,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Materialized> {
        let mut by_blob: HashMap<BlobId, Targets> = HashMap::new();
        for e in map.iter() {
            if let Source::Blob { id, offset } = e.source {
                by_blob
                    .entry(id)
                    .or_default()
                    .push((e.start, e.len, offset));
            }
        }
        let mut work: Vec<(PackId, IndexEntry, Targets)> = {
            let index = self.refreshed_index()?;
            by_blob
                .into_iter()
                .map(|(id, t)| match index.get(&id) {
                    Some((pack, e)) => Ok((*pack, *e, t)),
                    None => Err(Error::corrupt(
                        format!("disk `{disk}` at point {}", point.to_hex()),
                        None,
                        format!("it references blob {id}, which the vault lacks"),
                    )),
                })
                .collect::<Result<_>>()?
        };
        // Pack order: each pack is read front to back.
        work.sort_by_key(|(p, e, _)| (*p, e.offset));
        let mut packs: HashMap<PackId, (File, PathBuf)> = HashMap::new();
        for (p, _, _) in &work {
            if !packs.contains_key(p) {
                let path = self.layout.pack(p);
                let f =
                    File::open(&path).map_err(|e| Error::io("opening a pack", Some(&path), e))?;
                packs.insert(*p, (f, path));
            }
        }
        let file = AtomicFile::create(out, false)?;
        file.file()
            .set_len(map.disk_size())
            .map_err(|e| Error::io("sizing the image", Some(out), e))?;
        let image = file.file();
        let mut written = 0u64;
        let mut start = 0;
        while start < work.len() {
            let mut end = start;
            let mut bytes = 0u64;
            while end < work.len() && (end == start || bytes < BATCH_BYTES) {
                bytes += u64::from(work[end].1.len);
                end += 1;
            }
            let batch = &work[start..end];
            let n: u64 = batch
                .par_iter()
                .map(|(p, e, targets)| -> Result<u64> {
                    let (pack, path) = &packs[p];
                    let stored = read_stored(pack, path, e, false)?;
                    let plain =
                        blob::decode(key, &e.id, &stored).map_err(|err| err.with_path(path))?;
                    let mut n = 0;
                    for &(at, len, off) in targets {
                        let piece = off
                            .checked_add(len)
                            .filter(|&end| end <= plain.len() as u64)
                            .map(|end| &plain[off as usize..end as usize])
                            .ok_or_else(|| {
                                Error::corrupt(
                                    format!("blob {}", e.id),
                                    None,
                                    format!(
                                        "a manifest reads {off}+{len} of its {} bytes",
                                        plain.len()
                                    ),
                                )
                            })?;
                        image
                            .write_all_at(piece, at)
                            .map_err(|err| Error::io("writing the image", Some(out), err))?;
                        n += len;
                    }
                    Ok(n)
                })
                .try_reduce(|| 0, |a, b| Ok(a + b))?;
            written += n;
            if !progress(n) {
                return Err(Error::Cancelled {
                    what: "materialize".into(),
                });
            }
            start = end;
        }
        file.commit()?;
        Ok(Materialized {
            point,
            disk: disk.to_string(),
            path: out.to_path_buf(),
            size: map.disk_size(),
            data_bytes: written,
            blobs: work.len() as u64,
        })
    }
}

/// Checks that `key` is the point's and, unless pruning merged it, that its manifests
/// authenticate.
pub(super) fn authenticate(p: &StoredPoint, key: &Key) -> Result<()> {
    let h = &p.file.header;
    if h.key_id() != key.id() {
        return Err(Error::Authentication {
            what: format!("group `{}`", h.group),
            detail: format!(
                "its points are sealed under key {}, not {}",
                h.key_id(),
                key.id()
            ),
        });
    }
    if !p.file.merged {
        let mut mac = key.manifest_hasher();
        mac.update(p.file.headers.last().expect("a header"))
            .update(&p.file.manifests);
        if mac.finalize() != blake3::Hash::from(p.file.tag) {
            return Err(Error::Authentication {
                what: format!("recovery point {} of group `{}`", h.seq, h.group),
                detail: "its header and manifests do not authenticate under this key".into(),
            });
        }
    }
    Ok(())
}

/// Bytes of a disk mapped to blobs.
fn map_data_bytes(map: &ExtentMap<Source>) -> u64 {
    map.iter()
        .filter(|e| matches!(e.source, Source::Blob { .. }))
        .map(|e| e.len)
        .sum()
}

/// The image file name of a disk.
fn image_name(disk: &str) -> String {
    let safe = crate::fsutil::safe_stem(disk);
    // "." and ".." (and names starting with a dot) must not become directory entries.
    let safe = if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    format!("{safe}.img")
}
