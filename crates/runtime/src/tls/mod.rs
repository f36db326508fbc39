//! TLS for the framed protocol (rustls, no OpenSSL).
//!
//! - [`cert`]: the server's certificate: PEM files, or a self-signed one generated once
//!   and kept in the data root; its SHA-256 fingerprint.
//! - [`trust`]: how a client decides to trust a server: a CA file, the system roots, a
//!   pinned fingerprint, or trust on first use with a known-hosts file (as ssh does).
//! - [`client_auth`]: optional client certificates as identities (IRC SASL EXTERNAL):
//!   an acceptor that asks for one, a connector that presents one, the peer's fingerprint.
//! - Channel binding: [`binding_of_server`] / [`binding_of_client`] export keying material
//!   (RFC 5705) that both HMAC handshake MACs include, so a relay that terminates TLS and
//!   forwards the handshake fails.

pub mod cert;
pub mod client_auth;
pub mod trust;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

pub use cert::{Fingerprint, ServerIdentity};
pub use client_auth::{
    acceptor_with_client_certs, connector_with_client_cert, peer_fingerprint, AnyClientCert,
};
pub use trust::{KnownHosts, Trust, TrustError};

/// The TLS exporter label of the channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sockit-auth-v1";

/// Length of the channel binding value.
pub const BINDING_LEN: usize = 32;

/// The first byte of a TLS record carrying a handshake (a ClientHello starts with it).
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// A 32-byte channel binding value.
pub type Binding = [u8; BINDING_LEN];

/// Errors of the TLS layer.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused a configuration or a connection.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// An I/O error (reading certificate files, the connection).
    #[error("TLS: {0}")]
    Io(#[from] std::io::Error),
    /// The certificate could not be generated or parsed.
    #[error("TLS certificate: {0}")]
    Certificate(String),
    /// The server's certificate was not trusted.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// The crypto provider used everywhere (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a TLS acceptor for a server identity.
///
/// # Errors
/// The key does not match the certificate or is unsupported.
pub fn acceptor(identity: &ServerIdentity) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    acceptor_with_alpn(identity, &[], false)
}

/// Builds a TLS connector that trusts servers as `trust` says, and a handle on what its
/// verifier observed (a refusal's reason, a host recorded on first use).
///
/// # Errors
/// The trust settings cannot be turned into a rustls configuration.
pub fn connector(
    trust: Trust,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        Arc<std::sync::Mutex<trust::TrustReport>>,
    ),
    TlsError,
> {
    connector_with_alpn(trust, &[], false)
}

/// Builds a TLS acceptor that offers the application protocols `alpn` (RFC 7301; a
/// client offering only others is refused) and, with `tls13_only`, speaks TLS 1.3 only
/// (NTS-KE requires both).
///
/// # Errors
/// The key does not match the certificate or is unsupported.
pub fn acceptor_with_alpn(
    identity: &ServerIdentity,
    alpn: &[&[u8]],
    tls13_only: bool,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider());
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut config = builder
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// [`connector`] that offers the application protocols `alpn` and, with `tls13_only`,
/// speaks TLS 1.3 only; the caller checks the negotiated protocol after the handshake.
///
/// # Errors
/// The trust settings cannot be turned into a rustls configuration.
pub fn connector_with_alpn(
    trust: Trust,
    alpn: &[&[u8]],
    tls13_only: bool,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        Arc<std::sync::Mutex<trust::TrustReport>>,
    ),
    TlsError,
> {
    let verifier = trust::Verifier::new(trust, provider())?;
    let report = verifier.report();
    let builder = rustls::ClientConfig::builder_with_provider(provider());
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), report))
}

/// The rustls server name for a host string (an IP address or a DNS name).
///
/// # Errors
/// The host is neither.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|_| TlsError::Certificate(format!("`{host}` is not a valid host name for TLS")))
}

/// The channel binding of a server-side TLS stream.
///
/// # Errors
/// The handshake is not complete (never the case after `accept`).
pub fn binding_of_server<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &tokio_rustls::server::TlsStream<S>,
) -> Result<Binding, TlsError> {
    Ok(stream
        .get_ref()
        .1
        .export_keying_material([0u8; BINDING_LEN], EXPORTER_LABEL, None)?)
}

/// The channel binding of a client-side TLS stream.
///
/// # Errors
/// The handshake is not complete (never the case after `connect`).
pub fn binding_of_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &tokio_rustls::client::TlsStream<S>,
) -> Result<Binding, TlsError> {
    Ok(stream
        .get_ref()
        .1
        .export_keying_material([0u8; BINDING_LEN], EXPORTER_LABEL, None)?)
}

/// What the first bytes on a TLS port turned out to be.
pub enum Accepted<S> {
    /// A completed TLS handshake.
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
    /// A client that does not speak TLS (its first byte cannot start a TLS handshake, or it
    /// stayed silent for the grace period): the caller tells it so in its own protocol.
    Plain(S),
    /// The connection ended before anything usable arrived; the reason is for the log.
    Gone(String),
}

impl<S> std::fmt::Debug for Accepted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accepted::Tls(_) => f.write_str("Accepted::Tls"),
            Accepted::Plain(_) => f.write_str("Accepted::Plain"),
            Accepted::Gone(why) => write!(f, "Accepted::Gone({why})"),
        }
    }
}

/// Accepts TLS on a connection of a TLS port, telling plain-text clients apart first.
///
/// The first byte is peeked: a TLS handshake record goes through the handshake (bounded
/// by `timeout`); any other byte means a plain-text client. Silence for `grace` (protocols
/// whose plain clients wait for the server to speak first) also counts as plain; `None`
/// waits up to `timeout` and then gives up.
pub async fn accept_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: crate::guarded::GuardedStream<tokio::net::TcpStream>,
    timeout: std::time::Duration,
    grace: Option<std::time::Duration>,
) -> Accepted<crate::guarded::GuardedStream<tokio::net::TcpStream>> {
    let mut first = [0u8; 1];
    let wait = grace.map_or(timeout, |g| g.min(timeout));
    match tokio::time::timeout(wait, stream.get_ref().peek(&mut first)).await {
        Err(_) if grace.is_some() => return Accepted::Plain(stream),
        Err(_) => return Accepted::Gone("TLS handshake timeout".into()),
        Ok(Err(e)) => return Accepted::Gone(format!("read failed: {e}")),
        Ok(Ok(0)) => return Accepted::Gone("client closed".into()),
        Ok(Ok(_)) if first[0] != TLS_HANDSHAKE_BYTE => return Accepted::Plain(stream),
        Ok(Ok(_)) => {}
    }
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Err(_) => Accepted::Gone("TLS handshake timeout".into()),
        Ok(Err(e)) => Accepted::Gone(format!("TLS handshake failed: {e}")),
        Ok(Ok(tls)) => Accepted::Tls(Box::new(tls)),
    }
}
