//! The frames of an `exec` exchange, used by the server ([`register`](crate::register))
//! and the client ([`crate::client`]); these types are the schema of exec's part of the
//! framed protocol (`docs/exec.md` shows them on the wire). The request and the exit frame
//! are checked into [`ExecRequest`](crate::ExecRequest) and
//! [`ExitFrame`](crate::ExitFrame).

use serde::{Deserialize, Serialize};
use sockit_wire::header::{null_as_default, or_none, Message};

pub use crate::request::{ContainmentPath, Stream};

/// `{"cmd":"exec","argv":[...],"stdin":true,"timeout_ms":5000}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Whether `stdin` frames follow (absent or `null`: no).
    #[serde(default, deserialize_with = "null_as_default")]
    pub stdin: bool,
    /// The client's own time limit, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Message for Exec {
    const CMD: Option<&'static str> = Some("exec");
}

/// `{"status":"ok","cmd":"started","pid":1234}`: the command runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The child's process id on the server (0 when unknown).
    #[serde(default)]
    pub pid: u32,
}

impl Message for Started {
    const CMD: Option<&'static str> = Some("started");
}

/// `{"cmd":"stdout"|"stderr","size":n}` + n bytes of the child's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Which stream the bytes come from.
    pub cmd: Stream,
    /// The body length.
    #[serde(default)]
    pub size: u64,
}

impl Message for Output {
    // `cmd` is the field `cmd`: stdout or stderr.
    const CMD: Option<&'static str> = None;
}

/// `{"cmd":"stdin","size":n}` + n bytes for the child's stdin; `size: 0` is its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stdin {
    /// The body length.
    #[serde(default)]
    pub size: u64,
}

impl Message for Stdin {
    const CMD: Option<&'static str> = Some("stdin");
}

/// `{"cmd":"keepalive"}`: the client is still there (sent while the command is quiet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keepalive {}

impl Message for Keepalive {
    const CMD: Option<&'static str> = Some("keepalive");
}

/// `{"status":"ok","cmd":"exit","code" | "signal","signal_name"?,"reason"?,"message"?,
/// "containment"?}`: the last frame of a run. Read totally: a field of the wrong type
/// reads as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code, when the command exited.
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<i64>,
    /// The signal that killed it, when it was killed.
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub signal: Option<i64>,
    /// The signal's name, `SIGKILL`.
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub signal_name: Option<String>,
    /// Why the server killed it: `timeout` or `output_cap`.
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// The server's explanation of `reason`.
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
    /// Which containment held the run's processes (absent from older servers).
    #[serde(
        default,
        deserialize_with = "or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub containment: Option<ContainmentPath>,
}

impl Message for Exit {
    const CMD: Option<&'static str> = Some("exit");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit_wire::Header;

    use sockit_testkit::messages::{header, roundtrip, text};

    #[test]
    fn every_message_roundtrips() {
        roundtrip(Exec {
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            stdin: true,
            timeout_ms: Some(5000),
        });
        roundtrip(Started { pid: 1234 });
        roundtrip(Output {
            cmd: Stream::Stdout,
            size: 3,
        });
        roundtrip(Output {
            cmd: Stream::Stderr,
            size: 0,
        });
        roundtrip(Stdin { size: 7 });
        roundtrip(Keepalive {});
        roundtrip(Exit {
            code: Some(0),
            containment: Some(ContainmentPath::Cgroup),
            ..Exit::default()
        });
        roundtrip(Exit {
            signal: Some(9),
            signal_name: Some("SIGKILL".into()),
            reason: Some("timeout".into()),
            message: Some("killed after the time limit".into()),
            containment: Some(ContainmentPath::Subreaper),
            ..Exit::default()
        });
    }

    /// The frames as they were sent before the types existed, byte for byte.
    #[test]
    fn frames_on_the_wire() {
        let exec = Exec {
            argv: vec!["true".into()],
            stdin: false,
            timeout_ms: None,
        };
        assert_eq!(
            text(&Header::encode(&exec).unwrap()),
            r#"{"argv":["true"],"cmd":"exec","stdin":false}"#
        );
        assert_eq!(
            text(&Header::reply(&Started { pid: 5 }).unwrap()),
            r#"{"cmd":"started","pid":5,"status":"ok"}"#
        );
        let out = Output {
            cmd: Stream::Stderr,
            size: 2,
        };
        assert_eq!(
            text(&Header::encode(&out).unwrap()),
            r#"{"cmd":"stderr","size":2}"#
        );
        assert_eq!(
            text(&Header::encode(&Stdin { size: 0 }).unwrap()),
            r#"{"cmd":"stdin","size":0}"#
        );
        assert_eq!(
            text(&Header::encode(&Keepalive {}).unwrap()),
            r#"{"cmd":"keepalive"}"#
        );
        let exit = Exit {
            code: Some(0),
            containment: Some(ContainmentPath::Cgroup),
            ..Exit::default()
        };
        assert_eq!(
            text(&Header::reply(&exit).unwrap()),
            r#"{"cmd":"exit","code":0,"containment":"cgroup","status":"ok"}"#
        );
    }

    /// The examples of docs/exec.md read as their types.
    #[test]
    fn exec_doc_examples_parse() {
        let r: Exec = header(
            r#"{"cmd":"exec","argv":["sh","-c","..."],
                "stdin":true,"timeout_ms":5000}"#,
        )
        .decode()
        .unwrap();
        assert_eq!((r.argv.len(), r.stdin, r.timeout_ms), (3, true, Some(5000)));
        let r: Started = header(r#"{"status":"ok","cmd":"started","pid":1234}"#)
            .decode()
            .unwrap();
        assert_eq!(r.pid, 1234);
        header(r#"{"cmd":"stdin","size":5}"#)
            .decode::<Stdin>()
            .unwrap();
        let r: Output = header(r#"{"cmd":"stdout","size":5}"#).decode().unwrap();
        assert_eq!(r.cmd, Stream::Stdout);
        let r: Output = header(r#"{"cmd":"stderr","size":5}"#).decode().unwrap();
        assert_eq!(r.cmd, Stream::Stderr);
        header(r#"{"cmd":"keepalive"}"#)
            .decode::<Keepalive>()
            .unwrap();
        let r: Exit = header(r#"{"status":"ok","cmd":"exit","code":0,"containment":"cgroup"}"#)
            .decode()
            .unwrap();
        assert_eq!(r.code, Some(0));
        let r: Exit = header(
            r#"{"status":"ok","cmd":"exit","signal":9,
                "signal_name":"SIGKILL",
                "reason":"timeout",
                "message":"...","containment":"subreaper"}"#,
        )
        .decode()
        .unwrap();
        assert_eq!(
            (r.signal, r.reason.as_deref(), r.containment),
            (Some(9), Some("timeout"), Some(ContainmentPath::Subreaper))
        );
        assert!(header(r#"{"cmd":"stdin","size":5}"#)
            .decode::<Output>()
            .is_err());
    }

    #[test]
    fn exit_is_read_totally() {
        let r: Exit = header(r#"{"cmd":"exit","signal":"nine","containment":"jail","code":[]}"#)
            .decode()
            .unwrap();
        assert_eq!(r, Exit::default());
    }
}
