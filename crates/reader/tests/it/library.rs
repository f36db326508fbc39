//! Library features over a real server: sorted, filtered, paginated listings checked
//! against a model of the catalog (300 generated books of three formats, and 10 000 rows
//! inserted into the catalog), shelves and metadata edits that survive a rescan and a
//! restart, per-user isolation of shelves and "continue reading", and 400s for bad
//! query values.

use crate::common;

use std::collections::HashSet;
use std::io::{Cursor, Write};

use common::Server;
use serde_json::{json, Value};
use sockit_reader::accounts::{self, Progress};
use sockit_reader::browse::{self, Edit};
use sockit_reader::catalog::{self, Book, Format};
use sockit_reader::demo;

const AUTHORS: [&str; 5] = [
    "Ada Lovelace",
    "Mary Shelley",
    "Jules Verne",
    "H. G. Wells",
    "Ursula Le Guin",
];
const SERIES: [&str; 4] = ["Voyages", "Machines", "Islands", "Storms"];

/// A one-chapter EPUB 2 with a title, an author and a calibre series.
fn epub(title: &str, author: &str, series: &str, index: usize) -> Vec<u8> {
    let opf = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
    <dc:identifier id="uid">urn:x:{index}</dc:identifier>
    <dc:title>{title}</dc:title>
    <dc:creator opf:role="aut">{author}</dc:creator>
    <meta name="calibre:series" content="{series}"/>
    <meta name="calibre:series_index" content="{index}"/>
  </metadata>
  <manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest>
  <spine><itemref idref="c1"/></spine>
</package>"#
    );
    let container = r#"<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let chapter = format!(
        "<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>{title}</title></head><body><p>{title}</p></body></html>"
    );
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        ("mimetype", b"application/epub+zip".to_vec()),
        ("META-INF/container.xml", container.as_bytes().to_vec()),
        ("content.opf", opf.into_bytes()),
        ("c1.xhtml", chapter.into_bytes()),
    ] {
        w.start_file(name, stored).unwrap();
        w.write_all(&bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// 300 books: TXT (title from the file name, no author), PDF (title and author) and EPUB
/// (title, author, series), with tags on every seventh book and positions on some.
fn library() -> Server {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..300usize {
        let author = AUTHORS[i % AUTHORS.len()];
        match i % 3 {
            0 => files.push((
                format!("txt/book{i:03}.txt"),
                format!("Book {i}\n").into_bytes(),
            )),
            1 => files.push((
                format!("pdf/p{i:03}.pdf"),
                demo::make_pdf(&format!("Title {i:03}"), author, 1, &["x"]),
            )),
            _ => files.push((
                format!("epub/e{i:03}.epub"),
                epub(
                    &format!("title {i:03}"),
                    author,
                    SERIES[i % SERIES.len()],
                    i / 7,
                ),
            )),
        }
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let s = Server::start(&refs);
    let books = s.lib.books(None).unwrap();
    assert_eq!(books.len(), 300, "every generated book is cataloged");
    s.lib
        .with_db(|c| {
            for b in &books {
                if b.id % 7 == 0 {
                    let tags = if b.id % 2 == 0 {
                        vec!["Classic".to_owned(), "sea".to_owned()]
                    } else {
                        vec!["classic".to_owned()]
                    };
                    let e = Edit {
                        tags: Some(tags),
                        ..Edit::default()
                    };
                    assert!(browse::edit(c, b.id, &e.validated()?)?);
                }
                if b.id % 5 == 0 {
                    let p = Progress {
                        document: b.partial_md5.clone(),
                        progress: "1".into(),
                        percentage: 0.5,
                        device: "test".into(),
                        device_id: None,
                        timestamp: 1_000 + (b.id * 37) % 101,
                    };
                    accounts::put(c, "", &p)?;
                }
            }
            Ok(())
        })
        .unwrap();
    s
}

/// What the model knows of a book.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    title: String,
    author: Option<String>,
    series: Option<String>,
    index: Option<f64>,
    added: i64,
    format: String,
    tags: Vec<String>,
    path: String,
    read: Option<i64>,
}

fn rows(s: &Server, user: &str) -> Vec<Row> {
    s.lib
        .books(None)
        .unwrap()
        .into_iter()
        .map(|b| {
            let read = s
                .lib
                .with_db(|c| accounts::get(c, user, &b.partial_md5))
                .unwrap()
                .map(|p| p.timestamp);
            Row {
                id: b.id,
                title: b.title,
                author: b.author,
                series: b.series,
                index: b.series_index,
                added: b.added,
                format: b.format.as_str().to_owned(),
                tags: b.tags,
                path: b.path,
                read,
            }
        })
        .collect()
}

/// The listing the model expects for `sort`, `order` and the filters.
fn expect(all: &[Row], sort: &str, order: Option<&str>, filter: &[(&str, &str)]) -> Vec<i64> {
    let lc = |s: &str| s.to_lowercase();
    let mut v: Vec<Row> =
        all.iter()
            .filter(|r| {
                filter.iter().all(|(k, val)| match *k {
                    "format" => r.format == *val,
                    "author" => r.author.as_deref().is_some_and(|a| {
                        a.split(", ").any(|n| lc(n) == lc(val)) || lc(a) == lc(val)
                    }),
                    "series" => r.series.as_deref().is_some_and(|s| lc(s) == lc(val)),
                    "tag" => r.tags.iter().any(|t| lc(t) == lc(val)),
                    "q" => lc(&format!(
                        "{} {} {} {}",
                        r.title,
                        r.author.as_deref().unwrap_or(""),
                        r.series.as_deref().unwrap_or(""),
                        r.path
                    ))
                    .contains(&lc(val)),
                    other => panic!("no model for {other}"),
                })
            })
            .cloned()
            .collect();
    let default_desc = matches!(sort, "added" | "read");
    let desc = order.map_or(default_desc, |o| o == "desc");
    let dir = |o: std::cmp::Ordering| if desc { o.reverse() } else { o };
    let title_id = |a: &Row, b: &Row| lc(&a.title).cmp(&lc(&b.title)).then(a.id.cmp(&b.id));
    v.sort_by(|a, b| match sort {
        "title" => dir(lc(&a.title).cmp(&lc(&b.title)).then(a.id.cmp(&b.id))),
        "added" => dir(a.added.cmp(&b.added).then(a.id.cmp(&b.id))),
        "author" => a
            .author
            .is_none()
            .cmp(&b.author.is_none())
            .then_with(|| {
                dir(a
                    .author
                    .as_deref()
                    .map(lc)
                    .cmp(&b.author.as_deref().map(lc)))
            })
            .then_with(|| title_id(a, b)),
        "read" => a
            .read
            .is_none()
            .cmp(&b.read.is_none())
            .then_with(|| dir(a.read.cmp(&b.read)))
            .then_with(|| title_id(a, b)),
        "series" => a
            .series
            .is_none()
            .cmp(&b.series.is_none())
            .then_with(|| {
                dir(a
                    .series
                    .as_deref()
                    .map(lc)
                    .cmp(&b.series.as_deref().map(lc)))
            })
            .then_with(|| dir(a.index.partial_cmp(&b.index).unwrap()))
            .then_with(|| title_id(a, b)),
        other => panic!("no model for sort {other}"),
    });
    v.into_iter().map(|r| r.id).collect()
}

fn enc(s: &str) -> String {
    sockit_reader::client::encode_query(s)
}

/// Every page of a listing, checking each page's size and the totals.
fn walk(s: &Server, query: &str, per_page: usize, auth: &[(&str, &str)]) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut total = None;
    for page in 1.. {
        let path = format!("/api/books?{query}&page={page}&per_page={per_page}");
        let r = s.req("GET", &path, auth, b"");
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let n = v["total"].as_u64().unwrap() as usize;
        assert_eq!(*total.get_or_insert(n), n, "{path}: the total is stable");
        assert_eq!(v["page"], page, "{path}");
        assert_eq!(v["per_page"], per_page, "{path}");
        let books = v["books"].as_array().unwrap();
        assert!(
            books.len() <= per_page,
            "{path}: page holds {}",
            books.len()
        );
        let want = n.saturating_sub((page - 1) * per_page).min(per_page);
        assert_eq!(books.len(), want, "{path}: page size");
        ids.extend(books.iter().map(|b| b["id"].as_i64().unwrap()));
        if (page * per_page) >= n {
            break;
        }
        assert!(page <= 400, "{path}: too many pages");
    }
    assert_eq!(ids.len(), total.unwrap_or(0));
    ids
}

#[test]
fn every_sort_filter_and_page_size_matches_the_model() {
    let s = library();
    let all = rows(&s, "");
    assert!(all.iter().any(|r| r.read.is_some()) && all.iter().any(|r| !r.tags.is_empty()));
    let filters: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("format", "pdf")],
        vec![("format", "epub")],
        vec![("format", "txt")],
        vec![("author", "jules verne")],
        vec![("series", "MACHINES")],
        vec![("tag", "classic")],
        vec![("tag", "Sea")],
        vec![("q", "title 01")],
        vec![("format", "epub"), ("author", "Ada Lovelace")],
        vec![("format", "pdf"), ("tag", "classic"), ("q", "1")],
        vec![("series", "Storms"), ("author", "Mary Shelley")],
        vec![("author", "Nobody")],
    ];
    let mut checked = 0;
    for sort in ["title", "author", "added", "read", "series"] {
        for order in [None, Some("asc"), Some("desc")] {
            for f in &filters {
                let want = expect(&all, sort, order, f);
                let nobody = f.iter().any(|(_, v)| *v == "Nobody");
                assert_eq!(want.is_empty(), nobody, "{f:?} selects some books");
                let mut query = format!("sort={sort}");
                if let Some(o) = order {
                    query.push_str(&format!("&order={o}"));
                }
                for (k, v) in f {
                    query.push_str(&format!("&{k}={}", enc(v)));
                }
                // Three page sizes for the unfiltered listing, one for the others.
                let sizes: &[usize] = if f.is_empty() { &[7, 50, 500] } else { &[40] };
                for &per_page in sizes {
                    let got = walk(&s, &query, per_page, &[]);
                    assert_eq!(got, want, "{query} per_page={per_page}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * 3 * (3 + filters.len() - 1));
    // The defaults: sort by title, 50 a page; last_read shows the caller's position.
    let v = s.json("/api/books");
    assert_eq!(v["total"], 300);
    assert_eq!(v["books"].as_array().unwrap().len(), 50);
    let first: Vec<i64> = v["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, expect(&all, "title", None, &[])[..50]);
    let v = s.json("/api/books?sort=read&per_page=1");
    assert!(v["books"][0]["last_read"].is_i64(), "{v}");
    // Past the end: an empty page with the total.
    let v = s.json("/api/books?page=99&per_page=50");
    assert_eq!(
        (v["total"].as_u64(), v["books"].as_array().unwrap().len()),
        (Some(300), 0)
    );
    // The typed client builds the same query.
    let q = sockit_reader::http::api_types::BooksQuery {
        sort: Some(browse::Sort::Author),
        order: Some(browse::Order::Desc),
        format: Some(sockit_reader::http::api_types::FormatParam(Format::Pdf)),
        per_page: Some(sockit_reader::http::api_types::Number(500)),
        ..Default::default()
    };
    let list = s.rt.block_on(s.client().list_books(&q)).unwrap();
    let ids: Vec<i64> = list.books.iter().map(|b| b.id).collect();
    assert_eq!(
        ids,
        expect(&all, "author", Some("desc"), &[("format", "pdf")])
    );
    // OPDS keeps working on the same catalog.
    assert_eq!(s.get("/opds/all?page=2").status, 200);
}

fn row(i: usize) -> Book {
    let format = [Format::Txt, Format::Pdf, Format::Epub][i % 3];
    Book {
        id: 0,
        path: format!("gen/{i:05}.{format}"),
        title: format!("Generated {:05}", (i * 7919) % 10_000),
        author: (!i.is_multiple_of(11)).then(|| format!("Author {:02}", i % 40)),
        format,
        size: 1000 + i as u64,
        pages: Some(10),
        error: None,
        encoding: None,
        md5: format!("m{i}"),
        partial_md5: format!("p{i}"),
        blake3: format!("b{i}"),
        mtime: i as i64,
        cover_file: None,
        language: None,
        series: i.is_multiple_of(4).then(|| format!("Series {}", i % 13)),
        series_index: Some((i / 13) as f64),
        description: None,
        added: 1_000_000 + ((i * 31) % 10_000) as i64,
        tags: Vec::new(),
    }
}

#[test]
fn ten_thousand_books_come_in_bounded_correct_pages() {
    // One real file (an empty root would get the sample library).
    let s = Server::start(&[("keep.txt", b"kept\n".to_vec())]);
    s.lib
        .with_db(|c| {
            c.execute_batch("BEGIN")?;
            for i in 0..10_000 {
                catalog::upsert(c, &row(i))?;
            }
            c.execute_batch("COMMIT")?;
            Ok(())
        })
        .unwrap();
    let all = rows(&s, "");
    assert_eq!(all.len(), 10_001);
    // Whole walks at the largest page size.
    for (query, sort, order, filter) in [
        ("sort=title", "title", None, vec![]),
        ("sort=added&order=asc", "added", Some("asc"), vec![]),
        ("sort=author&order=desc", "author", Some("desc"), vec![]),
        (
            "sort=series&format=epub",
            "series",
            None,
            vec![("format", "epub")],
        ),
        (
            "sort=title&author=author%2007",
            "title",
            None,
            vec![("author", "author 07")],
        ),
        (
            "sort=added&series=Series%205",
            "added",
            None,
            vec![("series", "Series 5")],
        ),
    ] {
        let got = walk(&s, query, 500, &[]);
        let want = expect(&all, sort, order, &filter);
        assert_eq!(got.len(), want.len(), "{query}");
        assert_eq!(got, want, "{query}");
        assert_eq!(
            got.iter().collect::<HashSet<_>>().len(),
            got.len(),
            "{query}: no repeats"
        );
    }
    // Single pages deep inside, default size and a small one.
    let want = expect(&all, "added", None, &[]);
    let v = s.json("/api/books?sort=added&page=117");
    let ids: Vec<i64> = v["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!((v["total"].as_u64(), ids.len()), (Some(10_001), 50));
    assert_eq!(ids, want[116 * 50..117 * 50]);
    let v = s.json("/api/books?sort=title&order=desc&per_page=3&page=3334");
    assert_eq!(
        v["books"].as_array().unwrap().len(),
        2,
        "the last page holds the rest"
    );
    let v = s.json("/api/books?format=pdf&per_page=1");
    assert_eq!(v["total"], 3333);
    assert_eq!(v["books"].as_array().unwrap().len(), 1);
}

fn basic(user: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-secret-pw"))
    )
}

fn call(s: &Server, method: &str, path: &str, user: &str, body: Value) -> (u16, Value) {
    let auth = basic(user);
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let r = s.req(
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body,
    );
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn ok(s: &Server, method: &str, path: &str, user: &str, body: Value) -> Value {
    let (status, v) = call(s, method, path, user, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path} as {user}: {status} {v}"
    );
    v
}

fn small_library() -> Server {
    let s = Server::start(&[
        ("alice.txt", demo::sample_english(20).into_bytes()),
        (
            "pictures.pdf",
            demo::make_pdf("Pictures", "An Author", 4, &["x"]),
        ),
        ("coast.epub", epub("Coastal", "Ada Lovelace", "Tides", 1)),
    ]);
    for u in ["alice", "bob"] {
        assert!(s
            .lib
            .accounts()
            .create(u, &format!("{u}-secret-pw"))
            .unwrap());
    }
    s
}

fn ids_of(v: &Value) -> Vec<i64> {
    v["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn shelves_and_metadata_edits_survive_a_rescan_and_a_restart() {
    let s = small_library();
    let epub_id = s.id("coast.epub");
    let txt_id = s.id("alice.txt");
    let edited = ok(
        &s,
        "PATCH",
        &format!("/api/books/{epub_id}"),
        "alice",
        json!({"title": "  The Coast  ", "authors": ["Grace Hopper", "Alan Turing"],
               "series": "Harbours", "series_index": 3.5, "tags": ["Sea", "sea", "Favourite"]}),
    );
    assert_eq!(edited["title"], "The Coast");
    assert_eq!(edited["author"], "Grace Hopper, Alan Turing");
    assert_eq!(
        (edited["series"].as_str(), edited["series_index"].as_f64()),
        (Some("Harbours"), Some(3.5))
    );
    assert_eq!(edited["tags"], json!(["Favourite", "Sea"]));
    // A partial edit keeps the other fields; an empty author list clears the authors of
    // the PDF.
    let pdf_id = s.id("pictures.pdf");
    let p = ok(
        &s,
        "PATCH",
        &format!("/api/books/{pdf_id}"),
        "bob",
        json!({"authors": []}),
    );
    assert_eq!(
        (p["title"].as_str(), p["author"].as_str()),
        (Some("Pictures"), None)
    );
    let shelf = ok(
        &s,
        "POST",
        "/api/shelves",
        "alice",
        json!({"name": "To read"}),
    );
    let shelf_id = shelf["id"].as_i64().unwrap();
    assert_eq!(shelf["books"], 0);
    for b in [epub_id, txt_id] {
        let sh = ok(
            &s,
            "PUT",
            &format!("/api/shelves/{shelf_id}/books/{b}"),
            "alice",
            Value::Null,
        );
        assert!(sh["books"].as_u64().unwrap() >= 1);
    }
    // Putting a book twice is harmless.
    let sh = ok(
        &s,
        "PUT",
        &format!("/api/shelves/{shelf_id}/books/{txt_id}"),
        "alice",
        Value::Null,
    );
    assert_eq!(sh["books"], 2);
    let gone = ok(
        &s,
        "POST",
        "/api/shelves",
        "alice",
        json!({"name": "Gone soon"}),
    );
    let gone_id = gone["id"].as_i64().unwrap();
    ok(
        &s,
        "PUT",
        &format!("/api/shelves/{gone_id}/books/{txt_id}"),
        "alice",
        Value::Null,
    );
    ok(
        &s,
        "DELETE",
        &format!("/api/shelves/{gone_id}"),
        "alice",
        Value::Null,
    );

    let check = |s: &Server, pages: u64| {
        let b = ok(
            s,
            "GET",
            &format!("/api/books/{epub_id}"),
            "alice",
            Value::Null,
        );
        assert_eq!(
            (b["title"].as_str(), b["author"].as_str()),
            (Some("The Coast"), Some("Grace Hopper, Alan Turing"))
        );
        assert_eq!(b["series"], "Harbours");
        assert_eq!(b["tags"], json!(["Favourite", "Sea"]));
        assert_eq!(b["pages"], pages);
        let shelves = ok(s, "GET", "/api/shelves", "alice", Value::Null);
        assert_eq!(
            shelves["shelves"],
            json!([{"id": shelf_id, "name": "To read", "books": 2}])
        );
        let on = ok(
            s,
            "GET",
            &format!("/api/books?shelf={shelf_id}&sort=title"),
            "alice",
            Value::Null,
        );
        let mut want = vec![txt_id, epub_id];
        want.sort_by_key(|id| {
            if *id == epub_id {
                "the coast".to_owned()
            } else {
                "alice".to_owned()
            }
        });
        assert_eq!(ids_of(&on), want);
        for (filter, want) in [
            ("tag=favourite", vec![epub_id]),
            ("series=harbours", vec![epub_id]),
            ("author=Alan%20Turing", vec![epub_id]),
            ("author=Ada%20Lovelace", vec![]),
            ("q=coast", vec![epub_id]),
        ] {
            let v = ok(
                s,
                "GET",
                &format!("/api/books?{filter}"),
                "alice",
                Value::Null,
            );
            assert_eq!(ids_of(&v), want, "{filter}");
        }
        let p = ok(
            s,
            "GET",
            &format!("/api/books/{pdf_id}"),
            "bob",
            Value::Null,
        );
        assert_eq!(p["author"], Value::Null, "cleared authors stay cleared");
    };
    check(&s, 1);
    // The file changes (a second chapter): the rescan re-reads it, the edits stay.
    let mut two = epub("Coastal", "Ada Lovelace", "Tides", 1);
    two = {
        // Same metadata, one more chapter.
        let text = String::from_utf8_lossy(&two).into_owned();
        assert!(text.contains("content.opf"));
        let opf = r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="2.0">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Coastal</dc:title><dc:creator>Ada Lovelace</dc:creator></metadata>
<manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/><item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/></manifest>
<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>"#;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("mimetype", &b"application/epub+zip"[..]),
            ("META-INF/container.xml", br#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#),
            ("content.opf", opf.as_bytes()),
            ("c1.xhtml", br#"<html xmlns="http://www.w3.org/1999/xhtml"><body><p>1</p></body></html>"#),
            ("c2.xhtml", br#"<html xmlns="http://www.w3.org/1999/xhtml"><body><p>2</p></body></html>"#),
        ] {
            w.start_file(name, o).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    std::fs::write(s.books.join("coast.epub"), &two).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(s.books.join("coast.epub"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    let report = s.lib.rescan().unwrap();
    assert!(report.changed(), "{report:?}");
    check(&s, 2);
    // And a restart reopens the same catalog.
    let s = s.restart();
    assert_eq!(s.id("coast.epub"), epub_id);
    check(&s, 2);
}

#[test]
fn shelves_positions_and_continue_reading_are_per_user() {
    let s = small_library();
    let txt = s.id("alice.txt");
    let pdf = s.id("pictures.pdf");
    let epub = s.id("coast.epub");
    let shelf = ok(&s, "POST", "/api/shelves", "alice", json!({"name": "Mine"}));
    let id = shelf["id"].as_i64().unwrap();
    ok(
        &s,
        "PUT",
        &format!("/api/shelves/{id}/books/{txt}"),
        "alice",
        Value::Null,
    );
    // Bob may use the same name; he does not see, fill, list or delete Alice's shelf.
    ok(&s, "POST", "/api/shelves", "bob", json!({"name": "Mine"}));
    let bobs = ok(&s, "GET", "/api/shelves", "bob", Value::Null);
    assert_eq!(bobs["shelves"].as_array().unwrap().len(), 1);
    assert_ne!(bobs["shelves"][0]["id"], id);
    for (method, path) in [
        ("PUT", format!("/api/shelves/{id}/books/{pdf}")),
        ("DELETE", format!("/api/shelves/{id}/books/{txt}")),
        ("DELETE", format!("/api/shelves/{id}")),
        ("GET", format!("/api/books?shelf={id}")),
    ] {
        let (status, v) = call(&s, method, &path, "bob", Value::Null);
        assert_eq!(
            (status, v["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}: {v}"
        );
    }
    let b = ok(
        &s,
        "GET",
        &format!("/api/books/{txt}"),
        "alice",
        Value::Null,
    );
    assert_eq!(b["shelves"], json!([id]));
    let b = ok(&s, "GET", &format!("/api/books/{txt}"), "bob", Value::Null);
    assert_eq!(b["shelves"], json!([]));
    // OPDS: a navigation feed of the caller's shelves, an acquisition feed per shelf.
    let opds = |path: &str, user: &str| {
        let auth = basic(user);
        let r = s.req("GET", path, &[("authorization", &auth)], b"");
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    let (status, nav) = opds("/opds/shelves", "alice");
    assert_eq!(status, 200, "{nav}");
    assert!(
        nav.contains("<title>Mine</title>") && nav.contains(&format!("href=\"/opds/shelf/{id}\"")),
        "{nav}"
    );
    let (status, feed) = opds(&format!("/opds/shelf/{id}"), "alice");
    assert_eq!(
        (status, feed.matches("<entry>").count()),
        (200, 1),
        "{feed}"
    );
    assert!(feed.contains(&format!("/api/books/{txt}/file")), "{feed}");
    assert_eq!(opds(&format!("/opds/shelf/{id}"), "bob").0, 404);
    let (_, root) = opds("/opds", "bob");
    assert!(root.contains("/opds/shelves"), "{root}");
    let mine = ok(&s, "GET", "/api/shelves", "alice", Value::Null);
    assert_eq!(
        mine["shelves"],
        json!([{"id": id, "name": "Mine", "books": 1}])
    );
    // Positions: Alice reads the TXT in the browser, then the PDF with KOReader (kosync,
    // the same store); Bob reads only the EPUB; a finished book is not "in progress".
    ok(
        &s,
        "PUT",
        &format!("/api/books/{txt}/progress"),
        "alice",
        json!({"page": 2}),
    );
    let doc = ok(
        &s,
        "GET",
        &format!("/api/books/{pdf}"),
        "alice",
        Value::Null,
    )["partial_md5"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = sockit_reader::md5_hex(b"alice-secret-pw");
    let body = serde_json::to_vec(
        &json!({"document": doc, "progress": "3", "percentage": 0.75, "device": "kobo"}),
    )
    .unwrap();
    let r = s.req(
        "PUT",
        "/syncs/progress",
        &[
            ("x-auth-user", "alice"),
            ("x-auth-key", &key),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    ok(
        &s,
        "PUT",
        &format!("/api/books/{epub}/progress"),
        "bob",
        json!({"page": 1, "percentage": 1.0}),
    );
    let alice = ok(&s, "GET", "/api/continue", "alice", Value::Null);
    let ids: Vec<i64> = alice["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["book"]["id"].as_i64().unwrap())
        .collect();
    let mut want = vec![txt, pdf];
    // Most recent first; both writes may share a second, then the book id decides.
    let t: Vec<i64> = alice["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["progress"]["timestamp"].as_i64().unwrap())
        .collect();
    if t[0] == t[1] {
        want.sort();
    } else {
        want.reverse();
    }
    assert_eq!(ids, want, "{alice}");
    let pdf_item = alice["books"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["book"]["id"] == pdf)
        .unwrap();
    assert_eq!(
        (
            pdf_item["progress"]["page"].as_u64(),
            pdf_item["progress"]["device"].as_str()
        ),
        (Some(3), Some("kobo"))
    );
    let bob = ok(&s, "GET", "/api/continue", "bob", Value::Null);
    assert_eq!(bob["books"], json!([]), "bob finished his only book");
    // The position Alice's kosync wrote is the one the web UI and `sockit read` read.
    let p = ok(
        &s,
        "GET",
        &format!("/api/books/{pdf}/progress"),
        "alice",
        Value::Null,
    );
    assert_eq!(
        (p["page"].as_u64(), p["device"].as_str()),
        (Some(3), Some("kobo"))
    );
    let p = ok(
        &s,
        "GET",
        &format!("/api/books/{pdf}/progress"),
        "bob",
        Value::Null,
    );
    assert_eq!(p, json!({}));
    // Sorting by last read is per user too.
    let a = ok(&s, "GET", "/api/books?sort=read", "alice", Value::Null);
    let b = ok(&s, "GET", "/api/books?sort=read", "bob", Value::Null);
    assert_eq!(ids_of(&b)[0], epub);
    assert_ne!(ids_of(&a)[0], epub);
}

#[test]
fn bad_query_values_and_bodies_are_400s_that_name_the_value() {
    let s = small_library();
    let id = s.id("alice.txt");
    for (query, needle) in [
        ("sort=size", "sort `size`"),
        ("order=up", "order `up`"),
        ("format=doc", "format `doc`"),
        ("page=0", "page 0"),
        ("page=abc", "`abc` is not a valid number"),
        ("page=-1", "`-1` is not a valid number"),
        ("per_page=0", "per_page 0"),
        ("per_page=501", "per_page 501"),
        ("per_page=1e3", "`1e3`"),
        ("shelf=x", "`x`"),
    ] {
        let (status, v) = call(
            &s,
            "GET",
            &format!("/api/books?{query}"),
            "alice",
            Value::Null,
        );
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{query}: {v}"
        );
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    // Empty values are absent values.
    let v = ok(
        &s,
        "GET",
        "/api/books?sort=&order=&format=&author=&q=&page=&per_page=",
        "alice",
        Value::Null,
    );
    assert_eq!(v["total"], 3);
    assert_eq!(
        call(&s, "GET", "/api/books?shelf=12345", "alice", Value::Null).0,
        404
    );
    for (body, needle) in [
        (json!({"title": "  "}), "title must not be empty"),
        (json!({"title": "a\u{7}b"}), "control character"),
        (json!({"authors": ["A, B"]}), "without `,`"),
        (json!({"series_index": 2}), "series_index needs series"),
        (json!({"series": "S", "series_index": -1}), "series_index"),
        (json!({"tags": ["x".repeat(101)]}), "longer than 100"),
        (json!({"colour": "red"}), "colour"),
        (json!({"title": 5}), "title"),
    ] {
        let (status, v) = call(
            &s,
            "PATCH",
            &format!("/api/books/{id}"),
            "alice",
            body.clone(),
        );
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    assert_eq!(
        call(
            &s,
            "PATCH",
            "/api/books/999999",
            "alice",
            json!({"title": "x"})
        )
        .0,
        404
    );
    let (status, v) = call(&s, "POST", "/api/shelves", "alice", json!({"name": " "}));
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    ok(&s, "POST", "/api/shelves", "alice", json!({"name": "A"}));
    let (status, v) = call(&s, "POST", "/api/shelves", "alice", json!({"name": "A"}));
    assert_eq!((status, v["code"].as_str()), (409, Some("exists")), "{v}");
    // Without credentials a locked library refuses the edit.
    let r = s.req(
        "PATCH",
        &format!("/api/books/{id}"),
        &[("content-type", "application/json")],
        br#"{"title":"x"}"#,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn an_open_library_lets_anonymous_readers_shelve_but_not_edit() {
    let s = Server::start(&[("a.txt", b"hello\n".to_vec())]);
    let id = s.id("a.txt");
    let r = s.req(
        "PATCH",
        &format!("/api/books/{id}"),
        &[("content-type", "application/json")],
        br#"{"title":"x"}"#,
    );
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["message"].as_str().unwrap().contains("sign in"), "{v}");
    let r = s.req(
        "POST",
        "/api/shelves",
        &[("content-type", "application/json")],
        br#"{"name":"Later"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn a_title_edit_redraws_the_generated_cover() {
    let s = small_library();
    let id = s.id("alice.txt");
    let cover = |s: &Server| {
        let auth = basic("alice");
        let r = s.req(
            "GET",
            &format!("/api/books/{id}/cover?w=200"),
            &[("authorization", &auth)],
            &[],
        );
        assert_eq!(r.status, 200);
        r.body
    };
    let before = cover(&s);
    assert_eq!(before, cover(&s), "the same card twice (from the cache)");
    ok(
        &s,
        "PATCH",
        &format!("/api/books/{id}"),
        "alice",
        json!({"title": "A Quite Different Title", "authors": ["Someone Else"]}),
    );
    assert_ne!(before, cover(&s), "the card still shows the old title");
}
