//! Loading a book for the terminal reader through the reader's JSON API: the book, the
//! caller's saved position, the text of every unit, and the local bookmarks.
//!
//! - **TXT**: the first page at the server's page size (`GET /api/books/ID/text/1`) gives
//!   that size and the page count; the text then comes in pages of
//!   [`MAX_PAGE_CHARS`](sockit_reader::MAX_PAGE_CHARS) characters (a 1 MiB book in a few
//!   requests, not hundreds), joined, and cut again at the server's size with the
//!   server's own [`Paged`] to find where its pages (the units of positions) start. When
//!   that does not give the server's page count (another server version), the pages are
//!   fetched one by one.
//! - **EPUB**: every chapter (`GET /api/books/ID/chapter/N`), sanitized by the server,
//!   as plain text ([`html_text`]).
//! - **PDF**: every page's text layer (`GET /api/books/ID/pdftext/N`); a PDF without any
//!   text (scanned pages) is refused with what to do instead.
//!
//! Units are fetched [`CONCURRENCY`] at a time, and progress is reported as they arrive.

use std::future::Future;

use sockit_reader::catalog::Format;
use sockit_reader::client::Client;
use sockit_reader::http::api_types::BookJson;
use sockit_reader::{Paged, MAX_PAGE_CHARS};
use tokio::task::JoinSet;

use super::read_html::html_text;
use super::read_marks::MarkStore;
use super::read_text::{BookText, UnitKind, UnitText};
use super::read_view::Opened;

/// Requests in flight while a book loads.
pub const CONCURRENCY: usize = 4;
/// Most units (pages, chapters) a book may have to be opened.
pub const MAX_UNITS: u64 = 100_000;

/// Progress: units fetched, units to fetch.
pub type OnProgress = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Loads book `id` (`book`: as listed, when known).
///
/// # Errors
/// What went wrong, as a sentence for the status line: the book cannot be read, has no
/// text, or a request failed.
pub async fn open(
    client: Client,
    id: i64,
    book: Option<BookJson>,
    marks: MarkStore,
    progress: OnProgress,
) -> Result<Opened, String> {
    let book = match book {
        Some(b) => b,
        None => client
            .book(id)
            .await
            .map_err(|e| format!("cannot open book {id}: {e}"))?,
    };
    if let Some(e) = &book.error {
        return Err(format!("{} cannot be read: {e}", book.title));
    }
    let units = book.pages.unwrap_or(0);
    if units > MAX_UNITS {
        return Err(format!(
            "{} has {units} pages; the terminal reader opens books of at most {MAX_UNITS}",
            book.title
        ));
    }
    let saved = client
        .progress(book.id)
        .await
        .map_err(|e| format!("cannot read the saved position: {e}"))?
        .saved()
        .cloned();
    let text = match book.format {
        Format::Txt => txt(&client, &book, &progress).await?,
        Format::Epub => epub(&client, &book, units, &progress).await?,
        Format::Pdf => pdf(&client, &book, units, &progress).await?,
    };
    let document = book.partial_md5.clone();
    let marks = tokio::task::spawn_blocking(move || marks.load(&document))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    Ok(Opened {
        book,
        text,
        saved,
        marks,
    })
}

async fn txt(client: &Client, book: &BookJson, progress: &OnProgress) -> Result<BookText, String> {
    let id = book.id;
    let failed = |e: sockit_reader::client::ClientError| format!("cannot fetch the text: {e}");
    let first = client.text_page(id, 1).await.map_err(failed)?;
    let pages = first.pages;
    if pages > MAX_UNITS {
        return Err(format!(
            "{} has {pages} pages: too many to open",
            book.title
        ));
    }
    let units: Vec<String> = if pages <= 1 {
        vec![first.text]
    } else {
        let big = client
            .text_page_sized(id, 1, MAX_PAGE_CHARS)
            .await
            .map_err(failed)?;
        let c = client.clone();
        let rest = fetch_all(2, big.pages, progress, move |n| {
            let c = c.clone();
            async move {
                c.text_page_sized(id, n, MAX_PAGE_CHARS)
                    .await
                    .map(|p| p.text)
            }
        })
        .await
        .map_err(|e| format!("cannot fetch the text: {e}"))?;
        let mut whole = big.text;
        for t in rest {
            whole.push_str(&t);
        }
        let paged = Paged::new(whole, first.page_chars);
        if paged.len() as u64 == pages {
            (1..=paged.len())
                .map(|n| paged.page(n).unwrap_or("").to_owned())
                .collect()
        } else {
            let c = client.clone();
            fetch_all(1, pages, progress, move |n| {
                let c = c.clone();
                async move { c.text_page(id, n).await.map(|p| p.text) }
            })
            .await
            .map_err(|e| format!("cannot fetch the text: {e}"))?
        }
    };
    let units = units
        .into_iter()
        .map(|text| UnitText { text, title: None })
        .collect();
    Ok(BookText::new(units, UnitKind::TxtPage, |_| String::new()))
}

async fn epub(
    client: &Client,
    book: &BookJson,
    chapters: u64,
    progress: &OnProgress,
) -> Result<BookText, String> {
    let id = book.id;
    let c = client.clone();
    let units = fetch_all(1, chapters, progress, move |n| {
        let c = c.clone();
        async move {
            c.chapter(id, n).await.map(|ch| UnitText {
                text: html_text(&ch.html),
                title: ch.title,
            })
        }
    })
    .await
    .map_err(|e| format!("cannot fetch the chapters: {e}"))?;
    Ok(BookText::new(units, UnitKind::Chapter, |n| {
        format!("(chapter {n} has no text: it may be a picture)")
    }))
}

async fn pdf(
    client: &Client,
    book: &BookJson,
    pages: u64,
    progress: &OnProgress,
) -> Result<BookText, String> {
    let id = book.id;
    let c = client.clone();
    let units = fetch_all(1, pages, progress, move |n| {
        let c = c.clone();
        async move {
            c.pdf_text(id, n).await.map(|p| UnitText {
                text: p.text,
                title: None,
            })
        }
    })
    .await
    .map_err(|e| format!("cannot fetch the PDF's text: {e}"))?;
    if units.iter().all(|u| u.text.trim().is_empty()) {
        return Err(no_text_layer(&book.title));
    }
    Ok(BookText::new(units, UnitKind::PdfPage, |n| {
        format!("(PDF page {n} has no text layer)")
    }))
}

/// What to say about a PDF without a text layer.
pub fn no_text_layer(title: &str) -> String {
    format!(
        "{title} has no text layer (its pages are pictures): read it in the web UI, or with \
         `sockit read --plain` in a terminal that shows images (kitty, WezTerm, ghostty)"
    )
}

/// Fetches units `first..=last` with `get`, [`CONCURRENCY`] at a time, in order.
async fn fetch_all<T, F, Fut>(
    first: u64,
    last: u64,
    progress: &OnProgress,
    get: F,
) -> Result<Vec<T>, sockit_reader::client::ClientError>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, sockit_reader::client::ClientError>> + Send + 'static,
{
    if last < first {
        return Ok(Vec::new());
    }
    let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
    let mut out: Vec<Option<T>> = Vec::new();
    out.resize_with(count, || None);
    let mut set = JoinSet::new();
    let mut next = first;
    let mut done = 0usize;
    progress(0, count);
    while done < count {
        while set.len() < CONCURRENCY && next <= last {
            let n = next;
            let fut = get(n);
            set.spawn(async move { (n, fut.await) });
            next += 1;
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (n, result) = joined.map_err(|e| {
            sockit_reader::client::ClientError::Malformed(format!("a fetch failed: {e}"))
        })?;
        let i = usize::try_from(n - first).unwrap_or(usize::MAX);
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(result?);
        }
        done += 1;
        progress(done, count);
    }
    Ok(out.into_iter().flatten().collect())
}
