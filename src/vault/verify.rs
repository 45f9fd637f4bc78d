//! Checking a vault: without the key, its structure and every stored byte (each blob against
//! the BLAKE3 its pack index records, packs and point files against their trailers, the hash
//! chains); with the key, also every blob's decryption and id and every point's manifests. It
//! reports what is damaged and which points that affects, and changes nothing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use rayon::prelude::*;

use super::chain;
use super::pack::{ENTRY_LEN, PackIndex, read_stored};
use super::{PackId, Vault};
use crate::blob;
use crate::bundle::format::blob_entry_header;
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::extent::{ExtentMap, Source};
use crate::format::HashingReader;
use crate::format::header::{FileKind, Preamble};
use crate::id::{BlobId, PointId};
use crate::resync::Progress;
use crate::sys::LockMode;

/// One damaged thing a [`Vault::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The file (pack, index, point file, head) or blob concerned.
    pub object: String,
    /// What is wrong.
    pub detail: String,
    /// The points that cannot be materialized because of it: (group, sequence number, id).
    pub points: Vec<(String, u64, PointId)>,
}

/// What [`Vault::verify`] checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Packs checked.
    pub packs: u64,
    /// Stored blobs checked against their recorded BLAKE3.
    pub blobs: u64,
    /// Groups and points checked.
    pub groups: u64,
    /// Points checked.
    pub points: u64,
    /// Blobs decrypted and checked against their ids (with the key).
    pub blobs_decrypted: u64,
    /// Groups sealed under another key than the one given (checked without it).
    pub other_key_groups: Vec<String>,
    /// Everything damaged; empty for a sound vault.
    pub damage: Vec<Damage>,
}

impl VerifyReport {
    /// Whether nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.damage.is_empty()
    }

    /// For a verify given a key: [`Authentication`](crate::ErrorKind::Authentication) when the
    /// key did not open `group` (every group when `None`), so that a host asking "is this the
    /// right key" is never told yes by a vault that checked nothing with it.
    pub fn check_key_opened(&self, group: Option<&str>) -> Result<()> {
        let missed: Vec<&String> = self
            .other_key_groups
            .iter()
            .filter(|g| group.is_none_or(|want| *g == want))
            .collect();
        if missed.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missed.iter().map(|g| format!("`{g}`")).collect();
        Err(Error::Authentication {
            what: format!("group {}", names.join(", ")),
            detail: "the key given does not open it (its points are sealed under another key); \
                     verify it with its own key"
                .into(),
        })
    }
}

impl Vault {
    /// Checks the vault (see the module docs of `vault::verify`): with `key`, also decrypts
    /// every blob the groups sealed under it reference and authenticates their points'
    /// manifests. Damage is reported in the result, not as an error; errors are for what stops
    /// the check itself (I/O, a lock). Progress counts pack bytes read.
    pub fn verify(&self, key: Option<&Key>, progress: Progress<'_>) -> Result<VerifyReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let mut report = VerifyReport::default();
        // The chains first, then the packs: an ingest running beside this publishes a point's
        // packs before its head, so every pack a chain read here needs is listed below.
        let chains = self.load_chains()?;
        for (dir, detail) in super::repair::headless_groups(&self.layout)? {
            report.damage.push(Damage {
                object: dir.display().to_string(),
                detail,
                points: Vec::new(),
            });
        }
        // Packs: every index, every stored byte.
        let ids = self.layout.pack_ids()?;
        let mut indexes = Vec::new();
        for id in &ids {
            match PackIndex::load(&self.layout, id) {
                Ok(i) => indexes.push(i),
                Err(e) => report.damage.push(Damage {
                    object: self.layout.pack_index(id).display().to_string(),
                    detail: e.to_string(),
                    points: Vec::new(),
                }),
            }
        }
        if let Some(detail) = super::sorted_index::verify(&self.layout, &indexes) {
            report.damage.push(Damage {
                object: self
                    .layout
                    .packs()
                    .join(super::sorted_index::FILE_NAME)
                    .display()
                    .to_string(),
                detail,
                points: Vec::new(),
            });
        }
        let total: u64 = indexes.iter().map(|i| i.pack_len).sum();
        let mut done = 0u64;
        if !progress(0, total) {
            return Err(Error::Cancelled {
                what: "verify".into(),
            });
        }
        // Damaged stored copies, by (pack, offset); problems of blobs points read, by id.
        let mut bad_copies: HashMap<(PackId, u64), String> = HashMap::new();
        let mut bad_blobs: HashMap<BlobId, String> = HashMap::new();
        let mut stored: HashMap<BlobId, Vec<(PackId, super::pack::IndexEntry)>> = HashMap::new();
        for index in &indexes {
            report.packs += 1;
            let (bad, whole) = self.check_pack(index);
            report.blobs += index.entries.len() as u64;
            for (offset, why) in bad {
                bad_copies.insert((index.pack, offset), why);
            }
            if let Some(why) = whole {
                report.damage.push(Damage {
                    object: self.layout.pack(&index.pack).display().to_string(),
                    detail: why,
                    points: Vec::new(),
                });
            }
            for e in &index.entries {
                stored.entry(e.id).or_default().push((index.pack, *e));
            }
            done += index.pack_len;
            if !progress(done, total) {
                return Err(Error::Cancelled {
                    what: "verify".into(),
                });
            }
        }
        // Groups: chains, point files, references; with the key, manifests and blobs.
        let mut affected: HashMap<BlobId, Vec<(String, u64, PointId)>> = HashMap::new();
        // The intact stored copy of each blob a point reads, in a form its signature covers.
        let mut to_decrypt: HashMap<BlobId, (PackId, super::pack::IndexEntry)> = HashMap::new();
        for (group, chain) in &chains {
            if group.is_some() {
                report.groups += 1;
            }
            let chain = match chain {
                Ok(c) => c,
                Err(damage) => {
                    report.damage.push(damage.clone());
                    continue;
                }
            };
            let group = group.clone().unwrap_or_default();
            let keyed = key.filter(|k| chain.key_id == k.id());
            if key.is_some() && keyed.is_none() {
                report.other_key_groups.push(group.clone());
            }
            let mut folded: HashMap<String, ExtentMap<Source>> = HashMap::new();
            let mut hashes = super::records::SignedHashes::default();
            // One point file in memory at a time.
            for l in &chain.links {
                let p = match chain.read(l) {
                    Ok(p) => p,
                    Err(e) => {
                        report.damage.push(group_damage(&group, &e));
                        break;
                    }
                };
                report.points += 1;
                let h = &p.file.header;
                let me = (group.clone(), h.seq, p.file.id());
                if let Some(k) = keyed
                    && let Err(e) = super::materialize::authenticate(&p, k)
                {
                    report.damage.push(Damage {
                        object: p.loc.to_string(),
                        detail: e.to_string(),
                        points: vec![me.clone()],
                    });
                }
                if let Ok(b) = p.file.body() {
                    hashes.extend(&b.hashes);
                }
                let disks = match p.file.decode_disks() {
                    Ok(d) => d,
                    Err(e) => {
                        report.damage.push(Damage {
                            object: p.loc.to_string(),
                            detail: e.to_string(),
                            points: vec![me.clone()],
                        });
                        continue;
                    }
                };
                // Every blob this point's own manifests read: each blob a fold reads was
                // brought in by some point's manifests, so checking each point's own is every
                // check once (the fold of the whole chain is not walked at every point).
                let mut seen = HashSet::new();
                for d in &disks {
                    for e in d.extents.iter() {
                        if let Source::Blob { id, .. } = e.source
                            && seen.insert(id)
                        {
                            match intact_copy(&id, &hashes, &stored, &bad_copies) {
                                Ok(copy) => {
                                    if keyed.is_some() {
                                        to_decrypt.insert(id, copy);
                                    }
                                }
                                Err(why) => {
                                    bad_blobs.entry(id).or_insert(why);
                                }
                            }
                        }
                    }
                }
                for d in disks {
                    match folded.get_mut(&d.name) {
                        Some(m) => {
                            if let Err(e) = m.overlay(&d.extents) {
                                report.damage.push(Damage {
                                    object: p.loc.to_string(),
                                    detail: e.to_string(),
                                    points: vec![me.clone()],
                                });
                            }
                        }
                        None => {
                            folded.insert(d.name, d.extents);
                        }
                    }
                }
            }
        }
        // With the key: decrypt every referenced blob the keyless pass found sound.
        if let Some(k) = key {
            let list: Vec<(BlobId, PackId, super::pack::IndexEntry)> = to_decrypt
                .iter()
                .filter(|(id, _)| !bad_blobs.contains_key(id))
                .map(|(id, (p, e))| (*id, *p, *e))
                .collect();
            report.blobs_decrypted = list.len() as u64;
            let failed: Vec<(BlobId, String)> = list
                .par_iter()
                .filter_map(|(id, p, e)| {
                    let path = self.layout.pack(p);
                    let r = File::open(&path)
                        .map_err(|err| Error::io("opening a pack", Some(&path), err))
                        .and_then(|f| read_stored(&f, &path, e, false))
                        .and_then(|s| blob::decode(k, id, &s));
                    r.err().map(|err| (*id, err.to_string()))
                })
                .collect();
            for (id, why) in failed {
                bad_blobs.insert(id, why);
            }
        }
        // Which points read a bad blob (only when there is one: this walks every fold).
        if !bad_blobs.is_empty() {
            affected = points_reading(&chains, &bad_blobs);
        }
        let mut bad: Vec<(BlobId, String)> = bad_blobs.into_iter().collect();
        bad.sort_by_key(|(id, _)| *id.as_bytes());
        for (id, why) in bad {
            report.damage.push(Damage {
                object: format!("blob {id}"),
                detail: why,
                points: affected.remove(&id).unwrap_or_default(),
            });
        }
        progress(total, total);
        Ok(report)
    }

    /// Every group's chain as of now (read whole), or the damage that stops reading it. The
    /// group is `None` for a head that does not read.
    #[allow(clippy::type_complexity)]
    fn load_chains(
        &self,
    ) -> Result<Vec<(Option<String>, std::result::Result<chain::Chain, Damage>)>> {
        Ok(super::head::Head::all(&self.layout)?
            .into_iter()
            .map(|(path, head)| match head {
                Err(e) => (
                    None,
                    Err(Damage {
                        object: path.display().to_string(),
                        detail: e.to_string(),
                        points: Vec::new(),
                    }),
                ),
                Ok(h) if self.layout.head(&h.group) != path => (
                    None,
                    Err(Damage {
                        object: path.display().to_string(),
                        detail: format!(
                            "it is the head of group `{}`, whose head is {}: a head moved \
                             between groups",
                            h.group,
                            self.layout.head(&h.group).display()
                        ),
                        points: Vec::new(),
                    }),
                ),
                Ok(h) => {
                    let chain =
                        chain::load(&self.layout, &h.group).map_err(|e| group_damage(&h.group, &e));
                    (Some(h.group), chain)
                }
            })
            .collect())
    }

    /// Reads a pack front to back against its index: each entry's header and stored bytes,
    /// then the trailer. Returns the damaged copies (by offset), and what is wrong with the
    /// pack as a whole.
    fn check_pack(&self, index: &PackIndex) -> (Vec<(u64, String)>, Option<String>) {
        let path: PathBuf = self.layout.pack(&index.pack);
        let mut bad = Vec::new();
        let mut checked = 0;
        let whole = (|| -> Result<()> {
            let f = File::open(&path).map_err(|e| Error::io("opening", Some(&path), e))?;
            let mut r = HashingReader::new(BufReader::with_capacity(1 << 20, f));
            Preamble::read(&mut r, FileKind::Pack, super::VERSION_MAJOR)?;
            let mut buf = Vec::new();
            let mut eh = [0u8; ENTRY_LEN];
            for e in &index.entries {
                let io = |err| Error::io("reading", Some(&path), err);
                r.read_exact(&mut eh).map_err(io)?;
                buf.resize(e.len as usize, 0);
                r.read_exact(&mut buf).map_err(io)?;
                checked += 1;
                if eh != blob_entry_header(&e.id, e.len) {
                    let at = e.offset - ENTRY_LEN as u64;
                    bad.push((
                        e.offset,
                        format!("its entry header in the pack at byte {at} is damaged"),
                    ));
                } else if *blake3::hash(&buf).as_bytes() != e.hash {
                    bad.push((
                        e.offset,
                        "its stored bytes do not match the BLAKE3 in the pack index".into(),
                    ));
                }
            }
            r.finish("pack").map(drop)
        })();
        // Entries the pass did not reach (a truncated or unreadable pack) are damaged too.
        if let Err(e) = &whole {
            for en in &index.entries[checked..] {
                bad.push((en.offset, format!("its pack could not be read to it: {e}")));
            }
        }
        (bad, whole.err().map(|e| e.to_string()))
    }
}

/// A group whose chain does not read, and why.
fn group_damage(group: &str, e: &Error) -> Damage {
    Damage {
        object: format!("group `{group}`"),
        detail: e.to_string(),
        points: Vec::new(),
    }
}

/// The intact stored copy of blob `id` whose sealed bytes a point's signature covers, or why
/// there is none.
fn intact_copy(
    id: &BlobId,
    hashes: &super::records::SignedHashes,
    stored: &HashMap<BlobId, Vec<(PackId, super::pack::IndexEntry)>>,
    bad: &HashMap<(PackId, u64), String>,
) -> std::result::Result<(PackId, super::pack::IndexEntry), String> {
    let copies = stored.get(id).map(Vec::as_slice).unwrap_or_default();
    let signed: Vec<[u8; 32]> = hashes.of(id).collect();
    if signed.is_empty() {
        return Err("no point's signed blob table lists it".into());
    }
    let mut why = None;
    for (p, e) in copies {
        if !signed.contains(&e.hash) {
            continue;
        }
        match bad.get(&(*p, e.offset)) {
            None => return Ok((*p, *e)),
            Some(w) => why = Some(w.clone()),
        }
    }
    Err(why.unwrap_or_else(|| {
        if copies.is_empty() {
            "the vault lacks it".into()
        } else {
            "the vault holds it only with sealed bytes no point's signature covers (forged or \
             altered)"
                .into()
        }
    }))
}

/// For each blob of `bad`, every point (group, sequence, id) whose folded disks read it.
#[allow(clippy::type_complexity)]
fn points_reading(
    chains: &[(Option<String>, std::result::Result<chain::Chain, Damage>)],
    bad: &HashMap<BlobId, String>,
) -> HashMap<BlobId, Vec<(String, u64, PointId)>> {
    let mut affected: HashMap<BlobId, Vec<(String, u64, PointId)>> = HashMap::new();
    for (group, chain) in chains {
        let Ok(chain) = chain else { continue };
        let group = group.clone().unwrap_or_default();
        let mut folded: HashMap<String, ExtentMap<Source>> = HashMap::new();
        for l in &chain.links {
            let Ok(disks) = chain.read(l).and_then(|p| p.file.decode_disks()) else {
                continue;
            };
            for d in disks {
                match folded.get_mut(&d.name) {
                    Some(m) => {
                        let _ = m.overlay(&d.extents);
                    }
                    None => {
                        folded.insert(d.name, d.extents);
                    }
                }
            }
            let mut seen = HashSet::new();
            for m in folded.values() {
                for e in m.iter() {
                    if let Source::Blob { id, .. } = e.source
                        && bad.contains_key(&id)
                        && seen.insert(id)
                    {
                        affected
                            .entry(id)
                            .or_default()
                            .push((group.clone(), l.seq, l.id));
                    }
                }
            }
        }
    }
    affected
}
