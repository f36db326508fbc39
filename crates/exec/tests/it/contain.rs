//! Containment over real sockets, on both paths: a grandchild that leaves the process
//! group (`setsid`, `setpgid`, a double fork) dies when its command times out or its
//! client disconnects, and `--max-execs` counts it until it is dead.
//!
//! The cgroup tests need root and a writable cgroup v2 hierarchy (CI has both); without
//! them they fail and say so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sockit_exec::{
    run_remote, Containment, ContainmentPath, ExecConfig, ExecRequest, ExitFrame, RemoteExit,
};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use sockit_wire::{Client, ClientError, ErrorCode, Incoming, Key};

/// Longest a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

struct Server {
    running: Running,
    key: Key,
    _dir: tempfile::TempDir,
}

async fn start(path: ContainmentPath, max_execs: usize) -> Server {
    let containment = match path {
        ContainmentPath::Cgroup => Containment::Cgroup,
        ContainmentPath::Subreaper => Containment::Subreaper,
    };
    start_with(containment, max_execs).await
}

async fn start_with(containment: Containment, max_execs: usize) -> Server {
    if let Err(e) = sockit_exec::resolve_containment(containment) {
        panic!(
            "exec containment `{containment}` is unavailable: {e}. The cgroup tests need root \
             and a writable cgroup v2 hierarchy (e.g. /sys/fs/cgroup mounted as cgroup2 \
             read-write, or a delegated cgroup)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecConfig::new(dir.path().to_owned());
    config.enabled = true;
    config.max_execs = max_execs;
    config.containment = containment;
    let mut table = CommandTable::new();
    sockit_exec::register(&mut table, config);
    let key = Key::from_bytes([0x22; 32]);
    let service = Arc::new(FramedService::new(
        table,
        FramedConfig {
            key: Some(key.clone()),
            ..FramedConfig::default()
        },
    ));
    let listener = bind_tcp(LOOPBACK_ANY, 128).unwrap();
    let addr = listener.local_addr().unwrap();
    let running = Running::spawn(addr, |token| {
        serve_tcp(listener, service, Limits::default(), token)
    });
    Server {
        running,
        key,
        _dir: dir,
    }
}

impl Server {
    async fn client(&self) -> Client {
        Client::connect(
            &self.running.addr.to_string(),
            Some(&self.key),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    }

    async fn exec(&self, argv: &[&str]) -> Result<ExitFrame, sockit_exec::ExecClientError> {
        let req = ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: false,
            timeout: None,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_remote(
            self.client().await,
            &req,
            None::<tokio::io::Empty>,
            &mut out,
            &mut err,
        )
        .await
    }
}

/// A run started over a raw connection, with the pids its output named.
struct Started {
    client: Client,
    /// `name pid` pairs printed by the command.
    pids: Vec<(String, i32)>,
}

impl Started {
    fn pid(&self, name: &str) -> i32 {
        self.pids
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, p)| p)
            .unwrap_or_else(|| panic!("no `{name}` pid in {:?}", self.pids))
    }

    /// Reads frames up to the exit frame.
    async fn exit(&mut self) -> ExitFrame {
        let conn = self.client.connection();
        loop {
            match conn.read_header().await.unwrap() {
                Some(Incoming::Header(h)) if h.get_str("cmd") == Some("exit") => {
                    return ExitFrame::parse(&h)
                }
                Some(Incoming::Header(_)) => {
                    conn.read_body_to_vec(1 << 20).await.unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Starts `script` under `sh -c` and reads its stdout until it has printed a line
/// `NAME PID` for each of `names`.
async fn start_script(
    s: &Server,
    script: &str,
    timeout_ms: Option<u64>,
    names: &[&str],
) -> Started {
    let mut client = s.client().await;
    let req = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        stdin: false,
        timeout: timeout_ms.map(Duration::from_millis),
    };
    let conn = client.connection();
    conn.send(&req.to_header()).await.unwrap();
    let mut text = Vec::new();
    let parse = |text: &[u8]| -> Vec<(String, i32)> {
        String::from_utf8_lossy(text)
            .lines()
            .filter_map(|l| {
                let (n, p) = l.split_once(' ')?;
                Some((n.to_owned(), p.trim().parse().ok()?))
            })
            .collect()
    };
    loop {
        match conn.read_header().await.unwrap() {
            Some(Incoming::Header(h)) if h.get_str("cmd") == Some("stdout") => {
                text.extend(conn.read_body_to_vec(1 << 20).await.unwrap());
                let pids = parse(&text);
                if names.iter().all(|n| pids.iter().any(|(m, _)| m == n)) {
                    return Started { client, pids };
                }
            }
            Some(Incoming::Header(h)) if h.get_str("cmd") == Some("started") => {}
            Some(Incoming::Header(h)) if h.get_str("cmd") == Some("stderr") => {
                let err = conn.read_body_to_vec(1 << 20).await.unwrap();
                panic!("command failed: {} ({h:?})", String::from_utf8_lossy(&err));
            }
            other => panic!("before the pids {names:?} were printed: {other:?}"),
        }
    }
}

/// Whether `pid` runs (a zombie, dead and waiting to be reaped, does not).
fn alive(pid: i32) -> bool {
    sockit_exec::subreaper::stat_of(pid).is_some_and(|s| !s.zombie)
}

/// `(process group, session)` of a live process, from /proc/PID/stat.
fn group_and_session(pid: i32) -> (i32, i32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &text[text.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// The cgroup v2 directory of a live process, if it is in a run's cgroup.
fn run_cgroup(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = sockit_exec::cgroup::unified_path(&text)?;
    path.contains("/sockit-exec-").then(|| path.to_owned())
}

/// Waits (bounded, polling) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that `pid` escaped the leader's process group, and (on the cgroup path) that it
/// is in the run's cgroup anyway; returns that cgroup.
fn check_escaped(path: ContainmentPath, leader: i32, pid: i32) -> Option<String> {
    assert!(alive(pid), "the grandchild {pid} is not running");
    let (pgid, _) = group_and_session(pid);
    let (leader_pgid, _) = group_and_session(leader);
    assert_ne!(
        pgid, leader_pgid,
        "the grandchild did not leave the process group, the test proves nothing"
    );
    let cg = run_cgroup(pid);
    match path {
        ContainmentPath::Cgroup => {
            let cg = cg.unwrap_or_else(|| panic!("grandchild {pid} is not in a run's cgroup"));
            assert_eq!(run_cgroup(leader).as_deref(), Some(cg.as_str()));
            Some(cg)
        }
        ContainmentPath::Subreaper => {
            assert_eq!(cg, None);
            None
        }
    }
}

/// A `setsid` grandchild (new session, new group).
const SETSID: &str =
    "setsid sh -c 'echo grandchild $$; exec sleep 444' & echo leader $$; sleep 300";
/// A `setpgid` grandchild (same session, new group).
const SETPGID: &str = "perl -e 'setpgrp(0, 0) or die; print \"grandchild $$\\n\"; \
                       exec \"sleep\", \"444\"' & echo leader $$; sleep 300";
/// A double fork: the grandchild's parent exits at once, so it is reparented.
const DOUBLE_FORK: &str =
    "(setsid sh -c 'echo grandchild $$; exec sleep 444' &); echo leader $$; sleep 300";

fn need_perl() {
    // A PATH lookup, not a test run: another test of this binary may be reaping or
    // killing process groups at that moment, which made a `perl -e1` probe fail although
    // perl was installed.
    sockit_testkit::peer::require("perl", "perl");
}

async fn killed_on_timeout(path: ContainmentPath, script: &str) {
    let s = start(path, 4).await;
    let mut run = start_script(&s, script, Some(1500), &["leader", "grandchild"]).await;
    let (leader, grandchild) = (run.pid("leader"), run.pid("grandchild"));
    let cgroup = check_escaped(path, leader, grandchild);
    let exit = run.exit().await;
    match &exit.exit {
        RemoteExit::Signal { reason, .. } => assert_eq!(reason.as_deref(), Some("timeout")),
        other => panic!("{other:?}"),
    }
    assert_eq!(exit.containment, Some(path));
    // The exit frame comes once every process of the run is dead.
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} outlived the timeout"
    );
    assert!(!alive(leader));
    if let Some(cg) = cgroup {
        let gone = |cg: &str| {
            let root = sockit_exec::cgroup::CgroupRoot::detect().unwrap();
            let name = cg.rsplit('/').next().unwrap().to_owned();
            !root.dir().join(name).exists()
        };
        assert!(gone(&cg), "the run's cgroup {cg} was not removed");
    }
}

async fn killed_on_disconnect(path: ContainmentPath, script: &str) {
    let s = start(path, 4).await;
    let run = start_script(&s, script, None, &["leader", "grandchild"]).await;
    let (leader, grandchild) = (run.pid("leader"), run.pid("grandchild"));
    check_escaped(path, leader, grandchild);
    drop(run);
    wait_for("the grandchild to die after the client left", || {
        !alive(grandchild) && !alive(leader)
    })
    .await;
}

async fn max_execs_counts_the_grandchild(path: ContainmentPath) {
    let s = start(path, 1).await;
    let mut run = start_script(&s, SETSID, None, &["leader", "grandchild"]).await;
    let (leader, grandchild) = (run.pid("leader"), run.pid("grandchild"));
    check_escaped(path, leader, grandchild);
    let busy = |r: &Result<ExitFrame, sockit_exec::ExecClientError>| {
        matches!(
            r,
            Err(sockit_exec::ExecClientError::Client(ClientError::Remote {
                code: ErrorCode::Busy,
                ..
            }))
        )
    };
    let r = s.exec(&["true"]).await;
    assert!(busy(&r), "{r:?}");
    // The leader dies on its own (not by the server); the setsid grandchild would live on
    // without containment, holding no slot.
    // SAFETY: sends a signal to the command's own shell.
    unsafe {
        libc::kill(leader, libc::SIGKILL);
    }
    let exit = run.exit().await;
    assert_eq!(exit.containment, Some(path));
    assert!(
        matches!(exit.exit, RemoteExit::Signal { signal, .. } if signal == libc::SIGKILL),
        "{exit:?}"
    );
    // The slot frees, and only once the grandchild is dead.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = s.exec(&["true"]).await;
        if busy(&r) {
            assert!(Instant::now() < deadline, "the slot was never freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert!(
            !alive(grandchild),
            "a new exec was accepted while the grandchild {grandchild} still ran"
        );
        let frame = r.unwrap();
        assert_eq!(frame.exit, RemoteExit::Code(0));
        assert_eq!(frame.containment, Some(path));
        break;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_setsid_grandchild_killed_on_timeout() {
    killed_on_timeout(ContainmentPath::Cgroup, SETSID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_setsid_grandchild_killed_on_disconnect() {
    killed_on_disconnect(ContainmentPath::Cgroup, SETSID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_setpgid_child_killed_on_timeout() {
    need_perl();
    killed_on_timeout(ContainmentPath::Cgroup, SETPGID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_setpgid_child_killed_on_disconnect() {
    need_perl();
    killed_on_disconnect(ContainmentPath::Cgroup, SETPGID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_double_fork_killed_on_timeout() {
    killed_on_timeout(ContainmentPath::Cgroup, DOUBLE_FORK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_max_execs_counts_the_grandchild() {
    max_execs_counts_the_grandchild(ContainmentPath::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_setsid_grandchild_killed_on_timeout() {
    killed_on_timeout(ContainmentPath::Subreaper, SETSID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_setsid_grandchild_killed_on_disconnect() {
    killed_on_disconnect(ContainmentPath::Subreaper, SETSID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_setpgid_child_killed_on_timeout() {
    need_perl();
    killed_on_timeout(ContainmentPath::Subreaper, SETPGID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_setpgid_child_killed_on_disconnect() {
    need_perl();
    killed_on_disconnect(ContainmentPath::Subreaper, SETPGID).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_double_fork_killed_on_timeout() {
    killed_on_timeout(ContainmentPath::Subreaper, DOUBLE_FORK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_double_fork_killed_on_disconnect() {
    killed_on_disconnect(ContainmentPath::Subreaper, DOUBLE_FORK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_max_execs_counts_the_grandchild() {
    max_execs_counts_the_grandchild(ContainmentPath::Subreaper).await;
    assert!(sockit_exec::subreaper::is_subreaper());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reports_the_path_it_took() {
    assert_eq!(
        ExecConfig::new("/".into()).containment,
        Containment::Auto,
        "auto is the default"
    );
    let s = start_with(Containment::Auto, 4).await;
    let frame = s.exec(&["true"]).await.unwrap();
    assert_eq!(frame.exit, RemoteExit::Code(0));
    // CI has a writable cgroup v2: auto must take it.
    assert_eq!(
        frame.containment,
        Some(ContainmentPath::Cgroup),
        "auto fell back to the subreaper: no writable cgroup v2 here"
    );
}
