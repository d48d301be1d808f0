//! The JSON API the CLI and scripts use: `GET /api/plans`, `GET /api/plans/{id}`, and the
//! engineers' decisions `POST /api/plans/{id}/approve|reject|waive|pause|resume|release`, which need an approver
//! token (an agent token gets 403). The principal is always the token's.

use axum::extract::{Path, State};

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::guard::{self, refusal};
use crate::error::Error;
use crate::identity::Principal;

pub fn routes() -> Router<guard::State> {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/plans", get(list))
        .route("/api/plans/{id}", get(show))
        .route("/api/plans/{id}/approve", post(approve))
        .route("/api/plans/{id}/reject", post(reject))
        .route("/api/plans/{id}/waive", post(waive))
        .route("/api/plans/{id}/pause", post(pause))
        .route("/api/plans/{id}/resume", post(resume))
        .route("/api/plans/{id}/release", post(release))
}

/// An engine error as an HTTP answer.
fn answer<T: serde::Serialize>(r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => refusal(guard::status_of(&e), &e),
    }
}

/// The token's principal: name and role.
async fn whoami(Extension(who): Extension<Principal>) -> Response {
    Json(serde_json::json!({"name": who.name, "role": who.grant})).into_response()
}

async fn list(State(s): State<guard::State>) -> Response {
    answer(
        s.engine
            .list()
            .await
            .map(|plans| serde_json::json!({ "plans": plans })),
    )
}

async fn show(State(s): State<guard::State>, Path(id): Path<String>) -> Response {
    answer(s.engine.status(&id).await)
}

async fn approve(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    answer(s.engine.approve(&id, &who).await)
}

#[derive(Deserialize)]
struct Reason {
    reason: String,
}

async fn reject(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Response {
    answer(s.engine.reject(&id, &who, &body.reason).await)
}

#[derive(Deserialize)]
struct Release {
    step: String,
    /// Opens an `after` gate before its window has passed.
    override_reason: Option<String>,
}

async fn waive(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Reason>,
) -> Response {
    answer(s.engine.waive(&id, &who, &body.reason).await)
}

async fn pause(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    answer(s.engine.pause(&id, &who).await)
}

async fn resume(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    answer(s.engine.resume(&id, &who).await)
}

async fn release(
    State(s): State<guard::State>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Release>,
) -> Response {
    answer(
        s.engine
            .release(&id, &body.step, &who, body.override_reason.as_deref())
            .await,
    )
}
