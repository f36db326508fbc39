//! Iterative server: blocking `accept`, then echo that one client until it leaves, then
//! the next. Every other client waits in the kernel's accept queue meanwhile.

use std::net::TcpListener;

use crate::echo::echo_blocking;
use crate::error::{LabError, Result};
use crate::listener::wake_accept;
use crate::models::conn_registry::ConnRegistry;
use crate::shutdown::Shutdown;

/// Serves one client at a time until `shutdown` triggers.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| LabError::io("listener address", e))?;
    let registry = ConnRegistry::new(shutdown);
    shutdown.on_trigger(move || wake_accept(addr));
    loop {
        let accepted = listener.accept();
        if shutdown.is_triggered() {
            return Ok(());
        }
        let (mut stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let _guard = registry.register(&stream);
        if let Err(e) = echo_blocking(&mut stream) {
            tracing::debug!(peer = %peer, error = %e, "connection ended with error");
        }
    }
}
