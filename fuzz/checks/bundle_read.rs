//! The checks of the `bundle_read` fuzz target, shared with `tests/fuzz_regressions.rs`: a
//! bundle opened and verified from arbitrary bytes (through a scratch file), with and without
//! the fixed key.
//!
//! Invariants: never panics, never allocates past its caps; a bundle that verifies without the
//! key has exactly the blobs its footer counts, each referenced; one that also verifies with
//! the key decodes every blob to plaintext that covers every extent.

#[path = "fixed_key.rs"]
mod fixed_key;

use std::io::Write;

use replicore::bundle::Bundle;
use replicore::{Source, blob};

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer.
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn scratch() -> std::path::PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let t = std::thread::current().id();
    dir.join(format!(
        "replicore-fuzz-bundle-{}-{t:?}.rcb",
        std::process::id()
    ))
}

fn check_one(data: &[u8]) {
    let path = scratch();
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .expect("writing the scratch bundle");
    let result = std::panic::catch_unwind(|| inspect(&path));
    let _ = std::fs::remove_file(&path);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn inspect(path: &std::path::Path) {
    let Ok(b) = Bundle::open(path) else {
        return;
    };
    let Ok(stats) = b.verify() else {
        return;
    };
    assert_eq!(stats.blobs, b.blob_count());
    let key = fixed_key::key();
    if b.verify_with_key(&key).is_err() {
        return;
    }
    let mut lens = std::collections::HashMap::new();
    b.for_each_blob(|id, stored| {
        let plain = blob::decode(&key, id, stored).expect("a verified bundle's blobs decode");
        lens.insert(*id, plain.len() as u64);
        Ok(())
    })
    .expect("a verified bundle reads again");
    for d in b.disks() {
        for e in d.extents.iter() {
            if let Source::Blob { id, offset } = e.source {
                assert!(offset + e.len <= lens[&id], "extent beyond its blob");
            }
        }
    }
}
