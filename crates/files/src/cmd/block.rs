//! A `block` frame that arrives as a request: the rest of an encoded upload the server
//! already refused (its refusal was sent at once, before the blocks were read). It is read
//! and dropped without a reply, so the client's next request is answered next; a client
//! that stops sending after a refusal must close the connection, as for a raw body.

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

/// The `block` command (drops stray blocks).
#[derive(Debug, Clone, Copy, Default)]
pub struct StrayBlock;

#[async_trait]
impl Command for StrayBlock {
    async fn run(
        &self,
        _req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        conn.discard_body().await?;
        Ok(())
    }
}
