//! The cover drawn for a book that has none: a coloured card with the format badge and
//! the title, in any script the machine has a font for. System fonts are found with
//! fontdb (the fontconfig directories, then the usual font folders); each character is
//! drawn with the first face, in order of preference (bold sans faces of common families,
//! CJK families next, then every other face), that has a glyph for it, so a title mixing
//! Latin and Han finds both. Lines wrap at spaces, and between any two CJK characters.
//!
//! When no installed face covers the title — or the machine has no fonts at all — the
//! cover stays readable: the characters no face has are left out, and a title with
//! nothing left is replaced by the book's page or chapter count (the web UI prints the
//! full title under every cover anyway). With no fonts at all the card is drawn with the
//! PDF renderer's built-in Helvetica (Latin letters only).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use ab_glyph::{Font, FontArc, FontRef, PxScale, ScaleFont};
use image::{Rgba, RgbaImage};

use crate::catalog::{Book, Format};
use crate::search::tokenizer::is_cjk;

/// The card's size in points (scaled to the width asked for).
const CARD: (f32, f32) = (300.0, 420.0);
/// Title lines drawn at most.
const MAX_LINES: usize = 7;
/// Families tried first, in this order (the faces nearest to bold of each).
const PREFERRED: &[&str] = &[
    "Noto Sans",
    "DejaVu Sans",
    "Liberation Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Noto Sans Arabic",
    "Noto Sans Hebrew",
    "Noto Sans Devanagari",
    "Noto Sans Thai",
];

/// The machine's fonts, in order of preference; faces are read when first needed.
pub(crate) struct Fonts {
    db: fontdb::Database,
    order: Vec<fontdb::ID>,
    loaded: Mutex<HashMap<fontdb::ID, Option<FontArc>>>,
    /// The face chosen for each character so far.
    chosen: Mutex<HashMap<char, Option<fontdb::ID>>>,
}

impl Fonts {
    /// The fonts of `db`, ordered (see the module documentation).
    pub(crate) fn new(db: fontdb::Database) -> Self {
        let mut faces: Vec<&fontdb::FaceInfo> = db
            .faces()
            .filter(|f| f.style == fontdb::Style::Normal)
            .collect();
        let family_rank = |f: &fontdb::FaceInfo| {
            f.families
                .iter()
                .filter_map(|(name, _)| PREFERRED.iter().position(|p| p == name))
                .min()
                .unwrap_or(PREFERRED.len())
        };
        faces.sort_by_key(|f| {
            (
                family_rank(f),
                f.monospaced,
                f.weight.0.abs_diff(700),
                f.post_script_name.clone(),
            )
        });
        let order = faces.iter().map(|f| f.id).collect();
        Self {
            db,
            order,
            loaded: Mutex::new(HashMap::new()),
            chosen: Mutex::new(HashMap::new()),
        }
    }

    /// The system's fonts, found once per process.
    pub(crate) fn system() -> &'static Fonts {
        static FONTS: OnceLock<Fonts> = OnceLock::new();
        FONTS.get_or_init(|| {
            let mut db = fontdb::Database::new();
            db.load_system_fonts();
            Fonts::new(db)
        })
    }

    /// Whether there is any face at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The preferred face with a glyph for `c`, if any.
    pub(crate) fn face_for(&self, c: char) -> Option<FontArc> {
        let cached = self
            .chosen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&c)
            .copied();
        let id = match cached {
            Some(id) => id,
            None => {
                let id = self.order.iter().copied().find(|&id| {
                    self.db
                        .with_face_data(id, |data, index| {
                            FontRef::try_from_slice_and_index(data, index)
                                .is_ok_and(|f| f.glyph_id(c).0 != 0)
                        })
                        .unwrap_or(false)
                });
                self.chosen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(c, id);
                id
            }
        }?;
        self.load(id)
    }

    fn load(&self, id: fontdb::ID) -> Option<FontArc> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded
            .entry(id)
            .or_insert_with(|| {
                self.db
                    .with_face_data(id, |data, index| {
                        ab_glyph::FontVec::try_from_vec_and_index(data.to_vec(), index).ok()
                    })
                    .flatten()
                    .map(FontArc::new)
            })
            .clone()
    }
}

/// A piece of a line drawn with one face.
struct Run {
    font: FontArc,
    text: String,
}

/// `text` cut into runs of one face each; characters no face has are dropped.
fn runs(fonts: &Fonts, text: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for c in text.chars() {
        if c.is_whitespace() {
            if let Some(last) = out.last_mut() {
                last.text.push(' ');
            }
            continue;
        }
        let Some(font) = fonts.face_for(c) else {
            continue;
        };
        match out.last_mut() {
            // Clones of one loaded face share its data.
            Some(last)
                if std::ptr::eq(last.font.font_data().as_ptr(), font.font_data().as_ptr()) =>
            {
                last.text.push(c)
            }
            _ => out.push(Run {
                font,
                text: c.to_string(),
            }),
        }
    }
    out
}

/// Words of a title for wrapping: space-separated words, and each CJK character alone.
fn words(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in title.split_whitespace() {
        let mut cur = String::new();
        for c in w.chars() {
            if is_cjk(c) {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out.push(" ".into());
    }
    out.pop();
    out
}

/// The scale that makes one em of `font` `size` px (faces differ in how tall their
/// ascent and descent are for one em: CJK faces are taller).
fn scale_for(font: &FontArc, size: f32) -> PxScale {
    let em = font.units_per_em().unwrap_or(1000.0).max(1.0);
    PxScale::from(size * font.height_unscaled() / em)
}

/// The width of `text` at `size` px with the faces of `fonts`.
fn width_of(fonts: &Fonts, text: &str, size: f32) -> f32 {
    runs(fonts, text)
        .iter()
        .map(|r| {
            let f = r.font.as_scaled(scale_for(&r.font, size));
            r.text
                .chars()
                .map(|c| f.h_advance(f.glyph_id(c)))
                .sum::<f32>()
        })
        .sum()
}

/// The title's lines at `size` px, at most `max_width` px wide each.
fn wrap(fonts: &Fonts, title: &str, size: f32, max_width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in words(title) {
        let glue_free = w == " " && cur.is_empty();
        if glue_free {
            continue;
        }
        let candidate = format!("{cur}{w}");
        if width_of(fonts, candidate.trim_end(), size) <= max_width || cur.is_empty() {
            cur = candidate;
        } else {
            lines.push(cur.trim_end().to_owned());
            cur = if w == " " { String::new() } else { w };
        }
    }
    if !cur.trim().is_empty() {
        lines.push(cur.trim_end().to_owned());
    }
    // A single word wider than the card is cut by characters.
    lines
        .into_iter()
        .flat_map(|l| {
            if width_of(fonts, &l, size) <= max_width {
                return vec![l];
            }
            let mut parts = vec![String::new()];
            for c in l.chars() {
                let last = parts
                    .last_mut()
                    .map(|p| format!("{p}{c}"))
                    .unwrap_or_default();
                if width_of(fonts, &last, size) > max_width
                    && parts.last().is_some_and(|p| !p.is_empty())
                {
                    parts.push(c.to_string());
                } else if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
            }
            parts
        })
        .collect()
}

/// Draws `text` with its left end at `x` and its baseline at `y`.
fn draw(img: &mut RgbaImage, fonts: &Fonts, text: &str, size: f32, x: f32, y: f32, color: [u8; 3]) {
    let mut pen = x;
    for run in runs(fonts, text) {
        let scale = scale_for(&run.font, size);
        let scaled = run.font.as_scaled(scale);
        for c in run.text.chars() {
            let id = scaled.glyph_id(c);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, y));
            pen += scaled.h_advance(id);
            let Some(outline) = run.font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let px = b.min.x as i64 + i64::from(gx);
                let py = b.min.y as i64 + i64::from(gy);
                let (Ok(px), Ok(py)) = (u32::try_from(px), u32::try_from(py)) else {
                    return;
                };
                if px >= img.width() || py >= img.height() {
                    return;
                }
                let p = img.get_pixel_mut(px, py);
                let a = cov.clamp(0.0, 1.0);
                for (ch, want) in p.0.iter_mut().zip(color) {
                    *ch = (f32::from(*ch) * (1.0 - a) + f32::from(want) * a).round() as u8;
                }
            });
        }
    }
}

/// The card's background colour for `hue` (as the PDF-drawn card has it).
pub(crate) fn background(hue: u32) -> [u8; 3] {
    let h = (hue % 360) as f32 / 360.0;
    let c = |v: f32| (v * 255.0).round() as u8;
    [
        c(0.25 + 0.45 * h),
        c(0.3 + 0.2 * (1.0 - h)),
        c(0.55 - 0.25 * h),
    ]
}

/// What the card says when no face has any of the title's characters.
fn fallback_title(book: &Book) -> String {
    match (book.format, book.pages) {
        (Format::Epub, Some(n)) => format!("{n} chapters"),
        (_, Some(n)) => format!("{n} pages"),
        _ => "Unreadable".to_owned(),
    }
}

/// The generated cover of `book`, `width` px wide, drawn with `fonts`; `None` when there
/// is no font at all (the caller then draws the card with the PDF renderer).
pub(crate) fn draw_cover(fonts: &Fonts, book: &Book, hue: u32, width: u32) -> Option<RgbaImage> {
    if fonts.is_empty() {
        return None;
    }
    let k = width as f32 / CARD.0;
    let height = (CARD.1 * k).round().max(1.0) as u32;
    let bg = background(hue);
    let mut img = RgbaImage::from_pixel(width, height, Rgba([bg[0], bg[1], bg[2], 255]));
    let white = [255, 255, 255];
    let badge = book.format.as_str().to_ascii_uppercase();
    draw(&mut img, fonts, &badge, 14.0 * k, 20.0 * k, 75.0 * k, white);
    for y in (85.0 * k) as u32..((87.0 * k) as u32).max((85.0 * k) as u32 + 1) {
        for x in (20.0 * k) as u32..((280.0 * k) as u32).min(width) {
            if y < height {
                img.put_pixel(x, y, Rgba([255, 255, 255, 255]));
            }
        }
    }
    let size = 26.0 * k;
    let mut lines = wrap(fonts, &book.title, size, 260.0 * k);
    if lines.iter().all(|l| runs(fonts, l).is_empty()) {
        lines = vec![fallback_title(book)];
    }
    if lines.len() > MAX_LINES {
        lines.truncate(MAX_LINES);
        if let Some(last) = lines.last_mut() {
            last.push('…');
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let y = (130.0 + 32.0 * i as f32) * k;
        draw(&mut img, fonts, line, size, 20.0 * k, y, white);
    }
    Some(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(title: &str) -> Book {
        let mut b = crate::upload::blank_book("x.txt", Format::Txt);
        b.title = title.into();
        b.pages = Some(3);
        b
    }

    #[test]
    fn words_split_at_spaces_and_between_cjk_characters() {
        assert_eq!(words("The Sea"), ["The", " ", "Sea"]);
        assert_eq!(words("山庙 tales"), ["山", "庙", " ", "tales"]);
    }

    #[test]
    fn without_fonts_nothing_is_drawn_here() {
        let fonts = Fonts::new(fontdb::Database::new());
        assert!(fonts.is_empty());
        assert!(draw_cover(&fonts, &book("Any"), 1, 200).is_none());
        assert!(runs(&fonts, "abc").is_empty());
    }

    #[test]
    fn a_title_no_face_has_is_replaced_by_the_page_count() {
        assert_eq!(fallback_title(&book("山")), "3 pages");
    }
}
