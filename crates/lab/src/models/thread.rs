//! Thread per connection: the accept loop hands each client to a new OS thread running a
//! blocking echo. Simple and fast at low counts; each client costs a stack and a kernel
//! task, and the scheduler juggles them all.

use std::net::TcpListener;
use std::thread::JoinHandle;

use crate::echo::echo_blocking;
use crate::error::{LabError, Result};
use crate::listener::wake_accept;
use crate::models::conn_registry::ConnRegistry;
use crate::shutdown::Shutdown;

/// Stack size of each connection thread. Smaller than std's 2 MiB default so that 10k
/// threads fit in the address space comfortably; the echo handler needs ~20 KiB.
pub const STACK_SIZE: usize = 128 * 1024;

/// Spawns a thread per accepted client until `shutdown` triggers, then joins them.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| LabError::io("listener address", e))?;
    let registry = ConnRegistry::new(shutdown);
    shutdown.on_trigger(move || wake_accept(addr));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let accepted = listener.accept();
        if shutdown.is_triggered() {
            break;
        }
        let (mut stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let reg = registry.clone();
        let spawned = std::thread::Builder::new()
            .name("lab-conn".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _guard = reg.register(&stream);
                if let Err(e) = echo_blocking(&mut stream) {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with error");
                }
            });
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => tracing::warn!(error = %e, "cannot spawn a thread; connection dropped"),
        }
        threads.retain(|h| !h.is_finished());
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
