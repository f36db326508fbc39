//! `sockit ls [-l] [PATH]`: list a remote directory; `-l` as `ls -l` does (mode, size,
//! modification time, `name -> target` for symlinks).

use std::process::ExitCode;

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Remote directory (default: the data root).
    #[arg(default_value = "")]
    pub path: String,
    /// Long listing, like `ls -l`: mode, size, modification time, and `name -> target`
    /// for symlinks.
    #[arg(short, long)]
    pub long: bool,
}

/// The local time of a modification time, `YYYY-MM-DD HH:MM` (as `ls --time-style=long-iso`).
fn local_time(secs: i64, nsec: u32) -> String {
    chrono::DateTime::from_timestamp(secs, nsec)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// One line of `ls -l`: `-rw-r--r--   12 2023-11-14 22:13 a.txt`, `l... name -> target`.
pub fn long_line(e: &sockit_files::client::Entry, size_width: usize) -> String {
    let mode = match e.mode {
        Some(m) => sockit_files::meta::mode_string(&e.kind, m),
        // An older server does not send modes.
        None => format!(
            "{}?????????",
            &sockit_files::meta::mode_string(&e.kind, 0)[..1]
        ),
    };
    let name = match (&e.kind[..], &e.target) {
        ("symlink", Some(t)) => format!("{} -> {t}", e.name),
        ("symlink", None) => format!("{} -> (not shown)", e.name),
        ("dir", _) => format!("{}/", e.name),
        _ => e.name.clone(),
    };
    format!(
        "{mode} {:>size_width$} {} {name}",
        e.size,
        local_time(e.mtime, e.mtime_nsec)
    )
}

/// Lists the directory.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut client = framed_conn::files(g).await?;
    let entries = client.ls(&args.path).await?;
    if g.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.long {
        let width = entries
            .iter()
            .map(|e| e.size.to_string().len())
            .max()
            .unwrap_or(1);
        for e in &entries {
            println!("{}", long_line(e, width));
        }
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        let when = local_time(e.mtime, e.mtime_nsec);
        let name = match (&e.kind[..], &e.target) {
            ("dir", _) => format!("{}/", e.name),
            ("symlink", Some(t)) => format!("{} -> {t}", e.name),
            _ => e.name.clone(),
        };
        println!("{:<7} {:>14} {} {}", e.kind, e.size, when, name);
    }
    Ok(ExitCode::SUCCESS)
}
