//! Reading: `status`, the plan list, `inspect`, and the agent's own `record-mistake`.

use super::*;

impl Engine {
    pub async fn status(&self, plan_id: &str) -> Result<StatusReport> {
        let mut plan = self.load(plan_id, "unknown", "status").await?;
        if Status::touched_target(plan.status)
            && let Ok(target) = self.open_target(&plan.target).await
        {
            self.reconcile_if_idle(&plan, &target, "drydock").await?;
            plan = self.store.plan(plan_id).await?;
        }
        let role = self.config.target(&plan.target)?.role;
        let checklist = self.checklist(&plan).await?;
        let steps = self
            .store
            .steps(plan_id)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, s)| StepStatus {
                name: s.name,
                state: s.state,
                gate: plan.steps()[i].gate.clone(),
                applied_at: s.applied_at,
                released_by: s.released_by,
                up: plan.steps()[i].up.clone(),
                down: plan.steps()[i].down.clone(),
                backfill: plan.steps()[i].backfill.as_ref().map(|b| BackfillShown {
                    sql: analysis::backfill_sql(b),
                    overwrites: overwritten(b).unwrap_or_default(),
                    spec: b.clone(),
                }),
            })
            .collect();
        let runs = self.store.runs(plan_id).await?;
        let approvals = self.store.approvals(plan_id).await?;
        let analysis = with_measurements(&plan, &runs);
        let running = self.running_progress(&plan.id).map(|r| RunningInfo {
            action: r.action.to_string(),
            since: r.started_at,
            done: r.progress.as_ref().map(|p| p.done),
            total: r.progress.as_ref().map(|p| p.total),
            message: r.progress.map(|p| p.message),
        });
        Ok(StatusReport {
            plan_id: plan.id.clone(),
            status: plan.status,
            goal: plan.goal.clone(),
            target: plan.target.clone(),
            role,
            checksum: plan.checksum.clone(),
            author: plan.author.clone(),
            urgency: plan.urgency,
            created_at: plan.created_at.clone(),
            steps,
            checks: plan.body.checks.clone(),
            checklist: checklist.clone(),
            runs: runs.into_iter().map(RunSummary::from).collect(),
            approvals,
            analysis,
            running,
            next_steps: next_steps(&plan, role, &checklist),
        })
    }

    pub async fn list(&self) -> Result<Vec<PlanSummary>> {
        Ok(self
            .store
            .plans(200)
            .await?
            .into_iter()
            .map(
                |crate::store::PlanListRow {
                     id: plan_id,
                     target,
                     status,
                     goal,
                     author,
                     created_at,
                 }| PlanSummary {
                    plan_id,
                    target,
                    status,
                    goal,
                    author,
                    created_at,
                },
            )
            .collect())
    }

    pub async fn inspect(&self, target: &str, table: Option<&str>) -> Result<InspectReport> {
        let cfg = self.config.target(target)?;
        let t = Target::open(&self.config, cfg).await?;
        let mut catalog = t.catalog().await?;
        if let Some(name) = table {
            if !catalog.tables.contains_key(name) {
                return Err(Error::invalid(
                    Part::Argument,
                    format!("target `{target}` has no table `{name}`"),
                ));
            }
            catalog.tables.retain(|k, _| k == name);
        }
        Ok(InspectReport {
            target: target.to_string(),
            role: cfg.role,
            engine: t.engine().to_string(),
            tables: catalog.tables,
        })
    }

    pub async fn record_mistake(
        &self,
        what: &str,
        lesson: &str,
        plan_id: Option<&str>,
        agent: &str,
    ) -> Result<MistakeReport> {
        if what.trim().is_empty() || lesson.trim().is_empty() {
            return Err(Error::invalid(
                Part::Mistake,
                "`what` and `lesson` must both say something",
            ));
        }
        let plan = match plan_id {
            Some(id) => Some(self.store.plan(id).await?),
            None => None,
        };
        let tables = plan.as_ref().map(|p| p.tables()).unwrap_or_default();
        let count = self.errors.record(&Mistake {
            agent: agent.to_string(),
            tool: "record-mistake".into(),
            plan: plan.as_ref().map(|p| p.id.clone()),
            target: plan.as_ref().map(|p| p.target.clone()),
            code: "agent-reported".into(),
            what: what.to_string(),
            lesson: lesson.to_string(),
            tables,
        })?;
        Ok(MistakeReport {
            recorded: true,
            count,
            path: self.errors.path().display().to_string(),
        })
    }
}

/// The static analysis with the newest passing dry-run's measurements and disagreements beside it.
pub(super) fn with_measurements(plan: &Plan, runs: &[crate::store::RunRow]) -> ReviewedAnalysis {
    let measured = runs
        .iter()
        .rev()
        .find(|r| r.kind == RunKind::DryRun && r.ok && r.checksum == plan.checksum)
        .map(|dry| Measured {
            dry_run: dry.id,
            target: dry.target.clone(),
            statements: dry.detail.statements.clone(),
            disagreements: dry.detail.disagreements.clone(),
        });
    ReviewedAnalysis {
        analysis: plan.analysis.clone(),
        measured,
    }
}
