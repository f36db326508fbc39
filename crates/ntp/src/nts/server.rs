//! NTS on the NTP server's side (RFC 8915 §5.7): checks a request's cookie and
//! authenticator, and seals the reply with fresh cookies.
//!
//! | request | [`NtsRequest`] | the NTP server then |
//! |---|---|---|
//! | no NTS extension field | `NotNts` | answers as plain NTP |
//! | valid | `Valid` | answers with [`NtsServer::seal_response`] |
//! | cookie unknown, expired, forged, or already used | `Nak` | sends [`NtsServer::nak_response`] |
//! | NTS fields malformed, or the authenticator does not verify | `Drop` | sends nothing |
//!
//! A request whose authenticator fails is dropped, not NAKed: its cookie is good, and a
//! NAK tells a client to throw its cookies away and run NTS-KE again, which would be
//! wrong for whoever holds them; the packet's sender lacks the cookie's keys, or the
//! packet was altered on the way. RFC 8915 §5.7 also allows a NAK here (chrony sends
//! one); clients cope with both, retrying with their next cookie. Such a packet does not
//! spend the cookie: the genuine request it may have been copied from is still answered.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tracing::warn;

use crate::nts::aead::{self, Key, NONCE_LEN};
use crate::nts::cookie::{self, SessionKeys, COOKIE_LEN};
use crate::nts::fields::{
    self, authenticator_len, AUTHENTICATOR, COOKIE_PLACEHOLDER, NTS_COOKIE, UNIQUE_IDENTIFIER,
    UNIQUE_ID_LEN,
};
use crate::nts::keys::MasterKeys;
use crate::nts::NtsError;
use crate::packet::{
    extension_field_len, write_extension_field, ExtensionField, Header, HEADER_LEN,
};

/// Most cookies one reply carries (the one spent plus seven placeholders).
pub(crate) const MAX_COOKIES_PER_REPLY: usize = 8;

/// Cookies remembered by the replay filter.
pub(crate) const REPLAY_CAPACITY: usize = 1 << 16;

/// The clock the server's key rotation reads.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The verdict on one NTP request.
#[derive(Debug)]
pub enum NtsRequest {
    /// No NTS extension field: a plain NTP request.
    NotNts,
    /// Authenticated; pass it to [`NtsServer::seal_response`].
    Valid(NtsValid),
    /// The cookie cannot be used: answer with [`NtsServer::nak_response`].
    Nak {
        /// The request's Unique Identifier value, to echo.
        unique_id: Vec<u8>,
    },
    /// Send nothing.
    Drop,
}

/// What an authenticated request leaves for its reply.
pub struct NtsValid {
    /// The Unique Identifier value to echo.
    unique_id: Vec<u8>,
    /// The session's server-to-client key.
    s2c: Key,
    /// New cookies, as many as fit in a reply no longer than the request.
    cookies: Vec<Vec<u8>>,
    /// The reply's nonce, drawn while checking so sealing cannot fail.
    nonce: [u8; NONCE_LEN],
    /// The request's length: the reply's upper bound.
    request_len: usize,
}

impl std::fmt::Debug for NtsValid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtsValid")
            .field("cookies", &self.cookies.len())
            .field("request_len", &self.request_len)
            .finish_non_exhaustive()
    }
}

impl NtsValid {
    /// How many new cookies the reply will carry.
    pub fn cookies(&self) -> usize {
        self.cookies.len()
    }
}

/// Recently used cookies, oldest dropped first.
///
/// Clients never send a cookie twice (RFC 8915 §5.7 makes reuse a privacy leak; chrony
/// and our client spend each one once), so a cookie seen again is a replay or a
/// duplicated datagram: it gets a NAK, not time. The filter is bounded, so a cookie
/// replayed after [`REPLAY_CAPACITY`] other requests gets through; that is harmless, as
/// a replayed request only earns a reply its sender cannot use (the client matches the
/// Unique Identifier and origin timestamp of its own request).
#[derive(Debug, Default)]
struct ReplayFilter {
    seen: HashSet<[u8; 20]>,
    order: VecDeque<[u8; 20]>,
}

impl ReplayFilter {
    /// Records `id`; false if it was already there.
    fn insert(&mut self, id: [u8; 20]) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REPLAY_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// The NTS state of an NTP server: its master keys (rotated as time passes) and the
/// replay filter. One instance is shared by the NTS-KE service and the NTP server.
pub struct NtsServer {
    keys: RwLock<MasterKeys>,
    replay: Mutex<ReplayFilter>,
    clock: Clock,
}

impl std::fmt::Debug for NtsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtsServer").finish_non_exhaustive()
    }
}

/// The NTS fields of a request, found in one pass.
struct RequestFields<'p> {
    unique_id: &'p [u8],
    cookie: &'p [u8],
    placeholders: usize,
    auth: ExtensionField<'p>,
}

impl NtsServer {
    /// A server using `keys`, rotated by the system clock.
    pub fn new(keys: MasterKeys) -> Self {
        Self::with_clock(keys, Arc::new(SystemTime::now))
    }

    /// A server whose key rotation reads `clock` (tests move it to rotate).
    pub fn with_clock(keys: MasterKeys, clock: Clock) -> Self {
        Self {
            keys: RwLock::new(keys),
            replay: Mutex::new(ReplayFilter::default()),
            clock,
        }
    }

    /// The ids of the master keys that still decrypt cookies, current first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.read_keys().ids()
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, MasterKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Rotates the master keys if the clock says so.
    fn rotate_if_due(&self) {
        let now = (self.clock)();
        if !self.read_keys().rotation_due(now) {
            return;
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = keys.rotate(now) {
            // The rotated keys are in use; only a restart before the next successful
            // save would lose the cookies issued under the new one.
            warn!(error = %e, "NTS master key rotation");
        }
    }

    /// `n` new cookies holding `keys`, under the current master key.
    ///
    /// # Errors
    /// The random source failed.
    pub fn issue_cookies(&self, keys: &SessionKeys, n: usize) -> Result<Vec<Vec<u8>>, NtsError> {
        self.rotate_if_due();
        let master = self.read_keys();
        (0..n)
            .map(|_| cookie::seal(master.current(), keys).map_err(NtsError::Random))
            .collect()
    }

    /// Judges a request: `packet` is the whole datagram, `fields` its extension fields
    /// (from [`crate::packet::parse_extension_fields`]). See the module table.
    pub fn check_request(&self, packet: &[u8], fields: &[ExtensionField<'_>]) -> NtsRequest {
        if !fields.iter().any(|f| fields::is_nts_field(f.field_type)) {
            return NtsRequest::NotNts;
        }
        let Some(found) = find_fields(packet, fields) else {
            return NtsRequest::Drop;
        };
        let nak = || NtsRequest::Nak {
            unique_id: found.unique_id.to_vec(),
        };
        self.rotate_if_due();
        let Ok(session) = cookie::open(&self.read_keys(), found.cookie) else {
            return nak();
        };
        let Some(plaintext) = fields::open_authenticator(packet, &found.auth, &session.c2s) else {
            return NtsRequest::Drop;
        };
        let Some(inner) = fields::parse_plaintext_fields(&plaintext) else {
            return NtsRequest::Drop;
        };
        let inner_placeholders = inner
            .iter()
            .filter(|(t, v)| *t == COOKIE_PLACEHOLDER && v.len() == found.cookie.len())
            .count();
        let Some(id) = cookie::fingerprint(found.cookie) else {
            return nak();
        };
        if !self
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
        {
            return nak();
        }
        let requested = (1 + found.placeholders + inner_placeholders).min(MAX_COOKIES_PER_REPLY);
        let n = requested.min(cookies_that_fit(packet.len(), found.unique_id.len()));
        let mut nonce = [0u8; NONCE_LEN];
        if aead::random(&mut nonce).is_err() {
            return NtsRequest::Drop;
        }
        let Ok(cookies) = self.issue_cookies(&session, n) else {
            return NtsRequest::Drop;
        };
        NtsRequest::Valid(NtsValid {
            unique_id: found.unique_id.to_vec(),
            s2c: session.s2c,
            cookies,
            nonce,
            request_len: packet.len(),
        })
    }

    /// The whole reply: `header` (the NTP server's mode-4 answer), the echoed Unique
    /// Identifier and the Authenticator holding the new cookies, sealed with the S2C key.
    /// Never longer than the request.
    pub fn seal_response(&self, header: &Header, valid: &NtsValid) -> Vec<u8> {
        let mut plaintext = Vec::new();
        for c in &valid.cookies {
            write_extension_field(&mut plaintext, NTS_COOKIE, c);
        }
        let mut out = Vec::with_capacity(valid.request_len);
        header.write(&mut out);
        write_extension_field(&mut out, UNIQUE_IDENTIFIER, &valid.unique_id);
        fields::write_authenticator(&mut out, &valid.s2c, &valid.nonce, &plaintext);
        debug_assert!(out.len() <= valid.request_len);
        out
    }

    /// The NTS NAK (RFC 8915 §5.7): `header` made a Kiss-o'-Death (leap 3, stratum 0,
    /// reference id `NTSN`) with the request's Unique Identifier, unauthenticated.
    pub fn nak_response(header: &Header, unique_id: &[u8]) -> Vec<u8> {
        let mut kod = *header;
        kod.leap = crate::packet::LEAP_UNSYNCHRONIZED;
        kod.stratum = 0;
        kod.reference_id = *b"NTSN";
        let mut out = Vec::with_capacity(HEADER_LEN + 4 + unique_id.len());
        kod.write(&mut out);
        write_extension_field(&mut out, UNIQUE_IDENTIFIER, unique_id);
        out
    }
}

/// The request's Unique Identifier, its one cookie, its placeholders and its
/// Authenticator (which must end the packet); `None` if any of that is off.
fn find_fields<'p>(packet: &'p [u8], fields: &[ExtensionField<'p>]) -> Option<RequestFields<'p>> {
    let mut unique_id = None;
    let mut cookie = None;
    let mut placeholders = Vec::new();
    let mut auth = None;
    for f in fields {
        match f.field_type {
            UNIQUE_IDENTIFIER if unique_id.is_none() && f.value.len() >= UNIQUE_ID_LEN => {
                unique_id = Some(f.value);
            }
            NTS_COOKIE if cookie.is_none() => cookie = Some(f.value),
            COOKIE_PLACEHOLDER => placeholders.push(f.value.len()),
            AUTHENTICATOR if auth.is_none() && fields::ends_packet(packet, f) => auth = Some(*f),
            UNIQUE_IDENTIFIER | NTS_COOKIE | AUTHENTICATOR => return None,
            _ => {}
        }
    }
    let cookie = cookie?;
    Some(RequestFields {
        unique_id: unique_id?,
        cookie,
        // A placeholder of another size than the cookie cannot make room for one.
        placeholders: placeholders.iter().filter(|&&l| l == cookie.len()).count(),
        auth: auth?,
    })
}

/// How many of our cookies a reply can carry and stay within `request_len` bytes.
fn cookies_that_fit(request_len: usize, unique_id_len: usize) -> usize {
    let fixed = HEADER_LEN + extension_field_len(unique_id_len) + authenticator_len(0);
    request_len.saturating_sub(fixed) / extension_field_len(COOKIE_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_filter_is_bounded() {
        let mut filter = ReplayFilter::default();
        let id = |n: u32| {
            let mut a = [0u8; 20];
            a[..4].copy_from_slice(&n.to_be_bytes());
            a
        };
        assert!(filter.insert(id(0)));
        assert!(!filter.insert(id(0)));
        for n in 1..=REPLAY_CAPACITY as u32 {
            assert!(filter.insert(id(n)));
        }
        assert_eq!(filter.seen.len(), REPLAY_CAPACITY);
        assert!(filter.insert(id(0)), "the oldest was forgotten");
    }

    #[test]
    fn room_for_cookies() {
        // chrony's request with 8 cookies of ours: header, uid 36, cookie + 7
        // placeholders of 108, authenticator 40.
        let request = 48 + 36 + 8 * 108 + 40;
        assert_eq!(cookies_that_fit(request, 32), 8);
        assert_eq!(cookies_that_fit(request - 1, 32), 7);
        assert_eq!(cookies_that_fit(48 + 36 + 108 + 40, 32), 1);
        assert_eq!(cookies_that_fit(10, 32), 0);
    }
}
