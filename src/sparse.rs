//! Where a chunk written into a sparse image holds data: its blocks of zeros are left as holes
//! (a new image) or made zero by punching one (an existing file), not written, so that a chunk
//! holding a few small writes costs the image those writes, not the whole chunk.

/// The file system's block: the unit of a hole.
const BLOCK: u64 = 4096;
/// Zeros shorter than this between data (or at a chunk's edges) are written, not left as
/// holes: a chunk of alternating blocks costs a few writes, not one per block.
pub(crate) const MIN_HOLE: usize = 64 << 10;

/// The parts of `data`, which lands at disk offset `at`, to write as data, as (offset in
/// `data`, length): its blocks ([`BLOCK`]-aligned on the disk) holding a byte that is not zero,
/// joined across zeros shorter than [`MIN_HOLE`] (at the edges too). Everything outside them is
/// zeros, in stretches of at least [`MIN_HOLE`].
pub(crate) fn data_parts(data: &[u8], at: u64) -> Vec<(usize, usize)> {
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let boundary = ((at + i as u64) / BLOCK + 1) * BLOCK;
        let end = ((boundary - at) as usize).min(data.len());
        // OR-folded rather than `any`, so that it runs vectorized.
        if data[i..end].iter().fold(0u8, |acc, &x| acc | x) != 0 {
            let first = parts.is_empty();
            match parts.last_mut() {
                Some((s, n)) if i - (*s + *n) < MIN_HOLE => *n = end - *s,
                _ if first && i < MIN_HOLE => parts.push((0, end)),
                _ => parts.push((i, end - i)),
            }
        }
        i = end;
    }
    if let Some((s, n)) = parts.last_mut()
        && data.len() - (*s + *n) < MIN_HOLE
    {
        *n = data.len() - *s;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything outside `parts` is zeros, in stretches of at least MIN_HOLE.
    fn holes_are_long_zeros(data: &[u8], parts: &[(usize, usize)]) {
        let mut at = 0;
        for &(s, n) in parts.iter().chain([&(data.len(), 0)]) {
            assert!(s >= at, "{parts:?}");
            if s > at {
                assert!(s - at >= MIN_HOLE, "a hole of {} bytes: {parts:?}", s - at);
                assert!(data[at..s].iter().all(|&x| x == 0), "{parts:?}");
            }
            at = s + n;
        }
    }

    #[test]
    fn blocks_of_data_are_written_and_long_zeros_left_as_holes() {
        let b = BLOCK as usize;
        // 1 MiB landing 100 bytes into a block: data near the start, a block in the middle,
        // two blocks close together, nothing near the end.
        let at = 3 * BLOCK + 100;
        let mut data = vec![0u8; 256 * b];
        data[5] = 1;
        data[100 * b] = 2;
        data[104 * b + 3] = 3;
        let parts = data_parts(&data, at);
        // The first part starts at the edge (its zeros there are short), the two close blocks
        // are joined, and the long zeros at the end are left out.
        assert_eq!(parts[0].0, 0);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[1].0 + parts[1].1 < data.len());
        holes_are_long_zeros(&data, &parts);
        assert!(data_parts(&vec![0; 1 << 20], 0).is_empty());
        assert_eq!(data_parts(&[1; 10], 5), vec![(0, 10)]);
        // Alternating blocks: one part, not one per block.
        let mut alt = vec![0u8; 64 * b];
        for k in (0..64).step_by(2) {
            alt[k * b] = 9;
        }
        assert_eq!(data_parts(&alt, 0), vec![(0, alt.len())]);
    }
}
