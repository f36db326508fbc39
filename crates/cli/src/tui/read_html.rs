//! An EPUB chapter's sanitized XHTML (`GET /api/books/ID/chapter/N`) as plain text for
//! the terminal: paragraphs and headings separated by a blank line, other block elements
//! (`div`, `li`, `br`, table rows …) ending a line, list items bulleted, images shown by
//! their `alt` text, `pre` kept as written, whitespace elsewhere collapsed, character
//! references decoded, and what a reader does not see (`head`, `script`, `style` …)
//! left out. A small tolerant scanner, not a parser: it is total on any string (the
//! server already removed what is unsafe).

/// Elements whose content is not text a reader sees.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "title", "noscript", "svg", "math", "template",
];
/// Elements that end a paragraph (a blank line after them).
const PARAGRAPHS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "hr",
    "table",
    "ul",
    "ol",
    "dl",
    "figure",
];
/// Elements that end a line.
const LINES: &[&str] = &[
    "div",
    "br",
    "li",
    "tr",
    "dt",
    "dd",
    "section",
    "article",
    "aside",
    "header",
    "footer",
    "nav",
    "figcaption",
    "caption",
    "address",
    "main",
    "body",
];

/// The text of a chapter's HTML.
pub fn html_text(html: &str) -> String {
    let mut out = Out::default();
    let mut rest = html;
    // Inside an element whose content is skipped: its name.
    let mut skipping: Option<String> = None;
    let mut pre = 0usize;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skipping.is_none() {
                out.text(&decode(rest), pre > 0);
            }
            break;
        };
        if lt > 0 && skipping.is_none() {
            out.text(&decode(&rest[..lt]), pre > 0);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            if skipping.is_none() {
                out.text(&after[..end], pre > 0);
            }
            rest = after.get(end + 3..).unwrap_or("");
            continue;
        }
        let end = tag_end(rest);
        let inner = match rest[..end].strip_suffix('>') {
            Some(inner) if end > 1 => &inner[1..],
            _ => &rest[1..end],
        };
        let Some(t) = Tag::parse(inner) else {
            // A `<` that opens no tag is text.
            if skipping.is_none() {
                out.text("<", pre > 0);
            }
            rest = &rest[1..];
            continue;
        };
        rest = &rest[end..];
        if let Some(name) = &skipping {
            if t.closing && &t.name == name {
                skipping = None;
            }
            continue;
        }
        let name = t.name.as_str();
        if SKIPPED.contains(&name) {
            if !t.closing && !t.self_closing {
                skipping = Some(t.name.clone());
            }
            continue;
        }
        match name {
            "pre" if t.closing => pre = pre.saturating_sub(1),
            "pre" if !t.self_closing => pre += 1,
            "li" if !t.closing => {
                out.line();
                out.text("• ", true);
                continue;
            }
            "img" => {
                if let Some(alt) = t.attr("alt").map(|a| decode(&a)) {
                    let alt = alt.trim();
                    if !alt.is_empty() {
                        out.text(&format!("[{alt}]"), false);
                    }
                }
                continue;
            }
            _ => {}
        }
        if PARAGRAPHS.contains(&name) {
            out.paragraph();
        } else if LINES.contains(&name) {
            out.line();
        }
    }
    out.finish()
}

/// The text built so far, with the whitespace state.
#[derive(Default)]
struct Out {
    text: String,
    /// A space is owed before the next word (collapsed whitespace).
    space: bool,
}

impl Out {
    fn text(&mut self, t: &str, keep: bool) {
        if keep {
            self.flush_space();
            self.text.push_str(t);
            return;
        }
        for (i, word) in t.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.space = true;
            }
            if !word.is_empty() {
                self.flush_space();
                self.text.push_str(word);
            }
        }
    }

    fn flush_space(&mut self) {
        if self.space && !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
            self.text.push(' ');
        }
        self.space = false;
    }

    /// Ends the line (once).
    fn line(&mut self) {
        self.space = false;
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    /// Ends the paragraph: a blank line (once).
    fn paragraph(&mut self) {
        self.line();
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }

    fn finish(mut self) -> String {
        self.line();
        while self.text.ends_with("\n\n") {
            self.text.pop();
        }
        // No line of only spaces, at most one blank line in a row.
        let mut out = String::with_capacity(self.text.len());
        let mut blank = 0;
        for line in self.text.split_inclusive('\n') {
            if line.trim().is_empty() {
                blank += 1;
                if blank > 1 || out.is_empty() {
                    continue;
                }
                out.push('\n');
            } else {
                blank = 0;
                out.push_str(line);
            }
        }
        out
    }
}

/// The byte index just past the `>` closing the tag that `s` starts with (quotes
/// respected), or the end of `s`.
fn tag_end(s: &str) -> usize {
    let mut quote: Option<u8> = None;
    for (i, &b) in s.as_bytes().iter().enumerate().skip(1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return i + 1,
            None if b == b'<' && i > 1 => return i,
            None => {}
        }
    }
    s.len()
}

/// One tag.
struct Tag {
    /// Lowercased local name (no prefix).
    name: String,
    closing: bool,
    self_closing: bool,
    /// The attributes' source.
    attrs: String,
}

impl Tag {
    /// A tag from what is between `<` and `>`; `None` if it is no tag.
    fn parse(inner: &str) -> Option<Tag> {
        let (closing, body) = match inner.strip_prefix('/') {
            Some(b) => (true, b),
            None => (false, inner),
        };
        if body.starts_with('!') || body.starts_with('?') {
            // A doctype or a processing instruction: nothing to show.
            return Some(Tag {
                name: String::new(),
                closing: true,
                self_closing: true,
                attrs: String::new(),
            });
        }
        let name_end = body
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .unwrap_or(body.len());
        let name = &body[..name_end];
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let local = name.rsplit(':').next().unwrap_or(name).to_ascii_lowercase();
        let rest = &body[name_end..];
        Some(Tag {
            name: local,
            closing,
            self_closing: rest.trim_end().ends_with('/'),
            attrs: rest.to_owned(),
        })
    }

    /// The value of attribute `name` (quoted or not).
    fn attr(&self, name: &str) -> Option<String> {
        let mut s = self.attrs.as_str();
        loop {
            s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if s.is_empty() {
                return None;
            }
            let key_end = s
                .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
                .unwrap_or(s.len());
            let key = &s[..key_end];
            s = s[key_end..].trim_start();
            let mut value = None;
            if let Some(after) = s.strip_prefix('=') {
                let after = after.trim_start();
                let (v, rest) = match after.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let body = &after[1..];
                        let end = body.find(q).unwrap_or(body.len());
                        (&body[..end], body.get(end + 1..).unwrap_or(""))
                    }
                    _ => {
                        let end = after.find(char::is_whitespace).unwrap_or(after.len());
                        (&after[..end], &after[end..])
                    }
                };
                value = Some(v);
                s = rest;
            }
            if key.eq_ignore_ascii_case(name) {
                return Some(value.unwrap_or("").to_owned());
            }
            if key.is_empty() && value.is_none() {
                // Nothing parsable left.
                return None;
            }
        }
    }
}

/// Decodes character references (`&amp;`, `&#233;`, `&#x4E2D;` and the common named
/// ones); an unknown or malformed one stays as written.
pub fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest
            .char_indices()
            .take(34)
            .find(|&(_, c)| c == ';')
            .map(|(j, _)| j);
        let decoded = end.and_then(|j| reference(&rest[1..j]).map(|c| (c, j)));
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = &rest[j + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn reference(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(n).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "ccedil" => 'ç',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_headings_and_lines() {
        let html = "<h1>Chapter <i>Two</i></h1><p>The keeper\n   climbs.</p><p>Wo<b>rd</b></p>\
                    <div>a line</div>tail<br/>after";
        assert_eq!(
            html_text(html),
            "Chapter Two\n\nThe keeper climbs.\n\nWord\n\na line\ntail\nafter\n"
        );
    }

    #[test]
    fn hidden_content_and_comments_are_left_out() {
        let html = "<head><title>T</title><style>p{}</style></head><body><!-- note -->\
                    <p>seen</p><script>alert(1)</script><svg><text>no</text></svg></body>";
        assert_eq!(html_text(html), "seen\n");
    }

    #[test]
    fn lists_images_and_pre() {
        let html = "<ul><li>one</li><li>two</li></ul><img src=\"x.png\" alt=\"a &amp; b\"/>\
                    <pre>  keep\n    this</pre>";
        assert_eq!(
            html_text(html),
            "• one\n• two\n\n[a & b]\n\n  keep\n    this\n"
        );
    }

    #[test]
    fn references_are_decoded() {
        assert_eq!(
            decode("a &amp; b &lt;c&gt; &#233;&#x4E2D; &nbsp;"),
            "a & b <c> é中 \u{a0}"
        );
        assert_eq!(decode("&bogus; & &#xZZ; &#0;"), "&bogus; & &#xZZ; &#0;");
    }

    #[test]
    fn quotes_may_hold_angle_brackets() {
        assert_eq!(html_text("<img alt=\"a > b\"><p>x</p>"), "[a > b]\n\nx\n");
    }

    #[test]
    fn cjk_text_keeps_its_characters() {
        assert_eq!(
            html_text("<p>山中有一座小庙。</p><p>庙里住着老和尚。</p>"),
            "山中有一座小庙。\n\n庙里住着老和尚。\n"
        );
    }

    #[test]
    fn any_string_is_text() {
        for s in [
            "<",
            "<<",
            "<p",
            "</",
            "<!--",
            "<![CDATA[x",
            "a < b",
            "&",
            "&#",
            "<p a='>",
            "<a b=\"",
            "<1>",
            "<\u{10FFFF}>",
            "<script>never closed",
            "<img alt=",
        ] {
            let _ = html_text(s);
        }
        assert_eq!(html_text("a < b"), "a < b\n");
    }
}
