//! The data root's layout: what clients may see and the server's own state, apart.
//!
//! ```text
//! ROOT/files    the framed file service's tree (and exec's working directory)
//! ROOT/tftp     the TFTP tree
//! ROOT/books    the reader's books
//! ROOT/state    never reachable from a client path:
//!   accounts.db   accounts (argon2id hashes)
//!   reader/       catalog, PDF.db, page and cover caches
//!   tls/          the generated certificate and key
//!   staging/      uploads in progress (same filesystem as files/, for atomic renames)
//! ```
//!
//! Roots laid out before this split (files at the top, `reader/`, `.sockit/tls`,
//! `.sockit-staging` beside them) are migrated on start with one log line per move.

use std::io;
use std::path::{Path, PathBuf};

use tracing::info;

/// The directories of one data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The data root.
    pub root: PathBuf,
    /// The file service's tree.
    pub files: PathBuf,
    /// The TFTP tree.
    pub tftp: PathBuf,
    /// The books.
    pub books: PathBuf,
    /// Server state.
    pub state: PathBuf,
}

/// Names at the top of a data root that belong to the layout (or to the legacy one).
const LAYOUT_NAMES: &[&str] = &["files", "tftp", "books", "state"];
/// The legacy reader state directory.
const LEGACY_READER: &str = "reader";
/// The legacy private directory (TLS certificate under `tls/`).
const LEGACY_PRIVATE: &str = ".sockit";
/// The legacy staging directory.
const LEGACY_STAGING: &str = ".sockit-staging";

impl Layout {
    /// The layout of `root` (nothing is created).
    pub fn of(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            files: root.join("files"),
            tftp: root.join("tftp"),
            books: root.join("books"),
            state: root.join("state"),
        }
    }

    /// Where the reader keeps its catalog and caches.
    pub fn reader_state(&self) -> PathBuf {
        self.state.join("reader")
    }

    /// Where the generated TLS certificate lives.
    pub fn tls(&self) -> PathBuf {
        self.state.join("tls")
    }

    /// Where the NTS master keys live (cookies stay valid across restarts).
    pub fn nts(&self) -> PathBuf {
        self.state.join("nts")
    }

    /// Where uploads are staged.
    pub fn staging(&self) -> PathBuf {
        self.state.join("staging")
    }

    /// The accounts database.
    pub fn accounts(&self) -> PathBuf {
        self.state.join("accounts.db")
    }

    /// Creates the directories (state with mode 0700), migrating a legacy root first.
    ///
    /// # Errors
    /// A directory cannot be created or a legacy entry cannot be moved.
    pub fn prepare(&self) -> io::Result<()> {
        let legacy =
            !self.files.exists() && !self.state.exists() && has_legacy_entries(&self.root)?;
        create_dir_with_mode(&self.state, 0o700)?;
        if legacy {
            self.migrate()?;
        }
        for dir in [&self.files, &self.tftp, &self.books] {
            std::fs::create_dir_all(dir)?;
        }
        create_dir_with_mode(&self.staging(), 0o700)?;
        Ok(())
    }

    fn migrate(&self) -> io::Result<()> {
        info!(root = %self.root.display(), "migrating the data root to files/ tftp/ books/ state/");
        let moves = [
            (LEGACY_READER.to_owned(), self.reader_state()),
            (format!("{LEGACY_PRIVATE}/tls"), self.tls()),
            (LEGACY_STAGING.to_owned(), self.staging()),
        ];
        for (from, to) in moves {
            let from = self.root.join(from);
            if from.exists() && !to.exists() {
                std::fs::rename(&from, &to)?;
                info!(from = %from.display(), to = %to.display(), "moved server state");
            }
        }
        let private = self.root.join(LEGACY_PRIVATE);
        if private.is_dir() {
            let _ = std::fs::remove_dir(&private);
        }
        std::fs::create_dir_all(&self.files)?;
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name.to_str() else { continue };
            if LAYOUT_NAMES.contains(&n)
                || [LEGACY_READER, LEGACY_PRIVATE, LEGACY_STAGING].contains(&n)
            {
                continue;
            }
            let to = self.files.join(&name);
            std::fs::rename(entry.path(), &to)?;
            info!(from = %entry.path().display(), to = %to.display(), "moved a shared file into files/");
        }
        Ok(())
    }
}

fn has_legacy_entries(root: &Path) -> io::Result<bool> {
    match std::fs::read_dir(root) {
        Ok(mut entries) => Ok(entries.any(|e| {
            e.is_ok_and(|e| {
                let name = e.file_name();
                !matches!(name.to_str(), Some("tftp" | "books"))
            })
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn create_dir_with_mode(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Refuses a served tree that contains the state directory or lies inside it (e.g.
/// `--books ROOT`), so no client path can ever name state.
///
/// # Errors
/// A description of the overlap, naming the flag.
pub fn check_apart(state: &Path, served: &[(&str, &Path)]) -> Result<(), String> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let state = canon(state);
    for (flag, tree) in served {
        let tree = canon(tree);
        if state.starts_with(&tree) || tree.starts_with(&state) {
            return Err(format!(
                "{flag} {} overlaps the server's state directory {}; clients could read accounts, \
                 keys or caches. Pick a directory outside it",
                tree.display(),
                state.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_root() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::of(dir.path());
        l.prepare().unwrap();
        for d in [&l.files, &l.tftp, &l.books, &l.state, &l.staging()] {
            assert!(d.is_dir(), "{}", d.display());
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&l.state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn legacy_root_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::write(r.join("notes.txt"), b"n").unwrap();
        std::fs::create_dir_all(r.join("docs")).unwrap();
        std::fs::write(r.join("docs/a"), b"a").unwrap();
        std::fs::create_dir_all(r.join("reader")).unwrap();
        std::fs::write(r.join("reader/catalog.db"), b"db").unwrap();
        std::fs::create_dir_all(r.join(".sockit/tls")).unwrap();
        std::fs::write(r.join(".sockit/tls/key.pem"), b"k").unwrap();
        std::fs::create_dir_all(r.join(".sockit-staging")).unwrap();
        std::fs::create_dir_all(r.join("books")).unwrap();
        std::fs::write(r.join("books/b.txt"), b"b").unwrap();
        let l = Layout::of(r);
        l.prepare().unwrap();
        assert_eq!(std::fs::read(l.files.join("notes.txt")).unwrap(), b"n");
        assert_eq!(std::fs::read(l.files.join("docs/a")).unwrap(), b"a");
        assert_eq!(
            std::fs::read(l.reader_state().join("catalog.db")).unwrap(),
            b"db"
        );
        assert_eq!(std::fs::read(l.tls().join("key.pem")).unwrap(), b"k");
        assert_eq!(std::fs::read(l.books.join("b.txt")).unwrap(), b"b");
        assert!(!r.join("reader").exists() && !r.join(".sockit").exists());
        assert!(!r.join(".sockit-staging").exists());
        // A second start changes nothing.
        l.prepare().unwrap();
        assert_eq!(std::fs::read(l.files.join("notes.txt")).unwrap(), b"n");
    }

    #[test]
    fn overlap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::of(dir.path());
        l.prepare().unwrap();
        assert!(check_apart(&l.state, &[("--books", &l.books)]).is_ok());
        let err = check_apart(&l.state, &[("--books", dir.path())]).unwrap_err();
        assert!(err.contains("--books"));
        assert!(check_apart(&l.state, &[("--tftp-root", &l.reader_state())]).is_err());
    }
}
