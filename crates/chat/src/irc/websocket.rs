//! IRC over WebSocket (the IRCv3 WebSocket specification), so browser clients connect:
//! port 8097 plain (`ws://`), 8098 behind TLS (`wss://`, with `sockit serve --tls`).
//!
//! The HTTP upgrade is answered by `tungstenite`; the connection then becomes a line
//! stream into the very same [`IrcServer`] the TCP ports serve, so WebSocket users share
//! the network with everyone else:
//!
//! ```text
//!   WebSocket messages ──► inbound pump ──(line + CRLF)──► duplex ──► IrcServer session
//!   WebSocket messages ◄── outbound pump ◄──(split lines)── duplex ◄── IrcServer writer
//! ```
//!
//! Each WebSocket message is one IRC line without CR LF, both ways. The subprotocols are
//! `binary.ircv3.net` (binary messages, any bytes) and `text.ircv3.net` (text messages;
//! lines that are not UTF-8 are sent with U+FFFD in place of the bad bytes), chosen in the
//! client's order of preference. A client that asks for neither is served as InspIRCd's
//! default does: text messages out, either kind in.
//!
//! Everything else is the IRC server's: the registration deadline, the idle timeout
//! (counted from the last IRC line, so WebSocket pings alone keep nobody), flood
//! control, the send queue and the account policy. The upgrade itself must complete
//! within the runtime's handshake timeout, and a request head is at most 64 KiB.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use sockit_runtime::close::linger_close;
use sockit_runtime::server::{ConnInfo, Refusal, ServiceStream, TcpService};
use sockit_runtime::tls::{accept_tls, Accepted};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::irc::server::IrcServer;

/// The binary subprotocol: binary messages carrying any bytes.
pub const BINARY_PROTOCOL: &str = "binary.ircv3.net";
/// The text subprotocol: text messages, always UTF-8.
pub const TEXT_PROTOCOL: &str = "text.ircv3.net";

/// Largest WebSocket message accepted from a client. Above the IRC line limits (512
/// bytes plus 4,096 of tags), so an over-long line still reaches the IRC layer and is
/// answered `417` there as on TCP; far larger messages close the connection.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// How long the server waits for the client's answer to its Close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bytes buffered between the WebSocket pumps and the IRC session in each direction.
const DUPLEX_BUFFER: usize = 64 * 1024;

/// The message kind a connection speaks, from the negotiated subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `binary.ircv3.net`: binary messages.
    Binary,
    /// `text.ircv3.net`: text messages.
    Text,
    /// No subprotocol agreed: text messages out, text or binary accepted in.
    Legacy,
}

impl Framing {
    /// The subprotocol name to answer with, if one was agreed.
    pub fn protocol(self) -> Option<&'static str> {
        match self {
            Framing::Binary => Some(BINARY_PROTOCOL),
            Framing::Text => Some(TEXT_PROTOCOL),
            Framing::Legacy => None,
        }
    }

    /// One outgoing IRC line (without CR LF) as a WebSocket message.
    pub fn message(self, line: &[u8]) -> WsMessage {
        match self {
            Framing::Binary => WsMessage::binary(line.to_vec()),
            Framing::Text | Framing::Legacy => {
                WsMessage::text(String::from_utf8_lossy(line).into_owned())
            }
        }
    }
}

/// Picks the framing from the client's `Sec-WebSocket-Protocol` header values (each a
/// comma-separated list, most preferred first): the first of ours it names, else
/// [`Framing::Legacy`]. Names compare exactly, as RFC 6455 tokens do.
pub fn choose_framing<'a>(offers: impl IntoIterator<Item = &'a str>) -> Framing {
    offers
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find_map(|name| match name {
            BINARY_PROTOCOL => Some(Framing::Binary),
            TEXT_PROTOCOL => Some(Framing::Text),
            _ => None,
        })
        .unwrap_or(Framing::Legacy)
}

/// Which browser origins may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Allowed `Origin` values (`scheme://host[:port]`, compared without case); empty
    /// allows every origin, as Ergo's default does.
    pub allowed: Vec<String>,
}

impl OriginPolicy {
    /// Whether a request with this `Origin` header may connect. A request without one
    /// is not from a browser page (the only thing an origin check protects against; any
    /// other client can send whatever `Origin` it likes), so it may.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(_) if self.allowed.is_empty() => true,
            Some(o) => self.allowed.iter().any(|a| a.eq_ignore_ascii_case(o)),
        }
    }
}

/// The body of an HTTP answer on the WebSocket port, with the headers it needs.
fn http_answer(status: StatusCode, body: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    )
}

/// What a plain HTTP request (no upgrade) on the WebSocket port is told.
pub const NOT_A_WEBSOCKET: &str =
    "This port speaks IRC over WebSocket (subprotocols binary.ircv3.net, text.ircv3.net); \
     connect with a WebSocket client, or use an IRC client on the IRC port.\n";

/// What a plain-text client on the `wss://` port is told.
pub const PLAIN_ON_WSS_PORT: &str =
    "This port speaks IRC over WebSocket inside TLS; connect with wss://.\n";

/// [`IrcServer`] behind the WebSocket upgrade, optionally inside TLS.
#[derive(Clone)]
pub struct IrcWsServer {
    irc: IrcServer,
    tls: Option<tokio_rustls::TlsAcceptor>,
    origins: Arc<OriginPolicy>,
}

impl std::fmt::Debug for IrcWsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcWsServer")
            .field("irc", &self.irc)
            .field("tls", &self.tls.is_some())
            .field("origins", &self.origins)
            .finish()
    }
}

impl IrcWsServer {
    /// Serves `irc` (a clone sharing its state) to WebSocket clients (`ws://`).
    pub fn new(irc: IrcServer, origins: OriginPolicy) -> Self {
        Self {
            irc,
            tls: None,
            origins: Arc::new(origins),
        }
    }

    /// Serves `irc` to WebSocket clients inside TLS (`wss://`).
    pub fn with_tls(
        irc: IrcServer,
        origins: OriginPolicy,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> Self {
        Self {
            tls: Some(acceptor),
            ..Self::new(irc, origins)
        }
    }

    /// Upgrades `stream` and serves IRC over it until either side ends.
    async fn upgrade_and_serve<S>(&self, mut stream: S, info: ConnInfo) -> io::Result<String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut framing = Framing::Legacy;
        let origins = Arc::clone(&self.origins);
        // The error type is tungstenite's (an HTTP response), not ours to shrink.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, mut resp: Response| {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok());
            if !origins.allows(origin) {
                return Err(refused_origin());
            }
            let offers = req
                .headers()
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .filter_map(|v| v.to_str().ok());
            framing = choose_framing(offers);
            if let Some(name) = framing.protocol() {
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(name),
                );
            }
            Ok(resp)
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let upgrade =
            tokio_tungstenite::accept_hdr_async_with_config(&mut stream, callback, Some(config));
        let ws = match tokio::time::timeout(info.limits.handshake_timeout, upgrade).await {
            Err(_) => return Ok("WebSocket upgrade timeout".into()),
            Ok(Ok(ws)) => ws,
            // The callback's refusal has been sent.
            Ok(Err(WsError::Http(resp))) => {
                return Ok(format!("WebSocket upgrade refused ({})", resp.status()));
            }
            Ok(Err(WsError::Io(e))) => return Ok(format!("read failed: {e}")),
            Ok(Err(e)) => {
                let answer = http_answer(StatusCode::BAD_REQUEST, NOT_A_WEBSOCKET);
                if stream.write_all(answer.as_bytes()).await.is_ok() {
                    let _ = stream.shutdown().await;
                }
                return Ok(format!("not a WebSocket upgrade: {e}"));
            }
        };
        Ok(self.serve_ws(ws, framing, info).await)
    }

    /// Runs the IRC session and the two pumps between it and the WebSocket.
    async fn serve_ws<S>(&self, ws: WebSocketStream<S>, framing: Framing, info: ConnInfo) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (irc_end, bridge_end) = tokio::io::duplex(DUPLEX_BUFFER);
        let session = self.irc.serve_connection(irc_end, info);
        let (from_irc, to_irc) = tokio::io::split(bridge_end);
        let (sink, source) = ws.split();
        let pumps = async {
            let inbound = pump_in(source, to_irc);
            let outbound = pump_out(from_irc, sink, framing);
            tokio::pin!(inbound, outbound);
            tokio::select! {
                () = &mut outbound => {
                    // The IRC side ended and a Close frame went out: give the client a
                    // moment to answer it, so closing never resets unread lines away.
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut inbound).await;
                }
                () = &mut inbound => {
                    // The client went away: the IRC session sees end of input, says
                    // QUIT to the channels and drops its end, which ends the pump.
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut outbound).await;
                }
            }
        };
        let (reason, ()) = tokio::join!(session, pumps);
        match reason {
            Ok(reason) => reason,
            Err(e) => format!("error: {e}"),
        }
    }
}

/// The `403` sent to a browser whose origin is not allowed.
fn refused_origin() -> ErrorResponse {
    let body = "403 Forbidden: this origin may not connect (see --chat-ws-origin)\n";
    let mut resp = ErrorResponse::new(Some(body.to_owned()));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

/// Client messages into the IRC session, one line each, until the client closes.
async fn pump_in<St, W>(mut source: St, mut to_irc: W)
where
    St: futures::Stream<Item = Result<WsMessage, WsError>> + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(msg) = source.next().await {
        let line: &[u8] = match &msg {
            Ok(WsMessage::Text(text)) => text.as_bytes(),
            Ok(WsMessage::Binary(bytes)) => bytes,
            // Pings are answered by tungstenite; pongs carry nothing.
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => continue,
            Ok(WsMessage::Close(_)) | Err(_) => break,
        };
        if to_irc.write_all(&as_irc_line(line)).await.is_err() {
            break;
        }
    }
    // End of input for the IRC session (dropping a split half would not say so).
    let _ = to_irc.shutdown().await;
}

/// One client message as an IRC line: the specification forbids a trailing CR LF, but
/// one is tolerated; the IRC layer splits any embedded line breaks.
pub fn as_irc_line(message: &[u8]) -> Vec<u8> {
    let mut end = message.len();
    while end > 0 && matches!(message[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let mut line = Vec::with_capacity(end + 2);
    line.extend_from_slice(&message[..end]);
    line.extend_from_slice(b"\r\n");
    line
}

/// Splits `buf`'s complete lines off its front (each without CR LF), leaving a partial
/// last line in place.
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        let mut line = &buf[start..start + pos];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        lines.push(line.to_vec());
        start += pos + 1;
    }
    buf.drain(..start);
    lines
}

/// The IRC session's output to the client, one message per line; sends a Close frame
/// when the session ends.
async fn pump_out<R, Si>(mut from_irc: R, mut sink: Si, framing: Framing)
where
    R: AsyncRead + Unpin,
    Si: futures::Sink<WsMessage, Error = WsError> + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match from_irc.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        for line in take_lines(&mut buf) {
            if sink.feed(framing.message(&line)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.send(WsMessage::Close(None)).await;
}

#[async_trait]
impl TcpService for IrcWsServer {
    fn name(&self) -> &'static str {
        if self.tls.is_some() {
            "chat-wss"
        } else {
            "chat-ws"
        }
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        let Some(acceptor) = &self.tls else {
            return self.upgrade_and_serve(stream, info).await;
        };
        match accept_tls(acceptor, stream, info.limits.handshake_timeout, None).await {
            Accepted::Gone(why) => Ok(why),
            Accepted::Plain(mut stream) => {
                let answer = http_answer(StatusCode::BAD_REQUEST, PLAIN_ON_WSS_PORT);
                let _ = stream.write_all(answer.as_bytes()).await;
                linger_close(stream).await;
                Ok("plain-text client on the wss port".into())
            }
            Accepted::Tls(tls) => self.upgrade_and_serve(tls, info).await,
        }
    }

    async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        // Only the plain port can answer before a handshake; a TLS client cannot read it.
        if self.tls.is_some() {
            return;
        }
        let body = format!("503 Service Unavailable: {refusal}\n");
        let answer = http_answer(StatusCode::SERVICE_UNAVAILABLE, &body);
        if stream.write_all(answer.as_bytes()).await.is_ok() {
            linger_close(stream).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_follows_the_clients_preference() {
        assert_eq!(
            choose_framing(["text.ircv3.net, binary.ircv3.net"]),
            Framing::Text
        );
        assert_eq!(
            choose_framing(["binary.ircv3.net,text.ircv3.net"]),
            Framing::Binary
        );
        assert_eq!(
            choose_framing(["chat", "binary.ircv3.net"]),
            Framing::Binary
        );
        assert_eq!(choose_framing(["chat, irc"]), Framing::Legacy);
        assert_eq!(choose_framing([]), Framing::Legacy);
        // Tokens compare exactly.
        assert_eq!(choose_framing(["TEXT.IRCV3.NET"]), Framing::Legacy);
    }

    #[test]
    fn text_messages_never_carry_invalid_utf8() {
        let msg = Framing::Text.message(b"PRIVMSG #a :caf\xe9");
        assert_eq!(msg.into_text().unwrap().as_str(), "PRIVMSG #a :caf\u{fffd}");
        let msg = Framing::Binary.message(b"PRIVMSG #a :caf\xe9");
        assert_eq!(msg.into_data().as_ref(), b"PRIVMSG #a :caf\xe9");
    }

    #[test]
    fn lines_split_and_keep_the_partial_tail() {
        let mut buf = b":a PING x\r\n:b PONG y\n:c PRIV".to_vec();
        let lines = take_lines(&mut buf);
        assert_eq!(lines, vec![b":a PING x".to_vec(), b":b PONG y".to_vec()]);
        assert_eq!(buf, b":c PRIV");
        assert!(take_lines(&mut buf).is_empty());
        buf.extend_from_slice(b"MSG\r\n");
        assert_eq!(take_lines(&mut buf), vec![b":c PRIVMSG".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn client_messages_get_exactly_one_crlf() {
        assert_eq!(as_irc_line(b"NICK a"), b"NICK a\r\n");
        assert_eq!(as_irc_line(b"NICK a\r\n"), b"NICK a\r\n");
        assert_eq!(as_irc_line(b""), b"\r\n");
    }

    #[test]
    fn origins_are_checked_only_when_listed() {
        let any = OriginPolicy::default();
        assert!(any.allows(Some("https://evil.example")) && any.allows(None));
        let only = OriginPolicy {
            allowed: vec!["https://chat.example".into()],
        };
        assert!(only.allows(Some("HTTPS://chat.example")));
        assert!(!only.allows(Some("https://evil.example")));
        assert!(only.allows(None));
    }
}
