//! A plan is an immutable proposal: goal, target, ordered steps, validation checks. Its checksum
//! (SHA-256 over the normalised steps, checks and target) is what every piece of evidence — a
//! dry-run, an approval — is bound to; changing anything makes a different plan.
//! Data only, with the typed evidence (`analysis`, `evidence`): imports the leaves, never `db`,
//! `store`, `analysis` or `engine`.

pub mod analysis;
mod desired;
pub mod evidence;
pub mod input;
pub mod kind;
pub mod mistake;
mod restore;

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Part, Result};
pub use desired::{Desired, Source};
pub use restore::Restore;

/// One step of a plan. Multi-step plans (expand/contract) walk the lifecycle per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// A short name for the step (`expand`, `backfill`, `contract`); defaults to `step-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// SQL that makes the change. Several statements separated by `;` run in one transaction.
    #[serde(default)]
    pub up: Option<String>,
    /// SQL that undoes `up` exactly. Required for production (`rollback-ready`), except on a
    /// final step: one gated `after` the rollback window, at the end of the plan, which ends
    /// what rollback could undo (dropping what was set aside) and so has no `down`.
    #[serde(default)]
    pub down: Option<String>,
    /// A batched data change instead of `up`: keyset batches, each its own transaction with
    /// its checkpoint, so an interrupted backfill resumes without skipping or repeating a row.
    #[serde(default)]
    pub backfill: Option<Backfill>,
    /// Hold the step until an engineer releases it (`manual`) or a duration has passed (`after`).
    #[serde(default)]
    pub gate: Option<Gate>,
    /// How a drop template's `down` puts values back without holding the table for all of them
    /// (see `Restore`). Written by drydock's templates only: not part of what an agent sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub restore: Option<Restore>,
}

impl Step {
    /// A final step: no `down`, gated until the rollback window has passed. Rollback is
    /// possible until it runs and refused after; the dry-run verifies the steps before it.
    pub fn is_final(&self) -> bool {
        self.down.is_none()
            && self.backfill.is_none()
            && matches!(&self.gate, Some(Gate::After { duration }) if duration == "rollback_window")
    }
}

/// A batched change of `table`'s rows, in keyset batches by `key`: an UPDATE (`set`), a copy
/// into another table (`copy_into`) or a DELETE (`delete`) of the rows matching `where`. What it
/// overwrites, copies or deletes is saved batch by batch, so rollback puts it back exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    /// The table whose rows are walked (updated, copied or deleted).
    pub table: String,
    /// The assignments, as after `UPDATE table SET` (e.g. `total_cents = price * 100`); empty
    /// for a copy or a delete.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub set: String,
    /// Copy the rows into another table instead (`INSERT INTO … SELECT`); rollback deletes the
    /// rows it copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_into: Option<CopyInto>,
    /// Delete the rows instead; rollback inserts them back as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
    /// Which rows to update (an SQL boolean expression); all rows when omitted.
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A unique, ordered column to walk the table by; the primary key when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Rows per batch at most (default: start at 1000 and grow); batches shrink below it to
    /// stay near 100 ms and when they keep the application waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Pause between batches, in milliseconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<u64>,
}

/// Where a copying backfill puts the rows: `columns` (the walk key among them) of `table`, read
/// from the same-named columns of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyInto {
    pub table: String,
    pub columns: Vec<String>,
    /// Skip rows whose key `table` already has (`ON CONFLICT DO NOTHING`), e.g. rows a
    /// dual-write trigger wrote first; otherwise such a row fails the batch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_existing: bool,
}

/// What a backfill does to each batch.
pub enum BackfillMode<'a> {
    Update(&'a str),
    Copy(&'a CopyInto),
    Delete,
}

impl Backfill {
    /// The one thing this backfill does (validated: exactly one of `set`, `copy_into`, `delete`).
    pub fn mode(&self) -> BackfillMode<'_> {
        match (&self.copy_into, self.delete) {
            (Some(c), _) => BackfillMode::Copy(c),
            (None, true) => BackfillMode::Delete,
            (None, false) => BackfillMode::Update(&self.set),
        }
    }

    /// Whether a batch reads rows other than the ones it writes: a copy reads its source, a
    /// delete or update whose `where` or `set` holds a subquery reads what that selects. Such a
    /// batch must not write what it read from a snapshot older than a concurrent writer's
    /// change (see the PostgreSQL backfill).
    pub fn reads_other_rows(&self) -> bool {
        let subquery = |sql: &str| {
            crate::sql::lexer::tokenize(sql)
                .map(|tokens| tokens.iter().any(|(_, t)| t.is_word("SELECT")))
                // Unlexable text never reaches a batch (validated); count it as reading.
                .unwrap_or(true)
        };
        match self.mode() {
            BackfillMode::Copy(_) => true,
            BackfillMode::Update(set) => {
                subquery(set) || self.filter.as_deref().is_some_and(subquery)
            }
            BackfillMode::Delete => self.filter.as_deref().is_some_and(subquery),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Gate {
    /// Wait for `drydock release PLAN STEP --by NAME`.
    Manual,
    /// Not before `duration` (e.g. "7d"; "rollback_window" for the policy's window) has passed
    /// since the previous step was applied.
    After { duration: String },
}

/// A validation query run after dry-run `up`, on `validate`, and reported with evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    pub name: String,
    /// One read-only query.
    pub sql: String,
    /// `"true"` (one row whose first column is true/1), `"empty"` (no rows) or `"rows:N"`.
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    True,
    Empty,
    Rows(u64),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::True => f.write_str("true"),
            Expect::Empty => f.write_str("empty"),
            Expect::Rows(n) => write!(f, "rows:{n}"),
        }
    }
}

impl FromStr for Expect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "true" => Ok(Expect::True),
            "empty" => Ok(Expect::Empty),
            other => other
                .strip_prefix("rows:")
                .and_then(|n| n.trim().parse().ok())
                .map(Expect::Rows)
                .ok_or_else(|| {
                    format!("expect must be \"true\", \"empty\" or \"rows:N\", not {other:?}")
                }),
        }
    }
}

impl Serialize for Expect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Expect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expect".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(true|empty|rows:[0-9]+)$",
            "description": "\"true\", \"empty\" or \"rows:N\""
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    #[default]
    Normal,
    P1,
    P0,
}

impl Urgency {
    pub fn is_hotfix(self) -> bool {
        matches!(self, Urgency::P0 | Urgency::P1)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::P1 => "p1",
            Urgency::P0 => "p0",
        }
    }
}

/// An engineer's decision on a plan's checksum. On the wire and in the store: `approved`,
/// `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approved,
    Rejected,
    /// A hotfix's `staging-tested` waived by this approver (which also approves the checksum).
    Waived,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
            Decision::Waived => "waived",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Decision, String> {
        [Decision::Approved, Decision::Rejected, Decision::Waived]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown decision {s:?}"))
    }
}

/// What a recorded run was. On the wire (and in the store) the kebab-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    DryRun,
    /// The target's schema before the first step, recorded before that step runs.
    PreApply,
    Apply,
    Validate,
    Rollback,
    /// The store brought in line with the target's history after an interrupted run.
    Reconcile,
    /// A production target's linked staging following what was applied or rolled back there.
    StagingSync,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::DryRun => "dry-run",
            RunKind::PreApply => "pre-apply",
            RunKind::Apply => "apply",
            RunKind::Validate => "validate",
            RunKind::Rollback => "rollback",
            RunKind::Reconcile => "reconcile",
            RunKind::StagingSync => "staging-sync",
        }
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<RunKind, String> {
        [
            RunKind::DryRun,
            RunKind::PreApply,
            RunKind::Apply,
            RunKind::Validate,
            RunKind::Rollback,
            RunKind::Reconcile,
            RunKind::StagingSync,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown run kind {s:?}"))
    }
}

/// A plan's place in the lifecycle (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Planned,
    Tested,
    Approved,
    Applying,
    /// A rollout to a group stopped at its first failed member; `apply` resumes it, `rollback`
    /// reverses the members it applied.
    Halted,
    Applied,
    Validated,
    RolledBack,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Tested => "tested",
            Status::Approved => "approved",
            Status::Applying => "applying",
            Status::Halted => "halted",
            Status::Applied => "applied",
            Status::Validated => "validated",
            Status::RolledBack => "rolled-back",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Status> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| Error::Store(format!("unknown plan status `{s}` in the state store")))
    }

    /// Whether some of the plan's steps have been applied to the target (and not rolled back).
    pub fn touched_target(self) -> bool {
        matches!(
            self,
            Status::Applied | Status::Validated | Status::Applying | Status::Halted
        )
    }

    /// Whether the plan's SQL has not touched the target yet.
    pub fn is_pre_apply(self) -> bool {
        matches!(self, Status::Planned | Status::Tested | Status::Approved)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-step state shown by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Pending,
    Gated,
    Applying,
    Applied,
    RolledBack,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Gated => "gated",
            StepState::Applying => "applying",
            StepState::Applied => "applied",
            StepState::RolledBack => "rolled-back",
        }
    }
    pub fn parse(s: &str) -> Result<StepState> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| Error::Store(format!("unknown step state `{s}` in the state store")))
    }
}

/// Where one member of a group rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MemberState {
    Pending,
    Applying,
    Applied,
    /// Its step failed (and was rolled back on it); the rollout halted.
    Failed,
    RolledBack,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Pending => "pending",
            MemberState::Applying => "applying",
            MemberState::Applied => "applied",
            MemberState::Failed => "failed",
            MemberState::RolledBack => "rolled-back",
        }
    }
    pub fn parse(s: &str) -> Result<MemberState> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| Error::Store(format!("unknown member state `{s}` in the state store")))
    }
}

/// The state store keeps lifecycle values as text; reading one back names what it did not know.
macro_rules! stored_as_text {
    ($($ty:ty => $parse:expr),* $(,)?) => {$(
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<$ty> {
                $parse(&s)
            }
        }
    )*};
}

stored_as_text! {
    Status => Status::parse,
    StepState => StepState::parse,
    MemberState => MemberState::parse,
    RunKind => |s: &str| s.parse::<RunKind>().map_err(Error::Store),
    Decision => |s: &str| s.parse::<Decision>().map_err(Error::Store),
    Urgency => |s: &str| serde_json::from_value::<Urgency>(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::Store(format!("unknown urgency `{s}` in the state store"))),
}

/// The normalised, validated content of a plan: what the checksum covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub target: String,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    /// The drydock template the steps were rendered from, when they were: its PL/pgSQL may
    /// build statements at run time (from quoted identifiers), which agent SQL may not. Part of
    /// the checksum, so it cannot be claimed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's parameters that are the agent's SQL (a backfill's `set`, a `using`, a
    /// CHECK's expression): a failure of a step that carries one is the agent's lesson, not a
    /// defect of drydock's template. Part of the checksum, as the template is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_sql: Vec<String>,
    /// The desired schema the steps were planned from, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Desired>,
}

/// drydock's templates whose steps are the agent's own text, rendered verbatim (`migration`
/// wraps the agent's `up` and `down` in a documented skeleton): their SQL is agent SQL like any
/// step's, and a failure of it is the agent's lesson.
const AGENT_TEXT_TEMPLATES: &[&str] = &["migration"];

impl Body {
    /// The drydock template whose own text the steps are, when they are: SQL that drydock wrote
    /// (and vouches for, PL/pgSQL that builds statements from quoted identifiers included), with
    /// the agent's parameters admitted on their own as agent SQL. `None` for a plan of the agent's
    /// steps, and for a template that renders the agent's statements verbatim. Every step of a
    /// plan from a desired schema is drydock's (its templates', or DDL it wrote from the agent's
    /// DDL, which was admitted as agent SQL first): vouched as `desired`.
    pub fn vouched_template(&self) -> Option<&str> {
        match &self.desired {
            Some(_) => Some("desired"),
            None => self
                .template
                .as_deref()
                .filter(|t| !AGENT_TEXT_TEMPLATES.contains(t)),
        }
    }

    /// Whether step `name` carries SQL the agent wrote into a vouched template's parameters.
    pub fn step_carries_agent_sql(&self, name: &str) -> bool {
        let Some(step) = self.steps.iter().find(|s| s.name.as_deref() == Some(name)) else {
            return false;
        };
        let backfill = step
            .backfill
            .as_ref()
            .map(|b| format!("{} {}", b.set, b.filter.as_deref().unwrap_or_default()));
        [
            step.up.as_deref(),
            step.down.as_deref(),
            backfill.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|sql| self.agent_sql.iter().any(|a| sql.contains(a.as_str())))
    }

    /// Validates raw input and normalises it: names filled in, SQL trimmed, empty SQL rejected.
    pub fn new(target: &str, steps: Vec<Step>, checks: Vec<Check>) -> Result<Body> {
        if steps.is_empty() {
            return Err(Error::invalid(
                Part::Plan,
                "a plan needs `steps` (each with `up` and `down`) or a `template` with `params`",
            ));
        }
        let mut names = std::collections::HashSet::new();
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let name = s
                    .name
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| format!("step-{}", i + 1));
                if !names.insert(name.clone()) {
                    return Err(Error::invalid(Part::Step, format!("step name `{name}` is used twice")));
                }
                let up = normalise_sql(s.up);
                match (&up, &s.backfill) {
                    (None, None) => {
                        return Err(Error::invalid(Part::Step, format!("step `{name}` has neither `up` nor `backfill`")));
                    }
                    (Some(_), Some(_)) => {
                        return Err(Error::invalid(Part::Step, format!(
                            "step `{name}` has both `up` and `backfill`; put the backfill in a step of its own"
                        )));
                    }
                    (None, Some(b)) => input::validate_backfill(&name, b)?,
                    _ => {}
                }
                if let Some(Gate::After { duration }) = &s.gate
                    && duration != "rollback_window" {
                        humantime::parse_duration(duration).map_err(|e| {
                            Error::invalid(Part::Step, format!("step `{name}` gate duration {duration:?}: {e}"))
                        })?;
                    }
                if let Some(r) = &s.restore {
                    r.validate(&name)?;
                }
                Ok(Step { name: Some(name), up, down: normalise_sql(s.down), backfill: s.backfill, gate: s.gate, restore: s.restore })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(i) = steps.iter().position(Step::is_final)
            && let Some(later) = steps[i..].iter().find(|s| !s.is_final())
        {
            return Err(Error::invalid(
                Part::Step,
                format!(
                    "step `{}` has no `down` and runs after the rollback window, so it must be last; step `{}` comes after it",
                    steps[i].name.as_deref().unwrap_or("step"),
                    later.name.as_deref().unwrap_or("step")
                ),
            ));
        }
        let mut check_names = std::collections::HashSet::new();
        let checks = checks
            .into_iter()
            .map(|c| {
                let name = c.name.trim().to_string();
                if name.is_empty() {
                    return Err(Error::invalid(Part::Check, "every check needs a `name`"));
                }
                if !check_names.insert(name.clone()) {
                    return Err(Error::invalid(
                        Part::Check,
                        format!("check name `{name}` is used twice"),
                    ));
                }
                let sql = normalise_sql(Some(c.sql)).ok_or_else(|| Error::InvalidCheck {
                    name: name.clone(),
                    reason: "its `sql` is empty".into(),
                })?;
                input::check_is_single_query(&name, &sql)?;
                Ok(Check {
                    name,
                    sql,
                    expect: c.expect,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Body {
            target: target.to_string(),
            steps,
            checks,
            template: None,
            agent_sql: vec![],
            desired: None,
        })
    }

    /// Where the steps came from.
    pub fn source(&self) -> Source {
        match (&self.desired, &self.template) {
            (Some(_), _) => Source::Desired,
            (None, Some(_)) => Source::Template,
            (None, None) => Source::Steps,
        }
    }

    pub fn checksum(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a plan body always serialises");
        let digest = Sha256::digest(&canonical);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn normalise_sql(sql: Option<String>) -> Option<String> {
    let sql = sql?.replace("\r\n", "\n");
    let trimmed: Vec<&str> = sql.lines().map(str::trim_end).collect();
    let joined = trimmed.join("\n");
    let joined = joined.trim();
    (!joined.is_empty()).then(|| joined.to_string())
}

/// A stored plan, as the engine and the adapters see it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub checksum: String,
    pub goal: String,
    pub target: String,
    pub author: String,
    pub urgency: Urgency,
    pub status: Status,
    pub created_at: String,
    pub supersedes: Option<String>,
    pub body: Body,
    pub analysis: analysis::Analysis,
}

impl Plan {
    pub fn steps(&self) -> &[Step] {
        &self.body.steps
    }

    /// The tables the analysis found the plan touching.
    pub fn tables(&self) -> Vec<String> {
        self.impact_tables(|_| true)
    }

    /// The tables the plan touches that existed when it was analysed.
    pub fn existing_tables(&self) -> Vec<String> {
        self.impact_tables(|t| t.exists)
    }

    fn impact_tables(&self, keep: impl Fn(&analysis::TableImpact) -> bool) -> Vec<String> {
        self.analysis
            .impact
            .iter()
            .filter(|t| keep(t))
            .map(|t| t.table.clone())
            .collect()
    }

    /// Every piece of SQL the plan carries (each step's `up` and `down`, backfills' `set` and
    /// `where`): the names an error about the plan may repeat without revealing anything.
    pub fn sql_text(&self) -> String {
        self.steps()
            .iter()
            .flat_map(|s| {
                [s.up.as_deref(), s.down.as_deref()]
                    .into_iter()
                    .flatten()
                    .chain(
                        s.backfill.iter().flat_map(|b| {
                            std::iter::once(b.set.as_str()).chain(b.filter.as_deref())
                        }),
                    )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn step_name(&self, i: usize) -> &str {
        self.body.steps[i].name.as_deref().unwrap_or("step")
    }

    /// Every step's name, in order.
    pub fn step_names(&self) -> Vec<String> {
        (0..self.body.steps.len())
            .map(|i| self.step_name(i).to_string())
            .collect()
    }
}

/// A fresh plan id: short, unique, and not derived from anything secret.
pub fn new_id(checksum: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{checksum}:{nanos}:{}", std::process::id()).as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("pl-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(up: &str, down: &str) -> Step {
        Step {
            name: None,
            up: Some(up.into()),
            down: Some(down.into()),
            backfill: None,
            gate: None,
            restore: None,
        }
    }

    #[test]
    fn checksum_ignores_trailing_whitespace_but_not_sql() {
        let a = Body::new(
            "prod",
            vec![step("ALTER TABLE t ADD c int;  \r\n", "x")],
            vec![],
        )
        .unwrap();
        let b = Body::new("prod", vec![step("ALTER TABLE t ADD c int;", "x")], vec![]).unwrap();
        let c = Body::new("prod", vec![step("ALTER TABLE t ADD d int;", "x")], vec![]).unwrap();
        assert_eq!(a.checksum(), b.checksum());
        assert_ne!(a.checksum(), c.checksum());
    }

    #[test]
    fn checksum_covers_the_target() {
        let a = Body::new("prod", vec![step("SELECT 1", "x")], vec![]).unwrap();
        let b = Body::new("other", vec![step("SELECT 1", "x")], vec![]).unwrap();
        assert_ne!(a.checksum(), b.checksum());
    }

    #[test]
    fn expect_parses_the_three_forms() {
        assert_eq!("true".parse::<Expect>().unwrap(), Expect::True);
        assert_eq!("empty".parse::<Expect>().unwrap(), Expect::Empty);
        assert_eq!("rows:3".parse::<Expect>().unwrap(), Expect::Rows(3));
        assert!("rows:x".parse::<Expect>().is_err());
    }

    #[test]
    fn duplicate_step_names_are_refused() {
        let mut a = step("SELECT 1", "x");
        a.name = Some("s".into());
        let err = Body::new("p", vec![a.clone(), a], vec![]).unwrap_err();
        assert_eq!(err.code(), "invalid-input");
    }

    #[test]
    fn a_final_step_is_after_the_rollback_window_without_down_and_last() {
        let mut purge = step("DROP TABLE drydock.t_old", "x");
        purge.name = Some("purge".into());
        purge.down = None;
        assert!(
            !purge.is_final(),
            "no gate: an irreversible step, not a final one"
        );
        purge.gate = Some(Gate::After {
            duration: "7d".into(),
        });
        assert!(
            !purge.is_final(),
            "a window of its own is not the rollback window"
        );
        purge.gate = Some(Gate::After {
            duration: "rollback_window".into(),
        });
        assert!(purge.is_final());
        assert!(Body::new("p", vec![step("SELECT 1", "x"), purge.clone()], vec![]).is_ok());
        let err = Body::new("p", vec![purge, step("SELECT 2", "x")], vec![]).unwrap_err();
        assert!(err.to_string().contains("must be last"), "{err}");
    }
}
