//! The NTS-KE client (RFC 8915 §4): TLS 1.3 with ALPN `ntske/1`, trusting the server as
//! every sockit client does (a CA file, a pinned fingerprint, or known hosts), then one
//! request and one response.

use std::time::Duration;

use sockit_runtime::tls::{self, TlsError, Trust};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::nts::records::{
    encode_message, read_message, Record, AEAD_AES_SIV_CMAC_256, PROTOCOL_NTPV4, RESPONSE_LIMITS,
};
use crate::nts::session::{NtsSession, MAX_COOKIES, MAX_COOKIE_LEN};
use crate::nts::{export_session_keys, NtsError, ALPN_NTSKE};

/// How long a whole key exchange may take (connect, handshake, request, response).
pub(crate) const KE_TIMEOUT: Duration = Duration::from_secs(10);

/// The NTP port when the server does not name one.
pub(crate) const DEFAULT_NTP_PORT: u16 = 123;

/// What an NTS-KE response agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeResponse {
    /// The cookies (at least one).
    pub cookies: Vec<Vec<u8>>,
    /// The Server Negotiation record's name, if any.
    pub server: Option<String>,
    /// The Port Negotiation record's port, if any.
    pub port: Option<u16>,
}

/// The records of our request: NTPv4 with AEAD_AES_SIV_CMAC_256.
pub(crate) fn request_records() -> Vec<Record> {
    vec![
        Record::NextProtocol(vec![PROTOCOL_NTPV4]),
        Record::AeadAlgorithm(vec![AEAD_AES_SIV_CMAC_256]),
    ]
}

/// Checks a response's records (End of Message excluded): exactly NTPv4 and
/// AEAD_AES_SIV_CMAC_256 chosen, at least one cookie, no Error or Warning, no unknown
/// critical record.
///
/// # Errors
/// What the response lacks or refuses.
pub(crate) fn parse_response(records: &[Record]) -> Result<KeResponse, NtsError> {
    let bad = |why: &str| NtsError::BadResponse(why.to_owned());
    let mut protocol = None;
    let mut aead = None;
    let mut out = KeResponse {
        cookies: Vec::new(),
        server: None,
        port: None,
    };
    for record in records {
        match record {
            Record::Error(code) => return Err(NtsError::ServerError(*code)),
            Record::Warning(code) => return Err(NtsError::ServerWarning(*code)),
            Record::NextProtocol(ids) if protocol.is_none() => protocol = Some(ids.clone()),
            Record::AeadAlgorithm(ids) if aead.is_none() => aead = Some(ids.clone()),
            Record::NextProtocol(_) | Record::AeadAlgorithm(_) => {
                return Err(bad("negotiation record repeated"))
            }
            Record::NewCookie(c) => {
                if !c.is_empty() && c.len() <= MAX_COOKIE_LEN && out.cookies.len() < MAX_COOKIES {
                    out.cookies.push(c.clone());
                }
            }
            Record::Server(name) => {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(bad("server name is not printable ASCII"));
                }
                out.server = Some(name.clone());
            }
            Record::Port(port) => out.port = Some(*port),
            Record::Unknown {
                critical: true,
                record_type,
                ..
            } => {
                return Err(NtsError::BadResponse(format!(
                    "unknown critical record type {record_type}"
                )))
            }
            Record::Unknown { .. } | Record::EndOfMessage => {}
        }
    }
    match protocol.as_deref() {
        Some([PROTOCOL_NTPV4]) => {}
        Some([]) => return Err(NtsError::NotOffered("NTPv4")),
        Some(_) => return Err(bad("server chose a protocol we did not offer")),
        None => return Err(bad("no Next Protocol record")),
    }
    match aead.as_deref() {
        Some([AEAD_AES_SIV_CMAC_256]) => {}
        Some([]) => return Err(NtsError::NotOffered("AEAD_AES_SIV_CMAC_256")),
        Some(_) => return Err(bad("server chose an AEAD algorithm we did not offer")),
        None => return Err(bad("no AEAD Algorithm record")),
    }
    if out.cookies.is_empty() {
        return Err(bad("no cookie"));
    }
    Ok(out)
}

/// Runs NTS-KE against `host:port`, trusting the server's certificate as `trust` says,
/// within `KE_TIMEOUT` (10 s).
///
/// # Errors
/// The connection, the TLS handshake (an untrusted certificate included) or the
/// exchange failed, or the server refused or answered badly.
pub async fn key_exchange(host: &str, port: u16, trust: Trust) -> Result<NtsSession, NtsError> {
    tokio::time::timeout(KE_TIMEOUT, exchange(host, port, trust))
        .await
        .map_err(|_| NtsError::Timeout(KE_TIMEOUT))?
}

async fn exchange(host: &str, port: u16, trust: Trust) -> Result<NtsSession, NtsError> {
    let name = tls::server_name(host)?;
    let (connector, report) = tls::connector_with_alpn(trust, &[ALPN_NTSKE], true)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|err| NtsError::Connect {
            addr: format!("{host}:{port}"),
            err,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut stream = match connector.connect(name, tcp).await {
        Ok(stream) => stream,
        Err(e) => {
            // The verifier's own reason says more than rustls's "invalid certificate".
            let trust_error = report.lock().ok().and_then(|mut r| r.error.take());
            return Err(match trust_error {
                Some(t) => NtsError::Tls(TlsError::Trust(t)),
                None => NtsError::Io(e),
            });
        }
    };
    if stream.get_ref().1.alpn_protocol() != Some(ALPN_NTSKE) {
        return Err(NtsError::NoAlpn);
    }
    stream
        .write_all(&encode_message(&request_records())?)
        .await?;
    stream.flush().await?;
    let records = read_message(&mut stream, RESPONSE_LIMITS).await?;
    let response = parse_response(&records)?;
    let keys = export_session_keys(stream.get_ref().1).map_err(TlsError::from)?;
    let _ = stream.shutdown().await;
    Ok(NtsSession::new(
        keys,
        response.cookies,
        response.server.unwrap_or_else(|| bare.to_owned()),
        response.port.unwrap_or(DEFAULT_NTP_PORT),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<Record> {
        vec![
            Record::NextProtocol(vec![0]),
            Record::AeadAlgorithm(vec![15]),
            Record::NewCookie(vec![1; 100]),
        ]
    }

    #[test]
    fn accepts_minimal() {
        let r = parse_response(&good()).unwrap();
        assert_eq!(r.cookies, vec![vec![1; 100]]);
        assert_eq!((r.server, r.port), (None, None));
    }

    #[test]
    fn negotiated_server_and_port() {
        let mut records = good();
        records.push(Record::Server("ntp.example".into()));
        records.push(Record::Port(4123));
        let r = parse_response(&records).unwrap();
        assert_eq!(r.server.as_deref(), Some("ntp.example"));
        assert_eq!(r.port, Some(4123));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse_response(&[Record::Error(1)]),
            Err(NtsError::ServerError(1))
        ));
        assert!(matches!(
            parse_response(&[Record::NextProtocol(vec![])]),
            Err(NtsError::NotOffered("NTPv4"))
        ));
        assert!(matches!(
            parse_response(&[Record::NextProtocol(vec![0]), Record::AeadAlgorithm(vec![])]),
            Err(NtsError::NotOffered(_))
        ));
        let mut no_cookie = good();
        no_cookie.pop();
        assert!(matches!(
            parse_response(&no_cookie),
            Err(NtsError::BadResponse(_))
        ));
        let mut critical = good();
        critical.push(Record::Unknown {
            critical: true,
            record_type: 77,
            body: vec![],
        });
        assert!(matches!(
            parse_response(&critical),
            Err(NtsError::BadResponse(_))
        ));
        let mut spaced = good();
        spaced.push(Record::Server("a b".into()));
        assert!(parse_response(&spaced).is_err());
    }

    #[test]
    fn at_most_eight_cookies_kept() {
        let mut records = good();
        records.extend((0..20).map(|_| Record::NewCookie(vec![2; 100])));
        assert_eq!(parse_response(&records).unwrap().cookies.len(), MAX_COOKIES);
    }
}
