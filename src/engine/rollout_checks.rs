//! A group plan's checks: before approval, every member's shape beside the group's staging;
//! after the rollout, `validate` on every applied member.

use super::*;
use crate::config::GroupConfig;
use crate::plan::MemberState;

impl Engine {
    /// The cheap half of a group's dry-run: every member's tables that the plan touches, compared
    /// with the group's staging (where the dry-run ran). Members that differ, or cannot be
    /// reached, are returned with the first differences.
    /// Nothing for a plan on a single target.
    pub(super) async fn precheck_members(
        &self,
        plan: &Plan,
        staging: &Target,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let Some(group) = self.config.group(&plan.target) else {
            return Ok(vec![]);
        };
        let differ = self.compare_members(plan, group, staging).await?;
        if !differ.is_empty() {
            warnings.push(format!(
                "{} member(s) of the group differ from its staging in the tables the plan touches: see `members_differ`",
                differ.len()
            ));
        }
        Ok(differ)
    }

    async fn compare_members(
        &self,
        plan: &Plan,
        group: &GroupConfig,
        staging: &Target,
    ) -> Result<Vec<String>> {
        let tables = plan.tables();
        let reference = staging.column_lines(&tables).await?;
        let mut differ = Vec::new();
        for member in &group.members {
            let shape = async {
                let t = self.open_config(self.config.target(member)?).await?;
                t.column_lines(&tables).await
            }
            .await;
            match shape {
                Ok(s) if s == reference => {}
                Ok(s) => {
                    let lines: Vec<String> = s
                        .difference(&reference)
                        .map(|l| format!("only on the member: {l}"))
                        .chain(
                            reference
                                .difference(&s)
                                .map(|l| format!("only on staging: {l}")),
                        )
                        .take(3)
                        .collect();
                    differ.push(format!("{member}: {}", lines.join("; ")));
                }
                Err(e) => differ.push(format!("{member}: cannot be reached: {e}")),
            }
        }
        Ok(differ)
    }

    /// `validate` of a group plan: on every applied member, the plan's checks and the member's
    /// history (every step recorded with the plan's checksum). Each outcome is named by member.
    pub(super) async fn validate_rollout(
        &self,
        plan: &Plan,
        agent: &Principal,
    ) -> Result<ValidateReport> {
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let members = self.store.members(&plan.id).await?;
        let (mut checks, mut builtin) = (Vec::new(), Vec::new());
        for m in members.iter().filter(|m| m.state == MemberState::Applied) {
            let target = self.open_config(self.config.target(&m.target)?).await?;
            admit(plan, &target).await?;
            for c in target.run_checks(&plan.body.checks).await? {
                checks.push(crate::db::CheckOutcome {
                    name: format!("{}: {}", m.target, c.name),
                    ..c
                });
            }
            let recorded = target.history(&plan.id).await?;
            let missing: Vec<String> = plan
                .step_names()
                .into_iter()
                .filter(|n| {
                    !recorded
                        .iter()
                        .any(|h| &h.step == n && h.applied() && h.checksum == plan.checksum)
                })
                .collect();
            builtin.push(BuiltinCheck {
                name: format!("{}: history", m.target),
                passed: missing.is_empty(),
                skipped: false,
                detail: if missing.is_empty() {
                    "every step is recorded with the plan's checksum".into()
                } else {
                    format!("no history row for step(s) {}", missing.join(", "))
                },
            });
        }
        let pending = members
            .iter()
            .filter(|m| m.state != MemberState::Applied)
            .count();
        let mut failures = failures(&checks, &builtin);
        let ok = failures.is_empty() && pending == 0;
        if pending > 0 {
            failures.push(format!("{pending} member(s) are not applied"));
        }
        let report = ValidateReport {
            plan_id: plan.id.clone(),
            ok,
            status: if ok { Status::Validated } else { plan.status },
            checks,
            builtin,
            row_counts: BTreeMap::new(),
        };
        let audit = json!({"ok": ok, "members": members.len()});
        self.record_validation(plan, report, failures, (started_at, t0), agent, audit)
            .await
    }
}
