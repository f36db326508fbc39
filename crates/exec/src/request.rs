//! The checked `exec` request and exit status, read from and written as the frames of
//! [`crate::messages`] (pure, no I/O).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockit_wire::header::MessageError;
use sockit_wire::Header;

use crate::messages::{Exec, Exit};

/// Most arguments in one `argv`.
pub const MAX_ARGS: usize = 4096;

/// A parsed `exec` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments (no shell: `argv[0]` is looked up in `PATH`).
    pub argv: Vec<String>,
    /// Whether the client will send `stdin` frames (otherwise the child's stdin is empty).
    pub stdin: bool,
    /// The client's own time limit (the server's `--exec-timeout` still caps it).
    pub timeout: Option<Duration>,
}

/// Why an `exec` request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The header is not an [`Exec`] frame: `argv` missing or not strings, `stdin` not a
    /// boolean, `timeout_ms` not an integer (the message names the key).
    #[error(transparent)]
    Malformed(#[from] MessageError),
    /// `argv` empty, too long, or with an empty program name.
    #[error("`argv` must be a non-empty array of at most {MAX_ARGS} strings")]
    Argv,
    /// An argument holds NUL (it cannot be passed to a program).
    #[error("arguments cannot contain NUL bytes")]
    Nul,
    /// `timeout_ms` is 0.
    #[error("`timeout_ms` must be a positive integer")]
    Timeout,
}

impl ExecRequest {
    /// Parses the request header.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub fn parse(req: &Header) -> Result<Self, RequestError> {
        Self::check(req.decode()?)
    }

    /// Checks a decoded [`Exec`] frame.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub fn check(msg: Exec) -> Result<Self, RequestError> {
        let Exec {
            argv,
            stdin,
            timeout_ms,
        } = msg;
        if argv.is_empty() || argv.len() > MAX_ARGS {
            return Err(RequestError::Argv);
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(RequestError::Nul);
        }
        if argv[0].is_empty() {
            return Err(RequestError::Argv);
        }
        let timeout = match timeout_ms {
            None => None,
            Some(0) => return Err(RequestError::Timeout),
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        Ok(Self {
            argv,
            stdin,
            timeout,
        })
    }

    /// The request's frame.
    pub fn to_message(&self) -> Exec {
        Exec {
            argv: self.argv.clone(),
            stdin: self.stdin,
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The request header.
    pub fn to_header(&self) -> Header {
        Header::encode(&self.to_message())
            .unwrap_or_else(|e| unreachable!("an `exec` frame is a JSON object: {e}"))
    }
}

/// Which output stream a frame carries (the frame's `cmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

impl Stream {
    /// The frame's `cmd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// How the processes of a run were contained (the exit frame's `containment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainmentPath {
    /// A cgroup v2 of its own, killed whole with `cgroup.kill`.
    Cgroup,
    /// The server is a child subreaper and tracks every descendant through `/proc`.
    Subreaper,
}

impl ContainmentPath {
    /// The wire name: `cgroup` or `subreaper`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cgroup => "cgroup",
            Self::Subreaper => "subreaper",
        }
    }

    /// Parses a wire name (unknown names are `None`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cgroup" => Some(Self::Cgroup),
            "subreaper" => Some(Self::Subreaper),
            _ => None,
        }
    }
}

impl std::fmt::Display for ContainmentPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by a signal; `reason` is set when the server killed it
    /// (`timeout`, `output_cap`).
    Signal {
        /// The signal number.
        signal: i32,
        /// Why the server killed it, if it did.
        reason: Option<String>,
        /// The server's explanation.
        message: Option<String>,
    },
}

impl RemoteExit {
    /// The exit code a local process should end with: the remote code, 124 for a timeout
    /// (like `timeout(1)`), 128 + N for signal N (like a shell).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Code(c) => u8::try_from(*c & 0xff).unwrap_or(1),
            Self::Signal { reason, .. } if reason.as_deref() == Some("timeout") => 124,
            Self::Signal { signal, .. } => u8::try_from(128 + (*signal & 0x7f)).unwrap_or(1),
        }
    }
}

/// The last frame of a run, `{status:ok, cmd:exit, code | signal, reason?, message?,
/// containment?}`: built by the server, parsed by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitFrame {
    /// How the command ended.
    pub exit: RemoteExit,
    /// Which containment held its processes (absent from older servers).
    pub containment: Option<ContainmentPath>,
}

impl ExitFrame {
    /// The frame's message.
    pub fn to_message(&self) -> Exit {
        let mut msg = Exit {
            containment: self.containment,
            ..Exit::default()
        };
        match &self.exit {
            RemoteExit::Code(code) => msg.code = Some(i64::from(*code)),
            RemoteExit::Signal {
                signal,
                reason,
                message,
            } => {
                msg.signal = Some(i64::from(*signal));
                msg.signal_name = Some(crate::group::signal_name(*signal).to_owned());
                msg.reason = reason.clone();
                msg.message = message.clone();
            }
        }
        msg
    }

    /// Reads the frame's message (total: a missing or odd `signal` reads as SIGKILL).
    pub fn from_message(msg: Exit) -> Self {
        if let Some(code) = msg.code {
            return Self {
                exit: RemoteExit::Code(i32::try_from(code).unwrap_or(1)),
                containment: msg.containment,
            };
        }
        let signal = msg
            .signal
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(libc::SIGKILL);
        Self {
            exit: RemoteExit::Signal {
                signal,
                reason: msg.reason,
                message: msg.message,
            },
            containment: msg.containment,
        }
    }

    /// The frame's header (a reply: `"status":"ok"`).
    pub fn to_header(&self) -> Header {
        Header::reply(&self.to_message())
            .unwrap_or_else(|e| unreachable!("an `exit` frame is a JSON object: {e}"))
    }

    /// Reads an exit frame (total: a missing or odd `signal` reads as SIGKILL, an unknown
    /// `containment` as absent).
    pub fn parse(h: &Header) -> Self {
        Self::from_message(h.parse().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = ExecRequest {
            argv: vec!["echo".into(), "hi".into()],
            stdin: true,
            timeout: Some(Duration::from_millis(1500)),
        };
        assert_eq!(ExecRequest::parse(&r.to_header()), Ok(r));
    }

    #[test]
    fn empty_argv() {
        let h = Header::request("exec").with("argv", Vec::<String>::new());
        assert_eq!(ExecRequest::parse(&h), Err(RequestError::Argv));
        assert!(matches!(
            ExecRequest::parse(&Header::request("exec")),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn non_string_argv() {
        let h = Header::request("exec").with("argv", serde_json::json!(["ls", 3]));
        let e = ExecRequest::parse(&h).unwrap_err();
        assert!(matches!(e, RequestError::Malformed(_)), "{e:?}");
        assert!(e.to_string().contains("`argv`"), "{e}");
    }

    #[test]
    fn nul() {
        let h = Header::request("exec").with("argv", vec!["a\0b"]);
        assert_eq!(ExecRequest::parse(&h), Err(RequestError::Nul));
    }

    #[test]
    fn bad_timeout() {
        let h = Header::request("exec")
            .with("argv", vec!["true"])
            .with("timeout_ms", 0);
        assert_eq!(ExecRequest::parse(&h), Err(RequestError::Timeout));
    }

    #[test]
    fn exit_frame_roundtrip() {
        for frame in [
            ExitFrame {
                exit: RemoteExit::Code(3),
                containment: Some(ContainmentPath::Cgroup),
            },
            ExitFrame {
                exit: RemoteExit::Signal {
                    signal: libc::SIGKILL,
                    reason: Some("timeout".into()),
                    message: Some("killed after the time limit".into()),
                },
                containment: Some(ContainmentPath::Subreaper),
            },
            ExitFrame {
                exit: RemoteExit::Signal {
                    signal: libc::SIGTERM,
                    reason: None,
                    message: None,
                },
                containment: None,
            },
        ] {
            let h = frame.to_header();
            assert_eq!(h.get_str("cmd"), Some("exit"));
            assert!(h.is_ok());
            assert_eq!(ExitFrame::parse(&h), frame);
        }
        let h = ExitFrame {
            exit: RemoteExit::Code(0),
            containment: Some(ContainmentPath::Cgroup),
        }
        .to_header();
        assert_eq!(h.get_str("containment"), Some("cgroup"));
    }

    #[test]
    fn exit_frame_parse_is_total() {
        let h = Header::ok()
            .with("cmd", "exit")
            .with("signal", "nine")
            .with("containment", "jail");
        assert_eq!(
            ExitFrame::parse(&h),
            ExitFrame {
                exit: RemoteExit::Signal {
                    signal: libc::SIGKILL,
                    reason: None,
                    message: None
                },
                containment: None,
            }
        );
    }
}
