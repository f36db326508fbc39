//! Transfers through an in-process UDP proxy that drops, duplicates and reorders
//! datagrams in both directions (seeded RNG), at 10% and 30% loss, with windowsize 1
//! and 16. Every transfer must complete byte-exact.

use crate::common;
use sockit_testkit::data;
use sockit_testkit::data::assert_same;

use common::TestServer;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sockit_tftp::client::{get, put, ClientOptions};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How the proxy mistreats datagrams (probabilities per datagram and direction).
#[derive(Debug, Clone, Copy)]
struct Impairment {
    drop: f64,
    duplicate: f64,
    reorder: f64,
}

/// What the proxy did, to check the test really exercised loss.
#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

/// One direction's impairment state: a held datagram is sent after the next one.
struct Lane {
    rng: ChaCha8Rng,
    held: Option<(Vec<u8>, SocketAddr)>,
}

impl Lane {
    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Decides the fate of `datagram`; returns what to send now, in order.
    fn process(
        &mut self,
        datagram: Vec<u8>,
        to: SocketAddr,
        imp: &Impairment,
        counters: &Counters,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        if self.chance(imp.drop) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return self.held.take().into_iter().collect();
        }
        let mut out = Vec::new();
        if self.held.is_none() && self.chance(imp.reorder) {
            counters.reordered.fetch_add(1, Ordering::Relaxed);
            self.held = Some((datagram, to));
            return out;
        }
        if self.chance(imp.duplicate) {
            counters.duplicated.fetch_add(1, Ordering::Relaxed);
            out.push((datagram.clone(), to));
        }
        out.push((datagram, to));
        out.extend(self.held.take());
        out
    }
}

/// ERROR 5, what a client answers a datagram from a port other than its transfer ID's.
const UNKNOWN_TID: &[u8] = b"\x00\x05\x00\x05unknown transfer ID\x00";

/// Starts a TFTP-aware proxy in front of `server`: requests go to the server's listening
/// port; everything else from the client goes to the transfer ID the server answered
/// from. Like a real client, it answers datagrams from any other server port with
/// ERROR 5 instead of forwarding them.
async fn start_proxy(
    server: SocketAddr,
    imp: Impairment,
    seed: u64,
) -> (SocketAddr, Arc<Counters>, tokio::task::JoinHandle<()>) {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let task = tokio::spawn(async move {
        let mut to_server = Lane {
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: None,
        };
        let mut to_client = Lane {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5),
            held: None,
        };
        let mut client: Option<SocketAddr> = None;
        let mut server_tid: Option<SocketAddr> = None;
        let mut a = vec![0u8; 70000];
        let mut b = vec![0u8; 70000];
        loop {
            // A held (reordered) datagram is released after 5 ms if nothing follows it.
            let idle = tokio::time::sleep(Duration::from_millis(5));
            let out = tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((len, from)) = r else { continue };
                    if client != Some(from) {
                        client = Some(from);
                        server_tid = None;
                    }
                    let is_request = len >= 2 && a[0] == 0 && (a[1] == 1 || a[1] == 2);
                    let to = if is_request { server } else { server_tid.unwrap_or(server) };
                    to_server.process(a[..len].to_vec(), to, &imp, &c)
                        .into_iter().map(|(d, t)| (true, d, t)).collect::<Vec<_>>()
                }
                r = back.recv_from(&mut b) => {
                    let Ok((len, from)) = r else { continue };
                    if client.is_none() {
                        continue;
                    }
                    if server_tid.is_some_and(|tid| tid != from) {
                        let _ = back.send_to(UNKNOWN_TID, from).await;
                        continue;
                    }
                    // The lane carries the server's port; the client gets it at send time.
                    to_client.process(b[..len].to_vec(), from, &imp, &c)
                        .into_iter().map(|(d, t)| (false, d, t)).collect::<Vec<_>>()
                }
                () = idle, if to_server.held.is_some() || to_client.held.is_some() => {
                    let mut out = Vec::new();
                    out.extend(to_server.held.take().map(|(d, t)| (true, d, t)));
                    out.extend(to_client.held.take().map(|(d, t)| (false, d, t)));
                    out
                }
            };
            for (towards_server, datagram, to) in out {
                let to = if towards_server {
                    to
                } else {
                    // Like a real client, the transfer ID is the port of the first
                    // datagram that reaches the client (not of one lost on the way).
                    let from = to;
                    match server_tid {
                        None => server_tid = Some(from),
                        Some(tid) if tid != from => {
                            let _ = back.send_to(UNKNOWN_TID, from).await;
                            continue;
                        }
                        Some(_) => {}
                    }
                    let Some(client) = client else { continue };
                    client
                };
                c.forwarded.fetch_add(1, Ordering::Relaxed);
                let socket = if towards_server { &back } else { &front };
                let _ = socket.send_to(&datagram, to).await;
            }
        }
    });
    (addr, counters, task)
}

const TIMEOUT: Duration = Duration::from_millis(30);

fn client_opts(windowsize: u16) -> ClientOptions {
    ClientOptions {
        blksize: Some(512),
        windowsize: Some(windowsize),
        timeout: TIMEOUT,
        retries: 30,
        // Linger after a download so the server sees our final ACK even when it is lost.
        dally: TIMEOUT * 16,
        ..ClientOptions::default()
    }
}

async fn lossy_roundtrip(loss: f64, windowsize: u16, size: usize, seed: u64) {
    let server = TestServer::start(|c| {
        c.write_allowed = true;
        c.default_timeout = TIMEOUT;
        c.retries = 30;
    })
    .await;
    let imp = Impairment {
        drop: loss,
        duplicate: 0.05,
        reorder: 0.05,
    };
    let (proxy, counters, proxy_task) = start_proxy(server.addr, imp, seed).await;
    let data = data::bytes(size, seed);
    std::fs::write(server.path("down"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = client_opts(windowsize);

    let local = dir.path().join("down");
    let summary = get(proxy, "down", &local, &opts, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("get at {loss} loss, window {windowsize}: {e}"));
    assert_eq!(summary.negotiated.windowsize, windowsize);
    assert_same("lossy get", &std::fs::read(&local).unwrap(), &data);

    let up = data::bytes(size, seed + 1);
    let local_up = dir.path().join("up");
    std::fs::write(&local_up, &up).unwrap();
    put(proxy, &local_up, "up", &opts, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("put at {loss} loss, window {windowsize}: {e}"));
    assert_same("lossy put", &std::fs::read(server.path("up")).unwrap(), &up);

    let dropped = counters.dropped.load(Ordering::Relaxed);
    assert!(
        dropped > 0,
        "the proxy dropped nothing: the test proved nothing"
    );
    assert!(counters.duplicated.load(Ordering::Relaxed) > 0);
    assert!(counters.reordered.load(Ordering::Relaxed) > 0);
    proxy_task.abort();
    server.stop().await;
}

#[tokio::test]
async fn loss_10_percent_windowsize_1() {
    lossy_roundtrip(0.10, 1, 40_000, 1).await;
}

#[tokio::test]
async fn loss_10_percent_windowsize_16() {
    lossy_roundtrip(0.10, 16, 200_000, 2).await;
}

#[tokio::test]
async fn loss_30_percent_windowsize_1() {
    lossy_roundtrip(0.30, 1, 20_000, 3).await;
}

#[tokio::test]
async fn loss_30_percent_windowsize_16() {
    lossy_roundtrip(0.30, 16, 60_000, 4).await;
}
