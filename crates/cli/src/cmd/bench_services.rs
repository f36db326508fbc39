//! `sockit lab bench <service>`: benchmarks of the services against their standard peers,
//! each written as JSON + markdown under bench-results/.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_tftp::bench::{self, BenchConfig};

use crate::global::GlobalArgs;

/// Which service to benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceBench {
    /// get and put of one file (default 1 GiB) over loopback against a raw socat pipe.
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
    },
    /// Reader over loopback HTTP: PDF page render p50/p99 cold and cached, TXT pages, and
    /// concurrent readers paging through books.
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
        ServiceBench::Files { size, dir, out } => {
            let exe = std::env::current_exe().context("cannot find the sockit binary")?;
            let opts = sockit_files::bench::BenchOptions {
                size,
                dir,
                out_dir: out.clone(),
                server: vec![exe.into_os_string(), "serve".into()],
            };
            let report = sockit_files::bench::run(&opts)
                .await
                .context("files benchmark")?;
            if g.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", sockit_files::bench::markdown(&report));
                println!(
                    "written: {} and {}",
                    out.join("files.json").display(),
                    out.join("files.md").display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceBench::Reader {
            pages,
            readers,
            duration,
            out,
        } => {
            let config = sockit_reader::bench::BenchConfig {
                pages,
                readers: usize::try_from(readers)?,
                duration: std::time::Duration::from_secs(duration),
                out_dir: Some(out.clone()),
                ..sockit_reader::bench::BenchConfig::default()
            };
            let report = sockit_reader::bench::run(&config)
                .await
                .context("reader benchmark")?;
            if g.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.markdown);
                println!(
                    "written: {} and {}",
                    out.join("reader.json").display(),
                    out.join("reader.md").display()
                );
            }
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
            let report = bench::run(&config).await.context("tftp benchmark")?;
            if g.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.markdown);
                println!(
                    "written: {} and {}",
                    config.out_dir.join("tftp.json").display(),
                    config.out_dir.join("tftp.md").display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
