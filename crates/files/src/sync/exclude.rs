//! `--exclude PATTERN`: globs matched against paths inside the tree, as rsync reads them.
//!
//! - A pattern without `/` matches a name at any depth (`*.o`, `target`).
//! - A pattern with `/` inside it (or `**`) matches the path: anchored at the tree's top
//!   when it starts with `/` (`/build/*.log`), else at the end of the path, so
//!   `build/*.log` matches `build/a.log` and `x/build/a.log`.
//! - `*` and `?` stay inside one component, `**` crosses them, `[...]` is a class.
//! - A trailing `/` matches directories only (`cache/`).
//!
//! An excluded directory is not descended into, and excluded paths on the destination are
//! never deleted (a directory holding one is kept, emptied of the rest).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    /// Patterns matched against the last component.
    names: GlobSet,
    /// For each pattern of `names`, whether it matches directories only.
    names_dir_only: Vec<bool>,
    /// Patterns matched against the whole path.
    paths: GlobSet,
    /// For each pattern of `paths`, whether it matches directories only.
    paths_dir_only: Vec<bool>,
}

impl Default for Excludes {
    fn default() -> Self {
        Self {
            names: GlobSet::empty(),
            names_dir_only: Vec::new(),
            paths: GlobSet::empty(),
            paths_dir_only: Vec::new(),
        }
    }
}

impl Excludes {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// An empty pattern or one that is not a valid glob (the message names it).
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut names = GlobSetBuilder::new();
        let mut names_dir_only = Vec::new();
        let mut paths = GlobSetBuilder::new();
        let mut paths_dir_only = Vec::new();
        for raw in patterns {
            let dir_only = raw.ends_with('/');
            let p = raw.trim_end_matches('/');
            if p.is_empty() {
                return Err(format!(
                    "--exclude `{raw}`: an empty pattern matches nothing"
                ));
            }
            let bad = |e: globset::Error| format!("--exclude `{raw}`: {e}");
            let glob = |text: &str| {
                GlobBuilder::new(text)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(bad)
            };
            if let Some(anchored) = p.strip_prefix('/') {
                paths.add(glob(anchored)?);
                paths_dir_only.push(dir_only);
            } else if p.contains('/') || p.contains("**") {
                paths.add(glob(&format!("**/{p}"))?);
                paths_dir_only.push(dir_only);
            } else {
                names.add(glob(p)?);
                names_dir_only.push(dir_only);
            }
        }
        Ok(Self {
            names: names.build().map_err(|e| e.to_string())?,
            names_dir_only,
            paths: paths.build().map_err(|e| e.to_string())?,
            paths_dir_only,
        })
    }

    /// Whether the tree path `rel` (`/`-separated, no leading `/`) is excluded; `dir` says
    /// whether it is a directory (for patterns ending in `/`).
    pub fn is_excluded(&self, rel: &str, dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let hit = |set: &GlobSet, dir_only: &[bool], text: &str| {
            set.matches(text)
                .into_iter()
                .any(|i| dir || !dir_only.get(i).copied().unwrap_or(false))
        };
        hit(&self.names, &self.names_dir_only, name) || hit(&self.paths, &self.paths_dir_only, rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_match_at_any_depth() {
        let e = ex(&["*.o", "target"]);
        assert!(e.is_excluded("a.o", false) && e.is_excluded("d/e/a.o", false));
        assert!(e.is_excluded("target", true) && e.is_excluded("a/target", false));
        assert!(!e.is_excluded("a.c", false) && !e.is_excluded("a.o/x", false));
        assert!(!Excludes::default().is_excluded("a", false));
    }

    #[test]
    fn anchored_paths_match_from_the_top() {
        let e = ex(&["/build/*.log"]);
        assert!(e.is_excluded("build/x.log", false));
        assert!(!e.is_excluded("build/sub/x.log", false));
        assert!(!e.is_excluded("x/build/x.log", false));
    }

    #[test]
    fn unanchored_paths_match_at_the_end() {
        let e = ex(&["build/*.log"]);
        assert!(e.is_excluded("build/x.log", false));
        assert!(e.is_excluded("x/build/x.log", false));
        assert!(!e.is_excluded("build/sub/x.log", false));
        let e = ex(&["logs/**"]);
        assert!(e.is_excluded("logs/a/b", false) && e.is_excluded("d/logs/a", false));
    }

    #[test]
    fn trailing_slash_is_directories_only() {
        let e = ex(&["cache/"]);
        assert!(e.is_excluded("cache", true) && e.is_excluded("a/cache", true));
        assert!(!e.is_excluded("cache", false));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Excludes::new(&["a[".to_string()]).is_err());
        assert!(Excludes::new(&[String::new()]).is_err());
        assert!(Excludes::new(&["/".to_string()]).is_err());
    }
}
