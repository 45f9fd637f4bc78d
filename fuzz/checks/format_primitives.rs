//! The checks of the `format_primitives` fuzz target, shared with the regression test
//! `tests/fuzz_regressions.rs` (which runs them on the seed corpus and on every input a past
//! crash was found with, under `tests/data/fuzz/format_primitives/`).
//!
//! Invariants: never panics; a length returned by a capped read is within its cap; the
//! trailer verifiers agree with each other and with an independent BLAKE3 computation.

use std::io::Read;

use replicore::format::header::FileKind;
use replicore::format::trailer::{self, TRAILER_LEN};
use replicore::format::{HashingReader, Preamble, Reader};

/// Runs every check on `data`; panics (the fuzzer's failure signal) when one fails.
pub fn check(data: &[u8]) {
    for kind in FileKind::ALL {
        if let Ok(p) = Preamble::decode_slice(data, kind, 1) {
            assert_eq!(p.kind, kind);
            assert_eq!(p.major, 1);
        }
    }

    // The first half of the input is a program of reads over the second half.
    let (program, body) = data.split_at(data.len() / 2);
    let mut r = Reader::new(body, 0, "fuzz");
    for &op in program {
        let cap = usize::from(op >> 3) * 37;
        let ok = match op & 7 {
            0 => r.u8("u8").is_ok(),
            1 => r.u16("u16").is_ok(),
            2 => r.u32("u32").is_ok(),
            3 => r.u64("u64").is_ok(),
            4 => r.len_u32("len32", cap).map(|n| assert!(n <= cap)).is_ok(),
            5 => r.len_u64("len64", cap).map(|n| assert!(n <= cap)).is_ok(),
            6 => r
                .string_u16("str", cap)
                .map(|s| assert!(s.len() <= cap))
                .is_ok(),
            _ => r
                .bytes("bytes", cap)
                .map(|b| assert_eq!(b.len(), cap))
                .is_ok(),
        };
        if !ok {
            break;
        }
    }
    let _ = r.finish();

    let expected = data.len() >= TRAILER_LEN && {
        let (b, t) = data.split_at(data.len() - TRAILER_LEN);
        blake3::hash(b).as_bytes() == t
    };
    assert_eq!(trailer::verify_slice(data, "fuzz").is_ok(), expected);
    assert_eq!(
        trailer::verify_stream(&mut &data[..], "fuzz").is_ok(),
        expected
    );
    if expected {
        let mut hr = HashingReader::new(data);
        let mut body = vec![0u8; data.len() - TRAILER_LEN];
        hr.read_exact(&mut body).unwrap();
        assert!(hr.finish("fuzz").is_ok());
    }
}
