//! Realistic test images for the benches: a third zeros, a third compressible records, a third
//! random, in runs of 1 to 16 MiB; and a copy with 1% rewritten.

#![allow(dead_code)] // each bench uses a part

/// Bytes of a bench image.
pub const SIZE: usize = 256 << 20;

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A third zeros, a third records (compressible), a third random, in runs of 1–16 MiB.
pub fn image(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(SIZE);
    while out.len() < SIZE {
        let run = ((1 + rng.next() % 16) << 20).min((SIZE - out.len()) as u64) as usize;
        match rng.next() % 3 {
            0 => out.resize(out.len() + run, 0),
            1 => {
                let start = out.len();
                while out.len() < start + run {
                    let rec = format!(
                        "{},host-{},GET /api/items/{},200,{}\n",
                        rng.next() % 100_000,
                        rng.next() % 16,
                        rng.next() % 5000,
                        rng.next() % 900
                    );
                    out.extend_from_slice(rec.as_bytes());
                }
                out.truncate(start + run);
            }
            _ => out.extend((0..run).map(|_| rng.next() as u8)),
        }
    }
    out
}

/// `base` with 1% of its bytes rewritten by scattered writes of 4–256 KiB.
pub fn changed(base: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let mut rng = Rng(99);
    let mut written = 0;
    while written < SIZE / 100 {
        let len = 4096 << (rng.next() % 7);
        let at = (rng.next() as usize % (SIZE - len)) & !4095;
        for b in &mut out[at..at + len] {
            *b = rng.next() as u8;
        }
        written += len;
    }
    out
}
