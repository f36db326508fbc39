//! The tree scenario: `files` small files of `file_size` random bytes in directories of
//! 100, moved over loopback by `sockit put -r` / `get -r`, by an `rsync -a` push and pull
//! against an `rsync --daemon`, and by `tar | socat`, each a whole process run as a user
//! types it, timed from start to exit. Every copy is compared with the source afterwards.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::peers::{check_same, tar_socat, timed, RsyncDaemon};
use super::{io, BenchError, BenchOptions, Server};

/// Files per directory.
const PER_DIR: usize = 100;

/// One tool's run over the tree.
#[derive(Debug, Clone, Serialize)]
pub struct TreeRun {
    /// What ran.
    pub name: String,
    /// Wall time, seconds.
    pub secs: f64,
    /// Files per second.
    pub files_per_s: f64,
}

/// The tree scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct TreeReport {
    /// Files in the tree.
    pub files: usize,
    /// Bytes per file.
    pub file_size: usize,
    /// sockit put -r, rsync push, tar | socat, sockit get -r, rsync pull.
    pub runs: Vec<TreeRun>,
    /// sockit put -r files/s over rsync push files/s.
    pub put_vs_rsync: f64,
    /// sockit get -r files/s over rsync pull files/s.
    pub get_vs_rsync: f64,
}

/// Writes the tree: `files` files of `size` pseudo-random bytes, `PER_DIR` a directory.
fn make_tree(dir: &Path, files: usize, size: usize) -> Result<(), BenchError> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut buf = vec![0u8; size];
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / PER_DIR));
        if i % PER_DIR == 0 {
            std::fs::create_dir_all(&sub).map_err(io("create a tree directory"))?;
        }
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        std::fs::write(sub.join(format!("f{:03}", i % PER_DIR)), &buf)
            .map_err(io("write a tree file"))?;
    }
    Ok(())
}

/// Runs the tree scenario in `work`.
pub(crate) fn run(
    opts: &BenchOptions,
    work: &Path,
    files: usize,
    file_size: usize,
) -> Result<TreeReport, BenchError> {
    let src = work.join("tree-src");
    make_tree(&src, files, file_size)?;
    let exe = opts
        .server
        .first()
        .ok_or_else(|| BenchError::Step("no server command".into()))?;

    let server = Server::start(opts, work, "tree", false)?;
    let mut put_cmd = Command::new(exe);
    put_cmd
        .args(["put", "-r", "-q", "--server", &server.addr])
        .arg(&src)
        .arg("t");
    let put = timed(&mut put_cmd, "sockit put -r")?;
    // The served tree is ROOT/files (docs/architecture.md, state layout).
    check_same(&src, &server.root.join("files").join("t"), "sockit put -r")?;
    let got = work.join("tree-sockit-get");
    let mut get_cmd = Command::new(exe);
    get_cmd
        .args(["get", "-r", "-q", "--server", &server.addr, "t"])
        .arg(&got);
    let get = timed(&mut get_cmd, "sockit get -r")?;
    check_same(&src, &got, "sockit get -r")?;
    drop(server);

    let module = work.join("rsync-module");
    let rsync = RsyncDaemon::start(work, &module)?;
    let mut push = Command::new("rsync");
    push.arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(rsync.url("t/"));
    let rsync_push = timed(&mut push, "rsync push")?;
    check_same(&src, &module.join("t"), "rsync push")?;
    let pulled = work.join("tree-rsync-pull");
    let mut pull = Command::new("rsync");
    pull.arg("-a")
        .arg(rsync.url("t/"))
        .arg(format!("{}/", pulled.display()));
    let rsync_pull = timed(&mut pull, "rsync pull")?;
    check_same(&src, &pulled, "rsync pull")?;
    drop(rsync);

    let tarred = work.join("tree-tar");
    let tar = tar_socat(&src, &tarred)?;
    check_same(&src, &tarred, "tar | socat")?;

    for d in [&got, &pulled, &tarred, &module, &src] {
        let _ = std::fs::remove_dir_all(d);
    }
    let per_s = |secs: f64| files as f64 / secs.max(1e-9);
    let run = |name: &str, secs: f64| TreeRun {
        name: name.into(),
        secs,
        files_per_s: per_s(secs),
    };
    Ok(TreeReport {
        files,
        file_size,
        put_vs_rsync: per_s(put) / per_s(rsync_push),
        get_vs_rsync: per_s(get) / per_s(rsync_pull),
        runs: vec![
            run("sockit put -r", put),
            run("rsync -a push (daemon)", rsync_push),
            run("tar \\| socat (one way, no server)", tar),
            run("sockit get -r", get),
            run("rsync -a pull (daemon)", rsync_pull),
        ],
    })
}

/// The tree scenario as a markdown table.
pub fn markdown(r: &TreeReport) -> String {
    let mut s = format!(
        "| {} files × {} B over loopback | seconds | files/s |\n|---|---:|---:|\n",
        r.files, r.file_size
    );
    for run in &r.runs {
        s.push_str(&format!(
            "| {} | {:.2} | {:.0} |\n",
            run.name, run.secs, run.files_per_s
        ));
    }
    s.push_str(&format!(
        "\nsockit put -r × rsync push: **{:.2}**; sockit get -r × rsync pull: **{:.2}** \
         (target: put ≥ 1.5× rsync)\n",
        r.put_vs_rsync, r.get_vs_rsync
    ));
    s
}
