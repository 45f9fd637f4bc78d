//! Crash safety of the change log, through its storage seam.
//!
//! Protects the claims of `src/log/mod.rs`: a log cut at any byte reopens with exactly the whole
//! records before the cut; a flipped byte is reported as Corrupt, or (only in the last record)
//! dropped as a torn tail, and never yields a record that differs from what was written; a
//! power cut loses nothing recorded before a `sync()` that returned, including when a sector of
//! a record reached the media and the next did not.

use proptest::prelude::*;
use replicore::ErrorKind;
use replicore::log::{
    ChangeLog, DiskSpec, LogConfig, LogReader, MarkerKind, MemStorage, Record, ResyncThreshold,
    SyncPolicy,
};

fn config() -> LogConfig {
    LogConfig::new(
        "vm",
        vec![DiskSpec::new("os", 1 << 24), DiskSpec::new("data", 1 << 20)],
    )
}

/// xorshift64*, so every run cuts the same log.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Appends `n` mixed records (writes of 1 byte to 70 KiB, trims, markers).
fn mixed(log: &mut ChangeLog, rng: &mut Rng, n: usize) {
    for i in 0..n {
        match rng.next() % 10 {
            0 => {
                log.mark(
                    if i % 3 == 0 {
                        MarkerKind::App
                    } else {
                        MarkerKind::Crash
                    },
                    "point",
                )
                .unwrap();
            }
            1 => log.record_trim(1, rng.next() % 1000 * 512, 4096).unwrap(),
            k => {
                // Now and then a write large enough to bypass the writer's buffer.
                let len = if k == 2 && i % 32 == 7 {
                    (256 << 10) + rng.next() as usize % (8 << 10)
                } else {
                    1 + rng.next() as usize % 1500
                };
                let data: Vec<u8> = (0..len).map(|j| (j as u64 ^ rng.next()) as u8).collect();
                log.record_write(0, rng.next() % (1 << 23), &data).unwrap();
            }
        }
    }
}

fn records_of(bytes: Vec<u8>) -> replicore::Result<(Vec<Record>, Option<u64>)> {
    let r = LogReader::from_storage(Box::new(MemStorage::from_bytes(bytes)))?;
    let recs = r.records()?.collect::<replicore::Result<Vec<_>>>()?;
    Ok((recs, r.torn_tail().map(|t| t.bytes)))
}

fn reopen(bytes: Vec<u8>) -> replicore::Result<(ChangeLog, MemStorage, replicore::log::Recovery)> {
    let st = MemStorage::from_bytes(bytes);
    let (log, rec) = ChangeLog::open_on(
        Box::new(st.clone()),
        None,
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    )?;
    Ok((log, st, rec))
}

/// A synced log of 300 mixed records, its bytes, its records and the header length.
fn sample_log() -> (Vec<u8>, Vec<Record>, u64) {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    let header_len = st.live().len() as u64;
    mixed(&mut log, &mut Rng(0xc0ffee), 296);
    // The records cut at every byte: small, one of each kind.
    log.record_write(0, 512, &[0xaa; 300]).unwrap();
    log.record_trim(1, 4096, 4096).unwrap();
    log.mark(MarkerKind::App, "last point").unwrap();
    log.record_write(1, 0, &[0x55; 60]).unwrap();
    log.sync().unwrap();
    let bytes = st.live();
    let (recs, torn) = records_of(bytes.clone()).unwrap();
    assert_eq!((recs.len(), torn), (300, None));
    (bytes, recs, header_len)
}

#[test]
fn cut_at_every_byte_of_the_last_records_and_a_sample_of_all() {
    let (bytes, recs, header_len) = sample_log();
    let ends: Vec<u64> = recs
        .iter()
        .skip(1)
        .map(|r| r.pos)
        .chain([bytes.len() as u64])
        .collect();
    let tail_start = recs[recs.len() - 4].pos as usize;
    let cuts: Vec<usize> = (tail_start..=bytes.len())
        .chain((0..tail_start).step_by(tail_start / 800 + 1))
        .collect();
    assert!(cuts.len() > 1000, "{} cuts", cuts.len());
    for (i, &cut) in cuts.iter().enumerate() {
        if (cut as u64) < header_len {
            let e = reopen(bytes[..cut].to_vec()).expect_err("a cut header must not open");
            assert_eq!(e.kind(), ErrorKind::Corrupt, "cut {cut}");
            continue;
        }
        let whole = ends.iter().take_while(|&&e| e <= cut as u64).count();
        let last_end = if whole == 0 {
            header_len
        } else {
            ends[whole - 1]
        };
        let (mut log, st, rec) =
            reopen(bytes[..cut].to_vec()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(log.records(), whole as u64, "cut {cut}");
        assert_eq!(
            rec.torn.as_ref().map(|t| t.bytes).unwrap_or(0),
            cut as u64 - last_end,
            "cut {cut}"
        );
        assert_eq!(
            st.live().len() as u64,
            last_end,
            "cut {cut}: the torn tail was not truncated"
        );
        let (back, _) = records_of(st.live()).unwrap();
        assert_eq!(back[..], recs[..whole], "cut {cut}");
        // Every 50th cut: the recovered log takes new records after the kept ones.
        if i % 50 == 0 {
            log.record_write(1, 0, b"after recovery").unwrap();
            log.sync().unwrap();
            let (back, _) = records_of(st.live()).unwrap();
            assert_eq!(back.len(), whole + 1);
            assert_eq!(back.last().unwrap().seq, whole as u64);
        }
    }
}

#[test]
fn every_flipped_byte_is_corrupt_or_a_dropped_tail_never_wrong_data() {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    let header_len = st.live().len();
    let mut rng = Rng(7);
    for i in 0..12u64 {
        let data: Vec<u8> = (0..(1 + rng.next() % 40))
            .map(|_| rng.next() as u8)
            .collect();
        match i % 4 {
            0 => log.record_trim(1, i * 512, 512).unwrap(),
            1 => drop(log.mark(MarkerKind::Crash, "m").unwrap()),
            _ => log.record_write(0, i * 4096, &data).unwrap(),
        }
    }
    log.sync().unwrap();
    let bytes = st.live();
    let (recs, _) = records_of(bytes.clone()).unwrap();
    let last_start = recs.last().unwrap().pos as usize;
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            match reopen(bad.clone()) {
                // A flipped version number reads as a version this build does not know.
                Err(e) => assert!(
                    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion),
                    "byte {i}: {e}"
                ),
                Ok((log, st, rec)) => {
                    assert!(
                        i >= last_start,
                        "byte {i} (before the last record) was taken as a torn tail"
                    );
                    assert!(
                        rec.torn.is_some(),
                        "byte {i} flipped but nothing was dropped"
                    );
                    assert_eq!(log.records() as usize, recs.len() - 1);
                    let (back, _) = records_of(st.live()).unwrap();
                    assert_eq!(back[..], recs[..recs.len() - 1], "byte {i}");
                }
            }
            if i < header_len {
                assert!(
                    records_of(bad).is_err(),
                    "header byte {i} flipped and accepted"
                );
            }
        }
    }
}

/// The records of a log after a power cut are a prefix of those written, holding at least all
/// that a returned `sync()` covered.
fn check_power_cut(bytes: Vec<u8>, written: &[Record], synced: usize, what: &str) {
    let (log, st, _) = reopen(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let n = log.records() as usize;
    assert!(
        n >= synced,
        "{what}: {n} records survived, {synced} were synced"
    );
    let (back, _) = records_of(st.live()).unwrap();
    assert_eq!(back[..], written[..n], "{what}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn power_cuts_lose_nothing_synced(seed in any::<u64>(), batches in prop::collection::vec(1usize..12, 1..8), cut_fraction in 0.0f64..1.0) {
        let st = MemStorage::new();
        let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
        let mut rng = Rng(seed | 1);
        let mut synced = 0usize;
        let mut total = 0usize;
        for (i, n) in batches.iter().enumerate() {
            mixed(&mut log, &mut rng, *n);
            total += n;
            if i + 1 < batches.len() {
                log.sync().unwrap();
                synced = total;
            }
        }
        // Hand everything to the storage without a sync: the cut decides what reaches the media.
        log.flush().unwrap();
        let live = st.live();
        let durable = st.durable();
        let unsynced = live.len() - durable.len();
        // The full record list as written, from a copy that flushed everything.
        let (written, _) = records_of(live.clone()).unwrap_or((Vec::new(), None));
        let extra = (unsynced as f64 * cut_fraction) as usize;

        check_power_cut(durable.clone(), &written, synced, "durable only");
        check_power_cut(st.power_cut(extra), &written, synced, "a prefix of the unsynced bytes");
        // The cut inside a record, with the rest of its sectors allocated but never written
        // (zeros) or holding garbage.
        let mut zeros = st.power_cut(extra);
        let sector_end = zeros.len().div_ceil(512) * 512;
        zeros.resize(sector_end.max(zeros.len()), 0);
        check_power_cut(zeros, &written, synced, "zeros after the cut");
        let mut garbage = st.power_cut(extra);
        garbage.extend((0..700).map(|i| (i * 31 + 7) as u8));
        check_power_cut(garbage, &written, synced, "garbage after the cut");
    }
}

#[test]
fn a_record_whose_second_sector_never_arrived_is_dropped() {
    let st = MemStorage::new();
    let mut log = ChangeLog::create_on(Box::new(st.clone()), &config()).unwrap();
    log.record_write(0, 0, &[5u8; 100]).unwrap();
    log.sync().unwrap();
    let keep = st.live().len();
    log.record_write(0, 8192, &[6u8; 8192]).unwrap();
    log.sync().unwrap();
    let full = st.live();
    // The first sector of the second record reached the media; the following ones read as
    // zeros (allocated, never written).
    let first_sector_end = (keep / 512 + 1) * 512;
    let mut bytes = full.clone();
    bytes[first_sector_end..].fill(0);
    let (log, st2, rec) = reopen(bytes).unwrap();
    assert_eq!(log.records(), 1);
    assert_eq!(rec.torn.unwrap().at, keep as u64);
    assert_eq!(st2.live().len(), keep);
}

#[test]
fn a_seal_cut_short_leaves_an_unsealed_log_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    mixed(&mut log, &mut Rng(99), 40);
    log.mark(MarkerKind::Crash, "last").unwrap();
    log.sync().unwrap();
    let before = std::fs::read(&path).unwrap();
    let sealed = dir.path().join("g0.rclog");
    log.rotate(&sealed).unwrap();
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    assert!(sealed_bytes.len() > before.len());
    for cut in before.len()..sealed_bytes.len() {
        let (log, _, rec) = reopen(sealed_bytes[..cut].to_vec()).unwrap();
        assert_eq!(log.records(), 41, "cut {cut}");
        assert_eq!(rec.torn.is_some(), cut > before.len());
    }
    // The whole seal: the rotation is rolled back on open (the seal is removed).
    let (log, st, rec) = reopen(sealed_bytes).unwrap();
    assert_eq!(
        rec.rotation,
        Some(replicore::log::RotationRecovery::RolledBack)
    );
    assert_eq!(log.records(), 41);
    assert_eq!(st.live(), before);
}
