//! A raw IRC client on a blocking socket, for the tests that drive `sockit serve`'s IRC
//! port beside a real client (the terminal UI, irssi, other cluster nodes).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A raw IRC client; every wait for a line is bounded by its hang guard.
pub struct RawIrc {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    wait: Duration,
}

impl RawIrc {
    /// Connects to `addr`; no line is sent.
    pub fn connect(addr: &str, wait: Duration) -> RawIrc {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        RawIrc {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
            wait,
        }
    }

    /// Connects and registers as `nick`, sending `PASS pass` first when given; returns
    /// after the 001.
    pub fn register(addr: &str, nick: &str, pass: Option<&str>, wait: Duration) -> RawIrc {
        let mut r = Self::connect(addr, wait);
        if let Some(pass) = pass {
            r.send(&format!("PASS {pass}"));
        }
        r.send(&format!("NICK {nick}"));
        r.send(&format!("USER {nick} 0 * :{nick}"));
        r.until(|l| l.contains(" 001 "));
        r
    }

    /// Joins `channel`; returns after the end of its NAMES (366).
    pub fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}"));
        self.until(|l| l.contains(" 366 "));
    }

    /// Sends one line (CR LF added).
    pub fn send(&mut self, line: &str) {
        self.wr.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Reads lines until one matches (answering PINGs); panics on timeout or EOF.
    pub fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + self.wait;
        while Instant::now() < deadline {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).expect("read (timed out?)");
            assert!(n > 0, "server closed the connection");
            let line = line.trim_end().to_owned();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}"));
                continue;
            }
            if pred(&line) {
                return line;
            }
        }
        panic!("no matching line within {:?}", self.wait);
    }
}
