//! `sockit lab arp`: the neighbour table before and after the first packet, the ARP
//! request and reply on the wire, and an entry's states (REACHABLE → STALE → DELAY →
//! PROBE → REACHABLE).
//!
//! Before an IPv4 packet can leave on Ethernet the kernel needs the next hop's MAC. The
//! first datagram finds no neighbour entry, so the kernel queues it and broadcasts an
//! ARP request ("who has 198.18.0.1? tell 198.18.0.2"); the owner answers with a unicast
//! reply, the entry becomes REACHABLE and the datagram leaves. The answering side learns
//! the asker's MAC from the request for free (a STALE entry). An entry stays REACHABLE
//! for a random 0.5–1.5 × `base_reachable_time_ms` after the last confirmation, then
//! turns STALE: still used, but unverified. The next packet sent through a STALE entry
//! moves it to DELAY; if nothing confirms the neighbour (a TCP ACK would) within
//! `delay_first_probe_time`, it goes to PROBE and the kernel asks again, this time with a
//! *unicast* request to the MAC it already has. The experiment shortens both timers in
//! the client's namespace (2.5 s and 1 s) so the whole cycle takes a few seconds. The
//! reachable time must outlast `delay_first_probe_time` after the last use: an entry
//! used more recently than that when its reachable time ends goes straight to DELAY
//! instead of STALE.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{LabError, Result};
use crate::experiments::netns::{Netns, NetnsPair, CLIENT_IP, CLIENT_MAC, SERVER_IP, SERVER_MAC};
use crate::experiments::packet_socket::PacketCapture;
use crate::experiments::packets::{decode, Arp, ArpOp, Frame, Kind, Mac};
use crate::experiments::say;
use crate::experiments::timeline::{self, Entry, TimelineConfig};

/// The UDP port the server listens on (discard).
const PORT: u16 = 9;

/// One line of `ip neigh show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    /// The neighbour's IP address.
    pub ip: String,
    /// Its MAC, once known.
    pub lladdr: Option<String>,
    /// NUD state(s): REACHABLE, STALE, DELAY, PROBE, INCOMPLETE, FAILED, PERMANENT...
    pub state: Vec<String>,
}

impl Neighbour {
    /// The first state, or an empty string.
    pub fn state(&self) -> &str {
        self.state.first().map_or("", String::as_str)
    }
}

/// Parses `ip -j neigh show` output; anything that is not that JSON gives no entries.
pub fn parse_ip_neigh_json(text: &str) -> Vec<Neighbour> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| {
            Some(Neighbour {
                ip: v.get("dst")?.as_str()?.to_owned(),
                lladdr: v.get("lladdr").and_then(|l| l.as_str()).map(str::to_owned),
                state: v
                    .get("state")
                    .and_then(|s| s.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn neighbours(ns: &Netns, dev: &str) -> Result<Vec<Neighbour>> {
    Ok(parse_ip_neigh_json(
        &ns.ip(&["-j", "neigh", "show", "dev", dev])?,
    ))
}

fn show(table: &[Neighbour]) -> String {
    if table.is_empty() {
        return "(empty)".into();
    }
    table
        .iter()
        .map(|n| {
            format!(
                "{} lladdr {} {}",
                n.ip,
                n.lladdr.as_deref().unwrap_or("-"),
                n.state.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A state change of the client's entry for the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// Milliseconds since the ARP reply made the entry REACHABLE.
    pub at_ms: u64,
    /// The new state.
    pub state: String,
}

/// An ARP packet as seen on the client's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArpSeen {
    /// Ethernet destination (broadcast for a first request).
    pub dst_mac: Mac,
    /// The ARP fields.
    pub arp: Arp,
}

/// What the experiment observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArpReport {
    /// The namespaces used (deleted by now).
    pub namespaces: Vec<String>,
    /// The client's neighbour table before the first packet.
    pub client_before: Vec<Neighbour>,
    /// The server's neighbour table before.
    pub server_before: Vec<Neighbour>,
    /// The client's table after the first datagram.
    pub client_after: Vec<Neighbour>,
    /// The server's table after (it learned the client from the request).
    pub server_after: Vec<Neighbour>,
    /// The broadcast request.
    pub request: Option<ArpSeen>,
    /// The reply.
    pub reply: Option<ArpSeen>,
    /// The first datagram went out only after the reply.
    pub datagram_after_reply: bool,
    /// The client's entry for the server over time.
    pub states: Vec<StateChange>,
    /// The unicast request sent from PROBE.
    pub probe: Option<ArpSeen>,
    /// Every frame on the client's interface.
    pub timeline: Vec<Entry>,
}

fn arps(frames: &[Frame]) -> Vec<(usize, ArpSeen)> {
    frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let p = decode(&f.data).ok()?;
            match p.kind {
                Kind::Arp(arp) => Some((
                    i,
                    ArpSeen {
                        dst_mac: p.dst_mac,
                        arp,
                    },
                )),
                _ => None,
            }
        })
        .collect()
}

fn first_udp(frames: &[Frame]) -> Option<usize> {
    frames
        .iter()
        .position(|f| matches!(decode(&f.data).map(|p| p.kind), Ok(Kind::Udp(_))))
}

fn is_request_for(a: &ArpSeen, ip: Ipv4Addr, unicast: bool) -> bool {
    a.arp.op == ArpOp::Request && a.arp.target_ip == ip && (a.dst_mac != Mac::BROADCAST) == unicast
}

/// Polls the client's entry for the server until `done(state)` or `limit`, recording
/// every change.
fn watch_state(
    pair: &NetnsPair,
    report: &mut ArpReport,
    t0: Instant,
    limit: Duration,
    out: &mut dyn Write,
    done: impl Fn(&str) -> bool,
) -> Result<bool> {
    let start = Instant::now();
    loop {
        let table = neighbours(&pair.client, &pair.client_if)?;
        let state = table
            .iter()
            .find(|n| n.ip == SERVER_IP.to_string())
            .map_or("(none)".to_string(), |n| n.state().to_owned());
        if report.states.last().map(|s| s.state.as_str()) != Some(state.as_str()) {
            let at_ms = t0.elapsed().as_millis() as u64;
            say(
                out,
                format!("OBSERVES t={at_ms:>5}ms  client's entry for {SERVER_IP}: {state}"),
            );
            report.states.push(StateChange {
                at_ms,
                state: state.clone(),
            });
        }
        if done(&state) {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        // Polling `ip neigh` for the next state change (bounded by `limit`).
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the experiment, narrating on `out`.
///
/// # Errors
/// When not root, the namespaces cannot be set up, or a socket operation fails.
pub fn run(out: &mut dyn Write) -> Result<ArpReport> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let pair = NetnsPair::create("arp")?;
    let mut report = ArpReport {
        namespaces: pair.names().iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    say(
        out,
        format!(
            "DOES: namespaces {} (server {SERVER_IP}, {SERVER_MAC}) and {} (client {CLIENT_IP}, {CLIENT_MAC}), joined by a veth pair.",
            pair.server.name(),
            pair.client.name()
        ),
    );
    let dev = format!("net.ipv4.neigh.{}", pair.client_if);
    pair.client
        .set_sysctl(&format!("{dev}.base_reachable_time_ms"), 2500)?;
    pair.client
        .set_sysctl(&format!("{dev}.delay_first_probe_time"), 1)?;
    say(out, "DOES: in the client's namespace base_reachable_time_ms=2500 and delay_first_probe_time=1 (defaults 30000 and 5).");
    report.client_before = neighbours(&pair.client, &pair.client_if)?;
    report.server_before = neighbours(&pair.server, &pair.server_if)?;
    say(
        out,
        format!(
            "OBSERVES before: client `ip neigh`: {}  server: {}",
            show(&report.client_before),
            show(&report.server_before)
        ),
    );
    let server = pair
        .server
        .run(|| UdpSocket::bind(SocketAddrV4::new(SERVER_IP, PORT)).map_err(io("bind udp")))?;
    let client = pair
        .client
        .run(|| UdpSocket::bind(SocketAddrV4::new(CLIENT_IP, 0)).map_err(io("bind udp")))?;
    let capture = PacketCapture::start(&pair.client, &pair.client_if)?;
    let to = SocketAddr::V4(SocketAddrV4::new(SERVER_IP, PORT));
    say(
        out,
        format!("DOES: the client sends one UDP datagram to {to}."),
    );
    client.send_to(b"first\n", to).map_err(io("send"))?;
    let t0 = Instant::now();
    capture.wait_for(Duration::from_secs(5), |f| {
        first_udp(f).is_some() && arps(f).iter().any(|(_, a)| a.arp.op == ArpOp::Reply)
    });
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io("timeout"))?;
    let mut buf = [0u8; 64];
    let got = server.recv_from(&mut buf).map(|(n, _)| n).unwrap_or(0);
    let frames = capture.frames();
    let seen = arps(&frames);
    let request = seen
        .iter()
        .find(|(_, a)| is_request_for(a, SERVER_IP, false))
        .copied();
    let reply = seen.iter().find(|(_, a)| a.arp.op == ArpOp::Reply).copied();
    report.request = request.map(|r| r.1);
    report.reply = reply.map(|r| r.1);
    report.datagram_after_reply =
        matches!((reply, first_udp(&frames)), (Some((r, _)), Some(u)) if u > r);
    for (what, a) in [("request", report.request), ("reply", report.reply)] {
        match a {
            Some(a) => say(
                out,
                format!("OBSERVES ARP {what} to {}: {}", a.dst_mac, a.arp),
            ),
            None => say(out, format!("OBSERVES no ARP {what} seen")),
        }
    }
    say(
        out,
        format!(
            "OBSERVES the datagram left {} the reply; the server read {got} bytes.",
            if report.datagram_after_reply {
                "after"
            } else {
                "NOT after"
            }
        ),
    );
    report.client_after = neighbours(&pair.client, &pair.client_if)?;
    report.server_after = neighbours(&pair.server, &pair.server_if)?;
    say(
        out,
        format!(
            "OBSERVES after: client `ip neigh`: {}  server: {}",
            show(&report.client_after),
            show(&report.server_after)
        ),
    );
    say(
        out,
        "DOES: wait for the client's entry to age out of REACHABLE.",
    );
    watch_state(&pair, &mut report, t0, Duration::from_secs(10), out, |s| {
        s == "STALE"
    })?;
    say(
        out,
        "DOES: the client sends a second datagram through the STALE entry.",
    );
    client.send_to(b"second\n", to).map_err(io("send"))?;
    watch_state(&pair, &mut report, t0, Duration::from_secs(8), out, |s| {
        s == "DELAY" || s == "PROBE"
    })?;
    watch_state(&pair, &mut report, t0, Duration::from_secs(8), out, |s| {
        s == "REACHABLE"
    })?;
    capture.wait_for(Duration::from_secs(2), |f| {
        arps(f)
            .iter()
            .any(|(_, a)| is_request_for(a, SERVER_IP, true))
    });
    let frames = capture.finish()?;
    report.probe = arps(&frames)
        .into_iter()
        .find(|(_, a)| is_request_for(a, SERVER_IP, true))
        .map(|(_, a)| a);
    match &report.probe {
        Some(p) => say(
            out,
            format!(
                "OBSERVES PROBE sent a unicast ARP request to {}: {} (PROBE lasts until the reply, often too briefly for `ip neigh` to show).",
                p.dst_mac, p.arp
            ),
        ),
        None => say(out, "OBSERVES no unicast ARP probe seen"),
    }
    let cfg = TimelineConfig {
        hosts: vec![
            (SERVER_IP.into(), "server".into()),
            (CLIENT_IP.into(), "client".into()),
        ],
        macs: vec![(SERVER_MAC, "server".into()), (CLIENT_MAC, "client".into())],
        tftp_ports: Vec::new(),
    };
    report.timeline = timeline::build(&frames, &cfg);
    say(out, "OBSERVES on the client's interface:");
    for line in timeline::render(&report.timeline).lines() {
        say(out, format!("  {line}"));
    }
    say(
        out,
        "EXPLAINS: IP knows addresses, Ethernet delivers to MACs; ARP maps one to the other. \
         The first datagram waited in the kernel while ARP broadcast a question and the \
         server answered it directly — and the server filed the client's MAC from the question \
         without asking (STALE). An entry is trusted (REACHABLE) only for a while after a \
         confirmation; then it is STALE: still used, but the next packet through it starts a \
         short DELAY, and without confirmation from above (TCP ACKs count) a unicast PROBE to \
         the known MAC. `ip neigh` shows these states; FAILED means probes went unanswered \
         (wrong subnet, host down), and a flapping MAC for one IP is how ARP spoofing looks.",
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_neigh_json() {
        let text = r#"[{"dst":"198.18.0.1","dev":"x","lladdr":"02:00:00:00:00:01","state":["REACHABLE"]},{"dst":"198.18.0.9","dev":"x","state":["FAILED"]}]"#;
        let n = parse_ip_neigh_json(text);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].state(), "REACHABLE");
        assert_eq!(n[0].lladdr.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(n[1].lladdr, None);
    }

    #[test]
    fn not_json_is_empty() {
        assert!(parse_ip_neigh_json("").is_empty());
        assert!(parse_ip_neigh_json("{}").is_empty());
    }
}
