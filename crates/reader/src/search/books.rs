//! Searching for books, as OPDS search feeds answer: the books whose title, authors,
//! series or file name hold the query (the catalog's listing filter `q`, by title) come
//! first, then the books only their text matches (the full-text index, best first); each
//! book once, with its best matching page or chapter and a snippet when its text
//! matches. Pages are cut from that one list, so no book shows on two pages.

use std::collections::HashMap;

use crate::browse::{self, ListQuery};
use crate::catalog::{self, Book, Format};
use crate::error::Result;
use crate::library::Library;
use crate::search::BookHit;

/// Most books found through their text in one search.
pub const MAX_TEXT_BOOKS: usize = 1000;

/// Where a book's text matches best.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMatch {
    /// The page (TXT, PDF) or chapter (EPUB), 1-based.
    pub location: u64,
    /// Text around the match, HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet: String,
}

impl TextMatch {
    /// `page` or `chapter`, for `format`.
    pub fn unit(format: Format) -> &'static str {
        match format {
            Format::Epub => "chapter",
            Format::Pdf | Format::Txt => "page",
        }
    }

    /// The snippet as plain text (marks removed, entities decoded).
    pub fn plain_snippet(&self) -> String {
        let s = self.snippet.replace("<mark>", "").replace("</mark>", "");
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let decoded = [
                ("&amp;", '&'),
                ("&lt;", '<'),
                ("&gt;", '>'),
                ("&quot;", '"'),
                ("&#39;", '\''),
                ("&#x27;", '\''),
                ("&#x2F;", '/'),
            ]
            .iter()
            .find(|(e, _)| rest.starts_with(e));
            match decoded {
                Some((e, c)) => {
                    out.push(*c);
                    rest = &rest[e.len()..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A book a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct BookMatch {
    /// The book.
    pub book: Book,
    /// Whether its title, authors, series or file name hold the query.
    pub by_metadata: bool,
    /// Its best matching section, when its text matches.
    pub text: Option<TextMatch>,
}

/// One page of a book search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookResults {
    /// Books found in all.
    pub total: usize,
    /// This page of them.
    pub books: Vec<BookMatch>,
}

/// Page `page` (1-based, `per_page` books) of the books matching `q` (see the module
/// documentation); `user`'s shelves and positions do not matter. An empty query lists
/// every book by title. Blocking.
///
/// # Errors
/// Catalog or index errors.
pub(crate) fn find(lib: &Library, q: &str, page: u64, per_page: u64) -> Result<BookResults> {
    let q = q.trim();
    let per_page = per_page.clamp(1, browse::MAX_PER_PAGE);
    let page = page.max(1);
    let hits = lib.search_index().books(q, MAX_TEXT_BOOKS)?;
    let ids: Vec<i64> = hits.books.iter().map(|h| h.book_id).collect();
    let known = lib.with_db(|c| browse::metadata_matches(c, q, &ids))?;
    let by_id: HashMap<i64, &BookHit> = hits.books.iter().map(|h| (h.book_id, h)).collect();
    // Books only their text matches, best first (books gone from the catalog skipped).
    let text_only: Vec<&BookHit> = known
        .iter()
        .filter(|(_, meta)| !meta)
        .filter_map(|(id, _)| by_id.get(id).copied())
        .collect();
    let listing = ListQuery {
        q: (!q.is_empty()).then(|| q.to_owned()),
        page,
        per_page,
        ..ListQuery::default()
    };
    let meta = lib.with_db(|c| browse::list(c, "", &listing))?;
    let meta_total = usize::try_from(meta.total).unwrap_or(usize::MAX);
    let text_match = |h: &BookHit| {
        hits.snippet(h).map(|snippet| TextMatch {
            location: h.location,
            snippet,
        })
    };
    let mut books: Vec<BookMatch> = meta
        .books
        .into_iter()
        .map(|(book, _)| BookMatch {
            text: by_id.get(&book.id).and_then(|h| text_match(h)),
            by_metadata: true,
            book,
        })
        .collect();
    let per = usize::try_from(per_page).unwrap_or(usize::MAX);
    let start = usize::try_from(page - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(per);
    let end = start.saturating_add(per);
    if end > meta_total {
        let from = start.saturating_sub(meta_total).min(text_only.len());
        let to = (end - meta_total).min(text_only.len());
        for h in &text_only[from..to] {
            if let Some(book) = lib.with_db(|c| catalog::by_id(c, h.book_id))? {
                books.push(BookMatch {
                    book,
                    by_metadata: false,
                    text: text_match(h),
                });
            }
        }
    }
    Ok(BookResults {
        total: meta_total + text_only.len(),
        books,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_snippets_lose_marks_and_entities() {
        let m = TextMatch {
            location: 1,
            snippet: "a &lt;b&gt; &amp; <mark>word</mark>\n  &#39;x&#39; &unknown;".into(),
        };
        assert_eq!(m.plain_snippet(), "a <b> & word 'x' &unknown;");
    }
}
