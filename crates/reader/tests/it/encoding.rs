//! The same text in seven encodings decodes to the same pages.

use crate::common;

use common::Server;

/// Characters that exist in GBK, Big5 and Shift_JIS alike (and in every Unicode form).
fn corpus() -> String {
    let lines = [
        "山中有木，木下有石。",
        "日月出入天地之間，人生如水。",
        "大小上下左右前後。",
        "王子在田中立，手中有花。",
        "雨後空山，白雲生海上。",
    ];
    let mut s = String::new();
    for i in 0..80 {
        s.push_str(lines[i % lines.len()]);
        s.push_str(&format!(" {i}\n"));
    }
    s
}

fn encodings(text: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(text.as_bytes());
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    let enc = |e: &'static encoding_rs::Encoding| {
        let (bytes, _, lossy) = e.encode(text);
        assert!(!lossy, "corpus not representable in {}", e.name());
        bytes.into_owned()
    };
    vec![
        ("utf8.txt", text.as_bytes().to_vec()),
        ("utf8-bom.txt", bom),
        ("utf16le.txt", le),
        ("utf16be.txt", be),
        ("gbk.txt", enc(encoding_rs::GBK)),
        ("big5.txt", enc(encoding_rs::BIG5)),
        ("sjis.txt", enc(encoding_rs::SHIFT_JIS)),
    ]
}

#[test]
fn same_text_same_pages_in_every_encoding() {
    let text = corpus();
    let files = encodings(&text);
    let s = Server::start(&files);
    let mut expected_encoding = std::collections::HashMap::new();
    expected_encoding.insert("utf8.txt", "UTF-8");
    expected_encoding.insert("utf8-bom.txt", "UTF-8");
    expected_encoding.insert("utf16le.txt", "UTF-16LE");
    expected_encoding.insert("utf16be.txt", "UTF-16BE");
    expected_encoding.insert("gbk.txt", "GBK");
    expected_encoding.insert("big5.txt", "Big5");
    expected_encoding.insert("sjis.txt", "Shift_JIS");
    let reference = sockit_reader::Paged::new(text.clone(), 100);
    assert!(reference.len() > 5);
    for (name, _) in &files {
        let book = s.lib.book_by_path(name).unwrap();
        assert_eq!(book.error, None, "{name}");
        assert_eq!(
            book.encoding.as_deref(),
            Some(expected_encoding[name]),
            "{name}"
        );
        let paged = s.rt.block_on(s.lib.txt(&book, 100)).unwrap();
        assert_eq!(paged.len(), reference.len(), "{name}");
        for n in 1..=reference.len() {
            assert_eq!(paged.page(n), reference.page(n), "{name} page {n}");
        }
        // And over HTTP, page 3 is the same text.
        let j = s.json(&format!("/api/books/{}/text/3?chars=100", book.id));
        assert_eq!(j["text"].as_str(), reference.page(3), "{name} over HTTP");
    }
}

#[test]
fn txt_downloads_are_transcoded_to_utf8_on_request() {
    // CRLF line endings, to show they survive the transcoding.
    let text = corpus().replace('\n', "\r\n");
    let files = encodings(&text);
    let s = Server::start(&files);
    for (name, raw) in &files {
        let id = s.id(name);
        let plain = s.get(&format!("/api/books/{id}/file"));
        assert_eq!(plain.status, 200, "{name}");
        assert_eq!(&plain.body, raw, "{name}: the file as it is");
        let r = s.get(&format!("/api/books/{id}/file?utf8=1"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{name}"
        );
        assert_eq!(
            String::from_utf8(r.body.clone()).unwrap(),
            text,
            "{name}: the same text in UTF-8, no BOM, CRLF kept"
        );
        assert_ne!(r.header("etag"), plain.header("etag"), "{name}");
        assert!(r
            .header("content-disposition")
            .unwrap()
            .contains(&format!("filename=\"{name}\"")));
        // Ranges count the UTF-8 bytes.
        let part = s.req(
            "GET",
            &format!("/api/books/{id}/file?utf8=1"),
            &[("Range", "bytes=0-2")],
            b"",
        );
        assert_eq!(part.status, 206, "{name}");
        assert_eq!(part.body, "山".as_bytes(), "{name}");
        let total = text.len();
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes 0-2/{total}").as_str())
        );
    }
    let gbk = s.id("gbk.txt");
    assert_eq!(
        s.get(&format!("/api/books/{gbk}/file"))
            .header("content-type"),
        Some("text/plain; charset=gbk")
    );
    assert_eq!(
        s.get(&format!("/api/books/{gbk}/file?utf8=maybe")).status,
        400
    );
}
