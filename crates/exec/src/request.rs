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
}
