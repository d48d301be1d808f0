//! Reading a migration folder, and the drift between it and a target's history, both ways:
//! files the target never applied (or rolled back), and applied steps no file holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Format;
pub use crate::db::HistoryVersion;
use crate::error::{Error, Result};

/// One migration file found in the folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderFile {
    pub name: String,
    /// As the tool reads it: an integer (sqlx, golang-migrate, plain) or Flyway's dotted form.
    pub version: String,
    /// An `up` (or Flyway versioned) migration, not a `down`.
    pub up: bool,
    /// `(plan, step)` when drydock wrote it (its first comment says so).
    pub drydock: Option<(String, String)>,
    pub content: String,
}

/// Where the folder and the target disagree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Drift {
    /// Migration files the target has not applied: never, or rolled back since.
    pub unapplied_files: Vec<UnappliedFile>,
    /// Steps the target applied that no file in the folder holds.
    pub missing_files: Vec<MissingFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnappliedFile {
    pub file: String,
    /// The plan that wrote it, when drydock did (or whose rolled-back version it holds).
    pub plan_id: Option<String>,
    /// `never applied`, or `rolled back (plan …, step …)`.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MissingFile {
    pub plan_id: String,
    pub step: String,
    /// The version it was exported as; `None`: never exported.
    pub version: Option<i64>,
}

impl Drift {
    /// Only what concerns one plan.
    pub fn of_plan(self, plan_id: &str) -> Drift {
        Drift {
            unapplied_files: self
                .unapplied_files
                .into_iter()
                .filter(|f| f.plan_id.as_deref() == Some(plan_id))
                .collect(),
            missing_files: self
                .missing_files
                .into_iter()
                .filter(|m| m.plan_id == plan_id)
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.unapplied_files.is_empty() && self.missing_files.is_empty()
    }

    /// One line for a report, naming at most a few of each.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "the folder and the target's history agree".into();
        }
        let mut parts = Vec::new();
        if !self.unapplied_files.is_empty() {
            let named: Vec<String> = self
                .unapplied_files
                .iter()
                .take(5)
                .map(|f| format!("{} ({})", f.file, f.why))
                .collect();
            parts.push(format!(
                "{} file(s) the target has not applied: {}{}",
                self.unapplied_files.len(),
                named.join(", "),
                more(self.unapplied_files.len())
            ));
        }
        if !self.missing_files.is_empty() {
            let named: Vec<String> = self
                .missing_files
                .iter()
                .take(5)
                .map(|m| match m.version {
                    Some(v) => format!("plan {} step `{}` (version {v})", m.plan_id, m.step),
                    None => format!("plan {} step `{}` (never exported)", m.plan_id, m.step),
                })
                .collect();
            parts.push(format!(
                "{} applied step(s) with no file in the folder: {}{}",
                self.missing_files.len(),
                named.join(", "),
                more(self.missing_files.len())
            ));
        }
        parts.join("; ")
    }
}

fn more(n: usize) -> String {
    if n > 5 {
        format!(" and {} more", n - 5)
    } else {
        String::new()
    }
}

/// The migration files of `format` in `dir` (none when it does not exist), by name.
pub fn scan(dir: &Path, format: Format) -> Result<Vec<FolderFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read the migration folder {}: {e}",
                dir.display()
            )));
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, up)) = parse_name(format, &name) else {
            continue;
        };
        if !entry.path().is_file() {
            continue;
        }
        let content = std::fs::read_to_string(entry.path())
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", entry.path().display())))?;
        out.push(FolderFile {
            drydock: written_by_drydock(&content),
            name,
            version,
            up,
            content,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `(version, is_up)` of a file name in `format`'s layout; `None` for other files.
fn parse_name(format: Format, name: &str) -> Option<(String, bool)> {
    let digits = |s: &str| -> Option<String> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.trim_start_matches('0').to_string())
            .map(|v| if v.is_empty() { "0".into() } else { v })
    };
    match format {
        Format::Sqlx | Format::Plain => {
            let (version, rest) = name.split_once('_')?;
            if !rest.ends_with(".sql") {
                return None;
            }
            Some((digits(version)?, !rest.ends_with(".down.sql")))
        }
        Format::GolangMigrate => {
            let (version, rest) = name.split_once('_')?;
            let up = rest.contains(".up.");
            (up || rest.contains(".down.")).then_some(())?;
            Some((digits(version)?, up))
        }
        Format::Flyway => {
            let rest = name.strip_prefix('V')?.strip_suffix(".sql")?;
            let (version, _) = rest.split_once("__")?;
            let version = version.replace('_', ".");
            version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then_some((version, true))
        }
    }
}

/// The `(plan, step)` a drydock-written file names in its header.
fn written_by_drydock(content: &str) -> Option<(String, String)> {
    let line = content
        .lines()
        .take(3)
        .find_map(|l| l.strip_prefix("-- drydock plan "))?;
    let (plan, rest) = line.split_once(", step `")?;
    let (step, _) = rest.split_once('`')?;
    Some((plan.to_string(), step.to_string()))
}

/// The drift between `files` and a target's `history`. `parts(plan, step)` is how many
/// migrations a step was exported as; `tool_applied(version)` whether the folder's own tool
/// (its history table in the target) applied a version drydock did not write.
pub fn drift(
    files: &[FolderFile],
    history: &[HistoryVersion],
    parts: impl Fn(&str, &str) -> usize,
    tool_applied: impl Fn(&str) -> bool,
) -> Drift {
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut rolled: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    let key = |h: &HistoryVersion| (h.plan_id.clone(), h.step.clone());
    let applied: BTreeSet<(String, String)> =
        history.iter().filter(|h| h.applied).map(key).collect();
    let rolled_back: BTreeSet<(String, String)> = history
        .iter()
        .filter(|h| !h.applied)
        .map(key)
        .filter(|k| !applied.contains(k))
        .collect();
    let versions_of = |h: &HistoryVersion| -> Vec<String> {
        h.version
            .map(|v| {
                (0..parts(&h.plan_id, &h.step).max(1))
                    .map(|k| (v + k as i64).to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    for h in history {
        for v in versions_of(h) {
            if h.applied {
                live.insert(v);
            } else {
                rolled.insert(v, (&h.plan_id, &h.step));
            }
        }
    }
    let mut drift = Drift::default();
    for f in files.iter().filter(|f| f.up) {
        let why = match &f.drydock {
            Some(k) if applied.contains(k) => None,
            Some(k) if rolled_back.contains(k) => Some((
                format!("rolled back: plan {} step `{}`", k.0, k.1),
                Some(k.0.clone()),
            )),
            Some(k) => Some((
                format!("never applied: plan {} step `{}`", k.0, k.1),
                Some(k.0.clone()),
            )),
            None if live.contains(&f.version) || tool_applied(&f.version) => None,
            None => match rolled.get(&f.version) {
                Some((p, s)) => Some((
                    format!("rolled back: plan {p} step `{s}`"),
                    Some(p.to_string()),
                )),
                None => Some(("never applied".into(), None)),
            },
        };
        if let Some((why, plan_id)) = why {
            drift.unapplied_files.push(UnappliedFile {
                file: f.name.clone(),
                plan_id,
                why,
            });
        }
    }
    let up_versions: BTreeSet<&str> = files
        .iter()
        .filter(|f| f.up)
        .map(|f| f.version.as_str())
        .collect();
    for h in history.iter().filter(|h| h.applied) {
        let versions = versions_of(h);
        if versions.is_empty() || versions.iter().any(|v| !up_versions.contains(v.as_str())) {
            drift.missing_files.push(MissingFile {
                plan_id: h.plan_id.clone(),
                step: h.step.clone(),
                version: h.version,
            });
        }
    }
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_each_tool_reads_them() {
        assert_eq!(
            parse_name(Format::Sqlx, "20261126140000_add_col.up.sql"),
            Some(("20261126140000".into(), true))
        );
        assert_eq!(
            parse_name(Format::Sqlx, "0003_add_col.down.sql"),
            Some(("3".into(), false))
        );
        assert_eq!(parse_name(Format::Sqlx, "README.md"), None);
        assert_eq!(
            parse_name(Format::GolangMigrate, "7_x.down.sql"),
            Some(("7".into(), false))
        );
        assert_eq!(
            parse_name(Format::Flyway, "V1_1__init.sql"),
            Some(("1.1".into(), true))
        );
        assert_eq!(parse_name(Format::Flyway, "R__views.sql"), None);
        assert_eq!(parse_name(Format::Flyway, "U2__undo.sql"), None);
    }

    fn file(name: &str, version: &str, drydock: Option<(&str, &str)>) -> FolderFile {
        FolderFile {
            name: name.into(),
            version: version.into(),
            up: true,
            drydock: drydock.map(|(p, s)| (p.into(), s.into())),
            content: String::new(),
        }
    }

    fn row(plan: &str, step: &str, version: Option<i64>, applied: bool) -> HistoryVersion {
        HistoryVersion {
            plan_id: plan.into(),
            step: step.into(),
            version,
            applied,
        }
    }

    #[test]
    fn drift_both_ways() {
        let files = vec![
            file("10_a.up.sql", "10", Some(("pl-1", "a"))),
            file("11_b.up.sql", "11", Some(("pl-1", "b"))),
            file("20_gone.up.sql", "20", Some(("pl-2", "x"))),
            file("5_team.up.sql", "5", None),
            file("6_team.up.sql", "6", None),
        ];
        let history = vec![
            row("pl-1", "a", Some(10), true),
            // Exported as two migrations (11, 12): 12 is missing.
            row("pl-1", "b", Some(11), true),
            row("pl-2", "x", Some(20), false),
            row("pl-3", "y", None, true),
        ];
        let parts = |_: &str, s: &str| if s == "b" { 2 } else { 1 };
        let d = drift(&files, &history, parts, |v| v == "5");
        let unapplied: Vec<(&str, &str)> = d
            .unapplied_files
            .iter()
            .map(|f| (f.file.as_str(), f.why.as_str()))
            .collect();
        assert_eq!(
            unapplied,
            [
                ("20_gone.up.sql", "rolled back: plan pl-2 step `x`"),
                ("6_team.up.sql", "never applied")
            ]
        );
        let missing: Vec<(&str, Option<i64>)> = d
            .missing_files
            .iter()
            .map(|m| (m.step.as_str(), m.version))
            .collect();
        assert_eq!(missing, [("b", Some(11)), ("y", None)]);
        assert!(d.summary().contains("2 file(s) the target has not applied"));
    }

    #[test]
    fn agreeing_folder_has_no_drift() {
        let files = vec![file("10_a.up.sql", "10", Some(("pl-1", "a")))];
        let history = vec![row("pl-1", "a", Some(10), true)];
        assert!(drift(&files, &history, |_, _| 1, |_| false).is_empty());
    }
}
