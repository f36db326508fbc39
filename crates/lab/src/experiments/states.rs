//! `sockit lab states`: one connection watched through its TCP states, polled from
//! /proc/net/tcp and printed as a timeline for both ends.
//!
//! On loopback the handshake takes microseconds, too fast to see SYN_SENT. So the
//! experiment first fills a `listen(0)` accept queue with one connection: the client's
//! SYN is then dropped and it stays in SYN_SENT until we accept the filler and the SYN
//! is retransmitted (after ~1 s). Then the client half-closes (FIN_WAIT1 → FIN_WAIT2;
//! the server side sits in CLOSE_WAIT because it has not closed), the server closes
//! (LAST_ACK, then gone) and the client ends in TIME_WAIT, where it stays for 60 s.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::error::{LabError, Result};
use crate::experiments::proc_net::{tcp_table, TcpState};
use crate::experiments::say;

/// One observed state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Milliseconds since the start.
    pub at_ms: u128,
    /// `client` or `server`.
    pub side: &'static str,
    /// The new state (`None`: the socket is gone from the table).
    pub state: Option<TcpState>,
}

struct Watch {
    t0: Instant,
    client: SocketAddrV4,
    server: SocketAddrV4,
    last: [Option<TcpState>; 2],
    timeline: Vec<Transition>,
}

impl Watch {
    fn sample(&mut self, out: &mut dyn Write) -> Result<()> {
        let table = tcp_table()?;
        let find = |l: SocketAddrV4, r: SocketAddrV4| {
            table
                .iter()
                .find(|e| e.local == l && e.remote == r)
                .map(|e| e.state)
        };
        let now = [
            find(self.client, self.server),
            find(self.server, self.client),
        ];
        for (i, side) in ["client", "server"].into_iter().enumerate() {
            if now[i] != self.last[i] {
                let at_ms = self.t0.elapsed().as_millis();
                let name = now[i].map_or("(gone)".to_string(), |s| s.name());
                let pad = if i == 0 {
                    ""
                } else {
                    "                          "
                };
                say(out, format!("OBSERVES {at_ms:>5} ms  {pad}{side}: {name}"));
                self.timeline.push(Transition {
                    at_ms,
                    side,
                    state: now[i],
                });
                self.last[i] = now[i];
            }
        }
        Ok(())
    }

    /// Samples until `done(client, server)` or `limit`.
    fn until(
        &mut self,
        out: &mut dyn Write,
        limit: Duration,
        done: impl Fn(Option<TcpState>, Option<TcpState>) -> bool,
    ) -> Result<bool> {
        let start = Instant::now();
        loop {
            self.sample(out)?;
            if done(self.last[0], self.last[1]) {
                return Ok(true);
            }
            if start.elapsed() > limit {
                return Ok(false);
            }
            // Polling the kernel's table every millisecond (bounded by `limit`).
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn v4(a: SocketAddr) -> Result<SocketAddrV4> {
    match a {
        SocketAddr::V4(v) => Ok(v),
        SocketAddr::V6(_) => Err(LabError::Invalid("expected IPv4".into())),
    }
}

/// Runs the experiment, narrating on `out`, and returns the timeline.
///
/// # Errors
/// When sockets cannot be created or /proc cannot be read.
pub fn run(out: &mut dyn Write) -> Result<Vec<Transition>> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io("socket"))?;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    sock.bind(&any.into()).map_err(io("bind"))?;
    sock.listen(0).map_err(io("listen"))?;
    let listener: TcpListener = sock.into();
    let laddr = listener.local_addr().map_err(io("local_addr"))?;
    say(
        out,
        format!("DOES: listen(0) on {laddr}; one filler connection fills the accept queue."),
    );
    let filler = TcpStream::connect(laddr).map_err(io("filler connect"))?;

    let client = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io("socket"))?;
    client.bind(&any.into()).map_err(io("bind client"))?;
    let caddr = client
        .local_addr()
        .map_err(io("client addr"))?
        .as_socket()
        .expect("inet");
    client.set_nonblocking(true).map_err(io("nonblocking"))?;
    let mut w = Watch {
        t0: Instant::now(),
        client: v4(caddr)?,
        server: v4(laddr)?,
        last: [None, None],
        timeline: Vec::new(),
    };
    say(
        out,
        format!("DOES: client {caddr} connects (non-blocking); its SYN meets a full queue."),
    );
    let _ = client.connect(&laddr.into());
    w.until(out, Duration::from_millis(300), |c, _| {
        c == Some(TcpState::SynSent)
    })?;

    say(out, "DOES: accept and close the filler, freeing the queue; the client's SYN retransmission (~1 s) gets through.");
    let (f, _) = listener.accept().map_err(io("accept filler"))?;
    drop(f);
    drop(filler);
    w.until(out, Duration::from_secs(8), |c, s| {
        c == Some(TcpState::Established) && s == Some(TcpState::Established)
    })?;
    let (server, _) = listener.accept().map_err(io("accept client"))?;
    let client: TcpStream = client.into();

    say(
        out,
        "DOES: client shutdown(SHUT_WR) — sends FIN; the server does not close yet.",
    );
    client.shutdown(Shutdown::Write).map_err(io("shutdown"))?;
    w.until(out, Duration::from_secs(2), |c, s| {
        c == Some(TcpState::FinWait2) && s == Some(TcpState::CloseWait)
    })?;

    say(out, "DOES: server close() — sends its FIN.");
    drop(server);
    w.until(out, Duration::from_secs(2), |c, s| {
        c == Some(TcpState::TimeWait) && s.is_none()
    })?;
    drop(client);
    say(
        out,
        "EXPLAINS: connect() sends SYN (SYN_SENT) and the kernel answers SYN-ACK only if the \
        accept queue has room; the handshake completes without accept(). The side that closes \
        first goes FIN_WAIT1 → FIN_WAIT2 and ends in TIME_WAIT (2×MSL, 60 s on Linux) so late \
        segments of this connection cannot corrupt a new one on the same 4-tuple; the other \
        side sits in CLOSE_WAIT until its application calls close() — many CLOSE_WAIT sockets \
        mean a program that forgets to close.",
    );
    Ok(w.timeline)
}
