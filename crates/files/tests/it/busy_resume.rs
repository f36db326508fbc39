//! `put --resume` right after an interrupted upload whose connection the server has not yet
//! seen die: the name is `busy` for a moment, and the client retries with backoff.

use crate::common;

use common::Server;
use sockit_files::client::{Progress, PutOptions};
use sockit_files::{FilesClient, FilesConfig};
use sockit_testkit::data;
use sockit_wire::codec::encode_header;
use sockit_wire::{ErrorCode, Header};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const RESUME: PutOptions = PutOptions {
    resume: true,
    overwrite: false,
};

/// Forwards every warning to the test.
struct Warnings(mpsc::UnboundedSender<String>);

impl Progress for Warnings {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn warn(&mut self, message: &str) {
        let _ = self.0.send(message.to_owned());
    }
}

/// Starts a raw upload of `bytes` to `name` and sends only its first `sent` bytes; returns
/// the connection (still holding the name) once the server has staged them.
async fn hold(
    server: &Server,
    c: &mut FilesClient,
    name: &str,
    bytes: &[u8],
    sent: usize,
) -> TcpStream {
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let h = Header::request("put")
        .with("path", name)
        .with("size", bytes.len())
        .with("trailer", true);
    raw.write_all(&encode_header(&h).unwrap()).await.unwrap();
    raw.write_all(&bytes[..sent]).await.unwrap();
    raw.flush().await.unwrap();
    // Wait on the server's own answers (no sleeping): until it has the bytes staged.
    loop {
        if let Ok(st) = c.stat(name, false).await {
            if st.uploading && st.partial == Some(sent as u64) {
                return raw;
            }
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_waits_for_the_dying_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let bytes = data::bytes(3 << 20, 11);
    let local = tmp.path().join("r.bin");
    std::fs::write(&local, &bytes).unwrap();

    let mut c = server.client().await;
    let holder = hold(&server, &mut c, "r.bin", &bytes, 1 << 20).await;
    let (tx, mut warnings) = mpsc::unbounded_channel();
    let upload = tokio::spawn(async move {
        let r = c.put(&local, "r.bin", RESUME, &mut Warnings(tx)).await;
        (c, r)
    });
    // The first try found the name busy and said so; now the old connection dies.
    let first = warnings.recv().await.unwrap();
    assert!(
        first.contains("still being uploaded by another connection"),
        "{first}"
    );
    drop(holder);
    let (_c, r) = upload.await.unwrap();
    let r = r.unwrap();
    assert_eq!(
        r.resumed_from,
        1 << 20,
        "resumed from what the dead connection sent"
    );
    assert_eq!(r.sent, 2 << 20);
    assert!(std::fs::read(root.join("r.bin")).unwrap() == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_gives_up_clearly_when_the_name_stays_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let bytes = data::bytes(1 << 20, 12);
    let local = tmp.path().join("r.bin");
    std::fs::write(&local, &bytes).unwrap();

    let mut c = server.client().await;
    let holder = hold(&server, &mut c, "r.bin", &bytes, 1000).await;
    let (tx, mut warnings) = mpsc::unbounded_channel();
    let err = c
        .put(&local, "r.bin", RESUME, &mut Warnings(tx))
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::Busy), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("still in progress on the server after 5 tries"),
        "{msg}"
    );
    assert!(msg.contains("put --resume"), "{msg}");
    let mut n = 0;
    while warnings.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4, "one warning per wait");
    // Without --resume the answer is an immediate `busy`, as before.
    let err = c
        .put(
            &local,
            "r.bin",
            PutOptions {
                resume: false,
                overwrite: false,
            },
            &mut sockit_files::client::NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::Busy), "{err}");
    drop(holder);
}
