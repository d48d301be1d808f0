//! The results of lifecycle operations, as agents and engineers read them. Field names are part
//! of the contract (spec §3): add freely, rename none.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::checklist::ChecklistItem;
use crate::config::Role;
use crate::db::{BackfillReport, BackupEvidence, CheckOutcome, StatementRun, TableInfo};
use crate::errorlog::Lesson;
pub use crate::plan::evidence::Estimate;
use crate::plan::evidence::RunDetail;
use crate::plan::{Check, Gate, Plan, RunKind, Status, StepState, Urgency};
use crate::store::{ApprovalRow, RunRow};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlanOutcome {
    pub plan_id: String,
    pub checksum: String,
    pub status: Status,
    /// Where the steps came from: the agent's `steps`, a `template`, or a `desired` schema.
    pub source: crate::plan::Source,
    pub target: String,
    pub role: Role,
    pub analysis: Analysis,
    pub checklist: Vec<ChecklistItem>,
    /// Lessons from ERRORS.md that match this plan's hazards or tables.
    pub lessons: Vec<Lesson>,
    /// What the reviewer should know beyond the hazards: e.g. the dry-run target connects as a
    /// superuser with no least-privilege `dry_run_role`.
    pub warnings: Vec<String>,
    pub next_steps: Vec<String>,
    /// What this answer left out of its lists (see `omitted.detail` for the whole).
    #[serde(default, skip_serializing_if = "super::fit::Omitted::is_empty")]
    pub omitted: super::fit::Omitted,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TableRatio {
    pub table: String,
    pub staging_rows: Option<u64>,
    pub production_rows: Option<u64>,
    /// staging rows / production rows.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DryRunReport {
    pub plan_id: String,
    pub checksum: String,
    /// The non-production target the dry-run ran on (a scratch copy of it).
    pub target: String,
    pub ok: bool,
    pub rollback_verified: bool,
    /// Per statement of the first `up`: duration, measured locks, rewritten and scanned tables.
    pub statements: Vec<StatementRun>,
    pub checks: Vec<CheckOutcome>,
    /// Staging/production row counts of the affected tables.
    pub tables: Vec<TableRatio>,
    pub estimate: Estimate,
    pub warnings: Vec<String>,
    /// Where the measurement disagrees with the static analysis (the measurement wins).
    pub disagreements: Vec<String>,
    /// A plan on a group: the members whose tables the plan touches are not shaped as on the
    /// group's staging (or that cannot be reached) — listed before anyone approves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members_differ: Vec<String>,
    /// Sequences the dry-run moved on staging (non-transactional: its rollback does not take
    /// them back), and whether drydock put each back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<crate::db::SequenceMove>,
    /// The steps ran on staging as apply runs them (each step's transactions committed,
    /// `CONCURRENTLY` for real), measured there, then undone by their verified `down`s: the
    /// statements' figures are that run's. False: measured in one transaction rolled back.
    #[serde(default)]
    pub rehearsed: bool,
    /// What the application will hit, probed after `up`: each touched table's triggers fired
    /// by a write that was rolled back, each view on it read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<crate::db::AppProbe>,
    pub duration_ms: f64,
    pub next_steps: Vec<String>,
    /// What this answer left out of its lists (see `omitted.detail` for the whole).
    #[serde(default, skip_serializing_if = "super::fit::Omitted::is_empty")]
    pub omitted: super::fit::Omitted,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GatedStep {
    pub step: String,
    pub gate: Option<Gate>,
    /// The command an engineer runs to open the gate.
    pub release: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApplyReport {
    pub plan_id: String,
    pub status: Status,
    pub message: String,
    /// Steps applied by this call.
    pub applied_steps: Vec<String>,
    /// The step apply stopped at, when one is gated.
    pub gated: Option<GatedStep>,
    pub statements: Vec<StatementRun>,
    /// Backfill steps run by this call: rows, batches, where they resumed.
    pub backfills: Vec<BackfillReport>,
    pub backup: Option<BackupEvidence>,
    /// The steps this call applied, applied to the linked staging too (production targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_sync: Option<StagingSync>,
    pub checklist: Vec<ChecklistItem>,
    pub next_steps: Vec<String>,
    /// `[export]`: the applied steps written into the repository's migration folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportOutcome>,
    /// While the apply goes on in the background: the handle to follow it by. The apply itself
    /// needs no handle: it belongs to the plan, survives this call, and `apply` again attaches
    /// to it (or resumes it from its checkpoint after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<Poll>,
    /// What this answer left out of its lists (see `omitted.detail` for the whole).
    #[serde(default, skip_serializing_if = "super::fit::Omitted::is_empty")]
    pub omitted: super::fit::Omitted,
}

/// How to follow a background apply: call `tool` with `plan_id` every `every_s` seconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Poll {
    pub tool: String,
    pub plan_id: String,
    pub every_s: u64,
    pub done_when: String,
}

/// What `[export]` did after an apply.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ExportOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<super::ExportReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the linked staging followed production: the steps it applied (or rolled back) too.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StagingSync {
    pub target: String,
    pub ok: bool,
    pub steps: Vec<String>,
    /// Still going after this answer: an apply answers once production is done and staging
    /// follows in the background (`status` shows `running` until it ends, then its
    /// `staging-sync` run); `steps` are what it follows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_background: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ApplyReport {
    /// The answer while the plan's apply continues in the background.
    pub fn in_background(
        plan: &Plan,
        since: &str,
        progress: Option<&crate::engine::Progress>,
    ) -> ApplyReport {
        let progress = progress
            .map(|p| format!("; {}", p.message))
            .unwrap_or_default();
        let mut r = ApplyReport::done(
            plan,
            &format!(
                "applying in the background since {since}{progress}; call `status` for progress"
            ),
            vec![],
            None,
        );
        r.status = Status::Applying;
        r.next_steps = vec![format!(
            "call `status` with plan_id `{}` until it is applied, then `validate`",
            plan.id
        )];
        r.poll = Some(Poll {
            tool: "status".into(),
            plan_id: plan.id.clone(),
            every_s: 15,
            done_when:
                "`running` is absent: then read `status` (applied, gated, or resumable by `apply`)"
                    .into(),
        });
        r
    }

    pub fn done(
        plan: &Plan,
        message: &str,
        applied_steps: Vec<String>,
        gated: Option<GatedStep>,
    ) -> ApplyReport {
        let next_steps = match plan.status {
            Status::Applied => vec![format!("call `validate` with plan_id `{}`", plan.id)],
            Status::Validated => vec!["nothing to do; the plan is applied and validated".into()],
            _ => match &gated {
                Some(g) => vec![format!(
                    "wait for an engineer to run `{}`, then call `apply` again",
                    g.release
                )],
                None => vec![],
            },
        };
        ApplyReport {
            plan_id: plan.id.clone(),
            status: plan.status,
            message: message.to_string(),
            applied_steps,
            gated,
            statements: vec![],
            backfills: vec![],
            backup: None,
            staging_sync: None,
            checklist: vec![],
            next_steps,
            export: None,
            poll: None,
            omitted: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BuiltinCheck {
    pub name: String,
    /// True only when the check ran and held; a skipped check is not passed.
    pub passed: bool,
    /// The check could not run (and says why in `detail`); it neither passes nor fails.
    #[serde(default)]
    pub skipped: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ValidateReport {
    pub plan_id: String,
    pub ok: bool,
    pub status: Status,
    /// The plan's own checks.
    pub checks: Vec<CheckOutcome>,
    /// Integrity, drift from the dry-run's schema, history.
    pub builtin: Vec<BuiltinCheck>,
    pub row_counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RollbackReport {
    pub plan_id: String,
    pub status: Status,
    pub rolled_back: Vec<String>,
    /// The schema after rollback equals the schema before apply.
    pub schema_verified: bool,
    pub detail: String,
    pub reason: String,
    /// The same steps rolled back on the linked staging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_sync: Option<StagingSync>,
    /// `[export]`: the rolled-back steps' migrations taken out of the folder and the tool's
    /// history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexported: Option<super::Unexported>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepStatus {
    pub name: String,
    pub state: StepState,
    pub gate: Option<Gate>,
    pub applied_at: Option<String>,
    pub released_by: Option<String>,
    pub up: Option<String>,
    pub down: Option<String>,
    /// A backfill step in full: the UPDATE it runs (in keyset batches) and what it overwrites.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillShown>,
}

/// A backfill as reviewers see it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackfillShown {
    /// The UPDATE, INSERT … SELECT or DELETE the batches run, as one statement.
    pub sql: String,
    /// The columns whose values it overwrites; drydock saves them first and restores them on
    /// rollback.
    pub overwrites: Vec<String>,
    pub spec: crate::plan::Backfill,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    pub id: i64,
    pub kind: RunKind,
    pub target: String,
    pub ok: bool,
    pub checksum: String,
    pub finished_at: String,
    pub duration_ms: f64,
    /// What the run measured; its shape depends on the run's kind.
    pub detail: RunDetail,
}

impl From<RunRow> for RunSummary {
    fn from(r: RunRow) -> Self {
        // Fingerprint lines are for drydock's own comparisons, not for reading.
        let detail = RunDetail {
            fingerprint_before_lines: None,
            fingerprint_after_up_lines: None,
            ..r.detail
        };
        RunSummary {
            id: r.id,
            kind: r.kind,
            target: r.target,
            ok: r.ok,
            checksum: r.checksum,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            detail,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusReport {
    pub plan_id: String,
    pub status: Status,
    /// A newer plan submitted to supersede this one: this one is no longer to be decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    pub goal: String,
    pub target: String,
    pub role: Role,
    pub checksum: String,
    pub author: String,
    pub urgency: Urgency,
    pub created_at: String,
    /// Where the steps came from: the agent's `steps`, a `template`, or a `desired` schema.
    #[serde(default = "steps_source")]
    pub source: crate::plan::Source,
    /// The desired schema the plan was made from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<crate::plan::Desired>,
    pub steps: Vec<StepStatus>,
    pub checks: Vec<Check>,
    pub checklist: Vec<ChecklistItem>,
    pub runs: Vec<RunSummary>,
    pub approvals: Vec<ApprovalRow>,
    pub analysis: ReviewedAnalysis,
    /// Set while an apply or rollback of this plan runs in this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningInfo>,
    /// Held by an engineer (`drydock pause`): backfills wait between batches until `resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::store::Paused>,
    /// A plan on a group: each member's wave and state (pending, applying, applied, failed,
    /// rolled-back) and the error that failed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<crate::store::MemberRow>,
    pub next_steps: Vec<String>,
}

/// The static analysis, with the newest passing dry-run's measurements beside it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReviewedAnalysis {
    #[serde(flatten)]
    pub analysis: Analysis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
}

/// What the newest passing dry-run of this checksum measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Measured {
    pub dry_run: i64,
    pub target: String,
    pub statements: Vec<StatementRun>,
    /// Where the measurement disagrees with the static analysis (the measurement wins).
    pub disagreements: Vec<String>,
}

/// An operation running in the background for a plan, with its latest progress.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunningInfo {
    pub action: String,
    pub since: String,
    pub done: Option<u64>,
    pub total: Option<u64>,
    pub message: Option<String>,
    /// A running backfill's last look at the database around it: replica lag (batches wait
    /// above `policy.max_replica_lag`), the oldest open transaction, the table's dead tuples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::db::Health>,
    /// The server doing it, when it is another server sharing the state store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlanSummary {
    pub plan_id: String,
    pub target: String,
    pub status: Status,
    pub goal: String,
    pub author: String,
    pub created_at: String,
    /// The analysis's risk.
    pub risk: Option<crate::plan::analysis::Severity>,
    /// A newer plan submitted to supersede this one: this one is no longer to be decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InspectReport {
    pub target: String,
    pub role: Role,
    pub engine: String,
    /// Other migration tools managing this database: their history tables, latest version and
    /// failed (or dirty) versions. Work beside them: see the `migration-specialist` prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migration_tools: Vec<crate::db::MigrationTool>,
    /// Tables in the target, partitions included; `tables` holds one page of them.
    pub total_tables: usize,
    /// More tables follow: pass this as `after` to read the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub tables: BTreeMap<String, TableInfo>,
    /// The partitions of each partitioned table listed (a page lists them here, not among
    /// `tables`; `inspect` with `table` reads one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, super::Partitions>,
    /// The views and materialized views that read the listed tables, with the columns they
    /// read (their definitions with `bodies`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub views: BTreeMap<String, super::ViewInfo>,
    /// The enums and domains the listed tables' columns use, by type name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, crate::db::describe::UserType>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MistakeReport {
    pub recorded: bool,
    /// How many times this mistake has now been seen.
    pub count: u64,
    pub path: String,
}

/// A gate as an engineer reads it.
pub fn gate_text(g: &Gate) -> String {
    match g {
        Gate::Manual => "manual: waits for an engineer's `drydock release`".into(),
        Gate::After { duration } => format!("after {duration} since the previous step was applied"),
    }
}

fn steps_source() -> crate::plan::Source {
    crate::plan::Source::Steps
}

impl StatusReport {
    /// The plan as an engineer reviews it: goal, SQL per step, analysis, checklist, evidence.
    pub fn to_markdown(&self) -> String {
        let mut md = format!(
            "# Plan {} — {}\n\n- **target:** `{}` ({})\n- **status:** {}\n- **author:** {}\n- **urgency:** {}\n- **checksum:** `{}`\n- **created:** {}\n",
            self.plan_id,
            self.goal,
            self.target,
            self.role.as_str(),
            self.status,
            self.author,
            self.urgency.as_str(),
            self.checksum,
            self.created_at
        );
        md.push_str(&format!("- **risk:** {}\n", self.analysis.analysis.risk));
        if let Some(r) = &self.running {
            md.push_str(&format!(
                "- **running:** {} since {}{}{}\n",
                r.action,
                r.since,
                r.message
                    .as_deref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default(),
                r.server
                    .as_deref()
                    .map(|s| format!(" (on server `{s}`)"))
                    .unwrap_or_default()
            ));
        }
        for s in &self.steps {
            md.push_str(&self.step_markdown(s));
        }
        if !self.checks.is_empty() {
            md.push_str("\n## Checks\n");
            for c in &self.checks {
                md.push_str(&format!(
                    "- `{}` (expect {}): `{}`\n",
                    c.name, c.expect, c.sql
                ));
            }
        }
        md.push_str(&self.hazards_markdown());
        md.push_str(&self.checklist_markdown());
        md.push_str(&self.runs_markdown());
        if !self.approvals.is_empty() {
            md.push_str("\n## Decisions\n");
            for a in &self.approvals {
                md.push_str(&format!(
                    "- {} by {} at {}{}\n",
                    a.decision,
                    a.by,
                    a.at,
                    a.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ));
            }
        }
        md.push_str("\n## Next steps\n");
        for n in &self.next_steps {
            md.push_str(&format!("- {n}\n"));
        }
        md
    }

    /// The analysis' hazards, each with its fix.
    fn hazards_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("\n## Hazards\n");
        let hazards = &self.analysis.analysis.hazards;
        if hazards.is_empty() {
            md.push_str("- none found\n");
        }
        for h in hazards {
            md.push_str(&format!(
                "- **{}** ({}) on `{}`: {} — fix: {}\n",
                h.code,
                h.severity,
                h.table.as_deref().unwrap_or("-"),
                h.message,
                h.fix
            ));
        }
        md
    }

    /// The checklist, item by item with its evidence; a fleet's members.
    fn checklist_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("\n## Checklist\n");
        for i in &self.checklist {
            let state = i.state.as_str();
            md.push_str(&format!(
                "- [{}] **{}** — {}{}\n",
                if i.holds() { "x" } else { " " },
                i.item,
                state,
                i.evidence
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if !self.members.is_empty() {
            md.push_str("\n## Members\n");
            for m in &self.members {
                md.push_str(&format!(
                    "- wave {} `{}`: {}{}\n",
                    m.wave,
                    m.target,
                    m.state.as_str(),
                    m.error
                        .as_deref()
                        .map(|e| format!(" — {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        md
    }

    /// One step: its state and gate, `up`, backfill in full, `down`.
    fn step_markdown(&self, s: &StepStatus) -> String {
        let mut md = String::new();
        md.push_str(&format!("\n## Step `{}` — {}", s.name, s.state.as_str()));
        if let Some(g) = &s.gate {
            md.push_str(&format!(" (gate: {})", gate_text(g)));
            if s.state == StepState::Gated {
                let early = match g {
                    Gate::After { .. } => " [--override-window --reason R]",
                    Gate::Manual => "",
                };
                md.push_str(&format!(
                    "\n\nopen it with: `drydock release {} {} --by NAME{early}`",
                    self.plan_id, s.name
                ));
            }
        }
        if let Some(up) = &s.up {
            md.push_str(&format!("\n\n### up\n```sql\n{up}\n```\n"));
        }
        if let Some(b) = &s.backfill {
            let key = b.spec.key.as_deref().unwrap_or("the primary key");
            let saved = match b.spec.mode() {
                crate::plan::BackfillMode::Update(_) => format!(
                    "overwrites {}; drydock saves the old values (keyed by `{key}`, in `drydock_backup`) before each batch and puts them back on rollback",
                    b.overwrites
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                crate::plan::BackfillMode::Copy(c) => format!(
                    "copies into `{}`; drydock records each copied row's `{key}` and deletes those rows on rollback",
                    c.table
                ),
                crate::plan::BackfillMode::Delete => format!(
                    "deletes; drydock saves each deleted row whole (keyed by `{key}`, in `drydock_backup`) and inserts it back on rollback"
                ),
            };
            md.push_str(&format!(
                "\n\n### backfill (in keyset batches of {} rows by `{key}`, each its own transaction)\n```sql\n{}\n```\n{saved}\n",
                b.spec.batch_size.unwrap_or(1000),
                b.sql,
            ));
        }
        md.push_str("\n### down\n```sql\n");
        md.push_str(match (&s.down, &s.backfill) {
            (Some(d), _) => d.as_str(),
            (None, Some(_)) => "-- drydock restores the saved values",
            (None, None) => "-- none: this step cannot be rolled back",
        });
        md.push_str("\n```\n");
        md
    }

    /// The runs, a line each, with a dry-run's verification and estimate.
    fn runs_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("\n## Runs\n");
        if self.runs.is_empty() {
            md.push_str("- none yet\n");
        }
        for r in &self.runs {
            md.push_str(&format!(
                "- #{} {} on `{}`: {} at {} ({:.1} ms)",
                r.id,
                r.kind,
                r.target,
                if r.ok { "ok" } else { "FAILED" },
                r.finished_at,
                r.duration_ms
            ));
            if r.kind == RunKind::DryRun && r.ok {
                md.push_str(&format!(
                    "; rollback verified: {}; estimated production duration {:.1} ms",
                    r.detail.rollback_verified.unwrap_or(false),
                    r.detail
                        .estimate
                        .as_ref()
                        .map(|e| e.production_ms)
                        .unwrap_or_default()
                ));
            }
            if let Some(e) = &r.detail.error {
                md.push_str(&format!("; error: {e}"));
            }
            md.push('\n');
        }
        md
    }
}
