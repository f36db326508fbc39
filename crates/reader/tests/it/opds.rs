//! OPDS feeds parse as XML, carry the required rels and media types, every link resolves,
//! and PSE pages are images of the requested width.

use crate::common;

use std::collections::BTreeSet;

use common::Server;
use quick_xml::events::Event;
use quick_xml::Reader;
use sockit_reader::demo;

/// An OPDS 1.2 feed as the tests look at it.
#[derive(Debug, Default)]
pub struct Feed {
    pub root: String,
    pub links: Vec<Link>,
    pub entries: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Link {
    pub rel: String,
    pub href: String,
    pub ty: String,
    pub pse_count: Option<u64>,
    pub in_entry: bool,
}

/// Parses an OPDS 1.2 feed (failing the test when it is not XML).
pub fn parse(xml: &[u8]) -> Feed {
    let mut r = Reader::from_reader(xml);
    let mut feed = Feed::default();
    let mut depth_entry = 0;
    let mut buf = Vec::new();
    loop {
        match r
            .read_event_into(&mut buf)
            .unwrap_or_else(|e| panic!("not XML: {e}"))
        {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().0.to_owned();
                if feed.root.is_empty() {
                    feed.root = name.clone();
                }
                if name == "entry" {
                    feed.entries += 1;
                    depth_entry = 1;
                }
                if name == "link" {
                    let mut l = Link {
                        in_entry: depth_entry > 0,
                        ..Link::default()
                    };
                    for a in e.attributes() {
                        let a = a.unwrap();
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned();
                        match a.key.0 {
                            "rel" => l.rel = v,
                            "href" => l.href = v,
                            "type" => l.ty = v,
                            "pse:count" => l.pse_count = v.parse().ok(),
                            _ => {}
                        }
                    }
                    feed.links.push(l);
                }
            }
            Event::End(e) if e.name().0 == "entry" => depth_entry = 0,
            _ => {}
        }
        buf.clear();
    }
    feed
}

fn library() -> Server {
    let mut files: Vec<(String, Vec<u8>)> = (0..55)
        .map(|i| {
            (
                format!("shelf/book{i:02}.txt"),
                format!("Book {i}\nsome text\n").into_bytes(),
            )
        })
        .collect();
    files.push((
        "Pictures.pdf".into(),
        demo::make_pdf("Pictures", "An Author", 4, &["x"]),
    ));
    files.push((
        "Pictures.jpg".into(),
        demo::make_cover_jpeg(60, 80, [9, 9, 9]),
    ));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    Server::start(&refs)
}

fn feed(s: &Server, path: &str, kind: &str) -> Feed {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}");
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/atom+xml")
            && ct.contains("profile=opds-catalog")
            && ct.contains(&format!("kind={kind}")),
        "{path}: {ct}"
    );
    let f = parse(&r.body);
    assert_eq!(f.root, "feed");
    for rel in ["self", "start", "search"] {
        assert!(
            f.links.iter().any(|l| l.rel == rel && !l.in_entry),
            "{path} has no {rel} link"
        );
    }
    f
}

/// GETs every link; PSE templates are filled in. Returns how many were checked.
fn resolve_all(s: &Server, f: &Feed, seen: &mut BTreeSet<String>) {
    for l in &f.links {
        let href = l
            .href
            .replace("{pageNumber}", "0")
            .replace("{maxWidth}", "300");
        if !seen.insert(href.clone()) {
            continue;
        }
        let r = s.get(&href);
        assert_eq!(
            r.status, 200,
            "link {} ({}) does not resolve",
            l.href, l.rel
        );
        let ct = r.header("content-type").unwrap_or_default().to_owned();
        let expect_prefix = l.ty.split(';').next().unwrap_or_default();
        assert!(
            ct.starts_with(expect_prefix),
            "{href}: type {ct}, link says {}",
            l.ty
        );
    }
}

#[test]
fn opds_feeds_rels_types_links_and_pse() {
    let s = library();
    let root = feed(&s, "/opds", "navigation");
    assert!(root
        .links
        .iter()
        .any(|l| l.in_entry && l.href == "/opds/all" && l.ty.contains("kind=acquisition")));
    let mut seen = BTreeSet::new();
    resolve_all(&s, &root, &mut seen);

    // Page 1 of "All": 50 entries, next/last links; page 2: the rest, previous link.
    let p1 = feed(&s, "/opds/all", "acquisition");
    assert_eq!(p1.entries, 50);
    let next = p1
        .links
        .iter()
        .find(|l| l.rel == "next")
        .expect("next link")
        .href
        .clone();
    assert!(!p1.links.iter().any(|l| l.rel == "previous"));
    let p2 = feed(&s, &next, "acquisition");
    assert_eq!(p2.entries, 56 - 50);
    assert!(p2.links.iter().any(|l| l.rel == "previous"));
    assert!(!p2.links.iter().any(|l| l.rel == "next"));
    for f in [&p1, &p2] {
        let entry_links: Vec<&Link> = f.links.iter().filter(|l| l.in_entry).collect();
        let acq = entry_links
            .iter()
            .filter(|l| l.rel == "http://opds-spec.org/acquisition")
            .count();
        let img = entry_links
            .iter()
            .filter(|l| l.rel == "http://opds-spec.org/image" && l.ty == "image/jpeg")
            .count();
        let thumb = entry_links
            .iter()
            .filter(|l| l.rel == "http://opds-spec.org/image/thumbnail")
            .count();
        assert_eq!((acq, img, thumb), (f.entries, f.entries, f.entries));
        resolve_all(&s, f, &mut seen);
    }

    // PSE: the PDF has a stream link with its page count; pages are images of the width asked.
    let pse: Vec<&Link> = p1
        .links
        .iter()
        .chain(&p2.links)
        .filter(|l| l.rel == "http://vaemendis.net/opds-pse/stream")
        .collect();
    assert_eq!(pse.len(), 1, "only the PDF streams");
    assert_eq!(pse[0].pse_count, Some(4));
    assert_eq!(pse[0].ty, "image/jpeg");
    for (page, width) in [(0, 300u32), (3, 517)] {
        let href = pse[0]
            .href
            .replace("{pageNumber}", &page.to_string())
            .replace("{maxWidth}", &width.to_string());
        let r = s.get(&href);
        assert_eq!(r.status, 200, "{href}");
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        let img = image::load_from_memory(&r.body).unwrap();
        assert_eq!(img.width(), width, "{href}");
    }
    let beyond = pse[0]
        .href
        .replace("{pageNumber}", "4")
        .replace("{maxWidth}", "300");
    assert_eq!(s.get(&beyond).status, 404);

    // Search: OpenSearch description, then a query.
    let r = s.get("/opds/opensearch.xml");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/opensearchdescription+xml")
    );
    assert!(String::from_utf8_lossy(&r.body).contains("/opds/search?q={searchTerms}"));
    let found = feed(&s, "/opds/search?q=pictures", "acquisition");
    assert_eq!(found.entries, 1);
    let recent = feed(&s, "/opds/recent", "acquisition");
    assert_eq!(recent.entries, 50);
}

#[test]
fn opds_asks_for_basic_auth_once_accounts_exist() {
    let s = library();
    assert_eq!(s.get("/opds").status, 200);
    let r = s.req(
        "POST",
        "/users/create",
        &[],
        br#"{"username":"reader","password":"5ebe2294ecd0e0f08eab7690d2a6ee69"}"#,
    );
    assert_eq!(r.status, 201);
    let r = s.get("/opds");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Basic"));
    use base64::Engine as _;
    // The password KOReader hashed is "secret": Basic with the plain password works.
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("reader:secret")
    );
    assert_eq!(
        s.req("GET", "/opds", &[("Authorization", &good)], b"")
            .status,
        200
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("reader:nope")
    );
    assert_eq!(
        s.req("GET", "/opds/all", &[("Authorization", &bad)], b"")
            .status,
        401
    );
}

/// GETs an OPDS 2.0 feed, checking its media type and the links every feed carries.
fn feed2(s: &Server, path: &str) -> serde_json::Value {
    let r = s.get(path);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/opds+json"),
        "{path}"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["metadata"]["title"].is_string(), "{path}");
    let rels: Vec<&str> = v["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["rel"].as_str())
        .collect();
    for rel in ["self", "start", "search"] {
        assert!(rels.contains(&rel), "{path} has no {rel} link: {rels:?}");
    }
    v
}

/// Every `href` of a feed (links, navigation, publications' links and images), templates
/// filled.
fn hrefs2(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |l: &serde_json::Value| {
        let href = l["href"]
            .as_str()
            .unwrap()
            .replace("{?query}", "?query=pictures");
        out.push((href, l["type"].as_str().unwrap_or_default().to_owned()));
    };
    for key in ["links", "navigation"] {
        v[key].as_array().into_iter().flatten().for_each(&mut push);
    }
    for p in v["publications"].as_array().into_iter().flatten() {
        p["links"].as_array().unwrap().iter().for_each(&mut push);
        p["images"].as_array().unwrap().iter().for_each(&mut push);
    }
    out
}

#[test]
fn opds2_feeds_are_json_with_navigation_publications_paging_and_search() {
    let s = library();
    let root = feed2(&s, "/opds/v2");
    let nav: Vec<&str> = root["navigation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    assert_eq!(nav, ["/opds/v2/all", "/opds/v2/recent", "/opds/v2/shelves"]);
    let search = root["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "search")
        .unwrap();
    assert_eq!(search["href"], "/opds/v2/search{?query}");
    assert_eq!(search["templated"], true);
    // The 1.2 root links its 2.0 twin.
    let root1 = parse(&s.get("/opds").body);
    assert!(root1
        .links
        .iter()
        .any(|l| l.rel == "alternate" && l.href == "/opds/v2" && l.ty == "application/opds+json"));

    let p1 = feed2(&s, "/opds/v2/all");
    assert_eq!(p1["metadata"]["numberOfItems"], 56);
    assert_eq!(p1["metadata"]["itemsPerPage"], 50);
    assert_eq!(p1["publications"].as_array().unwrap().len(), 50);
    let next = p1["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .expect("a next link")["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2 = feed2(&s, &next);
    assert_eq!(p2["metadata"]["currentPage"], 2);
    let pubs = p2["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 6);
    let pdf = pubs
        .iter()
        .find(|p| p["metadata"]["title"] == "Pictures")
        .expect("the PDF on page 2");
    assert_eq!(pdf["metadata"]["@type"], "http://schema.org/Book");
    assert_eq!(pdf["metadata"]["author"][0]["name"], "An Author");
    assert_eq!(pdf["metadata"]["numberOfPages"], 4);
    let acq = &pdf["links"][0];
    assert_eq!(
        (acq["rel"].as_str(), acq["type"].as_str()),
        (
            Some("http://opds-spec.org/acquisition"),
            Some("application/pdf")
        )
    );
    assert_eq!(s.get("/opds/v2/all?page=3").status, 404);

    let found = feed2(&s, "/opds/v2/search?query=pictures");
    assert_eq!(found["publications"].as_array().unwrap().len(), 1);
    assert_eq!(
        feed2(&s, "/opds/v2/recent")["publications"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    let shelves = feed2(&s, "/opds/v2/shelves");
    assert_eq!(
        shelves["navigation"],
        serde_json::json!([]),
        "no shelves yet"
    );

    // Every link resolves with the type it names.
    let mut seen = BTreeSet::new();
    for v in [&root, &p1, &p2, &found] {
        for (href, ty) in hrefs2(v) {
            if !seen.insert(href.clone()) {
                continue;
            }
            let r = s.get(&href);
            assert_eq!(r.status, 200, "{href}");
            let ct = r.header("content-type").unwrap_or_default();
            let want = ty.split(';').next().unwrap_or_default();
            assert!(ct.starts_with(want), "{href}: {ct}, link says {ty}");
        }
    }
}
