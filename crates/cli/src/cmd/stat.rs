//! `sockit stat PATH`: kind, size, mode, time, symlink target, hash and staged upload of a
//! remote path.

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit stat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
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
    if let Some(t) = &st.target {
        println!("target:  {t}");
    }
    println!("size:    {}", st.size);
    if let Some(m) = st.mode {
        println!(
            "mode:    {m:04o} ({})",
            sockit_files::meta::mode_string(&st.kind, m)
        );
    }
    if let Some(t) = chrono::DateTime::from_timestamp(st.mtime, st.mtime_nsec) {
        println!(
            "mtime:   {}",
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        );
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
