//! `dry-run`: the plan exercised on a non-production target — up, checks, down, the schema and
//! data compared, up again — with locks, rewrites and scans measured.

use super::exercise::Exercised;
use super::*;

impl Engine {
    pub async fn dry_run(
        &self,
        plan_id: &str,
        target: Option<&str>,
        agent: &Principal,
    ) -> Result<DryRunReport> {
        let plan = self.load(plan_id, agent, "dry-run").await?;
        let result = self.dry_run_plan(&plan, target, agent).await;
        self.learned(result, agent, "dry-run", Some(&plan)).await
    }

    pub(super) async fn dry_run_plan(
        &self,
        plan: &Plan,
        target: Option<&str>,
        agent: &Principal,
    ) -> Result<DryRunReport> {
        require(
            plan,
            "dry-run",
            Status::is_pre_apply,
            "planned, tested or approved",
        )?;
        let Ready {
            staging_cfg,
            staging,
            own,
            recovered,
        } = self.ready_staging(plan, target, agent).await?;
        // Row counts (of staging and of the plan's own target) before the exercise, which leaves
        // staging's rows as they were: on the session staging's reads keep, before the sandbox
        // takes it (after, a read would open a new one).
        let tables = plan.tables();
        let (staging_rows, prod_rows) = row_counts(&tables, &staging, own.as_ref()).await?;
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let (outcome, sequences) = self.exercise_on(plan, &staging, &staging_cfg.name).await?;
        let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
        crate::clock::phase("dry-run: exercise", t0);

        let record = |ok: bool, detail: RunDetail| NewRun {
            kind: RunKind::DryRun,
            target: &staging_cfg.name,
            checksum: &plan.checksum,
            ok,
            started_at: started_at.clone(),
            duration_ms,
            detail,
        };
        let mut exercised = match outcome {
            Ok(x) => x,
            Err(e) => {
                self.record_failed_dry_run(plan, record(false, RunDetail::default()), agent, &e)
                    .await?;
                return Err(e);
            }
        };

        // Row ratio and estimate against the plan's own target.
        let t = Instant::now();
        let (ratios, mut estimate, mut warnings) = scale_to_production(
            &tables,
            &staging_rows,
            &prod_rows,
            &exercised.statements,
            self.config.policy.min_staging_ratio,
        );
        paused_in_production(plan, &prod_rows, &mut estimate);
        let disagreements =
            analysis::agreement::disagreements(&plan.analysis, &exercised.statements)
                .iter()
                .map(ToString::to_string)
                .collect();
        let members_differ = self.precheck_members(plan, &staging, &mut warnings).await?;
        crate::clock::phase("dry-run: estimate and members", t);
        warnings.extend(Self::dry_run_warnings(
            plan, &sequences, recovered, &exercised,
        ));
        let report = DryRunReport {
            plan_id: plan.id.clone(),
            checksum: plan.checksum.clone(),
            target: staging_cfg.name.clone(),
            ok: true,
            rollback_verified: true,
            statements: std::mem::take(&mut exercised.statements),
            checks: exercised.checks.clone(),
            tables: ratios,
            estimate,
            warnings,
            disagreements,
            members_differ,
            sequences,
            probes: std::mem::take(&mut exercised.probes),
            rehearsed: exercised.rehearsed,
            duration_ms,
            next_steps: vec![],
            omitted: Default::default(),
        };
        let t = Instant::now();
        let recorded = self
            .record_passed_dry_run(
                plan,
                report,
                &exercised,
                record(true, RunDetail::default()),
                agent,
            )
            .await;
        crate::clock::phase("dry-run: record", t);
        recorded
    }

    /// A dry-run that failed, in the runs (with the error, its code, and the rollback not
    /// verified) and the audit.
    async fn record_failed_dry_run(
        &self,
        plan: &Plan,
        mut run: NewRun<'_>,
        agent: &Principal,
        e: &Error,
    ) -> Result<()> {
        run.detail = RunDetail {
            rollback_verified: Some(false),
            ..RunDetail::failed(None, e)
        }
        .with("code", e.code());
        let audit = Audit::new(
            agent,
            "dry-run-failed",
            json!({"target": run.target, "error": e.to_string()}),
        );
        self.store
            .commit(Change {
                plan_id: &plan.id,
                run: Some(run),
                audit,
                ..Change::default()
            })
            .await?;
        Ok(())
    }

    /// The target a dry-run exercises the plan on, ready: opened and the plan admitted there,
    /// what a rehearsal drydock died in left committed undone, caught up with the plan's own
    /// target when it is that target's staging, and refused if it drifted from it.
    async fn ready_staging<'c>(
        &'c self,
        plan: &Plan,
        target: Option<&str>,
        agent: &Principal,
    ) -> Result<Ready<'c>> {
        let t = Instant::now();
        let staging_cfg = self.dry_run_target_for(plan, target)?;
        let staging = self.open_config(staging_cfg).await?;
        admit(plan, &staging).await?;
        crate::clock::phase("dry-run: open staging", t);
        let t = Instant::now();
        let mut recovered = self.recover_rehearsals(&staging).await?;
        crate::clock::phase("dry-run: recover rehearsals", t);
        // The plan's own target, when reachable: its shape for the drift check, its row counts
        // for the estimate.
        let t = Instant::now();
        let own = self.open_target(&plan.target).await.ok();
        crate::clock::phase("dry-run: open own target", t);
        let t = Instant::now();
        if let Some(production) = own.as_ref().filter(|_| {
            self.config
                .target(&plan.target)
                .is_ok_and(|t| t.staging.as_deref() == Some(staging_cfg.name.as_str()))
        }) {
            recovered.extend(self.catch_up_staging(production, &staging, agent).await?);
        }
        crate::clock::phase("dry-run: staging caught up", t);
        let t = Instant::now();
        self.refuse_drifted_staging(plan, staging_cfg, &staging, own.as_ref())
            .await?;
        crate::clock::phase("dry-run: drift check", t);
        Ok(Ready {
            staging_cfg,
            staging,
            own,
            recovered,
        })
    }

    /// What a passing dry-run warns of besides the estimate's: sequences it moved (and whether
    /// they were put back), what the recovery and catch-up before it did, instants frozen into
    /// views, app probes skipped, checks that failed.
    fn dry_run_warnings(
        plan: &Plan,
        sequences: &[crate::db::SequenceMove],
        recovered: Vec<String>,
        exercised: &Exercised,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        for s in sequences {
            warnings.push(match &s.left {
                None => format!(
                    "non-transactional: the dry-run moved sequence `{}` (a rollback does not take back nextval or setval); drydock put it back",
                    s.sequence
                ),
                Some(why) => format!(
                    "non-transactional: the dry-run moved sequence `{}` from {:?} to {:?}: {why}",
                    s.sequence, s.before, s.after
                ),
            });
        }
        warnings.extend(recovered);
        if freezes_time(plan) {
            warnings.push("view definitions were compared without the instants `'now'` (or `'today'`, ...) froze into them: a view created again from the same SQL freezes another; validate compares them so too".into());
        }
        for p in &exercised.probes {
            if p.outcome == crate::db::ProbeOutcome::Skipped {
                warnings.push(format!(
                    "app probe skipped: {}: {}",
                    p.object,
                    p.detail.as_deref().unwrap_or_default()
                ));
            }
        }
        exercised.checks.iter().filter(|c| !c.passed).for_each(|c| {
            warnings.push(format!(
                "check `{}` failed: observed {}",
                c.name, c.observed
            ));
        });
        warnings
    }

    /// The plan exercised on `staging`: in one rolled-back transaction, then rehearsed as apply
    /// runs it where that differs (see `rehearsal`); or, for a plan that a single transaction
    /// cannot hold (an enum value added in `up` and used by `down`), rehearsed from the start,
    /// with its probes and checks. The sequences either moved come back with it.
    async fn exercise_on(
        &self,
        plan: &Plan,
        staging: &Target,
        name: &str,
    ) -> Result<(Result<Exercised>, Vec<crate::db::SequenceMove>)> {
        let scratch = &self.scratch_path(&plan.id);
        std::fs::create_dir_all(scratch.parent().expect("scratch has a parent"))?;
        if staging.rehearses() && Self::commits_between_steps(plan) {
            return Ok(
                match self.rehearse(plan, staging, scratch, true, None).await {
                    Ok(r) => (Ok(r.exercised), r.sequences),
                    Err(e) => (Err(e), vec![]),
                },
            );
        }
        let mut sandbox = staging
            .sandbox(scratch, crate::db::SandboxMode::RolledBack)
            .await?;
        let t = Instant::now();
        let rehearsed_next = staging.rehearses() && Self::needs_rehearsal(plan);
        let outcome = self
            .exercise(plan, &mut sandbox, name, rehearsed_next)
            .await;
        crate::clock::phase("dry-run: rolled-back pass", t);
        let mut sequences = sandbox.finish().await;
        // Verified without committing anything, the plan is then run as apply will run it.
        let outcome = match outcome {
            Ok(x) if rehearsed_next => {
                let rehearsed = self
                    .rehearse(plan, staging, scratch, false, Some(&x.data_moved))
                    .await;
                rehearsed.map(|r| {
                    sequences.extend(r.sequences);
                    x.rehearsed(r.exercised)
                })
            }
            other => other,
        };
        Ok((outcome, sequences))
    }

    /// Records a passing dry-run (with the schema before and after `up`, for validate's drift
    /// check) and moves a first-time plan to `tested` (an approved plan stays approved).
    async fn record_passed_dry_run(
        &self,
        plan: &Plan,
        report: DryRunReport,
        exercised: &Exercised,
        run: NewRun<'_>,
        agent: &Principal,
    ) -> Result<DryRunReport> {
        let detail = RunDetail {
            fingerprint_before: Some(exercised.before.hash.clone()),
            fingerprint_before_lines: Some(exercised.before.lines.clone()),
            fingerprint_after_up: exercised.after_up.as_ref().map(|f| f.hash.clone()),
            fingerprint_after_up_lines: exercised.after_up.as_ref().map(|f| f.lines.clone()),
            ..RunDetail::of(&report)
        };
        // A first passing dry-run makes the plan `tested`; an approved plan stays approved.
        let approved = checklist::approvers(plan, &self.store.approvals(&plan.id).await?)
            .is_some_and(|a| !a.is_empty());
        let next = match plan.status {
            Status::Planned if approved => Status::Approved,
            Status::Planned => Status::Tested,
            other => other,
        };
        let committed = self
            .store
            .commit(Change {
                plan_id: &plan.id,
                status: Some((std::slice::from_ref(&plan.status), next)),
                run: Some(NewRun { detail, ..run }),
                audit: Audit::new(agent, "dry-run", json!({"target": run.target, "ok": true})),
                ..Change::default()
            })
            .await?;
        let fresh = self.store.plan(&plan.id).await?;
        if !committed {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: fresh.status.to_string(),
                action: "recording a dry-run",
                needed: "unchanged while the dry-run ran",
            });
        }
        let checklist = self.checklist(&fresh).await?;
        let role = self.config.target(&plan.target)?.role;
        Ok(DryRunReport {
            next_steps: next_steps(&fresh, role, &checklist),
            ..report
        })
    }

    /// The target a dry-run runs on: the one named (never production; only the plan's own
    /// target, its linked staging or a scratch target count as evidence), else the linked staging.
    fn dry_run_target_for(
        &self,
        plan: &Plan,
        target: Option<&str>,
    ) -> Result<&crate::config::TargetConfig> {
        match target {
            Some(t) => {
                let cfg = self.config.target(t)?;
                if cfg.role == Role::Production {
                    return Err(Error::ProductionDryRun(t.to_string()));
                }
                // Evidence counts only from the plan's own target, its linked staging, or scratch.
                let own = self.config.target(&plan.target)?;
                let related = cfg.name == own.name
                    || own.staging.as_deref() == Some(&cfg.name)
                    || cfg.role == Role::Scratch;
                if !related {
                    return Err(Error::PlanTargetMismatch {
                        plan: plan.id.clone(),
                        plan_target: plan.target.clone(),
                        target: t.to_string(),
                    });
                }
                Ok(cfg)
            }
            None => self.config.dry_run_target(&plan.target),
        }
    }

    /// Refuses a dry-run on the plan target's linked staging when the tables the plan touches
    /// are not shaped there as they are on the target: evidence from such a staging proves
    /// nothing about production.
    pub(super) async fn refuse_drifted_staging(
        &self,
        plan: &Plan,
        staging_cfg: &crate::config::TargetConfig,
        staging: &Target,
        target: Option<&Target>,
    ) -> Result<()> {
        let own = self.config.target(&plan.target)?;
        if own.staging.as_deref() != Some(staging_cfg.name.as_str()) {
            return Ok(());
        }
        let Some(target) = target else {
            return Ok(());
        };
        let tables = plan.tables();
        // Two servers (or two databases): read side by side.
        let (on_target, on_staging) =
            tokio::try_join!(target.column_lines(&tables), staging.column_lines(&tables))?;
        if on_target == on_staging {
            return Ok(());
        }
        let only = |a: &std::collections::BTreeSet<String>,
                    b: &std::collections::BTreeSet<String>,
                    who: &str| {
            a.difference(b)
                .take(5)
                .map(|l| format!("only on {who}: {l}"))
                .collect::<Vec<_>>()
        };
        Err(Error::StagingDrift {
            staging: staging_cfg.name.clone(),
            target: plan.target.clone(),
            detail: [
                only(&on_target, &on_staging, &plan.target),
                only(&on_staging, &on_target, &staging_cfg.name),
            ]
            .concat()
            .join("; "),
        })
    }
}

/// A backfill's `pause_ms` is waited between batches in production as on staging, but
/// production has more batches: the estimate adds each backfill's pauses over production's
/// rows (at most `batch_size` rows a batch), which the staging run's duration left out.
fn paused_in_production(plan: &Plan, prod_rows: &BTreeMap<String, u64>, estimate: &mut Estimate) {
    let paused: f64 = plan
        .steps()
        .iter()
        .filter_map(|s| s.backfill.as_ref())
        .filter_map(|b| {
            let pause = b.pause_ms.filter(|p| *p > 0)?;
            let rows = prod_rows.get(&b.table).copied().unwrap_or(0);
            let batches = rows.div_ceil(u64::from(b.batch_size.unwrap_or(1000)).max(1));
            Some(pause as f64 * batches as f64)
        })
        .sum();
    if paused > 0.0 {
        estimate.production_ms += paused;
        estimate.basis.push_str(&format!(
            ", plus {:.0} ms of the backfills' pauses between production's batches",
            paused
        ));
    }
    if plan.steps().iter().any(|s| s.backfill.is_some()) {
        estimate
            .basis
            .push_str("; time a batch waits for a lagging replica is not in it");
    }
}

/// Staging's row counts against production's: each table's ratio (a `production-like` warning
/// below `min_staging_ratio`), and the production duration estimated from staging's by the
/// largest production/staging ratio.
fn scale_to_production(
    tables: &[String],
    staging_rows: &BTreeMap<String, u64>,
    prod_rows: &BTreeMap<String, u64>,
    statements: &[StatementRun],
    min_staging_ratio: f64,
) -> (Vec<TableRatio>, Estimate, Vec<String>) {
    let mut ratios = Vec::new();
    let mut warnings = Vec::new();
    let mut scale: f64 = 1.0;
    for t in tables {
        let (s, p) = (staging_rows.get(t).copied(), prod_rows.get(t).copied());
        let ratio = match (s, p) {
            (Some(s), Some(p)) if p > 0 => Some(s as f64 / p as f64),
            _ => None,
        };
        if let (Some(s), Some(p)) = (s, p)
            && s > 0
        {
            scale = scale.max(p as f64 / s as f64);
        }
        if let Some(r) = ratio.filter(|r| *r < min_staging_ratio) {
            warnings.push(format!(
                "production-like: `{t}` on staging has {:.1}% of production's rows (policy.min_staging_ratio = {})",
                r * 100.0,
                min_staging_ratio
            ));
        }
        ratios.push(TableRatio {
            table: t.clone(),
            staging_rows: s,
            production_rows: p,
            ratio,
        });
    }
    let up_ms: f64 = statements.iter().map(|s| s.duration_ms).sum();
    let estimate = Estimate {
        staging_ms: up_ms,
        production_ms: up_ms * scale,
        basis: format!(
            "staging duration × {scale:.2} (largest production/staging row ratio of the affected tables)"
        ),
    };
    (ratios, estimate, warnings)
}

/// A dry-run's target, ready to exercise the plan on (`Engine::ready_staging`).
struct Ready<'c> {
    staging_cfg: &'c crate::config::TargetConfig,
    staging: Target,
    /// The plan's own target, when reachable.
    own: Option<Target>,
    /// What the recovery and the catch-up did, said as warnings.
    recovered: Vec<String>,
}

/// The rows of `tables` on staging and on the plan's own target (none when it is unreachable).
async fn row_counts(
    tables: &[String],
    staging: &Target,
    own: Option<&Target>,
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
    let t = Instant::now();
    let staging_rows = staging.row_counts(tables).await?;
    let own_rows = match own {
        Some(own) => own.row_counts(tables).await?,
        None => BTreeMap::new(),
    };
    crate::clock::phase("dry-run: row counts", t);
    Ok((staging_rows, own_rows))
}
