//! Deciding what a sync does: both trees in, an ordered list of actions out. Pure (no
//! I/O), so every rule is unit-tested here.
//!
//! A file is the same when its size and modification time match (with `--checksum`: its
//! size and BLAKE3), as rsync decides; otherwise it is sent as a delta against the
//! destination's copy. A new file whose size and time (or hash) match an existing
//! destination file uses that file as its base, so a rename costs almost nothing. A
//! destination entry of another kind is removed first; with `--delete`, destination
//! entries missing from the source are removed after the transfers. Directories get their
//! mode and time last, deepest first, when they differ or anything inside them changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::meta::{Mtime, APPLIED_MODE_BITS};

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time.
        mtime: Mtime,
        /// Permission bits.
        mode: u32,
        /// Its BLAKE3, when known (`--checksum`).
        blake3: Option<[u8; 32]>,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime: Mtime,
    },
    /// A symlink (its target stays inside the tree).
    Symlink {
        /// The target, as stored.
        target: String,
        /// The link's own time.
        mtime: Mtime,
    },
}

impl Node {
    fn same_kind(&self, other: &Node) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// A tree: its top directory's attributes and every entry below it by `/`-separated path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// The top directory's mode and time (`None`: it does not exist yet).
    pub top: Option<(u32, Mtime)>,
    /// The entries, by path.
    pub entries: BTreeMap<String, Node>,
}

/// How to compare and what to remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Compare files by BLAKE3 instead of modification time.
    pub checksum: bool,
    /// Remove destination entries that the source does not have.
    pub delete: bool,
}

/// One step of a sync, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove a destination entry (a directory with everything in it).
    Remove {
        /// The path.
        path: String,
        /// Whether it is a directory.
        dir: bool,
        /// Whether it is removed because the source lacks it (`--delete`), rather than to
        /// make room for an entry of another kind.
        extra: bool,
    },
    /// Create a directory.
    Mkdir {
        /// The path.
        path: String,
    },
    /// Send a file as a delta.
    Send {
        /// The path.
        path: String,
        /// The destination file the delta copies from (`None`: everything is literal).
        base: Option<String>,
        /// Whether the destination had no file there.
        new: bool,
        /// The source file's size.
        size: u64,
    },
    /// Create or replace a symlink.
    Link {
        /// The path.
        path: String,
        /// Its target.
        target: String,
        /// Its time.
        mtime: Mtime,
    },
    /// Give an existing entry (file, or directory; `""` is the top) the source's mode and time.
    Attrs {
        /// The path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime: Mtime,
    },
}

impl Action {
    /// The path acted on.
    pub fn path(&self) -> &str {
        match self {
            Action::Remove { path, .. }
            | Action::Mkdir { path }
            | Action::Send { path, .. }
            | Action::Link { path, .. }
            | Action::Attrs { path, .. } => path,
        }
    }

    /// How `--dry-run` shows it (`None` for attribute updates, which are not changes of
    /// content).
    pub fn describe(&self) -> Option<String> {
        Some(match self {
            Action::Remove { path, dir, .. } => {
                format!("delete {path}{}", if *dir { "/" } else { "" })
            }
            Action::Mkdir { path } => format!("mkdir  {path}/"),
            Action::Send {
                path, new, base, ..
            } => match (new, base) {
                (true, Some(b)) => format!("new    {path} (from {b})"),
                (true, None) => format!("new    {path}"),
                (false, _) => format!("update {path}"),
            },
            Action::Link { path, target, .. } => format!("link   {path} -> {target}"),
            Action::Attrs { .. } => return None,
        })
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Whether `path` is `dir` or inside it.
fn under(path: &str, dir: &str) -> bool {
    path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

fn files_equal(a: &Node, b: &Node, checksum: bool) -> bool {
    match (a, b) {
        (
            Node::File {
                size: s1,
                mtime: t1,
                blake3: h1,
                ..
            },
            Node::File {
                size: s2,
                mtime: t2,
                blake3: h2,
                ..
            },
        ) => {
            s1 == s2
                && if checksum {
                    h1.is_some() && h1 == h2
                } else {
                    t1 == t2
                }
        }
        _ => false,
    }
}

/// The actions that make `dst` equal to `src`.
pub fn plan(src: &Tree, dst: &Tree, opts: PlanOptions) -> Vec<Action> {
    let mut removes = Vec::new();
    let mut mkdirs = Vec::new();
    let mut sends = Vec::new();
    let mut extras = Vec::new();
    let mut attrs = Vec::new();
    // Destination paths removed or replaced (not usable as bases, not compared).
    let mut gone: Vec<&str> = Vec::new();
    let is_gone = |gone: &[&str], p: &str| gone.iter().any(|g| under(p, g));
    // Destination files a new file can start from: by (size, time) or by hash.
    let mut by_meta: HashMap<(u64, Mtime), &str> = HashMap::new();
    let mut by_hash: HashMap<[u8; 32], &str> = HashMap::new();
    for (p, n) in &dst.entries {
        if let Node::File {
            size,
            mtime,
            blake3,
            ..
        } = n
        {
            by_meta.entry((*size, *mtime)).or_insert(p);
            if let Some(h) = blake3 {
                by_hash.entry(*h).or_insert(p);
            }
        }
    }
    for (path, s) in &src.entries {
        let d = match dst.entries.get(path) {
            Some(d) if !d.same_kind(s) => {
                removes.push(Action::Remove {
                    path: path.clone(),
                    dir: matches!(d, Node::Dir { .. }),
                    extra: false,
                });
                gone.push(path);
                None
            }
            other => other,
        };
        match (s, d) {
            (Node::Dir { .. }, None) => mkdirs.push(Action::Mkdir { path: path.clone() }),
            (Node::Dir { .. }, Some(_)) => {}
            (
                Node::File {
                    size, mode, mtime, ..
                },
                Some(d),
            ) => {
                if !files_equal(s, d, opts.checksum) {
                    sends.push(Action::Send {
                        path: path.clone(),
                        base: Some(path.clone()),
                        new: false,
                        size: *size,
                    });
                } else if let Node::File {
                    mode: dm,
                    mtime: dt,
                    ..
                } = d
                {
                    if dm & APPLIED_MODE_BITS != mode & APPLIED_MODE_BITS || dt != mtime {
                        attrs.push(Action::Attrs {
                            path: path.clone(),
                            mode: *mode,
                            mtime: *mtime,
                        });
                    }
                }
            }
            (
                Node::File {
                    size,
                    mtime,
                    blake3,
                    ..
                },
                None,
            ) => {
                let base = blake3
                    .and_then(|h| by_hash.get(&h).copied())
                    .or_else(|| by_meta.get(&(*size, *mtime)).copied())
                    .filter(|b| !is_gone(&gone, b) && !removes.iter().any(|r| under(b, r.path())))
                    .map(str::to_owned);
                sends.push(Action::Send {
                    path: path.clone(),
                    base,
                    new: true,
                    size: *size,
                });
            }
            (Node::Symlink { target, mtime }, d) => {
                let same = matches!(d, Some(Node::Symlink { target: t, .. }) if t == target);
                if !same {
                    sends.push(Action::Link {
                        path: path.clone(),
                        target: target.clone(),
                        mtime: *mtime,
                    });
                }
            }
        }
    }
    if opts.delete {
        // Top-most missing entries only: removing a directory removes what is inside.
        let mut removed: Vec<&str> = Vec::new();
        for (path, d) in &dst.entries {
            if src.entries.contains_key(path)
                || removed.iter().any(|r| under(path, r))
                || is_gone(&gone, path)
            {
                continue;
            }
            removed.push(path);
            extras.push(Action::Remove {
                path: path.clone(),
                dir: matches!(d, Node::Dir { .. }),
                extra: true,
            });
        }
        extras.reverse();
    }
    // Directories whose entries change get their time (and mode) again afterwards.
    let touched: BTreeSet<&str> = removes
        .iter()
        .chain(&mkdirs)
        .chain(&sends)
        .chain(&extras)
        .map(|a| parent_of(a.path()))
        .collect();
    let mut dir_attrs = Vec::new();
    let dirs = src
        .entries
        .iter()
        .filter_map(|(p, n)| match n {
            Node::Dir { mode, mtime } => Some((p.as_str(), *mode, *mtime)),
            _ => None,
        })
        .chain(src.top.map(|(m, t)| ("", m, t)));
    for (path, mode, mtime) in dirs {
        let before = if path.is_empty() {
            dst.top
        } else {
            match dst.entries.get(path) {
                Some(Node::Dir { mode, mtime }) if !is_gone(&gone, path) => Some((*mode, *mtime)),
                _ => None,
            }
        };
        let differs = before.is_none_or(|(m, t)| {
            // The top's mode belongs to whoever owns it on a server; only its time counts.
            (!path.is_empty() && m & APPLIED_MODE_BITS != mode & APPLIED_MODE_BITS) || t != mtime
        });
        if differs || touched.contains(path) {
            dir_attrs.push(Action::Attrs {
                path: path.to_owned(),
                mode,
                mtime,
            });
        }
    }
    // Deepest first; the top (`""`) sorts first, so it ends last.
    dir_attrs.sort_by(|a, b| b.path().cmp(a.path()));
    removes
        .into_iter()
        .chain(mkdirs)
        .chain(sends)
        .chain(extras)
        .chain(attrs)
        .chain(dir_attrs)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Mtime {
        Mtime { secs: s, nsec: 0 }
    }
    fn file(size: u64, secs: i64) -> Node {
        Node::File {
            size,
            mtime: t(secs),
            mode: 0o644,
            blake3: None,
        }
    }
    fn dir() -> Node {
        Node::Dir {
            mode: 0o755,
            mtime: t(1),
        }
    }
    fn tree(entries: &[(&str, Node)]) -> Tree {
        Tree {
            top: Some((0o755, t(1))),
            entries: entries
                .iter()
                .map(|(p, n)| (p.to_string(), n.clone()))
                .collect(),
        }
    }
    fn shown(actions: &[Action]) -> Vec<String> {
        actions.iter().filter_map(Action::describe).collect()
    }

    #[test]
    fn same_trees_need_nothing() {
        let a = tree(&[("d", dir()), ("d/f", file(3, 5))]);
        assert!(plan(&a, &a, PlanOptions::default()).is_empty());
    }

    #[test]
    fn new_changed_and_deleted() {
        let src = tree(&[
            ("a", file(3, 5)),
            ("b", file(4, 6)),
            ("d", dir()),
            ("d/n", file(1, 1)),
        ]);
        let dst = tree(&[
            ("a", file(3, 5)),
            ("b", file(4, 7)),
            ("old", dir()),
            ("old/x", file(1, 1)),
        ]);
        let keep = plan(&src, &dst, PlanOptions::default());
        assert_eq!(
            shown(&keep),
            ["mkdir  d/", "update b", "new    d/n (from old/x)"]
        );
        let del = plan(
            &src,
            &dst,
            PlanOptions {
                delete: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(
            shown(&del),
            [
                "mkdir  d/",
                "update b",
                "new    d/n (from old/x)",
                "delete old/"
            ]
        );
        // d gets its attributes after its file, the top after everything.
        let attrs: Vec<_> = del
            .iter()
            .filter(|a| matches!(a, Action::Attrs { .. }))
            .map(Action::path)
            .collect();
        assert_eq!(attrs, ["d", ""]);
    }

    #[test]
    fn kind_changes_remove_first() {
        let src = tree(&[("x", dir()), ("x/f", file(1, 1)), ("y", file(1, 1))]);
        let dst = tree(&[("x", file(1, 1)), ("y", dir()), ("y/z", file(1, 1))]);
        let p = plan(&src, &dst, PlanOptions::default());
        assert_eq!(
            shown(&p),
            [
                "delete x",
                "delete y/",
                "mkdir  x/",
                "new    x/f",
                "new    y"
            ]
        );
    }

    #[test]
    fn renames_reuse_the_old_file() {
        let src = tree(&[("new-name", file(1000, 9))]);
        let dst = tree(&[("old-name", file(1000, 9))]);
        let p = plan(
            &src,
            &dst,
            PlanOptions {
                delete: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(
            shown(&p),
            ["new    new-name (from old-name)", "delete old-name"]
        );
    }

    #[test]
    fn checksum_compares_content_and_fixes_times() {
        let h = |b: u8| Node::File {
            size: 3,
            mtime: t(b.into()),
            mode: 0o644,
            blake3: Some([b; 32]),
        };
        let src = tree(&[("a", h(1)), ("b", h(2))]);
        let mut dst = tree(&[("a", h(1)), ("b", h(3))]);
        if let Some(Node::File { blake3, .. }) = dst.entries.get_mut("a") {
            *blake3 = Some([1; 32]);
        }
        if let Some(Node::File { mtime, .. }) = dst.entries.get_mut("a") {
            *mtime = t(50);
        }
        let opts = PlanOptions {
            checksum: true,
            delete: false,
        };
        let p = plan(&src, &dst, opts);
        assert_eq!(shown(&p), ["update b"]);
        assert!(p
            .iter()
            .any(|a| matches!(a, Action::Attrs { path, .. } if path == "a")));
    }

    #[test]
    fn symlinks_compare_by_target_and_modes_by_bits() {
        let l = |s: &str| Node::Symlink {
            target: s.into(),
            mtime: t(1),
        };
        let src = tree(&[("l", l("a")), ("m", l("b"))]);
        let dst = tree(&[("l", l("a")), ("m", l("c"))]);
        assert_eq!(
            shown(&plan(&src, &dst, PlanOptions::default())),
            ["link   m -> b"]
        );
        let mut dst2 = tree(&[("f", file(1, 1))]);
        let src2 = dst2.clone();
        if let Some(Node::File { mode, .. }) = dst2.entries.get_mut("f") {
            *mode = 0o600;
        }
        let p = plan(&src2, &dst2, PlanOptions::default());
        assert_eq!(p.len(), 1);
        assert!(matches!(&p[0], Action::Attrs { mode: 0o644, .. }));
    }

    #[test]
    fn missing_top_is_created() {
        let src = tree(&[("f", file(1, 1))]);
        let dst = Tree::default();
        let p = plan(&src, &dst, PlanOptions::default());
        assert_eq!(shown(&p), ["new    f"]);
        assert!(matches!(p.last(), Some(Action::Attrs { path, .. }) if path.is_empty()));
    }
}
