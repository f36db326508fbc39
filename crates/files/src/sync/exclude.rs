//! `--exclude PATTERN`: globs matched against paths inside the tree, as rsync reads them.
//!
//! A pattern without `/` matches a name at any depth (`*.o`, `target`); a pattern with
//! `/` matches the path from the tree's top (`build/*.log`, a leading `/` is dropped), with
//! `*` staying inside one component and `**` crossing them. An excluded directory is not
//! descended into, and excluded paths on the destination are never deleted.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Default for Excludes {
    fn default() -> Self {
        Self {
            names: GlobSet::empty(),
            paths: GlobSet::empty(),
        }
    }
}

impl Excludes {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// A pattern that is not a valid glob (the message names it).
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for raw in patterns {
            let p = raw.trim_end_matches('/');
            let bad = |e: globset::Error| format!("--exclude `{raw}`: {e}");
            if let Some(path) = p.strip_prefix('/').or(p.contains('/').then_some(p)) {
                let g = GlobBuilder::new(path)
                    .literal_separator(true)
                    .build()
                    .map_err(bad)?;
                paths.add(g);
            } else {
                names.add(Glob::new(p).map_err(bad)?);
            }
        }
        Ok(Self {
            names: names.build().map_err(|e| e.to_string())?,
            paths: paths.build().map_err(|e| e.to_string())?,
        })
    }

    /// Whether the tree path `rel` (`/`-separated, no leading `/`) is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.names.is_match(name) || self.paths.is_match(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_match_anywhere_paths_from_the_top() {
        let e = ex(&["*.o", "/build/*.log", "target/"]);
        assert!(e.is_excluded("a.o") && e.is_excluded("d/e/a.o"));
        assert!(e.is_excluded("build/x.log"));
        assert!(!e.is_excluded("build/sub/x.log") && !e.is_excluded("x/build/x.log"));
        assert!(e.is_excluded("target") && e.is_excluded("a/target"));
        assert!(!e.is_excluded("a.c"));
        assert!(!Excludes::default().is_excluded("a"));
        let e = ex(&["logs/**"]);
        assert!(e.is_excluded("logs/a/b"));
        assert!(Excludes::new(&["a[".to_string()]).is_err());
    }
}
