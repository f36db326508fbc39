//! The web UI: one HTML page with its script and style sheet, embedded in the binary (no
//! build step). A cover grid with search, a book page, a PDF viewer (page jump, zoom,
//! arrow keys), a TXT reader (PgUp/PgDn, dark/light) and an EPUB reader (sanitized
//! chapters in a sandboxed frame, contents menu), positions saved per user.
//!
//! When the library needs a login, every page answers `401` with a login form until the
//! browser has a session: `POST /login` (a form: `username`, `password`, and
//! `action=register` to create the account when registration is open) sets an
//! `HttpOnly; SameSite=Strict` session cookie and redirects to `/`; `POST /logout` ends
//! it. The page's script then works through the cookie alone.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::http::{self, AppState, AuthFailure, ClientIp, RegisterError};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The UI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { asset(&h, "text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { asset(&h, "text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { asset(&h, "text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", axum::routing::post(logout))
}

fn asset(headers: &HeaderMap, mime: &'static str, body: &'static str) -> Response {
    let etag = format!("\"{}\"", &blake3::hash(body.as_bytes()).to_hex()[..32]);
    if super::download::etag_matches(headers, &etag) {
        return super::not_modified(&etag);
    }
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The login page (self-contained: it is served before the style sheet may be), with
/// `message` shown as an error and a "Register" button when registration is open.
pub fn login_page(status: StatusCode, message: Option<&str>, registration: bool) -> Response {
    let err = message
        .map(|m| format!("<p class=\"err\" id=\"loginerr\">{}</p>", esc(m)))
        .unwrap_or_default();
    let register = if registration {
        "<button name=\"action\" value=\"register\">Register</button> "
    } else {
        ""
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>sockit library: sign in</title><style>\
body{{font:15px/1.5 system-ui,sans-serif;background:#f6f4ef;color:#222;display:flex;justify-content:center;padding-top:10vh}}\
form{{background:#fff;padding:1.5em 2em;border-radius:10px;box-shadow:0 4px 30px #0003;min-width:18em}}\
label{{display:block;margin:.6em 0}}input{{width:100%;padding:.35em}}.err{{color:#c33}}\
.hint{{color:#777;font-size:.85em}}button{{padding:.35em .9em}}</style></head><body>\
<form method=\"post\" action=\"/login\" id=\"loginform\"><h3><svg class=\"logo\" viewBox=\"0 0 24 24\" width=\"18\" height=\"18\" aria-hidden=\"true\"><path fill=\"currentColor\" d=\"M4 3h5v18H4zM10 3h4v18h-4zM15.2 4.3l3.9-1 3.6 17.4-3.9 1z\"/></svg> sockit library</h3>\
<p class=\"hint\">The same account works in KOReader's progress sync and OPDS readers.</p>\
<label>User <input name=\"username\" autocomplete=\"username\" required autofocus></label>\
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
{err}<p>{register}<button name=\"action\" value=\"login\">Sign in</button></p></form></body></html>\n"
    );
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

async fn login_form(State(s): State<AppState>) -> Response {
    login_page(StatusCode::OK, None, s.lib.config().allow_registration)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    action: Option<String>,
}

fn redirect(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert("location", HeaderValue::from_static(to));
    r
}

async fn login_submit(
    State(s): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let registration = s.lib.config().allow_registration;
    let Ok(Form(f)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("send a user name and a password"),
            registration,
        );
    };
    if f.action.as_deref() == Some("register") {
        match http::register(&s.lib, &f.username, &f.password).await {
            Ok(()) => {}
            Err(e) => {
                let (status, msg) = match e {
                    RegisterError::Closed => (
                        StatusCode::FORBIDDEN,
                        "registration is disabled on this server".to_owned(),
                    ),
                    RegisterError::Exists => (
                        StatusCode::CONFLICT,
                        "that user name is already registered".to_owned(),
                    ),
                    RegisterError::Invalid(why) => (StatusCode::BAD_REQUEST, why),
                    RegisterError::Internal => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the account could not be stored".to_owned(),
                    ),
                };
                return login_page(status, Some(&msg), registration);
            }
        }
    }
    match http::login(&s.lib, &f.username, &f.password, ip).await {
        Ok(token) => {
            let mut r = redirect("/");
            if let Some(v) = http::session_cookie(&token, s.lib.sessions().ttl()) {
                r.headers_mut().insert("set-cookie", v);
            }
            r
        }
        Err(AuthFailure::Bad) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("unknown user or wrong password"),
            registration,
        ),
        Err(AuthFailure::Throttled(d)) => http::too_many(
            d,
            login_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "too many failed logins: retry after {} s",
                    http::retry_after_secs(d)
                )),
                registration,
            ),
        ),
    }
}

async fn logout(headers: HeaderMap, State(s): State<AppState>) -> Response {
    if let Some(token) = http::session_token(&headers) {
        s.lib.sessions().remove(token);
    }
    let mut r = redirect("/login");
    r.headers_mut()
        .insert("set-cookie", http::clear_session_cookie());
    r
}
