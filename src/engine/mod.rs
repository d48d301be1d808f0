//! The lifecycle (spec §2): plan → dry-run → approve → apply → validate → rollback. Each
//! operation checks its preconditions, talks to the target through `target`, and records its
//! outcome through one `Store::commit`. Failures an agent should learn from are appended to
//! ERRORS.md here, in one place (`Engine::learn`).

mod reconcile;
mod report;
mod staging;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

pub use report::*;

use crate::analysis;
use crate::checklist::{self, ChecklistItem, Evidence};
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::errorlog::{ErrorLog, Mistake};
use crate::plan::{Body, Check, Gate, Plan, Status, Step, StepState, Urgency};
use crate::render;
use crate::store::{Change, NewRun, Store};
use crate::target::{History, HistoryRow, Sandbox, StatementRun, StepFailure, Stmt, Target};

/// What the agent asked `plan` for, after the MCP layer decoded it.
pub struct PlanRequest {
    pub goal: String,
    pub target: String,
    pub steps: Option<Vec<Step>>,
    pub template: Option<String>,
    pub params: Option<serde_json::Value>,
    pub checks: Vec<Check>,
    pub urgency: Urgency,
    pub supersedes: Option<String>,
}

/// A progress tick during apply: `done` of `total` statements.
#[derive(Debug, Clone)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
}

pub struct Engine {
    pub config: Arc<Config>,
    pub store: Store,
    pub errors: ErrorLog,
    /// Targets with an apply or rollback running in this process.
    running: Arc<Mutex<HashMap<String, Running>>>,
}

/// What runs on a target in this process: at most one apply or rollback per target.
#[derive(Debug, Clone)]
struct Running {
    plan_id: String,
    action: &'static str,
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
/// runs: every verb that executes the plan's SQL — dry-run, apply, validate, rollback — asks.
fn admit(plan: &Plan, engine: &str) -> Result<()> {
    match analysis::privilege::violations(&plan.body, engine)
        .into_iter()
        .next()
    {
        None => Ok(()),
        Some(v) => Err(Error::Forbidden {
            place: v.place,
            construct: format!("`{}`", v.forbidden.construct),
            reason: v.forbidden.reason,
        }),
    }
}

/// The target's schema before the plan's first step was applied, as the first successful apply
/// run recorded it.
fn pre_apply_lines(runs: &[crate::store::RunRow]) -> Option<Vec<String>> {
    // The latest `pre-apply` record (taken when no step was applied); stores written before it
    // existed kept the fingerprint in the first applied step's run.
    runs.iter()
        .rev()
        .find(|r| r.kind == "pre-apply")
        .or_else(|| {
            runs.iter().find(|r| {
                r.kind == "apply" && r.ok && !r.detail["fingerprint_before_lines"].is_null()
            })
        })
        .and_then(|r| lines_of(&r.detail["fingerprint_before_lines"]))
}

/// The column lines of `tables` in a schema fingerprint (both engines' formats).
fn table_shape(
    fp: &crate::target::Fingerprint,
    tables: &[String],
) -> std::collections::BTreeSet<String> {
    let prefixes: Vec<String> = tables
        .iter()
        .flat_map(|t| {
            let qualified = if t.contains('.') {
                t.clone()
            } else {
                format!("public.{t}")
            };
            [format!("column {qualified}."), format!("table {t} column ")]
        })
        .collect();
    fp.lines
        .iter()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
        .cloned()
        .collect()
}

/// Fingerprint lines stored in a run's detail.
fn lines_of(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array().map(|l| {
        l.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    })
}

/// Whether the target changed exactly as the dry-run changed staging: the schema lines the
/// apply added and removed equal those the dry-run's `up` added and removed. Comparing changes,
/// not whole schemas, tolerates differences staging had before (a staging is rarely a perfect
/// copy) while catching an apply that did something else. Without the dry-run's starting schema
/// (evidence recorded before drydock kept it) the whole post-up schema is compared.
fn schema_change_check(
    dry_before: Option<Vec<String>>,
    dry_after: Option<Vec<String>>,
    pre_apply: Option<Vec<String>>,
    current: &crate::target::Fingerprint,
    steps_pending: bool,
) -> BuiltinCheck {
    use std::collections::BTreeSet;
    let check = |passed: bool, skipped: bool, detail: String| BuiltinCheck {
        name: "schema-matches-dry-run".into(),
        passed,
        skipped,
        detail,
    };
    let Some(dry_after) = dry_after else {
        return check(
            false,
            true,
            "skipped: no passing dry-run of this checksum to compare with".into(),
        );
    };
    if steps_pending {
        return check(
            false,
            true,
            "skipped: steps are still pending, so the schema is between the dry-run's states"
                .into(),
        );
    }
    let now: BTreeSet<&String> = current.lines.iter().collect();
    match (dry_before, pre_apply) {
        (Some(dry_before), Some(pre_apply)) => {
            let (db, da): (BTreeSet<&String>, BTreeSet<&String>) =
                (dry_before.iter().collect(), dry_after.iter().collect());
            let pa: BTreeSet<&String> = pre_apply.iter().collect();
            let expected_added: BTreeSet<&&String> = da.difference(&db).collect();
            let expected_removed: BTreeSet<&&String> = db.difference(&da).collect();
            let added: BTreeSet<&&String> = now.difference(&pa).collect();
            let removed: BTreeSet<&&String> = pa.difference(&now).collect();
            if added == expected_added && removed == expected_removed {
                check(
                    true,
                    false,
                    format!(
                        "the target changed exactly as the dry-run did ({} schema line(s) added, {} removed)",
                        added.len(),
                        removed.len()
                    ),
                )
            } else {
                let diff = |label: &str, a: &BTreeSet<&&String>, b: &BTreeSet<&&String>| {
                    a.difference(b)
                        .take(5)
                        .map(|l| format!("{label}{l}"))
                        .collect::<Vec<_>>()
                };
                let detail = [
                    diff("unexpected +", &added, &expected_added),
                    diff("missing +", &expected_added, &added),
                    diff("unexpected -", &removed, &expected_removed),
                    diff("missing -", &expected_removed, &removed),
                ]
                .concat()
                .join("; ");
                check(
                    false,
                    false,
                    format!("drift: the target did not change as the dry-run did: {detail}"),
                )
            }
        }
        _ => {
            let expected = crate::target::Fingerprint::from_lines(dry_after);
            if expected == *current {
                check(
                    true,
                    false,
                    "the schema equals the dry-run's post-up schema".into(),
                )
            } else {
                check(
                    false,
                    false,
                    format!(
                        "drift from the dry-run's post-up schema: {}",
                        expected.diff(current)
                    ),
                )
            }
        }
    }
}

/// The columns a backfill overwrites (and saves first).
fn overwritten(spec: &crate::plan::Backfill) -> Result<Vec<String>> {
    analysis::pg::assigned_columns(&spec.set).map_err(Error::InvalidInput)
}

/// Whether a failure with this code is an agent mistake worth a lesson in ERRORS.md.
fn lesson_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "checklist-unmet" => {
            "call `dry-run` on the plan, wait for an engineer's `drydock approve`, and only then `apply`; check `status` for unmet items first"
        }
        "production-target" => {
            "dry-runs go to the production target's linked staging: omit `target` in `dry-run`"
        }
        "sql-failed" => {
            "run `inspect` on the target before writing SQL, and let `dry-run` catch errors before production"
        }
        "check-failed" => {
            "write checks that state what must be true after `up`, and verify the data they depend on with `inspect`"
        }
        "rollback-unverified" => {
            "write `down` as the exact inverse of `up`: every column, index and constraint added must be removed, and vice versa"
        }
        "validation-failed" => {
            "validate right after apply and roll back with a reason when a check fails"
        }
        "invalid-check" => "a check is exactly one SELECT; writes belong in steps",
        "plan-tampered" => {
            "plans are immutable once stored: change one by submitting a new plan (`supersedes`), never by editing the state store"
        }
        "forbidden-statement" => {
            "keep agent SQL inside the database: no COPY to/from programs or files, no functions that touch the server's files, settings or other sessions, no roles, SET ROLE, ALTER SYSTEM, untrusted languages or dynamic SQL; ask an engineer for anything that needs them"
        }
        "rollback-window-closed" => {
            "roll back within the rollback window; after it, write a new forward migration"
        }
        "wrong-status" => "call `status` before acting on a plan; follow its `next_steps`",
        "missing-reason" => "every rollback states its reason",
        "backup-unverified" => "make sure a restorable backup exists before changing production",
        _ => return None,
    })
}

impl Engine {
    pub async fn open(config: Config) -> Result<Engine> {
        if config.source.is_none() {
            crate::demo::ensure(&config.state_dir).await?;
        }
        let store = Store::open(&config.state_dir).await?;
        let errors = ErrorLog::new(&config.errors_path, &config.state_dir);
        Ok(Engine {
            config: Arc::new(config),
            store,
            errors,
            running: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Appends the lesson of a failure to ERRORS.md (when it is an agent mistake) and returns it.
    pub fn learn(&self, err: Error, agent: &str, tool: &str, plan: Option<&Plan>) -> Error {
        // SQL that drydock's own template wrote failing is drydock's defect, not a lesson for
        // the agent: it goes to drydock's log, never to ERRORS.md under the agent's name.
        let template = plan.and_then(|p| p.body.template.as_deref());
        if let Some(template) = template
            && matches!(
                err.code(),
                "sql-failed" | "rollback-unverified" | "check-failed"
            )
        {
            tracing::error!(template, code = err.code(), error = %err, "drydock's template failed");
            return err;
        }
        if let Some(lesson) = lesson_for(err.code()) {
            let tables = plan.as_ref().map(|p| p.tables()).unwrap_or_default();
            let mistake = Mistake {
                agent: agent.to_string(),
                tool: tool.to_string(),
                plan: plan.map(|p| p.id.clone()),
                target: plan.map(|p| p.target.clone()),
                code: err.code().to_string(),
                what: err.to_string(),
                lesson: lesson.to_string(),
                tables,
            };
            if let Err(e) = self.errors.record(&mistake) {
                tracing::error!(error = %e, "could not append to the error log");
            }
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
        let t = self.config.target(name)?;
        Target::open(&self.config, t).await
    }

    /// A step's SQL as statements, each marked transactional or not.
    fn stmts(step: &str, sql: Option<&str>) -> Result<Vec<Stmt>> {
        let Some(sql) = sql else { return Ok(vec![]) };
        Ok(analysis::statements(step, sql)?
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let f = analysis::classify(step, i + 1, st, "postgres");
                Stmt {
                    sql: st.sql.clone(),
                    transactional: f.transactional,
                }
            })
            .collect())
    }

    /// The tables a step's statements touch (for pre-flight lock checks).
    fn step_tables(plan: &Plan, step: &str) -> Vec<String> {
        let mut out: Vec<String> = plan.analysis["statements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|f| f["step"] == step)
                    .flat_map(|f| f["tables"].as_array().cloned().unwrap_or_default())
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }

    fn sql_failed(plan: &Plan, phase: &'static str, step: &str, f: StepFailure) -> Error {
        Error::SqlFailed {
            phase,
            target: plan.target.clone(),
            step: step.to_string(),
            index: f.index,
            cause: format!("{} — in `{}`", f.cause, truncate(&f.sql, 200)),
        }
    }

    /// Loads a plan for `tool`. A plan whose body no longer matches its checksum (edited in the
    /// state store) is refused by every verb, and the tampering is audited and logged.
    async fn load(&self, plan_id: &str, who: &str, tool: &str) -> Result<Plan> {
        match self.store.plan(plan_id).await {
            Err(e @ Error::PlanTampered { .. }) => {
                let _ = self
                    .store
                    .commit(Change {
                        plan_id,
                        audit: Some((
                            who,
                            "plan-tampered",
                            json!({"tool": tool, "error": e.to_string()}),
                        )),
                        ..Change::default()
                    })
                    .await;
                Err(self.learn(e, who, tool, None))
            }
            other => other,
        }
    }

    // ---------------------------------------------------------------- plan

    pub async fn plan(&self, req: PlanRequest, author: &str) -> Result<PlanOutcome> {
        let target_cfg = self.config.target(&req.target)?;
        if req.goal.trim().is_empty() {
            return Err(Error::InvalidInput(
                "`goal` is empty: say what the change achieves".into(),
            ));
        }
        let template = req.template.clone();
        let (steps, mut checks) = match (req.steps, req.template) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidInput(
                    "give either `steps` or `template` + `params`, not both".into(),
                ));
            }
            (Some(steps), None) => (steps, vec![]),
            (None, Some(name)) => {
                let r = self
                    .render(&name, req.params.unwrap_or(json!({})), Some(&req.target))
                    .await?;
                (r.steps, r.checks)
            }
            (None, None) => (vec![], vec![]),
        };
        checks.extend(req.checks);
        let body = match Body::new(&req.target, steps, checks) {
            Ok(b) => Body { template, ..b },
            Err(e) => return Err(self.learn(e, author, "plan", None)),
        };
        if let Some(prev) = &req.supersedes {
            self.store.plan(prev).await?;
        }
        let target = Target::open(&self.config, target_cfg).await?;
        let catalog = target.catalog().await?;
        let analysis = analysis::analyze(
            &body,
            &catalog,
            &self.config.policy,
            target_cfg.role == Role::Production,
        )?;
        let checksum = body.checksum();
        let plan = Plan {
            id: crate::plan::new_id(&checksum),
            checksum,
            goal: req.goal.trim().to_string(),
            target: req.target.clone(),
            author: author.to_string(),
            urgency: req.urgency,
            status: Status::Planned,
            created_at: crate::store::now(),
            supersedes: req.supersedes,
            body,
            analysis: serde_json::to_value(&analysis).map_err(Error::store)?,
        };
        self.store.insert_plan(&plan).await?;
        let checklist = self.checklist(&plan).await?;
        let codes: Vec<String> = analysis.hazards.iter().map(|h| h.code.clone()).collect();
        let tables: Vec<String> = analysis.impact.iter().map(|t| t.table.clone()).collect();
        let lessons = self.errors.relevant(&codes, &tables)?;
        let next_steps = next_steps(&plan, target_cfg.role, &checklist);
        let warnings = self.dry_run_privileges(&plan.target).await;
        Ok(PlanOutcome {
            plan_id: plan.id,
            checksum: plan.checksum,
            status: plan.status,
            target: plan.target,
            role: target_cfg.role,
            analysis,
            checklist,
            lessons,
            warnings,
            next_steps,
        })
    }

    /// Renders a template; one that moves a column reads the column's indexes, constraints,
    /// identity and comment from `target` to carry them to the column's successor.
    pub async fn render(
        &self,
        name: &str,
        params: serde_json::Value,
        target: Option<&str>,
    ) -> Result<render::Rendered> {
        let deps = match (render::moved_column(name, &params), target) {
            (Some((table, column)), Some(target)) => {
                let cfg = self.config.target(target)?;
                let t = Target::open(&self.config, cfg).await?;
                let deps = t.column_dependents(&table, &column).await?;
                Some(deps.ok_or_else(|| Error::TemplateParams {
                    template: name.into(),
                    reason: format!("target `{target}` has no column {table}.{column}"),
                })?)
            }
            _ => None,
        };
        render::render(name, params, deps.as_ref())
    }

    /// What is wrong with the privileges a dry-run of `target`'s plans would run with; empty
    /// when nothing is, or when the dry-run target cannot be reached (the dry-run will say so).
    pub async fn dry_run_privileges(&self, target: &str) -> Vec<String> {
        let Ok(cfg) = self.config.dry_run_target(target) else {
            return vec![];
        };
        match Target::open(&self.config, cfg).await {
            Ok(t) => t.privilege_warnings().await.unwrap_or_default(),
            Err(_) => vec![],
        }
    }

    pub async fn checklist(&self, plan: &Plan) -> Result<Vec<ChecklistItem>> {
        let role = self.config.target(&plan.target)?.role;
        let runs = self.store.runs(&plan.id).await?;
        let approvals = self.store.approvals(&plan.id).await?;
        let backup = self.store.latest_backup(&plan.target, &plan.id).await?;
        Ok(checklist::evaluate(&Evidence {
            plan,
            role,
            policy: &self.config.policy,
            runs: &runs,
            approvals: &approvals,
            backup: backup.as_ref(),
        }))
    }

    // ------------------------------------------------------------- dry-run

    pub async fn dry_run(
        &self,
        plan_id: &str,
        target: Option<&str>,
        agent: &str,
    ) -> Result<DryRunReport> {
        let plan = self.load(plan_id, agent, "dry-run").await?;
        self.dry_run_plan(&plan, target, agent)
            .await
            .map_err(|e| self.learn(e, agent, "dry-run", Some(&plan)))
    }

    async fn dry_run_plan(
        &self,
        plan: &Plan,
        target: Option<&str>,
        agent: &str,
    ) -> Result<DryRunReport> {
        require(
            plan,
            "dry-run",
            Status::is_pre_apply,
            "planned, tested or approved",
        )?;
        let staging_cfg = match target {
            Some(t) => {
                let cfg = self.config.target(t)?;
                if cfg.role == Role::Production {
                    return Err(Error::ProductionDryRun(t.to_string()));
                }
                // Evidence counts only from the plan's own target, its linked staging, or scratch.
                let own = self.config.target(&plan.target)?;
                let related = cfg.name == own.name
                    || own.staging.as_deref() == Some(&cfg.name)
                    || cfg.role == Role::Scratch;
                if !related {
                    return Err(Error::PlanTargetMismatch {
                        plan: plan.id.clone(),
                        plan_target: plan.target.clone(),
                        target: t.to_string(),
                    });
                }
                cfg
            }
            None => self.config.dry_run_target(&plan.target)?,
        };
        let staging = Target::open(&self.config, staging_cfg).await?;
        admit(plan, staging.engine())?;
        // The plan's own target, when reachable: its shape for the drift check, its row counts
        // for the estimate.
        let own = self.open_target(&plan.target).await.ok();
        self.refuse_drifted_staging(plan, staging_cfg, &staging, own.as_ref())
            .await?;
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let scratch = self.scratch_path(&plan.id);
        std::fs::create_dir_all(scratch.parent().expect("scratch has a parent"))?;
        let mut sandbox = staging.sandbox(&scratch).await?;
        let outcome = self.exercise(plan, &mut sandbox).await;
        sandbox.finish().await;
        let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;

        let record = |ok: bool, detail: serde_json::Value| NewRun {
            kind: "dry-run",
            target: &staging_cfg.name,
            checksum: &plan.checksum,
            ok,
            started_at: started_at.clone(),
            duration_ms,
            detail,
        };
        let mut exercised = match outcome {
            Ok(x) => x,
            Err(e) => {
                let detail =
                    json!({"error": e.to_string(), "code": e.code(), "rollback_verified": false});
                self.store
                    .commit(Change {
                        plan_id: &plan.id,
                        run: Some(record(false, detail)),
                        audit: Some((
                            agent,
                            "dry-run-failed",
                            json!({"target": staging_cfg.name, "error": e.to_string()}),
                        )),
                        ..Change::default()
                    })
                    .await?;
                return Err(e);
            }
        };

        // Row ratio and estimate against the plan's own target.
        let tables = plan.tables();
        let staging_rows = staging.row_counts(&tables).await?;
        let prod_rows = match &own {
            Some(t) => t.row_counts(&tables).await?,
            None => BTreeMap::new(),
        };
        let mut ratios = Vec::new();
        let mut warnings = Vec::new();
        let mut scale: f64 = 1.0;
        for t in &tables {
            let (s, p) = (staging_rows.get(t).copied(), prod_rows.get(t).copied());
            let ratio = match (s, p) {
                (Some(s), Some(p)) if p > 0 => Some(s as f64 / p as f64),
                _ => None,
            };
            if let (Some(s), Some(p)) = (s, p)
                && s > 0
            {
                scale = scale.max(p as f64 / s as f64);
            }
            if let Some(r) = ratio.filter(|r| *r < self.config.policy.min_staging_ratio) {
                warnings.push(format!(
                    "production-like: `{t}` on staging has {:.1}% of production's rows (policy.min_staging_ratio = {})",
                    r * 100.0,
                    self.config.policy.min_staging_ratio
                ));
            }
            ratios.push(TableRatio {
                table: t.clone(),
                staging_rows: s,
                production_rows: p,
                ratio,
            });
        }
        let up_ms: f64 = exercised.statements.iter().map(|s| s.duration_ms).sum();
        let estimate = Estimate {
            staging_ms: up_ms,
            production_ms: up_ms * scale,
            basis: format!(
                "staging duration × {scale:.2} (largest production/staging row ratio of the affected tables)"
            ),
        };
        let disagreements = disagreements(plan, &exercised.statements);
        exercised.checks.iter().filter(|c| !c.passed).for_each(|c| {
            warnings.push(format!(
                "check `{}` failed: observed {}",
                c.name, c.observed
            ));
        });
        let report = DryRunReport {
            plan_id: plan.id.clone(),
            checksum: plan.checksum.clone(),
            target: staging_cfg.name.clone(),
            ok: true,
            rollback_verified: true,
            statements: std::mem::take(&mut exercised.statements),
            checks: exercised.checks.clone(),
            tables: ratios,
            estimate,
            warnings,
            disagreements,
            duration_ms,
            next_steps: vec![],
        };
        let mut detail = serde_json::to_value(&report).map_err(Error::store)?;
        detail["fingerprint_before"] = json!(exercised.before.hash);
        detail["fingerprint_before_lines"] = json!(exercised.before.lines);
        detail["fingerprint_after_up"] = json!(exercised.after_up.hash);
        detail["fingerprint_after_up_lines"] = json!(exercised.after_up.lines);
        // A first passing dry-run makes the plan `tested`; an approved plan stays approved.
        let approved = checklist::approvers(plan, &self.store.approvals(&plan.id).await?)
            .is_some_and(|a| !a.is_empty());
        let next = match plan.status {
            Status::Planned if approved => Status::Approved,
            Status::Planned => Status::Tested,
            other => other,
        };
        let committed = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((std::slice::from_ref(&plan.status), next)),
                run: Some(record(true, detail)),
                audit: Some((
                    agent,
                    "dry-run",
                    json!({"target": staging_cfg.name, "ok": true}),
                )),
                ..Change::default()
            })
            .await?;
        let fresh = self.store.plan(&plan.id).await?;
        if !committed {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: fresh.status.to_string(),
                action: "recording a dry-run",
                needed: "unchanged while the dry-run ran",
            });
        }
        let checklist = self.checklist(&fresh).await?;
        let role = self.config.target(&plan.target)?.role;
        Ok(DryRunReport {
            next_steps: next_steps(&fresh, role, &checklist),
            ..report
        })
    }

    /// Refuses a dry-run on the plan target's linked staging when the tables the plan touches
    /// are not shaped there as they are on the target: evidence from such a staging proves
    /// nothing about production.
    async fn refuse_drifted_staging(
        &self,
        plan: &Plan,
        staging_cfg: &crate::config::TargetConfig,
        staging: &Target,
        target: Option<&Target>,
    ) -> Result<()> {
        let own = self.config.target(&plan.target)?;
        if own.staging.as_deref() != Some(staging_cfg.name.as_str()) {
            return Ok(());
        }
        let Some(target) = target else {
            return Ok(());
        };
        let tables = plan.tables();
        let on_target = table_shape(&target.fingerprint().await?, &tables);
        let on_staging = table_shape(&staging.fingerprint().await?, &tables);
        if on_target == on_staging {
            return Ok(());
        }
        let only = |a: &std::collections::BTreeSet<String>,
                    b: &std::collections::BTreeSet<String>,
                    who: &str| {
            a.difference(b)
                .take(5)
                .map(|l| format!("only on {who}: {l}"))
                .collect::<Vec<_>>()
        };
        Err(Error::StagingDrift {
            staging: staging_cfg.name.clone(),
            target: plan.target.clone(),
            detail: [
                only(&on_target, &on_staging, &plan.target),
                only(&on_staging, &on_target, &staging_cfg.name),
            ]
            .concat()
            .join("; "),
        })
    }

    /// up, checks, down (in reverse), fingerprint equality, up again — on a scratch copy.
    async fn exercise(&self, plan: &Plan, copy: &mut Sandbox) -> Result<Exercised> {
        let before = copy.fingerprint().await?;
        // Rollback must restore the data of the tables the plan touches, not only their shape.
        let touched = plan.existing_tables();
        let data_before = copy.content_hashes(&touched).await?;
        let mut statements = Vec::new();
        for step in plan.steps() {
            statements.extend(Self::up_in_sandbox(copy, plan, step, "dry-run up").await?);
        }
        let checks = copy.run_checks(&plan.body.checks).await?;
        if let Some(c) = checks.iter().find(|c| !c.passed) {
            return Err(Error::CheckFailed {
                name: c.name.clone(),
                detail: format!(
                    "expected {}, observed {} (after `up` on the staging copy)",
                    c.expect, c.observed
                ),
            });
        }
        for step in plan.steps().iter().rev() {
            let name = step.name.as_deref().unwrap_or("step");
            if let Some(spec) = &step.backfill {
                copy.backfill_restore(name, spec, &overwritten(spec)?)
                    .await?;
            }
            Self::in_sandbox(copy, plan, name, step.down.as_deref(), "dry-run down").await?;
        }
        let after_down = copy.fingerprint().await?;
        let verified = plan
            .steps()
            .iter()
            .all(|s| s.down.is_some() || s.backfill.is_some());
        if verified && after_down != before {
            return Err(Error::RollbackUnverified {
                detail: format!(
                    "the schema after `down` differs from the schema before `up` ({})",
                    before.diff(&after_down)
                ),
            });
        }
        if !verified {
            return Err(Error::RollbackUnverified {
                detail: "a step has no `down`, so rollback cannot be verified".into(),
            });
        }
        let data_after = copy.content_hashes(&touched).await?;
        let changed: Vec<&String> = data_before
            .iter()
            .filter(|(t, h)| data_after.get(*t) != Some(*h))
            .map(|(t, _)| t)
            .collect();
        if !changed.is_empty() {
            return Err(Error::RollbackUnverified {
                detail: format!(
                    "the data of {} after `down` differs from before `up` (content hash on the staging copy): `down` must put back every value `up` changed; to overwrite values, use a `backfill` step, whose old values drydock saves and restores",
                    changed
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        for step in plan.steps() {
            Self::up_in_sandbox(copy, plan, step, "dry-run up (again)").await?;
        }
        let after_up = copy.fingerprint().await?;
        Ok(Exercised {
            before,
            after_up,
            statements,
            checks,
        })
    }

    /// A step's `up` in the sandbox; a backfill runs as one UPDATE inside the sandbox's
    /// transaction, and says so.
    async fn up_in_sandbox(
        sandbox: &mut Sandbox,
        plan: &Plan,
        step: &Step,
        phase: &'static str,
    ) -> Result<Vec<StatementRun>> {
        let name = step.name.as_deref().unwrap_or("step");
        match &step.backfill {
            None => Self::in_sandbox(sandbox, plan, name, step.up.as_deref(), phase).await,
            Some(b) => {
                // The values it overwrites are saved first, as apply saves them batch by batch,
                // so that `down` restores them and the dry-run verifies it.
                sandbox.backfill_save(name, b, &overwritten(b)?).await?;
                let stmt = Stmt {
                    sql: analysis::backfill_sql(b),
                    transactional: true,
                };
                let mut runs = sandbox
                    .execute(name, std::slice::from_ref(&stmt))
                    .await?
                    .map_err(|f| Self::sql_failed(plan, phase, name, f))?;
                for r in &mut runs {
                    r.note = Some("backfill: measured as one UPDATE; apply runs it in keyset batches, each its own transaction".into());
                }
                Ok(runs)
            }
        }
    }

    async fn in_sandbox(
        sandbox: &mut Sandbox,
        plan: &Plan,
        step: &str,
        sql: Option<&str>,
        phase: &'static str,
    ) -> Result<Vec<StatementRun>> {
        let stmts = Self::stmts(step, sql)?;
        sandbox
            .execute(step, &stmts)
            .await?
            .map_err(|f| Self::sql_failed(plan, phase, step, f))
    }

    // --------------------------------------------------------------- apply

    /// Marks `target` as running `action` for `plan_id`; a second operation on the target is
    /// refused (another plan) or told the plan is already being applied (the same plan).
    fn claim(
        &self,
        target: &str,
        plan_id: &str,
        action: &'static str,
    ) -> Result<std::result::Result<RunningGuard, Running>> {
        let mut running = self.running.lock().expect("running map lock");
        if let Some(r) = running.get(target) {
            if r.plan_id == plan_id && r.action == "apply" && action == "apply" {
                return Ok(Err(r.clone()));
            }
            return Err(Error::TargetBusy(target.to_string()));
        }
        running.insert(
            target.to_string(),
            Running {
                plan_id: plan_id.to_string(),
                action,
                started_at: crate::store::now(),
                progress: None,
            },
        );
        Ok(Ok(RunningGuard(self.running.clone(), target.to_string())))
    }

    /// Progress of a plan being applied in this process, if it is.
    fn running_progress(&self, plan_id: &str) -> Option<Running> {
        self.running
            .lock()
            .expect("running map lock")
            .values()
            .find(|r| r.plan_id == plan_id)
            .cloned()
    }

    /// Applies pending steps. Waits at most `policy.apply_wait`; a step still running then
    /// continues in the background and the call returns `status: applying` with its progress.
    pub async fn apply(
        self: &Arc<Self>,
        plan_id: &str,
        agent: &str,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<ApplyReport> {
        let plan = self.load(plan_id, agent, "apply").await?;
        let guard = match self.claim(&plan.target, &plan.id, "apply")? {
            Ok(g) => g,
            Err(running) => {
                return Ok(ApplyReport::in_background(
                    &plan,
                    &running.started_at,
                    running.progress.as_ref(),
                ));
            }
        };
        // Record the latest progress (for `status` and later `apply` calls) and pass it on.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        {
            let (running, target) = (self.running.clone(), plan.target.clone());
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    if let Some(r) = running.lock().expect("running map lock").get_mut(&target) {
                        r.progress = Some(p.clone());
                    }
                    if let Some(out) = &progress {
                        let _ = out.send(p);
                    }
                }
            });
        }
        let engine = Arc::clone(self);
        let (task_plan, agent_name) = (plan.clone(), agent.to_string());
        let mut task = tokio::spawn(async move {
            let _guard = guard;
            engine
                .apply_plan(&task_plan, &agent_name, Some(tx))
                .await
                .map_err(|e| engine.learn(e, &agent_name, "apply", Some(&task_plan)))
        });
        match tokio::time::timeout(self.config.policy.apply_wait, &mut task).await {
            Ok(joined) => {
                joined.map_err(|e| Error::Store(format!("the apply task failed: {e}")))?
            }
            Err(_) => {
                let started = self.running_progress(&plan.id);
                let fresh = self.store.plan(&plan.id).await?;
                Ok(ApplyReport::in_background(
                    &fresh,
                    started
                        .as_ref()
                        .map(|r| r.started_at.as_str())
                        .unwrap_or(""),
                    started.as_ref().and_then(|r| r.progress.as_ref()),
                ))
            }
        }
    }

    async fn apply_plan(
        &self,
        plan: &Plan,
        agent: &str,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<ApplyReport> {
        match plan.status {
            Status::Applied | Status::Validated => {
                return Ok(ApplyReport::done(
                    plan,
                    "already applied; nothing to do",
                    vec![],
                    None,
                ));
            }
            Status::Rejected | Status::RolledBack => {
                return Err(Error::WrongStatus {
                    plan: plan.id.clone(),
                    status: plan.status.to_string(),
                    action: "apply",
                    needed: "tested and approved (make a new plan)",
                });
            }
            _ => {}
        }
        let target_cfg = self.config.target(&plan.target)?;
        let mut items = self.checklist(plan).await?;
        let unmet_others: Vec<&ChecklistItem> = checklist::unmet(&items)
            .into_iter()
            .filter(|i| i.item != "backup-verified")
            .collect();
        if !unmet_others.is_empty() {
            return Err(unmet_error(plan, &items));
        }
        let target = self.open_target(&plan.target).await?;
        admit(plan, target.engine())?;
        let lock = target.lock().await?;
        let result = async {
        // Under the lock, the target's history first: a step it has is never run again.
        let steps = self.reconcile(plan, &target, agent).await?;
        if steps.iter().all(|s| s.state == StepState::Applied) {
            let fresh = self.store.plan(&plan.id).await?;
            return Ok(ApplyReport::done(
                &fresh,
                "already applied (per the target's history); nothing to do",
                vec![],
                None,
            ));
        }
        let mut backup = None;
        if target_cfg.role == Role::Production
            && checklist::unmet(&items)
                .iter()
                .any(|i| i.item == "backup-verified")
        {
            let evidence = match &self.config.backup.command {
                Some(cmd) => {
                    crate::target::backup_command(
                        &plan.target,
                        cmd,
                        self.config.policy.backup_max_age,
                    )
                    .await?
                }
                None => {
                    // Unique per process too: two servers never share a backup's name.
                    let label = format!(
                        "{}_{}_{}",
                        plan.id.replace('-', "_"),
                        crate::store::now()
                            .replace([':', '.', '-'], "")
                            .to_lowercase(),
                        std::process::id()
                    );
                    let tables = plan.existing_tables();
                    target
                        .backup(
                            &self.config.state_dir.join("backups"),
                            &format!("{}-{label}", plan.target),
                            &tables,
                            self.config.policy.snapshot_max_rows,
                        )
                        .await?
                }
            };
            let detail = serde_json::to_value(&evidence).map_err(Error::store)?;
            self.store
                .commit(Change {
                    plan_id: &plan.id,
                    backup: Some((&plan.target, true, detail)),
                    audit: Some((
                        agent,
                        "backup",
                        json!({"target": plan.target, "location": evidence.location}),
                    )),
                    ..Change::default()
                })
                .await?;
            backup = Some(evidence);
            items = self.checklist(plan).await?;
            if !checklist::unmet(&items).is_empty() {
                return Err(unmet_error(plan, &items));
            }
        }
        if let Some(waived) = items
            .iter()
            .find(|i| i.state == checklist::ItemState::Waived && i.item == "staging-tested")
        {
            let _ = self.errors.record(&Mistake {
                agent: agent.to_string(),
                tool: "apply".into(),
                plan: Some(plan.id.clone()),
                target: Some(plan.target.clone()),
                code: "hotfix-waiver".into(),
                what: format!("hotfix applied without a staging dry-run: {}", waived.evidence.clone().unwrap_or_default()),
                lesson: "hotfixes skip staging only with two approvers; follow up with a dry-run of the same change on staging".into(),
                tables: vec![],
            });
        }

        let from: &[Status] = &[
            Status::Planned,
            Status::Tested,
            Status::Approved,
            Status::Applying,
        ];
        // The schema before the first step, recorded before that step can commit: rollback and
        // validate compare against it, and a kill after the step must not lose it.
        let pre_apply = if steps.iter().all(|s| s.state != StepState::Applied) {
            let fp = target.fingerprint().await?;
            Some(NewRun {
                kind: "pre-apply",
                target: &plan.target,
                checksum: &plan.checksum,
                ok: true,
                started_at: crate::store::now(),
                duration_ms: 0.0,
                detail: json!({"fingerprint_before": fp.hash, "fingerprint_before_lines": fp.lines}),
            })
        } else {
            None
        };
        if !self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((from, Status::Applying)),
                run: pre_apply,
                audit: Some((agent, "apply-start", json!({"target": plan.target}))),
                ..Change::default()
            })
            .await?
        {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: self.store.plan(&plan.id).await?.status.to_string(),
                action: "apply",
                needed: "tested and approved",
            });
        }
        let total: u64 = plan
            .steps()
            .iter()
            .map(|s| {
                s.up.as_deref()
                    .map(|u| analysis::statements("", u).map(|v| v.len()).unwrap_or(0))
                    .unwrap_or(0) as u64
            })
            .sum();
        let mut done = 0u64;
        let mut applied = Vec::new();
        let mut all_runs = Vec::new();
        let mut backfills = Vec::new();
        let mut gated = None;
        let mut previous_applied_at: Option<String> = None;
        for (i, row) in steps.iter().enumerate() {
            let step = &plan.steps()[i];
            if row.state == StepState::Applied {
                previous_applied_at = row.applied_at.clone();
                continue;
            }
            if row.state == StepState::Gated
                && !self.gate_open(step, previous_applied_at.as_deref())
            {
                gated = Some(GatedStep {
                    step: row.name.clone(),
                    gate: step.gate.clone(),
                    release: format!("drydock release {} {} --by NAME", plan.id, row.name),
                });
                break;
            }
            let name = row.name.as_str();
            let started_at = crate::store::now();
            let t0 = Instant::now();
            // Run the step; each kind says what its run records on success and on failure.
            let (outcome, audit, failure_detail) = if let Some(spec) = &step.backfill {
                let history = HistoryRow { plan_id: &plan.id, step: name, checksum: &plan.checksum, by: agent };
                let tx = progress.clone();
                let mut tick = |rows: u64, estimate: u64| {
                    if let Some(tx) = &tx {
                        let _ = tx.send(Progress {
                            done: rows,
                            total: estimate,
                            message: format!("step `{name}`: {rows} of ~{estimate} rows backfilled"),
                        });
                    }
                };
                let columns = overwritten(spec)?;
                match target.backfill(name, spec, &columns, &history, &self.config.policy, &mut tick).await? {
                    Ok(report) => {
                        let detail = json!({"step": name, "backfill": report});
                        let audit = json!({"step": name, "backfill_rows": report.rows});
                        backfills.push(report);
                        (Ok(detail), audit, json!({"step": name}))
                    }
                    Err(failure) => (Err(failure), json!({"step": name}), json!({"step": name})),
                }
            } else {
                let stmts = Self::stmts(name, step.up.as_deref())?;
                let tx = progress.clone();
                let mut tick = |r: &StatementRun| {
                    done += 1;
                    if let Some(tx) = &tx {
                        let _ = tx.send(Progress {
                            done,
                            total,
                            message: format!("step `{}` statement {} done", r.step, r.index),
                        });
                    }
                };
                let history = History::Applied(HistoryRow { plan_id: &plan.id, step: name, checksum: &plan.checksum, by: agent });
                let tables = Self::step_tables(plan, name);
                let (result, watch) = target
                    .execute(name, &stmts, &tables, Some(history), &self.config.policy, &mut tick)
                    .await?;
                match result {
                    Ok(runs) => {
                        let detail = json!({"step": name, "statements": runs, "watcher": watch});
                        all_runs.extend(runs);
                        (Ok(detail), json!({"step": name}), json!({"step": name}))
                    }
                    Err(failure) => (Err(failure), json!({"step": name}), json!({"step": name, "watcher": watch})),
                }
            };
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            match outcome {
                Ok(detail) => {
                    self.store
                        .commit(Change {
                            plan_id: &plan.id,
                            run: Some(NewRun {
                                kind: "apply",
                                target: &plan.target,
                                checksum: &plan.checksum,
                                ok: true,
                                started_at,
                                duration_ms,
                                detail,
                            }),
                            steps: vec![(i, StepState::Applied)],
                            audit: Some((agent, "apply-step", audit)),
                            ..Change::default()
                        })
                        .await?;
                    previous_applied_at = Some(crate::store::now());
                    applied.push(name.to_string());
                }
                Err(failure) => {
                    let err = Self::sql_failed(plan, "apply", name, failure);
                    // Nothing of this plan on the target yet: back to where the apply started.
                    let nothing_applied = steps.iter().all(|s| s.state != StepState::Applied) && applied.is_empty();
                    let back = if nothing_applied { plan.status } else { Status::Applying };
                    let mut detail = failure_detail;
                    detail["error"] = json!(err.to_string());
                    self.store
                        .commit(Change {
                            plan_id: &plan.id,
                            status: Some((&[], back)),
                            run: Some(NewRun {
                                kind: "apply",
                                target: &plan.target,
                                checksum: &plan.checksum,
                                ok: false,
                                started_at,
                                duration_ms,
                                detail,
                            }),
                            audit: Some((agent, "apply-failed", json!({"step": name, "error": err.to_string()}))),
                            ..Change::default()
                        })
                        .await?;
                    return Err(err);
                }
            }
        }
        let all_applied = gated.is_none();
        if all_applied {
            self.store
                .commit(Change {
                    plan_id: &plan.id,
                    status: Some((&[Status::Applying], Status::Applied)),
                    audit: Some((agent, "applied", json!({"steps": applied}))),
                    ..Change::default()
                })
                .await?;
        }
        let plan = self.store.plan(&plan.id).await?;
        let message = match &gated {
            Some(g) => format!(
                "applied {} step(s); step `{}` is gated",
                applied.len(),
                g.step
            ),
            None => format!("applied {} step(s); all steps are applied", applied.len()),
        };
        let staging_sync = self
            .follow_on_staging(&plan, &applied, staging::Direction::Apply, agent)
            .await;
        let mut report = ApplyReport::done(&plan, &message, applied, gated);
        report.staging_sync = staging_sync;
        report.statements = all_runs;
        report.backfills = backfills;
        report.backup = backup;
        report.checklist = items;
        Ok(report)
        }
        .await;
        lock.release().await;
        result
    }

    fn gate_open(&self, step: &Step, previous_applied_at: Option<&str>) -> bool {
        match &step.gate {
            None => true,
            Some(Gate::Manual) => false,
            Some(Gate::After { duration }) => {
                let d = if duration == "rollback_window" {
                    self.config.policy.rollback_window
                } else {
                    humantime::parse_duration(duration)
                        .unwrap_or(self.config.policy.rollback_window)
                };
                previous_applied_at
                    .and_then(crate::store::age)
                    .is_some_and(|age| age >= d)
            }
        }
    }

    // ------------------------------------------------------------ validate

    pub async fn validate(&self, plan_id: &str, agent: &str) -> Result<ValidateReport> {
        let plan = self.load(plan_id, agent, "validate").await?;
        self.validate_plan(&plan, agent)
            .await
            .map_err(|e| self.learn(e, agent, "validate", Some(&plan)))
    }

    async fn validate_plan(&self, plan: &Plan, agent: &str) -> Result<ValidateReport> {
        self.reconcile_if_idle(plan, agent).await?;
        let plan = &self.store.plan(&plan.id).await?;
        require(plan, "validate", Status::touched_target, "applied")?;
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let target = self.open_target(&plan.target).await?;
        admit(plan, target.engine())?;
        let checks = target.run_checks(&plan.body.checks).await?;
        let runs = self.store.runs(&plan.id).await?;
        let dry = runs
            .iter()
            .rev()
            .find(|r| r.kind == "dry-run" && r.ok && r.checksum == plan.checksum);
        let current = target.fingerprint().await?;
        let pre_apply = pre_apply_lines(&runs);
        // A NOT VALID constraint or invalid index the schema had before the plan is not the
        // plan's doing: reported, never failed.
        let (predated, left): (Vec<_>, Vec<_>) = target
            .integrity()
            .await?
            .into_iter()
            .partition(|p| pre_apply.as_deref().is_some_and(|l| p.predates(l)));
        let mut integrity: Vec<BuiltinCheck> = left
            .into_iter()
            .map(|problem| BuiltinCheck {
                name: "integrity".into(),
                passed: false,
                skipped: false,
                detail: problem.detail,
            })
            .collect();
        if integrity.is_empty() {
            let mut detail = match target.engine() {
                "postgres" => {
                    "no invalid index, no unvalidated (NOT VALID) constraint left by the plan"
                }
                _ => "integrity_check ok; foreign_key_check clean",
            }
            .to_string();
            if !predated.is_empty() {
                let before: Vec<String> = predated.into_iter().map(|p| p.detail).collect();
                detail.push_str(&format!(
                    " (before the plan already: {})",
                    before.join("; ")
                ));
            }
            integrity.push(BuiltinCheck {
                name: "integrity".into(),
                passed: true,
                skipped: false,
                detail,
            });
        }
        let drift = schema_change_check(
            dry.and_then(|d| lines_of(&d.detail["fingerprint_before_lines"])),
            dry.and_then(|d| lines_of(&d.detail["fingerprint_after_up_lines"])),
            pre_apply,
            &current,
            plan.status == Status::Applying,
        );
        integrity.push(drift);
        let history = target.history(&plan.id).await?;
        let applied_rows: HashSet<String> = history
            .iter()
            .filter(|h| h.applied())
            .map(|h| h.step.clone())
            .collect();
        let store_applied: Vec<String> = self
            .store
            .steps(&plan.id)
            .await?
            .into_iter()
            .filter(|s| s.state == StepState::Applied)
            .map(|s| s.name)
            .collect();
        let missing: Vec<&String> = store_applied
            .iter()
            .filter(|s| !applied_rows.contains(*s))
            .collect();
        integrity.push(BuiltinCheck {
            name: "history".into(),
            passed: missing.is_empty(),
            skipped: false,
            detail: if missing.is_empty() {
                format!(
                    "{} applied step(s) recorded in the target's history table",
                    store_applied.len()
                )
            } else {
                format!(
                    "step(s) applied per drydock but missing from the target's history: {missing:?}"
                )
            },
        });
        let tables = plan.tables();
        let row_counts = target.row_counts(&tables).await?;
        let failures: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                format!(
                    "check `{}` expected {} but observed {}",
                    c.name, c.expect, c.observed
                )
            })
            .chain(
                integrity
                    .iter()
                    .filter(|c| !c.passed && !c.skipped)
                    .map(|c| format!("{}: {}", c.name, c.detail)),
            )
            .collect();
        let ok = failures.is_empty();
        let report = ValidateReport {
            plan_id: plan.id.clone(),
            ok,
            status: if ok && plan.status != Status::Applying {
                Status::Validated
            } else {
                plan.status
            },
            checks,
            builtin: integrity,
            row_counts,
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: (ok && plan.status == Status::Applied)
                    .then_some((&[Status::Applied][..], Status::Validated)),
                run: Some(NewRun {
                    kind: "validate",
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok,
                    started_at,
                    duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    detail: serde_json::to_value(&report).map_err(Error::store)?,
                }),
                audit: Some((agent, "validate", json!({"ok": ok}))),
                ..Change::default()
            })
            .await?;
        if !ok {
            return Err(Error::ValidationFailed {
                plan: plan.id.clone(),
                failures: failures.join("; "),
            });
        }
        Ok(report)
    }

    // ------------------------------------------------------------ rollback

    pub async fn rollback(
        &self,
        plan_id: &str,
        reason: &str,
        agent: &str,
    ) -> Result<RollbackReport> {
        let plan = self.load(plan_id, agent, "rollback").await?;
        let _guard = self
            .claim(&plan.target, &plan.id, "rollback")?
            .map_err(|_| Error::TargetBusy(plan.target.clone()))?;
        self.rollback_plan(&plan, reason, agent)
            .await
            .map_err(|e| self.learn(e, agent, "rollback", Some(&plan)))
    }

    async fn rollback_plan(
        &self,
        plan: &Plan,
        reason: &str,
        agent: &str,
    ) -> Result<RollbackReport> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::MissingReason);
        }
        require(plan, "rollback", Status::touched_target, "applied")?;
        let target = self.open_target(&plan.target).await?;
        admit(plan, target.engine())?;
        let lock = target.lock().await?;
        let result = self.rollback_locked(plan, reason, agent, &target).await;
        lock.release().await;
        result
    }

    async fn rollback_locked(
        &self,
        plan: &Plan,
        reason: &str,
        agent: &str,
        target: &Target,
    ) -> Result<RollbackReport> {
        // Under the lock, the target's history first: a step whose `down` committed is not run
        // again.
        let steps = self.reconcile(plan, target, agent).await?;
        let applied: Vec<(usize, &crate::store::StepRow)> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == StepState::Applied)
            .collect();
        let first_applied = applied
            .iter()
            .filter_map(|(_, s)| s.applied_at.clone())
            .min();
        if let Some(first) = &first_applied {
            let window = self.config.policy.rollback_window;
            if crate::store::age(first).is_some_and(|a| a > window) {
                return Err(Error::RollbackWindowClosed {
                    plan: plan.id.clone(),
                    closed_at: crate::store::add(first, window).unwrap_or_default(),
                });
            }
        }
        let runs = self.store.runs(&plan.id).await?;
        let before = pre_apply_lines(&runs).map(crate::target::Fingerprint::from_lines);
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let mut rolled_back = Vec::new();
        for (i, row) in applied.iter().rev() {
            let step = &plan.steps()[*i];
            if step.down.is_none() && step.backfill.is_none() {
                return Err(Error::InvalidInput(format!(
                    "step `{}` has no `down`; write a new plan that reverses it",
                    row.name
                )));
            }
            let history = History::RolledBack {
                plan_id: &plan.id,
                step: &row.name,
            };
            // A backfill's saved values go back first, in the same transaction as its `down`.
            let mut stmts = match &step.backfill {
                Some(spec) => {
                    target
                        .backfill_restore(&plan.id, &row.name, spec, &overwritten(spec)?)
                        .await?
                }
                None => vec![],
            };
            stmts.extend(Self::stmts(&row.name, step.down.as_deref())?);
            let tables = Self::step_tables(plan, &row.name);
            let (result, _watch) = target
                .execute(
                    &row.name,
                    &stmts,
                    &tables,
                    Some(history),
                    &self.config.policy,
                    &mut |_| {},
                )
                .await?;
            result.map_err(|f| Self::sql_failed(plan, "rollback", &row.name, f))?;
            self.store
                .commit(Change {
                    plan_id: &plan.id,
                    steps: vec![(*i, StepState::RolledBack)],
                    audit: Some((
                        agent,
                        "rollback-step",
                        json!({"step": row.name, "reason": reason}),
                    )),
                    ..Change::default()
                })
                .await?;
            rolled_back.push(row.name.clone());
        }
        let after = target.fingerprint().await?;
        let (verified, detail) = match &before {
            Some(b) if *b == after => (true, "the schema equals the pre-apply schema".to_string()),
            Some(b) => (false, b.diff(&after)),
            None => (false, "no pre-apply fingerprint was recorded".to_string()),
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[], Status::RolledBack)),
                run: Some(NewRun {
                    kind: "rollback",
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok: verified,
                    started_at,
                    duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    detail: json!({"reason": reason, "steps": rolled_back, "verified": verified, "detail": detail}),
                }),
                audit: Some((agent, "rolled-back", json!({"reason": reason, "verified": verified}))),
                ..Change::default()
            })
            .await?;
        let staging_sync = self
            .follow_on_staging(plan, &rolled_back, staging::Direction::Rollback, agent)
            .await;
        if !verified {
            return Err(Error::RollbackUnverified { detail });
        }
        Ok(RollbackReport {
            plan_id: plan.id.clone(),
            status: Status::RolledBack,
            rolled_back,
            schema_verified: verified,
            detail,
            reason: reason.to_string(),
            staging_sync,
        })
    }

    // ------------------------------------------------- engineers' decisions

    pub async fn approve(&self, plan_id: &str, by: &str) -> Result<StatusReport> {
        let plan = self.load(plan_id, by, "approve").await?;
        let by = by.trim();
        if by.is_empty() {
            return Err(Error::InvalidInput(
                "`--by` names the approving engineer".into(),
            ));
        }
        if by.eq_ignore_ascii_case(&plan.author) {
            return Err(Error::SelfApproval {
                plan: plan.id.clone(),
                by: by.to_string(),
                action: "approve",
            });
        }
        require(&plan, "approve", Status::is_pre_apply, "planned or tested")?;
        // A tested plan becomes `approved`; approving an untested plan records the approval (a
        // hotfix may need it) but leaves it `planned` until a dry-run passes.
        let next = if plan.status == Status::Planned {
            Status::Planned
        } else {
            Status::Approved
        };
        let committed = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((std::slice::from_ref(&plan.status), next)),
                approval: Some((&plan.checksum, by, "approved", None)),
                audit: Some((by, "approve", json!({"checksum": plan.checksum}))),
                ..Change::default()
            })
            .await?;
        if !committed {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: self.store.plan(plan_id).await?.status.to_string(),
                action: "approve",
                needed: "unchanged while approving; look again with `drydock show`",
            });
        }
        self.status(plan_id).await
    }

    pub async fn reject(&self, plan_id: &str, by: &str, reason: &str) -> Result<StatusReport> {
        let plan = self.load(plan_id, by, "reject").await?;
        if reason.trim().is_empty() {
            return Err(Error::InvalidInput(
                "`--reason` says why the plan is rejected".into(),
            ));
        }
        require(
            &plan,
            "reject",
            Status::is_pre_apply,
            "planned, tested or approved",
        )?;
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[], Status::Rejected)),
                approval: Some((&plan.checksum, by, "rejected", Some(reason))),
                audit: Some((by, "reject", json!({"reason": reason}))),
                ..Change::default()
            })
            .await?;
        self.status(plan_id).await
    }

    /// Opens a step's gate. `after` gates need `override_reason` while the window runs.
    pub async fn release(
        &self,
        plan_id: &str,
        step: &str,
        by: &str,
        override_reason: Option<&str>,
    ) -> Result<StatusReport> {
        let plan = self.load(plan_id, by, "release").await?;
        let steps = self.store.steps(plan_id).await?;
        let (i, row) = steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == step)
            .ok_or_else(|| Error::InvalidInput(format!("plan `{plan_id}` has no step `{step}`")))?;
        if row.state != StepState::Gated {
            return Err(Error::InvalidInput(format!(
                "step `{step}` is {}, not gated",
                row.state.as_str()
            )));
        }
        if by.eq_ignore_ascii_case(&plan.author) {
            return Err(Error::SelfApproval {
                plan: plan.id.clone(),
                by: by.to_string(),
                action: "release a step of",
            });
        }
        if matches!(plan.steps()[i].gate, Some(Gate::After { .. }))
            && override_reason.is_none_or(|r| r.trim().is_empty())
        {
            return Err(Error::InvalidInput(format!(
                "step `{step}` waits for the rollback window; pass --override-window --reason R to open it early"
            )));
        }
        self.store
            .commit(Change {
                plan_id,
                release: Some((i, by)),
                audit: Some((
                    by,
                    "release",
                    json!({"step": step, "override_reason": override_reason}),
                )),
                ..Change::default()
            })
            .await?;
        self.status(plan_id).await
    }

    // ------------------------------------------------------------ reading

    pub async fn status(&self, plan_id: &str) -> Result<StatusReport> {
        let mut plan = self.load(plan_id, "unknown", "status").await?;
        if Status::touched_target(plan.status) {
            self.reconcile_if_idle(&plan, "drydock").await?;
            plan = self.store.plan(plan_id).await?;
        }
        let role = self.config.target(&plan.target)?.role;
        let checklist = self.checklist(&plan).await?;
        let steps = self
            .store
            .steps(plan_id)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, s)| StepStatus {
                name: s.name,
                state: s.state,
                gate: plan.steps()[i].gate.clone(),
                applied_at: s.applied_at,
                released_by: s.released_by,
                up: plan.steps()[i].up.clone(),
                down: plan.steps()[i].down.clone(),
                backfill: plan.steps()[i].backfill.as_ref().map(|b| BackfillShown {
                    sql: analysis::backfill_sql(b),
                    overwrites: overwritten(b).unwrap_or_default(),
                    spec: b.clone(),
                }),
            })
            .collect();
        let runs = self.store.runs(plan_id).await?;
        let approvals = self.store.approvals(plan_id).await?;
        let analysis = with_measurements(&plan, &runs);
        let running = self.running_progress(&plan.id).map(|r| RunningInfo {
            action: r.action.to_string(),
            since: r.started_at,
            done: r.progress.as_ref().map(|p| p.done),
            total: r.progress.as_ref().map(|p| p.total),
            message: r.progress.map(|p| p.message),
        });
        Ok(StatusReport {
            plan_id: plan.id.clone(),
            status: plan.status,
            goal: plan.goal.clone(),
            target: plan.target.clone(),
            role,
            checksum: plan.checksum.clone(),
            author: plan.author.clone(),
            urgency: plan.urgency,
            created_at: plan.created_at.clone(),
            steps,
            checks: plan.body.checks.clone(),
            checklist: checklist.clone(),
            runs: runs.into_iter().map(RunSummary::from).collect(),
            approvals,
            analysis,
            running,
            next_steps: next_steps(&plan, role, &checklist),
        })
    }

    pub async fn list(&self) -> Result<Vec<PlanSummary>> {
        Ok(self
            .store
            .plans(200)
            .await?
            .into_iter()
            .map(
                |(plan_id, target, status, goal, author, created_at)| PlanSummary {
                    plan_id,
                    target,
                    status,
                    goal,
                    author,
                    created_at,
                },
            )
            .collect())
    }

    pub async fn inspect(&self, target: &str, table: Option<&str>) -> Result<InspectReport> {
        let cfg = self.config.target(target)?;
        let t = Target::open(&self.config, cfg).await?;
        let mut catalog = t.catalog().await?;
        if let Some(name) = table {
            if !catalog.tables.contains_key(name) {
                return Err(Error::InvalidInput(format!(
                    "target `{target}` has no table `{name}`"
                )));
            }
            catalog.tables.retain(|k, _| k == name);
        }
        Ok(InspectReport {
            target: target.to_string(),
            role: cfg.role,
            engine: t.engine().to_string(),
            tables: catalog.tables,
        })
    }

    pub async fn record_mistake(
        &self,
        what: &str,
        lesson: &str,
        plan_id: Option<&str>,
        agent: &str,
    ) -> Result<MistakeReport> {
        if what.trim().is_empty() || lesson.trim().is_empty() {
            return Err(Error::InvalidInput(
                "`what` and `lesson` must both say something".into(),
            ));
        }
        let plan = match plan_id {
            Some(id) => Some(self.store.plan(id).await?),
            None => None,
        };
        let tables = plan.as_ref().map(|p| p.tables()).unwrap_or_default();
        let count = self.errors.record(&Mistake {
            agent: agent.to_string(),
            tool: "record-mistake".into(),
            plan: plan.as_ref().map(|p| p.id.clone()),
            target: plan.as_ref().map(|p| p.target.clone()),
            code: "agent-reported".into(),
            what: what.to_string(),
            lesson: lesson.to_string(),
            tables,
        })?;
        Ok(MistakeReport {
            recorded: true,
            count,
            path: self.errors.path().display().to_string(),
        })
    }
}

struct Exercised {
    before: crate::target::Fingerprint,
    after_up: crate::target::Fingerprint,
    statements: Vec<StatementRun>,
    checks: Vec<crate::target::CheckOutcome>,
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
        checklist: items.to_vec(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Where static analysis and measurement disagree (the measurement wins).
fn disagreements(plan: &Plan, measured: &[StatementRun]) -> Vec<String> {
    const STRENGTH: [&str; 8] = [
        "ACCESS SHARE",
        "ROW SHARE",
        "ROW EXCLUSIVE",
        "SHARE UPDATE EXCLUSIVE",
        "SHARE",
        "SHARE ROW EXCLUSIVE",
        "EXCLUSIVE",
        "ACCESS EXCLUSIVE",
    ];
    let rank = |mode: &str| STRENGTH.iter().position(|m| *m == mode);
    let postgres = plan.analysis["engine"] == "postgres";
    let mut out = Vec::new();
    let facts = plan.analysis["statements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in measured.iter().filter(|m| m.note.is_none()) {
        let Some(f) = facts
            .iter()
            .find(|f| f["step"] == m.step.as_str() && f["index"] == m.index)
        else {
            continue;
        };
        let at = format!("step `{}` statement {}", m.step, m.index);
        let predicted = f["rewrites"] == true;
        let observed = !m.rewritten.is_empty();
        if predicted != observed {
            out.push(format!(
                "{at}: the analysis predicted {}; the dry-run measured {} (the measurement wins)",
                if predicted { "a rewrite" } else { "no rewrite" },
                if observed {
                    format!("a rewrite of {:?}", m.rewritten)
                } else {
                    "none".into()
                }
            ));
        }
        if !postgres {
            continue;
        }
        let table = f["tables"][0].as_str().unwrap_or_default();
        let strongest = m
            .locks
            .iter()
            .filter(|l| l.relation == table && l.acquired)
            .filter_map(|l| rank(&l.mode).map(|r| (r, l.mode.as_str())))
            .max();
        if let (Some(static_rank), Some((measured_rank, mode))) =
            (rank(f["lock"].as_str().unwrap_or_default()), strongest)
            && static_rank != measured_rank
        {
            out.push(format!(
                "{at}: the analysis expected {} on `{table}`; the dry-run measured {mode} (the measurement wins)",
                f["lock"].as_str().unwrap_or_default()
            ));
        }
        let scanned = m.scanned.iter().any(|t| t == table);
        if (f["scans"] == true) != scanned
            && matches!(f["kind"].as_str(), Some(k) if k.starts_with("alter table"))
        {
            out.push(format!(
                "{at}: the analysis predicted {} of `{table}`; the dry-run measured {} (the measurement wins)",
                if scanned { "no full scan" } else { "a full scan" },
                if scanned { "one" } else { "none" }
            ));
        }
    }
    out
}

/// The static analysis with the newest passing dry-run's measurements and disagreements beside it.
fn with_measurements(plan: &Plan, runs: &[crate::store::RunRow]) -> serde_json::Value {
    let mut analysis = plan.analysis.clone();
    if let Some(dry) = runs
        .iter()
        .rev()
        .find(|r| r.kind == "dry-run" && r.ok && r.checksum == plan.checksum)
    {
        analysis["measured"] = json!({
            "dry_run": dry.id,
            "target": dry.target,
            "statements": dry.detail["statements"],
            "disagreements": dry.detail["disagreements"],
        });
    }
    analysis
}

/// What the agent should do next, given where the plan is.
pub fn next_steps(plan: &Plan, role: Role, checklist: &[ChecklistItem]) -> Vec<String> {
    let mut out = Vec::new();
    let held = |name: &str| checklist.iter().any(|i| i.item == name && i.holds());
    match plan.status {
        Status::Planned | Status::Tested | Status::Approved => {
            if checklist
                .iter()
                .any(|i| i.item == "rollback-ready" && i.state == checklist::ItemState::Failed)
            {
                out.push("add a `down` to every step and submit a new plan".into());
            }
            if !held("staging-tested") {
                out.push(format!(
                    "call `dry-run` with plan_id `{}` to test it on staging",
                    plan.id
                ));
            }
            if role == Role::Production && !held("approved") {
                out.push(format!(
                    "ask an engineer to review and run `drydock approve {} --by NAME`",
                    plan.id
                ));
            }
            if role != Role::Production
                || checklist::unmet(checklist)
                    .iter()
                    .all(|i| i.item == "backup-verified")
            {
                out.push(format!("call `apply` with plan_id `{}`", plan.id));
            }
        }
        Status::Applying => out.push(format!(
            "call `apply` with plan_id `{}` to continue, or `status` to see the gated step",
            plan.id
        )),
        Status::Applied => out.push(format!("call `validate` with plan_id `{}`", plan.id)),
        Status::Validated => {
            out.push("done; `rollback` stays available within the rollback window".into())
        }
        Status::RolledBack | Status::Rejected => {
            out.push("make a new plan (`plan`) if the change is still wanted".into())
        }
    }
    out
}
