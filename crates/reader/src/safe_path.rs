//! Turning a client-supplied book name into a path that is guaranteed to stay inside the
//! books root: no `..`, no absolute paths, no NUL, no drive prefixes, and no symlink that
//! points outside (checked on the canonical path, not on the string alone).

use std::path::{Path, PathBuf};

use crate::error::{ReaderError, Result};

/// Checks a relative, `/`-separated name lexically; returns its components.
///
/// # Errors
/// [`ReaderError::Traversal`] for `..`, absolute paths, backslash tricks, NUL or drive
/// prefixes; [`ReaderError::BadRequest`] for an empty name.
pub fn components(name: &str) -> Result<Vec<&str>> {
    if name.is_empty() {
        return Err(ReaderError::BadRequest("empty file name".into()));
    }
    let deny = || ReaderError::Traversal(name.to_owned());
    if name.contains('\0') || name.starts_with('/') || name.starts_with('\\') {
        return Err(deny());
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(deny());
    }
    let mut out = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => continue,
            ".." => return Err(deny()),
            p => out.push(p),
        }
    }
    if out.is_empty() {
        return Err(ReaderError::BadRequest(format!("`{name}` names no file")));
    }
    Ok(out)
}

/// Resolves `name` under `root` (which must be canonical) to an existing file's canonical
/// path inside `root`.
///
/// # Errors
/// Traversal (lexical or through a symlink), or [`ReaderError::NotFound`].
pub fn resolve(root: &Path, name: &str) -> Result<PathBuf> {
    let mut path = root.to_path_buf();
    for c in components(name)? {
        path.push(c);
    }
    let canonical = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReaderError::NotFound(name.to_owned()))
        }
        Err(e) => return Err(ReaderError::io(path, e)),
    };
    if !canonical.starts_with(root) {
        return Err(ReaderError::Traversal(name.to_owned()));
    }
    if !canonical.is_file() {
        return Err(ReaderError::NotFound(name.to_owned()));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot() {
        assert!(matches!(components("../x"), Err(ReaderError::Traversal(_))));
        assert!(matches!(
            components("a/../../x"),
            Err(ReaderError::Traversal(_))
        ));
        assert!(matches!(
            components("a\\..\\x"),
            Err(ReaderError::Traversal(_))
        ));
    }

    #[test]
    fn absolute_nul_drive() {
        assert!(matches!(
            components("/etc/passwd"),
            Err(ReaderError::Traversal(_))
        ));
        assert!(matches!(components("a\0b"), Err(ReaderError::Traversal(_))));
        assert!(matches!(components("C:x"), Err(ReaderError::Traversal(_))));
    }

    #[test]
    fn plain_names() {
        assert_eq!(components("a/./b.txt").unwrap(), vec!["a", "b.txt"]);
        assert_eq!(components("挽歌.pdf").unwrap(), vec!["挽歌.pdf"]);
        assert!(matches!(components(""), Err(ReaderError::BadRequest(_))));
    }

    #[test]
    fn symlink_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("books");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("in.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link.txt")).unwrap();
        let root = root.canonicalize().unwrap();
        assert!(resolve(&root, "in.txt").is_ok());
        assert!(matches!(
            resolve(&root, "link.txt"),
            Err(ReaderError::Traversal(_))
        ));
        assert!(matches!(
            resolve(&root, "nope.txt"),
            Err(ReaderError::NotFound(_))
        ));
    }
}
