//! A decoded packet timeline, like tshark's one-line summaries: time since the first
//! frame, who sent it to whom, protocol, length and the fields that matter (TCP flags
//! and relative sequence/acknowledgement numbers, TFTP opcode and block, ARP question
//! and answer).
//!
//! Sequence numbers are shown relative to the first one seen in each direction, as
//! Wireshark does, so a handshake reads `Seq=0`, `Seq=0 Ack=1`, `Seq=1 Ack=1`. TFTP is
//! recognized by its request to a TFTP port; the transfer that follows uses a new
//! server port (RFC 1350's transfer IDs), so the client's endpoint marks the flow.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::experiments::packets::{decode, decode_tftp, Arp, Frame, Kind, Mac, TcpFlags, Tftp};

/// Names for the timeline's columns.
#[derive(Debug, Clone, Default)]
pub struct TimelineConfig {
    /// IP addresses shown by name (`client`, `server`).
    pub hosts: Vec<(IpAddr, String)>,
    /// MAC addresses shown by name, for ARP.
    pub macs: Vec<(Mac, String)>,
    /// UDP ports whose requests start a TFTP transfer (69, and sockit's 6969).
    pub tftp_ports: Vec<u16>,
}

impl TimelineConfig {
    fn host(&self, ip: IpAddr) -> String {
        self.hosts
            .iter()
            .find(|(a, _)| *a == ip)
            .map_or_else(|| ip.to_string(), |(_, n)| n.clone())
    }

    fn mac(&self, mac: Mac) -> String {
        if mac == Mac::BROADCAST {
            return "broadcast".into();
        }
        self.macs
            .iter()
            .find(|(m, _)| *m == mac)
            .map_or_else(|| mac.to_string(), |(_, n)| n.clone())
    }
}

/// A TCP segment as the timeline shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpView {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Flags.
    pub flags: TcpFlags,
    /// Sequence number relative to the first one of this direction.
    pub seq: u32,
    /// Acknowledgement number relative to the first sequence number of the other
    /// direction (when ACK is set; absolute when that direction was not seen).
    pub ack: Option<u32>,
    /// Payload bytes.
    pub len: usize,
    /// Receive window in bytes: scaled by the sender's window scale once both SYNs
    /// agreed on scaling (RFC 7323), as Wireshark shows it.
    pub window: u32,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Frame number, from 1 (as tshark counts).
    pub no: usize,
    /// Nanoseconds since the first frame.
    pub t_ns: u64,
    /// `out` when the capturing interface sent it, `in` when it received it.
    pub dir: &'static str,
    /// Sender (name, address or MAC).
    pub src: String,
    /// Receiver.
    pub dst: String,
    /// `TCP`, `UDP`, `TFTP`, `ARP`, `ICMP`, `IP`, `ETH`, or `?` when undecodable.
    pub proto: &'static str,
    /// Frame length in bytes.
    pub len: usize,
    /// The summary, like tshark's Info column.
    pub info: String,
    /// TCP fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpView>,
    /// TFTP fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tftp: Option<Tftp>,
    /// ARP fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
}

impl Entry {
    /// Seconds since the first frame.
    pub fn t_secs(&self) -> f64 {
        self.t_ns as f64 / 1e9
    }
}

/// Decodes `frames` into a timeline (frames that do not decode get a `?` line).
pub fn build(frames: &[Frame], cfg: &TimelineConfig) -> Vec<Entry> {
    let t0 = frames.first().map_or(0, |f| f.ts_ns);
    let mut isn: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    // The window scale each sender announced in its SYN (None: it sent no option).
    let mut scale: HashMap<(SocketAddr, SocketAddr), Option<u8>> = HashMap::new();
    let mut tftp_clients: HashSet<SocketAddr> = HashSet::new();
    let mut out = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let mut e = Entry {
            no: i + 1,
            t_ns: f.ts_ns.saturating_sub(t0),
            dir: if f.outgoing { "out" } else { "in" },
            src: String::new(),
            dst: String::new(),
            proto: "?",
            len: f.data.len(),
            info: String::new(),
            tcp: None,
            tftp: None,
            arp: None,
        };
        let p = match decode(&f.data) {
            Ok(p) => p,
            Err(err) => {
                e.info = err.to_string();
                out.push(e);
                continue;
            }
        };
        match p.kind {
            Kind::Arp(a) => {
                e.src = cfg.mac(p.src_mac);
                e.dst = cfg.mac(p.dst_mac);
                e.proto = "ARP";
                e.info = a.to_string();
                if a.op == crate::experiments::packets::ArpOp::Request
                    && p.dst_mac != Mac::BROADCAST
                {
                    e.info.push_str(" (unicast probe)");
                }
                e.arp = Some(a);
            }
            Kind::Tcp(t) => {
                e.src = cfg.host(t.src.ip());
                e.dst = cfg.host(t.dst.ip());
                e.proto = "TCP";
                let base = *isn.entry((t.src, t.dst)).or_insert(t.seq);
                if t.flags.has(TcpFlags::SYN) {
                    scale.insert((t.src, t.dst), t.wscale);
                }
                let shift = match (scale.get(&(t.src, t.dst)), scale.get(&(t.dst, t.src))) {
                    (Some(Some(mine)), Some(Some(_))) if !t.flags.has(TcpFlags::SYN) => {
                        (*mine).min(14)
                    }
                    _ => 0,
                };
                let ack = t.flags.has(TcpFlags::ACK).then(|| {
                    isn.get(&(t.dst, t.src))
                        .map_or(t.ack, |b| t.ack.wrapping_sub(*b))
                });
                let v = TcpView {
                    src_port: t.src.port(),
                    dst_port: t.dst.port(),
                    flags: t.flags,
                    seq: t.seq.wrapping_sub(base),
                    ack,
                    len: t.payload_len,
                    window: u32::from(t.window) << shift,
                };
                let _ = write!(
                    e.info,
                    "{} → {} {} Seq={}",
                    v.src_port, v.dst_port, v.flags, v.seq
                );
                if let Some(a) = v.ack {
                    let _ = write!(e.info, " Ack={a}");
                }
                let _ = write!(e.info, " Win={} Len={}", v.window, v.len);
                if let Some(m) = t.mss {
                    let _ = write!(e.info, " MSS={m}");
                }
                e.tcp = Some(v);
            }
            Kind::Udp(u) => {
                e.src = cfg.host(u.src.ip());
                e.dst = cfg.host(u.dst.ip());
                e.proto = "UDP";
                let tftp = decode_tftp(&u.payload);
                let starts = matches!(tftp, Some(Tftp::Rrq { .. } | Tftp::Wrq { .. }))
                    && cfg.tftp_ports.contains(&u.dst.port());
                if starts {
                    tftp_clients.insert(u.src);
                }
                let in_flow = tftp_clients.contains(&u.src) || tftp_clients.contains(&u.dst);
                match tftp.filter(|_| in_flow) {
                    Some(t) => {
                        e.proto = "TFTP";
                        e.info = format!("{} → {} {t}", u.src.port(), u.dst.port());
                        e.tftp = Some(t);
                    }
                    None => {
                        e.info =
                            format!("{} → {} Len={}", u.src.port(), u.dst.port(), u.payload_len);
                    }
                }
            }
            Kind::Icmp(i) => {
                e.src = cfg.host(i.src);
                e.dst = cfg.host(i.dst);
                e.proto = "ICMP";
                e.info = match (i.icmp_type, i.code) {
                    (0, _) => "echo reply".into(),
                    (8, _) => "echo request".into(),
                    (3, 3) => "destination unreachable (port unreachable)".into(),
                    (t, c) => format!("type {t} code {c}"),
                };
            }
            Kind::Ip { src, dst, protocol } => {
                e.src = cfg.host(src);
                e.dst = cfg.host(dst);
                e.proto = "IP";
                e.info = format!("protocol {protocol}");
            }
            Kind::Other { ethertype } => {
                e.src = cfg.mac(p.src_mac);
                e.dst = cfg.mac(p.dst_mac);
                e.proto = "ETH";
                e.info = format!("ethertype 0x{ethertype:04x}");
            }
        }
        out.push(e);
    }
    out
}

/// Renders the timeline, one line per frame:
/// `  3   0.000151 client → server TCP    66 40312 → 7007 [ACK] Seq=1 Ack=1 Win=502 Len=0`.
pub fn render(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = writeln!(
            s,
            "{:>4} {:>11.6} {:>9} → {:<9} {:<5} {:>5} {}",
            e.no,
            e.t_secs(),
            e.src,
            e.dst,
            e.proto,
            e.len,
            e.info
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(
        src: [u8; 4],
        sp: u16,
        dst: [u8; 4],
        dp: u16,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
    ) -> Frame {
        let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 1000);
        if syn {
            b = b.syn();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut data = Vec::new();
        b.write(&mut data, &[]).unwrap();
        Frame {
            ts_ns: 1_000 + u64::from(seq % 7),
            outgoing: true,
            orig_len: data.len() as u32,
            data,
        }
    }

    #[test]
    fn handshake_has_relative_numbers() {
        let c = [198, 18, 0, 2];
        let s = [198, 18, 0, 1];
        let frames = [
            tcp(c, 4000, s, 7, 5000, None, true),
            tcp(s, 7, c, 4000, 9000, Some(5001), true),
            tcp(c, 4000, s, 7, 5001, Some(9001), false),
        ];
        let cfg = TimelineConfig {
            hosts: vec![(s.into(), "server".into()), (c.into(), "client".into())],
            ..Default::default()
        };
        let t = build(&frames, &cfg);
        let seq: Vec<_> = t
            .iter()
            .map(|e| (e.tcp.unwrap().seq, e.tcp.unwrap().ack))
            .collect();
        assert_eq!(seq, vec![(0, None), (0, Some(1)), (1, Some(1))]);
        assert_eq!(t[1].src, "server");
        assert!(
            t[1].info.contains("[SYN, ACK] Seq=0 Ack=1"),
            "{}",
            t[1].info
        );
        assert!(render(&t).lines().count() == 3);
    }

    /// A datagram from the client (198.18.0.2) or, with `from_server`, to it.
    fn udp(from_server: bool, sp: u16, dp: u16, payload: &[u8]) -> Frame {
        let (c, s) = ([198, 18, 0, 2], [198, 18, 0, 1]);
        let (src, dst) = if from_server { (s, c) } else { (c, s) };
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .udp(sp, dp);
        let mut data = Vec::new();
        b.write(&mut data, payload).unwrap();
        Frame {
            ts_ns: 0,
            outgoing: true,
            orig_len: data.len() as u32,
            data,
        }
    }

    #[test]
    fn tftp_flow_follows_the_transfer_id() {
        let cfg = TimelineConfig {
            tftp_ports: vec![6969],
            ..Default::default()
        };
        let frames = [
            udp(false, 5000, 6969, b"\x00\x01f\x00octet\x00"),
            udp(true, 40000, 5000, b"\x00\x03\x00\x01abc"),
            udp(false, 5000, 40000, b"\x00\x04\x00\x01"),
            // Another flow that merely looks like TFTP stays UDP.
            udp(false, 7000, 7001, b"\x00\x04\x00\x01"),
        ];
        let t = build(&frames, &cfg);
        let protos: Vec<_> = t.iter().map(|e| e.proto).collect();
        assert_eq!(protos, ["TFTP", "TFTP", "TFTP", "UDP"]);
        assert_eq!(t[1].tftp, Some(Tftp::Data { block: 1, len: 3 }));
        assert!(t[2].info.ends_with("ACK block=1"), "{}", t[2].info);
    }

    #[test]
    fn garbage_gets_a_question_mark() {
        let f = Frame {
            ts_ns: 0,
            outgoing: false,
            data: vec![1, 2, 3],
            orig_len: 3,
        };
        let t = build(&[f], &TimelineConfig::default());
        assert_eq!(t[0].proto, "?");
    }
}
