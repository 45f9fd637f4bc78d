//! The checks of the `vault_ingest` fuzz target, shared with `tests/fuzz_regressions.rs`: a
//! bundle made of arbitrary bytes ingested into a vault that holds the fixed base bundle
//! (`vault_base.rcb`, sealed under the fixed key), then verified and failed over.
//!
//! Invariants: never panics; a refused bundle leaves the vault as it was (its one point, and
//! verify finds nothing damaged); an accepted one leaves a vault that verifies without the key,
//! and failing over its newest point gives the disks at their sizes or a refusal
//! (Authentication, Corrupt), never wrong data silently.

#[path = "fixed_key.rs"]
mod fixed_key;

use std::io::Write;
use std::path::{Path, PathBuf};

use replicore::ErrorKind;
use replicore::vault::{Selector, Vault};

/// The base bundle the vault starts with (a two-disk group `vm`).
pub const BASE: &[u8] = include_bytes!("vault_base.rcb");

/// Runs every check on `data` as it is, and on `data` followed by a valid BLAKE3 trailer.
pub fn check(data: &[u8]) {
    check_one(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check_one(&sealed);
}

fn scratch() -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let t = std::thread::current().id();
    dir.join(format!("replicore-fuzz-vault-{}-{t:?}", std::process::id()))
}

fn check_one(data: &[u8]) {
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    let result = std::panic::catch_unwind(|| inspect(&dir, data));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn inspect(dir: &Path, data: &[u8]) {
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(bytes))
            .expect("writing a scratch file");
        p
    };
    let base = write("base.rcb", BASE);
    let bundle = write("fuzz.rcb", data);
    let v = Vault::create(dir.join("vault")).expect("creating the vault");
    v.ingest(&base, &mut |_, _| true)
        .expect("the fixed base ingests");
    let ingested = v.ingest(&bundle, &mut |_, _| true);
    let report = v.verify(None, &mut |_, _| true).expect("verify runs");
    assert!(report.is_ok(), "{report:?}");
    let groups = v.groups().expect("groups");
    let Ok(done) = ingested else {
        assert_eq!(groups, ["vm"], "a refused bundle added a group");
        assert_eq!(v.points("vm").expect("points").len(), 1);
        return;
    };
    let key = fixed_key::key();
    let out = dir.join(format!("out-{}", done.seq));
    std::fs::create_dir_all(&out).expect("creating the output directory");
    match v.failover(&done.group, Selector::Latest, &key, &out, &mut |_, _| true) {
        Ok(written) => {
            for m in written {
                let len = std::fs::metadata(&m.path).expect("the image exists").len();
                assert_eq!(len, m.size);
            }
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::Authentication | ErrorKind::Corrupt | ErrorKind::LimitExceeded
            ),
            "{e}"
        ),
    }
}
