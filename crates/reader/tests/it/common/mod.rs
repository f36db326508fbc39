//! Starting a real library with its classic and HTTP servers on loopback port 0, in a
//! runtime owned by the test (servers are bound before the test talks to them: no sleeps).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sockit_reader::client::{Client, Response};
use sockit_reader::{Library, ReaderConfig};
use sockit_runtime::server::{self as runtime, Limits};
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub classic: SocketAddr,
    pub http: SocketAddr,
    pub lib: Arc<Library>,
    pub books: PathBuf,
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    shutdown: CancellationToken,
}

impl Server {
    /// Writes `files` into a fresh books root and starts both servers.
    pub fn start(files: &[(&str, Vec<u8>)]) -> Server {
        Self::start_with(files, |_| {})
    }

    pub fn start_with(files: &[(&str, Vec<u8>)], tweak: impl FnOnce(&mut ReaderConfig)) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), files, tweak)
    }

    /// Stops both servers and starts them again on the same root (a server restart:
    /// the catalog and accounts are reopened from disk).
    pub fn restart(mut self) -> Server {
        self.shutdown.cancel();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Self::start_in(dir, &[], |_| {})
    }

    /// Writes `files` into `dir`'s books root and starts both servers there.
    pub fn start_in(
        dir: tempfile::TempDir,
        files: &[(&str, Vec<u8>)],
        tweak: impl FnOnce(&mut ReaderConfig),
    ) -> Server {
        let mut cfg = ReaderConfig::for_root(dir.path());
        std::fs::create_dir_all(&cfg.books_dir).unwrap();
        for (name, bytes) in files {
            let p = cfg.books_dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        cfg.accounts = Some(test_accounts(&cfg.state_dir, Default::default()));
        tweak(&mut cfg);
        let books = cfg.books_dir.clone();
        let lib = Library::open(cfg).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let (classic, http) = rt.block_on(async {
            let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let c = runtime::bind_tcp(lo, 128).unwrap();
            let h = runtime::bind_tcp(lo, 128).unwrap();
            let (ca, ha) = (c.local_addr().unwrap(), h.local_addr().unwrap());
            let svc = Arc::new(sockit_reader::classic::ClassicService::new(lib.clone()));
            tokio::spawn(runtime::serve_tcp(
                c,
                svc,
                Limits::default(),
                shutdown.clone(),
            ));
            tokio::spawn(sockit_reader::http::serve(h, lib.clone(), shutdown.clone()));
            (ca, ha)
        });
        Server {
            classic,
            http,
            lib,
            books,
            dir,
            rt,
            shutdown,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.http.to_string())
    }

    /// One HTTP request.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.rt
            .block_on(self.client().request(method, path, headers, body))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Response {
        self.req("GET", path, &[], b"")
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).unwrap()
    }

    /// The catalog id of the book at `path`.
    pub fn id(&self, path: &str) -> i64 {
        self.lib.book_by_path(path).unwrap().id
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An accounts store with argon2's cheapest cost (tests only) and `throttle`.
pub fn test_accounts(
    state_dir: &std::path::Path,
    throttle: sockit_runtime::throttle::ThrottleConfig,
) -> Arc<sockit_accounts::Accounts> {
    sockit_accounts::Accounts::open_with(
        &state_dir.join("accounts.db"),
        sockit_accounts::AccountsConfig {
            cost: sockit_accounts::HashCost::TEST,
            throttle: Arc::new(sockit_runtime::throttle::LoginThrottle::new(throttle)),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A python3 command (the interop tests need it), or a failure naming its package.
pub fn python3() -> std::process::Command {
    std::process::Command::new(sockit_testkit::peer::require("python3", "python3"))
}

/// The directory of this crate's test scripts.
pub fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scripts")
}
