//! SQLite targets: the embedded default and SQLite-backed applications. Dry-runs happen on a
//! `VACUUM INTO` copy so staging itself is never touched; every step runs in one
//! `BEGIN IMMEDIATE` transaction together with its `_drydock_history` row, so a step and its
//! bookkeeping commit or vanish together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use super::{
    BackupEvidence, Catalog, CheckOutcome, Column, Fingerprint, History, LockObservation,
    StatementRun, StepFailure, Stmt, TableInfo,
};
use crate::error::{Error, Result};
use crate::plan::Check;
use crate::sql::quote_ident;

mod backfill;
mod history;

use history::write_history;

/// drydock's bookkeeping inside the target; excluded from fingerprints and catalogs.
pub const HISTORY_TABLE: &str = "_drydock_history";

pub struct Sqlite {
    name: String,
    path: PathBuf,
    busy_timeout: Duration,
}

fn is_internal(name: &str) -> bool {
    name.starts_with("sqlite_") || name.starts_with("_drydock")
}

impl Sqlite {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens an existing database file; a missing file is an error, never silently created.
    pub async fn open(name: &str, path: &Path, busy_timeout: Duration) -> Result<Sqlite> {
        if !path.exists() {
            return Err(Error::Target {
                target: name.to_string(),
                cause: format!("database file {} does not exist", path.display()),
            });
        }
        let t = Sqlite {
            name: name.to_string(),
            path: path.to_path_buf(),
            busy_timeout,
        };
        t.connect().await?.close().await.map_err(|e| t.err(e))?;
        Ok(t)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: e.to_string(),
        }
    }

    async fn connect(&self) -> Result<SqliteConnection> {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(self.busy_timeout)
            .foreign_keys(true)
            .connect()
            .await
            .map_err(|e| self.err(e))
    }

    async fn table_names(&self, conn: &mut SqliteConnection) -> Result<Vec<String>> {
        // language=SQL
        let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<String, _>(0))
            .filter(|n| !is_internal(n))
            .collect())
    }

    async fn columns(&self, conn: &mut SqliteConnection, table: &str) -> Result<Vec<Column>> {
        // language=SQL
        let rows = sqlx::query(r#"SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid"#)
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Column {
                name: r.get(0),
                ty: r.get(1),
                nullable: r.get::<i64, _>(2) == 0,
                default: r.get(3),
                primary_key: r.get::<i64, _>(4) > 0,
                comment: None,
            })
            .collect())
    }

    async fn count(&self, conn: &mut SqliteConnection, table: &str) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", quote_ident(table));
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// Views and their statements (SQLite has no partitions, materialized views, enums, domains
    /// or stored functions; a table's triggers are in its `recreate`).
    pub async fn describe(&self) -> Result<super::describe::Described> {
        let mut conn = self.connect().await?;
        // language=SQL
        let views: Vec<(String, String)> =
            sqlx::query_as("SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'view'")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
        Ok(super::describe::Described {
            views: views
                .into_iter()
                .map(|(name, definition)| {
                    let view = super::describe::ViewDef {
                        definition,
                        ..Default::default()
                    };
                    (name, view)
                })
                .collect(),
            ..Default::default()
        })
    }

    /// Tables with exact row counts (SQLite keeps no estimates), columns, indexes, dependents.
    pub async fn catalog(&self) -> Result<Catalog> {
        let mut conn = self.connect().await?;
        let catalog = self.catalog_on(&mut conn).await?;
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(catalog)
    }

    /// The tables and indexes `ddl` (`CREATE TABLE` and `CREATE INDEX` statements) makes, read
    /// as a target's catalog is read: SQLite's own reading of the DDL, in a database of its own
    /// in memory (nothing on disk, nothing shared). A statement SQLite refuses is the error.
    pub async fn catalog_of(ddl: &[String]) -> Result<Catalog> {
        let scratch = Sqlite {
            name: "desired".into(),
            path: PathBuf::from(":memory:"),
            busy_timeout: Duration::ZERO,
        };
        let mut conn = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .connect()
            .await
            .map_err(|e| scratch.err(e))?;
        for statement in ddl {
            sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                .execute(&mut conn)
                .await
                .map_err(|e| {
                    Error::invalid(
                        crate::error::Part::Plan,
                        format!(
                            "`desired`: SQLite refuses `{}`: {e}",
                            crate::sql::first_words(statement, 6)
                        ),
                    )
                })?;
        }
        let catalog = scratch.catalog_on(&mut conn).await?;
        conn.close().await.map_err(|e| scratch.err(e))?;
        Ok(catalog)
    }

    async fn catalog_on(&self, conn: &mut SqliteConnection) -> Result<Catalog> {
        let mut tables = BTreeMap::new();
        for name in self.table_names(conn).await? {
            let info = TableInfo {
                rows: self.count(conn, &name).await?,
                columns: self.columns(conn, &name).await?,
                ..TableInfo::default()
            };
            tables.insert(name, info);
        }
        // language=SQL
        let defs: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.err(e))?;
        for (name, sql) in defs {
            tables.entry(name).and_modify(|t| t.definition = Some(sql));
        }
        // Indexes and triggers first, views last: the order a rebuild recreates them in.
        // language=SQL
        let objects = sqlx::query("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('index', 'view', 'trigger') ORDER BY type = 'view', rowid")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        let names: Vec<String> = tables.keys().cloned().collect();
        for o in &objects {
            let (kind, name, tbl, sql): (String, String, String, String) =
                (o.get(0), o.get(1), o.get(2), o.get(3));
            if is_internal(&name) {
                continue;
            }
            match kind.as_str() {
                "index" => tables.entry(tbl).and_modify(|t| {
                    t.indexes.push(name);
                    // An index backing a constraint (`sqlite_autoindex_…`) has no statement.
                    t.recreate.extend((!sql.is_empty()).then(|| sql.clone()));
                }),
                "trigger" => tables.entry(tbl).and_modify(|t| {
                    t.triggers.push(name);
                    t.recreate.push(sql.clone());
                }),
                _ => {
                    // SQLite records no view dependencies: read the view's tokens for table names.
                    let words: std::collections::BTreeSet<String> =
                        crate::sql::lexer::tokenize(&sql)
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|(_, t)| t.name())
                            .collect();
                    for t in &names {
                        if words.contains(&t.to_lowercase()) || words.contains(t) {
                            tables.entry(t.clone()).and_modify(|i| {
                                i.views.push(name.clone());
                                i.recreate.push(sql.clone());
                            });
                        }
                    }
                    continue;
                }
            };
        }
        for from in &names {
            // language=SQL
            let fks =
                sqlx::query(r#"SELECT "table", "from", "to" FROM pragma_foreign_key_list(?)"#)
                    .bind(from)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
            for fk in fks {
                let (to, col, to_col): (String, String, Option<String>) =
                    (fk.get(0), fk.get(1), fk.get(2));
                let label = format!("{from}({col}) -> {to}({})", to_col.unwrap_or_default());
                if let Some(t) = tables.get_mut(&to) {
                    t.foreign_keys_in.push(label.clone());
                }
                if let Some(t) = tables.get_mut(from) {
                    t.constraints.push(format!("foreign key {label}"));
                }
            }
        }
        Ok(Catalog {
            engine: crate::sql::Dialect::Sqlite,
            tables,
            ..Catalog::default()
        })
    }

    /// The schema as sorted lines: columns, indexes, foreign keys, view and trigger text.
    pub async fn fingerprint(&self) -> Result<Fingerprint> {
        let mut conn = self.connect().await?;
        let fp = self.fingerprint_on(&mut conn).await;
        conn.close().await.map_err(|e| self.err(e))?;
        fp
    }

    async fn fingerprint_on(&self, conn: &mut SqliteConnection) -> Result<Fingerprint> {
        let mut lines = Vec::new();
        for table in self.table_names(conn).await? {
            // The definition from its column list on (its CHECKs, collations, column order): a
            // rebuild renames its table, which rewrites only the name before it.
            let sql: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(&table)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.err(e))?
            .flatten();
            if let Some(body) = sql.as_deref().and_then(|s| s.find('(').map(|i| &s[i..])) {
                lines.push(format!(
                    "table {table} definition {}",
                    body.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
            for (position, c) in self.columns(conn, &table).await?.into_iter().enumerate() {
                lines.push(format!(
                    "table {table} column {position} {} {} null={} default={} pk={}",
                    c.name,
                    c.ty,
                    c.nullable,
                    c.default.unwrap_or_default(),
                    c.primary_key
                ));
            }
            // language=SQL
            let fks = sqlx::query(r#"SELECT "table", "from", coalesce("to", ''), on_update, on_delete FROM pragma_foreign_key_list(?)"#)
                .bind(&table)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
            for fk in fks {
                let v: (String, String, String, String, String) =
                    (fk.get(0), fk.get(1), fk.get(2), fk.get(3), fk.get(4));
                lines.push(format!(
                    "table {table} fk {} -> {}({}) update={} delete={}",
                    v.1, v.0, v.2, v.3, v.4
                ));
            }
        }
        // language=SQL
        let objects = sqlx::query("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE type IN ('index', 'view', 'trigger')")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        for o in objects {
            let (kind, name, tbl, sql): (String, String, String, String) =
                (o.get(0), o.get(1), o.get(2), o.get(3));
            if is_internal(&name) || is_internal(&tbl) {
                continue;
            }
            let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            lines.push(format!("{kind} {name} on {tbl}: {sql}"));
        }
        Ok(Fingerprint::from_lines(lines))
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        let mut conn = self.connect().await?;
        let existing = self.table_names(&mut conn).await?;
        let mut out = BTreeMap::new();
        for t in tables.iter().filter(|t| existing.contains(t)) {
            out.insert(t.clone(), self.count(&mut conn, t).await?);
        }
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// A content hash per table (rows as quoted values, sorted, SHA-256): what a dry-run compares
    /// before `up` and after `down` to prove that rollback restores data, not only the schema.
    pub async fn content_hashes(&self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        use sha2::{Digest, Sha256};
        let mut conn = self.connect().await?;
        let existing = self.table_names(&mut conn).await?;
        let mut out = BTreeMap::new();
        for t in tables.iter().filter(|t| existing.contains(t)) {
            // By name, not position: a column `down` re-adds at the end still compares equal.
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY name")
                    .bind(t)
                    .fetch_all(&mut conn)
                    .await
                    .map_err(|e| self.err(e))?;
            let row = columns
                .iter()
                .map(|c| {
                    format!(
                        "{} || '=' || quote({})",
                        crate::sql::quote_literal(c),
                        quote_ident(c)
                    )
                })
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let mut rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT {row} FROM {}",
                quote_ident(t)
            )))
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
            rows.sort();
            let digest = Sha256::digest(rows.join("\n").as_bytes());
            out.insert(
                t.clone(),
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            );
        }
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Rows of two text columns from a read-only query (a group's discovery, migration tools).
    pub async fn text_pairs(&self, sql: &str) -> Result<Vec<(String, String)>> {
        let mut conn = self.connect().await?;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let rows = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.err(e));
        conn.close().await.ok();
        rows
    }

    /// Runs each check with `PRAGMA query_only` on, so even a check that slipped past the static
    /// test cannot write.
    pub async fn run_checks(&self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        let mut conn = self.connect().await?;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for c in checks {
            let rows = sqlx::query(AssertSqlSafe(c.sql.clone()))
                .fetch_all(&mut conn)
                .await;
            let rows = rows
                .map(|rows| (rows.len(), (rows.len() == 1).then(|| truthy(&rows[0]))))
                .map_err(|e| super::agent_error(&e, &c.sql));
            out.push(super::judge(c, rows));
        }
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Copies the database into `dest` (a consistent snapshot, WAL included).
    pub async fn copy_to(&self, dest: &Path) -> Result<Sqlite> {
        if dest.exists() {
            std::fs::remove_file(dest)?;
        }
        let mut conn = self.connect().await?;
        // language=SQL
        sqlx::query("VACUUM INTO ?")
            .bind(dest.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        conn.close().await.map_err(|e| self.err(e))?;
        Sqlite::open(&format!("{} (copy)", self.name), dest, self.busy_timeout).await
    }

    /// A backup restorable as-is: a `VACUUM INTO` copy, proven by `integrity_check` and by row
    /// counts equal to the source's.
    pub async fn backup(&self, dest: &Path) -> Result<BackupEvidence> {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let copy = self.copy_to(dest).await?;
        let mut conn = copy.connect().await?;
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let tables = copy.table_names(&mut conn).await?;
        let mut copied = BTreeMap::new();
        for t in &tables {
            copied.insert(t.clone(), copy.count(&mut conn, t).await?);
        }
        conn.close().await.map_err(|e| self.err(e))?;
        let source = self.row_counts(&tables).await?;
        let verified = integrity == "ok" && source == copied;
        let fail = |detail: String| {
            Error::BackupFailed {
            target: self.name.clone(),
            detail,
            fix: "call `apply` again (nothing was changed); if the copy keeps failing its check, check the disk that holds the state directory, or configure `[backup] command` in drydock.toml".into(),
        }
        };
        if integrity != "ok" {
            return Err(fail(format!(
                "integrity_check of the copy says {integrity}"
            )));
        }
        if source != copied {
            return Err(fail("row counts of the copy differ from the source".into()));
        }
        Ok(BackupEvidence {
            method: "sqlite VACUUM INTO + integrity_check + row counts".into(),
            location: dest.display().to_string(),
            tables: copied.keys().cloned().collect(),
            verified,
            row_counts: copied,
            taken_at: crate::clock::now(),
            whole_database: true,
        })
    }

    /// Runs `statements` in one `BEGIN IMMEDIATE` transaction (the database write lock, bounded
    /// by `busy_timeout`), measuring each; writes or updates the history row in the same
    /// transaction. On any failure the whole transaction is rolled back.
    pub async fn execute(
        &self,
        step: &str,
        statements: &[Stmt],
        history: Option<History<'_>>,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let mut conn = self.connect().await?;
        // A step that drops a table (a rebuild: new table, copy, drop, rename) runs with foreign
        // keys off — with them on, DROP TABLE deletes every row first, firing the children's ON
        // DELETE actions — and is checked whole before it commits (`foreign_key_check`).
        let rebuild = statements.iter().any(|s| drops_table(&s.sql));
        if rebuild {
            sqlx::raw_sql("PRAGMA foreign_keys = OFF")
                .execute(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) if busy(&e) => {
                return Err(Error::TargetBusy(self.name.clone()));
            }
            Err(e) => return Err(self.err(e)),
        };
        let started = Instant::now();
        let mut runs = Vec::new();
        for (i, Stmt { sql, .. }) in statements.iter().enumerate() {
            let before = root_pages(&mut tx).await.map_err(|e| self.err(e))?;
            let t0 = Instant::now();
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut *tx)
                .await
            {
                drop(tx);
                conn.close().await.ok();
                return Ok(Err(StepFailure {
                    index: i + 1,
                    sql: sql.clone(),
                    sqlstate: None,
                    cause: super::agent_error(&e, sql),
                    raised: None,
                }));
            }
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            let after = root_pages(&mut tx).await.map_err(|e| self.err(e))?;
            let rewritten = before
                .iter()
                .filter(|(t, page)| after.get(*t).is_some_and(|p| p != *page))
                .map(|(t, _)| t.clone())
                .collect();
            let run = statement_run(step, i + 1, sql, duration_ms, rewritten);
            on_statement(&run);
            runs.push(run);
        }
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        if rebuild
            && let Some(failure) = foreign_keys_broken(&mut tx, statements.len())
                .await
                .map_err(|e| self.err(e))?
        {
            drop(tx);
            conn.close().await.ok();
            return Ok(Err(failure));
        }
        if let Some(h) = history {
            write_history(&mut tx, &h, total_ms)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(Ok(runs))
    }

    /// The exclusive lock on `<database>.drydock-lock` that makes applies to this file one at a
    /// time across processes (`BEGIN IMMEDIATE` serialises transactions, not whole applies).
    pub fn lock(&self) -> Result<std::fs::File> {
        let mut path = self.path.clone().into_os_string();
        path.push(".drydock-lock");
        let file = crate::lockfile::open(std::path::Path::new(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::TargetBusy(self.name.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// `PRAGMA integrity_check` and `foreign_key_check`: problems as sentences, empty when clean.
    pub async fn integrity(&self) -> Result<Vec<super::IntegrityProblem>> {
        let mut conn = self.connect().await?;
        let mut problems = Vec::new();
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        if integrity != ["ok"] {
            problems.extend(
                integrity
                    .into_iter()
                    .map(|m| format!("integrity_check: {m}")),
            );
        }
        let fk = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        for r in fk.iter().take(10) {
            let (table, parent): (String, String) = (r.get(0), r.get(2));
            problems.push(format!(
                "foreign_key_check: a row of `{table}` references a missing `{parent}` row"
            ));
        }
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(problems
            .into_iter()
            .map(|detail| super::IntegrityProblem {
                detail,
                fingerprint: None,
            })
            .collect())
    }
}

/// What a statement did on SQLite: its time, the database write lock unless it only read, and
/// the tables it rewrote (their root pages moved).
fn statement_run(
    step: &str,
    index: usize,
    sql: &str,
    duration_ms: f64,
    rewritten: Vec<String>,
) -> StatementRun {
    let writes = !sql
        .trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"));
    StatementRun {
        step: step.to_string(),
        index,
        sql: sql.to_string(),
        duration_ms,
        locks: if writes {
            vec![LockObservation {
                relation: "database".into(),
                mode: crate::sql::LockMode::DatabaseWrite,
                acquired: true,
                kind: None,
            }]
        } else {
            vec![]
        },
        rewritten,
        scanned: vec![],
        scanned_partitions_of: vec![],
        note: None,
    }
}

/// A table rebuild's foreign keys checked before it commits: the step's failure (as its last
/// statement's) when rows point at nothing.
async fn foreign_keys_broken(
    conn: &mut SqliteConnection,
    index: usize,
) -> sqlx::Result<Option<StepFailure>> {
    // language=SQL
    let broken: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT 5")
            .fetch_all(conn)
            .await?;
    if broken.is_empty() {
        return Ok(None);
    }
    Ok(Some(StepFailure {
        index,
        sql: "PRAGMA foreign_key_check".into(),
        sqlstate: None,
        raised: None,
        cause: format!(
            "the step leaves rows whose foreign keys point at nothing: {}",
            broken
                .iter()
                .map(|(t, id, parent)| format!(
                    "{t} row {} -> {parent}",
                    id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }))
}

async fn root_pages(conn: &mut SqliteConnection) -> sqlx::Result<BTreeMap<String, i64>> {
    // language=SQL
    let rows = sqlx::query("SELECT name, rootpage FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect())
}

fn truthy(row: &sqlx::sqlite::SqliteRow) -> Option<bool> {
    if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(0) {
        return Some(n != 0);
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(0) {
        return match s.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Some(true),
            "0" | "f" | "false" => Some(false),
            _ => None,
        };
    }
    None
}

/// Whether a statement is a `DROP TABLE`.
fn drops_table(sql: &str) -> bool {
    let tokens = crate::sql::lexer::tokenize(sql).unwrap_or_default();
    let mut words = tokens.iter().map(|(_, t)| t);
    matches!((words.next(), words.next()), (Some(a), Some(b)) if a.is_word("DROP") && b.is_word("TABLE"))
}

/// SQLite's answer that another connection holds the lock (`SQLITE_BUSY`, `SQLITE_LOCKED` and
/// their extended codes), by its result code, not its message.
fn busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

#[cfg(test)]
mod tests {
    use sqlx::{ConnectOptions, Connection};

    /// A write lock another connection holds is told by SQLite's result code.
    #[tokio::test]
    async fn a_held_write_lock_is_busy_by_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.connect().await.unwrap();
        let _held = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let mut other = options.connect().await.unwrap();
        let e = other.begin_with("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(super::busy(&e), "{e}");
        let syntax = sqlx::raw_sql("SELEC 1")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(!super::busy(&syntax), "{syntax}");
    }
}
