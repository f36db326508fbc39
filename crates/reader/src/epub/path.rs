//! Names inside an EPUB: the check every zip entry name passes, and the resolution of a
//! document's relative `href`/`src` to an entry name. Pure and total.

/// Longest entry name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// Why an entry name is refused.
pub fn check_entry_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("name too long");
    }
    if name.chars().any(char::is_control) {
        return Err("control character");
    }
    if name.contains('\\') {
        return Err("backslash");
    }
    if name.starts_with('/') {
        return Err("absolute name");
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return Err("drive prefix");
    }
    if name.split('/').any(|s| s == "..") {
        return Err("`..` component");
    }
    Ok(())
}

/// The directory part of an entry name (`OEBPS/text/c1.xhtml` → `OEBPS/text`; `c.opf` →
/// ``).
pub fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Decodes `%XX` escapes (invalid ones are kept as they are; the result is lossy UTF-8).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a path for a URL: every byte but unreserved ones and `/` as `%XX`.
pub fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link resolved against the document it appears in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An entry of the book (maybe missing), with the fragment after `#` if any.
    Inside {
        /// The entry name.
        path: String,
        /// The fragment, percent-decoded.
        fragment: Option<String>,
    },
    /// Only a fragment of the same document (`#note1`).
    Fragment(String),
    /// Anything that would leave the book: a scheme (`http:`, `javascript:`, `data:`),
    /// `//host`, an absolute path, `..` above the root, backslashes, control characters.
    Outside,
}

/// Resolves `href` found in the entry `base` (a document's own name).
pub fn resolve(base: &str, href: &str) -> Target {
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    if href.chars().any(|c| c.is_control() || c == '\\') {
        return Target::Outside;
    }
    let (rest, fragment) = match href.split_once('#') {
        Some((r, f)) => (r, Some(percent_decode(f))),
        None => (href, None),
    };
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    if rest.is_empty() {
        return match fragment {
            Some(f) if !f.is_empty() => Target::Fragment(f),
            _ => Target::Outside,
        };
    }
    if has_scheme(rest) || rest.starts_with('/') {
        return Target::Outside;
    }
    let decoded = percent_decode(rest);
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Target::Outside;
    }
    let mut parts: Vec<&str> = dir_of(base).split('/').filter(|s| !s.is_empty()).collect();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Target::Outside;
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Target::Outside;
    }
    let path = parts.join("/");
    if check_entry_name(&path).is_err() {
        return Target::Outside;
    }
    Target::Inside {
        path,
        fragment: fragment.filter(|f| !f.is_empty()),
    }
}

/// Whether `s` starts with a URL scheme (`letter (letter|digit|+|-|.)* :`).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        for bad in [
            "",
            "../../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a\\..\\b",
            "C:evil",
            "a\0b",
            "..",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "mimetype",
            "OEBPS/content.opf",
            "a/./b",
            "挽歌/c1.xhtml",
            "a..b",
        ] {
            assert!(check_entry_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn links_resolve_inside_or_not_at_all() {
        let inside = |p: &str, f: Option<&str>| Target::Inside {
            path: p.into(),
            fragment: f.map(str::to_owned),
        };
        let base = "OEBPS/text/c1.xhtml";
        assert_eq!(
            resolve(base, "c2.xhtml"),
            inside("OEBPS/text/c2.xhtml", None)
        );
        assert_eq!(
            resolve(base, "../images/a%20b.png"),
            inside("OEBPS/images/a b.png", None)
        );
        assert_eq!(
            resolve(base, "./c2.xhtml#sec%201"),
            inside("OEBPS/text/c2.xhtml", Some("sec 1"))
        );
        assert_eq!(resolve(base, "#n1"), Target::Fragment("n1".into()));
        for out in [
            "../../../etc/passwd",
            "http://example.com/x.png",
            "HTTPS://x",
            "javascript:alert(1)",
            " javascript:alert(1)",
            "data:image/png;base64,AA",
            "//evil.example/x.png",
            "/etc/passwd",
            "..\\..\\x",
            "%2e%2e/%2e%2e/%2e%2e/x",
            "#",
            "",
        ] {
            assert_eq!(resolve(base, out), Target::Outside, "{out:?}");
        }
        assert_eq!(resolve("c.opf", "t/c1.xhtml"), inside("t/c1.xhtml", None));
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("a%20b%"), "a b%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            percent_encode_path("OEBPS/a b/挽.png"),
            "OEBPS/a%20b/%E6%8C%BD.png"
        );
    }
}
