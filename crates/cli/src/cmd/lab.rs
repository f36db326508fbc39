//! `sockit lab bench files`: the file-service benchmark (the rest of `lab` lives in the lab
//! crate; this is the files entry).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_files::bench::{self, BenchOptions};

use crate::global::GlobalArgs;
use crate::serve::parse_size;

/// Flags of `sockit lab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: LabCommand,
}

/// Lab subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

/// What to benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// get and put of one large file over loopback against a raw socat pipe.
    Files {
        /// Bytes per transfer.
        #[arg(long, default_value = "1G", value_parser = parse_size)]
        size: u64,
        /// Scratch directory for the test files (needs 3 × size free).
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        dir: PathBuf,
        /// Where files.json and files.md are written.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
}

/// Runs a lab command.
pub async fn run(args: Args, _g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Bench {
            what: BenchWhat::Files { size, dir, out },
        } => {
            let exe = std::env::current_exe().context("cannot find the sockit binary")?;
            let opts = BenchOptions {
                size,
                dir,
                out_dir: out.clone(),
                server: vec![exe.into_os_string(), "serve".into()],
            };
            let report = bench::run(&opts).await?;
            print!("{}", bench::markdown(&report));
            eprintln!(
                "results written to {}/files.json and files.md",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
