//! The web UI end to end in headless Chromium driven by Playwright (`playwright-core`
//! from npm, installed by scripts/test.sh into `crates/reader/tests/e2e/node_modules`,
//! with Debian's chromium), against the reader's servers on loopback (the library and
//! HTTP server `sockit serve` runs, with an administrator account as `sockit account add
//! --admin` makes): `crates/reader/tests/e2e/reader.mjs` signs in, browses, sorts
//! by title and by author, filters, searches titles and the books' text, follows a hit
//! into EPUB chapter 2, turns chapters and pages (buttons and keys), comes back to saved
//! positions, reads a CJK TXT and a PDF (page jump, fit page / fit width / zoom, the next
//! page fetched ahead), checks the continue-reading row, a shelf and a metadata edit,
//! uploads a TXT through "+ Add books" and again (the duplicate notice), deletes it as an
//! administrator and signs out. It saves screenshots of the library, a search, an EPUB
//! chapter, the PDF view and the upload notice (into `SOCKIT_SCREENSHOTS_DIR` when set,
//! relative to the workspace root: docs/screenshots holds the committed ones).

use crate::common;

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Server;
use sockit_testkit::peer;

/// The account the browser signs in with, made an administrator as `sockit account add
/// reader --admin` does (so the upload and the delete are allowed).
const USER: &str = "reader";
const PASSWORD: &str = "a long enough password";
/// The screenshots the script saves, each of the 1200×800 viewport.
const SHOTS: [&str; 5] = [
    "reader-library.png",
    "reader-search.png",
    "reader-epub.png",
    "reader-pdf.png",
    "reader-upload.png",
];

/// The first sentence of each chapter of [`lighthouse_epub`]; "stairs" is only in the
/// second chapter.
const CHAPTERS: [&str; 3] = [
    "It begins by the sea.",
    "The keeper climbs the lighthouse stairs.",
    "The light goes out.",
];
/// The text of chapter 1's link to chapter 2.
const CHAPTER_LINK: &str = "Follow her up the tower";
/// The width of chapter 2's illustration.
const IMAGE_WIDTH: u32 = 480;

/// An EPUB 3 book of three chapters (a contents page with a nested entry, a style sheet,
/// an illustration in chapter 2, a link from chapter 1 to chapter 2) and no cover image,
/// so the library draws one with its title.
fn lighthouse_epub() -> Vec<u8> {
    let chapter = |title: &str, body: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="en">
<head><title>{title}</title><link rel="stylesheet" type="text/css" href="../css/book.css"/></head>
<body>{body}</body></html>"#
        )
        .into_bytes()
    };
    let [one, two, three] = CHAPTERS;
    let entries: Vec<(&str, Vec<u8>)> = vec![
        (
            "META-INF/container.xml",
            br#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#
                .to_vec(),
        ),
        (
            "OEBPS/content.opf",
            br#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:5f1c2a7e-lighthouse</dc:identifier>
    <dc:title>The Lighthouse Keeper</dc:title>
    <dc:creator>Ada Lovelace</dc:creator>
    <dc:creator>Charles Babbage</dc:creator>
    <dc:language>en</dc:language>
    <dc:description>A keeper, her tower and one long night on Gull Point.</dc:description>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="c3" href="text/c3.xhtml" media-type="application/xhtml+xml"/>
    <item id="css" href="css/book.css" media-type="text/css"/>
    <item id="pic" href="images/gull%20point.png" media-type="image/png"/>
  </manifest>
  <spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="c3"/></spine>
</package>"#
                .to_vec(),
        ),
        (
            "OEBPS/nav.xhtml",
            br#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head>
<body><nav epub:type="toc"><h1>Contents</h1><ol>
  <li><a href="text/c1.xhtml">The Sea</a></li>
  <li><a href="text/c2.xhtml">The Stairs</a><ol><li><a href="text/c2.xhtml#lamp">The lamp room</a></li></ol></li>
  <li><a href="text/c3.xhtml">Darkness</a></li>
</ol></nav></body></html>"#
                .to_vec(),
        ),
        (
            "OEBPS/text/c1.xhtml",
            chapter(
                "The Sea",
                &format!(
                    "<h1>Chapter One: The Sea</h1>\
                     <p>{one} The wind comes off the water all afternoon, and the gulls ride \
                     it without a single beat of their wings.</p>\
                     <p>Mara has kept the light on Gull Point for eleven winters. She knows \
                     the hour by the colour of the waves and the tide by the sound of the \
                     shingle.</p>\
                     <p>Every evening she carries the lamp oil up the tower before the sun \
                     goes down.</p>\
                     <p class=\"next\"><a href=\"c2.xhtml#climb\">{CHAPTER_LINK}</a></p>"
                ),
            ),
        ),
        (
            "OEBPS/text/c2.xhtml",
            chapter(
                "The Stairs",
                &format!(
                    "<h1 id=\"climb\">Chapter Two: The Stairs</h1>\
                     <p>{two} There are one hundred and twelve of them, worn hollow in the \
                     middle by a century of boots.</p>\
                     <p class=\"picture\"><img src=\"../images/gull%20point.png\" \
                     alt=\"The lighthouse on Gull Point at dusk\"/></p>\
                     <p id=\"lamp\">At the top the lens waits under its canvas cover, a \
                     great glass beehive that catches the last of the daylight.</p>\
                     <p>She trims the wick, fills the reservoir and winds the clockwork that \
                     turns the lens once every thirty seconds.</p>"
                ),
            ),
        ),
        (
            "OEBPS/text/c3.xhtml",
            chapter(
                "Darkness",
                &format!(
                    "<h1>Chapter Three: Darkness</h1>\
                     <p>{three} At a quarter past two the beam falters, flickers twice and \
                     is gone. Out on the water a fishing boat is still making for the \
                     harbour.</p>\
                     <p>Mara is already on her feet with the spare wick in her hand.</p>"
                ),
            ),
        ),
        (
            "OEBPS/css/book.css",
            b"h1 { font-size: 1.6em; color: #2b4a6b; font-variant: small-caps; }\n\
              p { margin: 0 0 .6em; }\n\
              p.picture { text-align: center; }\n\
              p.next { margin-top: 1.2em; font-style: italic; }\n"
                .to_vec(),
        ),
        ("OEBPS/images/gull point.png", gull_point_png()),
    ];
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("mimetype", stored).unwrap();
    w.write_all(b"application/epub+zip").unwrap();
    for (name, bytes) in entries {
        w.start_file(name, deflated).unwrap();
        w.write_all(&bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Chapter 2's illustration: a striped lighthouse at dusk, its beam over the sea.
fn gull_point_png() -> Vec<u8> {
    let (w, h) = (IMAGE_WIDTH, IMAGE_WIDTH * 9 / 16);
    let mix = |a: [f32; 3], b: [f32; 3], t: f32| {
        image::Rgb([0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * t.clamp(0.0, 1.0)) as u8))
    };
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let horizon = 0.66;
        let tower = (fy - 0.24) / (horizon - 0.24);
        if (0.0..=1.0).contains(&tower) && (fx - 0.72).abs() < 0.03 + 0.02 * tower {
            return if ((tower * 6.0) as u32).is_multiple_of(2) {
                image::Rgb([190, 45, 45])
            } else {
                image::Rgb([238, 236, 228])
            };
        }
        if (0.16..0.24).contains(&fy) && (fx - 0.72).abs() < 0.028 {
            return image::Rgb([255, 226, 120]);
        }
        if fy < horizon {
            let sky = mix([28.0, 36.0, 84.0], [238.0, 150.0, 96.0], fy / horizon);
            let beam = fx < 0.72 && (fy - 0.2).abs() < (0.72 - fx) * 0.22;
            return if beam {
                mix(sky.0.map(f32::from), [255.0, 244.0, 190.0], 0.55)
            } else {
                sky
            };
        }
        let depth = (fy - horizon) / (1.0 - horizon);
        let wave = ((fx * 40.0 + depth * 25.0).sin() * (depth * 60.0).sin()).abs() > 0.92;
        mix(
            [36.0, 84.0, 104.0],
            [12.0, 30.0, 44.0],
            depth + if wave { -0.3 } else { 0.0 },
        )
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory of the Playwright script, with `playwright-core` installed in it, or a
/// failure saying how to install it.
fn e2e_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let installed = dir.join("node_modules/playwright-core/package.json");
    let version = std::fs::read_to_string(&installed).ok().and_then(|s| {
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        Some(v["version"].as_str()?.to_owned())
    });
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
    let wanted = lock["packages"]["node_modules/playwright-core"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    if version.as_deref() != Some(wanted.as_str()) {
        panic!(
            "playwright-core {wanted} is not installed in crates/reader/tests/e2e/node_modules \
             (found: {}): run scripts/test.sh, or `npm ci --prefix crates/reader/tests/e2e` \
             (npm comes with Node.js 20 or newer)",
            version.as_deref().unwrap_or("none")
        );
    }
    dir
}

/// `node`, at least version 20 (what playwright-core needs), or a failure naming it.
fn node() -> PathBuf {
    let node = peer::require("node", "nodejs");
    let out = Command::new(&node).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version} is too old for playwright-core: install Node.js 20 or newer"
    );
    node
}

#[test]
fn playwright_web_ui_end_to_end() {
    let node = node();
    let chromium = peer::require("chromium", "chromium");
    let e2e = e2e_dir();

    // The demo library (two PDFs, an English TXT, a UTF-8 and a GBK Chinese TXT) and a
    // generated EPUB 3 whose word "stairs" is only in chapter 2.
    let s = Server::start_with(&[("Lighthouse.epub", lighthouse_epub())], |c| c.demo = true);
    let accounts = s.lib.accounts();
    assert!(accounts.create(USER, PASSWORD).unwrap());
    assert!(accounts.set_admin(USER, true).unwrap());
    assert!(
        s.lib.wait_indexed(Duration::from_secs(300)),
        "the full-text indexer hung"
    );

    let upload = s.dir.path().join("Harbour Log.txt");
    std::fs::write(
        &upload,
        "Boats come in at dusk.\nThe harbour log records each one.\n",
    )
    .unwrap();
    let shots = match std::env::var_os("SOCKIT_SCREENSHOTS_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => s.dir.path().join("screenshots"),
    };
    // Titles as the grid shows them: names A→Z case-insensitively, then Han by code point;
    // by author, books without one last in either direction.
    let by_title = [
        "alice",
        "Socket Programming Notes",
        "The Lighthouse Keeper",
        "The Network Reader",
        "山庙故事",
        "庙里的故事-GBK",
    ];
    let config = serde_json::json!({
        "base": format!("http://{}", s.http),
        "user": USER,
        "password": PASSWORD,
        "chromium": chromium,
        "upload": upload,
        "shots": shots,
        "failure_shot": Path::new(env!("CARGO_TARGET_TMPDIR")).join("reader-e2e-failure.png"),
        "expect": {
            "by_title": by_title,
            "by_author": ["The Lighthouse Keeper", "Socket Programming Notes", "The Network Reader",
                          "alice", "山庙故事", "庙里的故事-GBK"],
            "by_author_desc": ["Socket Programming Notes", "The Network Reader", "The Lighthouse Keeper",
                               "alice", "山庙故事", "庙里的故事-GBK"],
            "pdfs_desc": ["The Network Reader", "Socket Programming Notes"],
            "cjk_titles": ["山庙故事", "庙里的故事-GBK"],
            "epub": "The Lighthouse Keeper",
            "epub_chapters": CHAPTERS.len(),
            "chapter_text": CHAPTERS,
            "chapter_link": CHAPTER_LINK,
            "image_width": IMAGE_WIDTH,
            "pdf": "Socket Programming Notes",
            "pdf_pages": 12,
            "txt": "山庙故事",
            "txt_pages": s.lib.book_by_path("山庙故事.txt").unwrap().pages.unwrap(),
            "upload_title": "Harbour Log",
        },
    });
    let config_file = s.dir.path().join("e2e.json");
    std::fs::write(&config_file, serde_json::to_vec(&config).unwrap()).unwrap();

    let out = Command::new(node)
        .arg(e2e.join("reader.mjs"))
        .arg(&config_file)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the web UI end-to-end script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "web UI end to end: ok"
    );

    // What the browser did is what the server holds: the upload deleted again, the edit
    // kept in the catalog, the last positions of the signed-in account.
    assert!(s.lib.book_by_path("Harbour Log.txt").is_err());
    assert!(!s.books.join("Harbour Log.txt").exists());
    let txt = s.lib.book_by_path("山庙故事.txt").unwrap();
    assert_eq!(txt.title, "Mountain Temple Tales");
    let auth = {
        use base64::Engine as _;
        let pair = format!("{USER}:{PASSWORD}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    for (path, page) in [
        ("Lighthouse.epub", 2),
        ("山庙故事.txt", 2),
        ("Socket Programming Notes.pdf", 5),
    ] {
        let url = format!("/api/books/{}/progress", s.id(path));
        let r = s.req("GET", &url, &[("Authorization", &auth)], b"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!((r.status, &v["page"]), (200, &page.into()), "{path}: {v}");
    }
    for name in SHOTS {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((img.width(), img.height()), (1200, 800), "{name}");
    }
}
