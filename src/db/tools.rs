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
            });
        }
        Ok(out)
    }
}
