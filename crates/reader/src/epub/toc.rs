//! The table of contents: the EPUB 3 navigation document (`<nav epub:type="toc">`) or the
//! EPUB 2 NCX (`navMap`/`navPoint`). Pure and total.

use super::path::{resolve, Target};
use super::xml::{self, Element};

/// Most entries kept.
pub const MAX_ENTRIES: usize = 10_000;
/// Deepest level kept.
pub const MAX_LEVEL: u32 = 16;

/// One entry of the table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the book calls it.
    pub label: String,
    /// The entry name it points to.
    pub path: String,
    /// The fragment inside it, if any.
    pub fragment: Option<String>,
    /// Nesting level, 0 at the top.
    pub level: u32,
}

fn entry(out: &mut Vec<Entry>, base: &str, label: String, href: &str, level: u32) {
    if out.len() >= MAX_ENTRIES {
        return;
    }
    if let Target::Inside { path, fragment } = resolve(base, href) {
        let label = if label.is_empty() {
            path.clone()
        } else {
            label
        };
        out.push(Entry {
            label,
            path,
            fragment,
            level,
        });
    }
}

/// Entries of the EPUB 3 navigation document at entry `nav_path`.
pub fn from_nav(bytes: &[u8], nav_path: &str) -> Vec<Entry> {
    let root = xml::parse(bytes);
    let navs: Vec<&Element> = root
        .descendants()
        .into_iter()
        .filter(|e| e.is("nav"))
        .collect();
    let toc = navs
        .iter()
        .find(|n| {
            n.attr("epub:type")
                .is_some_and(|t| t.split_whitespace().any(|w| w == "toc"))
        })
        .or_else(|| navs.first());
    let mut out = Vec::new();
    if let Some(ol) = toc.and_then(|n| n.elements().find(|e| e.is("ol"))) {
        nav_list(&mut out, nav_path, ol, 0);
    }
    out
}

fn nav_list(out: &mut Vec<Entry>, base: &str, ol: &Element, level: u32) {
    if level > MAX_LEVEL {
        return;
    }
    for li in ol.elements().filter(|e| e.is("li")) {
        if let Some(a) = li.elements().find(|e| e.is("a")) {
            if let Some(href) = a.attr("href") {
                entry(out, base, a.text(), href, level);
            }
        }
        if let Some(sub) = li.elements().find(|e| e.is("ol")) {
            nav_list(out, base, sub, level + 1);
        }
    }
}

/// Entries of the EPUB 2 NCX at entry `ncx_path`.
pub fn from_ncx(bytes: &[u8], ncx_path: &str) -> Vec<Entry> {
    let root = xml::parse(bytes);
    let mut out = Vec::new();
    if let Some(map) = root.find("navMap") {
        ncx_points(&mut out, ncx_path, map, 0);
    }
    out
}

fn ncx_points(out: &mut Vec<Entry>, base: &str, parent: &Element, level: u32) {
    if level > MAX_LEVEL {
        return;
    }
    for p in parent.elements().filter(|e| e.is("navPoint")) {
        let label = p
            .elements()
            .find(|e| e.is("navLabel"))
            .map(Element::text)
            .unwrap_or_default();
        if let Some(src) = p
            .elements()
            .find(|e| e.is("content"))
            .and_then(|c| c.attr("src"))
        {
            entry(out, base, label, src, level);
        }
        ncx_points(out, base, p, level + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nav_document() {
        let nav = r#"<html xmlns:epub="http://www.idpf.org/2007/ops"><body>
          <nav epub:type="landmarks"><ol><li><a href="x.xhtml">Landmark</a></li></ol></nav>
          <nav epub:type="toc"><h1>Contents</h1><ol>
            <li><a href="text/c1.xhtml">One</a></li>
            <li><a href="text/c2.xhtml#s2">Two <em>parts</em></a><ol><li><a href="text/c2.xhtml#s21">Two.1</a></li></ol></li>
            <li><a href="javascript:alert(1)">Evil</a></li>
          </ol></nav></body></html>"#;
        let t = from_nav(nav.as_bytes(), "OEBPS/nav.xhtml");
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].label, "Two parts");
        assert_eq!(t[1].path, "OEBPS/text/c2.xhtml");
        assert_eq!(t[1].fragment.as_deref(), Some("s2"));
        assert_eq!(t[2].level, 1);
    }

    #[test]
    fn ncx() {
        let ncx = r#"<ncx><navMap>
          <navPoint id="a" playOrder="1"><navLabel><text>First</text></navLabel><content src="a.html"/>
            <navPoint id="b"><navLabel><text>Inner</text></navLabel><content src="a.html#i"/></navPoint></navPoint>
          <navPoint id="c"><navLabel><text>Second</text></navLabel><content src="b.html"/></navPoint>
          </navMap></ncx>"#;
        let t = from_ncx(ncx.as_bytes(), "toc.ncx");
        let labels: Vec<_> = t.iter().map(|e| (e.label.as_str(), e.level)).collect();
        assert_eq!(labels, [("First", 0), ("Inner", 1), ("Second", 0)]);
    }
}
