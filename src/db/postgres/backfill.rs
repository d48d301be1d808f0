//! Backfill steps: keyset batches, each its own transaction with its checkpoint (and, for the
//! last, the history row), the values they overwrite saved first (their restore: `restore`).

use super::lanes::{self, Lane};
use super::monitor::Monitor;
use super::saved::BatchStatement;
use super::*;
use crate::plan::BackfillMode;
use futures_util::StreamExt;

impl Postgres {
    /// Runs a backfill in keyset batches. Each batch is its own transaction that also writes the
    /// checkpoint (the last key done) to `drydock.backfill_progress`, so a process killed at any
    /// instant resumes exactly where it stopped: no batch is skipped or repeated. A large table
    /// is walked in lanes side by side (`policy.backfill_lanes`, one connection and one
    /// checkpoint each; see `lanes`). Batch sizes adapt to keep batches near 100 ms; lock
    /// timeouts retry the batch with backoff; the table is vacuumed every 1/16th of its rows to
    /// keep its heap from doubling. The step's history row is written with the final checkpoints. A
    /// `halt` stops every lane after the batch in progress (its checkpoint committed), without
    /// the history row: the next apply resumes there; a lane's failure stops the others the
    /// same way and is the step's failure.
    pub async fn backfill(
        &self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        history: &crate::db::HistoryRow<'_>,
        policy: &Policy,
        control: crate::db::Control<'_>,
    ) -> Result<std::result::Result<BackfillReport, StepFailure>> {
        let crate::db::Control {
            progress,
            halt,
            pause,
        } = control;
        let setup = Instant::now();
        let mut conn = self.connect().await?;
        self.agent_role(&mut conn, AgentUse::Apply).await?;
        let (saved, total, lanes) = self
            .backfill_setup(&mut conn, step, spec, columns, history.plan_id, policy)
            .await?;
        crate::clock::phase(&format!("{}: backfill setup", self.name), setup);
        let started = Instant::now();
        let walk = Walk {
            statements: Statements::new(spec, &saved),
            begin: format!(
                "BEGIN{}; {}",
                isolation(spec),
                self.roles.begin(AgentUse::Apply)
            ),
            plan_id: history.plan_id,
            step,
            policy,
            pause_ms: spec.pause_ms.filter(|p| *p > 0),
            halt,
            pause,
            failed: AtomicBool::new(false),
            monitor: tokio::sync::Mutex::new(Monitor::new(
                qualified_ident(&spec.table),
                policy.max_replica_lag,
            )),
            vacuum: std::sync::Mutex::new(Vacuum::new(
                self.options.clone(),
                qualified_ident(&spec.table),
                total,
                &self.name,
            )),
            tally: std::sync::Mutex::new(Tally {
                done: lanes.iter().map(|l| l.done as u64).sum(),
                total,
                health: crate::db::Health::default(),
                report: progress,
            }),
        };
        let resumed: Vec<String> = lanes
            .iter()
            .filter_map(|l| l.resumed_from.clone())
            .collect();
        // At most `backfill_lanes` parts at once, each walker taking the next part when its own
        // ends (a resumed backfill walks the parts its first run cut).
        let side_by_side = (policy.backfill_lanes.max(1) as usize).min(lanes.len());
        let runs: Vec<Result<LaneRun>> = futures_util::stream::iter(lanes)
            .map(|l| self.walk_lane(l, &walk))
            .buffered(side_by_side.max(1))
            .collect()
            .await;
        let vacuum = walk.vacuum.into_inner().unwrap_or_else(|p| p.into_inner());
        vacuum.finish().await;
        let health = walk.monitor.into_inner().health;
        let mut report = BackfillReport {
            lanes: side_by_side as u64,
            resumed_from: (!resumed.is_empty()).then(|| resumed.join(", ")),
            health,
            ..BackfillReport::of(&spec.table, &saved.key_name)
        };
        if let Some(failure) = add_runs(&mut report, runs)? {
            conn.close().await.ok();
            return Ok(Err(failure));
        }
        if let (false, BackfillMode::Copy(c)) = (report.halted, spec.mode()) {
            super::sequences::advance_past_copied(&mut conn, &c.table, &saved.key_name)
                .await
                .map_err(|e| self.err(e))?;
        }
        let history_started = Instant::now();
        if !report.halted {
            finish(
                &mut conn,
                history,
                step,
                started.elapsed().as_secs_f64() * 1000.0,
            )
            .await
            .map_err(|e| self.err(e))?;
            crate::clock::phase(&format!("{}: backfill history", self.name), history_started);
        }
        conn.close().await.ok();
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Ok(report))
    }

    /// Walks one lane to its end (or a halt, or another lane's failure) on its own connection;
    /// an error stops the other lanes too.
    async fn walk_lane(&self, lane: Lane, walk: &Walk<'_>) -> Result<LaneRun> {
        let (started, index) = (Instant::now(), lane.index);
        let run = self.walk_lane_on(lane, walk).await;
        crate::clock::phase(&format!("{}: lane {index}", self.name), started);
        if run.as_ref().map_or(true, |r| r.failure.is_some()) {
            walk.failed.store(true, Ordering::SeqCst);
        }
        run
    }

    /// The watcher samples sessions blocked behind the lane's batches: one kept waiting over
    /// 100 ms halves the lane's batch size, and a batch that blocks others past
    /// policy.max_block is cancelled and retried smaller.
    async fn walk_lane_on(&self, mut lane: Lane, walk: &Walk<'_>) -> Result<LaneRun> {
        let mut conn = self.connect().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let stop = StopOnDrop(Arc::new(Stop::default()));
        let blocked = Arc::new(AtomicU64::new(0));
        tokio::spawn(watch(
            self.options.clone(),
            pid,
            walk.policy.max_block,
            stop.0.clone(),
            Some(blocked.clone()),
        ));
        let largest = walk.vacuum().largest_batch();
        let mut pace = Pace::new(walk.statements.batch_size, largest, blocked.clone());
        let (mut halted, mut failure, mut waited_ms) = (false, None, 0.0);
        loop {
            if walk.halt.requested() {
                halted = true;
                break;
            }
            if walk.failed.load(Ordering::SeqCst) {
                break;
            }
            // Paused by an engineer: hold between batches (the checkpoint is committed, no lock
            // is held) until resumed, or halted for a shutdown.
            if walk.pause.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            // A replica lagging over policy.max_replica_lag: hold the same way until it
            // catches up, saying why in the progress.
            if walk.hold(&mut conn).await {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(250)).await;
                waited_ms += t.elapsed().as_secs_f64() * 1000.0;
                continue;
            }
            let sql = walk.statements.for_lane(&lane);
            let (count, max_key) = match self
                .batch_with_retries(&mut conn, sql, &lane, walk, &mut pace)
                .await
            {
                Ok(row) => row,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            };
            let Some(max_key) = max_key else { break };
            lane.advance(max_key, count);
            walk.advanced(count);
            if let Some(p) = walk.pause_ms {
                tokio::time::sleep(Duration::from_millis(p)).await;
            }
        }
        conn.close().await.ok();
        Ok(LaneRun {
            lane,
            pace,
            halted,
            failure,
            waited_ms,
            blocked: blocked.load(Ordering::SeqCst),
        })
    }

    /// The bookkeeping tables, the table that saves the overwritten values (written by the same
    /// statements as the batches, for rollback), the rows to do, and the lanes: as their
    /// checkpoints say when the backfill has started, else cut now.
    async fn backfill_setup(
        &self,
        conn: &mut PgConnection,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        plan_id: &str,
        policy: &Policy,
    ) -> Result<(saved::Saved, u64, Vec<Lane>)> {
        prepare(conn).await.map_err(|e| self.err(e))?;
        self.grant_bookkeeping(conn).await?;
        let saved = saved::Saved::resolve(
            &self.name,
            conn,
            spec,
            columns,
            saved::Place::Target { plan_id, step },
        )
        .await?;
        sqlx::raw_sql(AssertSqlSafe(saved.create()))
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        if let Some(role) = self.roles.of(AgentUse::Apply) {
            sqlx::raw_sql(AssertSqlSafe(saved.owned_by(role)))
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let total = row_counts_on(conn, std::slice::from_ref(&spec.table))
            .await
            .map_err(|e| self.err(e))?
            .values()
            .sum::<u64>();
        let mut lanes = lanes::read(conn, plan_id, step)
            .await
            .map_err(|e| self.err(e))?;
        if lanes.is_empty() {
            // A table the sample cannot read (a kind TABLESAMPLE does not take) is walked in one.
            let boundaries = lanes::cut(
                conn,
                &qualified_ident(&spec.table),
                saved.key(),
                spec.filter.as_deref(),
                total,
                policy.backfill_lanes.max(1) * lanes::SEGMENTS,
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(table = %spec.table, error = %crate::redact::redact(&e.to_string()), "backfill: no lanes, the sample failed");
                vec![]
            });
            lanes = lanes::start(conn, plan_id, step, &boundaries)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok((saved, total, lanes))
    }

    /// One batch; a lock timeout or a cancel by the watcher retries it smaller, with backoff.
    async fn batch_with_retries(
        &self,
        conn: &mut PgConnection,
        batch_sql: (&str, &BatchStatement),
        lane: &Lane,
        walk: &Walk<'_>,
        pace: &mut Pace,
    ) -> std::result::Result<(i64, Option<String>), StepFailure> {
        let (mut attempt, mut conflicts) = (0, 0);
        loop {
            let t0 = Instant::now();
            match batch(
                conn,
                &walk.begin,
                batch_sql,
                lane,
                pace.size,
                walk.plan_id,
                walk.step,
            )
            .await
            {
                Ok(row) => {
                    pace.after(t0.elapsed().as_secs_f64() * 1000.0);
                    return Ok(row);
                }
                Err(e) => {
                    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
                    let state = sqlstate(&e);
                    // 55P03: lock timeout; 57014: cancelled by the watcher. Retry smaller.
                    if matches!(state.as_deref(), Some("55P03" | "57014"))
                        && attempt + 1 < walk.policy.lock_retries
                    {
                        attempt += 1;
                        pace.shrink();
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    // 40001/40P01: a batch that reads other rows met a writer that changed them
                    // after its snapshot (see `isolation`). Retried at once, smaller: conflicts
                    // are what a busy table has, not a fault.
                    if matches!(state.as_deref(), Some("40001" | "40P01"))
                        && conflicts < SERIALIZATION_RETRIES
                    {
                        conflicts += 1;
                        pace.shrink();
                        tokio::time::sleep(Duration::from_millis(5 * u64::from(conflicts))).await;
                        continue;
                    }
                    return Err(StepFailure {
                        index: (lane.batches + 1) as usize,
                        sql: format!(
                            "backfill batch after key {}",
                            lane.last.as_deref().unwrap_or("(start)")
                        ),
                        sqlstate: state,
                        cause: crate::db::agent_error(&e, batch_sql.1.sql()),
                        raised: crate::db::raised(&e),
                    });
                }
            }
        }
    }
}

/// How many times in a row a batch may meet a concurrent writer (a serialization failure)
/// before the step fails.
const SERIALIZATION_RETRIES: u32 = 50;

/// The isolation of a batch that reads rows other than the ones it writes (a copy, a `set` or
/// `where` with a subquery): REPEATABLE READ. Under READ COMMITTED such a batch writes what it
/// read in its statement's snapshot even where a writer committed a newer value since: the
/// writer's trigger had already copied the newer value across, and the batch overwrote it with
/// the older one (merge-tables lost 4 keys in 100,000 that way). Under REPEATABLE READ a batch
/// that meets a row changed after its snapshot fails with a serialization failure and is
/// retried; a copy also locks the rows it reads (`FOR SHARE`), so a row deleted or updated
/// after its snapshot fails it too instead of being copied as it was. A batch that reads only
/// the rows it writes stays READ COMMITTED: PostgreSQL re-reads a row changed under it.
fn isolation(spec: &crate::plan::Backfill) -> &'static str {
    if spec.reads_other_rows() {
        " ISOLATION LEVEL REPEATABLE READ"
    } else {
        ""
    }
}

/// What the lanes of one backfill share: their statements, the brakes, the monitor (sampled by
/// whichever lane comes first, at most once a second), the vacuum (paced by the rows of all
/// lanes) and the progress tally.
struct Walk<'a> {
    statements: Statements,
    /// What opens a batch's transaction: `BEGIN`, as the apply role when one is set.
    begin: String,
    plan_id: &'a str,
    step: &'a str,
    policy: &'a Policy,
    pause_ms: Option<u64>,
    halt: &'a crate::db::Halt,
    pause: &'a AtomicBool,
    /// A lane failed: the others stop at their next checkpoint.
    failed: AtomicBool,
    monitor: tokio::sync::Mutex<Monitor>,
    vacuum: std::sync::Mutex<Vacuum>,
    tally: std::sync::Mutex<Tally<'a>>,
}

/// Rows done across the lanes, the last sample of the database, and where they are reported.
struct Tally<'a> {
    done: u64,
    total: u64,
    health: crate::db::Health,
    report: &'a mut (dyn FnMut(u64, u64, &crate::db::Health) + Send),
}

impl Tally<'_> {
    fn send(&mut self) {
        (self.report)(self.done, self.total.max(self.done), &self.health);
    }
}

impl<'a> Walk<'a> {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally<'a>> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn vacuum(&self) -> std::sync::MutexGuard<'_, Vacuum> {
        self.vacuum.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the next batch must wait for a lagging replica (reported as the progress' why).
    /// The tally keeps a copy of each new sample for the progress reports.
    async fn hold(&self, conn: &mut PgConnection) -> bool {
        let mut monitor = self.monitor.lock().await;
        let sampled = monitor.refresh(conn).await;
        let held = monitor.hold().is_some();
        if sampled || held {
            let mut tally = self.tally();
            tally.health = monitor.health.clone();
            if held {
                tally.send();
            }
        }
        held
    }

    /// A lane's batch of `rows` committed.
    fn advanced(&self, rows: i64) {
        {
            let mut tally = self.tally();
            tally.done += rows as u64;
            tally.send();
        }
        self.vacuum().after(rows);
    }
}

/// How one lane's walk ended.
struct LaneRun {
    lane: Lane,
    pace: Pace,
    halted: bool,
    failure: Option<StepFailure>,
    waited_ms: f64,
    blocked: u64,
}

/// The backfill's bookkeeping tables in the target.
async fn prepare(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(lanes::CREATE_PROGRESS)
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(CREATE_HISTORY).execute(&mut *conn).await?;
    Ok(())
}

/// The statements a lane's batch runs, one per shape of its key range (a lower bound or the
/// table's start; an upper bound or the table's end), so that each is a plain index range
/// condition the planner can use in a generic plan too. A missing bound still names its
/// parameter (`$1::text IS NULL`), so every shape binds the same parameters.
struct Statements {
    /// The batch's last key, by `[has a lower bound][has an upper bound]`.
    bound: [[String; 2]; 2],
    /// The change, by `[has a lower bound]`.
    change: [BatchStatement; 2],
    batch_size: Option<u32>,
}

impl Statements {
    fn new(spec: &crate::plan::Backfill, saved: &Saved) -> Statements {
        let bound = |after: bool, upto: bool| bound_statement(spec, saved, after, upto);
        Statements {
            bound: [
                [bound(false, false), bound(false, true)],
                [bound(true, false), bound(true, true)],
            ],
            change: [
                change_statement(spec, saved, false),
                change_statement(spec, saved, true),
            ],
            batch_size: spec.batch_size,
        }
    }

    fn for_lane(&self, lane: &Lane) -> (&str, &BatchStatement) {
        let after = usize::from(lane.last.is_some());
        (
            &self.bound[after][usize::from(lane.upto.is_some())],
            &self.change[after],
        )
    }
}

/// `key > $1` (the checkpoint) or, from the table's start, `$1 IS NULL`.
fn after_condition(saved: &Saved, has_after: bool) -> String {
    if has_after {
        format!("{} > $1::text::{}", saved.key(), saved.key_type)
    } else {
        "$1::text IS NULL".to_string()
    }
}

/// A batch's last key: the `$2`-th key after the checkpoint `$1` (or the lane's end `$3`, or the
/// last key before it), from an index-only scan; NULL when the lane is done.
fn bound_statement(
    spec: &crate::plan::Backfill,
    saved: &Saved,
    has_after: bool,
    has_upto: bool,
) -> String {
    let key = saved.key();
    let upto = if has_upto {
        format!("{key} <= $3::text::{}", saved.key_type)
    } else {
        "$3::text IS NULL".to_string()
    };
    // language=SQL
    format!(
        "SELECT max(k)::text FROM (
             SELECT {key} AS k FROM {table} WHERE {after} AND {upto} ORDER BY {key} LIMIT $2
         ) AS next_keys",
        table = qualified_ident(&spec.table),
        after = after_condition(saved, has_after),
    )
}

/// A batch's change: one ranged UPDATE, INSERT … SELECT or DELETE (an index range scan) of the
/// rows after the checkpoint `$1` up to the batch's last key `$2` that match `where`, saving what
/// it overwrites, copies or deletes in the same statement. Its row count is the batch's.
fn change_statement(
    spec: &crate::plan::Backfill,
    saved: &Saved,
    has_after: bool,
) -> BatchStatement {
    let table = qualified_ident(&spec.table);
    let rows = saved.batch_rows(&after_condition(saved, has_after));
    let change = match spec.mode() {
        BackfillMode::Update(set) => format!("UPDATE {table} SET {set} WHERE {rows}"),
        BackfillMode::Delete => format!("DELETE FROM {table} WHERE {rows}"),
        BackfillMode::Copy(c) => {
            let cols = c
                .columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO {into} ({cols}) SELECT {cols} FROM {table} WHERE {rows} FOR SHARE{skip}",
                into = qualified_ident(&c.table),
                skip = if c.skip_existing {
                    " ON CONFLICT DO NOTHING"
                } else {
                    ""
                },
            )
        }
    };
    saved.batch_statement(&change, &rows)
}

/// One batch in its own transaction, with its lane's checkpoint: all commit, or none does.
/// `begin` opens it (as the apply role: the batch runs the agent's `set` and `where` and fires
/// the table's triggers). Returns the rows changed and the batch's last key (none: the lane is
/// done).
#[allow(clippy::too_many_arguments)]
async fn batch(
    conn: &mut PgConnection,
    begin: &str,
    (bound_sql, change): (&str, &BatchStatement),
    lane: &Lane,
    size: i64,
    plan_id: &str,
    step: &str,
) -> sqlx::Result<(i64, Option<String>)> {
    sqlx::raw_sql(AssertSqlSafe(begin.to_string()))
        .execute(&mut *conn)
        .await?;
    let hi: Option<String> = sqlx::query_scalar(AssertSqlSafe(bound_sql.to_string()))
        .persistent(false)
        .bind(&lane.last)
        .bind(size)
        .bind(&lane.upto)
        .fetch_one(&mut *conn)
        .await?;
    let Some(hi) = hi else {
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        return Ok((0, None));
    };
    let changed = match change {
        BatchStatement::Affected(sql) => sqlx::query(AssertSqlSafe(sql.clone()))
            .persistent(false)
            .bind(&lane.last)
            .bind(&hi)
            .execute(&mut *conn)
            .await?
            .rows_affected() as i64,
        BatchStatement::Selected(sql) => {
            sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                .persistent(false)
                .bind(&lane.last)
                .bind(&hi)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    lanes::checkpoint(conn, plan_id, step, lane.index, &hi, changed).await?;
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok((changed, Some(hi)))
}

/// The batch size, adapted to keep batches near 100 ms and to back off when others wait.
struct Pace {
    size: i64,
    largest: i64,
    blocked: Arc<AtomicU64>,
    blocked_seen: u64,
    slowest_ms: f64,
}

impl Pace {
    fn new(batch_size: Option<u32>, largest: i64, blocked: Arc<AtomicU64>) -> Pace {
        // An agent's `batch_size` is where batches start and the most they take.
        let largest = batch_size.map_or(largest, |b| largest.min(i64::from(b)).max(1));
        Pace {
            size: i64::from(batch_size.unwrap_or(1000)).min(largest.max(100)),
            largest,
            blocked,
            blocked_seen: 0,
            slowest_ms: 0.0,
        }
    }

    /// Shrink when others were blocked or the batch took over 200 ms; grow while well under
    /// 100 ms.
    fn after(&mut self, ms: f64) {
        self.slowest_ms = self.slowest_ms.max(ms);
        let seen = self.blocked.load(Ordering::SeqCst);
        if seen > self.blocked_seen {
            self.blocked_seen = seen;
            self.shrink();
        } else if ms < 50.0 {
            self.size = (self.size * 3 / 2).min(self.largest).max(self.size);
        } else if ms > 200.0 {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        self.size = (self.size / 2).max(100.min(self.largest));
    }
}

/// Every 1/16th of the table's rows (at least 5,000), VACUUM on a second connection while the
/// batches go on, so the space of the rows already rewritten is reused instead of doubling the
/// heap. A fraction, not a count: a VACUUM's cost (a scan of every index) and the dead rows
/// left by one interval both grow with the table, so the heap's growth (1.27–1.33× measured on 5M
/// narrow rows, whose widening alone is 1.18×) and the VACUUMs' share of the work stay the
/// same whatever its size; a fixed 400k left a 2M-row table at 1.44×. (Measured: with
/// `INDEX_CLEANUP OFF` the backfill ran 38% faster, the index scans being most of each VACUUM's
/// cost, but dead line pointers piled up on narrow rows' pages and the heap grew 1.57× instead
/// of 1.29×; cleaning the indexes every third VACUUM only, 1.38×.)
///
/// Toward the end the interval shrinks to a third of the rows left (down to 1/128th of the
/// table): space freed after the last batch is never reused, and with the full interval the
/// last rows' old pages stayed empty (2M rows: 1.27–1.30× → 1.25–1.26×, wall unchanged). What
/// is left is the VACUUMs' own lag (rows written while one runs are freed only by the next) on
/// top of the widening; a table rewritten row by row with a VACUUM after every 25,000 rows, one
/// at a time, ends at 1.20×.
struct Vacuum {
    every: i64,
    since: i64,
    /// Rows the backfill has still to do, as estimated at its start.
    left: i64,
    /// A VACUUM is running (set here, cleared by the task when it ends).
    busy: Arc<AtomicBool>,
    start: tokio::sync::mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Vacuum {
    /// The VACUUMs of one backfill run one after another on one session, opened at the first:
    /// a new backend for each would fork, authenticate and fault in the shared buffers it
    /// reads every time. `TRUNCATE false`: no VACUUM of ours takes the table's ACCESS EXCLUSIVE
    /// lock to cut empty pages off its end while the application uses it.
    fn new(options: PgConnectOptions, table: String, rows: u64, target: &str) -> Vacuum {
        let phase = format!("{target}: vacuums");
        let busy = Arc::new(AtomicBool::new(false));
        let (start, mut started) = tokio::sync::mpsc::channel::<()>(1);
        let done = busy.clone();
        let options = options.application_name("drydock-vacuum");
        let task = tokio::spawn(async move {
            let sql = format!("VACUUM (TRUNCATE false) {table}");
            let mut session: Option<PgConnection> = None;
            let (mut count, mut busy_ms) = (0, 0.0);
            while started.recv().await.is_some() {
                let t = Instant::now();
                if session.is_none() {
                    session = options
                        .connect()
                        .await
                        .inspect_err(|e| vacuum_failed(&table, e))
                        .ok();
                }
                if let Some(c) = session.as_mut()
                    && let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.as_str())).execute(c).await
                {
                    vacuum_failed(&table, &e);
                    session = None;
                }
                (count, busy_ms) = (count + 1, busy_ms + t.elapsed().as_secs_f64() * 1000.0);
                done.store(false, Ordering::SeqCst);
            }
            if let Some(c) = session {
                c.close().await.ok();
            }
            tracing::info!(target: "drydock::phases", phase = %phase, count, ms = format_args!("{busy_ms:.1}"), "beside the lanes");
        });
        Vacuum {
            every: (rows / 16).max(5_000) as i64,
            since: 0,
            left: rows as i64,
            busy,
            start,
            task,
        }
    }

    /// The largest batch a lane may grow to: half an interval, so that a VACUUM always has
    /// committed batches to reclaim (a batch's new rows can only go where an earlier batch's
    /// old rows were once a VACUUM has seen them commit); and 100,000 rows at most.
    fn largest_batch(&self) -> i64 {
        (self.every / 2).min(100_000)
    }

    fn after(&mut self, rows: i64) {
        self.since += rows;
        self.left -= rows;
        let every = self.every.min((self.left / 3).max(self.every / 8));
        if self.since < every || self.busy.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.start.try_send(()).is_err() {
            self.busy.store(false, Ordering::SeqCst);
            return;
        }
        self.since = 0;
    }

    /// Waits for the VACUUM running, if any, and closes the session.
    async fn finish(self) {
        drop(self.start);
        self.task.await.ok();
    }
}

/// A VACUUM that could not run costs space, not correctness: said on stderr, and the backfill
/// goes on.
fn vacuum_failed(table: &str, e: &sqlx::Error) {
    tracing::warn!(table, error = %crate::redact::redact(&e.to_string()), "backfill: VACUUM failed");
}

/// The last checkpoint marks the backfill done, in the transaction that writes its history row.
async fn finish(
    conn: &mut PgConnection,
    history: &crate::db::HistoryRow<'_>,
    step: &str,
    duration_ms: f64,
) -> sqlx::Result<()> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    // language=SQL
    sqlx::query(
        "UPDATE drydock.backfill_progress SET done = true, updated_at = now() WHERE plan_id = $1 AND step = $2",
    )
    .persistent(false)
    .bind(history.plan_id)
    .bind(step)
    .execute(&mut *conn)
    .await?;
    write_history(&mut *conn, &History::Applied(history.clone()), duration_ms).await?;
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// The lanes' runs added up in the backfill's report; the first lane failure, if any (an error
/// of any lane is the backfill's).
fn add_runs(
    report: &mut BackfillReport,
    runs: Vec<Result<LaneRun>>,
) -> Result<Option<StepFailure>> {
    let mut failure = None;
    for run in runs {
        let run = run?;
        report.rows += run.lane.done as u64;
        report.batches += run.lane.batches as u64;
        report.final_batch_size = report.final_batch_size.max(run.pace.size as u64);
        report.blocked_samples += run.blocked;
        report.slowest_batch_ms = report.slowest_batch_ms.max(run.pace.slowest_ms);
        report.replica_wait_ms = report.replica_wait_ms.max(run.waited_ms);
        report.halted |= run.halted;
        failure = failure.or(run.failure);
    }
    Ok(failure)
}
