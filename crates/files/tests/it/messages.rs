//! The typed messages against a running server: the literal JSON of docs/files.md and of
//! course clients is answered with frames that read as the reply types, and a request of
//! the wrong shape gets `bad_request` naming the key while the connection stays usable.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sockit_files::messages::{
    GetReply, PathReply, PutReply, StatReply, SyncPullReply, SyncSigReply,
};
use sockit_files::{FilesConfig, FilesRoot};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use sockit_wire::{Client, ClientError, ErrorCode, Header};

fn header(json: &str) -> Header {
    serde_json::from_str(json).unwrap()
}

/// A key-less file server on a free loopback port, and a client connected to it.
async fn serve(root: &std::path::Path) -> (Running, Client) {
    let files: Arc<FilesRoot> = FilesRoot::open(root, FilesConfig::default()).unwrap();
    let mut table = CommandTable::new();
    sockit_files::cmd::register(&mut table, files);
    let service = Arc::new(FramedService::new(table, FramedConfig::default()));
    let listener = bind_tcp(LOOPBACK_ANY, 64).unwrap();
    let addr = listener.local_addr().unwrap();
    let running = Running::spawn(addr, |token| {
        serve_tcp(listener, service, Limits::default(), token)
    });
    let client = Client::connect(&addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    (running, client)
}

fn bad_request(r: Result<Header, ClientError>) -> String {
    match r {
        Err(ClientError::Remote {
            code: ErrorCode::BadRequest,
            message,
        }) => message,
        other => panic!("expected bad_request, got {other:?}"),
    }
}

#[tokio::test]
async fn course_and_doc_requests_read_as_the_reply_types() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut c) = serve(dir.path()).await;

    let put = c
        .request_with_body(
            &header(r#"{"cmd":"put","filename":"c.txt","filesize":5}"#),
            Bytes::from_static(b"hello"),
        )
        .await
        .unwrap();
    let stored = put.decode::<PutReply>().unwrap().stored;
    assert_eq!((stored.path.as_str(), stored.size), ("c.txt", 5));
    assert_eq!(stored.blake3, blake3::hash(b"hello").to_hex().as_str());

    let stat = c
        .request(&header(r#"{"cmd":"stat","filename":"c.txt","hash":false}"#))
        .await
        .unwrap();
    let stat = stat.decode::<StatReply>().unwrap().stat;
    assert_eq!((stat.kind.as_str(), stat.size), ("file", 5));

    let get = c
        .request(&header(r#"{"cmd":"get","path":"c.txt","offset":1}"#))
        .await
        .unwrap();
    let reply = get.decode::<GetReply>().unwrap();
    assert_eq!(
        (reply.size, reply.filesize, reply.total, reply.offset),
        (4, 4, 5, 1)
    );
    assert_eq!(reply.filename, "c.txt");
    c.connection().discard_body().await.unwrap();

    // The delta sync commands as docs/files.md ("sync") shows them.
    let sig = c
        .request(&header(r#"{"cmd":"sync_sig","path":"c.txt"}"#))
        .await
        .unwrap();
    let sig = sig.decode::<SyncSigReply>().unwrap();
    // One record: a 4-byte length and 16 bytes of the chunk's BLAKE3; a small file is cut
    // with the smallest average chunk.
    assert_eq!((sig.total, sig.chunks, sig.data_size), (5, 1, 20));
    assert_eq!(sig.chunk_avg, 8192);
    assert_eq!(sig.blake3, blake3::hash(b"hello").to_hex().as_str());
    c.connection().discard_body().await.unwrap();
    let pull = c
        .request(&header(
            r#"{"cmd":"sync_pull","path":"c.txt","data_size":0}"#,
        ))
        .await
        .unwrap();
    let pull = pull.decode::<SyncPullReply>().unwrap();
    // No chunk list: one literal of the 5 bytes (a tag, a length, the bytes).
    assert_eq!(
        (pull.total, pull.data_size, pull.mode.is_some()),
        (5, 14, true)
    );
    let delta = c.connection().read_body_to_vec(100).await.unwrap();
    assert_eq!(delta, b"\x02\x05\x00\x00\x00\x00\x00\x00\x00hello");
    let patch = format!(
        r#"{{"cmd":"sync_patch","path":"d.txt","base":"c.txt","total":5,"blake3":"{}","mode":420,"mtime":1700000000,"mtime_nsec":0,"data_size":17}}"#,
        blake3::hash(b"hello").to_hex()
    );
    let copy_all = b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00";
    let patched = c
        .request_with_body(&header(&patch), Bytes::from_static(copy_all))
        .await
        .unwrap();
    let stored = patched.decode::<PutReply>().unwrap().stored;
    assert_eq!((stored.path.as_str(), stored.size), ("d.txt", 5));
    assert_eq!(std::fs::read(dir.path().join("d.txt")).unwrap(), b"hello");

    let mkdir = c
        .request(&header(r#"{"cmd":"mkdir","path":"a/b","parents":true}"#))
        .await
        .unwrap();
    assert_eq!(mkdir.decode::<PathReply>().unwrap().path, "a/b");
    let rm = c
        .request(&header(r#"{"cmd":"rm","path":"a","recursive":true}"#))
        .await
        .unwrap();
    assert_eq!(rm.decode::<PathReply>().unwrap().path, "a");
    c.ping().await.unwrap();
}

#[tokio::test]
async fn wrong_shapes_are_bad_requests_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut c) = serve(dir.path()).await;
    for (json, key) in [
        (r#"{"cmd":"ls","offset":"x"}"#, "`offset`"),
        (r#"{"cmd":"stat"}"#, "`path`"),
        (r#"{"cmd":"get","path":["a"]}"#, "`path`"),
        (r#"{"cmd":"mkdir","path":"d","parents":"yes"}"#, "`parents`"),
        (r#"{"cmd":"rm","path":"d","recursive":1}"#, "`recursive`"),
        (r#"{"cmd":"sync_sig","path":7}"#, "`path`"),
        (
            r#"{"cmd":"sync_pull","path":"x","data_size":0,"chunk_avg":12345}"#,
            "chunk_avg 12345",
        ),
        (
            r#"{"cmd":"sync_pull","path":"x","data_size":0,"chunk_avg":4096}"#,
            "chunk_avg 4096",
        ),
        (
            r#"{"cmd":"sync_patch","path":"x","total":"big","blake3":"00"}"#,
            "`total`",
        ),
    ] {
        let message = bad_request(c.request(&header(json)).await);
        assert!(message.contains(key), "{json}: {message}");
    }
    // A malformed trailer upload: refused at once, its body and `commit` consumed.
    let message = bad_request(
        c.request_with_body(
            &header(r#"{"cmd":"put","path":"x","size":3,"offset":"bad","trailer":true}"#),
            Bytes::from_static(b"abc"),
        )
        .await,
    );
    assert!(message.contains("`offset`"), "{message}");
    let commit = format!(r#"{{"cmd":"commit","blake3":"{}"}}"#, "00".repeat(32));
    c.connection().send(&header(&commit)).await.unwrap();
    // The stream is still in step.
    c.ping().await.unwrap();
    assert!(!dir.path().join("x").exists());
}
