//! The dry-run's rehearsal (PostgreSQL): what apply will run, run on staging.
//!
//! The first pass of a dry-run runs the whole plan in one transaction that is rolled back: its
//! `down`s are verified to restore schema and data while nothing is committed. That pass cannot
//! run `CONCURRENTLY` (it measures the transactional equivalent) and holds every step's locks
//! until the end, which apply's separate step transactions never do. So when the plan has more
//! than one step or a non-transactional statement, the rehearsal follows: the steps run on
//! staging exactly as apply runs them (each step's transactions committed, non-transactional
//! statements alone and for real, as the dry-run role), measured per step, then undone by the
//! `down`s the first pass verified, and staging is compared with what it was. Its measurements
//! replace the first pass's. A step PostgreSQL refuses outside a transaction (`CREATE INDEX
//! CONCURRENTLY` on a partitioned table) fails here, as it would in production.

use super::*;
use crate::db::{SandboxMode, SequenceMove};

/// What the rehearsal measured.
pub(super) struct Rehearsed {
    /// The schema before and after `up`, and per statement of each step it ran (final steps
    /// are not rehearsed: they have no `down`); with the probes and checks when it ran the
    /// whole dry-run.
    pub exercised: super::exercise::Exercised,
    /// Sequences its committed steps moved, and whether drydock put each back.
    pub sequences: Vec<SequenceMove>,
}

impl Engine {
    /// Whether what the rolled-back pass measured can differ from what apply runs: apply commits
    /// each step on its own and runs non-transactional statements for real.
    pub(super) fn needs_rehearsal(plan: &Plan) -> bool {
        let reversible: Vec<&Step> = plan.steps().iter().filter(|s| !s.is_final()).collect();
        reversible.len() > 1
            || reversible.iter().any(|s| {
                let name = s.name.as_deref().unwrap_or("step");
                [s.up.as_deref(), s.down.as_deref()].into_iter().any(|sql| {
                    Self::stmts(name, sql).is_ok_and(|st| st.iter().any(|x| !x.transactional))
                })
            })
    }

    /// Whether apply runs `step`'s `up` as more than one transaction (a non-transactional
    /// statement beside others).
    fn spans_transactions(step: &Step) -> bool {
        let name = step.name.as_deref().unwrap_or("step");
        Self::stmts(name, step.up.as_deref())
            .is_ok_and(|st| st.len() > 1 && st.iter().any(|x| !x.transactional))
    }

    /// Whether one transaction cannot hold the plan's round trip: an enum value added by `up`
    /// cannot be used until that transaction commits, and a `down` that moves rows off the
    /// value uses it (PostgreSQL: unsafe use of new value). Apply and rollback run them in
    /// separate transactions; so, from the start, does the dry-run.
    pub(super) fn commits_between_steps(plan: &Plan) -> bool {
        plan.analysis
            .statements
            .iter()
            .any(|f| f.kind == crate::analysis::StatementKind::AlterTypeAddValue)
    }

    /// Runs the plan's reversible steps on `staging` as apply runs them, then their `down`s, and
    /// verifies staging's schema and the touched tables' data are what they were; `whole`: the
    /// probes and the checks too, after `up` (a plan the rolled-back pass cannot run). `written`:
    /// the tables whose rows the rolled-back pass of the same SQL wrote — only those are hashed,
    /// the others' storage and columns are compared (`None`: every touched table is hashed).
    /// Holds the staging target's migration lock throughout: a rehearsal commits.
    pub(super) async fn rehearse(
        &self,
        plan: &Plan,
        staging: &Target,
        scratch: &std::path::Path,
        whole: bool,
        written: Option<&[String]>,
    ) -> Result<Rehearsed> {
        let lock = staging.lock().await?;
        let mut session = match staging.sandbox(scratch, SandboxMode::Committed).await {
            Ok(s) => s,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let exercised = Self::rehearse_on(plan, staging, &mut session, whole, written).await;
        let sequences = session.finish().await;
        // Undone, or given up on (the error says what staging holds): nothing for a later
        // dry-run to take back.
        let cleared = staging.clear_rehearsal(&plan.id).await;
        lock.release().await;
        cleared?;
        Ok(Rehearsed {
            exercised: exercised?,
            sequences,
        })
    }

    async fn rehearse_on(
        plan: &Plan,
        staging: &Target,
        session: &mut Sandbox,
        whole: bool,
        written: Option<&[String]>,
    ) -> Result<super::exercise::Exercised> {
        let before = session.fingerprint().await?;
        let touched = plan.existing_tables();
        let hashed: Vec<String> = match written {
            Some(w) => touched.iter().filter(|t| w.contains(t)).cloned().collect(),
            None => touched.clone(),
        };
        let data_before = session.content_hashes(&hashed).await?;
        let marks = session.data_marks(&touched).await?;
        let was = Was {
            marks: marks.as_ref(),
            hashed: &hashed,
            schema: &before,
            data: &data_before,
            tables: &touched,
        };
        let mut done: Vec<&Step> = Vec::new();
        let mut statements = Vec::new();
        for step in plan.steps().iter().filter(|s| !s.is_final()) {
            // Noted first: if drydock dies while the step is committed, the next dry-run on
            // this staging takes it back (`recover_rehearsals`).
            let name = step.name.as_deref().unwrap_or("step");
            if let Err(e) = staging.mark_rehearsal(&plan.id, name).await {
                let undone = Self::undo(session, plan, None, &done, &was).await;
                return Err(undone.err().map_or(e, |left| Error::RollbackUnverified {
                    detail: left,
                    why: Unverified::Schema,
                }));
            }
            // A step of several transactions may fail after committing part of itself: the
            // schema before it tells (a step of one transaction commits all or nothing).
            let at = if Self::spans_transactions(step) {
                Some(session.fingerprint().await?)
            } else {
                None
            };
            match Self::up_in_sandbox(session, plan, step, "dry-run up (rehearsal)").await {
                Ok(runs) => {
                    statements.extend(runs);
                    done.push(step);
                }
                Err(failed) => {
                    let partly = match &at {
                        Some(at) => session.fingerprint().await.map_or(true, |f| &f != at),
                        None => false,
                    };
                    let undone =
                        Self::undo(session, plan, partly.then_some(step), &done, &was).await;
                    return Err(failed_then(failed, undone));
                }
            }
        }
        let (mut probes, mut checks) = (vec![], vec![]);
        if whole {
            let target = session.target().to_string();
            let finals = plan.steps().iter().any(Step::is_final);
            let judged = async {
                probes = Self::probe_app(session, plan, &target).await?;
                if !finals {
                    checks = session.run_checks(&plan.body.checks).await?;
                    Self::checks_hold(&checks)?;
                }
                Ok::<(), Error>(())
            }
            .await;
            if let Err(failed) = judged {
                let undone = Self::undo(session, plan, None, &done, &was).await;
                return Err(failed_then(failed, undone));
            }
        }
        let after_up = session.fingerprint().await?;
        Self::undo(session, plan, None, &done, &was)
            .await
            .map_err(|left| Error::RollbackUnverified {
                detail: left,
                why: Unverified::Schema,
            })?;
        Ok(super::exercise::Exercised {
            before,
            after_up: Some(after_up),
            reversible_statements: statements.len(),
            statements,
            checks,
            probes,
            rehearsed: true,
            data_moved: hashed,
        })
    }

    /// Takes back what an interrupted rehearsal left committed on `staging` (drydock died in
    /// the middle of one): for each plan whose begun steps are noted there, their `down`s in
    /// reverse, as the dry-run role; then the notes go. Skipped while another rehearsal holds
    /// staging's migration lock (its notes are live). Returns what was done, for the warnings.
    pub(super) async fn recover_rehearsals(&self, staging: &Target) -> Result<Vec<String>> {
        let marks = staging.rehearsals().await?;
        if marks.is_empty() {
            return Ok(vec![]);
        }
        let Ok(lock) = staging.lock().await else {
            return Ok(vec![]);
        };
        let mut said = Vec::new();
        let mut plans: Vec<&str> = marks.iter().map(|(p, _)| p.as_str()).collect();
        plans.dedup();
        for id in plans {
            let begun: Vec<&str> = marks
                .iter()
                .filter(|(p, _)| p == id)
                .map(|(_, s)| s.as_str())
                .collect();
            said.push(match self.store.plan(id).await {
                Ok(plan) => self.take_back(&plan, staging, &begun).await,
                Err(e) => format!(
                    "staging held the begun steps {begun:?} of an interrupted rehearsal of plan `{id}`, which the store cannot give ({e}); nothing was run"
                ),
            });
            staging.clear_rehearsal(id).await?;
        }
        lock.release().await;
        Ok(said)
    }

    /// The `down`s of `begun` steps of `plan`, newest first, on a committing session; failures
    /// (of a step that never committed) are expected and only reported.
    async fn take_back(&self, plan: &Plan, staging: &Target, begun: &[&str]) -> String {
        let scratch = self.scratch_path(&plan.id);
        let mut session = match staging.sandbox(&scratch, SandboxMode::Committed).await {
            Ok(s) => s,
            Err(e) => {
                return format!(
                    "an interrupted rehearsal of plan `{}` could not be taken back: {e}",
                    plan.id
                );
            }
        };
        let mut failed = Vec::new();
        let mut lost = Vec::new();
        for step in plan.steps().iter().rev() {
            let name = step.name.as_deref().unwrap_or("step");
            if !begun.contains(&name) {
                continue;
            }
            if step.backfill.is_some() {
                lost.push(name.to_string());
            }
            if let Err(e) = Self::in_sandbox(
                &mut session,
                plan,
                name,
                step.down.as_deref(),
                "rehearsal recovery",
            )
            .await
            {
                failed.push(format!("`{name}`: {e}"));
            }
        }
        session.finish().await;
        let mut text = format!(
            "staging: a rehearsal of plan `{}` was interrupted with step(s) {} begun; drydock ran their `down`s",
            plan.id,
            begun
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !failed.is_empty() {
            text.push_str(&format!(
                " ({} failed, expected of a step that never committed: {})",
                failed.len(),
                failed.join("; ")
            ));
        }
        if !lost.is_empty() {
            text.push_str(&format!("; the values the backfill of {} overwrote on staging were saved in the interrupted session and are not put back", lost.join(", ")));
        }
        text
    }

    /// Undoes the rehearsed steps (`partly`: a failed step that committed part of itself,
    /// undone first, its own failures ignored: the comparison says whether it worked) and
    /// compares staging with what it was. `Err`: what is left, in words.
    async fn undo(
        session: &mut Sandbox,
        plan: &Plan,
        partly: Option<&Step>,
        done: &[&Step],
        was: &Was<'_>,
    ) -> std::result::Result<(), String> {
        let left = |what: String| {
            format!(
                "staging could not be put back as it was after the rehearsal ({what}): it now differs from production, and the next dry-run there is refused `staging-drift` until it is repaired (rebuild it from production, or run the plan's `down` there by hand)"
            )
        };
        if let Some(step) = partly {
            let _ = Self::down_in_sandbox(session, plan, step, "dry-run down (rehearsal)").await;
        }
        for step in done.iter().rev() {
            Self::down_in_sandbox(session, plan, step, "dry-run down (rehearsal)")
                .await
                .map_err(|e| left(e.to_string()))?;
        }
        let after = session
            .fingerprint()
            .await
            .map_err(|e| left(e.to_string()))?;
        let (after, before) = (comparable(plan, &after), comparable(plan, was.schema));
        if after != before {
            return Err(left(format!("its schema differs: {}", before.diff(&after))));
        }
        // Tables the same SQL did not write in the rolled-back pass: their storage and columns
        // are as they were (rows are not counted across transactions).
        if let Some(marks) = was.marks {
            let now = session
                .data_marks(was.tables)
                .await
                .map_err(|e| left(e.to_string()))?
                .unwrap_or_default();
            let moved: Vec<String> = marks
                .changed(&now)
                .into_iter()
                .filter(|t| !was.hashed.contains(t))
                .map(|t| format!("`{t}`"))
                .collect();
            if !moved.is_empty() {
                return Err(left(format!(
                    "the storage or columns of {} changed, which the rolled-back pass of the same SQL did not show",
                    moved.join(", ")
                )));
            }
        }
        let data = session
            .content_hashes(was.hashed)
            .await
            .map_err(|e| left(e.to_string()))?;
        let changed: Vec<String> = was
            .data
            .iter()
            .filter(|(t, h)| data.get(*t) != Some(*h))
            .map(|(t, _)| format!("`{t}`"))
            .collect();
        if !changed.is_empty() {
            return Err(left(format!(
                "the data of {} differs (a staging application writing meanwhile, or a `down` that does not restore what `up` committed)",
                changed.join(", ")
            )));
        }
        Ok(())
    }
}

/// Staging as it was before the rehearsal.
struct Was<'a> {
    schema: &'a crate::db::Fingerprint,
    /// The hashes of `hashed`.
    data: &'a BTreeMap<String, String>,
    hashed: &'a [String],
    /// Every touched table's marks (PostgreSQL).
    marks: Option<&'a crate::db::marks::DataMarks>,
    tables: &'a [String],
}

/// A rehearsal's failure, after its committed steps were taken back: the failure itself when
/// they were; when something was left, the rollback unverified, with the failure's lesson.
fn failed_then(failed: Error, undone: std::result::Result<(), String>) -> Error {
    match undone {
        Ok(()) => failed,
        Err(left) => Error::RollbackUnverified {
            detail: format!("{failed}; and then {left}"),
            why: Unverified::After {
                lesson: failed.lesson(),
            },
        },
    }
}
