//! The installed static library in a Rust program: two copies of the Rust standard library in
//! one binary, the host's and the one inside libreplicore.a, which ffi/pkg/localize.sh made
//! local. The link must succeed (the archive's COMDAT group for `rust_eh_personality` is
//! renamed, or the host's group of the same name would replace it), the host must still catch
//! its own panics, and replicore must work, its worker threads included.
//!
//! Build: ffi/tests/run-c-tests.sh (`EXPECTED_VERSION=x.y.z rustc --edition 2024 rust_host.rs
//! -L PREFIX/lib -l static=replicore`). Prints "N passed, N failed"; exits non-zero on any
//! failure.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[repr(C)]
#[derive(Default)]
struct ApplyStats {
    data_chunks: u64,
    zero_chunks: u64,
    data_bytes: u64,
    final_size: u64,
}

type Progress = Option<unsafe extern "C" fn(*mut c_void, u64, u64) -> c_int>;

unsafe extern "C" {
    fn replicore_version() -> *const c_char;
    fn replicore_last_error_message() -> *const c_char;
    fn replicore_status_name(status: u32) -> *const c_char;
    fn replicore_resync(
        source: *const c_char,
        target: *const c_char,
        chunk_size: u32,
        callback: Progress,
        user: *mut c_void,
        stats_out: *mut ApplyStats,
    ) -> u32;
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in a temporary path")
}

fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the library returns NUL-terminated strings that stay valid until its next call
    // on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn main() {
    let (mut passed, mut failed) = (0, 0);
    let mut check = |ok: bool, what: &str| {
        if ok {
            passed += 1;
        } else {
            failed += 1;
            eprintln!("check failed: {what}");
        }
    };

    // The host's own panic, caught by the host's standard library.
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| panic!("the host's own panic"));
    check(caught.is_err(), "the host catches its own panic");

    // SAFETY: no arguments; the string is static.
    check(
        text(unsafe { replicore_version() }) == env!("EXPECTED_VERSION"),
        "replicore_version() is Cargo.toml's version",
    );

    // A local resync, hashed on replicore's worker threads.
    let dir = std::env::temp_dir().join(format!("replicore-rust-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (source, target) = (dir.join("source.img"), dir.join("target.img"));
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + (i >> 12)) as u8).collect();
    std::fs::write(&source, &data).expect("source image");
    let mut stats = ApplyStats::default();
    let (s, t) = (c_path(&source), c_path(&target));
    // SAFETY: both paths are NUL-terminated; no callback; `stats` is writable.
    let status = unsafe {
        replicore_resync(
            s.as_ptr(),
            t.as_ptr(),
            65536,
            None,
            std::ptr::null_mut(),
            &mut stats,
        )
    };
    check(status == 0, "replicore_resync succeeds");
    check(
        stats.final_size == data.len() as u64,
        "the target has the source's size",
    );
    check(
        std::fs::read(&target).ok() == Some(data),
        "the target is the source",
    );

    // A failing call: a status, its name and the message.
    let missing = c_path(&dir.join("missing.img"));
    // SAFETY: as above.
    let status = unsafe {
        replicore_resync(
            missing.as_ptr(),
            t.as_ptr(),
            65536,
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    check(status != 0, "a missing source fails");
    // SAFETY: any value is accepted; the name is static.
    let name = unsafe { replicore_status_name(status) };
    check(
        !name.is_null() && text(name).starts_with("REPLICORE_ERR_"),
        "the status has a name",
    );
    // SAFETY: no arguments.
    check(
        text(unsafe { replicore_last_error_message() }).contains("missing.img"),
        "the message names the file",
    );

    std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
