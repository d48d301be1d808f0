//! An opened target and a dry-run's sandbox on it: each operation dispatched to its engine's
//! adapter (`sqlite`, `postgres`).
use super::*;

/// An opened target.
pub enum Target {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

/// How a PostgreSQL dry-run runs the plan (a SQLite dry-run always runs on a scratch copy of the
/// file, step by step as apply does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Every step in one transaction that is rolled back: nothing persists, `CONCURRENTLY` is
    /// measured through its transactional equivalent.
    RolledBack,
    /// Each step as apply runs it: its transactions committed, its non-transactional statements
    /// for real. The caller undoes every step it ran.
    Committed,
}

/// Where a dry-run runs: a scratch copy (SQLite) or a session on the target (PostgreSQL, see
/// `SandboxMode`).
pub enum Sandbox {
    Sqlite(sqlite::Sqlite, std::path::PathBuf),
    Postgres(Box<postgres::PgSandbox>),
}

type StepOutcome = std::result::Result<Vec<StatementRun>, StepFailure>;

impl Target {
    /// The target's name in the config.
    pub fn name(&self) -> &str {
        match self {
            Target::Sqlite(t) => t.name(),
            Target::Postgres(t) => t.name(),
        }
    }

    pub async fn open(config: &Config, target: &TargetConfig) -> Result<Target> {
        Target::open_kept(config, target, &Spares::default()).await
    }

    /// Opens `target` starting from the session `spares` kept for it, and keeps one there.
    pub async fn open_kept(
        config: &Config,
        target: &TargetConfig,
        spares: &Spares,
    ) -> Result<Target> {
        let url = target.url.resolve(&config.base_dir())?;
        match url {
            TargetUrl::Sqlite(path) => Ok(Target::Sqlite(
                sqlite::Sqlite::open(&target.name, &path, config.policy.lock_timeout).await?,
            )),
            TargetUrl::Postgres(url) => {
                let t = Target::postgres(config, target, spares, &url)?;
                t.reach().await?;
                Ok(Target::Postgres(Box::new(t)))
            }
            TargetUrl::Env(_) => unreachable!("resolve() never returns Env"),
        }
    }

    /// `open_kept`, with the target's migration lock taken at the same time: on PostgreSQL the
    /// lock's own session opens beside the one kept for reads (both handshakes overlap).
    pub async fn open_locked(
        config: &Config,
        target: &TargetConfig,
        spares: &Spares,
    ) -> Result<(Target, TargetLock)> {
        match target.url.resolve(&config.base_dir())? {
            TargetUrl::Postgres(url) => {
                let t = Target::postgres(config, target, spares, &url)?;
                let ((), lock) = tokio::try_join!(t.reach(), t.lock())?;
                Ok((
                    Target::Postgres(Box::new(t)),
                    TargetLock(Held::Postgres(lock)),
                ))
            }
            _ => {
                let t = Target::open_kept(config, target, spares).await?;
                let lock = t.lock().await?;
                Ok((t, lock))
            }
        }
    }

    /// Opens `target` ahead of a change that will need it soon (a rollout's next member): on
    /// PostgreSQL its read session, warmed, and `fresh` more sessions, kept for the change's
    /// own open; on SQLite nothing. What fails here is left to the change to meet.
    pub async fn open_ahead(config: &Config, target: &TargetConfig, spares: &Spares, fresh: usize) {
        let Ok(TargetUrl::Postgres(url)) = target.url.resolve(&config.base_dir()) else {
            return;
        };
        let slot = spares.ahead(&target.name, &url);
        if let Ok(t) = postgres::Postgres::new(&target.name, &url, &config.policy, slot) {
            t.open_ahead(fresh).await;
        }
    }

    /// A PostgreSQL target as configured (its roles, its kept session's slot), not reached yet.
    fn postgres(
        config: &Config,
        target: &TargetConfig,
        spares: &Spares,
        url: &str,
    ) -> Result<postgres::Postgres> {
        Ok(postgres::Postgres::new(
            &target.name,
            url,
            &config.policy,
            spares.slot(&target.name, url),
        )?
        .with_roles(postgres::Roles::configured(target)))
    }

    pub fn engine(&self) -> crate::sql::Dialect {
        match self {
            Target::Sqlite(_) => crate::sql::Dialect::Sqlite,
            Target::Postgres(_) => crate::sql::Dialect::Postgres,
        }
    }

    pub async fn catalog(&self) -> Result<Catalog> {
        match self {
            Target::Sqlite(t) => t.catalog().await,
            Target::Postgres(t) => t.catalog().await,
        }
    }

    /// The schema lines of `tables`' columns, as their fingerprint has them (`column
    /// schema.table.name …` on PostgreSQL, `table t column …` on SQLite): what the drift check
    /// compares, without reading the rest of the schema where the engine can.
    pub async fn column_lines(
        &self,
        tables: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        match self {
            Target::Sqlite(t) => {
                let prefixes: Vec<String> = tables
                    .iter()
                    .map(|t| format!("table {t} column "))
                    .collect();
                Ok(t.fingerprint()
                    .await?
                    .lines
                    .into_iter()
                    .filter(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
                    .collect())
            }
            Target::Postgres(t) => t.column_lines(tables).await,
        }
    }

    /// What `inspect` tells an agent beyond the catalog.
    pub async fn describe(&self) -> Result<describe::Described> {
        match self {
            Target::Sqlite(t) => t.describe().await,
            Target::Postgres(t) => t.describe().await,
        }
    }

    pub async fn fingerprint(&self) -> Result<Fingerprint> {
        match self {
            Target::Sqlite(t) => t.fingerprint().await,
            Target::Postgres(t) => t.fingerprint().await,
        }
    }

    /// Opens the session the plan's steps will run on, ahead of the first (PostgreSQL; SQLite
    /// opens nothing): its handshake can overlap other work (a member's backup).
    pub async fn ready_steps(&self) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.ready_steps().await,
        }
    }

    /// What hangs off `table.column`, for a template that moves the column; `None` when the
    /// column does not exist.
    pub async fn column_dependents(
        &self,
        table: &str,
        column: &str,
    ) -> Result<Option<ColumnDependents>> {
        match self {
            Target::Sqlite(_) => Err(Error::invalid(
                Part::Plan,
                "this template moves a column with PostgreSQL's expand/contract procedure; on a SQLite target write the change as `steps`",
            )),
            Target::Postgres(t) => t.column_dependents(table, column).await,
        }
    }

    /// Of `functions` (called by agent SQL), those the catalog says reach beyond the database,
    /// with why (PostgreSQL; SQLite has no such functions once its statement gate has spoken).
    pub async fn beyond_the_database(&self, functions: &[String]) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.beyond_the_database(functions).await,
        }
    }

    /// The statements that set up least-privilege roles (PostgreSQL; none for SQLite).
    pub async fn role_setup(&self, migrator: &str, checker: &str) -> Result<Option<RoleSetup>> {
        match self {
            Target::Sqlite(_) => Ok(None),
            Target::Postgres(t) => t.role_setup(migrator, checker).await.map(Some),
        }
    }

    pub async fn run_role_setup(&self, setup: &RoleSetup) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.run_role_setup(setup).await,
        }
    }

    /// What drydock will refuse (`unsafe-role`) about the roles agent SQL would run as for
    /// `uses` (PostgreSQL; a SQLite target is a file drydock opens itself, and its agent SQL is
    /// held to the SQLite boundary).
    pub async fn privilege_warnings(&self, uses: &[AgentUse]) -> Result<Vec<String>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.privilege_warnings(uses).await,
        }
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        match self {
            Target::Sqlite(t) => t.row_counts(tables).await,
            Target::Postgres(t) => t.row_counts(tables).await,
        }
    }

    /// Rows of two text columns from a read-only query: a group's members from its discovery
    /// query (`name`, `url`), other migration tools' history (`version`, `ok`/`failed`).
    pub async fn text_pairs(&self, sql: &str) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(t) => t.text_pairs(sql).await,
            Target::Postgres(t) => t.text_pairs(sql).await,
        }
    }

    pub async fn run_checks(&self, checks: &[crate::plan::Check]) -> Result<Vec<CheckOutcome>> {
        match self {
            Target::Sqlite(t) => t.run_checks(checks).await,
            Target::Postgres(t) => t.run_checks(checks).await,
        }
    }

    /// Opens a dry-run sandbox; `scratch` is where a SQLite copy goes.
    pub async fn sandbox(&self, scratch: &std::path::Path, mode: SandboxMode) -> Result<Sandbox> {
        match self {
            Target::Sqlite(t) => Ok(Sandbox::Sqlite(
                t.copy_to(scratch).await?,
                scratch.to_path_buf(),
            )),
            Target::Postgres(t) => Ok(Sandbox::Postgres(Box::new(t.sandbox(mode).await?))),
        }
    }

    /// What SQL built at run time could reach beyond the database here (PostgreSQL; see
    /// `Postgres::dynamic_reach`); SQLite has no such SQL.
    pub async fn dynamic_reach(&self) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.dynamic_reach().await,
        }
    }

    /// What the application will hit on `tables`, probed on the target itself as the apply role,
    /// every write rolled back (PostgreSQL; none on SQLite).
    pub async fn probe_app(&self, tables: &[String], known: &str) -> Result<Vec<AppProbe>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.probe_app(tables, known).await,
        }
    }

    /// Notes that a dry-run's rehearsal begins `step` of `plan_id` here (PostgreSQL; a SQLite
    /// dry-run runs on a copy).
    pub async fn mark_rehearsal(&self, plan_id: &str, step: &str) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.mark_rehearsal(plan_id, step).await,
        }
    }

    /// Forgets the begun steps of `plan_id`'s rehearsal here.
    pub async fn clear_rehearsal(&self, plan_id: &str) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.clear_rehearsal(plan_id).await,
        }
    }

    /// Steps rehearsals began here and did not undo, as (plan, step).
    pub async fn rehearsals(&self) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.rehearsals().await,
        }
    }

    /// Whether a dry-run here can run steps as apply does and take them back only by running
    /// their `down` (PostgreSQL); SQLite's scratch copy already runs them so.
    pub fn rehearses(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }

    /// One migration at a time per target, across processes and machines: an advisory lock on
    /// PostgreSQL, an exclusive lock on a file beside the database on SQLite. Never waits: a held
    /// lock is `target-busy`.
    pub async fn lock(&self) -> Result<TargetLock> {
        match self {
            Target::Sqlite(t) => Ok(TargetLock(Held::File(t.lock()?))),
            Target::Postgres(t) => Ok(TargetLock(Held::Postgres(t.lock().await?))),
        }
    }

    /// Executes one step for real, with its history row in the same transaction.
    pub async fn execute(
        &self,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &crate::config::Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<(StepOutcome, WatchReport)> {
        match self {
            Target::Sqlite(t) => Ok((
                t.execute(step, statements, history, on_statement).await?,
                WatchReport::default(),
            )),
            Target::Postgres(t) => {
                t.execute(step, statements, tables, history, policy, on_statement)
                    .await
            }
        }
    }

    /// Runs a backfill step in keyset batches, each with its checkpoint.
    pub async fn backfill(
        &self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        history: &HistoryRow<'_>,
        policy: &crate::config::Policy,
        control: Control<'_>,
    ) -> Result<std::result::Result<BackfillReport, StepFailure>> {
        match self {
            Target::Postgres(t) => {
                t.backfill(step, spec, columns, history, policy, control)
                    .await
            }
            Target::Sqlite(t) => t.backfill(step, spec, columns, history, control).await,
        }
    }

    /// The statements that put a backfill step's saved values back (and drop the backup), to
    /// run before its `down`; none when nothing was saved.
    pub async fn backfill_restore(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Vec<Stmt>> {
        match self {
            Target::Sqlite(t) => {
                t.backfill_restore(&format!("{plan_id}/{step}"), spec, columns)
                    .await
            }
            Target::Postgres(t) => t.backfill_restore(plan_id, step, spec, columns).await,
        }
    }

    /// Puts a backfill step's saved values back in short batches before its `down` (on
    /// PostgreSQL; SQLite's one write lock makes one transaction no worse). The rows put back.
    pub async fn restore_in_batches(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        policy: &crate::config::Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        match self {
            Target::Sqlite(_) => Ok(Ok(0)),
            Target::Postgres(t) => {
                t.restore_in_batches(plan_id, step, spec, columns, policy)
                    .await
            }
        }
    }

    /// Whether a rollback began putting a backfill step's saved values (or what a drop template
    /// set `aside`) back and did not end.
    pub async fn restore_begun(
        &self,
        plan_id: &str,
        step: &str,
        aside: Option<&crate::plan::Restore>,
    ) -> Result<bool> {
        match self {
            Target::Sqlite(_) => Ok(false),
            Target::Postgres(t) => t.restore_begun(plan_id, step, aside).await,
        }
    }

    /// Puts back what a drop template set aside, in batches, before the step's `down` (see
    /// `Restore`); SQLite's `down` does it all in its transaction.
    pub async fn restore_aside(
        &self,
        step: &str,
        restore: &crate::plan::Restore,
        policy: &crate::config::Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        match self {
            Target::Sqlite(_) => Ok(Ok(0)),
            Target::Postgres(t) => t.restore_aside(step, restore, policy).await,
        }
    }

    /// Problems a validation must report (integrity, invalid indexes, unvalidated constraints).
    pub async fn integrity(&self) -> Result<Vec<IntegrityProblem>> {
        match self {
            Target::Sqlite(t) => t.integrity().await,
            Target::Postgres(t) => t.integrity().await,
        }
    }

    /// A plan's rows in the target's history table, oldest first.
    /// Every plan's rows in the target's history table, with their exported versions.
    pub async fn history_versions(&self) -> Result<Vec<HistoryVersion>> {
        match self {
            Target::Sqlite(t) => t.history_versions().await,
            Target::Postgres(t) => t.history_versions().await,
        }
    }

    /// Records, in one transaction, the versions `(plan, step, version)` steps were exported as
    /// and `tool`: statements writing the folder's tool's own history table.
    pub async fn record_export(
        &self,
        versions: &[(String, String, i64)],
        tool: &[String],
    ) -> Result<()> {
        match self {
            Target::Sqlite(t) => t.record_export(versions, tool).await,
            Target::Postgres(t) => t.record_export(versions, tool).await,
        }
    }

    pub async fn history(&self, plan_id: &str) -> Result<Vec<HistoryEntry>> {
        match self {
            Target::Sqlite(t) => t.history(plan_id).await,
            Target::Postgres(t) => t.history(plan_id).await,
        }
    }

    /// drydock's own verified backup: a full copy (SQLite) or a snapshot of the affected tables
    /// (PostgreSQL, up to `policy.snapshot_max_rows`).
    pub async fn backup(
        &self,
        dir: &std::path::Path,
        label: &str,
        tables: &[String],
        max_rows: u64,
    ) -> Result<BackupEvidence> {
        match self {
            Target::Sqlite(t) => t.backup(&dir.join(format!("{label}.db"))).await,
            Target::Postgres(t) => t.snapshot(label, tables, max_rows).await,
        }
    }
}

/// Held while a migration runs on a target; `release` when done.
pub struct TargetLock(Held);

enum Held {
    Postgres(postgres::PgLock),
    /// Unlocked when closed (and by the OS when the process dies).
    File(std::fs::File),
}

impl TargetLock {
    pub async fn release(self) {
        match self.0 {
            Held::Postgres(l) => l.release().await,
            Held::File(f) => drop(f),
        }
    }
}

impl Sandbox {
    /// The target the sandbox runs on (a dry-run's staging).
    pub fn target(&self) -> &str {
        match self {
            Sandbox::Sqlite(t, _) => t.name(),
            Sandbox::Postgres(s) => s.target(),
        }
    }

    pub async fn fingerprint(&mut self) -> Result<Fingerprint> {
        match self {
            Sandbox::Sqlite(t, _) => t.fingerprint().await,
            Sandbox::Postgres(s) => s.fingerprint().await,
        }
    }

    pub async fn execute(&mut self, step: &str, statements: &[Stmt]) -> Result<StepOutcome> {
        match self {
            Sandbox::Sqlite(t, _) => t.execute(step, statements, None, &mut |_| {}).await,
            Sandbox::Postgres(s) => s.execute(step, statements).await,
        }
    }

    pub async fn run_checks(&mut self, checks: &[crate::plan::Check]) -> Result<Vec<CheckOutcome>> {
        match self {
            Sandbox::Sqlite(t, _) => t.run_checks(checks).await,
            Sandbox::Postgres(s) => s.run_checks(checks).await,
        }
    }

    /// A content hash of each of `tables` that exists.
    /// The marks that tell, without reading rows, which of `tables` a plan may have written
    /// (PostgreSQL; `None` on SQLite, whose tables are hashed whole).
    pub async fn data_marks(&mut self, tables: &[String]) -> Result<Option<marks::DataMarks>> {
        match self {
            Sandbox::Sqlite(..) => Ok(None),
            Sandbox::Postgres(s) => s.data_marks(tables).await.map(Some),
        }
    }

    /// A point to come back to before `up` (rolled back, PostgreSQL).
    pub async fn rewind_point(&mut self) -> Result<()> {
        match self {
            Sandbox::Sqlite(..) => Ok(()),
            Sandbox::Postgres(s) => s.rewind_point().await,
        }
    }

    /// Back to the data as it was at [`Self::rewind_point`].
    pub async fn rewind(&mut self) -> Result<()> {
        match self {
            Sandbox::Sqlite(..) => Err(Error::invalid(
                Part::Argument,
                "a SQLite sandbox has no point to rewind to",
            )),
            Sandbox::Postgres(s) => s.rewind().await,
        }
    }

    pub async fn content_hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        match self {
            Sandbox::Sqlite(t, _) => t.content_hashes(tables).await,
            Sandbox::Postgres(s) => s.content_hashes(tables).await,
        }
    }

    /// What the application will hit on `tables`, probed (PostgreSQL; none on SQLite).
    /// `known`: the plan's SQL, whose names a failure may repeat.
    pub async fn probe_app(&mut self, tables: &[String], known: &str) -> Result<Vec<AppProbe>> {
        match self {
            Sandbox::Sqlite(..) => Ok(vec![]),
            Sandbox::Postgres(s) => s.probe_app(tables, known).await,
        }
    }

    /// Saves what a backfill step is about to change (overwritten values, copied keys,
    /// deleted rows).
    pub async fn backfill_save(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        match self {
            Sandbox::Sqlite(t, _) => {
                t.backfill_save(&format!("dry-run/{step}"), spec, columns)
                    .await
            }
            Sandbox::Postgres(s) => s.backfill_save(step, spec, columns).await,
        }
    }

    /// Puts a backfill step's saved values back.
    pub async fn backfill_restore(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        match self {
            Sandbox::Sqlite(t, _) => {
                t.backfill_undo(&format!("dry-run/{step}"), spec, columns)
                    .await
            }
            Sandbox::Postgres(s) => s.backfill_restore(step, spec, columns).await,
        }
    }

    /// Discards everything the sandbox did; returns the sequences it moved (which a rollback
    /// does not take back), and whether each was put back.
    pub async fn finish(self) -> Vec<SequenceMove> {
        match self {
            Sandbox::Sqlite(_, path) => {
                let _ = std::fs::remove_file(path);
                vec![]
            }
            Sandbox::Postgres(s) => s.finish().await,
        }
    }
}
