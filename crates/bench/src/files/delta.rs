//! The delta scenario: a large file already on both servers, then `changed` bytes in its
//! middle rewritten, then the tree holding it brought up to date by `sockit sync` and by
//! an `rsync -a` push to an `rsync --daemon`, each run as a user types it. Measured: wall
//! time and the bytes that crossed the loopback interface (TCP/IP headers included, so
//! both tools pay the same per-packet cost); sockit's own count of the bytes it sent is
//! reported beside it. Both copies are compared with the source afterwards.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::peers::{check_same, loopback_bytes, timed, RsyncDaemon};
use super::{io, BenchError, BenchOptions, Server};

/// One tool's update of the changed file.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaRun {
    /// What ran.
    pub name: String,
    /// Wall time, seconds.
    pub secs: f64,
    /// Bytes received on the loopback interface during the run (both directions).
    pub wire_bytes: u64,
}

/// The delta scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaReport {
    /// Size of the file.
    pub size: u64,
    /// Bytes rewritten in its middle.
    pub changed: u64,
    /// sockit sync, then rsync.
    pub runs: Vec<DeltaRun>,
    /// sockit's wire bytes over rsync's (target ≤ 1.1).
    pub bytes_vs_rsync: f64,
    /// sockit's time over rsync's (target ≤ 1).
    pub time_vs_rsync: f64,
}

/// Rewrites `len` bytes at the middle of `path` with bytes it did not hold.
fn edit_middle(path: &Path, size: u64, len: u64) -> Result<(), BenchError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open the file to edit"))?;
    f.seek(SeekFrom::Start(size / 2))
        .map_err(io("seek in the file to edit"))?;
    let mut x: u64 = 0xD1B5_4A32_D192_ED03;
    let block: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    f.write_all(&block).map_err(io("edit the file"))?;
    f.sync_all().map_err(io("sync the edited file"))?;
    Ok(())
}

/// `sockit sync -q SRC HOST:PORT:PATH`.
fn sockit_sync(exe: &std::ffi::OsStr, addr: &str, src: &Path, remote: &str) -> Command {
    let mut c = Command::new(exe);
    c.args(["sync", "-q"])
        .arg(src)
        .arg(format!("{addr}:{remote}"));
    c
}

/// Measures `cmd`: seconds and loopback bytes.
fn measured(cmd: &mut Command, what: &str) -> Result<DeltaRun, BenchError> {
    let before = loopback_bytes()?;
    let secs = timed(cmd, what)?;
    let after = loopback_bytes()?;
    Ok(DeltaRun {
        name: what.into(),
        secs,
        wire_bytes: after.saturating_sub(before),
    })
}

/// Runs the delta scenario in `work` on `file` (moved into the scenario's tree).
pub(crate) fn run(
    opts: &BenchOptions,
    work: &Path,
    file: &Path,
    changed: u64,
) -> Result<DeltaReport, BenchError> {
    let src = work.join("delta-src");
    std::fs::create_dir_all(&src).map_err(io("create the delta tree"))?;
    let big = src.join("big.bin");
    std::fs::rename(file, &big).map_err(io("move the file into the delta tree"))?;
    let exe = opts
        .server
        .first()
        .ok_or_else(|| BenchError::Step("no server command".into()))?;

    let server = Server::start(opts, work, "delta", false)?;
    let module = work.join("delta-module");
    let rsync = RsyncDaemon::start(work, &module)?;
    let push = || {
        let mut c = Command::new("rsync");
        c.args(["-a", "--no-whole-file"])
            .arg(format!("{}/", src.display()))
            .arg(rsync.url("d/"));
        c
    };
    // Both sides start with the whole file (not measured).
    timed(
        &mut sockit_sync(exe, &server.addr, &src, "d"),
        "sockit sync (first)",
    )?;
    timed(&mut push(), "rsync (first)")?;

    edit_middle(&big, opts.size, changed)?;
    let sockit = measured(
        &mut sockit_sync(exe, &server.addr, &src, "d"),
        "sockit sync",
    )?;
    check_same(&src, &server.root.join("files").join("d"), "sockit sync")?;
    let rsync_run = measured(&mut push(), "rsync -a push (daemon)")?;
    check_same(&src, &module.join("d"), "rsync push")?;
    drop(rsync);
    drop(server);
    let _ = std::fs::remove_dir_all(&module);
    let _ = std::fs::remove_dir_all(&src);

    Ok(DeltaReport {
        size: opts.size,
        changed,
        bytes_vs_rsync: sockit.wire_bytes as f64 / rsync_run.wire_bytes.max(1) as f64,
        time_vs_rsync: sockit.secs / rsync_run.secs.max(1e-9),
        runs: vec![sockit, rsync_run],
    })
}

/// The delta scenario as a markdown table.
pub fn markdown(r: &DeltaReport) -> String {
    let mut s = format!(
        "| {} MiB file, {} KiB changed in the middle | seconds | bytes on loopback |\n\
         |---|---:|---:|\n",
        r.size >> 20,
        r.changed >> 10
    );
    for run in &r.runs {
        s.push_str(&format!(
            "| {} | {:.2} | {} |\n",
            run.name, run.secs, run.wire_bytes
        ));
    }
    s.push_str(&format!(
        "\nsockit × rsync: bytes **{:.2}** (target ≤ 1.1), time **{:.2}** (target ≤ 1)\n",
        r.bytes_vs_rsync, r.time_vs_rsync
    ));
    s
}
