//! The course's client protocol, spoken by a python3 client written the course's way.

use crate::common;

use common::{python3, scripts, Server};
use sockit_reader::demo;

#[test]
fn interop_python3_course_client() {
    let gbk = encoding_rs::GBK
        .encode(&demo::sample_chinese(300))
        .0
        .into_owned();
    let pdf = demo::make_pdf("Course Book", "sockit", 7, &["body"]);
    let s = Server::start(&[
        ("挽歌-GBK.txt", gbk),
        ("Packet Analysis.pdf", pdf.clone()),
        (
            "Packet Analysis.jpg",
            demo::make_cover_jpeg(30, 40, [1, 2, 3]),
        ),
    ]);
    let book = s.lib.book_by_path("挽歌-GBK.txt").unwrap();
    assert_eq!(book.encoding.as_deref(), Some("GBK"));
    let chars = s.lib.config().txt_page_chars;
    let page = |n| s.rt.block_on(s.lib.txt_page(&book, n, chars)).unwrap().text;
    let expected = serde_json::json!({
        "txt": "挽歌-GBK.txt",
        "pdf": "Packet Analysis.pdf",
        "pdf_md5": sockit_reader::md5_hex(&pdf),
        "pages": book.pages,
        "page1": page(1), "page2": page(2), "page5": page(5), "page6": page(6),
    });
    assert!(book.pages.unwrap() >= 6);
    let exp_path = s.dir.path().join("expected.json");
    std::fs::write(&exp_path, serde_json::to_vec(&expected).unwrap()).unwrap();
    let out = python3()
        .arg(scripts().join("classic_client.py"))
        .arg(s.classic.ip().to_string())
        .arg(s.classic.port().to_string())
        .arg(s.dir.path())
        .arg(&exp_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("classic client: ok"));
}
