//! Keys: the customer's key, the key file that wraps the data key, and the subkeys derived
//! from it. Format of the key file: `docs/FORMAT.md` §11.
//!
//! ```text
//! customer key (MasterKey: 32 raw bytes, or argon2id(passphrase, salt, params))
//!   └─ wraps (AES-256-GCM) ─> data key (random, 32 bytes, in the key file)
//!                               ├─ derive_key("… blob id")      -> keyed BLAKE3 of plaintext = blob id
//!                               ├─ derive_key("… blob encryption") -> AES-256-GCM key of blobs
//!                               ├─ derive_key("… blob nonce")    -> keyed BLAKE3 -> AES-GCM nonces
//!                               ├─ derive_key("… point signing") -> Ed25519 signing key (points,
//!                               │                                   checkpoints); its verifying key
//!                               │                                   is public, in every header
//!                               └─ derive_key("… key id")       -> public key id (16 bytes)
//! ```
//!
//! Rotating the customer key ([`KeyFile::rewrap`]) wraps the same data key again: no data is
//! re-encrypted, blob ids and the key id do not change, so deduplication survives rotation.
//! Every secret is zeroized on drop and `Debug` never prints one.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::format::header::{FileKind, Preamble};
use crate::format::{Reader, Writer, trailer};
use crate::fsutil::{read_small, write_atomic};

/// Major format version of key files this build reads and writes.
pub const KEY_FILE_VERSION: u16 = 1;
const KEY_FILE_MINOR: u16 = 0;

/// Bytes of a key file (fixed): see `docs/FORMAT.md` §11.
pub const KEY_FILE_LEN: usize = 16 + 4 + 12 + SALT_LEN + 16 + NONCE_LEN + 32 + TAG_LEN + 32;
const SALT_LEN: usize = 16;
/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of the key file covered by the wrapping's associated data (preamble to key id).
const AAD_LEN: usize = 16 + 4 + 12 + SALT_LEN + 16;

const CTX_WRAP: &str = "replicore 2026-11-22 key wrapping v1";
const CTX_KEY_ID: &str = "replicore 2026-11-22 key id v1";
const CTX_BLOB_ID: &str = "replicore 2026-11-22 blob id v1";
const CTX_BLOB_ENC: &str = "replicore 2026-11-22 blob encryption v1";
const CTX_SIGNING: &str = "replicore 2026-12-01 point signing v1";
const CTX_BLOB_NONCE: &str = "replicore 2026-12-01 blob nonce v1";
/// Domain of a point signature's message (`docs/FORMAT.md` §13).
pub(crate) const SIGNED_POINT: &[u8] = b"replicore 2026-12-01 signed point v1\0";
/// Domain of a checkpoint signature's message (`docs/FORMAT.md` §15.4).
pub(crate) const SIGNED_CHECKPOINT: &[u8] = b"replicore 2026-12-01 signed checkpoint v1\0";
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

pub(crate) fn random<const N: usize>(what: &str) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            format!("drawing random bytes for {what}"),
            None,
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

/// A fresh random AES-GCM nonce.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN]> {
    random("a nonce")
}

/// The customer's 256-bit key: it wraps the data key and never touches disk unless the user
/// writes it. Zeroized on drop; `Debug` prints no byte of it.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Result<MasterKey> {
        Ok(MasterKey(Zeroizing::new(random("a master key")?)))
    }

    /// The key a host's key manager hands over as 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// As [`from_bytes`](Self::from_bytes), from a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<MasterKey> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::invalid_argument(
                "master key",
                format!("must be 32 bytes, not {} bytes", bytes.len()),
            )
        })?;
        Ok(MasterKey::from_bytes(b))
    }

    /// The key's bytes, for a caller that stores it (in its own key manager).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

/// Argon2id cost parameters of a passphrase-protected key file (stored in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (8 to 2 GiB).
    pub memory_kib: u32,
    /// Passes over the memory (1 to 64).
    pub iterations: u32,
    /// Lanes (1 to 16).
    pub parallelism: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a quarter second on one core here, well above OWASP's
    /// argon2id minimum (19 MiB, 2 passes).
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 << 10,
        iterations: 3,
        parallelism: 1,
    };
    /// The most memory a key file may ask for: a hostile file cannot make us allocate more.
    pub const MAX_MEMORY_KIB: u32 = 2 << 20;

    fn check(&self) -> std::result::Result<(), String> {
        // Parallelism first: the per-lane product below must not overflow.
        let ok = (1..=16).contains(&self.parallelism)
            && (1..=64).contains(&self.iterations)
            && (8..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib)
            && self.memory_kib >= 8 * self.parallelism;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} KiB of memory, {} iterations and {} lanes are outside what is allowed: \
                 memory 8 KiB to 2 GiB (at least 8 KiB per lane), 1 to 64 iterations, 1 to 16 \
                 lanes",
                self.memory_kib, self.iterations, self.parallelism
            ))
        }
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::DEFAULT
    }
}

/// What unlocks (or protects) a key file.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The customer's raw key.
    Key(&'a MasterKey),
    /// A passphrase, stretched with argon2id.
    Passphrase(&'a [u8]),
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Key(_) => "Secret::Key(<secret>)",
            Secret::Passphrase(_) => "Secret::Passphrase(<secret>)",
        })
    }
}

/// How a key file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// By a raw 32-byte customer key.
    Key,
    /// By a passphrase through argon2id with these parameters.
    Passphrase(KdfParams),
}

/// The public name of a data key: 16 bytes derived from it that reveal nothing about it. It
/// survives rotation of the customer key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A key file: the data key wrapped under the customer's key, with what is needed to unwrap
/// it (argon2id salt and parameters) and the key's public id. Holds no secret: it may be
/// stored beside the data (every bundle header carries a copy).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    protection: Protection,
    salt: [u8; SALT_LEN],
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; 32],
    tag: [u8; TAG_LEN],
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("key_id", &self.key_id)
            .field("protection", &self.protection)
            .finish_non_exhaustive()
    }
}

/// The wrapping key for `secret`, stretched with the file's salt and parameters.
fn wrapping_key(
    secret: Secret<'_>,
    protection: Protection,
    salt: &[u8; SALT_LEN],
) -> Result<Zeroizing<[u8; 32]>> {
    let mut stretched = Zeroizing::new([0u8; 32]);
    match (secret, protection) {
        (Secret::Key(k), Protection::Key) => stretched.copy_from_slice(k.as_bytes()),
        (Secret::Passphrase(p), Protection::Passphrase(params)) => {
            params
                .check()
                .map_err(|d| Error::invalid_argument("kdf params", d))?;
            let argon = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                argon2::Params::new(
                    params.memory_kib,
                    params.iterations,
                    params.parallelism,
                    Some(32),
                )
                .map_err(|e| Error::invalid_argument("kdf params", e.to_string()))?,
            );
            argon
                .hash_password_into(p, salt, stretched.as_mut())
                .map_err(|e| Error::invalid_argument("passphrase", e.to_string()))?;
        }
        (Secret::Key(_), Protection::Passphrase(_)) => {
            return Err(Error::Authentication {
                what: "key file".into(),
                detail: "it is protected by a passphrase, and a raw key was given".into(),
            });
        }
        (Secret::Passphrase(_), Protection::Key) => {
            return Err(Error::Authentication {
                what: "key file".into(),
                detail: "it is protected by a raw key, and a passphrase was given".into(),
            });
        }
    }
    Ok(Zeroizing::new(blake3::derive_key(
        CTX_WRAP,
        stretched.as_ref(),
    )))
}

impl KeyFile {
    /// A new random data key protected by `secret` (argon2id with [`KdfParams::DEFAULT`] for a
    /// passphrase); returns the key file to store and the unlocked key.
    pub fn create(secret: Secret<'_>) -> Result<(KeyFile, Key)> {
        Self::create_with(secret, KdfParams::DEFAULT)
    }

    /// As [`create`](Self::create), with these argon2id parameters for a passphrase.
    pub fn create_with(secret: Secret<'_>, params: KdfParams) -> Result<(KeyFile, Key)> {
        let data = Zeroizing::new(random::<32>("a data key")?);
        let key_id = KeyId(key_id_of(&data));
        let file = Self::wrap(&data, key_id, secret, params)?;
        let key = Key::new(data, file.clone());
        Ok((file, key))
    }

    fn wrap(
        data: &[u8; 32],
        key_id: KeyId,
        secret: Secret<'_>,
        params: KdfParams,
    ) -> Result<KeyFile> {
        let protection = match secret {
            Secret::Key(_) => Protection::Key,
            Secret::Passphrase(_) => {
                params
                    .check()
                    .map_err(|d| Error::invalid_argument("params", d))?;
                Protection::Passphrase(params)
            }
        };
        let salt = match protection {
            Protection::Key => [0; SALT_LEN],
            Protection::Passphrase(_) => random("a salt")?,
        };
        let mut file = KeyFile {
            protection,
            salt,
            key_id,
            nonce: random_nonce()?,
            wrapped: *data,
            tag: [0; TAG_LEN],
        };
        let wk = wrapping_key(secret, protection, &salt)?;
        let cipher = Aes256Gcm::new(&(*wk).into());
        let aad = file.aad();
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(file.nonce),
                &aad,
                file.wrapped.as_mut_slice().into(),
            )
            .map_err(|_| Error::invalid_argument("data key", "wrapping failed"))?;
        file.tag = tag.into();
        Ok(file)
    }

    /// Unwraps the data key. A wrong key or passphrase is
    /// [`Authentication`](crate::ErrorKind::Authentication).
    pub fn unlock(&self, secret: Secret<'_>) -> Result<Key> {
        let wk = wrapping_key(secret, self.protection, &self.salt)?;
        let cipher = Aes256Gcm::new(&(*wk).into());
        let mut data = Zeroizing::new(self.wrapped);
        cipher
            .decrypt_inout_detached(
                &Nonce::from(self.nonce),
                &self.aad(),
                data.as_mut_slice().into(),
                &Tag::from(self.tag),
            )
            .map_err(|_| Error::Authentication {
                what: format!("key file of key {}", self.key_id),
                detail: "the data key does not unwrap: wrong key or passphrase".into(),
            })?;
        if key_id_of(&data) != self.key_id.0 {
            return Err(Error::Authentication {
                what: format!("key file of key {}", self.key_id),
                detail: "the unwrapped data key does not match the key id".into(),
            });
        }
        Ok(Key::new(data, self.clone()))
    }

    /// Rotates the customer's key: unwraps with `old`, wraps the same data key under `new`
    /// (fresh salt and nonce). The key id, blob ids and every stored blob stay valid.
    pub fn rewrap(&self, old: Secret<'_>, new: Secret<'_>) -> Result<KeyFile> {
        self.rewrap_with(old, new, KdfParams::DEFAULT)
    }

    /// As [`rewrap`](Self::rewrap), with these argon2id parameters for a new passphrase.
    pub fn rewrap_with(
        &self,
        old: Secret<'_>,
        new: Secret<'_>,
        params: KdfParams,
    ) -> Result<KeyFile> {
        let key = self.unlock(old)?;
        Self::wrap(&key.data, self.key_id, new, params)
    }

    /// The public id of the key this file wraps.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// How the file is protected.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    fn aad(&self) -> [u8; AAD_LEN] {
        let bytes = self.encode_prefix();
        let mut a = [0u8; AAD_LEN];
        a.copy_from_slice(&bytes);
        a
    }

    fn encode_prefix(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(KEY_FILE_LEN);
        Preamble::new(FileKind::KeyFile, KEY_FILE_VERSION, KEY_FILE_MINOR).encode(&mut w);
        let (kind, p) = match self.protection {
            Protection::Key => (1u8, None),
            Protection::Passphrase(p) => (2, Some(p)),
        };
        w.u8(kind).zeros(3);
        w.u32(p.map_or(0, |p| p.memory_kib));
        w.u32(p.map_or(0, |p| p.iterations));
        w.u32(p.map_or(0, |p| p.parallelism));
        w.bytes(&self.salt).bytes(&self.key_id.0);
        w.into_bytes()
    }

    /// The file's bytes (`docs/FORMAT.md` §11), trailer included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.encode_prefix();
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.wrapped);
        b.extend_from_slice(&self.tag);
        let h = blake3::hash(&b);
        b.extend_from_slice(h.as_bytes());
        b
    }

    /// Parses a key file. A damaged one is [`Corrupt`](crate::ErrorKind::Corrupt) (its trailer
    /// is checked first); hostile argon2 parameters are refused before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyFile> {
        let what = "key file";
        Preamble::decode_slice(bytes, FileKind::KeyFile, KEY_FILE_VERSION)?;
        if bytes.len() != KEY_FILE_LEN {
            return Err(Error::corrupt(
                what,
                Some(0),
                format!("{} bytes; a key file has {KEY_FILE_LEN} bytes", bytes.len()),
            ));
        }
        let body = trailer::verify_slice(bytes, what)?;
        let mut r = Reader::new(body, 0, "key file");
        Preamble::decode(&mut r, FileKind::KeyFile, KEY_FILE_VERSION)?;
        let kind = r.u8("protection")?;
        r.reserved("reserved", 3)?;
        let params = KdfParams {
            memory_kib: r.u32("argon2 memory")?,
            iterations: r.u32("argon2 iterations")?,
            parallelism: r.u32("argon2 parallelism")?,
        };
        let protection = match kind {
            1 if params
                == (KdfParams {
                    memory_kib: 0,
                    iterations: 0,
                    parallelism: 0,
                }) =>
            {
                Protection::Key
            }
            2 => {
                params
                    .check()
                    .map_err(|d| r.error("argon2 parameters", d))?;
                Protection::Passphrase(params)
            }
            _ => {
                return Err(r.error(
                    "protection",
                    format!("unknown protection {kind} (or parameters on a raw-key file)"),
                ));
            }
        };
        let salt = r.array::<SALT_LEN>("salt")?;
        let key_id = KeyId(r.array("key id")?);
        let nonce = r.array("nonce")?;
        let wrapped = r.array("wrapped key")?;
        let tag = r.array("tag")?;
        r.finish()?;
        Ok(KeyFile {
            protection,
            salt,
            key_id,
            nonce,
            wrapped,
            tag,
        })
    }

    /// Reads a key file.
    pub fn load(path: impl AsRef<Path>) -> Result<KeyFile> {
        let path = path.as_ref();
        let bytes = read_small(path, "key file", KEY_FILE_LEN)?;
        Self::from_bytes(&bytes).map_err(|e| e.with_path(path))
    }

    /// Writes the key file crash-safely; refuses to replace an existing file unless `replace`.
    pub fn save(&self, path: impl AsRef<Path>, replace: bool) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes(), replace)
    }
}

fn key_id_of(data: &[u8; 32]) -> [u8; 16] {
    let full = blake3::derive_key(CTX_KEY_ID, data);
    let mut id = [0u8; 16];
    id.copy_from_slice(&full[..16]);
    id
}

/// The public half of a group's point-signing key: every bundle header carries it, and anyone
/// can check with it that a point (or a checkpoint) was made by the holder of the group's key.
/// It reveals nothing about the data key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(pub [u8; 32]);

impl VerifyingKey {
    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<VerifyingKey> {
        let bad =
            || Error::invalid_argument("verifying key", format!("`{s}` is not 64 hex digits"));
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(VerifyingKey(b))
    }

    /// Whether `signature` is this key's (strict Ed25519 verification) over `domain ‖ message`.
    pub(crate) fn verifies(
        &self,
        domain: &[u8],
        message: &[u8; 32],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        vk.verify_strict(&signed_message(domain, message), &sig)
            .is_ok()
    }
}

/// What a signature signs: a domain string, then a 32-byte digest of the signed content.
fn signed_message(domain: &[u8], digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 32);
    m.extend_from_slice(domain);
    m.extend_from_slice(digest);
    m
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.to_hex())
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An unlocked data key with its derived subkeys. Zeroized on drop; `Debug` prints only the
/// key id. Cheap to share by reference between threads.
pub struct Key {
    data: Zeroizing<[u8; 32]>,
    id_key: Zeroizing<[u8; 32]>,
    nonce_key: Zeroizing<[u8; 32]>,
    signing: ed25519_dalek::SigningKey,
    cipher: Aes256Gcm,
    file: KeyFile,
}

impl Key {
    fn new(data: Zeroizing<[u8; 32]>, file: KeyFile) -> Key {
        let id_key = Zeroizing::new(blake3::derive_key(CTX_BLOB_ID, data.as_ref()));
        let nonce_key = Zeroizing::new(blake3::derive_key(CTX_BLOB_NONCE, data.as_ref()));
        let seed = Zeroizing::new(blake3::derive_key(CTX_SIGNING, data.as_ref()));
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut enc = blake3::derive_key(CTX_BLOB_ENC, data.as_ref());
        let cipher = Aes256Gcm::new(&enc.into());
        enc.zeroize();
        Key {
            data,
            id_key,
            nonce_key,
            signing,
            cipher,
            file,
        }
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.file.key_id
    }

    /// The key file this key came from (public: carried in every bundle header).
    pub fn key_file(&self) -> &KeyFile {
        &self.file
    }

    /// The id of a blob of this plaintext: its BLAKE3 keyed by the blob-id subkey.
    pub fn blob_id(&self, plaintext: &[u8]) -> crate::BlobId {
        crate::BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// A subkey of the data key for one job, named by its BLAKE3 `derive_key` context (each
    /// context string is listed in `docs/FORMAT.md` §11 and used for exactly one job).
    pub(crate) fn subkey(&self, context: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(context, self.data.as_ref()))
    }

    /// A hasher keyed by the blob-nonce subkey (`docs/FORMAT.md` §12).
    pub(crate) fn nonce_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.nonce_key)
    }

    /// The public half of the group's point-signing key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `domain ‖ digest` (Ed25519, deterministic).
    pub(crate) fn sign(&self, domain: &[u8], digest: &[u8; 32]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer;
        self.signing
            .sign(&signed_message(domain, digest))
            .to_bytes()
    }

    /// Encrypts `src` into `dst` (of the same length); returns the tag.
    pub(crate) fn seal_from(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let buf = aes_gcm::aead::inout::InOutBuf::new(src, dst)
            .map_err(|_| Error::invalid_argument("blob", "input and output lengths differ"))?;
        self.cipher
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf)
            .map(Into::into)
            .map_err(|_| Error::invalid_argument("blob", "too long to encrypt"))
    }

    /// Decrypts `buf` in place; false when the tag does not authenticate.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        self.cipher
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
            .is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn raw_key_round_trip_and_wrong_key() {
        let mk = MasterKey::generate().unwrap();
        let (file, key) = KeyFile::create(Secret::Key(&mk)).unwrap();
        let back = KeyFile::from_bytes(&file.to_bytes()).unwrap();
        assert_eq!(back, file);
        let again = back.unlock(Secret::Key(&mk)).unwrap();
        assert_eq!(again.id(), key.id());
        assert_eq!(again.blob_id(b"x"), key.blob_id(b"x"));
        let other = MasterKey::generate().unwrap();
        let e = file.unlock(Secret::Key(&other)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
        let e = file.unlock(Secret::Passphrase(b"pw")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
    }

    #[test]
    fn passphrase_rotation_keeps_ids() {
        let (file, key) = KeyFile::create_with(Secret::Passphrase(b"old"), FAST).unwrap();
        assert_eq!(file.protection(), Protection::Passphrase(FAST));
        let e = file.unlock(Secret::Passphrase(b"wrong")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
        let mk = MasterKey::from_bytes([7; 32]);
        let rotated = file
            .rewrap_with(Secret::Passphrase(b"old"), Secret::Key(&mk), FAST)
            .unwrap();
        assert_ne!(rotated.to_bytes(), file.to_bytes());
        let k2 = rotated.unlock(Secret::Key(&mk)).unwrap();
        assert_eq!(k2.id(), key.id());
        assert_eq!(k2.blob_id(b"data"), key.blob_id(b"data"));
        assert!(rotated.unlock(Secret::Passphrase(b"old")).is_err());
    }

    #[test]
    fn debug_prints_no_secret() {
        let mk = MasterKey::from_bytes([0xAB; 32]);
        let (file, key) = KeyFile::create(Secret::Key(&mk)).unwrap();
        for s in [format!("{mk:?}"), format!("{key:?}"), format!("{file:?}")] {
            assert!(
                !s.contains("ab, ab") && !s.contains("abab") && !s.contains("171"),
                "{s}"
            );
        }
        assert!(format!("{key:?}").contains(&key.id().to_hex()));
    }

    #[test]
    fn hostile_parameters_are_refused_before_hashing() {
        let (file, _) = KeyFile::create_with(Secret::Passphrase(b"p"), FAST).unwrap();
        let mut b = file.to_bytes();
        b[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let n = b.len() - 32;
        let h = blake3::hash(&b[..n]);
        b[n..].copy_from_slice(h.as_bytes());
        assert_eq!(
            KeyFile::from_bytes(&b).unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
    }
}
