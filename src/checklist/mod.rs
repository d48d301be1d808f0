//! The safety checklist (spec §4) as named checks with evidence. `evaluate` is pure: it reads the
//! plan, its runs, approvals and the target's newest backup, and says for each item whether it
//! holds. `apply` on a production target requires every item; elsewhere the items are reported
//! but not enforced.
//! Imports `store` (its rows), `plan`, `config` and the leaves; never `engine`, `db` or the adapters.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Policy, Role};
use crate::plan::{Decision, Plan, RunKind};
use crate::sql::Dialect;
use crate::store::{ApprovalRow, BackupRow, RunRow, age};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    Pending,
    Passed,
    Failed,
    Waived,
}

impl ItemState {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Passed => "passed",
            ItemState::Failed => "failed",
            ItemState::Waived => "waived",
        }
    }
}

/// The checklist's items (spec §4), matched exhaustively: a misspelt item cannot switch a gate
/// off. On the wire they are the kebab-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Item {
    StagingTested,
    BackupVerified,
    Transactional,
    Monitoring,
    RollbackReady,
    Approved,
}

impl Item {
    pub const ALL: [Item; 6] = [
        Item::StagingTested,
        Item::BackupVerified,
        Item::Transactional,
        Item::Monitoring,
        Item::RollbackReady,
        Item::Approved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Item::StagingTested => "staging-tested",
            Item::BackupVerified => "backup-verified",
            Item::Transactional => "transactional",
            Item::Monitoring => "monitoring",
            Item::RollbackReady => "rollback-ready",
            Item::Approved => "approved",
        }
    }

    /// When the item holds, in a sentence.
    pub fn holds_when(self) -> &'static str {
        match self {
            Item::StagingTested => {
                "a dry-run of this exact checksum passed on a non-production target, rollback verified, within policy.dry_run_max_age"
            }
            Item::BackupVerified => {
                "a verified, restorable backup of the target exists within policy.backup_max_age (taken automatically before a production apply)"
            }
            Item::Transactional => {
                "every step runs in a transaction, or its non-transactional statements are listed in the plan and approved"
            }
            Item::Monitoring => "the lock watcher runs for the apply (always on for production)",
            Item::RollbackReady => {
                "every step has a `down` and the dry-run verified it restores the schema"
            }
            Item::Approved => {
                "an engineer other than the plan's author approved this checksum (`drydock approve`)"
            }
        }
    }
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One checklist item: `{item, state, evidence?}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChecklistItem {
    pub item: Item,
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

    /// The item as a refusal carries it.
    pub fn shown(&self) -> crate::error::ItemShown {
        crate::error::ItemShown {
            item: self.item.as_str().to_string(),
            state: match self.state {
                ItemState::Pending => "pending",
                ItemState::Passed => "passed",
                ItemState::Failed => "failed",
                ItemState::Waived => "waived",
            }
            .to_string(),
            evidence: self.evidence.clone(),
            required: self.required,
        }
    }
}

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
    name: Item,
    state: ItemState,
    evidence: impl Into<String>,
    required: bool,
) -> ChecklistItem {
    let evidence = evidence.into();
    ChecklistItem {
        item: name,
        state,
        evidence: (!evidence.is_empty()).then_some(evidence),
        required,
    }
}

/// Distinct engineers who approved this checksum, excluding the author; `None` if rejected.
pub fn approvers(plan: &Plan, approvals: &[ApprovalRow]) -> Option<Vec<String>> {
    let mut by: Vec<String> = Vec::new();
    for a in approvals.iter().filter(|a| a.checksum == plan.checksum) {
        if a.decision == Decision::Rejected {
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

/// Distinct principals other than the author who waived this checksum's `staging-tested`.
pub fn waivers(plan: &Plan, approvals: &[ApprovalRow]) -> Vec<String> {
    let mut by: Vec<String> = Vec::new();
    for a in approvals
        .iter()
        .filter(|a| a.checksum == plan.checksum && a.decision == Decision::Waived)
    {
        if !a.by.eq_ignore_ascii_case(&plan.author)
            && !by.iter().any(|b| b.eq_ignore_ascii_case(&a.by))
        {
            by.push(a.by.clone());
        }
    }
    by
}

/// What every item's judgement reads, found once.
struct Facts<'a> {
    ev: &'a Evidence<'a>,
    required: bool,
    /// The newest dry-run of this checksum.
    dry_run: Option<&'a RunRow>,
    /// Distinct approvers other than the author; `None` when an engineer rejected the plan.
    approvers: Option<Vec<String>>,
    hotfix_waiver: bool,
}

pub fn evaluate(ev: &Evidence) -> Vec<ChecklistItem> {
    let plan = ev.plan;
    let approvers = approvers(plan, ev.approvals);
    let f = Facts {
        ev,
        required: ev.role == Role::Production,
        dry_run: ev
            .runs
            .iter()
            .rev()
            .find(|r| r.kind == RunKind::DryRun && r.checksum == plan.checksum),
        hotfix_waiver: plan.urgency.is_hotfix() && waivers(plan, ev.approvals).len() >= 2,
        approvers,
    };
    let staging = staging_tested(&f);
    let approval = approved(&f, &staging);
    vec![
        staging,
        backup_verified(&f),
        transactional(&f),
        monitoring(&f),
        rollback_ready(&f),
        approval,
    ]
}

/// `staging-tested`: a passing dry-run of this checksum with rollback verified, fresh enough;
/// waived for a hotfix with two approvers.
fn staging_tested(f: &Facts) -> ChecklistItem {
    let (plan, ev, required) = (f.ev.plan, f.ev, f.required);
    let staging = match f.dry_run {
        Some(r) if r.ok && r.detail.rollback_verified == Some(true) => {
            let age = age(&r.finished_at).unwrap_or_default();
            if age <= ev.policy.dry_run_max_age {
                let mut ev_text = format!(
                    "dry-run #{} on `{}` passed at {}",
                    r.id, r.target, r.finished_at
                );
                if !r.detail.warnings.is_empty() {
                    ev_text.push_str(&format!("; warnings: {}", r.detail.warnings.join("; ")));
                }
                item(Item::StagingTested, ItemState::Passed, ev_text, required)
            } else {
                item(
                    Item::StagingTested,
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
            Item::StagingTested,
            ItemState::Failed,
            format!(
                "dry-run #{} failed: {}",
                r.id,
                r.detail.error.as_deref().unwrap_or("see status")
            ),
            required,
        ),
        _ => item(
            Item::StagingTested,
            ItemState::Pending,
            "no dry-run of this checksum yet; call `dry-run`",
            required,
        ),
    };
    if !staging.holds() && f.hotfix_waiver {
        item(
            Item::StagingTested,
            ItemState::Waived,
            format!(
                "hotfix ({}): waived by two approvers ({}); recorded in the audit log and ERRORS.md",
                plan.urgency.as_str(),
                waivers(plan, ev.approvals).join(", ")
            ),
            required,
        )
    } else {
        staging
    }
}

/// `backup-verified`: this plan's backup, fresh, covering every table the plan changes.
fn backup_verified(f: &Facts) -> ChecklistItem {
    let (plan, ev, required) = (f.ev.plan, f.ev, f.required);
    // Evidence counts only when it is this plan's and covers every table the plan changes.
    let evidence = ev
        .backup
        .filter(|b| b.plan_id.as_deref() == Some(plan.id.as_str()))
        .map(|b| (b, &b.detail));
    let changed = plan.existing_tables();
    match evidence {
        Some((b, e))
            if age(&b.taken_at).unwrap_or_default() <= ev.policy.backup_max_age
                && e.uncovered(&changed).is_empty() =>
        {
            item(
                Item::BackupVerified,
                ItemState::Passed,
                format!(
                    "{} at {}, covering {}",
                    e.method,
                    b.taken_at,
                    if e.whole_database {
                        "the whole database".to_string()
                    } else if e.tables.is_empty() {
                        "no table (the plan changes no table that exists)".to_string()
                    } else {
                        e.tables.join(", ")
                    }
                ),
                required,
            )
        }
        Some((_, e)) if !e.uncovered(&changed).is_empty() => item(
            Item::BackupVerified,
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
            Item::BackupVerified,
            ItemState::Pending,
            "no verified backup within backup_max_age; drydock takes and verifies one at the start of a production apply",
            required,
        ),
    }
}

/// `transactional`: every statement in a transaction, or the others approved.
fn transactional(f: &Facts) -> ChecklistItem {
    let (plan, required) = (f.ev.plan, f.required);
    let non_tx: Vec<&str> = plan
        .analysis
        .non_transactional()
        .map(|f| f.sql.as_str())
        .collect();
    let approved = f.approvers.as_ref().is_some_and(|a| !a.is_empty());
    if non_tx.is_empty() {
        item(
            Item::Transactional,
            ItemState::Passed,
            "every step runs in one transaction",
            required,
        )
    } else if approved {
        item(
            Item::Transactional,
            ItemState::Passed,
            format!(
                "non-transactional statements approved: {}",
                non_tx.join("; ")
            ),
            required,
        )
    } else {
        item(
            Item::Transactional,
            ItemState::Pending,
            format!(
                "non-transactional statements need approval: {}",
                non_tx.join("; ")
            ),
            required,
        )
    }
}

/// `monitoring`: the lock watcher (PostgreSQL) or the write lock's bounded wait (SQLite).
fn monitoring(f: &Facts) -> ChecklistItem {
    let (plan, required) = (f.ev.plan, f.required);
    if plan.analysis.engine == Dialect::Sqlite {
        item(
            Item::Monitoring,
            ItemState::Passed,
            "sqlite: each step holds the database write lock for one transaction, waiting at most policy.lock_timeout for it",
            required,
        )
    } else {
        item(
            Item::Monitoring,
            ItemState::Passed,
            "lock watcher runs during apply",
            required,
        )
    }
}

/// `rollback-ready`: every step has a `down` and the dry-run verified it.
fn rollback_ready(f: &Facts) -> ChecklistItem {
    let (plan, required) = (f.ev.plan, f.required);
    let missing_down: Vec<&str> = plan
        .steps()
        .iter()
        // A backfill is rolled back by restoring the values it saved; it needs no `down`. A
        // final step runs after the rollback window, when rollback is over.
        .filter(|s| s.down.is_none() && s.backfill.is_none() && !s.is_final())
        .map(|s| s.name.as_deref().unwrap_or("step"))
        .collect();
    if !missing_down.is_empty() {
        item(
            Item::RollbackReady,
            ItemState::Failed,
            format!("step(s) without `down`: {}", missing_down.join(", ")),
            required,
        )
    } else if f
        .dry_run
        .is_some_and(|r| r.ok && r.detail.rollback_verified == Some(true))
    {
        item(
            Item::RollbackReady,
            ItemState::Passed,
            "every step has a `down`; the dry-run verified the schema returns to its original state",
            required,
        )
    } else if f.hotfix_waiver {
        item(
            Item::RollbackReady,
            ItemState::Waived,
            "every step has a `down`; unverified because staging-tested was waived (hotfix)",
            required,
        )
    } else {
        item(
            Item::RollbackReady,
            ItemState::Pending,
            "every step has a `down`; a dry-run must verify it",
            required,
        )
    }
}

/// `approved`: an engineer other than the author approved this checksum (two for a hotfix
/// without a dry-run); failed when one rejected it.
fn approved(f: &Facts, staging: &ChecklistItem) -> ChecklistItem {
    let (plan, required) = (f.ev.plan, f.required);
    match &f.approvers {
        None => item(
            Item::Approved,
            ItemState::Failed,
            "an engineer rejected this plan",
            required,
        ),
        Some(a) if plan.urgency.is_hotfix() && !staging_tested_passed(staging) && a.len() == 1 => {
            item(
                Item::Approved,
                ItemState::Passed,
                format!(
                    "approved by {} (a hotfix without a dry-run needs a second approver)",
                    a[0]
                ),
                required,
            )
        }
        Some(a) if !a.is_empty() => item(
            Item::Approved,
            ItemState::Passed,
            format!("approved by {}", a.join(", ")),
            required,
        ),
        Some(_) => item(
            Item::Approved,
            ItemState::Pending,
            format!(
                "an engineer other than `{}` runs `drydock approve {} --by NAME`",
                plan.author, plan.id
            ),
            required,
        ),
    }
}

fn staging_tested_passed(i: &ChecklistItem) -> bool {
    i.state == ItemState::Passed
}

/// The items that block `apply`, by name.
pub fn unmet(items: &[ChecklistItem]) -> Vec<&ChecklistItem> {
    items.iter().filter(|i| i.required && !i.holds()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_states_name_is_its_wire_name() {
        use ItemState::*;
        for state in [Pending, Passed, Failed, Waived] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
