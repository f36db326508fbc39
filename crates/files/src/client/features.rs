//! What the server offers (`features`: compression, batch and chunk-list limits), asked
//! once per connection, and whether this client compresses (`--compress`).
//!
//! A server whose hello does not list `features` is an older one: it compresses nothing
//! and takes the limits of [`FeaturesReply::default`], and is never sent an `encoding`.
//! Downloads ask with `compress: ["zstd"]` whatever the server is: an older server ignores
//! the key and sends the body raw.

use crate::client::{FilesClient, FilesClientError};
use crate::messages::{FeaturesReply, FeaturesRequest, ZSTD};

impl FilesClient {
    /// Compress transfers on this connection where the server takes it (uploads: only
    /// when its `features` accept zstd) and where it pays (block by block).
    pub fn set_compress(&mut self, on: bool) {
        self.compress = on;
    }

    /// What the server offers (asked once; an older server's defaults without a round
    /// trip).
    ///
    /// # Errors
    /// The connection failed, or the server refused `features`.
    pub async fn features(&mut self) -> Result<FeaturesReply, FilesClientError> {
        if let Some(f) = &self.features {
            return Ok(f.clone());
        }
        let f = if self.server_has(FeaturesRequest::CMD_NAME) {
            self.call::<_, FeaturesReply>(&FeaturesRequest {}).await?
        } else {
            FeaturesReply::default()
        };
        self.features = Some(f.clone());
        Ok(f)
    }

    /// Whether an upload's body goes compressed: `--compress`, and the server accepts
    /// zstd.
    ///
    /// # Errors
    /// As [`Self::features`].
    pub(crate) async fn upload_compressed(&mut self) -> Result<bool, FilesClientError> {
        Ok(self.compress && self.features().await?.accepts(ZSTD))
    }

    /// The codecs a download request accepts (`["zstd"]` with `--compress`).
    pub(crate) fn accepted(&self) -> Vec<String> {
        if self.compress {
            vec![ZSTD.to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// Whether a reply's `encoding` is one this client can read and asked for.
///
/// # Errors
/// A codec it did not ask for, or one without `raw_size`.
pub(crate) fn reply_encoding(
    asked: bool,
    encoding: Option<&str>,
    raw_size: Option<u64>,
    body: u64,
) -> Result<Option<u64>, FilesClientError> {
    match (encoding, raw_size) {
        (None, _) => Ok(None),
        (Some(ZSTD), Some(raw)) if asked && body == 0 => Ok(Some(raw)),
        (Some(c), _) => Err(FilesClientError::Protocol(format!(
            "the server answered with body encoding {c:?}, which this client did not ask for"
        ))),
    }
}
