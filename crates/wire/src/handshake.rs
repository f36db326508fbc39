//! The hello + mutual HMAC-SHA256 handshake, server and client sides.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{self, Key, Nonce};
use crate::codec::FrameError;
use crate::connection::{Connection, Incoming};
use crate::header::{AuthMode, AuthReply, AuthRequest, ErrorCode, Header, Hello, MessageError};

/// What the server decided about one `auth` request.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    /// The mac was right; the reply carries the server's proof.
    Accepted(Header),
    /// The request was malformed.
    BadRequest(String),
    /// The mac was wrong.
    Failed,
}

/// Builds the server's `hello`.
pub fn hello(auth: AuthMode, nonce: &Nonce, services: &[String]) -> Header {
    Header::encode(&Hello::new(auth, nonce, services))
        .unwrap_or_else(|e| Header::error(ErrorCode::Internal, e.to_string()))
}

/// Checks a client's `auth` request against the key and the server nonce (pure).
pub fn check_auth(
    key: &Key,
    server_nonce: &Nonce,
    request: &Header,
    binding: &[u8],
) -> AuthOutcome {
    let req: AuthRequest = match request.decode() {
        Ok(r) => r,
        Err(e) => return AuthOutcome::BadRequest(format!("auth needs `nonce` and `mac`: {e}")),
    };
    let Some(client_nonce) = auth::parse_nonce(&req.nonce) else {
        return AuthOutcome::BadRequest("auth `nonce` must be 64 hex digits".into());
    };
    let expected = key.client_mac(server_nonce, &client_nonce, binding);
    if !auth::verify_mac(&expected, &req.mac) {
        return AuthOutcome::Failed;
    }
    let proof = key.server_mac(server_nonce, &client_nonce, binding);
    let reply = AuthReply {
        mac: hex::encode(proof),
    };
    AuthOutcome::Accepted(
        Header::reply(&reply).unwrap_or_else(|e| Header::error(ErrorCode::Internal, e.to_string())),
    )
}

/// Client-side handshake failures.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer speaks another protocol: what it sent does not frame.
    #[error("{peer}is not a framed server: it sent `{sent}`")]
    NotFramed {
        /// `ADDR ` when known (the client fills it in), else empty.
        peer: String,
        /// The start of what it sent, as text.
        sent: String,
    },
    /// The server closed before saying hello.
    #[error("server closed the connection before its hello")]
    NoHello,
    /// The first frame was not a valid hello.
    #[error("server did not send a valid sockit hello: {0}")]
    BadHello(String),
    /// The server wants a key and we have none.
    #[error("server requires authentication (hmac-sha256); pass --key FILE with the server's key")]
    KeyRequired,
    /// We have a key and the server does not ask for one, so it cannot prove it is the
    /// server we share the key with.
    #[error("server does not use authentication, so it cannot prove it holds your key; drop --key to connect anyway")]
    ServerUnauthenticated,
    /// The server rejected our mac.
    #[error("server rejected the key ({0}): the key files differ")]
    Rejected(String),
    /// The server's proof was wrong: it does not hold the key.
    #[error("server failed to prove it holds the key: refusing to talk to it")]
    ServerProofFailed,
    /// The handshake did not finish in time.
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
    /// Our own `auth` request could not be built.
    #[error("cannot build the auth request: {0}")]
    Encode(MessageError),
}

async fn read_hello_frame<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
) -> Result<Header, HandshakeError> {
    let read = conn.read_header().await;
    if let Err(
        FrameError::TooLong { .. } | FrameError::NegativeLength(_) | FrameError::ZeroLength,
    ) = &read
    {
        return Err(HandshakeError::NotFramed {
            peer: String::new(),
            sent: foreign_text(conn.unread()),
        });
    }
    match read? {
        None => Err(HandshakeError::NoHello),
        Some(Incoming::Invalid(e)) => Err(HandshakeError::BadHello(e.to_string())),
        Some(Incoming::Header(h)) => Ok(h),
    }
}

/// The start of what a peer of another protocol sent, as one line of text: at most 60
/// characters, control characters escaped.
fn foreign_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    let line: String = text
        .trim_end()
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    line
}

/// Asks for and reads the server's hello and, when the server requires it, authenticates both ways,
/// binding the MACs to `binding` (the TLS channel binding; empty over plain TCP).
///
/// # Errors
/// See [`HandshakeError`].
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    key: Option<&Key>,
    binding: &[u8],
) -> Result<Hello, HandshakeError> {
    // Ask for the hello: a key-less plain server sends it only on request; a server that
    // also sent one unsolicited answers this request too, so skip to the answer.
    conn.send(&Header::request("hello")).await?;
    let mut header = read_hello_frame(conn).await?;
    if header.as_error().is_none() && !header.is_ok() {
        header = read_hello_frame(conn).await?;
    }
    if let Some((code, message)) = header.as_error() {
        return Err(HandshakeError::BadHello(format!("{code}: {message}")));
    }
    let hello: Hello = header
        .parse()
        .map_err(|e| HandshakeError::BadHello(e.to_string()))?;
    if hello.cmd != "hello" {
        return Err(HandshakeError::BadHello(format!(
            "first frame is `{}`",
            hello.cmd
        )));
    }
    let server_nonce = auth::parse_nonce(&hello.nonce)
        .ok_or_else(|| HandshakeError::BadHello("nonce is not 64 hex digits".into()))?;
    match (hello.auth, key) {
        (AuthMode::None, None) => Ok(hello),
        (AuthMode::None, Some(_)) => Err(HandshakeError::ServerUnauthenticated),
        (AuthMode::HmacSha256, None) => Err(HandshakeError::KeyRequired),
        (AuthMode::HmacSha256, Some(key)) => {
            let client_nonce =
                auth::fresh_nonce().map_err(|e| HandshakeError::BadHello(e.to_string()))?;
            let mac = key.client_mac(&server_nonce, &client_nonce, binding);
            let req = Header::encode(&AuthRequest {
                cmd: "auth".into(),
                nonce: hex::encode(client_nonce),
                mac: hex::encode(mac),
            })
            .map_err(HandshakeError::Encode)?;
            conn.send(&req).await?;
            let reply = match conn.read_header().await? {
                Some(Incoming::Header(h)) => h,
                Some(Incoming::Invalid(e)) => return Err(HandshakeError::BadHello(e.to_string())),
                None => return Err(HandshakeError::Rejected("connection closed".into())),
            };
            if let Some((code, message)) = reply.as_error() {
                return Err(HandshakeError::Rejected(format!("{code}: {message}")));
            }
            let expected = key.server_mac(&server_nonce, &client_nonce, binding);
            match reply.decode::<AuthReply>() {
                Ok(r) if auth::verify_mac(&expected, &r.mac) => Ok(hello),
                _ => Err(HandshakeError::ServerProofFailed),
            }
        }
    }
}

/// The error header for a request that arrived before `auth`.
pub fn auth_required(cmd: &str) -> Header {
    Header::error(
        ErrorCode::AuthRequired,
        format!("`{cmd}` needs authentication first: send `auth` (sockit clients do this with --key FILE)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_mac_is_accepted_and_proves_server() {
        let key = Key::from_bytes([9; 32]);
        let ns = [1; 32];
        let nc = [2; 32];
        let req = Header::request("auth")
            .with("nonce", hex::encode(nc))
            .with("mac", hex::encode(key.client_mac(&ns, &nc, &[])));
        match check_auth(&key, &ns, &req, &[]) {
            AuthOutcome::Accepted(h) => {
                assert!(auth::verify_mac(
                    &key.server_mac(&ns, &nc, &[]),
                    h.get_str("mac").unwrap()
                ))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_typed_frames_keep_their_wire_form() {
        let h = hello(AuthMode::HmacSha256, &[7; 32], &["ls".to_owned()]);
        let back: Hello = h.decode().unwrap();
        assert_eq!(
            back,
            Hello::new(AuthMode::HmacSha256, &[7; 32], &["ls".to_owned()])
        );
        assert_eq!(h.get_str("cmd"), Some("hello"));
        let key = Key::from_bytes([9; 32]);
        let (ns, nc) = ([1; 32], [2; 32]);
        let req = Header::encode(&AuthRequest {
            cmd: "auth".into(),
            nonce: hex::encode(nc),
            mac: hex::encode(key.client_mac(&ns, &nc, &[])),
        })
        .unwrap();
        assert_eq!(req.get_str("cmd"), Some("auth"));
        let AuthOutcome::Accepted(reply) = check_auth(&key, &ns, &req, &[]) else {
            panic!("refused");
        };
        assert!(reply.is_ok());
        let reply: AuthReply = reply.decode().unwrap();
        assert!(auth::verify_mac(&key.server_mac(&ns, &nc, &[]), &reply.mac));
    }

    #[test]
    fn wrong_key_and_replay_fail() {
        let key = Key::from_bytes([9; 32]);
        let other = Key::from_bytes([8; 32]);
        let nc = [2; 32];
        let old_ns = [1; 32];
        let req = Header::request("auth")
            .with("nonce", hex::encode(nc))
            .with("mac", hex::encode(other.client_mac(&old_ns, &nc, &[])));
        assert_eq!(check_auth(&key, &old_ns, &req, &[]), AuthOutcome::Failed);
        // A mac recorded for an earlier server nonce does not pass against a fresh one.
        let recorded = Header::request("auth")
            .with("nonce", hex::encode(nc))
            .with("mac", hex::encode(key.client_mac(&old_ns, &nc, &[])));
        assert_eq!(
            check_auth(&key, &[3; 32], &recorded, &[]),
            AuthOutcome::Failed
        );
    }

    #[test]
    fn malformed_auth_is_bad_request() {
        let key = Key::from_bytes([9; 32]);
        assert!(matches!(
            check_auth(&key, &[1; 32], &Header::request("auth"), &[]),
            AuthOutcome::BadRequest(_)
        ));
        let req = Header::request("auth")
            .with("nonce", "abc")
            .with("mac", "00");
        assert!(matches!(
            check_auth(&key, &[1; 32], &req, &[]),
            AuthOutcome::BadRequest(_)
        ));
    }
}
