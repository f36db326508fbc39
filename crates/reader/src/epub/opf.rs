//! The package document (OPF) of EPUB 2 and 3: metadata, manifest, spine, cover, and
//! where the table of contents is. Pure and total: missing or malformed parts are `None`
//! or empty.

use std::collections::HashMap;

use super::path::{resolve, Target};
use super::xml::{self, Element};

/// Longest metadata text kept (title, author, description), in characters.
pub const MAX_TEXT: usize = 4096;

/// A manifest item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's id.
    pub id: String,
    /// Its entry name (resolved against the OPF's directory).
    pub path: String,
    /// `media-type`.
    pub media_type: String,
    /// EPUB 3 `properties` (`nav`, `cover-image`, ...).
    pub properties: Vec<String>,
}

/// What the OPF says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Package {
    /// `version` of the package (`2.0`, `3.0`).
    pub version: String,
    /// `dc:title` (the first non-empty one).
    pub title: Option<String>,
    /// `dc:creator`s that are authors (no role, or role `aut`).
    pub authors: Vec<String>,
    /// `dc:language`.
    pub language: Option<String>,
    /// `dc:description` as plain text (markup removed).
    pub description: Option<String>,
    /// The series: `calibre:series`, or EPUB 3 `belongs-to-collection`.
    pub series: Option<String>,
    /// The position in the series (`calibre:series_index`, `group-position`).
    pub series_index: Option<f64>,
    /// The manifest.
    pub manifest: Vec<Item>,
    /// The spine: entry names of the reading order.
    pub spine: Vec<String>,
    /// The cover image's entry name.
    pub cover: Option<String>,
    /// The EPUB 3 navigation document's entry name.
    pub nav: Option<String>,
    /// The EPUB 2 NCX's entry name.
    pub ncx: Option<String>,
}

fn clip(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    if s.is_empty() {
        return None;
    }
    if s.chars().count() > MAX_TEXT {
        let mut c: String = s.chars().take(MAX_TEXT).collect();
        c.push('…');
        return Some(c);
    }
    Some(s)
}

/// Removes markup from a description that holds (escaped) HTML.
pub fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses the OPF found at entry `opf_path`.
pub fn parse(bytes: &[u8], opf_path: &str) -> Package {
    let root = xml::parse(bytes);
    let all = root.descendants();
    let mut p = Package {
        version: root
            .find("package")
            .and_then(|e| e.attr("version"))
            .unwrap_or("")
            .to_owned(),
        ..Package::default()
    };
    // EPUB 3 refinements: `<meta refines="#id" property="role">aut</meta>`.
    let mut refines: HashMap<(&str, String), String> = HashMap::new();
    for e in all.iter().filter(|e| e.is("meta")) {
        if let (Some(target), Some(prop)) = (e.attr("refines"), e.attr("property")) {
            refines
                .entry((target.trim_start_matches('#'), prop.to_ascii_lowercase()))
                .or_insert_with(|| e.text());
        }
    }
    let refined = |e: &Element, prop: &str| -> Option<String> {
        let id = e.attr("id")?;
        refines.get(&(id, prop.to_owned())).cloned()
    };
    for e in &all {
        match e.local().to_ascii_lowercase().as_str() {
            "title" if p.title.is_none() => p.title = clip(e.text()),
            "creator" => {
                let role = e
                    .attr("opf:role")
                    .map(str::to_owned)
                    .or_else(|| refined(e, "role"));
                if role
                    .as_deref()
                    .is_none_or(|r| r.eq_ignore_ascii_case("aut"))
                {
                    if let Some(a) = clip(e.text()) {
                        if p.authors.len() < 64 && !p.authors.contains(&a) {
                            p.authors.push(a);
                        }
                    }
                }
            }
            "language" if p.language.is_none() => p.language = clip(e.text()),
            "description" if p.description.is_none() => {
                p.description = clip(strip_tags(&e.text()));
            }
            "meta" => {
                let name = e.attr("name").unwrap_or("");
                let content = e.attr("content").unwrap_or("");
                if name.eq_ignore_ascii_case("calibre:series") {
                    p.series = p.series.take().or_else(|| clip(content.to_owned()));
                } else if name.eq_ignore_ascii_case("calibre:series_index") {
                    p.series_index = p.series_index.or_else(|| number(content));
                } else if e
                    .attr("property")
                    .is_some_and(|v| v.eq_ignore_ascii_case("belongs-to-collection"))
                    && p.series.is_none()
                {
                    let kind = refined(e, "collection-type");
                    if kind
                        .as_deref()
                        .is_none_or(|k| k.eq_ignore_ascii_case("series"))
                    {
                        p.series = clip(e.text());
                        if let Some(pos) = refined(e, "group-position") {
                            p.series_index = number(&pos);
                        }
                    }
                }
            }
            "item" => {
                let (Some(id), Some(href)) = (e.attr("id"), e.attr("href")) else {
                    continue;
                };
                let Target::Inside { path, .. } = resolve(opf_path, href) else {
                    continue;
                };
                p.manifest.push(Item {
                    id: id.to_owned(),
                    path,
                    media_type: e.attr("media-type").unwrap_or("").to_ascii_lowercase(),
                    properties: e
                        .attr("properties")
                        .unwrap_or("")
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect(),
                });
            }
            _ => {}
        }
    }
    let by_id: HashMap<&str, &Item> = p.manifest.iter().map(|i| (i.id.as_str(), i)).collect();
    let spine_el = all.iter().find(|e| e.is("spine"));
    let spine: Vec<String> = spine_el
        .map(|s| {
            s.elements()
                .filter(|e| e.is("itemref"))
                .filter_map(|e| by_id.get(e.attr("idref")?).map(|i| i.path.clone()))
                .collect()
        })
        .unwrap_or_default();
    let ncx = spine_el
        .and_then(|s| s.attr("toc"))
        .and_then(|id| by_id.get(id))
        .or_else(|| {
            p.manifest
                .iter()
                .find(|i| i.media_type == "application/x-dtbncx+xml")
                .as_ref()
                .and_then(|i| by_id.get(i.id.as_str()))
        })
        .map(|i| i.path.clone());
    let nav = p
        .manifest
        .iter()
        .find(|i| i.properties.iter().any(|x| x == "nav"))
        .map(|i| i.path.clone());
    let is_image = |i: &Item| i.media_type.starts_with("image/");
    let cover = p
        .manifest
        .iter()
        .find(|i| i.properties.iter().any(|x| x == "cover-image"))
        .or_else(|| {
            let id = all
                .iter()
                .find(|e| {
                    e.is("meta")
                        && e.attr("name")
                            .is_some_and(|n| n.eq_ignore_ascii_case("cover"))
                })?
                .attr("content")?;
            by_id.get(id).copied().or_else(|| {
                // Some books name the file instead of the item.
                match resolve(opf_path, id) {
                    Target::Inside { path, .. } => p.manifest.iter().find(|i| i.path == path),
                    _ => None,
                }
            })
        })
        .or_else(|| {
            p.manifest.iter().find(|i| {
                is_image(i)
                    && (i.id.to_ascii_lowercase().contains("cover")
                        || i.path.to_ascii_lowercase().contains("cover"))
            })
        })
        .filter(|i| is_image(i))
        .map(|i| i.path.clone());
    p.spine = spine;
    p.ncx = ncx;
    p.nav = nav;
    p.cover = cover;
    p
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPUB3: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:title>The Book &amp; More</dc:title>
  <dc:creator id="c1">Ann Author</dc:creator>
  <meta refines="#c1" property="role" scheme="marc:relators">aut</meta>
  <dc:creator id="c2">Ed Itor</dc:creator>
  <meta refines="#c2" property="role" scheme="marc:relators">edt</meta>
  <dc:language>en</dc:language>
  <dc:description>&lt;p&gt;A &lt;b&gt;fine&lt;/b&gt; book.&lt;/p&gt;</dc:description>
  <meta property="belongs-to-collection" id="s">The Saga</meta>
  <meta refines="#s" property="collection-type">series</meta>
  <meta refines="#s" property="group-position">2</meta>
 </metadata>
 <manifest>
  <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
  <item id="c1" href="text/c1.xhtml" media-type="application/xhtml+xml"/>
  <item id="c2" href="text/c2.xhtml" media-type="application/xhtml+xml"/>
  <item id="img" href="images/cover.png" media-type="image/png" properties="cover-image"/>
  <item id="evil" href="../../etc/passwd" media-type="text/plain"/>
 </manifest>
 <spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="missing"/><itemref idref="evil"/></spine>
</package>"##;

    #[test]
    fn epub3_package() {
        let p = parse(EPUB3.as_bytes(), "OEBPS/content.opf");
        assert_eq!(p.version, "3.0");
        assert_eq!(p.title.as_deref(), Some("The Book & More"));
        assert_eq!(p.authors, ["Ann Author"]);
        assert_eq!(p.language.as_deref(), Some("en"));
        assert_eq!(p.description.as_deref(), Some("A fine book."));
        assert_eq!(p.series.as_deref(), Some("The Saga"));
        assert_eq!(p.series_index, Some(2.0));
        assert_eq!(p.spine, ["OEBPS/text/c1.xhtml", "OEBPS/text/c2.xhtml"]);
        assert_eq!(p.cover.as_deref(), Some("OEBPS/images/cover.png"));
        assert_eq!(p.nav.as_deref(), Some("OEBPS/nav.xhtml"));
        assert_eq!(p.manifest.len(), 4);
    }

    #[test]
    fn epub2_package() {
        let opf = r#"<package version="2.0" xmlns:opf="http://www.idpf.org/2007/opf"><metadata>
          <dc:title>Old</dc:title><dc:creator opf:role="aut">A. One</dc:creator><dc:creator opf:role="ill">Ill</dc:creator>
          <meta name="calibre:series" content="Classics"/><meta name="calibre:series_index" content="3.5"/>
          <meta name="cover" content="cov"/></metadata>
          <manifest><item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
          <item id="cov" href="cover.jpg" media-type="image/jpeg"/><item id="a" href="a.html" media-type="application/xhtml+xml"/></manifest>
          <spine toc="ncx"><itemref idref="a"/></spine></package>"#;
        let p = parse(opf.as_bytes(), "content.opf");
        assert_eq!(p.authors, ["A. One"]);
        assert_eq!(p.series.as_deref(), Some("Classics"));
        assert_eq!(p.series_index, Some(3.5));
        assert_eq!(p.cover.as_deref(), Some("cover.jpg"));
        assert_eq!(p.ncx.as_deref(), Some("toc.ncx"));
        assert_eq!(p.spine, ["a.html"]);
    }

    #[test]
    fn garbage_is_empty() {
        let p = parse(b"\x00\x01<<<>>>&&&", "x.opf");
        assert_eq!(p, Package::default());
    }
}
