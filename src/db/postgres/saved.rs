//! The values a backfill overwrites, saved before it overwrites them (keyed by the backfill's
//! key, in `drydock_backup`, or a temporary table in a dry-run) so that rolling the backfill back
//! restores them exactly. Each batch saves its rows in the same statement — and so the same
//! transaction — as it updates them: what is committed as updated is committed as saved.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use super::qualified_ident;
use crate::db::short_hash;
use crate::error::{Error, Part, Result};
use crate::plan::Backfill;
use crate::sql::quote_ident;

/// A backfill's saved values: the table, its key, the overwritten columns and where they go.
#[derive(Debug, Clone)]
pub struct Saved {
    table: String,
    key: String,
    /// The key's type as `format_type` prints it (validated), for keyset comparisons.
    pub key_type: String,
    /// The key column, unquoted.
    pub key_name: String,
    columns: Vec<String>,
    backup: String,
    filter: Option<String>,
    kind: Kind,
}

/// What is saved: the overwritten columns (an update), the copied rows' keys (a copy, into the
/// quoted table), or whole rows (a delete).
#[derive(Debug, Clone)]
enum Kind {
    Update,
    Copy(String),
    Delete,
}

/// Where the backup of a backfill step goes: a table per plan and step.
pub enum Place<'a> {
    /// `drydock_backup."bf_<plan>_<step hash>"`, kept until the step is rolled back.
    Target { plan_id: &'a str, step: &'a str },
    /// A temporary table, gone with the dry-run's transaction.
    Sandbox { step: &'a str },
}

impl Saved {
    /// Resolves the backfill's key (`key`, else the single-column primary key) on `conn`.
    pub async fn resolve(
        target: &str,
        conn: &mut PgConnection,
        spec: &Backfill,
        columns: &[String],
        place: Place<'_>,
    ) -> Result<Saved> {
        let db = |e: sqlx::Error| Error::Target {
            target: target.to_string(),
            cause: crate::redact::redact(&e.to_string()),
        };
        let key_name = match &spec.key {
            Some(k) => k.clone(),
            None => {
                // language=SQL
                let pk: Vec<String> = sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                     WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
                )
                .bind(&spec.table)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
                match pk.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(Error::invalid(
                            Part::Backfill,
                            format!(
                                "backfill of `{}` needs `key`: the table has no single-column primary key",
                                spec.table
                            ),
                        ));
                    }
                }
            }
        };
        // language=SQL
        let key_type: Option<String> = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
        )
        .bind(&spec.table)
        .bind(&key_name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let key_type = key_type.ok_or_else(|| {
            Error::invalid(
                Part::Backfill,
                format!("backfill: `{}` has no column `{key_name}`", spec.table),
            )
        })?;
        crate::sql::validate_type(&key_type).map_err(|e| Error::invalid(Part::Backfill, e))?;
        let backup = match place {
            Place::Target { plan_id, step } => format!(
                "drydock_backup.{}",
                quote_ident(&format!("bf_{plan_id}_{}", short_hash(step)))
            ),
            Place::Sandbox { step } => format!(
                "pg_temp.{}",
                quote_ident(&format!("drydock_bf_{}", short_hash(step)))
            ),
        };
        Ok(Saved {
            table: qualified_ident(&spec.table),
            key: quote_ident(&key_name),
            key_type,
            key_name,
            columns: columns.iter().map(|c| quote_ident(c)).collect(),
            backup,
            filter: spec.filter.clone(),
            kind: match spec.mode() {
                crate::plan::BackfillMode::Update(_) => Kind::Update,
                crate::plan::BackfillMode::Copy(c) => Kind::Copy(qualified_ident(&c.table)),
                crate::plan::BackfillMode::Delete => Kind::Delete,
            },
        })
    }

    /// The quoted key column.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the backup keeps of a row, as a select list of the walked table.
    fn kept(&self) -> String {
        match self.kind {
            Kind::Update => format!("{}, {}", self.key, self.columns.join(", ")),
            Kind::Copy(_) => self.key.clone(),
            Kind::Delete => "*".into(),
        }
    }

    /// The backup's column list for an INSERT (a whole row needs none).
    fn kept_into(&self) -> String {
        match self.kind {
            Kind::Delete => String::new(),
            _ => format!(" ({})", self.kept()),
        }
    }

    /// Creates the (empty) backup table if it is not there yet. It has no index: each batch's
    /// range is saved exactly once — its save, its change and its checkpoint commit together,
    /// and a retried or resumed batch starts after the last committed checkpoint — and the one
    /// restore reads it whole (a hash join), so an index would only double every saved row's
    /// cost.
    pub fn create(&self) -> String {
        let schema = if self.backup.starts_with("drydock_backup.") {
            "CREATE SCHEMA IF NOT EXISTS drydock_backup; "
        } else {
            ""
        };
        format!(
            "{schema}CREATE TABLE IF NOT EXISTS {backup} AS SELECT {kept} FROM {table} WITH NO DATA",
            backup = self.backup,
            kept = self.kept(),
            table = self.table,
        )
    }

    fn filter(&self) -> String {
        self.filter
            .as_deref()
            .map(|w| format!(" AND ({w})"))
            .unwrap_or_default()
    }

    /// Saves the current values of every row the backfill will update (the dry-run's one shot).
    pub fn save_all(&self) -> String {
        format!(
            "INSERT INTO {backup}{into} SELECT {kept} FROM {table} WHERE true{filter}",
            backup = self.backup,
            into = self.kept_into(),
            kept = self.kept(),
            table = self.table,
            filter = self.filter(),
        )
    }

    /// A CTE (`saved AS (...)`) saving the rows of one batch, `range` being the batch's key
    /// condition (in the batch's statement, so in its transaction).
    pub fn save_batch_cte(&self, range: &str) -> String {
        format!(
            "saved AS (
                 INSERT INTO {backup}{into}
                 SELECT {kept} FROM {table} WHERE {range}{filter}
                 RETURNING 1
             )",
            backup = self.backup,
            into = self.kept_into(),
            kept = self.kept(),
            table = self.table,
            filter = self.filter(),
        )
    }

    /// Puts every saved value back, then drops the backup. The table's own triggers are off for
    /// the restore (in its transaction): a dual-write trigger of an expand/contract would
    /// otherwise copy the restored values onto the column it keeps in sync.
    pub fn restore(&self) -> Vec<String> {
        let put_back = match &self.kind {
            Kind::Update => return self.restore_values(),
            Kind::Copy(into) => format!(
                "DELETE FROM {into} WHERE {key} IN (SELECT {key} FROM {backup})",
                key = self.key,
                backup = self.backup,
            ),
            Kind::Delete => format!(
                "INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {backup}",
                table = self.table,
                backup = self.backup,
            ),
        };
        let table = match &self.kind {
            Kind::Copy(into) => into,
            _ => &self.table,
        };
        vec![
            format!("ALTER TABLE {table} DISABLE TRIGGER USER"),
            put_back,
            format!("ALTER TABLE {table} ENABLE TRIGGER USER"),
            format!("DROP TABLE {}", self.backup),
        ]
    }

    /// An update's restore: every saved value back in its row.
    fn restore_values(&self) -> Vec<String> {
        let set = self
            .columns
            .iter()
            .map(|c| format!("{c} = drydock_saved.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            format!("ALTER TABLE {} DISABLE TRIGGER USER", self.table),
            format!(
                "UPDATE {table} AS drydock_row SET {set} FROM {backup} AS drydock_saved WHERE drydock_row.{key} = drydock_saved.{key}",
                table = self.table,
                backup = self.backup,
                key = self.key,
            ),
            format!("ALTER TABLE {} ENABLE TRIGGER USER", self.table),
            format!("DROP TABLE {}", self.backup),
        ]
    }

    /// Whether the backup table exists (a backfill applied before drydock saved values has none).
    pub async fn exists(&self, conn: &mut PgConnection) -> sqlx::Result<bool> {
        let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
            .bind(&self.backup)
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.get::<bool, _>(0))
    }

    /// Runs `sql` (one or more statements) on `conn`.
    pub async fn run(conn: &mut PgConnection, sql: &str) -> sqlx::Result<()> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        Saved {
            table: "\"accounts\"".into(),
            key: "\"id\"".into(),
            key_type: "bigint".into(),
            key_name: "id".into(),
            columns: vec!["\"nickname\"".into(), "\"score\"".into()],
            backup: "drydock_backup.\"bf_pl-1_abc\"".into(),
            filter: Some("score > 0".into()),
            kind: Kind::Update,
        }
    }

    #[test]
    fn restore_puts_every_saved_column_back() {
        let s = saved();
        assert_eq!(
            s.restore()[1],
            "UPDATE \"accounts\" AS drydock_row SET \"nickname\" = drydock_saved.\"nickname\", \"score\" = drydock_saved.\"score\" FROM drydock_backup.\"bf_pl-1_abc\" AS drydock_saved WHERE drydock_row.\"id\" = drydock_saved.\"id\""
        );
        assert!(s.save_all().ends_with("WHERE true AND (score > 0)"));
        assert!(
            s.create()
                .starts_with("CREATE SCHEMA IF NOT EXISTS drydock_backup; ")
        );
    }
}
