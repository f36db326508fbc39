//! TLS for the framed protocol (rustls, no OpenSSL).
//!
//! - [`cert`]: the server's certificate: PEM files, or a self-signed one generated once
//!   and kept in the data root; its SHA-256 fingerprint.
//! - [`trust`]: how a client decides to trust a server: a CA file, the system roots, a
//!   pinned fingerprint, or trust on first use with a known-hosts file (as ssh does).
//! - Channel binding: [`binding_of_server`] / [`binding_of_client`] export keying material
//!   (RFC 5705) that both HMAC handshake MACs include, so a relay that terminates TLS and
//!   forwards the handshake fails.

pub mod cert;
pub mod trust;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

pub use cert::{Fingerprint, ServerIdentity};
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
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
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
    let verifier = trust::Verifier::new(trust, provider())?;
    let report = verifier.report();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
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
