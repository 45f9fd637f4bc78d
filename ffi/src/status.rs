//! `replicore_status`: the result of every fallible C call.
//!
//! The values are ABI. They are grouped in ranges by area; a value is never renumbered, and a
//! retired value is never reused. A status handed in from C is taken as `uint32_t` and converted
//! fallibly ([`replicore_status::from_u32`]).

use std::ffi::c_char;

use replicore::ErrorKind;

/// The result of a fallible call: `REPLICORE_OK` (0) or the reason it failed.
/// `replicore_last_error_message()` then tells the details.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum replicore_status {
    /// Success.
    REPLICORE_OK = 0,

    // 1-99: how the call was made.
    /// A pointer argument that must not be NULL was NULL.
    REPLICORE_ERR_NULL_PARAMETER = 1,
    /// An argument cannot be honoured.
    REPLICORE_ERR_INVALID_ARGUMENT = 2,
    /// A size or count is beyond a documented limit.
    REPLICORE_ERR_LIMIT_EXCEEDED = 3,
    /// A progress callback returned non-zero.
    REPLICORE_ERR_CANCELLED = 4,
    /// A bug inside replicore was caught at the boundary; the handle involved should be freed.
    REPLICORE_ERR_PANIC = 99,

    // 100-199: the environment.
    /// The operating system refused an operation.
    REPLICORE_ERR_IO = 100,
    /// A named thing does not exist.
    REPLICORE_ERR_NOT_FOUND = 101,
    /// A thing to be created exists already.
    REPLICORE_ERR_ALREADY_EXISTS = 102,
    /// Another user holds a lock this operation needs.
    REPLICORE_ERR_LOCKED = 103,

    // 200-299: integrity of stored or received data.
    /// Stored or received bytes are damaged.
    REPLICORE_ERR_CORRUPT = 200,
    /// A file of a format version this build cannot read.
    REPLICORE_ERR_UNSUPPORTED_VERSION = 201,
    /// Wrong key or passphrase, or tampered data.
    REPLICORE_ERR_AUTHENTICATION = 202,

    // 300-399: replication state.
    /// A recovery point does not continue its chain.
    REPLICORE_ERR_CHAIN_BROKEN = 300,
    /// Delta replication cannot continue; a full resync is needed.
    REPLICORE_ERR_RESYNC_REQUIRED = 301,
}

use replicore_status::*;

impl replicore_status {
    /// Every status, for tables and tests.
    pub(crate) const ALL: [replicore_status; 15] = [
        REPLICORE_OK,
        REPLICORE_ERR_NULL_PARAMETER,
        REPLICORE_ERR_INVALID_ARGUMENT,
        REPLICORE_ERR_LIMIT_EXCEEDED,
        REPLICORE_ERR_CANCELLED,
        REPLICORE_ERR_PANIC,
        REPLICORE_ERR_IO,
        REPLICORE_ERR_NOT_FOUND,
        REPLICORE_ERR_ALREADY_EXISTS,
        REPLICORE_ERR_LOCKED,
        REPLICORE_ERR_CORRUPT,
        REPLICORE_ERR_UNSUPPORTED_VERSION,
        REPLICORE_ERR_AUTHENTICATION,
        REPLICORE_ERR_CHAIN_BROKEN,
        REPLICORE_ERR_RESYNC_REQUIRED,
    ];

    /// The status with value `v`, if there is one.
    pub fn from_u32(v: u32) -> Option<replicore_status> {
        Self::ALL.into_iter().find(|s| *s as u32 == v)
    }

    /// The status a library error kind maps to. One exhaustive match: the core crate's
    /// `ffi-exhaustive` feature drops `#[non_exhaustive]`, so a new kind fails to compile here
    /// until it has a code.
    pub fn from_kind(kind: ErrorKind) -> replicore_status {
        match kind {
            ErrorKind::Io => REPLICORE_ERR_IO,
            ErrorKind::Corrupt => REPLICORE_ERR_CORRUPT,
            ErrorKind::Authentication => REPLICORE_ERR_AUTHENTICATION,
            ErrorKind::InvalidArgument => REPLICORE_ERR_INVALID_ARGUMENT,
            ErrorKind::UnsupportedVersion => REPLICORE_ERR_UNSUPPORTED_VERSION,
            ErrorKind::ChainBroken => REPLICORE_ERR_CHAIN_BROKEN,
            ErrorKind::NotFound => REPLICORE_ERR_NOT_FOUND,
            ErrorKind::AlreadyExists => REPLICORE_ERR_ALREADY_EXISTS,
            ErrorKind::Locked => REPLICORE_ERR_LOCKED,
            ErrorKind::Cancelled => REPLICORE_ERR_CANCELLED,
            ErrorKind::LimitExceeded => REPLICORE_ERR_LIMIT_EXCEEDED,
            ErrorKind::ResyncRequired => REPLICORE_ERR_RESYNC_REQUIRED,
        }
    }

    /// The status's name as a NUL-terminated static string.
    fn name(self) -> &'static std::ffi::CStr {
        match self {
            REPLICORE_OK => c"REPLICORE_OK",
            REPLICORE_ERR_NULL_PARAMETER => c"REPLICORE_ERR_NULL_PARAMETER",
            REPLICORE_ERR_INVALID_ARGUMENT => c"REPLICORE_ERR_INVALID_ARGUMENT",
            REPLICORE_ERR_LIMIT_EXCEEDED => c"REPLICORE_ERR_LIMIT_EXCEEDED",
            REPLICORE_ERR_CANCELLED => c"REPLICORE_ERR_CANCELLED",
            REPLICORE_ERR_PANIC => c"REPLICORE_ERR_PANIC",
            REPLICORE_ERR_IO => c"REPLICORE_ERR_IO",
            REPLICORE_ERR_NOT_FOUND => c"REPLICORE_ERR_NOT_FOUND",
            REPLICORE_ERR_ALREADY_EXISTS => c"REPLICORE_ERR_ALREADY_EXISTS",
            REPLICORE_ERR_LOCKED => c"REPLICORE_ERR_LOCKED",
            REPLICORE_ERR_CORRUPT => c"REPLICORE_ERR_CORRUPT",
            REPLICORE_ERR_UNSUPPORTED_VERSION => c"REPLICORE_ERR_UNSUPPORTED_VERSION",
            REPLICORE_ERR_AUTHENTICATION => c"REPLICORE_ERR_AUTHENTICATION",
            REPLICORE_ERR_CHAIN_BROKEN => c"REPLICORE_ERR_CHAIN_BROKEN",
            REPLICORE_ERR_RESYNC_REQUIRED => c"REPLICORE_ERR_RESYNC_REQUIRED",
        }
    }
}

/// The name of a status value (`"REPLICORE_ERR_CORRUPT"`), or NULL for a value that is not a
/// status. The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_status_name(status: u32) -> *const c_char {
    crate::ffi_boundary! {
        match replicore_status::from_u32(status) {
            Some(s) => s.name().as_ptr(),
            None => std::ptr::null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_status() {
        let mut seen = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            let s = replicore_status::from_kind(k);
            assert!(!matches!(
                s,
                REPLICORE_OK | REPLICORE_ERR_PANIC | REPLICORE_ERR_NULL_PARAMETER
            ));
            assert!(seen.insert(s), "{k:?} shares {s:?}");
        }
    }

    #[test]
    fn values_round_trip_and_unknown_is_none() {
        for s in replicore_status::ALL {
            assert_eq!(replicore_status::from_u32(s as u32), Some(s));
            assert!(!replicore_status_name(s as u32).is_null());
        }
        for v in [5u32, 98, 104, 199, 203, 302, u32::MAX] {
            assert_eq!(replicore_status::from_u32(v), None);
            assert!(replicore_status_name(v).is_null());
        }
    }

    /// The numbers are ABI: this table is the contract, and must only ever grow.
    #[test]
    fn values_are_frozen() {
        let table = [
            (REPLICORE_OK, 0),
            (REPLICORE_ERR_NULL_PARAMETER, 1),
            (REPLICORE_ERR_INVALID_ARGUMENT, 2),
            (REPLICORE_ERR_LIMIT_EXCEEDED, 3),
            (REPLICORE_ERR_CANCELLED, 4),
            (REPLICORE_ERR_PANIC, 99),
            (REPLICORE_ERR_IO, 100),
            (REPLICORE_ERR_NOT_FOUND, 101),
            (REPLICORE_ERR_ALREADY_EXISTS, 102),
            (REPLICORE_ERR_LOCKED, 103),
            (REPLICORE_ERR_CORRUPT, 200),
            (REPLICORE_ERR_UNSUPPORTED_VERSION, 201),
            (REPLICORE_ERR_AUTHENTICATION, 202),
            (REPLICORE_ERR_CHAIN_BROKEN, 300),
            (REPLICORE_ERR_RESYNC_REQUIRED, 301),
        ];
        for (s, v) in table {
            assert_eq!(s as u32, v, "{s:?}");
        }
    }
}
