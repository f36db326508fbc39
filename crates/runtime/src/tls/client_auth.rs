//! Optional client certificates as identities (IRC's SASL EXTERNAL, as Ergo and
//! InspIRCd use them): the server asks every client for a certificate, never insists on
//! one, and takes any certificate, self-signed ones included, as a claim of identity
//! whose proof is the handshake signature. What the certificate stands for (an account)
//! is the service's decision, by its SHA-256 fingerprint ([`peer_fingerprint`]).
//!
//! The chain is not checked against any CA: a client certificate is a key the user
//! registered (`sockit account cert add`), compared by fingerprint, so only possession
//! of its private key matters, and that is what the verified `CertificateVerify`
//! signature proves.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::tls::{provider, Fingerprint, ServerIdentity, TlsError, Trust};

/// Accepts any client certificate whose handshake signature verifies; a client without
/// one is accepted too (see the module documentation).
#[derive(Debug)]
pub struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl AnyClientCert {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Any certificate names an identity; the signature checks below prove the client
        // holds its key (and fail for a certificate that cannot be parsed).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds a TLS acceptor for `identity` that asks clients for a certificate (optional,
/// any certificate: [`AnyClientCert`]). For services that log users in by certificate
/// (IRC); the others keep [`acceptor`](crate::tls::acceptor), which asks for none (a
/// browser would otherwise offer the user's certificates).
///
/// # Errors
/// The key does not match the certificate or is unsupported.
pub fn acceptor_with_client_certs(
    identity: &ServerIdentity,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCert::new(provider())))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Builds a TLS connector that trusts servers as `trust` says and presents `client`
/// (its chain and key) when the server asks for a certificate.
///
/// # Errors
/// The trust settings or the client key cannot be turned into a rustls configuration.
pub fn connector_with_client_cert(
    trust: Trust,
    client: &ServerIdentity,
) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let verifier = crate::tls::trust::Verifier::new(trust, provider())?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(client.chain.clone(), client.key.clone_key())?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The fingerprint of the certificate the client of a server-side TLS stream presented
/// (its leaf), if it presented one.
pub fn peer_fingerprint<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &tokio_rustls::server::TlsStream<S>,
) -> Option<Fingerprint> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Fingerprint::of(leaf.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn handshake(client_cert: Option<&ServerIdentity>) -> Option<Fingerprint> {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = ServerIdentity::load_or_generate(&dir.path().join("s")).unwrap();
        let acceptor = acceptor_with_client_certs(&server).unwrap();
        let trust = Trust::Pinned(server.fingerprint());
        let connector = match client_cert {
            Some(c) => connector_with_client_cert(trust, c).unwrap(),
            None => crate::tls::connector(trust).unwrap().0,
        };
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server_side = tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.unwrap();
            let fp = peer_fingerprint(&tls);
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.unwrap();
            fp
        });
        let name = crate::tls::server_name("localhost").unwrap();
        let mut tls = connector.connect(name, b).await.unwrap();
        tls.write_all(b"x").await.unwrap();
        tls.flush().await.unwrap();
        server_side.await.unwrap()
    }

    #[tokio::test]
    async fn a_self_signed_client_certificate_is_seen_and_none_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = ServerIdentity::load_or_generate(dir.path()).unwrap();
        assert_eq!(handshake(Some(&client)).await, Some(client.fingerprint()));
        assert_eq!(handshake(None).await, None);
    }

    #[test]
    fn asks_for_a_certificate_but_never_requires_one() {
        let v = AnyClientCert::new(provider());
        assert!(v.offer_client_auth() && !v.client_auth_mandatory());
        assert!(v.root_hint_subjects().is_empty());
        assert!(!v.supported_verify_schemes().is_empty());
    }
}
