//! Cutting decoded text into pages of at most N characters. A page ends at a line end
//! when it can; a line longer than a page is cut at a space in its last half, else at a
//! character boundary. Never inside a character (the course server cut at byte offsets,
//! splitting multi-byte characters). The result depends only on the text and N, so the
//! page count is stable for a given page size.

/// Text cut into pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged {
    text: String,
    /// Byte ranges of the pages in `text`, in order, covering it without gaps.
    bounds: Vec<(usize, usize)>,
}

impl Paged {
    /// Cuts `text` into pages of at most `page_chars` characters (at least 1).
    pub fn new(text: String, page_chars: usize) -> Self {
        let bounds = cut(&text, page_chars.max(1));
        Self { text, bounds }
    }

    /// Number of pages (0 for empty text).
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Whether there are no pages.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Page `n`, 1-based.
    pub fn page(&self, n: usize) -> Option<&str> {
        let &(a, b) = self.bounds.get(n.checked_sub(1)?)?;
        self.text.get(a..b)
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn cut(text: &str, limit: usize) -> Vec<(usize, usize)> {
    let mut pages = Vec::new();
    let mut start = 0usize; // start of the current page
    let mut count = 0usize; // characters on the current page
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        let n = line.chars().count();
        if count + n <= limit {
            count += n;
            pos += line.len();
            continue;
        }
        if count > 0 {
            pages.push((start, pos));
            start = pos;
        }
        // The line alone may still be longer than a page: cut it in pieces.
        let mut rest = line;
        while rest.chars().count() > limit {
            let piece = split_point(rest, limit);
            pages.push((start, start + piece));
            start += piece;
            rest = &rest[piece..];
        }
        count = rest.chars().count();
        pos = start + rest.len();
    }
    if pos > start {
        pages.push((start, pos));
    }
    pages
}

/// Byte length of the first piece of `s` (which has more than `limit` chars): up to
/// `limit` chars, ending after a whitespace if one is in the second half.
fn split_point(s: &str, limit: usize) -> usize {
    let hard = s.char_indices().nth(limit).map_or(s.len(), |(i, _)| i);
    let head = &s[..hard];
    let half = s.char_indices().nth(limit / 2).map_or(0, |(i, _)| i);
    match head.rfind(char::is_whitespace) {
        Some(i) if i >= half && i > 0 => {
            let ws = head[i..].chars().next().map_or(1, char::len_utf8);
            i + ws
        }
        _ => hard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(text: &str, n: usize) -> Vec<String> {
        let p = Paged::new(text.to_owned(), n);
        (1..=p.len())
            .map(|i| p.page(i).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn empty() {
        assert!(Paged::new(String::new(), 10).is_empty());
    }

    #[test]
    fn lines_are_kept_whole() {
        assert_eq!(pages("aaa\nbbb\nccc\n", 8), vec!["aaa\nbbb\n", "ccc\n"]);
    }

    #[test]
    fn long_line_cut_at_char_boundary() {
        let text = "一二三四五六七八九十";
        let p = pages(text, 3);
        assert_eq!(p, vec!["一二三", "四五六", "七八九", "十"]);
        assert_eq!(p.concat(), text);
    }

    #[test]
    fn long_line_prefers_space() {
        assert_eq!(
            pages("hello world again", 12),
            vec!["hello world ", "again"]
        );
    }

    #[test]
    fn pages_cover_text_and_respect_limit() {
        let text: String = (0..500)
            .map(|i| format!("line {i} {}\n", "字".repeat(i % 37)))
            .collect();
        for n in [1, 7, 50, 333] {
            let p = pages(&text, n);
            assert_eq!(p.concat(), text);
            assert!(p.iter().all(|pg| pg.chars().count() <= n && !pg.is_empty()));
            assert_eq!(Paged::new(text.clone(), n).len(), p.len());
        }
    }

    #[test]
    fn out_of_range() {
        let p = Paged::new("x".into(), 5);
        assert_eq!(p.page(0), None);
        assert_eq!(p.page(2), None);
        assert_eq!(p.page(usize::MAX), None);
    }
}
