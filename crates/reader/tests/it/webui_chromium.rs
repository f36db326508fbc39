//! The web UI in a real headless browser (Debian's chromium, driven over DevTools by a
//! python3 script): grid, PDF, page jump, TXT page, EPUB chapters, reload restores the
//! position; the continue-reading row, a format filter, a reversed sort, a shelf filled
//! from the book page, the metadata form, full-text search results that open their
//! chapter, the PDF view's fit page / fit width / zoom with the next page fetched ahead,
//! and an upload through the file picker (then a duplicate).

use crate::common;

use common::{python3, scripts, Server};

#[test]
fn interop_chromium_web_ui() {
    let s = Server::start_with(&[("Lighthouse.epub", crate::epub::epub3())], |c| {
        c.demo = true
    });
    assert!(
        s.lib.wait_indexed(std::time::Duration::from_secs(300)),
        "the full-text indexer hung"
    );
    let pdf = s.id("Socket Programming Notes.pdf");
    let txt = s.id("山庙故事.txt");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reader-webui.png");
    let upload = s.dir.path().join("Harbour Log.txt");
    std::fs::write(
        &upload,
        "Boats come in at dusk.\nThe harbour log records each one.\n",
    )
    .unwrap();
    let out = python3()
        .arg(scripts().join("webui_chromium.py"))
        .arg(format!("http://{}", s.http))
        .arg(pdf.to_string())
        .arg(txt.to_string())
        .arg(&shot)
        .arg(s.id("Lighthouse.epub").to_string())
        .arg(&upload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "web UI test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert!(
        img.width() >= 1000,
        "screenshot {}x{}",
        img.width(),
        img.height()
    );
}
