//! `export`: an applied plan's steps written into the repository's migration folder as a tool's
//! files, each step's version recorded in the target's history (and in the tool's own history
//! table when the target has one, so the tool does not apply them again); and the drift between
//! that folder and a target.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::config::ExportConfig;
use crate::db::{HistoryVersion, ToolEntry};
use crate::export::{self, Drift, FolderFile, Format};

/// What `export` wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ExportReport {
    pub plan_id: String,
    pub format: Format,
    pub dir: String,
    /// Files written by this call.
    pub written: Vec<String>,
    /// Files already there with the same content.
    pub unchanged: Vec<String>,
    /// Each exported step's first version (a step with a statement that cannot run in a
    /// transaction spans consecutive versions).
    pub versions: Vec<StepVersion>,
    /// The tool history table the migrations were also recorded in as applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_in: Option<String>,
    pub warnings: Vec<String>,
}

/// What a rollback took out of the repository's migration folder and the tool's history.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Unexported {
    /// Files removed: the rolled-back steps' migrations, as exported.
    pub removed: Vec<String>,
    /// Files left because they were edited since the export (remove them by hand).
    pub kept: Vec<String>,
    /// The tool history table the versions were removed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StepVersion {
    pub step: String,
    pub version: i64,
}

impl Engine {
    /// Exports `plan_id`'s applied steps into `to` (default: `[export]`).
    pub async fn export(
        &self,
        plan_id: &str,
        to: Option<ExportConfig>,
        who: &Principal,
    ) -> Result<ExportReport> {
        let to = to.or_else(|| self.config.export.clone()).ok_or_else(|| {
            Error::invalid(
                Part::Argument,
                "no migration folder: pass `--tool` and `--dir`, or set `[export] dir, format` in drydock.toml",
            )
        })?;
        let plan = self.store.plan(plan_id).await?;
        if self.config.group(&plan.target).is_some() {
            return Err(Error::ExportConflict {
                plan: plan.id.clone(),
                dir: to.dir.display().to_string(),
                problem: "the plan rolls out to a fleet; export works on a plan of one target".into(),
                fix: "export the plan a member's history follows by hand, or plan the change for one target".into(),
            });
        }
        let target = self.open_target(&plan.target).await?;
        // An apply of this target writes history rows: one of the two at a time.
        let lock = target.lock().await?;
        let result = self.export_locked(&plan, &target, &to).await;
        lock.release().await;
        let report = result?;
        self.store
            .commit(Change {
                plan_id: &plan.id,
                audit: Audit::new(
                    who,
                    "exported",
                    json!({"format": to.format, "written": report.written, "versions": report.versions}),
                ),
                ..Change::default()
            })
            .await?;
        Ok(report)
    }

    /// Exports the plan's applied steps; the caller holds the target's lock.
    pub(super) async fn export_locked(
        &self,
        plan: &Plan,
        target: &Target,
        to: &ExportConfig,
    ) -> Result<ExportReport> {
        let conflict = |problem: String, fix: &str| Error::ExportConflict {
            plan: plan.id.clone(),
            dir: to.dir.display().to_string(),
            problem,
            fix: fix.to_string(),
        };
        let history = target.history_versions().await?;
        let mine: Vec<&HistoryVersion> = history
            .iter()
            .filter(|h| h.plan_id == plan.id && h.applied)
            .collect();
        if mine.is_empty() {
            return Err(Error::WrongStatus {
                plan: plan.id.clone(),
                status: plan.status.to_string(),
                action: "export",
                needed: "applied (at least one step in the target's history)",
            });
        }
        let parts: BTreeMap<String, usize> = export::parts_per_step(plan, to.format)?
            .into_iter()
            .collect();
        let files = export::scan(&to.dir, to.format)?;
        let (first_versions, new_versions) = versions(plan, &history, &mine, &parts, &files);
        let migrations = export::migrations(plan, to.format, &first_versions)?;
        // Nothing written yet: every conflict is found before anything changes.
        let mut plan_files = Vec::new();
        for m in &migrations {
            for f in std::iter::once(&m.up).chain(m.down.as_ref()) {
                check_file(&files, f, m, &to.dir, plan).map_err(|(p, fix)| conflict(p, &fix))?;
                plan_files.push(f);
            }
        }
        let mut warnings = Vec::new();
        let (tool_sql, recorded_in) = self
            .tool_records(plan, target, to, &files, &migrations, &mut warnings)
            .await?;
        if !new_versions.is_empty() || !tool_sql.is_empty() {
            target.record_export(&new_versions, &tool_sql).await?;
        }
        std::fs::create_dir_all(&to.dir)?;
        let (mut written, mut unchanged) = (Vec::new(), Vec::new());
        for f in plan_files {
            let path = to.dir.join(&f.name);
            if std::fs::read_to_string(&path).is_ok_and(|c| c == f.content) {
                unchanged.push(f.name.clone());
            } else {
                write_atomically(&path, &f.content)?;
                written.push(f.name.clone());
            }
        }
        Ok(ExportReport {
            plan_id: plan.id.clone(),
            format: to.format,
            dir: to.dir.display().to_string(),
            written,
            unchanged,
            versions: first_versions
                .into_iter()
                .map(|(step, version)| StepVersion { step, version })
                .collect(),
            recorded_in,
            warnings,
        })
    }

    /// The statements recording `migrations` in the folder's tool's history in the target, when
    /// it has one; what stands in the way becomes a warning and nothing is recorded there.
    async fn tool_records(
        &self,
        plan: &Plan,
        target: &Target,
        to: &ExportConfig,
        files: &[FolderFile],
        migrations: &[export::Migration],
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<String>, Option<String>)> {
        let Some(tool_name) = export::tool_of(to.format) else {
            return Ok((vec![], None));
        };
        let catalog = target.catalog().await?;
        let tools = target.migration_tools(&catalog).await?;
        let Some(tool) = tools.iter().find(|t| t.tool == tool_name) else {
            // Not "run the tool once": its first run would apply these migrations again.
            let create = match to.format {
                Format::Flyway => "`flyway baseline` creates `flyway_schema_history`",
                Format::GolangMigrate => "`migrate force VERSION` creates `schema_migrations`",
                _ => "create an empty `_sqlx_migrations` as sqlx defines it",
            };
            warnings.push(format!(
                "the target has no {tool_name} history table: the versions are recorded in drydock's history only, and a {tool_name} run against this database would apply these migrations again; before the application's next deploy, create that table without applying anything ({create}), then run `drydock export {}` to record them there",
                plan.id
            ));
            return Ok((vec![], None));
        };
        if !tool.failed.is_empty() {
            warnings.push(format!(
                "{} ({}) records failed or dirty version(s) {}: nothing recorded there until they are repaired",
                tool.tool,
                tool.table,
                tool.failed.join(", ")
            ));
            return Ok((vec![], None));
        }
        let ours: BTreeSet<String> = migrations.iter().map(|m| m.version.to_string()).collect();
        let lowest = migrations
            .iter()
            .map(|m| m.version)
            .min()
            .unwrap_or_default();
        let pending: Vec<&str> = files
            .iter()
            .filter(|f| f.up && !ours.contains(&f.version) && !tool.applied_version(&f.version))
            .filter(|f| f.version.parse::<i64>().is_ok_and(|v| v < lowest))
            .map(|f| f.name.as_str())
            .collect();
        if !pending.is_empty() {
            let consequence = match to.format {
                Format::GolangMigrate => {
                    warnings.push(format!(
                        "golang-migrate keeps only its latest version, and {} come(s) before these migrations but is not applied: nothing recorded in {}; apply them with golang-migrate first, then export again",
                        pending.join(", "),
                        tool.table
                    ));
                    return Ok((vec![], None));
                }
                Format::Flyway => "Flyway refuses them as out of order unless `outOfOrder` is set",
                _ => "they run after these when the tool next runs",
            };
            warnings.push(format!(
                "{} in the folder come(s) before these migrations but is not applied: {consequence}",
                pending.join(", ")
            ));
        }
        let entries: Vec<ToolEntry> = migrations
            .iter()
            .filter(|m| !tool.applied_version(&m.version.to_string()))
            .map(|m| ToolEntry {
                version: m.version,
                description: m.description.clone(),
                script: m.up.name.clone(),
                content: m.up.content.clone(),
            })
            .collect();
        Ok((
            tool.record_sql(target.engine(), &entries),
            Some(tool.table.clone()),
        ))
    }

    /// `[export]`, when `plan` targets a production database (the folder mirrors production).
    pub(super) fn export_folder(&self, plan: &Plan) -> Option<&ExportConfig> {
        let production = self
            .config
            .target(&plan.target)
            .is_ok_and(|t| t.role == Role::Production);
        self.config.export.as_ref().filter(|_| production)
    }

    /// After a rollback of exported steps (`[export]`, production): their files leave the
    /// folder (those unchanged since the export; an edited one stays and is named) and their
    /// versions leave the tool's history, so the repository and the tool describe the database
    /// again. `exported` holds the steps' first versions, read before the rollback.
    pub(super) async fn unexport(
        &self,
        plan: &Plan,
        target: &Target,
        exported: &BTreeMap<String, i64>,
    ) -> Option<Unexported> {
        let to = self.export_folder(plan)?;
        if exported.is_empty() {
            return None;
        }
        let mut out = Unexported::default();
        let result: Result<()> = async {
            let migrations = export::migrations(plan, to.format, exported)?;
            for f in migrations
                .iter()
                .flat_map(|m| std::iter::once(&m.up).chain(m.down.as_ref()))
            {
                let path = to.dir.join(&f.name);
                match std::fs::read_to_string(&path) {
                    Ok(c) if c == f.content => {
                        std::fs::remove_file(&path)?;
                        out.removed.push(f.name.clone());
                    }
                    Ok(_) => out.kept.push(f.name.clone()),
                    Err(_) => {}
                }
            }
            let Some(tool_name) = export::tool_of(to.format) else {
                return Ok(());
            };
            let catalog = target.catalog().await?;
            let tools = target.migration_tools(&catalog).await?;
            let Some(tool) = tools.iter().find(|t| t.tool == tool_name) else {
                return Ok(());
            };
            let versions: Vec<i64> = migrations.iter().map(|m| m.version).collect();
            let lowest = versions.iter().min().copied().unwrap_or_default();
            let previous = export::scan(&to.dir, to.format)?
                .iter()
                .filter(|f| f.up)
                .filter_map(|f| f.version.parse::<i64>().ok())
                .filter(|v| *v < lowest)
                .max();
            target
                .record_export(&[], &tool.forget_sql(&versions, previous))
                .await?;
            out.recorded_in = Some(tool.table.clone());
            Ok(())
        }
        .await;
        if let Err(e) = result {
            out.error = Some(format!(
                "{} (the rollback stands; remove the plan's files from {} by hand)",
                crate::redact::redact(&e.to_string()),
                to.dir.display()
            ));
        }
        Some(out)
    }

    /// The plan's exported files that no longer read as exported, from the target's `history`.
    pub(super) fn edited_exports(
        plan: &Plan,
        to: &ExportConfig,
        history: &[HistoryVersion],
    ) -> Result<Vec<String>> {
        let mut edited = Vec::new();
        for m in export::migrations(plan, to.format, &exported_versions(history, &plan.id))? {
            for f in std::iter::once(&m.up).chain(m.down.as_ref()) {
                if std::fs::read_to_string(to.dir.join(&f.name)).is_ok_and(|c| c != f.content) {
                    edited.push(f.name.clone());
                }
            }
        }
        Ok(edited)
    }

    /// The drift between the folder `to` and `target`'s `history`, both ways; with `only`, what
    /// concerns that plan alone (its rows are all that is read beside the folder).
    pub(super) async fn drift_of(
        &self,
        target: &Target,
        to: &ExportConfig,
        mut history: Vec<HistoryVersion>,
        only: Option<&Plan>,
    ) -> Result<Drift> {
        let files = export::scan(&to.dir, to.format)?;
        let mut parts: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut add_parts = |plan: &Plan| -> Result<()> {
            for (step, n) in export::parts_per_step(plan, to.format)? {
                parts.insert((plan.id.clone(), step), n);
            }
            Ok(())
        };
        match only {
            Some(plan) => {
                history.retain(|h| h.plan_id == plan.id);
                add_parts(plan)?;
            }
            None => {
                let mut fleet_plans: BTreeSet<String> = BTreeSet::new();
                let plan_ids: BTreeSet<String> =
                    history.iter().map(|h| h.plan_id.clone()).collect();
                for id in plan_ids {
                    let Ok(plan) = self.store.plan(&id).await else {
                        continue;
                    };
                    // A fleet's plans are not exported (yet): their rows are not drift.
                    if self.config.group(&plan.target).is_some() {
                        fleet_plans.insert(id);
                        continue;
                    }
                    add_parts(&plan)?;
                }
                history.retain(|h| !fleet_plans.contains(&h.plan_id));
            }
        }
        let tools = match export::tool_of(to.format) {
            Some(name) => {
                let catalog = target.catalog().await?;
                target
                    .migration_tools(&catalog)
                    .await?
                    .into_iter()
                    .filter(|t| t.tool == name)
                    .collect()
            }
            None => vec![],
        };
        let drift = export::drift(
            &files,
            &history,
            |plan, step| {
                parts
                    .get(&(plan.to_string(), step.to_string()))
                    .copied()
                    .unwrap_or(1)
            },
            |v| tools.iter().any(|t| t.applied_version(v)),
        );
        Ok(match only {
            Some(plan) => drift.of_plan(&plan.id),
            None => drift,
        })
    }

    /// The drift of every production target (`doctor`); empty without `[export]`.
    pub async fn drift(&self) -> Vec<(String, Result<Drift>)> {
        let mut out = Vec::new();
        let Some(to) = &self.config.export else {
            return out;
        };
        for t in self.config.targets.values() {
            if t.role != Role::Production {
                continue;
            }
            let drift = async {
                let target = self.open_target(&t.name).await?;
                let history = target.history_versions().await?;
                self.drift_of(&target, to, history, None).await
            }
            .await;
            out.push((t.name.clone(), drift));
        }
        out
    }
}

/// The first version each of a plan's applied steps was exported as, from the target's history.
pub(super) fn exported_versions(
    history: &[HistoryVersion],
    plan_id: &str,
) -> BTreeMap<String, i64> {
    history
        .iter()
        .filter(|h| h.plan_id == plan_id && h.applied)
        .filter_map(|h| Some((h.step.clone(), h.version?)))
        .collect()
}

/// A version given to a step by an export: (plan, step, version).
type NewVersion = (String, String, i64);

/// The first version of each applied step of `plan`: the one its history row holds, or a new
/// one after everything the folder and the history hold (a step of several parts takes as many).
/// Returns those, and the new ones to record in the history (plan, step, version).
fn versions(
    plan: &Plan,
    history: &[HistoryVersion],
    mine: &[&HistoryVersion],
    parts: &BTreeMap<String, usize>,
    files: &[FolderFile],
) -> (BTreeMap<String, i64>, Vec<NewVersion>) {
    // New versions come after everything the folder and the history hold.
    let highest_file = files
        .iter()
        .filter_map(|f| f.version.split('.').next()?.parse::<i64>().ok())
        .max();
    let highest_history = history
        .iter()
        .filter_map(|h| {
            // Another plan's step may span several versions too; its next plan's export
            // starts after the folder's files, which hold them.
            let span = match h.plan_id == plan.id {
                true => parts.get(&h.step).copied().unwrap_or(1).max(1),
                false => 1,
            };
            Some(h.version? + span as i64 - 1)
        })
        .max();
    let mut next =
        export::next_version(crate::clock::now_unix(), highest_file.max(highest_history));
    let mut first_versions = BTreeMap::new();
    let mut new_versions = Vec::new();
    for name in plan.step_names() {
        let Some(h) = mine.iter().find(|h| h.step == name) else {
            continue;
        };
        let version = match h.version {
            Some(v) => v,
            None => {
                let v = next;
                next += parts.get(&name).copied().unwrap_or(1).max(1) as i64;
                new_versions.push((plan.id.clone(), name.clone(), v));
                v
            }
        };
        first_versions.insert(name, version);
    }
    (first_versions, new_versions)
}

/// Whether `f` may be written: a file of the same version must be this very file (the same
/// name, written by drydock for the same plan and step, unchanged since).
fn check_file(
    files: &[FolderFile],
    f: &export::MigrationFile,
    m: &export::Migration,
    dir: &Path,
    plan: &Plan,
) -> std::result::Result<(), (String, String)> {
    let version = m.version.to_string();
    let up = !f.name.contains(".down.");
    for existing in files.iter().filter(|e| e.version == version && e.up == up) {
        if existing.name != f.name
            || existing.drydock.as_ref() != Some(&(plan.id.clone(), m.step.clone()))
        {
            return Err((
                format!("version {version} is already used by {}", existing.name),
                format!(
                    "the folder {} holds a migration drydock did not write at that version; move it to a later version, then export again",
                    dir.display()
                ),
            ));
        }
        if existing.content != f.content {
            return Err((
                format!("{} was changed since drydock wrote it", existing.name),
                "restore the file as exported (`git checkout` it) or delete it, then export again: the version is applied with the exported content".into(),
            ));
        }
    }
    Ok(())
}

/// Writes `content` to `path` through a temporary file beside it, so a reader (a tool, git)
/// never sees half a migration.
fn write_atomically(path: &Path, content: &str) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.drydock-tmp"));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
