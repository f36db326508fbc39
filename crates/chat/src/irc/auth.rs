//! Client authentication: the [`IrcAuth`] policy the server asks, and the pure parts of
//! IRCv3 SASL PLAIN and EXTERNAL (chunked `AUTHENTICATE` payloads, the PLAIN message,
//! the EXTERNAL authorization identity).
//!
//! A client authenticates with an account in one of three ways:
//!
//! - **SASL PLAIN** (IRCv3 `sasl` 3.1): `CAP REQ :sasl`, `AUTHENTICATE PLAIN`, then the
//!   base64 of `authzid NUL authcid NUL password` in chunks of 400 bytes (a chunk shorter
//!   than 400 ends the payload; `+` ends a payload whose length is a multiple of 400, or
//!   sends an empty one);
//! - **SASL EXTERNAL**, on the TLS port with a client certificate: `AUTHENTICATE
//!   EXTERNAL`, then `AUTHENTICATE +` (or the base64 of the account, which must be the
//!   one the certificate belongs to). The certificate's SHA-256 fingerprint
//!   ([`PeerIdentity`]) names the account ([`IrcAuth::verify_cert`]), as in Ergo;
//! - **`PASS account:password`** (as ZNC and ergo accept it), for clients without SASL;
//!   `PASS password` alone uses the nick as the account.
//!
//! The server password (`ServerConfig::password`) is separate: a client that sends it with
//! PASS passes the gate without an account.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;

/// Most bytes of one `AUTHENTICATE` chunk (IRCv3 SASL 3.1).
pub const SASL_CHUNK: usize = 400;

/// Most base64 bytes of one whole SASL payload (PLAIN needs far less).
pub const SASL_MAX_PAYLOAD: usize = 4 * SASL_CHUNK;

/// The mechanisms a server offers when its policy has no certificate logins
/// (`sasl=PLAIN`, 908 RPL_SASLMECHS).
pub const SASL_MECHANISMS: &str = "PLAIN";

/// The mechanisms a server offers when its policy logs in by certificate
/// ([`IrcAuth::cert_logins`]).
pub const SASL_MECHANISMS_WITH_EXTERNAL: &str = "PLAIN,EXTERNAL";

/// The mechanism list for a policy (see [`IrcAuth::cert_logins`]).
pub fn mechanisms(auth: &dyn IrcAuth) -> &'static str {
    if auth.cert_logins() {
        SASL_MECHANISMS_WITH_EXTERNAL
    } else {
        SASL_MECHANISMS
    }
}

/// What the transport proved about a client before its first line: the SHA-256
/// fingerprint (64 lowercase hex digits) of the certificate it presented on the TLS port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The client certificate's fingerprint, if the client presented one.
    pub cert_fingerprint: Option<String>,
}

/// Checks account credentials for the IRC server (the account store lives elsewhere).
#[async_trait]
pub trait IrcAuth: Send + Sync + fmt::Debug + 'static {
    /// Whether clients must authenticate before registering (the server has a key or
    /// accounts exist). A client that sent the server password passes without an account.
    fn required(&self) -> bool;

    /// How long `account` or `ip` must wait before trying again, when it is backing off
    /// after failed logins. Asked before [`verify`](Self::verify), which is then not
    /// called. The default never throttles.
    fn retry_after(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        let _ = (account, ip);
        None
    }

    /// Checks an account's password (SASL PLAIN or `PASS account:password`) from `ip`.
    async fn verify(&self, account: &str, password: &str, ip: IpAddr) -> AuthVerdict;

    /// Whether clients may create accounts with `REGISTER` (IRCv3
    /// `draft/account-registration`; the capability is offered only then). The default
    /// is no.
    fn registration(&self) -> bool {
        false
    }

    /// Creates `account` with `password` for a client at `ip` (`REGISTER`). Called only
    /// when [`registration`](Self::registration) is on; the default creates nothing.
    async fn create(&self, account: &str, password: &str, ip: IpAddr) -> CreateVerdict {
        let _ = (account, password, ip);
        CreateVerdict::Unsupported
    }

    /// Whether [`verify_cert`](Self::verify_cert) can log clients in (SASL EXTERNAL is
    /// offered only then). The default is no.
    fn cert_logins(&self) -> bool {
        false
    }

    /// The account the client certificate with SHA-256 `fingerprint` (64 lowercase hex
    /// digits) logs in to, for a client at `ip` (SASL EXTERNAL). Implementations apply
    /// their login throttle as [`verify`](Self::verify) does. The default refuses.
    async fn verify_cert(&self, fingerprint: &str, ip: IpAddr) -> CertVerdict {
        let _ = (fingerprint, ip);
        CertVerdict::Bad
    }
}

/// The answer of [`IrcAuth::verify_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// The certificate belongs to this account.
    Ok(String),
    /// No account has the certificate.
    Bad,
    /// Too many failures: refused without checking; retry after this long.
    Throttled(Duration),
}

/// The answer of [`IrcAuth::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateVerdict {
    /// The account exists now, with that password; the client is logged in to it.
    Created,
    /// The name is taken.
    Exists,
    /// The name is not acceptable (why).
    BadName(String),
    /// The password is not acceptable (why).
    BadPassword(String),
    /// Too many attempts from this address: retry after this long.
    Throttled(Duration),
    /// Accounts cannot be created here.
    Unsupported,
    /// The store failed (logged by the implementation; the client is told to retry).
    Failed,
}

/// The answer of [`IrcAuth::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// The credentials are right.
    Ok,
    /// Wrong account or password (which one is not said).
    Bad,
    /// Too many failures: refused without checking; retry after this long.
    Throttled(Duration),
}

/// How a client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// `AUTHENTICATE PLAIN`.
    Sasl,
    /// `AUTHENTICATE EXTERNAL`: the client certificate; `account` is the authorization
    /// identity the client asked for (empty: whichever account the certificate has), and
    /// becomes the certificate's account once verified.
    External,
    /// `PASS account:password` (or `PASS password` with the nick as the account).
    Pass,
    /// `OPER name password`: the password of the operator's account.
    Oper,
}

/// Credentials waiting to be verified (outside the state lock: verification may be slow).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// How they were sent.
    pub via: AuthVia,
    /// The account name.
    pub account: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("via", &self.via)
            .field("account", &self.account)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AuthRequest {
    /// The credentials in a PASS argument: `account:password`, or `password` alone with
    /// `nick` as the account. `None` when the account would be empty.
    pub fn from_pass(pass: &str, nick: Option<&str>) -> Option<Self> {
        let (account, password) = match pass.split_once(':') {
            Some((a, p)) => (a, p),
            None => (nick?, pass),
        };
        if account.is_empty() {
            return None;
        }
        Some(Self {
            via: AuthVia::Pass,
            account: account.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Where a client is in a SASL exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SaslState {
    /// No exchange under way.
    #[default]
    Idle,
    /// `AUTHENTICATE PLAIN` was accepted; base64 chunks so far.
    Plain(String),
    /// `AUTHENTICATE EXTERNAL` was accepted; base64 chunks of the authzid so far.
    External(String),
}

/// What one `AUTHENTICATE` chunk does to a payload being collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// More chunks follow (this one was exactly 400 bytes).
    More,
    /// The payload is complete: its base64 text.
    Done(String),
    /// The chunk (or the payload) is too long: 905.
    TooLong,
}

/// Adds one `AUTHENTICATE` argument to `buf` by the 400-byte rule.
pub fn push_chunk(buf: &mut String, arg: &str) -> Chunk {
    if arg == "+" {
        return Chunk::Done(std::mem::take(buf));
    }
    if arg.len() > SASL_CHUNK || buf.len() + arg.len() > SASL_MAX_PAYLOAD {
        buf.clear();
        return Chunk::TooLong;
    }
    buf.push_str(arg);
    if arg.len() == SASL_CHUNK {
        Chunk::More
    } else {
        Chunk::Done(std::mem::take(buf))
    }
}

/// Decodes a SASL PLAIN payload (base64 of `authzid NUL authcid NUL password`) into the
/// account and password. The authorization identity must be empty or the account itself
/// (nobody logs in as someone else). `None` for anything malformed.
pub fn decode_plain(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    if !authzid.is_empty() && authzid != authcid {
        return None;
    }
    Some((authcid.to_owned(), password.to_owned()))
}

/// Decodes a SASL EXTERNAL payload: empty (`AUTHENTICATE +`) asks for the certificate's
/// account (`Some("")`), otherwise the base64 of the account wanted. `None` for anything
/// malformed.
pub fn decode_external(b64: &str) -> Option<String> {
    if b64.is_empty() {
        return Some(String::new());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    let authzid = String::from_utf8(raw).ok()?;
    (!authzid.contains('\0')).then_some(authzid)
}

/// `N seconds` (rounded up, at least 1), for "try again in ...".
pub fn retry_text(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    if secs == 1 {
        "1 second".into()
    } else {
        format!("{secs} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn plain_decodes_and_refuses_impersonation() {
        assert_eq!(
            decode_plain(&b64(b"\0alice\0secret")),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            decode_plain(&b64(b"alice\0alice\0pw:with\0")),
            None,
            "a fourth field is malformed"
        );
        assert_eq!(
            decode_plain(&b64(b"alice\0alice\0p w")),
            Some(("alice".into(), "p w".into()))
        );
        assert_eq!(decode_plain(&b64(b"root\0alice\0pw")), None);
        assert_eq!(decode_plain(&b64(b"\0\0pw")), None);
        assert_eq!(decode_plain(&b64(b"alice")), None);
        assert_eq!(decode_plain("not base64!"), None);
        assert_eq!(decode_plain(&b64(b"\0al\xffice\0pw")), None);
    }

    #[test]
    fn external_authzid_is_empty_or_an_account() {
        assert_eq!(decode_external(""), Some(String::new()));
        assert_eq!(decode_external(&b64(b"alice")), Some("alice".into()));
        assert_eq!(decode_external(&b64(b"al\0ice")), None);
        assert_eq!(decode_external(&b64(b"\xff")), None);
        assert_eq!(decode_external("not base64!"), None);
    }

    #[test]
    fn chunks_of_400_continue_and_plus_ends() {
        let mut buf = String::new();
        let full = "A".repeat(400);
        assert_eq!(push_chunk(&mut buf, &full), Chunk::More);
        assert_eq!(push_chunk(&mut buf, "BB"), Chunk::Done(format!("{full}BB")));
        assert!(buf.is_empty());
        assert_eq!(push_chunk(&mut buf, &full), Chunk::More);
        assert_eq!(push_chunk(&mut buf, "+"), Chunk::Done(full.clone()));
        assert_eq!(push_chunk(&mut buf, "+"), Chunk::Done(String::new()));
        assert_eq!(push_chunk(&mut buf, &"A".repeat(401)), Chunk::TooLong);
        for _ in 0..4 {
            assert_eq!(push_chunk(&mut buf, &full), Chunk::More);
        }
        assert_eq!(push_chunk(&mut buf, "A"), Chunk::TooLong);
        assert!(buf.is_empty());
    }

    #[test]
    fn pass_forms() {
        let r = AuthRequest::from_pass("alice:pw:x", Some("nick")).unwrap();
        assert_eq!((r.account.as_str(), r.password.as_str()), ("alice", "pw:x"));
        let r = AuthRequest::from_pass("pw", Some("bob")).unwrap();
        assert_eq!((r.account.as_str(), r.password.as_str()), ("bob", "pw"));
        assert!(AuthRequest::from_pass(":pw", Some("bob")).is_none());
        assert!(AuthRequest::from_pass("pw", None).is_none());
        assert!(!format!("{r:?}").contains("pw"), "Debug hides the password");
    }

    #[test]
    fn retry_rounds_up() {
        assert_eq!(retry_text(Duration::from_millis(1500)), "2 seconds");
        assert_eq!(retry_text(Duration::ZERO), "1 second");
        assert_eq!(retry_text(Duration::from_secs(300)), "300 seconds");
    }
}
