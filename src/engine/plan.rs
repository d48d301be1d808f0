//! `plan`: a proposal rendered (from steps or a template), analysed against its target's catalog
//! and stored with its checklist, lessons and next steps.

use super::*;
use crate::db::{AgentUse, Catalog};

impl Engine {
    pub async fn plan(&self, req: PlanRequest, author: &Principal) -> Result<PlanOutcome> {
        self.plan_or_nothing(req, author).await?.ok_or_else(|| {
            Error::invalid(
                Part::Plan,
                "`desired` is what the target already has: nothing to change",
            )
        })
    }

    /// `plan`, or `None` when a `desired` schema is what the target already has (an answer,
    /// not a refusal: no plan is stored).
    pub async fn plan_or_nothing(
        &self,
        mut req: PlanRequest,
        author: &Principal,
    ) -> Result<Option<PlanOutcome>> {
        let target_cfg = self.config.target(&req.target)?;
        if req.goal.trim().is_empty() {
            return Err(Error::invalid(
                Part::Plan,
                "`goal` is empty: say what the change achieves",
            ));
        }
        let template = req.template.clone();
        let desired = req.desired.clone();
        let Some(Proposed {
            steps,
            mut checks,
            agent_sql,
            not_compared,
            opened,
            catalog,
        }) = self.propose(&mut req, author).await?
        else {
            return Ok(None);
        };
        checks.extend(req.checks);
        if self.config.group(&req.target).is_some() {
            super::rollout::refuse_gates(&steps)?;
        }
        let body = match Body::new(&req.target, steps, checks) {
            Ok(b) => Body {
                template,
                agent_sql,
                desired,
                ..b
            },
            Err(e) => return Err(self.learn(e, author, "plan", None).await),
        };
        if let Some(prev) = &req.supersedes {
            self.store.plan(prev).await?;
        }
        let target = match opened {
            Some(t) => t,
            None => self.open_config(target_cfg).await?,
        };
        let catalog = match catalog {
            Some(c) => c,
            None => target.catalog().await?,
        };
        let analysis = analysis::analyze(
            &body,
            &catalog,
            &self.config.policy,
            target_cfg.role == Role::Production,
        )?;
        let checksum = body.checksum();
        let plan = Plan {
            id: crate::plan::new_id(&checksum),
            checksum,
            goal: req.goal.trim().to_string(),
            target: req.target.clone(),
            author: author.name.clone(),
            urgency: req.urgency,
            status: Status::Planned,
            created_at: crate::store::now(),
            supersedes: req.supersedes,
            body,
            analysis: analysis.clone(),
        };
        self.store.insert_plan(&plan, author).await?;
        let checklist = self.checklist(&plan).await?;
        let codes: Vec<String> = analysis
            .hazards
            .iter()
            .map(|h| h.code.code().to_string())
            .collect();
        let tables: Vec<String> = analysis.impact.iter().map(|t| t.table.clone()).collect();
        let lessons = self.errors.relevant(&codes, &tables)?;
        let next_steps = next_steps(&plan, target_cfg.role, &checklist);
        let mut warnings = self.agent_sql_privileges(&plan.target).await;
        if let Some(w) = crate::engine::desired::not_compared(&not_compared) {
            warnings.push(w);
        }
        Ok(Some(PlanOutcome {
            source: plan.body.source(),
            plan_id: plan.id,
            checksum: plan.checksum,
            status: plan.status,
            target: plan.target,
            role: target_cfg.role,
            analysis,
            checklist,
            lessons,
            warnings,
            next_steps,
            omitted: Default::default(),
        }))
    }

    /// What `req` proposes, before it is a body: its steps and checks (the agent's own, a
    /// template's, or a desired schema's), or `None` when a desired schema is there already.
    async fn propose(&self, req: &mut PlanRequest, author: &Principal) -> Result<Option<Proposed>> {
        let target_cfg = self.config.target(&req.target)?;
        let mut out = Proposed::default();
        match (req.steps.take(), req.template.clone(), &req.desired) {
            (Some(_), Some(_), _) => {
                return Err(Error::invalid(
                    Part::Plan,
                    "give either `steps` or `template` + `params`, not both",
                ));
            }
            (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
                return Err(Error::invalid(
                    Part::Plan,
                    "give `desired` alone: not with `steps` or `template`",
                ));
            }
            (None, None, Some(d)) => {
                let t = self.open_config(target_cfg).await?;
                let r = match self.desired_steps(d, &req.target, &t).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(self.learn(e, author, "plan", None).await),
                };
                out.opened = Some(t);
                out.catalog = Some(r.catalog);
                (out.steps, out.checks) = (r.steps, r.checks);
                (out.agent_sql, out.not_compared) = (r.agent_sql, r.skipped);
            }
            (Some(steps), None, None) => {
                refuse_restores(&steps)?;
                out.steps = steps;
            }
            (None, Some(name), None) => {
                let params = req.params.take().unwrap_or(json!({}));
                // The target's engine decides how a template renders: opened for every one.
                let t = self.open_config(target_cfg).await?;
                // Read once: for the template (when it reads it) and the analysis.
                let catalog = t.catalog().await?;
                let r = self
                    .render_on(
                        &name,
                        params,
                        Some((req.target.as_str(), &t)),
                        Some(&catalog),
                    )
                    .await?;
                out.opened = Some(t);
                out.catalog = Some(catalog);
                (out.steps, out.checks, out.agent_sql) = (r.steps, r.checks, r.agent_sql);
            }
            (None, None, None) => {}
        }
        Ok(Some(out))
    }

    /// Renders a template; one that moves a column reads the column's indexes, constraints,
    /// identity and comment from `target` to carry them to the column's successor, and one
    /// that removes something reads its definition from `target`'s catalog for its `down`.
    pub async fn render(
        &self,
        name: &str,
        params: serde_json::Value,
        target: Option<&str>,
    ) -> Result<render::Rendered> {
        let opened = match target {
            Some(target) => {
                let cfg = self.config.target(target)?;
                Some((target, self.open_config(cfg).await?))
            }
            _ => None,
        };
        self.render_on(name, params, opened.as_ref().map(|(n, t)| (*n, t)), None)
            .await
    }

    /// `render` with the target (by name, opened) the template reads: a moved column's
    /// dependents, the catalog (for removals, row moves, and every template on SQLite).
    /// `known`: the target's catalog when the caller read it already (read here otherwise, for a
    /// template that reads it).
    pub(super) async fn render_on(
        &self,
        name: &str,
        params: serde_json::Value,
        on: Option<(&str, &Target)>,
        known: Option<&Catalog>,
    ) -> Result<render::Rendered> {
        let sqlite = on.is_some_and(|(_, t)| t.engine() == crate::sql::Dialect::Sqlite);
        let deps = match (render::moved_column(name, &params), on) {
            (Some((table, column)), Some((target, t))) if !sqlite => {
                let deps = t.column_dependents(&table, &column).await?;
                Some(deps.ok_or_else(|| Error::TemplateParams {
                    template: name.into(),
                    reason: format!("target `{target}` has no column {table}.{column}"),
                })?)
            }
            _ => None,
        };
        let reads = sqlite || render::reads_catalog(name);
        let read = match (on, known) {
            (Some((_, t)), None) if reads => Some(t.catalog().await?),
            _ => None,
        };
        let catalog = (on.is_some() && reads)
            .then(|| known.or(read.as_ref()))
            .flatten();
        let facts = render::Facts {
            deps: deps.as_ref(),
            catalog,
        };
        render::render(name, params, facts)
    }

    /// What drydock will refuse (`unsafe-role`) about the roles a plan on `target` would run its
    /// SQL as: in the dry-run (on the dry-run target) and at apply and validate (on `target`).
    /// Empty when nothing is, or when a target cannot be reached (the call that needs it says so).
    pub async fn agent_sql_privileges(&self, target: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let dry_run = self.config.dry_run_target(target).ok();
        let applied = self.config.target(target).ok();
        let asked = [
            dry_run.map(|c| (c, &[AgentUse::DryRun, AgentUse::Check][..])),
            applied.map(|c| (c, AgentUse::on(c.role))),
        ];
        for (cfg, uses) in asked.into_iter().flatten() {
            if let Ok(t) = self.open_config(cfg).await {
                for w in t.privilege_warnings(uses).await.unwrap_or_default() {
                    if !out.contains(&w) {
                        out.push(w);
                    }
                }
            }
        }
        out
    }

    pub async fn checklist(&self, plan: &Plan) -> Result<Vec<ChecklistItem>> {
        let role = self.config.target(&plan.target)?.role;
        let runs = self.store.runs(&plan.id).await?;
        let approvals = self.store.approvals(&plan.id).await?;
        let backup = self.store.latest_backup(&plan.target, &plan.id).await?;
        Ok(checklist::evaluate(&Evidence {
            plan,
            role,
            policy: &self.config.policy,
            runs: &runs,
            approvals: &approvals,
            backup: backup.as_ref(),
        }))
    }
}

/// What a plan request proposes, before it is a body (see `Engine::propose`).
#[derive(Default)]
struct Proposed {
    steps: Vec<Step>,
    checks: Vec<Check>,
    /// The agent's SQL inside a template's or a desired schema's steps.
    agent_sql: Vec<String>,
    /// What a desired schema held beside its tables, not compared.
    not_compared: Vec<String>,
    /// The target, when it was opened to render the steps (used again for the analysis).
    opened: Option<Target>,
    /// Its catalog, when it was read to render them (the analysis reads the same).
    catalog: Option<Catalog>,
}

/// What the agent should do next, given where the plan is.
pub fn next_steps(plan: &Plan, role: Role, checklist: &[ChecklistItem]) -> Vec<String> {
    let mut out = Vec::new();
    let held = |item: Item| checklist.iter().any(|i| i.item == item && i.holds());
    match plan.status {
        Status::Planned | Status::Tested | Status::Approved => {
            if checklist
                .iter()
                .any(|i| i.item == Item::RollbackReady && i.state == checklist::ItemState::Failed)
            {
                out.push("add a `down` to every step and submit a new plan".into());
            }
            if !held(Item::StagingTested) {
                out.push(format!(
                    "call `dry-run` with plan_id `{}` to test it on staging",
                    plan.id
                ));
            }
            if role == Role::Production && !held(Item::Approved) {
                out.push(format!(
                    "ask an engineer to review and run `drydock approve {} --by NAME`",
                    plan.id
                ));
            }
            if role != Role::Production
                || checklist::unmet(checklist)
                    .iter()
                    .all(|i| i.item == Item::BackupVerified)
            {
                out.push(format!("call `apply` with plan_id `{}`", plan.id));
            }
        }
        Status::Applying => out.push(format!(
            "call `apply` with plan_id `{}` to continue, or `status` to see the gated step",
            plan.id
        )),
        Status::Halted => out.push(format!(
            "the rollout halted at a failed member (see `status` members): fix the cause and call `apply` with plan_id `{}` to resume, or `rollback` to reverse the applied members",
            plan.id
        )),
        Status::Applied => out.push(format!("call `validate` with plan_id `{}`", plan.id)),
        Status::Validated => {
            out.push("done; `rollback` stays available within the rollback window".into())
        }
        Status::RolledBack | Status::Rejected => {
            out.push("make a new plan (`plan`) if the change is still wanted".into())
        }
    }
    out
}

impl Engine {
    /// The analysis of a SQL file against a target's catalog, as `drydock lint` reports it:
    /// nothing is stored. A lint file has no `down`, so the step-level irreversible rule is
    /// silenced with a placeholder.
    /// What a hazard's rule measures and where it is documented (`drydock lint --explain`).
    pub fn explain(rule: crate::plan::analysis::Rule) -> analysis::rules::Explanation {
        analysis::rules::explain(rule)
    }

    pub async fn lint(&self, target: &str, name: &str, sql: String) -> Result<analysis::Analysis> {
        let cfg = self.config.target(target)?;
        let t = self.open_config(cfg).await?;
        let catalog = t.catalog().await?;
        let step = Step {
            name: Some(name.to_string()),
            up: Some(sql),
            down: Some("-- lint".into()),
            backfill: None,
            gate: None,
            restore: None,
        };
        let body = Body::new(target, vec![step], vec![])?;
        analysis::analyze(
            &body,
            &catalog,
            &self.config.policy,
            cfg.role == Role::Production,
        )
    }
}

/// A step's `restore` is what drydock's drop templates write (see `crate::plan::Restore`): an
/// agent's steps carrying one are refused.
fn refuse_restores(steps: &[Step]) -> Result<()> {
    match steps.iter().find(|s| s.restore.is_some()) {
        Some(s) => Err(Error::invalid(
            Part::Step,
            format!(
                "step `{}` has `restore`, which only drydock's drop templates write; put the values back in the step's `down`",
                s.name.as_deref().unwrap_or("step")
            ),
        )),
        None => Ok(()),
    }
}
