//! Blobs: one piece of disk data, compressed where that pays and sealed with AES-256-GCM.
//! Layout: `docs/FORMAT.md` §12.
//!
//! The id is the BLAKE3 of the plaintext keyed by the data key's blob-id subkey, so identical
//! data under one key has one id (deduplication) and ids reveal nothing without the key. The
//! associated data binds the blob to its id, its key and its header: a blob moved under another
//! id, another key's blob, or a flipped encoding byte does not authenticate. Decoding
//! authenticates first, then decompresses under the declared size, then re-checks the id, so
//! no wrong plaintext ever comes out.

use crate::compress::compress_into;
use crate::crypto::{Key, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::Reader;
use crate::id::BlobId;

/// The largest plaintext of one blob: 8 MiB (the largest chunk).
pub const MAX_BLOB_LEN: usize = 8 << 20;
/// Bytes of a stored blob before its ciphertext.
pub const BLOB_HEADER_LEN: usize = 8 + NONCE_LEN;
/// Bytes a stored blob adds to its (compressed) plaintext.
pub const BLOB_OVERHEAD: usize = BLOB_HEADER_LEN + TAG_LEN;
/// The default zstd level: 1, the fastest that still finds the zeros and text of a disk.
pub const DEFAULT_LEVEL: i32 = 1;

const RAW: u8 = 1;
const ZSTD: u8 = 2;

/// A sealed blob ready to store.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedBlob {
    /// Its id.
    pub id: BlobId,
    /// The stored bytes: header, ciphertext, tag.
    pub bytes: Vec<u8>,
    /// Whether the stored form is compressed.
    pub compressed: bool,
    /// BLAKE3 of the stored bytes: what a point's signature covers, and with the id the
    /// vault's identity of a stored blob.
    pub sealed_hash: [u8; 32],
}

impl std::fmt::Debug for EncodedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedBlob")
            .field("id", &self.id)
            .field("stored_len", &self.bytes.len())
            .field("compressed", &self.compressed)
            .field("sealed_hash", &crate::id::hex(&self.sealed_hash))
            .finish()
    }
}

fn aad(id: &BlobId, key: &Key, header: &[u8]) -> [u8; 32 + 16 + 8] {
    let mut a = [0u8; 56];
    a[..32].copy_from_slice(id.as_bytes());
    a[32..48].copy_from_slice(&key.id().0);
    a[48..].copy_from_slice(&header[..8]);
    a
}

thread_local! {
    /// Compression output, reused: a fresh zeroed buffer per blob costs page faults.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes of the sample a large plaintext's compressibility is judged on.
const SAMPLE: usize = 16 << 10;

/// Whether compressing `plaintext` is worth trying: for pieces larger than four samples, the
/// first sample must shrink by at least 1/32 (random data, already compressed or encrypted
/// guest data does not, and then costs no zstd pass).
fn worth_compressing(plaintext: &[u8], level: i32) -> bool {
    if plaintext.len() <= 4 * SAMPLE {
        return true;
    }
    let sample = &plaintext[..SAMPLE];
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        compress_into(
            sample,
            level,
            scratch_of(&mut scratch, SAMPLE - SAMPLE / 32),
        )
        .is_some()
    })
}

/// The first `len` bytes of `scratch`, grown (never shrunk: refilling it with zeros for every
/// blob would cost a pass over it) when shorter.
fn scratch_of(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    &mut scratch[..len]
}

/// The nonce of a blob (`docs/FORMAT.md` §12): the keyed BLAKE3 (blob-nonce subkey) of its
/// header's first 8 bytes, its id and, when compressed, the compressed body (a raw body is the
/// plaintext, which the id fixes). So honest copies of one blob are byte-identical, and two
/// different bodies never share a nonce.
fn derived_nonce(
    key: &Key,
    header8: &[u8],
    id: &BlobId,
    body: &[u8],
    encoding: u8,
) -> [u8; NONCE_LEN] {
    let mut h = key.nonce_hasher();
    h.update(header8).update(id.as_bytes());
    if encoding == ZSTD {
        h.update(body);
    }
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&h.finalize().as_bytes()[..NONCE_LEN]);
    n
}

/// Writes a blob to `out`: header, `body` (the plaintext or its compression) encrypted straight
/// from where it is (no copy first), tag. `out` is resized, not cleared: a recycled buffer of
/// the same length is overwritten without being filled with zeros first.
fn seal_into(
    key: &Key,
    id: &BlobId,
    encoding: u8,
    plain_len: usize,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    out.resize(BLOB_HEADER_LEN + body.len(), 0);
    let (header, sealed) = out.split_at_mut(BLOB_HEADER_LEN);
    header[..4].copy_from_slice(&[encoding, 0, 0, 0]);
    header[4..8].copy_from_slice(&(plain_len as u32).to_le_bytes());
    let nonce = derived_nonce(key, &header[..8], id, body, encoding);
    header[8..].copy_from_slice(&nonce);
    let aad = aad(id, key, header);
    let tag = key.seal_from(&nonce, &aad, body, sealed)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Encodes `plaintext` (at most [`MAX_BLOB_LEN`] bytes) under `key`, compressing at zstd
/// `level` when that makes it smaller.
pub fn encode(key: &Key, plaintext: &[u8], level: i32) -> Result<EncodedBlob> {
    let id = key.blob_id(plaintext);
    encode_with_id(key, id, plaintext, level)
}

/// As [`encode`], with the id already computed by the caller (`key.blob_id(plaintext)`).
pub(crate) fn encode_with_id(
    key: &Key,
    id: BlobId,
    plaintext: &[u8],
    level: i32,
) -> Result<EncodedBlob> {
    encode_into(key, id, plaintext, level, Vec::new())
}

/// As [`encode_with_id`], into `out` (overwritten): a caller that recycles its buffers
/// saves an allocation and its page faults per blob.
pub(crate) fn encode_into(
    key: &Key,
    id: BlobId,
    plaintext: &[u8],
    level: i32,
    mut out: Vec<u8>,
) -> Result<EncodedBlob> {
    if plaintext.len() > MAX_BLOB_LEN {
        return Err(Error::limit_exceeded(
            "blob plaintext",
            MAX_BLOB_LEN as u64,
            plaintext.len() as u64,
            "bytes",
        ));
    }
    let mut encoding = RAW;
    if worth_compressing(plaintext, level) {
        SCRATCH.with(|scratch| -> Result<()> {
            let mut scratch = scratch.borrow_mut();
            // Compressed output must be strictly smaller to be kept.
            let room = scratch_of(&mut scratch, plaintext.len().saturating_sub(1));
            if let Some(n) = compress_into(plaintext, level, room).filter(|&n| n > 0) {
                encoding = ZSTD;
                seal_into(key, &id, ZSTD, plaintext.len(), &room[..n], &mut out)?;
            }
            Ok(())
        })?;
    }
    if encoding == RAW {
        seal_into(key, &id, RAW, plaintext.len(), plaintext, &mut out)?;
    }
    Ok(EncodedBlob {
        id,
        sealed_hash: *blake3::hash(&out).as_bytes(),
        bytes: out,
        compressed: encoding == ZSTD,
    })
}

/// The plaintext length a stored blob declares, after checking its header's shape (no key
/// needed).
pub fn declared_len(stored: &[u8]) -> Result<usize> {
    Ok(parse(stored)?.1)
}

/// (encoding, plaintext length) of a stored blob, its shape checked.
fn parse(stored: &[u8]) -> Result<(u8, usize)> {
    let mut r = Reader::new(stored, 0, "blob");
    let encoding = r.u8("encoding")?;
    r.reserved("reserved", 3)?;
    let len = r.len_u32("plaintext length", MAX_BLOB_LEN)?;
    r.bytes("nonce", NONCE_LEN)?;
    let body = r
        .remaining()
        .checked_sub(TAG_LEN)
        .ok_or_else(|| r.error("tag", "the blob is too short to hold its tag"))?;
    match encoding {
        RAW if body != len => Err(r.error(
            "ciphertext",
            format!("a raw blob of {len} bytes holds {body} bytes"),
        )),
        ZSTD if body >= len || body == 0 => Err(r.error(
            "ciphertext",
            format!("a compressed blob of {len} bytes holds {body} bytes"),
        )),
        RAW | ZSTD => Ok((encoding, len)),
        e => Err(r.error("encoding", format!("unknown encoding {e}"))),
    }
}

/// Decodes a stored blob: authenticates it under `key` as blob `id`, decompresses it under its
/// declared size and checks that the plaintext has that id. A wrong key, a blob of another id
/// or any flipped byte is [`Authentication`](crate::ErrorKind::Authentication) or
/// [`Corrupt`](crate::ErrorKind::Corrupt); never wrong plaintext.
pub fn decode(key: &Key, id: &BlobId, stored: &[u8]) -> Result<Vec<u8>> {
    let (encoding, len) = parse(stored)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&stored[8..BLOB_HEADER_LEN]);
    let tag_at = stored.len() - TAG_LEN;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&stored[tag_at..]);
    let mut body = stored[BLOB_HEADER_LEN..tag_at].to_vec();
    if !key.open(&nonce, &aad(id, key, stored), &mut body, &tag) {
        return Err(Error::Authentication {
            what: format!("blob {id}"),
            detail: format!(
                "it does not authenticate under key {} as this id: wrong key, or the blob \
                 was altered or moved",
                key.id()
            ),
        });
    }
    let plain = if encoding == ZSTD {
        let p = zstd::bulk::decompress(&body, len)
            .map_err(|e| Error::corrupt(format!("blob {id}"), Some(0), format!("zstd: {e}")))?;
        if p.len() != len {
            return Err(Error::corrupt(
                format!("blob {id}"),
                Some(0),
                format!("decompressed to {} bytes, declared {len}", p.len()),
            ));
        }
        p
    } else {
        body
    };
    if key.blob_id(&plain) != *id {
        return Err(Error::corrupt(
            format!("blob {id}"),
            Some(0),
            "the plaintext does not hash to the blob's id",
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::crypto::{KeyFile, MasterKey, Secret};

    fn key(b: u8) -> Key {
        KeyFile::create(Secret::Key(&MasterKey::from_bytes([b; 32])))
            .unwrap()
            .1
    }

    #[test]
    fn round_trips_raw_and_compressed() {
        let k = key(1);
        let text = b"hello disk ".repeat(1000);
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for p in [&text[..], &noise[..], &[][..], &[7u8][..]] {
            let b = encode(&k, p, DEFAULT_LEVEL).unwrap();
            assert_eq!(b.id, k.blob_id(p));
            assert_eq!(decode(&k, &b.id, &b.bytes).unwrap(), p);
            assert_eq!(declared_len(&b.bytes).unwrap(), p.len());
        }
        assert!(encode(&k, &text, 1).unwrap().compressed);
        assert!(encode(&k, &text, 1).unwrap().bytes.len() < text.len() / 10);
    }

    #[test]
    fn a_recycled_buffer_of_any_length_gives_the_same_blob() {
        let k = key(2);
        // Large pieces use the sample check and the shared scratch; alternate the kinds and
        // sizes so that buffers and scratch are reused longer and shorter than needed.
        let text = b"recycled buffers ".repeat(8000);
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let pieces = [
            &noise[..],
            &text[..],
            &noise[..999],
            &[][..],
            &text[..70_000],
            &noise[..],
        ];
        let mut buf = vec![0xAA; 300_000];
        for p in pieces {
            let b = encode_into(&k, k.blob_id(p), p, DEFAULT_LEVEL, buf).unwrap();
            assert_eq!(decode(&k, &b.id, &b.bytes).unwrap(), p);
            assert_eq!(
                b.bytes.len(),
                encode(&k, p, DEFAULT_LEVEL).unwrap().bytes.len()
            );
            buf = b.bytes;
        }
    }

    #[test]
    fn every_flipped_byte_and_wrong_key_are_refused() {
        let (k, other) = (key(1), key(2));
        let p = b"some data, some data, some data".repeat(20);
        let b = encode(&k, &p, 1).unwrap();
        assert_eq!(
            decode(&other, &b.id, &b.bytes).unwrap_err().kind(),
            ErrorKind::Authentication
        );
        let wrong_id = k.blob_id(b"else");
        assert_eq!(
            decode(&k, &wrong_id, &b.bytes).unwrap_err().kind(),
            ErrorKind::Authentication
        );
        for i in 0..b.bytes.len() {
            let mut x = b.bytes.clone();
            x[i] ^= 0x40;
            let e = decode(&k, &b.id, &x).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Authentication | ErrorKind::Corrupt),
                "{i}: {e}"
            );
        }
        for n in 0..b.bytes.len() {
            assert!(decode(&k, &b.id, &b.bytes[..n]).is_err(), "{n}");
        }
        assert_eq!(
            encode(&k, &vec![0u8; MAX_BLOB_LEN + 1], 1)
                .unwrap_err()
                .kind(),
            ErrorKind::LimitExceeded
        );
    }
}
