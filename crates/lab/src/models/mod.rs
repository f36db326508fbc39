//! One module per concurrency model. Each exposes `serve(listener, ..., shutdown)` that runs
//! until the [`Shutdown`] triggers, then closes every connection it holds and returns;
//! [`python`] runs the Python models' scripts, [`c_epoll`] the C reference.

pub mod c_epoll;
pub mod conn_registry;
pub mod epoll;
pub mod epoll_et;
pub mod epoll_lt;
pub mod fork;
pub mod io_uring;
pub mod iterative;
pub mod mio;
pub mod nonblocking;
pub mod poll;
pub mod pool;
pub mod python;
pub mod select;
pub mod thread;
pub mod tokio_local;
pub mod tokio_mt;

use std::net::TcpListener;

use crate::error::{LabError, Result};
use crate::shutdown::Shutdown;

/// Runs `workers` copies of an event loop on clones of one listener, each in its own
/// thread (the listener's accept queue is shared; whichever loop is awake takes the
/// connection). Returns the first error any loop reported.
pub(crate) fn run_loops<F>(
    listener: TcpListener,
    workers: usize,
    shutdown: &Shutdown,
    one_loop: F,
) -> Result<()>
where
    F: Fn(TcpListener, &Shutdown) -> Result<()> + Send + Sync + Copy + 'static,
{
    listener
        .set_nonblocking(true)
        .map_err(|e| LabError::io("set listener non-blocking", e))?;
    if workers <= 1 {
        return one_loop(listener, shutdown);
    }
    let mut handles = Vec::new();
    for i in 0..workers {
        let l = listener
            .try_clone()
            .map_err(|e| LabError::io("clone listener", e))?;
        let s = shutdown.clone();
        let h = std::thread::Builder::new()
            .name(format!("lab-loop-{i}"))
            .spawn(move || one_loop(l, &s))
            .map_err(|e| LabError::io("spawn event-loop thread", e))?;
        handles.push(h);
    }
    let mut first_err = Ok(());
    for h in handles {
        let r = h
            .join()
            .unwrap_or_else(|_| Err(LabError::Invalid("event loop panicked".into())));
        if first_err.is_ok() {
            first_err = r;
        }
        // One loop failing must not leave the others running.
        shutdown.trigger();
    }
    first_err
}
