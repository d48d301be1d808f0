//! `apply`: preconditions → backup → each pending step with its history row → the outcome
//! recorded; long steps continue in the background and report progress.

use super::report::StagingSync;
use super::*;

impl Engine {
    /// Applies pending steps. Waits at most `policy.apply_wait`; a step still running then
    /// continues in the background and the call returns `status: applying` with its progress.
    pub async fn apply(
        self: &Arc<Self>,
        plan_id: &str,
        agent: &Principal,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<ApplyReport> {
        let plan = self.load(plan_id, agent, "apply").await?;
        let guard = match self.claim(&plan.target, &plan.id, lease::Operation::Apply)? {
            Ok(g) => g,
            Err(running) => {
                return Ok(ApplyReport::in_background(
                    &plan,
                    &running.started_at,
                    running.progress.as_ref(),
                ));
            }
        };
        // Across servers sharing the store: one apply of a plan at a time.
        let lease = self.hold(&plan, agent, lease::Operation::Apply).await?;
        // Record the latest progress (for `status` and later `apply` calls) and pass it on.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        {
            let (running, target) = (self.running.clone(), plan.target.clone());
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    if let Some(r) = running.lock().expect("running map lock").get_mut(&target) {
                        r.progress = Some(p.clone());
                    }
                    if let Some(out) = &progress {
                        let _ = out.send(p);
                    }
                }
            });
        }
        let engine = Arc::clone(self);
        let (task_plan, agent_name) = (plan.clone(), agent.clone());
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = engine.apply_plan(&task_plan, &agent_name, Some(tx)).await;
            let result = engine
                .learned(result, &agent_name, "apply", Some(&task_plan))
                .await;
            // The answer goes out once production is done, and production is free for the next
            // operation; the linked staging follows after it, one sync at a time (its turn is
            // taken before production's mark goes, so a shutdown waits for it; a kill before it
            // ends leaves staging behind, and the next dry-run or apply brings it in step:
            // `catch_up_staging`).
            let follows = match &result {
                Ok(r) => r.staging_sync.as_ref().filter(|s| s.in_background),
                Err(_) => None,
            };
            let turn = match follows {
                // Not taken (busy past apply_wait): the sync tries again and says why it failed.
                Some(s) => Some(engine.staging_turn(&s.target, &task_plan.id).await),
                None => None,
            };
            drop(guard);
            lease.release().await;
            let _ = answer.send(result);
            if let Some(turn) = turn {
                let t = Instant::now();
                if let Ok(plan) = engine.store.plan(&task_plan.id).await {
                    let _ = engine
                        .staging_follows_applied(&plan, &agent_name, turn.ok())
                        .await;
                }
                crate::clock::phase("staging sync", t);
            }
        });
        match tokio::time::timeout(self.config.policy.apply_wait, &mut answered).await {
            Ok(result) => {
                result.map_err(|e| Error::Store(format!("the apply task failed: {e}")))?
            }
            Err(_) => {
                let started = self.running_progress(&plan.id);
                let fresh = self.store.plan(&plan.id).await?;
                Ok(ApplyReport::in_background(
                    &fresh,
                    started
                        .as_ref()
                        .map(|r| r.started_at.as_str())
                        .unwrap_or(""),
                    started.as_ref().and_then(|r| r.progress.as_ref()),
                ))
            }
        }
    }

    /// Preconditions → the target's lock → reconcile → backup → each pending step → outcome.
    pub(super) async fn apply_plan(
        self: &Arc<Self>,
        plan: &Plan,
        agent: &Principal,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<ApplyReport> {
        match plan.status {
            Status::Applied | Status::Validated => {
                let mut report =
                    ApplyReport::done(plan, "already applied; nothing to do", vec![], None);
                report.staging_sync = self.staging_catch_up(plan, agent).await;
                return Ok(report);
            }
            Status::Rejected | Status::RolledBack => {
                return Err(Error::WrongStatus {
                    plan: plan.id.clone(),
                    status: plan.status.to_string(),
                    action: "apply",
                    needed: "tested and approved (make a new plan)",
                });
            }
            _ => {}
        }
        let t = Instant::now();
        let items = self.checklist(plan).await?;
        crate::clock::phase("checklist", t);
        // Everything but the backup must hold before the target is touched; the backup is
        // taken under the lock.
        if checklist::unmet(&items)
            .iter()
            .any(|i| i.item != Item::BackupVerified)
        {
            return Err(unmet_error(plan, &items));
        }
        if let Some(group) = self.config.group(&plan.target) {
            // Each member takes its own backup under its own lock.
            return self.rollout(plan, group, agent, progress).await;
        }
        let t = Instant::now();
        let (target, lock) = self
            .open_admitted(plan, self.config.target(&plan.target)?)
            .await?;
        crate::clock::phase("connect and lock", t);
        let result = self
            .apply_locked(plan, agent, progress, &target, items)
            .await;
        lock.release().await;
        result
    }

    async fn apply_locked(
        &self,
        plan: &Plan,
        agent: &Principal,
        progress: Option<UnboundedSender<Progress>>,
        target: &Target,
        mut items: Vec<ChecklistItem>,
    ) -> Result<ApplyReport> {
        // Under the lock, the target's history first: a step it has is never run again.
        let t = Instant::now();
        let steps = self.reconcile(plan, target, agent).await?;
        Self::refuse_half_restored(plan, target, |i, _| steps[i].state == StepState::Applied)
            .await?;
        crate::clock::phase("reconcile", t);
        if steps.iter().all(|s| s.state == StepState::Applied) {
            let fresh = self.store.plan(&plan.id).await?;
            let mut report = ApplyReport::done(
                &fresh,
                "already applied (per the target's history); nothing to do",
                vec![],
                None,
            );
            report.staging_sync = self.staging_catch_up(&fresh, agent).await;
            return Ok(report);
        }
        let t = Instant::now();
        // The steps' session opens meanwhile: its handshake overlaps the backup.
        let (backup, ()) = tokio::try_join!(
            self.backup_if_needed(plan, target, agent, &mut items),
            target.ready_steps()
        )?;
        crate::clock::phase("backup", t);
        let t = Instant::now();
        self.record_waiver(plan, agent, &items).await;
        self.start_applying(plan, target, &steps, agent).await?;
        crate::clock::phase("schema before", t);
        let ran = self
            .run_steps(plan, target, &steps, agent, progress)
            .await?;
        let t = Instant::now();
        if ran.gated.is_none() && ran.halted.is_none() {
            self.store
                .commit(Change {
                    plan_id: &plan.id,
                    status: Some((&[Status::Applying], Status::Applied)),
                    audit: Audit::new(agent, "applied", json!({"steps": ran.applied})),
                    ..Change::default()
                })
                .await?;
        }
        let plan = self.store.plan(&plan.id).await?;
        let message = match &ran.gated {
            _ if ran.halted.is_some() => format!(
                "applied {} step(s); the server is shutting down: step `{}` stopped at a checkpoint and resumes from it on the next apply",
                ran.applied.len(),
                ran.halted.as_deref().unwrap_or_default()
            ),
            Some(g) => format!(
                "applied {} step(s); step `{}` is gated",
                ran.applied.len(),
                g.step
            ),
            None => format!(
                "applied {} step(s); all steps are applied",
                ran.applied.len()
            ),
        };
        crate::clock::phase("record applied", t);
        // Staging follows what was applied after the answer (`apply` above).
        let staging_sync = self
            .linked_staging(&plan)
            .filter(|_| !ran.applied.is_empty())
            .map(|target| StagingSync {
                target,
                ok: true,
                steps: ran.applied.clone(),
                in_background: true,
                error: None,
            });
        let t = Instant::now();
        let export = self.export_after_apply(&plan, target, &ran.applied).await;
        crate::clock::phase("export", t);
        let mut report = ApplyReport::done(&plan, &message, ran.applied, ran.gated);
        report.export = export;
        report.staging_sync = staging_sync;
        report.statements = ran.statements;
        report.backfills = ran.backfills;
        report.backup = backup;
        report.checklist = items;
        Ok(report)
    }

    /// `[export]` on a production target: the steps just applied written into the folder. The
    /// apply stands whatever happens here; a failure is reported for `drydock export` to redo.
    async fn export_after_apply(
        &self,
        plan: &Plan,
        target: &Target,
        applied: &[String],
    ) -> Option<ExportOutcome> {
        let to = self.export_folder(plan)?;
        if applied.is_empty() {
            return None;
        }
        Some(match self.export_locked(plan, target, to).await {
            Ok(report) => ExportOutcome {
                report: Some(report),
                error: None,
            },
            Err(e) => ExportOutcome {
                report: None,
                error: Some(format!(
                    "{} (the apply stands; fix: {}, then run `drydock export {}`)",
                    crate::redact::redact(&e.to_string()),
                    e.fix(),
                    plan.id
                )),
            },
        })
    }

    /// On production without a fresh covering backup: the configured command's evidence, or
    /// drydock's own verified snapshot of the plan's tables; recorded, then the checklist again.
    async fn backup_if_needed(
        &self,
        plan: &Plan,
        target: &Target,
        agent: &Principal,
        items: &mut Vec<ChecklistItem>,
    ) -> Result<Option<crate::db::BackupEvidence>> {
        let production = self.config.target(&plan.target)?.role == Role::Production;
        if !production
            || !checklist::unmet(items)
                .iter()
                .any(|i| i.item == Item::BackupVerified)
        {
            return Ok(None);
        }
        let evidence = self.take_backup(plan, &plan.target, target, agent).await?;
        *items = self.checklist(plan).await?;
        if !checklist::unmet(items).is_empty() {
            return Err(unmet_error(plan, items));
        }
        Ok(Some(evidence))
    }

    /// A verified backup of the plan's tables on `name` (the plan's target, or a member of its
    /// group): the configured command's evidence or drydock's own snapshot; recorded under `name`.
    pub(super) async fn take_backup(
        &self,
        plan: &Plan,
        name: &str,
        target: &Target,
        agent: &Principal,
    ) -> Result<crate::db::BackupEvidence> {
        let evidence = match &self.config.backup.command {
            Some(cmd) => {
                crate::db::backup_command(name, cmd, self.config.policy.backup_max_age).await?
            }
            None => {
                // Unique per process too: two servers never share a backup's name.
                let label = format!(
                    "{}_{}_{}",
                    plan.id.replace('-', "_"),
                    crate::store::now()
                        .replace([':', '.', '-'], "")
                        .to_lowercase(),
                    std::process::id()
                );
                target
                    .backup(
                        &self.config.state_dir.join("backups"),
                        &format!("{name}-{label}"),
                        &plan.existing_tables(),
                        self.config.policy.snapshot_max_rows,
                    )
                    .await?
            }
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                backup: Some((name, true, &evidence)),
                audit: Audit::new(
                    agent,
                    "backup",
                    json!({"target": name, "location": evidence.location}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(evidence)
    }

    /// A hotfix applied without a staging dry-run is written to ERRORS.md as such.
    async fn record_waiver(&self, plan: &Plan, agent: &Principal, items: &[ChecklistItem]) {
        if let Some(waived) = items
            .iter()
            .find(|i| i.state == checklist::ItemState::Waived && i.item == Item::StagingTested)
        {
            self.note(&Mistake {
                agent: agent.name.clone(),
                tool: "apply".into(),
                plan: Some(plan.id.clone()),
                target: Some(plan.target.clone()),
                code: "hotfix-waiver".into(),
                what: format!("hotfix applied without a staging dry-run: {}", waived.evidence.clone().unwrap_or_default()),
                lesson: "hotfixes skip staging only with two approvers; follow up with a dry-run of the same change on staging".into(),
                tables: vec![],
            })
            .await;
        }
    }

    /// The plan becomes `applying`; before its first step, with the schema as it is: rollback
    /// and validate compare against it, and a kill after that step must not lose it.
    async fn start_applying(
        &self,
        plan: &Plan,
        target: &Target,
        steps: &[crate::store::StepRow],
        agent: &Principal,
    ) -> Result<()> {
        let pre_apply = if steps.iter().all(|s| s.state != StepState::Applied) {
            Some(pre_apply_run(
                plan,
                &plan.target,
                &target.fingerprint().await?,
            ))
        } else {
            None
        };
        let from = [
            Status::Planned,
            Status::Tested,
            Status::Approved,
            Status::Applying,
        ];
        let started = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&from, Status::Applying)),
                run: pre_apply,
                audit: Audit::new(agent, "apply-start", json!({"target": plan.target})),
                ..Change::default()
            })
            .await?;
        if !started {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: self.store.plan(&plan.id).await?.status.to_string(),
                action: "apply",
                needed: "tested and approved",
            });
        }
        Ok(())
    }

    /// Each pending step in order until one is gated; each recorded as it ends.
    async fn run_steps(
        &self,
        plan: &Plan,
        target: &Target,
        steps: &[crate::store::StepRow],
        agent: &Principal,
        progress: Option<UnboundedSender<Progress>>,
    ) -> Result<StepsRun> {
        // One progress for the whole plan, always increasing (as MCP requires): a statement is
        // one unit, a backfilled row one unit; the steps already applied count as done.
        let statements = |s: &Step| {
            s.up.as_deref()
                .map(|u| analysis::statements("", u).map(|v| v.len()).unwrap_or(0))
                .unwrap_or(0) as u64
        };
        let mut total: u64 = plan.steps().iter().map(statements).sum();
        let mut ran = StepsRun::default();
        let mut done: u64 = plan
            .steps()
            .iter()
            .zip(steps)
            .filter(|(_, row)| row.state == StepState::Applied)
            .map(|(s, _)| statements(s))
            .sum();
        let mut previous_applied_at: Option<String> = None;
        for (i, row) in steps.iter().enumerate() {
            let step = &plan.steps()[i];
            if row.state == StepState::Applied {
                previous_applied_at = row.applied_at.clone();
                continue;
            }
            if self.halt.requested() || ran.halted.is_some() {
                ran.halted.get_or_insert_with(|| row.name.clone());
                break;
            }
            if row.state == StepState::Gated
                && !self.gate_open(step, previous_applied_at.as_deref())
            {
                ran.gated = Some(GatedStep {
                    step: row.name.clone(),
                    gate: step.gate.clone(),
                    release: format!("drydock release {} {} --by NAME", plan.id, row.name),
                });
                break;
            }
            let at = At {
                plan,
                index: i,
                name: &row.name,
                agent,
                started_at: crate::store::now(),
                first: ran.applied.is_empty()
                    && steps.iter().all(|s| s.state != StepState::Applied),
            };
            let t0 = Instant::now();
            let outcome = self
                .run_step(&at, target, step, &progress, (&mut done, &mut total))
                .await?;
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            crate::clock::phase(&format!("step {}", row.name), t0);
            let t = Instant::now();
            self.record_step(at, outcome, duration_ms, &mut ran).await?;
            crate::clock::phase("record step", t);
            previous_applied_at = Some(crate::store::now());
        }
        Ok(ran)
    }

    /// Runs one step (a backfill, or statements in a transaction) with its history row.
    pub(super) async fn run_step(
        &self,
        at: &At<'_>,
        target: &Target,
        step: &Step,
        progress: &Option<UnboundedSender<Progress>>,
        (done, total): (&mut u64, &mut u64),
    ) -> Result<StepOutcome> {
        let (plan, name, agent) = (at.plan, at.name, at.agent);
        let row = HistoryRow {
            plan_id: &plan.id,
            step: name,
            checksum: &plan.checksum,
            by: &agent.name,
        };
        if let Some(spec) = &step.backfill {
            return self
                .run_backfill(at, target, spec, &row, progress, (done, total))
                .await;
        }
        let stmts = Self::stmts(name, step.up.as_deref())?;
        let mut tick = |r: &StatementRun| {
            *done += 1;
            if let Some(tx) = progress {
                let _ = tx.send(Progress {
                    done: *done,
                    total: (*total).max(*done),
                    message: format!("step `{}` statement {} done", r.step, r.index),
                    health: None,
                });
            }
        };
        let tables = Self::step_tables(plan, name);
        let (result, watch) = target
            .execute(
                name,
                &stmts,
                &tables,
                Some(History::Applied(row)),
                &self.config.policy,
                &mut tick,
            )
            .await?;
        Ok(match result {
            Ok(runs) => StepOutcome::Ran(runs, watch),
            Err(failure) => StepOutcome::Failed(failure, Some(watch)),
        })
    }

    /// A backfill step: its batches, paced and paused as the engineer says, with progress.
    async fn run_backfill(
        &self,
        at: &At<'_>,
        target: &Target,
        spec: &crate::plan::Backfill,
        row: &HistoryRow<'_>,
        progress: &Option<UnboundedSender<Progress>>,
        (done, total): (&mut u64, &mut u64),
    ) -> Result<StepOutcome> {
        let (plan, name) = (at.plan, at.name);
        // The rows count on from the units done before this step; the estimate joins the
        // plan's total until the backfill's real count replaces it.
        let (base, planned) = (*done, *total);
        let mut tick = |rows: u64, estimate: u64, health: &crate::db::Health| {
            if let Some(tx) = progress {
                let around = health.summary();
                let _ = tx.send(Progress {
                    done: base + rows,
                    total: planned + estimate.max(rows),
                    message: format!(
                        "step `{name}`: {rows} of ~{estimate} rows backfilled{}",
                        if around.is_empty() {
                            String::new()
                        } else {
                            format!("; {around}")
                        }
                    ),
                    health: Some(health.clone()),
                });
            }
        };
        let columns = overwritten(spec)?;
        // The engineer's brake lives in the state store (a pause from another process, or
        // from before a restart, holds too); it is read a few times a second.
        let paused_now = matches!(self.store.paused(&plan.id).await, Ok(Some(_)));
        let pause = Arc::new(std::sync::atomic::AtomicBool::new(paused_now));
        let watch = {
            let (store, id, pause) = (self.store.clone(), plan.id.clone(), pause.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    let now = matches!(store.paused(&id).await, Ok(Some(_)));
                    pause.store(now, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        let result = target
            .backfill(
                name,
                spec,
                &columns,
                row,
                &self.config.policy,
                crate::db::Control {
                    progress: &mut tick,
                    halt: &self.halt,
                    pause: &pause,
                },
            )
            .await;
        watch.abort();
        let result = result?;
        if let Ok(report) = &result {
            *done = base + report.rows;
            *total = planned + report.rows;
        }
        Ok(match result {
            Ok(report) if report.halted => StepOutcome::Halted(report),
            Ok(report) => StepOutcome::Backfilled(report),
            Err(failure) => StepOutcome::Failed(failure, None),
        })
    }

    /// Records a step's run: applied (with what it did), or failed (the plan back to where the
    /// apply started when nothing of it reached the target) — and the failure as the error.
    async fn record_step(
        &self,
        at: At<'_>,
        outcome: StepOutcome,
        duration_ms: f64,
        ran: &mut StepsRun,
    ) -> Result<()> {
        let (plan, name, agent) = (at.plan, at.name, at.agent);
        let (detail, audit) = match outcome {
            StepOutcome::Halted(report) => {
                // Nothing to record but the stop: the step stays `applying` with its checkpoint
                // in the target, as after a crash, and the next apply resumes it.
                self.store
                    .commit(Change {
                        plan_id: &plan.id,
                        audit: Audit::new(
                            agent,
                            "apply-halted",
                            json!({"step": name, "rows_done": report.rows, "checkpoint": "kept"}),
                        ),
                        ..Change::default()
                    })
                    .await?;
                ran.halted = Some(name.to_string());
                ran.backfills.push(report);
                return Ok(());
            }
            StepOutcome::Backfilled(report) => {
                let detail = RunDetail {
                    step: Some(name.to_string()),
                    ..RunDetail::default()
                }
                .with("backfill", &report);
                let audit = json!({"step": name, "backfill_rows": report.rows});
                ran.backfills.push(report);
                (detail, audit)
            }
            StepOutcome::Ran(runs, watch) => {
                let detail = RunDetail {
                    step: Some(name.to_string()),
                    statements: runs.clone(),
                    ..RunDetail::default()
                }
                .with("watcher", &watch);
                ran.statements.extend(runs);
                (detail, json!({"step": name}))
            }
            StepOutcome::Failed(failure, watch) => {
                return Err(self
                    .record_failed_step(&at, failure, watch, duration_ms)
                    .await?);
            }
        };
        self.store
            .commit(Change {
                plan_id: &plan.id,
                run: Some(NewRun {
                    kind: RunKind::Apply,
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok: true,
                    started_at: at.started_at,
                    duration_ms,
                    detail,
                }),
                steps: vec![(at.index, StepState::Applied)],
                audit: Audit::new(agent, "apply-step", audit),
                ..Change::default()
            })
            .await?;
        ran.applied.push(name.to_string());
        Ok(())
    }

    /// A step that failed: the plan back to where the apply started when nothing of it reached
    /// the target (the first step), the run and the audit; the failure as the error.
    async fn record_failed_step(
        &self,
        at: &At<'_>,
        failure: StepFailure,
        watch: Option<crate::db::WatchReport>,
        duration_ms: f64,
    ) -> Result<Error> {
        let (plan, name, agent) = (at.plan, at.name, at.agent);
        let err = Self::sql_failed(plan, &plan.target, "apply", name, failure);
        let back = if at.first {
            plan.status
        } else {
            Status::Applying
        };
        let mut detail = RunDetail::failed(Some(name), &err);
        if let Some(watch) = watch {
            detail = detail.with("watcher", &watch);
        }
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((&[], back)),
                run: Some(NewRun {
                    kind: RunKind::Apply,
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok: false,
                    started_at: at.started_at.clone(),
                    duration_ms,
                    detail,
                }),
                audit: Audit::new(
                    agent,
                    "apply-failed",
                    json!({"step": name, "error": err.to_string()}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(err)
    }

    pub(super) fn gate_open(&self, step: &Step, previous_applied_at: Option<&str>) -> bool {
        match &step.gate {
            None => true,
            Some(Gate::Manual) => false,
            Some(Gate::After { duration }) => {
                let d = if duration == "rollback_window" {
                    self.config.policy.rollback_window
                } else {
                    humantime::parse_duration(duration)
                        .unwrap_or(self.config.policy.rollback_window)
                };
                previous_applied_at
                    .and_then(crate::store::age)
                    .is_some_and(|age| age >= d)
            }
        }
    }
}

/// The record of `name`'s schema before the plan's first step: rollback and validate compare
/// against it.
pub(super) fn pre_apply_run<'a>(
    plan: &'a Plan,
    name: &'a str,
    fp: &crate::db::Fingerprint,
) -> NewRun<'a> {
    NewRun {
        kind: RunKind::PreApply,
        target: name,
        checksum: &plan.checksum,
        ok: true,
        started_at: crate::store::now(),
        duration_ms: 0.0,
        detail: RunDetail {
            fingerprint_before: Some(fp.hash.clone()),
            fingerprint_before_lines: Some(fp.lines.clone()),
            ..RunDetail::default()
        },
    }
}

/// Which step of which plan is running, for whom, since when; `first` when nothing of the plan
/// has reached the target before it.
pub(super) struct At<'a> {
    pub(super) plan: &'a Plan,
    pub(super) index: usize,
    pub(super) name: &'a str,
    pub(super) agent: &'a Principal,
    pub(super) started_at: String,
    pub(super) first: bool,
}

/// How one step ended.
pub(super) enum StepOutcome {
    Backfilled(crate::db::BackfillReport),
    Ran(Vec<StatementRun>, crate::db::WatchReport),
    /// The failure, and the watcher's report when the step ran SQL.
    Failed(StepFailure, Option<crate::db::WatchReport>),
    /// Stopped at a checkpoint for a shutdown: not applied, resumable.
    Halted(crate::db::BackfillReport),
}

/// What `run_steps` did: the steps applied, their statements and backfills, the gate it stopped at.
#[derive(Default)]
struct StepsRun {
    applied: Vec<String>,
    statements: Vec<StatementRun>,
    backfills: Vec<crate::db::BackfillReport>,
    gated: Option<GatedStep>,
    /// The step a shutdown stopped at a checkpoint, if one did.
    halted: Option<String>,
}
