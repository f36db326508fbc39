//! The byte streams services run over.

use tokio::io::{AsyncRead, AsyncWrite};

/// Any stream a connection can run over (TCP, a guarded TCP stream, TLS).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A boxed stream, so services need not be generic over the transport.
pub type BoxedStream = Box<dyn AsyncStream>;
