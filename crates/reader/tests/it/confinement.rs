//! The file that is served is the file that was checked: a cataloged book replaced by a
//! symlink out of the books root is refused on every route that reads it, and a book
//! reached through a symlink that stays inside is served.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use sockit_reader::demo;

#[test]
fn a_book_swapped_for_a_symlink_out_is_refused() {
    let s = Server::start(&[
        ("swapped.txt", demo::sample_english(5).into_bytes()),
        ("kept.txt", demo::sample_english(5).into_bytes()),
    ]);
    let id = s.id("swapped.txt");
    let outside = s.dir.path().join("secret.txt");
    std::fs::write(&outside, b"TOP SECRET").unwrap();
    let book = s.books.join("swapped.txt");
    std::fs::remove_file(&book).unwrap();
    std::os::unix::fs::symlink(&outside, &book).unwrap();

    for path in [
        format!("/api/books/{id}/file"),
        "/books/swapped.txt".to_owned(),
    ] {
        let r = s.get(&path);
        assert_eq!(r.status, 403, "{path}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("TOP SECRET"), "{path}: {body}");
        assert!(
            !body.contains(&*s.dir.path().to_string_lossy()),
            "{path}: {body}"
        );
    }
    let r = s.get(&format!("/api/books/{id}/text/1"));
    assert_eq!(r.status, 403);
    assert!(!String::from_utf8_lossy(&r.body).contains("TOP SECRET"));

    let mut c = TcpStream::connect(s.classic).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"0 swapped.txt").unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.contains("outside the library"), "{answer}");
    assert!(!answer.contains("TOP SECRET"));

    // The other book is still served.
    assert_eq!(s.get("/books/kept.txt").status, 200);
}

#[test]
fn a_symlink_that_stays_inside_is_followed() {
    let s = Server::start(&[("real.txt", demo::sample_english(5).into_bytes())]);
    std::os::unix::fs::symlink("real.txt", s.books.join("alias.txt")).unwrap();
    let r = s.get("/books/alias.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, s.get("/books/real.txt").body);
}
