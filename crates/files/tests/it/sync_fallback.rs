//! A delta that does not rebuild the file is never kept, and the sync still succeeds: the
//! file then goes whole. Servers that lie about their chunks stand in for what would
//! otherwise take a base changed between the signature and the patch, or two different
//! chunks with equal hashes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_files::client::NoProgress;
use sockit_files::cmd::sync::SyncPull;
use sockit_files::messages::{SyncPullReply, SyncPullRequest, SyncSigReply, SyncSigRequest};
use sockit_files::sync::chunks::{self, ChunkParams};
use sockit_files::sync::{Side, SyncOptions};
use sockit_files::{FilesConfig, FilesRoot};
use sockit_testkit::data;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::common::Server;

/// Bytes of the file; over the size at which chunks are cut on several threads.
const SIZE: usize = 20 << 20;

/// `sync_sig` that describes `truth` (the client's new file) instead of the server's
/// file, so a push plans copies of bytes the base does not hold.
#[derive(Debug)]
struct LyingSig {
    truth: PathBuf,
}

#[async_trait]
impl Command for LyingSig {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let req: SyncSigRequest = req.decode()?;
        let data = std::fs::read(&self.truth).unwrap();
        let params = ChunkParams::for_size(data.len() as u64);
        let sig = chunks::signature(&data[..], params).unwrap();
        let body = chunks::encode(&sig.chunks);
        let reply = SyncSigReply {
            path: req.path,
            total: sig.total,
            blake3: sig.blake3.to_hex().to_string(),
            chunks: sig.chunks.len() as u64,
            data_size: body.len() as u64,
            chunk_avg: params.avg(),
        };
        conn.send_with_body(&Header::reply(&reply)?, Bytes::from(body))
            .await?;
        Ok(())
    }
}

/// `sync_pull` that, given a list, answers "the file is your copy" (one copy of all of
/// it) with the real file's size and hash; without a list it is the real command.
#[derive(Debug)]
struct LyingPull {
    /// The served tree on disk.
    files: PathBuf,
    real: SyncPull,
}

#[async_trait]
impl Command for LyingPull {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let r: SyncPullRequest = req.decode()?;
        if r.data_size == 0 {
            return self.real.run(req, conn, session).await;
        }
        let _list = conn.read_body_to_vec(1 << 20).await?;
        let real = std::fs::read(self.files.join(&r.path)).unwrap();
        let mut delta = vec![1u8];
        delta.extend_from_slice(&0u64.to_le_bytes());
        delta.extend_from_slice(&(real.len() as u64).to_le_bytes());
        let reply = SyncPullReply {
            path: r.path,
            total: real.len() as u64,
            blake3: blake3::hash(&real).to_hex().to_string(),
            mode: Some(0o644),
            data_size: delta.len() as u64,
            ..SyncPullReply::default()
        };
        conn.send_with_body(&Header::reply(&reply)?, Bytes::from(delta))
            .await?;
        Ok(())
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_delta_the_server_refuses_sends_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (files, staging) = (dir.path().join("files"), dir.path().join("staging"));
    std::fs::create_dir_all(&staging).unwrap();
    let old = data::bytes(SIZE, 1);
    let new = data::bytes(SIZE, 2);
    write(&files.join("d/big.bin"), &old);
    let local = dir.path().join("local");
    write(&local.join("big.bin"), &new);
    let root = FilesRoot::open_split(&files, &staging, FilesConfig::default()).unwrap();
    let truth = local.join("big.bin");
    let server = Server::start_with(root, |table, _| {
        table.register("sync_sig", Arc::new(LyingSig { truth }));
    });
    let mut c = server.client().await;
    let report = c
        .sync(
            &Side::Local(local.clone()),
            &Side::Remote("d".into()),
            &SyncOptions::default(),
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(files.join("d/big.bin")).unwrap(), new);
    assert!(
        report.delta_bytes >= SIZE as u64,
        "sent whole after the refusal: {report:?}"
    );
    assert!(
        std::fs::read_dir(&staging).unwrap().next().is_none(),
        "nothing left in staging"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_whose_delta_does_not_rebuild_the_file_fetches_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (files, staging) = (dir.path().join("files"), dir.path().join("staging"));
    std::fs::create_dir_all(&staging).unwrap();
    let theirs = data::bytes(SIZE, 3);
    let mine = data::bytes(SIZE, 4);
    write(&files.join("d/big.bin"), &theirs);
    let local = dir.path().join("local");
    write(&local.join("big.bin"), &mine);
    let root = FilesRoot::open_split(&files, &staging, FilesConfig::default()).unwrap();
    let served = files.clone();
    let server = Server::start_with(root, |table, root| {
        let real = SyncPull { root: root.clone() };
        let files = served;
        table.register("sync_pull", Arc::new(LyingPull { files, real }));
    });
    let mut c = server.client().await;
    let report = c
        .sync(
            &Side::Remote("d".into()),
            &Side::Local(local.clone()),
            &SyncOptions::default(),
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(local.join("big.bin")).unwrap(), theirs);
    assert!(report.delta_bytes >= SIZE as u64, "{report:?}");
    let names: Vec<_> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["big.bin"], "no temporary file left beside it");
}
