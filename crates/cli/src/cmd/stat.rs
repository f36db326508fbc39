//! `sockit stat PATH`: size, kind, time, hash and staged upload of a remote path.

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit stat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remote path.
    pub path: String,
    /// Have the server compute the BLAKE3 if it does not know it yet (reads the file).
    #[arg(long)]
    pub hash: bool,
}

/// Prints the path's metadata.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut client = framed_conn::files(g).await?;
    let st = client.stat(&args.path, args.hash).await?;
    if g.json {
        println!("{}", serde_json::to_string(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("path:    {}", st.path);
    println!("kind:    {}", st.kind);
    println!("size:    {}", st.size);
    if let Some(t) = chrono::DateTime::from_timestamp(st.mtime, 0) {
        println!("mtime:   {}", t.with_timezone(&chrono::Local).to_rfc3339());
    }
    if let Some(h) = &st.blake3 {
        println!("blake3:  {h}");
    }
    if let Some(p) = st.partial {
        let state = if st.uploading {
            "upload running"
        } else {
            "interrupted; resume with put --resume"
        };
        println!("partial: {p} bytes staged ({state})");
    }
    Ok(ExitCode::SUCCESS)
}
