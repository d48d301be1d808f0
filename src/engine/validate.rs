//! `validate`: the plan's checks, integrity, drift from the dry-run's schema and the target's
//! history, after an apply.

use super::*;

impl Engine {
    pub async fn validate(&self, plan_id: &str, agent: &Principal) -> Result<ValidateReport> {
        let plan = self.load(plan_id, agent, "validate").await?;
        let result = self.validate_plan(&plan, agent).await;
        self.learned(result, agent, "validate", Some(&plan)).await
    }

    pub(super) async fn validate_plan(
        &self,
        plan: &Plan,
        agent: &Principal,
    ) -> Result<ValidateReport> {
        if self.config.group(&plan.target).is_some() {
            require(plan, "validate", Status::touched_target, "applied")?;
            return self.validate_rollout(plan, agent).await;
        }
        // Opened once, for the reconcile and the validation; a refusal by status comes first.
        let target = self.open_target(&plan.target).await;
        if let Ok(t) = &target {
            self.reconcile_if_idle(plan, t, agent).await?;
        }
        let plan = &self.store.plan(&plan.id).await?;
        require(plan, "validate", Status::touched_target, "applied")?;
        let started_at = crate::store::now();
        let t0 = Instant::now();
        let target = target?;
        admit(plan, &target).await?;
        let checks = target.run_checks(&plan.body.checks).await?;
        let runs = self.store.runs(&plan.id).await?;
        let dry = runs
            .iter()
            .rev()
            .find(|r| r.kind == RunKind::DryRun && r.ok && r.checksum == plan.checksum);
        let current = target.fingerprint().await?;
        let pre_apply = pre_apply_lines(&runs);
        let mut integrity = integrity_checks(&target, pre_apply.as_deref()).await?;
        let lines = |l: Option<Vec<String>>| {
            l.map(|l| comparable(plan, &crate::db::Fingerprint::from_lines(l)).lines)
        };
        let drift = schema_change_check(
            lines(dry.and_then(|d| d.detail.fingerprint_before_lines.clone())),
            lines(dry.and_then(|d| d.detail.fingerprint_after_up_lines.clone())),
            lines(pre_apply),
            &comparable(plan, &current),
            plan.status == Status::Applying,
        );
        integrity.push(drift);
        integrity.push(app_probes(&target, plan).await);
        integrity.push(self.history_check(plan, &target).await?);
        if let Some(check) = self.repository_check(plan, &target).await? {
            integrity.push(check);
        }
        let tables = plan.tables();
        let row_counts = target.row_counts(&tables).await?;
        let failures = failures(&checks, &integrity);
        let ok = failures.is_empty();
        let report = ValidateReport {
            plan_id: plan.id.clone(),
            ok,
            status: if ok && plan.status != Status::Applying {
                Status::Validated
            } else {
                plan.status
            },
            checks,
            builtin: integrity,
            row_counts,
        };
        self.record_validation(
            plan,
            report,
            failures,
            (started_at, t0),
            agent,
            json!({"ok": ok}),
        )
        .await
    }

    /// Records a validation's run (and `validated` when it passed an applied plan); a failed one
    /// is returned as the error naming every failure.
    pub(super) async fn record_validation(
        &self,
        plan: &Plan,
        report: ValidateReport,
        failures: Vec<String>,
        (started_at, t0): (String, Instant),
        agent: &Principal,
        audit: serde_json::Value,
    ) -> Result<ValidateReport> {
        let ok = report.ok;
        self.store
            .commit(Change {
                plan_id: &plan.id,
                status: (ok && plan.status == Status::Applied)
                    .then_some((&[Status::Applied][..], Status::Validated)),
                run: Some(NewRun {
                    kind: RunKind::Validate,
                    target: &plan.target,
                    checksum: &plan.checksum,
                    ok,
                    started_at,
                    duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    detail: RunDetail::of(&report),
                }),
                audit: Audit::new(agent, "validate", audit),
                ..Change::default()
            })
            .await?;
        if !ok {
            return Err(Error::ValidationFailed {
                plan: plan.id.clone(),
                failures: failures.join("; "),
            });
        }
        Ok(report)
    }
}

/// What failed, as the engineer reads it: each failed check, then each failed built-in check
/// (a skipped one neither passes nor fails).
pub(super) fn failures(
    checks: &[crate::db::CheckOutcome],
    builtin: &[BuiltinCheck],
) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(check_failure)
        .chain(
            builtin
                .iter()
                .filter(|c| !c.passed && !c.skipped)
                .map(|c| format!("{}: {}", c.name, c.detail)),
        )
        .collect()
}

/// A failed check: what it expected and what it saw.
pub(super) fn check_failure(c: &crate::db::CheckOutcome) -> String {
    format!(
        "check `{}` expected {} but observed {}",
        c.name, c.expect, c.observed
    )
}

/// The target's schema before the plan's first step was applied, as the first successful apply
/// run recorded it.
pub(super) fn pre_apply_lines(runs: &[crate::store::RunRow]) -> Option<Vec<String>> {
    // The latest `pre-apply` record (taken when no step was applied); stores written before it
    // existed kept the fingerprint in the first applied step's run.
    runs.iter()
        .rev()
        .find(|r| r.kind == RunKind::PreApply)
        .or_else(|| {
            runs.iter().find(|r| {
                r.kind == RunKind::Apply && r.ok && r.detail.fingerprint_before_lines.is_some()
            })
        })
        .and_then(|r| r.detail.fingerprint_before_lines.clone())
}

/// Whether the target changed exactly as the dry-run changed staging: the schema lines the
/// apply added and removed equal those the dry-run's `up` added and removed. Comparing changes,
/// not whole schemas, tolerates differences staging had before (a staging is rarely a perfect
/// copy) while catching an apply that did something else. Without the dry-run's starting schema
/// (evidence recorded before drydock kept it) the whole post-up schema is compared.
pub(super) fn schema_change_check(
    dry_before: Option<Vec<String>>,
    dry_after: Option<Vec<String>>,
    pre_apply: Option<Vec<String>>,
    current: &crate::db::Fingerprint,
    steps_pending: bool,
) -> BuiltinCheck {
    use std::collections::BTreeSet;
    let check = |passed: bool, skipped: bool, detail: String| BuiltinCheck {
        name: "schema-matches-dry-run".into(),
        passed,
        skipped,
        detail,
    };
    let Some(dry_after) = dry_after else {
        return check(
            false,
            true,
            "skipped: no passing dry-run of this checksum to compare with".into(),
        );
    };
    if steps_pending {
        return check(
            false,
            true,
            "skipped: steps are still pending, so the schema is between the dry-run's states"
                .into(),
        );
    }
    let now: BTreeSet<&String> = current.lines.iter().collect();
    match (dry_before, pre_apply) {
        (Some(dry_before), Some(pre_apply)) => {
            let (db, da): (BTreeSet<&String>, BTreeSet<&String>) =
                (dry_before.iter().collect(), dry_after.iter().collect());
            let pa: BTreeSet<&String> = pre_apply.iter().collect();
            let expected_added: BTreeSet<&&String> = da.difference(&db).collect();
            let expected_removed: BTreeSet<&&String> = db.difference(&da).collect();
            let added: BTreeSet<&&String> = now.difference(&pa).collect();
            let removed: BTreeSet<&&String> = pa.difference(&now).collect();
            if added == expected_added && removed == expected_removed {
                check(
                    true,
                    false,
                    format!(
                        "the target changed exactly as the dry-run did ({} schema line(s) added, {} removed)",
                        added.len(),
                        removed.len()
                    ),
                )
            } else {
                let diff = |label: &str, a: &BTreeSet<&&String>, b: &BTreeSet<&&String>| {
                    a.difference(b)
                        .take(5)
                        .map(|l| format!("{label}{l}"))
                        .collect::<Vec<_>>()
                };
                let detail = [
                    diff("unexpected +", &added, &expected_added),
                    diff("missing +", &expected_added, &added),
                    diff("unexpected -", &removed, &expected_removed),
                    diff("missing -", &expected_removed, &removed),
                ]
                .concat()
                .join("; ");
                check(
                    false,
                    false,
                    format!("drift: the target did not change as the dry-run did: {detail}"),
                )
            }
        }
        _ => {
            let expected = crate::db::Fingerprint::from_lines(dry_after);
            if expected == *current {
                check(
                    true,
                    false,
                    "the schema equals the dry-run's post-up schema".into(),
                )
            } else {
                check(
                    false,
                    false,
                    format!(
                        "drift from the dry-run's post-up schema: {}",
                        expected.diff(current)
                    ),
                )
            }
        }
    }
}

/// Invalid indexes and unvalidated constraints the plan left (those that predate it are named
/// but pass), or the engine's integrity checks.
/// The dry-run's probes of what the application will hit, run on the target (`app-probes`):
/// failed when one fails (`app-probe-failed: …` naming it), skipped when the probes could not run.
async fn app_probes(target: &Target, plan: &Plan) -> BuiltinCheck {
    let check = |passed: bool, skipped: bool, detail: String| BuiltinCheck {
        name: "app-probes".into(),
        passed,
        skipped,
        detail,
    };
    let probes = match target.probe_app(&plan.tables(), &plan.sql_text()).await {
        Ok(p) => p,
        Err(e) => return check(false, true, format!("could not probe: {e}")),
    };
    let failed: Vec<String> = probes
        .iter()
        .filter(|p| p.outcome == crate::db::ProbeOutcome::Failed)
        .map(|p| {
            format!(
                "app-probe-failed: {}: {}",
                p.object,
                p.detail.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if !failed.is_empty() {
        return check(false, false, failed.join("; "));
    }
    let passed = probes
        .iter()
        .filter(|p| p.outcome == crate::db::ProbeOutcome::Passed)
        .map(|p| p.object.as_str())
        .collect::<Vec<_>>();
    let skipped = probes
        .iter()
        .filter(|p| p.outcome == crate::db::ProbeOutcome::Skipped)
        .map(|p| format!("{} ({})", p.object, p.detail.as_deref().unwrap_or_default()))
        .collect::<Vec<_>>();
    let mut detail = if passed.is_empty() {
        "no trigger or view on the plan's tables to probe".to_string()
    } else {
        format!("passed: {}", passed.join("; "))
    };
    if !skipped.is_empty() {
        detail.push_str(&format!("; skipped: {}", skipped.join("; ")));
    }
    check(true, false, detail)
}

async fn integrity_checks(
    target: &Target,
    pre_apply: Option<&[String]>,
) -> Result<Vec<BuiltinCheck>> {
    let (predated, left): (Vec<_>, Vec<_>) = target
        .integrity()
        .await?
        .into_iter()
        .partition(|p| pre_apply.is_some_and(|l| p.predates(l)));
    let mut checks: Vec<BuiltinCheck> = left
        .into_iter()
        .map(|problem| BuiltinCheck {
            name: "integrity".into(),
            passed: false,
            skipped: false,
            detail: problem.detail,
        })
        .collect();
    if checks.is_empty() {
        let mut detail = match target.engine() {
            Dialect::Postgres => {
                "no invalid index, no unvalidated (NOT VALID) constraint left by the plan"
            }
            Dialect::Sqlite => "integrity_check ok; foreign_key_check clean",
        }
        .to_string();
        if !predated.is_empty() {
            let before: Vec<String> = predated.into_iter().map(|p| p.detail).collect();
            detail.push_str(&format!(
                " (before the plan already: {})",
                before.join("; ")
            ));
        }
        checks.push(BuiltinCheck {
            name: "integrity".into(),
            passed: true,
            skipped: false,
            detail,
        });
    }
    Ok(checks)
}

impl Engine {
    /// With `[export]`, on a production target: the plan's applied steps are in the folder as
    /// exported (unchanged), and no file of it is left for a step the target does not have.
    async fn repository_check(&self, plan: &Plan, target: &Target) -> Result<Option<BuiltinCheck>> {
        let Some(to) = self.export_folder(plan) else {
            return Ok(None);
        };
        let history = target.history_versions().await?;
        let edited = Self::edited_exports(plan, to, &history)?;
        let drift = self.drift_of(target, to, history, Some(plan)).await?;
        let passed = drift.is_empty() && edited.is_empty();
        let mut detail = if drift.is_empty() {
            format!(
                "every applied step is in {} as {} migrations",
                to.dir.display(),
                to.format
            )
        } else {
            format!("drift from {}: {}", to.dir.display(), drift.summary())
        };
        if !edited.is_empty() {
            detail.push_str(&format!(
                "; changed since exported (the database has the exported content): {}",
                edited.join(", ")
            ));
        }
        if !passed {
            detail.push_str(&format!(
                "; run `drydock export {}` (restore edited files first)",
                plan.id
            ));
        }
        Ok(Some(BuiltinCheck {
            name: "repository".into(),
            passed,
            skipped: false,
            detail,
        }))
    }

    /// Every step drydock recorded as applied has its row in the target's history table.
    async fn history_check(&self, plan: &Plan, target: &Target) -> Result<BuiltinCheck> {
        let history = target.history(&plan.id).await?;
        let applied_rows: HashSet<String> = history
            .iter()
            .filter(|h| h.applied())
            .map(|h| h.step.clone())
            .collect();
        let store_applied: Vec<String> = self
            .store
            .steps(&plan.id)
            .await?
            .into_iter()
            .filter(|s| s.state == StepState::Applied)
            .map(|s| s.name)
            .collect();
        let missing: Vec<&String> = store_applied
            .iter()
            .filter(|s| !applied_rows.contains(*s))
            .collect();
        Ok(BuiltinCheck {
            name: "history".into(),
            passed: missing.is_empty(),
            skipped: false,
            detail: if missing.is_empty() {
                format!(
                    "{} applied step(s) recorded in the target's history table",
                    store_applied.len()
                )
            } else {
                format!(
                    "step(s) applied per drydock but missing from the target's history: {missing:?}"
                )
            },
        })
    }
}
