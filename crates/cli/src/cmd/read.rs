//! `sockit read`: a terminal client for the reader's HTTP API.
//!
//! On a terminal it is a full-screen reader ([`crate::tui::read`]): the library list with
//! title/author and full-text search, books in pages that fit the terminal, go to page,
//! local bookmarks, and the reading position synced with the server (shared with the
//! web UI and KOReader). With `--plain`, or when stdin or stdout is not a terminal, it is
//! the line-oriented client scripts drive: lists and searches the catalog, pages through
//! TXT, EPUB (chapters as text) and PDF books (pages as images in terminals that speak
//! the kitty graphics protocol, else as text), saves bookmarks as reading positions on
//! the server, and keeps a local page cache keyed by each book's hash that is dropped
//! when the server's hash changes (the course client's behaviour).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_reader::client::{split_url, Client};
use sockit_reader::http::api_types::{BookJson as Book, BooksQuery, Number, PutProgress};

use crate::global::GlobalArgs;

/// Flags of `sockit read`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    #[command(flatten)]
    pub tls: crate::global::TlsArgs,
    /// Only list books matching this (title, author, file name).
    pub query: Option<String>,
    /// kosync user whose positions are read and written (with --password).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, env = "SOCKIT_READER_PASSWORD")]
    pub password: Option<String>,
    /// Local cache directory of --plain (default: the platform cache dir + /sockit/reader).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Where bookmarks are kept (default: the platform data dir + /sockit/reader).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Line-oriented prompts instead of the full-screen reader (also when stdin or
    /// stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
}

/// Runs the client until `q` or end of input.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    // `https://HOST[:PORT]` (like curl) or --tls: HTTPS on 8443 unless a port is given.
    let (https, bare) = match g.conn.server.as_deref() {
        Some(s) => {
            let (https, rest) = split_url(s);
            (https || g.conn.tls, Some(rest))
        }
        None => (g.conn.tls, None),
    };
    let port = if https {
        sockit_reader::http::tls::PORT
    } else {
        sockit_reader::http::PORT
    };
    let server = crate::global::resolve_server(bare, port);
    let trust = g.trust(&server, https)?;
    let mut client = Client::new(&server);
    if let Some(trust) = trust.clone() {
        client = client.with_tls(trust);
    }
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        client = client
            .with_header("x-auth-user", u)
            .with_header("x-auth-key", &sockit_reader::md5_hex(p.as_bytes()));
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !args.plain && interactive {
        // The first page before the screen opens: a server that does not answer, or a
        // certificate to trust, is told on the plain terminal.
        let first = client
            .list_books(&BooksQuery {
                q: args.query.clone(),
                per_page: Some(Number(crate::tui::read_view::PER_PAGE)),
                ..BooksQuery::default()
            })
            .await
            .with_context(|| format!("cannot list books from {server}"))?;
        crate::global::tell_recorded(client.take_recorded().as_ref(), trust.as_ref());
        crate::tui::read::run(crate::tui::read::Options {
            client,
            server: server.clone(),
            first,
            query: args.query.clone(),
            marks: crate::tui::read_marks::MarkStore::new(args.data.clone()),
        })
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let cache = Cache::open(args.cache.clone(), &server)?;
    let mut query = args.query.clone();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let listing = client
            .books(query.as_deref())
            .await
            .with_context(|| format!("cannot list books from {server}"))?;
        crate::global::tell_recorded(client.take_recorded().as_ref(), trust.as_ref());
        cache.sync(&listing.books);
        println!("{:>4}  {:<4} {:>6}  TITLE", "ID", "FMT", "PAGES");
        for b in &listing.books {
            let pages = b.pages.map_or("?".to_owned(), |p| p.to_string());
            let note = b
                .error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default();
            println!(
                "{:>4}  {:<4} {:>6}  {}{note}",
                b.id, b.format, pages, b.title
            );
        }
        prompt("open ID | s TEXT (search) | q > ");
        let Some(Ok(line)) = lines.next() else {
            return Ok(ExitCode::SUCCESS);
        };
        let line = line.trim();
        if line == "q" {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(q) = line.strip_prefix("s ") {
            query = Some(q.trim().to_owned()).filter(|q| !q.is_empty());
            continue;
        }
        let id = line.strip_prefix("open ").unwrap_or(line).trim();
        let Some(book) = listing.books.iter().find(|b| b.id.to_string() == id) else {
            println!("no book {id} in the list");
            continue;
        };
        read_book(&client, &cache, book, &mut lines).await?;
    }
}

async fn read_book(
    client: &Client,
    cache: &Cache,
    book: &Book,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<()> {
    let Some(pages) = book.pages.filter(|_| book.error.is_none()) else {
        println!(
            "{} cannot be read: {}",
            book.title,
            book.error.as_deref().unwrap_or("unknown error")
        );
        return Ok(());
    };
    let saved = client.progress(book.id).await.ok();
    let mut page = saved
        .as_ref()
        .and_then(|p| p.saved())
        .and_then(|p| p.page)
        .unwrap_or(1)
        .clamp(1, pages);
    loop {
        show_page(client, cache, book, page).await;
        prompt(&format!(
            "[{page}/{pages}] n next | p prev | g N | b bookmark | q back > "
        ));
        let Some(Ok(line)) = lines.next() else {
            return Ok(());
        };
        let line = line.trim();
        match line {
            "" | "n" => page = (page + 1).min(pages),
            "p" => page = page.saturating_sub(1).max(1),
            "q" => return Ok(()),
            "b" => {
                let bookmark = PutProgress {
                    page,
                    percentage: None,
                    device: Some("sockit-read".into()),
                };
                let r = client.put_progress(book.id, &bookmark).await;
                match r {
                    Ok(_) => println!("bookmark saved at page {page}"),
                    Err(e) => println!("bookmark not saved: {e}"),
                }
            }
            other => match other.strip_prefix('g').map(|n| n.trim().parse::<u64>()) {
                Some(Ok(n)) if (1..=pages).contains(&n) => page = n,
                _ => println!("unknown key `{other}` (pages are 1..={pages})"),
            },
        }
    }
}

async fn show_page(client: &Client, cache: &Cache, book: &Book, page: u64) {
    if book.format == sockit_reader::catalog::Format::Pdf && kitty_graphics() {
        match client
            .get_bytes(&format!("/api/books/{}/page/{page}?width=800", book.id))
            .await
        {
            Ok(png) => return kitty_show(&png),
            Err(e) => println!("(cannot render the page: {e})"),
        }
    }
    let key = format!("{}-{page}.txt", book.blake3);
    if let Some(text) = cache.get(&key) {
        println!("{text}");
        return;
    }
    let text = match book.format {
        sockit_reader::catalog::Format::Pdf => client.pdf_text(book.id, page).await.map(|p| p.text),
        sockit_reader::catalog::Format::Epub => client
            .chapter(book.id, page)
            .await
            .map(|c| crate::tui::read_html::html_text(&c.html)),
        sockit_reader::catalog::Format::Txt => {
            client.text_page(book.id, page).await.map(|p| p.text)
        }
    };
    match text {
        Ok(text) => {
            cache.put(&key, &text);
            println!("{text}");
        }
        Err(e) => println!("(page {page}: {e})"),
    }
}

fn prompt(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// Whether stdout is a terminal that speaks the kitty graphics protocol.
fn kitty_graphics() -> bool {
    std::io::stdout().is_terminal()
        && (std::env::var_os("KITTY_WINDOW_ID").is_some()
            || std::env::var("TERM").is_ok_and(|t| t.contains("kitty"))
            || std::env::var("TERM_PROGRAM").is_ok_and(|t| t == "WezTerm" || t == "ghostty"))
}

/// Sends a PNG with the kitty graphics protocol (base64, 4096-byte chunks).
fn kitty_show(png: &[u8]) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let chunks: Vec<&[u8]> = b64.as_bytes().chunks(4096).collect();
    let mut out = std::io::stdout().lock();
    for (i, c) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        let head = if i == 0 {
            format!("a=T,f=100,m={more}")
        } else {
            format!("m={more}")
        };
        let _ = write!(out, "\x1b_G{head};{}\x1b\\", String::from_utf8_lossy(c));
    }
    let _ = writeln!(out);
}

/// Page texts cached on disk per server, named by book hash; a book whose hash changed on
/// the server has its pages dropped.
struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    fn open(dir: Option<PathBuf>, server: &str) -> anyhow::Result<Self> {
        let base = dir.or_else(|| dirs::cache_dir().map(|d| d.join("sockit").join("reader")));
        let dir = base.map(|b| b.join(server.replace([':', '/', '[', ']'], "_")));
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create cache {}", d.display()))?;
        }
        Ok(Self { dir })
    }

    fn get(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.as_ref()?.join(key)).ok()
    }

    fn put(&self, key: &str, text: &str) {
        if let Some(d) = &self.dir {
            let _ = std::fs::write(d.join(key), text);
        }
    }

    /// Drops cached pages of books whose hash is no longer in the catalog.
    fn sync(&self, books: &[Book]) {
        let Some(d) = &self.dir else { return };
        let live: std::collections::HashSet<&str> =
            books.iter().map(|b| b.blake3.as_str()).collect();
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten().take(100_000) {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((hash, _)) = name.split_once('-') {
                if !live.contains(hash) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
