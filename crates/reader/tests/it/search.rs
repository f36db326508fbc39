//! Full-text search through the JSON API, OPDS 1.2 (OpenSearch) and OPDS 2.0: a word only
//! in chapter 2 of an EPUB and one only on page 3 of a PDF, a CJK word in GBK and UTF-8 TXT
//! books, metadata and text matches in one list, an index that survives a restart and
//! follows a removed book, and TXT downloads typed with their detected charset.

use crate::common;

use std::time::Duration;

use common::Server;
use quick_xml::events::Event;
use serde_json::Value;
use sockit_reader::demo;

/// A generous hang guard for the background indexer (not a timing bound).
const HANG: Duration = Duration::from_secs(300);

fn hits(s: &Server, q: &str) -> Vec<serde_json::Value> {
    assert!(s.lib.wait_indexed(HANG), "indexer hung");
    let v = s.json(&format!("/api/search?q={q}"));
    v["hits"].as_array().unwrap().clone()
}

#[test]
fn finds_epub_chapters_cjk_txt_and_follows_the_catalog() {
    let zh = "从前有一座山，山里有一座庙，庙里有个老和尚。\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(zh);
    let s = Server::start(&[
        ("keeper.epub", crate::epub::epub3()),
        ("gbk.txt", gbk.into_owned()),
        ("utf8.txt", "第二本书：老和尚讲故事。\n".as_bytes().to_vec()),
    ]);
    let epub = s.id("keeper.epub");
    let found = hits(&s, "lighthouse");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["book"], epub);
    assert_eq!(
        (found[0]["unit"].as_str(), found[0]["location"].as_u64()),
        (Some("chapter"), Some(2))
    );
    assert!(found[0]["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>lighthouse</mark>"));

    let q = "%E8%80%81%E5%92%8C%E5%B0%9A"; // 老和尚
    let mut books: Vec<i64> = hits(&s, q)
        .iter()
        .map(|h| h["book"].as_i64().unwrap())
        .collect();
    books.sort();
    let mut want = vec![s.id("gbk.txt"), s.id("utf8.txt")];
    want.sort();
    assert_eq!(books, want);

    let r = s.get(&format!("/api/books/{}/file", s.id("gbk.txt")));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=gbk"));

    std::fs::remove_file(s.books.join("utf8.txt")).unwrap();
    s.lib.rescan().unwrap();
    assert_eq!(hits(&s, q).len(), 1, "the removed book is no longer found");
    let s = s.restart();
    let after = hits(&s, q);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["book"], s.id("gbk.txt"));
    assert_eq!(
        hits(&s, "lighthouse").len(),
        1,
        "the index survived the restart"
    );
}

/// A PDF whose page 3 alone says "zeppelin".
fn atlas_pdf() -> Vec<u8> {
    demo::make_pdf_pages(
        "Atlas of Winds",
        "A. Cartographer",
        &[
            &["calm seas"],
            &["trade winds"],
            &["the zeppelin drifts north"],
            &["doldrums"],
        ],
    )
}

/// The `template` of the OpenSearch description's `Url` of media type `ty`.
fn opensearch_template(s: &Server, ty: &str) -> String {
    let r = s.get("/opds/opensearch.xml");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/opensearchdescription+xml")
    );
    let mut reader = quick_xml::Reader::from_reader(&r.body[..]);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).expect("OpenSearch is XML") {
            Event::Eof => panic!("no Url of type {ty}"),
            Event::Start(e) | Event::Empty(e) if e.name().0 == "Url" => {
                let attr = |k: &str| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.0 == k)
                        .map(|a| a.value.to_string())
                };
                if attr("type").as_deref() == Some(ty) {
                    return attr("template").expect("a template");
                }
            }
            _ => {}
        }
        buf.clear();
    }
}

/// The books of an OPDS 1.2 search for `word` through the OpenSearch template: the id of
/// each entry's acquisition link, with its web reader link (`/#/read/ID/N`) if any.
fn opds1_search(s: &Server, word: &str) -> Vec<(i64, Option<String>)> {
    let root = crate::opds::parse(&s.get("/opds").body);
    let search = root
        .links
        .iter()
        .find(|l| l.rel == "search" && !l.in_entry)
        .expect("the root feed links its search");
    assert_eq!(search.ty, "application/opensearchdescription+xml");
    assert_eq!(search.href, "/opds/opensearch.xml");
    let template = opensearch_template(
        s,
        "application/atom+xml;profile=opds-catalog;kind=acquisition",
    );
    assert!(template.contains("{searchTerms}"), "{template}");
    let r = s.get(&template.replace("{searchTerms}", word));
    assert_eq!(r.status, 200);
    let feed = crate::opds::parse(&r.body);
    let mut out: Vec<(i64, Option<String>)> = Vec::new();
    for l in feed.links.iter().filter(|l| l.in_entry) {
        if l.rel == "http://opds-spec.org/acquisition" {
            let id = l
                .href
                .strip_prefix("/api/books/")
                .and_then(|r| r.strip_suffix("/file"))
                .unwrap()
                .parse()
                .unwrap();
            out.push((id, None));
        }
        if l.rel == "alternate" && l.ty == "text/html" {
            out.last_mut().expect("an entry").1 = Some(l.href.clone());
        }
    }
    assert_eq!(out.len(), feed.entries, "one acquisition link per entry");
    out
}

/// The publications of an OPDS 2.0 search for `word` through the root feed's template.
fn opds2_search(s: &Server, word: &str) -> Vec<Value> {
    let r = s.get("/opds/v2");
    assert_eq!(r.header("content-type"), Some("application/opds+json"));
    let root: Value = serde_json::from_slice(&r.body).unwrap();
    let search = root["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "search")
        .expect("a search link")
        .clone();
    assert_eq!(search["templated"], true);
    assert_eq!(search["type"], "application/opds+json");
    let href = search["href"]
        .as_str()
        .unwrap()
        .replace("{?query}", &format!("?query={word}"));
    let r = s.get(&href);
    assert_eq!(r.status, 200, "{href}");
    assert_eq!(r.header("content-type"), Some("application/opds+json"));
    let feed: Value = serde_json::from_slice(&r.body).unwrap();
    let pubs = feed["publications"]
        .as_array()
        .cloned()
        .expect("publications");
    assert_eq!(feed["metadata"]["numberOfItems"], pubs.len());
    pubs
}

/// The acquisition link's book id and the web reader link of an OPDS 2.0 publication.
fn opds2_book(p: &Value) -> (i64, Option<String>) {
    let links = p["links"].as_array().unwrap();
    let acq = links
        .iter()
        .find(|l| l["rel"] == "http://opds-spec.org/acquisition")
        .unwrap();
    let id = acq["href"]
        .as_str()
        .unwrap()
        .strip_prefix("/api/books/")
        .and_then(|r| r.strip_suffix("/file"))
        .unwrap()
        .parse()
        .unwrap();
    let alt = links
        .iter()
        .find(|l| l["rel"] == "alternate" && l["type"] == "text/html")
        .map(|l| l["href"].as_str().unwrap().to_owned());
    (id, alt)
}

#[test]
fn a_word_of_epub_chapter_2_and_of_pdf_page_3_is_found_by_the_api_and_both_opds() {
    let s = Server::start(&[
        ("keeper.epub", crate::epub::epub3()),
        ("atlas.pdf", atlas_pdf()),
        ("notes.txt", b"the keeper was here\n".to_vec()),
    ]);
    let (epub, pdf) = (s.id("keeper.epub"), s.id("atlas.pdf"));

    // The JSON API: the section, its unit and a snippet.
    let found = hits(&s, "stairs");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["book"], epub);
    assert_eq!(
        (found[0]["unit"].as_str(), found[0]["location"].as_u64()),
        (Some("chapter"), Some(2))
    );
    let found = hits(&s, "zeppelin");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["book"], pdf);
    assert_eq!(
        (found[0]["unit"].as_str(), found[0]["location"].as_u64()),
        (Some("page"), Some(3))
    );
    assert_eq!(found[0]["author"], "A. Cartographer");
    assert!(found[0]["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>zeppelin</mark>"));
    assert!(hits(&s, "xylophone").is_empty());

    // OPDS 1.2 through the OpenSearch description the root feed links.
    let epub_link = format!("/#/read/{epub}/2");
    let pdf_link = format!("/#/read/{pdf}/3");
    assert_eq!(
        opds1_search(&s, "stairs"),
        [(epub, Some(epub_link.clone()))]
    );
    assert_eq!(
        opds1_search(&s, "zeppelin"),
        [(pdf, Some(pdf_link.clone()))]
    );
    assert!(opds1_search(&s, "xylophone").is_empty());
    // Title and file name matches come first (with their text match, if any), then the
    // books only the text matches; each book once.
    let notes = s.id("notes.txt");
    assert_eq!(opds1_search(&s, "notes"), [(notes, None)]);
    assert_eq!(
        opds1_search(&s, "keeper"),
        [
            (epub, Some(epub_link.clone())),
            (notes, Some(format!("/#/read/{notes}/1")))
        ]
    );
    // The web reader link opens the page.
    let r = s.get(&pdf_link);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    // OPDS 2.0 through the root feed's search template.
    let stairs: Vec<_> = opds2_search(&s, "stairs").iter().map(opds2_book).collect();
    assert_eq!(stairs, [(epub, Some(epub_link))]);
    let zeppelin = opds2_search(&s, "zeppelin");
    assert_eq!(
        zeppelin.iter().map(opds2_book).collect::<Vec<_>>(),
        [(pdf, Some(pdf_link))]
    );
    assert_eq!(zeppelin[0]["metadata"]["title"], "Atlas of Winds");
    assert_eq!(
        zeppelin[0]["metadata"]["author"][0]["name"],
        "A. Cartographer"
    );
    assert!(opds2_search(&s, "xylophone").is_empty());
    // The OpenSearch description also offers the OPDS 2.0 search.
    let t = opensearch_template(&s, "application/opds+json");
    let r = s.get(&t.replace("{searchTerms}", "zeppelin"));
    let feed: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(feed["publications"].as_array().unwrap().len(), 1);
}
