//! What a backfill watches between its batches: streaming replicas' replay lag
//! (`pg_stat_replication`), the oldest open transaction (`pg_stat_activity`), and the walked
//! table's dead tuples (`pg_stat_user_tables`) — and the wait while a replica lags more than
//! `policy.max_replica_lag`.

use super::*;
use crate::db::{Health, ReplicaLag};

/// Samples the server around a backfill of `table` (as its quoted, qualified name).
pub(super) async fn sample(conn: &mut PgConnection, table: &str) -> sqlx::Result<Health> {
    // language=SQL
    let replicas: Vec<(String, Option<f64>, Option<i64>)> = sqlx::query_as(
        "SELECT coalesce(nullif(application_name, ''), 'walreceiver') || coalesce(' (' || host(client_addr) || ')', ''),
                extract(epoch FROM replay_lag)::float8,
                pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8
         FROM pg_stat_replication ORDER BY 1",
    )
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    // language=SQL
    let (oldest, dead): (Option<f64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT extract(epoch FROM now() - min(xact_start))::float8 FROM pg_stat_activity
                 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
                   AND backend_type = 'client backend' AND application_name NOT LIKE 'drydock%'),
                (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = to_regclass($1))",
    )
    .persistent(false)
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Health {
        replicas: replicas
            .into_iter()
            .map(|(name, lag, behind)| ReplicaLag {
                name,
                replay_lag_s: lag,
                behind_bytes: behind.unwrap_or(0),
            })
            .collect(),
        oldest_transaction_s: oldest,
        dead_tuples: dead,
        waiting: None,
    })
}

/// Samples at most once a second between batches, and holds the backfill while a replica lags
/// over `max`: the batches would only add to what it has to replay.
pub(super) struct Monitor {
    table: String,
    max: Duration,
    last: Option<Instant>,
    pub health: Health,
}

impl Monitor {
    pub(super) fn new(table: String, max: Duration) -> Monitor {
        Monitor {
            table,
            max,
            last: None,
            health: Health::default(),
        }
    }

    /// A fresh sample when the last is over a second old; whether it took one. A failed sample
    /// (a role that may not read the statistics views) leaves the last one: monitoring never
    /// stops a backfill.
    pub(super) async fn refresh(&mut self, conn: &mut PgConnection) -> bool {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.last = Some(Instant::now());
        match sample(conn, &self.table).await {
            Ok(h) => {
                self.health = h;
                true
            }
            Err(_) => false,
        }
    }

    /// Why the next batch must wait, if a replica lags over the maximum.
    pub(super) fn hold(&mut self) -> Option<String> {
        let why = self.health.lagging(self.max).map(|r| {
            format!(
                "waiting: replica {} is {:.1} s behind (policy.max_replica_lag {})",
                r.name,
                r.replay_lag_s.unwrap_or_default(),
                humantime::format_duration(self.max)
            )
        });
        self.health.waiting = why.clone();
        why
    }
}
