//! tokio's current-thread runtime: every connection is a coroutine (task) multiplexed on
//! a single OS thread, like greenlets/gevent in the Python course, but with `async`/
//! `.await` marking the switch points. `workers` is ignored: one thread by definition.

use std::net::TcpListener;

use crate::error::{LabError, Result};
use crate::models::tokio_mt::accept_loop;
use crate::shutdown::Shutdown;

/// Runs a current-thread runtime until `shutdown` triggers.
///
/// # Errors
/// When the runtime cannot be built.
pub fn serve(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| LabError::io("build tokio runtime", e))?;
    rt.block_on(accept_loop(listener, shutdown.clone()))
}
