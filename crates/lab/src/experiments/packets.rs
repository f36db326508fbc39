//! Decoding captured Ethernet frames into what a packet timeline shows: ARP opcode and
//! addresses; TCP ports, flags, sequence and acknowledgement numbers and payload length;
//! UDP ports and payload (TFTP is decoded from it by [`decode_tftp`]); ICMP type.
//!
//! Every function here is total: any bytes give a value or a [`DecodeError`], never a
//! panic (the header parsing is `etherparse`'s, which checks every length).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use etherparse::{
    ArpOperation, EtherType, NetSlice, SlicedPacket, TcpOptionElement, TransportSlice,
};
use serde::Serialize;

/// An Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff, where an ARP request goes.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Parses `aa:bb:cc:dd:ee:ff`.
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    fn from_slice(s: &[u8]) -> Option<Mac> {
        Some(Mac(s.try_into().ok()?))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One captured frame, as a packet socket or a pcap file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When it was captured, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Sent by the capturing interface (false: received; pcap files do not say).
    pub outgoing: bool,
    /// The bytes, from the Ethernet header on (possibly cut at the snapshot length).
    pub data: Vec<u8>,
    /// The frame's length on the wire (more than `data.len()` when it was cut).
    pub orig_len: u32,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not even an Ethernet header.
    #[error("frame of {len} bytes is shorter than an Ethernet header (14)")]
    Short {
        /// The frame's length.
        len: usize,
    },
    /// A header is cut short or inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// Ethernet source.
    pub src_mac: Mac,
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// The captured length in bytes.
    pub len: usize,
    /// What it carries.
    pub kind: Kind,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "proto", rename_all = "lowercase")]
pub enum Kind {
    /// An ARP request or reply (Ethernet/IPv4 only).
    Arp(Arp),
    /// A TCP segment.
    Tcp(Tcp),
    /// A UDP datagram.
    Udp(Udp),
    /// An ICMP or ICMPv6 message.
    Icmp(Icmp),
    /// Another IP protocol.
    Ip {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// The IP protocol number.
        protocol: u8,
    },
    /// Neither IP nor Ethernet/IPv4 ARP.
    Other {
        /// The EtherType.
        ethertype: u16,
    },
}

/// An ARP opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArpOp {
    /// 1: who has TARGET_IP? tell SENDER_IP.
    Request,
    /// 2: SENDER_IP is at SENDER_MAC.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Other(u16),
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request: that is the question).
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl fmt::Display for Arp {
    /// Like Wireshark's Info column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            ArpOp::Request => write!(f, "Who has {}? Tell {}", self.target_ip, self.sender_ip),
            ArpOp::Reply => write!(f, "{} is at {}", self.sender_ip, self.sender_mac),
            ArpOp::Other(n) => write!(f, "opcode {n} {} -> {}", self.sender_ip, self.target_ip),
        }
    }
}

/// TCP header flags (the byte after the data offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers (opens a connection).
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push the data to the application.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is valid.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    const NAMES: [(u8, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// Exactly SYN (a connection request).
    pub fn is_syn(self) -> bool {
        self.0 & (Self::SYN | Self::ACK | Self::RST) == Self::SYN
    }

    /// SYN and ACK (the answer to a connection request).
    pub fn is_syn_ack(self) -> bool {
        self.0 & (Self::SYN | Self::ACK | Self::RST) == Self::SYN | Self::ACK
    }
}

impl fmt::Display for TcpFlags {
    /// Wireshark's form: `[SYN, ACK]`, in bit order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "[{}]", names.join(", "))
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A TCP segment's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tcp {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Sequence number (absolute).
    pub seq: u32,
    /// Acknowledgement number (absolute; meaningful with ACK).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window (unscaled).
    pub window: u16,
    /// Payload bytes.
    pub payload_len: usize,
    /// The MSS option, on SYNs.
    pub mss: Option<u16>,
    /// The window scale option (a shift count), on SYNs.
    pub wscale: Option<u8>,
}

/// A UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Udp {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The payload (as captured).
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Payload bytes.
    pub payload_len: usize,
}

/// An ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Icmp {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// ICMP type (3: destination unreachable, 8: echo request, ...).
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
}

/// Decodes one Ethernet frame.
///
/// # Errors
/// [`DecodeError`] when the frame is too short or a header is inconsistent.
pub fn decode(frame: &[u8]) -> Result<Packet, DecodeError> {
    if frame.len() < 14 {
        return Err(DecodeError::Short { len: frame.len() });
    }
    let (Some(dst_mac), Some(src_mac)) = (
        Mac::from_slice(&frame[0..6]),
        Mac::from_slice(&frame[6..12]),
    ) else {
        return Err(DecodeError::Short { len: frame.len() });
    };
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let sliced =
        SlicedPacket::from_ethernet(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let (src, dst, protocol) = match &sliced.net {
        Some(NetSlice::Arp(arp)) => {
            let kind = arp_kind(arp).unwrap_or(Kind::Other {
                ethertype: EtherType::ARP.0,
            });
            return Ok(Packet {
                src_mac,
                dst_mac,
                len: frame.len(),
                kind,
            });
        }
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.protocol().0,
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload().ip_number.0,
            )
        }
        None => {
            return Ok(Packet {
                src_mac,
                dst_mac,
                len: frame.len(),
                kind: Kind::Other { ethertype },
            })
        }
    };
    let kind = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            let (mut mss, mut wscale) = (None, None);
            for o in t.options_iterator() {
                match o {
                    Ok(TcpOptionElement::MaximumSegmentSize(m)) => mss = Some(m),
                    Ok(TcpOptionElement::WindowScale(w)) => wscale = Some(w),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // Byte 13 of the TCP header holds the eight flag bits.
            let flags = t.header_slice().get(13).copied().unwrap_or(0);
            Kind::Tcp(Tcp {
                src: SocketAddr::new(src, t.source_port()),
                dst: SocketAddr::new(dst, t.destination_port()),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: TcpFlags(flags),
                window: t.window_size(),
                payload_len: t.payload().len(),
                mss,
                wscale,
            })
        }
        Some(TransportSlice::Udp(u)) => Kind::Udp(Udp {
            src: SocketAddr::new(src, u.source_port()),
            dst: SocketAddr::new(dst, u.destination_port()),
            payload: u.payload().to_vec(),
            payload_len: u.payload().len(),
        }),
        Some(TransportSlice::Icmpv4(i)) => Kind::Icmp(Icmp {
            src,
            dst,
            icmp_type: i.type_u8(),
            code: i.code_u8(),
        }),
        Some(TransportSlice::Icmpv6(i)) => Kind::Icmp(Icmp {
            src,
            dst,
            icmp_type: i.type_u8(),
            code: i.code_u8(),
        }),
        _ => Kind::Ip { src, dst, protocol },
    };
    Ok(Packet {
        src_mac,
        dst_mac,
        len: frame.len(),
        kind,
    })
}

fn arp_kind(arp: &etherparse::ArpPacketSlice<'_>) -> Option<Kind> {
    let ip = |s: &[u8]| -> Option<Ipv4Addr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(s).ok()?)) };
    let op = match arp.operation() {
        ArpOperation::REQUEST => ArpOp::Request,
        ArpOperation::REPLY => ArpOp::Reply,
        ArpOperation(n) => ArpOp::Other(n),
    };
    Some(Kind::Arp(Arp {
        op,
        sender_mac: Mac::from_slice(arp.sender_hw_addr())?,
        sender_ip: ip(arp.sender_protocol_addr())?,
        target_mac: Mac::from_slice(arp.target_hw_addr())?,
        target_ip: ip(arp.target_protocol_addr())?,
    }))
}

/// A TFTP packet (RFC 1350, options RFC 2347), as far as a timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "opcode", rename_all = "UPPERCASE")]
pub enum Tftp {
    /// 1: read request.
    Rrq {
        /// The file asked for.
        file: String,
        /// `octet` or `netascii`.
        mode: String,
        /// Options (blksize, tsize, timeout, windowsize...).
        options: Vec<(String, String)>,
    },
    /// 2: write request.
    Wrq {
        /// The file to write.
        file: String,
        /// `octet` or `netascii`.
        mode: String,
        /// Options.
        options: Vec<(String, String)>,
    },
    /// 3: a block of data (shorter than the block size: the last one).
    Data {
        /// Block number (wraps at 65535).
        block: u16,
        /// Data bytes.
        len: usize,
    },
    /// 4: acknowledges a block.
    Ack {
        /// Block number.
        block: u16,
    },
    /// 5: error; ends the transfer.
    Error {
        /// The error code.
        code: u16,
        /// The message.
        message: String,
    },
    /// 6: option acknowledgement.
    Oack {
        /// Options the server accepted.
        options: Vec<(String, String)>,
    },
}

impl fmt::Display for Tftp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opts = |o: &[(String, String)]| {
            o.iter()
                .map(|(k, v)| format!(" {k}={v}"))
                .collect::<String>()
        };
        match self {
            Tftp::Rrq {
                file,
                mode,
                options,
            } => write!(f, "RRQ {file:?} {mode}{}", opts(options)),
            Tftp::Wrq {
                file,
                mode,
                options,
            } => write!(f, "WRQ {file:?} {mode}{}", opts(options)),
            Tftp::Data { block, len } => write!(f, "DATA block={block} len={len}"),
            Tftp::Ack { block } => write!(f, "ACK block={block}"),
            Tftp::Error { code, message } => write!(f, "ERROR code={code} {message:?}"),
            Tftp::Oack { options } => write!(f, "OACK{}", opts(options)),
        }
    }
}

/// Splits `b` at its first NUL into a (lossy UTF-8) string and the rest.
fn nul_str(b: &[u8]) -> Option<(String, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((
        String::from_utf8_lossy(&b[..end]).into_owned(),
        &b[end + 1..],
    ))
}

fn options(mut b: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (k, rest) = nul_str(b)?;
        let (v, rest) = nul_str(rest)?;
        out.push((k, v));
        b = rest;
    }
    Some(out)
}

/// Decodes a UDP payload as TFTP; `None` when it is not a well-formed TFTP packet.
pub fn decode_tftp(payload: &[u8]) -> Option<Tftp> {
    let (op, body) = payload.split_first_chunk::<2>()?;
    let num = |b: &[u8]| -> Option<u16> { Some(u16::from_be_bytes(*b.first_chunk::<2>()?)) };
    match u16::from_be_bytes(*op) {
        op @ (1 | 2) => {
            let (file, rest) = nul_str(body)?;
            let (mode, rest) = nul_str(rest)?;
            let options = options(rest)?;
            Some(if op == 1 {
                Tftp::Rrq {
                    file,
                    mode,
                    options,
                }
            } else {
                Tftp::Wrq {
                    file,
                    mode,
                    options,
                }
            })
        }
        3 => Some(Tftp::Data {
            block: num(body)?,
            len: body.len() - 2,
        }),
        4 if body.len() == 2 => Some(Tftp::Ack { block: num(body)? }),
        5 => {
            let code = num(body)?;
            let (message, _) = nul_str(&body[2..])?;
            Some(Tftp::Error { code, message })
        }
        6 => Some(Tftp::Oack {
            options: options(body)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 198.18.0.2:40000 to 198.18.0.1:7007 with an MSS option, built by hand.
    fn syn() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .tcp(40000, 7007, 1000, 64240)
            .syn()
            .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    #[test]
    fn tcp_syn() {
        let p = decode(&syn()).unwrap();
        let Kind::Tcp(t) = p.kind else {
            panic!("{p:?}")
        };
        assert!(t.flags.is_syn());
        assert_eq!(t.flags.to_string(), "[SYN]");
        assert_eq!(t.seq, 1000);
        assert_eq!(t.mss, Some(1460));
        assert_eq!(t.dst, "198.18.0.1:7007".parse().unwrap());
        assert_eq!(p.src_mac.to_string(), "02:00:00:00:00:02");
    }

    #[test]
    fn truncated_is_an_error() {
        let f = syn();
        assert!(decode(&f[..f.len() - 3]).is_err());
        assert_eq!(decode(&f[..5]), Err(DecodeError::Short { len: 5 }));
    }

    #[test]
    fn arp_request() {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 2, 0x08, 0x06]);
        f.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend([2, 0, 0, 0, 0, 2, 198, 18, 0, 2]);
        f.extend([0, 0, 0, 0, 0, 0, 198, 18, 0, 1]);
        let p = decode(&f).unwrap();
        let Kind::Arp(a) = p.kind else {
            panic!("{p:?}")
        };
        assert_eq!(a.op, ArpOp::Request);
        assert_eq!(a.to_string(), "Who has 198.18.0.1? Tell 198.18.0.2");
        assert_eq!(p.dst_mac, Mac::BROADCAST);
    }

    #[test]
    fn flags_in_wireshark_order() {
        let f = TcpFlags(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(f.to_string(), "[FIN, PSH, ACK]");
        assert!(TcpFlags(TcpFlags::SYN | TcpFlags::ACK).is_syn_ack());
    }

    #[test]
    fn tftp_packets() {
        assert_eq!(
            decode_tftp(b"\x00\x01f.txt\x00octet\x00blksize\x001428\x00"),
            Some(Tftp::Rrq {
                file: "f.txt".into(),
                mode: "octet".into(),
                options: vec![("blksize".into(), "1428".into())]
            })
        );
        assert_eq!(
            decode_tftp(b"\x00\x03\x00\x07abc"),
            Some(Tftp::Data { block: 7, len: 3 })
        );
        assert_eq!(
            decode_tftp(b"\x00\x04\x00\x07"),
            Some(Tftp::Ack { block: 7 })
        );
        assert_eq!(
            decode_tftp(b"\x00\x05\x00\x01nope\x00").map(|t| t.to_string()),
            Some("ERROR code=1 \"nope\"".into())
        );
        assert_eq!(decode_tftp(b"\x00\x01f.txt"), None);
        assert_eq!(decode_tftp(b"\x00\x03\x00"), None);
        assert_eq!(decode_tftp(b"\x00\x09"), None);
    }

    #[test]
    fn mac_round_trip() {
        let m = Mac::parse("02:00:00:00:00:0a").unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert_eq!(Mac::parse("02:00:00:00:00"), None);
        assert_eq!(Mac::parse("02:00:00:00:00:00:01"), None);
    }
}
