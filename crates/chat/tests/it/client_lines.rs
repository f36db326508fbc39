//! The client connection's line limit: lines with a full IRCv3 tag section (4,607 bytes)
//! before the 512 bytes of the rest are accepted; longer lines are skipped.

use sockit_chat::client::connection::MAX_SERVER_LINE;
use sockit_chat::client::{ClientConfig, Connection, Event};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::{tags, LINE_WAIT};

#[tokio::test]
async fn tagged_lines_up_to_the_spec_limit_reach_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The biggest tag section: `@`, tags, space = 4,607 bytes.
    let value = "v".repeat(4607 - "@+big= ".len());
    let head = ":srv PRIVMSG me :";
    let text = "x".repeat(512 - head.len() - 2);
    let rest = format!("{head}{text}\r\n");
    assert_eq!(rest.len(), 512);
    let biggest = format!("@+big={value} {rest}");
    assert_eq!(biggest.len(), MAX_SERVER_LINE);
    let too_long = format!("@+big={value}v {rest}");
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = s.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        // Wait for NICK and USER, then send the welcome and the test lines.
        for _ in 0..2 {
            line.clear();
            rd.read_line(&mut line).await.unwrap();
        }
        let burst = format!(":srv 001 me :hi\r\n{too_long}{biggest}:srv NOTICE me :after\r\n");
        wr.write_all(burst.as_bytes()).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut c = Connection::connect(&ClientConfig {
        addr: addr.to_string(),
        nick: "me".into(),
        realname: "Me".into(),
        password: None,
        tls: None,
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let ev = tokio::time::timeout(LINE_WAIT, c.events.recv())
            .await
            .expect("timed out")
            .expect("events ended");
        if let Event::Message(m) = ev {
            if m.command != "001" {
                got.push(m);
            }
        }
    }
    assert_eq!(got[0].command, "PRIVMSG", "the over-long line is skipped");
    assert_eq!(tags(&got[0]).get("+big").map(str::len), Some(value.len()));
    assert_eq!(got[0].params[1], text);
    assert_eq!(got[1].params, vec!["me", "after"]);
    server.await.unwrap();
}
