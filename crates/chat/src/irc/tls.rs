//! IRC over TLS (port 6697): the TLS handshake, then the very same [`IrcServer`], so users
//! on the plain and the TLS port share one network (channels, nicks, messages).
//!
//! With an acceptor that asks for client certificates
//! ([`acceptor_with_client_certs`](sockit_runtime::tls::acceptor_with_client_certs)), the
//! SHA-256 fingerprint of the one a client presented goes to the session
//! ([`PeerIdentity`]): SASL EXTERNAL logs in by it, WHOIS shows it (276).

use std::io;

use async_trait::async_trait;
use sockit_runtime::close::linger_close;
use sockit_runtime::server::{ConnInfo, ServiceStream, TcpService};
use sockit_runtime::tls::{accept_tls, peer_fingerprint, Accepted};
use tokio::io::AsyncWriteExt;

use crate::irc::auth::PeerIdentity;
use crate::irc::message::Message;
use crate::irc::server::IrcServer;

/// The line a plain-text client on the TLS port gets before the server closes.
pub const PLAIN_ON_TLS_PORT: &str =
    "Closing Link: this port speaks TLS (connect with TLS, e.g. irssi -tls, or use the plain port)";

/// [`IrcServer`] behind a TLS acceptor.
#[derive(Clone)]
pub struct IrcTlsServer {
    irc: IrcServer,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for IrcTlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcTlsServer")
            .field("irc", &self.irc)
            .finish_non_exhaustive()
    }
}

impl IrcTlsServer {
    /// Serves `irc` (a clone sharing its state) to TLS clients accepted with `acceptor`
    /// (one from [`acceptor_with_client_certs`](sockit_runtime::tls::acceptor_with_client_certs)
    /// makes client certificates available for SASL EXTERNAL).
    pub fn new(irc: IrcServer, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        Self { irc, acceptor }
    }
}

fn error_line(text: &str) -> Vec<u8> {
    Message::new("ERROR", vec![text.to_owned()]).to_line()
}

#[async_trait]
impl TcpService for IrcTlsServer {
    fn name(&self) -> &'static str {
        "chat-tls"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        // IRC clients speak first (CAP or NICK), so there is no grace period: silence is
        // simply a handshake that never came.
        match accept_tls(&self.acceptor, stream, info.limits.handshake_timeout, None).await {
            Accepted::Gone(why) => Ok(why),
            Accepted::Plain(mut stream) => {
                let _ = stream.write_all(&error_line(PLAIN_ON_TLS_PORT)).await;
                linger_close(stream).await;
                Ok("plain-text client on the TLS port".into())
            }
            Accepted::Tls(tls) => {
                // The same registration deadline as the plain port, counted from the
                // connection's start (the TLS handshake spends part of it).
                let peer = PeerIdentity {
                    cert_fingerprint: peer_fingerprint(&tls).map(|fp| fp.hex()),
                };
                self.irc.serve_connection_with(tls, info, peer).await
            }
        }
    }

    // `refuse` keeps the default (close silently): the refusal happens before any
    // handshake, and a TLS client cannot read a plain-text ERROR line.
}
