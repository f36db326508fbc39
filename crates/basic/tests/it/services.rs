//! Every basic service over real sockets, plus the runtime under load and garbage.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sockit_basic::{
    from_rfc868, DaytimeTcp, DaytimeUdp, EchoTcp, EchoUdp, GreetClient, GreetService, ServerSays,
    TimeTcp, TimeUdp,
};
use sockit_runtime::server::{
    bind_tcp, bind_udp, serve_tcp, serve_udp, Limits, TcpService, UdpService,
};
use sockit_testkit::data;
use sockit_testkit::net::{udp_ask, Running, LOOPBACK_ANY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const T: Duration = Duration::from_secs(10);

fn tcp(service: impl TcpService, limits: Limits) -> Running {
    let listener = bind_tcp(LOOPBACK_ANY, 2048).unwrap();
    let addr = listener.local_addr().unwrap();
    Running::spawn(addr, |token| {
        serve_tcp(listener, Arc::new(service), limits, token)
    })
}

fn udp(service: impl UdpService) -> Running {
    let socket = bind_udp(LOOPBACK_ANY).unwrap();
    let addr = socket.local_addr().unwrap();
    Running::spawn(addr, |token| serve_udp(socket, Arc::new(service), token))
}

async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout(T, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn greet_course_client_unterminated_sends() {
    let s = tcp(GreetService, Limits::default());
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(
        read_until(&mut c, b"What's your name?").await,
        b"Welcome!\nWhat's your name?"
    );
    c.write_all(b"Alice").await.unwrap();
    assert_eq!(
        read_until(&mut c, b"What's your name?").await,
        b"Hello Alice!\nWhat's your name?"
    );
    c.write_all(b"exit").await.unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"Good bye!\n");
}

#[tokio::test]
async fn greet_line_client() {
    let s = tcp(GreetService, Limits::default());
    let mut c = GreetClient::connect(&s.addr.to_string()).await.unwrap();
    assert_eq!(
        c.next().await.unwrap(),
        ServerSays::Prompt("Welcome!\n".into())
    );
    c.send_name("Bob").await.unwrap();
    assert_eq!(
        c.next().await.unwrap(),
        ServerSays::Prompt("Hello Bob!\n".into())
    );
    c.send_name("exit").await.unwrap();
    assert_eq!(
        c.next().await.unwrap(),
        ServerSays::Closed("Good bye!\n".into())
    );
}

#[tokio::test]
async fn greet_two_lines_in_one_send() {
    let s = tcp(GreetService, Limits::default());
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"a\r\nb\nexit\n").await.unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    assert_eq!(
        String::from_utf8(all).unwrap(),
        "Welcome!\nWhat's your name?Hello a!\nWhat's your name?Hello b!\nWhat's your name?Good bye!\n"
    );
}

#[tokio::test]
async fn echo_tcp_large_payload() {
    let s = tcp(EchoTcp, Limits::default());
    let c = TcpStream::connect(s.addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    rd.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
}

#[tokio::test]
async fn echo_udp() {
    let s = udp(EchoUdp);
    assert_eq!(udp_ask(s.addr, b"ping 1").await, b"ping 1");
    let big = vec![0xab; 60000];
    assert_eq!(udp_ask(s.addr, &big).await, big);
}

#[tokio::test]
async fn daytime_tcp_line() {
    let s = tcp(DaytimeTcp, Limits::default());
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).await.unwrap();
    assert!(all.ends_with("\r\n"));
    let year = chrono::Local::now().format("%Y").to_string();
    assert!(all.trim_end().ends_with(&year), "{all:?}");
    assert!(
        chrono::NaiveDateTime::parse_from_str(all.trim_end(), "%a %b %e %H:%M:%S %Y").is_ok(),
        "{all:?}"
    );
}

#[tokio::test]
async fn daytime_udp_formats() {
    let s = udp(DaytimeUdp);
    let reply = String::from_utf8(udp_ask(s.addr, b"").await).unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&reply, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{reply}"
    );
    let reply = String::from_utf8(udp_ask(s.addr, b"%Y").await).unwrap();
    assert_eq!(reply, chrono::Local::now().format("%Y").to_string());
    let reply = String::from_utf8(udp_ask(s.addr, b"%Q").await).unwrap();
    assert!(
        reply.starts_with("error: invalid strftime format"),
        "{reply}"
    );
    let reply = String::from_utf8(udp_ask(s.addr, &[b'x'; 300]).await).unwrap();
    assert!(reply.starts_with("error: format is 300 bytes"), "{reply}");
    // Still serving after the bad ones.
    assert_eq!(udp_ask(s.addr, b"ok").await, b"ok");
}

fn assert_near_now(value: u32) {
    let t = from_rfc868(value, SystemTime::now());
    let diff = match SystemTime::now().duration_since(t) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(diff < Duration::from_secs(5), "server time off by {diff:?}");
}

#[tokio::test]
async fn time_tcp_and_udp() {
    let s = tcp(TimeTcp, Limits::default());
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_near_now(u32::from_be_bytes(all.try_into().unwrap()));
    let u = udp(TimeUdp);
    let reply = udp_ask(u.addr, b"").await;
    assert_near_now(u32::from_be_bytes(reply.try_into().unwrap()));
}

fn raise_nofile() {
    // SAFETY: plain rlimit calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_echo_clients() {
    raise_nofile();
    let limits = Limits {
        max_conns: 2000,
        max_conns_per_ip: 2000,
        ..Limits::default()
    };
    let s = tcp(EchoTcp, limits);
    // Connect all first so the 1,000 connections are really open at the same time.
    let mut streams = Vec::with_capacity(1000);
    for _ in 0..1000 {
        streams.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut c) in streams.into_iter().enumerate() {
        tasks.spawn(async move {
            let msg = format!("client {i} says hello {}", "x".repeat(i % 300));
            c.write_all(msg.as_bytes()).await.unwrap();
            let mut got = vec![0u8; msg.len()];
            tokio::time::timeout(T, c.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, msg.as_bytes());
            i
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, 1000);
}

#[tokio::test]
async fn random_bytes_never_wedge_tcp_services() {
    let limits = Limits {
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let services: Vec<(&str, Running)> = vec![
        ("greet", tcp(GreetService, limits)),
        ("echo", tcp(EchoTcp, limits)),
        ("daytime", tcp(DaytimeTcp, limits)),
        ("time", tcp(TimeTcp, limits)),
    ];
    for (name, s) in &services {
        for seed in 1..=20u64 {
            let mut c = TcpStream::connect(s.addr).await.unwrap();
            let junk = data::bytes((seed as usize * 997) % 70000, seed);
            // The peer may close first (daytime/time); errors here are fine.
            let _ = c.write_all(&junk).await;
            let _ = c.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(T, c.read_to_end(&mut sink)).await;
        }
        // A good client is still served.
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        match *name {
            "greet" => {
                read_until(&mut c, b"What's your name?").await;
                c.write_all(b"exit\n").await.unwrap();
                read_until(&mut c, b"Good bye!\n").await;
            }
            "echo" => {
                c.write_all(b"still alive").await.unwrap();
                let mut b = [0u8; 11];
                c.read_exact(&mut b).await.unwrap();
                assert_eq!(&b, b"still alive");
            }
            _ => {
                let mut all = Vec::new();
                c.read_to_end(&mut all).await.unwrap();
                assert!(!all.is_empty(), "{name} answered nothing");
            }
        }
    }
}

#[tokio::test]
async fn random_datagrams_never_wedge_udp_services() {
    let services = [udp(EchoUdp), udp(DaytimeUdp), udp(TimeUdp)];
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for s in &services {
        for seed in 1..=50u64 {
            let junk = data::bytes((seed as usize * 1299) % 65000, seed);
            sender.send_to(&junk, s.addr).await.unwrap();
        }
    }
    assert_eq!(udp_ask(services[0].addr, b"alive").await, b"alive");
    assert!(!udp_ask(services[1].addr, b"%Y").await.is_empty());
    assert_eq!(udp_ask(services[2].addr, b"").await.len(), 4);
}
