//! The checks of the `log_open` fuzz target, shared with `tests/fuzz_regressions.rs`: a change
//! log read and recovered from arbitrary bytes.
//!
//! Invariants: never panics, never allocates past a cap; a log that opens for reading yields
//! exactly the records it counted, all of them valid; a log that opens for appending (after
//! recovery) takes a new record and reopens with it and nothing torn.

use std::time::{Duration, UNIX_EPOCH};

use replicore::log::{
    ChangeLog, LogReader, MarkerKind, MemStorage, ResyncThreshold, SyncPolicy, changes_by_point,
};

/// Runs every check on `data`; panics when one fails.
pub fn check(data: &[u8]) {
    if let Ok(r) = LogReader::from_storage(Box::new(MemStorage::from_bytes(data.to_vec()))) {
        let mut n = 0u64;
        for rec in r.records().expect("a verified log re-reads") {
            rec.expect("a verified log yields only valid records");
            n += 1;
        }
        assert_eq!(n, r.record_count());
        let changes = changes_by_point(&r).expect("a verified log splits into points");
        assert_eq!(changes.points.len() as u64, r.marker_count());
    }

    let st = MemStorage::from_bytes(data.to_vec());
    let opened = ChangeLog::open_on(
        Box::new(st.clone()),
        None,
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    );
    if let Ok((mut log, _)) = opened {
        let before = log.records();
        // Late enough to follow any marker a fuzzed log holds but one of its last years;
        // a mark before the log's newest is refused (marks move forward in time).
        match log.mark_at(
            MarkerKind::Crash,
            "fuzz",
            UNIX_EPOCH + Duration::from_secs(17_000_000_000),
        ) {
            Ok(_) => {}
            Err(e) if e.kind() == replicore::ErrorKind::InvalidArgument => return,
            Err(e) => panic!("mark: {e}"),
        }
        log.sync().expect("sync");
        drop(log);
        let again = MemStorage::from_bytes(st.live());
        let (log, rec) = ChangeLog::open_on(
            Box::new(again),
            None,
            SyncPolicy::Manual,
            ResyncThreshold::default(),
        )
        .expect("a recovered log reopens");
        assert_eq!(log.records(), before + 1);
        assert!(rec.torn.is_none());
    }
}
