//! `status` as an agent polls it: small whatever the plan's history and schema. The steps' states
//! without their SQL, the checklist, the worst hazards with a count of the rest, the newest runs
//! with one line each, the decisions and what runs now. The full report (every run's
//! measurements, the steps' SQL, the whole analysis) is `status` with `detail`, the
//! `drydock://plans/{id}` resource, `drydock show`, or the review page.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fit::{clip, full_report, is_zero};
use super::report::{RunningInfo, StatusReport};
use crate::checklist::ChecklistItem;
use crate::config::Role;
use crate::plan::analysis::Severity;
use crate::plan::{Gate, MemberState, RunKind, Status, StepState, Urgency};
use crate::store::{ApprovalRow, MemberRow};

/// Hazards, runs and fleet members listed at most; the rest are counted.
const HAZARDS: usize = 5;
const RUNS: usize = 5;
const MEMBERS: usize = 30;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusBrief {
    pub plan_id: String,
    pub status: Status,
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
    pub source: crate::plan::Source,
    pub steps: Vec<StepBrief>,
    pub checklist: Vec<ChecklistItem>,
    /// The analysis' overall risk.
    pub risk: Severity,
    /// The worst hazards first.
    pub hazards: Vec<HazardBrief>,
    pub hazards_total: usize,
    /// The newest runs first.
    pub runs: Vec<RunBrief>,
    pub runs_total: usize,
    pub approvals: Vec<ApprovalRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::store::Paused>,
    /// A plan on a group: the members not yet applied first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberRow>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub members_total: usize,
    pub next_steps: Vec<String>,
    /// Where the full report is.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepBrief {
    pub name: String,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// A batched backfill rather than statements.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HazardBrief {
    pub code: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunBrief {
    pub id: i64,
    pub kind: RunKind,
    pub target: String,
    pub ok: bool,
    pub finished_at: String,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Statements measured, warnings and disagreements with the analysis: counted here, listed
    /// in the full report.
    pub statements: usize,
    pub warnings: usize,
    pub disagreements: usize,
}

impl StatusReport {
    /// The report as `status` answers it by default (see the module's doc).
    pub fn brief(&self) -> StatusBrief {
        let mut hazards: Vec<&crate::plan::analysis::Hazard> =
            self.analysis.analysis.hazards.iter().collect();
        hazards.sort_by_key(|h| std::cmp::Reverse(h.severity));
        let mut members: Vec<MemberRow> = self.members.clone();
        if members.len() > MEMBERS {
            // Too many to list: the ones not applied first (the sort keeps wave order).
            members.sort_by_key(|m| m.state == MemberState::Applied);
        }
        StatusBrief {
            plan_id: self.plan_id.clone(),
            status: self.status,
            superseded_by: self.superseded_by.clone(),
            goal: self.goal.clone(),
            target: self.target.clone(),
            role: self.role,
            checksum: self.checksum.clone(),
            author: self.author.clone(),
            urgency: self.urgency,
            created_at: self.created_at.clone(),
            source: self.source,
            steps: self
                .steps
                .iter()
                .map(|s| StepBrief {
                    name: s.name.clone(),
                    state: s.state,
                    gate: s.gate.clone(),
                    applied_at: s.applied_at.clone(),
                    released_by: s.released_by.clone(),
                    backfill: s.backfill.is_some(),
                })
                .collect(),
            checklist: self
                .checklist
                .iter()
                .map(|i| ChecklistItem {
                    evidence: i.evidence.as_deref().map(clip),
                    ..i.clone()
                })
                .collect(),
            risk: self.analysis.analysis.risk,
            hazards_total: hazards.len(),
            hazards: hazards
                .into_iter()
                .take(HAZARDS)
                .map(|h| HazardBrief {
                    code: h.code.to_string(),
                    severity: h.severity,
                    table: h.table.clone(),
                    message: clip(&h.message),
                })
                .collect(),
            runs_total: self.runs.len(),
            runs: self
                .runs
                .iter()
                .rev()
                .take(RUNS)
                .map(|r| RunBrief {
                    id: r.id,
                    kind: r.kind,
                    target: r.target.clone(),
                    ok: r.ok,
                    finished_at: r.finished_at.clone(),
                    duration_ms: r.duration_ms,
                    rollback_verified: r.detail.rollback_verified,
                    error: r.detail.error.as_deref().map(clip),
                    statements: r.detail.statements.len(),
                    warnings: r.detail.warnings.len(),
                    disagreements: r.detail.disagreements.len(),
                })
                .collect(),
            approvals: self.approvals.clone(),
            running: self.running.clone(),
            paused: self.paused.clone(),
            members_total: members.len(),
            members: members.into_iter().take(MEMBERS).collect(),
            next_steps: self.next_steps.clone(),
            detail: format!(
                "the steps' SQL, every run's measurements and the whole analysis: {}",
                full_report(&self.plan_id)
            ),
        }
    }
}
