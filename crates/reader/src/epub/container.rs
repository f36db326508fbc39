//! `META-INF/container.xml`: where the package document (OPF) is. Pure and total.

use super::path::{resolve, Target};
use super::xml;

/// The container's entry name.
pub const CONTAINER: &str = "META-INF/container.xml";

/// The OPF's entry name: the first `rootfile` whose `media-type` is
/// `application/oebps-package+xml` (else the first `rootfile`), if it names an entry
/// inside the book.
pub fn rootfile(bytes: &[u8]) -> Option<String> {
    let root = xml::parse(bytes);
    let files: Vec<_> = root
        .descendants()
        .into_iter()
        .filter(|e| e.is("rootfile"))
        .collect();
    let pick = files
        .iter()
        .find(|e| e.attr("media-type") == Some("application/oebps-package+xml"))
        .or_else(|| files.first())?;
    // `full-path` is relative to the root of the container.
    match resolve("", pick.attr("full-path")?) {
        Target::Inside { path, .. } => Some(path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_package() {
        let c = br#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
          <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
        assert_eq!(rootfile(c).as_deref(), Some("OEBPS/content.opf"));
        assert_eq!(rootfile(b"<container/>"), None);
        assert_eq!(
            rootfile(br#"<rootfile full-path="../../etc/passwd"/>"#),
            None
        );
        assert_eq!(rootfile(b"\xff\x00garbage"), None);
    }
}
