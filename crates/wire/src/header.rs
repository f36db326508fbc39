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

    /// An error response `{"status":"error","code":..,"message":..}` (an [`ErrorReply`]).
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply::new(code, message).to_header()
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

    /// The frame of a typed message: its fields, plus `cmd` when the type has a fixed
    /// one ([`Message::CMD`]).
    ///
    /// # Errors
    /// [`MessageError::Encode`] when the message does not serialize to a JSON object.
    pub fn encode<T: Message>(msg: &T) -> Result<Self, MessageError> {
        let mut h = Self::from_serialize(msg).map_err(|e| MessageError::Encode {
            what: T::CMD.unwrap_or("message").to_owned(),
            message: e.to_string(),
        })?;
        if let Some(cmd) = T::CMD {
            h.set("cmd", cmd);
        }
        Ok(h)
    }

    /// A success response carrying a typed message: [`Header::encode`] plus
    /// `"status":"ok"`.
    ///
    /// # Errors
    /// As [`Header::encode`].
    pub fn reply<T: Message>(msg: &T) -> Result<Self, MessageError> {
        let mut h = Self::encode(msg)?;
        h.set("status", "ok");
        Ok(h)
    }

    /// Reads the header as the typed message `T`. When `T` has a fixed `cmd`, the
    /// header's must be the same. Keys `T` does not name are ignored; a type error names
    /// the key it is about.
    ///
    /// # Errors
    /// [`MessageError::Decode`]: another `cmd`, a missing field, or a wrong-typed one.
    pub fn decode<T: Message>(&self) -> Result<T, MessageError> {
        if let Some(cmd) = T::CMD {
            if self.cmd() != Some(cmd) {
                return Err(MessageError::Decode {
                    what: cmd.to_owned(),
                    message: match self.get("cmd") {
                        Some(other) => format!("expected `cmd` \"{cmd}\", got {other}"),
                        None => format!("expected `cmd` \"{cmd}\", got none"),
                    },
                });
            }
        }
        self.parse()
    }

    /// Deserializes the header into any typed struct (no `cmd` check; see
    /// [`Header::decode`]). A type error names the key it is about.
    ///
    /// # Errors
    /// [`MessageError::Decode`]: a missing field or a wrong-typed one.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, MessageError> {
        T::deserialize(Fields(&self.0)).map_err(|e| MessageError::Decode {
            what: self.cmd().unwrap_or("reply").chars().take(64).collect(),
            message: e.to_string(),
        })
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
        self.error_reply().map(|e| (e.code, e.message))
    }

    /// For an error response (`"status":"error"`), the typed reply (total: an unknown or
    /// missing code reads as [`ErrorCode::Internal`], a missing message as empty).
    pub fn error_reply(&self) -> Option<ErrorReply> {
        if self.get_str("status") != Some("error") {
            return None;
        }
        Some(self.parse().unwrap_or_else(|_| ErrorReply {
            code: ErrorCode::Internal,
            message: self.get_str("message").unwrap_or("").to_owned(),
        }))
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

/// A typed framed message: a struct whose fields are the keys of one frame's header.
///
/// The request and reply types of every framed command implement it (the built-ins
/// here; the file commands in `sockit_files::messages`, exec in `sockit_exec::messages`),
/// and both the server and the client build and read their frames through them with
/// [`Header::encode`], [`Header::reply`] and [`Header::decode`]: the types are the schema
/// of the protocol.
pub trait Message: Serialize + DeserializeOwned {
    /// The frame's `cmd`, when every frame of this type carries the same one (requests,
    /// and replies such as `pong`); `None` for frames without one, or whose `cmd` is a
    /// field of the type.
    const CMD: Option<&'static str>;
}

/// A frame that does not match its typed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The header is not the message: another `cmd`, a missing or a wrong-typed field.
    #[error("malformed `{what}` frame: {message}")]
    Decode {
        /// The frame's `cmd` (or `reply`).
        what: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The message does not serialize to a JSON object.
    #[error("cannot encode a `{what}` frame: {message}")]
    Encode {
        /// The message's `cmd` (or `message`).
        what: String,
        /// What went wrong.
        message: String,
    },
}

/// The fields of a header as a serde map whose value errors name their key
/// (`` `offset`: invalid type: string "x", expected u64 ``).
struct Fields<'a>(&'a Map<String, Value>);

impl<'de> serde::Deserializer<'de> for Fields<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(FieldAccess {
            iter: self.0.iter(),
            pending: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

struct FieldAccess<'a> {
    iter: serde_json::map::Iter<'a>,
    pending: Option<(&'a str, &'a Value)>,
}

impl<'de> serde::de::MapAccess<'de> for FieldAccess<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.pending = Some((key.as_str(), value));
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key.as_str()))
            .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(serde::de::Error::custom("a value without its key"));
        };
        seed.deserialize(value)
            .map_err(|e| serde::de::Error::custom(format!("`{key}`: {e}")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// For `#[serde(default, deserialize_with = "...")]`: a field that may be absent **or**
/// `null`, both meaning its default (the protocol has always read `"offset": null` as no
/// offset).
///
/// # Errors
/// The value is neither null nor a `T`.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// For `#[serde(default, deserialize_with = "...")]` on an `Option<T>` of a frame that
/// must be read totally: a value that is not a `T` reads as `None` instead of failing.
///
/// # Errors
/// None beyond what the underlying deserializer reports for unreadable input.
pub fn or_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// An error reply: `{"status":"error","code":CODE,"message":TEXT}`, the only shape in which
/// a framed server reports a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error code (an unknown one reads as [`ErrorCode::Internal`]).
    #[serde(deserialize_with = "code_or_internal")]
    pub code: ErrorCode,
    /// What went wrong, for a person.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
}

fn code_or_internal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(v.as_str()
        .and_then(ErrorCode::parse)
        .unwrap_or(ErrorCode::Internal))
}

impl ErrorReply {
    /// An error reply.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The reply's frame header.
    pub fn to_header(&self) -> Header {
        Header::new()
            .with("status", "error")
            .with("code", self.code.as_str())
            .with("message", self.message.as_str())
    }
}

/// `{"cmd":"ping"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {}

impl Message for Ping {
    const CMD: Option<&'static str> = Some("ping");
}

/// The answer to `ping`: `{"status":"ok","cmd":"pong"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {}

impl Message for Pong {
    const CMD: Option<&'static str> = Some("pong");
}

/// `{"cmd":"bye"}`: the server answers [`Done`] and closes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {}

impl Message for Bye {
    const CMD: Option<&'static str> = Some("bye");
}

/// `{"cmd":"hello"}`: asks for the server's [`Hello`] (sent back with `"status":"ok"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {}

impl Message for HelloRequest {
    const CMD: Option<&'static str> = Some("hello");
}

/// A reply with nothing but `"status":"ok"` (as sent with [`Header::reply`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

impl Message for Done {
    const CMD: Option<&'static str> = None;
}

/// The server's answer to a good `auth`: `{"status":"ok","mac":HEX}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthReply {
    /// HMAC-SHA256(key, "sockit-auth-v1/server" || nc || ns), hex.
    pub mac: String,
}

impl Message for AuthReply {
    const CMD: Option<&'static str> = None;
}

impl Message for Hello {
    // `cmd` is a field of the struct (always "hello").
    const CMD: Option<&'static str> = None;
}

impl Message for AuthRequest {
    // `cmd` is a field of the struct (always "auth").
    const CMD: Option<&'static str> = None;
}

impl Hello {
    /// The hello of this server: protocol [`crate::PROTO_VERSION`], [`crate::server_ident`],
    /// `auth`, the hex of `nonce`, and the commands it dispatches.
    pub fn new(auth: AuthMode, nonce: &[u8], services: &[String]) -> Self {
        Self {
            cmd: "hello".into(),
            proto: crate::PROTO_VERSION,
            server: crate::server_ident(),
            auth,
            nonce: hex::encode(nonce),
            services: services.to_vec(),
        }
    }
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

    fn header(json: &str) -> Header {
        serde_json::from_str(json).unwrap()
    }

    fn roundtrip<T: Message + PartialEq + std::fmt::Debug>(msg: T) {
        let h = Header::encode(&msg).unwrap();
        assert_eq!(h.decode::<T>().unwrap(), msg);
        let r = Header::reply(&msg).unwrap();
        assert!(r.is_ok());
        assert_eq!(r.decode::<T>().unwrap(), msg);
    }

    #[test]
    fn builtin_messages_roundtrip() {
        roundtrip(Ping {});
        roundtrip(Pong {});
        roundtrip(Bye {});
        roundtrip(HelloRequest {});
        roundtrip(Done {});
        roundtrip(AuthReply { mac: "ab".into() });
        roundtrip(Hello::new(AuthMode::HmacSha256, &[7; 32], &["ping".into()]));
        roundtrip(AuthRequest {
            cmd: "auth".into(),
            nonce: "00".into(),
            mac: "11".into(),
        });
        let e = ErrorReply::new(ErrorCode::NotFound, "no such file: a");
        assert_eq!(e.to_header().error_reply(), Some(e));
    }

    /// The frames as the built-ins send them, byte for byte (keys sorted, as always).
    #[test]
    fn builtin_frames_on_the_wire() {
        let text = |h: Header| serde_json::to_string(&h).unwrap();
        assert_eq!(text(Header::encode(&Ping {}).unwrap()), r#"{"cmd":"ping"}"#);
        assert_eq!(
            text(Header::reply(&Pong {}).unwrap()),
            r#"{"cmd":"pong","status":"ok"}"#
        );
        assert_eq!(text(Header::reply(&Done {}).unwrap()), r#"{"status":"ok"}"#);
        assert_eq!(
            text(Header::error(ErrorCode::BadRequest, "x")),
            r#"{"code":"bad_request","message":"x","status":"error"}"#
        );
    }

    /// The examples of docs/protocol.md read as their types.
    #[test]
    fn protocol_doc_examples_parse() {
        header(r#"{"cmd":"ping"}"#).decode::<Ping>().unwrap();
        header(r#"{"status":"ok","cmd":"pong"}"#)
            .decode::<Pong>()
            .unwrap();
        header(r#"{"cmd":"hello"}"#)
            .decode::<HelloRequest>()
            .unwrap();
        header(r#"{"cmd":"bye"}"#).decode::<Bye>().unwrap();
        header(r#"{"status":"ok"}"#).decode::<Done>().unwrap();
        let nonce = "ab".repeat(32);
        let hello: Hello = header(&format!(
            r#"{{"cmd":"hello","proto":1,"server":"sockit/0.1.0","auth":"hmac-sha256",
                "nonce":"{nonce}","services":["hello","auth","ping","bye"]}}"#
        ))
        .decode()
        .unwrap();
        assert_eq!(hello.auth, AuthMode::HmacSha256);
        assert_eq!(hello.services.len(), 4);
        let hello: Hello = header(&format!(
            r#"{{"cmd":"hello","proto":1,"server":"sockit/0.1.0","auth":"none","nonce":"{nonce}"}}"#
        ))
        .decode()
        .unwrap();
        assert_eq!(hello.auth, AuthMode::None);
        let auth: AuthRequest = header(&format!(
            r#"{{"cmd":"auth","nonce":"{nonce}","mac":"{nonce}"}}"#
        ))
        .decode()
        .unwrap();
        assert_eq!(auth.mac, nonce);
        let reply: AuthReply = header(&format!(r#"{{"status":"ok","mac":"{nonce}"}}"#))
            .decode()
            .unwrap();
        assert_eq!(reply.mac, nonce);
        let e = header(
            r#"{"status":"error","code":"unknown_command","message":"unknown command `x`"}"#,
        )
        .error_reply()
        .unwrap();
        assert_eq!(e.code, ErrorCode::UnknownCommand);
        for code in ErrorCode::ALL {
            let h = header(&format!(
                r#"{{"status":"error","code":"{code}","message":"m"}}"#
            ));
            assert_eq!(h.as_error(), Some((code, "m".into())));
        }
    }

    #[test]
    fn decode_errors_name_the_problem() {
        let e = header(r#"{"cmd":"pong"}"#).decode::<Ping>().unwrap_err();
        assert!(matches!(e, MessageError::Decode { .. }));
        assert!(e.to_string().contains("expected `cmd` \"ping\""), "{e}");
        let e = header(r#"{"cmd":"auth","nonce":3,"mac":"x"}"#)
            .decode::<AuthRequest>()
            .unwrap_err();
        assert!(e.to_string().contains("`nonce`"), "{e}");
        let e = header(r#"{"cmd":"auth","nonce":"x"}"#)
            .decode::<AuthRequest>()
            .unwrap_err();
        assert!(e.to_string().contains("missing field `mac`"), "{e}");
    }

    #[test]
    fn error_reply_is_total() {
        let h = header(r#"{"status":"error","code":"teapot"}"#);
        assert_eq!(h.as_error(), Some((ErrorCode::Internal, String::new())));
        let h = header(r#"{"status":"error","code":5,"message":"m"}"#);
        assert_eq!(h.as_error(), Some((ErrorCode::Internal, "m".into())));
        assert_eq!(header(r#"{"status":"ok"}"#).as_error(), None);
    }

    #[test]
    fn null_as_default_and_or_none() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "null_as_default")]
            n: u64,
            #[serde(default, deserialize_with = "or_none")]
            o: Option<u64>,
        }
        impl Message for T {
            const CMD: Option<&'static str> = None;
        }
        let t: T = header(r#"{"n":null,"o":"x"}"#).decode().unwrap();
        assert_eq!(t, T { n: 0, o: None });
        let t: T = header(r#"{"n":4,"o":5}"#).decode().unwrap();
        assert_eq!(t, T { n: 4, o: Some(5) });
        assert!(header(r#"{"n":"4"}"#).decode::<T>().is_err());
    }
}
