//! The `exec` request and the frames that follow it (pure parsing, no I/O).

use std::time::Duration;

use sockit_wire::Header;

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
    /// `argv` missing, empty, not strings, or too long.
    #[error("`argv` must be a non-empty array of at most {MAX_ARGS} strings")]
    Argv,
    /// An argument holds NUL (it cannot be passed to a program).
    #[error("arguments cannot contain NUL bytes")]
    Nul,
    /// `stdin` is not a boolean.
    #[error("`stdin` must be true or false")]
    Stdin,
    /// `timeout_ms` is not a positive integer.
    #[error("`timeout_ms` must be a positive integer")]
    Timeout,
}

impl ExecRequest {
    /// Parses the request header.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub fn parse(req: &Header) -> Result<Self, RequestError> {
        let arr = req
            .get("argv")
            .and_then(|v| v.as_array())
            .ok_or(RequestError::Argv)?;
        if arr.is_empty() || arr.len() > MAX_ARGS {
            return Err(RequestError::Argv);
        }
        let argv = arr
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(RequestError::Argv)?;
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(RequestError::Nul);
        }
        if argv[0].is_empty() {
            return Err(RequestError::Argv);
        }
        let stdin = match req.get("stdin") {
            None | Some(serde_json::Value::Null) => false,
            Some(v) => v.as_bool().ok_or(RequestError::Stdin)?,
        };
        let timeout = match req.get("timeout_ms") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => return Err(RequestError::Timeout),
            },
        };
        Ok(Self {
            argv,
            stdin,
            timeout,
        })
    }

    /// The request header.
    pub fn to_header(&self) -> Header {
        let mut h = Header::request("exec")
            .with("argv", self.argv.clone())
            .with("stdin", self.stdin);
        if let Some(t) = self.timeout {
            h.set(
                "timeout_ms",
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
            );
        }
        h
    }
}

/// Which output stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The frame's header.
    pub fn to_header(&self) -> Header {
        let mut h = Header::ok().with("cmd", "exit");
        match &self.exit {
            RemoteExit::Code(code) => h.set("code", *code),
            RemoteExit::Signal {
                signal,
                reason,
                message,
            } => {
                h.set("signal", *signal);
                h.set("signal_name", crate::group::signal_name(*signal));
                if let Some(r) = reason {
                    h.set("reason", r.as_str());
                }
                if let Some(m) = message {
                    h.set("message", m.as_str());
                }
            }
        }
        if let Some(c) = self.containment {
            h.set("containment", c.as_str());
        }
        h
    }

    /// Reads an exit frame (total: a missing or odd `signal` reads as SIGKILL, an unknown
    /// `containment` as absent).
    pub fn parse(h: &Header) -> Self {
        let containment = h.get_str("containment").and_then(ContainmentPath::parse);
        if let Some(code) = h.get("code").and_then(|v| v.as_i64()) {
            return Self {
                exit: RemoteExit::Code(i32::try_from(code).unwrap_or(1)),
                containment,
            };
        }
        let signal = h
            .get("signal")
            .and_then(|v| v.as_i64())
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(libc::SIGKILL);
        Self {
            exit: RemoteExit::Signal {
                signal,
                reason: h.get_str("reason").map(str::to_owned),
                message: h.get_str("message").map(str::to_owned),
            },
            containment,
        }
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
        assert_eq!(
            ExecRequest::parse(&Header::request("exec")),
            Err(RequestError::Argv)
        );
    }

    #[test]
    fn non_string_argv() {
        let h = Header::request("exec").with("argv", serde_json::json!(["ls", 3]));
        assert_eq!(ExecRequest::parse(&h), Err(RequestError::Argv));
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
