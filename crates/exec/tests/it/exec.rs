//! Remote exec over real sockets: streaming order, stdin, exit codes, timeouts and
//! disconnects killing the whole process group, and refusals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sockit_exec::{run_remote, ExecConfig, ExecRequest, RemoteExit};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use sockit_wire::{Client, ClientError, ErrorCode, Incoming, Key};
use tokio::io::AsyncWriteExt;

struct Server {
    running: Running,
    key: Option<Key>,
    _dir: tempfile::TempDir,
}

fn test_key() -> Key {
    Key::from_bytes([0x11; 32])
}

async fn start(enabled: bool, with_key: bool, tweak: impl FnOnce(&mut ExecConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecConfig::new(dir.path().to_owned());
    config.enabled = enabled;
    tweak(&mut config);
    let mut table = CommandTable::new();
    sockit_exec::register(&mut table, config);
    let key = with_key.then(test_key);
    let service = Arc::new(FramedService::new(
        table,
        FramedConfig {
            key: key.clone(),
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
            self.key.as_ref(),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    }

    async fn exec(
        &self,
        argv: &[&str],
        timeout_ms: Option<u64>,
    ) -> (
        Result<RemoteExit, sockit_exec::ExecClientError>,
        Vec<u8>,
        Vec<u8>,
    ) {
        let req = ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: false,
            timeout: timeout_ms.map(Duration::from_millis),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run_remote(
            self.client().await,
            &req,
            None::<tokio::io::Empty>,
            &mut out,
            &mut err,
        )
        .await
        .map(|f| f.exit);
        (r, out, err)
    }
}

/// Whether `pid` runs (a zombie, dead and waiting to be reaped, does not).
fn alive(pid: i32) -> bool {
    sockit_exec::subreaper::stat_of(pid).is_some_and(|s| !s.zombie)
}

/// Waits (bounded) until none of `pids` exists.
fn wait_dead(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_order_is_preserved_per_stream() {
    let s = start(true, true, |_| {}).await;
    let script = "i=1; while [ $i -le 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let (r, out, err) = s.exec(&["sh", "-c", script], None).await;
    assert_eq!(r.unwrap(), RemoteExit::Code(0));
    let want_out: String = (1..=300).map(|i| format!("out{i}\n")).collect();
    let want_err: String = (1..=300).map(|i| format!("err{i}\n")).collect();
    assert_eq!(String::from_utf8(out).unwrap(), want_out);
    assert_eq!(String::from_utf8(err).unwrap(), want_err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_missing_program() {
    let s = start(true, true, |_| {}).await;
    assert_eq!(
        s.exec(&["sh", "-c", "exit 7"], None).await.0.unwrap(),
        RemoteExit::Code(7)
    );
    assert_eq!(
        s.exec(&["false"], None).await.0.unwrap(),
        RemoteExit::Code(1)
    );
    assert_eq!(s.exec(&["true"], None).await.0.unwrap().exit_code(), 0);
    let killed = s
        .exec(&["sh", "-c", "kill -TERM $$"], None)
        .await
        .0
        .unwrap();
    assert_eq!(killed.exit_code(), 128 + 15);
    // No shell: a shell line is one program name that does not exist.
    let (r, _, _) = s.exec(&["echo hi; rm -rf /"], None).await;
    match r {
        Err(sockit_exec::ExecClientError::Client(ClientError::Remote { code, .. })) => {
            assert_eq!(code, ErrorCode::NotFound)
        }
        other => panic!("{other:?}"),
    }
    // The working directory is the data root.
    let (r, out, _) = s.exec(&["pwd"], None).await;
    assert_eq!(r.unwrap(), RemoteExit::Code(0));
    assert_eq!(
        std::path::Path::new(String::from_utf8(out).unwrap().trim())
            .canonicalize()
            .unwrap(),
        s._dir.path().canonicalize().unwrap()
    );
}

/// An AsyncWrite that reports what it got on a channel (to react to live output).
struct Tap(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl tokio::io::AsyncWrite for Tap {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let _ = self.0.send(buf.to_vec());
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_live_and_stdin_is_forwarded() {
    let s = start(true, true, |_| {}).await;
    let req = ExecRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo ready; read line; echo got:$line; cat".into(),
        ],
        stdin: true,
        timeout: None,
    };
    let (stdin_w, stdin_r) = tokio::io::duplex(1024);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = Tap(tx);
    let mut err = Vec::new();
    let client = s.client().await;
    let run =
        tokio::spawn(
            async move { run_remote(client, &req, Some(stdin_r), &mut out, &mut err).await },
        );
    // The command waits for a line, so "ready" can only arrive if output streams live.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, b"ready\n");
    let mut stdin_w = stdin_w;
    stdin_w.write_all(b"hello\nrest of input\n").await.unwrap();
    drop(stdin_w); // EOF ends `cat`
    let exit = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .exit;
    assert_eq!(exit, RemoteExit::Code(0));
    let mut all = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        all.extend(chunk);
    }
    assert_eq!(
        String::from_utf8(all).unwrap(),
        "got:hello\nrest of input\n"
    );
}

fn pids_in(out: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_process_group() {
    let s = start(true, true, |_| {}).await;
    let (r, out, _) = s
        .exec(
            &[
                "sh",
                "-c",
                "sleep 300 & echo $!; sleep 301 & echo $!; echo $$; wait",
            ],
            Some(500),
        )
        .await;
    let exit = r.unwrap();
    match &exit {
        RemoteExit::Signal { reason, .. } => assert_eq!(reason.as_deref(), Some("timeout")),
        other => panic!("{other:?}"),
    }
    assert_eq!(exit.exit_code(), 124);
    let pids = pids_in(&out);
    assert_eq!(pids.len(), 3, "{}", String::from_utf8_lossy(&out));
    assert!(
        wait_dead(&pids, Duration::from_secs(10)),
        "group members survived: {pids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timeout_caps_client_timeout() {
    let s = start(true, true, |c| c.timeout = Duration::from_millis(300)).await;
    let (r, _, _) = s.exec(&["sleep", "300"], Some(600_000)).await;
    assert_eq!(r.unwrap().exit_code(), 124);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_kills_the_process_group() {
    let s = start(true, true, |_| {}).await;
    let mut client = s.client().await;
    let req = ExecRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "sleep 300 & echo $!; echo $$; wait".into(),
        ],
        stdin: false,
        timeout: None,
    };
    let conn = client.connection();
    conn.send(&req.to_header()).await.unwrap();
    let mut text = Vec::new();
    // started, then output frames until both pids are known.
    for _ in 0..20 {
        match conn.read_header().await.unwrap() {
            Some(Incoming::Header(h)) if h.get_str("cmd") == Some("stdout") => {
                text.extend(conn.read_body_to_vec(1 << 20).await.unwrap());
                if pids_in(&text).len() >= 2 {
                    break;
                }
            }
            Some(Incoming::Header(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let pids = pids_in(&text);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    drop(client);
    assert!(
        wait_dead(&pids, Duration::from_secs(10)),
        "still running after disconnect: {pids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_kills_the_command() {
    let s = start(true, true, |c| c.output_cap = 10_000).await;
    let (r, out, _) = s.exec(&["yes"], None).await;
    match r.unwrap() {
        RemoteExit::Signal { reason, .. } => assert_eq!(reason.as_deref(), Some("output_cap")),
        other => panic!("{other:?}"),
    }
    assert_eq!(out.len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_without_key_or_without_allow_exec() {
    // Enabled but the server has no key: nobody is authenticated.
    let s = start(true, false, |_| {}).await;
    let (r, _, _) = s.exec(&["true"], None).await;
    assert!(
        r.as_ref().is_err_and(sockit_exec::client::is_denied),
        "{r:?}"
    );
    // A key but exec not allowed.
    let s = start(false, true, |_| {}).await;
    let (r, _, _) = s.exec(&["true"], None).await;
    assert!(
        r.as_ref().is_err_and(sockit_exec::client::is_denied),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execs_are_limited() {
    let s = start(true, true, |c| c.max_execs = 1).await;
    let mut first = s.client().await;
    let req = ExecRequest {
        argv: vec!["sleep".into(), "300".into()],
        stdin: false,
        timeout: None,
    };
    let started = first.request(&req.to_header()).await.unwrap();
    assert_eq!(started.get_str("cmd"), Some("started"));
    let (r, _, _) = s.exec(&["true"], None).await;
    match r {
        Err(sockit_exec::ExecClientError::Client(ClientError::Remote { code, .. })) => {
            assert_eq!(code, ErrorCode::Busy)
        }
        other => panic!("{other:?}"),
    }
    // Disconnecting kills the running command and frees its slot: a new exec gets in
    // (polled, bounded: the kill and the slot's release follow the disconnect).
    drop(first);
    for attempt in 0.. {
        match s.exec(&["true"], None).await.0 {
            Ok(exit) => {
                assert_eq!(exit, RemoteExit::Code(0));
                break;
            }
            Err(sockit_exec::ExecClientError::Client(ClientError::Remote {
                code: ErrorCode::Busy,
                ..
            })) => assert!(attempt < 500, "the slot was never released"),
            Err(e) => panic!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
