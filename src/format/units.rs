//! Numbers in messages carry their unit: `65536 bytes (64 KiB)`, `3 records`, never a bare
//! figure the operator has to guess the meaning of.

/// `n` followed by `unit`; a byte count that is a whole number of KiB, MiB, ... also gets that
/// form (`65536 bytes (64 KiB)`), the way limits are documented.
pub fn quantity(n: u64, unit: &str) -> String {
    if unit == "bytes" {
        bytes(n)
    } else {
        format!("{n} {unit}")
    }
}

/// `n` bytes, as [`quantity`] writes them.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    // The largest unit that divides `n` exactly.
    let whole = (0..UNITS.len())
        .rev()
        .map(|u| (u, 1u64 << (10 * (u + 1))))
        .find(|&(_, scale)| n >= scale && n % scale == 0);
    match whole {
        Some((u, scale)) => format!("{n} bytes ({} {})", n / scale, UNITS[u]),
        None => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_both_ways() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(3000), "3000 bytes");
        assert_eq!(bytes(3072), "3072 bytes (3 KiB)");
        assert_eq!(bytes(4096), "4096 bytes (4 KiB)");
        assert_eq!(bytes(8 << 20), "8388608 bytes (8 MiB)");
        assert_eq!(bytes(1536 << 20), "1610612736 bytes (1536 MiB)");
        assert_eq!(bytes(64 << 40), "70368744177664 bytes (64 TiB)");
        assert_eq!(bytes((64 << 40) + 1), "70368744177665 bytes");
        assert_eq!(bytes(u64::MAX), "18446744073709551615 bytes");
        assert_eq!(bytes(1 << 60), "1152921504606846976 bytes (1 EiB)");
        assert_eq!(quantity(3, "records"), "3 records");
    }
}
