//! The thread's last error message.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// Replaces the thread's last error message. Interior NUL bytes become spaces.
pub(crate) fn set(message: &str) {
    let bytes: Vec<u8> = message
        .bytes()
        .map(|b| if b == 0 { b' ' } else { b })
        .collect();
    let msg = CString::new(bytes).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = msg);
}

/// The message of the last call on this thread that failed: what happened, where, and what to
/// do next. The empty string if no call on this thread has failed.
///
/// The pointer stays valid until the next call into replicore on this thread that fails
/// (including one made by a callback that re-enters the library); copy the text to keep it.
/// Successful calls leave it unchanged. Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn replicore_last_error_message() -> *const c_char {
    crate::ffi_boundary! {
        LAST.with(|l| l.borrow().as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn set_and_read_back_with_nul_replaced() {
        set("bad\0thing");
        // SAFETY: the pointer was just returned and nothing on this thread failed since.
        let s = unsafe { CStr::from_ptr(replicore_last_error_message()) };
        assert_eq!(s.to_str().unwrap(), "bad thing");
    }
}
