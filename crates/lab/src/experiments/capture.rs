//! `sockit lab capture -- COMMAND`: runs a client (and its server) in the two namespaces
//! while capturing the client's interface, then prints the exchange as a decoded packet
//! timeline and optionally writes it as a pcap file for Wireshark or `tshark -r`.
//!
//! The server command runs in the server's namespace and must be ready (an address file
//! written, or a port listening) before the client starts in the client's namespace with
//! `{server}` in its arguments replaced by the server's address. When the client exits,
//! the capture goes on until the connections have closed (only TIME_WAIT left on the
//! client, nothing but listeners on the server) and the wire has been quiet for a moment,
//! so the final FIN/ACK exchange is in the timeline.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{LabError, Result};
use crate::experiments::netns::{NetnsPair, CLIENT_IP, CLIENT_MAC, SERVER_IP, SERVER_MAC};
use crate::experiments::packet_socket::PacketCapture;
use crate::experiments::pcap;
use crate::experiments::proc_net::TcpState;
use crate::experiments::say;
use crate::experiments::timeline::{self, Entry, TimelineConfig};

/// When the server is ready for the client.
#[derive(Debug, Clone)]
pub enum Ready {
    /// Once this file exists and is not empty (`sockit serve --addr-file`).
    AddrFile(PathBuf),
    /// Once a TCP socket listens on this port in the server's namespace.
    TcpListen(u16),
    /// At once.
    Now,
}

/// What to run and capture.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// The server command (program and arguments), run in the server's namespace.
    pub server: Option<Vec<OsString>>,
    /// When the server is ready.
    pub ready: Ready,
    /// The client command, run in the client's namespace; `{server}` and `{client}` in
    /// its arguments become the two addresses.
    pub client: Vec<OsString>,
    /// Written to the client's standard input, which is then closed.
    pub stdin: Vec<u8>,
    /// Also write the frames to this pcap file.
    pub pcap: Option<PathBuf>,
    /// UDP ports whose requests start TFTP transfers, for decoding.
    pub tftp_ports: Vec<u16>,
    /// Hang guard for the server to become ready.
    pub ready_timeout: Duration,
    /// Hang guard for the client to exit (it is killed then).
    pub client_timeout: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            server: None,
            ready: Ready::Now,
            client: Vec::new(),
            stdin: Vec::new(),
            pcap: None,
            tftp_ports: vec![69, 6969],
            ready_timeout: Duration::from_secs(30),
            client_timeout: Duration::from_secs(60),
        }
    }
}

/// What the capture saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaptureReport {
    /// The namespaces used (deleted by now).
    pub namespaces: Vec<String>,
    /// The client's exit code (`None`: killed by a signal or by the hang guard).
    pub client_status: Option<i32>,
    /// What the client wrote to standard output.
    pub client_stdout: String,
    /// What the client wrote to standard error.
    pub client_stderr: String,
    /// The pcap file written, if any.
    pub pcap: Option<PathBuf>,
    /// The decoded frames.
    pub timeline: Vec<Entry>,
}

/// A child process killed and reaped when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects a child's output stream on a thread, up to 1 MiB.
fn drain(stream: Option<impl Read + Send + 'static>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut s) = stream {
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
                if b.len() < 1 << 20 {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
        });
    }
    buf
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

fn shown(cmd: &[OsString]) -> String {
    cmd.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn wait_ready(
    pair: &NetnsPair,
    cfg: &CaptureConfig,
    server: &mut Option<ChildGuard>,
    log: &Arc<Mutex<Vec<u8>>>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let ready = match &cfg.ready {
            Ready::Now => true,
            Ready::AddrFile(p) => std::fs::metadata(p).is_ok_and(|m| m.len() > 0),
            Ready::TcpListen(port) => pair
                .server
                .tcp_table()?
                .iter()
                .any(|e| e.local.port() == *port && e.state == TcpState::Listen),
        };
        if ready {
            return Ok(());
        }
        if let Some(g) = server.as_mut() {
            if let Ok(Some(status)) = g.0.try_wait() {
                return Err(LabError::Invalid(format!(
                    "the server exited with {status} before it was ready: {}",
                    text(log).trim()
                )));
            }
        }
        if start.elapsed() > cfg.ready_timeout {
            return Err(LabError::Invalid(format!(
                "the server was not ready after {:?}: {}",
                cfg.ready_timeout,
                text(log).trim()
            )));
        }
        // Polling for the server's readiness signal (bounded by `ready_timeout`).
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether both namespaces' TCP connections have finished closing.
fn settled(pair: &NetnsPair) -> Result<bool> {
    let client_open = pair
        .client
        .tcp_table()?
        .iter()
        .any(|e| e.state != TcpState::TimeWait && e.state != TcpState::Listen);
    let server_open = pair.server.tcp_table()?.iter().any(|e| {
        *e.remote.ip() == CLIENT_IP && e.state != TcpState::TimeWait && e.state != TcpState::Listen
    });
    Ok(!client_open && !server_open)
}

/// Runs the exchange and returns its timeline, narrating on `out`.
///
/// # Errors
/// When not root, the namespaces cannot be set up, a command cannot be started, or the
/// server does not become ready.
pub fn run(cfg: &CaptureConfig, out: &mut dyn Write) -> Result<CaptureReport> {
    let Some((program, args)) = cfg.client.split_first() else {
        return Err(LabError::Invalid("no client command given".into()));
    };
    let pair = NetnsPair::create("capture")?;
    let mut report = CaptureReport {
        namespaces: pair.names().iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    say(
        out,
        format!(
            "DOES: namespaces {} (server {SERVER_IP}) and {} (client {CLIENT_IP}), joined by a veth pair; capturing on the client's side.",
            pair.server.name(),
            pair.client.name()
        ),
    );
    let mut log = Arc::new(Mutex::new(Vec::new()));
    let mut server = None;
    if let Some((sprog, sargs)) = cfg.server.as_ref().and_then(|s| s.split_first()) {
        say(
            out,
            format!(
                "DOES: server: {}",
                shown(cfg.server.as_deref().unwrap_or_default())
            ),
        );
        let mut child = pair
            .server
            .command(sprog)
            .args(sargs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::io(format!("cannot start {}", sprog.to_string_lossy()), e))?;
        log = drain(child.stderr.take());
        server = Some(ChildGuard(child));
    }
    wait_ready(&pair, cfg, &mut server, &log)?;
    let capture = PacketCapture::start(&pair.client, &pair.client_if)?;
    let args: Vec<OsString> = args
        .iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if s.contains("{server}") || s.contains("{client}") {
                s.replace("{server}", &SERVER_IP.to_string())
                    .replace("{client}", &CLIENT_IP.to_string())
                    .into()
            } else {
                a.clone()
            }
        })
        .collect();
    let mut full = vec![program.clone()];
    full.extend(args.iter().cloned());
    say(out, format!("DOES: client: {}", shown(&full)));
    let mut child = pair
        .client
        .command(program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io(format!("cannot start {}", program.to_string_lossy()), e))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        let data = cfg.stdin.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut client = ChildGuard(child);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = client
            .0
            .try_wait()
            .map_err(|e| LabError::io("waiting for the client", e))?
        {
            break Some(s);
        }
        if start.elapsed() > cfg.client_timeout {
            say(
                out,
                format!(
                    "OBSERVES the client did not exit within {:?}; killed.",
                    cfg.client_timeout
                ),
            );
            break None;
        }
        // Polling for the client's exit (bounded by `client_timeout`).
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(client);
    report.client_status = status.and_then(|s| s.code());
    let settle = Instant::now();
    while !settled(&pair)? && settle.elapsed() < Duration::from_secs(5) {
        // Polling until the connections have closed (bounded).
        std::thread::sleep(Duration::from_millis(10));
    }
    // The wire is quiet once no frame arrived for 200 ms (at most 3 s).
    let quiet = Instant::now();
    let mut seen = capture.frames().len();
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(200) && quiet.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
        let n = capture.frames().len();
        if n != seen {
            seen = n;
            since = Instant::now();
        }
    }
    let frames = capture.finish()?;
    drop(server);
    report.client_stdout = text(&stdout);
    report.client_stderr = text(&stderr);
    say(
        out,
        format!(
            "OBSERVES the client exited with {}; {} frames on the client's interface.",
            report
                .client_status
                .map_or("a signal".into(), |c| c.to_string()),
            frames.len()
        ),
    );
    if let Some(p) = &cfg.pcap {
        pcap::write_file(p, &frames)?;
        report.pcap = Some(p.clone());
        say(
            out,
            format!(
                "DOES: wrote {} (open with Wireshark or `tshark -r`).",
                p.display()
            ),
        );
    }
    let tcfg = TimelineConfig {
        hosts: vec![
            (SERVER_IP.into(), "server".into()),
            (CLIENT_IP.into(), "client".into()),
        ],
        macs: vec![(SERVER_MAC, "server".into()), (CLIENT_MAC, "client".into())],
        tftp_ports: cfg.tftp_ports.clone(),
    };
    report.timeline = timeline::build(&frames, &tcfg);
    for line in timeline::render(&report.timeline).lines() {
        say(out, format!("OBSERVES {line}"));
    }
    say(
        out,
        "EXPLAINS: each line is one frame on the client's veth: time since the first, sender → \
         receiver, protocol, length, and the fields that matter. A TCP exchange opens with \
         SYN, SYN-ACK, ACK (Seq/Ack are relative, as Wireshark shows them: each side's first \
         byte is 1); data segments carry PSH and advance Seq by Len; each side ends with FIN, \
         which the other acknowledges. A fresh namespace's first packet waits for ARP. TFTP \
         moves from the server's well-known port to a new one after the request (its transfer \
         ID) and alternates DATA/ACK by block number.",
    );
    Ok(report)
}
