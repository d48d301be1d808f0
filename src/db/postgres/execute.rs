//! Running a step for real: statements grouped into transactions (non-transactional ones
//! alone), a pre-flight look for long transactions holding the locks the step needs, lock
//! timeouts retried with backoff, and the step's history row in its transaction.

use super::*;

impl Postgres {
    /// Runs one step under the lock discipline (the caller holds `lock`): pre-flight for long
    /// transactions, `lock_timeout` with retried transactions, and the watcher.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute(
        &self,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<(
        std::result::Result<Vec<StatementRun>, StepFailure>,
        WatchReport,
    )> {
        let (mut conn, pid) = self.step_session().await?;
        // Checked before every step, on a kept session too.
        self.agent_role(&mut conn, AgentUse::Apply).await?;

        let stop = Arc::new(Stop::default());
        let watcher = tokio::spawn(watch(
            self.options.clone(),
            pid,
            policy.max_block,
            stop.clone(),
            None,
        ));
        let result = self
            .run_groups(
                &mut conn,
                step,
                statements,
                tables,
                history,
                policy,
                on_statement,
            )
            .await;
        stop.stop();
        let watch = watcher.await.unwrap_or_default();
        if matches!(&result, Ok(Ok(_))) && !watch.cancelled {
            self.keep_step_session(conn, pid).await;
        } else {
            conn.close().await.ok();
        }
        let mut result = result?;
        if let Err(f) = &mut result
            && watch.cancelled
        {
            f.cause = format!(
                "cancelled by the lock watcher: {} session(s) were blocked behind the migration for over policy.max_block ({} ms): {}",
                watch.max_blocked_sessions, watch.longest_wait_ms, f.cause
            );
        }
        Ok((result, watch))
    }

    /// The session steps run on: the one the last step of this target (as opened) succeeded
    /// on (or `ready_steps` opened), else a new one; drydock's history table is made on it
    /// before its first step. One session for a plan's steps on a target, as the dry-run's
    /// sandbox is one: a connection's handshake is not paid again for every step (a
    /// rollout's members run several each).
    async fn step_session(&self) -> Result<(PgConnection, i32)> {
        let kept = self.steps_session.lock().expect("step session lock").take();
        let session = match kept {
            Some(mut s) => {
                if s.conn.ping().await.is_ok() {
                    s
                } else {
                    s.conn.close_hard().await.ok();
                    self.open_step_session().await?
                }
            }
            None => self.open_step_session().await?,
        };
        let StepSession {
            mut conn,
            pid,
            bookkept,
        } = session;
        if !bookkept {
            sqlx::raw_sql(CREATE_HISTORY)
                .execute(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            self.grant_bookkeeping(&mut conn).await?;
        }
        Ok((conn, pid))
    }

    async fn open_step_session(&self) -> Result<StepSession> {
        let mut conn = self.connect().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(StepSession {
            conn,
            pid,
            bookkept: false,
        })
    }

    /// Opens the step session ahead of the first step, when none is kept: only the
    /// connection (drydock's tables are made before the first step, not beside other work).
    pub async fn ready_steps(&self) -> Result<()> {
        if self
            .steps_session
            .lock()
            .expect("step session lock")
            .is_some()
        {
            return Ok(());
        }
        let session = self.open_step_session().await?;
        self.put_step_session(session).await;
        Ok(())
    }

    /// Keeps the session of a step that succeeded (every transaction of it ended) for the
    /// next step; a session of a step that failed is closed, never kept.
    async fn keep_step_session(&self, conn: PgConnection, pid: i32) {
        self.put_step_session(StepSession {
            conn,
            pid,
            bookkept: true,
        })
        .await;
    }

    /// Keeps `session` as the step session; one kept already is closed.
    async fn put_step_session(&self, session: StepSession) {
        let extra = self
            .steps_session
            .lock()
            .expect("step session lock")
            .replace(session);
        if let Some(s) = extra {
            s.conn.close().await.ok();
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_groups(
        &self,
        conn: &mut PgConnection,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let groups = transactions(statements);
        let started = Instant::now();
        let mut runs = Vec::new();
        let last_tx_group = groups.iter().rposition(|(tx, _)| *tx);
        for (gi, (transactional, group)) in groups.iter().enumerate() {
            let with_history = if Some(gi) == last_tx_group {
                history.as_ref()
            } else {
                None
            };
            let mut attempt = 0;
            loop {
                self.preflight(conn, tables, policy, attempt).await?;
                let outcome = self
                    .run_group(conn, step, group, *transactional, with_history, started)
                    .await?;
                match outcome {
                    Ok(group_runs) => {
                        for r in &group_runs {
                            on_statement(r);
                        }
                        runs.extend(group_runs);
                        break;
                    }
                    Err(f) if f.lock_timed_out() && attempt + 1 < policy.lock_retries => {
                        attempt += 1;
                        tracing::info!(target_name = %self.name, step, attempt, "lock timeout; retrying the step's transaction");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Err(mut f) => {
                        if f.lock_timed_out() {
                            f.cause = format!(
                                "could not get its lock within policy.lock_timeout ({} ms) in {} tries; another session holds a conflicting lock: {}",
                                crate::db::millis(policy.lock_timeout),
                                attempt + 1,
                                f.cause
                            );
                        }
                        if !*transactional {
                            drop_invalid_index(conn, &mut f).await;
                        }
                        return Ok(Err(f));
                    }
                }
            }
        }
        if last_tx_group.is_none()
            && let Some(h) = history.as_ref()
        {
            sqlx::raw_sql("BEGIN")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
            write_history(conn, h, started.elapsed().as_secs_f64() * 1000.0)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::raw_sql("COMMIT")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(Ok(runs))
    }

    pub(super) async fn run_group(
        &self,
        conn: &mut PgConnection,
        step: &str,
        group: &[(usize, &Stmt)],
        transactional: bool,
        history: Option<&History<'_>>,
        started: Instant,
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        // The approved SQL runs as the apply role, and in its transaction so does everything
        // after it (the history row included); a statement run alone takes the role for itself.
        let role = self.roles.of(AgentUse::Apply);
        let begin = if transactional {
            format!("BEGIN; {}", self.roles.begin(AgentUse::Apply))
        } else {
            role.map(|r| format!("SET ROLE {}", quote_ident(r)))
                .unwrap_or_default()
        };
        if !begin.is_empty() {
            sqlx::raw_sql(AssertSqlSafe(begin))
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let alone = !transactional && role.is_some();
        let result = self
            .run_statements(conn, step, group, transactional, history, started)
            .await;
        if alone {
            sqlx::raw_sql("RESET ROLE")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        result
    }

    /// The statements of one group, in the transaction (or alone) `run_group` opened.
    async fn run_statements(
        &self,
        conn: &mut PgConnection,
        step: &str,
        group: &[(usize, &Stmt)],
        transactional: bool,
        history: Option<&History<'_>>,
        started: Instant,
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let mut runs = Vec::new();
        let mut held = BTreeSet::new();
        for (i, s) in group {
            if let Err(e) = cap_timeouts(conn, self.lock_timeout, self.statement_timeout).await {
                if transactional {
                    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
                }
                return Err(self.err(e));
            }
            let t0 = Instant::now();
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(s.sql.clone()))
                .execute(&mut *conn)
                .await
            {
                if transactional {
                    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
                }
                return Ok(Err(StepFailure {
                    index: i + 1,
                    sql: s.sql.clone(),
                    sqlstate: sqlstate(&e),
                    cause: crate::db::agent_error(&e, &s.sql),
                    raised: crate::db::raised(&e),
                }));
            }
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            // The locks the transaction holds once the statement ran: those it took, and those
            // earlier statements took (held until COMMIT). A statement run alone (CONCURRENTLY)
            // has released its own by now.
            let now = if transactional {
                held_locks(conn).await.map_err(|e| self.err(e))?
            } else {
                BTreeSet::new()
            };
            let locks = now
                .iter()
                .map(|(relation, mode)| LockObservation {
                    relation: relation.clone(),
                    mode: *mode,
                    acquired: !held.contains(&(relation.clone(), *mode)),
                    kind: None,
                })
                .collect();
            held = now;
            runs.push(StatementRun {
                step: step.to_string(),
                index: i + 1,
                sql: s.sql.clone(),
                duration_ms,
                locks,
                rewritten: vec![],
                scanned: vec![],
                scanned_partitions_of: vec![],
                note: (!transactional).then(|| {
                    "run alone (non-transactional): its locks were released when it ended".into()
                }),
            });
        }
        if let Some(h) = history
            && let Err(e) = write_history(conn, h, started.elapsed().as_secs_f64() * 1000.0).await
        {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
            return Err(self.err(e));
        }
        if transactional && let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
            return Ok(Err(commit_failed(group, &e)));
        }
        Ok(Ok(runs))
    }

    /// Waits (with backoff) while another session's long transaction holds a lock on the step's
    /// tables; refuses after `policy.lock_retries` looks rather than queue behind it.
    pub(super) async fn preflight(
        &self,
        conn: &mut PgConnection,
        tables: &[String],
        policy: &Policy,
        attempt: u32,
    ) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let mut look = attempt;
        loop {
            // language=SQL
            let rows = sqlx::query(
                "SELECT DISTINCT a.pid, coalesce(a.state, ''), coalesce(a.application_name, ''),
                        extract(epoch FROM now() - a.xact_start)::float8, l.relation::regclass::text
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
                   AND l.relation = ANY (SELECT to_regclass(t)::oid FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL)
                   AND a.xact_start < now() - make_interval(secs => $2)",
            )
            .persistent(false)
            .bind(tables)
            .bind(policy.lock_timeout.as_secs_f64())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
            if rows.is_empty() {
                return Ok(());
            }
            if look + 1 >= policy.lock_retries {
                let who: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "pid {} ({}, application `{}`) has held a lock on `{}` for {:.1} s",
                            r.get::<i32, _>(0),
                            r.get::<String, _>(1),
                            r.get::<String, _>(2),
                            r.get::<String, _>(4),
                            r.get::<f64, _>(3)
                        )
                    })
                    .collect();
                return Err(Error::BlockedByTransaction {
                    target: self.name.clone(),
                    detail: who.join("; "),
                });
            }
            look += 1;
            tokio::time::sleep(backoff(look)).await;
        }
    }
}

/// A step's statements as apply runs them: consecutive transactional statements form one
/// transaction (`true`), each other statement runs alone (`false`); each with its index.
pub(super) fn transactions(statements: &[Stmt]) -> Vec<(bool, Vec<(usize, &Stmt)>)> {
    let mut groups: Vec<(bool, Vec<(usize, &Stmt)>)> = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        match groups.last_mut() {
            Some((true, g)) if s.transactional => g.push((i, s)),
            _ => groups.push((s.transactional, vec![(i, s)])),
        }
    }
    groups
}

/// Backoff with jitter for lock-timeout retries: 100 ms · 2^attempt ± 50 %, at most 5 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos) % base.max(1);
    Duration::from_millis(base / 2 + jitter)
}

/// A failed `CREATE INDEX CONCURRENTLY` leaves an INVALID index behind: dropped (concurrently),
/// and the failure says so. An index of that name that is valid (the build failed because it
/// already existed) is never touched.
pub(super) async fn drop_invalid_index(conn: &mut PgConnection, f: &mut StepFailure) {
    let Some(index) = created_index_name(&f.sql) else {
        return;
    };
    // Resolved on the session's search path, as the DROP below is; every function and
    // operator qualified.
    // language=SQL
    let invalid = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i
                        WHERE i.indexrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(pg_catalog.quote_ident($1))
                          AND NOT i.indisvalid)",
    )
    .persistent(false)
    .bind(&index)
    .fetch_one(&mut *conn)
    .await;
    if !matches!(invalid, Ok(true)) {
        return;
    }
    let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", quote_ident(&index));
    if sqlx::raw_sql(AssertSqlSafe(drop))
        .execute(&mut *conn)
        .await
        .is_ok()
    {
        f.cause.push_str(&format!(
            " (the invalid index `{index}` it left was dropped)"
        ));
    }
}

/// The name of the index a `CREATE INDEX CONCURRENTLY name ...` statement builds.
pub(super) fn created_index_name(sql: &str) -> Option<String> {
    let toks = crate::sql::lexer::tokenize(sql).ok()?;
    let words: Vec<&crate::sql::lexer::Token> = toks.iter().map(|(_, t)| t).collect();
    let at = words.iter().position(|t| t.is_word("CONCURRENTLY"))?;
    let mut i = at + 1;
    if words.get(i).is_some_and(|t| t.is_word("IF")) {
        i += 3;
    }
    let name = words.get(i)?;
    if name.is_word("ON") {
        None
    } else {
        name.name()
    }
}

/// Writes a step's history row, in the step's transaction (after its agent SQL): under a pinned
/// search path, so `now()` and the row's casts are PostgreSQL's, never an agent's.
pub(super) async fn write_history(
    conn: &mut PgConnection,
    h: &History<'_>,
    duration_ms: f64,
) -> sqlx::Result<()> {
    pinned(conn, async |c| history_row(c, h, duration_ms).await).await
}

async fn history_row(
    conn: &mut PgConnection,
    h: &History<'_>,
    duration_ms: f64,
) -> sqlx::Result<()> {
    match h {
        History::Applied(row) => {
            // language=SQL
            sqlx::query("INSERT INTO drydock.history (plan_id, step, checksum, applied_by, status, duration_ms) VALUES ($1, $2, $3, $4, 'applied', $5)")
                .persistent(false)
                .bind(row.plan_id)
                .bind(row.step)
                .bind(row.checksum)
                .bind(row.by)
                .bind(duration_ms)
                .execute(conn)
                .await?;
        }
        History::RolledBack { plan_id, step } => {
            // language=SQL
            sqlx::query("UPDATE drydock.history SET status = 'rolled-back', rolled_back_at = now() WHERE plan_id = $1 AND step = $2 AND rolled_back_at IS NULL")
                .persistent(false)
                .bind(plan_id)
                .bind(step)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// `CREATE INDEX CONCURRENTLY` → `CREATE INDEX` (and the same for REINDEX/DROP INDEX); other
/// non-transactional statements (VACUUM, ...) have none.
pub(super) fn transactional_equivalent(sql: &str) -> Option<String> {
    let toks = crate::sql::lexer::tokenize(sql).ok()?;
    let (pos, _) = toks.iter().find(|(_, t)| t.is_word("CONCURRENTLY"))?;
    let first = toks.first().map(|(_, t)| t.clone())?;
    if !(first.is_word("CREATE") || first.is_word("DROP") || first.is_word("REINDEX")) {
        return None;
    }
    Some(format!(
        "{}{}",
        &sql[..*pos],
        &sql[pos + "CONCURRENTLY".len()..]
    ))
}

/// A step transaction's `COMMIT` that failed (a deferred constraint, a serialization failure),
/// as the failure of the group's last statement.
pub(super) fn commit_failed(group: &[(usize, &Stmt)], e: &sqlx::Error) -> StepFailure {
    StepFailure {
        index: group.last().map(|(i, _)| i + 1).unwrap_or(0),
        sql: "COMMIT".into(),
        sqlstate: sqlstate(e),
        cause: crate::redact::redact(&e.to_string()),
        raised: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrently_has_a_transactional_equivalent() {
        assert_eq!(
            transactional_equivalent("CREATE INDEX CONCURRENTLY i ON t (a)").as_deref(),
            Some("CREATE INDEX  i ON t (a)")
        );
        assert_eq!(transactional_equivalent("VACUUM t"), None);
        assert_eq!(
            created_index_name(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email)"
            )
            .as_deref(),
            Some("users_email")
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) < Duration::from_millis(300));
        assert!(backoff(20) < Duration::from_millis(7_500));
    }
}
