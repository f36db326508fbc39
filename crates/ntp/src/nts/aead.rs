//! AEAD_AES_SIV_CMAC_256 (RFC 5297) as NTS uses it: a 32-byte key, the associated data
//! as the first S2V component and the nonce as the last (RFC 5116's nonce-based
//! interface), the 16-byte synthetic IV in front of the ciphertext.

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;

/// Key length of AEAD_AES_SIV_CMAC_256 (two AES-128 keys).
pub(crate) const KEY_LEN: usize = 32;
/// Length of the synthetic IV (the tag) prepended to every ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// The nonce length this implementation sends.
pub(crate) const NONCE_LEN: usize = 16;

/// A 32-byte AEAD key.
pub(crate) type Key = [u8; KEY_LEN];

/// Encrypts `plaintext`: the result is the tag followed by the ciphertext.
pub(crate) fn seal(key: &Key, associated: &[u8], nonce: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut siv = Aes128Siv::new(key.into());
    // S2V takes at most 126 components; two never fail.
    siv.encrypt([associated, nonce], plaintext)
        .unwrap_or_default()
}

/// Decrypts and authenticates `ciphertext` (tag first); `None` if it does not verify.
pub(crate) fn open(
    key: &Key,
    associated: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    if ciphertext.len() < TAG_LEN {
        return None;
    }
    let mut siv = Aes128Siv::new(key.into());
    siv.decrypt([associated, nonce], ciphertext).ok()
}

/// Fills `buf` from the operating system's random source.
///
/// # Errors
/// The random source failed (no entropy yet, or a broken system).
pub(crate) fn random(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::getrandom(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_tamper() {
        let key = [7u8; KEY_LEN];
        let ct = seal(&key, b"header", &[1; 16], b"secret");
        assert_eq!(ct.len(), TAG_LEN + 6);
        assert_eq!(
            open(&key, b"header", &[1; 16], &ct).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(open(&key, b"headex", &[1; 16], &ct), None);
        assert_eq!(open(&key, b"header", &[2; 16], &ct), None);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open(&key, b"header", &[1; 16], &bad), None);
        assert_eq!(open(&[8u8; KEY_LEN], b"header", &[1; 16], &ct), None);
    }

    #[test]
    fn empty_plaintext() {
        let key = [9u8; KEY_LEN];
        let ct = seal(&key, b"ad", &[0; 16], b"");
        assert_eq!(ct.len(), TAG_LEN);
        assert_eq!(open(&key, b"ad", &[0; 16], &ct), Some(Vec::new()));
        assert_eq!(open(&key, b"ad", &[0; 16], &ct[..15]), None);
    }

    /// RFC 5297 appendix A.2 (nonce-based): key, AD, nonce, plaintext and output.
    #[test]
    fn rfc5297_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key = hex("7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f");
        let ad1 =
            hex("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100");
        let ad2 = hex("102030405060708090a0");
        let nonce = hex("09f911029d74e35bd84156c5635688c0");
        let pt = hex("7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553");
        let want = hex("7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d");
        let key: Key = key.try_into().unwrap();
        let mut siv = Aes128Siv::new((&key).into());
        let got = siv.encrypt([&ad1[..], &ad2[..], &nonce[..]], &pt).unwrap();
        assert_eq!(got, want);
    }
}
