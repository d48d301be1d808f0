//! The lifecycle (spec §2): plan → dry-run → approve → apply → validate → rollback. Each
//! operation checks its preconditions, talks to the target through `db`, and records its
//! outcome through one `Store::commit`. Failures an agent should learn from are appended to
//! ERRORS.md here, in one place (`Engine::learn`).
//! Imports every domain module below it; nothing but the adapters (`mcp`, `cli`) imports it.

mod apply;
mod brief;
mod decisions;
mod desired;
mod dry_run;
mod exercise;
mod export;
mod fit;
mod identity;
mod inspect;
mod lease;
mod plan;
mod read;
mod reconcile;
mod rehearsal;
mod report;
mod roles;
mod rollback;
mod rollout;
mod rollout_checks;
mod staging;
mod validate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

pub use crate::export::Drift;
pub use brief::{HazardBrief, RunBrief, StatusBrief, StepBrief};
pub use export::{ExportReport, StepVersion, Unexported};
pub use fit::{LISTED, Omitted};
pub use identity::CreatedToken;
pub use inspect::{ListedPartition, Partitions, ViewInfo};
pub use plan::next_steps;
pub use read::TargetHealth;
pub use report::*;
pub use roles::RoleFix;
use validate::{check_failure, failures, pre_apply_lines};

use crate::analysis;
use crate::checklist::{self, ChecklistItem, Evidence, Item};
use crate::config::{Config, Role};
use crate::db::{History, HistoryRow, Sandbox, StatementRun, StepFailure, Stmt, Target};
use crate::error::{Error, Part, Result, Unverified};
use crate::errorlog::{ErrorLog, Mistake};
use crate::identity::{Grant, Principal, Via};
use crate::plan::evidence::RunDetail;
use crate::plan::{Body, Check, Decision, Gate, Plan, RunKind, Status, Step, StepState, Urgency};
use crate::render;
use crate::sql::Dialect;
use crate::store::{Audit, Change, NewRun, Store};

pub use desired::{DesiredDiff, DiffStep};

/// What the agent asked `plan` for, after the MCP layer decoded it.
#[derive(Default)]
pub struct PlanRequest {
    pub goal: String,
    pub target: String,
    pub steps: Option<Vec<Step>>,
    pub template: Option<String>,
    pub params: Option<serde_json::Value>,
    pub checks: Vec<Check>,
    pub urgency: Urgency,
    pub supersedes: Option<String>,
    /// Instead of `steps` or `template`: the schema wanted, compared with the catalog.
    pub desired: Option<crate::plan::Desired>,
}

/// Which page of a long listing (`inspect`'s tables): those after `after`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// A progress tick during apply: `done` of `total` statements.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
    /// A backfill's last sample of the database around it (replica lag, oldest transaction,
    /// dead tuples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::db::Health>,
}

pub struct Engine {
    pub config: Arc<Config>,
    pub store: Store,
    pub errors: ErrorLog,
    /// Targets with an apply or rollback running in this process.
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Set at shutdown: long steps stop at their next checkpoint.
    halt: crate::db::Halt,
    /// This server, as its leases name it (`host:pid`).
    server: String,
    /// The plain sessions kept for drydock's own reads between tool calls.
    spares: crate::db::Spares,
}

/// What runs on a target in this process: at most one apply or rollback per target.
#[derive(Debug, Clone)]
struct Running {
    plan_id: String,
    action: lease::Operation,
    started_at: String,
    progress: Option<Progress>,
}

/// Clears a target's running mark when the operation ends, however it ends (panics included).
struct RunningGuard(Arc<Mutex<HashMap<String, Running>>>, String);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.lock().expect("running map lock").remove(&self.1);
    }
}

/// Refuses a plan any of whose SQL reaches beyond the database (spec §3–5) before any of it
/// runs on `target`: every verb that executes the plan's SQL — dry-run, apply, validate,
/// rollback — asks. The statement gate first; then every function the SQL calls, resolved in the
/// target's catalog and judged by what it is there.
async fn admit(plan: &Plan, target: &Target) -> Result<()> {
    if let Some(v) = analysis::privilege::violations(&plan.body, target.engine())
        .into_iter()
        .next()
    {
        return Err(v.into());
    }
    if target.engine() == Dialect::Postgres
        && let Some(place) = analysis::privilege::dynamic_sql(&plan.body)
            .into_iter()
            .next()
        && let Some((function, why)) = target.dynamic_reach().await?.into_iter().next()
    {
        return Err(Error::Forbidden {
            place,
            construct: "`EXECUTE`".into(),
            reason: format!(
                "runs SQL built at run time as a role that, on this target, may call `{function}` ({why}); revoke EXECUTE on it from that role and from PUBLIC, or write the statements out"
            ),
        });
    }
    if target.engine() == Dialect::Postgres {
        let called: Vec<String> = analysis::privilege::called_functions(&plan.body)?
            .into_iter()
            .collect();
        if let Some((function, why)) = target
            .beyond_the_database(&called)
            .await?
            .into_iter()
            .next()
        {
            return Err(Error::Forbidden {
                place: "the plan's SQL".into(),
                construct: format!("`{function}`"),
                reason: format!("{why}, as the target's catalog says"),
            });
        }
    }
    Ok(())
}

/// The schema as a plan's verifications compare it (rollback verified, drift): when the plan's
/// SQL casts `'now'` (or `'today'`, ...), with the instants such literals froze into view
/// definitions masked — a view created again from the same SQL later freezes another.
pub(super) fn comparable(plan: &Plan, f: &crate::db::Fingerprint) -> crate::db::Fingerprint {
    if freezes_time(plan) {
        f.without_frozen_time()
    } else {
        f.clone()
    }
}

pub(super) fn freezes_time(plan: &Plan) -> bool {
    analysis::pg::freezes_time(&plan.sql_text())
}

/// Runs each discovered group's query on its admin target and settles the group with the
/// members found (a failure leaves that group unusable, with the reason; nothing else stops).
async fn discover_groups(config: &mut Config) {
    let queries: Vec<(String, crate::config::Discover)> = config
        .groups
        .values()
        .filter_map(|g| g.discover.clone().map(|d| (g.name.clone(), d)))
        .collect();
    for (group, d) in queries {
        let rows = async {
            let admin = Target::open(config, config.target(&d.admin)?).await?;
            admin.text_pairs(&d.sql).await
        }
        .await
        .map_err(|e| e.to_string());
        config.discovered(&group, rows);
    }
}

/// The columns a backfill overwrites (and saves first); none for a copy or a delete, which save
/// the copied keys or the deleted rows.
fn overwritten(spec: &crate::plan::Backfill) -> Result<Vec<String>> {
    match spec.mode() {
        crate::plan::BackfillMode::Update(set) => {
            analysis::pg::assigned_columns(set).map_err(|e| Error::invalid(Part::Backfill, e))
        }
        _ => Ok(vec![]),
    }
}

impl Engine {
    pub async fn open(mut config: Config) -> Result<Engine> {
        discover_groups(&mut config).await;
        let store = Store::configured(&config).await?;
        let errors = ErrorLog::new(&config.errors_path, &config.state_dir);
        Ok(Engine {
            config: Arc::new(config),
            store,
            errors,
            running: Arc::new(Mutex::new(HashMap::new())),
            halt: crate::db::Halt::default(),
            server: lease::this_server(),
            spares: crate::db::Spares::default(),
        })
    }

    /// `result`, with the lesson of its failure learnt (see `learn`).
    async fn learned<T>(
        &self,
        result: Result<T>,
        agent: &Principal,
        tool: &str,
        plan: Option<&Plan>,
    ) -> Result<T> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.learn(e, agent, tool, plan).await),
        }
    }

    /// Records a mistake: once in the state store (counted across every server sharing it),
    /// and in this repository's ERRORS.md. Returns its count across servers: the store's, one
    /// atomic counter, so concurrent repeats are answered 1..N each once (the larger of the two
    /// counts, which concurrent callers bump in different orders, told two callers the same
    /// number); ERRORS.md's only when the store could not count it. Neither failing hides the
    /// other, nor the refusal that caused it.
    pub async fn note(&self, m: &Mistake) -> u64 {
        let local = self.errors.record(m).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not append to the error log");
            0
        });
        match self.store.record_mistake(&crate::errorlog::key(m), m).await {
            Ok(shared) => u64::try_from(shared).unwrap_or(local),
            Err(e) => {
                tracing::error!(error = %e, "could not record the mistake in the state store");
                local
            }
        }
    }

    /// Appends the lesson of a failure to ERRORS.md and the state store (when it is an agent
    /// mistake) and returns it.
    pub async fn learn(
        &self,
        err: Error,
        agent: &Principal,
        tool: &str,
        plan: Option<&Plan>,
    ) -> Error {
        // SQL that drydock's own template wrote failing is drydock's defect, not a lesson for
        // the agent: it goes to drydock's log and to ERRORS.md's own section for drydock's
        // defects, never among the agent's mistakes (nor into the shared lessons). A
        // template that renders the agent's statements verbatim (`migration`) is not drydock's.
        let template = plan.and_then(|p| p.body.vouched_template());
        // ...unless the step that failed carries the agent's own SQL, given as a parameter.
        let agents = match (&err, plan) {
            (Error::SqlFailed { step, .. }, Some(p)) => p.body.step_carries_agent_sql(step),
            _ => false,
        };
        let drydocks = !agents
            && matches!(
                err,
                Error::SqlFailed { .. }
                    | Error::RollbackUnverified { .. }
                    | Error::CheckFailed { .. }
                    | Error::AppProbeFailed { .. }
            );
        // What any entry of this failure says of where it happened.
        let entry = Mistake {
            agent: agent.name.clone(),
            tool: tool.to_string(),
            plan: plan.map(|p| p.id.clone()),
            target: plan.map(|p| p.target.clone()),
            code: err.code().to_string(),
            what: err.to_string(),
            lesson: String::new(),
            tables: plan.map(|p| p.tables()).unwrap_or_default(),
        };
        if let Some(template) = template.filter(|_| drydocks) {
            tracing::error!(template, code = err.code(), error = %err, "drydock's template failed");
            let defect = Mistake {
                agent: "drydock".into(),
                what: format!("template `{template}`: {err}"),
                lesson: format!(
                    "drydock's template `{template}` wrote SQL that failed on this database: report it; write the change as `steps` meanwhile"
                ),
                ..entry
            };
            if let Err(e) = self
                .errors
                .record_as(&defect, crate::errorlog::Kind::Defect)
            {
                tracing::error!(error = %e, "could not append drydock's defect to the error log");
            }
            return err;
        }
        if let Some(lesson) = err.lesson() {
            let mistake = Mistake {
                lesson: lesson.to_string(),
                ..entry
            };
            self.note(&mistake).await;
        }
        err
    }

    fn scratch_path(&self, plan_id: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        self.config
            .state_dir
            .join("scratch")
            .join(format!("{plan_id}-{nanos}.db"))
    }

    async fn open_target(&self, name: &str) -> Result<Target> {
        self.open_config(self.config.target(name)?).await
    }

    /// Opens `target` for a plan to change it: its migration lock taken as it opens (the lock's
    /// session and the reads' session connect side by side), then the plan admitted there. A
    /// plan refused gives the lock back.
    async fn open_admitted(
        &self,
        plan: &Plan,
        target: &crate::config::TargetConfig,
    ) -> Result<(Target, crate::db::TargetLock)> {
        let (t, lock) = Target::open_locked(&self.config, target, &self.spares).await?;
        if let Err(e) = admit(plan, &t).await {
            lock.release().await;
            return Err(e);
        }
        Ok((t, lock))
    }

    /// Opens a target, starting from the session kept for it since the last call.
    async fn open_config(&self, target: &crate::config::TargetConfig) -> Result<Target> {
        Target::open_kept(&self.config, target, &self.spares).await
    }

    /// A step's SQL as statements, each marked transactional or not.
    fn stmts(step: &str, sql: Option<&str>) -> Result<Vec<Stmt>> {
        let Some(sql) = sql else { return Ok(vec![]) };
        Ok(analysis::statements(step, sql)?
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let f = analysis::classify(step, i + 1, st, Dialect::Postgres);
                Stmt {
                    sql: st.sql.clone(),
                    transactional: f.transactional,
                }
            })
            .collect())
    }

    /// What undoes a step: a backfill's saved values put back, then its `down`, in one
    /// transaction (rollback on the target, and the same on its linked staging).
    async fn down_stmts(
        plan: &Plan,
        name: &str,
        step: &Step,
        target: &Target,
    ) -> Result<Vec<Stmt>> {
        let mut stmts = match &step.backfill {
            Some(spec) => {
                target
                    .backfill_restore(&plan.id, name, spec, &overwritten(spec)?)
                    .await?
            }
            None => vec![],
        };
        stmts.extend(Self::stmts(name, step.down.as_deref())?);
        Ok(stmts)
    }

    /// The tables a step's statements touch (for pre-flight lock checks).
    fn step_tables(plan: &Plan, step: &str) -> Vec<String> {
        let mut out: Vec<String> = plan
            .analysis
            .statements
            .iter()
            .filter(|f| f.step == step)
            .flat_map(|f| f.tables.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `target`: where it failed (a dry-run's staging, a rollout's member), which is not always
    /// the plan's own target.
    fn sql_failed(
        plan: &Plan,
        target: &str,
        phase: &'static str,
        step: &str,
        f: StepFailure,
    ) -> Error {
        Error::SqlFailed {
            phase,
            target: target.to_string(),
            step: step.to_string(),
            index: f.index,
            cause: format!("{} — in `{}`", f.reason(&plan.body), truncate(&f.sql, 200)),
        }
    }

    /// Loads a plan for `tool`. A plan whose body no longer matches its checksum (edited in the
    /// state store) is refused by every verb, and the tampering is audited and logged.
    async fn load(&self, plan_id: &str, who: &Principal, tool: &str) -> Result<Plan> {
        match self.store.plan(plan_id).await.map_err(Error::from) {
            Err(e @ Error::PlanTampered { .. }) => {
                let _ = self
                    .store
                    .commit(Change {
                        plan_id,
                        audit: Audit::new(
                            who,
                            "plan-tampered",
                            json!({"tool": tool, "error": e.to_string()}),
                        ),
                        ..Change::default()
                    })
                    .await;
                Err(self.learn(e, who, tool, None).await)
            }
            other => other,
        }
    }
}

/// Refuses `action` unless the plan's status passes `allowed`.
fn require(
    plan: &Plan,
    action: &'static str,
    allowed: fn(Status) -> bool,
    needed: &'static str,
) -> Result<()> {
    if allowed(plan.status) {
        return Ok(());
    }
    Err(Error::WrongStatus {
        plan: plan.id.clone(),
        status: plan.status.to_string(),
        action,
        needed,
    })
}

fn unmet_error(plan: &Plan, items: &[ChecklistItem]) -> Error {
    let unmet = checklist::unmet(items);
    Error::ChecklistUnmet {
        plan: plan.id.clone(),
        count: unmet.len(),
        items: unmet
            .iter()
            .map(|i| i.item.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        checklist: items.iter().map(ChecklistItem::shown).collect(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}
