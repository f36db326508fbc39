//! Remote paths: parsing what a client sends into a path that stays inside the data root.
//!
//! This is the first of two fences (the second is the capability filesystem in
//! [`crate::root`], which refuses anything that resolves outside the root, symlinks
//! included). Parsing is pure and total: every input is either a [`RelPath`] or a
//! [`PathError`] saying why it is denied.
//!
//! The generic rules are those of every sockit service, [`sockit_runtime::confine::check`]
//! with a leading `/` refused ([`Leading::Refuse`]): no `..`, no absolute path, no NUL or
//! other control character, no drive prefix (`C:`, `c:x`, any two-character first
//! component ending in `:`); empty and `.` components are dropped (`a//./b` is `a/b`). The file service adds stricter rules on top: `\` is an error rather
//! than a separator, percent-encoded separators/dots/NUL (`%2e%2e%2f`) and Unicode
//! look-alikes of `.`, `/` and `\` are refused, components over 255 bytes and paths over
//! 4096 bytes are refused, as are the server's own reserved names; and the empty path is
//! the root itself.

use std::fmt;
use std::path::PathBuf;

use sockit_runtime::confine::{self, Leading, NameError};

/// Longest accepted component, in bytes (Linux `NAME_MAX`).
pub(crate) const MAX_COMPONENT: usize = 255;
/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub(crate) const MAX_PATH: usize = 4096;
/// The name of the staging directory inside the root in the older single-tree layout
/// ([`crate::FilesRoot::open`]); no client path may name it, and roots that still hold it
/// never show it.
pub(crate) const STAGING_DIR: &str = ".sockit-staging";
/// Where older servers kept private state in the data root (e.g. the TLS key under
/// `.sockit/tls/`); still reserved so an old root never exposes it.
pub(crate) const PRIVATE_DIR: &str = ".sockit";

/// Top-level names no client path may use or see.
pub(crate) fn is_reserved(name: &str) -> bool {
    name == STAGING_DIR || name == PRIVATE_DIR
}

/// Why a path was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `..` component.
    #[error("`..` is not allowed: paths stay inside the data root")]
    ParentDir,
    /// Starts with `/`.
    #[error("absolute paths are not allowed: paths are relative to the data root")]
    Absolute,
    /// Contains `\`.
    #[error("`\\` is not allowed in paths: use `/` as the separator")]
    Backslash,
    /// Contains NUL or another control character.
    #[error("control characters (NUL, newline, ...) are not allowed in paths")]
    Control,
    /// Starts with a drive prefix such as `C:`.
    #[error("drive prefixes such as `C:` are not allowed")]
    Drive,
    /// Contains a percent-encoded `.`, `/`, `\` or control byte.
    #[error(
        "percent-encoded separators, dots or control bytes are not allowed (`%2e`, `%2f`, ...)"
    )]
    PercentEncoded,
    /// Contains a character that looks like `.`, `/` or `\`.
    #[error("character U+{0:04X} looks like a path separator or dot and is not allowed")]
    LookAlike(u32),
    /// A component is too long.
    #[error("a path component is over {MAX_COMPONENT} bytes")]
    ComponentTooLong,
    /// The whole path is too long.
    #[error("path is over {MAX_PATH} bytes")]
    TooLong,
    /// Names the server's staging area or private state.
    #[error("`{STAGING_DIR}` and `{PRIVATE_DIR}` are reserved for the server")]
    Reserved,
}

/// A validated path relative to the data root (possibly empty: the root itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// The root itself.
    pub fn root() -> Self {
        Self { parts: Vec::new() }
    }

    /// Parses a client path.
    ///
    /// # Errors
    /// The path could leave the root or is otherwise unsafe; see [`PathError`].
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        let generic = confine::check(raw, Leading::Refuse);
        if generic == Err(NameError::Control) {
            return Err(PathError::Control);
        }
        // Before the generic result is used: it reads `\` as a separator.
        if raw.contains('\\') {
            return Err(PathError::Backslash);
        }
        if let Some(c) = raw.chars().find(|&c| is_look_alike(c)) {
            return Err(PathError::LookAlike(c as u32));
        }
        if has_encoded_danger(raw) {
            return Err(PathError::PercentEncoded);
        }
        let checked = match generic {
            Ok(checked) => checked,
            // Nothing but empty and `.` components: the root itself.
            Err(NameError::Empty) => return Ok(Self::root()),
            Err(NameError::ParentDir) => return Err(PathError::ParentDir),
            Err(NameError::Absolute) => return Err(PathError::Absolute),
            Err(NameError::Control) => return Err(PathError::Control),
            Err(NameError::Drive) => return Err(PathError::Drive),
        };
        let mut parts = Vec::new();
        for part in checked.components() {
            if part.len() > MAX_COMPONENT {
                return Err(PathError::ComponentTooLong);
            }
            if parts.is_empty() && is_reserved(part) {
                return Err(PathError::Reserved);
            }
            parts.push(part.to_owned());
        }
        Ok(Self { parts })
    }

    /// Whether this is the root itself.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The last component (`None` for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// The parent path (`None` for the root).
    pub fn parent(&self) -> Option<RelPath> {
        if self.parts.is_empty() {
            return None;
        }
        Some(Self {
            parts: self.parts[..self.parts.len() - 1].to_vec(),
        })
    }

    /// This path with `name` appended (`name` must itself be a valid single component).
    ///
    /// # Errors
    /// `name` is not a valid single component.
    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        let child = RelPath::parse(name)?;
        if child.parts.len() != 1 {
            return Err(PathError::Backslash);
        }
        let mut parts = self.parts.clone();
        parts.extend(child.parts);
        Ok(Self { parts })
    }

    /// The path for the capability filesystem (`.` for the root).
    pub fn to_path(&self) -> PathBuf {
        if self.parts.is_empty() {
            return PathBuf::from(".");
        }
        self.parts.iter().collect()
    }

    /// The canonical `/`-joined spelling (empty for the root).
    pub fn as_string(&self) -> String {
        self.parts.join("/")
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.parts.join("/"))
        }
    }
}

/// Characters that render like `.`, `/` or `\` (a path that looks like `../` to a human or
/// to a normalizing layer is refused outright).
fn is_look_alike(c: char) -> bool {
    matches!(
        c,
        '\u{2024}' // one dot leader
        | '\u{2025}' // two dot leader
        | '\u{2026}' // ellipsis
        | '\u{FE52}' // small full stop
        | '\u{FF0E}' // fullwidth full stop
        | '\u{3002}' // ideographic full stop
        | '\u{FF61}' // halfwidth ideographic full stop
        | '\u{2215}' // division slash
        | '\u{2044}' // fraction slash
        | '\u{29F8}' // big solidus
        | '\u{FF0F}' // fullwidth solidus
        | '\u{2571}' // box drawings diagonal
        | '\u{29F5}' // reverse solidus operator
        | '\u{29F9}' // big reverse solidus
        | '\u{FE68}' // small reverse solidus
        | '\u{FF3C}' // fullwidth reverse solidus
        | '\u{2216}' // set minus
        | '\u{2572}' // box drawings diagonal
        | '\u{FF1A}' // fullwidth colon
        | '\u{200B}'..='\u{200F}' // zero-width and direction marks
        | '\u{202A}'..='\u{202E}' // bidi embedding/override
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}' // zero-width no-break space
    )
}

/// Whether the path holds `%XX` decoding to `.`, `/`, `\`, `%` or a control byte (a layer that
/// URL-decodes names would turn those into traversal).
fn has_encoded_danger(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.windows(3).any(|w| {
        if w[0] != b'%' {
            return false;
        }
        let (Some(hi), Some(lo)) = (hex_val(w[1]), hex_val(w[2])) else {
            return false;
        };
        let byte = hi * 16 + lo;
        matches!(byte, b'.' | b'/' | b'\\' | b'%' | b':') || byte < 0x20 || byte == 0x7f
    })
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let p = RelPath::parse("a/b.txt").unwrap();
        assert_eq!(p.as_string(), "a/b.txt");
        assert_eq!(p.file_name(), Some("b.txt"));
        assert_eq!(p.parent().unwrap().as_string(), "a");
    }

    #[test]
    fn normalizes_empty_and_dot() {
        assert_eq!(RelPath::parse("a//./b/").unwrap().as_string(), "a/b");
        assert!(RelPath::parse("").unwrap().is_root());
        assert!(RelPath::parse(".").unwrap().is_root());
    }

    #[test]
    fn parent_dir() {
        for p in ["..", "../x", "a/../../x", "a/.."] {
            assert_eq!(RelPath::parse(p), Err(PathError::ParentDir), "{p}");
        }
    }

    #[test]
    fn absolute_and_drive() {
        assert_eq!(RelPath::parse("/etc"), Err(PathError::Absolute));
        assert_eq!(RelPath::parse("C:"), Err(PathError::Drive));
        assert_eq!(RelPath::parse("c:foo"), Err(PathError::Drive));
        // The same name behind `./` is the same name (the shared check drops `.` first).
        assert_eq!(RelPath::parse("./c:foo"), Err(PathError::Drive));
        assert!(RelPath::parse("a/c:d").is_ok());
    }

    #[test]
    fn nul_and_backslash() {
        assert_eq!(RelPath::parse("a\0b"), Err(PathError::Control));
        assert_eq!(RelPath::parse("..\\x"), Err(PathError::Backslash));
    }

    #[test]
    fn percent() {
        assert_eq!(RelPath::parse("%2e%2e/x"), Err(PathError::PercentEncoded));
        assert_eq!(RelPath::parse("a%2Fb"), Err(PathError::PercentEncoded));
        assert!(RelPath::parse("100%").is_ok());
        assert!(RelPath::parse("50%41").is_ok());
    }

    #[test]
    fn look_alikes() {
        assert!(matches!(
            RelPath::parse("\u{2025}/x"),
            Err(PathError::LookAlike(0x2025))
        ));
        assert!(RelPath::parse("caf\u{e9}").is_ok());
    }

    #[test]
    fn long() {
        assert_eq!(
            RelPath::parse(&"a".repeat(256)),
            Err(PathError::ComponentTooLong)
        );
        assert!(RelPath::parse(&"a".repeat(255)).is_ok());
        assert_eq!(RelPath::parse(&"a/".repeat(3000)), Err(PathError::TooLong));
    }

    #[test]
    fn staging_reserved() {
        assert_eq!(
            RelPath::parse(".sockit-staging/x"),
            Err(PathError::Reserved)
        );
        assert!(RelPath::parse("d/.sockit-staging").is_ok());
        assert_eq!(
            RelPath::parse(".sockit/tls/key.pem"),
            Err(PathError::Reserved)
        );
    }

    #[test]
    fn join() {
        let p = RelPath::parse("d").unwrap().join("f").unwrap();
        assert_eq!(p.as_string(), "d/f");
        assert!(RelPath::root().join("..").is_err());
        assert!(RelPath::root().join("a/b").is_err());
    }

    proptest::proptest! {
        #[test]
        fn total(s in ".*") {
            if let Ok(p) = RelPath::parse(&s) {
                let text = p.as_string();
                proptest::prop_assert!(!text.split('/').any(|c| c == ".."));
                proptest::prop_assert!(!text.starts_with('/'));
            }
        }

        #[test]
        fn at_least_as_strict_as_the_shared_check(s in ".*") {
            if let Ok(p) = RelPath::parse(&s) {
                let generic = confine::check(&s, Leading::Refuse);
                if p.is_root() {
                    proptest::prop_assert_eq!(generic, Err(NameError::Empty));
                } else {
                    proptest::prop_assert_eq!(generic.map(|g| g.to_string()), Ok(p.as_string()));
                }
            }
        }
    }
}
