//! `sockit ls [PATH]`: list a remote directory.

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remote directory (default: the data root).
    #[arg(default_value = "")]
    pub path: String,
}

/// Lists the directory.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut client = framed_conn::files(g).await?;
    let entries = client.ls(&args.path).await?;
    if g.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        let when = chrono::DateTime::from_timestamp(e.mtime, 0)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let name = if e.kind == "dir" {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        println!("{:<7} {:>14} {} {}", e.kind, e.size, when, name);
    }
    Ok(ExitCode::SUCCESS)
}
