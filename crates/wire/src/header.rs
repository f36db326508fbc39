//! Frame headers: a JSON object with `cmd` (requests) or `status` (responses).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The keys whose value gives the body length, in order of precedence.
pub const BODY_LEN_KEYS: [&str; 3] = ["size", "filesize", "data_size"];

/// A frame header: one JSON object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Header(pub Map<String, Value>);

/// Why a header's body length could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header key `{key}` must be a non-negative integer byte count, got {value}")]
pub struct BodyLenError {
    /// The key that held the bad value.
    pub key: &'static str,
    /// The offending value, as JSON text.
    pub value: String,
}

impl Header {
    /// An empty header.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request header `{"cmd": cmd}`.
    pub fn request(cmd: &str) -> Self {
        Self::new().with("cmd", cmd)
    }

    /// A success response `{"status": "ok"}`.
    pub fn ok() -> Self {
        Self::new().with("status", "ok")
    }

    /// An error response `{"status":"error","code":..,"message":..}`.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new()
            .with("status", "error")
            .with("code", code.as_str())
            .with("message", message.into())
    }

    /// Builds a header from any serializable struct (which must serialize to an object).
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        match serde_json::to_value(value)? {
            Value::Object(map) => Ok(Self(map)),
            other => Err(serde::ser::Error::custom(format!(
                "header must be a JSON object, got {other}"
            ))),
        }
    }

    /// Deserializes the header into a typed struct.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object(self.0.clone()))
    }

    /// Sets `key` to `value` and returns the header (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key` when it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// The value of `key` when it is a non-negative integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    /// The value of `key` when it is a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.0.get(key).and_then(Value::as_bool)
    }

    /// The request's command name.
    pub fn cmd(&self) -> Option<&str> {
        self.get_str("cmd")
    }

    /// The length of the body that follows this header: the first of `size`, `filesize`,
    /// `data_size` that is present, or 0.
    ///
    /// # Errors
    /// A present key whose value is not a non-negative integer.
    pub fn body_len(&self) -> Result<u64, BodyLenError> {
        for key in BODY_LEN_KEYS {
            if let Some(value) = self.0.get(key) {
                return value.as_u64().ok_or_else(|| BodyLenError {
                    key,
                    value: value.to_string(),
                });
            }
        }
        Ok(0)
    }

    /// Whether this is a response with `"status": "ok"`.
    pub fn is_ok(&self) -> bool {
        self.get_str("status") == Some("ok")
    }

    /// For an error response, its code (unknown codes map to [`ErrorCode::Internal`]) and
    /// message.
    pub fn as_error(&self) -> Option<(ErrorCode, String)> {
        if self.get_str("status") != Some("error") {
            return None;
        }
        let code = self
            .get_str("code")
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        let message = self.get_str("message").unwrap_or("").to_owned();
        Some((code, message))
    }
}

/// The error codes of the framed protocol (DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, missing or wrong-typed field).
    BadRequest,
    /// The `cmd` is not known to this server.
    UnknownCommand,
    /// The named thing does not exist.
    NotFound,
    /// The target exists and overwriting was not requested.
    Exists,
    /// The request is not allowed (path outside the root, exec disabled, ...).
    Denied,
    /// The server needs `auth` before this request.
    AuthRequired,
    /// The `auth` mac was wrong.
    AuthFailed,
    /// Over a size limit.
    TooLarge,
    /// A limit on concurrent use was hit; try again later.
    Busy,
    /// The operation took too long.
    Timeout,
    /// The server does not support this.
    Unsupported,
    /// The server failed for a reason of its own.
    Internal,
}

impl ErrorCode {
    /// All codes, in declaration order.
    pub const ALL: [ErrorCode; 12] = [
        Self::BadRequest,
        Self::UnknownCommand,
        Self::NotFound,
        Self::Exists,
        Self::Denied,
        Self::AuthRequired,
        Self::AuthFailed,
        Self::TooLarge,
        Self::Busy,
        Self::Timeout,
        Self::Unsupported,
        Self::Internal,
    ];

    /// The wire spelling, e.g. `bad_request`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownCommand => "unknown_command",
            Self::NotFound => "not_found",
            Self::Exists => "exists",
            Self::Denied => "denied",
            Self::AuthRequired => "auth_required",
            Self::AuthFailed => "auth_failed",
            Self::TooLarge => "too_large",
            Self::Busy => "busy",
            Self::Timeout => "timeout",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `hello` the server sends on connect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `"hello"`.
    pub cmd: String,
    /// Protocol version.
    pub proto: u64,
    /// Server identification, `sockit/VER`.
    pub server: String,
    /// `none` or `hmac-sha256`.
    pub auth: AuthMode,
    /// The server's fresh 32-byte nonce, hex.
    pub nonce: String,
    /// The commands this server dispatches.
    #[serde(default)]
    pub services: Vec<String>,
}

/// Which authentication a server requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// No authentication: requests may be sent at once.
    #[serde(rename = "none")]
    None,
    /// Mutual HMAC-SHA256 challenge/response.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl AuthMode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HmacSha256 => "hmac-sha256",
        }
    }
}

/// The client's `auth` request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Always `"auth"`.
    pub cmd: String,
    /// The client's fresh 32-byte nonce, hex.
    pub nonce: String,
    /// HMAC-SHA256(key, "sockit-auth-v1/client" || ns || nc), hex.
    pub mac: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_len_precedence() {
        let h = Header::request("put").with("filesize", 5).with("size", 7);
        assert_eq!(h.body_len(), Ok(7));
        let h = Header::request("put").with("data_size", 3);
        assert_eq!(h.body_len(), Ok(3));
        assert_eq!(Header::request("ping").body_len(), Ok(0));
    }

    #[test]
    fn negative_body_len() {
        let h = Header::request("put").with("size", -1);
        assert_eq!(h.body_len().unwrap_err().key, "size");
        let h = Header::request("put").with("filesize", "12");
        assert!(h.body_len().is_err());
    }

    #[test]
    fn error_codes_roundtrip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn error_header() {
        let h = Header::error(ErrorCode::NotFound, "no such file: a");
        assert_eq!(
            h.as_error(),
            Some((ErrorCode::NotFound, "no such file: a".into()))
        );
        assert!(!h.is_ok());
        assert!(Header::ok().is_ok());
    }
}
