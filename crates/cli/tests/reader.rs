//! `sockit serve` runs the reader (tcp + http in the addr file, demo library on an empty
//! books root) and `sockit read` pages through a book with a bookmark.

mod common;

use std::time::Duration;

use common::{run, sockit, stdout, Serve};

#[test]
fn serve_reader_addr_file_and_terminal_client() {
    let s = Serve::start(&["--only", "reader"]);
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
