//! `symlink {path, target, overwrite?, mtime?, mtime_nsec?}` → ok: creates a symlink, only
//! when its target stays inside the root; `setattr {path, mode?, mtime?, mtime_nsec?}` → ok:
//! sets the permission bits and modification time of an existing path.
//!
//! A symlink is created only in a real directory (no symlink among the directories above
//! it) and only with a target accepted by [`resolve_link_target`]: relative, leading `..`
//! only, never above the root. So the link points inside the root however it is resolved,
//! for this server (which never follows a link out of the root anyway) and for any other
//! program that reads the tree. The path the target names is also resolved in the
//! capability directory, which refuses one that passes through a symlink placed in the
//! root by other means and leading out of it; a dangling target is fine.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::{OpenOptions, OpenOptionsExt};
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::rel_path;
use crate::error::FilesError;
use crate::messages::{PathReply, SetattrRequest, SymlinkRequest};
use crate::meta::{self, resolve_link_target, LinkError, Mtime};
use crate::path::RelPath;
use crate::root::{blocking, FilesRoot};

/// The `symlink` command.
#[derive(Debug)]
pub struct Symlink {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

/// The `setattr` command.
#[derive(Debug)]
pub struct Setattr {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

/// A checked `mtime` + `mtime_nsec` pair (`None` when neither is given).
fn mtime(secs: Option<i64>, nsec: Option<u32>) -> Result<Option<Mtime>, FilesError> {
    match (secs, nsec) {
        (None, None) => Ok(None),
        (s, n) => Mtime::new(s.unwrap_or(0), n.unwrap_or(0))
            .map(Some)
            .map_err(FilesError::BadRequest),
    }
}

/// Refuses `dir` unless every component of it is a real directory (not a symlink).
fn check_real_dirs(root: &FilesRoot, link: &RelPath, dir: &RelPath) -> Result<(), FilesError> {
    let mut prefix = RelPath::root();
    for name in dir.as_string().split('/').filter(|n| !n.is_empty()) {
        prefix = prefix.join(name)?;
        match root.dir().symlink_metadata(prefix.to_path()) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(FilesError::Link {
                    path: link.clone(),
                    source: LinkError::InSymlinkedDir(prefix.as_string()),
                })
            }
            Ok(_) => {
                return Err(FilesError::BadRequest(format!(
                    "{prefix} is not a directory"
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FilesError::io(
                    link,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("directory {dir} does not exist; create it with mkdir -p"),
                    ),
                ))
            }
            Err(e) => return Err(FilesError::io(&prefix, e)),
        }
    }
    Ok(())
}

/// Sets the time of the symlink `path` itself.
fn set_link_time(root: &FilesRoot, path: &RelPath, t: Mtime) -> Result<(), FilesError> {
    let parent = path.parent().unwrap_or_else(RelPath::root);
    let name = path.file_name().unwrap_or(".");
    let dir = root
        .dir()
        .open_dir(parent.to_path())
        .map_err(|e| FilesError::io(&parent, e))?;
    meta::set_symlink_mtime(dir.as_raw_fd(), std::path::Path::new(name), t)
        .map_err(|e| FilesError::io(path, e))
}

fn fsync_dir(root: &FilesRoot, dir: &RelPath) {
    if let Ok(d) = root.dir().open_dir(dir.to_path()) {
        if let Ok(f) = d.open(".") {
            let _ = f.sync_all();
        }
    }
}

fn create_link(
    root: &FilesRoot,
    path: &RelPath,
    target: &str,
    overwrite: bool,
    t: Option<Mtime>,
) -> Result<(), FilesError> {
    let parent = path.parent().unwrap_or_else(RelPath::root);
    check_real_dirs(root, path, &parent)?;
    let resolved =
        resolve_link_target(&parent.as_string(), target).map_err(|source| FilesError::Link {
            path: path.clone(),
            source,
        })?;
    // What the target names may itself go through a symlink someone else left in the root;
    // resolving it in the capability directory refuses any that leaves the root.
    match root.dir().metadata(resolved.to_path()) {
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Err(FilesError::Link {
                path: path.clone(),
                source: LinkError::ThroughEscapingLink(target.to_owned()),
            })
        }
        _ => {} // found, or dangling (allowed, as rsync keeps dangling links)
    }
    if root.is_uploading(path) {
        return Err(FilesError::Busy(path.clone()));
    }
    let existing = match root.dir().symlink_metadata(path.to_path()) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(FilesError::io(path, e)),
    };
    match existing {
        Some(m) if m.is_dir() => {
            return Err(FilesError::BadRequest(format!(
                "{path} is a directory; a symlink cannot replace it"
            )))
        }
        Some(_) if !overwrite => return Err(FilesError::Exists(path.clone())),
        Some(_) => {
            // Made beside the uploads in progress, then renamed over the old name at once.
            let tmp = FilesRoot::staging_name(path).replace(".part", ".link");
            let _ = root.staging().remove_file(&tmp);
            root.staging()
                .symlink_contents(target, &tmp)
                .map_err(|e| FilesError::io(path, e))?;
            if let Err(e) = root.staging().rename(&tmp, root.dir(), path.to_path()) {
                let _ = root.staging().remove_file(&tmp);
                return Err(FilesError::io(path, e));
            }
        }
        None => match root.dir().symlink_contents(target, path.to_path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(FilesError::Exists(path.clone()))
            }
            Err(e) => return Err(FilesError::io(path, e)),
        },
    }
    if let Some(t) = t {
        set_link_time(root, path, t)?;
    }
    fsync_dir(root, &parent);
    Ok(())
}

fn set_attrs(
    root: &FilesRoot,
    path: &RelPath,
    mode: Option<u32>,
    t: Option<Mtime>,
) -> Result<(), FilesError> {
    let m = root
        .dir()
        .symlink_metadata(path.to_path())
        .map_err(|e| FilesError::io(path, e))?;
    if m.file_type().is_symlink() {
        // A symlink has no mode of its own on Linux; only its time is set.
        if let Some(t) = t {
            set_link_time(root, path, t)?;
        }
        return Ok(());
    }
    if !m.is_dir() && !m.is_file() {
        return Err(FilesError::BadRequest(format!(
            "{path} is not a file or directory"
        )));
    }
    // The root's mode belongs to the server's operator.
    let mode = if path.is_root() { None } else { mode };
    let mut opts = OpenOptions::new();
    opts.read(true).custom_flags(libc::O_NOFOLLOW);
    let file = root
        .dir()
        .open_with(path.to_path(), &opts)
        .map_err(|e| FilesError::io(path, e))?
        .into_std();
    meta::apply_to_file(&file, mode, t).map_err(|e| FilesError::io(path, e))
}

#[async_trait]
impl Command for Symlink {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let req: SymlinkRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        if path.is_root() {
            return Err(FilesError::BadRequest("symlink needs a name, not the root".into()).into());
        }
        let t = mtime(req.mtime, req.mtime_nsec)?;
        let (p, target, overwrite) = (path.clone(), req.target, req.overwrite);
        blocking(&self.root, move |root| {
            create_link(root, &p, &target, overwrite, t)
        })
        .await?;
        conn.send(&Header::reply(&PathReply {
            path: path.as_string(),
        })?)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Command for Setattr {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let req: SetattrRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let mode = req
            .mode
            .map(meta::check_mode)
            .transpose()
            .map_err(FilesError::BadRequest)?;
        let t = mtime(req.mtime, req.mtime_nsec)?;
        let p = path.clone();
        blocking(&self.root, move |root| set_attrs(root, &p, mode, t)).await?;
        conn.send(&Header::reply(&PathReply {
            path: path.as_string(),
        })?)
        .await?;
        Ok(())
    }
}
