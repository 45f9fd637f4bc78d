//! The whole disaster-recovery cycle (issue 17) on two disks, with a model of every byte: seed;
//! replicate; lose the tracker, and separately pass the resync threshold, each time resync
//! into the chain; replicate; unplanned failover to an older point with the recovered disks
//! tracked; writes there; reprotect (the stale original disks resynchronized from the
//! recovered ones, then reverse replication applied to them in order); planned failback;
//! reprotect forward (a resync into the original chain from the original disks); replicate;
//! prune and GC across the resync points.
//!
//! At every step every disk is compared with the model, and every point the vault holds fails
//! over to its model. Attacks on the way: a reverse bundle dropped into the forward vault, a
//! gap, a replay, a fork, another key and a damaged bundle at apply, each refused with the
//! disks untouched.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{CS, key, noise, ok, seeded};
use replicore::ErrorKind;
use replicore::bundle::{
    ApplyState, Bundle, ResyncOptions, ShipOptions, ShipState, TrackFrom, apply, resync_ship, ship,
    sign_for_apply, track,
};
use replicore::crypto::Key;
use replicore::id::PointId;
use replicore::log::{ChangeLog, DiskSpec, MarkerKind, ResyncThreshold, SyncPolicy};
use replicore::policy::RetentionPolicy;
use replicore::vault::{Selector, Vault};

const G: &str = "vm-01";
const NAMES: [&str; 2] = ["os", "data"];

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// One site's copy of the group: its images on disk, its log and ship state, its model.
struct Site {
    dir: PathBuf,
    log: Option<ChangeLog>,
    state: Option<ShipState>,
    model: Vec<Vec<u8>>,
    shipped: u32,
}

impl Site {
    fn image(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.img", NAMES[i]))
    }

    fn disks(&self) -> Vec<(&'static str, PathBuf)> {
        (0..2).map(|i| (NAMES[i], self.image(i))).collect()
    }

    /// A guest write: to the image, the model and (when tracking) the log.
    fn write(&mut self, disk: usize, at: usize, data: &[u8]) {
        if let Some(log) = self.log.as_mut() {
            log.record_write(disk, at as u64, data).unwrap();
        }
        self.model[disk][at..at + data.len()].copy_from_slice(data);
        self.save_images();
    }

    fn save_images(&self) {
        for i in 0..2 {
            std::fs::write(self.image(i), &self.model[i]).unwrap();
        }
    }

    /// The images equal the model, byte for byte.
    fn check(&self, what: &str) {
        for (i, name) in NAMES.iter().enumerate() {
            assert!(
                std::fs::read(self.image(i)).unwrap() == self.model[i],
                "{what}: disk {name} differs from the model"
            );
        }
    }

    /// Marks a point, rotates and ships; returns the bundles.
    fn ship(&mut self, key: &Key, label: &str, secs: u64, out: &Path) -> Vec<(PathBuf, PointId)> {
        let log = self.log.as_mut().unwrap();
        log.mark_at(MarkerKind::App, label, t(secs)).unwrap();
        self.shipped += 1;
        let sealed = self.dir.join(format!("sealed-{}.rclog", self.shipped));
        log.rotate(&sealed).unwrap();
        std::fs::create_dir_all(out).unwrap();
        let state = self.state.as_mut().unwrap();
        ship(&sealed, key, state, out, &ShipOptions::default(), &mut ok)
            .unwrap()
            .into_iter()
            .map(|b| (b.path, b.point))
            .collect()
    }
}

fn refs<'a>(v: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    v.iter().map(|(n, p)| (*n, p.as_path())).collect()
}

/// Every point of the vault fails over to its model.
fn check_vault(v: &Vault, key: &Key, models: &HashMap<PointId, Vec<Vec<u8>>>, scratch: &Path) {
    let points = v.points(G).unwrap();
    assert!(!points.is_empty());
    for (n, p) in points.iter().enumerate() {
        let want = models
            .get(&p.id)
            .unwrap_or_else(|| panic!("point seq {} is not a point that was shipped", p.seq));
        let out = scratch.join(format!("fo-{}-{n}", p.seq));
        v.failover(G, Selector::Id(p.id), key, &out, &mut ok)
            .unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            assert!(
                std::fs::read(out.join(format!("{name}.img"))).unwrap() == want[i],
                "point seq {}: disk {name} differs from its model",
                p.seq
            );
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// Resyncs `site` into the vault's chain from its images; the new log and state replace its own.
fn resync_into_chain(
    v: &Vault,
    key: &Key,
    site: &mut Site,
    log: &Path,
    out: &Path,
    secs: u64,
    models: &mut HashMap<PointId, Vec<Vec<u8>>>,
) -> u64 {
    site.log = None;
    let sig = v
        .point_signature(G, Selector::Latest, key, &mut ok)
        .unwrap();
    std::fs::create_dir_all(out).unwrap();
    let options = ResyncOptions {
        time: Some(t(secs)),
        replace: true,
        ..ResyncOptions::default()
    };
    let disks = site.disks();
    let r = resync_ship(&sig, &refs(&disks), key, log, out, &options, &mut ok).unwrap();
    v.ingest(&r.bundle.path, &mut ok).unwrap();
    models.insert(r.bundle.point, site.model.clone());
    site.log = Some(r.log);
    site.state = Some(r.state);
    r.changed_chunks
}

/// What an attacker with their own key makes to follow `last`: its point as parent, the next
/// sequence number, every disk, one range of their bytes.
fn forge_next(dir: &Path, last: &Path, attacker: &Key) -> PathBuf {
    use replicore::bundle::{BundleHeader, BundleWriter, DiskManifest};
    use replicore::{ExtentMap, Source};
    let real = Bundle::open(last).unwrap();
    let path = dir.join("forged.rcb");
    let mut w = BundleWriter::create(&path).unwrap();
    let blob = replicore::blob::encode(attacker, b"the attacker's bytes", 1).unwrap();
    w.add_blob(&blob).unwrap();
    let disks: Vec<DiskManifest> = real
        .disks()
        .iter()
        .map(|d| {
            let mut m = ExtentMap::new(d.size()).unwrap();
            let id = blob.id;
            m.insert(0, 20, Source::Blob { id, offset: 0 }).unwrap();
            DiskManifest {
                name: d.name.clone(),
                extents: m,
            }
        })
        .collect();
    let header = BundleHeader {
        seq: real.header().seq + 1,
        parent: real.point_id(),
        key_file: attacker.key_file().clone(),
        ..real.header().clone()
    };
    w.finish(header, &disks, attacker).unwrap();
    path
}

#[test]
fn the_whole_dr_cycle_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scratch = d.join("scratch");
    std::fs::create_dir(&scratch).unwrap();

    // Seed (the fixture seeds `vm-01` from os.img and data.img in `primary`).
    let pdir = d.join("primary");
    std::fs::create_dir(&pdir).unwrap();
    let g = seeded(&pdir, key(21));
    let k = g.key;
    let v = Vault::create(d.join("vault")).unwrap();
    v.ingest(&g.base, &mut ok).unwrap();
    let mut models = HashMap::new();
    models.insert(Bundle::open(&g.base).unwrap().point_id(), g.model.clone());
    let mut primary = Site {
        dir: pdir.clone(),
        log: Some(g.log),
        state: Some(g.state),
        model: g.model,
        shipped: 0,
    };
    primary.check("seed");
    let fwd = d.join("fwd");

    // Replicate.
    primary.write(0, 1000, &noise(90_000, 1));
    primary.write(1, 70_000, b"first replicated write");
    for (b, id) in primary.ship(&k, "r1", 60, &fwd) {
        v.ingest(&b, &mut ok).unwrap();
        models.insert(id, primary.model.clone());
    }
    check_vault(&v, &k, &models, &scratch);

    // The tracker is lost: the log is gone, reopening says so, writes land untracked.
    let tracker = primary.log.as_ref().unwrap().tracker();
    primary.log = None;
    std::fs::remove_file(&g.log_path).unwrap();
    let e = ChangeLog::open(
        &g.log_path,
        Some(&tracker),
        SyncPolicy::Manual,
        ResyncThreshold::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResyncRequired, "{e}");
    primary.write(0, 200_000, &noise(5000, 2));
    primary.write(1, 0, &vec![0u8; CS as usize]);
    let changed = resync_into_chain(
        &v,
        &k,
        &mut primary,
        &pdir.join("vm-2.rclog"),
        &fwd,
        120,
        &mut models,
    );
    assert_eq!(changed, 2, "one chunk of each disk differs");
    check_vault(&v, &k, &models, &scratch);
    let older = v.points(G).unwrap()[1].clone();

    // Writes pass the resync threshold (half the disks): delta replication stops; resync.
    let total: usize = primary.model.iter().map(Vec::len).sum();
    let mut at = 0;
    while !primary.log.as_ref().unwrap().needs_resync() {
        primary.write(0, at % (300_000 - 40_000), &noise(40_000, at as u64 + 3));
        at += 40_000;
        assert!(at < 2 * total, "the threshold never tripped");
    }
    resync_into_chain(
        &v,
        &k,
        &mut primary,
        &pdir.join("vm-3.rclog"),
        &fwd,
        180,
        &mut models,
    );
    check_vault(&v, &k, &models, &scratch);

    // Replicate from the resync's log.
    primary.write(1, 100, b"after the resyncs");
    for (b, id) in primary.ship(&k, "r2", 240, &fwd) {
        v.ingest(&b, &mut ok).unwrap();
        models.insert(id, primary.model.clone());
    }
    check_vault(&v, &k, &models, &scratch);
    // The primary takes writes it never ships: the site is lost.
    primary.write(0, 4096, b"lost with the primary");
    primary.log = None;
    primary.state = None;

    // Unplanned failover to an older point, the recovered disks tracked from there.
    let rdir = d.join("recovered");
    v.failover(G, Selector::Id(older.id), &k, &rdir, &mut ok)
        .unwrap();
    let specs: Vec<DiskSpec> = older
        .disks
        .iter()
        .map(|x| DiskSpec::new(x.name.clone(), x.size))
        .collect();
    let from = TrackFrom {
        group: G.into(),
        point: older.id,
        seq: older.seq,
        chunk_size: older.chunk_size,
        time_ns: older.time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    let (rlog, rstate) = track(&from, specs, &k, rdir.join("rec.rclog"), false).unwrap();
    assert_eq!((rstate.next_seq, rstate.head), (older.seq + 1, older.id));
    let mut rec = Site {
        dir: rdir.clone(),
        log: Some(rlog),
        state: Some(rstate),
        model: models[&older.id].clone(),
        shipped: 0,
    };
    rec.check("failover to an older point");
    rec.write(0, 150_000, &noise(70_000, 4));
    rec.write(1, 3, b"written on the recovered VM");

    // Reprotect: the original site signs its stale disks; the recovery site ships the chunks
    // that differ as the reverse chain's first point; the original site applies it.
    let osig = pdir.join("original.rcpsig");
    let ostate = pdir.join("vm-01.rcapply");
    let odisks = primary.disks();
    let head = sign_for_apply(G, &refs(&odisks), &k, CS, &osig, &ostate, false, &mut ok).unwrap();
    let sig = replicore::resync::point_sig::PointSignature::load(&osig, &k).unwrap();
    assert_eq!(sig.header(), head);
    // The disks' signature in memory has the same ids (its point id is drawn afresh).
    let again =
        replicore::resync::disk_sig::sign_disks(G, &refs(&odisks), &k, CS, &mut ok).unwrap();
    assert_eq!(again.disks, sig.disks);
    assert_ne!(again.point, sig.point);
    let rev = d.join("rev");
    std::fs::create_dir(&rev).unwrap();
    rec.log = None;
    let rdisks = rec.disks();
    let options = ResyncOptions {
        time: Some(t(400)),
        ..ResyncOptions::default()
    };
    let r = resync_ship(
        &sig,
        &refs(&rdisks),
        &k,
        rdir.join("rev.rclog"),
        &rev,
        &options,
        &mut ok,
    )
    .unwrap();
    assert!(r.changed_chunks > 0 && r.changed_chunks < r.chunks, "{r:?}");
    rec.log = Some(r.log);
    rec.state = Some(r.state);
    // Dropped into the forward vault, the reverse point is refused: it follows no point there.
    let e = v.ingest(&r.bundle.path, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "{e}");
    // Another key at apply: refused, nothing written.
    let e = apply(&r.bundle.path, &key(22), &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // A damaged bundle: refused before a byte is written.
    let bad = d.join("bad.rcb");
    let mut bytes = std::fs::read(&r.bundle.path).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    assert!(apply(&bad, &k, &refs(&odisks), &ostate, &mut ok).is_err());
    primary.check("refused applies");
    let a = apply(&r.bundle.path, &k, &refs(&odisks), &ostate, &mut ok).unwrap();
    assert_eq!(a.seq, 1);
    primary.model = rec.model.clone();
    primary.check("after the reverse resync");
    // Again: the disks hold it.
    let e = apply(&r.bundle.path, &k, &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // Whoever can write the original site's inbox forges the next point (the right parent and
    // sequence number, signed with their own key): refused, the disks untouched.
    let forged = forge_next(d, &r.bundle.path, &key(66));
    let e = apply(&forged, &k, &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    primary.check("a forged reverse point");

    // Reverse replication, applied in order; a gap, a replay and a fork are refused.
    rec.write(0, 10, b"reverse one");
    let b1 = rec.ship(&k, "rev1", 460, &rev);
    rec.write(1, 20, b"reverse two");
    let b2 = rec.ship(&k, "rev2", 520, &rev);
    let e = apply(&b2[0].0, &k, &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "a gap: {e}");
    assert!(e.to_string().contains("gap"), "{e}");
    apply(&b1[0].0, &k, &refs(&odisks), &ostate, &mut ok).unwrap();
    apply(&b2[0].0, &k, &refs(&odisks), &ostate, &mut ok).unwrap();
    let e = apply(&b1[0].0, &k, &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "a replay: {e}");
    // A forward point of the same group, same seq as the next: a fork.
    let st = ApplyState::load(&ostate).unwrap();
    let fork = v
        .points(G)
        .unwrap()
        .into_iter()
        .find(|p| p.seq == st.next_seq)
        .expect("a forward point with the reverse chain's next seq");
    let b = std::fs::read_dir(&fwd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|b| Bundle::open(b).is_ok_and(|b| b.point_id() == fork.id))
        .unwrap();
    let e = apply(&b, &k, &refs(&odisks), &ostate, &mut ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ChainBroken, "a fork: {e}");
    assert!(e.to_string().contains("fork"), "{e}");
    primary.model = rec.model.clone();
    primary.check("reverse replication");

    // Planned failback: the recovered VM stops after its last writes; they ship and apply.
    rec.write(0, 250_000, &noise(30_000, 5));
    for (b, _) in rec.ship(&k, "final", 580, &rev) {
        apply(&b, &k, &refs(&odisks), &ostate, &mut ok).unwrap();
    }
    primary.model = rec.model.clone();
    primary.check("planned failback");
    for i in 0..2 {
        assert_eq!(
            std::fs::read(primary.image(i)).unwrap(),
            std::fs::read(rec.image(i)).unwrap()
        );
    }
    rec.log = None;

    // Reprotect forward: the original disks resync into the original chain.
    resync_into_chain(
        &v,
        &k,
        &mut primary,
        &pdir.join("vm-4.rclog"),
        &fwd,
        600,
        &mut models,
    );
    check_vault(&v, &k, &models, &scratch);

    // Replicate.
    primary.write(1, 1000, b"protected again");
    for (b, id) in primary.ship(&k, "r3", 660, &fwd) {
        v.ingest(&b, &mut ok).unwrap();
        models.insert(id, primary.model.clone());
    }
    primary.check("replicating again");
    check_vault(&v, &k, &models, &scratch);

    // Prune and GC across the resync points: each kept point still fails over to its model.
    let before = v.points(G).unwrap().len();
    let policy = RetentionPolicy {
        window_hours: 1,
        app_every_hours: None,
        extra_hourly: 0,
        keep_last: 2,
    };
    let report = v.prune(&policy, t(3 * 3600)).unwrap();
    assert!(report.pruned() > 0, "{report:?}");
    v.gc(&mut ok).unwrap();
    let kept = v.points(G).unwrap();
    assert_eq!(kept.len(), before - report.pruned());
    assert!(kept.len() >= 2);
    check_vault(&v, &k, &models, &scratch);
    assert!(v.verify(Some(&k), &mut ok).unwrap().is_ok());
}
