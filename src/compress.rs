//! zstd with one reusable context per thread and level: creating a context per chunk costs more
//! than compressing a small one.

use std::cell::RefCell;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Compresses `src` at `level` into `dst`; the compressed length, or `None` when it does not
/// fit in `dst` (give `dst` fewer bytes than `src` to keep only what shrinks) or zstd fails.
pub(crate) fn compress_into(src: &[u8], level: i32, dst: &mut [u8]) -> Option<usize> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if !matches!(*c, Some((l, _)) if l == level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, z) = c.as_mut()?;
        z.compress_to_buffer(src, dst).ok()
    })
}

/// `src` compressed at `level`, if that makes it smaller.
pub(crate) fn compress_smaller(src: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut out = vec![0u8; src.len().saturating_sub(1)];
    let n = compress_into(src, level, &mut out)?;
    out.truncate(n);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_what_shrinks() {
        let zeros = vec![0u8; 65536];
        let packed = compress_smaller(&zeros, 1).unwrap();
        assert!(packed.len() < 100);
        assert_eq!(zstd::bulk::decompress(&packed, 65536).unwrap(), zeros);
        let mut x = 1u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress_smaller(&noise, 1), None);
        assert_eq!(compress_smaller(&[], 1), None);
        // Another level on the same thread gets its own context.
        assert!(compress_smaller(&zeros, 19).unwrap().len() <= packed.len());
    }
}
