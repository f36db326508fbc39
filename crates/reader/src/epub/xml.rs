//! A small, lenient element tree over quick-xml for the EPUB's XML documents
//! (container.xml, the OPF, the NCX, the nav document). Total: any bytes give a tree
//! (maybe empty); mismatched end tags are tolerated, parsing stops at the first hard error
//! and keeps what was read, depth and node count are bounded.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Deepest element nesting kept (deeper elements are skipped, their text too).
pub const MAX_DEPTH: usize = 256;
/// Most nodes (elements and texts) kept per document.
pub const MAX_NODES: usize = 500_000;

/// One element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// The qualified name as written (`dc:title`).
    pub name: String,
    /// Attributes: qualified name and value (entities resolved).
    pub attrs: Vec<(String, String)>,
    /// Child nodes in order.
    pub children: Vec<Node>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// An element.
    Element(Element),
    /// Text (entities resolved).
    Text(String),
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

impl Element {
    /// The local name (`title` for `dc:title`), lowercase-insensitive comparisons are up to
    /// the caller.
    pub fn local(&self) -> &str {
        local(&self.name)
    }

    /// Whether the local name is `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.local().eq_ignore_ascii_case(name)
    }

    /// An attribute by qualified name (`epub:type`), else by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .or_else(|| {
                let want = local(name);
                self.attrs
                    .iter()
                    .find(|(k, _)| local(k).eq_ignore_ascii_case(want))
            })
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Every descendant element, depth first, in document order (self excluded).
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack: Vec<&Element> = self.elements().collect::<Vec<_>>();
        stack.reverse();
        while let Some(e) = stack.pop() {
            out.push(e);
            let mut kids: Vec<&Element> = e.elements().collect();
            kids.reverse();
            stack.extend(kids);
        }
        out
    }

    /// The first descendant with local name `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.descendants().into_iter().find(|e| e.is(name))
    }

    /// All text inside, whitespace collapsed to single spaces and trimmed.
    pub fn text(&self) -> String {
        let mut raw = String::new();
        let mut stack: Vec<&Node> = self.children.iter().rev().collect();
        while let Some(n) = stack.pop() {
            match n {
                Node::Text(t) => raw.push_str(t),
                Node::Element(e) => stack.extend(e.children.iter().rev()),
            }
        }
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Decodes an XML document's bytes: UTF-16 with a BOM, else UTF-8 (lossy).
pub fn decode(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return enc
            .decode_without_bom_handling(&bytes[bom..])
            .0
            .into_owned();
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// The predefined XML entities plus the HTML ones common in books.
pub fn entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "shy" => "\u{ad}",
        "mdash" => "—",
        "ndash" => "–",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "laquo" => "«",
        "raquo" => "»",
        "middot" => "·",
        "eacute" => "é",
        "egrave" => "è",
        _ => return None,
    })
}

fn start(e: &BytesStart<'_>) -> Element {
    let mut attrs = Vec::new();
    for a in e.attributes().with_checks(false).flatten() {
        let key = a.key.0.to_owned();
        let value = a
            .normalized_value_with(quick_xml::XmlVersion::Implicit1_0, 4, entity)
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| a.value.clone().into_owned());
        attrs.push((key, value));
    }
    Element {
        name: e.name().0.to_owned(),
        attrs,
        children: Vec::new(),
    }
}

/// Parses `bytes` into a tree under a synthetic root element (named ``).
pub fn parse(bytes: &[u8]) -> Element {
    let text = decode(bytes);
    let mut reader = Reader::from_str(&text);
    {
        let c = reader.config_mut();
        c.check_end_names = false;
        c.allow_unmatched_ends = true;
        c.expand_empty_elements = false;
    }
    // The open elements, the synthetic root first.
    let mut stack: Vec<Element> = vec![Element::default()];
    // Elements entered beyond MAX_DEPTH (skipped).
    let mut skipped = 0usize;
    let mut nodes = 0usize;
    // A hard syntax error ends the document: what was read so far is kept.
    while let Ok(ev) = reader.read_event() {
        if nodes >= MAX_NODES {
            break;
        }
        match ev {
            Event::Eof => break,
            Event::Start(e) => {
                if skipped > 0 || stack.len() > MAX_DEPTH {
                    skipped += 1;
                    continue;
                }
                nodes += 1;
                stack.push(start(&e));
            }
            Event::Empty(e) => {
                if skipped > 0 || stack.len() > MAX_DEPTH {
                    continue;
                }
                nodes += 1;
                let el = start(&e);
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::Element(el));
                }
            }
            Event::End(e) => {
                if skipped > 0 {
                    skipped -= 1;
                    continue;
                }
                let name = e.name().0.to_owned();
                // Close up to the matching open element, if there is one.
                if let Some(pos) = stack.iter().rposition(|o| o.name == name) {
                    if pos == 0 {
                        continue;
                    }
                    while stack.len() > pos {
                        close(&mut stack);
                    }
                }
            }
            Event::Text(t) => push_text(
                &mut stack,
                skipped,
                &t.xml_content(quick_xml::XmlVersion::Implicit1_0),
                &mut nodes,
            ),
            Event::CData(t) => push_text(
                &mut stack,
                skipped,
                &t.xml_content(quick_xml::XmlVersion::Implicit1_0),
                &mut nodes,
            ),
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.xml_content(quick_xml::XmlVersion::Implicit1_0);
                        entity(&name).map_or_else(|| format!("&{name};"), str::to_owned)
                    }
                    Err(_) => String::new(),
                };
                push_text(&mut stack, skipped, &s, &mut nodes);
            }
            _ => {}
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack.pop().unwrap_or_default()
}

fn close(stack: &mut Vec<Element>) {
    if let Some(done) = stack.pop() {
        if let Some(parent) = stack.last_mut() {
            parent.children.push(Node::Element(done));
        }
    }
}

fn push_text(stack: &mut [Element], skipped: usize, t: &str, nodes: &mut usize) {
    if skipped > 0 || t.is_empty() {
        return;
    }
    if let Some(top) = stack.last_mut() {
        if let Some(Node::Text(prev)) = top.children.last_mut() {
            prev.push_str(t);
            return;
        }
        *nodes += 1;
        top.children.push(Node::Text(t.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_tree() {
        let root = parse(b"<?xml version='1.0'?><a x='1' y=\"&amp;&nbsp;\"><b>t&amp;u&#x41;&nbsp;&zz;</b><c/><d>unclosed</a>");
        let a = root.find("a").unwrap();
        assert_eq!(a.attr("y"), Some("&\u{a0}"));
        assert_eq!(a.find("b").unwrap().text(), "t&uA &zz;");
        assert!(a.find("c").is_some());
        assert_eq!(a.find("d").unwrap().text(), "unclosed");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut s = String::new();
        for _ in 0..10_000 {
            s.push_str("<x>");
        }
        let root = parse(s.as_bytes());
        assert!(root.descendants().len() <= MAX_DEPTH + 1);
    }

    #[test]
    fn utf16_with_bom() {
        let mut b = vec![0xFF, 0xFE];
        for u in "<t>é</t>".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(parse(&b).find("t").unwrap().text(), "é");
    }
}
