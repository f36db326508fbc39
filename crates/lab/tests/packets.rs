//! The packet experiments end to end, each in network namespaces it creates and removes
//! (they need root, as CI has), and the packet decoders under proptest.
//!
//! The capture test drives the `sockit` binary of this workspace (built by
//! `cargo test --workspace`, or `cargo build -p sockit`) and `tshark` (Debian: tshark).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use proptest::prelude::*;
use sockit_lab::experiments::capture::{self, CaptureConfig, Ready};
use sockit_lab::experiments::netns::{self, NetnsPair};
use sockit_lab::experiments::overflow::{self, ClientSees};
use sockit_lab::experiments::packets::{self, ArpOp, Frame, Mac, TcpFlags};
use sockit_lab::experiments::timeline::{self, TimelineConfig};
use sockit_lab::experiments::{arp, pcap, synflood};
use sockit_testkit::peer;

/// Fails unless none of `names` is still listed by `ip netns list`.
fn assert_removed(names: &[String]) {
    let listed = netns::listed().expect("ip netns list");
    for n in names {
        assert!(
            !listed.contains(n),
            "namespace {n} was left behind: {listed:?}"
        );
    }
}

fn text(out: Vec<u8>) -> String {
    let t = String::from_utf8(out).unwrap();
    println!("{t}");
    t
}

#[test]
fn synflood_fills_the_half_open_queue_and_cookies_let_a_client_in() {
    let cfg = synflood::SynfloodConfig {
        watch_expiry: false,
        ..Default::default()
    };
    let mut out = Vec::new();
    let r = synflood::run(&cfg, &mut out).unwrap();
    let t = text(out);
    assert_removed(&r.namespaces);
    assert!(t.contains("DOES:") && t.contains("OBSERVES") && t.contains("EXPLAINS:"));

    let off = &r.without_cookies;
    assert!(
        off.max_syn_recv >= cfg.backlog as usize,
        "half-open count did not reach the backlog: {t}"
    );
    assert!(off.counters["TcpExtTCPReqQFullDrop"] >= 1, "{t}");
    assert!(off.counters["TcpExtListenDrops"] >= 1, "{t}");
    assert_eq!(off.counters["TcpExtSyncookiesSent"], 0, "{t}");
    assert!(
        !off.legit.connected,
        "legitimate connect succeeded without cookies: {t}"
    );

    let on = &r.with_cookies;
    assert!(on.max_syn_recv >= cfg.backlog as usize, "{t}");
    assert!(on.legit.connected && on.legit.exchanged, "{t}");
    assert!(on.counters["TcpExtSyncookiesSent"] >= 1, "{t}");
    assert!(on.counters["TcpExtSyncookiesRecv"] >= 1, "{t}");
    assert_eq!(on.counters["TcpExtTCPReqQFullDrop"], 0, "{t}");

    // 1 + tcp_synack_retries SYN-ACKs, spaced like the 1 s, 2 s schedule or more.
    assert_eq!(
        r.synack_times_ms.len(),
        usize::from(cfg.synack_retries) + 1,
        "{t}"
    );
    assert_eq!(r.expected_intervals_ms, vec![1000, 2000]);
    for (got, want) in r.synack_intervals_ms.iter().zip(&r.expected_intervals_ms) {
        assert!(
            *got >= 0.8 * *want as f64,
            "interval {got} ms < 0.8 x {want} ms: {t}"
        );
    }
    assert!(r.synack_intervals_ms.windows(2).all(|w| w[1] > w[0]), "{t}");
}

#[test]
fn overflow_resets_with_abort_on_overflow_and_stalls_without() {
    let cfg = overflow::OverflowConfig::default();
    let mut out = Vec::new();
    let r = overflow::run(&cfg, &mut out).unwrap();
    let t = text(out);
    assert_removed(&r.namespaces);
    let count = |p: &overflow::OverflowPhase, s: ClientSees| {
        p.clients.iter().filter(|c| **c == Some(s)).count()
    };

    let abort = &r.abort;
    assert!(
        abort.rst_on_wire >= 1,
        "no RST on the wire with abort_on_overflow=1: {t}"
    );
    assert_eq!(count(abort, ClientSees::Reset), cfg.overflowing(), "{t}");
    assert_eq!(
        count(abort, ClientSees::Timeout),
        cfg.clients() - cfg.overflowing(),
        "the queued clients wait: {t}"
    );
    assert!(abort.counters["TcpExtListenOverflows"] >= 1, "{t}");
    assert!(abort.counters["TcpExtEmbryonicRsts"] >= 1, "{t}");

    let keep = &r.keep;
    assert_eq!(keep.rst_on_wire, 0, "RST with abort_on_overflow=0: {t}");
    assert_eq!(count(keep, ClientSees::Timeout), cfg.clients(), "{t}");
    assert_eq!(keep.syn_recv, cfg.overflowing(), "requests kept: {t}");
    assert!(keep.counters["TcpExtListenOverflows"] >= 1, "{t}");
    assert_eq!(keep.counters["TcpExtEmbryonicRsts"], 0, "{t}");
    assert!(keep.synack_retransmits >= 1, "{t}");
    assert_eq!(
        keep.recovered,
        cfg.clients(),
        "every client got through once accepted: {t}"
    );
}

#[test]
fn arp_request_reply_and_reachable_to_stale() {
    let mut out = Vec::new();
    let r = arp::run(&mut out).unwrap();
    let t = text(out);
    assert_removed(&r.namespaces);
    assert!(
        r.client_before.is_empty() && r.server_before.is_empty(),
        "{t}"
    );

    let req = r.request.expect("ARP request seen");
    assert_eq!(req.dst_mac, Mac::BROADCAST);
    assert_eq!(req.arp.op, ArpOp::Request);
    assert_eq!(req.arp.target_ip, netns::SERVER_IP);
    assert_eq!(req.arp.sender_mac, netns::CLIENT_MAC);
    let reply = r.reply.expect("ARP reply seen");
    assert_eq!(reply.arp.sender_mac, netns::SERVER_MAC);
    assert!(r.datagram_after_reply, "{t}");

    let server_ip = netns::SERVER_IP.to_string();
    let entry = r
        .client_after
        .iter()
        .find(|n| n.ip == server_ip)
        .expect("client learned the server");
    assert_eq!(entry.lladdr.as_deref(), Some("02:00:00:00:00:01"));
    assert_eq!(entry.state(), "REACHABLE", "{t}");
    let learned = r
        .server_after
        .iter()
        .find(|n| n.ip == netns::CLIENT_IP.to_string());
    assert_eq!(
        learned.and_then(|n| n.lladdr.as_deref()),
        Some("02:00:00:00:00:02"),
        "{t}"
    );

    let pos = |s: &str| r.states.iter().position(|c| c.state == s);
    let (reachable, stale) = (
        pos("REACHABLE").unwrap(),
        pos("STALE").expect("entry went STALE"),
    );
    assert!(reachable < stale, "{t}");
    assert!(
        r.states
            .iter()
            .skip(stale)
            .any(|c| c.state == "DELAY" || c.state == "PROBE"),
        "{t}"
    );
    assert_eq!(
        r.states.last().map(|c| c.state.as_str()),
        Some("REACHABLE"),
        "{t}"
    );
    let probe = r.probe.expect("unicast probe seen");
    assert_eq!(probe.dst_mac, netns::SERVER_MAC);
}

/// The workspace's `sockit` binary, next to this test's directory.
fn sockit_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("sockit"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p sockit` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

fn echo_config(dir: &std::path::Path, pcap_file: PathBuf) -> CaptureConfig {
    let bin: OsString = sockit_bin().into();
    let addr_file = dir.join("addrs.json");
    let mut server: Vec<OsString> = vec![bin.clone()];
    server.extend(
        [
            "serve",
            "--bind",
            "0.0.0.0",
            "--no-auth",
            "--only",
            "echo",
            "--root",
        ]
        .map(OsString::from),
    );
    server.push(dir.join("root").into());
    server.push("--addr-file".into());
    server.push(addr_file.clone().into());
    CaptureConfig {
        server: Some(server),
        ready: Ready::AddrFile(addr_file),
        client: vec![bin, "--server".into(), "{server}".into(), "echo".into()],
        stdin: b"hello lab\n".to_vec(),
        pcap: Some(pcap_file),
        ..Default::default()
    }
}

#[test]
fn capture_of_sockit_echo_shows_the_tcp_exchange_in_order_and_tshark_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo.pcap");
    let mut out = Vec::new();
    let r = capture::run(&echo_config(dir.path(), file.clone()), &mut out).unwrap();
    let t = text(out);
    assert_removed(&r.namespaces);
    assert_eq!(r.client_status, Some(0), "{}", r.client_stderr);
    assert_eq!(r.client_stdout, "hello lab\n");

    let tcp: Vec<_> = r
        .timeline
        .iter()
        .filter_map(|e| e.tcp.map(|v| (e, v)))
        .collect();
    let find = |from: usize, what: &dyn Fn(&timeline::TcpView, &str) -> bool| {
        tcp.iter()
            .skip(from)
            .position(|(e, v)| what(v, &e.src))
            .map(|p| p + from)
            .unwrap_or_else(|| panic!("missing after #{from}: {t}"))
    };
    let syn = find(0, &|v, src| v.flags.is_syn() && src == "client");
    let syn_ack = find(syn, &|v, src| v.flags.is_syn_ack() && src == "server");
    let ack = find(syn_ack, &|v, src| {
        v.flags.0 & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::ACK && src == "client"
    });
    let data = find(ack, &|v, src| v.len == 10 && src == "client");
    let echo = find(data, &|v, src| v.len == 10 && src == "server");
    let fin = find(data, &|v, _| v.flags.has(TcpFlags::FIN));
    assert!(
        syn < syn_ack && syn_ack < ack && ack < data && data < echo.max(fin),
        "{t}"
    );
    assert_eq!((tcp[syn].1.seq, tcp[syn_ack].1.ack), (0, Some(1)), "{t}");
    assert_eq!(tcp[data].1.seq, 1, "{t}");
    let fins = tcp
        .iter()
        .filter(|(_, v)| v.flags.has(TcpFlags::FIN))
        .count();
    assert_eq!(fins, 2, "both sides close: {t}");

    // tshark reads the pcap and sees the same frames, flags and relative numbers.
    let out = Command::new(peer::require("tshark", "tshark"))
        .arg("-r")
        .arg(&file)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "frame.len",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.ack",
            "-e",
            "tcp.len",
            "-e",
            "arp.opcode",
        ])
        .output()
        .unwrap_or_else(|e| panic!("tshark: {e} (apt-get install tshark)"));
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(';').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), r.timeline.len(), "{rows:?}");
    for (row, e) in rows.iter().zip(&r.timeline) {
        assert_eq!(row[0], e.len.to_string(), "frame {}", e.no);
        if let Some(v) = e.tcp {
            let flags = u16::from_str_radix(row[1].trim_start_matches("0x"), 16).unwrap();
            assert_eq!(flags as u8, v.flags.0, "frame {}: {row:?}", e.no);
            assert_eq!(row[2], v.seq.to_string(), "frame {}: {row:?}", e.no);
            if let Some(a) = v.ack {
                assert_eq!(row[3], a.to_string(), "frame {}: {row:?}", e.no);
            }
            assert_eq!(row[4], v.len.to_string(), "frame {}: {row:?}", e.no);
        }
        if let Some(a) = e.arp {
            let op = if a.op == ArpOp::Request { "1" } else { "2" };
            assert_eq!(row[5], op, "frame {}: {row:?}", e.no);
        }
    }
    // And our own reader agrees with what was written.
    let back = pcap::parse(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(back.len(), r.timeline.len());
}

#[test]
fn namespaces_are_removed_when_a_run_panics() {
    let mut names = Vec::new();
    let mut ifs = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = NetnsPair::create("panic").unwrap();
        names = pair.names().map(str::to_owned).to_vec();
        ifs = vec![pair.server_if.clone(), pair.client_if.clone()];
        assert!(netns::listed().unwrap().contains(&names[0]));
        panic!("an experiment fails half way");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 2);
    assert_removed(&names);
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    for i in &ifs {
        assert!(
            !links.contains(i.as_str()),
            "veth {i} left in the host: {links}"
        );
    }
}

#[test]
fn two_pairs_at_once_get_distinct_names() {
    let a = NetnsPair::create("par").unwrap();
    let b = NetnsPair::create("par").unwrap();
    assert_ne!(a.names(), b.names());
    assert_ne!(a.server_if, b.server_if);
    let names: Vec<String> = a
        .names()
        .iter()
        .chain(b.names().iter())
        .map(|s| s.to_string())
        .collect();
    drop((a, b));
    assert_removed(&names);
}

/// A SYN frame as the capture sees one (checksums left zero: the decoder does not check them).
fn syn_frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    // IPv4, 20-byte header, total 44, TCP, 198.18.0.2 -> 198.18.0.1.
    f.extend([
        0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
    ]);
    // TCP 40000 -> 7007, seq 1, data offset 6 (MSS option), SYN.
    f.extend([
        0x9c, 0x40, 0x1b, 0x5f, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
    ]);
    f.extend([2, 4, 5, 0xb4]);
    f
}

#[test]
fn the_hand_built_syn_decodes() {
    let p = packets::decode(&syn_frame()).unwrap();
    let packets::Kind::Tcp(t) = p.kind else {
        panic!("{p:?}")
    };
    assert!(t.flags.is_syn());
    assert_eq!(t.mss, Some(1460));
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = packets::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_frames(
        cut in 0usize..80,
        flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..8),
    ) {
        let mut f = syn_frame();
        for (at, b) in flips {
            if let Some(x) = f.get_mut(at) { *x ^= b; }
        }
        f.truncate(cut.min(f.len()));
        let _ = packets::decode(&f);
    }

    #[test]
    fn tftp_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = packets::decode_tftp(&bytes);
    }

    #[test]
    fn pcap_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = pcap::parse(&bytes);
    }

    #[test]
    fn pcap_round_trips(frames in proptest::collection::vec(
        (any::<u32>(), 0u32..1_000_000_000, proptest::collection::vec(any::<u8>(), 0..200)), 0..10)
    ) {
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|(s, ns, data)| Frame {
                ts_ns: u64::from(s) * 1_000_000_000 + u64::from(ns),
                outgoing: false,
                orig_len: data.len() as u32,
                data,
            })
            .collect();
        let mut buf = Vec::new();
        pcap::write(&mut buf, &frames).unwrap();
        prop_assert_eq!(pcap::parse(&buf).unwrap(), frames);
    }

    #[test]
    fn timeline_never_panics(frames in proptest::collection::vec(
        (any::<u64>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..120)), 0..12)
    ) {
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|(ts_ns, outgoing, data)| Frame { ts_ns, outgoing, orig_len: data.len() as u32, data })
            .collect();
        let cfg = TimelineConfig { tftp_ports: vec![69], ..Default::default() };
        let t = timeline::build(&frames, &cfg);
        prop_assert_eq!(t.len(), frames.len());
        let _ = timeline::render(&t);
    }
}
