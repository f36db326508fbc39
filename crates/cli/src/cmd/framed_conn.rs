//! Connecting to the framed port (files and exec commands share this).

use std::time::Duration;

use sockit_files::FilesClient;
use sockit_wire::Client;

use crate::global::GlobalArgs;

/// Connect/handshake timeout of the file and exec commands.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and authenticates with --server/--key (and --tls when given).
pub async fn connect(g: &GlobalArgs) -> anyhow::Result<Client> {
    g.framed_client(CONNECT_TIMEOUT).await
}

/// A file-service client.
pub async fn files(g: &GlobalArgs) -> anyhow::Result<FilesClient> {
    Ok(FilesClient::new(connect(g).await?))
}
