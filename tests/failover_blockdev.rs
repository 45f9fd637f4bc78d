//! Failover onto block devices (a LUN, a logical volume), through Linux loop devices.
//!
//! Protects: a device of at least the disk's size receives every byte of the disk (its zeros
//! included: the device held other bytes), and keeps what lies past the disk; a device one
//! sector short is refused with nothing written; a device in use (mounted, or held open
//! exclusively) is refused.
//!
//! Needs root and `losetup`, so it is `#[ignore]`d in the default run; `.ci/run` runs it with
//! `--ignored` as root, and says loudly when it cannot.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::OpenOptionsExt;

use common::*;
use replicore::ErrorKind;
use replicore::log::MarkerKind;
use replicore::vault::{FailoverOptions, Selector, Vault};

fn device_bytes(dev: &std::path::Path) -> Vec<u8> {
    std::fs::read(dev).unwrap()
}

#[test]
#[ignore = "needs root and a loop device; .ci/run runs it with --ignored"]
fn failover_onto_block_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(6));
    g.write(0, 70_000, &noise(200_000, 3));
    let model = g.mark(MarkerKind::Crash, "p", 60);
    let mut bundles = vec![g.base.clone()];
    bundles.extend(g.rotate_and_ship(1));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    // Devices full of other bytes: 1 MiB for `os`, the data disk's size rounded up to a
    // sector for `data` (a loop device has whole sectors).
    let sector = |n: usize| n.div_ceil(512) * 512;
    let os_bytes = noise(1 << 20, 9);
    let data_bytes = vec![0xA5u8; sector(model[1].len())];
    let (os_f, data_f) = (dir.path().join("os.lun"), dir.path().join("data.lun"));
    std::fs::write(&os_f, &os_bytes).unwrap();
    std::fs::write(&data_f, &data_bytes).unwrap();
    let (os_d, data_d) = (Loop::attach(&os_f), Loop::attach(&data_f));
    let options = FailoverOptions {
        replace: false,
        targets: vec![
            ("os".into(), os_d.0.clone()),
            ("data".into(), data_d.0.clone()),
        ],
    };
    let mut last = (0, 0);
    let written = v
        .failover_with(
            "vm-01",
            Selector::Latest,
            &g.key,
            "",
            &options,
            &mut |d, t| {
                last = (d, t);
                true
            },
        )
        .unwrap();
    let total = (model[0].len() + model[1].len()) as u64;
    assert_eq!(last, (total, total));
    assert!(written.iter().all(|m| m.onto_existing));
    for m in &written {
        eprintln!(
            "{}: {} bytes from blobs, {} zeroed by the device (discard / write-zeroes)",
            m.disk, m.data_bytes, m.zeroed_bytes
        );
    }
    let os_now = device_bytes(&os_d.0);
    assert_eq!(&os_now[..model[0].len()], &model[0][..]);
    assert_eq!(&os_now[model[0].len()..], &os_bytes[model[0].len()..]);
    let data_now = device_bytes(&data_d.0);
    assert_eq!(
        &data_now[..model[1].len()],
        &model[1][..],
        "zeros written over 0xA5"
    );
    assert_eq!(&data_now[model[1].len()..], &data_bytes[model[1].len()..]);

    // One sector short of the disk: refused, nothing written.
    let short_f = dir.path().join("short.lun");
    let short_bytes = noise(sector(model[0].len()) - 512, 4);
    std::fs::write(&short_f, &short_bytes).unwrap();
    let short = Loop::attach(&short_f);
    let e = v
        .failover_with(
            "vm-01",
            Selector::Latest,
            &g.key,
            "",
            &FailoverOptions {
                replace: false,
                targets: vec![
                    ("os".into(), short.0.clone()),
                    ("data".into(), data_d.0.clone()),
                ],
            },
            &mut ok,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("block device"), "{e}");
    assert_eq!(device_bytes(&short.0), short_bytes);

    // A device held open exclusively (as a mounted one is): refused as in use.
    let _held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&data_d.0)
        .unwrap();
    let point = v.select("vm-01", Selector::Latest).unwrap().id;
    let e = v
        .materialize_onto("vm-01", point, "data", &g.key, &data_d.0, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
}
