//! The TFTP benchmark behind `sockit lab bench tftp`.
//!
//! One run downloads the same file over loopback four ways and reports MB/s and the
//! ratio to (a), all measured in the same run (these machines are small and noisy):
//!
//! | run | client | server | options |
//! |---|---|---|---|
//! | a | tftp-hpa `tftp` | tftpd-hpa `in.tftpd` | defaults (512-byte lock-step) |
//! | b | sockit | tftpd-hpa | `blksize` |
//! | c | sockit | sockit | `blksize` + `windowsize` |
//! | d | tftp-hpa `tftp` | sockit | defaults |
//!
//! Every downloaded file is compared with the original before its time counts.
//! Results go to `OUT/tftp.json` and `OUT/tftp.md` (written atomically).

use serde::Serialize;
use sockit_tftp::client::{self, ClientOptions};
use sockit_tftp::{serve, ServerConfig};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Size of the file transferred (the issue asks for 100 MiB).
    pub size: u64,
    /// `blksize` for runs (b) and (c).
    pub blksize: u16,
    /// `windowsize` for run (c).
    pub windowsize: u16,
    /// Where `tftp.json` and `tftp.md` are written.
    pub out_dir: PathBuf,
}

impl Default for BenchConfig {
    fn default() -> BenchConfig {
        BenchConfig {
            size: 100 << 20,
            blksize: 8192,
            windowsize: 16,
            out_dir: PathBuf::from("bench-results"),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRun {
    /// `a`, `b`, `c` or `d`.
    pub id: String,
    /// Client ↔ server and options, for the table.
    pub label: String,
    /// Wall time of the transfer, process start included for external clients.
    pub seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Throughput relative to run (a).
    pub ratio_to_a: f64,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Bytes per transfer.
    pub size_bytes: u64,
    /// `blksize` used in (b) and (c).
    pub blksize: u16,
    /// `windowsize` used in (c).
    pub windowsize: u16,
    /// The runs, in order a–d.
    pub runs: Vec<BenchRun>,
    /// The markdown table (also written to `tftp.md`).
    pub markdown: String,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A peer program is missing.
    #[error("{program} not found: install {package} (scripts/test.sh installs it)")]
    Missing {
        /// The program.
        program: &'static str,
        /// The Debian package.
        package: &'static str,
    },
    /// A peer failed or the downloaded file differed.
    #[error("run {run}: {message}")]
    Run {
        /// The run id.
        run: &'static str,
        /// What happened.
        message: String,
    },
    /// Local I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_owned(),
        source,
    }
}

fn find(program: &'static str, package: &'static str) -> Result<PathBuf, BenchError> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(BenchError::Missing { program, package })
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Waits (bounded, no sleeping) until a TFTP server answers a probe request.
async fn wait_ready(addr: SocketAddr, child: &mut Child) -> Result<(), BenchError> {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Run {
                run: "a",
                message: format!("in.tftpd exited: {status}"),
            });
        }
        let answered = client::probe(addr, Duration::from_millis(100))
            .await
            .map_err(io_err(Path::new("udp socket")))?;
        if answered {
            return Ok(());
        }
    }
    Err(BenchError::Run {
        run: "a",
        message: format!("in.tftpd on {addr} never answered"),
    })
}

async fn same_file(a: &Path, b: &Path, run: &'static str) -> Result<(), BenchError> {
    let left = tokio::fs::read(a).await.map_err(io_err(a))?;
    let right = tokio::fs::read(b).await.map_err(io_err(b))?;
    if left != right {
        return Err(BenchError::Run {
            run,
            message: format!(
                "downloaded file differs ({} bytes, want {})",
                right.len(),
                left.len()
            ),
        });
    }
    Ok(())
}

/// Runs tftp-hpa's client to download `name` from `addr` into `dest`.
async fn tftp_hpa_get(
    tftp: &Path,
    addr: SocketAddr,
    name: &str,
    dest: &Path,
    run: &'static str,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let output = Command::new(tftp)
        .args([
            "-m",
            "binary",
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .arg("-c")
        .arg("get")
        .arg(name)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io_err(tftp))?;
    let elapsed = started.elapsed();
    let printed = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || printed.contains("Error") {
        return Err(BenchError::Run {
            run,
            message: printed.into_owned(),
        });
    }
    Ok(elapsed)
}

/// Runs the benchmark and writes `tftp.json` and `tftp.md` into `config.out_dir`.
///
/// # Errors
/// [`BenchError`] when a peer is missing, fails, or a download differs.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let tftp = find("tftp", "tftp-hpa")?;
    let tftpd = find("in.tftpd", "tftpd-hpa")?;
    let work = tempfile::tempdir().map_err(io_err(Path::new("temporary directory")))?;
    let root = work.path().join("root");
    let out = work.path().join("out");
    for dir in [&root, &out] {
        std::fs::create_dir(dir).map_err(io_err(dir))?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(&root))?;
    }
    let source = root.join("bench.bin");
    write_content(&source, config.size).await?;

    // tftpd-hpa in the foreground on a free port, chrooted to the root.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(io_err(Path::new("udp socket")))?
        .port();
    let hpa_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(&tftpd)
        .args(["-L", "-s", "-u", &command_output("id", &["-un"]), "-a"])
        .arg(hpa_addr.to_string())
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(io_err(&tftpd))?;
    wait_ready(hpa_addr, &mut child).await?;

    // Our server on a free port.
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(io_err(Path::new("udp socket")))?;
    let ours = socket
        .local_addr()
        .map_err(io_err(Path::new("udp socket")))?;
    let shutdown = CancellationToken::new();
    let server_config = ServerConfig {
        root: root.clone(),
        ..ServerConfig::default()
    };
    let server = tokio::spawn(serve(socket, server_config, shutdown.clone()));

    let mut timings: Vec<(&'static str, String, Duration)> = Vec::new();

    let dest = out.join("a.bin");
    let t = tftp_hpa_get(&tftp, hpa_addr, "bench.bin", &dest, "a").await?;
    same_file(&source, &dest, "a").await?;
    timings.push((
        "a",
        "tftp-hpa client ↔ tftpd-hpa, defaults (512 B lock-step)".into(),
        t,
    ));
    let _ = tokio::fs::remove_file(&dest).await;

    let ours_b = ClientOptions {
        blksize: Some(config.blksize),
        windowsize: None,
        ..ClientOptions::default()
    };
    let dest = out.join("b.bin");
    let t = timed_get(hpa_addr, &dest, &ours_b, "b").await?;
    same_file(&source, &dest, "b").await?;
    timings.push((
        "b",
        format!("sockit client ↔ tftpd-hpa, blksize {}", config.blksize),
        t,
    ));
    let _ = tokio::fs::remove_file(&dest).await;

    let ours_c = ClientOptions {
        blksize: Some(config.blksize),
        windowsize: Some(config.windowsize),
        ..ClientOptions::default()
    };
    let dest = out.join("c.bin");
    let t = timed_get(ours, &dest, &ours_c, "c").await?;
    same_file(&source, &dest, "c").await?;
    timings.push((
        "c",
        format!(
            "sockit client ↔ sockit server, blksize {} + windowsize {}",
            config.blksize, config.windowsize
        ),
        t,
    ));
    let _ = tokio::fs::remove_file(&dest).await;

    let dest = out.join("d.bin");
    let t = tftp_hpa_get(&tftp, ours, "bench.bin", &dest, "d").await?;
    same_file(&source, &dest, "d").await?;
    timings.push(("d", "tftp-hpa client ↔ sockit server, defaults".into(), t));

    shutdown.cancel();
    let _ = server.await;
    let _ = child.start_kill();

    let report = report(config, &timings);
    write_results(&config.out_dir, &report)?;
    Ok(report)
}

async fn timed_get(
    server: SocketAddr,
    dest: &Path,
    options: &ClientOptions,
    run: &'static str,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    client::get(server, "bench.bin", dest, options, &mut |_| {})
        .await
        .map_err(|e| BenchError::Run {
            run,
            message: e.to_string(),
        })?;
    Ok(started.elapsed())
}

/// Writes `size` deterministic, incompressible-looking bytes.
async fn write_content(path: &Path, size: u64) -> Result<(), BenchError> {
    use tokio::io::AsyncWriteExt;
    let file = tokio::fs::File::create(path).await.map_err(io_err(path))?;
    let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut state: u64 = 0x1234_5678_9ABC_DEF0;
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            // xorshift64: cheap and good enough to defeat any compression.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        writer.write_all(&chunk[..n]).await.map_err(io_err(path))?;
        left -= n as u64;
    }
    writer.flush().await.map_err(io_err(path))?;
    Ok(())
}

fn report(config: &BenchConfig, timings: &[(&'static str, String, Duration)]) -> BenchReport {
    let rate = |d: &Duration| config.size as f64 / d.as_secs_f64().max(1e-9) / 1e6;
    let base = timings.first().map(|(_, _, d)| rate(d)).unwrap_or(1.0);
    let runs: Vec<BenchRun> = timings
        .iter()
        .map(|(id, label, d)| BenchRun {
            id: (*id).to_owned(),
            label: label.clone(),
            seconds: d.as_secs_f64(),
            mb_per_s: rate(d),
            ratio_to_a: rate(d) / base,
        })
        .collect();
    let mut markdown = format!(
        "TFTP download of {} MiB over loopback, one run, all four measured back to back.\n\n\
         | run | client ↔ server | seconds | MB/s | × (a) |\n|---|---|---:|---:|---:|\n",
        config.size >> 20
    );
    for r in &runs {
        markdown.push_str(&format!(
            "| ({}) | {} | {:.2} | {:.1} | {:.1} |\n",
            r.id, r.label, r.seconds, r.mb_per_s, r.ratio_to_a
        ));
    }
    BenchReport {
        size_bytes: config.size,
        blksize: config.blksize,
        windowsize: config.windowsize,
        runs,
        markdown,
    }
}

fn write_results(dir: &Path, report: &BenchReport) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    for (name, text) in [("tftp.json", json), ("tftp.md", report.markdown.clone())] {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_relative_to_a() {
        let config = BenchConfig {
            size: 10_000_000,
            ..BenchConfig::default()
        };
        let r = report(
            &config,
            &[
                ("a", "a".into(), Duration::from_secs(10)),
                ("c", "c".into(), Duration::from_secs(1)),
            ],
        );
        assert!((r.runs[0].mb_per_s - 1.0).abs() < 1e-9);
        assert!((r.runs[1].ratio_to_a - 10.0).abs() < 1e-9);
        assert!(r.markdown.contains("| (c) | c | 1.00 | 10.0 | 10.0 |"));
    }
}
