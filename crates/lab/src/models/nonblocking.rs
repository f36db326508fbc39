//! Non-blocking sockets polled in a loop, without any readiness API: every pass tries
//! `accept` and one `read` on every connection, each answering EAGAIN when there is
//! nothing. It works, and it keeps a core at 100% even when idle (we only
//! `yield_now` after an empty pass) — the reason readiness APIs exist.

use std::net::{TcpListener, TcpStream};

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::Shutdown;

/// Runs `workers` busy loops until `shutdown` triggers.
///
/// # Errors
/// When the listener cannot be made non-blocking.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let mut conns: Vec<(TcpStream, EchoConn)> = Vec::new();
    let mut scratch = vec![0u8; BUF_SIZE];
    while !shutdown.is_triggered() {
        let mut progressed = false;
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true)
                        .map_err(|e| LabError::io("set non-blocking", e))?;
                    conns.push((s, EchoConn::default()));
                    progressed = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    break;
                }
            }
        }
        conns.retain_mut(|(s, c)| {
            let before = c.bytes_in;
            let r = c.pump(s, &mut scratch, ReadMode::Once);
            progressed |= c.bytes_in != before;
            matches!(r, Ok(Want::Read) | Ok(Want::Write))
        });
        if !progressed {
            std::thread::yield_now();
        }
    }
    Ok(())
}
