//! The TFTP server: requests on one socket, each transfer on its own ephemeral port.
//!
//! [`serve`] takes an already-bound socket (tests bind `127.0.0.1:0`) and a shutdown
//! token. Requests are parsed on the listening socket; a malformed one gets ERROR 4 and
//! the server goes on. Each accepted request runs in its own task with a new socket
//! bound to the same local address and port 0 (its transfer ID), under a cap on
//! concurrent transfers. On shutdown no new request is accepted, running transfers get
//! [`ServerConfig::drain_timeout`] to finish, then are cancelled (an unfinished upload's
//! staging file is removed; nothing half-written is ever promoted).
//!
//! Guards against a peer that is absent, forged or hostile:
//! - requests are rate-limited per source ([`ServerConfig::rate`]); over the rate they
//!   are dropped silently;
//! - a source runs at most [`ServerConfig::max_transfers_per_ip`] transfers at once
//!   (ERROR 0 "server busy" beyond), so one host cannot take every slot;
//! - a transfer whose peer makes no progress for [`ServerConfig::give_up`] ends, whatever
//!   `timeout` option it asked for;
//! - before the peer's first ACK, only the first packet (OACK, or DATA 1 without
//!   options) is sent, and retransmitted only while everything sent stays within 3× the
//!   request on the wire (28 bytes of IPv4/UDP headers counted on each side); an ERROR
//!   answering a request is cut to that budget too. A timeout re-sends the first
//!   unacknowledged block and the window's last block, not the whole window.

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
use sockit_runtime::udp::recv_or_shutdown;
use sockit_runtime::udp_guard::{
    reply_limit, source_key, RateLimit, RateLimiter, AMPLIFICATION_FACTOR, IPV4_UDP_HEADER,
};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
    /// A transfer whose peer makes no progress this long is abandoned, whatever
    /// `timeout` option it asked for (`timeout 255` would otherwise hold a slot for
    /// hours).
    pub give_up: Duration,
    /// Transfers one source IP may run at once; further requests get ERROR 0
    /// "server busy".
    pub max_transfers_per_ip: usize,
    /// Per-source rate limit of datagrams on the request port.
    pub rate: RateLimit,
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
            give_up: Duration::from_secs(30),
            max_transfers_per_ip: 8,
            rate: RateLimit::default(),
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
    /// Running transfers per source.
    per_source: Mutex<HashMap<IpAddr, usize>>,
}

/// One source's share of the per-source cap, given back on drop.
struct SourceSlot {
    shared: Arc<Shared>,
    key: IpAddr,
}

impl SourceSlot {
    fn acquire(shared: &Arc<Shared>, ip: IpAddr) -> Option<SourceSlot> {
        let key = source_key(ip);
        let mut map = shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= shared.config.max_transfers_per_ip.max(1) {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            shared: shared.clone(),
            key,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A transfer's hold on the server: its global slot and its source's share.
struct Slots {
    _global: OwnedSemaphorePermit,
    _source: SourceSlot,
}

/// An ERROR packet answering a request of `request_len` bytes, its message cut so the
/// packet stays within the amplification budget.
fn bounded_error(code: ErrorCode, message: &str, request_len: usize) -> Bytes {
    // opcode, code, message, NUL.
    let room = reply_limit(request_len).saturating_sub(5);
    let mut cut = message.len().min(room);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    error_bytes(code, &message[..cut])
}

/// How often a first packet of `packet_len` bytes may be sent in answer to a request of
/// `request_len` bytes, everything within 3× the request on the wire (at least once: the
/// protocol's answer to a request is one packet).
fn first_sends(request_len: usize, packet_len: usize) -> u32 {
    let budget = (request_len + IPV4_UDP_HEADER) * AMPLIFICATION_FACTOR;
    let each = packet_len + IPV4_UDP_HEADER;
    u32::try_from(budget / each).unwrap_or(u32::MAX).max(1)
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
        per_source: Mutex::new(HashMap::new()),
        config,
    });
    let mut limiter = RateLimiter::new(shared.config.rate);
    let tracker = TaskTracker::new();
    info!(addr = %local, root = %shared.root.path().display(), write = shared.config.write_allowed, "tftp server listening");
    let mut buf = vec![0u8; 65536];
    loop {
        let Some((len, peer)) = recv_or_shutdown(&socket, &mut buf, &shutdown, "tftp").await else {
            break;
        };
        if !limiter.admit("tftp", peer, tokio::time::Instant::now().into_std()) {
            continue;
        }
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
    /// Bytes of the request datagram (the amplification budget is 3× of it).
    len: usize,
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
            let reply = bounded_error(
                ErrorCode::IllegalOperation,
                "expected RRQ or WRQ",
                datagram.len(),
            );
            let _ = socket.send_to(&reply, peer).await;
            return;
        }
        Err(err) => {
            info!(peer = %peer, error = %err, "tftp: malformed request");
            let reply = bounded_error(
                ErrorCode::IllegalOperation,
                &err.to_string(),
                datagram.len(),
            );
            let _ = socket.send_to(&reply, peer).await;
            return;
        }
    };
    let (op, req) = request;
    let busy = |why: &str| bounded_error(ErrorCode::NotDefined, why, datagram.len());
    let Some(source) = SourceSlot::acquire(shared, peer.ip()) else {
        warn!(peer = %peer, file = req.filename, limit = shared.config.max_transfers_per_ip, "tftp: too many transfers from this source, refusing");
        let reply = busy("server busy: too many transfers from your address");
        let _ = socket.send_to(&reply, peer).await;
        return;
    };
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        warn!(peer = %peer, file = req.filename, "tftp: too many transfers, refusing");
        let _ = socket
            .send_to(&busy("server busy, try again later"), peer)
            .await;
        return;
    };
    let owned = OwnedRequest {
        op,
        filename: req.filename.to_owned(),
        mode: req.mode,
        options: RequestedOptions::from_raw(&req.options),
        len: datagram.len(),
    };
    let slots = Slots {
        _global: permit,
        _source: source,
    };
    tracker.spawn(run_transfer(shared.clone(), peer, owned, slots));
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

async fn run_transfer(shared: Arc<Shared>, peer: SocketAddr, req: OwnedRequest, slots: Slots) {
    let mut permit = Some(slots);
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
                let _ = ep.send(&bounded_error(*code, message, req.len)).await;
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
    timing.give_up = shared.config.give_up;
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

/// The payload of block 1 of a file of `size` bytes, as far as it matters for the budget
/// (netascii may grow it; a full block is the bound either way).
fn size_hint(size: u64) -> usize {
    usize::try_from(size).unwrap_or(usize::MAX)
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
    let mut timing = timing_for(shared, &negotiated);
    let mut retransmits = 0;
    if oack.is_empty() {
        // DATA 1 is the first packet: it goes out again only within the budget.
        let first = 4 + usize::from(negotiated.blksize).min(size_hint(size));
        timing.first_sends = first_sends(req.len, first);
    } else {
        let oack = oack_bytes(&oack);
        let ack0 = Timing {
            first_sends: first_sends(req.len, oack.len()),
            ..timing
        };
        retransmits += await_ack0(ep, &oack, &ack0).await?;
        // ACK 0 came from the peer's address: the data phase is not limited.
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
    permit: &mut Option<Slots>,
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
    let mut timing = timing_for(shared, &negotiated);
    let initial = if oack.is_empty() {
        ack_bytes(0)
    } else {
        oack_bytes(&oack)
    };
    timing.first_sends = first_sends(req.len, initial.len());
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
