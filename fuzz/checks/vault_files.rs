//! The checks of the `vault_files` fuzz target, shared with `tests/fuzz_regressions.rs`: the
//! vault's pack index, recovery-point file, group head and pinned-key readers on arbitrary
//! bytes. The first byte picks the reader (0: pack index, 1: point file, 3: pinned key, else:
//! head).
//!
//! Invariants: never panics, never allocates past its caps; a file that parses encodes back to
//! bytes that parse to the same encoding.

use replicore::vault::fuzzing;

/// Runs the chosen reader on the rest of `data` as it is, and followed by a valid BLAKE3
/// trailer (pack indexes and heads carry one; point files are given their body).
pub fn check(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let read: fn(&[u8]) -> replicore::Result<Vec<u8>> = match which {
        0 => fuzzing::pack_index,
        1 => fuzzing::point_file,
        3 => fuzzing::trust,
        _ => fuzzing::head,
    };
    check_one(read, rest);
    let mut sealed = rest.to_vec();
    sealed.extend_from_slice(blake3::hash(rest).as_bytes());
    check_one(read, &sealed);
}

fn check_one(read: fn(&[u8]) -> replicore::Result<Vec<u8>>, data: &[u8]) {
    if let Ok(back) = read(data) {
        let again = read(&back).expect("a file written back parses");
        assert_eq!(again, back, "a file written back encodes the same");
    }
}
