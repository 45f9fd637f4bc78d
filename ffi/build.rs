//! Gives the shared library its soname, `libreplicore.so.<ABI version>`, so that hosts linked
//! against one ABI revision never load an incompatible one (see `REPLICORE_ABI_VERSION` in
//! src/version.rs; the test `abi_version_matches_the_soname` keeps the two equal).

/// The ABI revision the soname carries (equal to `REPLICORE_ABI_VERSION`).
const ABI: u32 = 4;

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libreplicore.so.{ABI}");
    }
    println!("cargo:rustc-env=REPLICORE_SONAME_ABI={ABI}");
    println!("cargo:rerun-if-changed=build.rs");
}
