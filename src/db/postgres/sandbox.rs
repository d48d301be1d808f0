//! The dry-run sandbox: one transaction that is rolled back, in which the plan's SQL runs as
//! the dry-run role and its locks, rewrites and scans are measured.

use super::*;

impl Postgres {
    pub async fn sandbox(&self) -> Result<PgSandbox> {
        let mut conn = self.connect().await?;
        sqlx::raw_sql("BEGIN")
            .execute(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        // language=SQL
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.oid::int8, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'S', 'v') AND {USER_SCHEMA}"
        )))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| self.err(e))?;
        let existing = rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u32, qualified(r.get(1), r.get(2))))
            .collect();
        // Nobody has approved the plan yet: its SQL runs as the dry-run role.
        if let Some(role) = &self.roles.dry_run {
            sqlx::raw_sql(AssertSqlSafe(Roles::set_local(Some(role))))
                .execute(&mut conn)
                .await
                .map_err(|e| self.err(format!("SET ROLE {role} (dry_run_role): {e}")))?;
        }
        Ok(PgSandbox {
            conn,
            name: self.name.clone(),
            roles: self.roles.clone(),
            existing,
            baseline: None,
        })
    }
}

/// A dry-run sandbox: one connection inside a transaction that is always rolled back.
pub struct PgSandbox {
    conn: PgConnection,
    name: String,
    roles: Roles,
    /// User relations that existed before the plan ran: oid → qualified name.
    existing: BTreeMap<u32, String>,
    /// Locks drydock's own reads took before the plan's first statement (schema and data
    /// fingerprints): held until the end, and not the plan's.
    baseline: Option<BTreeSet<(String, LockMode)>>,
}

impl PgSandbox {
    pub(super) fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: crate::redact::redact(&e.to_string()),
        }
    }

    pub async fn fingerprint(&mut self) -> Result<Fingerprint> {
        fingerprint_on(&mut self.conn)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn run_checks(&mut self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        // A savepoint keeps a failing check from aborting the sandbox's transaction.
        let mut out = Vec::new();
        // Inside it the check runs read-only, under the check timeout and role; rolling back to
        // the savepoint restores the sandbox's own settings.
        let setup = format!("SAVEPOINT drydock_check; {}", self.roles.for_check());
        for c in checks {
            sqlx::raw_sql(AssertSqlSafe(setup.clone()))
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            out.extend(checks_on(&mut self.conn, std::slice::from_ref(c)).await);
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT drydock_check")
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// Runs statements inside the sandbox transaction, measuring locks, rewrites and scans on the
    /// relations that existed before the plan. Non-transactional statements run as their
    /// transactional equivalent (CONCURRENTLY removed) and say so.
    pub async fn execute(
        &mut self,
        step: &str,
        statements: &[Stmt],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let oids: Vec<i64> = self.existing.keys().map(|o| i64::from(*o)).collect();
        let mut runs = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            let (sql, note) = if s.transactional {
                (s.sql.clone(), None)
            } else {
                match transactional_equivalent(&s.sql) {
                    Some(eq) => (eq, Some("non-transactional: measured through its transactional equivalent (CONCURRENTLY removed)".to_string())),
                    None => {
                        runs.push(StatementRun {
                            step: step.to_string(),
                            index: i + 1,
                            sql: s.sql.clone(),
                            duration_ms: 0.0,
                            locks: vec![],
                            rewritten: vec![],
                            scanned: vec![],
                            note: Some("non-transactional and without a transactional equivalent: not run in the dry-run".into()),
                        });
                        continue;
                    }
                }
            };
            let locks_before = self.locks(&oids).await?;
            if self.baseline.is_none() {
                self.baseline = Some(locks_before.clone());
            }
            let files_before = self.filenodes(&oids).await?;
            let scans_before = self.scans().await?;
            let t0 = Instant::now();
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut self.conn)
                .await
            {
                return Ok(Err(StepFailure {
                    index: i + 1,
                    sql: s.sql.clone(),
                    sqlstate: sqlstate(&e),
                    cause: crate::db::agent_error(&e, &s.sql),
                }));
            }
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            let locks_after = self.locks(&oids).await?;
            let files_after = self.filenodes(&oids).await?;
            let scans_after = self.scans().await?;
            // Every lock held while the statement ran: those it took, and those earlier
            // statements of the transaction took and still hold.
            let baseline = self.baseline.clone().unwrap_or_default();
            let locks = locks_after
                .iter()
                .filter(|l| !baseline.contains(*l))
                .map(|(rel, mode)| LockObservation {
                    relation: rel.clone(),
                    mode: *mode,
                    acquired: !locks_before.contains(&(rel.clone(), *mode)),
                })
                .collect();
            let rewritten = files_before
                .iter()
                .filter(|(oid, (_, node))| files_after.get(*oid).is_some_and(|(_, n)| n != node))
                .map(|(_, (name, _))| name.clone())
                .collect();
            let scanned = scans_after
                .iter()
                .filter(|(t, n)| **n > scans_before.get(*t).copied().unwrap_or(0))
                .map(|(t, _)| t.clone())
                .filter(|t| self.existing.values().any(|e| e == t))
                .collect();
            runs.push(StatementRun {
                step: step.to_string(),
                index: i + 1,
                sql: s.sql.clone(),
                duration_ms,
                locks,
                rewritten,
                scanned,
                note,
            });
        }
        Ok(Ok(runs))
    }

    /// Relation locks this session holds on pre-existing relations, as (relation, mode).
    pub(super) async fn locks(&mut self, oids: &[i64]) -> Result<BTreeSet<(String, LockMode)>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT l.relation::int8, l.mode FROM pg_locks l
             WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.relation::int8 = ANY ($1)",
        )
        .bind(oids)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let oid = r.get::<i64, _>(0) as u32;
                let mode = LockMode::from_pg_locks(&r.get::<String, _>(1))?;
                self.existing.get(&oid).map(|n| (n.clone(), mode))
            })
            .collect())
    }

    /// Table relfilenodes: a change means the table was rewritten.
    pub(super) async fn filenodes(&mut self, oids: &[i64]) -> Result<BTreeMap<i64, (String, i64)>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT c.oid::int8, c.relfilenode::int8 FROM pg_class c WHERE c.oid::int8 = ANY ($1) AND c.relkind IN ('r', 'm')",
        )
        .bind(oids)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let oid: i64 = r.get(0);
                self.existing
                    .get(&(oid as u32))
                    .map(|n| (oid, (n.clone(), r.get::<i64, _>(1))))
            })
            .collect())
    }

    /// Sequential scans of user tables in this transaction so far.
    pub(super) async fn scans(&mut self) -> Result<BTreeMap<String, i64>> {
        // language=SQL
        let rows = sqlx::query(
            "SELECT schemaname, relname, coalesce(seq_scan, 0)::int8 FROM pg_stat_xact_user_tables",
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (qualified(r.get(0), r.get(1)), r.get::<i64, _>(2)))
            .collect())
    }

    /// A content hash per existing table (rows as JSON — keyed by column name, so a column that
    /// `down` re-adds at the end still compares equal — each hashed, sorted, hashed again): what
    /// a dry-run compares before `up` and after `down`.
    pub async fn content_hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        // drydock reads the data with its own privileges, not the dry-run role's, which may not
        // read every table the plan touches.
        if self.roles.dry_run.is_some() {
            sqlx::raw_sql("RESET ROLE")
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let out = self.hashes(tables).await;
        if let Some(role) = &self.roles.dry_run {
            sqlx::raw_sql(AssertSqlSafe(Roles::set_local(Some(role))))
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        out
    }

    pub(super) async fn hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for t in tables {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(t)
                .fetch_one(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            if !exists {
                continue;
            }
            // language=SQL
            let hash: String = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(to_jsonb(r)::text) AS h FROM {} AS r) AS rows",
                qualified_ident(t)
            )))
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
            out.insert(t.clone(), hash);
        }
        Ok(out)
    }

    /// Saves the values a backfill step is about to overwrite, into a temporary table.
    pub async fn backfill_save(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        let saved = self.saved(step, spec, columns).await?;
        self.run_raw(&format!("{}; {}", saved.create(), saved.save_all()))
            .await
    }

    /// Puts a backfill step's saved values back.
    pub async fn backfill_restore(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        let saved = self.saved(step, spec, columns).await?;
        self.run_raw(&saved.restore().join("; ")).await
    }

    pub(super) async fn saved(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Saved> {
        Saved::resolve(
            &self.name,
            &mut self.conn,
            spec,
            columns,
            Place::Sandbox { step },
        )
        .await
    }

    pub(super) async fn run_raw(&mut self, sql: &str) -> Result<()> {
        Saved::run(&mut self.conn, sql)
            .await
            .map_err(|e| self.err(e))
    }

    /// Rolls the sandbox back: nothing of the dry-run persists.
    pub async fn finish(mut self) {
        sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await.ok();
        self.conn.close().await.ok();
    }
}

/// Relation locks this session holds on user relations, as (relation, mode).
pub(super) async fn held_locks(
    conn: &mut PgConnection,
) -> sqlx::Result<BTreeSet<(String, LockMode)>> {
    // language=SQL
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT n.nspname::text, c.relname::text, l.mode FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND {USER_SCHEMA}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(schema, name, mode)| {
            Some((qualified(&schema, &name), LockMode::from_pg_locks(&mode)?))
        })
        .collect())
}
