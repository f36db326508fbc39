//! No Sorcerer's Apprentice Syndrome (RFC 1123 §4.2.3.1): a peer that sends every ACK
//! twice must not make the sender send anything twice. The server (a download) and our
//! client (an upload) are each driven by a raw peer that duplicates every ACK, and the
//! DATA packets they send are counted.
//!
//! The retransmission interval is long (10 s) so that only duplicated ACKs, never the
//! timer, could cause a block to be sent again; the count is exact.

use crate::common;
use sockit_testkit::data;

use common::{recv_datagram as recv, TestServer};
use sockit_tftp::client::{put, ClientOptions};
use sockit_tftp::packets::{ack_bytes, Packet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// The sender's retransmission interval: far longer than any exchange here takes.
const SLOW_TIMER: Duration = Duration::from_secs(10);

/// Sends ACK `block` twice.
async fn ack_twice(socket: &UdpSocket, block: u16, to: SocketAddr) {
    for _ in 0..2 {
        socket.send_to(&ack_bytes(block), to).await.unwrap();
    }
}

/// What a receiver that duplicates every ACK saw.
#[derive(Debug, Default)]
struct Received {
    data: Vec<u8>,
    /// Every DATA datagram, first copies and repeats.
    datagrams: usize,
    /// Distinct blocks.
    blocks: usize,
}

/// Receives a transfer whose first datagram is `first` from `tid`, ACKing after every
/// `window` in-order blocks (and at the last one), each ACK sent twice; any repeated
/// block is ACKed again (twice), as a receiver must. Stops after ACKing the last block.
async fn receive_acking_twice(
    socket: &UdpSocket,
    tid: SocketAddr,
    mut first: Option<Vec<u8>>,
    blksize: usize,
    window: usize,
    expected_blocks: usize,
) -> Received {
    let mut got = Received::default();
    let mut next: u16 = 1;
    // Bounded: a sender that multiplied its traffic would exceed this.
    for _ in 0..expected_blocks * 4 + 8 {
        let datagram = match first.take() {
            Some(d) => d,
            None => {
                let (d, from) = recv(socket).await;
                assert_eq!(from, tid);
                d
            }
        };
        let Ok(Packet::Data { block, data }) = Packet::parse(&datagram) else {
            panic!("expected DATA, got {:?}", Packet::parse(&datagram));
        };
        got.datagrams += 1;
        if block != next {
            // A repeat (or a gap): re-ACK the last in-order block, twice.
            ack_twice(socket, next.wrapping_sub(1), tid).await;
            continue;
        }
        got.blocks += 1;
        got.data.extend_from_slice(data);
        let last = data.len() < blksize;
        if last || got.blocks % window == 0 {
            ack_twice(socket, block, tid).await;
        }
        if last {
            return got;
        }
        next = next.wrapping_add(1);
    }
    panic!(
        "the transfer did not end after {} datagrams: {got:?}",
        got.datagrams
    );
}

#[tokio::test]
async fn server_lockstep_sends_each_block_once_when_every_ack_is_duplicated() {
    let server = TestServer::start(|c| c.default_timeout = SLOW_TIMER).await;
    let blocks = 200;
    let file = data::bytes((blocks - 1) * 512 + 300, 11);
    std::fs::write(server.path("f.bin"), &file).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // No options: RFC 1350 lock-step, DATA 1 answers the request.
    socket
        .send_to(b"\x00\x01f.bin\x00octet\x00", server.addr)
        .await
        .unwrap();
    let (first, tid) = recv(&socket).await;
    let got = receive_acking_twice(&socket, tid, Some(first), 512, 1, blocks).await;
    assert_eq!(got.data, file);
    assert_eq!(got.blocks, blocks);
    assert_eq!(
        got.datagrams, blocks,
        "every block sent exactly once although every ACK came twice"
    );
    server.stop().await;
}

#[tokio::test]
async fn server_window_of_8_sends_each_block_once_when_every_ack_is_duplicated() {
    let server = TestServer::start(|c| c.default_timeout = SLOW_TIMER).await;
    let blocks = 203;
    let file = data::bytes((blocks - 1) * 512 + 1, 12);
    std::fs::write(server.path("w.bin"), &file).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(
            b"\x00\x01w.bin\x00octet\x00blksize\x00512\x00windowsize\x008\x00",
            server.addr,
        )
        .await
        .unwrap();
    let (oack, tid) = recv(&socket).await;
    match Packet::parse(&oack) {
        Ok(Packet::Oack { options }) => assert!(
            options
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case("windowsize") && o.value == "8"),
            "{options:?}"
        ),
        other => panic!("expected an OACK, got {other:?}"),
    }
    ack_twice(&socket, 0, tid).await;
    let got = receive_acking_twice(&socket, tid, None, 512, 8, blocks).await;
    assert_eq!(got.data, file);
    assert_eq!(
        got.datagrams, blocks,
        "every block sent exactly once although every ACK came twice"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_put_sends_each_block_once_when_every_ack_is_duplicated() {
    let listen = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listen.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blocks = 150;
    let file = data::bytes((blocks - 1) * 512 + 511, 13);
    let local = dir.path().join("up.bin");
    std::fs::write(&local, &file).unwrap();
    let opts = ClientOptions {
        blksize: None,
        windowsize: None,
        tsize: false,
        timeout: SLOW_TIMER,
        ..ClientOptions::default()
    };
    let client = tokio::spawn(async move {
        put(server_addr, &local, "up.bin", &opts, &mut |_| {})
            .await
            .map(|s| s.retransmits)
    });

    // A raw server: the WRQ on the listening port, the transfer on its own port.
    let (wrq, client_addr) = recv(&listen).await;
    assert!(matches!(Packet::parse(&wrq), Ok(Packet::Wrq(_))), "{wrq:?}");
    let transfer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ack_twice(&transfer, 0, client_addr).await;
    let got = receive_acking_twice(&transfer, client_addr, None, 512, 1, blocks).await;
    let retransmits = client.await.unwrap().expect("the put succeeds");
    assert_eq!(got.data, file);
    assert_eq!(
        got.datagrams, blocks,
        "every block sent exactly once although every ACK came twice"
    );
    assert_eq!(retransmits, 0);
}
