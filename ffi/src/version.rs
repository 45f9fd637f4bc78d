//! Version numbers. The constants are literals so that cbindgen can write them into the header;
//! a test checks them against `Cargo.toml`.

use std::ffi::c_char;

/// Major version of the library (as in `Cargo.toml`).
pub const REPLICORE_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const REPLICORE_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const REPLICORE_VERSION_PATCH: u32 = 0;
/// The version as one number, `MAJOR * 1000000 + MINOR * 1000 + PATCH`, for `#if` comparisons.
pub const REPLICORE_VERSION_NUMBER: u32 =
    REPLICORE_VERSION_MAJOR * 1_000_000 + REPLICORE_VERSION_MINOR * 1_000 + REPLICORE_VERSION_PATCH;
/// The version as a string.
pub const REPLICORE_VERSION_STRING: &str = "0.1.0";
/// The ABI revision: increases whenever a function signature, struct layout or status value
/// changes incompatibly. Compare it with `replicore_abi_version()` at run time.
pub const REPLICORE_ABI_VERSION: u32 = 4;

/// The library's version string (`"0.1.0"`), static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_version() -> *const c_char {
    crate::ffi_boundary! { VERSION_CSTR.as_ptr() }
}

/// The library's composed version number (`REPLICORE_VERSION_NUMBER` of the build that made it).
#[unsafe(no_mangle)]
pub extern "C" fn replicore_version_number() -> u32 {
    crate::ffi_boundary! { REPLICORE_VERSION_NUMBER }
}

/// The library's ABI revision (`REPLICORE_ABI_VERSION` of the build that made it). A host
/// compiled against another revision must not use the library.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_abi_version() -> u32 {
    crate::ffi_boundary! { REPLICORE_ABI_VERSION }
}

const VERSION_CSTR: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => panic!("the package version contains a NUL byte"),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn cargo(part: &str) -> u32 {
        part.parse().unwrap()
    }

    #[test]
    fn constants_match_cargo_toml() {
        assert_eq!(
            REPLICORE_VERSION_MAJOR,
            cargo(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            REPLICORE_VERSION_MINOR,
            cargo(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            REPLICORE_VERSION_PATCH,
            cargo(env!("CARGO_PKG_VERSION_PATCH"))
        );
        assert_eq!(REPLICORE_VERSION_STRING, env!("CARGO_PKG_VERSION"));
        assert_eq!(REPLICORE_VERSION_STRING, replicore::VERSION);
        let composed = cargo(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
            + cargo(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
            + cargo(env!("CARGO_PKG_VERSION_PATCH"));
        assert_eq!(REPLICORE_VERSION_NUMBER, composed);
        assert_eq!(replicore_version_number(), composed);
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(replicore_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn abi_version_matches_the_soname() {
        assert_eq!(
            REPLICORE_ABI_VERSION.to_string(),
            env!("REPLICORE_SONAME_ABI"),
            "bump the ABI in ffi/build.rs together with REPLICORE_ABI_VERSION"
        );
        assert_eq!(replicore_abi_version(), REPLICORE_ABI_VERSION);
    }
}
