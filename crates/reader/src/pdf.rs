//! PDF books: page count and metadata with lopdf, pages rasterized with hayro, page text
//! with lopdf. Every call into the third-party parsers runs under [`guard`], so a panic
//! on a hostile file becomes a [`ReaderError::BadPdf`] instead of taking a worker down.
//! These functions block: the server calls them from blocking workers.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{ReaderError, Result};

/// Largest page width a client may ask for, in pixels.
pub const MAX_WIDTH: u32 = 4096;
/// Largest rendered page area, in pixels (a very tall page is scaled down to fit).
const MAX_PIXELS: f32 = 40_000_000.0;

/// What the catalog keeps of a PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfInfo {
    /// Number of pages.
    pub pages: u64,
    /// `/Title` from the document information dictionary, if any.
    pub title: Option<String>,
    /// `/Author`, if any.
    pub author: Option<String>,
}

/// Runs third-party parsing code, turning a panic into a `BadPdf` error for `name`.
///
/// # Errors
/// Whatever `f` returns, or `BadPdf` if it panicked.
pub fn guard<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "parser panicked".into());
            Err(ReaderError::BadPdf {
                name: name.to_owned(),
                reason: format!("parser crashed ({what})"),
            })
        }
    }
}

fn bad(name: &str, reason: impl std::fmt::Display) -> ReaderError {
    ReaderError::BadPdf {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// True when the file declares encryption (`/Encrypt` in a trailer).
fn declares_encryption(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b"/Encrypt")
}

fn load(name: &str, bytes: &[u8]) -> Result<lopdf::Document> {
    if declares_encryption(bytes) {
        return Err(ReaderError::Encrypted(name.to_owned()));
    }
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| bad(name, e))?;
    if doc.is_encrypted() || doc.was_encrypted() {
        return Err(ReaderError::Encrypted(name.to_owned()));
    }
    Ok(doc)
}

/// Page count, title and author.
///
/// # Errors
/// `Encrypted`, or `BadPdf` when the file does not parse or has no pages.
pub fn inspect(name: &str, bytes: &[u8]) -> Result<PdfInfo> {
    guard(name, || {
        let doc = load(name, bytes)?;
        let pages = doc.get_pages().len() as u64;
        if pages == 0 {
            return Err(bad(name, "it has no pages"));
        }
        let info = doc.trailer.get(b"Info").ok().and_then(|o| match o {
            lopdf::Object::Reference(id) => doc.get_dictionary(*id).ok(),
            lopdf::Object::Dictionary(d) => Some(d),
            _ => None,
        });
        let field = |key: &[u8]| {
            info.and_then(|d| d.get(key).ok())
                .and_then(|o| o.as_str().ok())
                .map(text_string)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Ok(PdfInfo {
            pages,
            title: field(b"Title"),
            author: field(b"Author"),
        })
    })
}

/// Decodes a PDF text string: UTF-16BE with a BOM, UTF-8 with a BOM, else PDFDocEncoding
/// (read as Latin-1, which it equals for printable text).
pub fn text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        bytes.iter().map(|&b| char::from(b)).collect()
    }
}

/// The text of page `page` (1-based).
///
/// # Errors
/// `PageOutOfRange`, `Encrypted`, `BadPdf`.
pub fn page_text(name: &str, bytes: &[u8], page: u64) -> Result<String> {
    guard(name, || {
        let doc = load(name, bytes)?;
        let pages = doc.get_pages().len() as u64;
        let n = u32::try_from(page)
            .ok()
            .filter(|&n| n >= 1 && u64::from(n) <= pages)
            .ok_or(ReaderError::PageOutOfRange { page, pages })?;
        doc.extract_text(&[n]).map_err(|e| bad(name, e))
    })
}

/// Renders page `page` (1-based) at `width` pixels wide (height follows the page's aspect
/// ratio) on a white background.
///
/// # Errors
/// `PageOutOfRange`, `BadRequest` for a width of 0 or over [`MAX_WIDTH`], `Encrypted`,
/// `BadPdf`.
pub fn render(name: &str, bytes: &[u8], page: u64, width: u32) -> Result<image::RgbaImage> {
    if width == 0 || width > MAX_WIDTH {
        return Err(ReaderError::BadRequest(format!(
            "width {width} is out of range 1..={MAX_WIDTH}"
        )));
    }
    if declares_encryption(bytes) {
        return Err(ReaderError::Encrypted(name.to_owned()));
    }
    guard(name, || {
        use hayro::hayro_syntax::Pdf;
        let pdf = Pdf::new(bytes.to_vec()).map_err(|e| bad(name, format!("{e:?}")))?;
        let pages = pdf.pages();
        let count = pages.len() as u64;
        let idx = usize::try_from(page)
            .ok()
            .filter(|&n| n >= 1 && n as u64 <= count)
            .ok_or(ReaderError::PageOutOfRange { page, pages: count })?;
        let p = &pages[idx - 1];
        let (w, h) = p.render_dimensions();
        if !(w.is_finite() && h.is_finite()) || w < 1.0 || h < 1.0 {
            return Err(bad(name, format!("page {page} has no size")));
        }
        let mut scale = width as f32 / w;
        if (w * scale) * (h * scale) > MAX_PIXELS || h * scale > 65_000.0 {
            scale = (MAX_PIXELS / (w * h)).sqrt().min(65_000.0 / h);
        }
        let settings = hayro::PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: hayro::vello_cpu::color::palette::css::WHITE,
        };
        let cache = hayro::RenderCache::new();
        let pixmap = hayro::render(
            p,
            &cache,
            &hayro::hayro_interpret::InterpreterSettings::default(),
            &hayro::RenderSettings::default(),
            &settings,
        );
        let (pw, ph) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
        // The background is opaque white, so premultiplied RGBA equals straight RGBA.
        image::RgbaImage::from_raw(pw, ph, pixmap.data_as_u8_slice().to_vec())
            .ok_or_else(|| bad(name, "renderer returned a malformed bitmap"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_panic_into_error() {
        let r: Result<()> = guard("x.pdf", || panic!("boom"));
        match r {
            Err(ReaderError::BadPdf { reason, .. }) => assert!(reason.contains("boom")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_bad_pdf() {
        assert!(matches!(
            inspect("g.pdf", b"%PDF-1.4 garbage"),
            Err(ReaderError::BadPdf { .. })
        ));
        assert!(matches!(
            render("g.pdf", b"not a pdf", 1, 100),
            Err(ReaderError::BadPdf { .. })
        ));
    }

    #[test]
    fn encrypted_is_named() {
        let fake = b"%PDF-1.4\ntrailer << /Encrypt 5 0 R >>\n%%EOF";
        assert!(matches!(
            inspect("e.pdf", fake),
            Err(ReaderError::Encrypted(_))
        ));
    }

    #[test]
    fn text_strings() {
        assert_eq!(text_string(b"\xFE\xFF\x00A\x6C\x49"), "A\u{6C49}");
        assert_eq!(text_string(b"Plain"), "Plain");
    }
}
