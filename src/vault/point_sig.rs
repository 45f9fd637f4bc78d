//! Taking a point signature (`crate::resync::point_sig`) of a stored point, with the group's
//! key: the chain folded as failover folds it, every chunk's id without writing an image. A
//! chunk that is one whole blob has that blob's id, which the signed manifests give without
//! decrypting anything; only the chunks made of several pieces are decoded (on every core).

use rayon::prelude::*;

use super::materialize::{Locations, Piece};
use super::pack::read_stored;
use super::{Selector, Vault};
use crate::blob;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::resync::Progress;
use crate::resync::point_sig::{DiskIds, PointSignature, ZERO_CHUNK, chunk_id};
use crate::sys::LockMode;

/// Chunks assembled and hashed together.
const BATCH: usize = 256;

impl Vault {
    /// The point signature of the point of `group` that `selector` picks (the group's newest
    /// for a resync into its chain), for [`resync_ship`](crate::bundle::resync_ship) at the
    /// primary. Needs the group's key: every point of the chain is authenticated, and the ids
    /// are keyed. Progress counts the disks' bytes.
    pub fn point_signature(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        progress: Progress<'_>,
    ) -> Result<PointSignature> {
        let point = self.select(group, selector)?;
        let _lock = self.lock(LockMode::Shared)?;
        let (maps, hashes, cs) = self.folded(group, point.id, key)?;
        let total: u64 = maps.iter().map(|(_, m)| m.disk_size()).sum();
        let cancelled = || Error::Cancelled {
            what: "point signature".into(),
        };
        if !progress(0, total) {
            return Err(cancelled());
        }
        let c = u64::from(cs);
        let mut done = 0u64;
        let mut disks = Vec::with_capacity(maps.len());
        for (name, map) in &maps {
            let size = map.disk_size();
            let count = usize::try_from(crate::resync::chunk_count(size, cs))
                .map_err(|_| Error::invalid_argument("disk", "too many chunks"))?;
            let mut ids = vec![ZERO_CHUNK; count];
            // The blob pieces of each chunk (a piece crossing a chunk edge is cut there).
            let mut pieces: Vec<Piece> = Vec::new();
            for e in map.iter() {
                let Source::Blob { id, offset } = e.source else {
                    continue;
                };
                let mut at = e.start;
                while at < e.end() {
                    let end = e.end().min((at / c + 1) * c);
                    pieces.push(Piece {
                        start: at,
                        len: end - at,
                        id,
                        offset: offset + (at - e.start),
                    });
                    at = end;
                }
            }
            let locs = self.locate(&pieces, &hashes, name, point.id)?;
            let mut mixed: Vec<(usize, Vec<Piece>)> = Vec::new();
            let mut i = 0;
            while i < pieces.len() {
                let chunk = pieces[i].start / c;
                let j = i + pieces[i..]
                    .iter()
                    .take_while(|p| p.start / c == chunk)
                    .count();
                let (c0, c1) = (chunk * c, ((chunk + 1) * c).min(size));
                let here = &pieces[i..j];
                match here {
                    // One whole blob: its id, known without decoding (blobs are cut on this
                    // grid, so one covering the chunk from its start is exactly the chunk).
                    [p] if p.start == c0 && p.len == c1 - c0 && p.offset == 0 => {
                        ids[chunk as usize] = p.id.0;
                    }
                    _ => mixed.push((chunk as usize, here.to_vec())),
                }
                i = j;
            }
            for batch in mixed.chunks(BATCH) {
                let got: Vec<(usize, [u8; 32])> = batch
                    .par_iter()
                    .map(|(chunk, ps)| {
                        let c0 = *chunk as u64 * c;
                        let len = (c0 + c).min(size) - c0;
                        let mut buf = vec![0u8; len as usize];
                        for p in ps {
                            let plain = decode(&locs, key, p)?;
                            let from = (p.start - c0) as usize;
                            buf[from..from + p.len as usize].copy_from_slice(&plain);
                        }
                        Ok((*chunk, chunk_id(key, &buf)))
                    })
                    .collect::<Result<_>>()?;
                for (chunk, id) in got {
                    ids[chunk] = id;
                }
            }
            done += size;
            if !progress(done, total) {
                return Err(cancelled());
            }
            disks.push(DiskIds {
                name: name.clone(),
                size,
                ids,
            });
        }
        Ok(PointSignature {
            group: group.to_string(),
            point: point.id,
            seq: point.seq,
            chunk_size: cs,
            key_id: key.id(),
            disks,
        })
    }
}

/// The plaintext bytes piece `p` reads, its blob authenticated.
fn decode(locs: &Locations, key: &Key, p: &Piece) -> Result<Vec<u8>> {
    let (pack, e) = &locs.blobs[&p.id];
    let (f, path) = &locs.packs[pack];
    let stored = read_stored(f, path, e, true)?;
    let plain = blob::decode(key, &p.id, &stored).map_err(|err| err.with_path(path))?;
    let end = p
        .offset
        .checked_add(p.len)
        .filter(|&e| e <= plain.len() as u64);
    match end {
        Some(end) => Ok(plain[p.offset as usize..end as usize].to_vec()),
        None => Err(Error::corrupt(
            format!("blob {}", p.id),
            None,
            format!(
                "a manifest reads {} bytes at offset {} of its {} bytes",
                p.len,
                p.offset,
                plain.len()
            ),
        )),
    }
}
