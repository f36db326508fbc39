//! Flags shared by every subcommand, and what they resolve to.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sockit_runtime::tls::{Fingerprint, Trust};
use sockit_wire::{Client, ConnectOptions, Key};

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Machine-readable JSON output where the output is a table or a record.
    #[arg(long, global = true)]
    pub json: bool,
    /// The connection options of the command that runs, merged from before and after its
    /// name (`sockit --server H ls` and `sockit ls --server H`); see [`Conn::merge`].
    #[arg(skip)]
    pub conn: Conn,
}

/// `--server`: where a client connects.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArg {
    /// Server address: HOST, HOST:PORT or [V6]:PORT (default: $SOCKIT_SERVER, else
    /// 127.0.0.1 and the service's port).
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
}

/// `--key`: the framed protocol's shared key (the server's and its clients').
#[derive(Debug, Clone, Default, Args)]
pub struct KeyArg {
    /// Shared key file for the framed protocol's HMAC authentication (see `sockit keygen`;
    /// default: $SOCKIT_KEY).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// The TLS options of clients that can speak TLS.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Speak TLS (the server runs with --tls): to the framed port, to IRC on 6697
    /// (`sockit chat`), to the reader's HTTPS on 8443 (`sockit read`), NTS-KE on 4460.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: trust only servers whose certificate chains to the CA certificates in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    pub ca: Option<PathBuf>,
    /// With --tls: trust exactly the certificate with this fingerprint (SHA256:... as `sockit serve --tls` prints it).
    #[arg(long, value_name = "SHA256:...")]
    pub fingerprint: Option<String>,
    /// With --tls: the known-hosts file for trust on first use (default: $SOCKIT_KNOWN_HOSTS,
    /// else <config dir>/sockit/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
}

/// The connection options of a framed-protocol client: `--server`, the TLS options and
/// `--key`.
#[derive(Debug, Clone, Default, Args)]
pub struct FramedArgs {
    /// `--server`.
    #[command(flatten)]
    pub server: ServerArg,
    /// `--tls` and its trust options.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// `--key`.
    #[command(flatten)]
    pub key: KeyArg,
}

impl FramedArgs {
    /// All three groups, as [`Takes`].
    pub fn takes(&self) -> Takes<'_> {
        Takes {
            server: Some(&self.server),
            tls: Some(&self.tls),
            key: Some(&self.key),
        }
    }
}

/// Which connection options a subcommand takes (`None`: it does not take that group).
#[derive(Debug, Default, Clone, Copy)]
pub struct Takes<'a> {
    /// `--server`.
    pub server: Option<&'a ServerArg>,
    /// `--tls`, `--ca`, `--fingerprint`, `--known-hosts`.
    pub tls: Option<&'a TlsArgs>,
    /// `--key`.
    pub key: Option<&'a KeyArg>,
}

/// The connection options in effect: those after the command's name win over those
/// before it.
#[derive(Debug, Clone, Default)]
pub struct Conn {
    /// `--server`.
    pub server: Option<String>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--tls`.
    pub tls: bool,
    /// `--ca`.
    pub ca: Option<PathBuf>,
    /// `--fingerprint`.
    pub fingerprint: Option<String>,
    /// `--known-hosts`.
    pub known_hosts: Option<PathBuf>,
}

impl Conn {
    /// Merges the options given before the command's name (`early`) with those the command
    /// itself took (`takes`).
    ///
    /// # Errors
    /// A usage error when an option was given before a command that does not take it
    /// (`sockit --tls serve`), or `--ca`/`--fingerprint` without `--tls`.
    pub fn merge(command: &str, early: &Early, takes: Takes<'_>) -> anyhow::Result<Conn> {
        let refuse = |flag: &str| -> anyhow::Error {
            crate::exit::UsageError(format!(
                "`{flag}` is a client option, not one of `sockit {command}` (a command's own \
                 flags go after its name)"
            ))
            .into()
        };
        if takes.server.is_none() && early.server.server.is_some() {
            return Err(refuse("--server"));
        }
        if takes.key.is_none() && early.key.key.is_some() {
            return Err(refuse("--key"));
        }
        if takes.tls.is_none() {
            let t = &early.tls;
            if t.tls {
                return Err(refuse("--tls"));
            }
            if t.ca.is_some() {
                return Err(refuse("--ca"));
            }
            if t.fingerprint.is_some() {
                return Err(refuse("--fingerprint"));
            }
        }
        let late_tls = takes.tls.cloned().unwrap_or_default();
        let conn = Conn {
            server: takes
                .server
                .and_then(|s| s.server.clone())
                .or_else(|| early.server.server.clone())
                .or_else(|| env_text("SOCKIT_SERVER").filter(|_| takes.server.is_some())),
            key: takes
                .key
                .and_then(|k| k.key.clone())
                .or_else(|| early.key.key.clone())
                .or_else(|| {
                    env_text("SOCKIT_KEY")
                        .filter(|_| takes.key.is_some())
                        .map(PathBuf::from)
                }),
            tls: late_tls.tls || early.tls.tls,
            ca: late_tls.ca.or_else(|| early.tls.ca.clone()),
            fingerprint: late_tls
                .fingerprint
                .or_else(|| early.tls.fingerprint.clone()),
            known_hosts: late_tls
                .known_hosts
                .or_else(|| early.tls.known_hosts.clone())
                .or_else(|| env_text("SOCKIT_KNOWN_HOSTS").map(PathBuf::from)),
        };
        if conn.ca.is_some() && conn.fingerprint.is_some() {
            return Err(crate::exit::UsageError(
                "`--ca` and `--fingerprint` are two ways to trust a server: give one".into(),
            )
            .into());
        }
        if !conn.tls && (conn.ca.is_some() || conn.fingerprint.is_some()) {
            let flag = if conn.ca.is_some() {
                "--ca"
            } else {
                "--fingerprint"
            };
            return Err(crate::exit::UsageError(format!("`{flag}` needs `--tls`")).into());
        }
        Ok(conn)
    }
}

/// A non-empty environment variable's value.
fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The connection options given before the command's name (`sockit --server H ls`),
/// accepted for every client command and hidden from the help, where each client command
/// lists its own.
#[derive(Debug, Default, Args)]
pub struct Early {
    #[command(flatten)]
    server: ServerArg,
    #[command(flatten)]
    key: KeyArg,
    #[command(flatten)]
    tls: TlsArgs,
}

impl Early {
    /// The argument ids of the early options (hidden from the top-level help).
    pub const IDS: [&'static str; 6] = ["server", "key", "tls", "ca", "fingerprint", "known_hosts"];
}

impl GlobalArgs {
    /// The server address for a service whose default port is `port`.
    pub fn server_addr(&self, port: u16) -> String {
        resolve_server(self.conn.server.as_deref(), port)
    }

    /// Loads the key given with --key, if any.
    pub fn load_key(&self) -> anyhow::Result<Option<Key>> {
        self.conn
            .key
            .as_deref()
            .map(|p| Key::load(p).context("cannot load --key"))
            .transpose()
    }
}

impl GlobalArgs {
    /// How to trust the TLS server at `addr` when `tls` is on: --ca, --fingerprint, or
    /// trust on first use with the known-hosts file.
    pub fn trust(&self, addr: &str, tls: bool) -> anyhow::Result<Option<Trust>> {
        Ok(if !tls {
            None
        } else if let Some(ca) = &self.conn.ca {
            Some(Trust::ca_file(ca)?)
        } else if let Some(fp) = &self.conn.fingerprint {
            let fp = Fingerprint::parse(fp).ok_or_else(|| {
                crate::exit::UsageError(format!(
                    "--fingerprint wants SHA256:<base64> or 64 hex digits, got `{fp}`"
                ))
            })?;
            Some(Trust::Pinned(fp))
        } else {
            Some(Trust::KnownHosts {
                file: self
                    .conn
                    .known_hosts
                    .clone()
                    .unwrap_or_else(Trust::default_known_hosts),
                host: addr.to_owned(),
            })
        })
    }

    /// How to connect to the framed port at `addr` (key, TLS trust).
    pub fn connect_options(
        &self,
        addr: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<ConnectOptions> {
        Ok(ConnectOptions {
            key: self.load_key()?,
            timeout,
            tls: self.trust(addr, self.conn.tls)?,
        })
    }

    /// Connects and authenticates to the framed port (default port 7788), telling the user
    /// on stderr when a new TLS host was recorded on first use.
    pub async fn framed_client(&self, timeout: std::time::Duration) -> anyhow::Result<Client> {
        let addr = self.server_addr(sockit_wire::FRAMED_PORT);
        let opts = self.connect_options(&addr, timeout)?;
        let client = Client::connect_with(&addr, &opts).await?;
        tell_recorded(client.recorded_host(), opts.tls.as_ref());
        Ok(client)
    }
}

/// Tells the user on stderr that a host was trusted on first use and where it was recorded.
pub fn tell_recorded(recorded: Option<&(String, Fingerprint)>, trust: Option<&Trust>) {
    let Some((host, fp)) = recorded else { return };
    let file = match trust {
        Some(Trust::KnownHosts { file, .. }) => file.display().to_string(),
        _ => String::new(),
    };
    eprintln!(
        "sockit: trusting {host} on first use; its certificate fingerprint {fp} is now recorded in {file}"
    );
}

/// Completes a server address with the default port when it has none.
pub fn resolve_server(server: Option<&str>, port: u16) -> String {
    let Some(s) = server else {
        return format!("127.0.0.1:{port}");
    };
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return s.to_owned();
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{s}]:{port}");
    }
    if s.starts_with('[') && s.ends_with(']') {
        return format!("{s}:{port}");
    }
    let has_port = s.rsplit_once(':').is_some_and(|(host, p)| {
        !host.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    });
    if has_port {
        s.to_owned()
    } else {
        format!("{s}:{port}")
    }
}

/// Sets up tracing to stderr: `info` for the server (one line per connection), `warn` for
/// clients; -v/-q adjust it and RUST_LOG overrides everything.
pub fn init_logging(g: &GlobalArgs, server: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (g.quiet, g.verbose, server) {
        (true, _, _) => "error",
        (false, 0, true) => "info",
        (false, 0, false) => "warn",
        (false, 1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::resolve_server;

    #[test]
    fn default_and_completion() {
        assert_eq!(resolve_server(None, 7), "127.0.0.1:7");
        assert_eq!(resolve_server(Some("10.0.0.1"), 7), "10.0.0.1:7");
        assert_eq!(resolve_server(Some("10.0.0.1:9"), 7), "10.0.0.1:9");
        assert_eq!(resolve_server(Some("localhost"), 7), "localhost:7");
        assert_eq!(resolve_server(Some("localhost:8"), 7), "localhost:8");
        assert_eq!(resolve_server(Some("::1"), 7), "[::1]:7");
        assert_eq!(resolve_server(Some("[::1]"), 7), "[::1]:7");
        assert_eq!(resolve_server(Some("[::1]:9"), 7), "[::1]:9");
    }
}
