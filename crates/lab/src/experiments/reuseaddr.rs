//! `sockit lab reuseaddr`: why servers set SO_REUSEADDR.
//!
//! The server closes a connection first, so *its* end (local port = the listening port)
//! goes to TIME_WAIT for 60 s. Restart the server then: without SO_REUSEADDR, bind(2)
//! fails with EADDRINUSE because a TIME_WAIT socket still holds the port; with it, bind
//! succeeds (Linux allows it as long as no socket is *listening* there).

use std::io::{Read, Write};

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::error::{LabError, Result};
use crate::experiments::proc_net::{tcp_table, TcpState};
use crate::experiments::say;

/// What the experiment observed.
#[derive(Debug, Clone)]
pub struct ReuseReport {
    /// The port that was rebound.
    pub port: u16,
    /// Whether a TIME_WAIT socket on that port was seen before rebinding.
    pub time_wait_seen: bool,
    /// The error of bind without SO_REUSEADDR (expected: address in use).
    pub without: Option<std::io::ErrorKind>,
    /// Whether bind + listen with SO_REUSEADDR succeeded.
    pub with_ok: bool,
}

fn bind(addr: SocketAddr, reuse: bool) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(reuse)?;
    s.bind(&addr.into())?;
    s.listen(16)?;
    Ok(s)
}

/// Listens (with or without SO_REUSEADDR), serves one connection that the server closes
/// first, closes the listener and waits until the server's end is in TIME_WAIT.
fn leave_time_wait(reuse: bool, out: &mut dyn Write) -> Result<(SocketAddr, bool)> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    let first = bind(any, reuse).map_err(io("first bind"))?;
    let addr = first
        .local_addr()
        .map_err(io("local_addr"))?
        .as_socket()
        .expect("inet");
    let port = addr.port();
    say(out, format!(
        "DOES: server listens on {addr} ({} SO_REUSEADDR), a client connects, the server closes first, the server stops.",
        if reuse { "with" } else { "without" }
    ));
    let mut client = TcpStream::connect(addr).map_err(io("connect"))?;
    let (conn, _) = first.accept().map_err(io("accept"))?;
    drop(conn); // active close on the server side → the server end will be TIME_WAIT
    let mut b = [0u8; 1];
    let _ = client.read(&mut b); // EOF: the server's FIN arrived
                                 // Close without writing: data sent to a closed socket would be answered with RST,
                                 // which skips TIME_WAIT altogether.
    drop(client);
    drop(first);
    let t0 = Instant::now();
    let mut seen = false;
    while t0.elapsed() < Duration::from_secs(2) {
        seen = tcp_table()?
            .iter()
            .any(|e| e.local.port() == port && e.state == TcpState::TimeWait);
        if seen {
            break;
        }
        // Sampling /proc until the final ACK is processed (bounded above).
        std::thread::sleep(Duration::from_millis(2));
    }
    say(
        out,
        format!(
            "OBSERVES: a socket with local port {port} in TIME_WAIT: {}",
            if seen { "yes" } else { "no" }
        ),
    );
    Ok((addr, seen))
}

/// Runs the experiment, narrating on `out`.
///
/// # Errors
/// When sockets cannot be created or /proc cannot be read.
pub fn run(out: &mut dyn Write) -> Result<ReuseReport> {
    let (addr, seen_a) = leave_time_wait(false, out)?;
    let without = match bind(addr, false) {
        Ok(_) => {
            say(
                out,
                "OBSERVES: restart without SO_REUSEADDR: bind succeeded (no TIME_WAIT left?)",
            );
            None
        }
        Err(e) => {
            say(
                out,
                format!("OBSERVES: restart without SO_REUSEADDR: bind {addr} failed: {e}"),
            );
            Some(e.kind())
        }
    };
    let (addr_b, seen_b) = leave_time_wait(true, out)?;
    let with_ok = match bind(addr_b, true) {
        Ok(_) => {
            say(
                out,
                format!("OBSERVES: restart with SO_REUSEADDR: bind {addr_b} + listen succeeded"),
            );
            true
        }
        Err(e) => {
            say(
                out,
                format!("OBSERVES: restart with SO_REUSEADDR: bind {addr_b} failed: {e}"),
            );
            false
        }
    };
    say(
        out,
        "EXPLAINS: the side that closes first keeps the 4-tuple in TIME_WAIT for 60 s. \
        For a server that is its listening port, so a quick restart collides with its own past \
        connections. Linux lets bind() reuse the port only if both the TIME_WAIT socket (it \
        inherits the option from the listener that accepted it) and the new socket have \
        SO_REUSEADDR: a server that always sets it restarts at once. It never allows two live \
        listeners on one port (that is SO_REUSEPORT). Every sockit server sets it, as does \
        Python's socketserver.",
    );
    Ok(ReuseReport {
        port: addr_b.port(),
        time_wait_seen: seen_a && seen_b,
        without,
        with_ok,
    })
}
