//! A backfill's lanes: its key range cut into contiguous parts that are walked side by side, each
//! by its own connection, each with its own checkpoint row in `drydock.backfill_progress`. There
//! are `SEGMENTS` parts for each lane walked at once (`policy.backfill_lanes`): a walker that ends
//! its part takes the next one not started, so no walker idles while another still has a
//! quarter of the table ahead of it (two halves ended up to 1.9 s apart on 5M rows under
//! writers; the parts' rates differ with the writers, the VACUUMs and each one's pace). A
//! lane's batch, the values it saves and its checkpoint commit together, so every lane — and so
//! the whole backfill — resumes exactly where it stopped. The cut is made once, on the first run,
//! and stored with the checkpoints (in the same transaction): a resumed backfill walks the same
//! lanes whatever `policy.backfill_lanes` says by then.

use super::*;

/// Rows below which a lane is not worth its connection: a table gets one lane per this many
/// (estimated) rows to update, up to `policy.backfill_lanes`.
pub(super) const MIN_LANE_ROWS: u64 = 50_000;

/// Parts of the key range for each lane walked at once.
pub(super) const SEGMENTS: u32 = 4;

/// Rows the cut samples (by pages, `TABLESAMPLE SYSTEM`) to place the lanes' boundaries.
const SAMPLE_ROWS: f64 = 30_000.0;

/// One lane: the keys above the boundary it starts after, up to and including `upto` (the
/// table's end when `None`), done up to `last`.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    pub index: i32,
    /// The checkpoint: every key of the lane up to this one is done (the lane's lower boundary
    /// before its first batch; `None` only for the first lane's start).
    pub last: Option<String>,
    pub upto: Option<String>,
    pub done: i64,
    pub batches: i64,
    /// The checkpoint this run took the lane up at, when an earlier run had done part of it.
    pub resumed_from: Option<String>,
}

impl Lane {
    pub fn advance(&mut self, key: String, rows: i64) {
        self.last = Some(key);
        self.done += rows;
        self.batches += 1;
    }
}

/// The checkpoint table. Before lanes it had one row per step (`PRIMARY KEY (plan_id, step)`);
/// such a table gains `lane` and `upto`, and its rows become their step's one lane — a backfill
/// interrupted under an older drydock resumes as it was.
// language=SQL
pub(super) const CREATE_PROGRESS: &str = "CREATE SCHEMA IF NOT EXISTS drydock;
    CREATE TABLE IF NOT EXISTS drydock.backfill_progress (
        plan_id text NOT NULL,
        step text NOT NULL,
        lane integer NOT NULL DEFAULT 0,
        last_key text,
        upto text,
        rows_done bigint NOT NULL DEFAULT 0,
        batches bigint NOT NULL DEFAULT 0,
        done boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (plan_id, step, lane)
    );
    DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'drydock.backfill_progress'::regclass
                       AND attname = 'lane' AND NOT attisdropped) THEN
            ALTER TABLE drydock.backfill_progress
                ADD COLUMN lane integer NOT NULL DEFAULT 0,
                ADD COLUMN upto text,
                DROP CONSTRAINT backfill_progress_pkey,
                ADD PRIMARY KEY (plan_id, step, lane);
        END IF;
    END $$;";

/// The step's lanes as its checkpoints say, if it has started.
pub(super) async fn read(
    conn: &mut PgConnection,
    plan_id: &str,
    step: &str,
) -> sqlx::Result<Vec<Lane>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        lane: i32,
        last_key: Option<String>,
        upto: Option<String>,
        rows_done: i64,
        batches: i64,
    }
    // language=SQL
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT lane, last_key, upto, rows_done, batches FROM drydock.backfill_progress
         WHERE plan_id = $1 AND step = $2 ORDER BY lane",
    )
    .persistent(false)
    .bind(plan_id)
    .bind(step)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Lane {
            index: r.lane,
            resumed_from: (r.batches > 0).then(|| r.last_key.clone()).flatten(),
            last: r.last_key,
            upto: r.upto,
            done: r.rows_done,
            batches: r.batches,
        })
        .collect())
}

/// Where the lanes of a new backfill begin: up to `wanted - 1` boundaries (`wanted` being
/// `SEGMENTS` for each lane walked at once), quantiles of the keys
/// of the rows it will change, sampled by pages. Fewer for a small table, none (one lane) for an
/// empty sample. In key order, without repeats.
pub(super) async fn cut(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    filter: Option<&str>,
    rows: u64,
    wanted: u32,
) -> sqlx::Result<Vec<String>> {
    let lanes = u64::from(wanted).min(rows / MIN_LANE_ROWS).max(1);
    if lanes == 1 {
        return Ok(vec![]);
    }
    let fractions: Vec<f64> = (1..lanes).map(|i| i as f64 / lanes as f64).collect();
    let percent = (100.0 * SAMPLE_ROWS / rows as f64).clamp(0.001, 100.0);
    let filter = filter.map(|w| format!("WHERE ({w})")).unwrap_or_default();
    // language=SQL
    let sql = format!(
        "SELECT (percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY {key}))::text[]
         FROM {table} TABLESAMPLE SYSTEM ($2) {filter}"
    );
    let cuts: Option<Vec<Option<String>>> = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .bind(&fractions)
        .bind(percent)
        .fetch_one(&mut *conn)
        .await?;
    let mut out: Vec<String> = Vec::new();
    for c in cuts.unwrap_or_default().into_iter().flatten() {
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Writes the checkpoints of a new backfill's lanes, one transaction for all: lane `i` starts
/// after boundary `i - 1` and ends at boundary `i` (the first starts at the table's start, the
/// last ends at its end).
pub(super) async fn start(
    conn: &mut PgConnection,
    plan_id: &str,
    step: &str,
    boundaries: &[String],
) -> sqlx::Result<Vec<Lane>> {
    let lanes: Vec<Lane> = (0..=boundaries.len())
        .map(|i| Lane {
            index: i as i32,
            last: i.checked_sub(1).map(|b| boundaries[b].clone()),
            upto: boundaries.get(i).cloned(),
            done: 0,
            batches: 0,
            resumed_from: None,
        })
        .collect();
    let mut tx = conn.begin().await?;
    for lane in &lanes {
        // language=SQL
        sqlx::query(
            "INSERT INTO drydock.backfill_progress (plan_id, step, lane, last_key, upto) VALUES ($1, $2, $3, $4, $5)",
        )
        .persistent(false)
        .bind(plan_id)
        .bind(step)
        .bind(lane.index)
        .bind(&lane.last)
        .bind(&lane.upto)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(lanes)
}

/// Moves a lane's checkpoint past a batch: run inside the batch's transaction.
pub(super) async fn checkpoint(
    conn: &mut PgConnection,
    plan_id: &str,
    step: &str,
    lane: i32,
    key: &str,
    rows: i64,
) -> sqlx::Result<()> {
    // language=SQL
    let moved = sqlx::query(
        "UPDATE drydock.backfill_progress SET last_key = $4, rows_done = rows_done + $5,
             batches = batches + 1, updated_at = now()
         WHERE plan_id = $1 AND step = $2 AND lane = $3",
    )
    .persistent(false)
    .bind(plan_id)
    .bind(step)
    .bind(lane)
    .bind(key)
    .bind(rows)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "the checkpoint of lane {lane} of backfill step `{step}` is gone from drydock.backfill_progress"
        )))
    }
}
