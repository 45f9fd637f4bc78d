//! Random write, trim, mark, rotate, sync and reopen sequences against a model disk.
//!
//! Protects: replaying every recovery point's changes (from the sealed logs in order, then the
//! active log), through `changes_by_point` and the bytes the log holds, rebuilds exactly the
//! disks as they were at each marker, including the markers rotation adds; point numbers run on
//! across rotations and reopens.

use std::path::PathBuf;

use proptest::prelude::*;
use replicore::Piece;
use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, LogReader, LogSource, MarkerKind, ResyncThreshold, SyncPolicy,
    changes_by_point,
};

const SIZES: [u64; 2] = [6000, 1500];

#[derive(Debug, Clone)]
enum Op {
    Write {
        disk: usize,
        offset: u64,
        len: u64,
        seed: u8,
    },
    Trim {
        disk: usize,
        offset: u64,
        len: u64,
    },
    Mark(bool),
    Rotate,
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let range = (0usize..2, 0u64..6000, 1u64..900).prop_map(|(d, o, l)| {
        let o = o % SIZES[d];
        (d, o, l.min(SIZES[d] - o))
    });
    prop_oneof![
        8 => (range.clone(), any::<u8>()).prop_map(|((disk, offset, len), seed)| Op::Write { disk, offset, len, seed }),
        2 => range.prop_map(|(disk, offset, len)| Op::Trim { disk, offset, len }),
        3 => any::<bool>().prop_map(Op::Mark),
        1 => Just(Op::Rotate),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn data(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.rclog");
    let cfg = LogConfig::new(
        "g",
        SIZES
            .iter()
            .enumerate()
            .map(|(i, &s)| DiskSpec::new(format!("d{i}"), s))
            .collect(),
    );
    let mut log = ChangeLog::create(&path, &cfg).unwrap();
    let mut model: Vec<Vec<u8>> = SIZES.iter().map(|&s| vec![0u8; s as usize]).collect();
    // The model disks at every point, in order.
    let mut snapshots: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut open_changes = false; // a write or trim since the last marker in this log
    let mut sealed: Vec<PathBuf> = Vec::new();
    for op in ops {
        match *op {
            Op::Write {
                disk,
                offset,
                len,
                seed,
            } => {
                let d = data(len, seed);
                log.record_write(disk, offset, &d).unwrap();
                model[disk][offset as usize..(offset + len) as usize].copy_from_slice(&d);
                open_changes = true;
            }
            Op::Trim { disk, offset, len } => {
                log.record_trim(disk, offset, len).unwrap();
                model[disk][offset as usize..(offset + len) as usize].fill(0);
                open_changes = true;
            }
            Op::Mark(app) => {
                let point = log
                    .mark(
                        if app {
                            MarkerKind::App
                        } else {
                            MarkerKind::Crash
                        },
                        "m",
                    )
                    .unwrap();
                assert_eq!(point, 1 + snapshots.len() as u64);
                snapshots.push(model.clone());
                open_changes = false;
            }
            Op::Rotate => {
                let p = dir.path().join(format!("sealed-{}", sealed.len()));
                let last_was_change = open_changes;
                let rot = log.rotate(&p).unwrap();
                if last_was_change {
                    snapshots.push(model.clone());
                }
                assert_eq!(log.header().first_point, 1 + snapshots.len() as u64);
                assert_eq!(rot.generation + 1, log.tracker().generation);
                sealed.push(p);
                open_changes = false;
            }
            Op::Sync => log.sync().unwrap(),
            Op::Reopen => {
                let tracker = log.tracker();
                log.sync().unwrap();
                drop(log);
                let (l, rec) = ChangeLog::open(
                    &path,
                    Some(&tracker),
                    SyncPolicy::Manual,
                    ResyncThreshold::default(),
                )
                .unwrap();
                assert_eq!(rec.torn, None);
                log = l;
            }
        }
    }
    log.sync().unwrap();
    drop(log);

    // Replay: every point from every log, in order, onto zeroed replicas.
    let mut replica: Vec<Vec<u8>> = SIZES.iter().map(|&s| vec![0u8; s as usize]).collect();
    let mut point = 0usize;
    for p in sealed.iter().chain([&path]) {
        let r = LogReader::open(p).unwrap();
        let changes = changes_by_point(&r).unwrap();
        for pc in &changes.points {
            assert_eq!(pc.point, 1 + point as u64);
            for (disk, map) in pc.disks.iter().enumerate() {
                for piece in map.pieces() {
                    let Piece::Mapped(e) = piece else { continue };
                    let dst = &mut replica[disk][e.start as usize..e.end() as usize];
                    match e.source {
                        LogSource::Zero => dst.fill(0),
                        LogSource::Data { pos } => r.read_at(pos, dst).unwrap(),
                    }
                }
            }
            assert_eq!(replica, snapshots[point], "point {}", point + 1);
            point += 1;
        }
        assert_eq!(changes.open.is_some(), p == &path && open_changes);
    }
    assert_eq!(point, snapshots.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replaying_points_rebuilds_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}
