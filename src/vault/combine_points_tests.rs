//! Point files combined into segments (`vault::combine_points`, `vault::segment`), with a small
//! threshold, as a host runs it (a new process per ingest, an operator's prune, compaction and
//! GC beside it), cut at every file operation, and attacked through the files.
//!
//! Protects: without a GC, a group's points directory stays bounded whatever the number of
//! points (against one file per point); every point lists and materializes as before and
//! verify is clean; a combine or a GC cut anywhere loses no point; pruning, compaction and a
//! lost head's rebuild work on points in segments; an operator's edit of a segment (a flipped
//! byte, a table rewritten, a file cut short or renamed) is refused, never read as data.

use std::path::{Path, PathBuf};

use super::Vault;
use super::combine_tests::check;
use super::retention_crash_tests::{bundles, copy_dir};
use crate::ErrorKind;
use crate::crypto::Key;
use crate::fsutil::fault;
use crate::policy::RetentionPolicy;

const AFTER: usize = 3;
/// Segments of a tier merged: every new segment is merged with the one before it (all are in
/// the smallest tier here).
const MERGE: usize = 2;

fn ok(_: u64, _: u64) -> bool {
    true
}

fn open(root: &Path) -> Vault {
    let mut v = Vault::open(root).unwrap();
    v.segment_after = AFTER;
    v.segment_merge = MERGE;
    v
}

/// The group's files: (point files of their own, segments).
fn files(v: &Vault, group: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut own, mut segs) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(v.points_dir(group)).unwrap() {
        let p = e.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("rcpt") => own.push(p),
            Some("rcseg") => segs.push(p),
            _ => {}
        }
    }
    own.sort();
    segs.sort();
    (own, segs)
}

/// A vault of `bundles` ingested without combining point files: one file per point.
fn plain(dir: &Path, bundles: &[PathBuf]) -> Vault {
    let plain = dir.join("plain");
    Vault::create(&plain).unwrap();
    for b in bundles {
        let mut v = Vault::open(&plain).unwrap();
        v.segment_after = usize::MAX;
        assert_eq!(v.ingest(b, &mut ok).unwrap().point_files_combined, 0);
    }
    Vault::open(&plain).unwrap()
}

/// The lengths of `bundles`' point files, one file each, oldest first.
pub(super) fn point_sizes(dir: &Path, bundles: &[PathBuf]) -> Vec<u64> {
    files(&plain(dir, bundles), "g")
        .0
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

/// A handle that combines no point files after an ingest, with segments full at `full`.
pub(super) fn open_full(root: &Path, full: u64) -> Vault {
    let mut v = Vault::open(root).unwrap();
    v.segment_after = usize::MAX;
    v.segment_full = full;
    v
}

/// A vault at `root` of `bundles`' points in one segment (`full` is under their bytes), as
/// a GC writes it.
pub(super) fn one_segment(root: &Path, bundles: &[PathBuf], full: u64) {
    Vault::create(root).unwrap();
    for b in bundles {
        open_full(root, full).ingest(b, &mut ok).unwrap();
    }
    open_full(root, full).gc(&mut ok).unwrap();
    assert_eq!(files(&open_full(root, full), "g").1.len(), 1);
}

/// The group's one segment's sixth row, written as a file of its own (what pruning's merge or
/// compaction writes, here the same bytes): read before the row.
fn sixth_taken_out(v: &Vault) {
    taken_out(v, 5..6);
}

/// The rows `rows` of the group's one segment, each written as a file of its own (the same
/// bytes); their paths.
pub(super) fn taken_out(v: &Vault, rows: std::ops::Range<usize>) -> Vec<PathBuf> {
    let segs = files(v, "g").1;
    assert_eq!(segs.len(), 1, "{segs:?}");
    let name = super::segment::SegName::parse(segs[0].file_name().unwrap().to_str().unwrap());
    let seg = super::segment::Segment::open(&segs[0], name.unwrap()).unwrap();
    let bytes = std::fs::read(&segs[0]).unwrap();
    let mut out = Vec::new();
    for e in &seg.entries[rows] {
        let own = v
            .points_dir("g")
            .join(super::point::PointFile::file_name(e.seq, &e.id));
        std::fs::write(&own, &bytes[e.offset as usize..(e.offset + e.len) as usize]).unwrap();
        out.push(own);
    }
    out
}

/// Prunes `v` (the nine points of `bundles`, an hour apart) to its `keep_last` newest points,
/// as of ten minutes after the newest.
pub(super) fn prune_keeping(v: &Vault, keep_last: u32) -> crate::vault::PruneReport {
    let policy = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last,
    };
    v.prune(&policy, super::retention_crash_tests::t(8 * 3600 + 600))
        .unwrap()
}

/// A vault of the nine points of `bundles`, a new process per ingest, combining after
/// [`AFTER`] points.
fn ingested(dir: &Path) -> (Vault, Vec<PathBuf>, Key, Vec<Vec<u8>>) {
    let (bundles, key, models) = bundles(dir, "g");
    let root = dir.join("v");
    Vault::create(&root).unwrap();
    for b in &bundles {
        open(&root).ingest(b, &mut ok).unwrap();
    }
    (open(&root), bundles, key, models)
}

#[test]
fn ingests_keep_a_groups_point_files_bounded_and_every_point_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    // Without combining: one file per point, the listing to compare with.
    let plain = plain(dir.path(), &bundles);
    assert_eq!(files(&plain, "g").0.len(), bundles.len());
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let mut combined = 0;
    // Ingests whose group's newest point (their parent) was in a segment, not a file of its
    // own: they read it there.
    let mut onto_a_segment = 0;
    for (i, b) in bundles.iter().enumerate() {
        let r = open(&root).ingest(b, &mut ok).unwrap();
        assert!(r.added);
        combined += r.point_files_combined;
        let v = open(&root);
        let (own, segs) = files(&v, "g");
        onto_a_segment += usize::from(own.is_empty() && i + 1 < bundles.len());
        // Fewer than AFTER files of their own past the segments, and fewer than MERGE segments
        // of the one tier.
        assert!(own.len() < AFTER && segs.len() <= 1, "{own:?} {segs:?}");
        assert_eq!(v.points("g").unwrap().len(), i + 1);
    }
    assert!(combined >= 8, "{combined}");
    let v = open(&root);
    assert_eq!(v.points("g").unwrap(), plain.points("g").unwrap());
    check(&v, "g", &key, &models, &out);
    assert!(onto_a_segment >= 2, "{onto_a_segment}");
    // GC finds nothing to do: the files are as few as they can be.
    let gc = v.gc(&mut ok).unwrap();
    assert_eq!(gc.point_files_combined, 0, "{gc:?}");
    check(&v, "g", &key, &models, &out);
    // A bundle ingested again is a no-op, found in its segment.
    for b in &bundles {
        assert!(!open(&root).ingest(b, &mut ok).unwrap().added);
    }
}

#[test]
fn a_busy_vault_keeps_its_point_files_until_an_idle_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    {
        let _reader =
            super::layout::lock_vault(&open(&root).layout, crate::sys::LockMode::Shared).unwrap();
        for b in &bundles[..5] {
            assert_eq!(
                open(&root).ingest(b, &mut ok).unwrap().point_files_combined,
                0
            );
        }
    }
    let r = open(&root).ingest(&bundles[5], &mut ok).unwrap();
    assert_eq!(r.point_files_combined, 6, "{r:?}");
    let v = open(&root);
    assert_eq!(files(&v, "g").0.len(), 0);
    check(&v, "g", &key, &models[..6], &dir.path().join("m.img"));
}

#[test]
fn a_combine_cut_at_any_file_operation_loses_nothing() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let pristine = dir.path().join("pristine");
    Vault::create(&pristine).unwrap();
    // One segment and AFTER - 1 files of their own: the next ingest writes a second segment
    // and merges the two.
    let next = 2 * AFTER - 1;
    for b in &bundles[..next] {
        open(&pristine).ingest(b, &mut ok).unwrap();
    }
    assert_eq!(files(&open(&pristine), "g").1.len(), 1);
    let root = dir.path().join("v");
    let out = dir.path().join("m.img");
    let (mut cut_combines, mut cuts) = (0, 0);
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open(&root);
        fault::plan(Some((&root, n)));
        let r = v.ingest(&bundles[next], &mut ok);
        fault::plan(None);
        let v = open(&root);
        let points = v.points("g").unwrap().len();
        check(&v, "g", &key, &models[..points], &out);
        match r {
            Ok(r) if r.point_files_combined == 3 * AFTER as u64 => break,
            Ok(r) => {
                assert_eq!((points, r.point_files_combined), (next + 1, 0));
                cut_combines += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                cuts += 1;
            }
        }
        let from = v.points("g").unwrap().len();
        for b in &bundles[from..] {
            open(&root).ingest(b, &mut ok).unwrap();
        }
        let v = open(&root);
        check(&v, "g", &key, &models, &out);
        // Opening cleaned what the cut left; the next combines made the files few again.
        let (own, segs) = files(&v, "g");
        assert!(own.len() < AFTER && segs.len() <= 1, "{own:?} {segs:?}");
    }
    assert!(cuts >= 3 && cut_combines >= 10, "{cuts} {cut_combines}");
}

/// Prune (keyless) merges points some of which are in a segment: the merged file is written
/// as a file of its own, read before the segment's older form; GC then writes the group's
/// point files again without the pruned ones. Cut anywhere, GC loses nothing.
#[test]
fn prune_and_gc_over_segments_cut_anywhere_lose_nothing() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (v, _, key, models) = ingested(dir.path());
    let out = dir.path().join("m.img");
    let before = v.points("g").unwrap();
    let pruned = prune_keeping(&v, 3);
    assert_eq!(pruned.pruned(), 6, "{pruned:?}");
    let kept = v.points("g").unwrap();
    assert_eq!(kept.len(), 3);
    for p in &kept {
        assert!(before.iter().any(|b| b.id == p.id));
    }
    check(&v, "g", &key, &models, &out);
    let pristine = dir.path().join("pristine");
    copy_dir(v.path(), &pristine);
    let root = v.path().to_path_buf();
    drop(v);
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open(&root);
        fault::plan(Some((&root, n)));
        let r = v.gc(&mut ok);
        fault::plan(None);
        let v = open(&root);
        assert_eq!(v.points("g").unwrap(), kept);
        check(&v, "g", &key, &models, &out);
        if let Ok(r) = r {
            assert_eq!(r.point_files_combined, 3, "{r:?}");
            // One segment of the three kept points; the pruned ones are gone.
            let (own, segs) = files(&v, "g");
            assert_eq!((own.len(), segs.len()), (0, 1), "{own:?} {segs:?}");
            assert_eq!(v.gc(&mut ok).unwrap().point_files_combined, 0);
            break;
        }
    }
}

/// Compaction (with the key) of a chain whose first point is in a segment, and a head lost
/// and rebuilt from the files when the points are in segments.
#[test]
fn compaction_and_a_rebuilt_head_read_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (v, _, key, models) = ingested(dir.path());
    let out = dir.path().join("m.img");
    prune_keeping(&v, 4);
    v.gc(&mut ok).unwrap();
    let points = v.points("g").unwrap();
    let c = v.compact("g", &key).unwrap();
    assert!(c.records_before > 1, "{c:?}");
    assert_eq!(v.points("g").unwrap().len(), points.len());
    check(&v, "g", &key, &models, &out);
    v.gc(&mut ok).unwrap();
    assert_eq!(files(&v, "g").0.len(), 0);
    std::fs::remove_file(v.head_path("g")).unwrap();
    let rebuilt = v.rebuild_head("g").unwrap();
    assert_eq!(rebuilt.points, points.len() as u64);
    assert_eq!(v.points("g").unwrap().last().unwrap().id, rebuilt.point);
    check(&v, "g", &key, &models, &out);
}

/// The vault's operator edits a segment with the files only: each edit is refused with
/// `Corrupt` (or `Authentication` for a point file whose records were changed under a valid
/// trailer), never read as another point or as data.
#[test]
fn an_edited_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (v, bundles, key, _) = ingested(dir.path());
    let (_, segs) = files(&v, "g");
    let seg = segs.last().unwrap().clone();
    let pristine = std::fs::read(&seg).unwrap();
    let n = u64::from_le_bytes(pristine[24..32].try_into().unwrap()) as usize;
    let table_end = 32 + 56 * n;
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let redigest = |b: &mut Vec<u8>| {
        let d = *blake3::hash(&b[..table_end]).as_bytes();
        b[table_end..table_end + 32].copy_from_slice(&d);
    };
    let edits: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte in the table", {
            let mut b = pristine.clone();
            b[40] ^= 1;
            b
        }),
        ("two rows' places swapped, the digest made again", {
            let mut b = pristine.clone();
            let (r0, r1) = (32, 32 + 56);
            let a = b[r0 + 40..r0 + 56].to_vec();
            let c = b[r1 + 40..r1 + 56].to_vec();
            b[r0 + 40..r0 + 56].copy_from_slice(&c);
            b[r1 + 40..r1 + 56].copy_from_slice(&a);
            redigest(&mut b);
            b
        }),
        ("a flipped byte in a point file", {
            let mut b = pristine.clone();
            let at = table_end + 32 + 100;
            b[at] ^= 1;
            b
        }),
        ("cut short", pristine[..pristine.len() - 1].to_vec()),
        ("a row's sequence number changed, the digest made again", {
            let mut b = pristine.clone();
            b[32] ^= 1;
            redigest(&mut b);
            b
        }),
    ];
    for (what, bytes) in edits {
        std::fs::write(&seg, &bytes).unwrap();
        let v = open(v.path());
        let listed = v.points("g");
        let verified = v.verify(Some(&key), &mut ok);
        let failover = v.failover("g", crate::vault::Selector::Latest, &key, &out, &mut ok);
        assert!(
            listed.is_err() || !verified.as_ref().unwrap().is_ok(),
            "{what}: listed and verified clean"
        );
        let e = failover.expect_err(what);
        assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Authentication),
            "{what}: {e}"
        );
        // An ingest of a point already there, or of nothing new, never takes it as data.
        let again = open(v.path()).ingest(bundles.last().unwrap(), &mut ok);
        assert!(again.is_err() || !again.unwrap().added, "{what}");
    }
    std::fs::write(&seg, &pristine).unwrap();
    // Renamed to claim another generation or range: not the segment its name says.
    let name = seg.file_name().unwrap().to_str().unwrap().to_string();
    let renamed = seg.with_file_name(format!("{}999999999999.rcseg", &name[..26]));
    std::fs::rename(&seg, &renamed).unwrap();
    let e = open(v.path()).points("g").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    std::fs::rename(&renamed, &seg).unwrap();
    assert_eq!(open(v.path()).points("g").unwrap().len(), bundles.len());
}

/// With small segments: a full segment stays as it is, the newest grows until full, and the
/// segment it replaces goes, so no two segments hold the same point and the files stay about
/// one per full segment. Then a prune of most points, and GC writes the rest into fewer.
#[test]
fn full_segments_stay_and_the_newest_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    // About three point files.
    let sizes = point_sizes(dir.path(), &bundles);
    let full = 3 * sizes.iter().sum::<u64>() / sizes.len() as u64;
    let open = |root: &Path| {
        let mut v = Vault::open(root).unwrap();
        v.segment_after = 2;
        v.segment_full = full;
        v.segment_merge = 2;
        v
    };
    let mut most = 0;
    for b in &bundles {
        open(&root).ingest(b, &mut ok).unwrap();
        let v = open(&root);
        let ranges = ranges(&v, "g");
        assert!(
            ranges.windows(2).all(|w| w[0].1 < w[1].0),
            "segments overlap: {ranges:?}"
        );
        most = most.max(ranges.len());
    }
    assert!(most >= 2, "no segment filled up ({most})");
    let v = open(&root);
    check(&v, "g", &key, &models, &out);
    let before = files(&v, "g");
    prune_keeping(&v, 2);
    let kept = v.points("g").unwrap().len() as u64;
    assert!(kept < 9);
    let gc = v.gc(&mut ok).unwrap();
    assert_eq!(gc.point_files_combined, kept, "{gc:?} {before:?}");
    let after = files(&v, "g");
    assert!(
        after.0.is_empty() && after.1.len() < before.1.len(),
        "{after:?}"
    );
    check(&v, "g", &key, &models, &out);
}

/// GC leaves a group one file per full segment's worth of point files, plus one, and copies
/// only what follows its full segments: a full segment written by one GC stays as it is at the
/// next, and the points after it are written again.
#[test]
fn gc_leaves_one_file_per_full_segment_and_copies_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let sizes = point_sizes(dir.path(), &bundles);
    // About two and a half point files.
    let full = 5 * sizes.iter().sum::<u64>() / sizes.len() as u64 / 2;
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let open = |root: &Path| open_full(root, full);
    let bound = |n: usize| sizes[..n].iter().sum::<u64>() / full + 1;
    let (first, rest) = bundles.split_at(6);
    for b in first {
        open(&root).ingest(b, &mut ok).unwrap();
    }
    let gc = open(&root).gc(&mut ok).unwrap();
    assert_eq!(gc.point_files_combined, 6, "{gc:?}");
    let (own, segs) = files(&open(&root), "g");
    assert!(
        own.is_empty() && segs.len() as u64 <= bound(6),
        "{own:?} {segs:?}"
    );
    // The full ones (all of them here: the last takes in what would be short).
    let rows = |p: &PathBuf| {
        let name = p.file_name().unwrap().to_str().unwrap();
        let s = super::segment::SegName::parse(name).unwrap();
        let seg = super::segment::Segment::open(p, s).unwrap();
        (
            seg.entries.len() as u64,
            seg.entries.iter().map(|e| e.len).sum::<u64>(),
        )
    };
    let settled: Vec<PathBuf> = segs.iter().filter(|p| rows(p).1 >= full).cloned().collect();
    assert!(settled.len() >= 2, "{segs:?}");
    // Nothing new: nothing to do.
    assert_eq!(open(&root).gc(&mut ok).unwrap().point_files_combined, 0);
    for b in rest {
        open(&root).ingest(b, &mut ok).unwrap();
    }
    let gc = open(&root).gc(&mut ok).unwrap();
    let in_settled: u64 = settled.iter().map(|p| rows(p).0).sum();
    assert_eq!(gc.point_files_combined, 9 - in_settled, "{gc:?}");
    let v = open(&root);
    let (own, segs) = files(&v, "g");
    assert!(
        own.is_empty() && segs.len() as u64 <= bound(9),
        "{own:?} {segs:?}"
    );
    for p in &settled {
        assert!(segs.contains(p), "{p:?} was written again: {segs:?}");
    }
    check(&v, "g", &key, &models, &out);
    assert_eq!(v.points("g").unwrap(), open(&root).points("g").unwrap());
}

/// A point's newer form as a file of its own inside a full segment's range (what pruning's
/// merge or compaction writes; here the same bytes, taken out of the segment): the segment
/// stays full enough to keep, but GC writes the group again from its first point rather than
/// leave two segments that hold the same sequence numbers.
#[test]
fn gc_never_leaves_segments_that_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let total: u64 = point_sizes(dir.path(), &bundles).iter().sum();
    let root = dir.path().join("v");
    one_segment(&root, &bundles, total - 1);
    let open = |root: &Path| open_full(root, total - 1);
    let v = open(&root);
    let (own, segs) = files(&v, "g");
    assert!(own.is_empty() && segs.len() == 1, "{own:?} {segs:?}");
    sixth_taken_out(&v);
    check(&v, "g", &key, &models, &out);
    let gc = v.gc(&mut ok).unwrap();
    assert_eq!(gc.point_files_combined, 9, "{gc:?}");
    let (own, segs) = files(&v, "g");
    assert!(own.is_empty() && segs.len() == 1, "{own:?} {segs:?}");
    check(&v, "g", &key, &models, &out);
    assert_eq!(v.gc(&mut ok).unwrap().point_files_combined, 0);
}

/// The sequence ranges of the group's segments, in order.
fn ranges(v: &Vault, group: &str) -> Vec<(u64, u64)> {
    let mut r: Vec<(u64, u64)> = files(v, group)
        .1
        .iter()
        .map(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            let s = super::segment::SegName::parse(n).unwrap();
            (s.first, s.last)
        })
        .collect();
    r.sort();
    r
}

/// A GC that writes a group's points into several segments, cut at every file operation (a
/// crash after its first new segment leaves it beside the old one, their ranges overlapping):
/// every point reads as before, and the next GC leaves segments that do not overlap, one per
/// full segment's worth plus one, and nothing more to do.
#[test]
fn a_gc_cut_anywhere_leaves_no_segments_that_overlap() {
    let _alone = fault::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let sizes = point_sizes(dir.path(), &bundles);
    let total: u64 = sizes.iter().sum();
    // One segment of the nine points, then the sixth's bytes as a file of its own.
    let pristine = dir.path().join("pristine");
    one_segment(&pristine, &bundles, total - 1);
    let v = open_full(&pristine, total - 1);
    sixth_taken_out(&v);
    // Now with segments of about two and a half points.
    let full = 5 * total / sizes.len() as u64 / 2;
    let root = dir.path().join("v");
    let mut cuts = 0;
    for n in 0.. {
        copy_dir(&pristine, &root);
        let v = open_full(&root, full);
        fault::plan(Some((&root, n)));
        let r = v.gc(&mut ok);
        fault::plan(None);
        let v = open_full(&root, full);
        check(&v, "g", &key, &models, &out);
        v.gc(&mut ok).unwrap();
        let r2 = ranges(&v, "g");
        assert!(r2.windows(2).all(|w| w[0].1 < w[1].0), "cut {n}: {r2:?}");
        let (own, segs) = files(&v, "g");
        assert!(
            own.is_empty() && segs.len() as u64 <= total / full + 1,
            "cut {n}: {segs:?}"
        );
        assert_eq!(v.gc(&mut ok).unwrap().point_files_combined, 0, "cut {n}");
        check(&v, "g", &key, &models, &out);
        match r {
            Ok(r) => {
                assert_eq!(r.point_files_combined, 9, "{r:?}");
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                cuts += 1;
            }
        }
    }
    assert!(cuts >= 5, "{cuts}");
}

/// A prune that merges the oldest points into a file of its own: GC writes that file and the
/// segment after it again, not the whole chain; the newest full segment stays as it is.
#[test]
fn gc_after_a_prune_copies_only_the_disturbed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let sizes = point_sizes(dir.path(), &bundles);
    // The deltas' average (the base, the first, is larger): segments of about two of them.
    let full = 2 * sizes[1..].iter().sum::<u64>() / (sizes.len() as u64 - 1);
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    let open = |root: &Path| open_full(root, full);
    for b in &bundles {
        open(&root).ingest(b, &mut ok).unwrap();
    }
    open(&root).gc(&mut ok).unwrap();
    let v = open(&root);
    let before = files(&v, "g").1;
    assert!(before.len() >= 3, "{before:?}");
    let newest = before.last().unwrap().clone();
    prune_keeping(&v, 7);
    let kept = v.points("g").unwrap().len() as u64;
    let gc = v.gc(&mut ok).unwrap();
    assert!(
        gc.point_files_combined > 0 && gc.point_files_combined < kept - 1,
        "{gc:?} of {kept}"
    );
    let (own, segs) = files(&v, "g");
    assert!(own.is_empty() && segs.contains(&newest), "{own:?} {segs:?}");
    let r = ranges(&v, "g");
    assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{r:?}");
    check(&v, "g", &key, &models, &out);
    assert_eq!(v.gc(&mut ok).unwrap().point_files_combined, 0);
}

/// A point's file of its own damaged (its trailer) while a segment still holds the
/// same point's sound bytes, which the walk no longer reads: GC keeps that segment (whether or
/// not any other point reads from it) and writes nothing that would shadow it, so once the
/// damaged file is removed the point reads from the segment again.
#[test]
fn gc_keeps_the_sound_copy_of_a_point_whose_file_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let total: u64 = point_sizes(dir.path(), &bundles).iter().sum();
    let root = dir.path().join("v");
    one_segment(&root, &bundles, total - 1);
    let pristine = dir.path().join("pristine");
    copy_dir(&root, &pristine);
    // The sixth row alone a file of its own (the segment still read for the others), then
    // every row (the segment read for none).
    for rows in [5..6, 0..9] {
        copy_dir(&pristine, &root);
        let v = open_full(&root, total - 1);
        let segment = files(&v, "g").1;
        let own = taken_out(&v, rows.clone());
        let damaged = &own[5 - rows.start];
        // Its trailer: the walk, which reads its summary, still finds the point there.
        let mut bytes = std::fs::read(damaged).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(damaged, &bytes).unwrap();
        for _ in 0..2 {
            // GC's mark phase reads every point file and stops at the damaged one: what GC
            // did before that is what this is about.
            let e = v.gc(&mut ok).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
            assert!(
                segment[0].exists(),
                "{rows:?}: the sound copy's segment went"
            );
            if rows.len() == 1 {
                // The run that reads it is not written: no new segment overlaps it.
                assert_eq!(files(&v, "g").1, segment);
            }
        }
        std::fs::remove_file(damaged).unwrap();
        let v = open_full(&root, total - 1);
        check(&v, "g", &key, &models, &out);
        v.gc(&mut ok).unwrap();
        check(&v, "g", &key, &models, &out);
        let r = ranges(&v, "g");
        assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{rows:?}: {r:?}");
        assert_eq!(v.gc(&mut ok).unwrap().point_files_combined, 0, "{rows:?}");
    }
}
