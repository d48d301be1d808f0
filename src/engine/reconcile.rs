//! The target's history is the truth about which steps ran. A step commits in the target
//! together with its history row; drydock's store records it in a second commit. A process killed
//! between the two leaves the store behind the target, so before anything runs a step (or reads
//! step states) the store is brought in line with the history — under the target's lock, where
//! no other apply can be between its two commits.

use serde_json::json;

use super::Engine;
use crate::db::{HistoryEntry, Target};
use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::plan::evidence::RunDetail;
use crate::plan::{Plan, RunKind, Status, StepState};
use crate::store::{Audit, Change, NewRun, StepRow};

/// What the target's history says of a step, where it differs from the store.
fn truth(plan: &Plan, row: &StepRow, history: &[HistoryEntry]) -> Option<StepState> {
    let last = history
        .iter()
        .rev()
        .find(|h| h.step == row.name && h.checksum == plan.checksum)?;
    match (row.state, last.applied()) {
        (StepState::Applied, true) | (StepState::RolledBack, false) => None,
        (_, true) => Some(StepState::Applied),
        (StepState::Applied, false) => Some(StepState::RolledBack),
        // Rolled back per the target, never recorded as applied: it ends rolled back either way.
        (_, false) => Some(StepState::RolledBack),
    }
}

impl Engine {
    /// Records in the store what the target's history says of `plan`'s steps and returns the
    /// steps as they now stand. The caller holds the target's lock.
    pub(super) async fn reconcile(
        &self,
        plan: &Plan,
        target: &Target,
        agent: &Principal,
    ) -> Result<Vec<StepRow>> {
        let steps = self.store.steps(&plan.id).await?;
        let plan_status = self.store.plan(&plan.id).await?.status;
        let history = target.history(&plan.id).await?;
        let changes: Vec<(usize, StepState)> = steps
            .iter()
            .enumerate()
            .filter_map(|(i, row)| truth(plan, row, &history).map(|s| (i, s)))
            .collect();
        let after: Vec<StepState> = steps
            .iter()
            .enumerate()
            .map(|(i, row)| {
                changes
                    .iter()
                    .find(|(c, _)| *c == i)
                    .map_or(row.state, |(_, s)| *s)
            })
            .collect();
        // The plan's status follows: every step applied is an applied plan (a process killed
        // after recording its last step but before the plan's status leaves it `applying`).
        const PRE: [Status; 3] = [Status::Planned, Status::Tested, Status::Approved];
        let status: Option<(&[Status], Status)> = if after.iter().all(|s| *s == StepState::Applied)
            && (PRE.contains(&plan_status) || plan_status == Status::Applying)
        {
            Some((
                &[
                    Status::Planned,
                    Status::Tested,
                    Status::Approved,
                    Status::Applying,
                ],
                Status::Applied,
            ))
        } else if after.contains(&StepState::Applied) && PRE.contains(&plan_status) {
            Some((&PRE, Status::Applying))
        } else {
            None
        };
        if changes.is_empty() && status.is_none() {
            return Ok(steps);
        }
        let recorded: Vec<serde_json::Value> = changes
            .iter()
            .map(|(i, s)| json!({"step": steps[*i].name, "state": s.as_str()}))
            .collect();
        tracing::warn!(plan = %plan.id, steps = ?recorded, "the store was behind the target's history (an interrupted run); recorded what the target has");
        let committed = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status,
                run: Some(NewRun {
                    kind: RunKind::Reconcile,
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok: true,
                    started_at: crate::store::now(),
                    duration_ms: 0.0,
                    detail: RunDetail::default()
                        .with("from", "the target's history")
                        .with("steps", &recorded),
                }),
                steps: changes,
                audit: Audit::new(agent, "reconciled", json!({"steps": recorded})),
                ..Change::default()
            })
            .await?;
        if !committed {
            return Err(Error::Store(format!(
                "plan `{}` changed status while its steps were reconciled with the target's history; call again",
                plan.id
            )));
        }
        Ok(self.store.steps(&plan.id).await?)
    }

    /// `reconcile` for a reader (`status`, `validate`) that has the target open: only when no
    /// apply or rollback holds it (a running one is between its commits by design, and records
    /// them itself).
    pub(super) async fn reconcile_if_idle(
        &self,
        plan: &Plan,
        target: &Target,
        agent: &Principal,
    ) -> Result<()> {
        let Ok(lock) = target.lock().await else {
            return Ok(());
        };
        let result = self.reconcile(plan, target, agent).await.map(|_| ());
        lock.release().await;
        result
    }
}
