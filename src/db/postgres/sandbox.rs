//! The dry-run sandbox, in two modes. Rolled back: one transaction in which the plan's SQL runs
//! as the dry-run role and is rolled back at the end (nothing persists). Committed: each step's
//! transactions committed and its non-transactional statements run for real, as apply runs them,
//! on one session as the dry-run role; the engine undoes every step it ran. Both measure, per
//! statement, the locks taken on relations that existed before the plan, rewrites and scans.

use super::execute::{commit_failed, drop_invalid_index, transactions};
use super::fingerprint::SchemaRead;
use super::*;
use crate::db::SandboxMode;
use crate::db::marks::{DataMarks, TableMarks};

impl Postgres {
    pub async fn sandbox(&self, mode: SandboxMode) -> Result<PgSandbox> {
        let Kept {
            mut conn,
            schema_read,
        } = self.session_for_agent_sql().await?;
        // One round trip, pinned, before any agent SQL: the roles agent SQL will run as, the
        // relations and sequences there are, and `deadlock_timeout`.
        // A dry-run runs on staging, where waiting for a lock stalls no production traffic: it
        // waits past `deadlock_timeout`, after which an autovacuum in its way yields (with
        // `lock_timeout` at the same second, every try lost the race to the vacuum's own wait;
        // a rolled-back pass that rewinds to compare data takes its locks again after it).
        // language=SQL
        let deadlock = "SELECT (pg_catalog.date_part('epoch', pg_catalog.current_setting('deadlock_timeout')::pg_catalog.interval)
                                OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8";
        let reads = [
            self.role_read(AgentUse::DryRun),
            self.role_read(AgentUse::Check),
            Existing::sql(),
            super::sequences::READ.to_string(),
            deadlock.to_string(),
        ];
        let reads: Vec<&str> = reads.iter().map(String::as_str).collect();
        let rows = pinned_batch(&mut conn, &reads)
            .await
            .map_err(|e| self.err(e))?;
        let [dry_run, check, existing, sequences, deadlock] =
            <[_; 5]>::try_from(rows).unwrap_or_default();
        for (usage, row) in [(AgentUse::DryRun, dry_run), (AgentUse::Check, check)] {
            let row = super::role_row(&row).map_err(|e| self.err(e))?;
            self.role_verdict(usage, row)?;
        }
        let Existing {
            existing,
            ancestors,
            kinds,
        } = Existing::from_rows(&existing).map_err(|e| self.err(e))?;
        // As the login, before any agent SQL: what the rollback will not take back.
        let sequences = super::sequences::from_rows(&sequences).map_err(|e| self.err(e))?;
        let deadlock: i64 = deadlock
            .first()
            .and_then(|r| r.try_get(0).ok())
            .unwrap_or(1000);
        let lock_timeout = self.lock_timeout + Duration::from_millis(deadlock.max(0) as u64 * 2);
        // Nobody has approved the plan yet: its SQL runs as the dry-run role, and so does every
        // read of drydock's in this session from here on (never a more privileged role once
        // agent SQL may have left something behind for a read to resolve). Rolled back: for the
        // one transaction; committed: for the session, which is closed at the end.
        let set_role = match mode {
            SandboxMode::RolledBack => {
                format!("BEGIN; {}", self.roles.begin(AgentUse::DryRun))
            }
            SandboxMode::Committed => self
                .roles
                .of(AgentUse::DryRun)
                .map(|r| format!("SET ROLE {}", quote_ident(r)))
                .unwrap_or_default(),
        };
        if !set_role.is_empty() {
            sqlx::raw_sql(AssertSqlSafe(set_role))
                .execute(&mut conn)
                .await
                .map_err(|e| self.err(format!("starting the dry-run as its role: {e}")))?;
        }
        Ok(PgSandbox {
            conn,
            mode,
            refill: self.refill(),
            name: self.name.clone(),
            limits: (lock_timeout, self.statement_timeout),
            lock_retries: self.lock_retries,
            roles: self.roles.clone(),
            existing,
            kinds,
            ancestors,
            baseline: None,
            own_temporary: BTreeSet::new(),
            sequences,
            schema_read,
        })
    }
}

/// The user relations that exist before a plan runs, as the sandbox keeps them.
struct Existing {
    /// oid → qualified name.
    existing: BTreeMap<u32, String>,
    /// Each partition's partitioned ancestors, nearest first.
    ancestors: BTreeMap<String, Vec<String>>,
    kinds: BTreeMap<String, crate::plan::evidence::RelationKind>,
}

impl Existing {
    /// The read, for [`pinned_batch`]: each relation's oid, schema, name, kind and, for a
    /// partition, its partitioned ancestors' oids (comma-separated, nearest first).
    fn sql() -> String {
        // language=SQL
        format!(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
                    CASE WHEN c.relispartition THEN pg_catalog.array_to_string(ARRAY(
                        SELECT a.relid::int8 FROM pg_partition_ancestors(c.oid) a WHERE a.relid <> c.oid), ',') END
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'S', 'v') AND {USER_SCHEMA}"
        )
    }

    fn from_rows(rows: &[sqlx::postgres::PgRow]) -> sqlx::Result<Existing> {
        let existing: BTreeMap<u32, String> = rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u32, qualified(r.get(1), r.get(2))))
            .collect();
        let ancestors = rows
            .iter()
            .filter_map(|r| {
                let up: String = r.get::<Option<String>, _>(4)?;
                let names = up
                    .split(',')
                    .filter_map(|o| o.parse::<u32>().ok())
                    .filter_map(|o| existing.get(&o).cloned())
                    .collect();
                Some((qualified(r.get(1), r.get(2)), names))
            })
            .collect();
        let kinds = rows
            .iter()
            .filter_map(|r| {
                let kind = crate::plan::evidence::RelationKind::from_relkind(r.get(3))?;
                Some((qualified(r.get(1), r.get(2)), kind))
            })
            .collect();
        Ok(Existing {
            existing,
            ancestors,
            kinds,
        })
    }
}

/// A dry-run sandbox: one session as the dry-run role, in one transaction that is always rolled
/// back, or committing step by step as apply does (`SandboxMode`).
pub struct PgSandbox {
    conn: PgConnection,
    mode: SandboxMode,
    /// The target's slot and how to reach it as the login: once the session is closed, the
    /// sequences are put back on its kept session, else a new one; and a warmed session is
    /// started for the slot when the sandbox finishes.
    refill: super::sessions::Refill,
    name: String,
    /// The policy's lock and statement timeouts, which no agent `SET` raises.
    limits: (Duration, Duration),
    /// Tries of a committed transaction that meets `lock_timeout`, as apply's.
    lock_retries: u32,
    /// The roles of unapproved work.
    roles: Roles,
    /// User relations that existed before the plan ran: oid → qualified name.
    existing: BTreeMap<u32, String>,
    /// What each of them is.
    kinds: BTreeMap<String, crate::plan::evidence::RelationKind>,
    /// Each partition's partitioned ancestors, nearest first.
    ancestors: BTreeMap<String, Vec<String>>,
    /// Rolled back: the locks drydock's own reads took before the plan's first statement
    /// (schema and data fingerprints), held until the end and not the plan's.
    baseline: Option<BTreeSet<(String, LockMode)>>,
    /// The temporary tables drydock itself made here (a backfill's saved values): not the
    /// plan's, so not in its schema fingerprint.
    own_temporary: BTreeSet<String>,
    /// The application's sequences before the plan ran (see `sequences`).
    sequences: super::sequences::Sequences,
    /// The schema read prepared on this session (see `SchemaRead`), once it has read.
    schema_read: Option<SchemaRead>,
}

/// What the sandbox sees of the pre-existing relations around one statement.
struct Observed {
    locks: BTreeSet<(String, LockMode)>,
    /// Table relfilenodes: a change means the table was rewritten.
    files: BTreeMap<i64, (String, i64)>,
    /// Sequential scans of user tables in this transaction so far.
    scans: BTreeMap<String, i64>,
}

impl PgSandbox {
    pub fn target(&self) -> &str {
        &self.name
    }

    pub(super) fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Target {
            target: self.name.clone(),
            cause: crate::redact::redact(&e.to_string()),
        }
    }

    /// The schema as the plan left it so far, its own temporary objects included (a temporary
    /// view that outlives `down` is a difference), drydock's saved values not.
    pub async fn fingerprint(&mut self) -> Result<Fingerprint> {
        let fp = SchemaRead::lines(&mut self.schema_read, &mut self.conn)
            .await
            .map_err(|e| self.err(e))?;
        let own: BTreeSet<String> = self
            .own_temporary
            .iter()
            .map(|t| format!("temporary table {t}"))
            .collect();
        Ok(
            Fingerprint::from_lines(fp.lines.into_iter().filter(|l| !own.contains(l)).collect())
                .owned_by(fp.owners),
        )
    }

    pub async fn run_checks(&mut self, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
        // Each check in a savepoint (rolled back: a failing check never aborts the sandbox's
        // transaction) or a transaction of its own (committed), read-only, under the check
        // timeout and role; rolling it back restores the sandbox's own settings.
        let (open, close) = match self.mode {
            SandboxMode::RolledBack => (
                "SAVEPOINT drydock_check;",
                "ROLLBACK TO SAVEPOINT drydock_check",
            ),
            SandboxMode::Committed => ("BEGIN;", "ROLLBACK"),
        };
        let setup = format!("{open} {}", self.roles.for_check());
        let mut out = Vec::new();
        for c in checks {
            sqlx::raw_sql(AssertSqlSafe(setup.clone()))
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
            out.extend(checks_on(&mut self.conn, std::slice::from_ref(c)).await);
            sqlx::raw_sql(close)
                .execute(&mut self.conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// Probes what the application will hit on `tables` (`probes`): in a savepoint each, in the
    /// sandbox's transaction (rolled back) or a transaction of its own (committed), as the
    /// dry-run role.
    pub async fn probe_app(
        &mut self,
        tables: &[String],
        known: &str,
    ) -> Result<Vec<crate::db::AppProbe>> {
        let own = self.mode == SandboxMode::Committed;
        if own {
            self.run_raw("BEGIN").await?;
        }
        let probed = super::probes::probe(&mut self.conn, tables, known).await;
        if own {
            self.run_raw("ROLLBACK").await?;
        }
        probed.map_err(|e| self.err(e))
    }

    /// Runs a step's statements, measuring locks, rewrites and scans on the relations that
    /// existed before the plan. Rolled back: inside the sandbox's one transaction, where
    /// non-transactional statements run as their transactional equivalent (CONCURRENTLY
    /// removed) and say so. Committed: as apply runs them — consecutive transactional statements
    /// in a transaction of their own, committed, the others alone and for real.
    pub async fn execute(
        &mut self,
        step: &str,
        statements: &[Stmt],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        match self.mode {
            SandboxMode::RolledBack => self.execute_in_transaction(step, statements).await,
            SandboxMode::Committed => self.execute_committed(step, statements).await,
        }
    }

    async fn execute_in_transaction(
        &mut self,
        step: &str,
        statements: &[Stmt],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
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
                            scanned_partitions_of: vec![],
                            note: Some("non-transactional and without a transactional equivalent: not run in the dry-run".into()),
                        });
                        continue;
                    }
                }
            };
            match self.measured(step, i, s, &sql).await? {
                Ok(mut run) => {
                    run.note = note;
                    runs.push(run);
                }
                Err(f) => return Ok(Err(f)),
            }
        }
        Ok(Ok(runs))
    }

    async fn execute_committed(
        &mut self,
        step: &str,
        statements: &[Stmt],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let mut runs = Vec::new();
        for (transactional, group) in transactions(statements) {
            // A lock timeout retries the transaction with backoff, as apply does: an
            // autovacuum on staging yields to the waiting DDL only after deadlock_timeout.
            let mut attempt = 0;
            loop {
                match self.committed_group(step, transactional, &group).await? {
                    Ok(done) => {
                        runs.extend(done);
                        break;
                    }
                    Err(f) if f.lock_timed_out() && attempt + 1 < self.lock_retries => {
                        attempt += 1;
                        tokio::time::sleep(super::execute::backoff(attempt)).await;
                    }
                    Err(f) => return Ok(Err(f)),
                }
            }
        }
        Ok(Ok(runs))
    }

    /// One of apply's transactions (or one non-transactional statement), committed.
    async fn committed_group(
        &mut self,
        step: &str,
        transactional: bool,
        group: &[(usize, &Stmt)],
    ) -> Result<std::result::Result<Vec<StatementRun>, StepFailure>> {
        let mut runs = Vec::new();
        if transactional {
            // A transaction of its own, as apply's: nothing of an earlier one is held.
            self.baseline = None;
            self.run_raw("BEGIN").await?;
        }
        for &(i, s) in group {
            match self.measured(step, i, s, &s.sql).await? {
                Ok(mut run) if !transactional => {
                    run.locks.clear();
                    run.note = Some("run alone (non-transactional), for real, as apply runs it: its locks were released when it ended".into());
                    runs.push(run);
                }
                Ok(run) => runs.push(run),
                Err(mut f) => {
                    if transactional {
                        self.run_raw("ROLLBACK").await?;
                    } else {
                        drop_invalid_index(&mut self.conn, &mut f).await;
                    }
                    return Ok(Err(f));
                }
            }
        }
        if transactional && let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut self.conn).await {
            return Ok(Err(commit_failed(group, &e)));
        }
        Ok(Ok(runs))
    }

    /// Runs one statement (`sql`: `s` as written, or its transactional equivalent) under the
    /// policy's timeouts, and measures what it did to the relations that existed before.
    async fn measured(
        &mut self,
        step: &str,
        i: usize,
        s: &Stmt,
        sql: &str,
    ) -> Result<std::result::Result<StatementRun, StepFailure>> {
        let oids: Vec<i64> = self.existing.keys().map(|o| i64::from(*o)).collect();
        let before = self.observe(&oids).await?;
        if self.baseline.is_none() {
            self.baseline = Some(before.locks.clone());
        }
        cap_timeouts(&mut self.conn, self.limits.0, self.limits.1)
            .await
            .map_err(|e| self.err(e))?;
        let t0 = Instant::now();
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut self.conn)
            .await
        {
            return Ok(Err(StepFailure {
                index: i + 1,
                sql: s.sql.clone(),
                sqlstate: sqlstate(&e),
                cause: crate::db::agent_error(&e, &s.sql),
                raised: crate::db::raised(&e),
            }));
        }
        let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let after = self.observe(&oids).await?;
        // Every lock held while the statement ran: those it took, and those earlier
        // statements of the transaction took and still hold.
        let baseline = self.baseline.clone().unwrap_or_default();
        let locks = after
            .locks
            .iter()
            .filter(|l| !baseline.contains(*l))
            .map(|(rel, mode)| LockObservation {
                relation: rel.clone(),
                mode: *mode,
                acquired: !before.locks.contains(&(rel.clone(), *mode)),
                kind: self.kinds.get(rel).copied(),
            })
            .collect();
        let rewritten = before
            .files
            .iter()
            .filter(|(oid, (_, node))| after.files.get(*oid).is_some_and(|(_, n)| n != node))
            .map(|(_, (name, _))| name.clone())
            .collect();
        let scanned: Vec<String> = after
            .scans
            .iter()
            .filter(|(t, n)| **n > before.scans.get(*t).copied().unwrap_or(0))
            .map(|(t, _)| t.clone())
            .filter(|t| self.existing.values().any(|e| e == t))
            .collect();
        let scanned_partitions_of: BTreeSet<String> = scanned
            .iter()
            .filter_map(|t| self.ancestors.get(t))
            .flatten()
            .cloned()
            .collect();
        Ok(Ok(StatementRun {
            step: step.to_string(),
            index: i + 1,
            sql: s.sql.clone(),
            duration_ms,
            locks,
            rewritten,
            scanned,
            scanned_partitions_of: scanned_partitions_of.into_iter().collect(),
            note: None,
        }))
    }

    /// Locks, relfilenodes and scan counts of the pre-existing relations, read under a pinned
    /// search path (agent SQL has run in this transaction).
    async fn observe(&mut self, oids: &[i64]) -> Result<Observed> {
        let existing = &self.existing;
        let known = |oid: i64| existing.get(&(oid as u32));
        // One statement, each row a lock (0) or a table's file and its sequential scans in this
        // transaction so far (1); pinned in the same round trip.
        let oids = format!(
            "'{{{}}}'::pg_catalog.int8[]",
            oids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        // language=SQL
        let read = pinned_read(
            &mut self.conn,
            &format!(
                "SELECT 0, l.relation::int8, l.mode, NULL::int8, NULL::int8 FROM pg_locks l
                 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.relation::int8 = ANY ({oids})
                 UNION ALL
                 SELECT 1, c.oid::int8, NULL, CASE WHEN c.relkind IN ('r', 'm') THEN c.relfilenode::int8 END,
                        pg_stat_get_xact_numscans(c.oid)
                 FROM pg_class c WHERE c.oid::int8 = ANY ({oids}) AND c.relkind IN ('r', 'm', 'p', 't')"
            ),
        )
        .await
        .and_then(|rows| decoded::<(i32, Option<i64>, Option<String>, Option<i64>, Option<i64>)>(&rows));
        let rows = read.map_err(|e| self.err(e))?;
        let mut seen = Observed {
            locks: BTreeSet::new(),
            files: BTreeMap::new(),
            scans: BTreeMap::new(),
        };
        for (part, oid, mode, file, scans) in rows {
            let Some((oid, name)) = oid.and_then(|o| known(o).map(|name| (o, name))) else {
                continue;
            };
            match (part, mode) {
                (0, Some(mode)) => {
                    if let Some(mode) = LockMode::from_pg_locks(&mode) {
                        seen.locks.insert((name.clone(), mode));
                    }
                }
                (1, _) => {
                    if let Some(file) = file {
                        seen.files.insert(oid, (name.clone(), file));
                    }
                    if let Some(scans) = scans {
                        seen.scans.insert(name.clone(), scans);
                    }
                }
                _ => {}
            }
        }
        Ok(seen)
    }

    /// A content hash per existing table (rows as JSON — keyed by column name, so a column that
    /// `down` re-adds at the end still compares equal — each hashed, sorted, hashed again): what
    /// a dry-run compares before `up` and after `down`. Read as the dry-run role (the role the
    /// plan's SQL runs as: drydock never takes more privilege back inside this transaction) under
    /// a pinned search path, each table by its qualified name: a temporary view named like the
    /// table, or an agent's function or operator, is never what this read resolves. A partition
    /// whose partitioned table is listed too is read with it, once.
    pub async fn content_hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        let names: Vec<String> = tables.iter().map(|t| relation(t)).collect();
        let read = pinned(&mut self.conn, async |c| {
            let mut out = BTreeMap::new();
            for t in tables {
                // A partition of a listed partitioned table is read with its parent (whose rows
                // are its partitions'): hashed once, not twice.
                // language=SQL
                let hashed: bool = sqlx::query_scalar(
                    "SELECT pg_catalog.to_regclass($1) IS NOT NULL AND NOT EXISTS (
                         SELECT FROM pg_catalog.pg_inherits i
                         WHERE i.inhrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
                           AND i.inhparent OPERATOR(pg_catalog.=) ANY (
                               SELECT pg_catalog.to_regclass(n) FROM pg_catalog.unnest($2::text[]) AS n))",
                )
                .persistent(false)
                .bind(relation(t))
                .bind(&names)
                .fetch_one(&mut *c)
                .await?;
                if !hashed {
                    continue;
                }
                // language=SQL
                let hash: String = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(to_jsonb(r)::text) AS h FROM {} AS r) AS rows",
                    relation(t)
                )))
                .persistent(false)
                .fetch_one(&mut *c)
                .await?;
                out.insert(t.clone(), hash);
            }
            Ok(out)
        })
        .await;
        read.map_err(|e| match (&e, self.roles.of(AgentUse::DryRun)) {
            (sqlx::Error::Database(d), Some(role)) if d.code().as_deref() == Some("42501") => {
                Error::RolePrivilege {
                    target: self.name.clone(),
                    detail: format!(
                        "the dry-run role `{role}` may not read a table the plan touches, whose data drydock compares before `up` and after `down` as that role ({})",
                        crate::redact::redact(d.message())
                    ),
                }
            }
            _ => self.err(e),
        })
    }

    /// The marks of `tables` ([`crate::db::marks`]): the storage of each and of every table
    /// under it (partitions, and children by inheritance, whose rows a read of it returns and a
    /// write through it changes — counted on them, not on it), the columns, and,
    /// rolled back (one transaction), the rows this transaction wrote there. Read like
    /// `content_hashes`: as the session's role, under a pinned search path, every name
    /// qualified.
    pub async fn data_marks(&mut self, tables: &[String]) -> Result<DataMarks> {
        let names: Vec<String> = tables.iter().map(|t| relation(t)).collect();
        let counted = self.mode == SandboxMode::RolledBack;
        let names = escaped_names(&names);
        // One round trip: both reads, pinned.
        // language=SQL
        let leaves = format!(
            "SELECT t.i, c.oid::pg_catalog.int8, c.relfilenode::pg_catalog.int8,
                    pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid),
                    pg_catalog.pg_stat_get_xact_tuples_updated(c.oid),
                    pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)
             FROM pg_catalog.unnest({names}) WITH ORDINALITY AS t(name, i)
             CROSS JOIN LATERAL (WITH RECURSIVE tree(relid) AS (
                                     SELECT pg_catalog.to_regclass(t.name)::pg_catalog.oid
                                     UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree
                                             ON i.inhparent OPERATOR(pg_catalog.=) tree.relid)
                                 SELECT relid FROM tree) AS l
             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relid
             ORDER BY 1, 2"
        );
        // language=SQL
        let columns = format!(
            "SELECT t.i, a.attname::pg_catalog.text, a.attnum::pg_catalog.int4, a.atttypid::pg_catalog.int8, a.atttypmod
             FROM pg_catalog.unnest({names}) WITH ORDINALITY AS t(name, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(t.name)
             WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
             ORDER BY 1, 3"
        );
        let read = pinned_batch(&mut self.conn, &[&leaves, &columns])
            .await
            .and_then(|reads| {
                let [leaves, columns] = <[_; 2]>::try_from(reads).unwrap_or_default();
                Ok((
                    decoded::<(i64, i64, i64, i64, i64, i64)>(&leaves)?,
                    decoded::<(i64, String, i32, i64, i32)>(&columns)?,
                ))
            });
        let (leaves, columns) = read.map_err(|e| self.err(e))?;
        let table = |i: i64| tables.get(usize::try_from(i - 1).unwrap_or(usize::MAX));
        let mut marks: BTreeMap<String, TableMarks> = BTreeMap::new();
        for (i, oid, node, ins, upd, del) in leaves {
            let Some(t) = table(i) else { continue };
            let m = marks.entry(t.clone()).or_default();
            m.storage.push((oid as u32, node));
            m.written = counted.then(|| m.written.unwrap_or(0) + ins + upd + del);
        }
        for (i, name, number, ty, typmod) in columns {
            if let Some(m) = table(i).and_then(|t| marks.get_mut(t)) {
                m.columns.push(format!("{name}:{number}:{ty}:{typmod}"));
            }
        }
        Ok(DataMarks(marks))
    }

    /// Rolled back: a savepoint to come back to, before `up` (see [`Self::rewind`]).
    pub async fn rewind_point(&mut self) -> Result<()> {
        self.run_raw("SAVEPOINT drydock_before_up").await
    }

    /// Back to [`Self::rewind_point`]: the data as it was before `up`, to compare with.
    pub async fn rewind(&mut self) -> Result<()> {
        self.run_raw("ROLLBACK TO SAVEPOINT drydock_before_up")
            .await
    }

    /// Saves the values a backfill step is about to overwrite, into a temporary table.
    pub async fn backfill_save(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        let saved = self.saved(step, spec, columns).await?;
        self.own_temporary.insert(super::saved::sandbox_table(step));
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

    /// Ends the sandbox: rolled back, nothing of the dry-run persists but what a rollback cannot
    /// take back, the sequences it moved; committed, the engine has undone its steps. The
    /// sequences are put back where that is safe (as the login, on a fresh session: the
    /// sandbox's own may hold the agent's temporary objects), and returned.
    pub async fn finish(self) -> Vec<crate::db::SequenceMove> {
        let refill = self.refill.clone();
        let moved = self.put_back_sequences().await;
        refill.spawn();
        moved
    }

    async fn put_back_sequences(mut self) -> Vec<crate::db::SequenceMove> {
        let mut conn = match self.mode {
            SandboxMode::RolledBack => {
                sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await.ok();
                self.conn
            }
            SandboxMode::Committed => {
                self.conn.close().await.ok();
                // The target's kept session, which only drydock's reads use, when it has one:
                // it is kept again after (the restore changes no setting of it).
                let kept = self.refill.spare.lock().expect("spare session lock").take();
                if let Some(mut kept) = kept {
                    let moved = super::sequences::restore(&mut kept.conn, &self.sequences).await;
                    keep_in(&self.refill.spare, kept).await;
                    return moved;
                }
                match self.refill.options.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(target_name = %self.name, error = %crate::redact::redact(&e.to_string()), "could not reconnect to put the dry-run's sequences back");
                        return vec![];
                    }
                }
            }
        };
        let moved = super::sequences::restore(&mut conn, &self.sequences).await;
        conn.close().await.ok();
        moved
    }
}

/// Relation locks this session holds on user relations, as (relation, mode): read inside an
/// apply's step transaction, after agent SQL, so under a pinned search path.
pub(super) async fn held_locks(
    conn: &mut PgConnection,
) -> sqlx::Result<BTreeSet<(String, LockMode)>> {
    // language=SQL
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, l.mode FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND {USER_SCHEMA}"
    );
    let rows: Vec<(String, String, String)> = pinned(conn, async |c| {
        sqlx::query_as(AssertSqlSafe(sql))
            .persistent(false)
            .fetch_all(c)
            .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(schema, name, mode)| {
            Some((qualified(&schema, &name), LockMode::from_pg_locks(&mode)?))
        })
        .collect())
}
