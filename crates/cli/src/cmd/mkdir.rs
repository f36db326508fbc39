//! `sockit mkdir PATH`: create a remote directory.

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit mkdir`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Remote path.
    pub path: String,
    /// Create missing parents; an existing directory is fine.
    #[arg(short, long)]
    pub parents: bool,
}

/// Creates the directory.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    framed_conn::files(g)
        .await?
        .mkdir(&args.path, args.parents)
        .await?;
    Ok(ExitCode::SUCCESS)
}
