//! The committed C header is exactly what the pinned cbindgen generates from the sources.
//!
//! A stale header fails this test; `UPDATE_HEADER=1 cargo test -p replicore-ffi --test header`
//! rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_fresh() {
    let ffi = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = ffi.join("../include/replicore.h");
    let config = cbindgen::Config::from_file(ffi.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&ffi)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on ffi/src")
        .write(&mut generated);
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&header, &generated).expect("write include/replicore.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/replicore.h is stale: regenerate it with \
         `UPDATE_HEADER=1 cargo test -p replicore-ffi --test header` and commit it"
    );
}
