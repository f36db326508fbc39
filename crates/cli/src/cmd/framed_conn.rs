//! Connecting to the framed port (files and exec commands share this).

use std::time::Duration;

use sockit_files::FilesClient;
use sockit_wire::{Client, FRAMED_PORT};

use crate::global::GlobalArgs;

/// Connect/handshake timeout of the file and exec commands.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and authenticates with --server/--key.
pub async fn connect(g: &GlobalArgs) -> anyhow::Result<Client> {
    let addr = g.server_addr(FRAMED_PORT);
    let key = g.load_key()?;
    Ok(Client::connect(&addr, key.as_ref(), CONNECT_TIMEOUT).await?)
}

/// A file-service client.
pub async fn files(g: &GlobalArgs) -> anyhow::Result<FilesClient> {
    Ok(FilesClient::new(connect(g).await?))
}
