//! Taking a point signature (`crate::resync::point_sig`) of a stored point, with the group's
//! key: the chain folded as failover folds it, every chunk's id without writing an image. A
//! chunk that is one whole blob has that blob's id, which the signed manifests give without
//! decrypting anything; only the chunks made of several pieces are decoded (on every core).

use rayon::prelude::*;

use super::materialize::{Locations, Piece};
use super::{Selector, Vault};
use crate::blob;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::Source;
use crate::resync::Progress;
use crate::resync::point_sig::{
    Collector, PointSigHeader, PointSigWriter, PointSignature, ZERO_CHUNK, chunk_id,
};
use crate::sys::LockMode;

/// Chunks assembled and hashed together.
const BATCH: usize = 256;

/// Where the ids go: (the header, ids in order).
type Sink<'a> = dyn FnMut(&PointSigHeader, &[[u8; 32]]) -> Result<()> + 'a;

/// Chunks whose ids are computed and handed on together (2 MiB of ids).
const WINDOW: u64 = 1 << 16;

impl Vault {
    /// The point signature of the point of `group` that `selector` picks (the group's newest
    /// for a resync into its chain), for [`resync_ship`](crate::bundle::resync_ship) at the
    /// primary, in memory (32 bytes per chunk: [`save_point_signature`](Self::save_point_signature)
    /// streams it to a file instead). Needs the group's key: every point of the chain is
    /// authenticated, and the ids are keyed. Progress counts the disks' bytes.
    pub fn point_signature(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        progress: Progress<'_>,
    ) -> Result<PointSignature> {
        let mut out = Collector::default();
        let header = self.signature_ids(group, selector, key, progress, &mut |h, ids| {
            out.push(h, ids);
            Ok(())
        })?;
        Ok(out.finish(header))
    }

    /// As [`point_signature`](Self::point_signature), streamed sealed to a new file at `path`
    /// (0600; an existing one is AlreadyExists unless `replace`): memory stays bounded
    /// whatever the disks' size. Returns the signature's header.
    pub fn save_point_signature(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        path: impl AsRef<std::path::Path>,
        replace: bool,
        progress: Progress<'_>,
    ) -> Result<PointSigHeader> {
        let mut header = self.signature_header(group, selector)?;
        header.key_id = key.id();
        let mut out = crate::fsutil::OutputFile::create(path.as_ref(), replace)?;
        let mut w = PointSigWriter::start(std::io::BufWriter::new(&mut out), &header, key)?;
        let got = self.signature_ids(
            group,
            Selector::Id(header.point),
            key,
            progress,
            &mut |_, ids| w.ids(ids),
        )?;
        w.finish()?;
        if got != header {
            return Err(Error::corrupt(
                "point signature",
                None,
                "the point's summary and its folded chain disagree on its disks",
            ));
        }
        out.commit()?;
        Ok(header)
    }

    /// The header a point signature of `selector`'s point has (the key id as the point names
    /// it).
    fn signature_header(&self, group: &str, selector: Selector) -> Result<PointSigHeader> {
        let point = self.select(group, selector)?;
        Ok(PointSigHeader {
            group: group.to_string(),
            point: point.id,
            seq: point.seq,
            chunk_size: point.chunk_size,
            key_id: point.key_id,
            disks: point
                .disks
                .iter()
                .map(|d| (d.name.clone(), d.size))
                .collect(),
        })
    }

    /// Computes the ids of every chunk of the point, disk after disk, handing them to `sink`
    /// a window at a time; returns the header.
    fn signature_ids(
        &self,
        group: &str,
        selector: Selector,
        key: &Key,
        progress: Progress<'_>,
        sink: &mut Sink<'_>,
    ) -> Result<PointSigHeader> {
        let point = self.select(group, selector)?;
        let _lock = self.lock(LockMode::Shared)?;
        let (maps, hashes, cs) = self.folded(group, point.id, key)?;
        let header = PointSigHeader {
            group: group.to_string(),
            point: point.id,
            seq: point.seq,
            chunk_size: cs,
            key_id: key.id(),
            disks: maps
                .iter()
                .map(|(n, m)| (n.clone(), m.disk_size()))
                .collect(),
        };
        let total: u64 = maps.iter().map(|(_, m)| m.disk_size()).sum();
        let cancelled = || Error::Cancelled {
            what: "point signature".into(),
        };
        if !progress(0, total) {
            return Err(cancelled());
        }
        let c = u64::from(cs);
        let mut done = 0u64;
        for (name, map) in &maps {
            let size = map.disk_size();
            let count = crate::resync::chunk_count(size, cs);
            let mut w0 = 0u64;
            while w0 < count {
                let w1 = (w0 + WINDOW).min(count);
                let (b0, b1) = (w0 * c, (w1 * c).min(size));
                let mut ids = vec![ZERO_CHUNK; (w1 - w0) as usize];
                // The blob pieces of each chunk (a piece crossing a chunk edge is cut there).
                let mut pieces: Vec<Piece> = Vec::new();
                for piece in map.lookup(b0, b1 - b0)? {
                    let crate::extent::Piece::Mapped(e) = piece else {
                        continue;
                    };
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
                self.window_ids(&pieces, &hashes, name, point.id, key, c, size, w0, &mut ids)?;
                sink(&header, &ids)?;
                done += b1 - b0;
                if !progress(done, total) {
                    return Err(cancelled());
                }
                w0 = w1;
            }
        }
        Ok(header)
    }

    /// Fills `ids` (the chunks from `w0` on) from the pieces of those chunks.
    #[allow(clippy::too_many_arguments)]
    fn window_ids(
        &self,
        pieces: &[Piece],
        hashes: &super::records::SignedHashes,
        name: &str,
        point: crate::id::PointId,
        key: &Key,
        c: u64,
        size: u64,
        w0: u64,
        ids: &mut [[u8; 32]],
    ) -> Result<()> {
        if pieces.is_empty() {
            return Ok(());
        }
        let locs = self.locate(pieces, hashes, name, point)?;
        let mut mixed: Vec<(u64, &[Piece])> = Vec::new();
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
                    ids[(chunk - w0) as usize] = p.id.0;
                }
                _ => mixed.push((chunk, here)),
            }
            i = j;
        }
        for batch in mixed.chunks(BATCH) {
            let got: Vec<(u64, [u8; 32])> = batch
                .par_iter()
                .map(|(chunk, ps)| {
                    let c0 = *chunk * c;
                    let len = (c0 + c).min(size) - c0;
                    let mut buf = vec![0u8; len as usize];
                    for p in ps.iter() {
                        let plain = decode(&locs, key, p)?;
                        let from = (p.start - c0) as usize;
                        buf[from..from + p.len as usize].copy_from_slice(&plain);
                    }
                    Ok((*chunk, chunk_id(key, &buf)))
                })
                .collect::<Result<_>>()?;
            for (chunk, id) in got {
                ids[(chunk - w0) as usize] = id;
            }
        }
        Ok(())
    }
}

/// The plaintext bytes piece `p` reads, its blob authenticated.
fn decode(locs: &Locations, key: &Key, p: &Piece) -> Result<Vec<u8>> {
    let (stored, path) = locs.read(&p.id)?;
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
