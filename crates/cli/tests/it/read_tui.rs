//! `sockit read` as a full-screen reader, driven in tmux at 80×24 against a real
//! `sockit serve` whose books folder holds a generated TXT of CJK lines and an EPUB: the
//! library list and its search, pages that fit the terminal exactly (CJK characters two
//! cells wide), page down, go to page, a bookmark, the position saved on the server and
//! found again; and a position written by a KOReader-shaped kosync request opening its
//! EPUB chapter, the reader's own turn going back to kosync.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::tmux::Tmux;
use crate::common::SOCKIT;
use sockit_testkit::{peer, serve::Serve};

/// How long a session may take to end after `q` (a hang guard).
const EXIT_WAIT: Duration = Duration::from_secs(20);

/// Line `i` of the TXT book: a label and 40 CJK characters, 88 cells in all, so two rows
/// of a 78-cell text area (80 columns less the margins).
fn txt_line(i: usize) -> String {
    format!("第{i:03}行 {}", "山".repeat(40))
}

/// A zip of stored entries (what an EPUB needs; the `mimetype` entry first).
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let (crc, len, name_len) = (crc32(data), data.len() as u32, name.len() as u16);
        // version 20, no flags, stored, 1980-01-01 00:00
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0x21u16.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&name_len.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        // comment length, disk, internal and external attributes
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_len, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn chapter(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><html xmlns=\"http://www.w3.org/1999/xhtml\">\
         <head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
    )
    .into_bytes()
}

/// An EPUB 3 of three chapters; only chapter 2 holds the word `zephyrlantern`.
fn epub() -> Vec<u8> {
    let shore: String = (1..=40)
        .map(|i| format!("<p>Paragraph {i} of the shore, where the keeper walks.</p>"))
        .collect();
    let c1 = chapter("The Shore", &shore);
    let c2 = chapter(
        "The Lamp",
        "<p>The zephyrlantern burns all night.</p><ul><li>oil</li><li>wick</li></ul>",
    );
    let c3 = chapter("The Storm", "<p>Wind. 风暴来了。</p>");
    zip(&[
        ("mimetype", b"application/epub+zip"),
        (
            "META-INF/container.xml",
            b"<?xml version=\"1.0\"?><container version=\"1.0\" \
              xmlns=\"urn:oasis:names:tc:opendocument:xmlns:container\"><rootfiles>\
              <rootfile full-path=\"OEBPS/content.opf\" \
              media-type=\"application/oebps-package+xml\"/></rootfiles></container>",
        ),
        (
            "OEBPS/content.opf",
            b"<?xml version=\"1.0\"?><package xmlns=\"http://www.idpf.org/2007/opf\" \
              version=\"3.0\" unique-identifier=\"id\"><metadata \
              xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:identifier id=\"id\">lk</dc:identifier>\
              <dc:title>The Lighthouse Keeper</dc:title><dc:creator>A. Keeper</dc:creator>\
              <dc:language>en</dc:language></metadata><manifest>\
              <item id=\"nav\" href=\"nav.xhtml\" media-type=\"application/xhtml+xml\" properties=\"nav\"/>\
              <item id=\"c1\" href=\"c1.xhtml\" media-type=\"application/xhtml+xml\"/>\
              <item id=\"c2\" href=\"c2.xhtml\" media-type=\"application/xhtml+xml\"/>\
              <item id=\"c3\" href=\"c3.xhtml\" media-type=\"application/xhtml+xml\"/>\
              </manifest><spine><itemref idref=\"c1\"/><itemref idref=\"c2\"/>\
              <itemref idref=\"c3\"/></spine></package>",
        ),
        (
            "OEBPS/nav.xhtml",
            b"<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\" \
              xmlns:epub=\"http://www.idpf.org/2007/ops\"><body><nav epub:type=\"toc\"><ol>\
              <li><a href=\"c1.xhtml\">The Shore</a></li><li><a href=\"c2.xhtml\">The Lamp</a></li>\
              <li><a href=\"c3.xhtml\">The Storm</a></li></ol></nav></body></html>",
        ),
        ("OEBPS/c1.xhtml", &c1),
        ("OEBPS/c2.xhtml", &c2),
        ("OEBPS/c3.xhtml", &c3),
    ])
}

/// A reader serving a books folder with `山中日记.txt` (200 lines) and
/// `lighthouse.epub`.
fn library() -> (Serve, tempfile::TempDir) {
    let books = tempfile::tempdir().unwrap();
    let text: String = (1..=200).map(|i| txt_line(i) + "\n").collect();
    std::fs::write(books.path().join("山中日记.txt"), text).unwrap();
    std::fs::write(books.path().join("lighthouse.epub"), epub()).unwrap();
    let dir = books.path().to_str().unwrap().to_owned();
    let s = Serve::start(SOCKIT, &["--only", "reader", "--books", &dir]);
    (s, books)
}

/// One HTTP request to the reader: the status and the body as JSON (`null` if none).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    c.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let r = sockit_reader::client::parse_response(&raw, false).unwrap();
    let json = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, json)
}

/// `sockit read` in a tmux session resized to 80×24 before the reader starts.
fn reader(name: &str, http_addr: &str, data: &Path, extra: &str) -> Tmux {
    let tmux = peer::require("tmux", "tmux");
    let t = Tmux::start(
        name,
        &format!(
            "{} resize-window -x 80 -y 24 && exec {SOCKIT} --server {http_addr} read --data '{}' {extra}",
            tmux.display(),
            data.display()
        ),
    );
    // The list, drawn for 80×24: its footer on row 24.
    t.wait_until("the library list at 80×24", |s| {
        s.lines().nth(23).is_some_and(|l| l.contains("q quit")) && s.contains("2 books")
    });
    t
}

/// Opens the book whose title is `title` through the search field.
fn open(t: &Tmux, title: &str, shows: &str) -> String {
    t.type_text("/");
    t.keys(title);
    t.wait_for(&format!("“{title}”: 1 book"));
    t.press("Enter");
    t.wait_for(shows)
}

/// `q` until the reader exits, and the session with it.
fn quit(t: &Tmux) {
    t.type_text("q");
    t.wait_for("q quit");
    t.type_text("q");
    let deadline = Instant::now() + EXIT_WAIT;
    while t.alive() {
        assert!(
            Instant::now() < deadline,
            "the reader did not exit after q:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of `screen` that start with a TXT label `第NNN行`.
fn labels(screen: &str) -> Vec<usize> {
    screen
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('第')?.get(..3)?.parse().ok())
        .collect()
}

#[test]
fn read_in_tmux_pages_a_cjk_book_to_fit_and_returns_to_the_saved_page() {
    let (s, _books) = library();
    let addr = s.addr("reader", "http");
    let data = s.path("data");
    let t = reader("read-txt", &addr, &data, "");
    let screen = t.screen();
    assert!(
        screen.contains("The Lighthouse Keeper — A. Keeper"),
        "{screen}"
    );
    assert!(screen.contains("山中日记"), "{screen}");

    // Page 1: 23 rows of text (24 less the status line), each line two rows, so 11 lines
    // and the first row of line 12.
    let screen = open(&t, "山中日记", "page 1/18");
    assert_eq!(labels(&screen), (1..=12).collect::<Vec<_>>(), "{screen}");
    let rows: Vec<&str> = screen.lines().collect();
    // A line breaks after 78 cells: the 8-cell label and 35 characters, then 5.
    assert_eq!(rows[0], format!(" 第001行 {}", "山".repeat(35)), "{screen}");
    assert_eq!(rows[1], format!(" {}", "山".repeat(5)), "{screen}");
    assert!(
        rows[23].starts_with(" 山中日记 · page 1/18 · 0%"),
        "{screen}"
    );

    // Page 2 starts with line 12's second row and ends with line 23's.
    t.press("NPage");
    let screen = t.wait_for("page 2/18");
    assert_eq!(labels(&screen), (13..=23).collect::<Vec<_>>(), "{screen}");
    assert_eq!(
        screen.lines().next(),
        Some(format!(" {}", "山".repeat(5)).as_str())
    );

    // Go to page 7: lines 70 (its first row is row 138 = 6 × 23) to 81.
    t.type_text("g");
    t.wait_for("Go to page (1–18):");
    t.keys("7");
    let screen = t.wait_for("page 7/18");
    assert_eq!(labels(&screen), (70..=81).collect::<Vec<_>>(), "{screen}");
    t.type_text("b");
    t.wait_for("page 7 bookmarked");
    quit(&t);

    // The server has the position in its own units: TXT pages of 1500 characters hold
    // 31 lines of 47, so line 70 is 7 lines into page 3 (lines 63 to 93) of 7.
    let (status, list) = http(&addr, "GET", "/api/books?q=%E5%B1%B1", &[], "");
    assert_eq!(status, 200, "{list}");
    let id = list["books"][0]["id"].as_i64().unwrap();
    let (status, p) = http(&addr, "GET", &format!("/api/books/{id}/progress"), &[], "");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["page"], 3, "{p}");
    assert_eq!(p["device"], "sockit-read", "{p}");
    let pct = p["percentage"].as_f64().unwrap();
    assert!((pct - (2.0 + 7.0 / 31.0) / 7.0).abs() < 1e-9, "{p}");
    assert!(data.join("bookmarks.json").is_file());

    // Reopened: page 7 again, and its bookmark.
    let t = reader("read-txt-again", &addr, &data, "");
    let screen = open(&t, "山中日记", "page 7/18");
    assert!(
        screen.contains("resumed where sockit-read left off (31%)"),
        "{screen}"
    );
    assert_eq!(labels(&screen), (70..=81).collect::<Vec<_>>(), "{screen}");
    // Resized to 120×30 a line is one row and a page 29 of them: line 70 is on page 3
    // (lines 59 to 87) of 7; back at 80×24, page 7 again.
    let resize = |w: &str, h: &str| {
        let ok = t
            .cmd(&["resize-window", "-t", "t", "-x", w, "-y", h])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux resize-window {w}x{h}");
    };
    resize("120", "30");
    let screen = t.wait_for("page 3/7");
    assert_eq!(labels(&screen), (59..=87).collect::<Vec<_>>(), "{screen}");
    resize("80", "24");
    let screen = t.wait_for("page 7/18");
    assert_eq!(labels(&screen), (70..=81).collect::<Vec<_>>(), "{screen}");
    t.type_text("B");
    t.wait_for("p. 7  第070行");
    t.press("Escape");
    t.wait_for("page 7/18 · 31%");
    quit(&t);
}

#[test]
fn read_in_tmux_opens_the_epub_chapter_a_kosync_client_saved_and_syncs_back() {
    let (s, _books) = library();
    let addr = s.addr("reader", "http");
    let key = sockit_reader::md5_hex(b"pw");
    let json = ("content-type", "application/json");
    // A KOReader account, then its position: an XPointer into chapter 2 of 3.
    let (status, body) = http(
        &addr,
        "POST",
        "/users/create",
        &[json],
        &format!(r#"{{"username":"ko","password":"{key}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let auth = [json, ("x-auth-user", "ko"), ("x-auth-key", key.as_str())];
    let (_, list) = http(&addr, "GET", "/api/books?q=Lighthouse", &auth, "");
    let doc = list["books"][0]["partial_md5"].as_str().unwrap().to_owned();
    let (status, body) = http(
        &addr,
        "PUT",
        "/syncs/progress",
        &auth,
        &format!(
            r#"{{"document":"{doc}","progress":"/body/DocFragment[2]/body/p[1]/text().0","percentage":0.4,"device":"kobo","device_id":"K1"}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");

    // The full-text index catches up in the background: wait for it on the API.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, found) = http(&addr, "GET", "/api/search?q=zephyrlantern", &auth, "");
        assert_eq!(status, 200, "{found}");
        if found["total"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never indexed: {found}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let t = reader(
        "read-epub",
        &addr,
        &s.path("data"),
        "--user ko --password pw",
    );
    // Full-text search finds the word only chapter 2 holds.
    t.type_text("/");
    t.keys("zephyrlantern");
    let screen = t.wait_for("text matches for “zephyrlantern”: 1");
    assert!(
        screen.contains("chapter 2 · The Lighthouse Keeper: The Lamp The zephyrlantern"),
        "{screen}"
    );
    t.press("Escape");
    t.wait_for("2 books");

    let screen = open(&t, "Lighthouse", "ch. 2/3");
    assert!(
        screen.contains("The zephyrlantern burns all night."),
        "{screen}"
    );
    assert!(screen.contains("• oil"), "{screen}");
    assert!(screen.contains(" · 40% "), "{screen}");
    assert!(
        screen.contains("resumed where kobo left off (40%)"),
        "{screen}"
    );

    // A page turn here is what kosync answers next.
    t.press("NPage");
    let screen = t.wait_for("ch. 3/3");
    assert!(screen.contains("风暴来了。"), "{screen}");
    assert!(
        screen.contains(" The Lighthouse Keeper — The Storm · ch. 3/3 "),
        "{screen}"
    );
    quit(&t);
    let (status, p) = http(&addr, "GET", &format!("/syncs/progress/{doc}"), &auth, "");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["progress"], "3", "{p}");
    assert_eq!(p["device"], "sockit-read", "{p}");
    assert_eq!(p["percentage"], 1.0, "{p}");
}
