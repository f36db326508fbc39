//! The `exec` command: run a program without a shell in the data root, stream its output
//! as frames while it runs, forward the client's stdin, and end with its exit status.
//!
//! ```text
//! client                                   server
//!   {cmd:exec, argv, stdin, timeout_ms} ->
//!                                       <- {status:ok, cmd:started, pid}
//!   {cmd:stdin, size:n} + n bytes        ->        (any number, interleaved)
//!                                       <- {cmd:stdout|stderr, size:n} + n bytes
//!   {cmd:stdin, size:0}  (EOF)           ->
//!   {cmd:keepalive}      (while quiet)   ->
//!                                       <- {status:ok, cmd:exit, code | signal, reason?}
//! ```
//!
//! Everything the child starts is contained ([`crate::contain`]: a cgroup per run, or the
//! subreaper fallback, plus its process group) and killed whole (SIGKILL) when the child
//! exits (leftover background processes), on timeout, when the output cap is reached, when
//! the client disconnects, and when the server stops. The run holds its `--max-execs` slot
//! until all of them are dead; the exit frame says which containment ran.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_wire::framed::{Command, CommandError, CommandTable, ServerConnection, Session};
use sockit_wire::header::Message;
use sockit_wire::{ErrorCode, FrameError, Header, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use crate::contain::{Backend, Containment, SpawnError};
use crate::messages::{Keepalive, Output, Started, Stdin};
use crate::request::{ExecRequest, ExitFrame, RemoteExit, Stream};

/// Settings of the exec service (each has a `sockit serve` flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// Whether exec is allowed at all (`--allow-exec`; also needs a key).
    pub enabled: bool,
    /// Longest run (`--exec-timeout`); a client's `timeout_ms` can only shorten it.
    pub timeout: Duration,
    /// Most output bytes (stdout + stderr) one run may send (`--exec-output-cap`).
    pub output_cap: u64,
    /// Most runs at once (`--max-execs`); one more gets `busy`.
    pub max_execs: usize,
    /// Working directory of every run: the data root.
    pub cwd: PathBuf,
    /// How every process a run starts is contained and killed (`--exec-containment`).
    pub containment: Containment,
}

impl ExecConfig {
    /// Defaults for a data root: disabled, 5 min, 64 MiB, 4 at once, containment `auto`.
    pub fn new(cwd: PathBuf) -> Self {
        Self {
            enabled: false,
            timeout: Duration::from_secs(300),
            output_cap: 64 * 1024 * 1024,
            max_execs: 4,
            cwd,
            containment: Containment::Auto,
        }
    }
}

/// How long output may keep draining after the child exited and its group was killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Size of one read from the child's pipes.
const PIPE_CHUNK: usize = 64 * 1024;

/// The `exec` command.
#[derive(Debug)]
pub struct Exec {
    config: ExecConfig,
    slots: Arc<Semaphore>,
    /// The containment resolved at start, or why the requested one is unavailable.
    backend: Result<Backend, String>,
}

/// Frames that only make sense inside an `exec` and may arrive just after it ended (the
/// client's stdin raced the exit): read and dropped, with no reply.
#[derive(Debug)]
struct LateFrame;

#[async_trait]
impl Command for LateFrame {
    async fn run(
        &self,
        _req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        conn.discard_body().await?;
        Ok(())
    }
}

/// Adds `exec` (and the no-reply `stdin`/`keepalive` stragglers) to `table`. When exec is
/// enabled, the containment is resolved now (see [`crate::contain::resolve`]); if the one
/// asked for is unavailable, the reason is logged and every `exec` is refused with
/// `internal` (call [`crate::contain::resolve`] first to refuse to start instead).
pub fn register(table: &mut CommandTable, config: ExecConfig) {
    let slots = Arc::new(Semaphore::new(config.max_execs.max(1)));
    let backend = if config.enabled {
        match crate::contain::resolve(config.containment) {
            Ok(b) => {
                tracing::info!(containment = %b.path(), "exec containment");
                Ok(b)
            }
            Err(e) => {
                tracing::error!(error = %e, requested = %config.containment, "exec containment unavailable; every exec will be refused");
                Err(e.to_string())
            }
        }
    } else {
        Err("exec is disabled".to_owned())
    };
    table.register(
        "exec",
        Arc::new(Exec {
            config,
            slots,
            backend,
        }),
    );
    table.register("stdin", Arc::new(LateFrame));
    table.register("keepalive", Arc::new(LateFrame));
}

/// What the client sent during a run.
enum Input {
    Chunk(Bytes),
    Eof,
    Keepalive,
    Gone(String),
}

/// Reads the next client input (cancel-safe: the codec keeps where it was).
async fn next_input(conn: &mut ServerConnection) -> Input {
    loop {
        if conn.body_remaining() > 0 {
            return match conn.read_body_chunk().await {
                Ok(Some(b)) => Input::Chunk(b),
                Ok(None) => continue,
                Err(e) => Input::Gone(e.to_string()),
            };
        }
        match conn.read_header().await {
            Ok(None) => return Input::Gone("client closed the connection".into()),
            Err(e) => return Input::Gone(e.to_string()),
            Ok(Some(Incoming::Invalid(e))) => return Input::Gone(format!("bad frame: {e}")),
            Ok(Some(Incoming::Header(h))) => match h.cmd() {
                c if c == Stdin::CMD && conn.body_remaining() == 0 => return Input::Eof,
                c if c == Stdin::CMD => continue,
                c if c == Keepalive::CMD => return Input::Keepalive,
                other => return Input::Gone(format!("unexpected `{other:?}` frame during exec")),
            },
        }
    }
}

/// Why the run ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Timeout,
    OutputCap,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::OutputCap => "output_cap",
        }
    }
}

fn spawn_reader<R>(mut pipe: R, stream: Stream, tx: mpsc::Sender<(Stream, Bytes)>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = vec![0u8; PIPE_CHUNK];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((stream, Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
}

#[async_trait]
impl Command for Exec {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        if !self.config.enabled {
            return Err(CommandError::reply(
                ErrorCode::Denied,
                "exec is disabled on this server (it needs `sockit serve --allow-exec --key FILE`)",
            ));
        }
        if !session.authenticated {
            return Err(CommandError::reply(
                ErrorCode::Denied,
                "exec needs an authenticated connection (--key)",
            ));
        }
        let request = ExecRequest::parse(&req)
            .map_err(|e| CommandError::reply(ErrorCode::BadRequest, e.to_string()))?;
        let backend = self.backend.as_ref().map_err(|_| {
            CommandError::reply(
                ErrorCode::Internal,
                format!(
                    "exec containment `{}` is unavailable on this server (see its log)",
                    self.config.containment
                ),
            )
        })?;
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(CommandError::reply(
                ErrorCode::Busy,
                format!(
                    "the server already runs {} commands (--max-execs); try again later",
                    self.config.max_execs
                ),
            ));
        };
        let limit = request
            .timeout
            .map_or(self.config.timeout, |t| t.min(self.config.timeout));
        let mut cmd = tokio::process::Command::new(&request.argv[0]);
        cmd.args(&request.argv[1..])
            .current_dir(&self.config.cwd)
            .env_remove("SOCKIT_KEY")
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let (mut child, run) = match backend.spawn(&mut cmd, permit) {
            Ok(c) => c,
            Err(SpawnError::Contain(e)) => {
                tracing::error!(error = %e, "exec: cannot create the command's cgroup");
                return Err(CommandError::reply(
                    ErrorCode::Internal,
                    "cannot set up the command's containment (see the server log)",
                ));
            }
            Err(SpawnError::Spawn(e)) => {
                let (code, what) = match e.kind() {
                    std::io::ErrorKind::NotFound => (ErrorCode::NotFound, "no such program"),
                    std::io::ErrorKind::PermissionDenied => {
                        (ErrorCode::Denied, "permission denied running")
                    }
                    _ => (ErrorCode::Internal, "cannot run"),
                };
                return Err(CommandError::reply(
                    code,
                    format!(
                        "{what} `{}` (no shell: give the program and its arguments)",
                        request.argv[0]
                    ),
                ));
            }
        };
        let pid = child.id().unwrap_or(0);
        tracing::info!(peer = %session.peer, pid, argv = ?request.argv, containment = %run.path(), "exec started");
        let started = std::time::Instant::now();
        conn.send(&Header::reply(&Started { pid })?).await?;

        let (out_tx, mut out_rx) = mpsc::channel::<(Stream, Bytes)>(16);
        if let Some(p) = child.stdout.take() {
            spawn_reader(p, Stream::Stdout, out_tx.clone());
        }
        if let Some(p) = child.stderr.take() {
            spawn_reader(p, Stream::Stderr, out_tx.clone());
        }
        drop(out_tx);
        let mut stdin_tx = child.stdin.take().map(|mut pipe| {
            let (tx, mut rx) = mpsc::channel::<Bytes>(8);
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if pipe.write_all(&b).await.is_err() {
                        return; // the child closed its stdin; the rest is dropped
                    }
                }
            });
            tx
        });

        let deadline = tokio::time::Instant::now() + limit;
        let mut pending: Option<Bytes> = None;
        let mut client_eof = !request.stdin;
        let mut sent: u64 = 0;
        let mut reason: Option<Reason> = None;
        let mut status: Option<std::process::ExitStatus> = None;
        let mut outputs_open = true;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        // Bounded: every branch either makes progress or ends the run by a deadline.
        while outputs_open || status.is_none() {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline), if reason.is_none() && status.is_none() => {
                    reason = Some(Reason::Timeout);
                    run.kill();
                }
                _ = tokio::time::sleep_until(drain_deadline.unwrap_or(deadline)), if drain_deadline.is_some() => {
                    break;
                }
                s = child.wait(), if status.is_none() => {
                    status = Some(s?);
                    run.leader_reaped();
                    // Leftover background processes go with the child, so its pipes close
                    // and the run ends.
                    run.kill();
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                }
                out = out_rx.recv(), if outputs_open => match out {
                    None => outputs_open = false,
                    Some((_, _)) if reason == Some(Reason::OutputCap) => {}
                    Some((stream, mut bytes)) => {
                        let room = self.config.output_cap.saturating_sub(sent);
                        if bytes.len() as u64 > room {
                            bytes.truncate(room as usize);
                            reason = Some(Reason::OutputCap);
                            run.kill();
                        }
                        if !bytes.is_empty() {
                            sent += bytes.len() as u64;
                            let h = Header::encode(&Output { cmd: stream, size: bytes.len() as u64 })?;
                            if let Err(e) = conn.send_with_body(&h, bytes).await {
                                tracing::info!(peer = %session.peer, pid, error = %e, "exec client gone; killing the command");
                                return Err(e.into());
                            }
                        }
                    }
                },
                permit = async {
                    match stdin_tx.clone() {
                        Some(tx) => tx.reserve_owned().await,
                        None => std::future::pending().await,
                    }
                }, if pending.is_some() && stdin_tx.is_some() => {
                    match permit {
                        Ok(p) => {
                            if let Some(b) = pending.take() {
                                p.send(b);
                            }
                        }
                        Err(_) => {
                            pending = None;
                            stdin_tx = None;
                        }
                    }
                }
                input = next_input(conn), if pending.is_none() => match input {
                    Input::Chunk(b) if !client_eof => {
                        if stdin_tx.is_some() {
                            pending = Some(b);
                        }
                    }
                    Input::Chunk(_) | Input::Keepalive => {}
                    Input::Eof => {
                        client_eof = true;
                        stdin_tx = None;
                    }
                    Input::Gone(why) => {
                        tracing::info!(peer = %session.peer, pid, %why, "exec client gone; killing the command");
                        run.kill();
                        return Err(FrameError::Truncated("exec stream").into());
                    }
                },
            }
        }
        drop(stdin_tx);
        let status = match status {
            Some(s) => s,
            None => {
                let s = child.wait().await?;
                run.leader_reaped();
                s
            }
        };
        // Every process of the run is dead (and its slot free) before the exit frame.
        let containment = run.finish().await;
        use std::os::unix::process::ExitStatusExt;
        let message = reason.map(|r| match r {
            Reason::Timeout => format!("killed after the time limit of {limit:?}"),
            Reason::OutputCap => format!(
                "killed after the output cap of {} bytes",
                self.config.output_cap
            ),
        });
        let signal = |sig: i32| RemoteExit::Signal {
            signal: sig,
            reason: reason.map(|r| r.as_str().to_owned()),
            message: message.clone(),
        };
        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => RemoteExit::Code(code),
            (_, Some(sig)) => signal(sig),
            (None, None) => signal(libc::SIGKILL),
        };
        tracing::info!(peer = %session.peer, pid, ?status, reason = reason.map(Reason::as_str), output = sent, secs = started.elapsed().as_secs_f64(), %containment, "exec done");
        let exit = ExitFrame {
            exit,
            containment: Some(containment),
        }
        .to_header();
        conn.send(&exit).await?;
        Ok(())
    }
}
