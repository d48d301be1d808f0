//! `rollback`: the downs of applied steps in reverse, within the window, under the target's
//! lock, the schema verified against the pre-apply record.

use super::*;
use crate::plan::MemberState;

impl Engine {
    pub async fn rollback(
        &self,
        plan_id: &str,
        reason: &str,
        agent: &Principal,
    ) -> Result<RollbackReport> {
        let plan = self.load(plan_id, agent, "rollback").await?;
        let _guard = self
            .claim(&plan.target, &plan.id, lease::Operation::Rollback)?
            .map_err(|_| Error::TargetBusy(plan.target.clone()))?;
        let lease = self.hold(&plan, agent, lease::Operation::Rollback).await?;
        let result = self.rollback_plan(&plan, reason, agent).await;
        let result = self.learned(result, agent, "rollback", Some(&plan)).await;
        lease.release().await;
        result
    }

    pub(super) async fn rollback_plan(
        &self,
        plan: &Plan,
        reason: &str,
        agent: &Principal,
    ) -> Result<RollbackReport> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::MissingReason);
        }
        require(plan, "rollback", Status::touched_target, "applied")?;
        if self.config.group(&plan.target).is_some() {
            return self.rollback_rollout(plan, reason, agent).await;
        }
        let (target, lock) = self
            .open_admitted(plan, self.config.target(&plan.target)?)
            .await?;
        let result = self.rollback_locked(plan, reason, agent, &target).await;
        lock.release().await;
        result
    }

    pub(super) async fn rollback_locked(
        &self,
        plan: &Plan,
        reason: &str,
        agent: &Principal,
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
        self.window_open(plan, &applied)?;
        // The versions the steps were exported as, before their history rows are rolled back.
        let exported = match self.export_folder(plan) {
            Some(_) => export::exported_versions(&target.history_versions().await?, &plan.id),
            None => BTreeMap::new(),
        };
        let runs = self.store.runs(&plan.id).await?;
        let before = pre_apply_lines(&runs).map(crate::db::Fingerprint::from_lines);
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let mut rolled_back = Vec::new();
        for (i, row) in applied.iter().rev() {
            if let Err(err) = self
                .rollback_step(plan, *i, &row.name, target, reason, agent)
                .await
            {
                let failed = Failed {
                    step: &row.name,
                    reason,
                    started_at: &started_at,
                    ms: t0.elapsed().as_secs_f64() * 1000.0,
                    rolled_back: &rolled_back,
                };
                self.record_failed_rollback(plan, failed, &err, agent).await;
                return Err(err);
            }
            rolled_back.push(row.name.clone());
        }
        let (verified, detail) = schema_back(plan, before, &target.fingerprint().await?);
        let run = NewRun {
            kind: RunKind::Rollback,
            target: &plan.target,
            checksum: &plan.checksum,
            ok: verified,
            started_at,
            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
            detail: RunDetail::default()
                .with("reason", reason)
                .with("steps", &rolled_back)
                .with("verified", verified)
                .with("detail", &detail),
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[], Status::RolledBack)),
                run: Some(run),
                audit: Audit::new(
                    agent,
                    "rolled-back",
                    json!({"reason": reason, "verified": verified}),
                ),
                ..Change::default()
            })
            .await?;
        // Every step production no longer has, newest first (a resumed rollback's earlier
        // ones too): staging's history says which it still has.
        let mut gone: Vec<String> = plan.steps().iter().filter_map(|s| s.name.clone()).collect();
        gone.reverse();
        let staging_sync = self
            .follow_on_staging(plan, &gone, staging::Direction::Rollback, agent)
            .await;
        let unexported = self.unexport(plan, target, &exported).await;
        if !verified {
            return Err(Error::RollbackUnverified {
                detail,
                why: Unverified::Schema,
            });
        }
        Ok(RollbackReport {
            plan_id: plan.id.clone(),
            status: Status::RolledBack,
            rolled_back,
            schema_verified: verified,
            detail,
            reason: reason.to_string(),
            staging_sync,
            unexported,
        })
    }

    /// A failed rollback is in the plan's runs and its audit, as a failed apply is.
    async fn record_failed_rollback(
        &self,
        plan: &Plan,
        failed: Failed<'_>,
        err: &Error,
        agent: &Principal,
    ) {
        let run = NewRun {
            kind: RunKind::Rollback,
            target: &plan.target,
            checksum: &plan.checksum,
            ok: false,
            started_at: failed.started_at.to_string(),
            duration_ms: failed.ms,
            detail: RunDetail::failed(Some(failed.step), err)
                .with("reason", failed.reason)
                .with("steps", failed.rolled_back),
        };
        let audit = json!({"step": failed.step, "reason": failed.reason, "error": err.to_string()});
        let recorded = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                run: Some(run),
                audit: Audit::new(agent, "rollback-failed", audit),
                ..Change::default()
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "could not record the failed rollback");
        }
    }

    /// Refuses to go forward over a backfill step a rollback began restoring and did not
    /// finish: applied per the history, some of its rows already hold their old values.
    pub(super) async fn refuse_half_restored(
        plan: &Plan,
        target: &Target,
        applied: impl Fn(usize, &str) -> bool,
    ) -> Result<()> {
        for (i, step) in plan.steps().iter().enumerate() {
            let name = plan.step_name(i);
            if (step.backfill.is_some() || step.restore.is_some())
                && applied(i, name)
                && target
                    .restore_begun(&plan.id, name, step.restore.as_ref())
                    .await?
            {
                return Err(Error::RollbackIncomplete {
                    plan: plan.id.clone(),
                    step: name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The rollback window runs from the first applied step.
    fn window_open(&self, plan: &Plan, applied: &[(usize, &crate::store::StepRow)]) -> Result<()> {
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
        Ok(())
    }

    /// Runs one step's `down` on `target` (a backfill's saved values first: in batches, then
    /// what is left in the `down`'s transaction) with its history row; the SQL's failure as the
    /// `Err`.
    pub(super) async fn undo_step(
        &self,
        plan: &Plan,
        i: usize,
        name: &str,
        target: &Target,
    ) -> Result<std::result::Result<(), StepFailure>> {
        let step = &plan.steps()[i];
        if step.is_final() {
            return Err(Error::invalid(
                Part::Step,
                format!(
                    "step `{name}` was final: it ran after the rollback window and cannot be undone; restore what it removed from the backup taken before the apply, or write a new plan"
                ),
            ));
        }
        if step.down.is_none() && step.backfill.is_none() {
            return Err(Error::invalid(
                Part::Step,
                format!("step `{name}` has no `down`; write a new plan that reverses it"),
            ));
        }
        let history = History::RolledBack {
            plan_id: &plan.id,
            step: name,
        };
        // A backfill's saved values go back in short batches first; the `down`'s transaction
        // then only sweeps what is left.
        if let Some(spec) = &step.backfill {
            let restored = target
                .restore_in_batches(
                    &plan.id,
                    name,
                    spec,
                    &overwritten(spec)?,
                    &self.config.policy,
                )
                .await?;
            if let Err(f) = restored {
                return Ok(Err(f));
            }
        }
        // What a drop template set aside goes back the same way, once the column is back.
        if let Some(restore) = &step.restore
            && let Err(f) = target
                .restore_aside(name, restore, &self.config.policy)
                .await?
        {
            return Ok(Err(f));
        }
        let t = Instant::now();
        let stmts = Self::down_stmts(plan, name, step, target).await?;
        let tables = Self::step_tables(plan, name);
        let (result, _watch) = target
            .execute(
                name,
                &stmts,
                &tables,
                Some(history),
                &self.config.policy,
                &mut |_| {},
            )
            .await?;
        crate::clock::phase(&format!("{}: down of step {name}", target.name()), t);
        Ok(result.map(|_| ()))
    }

    /// One step's `down` (a backfill's saved values first, in the same transaction), with its
    /// history row; then the step is recorded rolled back.
    async fn rollback_step(
        &self,
        plan: &Plan,
        i: usize,
        name: &str,
        target: &Target,
        reason: &str,
        agent: &Principal,
    ) -> Result<()> {
        self.undo_step(plan, i, name, target)
            .await?
            .map_err(|f| Self::sql_failed(plan, &plan.target, "rollback", name, f))?;
        self.store
            .commit(Change {
                plan_id: &plan.id,
                steps: vec![(i, StepState::RolledBack)],
                audit: Audit::new(
                    agent,
                    "rollback-step",
                    json!({"step": name, "reason": reason}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(())
    }

    /// `rollback` of a group plan (also of a halted one): every member the rollout touched,
    /// in reverse order, has this plan's steps rolled back.
    pub(super) async fn rollback_rollout(
        &self,
        plan: &Plan,
        reason: &str,
        agent: &Principal,
    ) -> Result<RollbackReport> {
        let members = self.store.members(&plan.id).await?;
        let first_applied = members
            .iter()
            .filter(|m| m.state == MemberState::Applied)
            .map(|m| m.updated_at.clone())
            .min();
        if let Some(first) = first_applied {
            let window = self.config.policy.rollback_window;
            if crate::store::age(&first).is_some_and(|a| a > window) {
                return Err(Error::RollbackWindowClosed {
                    plan: plan.id.clone(),
                    closed_at: crate::store::add(&first, window).unwrap_or_default(),
                });
            }
        }
        let runs = self.store.runs(&plan.id).await?;
        let mut reversed = Vec::new();
        let mut differ = Vec::new();
        for m in members.iter().rev() {
            if matches!(m.state, MemberState::Pending | MemberState::RolledBack) {
                continue;
            }
            if let Some(d) = self.roll_back_member(plan, m, &runs, reason, agent).await? {
                differ.push(d);
            }
            reversed.push(m.target.clone());
        }
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[], Status::RolledBack)),
                steps: (0..plan.steps().len())
                    .map(|i| (i, StepState::RolledBack))
                    .collect(),
                audit: Audit::new(
                    agent,
                    "rolled-back",
                    json!({"reason": reason, "members": reversed}),
                ),
                ..Change::default()
            })
            .await?;
        let mut steps = plan.step_names();
        steps.reverse();
        // The group's staging followed the completed rollout; it follows its reversal.
        let staging_sync = if members.iter().all(|m| m.state == MemberState::Applied) {
            self.follow_on_staging(plan, &steps, staging::Direction::Rollback, agent)
                .await
        } else {
            None
        };
        if !differ.is_empty() {
            return Err(Error::RollbackUnverified {
                detail: differ.join("; "),
                why: Unverified::Schema,
            });
        }
        Ok(RollbackReport {
            plan_id: plan.id.clone(),
            status: Status::RolledBack,
            detail: format!(
                "rolled back on {} member(s), each one's schema equal to its pre-apply schema: {}",
                reversed.len(),
                reversed.join(", ")
            ),
            rolled_back: reversed,
            schema_verified: true,
            reason: reason.to_string(),
            staging_sync,
            unexported: None,
        })
    }

    /// One member's rollback under its migration lock, recorded; how its schema differs from
    /// the one recorded before its apply, if it does.
    async fn roll_back_member(
        &self,
        plan: &Plan,
        m: &crate::store::MemberRow,
        runs: &[crate::store::RunRow],
        reason: &str,
        agent: &Principal,
    ) -> Result<Option<String>> {
        let cfg = self.config.target(&m.target)?;
        let (target, lock) = self.open_admitted(plan, cfg).await?;
        let undone = self.undo_member(plan, &target).await;
        let after = target.fingerprint().await;
        lock.release().await;
        undone?;
        let after = after?;
        let before = runs
            .iter()
            .rev()
            .find(|r| r.kind == RunKind::PreApply && r.target == m.target)
            .and_then(|r| r.detail.fingerprint_before_lines.clone())
            .map(crate::db::Fingerprint::from_lines);
        let differs = match before {
            Some(b) if b == after => None,
            Some(b) => Some(format!("{}: {}", m.target, b.diff(&after))),
            None => Some(format!("{}: no pre-apply schema was recorded", m.target)),
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                member: Some((&m.target, MemberState::RolledBack, None)),
                audit: Audit::new(
                    agent,
                    "member-rolled-back",
                    json!({"member": m.target, "reason": reason}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(differs)
    }
}

/// Whether the schema after a rollback is the one recorded before the apply, and how it
/// differs when it is not.
fn schema_back(
    plan: &Plan,
    before: Option<crate::db::Fingerprint>,
    after: &crate::db::Fingerprint,
) -> (bool, String) {
    let after = comparable(plan, after);
    match before.map(|b| comparable(plan, &b)) {
        Some(b) if b == after => (true, "the schema equals the pre-apply schema".to_string()),
        Some(b) => (false, b.diff(&after)),
        None => (false, "no pre-apply fingerprint was recorded".to_string()),
    }
}

/// Where a rollback failed: the step, the reason it was asked for, when it began, how long it
/// ran, and the steps it had rolled back before.
struct Failed<'a> {
    step: &'a str,
    reason: &'a str,
    started_at: &'a str,
    ms: f64,
    rolled_back: &'a [String],
}
