//! The TFTP server: requests on one socket, each transfer on its own ephemeral port.
//!
//! [`serve`] takes an already-bound socket (tests bind `127.0.0.1:0`) and a shutdown
//! token. Requests are parsed on the listening socket; a malformed one gets ERROR 4 and
//! the server goes on. Each accepted request runs in its own task with a new socket
//! bound to the same local address and port 0 (its transfer ID), under a cap on
//! concurrent transfers. On shutdown no new request is accepted, running transfers get
//! [`ServerConfig::drain_timeout`] to finish, then are cancelled (an unfinished upload's
//! staging file is removed; nothing half-written is ever promoted).

use crate::options::{negotiate, Direction, Limits, Negotiated, RequestedOptions, MAX_BLKSIZE};
use crate::packets::{ack_bytes, error_bytes, ErrorCode, Mode, Packet, RawOption};
use crate::root::{resolve, Root};
use crate::transfer::endpoint::bind_udp;
use crate::transfer::receive::{linger, receive_blocks};
use crate::transfer::send::{await_ack0, send_blocks};
use crate::transfer::sink::BlockSink;
use crate::transfer::source::BlockSource;
use crate::transfer::{Endpoint, Timing, TransferError};
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Server settings; every limit has a default and is a field so the CLI can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Directory served; nothing outside it is read or written.
    pub root: PathBuf,
    /// Where the CLI binds the server (`serve` itself takes a bound socket).
    pub bind: SocketAddr,
    /// Accept WRQ (uploads). Off by default: a TFTP server is read-only unless asked.
    pub write_allowed: bool,
    /// Let an upload replace an existing file (otherwise ERROR 6).
    pub overwrite_allowed: bool,
    /// Transfers running at once; further requests get ERROR 0 "server busy".
    pub max_transfers: usize,
    /// Retransmissions without progress before a transfer is abandoned.
    pub retries: u32,
    /// Retransmission interval when the client sends no `timeout` option. May be below
    /// one second (tests use that); the `timeout` option itself is whole seconds.
    pub default_timeout: Duration,
    /// Largest `blksize` granted (like tftp-hpa `--blocksize`; lower it for clients that
    /// ask for big blocks but cannot reassemble IP fragments).
    pub max_blksize: u16,
    /// Largest `windowsize` granted.
    pub max_windowsize: u16,
    /// Cap on `blksize × windowsize`: memory held per transfer for retransmission.
    pub max_window_bytes: usize,
    /// Largest upload accepted, in bytes (ERROR 3 beyond).
    pub max_upload_bytes: u64,
    /// How long running transfers may go on after shutdown is requested.
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            root: PathBuf::from("."),
            bind: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            write_allowed: false,
            overwrite_allowed: false,
            max_transfers: 64,
            retries: 5,
            default_timeout: Duration::from_secs(1),
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 4 << 20,
            max_upload_bytes: 4 << 30,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_blksize: self.max_blksize,
            max_windowsize: self.max_windowsize,
            max_window_bytes: self.max_window_bytes,
            default_timeout: self.default_timeout,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The root directory cannot be opened.
    #[error("cannot open TFTP root {path}: {source}")]
    Root {
        /// The root.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The listening socket failed.
    #[error("TFTP socket error: {0}")]
    Socket(#[source] io::Error),
}

/// Binds `config.bind` and serves until `shutdown` (a convenience for the CLI).
///
/// # Errors
/// [`ServerError`] when binding or opening the root fails.
pub async fn bind_and_serve(
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(ServerError::Socket)?;
    serve(socket, config, shutdown).await
}

/// State shared by the request loop and the transfer tasks.
struct Shared {
    config: ServerConfig,
    root: Root,
    /// Local address new transfer sockets bind to (the listening IP, port 0).
    transfer_bind: SocketAddr,
    /// Fires when the drain deadline passes: running transfers stop.
    abort: CancellationToken,
    /// The server's shutdown signal: uploads stop lingering for a lost final ACK.
    shutdown: CancellationToken,
}

/// Serves TFTP on `socket` until `shutdown` is cancelled, then drains.
///
/// # Errors
/// [`ServerError::Root`] when the root cannot be opened, [`ServerError::Socket`] when
/// the socket's address cannot be read.
pub async fn serve(
    socket: UdpSocket,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let root = Root::open(&config.root).map_err(|source| ServerError::Root {
        path: config.root.clone(),
        source,
    })?;
    let local = socket.local_addr().map_err(ServerError::Socket)?;
    let permits = Arc::new(Semaphore::new(config.max_transfers.max(1)));
    let shared = Arc::new(Shared {
        transfer_bind: SocketAddr::new(local.ip(), 0),
        root,
        abort: CancellationToken::new(),
        shutdown: shutdown.clone(),
        config,
    });
    let tracker = TaskTracker::new();
    info!(addr = %local, root = %shared.root.path().display(), write = shared.config.write_allowed, "tftp server listening");
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(err) => {
                    // e.g. ICMP errors reported on the socket; the server goes on.
                    debug!(error = %err, "tftp recv error");
                    continue;
                }
            },
        };
        handle_datagram(&socket, &buf[..len], peer, &shared, &permits, &tracker).await;
    }
    tracker.close();
    if tokio::time::timeout(shared.config.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            running = tracker.len(),
            "tftp drain deadline passed, cancelling transfers"
        );
        shared.abort.cancel();
        tracker.wait().await;
    }
    info!(addr = %local, "tftp server stopped");
    Ok(())
}

/// Which way a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Put,
}

/// A request copied out of the datagram so the transfer task owns it.
#[derive(Debug, Clone)]
struct OwnedRequest {
    op: Op,
    filename: String,
    mode: Mode,
    options: RequestedOptions,
}

async fn handle_datagram(
    socket: &UdpSocket,
    datagram: &[u8],
    peer: SocketAddr,
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    tracker: &TaskTracker,
) {
    let request = match Packet::parse(datagram) {
        Ok(Packet::Rrq(req)) => (Op::Get, req),
        Ok(Packet::Wrq(req)) => (Op::Put, req),
        Ok(Packet::Error { .. }) => return, // never answer an error
        Ok(other) => {
            debug!(peer = %peer, opcode = ?other.opcode(), "tftp: not a request");
            let reply = error_bytes(ErrorCode::IllegalOperation, "expected RRQ or WRQ");
            let _ = socket.send_to(&reply, peer).await;
            return;
        }
        Err(err) => {
            info!(peer = %peer, error = %err, "tftp: malformed request");
            let reply = error_bytes(ErrorCode::IllegalOperation, &err.to_string());
            let _ = socket.send_to(&reply, peer).await;
            return;
        }
    };
    let (op, req) = request;
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        warn!(peer = %peer, file = req.filename, "tftp: too many transfers, refusing");
        let reply = error_bytes(ErrorCode::NotDefined, "server busy, try again later");
        let _ = socket.send_to(&reply, peer).await;
        return;
    };
    let owned = OwnedRequest {
        op,
        filename: req.filename.to_owned(),
        mode: req.mode,
        options: RequestedOptions::from_raw(&req.options),
    };
    tracker.spawn(run_transfer(shared.clone(), peer, owned, permit));
}

/// A refusal (sent to the peer as one ERROR packet) or a failed transfer (already
/// reported to the peer, or not reportable).
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("refused with error {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

impl ServeError {
    fn refused(code: ErrorCode, message: impl Into<String>) -> ServeError {
        ServeError::Refused {
            code,
            message: message.into(),
        }
    }

    /// Maps a file-open error to the TFTP code a client expects.
    fn from_io(err: &io::Error) -> ServeError {
        match err.kind() {
            io::ErrorKind::NotFound => {
                ServeError::refused(ErrorCode::FileNotFound, "file not found")
            }
            io::ErrorKind::PermissionDenied => {
                ServeError::refused(ErrorCode::AccessViolation, "access denied")
            }
            io::ErrorKind::InvalidInput => {
                ServeError::refused(ErrorCode::AccessViolation, err.to_string())
            }
            io::ErrorKind::AlreadyExists => {
                ServeError::refused(ErrorCode::FileExists, "file already exists")
            }
            _ => ServeError::refused(ErrorCode::NotDefined, err.to_string()),
        }
    }
}

/// What a finished transfer did, for the log line.
struct Outcome {
    bytes: u64,
    /// From the request to the last block (an upload's linger afterwards not included).
    elapsed: Duration,
    negotiated: Negotiated,
    retransmits: u64,
    /// After an upload: the final block to re-ACK while lingering, and the timing.
    linger: Option<(u16, Timing)>,
}

async fn run_transfer(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: OwnedRequest,
    permit: OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let socket = match bind_udp(shared.transfer_bind) {
        Ok(socket) => socket,
        Err(err) => {
            warn!(peer = %peer, error = %err, "tftp: cannot bind a transfer socket");
            return;
        }
    };
    let ep = Endpoint::new(socket, peer).with_cancel(shared.abort.clone());
    let started = Instant::now();
    let result = match req.op {
        Op::Get => serve_read(&shared, &ep, &req, started).await,
        Op::Put => serve_write(&shared, &ep, &req, started, &mut permit).await,
    };
    let op = match req.op {
        Op::Get => "get",
        Op::Put => "put",
    };
    match result {
        Ok(outcome) => {
            let n = outcome.negotiated;
            let elapsed = outcome.elapsed;
            let mbps = outcome.bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
            info!(
                peer = %peer,
                op,
                file = %req.filename,
                mode = %req.mode,
                bytes = outcome.bytes,
                elapsed_ms = elapsed.as_millis() as u64,
                mb_per_s = format!("{mbps:.1}"),
                blksize = n.blksize,
                windowsize = n.windowsize,
                timeout_ms = n.timeout.as_millis() as u64,
                tsize = ?n.tsize,
                oack = n.oack,
                retransmits = outcome.retransmits,
                "tftp transfer complete"
            );
            if let Some((final_block, timing)) = outcome.linger {
                linger(&ep, final_block, &timing, &shared.shutdown).await;
            }
        }
        Err(err) => {
            if let ServeError::Refused { code, message } = &err {
                ep.send_error(*code, message).await;
            }
            info!(
                peer = %peer,
                op,
                file = %req.filename,
                mode = %req.mode,
                elapsed_ms = started.elapsed().as_millis() as u64,
                error = %err,
                "tftp transfer failed"
            );
        }
    }
}

fn timing_for(shared: &Shared, negotiated: &Negotiated) -> Timing {
    let mut timing = Timing::new(negotiated.timeout, shared.config.retries);
    // After an upload, linger long enough for a client's retransmissions of the last
    // block at t, 3t, 7t and 15t (doubling intervals) to be answered.
    timing.dally = timing.max_timeout.saturating_mul(2);
    timing
}

/// Reads through a buffer big enough for a couple of windows.
fn read_buffer_size(negotiated: &Negotiated) -> usize {
    (usize::from(negotiated.blksize) * usize::from(negotiated.windowsize) * 2)
        .clamp(64 << 10, 4 << 20)
}

fn oack_bytes(pairs: &[(&'static str, String)]) -> Bytes {
    Packet::Oack {
        options: pairs
            .iter()
            .map(|(name, value)| RawOption {
                name,
                value: value.as_str(),
            })
            .collect(),
    }
    .to_bytes()
}

async fn serve_read(
    shared: &Shared,
    ep: &Endpoint,
    req: &OwnedRequest,
    started: Instant,
) -> Result<Outcome, ServeError> {
    let relative = resolve(&req.filename)
        .map_err(|e| ServeError::refused(ErrorCode::AccessViolation, e.to_string()))?;
    let (file, size) = shared
        .root
        .open_read(&relative)
        .map_err(|e| ServeError::from_io(&e))?;
    // tsize is only answered in octet mode, where it is exact (as tftp-hpa does), and
    // not for an empty file: curl (up to at least 7.88) rejects `tsize 0` in an OACK
    // as illegal and aborts; RFC 2349 lets a server leave tsize out.
    let known_size = (req.mode == Mode::Octet && size > 0).then_some(size);
    let (negotiated, oack) = negotiate(
        &req.options,
        &shared.config.limits(),
        Direction::Read { size: known_size },
    );
    let timing = timing_for(shared, &negotiated);
    let mut retransmits = 0;
    if !oack.is_empty() {
        retransmits += await_ack0(ep, &oack_bytes(&oack), &timing).await?;
    }
    let reader = BufReader::with_capacity(
        read_buffer_size(&negotiated),
        tokio::fs::File::from_std(file),
    );
    let mut source = BlockSource::new(reader, req.mode, negotiated.blksize);
    let stats = send_blocks(ep, &negotiated, &mut source, &timing, &mut |_| {}).await?;
    Ok(Outcome {
        bytes: stats.wire_bytes,
        elapsed: started.elapsed(),
        negotiated,
        retransmits: retransmits + stats.retransmits,
        linger: None,
    })
}

/// `permit` is released once the file is committed: lingering for a lost final ACK does
/// not hold a transfer slot.
async fn serve_write(
    shared: &Shared,
    ep: &Endpoint,
    req: &OwnedRequest,
    started: Instant,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Result<Outcome, ServeError> {
    let config = &shared.config;
    if !config.write_allowed {
        return Err(ServeError::refused(
            ErrorCode::AccessViolation,
            "this server is read-only (writes need --tftp-write)",
        ));
    }
    let relative = resolve(&req.filename)
        .map_err(|e| ServeError::refused(ErrorCode::AccessViolation, e.to_string()))?;
    if req
        .options
        .tsize
        .is_some_and(|size| size > config.max_upload_bytes)
    {
        return Err(ServeError::refused(
            ErrorCode::DiskFull,
            format!(
                "upload larger than the limit of {} bytes",
                config.max_upload_bytes
            ),
        ));
    }
    let mut staging = shared
        .root
        .create_staging(&relative, config.overwrite_allowed)
        .map_err(|e| ServeError::from_io(&e))?;
    let (negotiated, oack) = negotiate(&req.options, &config.limits(), Direction::Write);
    let timing = timing_for(shared, &negotiated);
    let initial = if oack.is_empty() {
        ack_bytes(0)
    } else {
        oack_bytes(&oack)
    };
    ep.send(&initial)
        .await
        .map_err(|e| ServeError::Transfer(TransferError::Network(e)))?;
    let file = staging
        .take_file()
        .ok_or_else(|| ServeError::refused(ErrorCode::NotDefined, "staging file unavailable"))?;
    let writer = BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
    let mut sink = BlockSink::new(writer, req.mode).with_limit(config.max_upload_bytes);
    let received = receive_blocks(
        ep,
        &negotiated,
        &mut sink,
        &timing,
        initial,
        None,
        &mut |_| {},
    )
    .await?;
    let durable = async {
        let mut file = sink.finish().await?.into_inner();
        file.flush().await?;
        file.sync_all().await
    };
    durable
        .await
        .map_err(|e| ServeError::refused(ErrorCode::DiskFull, format!("cannot write file: {e}")))?;
    let overwrite = config.overwrite_allowed;
    tokio::task::spawn_blocking(move || staging.commit(overwrite))
        .await
        .map_err(|e| ServeError::refused(ErrorCode::NotDefined, e.to_string()))?
        .map_err(|e| ServeError::from_io(&e))?;
    ep.send(&ack_bytes(received.final_block))
        .await
        .map_err(|e| ServeError::Transfer(TransferError::Network(e)))?;
    drop(permit.take());
    Ok(Outcome {
        bytes: received.stats.wire_bytes,
        elapsed: started.elapsed(),
        negotiated,
        retransmits: received.stats.retransmits,
        linger: Some((received.final_block, timing)),
    })
}
