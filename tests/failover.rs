//! Failover as a host relies on it (issue 16): all or nothing across a group's disks (a
//! cancellation at any progress call, or a failure on any disk, leaves no image and no
//! temporary file), and a missing output directory is created.

mod common;

use std::path::Path;

use common::*;
use replicore::ErrorKind;
use replicore::log::MarkerKind;
use replicore::vault::{Selector, Vault};

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn failover_is_all_or_nothing_and_creates_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = seeded(dir.path(), key(5));
    g.write(0, 70_000, &noise(200_000, 3));
    g.write(1, 1000, b"second disk");
    let model = g.mark(MarkerKind::Crash, "p", 60);
    let mut bundles = vec![g.base.clone()];
    bundles.extend(g.rotate_and_ship(1));
    let v = Vault::create(dir.path().join("vault")).unwrap();
    for b in &bundles {
        v.ingest(b, &mut ok).unwrap();
    }
    // How many progress calls a whole failover makes.
    let mut calls = 0u32;
    let probe = dir.path().join("probe");
    v.failover("vm-01", Selector::Latest, &g.key, &probe, &mut |_, _| {
        calls += 1;
        true
    })
    .unwrap();
    assert!(calls >= 2, "{calls} progress calls");
    // Cancelled at each call in turn: nothing published, nothing left.
    for stop in 1..=calls {
        let out = dir.path().join(format!("cancel-{stop}/new/dir"));
        let mut n = 0u32;
        let e = v
            .failover("vm-01", Selector::Latest, &g.key, &out, &mut |_, _| {
                n += 1;
                n < stop
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "stop {stop}: {e}");
        assert!(entries(&out).is_empty(), "stop {stop}: {:?}", entries(&out));
    }
    // (A cancellation at a call of the second disk is that disk failing: the first disk's
    // image, written by then, was not left behind.) An image in the way of the second disk:
    // refused before anything is written.
    let out = dir.path().join("failing");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("data.img"), b"in the way").unwrap();
    let e = v
        .failover("vm-01", Selector::Latest, &g.key, &out, &mut ok)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(entries(&out), ["data.img"]);
    // And a whole failover into a missing directory.
    let fresh = dir.path().join("a/b/c");
    let written = v
        .failover("vm-01", Selector::Latest, &g.key, &fresh, &mut ok)
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(std::fs::read(fresh.join("os.img")).unwrap(), model[0]);
    assert_eq!(std::fs::read(fresh.join("data.img")).unwrap(), model[1]);
}
