//! The batched tree commands: `putmany` (many small files in one request body) and
//! `getmany` (many small files in one reply body). A tree transfer sends several of them
//! back to back without waiting for each reply (the server answers requests in order),
//! so a tree of small files costs a few round trips per window, not one per file.

use serde::{Deserialize, Serialize};
use sockit_wire::header::{null_as_default, Message};
use sockit_wire::ErrorCode;

/// The default of the most files one `putmany` or `getmany` may name (`serve
/// --batch-max-files`; the server refuses more with `bad_request`), so that every reply
/// fits in one header.
pub const BATCH_MAX_FILES: usize = 128;

/// The default of the most body bytes one `putmany` may carry, or one `getmany` reply may
/// hold (`serve --batch-max-bytes`; files past it are answered `too_large` and fetched
/// alone with `get`).
pub const BATCH_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Longest message of one item's error in a batch reply (longer ones are cut).
pub const BATCH_MAX_MESSAGE: usize = 200;

/// One file of a `putmany` request; its bytes follow those of the files before it in the
/// body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutManyFile {
    /// The file to write.
    pub path: String,
    /// Its length in the body.
    pub size: u64,
    /// Its BLAKE3, hex (checked before the file is committed).
    pub blake3: String,
    /// Permission bits (absent: the server's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time, seconds since the epoch (absent: the time of the upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// The nanoseconds of `mtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_nsec: Option<u32>,
}

/// `{"cmd":"putmany","size":N,"overwrite":false,"files":[...]}` + the files' bytes back to
/// back (`size` = the sum of their sizes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutManyRequest {
    /// The body length.
    #[serde(default, deserialize_with = "null_as_default")]
    pub size: u64,
    /// Replace existing files.
    #[serde(default, deserialize_with = "null_as_default")]
    pub overwrite: bool,
    /// The files, in body order.
    pub files: Vec<PutManyFile>,
    /// The body is sent as [`crate::messages::Block`] frames in this codec (`"zstd"`, only to a server
    /// whose `features` accept it); the frame itself then announces no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for PutManyRequest {
    const CMD: Option<&'static str> = Some("putmany");
}

/// Why one file of a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The error code, as in an error frame.
    pub code: ErrorCode,
    /// What went wrong (at most [`BATCH_MAX_MESSAGE`] bytes).
    pub message: String,
}

impl ItemError {
    /// An item error, its message cut to [`BATCH_MAX_MESSAGE`] bytes.
    pub fn new(code: ErrorCode, message: &str) -> Self {
        let mut end = message.len().min(BATCH_MAX_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            message: message[..end].to_owned(),
        }
    }
}

/// `{"status":"ok","results":[null,{"code":"exists","message":"..."},...]}`: one entry per
/// file of the request, in order; `null` is committed (durable under its name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutManyReply {
    /// The outcome of each file.
    pub results: Vec<Option<ItemError>>,
}

impl Message for PutManyReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"getmany","paths":["a","d/b"]}`: many small files in one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetManyRequest {
    /// The files (symlinks inside the root are followed, as with `get`).
    pub paths: Vec<String>,
    /// Codecs the client accepts for the reply's body (`["zstd"]`); absent: raw.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub compress: Vec<String>,
}

impl Message for GetManyRequest {
    const CMD: Option<&'static str> = Some("getmany");
}

/// One file of a `getmany` reply: its bytes (`size` of them) follow those of the files
/// before it in the body; an `error` entry has no bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetManyFile {
    /// The length of its bytes in the body.
    #[serde(default, deserialize_with = "null_as_default")]
    pub size: u64,
    /// The BLAKE3 of those bytes, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Modification time, seconds since the epoch.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime: i64,
    /// The nanoseconds of `mtime`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mtime_nsec: u32,
    /// Permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Why it is not sent (`too_large`: the batch is full, fetch it with `get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// `{"status":"ok","size":N,"files":[...]}` + the files' bytes back to back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetManyReply {
    /// The body length.
    #[serde(default, deserialize_with = "null_as_default")]
    pub size: u64,
    /// One entry per requested path, in order.
    pub files: Vec<GetManyFile>,
    /// The body follows as [`crate::messages::Block`] frames in this codec (only when the request asked
    /// for it with `compress`); `size` is then 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// With `encoding`: the bytes the blocks stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

impl Message for GetManyReply {
    const CMD: Option<&'static str> = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ZSTD;
    use sockit_testkit::messages::{header, roundtrip};

    #[test]
    fn batch_messages_roundtrip_and_match_the_docs() {
        roundtrip(PutManyRequest {
            size: 3,
            overwrite: true,
            files: vec![PutManyFile {
                path: "d/a".into(),
                size: 3,
                blake3: "ab".repeat(32),
                mode: Some(0o644),
                mtime: Some(1),
                mtime_nsec: Some(2),
            }],
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        roundtrip(PutManyReply {
            results: vec![None, Some(ItemError::new(ErrorCode::Exists, "d/b exists"))],
        });
        roundtrip(GetManyRequest {
            paths: vec!["a".into()],
            compress: vec![ZSTD.into()],
        });
        roundtrip(GetManyReply {
            size: 3,
            files: vec![GetManyFile {
                size: 3,
                blake3: Some("cd".repeat(32)),
                mtime: 5,
                mtime_nsec: 6,
                mode: Some(0o600),
                error: None,
            }],
            encoding: Some(ZSTD.into()),
            raw_size: Some(7),
        });
        // docs/files.md
        let r: PutManyRequest = header(&format!(
            r#"{{"cmd":"putmany","size":7,"overwrite":false,"files":[
                {{"path":"d/a","size":3,"blake3":"{0}","mode":420,"mtime":1700000000,"mtime_nsec":0}},
                {{"path":"d/b","size":4,"blake3":"{0}"}}]}}"#,
            "ef".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!((r.size, r.files.len(), r.files[1].mode), (7, 2, None));
        let r: PutManyReply =
            header(r#"{"status":"ok","results":[null,{"code":"exists","message":"d/b exists"}]}"#)
                .decode()
                .unwrap();
        assert_eq!(
            r.results[1].as_ref().map(|e| e.code),
            Some(ErrorCode::Exists)
        );
        let r: GetManyReply = header(&format!(
            r#"{{"status":"ok","size":3,"files":[
                {{"size":3,"blake3":"{}","mtime":1700000000,"mtime_nsec":0,"mode":420}},
                {{"size":0,"error":{{"code":"too_large","message":"the batch is full; use get"}}}}]}}"#,
            "cd".repeat(32)
        ))
        .decode()
        .unwrap();
        assert_eq!(
            r.files[1].error.as_ref().map(|e| e.code),
            Some(ErrorCode::TooLarge)
        );
    }

    #[test]
    fn item_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let e = ItemError::new(ErrorCode::Internal, &long);
        assert!(e.message.len() <= BATCH_MAX_MESSAGE);
        assert!(long.starts_with(&e.message));
    }
}
