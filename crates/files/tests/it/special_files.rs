//! Files that are not regular files inside the served tree: a FIFO is refused at once
//! (opening it never waits for a writer), and the connection goes on.

use crate::common::Server;
use sockit_files::FilesConfig;
use sockit_wire::{Client, ClientError, ErrorCode, Header};
use std::time::Duration;

/// A hang guard only: the refusal comes back at once, a blocked open would never.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[tokio::test]
async fn get_of_a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let server = Server::start(dir.path(), FilesConfig::default()).await;
    let mut c = Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    let get = Header::request("get").with("path", "pipe");
    let asked = c.request(&get);
    let reply = tokio::time::timeout(HANG_GUARD, asked)
        .await
        .expect("get of a FIFO hung");
    match reply {
        Err(ClientError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::BadRequest, "{message}");
            assert!(message.contains("is not a regular file"), "{message}");
        }
        other => panic!("want a bad_request refusal, got {other:?}"),
    }
    // The connection is still usable.
    c.request(&Header::request("ping")).await.unwrap();
}
