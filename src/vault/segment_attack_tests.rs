//! Point segments attacked through the files (the vault's operator, without the key), and the
//! forms of one point a segment and a file of its own may both hold.
//!
//! Protects: a file named like a segment never hangs a reader (a FIFO), never makes it
//! allocate from a length it does not hold (a sparse file), and a renumbered generation never
//! panics or wedges GC; forged summaries cannot make a chain walk go round; a head rebuilt
//! from the files takes each point's newest form (its merged file of its own, not an older
//! row of a segment), so no committed point is dropped.

use std::path::{Path, PathBuf};

use super::Vault;
use super::combine_tests::check;
use super::retention_crash_tests::bundles;
use super::segment::{MAX_GENERATION, SegName};
use crate::ErrorKind;

fn ok(_: u64, _: u64) -> bool {
    true
}

fn open(root: &Path, after: usize, full: u64) -> Vault {
    let mut v = Vault::open(root).unwrap();
    v.segment_after = after;
    v.segment_full = full;
    v
}

fn segments(v: &Vault) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(v.points_dir("g"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rcseg"))
        .collect();
    s.sort();
    s
}

/// A vault of the first `n` points of `bundles`, combined after three.
fn vault(dir: &Path, n: usize) -> (Vault, Vec<PathBuf>, crate::crypto::Key, Vec<Vec<u8>>) {
    let (bundles, key, models) = bundles(dir, "g");
    let root = dir.join("v");
    Vault::create(&root).unwrap();
    for b in &bundles[..n] {
        open(&root, 3, 16 << 20).ingest(b, &mut ok).unwrap();
    }
    (open(&root, 3, 16 << 20), bundles, key, models)
}

/// `f` on another thread, which must end within `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("it did not end")
}

/// The segment at `seg` renumbered to `generation` (its digest made again, its file renamed).
fn regenerate(seg: &Path, generation: u64) -> PathBuf {
    let mut b = std::fs::read(seg).unwrap();
    let n = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let table_end = 32 + 56 * n;
    b[16..24].copy_from_slice(&generation.to_le_bytes());
    let d = *blake3::hash(&b[..table_end]).as_bytes();
    b[table_end..table_end + 32].copy_from_slice(&d);
    let name = SegName::parse(seg.file_name().unwrap().to_str().unwrap()).unwrap();
    let new = seg.with_file_name(SegName { generation, ..name }.file_name());
    std::fs::remove_file(seg).unwrap();
    std::fs::write(&new, &b).unwrap();
    new
}

/// The operator renumbers the genuine segment to the highest generation a name may carry, or
/// past it: ingests go on (their combine refused with a typed error, their points committed),
/// GC ends with a typed error or works, nothing panics; past the bound the file is not a
/// segment (its points are missing: `Corrupt`).
#[test]
fn a_renumbered_generation_never_panics_or_loses_a_point() {
    let dir = tempfile::tempdir().unwrap();
    let (v, bundles, key, models) = vault(dir.path(), 6);
    let seg = segments(&v).pop().unwrap();
    let top = regenerate(&seg, MAX_GENERATION);
    check(&v, "g", &key, &models[..6], &dir.path().join("m.img"));
    for b in &bundles[6..] {
        assert!(
            open(v.path(), 3, 16 << 20)
                .ingest(b, &mut ok)
                .unwrap()
                .added
        );
    }
    let v = open(v.path(), 3, 16 << 20);
    assert_eq!(v.points("g").unwrap().len(), bundles.len());
    match v.gc(&mut ok) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}"),
    }
    check(&v, "g", &key, &models, &dir.path().join("m.img"));
    if top.exists() {
        regenerate(&top, u64::MAX);
        let e = open(v.path(), 3, 16 << 20).points("g").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    }
}

/// A 16 TiB sparse file named like a segment, whose row count its length would allow: refused
/// before any table is allocated, quickly, with a typed error.
#[test]
fn a_sparse_segment_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (v, _, _, _) = vault(dir.path(), 4);
    let genuine = std::fs::read(&segments(&v)[0]).unwrap();
    let len: u64 = (1 << 44) - 4096;
    let mut head = genuine[..16].to_vec();
    head.extend_from_slice(&0u64.to_le_bytes());
    head.extend_from_slice(&((len - 64) / (56 + 112)).to_le_bytes());
    let p = v
        .points_dir("g")
        .join("000000000000-000000000200-000000000009.rcseg");
    std::fs::write(&p, &head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len)
        .unwrap();
    let root = v.path().to_path_buf();
    let e = within(10, move || {
        open(&root, 3, 16 << 20).points("g").unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
}

/// A FIFO named like a segment or like a point file the walk looks for: readers get
/// `Corrupt` at once instead of waiting for a writer.
#[test]
fn a_fifo_named_like_a_point_file_never_hangs_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (v, _, _, _) = vault(dir.path(), 2);
    let points = v.points("g").unwrap();
    let newest = points.last().unwrap();
    let own = v
        .points_dir("g")
        .join(super::point::PointFile::file_name(newest.seq, &newest.id));
    let seg = v
        .points_dir("g")
        .join("000000000100-000000000200-000000000009.rcseg");
    for fifo in [own, seg] {
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let root = v.path().to_path_buf();
        let e = within(10, move || {
            open(&root, 3, 16 << 20).points("g").unwrap_err()
        });
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_file(&fifo).unwrap();
    }
}

/// The operator forges point 2's summary to link to point 3 with records from sequence 1000
/// (its trailer made again) and the head to count u64::MAX points: the walk does not go
/// round, it refuses the summary.
#[test]
fn forged_summaries_cannot_make_a_walk_go_round() {
    use super::head::Head;
    let dir = tempfile::tempdir().unwrap();
    let (bundles, _, _) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    for b in &bundles[..4] {
        open(&root, usize::MAX, 16 << 20)
            .ingest(b, &mut ok)
            .unwrap();
    }
    let v = open(&root, usize::MAX, 16 << 20);
    let pts = v.points("g").unwrap();
    let (a, b) = (&pts[2], &pts[3]);
    let a_path = v
        .points_dir("g")
        .join(super::point::PointFile::file_name(a.seq, &a.id));
    let mut bytes = std::fs::read(&a_path).unwrap();
    bytes[40..48].copy_from_slice(&1000u64.to_le_bytes());
    bytes[48..80].copy_from_slice(&b.id.0);
    let n = bytes.len() - 32;
    let trailer = *blake3::hash(&bytes[..n]).as_bytes();
    bytes[n..].copy_from_slice(&trailer);
    std::fs::write(&a_path, &bytes).unwrap();
    let mut head = Head::load(&v.layout, "g").unwrap().unwrap();
    head.count = u64::MAX;
    std::fs::write(v.layout.head("g"), head.encode().unwrap()).unwrap();
    let e = within(20, move || {
        open(&root, usize::MAX, 16 << 20).points("g").unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("past the point's own"), "{e}");
}

/// Segments [0..3] and [4..8] (GC), then a prune keeping 5..8: 5's merged form is a file of
/// its own, its older form stays a row of [4..8]; the pruned segment [0..3] goes (as opening
/// after a cut prune removes it), and the head is lost. The rebuilt head must take 5's merged
/// form, so it names point 8, not 5 (which would drop 6, 7 and 8, and GC their blobs).
#[test]
fn a_rebuilt_head_takes_each_points_newest_form() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let root = dir.path().join("v");
    Vault::create(&root).unwrap();
    for b in &bundles {
        open(&root, usize::MAX, 1).ingest(b, &mut ok).unwrap();
    }
    let sizes: Vec<u64> = std::fs::read_dir(open(&root, usize::MAX, 1).points_dir("g"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rcpt"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let full: u64 = sizes.iter().sum::<u64>() * 4 / sizes.len() as u64;
    let mut v = open(&root, 0, full);
    v.segment_merge = 0;
    assert!(v.gc(&mut ok).unwrap().point_files_combined > 0);
    assert!(segments(&v).len() >= 2, "{:?}", segments(&v));
    let v = open(&root, usize::MAX, full);
    super::combine_points_tests::prune_keeping(&v, 4);
    let kept = v.points("g").unwrap();
    let first = &kept[0];
    // The first kept point's merged form is a file of its own; the segment that held the
    // pruned points only goes.
    let own = v
        .points_dir("g")
        .join(super::point::PointFile::file_name(first.seq, &first.id));
    assert!(own.exists());
    let read = super::chain::load(&v.layout, "g").unwrap().files();
    for s in segments(&v) {
        if !read.contains(&s) {
            std::fs::remove_file(&s).unwrap();
        }
    }
    std::fs::remove_file(v.head_path("g")).unwrap();
    let rebuilt = v.rebuild_head("g").unwrap();
    assert_eq!(
        (rebuilt.point, rebuilt.points),
        (kept.last().unwrap().id, kept.len() as u64)
    );
    assert_eq!(v.points("g").unwrap(), kept);
    v.gc(&mut ok).unwrap();
    assert_eq!(v.points("g").unwrap(), kept);
    check(&v, "g", &key, &models, &dir.path().join("m.img"));
}

/// A well-formed segment planted past the head (one row of garbage at sequence 1000, its
/// table's digest right) does not stop ingests from combining their point files, and GC
/// removes it (no point is read from it).
#[test]
fn a_segment_planted_past_the_head_is_ignored_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (v, bundles, key, models) = vault(dir.path(), 3);
    let mut planted = super::segment::encode_table(5, &[(1000, crate::id::PointId([7; 32]), 112)]);
    planted.extend_from_slice(&[0x55; 112]);
    let path = v.points_dir("g").join(
        SegName {
            first: 1000,
            last: 1000,
            generation: 5,
        }
        .file_name(),
    );
    std::fs::write(&path, &planted).unwrap();
    assert_eq!(v.points("g").unwrap().len(), 3);
    let mut combined = 0;
    for b in &bundles[3..] {
        combined += open(v.path(), 3, 16 << 20)
            .ingest(b, &mut ok)
            .unwrap()
            .point_files_combined;
    }
    assert!(combined >= 6, "{combined}");
    let v = open(v.path(), 3, 16 << 20);
    v.gc(&mut ok).unwrap();
    assert!(!path.exists());
    check(&v, "g", &key, &models, &dir.path().join("m.img"));
}

/// The vault's operator (no key) copies every row of a group's segment out as files of their
/// own, the same bytes, so that the walk reads none of the segment; damages one copy's trailer;
/// and drops the group's in-progress marker, so that opening the vault cleans what the walk
/// does not read. Neither that cleaning nor GC removes the segment: it holds the damaged
/// point's only sound copy. Once the damaged file is removed, every point reads as its model.
#[test]
fn a_planted_damaged_copy_cannot_make_the_sound_segment_go() {
    use super::combine_points_tests::{one_segment, open_full, point_sizes, taken_out};
    let dir = tempfile::tempdir().unwrap();
    let (bundles, key, models) = bundles(dir.path(), "g");
    let out = dir.path().join("m.img");
    let full = point_sizes(dir.path(), &bundles).iter().sum::<u64>() - 1;
    let root = dir.path().join("v");
    one_segment(&root, &bundles, full);
    let v = open_full(&root, full);
    let segment = segments(&v);
    let copies = taken_out(&v, 0..9);
    let mut bytes = std::fs::read(&copies[5]).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&copies[5], &bytes).unwrap();
    std::fs::write(v.points_dir("g").join(super::layout::PENDING), b"").unwrap();
    drop(v);
    let v = open_full(&root, full);
    assert_eq!(segments(&v), segment, "the cleaning at open removed it");
    let e = v.gc(&mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // (It wrote the eight sound copies into a new segment: they replaced no segment.)
    assert!(segments(&v).contains(&segment[0]), "GC removed it");
    std::fs::remove_file(&copies[5]).unwrap();
    let v = open_full(&root, full);
    check(&v, "g", &key, &models, &out);
}
