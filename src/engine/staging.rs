//! Keeps a production target's linked staging in step with it: every step applied to production
//! is applied to staging right after (with its own history row there), and every step rolled back
//! on production is rolled back on staging. Without this, the next plan's dry-run runs against a
//! staging that lacks what earlier plans changed, and its validation reports drift that is only
//! staging's. A failure here never undoes production's outcome: it is reported (and audited), and
//! the next dry-run refuses a drifted staging (`staging-drift`).

use serde_json::json;

use super::{Engine, overwritten};
use crate::config::Role;
use crate::db::{History, HistoryRow, Target};
use crate::error::{Error, Part, Result};
use crate::identity::Principal;
use crate::plan::Plan;
use crate::store::{Audit, Change};

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
        let own = self.config.target(&plan.target).ok()?;
        if own.role != Role::Production || steps.is_empty() {
            return None;
        }
        let staging = own.staging.clone()?;
        let outcome = self.follow(plan, steps, direction, agent, &staging).await;
        let sync = match outcome {
            Ok(done) => StagingSync {
                target: staging.clone(),
                ok: true,
                steps: done,
                error: None,
            },
            Err((done, e)) => StagingSync {
                target: staging.clone(),
                ok: false,
                steps: done,
                error: Some(format!(
                    "{e}; staging now differs from production: rebuild it from production (or apply the step there by hand) before the next dry-run"
                )),
            },
        };
        let _ = self
            .store
            .commit(Change {
                plan_id: &plan.id,
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
            if let Err(e) = self
                .follow_step(plan, name, direction, agent, &target)
                .await
            {
                result = Err(e);
                break;
            }
            done.push(name.clone());
        }
        lock.release().await;
        result.map(|_| done.clone()).map_err(|e| (done, e))
    }

    async fn follow_step(
        &self,
        plan: &Plan,
        name: &str,
        direction: Direction,
        agent: &Principal,
        target: &Target,
    ) -> Result<()> {
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
            Direction::Apply if on_staging => Ok(()),
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
                        .map(|_| ())
                        .map_err(fail),
                    None => {
                        let stmts = Self::stmts(name, step.up.as_deref())?;
                        let tables = Self::step_tables(plan, name);
                        let history = Some(History::Applied(row));
                        let (r, _) = target
                            .execute(name, &stmts, &tables, history, policy, &mut |_| {})
                            .await?;
                        r.map(|_| ()).map_err(fail)
                    }
                }
            }
            Direction::Rollback if !on_staging => Ok(()),
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
                r.map(|_| ()).map_err(fail)
            }
        }
    }
}
