//! kosync (koreader-sync-server) compatibility: the request/response table, errors
//! included, and the document id checked against an independent partial-MD5 port.

use crate::common;

use common::{python3, scripts, Server};
use serde_json::{json, Value};
use sockit_reader::demo;

fn call(
    s: &Server,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> (u16, Value) {
    let mut h: Vec<(&str, &str)> = vec![
        ("Accept", "application/vnd.koreader.v1+json"),
        ("Content-Type", "application/json"),
    ];
    if let Some((u, k)) = auth {
        h.push(("x-auth-user", u));
        h.push(("x-auth-key", k));
    }
    let r = s.req(method, path, &h, body.as_bytes());
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: not JSON: {:?}",
            String::from_utf8_lossy(&r.body)
        )
    });
    (r.status, v)
}

/// method, path, credentials, body, expected status, expected JSON.
type Row<'a> = (
    &'a str,
    String,
    Option<(&'a str, &'a str)>,
    String,
    u16,
    Option<Value>,
);

fn err(code: u32, message: &str) -> Value {
    json!({"code": code, "message": message})
}

#[test]
fn kosync_request_response_table() {
    let s = Server::start(&[("a.txt", b"hello\n".to_vec())]);
    let key = sockit_reader::md5_hex(b"secret");
    let alice = Some(("alice", key.as_str()));
    let wrong = Some(("alice", "0000"));
    let doc = "0123456789abcdef0123456789abcdef";
    let progress = "/body/DocFragment[20]/body/p[22]/img.0";
    let table: Vec<Row> = vec![
        (
            "GET",
            "/healthcheck".into(),
            None,
            String::new(),
            200,
            Some(json!({"state": "OK"})),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            "{}".into(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            "not json".into(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            r#"{"username":"a:b","password":"x"}"#.into(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            r#"{"username":"alice","password":""}"#.into(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            json!({"username": "alice", "password": key}).to_string(),
            201,
            Some(json!({"username": "alice"})),
        ),
        (
            "POST",
            "/users/create".into(),
            None,
            json!({"username": "alice", "password": "x"}).to_string(),
            402,
            Some(err(2002, "Username is already registered.")),
        ),
        (
            "GET",
            "/users/auth".into(),
            None,
            String::new(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "GET",
            "/users/auth".into(),
            wrong,
            String::new(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "GET",
            "/users/auth".into(),
            Some(("nobody", "x")),
            String::new(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "GET",
            "/users/auth".into(),
            alice,
            String::new(),
            200,
            Some(json!({"authorized": "OK"})),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            None,
            json!({"document": doc}).to_string(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            wrong,
            json!({"document": doc}).to_string(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            alice,
            json!({"progress": "1", "percentage": 0.1, "device": "d"}).to_string(),
            403,
            Some(err(2004, "Field 'document' not provided.")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            alice,
            json!({"document": "a:b", "progress": "1", "percentage": 0.1, "device": "d"})
                .to_string(),
            403,
            Some(err(2004, "Field 'document' not provided.")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            alice,
            json!({"document": doc, "percentage": 0.1, "device": "d"}).to_string(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            alice,
            json!({"document": doc, "progress": "1", "percentage": "many", "device": "d"})
                .to_string(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "PUT",
            "/syncs/progress".into(),
            alice,
            json!({"document": doc, "progress": "1", "percentage": 0.1}).to_string(),
            403,
            Some(err(2003, "Invalid request")),
        ),
        (
            "GET",
            format!("/syncs/progress/{doc}"),
            None,
            String::new(),
            401,
            Some(err(2001, "Unauthorized")),
        ),
        (
            "GET",
            format!("/syncs/progress/{doc}"),
            alice,
            String::new(),
            200,
            Some(json!({})),
        ),
        (
            "GET",
            "/syncs/progress/a:b".into(),
            alice,
            String::new(),
            403,
            Some(err(2004, "Field 'document' not provided.")),
        ),
    ];
    for (method, path, auth, body, status, expect) in &table {
        let (got_status, got) = call(&s, method, path, *auth, body);
        assert_eq!(got_status, *status, "{method} {path} {body}: {got}");
        if let Some(e) = expect {
            assert_eq!(&got, e, "{method} {path} {body}");
        }
    }

    // A write, then the read returns it byte for byte with the server's timestamp.
    let before = chrono::Utc::now().timestamp();
    let (st, put) = call(&s, "PUT", "/syncs/progress", alice, &json!({"document": doc, "progress": progress, "percentage": 0.3125, "device": "kobo", "device_id": "ABC123"}).to_string());
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["document"], doc);
    let ts = put["timestamp"].as_i64().unwrap();
    assert!(ts >= before && ts <= chrono::Utc::now().timestamp() + 1);
    assert_eq!(put.as_object().unwrap().len(), 2, "{put}");
    let (st, got) = call(&s, "GET", &format!("/syncs/progress/{doc}"), alice, "");
    assert_eq!(st, 200);
    assert_eq!(
        got,
        json!({"percentage": 0.3125, "progress": progress, "device": "kobo", "device_id": "ABC123", "timestamp": ts, "document": doc})
    );

    // A numeric string percentage is accepted (the reference server uses tonumber()).
    let (st, _) = call(
        &s,
        "PUT",
        "/syncs/progress",
        alice,
        &json!({"document": doc, "progress": "p2", "percentage": "0.5", "device": "kobo"})
            .to_string(),
    );
    assert_eq!(st, 200);
    let (_, got) = call(&s, "GET", &format!("/syncs/progress/{doc}"), alice, "");
    assert_eq!(
        (got["progress"].as_str(), got["percentage"].as_f64()),
        (Some("p2"), Some(0.5))
    );
    assert!(got.get("device_id").is_none(), "{got}");

    // Positions are per user.
    let bob_key = sockit_reader::md5_hex(b"pw");
    assert_eq!(
        call(
            &s,
            "POST",
            "/users/create",
            None,
            &json!({"username": "bob", "password": bob_key}).to_string()
        )
        .0,
        201
    );
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("/syncs/progress/{doc}"),
            Some(("bob", &bob_key)),
            ""
        )
        .1,
        json!({})
    );
}

#[test]
fn kosync_registration_can_be_closed() {
    let s = Server::start_with(&[("a.txt", b"hello\n".to_vec())], |c| {
        c.allow_registration = false
    });
    let (st, v) = call(
        &s,
        "POST",
        "/users/create",
        None,
        r#"{"username":"u","password":"p"}"#,
    );
    assert_eq!((st, v), (402, err(2005, "User registration is disabled.")));
}

#[test]
fn interop_python3_partial_md5_matches_koreader_port_and_web_ui_shares_positions() {
    // A file large enough to reach several of KOReader's sample offsets.
    let big = demo::sample_english(4000).into_bytes();
    assert!(big.len() > 1 << 20);
    let pdf = demo::make_pdf("P", "A", 3, &["x"]);
    let s = Server::start(&[
        ("big.txt", big),
        ("p.pdf", pdf),
        ("tiny.txt", b"x\n".to_vec()),
    ]);
    for name in ["big.txt", "p.pdf", "tiny.txt"] {
        let out = python3()
            .arg(scripts().join("koreader_partial_md5.py"))
            .arg(s.books.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(
            s.lib.book_by_path(name).unwrap().partial_md5,
            theirs,
            "{name}"
        );
    }
    // The web UI writes the position KOReader reads (document id = partial MD5).
    let key = sockit_reader::md5_hex(b"pw");
    assert_eq!(
        call(
            &s,
            "POST",
            "/users/create",
            None,
            &json!({"username": "carol", "password": key}).to_string()
        )
        .0,
        201
    );
    let id = s.id("p.pdf");
    let r = s.req(
        "PUT",
        &format!("/api/books/{id}/progress"),
        &[
            ("x-auth-user", "carol"),
            ("x-auth-key", &key),
            ("content-type", "application/json"),
        ],
        br#"{"page":2}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let doc = s.lib.book_by_path("p.pdf").unwrap().partial_md5;
    let (st, got) = call(
        &s,
        "GET",
        &format!("/syncs/progress/{doc}"),
        Some(("carol", &key)),
        "",
    );
    assert_eq!(st, 200);
    assert_eq!(got["progress"], "2");
    // And a KOReader write is what the web UI restores.
    call(
        &s,
        "PUT",
        "/syncs/progress",
        Some(("carol", &key)),
        &json!({"document": doc, "progress": "3", "percentage": 1.0, "device": "kindle"})
            .to_string(),
    );
    let r = s.req(
        "GET",
        &format!("/api/books/{id}/progress"),
        &[("x-auth-user", "carol"), ("x-auth-key", &key)],
        b"",
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["page"], 3);
}
