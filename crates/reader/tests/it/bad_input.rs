//! Bad input: malformed and encrypted PDFs, a 0-byte TXT, binary garbage named .txt,
//! traversal in every request form, huge page numbers. Each gets a clear error and the
//! servers keep serving.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use sockit_reader::demo;

fn files() -> Vec<(&'static str, Vec<u8>)> {
    let mut encrypted = demo::make_pdf("Secret", "x", 2, &["x"]);
    encrypted.extend_from_slice(b"\ntrailer\n<< /Encrypt << /Filter /Standard /V 1 /R 2 /O <00> /U <00> /P -4 >> >>\n%%EOF\n");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    vec![
        ("good.txt", demo::sample_english(20).into_bytes()),
        ("good.pdf", demo::make_pdf("Good", "x", 3, &["x"])),
        (
            "malformed.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\nxref\nbroken".to_vec(),
        ),
        (
            "truncated.pdf",
            demo::make_pdf("T", "x", 3, &["x"])[..300].to_vec(),
        ),
        ("encrypted.pdf", encrypted),
        ("empty.txt", Vec::new()),
        ("garbage.txt", garbage),
    ]
}

fn classic(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.classic).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn ask(c: &mut TcpStream, req: &[u8]) -> String {
    c.write_all(req).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = c.read(&mut buf).unwrap();
    assert!(
        n > 0,
        "server closed after {:?}",
        String::from_utf8_lossy(req)
    );
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn code(s: &Server, path: &str) -> (u16, String) {
    let r = s.get(path);
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("{path}: not JSON ({})", r.status));
    (r.status, v["code"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn bad_books_are_listed_with_clear_errors() {
    let s = Server::start(&files());
    let err = |p: &str| s.lib.book_by_path(p).unwrap().error.unwrap_or_default();
    assert!(
        err("malformed.pdf").contains("not a readable PDF"),
        "{}",
        err("malformed.pdf")
    );
    assert!(err("truncated.pdf").contains("not a readable PDF"));
    assert!(err("encrypted.pdf").contains("encrypted PDF"));
    assert!(err("empty.txt").contains("is empty"));
    assert!(err("garbage.txt").contains("not a text file"));
    assert_eq!(s.lib.book_by_path("good.pdf").unwrap().error, None);

    for (name, status, want) in [
        ("malformed.pdf", 422, "bad_pdf"),
        ("truncated.pdf", 422, "bad_pdf"),
        ("encrypted.pdf", 422, "encrypted"),
    ] {
        assert_eq!(
            code(&s, &format!("/api/books/{}/page/1", s.id(name))),
            (status, want.to_owned()),
            "{name}"
        );
        assert_eq!(
            code(&s, &format!("/api/books/{}/pdftext/1", s.id(name))).0,
            status,
            "{name}"
        );
    }
    assert_eq!(
        code(&s, &format!("/api/books/{}/text/1", s.id("empty.txt"))),
        (422, "empty".into())
    );
    assert_eq!(
        code(&s, &format!("/api/books/{}/text/1", s.id("garbage.txt"))),
        (422, "not_text".into())
    );
    assert_eq!(
        code(&s, &format!("/api/books/{}/text/1", s.id("good.pdf"))),
        (415, "unsupported".into())
    );
    // Covers of unreadable books fall back to generated ones.
    for name in ["malformed.pdf", "encrypted.pdf", "empty.txt"] {
        let r = s.get(&format!("/api/books/{}/cover?w=100", s.id(name)));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(image::load_from_memory(&r.body).unwrap().width(), 100);
    }
    // Still serving.
    assert_eq!(
        s.get(&format!("/api/books/{}/page/2?width=200", s.id("good.pdf")))
            .status,
        200
    );
}

#[test]
fn huge_and_bad_numbers() {
    let s = Server::start(&files());
    let pdf = s.id("good.pdf");
    let txt = s.id("good.txt");
    for (path, status) in [
        (format!("/api/books/{pdf}/page/0"), 404),
        (format!("/api/books/{pdf}/page/4"), 404),
        (format!("/api/books/{pdf}/page/18446744073709551615"), 404),
        (
            format!("/api/books/{pdf}/page/99999999999999999999999"),
            400,
        ),
        (format!("/api/books/{pdf}/page/-1"), 400),
        (format!("/api/books/{pdf}/page/1?width=0"), 400),
        (format!("/api/books/{pdf}/page/1?width=999999"), 400),
        (format!("/api/books/{pdf}/page/1?format=gif"), 400),
        (format!("/api/books/{txt}/text/0"), 404),
        (format!("/api/books/{txt}/text/18446744073709551615"), 404),
        (format!("/api/books/{txt}/text/1?chars=0"), 400),
        (format!("/api/books/{txt}/text/1?chars=99999999999"), 400),
        ("/api/books/99999999999999999999".to_owned(), 400),
        ("/api/books/424242".to_owned(), 404),
        (format!("/opds/pse/{pdf}/18446744073709551615"), 404),
        (format!("/opds/pse/{pdf}/1?width=abc"), 400),
        ("/opds/all?page=0".to_owned(), 400),
        ("/opds/all?page=99999".to_owned(), 404),
    ] {
        assert_eq!(code(&s, &path).0, status, "{path}");
    }
    let mut c = classic(&s);
    let r = ask(&mut c, b"2 99999999999999");
    assert!(
        r.starts_with("error: ") && r.contains("no book is open"),
        "{r}"
    );
    assert_eq!(
        ask(&mut c, b"1 good.txt").trim().parse::<u64>().ok(),
        s.lib.book_by_path("good.txt").unwrap().pages
    );
    let r = ask(&mut c, b"2 18446744073709551615");
    assert!(r.starts_with("error: no page 18446744073709551615"), "{r}");
    assert!(ask(&mut c, b"2 99999999999999999999999999").starts_with("error: bad request"));
    assert!(ask(&mut c, b"2 -5").starts_with("error: bad request"));
    assert!(ask(&mut c, b"\xff\xfe\x00garbage").starts_with("error: bad request"));
    assert!(ask(&mut c, b"7 what").starts_with("error: bad request: unknown request"));
    assert!(ask(&mut c, b"1 empty.txt").contains("is empty"));
    assert!(ask(&mut c, b"1 garbage.txt").contains("not a text file"));
    assert!(ask(&mut c, b"1 good.pdf").contains("is a PDF"));
    // The connection still works.
    assert!(ask(&mut c, b"2 1").starts_with("Alice's Adventures"));
    assert_eq!(ask(&mut c, b"3"), "已关闭文件");
}

#[test]
fn traversal_in_every_request_form() {
    let s = Server::start(&files());
    let outside = s.dir.path().join("secret.txt");
    std::fs::write(&outside, b"TOP SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, s.books.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(s.dir.path(), s.books.join("updir")).unwrap();

    // Classic protocol: download and open.
    let mut c = classic(&s);
    for req in [
        "0 ../secret.txt",
        "0 ../../../../etc/passwd",
        "0 /etc/passwd",
        "0 ..\\secret.txt",
        "0 link.txt",
        "0 updir/secret.txt",
        "0 good.txt\0/../../secret.txt",
        "1 ../secret.txt",
        "1 link.txt",
    ] {
        let r = ask(&mut c, req.as_bytes());
        assert!(r.starts_with("error: "), "{req:?}: {r}");
        assert!(!r.contains("TOP SECRET"));
        assert!(
            r.contains("outside the library") || r.contains("no such book"),
            "{req:?}: {r}"
        );
    }
    // HTTP: the by-name route with raw, encoded and double-encoded dots, and symlinks.
    for path in [
        "/books/../secret.txt",
        "/books/%2e%2e/secret.txt",
        "/books/..%2fsecret.txt",
        "/books/..%5csecret.txt",
        "/books/%2fetc%2fpasswd",
        "/books/link.txt",
        "/books/updir/secret.txt",
        "/books/good.txt%00../../secret.txt",
        "/books/%252e%252e/secret.txt",
    ] {
        let r = s.get(path);
        assert!(matches!(r.status, 400 | 403 | 404), "{path}: {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("TOP SECRET"),
            "{path}"
        );
    }
    // kosync and progress take ids and hashes, never paths; ids that are paths are refused.
    assert_eq!(s.get("/api/books/..%2f..%2fsecret.txt").status, 400);
    assert_eq!(s.get("/syncs/progress/..%2f..%2fsecret.txt").status, 401);
    // The symlinked file is not in the catalog either.
    assert!(s.lib.book_by_path("link.txt").is_err());
    // Still serving, both ways.
    assert_eq!(s.get("/books/good.txt").status, 200);
    let r = ask(&mut c, b"1 good.txt");
    assert!(r.trim().parse::<u64>().is_ok(), "{r}");
}
