//! A traversal corpus: every path that tries to leave the data root is `denied` for every
//! command (the delta sync commands too, as target and as base), and nothing outside the
//! root is read, created or changed.

use crate::common;

use common::{snapshot, Server};
use sockit_files::messages::StatReply;
use sockit_files::FilesConfig;
use sockit_wire::codec::encode_header;
use sockit_wire::{Client, ErrorCode, Header};
use std::time::Duration;

/// A delta that writes the 4 bytes `evil` (one literal: tag 2, length 4 LE, the bytes).
const EVIL_DELTA: &[u8] = b"\x02\x04\x00\x00\x00\x00\x00\x00\x00evil";

fn corpus(outside: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "..",
        "../",
        "../outside/secret",
        "../../etc/passwd",
        "a/../../outside/secret",
        "./../outside/secret",
        "sub/../../outside",
        "..\\outside\\secret",
        "..\\..\\windows\\win.ini",
        "sub\\..\\..\\outside",
        "/etc/passwd",
        "//etc/passwd",
        "/",
        "C:\\Windows\\win.ini",
        "C:/outside/secret",
        "c:secret",
        "%2e%2e/outside/secret",
        "%2e%2e%2foutside%2fsecret",
        "..%2foutside%2fsecret",
        "%2E%2E/%2E%2E/etc/passwd",
        "..%5coutside",
        "%252e%252e/outside",
        "sub/%00/x",
        "\u{2025}/outside/secret",
        "\u{FF0E}\u{FF0E}/outside/secret",
        "..\u{2215}outside\u{2215}secret",
        "\u{FF0F}etc\u{FF0F}passwd",
        ".\u{2024}/outside",
        "\u{FE52}\u{FE52}/outside",
        "..\u{FF3C}outside",
        "secret\u{0}.txt",
        "../outside/secret\u{0}",
        "a\nb",
        "\u{202E}txt.exe",
        "link/secret",
        "link",
        "abslink/secret",
        "abslink",
        "filelink",
        ".sockit-staging/x",
        ".sockit-staging",
        ".sockit/tls/key.pem",
        "./.sockit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("{outside}/secret"));
    v.push("x".repeat(300));
    v.push("a/".repeat(2100));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_corpus_is_denied_and_outside_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink("../outside", root.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("abslink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("filelink")).unwrap();
    let before_outside = snapshot(&outside);
    let before_root = snapshot(&root);
    let server = Server::start(&root, FilesConfig::default()).await;
    let cases = corpus(&outside.to_string_lossy());
    assert!(cases.len() >= 30);

    let mut c = Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    let mut failures = Vec::new();
    for path in &cases {
        let bare_link = ["link", "abslink", "filelink"].contains(&path.as_str());
        let mut requests = vec![
            ("get", Header::request("get").with("path", path.as_str())),
            ("stat", Header::request("stat").with("path", path.as_str())),
            ("ls", Header::request("ls").with("path", path.as_str())),
            (
                "mkdir",
                Header::request("mkdir").with("path", format!("{path}/new")),
            ),
            (
                "put",
                Header::request("put")
                    .with("path", path.as_str())
                    .with("size", 4)
                    .with("overwrite", true),
            ),
        ];
        // The delta sync commands: a chunk list of the path, a delta from it, a delta
        // written to it, and one built from it as a base.
        let evil_hash = blake3::hash(b"evil").to_hex().to_string();
        requests.push((
            "sync_sig",
            Header::request("sync_sig").with("path", path.as_str()),
        ));
        requests.push((
            "sync_pull",
            Header::request("sync_pull")
                .with("path", path.as_str())
                .with("data_size", 0),
        ));
        for (target, base) in [(path.as_str(), None), ("from-base", Some(path.as_str()))] {
            let mut h = Header::request("sync_patch")
                .with("path", target)
                .with("total", 4)
                .with("blake3", evil_hash.as_str())
                .with("data_size", EVIL_DELTA.len());
            if let Some(b) = base {
                h = h.with("base", b);
            }
            requests.push(("sync_patch", h));
        }
        // A symlink made at (or under) the path, and one whose target is the path.
        requests.push((
            "symlink",
            Header::request("symlink")
                .with("path", format!("{path}/new"))
                .with("target", "x"),
        ));
        if !path.is_empty() && !bare_link {
            requests.push((
                "symlink",
                Header::request("symlink")
                    .with("path", "new-link")
                    .with("target", path.as_str()),
            ));
        }
        if !bare_link {
            // `setattr link` sets the time of the link itself, which lives inside the root.
            requests.push((
                "setattr",
                Header::request("setattr")
                    .with("path", path.as_str())
                    .with("mode", 0o777)
                    .with("mtime", 0),
            ));
            // `rm link` removes the link itself, which lives inside the root.
            requests.push((
                "rm",
                Header::request("rm")
                    .with("path", path.as_str())
                    .with("recursive", true),
            ));
        }
        for (name, req) in requests {
            let r = if name == "put" {
                c.request_with_body(&req, bytes::Bytes::from_static(b"evil"))
                    .await
            } else if name == "sync_patch" {
                c.request_with_body(&req, bytes::Bytes::from_static(EVIL_DELTA))
                    .await
            } else {
                c.request(&req).await
            };
            match r {
                Err(sockit_wire::ClientError::Remote {
                    code: ErrorCode::Denied,
                    ..
                }) => {}
                // `stat` describes a link itself (never what it points to): its target as
                // text when relative, and no server path for an absolute one.
                Ok(h) if name == "stat" && bare_link => {
                    let st = h.decode::<StatReply>().unwrap().stat;
                    let want = (path == "link").then(|| "../outside".to_owned());
                    if st.kind != "symlink" || st.target != want {
                        failures.push(format!("{name} {path:?}: {st:?}"));
                    }
                }
                other => failures.push(format!("{name} {path:?}: {other:?}")),
            }
        }
    }
    // The same corpus through the course-style header (`filename`, no hello read).
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    for path in &cases {
        let h = Header::request("put")
            .with("filename", path.as_str())
            .with("filesize", 4);
        let mut frame = encode_header(&h).unwrap().to_vec();
        frame.extend_from_slice(b"evil");
        tokio::io::AsyncWriteExt::write_all(&mut raw, &frame)
            .await
            .unwrap();
    }
    // A key-less plain port sends no unsolicited hello: one reply per put.
    let mut conn = sockit_wire::Connection::new(raw);
    for path in &cases {
        match conn.read_header().await.unwrap() {
            Some(sockit_wire::Incoming::Header(h)) => {
                if h.as_error().map(|e| e.0) != Some(ErrorCode::Denied) {
                    failures.push(format!("raw put {path:?}: {h:?}"));
                }
            }
            other => failures.push(format!("raw put {path:?}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "not denied:\n{}", failures.join("\n"));
    // Confirm the server is still answering (and has handled the raw puts) before looking.
    c.request(&Header::request("ping")).await.unwrap();
    assert_eq!(
        snapshot(&outside),
        before_outside,
        "something outside the root changed"
    );
    let after_root: Vec<_> = snapshot(&root)
        .into_iter()
        .filter(|(p, _, _)| !p.starts_with(".sockit-staging"))
        .collect();
    assert_eq!(after_root, before_root, "the root changed");
}
