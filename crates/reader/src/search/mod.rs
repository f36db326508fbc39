//! Full-text search: a tantivy index of every readable book's text, one document per
//! section (a TXT or PDF page, an EPUB chapter) with the book's id and the location,
//! tokenized by [`tokenizer`] (CJK bigrams, other text by lowercased words). It lives in
//! `STATE/search/v1` (beside the catalog, never in the books root), survives restarts,
//! and is kept in line with the catalog by a background thread ([`indexer`]) that each
//! catalog change wakes: it removes the sections of vanished or changed books and
//! indexes new and changed ones, off the request path.
//!
//! Queries ([`query`]) are words and `"quoted phrases"`, all of which must occur in one
//! section; results are sections by relevance with a highlighted snippet, or books
//! ([`books`]: metadata matches first, then books by their best section), as OPDS
//! search feeds list them.

pub mod books;
pub mod extract;
pub(crate) mod indexer;
pub mod query;
pub mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, PhraseQuery, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, INDEXED, STORED,
    STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use tracing::warn;

use crate::error::{ReaderError, Result};
use extract::Section;

/// The index's directory under the reader's state directory (the version changes when
/// the schema or the tokenizer does: a new version starts a new index).
pub const DIR: &str = "search/v1";
/// Most hits a query returns at once.
pub const MAX_LIMIT: usize = 100;
/// Hits a query returns unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 20;
/// Deepest offset into the hits.
pub const MAX_OFFSET: usize = 10_000;
/// Most sections looked at to find the matching books of a query.
pub const MAX_SCANNED_SECTIONS: usize = 10_000;
/// Characters of context in a snippet.
pub const SNIPPET_CHARS: usize = 200;
/// The indexing writer's memory budget (tantivy's minimum per thread is 15 MB).
const WRITER_BYTES: usize = 24 << 20;

/// The index's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    /// The catalog id (indexed: sections are deleted by it).
    book: Field,
    /// `book` (one marker per indexed book, with its BLAKE3) or `text` (a section).
    kind: Field,
    /// The page or chapter, 1-based.
    loc: Field,
    /// The BLAKE3 the book had when it was indexed (markers only).
    blake3: Field,
    /// The section's text.
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer::NAME)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        book: b.add_i64_field("book", INDEXED | STORED),
        kind: b.add_text_field("kind", STRING),
        loc: b.add_u64_field("loc", STORED),
        blake3: b.add_text_field("blake3", STORED),
        text: b.add_text_field("text", text_opts),
    };
    (b.build(), fields)
}

/// A matching section.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The book's catalog id.
    pub book_id: i64,
    /// The page (TXT, PDF) or chapter (EPUB), 1-based.
    pub location: u64,
    /// Relevance (higher is better).
    pub score: f32,
    /// Text around the match, HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet: String,
}

/// One page of hits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    /// Matching sections in all.
    pub total: usize,
    /// This page of them, best first.
    pub hits: Vec<Hit>,
}

fn err(what: &str, e: tantivy::TantivyError) -> ReaderError {
    warn!(error = %e, "full-text index: {what} failed");
    ReaderError::Worker(format!("{what} (full-text index)"))
}

/// The full-text index of one library.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    path: PathBuf,
    /// Taken by the indexer only (tantivy allows one writer per index, with a lock file).
    writer: Mutex<Option<IndexWriter>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens (creating) the index under `state_dir` ([`DIR`]).
    ///
    /// # Errors
    /// The directory cannot be created or the index opened.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(DIR);
        std::fs::create_dir_all(&path).map_err(|e| ReaderError::io(&path, e))?;
        let (schema, fields) = schema();
        let dir = MmapDirectory::open(&path).map_err(|e| {
            warn!(dir = %path.display(), error = %e, "cannot open the full-text index");
            ReaderError::Worker("opening the full-text index".into())
        })?;
        let index = Index::open_or_create(dir, schema).map_err(|e| err("opening", e))?;
        index
            .tokenizers()
            .register(tokenizer::NAME, tokenizer::CjkTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err("opening a reader", e))?;
        Ok(Self {
            index,
            reader,
            fields,
            path,
            writer: Mutex::new(None),
        })
    }

    /// Where the index lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer (opened on first use; `DirectoryLockBusy` while another
    /// process, or a library being dropped, still holds it).
    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter, Fields) -> Result<T>) -> Result<T> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            let writer = self
                .index
                .writer_with_num_threads(1, WRITER_BYTES)
                .map_err(|e| err("opening the writer", e))?;
            *w = Some(writer);
        }
        match w.as_mut() {
            Some(writer) => f(writer, self.fields),
            None => Err(ReaderError::Worker("opening the full-text writer".into())),
        }
    }

    /// Whether the writer can be opened now (false while another holds the lock).
    pub(crate) fn writer_ready(&self) -> bool {
        self.with_writer(|_, _| Ok(())).is_ok()
    }

    /// The books in the index, with the BLAKE3 each was indexed at.
    ///
    /// # Errors
    /// Index errors.
    pub fn indexed(&self) -> Result<HashMap<i64, String>> {
        let searcher = self.reader.searcher();
        let f = self.fields;
        let q = TermQuery::new(
            Term::from_field_text(f.kind, "book"),
            IndexRecordOption::Basic,
        );
        let docs = searcher
            .search(&q, &DocSetCollector)
            .map_err(|e| err("listing books", e))?;
        let mut out = HashMap::new();
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| err("reading", e))?;
            let id = doc.get_first(f.book).and_then(|v| v.as_i64());
            let hash = doc.get_first(f.blake3).and_then(|v| v.as_str());
            if let (Some(id), Some(hash)) = (id, hash) {
                out.insert(id, hash.to_owned());
            }
        }
        Ok(out)
    }

    /// Replaces a book's sections (and its marker, with `blake3`); visible after
    /// [`SearchIndex::commit`].
    ///
    /// # Errors
    /// Index errors.
    pub fn put(&self, book_id: i64, blake3: &str, sections: &[Section]) -> Result<()> {
        self.with_writer(|w, f| {
            w.delete_term(Term::from_field_i64(f.book, book_id));
            let mut marker = TantivyDocument::default();
            marker.add_i64(f.book, book_id);
            marker.add_text(f.kind, "book");
            marker.add_text(f.blake3, blake3);
            w.add_document(marker).map_err(|e| err("adding", e))?;
            for s in sections {
                let mut doc = TantivyDocument::default();
                doc.add_i64(f.book, book_id);
                doc.add_text(f.kind, "text");
                doc.add_u64(f.loc, s.location);
                doc.add_text(f.text, &s.text);
                w.add_document(doc).map_err(|e| err("adding", e))?;
            }
            Ok(())
        })
    }

    /// Removes a book; visible after [`SearchIndex::commit`].
    ///
    /// # Errors
    /// Index errors.
    pub fn remove(&self, book_id: i64) -> Result<()> {
        self.with_writer(|w, f| {
            w.delete_term(Term::from_field_i64(f.book, book_id));
            Ok(())
        })
    }

    /// Commits the pending changes and makes them visible to searches.
    ///
    /// # Errors
    /// Index errors.
    pub fn commit(&self) -> Result<()> {
        self.with_writer(|w, _| {
            w.commit().map_err(|e| err("committing", e))?;
            Ok(())
        })?;
        self.reader.reload().map_err(|e| err("reloading", e))
    }

    /// Drops the writer (and its lock), waiting for its merges.
    pub(crate) fn close_writer(&self) {
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = w {
            if let Err(e) = w.wait_merging_threads() {
                warn!(error = %e, "full-text index: finishing merges failed");
            }
        }
    }

    /// The tantivy query for `q` (see [`query::parse`]); `None` without any word.
    fn query(&self, q: &str) -> Option<BooleanQuery> {
        let terms = query::parse(q);
        if terms.is_empty() {
            return None;
        }
        let f = self.fields;
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = if t.len() == 1 {
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.text, &t[0].1),
                        IndexRecordOption::WithFreqs,
                    ))
                } else {
                    Box::new(PhraseQuery::new_with_offset(
                        t.iter()
                            .map(|(pos, s)| (*pos, Term::from_field_text(f.text, s)))
                            .collect(),
                    ))
                };
                (Occur::Must, q)
            })
            .collect();
        Some(BooleanQuery::new(clauses))
    }

    /// Sections matching `q` (see [`query::parse`]), best first, `limit` of them from
    /// `offset`. A query without any word finds nothing.
    ///
    /// # Errors
    /// Index errors.
    pub fn search(&self, q: &str, limit: usize, offset: usize) -> Result<Found> {
        let Some(query) = self.query(q) else {
            return Ok(Found::default());
        };
        let f = self.fields;
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.clamp(1, MAX_LIMIT))
            .and_offset(offset.min(MAX_OFFSET))
            .order_by_score();
        let (total, docs) = searcher
            .search(&query, &(Count, top))
            .map_err(|e| err("searching", e))?;
        let snippets = snippet_generator(&searcher, &query, f.text)?;
        let mut hits = Vec::with_capacity(docs.len());
        for (score, addr) in docs {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| err("reading", e))?;
            let (Some(book_id), Some(location)) = (
                doc.get_first(f.book).and_then(|v| v.as_i64()),
                doc.get_first(f.loc).and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            hits.push(Hit {
                book_id,
                location,
                score,
                snippet: snippet_html(&snippets, &doc),
            });
        }
        Ok(Found { total, hits })
    }

    /// The books whose text matches `q`, best first, each once with its best section (at
    /// most `max_books`, among the [`MAX_SCANNED_SECTIONS`] best sections); snippets are
    /// made on demand ([`BookHits::snippet`]).
    ///
    /// # Errors
    /// Index errors.
    pub fn books(&self, q: &str, max_books: usize) -> Result<BookHits> {
        let searcher = self.reader.searcher();
        let Some(query) = self.query(q) else {
            return Ok(BookHits {
                searcher,
                snippets: None,
                fields: self.fields,
                books: Vec::new(),
            });
        };
        let f = self.fields;
        let top = TopDocs::with_limit(MAX_SCANNED_SECTIONS).order_by_score();
        let docs = searcher
            .search(&query, &top)
            .map_err(|e| err("searching", e))?;
        let mut seen = std::collections::HashSet::new();
        let mut books = Vec::new();
        for (score, addr) in docs {
            if books.len() >= max_books {
                break;
            }
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| err("reading", e))?;
            let (Some(book_id), Some(location)) = (
                doc.get_first(f.book).and_then(|v| v.as_i64()),
                doc.get_first(f.loc).and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            if seen.insert(book_id) {
                books.push(BookHit {
                    book_id,
                    location,
                    score,
                    addr,
                });
            }
        }
        let snippets = Some(snippet_generator(&searcher, &query, f.text)?);
        Ok(BookHits {
            searcher,
            snippets,
            fields: f,
            books,
        })
    }
}

fn snippet_generator(
    searcher: &Searcher,
    query: &BooleanQuery,
    field: Field,
) -> Result<SnippetGenerator> {
    let mut g = SnippetGenerator::create(searcher, query, field).map_err(|e| err("snippets", e))?;
    g.set_max_num_chars(SNIPPET_CHARS);
    Ok(g)
}

fn snippet_html(g: &SnippetGenerator, doc: &TantivyDocument) -> String {
    let mut snippet = g.snippet_from_doc(doc);
    snippet.set_snippet_prefix_postfix("<mark>", "</mark>");
    snippet.to_html()
}

/// A book's best matching section.
#[derive(Debug, Clone, PartialEq)]
pub struct BookHit {
    /// The book's catalog id.
    pub book_id: i64,
    /// Its best section's page (TXT, PDF) or chapter (EPUB), 1-based.
    pub location: u64,
    /// That section's relevance (higher is better).
    pub score: f32,
    /// Where the section is in the searcher (for its snippet).
    addr: DocAddress,
}

/// The books matching a query ([`SearchIndex::books`]): one [`BookHit`] each, best first,
/// read from one snapshot of the index.
pub struct BookHits {
    searcher: Searcher,
    snippets: Option<SnippetGenerator>,
    fields: Fields,
    /// The books, best first.
    pub books: Vec<BookHit>,
}

impl std::fmt::Debug for BookHits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookHits")
            .field("books", &self.books)
            .finish_non_exhaustive()
    }
}

impl BookHits {
    /// Text around the match in `hit`'s section, HTML-escaped, matches in
    /// `<mark>…</mark>` (`None` if the section cannot be read).
    pub fn snippet(&self, hit: &BookHit) -> Option<String> {
        let g = self.snippets.as_ref()?;
        let doc: TantivyDocument = self.searcher.doc(hit.addr).ok()?;
        doc.get_first(self.fields.text)?;
        Some(snippet_html(g, &doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(location: u64, text: &str) -> Section {
        Section {
            location,
            text: text.into(),
        }
    }

    #[test]
    fn finds_words_phrases_and_cjk_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ix = SearchIndex::open(dir.path()).unwrap();
            ix.put(
                1,
                "h1",
                &[
                    sec(1, "The sea is calm."),
                    sec(2, "The keeper climbs the Lighthouse."),
                ],
            )
            .unwrap();
            ix.put(2, "h2", &[sec(3, "从前有一座山，山里有一座庙。")])
                .unwrap();
            ix.commit().unwrap();
            let f = ix.search("lighthouse", 10, 0).unwrap();
            assert_eq!((f.total, f.hits[0].book_id, f.hits[0].location), (1, 1, 2));
            assert!(
                f.hits[0].snippet.contains("<mark>Lighthouse</mark>"),
                "{:?}",
                f.hits
            );
            assert_eq!(ix.search("\"keeper climbs\"", 10, 0).unwrap().total, 1);
            assert_eq!(ix.search("\"climbs keeper\"", 10, 0).unwrap().total, 0);
            assert_eq!(ix.search("the", 10, 0).unwrap().total, 2);
            assert_eq!(ix.search("the sea", 10, 0).unwrap().total, 1);
            let cjk = ix.search("一座庙", 10, 0).unwrap();
            assert_eq!((cjk.total, cjk.hits[0].location), (1, 3));
            assert!(
                cjk.hits[0].snippet.contains("<mark>一座庙</mark>"),
                "{:?}",
                cjk.hits
            );
            assert_eq!(ix.search("庙", 10, 0).unwrap().total, 1);
            assert_eq!(ix.search("庙山", 10, 0).unwrap().total, 0);
            assert_eq!(ix.search("  ", 10, 0).unwrap(), Found::default());
            ix.close_writer();
        }
        let ix = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(
            ix.indexed().unwrap(),
            HashMap::from([(1, "h1".to_owned()), (2, "h2".to_owned())])
        );
        ix.remove(1).unwrap();
        ix.commit().unwrap();
        assert_eq!(ix.search("lighthouse", 10, 0).unwrap().total, 0);
        assert_eq!(ix.indexed().unwrap().len(), 1);
    }

    #[test]
    fn books_once_each_best_first_with_snippets() {
        let dir = tempfile::tempdir().unwrap();
        let ix = SearchIndex::open(dir.path()).unwrap();
        ix.put(
            1,
            "a",
            &[sec(1, "a word here"), sec(2, "word word word word")],
        )
        .unwrap();
        ix.put(
            2,
            "b",
            &[sec(5, "one word in a long sentence of many other words")],
        )
        .unwrap();
        ix.put(3, "c", &[sec(1, "nothing")]).unwrap();
        ix.commit().unwrap();
        let hits = ix.books("word", 10).unwrap();
        let found: Vec<(i64, u64)> = hits.books.iter().map(|h| (h.book_id, h.location)).collect();
        assert_eq!(found, [(1, 2), (2, 5)]);
        let snippet = hits.snippet(&hits.books[1]).unwrap();
        assert!(snippet.contains("<mark>word</mark>"), "{snippet}");
        assert_eq!(ix.books("word", 1).unwrap().books.len(), 1);
        assert!(ix.books("absent", 10).unwrap().books.is_empty());
        assert!(ix.books("", 10).unwrap().books.is_empty());
    }

    #[test]
    fn pages_of_hits() {
        let dir = tempfile::tempdir().unwrap();
        let ix = SearchIndex::open(dir.path()).unwrap();
        let secs: Vec<Section> = (1..=30).map(|n| sec(n, "word")).collect();
        ix.put(7, "h", &secs).unwrap();
        ix.commit().unwrap();
        let p = ix.search("word", 10, 25).unwrap();
        assert_eq!((p.total, p.hits.len()), (30, 5));
    }
}
