//! Secrets encrypted at rest. Every object stored under [`SEALED_PREFIX`] reaches disk — in
//! a raft log entry, in the objects table, so in anything rebuilt from them — only as an
//! envelope `k8s:enc:xchacha20poly1305:v1:KEYID:BASE64(nonce ‖ ciphertext ‖ tag)`, the
//! shape of Kubernetes' encryption-at-rest prefixes, sealing the object's whole JSON
//! (data, annotations such as kubectl's last-applied-configuration, everything).
//!
//! Invariants:
//! - The plaintext exists only in memory: proposers seal before a batch is encoded, the
//!   log replay and the loader open after reading. Watch history and reads hold plaintext.
//! - The object's store key is the associated data: a sealed object copied under another
//!   key does not open.
//! - KEYID names the key (a hash of it, never the key): a store can tell which key sealed
//!   what, and refuses a key it was not sealed with before reading anything.
//! - The META row [`CHECK_ROW`] holds a known text sealed with the store's key, so a wrong
//!   key is refused even when no Secret exists; its absence means the store has not been
//!   sealed yet (a new store, or one written before encryption existed).
//! - Nonces are 192-bit and random (XChaCha20-Poly1305), so no counter has to be kept.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use sha2::Digest as _;

use super::machine::Op;

/// Keys of objects sealed at rest: Secrets (the apiserver's `core/secrets/NS/NAME`).
pub(crate) const SEALED_PREFIX: &str = "core/secrets/";
/// The META row holding the sealed check text.
pub(crate) const CHECK_ROW: &str = "encryption_check";
const CHECK_TEXT: &[u8] = b"flotilla encryption check";
const CHECK_AAD: &[u8] = b"flotilla/encryption-check";
/// The envelope's prefix, before the key id.
const PREFIX: &str = "k8s:enc:xchacha20poly1305:v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Why sealing, opening or a key file failed. The messages name files and key ids, never
/// key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("reading the encryption key file {}", path.display())]
    ReadKey { path: PathBuf, #[source] source: std::io::Error },
    #[error("writing the encryption key file {}", path.display())]
    WriteKey { path: PathBuf, #[source] source: std::io::Error },
    #[error("the encryption key file {} does not hold a key: expected 32 bytes in base64", path.display())]
    MalformedKey { path: PathBuf },
    #[error(
        "the encryption key in {} (key id {key_id}) is not the key this store's Secrets are sealed with (key id {sealed_with}); start with the key file they were sealed with{hint}",
        path.display()
    )]
    WrongKey { path: PathBuf, key_id: String, sealed_with: String, hint: &'static str },
    #[error(
        "this store's Secrets are sealed with key id {sealed_with}, but its key file {} is missing; pass --encryption-key-file with the key they were sealed with",
        path.display()
    )]
    MissingKey { path: PathBuf, sealed_with: String },
    /// A sealed value did not authenticate, or a value that must be sealed was not.
    #[error("the stored object {key} does not open: {why}")]
    Unsealable { key: String, why: &'static str },
    #[error("no randomness for a key or nonce")]
    Random(#[source] std::io::Error),
}

/// One key and its id.
pub(crate) struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn from_bytes(bytes: &[u8]) -> Option<Key> {
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).ok()?;
        let digest = sha2::Sha256::new().chain_update(b"flotilla encryption key id\0").chain_update(bytes).finalize();
        let id = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Some(Key { id, cipher })
    }

    /// Reads a key file: 32 bytes in base64 (surrounding whitespace ignored).
    pub(crate) fn read(path: &Path) -> Result<Key, EncryptionError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncryptionError::ReadKey { path: path.to_path_buf(), source })?;
        B64.decode(text.trim())
            .ok()
            .filter(|b| b.len() == KEY_LEN)
            .and_then(|b| Key::from_bytes(&b))
            .ok_or_else(|| EncryptionError::MalformedKey { path: path.to_path_buf() })
    }

    /// Makes a new random key and writes it to `path` (which must not exist), mode 0600,
    /// flushed to disk.
    pub(crate) fn generate(path: &Path) -> Result<Key, EncryptionError> {
        let bytes = chacha20poly1305::Key::try_generate().map_err(|e| EncryptionError::Random(std::io::Error::other(e)))?;
        let key = Key::from_bytes(&bytes).expect("a generated key has the key's length");
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt as _;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
            writeln!(f, "{}", B64.encode(bytes.as_slice()))?;
            f.sync_all()?;
            sync_parent(path)
        };
        write().map_err(|source| EncryptionError::WriteKey { path: path.to_path_buf(), source })?;
        Ok(key)
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

/// Makes a rename or creation in `path`'s directory durable.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Whether the object under store key `key` is sealed at rest.
pub(crate) fn sealed(key: &str) -> bool {
    key.starts_with(SEALED_PREFIX)
}

/// The key that seals, and every key that may open (the sealing one first).
pub(crate) struct Keyring {
    keys: Vec<Arc<Key>>,
}

impl Keyring {
    pub(crate) fn new(key: Key) -> Keyring {
        Keyring { keys: vec![Arc::new(key)] }
    }

    /// Seals with `seal`, and also opens what `also_opens` sealed (a rotation).
    pub(crate) fn rotating(seal: Key, also_opens: Key) -> Keyring {
        Keyring { keys: vec![Arc::new(seal), Arc::new(also_opens)] }
    }

    /// The key new envelopes are sealed with.
    pub(crate) fn sealing_id(&self) -> &str {
        self.keys[0].id()
    }

    fn seal_bytes(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, EncryptionError> {
        let key = &self.keys[0];
        let nonce = XNonce::try_generate().map_err(|e| EncryptionError::Random(std::io::Error::other(e)))?;
        let sealed = key
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .map_err(|_| EncryptionError::Unsealable { key: String::from_utf8_lossy(aad).into_owned(), why: "too long to seal" })?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(nonce.as_slice());
        raw.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, B64.encode(raw)))
    }

    fn open_bytes(&self, aad: &[u8], envelope: &str) -> Result<Vec<u8>, Refusal> {
        let (id, body) = envelope.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')).ok_or(Refusal::NotSealed)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| Refusal::OtherKey(id.to_string()))?;
        let raw = B64.decode(body).map_err(|_| Refusal::Corrupt)?;
        if raw.len() < NONCE_LEN {
            return Err(Refusal::Corrupt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| Refusal::Corrupt)?;
        key.cipher.decrypt(&nonce, Payload { msg: sealed, aad }).map_err(|_| Refusal::Corrupt)
    }

    /// The envelope of `object` stored under `key`.
    pub(crate) fn seal(&self, key: &str, object: &Value) -> Result<String, EncryptionError> {
        let plain = serde_json::to_vec(object).expect("a JSON value serializes");
        self.seal_bytes(key.as_bytes(), &plain)
    }

    /// The object an envelope stored under `key` holds.
    pub(crate) fn open(&self, key: &str, stored: &Value) -> Result<Value, EncryptionError> {
        let unsealable = |why| EncryptionError::Unsealable { key: key.to_string(), why };
        let envelope = stored.as_str().ok_or_else(|| unsealable("it is not sealed"))?;
        let plain = self.open_bytes(key.as_bytes(), envelope).map_err(|r| unsealable(r.why()))?;
        serde_json::from_slice(&plain).map_err(|_| unsealable("its plaintext is not JSON"))
    }

    /// Opens the sealed objects of ops decoded from a log entry.
    pub(crate) fn open_ops(&self, ops: &mut [Op]) -> Result<(), EncryptionError> {
        for op in ops {
            if let Op::Create { key, object } | Op::Update { key, object, .. } = op
                && sealed(key)
            {
                *object = self.open(key, object)?;
            }
        }
        Ok(())
    }

    /// The check row's value for this keyring's sealing key.
    pub(crate) fn check_row(&self) -> Result<String, EncryptionError> {
        self.seal_bytes(CHECK_AAD, CHECK_TEXT)
    }

    /// Verifies the store's check row opens with this keyring; `path` names the key file
    /// in the error.
    pub(crate) fn verify(&self, check: &str, path: &Path) -> Result<(), EncryptionError> {
        match self.open_bytes(CHECK_AAD, check) {
            Ok(text) if text == CHECK_TEXT => Ok(()),
            Ok(_) | Err(Refusal::Corrupt | Refusal::NotSealed) => Err(EncryptionError::Unsealable { key: CHECK_ROW.into(), why: "corrupt" }),
            Err(Refusal::OtherKey(sealed_with)) => {
                let next = next_key_path(path);
                let hint = if next.exists() { " (an interrupted key rotation left the new key beside it: run --rotate-encryption-key again to finish it)" } else { "" };
                Err(EncryptionError::WrongKey { path: path.to_path_buf(), key_id: self.sealing_id().to_string(), sealed_with, hint })
            }
        }
    }
}

/// Why an envelope did not open.
enum Refusal {
    NotSealed,
    OtherKey(String),
    Corrupt,
}

impl Refusal {
    fn why(&self) -> &'static str {
        match self {
            Refusal::NotSealed => "it is not sealed",
            Refusal::OtherKey(_) => "it is sealed with another key",
            Refusal::Corrupt => "it does not authenticate (corrupt or altered)",
        }
    }
}

/// The key id an envelope names, if it is one.
pub(crate) fn envelope_key_id(envelope: &str) -> Option<&str> {
    envelope.strip_prefix(PREFIX)?.split_once(':').map(|(id, _)| id)
}

/// Where a rotation keeps the new key until every Secret is sealed with it.
pub(crate) fn next_key_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".next");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keyring(dir: &Path, name: &str) -> Keyring {
        Keyring::new(Key::generate(&dir.join(name)).expect("key"))
    }

    #[test]
    fn sealed_objects_open_under_their_own_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = keyring(dir.path(), "k");
        let obj = json!({"kind": "Secret", "data": {"p": "c2VjcmV0"}, "metadata": {"name": "s"}});
        let env = ring.seal("core/secrets/ns/s", &obj).expect("seal");
        assert!(env.starts_with(&format!("k8s:enc:xchacha20poly1305:v1:{}:", ring.sealing_id())), "{env}");
        assert!(!env.contains("c2VjcmV0"));
        assert_eq!(ring.open("core/secrets/ns/s", &json!(env)).expect("open"), obj);
        // Random nonces: the same object seals differently each time.
        assert_ne!(ring.seal("core/secrets/ns/s", &obj).expect("seal"), env);
        // The store key is authenticated: moved elsewhere, it does not open.
        let moved = ring.open("core/secrets/ns/other", &json!(env)).expect_err("moved");
        assert!(moved.to_string().contains("does not authenticate"), "{moved}");
        // A flipped byte does not open.
        let mut raw = B64.decode(env.rsplit(':').next().expect("body")).expect("b64");
        raw[30] ^= 1;
        let tampered = format!("{PREFIX}{}:{}", ring.sealing_id(), B64.encode(raw));
        assert!(ring.open("core/secrets/ns/s", &json!(tampered)).is_err());
        // Another key cannot open it; plaintext where a seal belongs is refused.
        let other = keyring(dir.path(), "k2");
        let e = other.open("core/secrets/ns/s", &json!(env)).expect_err("other key");
        assert!(e.to_string().contains("sealed with another key"), "{e}");
        assert!(ring.open("core/secrets/ns/s", &obj).is_err());
    }

    #[test]
    fn key_files_hold_32_bytes_in_base64_and_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/key");
        let made = Key::generate(&path).expect("generate");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(Key::read(&path).expect("read back").id(), made.id());
        assert!(Key::generate(&path).is_err(), "never overwrites a key");
        for bad in ["", "not base64!", &B64.encode([7u8; 16])] {
            std::fs::write(&path, bad).expect("write");
            let e = Key::read(&path).err().expect("malformed");
            assert!(matches!(e, EncryptionError::MalformedKey { .. }), "{e}");
        }
        std::fs::write(&path, format!("  {}\n\n", B64.encode([7u8; 32]))).expect("write");
        assert!(Key::read(&path).is_ok());
        assert!(matches!(Key::read(&dir.path().join("missing")), Err(EncryptionError::ReadKey { .. })));
    }

    #[test]
    fn the_check_row_tells_a_wrong_key_without_revealing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = keyring(dir.path(), "k");
        let check = ring.check_row().expect("check");
        ring.verify(&check, &dir.path().join("k")).expect("own key");
        let other = keyring(dir.path(), "k2");
        let e = other.verify(&check, &dir.path().join("k2")).expect_err("wrong key");
        let msg = e.to_string();
        assert!(msg.contains(&format!("key id {}", other.sealing_id())) && msg.contains(&format!("sealed with (key id {})", ring.sealing_id())), "{msg}");
        assert!(!msg.contains(&std::fs::read_to_string(dir.path().join("k2")).expect("key").trim().to_string()));
        // A rotation opens what the old key sealed and seals with the new one.
        let rotating = Keyring::rotating(Key::read(&dir.path().join("k2")).expect("k2"), Key::read(&dir.path().join("k")).expect("k"));
        rotating.verify(&check, &dir.path().join("k2")).expect("old key still opens");
        assert_eq!(envelope_key_id(&rotating.check_row().expect("check")), Some(other.sealing_id()));
    }

    #[test]
    fn replayed_ops_open_their_sealed_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = keyring(dir.path(), "k");
        let secret = json!({"data": {"a": "Yg=="}});
        let mut ops = vec![
            Op::Create { key: "core/secrets/ns/s".into(), object: json!(ring.seal("core/secrets/ns/s", &secret).expect("seal")) },
            Op::Create { key: "core/configmaps/ns/c".into(), object: json!({"data": {"a": "b"}}) },
        ];
        ring.open_ops(&mut ops).expect("open");
        assert!(matches!(&ops[0], Op::Create { object, .. } if *object == secret));
        assert!(matches!(&ops[1], Op::Create { object, .. } if object["data"]["a"] == "b"));
        assert_eq!(next_key_path(Path::new("/d/store/encryption.key")), Path::new("/d/store/encryption.key.next"));
    }
}
