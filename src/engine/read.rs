//! Reading: `status`, the plan list, and the agent's own `record-mistake`.

use super::*;
use crate::db::AgentUse;

impl Engine {
    /// A plan's checksum, read from the store alone (a tampered plan is refused as ever).
    pub async fn checksum(&self, plan_id: &str) -> Result<String> {
        Ok(self
            .load(plan_id, &Principal::drydock(), "checksum")
            .await?
            .checksum)
    }

    pub async fn status(&self, plan_id: &str) -> Result<StatusReport> {
        let mut plan = self.load(plan_id, &Principal::drydock(), "status").await?;
        // A group plan's steps live on its members (see `members`), not on one target.
        if Status::touched_target(plan.status)
            && self.config.group(&plan.target).is_none()
            && let Ok(target) = self.open_target(&plan.target).await
        {
            self.reconcile_if_idle(&plan, &target, &Principal::drydock())
                .await?;
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
        let paused = self.store.paused(plan_id).await?;
        let analysis = with_measurements(&plan, &runs);
        let running = match self.running_progress(&plan.id) {
            Some(r) => Some(RunningInfo {
                action: r.action.as_str().to_string(),
                since: r.started_at,
                done: r.progress.as_ref().map(|p| p.done),
                total: r.progress.as_ref().map(|p| p.total),
                health: r.progress.as_ref().and_then(|p| p.health.clone()),
                message: r.progress.map(|p| p.message),
                server: None,
            }),
            None => self.remote_running(&plan.id).await?,
        };
        Ok(StatusReport {
            plan_id: plan.id.clone(),
            status: plan.status,
            superseded_by: self.store.superseded_by(&plan.id).await?,
            goal: plan.goal.clone(),
            target: plan.target.clone(),
            role,
            checksum: plan.checksum.clone(),
            author: plan.author.clone(),
            urgency: plan.urgency,
            created_at: plan.created_at.clone(),
            source: plan.body.source(),
            desired: plan.body.desired.clone(),
            steps,
            checks: plan.body.checks.clone(),
            checklist: checklist.clone(),
            runs: runs.into_iter().map(RunSummary::from).collect(),
            approvals,
            analysis,
            running,
            paused,
            members: self.store.members(&plan.id).await?,
            next_steps: next_steps(&plan, role, &checklist),
        })
    }

    pub async fn list(&self) -> Result<Vec<PlanSummary>> {
        Ok(self
            .store
            .plans(200)
            .await?
            .into_iter()
            .map(|row| PlanSummary {
                plan_id: row.id,
                target: row.target,
                status: row.status,
                goal: row.goal,
                author: row.author,
                created_at: row.created_at,
                risk: row
                    .risk
                    .and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok()),
                superseded_by: row.superseded_by,
            })
            .collect())
    }

    /// Writes every mistake the shared state store holds, and ERRORS.md lacks, into ERRORS.md
    /// (each with its count across servers). Idempotent; returns how many were written.
    pub async fn sync_errors(&self) -> Result<usize> {
        let shared: Vec<_> = self
            .store
            .mistakes()
            .await?
            .into_iter()
            .map(|s| (s.mistake(), u64::try_from(s.count).unwrap_or(1), s.last_at))
            .collect();
        self.errors.sync(&shared)
    }

    /// Copies this server's whole state store into the store at `to` (empty, and of either
    /// backend): how a team moves from the local SQLite file to a shared PostgreSQL store.
    pub async fn migrate_state(&self, to: &str) -> Result<crate::store::Copied> {
        let url = crate::config::TargetUrl::parse(to, &self.config.base_dir())
            .map_err(|e| Error::Config(format!("--to: {e}")))?
            .resolve(&self.config.base_dir())?;
        let dest = crate::store::Store::at(&url).await?;
        Ok(self.store.copy_into(&dest).await?)
    }

    pub async fn record_mistake(
        &self,
        what: &str,
        lesson: &str,
        plan_id: Option<&str>,
        agent: &Principal,
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
        let count = self
            .note(&Mistake {
                agent: agent.name.clone(),
                tool: "record-mistake".into(),
                plan: plan.as_ref().map(|p| p.id.clone()),
                target: plan.as_ref().map(|p| p.target.clone()),
                code: "agent-reported".into(),
                what: what.to_string(),
                lesson: lesson.to_string(),
                tables,
            })
            .await;
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

/// One target as `doctor` finds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetHealth {
    pub name: String,
    pub role: &'static str,
    pub url: String,
    pub ok: bool,
    pub tables: Option<usize>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Other migration tools managing this database (their history tables).
    pub migration_tools: Vec<crate::db::MigrationTool>,
}

impl Engine {
    /// Every configured target: reachable, its table count, and (for targets that run agent
    /// SQL in dry-runs) what its role may do beyond the database.
    pub async fn target_health(&self) -> Vec<TargetHealth> {
        let mut out = Vec::new();
        for t in self.config.targets.values() {
            let mut health = TargetHealth {
                name: t.name.clone(),
                role: t.role.as_str(),
                url: t.url.to_string(),
                ok: false,
                tables: None,
                error: None,
                warnings: vec![],
                migration_tools: vec![],
            };
            match self.open_config(t).await {
                Ok(target) => match target.catalog().await {
                    Ok(cat) => {
                        health.ok = true;
                        health.tables = Some(cat.tables.len());
                        health.migration_tools =
                            target.migration_tools(&cat).await.unwrap_or_default();
                        health.warnings = target
                            .privilege_warnings(AgentUse::on(t.role))
                            .await
                            .unwrap_or_default();
                    }
                    Err(e) => health.error = Some(shown(&e)),
                },
                Err(e) => health.error = Some(shown(&e)),
            }
            out.push(health);
        }
        out
    }
}

/// A target's failure as `doctor` prints it: code, message (connection strings redacted), fix.
fn shown(e: &Error) -> String {
    crate::error::Refusal {
        message: crate::redact::redact(&e.to_string()),
        ..e.to_refusal()
    }
    .to_string()
}

/// The safety checklist and the policy in force, as the `drydock://checklist` resource shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChecklistPolicy {
    pub checklist: Vec<ItemPolicy>,
    /// Roles on which every item is required.
    pub enforced_on: Vec<Role>,
    pub policy: crate::config::Policy,
    pub targets: Vec<TargetSummary>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemPolicy {
    pub item: Item,
    pub holds_when: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetSummary {
    pub name: String,
    pub role: Role,
    pub engine: &'static str,
    pub staging: Option<String>,
}

impl Engine {
    pub fn checklist_policy(&self) -> ChecklistPolicy {
        ChecklistPolicy {
            checklist: Item::ALL
                .iter()
                .map(|&item| ItemPolicy {
                    item,
                    holds_when: item.holds_when(),
                })
                .collect(),
            enforced_on: vec![Role::Production],
            policy: self.config.policy.clone(),
            targets: self
                .config
                .targets
                .values()
                .map(|t| TargetSummary {
                    name: t.name.clone(),
                    role: t.role,
                    engine: t.url.engine(),
                    staging: t.staging.clone(),
                })
                .collect(),
        }
    }

    /// The template library: names, descriptions, parameter schemas.
    pub fn templates(&self) -> Vec<render::TemplateInfo> {
        render::list()
    }

    /// One template's source with its description and parameter schema.
    pub fn template_source(&self, name: &str) -> Result<(String, render::TemplateInfo)> {
        render::source(name)
    }
}

impl Engine {
    /// The audit trail, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<crate::store::AuditRow>> {
        Ok(self.store.audit_log(limit).await?)
    }
}

impl Engine {
    /// Stops this server's work for an exit: running backfills stop at their next checkpoint, no
    /// further step starts, and this waits (at most `at_most`) until every apply and rollback
    /// has ended; each resumes where it stopped on the next `apply`.
    pub async fn shutdown(&self, at_most: std::time::Duration) {
        self.halt.request();
        self.wait_idle(at_most).await;
    }

    /// Waits until no apply or rollback runs in this server (each stops at a checkpoint it can
    /// resume from), or `at_most` has passed.
    pub async fn wait_idle(&self, at_most: std::time::Duration) {
        let deadline = Instant::now() + at_most;
        while Instant::now() < deadline {
            if self.running.lock().expect("running map lock").is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tracing::warn!(
            "operations still running at shutdown; they resume from their checkpoints on the next apply"
        );
    }
}
