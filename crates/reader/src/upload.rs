//! Books added through the web (`POST /api/books`) and removed by administrators
//! (`DELETE /api/books/ID`).
//!
//! An upload is streamed into a staging file under the reader's state directory
//! (`STATE/uploads`, outside the books root, so the scanner never sees half a book),
//! hashed with BLAKE3 on the way and fsynced. Then, under one lock:
//!
//! 1. its **content decides its format** ([`sniff`], [`decide`]): `%PDF-` in the first
//!    KiB is a PDF, a zip whose first entry is `mimetype` = `application/epub+zip` (or a
//!    zip named `.epub`) an EPUB, other known binary signatures are refused, and the rest
//!    is a text candidate; a name whose extension names another format is refused;
//! 2. the same BLAKE3 already in the catalog is a **duplicate** (409 naming the book);
//! 3. the catalog's own inspection must read it (a TXT must decode as text, a PDF must
//!    parse and not be encrypted, an EPUB must open), or it is refused with that reason;
//! 4. its name is made safe ([`file_name`]: the last component only, no control or
//!    reserved characters, no leading dot, the format's extension, ` (2)` … when taken);
//! 5. it is **published atomically**: hard-linked from the staging directory into the
//!    books root beneath the root's directory handle (no existing file is ever replaced),
//!    or, across file systems, copied into a staging file next to the target, fsynced
//!    and linked there ([`sockit_runtime::confine::Root::create_staging`]); the
//!    directory is fsynced and the catalog rescanned.
//!
//! Deleting removes the file (and its `NAME.jpg` cover), the catalog row with its edits,
//! tags and shelf entries, and its full-text sections. Reading positions stay: they are
//! keyed by the content, so the same book added again finds them.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sockit_runtime::confine::Root;
use tracing::info;

use crate::catalog::{Book, Format};
use crate::error::{ReaderError, Result};

/// Bytes looked at to recognize a file's content.
pub const SNIFF_BYTES: usize = 1024;
/// Longest file name stem kept, in bytes (the extension comes on top).
pub const MAX_STEM_BYTES: usize = 150;
/// Most ` (N)` suffixes tried for a name already taken.
const MAX_SUFFIX: u32 = 999;

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// `%PDF-` within the first KiB.
    Pdf,
    /// A zip whose first entry is a stored `mimetype` of `application/epub+zip`.
    Epub,
    /// Another zip (an EPUB only if it says so by name and then opens as one).
    Zip,
    /// A known binary format that is no book (what it is).
    Binary(&'static str),
    /// Nothing binary recognized: text, if it decodes as text.
    Text,
}

/// Recognizes a file from its first bytes (at most [`SNIFF_BYTES`] are looked at).
/// Pure and total.
pub fn sniff(head: &[u8]) -> Sniffed {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Sniffed::Pdf;
    }
    if head.starts_with(b"PK\x03\x04") {
        // OCF: the first local header names `mimetype` (8 bytes at offset 30) and the
        // stored content follows the name and the extra field.
        let name_len = head.get(26..28).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let extra_len = head.get(28..30).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if let (Some(8), Some(extra)) = (name_len, extra_len) {
            let content = 38 + usize::from(extra);
            if head.get(30..38) == Some(b"mimetype")
                && head.get(content..content + 20) == Some(b"application/epub+zip")
            {
                return Sniffed::Epub;
            }
        }
        return Sniffed::Zip;
    }
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"RIFF", "a RIFF file (WebP, WAV or AVI)"),
        (b"\x7FELF", "an ELF program"),
        (b"MZ\x90\x00", "a Windows program"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"BZh", "a bzip2 archive"),
        (b"\xFD7zXZ\x00", "an xz archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (b"\x28\xB5\x2F\xFD", "a zstd archive"),
        (b"ustar", "a tar archive"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "an old Microsoft Office document",
        ),
        (b"OggS", "an Ogg file"),
        (b"ID3", "an MP3 file"),
        (b"fLaC", "a FLAC file"),
    ];
    for (magic, what) in SIGNATURES {
        if head.starts_with(magic) {
            return Sniffed::Binary(what);
        }
    }
    if head.get(257..262) == Some(b"ustar") {
        return Sniffed::Binary("a tar archive");
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Sniffed::Binary("an MP4 or HEIF file");
    }
    Sniffed::Text
}

/// The book format of an upload named `name` whose content is `sniffed`.
///
/// # Errors
/// `Unsupported` (415) for content that is no PDF, EPUB or text, and for a name whose
/// extension (`.pdf`, `.epub`, `.txt`) names another format than the content.
pub fn decide(name: &str, sniffed: Sniffed) -> Result<Format> {
    let named = Format::from_name(name);
    let content = match sniffed {
        Sniffed::Pdf => Format::Pdf,
        Sniffed::Epub => Format::Epub,
        Sniffed::Zip if named == Some(Format::Epub) => Format::Epub,
        Sniffed::Zip => {
            return Err(ReaderError::Unsupported(format!(
                "{} is a zip archive, not an EPUB: upload PDF, EPUB or TXT books",
                shown(name)
            )))
        }
        Sniffed::Binary(what) => {
            return Err(ReaderError::Unsupported(format!(
                "{} is {what}, not a book: upload PDF, EPUB or TXT books",
                shown(name)
            )))
        }
        Sniffed::Text => Format::Txt,
    };
    match named {
        Some(n) if n != content => Err(ReaderError::Unsupported(format!(
            "{} is named like {} file but its content is {}",
            shown(name),
            article(n),
            article(content)
        ))),
        _ => Ok(content),
    }
}

fn article(f: Format) -> &'static str {
    match f {
        Format::Pdf => "a PDF",
        Format::Epub => "an EPUB",
        Format::Txt => "a text",
    }
}

/// A client's name as shown in messages (short, no control characters).
fn shown(name: &str) -> String {
    let s: String = name.chars().filter(|c| !c.is_control()).take(80).collect();
    format!("`{s}`")
}

/// A safe file name for an upload the client calls `raw`, with `format`'s extension:
/// the last path component only (`/` and `\` both separate), control characters
/// dropped, `<>:"|?*` replaced by `_`, leading and trailing dots and spaces trimmed (no
/// hidden files), whitespace runs collapsed, the stem cut to [`MAX_STEM_BYTES`] on a
/// character boundary; `upload` when nothing is left. Pure and total.
pub fn file_name(raw: &str, format: Format) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let ext = format.as_str();
    let stem = match last.rsplit_once('.') {
        Some((stem, e)) if Format::from_name(&format!("x.{e}")) == Some(format) => stem,
        _ => last,
    };
    let cleaned: String = stem
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if "<>:\"|?*".contains(c) { '_' } else { c })
        .collect();
    let mut stem = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if stem.len() > MAX_STEM_BYTES {
        let mut cut = MAX_STEM_BYTES;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    let stem = stem.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let stem = if stem.is_empty() { "upload" } else { stem };
    format!("{stem}.{ext}")
}

/// `name` with ` (n)` before its extension (`n` ≥ 2), or `name` itself for 1.
fn numbered(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem} ({n}).{ext}"),
        None => format!("{name} ({n})"),
    }
}

/// Reads the first [`SNIFF_BYTES`] of a file.
///
/// # Errors
/// Read errors.
pub(crate) fn head(path: &Path) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).map_err(|e| ReaderError::io(path, e))?;
    let mut buf = Vec::with_capacity(SNIFF_BYTES);
    (&mut f)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut buf)
        .map_err(|e| ReaderError::io(path, e))?;
    Ok(buf)
}

/// A catalog row for inspecting an upload before it is kept ([`crate::scan`]'s reading
/// fills it in).
pub(crate) fn blank_book(name: &str, format: Format) -> Book {
    Book {
        id: 0,
        path: name.to_owned(),
        title: name.to_owned(),
        author: None,
        format,
        size: 0,
        pages: None,
        error: None,
        encoding: None,
        md5: String::new(),
        partial_md5: String::new(),
        blake3: String::new(),
        mtime: 0,
        cover_file: None,
        language: None,
        series: None,
        series_index: None,
        description: None,
        added: 0,
        tags: Vec::new(),
    }
}

/// Puts the fsynced staging file `staged` (named `staged_name` in `staging`) into
/// `books` under `name`, or `name (2)`, … when taken; never replaces a file. Returns the
/// name used.
///
/// # Errors
/// I/O errors (the directory is read-only, full …), or no free name.
pub(crate) fn publish(
    staging: &Root,
    staged_name: &str,
    staged: &Path,
    books: &Root,
    name: &str,
) -> Result<String> {
    use std::io::ErrorKind;
    for n in 1..=MAX_SUFFIX {
        let target = numbered(name, n);
        if books.exists(&target) {
            continue;
        }
        match staging.dir().hard_link(staged_name, books.dir(), &target) {
            Ok(()) => {
                sync_dir(books);
                return Ok(target);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == ErrorKind::CrossesDevices => {
                match copy_in(staged, books, &target) {
                    Ok(()) => return Ok(target),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(ReaderError::io(books.path().join(&target), e)),
                }
            }
            Err(e) => return Err(ReaderError::io(books.path().join(&target), e)),
        }
    }
    Err(ReaderError::Conflict(format!(
        "no free name for {} in the library",
        shown(name)
    )))
}

/// Across file systems: copies `staged` into a staging file beside `target`, fsyncs it
/// and links it into place (no overwrite).
fn copy_in(staged: &Path, books: &Root, target: &str) -> std::io::Result<()> {
    let mut st = books.create_staging(target, false)?;
    let mut out = st
        .take_file()
        .ok_or_else(|| std::io::Error::other("staging file already taken"))?;
    let mut src = std::fs::File::open(staged)?;
    src.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut src, &mut out)?;
    out.sync_all()?;
    drop(out);
    st.commit(false)
}

/// Makes a new directory entry durable (some file systems cannot sync directories).
fn sync_dir(root: &Root) {
    if let Ok(d) = root.dir().try_clone() {
        let _ = d.into_std_file().sync_all();
    }
}

/// Removes a book's file and its cover file (`NAME.jpg` beside it) from `books`; a file
/// already gone is fine.
///
/// # Errors
/// I/O errors other than "not found".
pub(crate) fn remove_files(books: &Root, book: &Book) -> Result<()> {
    for rel in std::iter::once(book.path.as_str()).chain(book.cover_file.as_deref()) {
        match books.dir().remove_file(rel) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ReaderError::io(books.path().join(rel), e)),
        }
    }
    sync_dir(books);
    info!(book = %book.path, id = book.id, "deleted a book");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_decides() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Pdf);
        assert_eq!(sniff(b"junk before\n%PDF-1.4"), Sniffed::Pdf);
        let mut epub = b"PK\x03\x04".to_vec();
        epub.extend([0u8; 22]);
        epub.extend(8u16.to_le_bytes());
        epub.extend(0u16.to_le_bytes());
        epub.extend(b"mimetypeapplication/epub+zip");
        assert_eq!(sniff(&epub), Sniffed::Epub);
        assert_eq!(sniff(b"PK\x03\x04rest of a zip"), Sniffed::Zip);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Sniffed::Binary("a PNG image"));
        assert_eq!(sniff("从前有座山".as_bytes()), Sniffed::Text);
        assert_eq!(sniff(b""), Sniffed::Text);
    }

    #[test]
    fn names_must_agree_with_the_content() {
        assert_eq!(decide("a.pdf", Sniffed::Pdf).unwrap(), Format::Pdf);
        assert_eq!(decide("a", Sniffed::Pdf).unwrap(), Format::Pdf);
        assert_eq!(decide("a.EPUB", Sniffed::Zip).unwrap(), Format::Epub);
        assert_eq!(decide("notes.md", Sniffed::Text).unwrap(), Format::Txt);
        for (name, s) in [
            ("a.pdf", Sniffed::Text),
            ("a.txt", Sniffed::Pdf),
            ("a.epub", Sniffed::Pdf),
            ("a.zip", Sniffed::Zip),
            ("a.txt", Sniffed::Binary("a PNG image")),
        ] {
            let e = decide(name, s).unwrap_err();
            assert!(matches!(e, ReaderError::Unsupported(_)), "{name} {s:?}");
        }
        let e = decide("a.pdf", Sniffed::Text).unwrap_err().to_string();
        assert_eq!(
            e,
            "`a.pdf` is named like a PDF file but its content is a text"
        );
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(file_name("Dune.epub", Format::Epub), "Dune.epub");
        assert_eq!(file_name("../../etc/passwd", Format::Txt), "passwd.txt");
        assert_eq!(file_name("C:\\books\\a.PDF", Format::Pdf), "a.pdf");
        assert_eq!(file_name(".hidden.txt", Format::Txt), "hidden.txt");
        assert_eq!(file_name("a\u{0}b\nc?.txt", Format::Txt), "abc_.txt");
        assert_eq!(
            file_name("  two   words .txt", Format::Txt),
            "two words.txt"
        );
        assert_eq!(file_name("notes.md", Format::Txt), "notes.md.txt");
        assert_eq!(file_name("", Format::Pdf), "upload.pdf");
        assert_eq!(file_name("...", Format::Pdf), "upload.pdf");
        assert_eq!(file_name("dir/", Format::Pdf), "upload.pdf");
        assert_eq!(file_name("山庙故事.txt", Format::Txt), "山庙故事.txt");
        let long = file_name(&"山".repeat(100), Format::Txt);
        assert!(
            long.len() <= MAX_STEM_BYTES + 4 && long.ends_with("山.txt"),
            "{long}"
        );
        assert_eq!(numbered("a.txt", 1), "a.txt");
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
    }

    proptest! {
        #[test]
        fn any_name_gives_a_plain_visible_name(raw in any::<String>(), head in any::<Vec<u8>>()) {
            let _ = sniff(&head);
            let name = file_name(&raw, Format::Epub);
            prop_assert!(name.ends_with(".epub"));
            prop_assert!(!name.starts_with('.'));
            prop_assert!(!name.contains(['/', '\\']));
            prop_assert!(!name.chars().any(char::is_control));
            prop_assert!(crate::library::check_name(&name).is_ok());
            prop_assert!(name.len() <= MAX_STEM_BYTES + ".epub".len());
        }
    }
}
