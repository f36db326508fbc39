//! Which command takes which option: client options (`--server`, `--tls`, `--ca`,
//! `--fingerprint`, `--known-hosts`, `--key`) are listed by the client commands only, work
//! before or after the command's name, and are refused with a clear message before a
//! command that does not take them.

use std::time::Duration;

use crate::common::{sockit, SOCKIT};
use sockit_testkit::process::{run, stderr, stdout};
use sockit_testkit::serve::Serve;

const LIMIT: Duration = Duration::from_secs(30);

fn help(args: &[&str]) -> String {
    let o = run(sockit().args(args).arg("--help"), b"", LIMIT);
    assert!(o.status.success(), "{o:?}");
    stdout(&o)
}

#[test]
fn serve_and_lab_help_list_no_client_options() {
    let serve = help(&["serve"]);
    for flag in ["--server", "--fingerprint", "--ca ", "--known-hosts"] {
        assert!(!serve.contains(flag), "serve --help lists {flag}:\n{serve}");
    }
    // serve has its own --tls and takes the shared --key.
    assert!(
        serve.contains("--tls-cert") && serve.contains("--key <FILE>"),
        "{serve}"
    );
    let lab = help(&["lab"]);
    for flag in ["--server", "--fingerprint", "--tls", "--key"] {
        assert!(!lab.contains(flag), "lab --help lists {flag}:\n{lab}");
    }
    let top = help(&[]);
    assert!(!top.contains("--fingerprint"), "{top}");
}

#[test]
fn client_commands_list_the_options_they_take() {
    let ls = help(&["ls"]);
    for flag in ["--server", "--tls", "--fingerprint", "--key"] {
        assert!(ls.contains(flag), "ls --help lacks {flag}:\n{ls}");
    }
    // UDP and plain-text clients take --server but nothing about TLS or keys.
    for cmd in [&["echo"][..], &["tftp", "get"]] {
        let text = help(cmd);
        assert!(
            text.contains("--server"),
            "{cmd:?} --help lacks --server:\n{text}"
        );
        assert!(
            !text.contains("--tls") && !text.contains("--key"),
            "{cmd:?}:\n{text}"
        );
    }
}

#[test]
fn a_client_option_before_a_server_command_is_a_usage_error() {
    let o = run(sockit().args(["--tls", "serve"]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains("`--tls` is a client option, not one of `sockit serve`"),
        "{}",
        stderr(&o)
    );
    let o = run(
        sockit().args(["ls", "--fingerprint", "SHA256:x"]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains("`--fingerprint` needs `--tls`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn server_works_before_or_after_the_command_and_beats_the_environment() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let addr = s.addr("framed", "tcp");
    // A dead address in the environment: the flag, wherever it stands, must win.
    let dead = "127.0.0.1:1";
    for args in [["--server", &addr, "ping"], ["ping", "--server", &addr]] {
        let o = run(sockit().env("SOCKIT_SERVER", dead).args(args), b"", LIMIT);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let o = run(sockit().env("SOCKIT_SERVER", &addr).arg("ping"), b"", LIMIT);
    assert!(o.status.success(), "SOCKIT_SERVER alone: {}", stderr(&o));
}
