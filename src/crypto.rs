//! Secrets at rest. API keys are stored only as SHA-256 digests (they are 256-bit random, so a
//! fast digest is enough and lookups stay an index hit). Cluster credentials are sealed with
//! ChaCha20-Poly1305 under the service's encryption key and opened only when a job needs them.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The stored form of an API key secret.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or create the encryption key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("sealed value is corrupt or was sealed with another encryption key")]
    Open,
}

/// Seals and opens small secrets (cluster credentials). `Debug` prints nothing of the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_base64(key: &SecretString) -> Result<Self, CryptoError> {
        let bytes = B64
            .decode(key.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// The configured key, or the one kept in `path` (created with mode 0600 on first use).
    pub fn load_or_create(
        configured: Option<&SecretString>,
        path: &Path,
    ) -> Result<Self, CryptoError> {
        if let Some(key) = configured {
            return Self::from_base64(key);
        }
        let io_err = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&SecretString::from(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err)?;
                }
                let mut key = [0u8; 32];
                rand::rng().fill(&mut key);
                let encoded = B64.encode(key);
                write_private(path, encoded.as_bytes()).map_err(io_err)?;
                Self::from_base64(&SecretString::from(encoded))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// `base64(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        B64.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let raw = B64.decode(sealed).map_err(|_| CryptoError::Open)?;
        if raw.len() < 12 {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Open)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = SecretBox::load_or_create(None, &path).unwrap();
        let sealed = a.seal(b"token");
        assert!(!sealed.contains("token"));
        let again = SecretBox::load_or_create(None, &path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"token");
        let other = SecretBox::load_or_create(None, &dir.path().join("other")).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(a.open("not base64!").is_err());
    }

    #[test]
    fn bad_configured_keys_are_refused() {
        let short = SecretString::from(B64.encode([1u8; 16]));
        assert!(SecretBox::from_base64(&short).is_err());
    }

    #[test]
    fn api_key_hash_is_stable_hex() {
        assert_eq!(hash_api_key("a"), hash_api_key("a"));
        assert_eq!(hash_api_key("a").len(), 64);
    }
}
