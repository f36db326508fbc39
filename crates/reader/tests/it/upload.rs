//! Uploads through `POST /api/books` (signed in, size-limited, content-sniffed, named
//! safely, duplicates refused) join the library and its full-text search; only
//! administrators delete, and a deletion takes the file, the catalog row, the shelf
//! entries and the search sections.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::Server;
use serde_json::Value;
use sockit_reader::demo;

/// A generous hang guard for the background indexer (not a timing bound).
const HANG: Duration = Duration::from_secs(300);
/// The upload limit of these tests.
const LIMIT: usize = 256 << 10;

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A library holding one TXT book, with an upload limit of [`LIMIT`].
fn library() -> Server {
    Server::start_with(&[("shore.txt", b"Waves on the shore.\n".to_vec())], |c| {
        c.max_upload_bytes = LIMIT as u64
    })
}

/// Creates the accounts `alice` (ordinary) and `root` (administrator); returns their
/// Basic credentials.
fn accounts(s: &Server) -> (String, String) {
    let a = s.lib.accounts();
    assert!(a.create("alice", "alice password").unwrap());
    assert!(a.create("root", "root password").unwrap());
    assert!(a.set_admin("root", true).unwrap());
    (
        basic("alice", "alice password"),
        basic("root", "root password"),
    )
}

fn upload(s: &Server, auth: &str, name: &str, body: &[u8]) -> (u16, Value) {
    let path = format!(
        "/api/books?name={}",
        name.bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    let headers: Vec<(&str, &str)> = if auth.is_empty() {
        vec![]
    } else {
        vec![("Authorization", auth)]
    };
    let r = s.req("POST", &path, &headers, body);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn get(s: &Server, auth: &str, path: &str) -> (u16, Value) {
    let r = s.req("GET", path, &[("Authorization", auth)], b"");
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn search(s: &Server, auth: &str, q: &str) -> Vec<Value> {
    assert!(s.lib.wait_indexed(HANG), "indexer hung");
    let (status, v) = get(s, auth, &format!("/api/search?q={q}"));
    assert_eq!(status, 200, "{v}");
    v["hits"].as_array().unwrap().clone()
}

/// The files of the books root and of the upload staging directory.
fn files(s: &Server) -> (Vec<String>, usize) {
    let mut books: Vec<String> = std::fs::read_dir(&s.books)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    books.sort();
    let staged = std::fs::read_dir(s.lib.upload_dir()).unwrap().count();
    (books, staged)
}

fn atlas_pdf() -> Vec<u8> {
    demo::make_pdf_pages(
        "Atlas of Winds",
        "A. Cartographer",
        &[
            &["calm seas"],
            &["trade winds"],
            &["the zeppelin drifts north"],
        ],
    )
}

/// `POST` with a chunked body of `len` bytes (no `Content-Length`), over a raw socket;
/// the status code of the answer.
fn chunked_upload(s: &Server, auth: &str, len: usize) -> u16 {
    let mut c = std::net::TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "POST /api/books?name=big.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let text = "a line of a long text\n".repeat(len / 22 + 1);
    let body = &text.as_bytes()[..len];
    for chunk in body.chunks(16 << 10) {
        req.extend(format!("{:x}\r\n", chunk.len()).bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    c.write_all(&req).unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"))
}

#[test]
fn uploads_join_the_library_and_search_and_duplicates_are_refused() {
    let s = library();
    // An open library (no account yet) still wants a signed-in uploader.
    let (status, v) = upload(&s, "", "Atlas.pdf", &atlas_pdf());
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    let (alice, _) = accounts(&s);
    let (status, _) = upload(&s, "", "Atlas.pdf", &atlas_pdf());
    assert_eq!(status, 401, "no credentials once accounts exist");
    let (status, _) = upload(&s, &basic("alice", "wrong"), "Atlas.pdf", &atlas_pdf());
    assert_eq!(status, 401, "wrong credentials");

    // A PDF: cataloged with its metadata, listed, downloadable, searchable.
    let (status, book) = upload(&s, &alice, "Atlas.pdf", &atlas_pdf());
    assert_eq!(status, 201, "{book}");
    assert_eq!(
        (
            book["title"].as_str(),
            book["format"].as_str(),
            book["pages"].as_u64()
        ),
        (Some("Atlas of Winds"), Some("pdf"), Some(3))
    );
    assert_eq!(book["path"], "Atlas.pdf");
    let id = book["id"].as_i64().unwrap();
    let (_, list) = get(&s, &alice, "/api/books");
    let ids: Vec<i64> = list["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&id), "{list}");
    let r = s.req(
        "GET",
        &format!("/api/books/{id}/file"),
        &[("Authorization", &alice)],
        b"",
    );
    assert_eq!(r.body, atlas_pdf());
    let hits = search(&s, &alice, "zeppelin");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (hits[0]["book"].as_i64(), hits[0]["location"].as_u64()),
        (Some(id), Some(3))
    );

    // The same bytes again, under another name: 409 naming the book; nothing added.
    let (status, v) = upload(&s, &alice, "copy of atlas.pdf", &atlas_pdf());
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("duplicate")),
        "{v}"
    );
    assert_eq!(v["book"].as_i64(), Some(id));
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("Atlas of Winds") && msg.contains("Atlas.pdf"),
        "{msg}"
    );

    // Too large: declared by Content-Length, or streamed in chunks.
    let big = "a line of a long text\n".repeat(LIMIT / 22 + 1);
    let (status, v) = upload(&s, &alice, "big.txt", &big.as_bytes()[..LIMIT + 1]);
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("too_large")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("256 KiB"), "{v}");
    assert_eq!(chunked_upload(&s, &alice, LIMIT + 1), 413);
    // Exactly the limit is fine.
    let (status, v) = upload(&s, &alice, "long.txt", &big.as_bytes()[..LIMIT]);
    assert_eq!(status, 201, "{v}");

    // The content decides: an image, a text named .pdf, a zip that is no EPUB.
    let png = {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    for (name, body) in [
        ("cover.txt", png.clone()),
        ("cover.png", png),
        ("report.pdf", b"just some words\n".to_vec()),
        ("archive.zip", b"PK\x03\x04not an epub at all".to_vec()),
    ] {
        let (status, v) = upload(&s, &alice, name, &body);
        assert_eq!(
            (status, v["code"].as_str()),
            (415, Some("unsupported")),
            "{name}: {v}"
        );
    }
    // Readable or refused with the catalog's reason.
    let (status, v) = upload(&s, &alice, "empty.txt", b"");
    assert_eq!((status, v["code"].as_str()), (422, Some("empty")), "{v}");
    let (status, v) = upload(&s, &alice, "broken.pdf", b"%PDF-1.4 and then nothing");
    assert_eq!((status, v["code"].as_str()), (422, Some("bad_pdf")), "{v}");

    // Names are made safe; a name in use gets a number; an EPUB by its content.
    let (status, v) = upload(
        &s,
        &alice,
        "../../etc/ev?l:name.epub",
        &crate::epub::epub3(),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["path"].as_str(), v["title"].as_str()),
        (Some("ev_l_name.epub"), Some("The Lighthouse Keeper"))
    );
    let (status, v) = upload(&s, &alice, "shore.txt", "另一本书。\n".as_bytes());
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["path"], "shore (2).txt");
    assert_eq!(v["encoding"], "UTF-8");
    let (status, v) = upload(&s, &alice, "notes", b"plain notes\n");
    assert_eq!((status, v["path"].as_str()), (201, Some("notes.txt")));

    let (books, staged) = files(&s);
    assert_eq!(
        books,
        [
            "Atlas.pdf",
            "ev_l_name.epub",
            "long.txt",
            "notes.txt",
            "shore (2).txt",
            "shore.txt"
        ]
    );
    assert_eq!(staged, 0, "no staging file is left behind");
}

#[test]
fn only_administrators_delete_and_a_deletion_takes_everything() {
    let s = library();
    let (alice, root) = accounts(&s);
    let (_, book) = upload(&s, &alice, "Atlas.pdf", &atlas_pdf());
    let id = book["id"].as_i64().unwrap();
    assert_eq!(search(&s, &alice, "zeppelin").len(), 1);
    // On a shelf of alice's, with a tag.
    let r = s.req(
        "POST",
        "/api/shelves",
        &[
            ("Authorization", &alice),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"Maps"}"#,
    );
    assert_eq!(r.status, 201);
    let shelf: Value = serde_json::from_slice(&r.body).unwrap();
    let shelf = shelf["id"].as_i64().unwrap();
    let on = s.req(
        "PUT",
        &format!("/api/shelves/{shelf}/books/{id}"),
        &[("Authorization", &alice)],
        b"",
    );
    assert_eq!(on.status, 200);
    let tag = s.req(
        "PATCH",
        &format!("/api/books/{id}"),
        &[
            ("Authorization", &alice),
            ("Content-Type", "application/json"),
        ],
        br#"{"tags":["maps"]}"#,
    );
    assert_eq!(tag.status, 200);

    // Who may: the web UI asks /api/me.
    assert_eq!(get(&s, &alice, "/api/me").1["admin"], false);
    assert_eq!(get(&s, &root, "/api/me").1["admin"], true);
    assert_eq!(get(&s, &root, "/api/me").1["upload_limit"], LIMIT);

    let path = format!("/api/books/{id}");
    let r = s.req("DELETE", &path, &[], b"");
    assert_eq!(r.status, 401, "without credentials");
    let r = s.req("DELETE", &path, &[("Authorization", &alice)], b"");
    assert_eq!(r.status, 403, "not an administrator");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], "forbidden");
    assert!(s.books.join("Atlas.pdf").exists(), "still there");

    let r = s.req("DELETE", &path, &[("Authorization", &root)], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(!s.books.join("Atlas.pdf").exists(), "the file is gone");
    assert_eq!(get(&s, &alice, &path).0, 404, "the catalog row is gone");
    assert!(
        search(&s, &alice, "zeppelin").is_empty(),
        "the search sections are gone"
    );
    let (_, v) = get(&s, &alice, "/api/search?q=zeppelin");
    assert_eq!(v["total"], 0);
    let (_, shelves) = get(&s, &alice, "/api/shelves");
    assert_eq!(shelves["shelves"][0]["books"], 0, "off the shelf");
    let (_, tagged) = get(&s, &alice, "/api/books?tag=maps");
    assert_eq!(tagged["total"], 0);
    assert_eq!(
        s.req("DELETE", &path, &[("Authorization", &root)], b"")
            .status,
        404
    );

    // It stays gone after a rescan and a restart, and can be uploaded again.
    s.lib.rescan().unwrap();
    let s = s.restart();
    assert!(search(&s, &alice, "zeppelin").is_empty());
    let (status, again) = upload(&s, &alice, "Atlas.pdf", &atlas_pdf());
    assert_eq!(status, 201, "{again}");
    assert_eq!(search(&s, &alice, "zeppelin").len(), 1);
}
