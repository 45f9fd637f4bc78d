//! The panic boundary: every exported function runs its body inside `ffi_boundary!`, so no
//! Rust panic ever unwinds into C. The library is built with `panic = "unwind"` (see the
//! workspace `Cargo.toml`); with `abort` there would be nothing to catch.
//!
//! On a panic the function returns its type's `Fallback` (`REPLICORE_ERR_PANIC`, NULL, 0,
//! false, nothing) and the thread's last error says what happened.

use std::any::Any;

use crate::status::replicore_status;

/// What an exported function returns when its body panicked.
pub(crate) trait Fallback {
    fn fallback() -> Self;
}

impl Fallback for replicore_status {
    fn fallback() -> Self {
        replicore_status::REPLICORE_ERR_PANIC
    }
}

impl<T> Fallback for *const T {
    fn fallback() -> Self {
        std::ptr::null()
    }
}

impl<T> Fallback for *mut T {
    fn fallback() -> Self {
        std::ptr::null_mut()
    }
}

impl Fallback for () {
    fn fallback() -> Self {}
}

impl Fallback for u32 {
    fn fallback() -> Self {
        0
    }
}

impl Fallback for u64 {
    fn fallback() -> Self {
        0
    }
}

/// A panicked predicate answers no.
impl Fallback for bool {
    fn fallback() -> Self {
        false
    }
}

/// Records a caught panic as the thread's last error.
pub(crate) fn record_panic(payload: Box<dyn Any + Send>) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    crate::last_error::set(&format!(
        "internal error in replicore (a bug: please report it): {what}; free the handle involved"
    ));
}

/// Runs the body, catching any panic and returning the return type's fallback instead.
#[macro_export]
#[doc(hidden)]
macro_rules! ffi_boundary {
    ($($body:tt)*) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => {
                $crate::panic::record_panic(payload);
                <_ as $crate::panic::Fallback>::fallback()
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use crate::handle::{Failure, run};
    use crate::status::replicore_status;

    fn panicking_pointer() -> *const u8 {
        crate::ffi_boundary! {
            if std::hint::black_box(true) {
                panic!("boom in pointer");
            }
            &0u8 as *const u8
        }
    }

    fn last() -> String {
        // SAFETY: the pointer is valid until the next failing call on this thread.
        unsafe { CStr::from_ptr(crate::last_error::replicore_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_fallbacks_with_a_message() {
        let status = run(|| -> Result<(), Failure> { panic!("boom {}", 42) });
        assert_eq!(status, replicore_status::REPLICORE_ERR_PANIC);
        assert!(last().contains("boom 42"), "{}", last());
        assert!(panicking_pointer().is_null());
        assert!(last().contains("boom in pointer"), "{}", last());
    }
}
