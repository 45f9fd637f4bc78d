//! ExtentMap against a plain byte-array model.
//!
//! Protects: "newer wins" semantics of insert, remove, resize, overlay and fold; coalesce never
//! changing what a byte maps to; lookup clipping; refusals leaving the map unchanged; and the
//! structural invariants (sorted, non-overlapping, non-empty, within the disk, byte count).
//!
//! The model is one cell per disk byte: `None` for a gap, or the source of that very byte
//! (zero, or blob `id` at byte `offset`). Disks are small (up to 300 bytes) so that random
//! operations collide often; out-of-range arguments are generated on purpose.

use proptest::prelude::*;
use replicore::{BlobId, ErrorKind, ExtentMap, Piece, Source};

type Cell = Option<Source>;

#[derive(Debug, Clone)]
enum Op {
    Insert {
        start: u64,
        len: u64,
        src: Source,
    },
    Remove {
        start: u64,
        len: u64,
    },
    Resize(u64),
    Overlay {
        size: u64,
        writes: Vec<(u64, u64, Source)>,
    },
    Coalesce,
    Lookup {
        start: u64,
        len: u64,
    },
}

fn byte_source(src: Source, i: u64) -> Source {
    match src {
        Source::Zero => Source::Zero,
        Source::Blob { id, offset } => Source::Blob {
            id,
            offset: offset + i,
        },
    }
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        1 => Just(Source::Zero),
        3 => (0u8..3, 0u64..64).prop_map(|(id, offset)| Source::Blob { id: BlobId([id; 32]), offset }),
    ]
}

fn write() -> impl Strategy<Value = (u64, u64, Source)> {
    (0u64..310, 0u64..80, source())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => write().prop_map(|(start, len, src)| Op::Insert { start, len, src }),
        2 => (0u64..310, 0u64..100).prop_map(|(start, len)| Op::Remove { start, len }),
        1 => (0u64..300).prop_map(Op::Resize),
        2 => (0u64..300, prop::collection::vec(write(), 0..12))
            .prop_map(|(size, writes)| Op::Overlay { size, writes }),
        1 => Just(Op::Coalesce),
        2 => (0u64..310, 0u64..120).prop_map(|(start, len)| Op::Lookup { start, len }),
    ]
}

/// Applies a write to the model if it fits; returns whether it did.
fn model_insert(cells: &mut [Cell], start: u64, len: u64, src: Source) -> bool {
    let Some(end) = start.checked_add(len).filter(|&e| e <= cells.len() as u64) else {
        return false;
    };
    for i in start..end {
        cells[i as usize] = Some(byte_source(src, i - start));
    }
    true
}

fn expand<I: Iterator<Item = Piece>>(pieces: I) -> Vec<Cell> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Gap { len, .. } => out.extend((0..len).map(|_| None)),
            Piece::Mapped(e) => out.extend((0..e.len).map(|i| Some(byte_source(e.source, i)))),
        }
    }
    out
}

fn check_invariants(m: &ExtentMap) {
    let mut prev_end = 0;
    let mut mapped = 0;
    for e in m.iter() {
        assert!(e.len > 0, "empty extent {e:?}");
        assert!(e.start >= prev_end, "overlap or disorder at {e:?}");
        assert!(
            e.end() <= m.disk_size(),
            "{e:?} past the disk end {}",
            m.disk_size()
        );
        prev_end = e.end();
        mapped += e.len;
    }
    assert_eq!(mapped, m.mapped_bytes());
    // Pieces tile the disk exactly, with no empty piece and no two adjacent gaps.
    let mut pos = 0;
    let mut last_gap = false;
    for p in m.pieces() {
        assert_eq!(p.start(), pos);
        assert!(!p.is_empty());
        let gap = matches!(p, Piece::Gap { .. });
        assert!(!(gap && last_gap), "two adjacent gaps");
        last_gap = gap;
        pos += p.len();
    }
    assert_eq!(pos, m.disk_size());
}

fn build(size: u64, writes: &[(u64, u64, Source)]) -> (ExtentMap, Vec<Cell>) {
    let mut m = ExtentMap::new(size).unwrap();
    let mut cells = vec![None; size as usize];
    for &(s, l, src) in writes {
        let fits = model_insert(&mut cells, s, l, src);
        assert_eq!(m.insert(s, l, src).is_ok(), fits);
    }
    (m, cells)
}

fn run(size: u64, ops: &[Op]) {
    let mut m = ExtentMap::new(size).unwrap();
    let mut cells: Vec<Cell> = vec![None; size as usize];
    for op in ops {
        let before = m.clone();
        match op.clone() {
            Op::Insert { start, len, src } => {
                let fits = model_insert(&mut cells, start, len, src);
                match m.insert(start, len, src) {
                    Ok(()) => assert!(fits, "accepted out of range {op:?}"),
                    Err(e) => {
                        assert!(!fits, "refused in range {op:?}: {e}");
                        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                        assert_eq!(m, before, "a refused insert changed the map");
                    }
                }
            }
            Op::Remove { start, len } => {
                let fits = start
                    .checked_add(len)
                    .is_some_and(|e| e <= cells.len() as u64);
                if fits {
                    cells[start as usize..(start + len) as usize].fill(None);
                }
                assert_eq!(m.remove(start, len).is_ok(), fits);
                if !fits {
                    assert_eq!(m, before);
                }
            }
            Op::Resize(n) => {
                cells.resize(n as usize, None);
                m.set_disk_size(n).unwrap();
            }
            Op::Overlay { size, writes } => {
                let (newer, newer_cells) = build(size, &writes);
                cells.resize(size as usize, None);
                for (c, n) in cells.iter_mut().zip(newer_cells) {
                    if n.is_some() {
                        *c = n;
                    }
                }
                m.overlay(&newer).unwrap();
            }
            Op::Coalesce => {
                m.coalesce();
                // No two neighbours that could have been one remain.
                let es: Vec<_> = m.iter().collect();
                for w in es.windows(2) {
                    let joined = w[0].end() == w[1].start
                        && byte_source(w[0].source, w[0].len) == w[1].source;
                    assert!(!joined, "coalesce left {:?} and {:?}", w[0], w[1]);
                }
            }
            Op::Lookup { start, len } => {
                let fits = start
                    .checked_add(len)
                    .is_some_and(|e| e <= cells.len() as u64);
                match m.lookup(start, len) {
                    Ok(pieces) => {
                        assert!(fits);
                        let pieces: Vec<_> = pieces.collect();
                        let mut pos = start;
                        for p in &pieces {
                            assert_eq!(p.start(), pos);
                            pos += p.len();
                        }
                        assert_eq!(pos, start + len);
                        assert_eq!(
                            expand(pieces.into_iter()),
                            cells[start as usize..(start + len) as usize]
                        );
                    }
                    Err(e) => {
                        assert!(!fits);
                        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                    }
                }
            }
        }
        check_invariants(&m);
        assert_eq!(m.disk_size(), cells.len() as u64);
        assert_eq!(expand(m.pieces()), cells, "after {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_operation_sequences_match_the_model(size in 0u64..300, ops in prop::collection::vec(op(), 1..40)) {
        run(size, &ops);
    }

    #[test]
    fn fold_equals_overlaying_the_model_in_order(
        chain in prop::collection::vec((1u64..300, prop::collection::vec(write(), 0..16)), 1..6)
    ) {
        let built: Vec<_> = chain.iter().map(|(size, ws)| build(*size, ws)).collect();
        let folded = ExtentMap::fold(built.iter().map(|(m, _)| m)).unwrap();
        let mut cells: Vec<Cell> = Vec::new();
        for (_, newer) in &built {
            cells.resize(newer.len(), None);
            for (c, n) in cells.iter_mut().zip(newer) {
                if n.is_some() {
                    *c = *n;
                }
            }
        }
        check_invariants(&folded);
        prop_assert_eq!(expand(folded.pieces()), cells);
    }
}
