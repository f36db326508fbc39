//! The server's certificate and its fingerprint.

use crate::fs::{write_atomic, Mode};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::tls::TlsError;

/// A SHA-256 certificate fingerprint, shown as `SHA256:<base64, no padding>` (ssh's style).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &[u8]) -> Self {
        Self(Sha256::digest(cert).into())
    }

    /// Parses `SHA256:<base64>` (as printed) or the hex form `openssl x509 -fingerprint
    /// -sha256` prints (`AB:CD:...`, colons optional, any case, `SHA256:` prefix optional).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let body = t
            .strip_prefix("SHA256:")
            .or_else(|| t.strip_prefix("sha256:"))
            .unwrap_or(t);
        let hex_digits: String = body.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        if hex_digits.len() == 64 && hex::decode_to_slice(&hex_digits, &mut out).is_ok() {
            return Some(Self(out));
        }
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body.trim_end_matches('='))
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The fingerprint as 64 lowercase hex digits, without colons (the form IRC servers
    /// show in WHOIS 276 and take in `CERT ADD`).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0)
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A server's certificate chain and private key.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Loads PEM files (`--tls-cert`, `--tls-key`).
    ///
    /// # Errors
    /// Unreadable files, no certificate, or no key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let bad =
            |p: &Path, e: &dyn fmt::Display| TlsError::Certificate(format!("{}: {e}", p.display()));
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, &e))?;
        if chain.is_empty() {
            return Err(bad(cert, &"no CERTIFICATE block"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
        Ok(Self {
            chain,
            key: key_der,
        })
    }

    /// Loads the self-signed identity kept in `dir` (`cert.pem`, `key.pem`), generating it
    /// on first use (key file mode 0600, written atomically).
    ///
    /// # Errors
    /// The files cannot be read, generated or written.
    pub fn load_or_generate(dir: &Path) -> Result<(Self, bool), TlsError> {
        Self::load_or_generate_for(dir, &[])
    }

    /// [`ServerIdentity::load_or_generate`], with `extra_names` (host names or IP
    /// addresses, e.g. the bind address) added to the subject alternative names of a
    /// newly generated certificate next to `localhost`, `127.0.0.1` and `::1`. Clients
    /// that check the name they connected to (NTS clients such as chrony do) need it.
    /// An existing certificate is kept as it is, so pinned fingerprints stay valid.
    ///
    /// # Errors
    /// The files cannot be read, generated or written.
    pub fn load_or_generate_for(
        dir: &Path,
        extra_names: &[String],
    ) -> Result<(Self, bool), TlsError> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        if cert.exists() && key.exists() {
            return Ok((Self::from_pem_files(&cert, &key)?, false));
        }
        std::fs::create_dir_all(dir)?;
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        write_atomic(
            &key,
            generated.signing_key.serialize_pem().as_bytes(),
            Mode::Private,
        )?;
        write_atomic(&cert, generated.cert.pem().as_bytes(), Mode::Public)?;
        Ok((Self::from_pem_files(&cert, &key)?, true))
    }

    /// The leaf certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.chain[0].as_ref())
    }
}

/// Where `sockit serve` keeps its generated certificate: the data root's state directory,
/// which no client path can reach.
pub fn default_dir(root: &Path) -> PathBuf {
    root.join("state").join("tls")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_forms() {
        let fp = Fingerprint::of(b"cert");
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        let hex_colons =
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
        assert_eq!(Fingerprint::parse(&hex_colons), Some(fp));
        assert_eq!(
            Fingerprint::parse(&format!("sha256:{}", hex::encode(fp.0))),
            Some(fp)
        );
        assert_eq!(Fingerprint::parse(&fp.hex()), Some(fp));
        assert_eq!(fp.hex(), hex::encode(fp.0));
        assert_eq!(Fingerprint::parse("SHA256:short"), None);
        assert_eq!(Fingerprint::parse(""), None);
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, fresh) = ServerIdentity::load_or_generate(dir.path()).unwrap();
        assert!(fresh);
        let (b, fresh) = ServerIdentity::load_or_generate(dir.path()).unwrap();
        assert!(!fresh);
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
