//! Keeps a production target's linked staging in step with it: every step applied to production
//! is applied to staging right after (with its own history row there), and every step rolled back
//! on production is rolled back on staging. Without this, the next plan's dry-run runs against a
//! staging that lacks what earlier plans changed, and its validation reports drift that is only
//! staging's. A failure here never undoes production's outcome: it is reported (and audited), and
//! the next dry-run refuses a drifted staging (`staging-drift`).

use std::collections::BTreeMap;

use serde_json::json;

use super::{Engine, overwritten};
use crate::config::Role;
use crate::db::{History, HistoryRow, Target};
use crate::error::{Error, Part, Result};
use crate::identity::Principal;
use crate::plan::evidence::RunDetail;
use crate::plan::{Plan, RunKind};
use crate::store::{Audit, Change, NewRun};

pub use super::report::StagingSync;

/// Which way staging follows production.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Apply,
    Rollback,
}

impl Engine {
    /// Applies (or rolls back) `steps` of `plan` on the production target's linked staging.
    /// `None` when the plan's target is not production or has no linked staging.
    pub(super) async fn follow_on_staging(
        &self,
        plan: &Plan,
        steps: &[String],
        direction: Direction,
        agent: &Principal,
    ) -> Option<StagingSync> {
        self.follow_in_turn(plan, steps, direction, agent, None)
            .await
    }

    /// `follow_on_staging` in the staging's turn: `held` when the caller took it already,
    /// else taken here (waiting for the sync before it).
    async fn follow_in_turn(
        &self,
        plan: &Plan,
        steps: &[String],
        direction: Direction,
        agent: &Principal,
        held: Option<super::RunningGuard>,
    ) -> Option<StagingSync> {
        if steps.is_empty() {
            return None;
        }
        let staging = self.linked_staging(plan)?;
        let (started_at, t0) = (crate::store::now(), std::time::Instant::now());
        let turn = match held {
            Some(turn) => Ok(turn),
            None => self.staging_turn(&staging, &plan.id).await,
        };
        let outcome = match turn {
            Ok(_turn) => self.follow(plan, steps, direction, agent, &staging).await,
            Err(e) => Err((vec![], e)),
        };
        let sync = match outcome {
            Ok(done) => StagingSync {
                target: staging.clone(),
                ok: true,
                steps: done,
                in_background: false,
                error: None,
            },
            Err((done, e)) => StagingSync {
                target: staging.clone(),
                ok: false,
                steps: done,
                in_background: false,
                error: Some(format!(
                    "{e}; staging now differs from production: rebuild it from production (or apply the step there by hand) before the next dry-run"
                )),
            },
        };
        if sync.ok && sync.steps.is_empty() {
            // Staging had every step already: nothing happened to audit.
            return Some(sync);
        }
        // A run as well as an audit entry: `status` shows how a sync that went on after the
        // apply's answer ended.
        let detail = RunDetail {
            error: sync.error.clone(),
            ..RunDetail::default()
        }
        .with("steps", &sync.steps)
        .with(
            "direction",
            match direction {
                Direction::Apply => "apply",
                Direction::Rollback => "rollback",
            },
        );
        let _ = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                run: Some(NewRun {
                    kind: RunKind::StagingSync,
                    target: &sync.target,
                    checksum: &plan.checksum,
                    ok: sync.ok,
                    started_at,
                    duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    detail,
                }),
                audit: Audit::new(
                    agent,
                    if sync.ok {
                        "staging-sync"
                    } else {
                        "staging-sync-failed"
                    },
                    json!({"target": sync.target, "steps": sync.steps, "error": sync.error}),
                ),
                ..Change::default()
            })
            .await;
        Some(sync)
    }

    /// This server's turn to change `staging` for `plan_id`: one sync at a time, so a sync (or
    /// a dry-run's catch-up) waits for the one before it instead of finding the target's lock
    /// taken. The mark also keeps a shutdown waiting and shows in the plan's `status`;
    /// `target-busy` when another operation holds it past `policy.apply_wait` or the server is
    /// shutting down.
    pub(super) async fn staging_turn(
        &self,
        staging: &str,
        plan_id: &str,
    ) -> Result<super::RunningGuard> {
        let deadline = std::time::Instant::now() + self.config.policy.apply_wait;
        loop {
            if let Ok(Ok(turn)) = self.claim(staging, plan_id, super::lease::Operation::StagingSync)
            {
                return Ok(turn);
            }
            if self.halt.requested() || std::time::Instant::now() > deadline {
                return Err(Error::TargetBusy(staging.to_string()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The staging that follows the plan's target: a production target's linked staging.
    pub(super) fn linked_staging(&self, plan: &Plan) -> Option<String> {
        let own = self.config.target(&plan.target).ok()?;
        (own.role == Role::Production)
            .then(|| own.staging.clone())
            .flatten()
    }

    async fn follow(
        &self,
        plan: &Plan,
        steps: &[String],
        direction: Direction,
        agent: &Principal,
        staging: &str,
    ) -> std::result::Result<Vec<String>, (Vec<String>, Error)> {
        let target = self.open_target(staging).await.map_err(|e| (vec![], e))?;
        let lock = target.lock().await.map_err(|e| (vec![], e))?;
        let mut done = Vec::new();
        let mut result = Ok(());
        for name in steps {
            match self
                .follow_step(plan, name, direction, agent, &target)
                .await
            {
                Ok(true) => done.push(name.clone()),
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        lock.release().await;
        result.map(|_| done.clone()).map_err(|e| (done, e))
    }

    /// Applies (or rolls back) one step on staging unless staging's own history says it has it
    /// so already; whether it ran anything.
    async fn follow_step(
        &self,
        plan: &Plan,
        name: &str,
        direction: Direction,
        agent: &Principal,
        target: &Target,
    ) -> Result<bool> {
        let step = plan
            .steps()
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .ok_or_else(|| Error::invalid(Part::Step, format!("no step `{name}`")))?;
        let on_staging = target
            .history(&plan.id)
            .await?
            .into_iter()
            .any(|h| h.step == name && h.applied());
        let policy = &self.config.policy;
        let fail = |f: crate::db::StepFailure| {
            Self::sql_failed(plan, target.name(), "staging sync", name, f)
        };
        match direction {
            Direction::Apply if on_staging => Ok(false),
            Direction::Apply => {
                let row = HistoryRow {
                    plan_id: &plan.id,
                    step: name,
                    checksum: &plan.checksum,
                    by: &agent.name,
                };
                match &step.backfill {
                    Some(spec) => target
                        .backfill(
                            name,
                            spec,
                            &overwritten(spec)?,
                            &row,
                            policy,
                            // Staging follows to the end: a shutdown waits for it.
                            crate::db::Control {
                                progress: &mut |_, _, _| {},
                                halt: &crate::db::Halt::default(),
                                pause: &std::sync::atomic::AtomicBool::new(false),
                            },
                        )
                        .await?
                        .map(|_| true)
                        .map_err(fail),
                    None => {
                        let stmts = Self::stmts(name, step.up.as_deref())?;
                        let tables = Self::step_tables(plan, name);
                        let history = Some(History::Applied(row));
                        let (r, _) = target
                            .execute(name, &stmts, &tables, history, policy, &mut |_| {})
                            .await?;
                        r.map(|_| true).map_err(fail)
                    }
                }
            }
            Direction::Rollback if !on_staging => Ok(false),
            Direction::Rollback => {
                let stmts = Self::down_stmts(plan, name, step, target).await?;
                let tables = Self::step_tables(plan, name);
                let history = Some(History::RolledBack {
                    plan_id: &plan.id,
                    step: name,
                });
                let (r, _) = target
                    .execute(name, &stmts, &tables, history, policy, &mut |_| {})
                    .await?;
                r.map(|_| true).map_err(fail)
            }
        }
    }

    /// Every step of `plan` production has, followed on staging: a resumed apply's earlier
    /// steps too, if a kill came between a step's commit and its sync (staging's history says
    /// which it has already). In the staging's turn `held` when the caller took it already.
    pub(super) async fn staging_follows_applied(
        &self,
        plan: &Plan,
        agent: &Principal,
        held: Option<super::RunningGuard>,
    ) -> Result<Option<StagingSync>> {
        let applied: Vec<String> = self
            .store
            .steps(&plan.id)
            .await?
            .into_iter()
            .filter(|s| s.state == crate::plan::StepState::Applied)
            .map(|s| s.name)
            .collect();
        Ok(self
            .follow_in_turn(plan, &applied, Direction::Apply, agent, held)
            .await)
    }

    /// `staging_follows_applied` for an apply of a plan already applied (killed after its last
    /// step, before its sync): reported only when staging was behind.
    pub(super) async fn staging_catch_up(
        &self,
        plan: &Plan,
        agent: &Principal,
    ) -> Option<StagingSync> {
        self.staging_follows_applied(plan, agent, None)
            .await
            .ok()
            .flatten()
            .filter(|s| !s.ok || !s.steps.is_empty())
    }

    /// Brings a production target's linked staging in step with the production's history, as
    /// staging's own history rows say it stands: every step production has applied and staging
    /// has not is applied there (in plan order), every step staging has and production rolled
    /// back is rolled back there (newest first). A production apply killed between a step's
    /// commit and its staging sync, then never resumed, would otherwise leave staging behind
    /// and every later dry-run on its tables refused `staging-drift`. Returns what it did, for
    /// the dry-run's warnings.
    pub(super) async fn catch_up_staging(
        &self,
        production: &Target,
        staging: &Target,
        agent: &Principal,
    ) -> Result<Vec<String>> {
        let on_production = latest_states(production.history_versions().await?);
        let on_staging = latest_states(staging.history_versions().await?);
        // Only the plans on which the two differ are read from the store.
        let mut plans: Vec<&str> = on_production
            .keys()
            .chain(on_staging.keys())
            .filter(|k| {
                on_production.get(*k).unwrap_or(&false) != on_staging.get(*k).unwrap_or(&false)
            })
            .map(|(p, _)| p.as_str())
            .collect();
        plans.sort_unstable();
        plans.dedup();
        let mut said = Vec::new();
        for id in plans {
            let state = |states: &BTreeMap<(String, String), bool>, step: &str| {
                states
                    .get(&(id.to_string(), step.to_string()))
                    .copied()
                    .unwrap_or(false)
            };
            let Ok(plan) = self.store.plan(id).await else {
                continue;
            };
            if plan.target != production.name() {
                continue;
            }
            let names: Vec<String> = plan.steps().iter().filter_map(|s| s.name.clone()).collect();
            let missing: Vec<String> = names
                .iter()
                .filter(|n| state(&on_production, n) && !state(&on_staging, n))
                .cloned()
                .collect();
            let extra: Vec<String> = names
                .iter()
                .rev()
                .filter(|n| !state(&on_production, n) && state(&on_staging, n))
                .cloned()
                .collect();
            for (steps, direction, did) in [
                (extra, Direction::Rollback, "rolled back"),
                (missing, Direction::Apply, "applied"),
            ] {
                let Some(sync) = self
                    .follow_on_staging(&plan, &steps, direction, agent)
                    .await
                else {
                    continue;
                };
                said.push(match sync.error {
                    None => format!(
                        "staging `{}` was behind production `{}` (an apply or rollback interrupted before its staging sync): {did} {:?} of plan `{id}` there first",
                        sync.target, plan.target, sync.steps
                    ),
                    Some(e) => format!(
                        "staging `{}` was behind production `{}` on plan `{id}` and could not be brought in step: {e}",
                        sync.target, plan.target
                    ),
                });
            }
        }
        Ok(said)
    }
}

/// Whether each (plan, step) is applied, by its newest history row.
fn latest_states(rows: Vec<crate::db::HistoryVersion>) -> BTreeMap<(String, String), bool> {
    rows.into_iter()
        .map(|r| ((r.plan_id, r.step), r.applied))
        .collect()
}
