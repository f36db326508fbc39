//! The memory soak: does a server give back the memory of connections that have closed?
//!
//! [`run`] starts `sockit serve --port all=0 --addr-file F` as a child process, then, for
//! each TCP service ([`SoakService::ALL`]), runs bursts of connections, each doing one
//! real exchange (a framed `ping`, an echo, a greet dialogue, an IRC registration, an HTTP
//! `GET /`, ...) and closing. After each burst it waits until the server has closed every
//! connection (its count of open sockets is back to what it was before the burst) and its
//! RSS has settled, and records the RSS. The ratio of the last burst's RSS to the first's
//! says whether memory returns (≈ 1) or accumulates.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::error::{LabError, Result};

/// A TCP service the soak exercises, with its one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SoakService {
    /// Framed `{"cmd":"ping"}` → `pong`.
    FramedPing,
    /// Echo: a line sent, the same line back.
    Echo,
    /// Greet: welcome and prompt, `exit`, `Good bye!`.
    Greet,
    /// Daytime: one line, then the server closes.
    Daytime,
    /// Time: four bytes, then the server closes.
    Time,
    /// IRC: NICK/USER until the 001 welcome, then QUIT.
    Chat,
    /// The reader's HTTP port: `GET /` → 200.
    ReaderHttp,
    /// The reader's course port: `3` with no book open → `error: ... no book is open`.
    ReaderClassic,
}

impl SoakService {
    /// Every service, in the order the soak runs them.
    pub const ALL: [SoakService; 8] = [
        SoakService::FramedPing,
        SoakService::Echo,
        SoakService::Greet,
        SoakService::Daytime,
        SoakService::Time,
        SoakService::Chat,
        SoakService::ReaderHttp,
        SoakService::ReaderClassic,
    ];

    /// The name used in flags and tables.
    pub fn name(self) -> &'static str {
        match self {
            SoakService::FramedPing => "framed-ping",
            SoakService::Echo => "echo",
            SoakService::Greet => "greet",
            SoakService::Daytime => "daytime",
            SoakService::Time => "time",
            SoakService::Chat => "chat",
            SoakService::ReaderHttp => "reader-http",
            SoakService::ReaderClassic => "reader-classic",
        }
    }

    /// Looks a service up by [`Self::name`].
    pub fn find(name: &str) -> Option<SoakService> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The (service, protocol) key of its address in the addr file.
    fn addr_key(self) -> (&'static str, &'static str) {
        match self {
            SoakService::FramedPing => ("framed", "tcp"),
            SoakService::Echo => ("echo", "tcp"),
            SoakService::Greet => ("greet", "tcp"),
            SoakService::Daytime => ("daytime", "tcp"),
            SoakService::Time => ("time", "tcp"),
            SoakService::Chat => ("chat", "tcp"),
            SoakService::ReaderHttp => ("reader", "http"),
            SoakService::ReaderClassic => ("reader", "tcp"),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server command up to its flags, e.g. `[sockit, serve]`; the soak adds
    /// `--port all=0 --addr-file F --root DIR` and limits large enough for a burst.
    pub server: Vec<OsString>,
    /// Scratch directory for the server's data root and the addr file.
    pub work_dir: PathBuf,
    /// Services to soak, in order.
    pub services: Vec<SoakService>,
    /// Bursts per service.
    pub bursts: usize,
    /// Connections per burst.
    pub conns: usize,
    /// Connections open at once within a burst.
    pub concurrency: usize,
    /// Longest wait, after a burst, for the server to close its connections and for its
    /// RSS to settle.
    pub settle_timeout: Duration,
    /// Where to write `soak.json` and `soak.md` (none: do not write).
    pub out_dir: Option<PathBuf>,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            server: Vec::new(),
            work_dir: std::env::temp_dir(),
            services: SoakService::ALL.to_vec(),
            bursts: 10,
            conns: 4000,
            concurrency: 4000,
            settle_timeout: Duration::from_secs(20),
            out_dir: None,
        }
    }
}

/// One burst's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BurstResult {
    /// Connections whose exchange succeeded.
    pub ok: usize,
    /// Connections that failed (connect, exchange or wrong answer).
    pub failed: usize,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
    /// Server RSS (KiB) once the burst's connections were closed and RSS settled.
    pub rss_kib: u64,
    /// Whether RSS settled (false: the settle timeout passed first).
    pub settled: bool,
    /// Seconds the burst's connections took.
    pub secs: f64,
}

/// One service's bursts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceSoak {
    /// [`SoakService::name`].
    pub service: String,
    /// Each burst, in order.
    pub bursts: Vec<BurstResult>,
}

impl ServiceSoak {
    /// RSS after the last burst over RSS after the first.
    pub fn ratio(&self) -> f64 {
        match (self.bursts.first(), self.bursts.last()) {
            (Some(f), Some(l)) if f.rss_kib > 0 => l.rss_kib as f64 / f.rss_kib as f64,
            _ => 0.0,
        }
    }

    /// Connections that failed over every burst.
    pub fn failed(&self) -> usize {
        self.bursts.iter().map(|b| b.failed).sum()
    }
}

/// The soak's results (`soak.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SoakReport {
    /// Bursts per service.
    pub bursts: usize,
    /// Connections per burst.
    pub conns: usize,
    /// Connections open at once.
    pub concurrency: usize,
    /// Server RSS (KiB) once it listened, before any connection.
    pub idle_rss_kib: u64,
    /// Per service.
    pub services: Vec<ServiceSoak>,
    /// The markdown table.
    pub markdown: String,
}

/// Kills the server when dropped.
struct Server(tokio::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Runs the soak.
///
/// # Errors
/// The server does not start or exits; a service is missing from the addr file; the
/// results cannot be written. Failed connections are counted, not errors.
pub async fn run(config: &SoakConfig) -> Result<SoakReport> {
    if config.bursts == 0 || config.conns == 0 || config.concurrency == 0 {
        return Err(LabError::Invalid(
            "bursts, connections and concurrency must be at least 1".into(),
        ));
    }
    let (program, args) = config
        .server
        .split_first()
        .ok_or_else(|| LabError::Invalid("no server command".into()))?;
    let work = &config.work_dir;
    let root = work.join("root");
    let addr_file = work.join("soak-addrs.json");
    let _ = std::fs::remove_file(&addr_file);
    std::fs::create_dir_all(&root).map_err(|source| LabError::File {
        path: root.clone(),
        source,
    })?;
    let limit = (config.concurrency + 64).max(4096).to_string();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .args(["--port", "all=0", "-q", "--addr-file"])
        .arg(&addr_file)
        .arg("--root")
        .arg(&root)
        .args(["--max-conns", &limit, "--max-conns-per-ip", &limit])
        .args(["--backlog", &limit])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut server = Server(
        cmd.spawn()
            .map_err(|e| LabError::io("start the server", e))?,
    );
    let pid = server
        .0
        .id()
        .ok_or_else(|| LabError::Invalid("the server exited at once".into()))?;
    let addrs = wait_addr_file(&addr_file, &mut server.0).await?;
    let idle_rss_kib = rss_kib(pid).unwrap_or(0);
    let mut services = Vec::new();
    for &svc in &config.services {
        let (name, proto) = svc.addr_key();
        let addr: SocketAddr = addrs[name][proto]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                LabError::Invalid(format!("the addr file has no {name}/{proto} address"))
            })?;
        let mut bursts = Vec::new();
        for burst in 0..config.bursts {
            let sockets_before = socket_count(pid);
            let started = Instant::now();
            let (ok, failed, first_error) = run_burst(svc, addr, config, burst).await;
            let secs = started.elapsed().as_secs_f64();
            if let Ok(Some(status)) = server.0.try_wait() {
                return Err(LabError::Invalid(format!(
                    "the server exited during the {} soak: {status}",
                    svc.name()
                )));
            }
            let (rss_kib, settled) = settle(pid, sockets_before, config.settle_timeout).await;
            bursts.push(BurstResult {
                ok,
                failed,
                first_error,
                rss_kib,
                settled,
                secs,
            });
        }
        services.push(ServiceSoak {
            service: svc.name().to_owned(),
            bursts,
        });
    }
    drop(server);
    let mut report = SoakReport {
        bursts: config.bursts,
        conns: config.conns,
        concurrency: config.concurrency,
        idle_rss_kib,
        services,
        markdown: String::new(),
    };
    report.markdown = markdown(&report);
    if let Some(dir) = &config.out_dir {
        write_results(dir, &report)?;
    }
    Ok(report)
}

async fn wait_addr_file(
    path: &Path,
    child: &mut tokio::process::Child,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str(&text) {
                return Ok(v);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::Invalid(format!(
                "the server exited before listening: {status}"
            )));
        }
        if Instant::now() > deadline {
            return Err(LabError::ServerStartTimeout {
                model: "sockit serve".into(),
                secs: 60,
            });
        }
        // Polls the file the server writes atomically once every port listens.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open sockets of `pid` (listeners included).
fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|t| t.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits until the server holds no more sockets than before the burst and its RSS has
/// not moved by more than 1% for one second (bounded by `limit`); returns the RSS and
/// whether both happened.
async fn settle(pid: u32, sockets_before: usize, limit: Duration) -> (u64, bool) {
    let deadline = Instant::now() + limit;
    let step = Duration::from_millis(100);
    while socket_count(pid) > sockets_before && Instant::now() < deadline {
        tokio::time::sleep(step).await;
    }
    let mut last = rss_kib(pid).unwrap_or(0);
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(step).await;
        let now = rss_kib(pid).unwrap_or(0);
        if now.abs_diff(last) * 100 > last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_secs(1) {
            return (now, socket_count(pid) <= sockets_before);
        }
    }
    (rss_kib(pid).unwrap_or(last), false)
}

async fn run_burst(
    svc: SoakService,
    addr: SocketAddr,
    config: &SoakConfig,
    burst: usize,
) -> (usize, usize, Option<String>) {
    let sem = Arc::new(Semaphore::new(config.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..config.conns {
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = tokio::time::timeout(Duration::from_secs(30), exchange(svc, addr, i)).await;
            match r {
                Ok(r) => r,
                Err(_) => Err(format!("{}: no answer within 30 s", svc.name())),
            }
        });
    }
    let (mut ok, mut failed, mut first_error) = (0, 0, None);
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(format!("burst {}: {e}", burst + 1));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(format!("burst {}: task: {e}", burst + 1));
            }
        }
    }
    (ok, failed, first_error)
}

/// Reads until `needle` appears or the peer closes (at most 64 KiB).
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 64 * 1024 {
        if !needle.is_empty() && got.windows(needle.len()).any(|w| w == needle) {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

/// One connection's exchange; `Err` says what went wrong.
async fn exchange(svc: SoakService, addr: SocketAddr, i: usize) -> std::result::Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", svc.name());
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| io("connect", e))?;
    let fail = |what: String| Err(format!("{}: {what}", svc.name()));
    match svc {
        SoakService::FramedPing => {
            let header = br#"{"cmd":"ping"}"#;
            let mut req = (header.len() as u32).to_le_bytes().to_vec();
            req.extend_from_slice(header);
            s.write_all(&req).await.map_err(|e| io("send", e))?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await.map_err(|e| io("read", e))?;
            let len = u32::from_le_bytes(len) as usize;
            if len > 64 * 1024 {
                return fail(format!("answer header of {len} bytes"));
            }
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.map_err(|e| io("read", e))?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| format!("framed-ping: answer is not JSON: {e}"))?;
            if v["cmd"] != "pong" {
                return fail(format!("answer {v} is not a pong"));
            }
        }
        SoakService::Echo => {
            s.write_all(b"soak\n").await.map_err(|e| io("send", e))?;
            let mut back = [0u8; 5];
            s.read_exact(&mut back).await.map_err(|e| io("read", e))?;
            if &back != b"soak\n" {
                return fail(format!("echoed {:?}", String::from_utf8_lossy(&back)));
            }
        }
        SoakService::Greet => {
            let hello = read_until(&mut s, b"name?")
                .await
                .map_err(|e| io("read", e))?;
            if !hello.ends_with(b"What's your name?") {
                return fail("no prompt".into());
            }
            s.write_all(b"exit").await.map_err(|e| io("send", e))?;
            let bye = read_until(&mut s, b"Good bye!\n")
                .await
                .map_err(|e| io("read", e))?;
            if !bye.ends_with(b"Good bye!\n") {
                return fail("no good bye".into());
            }
        }
        SoakService::Daytime => {
            let line = read_until(&mut s, b"").await.map_err(|e| io("read", e))?;
            if line.len() < 10 || !line.ends_with(b"\r\n") {
                return fail(format!("answer {:?}", String::from_utf8_lossy(&line)));
            }
        }
        SoakService::Time => {
            let mut t = [0u8; 4];
            s.read_exact(&mut t).await.map_err(|e| io("read", e))?;
            // Seconds since 1900: anything after 2020 is a real clock.
            if u32::from_be_bytes(t) < 3_786_825_600 {
                return fail(format!("time {} is before 2020", u32::from_be_bytes(t)));
            }
        }
        SoakService::Chat => {
            let reg = format!("NICK soak{i}\r\nUSER soak 0 * :soak\r\n");
            s.write_all(reg.as_bytes())
                .await
                .map_err(|e| io("send", e))?;
            let got = read_until(&mut s, b" 001 ")
                .await
                .map_err(|e| io("read", e))?;
            if !got.windows(5).any(|w| w == b" 001 ") {
                return fail(format!(
                    "no welcome: {}",
                    String::from_utf8_lossy(&got).lines().next().unwrap_or("")
                ));
            }
            s.write_all(b"QUIT :soak\r\n")
                .await
                .map_err(|e| io("send", e))?;
            let _ = read_until(&mut s, b"").await;
        }
        SoakService::ReaderHttp => {
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .map_err(|e| io("send", e))?;
            let got = read_until(&mut s, b"").await.map_err(|e| io("read", e))?;
            if !got.starts_with(b"HTTP/1.1 200") {
                return fail(format!(
                    "answer {}",
                    String::from_utf8_lossy(&got).lines().next().unwrap_or("")
                ));
            }
        }
        SoakService::ReaderClassic => {
            // `3` (close the book) with no book open: the server answers with its error
            // text and keeps the connection.
            s.write_all(b"3").await.map_err(|e| io("send", e))?;
            let want: &[u8] = b"no book is open";
            let got = read_until(&mut s, want).await.map_err(|e| io("read", e))?;
            if !got.starts_with(b"error: ") || !got.ends_with(want) {
                return fail(format!("answer {:?}", String::from_utf8_lossy(&got)));
            }
        }
    }
    Ok(())
}

/// The markdown table: one row per service, RSS (MiB) after each burst, last/first.
pub fn markdown(r: &SoakReport) -> String {
    let mut out = format!(
        "Memory soak: {} bursts of {} connections ({} at once) per service, one exchange each; \
         server RSS in MiB once each burst's connections closed (idle: {:.1} MiB).\n\n",
        r.bursts,
        r.conns,
        r.concurrency,
        r.idle_rss_kib as f64 / 1024.0
    );
    out.push_str("| service |");
    for b in 1..=r.bursts {
        out.push_str(&format!(" {b} |"));
    }
    out.push_str(" failed | last/first |\n|---|");
    for _ in 0..r.bursts {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|\n");
    for s in &r.services {
        out.push_str(&format!("| {} |", s.service));
        for b in &s.bursts {
            let mark = if b.settled { "" } else { "*" };
            out.push_str(&format!(" {:.1}{mark} |", b.rss_kib as f64 / 1024.0));
        }
        out.push_str(&format!(" {} | {:.2} |\n", s.failed(), s.ratio()));
    }
    if r.services
        .iter()
        .flat_map(|s| &s.bursts)
        .any(|b| !b.settled)
    {
        out.push_str("\n\\* RSS had not settled (or connections were still open) within the settle timeout.\n");
    }
    out
}

fn write_results(dir: &Path, report: &SoakReport) -> Result<()> {
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LabError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(file_err(dir))?;
    for (name, text) in [
        (
            "soak.json",
            serde_json::to_string_pretty(report).unwrap_or_default(),
        ),
        ("soak.md", report.markdown.clone()),
    ] {
        let path = dir.join(name);
        sockit_runtime::fs::write_atomic(&path, text.as_bytes(), sockit_runtime::fs::Mode::Public)
            .map_err(file_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in SoakService::ALL {
            assert_eq!(SoakService::find(s.name()), Some(s));
        }
        assert_eq!(SoakService::find("nope"), None);
    }

    #[test]
    fn ratio_and_table() {
        let burst = |rss| BurstResult {
            ok: 10,
            failed: 0,
            first_error: None,
            rss_kib: rss,
            settled: true,
            secs: 0.1,
        };
        let s = ServiceSoak {
            service: "echo".into(),
            bursts: vec![burst(20_480), burst(30_720)],
        };
        assert!((s.ratio() - 1.5).abs() < 1e-9);
        let r = SoakReport {
            bursts: 2,
            conns: 10,
            concurrency: 10,
            idle_rss_kib: 10_240,
            services: vec![s],
            markdown: String::new(),
        };
        let md = markdown(&r);
        assert!(md.contains("| echo | 20.0 | 30.0 | 0 | 1.50 |"), "{md}");
    }
}
