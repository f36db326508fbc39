//! The library list of the terminal reader: the books fetched so far (a page of the
//! listing at a time, as the list is scrolled), the title/author filter and the
//! full-text matches of the same query under a heading, the selection, and how a row
//! reads. Pure; [`read_view`](super::read_view) drives it.

use std::collections::HashSet;

use sockit_reader::catalog::Format;
use sockit_reader::http::api_types::{BookJson, SearchHit};

/// What a row of the library list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `books[i]`.
    Book(usize),
    /// The heading of the full-text matches.
    Header,
    /// `hits[i]`.
    Hit(usize),
}

/// The library list.
#[derive(Debug, Clone, Default)]
pub struct Library {
    /// The books fetched so far, in the server's order.
    pub books: Vec<BookJson>,
    /// How many books match in all.
    pub total: usize,
    /// The title/author filter and full-text query in force.
    pub query: Option<String>,
    /// Full-text matches of `query`.
    pub hits: Vec<SearchHit>,
    /// How many sections match in all.
    pub hits_total: usize,
    /// The index was still catching up when the search ran.
    pub indexing: bool,
    /// A full-text search is in flight.
    pub searching: bool,
    /// The selected row (an index into [`Library::entries`]).
    pub selected: usize,
    /// The first row shown.
    pub top: usize,
    /// The search field while it is being typed in.
    pub input: Option<String>,
    /// A listing page is in flight.
    pub(super) fetching: bool,
    /// The next listing page to fetch.
    pub(super) next_page: u64,
    /// The listing's generation.
    pub(super) gen: u64,
    /// Ids already listed (pages fetched while the catalog changes may overlap).
    pub(super) seen: HashSet<i64>,
}

impl Library {
    /// The rows: the books, then (once every matching book is listed) the full-text
    /// matches under a heading.
    pub fn entries(&self) -> Vec<Entry> {
        let mut e: Vec<Entry> = (0..self.books.len()).map(Entry::Book).collect();
        if self.query.is_some() && self.books.len() >= self.total && !self.fetching {
            e.push(Entry::Header);
            e.extend((0..self.hits.len()).map(Entry::Hit));
        }
        e
    }

    /// The heading of the full-text matches.
    pub fn header(&self) -> String {
        let q = self.query.as_deref().unwrap_or("");
        let mut h = if self.searching {
            format!("searching the text for “{q}”…")
        } else if self.hits.is_empty() {
            format!("no text matches “{q}”")
        } else if self.hits_total > self.hits.len() {
            format!(
                "text matches for “{q}”: {} of {}",
                self.hits.len(),
                self.hits_total
            )
        } else {
            format!("text matches for “{q}”: {}", self.hits_total)
        };
        if self.indexing {
            h.push_str(" (still indexing: more may come)");
        }
        h
    }
}

/// A book's row in the library list: format, title, author; and its size.
pub fn book_row(b: &BookJson) -> (String, String) {
    let fmt = match b.format {
        Format::Pdf => "PDF ",
        Format::Epub => "EPUB",
        Format::Txt => "TXT ",
    };
    let mut left = format!(" {fmt}  {}", b.title);
    if let Some(a) = b.author.as_deref().filter(|a| !a.is_empty()) {
        left.push_str(&format!(" — {a}"));
    }
    let right = match (&b.error, b.pages, b.format) {
        (Some(_), _, _) => "unreadable ".to_owned(),
        (None, Some(n), Format::Epub) => format!("{n} ch. "),
        (None, Some(n), _) => format!("{n} p. "),
        (None, None, _) => String::new(),
    };
    let right = if b.last_read.is_some() {
        format!("• {right}")
    } else {
        right
    };
    (left, right)
}

/// A full-text snippet (HTML-escaped, matches in `<mark>`) as text pieces, `true` for
/// the matched ones, whitespace collapsed.
pub fn snippet_parts(snippet: &str) -> Vec<(String, bool)> {
    let mut parts = Vec::new();
    let mut rest = snippet;
    let mut marked = false;
    loop {
        let tag = if marked { "</mark>" } else { "<mark>" };
        let (piece, next) = match rest.find(tag) {
            Some(i) => (&rest[..i], Some(&rest[i + tag.len()..])),
            None => (rest, None),
        };
        let text = super::read_html::decode(piece);
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = if piece.starts_with(char::is_whitespace) && !parts.is_empty() {
            format!(" {text}")
        } else {
            text
        };
        let text = if piece.ends_with(char::is_whitespace) && next.is_some() {
            format!("{text} ")
        } else {
            text
        };
        if !text.is_empty() {
            parts.push((text, marked));
        }
        match next {
            Some(n) => {
                rest = n;
                marked = !marked;
            }
            None => break,
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_keep_their_marks_and_lose_their_markup() {
        assert_eq!(
            snippet_parts("the <mark>lamp</mark> &amp; more"),
            vec![
                ("the ".to_owned(), false),
                ("lamp".to_owned(), true),
                (" & more".to_owned(), false)
            ]
        );
        assert_eq!(
            snippet_parts("<mark>a</mark>"),
            vec![("a".to_owned(), true)]
        );
        assert!(snippet_parts("").is_empty());
        // An unclosed mark marks the rest.
        assert_eq!(
            snippet_parts("x <mark>y"),
            vec![("x ".to_owned(), false), ("y".to_owned(), true)]
        );
    }
}
