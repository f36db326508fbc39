//! HTTPS for the reader (`sockit serve --tls`, port 8443): a [`Listener`] for axum that
//! accepts TCP, runs TLS handshakes in their own tasks (so a slow client never stalls the
//! accept loop) and hands axum only finished TLS streams. A plain-HTTP request on the
//! HTTPS port gets `400` in plain text, as nginx answers it, and the port keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use sockit_wire::framed::linger_close;
use sockit_wire::guarded::{GuardedStream, StreamTimeouts};
use sockit_wire::tls::{accept_tls, Accepted};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The default HTTPS port.
pub const PORT: u16 = 8443;

/// The body a plain-HTTP client on the HTTPS port reads (with status 400).
pub const PLAIN_ON_TLS_PORT: &str =
    "This port speaks HTTPS: the plain HTTP request was sent to it. Use https://\n";

fn plain_reply() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{PLAIN_ON_TLS_PORT}",
        PLAIN_ON_TLS_PORT.len()
    )
}

/// Limits of the HTTPS accept path.
#[derive(Debug, Clone, Copy)]
pub struct TlsLimits {
    /// How long a client may take from connect to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// How many handshakes may run at once; more connections wait in the accept queue.
    pub max_handshakes: usize,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TlsLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A TLS stream as axum gets it.
pub type HttpsStream = TlsStream<GuardedStream<TcpStream>>;

/// The HTTPS listener.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(Box<HttpsStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener`; handshakes stop when `shutdown` fires.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub fn new(
        listener: TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        limits: TlsLimits,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(limits.max_handshakes.max(1));
        tokio::spawn(accept_loop(listener, acceptor, limits, tx, shutdown));
        Ok(Self { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: TlsLimits,
    ready: mpsc::Sender<(Box<HttpsStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let timeouts = StreamTimeouts {
        first_byte: limits.handshake_timeout,
        idle: limits.idle_timeout,
        write: limits.idle_timeout,
    };
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { return };
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "https accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let stream = GuardedStream::new(tcp, timeouts);
            match accept_tls(&acceptor, stream, limits.handshake_timeout, None).await {
                Accepted::Tls(tls) => {
                    drop(permit);
                    let _ = ready.send((tls, peer)).await;
                }
                Accepted::Plain(mut plain) => {
                    drop(permit);
                    let _ = plain.write_all(plain_reply().as_bytes()).await;
                    linger_close(plain).await;
                    tracing::debug!(%peer, "plain HTTP on the HTTPS port");
                }
                Accepted::Gone(why) => tracing::debug!(%peer, %why, "https connection closed"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = Box<HttpsStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (shutdown): axum stops accepting on the same signal.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
