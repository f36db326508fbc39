//! Generated covers draw the title in its own script with the system's fonts: a Chinese
//! title (Noto CJK, which scripts/test.sh installs) and a Latin one both leave their
//! strokes in the title area of the card.

use crate::common;

use common::Server;

/// The share of the cover's title area (below the badge line) that is drawn in white.
fn title_ink(s: &Server, id: i64) -> f64 {
    let r = s.get(&format!("/api/books/{id}/cover?w=300"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let img = image::load_from_memory(&r.body).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (300, 420));
    let (mut white, mut all) = (0u64, 0u64);
    for y in 100..340 {
        for x in 20..280 {
            all += 1;
            if img.get_pixel(x, y).0.iter().all(|&c| c > 200) {
                white += 1;
            }
        }
    }
    white as f64 / all as f64
}

#[test]
fn generated_covers_draw_cjk_and_latin_titles_with_system_fonts() {
    let s = Server::start(&[
        ("山庙故事.txt", "从前有一座山。\n".as_bytes().to_vec()),
        ("Harbour Log.txt", b"Boats.\n".to_vec()),
        ("x.txt", b"Untitled.\n".to_vec()),
    ]);
    let cjk = title_ink(&s, s.id("山庙故事.txt"));
    assert!(
        cjk > 0.005,
        "the Chinese title left {:.3} % ink: no CJK font found (install fonts-noto-cjk; \
         scripts/test.sh does)",
        cjk * 100.0
    );
    let latin = title_ink(&s, s.id("Harbour Log.txt"));
    assert!(
        latin > 0.02,
        "the Latin title left {:.3} % ink",
        latin * 100.0
    );
    // A one-letter title leaves less ink than four CJK characters: the strokes are the
    // title's, not a fixed picture.
    let short = title_ink(&s, s.id("x.txt"));
    assert!(short > 0.0 && short < cjk, "{short} vs {cjk}");
}
