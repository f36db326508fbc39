//! The library phase of `sockit lab bench reader`: a generated library of many books.
//!
//! Writes `books` books into a fresh books root (four in ten TXT — one in four of those in
//! Chinese —, three in ten EPUB with three chapters, three in ten two-page PDFs), each with
//! its own title, one of a few hundred authors and a word found in no other book. Then it
//! measures, over loopback against the in-process HTTP server:
//!
//! * the catalog scan (`Library::open` of the new root) and the time until the full-text
//!   index holds every book;
//! * the library's first page (`/api/books?page=1`, by title, author and date added in
//!   turn) and its last page by title (deep `OFFSET`);
//! * full-text search for a word of one book, for a word of every English book, and for a
//!   Chinese word (bigrams);
//! * EPUB chapters (sanitized XHTML), each book's chapters requested once.
//!
//! Every answer is checked (the book count, a hit for every rare word), so a fast wrong
//! answer fails the run instead of flattering it.

use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use sockit_reader::{Library, ReaderConfig};

use super::{hist, io_err, record, BenchError, Conn, InProcess, Latency};

/// Longest the full-text indexer may take to catch up before the run fails.
const INDEX_LIMIT: Duration = Duration::from_secs(3600);
/// Words of the shared English vocabulary.
const VOCABULARY: usize = 2_000;
/// Authors the books are spread over.
const AUTHORS: usize = 300;
/// The word every Chinese book holds.
const CJK_WORD: &str = "灯塔";

/// What the library phase measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryReport {
    /// Books in the library.
    pub books: usize,
    /// TXT, EPUB and PDF books among them.
    pub txt: usize,
    /// EPUB books.
    pub epub: usize,
    /// PDF books.
    pub pdf: usize,
    /// Bytes of all the book files.
    pub bytes: u64,
    /// Requests per measurement.
    pub requests: usize,
    /// The first catalog scan, seconds.
    pub scan_s: f64,
    /// Books cataloged per second by that scan.
    pub scan_books_per_s: f64,
    /// From the end of the scan until every book is in the full-text index, seconds.
    pub index_s: f64,
    /// The library's first page, by title, author and date added in turn.
    pub first_page: Latency,
    /// The library's last page by title.
    pub last_page: Latency,
    /// Search for a word only one book holds.
    pub search_rare: Latency,
    /// Search for a word every English book holds.
    pub search_common: Latency,
    /// Search for a Chinese word.
    pub search_cjk: Latency,
    /// EPUB chapters, each requested once.
    pub chapter: Latency,
}

/// The kind of the `i`-th generated book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Txt,
    ChineseTxt,
    Epub,
    Pdf,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::ChineseTxt,
        1..=3 => Kind::Txt,
        4..=6 => Kind::Epub,
        _ => Kind::Pdf,
    }
}

/// A small deterministic generator (xorshift64*), so every run builds the same library.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Letters only, so every tokenizer keeps the word whole.
fn letters(mut n: usize, len: usize) -> String {
    let mut s = vec![b'a'; len];
    for b in s.iter_mut().rev() {
        *b = b'a' + (n % 26) as u8;
        n /= 26;
    }
    String::from_utf8(s).unwrap_or_default()
}

/// The `i`-th word of the shared vocabulary ("ba" + three letters).
fn common_word(i: usize) -> String {
    format!("ba{}", letters(i % VOCABULARY, 3))
}

/// The word only book `i` holds ("qz" + five letters).
fn rare_word(i: usize) -> String {
    format!("qz{}", letters(i, 5))
}

fn title(i: usize) -> String {
    const FIRST: [&str; 8] = [
        "Silent", "Northern", "Hidden", "Last", "Golden", "Winter", "Broken", "Distant",
    ];
    const SECOND: [&str; 8] = [
        "Harbour", "Garden", "Letters", "River", "Archive", "Lantern", "Voyage", "Orchard",
    ];
    format!("{} {} {i:05}", FIRST[i % 8], SECOND[(i / 8) % 8])
}

fn author(i: usize) -> String {
    format!("Author {:03}", (i * 7919) % AUTHORS)
}

/// About `words` words of the shared vocabulary with the book's own word in the middle.
fn english_text(rng: &mut Rng, words: usize, own: &str) -> String {
    let mut s = String::with_capacity(words * 7);
    for w in 0..words {
        if w == words / 2 {
            s.push_str(own);
        } else {
            s.push_str(&common_word(rng.below(VOCABULARY)));
        }
        s.push(if w % 12 == 11 { '\n' } else { ' ' });
    }
    s
}

fn chinese_text(i: usize) -> String {
    let mut s = sockit_reader::demo::sample_chinese(12);
    s.push_str(&format!("{CJK_WORD}看守人的第{i}本书。{}\n", rare_word(i)));
    s.push_str(&sockit_reader::demo::sample_chinese(12));
    s
}

const CONTAINER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#;

/// An EPUB 3 book of three chapters; the book's own word is in chapter 2.
fn epub(i: usize, rng: &mut Rng) -> Result<Vec<u8>, BenchError> {
    let zip_err = |e: zip::result::ZipError| BenchError::Io {
        what: "building an EPUB".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let opf = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:sockit-bench:{i}</dc:identifier>
    <dc:title>{}</dc:title><dc:creator>{}</dc:creator><dc:language>en</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/>
    <item id="c3" href="c3.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="c3"/></spine>
</package>"#,
        title(i),
        author(i)
    );
    let nav = r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head>
<body><nav epub:type="toc"><ol><li><a href="c1.xhtml">One</a></li><li><a href="c2.xhtml">Two</a></li><li><a href="c3.xhtml">Three</a></li></ol></nav></body></html>"#;
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut add = |name: &str, bytes: &[u8], opts| -> Result<(), BenchError> {
        w.start_file(name, opts).map_err(zip_err)?;
        w.write_all(bytes).map_err(io_err("building an EPUB"))
    };
    add("mimetype", b"application/epub+zip", stored)?;
    add("META-INF/container.xml", CONTAINER.as_bytes(), deflated)?;
    add("OEBPS/content.opf", opf.as_bytes(), deflated)?;
    add("OEBPS/nav.xhtml", nav.as_bytes(), deflated)?;
    for c in 1..=3 {
        let own = if c == 2 { rare_word(i) } else { common_word(0) };
        let paragraphs: String = (0..6)
            .map(|p| {
                let words = english_text(rng, 60, if p == 3 { &own } else { "baaaa" });
                format!("<p>{words}</p>")
            })
            .collect();
        let xhtml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Chapter {c}</title></head>
<body><h1>Chapter {c}</h1>{paragraphs}</body></html>"#
        );
        add(&format!("OEBPS/c{c}.xhtml"), xhtml.as_bytes(), deflated)?;
    }
    Ok(w.finish().map_err(zip_err)?.into_inner())
}

/// The file name and bytes of book `i`.
fn book(i: usize, rng: &mut Rng) -> Result<(String, Vec<u8>), BenchError> {
    let stem = format!("{:03}/{}", i / 500, title(i).replace(' ', "_"));
    Ok(match kind(i) {
        Kind::Txt => (
            format!("{stem}.txt"),
            english_text(rng, 400, &rare_word(i)).into_bytes(),
        ),
        Kind::ChineseTxt => (format!("{stem}.txt"), chinese_text(i).into_bytes()),
        Kind::Epub => (format!("{stem}.epub"), epub(i, rng)?),
        Kind::Pdf => {
            let line = english_text(rng, 10, &rare_word(i));
            let body = [
                line.trim_end(),
                "A generated page of the library benchmark.",
            ];
            (
                format!("{stem}.pdf"),
                sockit_reader::demo::make_pdf(&title(i), &author(i), 2, &body),
            )
        }
    })
}

/// Writes the library into `books_dir`; the total bytes.
fn write_library(books_dir: &Path, books: usize) -> Result<u64, BenchError> {
    let mut rng = Rng(0x5eed_b00c);
    let mut bytes = 0u64;
    for i in 0..books {
        let (name, data) = book(i, &mut rng)?;
        let path = books_dir.join(&name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("creating a books folder"))?;
        }
        std::fs::write(&path, &data).map_err(io_err(format!("writing {name}")))?;
        bytes += data.len() as u64;
    }
    Ok(bytes)
}

/// Builds a library of `books` books in a temporary root, serves it on `127.0.0.1:0` and
/// measures it with `requests` requests per measurement.
///
/// # Errors
/// Writing the books, opening the library, indexing within an hour, or any request
/// failed or answered wrongly.
pub async fn run(books: usize, requests: usize) -> Result<LibraryReport, BenchError> {
    let books = books.max(1);
    let requests = requests.max(1);
    let dir = tempfile::tempdir().map_err(io_err("temporary directory"))?;
    let mut cfg = ReaderConfig::for_root(dir.path());
    cfg.rescan_interval = Duration::from_secs(3600);
    std::fs::create_dir_all(&cfg.books_dir).map_err(io_err("books directory"))?;
    let books_dir = cfg.books_dir.clone();
    let bytes = tokio::task::spawn_blocking(move || write_library(&books_dir, books))
        .await
        .map_err(|e| BenchError::Io {
            what: "writing the library".into(),
            source: std::io::Error::other(e.to_string()),
        })??;

    let t = Instant::now();
    let lib = tokio::task::spawn_blocking(move || Library::open(cfg))
        .await
        .map_err(|e| BenchError::Io {
            what: "opening the library".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let scan_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let waiter = Arc::clone(&lib);
    let indexed = tokio::task::spawn_blocking(move || waiter.wait_indexed(INDEX_LIMIT))
        .await
        .unwrap_or(false);
    if !indexed {
        return Err(BenchError::Request {
            path: "full-text index".into(),
            message: format!("not caught up within {INDEX_LIMIT:?}"),
        });
    }
    let index_s = t.elapsed().as_secs_f64();

    let mut epub_ids = Vec::new();
    let mut rng = Rng(0x5eed_b00c);
    for i in 0..books {
        if kind(i) == Kind::Epub {
            let (name, _) = book(i, &mut rng)?;
            epub_ids.push(lib.book_by_path(&name)?.id);
        } else {
            // Keep the generator in step with write_library.
            book(i, &mut rng)?;
        }
    }

    let server = InProcess::start(&lib).await?;
    let measured = measure(server.addr, books, requests, &epub_ids).await;
    server.stop().await;
    let [first_page, last_page, search_rare, search_common, search_cjk, chapter] = measured?;

    let count = |k: &[Kind]| (0..books).filter(|&i| k.contains(&kind(i))).count();
    Ok(LibraryReport {
        books,
        txt: count(&[Kind::Txt, Kind::ChineseTxt]),
        epub: count(&[Kind::Epub]),
        pdf: count(&[Kind::Pdf]),
        bytes,
        requests,
        scan_s,
        scan_books_per_s: books as f64 / scan_s.max(1e-9),
        index_s,
        first_page,
        last_page,
        search_rare,
        search_common,
        search_cjk,
        chapter,
    })
}

/// Percent-encodes a query value (the words here are ASCII letters or CJK).
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn json(path: &str, body: &[u8]) -> Result<serde_json::Value, BenchError> {
    serde_json::from_slice(body).map_err(|e| BenchError::Request {
        path: path.to_owned(),
        message: format!("not JSON: {e}"),
    })
}

fn wrong(path: &str, message: String) -> BenchError {
    BenchError::Request {
        path: path.to_owned(),
        message,
    }
}

async fn measure(
    addr: std::net::SocketAddr,
    books: usize,
    requests: usize,
    epub_ids: &[i64],
) -> Result<[Latency; 6], BenchError> {
    let mut conn = Conn::new(addr);
    // Open the connection and learn the page size outside the measurements.
    let first = json("/api/books", &conn.get("/api/books").await?)?;
    let per_page = first["per_page"].as_u64().unwrap_or(1).max(1);
    let total = first["total"].as_u64().unwrap_or(0);
    if total != books as u64 {
        return Err(wrong(
            "/api/books",
            format!("{total} books cataloged of {books}"),
        ));
    }
    let last = (books as u64).div_ceil(per_page);

    let timed = |h: &mut hdrhistogram::Histogram<u64>, t: Instant| record(h, t.elapsed());
    let mut first_page = hist();
    for r in 0..requests {
        let sort = ["title", "author", "added"][r % 3];
        let path = format!("/api/books?sort={sort}&page=1");
        let t = Instant::now();
        let body = conn.get(&path).await?;
        timed(&mut first_page, t);
        let n = json(&path, &body)?["books"].as_array().map_or(0, Vec::len);
        if n as u64 != per_page.min(books as u64) {
            return Err(wrong(&path, format!("{n} books on the first page")));
        }
    }
    let mut last_page = hist();
    for _ in 0..requests {
        let path = format!("/api/books?sort=title&page={last}");
        let t = Instant::now();
        let body = conn.get(&path).await?;
        timed(&mut last_page, t);
        if json(&path, &body)?["books"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            return Err(wrong(&path, "the last page is empty".into()));
        }
    }

    let mut rng = Rng(0xfeed_5eed);
    let mut search_rare = hist();
    for _ in 0..requests {
        let i = rng.below(books);
        let path = format!("/api/search?q={}", encode(&rare_word(i)));
        let t = Instant::now();
        let body = conn.get(&path).await?;
        timed(&mut search_rare, t);
        let hits = json(&path, &body)?["total"].as_u64().unwrap_or(0);
        if hits == 0 {
            return Err(wrong(&path, format!("no hit for the word of book {i}")));
        }
    }
    let mut search_common = hist();
    for _ in 0..requests {
        let path = format!(
            "/api/search?q={}",
            encode(&common_word(rng.below(VOCABULARY)))
        );
        let t = Instant::now();
        conn.get(&path).await?;
        timed(&mut search_common, t);
    }
    let mut search_cjk = hist();
    let cjk_books = (0..books).filter(|&i| kind(i) == Kind::ChineseTxt).count();
    for _ in 0..requests {
        let path = format!("/api/search?q={}", encode(CJK_WORD));
        let t = Instant::now();
        let body = conn.get(&path).await?;
        timed(&mut search_cjk, t);
        let hits = json(&path, &body)?["total"].as_u64().unwrap_or(0);
        if cjk_books > 0 && hits == 0 {
            return Err(wrong(&path, "no hit for the Chinese word".into()));
        }
    }

    let mut chapter = hist();
    for (r, id) in epub_ids.iter().cycle().take(requests).enumerate() {
        let n = (r / epub_ids.len().max(1)) % 3 + 1;
        let path = format!("/api/books/{id}/chapter/{n}");
        let t = Instant::now();
        conn.get(&path).await?;
        timed(&mut chapter, t);
    }
    Ok([
        Latency::from_hist(&first_page),
        Latency::from_hist(&last_page),
        Latency::from_hist(&search_rare),
        Latency::from_hist(&search_common),
        Latency::from_hist(&search_cjk),
        Latency::from_hist(&chapter),
    ])
}

/// The report as a markdown section.
pub fn markdown(r: &LibraryReport) -> String {
    let row = |what: &str, l: &Latency| {
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} |\n",
            l.count, l.p50_ms, l.p99_ms, l.max_ms
        )
    };
    let mut s = format!(
        "## Library of {} books\n\n\
         {} TXT (one in four in Chinese), {} EPUB (three chapters), {} PDF (two pages); \
         {:.1} MiB. First catalog scan: **{:.2} s** ({:.0} books/s); full-text index caught \
         up {:.2} s later. {} requests per row, one keep-alive connection.\n\n\
         | measurement | requests | p50 ms | p99 ms | max ms |\n\
         |---|---:|---:|---:|---:|\n",
        r.books,
        r.txt,
        r.epub,
        r.pdf,
        r.bytes as f64 / (1u64 << 20) as f64,
        r.scan_s,
        r.scan_books_per_s,
        r.index_s,
        r.requests,
    );
    s.push_str(&row(
        "library, first page (title / author / added)",
        &r.first_page,
    ));
    s.push_str(&row("library, last page by title", &r.last_page));
    s.push_str(&row("search, a word of one book", &r.search_rare));
    s.push_str(&row(
        "search, a word of every English book",
        &r.search_common,
    ));
    s.push_str(&row(
        &format!("search, Chinese word {CJK_WORD}"),
        &r.search_cjk,
    ));
    s.push_str(&row("EPUB chapter (sanitized XHTML)", &r.chapter));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_words_are_distinct_letters() {
        assert_eq!(rare_word(0), "qzaaaaa");
        assert_eq!(rare_word(27), "qzaaabb");
        assert_ne!(rare_word(9_999), rare_word(9_998));
        assert!(common_word(1_999).chars().all(|c| c.is_ascii_lowercase()));
        assert!(!common_word(5).starts_with("qz"));
    }

    #[test]
    fn kinds_follow_the_stated_mix() {
        let n = 1_000;
        let count = |k| (0..n).filter(|&i| kind(i) == k).count();
        assert_eq!(count(Kind::ChineseTxt), 100);
        assert_eq!(count(Kind::Txt), 300);
        assert_eq!(count(Kind::Epub), 300);
        assert_eq!(count(Kind::Pdf), 300);
    }
}
