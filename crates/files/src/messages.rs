//! The frames of the file commands: one request and one reply type per command, used by
//! the server ([`crate::cmd`]) and the client ([`crate::client`]). These types are the
//! schema of the file service's part of the framed protocol (`docs/files.md` shows them
//! on the wire); a field renamed here is renamed on both sides at once.
//!
//! Every request accepts keys it does not know (course clients send their own), and an
//! optional field may be absent or `null`. `stat`, `get` and `put` also accept the course
//! clients' `filename` for `path`. Replies that describe a file without sending it nest the
//! description (`stat`, `stored`): a top-level `size` would announce a body.

use serde::{Deserialize, Serialize};
use sockit_wire::header::{null_as_default, Message};

mod batch;
mod compress;
pub use batch::*;
pub use compress::*;

/// `{"cmd":"ls","path":"dir","offset":0}`: one page of a directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsRequest {
    /// The directory (absent, `""` or `.`: the root).
    #[serde(default)]
    pub path: String,
    /// The first entry of the page (the `next` of the previous page).
    #[serde(default, deserialize_with = "null_as_default")]
    pub offset: u64,
}

impl Message for LsRequest {
    const CMD: Option<&'static str> = Some("ls");
}

/// One directory entry. A symlink is listed as itself (`kind: "symlink"`, its `target`
/// as text), never as what it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name (one path component).
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    /// Size in bytes (0 for directories; a symlink's is the length of its target).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The nanoseconds of the modification time (`mtime` + `mtime_nsec` / 10⁹ seconds).
    /// Absent from older servers: 0.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime_nsec: u32,
    /// Permission bits (`st_mode & 0o7777`, e.g. 493 = 0o755). Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// A symlink's target, as stored (never resolved by the server; UTF-8 targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `{"status":"ok","path","total","entries":[...],"next"?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsReply {
    /// The directory, canonical spelling.
    #[serde(default)]
    pub path: String,
    /// Entries in the whole directory.
    #[serde(default)]
    pub total: u64,
    /// This page's entries, sorted by name.
    #[serde(default)]
    pub entries: Vec<Entry>,
    /// Present when more entries follow: the `offset` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

impl Message for LsReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"stat","path":"a.txt","hash":false}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRequest {
    /// The path (`filename` is accepted for it).
    #[serde(alias = "filename")]
    pub path: String,
    /// Compute the BLAKE3 when the server does not know it yet.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hash: bool,
}

impl Message for StatRequest {
    const CMD: Option<&'static str> = Some("stat");
}

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatInfo {
    /// The path, canonical spelling.
    pub path: String,
    /// `file`, `dir`, `symlink`, `other`, or `partial` (only a staged upload exists). A
    /// symlink is described itself, not what it points to.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The nanoseconds of the modification time (absent from older servers: 0).
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime_nsec: u32,
    /// Permission bits (`st_mode & 0o7777`). Absent for `partial` and from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// A symlink's target, as stored (never resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whole-file BLAKE3, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Bytes staged by an interrupted or running upload of this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<u64>,
    /// Whether an upload of this path is running now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uploading: bool,
}

/// `{"status":"ok","stat":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatReply {
    /// The path's description.
    pub stat: StatInfo,
}

impl Message for StatReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"get","path":"a.bin","offset":0}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRequest {
    /// The file (`filename` is accepted for it).
    #[serde(alias = "filename")]
    pub path: String,
    /// Where the body starts (resuming a download).
    #[serde(default, deserialize_with = "null_as_default")]
    pub offset: u64,
    /// Codecs the client accepts for the reply's body (`["zstd"]`); absent: raw.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub compress: Vec<String>,
}

impl Message for GetRequest {
    const CMD: Option<&'static str> = Some("get");
}

/// `{"status":"ok","filename","path","size","filesize","total","offset","blake3","mtime"}`,
/// followed by `size` bytes of body (the file from `offset`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReply {
    /// The file's last path component.
    #[serde(default)]
    pub filename: String,
    /// The file, canonical spelling.
    #[serde(default)]
    pub path: String,
    /// The body length, `total - offset`.
    #[serde(default)]
    pub size: u64,
    /// The same as `size` (course clients read this one).
    #[serde(default)]
    pub filesize: u64,
    /// The whole file's size.
    pub total: u64,
    /// Where the body starts.
    #[serde(default)]
    pub offset: u64,
    /// The whole file's BLAKE3, hex (a resumed download is verified end to end).
    pub blake3: String,
    /// Modification time, seconds since the epoch.
    #[serde(default)]
    pub mtime: i64,
    /// The nanoseconds of the modification time (absent from older servers: 0).
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime_nsec: u32,
    /// Permission bits (`st_mode & 0o7777`); the client applies the `rwx` bits to the
    /// downloaded file. Absent from older servers: the file keeps the client's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The body follows as [`Block`] frames in this codec (only when the request asked
    /// for it with `compress`); `size` is then 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for GetReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"put","path","size","offset"?,"overwrite"?,"blake3"?,"trailer"?}`, followed by
/// the body (`size` bytes; course clients send `filename` and `filesize`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The file to write (`filename` is accepted for it).
    #[serde(alias = "filename")]
    pub path: String,
    /// The body length (the frame's first of `size`, `filesize`, `data_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The body length as course clients name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesize: Option<u64>,
    /// Where the body goes in the file (resuming: the staged size).
    #[serde(default, deserialize_with = "null_as_default")]
    pub offset: u64,
    /// Replace an existing file.
    #[serde(default, deserialize_with = "null_as_default")]
    pub overwrite: bool,
    /// The whole file's BLAKE3, hex, when the client knows it up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// A [`Commit`] frame with the hash follows the body.
    #[serde(default, deserialize_with = "null_as_default")]
    pub trailer: bool,
    /// Permission bits for the stored file (its `rwx` bits are applied at commit; absent:
    /// the server's defaults, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time for the stored file, seconds since the epoch (absent: the time
    /// of the upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// The nanoseconds of `mtime` (absent: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_nsec: Option<u32>,
    /// The body is sent as [`Block`] frames in this codec (`"zstd"`, only to a server
    /// whose `features` accept it); the frame itself then announces no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for PutRequest {
    const CMD: Option<&'static str> = Some("put");
}

/// The one field of `put` read even from a malformed request: whether a [`Commit`]
/// frame follows the body (so a refusal can consume it and keep the stream in step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PutTrailer {
    /// As [`PutRequest::trailer`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub trailer: bool,
}

/// `{"cmd":"commit","blake3":HEX}`: right after the body of a `trailer: true` upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The whole file's BLAKE3, hex.
    pub blake3: String,
}

impl Message for Commit {
    const CMD: Option<&'static str> = Some("commit");
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The file, canonical spelling.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Its BLAKE3, hex.
    pub blake3: String,
}

/// `{"status":"ok","stored":{"path","size","blake3"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReply {
    /// What was stored.
    pub stored: Stored,
}

impl Message for PutReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"rm","path":"dir","recursive":true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmRequest {
    /// What to remove.
    pub path: String,
    /// Remove a directory with everything in it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub recursive: bool,
}

impl Message for RmRequest {
    const CMD: Option<&'static str> = Some("rm");
}

/// `{"cmd":"mkdir","path":"a/b","parents":true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirRequest {
    /// The directory to create.
    pub path: String,
    /// Create missing parents; an existing directory is fine (`mkdir -p`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub parents: bool,
}

impl Message for MkdirRequest {
    const CMD: Option<&'static str> = Some("mkdir");
}

/// `{"cmd":"symlink","path":"a/l","target":"../b","overwrite"?,"mtime"?,"mtime_nsec"?}`:
/// creates the symlink `path` pointing to `target` (text, relative to the link's
/// directory). Refused (`denied`) unless the target stays inside the root; see
/// [`crate::meta::resolve_link_target`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkRequest {
    /// The link to create.
    pub path: String,
    /// What it points to.
    pub target: String,
    /// Replace an existing file or symlink of that name (never a directory).
    #[serde(default, deserialize_with = "null_as_default")]
    pub overwrite: bool,
    /// The link's own modification time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// The nanoseconds of `mtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_nsec: Option<u32>,
}

impl Message for SymlinkRequest {
    const CMD: Option<&'static str> = Some("symlink");
}

/// `{"cmd":"setattr","path":"d","mode"?,"mtime"?,"mtime_nsec"?}`: sets the permission
/// bits and/or modification time of an existing file or directory (of a symlink: only its
/// time; its mode does not exist on Linux). Tree uploads send it for each directory after
/// its contents, so the directory's time is not changed again by what is put inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetattrRequest {
    /// The path.
    pub path: String,
    /// Permission bits (the `rwx` bits are applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// The nanoseconds of `mtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_nsec: Option<u32>,
}

impl Message for SetattrRequest {
    const CMD: Option<&'static str> = Some("setattr");
}

/// `{"status":"ok","path":...}`: the reply of `rm`, `mkdir`, `symlink` and `setattr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathReply {
    /// The path acted on, canonical spelling.
    #[serde(default)]
    pub path: String,
}

impl Message for PathReply {
    const CMD: Option<&'static str> = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit_wire::Header;

    use sockit_testkit::messages::{header, roundtrip, text};

    fn stat_info() -> StatInfo {
        StatInfo {
            path: "a.txt".into(),
            kind: "file".into(),
            size: 12,
            mtime: 1_700_000_000,
            mtime_nsec: 250,
            mode: Some(0o644),
            target: None,
            blake3: Some("ab".repeat(32)),
            partial: Some(4096),
            uploading: true,
        }
    }

    #[test]
    fn every_message_roundtrips() {
        roundtrip(LsRequest {
            path: "dir".into(),
            offset: 2,
        });
        roundtrip(LsReply {
            path: "dir".into(),
            total: 3,
            entries: vec![Entry {
                name: "a.txt".into(),
                kind: "file".into(),
                size: 12,
                mtime: 1_700_000_000,
                mtime_nsec: 5,
                mode: Some(0o755),
                target: Some("../b".into()),
            }],
            next: Some(2),
        });
        roundtrip(StatRequest {
            path: "a.txt".into(),
            hash: true,
        });
        roundtrip(StatReply { stat: stat_info() });
        roundtrip(GetRequest {
            path: "a.bin".into(),
            offset: 5,
            compress: vec![ZSTD.into()],
        });
        roundtrip(GetReply {
            filename: "a.bin".into(),
            path: "d/a.bin".into(),
            size: 7,
            filesize: 7,
            total: 12,
            offset: 5,
            blake3: "cd".repeat(32),
            mtime: 1_700_000_000,
            mtime_nsec: 7,
            mode: Some(0o600),
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        roundtrip(PutRequest {
            path: "a.bin".into(),
            size: Some(7),
            filesize: None,
            offset: 5,
            overwrite: true,
            blake3: Some("ef".repeat(32)),
            trailer: true,
            mode: Some(0o755),
            mtime: Some(-5),
            mtime_nsec: Some(1),
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        roundtrip(SymlinkRequest {
            path: "a/l".into(),
            target: "../b".into(),
            overwrite: true,
            mtime: Some(1),
            mtime_nsec: Some(2),
        });
        roundtrip(SetattrRequest {
            path: "d".into(),
            mode: Some(0o700),
            mtime: Some(1),
            mtime_nsec: None,
        });
        roundtrip(Commit {
            blake3: "ef".repeat(32),
        });
        roundtrip(PutReply {
            stored: Stored {
                path: "a.bin".into(),
                size: 12,
                blake3: "ef".repeat(32),
            },
        });
        roundtrip(RmRequest {
            path: "dir".into(),
            recursive: true,
        });
        roundtrip(MkdirRequest {
            path: "a/b".into(),
            parents: true,
        });
        roundtrip(PathReply { path: "a/b".into() });
    }

    /// What the client sends is what it sent before the types existed, byte for byte.
    #[test]
    fn client_requests_on_the_wire() {
        let ls = LsRequest {
            path: "dir".into(),
            offset: 0,
        };
        assert_eq!(
            text(&Header::encode(&ls).unwrap()),
            r#"{"cmd":"ls","offset":0,"path":"dir"}"#
        );
        let put = PutRequest {
            path: "a.bin".into(),
            size: Some(3),
            offset: 0,
            overwrite: false,
            trailer: true,
            ..PutRequest::default()
        };
        assert_eq!(
            text(&Header::encode(&put).unwrap()),
            r#"{"cmd":"put","offset":0,"overwrite":false,"path":"a.bin","size":3,"trailer":true}"#
        );
        let reply = LsReply {
            path: String::new(),
            total: 0,
            entries: vec![],
            next: None,
        };
        assert_eq!(
            text(&Header::reply(&reply).unwrap()),
            r#"{"entries":[],"path":"","status":"ok","total":0}"#
        );
        let stat = StatReply {
            stat: StatInfo {
                blake3: None,
                partial: None,
                uploading: false,
                mode: None,
                mtime_nsec: 0,
                ..stat_info()
            },
        };
        assert_eq!(
            text(&Header::reply(&stat).unwrap()),
            r#"{"stat":{"kind":"file","mtime":1700000000,"mtime_nsec":0,"path":"a.txt","size":12},"status":"ok"}"#
        );
    }

    /// The examples of docs/files.md (with concrete values) read as their types.
    #[test]
    fn files_doc_examples_parse() {
        let h = header(r#"{"cmd":"ls","path":"dir","offset":0}"#);
        assert_eq!(h.decode::<LsRequest>().unwrap().path, "dir");
        let r: LsReply = header(
            r#"{"status":"ok","path":"dir","total":3,
                "entries":[{"name":"a.txt","kind":"file","size":12,"mtime":1700000000}],
                "next":2}"#,
        )
        .decode()
        .unwrap();
        assert_eq!((r.total, r.next, r.entries.len()), (3, Some(2), 1));
        let r: StatRequest = header(r#"{"cmd":"stat","path":"a.txt","hash":false}"#)
            .decode()
            .unwrap();
        assert!(!r.hash);
        let r: StatReply = header(&format!(
            r#"{{"status":"ok","stat":{{"path":"a.txt","kind":"file","size":12,"mtime":1700000000,
                "mtime_nsec":250,"mode":420,"blake3":"{}","partial":4096,"uploading":true}}}}"#,
            "ab".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!(r.stat, stat_info());
        let r: GetRequest = header(r#"{"cmd":"get","path":"a.bin","offset":0}"#)
            .decode()
            .unwrap();
        assert_eq!(r.path, "a.bin");
        let r: GetReply = header(&format!(
            r#"{{"status":"ok","filename":"a.bin","path":"a.bin","size":7,"filesize":7,
                "total":12,"offset":5,"blake3":"{}","mtime":1700000000}}"#,
            "cd".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!((r.total, r.offset, r.size), (12, 5, 7));
        let r: PutRequest = header(&format!(
            r#"{{"cmd":"put","path":"a.bin","size":7,"offset":5,"overwrite":false,
                "blake3":"{}","trailer":true}}"#,
            "ef".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!((r.size, r.offset, r.trailer), (Some(7), 5, true));
        let r: Commit = header(&format!(
            r#"{{"cmd":"commit","blake3":"{}"}}"#,
            "ef".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!(r.blake3.len(), 64);
        let r: PutReply = header(&format!(
            r#"{{"status":"ok","stored":{{"path":"a.bin","size":12,"blake3":"{}"}}}}"#,
            "ef".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!(r.stored.size, 12);
        let r: RmRequest = header(r#"{"cmd":"rm","path":"dir","recursive":true}"#)
            .decode()
            .unwrap();
        assert!(r.recursive);
        let r: MkdirRequest = header(r#"{"cmd":"mkdir","path":"a/b","parents":true}"#)
            .decode()
            .unwrap();
        assert!(r.parents);
        let r: PathReply = header(r#"{"status":"ok","path":"a/b"}"#).decode().unwrap();
        assert_eq!(r.path, "a/b");
    }

    /// Course clients: `filename` for `path`, `filesize` for `size`, no other keys.
    #[test]
    fn course_client_put_parses() {
        let r: PutRequest = header(r#"{"cmd":"put","filename":"a.txt","filesize":5}"#)
            .decode()
            .unwrap();
        assert_eq!(r.path, "a.txt");
        assert_eq!(r.filesize, Some(5));
        assert!(!r.overwrite && !r.trailer);
        let r: GetRequest = header(r#"{"cmd":"get","filename":"a.txt"}"#)
            .decode()
            .unwrap();
        assert_eq!((r.path.as_str(), r.offset), ("a.txt", 0));
        let r: StatRequest = header(r#"{"cmd":"stat","filename":"a.txt"}"#)
            .decode()
            .unwrap();
        assert_eq!(r.path, "a.txt");
        let e = header(r#"{"cmd":"get","path":"a","filename":"b"}"#)
            .decode::<GetRequest>()
            .unwrap_err();
        assert!(e.to_string().contains("duplicate field `path`"), "{e}");
    }

    /// The metadata fields: absent in old servers' replies and old clients' requests (read
    /// as the defaults), present as docs/files.md shows them.
    #[test]
    fn metadata_fields_are_optional_and_documented() {
        let old: Entry =
            serde_json::from_str(r#"{"name":"a","kind":"file","size":1,"mtime":5}"#).unwrap();
        assert_eq!((old.mtime_nsec, old.mode, old.target), (0, None, None));
        let r: StatReply =
            header(r#"{"status":"ok","stat":{"path":"a","kind":"dir","size":0,"mtime":1}}"#)
                .decode()
                .unwrap();
        assert_eq!((r.stat.mode, r.stat.mtime_nsec), (None, 0));
        let r: GetReply = header(&format!(
            r#"{{"status":"ok","size":0,"total":0,"blake3":"{}","mtime":1}}"#,
            "cd".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!((r.mode, r.mtime_nsec), (None, 0));
        let r: PutRequest = header(r#"{"cmd":"put","filename":"a","filesize":1}"#)
            .decode()
            .unwrap();
        assert_eq!((r.mode, r.mtime, r.mtime_nsec), (None, None, None));
        // docs/files.md
        let r: LsReply = header(
            r#"{"status":"ok","path":"","total":2,"entries":[
                {"name":"a.txt","kind":"file","size":12,"mtime":1700000000,"mtime_nsec":250000000,"mode":420},
                {"name":"l","kind":"symlink","size":5,"mtime":1700000000,"mtime_nsec":0,"mode":511,"target":"a.txt"}]}"#,
        )
        .decode()
        .unwrap();
        assert_eq!(r.entries[0].mode, Some(0o644));
        assert_eq!(r.entries[1].target.as_deref(), Some("a.txt"));
        let r: PutRequest = header(
            r#"{"cmd":"put","path":"a.bin","size":7,"mode":493,"mtime":1700000000,"mtime_nsec":5,"trailer":true}"#,
        )
        .decode()
        .unwrap();
        assert_eq!(
            (r.mode, r.mtime, r.mtime_nsec),
            (Some(0o755), Some(1_700_000_000), Some(5))
        );
        let r: SymlinkRequest = header(
            r#"{"cmd":"symlink","path":"d/l","target":"../a.txt","overwrite":false,"mtime":1700000000,"mtime_nsec":0}"#,
        )
        .decode()
        .unwrap();
        assert_eq!((r.path.as_str(), r.target.as_str()), ("d/l", "../a.txt"));
        let r: SetattrRequest =
            header(r#"{"cmd":"setattr","path":"d","mode":448,"mtime":1700000000,"mtime_nsec":0}"#)
                .decode()
                .unwrap();
        assert_eq!(r.mode, Some(0o700));
        let e = header(r#"{"cmd":"symlink","path":"l"}"#)
            .decode::<SymlinkRequest>()
            .unwrap_err();
        assert!(e.to_string().contains("missing field `target`"), "{e}");
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let r: LsRequest = header(r#"{"cmd":"ls"}"#).decode().unwrap();
        assert_eq!(r, LsRequest::default());
        let r: PutRequest = header(
            r#"{"cmd":"put","path":"a","offset":null,"overwrite":null,"trailer":null,"blake3":null}"#,
        )
        .decode()
        .unwrap();
        assert_eq!(
            (r.offset, r.overwrite, r.trailer, r.blake3),
            (0, false, false, None)
        );
        let r: PutRequest = header(r#"{"cmd":"put","path":"a","extra":[1,2]}"#)
            .decode()
            .unwrap();
        assert_eq!(r.path, "a");
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, key) in [
            (r#"{"cmd":"ls","offset":"x"}"#, "`offset`"),
            (r#"{"cmd":"ls","offset":-1}"#, "`offset`"),
            (r#"{"cmd":"ls","path":3}"#, "`path`"),
        ] {
            let e = header(json).decode::<LsRequest>().unwrap_err();
            assert!(e.to_string().contains(key), "{json}: {e}");
        }
        let e = header(r#"{"cmd":"rm"}"#).decode::<RmRequest>().unwrap_err();
        assert!(e.to_string().contains("missing field `path`"), "{e}");
        let e = header(r#"{"cmd":"mkdir","path":"a","parents":"yes"}"#)
            .decode::<MkdirRequest>()
            .unwrap_err();
        assert!(e.to_string().contains("`parents`"), "{e}");
        let r = header(r#"{"cmd":"put","path":"a","offset":"x","trailer":true}"#);
        assert!(r.decode::<PutRequest>().is_err());
        assert!(r.parse::<PutTrailer>().unwrap().trailer);
    }
}

/// `{"cmd":"sync_sig","path"}`: the chunk list of a file (for `sync`'s delta transfer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSigRequest {
    /// The file.
    pub path: String,
}

impl Message for SyncSigRequest {
    const CMD: Option<&'static str> = Some("sync_sig");
}

/// `{"status":"ok","path","total","blake3","chunks","data_size"}`, followed by `data_size`
/// bytes: `chunks` records of a 4-byte little-endian length and the first 16 bytes of the
/// chunk's BLAKE3, cut with an average chunk of `chunk_avg` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSigReply {
    /// The file, canonical spelling.
    #[serde(default)]
    pub path: String,
    /// The file's size.
    pub total: u64,
    /// The whole file's BLAKE3, hex.
    pub blake3: String,
    /// Records in the body.
    pub chunks: u64,
    /// The body length (`chunks` × 20).
    pub data_size: u64,
    /// The average chunk the list was cut with (a power of two, 8 KiB to 1 MiB; the
    /// smallest chunk is a quarter of it, the largest eight times it).
    #[serde(default = "default_chunk_avg")]
    pub chunk_avg: u32,
}

/// The average chunk of a list that does not say (the smallest allowed).
fn default_chunk_avg() -> u32 {
    crate::sync::chunks::MIN_AVG
}

impl Message for SyncSigReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"sync_pull","path","data_size"}` + the client's chunk list of its copy (as in
/// [`SyncSigReply`]): asks for a delta that turns the client's copy into `path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPullRequest {
    /// The file on the server.
    pub path: String,
    /// The body length (the client's chunk list).
    #[serde(default, deserialize_with = "null_as_default")]
    pub data_size: u64,
    /// The average chunk the client's list was cut with (as in [`SyncSigReply`]).
    #[serde(default = "default_chunk_avg")]
    pub chunk_avg: u32,
    /// Codecs the client accepts for the reply's body (`["zstd"]`); absent: raw.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub compress: Vec<String>,
}

impl Message for SyncPullRequest {
    const CMD: Option<&'static str> = Some("sync_pull");
}

/// `{"status":"ok","path","total","blake3","mtime","mtime_nsec","mode","data_size"}` + the
/// delta (see `docs/files.md` "sync").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPullReply {
    /// The file, canonical spelling.
    #[serde(default)]
    pub path: String,
    /// The size of the file the delta produces.
    pub total: u64,
    /// Its BLAKE3, hex.
    pub blake3: String,
    /// Its modification time, seconds since the epoch.
    #[serde(default)]
    pub mtime: i64,
    /// The nanoseconds of `mtime`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime_nsec: u32,
    /// Its permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The delta's length (0 with `encoding`).
    pub data_size: u64,
    /// The body follows as [`Block`] frames in this codec (only when the request asked
    /// for it with `compress`); `size` is then 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for SyncPullReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"sync_patch","path","base"?,"total","blake3","mode"?,"mtime"?,"mtime_nsec"?,
/// "data_size"}` + a delta against `base` (absent: an empty base): the server builds the
/// new file in staging, checks its size and hash, sets mode and time, fsyncs and renames it
/// over `path`. Answered like `put` ([`PutReply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPatchRequest {
    /// The file to write (replaced if it exists).
    pub path: String,
    /// The file the delta copies from (usually `path` itself; another file for a rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The size of the result.
    pub total: u64,
    /// The result's BLAKE3, hex.
    pub blake3: String,
    /// Permission bits for the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time for the result, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// The nanoseconds of `mtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_nsec: Option<u32>,
    /// The delta's length (0 with `encoding`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub data_size: u64,
    /// The body is sent as [`Block`] frames in this codec (`"zstd"`, only to a server
    /// whose `features` accept it); the frame itself then announces no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for SyncPatchRequest {
    const CMD: Option<&'static str> = Some("sync_patch");
}

#[cfg(test)]
mod sync_tests {
    use super::*;
    use sockit_testkit::messages::{header, roundtrip};

    #[test]
    fn sync_messages_roundtrip_and_parse() {
        roundtrip(SyncSigRequest { path: "a".into() });
        roundtrip(SyncSigReply {
            path: "a".into(),
            total: 9,
            blake3: "ab".repeat(32),
            chunks: 1,
            data_size: 20,
            chunk_avg: 65536,
        });
        roundtrip(SyncPullRequest {
            path: "a".into(),
            data_size: 20,
            chunk_avg: 8192,
            compress: vec![ZSTD.into()],
        });
        roundtrip(SyncPullReply {
            path: "a".into(),
            total: 9,
            blake3: "ab".repeat(32),
            mtime: 1,
            mtime_nsec: 2,
            mode: Some(0o644),
            data_size: 17,
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        roundtrip(SyncPatchRequest {
            path: "b".into(),
            base: Some("a".into()),
            total: 9,
            blake3: "ab".repeat(32),
            mode: Some(0o600),
            mtime: Some(1),
            mtime_nsec: Some(2),
            data_size: 17,
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        let r: SyncPatchRequest = header(&format!(
            r#"{{"cmd":"sync_patch","path":"a.bin","base":"a.bin","total":12,"blake3":"{}","mode":420,"mtime":1700000000,"mtime_nsec":0,"data_size":17}}"#,
            "ef".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!((r.total, r.data_size), (12, 17));
    }
}
