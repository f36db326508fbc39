//! The benchmark matrix: for every model × connection count (× mode), start a fresh
//! server process pinned to the server cores, measure it with the load generator pinned
//! to the other cores, read its CPU time and memory from /proc, stop it.
//!
//! Servers run as separate processes so their CPU and memory can be measured apart
//! from the load generator. How to start one is the caller's business (the CLI re-runs
//! its own binary as `sockit lab serve`), given as a [`Launcher`]; the Python models run
//! their script directly. [`Target`]s — servers the user wrote — get the same cells.

pub mod target;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

use crate::affinity;
use crate::error::{LabError, Result};
use crate::listener::{read_addr_file, DEFAULT_BACKLOG};
use crate::loadgen::{self, LoadConfig, LoadStats};
use crate::model::Model;
use crate::models::python;
use crate::procstat;
use crate::results::{utc_timestamp, BenchResults, Cell, Machine};
pub use target::{Target, TargetKind};

/// What a launcher must start: `model` on 127.0.0.1 port 0, writing its address to
/// `addr_file` (as [`crate::write_addr_file`] does) once it accepts connections.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The model to serve.
    pub model: Model,
    /// Where the server reports its address.
    pub addr_file: PathBuf,
    /// `--workers`, if given.
    pub workers: Option<usize>,
    /// listen(2) backlog.
    pub backlog: i32,
}

/// Builds the command that starts a server for a [`LaunchSpec`].
pub type Launcher = dyn Fn(&LaunchSpec) -> Command;

/// A launcher running `program prefix... --model M --addr 127.0.0.1:0 --backlog B
/// --addr-file F [--workers N]`, e.g. `sockit lab serve ...`.
pub fn command_launcher(program: PathBuf, prefix: Vec<String>) -> Box<Launcher> {
    Box::new(move |spec: &LaunchSpec| {
        let mut c = Command::new(&program);
        c.args(&prefix)
            .arg("--model")
            .arg(spec.model.name())
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--backlog")
            .arg(spec.backlog.to_string())
            .arg("--addr-file")
            .arg(&spec.addr_file);
        if let Some(w) = spec.workers {
            c.arg("--workers").arg(w.to_string());
        }
        c
    })
}

/// The benchmark matrix.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Models to measure.
    pub models: Vec<Model>,
    /// Servers outside the lab to measure with the same cells (after the models).
    pub targets: Vec<Target>,
    /// Connection counts (closed and open loop).
    pub conns: Vec<usize>,
    /// Message size in bytes.
    pub size: usize,
    /// Measurement time per cell.
    pub duration: Duration,
    /// Open-loop total rate; adds an `open` cell per connection count.
    pub rate: Option<f64>,
    /// Concurrent connectors for a `connect` cell per model (None: no connect cells).
    pub connect: Option<usize>,
    /// `--workers` passed to the servers.
    pub workers: Option<usize>,
    /// Directory for `lab-<timestamp>.json`.
    pub out_dir: PathBuf,
    /// Pin server and client to different cores when there are at least two.
    pub pin: bool,
    /// Source addresses to spread client sockets over (127.0.0.1..N).
    pub source_ips: u8,
    /// Load-generator threads.
    pub client_threads: usize,
    /// Stop each cell after this many requests, if set.
    pub max_requests: Option<u64>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            models: vec![
                Model::Tokio,
                Model::EpollEt,
                Model::Thread,
                Model::PythonThreads,
            ],
            targets: Vec::new(),
            conns: vec![1, 10, 100, 1000, 10_000],
            size: 64,
            duration: Duration::from_secs(10),
            rate: None,
            connect: None,
            workers: None,
            out_dir: PathBuf::from("bench-results"),
            pin: true,
            source_ips: 16,
            client_threads: 1,
            max_requests: None,
        }
    }
}

/// A server process the lab started, in its own process group; dropping it stops the
/// whole group.
pub(crate) struct ServerProcess {
    child: Child,
    /// SIGTERM first and a moment to exit (the user's `--target-cmd` servers), instead
    /// of SIGKILL at once (the lab's own models).
    polite: bool,
}

impl ServerProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        if self.polite {
            // SAFETY: signalling the process group we created for this child.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(2) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // SAFETY: as above; also ends what the server forked, if it is still there.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A server ready for one cell.
pub(crate) struct Running {
    addr: std::net::SocketAddr,
    /// The process whose CPU and memory are read (with its descendants); `None` for a
    /// `--target` whose owner /proc does not show us.
    pid: Option<u32>,
    /// Stops the server when the cell is done (`None`: the lab did not start it).
    _process: Option<ServerProcess>,
}

fn running(child: Child, addr: std::net::SocketAddr) -> Running {
    let process = ServerProcess {
        child,
        polite: false,
    };
    Running {
        addr,
        pid: Some(process.pid()),
        _process: Some(process),
    }
}

fn start_server(launcher: &Launcher, spec: &LaunchSpec, server_cores: &[usize]) -> Result<Running> {
    let _ = std::fs::remove_file(&spec.addr_file);
    let py = spec.model.is_python();
    let mut cmd = if py {
        python::command(
            spec.model,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            spec.backlog,
        )?
    } else {
        launcher(spec)
    };
    let err_path = spec.addr_file.with_extension("stderr");
    let err_file = std::fs::File::create(&err_path).map_err(|source| LabError::File {
        path: err_path.clone(),
        source,
    })?;
    cmd.stdin(Stdio::null()).stderr(err_file).process_group(0);
    cmd.stdout(if py { Stdio::piped() } else { Stdio::null() });
    let cores = server_cores.to_vec();
    // SAFETY: the closure only calls sched_setaffinity (async-signal-safe) between fork
    // and exec and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if !cores.is_empty() {
                affinity::pin_current_thread(&cores)?;
            }
            Ok(())
        });
    }
    if py {
        let (child, addr) = python::spawn(spec.model, cmd)?;
        return Ok(running(child, addr));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io(format!("start server for {}", spec.model), e))?;
    let t0 = Instant::now();
    loop {
        if let Some(addr) = read_addr_file(&spec.addr_file) {
            return Ok(running(child, addr));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(LabError::io(
                format!("server for {} exited ({status})", spec.model),
                std::io::Error::other(msg.trim().to_string()),
            ));
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::ServerStartTimeout {
                model: spec.model.to_string(),
                secs: 10,
            });
        }
        // Polling the address file the server writes once it listens (bounded above).
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What one row of the matrix measures: a built-in model or the user's server.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    Model(Model),
    Target(&'a Target),
}

impl Subject<'_> {
    fn name(&self) -> &str {
        match self {
            Subject::Model(m) => m.name(),
            Subject::Target(t) => &t.name,
        }
    }
}

fn skip_reason(subject: Subject<'_>, conns: usize, nofile: u64) -> Option<String> {
    let select = matches!(subject, Subject::Model(Model::Select | Model::PythonSelect));
    if select && conns + 16 >= libc::FD_SETSIZE {
        return Some(format!(
            "select cannot watch descriptors >= FD_SETSIZE ({})",
            libc::FD_SETSIZE
        ));
    }
    if conns as u64 + 64 > nofile {
        return Some(format!(
            "RLIMIT_NOFILE {nofile} is too low for {conns} connections"
        ));
    }
    None
}

/// Runs one cell against a fresh server (or the running `--target`).
fn run_cell(
    cfg: &BenchConfig,
    launcher: &Launcher,
    subject: Subject<'_>,
    mode: &str,
    conns: usize,
    work: &Path,
    cores: &(Vec<usize>, Vec<usize>),
) -> Result<Cell> {
    let server = match subject {
        Subject::Model(model) => {
            let spec = LaunchSpec {
                model,
                addr_file: work.join(format!("{model}-{mode}-{conns}.addr")),
                workers: cfg.workers,
                backlog: DEFAULT_BACKLOG,
            };
            start_server(launcher, &spec, &cores.0)?
        }
        Subject::Target(t) => target::start(t, work, &cores.0)?,
    };
    let pid = server.pid;
    let mut load = LoadConfig::new(server.addr);
    load.conns = conns;
    load.size = cfg.size;
    load.duration = cfg.duration;
    load.max_requests = cfg.max_requests;
    load.source_ips = cfg.source_ips;
    load.client_cores = cores.1.clone();
    load.threads = cfg.client_threads;
    let memory = |pid: Option<u32>| pid.map_or(0, procstat::tree_memory_kib);
    let cpu = |pid: Option<u32>| pid.map_or((Duration::ZERO, Duration::ZERO), procstat::cpu_times);
    let mem_idle = memory(pid);
    let mut mem_loaded = mem_idle;
    let mut cpu0 = cpu(pid);
    let mut on_connected = |_n: usize| {
        mem_loaded = memory(pid);
        cpu0 = cpu(pid);
    };
    let stats: LoadStats = match mode {
        "open" => loadgen::open::run(&load, cfg.rate.unwrap_or(1000.0), on_connected)?,
        "connect" => {
            // Short connections: nothing stays open, so "connected" is the start.
            on_connected(0);
            loadgen::connect::run(&load)?
        }
        _ => loadgen::closed::run(&load, on_connected)?,
    };
    let cpu1 = cpu(pid);
    let user = cpu1.0.saturating_sub(cpu0.0).as_secs_f64();
    let sys = cpu1.1.saturating_sub(cpu0.1).as_secs_f64();
    let cpu = user + sys;
    let per_req = |secs: f64| {
        if stats.requests > 0 {
            secs * 1e6 / stats.requests as f64
        } else {
            0.0
        }
    };
    let peak = pid.map_or(0, procstat::peak_rss_kib);
    drop(server);
    let per_conn = if mode == "connect" || stats.connected == 0 {
        0.0
    } else {
        mem_loaded.saturating_sub(mem_idle) as f64 / stats.connected as f64
    };
    Ok(Cell {
        model: subject.name().to_string(),
        mode: mode.to_string(),
        conns,
        connected: stats.connected,
        requests: stats.requests,
        errors: stats.errors,
        rps: stats.rps,
        latency: stats.latency,
        uncorrected: stats.uncorrected,
        server_cpu_s: cpu,
        cpu_us_per_req: per_req(cpu),
        sys_us_per_req: per_req(sys),
        mem_idle_kib: mem_idle,
        mem_loaded_kib: mem_loaded,
        kib_per_conn: per_conn,
        peak_rss_kib: peak,
        skipped: None,
    })
}

fn check(cfg: &BenchConfig) -> Result<()> {
    if (cfg.models.is_empty() && cfg.targets.is_empty())
        || cfg.conns.is_empty()
        || cfg.duration.is_zero()
        || cfg.size == 0
    {
        return Err(LabError::Invalid(
            "bench needs models or targets, connection counts, a duration and a size".into(),
        ));
    }
    for (i, t) in cfg.targets.iter().enumerate() {
        t.validate()?;
        if cfg.targets[..i].iter().any(|u| u.name == t.name) {
            return Err(LabError::Invalid(format!(
                "two targets are named {:?}",
                t.name
            )));
        }
    }
    Ok(())
}

/// Runs the whole matrix and writes `out_dir/lab-<timestamp>.json`.
///
/// # Errors
/// Invalid configuration (see [`Target::validate`]) or an unwritable output directory;
/// a failing cell is recorded as skipped with its error instead of aborting the run.
pub fn run_bench(cfg: &BenchConfig, launcher: &Launcher) -> Result<(PathBuf, BenchResults)> {
    check(cfg)?;
    let nofile = affinity::raise_nofile().unwrap_or(1024);
    let cores = if cfg.pin {
        affinity::split_cores()
    } else {
        (Vec::new(), Vec::new())
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let started = utc_timestamp(now);
    let work = tempdir_for_run()?;
    let subjects: Vec<Subject<'_>> = cfg
        .models
        .iter()
        .map(|&m| Subject::Model(m))
        .chain(cfg.targets.iter().map(Subject::Target))
        .collect();
    let mut plan: Vec<(Subject<'_>, &str, usize)> = Vec::new();
    for &s in &subjects {
        for &n in &cfg.conns {
            plan.push((s, "closed", n));
            if cfg.rate.is_some() {
                plan.push((s, "open", n));
            }
        }
        if let Some(c) = cfg.connect {
            plan.push((s, "connect", c));
        }
    }
    let pb = ProgressBar::new(plan.len() as u64);
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let mut cells = Vec::new();
    for (subject, mode, conns) in plan {
        let name = subject.name().to_string();
        pb.set_message(format!("{name} {mode} conns={conns}"));
        let skipped = |reason: String| Cell {
            model: name.clone(),
            mode: mode.to_string(),
            conns,
            skipped: Some(reason),
            ..Cell::default()
        };
        let cell = match skip_reason(subject, conns, nofile) {
            Some(reason) => skipped(reason),
            None => run_cell(cfg, launcher, subject, mode, conns, &work, &cores)
                .unwrap_or_else(|e| skipped(e.to_string())),
        };
        let unmeasured = if cell.skipped.is_none() && cell.peak_rss_kib == 0 {
            "  (server process not visible in /proc: CPU and memory not measured)"
        } else {
            ""
        };
        let line = match &cell.skipped {
            Some(r) => format!("{name:>18} {mode:>7} {conns:>6} conns: skipped: {r}"),
            None => format!(
                "{name:>18} {mode:>7} {conns:>6} conns: {:>10.0} req/s  p50 {:>8.1}us  p99 {:>8.1}us  {:>6.1} KiB/conn  errors {}{unmeasured}",
                cell.rps, cell.latency.p50_us, cell.latency.p99_us, cell.kib_per_conn, cell.errors
            ),
        };
        if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
        cells.push(cell);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(&work);
    let results = BenchResults {
        version: 1,
        started: started.clone(),
        machine: Machine {
            cores: affinity::allowed_cores().len(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            server_cores: cores.0.clone(),
            client_cores: cores.1.clone(),
            nofile,
        },
        size: cfg.size,
        duration_s: cfg.duration.as_secs_f64(),
        rate: cfg.rate,
        cells,
    };
    let path = cfg
        .out_dir
        .join(format!("lab-{}.json", started.replace(':', "")));
    results.save(&path)?;
    Ok((path, results))
}

/// A scratch directory of this run alone: runs in one process (tests run in parallel)
/// must not share one, since each removes its own when done.
fn tempdir_for_run() -> Result<PathBuf> {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sockit-lab-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| LabError::File {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}
