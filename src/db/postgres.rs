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
    AgentUse, BackfillReport, BackupEvidence, Catalog, CheckOutcome, Column, Fingerprint, History,
    IntegrityProblem, LockObservation, StatementRun, StepFailure, Stmt, TableInfo, WatchReport,
};
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::plan::Check;
use crate::sql::LockMode;
use crate::sql::quote_ident;

mod backfill;
mod backup;
mod catalog;
mod dependents;
mod describe;
mod execute;
mod fingerprint;
mod history;
mod lanes;
mod monitor;
mod probes;
mod restore;
mod roles;
mod sandbox;
mod saved;
mod sequences;
mod sessions;
mod watcher;

use catalog::{catalog_on, row_counts_on};
use execute::{backoff, transactional_equivalent, write_history};
pub use history::PgLock;
pub use roles::RoleSetup;
pub use sandbox::PgSandbox;
use sandbox::held_locks;
pub use saved::{Place, Saved};
use sessions::keep_in;
pub use sessions::{Kept, Spare, Spares};
use watcher::{Stop, StopOnDrop, watch};

/// Schemas that are never the application's.
// language=SQL
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'drydock', 'drydock_backup') AND n.nspname NOT LIKE E'pg\\\\_%'";

/// The predefined roles whose members reach beyond the database (the server's files and programs,
/// other sessions), as an SQL list: agent SQL never runs as one, nor calls a `SECURITY DEFINER`
/// function one owns.
// language=SQL
const SERVER_ROLES: &str = "('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program', 'pg_signal_backend')";

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
        rolled_back_at timestamptz,
        version bigint
    )";

pub struct Postgres {
    name: String,
    options: PgConnectOptions,
    lock_timeout: Duration,
    statement_timeout: Duration,
    /// Tries of a transaction that meets `lock_timeout` (`policy.lock_retries`).
    lock_retries: u32,
    roles: Roles,
    /// A plain session kept from the last read (catalog, fingerprint, history, row counts) for
    /// the next one: a rollout member's reads share one connection instead of one each, and a
    /// target opened again in the same server (`Spares`) starts from it.
    spare: Spare,
    /// The apply role has its grants on drydock's bookkeeping (`grant_bookkeeping`): once per
    /// target opened, not before every step.
    granted: AtomicBool,
    /// The session the last step ran on (with its backend's pid), for the next step: agent
    /// SQL ran on it, so it is never a `spare` for drydock's own reads.
    steps_session: std::sync::Mutex<Option<StepSession>>,
}

/// The session a target's steps run on, with its backend's pid (the lock watcher's subject)
/// and whether drydock's history table was made on it yet.
pub(super) struct StepSession {
    conn: PgConnection,
    pid: i32,
    bookkept: bool,
}

impl Drop for Postgres {
    /// The kept step session ends with the target as opened, closed as a client should (the
    /// server sees a goodbye, not a dropped socket).
    fn drop(&mut self) {
        let kept = self
            .steps_session
            .get_mut()
            .map(Option::take)
            .unwrap_or_default();
        if let (Some(s), Ok(runtime)) = (kept, tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { s.conn.close().await.ok() });
        }
    }
}

/// The least-privilege roles agent SQL runs as (`[targets.X] apply_role`, `dry_run_role`,
/// `check_role`) and how long a check may run. Each falls back as a migration needs it to: what
/// the dry-run runs is what apply runs, so the dry-run role is the apply role unless set; checks
/// run as the dry-run role unless set; without any, agent SQL runs as the login.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub dry_run: Option<String>,
    pub check: Option<String>,
    pub apply: Option<String>,
    pub check_timeout: Duration,
}

impl Roles {
    /// The roles a target's config names.
    pub fn configured(target: &crate::config::TargetConfig) -> Roles {
        Roles {
            dry_run: target.dry_run_role.clone(),
            check: target.check_role.clone(),
            apply: target.apply_role.clone(),
            check_timeout: Duration::default(),
        }
    }

    /// The configured role agent SQL runs as for `usage` (`None`: the login's own).
    pub fn of(&self, usage: AgentUse) -> Option<&str> {
        let dry_run = self.dry_run.as_deref().or(self.apply.as_deref());
        match usage {
            AgentUse::Apply => self.apply.as_deref(),
            AgentUse::DryRun => dry_run,
            AgentUse::Check => self.check.as_deref().or(dry_run),
        }
    }

    /// `SET LOCAL ROLE` for `usage`'s role, when one is configured: right after `BEGIN`, before
    /// any agent SQL or any write to an application table (whose triggers are agent SQL too).
    fn begin(&self, usage: AgentUse) -> String {
        Roles::set_local(self.of(usage))
    }

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
            self.begin(AgentUse::Check)
        )
    }
}

fn qualified(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// Runs `read` (drydock's own reads) on a session that agent SQL may have touched — a dry-run's
/// transaction, an apply's — with the search path pinned to the system catalog and the session's
/// temporary schema last (where PostgreSQL never looks up a function or an operator), then puts
/// the session's path back for the plan's next statement. No relation, function, operator or type
/// an agent created can be resolved by such a read: the application's names it reads are
/// qualified (`relation`). A failed read leaves the transaction aborted: its error is the one said.
pub(super) async fn pinned<T>(
    conn: &mut PgConnection,
    read: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
) -> sqlx::Result<T> {
    // One round trip: the session's path read, then pinned (a read is a handful of them).
    let row = sqlx::raw_sql(
        "SELECT pg_catalog.current_setting('search_path'); SET search_path = pg_catalog, pg_temp",
    )
    .fetch_one(&mut *conn)
    .await?;
    let path: String = row.try_get(0)?;
    let out = read(&mut *conn).await;
    // One round trip too: the path as an escape string literal, read the same whatever
    // `standard_conforming_strings` agent SQL set.
    let restored = sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT pg_catalog.set_config('search_path', {}, false)",
        escaped(&path)
    )))
    .execute(&mut *conn)
    .await;
    let out = out?;
    restored?;
    Ok(out)
}

/// [`pinned`] in one round trip, for reads that are each one statement with their values
/// written in (integers, or [`escaped`] literals): the session's path saved in a setting of
/// drydock's, pinned, the reads, and the path put back from that setting — one batch in the
/// simple protocol, nothing of the agent's able to run between its statements. The rows of each
/// read, in order; they come back as text and decode as any row does. A failed read leaves the
/// batch (and the transaction) aborted, its error the one said, as `pinned`.
pub(super) async fn pinned_batch(
    conn: &mut PgConnection,
    reads: &[&str],
) -> sqlx::Result<Vec<Vec<sqlx::postgres::PgRow>>> {
    let (rows, done) = pinned_batch_until_error(conn, reads).await;
    done.map(|()| rows)
}

/// [`pinned_batch`], with the rows of the reads that ran before one failed (a read that must
/// be judged by an earlier one's answer even when it fails: the schema read's check).
pub(super) async fn pinned_batch_until_error(
    conn: &mut PgConnection,
    reads: &[&str],
) -> (Vec<Vec<sqlx::postgres::PgRow>>, sqlx::Result<()>) {
    use futures_util::TryStreamExt;
    let batch = format!(
        "SELECT pg_catalog.set_config('drydock.search_path', pg_catalog.current_setting('search_path'), false);
         SET search_path = pg_catalog, pg_temp;
         {};
         SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('drydock.search_path'), false)",
        reads.join(";\n")
    );
    let mut results = sqlx::raw_sql(AssertSqlSafe(batch)).fetch_many(conn);
    let mut statement = 0usize;
    let mut rows: Vec<Vec<sqlx::postgres::PgRow>> = reads.iter().map(|_| Vec::new()).collect();
    let done = loop {
        match results.try_next().await {
            Ok(Some(sqlx::Either::Left(_))) => statement += 1,
            Ok(Some(sqlx::Either::Right(row))) => {
                if let Some(read) = statement.checked_sub(2).and_then(|i| rows.get_mut(i)) {
                    read.push(row);
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    (rows, done)
}

/// [`pinned_batch`] of one read: its rows.
pub(super) async fn pinned_read(
    conn: &mut PgConnection,
    read: &str,
) -> sqlx::Result<Vec<sqlx::postgres::PgRow>> {
    Ok(pinned_batch(conn, &[read])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// Rows of a [`pinned_batch`] read as tuples (or any `FromRow`).
pub(super) fn decoded<T>(rows: &[sqlx::postgres::PgRow]) -> sqlx::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    rows.iter().map(T::from_row).collect()
}

/// A role as [`Postgres::role_read`] reads it: name, superuser, CREATEROLE, server roles.
type RoleRow = (String, bool, bool, Option<String>);

fn role_row(rows: &[sqlx::postgres::PgRow]) -> sqlx::Result<Option<RoleRow>> {
    Ok(decoded(rows)?.into_iter().next())
}

/// A string as an escape string literal (`E'…'`) for a batch on a session agent SQL has run on:
/// read the same whatever `standard_conforming_strings` it set.
pub(super) fn escaped(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Names as a `text[]` of [`escaped`] literals.
pub(super) fn escaped_names(names: &[String]) -> String {
    let items: Vec<String> = names.iter().map(|n| escaped(n)).collect();
    format!("ARRAY[{}]::pg_catalog.text[]", items.join(", "))
}

/// Before each agent statement: the session's `lock_timeout` and `statement_timeout` at most the
/// policy's (a policy of 0 is no limit, as PostgreSQL reads it). An agent's `SET statement_timeout = 0` (pg_dump writes one atop every file) stays
/// admitted and lowers nothing it should not; it can never raise a limit past the policy for the
/// statements after it. Every name is qualified (agent SQL ran on this session).
pub(super) async fn cap_timeouts(
    conn: &mut PgConnection,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> sqlx::Result<()> {
    // One round trip, the values written in (integers); the settings read with
    // `current_setting`, not the `pg_settings` view (which computes every setting there is).
    // language=SQL
    let sql = format!(
        "SELECT pg_catalog.set_config(l.name,
                (CASE WHEN l.ms OPERATOR(pg_catalog.=) 0 THEN l.now
                      WHEN l.now OPERATOR(pg_catalog.=) 0 OR l.now OPERATOR(pg_catalog.>) l.ms
                      THEN l.ms ELSE l.now END)::pg_catalog.text, false)
         FROM (SELECT v.name, v.ms, (pg_catalog.date_part('epoch',
                       pg_catalog.current_setting(v.name)::pg_catalog.interval)
                       OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8 AS now
               FROM (VALUES ('lock_timeout'::pg_catalog.text, {}::pg_catalog.int8),
                            ('statement_timeout'::pg_catalog.text, {}::pg_catalog.int8)) AS v(name, ms)) AS l",
        super::millis(lock_timeout),
        super::millis(statement_timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A table as drydock names it (`accounts`, `billing.invoices`), schema-qualified and quoted for
/// a read under a pinned search path: a bare name is in `public`.
pub(super) fn relation(table: &str) -> String {
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    }
}

impl Postgres {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens the target, reachable now, with no session kept from an earlier call.
    pub async fn open(name: &str, url: &str, policy: &Policy) -> Result<Postgres> {
        let t = Postgres::new(name, url, policy, Spare::default())?;
        t.reach().await?;
        Ok(t)
    }

    /// The target as configured, no session opened yet (`reach` opens one).
    pub fn new(name: &str, url: &str, policy: &Policy, spare: Spare) -> Result<Postgres> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Target {
                target: name.to_string(),
                cause: crate::redact::redact(&e.to_string()),
            })?
            .application_name("drydock")
            .statement_cache_capacity(0);
        let t = Postgres {
            name: name.to_string(),
            options,
            lock_timeout: policy.lock_timeout,
            statement_timeout: policy.statement_timeout,
            lock_retries: policy.lock_retries,
            roles: Roles {
                check_timeout: policy.check_timeout,
                ..Roles::default()
            },
            spare,
            granted: AtomicBool::new(false),
            steps_session: std::sync::Mutex::new(None),
        };
        Ok(t)
    }

    /// The least-privilege roles agent SQL runs as on this target.
    pub fn with_roles(mut self, roles: Roles) -> Postgres {
        self.roles = Roles {
            check_timeout: self.roles.check_timeout,
            ..roles
        };
        self
    }

    /// Of the functions agent SQL calls (by name), those that reach beyond the database by what
    /// the catalog says they are, whatever their name: PostgreSQL keeps them from ordinary roles
    /// (not executable by `PUBLIC`: the server's files, settings, other sessions), or they run as
    /// an owner that is a superuser or may reach the server's files, programs or other sessions
    /// (`SECURITY DEFINER`: a least-privilege role calling one gains its owner's privileges).
    /// Returns (function, why) for each.
    pub async fn beyond_the_database(&self, functions: &[String]) -> Result<Vec<(String, String)>> {
        if functions.is_empty() {
            return Ok(vec![]);
        }
        // language=SQL
        let sql = format!(
            "SELECT p.oid::regprocedure::text,
                    CASE WHEN NOT has_function_privilege('public', p.oid, 'EXECUTE')
                           THEN 'PostgreSQL keeps it from ordinary roles (not executable by PUBLIC)'
                         WHEN p.prosecdef AND (o.rolsuper OR o.rolcreaterole OR EXISTS (
                                 SELECT FROM pg_roles b
                                 WHERE b.rolname IN {SERVER_ROLES} AND pg_has_role(o.oid, b.oid, 'MEMBER')))
                           THEN 'runs with the privileges of its owner `' || o.rolname || '` (SECURITY DEFINER), a role that reaches beyond the database'
                    END
             FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
             WHERE p.proname = ANY ($1)"
        );
        let mut kept = self.reader().await?;
        let rows: std::result::Result<Vec<(String, Option<String>)>, _> =
            pinned(&mut kept.conn, async |c| {
                sqlx::query_as(AssertSqlSafe(sql))
                    .persistent(false)
                    .bind(functions)
                    .fetch_all(c)
                    .await
            })
            .await;
        self.keep(kept).await;
        Ok(rows
            .map_err(|e| self.err(e))?
            .into_iter()
            .filter_map(|(f, why)| why.map(|w| (f, w)))
            .collect())
    }

    /// What SQL built at run time (PL/pgSQL `EXECUTE`) could reach beyond the database on this
    /// target, as the roles agent SQL runs as (the configured ones, else the login): a `SECURITY
    /// DEFINER` function owned by a privileged role, or a function of an extension that reaches
    /// other servers or the server's files, that one of them may execute. Empty: PostgreSQL's
    /// privileges bound whatever such SQL does.
    pub async fn dynamic_reach(&self) -> Result<Vec<(String, String)>> {
        let roles: Vec<String> = [AgentUse::DryRun, AgentUse::Check, AgentUse::Apply]
            .into_iter()
            .filter_map(|u| self.roles.of(u).map(String::from))
            .collect();
        // language=SQL
        let sql = format!(
            "WITH agent(role) AS (
                 SELECT unnest(CASE WHEN cardinality($1::text[]) = 0 THEN ARRAY[current_user::text] ELSE $1::text[] END))
             SELECT DISTINCT p.oid::regprocedure::text,
                    CASE WHEN e.extname IS NOT NULL
                           THEN 'a function of extension `' || e.extname || '`, which reaches beyond the database'
                         ELSE 'SECURITY DEFINER, owned by `' || o.rolname || '`, a role that reaches beyond the database'
                    END
             FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
             LEFT JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
             LEFT JOIN pg_extension e ON e.oid = d.refobjid AND e.extname IN ('dblink', 'postgres_fdw', 'file_fdw', 'adminpack')
             WHERE (e.extname IS NOT NULL
                    OR (p.prosecdef AND (o.rolsuper OR o.rolcreaterole OR EXISTS (
                            SELECT FROM pg_roles b
                            WHERE b.rolname IN {SERVER_ROLES} AND pg_has_role(o.oid, b.oid, 'MEMBER')))))
               AND EXISTS (SELECT FROM agent a JOIN pg_roles r ON r.rolname = a.role
                           WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE'))
             ORDER BY 1
             LIMIT 5"
        );
        let mut kept = self.reader().await?;
        let rows: std::result::Result<Vec<(String, String)>, _> =
            pinned(&mut kept.conn, async |c| {
                sqlx::query_as(AssertSqlSafe(sql))
                    .persistent(false)
                    .bind(&roles)
                    .fetch_all(c)
                    .await
            })
            .await;
        self.keep(kept).await;
        rows.map_err(|e| self.err(e))
    }

    /// Lets the apply role do, inside the transactions it runs, drydock's bookkeeping there: the
    /// history row written beside a step's SQL, a backfill's checkpoints and saved values, the
    /// asides drop templates keep in `drydock`. Granted by the login, on drydock's own schemas
    /// only, before any agent SQL runs on the session.
    async fn grant_bookkeeping(&self, conn: &mut PgConnection) -> Result<()> {
        let Some(role) = self.roles.of(AgentUse::Apply) else {
            return Ok(());
        };
        if self.granted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = quote_ident(role);
        // Every bookkeeping table made first (each is idempotent), so that the grants, once
        // made, cover a backfill that a later step of the same apply starts.
        // language=SQL
        let grants = format!(
            "{CREATE_HISTORY};
             {progress};
             GRANT USAGE, CREATE ON SCHEMA drydock TO {r};
             GRANT SELECT, INSERT, UPDATE ON drydock.history TO {r};
             GRANT USAGE ON SEQUENCE drydock.history_id_seq TO {r};
             GRANT SELECT, UPDATE ON drydock.backfill_progress TO {r};
             CREATE SCHEMA IF NOT EXISTS drydock_backup;
             GRANT USAGE, CREATE ON SCHEMA drydock_backup TO {r}",
            progress = lanes::CREATE_PROGRESS.trim_end().trim_end_matches(';'),
        );
        sqlx::raw_sql(AssertSqlSafe(grants))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                self.err(format!(
                    "granting apply_role `{role}` drydock's bookkeeping tables: {e}"
                ))
            })?;
        self.granted.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Refuses (`unsafe-role`) to run agent SQL for `usage` as a role that reaches beyond the
    /// database: the configured role, or the login when none is. PostgreSQL enforces the
    /// boundary only for a role that is no superuser, has no CREATEROLE and is no member of
    /// `pg_read_server_files`, `pg_write_server_files`, `pg_execute_server_program` or
    /// `pg_signal_backend`; the statement gate is the second line behind it, not the first.
    async fn agent_role(&self, conn: &mut PgConnection, usage: AgentUse) -> Result<()> {
        let read = pinned_read(conn, &self.role_read(usage))
            .await
            .and_then(|rows| role_row(&rows))
            .map_err(|e| self.err(e))?;
        self.role_verdict(usage, read)
    }

    /// The role agent SQL runs as for `usage` (the configured one, else the login): its name,
    /// whether a superuser, whether it has CREATEROLE, and the server roles it is a member of
    /// (comma-separated, none: NULL). One statement, its value written in, for [`pinned_batch`].
    fn role_read(&self, usage: AgentUse) -> String {
        let role = self
            .roles
            .of(usage)
            .map_or_else(|| "current_user".to_string(), escaped);
        // language=SQL
        format!(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, (
                 SELECT string_agg(b.rolname::text, ', ' ORDER BY b.rolname) FROM pg_catalog.pg_roles b
                 WHERE b.rolname IN {SERVER_ROLES} AND pg_catalog.pg_has_role(r.oid, b.oid, 'MEMBER'))
             FROM pg_catalog.pg_roles r WHERE r.rolname = {role}"
        )
    }

    /// [`Self::role_read`]'s row judged: `unsafe-role` when the role reaches beyond the database.
    fn role_verdict(&self, usage: AgentUse, row: Option<RoleRow>) -> Result<()> {
        let configured = self.roles.of(usage);
        let how = match configured {
            Some(_) => format!("its {}", usage.setting()),
            None => format!("its login (no {} is set)", usage.setting()),
        };
        let detail = match row {
            None => Some(format!(
                "{how} `{}` does not exist",
                configured.unwrap_or_default()
            )),
            Some((role, true, _, _)) => Some(format!(
                "agent SQL would run as {how} `{role}`, a superuser: every privilege of the server, its files and programs"
            )),
            Some((role, _, true, _)) => Some(format!(
                "agent SQL would run as {how} `{role}`, which has CREATEROLE: it could make itself any role"
            )),
            Some((role, _, _, Some(beyond))) => Some(format!(
                "agent SQL would run as {how} `{role}`, a member of {beyond}: the server's files, programs or other sessions"
            )),
            Some(_) => None,
        };
        match detail {
            Some(detail) => Err(Error::UnsafeRole {
                target: self.name.clone(),
                detail,
            }),
            None => Ok(()),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: crate::redact::redact(&e.to_string()),
        }
    }

    pub async fn catalog(&self) -> Result<Catalog> {
        self.read(async |c| catalog_on(c).await).await
    }

    /// What `inspect` adds to the catalog (relation kinds, functions, views, enums and domains).
    pub async fn describe(&self) -> Result<super::describe::Described> {
        self.read(async |c| describe::describe_on(c).await).await
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
        self.read_fingerprint().await
    }

    /// The fingerprint's column lines of `tables` alone.
    pub async fn column_lines(&self, tables: &[String]) -> Result<BTreeSet<String>> {
        self.read(async |c| fingerprint::column_lines_on(c, tables).await)
            .await
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        self.read(async |c| row_counts_on(c, tables).await).await
    }

    /// Rows of two text columns from a query, in a read-only transaction.
    pub async fn text_pairs(&self, sql: &str) -> Result<Vec<(String, String)>> {
        let mut conn = self.connect().await?;
        sqlx::raw_sql("BEGIN TRANSACTION READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let rows = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql.to_string()))
            .persistent(false)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| self.err(e));
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
        conn.close().await.ok();
        rows
    }

    /// Checks run in a READ ONLY transaction under `policy.check_timeout`, as the check role:
    /// even a check that slipped past the static boundary cannot write, run long or read what
    /// the role may not.
    pub async fn run_checks(&self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        let mut conn = self.connect().await?;
        self.agent_role(&mut conn, AgentUse::Check).await?;
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

    /// What `dry-run`, `validate` and `apply` will refuse (`unsafe-role`) on this target for
    /// `uses`, said ahead: agent SQL that would run as a privileged or missing role.
    pub async fn privilege_warnings(&self, uses: &[AgentUse]) -> Result<Vec<String>> {
        let mut conn = self.connect().await?;
        let mut out: Vec<String> = Vec::new();
        for &usage in uses {
            match self.agent_role(&mut conn, usage).await {
                Ok(()) => {}
                Err(e @ Error::UnsafeRole { .. }) => {
                    let line = format!(
                        "{e}; drydock refuses agent SQL there (unsafe-role) until {}",
                        e.fix()
                    );
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        conn.close().await.ok();
        Ok(out)
    }
}

fn qualified_ident(table: &str) -> String {
    match table.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(table),
    }
}

async fn checks_on(conn: &mut PgConnection, checks: &[Check]) -> Vec<CheckOutcome> {
    let mut out = Vec::new();
    for c in checks {
        let rows = sqlx::query(AssertSqlSafe(c.sql.clone()))
            .persistent(false)
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
