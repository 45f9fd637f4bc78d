//! Ownership of opaque handles and checking of pointers from C. Every raw pointer cast in the
//! crate lives here.
//!
//! A handle type is a zero-sized `#[repr(C)]` struct that C sees only through pointers; it is
//! tied to the Rust value behind it by [`Handle::Inner`]. Handles are created with
//! [`into_raw`] (a `Box`; C owns it and gives it back to the type's `_free`, which calls
//! [`free`]) and borrowed with [`as_ref`] and [`as_mut`].

use std::ffi::CStr;

use crate::last_error;
use crate::status::replicore_status;

/// Ties an opaque C handle type to the Rust value it points to (always boxed).
///
/// # Safety
///
/// Implement only for a zero-sized handle struct (opaque to C) that is never constructed in Rust,
/// so that every `*mut Self` handed to C came from [`into_raw`] for the same `Inner`.
pub(crate) unsafe trait Handle {
    type Inner;
}

/// Why a call failed before or inside the library.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A NULL pointer where one is required; the argument's name.
    Null(&'static str),
    /// A library error.
    Lib(replicore::Error),
}

impl From<replicore::Error> for Failure {
    fn from(e: replicore::Error) -> Self {
        Failure::Lib(e)
    }
}

impl Failure {
    /// Records the message as the thread's last error and returns the status.
    fn into_status(self) -> replicore_status {
        match self {
            Failure::Null(name) => {
                last_error::set(&format!("argument `{name}` is NULL; pass a valid pointer"));
                replicore_status::REPLICORE_ERR_NULL_PARAMETER
            }
            Failure::Lib(e) => {
                last_error::set(&e.to_string());
                replicore_status::from_kind(e.kind())
            }
        }
    }
}

/// Runs the body of a status-returning export: panics are caught, failures recorded.
pub(crate) fn run(body: impl FnOnce() -> Result<(), Failure>) -> replicore_status {
    crate::ffi_boundary! {
        match body() {
            Ok(()) => replicore_status::REPLICORE_OK,
            Err(f) => f.into_status(),
        }
    }
}

/// Moves `inner` to the heap and hands C the pointer; the caller's `_free` gives it back.
pub(crate) fn into_raw<H: Handle>(inner: H::Inner) -> *mut H {
    Box::into_raw(Box::new(inner)).cast()
}

/// Borrows the value behind a handle; NULL is a [`Failure::Null`] naming the argument.
///
/// # Safety
///
/// `ptr` is NULL or came from [`into_raw`] for `H` and has not been freed; nothing mutates it
/// during `'a`.
pub(crate) unsafe fn as_ref<'a, H: Handle>(
    ptr: *const H,
    name: &'static str,
) -> Result<&'a H::Inner, Failure> {
    // SAFETY: per this function's contract, a non-NULL `ptr` points to a live `H::Inner`.
    unsafe { ptr.cast::<H::Inner>().as_ref() }.ok_or(Failure::Null(name))
}

/// Mutably borrows the value behind a handle; NULL is a [`Failure::Null`] naming the argument.
///
/// # Safety
///
/// As for [`as_ref`], and nothing else accesses it during `'a`.
pub(crate) unsafe fn as_mut<'a, H: Handle>(
    ptr: *mut H,
    name: &'static str,
) -> Result<&'a mut H::Inner, Failure> {
    // SAFETY: per this function's contract, a non-NULL `ptr` points to a live, unaliased value.
    unsafe { ptr.cast::<H::Inner>().as_mut() }.ok_or(Failure::Null(name))
}

/// Frees a handle made by [`into_raw`]; NULL is accepted and ignored.
///
/// # Safety
///
/// `ptr` is NULL or came from [`into_raw`] for `H` and has not been freed.
pub(crate) unsafe fn free<H: Handle>(ptr: *mut H) {
    if !ptr.is_null() {
        // SAFETY: per this function's contract, `ptr` owns a live boxed `H::Inner`.
        drop(unsafe { Box::from_raw(ptr.cast::<H::Inner>()) });
    }
}

/// Checks an out-parameter before any work is done; it is written only on success.
///
/// # Safety
///
/// `ptr` is NULL or valid for writes of `T` during `'a`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, name: &'static str) -> Result<&'a mut T, Failure> {
    // SAFETY: per this function's contract. `T` is plain data written whole (no drop of an
    // uninitialised old value happens through `*out = v` for the `Copy` types used here).
    unsafe { ptr.as_mut() }.ok_or(Failure::Null(name))
}

/// Borrows a byte buffer given as pointer and length; NULL is allowed only with length 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes during `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &'static str,
) -> Result<&'a [u8], Failure> {
    // SAFETY: per this function's contract.
    unsafe { slice(ptr, len, name) }
}

/// Borrows a NUL-terminated UTF-8 string; bad UTF-8 is InvalidArgument.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string valid during `'a`.
pub(crate) unsafe fn str<'a>(
    ptr: *const std::ffi::c_char,
    name: &'static str,
) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::Null(name));
    }
    // SAFETY: per this function's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|e| {
        replicore::Error::invalid_argument(name, format!("not valid UTF-8: {e}")).into()
    })
}

/// Borrows an array of `len` values given as pointer and length; NULL is allowed only with
/// length 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` values of `T` during `'a`.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &'static str,
) -> Result<&'a [T], Failure> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(Failure::Null(name)),
        // SAFETY: per this function's contract.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}
