//! `sockit rm PATH`: remove a remote file (or, with -r, a directory tree).

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Remote path.
    pub path: String,
    /// Remove a directory and everything in it.
    #[arg(short, long)]
    pub recursive: bool,
}

/// Removes the path.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    framed_conn::files(g)
        .await?
        .rm(&args.path, args.recursive)
        .await?;
    Ok(ExitCode::SUCCESS)
}
