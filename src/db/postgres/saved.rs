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

/// The comment of a backup whose restore has begun.
pub(super) const RESTORING: &str = "drydock: being restored by a rollback";

/// The backup table of a backfill step on a target.
pub(super) fn backup_table(plan_id: &str, step: &str) -> String {
    format!(
        "drydock_backup.{}",
        quote_ident(&format!("bf_{plan_id}_{}", short_hash(step)))
    )
}

/// The temporary table in which a dry-run saves what a backfill step overwrites.
pub(super) fn sandbox_table(step: &str) -> String {
    format!("drydock_bf_{}", short_hash(step))
}

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
/// quoted table), or whole rows (a delete). An update whose `where` requires every column it
/// sets to be NULL (`cents IS NULL`, the backfill of a new column) saves only the keys of the
/// rows it changed, one array per batch, taken from the update itself: their old values are
/// known, NULL.
#[derive(Debug, Clone)]
enum Kind {
    Update,
    Nulls,
    Copy(String),
    Delete,
}

/// A batch's statement, and how it reports the rows it changed.
pub enum BatchStatement {
    /// As its row count (the change is the statement).
    Affected(String),
    /// As the one value it selects.
    Selected(String),
}

impl BatchStatement {
    pub fn sql(&self) -> &str {
        match self {
            BatchStatement::Affected(s) | BatchStatement::Selected(s) => s,
        }
    }
}

/// The columns an update's backup keeps (the key aside): those of a backup already begun (its
/// shape is what it saved); else, when a user row trigger on `BEFORE UPDATE` may write columns
/// the backfill does not set (`last_update = now()`), every column an `UPDATE` can set — what
/// the batch's UPDATE really changes, triggers included; else the columns the backfill sets.
async fn saved_columns(
    conn: &mut PgConnection,
    spec: &Backfill,
    key: &str,
    backup: &str,
    set: &[String],
) -> sqlx::Result<Vec<String>> {
    // language=SQL
    let begun: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> $2
         ORDER BY a.attnum",
    )
    .persistent(false)
    .bind(backup)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    if !begun.is_empty() {
        return Ok(begun);
    }
    // tgtype: 1 ROW, 2 BEFORE, 16 UPDATE.
    // language=SQL
    let every: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
           AND a.attidentity <> 'a' AND a.attname <> $2
           AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = a.attrelid AND NOT t.tgisinternal
                       AND t.tgenabled <> 'D' AND (t.tgtype::int4 & 19) = 19)
         ORDER BY a.attnum",
    )
    .persistent(false)
    .bind(&spec.table)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    Ok(if every.is_empty() {
        set.to_vec()
    } else {
        every
    })
}

/// The backfill's key: `key`, else the table's single-column primary key.
async fn key_name(
    conn: &mut PgConnection,
    spec: &Backfill,
    db: impl Fn(sqlx::Error) -> Error,
) -> Result<String> {
    if let Some(k) = &spec.key {
        return Ok(k.clone());
    }
    // language=SQL
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
    )
    .persistent(false)
    .bind(&spec.table)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    match pk.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::invalid(
            Part::Backfill,
            format!(
                "backfill of `{}` needs `key`: the table has no single-column primary key",
                spec.table
            ),
        )),
    }
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
        let key_name = key_name(conn, spec, db).await?;
        // language=SQL
        let key_type: Option<String> = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
        )
        .persistent(false)
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
            Place::Target { plan_id, step } => backup_table(plan_id, step),
            Place::Sandbox { step } => format!("pg_temp.{}", quote_ident(&sandbox_table(step))),
        };
        // A backup already begun keeps its shape (a backfill resumed across an upgrade).
        // language=SQL
        let begun: Option<bool> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = c.oid AND attname = 'keys' AND NOT attisdropped)
             FROM (SELECT to_regclass($1) AS oid) AS c WHERE c.oid IS NOT NULL",
        )
        .persistent(false)
        .bind(&backup)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let update = matches!(spec.mode(), crate::plan::BackfillMode::Update(_));
        let columns = match (begun, update) {
            // A backup of keys keeps its shape; the columns are those the update sets.
            (Some(true), _) | (_, false) => columns.to_vec(),
            (_, true) => saved_columns(conn, spec, &key_name, &backup, columns)
                .await
                .map_err(db)?,
        };
        // Only keys need saving when every column the update changes was NULL (a trigger that
        // writes other columns rules that out: they had values).
        let null = spec
            .filter
            .as_deref()
            .map(crate::sql::null_tested_columns)
            .unwrap_or_default();
        let nulls = update && !columns.is_empty() && columns.iter().all(|c| null.contains(c));
        let nulls = begun.unwrap_or(nulls);
        Ok(Saved {
            table: qualified_ident(&spec.table),
            key: quote_ident(&key_name),
            key_type,
            key_name,
            columns: columns.iter().map(|c| quote_ident(c)).collect(),
            backup,
            filter: spec.filter.clone(),
            kind: match spec.mode() {
                crate::plan::BackfillMode::Update(_) if nulls => Kind::Nulls,
                crate::plan::BackfillMode::Update(_) => Kind::Update,
                crate::plan::BackfillMode::Copy(c) => Kind::Copy(qualified_ident(&c.table)),
                crate::plan::BackfillMode::Delete => Kind::Delete,
            },
        })
    }

    /// What a drop template set aside (`Restore`): the columns' values by the table's key, put
    /// back as an update's saved values are. Its key's type is not needed: a restore walks the
    /// aside table by `ctid`.
    pub fn aside(restore: &crate::plan::Restore) -> Saved {
        Saved {
            table: qualified_ident(&restore.table),
            key: quote_ident(&restore.key),
            key_type: String::new(),
            key_name: restore.key.clone(),
            columns: restore.columns.iter().map(|c| quote_ident(c)).collect(),
            backup: qualified_ident(&restore.from),
            filter: None,
            kind: Kind::Update,
        }
    }

    /// The quoted key column.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the backup keeps of a row, as a select list of the walked table.
    fn kept(&self) -> String {
        match self.kind {
            Kind::Update => format!("{}, {}", self.key, self.columns.join(", ")),
            Kind::Copy(_) | Kind::Nulls => self.key.clone(),
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
    /// Hands the backup table to `role` (the apply role), which writes it in the batches it runs
    /// and drops it when a rollback has put its values back.
    pub fn owned_by(&self, role: &str) -> String {
        format!("ALTER TABLE {} OWNER TO {}", self.backup, quote_ident(role))
    }

    pub fn create(&self) -> String {
        let schema = if self.backup.starts_with("drydock_backup.") {
            "CREATE SCHEMA IF NOT EXISTS drydock_backup; "
        } else {
            ""
        };
        let (kept, storage) = match self.kind {
            // A batch's keys are one array of some 100 KB: stored out of line as they are, not
            // compressed (pglz took 15% of the batches' CPU on a bigint key, for 2.4x less space).
            Kind::Nulls => (
                format!("ARRAY[{}] AS keys", self.key),
                format!(
                    "; ALTER TABLE {} ALTER COLUMN keys SET STORAGE EXTERNAL",
                    self.backup
                ),
            ),
            _ => (self.kept(), String::new()),
        };
        format!(
            "{schema}CREATE TABLE IF NOT EXISTS {backup} AS SELECT {kept} FROM {table} WITH NO DATA{storage}",
            backup = self.backup,
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
        if let Kind::Nulls = self.kind {
            return format!(
                "INSERT INTO {backup} (keys) SELECT array_agg(k) FROM (
                     SELECT {key} AS k, row_number() OVER () / 10000 AS part FROM {table} WHERE true{filter}
                 ) AS rows GROUP BY part",
                backup = self.backup,
                key = self.key,
                table = self.table,
                filter = self.filter(),
            );
        }
        format!(
            "INSERT INTO {backup}{into} SELECT {kept} FROM {table} WHERE true{filter}",
            backup = self.backup,
            into = self.kept_into(),
            kept = self.kept(),
            table = self.table,
            filter = self.filter(),
        )
    }

    /// The rows of one batch: those after the checkpoint (`after`) up to the batch's last key
    /// `$2` that match `where` — what the change changes and the save saves.
    pub fn batch_rows(&self, after: &str) -> String {
        format!(
            "{after} AND {key} <= $2::text::{key_type}{filter}",
            key = self.key,
            key_type = self.key_type,
            filter = self.filter(),
        )
    }

    /// One batch's statement: `change` (its UPDATE, INSERT … SELECT or DELETE of the batch's
    /// `rows`) and the saving of what it overwrites, copies or deletes, in one statement — so in
    /// one transaction with the checkpoint. All data-modifying parts of a statement read one
    /// snapshot: the save reads the rows as they were before the change.
    pub fn batch_statement(&self, change: &str, rows: &str) -> BatchStatement {
        if let Kind::Nulls = self.kind {
            // The keys of exactly the rows changed, from the change itself: no second read.
            return BatchStatement::Selected(format!(
                "WITH changed AS ({change} RETURNING {key} AS k),
                 saved AS (INSERT INTO {backup} (keys) SELECT array_agg(k) FROM changed HAVING count(*) > 0)
                 SELECT count(*)::int8 FROM changed",
                key = self.key,
                backup = self.backup,
            ));
        }
        BatchStatement::Affected(format!(
            "WITH saved AS (
                 INSERT INTO {backup}{into}
                 SELECT {kept} FROM {table} WHERE {rows}
             ) {change}",
            backup = self.backup,
            into = self.kept_into(),
            kept = self.kept(),
            table = self.table,
        ))
    }

    /// Puts every saved value back, then drops the backup. The table's own triggers are off for
    /// the restore (in its transaction): a dual-write trigger of an expand/contract would
    /// otherwise copy the restored values onto the column it keeps in sync.
    pub fn restore(&self) -> Vec<String> {
        let table = self.restored_table();
        vec![
            format!("ALTER TABLE {table} DISABLE TRIGGER USER"),
            self.put_back_from(&self.backup),
            format!("ALTER TABLE {table} ENABLE TRIGGER USER"),
            format!("DROP TABLE {}", self.backup),
        ]
    }

    /// One batch of a rollback's restore: takes up to `$2` saved rows stored after `$1` (a
    /// `ctid`, in the backup's physical order) out of the backup and puts them back, in one
    /// statement — so a rollback killed between batches never puts a row back twice (over a
    /// write made since) and resumes with what is left. Selects the rows taken and the last
    /// `ctid` taken (NULL: nothing left after `$1`). The table's triggers are the caller's.
    pub fn restore_batch(&self) -> String {
        format!(
            "WITH picked AS MATERIALIZED (SELECT ctid AS at FROM {backup} WHERE ctid > $1::tid LIMIT $2),
             taken AS (DELETE FROM {backup} WHERE ctid = ANY (ARRAY(SELECT at FROM picked)) RETURNING *),
             put_back AS ({put_back})
             SELECT count(*)::int8, max(at)::text FROM picked",
            backup = self.backup,
            put_back = self.put_back_from("taken"),
        )
    }

    /// The statement putting back what `source` (the backup, or a batch taken from it) holds:
    /// each saved value in its row (NULL in every column of the rows whose keys were saved), the
    /// copied rows deleted, the deleted rows inserted.
    fn put_back_from(&self, source: &str) -> String {
        let update = |set: &dyn Fn(&str) -> String, saved: String| {
            format!(
                "UPDATE {table} AS drydock_row SET {set} FROM {saved} AS drydock_saved WHERE drydock_row.{key} = drydock_saved.{key}",
                table = self.table,
                key = self.key,
                set = self
                    .columns
                    .iter()
                    .map(|c| set(c))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        match &self.kind {
            Kind::Update => update(&|c| format!("{c} = drydock_saved.{c}"), source.to_string()),
            Kind::Nulls => update(
                &|c| format!("{c} = NULL"),
                format!(
                    "(SELECT unnest(keys) AS {key} FROM {source})",
                    key = self.key
                ),
            ),
            Kind::Copy(into) => format!(
                "DELETE FROM {into} WHERE {key} IN (SELECT {key} FROM {source})",
                key = self.key,
            ),
            Kind::Delete => format!(
                "INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {source}",
                table = self.table,
            ),
        }
    }

    /// The table a restore writes: the copy's destination for a copy, else the walked table.
    pub fn restored_table(&self) -> &str {
        match &self.kind {
            Kind::Copy(into) => into,
            _ => &self.table,
        }
    }

    /// Rows a restore batch starts with: a backup of keys keeps one array per backfill batch
    /// (each some thousands of rows), any other one row per row.
    pub fn first_restore_batch(&self) -> i64 {
        match self.kind {
            Kind::Nulls => 1,
            _ => 1000,
        }
    }

    /// The most rows a restore batch takes.
    pub fn largest_restore_batch(&self) -> i64 {
        match self.kind {
            Kind::Nulls => 8,
            _ => 50_000,
        }
    }

    /// Marks the backup as being restored (its comment), before the first batch commits: a
    /// backfill whose values are partly put back is neither applied nor rolled back, and an
    /// apply must not go on over it.
    pub fn mark_restoring(&self) -> String {
        format!("COMMENT ON TABLE {} IS '{RESTORING}'", self.backup)
    }

    /// Whether the backup table exists (a backfill applied before drydock saved values has none).
    pub async fn exists(&self, conn: &mut PgConnection) -> sqlx::Result<bool> {
        let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
            .persistent(false)
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
