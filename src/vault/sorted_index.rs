//! The vault's sorted blob index (`packs/blobs.rcmidx`, `docs/FORMAT.md` §15.9): every blob of
//! the packs the last GC left, sorted by (blob id, sealed hash), so that a new `Vault` handle's
//! ingest looks a bundle's blobs up by range instead of reading every pack index.
//!
//! GC writes it (GC alone removes packs, under the vault's exclusive lock) after it published
//! its new packs and before it removes any, naming only the packs that stay; an ingest whose
//! handle holds [`REFRESH_PACKS`] pack indexes it does not name (or [`REFRESH_ENTRIES`] of
//! their entries) writes it anew with those
//! (`Vault::refresh_sorted`, under the shared lock: no pack can go). It is a cache, and
//! keyless like everything in the vault: an ingest counts on an answer only once the pack's own
//! index says the same (entry by entry, [`IndexEntries`]) and the pack is there; a blob it
//! misses, or names wrongly, is stored again; a vault without it, or with one that does not
//! open, is read as before (every pack index). Verify reads it whole and reports damage.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::layout::{Layout, PackId};
use super::pack::{IndexEntries, IndexEntry, PackIndex};
use crate::error::{Error, Result};
use crate::format::header::{FileKind, PREAMBLE_LEN, Preamble};
use crate::format::trailer::TRAILER_LEN;
use crate::format::{Reader, TrailerWriter, Writer};
use crate::fsutil::AtomicFile;
use crate::id::BlobId;

/// The file's name in the packs directory.
pub(crate) const FILE_NAME: &str = "blobs.rcmidx";
const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
/// Preamble, pack count, reserved, entry count.
const FIXED: u64 = PREAMBLE_LEN as u64 + 4 + 4 + 8;
/// Pack id, entries in its index.
const PACK_ROW: u64 = 16 + 8;
const FANOUT: u64 = 256 * 8;
/// Blob id, sealed hash, pack ordinal, entry ordinal in the pack's index.
const ENTRY: u64 = 32 + 32 + 4 + 4;
/// Packs the sorted index does not name that an ingest reads before it writes a new one.
pub(crate) const REFRESH_PACKS: usize = 256;
/// Entries of such packs that an ingest's handle holds before it writes a new one, whatever
/// their number of packs (small packs of tiny blobs): about 9 MiB of memory.
pub(crate) const REFRESH_ENTRIES: usize = 1 << 15;
/// The most packs an index names (256 TiB of full packs; the table is read into memory):
/// GC writes none for a vault with more.
pub(crate) const MAX_PACKS: usize = 1 << 22;

/// Where the bytes come from: the file, or memory (the fuzz target).
#[derive(Debug)]
enum Source {
    File(File, PathBuf),
    Memory(Vec<u8>),
}

impl Source {
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        match self {
            Source::File(f, _) => f.read_exact_at(buf, at),
            Source::Memory(m) => {
                let end = usize::try_from(at)
                    .ok()
                    .and_then(|a| a.checked_add(buf.len()).map(|e| (a, e)))
                    .filter(|&(_, e)| e <= m.len())
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(&m[end.0..end.1]);
                Ok(())
            }
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Source::File(_, p) => Some(p),
            Source::Memory(_) => None,
        }
    }
}

/// An opened sorted index: its pack table and fanout in memory, its entries read by range.
#[derive(Debug)]
pub(crate) struct SortedIndex {
    src: Source,
    len: u64,
    /// Each pack named: its id and the entries its own index holds.
    packs: Vec<(PackId, u64)>,
    /// `fanout[b]`: entries whose blob id's first byte is at most `b`.
    fanout: Box<[u64; 256]>,
    count: u64,
}

/// What the index says of one blob: entry `ordinal` of pack `pack`'s index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub pack: PackId,
    pub ordinal: u64,
    /// The entries the index says that pack's own index holds.
    pub entries: u64,
}

fn damaged(at: Option<u64>, detail: impl Into<String>) -> Error {
    Error::corrupt("vault blob index", at, detail)
}

impl SortedIndex {
    /// The index of the vault at `layout`, if it has one (`None` when absent). Its preamble,
    /// shape, pack table and fanout are checked; its trailer is not (that reads it whole:
    /// [`check`](Self::check)).
    pub fn open(layout: &Layout) -> Result<Option<SortedIndex>> {
        let path = layout.packs().join(FILE_NAME);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening the vault blob index", Some(&path), e)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the vault blob index", Some(&path), e))?
            .len();
        Self::from_source(Source::File(file, path.clone()), len)
            .map(Some)
            .map_err(|e| e.with_path(&path))
    }

    /// An index held in memory (the fuzz target).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SortedIndex> {
        let len = bytes.len() as u64;
        Self::from_source(Source::Memory(bytes), len)
    }

    fn read(&self, buf: &mut [u8], at: u64) -> Result<()> {
        self.src
            .read_at(buf, at)
            .map_err(|e| Error::io("reading the vault blob index", self.src.path(), e))
    }

    fn from_source(src: Source, len: u64) -> Result<SortedIndex> {
        let io = |e| Error::io("reading the vault blob index", src.path(), e);
        if len < FIXED + FANOUT + TRAILER_LEN as u64 {
            return Err(damaged(Some(0), format!("{len} bytes is too short")));
        }
        let mut fixed = [0u8; FIXED as usize];
        src.read_at(&mut fixed, 0).map_err(io)?;
        let mut r = Reader::new(&fixed, 0, "vault blob index");
        Preamble::decode(&mut r, FileKind::BlobIndex, VERSION_MAJOR)?;
        let pack_count = r.u32("pack count")? as u64;
        r.reserved("reserved", 4)?;
        let count = r.u64("entry count")?;
        if pack_count > MAX_PACKS as u64 {
            return Err(r.error(
                "pack count",
                format!("{pack_count} packs is over the most an index names, {MAX_PACKS}"),
            ));
        }
        let want = count
            .checked_mul(ENTRY)
            .and_then(|e| e.checked_add(FIXED + PACK_ROW * pack_count + FANOUT))
            .and_then(|e| e.checked_add(TRAILER_LEN as u64));
        if want != Some(len) {
            return Err(r.error(
                "entry count",
                format!(
                    "{pack_count} packs and {count} entries do not fill the file's {len} bytes"
                ),
            ));
        }
        // Bounded by the file's length, which the counts fill exactly.
        let mut table = vec![0u8; (PACK_ROW * pack_count + FANOUT) as usize];
        src.read_at(&mut table, FIXED).map_err(io)?;
        let mut r = Reader::new(&table, FIXED, "vault blob index");
        let mut packs = Vec::with_capacity(pack_count as usize);
        let mut seen = HashSet::with_capacity(pack_count as usize);
        for _ in 0..pack_count {
            let id = PackId(r.array("pack id")?);
            let entries = r.u64("pack entries")?;
            if !seen.insert(id) {
                return Err(r.error("pack id", format!("pack {} is named twice", id.to_hex())));
            }
            packs.push((id, entries));
        }
        let mut fanout = Box::new([0u64; 256]);
        let mut last = 0;
        for slot in fanout.iter_mut() {
            let v = r.u64("fanout")?;
            if v < last || v > count {
                return Err(r.error("fanout", "its counts are not increasing up to the entries"));
            }
            *slot = v;
            last = v;
        }
        if last != count {
            return Err(r.error("fanout", "its last count is not the entry count"));
        }
        Ok(SortedIndex {
            src,
            len,
            packs,
            fanout,
            count,
        })
    }

    /// Whether `held` (an index opened earlier, or none) is still the one in the vault: no GC
    /// and no other ingest has replaced (or removed) it since.
    pub fn is_current(held: Option<&SortedIndex>, layout: &Layout) -> bool {
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(layout.packs().join(FILE_NAME)).ok();
        match (held.map(|s| &s.src), on_disk) {
            (None, None) => true,
            (Some(Source::File(f, _)), Some(d)) => f
                .metadata()
                .is_ok_and(|m| (m.dev(), m.ino()) == (d.dev(), d.ino())),
            _ => false,
        }
    }

    /// The packs it names (those GC left).
    pub fn packs(&self) -> impl Iterator<Item = &PackId> {
        self.packs.iter().map(|(id, _)| id)
    }

    fn entries_at(&self) -> u64 {
        FIXED + PACK_ROW * self.packs.len() as u64 + FANOUT
    }

    /// Looks `(id, hash)` up: a binary search of its first byte's range, one read per step.
    /// Whatever the bytes, it ends after at most 64 reads; what it finds is the caller's to
    /// confirm against the pack's own index.
    pub fn find(&self, id: &BlobId, hash: &[u8; 32]) -> Result<Option<Found>> {
        let b = usize::from(id.as_bytes()[0]);
        let (mut lo, mut hi) = (if b == 0 { 0 } else { self.fanout[b - 1] }, self.fanout[b]);
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(id.as_bytes());
        key[32..].copy_from_slice(hash);
        let mut buf = [0u8; ENTRY as usize];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.read(&mut buf, self.entries_at() + mid * ENTRY)?;
            match buf[..64].cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let p = u32::from_le_bytes(buf[64..68].try_into().expect("4 bytes"));
                    let ordinal =
                        u64::from(u32::from_le_bytes(buf[68..72].try_into().expect("4 bytes")));
                    return Ok(self.packs.get(p as usize).and_then(|&(pack, entries)| {
                        (ordinal < entries).then_some(Found {
                            pack,
                            ordinal,
                            entries,
                        })
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Reads the whole index: its trailer, every entry in strictly increasing order and in its
    /// fanout range, naming a pack of the table within its entry count; `agrees` is asked
    /// about every entry (verify compares it with the pack's own index). Returns the entries.
    pub fn check(&self, mut agrees: impl FnMut(&Found, &BlobId, &[u8; 32]) -> bool) -> Result<u64> {
        let mut i = 0u64;
        let mut bucket = 0usize;
        let at = |i: u64| Some(self.entries_at() + i * ENTRY);
        self.each_entry(|e| {
            while self.fanout[bucket] <= i {
                bucket += 1;
            }
            if usize::from(e[0]) != bucket {
                return Err(damaged(at(i), "an entry is outside its fanout range"));
            }
            let p = u32::from_le_bytes(e[64..68].try_into().expect("4 bytes")) as usize;
            let ordinal = u64::from(u32::from_le_bytes(e[68..72].try_into().expect("4 bytes")));
            let Some(&(pack, entries)) = self.packs.get(p) else {
                return Err(damaged(
                    at(i),
                    format!("an entry names pack {p}, past the table"),
                ));
            };
            if ordinal >= entries {
                return Err(damaged(
                    at(i),
                    format!("an entry names entry {ordinal} of a pack holding {entries}"),
                ));
            }
            let id = BlobId(e[..32].try_into().expect("32 bytes"));
            let hash: [u8; 32] = e[32..64].try_into().expect("32 bytes");
            let found = Found {
                pack,
                ordinal,
                entries,
            };
            if !agrees(&found, &id, &hash) {
                return Err(damaged(
                    at(i),
                    format!(
                        "blob {id} is not entry {ordinal} of pack {}'s index",
                        pack.to_hex()
                    ),
                ));
            }
            i += 1;
            Ok(())
        })?;
        Ok(i)
    }

    /// Writes the index of `packs` (GC's survivors), replacing the one there; a blob in two
    /// packs is named once. A vault with more than [`MAX_PACKS`] packs gets none (the old one,
    /// if any, is removed: it would name packs GC removes).
    pub fn write(layout: &Layout, packs: &[&PackIndex]) -> Result<()> {
        if packs.len() > MAX_PACKS {
            let path = layout.packs().join(FILE_NAME);
            return crate::fsutil::remove(&path, "the vault blob index").or_else(|e| {
                if e.kind() == crate::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            });
        }
        Self::merge(layout, None, packs).map(drop)
    }

    /// Writes the index of `old`'s packs and `added`, replacing the one there, and returns it
    /// opened (the file written, whatever another process renamed there since). `old`'s
    /// entries are streamed (its order and trailer checked on the way: a damaged one is not
    /// carried over, [`Corrupt`](crate::ErrorKind::Corrupt)); only `added`'s are sorted in
    /// memory, and those `old` names already are left out. The caller must know that every
    /// pack of both is there and stays (GC, or an ingest under the vault's shared lock).
    pub fn merge(
        layout: &Layout,
        old: Option<&SortedIndex>,
        added: &[&PackIndex],
    ) -> Result<SortedIndex> {
        let path = layout.packs().join(FILE_NAME);
        let mut table: Vec<(PackId, u64)> = old.map(|o| o.packs.clone()).unwrap_or_default();
        let named: HashSet<PackId> = table.iter().map(|(p, _)| *p).collect();
        let mut rows: Vec<([u8; 64], u32, u32)> = Vec::new();
        for index in added.iter().filter(|i| !named.contains(&i.pack)) {
            let p = table.len() as u32;
            table.push((index.pack, index.entries.len() as u64));
            for (i, e) in index.entries.iter().enumerate() {
                let mut key = [0u8; 64];
                key[..32].copy_from_slice(e.id.as_bytes());
                key[32..].copy_from_slice(&e.hash);
                rows.push((key, p, i as u32));
            }
        }
        if table.len() > MAX_PACKS {
            return Err(Error::invalid_argument(
                "packs",
                format!(
                    "{} packs is over the most a sorted index names, {MAX_PACKS}",
                    table.len()
                ),
            ));
        }
        rows.sort_unstable_by_key(|a| a.0);
        rows.dedup_by(|a, b| a.0 == b.0);
        if let Some(o) = old {
            let mut kept = Vec::with_capacity(rows.len());
            for r in rows {
                let id = BlobId(r.0[..32].try_into().expect("32 bytes"));
                let hash: [u8; 32] = r.0[32..].try_into().expect("32 bytes");
                if o.find(&id, &hash)?.is_none() {
                    kept.push(r);
                }
            }
            rows = kept;
        }
        // Per first byte: the old index's entries and the new ones.
        let mut per = [0u64; 256];
        if let Some(o) = old {
            let mut prev = 0;
            for (b, &f) in o.fanout.iter().enumerate() {
                per[b] = f - prev;
                prev = f;
            }
        }
        for r in &rows {
            per[usize::from(r.0[0])] += 1;
        }
        let count = old.map_or(0, |o| o.count) + rows.len() as u64;
        let mut head =
            Writer::with_capacity((FIXED + PACK_ROW * table.len() as u64 + FANOUT) as usize);
        Preamble::new(FileKind::BlobIndex, VERSION_MAJOR, VERSION_MINOR).encode(&mut head);
        head.u32(table.len() as u32).zeros(4).u64(count);
        for (id, n) in &table {
            head.bytes(&id.0).u64(*n);
        }
        let mut sum = 0;
        for n in per {
            sum += n;
            head.u64(sum);
        }
        let io = |e| Error::io("writing the vault blob index", Some(&path), e);
        let mut out = TrailerWriter::new(BufWriter::with_capacity(
            1 << 20,
            AtomicFile::create_unscanned(&path, true)?,
        ));
        out.write_all(head.as_bytes()).map_err(io)?;
        let mut put = |key: &[u8], p: &[u8], i: &[u8]| {
            out.write_all(key)
                .and_then(|()| out.write_all(p))
                .and_then(|()| out.write_all(i))
                .map_err(io)
        };
        let mut new = rows.iter().peekable();
        if let Some(o) = old {
            o.each_entry(|e| {
                while let Some(r) = new.next_if(|r| r.0[..] < e[..64]) {
                    put(&r.0, &r.1.to_le_bytes(), &r.2.to_le_bytes())?;
                }
                put(&e[..64], &e[64..68], &e[68..72])
            })?;
        }
        for r in new {
            put(&r.0, &r.1.to_le_bytes(), &r.2.to_le_bytes())?;
        }
        let (w, _) = out.finish().map_err(io)?;
        let file = w
            .into_inner()
            .map_err(|e| io(e.into_error()))?
            .commit_keep()?;
        let len =
            FIXED + PACK_ROW * table.len() as u64 + FANOUT + ENTRY * count + TRAILER_LEN as u64;
        Self::from_source(Source::File(file, path.clone()), len).map_err(|e| e.with_path(&path))
    }

    /// Streams every entry, in order, to `f`, checking the order and, at the end, the trailer
    /// (so a damaged index is never carried into a new one).
    fn each_entry(&self, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut hasher = blake3::Hasher::new();
        let head_len = self.entries_at();
        let mut block = vec![0u8; (1 << 20) / ENTRY as usize * ENTRY as usize];
        let mut at = 0u64;
        while at < head_len {
            let n = (head_len - at).min(block.len() as u64) as usize;
            self.read(&mut block[..n], at)?;
            hasher.update(&block[..n]);
            at += n as u64;
        }
        let mut prev: Option<[u8; 64]> = None;
        let body = self.len - TRAILER_LEN as u64;
        while at < body {
            let n = (body - at).min(block.len() as u64) as usize;
            self.read(&mut block[..n], at)?;
            hasher.update(&block[..n]);
            for e in block[..n].chunks_exact(ENTRY as usize) {
                let key: [u8; 64] = e[..64].try_into().expect("64 bytes");
                if prev.is_some_and(|p| p >= key) {
                    return Err(damaged(
                        Some(at),
                        "its entries are not in strictly increasing order",
                    ));
                }
                prev = Some(key);
                f(e)?;
            }
            at += n as u64;
        }
        let mut trailer = [0u8; TRAILER_LEN];
        self.read(&mut trailer, body)?;
        if hasher.finalize().as_bytes() != &trailer {
            return Err(damaged(
                Some(body),
                "its BLAKE3 trailer does not match its contents",
            ));
        }
        Ok(())
    }
}

/// Confirms the sorted index's answers against the packs' own indexes, for one ingest: each
/// pack's index is opened (and its shape checked) once, and an answer counts only when the
/// entry it names holds the same blob id and sealed hash and the pack file is there.
#[derive(Debug)]
pub(crate) struct Confirmer<'a> {
    layout: &'a Layout,
    /// `None`: the pack, or its index, is gone or does not match the sorted index.
    packs: HashMap<PackId, Option<IndexEntries>>,
}

/// What [`Confirmer::confirm`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// The pack holds the blob, as the sorted index says.
    Held(PackId, IndexEntry),
    /// The pack is gone (a GC since the index was opened): the index is stale.
    Gone,
    /// The pack's index says otherwise: the sorted index is damaged (or forged).
    Disagrees,
}

impl<'a> Confirmer<'a> {
    pub fn new(layout: &'a Layout) -> Self {
        Confirmer {
            layout,
            packs: HashMap::new(),
        }
    }

    /// Whether pack `f.pack` holds `(id, hash)` as entry `f.ordinal`.
    pub fn confirm(&mut self, f: &Found, id: &BlobId, hash: &[u8; 32]) -> Confirmed {
        let layout = self.layout;
        let entries = self.packs.entry(f.pack).or_insert_with(|| {
            if !layout.pack(&f.pack).is_file() {
                return None;
            }
            IndexEntries::open(layout, &f.pack).ok().flatten()
        });
        let Some(entries) = entries else {
            return Confirmed::Gone;
        };
        if entries.count() != f.entries {
            return Confirmed::Disagrees;
        }
        match entries.entry(f.ordinal) {
            Ok(e) if e.id == *id && e.hash == *hash => Confirmed::Held(f.pack, e),
            _ => Confirmed::Disagrees,
        }
    }
}

/// Verify's check of the vault's sorted index against the pack indexes read (`indexes`: every
/// pack whose index loaded): what is wrong with it, if anything. It must read whole and sound,
/// name only packs that are there, each entry the same blob as the pack's own index, and every
/// blob of the packs it names (one it misses would be stored again by every ingest).
pub(crate) fn verify(layout: &Layout, indexes: &[PackIndex]) -> Option<String> {
    let sorted = match SortedIndex::open(layout) {
        Ok(None) => return None,
        Ok(Some(s)) => s,
        Err(e) => return Some(e.to_string()),
    };
    let by_id: HashMap<&PackId, &PackIndex> = indexes.iter().map(|i| (&i.pack, i)).collect();
    if let Some(missing) = sorted.packs().find(|p| !by_id.contains_key(p)) {
        return Some(format!(
            "it names pack {}, which the vault does not hold (or whose index is damaged); the \
             next GC rewrites it",
            missing.to_hex()
        ));
    }
    let mut named: HashSet<(BlobId, [u8; 32])> = HashSet::new();
    let checked = sorted.check(|f, id, hash| {
        named.insert((*id, *hash));
        let p = by_id[&f.pack];
        p.entries.len() as u64 == f.entries
            && p.entries
                .get(f.ordinal as usize)
                .is_some_and(|e| e.id == *id && e.hash == *hash)
    });
    if let Err(e) = checked {
        return Some(format!("{e}; the next GC rewrites it"));
    }
    for p in sorted.packs() {
        if let Some(e) = by_id[p]
            .entries
            .iter()
            .find(|e| !named.contains(&(e.id, e.hash)))
        {
            return Some(format!(
                "it misses blob {} of pack {} (ingests would store it again); the next GC \
                 rewrites it",
                e.id,
                p.to_hex()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs of `n` blobs each; the last blob of each pack is also the first of the next (a
    /// blob stored twice).
    fn packs(count: usize, n: usize) -> Vec<PackIndex> {
        let mut out: Vec<PackIndex> = Vec::new();
        for p in 0..count {
            let mut entries: Vec<IndexEntry> = (0..n)
                .map(|i| {
                    let seed = blake3::hash(&((p * n + i) as u64).to_le_bytes());
                    IndexEntry {
                        id: BlobId(*seed.as_bytes()),
                        offset: 0,
                        len: 100,
                        hash: *blake3::hash(seed.as_bytes()).as_bytes(),
                    }
                })
                .collect();
            if let Some(prev) = out.last() {
                entries[0] = *prev.entries.last().unwrap();
            }
            out.push(PackIndex {
                pack: PackId([p as u8 + 1; 16]),
                pack_len: 0,
                entries,
            });
        }
        out
    }

    fn written(dir: &Path, packs: &[PackIndex]) -> (Layout, Vec<u8>) {
        let layout = Layout::new(dir);
        std::fs::create_dir_all(layout.packs()).unwrap();
        let refs: Vec<&PackIndex> = packs.iter().collect();
        SortedIndex::write(&layout, &refs).unwrap();
        let bytes = std::fs::read(layout.packs().join(FILE_NAME)).unwrap();
        (layout, bytes)
    }

    #[test]
    fn every_blob_is_found_where_a_pack_holds_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let all = packs(3, 700);
        let (layout, bytes) = written(dir.path(), &all);
        // Three packs, 2,100 entries less the two stored twice.
        assert_eq!(
            bytes.len() as u64,
            FIXED + 3 * PACK_ROW + FANOUT + 2098 * ENTRY + 32
        );
        let s = SortedIndex::open(&layout).unwrap().unwrap();
        assert_eq!(s.check(|_, _, _| true).unwrap(), 2098);
        for p in &all {
            for e in &p.entries {
                let f = s.find(&e.id, &e.hash).unwrap().expect("found");
                let holder = all.iter().find(|q| q.pack == f.pack).unwrap();
                assert_eq!(holder.entries[f.ordinal as usize], *e);
                assert_eq!(f.entries, 700);
            }
            // The same id under another sealed hash is another blob.
            let e = p.entries[5];
            assert_eq!(s.find(&e.id, &[0; 32]).unwrap(), None);
        }
        // No packs at all: an empty index, which finds nothing.
        let empty = tempfile::tempdir().unwrap();
        let (layout, _) = written(empty.path(), &[]);
        let s = SortedIndex::open(&layout).unwrap().unwrap();
        assert_eq!(s.check(|_, _, _| true).unwrap(), 0);
        let e = all[0].entries[0];
        assert_eq!(s.find(&e.id, &e.hash).unwrap(), None);
    }

    /// Every byte flipped in turn, and every length cut: opening refuses it, or lookups end
    /// (and what they find names a pack of the table within its count), and a whole check
    /// refuses it.
    #[test]
    fn every_flip_and_cut_is_refused_by_a_whole_check() {
        let dir = tempfile::tempdir().unwrap();
        let (_, bytes) = written(dir.path(), &packs(2, 6));
        let keys: Vec<(BlobId, [u8; 32])> = packs(2, 6)
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| (e.id, e.hash)))
            .collect();
        let mut damaged: Vec<Vec<u8>> = (0..bytes.len())
            .map(|i| {
                let mut b = bytes.clone();
                b[i] ^= 0x10;
                b
            })
            .collect();
        damaged.extend((0..bytes.len()).map(|n| bytes[..n].to_vec()));
        for b in damaged {
            let Ok(s) = SortedIndex::from_bytes(b) else {
                continue;
            };
            for (id, hash) in &keys {
                if let Some(f) = s.find(id, hash).unwrap() {
                    assert!(s.packs().any(|p| *p == f.pack) && f.ordinal < f.entries);
                }
            }
            assert!(s.check(|_, _, _| true).is_err());
        }
        // And the original passes.
        let s = SortedIndex::from_bytes(bytes).unwrap();
        assert_eq!(s.check(|_, _, _| true).unwrap(), 11);
    }
}
