//! `sockit put LOCAL [REMOTE]`: upload a file (or, with -r, a tree), verified by BLAKE3,
//! with its permission bits and modification time (trees: also directories' and
//! symlinks, as `rsync -a` does).

use std::path::PathBuf;
use std::process::ExitCode;

use sockit_files::client::{remote_join, PutOptions};

use crate::cmd::framed_conn;
use crate::cmd::progress::Bar;
use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit put`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Local file (or directory with -r).
    pub local: PathBuf,
    /// Remote path (default: the local name in the data root; an existing remote directory
    /// or a path ending in `/` receives the file inside it).
    pub remote: Option<String>,
    /// Continue an interrupted upload from what the server has staged.
    #[arg(long)]
    pub resume: bool,
    /// Replace existing remote files.
    #[arg(long)]
    pub overwrite: bool,
    /// Upload a whole directory tree.
    #[arg(short, long)]
    pub recursive: bool,
    /// Compress with zstd where the server takes it and where it pays (measured block by
    /// block: incompressible data goes as it is).
    #[arg(long)]
    pub compress: bool,
}

/// Uploads.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = args
        .local
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
    else {
        return usage(format!(
            "{}: no such file, or its name is not UTF-8",
            args.local.display()
        ));
    };
    if args.local.is_dir() && !args.recursive {
        return usage(format!(
            "{} is a directory; use put -r",
            args.local.display()
        ));
    }
    let mut client = framed_conn::files(g).await?;
    client.set_compress(args.compress);
    let remote = match &args.remote {
        None => name.clone(),
        Some(r) if r.ends_with('/') => remote_join(r, &name),
        Some(r) => match client.stat(r, false).await {
            Ok(st) if st.kind == "dir" => remote_join(r, &name),
            // `stat` describes a symlink itself; one to a directory receives the file too.
            Ok(st) if st.kind == "symlink" && client.ls(r).await.is_ok() => remote_join(r, &name),
            _ => r.clone(),
        },
    };
    let mut bar = Bar::new(g.quiet);
    let opts = PutOptions {
        resume: args.resume,
        overwrite: args.overwrite,
    };
    if args.recursive && args.local.is_dir() {
        let r = client
            .put_tree(&args.local, &remote, opts, &mut bar)
            .await?;
        for s in &r.skipped {
            eprintln!("sockit: skipped {s}");
        }
        if g.json {
            println!(
                "{}",
                serde_json::json!({"remote": remote, "files": r.files, "dirs": r.dirs,
                    "symlinks": r.symlinks, "bytes": r.bytes, "wire": r.wire,
                    "unchanged": r.unchanged, "skipped": r.skipped})
            );
        } else if !g.quiet {
            eprintln!(
                "{} files, {} directories, {} symlinks, {} bytes → {remote}{}{}",
                r.files,
                r.dirs,
                r.symlinks,
                r.bytes,
                wire_note(args.compress, r.bytes, r.wire),
                unchanged_note(r.unchanged)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = client.put(&args.local, &remote, opts, &mut bar).await?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"remote": r.remote, "size": r.size, "sent": r.sent, "wire": r.wire,
                "resumed_from": r.resumed_from, "restarted": r.restarted, "blake3": r.blake3})
        );
    } else if !g.quiet {
        eprintln!(
            "{}{}",
            crate::cmd::progress::done_line(r.size, &r.remote, r.resumed_from, &r.blake3),
            wire_note(args.compress, r.sent, r.wire)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `"; compressed: N bytes on the wire (P%)"` after a transfer with `--compress` (nothing
/// without it).
pub(crate) fn wire_note(compress: bool, bytes: u64, wire: u64) -> String {
    if !compress || bytes == 0 {
        return String::new();
    }
    format!(
        "; compressed: {wire} bytes on the wire ({:.1}%)",
        100.0 * wire as f64 / bytes as f64
    )
}

/// `" (N unchanged files skipped)"` after a resumed tree transfer that skipped some.
pub(crate) fn unchanged_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} unchanged files skipped)")
    }
}
