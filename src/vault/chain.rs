//! A group's chain as stored: from its head back to its base through the parent ids.
//!
//! Loading a chain reads each point file's summary only and keeps a few dozen bytes per point
//! (a [`Link`]): a chain of 100,000 points costs a few MiB, whatever its points hold. What
//! needs a point's records (its manifests, its blob table) reads its file whole when it comes
//! to it, one file at a time ([`Chain::read`]), checked to be the point the walk found.

use std::path::PathBuf;

use super::head::Head;
use super::layout::Layout;
use super::point::{Loc, PointFile, RecoveryPoint, StoredPoint};
use super::segment::{SegName, Segment};
use crate::bundle::format::BundleKind;
use crate::crypto::{KeyId, VerifyingKey};
use crate::error::{Error, Result};
use crate::id::PointId;
use crate::log::MarkerKind;

/// One point of a chain as its walk found it: where it is and how it links, without its
/// records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub id: PointId,
    /// Its sequence number (its file is named by it and the id).
    pub seq: u64,
    /// The first record's parent, kind and sequence number (see [`PointFile::first`]).
    pub first: (PointId, BundleKind, u64),
    /// Records in its file, and the shipped points they stand for.
    pub records: u64,
    pub shipped: u64,
    /// Whether its file starts with a checkpoint.
    pub checkpoint: bool,
    /// The point's time (nanoseconds since the Unix epoch) and consistency.
    pub time_ns: u64,
    pub consistency: MarkerKind,
    /// Where its point file is.
    pub at: Where,
}

/// Where a point file is: a file of its own, or a row of one of the chain's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    File,
    Segment { segment: u32, row: u32 },
}

impl Link {
    fn of(file: &PointFile, at: Where) -> Link {
        Link {
            at,
            id: file.id(),
            seq: file.header.seq,
            first: file.first,
            records: file.records,
            shipped: file.shipped,
            checkpoint: file.checkpoint,
            time_ns: file.header.time_ns,
            consistency: file.header.consistency,
        }
    }
}

/// A group's chain: its head, and its points oldest first.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub head: Head,
    pub links: Vec<Link>,
    /// The key every point is sealed under and signed by.
    pub key_id: KeyId,
    pub verifying_key: VerifyingKey,
    dir: PathBuf,
    /// The segments the links name.
    segments: Vec<Segment>,
}

impl Chain {
    /// Where point `l`'s file is.
    pub fn loc(&self, l: &Link) -> Loc {
        match l.at {
            Where::File => Loc::file(self.file_path(l)),
            Where::Segment { segment, row } => {
                let s = &self.segments[segment as usize];
                s.loc(&s.entries[row as usize])
            }
        }
    }

    /// The path of point `l`'s file of its own, whether or not it is there: where pruning and
    /// compaction publish its new form.
    pub fn file_path(&self, l: &Link) -> PathBuf {
        self.dir.join(PointFile::file_name(l.seq, &l.id))
    }

    /// The files the chain's point files are in: files of their own and segments.
    pub fn files(&self) -> std::collections::HashSet<PathBuf> {
        self.links.iter().map(|l| self.loc(l).path).collect()
    }

    /// The group's points directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Point `l`'s file read whole and checked (records, hash chain, signature, trailer), and
    /// checked to be the point the walk found there.
    pub fn read(&self, l: &Link) -> Result<StoredPoint> {
        let loc = self.loc(l);
        let file = PointFile::read(&loc)?;
        self.check_same(l, &file, &loc)?;
        Ok(StoredPoint { loc, file })
    }

    /// What point `l` is, from its file's summary, checked to be the point the walk found.
    pub fn info(&self, l: &Link) -> Result<RecoveryPoint> {
        let loc = self.loc(l);
        let file = PointFile::read_listing(&loc)?;
        self.check_same(l, &file, &loc)?;
        Ok(file.info())
    }

    /// Reads every point file whole, one at a time, and checks it (see [`read`](Self::read)):
    /// what an operation that acts on summaries (its plan, its selection) does before it acts,
    /// so that a summary the walk read is one its records and signature bear out.
    pub fn check_all(&self) -> Result<()> {
        for l in &self.links {
            self.read(l)?;
        }
        Ok(())
    }

    fn check_same(&self, l: &Link, file: &PointFile, loc: &Loc) -> Result<()> {
        let h = &file.header;
        if Link::of(file, l.at) != *l
            || h.group != self.head.group
            || h.key_id() != self.key_id
            || h.verifying_key != self.verifying_key
        {
            return Err(Error::corrupt(
                format!("chain of group `{}`", self.head.group),
                None,
                format!(
                    "point {}'s file ({loc}) changed since the chain was read",
                    l.id.to_hex()
                ),
            )
            .with_path(&loc.path));
        }
        Ok(())
    }
}

/// The chain of `group`, each point file's summary read (see the module docs).
pub(crate) fn load(layout: &Layout, group: &str) -> Result<Chain> {
    Ok(load_with(layout, group, |_| ())?.0)
}

/// [`load`], and what `keep` takes of each point's summary, oldest first.
///
/// Each point file links to the one before it by its first record's parent id, and the records
/// inside a file form a hash chain (checked when it is read whole), so the shipped headers from
/// the first point ever shipped (or from a checkpoint the key holder signed) to the head are one
/// hash chain, before and after pruning. The head counts the shipped points, which pruning
/// never changes. Every file must be signed by one verifying key, the group's pinned one when
/// it has a pin.
///
/// A chain that does not link up (a missing or foreign point, a loop, a count that differs
/// from the head's) is [`Corrupt`](crate::ErrorKind::Corrupt): committed points are never
/// missing from an undamaged vault. A point signed by another key than the rest of the chain
/// (or than the pin) is [`Authentication`](crate::ErrorKind::Authentication).
pub(crate) fn load_with<T>(
    layout: &Layout,
    group: &str,
    mut keep: impl FnMut(&PointFile) -> T,
) -> Result<(Chain, Vec<T>)> {
    let head = Head::load(layout, group)?.ok_or_else(|| Error::NotFound {
        what: format!("group `{group}` in vault {}", layout.root().display()),
    })?;
    let dir = layout.points(group);
    let names = Names::list(&dir, |_| true)?;
    let broken = |detail: String| {
        Error::corrupt(format!("chain of group `{group}`"), None, detail).with_path(&dir)
    };
    let mut links: Vec<Link> = Vec::new();
    let mut kept: Vec<T> = Vec::new();
    let mut key: Option<(KeyId, VerifyingKey)> = None;
    let mut want = head.point;
    let mut last_seq = None;
    let mut headers = 0u64;
    loop {
        if headers >= head.count {
            return Err(broken(format!(
                "the head counts {} shipped points but the chain goes on past them",
                head.count
            )));
        }
        let Some((at, loc, file)) = names.find(&dir, &want)? else {
            return Err(broken(format!("point {} is missing", want.to_hex())));
        };
        let path = loc.path;
        let h = &file.header;
        if h.group != group {
            return Err(broken(format!(
                "point {} belongs to group `{}`",
                want.to_hex(),
                h.group
            )));
        }
        if last_seq.is_some_and(|s| h.seq >= s) {
            return Err(broken(format!(
                "point {} has sequence {}, not below its successor's",
                want.to_hex(),
                h.seq
            )));
        }
        match key {
            Some(k) if k != (h.key_id(), h.verifying_key) => {
                return Err(Error::Authentication {
                    what: format!("chain of group `{group}`"),
                    detail: format!(
                        "point {} is sealed or signed under another key than its successor",
                        want.to_hex()
                    ),
                }
                .with_path(&path));
            }
            Some(_) => {}
            None => {
                super::trust::check(layout, group, &h.verifying_key)?;
                key = Some((h.key_id(), h.verifying_key));
            }
        }
        // The oldest merged header's sequence: the next point must be below it.
        let (parent, kind, first_seq) = file.first;
        last_seq = Some(first_seq);
        headers = headers.saturating_add(file.shipped);
        links.push(Link::of(&file, at));
        kept.push(keep(&file));
        if kind == BundleKind::Base {
            break;
        }
        want = parent;
    }
    if headers != head.count {
        return Err(broken(format!(
            "the head counts {} shipped points; the chain holds {headers} shipped points",
            head.count,
        )));
    }
    if links[0].seq != head.seq {
        return Err(broken(
            "the head's sequence number is not its point's".into(),
        ));
    }
    links.reverse();
    kept.reverse();
    let (key_id, verifying_key) = key.expect("a chain has a point");
    Ok((
        Chain {
            head,
            links,
            key_id,
            verifying_key,
            dir,
            segments: names.segments,
        },
        kept,
    ))
}

/// The point files of a group's directory, as (id prefix, sequence number, source, row) sorted:
/// a point's candidates, its file of its own first (source 0), then the rows of segments by
/// generation, highest first (source `i + 1` for `segments[i]`), so finding each point of a
/// long chain costs a binary search.
pub(crate) struct Names {
    keys: Vec<(u64, u64, u32, u32)>,
    /// The segments whose tables were read, highest generation first.
    pub segments: Vec<Segment>,
    /// Every segment's name, read or not.
    pub segment_names: Vec<SegName>,
}

impl Names {
    /// Lists `dir`, reading the tables of the segments `load` takes (a segment that does not
    /// read is [`Corrupt`](crate::ErrorKind::Corrupt): its points would be missing).
    pub fn list(dir: &std::path::Path, load: impl Fn(&SegName) -> bool) -> Result<Names> {
        let mut keys = Vec::new();
        let mut segment_names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io("listing", Some(dir), e))? {
            let e = e.map_err(|e| Error::io("listing", Some(dir), e))?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some((prefix, seq)) = parse_name(&name) {
                keys.push((prefix, seq, 0, 0));
            } else if let Some(n) = SegName::parse(&name) {
                segment_names.push(n);
            }
        }
        let mut loaded: Vec<SegName> = segment_names.iter().copied().filter(load).collect();
        loaded.sort_by_key(|n| std::cmp::Reverse((n.generation, n.last, n.first)));
        let mut segments = Vec::with_capacity(loaded.len());
        for (i, n) in loaded.into_iter().enumerate() {
            let s = Segment::open(&dir.join(n.file_name()), n)?;
            let src = u32::try_from(i + 1).map_err(|_| {
                Error::limit_exceeded("segments of a group", u64::from(u32::MAX), i as u64, "")
            })?;
            for (row, e) in s.entries.iter().enumerate() {
                // A segment's rows are bounded by its length (u32 is plenty: bytes / 112).
                keys.push((prefix_of(&e.id), e.seq, src, row as u32));
            }
            segments.push(s);
        }
        keys.sort_unstable();
        Ok(Names {
            keys,
            segments,
            segment_names,
        })
    }

    /// The sequence numbers of the files of their own.
    pub fn file_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.iter().filter(|k| k.2 == 0).map(|&(_, s, _, _)| s)
    }

    /// The generation above every segment's.
    pub fn next_generation(&self) -> u64 {
        self.segment_names
            .iter()
            .map(|n| n.generation.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Point `want`'s file: the first candidate (see [`Names`]) that holds the point its name
    /// or row says, its summary read.
    pub fn find(
        &self,
        dir: &std::path::Path,
        want: &PointId,
    ) -> Result<Option<(Where, Loc, PointFile)>> {
        let prefix = prefix_of(want);
        let from = self.keys.partition_point(|k| k.0 < prefix);
        for &(_, seq, src, row) in self.keys[from..].iter().take_while(|k| k.0 == prefix) {
            let (at, loc) = if src == 0 {
                let path = dir.join(PointFile::file_name(seq, want));
                (Where::File, Loc::file(path))
            } else {
                let s = &self.segments[src as usize - 1];
                let e = &s.entries[row as usize];
                if e.id != *want {
                    continue;
                }
                let at = Where::Segment {
                    segment: src - 1,
                    row,
                };
                (at, s.loc(e))
            };
            let file = PointFile::read_listing(&loc)?;
            // A file is found by its name or row: it must hold the point they say.
            if file.id() == *want && file.header.seq == seq {
                return Ok(Some((at, loc, file)));
            }
        }
        Ok(None)
    }
}

/// The first 8 bytes of `id`, as its file name spells them.
fn prefix_of(id: &PointId) -> u64 {
    // Most significant first, as the hex digits read.
    id.0[..8].iter().fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// (id prefix, sequence number) of a point file's name as [`PointFile::file_name`] writes it;
/// `None` for any other name (temporary files, markers, foreign files).
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (digits, rest) = name.split_once('-')?;
    let hex = rest.strip_suffix(".rcpt")?;
    let seq: u64 = digits.parse().ok()?;
    // Only the canonical spelling: lowercase hex, no sign, no extra leading zeros.
    let canonical = format!("{seq:012}") == digits
        && hex.len() == 16
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return None;
    }
    Some((u64::from_str_radix(hex, 16).ok()?, seq))
}

/// The point file `head` names (for listing: see [`PointFile::read_listing`]), checked to be it:
/// its file of its own, else the row of a segment that can hold it.
pub(crate) fn tip(layout: &Layout, head: &Head) -> Result<PointFile> {
    let dir = layout.points(&head.group);
    let own = Loc::file(dir.join(PointFile::file_name(head.seq, &head.point)));
    let (loc, file) = match PointFile::read_listing(&own) {
        Ok(f) => (own, f),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => {
            let names = Names::list(&dir, |n| (n.first..=n.last).contains(&head.seq))?;
            match names.find(&dir, &head.point)? {
                Some((_, loc, f)) => (loc, f),
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if file.id() != head.point || file.header.group != head.group {
        return Err(Error::corrupt(
            format!("chain of group `{}`", head.group),
            None,
            "the head's point file holds another point",
        )
        .with_path(&loc.path));
    }
    Ok(file)
}

/// Whether point `id` of sequence `seq` was shipped into the chain, kept or since merged by
/// pruning (used when a bundle is ingested again): the file whose records span `seq` is read.
pub(crate) fn contains(chain: &Chain, id: &PointId, seq: u64) -> Result<bool> {
    let Some(l) = chain.links.iter().find(|l| l.seq >= seq) else {
        return Ok(false);
    };
    if l.first.2 > seq {
        return Ok(false);
    }
    Ok(super::repair::record_ids(&chain.loc(l))?
        .iter()
        .any(|(s, i)| *s == seq && i == id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::vault::Vault;

    /// A vault holding a base and eight points of group `g`.
    fn vault(dir: &std::path::Path) -> Vault {
        let (bundles, _, _) = crate::vault::retention_crash_tests::bundles(dir, "g");
        let v = Vault::create(dir.join("v")).unwrap();
        for b in &bundles {
            v.ingest(b, &mut |_, _| true).unwrap();
        }
        v
    }

    #[test]
    fn names_parse_as_written_and_nothing_else() {
        let id = PointId(std::array::from_fn(|i| (i * 37 + 200) as u8));
        for seq in [0, 7, 999_999_999_999, 1_000_000_000_000, u64::MAX] {
            let name = PointFile::file_name(seq, &id);
            assert_eq!(parse_name(&name), Some((prefix_of(&id), seq)), "{name}");
        }
        let good = PointFile::file_name(42, &id);
        let hex = &id.to_hex()[..16];
        for bad in [
            format!("0{good}"),
            format!("000000000042-{}.rcpt", hex.to_uppercase()),
            format!("000000000042-{}.rcpt", &hex[..15]),
            format!("+00000000042-{hex}.rcpt"),
            format!("000000000042-{hex}.rcpt.tmp"),
            format!(".000000000042-{hex}.rcpt"),
            "pending".to_string(),
        ] {
            assert_eq!(parse_name(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_link_costs_a_few_dozen_bytes() {
        // What a chain holds per point, whatever the point's records hold.
        assert!(
            std::mem::size_of::<Link>() <= 144,
            "{}",
            std::mem::size_of::<Link>()
        );
    }

    /// The operator renames a point's file to another sequence number: the chain does not take
    /// it for the point its name no longer says.
    #[test]
    fn a_point_file_renamed_to_another_sequence_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let chain = load(&v.layout, "g").unwrap();
        assert_eq!(chain.links.len(), 9);
        let l = &chain.links[4];
        let moved = chain.dir().join(PointFile::file_name(l.seq + 100, &l.id));
        std::fs::rename(chain.file_path(l), &moved).unwrap();
        let e = load(&v.layout, "g").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("is missing"), "{e}");
        std::fs::rename(&moved, chain.file_path(l)).unwrap();
        assert_eq!(load(&v.layout, "g").unwrap().links, chain.links);
    }

    /// A point file swapped for another point's file after the chain was walked (under an
    /// operation that reads the files one at a time): the whole read refuses it.
    #[test]
    fn a_point_file_swapped_after_the_walk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let chain = load(&v.layout, "g").unwrap();
        for l in &chain.links {
            chain.read(l).unwrap();
        }
        let (a, b) = (&chain.links[3], &chain.links[5]);
        std::fs::copy(chain.file_path(b), chain.file_path(a)).unwrap();
        let e = chain.read(a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(
            e.to_string().contains("changed since the chain was read"),
            "{e}"
        );
    }

    /// Listing one point at a time gives the list, in order; the caller's error stops it; a
    /// selection by links picks the point the list would.
    #[test]
    fn each_point_and_select_agree_with_the_list() {
        use crate::vault::Selector;
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let all = v.points("g").unwrap();
        let mut one_by_one = Vec::new();
        v.each_point("g", |p| {
            one_by_one.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(one_by_one, all);
        let mut calls = 0;
        let e = v
            .each_point("g", |_| {
                calls += 1;
                if calls == 3 {
                    return Err(Error::Cancelled { what: "t".into() });
                }
                Ok(())
            })
            .unwrap_err();
        assert_eq!((e.kind(), calls), (ErrorKind::Cancelled, 3));
        let app = all.iter().rev().find(|p| p.consistency == MarkerKind::App);
        assert_eq!(
            v.select("g", Selector::LatestAppConsistent).ok().as_ref(),
            app
        );
        assert_eq!(
            &v.select("g", Selector::Latest).unwrap(),
            all.last().unwrap()
        );
        for p in &all {
            assert_eq!(&v.select("g", Selector::Id(p.id)).unwrap(), p);
            assert_eq!(&v.select("g", Selector::AtOrBefore(p.time)).unwrap(), p);
        }
        let before = all[0].time - std::time::Duration::from_secs(1);
        let e = v.select("g", Selector::AtOrBefore(before)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(v.each_point("nope", |_| Ok(())).is_err());
    }

    /// The operator forges the newest point's summary (its header's consistency flipped to
    /// app: a new id, the file renamed to it, the head rewritten; the records left as they
    /// were, so only a whole read can tell). The walk takes it; a failover to an older point
    /// and a prune (whose plan would keep the forged point as the newest app-consistent one)
    /// are refused before anything is written or removed.
    #[test]
    fn a_forged_summary_past_the_chosen_point_stops_failover_and_prune() {
        use crate::bundle::format::BundleHeader;
        use crate::vault::Selector;
        let dir = tempfile::tempdir().unwrap();
        let (bundles, key, _) = crate::vault::retention_crash_tests::bundles(dir.path(), "g");
        let v = Vault::create(dir.path().join("v")).unwrap();
        for b in &bundles {
            v.ingest(b, &mut |_, _| true).unwrap();
        }
        let chain = load(&v.layout, "g").unwrap();
        let last = chain.links.last().unwrap().clone();
        assert_eq!(last.consistency, MarkerKind::Crash);
        let path = chain.file_path(&last);
        let mut bytes = std::fs::read(&path).unwrap();
        let hl = usize::from(u16::from_le_bytes([bytes[80], bytes[81]]));
        let mut header = BundleHeader::decode(&bytes[82..82 + hl], 82).unwrap();
        header.consistency = MarkerKind::App;
        let forged = header.encode().unwrap();
        assert_eq!(forged.len(), hl);
        bytes[82..82 + hl].copy_from_slice(&forged);
        let n = bytes.len() - 32;
        let trailer = *blake3::hash(&bytes[..n]).as_bytes();
        bytes[n..].copy_from_slice(&trailer);
        let id = PointId::of_header(&forged);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(
            chain.dir().join(PointFile::file_name(last.seq, &id)),
            &bytes,
        )
        .unwrap();
        let head = Head {
            point: id,
            ..chain.head.clone()
        };
        std::fs::write(v.layout.head("g"), head.encode().unwrap()).unwrap();
        // The walk reads summaries only: it takes the forged point.
        let forged_chain = load(&v.layout, "g").unwrap();
        assert_eq!(
            forged_chain.links.last().unwrap().consistency,
            MarkerKind::App
        );
        let before: Vec<_> = std::fs::read_dir(chain.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let older = chain.links[2].id;
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let e = v
            .failover("g", Selector::Id(older), &key, &out, &mut |_, _| true)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        let e = v
            .prune(
                &crate::policy::RetentionPolicy {
                    window_hours: 1,
                    // The forged point is kept and merges nothing: only a check of every
                    // file, not just of those a merge copies, finds it.
                    keep_last: 2,
                    ..Default::default()
                },
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_000_000_000),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        let after: Vec<_> = std::fs::read_dir(chain.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before, after, "prune changed the group's files");
        let e = v
            .group_status(
                "g",
                crate::policy::ReplicationFrequency::default(),
                std::time::SystemTime::now(),
                None,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    }
}
