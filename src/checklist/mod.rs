//! The safety checklist (spec §4) as named checks with evidence. `evaluate` is pure: it reads the
//! plan, its runs, approvals and the target's newest backup, and says for each item whether it
//! holds. `apply` on a production target requires every item; elsewhere the items are reported
//! but not enforced.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Policy, Role};
use crate::plan::Plan;
use crate::store::{ApprovalRow, BackupRow, RunRow, age};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    Pending,
    Passed,
    Failed,
    Waived,
}

/// One checklist item: `{item, state, evidence?}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChecklistItem {
    pub item: String,
    pub state: ItemState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Whether `apply` requires this item on this plan's target.
    pub required: bool,
}

impl ChecklistItem {
    pub fn holds(&self) -> bool {
        matches!(self.state, ItemState::Passed | ItemState::Waived)
    }
}

pub const ITEMS: &[(&str, &str)] = &[
    (
        "staging-tested",
        "a dry-run of this exact checksum passed on a non-production target, rollback verified, within policy.dry_run_max_age",
    ),
    (
        "backup-verified",
        "a verified, restorable backup of the target exists within policy.backup_max_age (taken automatically before a production apply)",
    ),
    (
        "transactional",
        "every step runs in a transaction, or its non-transactional statements are listed in the plan and approved",
    ),
    (
        "monitoring",
        "the lock watcher runs for the apply (always on for production)",
    ),
    (
        "rollback-ready",
        "every step has a `down` and the dry-run verified it restores the schema",
    ),
    (
        "approved",
        "an engineer other than the plan's author approved this checksum (`drydock approve`)",
    ),
];

/// Everything the checklist looks at.
pub struct Evidence<'a> {
    pub plan: &'a Plan,
    pub role: Role,
    pub policy: &'a Policy,
    pub runs: &'a [RunRow],
    pub approvals: &'a [ApprovalRow],
    pub backup: Option<&'a BackupRow>,
}

fn item(
    name: &str,
    state: ItemState,
    evidence: impl Into<String>,
    required: bool,
) -> ChecklistItem {
    let evidence = evidence.into();
    ChecklistItem {
        item: name.into(),
        state,
        evidence: (!evidence.is_empty()).then_some(evidence),
        required,
    }
}

/// Distinct engineers who approved this checksum, excluding the author; `None` if rejected.
pub fn approvers(plan: &Plan, approvals: &[ApprovalRow]) -> Option<Vec<String>> {
    let mut by: Vec<String> = Vec::new();
    for a in approvals.iter().filter(|a| a.checksum == plan.checksum) {
        if a.decision == "rejected" {
            return None;
        }
        if !a.by.eq_ignore_ascii_case(&plan.author)
            && !by.iter().any(|b| b.eq_ignore_ascii_case(&a.by))
        {
            by.push(a.by.clone());
        }
    }
    Some(by)
}

pub fn evaluate(ev: &Evidence) -> Vec<ChecklistItem> {
    let plan = ev.plan;
    let required = ev.role == Role::Production;
    let dry_run = ev
        .runs
        .iter()
        .rev()
        .find(|r| r.kind == "dry-run" && r.checksum == plan.checksum);
    let approvers = approvers(plan, ev.approvals);
    let hotfix_waiver =
        plan.urgency.is_hotfix() && approvers.as_ref().is_some_and(|a| a.len() >= 2);

    let staging = match dry_run {
        Some(r) if r.ok && r.detail["rollback_verified"] == true => {
            let age = age(&r.finished_at).unwrap_or_default();
            if age <= ev.policy.dry_run_max_age {
                let mut ev_text = format!(
                    "dry-run #{} on `{}` passed at {}",
                    r.id, r.target, r.finished_at
                );
                if let Some(w) = r.detail["warnings"].as_array().filter(|w| !w.is_empty()) {
                    let w: Vec<&str> = w.iter().filter_map(|x| x.as_str()).collect();
                    ev_text.push_str(&format!("; warnings: {}", w.join("; ")));
                }
                item("staging-tested", ItemState::Passed, ev_text, required)
            } else {
                item(
                    "staging-tested",
                    ItemState::Pending,
                    format!(
                        "the last passing dry-run ({}) is older than dry_run_max_age; run `dry-run` again",
                        r.finished_at
                    ),
                    required,
                )
            }
        }
        Some(r) if !r.ok => item(
            "staging-tested",
            ItemState::Failed,
            format!(
                "dry-run #{} failed: {}",
                r.id,
                r.detail["error"].as_str().unwrap_or("see status")
            ),
            required,
        ),
        _ => item(
            "staging-tested",
            ItemState::Pending,
            "no dry-run of this checksum yet; call `dry-run`",
            required,
        ),
    };
    let staging = if !staging.holds() && hotfix_waiver {
        item(
            "staging-tested",
            ItemState::Waived,
            format!(
                "hotfix ({}): waived by two approvers ({}); recorded in the audit log and ERRORS.md",
                plan.urgency.as_str(),
                approvers.clone().unwrap_or_default().join(", ")
            ),
            required,
        )
    } else {
        staging
    };

    // Evidence counts only when it is this plan's and covers every table the plan changes.
    let evidence = ev
        .backup
        .filter(|b| b.plan_id.as_deref() == Some(plan.id.as_str()))
        .and_then(|b| {
            serde_json::from_value::<crate::target::BackupEvidence>(b.detail.clone())
                .ok()
                .map(|e| (b, e))
        });
    let changed = plan.existing_tables();
    let backup = match evidence {
        Some((b, e))
            if age(&b.taken_at).unwrap_or_default() <= ev.policy.backup_max_age
                && e.uncovered(&changed).is_empty() =>
        {
            item(
                "backup-verified",
                ItemState::Passed,
                format!(
                    "{} at {}, covering {}",
                    e.method,
                    b.taken_at,
                    if e.whole_database {
                        "the whole database".to_string()
                    } else {
                        e.tables.join(", ")
                    }
                ),
                required,
            )
        }
        Some((_, e)) if !e.uncovered(&changed).is_empty() => item(
            "backup-verified",
            ItemState::Pending,
            format!(
                "the plan's backup does not cover {}; drydock takes a covering one at the start of a production apply",
                e.uncovered(&changed)
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            required,
        ),
        _ => item(
            "backup-verified",
            ItemState::Pending,
            "no verified backup within backup_max_age; drydock takes and verifies one at the start of a production apply",
            required,
        ),
    };

    let non_tx: Vec<String> = plan.analysis["statements"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|f| f["transactional"] == false)
                .filter_map(|f| f["sql"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let approved = approvers.as_ref().is_some_and(|a| !a.is_empty());
    let transactional = if non_tx.is_empty() {
        item(
            "transactional",
            ItemState::Passed,
            "every step runs in one transaction",
            required,
        )
    } else if approved {
        item(
            "transactional",
            ItemState::Passed,
            format!(
                "non-transactional statements approved: {}",
                non_tx.join("; ")
            ),
            required,
        )
    } else {
        item(
            "transactional",
            ItemState::Pending,
            format!(
                "non-transactional statements need approval: {}",
                non_tx.join("; ")
            ),
            required,
        )
    };

    let monitoring = if plan.analysis["engine"] == "sqlite" {
        item(
            "monitoring",
            ItemState::Passed,
            "sqlite: each step holds the database write lock for one transaction, waiting at most policy.lock_timeout for it",
            required,
        )
    } else {
        item(
            "monitoring",
            ItemState::Passed,
            "lock watcher runs during apply",
            required,
        )
    };

    let missing_down: Vec<&str> = plan
        .steps()
        .iter()
        // A backfill is rolled back by restoring the values it saved; it needs no `down`.
        .filter(|s| s.down.is_none() && s.backfill.is_none())
        .map(|s| s.name.as_deref().unwrap_or("step"))
        .collect();
    let rollback = if !missing_down.is_empty() {
        item(
            "rollback-ready",
            ItemState::Failed,
            format!("step(s) without `down`: {}", missing_down.join(", ")),
            required,
        )
    } else if dry_run.is_some_and(|r| r.ok && r.detail["rollback_verified"] == true) {
        item(
            "rollback-ready",
            ItemState::Passed,
            "every step has a `down`; the dry-run verified the schema returns to its original state",
            required,
        )
    } else if hotfix_waiver {
        item(
            "rollback-ready",
            ItemState::Waived,
            "every step has a `down`; unverified because staging-tested was waived (hotfix)",
            required,
        )
    } else {
        item(
            "rollback-ready",
            ItemState::Pending,
            "every step has a `down`; a dry-run must verify it",
            required,
        )
    };

    let approval = match &approvers {
        None => item(
            "approved",
            ItemState::Failed,
            "an engineer rejected this plan",
            required,
        ),
        Some(a) if plan.urgency.is_hotfix() && !staging_tested_passed(&staging) && a.len() == 1 => {
            item(
                "approved",
                ItemState::Passed,
                format!(
                    "approved by {} (a hotfix without a dry-run needs a second approver)",
                    a[0]
                ),
                required,
            )
        }
        Some(a) if !a.is_empty() => item(
            "approved",
            ItemState::Passed,
            format!("approved by {}", a.join(", ")),
            required,
        ),
        Some(_) => item(
            "approved",
            ItemState::Pending,
            format!(
                "an engineer other than `{}` runs `drydock approve {} --by NAME`",
                plan.author, plan.id
            ),
            required,
        ),
    };
    vec![
        staging,
        backup,
        transactional,
        monitoring,
        rollback,
        approval,
    ]
}

fn staging_tested_passed(i: &ChecklistItem) -> bool {
    i.state == ItemState::Passed
}

/// The items that block `apply`, by name.
pub fn unmet(items: &[ChecklistItem]) -> Vec<&ChecklistItem> {
    items.iter().filter(|i| i.required && !i.holds()).collect()
}
