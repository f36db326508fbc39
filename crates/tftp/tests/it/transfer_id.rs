//! Transfer IDs (RFC 1350 §4): a datagram that reaches a transfer's port from any other
//! address/port gets ERROR 5 "unknown transfer ID" and changes nothing; the transfer
//! with its real peer goes on. An ERROR from a foreign port is not answered.

use crate::common;
use sockit_testkit::data;

use common::{recv_datagram as recv, TestServer};
use sockit_tftp::packets::{ack_bytes, data_header, ErrorCode, Packet};
use std::time::Duration;
use tokio::net::UdpSocket;

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Datagrams already queued on `socket` (none are waited for).
fn queued(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70000];
    // Bounded: a socket buffer holds a finite number of datagrams; 1000 is far beyond
    // anything these tests can queue.
    for _ in 0..1000 {
        match socket.try_recv_from(&mut buf) {
            Ok((len, _)) => out.push(buf[..len].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!("more than 1000 datagrams queued");
}

#[track_caller]
fn assert_unknown_tid(datagram: &[u8]) {
    match Packet::parse(datagram) {
        Ok(Packet::Error { code, message }) => {
            assert_eq!(code, ErrorCode::UnknownTid, "{message}");
            assert!(message.contains("unknown transfer ID"), "{message}");
        }
        other => panic!("expected ERROR 5, got {other:?}"),
    }
}

#[track_caller]
fn assert_data(datagram: &[u8], want_block: u16, want: &[u8]) {
    match Packet::parse(datagram) {
        Ok(Packet::Data { block, data }) => {
            assert_eq!(block, want_block);
            assert_eq!(data, want, "DATA {block}");
        }
        other => panic!("expected DATA {want_block}, got {other:?}"),
    }
}

fn data_packet(block: u16, data: &[u8]) -> Vec<u8> {
    let mut p = data_header(block).to_vec();
    p.extend_from_slice(data);
    p
}

#[tokio::test]
async fn foreign_port_during_a_download_gets_error_5_and_the_download_goes_on() {
    let server = TestServer::start(|c| c.default_timeout = Duration::from_secs(5)).await;
    let file = data::bytes(3 * 512 + 100, 5);
    std::fs::write(server.path("f.bin"), &file).unwrap();
    let client = socket().await;
    let stranger = socket().await;

    client
        .send_to(b"\x00\x01f.bin\x00octet\x00", server.addr)
        .await
        .unwrap();
    let (first, tid) = recv(&client).await;
    assert_ne!(tid, server.addr, "the transfer runs on its own port");
    assert_data(&first, 1, &file[..512]);

    // A stranger ACKs block 1 on the transfer's port: it is told the ID is unknown,
    // from that port.
    stranger.send_to(&ack_bytes(1), tid).await.unwrap();
    let (answer, from) = recv(&stranger).await;
    assert_eq!(from, tid);
    assert_unknown_tid(&answer);

    // The stranger's ACK moved nothing: the next thing the client sees is DATA 2 only
    // after its own ACK 1, and every block comes exactly once.
    let mut got = first[4..].to_vec();
    for block in 1..=4u16 {
        client.send_to(&ack_bytes(block), tid).await.unwrap();
        if block == 4 {
            break;
        }
        let (next, from) = recv(&client).await;
        assert_eq!(from, tid);
        let start = block as usize * 512;
        assert_data(
            &next,
            block + 1,
            &file[start..(start + 512).min(file.len())],
        );
        got.extend_from_slice(&next[4..]);
    }
    assert_eq!(got, file);
    assert!(
        queued(&client).is_empty(),
        "the stranger caused no extra DATA"
    );
    server.stop().await;
}

#[tokio::test]
async fn foreign_port_during_an_upload_gets_error_5_and_writes_nothing() {
    let server = TestServer::start(|c| {
        c.write_allowed = true;
        c.default_timeout = Duration::from_secs(5);
    })
    .await;
    let client = socket().await;
    let stranger = socket().await;
    let mine = data::bytes(512 + 10, 6);
    let forged = vec![b'X'; 512];

    client
        .send_to(b"\x00\x02up.bin\x00octet\x00", server.addr)
        .await
        .unwrap();
    let (ack0, tid) = recv(&client).await;
    assert_eq!(ack0, ack_bytes(0).to_vec());

    // The stranger sends block 1 first: ERROR 5, and its bytes are not stored.
    stranger
        .send_to(&data_packet(1, &forged), tid)
        .await
        .unwrap();
    let (answer, from) = recv(&stranger).await;
    assert_eq!(from, tid);
    assert_unknown_tid(&answer);

    client
        .send_to(&data_packet(1, &mine[..512]), tid)
        .await
        .unwrap();
    let (ack1, _) = recv(&client).await;
    assert_eq!(ack1, ack_bytes(1).to_vec());
    client
        .send_to(&data_packet(2, &mine[512..]), tid)
        .await
        .unwrap();
    let (ack2, _) = recv(&client).await;
    // The final ACK is sent once the upload is on disk.
    assert_eq!(ack2, ack_bytes(2).to_vec());
    assert_eq!(std::fs::read(server.path("up.bin")).unwrap(), mine);
    server.stop().await;
}

#[tokio::test]
async fn error_from_a_foreign_port_is_not_answered_and_does_not_end_the_transfer() {
    let server = TestServer::start(|c| c.default_timeout = Duration::from_secs(5)).await;
    let file = data::bytes(2 * 512 + 7, 7);
    std::fs::write(server.path("g.bin"), &file).unwrap();
    let client = socket().await;
    let stranger = socket().await;

    client
        .send_to(b"\x00\x01g.bin\x00octet\x00", server.addr)
        .await
        .unwrap();
    let (first, tid) = recv(&client).await;
    assert_data(&first, 1, &file[..512]);

    // An ERROR, then an ACK, from the stranger; then the client's own ACK 1. The
    // transfer socket reads them in that order, so once the client has DATA 2 every
    // answer to the stranger is already queued on its socket.
    stranger
        .send_to(b"\x00\x05\x00\x00go away\x00", tid)
        .await
        .unwrap();
    stranger.send_to(&ack_bytes(1), tid).await.unwrap();
    let (answer, _) = recv(&stranger).await;
    assert_unknown_tid(&answer);
    client.send_to(&ack_bytes(1), tid).await.unwrap();
    let (second, _) = recv(&client).await;
    assert_data(&second, 2, &file[512..1024]);
    assert_eq!(
        queued(&stranger),
        Vec::<Vec<u8>>::new(),
        "only the ACK was answered, not the ERROR"
    );

    client.send_to(&ack_bytes(2), tid).await.unwrap();
    let (third, _) = recv(&client).await;
    assert_data(&third, 3, &file[1024..]);
    client.send_to(&ack_bytes(3), tid).await.unwrap();
    server.stop().await;
}
