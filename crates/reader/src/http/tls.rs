//! HTTPS for the reader (`sockit serve --tls`, port 8443), a service of the shared runtime
//! like the plain port (see [`super::serve_http`]): the TLS handshake runs inside the
//! connection's handler, so the runtime's connection limits and handshake timeout count
//! it, and the first request head must arrive within the handshake timeout of the
//! connect. A plain-HTTP request on the HTTPS port gets `400` in plain text, as nginx
//! answers it, and the port keeps serving.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use sockit_runtime::close::linger_close;
use sockit_runtime::server::{serve_tcp, ConnInfo, Limits, ServiceStream, TcpService};
use sockit_runtime::tls::{accept_tls, Accepted};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::transport::serve_connection;
use crate::library::Library;

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

/// The reader's HTTPS port as a [`TcpService`].
///
/// A client over a connection limit is closed without a TLS handshake (the runtime's
/// default refusal): answering it would cost the handshake the limit is there to save.
#[derive(Clone)]
pub struct HttpsService {
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for HttpsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsService").finish_non_exhaustive()
    }
}

impl HttpsService {
    /// The HTTP application over `lib` behind `acceptor`.
    pub fn new(lib: Arc<Library>, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        Self {
            router: super::router(lib),
            acceptor,
        }
    }
}

#[async_trait]
impl TcpService for HttpsService {
    fn name(&self) -> &'static str {
        "reader-https"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        let clock = info.clock.clone();
        let timeout = info.limits.handshake_timeout;
        match accept_tls(&self.acceptor, stream, timeout, None).await {
            Accepted::Tls(tls) => serve_connection(tls, self.router.clone(), clock, &info).await,
            Accepted::Plain(mut plain) => {
                let _ = plain.write_all(plain_reply().as_bytes()).await;
                linger_close(plain).await;
                Ok("plain HTTP on the HTTPS port".into())
            }
            Accepted::Gone(why) => Ok(why),
        }
    }
}

/// Serves the HTTP application over `lib` with TLS on `listener` through the shared
/// runtime with `limits` until `shutdown`, then lets open requests finish for
/// `limits.drain_timeout`.
///
/// # Errors
/// None once the listener is bound (accept errors are logged and retried).
pub async fn serve_https(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    lib: Arc<Library>,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let service = Arc::new(HttpsService::new(lib, acceptor));
    serve_tcp(listener, service, limits, shutdown).await
}
