//! `features {}` → `{compress, batch_max_files, batch_max_bytes, sync_max_chunk_list}`:
//! what this server offers beyond its command list, so a client can compress its uploads
//! and cut its batches to the server's limits. Clients ask only servers whose hello lists
//! `features`; an older server's limits are [`FeaturesReply::default`].

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::messages::{FeaturesReply, FeaturesRequest, ZSTD};
use crate::root::FilesRoot;

/// The `features` command.
#[derive(Debug)]
pub struct Features {
    /// The data root (its configuration is what is offered).
    pub root: Arc<FilesRoot>,
}

/// What `config` offers.
pub fn offered(config: &crate::FilesConfig) -> FeaturesReply {
    FeaturesReply {
        compress: if config.compress {
            vec![ZSTD.to_owned()]
        } else {
            Vec::new()
        },
        batch_max_files: config.batch_max_files as u64,
        batch_max_bytes: config.batch_max_bytes,
        sync_max_chunk_list: config.sync_max_chunk_list,
    }
}

#[async_trait]
impl Command for Features {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let _: FeaturesRequest = req.decode()?;
        conn.send(&Header::reply(&offered(self.root.config()))?)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_what_is_offered() {
        let mut config = crate::FilesConfig::default();
        let f = offered(&config);
        assert!(f.accepts(ZSTD));
        assert_eq!(
            FeaturesReply {
                compress: Vec::new(),
                ..f
            },
            FeaturesReply::default()
        );
        config.compress = false;
        config.batch_max_files = 7;
        let f = offered(&config);
        assert!(!f.accepts(ZSTD));
        assert_eq!(f.batch_max_files, 7);
    }
}
