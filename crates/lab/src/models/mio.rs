//! The mio crate: a portable readiness API (epoll on Linux, edge-triggered). Tokens
//! identify sources, a `mio::Waker` carries the shutdown, and as with raw EPOLLET every
//! event is drained until `WouldBlock`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use ::mio::net::{TcpListener as MioListener, TcpStream as MioStream};
use ::mio::{Events, Interest, Poll, Token, Waker};

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::Shutdown;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Runs `workers` mio event loops until `shutdown` triggers.
///
/// # Errors
/// When the poll instance or waker cannot be created.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let mut poll = Poll::new().map_err(io("mio poll"))?;
    // The loop keeps its own handle on the waker: if the shutdown's closure held the
    // only one, dropping it right after `wake()` would close the eventfd and epoll would
    // forget the pending wakeup.
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io("mio waker"))?);
    let trigger_waker = Arc::clone(&waker);
    shutdown.on_trigger(move || {
        let _ = trigger_waker.wake();
    });
    let mut listener = MioListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(io("register listener"))?;
    let mut conns: HashMap<Token, (MioStream, EchoConn)> = HashMap::new();
    let mut next = 2usize;
    let mut scratch = vec![0u8; BUF_SIZE];
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LabError::io("mio poll", e));
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => return Ok(()),
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let token = Token(next);
                            next += 1;
                            poll.registry()
                                .register(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                                .map_err(io("register connection"))?;
                            conns.insert(token, (s, EchoConn::default()));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            break;
                        }
                    }
                },
                token => {
                    let Some((s, c)) = conns.get_mut(&token) else {
                        continue;
                    };
                    match c.pump(s, &mut scratch, ReadMode::Drain) {
                        Ok(Want::Close) | Err(_) => {
                            conns.remove(&token);
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        if shutdown.is_triggered() {
            return Ok(());
        }
    }
}
