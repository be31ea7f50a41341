//! Encryption at rest for platform credentials: XChaCha20-Poly1305 (AEAD)
//! under `HERALD_SECRET_KEY`, with the owning row's id as associated data so a
//! sealed value cannot be moved to another row.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The 32-byte credential key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the secret key must be 32 bytes encoded in base64 (got {0})")]
    BadKey(String),
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this key (wrong HERALD_SECRET_KEY, or tampered)")]
    Rejected,
}

impl SecretKey {
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self(key.into())
    }

    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::BadKey("text that is not base64".into()))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKey(format!("{} bytes", bytes.len())))?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Encrypt `plaintext`, bound to `context` (the row id).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and nonce cannot fail for in-memory data.
        let ciphertext = self.cipher().encrypt(&nonce, payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{VERSION_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed
            .strip_prefix(VERSION_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_and_context_only() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"{\"access_token\":\"abc\"}", "account-1");
        assert!(!sealed.contains("abc"));
        assert_eq!(
            key.open(&sealed, "account-1").unwrap(),
            b"{\"access_token\":\"abc\"}"
        );
        assert_eq!(key.open(&sealed, "account-2"), Err(CryptoError::Rejected));
        assert_eq!(
            SecretKey::generate().open(&sealed, "account-1"),
            Err(CryptoError::Rejected)
        );
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let key = SecretKey::generate();
        assert_ne!(key.seal(b"x", "c"), key.seal(b"x", "c"));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.0, key.0);
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }

    #[test]
    fn malformed_values_are_refused() {
        let key = SecretKey::generate();
        assert_eq!(key.open("plain", "c"), Err(CryptoError::Malformed));
        assert_eq!(key.open("v1:AAAA", "c"), Err(CryptoError::Malformed));
    }
}
