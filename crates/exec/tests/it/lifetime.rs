//! docs/exec.md: every process of a run is killed "when the child itself exits
//! (background processes it left behind go with it)" and "when the server stops".
//! Both on the cgroup and on the subreaper path, with one background process in the
//! command's group and one that left it (`setsid`).
//!
//! The cgroup tests need root and a writable cgroup v2 hierarchy (CI has both); without
//! them they fail and say so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockit_exec::{
    run_remote, Containment, ContainmentPath, ExecConfig, ExecRequest, ExitFrame, RemoteExit,
};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use sockit_wire::{Client, Incoming, Key};
use tokio_util::sync::CancellationToken;

/// Longest a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Leaves two processes behind: `bg` in the command's process group, `grandchild` in a
/// session of its own (`gsid`, beside the leader's `lsid`). A FIFO makes the shell wait
/// until the grandchild has named itself, so every pid is printed before anything can be
/// killed.
const LEAVES_TWO_BEHIND: &str = "sleep 444 >/dev/null 2>&1 & echo bg $!; \
     mkfifo ready; \
     setsid sh -c '{ echo grandchild $$; echo gsid $(cut -d\" \" -f6 /proc/$$/stat); } > ready; \
                   exec sleep 445' & \
     cat ready; echo lsid $(cut -d\" \" -f6 /proc/$$/stat); echo leader $$";

fn key() -> Key {
    Key::from_bytes([0x33; 32])
}

fn check_containment(path: ContainmentPath) -> Containment {
    let containment = match path {
        ContainmentPath::Cgroup => Containment::Cgroup,
        ContainmentPath::Subreaper => Containment::Subreaper,
    };
    if let Err(e) = sockit_exec::resolve_containment(containment) {
        panic!(
            "exec containment `{containment}` is unavailable: {e}. The cgroup tests need root \
             and a writable cgroup v2 hierarchy (e.g. /sys/fs/cgroup mounted as cgroup2 \
             read-write, or a delegated cgroup)"
        );
    }
    containment
}

/// The framed service with exec enabled on `path`, working in `dir`.
fn service(path: ContainmentPath, dir: &std::path::Path) -> Arc<FramedService> {
    let mut config = ExecConfig::new(dir.to_owned());
    config.enabled = true;
    config.containment = check_containment(path);
    let mut table = CommandTable::new();
    sockit_exec::register(&mut table, config);
    Arc::new(FramedService::new(
        table,
        FramedConfig {
            key: Some(key()),
            ..FramedConfig::default()
        },
    ))
}

fn request(script: &str) -> ExecRequest {
    ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        stdin: false,
        timeout: None,
    }
}

async fn client(addr: SocketAddr) -> Client {
    Client::connect(&addr.to_string(), Some(&key()), Duration::from_secs(10))
        .await
        .unwrap()
}

/// `NAME PID` lines of the command's output.
fn pids(out: &[u8]) -> Vec<(String, i32)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let (n, p) = l.split_once(' ')?;
            Some((n.to_owned(), p.trim().parse().ok()?))
        })
        .collect()
}

fn pid(pids: &[(String, i32)], name: &str) -> i32 {
    pids.iter()
        .find(|(n, _)| n == name)
        .map(|&(_, p)| p)
        .unwrap_or_else(|| panic!("no `{name}` pid in {pids:?}"))
}

/// Whether `pid` runs (a zombie, dead and waiting to be reaped, does not).
fn alive(pid: i32) -> bool {
    sockit_exec::subreaper::stat_of(pid).is_some_and(|s| !s.zombie)
}

fn wait_dead(what: &str, pids: &[i32]) {
    let deadline = Instant::now() + PATIENCE;
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "still running: {what} {pids:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn leftovers_die_when_the_command_exits(path: ContainmentPath) {
    let dir = tempfile::tempdir().unwrap();
    let listener = bind_tcp(LOOPBACK_ANY, 128).unwrap();
    let service = service(path, dir.path());
    let server = Running::spawn(listener.local_addr().unwrap(), |token| {
        serve_tcp(listener, service, Limits::default(), token)
    });
    let addr = server.addr;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit: ExitFrame = run_remote(
        client(addr).await,
        &request(LEAVES_TWO_BEHIND),
        None::<tokio::io::Empty>,
        &mut out,
        &mut err,
    )
    .await
    .unwrap();
    assert_eq!(
        exit.exit,
        RemoteExit::Code(0),
        "stderr: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(exit.containment, Some(path));
    let pids = pids(&out);
    let (bg, grandchild) = (pid(&pids, "bg"), pid(&pids, "grandchild"));
    assert_ne!(
        pid(&pids, "gsid"),
        pid(&pids, "lsid"),
        "the grandchild did not leave the session, the test proves nothing"
    );
    // The exit frame comes once every process of the run is dead.
    assert!(!alive(bg), "background process {bg} outlived its command");
    assert!(
        !alive(grandchild),
        "setsid grandchild {grandchild} outlived its command"
    );
}

/// Starts a run of `LEAVES_TWO_BEHIND` followed by a long sleep, and stops the server
/// the way `sockit serve` stops: shutdown, the drain deadline, then the runtime ends.
fn leftovers_die_when_the_server_stops(path: ContainmentPath) {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let limits = Limits {
        drain_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (addr, serving) = {
        let _ctx = server.enter();
        let listener = bind_tcp(LOOPBACK_ANY, 128).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = server.spawn(serve_tcp(
            listener,
            service(path, dir.path()),
            limits,
            shutdown.clone(),
        ));
        (addr, serving)
    };

    let test = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let script = format!("{LEAVES_TWO_BEHIND}; sleep 300");
    let (mut client, names) = test.block_on(async {
        let mut c = client(addr).await;
        let conn = c.connection();
        conn.send(&request(&script).to_header()).await.unwrap();
        let mut out = Vec::new();
        // Bounded by the command: it prints three lines, then sleeps.
        loop {
            match conn.read_header().await.unwrap() {
                Some(Incoming::Header(h)) if h.get_str("cmd") == Some("stdout") => {
                    out.extend(conn.read_body_to_vec(1 << 20).await.unwrap());
                    let p = pids(&out);
                    if ["bg", "grandchild", "leader"]
                        .iter()
                        .all(|n| p.iter().any(|(m, _)| m == n))
                    {
                        return (c, p);
                    }
                }
                Some(Incoming::Header(h)) if h.get_str("cmd") == Some("started") => {}
                other => panic!("before the pids were printed: {other:?}"),
            }
        }
    });
    let all = [
        pid(&names, "leader"),
        pid(&names, "bg"),
        pid(&names, "grandchild"),
    ];
    assert!(
        all.iter().all(|&p| alive(p)),
        "{names:?} run before the stop"
    );
    assert_ne!(
        pid(&names, "gsid"),
        pid(&names, "lsid"),
        "the grandchild did not leave the session, the test proves nothing"
    );

    shutdown.cancel();
    server.block_on(serving).unwrap().unwrap();
    // What `sockit serve` does after its drain deadline: the runtime, and with it every
    // connection still open, ends.
    server.shutdown_timeout(Duration::from_millis(100));
    wait_dead("after the server stopped", &all);
    // The client's connection ends with the server.
    test.block_on(async {
        let conn = client.connection();
        // Bounded: the server's socket is closed, so this reaches EOF or an error.
        while let Ok(Some(frame)) = conn.read_header().await {
            if let Incoming::Header(_) = frame {
                let _ = conn.read_body_to_vec(1 << 20).await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_leftovers_killed_when_the_command_exits_normally() {
    leftovers_die_when_the_command_exits(ContainmentPath::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subreaper_leftovers_killed_when_the_command_exits_normally() {
    leftovers_die_when_the_command_exits(ContainmentPath::Subreaper).await;
}

#[test]
fn cgroup_run_killed_when_the_server_stops() {
    leftovers_die_when_the_server_stops(ContainmentPath::Cgroup);
}

#[test]
fn subreaper_run_killed_when_the_server_stops() {
    leftovers_die_when_the_server_stops(ContainmentPath::Subreaper);
}
