//! Chapters and style sheets made safe to show: XHTML through ammonia (no script, no
//! event handlers, no `style` attributes, no URL with a scheme), links and images inside
//! the book rewritten to the reader's routes, everything else dropped; CSS with `@import`
//! and external `url(...)` removed. Pure.

use std::borrow::Cow;
use std::collections::HashSet;

use super::path::{percent_encode_path, resolve, Target};
use super::xml;

/// The URL a book's entry is served at.
pub fn resource_url(book_id: i64, path: &str) -> String {
    format!("/api/books/{book_id}/epub/{}", percent_encode_path(path))
}

/// The link a chapter of the same book gets: `#epub:N` or `#epub:N:FRAGMENT` (the web
/// reader turns it into a chapter change).
pub fn chapter_link(chapter: usize, fragment: Option<&str>) -> String {
    match fragment {
        Some(f) => format!("#epub:{chapter}:{}", percent_encode_path(f)),
        None => format!("#epub:{chapter}"),
    }
}

/// Where a chapter's links go.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    /// The book's catalog id.
    pub book_id: i64,
    /// The chapter's entry name.
    pub doc: &'a str,
    /// The chapter's number (1-based).
    pub chapter: usize,
    /// The spine (entry names, in order).
    pub spine: &'a [String],
}

impl Links<'_> {
    /// The rewritten URL, or `None` to drop the attribute.
    pub fn rewrite(&self, url: &str) -> Option<String> {
        match resolve(self.doc, url) {
            Target::Fragment(f) => Some(chapter_link(self.chapter, Some(&f))),
            Target::Inside { path, fragment } => match self.spine.iter().position(|p| *p == path) {
                Some(i) => Some(chapter_link(i + 1, fragment.as_deref())),
                None => Some(resource_url(self.book_id, &path)),
            },
            Target::Outside => None,
        }
    }
}

/// [`Links`] as ammonia's URL rewriter.
struct Rewrite<'a>(Links<'a>);

impl<'a> ammonia::UrlRelativeEvaluate<'a> for Rewrite<'a> {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        self.0.rewrite(url).map(Cow::Owned)
    }
}

/// The inside of `<body>` (the whole text when there is no body).
pub fn body_of(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    let Some(open) = lower.find("<body") else {
        return html;
    };
    let Some(gt) = lower[open..].find('>') else {
        return html;
    };
    let from = open + gt + 1;
    let to = lower
        .rfind("</body")
        .filter(|&t| t >= from)
        .unwrap_or(html.len());
    &html[from..to]
}

/// The chapter's body as safe HTML.
pub fn sanitize_chapter(html: &str, links: &Links<'_>) -> String {
    ammonia::Builder::default()
        .add_generic_attributes(["id", "class", "dir"])
        .url_schemes(HashSet::new())
        .url_relative(ammonia::UrlRelative::Custom(Box::new(Rewrite(*links))))
        .clean_content_tags(HashSet::from(["script", "style", "title", "noscript"]))
        .link_rel(Some("noopener noreferrer"))
        .clean(body_of(html))
        .to_string()
}

/// The `<title>` of an XHTML document, if any.
pub fn title(doc: &xml::Element) -> Option<String> {
    doc.find("title")
        .map(xml::Element::text)
        .filter(|t| !t.is_empty())
}

/// The entry names of the style sheets a chapter links (`<link rel="stylesheet">`).
pub fn stylesheets(doc: &xml::Element, doc_path: &str) -> Vec<String> {
    doc.descendants()
        .into_iter()
        .filter(|e| {
            e.is("link")
                && e.attr("rel").is_some_and(|r| {
                    r.split_whitespace()
                        .any(|w| w.eq_ignore_ascii_case("stylesheet"))
                })
        })
        .filter_map(|e| match resolve(doc_path, e.attr("href")?) {
            Target::Inside { path, .. } => Some(path),
            _ => None,
        })
        .take(32)
        .collect()
}

fn starts_with_ci(hay: &[char], at: usize, needle: &str) -> bool {
    let n: Vec<char> = needle.chars().collect();
    hay.len() >= at + n.len()
        && hay[at..at + n.len()]
            .iter()
            .zip(&n)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// A style sheet made safe: CSS escapes decoded (so no `\75 rl(` hides a fetch),
/// `@import` rules dropped, `url(...)` inside the book rewritten to the book's route and
/// any other `url(...)` emptied, `image-set(...)` and `src(...)` replaced by `none`.
pub fn sanitize_css(css: &str, css_path: &str, book_id: i64) -> String {
    // 1. Decode escapes (`\75 ` is `u`, `\(` is `(`), so none hides a `url(`; escaped
    //    quotes, backslashes and control characters are dropped.
    let mut plain: Vec<char> = Vec::with_capacity(css.len());
    let mut it = css.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            plain.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6 && it.peek().is_some_and(char::is_ascii_hexdigit) {
            hex.extend(it.next());
        }
        let decoded = if hex.is_empty() {
            it.next()
        } else {
            if it.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                it.next();
            }
            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
        };
        if let Some(d) = decoded.filter(|d| !d.is_control() && !"\"'\\".contains(*d)) {
            plain.push(d);
        }
    }
    // 2. Rewrite.
    let mut out = String::with_capacity(css.len());
    let mut i = 0;
    while i < plain.len() {
        let word_start = i == 0 || !(plain[i - 1].is_alphanumeric() || plain[i - 1] == '-');
        if starts_with_ci(&plain, i, "@import") {
            while i < plain.len() && plain[i] != ';' {
                i += 1;
            }
            i += 1;
            out.push_str("/* @import removed */");
            continue;
        }
        if word_start && starts_with_ci(&plain, i, "url(") {
            let start = i + 4;
            let end = plain[start..]
                .iter()
                .position(|&c| c == ')')
                .map_or(plain.len(), |p| start + p);
            let arg: String = plain[start..end].iter().collect();
            let arg = arg.trim().trim_matches(|c| c == '"' || c == '\'');
            let target = match resolve(css_path, arg) {
                Target::Inside { path, .. } => resource_url(book_id, &path),
                _ => String::new(),
            };
            out.push_str(&format!("url(\"{target}\")"));
            i = end + 1;
            continue;
        }
        if word_start
            && (starts_with_ci(&plain, i, "image-set(")
                || starts_with_ci(&plain, i, "-webkit-image-set(")
                || starts_with_ci(&plain, i, "src("))
        {
            out.push_str("none");
            i += plain[i..]
                .iter()
                .position(|&c| c == ')')
                .map_or(plain.len() - i, |p| p + 1);
            continue;
        }
        out.push(plain[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links<'a>(spine: &'a [String]) -> Links<'a> {
        Links {
            book_id: 7,
            doc: "OEBPS/text/c1.xhtml",
            chapter: 1,
            spine,
        }
    }

    #[test]
    fn chapters_lose_scripts_handlers_and_external_urls() {
        let spine = vec![
            "OEBPS/text/c1.xhtml".to_owned(),
            "OEBPS/text/c2.xhtml".to_owned(),
        ];
        let html = r##"<?xml version="1.0"?><html><head><title>T</title><script>alert(1)</script></head>
          <body onload="alert(2)"><h1 id="top" onclick="x()">Hello</h1>
          <script>alert(3)</script><style>p{}</style>
          <p style="background:url(http://evil/x)"><a href="javascript:alert(4)">js</a>
          <a href="c2.xhtml#s1">next</a> <a href="#top">top</a> <a href="https://example.com/">ext</a>
          <img src="../images/a.png" onerror="alert(5)"/><img src="http://evil.example/t.png"/>
          <img src="//evil.example/t.png"/><iframe src="c2.xhtml"></iframe></p></body></html>"##;
        let out = sanitize_chapter(html, &links(&spine));
        for bad in [
            "script",
            "alert",
            "onload",
            "onclick",
            "onerror",
            "javascript",
            "evil",
            "style",
            "iframe",
            "example.com",
            "<title",
        ] {
            assert!(!out.contains(bad), "{bad} in {out}");
        }
        assert!(out.contains(r##"href="#epub:2:s1""##), "{out}");
        assert!(out.contains(r##"href="#epub:1:top""##), "{out}");
        assert!(
            out.contains(r#"src="/api/books/7/epub/OEBPS/images/a.png""#),
            "{out}"
        );
        assert!(out.contains(r#"id="top""#), "{out}");
    }

    #[test]
    fn css_keeps_only_the_book() {
        let css = r#"@import url(http://evil/x.css); body { background: url("../img/bg.png") }
            p { background: URL(http://evil/y.png) } q { background: \75 rl(http://evil/z) }
            r { background-image: image-set("http://evil/w.png" 1x) } s { x: url(//evil/v) }"#;
        let out = sanitize_css(css, "OEBPS/css/s.css", 3);
        assert!(!out.contains("evil"), "{out}");
        assert!(
            out.contains(r#"url("/api/books/3/epub/OEBPS/img/bg.png")"#),
            "{out}"
        );
    }

    #[test]
    fn body_extraction() {
        assert_eq!(body_of("<html><BODY class='x'>in</body></html>"), "in");
        assert_eq!(body_of("no body"), "no body");
        assert_eq!(body_of("<body"), "<body");
    }
}
