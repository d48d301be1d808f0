//! One migration at a time (the advisory lock) and the target's history table.

use super::*;

impl Postgres {
    /// Takes the target's session advisory lock: one migration at a time per target, across
    /// every drydock process. Held until `PgLock::release` (or the connection closes).
    pub async fn lock(&self) -> Result<PgLock> {
        let mut conn = self.connect().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .persistent(false)
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

    pub async fn history(&self, plan_id: &str) -> Result<Vec<crate::db::HistoryEntry>> {
        self.read(async |conn| {
            if !history_exists(conn).await? {
                return Ok(vec![]);
            }
            // language=SQL
            Ok(sqlx::query("SELECT step, checksum, applied_at::text, rolled_back_at::text FROM drydock.history WHERE plan_id = $1 ORDER BY id")
                .persistent(false)
                .bind(plan_id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| crate::db::HistoryEntry {
                    step: r.get(0),
                    checksum: r.get(1),
                    applied_at: r.get(2),
                    rolled_back_at: r.get(3),
                })
                .collect())
        })
        .await
    }

    /// Every plan's history rows, with the version each step was exported as (read through
    /// `to_jsonb`, so a table from before exports, without the column, reads as unexported).
    pub async fn history_versions(&self) -> Result<Vec<crate::db::HistoryVersion>> {
        self.read(async |conn| {
            if !history_exists(conn).await? {
                return Ok(vec![]);
            }
            // language=SQL
            Ok(sqlx::query("SELECT plan_id, step, (to_jsonb(h) ->> 'version')::bigint, rolled_back_at IS NULL FROM drydock.history h ORDER BY id")
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| crate::db::HistoryVersion {
                    plan_id: r.get(0),
                    step: r.get(1),
                    version: r.get(2),
                    applied: r.get(3),
                })
                .collect())
        })
        .await
    }

    /// Records exported versions and the tool's history rows in one transaction.
    pub async fn record_export(
        &self,
        versions: &[(String, String, i64)],
        tool: &[String],
    ) -> Result<()> {
        let mut conn = self.connect().await?;
        let run = async {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(CREATE_HISTORY).execute(&mut *tx).await?;
            sqlx::raw_sql("ALTER TABLE drydock.history ADD COLUMN IF NOT EXISTS version bigint")
                .execute(&mut *tx)
                .await?;
            for (plan, step, version) in versions {
                // language=SQL
                sqlx::query("UPDATE drydock.history SET version = $1 WHERE plan_id = $2 AND step = $3 AND rolled_back_at IS NULL")
                    .persistent(false)
                    .bind(version)
                    .bind(plan)
                    .bind(step)
                    .execute(&mut *tx)
                    .await?;
            }
            for sql in tool {
                sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        };
        let result = run.await.map_err(|e| self.err(e));
        conn.close().await.ok();
        result
    }
}

/// The steps a dry-run's rehearsal has begun on this target and not yet undone (see
/// `engine::rehearsal`): rows left behind say what an interrupted rehearsal committed.
// language=SQL
const CREATE_REHEARSALS: &str = "CREATE SCHEMA IF NOT EXISTS drydock;
    CREATE TABLE IF NOT EXISTS drydock.rehearsals (
        plan_id text NOT NULL,
        step text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (plan_id, step)
    )";

impl Postgres {
    /// Notes, before a rehearsal runs `step` of `plan_id` here, that it has begun (as the
    /// login, on a session of its own: it commits whatever the rehearsal's session does).
    pub async fn mark_rehearsal(&self, plan_id: &str, step: &str) -> Result<()> {
        self.read(async |conn| {
            sqlx::raw_sql(CREATE_REHEARSALS).execute(&mut *conn).await?;
            // language=SQL
            sqlx::query("INSERT INTO drydock.rehearsals (plan_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .persistent(false)
                .bind(plan_id)
                .bind(step)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Forgets every begun step of `plan_id`'s rehearsal (undone, or given up on).
    pub async fn clear_rehearsal(&self, plan_id: &str) -> Result<()> {
        self.read(async |conn| {
            if sqlx::query_scalar::<_, bool>("SELECT to_regclass('drydock.rehearsals') IS NOT NULL")
                .persistent(false)
                .fetch_one(&mut *conn)
                .await?
            {
                // language=SQL
                sqlx::query("DELETE FROM drydock.rehearsals WHERE plan_id = $1")
                    .persistent(false)
                    .bind(plan_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// The steps rehearsals have begun here and not undone, as (plan, step).
    pub async fn rehearsals(&self) -> Result<Vec<(String, String)>> {
        self.read(async |conn| {
            if !sqlx::query_scalar::<_, bool>(
                "SELECT to_regclass('drydock.rehearsals') IS NOT NULL",
            )
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?
            {
                return Ok(vec![]);
            }
            // language=SQL
            sqlx::query_as(
                "SELECT plan_id, step FROM drydock.rehearsals ORDER BY started_at, plan_id, step",
            )
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
        })
        .await
    }
}

/// Whether drydock has written its history table into this target yet.
async fn history_exists(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass('drydock.history') IS NOT NULL")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
}

/// The connection holding a target's advisory lock.
pub struct PgLock(PgConnection);

impl PgLock {
    pub async fn release(self) {
        let mut conn = self.0;
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .persistent(false)
            .execute(&mut conn)
            .await
            .ok();
        conn.close().await.ok();
    }
}

/// A stable 64-bit key for the target's advisory lock.
pub(super) fn advisory_key(target: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("drydock:{target}").as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}
