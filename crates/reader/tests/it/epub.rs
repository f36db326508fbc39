//! EPUB 2 and 3 books generated here (zip + container.xml + OPF + nav/NCX + XHTML + a PNG
//! cover), cataloged and served through a real server: metadata, table of contents,
//! chapters, the cover, images and styles from inside the book, OPDS; and hostile ones
//! (scripts, handlers, `javascript:` links, external images, a zip bomb, a traversal
//! entry name) sanitized or refused.

use crate::common;

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;

/// A zip with `mimetype` first and stored, the rest deflated.
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("mimetype", stored).unwrap();
    w.write_all(b"application/epub+zip").unwrap();
    for (name, bytes) in entries {
        w.start_file(*name, deflated).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A solid-colour PNG.
fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const CONTAINER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#;

fn chapter(title: &str, body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>{title}</title><link rel="stylesheet" type="text/css" href="../css/style.css"/></head>
<body>{body}</body></html>"#
    )
    .into_bytes()
}

fn chapters() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "OEBPS/text/c1.xhtml",
            chapter("One", "<h1 id=\"c1\">Chapter One</h1><p>It begins by the sea.</p><p><a href=\"c2.xhtml#c2\">on</a></p>"),
        ),
        (
            "OEBPS/text/c2.xhtml",
            chapter(
                "Two",
                "<h1 id=\"c2\">Chapter Two</h1><p>The keeper climbs the lighthouse stairs.</p>\
                 <p><img src=\"../images/the%20map.png\" alt=\"map\"/></p>",
            ),
        ),
        (
            "OEBPS/text/c3.xhtml",
            chapter("Three", "<h1>Chapter Three</h1><p>The light goes out.</p>"),
        ),
        (
            "OEBPS/css/style.css",
            b"@import url(http://evil.example/x.css);\nh1 { color: #345; background: url(../images/the%20map.png) }\np { background: url(https://evil.example/track.png) }\n"
                .to_vec(),
        ),
        ("OEBPS/images/the map.png", png(8, 6, [0, 0, 255])),
    ]
}

const MANIFEST: &str = r#"
    <item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="c3" href="text/c3.xhtml" media-type="application/xhtml+xml"/>
    <item id="css" href="css/style.css" media-type="text/css"/>
    <item id="map" href="images/the%20map.png" media-type="image/png"/>"#;
const SPINE: &str = r#"<itemref idref="c1"/><itemref idref="c2"/><itemref idref="c3"/>"#;

/// An EPUB 3 book: nav, three chapters, a style sheet, an image, a cover.
pub fn epub3() -> Vec<u8> {
    let opf = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:1</dc:identifier>
    <dc:title>The Lighthouse Keeper</dc:title>
    <dc:creator id="a1">Ada Lovelace</dc:creator>
    <meta refines="#a1" property="role" scheme="marc:relators">aut</meta>
    <dc:creator id="a2">Charles Babbage</dc:creator>
    <dc:language>en</dc:language>
    <dc:description>&lt;p&gt;A keeper and &lt;i&gt;her&lt;/i&gt; light.&lt;/p&gt;</dc:description>
    <meta property="belongs-to-collection" id="coll">Coastal Tales</meta>
    <meta refines="#coll" property="collection-type">series</meta>
    <meta refines="#coll" property="group-position">2</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="cover" href="images/cover.png" media-type="image/png" properties="cover-image"/>{MANIFEST}
  </manifest>
  <spine>{SPINE}</spine>
</package>"##
    );
    let nav = r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head>
<body><nav epub:type="toc"><h1>Contents</h1><ol>
  <li><a href="text/c1.xhtml">The Sea</a></li>
  <li><a href="text/c2.xhtml">The Stairs</a><ol><li><a href="text/c2.xhtml#c2">Climbing</a></li></ol></li>
  <li><a href="text/c3.xhtml">Darkness</a></li>
</ol></nav></body></html>"#;
    let mut entries = vec![
        ("META-INF/container.xml", CONTAINER.as_bytes().to_vec()),
        ("OEBPS/content.opf", opf.into_bytes()),
        ("OEBPS/nav.xhtml", nav.as_bytes().to_vec()),
        ("OEBPS/images/cover.png", png(60, 90, [200, 20, 20])),
    ];
    entries.extend(chapters());
    zip(&entries)
}

fn epub2() -> Vec<u8> {
    let opf = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
    <dc:title>Old Harbour</dc:title>
    <dc:creator opf:role="aut" opf:file-as="Doe, Jane">Jane Doe</dc:creator>
    <dc:creator opf:role="ill">Ill Ustrator</dc:creator>
    <dc:language>fr</dc:language>
    <dc:description>Boats, nets and weather.</dc:description>
    <meta name="calibre:series" content="Harbours"/>
    <meta name="calibre:series_index" content="1"/>
    <meta name="cover" content="cover-img"/>
  </metadata>
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="cover-img" href="images/cover.png" media-type="image/png"/>{MANIFEST}
  </manifest>
  <spine toc="ncx">{SPINE}</spine>
</package>"#
    );
    let ncx = r#"<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head/><docTitle><text>Old Harbour</text></docTitle>
<navMap>
  <navPoint id="n1" playOrder="1"><navLabel><text>Nets</text></navLabel><content src="text/c1.xhtml"/></navPoint>
  <navPoint id="n2" playOrder="2"><navLabel><text>Weather</text></navLabel><content src="text/c2.xhtml"/>
    <navPoint id="n21" playOrder="3"><navLabel><text>Storm</text></navLabel><content src="text/c2.xhtml#c2"/></navPoint>
  </navPoint>
  <navPoint id="n3" playOrder="4"><navLabel><text>Calm</text></navLabel><content src="text/c3.xhtml"/></navPoint>
</navMap></ncx>"#;
    let mut entries = vec![
        ("META-INF/container.xml", CONTAINER.as_bytes().to_vec()),
        ("OEBPS/content.opf", opf.into_bytes()),
        ("OEBPS/toc.ncx", ncx.as_bytes().to_vec()),
        ("OEBPS/images/cover.png", png(60, 90, [20, 160, 20])),
    ];
    entries.extend(chapters());
    zip(&entries)
}

/// A book whose content attacks the reader; chapter 3 inflates to 8 MiB.
fn hostile() -> Vec<u8> {
    let opf = r#"<package version="3.0"><metadata><dc:title>Hostile</dc:title></metadata><manifest>
      <item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>
      <item id="c2" href="c2.svg.xhtml" media-type="application/xhtml+xml"/>
      <item id="bomb" href="bomb.xhtml" media-type="application/xhtml+xml"/>
      <item id="svg" href="x.svg" media-type="image/svg+xml"/>
    </manifest><spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="bomb"/></spine></package>"#;
    let c1 = r##"<html><head><script>alert('head')</script><link rel="stylesheet" href="http://evil.example/s.css"/></head>
      <body onload="alert('load')"><p onclick="alert('click')" style="background:url(http://evil.example/bg)">Hostile text stays.</p>
      <script>alert('body')</script><a href="javascript:alert('link')">js link</a>
      <a href="JaVaScRiPt:alert(1)">js link 2</a><a href=" javascript:alert(2)">js link 3</a>
      <img src="http://evil.example/pixel.png" alt="ext"/><img src="//evil.example/p2.png"/>
      <img src="data:image/png;base64,AAAA"/><img src="../../../../etc/passwd"/>
      <iframe src="http://evil.example/frame"></iframe><object data="x.svg"></object>
      <form action="http://evil.example/post"><input name="q"/></form>
      <svg><script>alert('svg')</script><image href="http://evil.example/svgimg.png"/></svg>
      <a href="c2.svg.xhtml">next</a></body></html>"##;
    let mut bomb = Vec::with_capacity(8 << 20);
    bomb.extend_from_slice(b"<html><body><p>");
    bomb.resize(8 << 20, b'A');
    zip(&[
        ("META-INF/container.xml", br#"<container><rootfiles><rootfile full-path="c.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#.to_vec()),
        ("c.opf", opf.as_bytes().to_vec()),
        ("c1.xhtml", c1.as_bytes().to_vec()),
        ("c2.svg.xhtml", b"<html><body><p>two</p></body></html>".to_vec()),
        ("bomb.xhtml", bomb),
        ("x.svg", br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec()),
    ])
}

/// A book with a `../../etc/passwd` entry.
fn traversal() -> Vec<u8> {
    zip(&[
        ("META-INF/container.xml", br#"<container><rootfiles><rootfile full-path="c.opf"/></rootfiles></container>"#.to_vec()),
        ("c.opf", br#"<package version="3.0"><manifest><item id="a" href="a.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="a"/></spine></package>"#.to_vec()),
        ("a.xhtml", b"<html><body>a</body></html>".to_vec()),
        ("../../etc/passwd", b"root:x:0:0".to_vec()),
    ])
}

fn library() -> Server {
    Server::start_with(
        &[
            ("lighthouse.epub", epub3()),
            ("old/harbour.EPUB", epub2()),
            ("hostile.epub", hostile()),
            ("traversal.epub", traversal()),
            ("not-a-zip.epub", b"just text".to_vec()),
        ],
        |cfg| cfg.epub.max_entry_bytes = 1 << 20,
    )
}

fn json_of(r: &sockit_reader::client::Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON ({})", r.status))
}

fn check_book(
    s: &Server,
    path: &str,
    expect: &[(&str, serde_json::Value)],
    toc: &[(&str, u64, u64)],
    cover_rgb: [u8; 3],
) {
    let id = s.id(path);
    let b = s.json(&format!("/api/books/{id}"));
    assert_eq!(b["format"], "epub", "{b}");
    assert_eq!(b["error"], serde_json::Value::Null, "{b}");
    assert_eq!(b["pages"], 3, "{b}");
    for (k, v) in expect {
        assert_eq!(&b[*k], v, "{path}: {k} in {b}");
    }

    let t = s.json(&format!("/api/books/{id}/toc"));
    assert_eq!(t["chapters"], 3);
    let got: Vec<(String, u64, u64)> = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["label"].as_str().unwrap().to_owned(),
                e["chapter"].as_u64().unwrap(),
                e["level"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = toc
        .iter()
        .map(|(l, c, d)| ((*l).to_owned(), *c, *d))
        .collect();
    assert_eq!(got, want, "{path}");

    let c = s.json(&format!("/api/books/{id}/chapter/2"));
    let html = c["html"].as_str().unwrap();
    assert!(
        html.contains("The keeper climbs the lighthouse stairs."),
        "{html}"
    );
    assert!(!html.contains("Chapter One"), "{html}");
    assert_eq!(
        (c["chapter"].as_u64(), c["chapters"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!((c["prev"].as_u64(), c["next"].as_u64()), (Some(1), Some(3)));
    assert!(
        (c["percentage"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{c}"
    );
    assert_eq!(c["title"], toc[1].0);
    let img = format!("/api/books/{id}/epub/OEBPS/images/the%20map.png");
    assert!(html.contains(&format!("src=\"{img}\"")), "{html}");
    let r = s.get(&img);
    assert_eq!(r.status, 200, "{img}");
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(
        r.body,
        png(8, 6, [0, 0, 255]),
        "{img}: the bytes inside the book"
    );
    assert!(r
        .header("content-security-policy")
        .is_some_and(|v| v.contains("sandbox")));

    let styles = c["styles"].as_array().unwrap();
    assert_eq!(styles.len(), 1, "{c}");
    let css = s.get(styles[0].as_str().unwrap());
    assert_eq!(css.status, 200);
    let css = String::from_utf8(css.body).unwrap();
    assert!(!css.contains("evil"), "{css}");
    assert!(css.contains(&format!("url(\"{img}\")")), "{css}");

    let c1 = s.json(&format!("/api/books/{id}/chapter/1"));
    assert!(
        c1["html"].as_str().unwrap().contains("href=\"#epub:2:c2\""),
        "{c1}"
    );
    assert_eq!(c1["prev"], serde_json::Value::Null);
    let r = s.get(&format!("/api/books/{id}/chapter/4"));
    assert_eq!(r.status, 404);

    // The cover is the book's own image (solid colour), served as JPEG.
    let r = s.get(&format!("/api/books/{id}/cover?w=60"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let img = image::load_from_memory(&r.body).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (60, 90));
    let px = img.get_pixel(30, 45).0;
    for (got, want) in px.iter().zip(cover_rgb) {
        assert!(
            got.abs_diff(want) < 24,
            "{path}: cover pixel {px:?}, want {cover_rgb:?}"
        );
    }

    // The file downloads as an EPUB.
    let r = s.get(&format!("/api/books/{id}/file"));
    assert_eq!(r.header("content-type"), Some("application/epub+zip"));
}

#[test]
fn epub3_and_epub2_books_are_cataloged_and_served() {
    let s = library();
    check_book(
        &s,
        "lighthouse.epub",
        &[
            ("title", "The Lighthouse Keeper".into()),
            ("author", "Ada Lovelace, Charles Babbage".into()),
            ("language", "en".into()),
            ("series", "Coastal Tales".into()),
            ("series_index", 2.0.into()),
            ("description", "A keeper and her light.".into()),
        ],
        &[
            ("The Sea", 1, 0),
            ("The Stairs", 2, 0),
            ("Climbing", 2, 1),
            ("Darkness", 3, 0),
        ],
        [200, 20, 20],
    );
    check_book(
        &s,
        "old/harbour.EPUB",
        &[
            ("title", "Old Harbour".into()),
            ("author", "Jane Doe".into()),
            ("language", "fr".into()),
            ("series", "Harbours".into()),
            ("series_index", 1.0.into()),
            ("description", "Boats, nets and weather.".into()),
        ],
        &[
            ("Nets", 1, 0),
            ("Weather", 2, 0),
            ("Storm", 2, 1),
            ("Calm", 3, 0),
        ],
        [20, 160, 20],
    );
    // The series is searchable.
    let found = s.json("/api/books?q=coastal");
    assert_eq!(found["total"], 1);

    // Progress through the spine: chapter 2 of 3 saved by the web UI, a KOReader
    // XPointer read back as its chapter.
    let id = s.id("lighthouse.epub");
    let body = br#"{"page":2,"percentage":0.5}"#;
    let r = s.req(
        "PUT",
        &format!("/api/books/{id}/progress"),
        &[("content-type", "application/json")],
        body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = s.json(&format!("/api/books/{id}/progress"));
    assert_eq!(
        (p["page"].as_u64(), p["percentage"].as_f64()),
        (Some(2), Some(0.5))
    );
}

#[test]
fn hostile_content_is_sanitized_and_bombs_stop_at_the_limit() {
    let s = library();
    let id = s.id("hostile.epub");
    let b = s.json(&format!("/api/books/{id}"));
    assert_eq!(b["error"], serde_json::Value::Null, "{b}");
    let c = s.json(&format!("/api/books/{id}/chapter/1"));
    let html = c["html"].as_str().unwrap();
    assert!(html.contains("Hostile text stays."), "{html}");
    for bad in [
        "<script",
        "alert",
        "onload",
        "onclick",
        "javascript",
        "evil.example",
        "data:",
        "passwd",
        "<iframe",
        "<object",
        "<form",
        "<svg",
        "style=",
    ] {
        assert!(
            !html
                .to_ascii_lowercase()
                .contains(&bad.to_ascii_lowercase()),
            "{bad} in {html}"
        );
    }
    assert!(html.contains("href=\"#epub:2\""), "{html}");
    assert_eq!(c["styles"].as_array().map(Vec::len), Some(0), "{c}");

    // The bomb inflates past the per-entry limit: refused, nothing else hurt.
    let r = s.get(&format!("/api/books/{id}/chapter/3"));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_of(&r)["code"], "too_large");
    assert_eq!(s.get(&format!("/api/books/{id}/chapter/2")).status, 200);

    // Only images, styles and fonts come out of the book, never a document or a path out.
    for (path, status) in [
        ("c1.xhtml", 415),
        ("..%2F..%2Fetc%2Fpasswd", 403),
        ("a/..%2F..%2Fx.png", 403),
        ("%2Fetc%2Fpasswd", 403),
        ("missing.png", 404),
    ] {
        let r = s.get(&format!("/api/books/{id}/epub/{path}"));
        assert_eq!(
            r.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // An SVG is served only with a sandboxing policy.
    let r = s.get(&format!("/api/books/{id}/epub/x.svg"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-security-policy")
        .is_some_and(|v| v.contains("sandbox") && v.contains("default-src 'none'")));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn unsafe_entry_names_and_broken_files_are_cataloged_with_their_error() {
    let s = library();
    for (path, needle) in [
        ("traversal.epub", "unsafe entry name `../../etc/passwd`"),
        ("not-a-zip.epub", "not a zip archive"),
    ] {
        let id = s.id(path);
        let b = s.json(&format!("/api/books/{id}"));
        let err = b["error"].as_str().unwrap_or_else(|| panic!("{path}: {b}"));
        assert!(
            err.contains(needle) && err.contains("not a readable EPUB"),
            "{path}: {err}"
        );
        assert_eq!(b["pages"], serde_json::Value::Null);
        let r = s.get(&format!("/api/books/{id}/chapter/1"));
        assert_eq!(
            (r.status, json_of(&r)["code"].as_str()),
            (422, Some("bad_epub")),
            "{path}"
        );
        // A generated cover still shows it in the grid.
        assert_eq!(s.get(&format!("/api/books/{id}/cover?w=40")).status, 200);
    }
    assert!(!s.dir.path().join("etc").exists());
}

#[test]
fn opds_offers_epubs_as_epub_zip() {
    let s = library();
    let r = s.get("/opds/all");
    assert_eq!(r.status, 200);
    let feed = String::from_utf8(r.body).unwrap();
    let id = s.id("lighthouse.epub");
    let link = format!(
        r#"<link rel="http://opds-spec.org/acquisition" href="/api/books/{id}/file" type="application/epub+zip"/>"#
    );
    assert!(feed.contains(&link), "{feed}");
    assert!(
        feed.contains("<dc:format>application/epub+zip</dc:format>"),
        "{feed}"
    );
    assert!(feed.contains("<dc:language>en</dc:language>"), "{feed}");
    assert!(feed.contains("EPUB, 3 chapters"), "{feed}");
    // No page streaming for EPUBs.
    assert!(!feed.contains(&format!("/opds/pse/{id}/")), "{feed}");
}

#[test]
fn the_classic_protocol_lists_epubs_but_cannot_page_them() {
    let s = library();
    let mut c = TcpStream::connect(s.classic).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"1 lighthouse.epub").unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("error: ") && text.contains("is an EPUB"),
        "{text}"
    );
}

#[test]
fn a_koreader_position_in_an_epub_shows_as_its_chapter() {
    let s = library();
    let id = s.id("lighthouse.epub");
    let doc = s.json(&format!("/api/books/{id}"))["partial_md5"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = sockit_reader::md5_hex(b"pw");
    let json = [("content-type", "application/json")];
    let r = s.req(
        "POST",
        "/users/create",
        &json,
        format!(r#"{{"username":"ko","password":"{key}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let auth = [
        ("content-type", "application/json"),
        ("x-auth-user", "ko"),
        ("x-auth-key", key.as_str()),
    ];
    // What KOReader sends for a reflowable document: an XPointer into the spine.
    let body = format!(
        r#"{{"document":"{doc}","progress":"/body/DocFragment[3]/body/p[1]/text().0","percentage":0.7,"device":"kobo","device_id":"K1"}}"#
    );
    let r = s.req("PUT", "/syncs/progress", &auth, body.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s.req("GET", &format!("/api/books/{id}/progress"), &auth, b"");
    let p = json_of(&r);
    assert_eq!(p["page"], 3, "{p}");
    assert_eq!(p["percentage"], 0.7, "{p}");
    assert_eq!(p["progress"], "/body/DocFragment[3]/body/p[1]/text().0");
}
