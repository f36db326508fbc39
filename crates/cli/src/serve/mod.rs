//! `sockit serve`: bind every selected service, print the table, serve until Ctrl-C or
//! SIGTERM, then drain.

mod addr_file;
mod chat_args;
mod plan;
mod reader;
mod registry;
mod start;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context as _;
use sockit_exec::ExecConfig;
use sockit_files::{FilesConfig, FilesRoot};
use sockit_wire::runtime::Limits;
use sockit_wire::tls::{Fingerprint, ServerIdentity};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only these services (comma-separated: greet,echo,daytime,time,framed,tftp,chat,udp-chat,discovery).
    #[arg(long, value_delimiter = ',', value_name = "SVC,...")]
    pub only: Vec<String>,
    /// Port of a service (repeatable): SVC=N; 0 picks a free port; all=N applies to every service.
    #[arg(long = "port", value_name = "SVC=N")]
    pub ports: Vec<String>,
    /// Address to bind. A non-loopback address needs --key (or --no-auth).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Data root (files, tftp/, books/). Default: the platform data dir + /sockit.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the bound addresses as JSON to FILE (atomically) once every service listens.
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
    /// Allow a non-loopback bind without a key: anyone who reaches the port can use it.
    #[arg(long)]
    pub no_auth: bool,
    /// Speak TLS: on the framed port, IRC on 6697 (chat.tls) and HTTPS for the reader on
    /// 8443 (reader.https). Uses --tls-cert/--tls-key, or a self-signed certificate
    /// generated once and kept in the data root (its fingerprint is printed).
    #[arg(long)]
    pub tls: bool,
    /// Like --tls, and do not open the plain twins of the TLS ports (IRC 6667, reader HTTP
    /// 8080). Services with no TLS form (greet, echo, daytime, time, tftp, the classic
    /// reader protocol, the UDP room, discovery) still run; drop them with --only.
    #[arg(long)]
    pub tls_only: bool,
    /// PEM certificate chain for --tls.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub reader: reader::ReaderArgs,
    #[command(flatten)]
    pub tftp: TftpArgs,
    #[command(flatten)]
    pub chat: chat_args::ChatArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Limits of the file service.
#[derive(Debug, clap::Args)]
pub struct FilesArgs {
    /// Largest file an upload may produce (bytes; K, M, G, T suffixes are powers of 1024).
    #[arg(long, default_value = "16G", value_parser = parse_size, value_name = "SIZE")]
    pub max_upload: u64,
    /// Staged (interrupted) uploads untouched this long are deleted when the server starts.
    #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
    pub staging_ttl: Duration,
    /// How many whole-file hashes the server remembers for `get`.
    #[arg(long, default_value_t = FilesConfig::default().hash_cache_entries, value_name = "N")]
    pub hash_cache: usize,
}

/// Remote exec (off by default).
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Enable `exec` for clients that authenticate with --key (refused without a key).
    #[arg(long)]
    pub allow_exec: bool,
    /// Longest a remote command may run before its process group is killed.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub exec_timeout: Duration,
    /// Most output (stdout + stderr) one remote command may send before it is killed.
    #[arg(long, default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    pub exec_output_cap: u64,
    /// Most remote commands running at once; one more gets `busy`.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_execs: usize,
}

/// Parses a byte size: `123`, `64K`, `16M`, `2G`, `1T` (powers of 1024; `B`/`iB` allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in `{s}`; use K, M, G or T")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size (examples: 1048576, 512K, 16M, 2G)"))
}

/// Flags of the TFTP service (udp 6969).
#[derive(Debug, clap::Args)]
pub struct TftpArgs {
    /// Directory the TFTP service serves. Default: the data root's tftp/ directory.
    #[arg(long, value_name = "DIR")]
    pub tftp_root: Option<PathBuf>,
    /// Accept TFTP uploads (WRQ); without it the TFTP service is read-only.
    #[arg(long)]
    pub tftp_write: bool,
    /// Let TFTP uploads replace existing files (needs --tftp-write).
    #[arg(long, requires = "tftp_write")]
    pub tftp_overwrite: bool,
    /// Most TFTP transfers at once; more get "server busy".
    #[arg(long, value_name = "N", default_value_t = sockit_tftp::ServerConfig::default().max_transfers)]
    pub tftp_max_transfers: usize,
    /// Largest TFTP blksize granted (lower it for clients that cannot reassemble IP fragments).
    #[arg(long, value_name = "BYTES", default_value_t = sockit_tftp::ServerConfig::default().max_blksize,
          value_parser = clap::value_parser!(u16).range(512..=65464))]
    pub tftp_max_blksize: u16,
}

impl TftpArgs {
    /// The TFTP server config; `data_root` gives the default root.
    fn to_config(
        &self,
        data_root: &std::path::Path,
        drain: Duration,
    ) -> anyhow::Result<sockit_tftp::ServerConfig> {
        let root = match &self.tftp_root {
            Some(root) => root.clone(),
            None => data_root.join("tftp"),
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create TFTP root {}", root.display()))?;
        Ok(sockit_tftp::ServerConfig {
            root: root.canonicalize()?,
            write_allowed: self.tftp_write,
            overwrite_allowed: self.tftp_overwrite,
            max_transfers: self.tftp_max_transfers.max(1),
            max_blksize: self.tftp_max_blksize,
            drain_timeout: drain,
            ..sockit_tftp::ServerConfig::default()
        })
    }
}

/// Connection limits and timeouts of every TCP service.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Most open connections per service.
    #[arg(long, default_value_t = Limits::default().max_conns)]
    pub max_conns: usize,
    /// Most open connections per service from one IP address.
    #[arg(long, default_value_t = Limits::default().max_conns_per_ip)]
    pub max_conns_per_ip: usize,
    /// Close a connection idle this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Time a new connection has for its first byte and the authentication handshake.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Close a connection whose writes stall this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// Listen backlog.
    #[arg(long, default_value_t = Limits::default().backlog)]
    pub backlog: u32,
    /// On shutdown, how long open connections may finish before they are closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl LimitArgs {
    fn to_limits(&self) -> Limits {
        Limits {
            max_conns: self.max_conns.max(1),
            max_conns_per_ip: self.max_conns_per_ip.max(1),
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
            write_timeout: self.write_timeout,
            backlog: self.backlog.max(1),
            drain_timeout: self.drain_timeout,
        }
    }
}

/// What every service gets from `serve`.
#[derive(Clone)]
pub struct ServeContext {
    /// Connection limits.
    pub limits: Limits,
    /// The data root.
    pub root: PathBuf,
    /// The shared key, if any.
    pub key: Option<sockit_wire::Key>,
    /// Cancelled on Ctrl-C / SIGTERM.
    pub shutdown: CancellationToken,
    /// The file service's root, staging area and caches.
    pub files: Arc<FilesRoot>,
    /// The exec service's settings.
    pub exec: ExecConfig,
    /// The TLS acceptor and certificate fingerprint when serving with --tls.
    pub tls: Option<(tokio_rustls::TlsAcceptor, Fingerprint)>,
    /// The book library, when the reader service runs.
    pub reader: Option<std::sync::Arc<sockit_reader::Library>>,
    /// The TFTP service's settings.
    pub tftp: sockit_tftp::ServerConfig,
    /// The chat services' settings (IRC server, UDP room, discovery name).
    pub chat: chat_args::ChatSettings,
}

impl std::fmt::Debug for ServeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeContext")
            .field("limits", &self.limits)
            .field("root", &self.root)
            .field("key", &self.key.is_some())
            .field("tls", &self.tls.as_ref().map(|(_, fp)| fp))
            .field("reader", &self.reader.is_some())
            .field("chat_name", &self.chat.irc.name)
            .finish_non_exhaustive()
    }
}

/// Runs the server.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let key = g.load_key()?;
    if !args.bind.is_loopback() && key.is_none() && !args.no_auth {
        return usage(format!(
            "refusing to bind {} without authentication: anyone who can reach this host could use the \
             framed service. Pass --key FILE (create one with `sockit keygen FILE`), or --no-auth to accept the risk",
            args.bind
        ));
    }
    if args.exec.allow_exec && key.is_none() {
        return usage(
            "refusing --allow-exec without --key: anyone who can connect could run commands. \
             Create a key with `sockit keygen FILE` and pass --key FILE to both server and client",
        );
    }
    let tls_mode = if args.tls_only {
        plan::TlsMode::Only
    } else if args.tls || args.tls_cert.is_some() {
        plan::TlsMode::Also
    } else {
        plan::TlsMode::Off
    };
    let endpoints = match plan::plan(&args.only, &args.ports, args.bind, tls_mode) {
        Ok(e) => e,
        Err(e) => return usage(e.to_string()),
    };
    let root = match args.root.clone() {
        Some(r) => r,
        None => dirs::data_dir()
            .context("no platform data dir; pass --root DIR")?
            .join("sockit"),
    };
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create data root {}", root.display()))?;
    let root = root.canonicalize()?;
    raise_fd_limit();
    let files = FilesRoot::open(
        &root,
        FilesConfig {
            max_upload: args.files.max_upload,
            staging_ttl: args.files.staging_ttl,
            hash_cache_entries: args.files.hash_cache,
        },
    )
    .with_context(|| {
        format!(
            "cannot open the data root {} for the file service",
            root.display()
        )
    })?;
    let exec = ExecConfig {
        enabled: args.exec.allow_exec,
        timeout: args.exec.exec_timeout,
        output_cap: args.exec.exec_output_cap,
        max_execs: args.exec.max_execs.max(1),
        cwd: root.clone(),
    };
    let tls = if tls_mode != plan::TlsMode::Off {
        Some(tls_setup(&args, &root)?)
    } else {
        None
    };
    if !args.bind.is_loopback() && tls.is_none() {
        eprintln!(
            "sockit: warning: serving on {} without --tls: file contents, exec output and chat travel in clear text",
            args.bind
        );
    }

    let limits = args.limits.to_limits();
    let tftp = if endpoints.iter().any(|e| e.service == "tftp") {
        args.tftp.to_config(&root, limits.drain_timeout)?
    } else {
        sockit_tftp::ServerConfig::default()
    };
    let bound = start::bind_all(&endpoints, args.limits.backlog)?;
    let mut ctx = ServeContext {
        limits,
        root,
        key,
        shutdown: CancellationToken::new(),
        files,
        exec,
        chat: args.chat.settings()?,
        tls,
        tftp,
        reader: None,
    };
    if endpoints.iter().any(|e| e.service == "reader") {
        ctx.reader = Some(reader::open(&args.reader, &ctx).await?);
    }
    let addrs = start::addresses(&bound);
    let mut tasks = start::start_all(bound, &ctx);

    print_banner(&ctx, &addrs, args.bind, g.json);
    if let Some(path) = &args.addr_file {
        addr_file::write(path, &addrs)
            .with_context(|| format!("cannot write --addr-file {}", path.display()))?;
    }
    tokio::spawn(wait_for_signals(ctx.shutdown.clone()));

    ctx.shutdown.cancelled().await;
    info!(
        "shutting down: no new connections; draining for up to {:?}",
        ctx.limits.drain_timeout
    );
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(e)) = joined {
            tracing::warn!(error = %e, "service stopped with an error");
        }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn tls_setup(
    args: &Args,
    root: &std::path::Path,
) -> anyhow::Result<(tokio_rustls::TlsAcceptor, Fingerprint)> {
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ServerIdentity::from_pem_files(cert, key)?,
        _ => {
            let dir = sockit_wire::tls::cert::default_dir(root);
            let (identity, fresh) = ServerIdentity::load_or_generate(&dir)?;
            if fresh {
                info!(dir = %dir.display(), "generated a self-signed TLS certificate");
            }
            identity
        }
    };
    let fp = identity.fingerprint();
    Ok((sockit_wire::tls::acceptor(&identity)?, fp))
}

fn print_banner(ctx: &ServeContext, addrs: &[start::BoundAddr], bind: IpAddr, json: bool) {
    if json {
        println!("{}", addr_file::to_json(addrs));
        return;
    }
    let auth = if ctx.key.is_some() {
        "hmac-sha256"
    } else if bind.is_loopback() {
        "none (loopback only)"
    } else {
        "NONE (--no-auth)"
    };
    println!(
        "sockit {} serving; data root {}; auth {}",
        env!("CARGO_PKG_VERSION"),
        ctx.root.display(),
        auth
    );
    println!("{:<10} {:<6} ADDRESS", "SERVICE", "PROTO");
    for a in addrs {
        let note = match (&ctx.tls, a.service) {
            (Some(_), "framed") => "  (TLS)",
            _ if a.proto.is_tls() => "  (TLS)",
            _ => "",
        };
        println!("{:<10} {:<6} {}{note}", a.service, a.proto, a.addr);
    }
    if let Some((_, fp)) = &ctx.tls {
        println!("TLS certificate fingerprint: {fp}");
        println!(
            "  clients: sockit --tls --fingerprint {fp} ...  (or trust on first use with --tls)"
        );
    }
    println!(
        "Ctrl-C or SIGTERM stops (open connections get {:?} to finish).",
        ctx.limits.drain_timeout
    );
}

/// First Ctrl-C/SIGTERM: graceful shutdown. Second: exit at once.
async fn wait_for_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("interrupt received"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    eprintln!("sockit: second signal, exiting without draining");
    std::process::exit(130);
}

/// Raises the soft open-file limit to the hard limit: every connection is a descriptor.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
