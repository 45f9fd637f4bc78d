//! Checked arithmetic and conversions for numbers that come from untrusted bytes.
//!
//! Each helper names what it computes, so an overflow reads as "corrupt `record end`: ..."
//! rather than a panic or a wrapped value.

use crate::error::{Error, Result};

/// `a + b`, or Corrupt naming `what` when it overflows.
pub fn add(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| Error::corrupt(what, None, format!("{a} + {b} overflows 64 bits")))
}

/// `a * b`, or Corrupt naming `what` when it overflows.
pub fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| Error::corrupt(what, None, format!("{a} * {b} overflows 64 bits")))
}

/// `a - b`, or Corrupt naming `what` when `b > a`.
pub fn sub(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_sub(b)
        .ok_or_else(|| Error::corrupt(what, None, format!("{a} - {b} is negative")))
}

/// A stored length in bytes as `usize`, refused (Corrupt) when above `cap`. Call this before
/// allocating.
pub fn len(value: u64, cap: usize, what: &str) -> Result<usize> {
    match usize::try_from(value) {
        Ok(n) if n <= cap => Ok(n),
        _ => Err(Error::corrupt(
            what,
            None,
            format!("a length of {value} bytes exceeds the cap of {cap} bytes"),
        )),
    }
}

/// A caller-supplied length in bytes as `usize`, refused (LimitExceeded) when above `cap`.
pub fn arg_len(value: u64, cap: usize, what: &str) -> Result<usize> {
    match usize::try_from(value) {
        Ok(n) if n <= cap => Ok(n),
        _ => Err(Error::limit_exceeded(what, cap as u64, value, "bytes")),
    }
}

/// A `usize` (a length in memory) as the `u64` stored on disk.
pub fn to_u64(value: usize) -> u64 {
    // usize is at most 64 bits on every platform Rust supports.
    value as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn overflow_is_corrupt_not_panic() {
        assert_eq!(
            add(u64::MAX, 1, "end").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            mul(u64::MAX, 2, "size").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(sub(1, 2, "gap").unwrap_err().kind(), ErrorKind::Corrupt);
        assert_eq!(add(1, 2, "x").unwrap(), 3);
    }

    #[test]
    fn caps_are_inclusive() {
        assert_eq!(len(10, 10, "name").unwrap(), 10);
        let e = len(11, 10, "name").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("cap of 10"), "{e}");
        assert_eq!(
            arg_len(11, 10, "label").unwrap_err().kind(),
            ErrorKind::LimitExceeded
        );
        assert_eq!(len(u64::MAX, usize::MAX, "x").is_ok(), usize::BITS == 64);
    }
}
