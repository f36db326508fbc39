//! `sockit lab bench <service>`: benchmarks of the services against their standard peers,
//! each written as JSON + markdown under bench-results/.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_bench::tftp::{self, BenchConfig};

use crate::global::GlobalArgs;

/// Which service to benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceBench {
    /// get and put of one file (default 1 GiB) over loopback against a raw socat pipe, then
    /// over TLS with the ratio to plain text.
    Files {
        /// Bytes per transfer (K, M, G suffixes).
        #[arg(long, default_value = "1G", value_parser = crate::serve::parse_size)]
        size: u64,
        /// Scratch directory for the test files (needs 3 × size free).
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        dir: PathBuf,
        /// Directory for files.json and files.md.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// Skip the TLS rows (put and get through a second server with --tls).
        #[arg(long)]
        no_tls: bool,
        /// Files of the tree scenario against rsync and tar | socat (0 skips it).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        tree_files: u64,
        /// Bytes per file of the tree scenario (K, M suffixes).
        #[arg(long, default_value = "4K", value_parser = crate::serve::parse_size)]
        tree_file_size: u64,
        /// Bytes rewritten in the middle of the file for the delta scenario against rsync
        /// (0 skips it).
        #[arg(long, default_value = "1M", value_parser = crate::serve::parse_size)]
        delta_changed: u64,
    },
    /// IRC load: clients in one channel and in many small ones at a fixed total PRIVMSG
    /// rate; delivered/s and latency p50/p99, ngircd and InspIRCd vs `sockit serve --only
    /// chat`, each its own process, with IRCv3 tags (server-time, message-tags) where offered.
    Chat {
        /// Clients per scenario.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Channel counts, one scenario each (clients spread evenly).
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100])]
        channels: Vec<usize>,
        /// Total PRIVMSG rate over all clients, messages per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Send window per scenario.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// The ngircd binary.
        #[arg(long, default_value = "ngircd")]
        ngircd: PathBuf,
        /// Skip ngircd.
        #[arg(long)]
        no_ngircd: bool,
        /// The InspIRCd binary.
        #[arg(long, default_value = "inspircd")]
        inspircd: PathBuf,
        /// Skip InspIRCd.
        #[arg(long)]
        no_inspircd: bool,
        /// Register without IRCv3 capabilities (no server-time/message-tags tags).
        #[arg(long)]
        no_tags: bool,
        /// Run sockit's server inside the benchmark's own runtime, sharing it with the
        /// load clients, instead of as its own `sockit serve` process.
        #[arg(long)]
        in_process: bool,
        /// sockit as a cluster of each of these many nodes over one nats-server (1: the
        /// single server), clients spread over the nodes.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize])]
        nodes: Vec<usize>,
        /// Directory for chat.json and chat.md.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
    /// NTP over loopback: chronyd vs `sockit serve --only ntp`, each its own process with
    /// rate limiting off; closed-loop clients measure requests/s, response time and
    /// loss, plus each server's CPU time and the offset `chronyd -Q` measures against it
    /// (needs chrony).
    Ntp {
        /// Concurrent client sockets, one request outstanding each.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
        clients: u64,
        /// Load window per server (at most 1 h).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Stop each server's load after this many requests.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        requests: Option<u64>,
        /// `chronyd -Q` runs per server (the median offset is reported).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
        offset_runs: u64,
        /// The chronyd binary.
        #[arg(long, default_value = "chronyd")]
        chronyd: PathBuf,
        /// Directory for ntp.json and ntp.md.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
    /// Reader over loopback HTTP: PDF page render p50/p99 cold and cached, TXT pages,
    /// concurrent readers paging through books, and a generated library (catalog scan,
    /// library pages, full-text search, EPUB chapters).
    Reader {
        /// Pages of the generated PDF (the TXT gets about as many).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        pages: u32,
        /// Concurrent readers.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        readers: u64,
        /// Seconds the concurrent readers page.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        duration: u64,
        /// Books of the generated library (0 skips the library phase).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        library: u64,
        /// Requests per library measurement (first page, search, chapter, ...).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        library_requests: u64,
        /// Directory for reader.json and reader.md.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
    /// 100 MiB over loopback: tftp-hpa ↔ tftpd-hpa vs sockit (needs tftp-hpa and tftpd-hpa).
    Tftp {
        /// File size in MiB.
        #[arg(long, default_value_t = 100)]
        size_mib: u64,
        /// blksize for the sockit client runs (b) and (c).
        #[arg(long, default_value_t = BenchConfig::default().blksize,
              value_parser = clap::value_parser!(u16).range(8..=65464))]
        blksize: u16,
        /// windowsize for run (c).
        #[arg(long, default_value_t = BenchConfig::default().windowsize,
              value_parser = clap::value_parser!(u16).range(1..))]
        windowsize: u16,
        /// Directory for tftp.json and tftp.md.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
}

/// Runs one service benchmark.
pub async fn run(target: ServiceBench, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match target {
        ServiceBench::Chat {
            clients,
            channels,
            rate,
            duration,
            ngircd,
            no_ngircd,
            inspircd,
            no_inspircd,
            no_tags,
            in_process,
            nodes,
            out,
        } => {
            let sockit = match in_process {
                true => None,
                false => Some(std::env::current_exe().context("cannot find the sockit binary")?),
            };
            let config = sockit_bench::chat::BenchConfig {
                clients,
                channels,
                rate,
                duration,
                ngircd: (!no_ngircd).then(|| find_sbin(ngircd)),
                inspircd: (!no_inspircd).then(|| find_sbin(inspircd)),
                tags: !no_tags,
                sockit,
                out_dir: Some(out.clone()),
                nodes,
            };
            let report = sockit_bench::chat::run(&config)
                .await
                .context("chat benchmark")?;
            print_report(g, &report, &format!("{}\n", report.markdown), &out, "chat")?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceBench::Files {
            size,
            dir,
            out,
            no_tls,
            tree_files,
            tree_file_size,
            delta_changed,
        } => {
            let exe = std::env::current_exe().context("cannot find the sockit binary")?;
            let opts = sockit_bench::files::BenchOptions {
                size,
                dir,
                out_dir: out.clone(),
                server: vec![exe.into_os_string(), "serve".into()],
                tls: !no_tls,
                tree_files: usize::try_from(tree_files)?,
                tree_file_size: usize::try_from(tree_file_size)?,
                delta_changed,
            };
            let report = sockit_bench::files::run(&opts)
                .await
                .context("files benchmark")?;
            print_report(
                g,
                &report,
                &sockit_bench::files::markdown(&report),
                &out,
                "files",
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceBench::Ntp {
            clients,
            duration,
            requests,
            offset_runs,
            chronyd,
            out,
        } => {
            let exe = std::env::current_exe().context("cannot find the sockit binary")?;
            let config = sockit_lab::ntp_bench::NtpBenchConfig {
                chronyd,
                clients: usize::try_from(clients)?,
                duration,
                requests,
                offset_runs: usize::try_from(offset_runs)?,
                out_dir: Some(out.clone()),
                ..sockit_lab::ntp_bench::NtpBenchConfig::new(exe)
            };
            // Threads and child processes, all blocking: off the async workers.
            let report = tokio::task::spawn_blocking(move || sockit_lab::ntp_bench::run(&config))
                .await
                .context("ntp benchmark")?
                .context("ntp benchmark")?;
            print_report(g, &report, &report.markdown, &out, "ntp")?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceBench::Reader {
            pages,
            readers,
            duration,
            library,
            library_requests,
            out,
        } => {
            let config = sockit_bench::reader::BenchConfig {
                pages,
                readers: usize::try_from(readers)?,
                duration: std::time::Duration::from_secs(duration),
                library_books: usize::try_from(library)?,
                library_requests: usize::try_from(library_requests)?,
                out_dir: Some(out.clone()),
                ..sockit_bench::reader::BenchConfig::default()
            };
            let report = sockit_bench::reader::run(&config)
                .await
                .context("reader benchmark")?;
            print_report(g, &report, &report.markdown, &out, "reader")?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceBench::Tftp {
            size_mib,
            blksize,
            windowsize,
            out,
        } => {
            let config = BenchConfig {
                size: size_mib << 20,
                blksize,
                windowsize,
                out_dir: out,
            };
            let report = tftp::run(&config).await.context("tftp benchmark")?;
            print_report(
                g,
                &report,
                &format!("{}\n", report.markdown),
                &config.out_dir,
                "tftp",
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A bare `ngircd` or `inspircd` also looked up in the sbin directories (often not on a
/// user's PATH).
fn find_sbin(bin: PathBuf) -> PathBuf {
    if bin.components().count() > 1 {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(&bin))
        .find(|p| p.is_file())
        .unwrap_or(bin)
}

/// Prints a benchmark's result: its JSON with --json, else its markdown and where both
/// files were written (`<out>/<name>.json` and `.md`).
fn print_report(
    g: &GlobalArgs,
    report: &impl serde::Serialize,
    markdown: &str,
    out: &std::path::Path,
    name: &str,
) -> anyhow::Result<()> {
    if g.json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{markdown}");
        println!(
            "written: {} and {}",
            out.join(format!("{name}.json")).display(),
            out.join(format!("{name}.md")).display()
        );
    }
    Ok(())
}
