//! IRC over WebSocket (the IRCv3 WebSocket specification): subprotocol negotiation, one
//! line per message both ways, one network with the TCP port, `wss://`, refusals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sockit_chat::irc::{
    IrcServer, IrcWsServer, Message, OriginPolicy, BINARY_PROTOCOL, TEXT_PROTOCOL,
};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_runtime::tls::{self, ServerIdentity, Trust};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::common::{config, Raw, LINE_WAIT};

/// One IRC server with a TCP port and a WebSocket port (and `wss://` when given TLS).
struct Network {
    tcp: SocketAddr,
    ws: SocketAddr,
    token: CancellationToken,
}

impl Drop for Network {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn limits() -> Limits {
    Limits {
        max_conns_per_ip: 1_000,
        handshake_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

/// Serves `server` on a fresh loopback listener; returns its address.
fn serve(
    service: Arc<dyn sockit_runtime::server::TcpService>,
    token: &CancellationToken,
) -> SocketAddr {
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(listener, service, limits(), token.clone()));
    addr
}

fn network(origins: OriginPolicy, tls: Option<tokio_rustls::TlsAcceptor>) -> Network {
    let token = CancellationToken::new();
    let irc = IrcServer::new(config());
    let tcp = serve(Arc::new(irc.clone()), &token);
    let ws_server = match tls {
        None => IrcWsServer::new(irc, origins),
        Some(acceptor) => IrcWsServer::with_tls(irc, origins, acceptor),
    };
    let ws = serve(Arc::new(ws_server), &token);
    Network { tcp, ws, token }
}

/// A WebSocket IRC client.
struct WsClient<S> {
    ws: WebSocketStream<S>,
    /// The subprotocol the server answered with.
    protocol: Option<String>,
}

async fn ws_connect(addr: SocketAddr, protocols: &str) -> WsClient<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    ws_handshake(tcp, &format!("ws://{addr}/"), protocols, None).await
}

async fn ws_handshake<S>(stream: S, url: &str, protocols: &str, origin: Option<&str>) -> WsClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).unwrap(),
        );
    }
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("WebSocket handshake");
    let protocol = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    WsClient { ws, protocol }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    async fn send(&mut self, line: &str) {
        let msg = if self.protocol.as_deref() == Some(BINARY_PROTOCOL) {
            WsMessage::binary(line.as_bytes().to_vec())
        } else {
            WsMessage::text(line.to_owned())
        };
        self.ws.send(msg).await.unwrap();
    }

    /// The next data message's bytes, whether it came as text; `None` once closed.
    async fn next_data(&mut self) -> Option<(Vec<u8>, bool)> {
        loop {
            let next = tokio::time::timeout(LINE_WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a WebSocket message");
            match next {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return None,
                Some(Ok(WsMessage::Text(t))) => return Some((t.as_bytes().to_vec(), true)),
                Some(Ok(WsMessage::Binary(b))) => return Some((b.to_vec(), false)),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next IRC message; asserts one message is one line without CR LF, framed as
    /// the negotiated subprotocol says.
    async fn msg(&mut self) -> Message {
        let (bytes, was_text) = self.next_data().await.expect("connection closed");
        assert!(
            !bytes.contains(&b'\r') && !bytes.contains(&b'\n'),
            "a message carried a line break: {bytes:?}"
        );
        assert_eq!(
            was_text,
            self.protocol.as_deref() != Some(BINARY_PROTOCOL),
            "frame kind does not follow the subprotocol {:?}",
            self.protocol
        );
        Message::parse(&bytes).unwrap_or_else(|e| panic!("bad line {bytes:?}: {e}"))
    }

    async fn until(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        for _ in 0..1_000 {
            let m = self.msg().await;
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message in 1,000");
    }

    async fn register(&mut self, nick: &str) {
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Web {nick}")).await;
        self.until(|m| m.command == "376" || m.command == "422")
            .await;
    }
}

#[tokio::test]
async fn a_browser_style_text_client_chats_with_a_tcp_client() {
    let net = network(OriginPolicy::default(), None);
    let mut web = ws_connect(net.ws, TEXT_PROTOCOL).await;
    assert_eq!(web.protocol.as_deref(), Some(TEXT_PROTOCOL));
    web.register("webby").await;
    web.send("JOIN #lobby").await;
    web.until(|m| m.command == "366").await;

    let mut tcp = Raw::register(net.tcp, "tcpuser").await;
    tcp.send("JOIN #lobby").await;
    let names = tcp.until_cmd("353").await;
    assert!(names.params.last().unwrap().contains("webby"), "{names}");
    tcp.until_cmd("366").await;
    let join = web.until(|m| m.command == "JOIN").await;
    assert!(join.prefix.as_deref().unwrap().starts_with("tcpuser!"));

    tcp.send("PRIVMSG #lobby :hello from tcp").await;
    let got = web.until(|m| m.command == "PRIVMSG").await;
    assert_eq!(got.params, ["#lobby", "hello from tcp"]);

    web.send("PRIVMSG #lobby :hello from the web").await;
    let got = tcp.until_cmd("PRIVMSG").await;
    assert!(
        got.prefix.as_deref().unwrap().starts_with("webby!"),
        "{got}"
    );
    assert_eq!(got.params, ["#lobby", "hello from the web"]);

    // A trailing CR LF, which the specification forbids, is tolerated.
    web.send("PRIVMSG tcpuser :direct\r\n").await;
    let got = tcp.until_cmd("PRIVMSG").await;
    assert_eq!(got.params, ["tcpuser", "direct"]);

    // Leaving: QUIT reaches the channel, the web client reads ERROR, then a Close.
    web.send("QUIT :bye").await;
    let err = web.until(|m| m.command == "ERROR").await;
    assert!(err.params[0].contains("bye"), "{err}");
    assert!(web.next_data().await.is_none(), "no Close after ERROR");
    let quit = tcp.until_cmd("QUIT").await;
    assert!(quit.prefix.as_deref().unwrap().starts_with("webby!"));
}

#[tokio::test]
async fn binary_is_chosen_when_preferred_and_carries_any_bytes() {
    let net = network(OriginPolicy::default(), None);
    let offer = format!("{BINARY_PROTOCOL}, {TEXT_PROTOCOL}");
    let mut bin = ws_connect(net.ws, &offer).await;
    assert_eq!(bin.protocol.as_deref(), Some(BINARY_PROTOCOL));
    bin.register("binuser").await;
    // The client's order of preference decides.
    let offer = format!("{TEXT_PROTOCOL}, {BINARY_PROTOCOL}");
    let mut text = ws_connect(net.ws, &offer).await;
    assert_eq!(text.protocol.as_deref(), Some(TEXT_PROTOCOL));
    text.register("textuser").await;
    bin.send("JOIN #bytes").await;
    bin.until(|m| m.command == "366").await;
    text.send("JOIN #bytes").await;
    text.until(|m| m.command == "366").await;

    // Latin-1 bytes from a raw TCP client: the binary client gets them as they are, the
    // text client valid UTF-8 with U+FFFD in their place (the server's own rule for
    // invalid input turns them into U+FFFD for everyone, so both see the same text).
    let mut tcp = Raw::register(net.tcp, "latin").await;
    tcp.send("JOIN #bytes").await;
    tcp.until_cmd("366").await;
    tcp.send_raw(b"PRIVMSG #bytes :caf\xe9\r\n").await;
    let b = bin.until(|m| m.command == "PRIVMSG").await;
    let t = text.until(|m| m.command == "PRIVMSG").await;
    assert_eq!(b.params[1], "caf\u{fffd}");
    assert_eq!(t.params[1], "caf\u{fffd}");

    // A client offering no subprotocol is still served (text out, any kind in).
    let mut legacy = ws_connect(net.ws, "").await;
    assert_eq!(legacy.protocol, None);
    legacy
        .ws
        .send(WsMessage::binary(b"NICK old".to_vec()))
        .await
        .unwrap();
    legacy
        .ws
        .send(WsMessage::text("USER old 0 * :Old".to_owned()))
        .await
        .unwrap();
    let welcome = legacy.until(|m| m.command == "001").await;
    assert_eq!(welcome.params[0], "old");
}

#[tokio::test]
async fn an_over_long_line_gets_417_and_the_connection_stays() {
    let net = network(OriginPolicy::default(), None);
    let mut web = ws_connect(net.ws, TEXT_PROTOCOL).await;
    web.register("longy").await;
    web.send(&format!("PRIVMSG longy :{}", "x".repeat(600)))
        .await;
    let err = web.until(|m| m.command == "417").await;
    assert_eq!(err.params[0], "longy");
    web.send("PING :still-here").await;
    let pong = web.until(|m| m.command == "PONG").await;
    assert_eq!(pong.params.last().unwrap(), "still-here");
}

#[tokio::test]
async fn plain_http_gets_a_400_that_says_what_the_port_is() {
    let net = network(OriginPolicy::default(), None);
    let mut s = TcpStream::connect(net.ws).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(LINE_WAIT, s.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("IRC over WebSocket"), "{answer}");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_when_origins_are_listed() {
    let origins = OriginPolicy {
        allowed: vec!["https://chat.example".into()],
    };
    let net = network(origins, None);
    let url = format!("ws://{}/", net.ws);
    let tcp = TcpStream::connect(net.ws).await.unwrap();
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", HeaderValue::from_static("https://evil.example"));
    let err = tokio_tungstenite::client_async(req, tcp).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 403);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("--chat-ws-origin"), "{body}");
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    // The listed origin connects.
    let tcp = TcpStream::connect(net.ws).await.unwrap();
    let mut ok = ws_handshake(tcp, &url, TEXT_PROTOCOL, Some("https://chat.example")).await;
    ok.register("allowed").await;
}

#[tokio::test]
async fn wss_serves_the_same_network_and_tells_plain_clients_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = ServerIdentity::load_or_generate(dir.path()).unwrap();
    let acceptor = tls::acceptor(&identity).unwrap();
    let net = network(OriginPolicy::default(), Some(acceptor));

    let (connector, _) = tls::connector(Trust::Pinned(identity.fingerprint())).unwrap();
    let tcp = TcpStream::connect(net.ws).await.unwrap();
    let tls_stream = connector
        .connect(tls::server_name("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/", net.ws.port());
    let mut secure = ws_handshake(tls_stream, &url, TEXT_PROTOCOL, None).await;
    secure.register("secure").await;
    secure.send("JOIN #tls").await;
    secure.until(|m| m.command == "366").await;

    let mut tcp = Raw::register(net.tcp, "plainjoe").await;
    tcp.send("JOIN #tls").await;
    tcp.until_cmd("366").await;
    tcp.send("PRIVMSG #tls :over tcp").await;
    let got = secure.until(|m| m.command == "PRIVMSG").await;
    assert_eq!(got.params, ["#tls", "over tcp"]);

    // Plain HTTP on the wss port is told to use wss://.
    let mut s = TcpStream::connect(net.ws).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(LINE_WAIT, s.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("wss://"), "{answer}");
}

#[tokio::test]
async fn a_client_that_drops_the_connection_quits_its_channels() {
    let net = network(OriginPolicy::default(), None);
    let mut web = ws_connect(net.ws, BINARY_PROTOCOL).await;
    web.register("dropper").await;
    web.send("JOIN #gone").await;
    web.until(|m| m.command == "366").await;
    let mut tcp = Raw::register(net.tcp, "watcher").await;
    tcp.send("JOIN #gone").await;
    tcp.until_cmd("366").await;
    drop(web);
    let quit = tcp.until_cmd("QUIT").await;
    assert!(
        quit.prefix.as_deref().unwrap().starts_with("dropper!"),
        "{quit}"
    );
}

#[tokio::test]
async fn headless_chromium_chats_over_websocket() {
    let net = network(OriginPolicy::default(), None);
    let mut tcp = Raw::register(net.tcp, "tcpfriend").await;
    tcp.send("JOIN #web").await;
    tcp.until_cmd("366").await;

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/irc_ws_chromium.py");
    let browser = tokio::process::Command::new(sockit_testkit::peer::require("python3", "python3"))
        .arg(script)
        .arg(format!("ws://{}/", net.ws))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The browser's hello arrives (chromium's start-up is slow on a busy machine: the
    // wait is a hang guard, not a speed claim).
    let hello = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let mut buf = Vec::new();
            use tokio::io::AsyncBufReadExt;
            let n = tcp.rd.read_until(b'\n', &mut buf).await.unwrap();
            assert!(n > 0, "server closed the TCP client");
            let m = Message::parse(&buf).unwrap();
            if m.command == "PRIVMSG" {
                return m;
            }
        }
    })
    .await
    .expect("the browser never spoke");
    assert!(
        hello.prefix.as_deref().unwrap().starts_with("chromium!"),
        "{hello}"
    );
    assert_eq!(hello.params, ["#web", "hello from chromium"]);
    tcp.send("PRIVMSG #web :hello browser").await;

    let out = tokio::time::timeout(Duration::from_secs(120), browser.wait_with_output())
        .await
        .expect("the browser script hung")
        .unwrap();
    assert!(
        out.status.success(),
        "browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["protocol"], TEXT_PROTOCOL, "{report}");
    assert_eq!(report["allText"], true, "{report}");
    let answer = report["answer"].as_str().unwrap();
    assert!(answer.starts_with(":tcpfriend!"), "{answer}");
    assert!(answer.ends_with("PRIVMSG #web :hello browser"), "{answer}");
}
