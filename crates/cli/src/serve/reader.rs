//! The reader's flags of `sockit serve` and opening its library.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sockit_reader::{Library, ReaderConfig};

use crate::serve::layout::Layout;
use crate::serve::ServeContext;

/// Flags of the book reader (tcp 8998 + http 8080).
#[derive(Debug, clap::Args)]
pub struct ReaderArgs {
    /// Books root of the reader (default: ROOT/books).
    #[arg(long, value_name = "DIR")]
    pub books: Option<PathBuf>,
    /// Fill the books root with generated sample books (also done when it is empty).
    #[arg(long)]
    pub demo: bool,
    /// Characters per TXT page (classic protocol, catalog, web UI default).
    #[arg(long, default_value_t = 1500)]
    pub txt_page_chars: usize,
    /// How often the books root is checked for added, changed and removed books.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,
    /// Most PDF pages rendered at once.
    #[arg(long, default_value_t = 2)]
    pub render_workers: usize,
    /// Size the reader's page and cover cache is trimmed to, in MiB.
    #[arg(long, default_value_t = 512)]
    pub reader_cache_mib: u64,
    /// Largest book the web UI may upload (POST /api/books), in MiB; 0 turns uploads
    /// off. Uploading needs a signed-in account; deleting needs an administrator
    /// (`sockit account add NAME --admin`, `sockit account admin NAME`).
    #[arg(long, default_value_t = 200, value_name = "MIB")]
    pub reader_upload_mib: u64,
    /// Refuse new kosync accounts (POST /users/create answers 2005). This is the default
    /// on a non-loopback bind.
    #[arg(long, conflicts_with = "open_registration")]
    pub no_registration: bool,
    /// Accept new kosync accounts even on a non-loopback bind.
    #[arg(long)]
    pub open_registration: bool,
}

/// Opens the library (first scan included) on a blocking thread and starts its watcher.
pub async fn open(
    args: &ReaderArgs,
    ctx: &ServeContext,
    layout: &Layout,
    books: &Path,
    loopback: bool,
) -> anyhow::Result<Arc<Library>> {
    let mut cfg = ReaderConfig::for_root(&ctx.root);
    cfg.books_dir = books.to_path_buf();
    cfg.state_dir = layout.reader_state();
    cfg.accounts = Some(ctx.auth.accounts.clone());
    cfg.require_auth = ctx.auth.required;
    cfg.demo = args.demo;
    cfg.txt_page_chars = args.txt_page_chars.clamp(1, sockit_reader::MAX_PAGE_CHARS);
    cfg.rescan_interval = args.rescan_interval.max(Duration::from_millis(100));
    cfg.render_workers = args.render_workers.max(1);
    cfg.cache_max_bytes = args.reader_cache_mib.saturating_mul(1 << 20);
    cfg.max_upload_bytes = args.reader_upload_mib.saturating_mul(1 << 20);
    cfg.allow_registration = if loopback {
        !args.no_registration
    } else {
        args.open_registration
    };
    let books = cfg.books_dir.clone();
    let lib = tokio::task::spawn_blocking(move || Library::open(cfg))
        .await
        .context("the library's opening task failed")?
        .with_context(|| format!("cannot open the book library in {}", books.display()))?;
    tokio::spawn(lib.clone().watch(ctx.shutdown.clone()));
    Ok(lib)
}

/// The library opened by [`open`] (the reader endpoints only start after it).
pub fn library(ctx: &ServeContext) -> Arc<Library> {
    match &ctx.reader {
        Some(lib) => lib.clone(),
        None => unreachable!("serve opens the library before starting the reader"),
    }
}
