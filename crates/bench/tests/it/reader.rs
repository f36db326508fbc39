//! A tiny run of the reader benchmark (`sockit lab bench reader`): every phase measures
//! what it says, percentiles are ordered, the report has every row. Whether a cached page
//! beats a render is what the benchmark's output shows, not something a test asserts.

use std::time::Duration;

use sockit_bench::reader::{run, BenchConfig};

#[test]
fn tiny_reader_bench() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = BenchConfig {
        pages: 5,
        readers: 5,
        duration: Duration::from_secs(1),
        library_books: 40,
        library_requests: 6,
        out_dir: None,
        ..BenchConfig::default()
    };
    let r = rt.block_on(run(&config)).unwrap();
    assert_eq!(r.pdf_pages, 5);
    assert!(r.txt_pages > 0);
    for (what, l) in [
        ("pdf cold", &r.pdf_cold),
        ("pdf cached", &r.pdf_cached),
        ("txt", &r.txt),
        ("concurrent", &r.concurrent.latency),
    ] {
        assert!(l.count > 0, "{what}: no requests");
        assert!(
            l.p50_ms <= l.p99_ms,
            "{what}: p50 {} > p99 {}",
            l.p50_ms,
            l.p99_ms
        );
        assert!(l.p99_ms <= l.max_ms + 0.01, "{what}: p99 > max");
    }
    assert_eq!(r.pdf_cold.count, 5);
    assert_eq!(r.pdf_cached.count, 5);
    assert_eq!(r.txt.count, r.txt_pages);
    assert_eq!(r.concurrent.readers, 5);
    assert!(r.concurrent.pages > 0 && r.concurrent.pages_per_s > 0.0);
    // The library phase checks its own answers (every book cataloged, a hit for every
    // word searched for); here it ran every measurement with every book kind.
    let lib = r.library.as_ref().expect("the library phase ran");
    assert_eq!(lib.books, 40);
    assert_eq!((lib.txt, lib.epub, lib.pdf), (16, 12, 12));
    for (what, l) in [
        ("first page", &lib.first_page),
        ("last page", &lib.last_page),
        ("search rare", &lib.search_rare),
        ("search common", &lib.search_common),
        ("search cjk", &lib.search_cjk),
        ("chapter", &lib.chapter),
    ] {
        assert_eq!(l.count, 6, "{what}");
        assert!(l.p50_ms <= l.p99_ms, "{what}");
    }
    for row in [
        "| PDF page, cold (render after clearing the cache) | 5 |",
        "| PDF page, cached (second request) | 5 |",
        "| 5 concurrent readers (half PDF, half TXT) |",
        "## Library of 40 books",
        "| search, a word of one book | 6 |",
        "| EPUB chapter (sanitized XHTML) | 6 |",
    ] {
        assert!(
            r.markdown.contains(row),
            "{row} missing from:\n{}",
            r.markdown
        );
    }
}

#[test]
fn writes_json_and_markdown() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let config = BenchConfig {
        pages: 2,
        readers: 2,
        duration: Duration::from_millis(200),
        library_books: 0,
        out_dir: Some(out.path().to_owned()),
        ..BenchConfig::default()
    };
    let r = rt.block_on(run(&config)).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("reader.json")).unwrap()).unwrap();
    assert_eq!(json["pdf_pages"], 2);
    assert!(json["library"].is_null(), "--library 0 skips the phase");
    assert!(json["concurrent"]["pages_per_s"].as_f64().unwrap() > 0.0);
    let md = std::fs::read_to_string(out.path().join("reader.md")).unwrap();
    assert_eq!(md, r.markdown);
}
