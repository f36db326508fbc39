//! How a client decides to trust a server's certificate.
//!
//! | mode | flag | accepts |
//! |---|---|---|
//! | [`Trust::Ca`] | `--ca FILE` | a chain to those roots, for the host name |
//! | [`Trust::Pinned`] | `--fingerprint SHA256:...` | exactly that certificate |
//! | [`Trust::KnownHosts`] | (default) | a chain to the system roots; else the fingerprint recorded for `host:port` in the known-hosts file, recording it on first use (as ssh does) and refusing loudly when it changed |

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::tls::{Fingerprint, TlsError};

/// The trust policy of a client.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates chaining to these roots.
    Ca(Arc<RootCertStore>),
    /// Exactly this certificate.
    Pinned(Fingerprint),
    /// System roots, else trust on first use with a known-hosts file.
    KnownHosts {
        /// The known-hosts file.
        file: PathBuf,
        /// The `host:port` key.
        host: String,
    },
}

impl Trust {
    /// Trust the roots in a PEM file.
    ///
    /// # Errors
    /// The file is unreadable or holds no certificate.
    pub fn ca_file(path: &Path) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))?;
            roots.add(cert)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Certificate(format!(
                "{}: no CA certificate",
                path.display()
            )));
        }
        Ok(Self::Ca(Arc::new(roots)))
    }

    /// The default known-hosts file: `<config dir>/sockit/known_hosts`.
    pub fn default_known_hosts() -> PathBuf {
        dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("sockit")
            .join("known_hosts")
    }
}

/// Why a certificate was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The pinned fingerprint did not match.
    #[error("server certificate does not match --fingerprint: expected {expected}, server presented {got}")]
    PinMismatch {
        /// The pinned one.
        expected: Fingerprint,
        /// The server's.
        got: Fingerprint,
    },
    /// The certificate for a known host changed.
    #[error(
        "@@@ WARNING: THE CERTIFICATE OF {host} HAS CHANGED @@@\n\
         Someone could be intercepting this connection, or the server got a new certificate.\n\
         recorded in {file}: {expected}\n\
         presented now:  {got}\n\
         If the change is expected, remove the line for {host} from {file}, or pass --fingerprint {got}"
    )]
    Changed {
        /// `host:port`.
        host: String,
        /// The known-hosts file.
        file: String,
        /// The recorded fingerprint.
        expected: Fingerprint,
        /// The presented one.
        got: Fingerprint,
    },
    /// The chain did not verify against the CA.
    #[error("server certificate is not trusted by the CA: {0}")]
    Ca(String),
    /// The known-hosts file could not be read or written.
    #[error("known-hosts file {file}: {message}")]
    KnownHostsIo {
        /// The file.
        file: String,
        /// The cause.
        message: String,
    },
}

/// What the verifier observed, for the client to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustReport {
    /// Why the last certificate was refused.
    pub error: Option<TrustError>,
    /// A host recorded on first use, with its fingerprint.
    pub recorded: Option<(String, Fingerprint)>,
}

/// The known-hosts file: lines `host:port SHA256:...`, `#` comments.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// A known-hosts file at `path` (it need not exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The fingerprint recorded for `host`.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub fn lookup(&self, host: &str) -> std::io::Result<Option<Fingerprint>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once(char::is_whitespace))
            .filter(|(h, _)| *h == host)
            .find_map(|(_, fp)| Fingerprint::parse(fp)))
    }

    /// Records `host` with `fp` (appends a line; creates the file and its directory).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn record(&self, host: &str, fp: Fingerprint) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{host} {fp}")?;
        f.sync_all()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The rustls verifier implementing [`Trust`].
pub struct Verifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    system: Option<Arc<WebPkiServerVerifier>>,
    ca: Option<Arc<WebPkiServerVerifier>>,
    report: Arc<Mutex<TrustReport>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("trust", &self.trust)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `trust`.
    ///
    /// # Errors
    /// The CA roots cannot be used.
    pub fn new(trust: Trust, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let build = |roots: Arc<RootCertStore>| {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::Certificate(e.to_string()))
        };
        let ca = match &trust {
            Trust::Ca(roots) => Some(build(roots.clone())?),
            _ => None,
        };
        let system = match &trust {
            Trust::KnownHosts { .. } => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    None
                } else {
                    build(Arc::new(roots)).ok()
                }
            }
            _ => None,
        };
        Ok(Self {
            trust,
            provider,
            system,
            ca,
            report: Arc::new(Mutex::new(TrustReport::default())),
        })
    }

    /// A handle on what the verifier observed.
    pub fn report(&self) -> Arc<Mutex<TrustReport>> {
        self.report.clone()
    }

    fn fail(&self, e: TrustError) -> rustls::Error {
        let text = e.to_string();
        if let Ok(mut r) = self.report.lock() {
            r.error = Some(e);
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            std::io::Error::other(text),
        ))))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity.as_ref());
        match &self.trust {
            Trust::Pinned(expected) if *expected == got => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(expected) => Err(self.fail(TrustError::PinMismatch {
                expected: *expected,
                got,
            })),
            Trust::Ca(_) => match &self.ca {
                Some(v) => v
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    .map_err(|e| self.fail(TrustError::Ca(e.to_string()))),
                None => Err(self.fail(TrustError::Ca("no roots".into()))),
            },
            Trust::KnownHosts { file, host } => {
                let known = KnownHosts::new(file);
                let io_err = |e: std::io::Error| TrustError::KnownHostsIo {
                    file: file.display().to_string(),
                    message: e.to_string(),
                };
                match known.lookup(host).map_err(io_err) {
                    Err(e) => Err(self.fail(e)),
                    Ok(Some(expected)) if expected == got => Ok(ServerCertVerified::assertion()),
                    Ok(Some(expected)) => Err(self.fail(TrustError::Changed {
                        host: host.clone(),
                        file: file.display().to_string(),
                        expected,
                        got,
                    })),
                    Ok(None) => {
                        if let Some(system) = &self.system {
                            if system
                                .verify_server_cert(
                                    end_entity,
                                    intermediates,
                                    server_name,
                                    ocsp,
                                    now,
                                )
                                .is_ok()
                            {
                                return Ok(ServerCertVerified::assertion());
                            }
                        }
                        known.record(host, got).map_err(|e| self.fail(io_err(e)))?;
                        if let Ok(mut r) = self.report.lock() {
                            r.recorded = Some((host.clone(), got));
                        }
                        Ok(ServerCertVerified::assertion())
                    }
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("sub/known_hosts"));
        assert_eq!(kh.lookup("a:1").unwrap(), None);
        let fp = Fingerprint::of(b"x");
        kh.record("a:1", fp).unwrap();
        kh.record("b:2", Fingerprint::of(b"y")).unwrap();
        assert_eq!(kh.lookup("a:1").unwrap(), Some(fp));
        assert_eq!(kh.lookup("a:2").unwrap(), None);
    }

    #[test]
    fn changed_message_names_both_fingerprints() {
        let e = TrustError::Changed {
            host: "h:1".into(),
            file: "/k".into(),
            expected: Fingerprint::of(b"a"),
            got: Fingerprint::of(b"b"),
        };
        let text = e.to_string();
        assert!(text.contains(&Fingerprint::of(b"a").to_string()));
        assert!(text.contains(&Fingerprint::of(b"b").to_string()));
        assert!(text.contains("HAS CHANGED"));
    }
}
