//! `sockit sync SRC DEST`: make the directory DEST equal to SRC, one of them on a server,
//! sending only what changed (content-defined chunks, BLAKE3), as `rsync -a` does;
//! `--delete`, `--dry-run`, `--exclude`, `--checksum`.
//!
//! A remote side is written `HOST:PATH` (HOST is `name`, `name:PORT`, `[v6]` or
//! `[v6]:PORT`) or `:PATH` (the server of `--server` / `$SOCKIT_SERVER`). An argument is
//! local when it has no `:` or a `/` comes before its first `:` (`./a:b`); see
//! [`parse_side`] and docs/files.md ("sync").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::BinaryBytes;
use sockit_files::sync::{Side, SyncError, SyncOptions, SyncReport};
use sockit_files::FilesClient;
use sockit_wire::Client;

use crate::cmd::framed_conn::CONNECT_TIMEOUT;
use crate::cmd::progress::Bar;
use crate::exit::usage;
use crate::global::{resolve_server, tell_recorded, GlobalArgs};

/// How a remote side is written, for the help.
const SIDES_HELP: &str = "\
SRC and DEST are directories; exactly one of them is on a server:
  HOST:PATH        PATH on the server HOST (HOST: name, name:PORT, [v6] or [v6]:PORT)
  :PATH            PATH on the server of --server (or $SOCKIT_SERVER)
  LOCAL            a local directory: no `:`, or a `/` before the first one (./a:b)
PATH is relative to the server's data root (a leading / is the root itself; `:` alone is
the root). After HOST, digits and a `:` are always a port (`h:8000:x` is x on port 8000;
write `h:7788:8000:x` for a path named `8000:x`). A trailing / changes nothing: the
contents of SRC are synced into DEST, which is created if missing.

Files are the same when size and modification time match (--checksum: size and BLAKE3);
others are sent as deltas against the destination's copy. Modes, times, symlinks (never
leading out of the tree) and empty directories are kept, as rsync -a does.";

/// Flags of `sockit sync`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = SIDES_HELP)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Source directory: LOCAL, HOST:PATH or :PATH.
    pub src: String,
    /// Destination directory: LOCAL, HOST:PATH or :PATH (the other kind than SRC).
    pub dest: String,
    /// Compare files by size and BLAKE3 of their content instead of size and modification
    /// time (reads every file of the same size on both sides).
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Remove destination entries the source does not have (never excluded ones).
    #[arg(long)]
    pub delete: bool,
    /// Print what would change, change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Leave out paths matching PATTERN on both sides (repeatable): `*.o` matches a name at
    /// any depth, `a/*.log` the end of a path, `/build` from the top, `cache/` directories
    /// only, `**` across directories.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Compress with zstd where the server takes it and where it pays (measured block by
    /// block: incompressible data goes as it is).
    #[arg(long)]
    pub compress: bool,
}

/// One side as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A local directory.
    Local(PathBuf),
    /// A directory on a server: `host` as written (`None`: `--server`), `path` in its root.
    Remote {
        /// `name`, `name:PORT`, `[v6]` or `[v6]:PORT`; `None` for `:PATH`.
        host: Option<String>,
        /// The path in the server's data root (`""` is the root).
        path: String,
    },
}

/// Splits `rest` (what follows `HOST:`) into an optional port and the path: digits
/// followed by `:` are a port.
fn port_and_path(rest: &str) -> (Option<&str>, &str) {
    match rest.split_once(':') {
        Some((p, path)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(p), path)
        }
        _ => (None, rest),
    }
}

/// A remote path as the server names it: relative to the data root.
fn root_relative(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

/// Reads one side of a sync (see the module docs for the syntax).
///
/// # Errors
/// A `[` without its `]`, or a `]` not followed by `:`.
pub fn parse_side(arg: &str) -> Result<Spec, String> {
    if let Some(v6) = arg.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return Err(format!(
                "`{arg}`: an IPv6 address in [ ] needs its closing ]"
            ));
        };
        let Some(rest) = rest.strip_prefix(':') else {
            return Err(format!(
                "`{arg}`: write [V6]:PATH or [V6]:PORT:PATH for a server side"
            ));
        };
        let (port, path) = port_and_path(rest);
        let host = match port {
            Some(p) => format!("[{addr}]:{p}"),
            None => format!("[{addr}]"),
        };
        return Ok(Spec::Remote {
            host: Some(host),
            path: root_relative(path),
        });
    }
    if let Some(path) = arg.strip_prefix(':') {
        return Ok(Spec::Remote {
            host: None,
            path: root_relative(path),
        });
    }
    match arg.split_once(':') {
        Some((host, rest)) if !host.contains('/') => {
            let (port, path) = port_and_path(rest);
            let host = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            Ok(Spec::Remote {
                host: Some(host),
                path: root_relative(path),
            })
        }
        _ => Ok(Spec::Local(PathBuf::from(arg))),
    }
}

/// Connects to `host` (as written in a side) or, for `:PATH`, to `--server`.
async fn connect(g: &GlobalArgs, host: Option<&str>) -> anyhow::Result<FilesClient> {
    let server = host.or(g.conn.server.as_deref());
    let addr = resolve_server(server, sockit_wire::FRAMED_PORT);
    let opts = g.connect_options(&addr, CONNECT_TIMEOUT)?;
    let client = Client::connect_with(&addr, &opts).await?;
    tell_recorded(client.recorded_host(), opts.tls.as_ref());
    Ok(FilesClient::new(client))
}

/// The summary printed after a sync (two lines).
fn summary(r: &SyncReport, secs: f64) -> String {
    let verb = if r.dry_run { "would be" } else { "" };
    let mut made = Vec::new();
    if r.dirs > 0 {
        made.push(format!("{} directories", r.dirs));
    }
    if r.symlinks > 0 {
        made.push(format!("{} symlinks", r.symlinks));
    }
    let made = if made.is_empty() {
        String::new()
    } else {
        format!("; {} {}made", made.join(" and "), spaced(verb))
    };
    let first = format!(
        "{} files checked: {} new, {} updated, {} unchanged, {} deleted{made}{}",
        r.files,
        r.new,
        r.changed,
        r.same,
        r.deleted,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    if r.dry_run {
        return format!(
            "{first}\n{} bytes of files would be sent",
            r.bytes_represented
        );
    }
    if r.bytes_represented == 0 && r.bytes_on_wire == 0 {
        return format!("{first}\nno file contents to send ({secs:.2} s)");
    }
    let share = if r.bytes_represented > 0 {
        format!(
            " ({:.1}%)",
            100.0 * r.bytes_on_wire as f64 / r.bytes_represented as f64
        )
    } else {
        String::new()
    };
    format!(
        "{first}\n{} bytes of files ({}) sent as {} bytes on the wire{share} in {secs:.2} s: {}/s",
        r.bytes_represented,
        BinaryBytes(r.bytes_represented),
        r.bytes_on_wire,
        BinaryBytes(per_sec(r.bytes_represented, secs)),
    )
}

fn spaced(word: &str) -> String {
    if word.is_empty() {
        String::new()
    } else {
        format!("{word} ")
    }
}

fn per_sec(bytes: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

/// Syncs.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let src = parse_side(&args.src).map_err(crate::exit::UsageError)?;
    let dest = parse_side(&args.dest).map_err(crate::exit::UsageError)?;
    let host = match (&src, &dest) {
        (Spec::Local(_), Spec::Remote { host, .. })
        | (Spec::Remote { host, .. }, Spec::Local(_)) => host.clone(),
        (Spec::Local(_), Spec::Local(_)) => return usage(
            "both sides are local: write the server's side as HOST:PATH or :PATH (see sync --help)",
        ),
        (Spec::Remote { .. }, Spec::Remote { .. }) => {
            return usage("both sides are on a server: one of SRC and DEST must be local")
        }
    };
    let side = |s: Spec| match s {
        Spec::Local(p) => Side::Local(p),
        Spec::Remote { path, .. } => Side::Remote(path),
    };
    let (src, dest) = (side(src), side(dest));
    let mut client = connect(g, host.as_deref()).await?;
    client.set_compress(args.compress);
    let opts = SyncOptions {
        checksum: args.checksum,
        delete: args.delete,
        dry_run: args.dry_run,
        exclude: args.exclude.clone(),
    };
    let mut bar = Bar::new(g.quiet);
    let started = Instant::now();
    let report = match client.sync(&src, &dest, &opts, &mut bar).await {
        Ok(r) => r,
        Err(SyncError::Usage(m)) => return usage(m),
        Err(SyncError::Client(e)) => return Err(e.into()),
    };
    let secs = started.elapsed().as_secs_f64();
    for s in &report.skipped {
        eprintln!("sockit: skipped {s}");
    }
    if g.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("src".into(), args.src.clone().into());
            o.insert("dest".into(), args.dest.clone().into());
            o.insert("secs".into(), secs.into());
            o.insert(
                "bytes_per_sec".into(),
                per_sec(report.bytes_represented, secs).into(),
            );
        }
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    // What changed: always for a dry run, with -v for a real one.
    if report.dry_run || g.verbose > 0 {
        for c in &report.changes {
            println!("{c}");
        }
    }
    if !g.quiet {
        eprintln!("{}", summary(&report, secs));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(host: Option<&str>, path: &str) -> Spec {
        Spec::Remote {
            host: host.map(str::to_owned),
            path: path.to_owned(),
        }
    }

    #[test]
    fn sides_are_parsed() {
        assert_eq!(parse_side("dir").unwrap(), Spec::Local("dir".into()));
        assert_eq!(parse_side("./a:b").unwrap(), Spec::Local("./a:b".into()));
        assert_eq!(
            parse_side("/abs/a:b").unwrap(),
            Spec::Local("/abs/a:b".into())
        );
        assert_eq!(parse_side(":backup").unwrap(), remote(None, "backup"));
        assert_eq!(parse_side(":").unwrap(), remote(None, ""));
        assert_eq!(parse_side("host:").unwrap(), remote(Some("host"), ""));
        assert_eq!(
            parse_side("host:/a/b").unwrap(),
            remote(Some("host"), "a/b")
        );
        assert_eq!(
            parse_side("host:7788:a").unwrap(),
            remote(Some("host:7788"), "a")
        );
        assert_eq!(
            parse_side("host:7788").unwrap(),
            remote(Some("host"), "7788")
        );
        assert_eq!(
            parse_side("h:7788:8000:x").unwrap(),
            remote(Some("h:7788"), "8000:x")
        );
        assert_eq!(parse_side("[::1]:d").unwrap(), remote(Some("[::1]"), "d"));
        assert_eq!(
            parse_side("[::1]:9000:d/e").unwrap(),
            remote(Some("[::1]:9000"), "d/e")
        );
        assert!(parse_side("[::1:d").is_err());
        assert!(parse_side("[::1]d").is_err());
    }

    #[test]
    fn the_summary_says_what_moved() {
        let r = SyncReport {
            files: 3,
            new: 1,
            changed: 1,
            same: 1,
            dirs: 2,
            bytes_represented: 1000,
            bytes_on_wire: 50,
            ..SyncReport::default()
        };
        let s = summary(&r, 2.0);
        assert_eq!(
            s,
            "3 files checked: 1 new, 1 updated, 1 unchanged, 0 deleted; 2 directories made\n\
             1000 bytes of files (1000 B) sent as 50 bytes on the wire (5.0%) in 2.00 s: 500 B/s"
        );
        let dry = SyncReport { dry_run: true, ..r };
        assert!(summary(&dry, 1.0).contains("would be made (dry run: nothing changed)"));
        let same = SyncReport {
            files: 2,
            same: 2,
            ..SyncReport::default()
        };
        assert_eq!(
            summary(&same, 0.5),
            "2 files checked: 0 new, 0 updated, 2 unchanged, 0 deleted\n\
             no file contents to send (0.50 s)"
        );
    }
}
