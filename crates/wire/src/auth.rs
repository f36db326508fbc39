//! Keys, nonces and the MACs of the mutual HMAC-SHA256 handshake (pure, no I/O but key
//! files).
//!
//! ```text
//! server → client  hello {nonce: ns}
//! client → server  auth  {nonce: nc, mac: HMAC(key, "sockit-auth-v1/client" || ns || nc)}
//! server → client  ok    {mac: HMAC(key, "sockit-auth-v1/server" || nc || ns)}
//! ```
//! Over TLS both MACs also cover the TLS channel binding (`|| binding`, 32 bytes of
//! exported keying material), so a handshake relayed through another TLS session fails.
//! Nonces are 32 bytes from the OS RNG, sent as hex; MACs are compared in constant time.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Length of keys and nonces in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 32;

const CLIENT_LABEL: &[u8] = b"sockit-auth-v1/client";
const SERVER_LABEL: &[u8] = b"sockit-auth-v1/server";

/// A shared secret key (32 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Errors reading or creating key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error("key file {path} must hold {} hex digits (32 bytes); create one with `sockit keygen FILE`", KEY_LEN * 2)]
    Format {
        /// The key file.
        path: PathBuf,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Rng(String),
}

/// A 32-byte nonce.
pub type Nonce = [u8; NONCE_LEN];

impl Key {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the OS RNG.
    ///
    /// # Errors
    /// The OS RNG failed.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::getrandom(&mut k).map_err(|e| KeyError::Rng(e.to_string()))?;
        Ok(Self(k))
    }

    /// Parses the key file text: 64 hex digits, surrounding whitespace ignored.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let mut k = [0u8; KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut k).ok()?;
        Some(Self(k))
    }

    /// The key as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// The file cannot be read or is not 64 hex digits.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_hex(&text).ok_or_else(|| KeyError::Format {
            path: path.to_owned(),
        })
    }

    /// Writes the key as hex to a new file with mode 0600 (refusing to overwrite).
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(format!("{}\n", self.to_hex()).as_bytes())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    fn mac(&self, label: &[u8], a: &[u8], b: &[u8], binding: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(label);
        m.update(a);
        m.update(b);
        m.update(binding);
        m.finalize().into_bytes().into()
    }

    /// The client's proof: HMAC(key, "sockit-auth-v1/client" || ns || nc || binding), where
    /// `binding` is the TLS channel binding (empty over plain TCP).
    pub fn client_mac(
        &self,
        server_nonce: &Nonce,
        client_nonce: &Nonce,
        binding: &[u8],
    ) -> [u8; 32] {
        self.mac(CLIENT_LABEL, server_nonce, client_nonce, binding)
    }

    /// The server's proof: HMAC(key, "sockit-auth-v1/server" || nc || ns || binding).
    pub fn server_mac(
        &self,
        server_nonce: &Nonce,
        client_nonce: &Nonce,
        binding: &[u8],
    ) -> [u8; 32] {
        self.mac(SERVER_LABEL, client_nonce, server_nonce, binding)
    }
}

/// A fresh nonce from the OS RNG.
///
/// # Errors
/// The OS RNG failed.
pub fn fresh_nonce() -> Result<Nonce, KeyError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut n).map_err(|e| KeyError::Rng(e.to_string()))?;
    Ok(n)
}

/// Parses a hex nonce of exactly 32 bytes.
pub fn parse_nonce(hex_text: &str) -> Option<Nonce> {
    let mut n = [0u8; NONCE_LEN];
    hex::decode_to_slice(hex_text, &mut n).ok()?;
    Some(n)
}

/// Compares an expected MAC with a hex MAC from the peer in constant time (over the MAC
/// bytes; a malformed hex string is rejected without comparing).
pub fn verify_mac(expected: &[u8; 32], given_hex: &str) -> bool {
    let mut given = [0u8; 32];
    if hex::decode_to_slice(given_hex, &mut given).is_err() {
        return false;
    }
    expected.ct_eq(&given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_differ_by_direction_and_nonce() {
        let k = Key::from_bytes([7; 32]);
        let ns = [1; 32];
        let nc = [2; 32];
        let c = k.client_mac(&ns, &nc, &[]);
        let s = k.server_mac(&ns, &nc, &[]);
        assert_ne!(c, s);
        assert_ne!(c, k.client_mac(&[3; 32], &nc, &[]));
        assert!(verify_mac(&c, &hex::encode(c)));
        assert!(!verify_mac(&c, &hex::encode(s)));
        assert!(!verify_mac(&c, "zz"));
        assert!(!verify_mac(&c, ""));
    }

    #[test]
    fn binding_changes_both_macs() {
        let k = Key::from_bytes([7; 32]);
        assert_ne!(
            k.client_mac(&[1; 32], &[2; 32], &[]),
            k.client_mac(&[1; 32], &[2; 32], &[9; 32])
        );
        assert_ne!(
            k.server_mac(&[1; 32], &[2; 32], &[]),
            k.server_mac(&[1; 32], &[2; 32], &[9; 32])
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256 with key 32×0x00 over the client label and two zero nonces, checked
        // against Python: hmac.new(bytes(32), b"sockit-auth-v1/client"+bytes(64), "sha256").
        let k = Key::from_bytes([0; 32]);
        let mac = k.client_mac(&[0; 32], &[0; 32], &[]);
        assert_eq!(
            hex::encode(mac),
            "14775d793c8a9e8a0201e84c1e8bec708b794201c9a604ca68398534dd6ffc8c"
        );
    }

    #[test]
    fn key_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let k = Key::generate().unwrap();
        k.save_new(&path).unwrap();
        assert_eq!(Key::load(&path).unwrap(), k);
        assert!(k.save_new(&path).is_err(), "keygen must not overwrite");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "abc").unwrap();
        assert!(matches!(Key::load(&path), Err(KeyError::Format { .. })));
    }

    #[test]
    fn nonce_parsing() {
        assert!(parse_nonce(&"ab".repeat(32)).is_some());
        assert!(parse_nonce(&"ab".repeat(31)).is_none());
        assert!(parse_nonce("not hex").is_none());
    }
}
