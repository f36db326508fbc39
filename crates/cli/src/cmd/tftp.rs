//! `sockit tftp get|put`: the TFTP client, with a progress bar on a terminal.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sockit_tftp::client::{self, ClientOptions, Progress, TransferSummary};
use sockit_tftp::Mode;

use crate::exit::usage;
use crate::global::{resolve_server, GlobalArgs};

/// `sockit tftp` subcommands.
///
/// The server comes from `--server` (or `SOCKIT_SERVER`) like every client's, or, as
/// tftp-hpa takes it, as the first word: `tftp get HOST REMOTE [LOCAL]`. With neither, a
/// lone file name goes to 127.0.0.1.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Download REMOTE from a TFTP server into LOCAL (default: REMOTE's file name).
    Get {
        /// [HOST] REMOTE [LOCAL]. HOST is HOST, HOST:PORT or [V6]:PORT (default port
        /// 6969; use :69 for a standard server); LOCAL is written to a temporary file,
        /// renamed when complete.
        #[arg(num_args = 1..=3, required = true, value_name = "WORDS")]
        words: Vec<String>,
        #[command(flatten)]
        opts: TransferArgs,
    },
    /// Upload LOCAL to a TFTP server as REMOTE (default: LOCAL's file name).
    Put {
        /// [HOST] LOCAL [REMOTE]. HOST as for get.
        #[arg(num_args = 1..=3, required = true, value_name = "WORDS")]
        words: Vec<String>,
        #[command(flatten)]
        opts: TransferArgs,
    },
}

impl Command {
    /// The `--server` option of the transfer.
    pub fn server(&self) -> &crate::global::ServerArg {
        match self {
            Command::Get { opts, .. } | Command::Put { opts, .. } => &opts.server,
        }
    }
}

/// The server and the file words of a `get`/`put` command line.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    server: &'a str,
    file: &'a str,
    other: Option<&'a str>,
}

/// Splits `words` into server and files: with `--server`, `FILE [OTHER]`; without it,
/// `HOST FILE [OTHER]`, or a lone `FILE` on 127.0.0.1.
fn split_words<'a>(words: &'a [String], server: Option<&'a str>) -> Result<Target<'a>, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match (server, w.as_slice()) {
        (Some(server), [file]) => Ok(Target {
            server,
            file,
            other: None,
        }),
        (Some(server), [file, other]) => Ok(Target {
            server,
            file,
            other: Some(other),
        }),
        (Some(server), _) => Err(format!(
            "with --server {server}, give FILE [OTHER] (not a host as well)"
        )),
        (None, [file]) => Ok(Target {
            server: "127.0.0.1",
            file,
            other: None,
        }),
        (None, [server, file]) => Ok(Target {
            server,
            file,
            other: None,
        }),
        (None, [server, file, other]) => Ok(Target {
            server,
            file,
            other: Some(other),
        }),
        (None, _) => Err("give [HOST] FILE [OTHER]".to_owned()),
    }
}

/// Transfer mode on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Bytes as they are.
    Octet,
    /// Text with CR LF line ends on the wire.
    Netascii,
}

/// Options of a transfer.
#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    /// Block size to ask for (8–65464; 1468 fills an Ethernet frame without fragmenting).
    #[arg(long, default_value_t = 1468, value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub blksize: u16,
    /// Blocks per window (RFC 7440); 1 is classic lock-step.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: u16,
    /// Retransmission timeout; whole seconds (1–255) are also sent as the `timeout` option.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Transfer mode.
    #[arg(long, value_enum, default_value = "octet")]
    pub mode: ModeArg,
    /// Retransmissions without progress before giving up.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Give up when the server has not answered the request within this time (all
    /// retransmissions of the request included).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Send no options at all (plain RFC 1350: 512-byte lock-step).
    #[arg(long)]
    pub no_options: bool,
}

impl TransferArgs {
    fn to_options(&self) -> anyhow::Result<ClientOptions> {
        let mut o = ClientOptions {
            blksize: Some(self.blksize),
            windowsize: Some(self.windowsize),
            mode: match self.mode {
                ModeArg::Octet => Mode::Octet,
                ModeArg::Netascii => Mode::Netascii,
            },
            retries: self.retries,
            connect_timeout: self.connect_timeout,
            ..ClientOptions::default()
        };
        if let Some(t) = self.timeout {
            if t.is_zero() {
                return usage("--timeout must be more than 0");
            }
            o.timeout = t;
            if t.subsec_nanos() == 0 {
                o.timeout_option = u8::try_from(t.as_secs()).ok();
            }
        }
        if self.no_options {
            o.blksize = None;
            o.windowsize = None;
            o.timeout_option = None;
            o.tsize = false;
        }
        Ok(o)
    }
}

/// Runs `sockit tftp get|put`.
pub async fn run(command: Command, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match command {
        Command::Get { words, opts } => {
            let t = match split_words(&words, g.conn.server.as_deref()) {
                Ok(t) => t,
                Err(e) => return usage(format!("tftp get: {e}")),
            };
            let addr = resolve(t.server).await?;
            let remote = t.file.to_owned();
            let local = match t.other {
                Some(l) => PathBuf::from(l),
                None => match remote.rsplit(['/', '\\']).next() {
                    Some(name) if !name.is_empty() => PathBuf::from(name),
                    _ => {
                        return usage(format!(
                            "cannot derive a local name from {remote:?}; give LOCAL"
                        ))
                    }
                },
            };
            let options = opts.to_options()?;
            let mut bar = ProgressBar::new(&remote);
            let summary = client::get(addr, &remote, &local, &options, &mut |p| bar.update(p))
                .await
                .with_context(|| format!("tftp get {remote} from {addr}"))?;
            bar.finish();
            report(g, "get", &remote, &local, addr, &summary);
        }
        Command::Put { words, opts } => {
            let t = match split_words(&words, g.conn.server.as_deref()) {
                Ok(t) => t,
                Err(e) => return usage(format!("tftp put: {e}")),
            };
            let addr = resolve(t.server).await?;
            let local = PathBuf::from(t.file);
            let remote = match t.other {
                Some(r) => r.to_owned(),
                None => match local.file_name() {
                    Some(name) => name.to_string_lossy().into_owned(),
                    None => {
                        return usage(format!(
                            "cannot derive a remote name from {}; give REMOTE",
                            local.display()
                        ))
                    }
                },
            };
            let options = opts.to_options()?;
            let mut bar = ProgressBar::new(&remote);
            let summary = client::put(addr, &local, &remote, &options, &mut |p| bar.update(p))
                .await
                .with_context(|| format!("tftp put {} to {addr}", local.display()))?;
            bar.finish();
            report(g, "put", &remote, &local, addr, &summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    let addr = resolve_server(Some(server), sockit_tftp::DEFAULT_PORT);
    let resolved = tokio::net::lookup_host(&addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    Ok(resolved)
}

fn report(
    g: &GlobalArgs,
    op: &str,
    remote: &str,
    local: &Path,
    server: SocketAddr,
    s: &TransferSummary,
) {
    let secs = s.duration.as_secs_f64();
    let mbps = s.bytes as f64 / secs.max(1e-9) / 1e6;
    let n = &s.negotiated;
    if g.json {
        let out = serde_json::json!({
            "op": op,
            "server": server.to_string(),
            "remote": remote,
            "local": local.display().to_string(),
            "bytes": s.bytes,
            "wire_bytes": s.wire_bytes,
            "seconds": secs,
            "mb_per_s": mbps,
            "blksize": n.blksize,
            "windowsize": n.windowsize,
            "tsize": n.tsize,
            "options_negotiated": n.oack,
            "fell_back": s.fell_back,
            "retransmits": s.retransmits,
        });
        println!("{out}");
        return;
    }
    let tsize = n
        .tsize
        .map(|t| format!("tsize {t}"))
        .unwrap_or_else(|| "tsize not reported".into());
    let options = if n.oack {
        format!(
            "blksize {}, windowsize {}, {tsize}",
            n.blksize, n.windowsize
        )
    } else if s.fell_back {
        "server refused the options: plain RFC 1350 (blksize 512, lock-step)".into()
    } else {
        "server answered without options: plain RFC 1350 (blksize 512, lock-step)".into()
    };
    println!(
        "{op} {remote}: {} bytes in {secs:.2} s ({mbps:.1} MB/s); {options}; {} retransmissions",
        s.bytes, s.retransmits
    );
}

/// An indicatif bar on stderr when it is a terminal; nothing otherwise.
struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    fn new(name: &str) -> ProgressBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
            {
                bar.set_style(style);
            }
            bar.set_message(name.to_owned());
            bar
        });
        ProgressBar { bar }
    }

    fn update(&mut self, p: Progress) {
        let Some(bar) = &self.bar else { return };
        if let (Some(total), None) = (p.total, bar.length()) {
            bar.set_length(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
        bar.set_position(p.bytes);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod words_tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn server_flag_or_first_word() {
        let t = |w: &[&str], s: Option<&'static str>| {
            let w = words(w);
            split_words(&w, s).map(|t| {
                (
                    t.server.to_owned(),
                    t.file.to_owned(),
                    t.other.map(str::to_owned),
                )
            })
        };
        let own = |a: &str, b: &str, c: Option<&str>| {
            Ok((a.to_owned(), b.to_owned(), c.map(str::to_owned)))
        };
        assert_eq!(
            t(&["boot.img"], Some("h:69")),
            own("h:69", "boot.img", None)
        );
        assert_eq!(
            t(&["boot.img", "out"], Some("h")),
            own("h", "boot.img", Some("out"))
        );
        assert!(t(&["h", "boot.img", "out"], Some("h")).is_err());
        assert_eq!(t(&["boot.img"], None), own("127.0.0.1", "boot.img", None));
        assert_eq!(t(&["h", "boot.img"], None), own("h", "boot.img", None));
        assert_eq!(t(&["h", "a", "b"], None), own("h", "a", Some("b")));
    }
}
