//! Engineers' decisions: approve, reject, release a gate. Never reachable from an MCP tool; each
//! needs a principal with the approver role (a token's, or a person's at the terminal), and the
//! audit row names the principal, its role, the channel and the OS user.

use super::*;

impl Engine {
    pub async fn approve(&self, plan_id: &str, who: &Principal) -> Result<StatusReport> {
        self.approve_as(plan_id, who, Decision::Approved, None)
            .await
    }

    /// Waives a hotfix's `staging-tested` (and approves it): two distinct approvers' waivers let
    /// a p0/p1 plan apply without a dry-run. Needs a reason; refused for a normal plan.
    pub async fn waive(
        &self,
        plan_id: &str,
        who: &Principal,
        reason: &str,
    ) -> Result<StatusReport> {
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                Part::Decision,
                "`--reason` says why staging cannot wait (the incident)",
            ));
        }
        self.approve_as(plan_id, who, Decision::Waived, Some(reason))
            .await
    }

    async fn approve_as(
        &self,
        plan_id: &str,
        who: &Principal,
        decision: Decision,
        reason: Option<&str>,
    ) -> Result<StatusReport> {
        let action = if decision == Decision::Waived {
            "waive"
        } else {
            "approve"
        };
        let by = decider(who, action)?;
        let plan = self.load(plan_id, who, action).await?;
        if by.eq_ignore_ascii_case(&plan.author) {
            return Err(Error::SelfApproval {
                plan: plan.id.clone(),
                by: by.to_string(),
                action,
            });
        }
        if decision == Decision::Waived && !plan.urgency.is_hotfix() {
            return Err(Error::invalid(
                Part::Decision,
                format!(
                    "plan `{}` is not a hotfix (urgency {}): only a p0/p1 plan's staging-tested can be waived; dry-run it",
                    plan.id,
                    plan.urgency.as_str()
                ),
            ));
        }
        require(&plan, action, Status::is_pre_apply, "planned or tested")?;
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
                approval: Some((&plan.checksum, by, decision, reason)),
                audit: Audit::new(
                    who,
                    action,
                    json!({"checksum": plan.checksum, "reason": reason}),
                ),
                ..Change::default()
            })
            .await?;
        if !committed {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: self.store.plan(plan_id).await?.status.to_string(),
                action,
                needed: "unchanged while deciding; look again with `drydock show`",
            });
        }
        self.status(plan_id).await
    }

    pub async fn reject(
        &self,
        plan_id: &str,
        who: &Principal,
        reason: &str,
    ) -> Result<StatusReport> {
        let by = decider(who, "reject")?;
        let plan = self.load(plan_id, who, "reject").await?;
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                Part::Decision,
                "`--reason` says why the plan is rejected",
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
                approval: Some((&plan.checksum, by, Decision::Rejected, Some(reason))),
                audit: Audit::new(who, "reject", json!({"reason": reason})),
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
        who: &Principal,
        override_reason: Option<&str>,
    ) -> Result<StatusReport> {
        let by = decider(who, "release")?;
        let plan = self.load(plan_id, who, "release").await?;
        let steps = self.store.steps(plan_id).await?;
        let (i, row) = steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == step)
            .ok_or_else(|| {
                Error::invalid(
                    Part::Decision,
                    format!("plan `{plan_id}` has no step `{step}`"),
                )
            })?;
        if row.state != StepState::Gated {
            return Err(Error::invalid(
                Part::Decision,
                format!("step `{step}` is {}, not gated", row.state.as_str()),
            ));
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
            return Err(Error::invalid(
                Part::Decision,
                format!(
                    "step `{step}` waits for the rollback window; pass --override-window --reason R to open it early"
                ),
            ));
        }
        self.store
            .commit(Change {
                plan_id,
                release: Some((i, by)),
                audit: Audit::new(
                    who,
                    "release",
                    json!({"step": step, "override_reason": override_reason}),
                ),
                ..Change::default()
            })
            .await?;
        self.status(plan_id).await
    }
}

impl Engine {
    /// Holds the plan's backfills between batches (also a later apply's, across a restart) —
    /// the engineer's hand on the brake; `resume` lets them go on without a new `apply`.
    pub async fn pause(&self, plan_id: &str, who: &Principal) -> Result<StatusReport> {
        self.brake(plan_id, who, true).await
    }

    pub async fn resume(&self, plan_id: &str, who: &Principal) -> Result<StatusReport> {
        self.brake(plan_id, who, false).await
    }

    async fn brake(&self, plan_id: &str, who: &Principal, pause: bool) -> Result<StatusReport> {
        let action = if pause { "pause" } else { "resume" };
        decider(who, action)?;
        let plan = self.load(plan_id, who, action).await?;
        if !plan.steps().iter().any(|s| s.backfill.is_some()) {
            return Err(Error::invalid(
                Part::Decision,
                format!("plan `{plan_id}` has no backfill step: there is nothing to {action}"),
            ));
        }
        require(
            &plan,
            action,
            |s| {
                !matches!(
                    s,
                    Status::Applied | Status::Validated | Status::RolledBack | Status::Rejected
                )
            },
            "not yet applied (a backfill still to run or running)",
        )?;
        let paused = self.store.paused(plan_id).await?.is_some();
        if paused == pause {
            return Err(Error::invalid(
                Part::Decision,
                format!(
                    "plan `{plan_id}` is {} paused",
                    if pause { "already" } else { "not" }
                ),
            ));
        }
        self.store.set_paused(plan_id, who, pause).await?;
        self.status(plan_id).await
    }
}

/// The name a decision is recorded under: a principal that may decide (approver or admin), with
/// a name.
fn decider<'a>(who: &'a Principal, action: &'static str) -> Result<&'a str> {
    super::identity::permitted(who, Grant::Approver, action)?;
    let by = who.name.trim();
    if by.is_empty() {
        return Err(Error::invalid(
            Part::Decision,
            "`--by` names the deciding engineer",
        ));
    }
    Ok(by)
}
