//! The migration tools already managing a database, read from their history tables: sqlx
//! (`_sqlx_migrations`), Flyway (`flyway_schema_history`), golang-migrate and Rails
//! (`schema_migrations`, golang-migrate's with its `dirty` flag), Atlas
//! (`atlas_schema_revisions`). drydock works beside them: an agent must know that a folder of
//! migrations is applied by another tool, which version it is at, and whether it is stuck.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Catalog, TableInfo, Target};
use crate::error::Result;
use crate::sql::quote_ident;

/// One migration tool's history in the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MigrationTool {
    /// `sqlx`, `flyway`, `golang-migrate`, `rails` or `atlas`.
    pub tool: String,
    /// Its history table (schema-qualified outside `public`).
    pub table: String,
    /// The newest version it applied successfully.
    pub latest_version: Option<String>,
    /// How many versions it records.
    pub applied: u64,
    /// Versions it records as failed (or golang-migrate's dirty version): the tool is stuck
    /// until someone repairs them.
    pub failed: Vec<String>,
    /// Every version it applied successfully (for drift; not shown).
    #[serde(skip)]
    #[schemars(skip)]
    pub ok_versions: Vec<String>,
}

impl MigrationTool {
    /// Whether the tool counts `version` as applied: in its history, or for golang-migrate
    /// (which keeps only its latest version) at or below the latest, when not dirty.
    pub fn applied_version(&self, version: &str) -> bool {
        if self.tool == "golang-migrate" {
            let (Some(latest), Ok(v)) = (&self.latest_version, version.parse::<i64>()) else {
                return false;
            };
            return self.failed.is_empty() && latest.parse::<i64>().is_ok_and(|l| v <= l);
        }
        self.ok_versions.iter().any(|v| v == version)
    }

    fn quoted_table(&self) -> String {
        self.table
            .split('.')
            .map(quote_ident)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Statements recording `entries` in this tool's history as applied (by drydock, under
    /// the engine's `dialect`), so that the tool's next run does not apply them again.
    /// golang-migrate keeps one row, its latest version.
    pub fn record_sql(&self, dialect: crate::sql::Dialect, entries: &[ToolEntry]) -> Vec<String> {
        use crate::sql::quote_literal as lit;
        let t = self.quoted_table();
        let bytes = |b: &[u8]| {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            match dialect {
                crate::sql::Dialect::Postgres => format!("'\\x{hex}'::bytea"),
                crate::sql::Dialect::Sqlite => format!("X'{hex}'"),
            }
        };
        match self.tool.as_str() {
            // language=SQL
            "sqlx" => entries
                .iter()
                .map(|e| {
                    format!(
                        "INSERT INTO {t} (version, description, success, checksum, execution_time) VALUES ({}, {}, TRUE, {}, 0) ON CONFLICT (version) DO NOTHING",
                        e.version,
                        lit(&e.description),
                        bytes(&sqlx_checksum(&e.content))
                    )
                })
                .collect(),
            // language=SQL
            "flyway" => entries
                .iter()
                .map(|e| {
                    format!(
                        "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) SELECT (SELECT coalesce(max(installed_rank), 0) + 1 FROM {t}), {v}, {}, 'SQL', {}, {}, 'drydock', 0, TRUE WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE version = {v})",
                        lit(&e.description),
                        lit(&e.script),
                        flyway_checksum(&e.content),
                        v = lit(&e.version.to_string()),
                    )
                })
                .collect(),
            // language=SQL
            "golang-migrate" => match entries.iter().map(|e| e.version).max() {
                None => vec![],
                Some(v) => vec![
                    format!("DELETE FROM {t} WHERE version < {v}"),
                    format!(
                        "INSERT INTO {t} (version, dirty) SELECT {v}, FALSE WHERE NOT EXISTS (SELECT 1 FROM {t})"
                    ),
                ],
            },
            _ => vec![],
        }
    }
}

impl MigrationTool {
    /// Statements removing `versions` (exported, then rolled back) from this tool's history, so
    /// that its next run applies them again should their files come back. golang-migrate's one
    /// row goes back to `previous` (the folder's newest version below them), or away.
    pub fn forget_sql(&self, versions: &[i64], previous: Option<i64>) -> Vec<String> {
        if versions.is_empty() {
            return vec![];
        }
        let t = self.quoted_table();
        let numbers: Vec<String> = versions.iter().map(i64::to_string).collect();
        let texts: Vec<String> = numbers
            .iter()
            .map(|v| crate::sql::quote_literal(v))
            .collect();
        match self.tool.as_str() {
            // language=SQL
            "sqlx" => vec![format!(
                "DELETE FROM {t} WHERE version IN ({})",
                numbers.join(", ")
            )],
            // language=SQL
            "flyway" => vec![format!(
                "DELETE FROM {t} WHERE version IN ({})",
                texts.join(", ")
            )],
            // language=SQL
            "golang-migrate" => {
                let ours = format!("version IN ({})", numbers.join(", "));
                match previous {
                    Some(p) => vec![format!("UPDATE {t} SET version = {p} WHERE {ours}")],
                    None => vec![format!("DELETE FROM {t} WHERE {ours}")],
                }
            }
            _ => vec![],
        }
    }
}

/// One exported migration, as a tool's history records it.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub version: i64,
    pub description: String,
    /// The file name (Flyway's `script`).
    pub script: String,
    /// The file's text (its checksum).
    pub content: String,
}

/// Which tool a history table belongs to, and the query reading its `(version, ok|failed)` rows,
/// oldest first.
fn recognise(table: &str, info: &TableInfo) -> Option<(&'static str, String)> {
    let name = table.rsplit('.').next().unwrap_or(table);
    let has = |c: &str| info.columns.iter().any(|col| col.name == c);
    let t = table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    // language=SQL
    let (tool, sql) = match name {
        "_sqlx_migrations" if has("success") => (
            "sqlx",
            format!(
                "SELECT CAST(version AS TEXT), CASE WHEN success THEN 'ok' ELSE 'failed' END FROM {t} ORDER BY version"
            ),
        ),
        "flyway_schema_history" if has("installed_rank") => (
            "flyway",
            format!(
                "SELECT CAST(version AS TEXT), CASE WHEN success THEN 'ok' ELSE 'failed' END FROM {t} WHERE version IS NOT NULL ORDER BY installed_rank"
            ),
        ),
        "schema_migrations" if has("dirty") => (
            "golang-migrate",
            format!(
                "SELECT CAST(version AS TEXT), CASE WHEN dirty THEN 'failed' ELSE 'ok' END FROM {t}"
            ),
        ),
        "schema_migrations" if has("version") => (
            "rails",
            format!("SELECT CAST(version AS TEXT), 'ok' FROM {t} ORDER BY version"),
        ),
        "atlas_schema_revisions" if has("error") => (
            "atlas",
            format!(
                "SELECT CAST(version AS TEXT), CASE WHEN error IS NULL OR error = '' THEN 'ok' ELSE 'failed' END FROM {t} ORDER BY executed_at"
            ),
        ),
        _ => return None,
    };
    Some((tool, sql))
}

impl Target {
    /// The migration tools whose history tables `catalog` (this target's) shows.
    pub async fn migration_tools(&self, catalog: &Catalog) -> Result<Vec<MigrationTool>> {
        let mut out = Vec::new();
        for (table, info) in &catalog.tables {
            let Some((tool, sql)) = recognise(table, info) else {
                continue;
            };
            let rows = self.text_pairs(&sql).await?;
            out.push(MigrationTool {
                tool: tool.into(),
                table: table.clone(),
                latest_version: rows
                    .iter()
                    .rev()
                    .find(|(_, state)| state == "ok")
                    .map(|(v, _)| v.clone()),
                applied: rows.len() as u64,
                failed: rows
                    .iter()
                    .filter(|(_, state)| state == "failed")
                    .map(|(v, _)| v.clone())
                    .collect(),
                ok_versions: rows
                    .iter()
                    .filter(|(_, state)| state == "ok")
                    .map(|(v, _)| v.clone())
                    .collect(),
            });
        }
        Ok(out)
    }
}

/// sqlx's checksum of a migration file: SHA-384 of its text.
pub fn sqlx_checksum(content: &str) -> Vec<u8> {
    use sha2::{Digest, Sha384};
    Sha384::digest(content.as_bytes()).to_vec()
}

/// Flyway's checksum of a migration file: CRC-32 over its lines without their line breaks (a
/// byte-order mark dropped), as a signed 32-bit number.
pub fn flyway_checksum(content: &str) -> i32 {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut digest = crc.digest();
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    for line in content.lines() {
        digest.update(line.trim_end_matches('\r').as_bytes());
    }
    digest.finalize() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksum_ignores_line_endings() {
        // Flyway reads lines, so CRLF and LF files have one checksum.
        assert_eq!(flyway_checksum("a\nb\n"), flyway_checksum("a\r\nb\r\n"));
        assert_ne!(flyway_checksum("a\nb\n"), flyway_checksum("ab\nc\n"));
        // The CRC-32 of "ab" (lines concatenated).
        assert_eq!(flyway_checksum("a\nb\n") as u32, 0x9E83486D);
    }
}
