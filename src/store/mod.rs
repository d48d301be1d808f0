//! drydock's own state: plans, steps, runs, approvals, backups, the audit trail, tokens, leases
//! and mistakes — in a SQLite file under the state directory (the zero-setup default) or in a
//! PostgreSQL database shared by several servers (`[state] url`). One code path serves both
//! through sqlx's `Any` driver; each backend's schema is in `migrations/<backend>/`, applied on
//! open. The only writer of a plan's lifecycle is `Store::commit`, which applies one transition —
//! status, run, step states, approval, backup and audit rows — in a single transaction, guarded
//! by the status it expects to find (compare-and-set, so two servers never both move a plan).
//! Imports `plan`, `config` and the leaves; never `db`, `analysis`, `checklist` or `engine`.

mod copy;
mod members;
mod rows;
mod shared;
mod tokens;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sqlx::pool::PoolOptions;
use sqlx::{Any, AnyConnection, AnyPool};
use sqlx::{AssertSqlSafe, Executor, Row};

pub use copy::Copied;
pub use members::MemberRow;
pub use rows::*;
pub use shared::{Lease, StoredMistake};
pub use tokens::{PassphraseRow, TokenRow};

use crate::error::Error;
use crate::identity::Principal;
use crate::plan::evidence::{BackupEvidence, RunDetail};
use crate::plan::{Body, Decision, MemberState, Plan, RunKind, Status, StepState, Urgency};

/// What can go wrong in drydock's own state store. Each message names the object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the state store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("a stored {what} does not decode: {cause}")]
    Decode { what: &'static str, cause: String },
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    #[error("the state store is busy: {0}")]
    Busy(String),
    #[error("plan `{plan}` was changed in the state store")]
    Tampered {
        plan: String,
        stored: String,
        actual: String,
    },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::UnknownPlan(id) => Error::UnknownPlan(id),
            StoreError::Tampered {
                plan,
                stored,
                actual,
            } => Error::PlanTampered {
                plan,
                stored,
                actual,
            },
            other => Error::Store(crate::redact::redact(&other.to_string())),
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn decode(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Decode {
        what,
        cause: e.to_string(),
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub use crate::clock::{add, age, now};

/// Which engine holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Now on the store's clock, in milliseconds since the epoch: servers whose clocks disagree
    /// still agree on when a lease expires.
    fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

/// Where the state lives: a SQLite file, or a PostgreSQL URL (already resolved; never printed).
pub enum Location<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// One lifecycle transition, committed atomically by `Store::commit`.
#[derive(Default)]
pub struct Change<'a> {
    pub plan_id: &'a str,
    /// Move the plan to `to` — only if its status is one of `from` (empty: any).
    pub status: Option<(&'a [Status], Status)>,
    pub run: Option<NewRun<'a>>,
    pub steps: Vec<(usize, StepState)>,
    pub approval: Option<(&'a str, &'a str, Decision, Option<&'a str>)>,
    pub release: Option<(usize, &'a str)>,
    pub backup: Option<(&'a str, bool, &'a BackupEvidence)>,
    /// A group member's new state and, when it failed, why.
    pub member: Option<(&'a str, MemberState, Option<&'a str>)>,
    pub audit: Option<Audit<'a>>,
}

/// An audit row: who acted (name, role, channel and OS user are recorded), what they did, and
/// the detail.
pub struct Audit<'a> {
    pub who: &'a Principal,
    pub action: &'a str,
    pub detail: serde_json::Value,
}

impl<'a> Audit<'a> {
    pub fn new(
        who: &'a Principal,
        action: &'a str,
        detail: serde_json::Value,
    ) -> Option<Audit<'a>> {
        Some(Audit {
            who,
            action,
            detail,
        })
    }
}

pub struct NewRun<'a> {
    pub kind: RunKind,
    pub target: &'a str,
    pub checksum: &'a str,
    pub ok: bool,
    pub started_at: String,
    pub duration_ms: f64,
    pub detail: RunDetail,
}

impl Store {
    /// Opens the store and brings its schema up to date: a SQLite file (created if needed) or a
    /// PostgreSQL database (whose schema drydock creates; several servers may share it).
    pub async fn open(at: Location<'_>) -> Result<Store> {
        static DRIVERS: std::sync::Once = std::sync::Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        match at {
            Location::Sqlite(file) => Store::open_sqlite(file).await,
            Location::Postgres(url) => {
                let pool = PoolOptions::<Any>::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?;
                // The PostgreSQL migrator serialises concurrent servers on an advisory lock.
                POSTGRES.run(&pool).await?;
                Ok(Store {
                    pool,
                    backend: Backend::Postgres,
                })
            }
        }
    }

    async fn open_sqlite(file: &Path) -> Result<Store> {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let url = format!("sqlite://{}?mode=rwc", url_path(file));
        let pool = PoolOptions::<Any>::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        // Servers started together on a fresh directory would each see an empty schema and
        // create it: one migrates at a time, the others then find it done. The OS drops the
        // lock of a process that dies.
        let lock = crate::lockfile::open(&file.with_extension("db.migrate-lock"))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        // WAL lets readers go on while a transition commits; it is a property of the file. Set
        // under the same lock: turning a fresh file to WAL needs it alone, and SQLite may answer
        // `database is locked` at once there instead of waiting out the busy timeout.
        let migrated = match sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
        {
            Ok(_) => SQLITE.run(&pool).await.map_err(StoreError::from),
            Err(e) => Err(StoreError::from(e)),
        };
        drop(lock);
        migrated?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// The store `config` names: `[state] url` (`env:VAR` resolved here), else `state.db` in
    /// the state directory.
    pub async fn configured(config: &crate::config::Config) -> std::result::Result<Store, Error> {
        use crate::config::TargetUrl;
        let url = match &config.state.url {
            None => TargetUrl::Sqlite(config.state_dir.join("state.db")),
            Some(url) => url.resolve(&config.base_dir())?,
        };
        Ok(Store::at(&url).await?)
    }

    /// The store at a resolved URL.
    pub async fn at(url: &crate::config::TargetUrl) -> Result<Store> {
        use crate::config::TargetUrl;
        match url {
            TargetUrl::Sqlite(file) => Store::open(Location::Sqlite(file)).await,
            TargetUrl::Postgres(url) => Store::open(Location::Postgres(url)).await,
            TargetUrl::Env(var) => Err(StoreError::Busy(format!("`env:{var}` was not resolved"))),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    #[tracing::instrument(skip_all, fields(plan = %plan.id))]
    pub async fn insert_plan(&self, plan: &Plan, author: &Principal) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query(
            "INSERT INTO plans (id, checksum, goal, target, author, urgency, status, created_at, updated_at, supersedes, body, analysis)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&plan.id)
        .bind(&plan.checksum)
        .bind(&plan.goal)
        .bind(&plan.target)
        .bind(&plan.author)
        .bind(plan.urgency.as_str())
        .bind(plan.status.as_str())
        .bind(&plan.created_at)
        .bind(&plan.created_at)
        .bind(&plan.supersedes)
        .bind(serde_json::to_string(&plan.body).map_err(decode("plan body"))?)
        .bind(serde_json::to_string(&plan.analysis).map_err(decode("plan analysis"))?)
        .execute(&mut *tx)
        .await?;
        for (i, s) in plan.body.steps.iter().enumerate() {
            let state = if s.gate.is_some() {
                StepState::Gated
            } else {
                StepState::Pending
            };
            sqlx::query("INSERT INTO steps (plan_id, idx, name, state) VALUES ($1, $2, $3, $4)")
                .bind(&plan.id)
                .bind(i as i64)
                .bind(s.name.as_deref().unwrap_or("step"))
                .bind(state.as_str())
                .execute(&mut *tx)
                .await?;
        }
        audit(
            &mut tx,
            author,
            "plan",
            Some(&plan.id),
            serde_json::json!({"checksum": plan.checksum, "goal": plan.goal}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn plan(&self, id: &str) -> Result<Plan> {
        // language=SQL
        let row = sqlx::query(
            "SELECT id, checksum, goal, target, author, urgency, status, created_at, supersedes, body, analysis FROM plans WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::UnknownPlan(id.to_string()))?;
        let body: Body =
            serde_json::from_str(row.get::<&str, _>(9)).map_err(decode("plan body"))?;
        // The checksum is recomputed on every load: SQL edited in the store after approval
        // would otherwise run under the old checksum and its approval.
        let stored: String = row.get(1);
        let actual = body.checksum();
        if actual != stored {
            tracing::error!(plan = id, "plan body does not match its checksum");
            return Err(StoreError::Tampered {
                plan: id.to_string(),
                stored,
                actual,
            });
        }
        let urgency: Urgency =
            Urgency::try_from(row.get::<String, _>(5)).map_err(|e| StoreError::Decode {
                what: "urgency",
                cause: e.to_string(),
            })?;
        Ok(Plan {
            id: row.get(0),
            checksum: row.get(1),
            goal: row.get(2),
            target: row.get(3),
            author: row.get(4),
            urgency,
            status: Status::parse(row.get(6)).map_err(|e| StoreError::Decode {
                what: "plan status",
                cause: e.to_string(),
            })?,
            created_at: row.get(7),
            supersedes: row.get(8),
            body,
            analysis: serde_json::from_str(row.get::<&str, _>(10))
                .map_err(decode("plan analysis"))?,
        })
    }

    /// The newest plan that supersedes `id`, if any.
    pub async fn superseded_by(&self, id: &str) -> Result<Option<String>> {
        // language=SQL
        Ok(sqlx::query_scalar(
            "SELECT id FROM plans WHERE supersedes = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Plans, newest first.
    pub async fn plans(&self, limit: i64) -> Result<Vec<PlanListRow>> {
        let sql = match self.backend {
            // language=SQL
            Backend::Sqlite => {
                "SELECT id, target, status, goal, author, created_at, json_extract(analysis, '$.risk') AS risk,
                        (SELECT s.id FROM plans s WHERE s.supersedes = plans.id ORDER BY s.created_at DESC LIMIT 1) AS superseded_by
                 FROM plans ORDER BY created_at DESC, id LIMIT $1"
            }
            // language=SQL
            Backend::Postgres => {
                "SELECT id, target, status, goal, author, created_at, analysis::json ->> 'risk' AS risk,
                        (SELECT s.id FROM plans s WHERE s.supersedes = plans.id ORDER BY s.created_at DESC LIMIT 1) AS superseded_by
                 FROM plans ORDER BY created_at DESC, id LIMIT $1"
            }
        };
        Ok(sqlx::query_as(sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn steps(&self, plan_id: &str) -> Result<Vec<StepRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT idx, name, state, applied_at, released_by FROM steps WHERE plan_id = $1 ORDER BY idx",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn runs(&self, plan_id: &str) -> Result<Vec<RunRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, kind, target, checksum, ok, started_at, finished_at, duration_ms, detail FROM runs WHERE plan_id = $1 ORDER BY id",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn approvals(&self, plan_id: &str) -> Result<Vec<ApprovalRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT by, checksum, decision, reason, at FROM approvals WHERE plan_id = $1 ORDER BY id",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest verified backup of a target taken for a plan: evidence never carries over
    /// from another plan.
    pub async fn latest_backup(&self, target: &str, plan_id: &str) -> Result<Option<BackupRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT target, plan_id, verified, detail, taken_at FROM backups WHERE target = $1 AND plan_id = $2 AND verified = 1 ORDER BY taken_at DESC LIMIT 1",
        )
        .bind(target)
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Applies one transition atomically. When `status` names expected states and the plan is in
    /// none of them (another caller moved it first), nothing is written and `Ok(false)` returns.
    #[tracing::instrument(skip_all, fields(plan = %change.plan_id))]
    pub async fn commit(&self, change: Change<'_>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = now();
        if let Some((from, to)) = change.status
            && !moved(&mut tx, change.plan_id, from, to, &now).await?
        {
            return Ok(false);
        }
        if let Some(run) = &change.run {
            // language=SQL
            sqlx::query(
                "INSERT INTO runs (plan_id, checksum, kind, target, ok, started_at, finished_at, duration_ms, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(change.plan_id)
            .bind(run.checksum)
            .bind(run.kind.as_str())
            .bind(run.target)
            .bind(run.ok as i64)
            .bind(&run.started_at)
            .bind(&now)
            .bind(run.duration_ms)
            .bind(serde_json::to_string(&run.detail).map_err(decode("run detail"))?)
            .execute(&mut *tx)
            .await?;
        }
        for (idx, state) in &change.steps {
            let applied_at = matches!(state, StepState::Applied).then(|| now.clone());
            sqlx::query("UPDATE steps SET state = $1, applied_at = coalesce($2, applied_at) WHERE plan_id = $3 AND idx = $4")
                .bind(state.as_str())
                .bind(applied_at)
                .bind(change.plan_id)
                .bind(*idx as i64)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((checksum, by, decision, reason)) = change.approval {
            sqlx::query("INSERT INTO approvals (plan_id, checksum, by, decision, reason, at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(change.plan_id)
                .bind(checksum)
                .bind(by)
                .bind(decision.as_str())
                .bind(reason)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((idx, by)) = change.release {
            sqlx::query("UPDATE steps SET state = 'pending', released_by = $1, released_at = $2 WHERE plan_id = $3 AND idx = $4")
                .bind(by)
                .bind(&now)
                .bind(change.plan_id)
                .bind(idx as i64)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((target, verified, detail)) = &change.backup {
            sqlx::query("INSERT INTO backups (target, plan_id, verified, detail, taken_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(target)
                .bind(change.plan_id)
                .bind(*verified as i64)
                .bind(serde_json::to_string(detail).map_err(decode("backup evidence"))?)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((target, state, error)) = change.member {
            // language=SQL
            sqlx::query("UPDATE members SET state = $1, error = $2, updated_at = $3 WHERE plan_id = $4 AND target = $5")
                .bind(state.as_str())
                .bind(error)
                .bind(&now)
                .bind(change.plan_id)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(a) = change.audit {
            audit(&mut tx, a.who, a.action, Some(change.plan_id), a.detail).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Holds (`paused`) or releases a plan's backfills, audited as `pause` / `resume`.
    pub async fn set_paused(&self, plan_id: &str, who: &Principal, paused: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query("UPDATE plans SET paused_by = $1, paused_at = $2 WHERE id = $3")
            .bind(paused.then(|| who.name.clone()))
            .bind(paused.then(now))
            .bind(plan_id)
            .execute(&mut *tx)
            .await?;
        let action = if paused { "pause" } else { "resume" };
        audit(&mut tx, who, action, Some(plan_id), serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Who paused the plan and when, if it is paused.
    pub async fn paused(&self, plan_id: &str) -> Result<Option<Paused>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT paused_by AS by, paused_at AS at FROM plans WHERE id = $1 AND paused_by IS NOT NULL",
        )
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The audit trail, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT at, actor, action, plan_id, detail, role, via, os_user FROM audit ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A file path as a URL's path: every byte but the unreserved ones and `/` percent-encoded (a
/// `?` or `#` in a directory name would otherwise end the path).
fn url_path(file: &Path) -> String {
    let mut out = String::new();
    for b in file.to_string_lossy().bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Moves a plan to `to` when it is in one of `from` (any status when `from` is empty); `false`
/// when another caller moved it first. The expected statuses are tested by the UPDATE itself: a
/// read then a write would let two servers on PostgreSQL (READ COMMITTED) both see `approved`
/// and both move the plan; the row's lock makes the second UPDATE see the first's result.
async fn moved(
    conn: &mut AnyConnection,
    plan_id: &str,
    from: &[Status],
    to: Status,
    now: &str,
) -> Result<bool> {
    let expected: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 4)).collect();
    let sql = if from.is_empty() {
        "UPDATE plans SET status = $1, updated_at = $2 WHERE id = $3".to_string()
    } else {
        format!(
            "UPDATE plans SET status = $1, updated_at = $2 WHERE id = $3 AND status IN ({})",
            expected.join(", ")
        )
    };
    let mut update = sqlx::query(AssertSqlSafe(sql))
        .bind(to.as_str())
        .bind(now)
        .bind(plan_id);
    for s in from {
        update = update.bind(s.as_str());
    }
    if update.execute(&mut *conn).await?.rows_affected() > 0 {
        return Ok(true);
    }
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM plans WHERE id = $1")
        .bind(plan_id)
        .fetch_optional(&mut *conn)
        .await?;
    match exists {
        None => Err(StoreError::UnknownPlan(plan_id.to_string())),
        Some(_) => Ok(false),
    }
}

async fn audit(
    conn: &mut AnyConnection,
    who: &Principal,
    action: &str,
    plan_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    // language=SQL
    sqlx::query(
        "INSERT INTO audit (at, actor, action, plan_id, detail, role, via, os_user) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now())
    .bind(&who.name)
    .bind(action)
    .bind(plan_id)
    .bind(detail.to_string())
    .bind(who.grant.as_str())
    .bind(who.via.as_str())
    .bind(who.os_user.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_age_and_add() {
        let t = now();
        assert!(age(&t).unwrap() < Duration::from_secs(5));
        let later = add(&t, Duration::from_secs(3600)).unwrap();
        assert!(later > t);
    }
}
