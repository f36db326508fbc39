//! The HTTP side of the reader (tcp 8080, and HTTPS on 8443 with `--tls`, see [`tls`]): the web UI, its JSON API, file downloads with
//! ETag and range requests, OPDS 1.2 with page streaming and OPDS 2.0, and kosync progress
//! sync.

mod api;
pub mod api_types;
mod download;
mod kosync;
mod opds;
mod opds2;
pub mod tls;
mod transport;
mod upload;
mod web;

pub use api::DEFAULT_WIDTH;
pub use transport::{serve_http, HttpService};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use sockit_accounts::{AccountsError, Verdict};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ReaderError;
use crate::library::Library;

/// The default HTTP port.
pub const PORT: u16 = 8080;

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The library.
    pub lib: Arc<Library>,
}

/// The whole HTTP application, every route behind [`guard`].
pub fn router(lib: Arc<Library>) -> Router {
    let state = AppState { lib };
    Router::new()
        .merge(web::routes())
        .merge(api::routes())
        .merge(kosync::routes())
        .merge(opds::routes())
        .merge(opds2::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves the HTTP application on `listener` through the shared runtime with its default
/// limits until `shutdown`, then lets open requests finish (see
/// [`serve_http`] for the operator's limits).
///
/// # Errors
/// None once the listener is bound (accept errors are logged and retried).
pub async fn serve(
    listener: TcpListener,
    lib: Arc<Library>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = sockit_runtime::server::Limits::default();
    transport::serve_http(listener, lib, limits, shutdown).await
}

/// Serves the application over HTTPS (see [`tls`]) through the shared runtime with
/// `limits` until `shutdown`, then lets open requests finish.
///
/// # Errors
/// None once the listener is bound (accept errors are logged and retried).
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: sockit_runtime::server::Limits,
    lib: Arc<Library>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tls::serve_https(listener, acceptor, lib, limits, shutdown).await
}

/// An error answered as `{"status":"error","code":..,"message":..}`.
#[derive(Debug)]
pub struct ApiError(pub ReaderError);

impl From<ReaderError> for ApiError {
    fn from(e: ReaderError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "request failed");
        }
        let mut body = api_types::ErrorBody::new(self.0.code(), &self.0.to_string());
        if let ReaderError::Duplicate { id, .. } = &self.0 {
            body.book = Some(*id);
        }
        (status, axum::Json(body)).into_response()
    }
}

/// The handlers' result type.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The account a request was authenticated as, put in every request's extensions by
/// [`guard`] (`None`: no credentials, on a library open to anonymous readers, or a
/// public route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<String>);

/// The client's IP as [`guard`] saw it (see [`peer_ip`]), in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Why a request's credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown account or wrong secret.
    Bad,
    /// The source or the account is backing off; retry after this long.
    Throttled(Duration),
}

/// The session cookie of the web UI.
pub const SESSION_COOKIE: &str = "sockit_session";

/// The realm of every challenge.
const REALM: &str = "sockit";

/// Routes anyone may call: KOReader's health check and registration (which answers
/// 2005 itself when registration is closed), and the login and logout endpoints.
pub fn is_public(method: &Method, path: &str) -> bool {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match path {
        "/healthcheck" => get,
        "/login" => get || post,
        "/users/create" | "/logout" | "/api/login" | "/api/register" | "/api/logout" => post,
        _ => false,
    }
}

/// The client's IP: the connection's peer when the transport recorded it (as
/// [`ConnectInfo`]), else the unspecified address (then all clients share one source
/// counter in the throttle).
pub fn peer_ip<B>(req: &Request<B>) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The value of the session cookie, if the request sent one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then_some(v)
        })
}

/// The authenticated user of a request: a live web UI session cookie, kosync headers
/// (`x-auth-user`/`x-auth-key`: the key is MD5(password), or the password), or HTTP
/// Basic (the password, or its MD5). `Ok(None)` when the request carries no usable
/// credentials (a stale session cookie counts as none); `Err` when it carries wrong
/// ones or the throttle refuses to check them.
///
/// # Errors
/// [`AuthFailure`].
pub async fn request_user(
    lib: &Library,
    headers: &HeaderMap,
    ip: IpAddr,
) -> std::result::Result<Option<String>, AuthFailure> {
    if let Some(token) = session_token(headers) {
        if let Some(user) = lib.sessions().user(token) {
            if lib.accounts().exists(&user) {
                return Ok(Some(user));
            }
            lib.sessions().remove(token);
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
    };
    let (user, secret) =
        if let (Some(user), Some(key)) = (header("x-auth-user"), header("x-auth-key")) {
            (user.to_owned(), key.to_owned())
        } else if let Some((user, password)) = header("authorization").and_then(basic_credentials) {
            (user, password)
        } else {
            return Ok(None);
        };
    match lib.accounts().verify(&user, &secret, ip).await {
        Verdict::Ok => Ok(Some(user)),
        Verdict::Bad => Err(AuthFailure::Bad),
        Verdict::Throttled(d) => Err(AuthFailure::Throttled(d)),
    }
}

/// What kind of client a route serves, to answer a refusal in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// KOReader's progress sync: kosync's JSON errors.
    Kosync,
    /// The web UI's pages: the login form.
    Page,
    /// The API, files, OPDS: JSON, with a Basic challenge so browsers and OPDS readers
    /// prompt.
    Other,
}

fn audience(path: &str) -> Audience {
    if path.starts_with("/users/") || path.starts_with("/syncs/") {
        Audience::Kosync
    } else if path == "/" || path.starts_with("/assets/") {
        Audience::Page
    } else {
        Audience::Other
    }
}

/// Seconds for `Retry-After` (rounded up, at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `429 Too Many Requests` with `Retry-After`, in `body`'s shape.
pub fn too_many(d: Duration, body: Response) -> Response {
    let mut r = body;
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs(d).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// The JSON error body of the API.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(api_types::ErrorBody::new(code, message))).into_response()
}

/// A challenge for clients that log in with a form (browsers would otherwise show their
/// own Basic dialog in front of the page, or for a script's request).
const FORM_CHALLENGE: &str = "Form realm=\"sockit\", action=\"/login\"";

fn challenge(r: &mut Response, basic: bool) {
    let v = if basic {
        HeaderValue::from_static("Basic realm=\"sockit\", charset=\"UTF-8\"")
    } else {
        HeaderValue::from_static(FORM_CHALLENGE)
    };
    r.headers_mut().insert("www-authenticate", v);
}

fn refusal(
    aud: Audience,
    failure: Option<AuthFailure>,
    cookie_sent: bool,
    registration: bool,
) -> Response {
    let wait = match failure {
        Some(AuthFailure::Throttled(d)) => Some(d),
        _ => None,
    };
    let message = match (failure, wait) {
        (_, Some(d)) => format!(
            "too many failed logins: retry after {} s",
            retry_after_secs(d)
        ),
        (Some(_), None) => "unknown user or wrong password".to_owned(),
        (None, None) => format!("this library needs a login (realm {REALM})"),
    };
    let mut r = match aud {
        Audience::Kosync => {
            let (_, code, text) = kosync::KoError::Unauthorized.parts();
            let text = if wait.is_some() {
                message.as_str()
            } else {
                text
            };
            let body = api_types::KoErrorBody {
                code,
                message: text.to_owned(),
            };
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
        Audience::Page => web::login_page(StatusCode::UNAUTHORIZED, Some(&message), registration),
        Audience::Other => json_error(StatusCode::UNAUTHORIZED, "unauthorized", &message),
    };
    challenge(&mut r, aud != Audience::Page && !cookie_sent);
    match wait {
        Some(d) => too_many(d, r),
        None => r,
    }
}

/// The gate in front of every route: public routes pass; the others resolve the
/// caller ([`request_user`]) and, when the library needs a login
/// ([`Library::auth_required`]) or the credentials are wrong, are refused with 401
/// (429 with `Retry-After` while the throttle backs off).
pub async fn guard(State(s): State<AppState>, mut req: Request<Body>, next: Next) -> Response {
    let ip = peer_ip(&req);
    req.extensions_mut().insert(ClientIp(ip));
    if is_public(req.method(), req.uri().path()) {
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    }
    let aud = audience(req.uri().path());
    let cookie_sent = session_token(req.headers()).is_some();
    let registration = s.lib.config().allow_registration;
    match request_user(&s.lib, req.headers(), ip).await {
        Ok(Some(user)) => {
            req.extensions_mut().insert(Caller(Some(user)));
            next.run(req).await
        }
        Ok(None) if !s.lib.auth_required() => {
            req.extensions_mut().insert(Caller(None));
            next.run(req).await
        }
        Ok(None) => refusal(aud, None, cookie_sent, registration),
        Err(f) => refusal(aud, Some(f), cookie_sent, registration),
    }
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &str, ttl: Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    ))
    .ok()
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("sockit_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The outcome of a login with a user name and a password (the web UI's form and JSON
/// logins): a new session token.
///
/// # Errors
/// [`AuthFailure`].
pub async fn login(
    lib: &Library,
    user: &str,
    password: &str,
    ip: IpAddr,
) -> std::result::Result<String, AuthFailure> {
    match lib.accounts().verify(user, password, ip).await {
        Verdict::Ok => lib.sessions().create(user).map_err(|e| {
            tracing::warn!(error = %e, "cannot open a session");
            AuthFailure::Bad
        }),
        Verdict::Bad => Err(AuthFailure::Bad),
        Verdict::Throttled(d) => Err(AuthFailure::Throttled(d)),
    }
}

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Registration is closed on this server.
    Closed,
    /// The name is taken.
    Exists,
    /// The name or the password is not acceptable (the reason).
    Invalid(String),
    /// The store failed (logged).
    Internal,
}

/// Creates an account from a password, or from a kosync key when `secret` is an MD5
/// hex digest (KOReader registers MD5(password)); argon2 runs on a blocking worker.
///
/// # Errors
/// [`RegisterError`].
pub async fn register(
    lib: &Library,
    user: &str,
    secret: &str,
) -> std::result::Result<(), RegisterError> {
    if !lib.config().allow_registration {
        return Err(RegisterError::Closed);
    }
    let accounts = lib.accounts().clone();
    let (user, secret) = (user.to_owned(), secret.to_owned());
    let r = tokio::task::spawn_blocking(move || {
        if sockit_accounts::is_md5_hex(&secret) {
            accounts.create_with_md5(&user, &secret)
        } else {
            accounts.create(&user, &secret)
        }
    })
    .await;
    match r {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(RegisterError::Exists),
        Ok(Err(
            e @ (AccountsError::InvalidName(_)
            | AccountsError::InvalidPassword(_)
            | AccountsError::InvalidMd5),
        )) => Err(RegisterError::Invalid(e.to_string())),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot create an account");
            Err(RegisterError::Internal)
        }
        Err(e) => {
            tracing::warn!(error = %e, "account worker failed");
            Err(RegisterError::Internal)
        }
    }
}

/// Decodes `Basic base64(user:password)`.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let b64 = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// A response with bytes, a content type and an ETag (the content's BLAKE3), answering
/// `If-None-Match` with 304.
pub fn cached_bytes(headers: &HeaderMap, mime: &'static str, bytes: Vec<u8>) -> Response {
    let etag = format!("\"{}\"", blake3::hash(&bytes).to_hex());
    if download::etag_matches(headers, &etag) {
        return not_modified(&etag);
    }
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

/// `304 Not Modified` with the ETag.
pub fn not_modified(etag: &str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert("etag", v);
    }
    r
}
