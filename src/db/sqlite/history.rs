//! drydock's history table inside a SQLite target (`_drydock_history`): a row per applied step,
//! written in the step's own transaction, and the version each step was exported as.

use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{History, Sqlite};
use crate::db::{HistoryEntry, HistoryVersion};
use crate::error::Result;

// language=SQL
const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS _drydock_history (
    id INTEGER PRIMARY KEY,
    plan_id TEXT NOT NULL,
    step TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    applied_by TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms REAL,
    rolled_back_at TEXT,
    version INTEGER
)";

impl Sqlite {
    /// Every plan's history rows, with the version each step was exported as.
    pub async fn history_versions(&self) -> Result<Vec<HistoryVersion>> {
        let mut conn = self.connect().await?;
        let rows = if has_version(&mut conn).await.map_err(|e| self.err(e))? {
            // language=SQL
            sqlx::query("SELECT plan_id, step, version, rolled_back_at IS NULL FROM _drydock_history ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| HistoryVersion {
                    plan_id: r.get(0),
                    step: r.get(1),
                    version: r.get(2),
                    applied: r.get(3),
                })
                .collect()
        } else {
            vec![]
        };
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Records the versions steps were exported as, and `tool` (statements writing the
    /// folder's tool's own history), in one transaction.
    pub async fn record_export(
        &self,
        versions: &[(String, String, i64)],
        tool: &[String],
    ) -> Result<()> {
        let mut conn = self.connect().await?;
        let run = async {
            let mut tx = conn.begin().await?;
            sqlx::query(CREATE_HISTORY).execute(&mut *tx).await?;
            if !has_version(&mut tx).await? {
                sqlx::query("ALTER TABLE _drydock_history ADD COLUMN version INTEGER")
                    .execute(&mut *tx)
                    .await?;
            }
            for (plan, step, version) in versions {
                // language=SQL
                sqlx::query("UPDATE _drydock_history SET version = ? WHERE plan_id = ? AND step = ? AND rolled_back_at IS NULL")
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

    pub async fn history(&self, plan_id: &str) -> Result<Vec<HistoryEntry>> {
        let mut conn = self.connect().await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name = '_drydock_history'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        let rows = if exists == 0 {
            vec![]
        } else {
            // language=SQL
            sqlx::query("SELECT step, checksum, applied_at, rolled_back_at FROM _drydock_history WHERE plan_id = ? ORDER BY id")
                .bind(plan_id)
                .fetch_all(&mut conn)
                .await
                .map_err(|e| self.err(e))?
                .iter()
                .map(|r| HistoryEntry {
                    step: r.get(0),
                    checksum: r.get(1),
                    applied_at: r.get(2),
                    rolled_back_at: r.get(3),
                })
                .collect()
        };
        conn.close().await.map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

/// Writes a step's history row (applied), or marks it rolled back, in the step's transaction.
pub(super) async fn write_history(
    conn: &mut SqliteConnection,
    h: &History<'_>,
    total_ms: f64,
) -> sqlx::Result<()> {
    match h {
        History::Applied(row) => {
            sqlx::query(CREATE_HISTORY).execute(&mut *conn).await?;
            // language=SQL
            sqlx::query("INSERT INTO _drydock_history (plan_id, step, checksum, applied_at, applied_by, status, duration_ms) VALUES (?, ?, ?, ?, ?, 'applied', ?)")
                .bind(row.plan_id)
                .bind(row.step)
                .bind(row.checksum)
                .bind(crate::clock::now())
                .bind(row.by)
                .bind(total_ms)
                .execute(&mut *conn)
                .await?;
        }
        History::RolledBack { plan_id, step } => {
            // language=SQL
            sqlx::query("UPDATE _drydock_history SET status = 'rolled-back', rolled_back_at = ? WHERE plan_id = ? AND step = ? AND rolled_back_at IS NULL")
                .bind(crate::clock::now())
                .bind(plan_id)
                .bind(step)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Whether the history table exists with its `version` column (tables written before exports
/// existed lack it).
async fn has_version(conn: &mut SqliteConnection) -> sqlx::Result<bool> {
    // language=SQL
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('_drydock_history') WHERE name = 'version'",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}
