//! The TFTP client: [`get`] and [`put`].
//!
//! Both ask for fast options by default (`blksize` 1468, a full Ethernet frame, and
//! `windowsize` 16) plus `tsize`. A server that answers without an OACK (plain RFC 1350)
//! is followed at 512-byte lock-step; one that refuses the options with ERROR 8 is asked
//! again without options. Downloads go to a temporary file next to the destination that
//! is fsynced and renamed into place only when complete.

use crate::options::{accept_oack, Negotiated, OackError, RequestedOptions};
use crate::packets::ack_bytes;
use crate::packets::{ErrorCode, Mode, Packet, RawOption, Request};
use crate::transfer::endpoint::bind_udp;
use crate::transfer::receive::{ack_final, receive_blocks};
use crate::transfer::send::send_blocks;
use crate::transfer::sink::BlockSink;
use crate::transfer::source::BlockSource;
use crate::transfer::{Endpoint, Timing, TransferError};
use bytes::Bytes;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::UdpSocket;

/// Settings of one client transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// `blksize` to ask for (None: do not ask, 512). Default 1468: 1500-byte Ethernet
    /// MTU minus IP, UDP and TFTP headers, so blocks are never fragmented.
    pub blksize: Option<u16>,
    /// `windowsize` to ask for (None: lock-step). Default 16.
    pub windowsize: Option<u16>,
    /// Local retransmission interval (may be below a second).
    pub timeout: Duration,
    /// `timeout` option (seconds, 1–255) to ask the server for; None leaves the server's
    /// default.
    pub timeout_option: Option<u8>,
    /// Transfer mode.
    pub mode: Mode,
    /// Retransmissions without progress before giving up.
    pub retries: u32,
    /// Ask for / announce `tsize` (octet mode only).
    pub tsize: bool,
    /// After a download, linger this long to re-ACK a retransmitted last block.
    pub dally: Duration,
    /// How long to wait for the server's first answer, across every retransmission of the
    /// request (and the retry without options): a server that is not there is reported
    /// after this, not after the whole back-off of `retries`.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            blksize: Some(1468),
            windowsize: Some(16),
            timeout: Duration::from_secs(1),
            timeout_option: None,
            mode: Mode::Octet,
            retries: 5,
            tsize: true,
            connect_timeout: Duration::from_secs(10),
            dally: Duration::ZERO,
        }
    }
}

impl ClientOptions {
    fn requested(&self, tsize: Option<u64>) -> RequestedOptions {
        RequestedOptions {
            blksize: self.blksize,
            timeout: self.timeout_option,
            tsize: if self.tsize && self.mode == Mode::Octet {
                tsize
            } else {
                None
            },
            windowsize: self.windowsize,
        }
    }

    fn timing(&self, negotiated: Option<&Negotiated>) -> Timing {
        let timeout = match negotiated {
            Some(n) if n.oack && self.timeout_option.is_some() => n.timeout,
            _ => self.timeout,
        };
        let mut timing = Timing::new(timeout, self.retries);
        timing.dally = self.dally;
        timing
    }
}

/// Progress of a transfer, passed to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Payload bytes moved so far.
    pub bytes: u64,
    /// Total size if known (`tsize`).
    pub total: Option<u64>,
}

/// What a finished transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSummary {
    /// Local file bytes (after netascii conversion).
    pub bytes: u64,
    /// Payload bytes on the wire.
    pub wire_bytes: u64,
    /// Wall time from request to completion.
    pub duration: Duration,
    /// The options in force.
    pub negotiated: Negotiated,
    /// Packets sent again.
    pub retransmits: u64,
    /// True when the server refused the options (ERROR 8) and the request was repeated
    /// without them.
    pub fell_back: bool,
}

/// Why a client transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A local file could not be opened, written or renamed.
    #[error("{path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The server refused the request.
    #[error("server refused: error {code}: {message}")]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The server did not answer the request.
    #[error("no answer from {server} within {:.1} s ({requests} requests sent); is a TFTP server running there?", waited.as_secs_f64())]
    NoAnswer {
        /// The server.
        server: SocketAddr,
        /// Requests sent (the first and its retransmissions).
        requests: u32,
        /// How long the client waited.
        waited: Duration,
    },
    /// The server's OACK was unacceptable (it got ERROR 8).
    #[error("unacceptable OACK: {0}")]
    Oack(#[from] OackError),
    /// The data phase failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The local socket failed.
    #[error("network error: {0}")]
    Network(#[source] io::Error),
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> ClientError + '_ {
    move |source| ClientError::Local {
        path: path.to_owned(),
        source,
    }
}

fn request_bytes(write: bool, remote: &str, mode: Mode, options: &RequestedOptions) -> Bytes {
    let pairs = options.to_pairs();
    let request = Request {
        filename: remote,
        mode,
        options: pairs
            .iter()
            .map(|(name, value)| RawOption {
                name,
                value: value.as_str(),
            })
            .collect(),
    };
    if write {
        Packet::Wrq(request)
    } else {
        Packet::Rrq(request)
    }
    .to_bytes()
}

fn client_socket(server: SocketAddr) -> Result<UdpSocket, ClientError> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    bind_udp(SocketAddr::new(any, 0)).map_err(ClientError::Network)
}

/// The server's first answer to a request.
enum Answer {
    /// OACK (owned datagram) from this transfer ID.
    Oack(SocketAddr, Vec<u8>),
    /// DATA or ACK (no options in force) from this transfer ID.
    Plain(SocketAddr, Vec<u8>),
}

/// Sends the request, and once more without options if the server refuses them with
/// ERROR 8. Returns the answer, the options it answers and whether it fell back.
async fn request_with_fallback(
    socket: &UdpSocket,
    server: SocketAddr,
    write: bool,
    remote: &str,
    opts: &ClientOptions,
    mut requested: RequestedOptions,
) -> Result<(Answer, RequestedOptions, bool), ClientError> {
    let timing = opts.timing(None);
    let mut give_up = RequestDeadline::new(opts.connect_timeout);
    let request = request_bytes(write, remote, opts.mode, &requested);
    let with_options = !requested.is_empty();
    if let Some(answer) = send_request(
        socket,
        server,
        &request,
        &timing,
        &mut give_up,
        with_options,
    )
    .await?
    {
        return Ok((answer, requested, false));
    }
    requested = RequestedOptions::default();
    let request = request_bytes(write, remote, opts.mode, &requested);
    match send_request(socket, server, &request, &timing, &mut give_up, false).await? {
        Some(answer) => Ok((answer, requested, true)),
        None => Err(ClientError::Refused {
            code: ErrorCode::OptionNegotiation,
            message: "options refused even without options".into(),
        }),
    }
}

/// When the wait for the server's first answer ends.
struct RequestDeadline {
    start: tokio::time::Instant,
    end: tokio::time::Instant,
    sent: u32,
}

impl RequestDeadline {
    fn new(limit: Duration) -> RequestDeadline {
        let start = tokio::time::Instant::now();
        RequestDeadline {
            start,
            end: start + limit,
            sent: 0,
        }
    }

    fn no_answer(&self, server: SocketAddr) -> ClientError {
        ClientError::NoAnswer {
            server,
            requests: self.sent,
            waited: tokio::time::Instant::now().saturating_duration_since(self.start),
        }
    }
}

/// Sends `request` until the server answers from any port of its address; `None` when
/// it refuses the options (ERROR 8) and `with_options` is set. Gives up after
/// `timing.retries` retransmissions or at `give_up`, whichever comes first.
async fn send_request(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    timing: &Timing,
    give_up: &mut RequestDeadline,
    with_options: bool,
) -> Result<Option<Answer>, ClientError> {
    let mut buf = vec![0u8; 65536];
    for attempt in 0..=timing.retries {
        if tokio::time::Instant::now() >= give_up.end {
            break;
        }
        socket
            .send_to(request, server)
            .await
            .map_err(ClientError::Network)?;
        give_up.sent += 1;
        let deadline = (tokio::time::Instant::now() + timing.interval(attempt)).min(give_up.end);
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let (len, from) = match received {
                Err(_elapsed) => break,
                Ok(Err(err)) if err.kind() == io::ErrorKind::ConnectionRefused => continue,
                Ok(result) => result.map_err(ClientError::Network)?,
            };
            if from.ip() != server.ip() {
                continue;
            }
            match Packet::parse(&buf[..len]) {
                Ok(Packet::Oack { .. }) => {
                    return Ok(Some(Answer::Oack(from, buf[..len].to_vec())))
                }
                Ok(Packet::Data { .. } | Packet::Ack { block: 0 }) => {
                    return Ok(Some(Answer::Plain(from, buf[..len].to_vec())))
                }
                Ok(Packet::Error {
                    code: ErrorCode::OptionNegotiation,
                    ..
                }) if with_options => return Ok(None),
                Ok(Packet::Error { code, message }) => {
                    return Err(ClientError::Refused {
                        code,
                        message: message.to_owned(),
                    })
                }
                _ => continue,
            }
        }
    }
    Err(give_up.no_answer(server))
}

/// The negotiated values from an OACK, or ERROR 8 to the server and an error.
async fn check_oack(
    ep: &Endpoint,
    requested: &RequestedOptions,
    datagram: &[u8],
    opts: &ClientOptions,
) -> Result<Negotiated, ClientError> {
    let Ok(Packet::Oack { options }) = Packet::parse(datagram) else {
        return Err(TransferError::Protocol("expected OACK".into()).into());
    };
    match accept_oack(requested, &options, opts.timeout) {
        Ok(n) => Ok(n),
        Err(err) => {
            ep.send_error(ErrorCode::OptionNegotiation, &err.to_string())
                .await;
            Err(err.into())
        }
    }
}

/// Downloads `remote` from `server` into `local`.
///
/// `progress` is called as blocks arrive. The file appears at `local` only when the
/// download is complete (temporary file, fsync, rename).
///
/// # Errors
/// [`ClientError`] saying which side failed and why.
pub async fn get(
    server: SocketAddr,
    remote: &str,
    local_path: &Path,
    opts: &ClientOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<TransferSummary, ClientError> {
    let started = Instant::now();
    let dir = match local_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = local_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(local(local_path))?;
    let (file, temp_path) = temp.into_parts();
    let writer = BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
    let mut sink = BlockSink::new(writer, opts.mode);

    let socket = client_socket(server)?;
    let (answer, requested, fell_back) = request_with_fallback(
        &socket,
        server,
        false,
        remote,
        opts,
        opts.requested(Some(0)),
    )
    .await?;
    let (ep, negotiated, first) = match answer {
        Answer::Oack(tid, datagram) => {
            let ep = Endpoint::new(socket, tid);
            let negotiated = check_oack(&ep, &requested, &datagram, opts).await?;
            ep.send(&ack_bytes(0)).await.map_err(ClientError::Network)?;
            (ep, negotiated, None)
        }
        Answer::Plain(tid, datagram) => (
            Endpoint::new(socket, tid),
            Negotiated::plain(opts.timeout),
            Some(datagram),
        ),
    };
    let timing = opts.timing(Some(&negotiated));
    let total = negotiated.tsize;
    let received = receive_blocks(
        &ep,
        &negotiated,
        &mut sink,
        &timing,
        ack_bytes(0),
        first.as_deref(),
        &mut |bytes| progress(Progress { bytes, total }),
    )
    .await?;
    let bytes = sink.written();
    let durable = async {
        let mut file = sink.finish().await?.into_inner();
        file.flush().await?;
        file.sync_all().await
    };
    if let Err(err) = durable.await {
        ep.send_error(ErrorCode::DiskFull, "cannot write file")
            .await;
        return Err(local(local_path)(err));
    }
    temp_path
        .persist(local_path)
        .map_err(|e| local(local_path)(e.error))?;
    ack_final(
        &ep,
        received.final_block,
        &timing,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    Ok(TransferSummary {
        bytes,
        wire_bytes: received.stats.wire_bytes,
        duration: started.elapsed(),
        negotiated,
        retransmits: received.stats.retransmits,
        fell_back,
    })
}

/// Uploads `local` to `server` as `remote`.
///
/// # Errors
/// [`ClientError`] saying which side failed and why.
pub async fn put(
    server: SocketAddr,
    local_path: &Path,
    remote: &str,
    opts: &ClientOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<TransferSummary, ClientError> {
    let started = Instant::now();
    let file = tokio::fs::File::open(local_path)
        .await
        .map_err(local(local_path))?;
    let size = file.metadata().await.map_err(local(local_path))?.len();
    let socket = client_socket(server)?;
    let (answer, requested, fell_back) = request_with_fallback(
        &socket,
        server,
        true,
        remote,
        opts,
        opts.requested(Some(size)),
    )
    .await?;
    let (ep, negotiated) = match answer {
        Answer::Oack(tid, datagram) => {
            let ep = Endpoint::new(socket, tid);
            let negotiated = check_oack(&ep, &requested, &datagram, opts).await?;
            (ep, negotiated)
        }
        Answer::Plain(tid, datagram) => {
            let ep = Endpoint::new(socket, tid);
            if !matches!(Packet::parse(&datagram), Ok(Packet::Ack { block: 0 })) {
                ep.send_error(ErrorCode::IllegalOperation, "expected ACK 0")
                    .await;
                return Err(TransferError::Protocol("server sent DATA to a WRQ".into()).into());
            }
            (ep, Negotiated::plain(opts.timeout))
        }
    };
    let timing = opts.timing(Some(&negotiated));
    let total = (opts.mode == Mode::Octet).then_some(size);
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut source = BlockSource::new(reader, opts.mode, negotiated.blksize);
    let stats = send_blocks(&ep, &negotiated, &mut source, &timing, &mut |bytes| {
        progress(Progress { bytes, total })
    })
    .await?;
    Ok(TransferSummary {
        bytes: size,
        wire_bytes: stats.wire_bytes,
        duration: started.elapsed(),
        negotiated,
        retransmits: stats.retransmits,
        fell_back,
    })
}

/// Asks whether a TFTP server answers at `server`: one read request for a probe name,
/// waiting up to `wait` for any reply (the server's ERROR 1 for the missing file counts).
/// For waiting until a freshly started server is ready; the answer is never a transfer.
///
/// # Errors
/// A socket error on this side.
pub async fn probe(server: SocketAddr, wait: Duration) -> io::Result<bool> {
    let local = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = UdpSocket::bind(local).await?;
    let request = Packet::Rrq(Request {
        filename: "sockit-readiness-probe",
        mode: Mode::Octet,
        options: vec![],
    })
    .to_bytes();
    socket.send_to(&request, server).await?;
    let mut buf = [0u8; 1024];
    Ok(matches!(
        tokio::time::timeout(wait, socket.recv_from(&mut buf)).await,
        Ok(Ok(_))
    ))
}
