//! Backfill steps on SQLite: keyset batches by the key (the primary key, or the rowid), each its
//! own `BEGIN IMMEDIATE` transaction that saves what it changes (for rollback), changes it and
//! writes its checkpoint (`_drydock_backfill_progress`) — all or nothing, so a process killed at
//! any instant resumes where it stopped. The last transaction also writes the step's history
//! row. Batches are kept short (near 50 ms): while one runs it holds the database's write lock.

use super::*;
use crate::db::{BackfillReport, Control, Health, HistoryRow, short_hash};
use crate::plan::{Backfill, BackfillMode};

// language=SQL
const CREATE_PROGRESS: &str = "CREATE TABLE IF NOT EXISTS _drydock_backfill_progress (
    plan_id TEXT NOT NULL,
    step TEXT NOT NULL,
    last_key TEXT,
    rows_done INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (plan_id, step)
)";

/// How a backfill walks its table and what it saves: the SQL of its batches and its restore.
struct Walk {
    table: String,
    key: String,
    key_name: String,
    /// Keys compare as integers (an INTEGER column, the rowid): the checkpoint, kept as text,
    /// is cast back.
    integer: bool,
    backup: String,
    kept: String,
    filter: String,
    mode: Mode,
}

enum Mode {
    Update(String, Vec<String>),
    Copy(String, Vec<String>, bool),
    Delete,
}

impl Walk {
    /// Resolves the key (`key`, else the single-column primary key, else the rowid) on `conn`.
    async fn resolve(
        conn: &mut SqliteConnection,
        spec: &Backfill,
        columns: &[String],
        place: &str,
    ) -> std::result::Result<Walk, String> {
        // language=SQL
        let info: Vec<(String, String, i64)> =
            sqlx::query_as(r#"SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid"#)
                .bind(&spec.table)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
        if info.is_empty() {
            return Err(format!("table `{}` does not exist", spec.table));
        }
        let pk: Vec<&(String, String, i64)> = info.iter().filter(|c| c.2 > 0).collect();
        let (key_name, ty) = match (&spec.key, pk.as_slice()) {
            (Some(k), _) => {
                let col = info
                    .iter()
                    .find(|c| &c.0 == k)
                    .ok_or_else(|| format!("`{}` has no column `{k}`", spec.table))?;
                (k.clone(), col.1.clone())
            }
            (None, [one]) => (one.0.clone(), one.1.clone()),
            (None, _) => ("rowid".to_string(), "INTEGER".to_string()),
        };
        if key_name == "rowid" && spec.delete {
            return Err(format!(
                "deleting from `{}` in batches needs `key`, a unique column: a row put back by rollback would get a new rowid",
                spec.table
            ));
        }
        let key = if key_name == "rowid" {
            "rowid".to_string()
        } else {
            quote_ident(&key_name)
        };
        let quoted = |cols: &[String]| cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
        let mode = match spec.mode() {
            BackfillMode::Update(set) => Mode::Update(set.to_string(), quoted(columns)),
            BackfillMode::Copy(c) => {
                Mode::Copy(quote_ident(&c.table), quoted(&c.columns), c.skip_existing)
            }
            BackfillMode::Delete => Mode::Delete,
        };
        let key_as = format!("{key} AS {}", quote_ident(&key_name));
        let kept = match &mode {
            Mode::Update(_, cols) => std::iter::once(key_as)
                .chain(cols.iter().cloned())
                .collect::<Vec<_>>()
                .join(", "),
            Mode::Copy(..) => key_as,
            Mode::Delete => "*".into(),
        };
        Ok(Walk {
            table: quote_ident(&spec.table),
            integer: key_name == "rowid" || ty.to_ascii_uppercase().contains("INT"),
            key,
            backup: quote_ident(&format!("_drydock_bf_{}", short_hash(place))),
            kept,
            filter: spec
                .filter
                .as_deref()
                .map(|w| format!(" AND ({w})"))
                .unwrap_or_default(),
            mode,
            key_name,
        })
    }

    /// A checkpoint parameter as the key compares.
    fn param(&self, n: u8) -> String {
        if self.integer {
            format!("CAST(?{n} AS INTEGER)")
        } else {
            format!("?{n}")
        }
    }

    /// The batch's upper bound: the key `?2` rows after the checkpoint `?1`.
    fn bound(&self) -> String {
        // language=SQL
        format!(
            "SELECT CAST(max(k) AS TEXT) FROM (SELECT {key} AS k FROM {table} WHERE ?1 IS NULL OR {key} > {after} ORDER BY {key} LIMIT ?2)",
            key = self.key,
            table = self.table,
            after = self.param(1),
        )
    }

    /// The rows of a batch: after the checkpoint `?1`, up to the bound `?2`.
    fn range(&self) -> String {
        format!(
            "(?1 IS NULL OR {key} > {after}) AND {key} <= {hi}{filter}",
            key = self.key,
            after = self.param(1),
            hi = self.param(2),
            filter = self.filter
        )
    }

    fn create(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {backup} AS SELECT {kept} FROM {table} WHERE 0; \
             CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {backup} ({key})",
            backup = self.backup,
            kept = self.kept,
            table = self.table,
            index = quote_ident(&format!("{}_key", self.backup.trim_matches('"'))),
            key = quote_ident(&self.key_name),
        )
    }

    fn save(&self, range: &str) -> String {
        format!(
            "INSERT OR IGNORE INTO {} SELECT {} FROM {} WHERE {range}",
            self.backup, self.kept, self.table
        )
    }

    fn change(&self, range: &str) -> String {
        match &self.mode {
            Mode::Update(set, _) => format!("UPDATE {} SET {set} WHERE {range}", self.table),
            Mode::Delete => format!("DELETE FROM {} WHERE {range}", self.table),
            Mode::Copy(into, cols, skip) => format!(
                "INSERT {}INTO {into} ({cols}) SELECT {cols} FROM {} WHERE {range}",
                if *skip { "OR IGNORE " } else { "" },
                self.table,
                cols = cols.join(", "),
            ),
        }
    }

    /// Puts back what the backfill changed, then drops the backup.
    fn restore(&self) -> Vec<String> {
        let key = quote_ident(&self.key_name);
        let put_back = match &self.mode {
            Mode::Update(_, cols) => format!(
                "UPDATE {table} SET {sets} WHERE {k} IN (SELECT {key} FROM {backup})",
                table = self.table,
                k = self.key,
                backup = self.backup,
                sets = cols
                    .iter()
                    .map(|c| format!(
                        "{c} = (SELECT {c} FROM {backup} AS dd_saved WHERE dd_saved.{key} = {table}.{k})",
                        backup = self.backup,
                        table = self.table,
                        k = self.key
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Mode::Copy(into, ..) => format!(
                "DELETE FROM {into} WHERE {key} IN (SELECT {key} FROM {})",
                self.backup
            ),
            Mode::Delete => format!("INSERT INTO {} SELECT * FROM {}", self.table, self.backup),
        };
        vec![put_back, format!("DROP TABLE {}", self.backup)]
    }
}

impl Sqlite {
    async fn walk(
        &self,
        conn: &mut SqliteConnection,
        spec: &Backfill,
        columns: &[String],
        place: &str,
    ) -> Result<Walk> {
        Walk::resolve(conn, spec, columns, place)
            .await
            .map_err(|e| Error::invalid(crate::error::Part::Backfill, e))
    }

    /// Runs a backfill in keyset batches (see the module's comment); `halt` stops it after the
    /// batch in progress, without the history row, and the next apply resumes there.
    pub async fn backfill(
        &self,
        step: &str,
        spec: &Backfill,
        columns: &[String],
        history: &HistoryRow<'_>,
        control: Control<'_>,
    ) -> Result<std::result::Result<BackfillReport, StepFailure>> {
        let Control {
            progress,
            halt,
            pause,
        } = control;
        let mut conn = self.connect().await?;
        let walk = self
            .walk(
                &mut conn,
                spec,
                columns,
                &format!("{}/{step}", history.plan_id),
            )
            .await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "{CREATE_PROGRESS}; {}",
            walk.create()
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        let total = self.count(&mut conn, &spec.table).await?;
        let (mut last, mut done, mut batches) =
            self.checkpoint(&mut conn, history.plan_id, step).await?;
        let resumed_from = last.clone();
        let range = walk.range();
        let bound = walk.bound();
        let statements = [walk.save(&range), walk.change(&range)];
        let (started, mut size, mut slowest) = (
            Instant::now(),
            i64::from(spec.batch_size.unwrap_or(1000)),
            0f64,
        );
        let mut halted = false;
        loop {
            if halt.requested() {
                halted = true;
                break;
            }
            if pause.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let t0 = Instant::now();
            let batch = self
                .batch(
                    &mut conn,
                    &bound,
                    &statements,
                    (&last, size),
                    (history.plan_id, step),
                )
                .await;
            let (count, hi) = match batch {
                Ok(b) => b,
                Err(e) => {
                    conn.close().await.ok();
                    return Ok(Err(batch_failed(batches, &last, &e, &statements[1])));
                }
            };
            let Some(hi) = hi else { break };
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            slowest = slowest.max(ms);
            size = next_size(size, ms, spec.batch_size);
            (last, done, batches) = (Some(hi), done + count, batches + 1);
            progress(done as u64, total.max(done as u64), &Health::default());
            if let Some(p) = spec.pause_ms.filter(|p| *p > 0) {
                tokio::time::sleep(Duration::from_millis(p)).await;
            }
        }
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        if !halted {
            self.finish(&mut conn, history, step, duration_ms).await?;
        }
        conn.close().await.ok();
        Ok(Ok(BackfillReport {
            halted,
            rows: done as u64,
            batches: batches as u64,
            lanes: 1,
            resumed_from,
            final_batch_size: size as u64,
            slowest_batch_ms: slowest,
            duration_ms,
            ..BackfillReport::of(&spec.table, &walk.key_name)
        }))
    }

    /// Where an earlier run of this step's backfill stopped: (the last key done, rows done,
    /// batches done); none at the start.
    async fn checkpoint(
        &self,
        conn: &mut SqliteConnection,
        plan_id: &str,
        step: &str,
    ) -> Result<(Option<String>, i64, i64)> {
        // language=SQL
        sqlx::query_as(
            "SELECT last_key, rows_done, batches FROM _drydock_backfill_progress WHERE plan_id = ? AND step = ?",
        )
        .bind(plan_id)
        .bind(step)
        .fetch_optional(conn)
        .await
        .map_err(|e| self.err(e))
        .map(|row| row.unwrap_or((None, 0, 0)))
    }

    /// One batch in one `BEGIN IMMEDIATE` transaction: its bound, its save, its change and its
    /// checkpoint. Returns (rows changed, the bound; none when the walk is over).
    async fn batch(
        &self,
        conn: &mut SqliteConnection,
        bound: &str,
        statements: &[String; 2],
        (last, size): (&Option<String>, i64),
        (plan_id, step): (&str, &str),
    ) -> sqlx::Result<(i64, Option<String>)> {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let hi: Option<String> = sqlx::query_scalar(AssertSqlSafe(bound.to_string()))
            .bind(last)
            .bind(size)
            .fetch_one(&mut *tx)
            .await?;
        let Some(hi) = hi else {
            tx.commit().await?;
            return Ok((0, None));
        };
        let mut count = 0;
        for sql in statements {
            count = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(last)
                .bind(&hi)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
        }
        // language=SQL
        sqlx::query(
            "INSERT INTO _drydock_backfill_progress (plan_id, step, last_key, rows_done, batches) VALUES (?, ?, ?, ?, 1)
             ON CONFLICT (plan_id, step) DO UPDATE SET last_key = excluded.last_key,
                 rows_done = rows_done + excluded.rows_done, batches = batches + 1",
        )
        .bind(plan_id)
        .bind(step)
        .bind(&hi)
        .bind(count)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((count, Some(hi)))
    }

    /// The last checkpoint marks the backfill done, with the step's history row.
    async fn finish(
        &self,
        conn: &mut SqliteConnection,
        history: &HistoryRow<'_>,
        step: &str,
        duration_ms: f64,
    ) -> Result<()> {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e))?;
        // language=SQL
        sqlx::query(
            "UPDATE _drydock_backfill_progress SET done = 1 WHERE plan_id = ? AND step = ?",
        )
        .bind(history.plan_id)
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        write_history(&mut tx, &History::Applied(history.clone()), duration_ms)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The statements that put back what a backfill step changed (run with its `down`); none
    /// when it saved nothing.
    pub async fn backfill_restore(
        &self,
        place: &str,
        spec: &Backfill,
        columns: &[String],
    ) -> Result<Vec<Stmt>> {
        let mut conn = self.connect().await?;
        let walk = self.walk(&mut conn, spec, columns, place).await?;
        let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = ?")
            .bind(walk.backup.trim_matches('"'))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(if exists == 0 {
            vec![]
        } else {
            walk.restore()
                .into_iter()
                .map(|sql| Stmt {
                    sql,
                    transactional: true,
                })
                .collect()
        })
    }

    /// The dry-run's one shot: saves what the whole backfill will change (under `place`).
    pub async fn backfill_save(
        &self,
        place: &str,
        spec: &Backfill,
        columns: &[String],
    ) -> Result<()> {
        self.on_walk(place, spec, columns, |walk| {
            format!(
                "{}; INSERT OR IGNORE INTO {} SELECT {} FROM {} WHERE 1{}",
                walk.create(),
                walk.backup,
                walk.kept,
                walk.table,
                walk.filter
            )
        })
        .await
    }

    /// The dry-run's restore of `backfill_save`.
    pub async fn backfill_undo(
        &self,
        place: &str,
        spec: &Backfill,
        columns: &[String],
    ) -> Result<()> {
        self.on_walk(place, spec, columns, |walk| walk.restore().join("; "))
            .await
    }

    /// Runs the SQL `sql` makes of the backfill's walk, on a connection of its own.
    async fn on_walk(
        &self,
        place: &str,
        spec: &Backfill,
        columns: &[String],
        sql: impl FnOnce(&Walk) -> String,
    ) -> Result<()> {
        let mut conn = self.connect().await?;
        let walk = self.walk(&mut conn, spec, columns, place).await?;
        let out = sqlx::raw_sql(AssertSqlSafe(sql(&walk)))
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e));
        conn.close().await.ok();
        out
    }
}

/// The next batch's size: near 50 ms a batch, for the write lock is the whole database's; an
/// agent's `batch_size` is the most a batch takes.
fn next_size(size: i64, ms: f64, batch_size: Option<u32>) -> i64 {
    let most = batch_size.map_or(50_000, i64::from).min(50_000);
    if ms < 25.0 {
        (size * 3 / 2).min(most).max(size.min(most))
    } else if ms > 100.0 {
        (size / 2).max(100)
    } else {
        size
    }
}

/// A batch's failure as the step's: which batch, after which key, and what the database said
/// of the change (as an agent may read it).
fn batch_failed(batches: i64, last: &Option<String>, e: &sqlx::Error, change: &str) -> StepFailure {
    StepFailure {
        index: (batches + 1) as usize,
        sql: format!(
            "backfill batch after key {}",
            last.as_deref().unwrap_or("(start)")
        ),
        sqlstate: None,
        cause: crate::db::agent_error(e, change),
        raised: None,
    }
}
