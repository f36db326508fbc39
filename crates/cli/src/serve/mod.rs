//! `sockit serve`: bind every selected service, print the table, serve until Ctrl-C or
//! SIGTERM, then drain.

mod addr_file;
mod chat_args;
mod irc_auth;
pub(crate) mod layout;
mod ntp;
mod plan;
mod policy;
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
use sockit_runtime::server::Limits;
use sockit_runtime::tls::{Fingerprint, ServerIdentity};
use sockit_runtime::udp_guard::RateLimit;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub key: crate::global::KeyArg,
    /// Run only these services (comma-separated: greet, echo, daytime, time, ntp, framed,
    /// reader, tftp, chat, udp-chat, discovery).
    #[arg(long, value_delimiter = ',', value_name = "SVC,...")]
    pub only: Vec<String>,
    /// On a non-loopback bind, also expose these services (or endpoints, SVC.PROTO) that
    /// cannot authenticate their clients: greet, echo, daytime, time, ntp, tftp, udp-chat,
    /// discovery, reader.tcp (the classic protocol).
    #[arg(long, value_delimiter = ',', value_name = "SVC[.PROTO],...")]
    pub public: Vec<String>,
    /// Port of a service (repeatable): SVC=N; 0 picks a free port; all=N applies to every service.
    #[arg(long = "port", value_name = "SVC=N")]
    pub ports: Vec<String>,
    /// Address to bind. On a non-loopback address only services that authenticate run
    /// (framed with --key, the reader and IRC with --key or accounts), plus --public ones.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Data root: files/, tftp/, books/ are served; state/ (accounts, catalog, TLS key,
    /// staging) never is. Default: the platform data dir + /sockit.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the bound addresses as JSON to FILE (atomically) once every service listens.
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
    /// Expose every service on a non-loopback bind, authenticated or not (as if all were
    /// named in --public): anyone who reaches the port can use it.
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
    pub udp: UdpArgs,
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
    #[command(flatten)]
    pub ntp: ntp::NtpArgs,
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
    /// Keep the staged part of an upload that failed for lack of disk space (default:
    /// remove it, so the space comes back at once).
    #[arg(long)]
    pub keep_partial: bool,
    /// Most files one `putmany`/`getmany` batch of a tree transfer may name (clients cut
    /// theirs to it; at most 200, so that a reply with an error for each fits in one
    /// 64 KiB header).
    #[arg(long, default_value_t = FilesConfig::default().batch_max_files, value_name = "N",
          value_parser = parse_batch_files)]
    pub batch_max_files: usize,
    /// Most bytes of one `putmany` request or `getmany` reply (held in memory whole; K, M
    /// suffixes are powers of 1024).
    #[arg(long, default_value = "16M", value_parser = parse_size, value_name = "SIZE")]
    pub batch_max_bytes: u64,
    /// Largest chunk list `sync` exchanges for one file (held in memory; 36 bytes per 8 KiB
    /// of file on average, so 64M covers files of about 14 GiB; larger files are sent
    /// whole).
    #[arg(long, default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    pub sync_max_chunk_list: u64,
    /// Do not offer zstd compression (`--compress` clients then send and get raw bytes).
    #[arg(long)]
    pub no_compress: bool,
}

/// `--batch-max-files`: 1 to 200.
fn parse_batch_files(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=200).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number of files from 1 to 200")),
    }
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
    /// Most remote commands running at once (a command counts until every process it
    /// started is dead); one more gets `busy`.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_execs: usize,
    /// How exec runs are contained: auto (a cgroup v2 per command where possible, else a
    /// subreaper that kills every descendant), cgroup, subreaper.
    #[arg(long, default_value = "auto")]
    pub exec_containment: sockit_exec::Containment,
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
    /// Directory the TFTP service serves. Default: ROOT/tftp.
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
    /// Give up on a TFTP peer that makes no progress for this long, whatever `timeout` it
    /// asked for.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub tftp_give_up: Duration,
    /// Most TFTP transfers at once from one address; more get "server busy".
    #[arg(long, value_name = "N", default_value_t = sockit_tftp::ServerConfig::default().max_transfers_per_ip)]
    pub tftp_max_transfers_per_ip: usize,
    /// Largest TFTP blksize granted (lower it for clients that cannot reassemble IP fragments).
    #[arg(long, value_name = "BYTES", default_value_t = sockit_tftp::ServerConfig::default().max_blksize,
          value_parser = clap::value_parser!(u16).range(512..=65464))]
    pub tftp_max_blksize: u16,
}

impl TftpArgs {
    /// The TFTP server config for the tree `root`.
    fn to_config(
        &self,
        root: &std::path::Path,
        drain: Duration,
        rate: RateLimit,
    ) -> anyhow::Result<sockit_tftp::ServerConfig> {
        let root = root.to_path_buf();
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create TFTP root {}", root.display()))?;
        Ok(sockit_tftp::ServerConfig {
            root: root.canonicalize()?,
            write_allowed: self.tftp_write,
            overwrite_allowed: self.tftp_overwrite,
            max_transfers: self.tftp_max_transfers.max(1),
            max_blksize: self.tftp_max_blksize,
            give_up: self.tftp_give_up.max(Duration::from_millis(100)),
            max_transfers_per_ip: self.tftp_max_transfers_per_ip.max(1),
            rate,
            drain_timeout: drain,
            ..sockit_tftp::ServerConfig::default()
        })
    }
}

/// The guard of every UDP service.
#[derive(Debug, clap::Args)]
pub struct UdpArgs {
    /// Datagrams per second one source may send to a UDP service (0: no limit).
    #[arg(long, default_value_t = RateLimit::default().per_second, value_name = "N")]
    pub udp_rate: u32,
    /// Datagrams one source may send at once after a quiet spell.
    #[arg(long, default_value_t = RateLimit::default().burst, value_name = "N")]
    pub udp_burst: u32,
    /// UDP chat relays only to participants that answered a return-path cookie: on,
    /// off, or auto (on for non-loopback binds, off on loopback so the course's plain
    /// client keeps working).
    #[arg(long, default_value = "auto", value_name = "on|off|auto",
          value_parser = ["on", "off", "auto"])]
    pub udp_guard: String,
}

impl UdpArgs {
    /// The per-source rate limit.
    pub fn rate(&self) -> RateLimit {
        if self.udp_rate == 0 {
            return RateLimit::OFF;
        }
        RateLimit {
            per_second: self.udp_rate,
            burst: self.udp_burst.max(1),
            ..RateLimit::default()
        }
    }

    /// Whether udp-chat asks for a return-path cookie on a bind to `bind`.
    pub fn guard(&self, bind: IpAddr) -> bool {
        match self.udp_guard.as_str() {
            "on" => true,
            "off" => false,
            _ => !bind.is_loopback(),
        }
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
    /// The IRC TLS port's acceptor (the same certificate; it also asks clients for an
    /// optional certificate, for SASL EXTERNAL) when serving with --tls.
    pub irc_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The book library, when the reader service runs.
    pub reader: Option<std::sync::Arc<sockit_reader::Library>>,
    /// The TFTP service's settings.
    pub tftp: sockit_tftp::ServerConfig,
    /// The chat services' settings (IRC server, UDP room, discovery name).
    pub chat: chat_args::ChatSettings,
    /// The auth policy's accounts and whether a key makes them mandatory.
    pub auth: AuthContext,
    /// The per-source rate limit of every UDP service.
    pub udp_rate: RateLimit,
    /// The classic reader port serves even while the library requires logins.
    pub classic_public: bool,
    /// What the NTP service claims about the host clock.
    pub ntp: sockit_ntp::server::ServerConfig,
    /// NTS (master keys, NTS-KE acceptor) when serving with --tls.
    pub nts: Option<ntp::NtsSetup>,
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
    let planned = match plan::plan(&args.only, &args.ports, args.bind, tls_mode) {
        Ok(e) => e,
        Err(e) => return usage(e.to_string()),
    };
    let public = match policy::Publics::parse(&args.public) {
        Ok(p) => p,
        Err(e) => return usage(format!("--public: {e}")),
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
    let layout = layout::Layout::of(&root);
    layout
        .prepare()
        .with_context(|| format!("cannot lay out the data root {}", root.display()))?;
    let books = args
        .reader
        .books
        .clone()
        .unwrap_or_else(|| layout.books.clone());
    let tftp_root = args
        .tftp
        .tftp_root
        .clone()
        .unwrap_or_else(|| layout.tftp.clone());
    if let Err(e) = layout::check_apart(
        &layout.state,
        &[("--books", &books), ("--tftp-root", &tftp_root)],
    ) {
        return usage(e);
    }
    let accounts = sockit_accounts::Accounts::open(&layout.accounts())
        .with_context(|| format!("cannot open the accounts in {}", layout.state.display()))?;
    let classic_public =
        args.no_auth || public.names(registry::Service::Reader, registry::Proto::Tcp);
    let decision = match policy::decide(
        planned,
        &policy::PolicyInput {
            loopback: args.bind.is_loopback(),
            key: key.is_some(),
            accounts: accounts.any(),
            no_auth: args.no_auth,
            public,
            explicit: args
                .only
                .iter()
                .filter_map(|n| registry::Service::find(n))
                .collect(),
        },
    ) {
        Ok(d) => d,
        Err(e) => return usage(e.to_string()),
    };
    let endpoints: Vec<plan::Endpoint> = decision.run.iter().map(|(e, _)| e.clone()).collect();
    raise_fd_limit();
    let files = FilesRoot::open_split(
        &layout.files,
        &layout.staging(),
        FilesConfig {
            max_upload: args.files.max_upload,
            staging_ttl: args.files.staging_ttl,
            hash_cache_entries: args.files.hash_cache,
            keep_partial: args.files.keep_partial,
            batch_max_files: args.files.batch_max_files,
            batch_max_bytes: args.files.batch_max_bytes,
            sync_max_chunk_list: args.files.sync_max_chunk_list,
            compress: !args.files.no_compress,
        },
    )
    .with_context(|| {
        format!(
            "cannot open {} for the file service",
            layout.files.display()
        )
    })?;
    let exec = ExecConfig {
        enabled: args.exec.allow_exec,
        timeout: args.exec.exec_timeout,
        output_cap: args.exec.exec_output_cap,
        max_execs: args.exec.max_execs.max(1),
        cwd: layout.files.clone(),
        containment: args.exec.exec_containment,
    };
    if args.exec.allow_exec {
        if let Err(e) = sockit_exec::resolve_containment(args.exec.exec_containment) {
            return usage(format!(
                "--exec-containment {}: {e}",
                args.exec.exec_containment
            ));
        }
    }
    let (tls, irc_tls, nts) = if tls_mode != plan::TlsMode::Off {
        let (identity, acceptor, fp) = tls_setup(&args, &layout)?;
        let irc_acceptor = sockit_runtime::tls::acceptor_with_client_certs(&identity)?;
        let nts_planned = endpoints
            .iter()
            .any(|e| e.service == registry::Service::Ntp && e.proto.is_tls());
        let nts = if nts_planned {
            Some(ntp::nts_setup(
                &layout.nts(),
                &identity,
                args.ntp.nts_key_rotation,
            )?)
        } else {
            None
        };
        (Some((acceptor, fp)), Some(irc_acceptor), nts)
    } else {
        (None, None, None)
    };
    if !args.bind.is_loopback() && tls.is_none() {
        eprintln!(
            "sockit: warning: serving on {} without --tls: passwords, file contents, exec output and chat travel in clear text",
            args.bind
        );
    }
    for w in &decision.warnings {
        eprintln!("sockit: warning: {w}");
    }

    let limits = args.limits.to_limits();
    let tftp = if endpoints
        .iter()
        .any(|e| e.service == registry::Service::Tftp)
    {
        args.tftp
            .to_config(&tftp_root, limits.drain_timeout, args.udp.rate())?
    } else {
        sockit_tftp::ServerConfig::default()
    };
    let bound = start::bind_all(&endpoints, args.limits.backlog)?;
    let auth = AuthContext {
        required: key.is_some(),
        accounts,
    };
    let mut chat = args.chat.settings()?;
    for oper in &chat.irc.opers {
        if !auth.accounts.exists(&oper.account) {
            return Err(crate::exit::UsageError(format!(
                "--chat-oper {}: there is no account `{}` (create it with `sockit account add {}`)",
                oper.name, oper.account, oper.account
            ))
            .into());
        }
    }
    chat.room.guard = args.udp.guard(args.bind);
    chat.room.rate = args.udp.rate();
    chat.irc.auth = Some(Arc::new(irc_auth::AccountsIrcAuth::new(
        auth.accounts.clone(),
        auth.required,
        chat.registration,
    )));
    if bound.iter().any(|b| b.service == registry::Service::Chat) {
        let history = args.chat.history(&layout.state);
        // Open the history store once here, so a store that cannot be opened stops the
        // start with its error instead of the IRC service running without history.
        sockit_chat::irc::History::from_config(Some(&history))
            .with_context(|| format!("cannot open the chat history {}", history.path.display()))?;
        chat.irc.history = Some(history);
        // The same for the registered channels: a file that cannot be opened stops the
        // start instead of registrations silently living in memory only.
        if chat.irc.channel_registration {
            let channels = chat_args::channel_store(&layout.state);
            sockit_chat::irc::ChannelStore::from_config(Some(&channels)).with_context(|| {
                format!(
                    "cannot open the registered channels {}",
                    channels.path.display()
                )
            })?;
        }
    }
    let mut ctx = ServeContext {
        limits,
        root,
        key,
        shutdown: CancellationToken::new(),
        files,
        exec,
        chat,
        tls,
        irc_tls,
        tftp,
        reader: None,
        auth,
        udp_rate: args.udp.rate(),
        classic_public,
        ntp: args.ntp.config(),
        nts,
    };
    if endpoints
        .iter()
        .any(|e| e.service == registry::Service::Reader)
    {
        ctx.reader =
            Some(reader::open(&args.reader, &ctx, &layout, &books, args.bind.is_loopback()).await?);
    }
    let addrs = start::addresses(&bound);
    let mut tasks = start::start_all(bound, &ctx);

    // The handlers exist before anyone learns the addresses: a SIGTERM sent the moment
    // the addr file appears is a graceful stop, not the default kill.
    let signals = install_signal_handlers();
    print_banner(&ctx, &addrs, &decision, g.json);
    if let Some(path) = &args.addr_file {
        addr_file::write(path, &addrs)
            .with_context(|| format!("cannot write --addr-file {}", path.display()))?;
    }
    if let Some(signals) = signals {
        tokio::spawn(wait_for_signals(signals, ctx.shutdown.clone()));
    }

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

/// The service list of `serve --help`, from the registry.
pub fn services_help() -> String {
    let mut out = String::from("Services (SERVICE PROTO/PORT ... AUTH: what it is):\n");
    for s in registry::Service::ALL {
        let endpoints: Vec<String> = s
            .endpoints()
            .iter()
            .map(|e| format!("{}/{}", e.proto, e.port))
            .collect();
        let auth = if !s.can_authenticate() {
            "open (--public to expose beyond loopback)"
        } else if s
            .endpoints()
            .iter()
            .any(|e| e.auth == registry::AuthMethod::Key)
        {
            "--key"
        } else {
            "accounts"
        };
        let udp = if s.answers_unauthenticated_udp() {
            " [rate-limited UDP]"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {:<10} {:<28} {auth}{udp}: {}\n",
            s.name(),
            endpoints.join(" "),
            s.summary()
        ));
    }
    out
}

/// The auth policy's inputs every service shares.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// Whether the server has a key (then the reader and IRC require accounts even when
    /// none exist yet).
    pub required: bool,
    /// The server's accounts.
    pub accounts: Arc<sockit_accounts::Accounts>,
}

fn tls_setup(
    args: &Args,
    layout: &layout::Layout,
) -> anyhow::Result<(ServerIdentity, tokio_rustls::TlsAcceptor, Fingerprint)> {
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ServerIdentity::from_pem_files(cert, key)?,
        _ => {
            let dir = layout.tls();
            // The bind address goes into a new certificate's names: clients that verify
            // the address they dialled (NTS clients such as chrony) accept it then.
            let extra: Vec<String> = if args.bind.is_unspecified() {
                Vec::new()
            } else {
                vec![args.bind.to_string()]
            };
            let (identity, fresh) = ServerIdentity::load_or_generate_for(&dir, &extra)?;
            if fresh {
                info!(dir = %dir.display(), "generated a self-signed TLS certificate");
            }
            identity
        }
    };
    let fp = identity.fingerprint();
    let acceptor = sockit_runtime::tls::acceptor(&identity)?;
    Ok((identity, acceptor, fp))
}

fn print_banner(
    ctx: &ServeContext,
    addrs: &[start::BoundAddr],
    decision: &policy::Decision,
    json: bool,
) {
    if json {
        println!("{}", addr_file::to_json(addrs));
        return;
    }
    let key = if ctx.key.is_some() {
        "hmac-sha256 key"
    } else {
        "no key"
    };
    let accounts = ctx.auth.accounts.list().len();
    println!(
        "sockit {} serving; data root {}; {key}, {accounts} account(s)",
        env!("CARGO_PKG_VERSION"),
        ctx.root.display(),
    );
    println!("{:<10} {:<6} {:<22} AUTH", "SERVICE", "PROTO", "ADDRESS");
    for a in addrs {
        let tls = match (&ctx.tls, a.service) {
            (Some(_), registry::Service::Framed) => " (TLS)",
            _ if a.proto.is_tls() => " (TLS)",
            _ => "",
        };
        let guard = decision
            .run
            .iter()
            .find(|(e, _)| e.service == a.service && e.proto == a.proto)
            .map(|(e, g)| match (g, e.auth) {
                (policy::Guard::Open, _) => "open",
                (_, registry::AuthMethod::Key) => "key",
                _ => "accounts",
            })
            .unwrap_or("open");
        println!(
            "{:<10} {:<6} {:<22} {guard}{tls}",
            a.service.name(),
            a.proto,
            a.addr.to_string()
        );
    }
    for (e, why) in &decision.left_out {
        println!("not started: {} ({why})", e.label());
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

/// SIGTERM and SIGINT streams, installed at once (None, with a warning, if they cannot be).
fn install_signal_handlers() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            None
        }
    }
}

/// First Ctrl-C/SIGTERM: graceful shutdown. Second: exit at once.
async fn wait_for_signals(
    (mut term, mut int): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    shutdown: CancellationToken,
) {
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
/// A limit that cannot be raised is not fatal: the server still runs, with fewer clients.
fn raise_fd_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
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
