//! Progress sync compatible with koreader-sync-server (KOReader's "Progress sync"):
//!
//! ```text
//! POST /users/create            {"username","password"} → 201 {"username"}
//! GET  /users/auth              → 200 {"authorized":"OK"}
//! PUT  /syncs/progress          {"document","progress","percentage","device","device_id"?}
//!                               → 200 {"document","timestamp"}
//! GET  /syncs/progress/:doc     → 200 {} | {"percentage","progress","device","device_id"?,"timestamp","document"}
//! GET  /healthcheck             → 200 {"state":"OK"}
//! ```
//! Authentication is `x-auth-user` + `x-auth-key` (KOReader registers and sends
//! MD5(password); the server keeps only an argon2id hash of it, see
//! [`sockit_accounts`]), checked by [`crate::http::guard`] like every route's; HTTP Basic
//! and the web UI's session also work. Registration and `/healthcheck` are public. Errors are `{"code","message"}` with the
//! server's codes: 2001 → 401 Unauthorized, 2002 → 402 user exists, 2003 → 403 invalid
//! request, 2004 → 403 no document, 2005 → 402 registration disabled, 2000 → 502.
//! Timestamps are the server's clock; the progress string is returned byte for byte.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value};

use crate::accounts::{self, Progress};
use crate::http::api_types::{
    KoAuthorized, KoErrorBody, KoHealth, KoProgress, KoProgressReply, ProgressStored, UserReply,
};
use crate::http::{self, AppState, Caller, RegisterError};

/// The kosync routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/create", post(create_user))
        .route("/users/auth", get(auth_user))
        .route("/syncs/progress", put(update_progress))
        .route("/syncs/progress/{document}", get(get_progress))
        .route("/healthcheck", get(healthcheck))
}

/// koreader-sync-server's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KoError {
    /// 2000: storage failed.
    Internal,
    /// 2001.
    Unauthorized,
    /// 2002.
    UserExists,
    /// 2003.
    InvalidFields,
    /// 2004.
    DocumentMissing,
    /// 2005.
    RegistrationDisabled,
}

impl KoError {
    /// `(http status, code, message)` as the reference server sends them.
    pub fn parts(self) -> (u16, u32, &'static str) {
        match self {
            Self::Internal => (502, 2000, "Unknown server error."),
            Self::Unauthorized => (401, 2001, "Unauthorized"),
            Self::UserExists => (402, 2002, "Username is already registered."),
            Self::InvalidFields => (403, 2003, "Invalid request"),
            Self::DocumentMissing => (403, 2004, "Field 'document' not provided."),
            Self::RegistrationDisabled => (402, 2005, "User registration is disabled."),
        }
    }
}

impl IntoResponse for KoError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = KoErrorBody {
            code,
            message: message.to_owned(),
        };
        (status, Json(body)).into_response()
    }
}

/// A non-empty string.
fn valid_field(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A non-empty string without a colon (the reference server uses it in redis keys).
fn valid_key_field(v: Option<&Value>) -> Option<&str> {
    valid_field(v).filter(|s| !s.contains(':'))
}

fn body_object(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn authorize(c: &Caller) -> Result<String, KoError> {
    match &c.0 {
        Some(user) if !user.contains(':') => Ok(user.clone()),
        _ => Err(KoError::Unauthorized),
    }
}

async fn create_user(State(s): State<AppState>, body: Bytes) -> Result<Response, KoError> {
    if !s.lib.config().allow_registration {
        return Err(KoError::RegistrationDisabled);
    }
    let b = body_object(&body);
    let (Some(user), Some(password)) = (
        valid_key_field(b.get("username")),
        valid_field(b.get("password")),
    ) else {
        return Err(KoError::InvalidFields);
    };
    if user.len() > 256 || password.len() > 1024 {
        return Err(KoError::InvalidFields);
    }
    match http::register(&s.lib, user, password).await {
        Ok(()) => {
            let reply = UserReply {
                username: user.to_owned(),
            };
            Ok((StatusCode::CREATED, Json(reply)).into_response())
        }
        Err(RegisterError::Exists) => Err(KoError::UserExists),
        Err(RegisterError::Closed) => Err(KoError::RegistrationDisabled),
        Err(RegisterError::Invalid(_)) => Err(KoError::InvalidFields),
        Err(RegisterError::Internal) => Err(KoError::Internal),
    }
}

async fn auth_user(Extension(c): Extension<Caller>) -> Result<Json<KoAuthorized>, KoError> {
    authorize(&c)?;
    Ok(Json(KoAuthorized {
        authorized: "OK".into(),
    }))
}

/// `tonumber()` of the reference server: a JSON number, or a string holding one.
fn to_number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A Lua-truthy field stored as redis would store it: strings as they are, numbers as text.
fn as_stored_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn update_progress(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<ProgressStored>, KoError> {
    let user = authorize(&c)?;
    let b = body_object(&body);
    let Some(doc) = valid_key_field(b.get("document")) else {
        return Err(KoError::DocumentMissing);
    };
    let (Some(percentage), Some(progress), Some(device)) = (
        to_number(b.get("percentage")),
        as_stored_string(b.get("progress")),
        as_stored_string(b.get("device")),
    ) else {
        return Err(KoError::InvalidFields);
    };
    if doc.len() > 256 || progress.len() > 65_536 || device.len() > 1024 {
        return Err(KoError::InvalidFields);
    }
    let p = Progress {
        document: doc.to_owned(),
        progress,
        percentage,
        device,
        device_id: as_stored_string(b.get("device_id")),
        timestamp: chrono::Utc::now().timestamp(),
    };
    s.lib
        .with_db(|c| accounts::put(c, &user, &p))
        .map_err(|_| KoError::Internal)?;
    Ok(Json(ProgressStored {
        document: p.document,
        timestamp: p.timestamp,
    }))
}

async fn get_progress(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(doc): Path<String>,
) -> Result<Json<KoProgressReply>, KoError> {
    let user = authorize(&c)?;
    if doc.is_empty() || doc.contains(':') {
        return Err(KoError::DocumentMissing);
    }
    let p = s
        .lib
        .with_db(|c| accounts::get(c, &user, &doc))
        .map_err(|_| KoError::Internal)?;
    Ok(Json(match p {
        None => KoProgressReply::None {},
        Some(p) => KoProgressReply::Saved(KoProgress {
            percentage: p.percentage,
            progress: p.progress,
            device: p.device,
            device_id: p.device_id,
            timestamp: p.timestamp,
            document: p.document,
        }),
    }))
}

async fn healthcheck() -> Json<KoHealth> {
    Json(KoHealth { state: "OK".into() })
}
