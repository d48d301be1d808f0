//! `drydock state migrate --to URL`: the whole state copied into another store (a SQLite file
//! into the PostgreSQL database a team shares), in one transaction on the destination, ids
//! and order kept. Refused while an apply holds a lease, or when the destination has state.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::{Backend, Result, Store, StoreError};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
}

use Kind::{Int, Real, Text};

/// Every table of the state, parents before children, with its columns' kinds. `leases` is
/// not copied: a lease belongs to a running server, and none may run during a migration.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "plans",
        &[
            ("id", Text),
            ("checksum", Text),
            ("goal", Text),
            ("target", Text),
            ("author", Text),
            ("urgency", Text),
            ("status", Text),
            ("created_at", Text),
            ("updated_at", Text),
            ("supersedes", Text),
            ("body", Text),
            ("analysis", Text),
            ("paused_by", Text),
            ("paused_at", Text),
        ],
    ),
    (
        "steps",
        &[
            ("plan_id", Text),
            ("idx", Int),
            ("name", Text),
            ("state", Text),
            ("applied_at", Text),
            ("released_by", Text),
            ("released_at", Text),
        ],
    ),
    (
        "runs",
        &[
            ("id", Int),
            ("plan_id", Text),
            ("checksum", Text),
            ("kind", Text),
            ("target", Text),
            ("ok", Int),
            ("started_at", Text),
            ("finished_at", Text),
            ("duration_ms", Real),
            ("detail", Text),
        ],
    ),
    (
        "approvals",
        &[
            ("id", Int),
            ("plan_id", Text),
            ("checksum", Text),
            ("by", Text),
            ("decision", Text),
            ("reason", Text),
            ("at", Text),
        ],
    ),
    (
        "backups",
        &[
            ("id", Int),
            ("target", Text),
            ("plan_id", Text),
            ("verified", Int),
            ("detail", Text),
            ("taken_at", Text),
        ],
    ),
    (
        "audit",
        &[
            ("id", Int),
            ("at", Text),
            ("actor", Text),
            ("action", Text),
            ("plan_id", Text),
            ("detail", Text),
            ("role", Text),
            ("via", Text),
            ("os_user", Text),
        ],
    ),
    (
        "tokens",
        &[
            ("id", Text),
            ("name", Text),
            ("role", Text),
            ("hash", Text),
            ("created_at", Text),
            ("created_by", Text),
            ("expires_at", Text),
            ("revoked_at", Text),
        ],
    ),
    (
        "members",
        &[
            ("plan_id", Text),
            ("target", Text),
            ("position", Int),
            ("wave", Int),
            ("state", Text),
            ("error", Text),
            ("updated_at", Text),
        ],
    ),
    (
        "mistakes",
        &[
            ("key", Text),
            ("code", Text),
            ("lesson", Text),
            ("what", Text),
            ("agent", Text),
            ("tool", Text),
            ("plan_id", Text),
            ("target", Text),
            ("tables", Text),
            ("count", Int),
            ("first_at", Text),
            ("last_at", Text),
        ],
    ),
];

/// Rows copied per table.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    pub from: Backend,
    pub to: Backend,
    pub tables: Vec<(String, u64)>,
}

impl Store {
    /// Copies every row of this store into `to`, which must hold no state yet.
    pub async fn copy_into(&self, to: &Store) -> Result<Copied> {
        let live: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM leases WHERE expires_ms >= {}",
            self.backend.now_ms()
        )))
        .fetch_one(&self.pool)
        .await?;
        if live > 0 {
            return Err(StoreError::Busy(format!(
                "{live} plan(s) are being applied or rolled back; migrate when none is"
            )));
        }
        let mut tx = to.pool.begin().await?;
        for (table, _) in TABLES {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await?;
            if n > 0 {
                return Err(StoreError::Busy(format!(
                    "the destination already has state ({n} rows in `{table}`); migrate into an empty store"
                )));
            }
        }
        let mut copied = Vec::new();
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            let order = if names.contains(&"id") {
                "id"
            } else {
                names[0]
            };
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {} FROM {table} ORDER BY {order}",
                names.join(", ")
            )))
            .fetch_all(&self.pool)
            .await?;
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                (1..=names.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for row in &rows {
                let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
                for (i, (_, kind)) in columns.iter().enumerate() {
                    q = match kind {
                        Text => q.bind(row.try_get::<Option<String>, _>(i)?),
                        Int => q.bind(row.try_get::<Option<i64>, _>(i)?),
                        Real => q.bind(row.try_get::<Option<f64>, _>(i)?),
                    };
                }
                q.execute(&mut *tx).await?;
            }
            if to.backend == Backend::Postgres
                && names.contains(&"id")
                && matches!(columns[0].1, Int)
            {
                // Explicit ids leave the identity behind them: new rows continue after the last.
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
                )))
                .execute(&mut *tx)
                .await?;
            }
            copied.push((table.to_string(), rows.len() as u64));
        }
        tx.commit().await?;
        Ok(Copied {
            from: self.backend,
            to: to.backend,
            tables: copied,
        })
    }
}
