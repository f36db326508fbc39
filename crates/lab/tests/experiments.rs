//! The TCP-internals experiments run on loopback and assert what they observe.

use std::time::Duration;

use sockit_lab::experiments::proc_net::TcpState;
use sockit_lab::experiments::{backlog, reuseaddr, states};

#[test]
fn backlog_fills_accept_queue_and_overflows() {
    let cfg = backlog::BacklogConfig {
        backlog: 2,
        clients: 8,
        watch: Duration::from_secs(5),
    };
    let mut out = Vec::new();
    let r = backlog::run(&cfg, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(r.send_q, 2);
    // The accept queue filled: Linux admits backlog + 1 before refusing.
    assert_eq!(r.max_recv_q, 3, "{text}");
    assert!(r.overflows >= 1, "ListenOverflows did not grow: {text}");
    assert!(r.drops >= 1, "ListenDrops did not grow: {text}");
    assert!(
        r.clients_syn_sent >= 1,
        "no client left in SYN_SENT: {text}"
    );
    assert!(text.contains("DOES:") && text.contains("OBSERVES") && text.contains("EXPLAINS:"));
}

#[test]
fn states_timeline_shows_the_classic_sequence() {
    let mut out = Vec::new();
    let timeline = states::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    let seen = |side: &str, st: TcpState| {
        timeline
            .iter()
            .any(|t| t.side == side && t.state == Some(st))
    };
    for st in [
        TcpState::SynSent,
        TcpState::Established,
        TcpState::FinWait2,
        TcpState::TimeWait,
    ] {
        assert!(seen("client", st), "client never in {st:?}: {text}");
    }
    assert!(seen("server", TcpState::CloseWait), "{text}");
    // Order on the client side: SYN_SENT before ESTABLISHED before TIME_WAIT.
    let pos = |st| {
        timeline
            .iter()
            .position(|t| t.side == "client" && t.state == Some(st))
            .unwrap()
    };
    assert!(pos(TcpState::SynSent) < pos(TcpState::Established));
    assert!(pos(TcpState::Established) < pos(TcpState::TimeWait));
}

#[test]
fn reuseaddr_rebinds_over_time_wait() {
    let mut out = Vec::new();
    let r = reuseaddr::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert!(r.time_wait_seen, "{text}");
    assert_eq!(r.without, Some(std::io::ErrorKind::AddrInUse), "{text}");
    assert!(r.with_ok, "{text}");
}
