//! Cutting a book's text into screen pages that fit a terminal text area exactly: lines
//! wrapped to the area's width in terminal cells (CJK and other wide characters take
//! two, combining marks none), then cut into pages of the area's height. Pure and
//! total: any text and any area give pages, at least one.
//!
//! - A row breaks after a space (the spaces at the break are not shown), before or after
//!   a wide character (CJK text has no spaces), else anywhere when a word is longer than
//!   a row. A closing CJK punctuation mark (`。`, `，`, `」` …) does not start a row: the
//!   character before it moves down with it.
//! - Forced breaks (a chapter, a PDF page) start a new page at the line that begins there.
//! - A blank line does not open a page that overflowed from the one before.
//!
//! Rows are byte ranges of the text, so pages cost 16 bytes a row and a page's start
//! offset is a position that survives re-pagination (a resize keeps the reader on the
//! page holding the same text).

use unicode_width::UnicodeWidthChar;

/// A text area in terminal cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// One screen row: a byte range of the text, without the spaces a wrap broke at.
pub type Row = (usize, usize);

/// A text cut into pages for one [`Area`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pages {
    /// The area the pages were cut for.
    area: Area,
    /// Every shown row, in order.
    rows: Vec<Row>,
    /// Per page: the byte offset where it starts and the index of its first row.
    pages: Vec<(usize, usize)>,
}

/// Characters that may not start a row (CJK closing punctuation).
const NO_ROW_START: &str = "、。，．,.:;?!：；？！）)］]｝}〉》」』】〕〗〙〛’”ー…‥・";

/// Cells `c` takes on a terminal (control characters none).
fn char_cells(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Cells `s` takes on a terminal.
pub fn cells(s: &str) -> usize {
    s.chars().map(char_cells).sum()
}

/// `s` cut to `width` cells, with `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    if cells(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_cells(c);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

impl Pages {
    /// Cuts `text` into pages of `area`, starting a new page at each offset of `breaks`
    /// (sorted; an offset inside a line breaks at the next line).
    pub fn new(text: &str, breaks: &[usize], area: Area) -> Pages {
        let area = Area {
            width: area.width.max(2),
            height: area.height.max(1),
        };
        let mut rows = Vec::new();
        let mut pages: Vec<(usize, usize)> = Vec::new();
        let mut next_break = breaks.iter().copied().peekable();
        // The page being filled: its start offset and first row.
        let mut open: Option<(usize, usize)> = None;
        let mut forced_start: Option<usize> = None;
        let mut line_start = 0usize;
        let mut line_rows = Vec::new();
        for line in text.split('\n') {
            let mut forced = false;
            while next_break.peek().is_some_and(|&b| b <= line_start) {
                next_break.next();
                forced = true;
            }
            if forced {
                if let Some(page) = open.take() {
                    if rows.len() > page.1 {
                        pages.push(page);
                    }
                }
                forced_start = Some(line_start);
            }
            line_rows.clear();
            wrap(line, line_start, area.width, &mut line_rows);
            for &row in &line_rows {
                if let Some(page) = open {
                    if rows.len() - page.1 >= area.height {
                        pages.push(page);
                        open = None;
                    }
                }
                if open.is_none() {
                    let start = match forced_start.take() {
                        Some(s) => s,
                        // A blank row does not open an overflow page.
                        None if row.0 == row.1 && !pages.is_empty() => continue,
                        None if pages.is_empty() => 0,
                        None => row.0,
                    };
                    open = Some((start, rows.len()));
                }
                rows.push(row);
            }
            line_start += line.len() + 1;
        }
        if let Some(page) = open {
            pages.push(page);
        }
        if pages.is_empty() {
            pages.push((0, 0));
        }
        Pages { area, rows, pages }
    }

    /// The area these pages fit.
    pub fn area(&self) -> Area {
        self.area
    }

    /// How many pages (at least 1).
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// The rows of page `page` (0-based; none past the end).
    pub fn rows(&self, page: usize) -> &[Row] {
        let Some(&(_, first)) = self.pages.get(page) else {
            return &[];
        };
        let end = self.pages.get(page + 1).map_or(self.rows.len(), |p| p.1);
        self.rows.get(first..end).unwrap_or(&[])
    }

    /// The byte offset page `page` starts at (the last page's for one past the end).
    pub fn start(&self, page: usize) -> usize {
        let i = page.min(self.pages.len() - 1);
        self.pages[i].0
    }

    /// The page holding byte offset `offset`: the last one starting at or before it.
    pub fn page_of(&self, offset: usize) -> usize {
        self.pages
            .partition_point(|p| p.0 <= offset)
            .saturating_sub(1)
    }
}

/// A place a row may end: the row's end, the next row's start, and the cells from the
/// row's start to the next row's start.
#[derive(Debug, Clone, Copy)]
struct Break {
    end: usize,
    next: usize,
    cells: usize,
}

/// Wraps one line (no `\n`) that starts at byte `base` of the text into rows of at most
/// `width` cells.
fn wrap(line: &str, base: usize, width: usize, out: &mut Vec<Row>) {
    let first = out.len();
    let mut row_start = 0usize;
    let mut used = 0usize;
    // The latest break and the one before it (for punctuation that may not start a row).
    let mut brk: Option<Break> = None;
    let mut prev_brk: Option<Break> = None;
    let mut prev_space = false;
    for (i, c) in line.char_indices() {
        let len = c.len_utf8();
        let w = char_cells(c);
        let space = c == ' ' || c == '\u{3000}';
        let no_start = NO_ROW_START.contains(c);
        // A continuation row does not start with the spaces it broke at.
        if space && i == row_start && out.len() > first {
            row_start = i + len;
            prev_space = true;
            continue;
        }
        if w > 0 && used + w > width && i > row_start {
            let chosen = if space {
                // Break at this space (and the run of spaces before it).
                let end = match brk {
                    Some(b) if prev_space && b.next == i => b.end,
                    _ => i,
                };
                Break {
                    end,
                    next: i,
                    cells: used,
                }
            } else {
                // A break that leaves nothing on the row is no break.
                let usable = |b: &Break| b.end > row_start;
                match brk.filter(usable) {
                    // `c` may not start a row: break one place earlier.
                    Some(b) if b.next == i && no_start => prev_brk.filter(usable).unwrap_or(b),
                    Some(b) => b,
                    None => Break {
                        end: i,
                        next: i,
                        cells: used,
                    },
                }
            };
            out.push((base + row_start, base + chosen.end));
            row_start = chosen.next;
            used -= chosen.cells;
            brk = None;
            prev_brk = None;
            if space {
                // The space is the break: it is not shown.
                row_start = i + len;
                prev_space = true;
                continue;
            }
            // What moved down may still leave no room (a narrow area): cut before `c`.
            if used + w > width && i > row_start {
                out.push((base + row_start, base + i));
                row_start = i;
                used = 0;
            }
        }
        // A break before a wide character (unless one is already there).
        if w == 2 && i > row_start && !prev_space && !no_start && brk.is_none_or(|b| b.next != i) {
            prev_brk = brk;
            brk = Some(Break {
                end: i,
                next: i,
                cells: used,
            });
        }
        used += w;
        if space {
            match brk.as_mut() {
                // Spaces in a run: the row still ends where the run starts.
                Some(b) if prev_space && b.next == i => {
                    b.next = i + len;
                    b.cells = used;
                }
                _ => {
                    prev_brk = brk;
                    brk = Some(Break {
                        end: i,
                        next: i + len,
                        cells: used,
                    });
                }
            }
        } else if w == 2 {
            prev_brk = brk;
            brk = Some(Break {
                end: i + len,
                next: i + len,
                cells: used,
            });
        }
        prev_space = space;
    }
    if row_start < line.len() || out.len() == first {
        out.push((base + row_start, base + line.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(width: usize, height: usize) -> Area {
        Area { width, height }
    }

    /// The rows of every page as strings.
    fn shown(text: &str, breaks: &[usize], a: Area) -> Vec<Vec<String>> {
        let p = Pages::new(text, breaks, a);
        (0..p.len())
            .map(|i| {
                p.rows(i)
                    .iter()
                    .map(|&(s, e)| text[s..e].to_owned())
                    .collect()
            })
            .collect()
    }

    fn check_fit(text: &str, breaks: &[usize], a: Area) {
        let p = Pages::new(text, breaks, a);
        for i in 0..p.len() {
            assert!(p.rows(i).len() <= a.height, "page {i} too tall");
            for &(s, e) in p.rows(i) {
                assert!(cells(&text[s..e]) <= a.width, "{:?}", &text[s..e]);
            }
        }
    }

    #[test]
    fn fit_cuts_by_cells() {
        assert_eq!(fit("山庙故事", 5), "山庙…");
        assert_eq!(fit("abc", 5), "abc");
        assert_eq!(fit("abcdef", 5), "abcd…");
        assert!(cells(&fit(&"山".repeat(50), 21)) <= 21);
        assert_eq!(fit("abc", 0), "");
    }

    #[test]
    fn empty_text_has_one_empty_page() {
        let p = Pages::new("", &[], area(10, 3));
        assert_eq!(p.len(), 1);
        assert!(p.rows(0).len() <= 1);
        assert_eq!(p.start(0), 0);
        assert_eq!(p.page_of(0), 0);
        assert_eq!(p.rows(5), &[] as &[Row]);
    }

    #[test]
    fn words_wrap_at_spaces_and_the_spaces_go() {
        let pages = shown("one two three four", &[], area(9, 10));
        assert_eq!(pages, vec![vec!["one two", "three", "four"]]);
    }

    #[test]
    fn a_word_longer_than_a_row_is_cut() {
        let pages = shown("abcdefghij", &[], area(4, 10));
        assert_eq!(pages, vec![vec!["abcd", "efgh", "ij"]]);
    }

    #[test]
    fn cjk_takes_two_cells_and_breaks_anywhere() {
        // 10 characters, 20 cells, in rows of 7 cells: 3 characters a row.
        let text = "一二三四五六七八九十";
        let pages = shown(text, &[], area(7, 10));
        assert_eq!(pages, vec![vec!["一二三", "四五六", "七八九", "十"]]);
        check_fit(text, &[], area(7, 10));
        // Mixed: a Latin word, then CJK, at 10 cells.
        let pages = shown("hello世界你好吗", &[], area(10, 10));
        assert_eq!(pages, vec![vec!["hello世界", "你好吗"]]);
    }

    #[test]
    fn closing_punctuation_does_not_start_a_row() {
        // Rows of 6 cells: 三 fits, 。 would start row 2; 三 moves down with it.
        let pages = shown("一二三。四五", &[], area(6, 10));
        assert_eq!(pages, vec![vec!["一二", "三。四", "五"]]);
    }

    #[test]
    fn combining_marks_take_no_cells() {
        // "e" + COMBINING ACUTE ACCENT, five times: five cells.
        let text = "e\u{301}".repeat(5);
        assert_eq!(cells(&text), 5);
        assert_eq!(shown(&text, &[], area(5, 2)), vec![vec![text.clone()]]);
    }

    #[test]
    fn pages_hold_exactly_the_area_height() {
        let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let pages = shown(&text, &[], area(20, 4));
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0], vec!["line 1", "line 2", "line 3", "line 4"]);
        assert_eq!(pages[1], vec!["line 5", "line 6", "line 7", "line 8"]);
        // The text ends in `\n`: the last (empty) line is a row of its own.
        assert_eq!(pages[2], vec!["line 9", "line 10", ""]);
    }

    #[test]
    fn exact_fit_over_many_shapes() {
        let text = format!(
            "{}\n\n{}\n{}\n   indented line\n{}",
            "The keeper climbs the stairs of the lighthouse every night. ".repeat(9),
            "山中有一座小庙，庙里住着一位老和尚。".repeat(7),
            "Mixed 混合 text テキスト with ｆｕｌｌ widths, and tabs gone.".repeat(5),
            "x".repeat(300),
        );
        for w in [2, 3, 5, 8, 13, 40, 79, 80, 200] {
            for h in [1, 2, 7, 23] {
                check_fit(&text, &[], area(w, h));
                // Nothing but spaces is lost.
                let p = Pages::new(&text, &[], area(w, h));
                let mut joined = String::new();
                for i in 0..p.len() {
                    for &(s, e) in p.rows(i) {
                        joined.push_str(&text[s..e]);
                    }
                }
                let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
                assert_eq!(strip(&joined), strip(&text), "width {w} height {h}");
            }
        }
    }

    #[test]
    fn forced_breaks_start_pages() {
        let text = "one\ntwo\nthree\n";
        let p = Pages::new(text, &[4, 8], area(10, 10));
        assert_eq!(p.len(), 3);
        assert_eq!((p.start(0), p.start(1), p.start(2)), (0, 4, 8));
        assert_eq!(p.page_of(5), 1);
        assert_eq!(p.page_of(100), 2);
        // A break at the very start makes no empty first page.
        let p = Pages::new(text, &[0, 4], area(10, 10));
        assert_eq!((p.len(), p.start(0)), (2, 0));
    }

    #[test]
    fn blank_lines_do_not_open_an_overflow_page() {
        let pages = shown("a\nb\n\n\nc", &[], area(5, 2));
        assert_eq!(pages, vec![vec!["a", "b"], vec!["c"]]);
    }

    #[test]
    fn resize_keeps_the_page_holding_the_same_text() {
        let text: String = (1..=200)
            .map(|i| format!("第{i:03}行 {}\n", "山".repeat(40)))
            .collect();
        let big = Pages::new(&text, &[], area(158, 39));
        let anchor = big.start(5);
        let small = Pages::new(&text, &[], area(78, 23));
        let page = small.page_of(anchor);
        assert!(small.start(page) <= anchor);
        assert!(page + 1 == small.len() || small.start(page + 1) > anchor);
        // At 78 cells each line is two rows ("第001行 " is 8 cells, 35 + 5 CJK): 11.5
        // lines a page of 23 rows, so page 2 shows lines 13..=23 (line 12's tail first).
        let rows = small.rows(1);
        assert_eq!(rows.len(), 23);
        assert_eq!(&text[rows[0].0..rows[0].1], "山".repeat(5));
        assert!(text[rows[1].0..rows[1].1].starts_with("第013行 "));
        assert!(text[rows[22].0..rows[22].1].starts_with("山山"));
        assert_eq!(small.len(), 18);
        // Back to the first size: the same page as before.
        assert_eq!(big.page_of(anchor), 5);
    }

    #[test]
    fn any_bytes_of_text_paginate() {
        let mut seed = 7u64;
        for _ in 0..200 {
            let mut s = String::new();
            for _ in 0..(seed % 300) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let c = match (seed >> 33) % 6 {
                    0 => ' ',
                    1 => '\n',
                    2 => '山',
                    3 => '。',
                    4 => char::from_u32(((seed >> 40) % 0x3000) as u32).unwrap_or('x'),
                    _ => 'a',
                };
                s.push(c);
            }
            let w = (seed % 12) as usize;
            let h = (seed % 5) as usize;
            let p = Pages::new(&s, &[3, 50, 51], area(w, h));
            assert!(p.len() >= 1);
            for i in 0..p.len() {
                for &(a, b) in p.rows(i) {
                    assert!(s.get(a..b).is_some(), "row {a}..{b} of {s:?}");
                }
            }
        }
    }
}
