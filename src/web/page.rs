//! The review page: server-rendered from `templates/web/` (Tera, HTML-escaped), no JavaScript.
//! What decides approval — risk, hazards, unmet checklist items, the production estimate —
//! comes first on a plan's page; approvers get the forms (approve, reject with a reason, release
//! a gate), agents and the plan's author read only.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tera::{Kwargs, Tera, Value};

use super::guard;
use super::session::{self, COOKIE, LOGIN_COOKIE, Session};
use crate::error::Error;
use crate::identity::{Grant, Via};
use crate::plan::Status;

pub fn routes() -> Router<guard::State> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(plans))
        .route("/plans/{id}", get(plan))
        .route("/plans/{id}/approve", post(approve))
        .route("/plans/{id}/waive", post(waive))
        .route("/plans/{id}/reject", post(reject))
        .route("/plans/{id}/release", post(release))
        .route("/errors", get(errors))
        .route("/audit", get(audit))
}

fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = Tera::default();
        t.register_filter("sql", |v: &str, _: Kwargs, _: &tera::State| -> Value {
            Value::safe_string(&highlight(&crate::sql::layout::readable(v)))
        });
        for (name, source) in [
            (
                "web/base.html",
                include_str!("../../templates/web/base.html"),
            ),
            (
                "web/login.html",
                include_str!("../../templates/web/login.html"),
            ),
            (
                "web/plans.html",
                include_str!("../../templates/web/plans.html"),
            ),
            (
                "web/plan.html",
                include_str!("../../templates/web/plan.html"),
            ),
            (
                "web/errors.html",
                include_str!("../../templates/web/errors.html"),
            ),
            (
                "web/audit.html",
                include_str!("../../templates/web/audit.html"),
            ),
        ] {
            t.add_raw_template(name, source)
                .expect("embedded web templates compile");
        }
        t
    })
}

fn render(name: &str, status: StatusCode, ctx: &impl Serialize) -> Response {
    let ctx = match tera::Context::from_serialize(ctx) {
        Ok(c) => c,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match tera().render(name, &ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = name, "review page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

/// The session of a request, or the way to the login page. A session lives only as long as
/// the token that opened it: revoked or expired, the session ends with this request.
async fn session(
    s: &guard::State,
    headers: &HeaderMap,
) -> Result<(String, Session), Box<Response>> {
    let to_login = || Box::new(Redirect::to("/login").into_response());
    let (id, sess) = s.sessions.get(headers).ok_or_else(to_login)?;
    if s.engine.authenticate(&sess.token, Via::Web).await.is_err() {
        s.sessions.end(&id);
        return Err(to_login());
    }
    Ok((id, sess))
}

/// The session of a POST form, whose CSRF token must be the session's.
async fn posted(
    s: &guard::State,
    headers: &HeaderMap,
    token: &str,
) -> Result<(String, Session), Box<Response>> {
    let (id, sess) = session(s, headers).await?;
    if !session::same(&sess.csrf, token) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "missing or wrong csrf_token").into_response(),
        ));
    }
    Ok((id, sess))
}

/// Adds a `Set-Cookie` header to a response.
fn add_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page's filter: every field present (empty when not given), so the form shows them all.
fn filter(mut query: HashMap<String, String>, keys: &[&str]) -> HashMap<String, String> {
    for key in keys {
        query.entry(key.to_string()).or_default();
    }
    query
}

/// The value a filter field asks for, when one was given.
fn wanted<'a>(filter: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    filter.get(key).map(|f| f.trim()).filter(|f| !f.is_empty())
}

#[derive(Serialize)]
struct Page<'a, T: Serialize> {
    who: Option<&'a crate::identity::Principal>,
    csrf: &'a str,
    #[serde(flatten)]
    body: T,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf_token: String,
}

async fn login_form(State(s): State<guard::State>, headers: HeaderMap) -> Response {
    if s.sessions.get(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&headers, None, StatusCode::OK)
}

fn login_page(headers: &HeaderMap, error: Option<String>, status: StatusCode) -> Response {
    let Ok(csrf) = session::random() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut r = render(
        "web/login.html",
        status,
        &serde_json::json!({"who": null, "csrf": csrf, "error": error}),
    );
    let cookie = session::set_cookie(LOGIN_COOKIE, &csrf, session::over_https(headers), Some(900));
    add_cookie(&mut r, &cookie);
    r
}

async fn login(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &form.csrf_token) {
        return (StatusCode::FORBIDDEN, "missing or wrong csrf_token").into_response();
    }
    let principal = match s.engine.authenticate(&form.token, Via::Web).await {
        Ok(p) => p,
        Err(e) => return login_page(&headers, Some(e.to_string()), StatusCode::UNAUTHORIZED),
    };
    let Ok(id) = s.sessions.start(principal, &form.token) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut r = Redirect::to("/").into_response();
    let secure = session::over_https(&headers);
    for c in [
        session::set_cookie(COOKIE, &id, secure, None),
        session::set_cookie(LOGIN_COOKIE, "", secure, Some(0)),
    ] {
        add_cookie(&mut r, &c);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (id, _) = match posted(&s, &headers, &form.csrf_token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    s.sessions.end(&id);
    let mut r = Redirect::to("/login").into_response();
    let c = session::set_cookie(COOKIE, "", session::over_https(&headers), Some(0));
    add_cookie(&mut r, &c);
    r
}

async fn plans(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (_, sess) = match session(&s, &headers).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let filter = filter(query, &["status", "target", "author", "risk"]);
    let all = match s.engine.list().await {
        Ok(p) => p,
        Err(e) => return failure(&e),
    };
    let want =
        |key: &str, value: &str| wanted(&filter, key).is_none_or(|f| f.eq_ignore_ascii_case(value));
    let shown: Vec<_> = all
        .into_iter()
        .filter(|p| {
            want("status", p.status.as_str())
                && want("target", &p.target)
                && want("author", &p.author)
                && want("risk", p.risk.map(|r| r.name()).unwrap_or(""))
        })
        .collect();
    render(
        "web/plans.html",
        StatusCode::OK,
        &Page {
            who: Some(&sess.principal),
            csrf: &sess.csrf,
            body: serde_json::json!({"plans": shown, "filter": filter}),
        },
    )
}

async fn plan(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (_, sess) = match session(&s, &headers).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    plan_page(&s, &sess, &id, None, StatusCode::OK).await
}

async fn plan_page(
    s: &guard::State,
    sess: &Session,
    id: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let report = match s.engine.status(id).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let unmet: Vec<_> = report
        .checklist
        .iter()
        .filter(|i| i.required && !i.holds())
        .collect();
    let estimate = report
        .runs
        .iter()
        .rev()
        .find(|r| r.kind == crate::plan::RunKind::DryRun && r.ok && r.checksum == report.checksum)
        .and_then(|r| r.detail.estimate.clone());
    let audit: Vec<_> = s
        .engine
        .audit_log(500)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.plan_id.as_deref() == Some(id))
        .collect();
    let is_author = sess.principal.name.eq_ignore_ascii_case(&report.author);
    let approver = sess.principal.may(Grant::Approver) && !is_author;
    let shown = shown_status(&report);
    // Forms only where a decision can still be taken: approve (and waive) before the plan is
    // approved, reject until it is applied, release while it applies; none on a superseded plan.
    let open = report.superseded_by.is_none();
    let (before, until_applied) = (
        matches!(report.status, Status::Planned | Status::Tested),
        matches!(
            report.status,
            Status::Planned | Status::Tested | Status::Approved
        ),
    );
    let can_approve = approver && open && before;
    let can_reject = approver && open && until_applied;
    let can_release = approver && open && report.status == Status::Applying;
    let can_decide = can_approve || can_reject || can_release;
    render(
        "web/plan.html",
        status,
        &Page {
            who: Some(&sess.principal),
            csrf: &sess.csrf,
            body: serde_json::json!({
                "plan": report, "unmet": unmet, "estimate": estimate, "audit": audit,
                "can_decide": can_decide, "can_approve": can_approve, "can_reject": can_reject,
                "can_release": can_release, "is_author": is_author, "error": error,
                "shown_status": shown, "approver": approver,
            }),
        },
    )
}

/// A plan's status as a reviewer must read it: a superseded plan is not `planned`, and an
/// approved plan whose apply failed is not simply `approved`.
fn shown_status(report: &crate::engine::StatusReport) -> String {
    if let Some(by) = &report.superseded_by {
        return format!("superseded by {by}");
    }
    let apply_failed = report
        .runs
        .iter()
        .rev()
        .find(|r| r.kind == crate::plan::RunKind::Apply)
        .is_some_and(|r| !r.ok);
    match report.status {
        Status::Approved if apply_failed => "approved; its apply failed".into(),
        other => other.to_string(),
    }
}

/// After a decision: back to the plan's page, or the page again with the refusal on top.
async fn decided(
    s: &guard::State,
    sess: &Session,
    id: &str,
    result: Result<crate::engine::StatusReport, Error>,
) -> Response {
    match result {
        Ok(_) => Redirect::to(&format!("/plans/{id}")).into_response(),
        Err(e) => {
            let text = format!("{}: {} — {}", e.code(), e, e.fix());
            plan_page(s, sess, id, Some(text), guard::status_of(&e)).await
        }
    }
}

async fn approve(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, sess) = match posted(&s, &headers, &form.csrf_token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let result = s.engine.approve(&id, &sess.principal).await;
    decided(&s, &sess, &id, result).await
}

#[derive(Deserialize)]
struct RejectForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    reason: String,
}

/// A hotfix waiver: approves, and waives `staging-tested` once a second approver waives too.
async fn waive(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RejectForm>,
) -> Response {
    let (_, sess) = match posted(&s, &headers, &form.csrf_token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let result = s.engine.waive(&id, &sess.principal, &form.reason).await;
    decided(&s, &sess, &id, result).await
}

async fn reject(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RejectForm>,
) -> Response {
    let (_, sess) = match posted(&s, &headers, &form.csrf_token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let result = s.engine.reject(&id, &sess.principal, &form.reason).await;
    decided(&s, &sess, &id, result).await
}

#[derive(Deserialize)]
struct ReleaseForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    step: String,
    override_reason: Option<String>,
}

async fn release(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReleaseForm>,
) -> Response {
    let (_, sess) = match posted(&s, &headers, &form.csrf_token).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let reason = form
        .override_reason
        .as_deref()
        .filter(|r| !r.trim().is_empty());
    let result = s
        .engine
        .release(&id, &form.step, &sess.principal, reason)
        .await;
    decided(&s, &sess, &id, result).await
}

async fn errors(
    State(s): State<guard::State>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (_, sess) = match session(&s, &headers).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let filter = filter(query, &["agent", "tool", "code"]);
    let mut entries = match s.engine.errors.lessons() {
        Ok(e) => e,
        Err(e) => return failure(&e),
    };
    entries.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    let want = |key: &str, value: &str| wanted(&filter, key).is_none_or(|f| f == value);
    entries.retain(|e| want("agent", &e.agent) && want("tool", &e.tool) && want("code", &e.code));
    render(
        "web/errors.html",
        StatusCode::OK,
        &Page {
            who: Some(&sess.principal),
            csrf: &sess.csrf,
            body: serde_json::json!({"entries": entries, "filter": filter}),
        },
    )
}

async fn audit(State(s): State<guard::State>, headers: HeaderMap) -> Response {
    let (_, sess) = match session(&s, &headers).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let audit = match s.engine.audit_log(500).await {
        Ok(a) => a,
        Err(e) => return failure(&e),
    };
    render(
        "web/audit.html",
        StatusCode::OK,
        &Page {
            who: Some(&sess.principal),
            csrf: &sess.csrf,
            body: serde_json::json!({"audit": audit}),
        },
    )
}

fn failure(e: &Error) -> Response {
    (guard::status_of(e), format!("{}: {}", e.code(), e)).into_response()
}

/// The words `highlight` marks as keywords.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ALTER",
    "AND",
    "AS",
    "BEGIN",
    "BY",
    "CHECK",
    "COLUMN",
    "CONCURRENTLY",
    "CONSTRAINT",
    "CREATE",
    "DEFAULT",
    "DELETE",
    "DROP",
    "END",
    "EXISTS",
    "FOREIGN",
    "FROM",
    "FUNCTION",
    "IF",
    "INDEX",
    "INSERT",
    "INTO",
    "IS",
    "KEY",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "PRIMARY",
    "REFERENCES",
    "RENAME",
    "RETURNS",
    "SELECT",
    "SET",
    "TABLE",
    "TO",
    "TRIGGER",
    "TYPE",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VALID",
    "VALIDATE",
    "VALUES",
    "WHERE",
    "WITH",
];

/// SQL as HTML: escaped, with keywords, strings, numbers and comments marked for colour.
pub fn highlight(sql: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            out.push_str(&format!("<span class=\"cm\">{}</span>", esc(&t)));
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            out.push_str(&format!("<span class=\"str\">{}</span>", esc(&t)));
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            if KEYWORDS.contains(&t.to_ascii_uppercase().as_str()) {
                out.push_str(&format!("<span class=\"kw\">{t}</span>"));
            } else {
                out.push_str(&esc(&t));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let t: String = chars[start..i].iter().collect();
            out.push_str(&format!("<span class=\"num\">{t}</span>"));
        } else {
            out.push_str(&esc(&c.to_string()));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::highlight;

    #[test]
    fn highlighting_escapes_everything_it_does_not_mark() {
        let h = highlight("SELECT '<script>' -- </pre><b>\nFROM \"t\" WHERE a < 1");
        assert!(!h.contains("<script>") && !h.contains("</pre>") && !h.contains("<b>"));
        assert!(h.contains("<span class=\"kw\">SELECT</span>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("&quot;t&quot;"));
    }
}
