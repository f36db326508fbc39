//! Reading the kernel's view of TCP sockets (`/proc/net/tcp`, what `ss`/`netstat` read
//! too) and its counters (`/proc/net/netstat`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{LabError, Result};

/// TCP states as numbered in the kernel's `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// 1
    Established,
    /// 2
    SynSent,
    /// 3
    SynRecv,
    /// 4
    FinWait1,
    /// 5
    FinWait2,
    /// 6
    TimeWait,
    /// 7
    Close,
    /// 8
    CloseWait,
    /// 9
    LastAck,
    /// 10
    Listen,
    /// 11
    Closing,
    /// Anything newer.
    Other(u8),
}

impl TcpState {
    /// From the hex code in /proc/net/tcp.
    pub fn from_code(c: u8) -> Self {
        use TcpState::*;
        match c {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            n => Other(n),
        }
    }

    /// The name `ss` and `netstat` print.
    pub fn name(self) -> String {
        use TcpState::*;
        match self {
            Established => "ESTABLISHED".into(),
            SynSent => "SYN_SENT".into(),
            SynRecv => "SYN_RECV".into(),
            FinWait1 => "FIN_WAIT1".into(),
            FinWait2 => "FIN_WAIT2".into(),
            TimeWait => "TIME_WAIT".into(),
            Close => "CLOSE".into(),
            CloseWait => "CLOSE_WAIT".into(),
            LastAck => "LAST_ACK".into(),
            Listen => "LISTEN".into(),
            Closing => "CLOSING".into(),
            Other(n) => format!("STATE_{n}"),
        }
    }
}

/// One line of /proc/net/tcp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address.
    pub remote: SocketAddrV4,
    /// Connection state.
    pub state: TcpState,
    /// Send queue; for a listener 0 here (`ss` shows the max backlog instead).
    pub tx_queue: u32,
    /// Receive queue; for a listener, the number of connections waiting in the accept
    /// queue (what `ss -lnt` shows as Recv-Q).
    pub rx_queue: u32,
}

fn parse_addr(s: &str) -> Option<SocketAddrV4> {
    let (ip, port) = s.split_once(':')?;
    let raw = u32::from_str_radix(ip, 16).ok()?;
    // The kernel prints the network-order address as a host-order integer.
    let ip = Ipv4Addr::from(raw.to_ne_bytes());
    Some(SocketAddrV4::new(ip, u16::from_str_radix(port, 16).ok()?))
}

/// Parses the text of /proc/net/tcp.
pub fn parse_tcp(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (tx, rx) = f.get(4)?.split_once(':')?;
            Some(TcpEntry {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                state: TcpState::from_code(u8::from_str_radix(f.get(3)?, 16).ok()?),
                tx_queue: u32::from_str_radix(tx, 16).ok()?,
                rx_queue: u32::from_str_radix(rx, 16).ok()?,
            })
        })
        .collect()
}

/// Reads /proc/net/tcp (IPv4 sockets of this network namespace).
///
/// # Errors
/// [`LabError::File`] when /proc is not mounted.
pub fn tcp_table() -> Result<Vec<TcpEntry>> {
    let path = "/proc/net/tcp";
    let text = std::fs::read_to_string(path).map_err(|source| LabError::File {
        path: path.into(),
        source,
    })?;
    Ok(parse_tcp(&text))
}

/// The TcpExt counters of /proc/net/netstat (ListenOverflows, ListenDrops, ...).
///
/// # Errors
/// [`LabError::File`] when /proc is not mounted.
pub fn tcp_ext_counters() -> Result<HashMap<String, u64>> {
    let path = "/proc/net/netstat";
    let text = std::fs::read_to_string(path).map_err(|source| LabError::File {
        path: path.into(),
        source,
    })?;
    Ok(parse_netstat(&text, "TcpExt:"))
}

/// Parses a header/value line pair of /proc/net/netstat for `prefix`.
pub fn parse_netstat(text: &str, prefix: &str) -> HashMap<String, u64> {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    let mut out = HashMap::new();
    if let [names, values, ..] = lines.as_slice() {
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if let Ok(v) = v.parse() {
                out.insert(n.to_string(), v);
            }
        }
    }
    out
}

/// `net.core.somaxconn`, the cap on any listen backlog.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 02 00000001:00000000 01:00000064 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listener_and_syn_sent() {
        let t = parse_tcp(SAMPLE);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t[0].state, TcpState::Listen);
        assert_eq!(t[0].rx_queue, 3);
        assert_eq!(t[1].state, TcpState::SynSent);
        assert_eq!(t[1].remote.port(), 8080);
        assert_eq!(t[1].tx_queue, 1);
    }

    #[test]
    fn parses_netstat_pairs() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: InNoRoutes\nIpExt: 1\n";
        let m = parse_netstat(text, "TcpExt:");
        assert_eq!(m["ListenOverflows"], 7);
        assert_eq!(m["ListenDrops"], 9);
        assert!(!m.contains_key("InNoRoutes"));
    }

    #[test]
    fn reads_the_real_table() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = tcp_table().unwrap();
        assert!(t
            .iter()
            .any(|e| e.local.port() == port && e.state == TcpState::Listen));
    }
}
