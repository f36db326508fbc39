//! The NTP service's flags and how `serve` builds it: the NTP server on UDP and, with
//! `--tls`, NTS-KE on its TLS port sharing one NTS state (master keys in ROOT/state/nts).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sockit_ntp::nts::{MasterKeys, NtsServer, ALPN_NTSKE};
use sockit_ntp::server::{NtpServer, ServerConfig};
use sockit_runtime::tls::ServerIdentity;

/// Flags of the NTP service.
#[derive(Debug, clap::Args)]
pub struct NtpArgs {
    /// Stratum the NTP service announces while the host clock is not synchronized
    /// (reference id LOCL), like chrony's `local stratum`.
    #[arg(long, default_value_t = ServerConfig::default().local_stratum,
          value_parser = clap::value_parser!(u8).range(1..=15), value_name = "N")]
    pub ntp_local_stratum: u8,
    /// Stratum announced while the kernel says a time daemon keeps the host clock
    /// synchronized (one more than that daemon's upstream).
    #[arg(long, default_value_t = ServerConfig::default().synced_stratum,
          value_parser = clap::value_parser!(u8).range(1..=15), value_name = "N")]
    pub ntp_synced_stratum: u8,
    /// How often the NTS master key that seals cookies is replaced (the two before it
    /// still open cookies).
    #[arg(long, default_value = "1day", value_parser = humantime::parse_duration)]
    pub nts_key_rotation: Duration,
}

impl NtpArgs {
    /// The server's claims about its clock.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            local_stratum: self.ntp_local_stratum,
            synced_stratum: self.ntp_synced_stratum,
            ..ServerConfig::default()
        }
    }
}

/// The NTS state and the NTS-KE acceptor, when the server runs with `--tls`.
#[derive(Clone)]
pub struct NtsSetup {
    /// TLS 1.3 with ALPN `ntske/1`, on the server's certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Master keys and replay filter, shared by NTS-KE and the NTP server.
    pub server: Arc<NtsServer>,
}

impl std::fmt::Debug for NtsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtsSetup").finish_non_exhaustive()
    }
}

/// Loads (or creates) the master keys in `dir` and builds the NTS-KE acceptor.
///
/// # Errors
/// The keys cannot be read or written, or the TLS configuration fails.
pub fn nts_setup(
    dir: &Path,
    identity: &ServerIdentity,
    rotation: Duration,
) -> anyhow::Result<NtsSetup> {
    let keys = MasterKeys::load_or_create(dir, SystemTime::now())
        .context("cannot load the NTS master keys")?
        .with_rotation(rotation);
    let acceptor = sockit_runtime::tls::acceptor_with_alpn(identity, &[ALPN_NTSKE], true)?;
    Ok(NtsSetup {
        acceptor,
        server: Arc::new(NtsServer::new(keys)),
    })
}

/// The NTP server over UDP, authenticating NTS requests when `nts` is set.
pub fn ntp_server(config: ServerConfig, nts: Option<&NtsSetup>) -> NtpServer {
    let server = NtpServer::new(config);
    match nts {
        Some(nts) => server.with_nts(nts.server.clone()),
        None => server,
    }
}
