//! The sample library `sockit serve --demo` (and a first start with an empty `books/`)
//! writes: a UTF-8 TXT, a GBK TXT, and multi-page PDFs generated here with lopdf, one of
//! them with a `NAME.jpg` cover next to it (the course layout). Also used by the tests.

use std::path::Path;

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

use crate::error::{ReaderError, Result};

/// A generated PDF: `pages` pages of A5-ish size with a coloured band, the title, a big
/// page number and body lines, plus `/Title` and `/Author` metadata.
pub fn make_pdf(title: &str, author: &str, pages: u32, body: &[&str]) -> Vec<u8> {
    let bodies = vec![body; pages as usize];
    make_pdf_pages(title, author, &bodies)
}

/// A generated PDF like [`make_pdf`] whose page N carries the body lines `bodies[N - 1]`
/// (one page per element).
pub fn make_pdf_pages(title: &str, author: &str, bodies: &[&[&str]]) -> Vec<u8> {
    let pages = u32::try_from(bodies.len()).unwrap_or(u32::MAX);
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let bold = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica-Bold",
    });
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font, "F2" => bold },
    });
    let mut kids = Vec::new();
    for (n, body) in (1..=pages).zip(bodies) {
        let hue = (n * 47 % 360) as f32 / 360.0;
        let (r, g, b) = (0.2 + 0.5 * hue, 0.35, 0.75 - 0.4 * hue);
        let mut ops = vec![
            Operation::new("rg", vec![r.into(), g.into(), b.into()]),
            Operation::new("re", vec![0.into(), 520.into(), 420.into(), 75.into()]),
            Operation::new("f", vec![]),
            Operation::new("BT", vec![]),
            Operation::new("rg", vec![1.into(), 1.into(), 1.into()]),
            Operation::new("Tf", vec!["F2".into(), 20.into()]),
            Operation::new("Td", vec![30.into(), 550.into()]),
            Operation::new("Tj", vec![Object::string_literal(title)]),
            Operation::new("ET", vec![]),
            Operation::new("BT", vec![]),
            Operation::new("rg", vec![0.1.into(), 0.1.into(), 0.1.into()]),
            Operation::new("Tf", vec!["F2".into(), 96.into()]),
            Operation::new("Td", vec![150.into(), 300.into()]),
            Operation::new("Tj", vec![Object::string_literal(n.to_string())]),
            Operation::new("ET", vec![]),
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
            Operation::new("Td", vec![30.into(), 480.into()]),
            Operation::new("TL", vec![15.into()]),
            Operation::new(
                "Tj",
                vec![Object::string_literal(format!(
                    "Page {n} of {pages} - {author}"
                ))],
            ),
        ];
        for line in body.iter() {
            ops.push(Operation::new("'", vec![Object::string_literal(*line)]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops };
        let stream = Stream::new(dictionary! {}, content.encode().unwrap_or_default());
        let content_id = doc.add_object(stream);
        kids.push(Object::from(doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        })));
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => pages,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 420.into(), 595.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    let info = doc.add_object(dictionary! {
        "Title" => Object::string_literal(title),
        "Author" => Object::string_literal(author),
    });
    doc.trailer.set("Root", catalog);
    doc.trailer.set("Info", info);
    doc.compress();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut out);
    out
}

/// A one-page cover: a coloured background, a format badge and the title lines.
pub fn make_cover_pdf(badge: &str, lines: &[&str], hue: u32) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let bold = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica-Bold",
    });
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F2" => bold } });
    let h = (hue % 360) as f32 / 360.0;
    let (r, g, b) = (0.25 + 0.45 * h, 0.3 + 0.2 * (1.0 - h), 0.55 - 0.25 * h);
    let mut ops = vec![
        Operation::new("rg", vec![r.into(), g.into(), b.into()]),
        Operation::new("re", vec![0.into(), 0.into(), 300.into(), 420.into()]),
        Operation::new("f", vec![]),
        Operation::new("rg", vec![1.into(), 1.into(), 1.into()]),
        Operation::new("re", vec![20.into(), 330.into(), 260.into(), 2.into()]),
        Operation::new("f", vec![]),
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F2".into(), 14.into()]),
        Operation::new("Td", vec![20.into(), 345.into()]),
        Operation::new("Tj", vec![Object::string_literal(badge)]),
        Operation::new("ET", vec![]),
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F2".into(), 26.into()]),
        Operation::new("Td", vec![20.into(), 290.into()]),
        Operation::new("TL", vec![32.into()]),
    ];
    for (i, line) in lines.iter().enumerate() {
        let op = if i == 0 { "Tj" } else { "'" };
        ops.push(Operation::new(op, vec![Object::string_literal(*line)]));
    }
    ops.push(Operation::new("ET", vec![]));
    let content = Content { operations: ops };
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        content.encode().unwrap_or_default(),
    ));
    let page = doc.add_object(
        dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
    );
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![Object::from(page)], "Count" => 1,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 300.into(), 420.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    let _ = doc.save_to(&mut out);
    out
}

/// A sample story in Chinese (used for the UTF-8 and GBK demo books).
pub fn sample_chinese(paragraphs: usize) -> String {
    let mut s = String::from("网络阅读器示例\n\n");
    for i in 1..=paragraphs {
        s.push_str(&format!(
            "第{i}段。从前有一座山，山里有一座庙，庙里有一个老和尚在给小和尚讲故事。\
             他讲的是：从前有一座山，山里有一座庙。这本书用来测试分页、编码检测和阅读进度。\n"
        ));
    }
    s
}

/// A sample story in English.
pub fn sample_english(paragraphs: usize) -> String {
    let mut s = String::from("Alice's Adventures in Wonderland (sample)\n\n");
    for i in 1..=paragraphs {
        s.push_str(&format!(
            "{i}. Alice was beginning to get very tired of sitting by her sister on the bank, \
             and of having nothing to do: once or twice she had peeped into the book her sister \
             was reading, but it had no pictures or conversations in it, 'and what is the use of \
             a book,' thought Alice 'without pictures or conversations?'\n"
        ));
    }
    s
}

/// A plain JPEG cover: a vertical gradient.
pub fn make_cover_jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, y| {
        let t = y as f32 / h.max(1) as f32;
        image::Rgb(rgb.map(|c| (f32::from(c) * (1.0 - 0.5 * t)) as u8))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    let _ = img.write_to(&mut out, image::ImageFormat::Jpeg);
    out.into_inner()
}

/// Writes the sample books into `dir` (existing files are left alone). Returns the names
/// written.
///
/// # Errors
/// The files cannot be written.
pub fn write_samples(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| ReaderError::io(dir, e))?;
    let chinese = sample_chinese(300);
    let (gbk, _, _) = encoding_rs::GBK.encode(&chinese);
    let body = [
        "This PDF was generated by sockit for the demo library.",
        "Use the arrow keys to turn pages, or type a page number to jump.",
        "Pages are rendered on the server by hayro and cached on disk.",
    ];
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("alice.txt", sample_english(400).into_bytes()),
        ("alice.jpg", make_cover_jpeg(300, 420, [200, 90, 60])),
        ("山庙故事.txt", sample_chinese(300).into_bytes()),
        ("庙里的故事-GBK.txt", gbk.into_owned()),
        (
            "Socket Programming Notes.pdf",
            make_pdf("Socket Programming Notes", "sockit", 12, &body),
        ),
        (
            "Socket Programming Notes.jpg",
            make_cover_jpeg(300, 420, [40, 110, 170]),
        ),
        (
            "The Network Reader.pdf",
            make_pdf("The Network Reader", "sockit", 30, &body),
        ),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        crate::atomic::write(&path, &bytes)?;
        written.push(name.to_owned());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pdf_has_pages_and_metadata() {
        let pdf = make_pdf("T", "A", 3, &["x"]);
        let info = crate::pdf::inspect("t.pdf", &pdf).unwrap();
        assert_eq!(info.pages, 3);
        assert_eq!(info.title.as_deref(), Some("T"));
        assert_eq!(info.author.as_deref(), Some("A"));
    }
}
