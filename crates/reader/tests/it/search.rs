//! Full-text search through the JSON API: a word only in chapter 2 of an EPUB, a CJK
//! word in GBK and UTF-8 TXT books, an index that survives a restart and follows a
//! removed book, and TXT downloads typed with their detected charset.

use crate::common;

use std::time::Duration;

use common::Server;

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
