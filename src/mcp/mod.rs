//! The MCP surface (spec §3): nine tools, three prompts, four resources — a thin adapter over
//! `engine`. Tool inputs are typed (schemars); results are structured (`Json<T>`); refusals are
//! tool results with `isError: true` and `{code, message, fix, checklist?}`, produced in one
//! place (`ToolError`). There is no tool that approves a plan, runs arbitrary SQL or reveals a
//! connection string.
//! An adapter: it reaches everything through `engine` and never formats an error itself.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolResponse, CallToolResult, Extensions, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, ProgressNotificationParam, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, RequestMetaObject,
    Resource, ResourceContents, ResourceTemplate, Role as PromptRole, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, Peer, RoleServer, ServerHandler, prompt, prompt_handler, prompt_router,
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{
    ApplyReport, DryRunReport, Engine, InspectReport, MistakeReport, PlanOutcome, PlanRequest,
    PlanSummary, RollbackReport, StatusBrief, StatusReport, ValidateReport,
};
use crate::error::{Error, Refusal};
use crate::identity::{Grant, Principal, Via};
use crate::plan::{Check, Step, Urgency};
use crate::redact::redact;
use crate::render::TemplateInfo;

mod schema;

/// A refusal on its way to the agent: a tool result with `isError: true`.
pub struct ToolError(pub Refusal);

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        let mut r = e.to_refusal();
        r.message = redact(&r.message);
        ToolError(r)
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, McpError> {
        // As JSON text only: structured content would have to validate against the tool's
        // output schema (the success shape), and the TypeScript SDK replaces a result that does
        // not with its own error, hiding the code and the fix from the agent.
        let text = serde_json::to_string(&self.0)
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)]).into())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlanInput {
    /// What the change achieves and why, in a sentence or two.
    pub goal: String,
    /// The target database, by its name in drydock.toml (e.g. `production`).
    pub target: String,
    /// Ordered steps, each with `up` SQL and the `down` SQL that undoes it exactly.
    pub steps: Option<Vec<Step>>,
    /// Instead of `steps`: a template name from `render-template`.
    pub template: Option<String>,
    /// The template's parameters (see its schema in `render-template`).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub params: Option<serde_json::Value>,
    /// Validation queries: one SELECT each, with `expect` = "true", "empty" or "rows:N".
    pub checks: Option<Vec<Check>>,
    /// `normal` (default), `p1` or `p0`; p0/p1 follow the hotfix checklist.
    pub urgency: Option<Urgency>,
    /// The plan this one replaces, if any.
    pub supersedes: Option<String>,
    /// Instead of `steps` or `template`: the tables as you want them — `CREATE TABLE`,
    /// `CREATE [UNIQUE] INDEX`, `ALTER TABLE … ADD CONSTRAINT` — or a whole schema file. drydock
    /// compares them with the target's catalog and plans each difference the zero-downtime way.
    pub desired: Option<String>,
    /// With `desired`: columns renamed, `{"table.old": "new"}` (else a column gone and one
    /// added is `ambiguous-change`).
    pub renames: Option<std::collections::BTreeMap<String, String>>,
    /// With `desired`: data may be lost (a column or table removed); else `drop-needs-consent`.
    pub allow_drop: Option<bool>,
    /// With `desired`: `tables` (default: only the tables it names) or `schema` (every table;
    /// one missing from `desired` is dropped).
    pub scope: Option<DesiredScope>,
}

/// Which tables a `desired` schema speaks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredScope {
    #[default]
    Tables,
    Schema,
}

/// `plan`'s answer: the stored plan, or that `desired` is what the target already has.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanAnswer {
    #[serde(flatten)]
    pub plan: Option<PlanOutcome>,
    /// `desired` is what the target already has: no plan was stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nothing_to_change: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RenderInput {
    /// Template name; omit to list the templates and their parameter schemas.
    pub template: Option<String>,
    /// Parameters matching the template's schema.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub params: Option<serde_json::Value>,
    /// The target whose catalog a template that moves a column (`rename-column`,
    /// `change-column-type`) reads, to carry the column's indexes and constraints.
    pub target: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RenderOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<TemplateInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<Check>>,
    /// The rendered migration script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DryRunInput {
    pub plan_id: String,
    /// A non-production target; defaults to the plan target's linked staging.
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlanIdInput {
    pub plan_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RollbackInput {
    pub plan_id: String,
    /// Why the change is rolled back (kept in the audit log).
    #[schemars(required)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatusInput {
    /// A plan id; omit to list plans.
    pub plan_id: Option<String>,
    /// Also the full report, under `report`: the steps' SQL, every run's measurements and the
    /// whole analysis (large on a big plan or a long history). Default: the brief alone.
    #[serde(default)]
    pub detail: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusOutput {
    #[serde(flatten)]
    pub plan: Option<StatusBrief>,
    /// With `detail: true`: the full report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<StatusReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<PlanSummary>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InspectInput {
    pub target: String,
    /// One table; omit for a page of all of them.
    pub table: Option<String>,
    /// Tables come in pages, by name: the `next` of the previous page, to read the one after.
    pub after: Option<String>,
    /// Tables per page (default 20, at most 200); partitions are listed under their parent.
    pub limit: Option<usize>,
    /// Also answer each function's and view's whole definition (long: best with `table`).
    #[serde(default)]
    pub bodies: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MistakeInput {
    /// What went wrong.
    pub what: String,
    /// What to do differently next time.
    pub lesson: String,
    pub plan_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReviewArgs {
    /// The plan to review.
    pub plan_id: String,
}

#[derive(Clone)]
pub struct DrydockServer {
    engine: Arc<Engine>,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

/// Who drydock records as the author of plans and mistakes: over HTTP the token's principal
/// (never the client's self-declared name); over stdio the MCP client's name (from the
/// handshake, or from the request's metadata on the revision without one) marked `(stdio)` —
/// a name no principal can have, so that an agent naming itself after an approver is never
/// taken for one — with the OS user running the server, as an agent.
fn agent(peer: &Peer<RoleServer>, meta: &RequestMetaObject, extensions: &Extensions) -> Principal {
    if let Some(who) = extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
    {
        return who.clone();
    }
    let name = peer
        .peer_info()
        .map(|i| i.client_info.name.clone())
        .or_else(|| meta.client_info().map(|i| i.name))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "unknown-agent".into());
    Principal {
        name: format!("{} (stdio)", name.trim()),
        grant: Grant::Agent,
        via: Via::Stdio,
        os_user: crate::identity::os_user(),
    }
}

#[tool_router]
impl DrydockServer {
    pub fn new(engine: Arc<Engine>) -> Self {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            schema::conform_tool(&mut route.attr);
        }
        DrydockServer {
            engine,
            tool_router,
            prompt_router: Self::prompt_router(),
        }
    }

    /// Propose a migration: `steps`, a `template`, or `desired` (the tables as you want them;
    /// drydock plans each difference the zero-downtime way). Stores an immutable plan and returns
    /// its id, checksum, the analysis (per statement kind, tables, locks; hazards with fixes;
    /// impact; risk), the safety checklist, lessons from past mistakes, and the next steps; a
    /// `desired` the target already has answers `nothing_to_change` and stores nothing.
    #[tool(
        name = "plan",
        title = "Propose a migration plan",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn plan(
        &self,
        Parameters(p): Parameters<PlanInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<PlanAnswer>, ToolError> {
        let desired = match (p.desired, p.renames, p.allow_drop, p.scope) {
            (Some(sql), renames, allow_drop, scope) => Some(crate::plan::Desired {
                sql,
                renames: renames.unwrap_or_default(),
                allow_drop: allow_drop.unwrap_or(false),
                whole_schema: scope == Some(DesiredScope::Schema),
            }),
            (None, None, None, None) => None,
            (None, ..) => {
                return Err(Error::invalid(
                    crate::error::Part::Plan,
                    "`renames`, `allow_drop` and `scope` go with `desired`",
                )
                .into());
            }
        };
        let req = PlanRequest {
            goal: p.goal,
            target: p.target,
            steps: p.steps,
            template: p.template,
            params: p.params,
            checks: p.checks.unwrap_or_default(),
            urgency: p.urgency.unwrap_or_default(),
            supersedes: p.supersedes,
            desired,
        };
        let planned = self
            .engine
            .plan_or_nothing(req, &agent(&peer, &meta, &extensions))
            .await?;
        Ok(Json(PlanAnswer {
            nothing_to_change: planned.is_none(),
            plan: planned.map(PlanOutcome::fit),
        }))
    }

    /// Render a template from the library into steps and checks. Without `template`, list the
    /// templates with their parameter schemas. Identifiers are validated and quoted; values are
    /// escaped — a parameter can never inject SQL.
    #[tool(
        name = "render-template",
        title = "Render a migration template",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn render_template(
        &self,
        Parameters(p): Parameters<RenderInput>,
    ) -> Result<Json<RenderOutput>, ToolError> {
        match p.template {
            None => Ok(Json(RenderOutput {
                templates: Some(self.engine.templates()),
                template: None,
                steps: None,
                checks: None,
                script: None,
            })),
            Some(name) => {
                let params = p.params.unwrap_or(serde_json::json!({}));
                let r = self
                    .engine
                    .render(&name, params, p.target.as_deref())
                    .await?;
                Ok(Json(RenderOutput {
                    templates: None,
                    template: Some(r.template),
                    steps: Some(r.steps),
                    checks: Some(r.checks),
                    script: Some(r.script),
                }))
            }
        }
    }

    /// Test a plan on a non-production target (a scratch copy of the linked staging by default):
    /// up, checks, down, verify the schema returned to its original state, up again. Reports
    /// measured durations, locks and rewrites per statement, row ratios and a production estimate.
    #[tool(
        name = "dry-run",
        title = "Dry-run a plan on staging",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn dry_run(
        &self,
        Parameters(p): Parameters<DryRunInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<DryRunReport>, ToolError> {
        Ok(Json(
            self.engine
                .dry_run(
                    &p.plan_id,
                    p.target.as_deref(),
                    &agent(&peer, &meta, &extensions),
                )
                .await?
                .fit(),
        ))
    }

    /// Apply a plan's pending steps in order, until a gated step or the end — only if every
    /// checklist item holds (production); otherwise refuse with the unmet items. Takes and
    /// verifies a backup first on production. Sends progress notifications.
    #[tool(
        name = "apply",
        title = "Apply an approved plan",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn apply(
        &self,
        Parameters(p): Parameters<PlanIdInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<ApplyReport>, ToolError> {
        let agent = agent(&peer, &meta, &extensions);
        let sender = meta.get_progress_token().map(|token| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<crate::engine::Progress>();
            let peer = peer.clone();
            tokio::spawn(async move {
                // MCP requires each notification's progress to be larger than the last: a
                // report that did not move (a batch waiting on a lagging replica) is not sent;
                // `status` has the why.
                let mut last: Option<u64> = None;
                while let Some(p) = rx.recv().await {
                    if last.is_some_and(|l| p.done <= l) {
                        continue;
                    }
                    last = Some(p.done);
                    let param = ProgressNotificationParam::new(token.clone(), p.done as f64)
                        .with_total(p.total as f64)
                        .with_message(p.message);
                    let _ = peer.notify_progress(param).await;
                }
            });
            tx
        });
        Ok(Json(
            self.engine.apply(&p.plan_id, &agent, sender).await?.fit(),
        ))
    }

    /// Run the plan's checks and built-in integrity checks (integrity, foreign keys, schema equal
    /// to the dry-run's post-up schema, history) on the target.
    #[tool(
        name = "validate",
        title = "Validate an applied plan",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn validate(
        &self,
        Parameters(p): Parameters<PlanIdInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<ValidateReport>, ToolError> {
        Ok(Json(
            self.engine
                .validate(&p.plan_id, &agent(&peer, &meta, &extensions))
                .await?,
        ))
    }

    /// Run the `down` of applied steps in reverse, within the rollback window, and verify the
    /// schema equals the pre-apply schema. Needs a `reason`.
    #[tool(
        name = "rollback",
        title = "Roll back an applied plan",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn rollback(
        &self,
        Parameters(p): Parameters<RollbackInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<RollbackReport>, ToolError> {
        let reason = p.reason.unwrap_or_default();
        Ok(Json(
            self.engine
                .rollback(&p.plan_id, &reason, &agent(&peer, &meta, &extensions))
                .await?,
        ))
    }

    /// One plan in brief (steps' states, checklist, worst hazards, newest runs, decisions, what
    /// runs now); `detail: true` for the full report; without `plan_id`, the list of plans.
    #[tool(
        name = "status",
        title = "Plan status",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn status(
        &self,
        Parameters(p): Parameters<StatusInput>,
    ) -> Result<Json<StatusOutput>, ToolError> {
        match p.plan_id {
            Some(id) => {
                let report = self.engine.status(&id).await?;
                Ok(Json(StatusOutput {
                    plan: Some(report.brief()),
                    report: p.detail.then_some(report),
                    plans: None,
                }))
            }
            None => Ok(Json(StatusOutput {
                plan: None,
                report: None,
                plans: Some(self.engine.list().await?),
            })),
        }
    }

    /// Read-only: a target's tables, columns, indexes, constraints and row counts (no data rows),
    /// a page of tables at a time (`next` reads the following page); partitions under their
    /// parent with their bounds; what each relation is (partitioned, a materialized view and
    /// whether it is populated); the functions, triggers and views reading each table's columns;
    /// the enums and domains the columns use (`bodies` adds the definitions); and the migration
    /// tools already managing it.
    #[tool(
        name = "inspect",
        title = "Inspect a database's schema",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn inspect(
        &self,
        Parameters(p): Parameters<InspectInput>,
    ) -> Result<Json<InspectReport>, ToolError> {
        Ok(Json(
            self.engine
                .inspect(
                    &p.target,
                    p.table.as_deref(),
                    crate::engine::Page {
                        after: p.after,
                        limit: p.limit,
                    },
                    p.bodies,
                )
                .await?,
        ))
    }

    /// Append your own mistake and its lesson to the error log (ERRORS.md), so it does not repeat.
    #[tool(
        name = "record-mistake",
        title = "Record a mistake in ERRORS.md",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn record_mistake(
        &self,
        Parameters(p): Parameters<MistakeInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        extensions: Extensions,
    ) -> Result<Json<MistakeReport>, ToolError> {
        Ok(Json(
            self.engine
                .record_mistake(
                    &p.what,
                    &p.lesson,
                    p.plan_id.as_deref(),
                    &agent(&peer, &meta, &extensions),
                )
                .await?,
        ))
    }
}

fn lessons_section(engine: &Engine) -> String {
    match engine.errors.lessons() {
        Ok(l) if !l.is_empty() => {
            let mut s = String::from("\n## Lessons from the error log (ERRORS.md)\n");
            for l in l.iter().take(20) {
                s.push_str(&format!(
                    "- [{}] {} (seen {}×)\n",
                    l.code, l.lesson, l.count
                ));
            }
            s
        }
        _ => "\n## Lessons from the error log (ERRORS.md)\n- none recorded yet\n".into(),
    }
}

#[prompt_router]
impl DrydockServer {
    /// The migration specialist's working instructions, with the current lessons of ERRORS.md.
    #[prompt(name = "migration-specialist")]
    async fn migration_specialist(&self) -> Vec<PromptMessage> {
        let text = format!(
            "{}{}",
            include_str!("../../prompts/migration-specialist.md"),
            lessons_section(&self.engine)
        );
        vec![PromptMessage::new_text(PromptRole::User, text)]
    }

    /// The review checklist for a plan, with the plan itself.
    #[prompt(name = "database-migration-review")]
    async fn database_migration_review(
        &self,
        Parameters(a): Parameters<ReviewArgs>,
    ) -> Result<Vec<PromptMessage>, McpError> {
        let plan = self
            .engine
            .status(&a.plan_id)
            .await
            .map_err(|e| McpError::invalid_params(redact(&e.to_string()), None))?;
        let text = format!(
            "{}\n---\n\n{}",
            include_str!("../../prompts/database-migration-review.md"),
            plan.to_markdown()
        );
        Ok(vec![PromptMessage::new_text(PromptRole::User, text)])
    }

    /// The P0/P1 hotfix process.
    #[prompt(name = "hotfix-checklist")]
    async fn hotfix_checklist(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            PromptRole::User,
            include_str!("../../prompts/hotfix-checklist.md"),
        )]
    }
}

const INSTRUCTIONS: &str = "drydock changes databases safely. Workflow: `inspect` the target, `plan` a change \
(steps with up/down, or a template), `dry-run` it on staging, wait for an engineer to approve it \
(`drydock approve`), `apply`, `validate`, and `rollback` with a reason if needed. `status` shows where a plan \
is and what comes next. Refusals say what is unmet and how to fix it. The `migration-specialist` prompt has \
the full working instructions and the lessons of past mistakes.";

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DrydockServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("drydock", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut resources = vec![
            Resource::new("drydock://errors", "errors")
                .with_description("ERRORS.md: agent mistakes and their lessons")
                .with_mime_type("text/markdown"),
            Resource::new("drydock://checklist", "checklist")
                .with_description("The safety checklist and the active policy")
                .with_mime_type("application/json"),
        ];
        for t in self.engine.templates() {
            resources.push(
                Resource::new(
                    format!("drydock://templates/{}", t.name),
                    format!("template {}", t.name),
                )
                .with_description(t.description)
                .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("drydock://plans/{plan_id}", "plan")
                .with_description("A plan as JSON and as markdown"),
            ResourceTemplate::new("drydock://templates/{name}", "template")
                .with_description("A migration template with its parameter schema"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.clone();
        let not_found = |what: String| McpError::resource_not_found(redact(&what), None);
        let contents = if uri == "drydock://errors" {
            let text = self
                .engine
                .errors
                .read()
                .map_err(|e| not_found(e.to_string()))?;
            vec![ResourceContents::text(text, &uri).with_mime_type("text/markdown")]
        } else if uri == "drydock://checklist" {
            let body = serde_json::to_string(&self.engine.checklist_policy())
                .map_err(|e| McpError::internal_error(e.to_string(), None))?;
            vec![ResourceContents::text(body, &uri).with_mime_type("application/json")]
        } else if let Some(id) = uri.strip_prefix("drydock://plans/") {
            let status = self
                .engine
                .status(id)
                .await
                .map_err(|e| not_found(e.to_string()))?;
            let json = serde_json::to_string_pretty(&status)
                .map_err(|e| McpError::internal_error(e.to_string(), None))?;
            vec![
                ResourceContents::text(json, &uri).with_mime_type("application/json"),
                ResourceContents::text(status.to_markdown(), &uri).with_mime_type("text/markdown"),
            ]
        } else if let Some(name) = uri.strip_prefix("drydock://templates/") {
            let (source, info) = self
                .engine
                .template_source(name)
                .map_err(|e| not_found(e.to_string()))?;
            let body = serde_json::json!({"name": info.name, "description": info.description, "params": info.params, "source": source});
            vec![ResourceContents::text(body.to_string(), &uri).with_mime_type("application/json")]
        } else {
            return Err(not_found(format!("no resource {uri}")));
        };
        Ok(ReadResourceResult::new(contents).into())
    }
}

/// Serves MCP over stdio until the client disconnects.
/// Serves MCP on stdio until the client closes it or a signal arrives; then lets running
/// applies stop at their next checkpoint (at most a minute) before returning.
pub async fn serve_stdio(engine: Arc<Engine>) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let server = DrydockServer::new(engine.clone());
    let served = match server.serve(rmcp::transport::stdio()).await {
        Ok(running) => {
            tokio::select! {
                done = running.waiting() => done.map(|_| ()).map_err(anyhow::Error::from),
                () = shutdown_signal() => Ok(()),
            }
        }
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(e.into()),
    };
    engine.shutdown(std::time::Duration::from_secs(60)).await;
    served
}

/// Resolves at SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: running operations stop at their next checkpoint");
}
