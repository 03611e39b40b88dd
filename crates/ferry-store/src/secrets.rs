//! Encryption of stored secrets (Dropbox tokens) with XChaCha20-Poly1305.
//!
//! The key comes from `FERRY_SECRET_KEY` (64 hex digits) or from a key file Ferry creates
//! with mode 0600 beside its database. A lost key means reconnecting Dropbox, never lost files.

use crate::{StoreError, StoreResult};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ferry_core::secret::Secret;
use rand::RngCore;
use std::path::Path;

const NONCE_LEN: usize = 24;

/// Encrypts and decrypts secrets for storage.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(***)")
    }
}

impl SecretCipher {
    /// A cipher from a 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        SecretCipher {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A cipher from 64 hex digits.
    pub fn from_hex(hex_key: &str) -> StoreResult<Self> {
        let bytes = decode_hex_key(hex_key.trim())
            .ok_or_else(|| StoreError::Secret("the secret key must be 64 hex digits".into()))?;
        Ok(Self::from_key(&bytes))
    }

    /// Reads the key file at `path`, creating it with a fresh random key if it does not exist.
    pub fn load_or_create(path: &Path) -> StoreResult<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text).map_err(|_| {
                StoreError::Secret(format!("key file {} is not 64 hex digits", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let hex_key: String = key.iter().map(|b| format!("{b:02x}")).collect();
                write_private_file(path, hex_key.as_bytes())?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Encrypts: random nonce followed by the ciphertext.
    pub fn encrypt(&self, secret: &Secret) -> StoreResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), secret.expose().as_bytes())
            .map_err(|_| StoreError::Secret("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) produced.
    pub fn decrypt(&self, data: &[u8]) -> StoreResult<Secret> {
        if data.len() < NONCE_LEN {
            return Err(StoreError::Secret("stored secret is truncated".into()));
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                StoreError::Secret("stored secret does not decrypt with this key".into())
            })?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| StoreError::Secret("stored secret is not text".into()))
    }
}

fn decode_hex_key(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Writes a new file readable only by its owner (0600 on Unix); fails if it already exists.
pub fn write_private_file(path: &Path, data: &[u8]) -> StoreResult<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = SecretCipher::load_or_create(&path).unwrap();
        let b = SecretCipher::load_or_create(&path).unwrap();
        let sealed = a.encrypt(&Secret::new("sl.token")).unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"sl.token"),
            "ciphertext must not contain the token"
        );
        assert_eq!(b.decrypt(&sealed).unwrap().expose(), "sl.token");
        let other = SecretCipher::from_key(&[7u8; 32]);
        assert!(other.decrypt(&sealed).is_err());
        assert!(a.decrypt(&sealed[..10]).is_err());
        assert!(SecretCipher::from_hex("zz").is_err());
    }
}
