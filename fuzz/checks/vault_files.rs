//! The checks of the `vault_files` fuzz target, shared with `tests/fuzz_regressions.rs`: the
//! vault's pack index, recovery-point file, group head, pinned-key and sorted blob index readers
//! on arbitrary bytes, and the point segment reader. The first byte picks the reader (0: pack
//! index, 1: point file, 3: pinned key, 4: sorted blob index, 5: point segment, else: head).
//!
//! Invariants: never panics, never allocates past its caps; a file that parses encodes back to
//! bytes that parse to the same encoding. The sorted index is opened, read whole and looked up
//! entry by entry, damaged or not (ingest looks up without reading it whole): every lookup
//! ends, and a sound one finds every entry it holds.

use replicore::vault::fuzzing;

/// Runs the chosen reader on the rest of `data` as it is, and followed by a valid BLAKE3
/// trailer (pack indexes and heads carry one; point files are given their body).
pub fn check(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which == 4 {
        sorted_index(rest);
        let mut sealed = rest.to_vec();
        sealed.extend_from_slice(blake3::hash(rest).as_bytes());
        sorted_index(&sealed);
        return;
    }
    let read: fn(&[u8]) -> replicore::Result<Vec<u8>> = match which {
        0 => fuzzing::pack_index,
        1 => fuzzing::point_file,
        3 => fuzzing::trust,
        5 => fuzzing::point_segment,
        _ => fuzzing::head,
    };
    check_one(read, rest);
    if which == 5 {
        // A segment has no trailer of its own (its table has a digest, each point file its
        // trailer).
        return;
    }
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

fn sorted_index(data: &[u8]) {
    // A sound index finds each of its entries by lookup (the extra key it tries is not in it).
    if let Ok(found) = fuzzing::sorted_index(data) {
        let entries = u64::from_le_bytes(data[24..32].try_into().unwrap());
        assert_eq!(found, entries, "a sound index finds every entry it holds");
    }
}
