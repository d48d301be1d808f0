//! The plan exercised in a sandbox on a non-production target — up, checks, down, the schema
//! and the data compared, up again — as the dry-run's rolled-back pass and the rehearsal run it.

use super::*;

impl Engine {
    /// up, checks, down (in reverse), fingerprint equality, up again — on a scratch copy. Final
    /// steps (run after the rollback window, no `down`) are left out of the round trip: the
    /// steps before them are verified, then the final ones run, and the checks after them (the
    /// checks describe the plan's end). `rehearsed_next`: a rehearsal follows, which runs the
    /// steps' `up` again for real (as apply runs them) and verifies its own undo, so this pass
    /// leaves `up` again to it — an index built a third time is most of such a dry-run — and its
    /// schema after `up` is the rehearsal's.
    pub(super) async fn exercise(
        &self,
        plan: &Plan,
        copy: &mut Sandbox,
        target: &str,
        rehearsed_next: bool,
    ) -> Result<Exercised> {
        let before = copy.fingerprint().await?;
        // Rollback must restore the data of the tables the plan touches, not only their shape.
        // Where the marks count the rows this transaction writes, no row is read now: after
        // `down` the tables whose marks moved are read, then read again as they were before
        // `up` (rewound to here). Elsewhere (SQLite) every touched table is hashed now.
        let touched = plan.existing_tables();
        let data_before = match copy.data_marks(&touched).await? {
            Some(marks) if marks.count_rows() => {
                copy.rewind_point().await?;
                DataBefore::Marked(marks)
            }
            _ => DataBefore::Hashed(copy.content_hashes(&touched).await?),
        };
        let reversible: Vec<&Step> = plan.steps().iter().filter(|s| !s.is_final()).collect();
        let mut statements = Vec::new();
        for step in &reversible {
            statements.extend(Self::up_in_sandbox(copy, plan, step, "dry-run up").await?);
        }
        // What the application will hit once these steps are applied.
        let mut probes = Self::probe_app(copy, plan, target).await?;
        // The checks describe the plan's end: with final steps, they run after those.
        let finals = reversible.len() < plan.steps().len();
        let mut checks = vec![];
        if !finals {
            checks = copy.run_checks(&plan.body.checks).await?;
            Self::checks_hold(&checks)?;
        }
        for step in reversible.iter().rev() {
            Self::down_in_sandbox(copy, plan, step, "dry-run down").await?;
        }
        Self::schema_restored(plan, &reversible, &before, &copy.fingerprint().await?)?;
        // Marked: the tables whose marks moved are hashed as `down` left them now, and as they
        // were before `up` at the end, rewound to the savepoint — after `up` again and the final
        // steps, so that no lock `up` holds is let go while it still has work to do here.
        let (data_moved, pending) = match data_before {
            DataBefore::Hashed(before) => {
                let after = copy.content_hashes(&touched).await?;
                self.data_restored(target, &before, &after).await?;
                (touched.clone(), None)
            }
            DataBefore::Marked(marks) => {
                let now = copy.data_marks(&touched).await?.unwrap_or_default();
                let moved = marks.changed(&now);
                let pending = if moved.is_empty() {
                    None
                } else {
                    Some(copy.content_hashes(&moved).await?)
                };
                (moved, pending)
            }
        };
        let again = finals || !rehearsed_next;
        let rest = async {
            if !again {
                return Ok((vec![], None));
            }
            for step in &reversible {
                Self::up_in_sandbox(copy, plan, step, "dry-run up (again)").await?;
            }
            let mut finals_run = vec![];
            if finals {
                for step in plan.steps().iter().filter(|s| s.is_final()) {
                    finals_run.extend(Self::up_in_sandbox(copy, plan, step, "dry-run up").await?);
                }
                probes = Self::probe_app(copy, plan, target).await?;
                checks = copy.run_checks(&plan.body.checks).await?;
                Self::checks_hold(&checks)?;
            }
            let after_up = copy.fingerprint().await?;
            Ok::<_, Error>((finals_run, Some(after_up)))
        }
        .await;
        // A difference in the data explains a later failure (`up` again meeting what `down`
        // left): it is told first.
        if let Some(after) = pending {
            copy.rewind().await?;
            let before = copy.content_hashes(&data_moved).await?;
            self.data_restored(target, &before, &after).await?;
        }
        let (finals_run, after_up) = rest?;
        let reversible_statements = statements.len();
        statements.extend(finals_run);
        Ok(Exercised {
            before,
            after_up,
            statements,
            checks,
            probes,
            reversible_statements,
            rehearsed: false,
            data_moved,
        })
    }

    /// `Ok` when every reversible step has a way back and the schema after their `down`s is
    /// the one before their `up`s.
    fn schema_restored(
        plan: &Plan,
        reversible: &[&Step],
        before: &crate::db::Fingerprint,
        after_down: &crate::db::Fingerprint,
    ) -> Result<()> {
        if !reversible
            .iter()
            .all(|s| s.down.is_some() || s.backfill.is_some())
        {
            return Err(Error::RollbackUnverified {
                detail: "a step has no `down`, so rollback cannot be verified".into(),
                why: Unverified::NoDown,
            });
        }
        let (was, now) = (comparable(plan, before), comparable(plan, after_down));
        if now != was {
            return Err(Error::RollbackUnverified {
                detail: format!(
                    "the schema after `down` differs from the schema before `up` ({})",
                    was.diff(&now)
                ),
                why: Unverified::Schema,
            });
        }
        Ok(())
    }

    /// `Ok` when every table hashed `before` hashes the same `after`; else the rollback is not
    /// verified, naming the tables and, where they have triggers, those (which may have
    /// written what `down` does not restore: the lesson is theirs then, not `down`'s shape).
    async fn data_restored(
        &self,
        target: &str,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) -> Result<()> {
        let changed: Vec<&String> = before
            .iter()
            .filter(|(t, h)| after.get(*t) != Some(*h))
            .map(|(t, _)| t)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let catalog = match self.open_target(target).await {
            Ok(t) => t.catalog().await.ok(),
            Err(_) => None,
        };
        let triggers: Vec<String> = changed
            .iter()
            .filter_map(|t| Some((t, catalog.as_ref()?.tables.get(*t)?)))
            .flat_map(|(t, info)| info.triggers.iter().map(move |g| format!("{t}.{g}")))
            .collect();
        let fired = if triggers.is_empty() {
            String::new()
        } else {
            format!(
                " — its triggers fire on every row `up` writes and may write columns of their own ({})",
                triggers
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(Error::RollbackUnverified {
            detail: format!(
                "the data of {} after `down` differs from before `up` (content hash on the staging copy){fired}: `down` must put back every value `up` changed; to overwrite values, use a `backfill` step, whose old values drydock saves and restores",
                changed
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            why: Unverified::Data { triggers },
        })
    }

    /// A step's `down` in the sandbox, a backfill's saved values put back first.
    pub(super) async fn down_in_sandbox(
        sandbox: &mut Sandbox,
        plan: &Plan,
        step: &Step,
        phase: &'static str,
    ) -> Result<Vec<StatementRun>> {
        let name = step.name.as_deref().unwrap_or("step");
        if let Some(spec) = &step.backfill {
            sandbox
                .backfill_restore(name, spec, &overwritten(spec)?)
                .await?;
        }
        Self::in_sandbox(sandbox, plan, name, step.down.as_deref(), phase).await
    }

    /// Probes what the application will hit on the plan's tables (`app-probe-failed` naming
    /// the first object that fails).
    pub(super) async fn probe_app(
        copy: &mut Sandbox,
        plan: &Plan,
        target: &str,
    ) -> Result<Vec<crate::db::AppProbe>> {
        let probes = copy.probe_app(&plan.tables(), &plan.sql_text()).await?;
        match probes
            .iter()
            .find(|p| p.outcome == crate::db::ProbeOutcome::Failed)
        {
            Some(p) => Err(Error::AppProbeFailed {
                target: target.to_string(),
                object: p.object.clone(),
                detail: p.detail.clone().unwrap_or_default(),
            }),
            None => Ok(probes),
        }
    }

    pub(super) fn checks_hold(checks: &[crate::db::CheckOutcome]) -> Result<()> {
        match checks.iter().find(|c| !c.passed) {
            Some(c) => Err(Error::CheckFailed {
                name: c.name.clone(),
                detail: format!(
                    "expected {}, observed {} (after `up` on the staging copy)",
                    c.expect, c.observed
                ),
            }),
            None => Ok(()),
        }
    }

    /// A step's `up` in the sandbox; a backfill runs as one UPDATE inside the sandbox's
    /// transaction, and says so.
    pub(super) async fn up_in_sandbox(
        sandbox: &mut Sandbox,
        plan: &Plan,
        step: &Step,
        phase: &'static str,
    ) -> Result<Vec<StatementRun>> {
        let name = step.name.as_deref().unwrap_or("step");
        match &step.backfill {
            None => Self::in_sandbox(sandbox, plan, name, step.up.as_deref(), phase).await,
            Some(b) => {
                // The values it overwrites are saved first, as apply saves them batch by batch,
                // so that `down` restores them and the dry-run verifies it.
                sandbox.backfill_save(name, b, &overwritten(b)?).await?;
                let stmt = Stmt {
                    sql: analysis::backfill_sql(b),
                    transactional: true,
                };
                let target = sandbox.target().to_string();
                let mut runs = sandbox
                    .execute(name, std::slice::from_ref(&stmt))
                    .await?
                    .map_err(|f| Self::sql_failed(plan, &target, phase, name, f))?;
                for r in &mut runs {
                    r.note = Some("backfill: measured as one statement; apply runs it in keyset batches, each its own transaction".into());
                }
                Ok(runs)
            }
        }
    }

    pub(super) async fn in_sandbox(
        sandbox: &mut Sandbox,
        plan: &Plan,
        step: &str,
        sql: Option<&str>,
        phase: &'static str,
    ) -> Result<Vec<StatementRun>> {
        let stmts = Self::stmts(step, sql)?;
        let target = sandbox.target().to_string();
        sandbox
            .execute(step, &stmts)
            .await?
            .map_err(|f| Self::sql_failed(plan, &target, phase, step, f))
    }
}

pub(super) struct Exercised {
    pub(super) before: crate::db::Fingerprint,
    /// The schema after `up` (a pass that leaves `up` again to the rehearsal has none of its
    /// own: the rehearsal's replaces it).
    pub(super) after_up: Option<crate::db::Fingerprint>,
    pub(super) statements: Vec<StatementRun>,
    pub(super) checks: Vec<crate::db::CheckOutcome>,
    /// What the application will hit, probed after `up`.
    pub(super) probes: Vec<crate::db::AppProbe>,
    /// How many of `statements` are the reversible steps' (the final steps' follow).
    pub(super) reversible_statements: usize,
    /// The reversible steps' statements were measured by the rehearsal (run as apply runs them).
    pub(super) rehearsed: bool,
    /// The touched tables whose rows `up` and `down` may have written (their marks moved, or
    /// every touched table where there are no marks): those a rehearsal of the same SQL hashes.
    pub(super) data_moved: Vec<String>,
}

impl Exercised {
    /// The rehearsal's measurements in place of the rolled-back pass's, for the steps it ran
    /// (final steps keep the first pass's: they are not rehearsed), and its schema after `up`
    /// where the pass has none (it left `up` again to the rehearsal).
    pub(super) fn rehearsed(mut self, rehearsal: Exercised) -> Exercised {
        let finals = self.statements.split_off(self.reversible_statements);
        Exercised {
            reversible_statements: rehearsal.statements.len(),
            statements: rehearsal.statements.into_iter().chain(finals).collect(),
            rehearsed: true,
            after_up: self.after_up.or(rehearsal.after_up),
            ..self
        }
    }
}

/// What a dry-run keeps of the touched tables' data before `up`: their rows hashed, or only
/// their marks (the rows are read after `down`, where the marks moved, and as they were before
/// `up` by rewinding to a savepoint).
enum DataBefore {
    Hashed(BTreeMap<String, String>),
    Marked(crate::db::marks::DataMarks),
}
