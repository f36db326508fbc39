//! A book's text as the terminal reader holds it: one string made of the server's units
//! (a TXT book's pages at the server's page size, an EPUB's chapters, a PDF's pages), and
//! the mapping between a place in that string and the shared reading position.
//!
//! The server keeps one position per account and book: a unit number (`page`: the TXT
//! page, PDF page or EPUB chapter) and a `percentage`. The web UI reads the place inside
//! the unit from the percentage as `percentage × units − (page − 1)` (the fraction of the
//! chapter scrolled); the terminal reader writes and reads it the same way, the fraction
//! being the share of the unit's text before the top of the screen. A percentage that
//! does not fall inside the unit (the web UI's `page / pages` for TXT and PDF) means the
//! unit's start; a position without a unit number (a KOReader XPointer outside a
//! `DocFragment`) is read as the percentage of the whole text. Pure.

/// What the server's units are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// TXT pages (at the server's page size): the text flows across them.
    TxtPage,
    /// EPUB chapters: each starts a screen page.
    Chapter,
    /// PDF pages: each starts a screen page.
    PdfPage,
}

impl UnitKind {
    /// The unit's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::TxtPage | UnitKind::PdfPage => "page",
            UnitKind::Chapter => "chapter",
        }
    }
}

/// One unit's text and its title, as fetched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitText {
    /// The text (any characters; cleaned when the book is built).
    pub text: String,
    /// The chapter's title, if it has one.
    pub title: Option<String>,
}

/// A book's whole text and its units.
#[derive(Debug, Clone, PartialEq)]
pub struct BookText {
    /// The text of every unit, in order.
    text: String,
    /// Byte ranges of the units in `text` (unit N is index N − 1), contiguous.
    units: Vec<(usize, usize)>,
    /// Unit titles (chapters).
    titles: Vec<Option<String>>,
    /// What the units are.
    kind: UnitKind,
}

/// A saved position in the server's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// The unit (1-based).
    pub unit: u64,
    /// 0.0..=1.0: `(unit − 1 + fraction) / units`, 1.0 at the book's end.
    pub percentage: f64,
}

/// Text as a terminal shows it: CRLF and CR become LF, a tab four spaces, other control
/// characters (and U+FEFF) go.
pub fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\r' => out.push('\n'),
            '\t' => out.push_str("    "),
            '\u{feff}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

impl BookText {
    /// A book of `units` (a unit whose text is empty is shown as `placeholder(n)` when
    /// units start pages).
    pub fn new(units: Vec<UnitText>, kind: UnitKind, placeholder: impl Fn(u64) -> String) -> Self {
        let mut text = String::new();
        let mut ranges = Vec::with_capacity(units.len());
        let mut titles = Vec::with_capacity(units.len());
        for (i, u) in units.into_iter().enumerate() {
            let start = text.len();
            let mut t = clean(&u.text);
            if kind != UnitKind::TxtPage {
                if t.trim().is_empty() {
                    t = placeholder(i as u64 + 1);
                }
                // A unit begins a line.
                if !t.ends_with('\n') {
                    t.push('\n');
                }
            }
            text.push_str(&t);
            ranges.push((start, text.len()));
            titles.push(u.title);
        }
        BookText {
            text,
            units: ranges,
            titles,
            kind,
        }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the units are.
    pub fn kind(&self) -> UnitKind {
        self.kind
    }

    /// How many units.
    pub fn units(&self) -> u64 {
        self.units.len() as u64
    }

    /// The offsets where screen pages must start (each chapter or PDF page; none in TXT).
    pub fn breaks(&self) -> Vec<usize> {
        match self.kind {
            UnitKind::TxtPage => Vec::new(),
            UnitKind::Chapter | UnitKind::PdfPage => self.units.iter().map(|u| u.0).collect(),
        }
    }

    /// The title of unit `unit` (1-based), if any.
    pub fn title(&self, unit: u64) -> Option<&str> {
        let i = usize::try_from(unit.checked_sub(1)?).ok()?;
        self.titles.get(i)?.as_deref()
    }

    /// The unit holding byte `offset` (1-based) and the share of the unit before it.
    pub fn unit_at(&self, offset: usize) -> (u64, f64) {
        if self.units.is_empty() {
            return (1, 0.0);
        }
        let i = self
            .units
            .partition_point(|u| u.0 <= offset)
            .saturating_sub(1);
        let (s, e) = self.units[i];
        let len = e.saturating_sub(s);
        let fraction = if len == 0 {
            0.0
        } else {
            (offset.saturating_sub(s).min(len)) as f64 / len as f64
        };
        (i as u64 + 1, fraction)
    }

    /// The byte offset `fraction` (0.0..1.0) into unit `unit` (clamped to the book), on
    /// a character boundary.
    pub fn locate(&self, unit: u64, fraction: f64) -> usize {
        let Some(&(s, e)) = usize::try_from(unit.max(1) - 1)
            .ok()
            .and_then(|i| self.units.get(i).or(self.units.last()))
        else {
            return 0;
        };
        let f = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut at = s + ((e - s) as f64 * f).round() as usize;
        at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// Where a saved position puts the reader: the place it names, or `None` for the
    /// book's end (a position at 100 % in the last unit).
    pub fn place_of(&self, unit: Option<u64>, percentage: f64) -> Option<usize> {
        let units = self.units() as f64;
        let p = if percentage.is_finite() {
            percentage.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let Some(unit) = unit.filter(|&u| u >= 1) else {
            // No unit: the share of the whole text.
            if p >= 1.0 {
                return None;
            }
            let mut at = ((self.text.len() as f64) * p).round() as usize;
            at = at.min(self.text.len());
            while !self.text.is_char_boundary(at) {
                at -= 1;
            }
            return Some(at);
        };
        let unit = unit.min(self.units().max(1));
        if unit == self.units() && p >= 1.0 {
            return None;
        }
        // Rounding in another client's arithmetic must not turn "the start of page n"
        // (`n / pages`) into the end of page n − 1, nor the end into a start.
        const EPS: f64 = 1e-9;
        let fraction = p * units - (unit - 1) as f64;
        if fraction > -EPS && fraction < 1.0 - EPS {
            Some(self.locate(unit, fraction.max(0.0)))
        } else {
            Some(self.locate(unit, 0.0))
        }
    }

    /// The position to save for a reader whose screen starts at byte `offset`
    /// (`at_end`: the last screen page is shown, which is 100 %).
    pub fn position(&self, offset: usize, at_end: bool) -> Position {
        let (unit, fraction) = self.unit_at(offset);
        let units = self.units().max(1) as f64;
        let percentage = if at_end {
            1.0
        } else {
            ((unit - 1) as f64 + fraction) / units
        };
        Position {
            unit,
            percentage: percentage.clamp(0.0, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(t: &str) -> UnitText {
        UnitText {
            text: t.into(),
            title: None,
        }
    }

    fn txt() -> BookText {
        BookText::new(
            vec![unit("aaaa\nbb"), unit("bb\ncccc\n"), unit("dddd")],
            UnitKind::TxtPage,
            |_| String::new(),
        )
    }

    #[test]
    fn txt_units_flow_into_one_text() {
        let b = txt();
        assert_eq!(b.text(), "aaaa\nbbbb\ncccc\ndddd");
        assert_eq!(b.units(), 3);
        assert!(b.breaks().is_empty());
        assert_eq!(b.unit_at(0), (1, 0.0));
        assert_eq!(b.unit_at(7), (2, 0.0));
        assert_eq!(b.unit_at(8).0, 2);
        assert_eq!(b.unit_at(999).0, 3);
    }

    #[test]
    fn chapters_start_lines_and_pages_and_empty_ones_say_so() {
        let b = BookText::new(
            vec![unit("one"), unit("  \n"), unit("three\n")],
            UnitKind::Chapter,
            |n| format!("(chapter {n} has no text)"),
        );
        assert_eq!(b.text(), "one\n(chapter 2 has no text)\nthree\n");
        assert_eq!(b.breaks(), vec![0, 4, 28]);
    }

    #[test]
    fn control_characters_are_cleaned() {
        assert_eq!(clean("a\r\nb\rc\td\u{7}\u{feff}e"), "a\nb\nc    de");
    }

    #[test]
    fn a_saved_position_round_trips_exactly() {
        let text: String = "山".repeat(1000);
        let units: Vec<UnitText> = (0..7).map(|_| unit(&text)).collect();
        let b = BookText::new(units, UnitKind::TxtPage, |_| String::new());
        for offset in [0, 3, 2997, 3000, 3003, 10_500, 20_997] {
            let p = b.position(offset, false);
            assert_eq!(
                b.place_of(Some(p.unit), p.percentage),
                Some(offset),
                "{p:?}"
            );
        }
        // Through JSON, as the server stores it.
        let p = b.position(10_503, false);
        let back: f64 =
            serde_json::from_str(&serde_json::to_string(&p.percentage).unwrap()).unwrap();
        assert_eq!(b.place_of(Some(p.unit), back), Some(10_503));
    }

    #[test]
    fn positions_other_clients_write() {
        let b = txt();
        // The web UI's TXT and PDF writes: page n at n / pages, the page's start.
        assert_eq!(b.place_of(Some(2), 2.0 / 3.0), Some(b.locate(2, 0.0)));
        // Its EPUB writes and ours: (chapter − 1 + fraction) / chapters.
        assert_eq!(b.place_of(Some(2), 1.5 / 3.0), Some(b.locate(2, 0.5)));
        // KOReader with a DocFragment but another percentage: the chapter's start.
        assert_eq!(b.place_of(Some(3), 0.1), Some(b.locate(3, 0.0)));
        // No unit: a share of the whole text.
        // (19 bytes: the half is rounded.)
        assert_eq!(b.place_of(None, 0.5), Some(10));
        // The end of the book.
        assert_eq!(b.place_of(Some(3), 1.0), None);
        assert_eq!(b.place_of(None, 1.0), None);
        // Out of range and garbage stay in the book.
        assert_eq!(b.place_of(Some(99), 0.0), Some(b.locate(3, 0.0)));
        assert_eq!(b.place_of(Some(0), f64::NAN), Some(0));
        assert_eq!(b.position(0, true).percentage, 1.0);
    }

    #[test]
    fn locate_lands_on_a_character_boundary() {
        let b = BookText::new(vec![unit("山山山")], UnitKind::TxtPage, |_| {
            String::new()
        });
        for f in [0.0, 0.1, 0.2, 0.34, 0.5, 0.9, 1.0] {
            assert!(b.text().is_char_boundary(b.locate(1, f)), "{f}");
        }
        let empty = BookText::new(vec![], UnitKind::TxtPage, |_| String::new());
        assert_eq!(empty.locate(1, 0.5), 0);
        assert_eq!(empty.unit_at(5), (1, 0.0));
        assert_eq!(empty.place_of(Some(1), 0.5), Some(0));
    }
}
