//! NTS on the NTP client's side (RFC 8915 §5.7): the keys and cookies of one key
//! exchange, spent one cookie per request and refilled from each authenticated reply.

use std::collections::VecDeque;

use crate::client::RequestAuth;
use crate::nts::aead::{self, NONCE_LEN};
use crate::nts::cookie::SessionKeys;
use crate::nts::fields::{
    self, AUTHENTICATOR, COOKIE_PLACEHOLDER, NTS_COOKIE, UNIQUE_IDENTIFIER, UNIQUE_ID_LEN,
};
use crate::nts::NtsError;
use crate::packet::{parse_extension_fields, write_extension_field, Header, MODE_SERVER};

/// Cookies a session tries to hold (RFC 8915 §5.7 suggests eight).
pub(crate) const TARGET_COOKIES: usize = 8;

/// Most cookies a session keeps (extra ones in a reply are dropped).
pub(crate) const MAX_COOKIES: usize = 8;

/// Longest cookie accepted from a server (chrony's bound too).
pub(crate) const MAX_COOKIE_LEN: usize = 256;

/// Requests awaiting a reply whose unique ids are remembered (older ones are forgotten,
/// and their replies rejected).
const MAX_PENDING: usize = 16;

/// The outcome of one NTS-KE: keys, cookies and where to send NTP.
pub struct NtsSession {
    /// The exported session keys.
    keys: SessionKeys,
    /// Unspent cookies, oldest first.
    cookies: VecDeque<Vec<u8>>,
    /// Unique ids of the requests sent and not yet answered, newest last.
    pending: VecDeque<[u8; UNIQUE_ID_LEN]>,
    /// Whether an authenticated NTS NAK came: the cookies are no good any more.
    nak: bool,
    /// The NTP server to query: the Server Negotiation record's, else the NTS-KE host.
    pub ntp_server: String,
    /// The NTP port: the Port Negotiation record's, else 123.
    pub ntp_port: u16,
}

impl std::fmt::Debug for NtsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtsSession")
            .field("cookies", &self.cookies.len())
            .field("ntp_server", &self.ntp_server)
            .field("ntp_port", &self.ntp_port)
            .field("nak", &self.nak)
            .finish_non_exhaustive()
    }
}

impl NtsSession {
    /// A session from the parts a key exchange yields.
    pub fn new(
        keys: SessionKeys,
        cookies: Vec<Vec<u8>>,
        ntp_server: String,
        ntp_port: u16,
    ) -> Self {
        Self {
            keys,
            cookies: cookies.into_iter().take(MAX_COOKIES).collect(),
            pending: VecDeque::new(),
            nak: false,
            ntp_server,
            ntp_port,
        }
    }

    /// The session keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Unspent cookies.
    pub fn cookies(&self) -> usize {
        self.cookies.len()
    }

    /// Whether the server sent an NTS NAK: a new key exchange is needed.
    pub fn received_nak(&self) -> bool {
        self.nak
    }

    /// Whether this session can protect another request (a cookie left, no NAK).
    pub fn usable(&self) -> bool {
        !self.nak && !self.cookies.is_empty()
    }

    /// The request datagram for `header`: the header, a fresh Unique Identifier, one
    /// cookie, enough placeholders to be back at `TARGET_COOKIES` (8) after the reply,
    /// and the Authenticator (C2S key, nothing encrypted).
    ///
    /// # Errors
    /// [`NtsError::OutOfCookies`] with no cookie left; [`NtsError::Random`].
    pub fn protect(&mut self, header: &Header) -> Result<Vec<u8>, NtsError> {
        let mut unique_id = [0u8; UNIQUE_ID_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        aead::random(&mut unique_id).map_err(NtsError::Random)?;
        aead::random(&mut nonce).map_err(NtsError::Random)?;
        let cookie = self.cookies.pop_front().ok_or(NtsError::OutOfCookies)?;
        let placeholders = TARGET_COOKIES.saturating_sub(self.cookies.len() + 1);
        let mut packet = header.to_bytes();
        write_extension_field(&mut packet, UNIQUE_IDENTIFIER, &unique_id);
        write_extension_field(&mut packet, NTS_COOKIE, &cookie);
        let blank = vec![0u8; cookie.len()];
        for _ in 0..placeholders {
            write_extension_field(&mut packet, COOKIE_PLACEHOLDER, &blank);
        }
        fields::write_authenticator(&mut packet, &self.keys.c2s, &nonce, &[]);
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(unique_id);
        Ok(packet)
    }

    /// Checks a reply: its Unique Identifier must be one of a pending request's, and its
    /// Authenticator must verify with the S2C key (the new cookies inside are kept). An
    /// NTS NAK (KoD `NTSN`) with a pending request's identifier is accepted as
    /// authentic and marks the session as needing a new key exchange.
    ///
    /// The NAK passes (so the NTP client reports the Kiss-o'-Death); check
    /// [`NtsSession::received_nak`] afterwards.
    ///
    /// # Errors
    /// [`NtsError::Unauthenticated`] when a check fails: the reply is to be ignored.
    pub fn check_reply(&mut self, reply: &[u8]) -> Result<(), NtsError> {
        let bad = NtsError::Unauthenticated;
        let header = Header::parse(reply).map_err(|_| bad("not an NTP packet"))?;
        if header.mode != MODE_SERVER {
            return Err(bad("not a server reply"));
        }
        let fields =
            parse_extension_fields(reply).map_err(|_| bad("malformed extension fields"))?;
        let mut unique_id = None;
        let mut auth = None;
        for f in &fields {
            match f.field_type {
                UNIQUE_IDENTIFIER if unique_id.is_none() => unique_id = Some(f.value),
                AUTHENTICATOR if auth.is_none() => auth = Some(*f),
                UNIQUE_IDENTIFIER | AUTHENTICATOR => return Err(bad("NTS field repeated")),
                _ => {}
            }
        }
        let unique_id = unique_id.ok_or(bad("no unique identifier"))?;
        let index = self
            .pending
            .iter()
            .position(|id| id[..] == *unique_id)
            .ok_or(bad("unique identifier of no pending request"))?;
        let Some(auth) = auth else {
            if header.kiss_code() == Some(*b"NTSN") {
                self.pending.remove(index);
                self.nak = true;
                return Ok(());
            }
            return Err(bad("no authenticator"));
        };
        if !fields::ends_packet(reply, &auth) {
            return Err(bad("data after the authenticator"));
        }
        let plaintext = fields::open_authenticator(reply, &auth, &self.keys.s2c)
            .ok_or(bad("authenticator does not verify"))?;
        let inner =
            fields::parse_plaintext_fields(&plaintext).ok_or(bad("malformed encrypted fields"))?;
        self.pending.remove(index);
        for (field_type, value) in inner {
            if field_type == NTS_COOKIE
                && !value.is_empty()
                && value.len() <= MAX_COOKIE_LEN
                && self.cookies.len() < MAX_COOKIES
            {
                self.cookies.push_back(value.to_vec());
            }
        }
        Ok(())
    }
}

impl RequestAuth for NtsSession {
    /// [`NtsSession::protect`]; with no cookie left (or no randomness) the bare header,
    /// which the server answers as plain NTP and [`RequestAuth::verify`] then rejects.
    fn extend(&mut self, header: &Header) -> Vec<u8> {
        self.protect(header).unwrap_or_else(|_| header.to_bytes())
    }

    fn verify(&mut self, reply: &[u8]) -> Result<(), String> {
        if self.pending.is_empty() && self.cookies.is_empty() {
            return Err(NtsError::OutOfCookies.to_string());
        }
        self.check_reply(reply).map_err(|e| e.to_string())
    }
}
