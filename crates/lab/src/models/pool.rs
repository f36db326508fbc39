//! Fixed thread pool: `workers` threads take accepted connections from a shared queue.
//! At most `workers` clients are served at once; the rest wait in the queue (a full
//! pool looks like an iterative server to the next client).

use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::echo::echo_blocking;
use crate::error::{LabError, Result};
use crate::listener::wake_accept;
use crate::models::conn_registry::ConnRegistry;
use crate::shutdown::Shutdown;

/// Runs the pool until `shutdown` triggers, then drains and joins the workers.
///
/// # Errors
/// When a worker thread cannot be spawned.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| LabError::io("listener address", e))?;
    let registry = ConnRegistry::new(shutdown);
    shutdown.on_trigger(move || wake_accept(addr));
    let (tx, rx) = mpsc::channel::<TcpStream>();
    let rx = Arc::new(Mutex::new(rx));
    let mut pool = Vec::new();
    for i in 0..workers.max(1) {
        let rx = Arc::clone(&rx);
        let reg = registry.clone();
        let h = std::thread::Builder::new()
            .name(format!("lab-pool-{i}"))
            .spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(mut stream) = next else { return };
                let _guard = reg.register(&stream);
                if let Err(e) = echo_blocking(&mut stream) {
                    tracing::debug!(error = %e, "connection ended with error");
                }
            })
            .map_err(|e| LabError::io("spawn pool thread", e))?;
        pool.push(h);
    }
    loop {
        let accepted = listener.accept();
        if shutdown.is_triggered() {
            break;
        }
        match accepted {
            Ok((stream, _)) => {
                if tx.send(stream).is_err() {
                    break;
                }
            }
            Err(e) => tracing::debug!(error = %e, "accept failed"),
        }
    }
    // Closing the channel ends the workers once their current client is shut down;
    // queued clients are dropped (closed) by the receiver.
    drop(tx);
    for h in pool {
        let _ = h.join();
    }
    Ok(())
}
