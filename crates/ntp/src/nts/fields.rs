//! The NTS extension fields of NTP packets (RFC 8915 §5.3–5.6).
//!
//! ```text
//! Unique Identifier 0x0104   random, >= 32 bytes, echoed by the server
//! NTS Cookie        0x0204   one cookie (requests; encrypted in responses)
//! Cookie Placeholder 0x0304  as long as a cookie: asks for one more
//! Authenticator     0x0404   last field:
//!   +-----------------+---------------------+
//!   | Nonce Length 16 | Ciphertext Length 16|
//!   +-----------------+---------------------+
//!   | Nonce, zero-padded to 4               |
//!   | Ciphertext (tag + encrypted fields),  |
//!   |   zero-padded to 4                    |
//!   | (additional padding)                  |
//!   +---------------------------------------+
//! ```
//!
//! The associated data is the packet from its first byte to the start of the
//! Authenticator field; the plaintext is a sequence of extension fields (empty in
//! requests, the new cookies in responses).

use crate::nts::aead::{self, Key, NONCE_LEN, TAG_LEN};
use crate::packet::{extension_field_len, write_extension_field, ExtensionField};

/// Field type of the Unique Identifier.
pub const UNIQUE_IDENTIFIER: u16 = 0x0104;
/// Field type of an NTS Cookie.
pub const NTS_COOKIE: u16 = 0x0204;
/// Field type of an NTS Cookie Placeholder.
pub const COOKIE_PLACEHOLDER: u16 = 0x0304;
/// Field type of the NTS Authenticator and Encrypted Extension Fields.
pub const AUTHENTICATOR: u16 = 0x0404;

/// Length of the unique identifiers this implementation sends (RFC 8915: at least 32).
pub const UNIQUE_ID_LEN: usize = 32;

/// Whether a field type is one of NTS's.
pub fn is_nts_field(field_type: u16) -> bool {
    matches!(
        field_type,
        UNIQUE_IDENTIFIER | NTS_COOKIE | COOKIE_PLACEHOLDER | AUTHENTICATOR
    )
}

/// Length of the Authenticator field [`write_authenticator`] appends for a plaintext of
/// `plaintext_len` bytes.
pub fn authenticator_len(plaintext_len: usize) -> usize {
    extension_field_len(4 + NONCE_LEN + TAG_LEN + plaintext_len)
}

/// Appends the Authenticator field to `packet`, authenticating every byte already in it
/// and encrypting `plaintext` (a sequence of extension fields).
pub fn write_authenticator(
    packet: &mut Vec<u8>,
    key: &Key,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
) {
    let ciphertext = aead::seal(key, packet, nonce, plaintext);
    let mut value = Vec::with_capacity(4 + NONCE_LEN + ciphertext.len());
    value.extend_from_slice(&(NONCE_LEN as u16).to_be_bytes());
    // The ciphertext is at most a datagram long: it fits 16 bits.
    value.extend_from_slice(&(ciphertext.len() as u16).to_be_bytes());
    value.extend_from_slice(nonce);
    value.extend_from_slice(&ciphertext);
    // write_extension_field pads the ciphertext to 4 bytes, as the format wants.
    write_extension_field(packet, AUTHENTICATOR, &value);
}

/// The nonce and ciphertext of an Authenticator field's value; `None` if the lengths
/// it states do not fit in it.
pub fn parse_authenticator(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let [n0, n1, c0, c1, rest @ ..] = value else {
        return None;
    };
    let nonce_len = usize::from(u16::from_be_bytes([*n0, *n1]));
    let ct_len = usize::from(u16::from_be_bytes([*c0, *c1]));
    if nonce_len == 0 || ct_len < TAG_LEN {
        return None;
    }
    let nonce_padded = nonce_len.div_ceil(4) * 4;
    let nonce = rest.get(..nonce_len)?;
    let ciphertext = rest.get(nonce_padded..nonce_padded + ct_len)?;
    Some((nonce, ciphertext))
}

/// Verifies the Authenticator field `auth` of `packet` with `key` and returns the
/// decrypted plaintext.
pub fn open_authenticator(packet: &[u8], auth: &ExtensionField<'_>, key: &Key) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = parse_authenticator(auth.value)?;
    let associated = packet.get(..auth.offset)?;
    aead::open(key, associated, nonce, ciphertext)
}

/// Whether `field` is the packet's last bytes (the Authenticator must be: nothing after
/// it would be authenticated).
pub fn ends_packet(packet: &[u8], field: &ExtensionField<'_>) -> bool {
    field.offset + 4 + field.value.len() == packet.len()
}

/// The extension fields of a decrypted plaintext, as `(type, value)`; `None` when the
/// bytes are not a whole sequence of fields (each at least 4 bytes and a multiple of 4).
pub fn parse_plaintext_fields(mut bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut fields = Vec::new();
    // Each field takes at least 4 bytes, so this loop ends.
    while !bytes.is_empty() {
        let [t0, t1, l0, l1, ..] = bytes else {
            return None;
        };
        let field_type = u16::from_be_bytes([*t0, *t1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if len < 4 || len % 4 != 0 || len > bytes.len() {
            return None;
        }
        fields.push((field_type, &bytes[4..len]));
        bytes = &bytes[len..];
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_extension_fields;

    #[test]
    fn authenticator_layout() {
        let mut packet = vec![0xab; 48];
        let nonce = [3u8; NONCE_LEN];
        write_authenticator(&mut packet, &[1; 32], &nonce, b"");
        assert_eq!(packet.len(), 48 + authenticator_len(0));
        assert_eq!(&packet[48..56], &[0x04, 0x04, 0, 40, 0, 16, 0, 16]);
        assert_eq!(&packet[56..72], &nonce);
        let fields = parse_extension_fields(&packet).unwrap();
        assert_eq!(fields.len(), 1);
        assert!(ends_packet(&packet, &fields[0]));
        assert_eq!(
            open_authenticator(&packet, &fields[0], &[1; 32]),
            Some(vec![])
        );
        assert_eq!(open_authenticator(&packet, &fields[0], &[2; 32]), None);
    }

    #[test]
    fn authenticator_with_fields_and_padding() {
        let mut plain = Vec::new();
        write_extension_field(&mut plain, NTS_COOKIE, &[9; 100]);
        let mut packet = vec![0; 48];
        write_authenticator(&mut packet, &[1; 32], &[0; NONCE_LEN], &plain);
        let fields = parse_extension_fields(&packet).unwrap();
        let opened = open_authenticator(&packet, &fields[0], &[1; 32]).unwrap();
        assert_eq!(
            parse_plaintext_fields(&opened),
            Some(vec![(NTS_COOKIE, &[9u8; 100][..])])
        );
    }

    #[test]
    fn short_nonce_with_padding_parses() {
        // nonce of 5 bytes padded to 8, ciphertext of 18 padded to 20
        let mut value = vec![0, 5, 0, 18];
        value.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        value.extend_from_slice(&[7; 18]);
        value.extend_from_slice(&[0, 0]);
        let (nonce, ct) = parse_authenticator(&value).unwrap();
        assert_eq!(nonce, &[1, 2, 3, 4, 5]);
        assert_eq!(ct, &[7; 18]);
    }

    #[test]
    fn lengths_beyond_the_value() {
        assert_eq!(parse_authenticator(&[0, 16, 0, 16]), None);
        assert_eq!(parse_authenticator(&[0, 0, 0, 16, 1, 2]), None);
        assert_eq!(parse_authenticator(&[]), None);
        let mut value = vec![0, 16, 0, 15];
        value.resize(40, 0);
        assert_eq!(
            parse_authenticator(&value),
            None,
            "ciphertext shorter than a tag"
        );
    }

    #[test]
    fn plaintext_fields_malformed() {
        assert_eq!(parse_plaintext_fields(&[]), Some(vec![]));
        assert_eq!(parse_plaintext_fields(&[0, 1, 0, 3, 0, 0]), None);
        assert_eq!(parse_plaintext_fields(&[0, 1, 0, 12, 0, 0, 0, 0]), None);
        assert_eq!(parse_plaintext_fields(&[0, 1]), None);
    }
}
