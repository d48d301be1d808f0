//! The one door of the team server: `Host` (400), `Origin` (403), then for MCP and the API a
//! bearer token (401 with `WWW-Authenticate: Bearer`) and a per-token rate limit (429); the
//! review page's requests go on to its session check. What passes carries its
//! `Principal` in the request's extensions, where the MCP tools and the API read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Listen;
use crate::engine::Engine;
use crate::error::Error;
use crate::identity::Via;

/// Requests one token may make per window.
const RATE_LIMIT: u32 = 600;
const RATE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct State {
    pub engine: Arc<Engine>,
    listen: Arc<Listen>,
    /// Review-page sessions.
    pub sessions: super::session::Sessions,
    /// Token → (window start, requests in it).
    seen: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl State {
    pub fn new(engine: Arc<Engine>, listen: Listen) -> State {
        State {
            engine,
            listen: Arc::new(listen),
            sessions: super::session::Sessions::default(),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts a request of `token`; false when it is over the limit.
    fn admit(&self, token: &str) -> bool {
        let mut seen = self.seen.lock().expect("rate map");
        let now = Instant::now();
        let entry = seen.entry(token.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) > RATE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= RATE_LIMIT
    }
}

/// The HTTP status of a refusal, for the API and the review page alike.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::UnknownPlan(_) => StatusCode::NOT_FOUND,
        Error::NotPermitted { .. } | Error::SelfApproval { .. } => StatusCode::FORBIDDEN,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Store(_) | Error::Io(_) | Error::Target { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

/// A refusal as the server sends it: the status, and `{code, message, fix}`.
pub fn refusal(status: StatusCode, e: &Error) -> Response {
    (status, axum::Json(e.to_refusal())).into_response()
}

pub async fn guard(
    axum::extract::State(state): axum::extract::State<State>,
    mut req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !state
        .listen
        .hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host))
    {
        return refusal(
            StatusCode::BAD_REQUEST,
            &Error::Unauthenticated(format!(
                "this server does not answer to Host `{host}` (DNS rebinding is refused)"
            )),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !state.listen.origins.iter().any(|o| o == origin) {
            return refusal(
                StatusCode::FORBIDDEN,
                &Error::Unauthenticated(format!(
                    "requests from origin `{origin}` are not allowed; add it to `[server] allowed_origins`"
                )),
            );
        }
    }
    let path = req.uri().path();
    let via = if path == "/mcp" || path.starts_with("/mcp/") {
        Via::McpHttp
    } else if path.starts_with("/api/") {
        Via::Api
    } else {
        // The review page: its own session cookie, checked by each page.
        return next.run(req).await;
    };
    let Some(token) = bearer(req.headers()) else {
        return unauthorized(Error::Unauthenticated(
            "no bearer token: send `Authorization: Bearer <token>`".into(),
        ));
    };
    let principal = match state.engine.authenticate(&token, via).await {
        Ok(p) => p,
        Err(e) => return unauthorized(e),
    };
    if !state.admit(&token) {
        let mut r = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            &Error::Unauthenticated(format!(
                "`{}` made more than {RATE_LIMIT} requests in a minute",
                principal.name
            )),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// On every answer, the guard's refusals included: never framed (a decoy page on another port
/// must not wrap the review page's buttons), never cached (pages carry SQL and decisions),
/// never type-sniffed.
pub async fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn unauthorized(e: Error) -> Response {
    let mut r = refusal(StatusCode::UNAUTHORIZED, &e);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"drydock\""),
    );
    r
}
