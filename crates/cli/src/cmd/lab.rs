//! `sockit lab ...`: the concurrency lab (echo servers in every I/O model, load generator,
//! benchmark matrix, report with plots, TCP-internals experiments). Glue over sockit-lab.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sockit_lab::bench::{command_launcher, run_bench, BenchConfig};
use sockit_lab::{Model, ServeConfig, Shutdown};

use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit lab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The lab's subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// List the concurrency models.
    Models,
    /// Run an echo server in one model until Ctrl-C/SIGTERM.
    Serve(ServeArgs),
    /// Measure models × connection counts; writes bench-results/lab-<timestamp>.json.
    Bench(BenchArgs),
    /// Write a markdown table and PNG plots next to a results file.
    Report {
        /// A bench-results/lab-*.json file.
        file: PathBuf,
    },
    /// Experiment: a listener that never accepts; watch the accept queue overflow.
    Backlog {
        /// listen(2) backlog.
        #[arg(long, default_value_t = 4)]
        backlog: i32,
        /// Clients that connect.
        #[arg(long, default_value_t = 12)]
        clients: usize,
    },
    /// Experiment: one connection through SYN_SENT, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, TIME_WAIT.
    States,
    /// Experiment: rebinding a port with TIME_WAIT connections, without and with SO_REUSEADDR.
    Reuseaddr,
    /// Experiment (root, network namespaces): a SYN flood; the half-open queue filling, a
    /// connect failing without SYN cookies and succeeding with them, SYN-ACK retry times.
    Synflood(SynfloodArgs),
    /// Experiment (root, network namespaces): a full accept queue with
    /// tcp_abort_on_overflow 0 and 1 — what the client sees (timeout or reset).
    Overflow(OverflowArgs),
    /// Experiment (root, network namespaces): the neighbour table, ARP request and reply on
    /// the wire, an entry going REACHABLE → STALE → DELAY → PROBE → REACHABLE.
    Arp,
    /// Run a sockit exchange in network namespaces and print its packet timeline (root):
    /// `sockit lab capture -- echo`, `--pcap FILE` for Wireshark.
    Capture(CaptureArgs),
}

/// Flags of `sockit lab serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The model (see `sockit lab models`).
    #[arg(long, short)]
    pub model: String,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Threads / event loops, for the models that have them.
    #[arg(long)]
    pub workers: Option<usize>,
    /// listen(2) backlog.
    #[arg(long, default_value_t = sockit_lab::listener::DEFAULT_BACKLOG)]
    pub backlog: i32,
    /// Write {"lab":{"tcp":ADDR}} here (atomically) once listening.
    #[arg(long, value_name = "FILE")]
    pub addr_file: Option<PathBuf>,
}

/// Flags of `sockit lab bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// A service benchmark instead of the concurrency-model matrix.
    #[command(subcommand)]
    pub service: Option<BenchTarget>,
    /// Models, comma-separated (default: tokio,epoll-et,thread,python-threads; none
    /// when --target or --target-cmd is given).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// A server of your own to measure with the same cells (boxed: most runs have none).
    #[command(flatten)]
    pub target: Box<TargetArgs>,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    pub conns: Vec<usize>,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Measurement time per cell (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Also run open-loop cells at this total rate (req/s), latency corrected for
    /// coordinated omission.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run a connect-rate cell per model with this many concurrent connectors.
    #[arg(long, value_name = "N")]
    pub connect: Option<usize>,
    /// `--workers` for the servers.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Output directory.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Do not pin server and client to different cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Spread client sockets over 127.0.0.1..N.
    #[arg(long, default_value_t = 16)]
    pub source_ips: u8,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Stop each cell after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Write the report (markdown + PNGs) when done.
    #[arg(long)]
    pub report: bool,
}

/// `--target`, `--target-cmd`, `--target-name` of `sockit lab bench`.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Also measure a server you started, at HOST:PORT (loopback only), with the same
    /// load and cells; its CPU and memory are read from /proc when it is yours.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Also measure a server the lab starts and stops for every cell: a shell command
    /// in which `{port}` is replaced by a free port to listen on (127.0.0.1), pinned to
    /// the server cores like the models.
    #[arg(long, value_name = "CMD", conflicts_with = "target")]
    pub target_cmd: Option<String>,
    /// The row name of --target / --target-cmd in results and reports.
    #[arg(long, value_name = "NAME", default_value = "target")]
    pub target_name: String,
}

/// What `sockit lab bench <target>` measures instead of the model matrix.
#[derive(Debug, clap::Subcommand)]
pub enum BenchTarget {
    /// A service benchmark.
    #[command(flatten)]
    Service(crate::cmd::bench_services::ServiceBench),
    /// Memory soak: bursts of short connections on every TCP service of `sockit serve`,
    /// the server's RSS after each burst; writes soak.json and soak.md.
    Soak(SoakArgs),
}

/// Flags of `sockit lab bench soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Bursts per service.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub bursts: u64,
    /// Connections per burst (each does one exchange and closes).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub conns: u64,
    /// Connections open at once within a burst (default: all of them).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: Option<u64>,
    /// Services, comma-separated (default: all TCP services).
    #[arg(long, value_delimiter = ',', value_parser = parse_soak_service)]
    pub services: Vec<sockit_lab::soak::SoakService>,
    /// Longest wait after a burst for the server to close its connections and for its RSS
    /// to settle.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub settle_timeout: Duration,
    /// Directory for soak.json and soak.md.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

fn parse_soak_service(s: &str) -> Result<sockit_lab::soak::SoakService, String> {
    sockit_lab::soak::SoakService::find(s).ok_or_else(|| {
        let names: Vec<_> = sockit_lab::soak::SoakService::ALL
            .iter()
            .map(|s| s.name())
            .collect();
        format!("unknown service `{s}`; one of {}", names.join(", "))
    })
}

/// Runs `sockit lab bench soak`.
async fn soak(a: SoakArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the sockit binary")?;
    let _ = sockit_lab::affinity::raise_nofile();
    let work = tempfile::tempdir().context("cannot create a scratch directory")?;
    let conns = usize::try_from(a.conns)?;
    let config = sockit_lab::soak::SoakConfig {
        server: vec![exe.into_os_string(), "serve".into()],
        work_dir: work.path().to_path_buf(),
        services: if a.services.is_empty() {
            sockit_lab::soak::SoakService::ALL.to_vec()
        } else {
            a.services
        },
        bursts: usize::try_from(a.bursts)?,
        conns,
        concurrency: a
            .concurrency
            .map(usize::try_from)
            .transpose()?
            .unwrap_or(conns),
        settle_timeout: a.settle_timeout,
        out_dir: Some(a.out.clone()),
    };
    let report = sockit_lab::soak::run(&config)
        .await
        .context("memory soak")?;
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.markdown);
        for s in &report.services {
            if let Some(e) = s.bursts.iter().find_map(|b| b.first_error.as_deref()) {
                println!("{}: {} failed; first: {e}", s.service, s.failed());
            }
        }
        println!(
            "written: {} and {}",
            a.out.join("soak.json").display(),
            a.out.join("soak.md").display()
        );
    }
    let failed = report.services.iter().any(|s| s.failed() > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs a blocking lab function on its own OS thread (the lab builds its own runtimes,
/// which cannot nest inside the CLI's).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let handle = std::thread::Builder::new()
        .name("lab".into())
        .spawn(f)
        .context("cannot start the lab thread")?;
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .context("lab thread")?
        .map_err(|_| anyhow::anyhow!("the lab thread panicked"))?
}

fn parse_model(name: &str) -> anyhow::Result<Model> {
    match name.parse::<Model>() {
        Ok(m) => Ok(m),
        Err(e) => usage(e.to_string()),
    }
}

/// Dispatches `sockit lab ...`.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Models => models(g),
        LabCommand::Serve(a) => serve(a).await,
        LabCommand::Bench(BenchArgs {
            service: Some(BenchTarget::Service(target)),
            ..
        }) => crate::cmd::bench_services::run(target, g).await,
        LabCommand::Bench(BenchArgs {
            service: Some(BenchTarget::Soak(a)),
            ..
        }) => soak(a, g).await,
        LabCommand::Bench(a) => bench(a).await,
        LabCommand::Report { file } => {
            let files = blocking(move || Ok(sockit_lab::report::report(&file)?)).await?;
            println!("{}", files.markdown.display());
            for p in files.plots {
                println!("{}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Backlog { backlog, clients } => {
            let cfg = sockit_lab::experiments::backlog::BacklogConfig {
                backlog,
                clients,
                ..Default::default()
            };
            blocking(move || {
                sockit_lab::experiments::backlog::run(&cfg, &mut std::io::stdout())?;
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        LabCommand::States => {
            blocking(|| {
                sockit_lab::experiments::states::run(&mut std::io::stdout())?;
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        LabCommand::Reuseaddr => {
            blocking(|| {
                sockit_lab::experiments::reuseaddr::run(&mut std::io::stdout())?;
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        LabCommand::Synflood(a) => {
            let cfg = a.config();
            packet_experiment("synflood", g, always, move |out| {
                sockit_lab::experiments::synflood::run(&cfg, out)
            })
            .await
        }
        LabCommand::Overflow(a) => {
            let cfg = sockit_lab::experiments::overflow::OverflowConfig {
                backlog: a.backlog,
                read_wait: a.read_wait,
            };
            packet_experiment("overflow", g, always, move |out| {
                sockit_lab::experiments::overflow::run(&cfg, out)
            })
            .await
        }
        LabCommand::Arp => {
            packet_experiment("arp", g, always, sockit_lab::experiments::arp::run).await
        }
        LabCommand::Capture(a) => capture(a, g).await,
    }
}

fn models(g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if g.json {
        let list: Vec<_> = sockit_lab::models()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name(),
                    "workers": m.workers_meaning(),
                    "description": m.description(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<15} {:<34} DESCRIPTION", "MODEL", "--workers MEANS");
    for m in sockit_lab::models() {
        println!(
            "{:<15} {:<34} {}",
            m.name(),
            m.workers_meaning().unwrap_or("(ignored)"),
            m.description()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let model = parse_model(&a.model)?;
    let cfg = ServeConfig {
        model,
        addr: a.addr,
        workers: a.workers,
        backlog: a.backlog,
    };
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let addr_file = a.addr_file.clone();
    let server = blocking(move || {
        let _ = sockit_lab::affinity::raise_nofile();
        let mut file_err = None;
        let r = sockit_lab::run_model(&cfg, &s, |addr| {
            eprintln!("lab: {model} echo server listening on {addr}; Ctrl-C or SIGTERM stops");
            if let Some(p) = &addr_file {
                if let Err(e) = sockit_lab::write_addr_file(p, addr) {
                    file_err = Some(e);
                    s.trigger();
                }
            }
        });
        if let Some(e) = file_err {
            return Err(e).context("cannot write --addr-file");
        }
        r.with_context(|| format!("lab serve --model {model}"))?;
        Ok(ExitCode::SUCCESS)
    });
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r,
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.trigger();
    server.await
}

async fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    use sockit_lab::bench::{target, Target, TargetKind};
    let kind = match (&a.target.target, &a.target.target_cmd) {
        (Some(addr), _) => match target::parse_addr(addr) {
            Ok(addr) => Some(TargetKind::Addr(addr)),
            Err(e) => return usage(e.to_string()),
        },
        (None, Some(cmd)) => Some(TargetKind::Command(cmd.clone())),
        (None, None) => None,
    };
    let targets: Vec<Target> = kind
        .map(|kind| Target {
            name: a.target.target_name.clone(),
            kind,
        })
        .into_iter()
        .collect();
    for t in &targets {
        if let Err(e) = t.validate() {
            return usage(e.to_string());
        }
    }
    let names = if a.models.is_empty() && targets.is_empty() {
        BenchConfig::default()
            .models
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    } else {
        a.models
    };
    let models = names
        .iter()
        .map(|m| parse_model(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = BenchConfig {
        models,
        targets,
        conns: a.conns,
        size: a.size,
        duration: a.duration,
        rate: a.rate,
        connect: a.connect,
        workers: a.workers,
        out_dir: a.out,
        pin: !a.no_pin,
        source_ips: a.source_ips,
        client_threads: a.client_threads,
        max_requests: a.max_requests,
    };
    let exe = std::env::current_exe().context("cannot find the sockit binary to start servers")?;
    let want_report = a.report;
    blocking(move || {
        let launcher = command_launcher(exe, vec!["lab".into(), "serve".into()]);
        let (path, _) = run_bench(&cfg, &*launcher)?;
        println!("{}", path.display());
        if want_report {
            let files = sockit_lab::report::report(&path)?;
            println!("{}", files.markdown.display());
            for p in files.plots {
                println!("{}", p.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// Flags of `sockit lab synflood`.
#[derive(Debug, clap::Args)]
pub struct SynfloodArgs {
    /// The listener's listen(2) backlog (bounds its half-open requests too).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub backlog: i32,
    /// Crafted SYNs per phase.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub syns: u64,
    /// SYNs per second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Spoofed source addresses (198.18.0.100 on).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub spoofed_hosts: u8,
    /// net.ipv4.tcp_synack_retries in the server's namespace.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub synack_retries: u8,
    /// Do not wait for the first half-open request to expire (saves 2^(retries+1) - 1 - 3 s).
    #[arg(long)]
    pub no_expiry: bool,
}

impl SynfloodArgs {
    fn config(&self) -> sockit_lab::experiments::synflood::SynfloodConfig {
        sockit_lab::experiments::synflood::SynfloodConfig {
            backlog: self.backlog,
            syns: self.syns as usize,
            rate: self.rate,
            spoofed_hosts: self.spoofed_hosts,
            synack_retries: self.synack_retries,
            watch_expiry: !self.no_expiry,
            ..Default::default()
        }
    }
}

/// Flags of `sockit lab overflow`.
#[derive(Debug, clap::Args)]
pub struct OverflowArgs {
    /// The listener's backlog B: B early clients wait in the accept queue, then B + 1 late
    /// ones connect and B of them overflow it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub backlog: i32,
    /// How long a client waits for the server before it counts as a timeout.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub read_wait: Duration,
}

/// Flags of `sockit lab capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// Also write the frames to this pcap file (Wireshark, `tshark -r`).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// The client's standard input (default: this command's standard input when it is not
    /// a terminal, else nothing).
    #[arg(long, value_name = "TEXT")]
    pub input: Option<String>,
    /// An extra argument for the `sockit serve` started in the server's namespace
    /// (repeatable: --serve-arg=--only --serve-arg=echo).
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Start no server: COMMAND is any program, `{server}` in its arguments is the
    /// server namespace's address.
    #[arg(long)]
    pub no_server: bool,
    /// A sockit client subcommand with its arguments (run as `sockit --server ADDR ...`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Runs a packet experiment on the lab thread. Without root it is a usage error (exit 2).
/// The narration goes to stdout; with --json it goes to stderr and the report, as JSON,
/// to stdout.
async fn packet_experiment<R: serde::Serialize + Send + 'static>(
    name: &'static str,
    g: &GlobalArgs,
    ok: fn(&R) -> bool,
    f: impl FnOnce(&mut dyn std::io::Write) -> sockit_lab::Result<R> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    if !sockit_lab::experiments::netns::is_root() {
        return usage(format!(
            "`sockit lab {name}` needs root: it creates network namespaces, a veth pair and \
             raw/packet sockets (run it with sudo)"
        ));
    }
    let json = g.json;
    blocking(move || {
        let report = if json {
            f(&mut std::io::stderr())?
        } else {
            f(&mut std::io::stdout())?
        };
        if json {
            println!("{}", serde_json::to_string(&report)?);
        }
        Ok(if ok(&report) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
    .await
}

/// The experiments report what they saw; only failing to run them is an error.
fn always<R>(_: &R) -> bool {
    true
}

/// Runs `sockit lab capture`: `sockit serve` in the server's namespace, the client
/// subcommand in the client's, the timeline of the client's interface.
async fn capture(a: CaptureArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    use sockit_lab::experiments::capture::{CaptureConfig, Ready};
    let exe = std::env::current_exe().context("cannot find the sockit binary")?;
    let work = tempfile::tempdir().context("cannot create a scratch directory")?;
    let stdin = match a.input {
        Some(text) => text.into_bytes(),
        None if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .context("reading standard input")?;
            buf
        }
        None => Vec::new(),
    };
    let mut cfg = CaptureConfig {
        stdin,
        pcap: a.pcap,
        ..Default::default()
    };
    if a.no_server {
        cfg.client = a.command;
    } else {
        let addr_file = work.path().join("addrs.json");
        let mut server: Vec<std::ffi::OsString> = vec![exe.clone().into()];
        server.extend(["serve", "--bind", "0.0.0.0", "--no-auth", "--root"].map(Into::into));
        server.push(work.path().join("root").into());
        server.push("--addr-file".into());
        server.push(addr_file.clone().into());
        server.extend(a.serve_args.into_iter().map(Into::into));
        cfg.server = Some(server);
        cfg.ready = Ready::AddrFile(addr_file);
        cfg.client = vec![exe.into(), "--server".into(), "{server}".into()];
        cfg.client.extend(a.command);
    }
    let json = g.json;
    let client_ok =
        |r: &sockit_lab::experiments::capture::CaptureReport| r.client_status == Some(0);
    let code = packet_experiment("capture", g, client_ok, move |out| {
        let r = sockit_lab::experiments::capture::run(&cfg, out)?;
        if !json {
            let _ = std::io::Write::write_all(out, r.client_stdout.as_bytes());
        }
        if !r.client_stderr.is_empty() {
            eprint!("{}", r.client_stderr);
        }
        Ok(r)
    })
    .await?;
    drop(work);
    Ok(code)
}
