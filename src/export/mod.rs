//! The repository's migration folder: an applied plan written as another tool's migration files
//! (sqlx, Flyway, golang-migrate, or plain SQL), and the drift between such a folder and a
//! target's history. Pure: the engine reads the folder and the histories, writes the files and
//! records the versions.
//!
//! One step is one migration, except that a statement PostgreSQL cannot run in a transaction
//! (`CREATE INDEX CONCURRENTLY`) goes into a migration of its own: every tool runs a file as one
//! transaction or one multi-statement query, where such a statement fails. A step's versions are
//! consecutive; its first is the one the target's history records. The step's `down` goes with
//! its last migration (the first a tool reverts).

mod folder;

pub use folder::{Drift, FolderFile, HistoryVersion, drift, scan};

use crate::analysis;
use crate::error::Result;
use crate::plan::Plan;

pub use crate::config::ExportFormat as Format;

/// The migration tool (as `inspect` names it) whose history table runs `format`'s folder.
pub fn tool_of(format: Format) -> Option<&'static str> {
    match format {
        Format::Sqlx => Some("sqlx"),
        Format::Flyway => Some("flyway"),
        Format::GolangMigrate => Some("golang-migrate"),
        Format::Plain => None,
    }
}

/// Whether a statement that cannot run in a transaction needs a migration of its own (every
/// tool runs a file as one transaction or one multi-statement query).
fn splits(format: Format) -> bool {
    !matches!(format, Format::Plain)
}

fn up_name(format: Format, version: i64, description: &str) -> String {
    match format {
        Format::Sqlx | Format::GolangMigrate => format!("{version}_{description}.up.sql"),
        Format::Flyway => format!("V{version}__{description}.sql"),
        Format::Plain => format!("{version}_{description}.sql"),
    }
}

fn down_name(format: Format, version: i64, description: &str) -> Option<String> {
    match format {
        Format::Sqlx | Format::GolangMigrate | Format::Plain => {
            Some(format!("{version}_{description}.down.sql"))
        }
        // Flyway's undo files (`U…`) belong to its paid editions; undo is drydock's `rollback`.
        Format::Flyway => None,
    }
}

/// One migration of an exported plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub step: String,
    pub version: i64,
    /// The tool's description (sqlx and Flyway show it with spaces for underscores).
    pub description: String,
    pub up: MigrationFile,
    pub down: Option<MigrationFile>,
    /// Runs outside a transaction (the tool must be told, or detects it).
    pub no_transaction: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MigrationFile {
    pub name: String,
    pub content: String,
}

/// A step's statements, grouped as they can run: consecutive transactional ones together, each
/// other one alone.
struct Group {
    sql: Vec<String>,
    transactional: bool,
}

/// How many migrations each step of `plan` becomes in `format`, in plan order.
pub fn parts_per_step(plan: &Plan, format: Format) -> Result<Vec<(String, usize)>> {
    plan.steps()
        .iter()
        .enumerate()
        .map(|(i, _)| {
            Ok((
                plan.step_name(i).to_string(),
                step_parts(plan, i, format)?.len(),
            ))
        })
        .collect()
}

fn step_parts(plan: &Plan, i: usize, format: Format) -> Result<Vec<Group>> {
    let step = &plan.steps()[i];
    let name = plan.step_name(i);
    if let Some(b) = &step.backfill {
        return Ok(vec![Group {
            sql: vec![format!(
                "-- drydock ran this backfill in keyset batches, each its own transaction with a checkpoint;\n-- on a fresh database it is this one statement.\n{}",
                analysis::backfill_sql(b)
            )],
            transactional: true,
        }]);
    }
    let statements = classified(plan, name, step.up.as_deref().unwrap_or_default())?;
    let mut parts: Vec<Group> = Vec::new();
    for (sql, transactional) in statements {
        match parts.last_mut() {
            Some(last) if !splits(format) || (transactional && last.transactional) => {
                last.sql.push(sql);
                last.transactional &= transactional;
            }
            _ => parts.push(Group {
                sql: vec![sql],
                transactional,
            }),
        }
    }
    Ok(parts)
}

fn classified(plan: &Plan, step: &str, sql: &str) -> Result<Vec<(String, bool)>> {
    Ok(analysis::statements(step, sql)?
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let facts = analysis::classify(step, i + 1, st, plan.analysis.engine);
            (st.sql.trim().to_string(), facts.transactional)
        })
        .collect())
}

/// The migrations of `plan`'s steps that have a first version, each step's versions counted up
/// from it.
pub fn migrations(
    plan: &Plan,
    format: Format,
    first_versions: &std::collections::BTreeMap<String, i64>,
) -> Result<Vec<Migration>> {
    let mut out = Vec::new();
    let slug_goal = slug(&plan.goal, 40);
    let total = plan.steps().len();
    for (i, step) in plan.steps().iter().enumerate() {
        let name = plan.step_name(i);
        let Some(&first) = first_versions.get(name) else {
            continue;
        };
        let parts = step_parts(plan, i, format)?;
        let count = parts.len();
        for (p, part) in parts.into_iter().enumerate() {
            let version = first + p as i64;
            let mut description = format!("{slug_goal}_{}", slug(name, 30));
            if count > 1 {
                description.push_str(&format!("_{}_of_{count}", p + 1));
            }
            let header = |what: &str| {
                let part = if count > 1 {
                    format!(", migration {} of {count} for this step", p + 1)
                } else {
                    String::new()
                };
                // Step names and goals are the agent's free text: on one line, or a newline in
                // them would end the comment and put SQL into every database that replays the file.
                format!(
                    "-- drydock plan {}, step `{}` ({} of {total}){part}: {what}\n-- goal: {}\n-- plan checksum {}; applied by drydock, recorded in its history (drydock.history)\n",
                    plan.id,
                    one_line(name).replace('`', "'"),
                    i + 1,
                    one_line(&plan.goal),
                    plan.checksum
                )
            };
            let no_tx = !part.transactional;
            let marker = |no_tx: bool| {
                if no_tx && format == Format::Sqlx {
                    "-- no-transaction\n"
                } else {
                    ""
                }
            };
            let up = MigrationFile {
                name: up_name(format, version, &description),
                content: format!(
                    "{}{}\n{};\n",
                    marker(no_tx),
                    header("up"),
                    part.sql.join(";\n\n")
                ),
            };
            let last = p + 1 == count;
            let down = match (down_name(format, version, &description), last, &step.down) {
                (None, ..) => None,
                // Steps without a `down` (final ones) cannot be reverted by a file either.
                (Some(_), true, None) => None,
                (Some(file), true, Some(down)) => {
                    let statements = classified(plan, name, down)?;
                    let down_no_tx = statements.iter().any(|(_, t)| !t);
                    let sql: Vec<String> = statements.into_iter().map(|(s, _)| s).collect();
                    let restore = if step.backfill.is_some() {
                        "-- the values the backfill overwrote are put back by `drydock rollback`, not by this file\n"
                    } else {
                        ""
                    };
                    Some(MigrationFile {
                        name: file,
                        content: format!(
                            "{}{}{restore}\n{};\n",
                            marker(down_no_tx),
                            header("down"),
                            sql.join(";\n\n")
                        ),
                    })
                }
                (Some(file), false, _) => Some(MigrationFile {
                    name: file,
                    content: format!(
                        "{}-- nothing: the step's `down` is in version {}\n",
                        header("down"),
                        first + count as i64 - 1
                    ),
                }),
            };
            out.push(Migration {
                step: name.to_string(),
                version,
                description: description.replace('_', " "),
                up,
                down,
                no_transaction: no_tx,
            });
        }
    }
    Ok(out)
}

/// A version for a new migration: the UTC time as `YYYYMMDDHHMMSS` (how sqlx, golang-migrate
/// and Flyway users name theirs), after every version already in the folder or a history.
pub fn next_version(now_unix: i64, after: Option<i64>) -> i64 {
    let stamp = crate::clock::compact_utc(now_unix);
    match after {
        Some(v) if v >= stamp => v + 1,
        _ => stamp,
    }
}

/// Lower-case words joined by `_`, at most `max` characters: safe in every tool's file name.
fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        if out.len() + word.len() + 1 > max && !out.is_empty() {
            break;
        }
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&word);
    }
    out.truncate(max);
    if out.is_empty() {
        "migration".into()
    } else {
        out
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_words() {
        assert_eq!(
            slug("Add `email_verified` to users!", 40),
            "add_email_verified_to_users"
        );
        assert_eq!(slug("***", 40), "migration");
        assert!(slug(&"word ".repeat(40), 40).len() <= 40);
    }

    #[test]
    fn versions_count_up_past_the_folder() {
        let now = 1_795_000_000; // 2026-11-18T…
        let stamp = crate::clock::compact_utc(now);
        assert_eq!(next_version(now, None), stamp);
        assert_eq!(next_version(now, Some(3)), stamp);
        assert_eq!(next_version(now, Some(stamp)), stamp + 1);
        assert_eq!(next_version(now, Some(stamp + 40)), stamp + 41);
    }
}
