//! Server cookies: the session keys of one NTS-KE, encrypted under a master key so the
//! server keeps no per-client state (RFC 8915 §6 leaves the format to the server).
//!
//! ```text
//! +-----------+-----------+------------------------------------------------------+
//! | key id    | nonce     | AES-SIV(master key, AD = key id, nonce,               |
//! | 4 bytes   | 16 bytes  |   AEAD id u16 | 0 u16 | C2S key 32 | S2C key 32)      |
//! +-----------+-----------+------------------------------------------------------+
//!                          16-byte tag + 68 bytes:  104 bytes in all
//! ```
//!
//! The two reserved zero bytes make the cookie a multiple of four bytes long, which
//! chrony's client requires of New Cookie records.

use std::fmt;

use crate::nts::aead::{self, Key, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::nts::keys::{MasterKey, MasterKeys};
use crate::nts::records::AEAD_AES_SIV_CMAC_256;

/// Length of every cookie this server issues.
pub const COOKIE_LEN: usize = 4 + NONCE_LEN + TAG_LEN + PLAINTEXT_LEN;

const PLAINTEXT_LEN: usize = 4 + 2 * KEY_LEN;

/// The keys one NTS-KE session agreed on.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// The AEAD algorithm id (always [`AEAD_AES_SIV_CMAC_256`] here).
    pub aead: u16,
    /// Client-to-server key: authenticates requests.
    pub c2s: Key,
    /// Server-to-client key: authenticates and encrypts responses.
    pub s2c: Key,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("aead", &self.aead)
            .finish_non_exhaustive()
    }
}

/// Why a cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CookieError {
    /// Not the length of a cookie of ours.
    #[error("cookie has the wrong length")]
    Length,
    /// Its master key is not (or no longer) kept.
    #[error("cookie's master key {0:08x} is unknown or expired")]
    UnknownKey(u32),
    /// It does not decrypt under its master key: forged or damaged.
    #[error("cookie does not authenticate")]
    Forged,
    /// It decrypts, but holds something other than session keys we issue.
    #[error("cookie holds an unsupported algorithm")]
    Content,
}

/// Encrypts `keys` under `master` with a fresh nonce.
///
/// # Errors
/// The random source failed.
pub(crate) fn seal(master: &MasterKey, keys: &SessionKeys) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    aead::random(&mut nonce)?;
    let id = master.id.to_be_bytes();
    let mut plain = Vec::with_capacity(PLAINTEXT_LEN);
    plain.extend_from_slice(&keys.aead.to_be_bytes());
    plain.extend_from_slice(&[0, 0]);
    plain.extend_from_slice(&keys.c2s);
    plain.extend_from_slice(&keys.s2c);
    let mut cookie = Vec::with_capacity(COOKIE_LEN);
    cookie.extend_from_slice(&id);
    cookie.extend_from_slice(&nonce);
    cookie.extend_from_slice(&aead::seal(&master.key, &id, &nonce, &plain));
    Ok(cookie)
}

/// Decrypts a cookie with whichever kept master key its id names.
///
/// # Errors
/// See [`CookieError`].
pub(crate) fn open(keys: &MasterKeys, cookie: &[u8]) -> Result<SessionKeys, CookieError> {
    if cookie.len() != COOKIE_LEN {
        return Err(CookieError::Length);
    }
    let (id, rest) = cookie.split_at(4);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    let master = keys.get(key_id).ok_or(CookieError::UnknownKey(key_id))?;
    let plain = aead::open(&master.key, id, nonce, sealed).ok_or(CookieError::Forged)?;
    let [a, b, 0, 0, ..] = plain[..] else {
        return Err(CookieError::Content);
    };
    let aead_id = u16::from_be_bytes([a, b]);
    if plain.len() != PLAINTEXT_LEN || aead_id != AEAD_AES_SIV_CMAC_256 {
        return Err(CookieError::Content);
    }
    let mut c2s = [0u8; KEY_LEN];
    let mut s2c = [0u8; KEY_LEN];
    c2s.copy_from_slice(&plain[4..4 + KEY_LEN]);
    s2c.copy_from_slice(&plain[4 + KEY_LEN..]);
    Ok(SessionKeys {
        aead: aead_id,
        c2s,
        s2c,
    })
}

/// What identifies a cookie in the replay filter: its key id and nonce, unique per
/// cookie issued (the rest is determined by them and the session keys).
pub(crate) fn fingerprint(cookie: &[u8]) -> Option<[u8; 4 + NONCE_LEN]> {
    cookie.get(..4 + NONCE_LEN)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn session() -> SessionKeys {
        SessionKeys {
            aead: AEAD_AES_SIV_CMAC_256,
            c2s: [1; KEY_LEN],
            s2c: [2; KEY_LEN],
        }
    }

    #[test]
    fn roundtrip() {
        let keys = MasterKeys::generate(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        let cookie = seal(keys.current(), &session()).unwrap();
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert_eq!(cookie.len() % 4, 0);
        assert_eq!(open(&keys, &cookie), Ok(session()));
        let other = seal(keys.current(), &session()).unwrap();
        assert_ne!(cookie, other, "a fresh nonce per cookie");
    }

    #[test]
    fn rejected() {
        let keys = MasterKeys::generate(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        let cookie = seal(keys.current(), &session()).unwrap();
        assert_eq!(open(&keys, &cookie[1..]), Err(CookieError::Length));
        let mut bad = cookie.clone();
        bad[30] ^= 0x40;
        assert_eq!(open(&keys, &bad), Err(CookieError::Forged));
        let mut unknown = cookie.clone();
        unknown[0] ^= 1;
        assert!(matches!(
            open(&keys, &unknown),
            Err(CookieError::UnknownKey(_))
        ));
        let others = MasterKeys::generate(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        assert!(open(&others, &cookie).is_err());
    }
}
