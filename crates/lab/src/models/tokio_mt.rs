//! tokio's multi-thread runtime: a task per connection, scheduled by a work-stealing pool
//! of `workers` threads over epoll.
//!
//! Memory per connection is kept small the way real async servers do: a task waits for
//! readability, then reads into a *per-thread* scratch buffer and writes it straight
//! back; only bytes a short write leaves behind get a per-connection allocation.

use std::cell::RefCell;
use std::net::TcpListener;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::echo::BUF_SIZE;
use crate::error::{LabError, Result};
use crate::shutdown::Shutdown;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUF_SIZE]);
}

/// Runs a multi-thread runtime with `workers` threads until `shutdown` triggers.
///
/// # Errors
/// When the runtime cannot be built.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_io()
        .build()
        .map_err(|e| LabError::io("build tokio runtime", e))?;
    rt.block_on(accept_loop(listener, shutdown.clone()))
}

/// The accept loop shared with the current-thread model: one task per connection,
/// aborted together on shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, shutdown: Shutdown) -> Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| LabError::io("set listener non-blocking", e))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| LabError::io("register listener", e))?;
    let (tx, mut rx) = watch::channel(false);
    shutdown.on_trigger(move || {
        let _ = tx.send(true);
    });
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = rx.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(async move {
                        if let Err(e) = echo(stream).await {
                            tracing::debug!(peer = %peer, error = %e, "connection ended with error");
                        }
                    });
                }
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            },
            // Reap finished tasks so the set does not grow with every past connection.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
    Ok(())
}

async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        stream.readable().await?;
        let step = SCRATCH.with(|cell| -> std::io::Result<Option<()>> {
            let mut buf = cell.borrow_mut();
            let n = match stream.try_read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Some(())),
                Err(e) => return Err(e),
            };
            let mut off = 0;
            while off < n {
                match stream.try_write(&buf[off..n]) {
                    Ok(k) => off += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            pending.extend_from_slice(&buf[off..n]);
            Ok(Some(()))
        })?;
        if step.is_none() {
            return Ok(());
        }
        if !pending.is_empty() {
            // Short write: wait for the peer to drain (backpressure), then continue.
            stream.write_all(&pending).await?;
            pending.clear();
            pending.shrink_to(0);
        }
    }
}
