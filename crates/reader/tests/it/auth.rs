//! The reader's one auth policy, over real HTTP on loopback: once a login is required
//! (the server asks for it, or an account exists) every route refuses a request without
//! credentials, and accepts HTTP Basic, kosync headers and the web UI's session cookie;
//! secrets are stored as argon2id hashes only (clear keys of older catalogs are moved
//! in); failed logins back off per source IP and per account (429 + Retry-After).

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use common::{test_accounts, Server};
use sockit_reader::client::{parse_response, Response};
use sockit_reader::md5_hex;
use sockit_runtime::throttle::ThrottleConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PDF: &str = "Socket Programming Notes.pdf";
const TXT: &str = "alice.txt";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One request from the source address `from` (any 127.0.0.0/8 address), `Connection:
/// close`, read to the end.
fn raw(
    s: &Server,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let (addr, from): (SocketAddr, IpAddr) = (s.http, from.parse().unwrap());
    s.rt.block_on(async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        let mut c = sock.connect(addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        c.write_all(body).await.unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).await.unwrap();
        parse_response(&buf, method == "HEAD").unwrap()
    })
}

fn require_auth(c: &mut sockit_reader::ReaderConfig) {
    c.demo = true;
    c.require_auth = true;
}

/// Logs in through the form; the session cookie (`name=value`).
fn login_cookie(s: &Server, user: &str, password: &str) -> String {
    let form = format!("username={user}&password={password}&action=login");
    let r = s.req(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some("/"));
    let set = r.header("set-cookie").expect("a session cookie").to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

/// Every route of the reader: method, path, body, the status an authenticated caller gets.
fn routes(s: &Server) -> Vec<(&'static str, String, String, u16)> {
    let pdf = s.id(PDF);
    let txt = s.id(TXT);
    let doc = "0123456789abcdef0123456789abcdef";
    vec![
        ("GET", "/".into(), String::new(), 200),
        ("GET", "/assets/app.js".into(), String::new(), 200),
        ("GET", "/assets/app.css".into(), String::new(), 200),
        ("GET", "/api/books".into(), String::new(), 200),
        ("GET", "/api/books?q=alice".into(), String::new(), 200),
        ("GET", format!("/api/books/{txt}"), String::new(), 200),
        ("GET", format!("/api/books/{txt}/file"), String::new(), 200),
        ("GET", format!("/api/books/{pdf}/file"), String::new(), 200),
        ("GET", format!("/api/books/{pdf}/cover"), String::new(), 200),
        (
            "GET",
            format!("/api/books/{pdf}/cover?w=100"),
            String::new(),
            200,
        ),
        (
            "GET",
            format!("/api/books/{pdf}/page/1"),
            String::new(),
            200,
        ),
        (
            "GET",
            format!("/api/books/{txt}/text/1"),
            String::new(),
            200,
        ),
        (
            "GET",
            format!("/api/books/{pdf}/pdftext/1"),
            String::new(),
            200,
        ),
        (
            "GET",
            format!("/api/books/{txt}/progress"),
            String::new(),
            200,
        ),
        (
            "PUT",
            format!("/api/books/{txt}/progress"),
            r#"{"page":1}"#.into(),
            200,
        ),
        ("GET", "/api/me".into(), String::new(), 200),
        ("GET", format!("/books/{TXT}"), String::new(), 200),
        ("GET", "/books/alice.jpg".into(), String::new(), 200),
        (
            "GET",
            "/books/Socket%20Programming%20Notes.pdf".into(),
            String::new(),
            200,
        ),
        ("GET", "/opds".into(), String::new(), 200),
        ("GET", "/opds/all".into(), String::new(), 200),
        ("GET", "/opds/recent".into(), String::new(), 200),
        ("GET", "/opds/search?q=alice".into(), String::new(), 200),
        ("GET", "/opds/opensearch.xml".into(), String::new(), 200),
        ("GET", format!("/opds/pse/{pdf}/0"), String::new(), 200),
        ("GET", "/users/auth".into(), String::new(), 200),
        (
            "PUT",
            "/syncs/progress".into(),
            format!(r#"{{"document":"{doc}","progress":"p","percentage":0.5,"device":"d"}}"#),
            200,
        ),
        ("GET", format!("/syncs/progress/{doc}"), String::new(), 200),
        ("GET", "/no/such/route".into(), String::new(), 404),
    ]
}

#[test]
fn every_route_refuses_without_credentials_and_accepts_basic_kosync_and_the_cookie() {
    // Many wrong logins follow from one address: a throttle that never backs off here.
    let s = Server::start_with(&[], |c| {
        require_auth(c);
        let lenient = ThrottleConfig {
            free_failures: u32::MAX,
            ..ThrottleConfig::default()
        };
        c.accounts = Some(test_accounts(&c.state_dir, lenient));
    });
    assert!(s.lib.accounts().create("alice", "pw").unwrap());
    let cookie = login_cookie(&s, "alice", "pw");
    let key = md5_hex(b"pw");
    let json = ("content-type", "application/json");
    for (method, path, body, ok) in routes(&s) {
        let what = format!("{method} {path}");
        let b = body.as_bytes();
        // No credentials.
        let r = s.req(method, &path, &[json], b);
        assert_eq!(r.status, 401, "{what} without credentials");
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        if path == "/" || path.starts_with("/assets/") {
            assert!(challenge.starts_with("Form "), "{what}: {challenge}");
            assert!(String::from_utf8_lossy(&r.body).contains("action=\"/login\""));
        } else {
            assert!(
                challenge.starts_with("Basic realm=\"sockit\""),
                "{what}: {challenge}"
            );
        }
        // Wrong credentials, in each form.
        let wrong_basic = basic("alice", "nope");
        for h in [
            vec![json, ("authorization", wrong_basic.as_str())],
            vec![json, ("x-auth-user", "alice"), ("x-auth-key", "0000")],
            vec![json, ("cookie", "sockit_session=forged")],
        ] {
            assert_eq!(s.req(method, &path, &h, b).status, 401, "{what} {h:?}");
        }
        // Good credentials, in each form.
        let good_basic = basic("alice", "pw");
        let good_md5_basic = basic("alice", &key);
        for h in [
            vec![json, ("authorization", good_basic.as_str())],
            vec![json, ("authorization", good_md5_basic.as_str())],
            vec![json, ("x-auth-user", "alice"), ("x-auth-key", key.as_str())],
            vec![json, ("cookie", cookie.as_str())],
        ] {
            let r = s.req(method, &path, &h, b);
            assert_eq!(
                r.status,
                ok,
                "{what} with {h:?}: {}",
                String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
            );
        }
    }
    // The public routes stay public.
    assert_eq!(s.get("/healthcheck").status, 200);
    assert_eq!(s.get("/login").status, 200);
    // Logging out ends the session.
    let r = s.req("POST", "/logout", &[("cookie", &cookie)], b"");
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = s.req("GET", "/api/books", &[("cookie", &cookie)], b"");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate").unwrap().starts_with("Form "),
        "a page script with a stale session is not sent a Basic dialog"
    );
}

#[test]
fn the_first_account_closes_an_open_library() {
    let s = Server::start_with(&[(TXT, b"hello\n".to_vec())], |_| {});
    let id = s.id(TXT);
    let file = format!("/api/books/{id}/file");
    // The course's open library: no accounts, no key.
    assert_eq!(s.get(&file).status, 200);
    assert_eq!(s.get(&format!("/books/{TXT}")).status, 200);
    assert_eq!(s.json("/api/me")["auth_required"], false);
    // Someone registers through kosync (KOReader sends MD5(password)).
    let reg = format!(r#"{{"username":"ko","password":"{}"}}"#, md5_hex(b"pw"));
    let r = s.req("POST", "/users/create", &[], reg.as_bytes());
    assert_eq!(r.status, 201);
    for path in [
        file.clone(),
        format!("/api/books/{id}/text/1"),
        format!("/books/{TXT}"),
        "/opds".into(),
        "/".into(),
    ] {
        assert_eq!(s.get(&path).status, 401, "{path}");
    }
    let b = basic("ko", "pw");
    assert_eq!(
        s.req("GET", &file, &[("authorization", &b)], b"").status,
        200
    );
}

#[test]
fn kosync_registers_and_logs_in_as_koreader_does() {
    let s = Server::start_with(&[], require_auth);
    let key = md5_hex(b"reading");
    let ko = [
        ("accept", "application/vnd.koreader.v1+json"),
        ("content-type", "application/json"),
    ];
    let reg = format!(r#"{{"username":"reader","password":"{key}"}}"#);
    let r = s.req("POST", "/users/create", &ko, reg.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = s.req("POST", "/users/create", &ko, reg.as_bytes());
    assert_eq!(r.status, 402, "taken");
    let mut h = ko.to_vec();
    h.extend([("x-auth-user", "reader"), ("x-auth-key", key.as_str())]);
    assert_eq!(s.req("GET", "/users/auth", &h, b"").status, 200);
    let doc = "00112233445566778899aabbccddeeff";
    let put = format!(
        r#"{{"document":"{doc}","progress":"/body/p[3]","percentage":0.25,"device":"kobo"}}"#
    );
    assert_eq!(
        s.req("PUT", "/syncs/progress", &h, put.as_bytes()).status,
        200
    );
    let r = s.req("GET", &format!("/syncs/progress/{doc}"), &h, b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["progress"], "/body/p[3]");
    // The same account in an OPDS reader and the web UI, with the plain password.
    let b = basic("reader", "reading");
    assert_eq!(
        s.req("GET", "/opds", &[("authorization", &b)], b"").status,
        200
    );
    login_cookie(&s, "reader", "reading");
    // Unauthorized in kosync's own terms.
    let r = s.req("GET", "/users/auth", &ko, b"");
    assert_eq!(r.status, 401);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 2001);
}

#[test]
fn closed_registration_on_an_auth_server() {
    let s = Server::start_with(&[], |c| {
        require_auth(c);
        c.allow_registration = false;
    });
    let r = s.req(
        "POST",
        "/users/create",
        &[],
        br#"{"username":"x","password":"00112233445566778899aabbccddeeff"}"#,
    );
    assert_eq!(r.status, 402);
    let r = s.req(
        "POST",
        "/api/register",
        &[("content-type", "application/json")],
        br#"{"username":"x","password":"pw"}"#,
    );
    assert_eq!(r.status, 403);
    assert!(!s.lib.accounts().any());
    assert!(!String::from_utf8_lossy(&s.get("/login").body).contains("value=\"register\""));
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn stored_secrets_are_argon2id_and_clear_keys_are_migrated() {
    // An older catalog with clear kosync keys and a reading position.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("reader");
    std::fs::create_dir_all(&state).unwrap();
    let old_key = md5_hex(b"old-password");
    let doc = "ffeeddccbbaa99887766554433221100";
    {
        let c = sockit_reader::catalog::open(&state.join("catalog.db")).unwrap();
        c.execute(
            "INSERT INTO users(username, key, created) VALUES ('old', ?1, 0), ('plain', 'clear-secret', 0)",
            [&old_key],
        )
        .unwrap();
        c.execute(
            "INSERT INTO progress(username, document, progress, percentage, device, timestamp) \
             VALUES ('old', ?1, '/body/p[9]', 0.9, 'kobo', 5)",
            [doc],
        )
        .unwrap();
    }
    let root = dir.path().to_owned();
    let s = Server::start_with(&[], move |c| {
        c.state_dir = state.clone();
        c.books_dir = root.join("books");
        c.accounts = Some(test_accounts(&state, ThrottleConfig::default()));
        c.demo = true;
    });
    let state = s.lib.config().state_dir.clone();
    // New accounts through the web UI (password) and kosync (MD5 key).
    let r = s.req(
        "POST",
        "/api/register",
        &[("content-type", "application/json")],
        br#"{"username":"web","password":"web-password"}"#,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let ko_key = md5_hex(b"ko-password");
    let reg = format!(r#"{{"username":"ko","password":"{ko_key}"}}"#);
    assert_eq!(
        s.req("POST", "/users/create", &[], reg.as_bytes()).status,
        201
    );
    // The old accounts work as before, positions included.
    let h = [("x-auth-user", "old"), ("x-auth-key", old_key.as_str())];
    let r = s.req("GET", &format!("/syncs/progress/{doc}"), &h, b"");
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["progress"], "/body/p[9]");
    let b = basic("old", "old-password");
    assert_eq!(
        s.req("GET", "/opds", &[("authorization", &b)], b"").status,
        200
    );
    let h = [("x-auth-user", "plain"), ("x-auth-key", "clear-secret")];
    assert_eq!(s.req("GET", "/users/auth", &h, b"").status, 200);
    // No secret in any form anywhere in the state: only argon2id PHC strings.
    let bytes = all_bytes(&state);
    for secret in [
        old_key.clone(),
        "old-password".into(),
        "clear-secret".into(),
        md5_hex(b"clear-secret"),
        "web-password".into(),
        md5_hex(b"web-password"),
        ko_key.clone(),
        "ko-password".into(),
    ] {
        assert!(!contains(&bytes, &secret), "{secret} is stored");
    }
    let db = rusqlite::Connection::open(s.lib.accounts().path()).unwrap();
    let mut rows: Vec<(String, String)> = db
        .prepare("SELECT name, secret FROM accounts ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ko", "old", "plain", "web"]);
    for (name, phc) in &rows {
        assert!(phc.starts_with("$argon2id$v=19$"), "{name}: {phc}");
    }
    let left: i64 = s
        .lib
        .with_db(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(left, 0, "clear keys removed from the catalog");
}

fn throttled_server() -> Server {
    Server::start_with(&[], |c| {
        require_auth(c);
        c.accounts = Some(test_accounts(
            &c.state_dir,
            ThrottleConfig {
                free_failures: 3,
                base: Duration::from_secs(60),
                max: Duration::from_secs(600),
                max_entries: 1000,
            },
        ));
    })
}

/// Sends `attempt` until it is answered 429 (at most `free + 2` times); every earlier
/// answer must be a 401. Returns the 429.
fn until_throttled(free: usize, mut attempt: impl FnMut(usize) -> Response) -> Response {
    for i in 0..free + 2 {
        let r = attempt(i);
        if i < free {
            assert_eq!(r.status, 401, "free failure {i}");
        } else if r.status == 429 {
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!(retry >= 1);
            return r;
        } else {
            assert_eq!(r.status, 401, "attempt {i}");
        }
    }
    panic!("never throttled after {} failures", free + 2);
}

#[test]
fn brute_force_backs_off_per_account() {
    let s = throttled_server();
    s.lib.accounts().create("alice", "right").unwrap();
    s.lib.accounts().create("bob", "right").unwrap();
    // Wrong Basic passwords for alice, each from its own address.
    until_throttled(3, |i| {
        let b = basic("alice", &format!("guess{i}"));
        raw(
            &s,
            &format!("127.0.1.{}", i + 1),
            "GET",
            "/opds",
            &[("authorization", &b)],
            b"",
        )
    });
    // Now alice is backing off from anywhere, even with the right password...
    let b = basic("alice", "right");
    let r = raw(
        &s,
        "127.0.2.1",
        "GET",
        "/opds",
        &[("authorization", &b)],
        b"",
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let h = [("x-auth-user", "alice"), ("x-auth-key", "0000")];
    assert_eq!(
        raw(&s, "127.0.2.2", "GET", "/users/auth", &h, b"").status,
        429
    );
    let form = b"username=alice&password=right&action=login";
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(
        raw(&s, "127.0.2.3", "POST", "/login", &ct, form).status,
        429
    );
    // ...while bob is not.
    let b = basic("bob", "right");
    assert_eq!(
        raw(
            &s,
            "127.0.2.4",
            "GET",
            "/opds",
            &[("authorization", &b)],
            b""
        )
        .status,
        200
    );
}

#[test]
fn brute_force_backs_off_per_source_ip() {
    let s = throttled_server();
    s.lib.accounts().create("bob", "right").unwrap();
    // One address tries many names with kosync keys.
    let r = until_throttled(3, |i| {
        let user = format!("user{i}");
        let h = [
            ("x-auth-user", user.as_str()),
            ("x-auth-key", "00112233445566778899aabbccddeeff"),
        ];
        raw(&s, "127.0.3.1", "GET", "/users/auth", &h, b"")
    });
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("retry after"),
        "{v}"
    );
    // That address is refused even with bob's right password; another is not.
    let b = basic("bob", "right");
    let r = raw(
        &s,
        "127.0.3.1",
        "GET",
        "/api/books",
        &[("authorization", &b)],
        b"",
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let json = [("content-type", "application/json")];
    let r = raw(
        &s,
        "127.0.3.1",
        "POST",
        "/api/login",
        &json,
        br#"{"username":"bob","password":"right"}"#,
    );
    assert_eq!(r.status, 429);
    assert_eq!(
        raw(
            &s,
            "127.0.3.2",
            "GET",
            "/api/books",
            &[("authorization", &b)],
            b""
        )
        .status,
        200
    );
}

#[test]
fn json_login_sets_the_cookie_the_web_ui_uses() {
    let s = Server::start_with(&[], require_auth);
    s.lib.accounts().create("alice", "pw").unwrap();
    let json = [("content-type", "application/json")];
    let r = s.req(
        "POST",
        "/api/login",
        &json,
        br#"{"username":"alice","password":"no"}"#,
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "POST",
        "/api/login",
        &json,
        br#"{"username":"alice","password":"pw"}"#,
    );
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"username": "alice"}),
        "no key handed to the page"
    );
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = s.req("GET", "/api/me", &[("cookie", &cookie)], b"");
    let me: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["auth_required"], true);
    // Positions follow the account.
    let id = s.id(TXT);
    let path = format!("/api/books/{id}/progress");
    let h = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
    ];
    assert_eq!(s.req("PUT", &path, &h, br#"{"page":2}"#).status, 200);
    let b = basic("alice", "pw");
    let r = s.req("GET", &path, &[("authorization", &b)], b"");
    let p: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(p["page"], 2);
    // A removed account's session ends.
    s.lib.accounts().remove("alice").unwrap();
    s.lib.accounts().create("other", "x").unwrap();
    assert_eq!(
        s.req("GET", "/api/me", &[("cookie", &cookie)], b"").status,
        401
    );
}
