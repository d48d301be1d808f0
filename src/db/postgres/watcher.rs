//! The lock watcher: a second connection sampling who waits behind the migration, cancelling
//! it past `policy.max_block`.

use super::*;

/// Stops a watcher when the operation it watches ends, however it ends.
/// Tells the watcher to stop, waking it at once: no sampling pause may sit between a step's
/// commit and its caller.
#[derive(Default)]
pub(super) struct Stop {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    pub(super) fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub(super) fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

pub(super) struct StopOnDrop(pub(super) Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Samples, every 50 ms, the sessions blocked behind `pid`; cancels `pid`'s statement when any
/// has waited longer than `max_block`. The first sample is one interval in: a statement done
/// sooner blocked nobody for long, and costs no second connection (a rollout's members run many
/// such steps). Waits are measured from the waiter's own start, so a late first sample still
/// sees the whole wait.
pub(super) async fn watch(
    options: PgConnectOptions,
    pid: i32,
    max_block: Duration,
    stop: Arc<Stop>,
    blocked_samples: Option<Arc<AtomicU64>>,
) -> WatchReport {
    let mut report = WatchReport::default();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        _ = stop.wake.notified() => {}
    }
    if stop.stopped() {
        return report;
    }
    let Ok(mut conn) = options.application_name("drydock-watcher").connect().await else {
        return report;
    };
    while !stop.stopped() {
        // Only sessions waiting for a lock can be blocked by it: pg_blocking_pids reads the
        // whole lock table under every partition's lock, so it is asked of those alone (the
        // CASE keeps the planner from calling it first) — twenty samples a second per watcher
        // would otherwise contend with every session's lock acquisitions.
        // language=SQL
        let row: Option<(i64, f64)> = sqlx::query_as(
            "SELECT count(*)::int8, coalesce(max(extract(epoch FROM now() - query_start)), 0)::float8
             FROM pg_stat_activity
             WHERE CASE WHEN wait_event_type = 'Lock' THEN $1 = ANY (pg_blocking_pids(pid)) ELSE false END",
        )
        .persistent(false)
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
                    .persistent(false)
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
