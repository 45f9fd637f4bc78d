//! The change log's behaviour through its public API: recording, reading back, rotation,
//! continuity checks on reopen, refusals, the failed-write rule, the resync threshold, and the
//! per-point extent maps.

use std::time::{Duration, UNIX_EPOCH};

use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, LogReader, LogSource, MarkerKind, MemStorage, RecordBody,
    ResyncThreshold, RotationRecovery, SyncPolicy, TrackerState, changes_by_point,
};
use replicore::{ErrorKind, Piece};

fn config() -> LogConfig {
    LogConfig::new(
        "vm-01",
        vec![
            DiskSpec::new("os", 1 << 20),
            DiskSpec::new("data", 64 << 10),
        ],
    )
}

fn t(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[test]
fn records_come_back_in_order_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    log.record_write(0, 4096, b"hello").unwrap();
    log.record_trim(1, 0, 8192).unwrap();
    let big = vec![7u8; 300 << 10]; // bypasses the buffer
    log.record_write(0, 0, &big).unwrap();
    assert_eq!(log.mark_at(MarkerKind::App, "vss", t(1)).unwrap(), 1);
    log.sync().unwrap();
    drop(log);

    let r = LogReader::open(&path).unwrap();
    assert!(r.seal().is_none() && r.torn_tail().is_none());
    let recs: Vec<_> = r.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 4);
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(
        recs[0].body,
        RecordBody::Write {
            disk: 0,
            offset: 4096,
            data: b"hello".to_vec()
        }
    );
    assert_eq!(
        recs[1].body,
        RecordBody::Trim {
            disk: 1,
            offset: 0,
            len: 8192
        }
    );
    let mut back = vec![0u8; 5];
    r.read_at(recs[0].data_pos(), &mut back).unwrap();
    assert_eq!(back, b"hello");
    match &recs[3].body {
        RecordBody::Marker(m) => {
            assert_eq!((m.kind, m.label.as_str()), (MarkerKind::App, "vss"));
            assert_eq!(m.time_ns, 1_700_000_001 * 1_000_000_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    let e = log.record_write(2, 0, b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("not a disk"), "{e}");
    let e = log.record_write(1, (64 << 10) - 1, b"xy").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("past the end of disk `data`"), "{e}");
    assert_eq!(
        log.record_trim(0, u64::MAX, 2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        log.mark(MarkerKind::Crash, &"x".repeat(1025))
            .unwrap_err()
            .kind(),
        ErrorKind::LimitExceeded
    );
    assert_eq!(log.records(), 0);
    let e = log.rotate("/nonexistent/x.rclog").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let mut bad = config();
    bad.disks.push(DiskSpec::new("os", 1));
    assert_eq!(
        ChangeLog::create_on(Box::new(MemStorage::new()), &bad)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.rclog");
    ChangeLog::create(&path, &config()).unwrap();
    assert_eq!(
        ChangeLog::create(&path, &config()).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
}

#[test]
fn a_failed_write_or_sync_poisons_the_handle_until_reopened() {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    log.record_write(0, 0, &[1; 100]).unwrap();
    log.sync().unwrap();
    st.fail_writes_after(10);
    log.record_write(0, 0, &[2; 300 << 10]).unwrap_err(); // large: written at once
    let e = log.record_write(0, 0, b"again").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("reopen"), "{e}");
    assert!(log.sync().is_err());
    drop(log);
    // Reopen: the half-written record is a torn tail; the synced record is there.
    let st2 = MemStorage::from_bytes(st.live());
    let (log, rec) = ChangeLog::open_on(
        Box::new(st2),
        None,
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    )
    .unwrap();
    assert_eq!(rec.torn.as_ref().map(|t| t.bytes), Some(10));
    assert_eq!(log.records(), 1);

    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    st.fail_syncs();
    log.record_write(0, 0, b"x").unwrap();
    assert_eq!(log.sync().unwrap_err().kind(), ErrorKind::Io);
    assert!(log.record_write(0, 0, b"y").is_err());
}

#[test]
fn sync_policies_make_records_durable() {
    for (policy, durable_records) in [
        (SyncPolicy::EveryRecord, 3u64),
        (SyncPolicy::EveryBytes(100), 2),
        (SyncPolicy::Manual, 0),
    ] {
        let st = MemStorage::new();
        let mut cfg = config();
        cfg.sync = policy;
        let mut log = ChangeLog::create_on(Box::new(st.clone()), &cfg).unwrap();
        log.record_write(0, 0, &[1; 30]).unwrap(); // 70 bytes
        log.record_write(0, 0, &[1; 30]).unwrap(); // 140: EveryBytes(100) syncs here
        log.record_write(0, 0, &[1; 10]).unwrap();
        let r = LogReader::from_storage(Box::new(MemStorage::from_bytes(st.durable()))).unwrap();
        assert_eq!(r.record_count(), durable_records, "{policy:?}");
        drop(log);
    }
}

#[test]
fn rotation_seals_and_continues_in_the_next_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    let tracker0 = log.tracker();
    log.record_write(0, 0, b"a").unwrap();
    log.mark_at(MarkerKind::Crash, "5 min", t(300)).unwrap();
    log.record_write(1, 10, b"b").unwrap(); // not closed by a marker: rotation closes it
    let sealed = dir.path().join("vm.g0.rclog");
    let rot = log.rotate(&sealed).unwrap();
    assert_eq!((rot.generation, rot.points, rot.records), (0, 2, 4));
    assert_eq!(rot.tracker.generation, 1);
    assert_eq!(rot.tracker.epoch, tracker0.epoch);
    assert_eq!(log.tracker(), rot.tracker);
    assert_eq!(log.pending_bytes(), 0);
    // Points keep counting across generations.
    assert_eq!(log.mark(MarkerKind::Crash, "").unwrap(), 3);
    log.sync().unwrap();
    assert_eq!(
        log.rotate(&sealed).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );

    let r = LogReader::open(&sealed).unwrap();
    let seal = r.seal().expect("sealed");
    assert_eq!((seal.records, seal.payload_bytes), (4, 2));
    let recs: Vec<_> = r.records().unwrap().map(Result::unwrap).collect();
    assert!(matches!(&recs[3].body, RecordBody::Marker(m) if m.label == "rotation"));
    // Sequence numbers continue into the next generation (the seal took one).
    let next = LogReader::open(&path).unwrap();
    assert_eq!(next.header().first_record, 5);
    assert_eq!(next.header().first_point, 3);
    assert_eq!(next.records().unwrap().next().unwrap().unwrap().seq, 5);
}

#[test]
fn continuity_is_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    let t0 = log.tracker();
    log.record_write(0, 0, b"a").unwrap();
    let rot = log.rotate(dir.path().join("g0")).unwrap();
    log.rotate(dir.path().join("g1")).unwrap();
    drop(log);
    let open = |want: &TrackerState| {
        ChangeLog::open(
            &path,
            Some(want),
            SyncPolicy::Manual,
            ResyncThreshold::default(),
        )
    };

    // Generation 2 is there: expecting 1 (saved after the first rotation, crashed before saving
    // the second) is accepted; expecting 0 means a log was lost.
    assert!(open(&rot.tracker).is_ok());
    let e = open(&t0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired);
    assert!(e.to_string().contains("generation 2"), "{e}");
    let e = open(&TrackerState {
        epoch: [9; 16],
        ..rot.tracker.clone()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired);
    assert!(e.to_string().contains("epoch"), "{e}");
    let e = open(&TrackerState {
        group: "vm-02".into(),
        ..rot.tracker.clone()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired);
    // A log restored from an older copy is caught by its generation.
    std::fs::copy(dir.path().join("g0"), &path).unwrap();
    let e = open(&TrackerState {
        generation: 2,
        ..rot.tracker.clone()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired);
    // Missing: ResyncRequired when continuity was expected, NotFound otherwise.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        open(&rot.tracker).unwrap_err().kind(),
        ErrorKind::ResyncRequired
    );
    let e =
        ChangeLog::open(&path, None, SyncPolicy::Manual, ResyncThreshold::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn interrupted_rotations_are_rolled_back_or_completed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let sealed = dir.path().join("g0.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    log.record_write(0, 0, b"abc").unwrap();
    log.mark(MarkerKind::Crash, "p1").unwrap();
    let tracker = log.tracker();
    log.rotate(&sealed).unwrap();
    drop(log);
    let next = std::fs::read(&path).unwrap();

    // Crash after the seal, before the rename: the active path holds the sealed log.
    std::fs::copy(&sealed, &path).unwrap();
    std::fs::write(dir.path().join("vm.rclog.rotating"), &next).unwrap();
    let (mut log, rec) = ChangeLog::open(
        &path,
        Some(&tracker),
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    )
    .unwrap();
    assert_eq!(rec.rotation, Some(RotationRecovery::RolledBack));
    assert!(!dir.path().join("vm.rclog.rotating").exists());
    assert_eq!(log.records(), 2);
    assert_eq!(log.tracker(), tracker);
    log.record_write(0, 0, b"more").unwrap();
    log.sync().unwrap();
    drop(log);
    assert!(LogReader::open(&path).unwrap().seal().is_none());

    // Crash between the renames: the active path is missing, the next log waits beside it.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(dir.path().join("vm.rclog.rotating"), &next).unwrap();
    let (log, rec) = ChangeLog::open(
        &path,
        Some(&tracker),
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    )
    .unwrap();
    assert_eq!(
        rec.rotation,
        Some(RotationRecovery::Completed {
            sealed_generation: 0
        })
    );
    assert_eq!(log.tracker().generation, 1);
}

#[test]
fn needs_resync_at_the_threshold() {
    let disks = vec![DiskSpec::new("d", 10_000)];
    let mut cfg = LogConfig::new("g", disks);
    let mut log = ChangeLog::create_on(Box::new(MemStorage::new()), &cfg).unwrap();
    // 50% of 10,000 bytes: 5,000 bytes of records.
    log.record_write(0, 0, &[0; 4900]).unwrap(); // 4,940 bytes
    assert!(!log.needs_resync());
    log.record_write(0, 0, &[0; 20]).unwrap(); // 5,000 bytes
    assert_eq!(log.pending_bytes(), 5000);
    assert!(log.needs_resync());
    cfg.resync_threshold = ResyncThreshold::Bytes(100);
    let mut log = ChangeLog::create_on(Box::new(MemStorage::new()), &cfg).unwrap();
    log.record_write(0, 0, &[0; 59]).unwrap();
    assert!(!log.needs_resync());
    log.record_trim(0, 0, 1).unwrap();
    assert!(log.needs_resync());
    cfg.resync_threshold = ResyncThreshold::Percent(0);
    assert_eq!(
        ChangeLog::create_on(Box::new(MemStorage::new()), &cfg)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn points_are_coalesced_extent_maps_per_disk() {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    log.record_write(0, 0, &[1; 100]).unwrap();
    log.record_write(0, 50, &[2; 100]).unwrap(); // later write wins over 50..100
    log.record_trim(1, 0, 4096).unwrap();
    log.mark_at(MarkerKind::Crash, "p1", t(1)).unwrap();
    log.record_trim(0, 0, 10).unwrap();
    log.mark_at(MarkerKind::App, "p2", t(2)).unwrap();
    log.record_write(1, 0, b"tail").unwrap(); // no marker yet
    log.sync().unwrap();
    let r = LogReader::from_storage(Box::new(MemStorage::from_bytes(st.live()))).unwrap();
    let changes = changes_by_point(&r).unwrap();
    let (points, open) = (changes.points, changes.open);
    assert_eq!(points.len(), 2);
    assert_eq!((points[0].point, points[1].point), (1, 2));
    assert_eq!(points[1].marker.kind, MarkerKind::App);
    let os: Vec<_> = points[0].disks[0].iter().collect();
    assert_eq!(os.len(), 2);
    assert_eq!(
        (os[0].start, os[0].len, os[1].start, os[1].len),
        (0, 50, 50, 100)
    );
    // The bytes of the second extent are the second write's.
    let LogSource::Data { pos } = os[1].source else {
        panic!()
    };
    let mut b = [0u8; 100];
    r.read_at(pos, &mut b).unwrap();
    assert_eq!(b, [2; 100]);
    assert_eq!(
        points[0].disks[1].iter().next().unwrap().source,
        LogSource::Zero
    );
    assert!(
        matches!(points[1].disks[0].pieces().next(), Some(Piece::Mapped(e)) if e.source == LogSource::Zero && e.len == 10)
    );
    assert!(points[1].disks[1].is_empty());
    assert_eq!(open.unwrap()[1].mapped_bytes(), 4);
}

/// Marks move forward in time (issue 16): a marker before the previous one is InvalidArgument,
/// with both times in RFC 3339, in the log, after a reopen and after a rotation.
#[test]
fn a_mark_in_the_past_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    log.mark_at(MarkerKind::Crash, "", t(100)).unwrap();
    log.mark_at(MarkerKind::Crash, "same time", t(100)).unwrap();
    let e = log.mark_at(MarkerKind::App, "", t(99)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.to_string().contains("2023-11-14T22:14:59Z")
            && e.to_string().contains("2023-11-14T22:15:00Z"),
        "{e}"
    );
    log.sync().unwrap();
    drop(log);
    let (mut log, _) =
        ChangeLog::open(&path, None, SyncPolicy::Manual, ResyncThreshold::default()).unwrap();
    assert_eq!(
        log.mark_at(MarkerKind::Crash, "", t(50))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    log.rotate(dir.path().join("sealed.rclog")).unwrap();
    assert_eq!(
        log.mark_at(MarkerKind::Crash, "", t(50))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    log.mark_at(MarkerKind::Crash, "", t(101)).unwrap();
}

/// A rotation after writes past a point the host dated ahead of this clock (its clock stepped
/// back, or it marks with its own times) still seals: the point it adds is timed just after
/// that point, so points keep moving forward (issue 16).
#[test]
fn rotation_after_a_point_ahead_of_the_clock_seals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    let ahead = std::time::SystemTime::now() + Duration::from_secs(3600);
    log.mark_at(MarkerKind::App, "ahead", ahead).unwrap();
    log.record_write(0, 0, b"after the point").unwrap();
    let sealed = dir.path().join("sealed.rclog");
    log.rotate(&sealed).unwrap();
    let changes = changes_by_point(&LogReader::open(&sealed).unwrap()).unwrap();
    assert_eq!(changes.points.len(), 2);
    let (first, second) = (&changes.points[0].marker, &changes.points[1].marker);
    assert_eq!(second.label, "rotation");
    assert_eq!(second.time_ns, first.time_ns + 1);
    // The next points still move forward from there.
    let e = log
        .mark_at(MarkerKind::Crash, "", std::time::SystemTime::now())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}
