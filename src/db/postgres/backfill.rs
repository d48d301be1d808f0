//! Backfill steps: keyset batches, each its own transaction with its checkpoint (and, for the
//! last, the history row), the values they overwrite saved first; and their restore.

use super::*;

impl Postgres {
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
        history: &crate::db::HistoryRow<'_>,
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
                            cause: crate::db::agent_error(&e, &batch_sql),
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
}
