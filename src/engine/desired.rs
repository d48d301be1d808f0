//! A desired schema made into steps: compared with the target's catalog (`desired`), each
//! difference rendered with its template (reading the target as the template reads it) or
//! written as drydock's own step, numbered in plan order, the final steps (after the rollback
//! window) last. `plan` stores them as one plan; `diff` shows them without storing anything.

use serde::Serialize;

use super::*;
use crate::analysis::privilege::Use;
use crate::plan::Desired;

/// The steps a desired schema makes, before they are a plan.
pub struct DesiredSteps {
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    /// The agent's text inside them (defaults, CHECKs, a new table's DDL): a failure of a step
    /// that carries it is the agent's lesson.
    pub agent_sql: Vec<String>,
    /// What `desired` holds beside its tables, not compared (a whole schema file's functions,
    /// views, grants, comments), described.
    pub skipped: Vec<String>,
    /// The catalog the steps were planned from (the analysis reads the same).
    pub catalog: crate::db::Catalog,
}

/// The differences a desired schema has from the target, before they are steps.
struct Changes {
    changes: Vec<crate::desired::Change>,
    /// What `desired` holds beside its tables, not compared.
    skipped: Vec<String>,
    /// The target's catalog they were found in.
    catalog: crate::db::Catalog,
}

/// A piece of `desired` the statement gate refuses.
fn refused(f: crate::analysis::privilege::Forbidden) -> Error {
    Error::Forbidden {
        place: "`desired`".into(),
        construct: format!("`{}`", f.construct),
        reason: f.reason,
    }
}

/// What a plan's reader is told of the statements `desired` held beside its tables.
pub(super) fn not_compared(skipped: &[String]) -> Option<String> {
    const SHOWN: usize = 5;
    if skipped.is_empty() {
        return None;
    }
    let mut shown: Vec<&str> = skipped.iter().take(SHOWN).map(String::as_str).collect();
    let more = skipped.len().saturating_sub(SHOWN);
    if more > 0 {
        shown.push("…");
    }
    Some(format!(
        "`desired` holds {} statement(s) beside its tables that drydock does not compare or plan (only tables, their constraints, defaults and indexes are): {}{}",
        skipped.len(),
        shown.join("; "),
        if more > 0 {
            format!(" ({more} more)")
        } else {
            String::new()
        }
    ))
}

/// What `drydock diff` prints: the steps and their hazards, nothing stored.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredDiff {
    pub steps: Vec<DiffStep>,
    pub hazards: Vec<crate::plan::analysis::Hazard>,
    /// What `desired` held beside its tables, not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
    /// The whole analysis of the steps (`lint --desired` prints it as `lint` does).
    #[serde(skip)]
    pub analysis: crate::plan::analysis::Analysis,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffStep {
    pub name: String,
    pub up: Option<String>,
    pub down: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::plan::Gate>,
}

impl Engine {
    /// The steps that take `target` (opened) to `d`; `None` when it is there already.
    pub(super) async fn desired_steps(
        &self,
        d: &Desired,
        target_name: &str,
        target: &Target,
    ) -> Result<Option<DesiredSteps>> {
        let options = crate::desired::Options {
            renames: d.renames.clone(),
            allow_drop: d.allow_drop,
            whole_schema: d.whole_schema,
        };
        let compared = match target.engine() {
            Dialect::Postgres => Self::postgres_changes(d, target, &options).await?,
            Dialect::Sqlite => Self::sqlite_changes(d, target, &options).await?,
        };
        if compared.changes.is_empty() {
            return Ok(None);
        }
        let out = DesiredSteps {
            steps: vec![],
            checks: vec![],
            agent_sql: vec![],
            skipped: compared.skipped,
            catalog: compared.catalog,
        };
        Ok(Some(
            self.render_changes(compared.changes, out, (target_name, target))
                .await?,
        ))
    }

    /// On PostgreSQL: the desired DDL read through pg_query beside the target's catalog.
    async fn postgres_changes(
        d: &Desired,
        target: &Target,
        options: &crate::desired::Options,
    ) -> Result<Changes> {
        let read = crate::desired::read(&d.sql)?;
        // The agent's DDL that drydock plans from is admitted as agent SQL before drydock
        // writes anything from it (what a schema file holds beside its tables never runs).
        crate::analysis::privilege::postgres(&read.planned_sql(), Use::Step).map_err(refused)?;
        let catalog = target.catalog().await?;
        let compared = crate::desired::compare_with(read, &catalog, d.whole_schema)?;
        Ok(Changes {
            changes: crate::desired::changes(&compared.wanted, &compared.current, options)?,
            skipped: compared.skipped,
            catalog,
        })
    }

    /// On SQLite: the desired DDL read by SQLite itself, in memory, beside the target's catalog.
    async fn sqlite_changes(
        d: &Desired,
        target: &Target,
        options: &crate::desired::Options,
    ) -> Result<Changes> {
        let read = crate::desired::sqlite::read(&d.sql)?;
        // Admitted as agent SQL before SQLite reads it (in memory) or drydock writes from it.
        for statement in &read.ddl {
            crate::analysis::privilege::sqlite(statement, Use::Step).map_err(refused)?;
        }
        let wanted = crate::db::sqlite::Sqlite::catalog_of(&read.ddl).await?;
        let catalog = target.catalog().await?;
        Ok(Changes {
            changes: crate::desired::sqlite::changes(&read, &wanted, &catalog, options)?,
            skipped: read.set_aside(),
            catalog,
        })
    }

    /// Each change rendered (a template, reading `target` as it reads it) or taken as the step
    /// drydock wrote, numbered in plan order; the steps after the rollback window last.
    async fn render_changes(
        &self,
        changes: Vec<crate::desired::Change>,
        mut out: DesiredSteps,
        (target_name, target): (&str, &Target),
    ) -> Result<DesiredSteps> {
        for (i, change) in changes.into_iter().enumerate() {
            let n = i + 1;
            match change {
                crate::desired::Change::Template { name, params } => {
                    let r = self
                        .render_on(
                            name,
                            params,
                            Some((target_name, target)),
                            Some(&out.catalog),
                        )
                        .await?;
                    out.agent_sql.extend(r.agent_sql);
                    out.steps.extend(r.steps.into_iter().map(|mut s| {
                        s.name = Some(format!("{n}-{}", s.name.unwrap_or_default()));
                        s
                    }));
                    out.checks.extend(r.checks.into_iter().map(|mut c| {
                        c.name = format!("{n}-{}", c.name);
                        c
                    }));
                }
                crate::desired::Change::Step { name, up, down } => {
                    out.agent_sql.push(up.clone());
                    out.steps.push(Step {
                        name: Some(format!("{n}-{name}")),
                        up: Some(up),
                        down: Some(down),
                        backfill: None,
                        gate: None,
                        restore: None,
                    });
                }
            }
        }
        // Steps that run after the rollback window (a drop's purge) go last, in their order.
        let (finals, rest): (Vec<Step>, Vec<Step>) =
            out.steps.into_iter().partition(Step::is_final);
        out.steps = rest.into_iter().chain(finals).collect();
        Ok(out)
    }

    /// The steps a desired schema makes on `target`, with their hazards, stored nowhere;
    /// `None` when the target is there already.
    pub async fn diff_desired(&self, target: &str, d: &Desired) -> Result<Option<DesiredDiff>> {
        let cfg = self.config.target(target)?;
        let t = self.open_config(cfg).await?;
        let Some(r) = self.desired_steps(d, target, &t).await? else {
            return Ok(None);
        };
        let body = Body {
            agent_sql: r.agent_sql,
            desired: Some(d.clone()),
            ..Body::new(target, r.steps, r.checks)?
        };
        let analysis = analysis::analyze(
            &body,
            &r.catalog,
            &self.config.policy,
            cfg.role == Role::Production,
        )?;
        Ok(Some(DesiredDiff {
            steps: body
                .steps
                .iter()
                .map(|s| DiffStep {
                    name: s.name.clone().unwrap_or_default(),
                    up: s.up.clone(),
                    down: s.down.clone(),
                    gate: s.gate.clone(),
                })
                .collect(),
            hazards: analysis.hazards.clone(),
            not_compared: not_compared(&r.skipped),
            analysis,
        }))
    }
}
