//! Rollouts to a group (spec §10): a plan on `group:NAME`, dry-run once on the group's staging
//! and approved once, applied wave by wave. Each member gets its own pre-flight, lock, backup,
//! steps with history rows (the group plan's id and checksum) and validation; within a wave at
//! most `parallel` members run at once. The first failure halts the rollout: members already
//! running finish and are recorded, no new member starts, the failed member's steps are rolled
//! back on it, and the plan is `halted` until `apply` resumes it or `rollback` reverses the
//! applied members. Member states live in the state store, so a resumed rollout — on this
//! server after a crash, or on another — continues where it stopped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::apply::{At, StepOutcome, pre_apply_run};
use super::*;
use crate::config::GroupConfig;
use crate::plan::MemberState;

/// The sessions a member opens besides its reads' (its migration lock's, its backup's, its
/// steps'): opened ahead with it (`Target::open_ahead`).
const AHEAD_SESSIONS: usize = 3;

/// How one member's apply ended, when it did not fail.
enum MemberDone {
    Applied,
    /// A shutdown stopped it at a checkpoint; it resumes on the next apply.
    Halted,
}

/// Orders a wave's starts and its first failure: a member's start is recorded only while no
/// member has failed, and a failure is recorded only once no member can start any more, so
/// the audit never shows a start after a failure.
#[derive(Default)]
struct Starts {
    gate: tokio::sync::Mutex<()>,
    stop: AtomicBool,
}

/// What a wave ended with: its first failure, or a shutdown.
#[derive(Default)]
struct WaveEnd {
    failed: Option<(String, Error)>,
    halted: bool,
}

/// A rollout to a group does not stop at gates: a plan for one with a gated step is refused.
pub(super) fn refuse_gates(steps: &[Step]) -> Result<()> {
    match steps.iter().find(|s| s.gate.is_some()) {
        Some(step) => Err(Error::invalid(
            Part::Step,
            format!(
                "step `{}` has a gate, and a rollout to a group does not stop at gates: roll out each phase as its own plan",
                step.name.as_deref().unwrap_or("step")
            ),
        )),
        None => Ok(()),
    }
}

impl Engine {
    /// Applies a group plan wave by wave (see the module's documentation).
    pub(super) async fn rollout(
        self: &Arc<Self>,
        plan: &Plan,
        group: &GroupConfig,
        agent: &Principal,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<ApplyReport> {
        refuse_gates(plan.steps())?;
        let states = self.start_rollout(plan, group, agent).await?;
        let total = states.len() as u64;
        let done = Arc::new(AtomicU64::new(
            states
                .iter()
                .filter(|m| m.state == MemberState::Applied)
                .count() as u64,
        ));
        let plan = Arc::new(plan.clone());
        for wave in 1..=group.wave_ends().len() {
            let todo: Vec<String> = states
                .iter()
                .filter(|m| m.wave as usize == wave && m.state != MemberState::Applied)
                .map(|m| m.target.clone())
                .collect();
            let end = self
                .run_wave(
                    &plan,
                    todo,
                    group.parallel,
                    agent,
                    (&progress, &done, total),
                )
                .await;
            if let Some((member, err)) = end.failed {
                return Err(self.halt_rollout(&plan, agent, member, wave, err).await?);
            }
            if end.halted {
                let fresh = self.store.plan(&plan.id).await?;
                return Ok(ApplyReport::done(
                    &fresh,
                    &format!(
                        "the server is shutting down: the rollout stopped in wave {wave} ({} of {total} members applied) and resumes on the next apply",
                        done.load(Ordering::SeqCst)
                    ),
                    vec![],
                    None,
                ));
            }
        }
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[Status::Applying], Status::Applied)),
                steps: (0..plan.steps().len())
                    .map(|i| (i, StepState::Applied))
                    .collect(),
                audit: Audit::new(
                    agent,
                    "applied",
                    json!({"group": group.name, "members": total}),
                ),
                ..Change::default()
            })
            .await?;
        let fresh = self.store.plan(&plan.id).await?;
        let steps = plan.step_names();
        // The group's staging follows, as a production target's does: the next plan's dry-run
        // then runs on what the members now are.
        let staging_sync = self
            .follow_on_staging(&fresh, &steps, staging::Direction::Apply, agent)
            .await;
        let mut report = ApplyReport::done(
            &fresh,
            &format!(
                "applied to all {total} members of group `{}` in {} wave(s)",
                group.name,
                group.wave_ends().len()
            ),
            steps,
            None,
        );
        report.staging_sync = staging_sync;
        Ok(report)
    }

    /// A member failed: the plan is halted (audited with the member, its wave and the error),
    /// and the refusal says so.
    async fn halt_rollout(
        &self,
        plan: &Plan,
        agent: &Principal,
        member: String,
        wave: usize,
        err: Error,
    ) -> Result<Error> {
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[Status::Applying], Status::Halted)),
                audit: Audit::new(
                    agent,
                    "rollout-halted",
                    json!({"member": member, "wave": wave, "error": err.to_string()}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(Error::RolloutHalted {
            plan: plan.id.clone(),
            member,
            wave,
            cause: err.to_string(),
        })
    }

    /// Records the members (a resumed rollout keeps their states) and moves the plan to
    /// `applying`; returns the members' states.
    async fn start_rollout(
        &self,
        plan: &Plan,
        group: &GroupConfig,
        agent: &Principal,
    ) -> Result<Vec<crate::store::MemberRow>> {
        let members: Vec<(&str, usize)> = group
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), group.wave_of(i)))
            .collect();
        self.store.ensure_members(&plan.id, &members).await?;
        let from = [
            Status::Tested,
            Status::Approved,
            Status::Applying,
            Status::Halted,
        ];
        let started = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&from, Status::Applying)),
                audit: Audit::new(
                    agent,
                    "rollout-start",
                    json!({"group": group.name, "members": members.len(), "waves": group.wave_ends().len()}),
                ),
                ..Change::default()
            })
            .await?;
        if !started {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: self.store.plan(&plan.id).await?.status.to_string(),
                action: "apply",
                needed: "tested and approved, or a halted rollout",
            });
        }
        Ok(self.store.members(&plan.id).await?)
    }

    /// One wave: its members through a sliding pool of `parallel`, in list order; after the
    /// first failure (or a shutdown) no further member starts.
    async fn run_wave(
        self: &Arc<Self>,
        plan: &Arc<Plan>,
        members: Vec<String>,
        parallel: usize,
        agent: &Principal,
        (progress, done, total): (&Option<UnboundedSender<Progress>>, &Arc<AtomicU64>, u64),
    ) -> WaveEnd {
        let pool = Arc::new(tokio::sync::Semaphore::new(parallel));
        let starts = Arc::new(Starts::default());
        let mut set = tokio::task::JoinSet::new();
        let mut end = WaveEnd::default();
        for (i, member) in members.iter().cloned().enumerate() {
            let (engine, plan, agent) = (Arc::clone(self), Arc::clone(plan), agent.clone());
            let (pool, starts, done, progress) =
                (pool.clone(), starts.clone(), done.clone(), progress.clone());
            // The permit is taken before the task starts: members start in list order.
            let Ok(permit) = pool.acquire_owned().await else {
                break;
            };
            {
                let _order = starts.gate.lock().await;
                if starts.stop.load(Ordering::SeqCst) || self.halt.requested() {
                    break;
                }
                let t = Instant::now();
                if let Err(e) = self.member_started(&plan, &member, &agent).await {
                    end.failed = Some((member, e));
                    break;
                }
                crate::clock::phase("member: record start", t);
            }
            // One member at a time, the next is opened while this one runs: its sessions'
            // handshakes and its schema read's planning are then behind it when it starts.
            // Several at a time, members already run side by side; opening ahead would only
            // add the work of sessions opened twice.
            if let Some(next) = members.get(i + 1).filter(|_| parallel == 1) {
                let engine = Arc::clone(self);
                let next = next.clone();
                tokio::spawn(async move {
                    if let Ok(cfg) = engine.config.target(&next) {
                        Target::open_ahead(&engine.config, cfg, &engine.spares, AHEAD_SESSIONS)
                            .await;
                    }
                });
            }
            set.spawn(async move {
                let _permit = permit;
                let outcome = engine.apply_member(&plan, &member, &agent, &starts).await;
                if let Ok(MemberDone::Applied) = &outcome {
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(tx) = &progress {
                        let _ = tx.send(Progress {
                            done: n,
                            total,
                            message: format!("member `{member}` applied ({n} of {total})"),
                            health: None,
                        });
                    }
                }
                (member, outcome)
            });
        }
        // Every member already running finishes and is recorded, whatever the others do.
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((_, Ok(MemberDone::Applied))) => {}
                Ok((_, Ok(MemberDone::Halted))) => end.halted = true,
                Ok((member, Err(e))) => {
                    end.failed.get_or_insert((member, e));
                }
                Err(e) => {
                    end.failed.get_or_insert((
                        "?".into(),
                        Error::Store(format!("a member's task failed: {e}")),
                    ));
                }
            }
        }
        end
    }

    /// Records that a member starts (`member-start`).
    async fn member_started(&self, plan: &Plan, member: &str, agent: &Principal) -> Result<()> {
        self.store
            .commit(Change {
                plan_id: &plan.id,
                member: Some((member, MemberState::Applying, None)),
                audit: Audit::new(agent, "member-start", json!({"member": member})),
                ..Change::default()
            })
            .await?;
        Ok(())
    }

    /// One member (its start recorded): pre-flight, its lock, backup, each step not in its
    /// history, validation; a failure rolls back what this plan applied on it and marks it
    /// failed, after stopping the wave's starts.
    async fn apply_member(
        &self,
        plan: &Plan,
        member: &str,
        agent: &Principal,
        starts: &Starts,
    ) -> Result<MemberDone> {
        let outcome = async {
            let cfg = self.config.target(member)?;
            let t = Instant::now();
            let (target, lock) = self.open_admitted(plan, cfg).await?;
            crate::clock::phase("member: open, lock and admit", t);
            let r = self.apply_member_locked(plan, member, &target, agent).await;
            let t = Instant::now();
            lock.release().await;
            crate::clock::phase("member: unlock", t);
            r
        }
        .await;
        let (state, error, action) = match &outcome {
            Ok(MemberDone::Applied) => (MemberState::Applied, None, "member-applied"),
            // Stays `applying`: its checkpoint is in the target, and the next apply resumes it.
            Ok(MemberDone::Halted) => (MemberState::Applying, None, "member-halted"),
            Err(e) => (MemberState::Failed, Some(e.to_string()), "member-failed"),
        };
        // A failure (or a halt) stops the starts before it is recorded, under the starts' gate:
        // no member's start is ever recorded after it.
        let _order = match &outcome {
            Ok(MemberDone::Applied) => None,
            _ => {
                let order = starts.gate.lock().await;
                starts.stop.store(true, Ordering::SeqCst);
                Some(order)
            }
        };
        let t = Instant::now();
        let recorded = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                member: Some((member, state, error.as_deref())),
                audit: Audit::new(agent, action, json!({"member": member, "error": error})),
                ..Change::default()
            })
            .await;
        crate::clock::phase("member: record", t);
        recorded?;
        outcome
    }

    async fn apply_member_locked(
        &self,
        plan: &Plan,
        member: &str,
        target: &Target,
        agent: &Principal,
    ) -> Result<MemberDone> {
        let t = Instant::now();
        let applied = self.applied_on(plan, target).await?;
        Self::refuse_half_restored(plan, target, |_, name| applied.contains(name)).await?;
        crate::clock::phase("member: history", t);
        // The member's schema before the plan (its rollback is verified against it) and its
        // backup are both reads of the member as it is: read side by side, each on its own
        // session.
        let t = Instant::now();
        let schema_before = async {
            if applied.is_empty() {
                let fp = target.fingerprint().await?;
                self.store
                    .commit(Change {
                        plan_id: &plan.id,
                        run: Some(pre_apply_run(plan, member, &fp)),
                        ..Change::default()
                    })
                    .await?;
            }
            Ok::<_, Error>(())
        };
        // The steps' session opens meanwhile: its handshake overlaps the two reads.
        tokio::try_join!(
            schema_before,
            self.member_backup(plan, member, target, agent),
            target.ready_steps()
        )?;
        crate::clock::phase("member: schema before and backup", t);
        for (i, step) in plan.steps().iter().enumerate() {
            let name = plan.step_name(i).to_string();
            if applied.contains(&name) {
                continue;
            }
            if self.halt.requested() {
                return Ok(MemberDone::Halted);
            }
            let at = At {
                plan,
                index: i,
                name: &name,
                agent,
                started_at: crate::store::now(),
                first: false,
            };
            let t = Instant::now();
            let outcome = self
                .run_step(&at, target, step, &None, (&mut 0, &mut 0))
                .await?;
            crate::clock::phase("member: step", t);
            match outcome {
                StepOutcome::Ran(..) | StepOutcome::Backfilled(_) => {}
                StepOutcome::Halted(_) => return Ok(MemberDone::Halted),
                StepOutcome::Failed(f, _) => {
                    let err = Error::SqlFailed {
                        phase: "apply",
                        target: member.to_string(),
                        step: name.clone(),
                        index: f.index,
                        cause: format!("{} — in `{}`", f.reason(&plan.body), truncate(&f.sql, 200)),
                    };
                    self.undo_member(plan, target).await?;
                    return Err(err);
                }
            }
        }
        if plan.body.checks.is_empty() {
            return Ok(MemberDone::Applied);
        }
        let t = Instant::now();
        let failed: Vec<String> = target
            .run_checks(&plan.body.checks)
            .await?
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| check_failure(&c))
            .collect();
        crate::clock::phase("member: checks", t);
        if !failed.is_empty() {
            self.undo_member(plan, target).await?;
            return Err(Error::ValidationFailed {
                plan: plan.id.clone(),
                failures: failed.join("; "),
            });
        }
        Ok(MemberDone::Applied)
    }

    /// The steps of `plan` the target's history has applied (and not rolled back).
    async fn applied_on(
        &self,
        plan: &Plan,
        target: &Target,
    ) -> Result<std::collections::HashSet<String>> {
        Ok(target
            .history(&plan.id)
            .await?
            .into_iter()
            .filter(|h| h.applied() && h.checksum == plan.checksum)
            .map(|h| h.step)
            .collect())
    }

    /// A production member's backup of the plan's tables, once per plan (see `take_backup`).
    async fn member_backup(
        &self,
        plan: &Plan,
        member: &str,
        target: &Target,
        agent: &Principal,
    ) -> Result<()> {
        if self.config.target(member)?.role != Role::Production
            || self.store.latest_backup(member, &plan.id).await?.is_some()
        {
            return Ok(());
        }
        self.take_backup(plan, member, target, agent).await?;
        Ok(())
    }

    /// Rolls back, newest first, every step of `plan` the member's history has applied.
    pub(super) async fn undo_member(&self, plan: &Plan, target: &Target) -> Result<Vec<String>> {
        let applied = self.applied_on(plan, target).await?;
        let mut undone = Vec::new();
        for i in (0..plan.steps().len()).rev() {
            let name = plan.step_name(i).to_string();
            if !applied.contains(&name) {
                continue;
            }
            self.undo_step(plan, i, &name, target)
                .await?
                .map_err(|f| Self::sql_failed(plan, target.name(), "rollback", &name, f))?;
            undone.push(name);
        }
        Ok(undone)
    }
}
