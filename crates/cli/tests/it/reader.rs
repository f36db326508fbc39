//! `sockit serve` runs the reader (tcp + http in the addr file, demo library on an empty
//! books root) and `sockit read` pages through a book with a bookmark; uploads with curl
//! under `--reader-upload-mib`, and deletions by the administrators `sockit account`
//! names.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::time::Duration;

#[test]
fn serve_reader_addr_file_and_terminal_client() {
    let s = Serve::start(SOCKIT, &["--only", "reader"]);
    let tcp = s.addr("reader", "tcp");
    let http = s.addr("reader", "http");
    assert_ne!(tcp, http);
    let cache = s.dir.path().join("cache");
    // List, search, open the UTF-8 Chinese book, next page, bookmark, jump, back, quit.
    let out = run(
        sockit()
            .args(["--server", &http, "read", "--cache"])
            .arg(&cache),
        "s 山庙\n"
            .as_bytes()
            .iter()
            .chain(b"open 999\n")
            .copied()
            .collect::<Vec<u8>>()
            .as_slice(),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("山庙故事"), "{text}");
    // Now open it and page.
    let id = text
        .lines()
        .find(|l| l.contains("山庙故事"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let input = format!("{id}\nn\nb\ng 3\nq\nq\n");
    let out = run(
        sockit()
            .args(["--server", &http, "read", "--cache"])
            .arg(&cache),
        input.as_bytes(),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("网络阅读器示例"), "page 1 not shown: {text}");
    assert!(text.contains("bookmark saved at page 2"), "{text}");
    assert!(text.contains("[3/"), "{text}");
    // Pages were cached by book hash.
    let cached = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .count();
    assert!(cached >= 3, "{cached} cached pages");
    // Reopening starts at the bookmark.
    let out = run(
        sockit()
            .args(["--server", &http, "read", "--cache"])
            .arg(&cache),
        format!("{id}\nq\nq\n").as_bytes(),
        Duration::from_secs(30),
    );
    assert!(stdout(&out).contains("[2/"), "{}", stdout(&out));
}

#[test]
fn reader_over_https_with_tls_only() {
    let s = Serve::start(SOCKIT, &["--only", "reader", "--tls-only"]);
    assert!(
        s.addrs["reader"].get("http").is_none(),
        "--tls-only keeps plain HTTP closed: {}",
        s.addrs
    );
    let https = s.addr("reader", "https");
    let limit = Duration::from_secs(30);

    // curl, like a browser that accepted the self-signed certificate.
    let o = run(
        std::process::Command::new(peer::require("curl", "curl")).args([
            "-sS",
            "--insecure",
            &format!("https://{https}/api/books"),
        ]),
        b"",
        limit,
    );
    assert!(o.status.success(), "{o:?}");
    let books: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        books["books"].as_array().is_some_and(|b| !b.is_empty()),
        "{books}"
    );

    // Plain HTTP on the HTTPS port: 400 with a reason, and the port keeps serving.
    let o = run(
        std::process::Command::new(peer::require("curl", "curl")).args([
            "-sS",
            "-i",
            &format!("http://{https}/"),
        ]),
        b"",
        limit,
    );
    let text = stdout(&o);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("This port speaks HTTPS"), "{text}");

    // sockit read with an https:// URL: trust on first use, then the catalog.
    let kh = s.dir.path().join("known_hosts");
    let o = run(
        sockit()
            .args(["--server", &format!("https://{https}"), "--known-hosts"])
            .arg(&kh)
            .args(["read", "--cache"])
            .arg(s.dir.path().join("cache")),
        b"q\n",
        limit,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("山庙故事"), "{}", stdout(&o));
    assert!(stderr(&o).contains("trusting"), "{}", stderr(&o));

    // A wrong pin is refused loudly.
    let wrong = format!("SHA256:{}", "A".repeat(43));
    let o = run(
        sockit().args(["--server", &https, "--tls", "--fingerprint", &wrong, "read"]),
        b"q\n",
        limit,
    );
    assert!(!o.status.success(), "{o:?}");
    assert!(stderr(&o).contains(&wrong), "{}", stderr(&o));
}

/// curl against the reader: `args`, then the URL; the status code and the body.
fn curl(args: &[&str], url: &str) -> (u16, serde_json::Value) {
    let out = run(
        std::process::Command::new(peer::require("curl", "curl"))
            .args(["-sS", "-w", "\n%{http_code}"])
            .args(args)
            .arg(url),
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "curl {args:?} {url}: {out:?}");
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn upload_limit_flag_and_administrators_from_sockit_account() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let account = |args: &[&str], input: &[u8]| {
        let out = run(
            sockit().arg("account").arg("--root").arg(&root).args(args),
            input,
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "sockit account {args:?}: {out:?}");
        stdout(&out)
    };
    assert!(account(&["add", "root", "--admin"], b"root password\n")
        .starts_with("added administrator root"));
    account(&["add", "alice"], b"alice password\n");
    assert_eq!(account(&["list"], b""), "alice\nroot (admin)\n");

    let s = Serve::start_in(
        SOCKIT,
        &root,
        &["--only", "reader", "--reader-upload-mib", "1"],
    );
    let http = s.addr("reader", "http");
    let pdf = dir.path().join("Atlas.pdf");
    std::fs::write(
        &pdf,
        sockit_reader::demo::make_pdf_pages("Atlas of Winds", "A. Cartographer", &[&["calm"]]),
    )
    .unwrap();
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "a line of text\n".repeat(70_000)).unwrap();
    let books = format!("http://{http}/api/books");
    let data = format!("@{}", pdf.display());

    // Without an account: 401. With one: the book is kept and listed.
    let (code, _) = curl(
        &["--data-binary", &data],
        &format!("{books}?name=Atlas.pdf"),
    );
    assert_eq!(code, 401);
    let alice = ["-u", "alice:alice password"];
    let (code, book) = curl(
        &[&alice[..], &["--data-binary", &data]].concat(),
        &format!("{books}?name=Atlas.pdf"),
    );
    assert_eq!(code, 201, "{book}");
    assert_eq!(book["title"], "Atlas of Winds");
    let id = book["id"].as_i64().unwrap();
    assert!(root.join("books/Atlas.pdf").exists());
    let (code, v) = curl(
        &[&alice[..], &["--data-binary", &data]].concat(),
        &format!("{books}?name=again.pdf"),
    );
    assert_eq!((code, v["book"].as_i64()), (409, Some(id)), "{v}");
    // --reader-upload-mib 1: a file of 1 MiB and a bit is refused.
    let (code, v) = curl(
        &[
            &alice[..],
            &["--data-binary", &format!("@{}", big.display())],
        ]
        .concat(),
        &format!("{books}?name=big.txt"),
    );
    assert_eq!((code, v["code"].as_str()), (413, Some("too_large")), "{v}");

    // Deleting: alice may not until `sockit account admin alice`, which the running
    // server sees at once; root may.
    let one = format!("{books}/{id}");
    let (code, _) = curl(&[&alice[..], &["-X", "DELETE"]].concat(), &one);
    assert_eq!(code, 403);
    assert!(account(&["admin", "alice"], b"").contains("alice is an administrator"));
    let (_, me) = curl(&alice, &format!("http://{http}/api/me"));
    assert_eq!(me["admin"], true);
    account(&["admin", "alice", "--revoke"], b"");
    assert_eq!(account(&["list"], b""), "alice\nroot (admin)\n");
    let (code, _) = curl(&[&alice[..], &["-X", "DELETE"]].concat(), &one);
    assert_eq!(code, 403);
    let (code, _) = curl(&["-u", "root:root password", "-X", "DELETE"], &one);
    assert_eq!(code, 200);
    assert!(!root.join("books/Atlas.pdf").exists());
    let (code, _) = curl(&alice, &one);
    assert_eq!(code, 404);
}
