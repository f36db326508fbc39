//! The reader's HTTP port as a service of the shared runtime
//! ([`sockit_runtime::server::serve_tcp`]), so `--max-conns`, `--max-conns-per-ip`,
//! `--idle-timeout`, `--handshake-timeout`, `--write-timeout` and drain hold on it as on
//! every other TCP port.
//!
//! Each connection is served by hyper's HTTP/1.1 server on the runtime's guarded stream.
//! Every request head that arrives is reported on the stream's
//! [`RequestClock`]: the first one must arrive within the handshake timeout of the connect
//! (a client trickling its head one byte at a time is dropped like a silent one), and a
//! keep-alive connection is closed once it has been idle for the idle timeout since its
//! last request or the last byte of its last answer. A client over a connection limit is
//! answered `503 Service Unavailable` with `Retry-After`, as nginx does.

use std::convert::Infallible;
use std::error::Error as _;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sockit_runtime::close::linger_close;
use sockit_runtime::guarded::RequestClock;
use sockit_runtime::server::{serve_tcp, ConnInfo, Limits, Refusal, ServiceStream, TcpService};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::library::Library;

/// Seconds a refused client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 5;

/// The reader's plain HTTP port as a [`TcpService`].
#[derive(Debug, Clone)]
pub struct HttpService {
    router: Router,
}

impl HttpService {
    /// The HTTP application over `lib` (see [`super::router`]).
    pub fn new(lib: Arc<Library>) -> Self {
        Self::with_router(super::router(lib))
    }

    /// Serves an already built application.
    pub fn with_router(router: Router) -> Self {
        Self { router }
    }
}

#[async_trait]
impl TcpService for HttpService {
    fn name(&self) -> &'static str {
        "reader-http"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        let clock = info.clock.clone();
        serve_connection(stream, self.router.clone(), clock, &info).await
    }

    async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        if stream
            .write_all(refusal_response(&refusal).as_bytes())
            .await
            .is_ok()
        {
            linger_close(stream).await;
        }
    }
}

/// Serves the HTTP application over `lib` on `listener` through the shared runtime with
/// `limits` until `shutdown`, then lets open requests finish for `limits.drain_timeout`.
///
/// # Errors
/// None once the listener is bound (accept errors are logged and retried).
pub async fn serve_http(
    listener: TcpListener,
    lib: Arc<Library>,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_tcp(listener, Arc::new(HttpService::new(lib)), limits, shutdown).await
}

/// The raw `503` answer to a refused client (it never reaches hyper).
pub fn refusal_response(refusal: &Refusal) -> String {
    let body = format!("503 Service Unavailable: {refusal}\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Retry-After: {RETRY_AFTER_SECS}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The application as hyper calls it: every call means a whole request head arrived, so
/// it is reported on the connection's clock before the router runs.
#[derive(Debug, Clone)]
struct ClockedRouter {
    router: Router,
    clock: RequestClock,
    /// The client's address, given to handlers as `ConnectInfo` (the login throttle
    /// counts failures per source IP).
    peer: std::net::SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ClockedRouter {
    type Response = axum::response::Response<Body>;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.clock.request_complete();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let mut router = self.router.clone();
        tower_service::Service::call(&mut router, req)
    }
}

/// Serves one HTTP/1.1 connection (plain or TLS) until the client leaves, a deadline
/// passes, or `info.shutdown` fires (then the request in progress finishes and the
/// connection closes). Returns why it ended.
///
/// # Errors
/// The connection failed with an I/O error other than a timeout or a reset.
pub(crate) async fn serve_connection<I>(
    io: I,
    router: Router,
    clock: RequestClock,
    info: &ConnInfo,
) -> io::Result<String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = ClockedRouter {
        router,
        clock,
        peer: info.peer,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own head timer also runs while a keep-alive connection waits for its next
    // request, so it is the longer of the two timeouts: the guarded stream already
    // enforces the handshake timeout on the first head and the idle timeout afterwards.
    let head_timeout = info.limits.idle_timeout.max(info.limits.handshake_timeout);
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = info.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) if info.shutdown.is_cancelled() => Ok("server shutting down".into()),
        Ok(()) => Ok("client closed".into()),
        Err(e) => end_reason(&e),
    }
}

/// Why a connection hyper gave up on ended: deadlines and vanished clients are normal
/// ends (a reason for the log); other I/O errors are errors.
fn end_reason(e: &hyper::Error) -> io::Result<String> {
    if e.is_timeout() {
        return Ok("request head timeout".into());
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io_err) = s.downcast_ref::<io::Error>() {
            return match io_err.kind() {
                io::ErrorKind::TimedOut => Ok(io_err.to_string()),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => Ok(format!("client gone: {io_err}")),
                kind => Err(io::Error::new(kind, io_err.to_string())),
            };
        }
        source = s.source();
    }
    // Parse errors, a client closing mid-request and the like: hyper answered (or could
    // not) and the connection is over.
    Ok(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_503() {
        let r = refusal_response(&Refusal::ServerFull { limit: 3 });
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("\r\nRetry-After: 5\r\n"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("limit of 3 connections"));
    }
}
