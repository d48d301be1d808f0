//! The CLI against a team server (`--server URL`, `DRYDOCK_SERVER` or `[server] url`): `plans`,
//! `show`, `approve`, `reject` and `release` call the server's JSON API with `DRYDOCK_TOKEN`, and
//! the identity is the token's — a `--by` naming someone else is refused before anything is sent.
//! http and https (rustls, Mozilla's roots).

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Command, Format, emit};
use crate::engine::{PlanSummary, StatusReport};
use crate::error::{Error, Part, Refusal};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A refusal the server answered with, shown as a local one is.
#[derive(Debug)]
pub struct RemoteRefused(pub Refusal);

impl std::fmt::Display for RemoteRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for RemoteRefused {}

pub struct Remote {
    base: String,
    token: String,
    client: Client<Https, Full<axum::body::Bytes>>,
}

impl Remote {
    pub fn new(url: &str) -> Result<Remote, Error> {
        let token = std::env::var("DRYDOCK_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "talking to the team server at {url} needs DRYDOCK_TOKEN (your token)"
                ))
            })?;
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::invalid(
                Part::Argument,
                format!("--server {url:?} is not an http:// or https:// URL"),
            ));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Remote {
            base,
            token: token.trim().to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends a request; a 2xx answer read as `T`, or the server's refusal. An answer that is
    /// not what the API promises is an error, never read as empty.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(axum::body::Bytes::from(bytes)))?;
        let resp =
            self.client.request(req).await.map_err(|e| {
                anyhow::anyhow!("cannot reach the team server at {}: {e}", self.base)
            })?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                anyhow::anyhow!(
                    "the team server at {} answered {path} with what drydock does not read ({e}): is it the same version?",
                    self.base
                )
            });
        }
        match serde_json::from_slice::<Refusal>(&body) {
            Ok(r) => Err(RemoteRefused(r).into()),
            Err(_) => Err(anyhow::anyhow!(
                "the team server answered {status}: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Who the token says we are; a `--by` naming someone else is refused.
    pub async fn identity(&self, by: Option<&str>) -> anyhow::Result<String> {
        let Whoami { name } = self.call("GET", "/api/whoami", None).await?;
        if let Some(by) = by.map(str::trim).filter(|b| *b != name) {
            return Err(super::Refused(Error::IdentityMismatch {
                by: by.to_string(),
                principal: name,
            })
            .into());
        }
        Ok(name)
    }
}

/// The token's principal, as `/api/whoami` answers.
#[derive(Deserialize)]
struct Whoami {
    name: String,
}

/// The plans, as `/api/plans` answers.
#[derive(serde::Serialize, Deserialize)]
struct Plans {
    plans: Vec<PlanSummary>,
}

/// Whether a command goes to the team server when one is configured.
pub fn handles(command: &Command) -> bool {
    matches!(
        command,
        Command::Plans { .. }
            | Command::Show { .. }
            | Command::Approve { .. }
            | Command::Reject { .. }
            | Command::Waive { .. }
            | Command::Pause { .. }
            | Command::Resume { .. }
            | Command::Release { .. }
    )
}

/// `pause` / `resume` through the API.
async fn brake(
    remote: &Remote,
    plan_id: &str,
    by: Option<&str>,
    action: &str,
    format: Format,
) -> anyhow::Result<()> {
    let who = remote.identity(by).await?;
    let s: StatusReport = remote
        .call("POST", &format!("/api/plans/{plan_id}/{action}"), None)
        .await?;
    emit(
        format,
        || format!("{who} {action}d {plan_id}; status {}", s.status),
        || serde_json::json!({"by": who, "plan": s}),
    );
    Ok(())
}

/// Runs a command against the team server at `url`.
pub async fn run(url: &str, command: Command) -> anyhow::Result<i32> {
    let remote = Remote::new(url).map_err(super::refused)?;
    match command {
        Command::Plans { format } => {
            let plans: Plans = remote.call("GET", "/api/plans", None).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&plans)?),
                Format::Text => {
                    for p in &plans.plans {
                        println!(
                            "{}  {:<11}  {:<12}  {}  ({} at {})",
                            p.plan_id,
                            p.status.to_string(),
                            p.target,
                            p.goal,
                            p.author,
                            p.created_at
                        );
                    }
                }
            }
        }
        Command::Show {
            plan_id,
            format,
            json,
        } => {
            let report: StatusReport = remote
                .call("GET", &format!("/api/plans/{plan_id}"), None)
                .await?;
            if json || matches!(format, Format::Json) {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_markdown());
            }
        }
        Command::Approve {
            plan_id,
            by,
            format,
        } => {
            let who = remote.identity(by.as_deref()).await?;
            let s: StatusReport = remote
                .call("POST", &format!("/api/plans/{plan_id}/approve"), None)
                .await?;
            emit(
                format,
                || {
                    format!(
                        "approved {plan_id} (checksum {}) by {who}; status {}",
                        s.checksum, s.status
                    )
                },
                || serde_json::json!({"by": who, "plan": s}),
            );
        }
        Command::Reject {
            plan_id,
            reason,
            by,
            format,
        } => {
            let who = remote.identity(by.as_deref()).await?;
            let s: StatusReport = remote
                .call(
                    "POST",
                    &format!("/api/plans/{plan_id}/reject"),
                    Some(serde_json::json!({ "reason": reason })),
                )
                .await?;
            emit(
                format,
                || format!("rejected {plan_id} by {who}: {reason}; status {}", s.status),
                || serde_json::json!({"by": who, "plan": s}),
            );
        }
        Command::Pause {
            plan_id,
            by,
            format,
        } => brake(&remote, &plan_id, by.as_deref(), "pause", format).await?,
        Command::Resume {
            plan_id,
            by,
            format,
        } => brake(&remote, &plan_id, by.as_deref(), "resume", format).await?,
        Command::Waive {
            plan_id,
            reason,
            by,
            format,
        } => {
            let who = remote.identity(by.as_deref()).await?;
            let s: StatusReport = remote
                .call(
                    "POST",
                    &format!("/api/plans/{plan_id}/waive"),
                    Some(serde_json::json!({ "reason": reason })),
                )
                .await?;
            emit(
                format,
                || {
                    format!(
                        "{who} waived staging for hotfix {plan_id}: {reason}; status {}",
                        s.status
                    )
                },
                || serde_json::json!({"by": who, "plan": s}),
            );
        }
        Command::Release {
            plan_id,
            step,
            by,
            override_window,
            reason,
            format,
        } => {
            let who = remote.identity(by.as_deref()).await?;
            let override_reason = if override_window { reason } else { None };
            let _: StatusReport = remote
                .call(
                    "POST",
                    &format!("/api/plans/{plan_id}/release"),
                    Some(serde_json::json!({ "step": step, "override_reason": override_reason })),
                )
                .await?;
            emit(
                format,
                || format!("released step `{step}` of {plan_id} by {who}"),
                || serde_json::json!({"by": who, "plan_id": plan_id, "released": step}),
            );
        }
        _ => unreachable!("`handles` admits only these"),
    }
    Ok(0)
}
