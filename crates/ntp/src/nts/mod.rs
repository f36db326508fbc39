//! Network Time Security (RFC 8915): NTS-KE over TLS 1.3 and authenticated NTPv4.
//!
//! - [`records`]: the NTS-KE record codec;
//! - the key exchange ([`NtsKeService`] on the server, [`key_exchange`] on the client),
//!   which hands a client two keys exported from the TLS session and eight cookies;
//! - [`MasterKeys`]: the server's rotating master keys, and the cookies they encrypt
//!   (the [`SessionKeys`], so the server keeps no per-client state);
//! - [`fields`]: the NTS extension fields of NTP packets and the authenticator;
//! - [`NtsServer`]: what the NTP server calls to check a request and seal the reply;
//!   [`NtsSession`]: what the NTP client uses to protect its requests and verify replies.
//!
//! ```text
//! client                       NTS-KE (TCP 4460, TLS 1.3, ALPN ntske/1)        server
//!   | -- Next Protocol [NTPv4], AEAD [15], End ------------------------------> |
//!   | <- Next Protocol [NTPv4], AEAD [15], Port, (Server), 8 x Cookie, End -- |
//!   |        both export C2S and S2C keys from the TLS session                |
//!                              NTP (UDP)
//!   | -- header, Unique Id, Cookie, n x Placeholder, Auth(C2S) --------------> |
//!   | <- header, Unique Id, Auth(S2C, encrypted: n+1 x new Cookie) ----------- |
//! ```

mod aead;
mod cookie;
pub mod fields;
mod ke_client;
mod ke_server;
mod keys;
pub mod records;
mod server;
mod session;

pub use cookie::{SessionKeys, COOKIE_LEN};
pub use ke_client::key_exchange;
pub use ke_server::NtsKeService;
pub use keys::{KeyError, MasterKeys};
pub use server::{Clock, NtsRequest, NtsServer, NtsValid};
pub use session::NtsSession;

/// The ALPN protocol id of NTS-KE.
pub const ALPN_NTSKE: &[u8] = b"ntske/1";

/// The TLS exporter label of NTS (RFC 8915 §5.1).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-network-time-security";

/// Errors of NTS: the key exchange, and protecting or verifying NTP packets.
#[derive(Debug, thiserror::Error)]
pub enum NtsError {
    /// The NTS-KE server could not be reached.
    #[error("NTS-KE: cannot connect to {addr}: {err}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        err: std::io::Error,
    },
    /// The TLS handshake or the TLS setup failed (an untrusted certificate included).
    #[error("NTS-KE: {0}")]
    Tls(#[from] sockit_runtime::tls::TlsError),
    /// Reading or writing the TLS session failed.
    #[error("NTS-KE: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not negotiate ALPN `ntske/1`: not an NTS-KE server.
    #[error("NTS-KE: the server did not agree to ALPN ntske/1 (is this an NTS-KE port?)")]
    NoAlpn,
    /// The NTS-KE message was malformed or too long.
    #[error(transparent)]
    Records(#[from] records::RecordError),
    /// The server answered with an Error record.
    #[error("NTS-KE server refused the request: {}", error_name(*.0))]
    ServerError(u16),
    /// The server answered with a Warning record.
    #[error("NTS-KE server sent warning {0}")]
    ServerWarning(u16),
    /// The server does not offer NTPv4 with AEAD_AES_SIV_CMAC_256.
    #[error("NTS-KE server does not offer {0}")]
    NotOffered(&'static str),
    /// The server's response misses something the protocol requires.
    #[error("NTS-KE response is invalid: {0}")]
    BadResponse(String),
    /// The key exchange did not finish in time.
    #[error("NTS-KE timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A configured NTP server name cannot be sent to clients.
    #[error("NTP server name {0:?} must be 1 to 255 printable ASCII characters")]
    InvalidServerName(String),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(getrandom::Error),
    /// Every cookie is spent: a new key exchange is needed.
    #[error("NTS: no cookie left; a new NTS-KE is needed")]
    OutOfCookies,
    /// The NTP server sent an NTS NAK (KoD NTSN): it no longer accepts our cookies.
    #[error("NTS: the server rejected our cookie (NTS NAK); a new NTS-KE is needed")]
    Nak,
    /// An NTP reply did not authenticate.
    #[error("NTS: reply not authenticated: {0}")]
    Unauthenticated(&'static str),
}

fn error_name(code: u16) -> String {
    match code {
        records::ERROR_UNRECOGNIZED_CRITICAL => "unrecognized critical record (0)".into(),
        records::ERROR_BAD_REQUEST => "bad request (1)".into(),
        records::ERROR_INTERNAL => "internal server error (2)".into(),
        other => format!("error {other}"),
    }
}

/// Exports the C2S and S2C keys of NTPv4 with AEAD_AES_SIV_CMAC_256 from a TLS session
/// (RFC 8915 §5.1: context = protocol id ‖ AEAD id ‖ 0 for C2S or 1 for S2C).
///
/// # Errors
/// The handshake is not complete.
pub fn export_session_keys<D>(
    conn: &rustls::ConnectionCommon<D>,
) -> Result<SessionKeys, rustls::Error> {
    let context = |direction: u8| {
        let [p0, p1] = records::PROTOCOL_NTPV4.to_be_bytes();
        let [a0, a1] = records::AEAD_AES_SIV_CMAC_256.to_be_bytes();
        [p0, p1, a0, a1, direction]
    };
    let c2s =
        conn.export_keying_material([0u8; aead::KEY_LEN], EXPORTER_LABEL, Some(&context(0)))?;
    let s2c =
        conn.export_keying_material([0u8; aead::KEY_LEN], EXPORTER_LABEL, Some(&context(1)))?;
    Ok(SessionKeys {
        aead: records::AEAD_AES_SIV_CMAC_256,
        c2s,
        s2c,
    })
}
