//! Rolling a backfill back on a target: its saved values put back in batches, each its own
//! short transaction that takes its rows out of the backup as it restores them, so the
//! application's writers wait for one batch at most, never for the whole table; then the
//! step's `down` sweeps what is left (nothing, unless a batch was skipped), drops the backup
//! and writes the history row in one transaction.
//!
//! A rollback that stops between batches (a kill, a lock it could not get) leaves the step
//! half restored: still applied per the history, its backup marked (`RESTORING`). A rollback
//! again finishes it; an apply refuses to go on over it (`restore_begun`).

use super::saved::{Place, RESTORING, Saved, backup_table};
use super::*;

impl Postgres {
    /// The statements of a backfill step's `down` that put back what its batches have not:
    /// every saved value left, with the table's triggers off, then the backup dropped.
    pub async fn backfill_restore(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Vec<Stmt>> {
        let mut conn = self.connect().await?;
        let saved = self
            .saved_on(&mut conn, plan_id, step, spec, columns)
            .await?;
        conn.close().await.ok();
        Ok(match saved {
            Some(saved) => saved
                .restore()
                .into_iter()
                .map(|sql| Stmt {
                    sql,
                    transactional: true,
                })
                .collect(),
            None => vec![],
        })
    }

    /// Puts a backfill step's saved values back in batches before its `down` runs. Each batch
    /// is one transaction (as the apply role, the table's user triggers off inside it when it
    /// has any: a dual-write trigger would copy the restored values across — which takes a lock
    /// writers wait for, so such batches are followed by a pause as long as they were); its
    /// size adapts to keep it near 100 ms; a lock timeout retries it smaller, with backoff.
    pub async fn restore_in_batches(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        policy: &Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        let mut conn = self.connect().await?;
        self.agent_role(&mut conn, AgentUse::Apply).await?;
        let Some(saved) = self
            .saved_on(&mut conn, plan_id, step, spec, columns)
            .await?
        else {
            conn.close().await.ok();
            return Ok(Ok(0));
        };
        self.mark_restoring(&mut conn, &saved).await?;
        let what = format!("restore of the values saved by backfill step `{step}`");
        self.put_back_in_batches(conn, &saved, step, &what, policy)
            .await
    }

    /// Puts back what a drop template set aside (`Restore`), in batches as a backfill's saved
    /// values are, once `prepare` (its own transaction, with the lock retries of a step's) has
    /// made the columns exist again. Nothing is done when the aside table is gone (the step's
    /// `down` committed already).
    pub async fn restore_aside(
        &self,
        step: &str,
        restore: &crate::plan::Restore,
        policy: &Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        let saved = Saved::aside(restore);
        let mut conn = self.connect().await?;
        self.agent_role(&mut conn, AgentUse::Apply).await?;
        if !saved.exists(&mut conn).await.map_err(|e| self.err(e))? {
            conn.close().await.ok();
            return Ok(Ok(0));
        }
        // Marked before the column comes back: from here the step is half restored (an apply
        // refuses to go on over it) until its `down` drops the aside table. The session then
        // waits, holding no lock, for the batches.
        self.mark_restoring(&mut conn, &saved).await?;
        let prepare = [Stmt {
            sql: restore.prepare.clone(),
            transactional: true,
        }];
        let (prepared, _) = self
            .execute(
                step,
                &prepare,
                std::slice::from_ref(&restore.table),
                None,
                policy,
                &mut |_| {},
            )
            .await?;
        if let Err(f) = prepared {
            conn.close().await.ok();
            return Ok(Err(f));
        }
        let what = format!("restore of the values step `{step}` set aside");
        self.put_back_in_batches(conn, &saved, step, &what, policy)
            .await
    }

    /// Marks the saved values as being restored (before the first batch commits), in a
    /// transaction of its own as the apply role.
    async fn mark_restoring(&self, conn: &mut PgConnection, saved: &Saved) -> Result<()> {
        let begin = format!("BEGIN; {}", self.roles.begin(AgentUse::Apply));
        sqlx::raw_sql(AssertSqlSafe(format!(
            "{begin} {}; COMMIT",
            saved.mark_restoring()
        )))
        .execute(conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The batches of a restore already marked (see `restore_in_batches`), on `conn` (as the
    /// apply role), which they close.
    async fn put_back_in_batches(
        &self,
        mut conn: PgConnection,
        saved: &Saved,
        step: &str,
        what: &str,
        policy: &Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        let started = Instant::now();
        let begin = format!("BEGIN; {}", self.roles.begin(AgentUse::Apply));
        let table = saved.restored_table().to_string();
        let triggers = user_triggers(&mut conn, &table)
            .await
            .map_err(|e| self.err(e))?;
        let (off, on) = if triggers {
            (
                format!("ALTER TABLE {table} DISABLE TRIGGER USER;"),
                format!("ALTER TABLE {table} ENABLE TRIGGER USER;"),
            )
        } else {
            (String::new(), String::new())
        };
        let batch = Batch {
            open: format!("{begin} {off}"),
            sql: saved.restore_batch(),
            close: format!("{on} COMMIT"),
        };
        let (mut after, mut size, mut restored) =
            ("(0,0)".to_string(), saved.first_restore_batch(), 0u64);
        let (mut attempt, mut batches) = (0u32, 0usize);
        let outcome = loop {
            let t0 = Instant::now();
            match batch.run(&mut conn, &after, size).await {
                Ok((_, None)) => break Ok(restored),
                Ok((rows, Some(last))) => {
                    (after, attempt) = (last, 0);
                    restored += rows as u64;
                    batches += 1;
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    tracing::debug!(target: "drydock::phases", step, rows, size, ms, "restore batch");
                    if ms < 50.0 {
                        size = (size * 3 / 2).max(size + 1);
                    } else if ms > 200.0 {
                        size /= 2;
                    }
                    size = size.clamp(1, saved.largest_restore_batch());
                    if triggers {
                        // Each batch held the table against every writer (its triggers off):
                        // as long again for them, or the next batch's lock queues them behind it
                        // batch after batch and their backlog grows through the whole restore.
                        tokio::time::sleep(t0.elapsed()).await;
                    }
                }
                Err(e) => {
                    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.ok();
                    let state = sqlstate(&e);
                    if state.as_deref() == Some("55P03") && attempt + 1 < policy.lock_retries {
                        attempt += 1;
                        size = (size / 2).max(1);
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    break Err(StepFailure {
                        index: batches + 1,
                        sql: what.to_string(),
                        sqlstate: state,
                        cause: crate::db::agent_error(&e, &batch.sql),
                        raised: crate::db::raised(&e),
                    });
                }
            }
        };
        conn.close().await.ok();
        crate::clock::phase(
            &format!("{}: restore ({batches} batches)", self.name),
            started,
        );
        Ok(outcome)
    }

    /// A backfill step's saved values on the target, if it saved any (a backfill applied before
    /// drydock saved values has none).
    async fn saved_on(
        &self,
        conn: &mut PgConnection,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Option<Saved>> {
        let saved = Saved::resolve(
            &self.name,
            conn,
            spec,
            columns,
            Place::Target { plan_id, step },
        )
        .await?;
        let exists = saved.exists(conn).await.map_err(|e| self.err(e))?;
        Ok(exists.then_some(saved))
    }

    /// Whether a rollback began putting a backfill step's saved values (or what a drop template
    /// set `aside`) back and did not end.
    pub async fn restore_begun(
        &self,
        plan_id: &str,
        step: &str,
        aside: Option<&crate::plan::Restore>,
    ) -> Result<bool> {
        let backup = match aside {
            Some(r) => qualified_ident(&r.from),
            None => backup_table(plan_id, step),
        };
        self.read(async |c| {
            // language=SQL
            sqlx::query_scalar(
                "SELECT coalesce(pg_catalog.obj_description(pg_catalog.to_regclass($1), 'pg_class') = $2, false)",
            )
            .persistent(false)
            .bind(&backup)
            .bind(RESTORING)
            .fetch_one(&mut *c)
            .await
        })
        .await
    }
}

/// One restore batch's transaction: its opening (the role, the triggers off), its statement,
/// its closing.
struct Batch {
    open: String,
    sql: String,
    close: String,
}

impl Batch {
    /// The rows put back and the last `ctid` taken (none: nothing was left after `after`).
    async fn run(
        &self,
        conn: &mut PgConnection,
        after: &str,
        size: i64,
    ) -> sqlx::Result<(i64, Option<String>)> {
        sqlx::raw_sql(AssertSqlSafe(self.open.clone()))
            .execute(&mut *conn)
            .await?;
        let (rows, last): (i64, Option<String>) = sqlx::query_as(AssertSqlSafe(self.sql.clone()))
            .persistent(false)
            .bind(after)
            .bind(size)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::raw_sql(AssertSqlSafe(self.close.clone()))
            .execute(&mut *conn)
            .await?;
        Ok((rows, last))
    }
}

/// Whether `table` (quoted) has enabled user triggers.
async fn user_triggers(conn: &mut PgConnection, table: &str) -> sqlx::Result<bool> {
    // language=SQL
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger
                        WHERE tgrelid = pg_catalog.to_regclass($1) AND NOT tgisinternal AND tgenabled <> 'D')",
    )
    .persistent(false)
    .bind(table)
    .fetch_one(&mut *conn)
    .await
}
