//! The NTS-KE server (RFC 8915 §4): a TLS 1.3 service with ALPN `ntske/1` that reads one
//! request, agrees on NTPv4 and AEAD_AES_SIV_CMAC_256, exports the session keys from the
//! TLS session and answers with the NTP port, the NTP server name if one is configured,
//! and eight cookies.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use sockit_runtime::server::{ConnInfo, ServiceStream, TcpService};
use sockit_runtime::tls::{accept_tls, Accepted};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::nts::records::{
    encode_message, read_message, Record, RecordError, AEAD_AES_SIV_CMAC_256, ERROR_BAD_REQUEST,
    ERROR_INTERNAL, ERROR_UNRECOGNIZED_CRITICAL, PROTOCOL_NTPV4, REQUEST_LIMITS,
};
use crate::nts::{export_session_keys, NtsError, NtsServer, SessionKeys, ALPN_NTSKE};

/// Cookies handed out per key exchange (RFC 8915 §4.1.6 suggests eight).
pub(crate) const COOKIES_PER_KE: usize = 8;

/// Longest NTP server name sent in a Server Negotiation record.
pub(crate) const MAX_SERVER_NAME: usize = 255;

/// What a request asked for, as far as the server can give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negotiation {
    /// NTPv4 with AEAD_AES_SIV_CMAC_256: keys are exported and cookies issued.
    Accept,
    /// The client offered no protocol this server speaks.
    NoProtocol,
    /// NTPv4, but no AEAD algorithm this server has.
    NoAead,
    /// The request is refused with this error code (`ERROR_*`).
    Error(u16),
}

/// Decides the answer to a request's records (End of Message excluded).
///
/// A request must hold exactly one non-empty Next Protocol record and, when it offers
/// NTPv4, exactly one non-empty AEAD record; Error, Warning and New Cookie records are
/// not for a server (Bad Request); an unknown critical record is Unrecognized Critical
/// Record; unknown non-critical records and negotiation hints are ignored.
pub(crate) fn negotiate(request: &[Record]) -> Negotiation {
    let mut protocols: Option<&[u16]> = None;
    let mut aeads: Option<&[u16]> = None;
    for record in request {
        match record {
            Record::NextProtocol(ids) if protocols.is_none() && !ids.is_empty() => {
                protocols = Some(ids);
            }
            Record::AeadAlgorithm(ids) if aeads.is_none() && !ids.is_empty() => aeads = Some(ids),
            Record::NextProtocol(_)
            | Record::AeadAlgorithm(_)
            | Record::Error(_)
            | Record::Warning(_)
            | Record::NewCookie(_)
            | Record::EndOfMessage => return Negotiation::Error(ERROR_BAD_REQUEST),
            Record::Server(_) | Record::Port(_) => {}
            Record::Unknown { critical: true, .. } => {
                return Negotiation::Error(ERROR_UNRECOGNIZED_CRITICAL)
            }
            Record::Unknown { .. } => {}
        }
    }
    let Some(protocols) = protocols else {
        return Negotiation::Error(ERROR_BAD_REQUEST);
    };
    if !protocols.contains(&PROTOCOL_NTPV4) {
        return Negotiation::NoProtocol;
    }
    match aeads {
        None => Negotiation::Error(ERROR_BAD_REQUEST),
        Some(ids) if ids.contains(&AEAD_AES_SIV_CMAC_256) => Negotiation::Accept,
        Some(_) => Negotiation::NoAead,
    }
}

/// The records of a response that issues no cookies (for [`Negotiation::Accept`], the
/// answer when the server itself failed).
fn refusal(outcome: Negotiation) -> Vec<Record> {
    match outcome {
        Negotiation::Error(code) => vec![Record::Error(code)],
        Negotiation::NoProtocol => vec![Record::NextProtocol(Vec::new())],
        Negotiation::Accept => vec![Record::Error(ERROR_INTERNAL)],
        Negotiation::NoAead => vec![
            Record::NextProtocol(vec![PROTOCOL_NTPV4]),
            Record::AeadAlgorithm(Vec::new()),
        ],
    }
}

/// The NTS-KE service for [`sockit_runtime::server::serve_tcp`].
pub struct NtsKeService {
    /// Built with [`sockit_runtime::tls::acceptor_with_alpn`] for [`ALPN_NTSKE`], TLS 1.3.
    acceptor: tokio_rustls::TlsAcceptor,
    /// Issues the cookies (the same instance that checks NTP requests).
    server: Arc<NtsServer>,
    /// The UDP port of our NTP server, always sent: clients assume 123 otherwise.
    ntp_port: u16,
    /// The NTP server name to send clients to, if not this host.
    ntp_server: Option<String>,
}

impl std::fmt::Debug for NtsKeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtsKeService")
            .field("ntp_port", &self.ntp_port)
            .field("ntp_server", &self.ntp_server)
            .finish_non_exhaustive()
    }
}

impl NtsKeService {
    /// A service handing out cookies of `server` for NTP on `ntp_port` and, when given,
    /// at `ntp_server` (a host name or an IP address without brackets).
    ///
    /// # Errors
    /// `ntp_server` is empty, longer than `MAX_SERVER_NAME` (255) bytes, or holds other
    /// than printable ASCII (clients refuse such names).
    pub fn new(
        acceptor: tokio_rustls::TlsAcceptor,
        server: Arc<NtsServer>,
        ntp_port: u16,
        ntp_server: Option<String>,
    ) -> Result<Self, NtsError> {
        if let Some(name) = &ntp_server {
            if name.is_empty()
                || name.len() > MAX_SERVER_NAME
                || !name.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(NtsError::InvalidServerName(name.clone()));
            }
        }
        Ok(Self {
            acceptor,
            server,
            ntp_port,
            ntp_server,
        })
    }

    /// The records accepting a request: the negotiated values, the NTP port and server,
    /// and fresh cookies holding `keys`.
    fn accepted(&self, keys: &SessionKeys) -> Vec<Record> {
        let cookies = match self.server.issue_cookies(keys, COOKIES_PER_KE) {
            Ok(cookies) => cookies,
            Err(e) => {
                warn!(error = %e, "NTS-KE: cannot issue cookies");
                return vec![Record::Error(ERROR_INTERNAL)];
            }
        };
        let mut out = vec![
            Record::NextProtocol(vec![PROTOCOL_NTPV4]),
            Record::AeadAlgorithm(vec![AEAD_AES_SIV_CMAC_256]),
            Record::Port(self.ntp_port),
        ];
        if let Some(name) = &self.ntp_server {
            out.push(Record::Server(name.clone()));
        }
        out.extend(cookies.into_iter().map(Record::NewCookie));
        out
    }
}

#[async_trait]
impl TcpService for NtsKeService {
    fn name(&self) -> &'static str {
        "nts-ke"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        // NTS-KE clients speak first (the ClientHello), so silence is a handshake that
        // never came.
        let mut tls =
            match accept_tls(&self.acceptor, stream, info.limits.handshake_timeout, None).await {
                Accepted::Gone(why) => return Ok(why),
                // There is no way to tell a plain-text client anything in NTS-KE terms.
                Accepted::Plain(_) => return Ok("plain-text client on the NTS-KE port".into()),
                Accepted::Tls(tls) => tls,
            };
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_NTSKE) {
            return Ok("client did not negotiate ALPN ntske/1".into());
        }
        let (outcome, reason) = match read_message(&mut tls, REQUEST_LIMITS).await {
            Ok(request) => {
                let outcome = negotiate(&request);
                (outcome, format!("{outcome:?}"))
            }
            Err(RecordError::Io(e)) => return Ok(format!("read failed: {e}")),
            Err(RecordError::Truncated) => return Ok("client closed mid-request".into()),
            Err(e) => (Negotiation::Error(ERROR_BAD_REQUEST), e.to_string()),
        };
        info.clock.request_complete();
        let records = match outcome {
            Negotiation::Accept => match export_session_keys(tls.get_ref().1) {
                Ok(keys) => self.accepted(&keys),
                Err(e) => {
                    warn!(peer = %info.peer, error = %e, "NTS-KE key export failed");
                    vec![Record::Error(ERROR_INTERNAL)]
                }
            },
            other => refusal(other),
        };
        let issued = records
            .iter()
            .filter(|r| matches!(r, Record::NewCookie(_)))
            .count();
        let wire = encode_message(&records).map_err(io::Error::other)?;
        debug!(peer = %info.peer, %reason, bytes = wire.len(), "NTS-KE response");
        tls.write_all(&wire).await?;
        tls.flush().await?;
        // close_notify tells the client the response is complete.
        let _ = tls.shutdown().await;
        Ok(if issued > 0 {
            format!("issued {issued} cookies")
        } else {
            format!("refused: {reason}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntpv4_siv() -> Vec<Record> {
        vec![
            Record::NextProtocol(vec![PROTOCOL_NTPV4]),
            Record::AeadAlgorithm(vec![30, AEAD_AES_SIV_CMAC_256]),
        ]
    }

    #[test]
    fn accepts_ntpv4_with_siv() {
        assert_eq!(negotiate(&ntpv4_siv()), Negotiation::Accept);
        let mut with_hints = ntpv4_siv();
        with_hints.push(Record::Server("x".into()));
        with_hints.push(Record::Port(1));
        with_hints.push(Record::Unknown {
            critical: false,
            record_type: 1024,
            body: vec![],
        });
        assert_eq!(negotiate(&with_hints), Negotiation::Accept);
    }

    #[test]
    fn unknown_critical() {
        let mut request = ntpv4_siv();
        request.push(Record::Unknown {
            critical: true,
            record_type: 99,
            body: vec![],
        });
        assert_eq!(
            negotiate(&request),
            Negotiation::Error(ERROR_UNRECOGNIZED_CRITICAL)
        );
    }

    #[test]
    fn bad_requests() {
        let bad = |records: Vec<Record>| {
            assert_eq!(
                negotiate(&records),
                Negotiation::Error(ERROR_BAD_REQUEST),
                "{records:?}"
            )
        };
        bad(vec![]);
        bad(vec![Record::AeadAlgorithm(vec![15])]);
        bad(vec![Record::NextProtocol(vec![0])]);
        bad(vec![
            Record::NextProtocol(vec![]),
            Record::AeadAlgorithm(vec![15]),
        ]);
        let mut twice = ntpv4_siv();
        twice.push(Record::NextProtocol(vec![0]));
        bad(twice);
        let mut cookie = ntpv4_siv();
        cookie.push(Record::NewCookie(vec![1; 4]));
        bad(cookie);
        let mut error = ntpv4_siv();
        error.push(Record::Error(0));
        bad(error);
    }

    #[test]
    fn nothing_in_common() {
        assert_eq!(
            negotiate(&[Record::NextProtocol(vec![7])]),
            Negotiation::NoProtocol
        );
        assert_eq!(
            negotiate(&[
                Record::NextProtocol(vec![0]),
                Record::AeadAlgorithm(vec![1, 2])
            ]),
            Negotiation::NoAead
        );
        assert_eq!(
            refusal(Negotiation::NoAead),
            vec![Record::NextProtocol(vec![0]), Record::AeadAlgorithm(vec![])]
        );
        assert_eq!(
            refusal(Negotiation::NoProtocol),
            vec![Record::NextProtocol(vec![])]
        );
    }
}
