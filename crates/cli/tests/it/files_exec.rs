//! The real binary: file commands, the Python course upload client, a client killed
//! mid-upload, and exec.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    data,
    net::host_port,
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn framed(s: &Serve) -> String {
    s.addr("framed", "tcp")
}

#[test]
fn python_course_upload_client_stores_its_file() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let (host, port) = host_port(&framed(&s));
    let src = s.path("course.txt");
    let content = data::bytes(200_000, 4);
    std::fs::write(&src, &content).unwrap();
    // The course's MYTCPClient.put, unmodified apart from being called directly.
    let script = r#"
import socket, struct, json, os, sys

class MYTCPClient:
    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    allow_reuse_address = False
    max_packet_size = 8192
    coding = 'utf-8'
    request_queue_size = 5

    def __init__(self, server_address, connect=True):
        self.server_address = server_address
        self.socket = socket.socket(self.address_family, self.socket_type)
        if connect:
            try:
                self.client_connect()
            except:
                self.client_close()
                raise

    def client_connect(self):
        self.socket.connect(self.server_address)

    def client_close(self):
        self.socket.close()

    def put(self, args):
        cmd = args[0]
        filename = args[1]
        if not os.path.isfile(filename):
            print('file:%s is not exists' % filename)
            return
        else:
            filesize = os.path.getsize(filename)
        head_dic = {'cmd': cmd, 'filename': os.path.basename(filename), 'filesize': filesize}
        print(head_dic)
        head_json = json.dumps(head_dic)
        head_json_bytes = bytes(head_json, encoding=self.coding)
        head_struct = struct.pack('i', len(head_json_bytes))
        self.socket.send(head_struct)
        self.socket.send(head_json_bytes)
        send_size = 0
        with open(filename, 'rb') as f:
            for line in f:
                self.socket.send(line)
                send_size += len(line)
            else:
                print('upload successful')

client = MYTCPClient((sys.argv[1], int(sys.argv[2])))
client.put(['put', sys.argv[3]])
client.client_close()
"#;
    let py = s.path("client.py");
    std::fs::write(&py, script).unwrap();
    let out = run(
        std::process::Command::new(peer::require("python3", "python3"))
            .arg(&py)
            .arg(&host)
            .arg(&port)
            .arg(&src),
        b"",
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("upload successful"));
    let stored = s.dir.path().join("root/files/course.txt");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stored.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(&stored).unwrap(), content);
}

/// Forwards one connection, but only the first `limit` bytes client→server; then holds the
/// connection open (a stalled upload). Sends on `reached` once the limit is forwarded.
fn stalling_proxy(upstream: String, limit: usize) -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(upstream).unwrap();
        let mut back_from = server.try_clone().unwrap();
        let mut back_to = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut back_from, &mut back_to);
        });
        let mut buf = vec![0u8; 65536];
        let mut moved = 0;
        while moved < limit {
            let n = match client.read(&mut buf[..(limit - moved).min(65536)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
            moved += n;
        }
        let _ = tx.send(());
        // Hold both sockets until the client dies, then close.
        let _ = client.read(&mut buf);
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        // The clone held by the copy thread keeps the descriptor open: shut it down.
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    (addr, rx)
}

#[test]
fn client_killed_mid_upload_leaves_no_visible_file_and_resume_finishes() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let src = s.path("big.bin");
    let content = data::bytes(6 << 20, 5);
    std::fs::write(&src, &content).unwrap();
    let (proxy, reached) = stalling_proxy(framed(&s), 2 << 20);
    let mut child = sockit()
        .args(["--server", &proxy, "put"])
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    reached.recv_timeout(LIMIT).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let root = s.dir.path().join("root/files");
    // Whatever the server is doing with the staged bytes, the name never appears.
    let ls = run(
        sockit().args(["--server", &framed(&s), "--json", "ls"]),
        b"",
        LIMIT,
    );
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert_eq!(stdout(&ls).trim(), "[]");
    assert!(!root.join("big.bin").exists());
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The staged bytes live in the state directory, out of every served tree.
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("root/state/staging"))
            .unwrap()
            .count(),
        1
    );
    // The upload is staged, and resumes byte-exact once the server noticed the client left.
    let deadline = Instant::now() + LIMIT;
    loop {
        let st = run(
            sockit().args(["--server", &framed(&s), "--json", "stat", "big.bin"]),
            b"",
            LIMIT,
        );
        let v: serde_json::Value = serde_json::from_str(stdout(&st).trim()).unwrap_or_default();
        if v["kind"] == "partial" && v.get("uploading").is_none() {
            assert!(v["partial"].as_u64().unwrap() > 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upload never released: {}",
            stdout(&st)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let put = run(
        sockit()
            .args(["--server", &framed(&s), "--json", "put", "--resume"])
            .arg(&src),
        b"",
        LIMIT,
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let v: serde_json::Value = serde_json::from_str(stdout(&put).trim()).unwrap();
    assert!(v["resumed_from"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), content);
}

#[test]
fn put_get_trees_and_ls_json_through_the_cli() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let a = framed(&s);
    let tree = s.path("tree");
    std::fs::create_dir_all(tree.join("sub/deep")).unwrap();
    std::fs::write(tree.join("one.txt"), b"one").unwrap();
    std::fs::write(tree.join("sub/deep/two.bin"), data::bytes(70_000, 2)).unwrap();
    let put = run(
        sockit()
            .args(["--server", &a, "put", "-r"])
            .arg(&tree)
            .arg("copy"),
        b"",
        LIMIT,
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let ls = run(
        sockit().args(["--server", &a, "--json", "ls", "copy/sub/deep"]),
        b"",
        LIMIT,
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&ls).trim()).unwrap();
    assert_eq!(v[0]["name"], "two.bin");
    assert_eq!(v[0]["size"], 70_000);
    let back = s.path("back");
    let get = run(
        sockit()
            .args(["--server", &a, "get", "-r", "copy"])
            .arg(&back),
        b"",
        LIMIT,
    );
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        std::fs::read(back.join("sub/deep/two.bin")).unwrap(),
        data::bytes(70_000, 2)
    );
    assert_eq!(std::fs::read(back.join("one.txt")).unwrap(), b"one");
    // A second plain put of the same file is refused with `exists` (exit 1)...
    let again = run(
        sockit()
            .args(["--server", &a, "put"])
            .arg(tree.join("one.txt"))
            .arg("copy/one.txt"),
        b"",
        LIMIT,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    // ...and traversal is denied.
    let evil = run(
        sockit()
            .args(["--server", &a, "get", "../addrs.json"])
            .arg(s.path("x")),
        b"",
        LIMIT,
    );
    assert_eq!(evil.status.code(), Some(1));
    assert!(stderr(&evil).contains("denied"), "{}", stderr(&evil));
}

#[test]
fn allow_exec_without_key_refuses_to_start() {
    let out = run(
        sockit().args(["serve", "--port", "all=0", "--allow-exec"]),
        b"",
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--allow-exec without --key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_streams_forwards_stdin_and_exits_with_remote_code() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let kg = run(sockit().arg("keygen").arg(&key), b"", LIMIT);
    assert!(kg.status.success());
    let key = key.to_str().unwrap().to_owned();
    let s = Serve::start(SOCKIT, &["--only", "framed", "--allow-exec", "--key", &key]);
    let a = framed(&s);
    let out = run(
        sockit().args([
            "--server",
            &a,
            "--key",
            &key,
            "exec",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; echo oops >&2; exit 42",
        ]),
        b"hello exec\n",
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert_eq!(stdout(&out), "HELLO EXEC\n");
    assert!(stderr(&out).contains("oops"));
    // Without the key the client cannot even connect; with a server lacking --allow-exec it is denied.
    let s2 = Serve::start(SOCKIT, &["--only", "framed", "--key", &key]);
    let denied = run(
        sockit().args([
            "--server",
            &framed(&s2),
            "--key",
            &key,
            "exec",
            "-n",
            "--",
            "true",
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(denied.status.code(), Some(1));
    assert!(stderr(&denied).contains("denied"), "{}", stderr(&denied));
}
