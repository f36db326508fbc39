//! The correctness suite, run against every model: 200 concurrent clients, messages from
//! 1 byte to 1 MiB (edge sizes and pseudo-random ones) written in uneven chunks and read back in small uneven reads (short
//! reads and writes on both sides), a client that aborts mid-message, a client that
//! half-closes, an idle client during shutdown; every byte must come back exactly and the
//! server must stop cleanly.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use sockit_lab::{spawn_model, Model, RunningServer, ServeConfig};
use sockit_testkit::data::Rng;
use sockit_testkit::peer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Models run one at a time: they share the machine's two cores and the process's
/// descriptor numbers (select must stay below FD_SETSIZE).
static SERIAL: Mutex<()> = Mutex::new(());

const CLIENTS: usize = 200;
const SIZES: [usize; 7] = [1, 7, 100, 4096, 16 * 1024 + 1, 200_000, 1 << 20];

/// Message size for client `c`: the edge sizes of [`SIZES`] for even clients, a
/// pseudo-random size up to 300 kB (seeded by `c`, so a failure reproduces) for odd ones.
fn size_for(c: usize) -> usize {
    if c.is_multiple_of(2) {
        return SIZES[(c / 2) % SIZES.len()];
    }
    1 + Rng::new(c as u64).below(300_000) as usize
}

fn payload(client: usize, len: usize) -> Vec<u8> {
    // A different byte pattern per client so crossed streams would be caught.
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ client.wrapping_mul(7)) as u8)
        .collect()
}

/// Writes `data` in chunks of varying size while reading the echo with small varying
/// reads, then half-closes and expects EOF after exactly `data`.
async fn echo_roundtrip(addr: SocketAddr, client: usize, data: Vec<u8>) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("client {client}: connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let len = data.len();
    let expected = data.clone();
    let writer = async move {
        let mut off = 0;
        let mut step = 1 + client % 5000;
        while off < len {
            let end = (off + step).min(len);
            wr.write_all(&data[off..end]).await?;
            off = end;
            step = step * 3 % 70_001 + 1;
        }
        wr.shutdown().await?; // half-close: "no more data from me"
        Ok::<_, std::io::Error>(())
    };
    let reader = async move {
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; 1 + client % 3000];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (w, r) = tokio::join!(writer, reader);
    w.map_err(|e| format!("client {client}: write: {e}"))?;
    let got = r.map_err(|e| format!("client {client}: read: {e}"))?;
    if got != expected {
        let first_diff = got.iter().zip(&expected).position(|(a, b)| a != b);
        return Err(format!(
            "client {client}: echoed {} bytes, expected {len}; first difference at {first_diff:?}",
            got.len()
        ));
    }
    Ok(())
}

/// Sends half a message, then resets the connection (SO_LINGER 0 + close).
async fn abort_mid_message(addr: SocketAddr) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let mut s = s;
    s.write_all(&payload(9999, 50_000)).await.expect("write");
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(s);
}

fn stop_within(server: RunningServer, secs: u64) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(server.stop().map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("server stopped with an error: {e}"),
        Err(_) => panic!("server did not stop within {secs}s"),
    }
}

fn run_suite(model: Model) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if model == Model::IoUring {
        let available = sockit_lab::models::io_uring::available().map_err(|e| {
            format!(
                "{e}: the kernel refuses io_uring (kernel.io_uring_disabled, or a seccomp \
                 profile)"
            )
        });
        if peer::unless_skipped("io-uring", available).is_none() {
            return;
        }
    }
    let mut cfg = ServeConfig::new(model);
    if model == Model::Pool {
        cfg.workers = Some(8);
    }
    let server = match spawn_model(cfg) {
        Ok(s) => s,
        Err(e @ sockit_lab::LabError::Python { .. }) => {
            panic!("{e}; the Debian package is python3 (scripts/test.sh installs it)")
        }
        // A missing gevent fails here too: its error says how to install it.
        Err(e) => panic!("{model}: cannot start: {e}"),
    };
    let addr = server.addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A client that dies mid-message must not disturb the others.
        abort_mid_message(addr).await;
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CLIENTS {
            let len = size_for(c);
            tasks.spawn(echo_roundtrip(addr, c, payload(c, len)));
        }
        let mut failures = Vec::new();
        let all = async {
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r.expect("client task panicked") {
                    failures.push(e);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .unwrap_or_else(|_| panic!("{model}: clients did not finish within 120s"));
        assert!(failures.is_empty(), "{model}: {failures:#?}");
        // Still serving after all that.
        echo_roundtrip(addr, 424242, payload(1, 3000))
            .await
            .unwrap_or_else(|e| panic!("{model}: after the suite: {e}"));
    });
    // An idle client connected during shutdown must not keep the server alive.
    let idle = std::net::TcpStream::connect(addr).expect("idle client connects");
    stop_within(server, 15);
    drop(idle);
}

/// One test per model, and [`SUITE`]: the models that have one.
macro_rules! suite {
    ($($name:ident => $model:expr),* $(,)?) => {
        $( #[test] fn $name() { run_suite($model); } )*
        const SUITE: &[Model] = &[$($model),*];
    };
}

suite! {
    python_iterative => Model::PythonIterative,
    python_fork => Model::PythonFork,
    python_threads => Model::PythonThreads,
    python_nonblocking => Model::PythonNonblocking,
    python_select => Model::PythonSelect,
    python_epoll => Model::PythonEpoll,
    python_gevent => Model::PythonGevent,
    python_asyncio => Model::PythonAsyncio,
    iterative => Model::Iterative,
    fork => Model::Fork,
    thread => Model::Thread,
    pool => Model::Pool,
    nonblocking => Model::Nonblocking,
    select => Model::Select,
    poll => Model::Poll,
    epoll_lt => Model::EpollLt,
    epoll_et => Model::EpollEt,
    mio => Model::Mio,
    tokio_multi_thread => Model::Tokio,
    tokio_local => Model::TokioLocal,
    io_uring => Model::IoUring,
    c_epoll => Model::CEpoll,
}

#[test]
fn every_model_has_a_suite_test() {
    // If a model is added, this reminds the author to add it to `suite!` above.
    let mut have: Vec<&str> = SUITE.iter().map(|m| m.name()).collect();
    let mut all: Vec<&str> = sockit_lab::models().iter().map(|m| m.name()).collect();
    have.sort_unstable();
    all.sort_unstable();
    assert_eq!(
        have, all,
        "models without a suite test, or suite tests of no model"
    );
}
