//! `sockit`: the command-line front end. Thin glue: parse flags, call the library crates,
//! map errors to exit codes in one place.

mod cmd;
mod exit;
mod global;
mod serve;
mod tui;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::global::{Conn, Early, GlobalArgs, Takes};

/// jemalloc instead of the platform's malloc: glibc keeps the memory of freed connection
/// buffers in its arenas (RSS grew with every burst of connections and never came back),
/// while jemalloc returns dirty pages to the kernel after a short decay, from a background
/// thread, so a server's memory follows its current load.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: purge from a background thread, unused dirty pages after 1 s.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// A Swiss-army knife for classic socket protocols.
#[derive(Debug, Parser)]
#[command(name = "sockit", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    early: Early,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service (greet, echo, daytime, time, framed, ...) until Ctrl-C.
    #[command(after_long_help = serve::services_help())]
    Serve(Box<serve::Args>),
    /// Write a new random 256-bit key to FILE (mode 0600) for --key.
    Keygen(cmd::keygen::Args),
    /// Manage the server's accounts (reader logins, IRC SASL/PASS): add, passwd, remove, list.
    Account(cmd::account::Args),
    /// Check a framed server (tcp 7788) answers, and how fast.
    Ping(cmd::ping::Args),
    /// The greet dialogue (tcp 6000): interactive, from stdin, or one round with --name.
    Greet(cmd::greet::Args),
    /// Send stdin to an echo server (tcp or --udp 7007) and print what comes back.
    Echo(cmd::echo::Args),
    /// Ask a daytime server (tcp or --udp 7013) for the time.
    Daytime(cmd::daytime::Args),
    /// Ask an RFC 868 time server (tcp or --udp 7037) for the time and show the clock offset.
    Time(cmd::time::Args),
    /// List a remote directory (framed tcp 7788).
    Ls(cmd::ls::Args),
    /// Show a remote path's kind, size, time, hash and staged upload.
    Stat(cmd::stat::Args),
    /// Download a file (or a tree with -r), verified by BLAKE3; --resume continues.
    Get(cmd::get::Args),
    /// Upload a file (or a tree with -r), verified by BLAKE3; --resume continues.
    Put(cmd::put::Args),
    /// Remove a remote file (or a tree with -r).
    Rm(cmd::rm::Args),
    /// Create a remote directory.
    Mkdir(cmd::mkdir::Args),
    /// Make a directory equal to another, one side on a server (HOST:PATH), sending only what changed.
    Sync(cmd::sync::Args),
    /// Run a command on the server (needs --allow-exec and --key there): exec -- CMD ARGS.
    Exec(cmd::exec::Args),
    /// Browse and read the book server (http 8080) in the terminal.
    Read(cmd::read::Args),
    /// The concurrency lab: echo servers in every I/O model, load generator, reports, TCP experiments.
    Lab(cmd::lab::Args),
    /// TFTP client (udp 6969 by default): get and put files, fast options with fallback.
    #[command(subcommand)]
    Tftp(cmd::tftp::Command),
    /// Chat on IRC (tcp 6667; terminal UI, or --plain lines) or in the UDP room (--udp 7788).
    Chat(cmd::chat::Args),
    /// List the sockit servers on the LAN (UDP broadcast to port 7099).
    Discover(cmd::discover::Args),
}

impl Command {
    /// The command's name and the connection options it takes.
    fn takes(&self) -> (&'static str, Takes<'_>) {
        let server = |s| Takes {
            server: Some(s),
            ..Takes::default()
        };
        let tls = |s, t| Takes {
            server: Some(s),
            tls: Some(t),
            key: None,
        };
        match self {
            Command::Serve(a) => (
                "serve",
                Takes {
                    key: Some(&a.key),
                    ..Takes::default()
                },
            ),
            Command::Keygen(_) => ("keygen", Takes::default()),
            Command::Account(_) => ("account", Takes::default()),
            Command::Lab(_) => ("lab", Takes::default()),
            Command::Discover(_) => ("discover", Takes::default()),
            Command::Ping(a) => ("ping", a.conn.takes()),
            Command::Ls(a) => ("ls", a.conn.takes()),
            Command::Stat(a) => ("stat", a.conn.takes()),
            Command::Get(a) => ("get", a.conn.takes()),
            Command::Put(a) => ("put", a.conn.takes()),
            Command::Rm(a) => ("rm", a.conn.takes()),
            Command::Mkdir(a) => ("mkdir", a.conn.takes()),
            Command::Sync(a) => ("sync", a.conn.takes()),
            Command::Exec(a) => ("exec", a.conn.takes()),
            Command::Read(a) => ("read", tls(&a.server, &a.tls)),
            Command::Chat(a) => ("chat", tls(&a.server, &a.tls)),
            Command::Time(a) => ("time", tls(&a.server, &a.tls)),
            Command::Greet(a) => ("greet", server(&a.server)),
            Command::Echo(a) => ("echo", server(&a.server)),
            Command::Daytime(a) => ("daytime", server(&a.server)),
            Command::Tftp(c) => ("tftp", server(c.server())),
        }
    }
}

/// Parses the command line. The connection options given before the command's name are
/// hidden from the top-level help (each client command lists its own) and merged with
/// the command's own.
fn parse() -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    for id in Early::IDS {
        command = command.mut_arg(id, |a| a.hide(true));
    }
    let matches = command.try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

fn main() -> ExitCode {
    let mut cli = match parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let (name, takes) = cli.command.takes();
    match Conn::merge(name, &cli.early, takes) {
        Ok(conn) => cli.global.conn = conn,
        Err(e) => return exit::report(Err(e)),
    }
    global::init_logging(&cli.global, matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sockit: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // Connections still open past the drain deadline are dropped with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    exit::report(result)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Serve(args) => serve::run(*args, g).await,
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Account(args) => cmd::account::run(args),
        Command::Ping(args) => cmd::ping::run(args, g).await,
        Command::Greet(args) => cmd::greet::run(args, g).await,
        Command::Echo(args) => cmd::echo::run(args, g).await,
        Command::Daytime(args) => cmd::daytime::run(args, g).await,
        Command::Time(args) => cmd::time::run(args, g).await,
        Command::Ls(args) => cmd::ls::run(args, g).await,
        Command::Stat(args) => cmd::stat::run(args, g).await,
        Command::Get(args) => cmd::get::run(args, g).await,
        Command::Put(args) => cmd::put::run(args, g).await,
        Command::Rm(args) => cmd::rm::run(args, g).await,
        Command::Mkdir(args) => cmd::mkdir::run(args, g).await,
        Command::Sync(args) => cmd::sync::run(args, g).await,
        Command::Exec(args) => cmd::exec::run(args, g).await,
        Command::Read(args) => cmd::read::run(args, g).await,
        Command::Lab(args) => cmd::lab::run(args, g).await,
        Command::Tftp(command) => cmd::tftp::run(command, g).await,
        Command::Chat(args) => cmd::chat::run(args, g).await,
        Command::Discover(args) => cmd::discover::run(args, g).await,
    }
}
