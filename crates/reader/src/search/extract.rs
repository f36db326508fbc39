//! The searchable text of a book, as sections with a location: a TXT book's pages (at
//! the server's page size, decoded from its detected encoding), an EPUB's chapters (spine
//! items, markup removed, block elements ending lines) and a PDF's pages (its text layer,
//! from lopdf). Blocking; every parser is the catalog's own, with its limits.

use std::io::{Read, Seek};

use crate::epub::xml::{Element, Node};
use crate::epub::Epub;
use crate::error::Result;

/// Most bytes of text indexed per section (the rest of a huge page or chapter is not
/// searchable).
pub const MAX_SECTION_BYTES: usize = 4 << 20;

/// One searchable part of a book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The page (TXT, PDF) or chapter (EPUB), 1-based.
    pub location: u64,
    /// Its text.
    pub text: String,
}

fn section(location: u64, mut text: String) -> Option<Section> {
    if text.len() > MAX_SECTION_BYTES {
        let mut cut = MAX_SECTION_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    (!text.trim().is_empty()).then_some(Section { location, text })
}

/// The pages of a TXT book at `page_chars` characters per page.
///
/// # Errors
/// `Empty`, `NotText`.
pub fn txt(name: &str, bytes: &[u8], page_chars: usize) -> Result<Vec<Section>> {
    let d = crate::txt::decode::decode(name, bytes)?;
    let paged = crate::txt::pages::Paged::new(d.text, page_chars.max(1));
    Ok((1..=paged.len())
        .filter_map(|n| section(n as u64, paged.page(n)?.to_owned()))
        .collect())
}

/// The chapters of an opened EPUB (a chapter that cannot be read is left out).
pub(crate) fn epub<R: Read + Seek>(book: &mut Epub<R>) -> Vec<Section> {
    let spine = book.package.spine.clone();
    spine
        .iter()
        .enumerate()
        .filter_map(|(i, path)| {
            book.archive.begin();
            let bytes = book.archive.read(path).ok()?;
            let tree = crate::epub::xml::parse(&bytes);
            let body = tree
                .find("body")
                .or_else(|| tree.is("body").then_some(&tree));
            let mut text = String::new();
            html_text(body.unwrap_or(&tree), &mut text);
            section(i as u64 + 1, text)
        })
        .collect()
}

/// Elements whose content is not text a reader sees.
const SKIPPED: &[&str] = &["head", "script", "style", "title", "noscript", "svg"];
/// Elements that end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "section",
    "article",
    "pre",
    "dt",
    "dd",
    "figcaption",
    "hr",
];

/// The text of an XHTML element, whitespace collapsed, a line per block element.
pub(crate) fn html_text(root: &Element, out: &mut String) {
    // Depth-first without recursion (the tree may be deep); `None` marks a block's end.
    let mut stack: Vec<Option<&Node>> = root.children.iter().rev().map(Some).collect();
    while let Some(item) = stack.pop() {
        match item {
            None => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            Some(Node::Text(t)) => {
                for (i, word) in t.split_whitespace().enumerate() {
                    let glue = i > 0 || t.starts_with(char::is_whitespace);
                    if glue && !out.is_empty() && !out.ends_with(['\n', ' ']) {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
                if t.ends_with(char::is_whitespace)
                    && !out.is_empty()
                    && !out.ends_with(['\n', ' '])
                {
                    out.push(' ');
                }
            }
            Some(Node::Element(e)) => {
                let name = e.local().to_ascii_lowercase();
                if SKIPPED.contains(&name.as_str()) {
                    continue;
                }
                if BLOCKS.contains(&name.as_str()) {
                    stack.push(None);
                }
                stack.extend(e.children.iter().rev().map(Some));
            }
        }
    }
}

/// The text layer of every page of a PDF (a page whose text cannot be extracted is left
/// out). Runs under [`crate::pdf::guard`]: a parser panic is an error.
///
/// # Errors
/// `BadPdf`.
pub fn pdf(name: &str, bytes: &[u8]) -> Result<Vec<Section>> {
    crate::pdf::guard(name, || {
        let doc =
            lopdf::Document::load_mem(bytes).map_err(|e| crate::error::ReaderError::BadPdf {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(doc
            .get_pages()
            .keys()
            .filter_map(|&n| section(u64::from(n), doc.extract_text(&[n]).ok()?))
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_blocks_end_lines_and_inline_markup_joins() {
        let tree = crate::epub::xml::parse(
            b"<html><head><title>T</title><style>p{}</style></head><body>\
              <h1>Chapter <i>Two</i></h1><p>The keeper\n  climbs.</p><p>Wo<b>rd</b></p>\
              <script>alert(1)</script></body></html>",
        );
        let mut out = String::new();
        html_text(tree.find("body").unwrap(), &mut out);
        assert_eq!(out, "Chapter Two\nThe keeper climbs.\nWord\n");
    }

    #[test]
    fn txt_pages_are_sections() {
        let text = "alpha\n".repeat(10);
        let s = txt("a.txt", text.as_bytes(), 12).unwrap();
        assert_eq!(s[0].location, 1);
        assert!(s.len() >= 5, "{s:?}");
        assert!(txt("e.txt", b"", 10).is_err());
    }

    #[test]
    fn pdf_pages_have_their_text() {
        let bytes = crate::demo::make_pdf("T", "A", 3, &["lighthouse"]);
        let s = pdf("t.pdf", &bytes).unwrap();
        assert_eq!(s.iter().map(|s| s.location).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(s[2].text.contains("lighthouse"), "{:?}", s[2].text);
        assert!(pdf("g.pdf", b"%PDF-1.4 garbage").is_err());
    }

    #[test]
    fn huge_sections_are_cut_on_a_character_boundary() {
        let s = section(1, "山".repeat(MAX_SECTION_BYTES)).unwrap();
        assert!(s.text.len() <= MAX_SECTION_BYTES);
        assert!(section(2, "  \n".into()).is_none());
    }
}
