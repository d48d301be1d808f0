//! drydock's own state: plans, steps, runs, approvals, backups and the audit trail, in a SQLite
//! file under the state directory (schema in `migrations/`, applied on open). The only writer is
//! `Store::commit`, which applies one lifecycle transition — status, run, step states, approval,
//! backup and audit rows — in a single transaction, guarded by the status it expects to find.
//! Imports `plan` and the leaves; never `db`, `analysis`, `checklist` or `engine`.

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{FromRow, Row, SqliteConnection};

use crate::error::Error;
use crate::identity::{Grant, Principal};
use crate::plan::evidence::{BackupEvidence, RunDetail};
use crate::plan::{Body, Decision, Plan, RunKind, Status, StepState, Urgency};

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
            other => Error::Store(other.to_string()),
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use crate::clock::{add, age, now};

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct StepRow {
    pub idx: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub state: StepState,
    pub applied_at: Option<String>,
    pub released_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct RunRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: RunKind,
    pub target: String,
    pub checksum: String,
    pub ok: bool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: f64,
    #[sqlx(try_from = "String")]
    pub detail: RunDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct ApprovalRow {
    pub by: String,
    pub checksum: String,
    #[sqlx(try_from = "String")]
    pub decision: Decision,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema, FromRow)]
pub struct BackupRow {
    pub target: String,
    pub plan_id: Option<String>,
    pub verified: bool,
    #[sqlx(try_from = "String")]
    pub detail: BackupEvidence,
    pub taken_at: String,
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

/// A plan in the list: `plans`.
#[derive(Debug, Clone, FromRow)]
pub struct PlanListRow {
    pub id: String,
    pub target: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub goal: String,
    pub author: String,
    pub created_at: String,
    /// The analysis's risk (`low` ... `critical`).
    pub risk: Option<String>,
}

/// A plan held by an engineer: its backfills wait between batches until it is resumed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, FromRow)]
pub struct Paused {
    pub by: String,
    pub at: String,
}

/// One row of the audit trail.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub plan_id: Option<String>,
    pub detail: String,
    /// The principal's role, the channel and the OS user, when recorded.
    pub role: Option<String>,
    pub via: Option<String>,
    pub os_user: Option<String>,
}

impl Store {
    /// Opens (creating if needed) `state.db` in `dir` and brings its schema up to date.
    pub async fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("state.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        // Servers started together on a fresh directory would each see an empty schema and
        // create it: one migrates at a time, the others then find it done. The OS drops the
        // lock of a process that dies.
        let lock = crate::lockfile::open(&dir.join("state.db.migrate-lock"))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let migrated = MIGRATOR.run(&pool).await;
        drop(lock);
        migrated?;
        Ok(Store { pool })
    }

    #[tracing::instrument(skip_all, fields(plan = %plan.id))]
    pub async fn insert_plan(&self, plan: &Plan, author: &Principal) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query(
            "INSERT INTO plans (id, checksum, goal, target, author, urgency, status, created_at, updated_at, supersedes, body, analysis)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            sqlx::query("INSERT INTO steps (plan_id, idx, name, state) VALUES (?, ?, ?, ?)")
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
            "SELECT id, checksum, goal, target, author, urgency, status, created_at, supersedes, body, analysis FROM plans WHERE id = ?",
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

    /// Plans, newest first.
    pub async fn plans(&self, limit: i64) -> Result<Vec<PlanListRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, target, status, goal, author, created_at, json_extract(analysis, '$.risk') AS risk FROM plans ORDER BY created_at DESC, id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn steps(&self, plan_id: &str) -> Result<Vec<StepRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT idx, name, state, applied_at, released_by FROM steps WHERE plan_id = ? ORDER BY idx",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn runs(&self, plan_id: &str) -> Result<Vec<RunRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, kind, target, checksum, ok, started_at, finished_at, duration_ms, detail FROM runs WHERE plan_id = ? ORDER BY id",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn approvals(&self, plan_id: &str) -> Result<Vec<ApprovalRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT by, checksum, decision, reason, at FROM approvals WHERE plan_id = ? ORDER BY id",
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
            "SELECT target, plan_id, verified, detail, taken_at FROM backups WHERE target = ? AND plan_id = ? AND verified = 1 ORDER BY taken_at DESC LIMIT 1",
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
        if let Some((from, to)) = change.status {
            let current: String = sqlx::query_scalar("SELECT status FROM plans WHERE id = ?")
                .bind(change.plan_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::UnknownPlan(change.plan_id.to_string()))?;
            if !from.is_empty() && !from.iter().any(|s| s.as_str() == current) {
                return Ok(false);
            }
            sqlx::query("UPDATE plans SET status = ?, updated_at = ? WHERE id = ?")
                .bind(to.as_str())
                .bind(&now)
                .bind(change.plan_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(run) = &change.run {
            // language=SQL
            sqlx::query(
                "INSERT INTO runs (plan_id, checksum, kind, target, ok, started_at, finished_at, duration_ms, detail)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            sqlx::query("UPDATE steps SET state = ?, applied_at = coalesce(?, applied_at) WHERE plan_id = ? AND idx = ?")
                .bind(state.as_str())
                .bind(applied_at)
                .bind(change.plan_id)
                .bind(*idx as i64)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((checksum, by, decision, reason)) = change.approval {
            sqlx::query("INSERT INTO approvals (plan_id, checksum, by, decision, reason, at) VALUES (?, ?, ?, ?, ?, ?)")
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
            sqlx::query("UPDATE steps SET state = 'pending', released_by = ?, released_at = ? WHERE plan_id = ? AND idx = ?")
                .bind(by)
                .bind(&now)
                .bind(change.plan_id)
                .bind(idx as i64)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((target, verified, detail)) = &change.backup {
            sqlx::query("INSERT INTO backups (target, plan_id, verified, detail, taken_at) VALUES (?, ?, ?, ?, ?)")
                .bind(target)
                .bind(change.plan_id)
                .bind(*verified as i64)
                .bind(serde_json::to_string(detail).map_err(decode("backup evidence"))?)
                .bind(&now)
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
        sqlx::query("UPDATE plans SET paused_by = ?, paused_at = ? WHERE id = ?")
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
            "SELECT paused_by AS by, paused_at AS at FROM plans WHERE id = ? AND paused_by IS NOT NULL",
        )
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The audit trail, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT at, actor, action, plan_id, detail, role, via, os_user FROM audit ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn audit(
    conn: &mut SqliteConnection,
    who: &Principal,
    action: &str,
    plan_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    // language=SQL
    sqlx::query(
        "INSERT INTO audit (at, actor, action, plan_id, detail, role, via, os_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

/// A token as the store keeps it: never its secret.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Grant,
    #[serde(skip)]
    pub hash: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Store {
    pub async fn insert_token(&self, row: &TokenRow, by: &Principal) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        sqlx::query(
            "INSERT INTO tokens (id, name, role, hash, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.role.as_str())
        .bind(&row.hash)
        .bind(&row.created_at)
        .bind(&row.created_by)
        .bind(&row.expires_at)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({"token": row.id, "name": row.name, "role": row.role, "expires_at": row.expires_at});
        audit(&mut tx, by, "token-create", None, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, name, role, hash, created_at, created_by, expires_at, revoked_at FROM tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        // language=SQL
        Ok(sqlx::query_as(
            "SELECT id, name, role, hash, created_at, created_by, expires_at, revoked_at FROM tokens ORDER BY name, created_at",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes every live token of `name`; returns how many.
    pub async fn revoke_tokens(&self, name: &str, by: &Principal) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // language=SQL
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
                .bind(now())
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let detail = serde_json::json!({"name": name, "revoked": n});
        audit(&mut tx, by, "token-revoke", None, detail).await?;
        tx.commit().await?;
        Ok(n)
    }
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
