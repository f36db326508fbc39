//! Deciding what a sync does: both trees in, an ordered list of actions out. Pure (no
//! I/O), so every rule is unit-tested here.
//!
//! A file is the same when its size and modification time match (with `--checksum`: its
//! size and BLAKE3), as rsync decides; otherwise it is sent as a delta against the
//! destination's copy. A new file whose size and time (or hash) match an existing
//! destination file uses that file as its base, so a rename costs almost nothing. A
//! destination entry of another kind is removed first; with `--delete`, destination
//! entries missing from the source are removed after the transfers (never excluded ones,
//! nor the directories that hold them). Files, directories and symlinks whose content is
//! the same but whose mode or time differ get them set; directories last, deepest first,
//! when they differ or anything inside them changed (a change inside a directory changes
//! its time).

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
    /// A destination entry a sync never creates (a device, FIFO or socket, a symlink
    /// leading outside the tree): listed only so that it can be replaced or deleted.
    Other,
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
    /// Paths left out by `--exclude` (the top-most ones: nothing below an excluded
    /// directory is listed). On the destination they are never deleted, and neither are
    /// the directories above them.
    pub excluded: BTreeSet<String>,
}

/// How to compare and what to remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Compare files by BLAKE3 instead of modification time.
    pub checksum: bool,
    /// Remove destination entries that the source does not have.
    pub delete: bool,
    /// The destination's top keeps its own mode (a server's data root belongs to its
    /// operator), so a different mode there is no reason to act.
    pub keep_top_mode: bool,
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
    /// Give an existing file or directory (`""` is the top) the source's mode and time.
    Attrs {
        /// The path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime: Mtime,
    },
    /// Give an existing symlink with the right target the source's time.
    LinkTime {
        /// The path.
        path: String,
        /// The link's own time.
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
            | Action::Attrs { path, .. }
            | Action::LinkTime { path, .. } => path,
        }
    }

    /// How `--dry-run` and the summary show it (`None` for attribute updates, which are
    /// not changes of content).
    pub fn describe(&self) -> Option<String> {
        Some(match self {
            Action::Remove { path, dir, extra } => {
                let why = if *extra { "" } else { " (replaced)" };
                format!("delete {path}{}{why}", if *dir { "/" } else { "" })
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
            Action::Attrs { .. } | Action::LinkTime { .. } => return None,
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

/// `path` and every directory above it (`a/b/c`, `a/b`, `a`).
fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(d, _)| d))
}

/// Whether `path` or a directory above it is in `set`.
fn in_or_under(set: &BTreeSet<&str>, path: &str) -> bool {
    self_and_ancestors(path).any(|p| set.contains(p))
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
    // Destination entries of another kind than the source's go first; they (and what is
    // inside them) are neither compared nor used as bases afterwards.
    let mut removes = Vec::new();
    let mut gone: BTreeSet<&str> = BTreeSet::new();
    for (path, s) in &src.entries {
        if let Some(d) = dst.entries.get(path) {
            if !d.same_kind(s) {
                removes.push(Action::Remove {
                    path: path.clone(),
                    dir: matches!(d, Node::Dir { .. }),
                    extra: false,
                });
                gone.insert(path);
            }
        }
    }
    let live = |path: &str| dst.entries.get(path).filter(|_| !in_or_under(&gone, path));
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
            if in_or_under(&gone, p) {
                continue;
            }
            by_meta.entry((*size, *mtime)).or_insert(p);
            if let Some(h) = blake3 {
                by_hash.entry(*h).or_insert(p);
            }
        }
    }
    let mut mkdirs = Vec::new();
    // New files built from another destination file run before the updates, so their
    // base is still the file whose size and time (or hash) matched.
    let mut from_other = Vec::new();
    let mut sends = Vec::new();
    let mut links = Vec::new();
    let mut attrs = Vec::new();
    for (path, s) in &src.entries {
        match (s, live(path)) {
            (Node::Dir { .. }, None) => mkdirs.push(Action::Mkdir { path: path.clone() }),
            (Node::Dir { .. }, Some(_)) | (Node::Other, _) => {}
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
                    .map(str::to_owned);
                let send = Action::Send {
                    path: path.clone(),
                    new: true,
                    size: *size,
                    base,
                };
                if matches!(send, Action::Send { base: Some(_), .. }) {
                    from_other.push(send);
                } else {
                    sends.push(send);
                }
            }
            (Node::Symlink { target, mtime }, d) => match d {
                Some(Node::Symlink {
                    target: t,
                    mtime: dt,
                }) if t == target => {
                    if dt != mtime {
                        attrs.push(Action::LinkTime {
                            path: path.clone(),
                            mtime: *mtime,
                        });
                    }
                }
                _ => links.push(Action::Link {
                    path: path.clone(),
                    target: target.clone(),
                    mtime: *mtime,
                }),
            },
        }
    }
    let mut extras = Vec::new();
    if opts.delete {
        // Top-most missing entries only: removing a directory removes what is inside. A
        // directory that holds an excluded path stays; its other entries go one by one.
        let mut removed: BTreeSet<&str> = BTreeSet::new();
        for (path, d) in &dst.entries {
            if src.entries.contains_key(path)
                || in_or_under(&gone, path)
                || in_or_under(&removed, path)
            {
                continue;
            }
            let holds_excluded = matches!(d, Node::Dir { .. })
                && dst.excluded.iter().any(|e| e != path && under(e, path));
            if holds_excluded {
                continue;
            }
            removed.insert(path);
            extras.push(Action::Remove {
                path: path.clone(),
                dir: matches!(d, Node::Dir { .. }),
                extra: true,
            });
        }
        // Deepest first, so a kept directory is emptied before anything above it.
        extras.reverse();
    }
    // Directories whose entries change get their time (and mode) again afterwards.
    let touched: BTreeSet<&str> = removes
        .iter()
        .chain(&mkdirs)
        .chain(&from_other)
        .chain(&sends)
        .chain(&links)
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
            match live(path) {
                Some(Node::Dir { mode, mtime }) => Some((*mode, *mtime)),
                _ => None,
            }
        };
        let mode_counts = !(path.is_empty() && opts.keep_top_mode);
        let differs = before.is_none_or(|(m, t)| {
            (mode_counts && m & APPLIED_MODE_BITS != mode & APPLIED_MODE_BITS) || t != mtime
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
        .chain(from_other)
        .chain(sends)
        .chain(links)
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
    fn link(target: &str, secs: i64) -> Node {
        Node::Symlink {
            target: target.into(),
            mtime: t(secs),
        }
    }
    fn tree(entries: &[(&str, Node)]) -> Tree {
        Tree {
            top: Some((0o755, t(1))),
            entries: entries
                .iter()
                .map(|(p, n)| (p.to_string(), n.clone()))
                .collect(),
            excluded: BTreeSet::new(),
        }
    }
    fn shown(actions: &[Action]) -> Vec<String> {
        actions.iter().filter_map(Action::describe).collect()
    }
    fn delete() -> PlanOptions {
        PlanOptions {
            delete: true,
            ..PlanOptions::default()
        }
    }

    #[test]
    fn same_trees_need_nothing() {
        let a = tree(&[("d", dir()), ("d/f", file(3, 5)), ("l", link("d/f", 2))]);
        assert!(plan(&a, &a, PlanOptions::default()).is_empty());
        assert!(plan(&a, &a, delete()).is_empty());
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
            ["mkdir  d/", "new    d/n (from old/x)", "update b"]
        );
        let del = plan(&src, &dst, delete());
        assert_eq!(
            shown(&del),
            [
                "mkdir  d/",
                "new    d/n (from old/x)",
                "update b",
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
        let p = plan(&src, &dst, delete());
        assert_eq!(
            shown(&p),
            [
                "delete x (replaced)",
                "delete y/ (replaced)",
                "mkdir  x/",
                "new    x/f",
                "new    y"
            ]
        );
    }

    /// Regression: a base chosen before a later entry's kind change removed it made the
    /// delta copy from a directory.
    #[test]
    fn a_base_removed_by_a_later_kind_change_is_not_used() {
        let src = tree(&[("a", file(5, 9)), ("z", dir())]);
        let dst = tree(&[("z", file(5, 9))]);
        let p = plan(&src, &dst, PlanOptions::default());
        assert_eq!(shown(&p), ["delete z (replaced)", "mkdir  z/", "new    a"]);
    }

    #[test]
    fn renames_reuse_the_old_file() {
        let src = tree(&[("new-name", file(1000, 9))]);
        let dst = tree(&[("old-name", file(1000, 9))]);
        let p = plan(&src, &dst, delete());
        assert_eq!(
            shown(&p),
            ["new    new-name (from old-name)", "delete old-name"]
        );
    }

    #[test]
    fn a_new_file_is_built_before_its_base_is_updated() {
        // `b` is new with the old size and time of `a`, and `a` itself changed.
        let src = tree(&[("a", file(10, 2)), ("b", file(10, 1))]);
        let dst = tree(&[("a", file(10, 1))]);
        let p = plan(&src, &dst, PlanOptions::default());
        assert_eq!(shown(&p), ["new    b (from a)", "update a"]);
    }

    #[test]
    fn checksum_compares_content_and_fixes_times() {
        let h = |b: u8, secs: i64| Node::File {
            size: 3,
            mtime: t(secs),
            mode: 0o644,
            blake3: Some([b; 32]),
        };
        let src = tree(&[("a", h(1, 1)), ("b", h(2, 2))]);
        let dst = tree(&[("a", h(1, 50)), ("b", h(3, 2))]);
        let opts = PlanOptions {
            checksum: true,
            ..PlanOptions::default()
        };
        let p = plan(&src, &dst, opts);
        assert_eq!(shown(&p), ["update b"]);
        assert!(p
            .iter()
            .any(|a| matches!(a, Action::Attrs { path, .. } if path == "a")));
        // Without --checksum, same size and time is the same file.
        assert!(shown(&plan(&src, &dst, PlanOptions::default()))
            .iter()
            .all(|s| s != "update b"));
    }

    #[test]
    fn symlinks_compare_by_target_then_time() {
        let src = tree(&[
            ("l", link("a", 1)),
            ("m", link("b", 1)),
            ("n", link("c", 5)),
        ]);
        let dst = tree(&[
            ("l", link("a", 1)),
            ("m", link("c", 1)),
            ("n", link("c", 6)),
        ]);
        let p = plan(&src, &dst, PlanOptions::default());
        assert_eq!(shown(&p), ["link   m -> b"]);
        assert!(p.iter().any(
            |a| matches!(a, Action::LinkTime { path, mtime } if path == "n" && *mtime == t(5))
        ));
    }

    #[test]
    fn modes_compare_by_permission_bits() {
        let mut dst = tree(&[("f", file(1, 1))]);
        let src = dst.clone();
        if let Some(Node::File { mode, .. }) = dst.entries.get_mut("f") {
            *mode = 0o600;
        }
        let p = plan(&src, &dst, PlanOptions::default());
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

    #[test]
    fn top_mode_counts_unless_kept() {
        let src = tree(&[]);
        let mut dst = tree(&[]);
        dst.top = Some((0o700, t(1)));
        assert_eq!(plan(&src, &dst, PlanOptions::default()).len(), 1);
        let keep = PlanOptions {
            keep_top_mode: true,
            ..PlanOptions::default()
        };
        assert!(plan(&src, &dst, keep).is_empty());
    }

    #[test]
    fn excluded_destination_paths_survive_delete() {
        let src = tree(&[("a", file(1, 1))]);
        let mut dst = tree(&[
            ("a", file(1, 1)),
            ("gone", dir()),
            ("gone/x", file(1, 1)),
            ("keep", dir()),
            ("keep/y", file(1, 1)),
        ]);
        dst.excluded.insert("keep/y.o".into());
        dst.excluded.insert("top.o".into());
        let p = plan(&src, &dst, delete());
        assert_eq!(shown(&p), ["delete keep/y", "delete gone/"]);
    }

    #[test]
    fn other_entries_are_replaced_or_deleted() {
        let src = tree(&[("fifo", file(1, 1))]);
        let dst = tree(&[("fifo", Node::Other), ("sock", Node::Other)]);
        assert_eq!(
            shown(&plan(&src, &dst, delete())),
            ["delete fifo (replaced)", "new    fifo", "delete sock"]
        );
    }
}
