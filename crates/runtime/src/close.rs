//! Closing a connection so that the peer reads the last reply.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Shuts down the write side, then drains (at most 1 MiB, for at most a second) what the
/// peer still sends. Closing a socket with unread input makes the kernel send a reset,
/// which can destroy the last reply before the peer reads it.
pub async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut drained = 0usize;
        while drained < 1 << 20 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
