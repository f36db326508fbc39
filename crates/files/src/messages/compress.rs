//! The frames of compressed transfers and of `features`: what a server offers (the
//! codecs it accepts, its batch and chunk-list limits), and the `block` frames that carry
//! an encoded body (see `docs/files.md` "Compression").

use serde::{Deserialize, Serialize};
use sockit_wire::header::{null_as_default, Message};

/// The one codec: zstd (RFC 8878 frames).
pub const ZSTD: &str = "zstd";

/// `{"cmd":"features"}`: what this server offers beyond the commands of its hello.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturesRequest {}

impl FeaturesRequest {
    /// The command's name (as listed in a hello's `services`).
    pub const CMD_NAME: &'static str = "features";
}

impl Message for FeaturesRequest {
    const CMD: Option<&'static str> = Some(Self::CMD_NAME);
}

/// `{"status":"ok","compress":["zstd"],"batch_max_files":128,"batch_max_bytes":16777216,
/// "sync_max_chunk_list":67108864}`. A server without `features` in its hello offers no
/// compression and the limits of [`FeaturesReply::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturesReply {
    /// Codecs the server accepts in `encoding` and answers with (empty: none, e.g.
    /// `serve --no-compress`).
    #[serde(default)]
    pub compress: Vec<String>,
    /// Most files in one `putmany` or `getmany`.
    pub batch_max_files: u64,
    /// Most body bytes of one `putmany` request or `getmany` reply.
    pub batch_max_bytes: u64,
    /// Largest chunk list `sync_sig` sends or `sync_pull` accepts, in bytes.
    pub sync_max_chunk_list: u64,
}

impl Default for FeaturesReply {
    /// What a server from before `features` takes: no compression, 128 files and 16 MiB
    /// per batch, 64 MiB chunk lists.
    fn default() -> Self {
        Self {
            compress: Vec::new(),
            batch_max_files: 128,
            batch_max_bytes: 16 * 1024 * 1024,
            sync_max_chunk_list: 64 * 1024 * 1024,
        }
    }
}

impl FeaturesReply {
    /// Whether the server accepts `codec`.
    pub fn accepts(&self, codec: &str) -> bool {
        self.compress.iter().any(|c| c == codec)
    }
}

impl Message for FeaturesReply {
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"block","raw":R,"zstd":true,"size":C}` + C bytes: one piece of an encoded body,
/// standing for R bytes of the transfer. With `zstd`, the C bytes are one zstd frame that
/// decompresses to exactly R bytes (C < R); without, they are the R bytes themselves.
/// Blocks follow the request (or reply) that announced `encoding` until their `raw`
/// lengths add up to its `raw_size`. Sent by both sides; a server reads a stray `block`
/// (the rest of a refused upload) and drops it without a reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The bytes of the transfer this block stands for.
    pub raw: u64,
    /// The body is a zstd frame (absent or false: stored as is).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub zstd: bool,
    /// The body length.
    pub size: u64,
}

impl Message for Block {
    const CMD: Option<&'static str> = Some("block");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit_testkit::messages::{header, roundtrip, text};
    use sockit_wire::Header;

    #[test]
    fn compress_messages_roundtrip_and_match_the_docs() {
        roundtrip(FeaturesRequest {});
        roundtrip(FeaturesReply {
            compress: vec![ZSTD.into()],
            ..FeaturesReply::default()
        });
        roundtrip(Block {
            raw: 1 << 20,
            zstd: true,
            size: 1234,
        });
        let r: FeaturesReply = header(
            r#"{"status":"ok","compress":["zstd"],"batch_max_files":128,"batch_max_bytes":16777216,"sync_max_chunk_list":67108864}"#,
        )
        .decode()
        .unwrap();
        assert!(r.accepts(ZSTD));
        assert_eq!(
            FeaturesReply {
                compress: vec![],
                ..r
            },
            FeaturesReply::default()
        );
        let b: Block = header(r#"{"cmd":"block","raw":5,"size":5}"#)
            .decode()
            .unwrap();
        assert!(!b.zstd);
        assert_eq!(
            text(&Header::encode(&b).unwrap()),
            r#"{"cmd":"block","raw":5,"size":5}"#
        );
    }
}
