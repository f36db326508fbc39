//! Covers: the `NAME.jpg` (or .jpeg/.png) next to the book as the course lays them out,
//! else the EPUB's cover image (its OPF's), else the first page of a PDF, else a generated
//! cover ([`crate::generated_cover`]: the title in any script the system has a font for).

use image::DynamicImage;

use crate::catalog::{Book, Format};
use crate::error::{ReaderError, Result};
use crate::library::Library;

/// Largest cover image file decoded, in bytes.
const MAX_COVER_FILE: u64 = 32 << 20;

/// The cover of `book`, `width` pixels wide.
///
/// # Errors
/// Only when even the generated cover cannot be rendered.
pub fn cover_image(lib: &Library, book: &Book, width: u32) -> Result<DynamicImage> {
    if let Some(file) = &book.cover_file {
        match lib
            .read_book_file(file, MAX_COVER_FILE)
            .and_then(|b| decode_image(file, &b))
        {
            Ok(img) => return Ok(fit(img, width)),
            Err(e) => tracing::debug!(cover = %file, error = %e, "cover file unusable"),
        }
    }
    if book.format == Format::Epub && book.pages.is_some() {
        match lib.epub_cover_bytes(book) {
            Ok(Some(bytes)) => match decode_image(&book.path, &bytes) {
                Ok(img) => return Ok(fit(img, width)),
                Err(e) => tracing::debug!(book = %book.path, error = %e, "EPUB cover unusable"),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(book = %book.path, error = %e, "EPUB cover unreadable"),
        }
    }
    if book.format == Format::Pdf && book.pages.is_some() {
        let first = lib
            .pdf_bytes_for_cover(book)
            .and_then(|b| crate::pdf::render(&book.path, &b, 1, width));
        if let Ok(img) = first {
            return Ok(DynamicImage::ImageRgba8(img));
        }
    }
    generated(book, width)
}

/// Decodes a JPEG or PNG with the image crate's memory limits, isolated from panics.
fn decode_image(name: &str, bytes: &[u8]) -> Result<DynamicImage> {
    crate::pdf::guard(name, || {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ReaderError::Image(e.to_string()))?;
        reader.limits(image::Limits::default());
        reader
            .decode()
            .map_err(|e| ReaderError::Image(e.to_string()))
    })
}

fn fit(img: DynamicImage, width: u32) -> DynamicImage {
    if img.width() == width {
        return img;
    }
    let h = (u64::from(img.height()) * u64::from(width) / u64::from(img.width().max(1))).max(1);
    img.resize_exact(
        width,
        u32::try_from(h).unwrap_or(u32::MAX),
        image::imageops::FilterType::Triangle,
    )
}

/// A generated cover: the format and the title, drawn with the system's fonts
/// ([`crate::generated_cover`]); on a machine without any font, drawn as a one-page PDF
/// with the built-in Helvetica, the title's Latin characters only.
fn generated(book: &Book, width: u32) -> Result<DynamicImage> {
    let hue = hue_of(book);
    let fonts = crate::generated_cover::Fonts::system();
    if let Some(img) = crate::generated_cover::draw_cover(fonts, book, hue, width) {
        return Ok(DynamicImage::ImageRgba8(img));
    }
    generated_pdf(book, hue, width)
}

/// The card's hue, from the book's hash (so a book keeps its colour).
fn hue_of(book: &Book) -> u32 {
    book.blake3
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// The card drawn by the PDF renderer with its built-in font (Latin characters only).
fn generated_pdf(book: &Book, hue: u32, width: u32) -> Result<DynamicImage> {
    let latin: String = book
        .title
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let words: Vec<&str> = latin.split_whitespace().collect();
    let mut lines: Vec<String> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some(l) if l.len() + w.len() < 15 => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push(w.chars().take(15).collect()),
        }
    }
    lines.truncate(8);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let badge = book.format.as_str().to_ascii_uppercase();
    let pdf = crate::demo::make_cover_pdf(&badge, &refs, hue);
    let img = crate::pdf::render(&book.path, &pdf, 1, width)?;
    Ok(DynamicImage::ImageRgba8(img))
}
