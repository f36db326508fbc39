//! The limits a server sets (`serve --batch-max-files`, `--batch-max-bytes`,
//! `--sync-max-chunk-list`): `features` reports them, the server refuses batches over
//! them, and a client cuts its batches to them, so trees and syncs still arrive whole.

use std::time::Duration;

use sockit_files::client::{GetOptions, NoProgress, PutOptions};
use sockit_files::messages::{FeaturesReply, PutManyFile, PutManyRequest};
use sockit_files::sync::{Side, SyncOptions};
use sockit_files::FilesConfig;
use sockit_testkit::data;
use sockit_wire::{ClientError, ErrorCode, Header};

use crate::common::{snapshot, Server};

fn small_limits() -> FilesConfig {
    FilesConfig {
        batch_max_files: 3,
        batch_max_bytes: 10_000,
        sync_max_chunk_list: 72,
        ..FilesConfig::default()
    }
}

#[tokio::test]
async fn features_report_the_limits_and_trees_are_cut_to_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, small_limits()).await;
    let mut c = server.client().await;
    assert_eq!(
        c.features().await.unwrap(),
        FeaturesReply {
            compress: vec!["zstd".into()],
            batch_max_files: 3,
            batch_max_bytes: 10_000,
            sync_max_chunk_list: 72,
        }
    );
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("d/f{i}")), data::bytes(3000, i)).unwrap();
    }
    // Over the batch bytes: sent alone, streamed.
    std::fs::write(src.join("big"), data::bytes(20_000, 99)).unwrap();
    let r = c
        .put_tree(&src, "t", PutOptions::default(), &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(r.files, 21);
    assert_eq!(snapshot(&root.join("t")), snapshot(&src));
    let dst = tmp.path().join("dst");
    let r = c
        .get_tree("t", &dst, GetOptions::default(), &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(r.files, 21);
    assert_eq!(snapshot(&dst), snapshot(&src));
}

#[tokio::test]
async fn a_batch_over_the_servers_limits_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, small_limits()).await;
    let mut c =
        sockit_wire::Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
            .await
            .unwrap();
    let file = |i: usize| PutManyFile {
        path: format!("f{i}"),
        size: 1,
        blake3: blake3::hash(b"x").to_hex().to_string(),
        ..PutManyFile::default()
    };
    let req = PutManyRequest {
        size: 4,
        files: (0..4).map(file).collect(),
        ..PutManyRequest::default()
    };
    let h = Header::encode(&req).unwrap();
    match c.request_with_body(&h, b"xxxx".to_vec().into()).await {
        Err(ClientError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.contains("at most 3 files"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let req = PutManyRequest {
        size: 10_001,
        files: vec![PutManyFile {
            size: 10_001,
            ..file(0)
        }],
        ..PutManyRequest::default()
    };
    let h = Header::encode(&req).unwrap();
    match c.request_with_body(&h, vec![b'x'; 10_001].into()).await {
        Err(ClientError::Remote { code, .. }) => assert_eq!(code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
    // Still in step, and nothing was written.
    c.ping().await.unwrap();
    for i in 0..4 {
        assert!(!root.join(format!("f{i}")).exists());
    }
}

/// A chunk list over the server's cap: `sync` sends the changed file whole, and the
/// result is right.
#[tokio::test]
async fn a_file_whose_chunk_list_is_over_the_cap_is_synced_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, small_limits()).await;
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let mut bytes = data::bytes(1 << 20, 5);
    std::fs::write(a.join("f"), &bytes).unwrap();
    let mut c = server.client().await;
    let opts = SyncOptions::default();
    c.sync(
        &Side::Local(a.clone()),
        &Side::Remote("c".into()),
        &opts,
        &mut NoProgress,
    )
    .await
    .unwrap();
    bytes[500_000] ^= 1;
    std::fs::write(a.join("f"), &bytes).unwrap();
    let up = c
        .sync(
            &Side::Local(a.clone()),
            &Side::Remote("c".into()),
            &opts,
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(up.changed, 1);
    // No chunk list came back (it is over 72 bytes): the whole file went.
    assert_eq!(
        (up.signature_bytes, up.delta_bytes >= 1 << 20),
        (0, true),
        "{up:?}"
    );
    assert_eq!(std::fs::read(root.join("c/f")).unwrap(), bytes);
    let b = tmp.path().join("b");
    c.sync(
        &Side::Remote("c".into()),
        &Side::Local(b.clone()),
        &opts,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&b), snapshot(&a));
}
