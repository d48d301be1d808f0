//! PostgreSQL targets. Dry-runs run on the linked staging inside one transaction that is rolled
//! back, measuring per statement the locks taken on pre-existing relations (`pg_locks`), table
//! rewrites (relfilenode changes) and scans (`pg_stat_xact_user_tables`). Applies never wait in
//! the lock queue long enough to stall traffic: a session advisory lock per target,
//! `lock_timeout` with retried transactions, a pre-flight look for long transactions, and a
//! watcher on a second connection that cancels the migration when it blocks others too long.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use super::{
    BackfillReport, BackupEvidence, Catalog, CheckOutcome, Column, Fingerprint, History,
    IntegrityProblem, LockObservation, StatementRun, StepFailure, Stmt, TableInfo, WatchReport,
};
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::plan::Check;
use crate::render::quote_ident;

mod dependents;
mod saved;
pub use saved::{Place, Saved};

/// Schemas that are never the application's.
// language=SQL
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'drydock', 'drydock_backup') AND n.nspname NOT LIKE 'pg\\_%'";

/// drydock's bookkeeping in the target: every applied step, visible from the database itself.
// language=SQL
const CREATE_HISTORY: &str = "CREATE SCHEMA IF NOT EXISTS drydock;
    CREATE TABLE IF NOT EXISTS drydock.history (
        id bigserial PRIMARY KEY,
        plan_id text NOT NULL,
        step text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL,
        status text NOT NULL,
        duration_ms double precision,
        rolled_back_at timestamptz
    )";

pub struct Postgres {
    name: String,
    options: PgConnectOptions,
    lock_timeout: Duration,
    statement_timeout: Duration,
    roles: Roles,
}

/// The least-privilege roles of unapproved work (`[targets.X] dry_run_role`, `check_role`) and
/// how long a check may run.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub dry_run: Option<String>,
    pub check: Option<String>,
    pub check_timeout: Duration,
}

impl Roles {
    /// `SET LOCAL ROLE` (inside the current transaction) to `role`, when one is configured.
    fn set_local(role: Option<&str>) -> String {
        role.map(|r| format!("SET LOCAL ROLE {};", quote_ident(r)))
            .unwrap_or_default()
    }

    /// What a check's transaction (or savepoint) sets before the check runs: read-only, a short
    /// statement timeout, and the check role.
    fn for_check(&self) -> String {
        format!(
            "SET LOCAL transaction_read_only = on; SET LOCAL statement_timeout = {}; {}",
            super::millis(self.check_timeout).max(1),
            Roles::set_local(self.check.as_deref().or(self.dry_run.as_deref()))
        )
    }
}

/// A dry-run sandbox: one connection inside a transaction that is always rolled back.
pub struct PgSandbox {
    conn: PgConnection,
    name: String,
    roles: Roles,
    /// User relations that existed before the plan ran: oid → qualified name.
    existing: BTreeMap<u32, String>,
    /// Locks drydock's own reads took before the plan's first statement (schema and data
    /// fingerprints): held until the end, and not the plan's.
    baseline: Option<BTreeSet<(String, String)>>,
}

fn qualified(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    }
}

/// Backoff with jitter for lock-timeout retries: 100 ms · 2^attempt ± 50 %, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos) % base.max(1);
    Duration::from_millis(base / 2 + jitter)
}

impl Postgres {
    pub async fn open(name: &str, url: &str, policy: &Policy) -> Result<Postgres> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Target {
                target: name.to_string(),
                cause: crate::errorlog::redact(&e.to_string()),
            })?
            .application_name("drydock")
            .statement_cache_capacity(0);
        let t = Postgres {
            name: name.to_string(),
            options,
            lock_timeout: policy.lock_timeout,
            statement_timeout: policy.statement_timeout,
            roles: Roles {
                check_timeout: policy.check_timeout,
                ..Roles::default()
            },
        };
        t.connect().await?.close().await.map_err(|e| t.err(e))?;
        Ok(t)
    }

    /// The least-privilege roles for unapproved work on this target.
    pub fn with_roles(mut self, dry_run: Option<String>, check: Option<String>) -> Postgres {
        self.roles.dry_run = dry_run;
        self.roles.check = check;
        self
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: crate::errorlog::redact(&e.to_string()),
        }
    }

    async fn connect(&self) -> Result<PgConnection> {
        let mut conn = self.options.connect().await.map_err(|e| self.err(e))?;
        let set = format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            super::millis(self.lock_timeout),
            super::millis(self.statement_timeout)
        );
        sqlx::raw_sql(AssertSqlSafe(set))
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    pub async fn catalog(&self) -> Result<Catalog> {
        let mut conn = self.connect().await?;
        let cat = catalog_on(&mut conn).await.map_err(|e| self.err(e));
        conn.close().await.ok();
        cat
    }

    pub async fn column_dependents(
        &self,
        table: &str,
        column: &str,
    ) -> Result<Option<super::ColumnDependents>> {
        let mut conn = self.connect().await?;
        let deps = dependents::read(&mut conn, table, column)
            .await
            .map_err(|e| self.err(e));
        conn.close().await.ok();
        deps
    }

    pub async fn fingerprint(&self) -> Result<Fingerprint> {
        let mut conn = self.connect().await?;
        let fp = fingerprint_on(&mut conn).await.map_err(|e| self.err(e));
        conn.close().await.ok();
        fp
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        let mut conn = self.connect().await?;
        let out = row_counts_on(&mut conn, tables)
            .await
            .map_err(|e| self.err(e));
        conn.close().await.ok();
        out
    }

    /// Checks run in a READ ONLY transaction under `policy.check_timeout`, as the check role:
    /// even a check that slipped past the static boundary cannot write, run long or read what
    /// the role may not.
    pub async fn run_checks(&self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        let mut conn = self.connect().await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "BEGIN TRANSACTION READ ONLY; {}",
            self.roles.for_check()
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        let out = checks_on(&mut conn, checks).await;
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
        conn.close().await.ok();
        Ok(out)
    }

    pub async fn sandbox(&self) -> Result<PgSandbox> {
        let mut conn = self.connect().await?;
        sqlx::raw_sql("BEGIN")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        // language=SQL
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.oid::int8, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'S', 'v') AND {USER_SCHEMA}"
        )))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        let existing = rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u32, qualified(r.get(1), r.get(2))))
            .collect();
        // Nobody has approved the plan yet: its SQL runs as the dry-run role.
        if let Some(role) = &self.roles.dry_run {
            sqlx::raw_sql(AssertSqlSafe(Roles::set_local(Some(role))))
                .execute(&mut conn)
                .await
                .map_err(|e| self.err(format!("SET ROLE {role} (dry_run_role): {e}")))?;
        }
        Ok(PgSandbox {
            conn,
            name: self.name.clone(),
            roles: self.roles.clone(),
            existing,
            baseline: None,
        })
    }

    /// Warnings about the privileges unapproved agent SQL runs with on this target: a login role
    /// (without a `dry_run_role`) or a configured role that is a superuser or may touch the
    /// server's files and programs; a configured role that does not exist.
    pub async fn privilege_warnings(&self) -> Result<Vec<String>> {
        let mut conn = self.connect().await?;
        let login: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let checked = [
            (
                Some(login.as_str()),
                "connects as",
                self.roles.dry_run.is_none(),
            ),
            (self.roles.dry_run.as_deref(), "has dry_run_role", true),
            (self.roles.check.as_deref(), "has check_role", true),
        ];
        for (role, how, matters) in checked {
            let Some(role) = role.filter(|_| matters) else {
                continue;
            };
            // language=SQL
            let row: Option<(bool, Vec<String>)> = sqlx::query_as(
                "SELECT r.rolsuper, ARRAY(
                     SELECT b.rolname::text FROM pg_roles b
                     WHERE b.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')
                       AND pg_has_role(r.oid, b.oid, 'MEMBER') ORDER BY 1)
                 FROM pg_roles r WHERE r.rolname = $1",
            )
            .bind(role)
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
            let name = &self.name;
            match row {
                None => out.push(format!(
                    "target `{name}` {how} `{role}`, which does not exist: create it (README: least privilege) or remove the setting"
                )),
                Some((true, _)) => out.push(format!(
                    "target `{name}` {how} `{role}`, a superuser: unapproved agent SQL (dry-run steps, checks) runs with every privilege of the server; set a non-superuser `dry_run_role` and `check_role` in [targets.{name}] (README: least privilege)"
                )),
                Some((false, server)) if !server.is_empty() => out.push(format!(
                    "target `{name}` {how} `{role}`, a member of {}: unapproved agent SQL may touch the server's files or programs; use a role without them",
                    server.join(", ")
                )),
                Some(_) => {}
            }
        }
        conn.close().await.ok();
        Ok(out)
    }

    /// The statements restoring a backfill step's saved values, if it saved any.
    pub async fn backfill_restore(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Vec<Stmt>> {
        let mut conn = self.connect().await?;
        let saved = Saved::resolve(
            &self.name,
            &mut conn,
            spec,
            columns,
            Place::Target { plan_id, step },
        )
        .await?;
        let exists = saved.exists(&mut conn).await.map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(if exists {
            saved
                .restore()
                .into_iter()
                .map(|sql| Stmt {
                    sql,
                    transactional: true,
                })
                .collect()
        } else {
            vec![]
        })
    }

    /// Takes the target's session advisory lock: one migration at a time per target, across
    /// every drydock process. Held until `PgLock::release` (or the connection closes).
    pub async fn lock(&self) -> Result<PgLock> {
        let mut conn = self.connect().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(advisory_key(&self.name))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        if !got {
            conn.close().await.ok();
            return Err(Error::TargetBusy(self.name.clone()));
        }
        Ok(PgLock(conn))
    }

    /// Runs one step under the lock discipline (the caller holds `lock`): pre-flight for long
    /// transactions, `lock_timeout` with retried transactions, and the watcher.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute(
        &self,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<(
        std::result::Result<Vec<StatementRun>, StepFailure>,
        WatchReport,
    )> {
        let mut conn = self.connect().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::raw_sql(CREATE_HISTORY)
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;

        let stop = Arc::new(Stop::default());
        let watcher = tokio::spawn(watch(
            self.options.clone(),
            pid,
            policy.max_block,
            stop.clone(),
            None,
        ));
        let result = self
            .run_groups(
                &mut conn,
                step,
                statements,
                tables,
                history,
                policy,
                on_statement,
            )
            .await;
        stop.stop();
        let watch = watcher.await.unwrap_or_default();
        conn.close().await.ok();
        let mut result = result?;
        if let Err(f) = &mut result
            && watch.cancelled
        {
            f.cause = format!(
                "cancelled by the lock watcher: {} session(s) were blocked behind the migration for over policy.max_block ({} ms): {}",
                watch.max_blocked_sessions, watch.longest_wait_ms, f.cause
            );
        }
        Ok((result, watch))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_groups(
        &self,
        conn: &mut PgConnection,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        // Consecutive transactional statements form one transaction; the others run alone.
        let mut groups: Vec<(bool, Vec<(usize, &Stmt)>)> = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            match groups.last_mut() {
                Some((true, g)) if s.transactional => g.push((i, s)),
                _ => groups.push((s.transactional, vec![(i, s)])),
            }
        }
        let started = Instant::now();
        let mut runs = Vec::new();
        let last_tx_group = groups.iter().rposition(|(tx, _)| *tx);
        for (gi, (transactional, group)) in groups.iter().enumerate() {
            let with_history = if Some(gi) == last_tx_group {
                history.as_ref()
            } else {
                None
            };
            let mut attempt = 0;
            loop {
                self.preflight(conn, tables, policy, attempt).await?;
                let outcome = self
                    .run_group(conn, step, group, *transactional, with_history, started)
                    .await?;
                match outcome {
                    Ok(group_runs) => {
                        for r in &group_runs {
                            on_statement(r);
                        }
                        runs.extend(group_runs);
                        break;
                    }
                    Err(f)
                        if f.sqlstate.as_deref() == Some("55P03")
                            && attempt + 1 < policy.lock_retries =>
                    {
                        attempt += 1;
                        tracing::info!(target_name = %self.name, step, attempt, "lock timeout; retrying the step's transaction");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Err(mut f) => {
                        if f.sqlstate.as_deref() == Some("55P03") {
                            f.cause = format!(
                                "could not get its lock within policy.lock_timeout ({} ms) in {} tries; another session holds a conflicting lock: {}",
                                super::millis(policy.lock_timeout),
                                attempt + 1,
                                f.cause
                            );
                        }
                        if !*transactional && let Some(index) = created_index_name(&f.sql) {
                            // A failed CONCURRENTLY build leaves an INVALID index behind.
                            let drop = format!(
                                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                                quote_ident(&index)
                            );
                            if sqlx::raw_sql(AssertSqlSafe(drop))
                                .execute(&mut *conn)
                                .await
                                .is_ok()
                            {
                                f.cause.push_str(&format!(
                                    " (the invalid index `{index}` it left was dropped)"
                                ));
                            }
                        }
                        return Ok(Err(f));
                    }
                }
            }
        }
        if last_tx_group.is_none()
            && let Some(h) = history.as_ref()
        {
            sqlx::raw_sql("BEGIN")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
            write_history(conn, h, started.elapsed().as_secs_f64() * 1000.0)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::raw_sql("COMMIT")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(Ok(runs))
    }

    async fn run_group(
        &self,
        conn: &mut PgConnection,
        step: &str,
        group: &[(usize, &Stmt)],
        transactional: bool,
        history: Option<&History<'_>>,
        started: Instant,
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        if transactional {
            sqlx::raw_sql("BEGIN")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let mut runs = Vec::new();
        let mut held = BTreeSet::new();
        for (i, s) in group {
            let t0 = Instant::now();
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.sql.clone()))
                .execute(&mut *conn)
                .await
            {
                if transactional {
                    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
                }
                return Ok(Err(StepFailure {
                    index: i + 1,
                    sql: s.sql.clone(),
                    sqlstate: sqlstate(&e),
                    cause: super::agent_error(&e, &s.sql),
                }));
            }
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            // The locks the transaction holds once the statement ran: those it took, and those
            // earlier statements took (held until COMMIT). A statement run alone (CONCURRENTLY)
            // has released its own by now.
            let now = if transactional {
                held_locks(conn).await.map_err(|e| self.err(e))?
            } else {
                BTreeSet::new()
            };
            let locks = now
                .iter()
                .map(|(relation, mode)| LockObservation {
                    relation: relation.clone(),
                    mode: mode.clone(),
                    acquired: !held.contains(&(relation.clone(), mode.clone())),
                })
                .collect();
            held = now;
            runs.push(StatementRun {
                step: step.to_string(),
                index: i + 1,
                sql: s.sql.clone(),
                duration_ms,
                locks,
                rewritten: vec![],
                scanned: vec![],
                note: (!transactional).then(|| {
                    "run alone (non-transactional): its locks were released when it ended".into()
                }),
            });
        }
        if let Some(h) = history
            && let Err(e) = write_history(conn, h, started.elapsed().as_secs_f64() * 1000.0).await
        {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
            return Err(self.err(e));
        }
        if transactional && let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
            return Ok(Err(StepFailure {
                index: group.last().map(|(i, _)| i + 1).unwrap_or(0),
                sql: "COMMIT".into(),
                sqlstate: sqlstate(&e),
                cause: crate::errorlog::redact(&e.to_string()),
            }));
        }
        Ok(Ok(runs))
    }

    /// Waits (with backoff) while another session's long transaction holds a lock on the step's
    /// tables; refuses after `policy.lock_retries` looks rather than queue behind it.
    async fn preflight(
        &self,
        conn: &mut PgConnection,
        tables: &[String],
        policy: &Policy,
        attempt: u32,
    ) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let mut look = attempt;
        loop {
            // language=SQL
            let rows = sqlx::query(
                "SELECT DISTINCT a.pid, coalesce(a.state, ''), coalesce(a.application_name, ''),
                        extract(epoch FROM now() - a.xact_start)::float8, l.relation::regclass::text
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
                   AND l.relation = ANY (SELECT to_regclass(t)::oid FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL)
                   AND a.xact_start < now() - make_interval(secs => $2)",
            )
            .bind(tables)
            .bind(policy.lock_timeout.as_secs_f64())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
            if rows.is_empty() {
                return Ok(());
            }
            if look + 1 >= policy.lock_retries {
                let who: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "pid {} ({}, application `{}`) has held a lock on `{}` for {:.1} s",
                            r.get::<i32, _>(0),
                            r.get::<String, _>(1),
                            r.get::<String, _>(2),
                            r.get::<String, _>(4),
                            r.get::<f64, _>(3)
                        )
                    })
                    .collect();
                return Err(Error::BlockedByTransaction {
                    target: self.name.clone(),
                    detail: who.join("; "),
                });
            }
            look += 1;
            tokio::time::sleep(backoff(look)).await;
        }
    }

    /// Runs a backfill in keyset batches. Each batch is its own transaction that also writes the
    /// checkpoint (the last key done) to `drydock.backfill_progress`, so a process killed at any
    /// instant resumes exactly where it stopped: no batch is skipped or repeated. The batch size
    /// adapts to keep batches near 100 ms; lock timeouts retry the batch with backoff; the table
    /// is vacuumed every ~400k rows to keep its heap from doubling. The step's history row is
    /// written with the final checkpoint.
    pub async fn backfill(
        &self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        history: &super::HistoryRow<'_>,
        policy: &Policy,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<std::result::Result<BackfillReport, StepFailure>> {
        let mut conn = self.connect().await?;
        // language=SQL
        sqlx::raw_sql(
            "CREATE SCHEMA IF NOT EXISTS drydock;
             CREATE TABLE IF NOT EXISTS drydock.backfill_progress (
                 plan_id text NOT NULL,
                 step text NOT NULL,
                 last_key text,
                 rows_done bigint NOT NULL DEFAULT 0,
                 batches bigint NOT NULL DEFAULT 0,
                 done boolean NOT NULL DEFAULT false,
                 updated_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (plan_id, step)
             );",
        )
        .execute(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        sqlx::raw_sql(CREATE_HISTORY)
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let table = qualified_ident(&spec.table);
        // The values the batches overwrite are saved in the same statements, for rollback.
        let saved = saved::Saved::resolve(
            &self.name,
            &mut conn,
            spec,
            columns,
            saved::Place::Target {
                plan_id: history.plan_id,
                step,
            },
        )
        .await?;
        sqlx::raw_sql(AssertSqlSafe(saved.create()))
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let (key, key_type) = (saved.key_name.clone(), saved.key_type.clone());
        let estimate = row_counts_on(&mut conn, std::slice::from_ref(&spec.table))
            .await
            .map_err(|e| self.err(e))?;
        let total = estimate.values().sum::<u64>();
        // language=SQL
        let (mut last, mut done, mut batches): (Option<String>, i64, i64) = sqlx::query_as(
            "SELECT last_key, rows_done, batches FROM drydock.backfill_progress WHERE plan_id = $1 AND step = $2",
        )
        .bind(history.plan_id)
        .bind(step)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| self.err(e))?
        .unwrap_or((None, 0, 0));
        let resumed_from = last.clone();
        let qkey = quote_ident(&key);
        let filter = spec
            .filter
            .as_deref()
            .map(|w| format!("AND ({w})"))
            .unwrap_or_default();
        // The one statement a batch runs: select the next keys, update them, report count and max.
        // language=SQL
        // A batch is the next `$2` keys after the checkpoint: their upper bound comes from an
        // index-only scan, then one ranged UPDATE (an index range scan) changes the rows in it
        // that match `where`. The bound becomes the checkpoint.
        let batch_sql = format!(
            "WITH bound AS (
                 SELECT max(k) AS hi FROM (
                     SELECT {qkey} AS k FROM {table}
                     WHERE ($1::text IS NULL OR {qkey} > $1::text::{key_type})
                     ORDER BY {qkey} LIMIT $2
                 ) AS next_keys
             ), {saved_cte}, updated AS (
                 UPDATE {table} SET {set}
                 WHERE ($1::text IS NULL OR {qkey} > $1::text::{key_type}) AND {qkey} <= (SELECT hi FROM bound) {filter}
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM updated)::int8, (SELECT hi FROM bound)::text, (SELECT count(*) FROM saved)::int8",
            set = spec.set,
            saved_cte = saved.save_batch_cte(&format!(
                "($1::text IS NULL OR {qkey} > $1::text::{key_type}) AND {qkey} <= (SELECT hi FROM bound)"
            )),
        );
        // The watcher samples sessions blocked behind the batches: one kept waiting over 100 ms
        // halves the batch size, and a batch that blocks others past policy.max_block is
        // cancelled and retried smaller.
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let stop = StopOnDrop(Arc::new(Stop::default()));
        let blocked = Arc::new(AtomicU64::new(0));
        tokio::spawn(watch(
            self.options.clone(),
            pid,
            policy.max_block,
            stop.0.clone(),
            Some(blocked.clone()),
        ));
        let mut blocked_seen = 0u64;
        let started = Instant::now();
        let mut size = i64::from(spec.batch_size.unwrap_or(1000));
        let mut since_vacuum = 0i64;
        let mut vacuum: Option<tokio::task::JoinHandle<()>> = None;
        let mut slowest_ms = 0f64;
        loop {
            let mut attempt = 0;
            let (count, max_key) = loop {
                let t0 = Instant::now();
                let r: std::result::Result<(i64, Option<String>), sqlx::Error> = async {
                    sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
                    let row: (i64, Option<String>) =
                        sqlx::query_as(AssertSqlSafe(batch_sql.clone())).bind(&last).bind(size).fetch_one(&mut conn).await?;
                    if let Some(k) = &row.1 {
                        // language=SQL
                        sqlx::query(
                            "INSERT INTO drydock.backfill_progress (plan_id, step, last_key, rows_done, batches) VALUES ($1, $2, $3, $4, 1)
                             ON CONFLICT (plan_id, step) DO UPDATE SET last_key = EXCLUDED.last_key,
                                 rows_done = drydock.backfill_progress.rows_done + EXCLUDED.rows_done,
                                 batches = drydock.backfill_progress.batches + 1, updated_at = now()",
                        )
                        .bind(history.plan_id)
                        .bind(step)
                        .bind(k)
                        .bind(row.0)
                        .execute(&mut conn)
                        .await?;
                    }
                    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
                    Ok(row)
                }
                .await;
                match r {
                    Ok(row) => {
                        let ms = t0.elapsed().as_secs_f64() * 1000.0;
                        slowest_ms = slowest_ms.max(ms);
                        // Adapt: shrink when others were blocked or over 200 ms, grow while well
                        // under 100 ms.
                        let seen = blocked.load(Ordering::SeqCst);
                        if seen > blocked_seen {
                            blocked_seen = seen;
                            size = (size / 2).max(100);
                        } else if ms < 50.0 {
                            size = (size * 3 / 2).min(100_000);
                        } else if ms > 200.0 {
                            size = (size / 2).max(100);
                        }
                        break row;
                    }
                    Err(e) => {
                        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
                        let state = sqlstate(&e);
                        // 55P03: lock timeout; 57014: cancelled by the watcher. Retry smaller.
                        if matches!(state.as_deref(), Some("55P03" | "57014"))
                            && attempt + 1 < policy.lock_retries
                        {
                            attempt += 1;
                            size = (size / 2).max(100);
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                        conn.close().await.ok();
                        return Ok(Err(StepFailure {
                            index: (batches + 1) as usize,
                            sql: format!(
                                "backfill batch after key {}",
                                last.as_deref().unwrap_or("(start)")
                            ),
                            sqlstate: state,
                            cause: super::agent_error(&e, &batch_sql),
                        }));
                    }
                }
            };
            let Some(max_key) = max_key else { break };
            last = Some(max_key);
            done += count;
            batches += 1;
            since_vacuum += count;
            progress(done as u64, total.max(done as u64));
            // Every ~400k rows, VACUUM on a second connection while the batches go on, so the
            // space of the rows already rewritten is reused instead of doubling the heap.
            if since_vacuum >= 400_000 && vacuum.as_ref().is_none_or(|v| v.is_finished()) {
                let (options, sql) = (self.options.clone(), format!("VACUUM {table}"));
                vacuum = Some(tokio::spawn(async move {
                    if let Ok(mut c) = options.application_name("drydock-vacuum").connect().await {
                        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut c).await.ok();
                        c.close().await.ok();
                    }
                }));
                since_vacuum = 0;
            }
            if let Some(p) = spec.pause_ms.filter(|p| *p > 0) {
                tokio::time::sleep(Duration::from_millis(p)).await;
            }
        }
        if let Some(v) = vacuum {
            v.await.ok();
        }
        let r: sqlx::Result<()> = async {
            sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
            // language=SQL
            sqlx::query("UPDATE drydock.backfill_progress SET done = true, updated_at = now() WHERE plan_id = $1 AND step = $2")
                .bind(history.plan_id)
                .bind(step)
                .execute(&mut conn)
                .await?;
            write_history(&mut conn, &History::Applied(history.clone()), started.elapsed().as_secs_f64() * 1000.0).await?;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
            Ok(())
        }
        .await;
        r.map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(Ok(BackfillReport {
            table: spec.table.clone(),
            key,
            rows: done as u64,
            batches: batches as u64,
            resumed_from,
            final_batch_size: size as u64,
            blocked_samples: blocked.load(Ordering::SeqCst),
            slowest_batch_ms: slowest_ms,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    /// A restorable snapshot of the affected tables in the `drydock_backup` schema, verified by
    /// row count and content hash in one consistent snapshot.
    pub async fn snapshot(
        &self,
        label: &str,
        tables: &[String],
        max_rows: u64,
    ) -> Result<BackupEvidence> {
        let mut conn = self.connect().await?;
        let fail = |detail: String| Error::BackupFailed {
            target: self.name.clone(),
            detail,
        };
        let estimates = row_counts_on(&mut conn, tables)
            .await
            .map_err(|e| self.err(e))?;
        let total: u64 = estimates.values().sum();
        if total > max_rows {
            conn.close().await.ok();
            return Err(fail(format!(
                "the affected tables hold ~{total} rows, above policy.snapshot_max_rows ({max_rows}); configure `[backup] command` so drydock can verify your real backups instead"
            )));
        }
        sqlx::raw_sql("SET statement_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE SCHEMA IF NOT EXISTS drydock_backup")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let mut counts = BTreeMap::new();
        for table in estimates.keys() {
            let source = qualified_ident(table);
            let copy = quote_ident(&format!("{label}_{}", table.replace('.', "_")));
            let sql = format!("CREATE TABLE drydock_backup.{copy} AS TABLE {source}");
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let probe = |rel: &str| {
                format!(
                    "SELECT count(*)::int8, coalesce(sum(hashtext(t::text)::int8), 0)::int8 FROM {rel} AS t"
                )
            };
            let a: (i64, i64) = sqlx::query_as(AssertSqlSafe(probe(&source)))
                .fetch_one(&mut conn)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let b: (i64, i64) =
                sqlx::query_as(AssertSqlSafe(probe(&format!("drydock_backup.{copy}"))))
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            if a != b {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
                return Err(fail(format!(
                    "the snapshot of `{table}` differs from the source ({a:?} vs {b:?})"
                )));
            }
            counts.insert(table.clone(), a.0 as u64);
        }
        sqlx::raw_sql("COMMIT")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(BackupEvidence {
            method: "postgres snapshot of the affected tables into drydock_backup, verified by row count and content hash".into(),
            location: format!("schema drydock_backup, tables {label}_*"),
            verified: true,
            tables: counts.keys().cloned().collect(),
            row_counts: counts,
            taken_at: crate::store::now(),
            whole_database: false,
        })
    }

    pub async fn history(&self, plan_id: &str) -> Result<Vec<super::HistoryEntry>> {
        let mut conn = self.connect().await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('drydock.history') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let rows = if exists {
            // language=SQL
            sqlx::query("SELECT step, checksum, applied_at::text, rolled_back_at::text FROM drydock.history WHERE plan_id = $1 ORDER BY id")
                .bind(plan_id)
                .fetch_all(&mut conn)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| super::HistoryEntry {
                    step: r.get(0),
                    checksum: r.get(1),
                    applied_at: r.get(2),
                    rolled_back_at: r.get(3),
                })
                .collect()
        } else {
            vec![]
        };
        conn.close().await.ok();
        Ok(rows)
    }

    /// Invalid indexes and unvalidated constraints, as sentences.
    pub async fn integrity(&self) -> Result<Vec<IntegrityProblem>> {
        let mut conn = self.connect().await?;
        // Each problem carries the object's fingerprint line, so that one the schema had before
        // the plan is told apart from one the plan left.
        // language=SQL
        let invalid: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT i.indexrelid::regclass::text, 'index ' || pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {USER_SCHEMA}"
        )))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        // language=SQL
        let unvalidated: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT co.conname::text, co.conrelid::regclass::text,
                    'constraint ' || co.conrelid::regclass::text || '.' || co.conname || ' '
             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
             WHERE NOT co.convalidated AND {USER_SCHEMA}"
        )))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        conn.close().await.ok();
        Ok(invalid
            .into_iter()
            .map(|(i, line)| IntegrityProblem {
                detail: format!("index `{i}` is INVALID (a failed CONCURRENTLY build?); drop and rebuild it"),
                fingerprint: Some((line, " INVALID".into())),
            })
            .chain(unvalidated.into_iter().map(|(c, t, line)| IntegrityProblem {
                detail: format!("constraint `{c}` on `{t}` is NOT VALID; run ALTER TABLE {t} VALIDATE CONSTRAINT {c}"),
                fingerprint: Some((line, " NOT VALID".into())),
            }))
            .collect())
    }
}

/// Stops a watcher when the operation it watches ends, however it ends.
/// Tells the watcher to stop, waking it at once: no sampling pause may sit between a step's
/// commit and its caller.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The connection holding a target's advisory lock.
pub struct PgLock(PgConnection);

impl PgLock {
    pub async fn release(self) {
        let mut conn = self.0;
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut conn)
            .await
            .ok();
        conn.close().await.ok();
    }
}

/// A stable 64-bit key for the target's advisory lock.
fn advisory_key(target: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("drydock:{target}").as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn qualified_ident(table: &str) -> String {
    match table.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(table),
    }
}

/// The name of the index a `CREATE INDEX CONCURRENTLY name ...` statement builds.
fn created_index_name(sql: &str) -> Option<String> {
    let toks = crate::analysis::lexer::tokenize(sql).ok()?;
    let words: Vec<&crate::analysis::lexer::Token> = toks.iter().map(|(_, t)| t).collect();
    let at = words.iter().position(|t| t.is_word("CONCURRENTLY"))?;
    let mut i = at + 1;
    if words.get(i).is_some_and(|t| t.is_word("IF")) {
        i += 3;
    }
    let name = words.get(i)?;
    if name.is_word("ON") {
        None
    } else {
        name.name()
    }
}

async fn write_history(
    conn: &mut PgConnection,
    h: &History<'_>,
    duration_ms: f64,
) -> sqlx::Result<()> {
    match h {
        History::Applied(row) => {
            // language=SQL
            sqlx::query("INSERT INTO drydock.history (plan_id, step, checksum, applied_by, status, duration_ms) VALUES ($1, $2, $3, $4, 'applied', $5)")
                .bind(row.plan_id)
                .bind(row.step)
                .bind(row.checksum)
                .bind(row.by)
                .bind(duration_ms)
                .execute(conn)
                .await?;
        }
        History::RolledBack { plan_id, step } => {
            // language=SQL
            sqlx::query("UPDATE drydock.history SET status = 'rolled-back', rolled_back_at = now() WHERE plan_id = $1 AND step = $2 AND rolled_back_at IS NULL")
                .bind(plan_id)
                .bind(step)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Samples, every 50 ms, the sessions blocked behind `pid`; cancels `pid`'s statement when any
/// has waited longer than `max_block`.
async fn watch(
    options: PgConnectOptions,
    pid: i32,
    max_block: Duration,
    stop: Arc<Stop>,
    blocked_samples: Option<Arc<AtomicU64>>,
) -> WatchReport {
    let mut report = WatchReport::default();
    let Ok(mut conn) = options.application_name("drydock-watcher").connect().await else {
        return report;
    };
    while !stop.stopped() {
        // language=SQL
        let row: Option<(i64, f64)> = sqlx::query_as(
            "SELECT count(*)::int8, coalesce(max(extract(epoch FROM now() - query_start)), 0)::float8
             FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
        )
        .bind(pid)
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten();
        report.samples += 1;
        if let Some((blocked, wait_s)) = row {
            report.max_blocked_sessions = report.max_blocked_sessions.max(blocked as u64);
            report.longest_wait_ms = report.longest_wait_ms.max((wait_s * 1000.0) as u64);
            // A session kept waiting over 100 ms (a backfill batch's target duration) counts.
            if let (true, Some(counter)) = (blocked > 0 && wait_s > 0.1, &blocked_samples) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            if blocked > 0 && wait_s > max_block.as_secs_f64() && !report.cancelled {
                tracing::warn!(
                    pid,
                    blocked,
                    wait_s,
                    "migration blocks others past policy.max_block; cancelling it"
                );
                let _ = sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&mut conn)
                    .await;
                report.cancelled = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.wake.notified() => {}
        }
    }
    // Closing is the server's business: no round trip here for the caller to wait on.
    drop(conn);
    report
}

impl PgSandbox {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: crate::errorlog::redact(&e.to_string()),
        }
    }

    pub async fn fingerprint(&mut self) -> Result<Fingerprint> {
        fingerprint_on(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn run_checks(&mut self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        // A savepoint keeps a failing check from aborting the sandbox's transaction.
        let mut out = Vec::new();
        // Inside it the check runs read-only, under the check timeout and role; rolling back to
        // the savepoint restores the sandbox's own settings.
        let setup = format!("SAVEPOINT drydock_check; {}", self.roles.for_check());
        for c in checks {
            sqlx::raw_sql(AssertSqlSafe(setup.clone()))
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            out.extend(checks_on(&mut self.conn, std::slice::from_ref(c)).await);
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT drydock_check")
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// Runs statements inside the sandbox transaction, measuring locks, rewrites and scans on the
    /// relations that existed before the plan. Non-transactional statements run as their
    /// transactional equivalent (CONCURRENTLY removed) and say so.
    pub async fn execute(
        &mut self,
        step: &str,
        statements: &[Stmt],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let oids: Vec<i64> = self.existing.keys().map(|o| i64::from(*o)).collect();
        let mut runs = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            let (sql, note) = if s.transactional {
                (s.sql.clone(), None)
            } else {
                match transactional_equivalent(&s.sql) {
                    Some(eq) => (eq, Some("non-transactional: measured through its transactional equivalent (CONCURRENTLY removed)".to_string())),
                    None => {
                        runs.push(StatementRun {
                            step: step.to_string(),
                            index: i + 1,
                            sql: s.sql.clone(),
                            duration_ms: 0.0,
                            locks: vec![],
                            rewritten: vec![],
                            scanned: vec![],
                            note: Some("non-transactional and without a transactional equivalent: not run in the dry-run".into()),
                        });
                        continue;
                    }
                }
            };
            let locks_before = self.locks(&oids).await?;
            if self.baseline.is_none() {
                self.baseline = Some(locks_before.clone());
            }
            let files_before = self.filenodes(&oids).await?;
            let scans_before = self.scans().await?;
            let t0 = Instant::now();
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut self.conn)
                .await
            {
                return Ok(Err(StepFailure {
                    index: i + 1,
                    sql: s.sql.clone(),
                    sqlstate: sqlstate(&e),
                    cause: super::agent_error(&e, &s.sql),
                }));
            }
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            let locks_after = self.locks(&oids).await?;
            let files_after = self.filenodes(&oids).await?;
            let scans_after = self.scans().await?;
            // Every lock held while the statement ran: those it took, and those earlier
            // statements of the transaction took and still hold.
            let baseline = self.baseline.clone().unwrap_or_default();
            let locks = locks_after
                .iter()
                .filter(|l| !baseline.contains(*l))
                .map(|(rel, mode)| LockObservation {
                    relation: rel.clone(),
                    mode: mode.clone(),
                    acquired: !locks_before.contains(&(rel.clone(), mode.clone())),
                })
                .collect();
            let rewritten = files_before
                .iter()
                .filter(|(oid, (_, node))| files_after.get(*oid).is_some_and(|(_, n)| n != node))
                .map(|(_, (name, _))| name.clone())
                .collect();
            let scanned = scans_after
                .iter()
                .filter(|(t, n)| **n > scans_before.get(*t).copied().unwrap_or(0))
                .map(|(t, _)| t.clone())
                .filter(|t| self.existing.values().any(|e| e == t))
                .collect();
            runs.push(StatementRun {
                step: step.to_string(),
                index: i + 1,
                sql: s.sql.clone(),
                duration_ms,
                locks,
                rewritten,
                scanned,
                note,
            });
        }
        Ok(Ok(runs))
    }

    /// Relation locks this session holds on pre-existing relations, as (relation, mode).
    async fn locks(&mut self, oids: &[i64]) -> Result<BTreeSet<(String, String)>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT l.relation::int8, l.mode FROM pg_locks l
             WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.relation::int8 = ANY ($1)",
        )
        .bind(oids)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let oid = r.get::<i64, _>(0) as u32;
                let mode = mode_name(&r.get::<String, _>(1));
                self.existing.get(&oid).map(|n| (n.clone(), mode))
            })
            .collect())
    }

    /// Table relfilenodes: a change means the table was rewritten.
    async fn filenodes(&mut self, oids: &[i64]) -> Result<BTreeMap<i64, (String, i64)>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT c.oid::int8, c.relfilenode::int8 FROM pg_class c WHERE c.oid::int8 = ANY ($1) AND c.relkind IN ('r', 'm')",
        )
        .bind(oids)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let oid: i64 = r.get(0);
                self.existing
                    .get(&(oid as u32))
                    .map(|n| (oid, (n.clone(), r.get::<i64, _>(1))))
            })
            .collect())
    }

    /// Sequential scans of user tables in this transaction so far.
    async fn scans(&mut self) -> Result<BTreeMap<String, i64>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT schemaname, relname, coalesce(seq_scan, 0)::int8 FROM pg_stat_xact_user_tables",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (qualified(r.get(0), r.get(1)), r.get::<i64, _>(2)))
            .collect())
    }

    /// A content hash per existing table (rows as JSON — keyed by column name, so a column that
    /// `down` re-adds at the end still compares equal — each hashed, sorted, hashed again): what
    /// a dry-run compares before `up` and after `down`.
    pub async fn content_hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        // drydock reads the data with its own privileges, not the dry-run role's, which may not
        // read every table the plan touches.
        if self.roles.dry_run.is_some() {
            sqlx::raw_sql("RESET ROLE")
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let out = self.hashes(tables).await;
        if let Some(role) = &self.roles.dry_run {
            sqlx::raw_sql(AssertSqlSafe(Roles::set_local(Some(role))))
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        out
    }

    async fn hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for t in tables {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(t)
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            if !exists {
                continue;
            }
            // language=SQL
            let hash: String = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(to_jsonb(r)::text) AS h FROM {} AS r) AS rows",
                qualified_ident(t)
            )))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
            out.insert(t.clone(), hash);
        }
        Ok(out)
    }

    /// Saves the values a backfill step is about to overwrite, into a temporary table.
    pub async fn backfill_save(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        let saved = self.saved(step, spec, columns).await?;
        self.run_raw(&format!("{}; {}", saved.create(), saved.save_all()))
            .await
    }

    /// Puts a backfill step's saved values back.
    pub async fn backfill_restore(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        let saved = self.saved(step, spec, columns).await?;
        self.run_raw(&saved.restore().join("; ")).await
    }

    async fn saved(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Saved> {
        Saved::resolve(
            &self.name,
            &mut self.conn,
            spec,
            columns,
            Place::Sandbox { step },
        )
        .await
    }

    async fn run_raw(&mut self, sql: &str) -> Result<()> {
        Saved::run(&mut self.conn, sql)
            .await
            .map_err(|e| self.err(e))
    }

    /// Rolls the sandbox back: nothing of the dry-run persists.
    pub async fn finish(mut self) {
        sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await.ok();
        self.conn.close().await.ok();
    }
}

/// `AccessExclusiveLock` → `ACCESS EXCLUSIVE`, as the documentation names lock modes.
fn mode_name(mode: &str) -> String {
    mode.trim_end_matches("Lock")
        .chars()
        .fold(String::new(), |mut s, c| {
            if c.is_uppercase() && !s.is_empty() {
                s.push(' ');
            }
            s.push(c.to_ascii_uppercase());
            s
        })
}

/// Relation locks this session holds on user relations, as (relation, mode).
async fn held_locks(conn: &mut PgConnection) -> sqlx::Result<BTreeSet<(String, String)>> {
    // language=SQL
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT n.nspname::text, c.relname::text, l.mode FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(schema, name, mode)| (qualified(&schema, &name), mode_name(&mode)))
        .collect())
}

/// `CREATE INDEX CONCURRENTLY` → `CREATE INDEX` (and the same for REINDEX/DROP INDEX); other
/// non-transactional statements (VACUUM, ...) have none.
fn transactional_equivalent(sql: &str) -> Option<String> {
    let toks = crate::analysis::lexer::tokenize(sql).ok()?;
    let (pos, _) = toks.iter().find(|(_, t)| t.is_word("CONCURRENTLY"))?;
    let first = toks.first().map(|(_, t)| t.clone())?;
    if !(first.is_word("CREATE") || first.is_word("DROP") || first.is_word("REINDEX")) {
        return None;
    }
    Some(format!(
        "{}{}",
        &sql[..*pos],
        &sql[pos + "CONCURRENTLY".len()..]
    ))
}

async fn checks_on(conn: &mut PgConnection, checks: &[Check]) -> Vec<CheckOutcome> {
    let mut out = Vec::new();
    for c in checks {
        let rows = sqlx::query(AssertSqlSafe(c.sql.clone()))
            .fetch_all(&mut *conn)
            .await;
        let rows = rows
            .map(|rows| {
                (
                    rows.len(),
                    (rows.len() == 1).then(|| rows[0].try_get::<Option<bool>, _>(0).ok().flatten()),
                )
            })
            .map_err(|e| super::agent_error(&e, &c.sql));
        out.push(super::judge(c, rows));
    }
    out
}

async fn row_counts_on(
    conn: &mut PgConnection,
    tables: &[String],
) -> sqlx::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for t in tables {
        // language=SQL
        let row: Option<(f64, i64)> = sqlx::query_as(
            "SELECT c.reltuples::float8, c.relpages::int8 FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')",
        )
        .bind(t)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((estimate, pages)) = row else {
            continue;
        };
        let rows = if estimate >= 0.0 {
            estimate as u64
        } else if pages < 10_000 {
            // Never analysed: count small tables exactly.
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*)::int8 FROM {}",
                qualified_ident(t)
            )))
            .fetch_one(&mut *conn)
            .await?;
            n as u64
        } else {
            0
        };
        out.insert(t.clone(), rows);
    }
    Ok(out)
}

async fn catalog_on(conn: &mut PgConnection) -> sqlx::Result<Catalog> {
    // language=SQL
    let rels = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, c.reltuples::float8, c.relpages::int8, pg_total_relation_size(c.oid)::int8
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = BTreeMap::new();
    let mut unknown = Vec::new();
    for r in &rels {
        let name = qualified(r.get(0), r.get(1));
        let estimate: f64 = r.get(2);
        if estimate < 0.0 {
            unknown.push(name.clone());
        }
        tables.insert(
            name,
            TableInfo {
                rows: estimate.max(0.0) as u64,
                bytes: Some(r.get::<i64, _>(4) as u64),
                ..TableInfo::default()
            },
        );
    }
    for (t, n) in row_counts_on(conn, &unknown).await? {
        if let Some(info) = tables.get_mut(&t) {
            info.rows = n;
        }
    }
    // language=SQL
    let cols = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid),
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey))
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm') AND {USER_SCHEMA}
         ORDER BY a.attnum"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &cols {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.columns.push(Column {
                name: r.get(2),
                ty: r.get(3),
                nullable: r.get(4),
                default: r.get(5),
                primary_key: r.get(6),
            });
        }
    }
    // language=SQL
    let idx = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &idx {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.indexes.push(r.get(2));
        }
    }
    // language=SQL
    let cons = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, co.conname::text, pg_get_constraintdef(co.oid), co.contype::text, co.confrelid::regclass::text, co.convalidated
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &cons {
        let table = qualified(r.get(0), r.get(1));
        let (name, def, kind, referenced, valid): (String, String, String, String, bool) =
            (r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
        if let Some(t) = tables.get_mut(&table) {
            t.constraints.push(format!(
                "{name}: {def}{}",
                if valid { "" } else { " (NOT VALID)" }
            ));
        }
        if kind == "f" {
            let referenced = referenced.trim_start_matches("public.").to_string();
            if let Some(t) = tables.get_mut(&referenced) {
                t.foreign_keys_in.push(format!("{table}.{name}: {def}"));
            }
        }
    }
    // language=SQL
    let deps = sqlx::query(AssertSqlSafe(format!(
        "SELECT DISTINCT n.nspname, c.relname, vn.nspname, v.relname
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
         JOIN pg_namespace vn ON vn.oid = v.relnamespace
         JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classid = 'pg_rewrite'::regclass AND c.oid <> v.oid AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &deps {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.views.push(qualified(r.get(2), r.get(3)));
        }
    }
    // language=SQL
    let trg = sqlx::query(AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for r in &trg {
        if let Some(t) = tables.get_mut(&qualified(r.get(0), r.get(1))) {
            t.triggers.push(r.get(2));
        }
    }
    // language=SQL
    let checks: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT n.nspname::text, c.relname::text, pg_get_constraintdef(co.oid)
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE co.contype = 'c' AND co.convalidated AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let proven_not_null = checks
        .iter()
        .filter_map(|(schema, table, def)| {
            not_null_check(def).map(|col| format!("{}.{col}", qualified(schema, table)))
        })
        .collect();
    let volatile_functions = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT proname::text FROM pg_proc WHERE provolatile = 'v'",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    // language=SQL
    let column_deps: Vec<(String, String, String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT DISTINCT n.nspname::text, c.relname::text, a.attname::text, vn.nspname::text, v.relname::text
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
         JOIN pg_namespace vn ON vn.oid = v.relnamespace
         JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjsubid > 0 AND c.oid <> v.oid AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut column_views: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (schema, table, column, vschema, view) in column_deps {
        column_views
            .entry(format!("{}.{column}", qualified(&schema, &table)))
            .or_default()
            .push(qualified(&vschema, &view));
    }
    Ok(Catalog {
        engine: "postgres",
        tables,
        proven_not_null,
        volatile_functions,
        column_views,
    })
}

/// `CHECK ((email IS NOT NULL))` (as `pg_get_constraintdef` prints it) → `email`.
fn not_null_check(def: &str) -> Option<String> {
    let inner = def
        .strip_prefix("CHECK ")?
        .trim_matches(|c| c == '(' || c == ')')
        .trim();
    let col = inner.strip_suffix(" IS NOT NULL")?.trim();
    let col = col
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(col);
    (!col.is_empty() && !col.contains(' ')).then(|| col.to_string())
}

async fn fingerprint_on(conn: &mut PgConnection) -> sqlx::Result<Fingerprint> {
    let queries = [
        // language=SQL
        format!(
            "SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                    || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
                    || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'constraint ' || co.conrelid::regclass::text || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)

             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'view ' || n.nspname || '.' || c.relname || ': ' || pg_get_viewdef(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'enum ' || n.nspname || '.' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
             FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE {USER_SCHEMA} GROUP BY n.nspname, t.typname"
        ),
        format!(
            "SELECT 'sequence ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'S' AND {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA}"
        ),
        format!(
            "SELECT 'comment ' || n.nspname || '.' || c.relname || coalesce('.' || a.attname, '') || ' ' || d.description
             FROM pg_description d JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
             WHERE {USER_SCHEMA}"
        ),
        format!("SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE {USER_SCHEMA}"),
    ];
    let mut lines = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_all(&mut *conn)
            .await?;
        lines.extend(rows);
    }
    Ok(Fingerprint::from_lines(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrently_has_a_transactional_equivalent() {
        assert_eq!(
            transactional_equivalent("CREATE INDEX CONCURRENTLY i ON t (a)").as_deref(),
            Some("CREATE INDEX  i ON t (a)")
        );
        assert_eq!(transactional_equivalent("VACUUM t"), None);
        assert_eq!(
            created_index_name(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email)"
            )
            .as_deref(),
            Some("users_email")
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) < Duration::from_millis(300));
        assert!(backoff(20) < Duration::from_millis(7_500));
    }
}
