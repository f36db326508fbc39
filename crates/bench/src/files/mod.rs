//! `sockit lab bench files`: upload and download one large file over loopback and compare
//! with a raw `socat` TCP pipe into a file, measured in the same run; then the same
//! transfers over TLS (a second server with `--tls`, its certificate pinned), reported as a
//! ratio to the plain-text run.
//!
//! The server is a separate process (the caller passes the command that starts it, e.g.
//! the running `sockit` binary with `serve`), so its peak RSS (`VmHWM`) is its own. The
//! ceiling is `socat -u OPEN:src TCP:...` into `socat -u TCP-LISTEN:... CREATE:dst`, with
//! socat's default buffer. sockit's upload includes what socat does not do: BLAKE3 on both
//! ends and an fsync before the rename.

pub mod delta;
mod peers;
pub mod tree;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use sockit_files::client::{FilesClient, GetOptions, NoProgress, PutOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Bytes to move each way.
    pub size: u64,
    /// Where the test files go (the server's root is made inside it).
    pub dir: PathBuf,
    /// Where `files.json` and `files.md` are written.
    pub out_dir: PathBuf,
    /// Program and arguments that start a sockit server; the bench appends
    /// `--root R --addr-file F --only framed --port framed=0` (and `--tls` for the TLS rows).
    pub server: Vec<OsString>,
    /// Also measure put and get over TLS.
    pub tls: bool,
    /// Files of the tree scenario (0: not run).
    pub tree_files: usize,
    /// Bytes per file of the tree scenario.
    pub tree_file_size: usize,
    /// Bytes rewritten in the middle of the large file for the delta scenario (0: not
    /// run).
    pub delta_changed: u64,
}

/// One measured transfer.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// What moved.
    pub name: String,
    /// Bytes moved.
    pub bytes: u64,
    /// Wall time, seconds.
    pub secs: f64,
    /// Throughput, MB/s (10^6 bytes).
    pub mb_s: f64,
    /// Throughput relative to the socat ceiling.
    pub ratio_to_socat: f64,
    /// For a TLS row: throughput relative to the same transfer in plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_plain: Option<f64>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Bytes per transfer.
    pub size: u64,
    /// The socat ceiling, then put, then get, then (with TLS) put and get over TLS.
    pub results: Vec<Measure>,
    /// The plain-text server's peak resident set size over its run, MiB.
    pub server_peak_rss_mib: f64,
    /// The TLS server's peak resident set size over its run, MiB (when measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_peak_rss_mib: Option<f64>,
    /// The target.
    pub target: String,
    /// Whether both directions reached 0.9× socat with server RSS under 64 MiB.
    pub target_met: bool,
    /// The TLS target (when measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_target: Option<String>,
    /// Whether put and get over TLS reached 0.7× plain text (when measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_target_met: Option<bool>,
    /// The tree scenario (when run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<tree::TreeReport>,
    /// The delta scenario (when run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<delta::DeltaReport>,
    /// Put and get of the same file with `--compress` on the plain-text server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compressed: Vec<Measure>,
    /// Body bytes on the wire of the `--compress` put and get (random data: the file's
    /// size, nothing compressed and nothing added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_wire: Option<[u64; 2]>,
    /// Whether plain-text put and get both reached [`LINE_RATE_MIB_S`].
    pub line_rate_met: bool,
}

/// The single-stream target of issue #16: what 10 GbE carries, MiB/s.
pub const LINE_RATE_MIB_S: f64 = 1100.0;

/// The TLS target of issue #9.
const TLS_TARGET_RATIO: f64 = 0.7;

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Local I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Kills the child when dropped.
pub(crate) struct Reaper(pub(crate) Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `size` bytes of pseudo-random data.
fn make_source(path: &Path, size: u64) -> Result<(), BenchError> {
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).map_err(io("create source file"))?,
    );
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    let mut round = 0u64;
    while left > 0 {
        round += 1;
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&(x ^ round).to_le_bytes());
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(block.len());
        f.write_all(&block[..n]).map_err(io("write source file"))?;
        left -= n as u64;
    }
    f.flush().map_err(io("write source file"))?;
    Ok(())
}

fn wait_file(path: &Path, child: &mut Child, limit: Duration) -> Result<String, BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Step(format!("server exited early: {status}")));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Step("server did not start in time".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The socat ceiling: file → TCP → file on loopback.
fn socat_ceiling(src: &Path, dst: &Path) -> Result<f64, BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("find a free port"))?
        .port();
    let mut recv = Reaper(
        Command::new("socat")
            .arg("-u")
            .arg(format!("TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"))
            .arg(format!("CREATE:{}", dst.display()))
            .stdout(Stdio::null())
            .spawn()
            .map_err(io("run socat (install it: apt-get install socat)"))?,
    );
    let started = Instant::now();
    let send = Command::new("socat")
        .arg("-u")
        .arg(format!("OPEN:{}", src.display()))
        .arg(format!("TCP:127.0.0.1:{port},retry=500,interval=0.01"))
        .status()
        .map_err(io("run socat"))?;
    let got = recv.0.wait().map_err(io("wait for socat"))?;
    let secs = started.elapsed().as_secs_f64();
    if !send.success() || !got.success() {
        return Err(BenchError::Step(format!(
            "socat failed (sender {send}, receiver {got})"
        )));
    }
    Ok(secs)
}

/// Runs the benchmark and writes `files.json` and `files.md` into `out_dir`.
///
/// # Errors
/// Any step failing (server start, a transfer, socat, writing the results).
pub async fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let work = opts
        .dir
        .join(format!("sockit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(io("create bench dir"))?;
    let result = run_in(opts, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    std::fs::create_dir_all(&opts.out_dir).map_err(io("create results dir"))?;
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| BenchError::Step(e.to_string()))?;
    std::fs::write(opts.out_dir.join("files.json"), json).map_err(io("write files.json"))?;
    std::fs::write(opts.out_dir.join("files.md"), markdown(&report))
        .map_err(io("write files.md"))?;
    Ok(report)
}

/// A `sockit serve` child process with only the framed service.
pub(crate) struct Server {
    /// The child (killed on drop).
    pub(crate) process: Reaper,
    /// `HOST:PORT` of its framed port.
    pub(crate) addr: String,
    /// Its data root.
    pub(crate) root: PathBuf,
    /// The pinned certificate (with `--tls`).
    pub(crate) trust: Option<sockit_runtime::tls::Trust>,
}

impl Server {
    /// Starts `opts.server` with root `work/root-TAG` (and `--tls` when `tls`) and waits
    /// for its address file.
    pub(crate) fn start(
        opts: &BenchOptions,
        work: &Path,
        tag: &str,
        tls: bool,
    ) -> Result<Server, BenchError> {
        let root = work.join(format!("root-{tag}"));
        std::fs::create_dir_all(&root).map_err(io("create server root"))?;
        let trust = if tls {
            // Generate the certificate the server will load, so the client can pin it.
            let dir = sockit_runtime::tls::cert::default_dir(&root);
            let (identity, _) = sockit_runtime::tls::ServerIdentity::load_or_generate(&dir)
                .map_err(|e| BenchError::Step(format!("TLS certificate: {e}")))?;
            Some(sockit_runtime::tls::Trust::Pinned(identity.fingerprint()))
        } else {
            None
        };
        let (program, args) = opts
            .server
            .split_first()
            .ok_or_else(|| BenchError::Step("no server command".into()))?;
        let addr_file = work.join(format!("addrs-{tag}.json"));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg("--root")
            .arg(&root)
            .arg("--addr-file")
            .arg(&addr_file)
            .args(["--only", "framed", "--port", "framed=0", "-q"])
            .stdout(Stdio::null());
        if tls {
            cmd.arg("--tls");
        }
        let mut server = Reaper(cmd.spawn().map_err(io("start the server"))?);
        let addrs = wait_file(&addr_file, &mut server.0, Duration::from_secs(30))?;
        let addrs: serde_json::Value = serde_json::from_str(&addrs)
            .map_err(|e| BenchError::Step(format!("addr file: {e}")))?;
        let addr = addrs["framed"]["tcp"]
            .as_str()
            .ok_or_else(|| BenchError::Step("addr file has no framed/tcp".into()))?
            .to_owned();

        Ok(Server {
            process: server,
            addr,
            root,
            trust,
        })
    }
}

/// One server's put and get times and its peak RSS.
struct Timed {
    put_secs: f64,
    get_secs: f64,
    /// Put and get again with `--compress` (plain text only): seconds and body bytes on
    /// the wire of each.
    compressed: Option<[(f64, u64); 2]>,
    rss_mib: f64,
}

/// Starts a server (with `--tls` when `tls`), uploads `src`, downloads it back, and
/// checks the copy is byte-identical (the client already verified BLAKE3; this also
/// catches a bench bug).
async fn measure(
    opts: &BenchOptions,
    work: &Path,
    src: &Path,
    tls: bool,
) -> Result<Timed, BenchError> {
    let tag = if tls { "tls" } else { "plain" };
    let server = Server::start(opts, work, tag, tls)?;
    let addr = server.addr.clone();
    let trust = server.trust.clone();
    let connect = sockit_wire::client::ConnectOptions {
        key: None,
        timeout: Duration::from_secs(10),
        tls: trust,
    };
    let mut client = sockit_wire::client::Client::connect_with(&addr, &connect)
        .await
        .map(FilesClient::new)
        .map_err(|e| BenchError::Step(format!("connect ({tag}): {e}")))?;
    let t = Instant::now();
    client
        .put(
            src,
            "bench.bin",
            PutOptions {
                resume: false,
                overwrite: true,
            },
            &mut NoProgress,
        )
        .await
        .map_err(|e| BenchError::Step(format!("put ({tag}): {e}")))?;
    let put_secs = t.elapsed().as_secs_f64();

    let got = work.join(format!("got-{tag}.bin"));
    let t = Instant::now();
    client
        .get(
            "bench.bin",
            &got,
            GetOptions { resume: false },
            &mut NoProgress,
        )
        .await
        .map_err(|e| BenchError::Step(format!("get ({tag}): {e}")))?;
    let get_secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&got);
    // The same file again with --compress: the data is random, so every block should go
    // as it is, and this measures what finding that out costs.
    let compressed = if tls {
        None
    } else {
        client.set_compress(true);
        let t = Instant::now();
        let p = client
            .put(
                src,
                "bench.bin",
                PutOptions {
                    resume: false,
                    overwrite: true,
                },
                &mut NoProgress,
            )
            .await
            .map_err(|e| BenchError::Step(format!("put --compress: {e}")))?;
        let zput = (t.elapsed().as_secs_f64(), p.wire);
        let t = Instant::now();
        let g = client
            .get(
                "bench.bin",
                &got,
                GetOptions { resume: false },
                &mut NoProgress,
            )
            .await
            .map_err(|e| BenchError::Step(format!("get --compress: {e}")))?;
        Some([zput, (t.elapsed().as_secs_f64(), g.wire)])
    };
    let rss_mib = peak_rss_mib(server.process.0.id());
    let root = server.root.clone();
    drop(server);
    let _ = std::fs::remove_file(&got);
    let _ = std::fs::remove_dir_all(&root);
    Ok(Timed {
        put_secs,
        get_secs,
        compressed,
        rss_mib,
    })
}

async fn run_in(opts: &BenchOptions, work: &Path) -> Result<BenchReport, BenchError> {
    let src = work.join("src.bin");
    make_source(&src, opts.size)?;

    let ceiling_dst = work.join("socat.bin");
    let socat_secs = socat_ceiling(&src, &ceiling_dst)?;
    let _ = std::fs::remove_file(&ceiling_dst);

    let plain = measure(opts, work, &src, false).await?;
    let tls = if opts.tls {
        Some(measure(opts, work, &src, true).await?)
    } else {
        None
    };

    let mb = |secs: f64| opts.size as f64 / 1e6 / secs.max(1e-9);
    let ceiling = mb(socat_secs);
    let m = |name: &str, secs: f64, plain_secs: Option<f64>| Measure {
        name: name.into(),
        bytes: opts.size,
        secs,
        mb_s: mb(secs),
        ratio_to_socat: mb(secs) / ceiling,
        ratio_to_plain: plain_secs.map(|p| p / secs.max(1e-9)),
    };
    let mut results = vec![
        m("socat file→tcp→file (ceiling)", socat_secs, None),
        m(
            "sockit put (blake3 both ends + fsync)",
            plain.put_secs,
            None,
        ),
        m("sockit get (blake3 verified + fsync)", plain.get_secs, None),
    ];
    let target_met = results[1].ratio_to_socat >= 0.9
        && results[2].ratio_to_socat >= 0.9
        && plain.rss_mib < 64.0;
    let mut compressed_wire = None;
    let mut compressed = Vec::new();
    if let Some([(put_secs, put_wire), (get_secs, get_wire)]) = plain.compressed {
        compressed.push(m(
            "sockit put --compress (random data, sent as it is)",
            put_secs,
            None,
        ));
        compressed.push(m(
            "sockit get --compress (random data, sent as it is)",
            get_secs,
            None,
        ));
        compressed_wire = Some([put_wire, get_wire]);
    }
    let mut report = BenchReport {
        size: opts.size,
        results: Vec::new(),
        server_peak_rss_mib: plain.rss_mib,
        tls_server_peak_rss_mib: None,
        target: "put and get ≥ 0.9× socat, server RSS < 64 MiB".into(),
        target_met,
        tls_target: None,
        tls_target_met: None,
        tree: None,
        delta: None,
        compressed,
        compressed_wire,
        line_rate_met: [plain.put_secs, plain.get_secs].iter().all(|&secs| {
            opts.size as f64 / (1u64 << 20) as f64 / secs.max(1e-9) >= LINE_RATE_MIB_S
        }),
    };
    if let Some(t) = tls {
        let put = m("sockit put over TLS", t.put_secs, Some(plain.put_secs));
        let get = m("sockit get over TLS", t.get_secs, Some(plain.get_secs));
        let met = [&put, &get]
            .iter()
            .all(|r| r.ratio_to_plain.is_some_and(|x| x >= TLS_TARGET_RATIO));
        results.push(put);
        results.push(get);
        report.tls_server_peak_rss_mib = Some(t.rss_mib);
        report.tls_target = Some(format!(
            "put and get over TLS ≥ {TLS_TARGET_RATIO}× plain text"
        ));
        report.tls_target_met = Some(met);
    }
    report.results = results;
    if opts.tree_files > 0 {
        report.tree = Some(tree::run(opts, work, opts.tree_files, opts.tree_file_size)?);
    }
    if opts.delta_changed > 0 {
        let changed = opts.delta_changed.min(opts.size / 2);
        report.delta = Some(delta::run(opts, work, &src, changed)?);
    }
    Ok(report)
}

/// The report as a markdown table.
pub fn markdown(r: &BenchReport) -> String {
    let mut s = format!(
        "| transfer ({} MiB over loopback) | seconds | MB/s | MiB/s | × socat | × plain |\n|---|---:|---:|---:|---:|---:|\n",
        r.size / (1 << 20)
    );
    for m in r.results.iter().chain(&r.compressed) {
        let plain = m
            .ratio_to_plain
            .map_or(String::new(), |x| format!("{x:.2}"));
        s.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:.0} | {:.2} | {plain} |\n",
            m.name,
            m.secs,
            m.mb_s,
            m.mb_s * 1e6 / (1u64 << 20) as f64,
            m.ratio_to_socat
        ));
    }
    s.push_str(&format!(
        "\nline-rate target (put and get ≥ {LINE_RATE_MIB_S} MiB/s, what 10 GbE carries): {}\n",
        if r.line_rate_met { "met" } else { "NOT met" }
    ));
    if let Some([put, get]) = r.compressed_wire {
        s.push_str(&format!(
            "\n--compress bodies on the wire: put {put} bytes, get {get} bytes, for {} bytes of random data\n",
            r.size
        ));
    }
    s.push_str(&format!(
        "\nserver peak RSS: {:.1} MiB; target ({}): {}\n",
        r.server_peak_rss_mib,
        r.target,
        if r.target_met { "met" } else { "NOT met" }
    ));
    if let (Some(target), Some(met), Some(rss)) =
        (&r.tls_target, r.tls_target_met, r.tls_server_peak_rss_mib)
    {
        s.push_str(&format!(
            "TLS server peak RSS: {rss:.1} MiB; TLS target ({target}): {}\n",
            if met { "met" } else { "NOT met" }
        ));
    }
    if let Some(t) = &r.tree {
        s.push('\n');
        s.push_str(&tree::markdown(t));
    }
    if let Some(d) = &r.delta {
        s.push('\n');
        s.push_str(&delta::markdown(d));
    }
    s
}
