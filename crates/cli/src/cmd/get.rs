//! `sockit get REMOTE [LOCAL]`: download a file (or, with -r, a tree), verified by BLAKE3,
//! with the server's permission bits and modification times (trees: also directories'
//! and symlinks, as `rsync -a` does).

use std::path::PathBuf;
use std::process::ExitCode;

use sockit_files::client::{remote_basename, GetOptions};

use crate::cmd::framed_conn;
use crate::cmd::progress::Bar;
use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Remote path.
    pub remote: String,
    /// Local destination (default: the remote name in the current directory; an existing
    /// directory receives the file inside it).
    pub local: Option<PathBuf>,
    /// Continue an interrupted download (a changed remote file is detected and restarted).
    #[arg(long)]
    pub resume: bool,
    /// Download a whole directory tree.
    #[arg(short, long)]
    pub recursive: bool,
    /// Overwrite LOCAL if it exists (as `put` refuses to overwrite a remote file, `get`
    /// refuses to overwrite a local one without this).
    #[arg(short, long)]
    pub force: bool,
    /// Compress with zstd where the server takes it and where it pays (measured block by
    /// block: incompressible data goes as it is).
    #[arg(long)]
    pub compress: bool,
}

/// Downloads.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = remote_basename(&args.remote);
    if name.is_empty() && args.local.is_none() {
        return usage("give a LOCAL destination when downloading the data root");
    }
    let mut local = args.local.clone().unwrap_or_else(|| PathBuf::from(name));
    if local.is_dir() && !name.is_empty() {
        local = local.join(name);
    }
    if !args.recursive && !args.force && !args.resume && local.is_file() {
        return usage(format!(
            "{} exists; pass --force to overwrite it (or --resume to finish a download)",
            local.display()
        ));
    }
    let mut client = framed_conn::files(g).await?;
    client.set_compress(args.compress);
    let mut bar = Bar::new(g.quiet);
    let opts = GetOptions {
        resume: args.resume,
    };
    if args.recursive {
        let r = client
            .get_tree(&args.remote, &local, opts, &mut bar)
            .await?;
        for s in &r.skipped {
            eprintln!("sockit: skipped {s}");
        }
        if g.json {
            println!(
                "{}",
                serde_json::json!({"local": local, "files": r.files, "dirs": r.dirs,
                    "symlinks": r.symlinks, "bytes": r.bytes, "wire": r.wire,
                    "unchanged": r.unchanged, "skipped": r.skipped})
            );
        } else if !g.quiet {
            eprintln!(
                "{} files, {} directories, {} symlinks, {} bytes into {}{}{}",
                r.files,
                r.dirs,
                r.symlinks,
                r.bytes,
                local.display(),
                crate::cmd::put::wire_note(args.compress, r.bytes, r.wire),
                crate::cmd::put::unchanged_note(r.unchanged)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = client.get(&args.remote, &local, opts, &mut bar).await?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"local": r.local, "size": r.size, "received": r.received, "wire": r.wire,
                "resumed_from": r.resumed_from, "restarted": r.restarted, "blake3": r.blake3})
        );
    } else if !g.quiet {
        let local = r.local.display().to_string();
        eprintln!(
            "{}{}",
            crate::cmd::progress::done_line(r.size, &local, r.resumed_from, &r.blake3),
            crate::cmd::put::wire_note(args.compress, r.received, r.wire)
        );
    }
    Ok(ExitCode::SUCCESS)
}
