//! Backfill of a new column on a large table under concurrent writers: one `UPDATE` against
//! drydock's backfill engine (keyset batches with checkpoints, adaptive size, periodic VACUUM).
//! Prints wall time, the writers' p50/p99/max latency and heap growth for each.
//!
//! Each run measures both on the same fresh table, one after the other, and prints the
//! backfill's time as a multiple of the UPDATE's.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench backfill`
//! (`DRYDOCK_BENCH_ROWS` overrides the 5,000,000 rows, `DRYDOCK_BENCH_RUNS` the 3 runs,
//! `DRYDOCK_BENCH_LANES` the default `policy.backfill_lanes`). Under `cargo test` it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drydock::config::Policy;
use drydock::db::HistoryRow;
use drydock::db::postgres::Postgres;
use drydock::plan::Backfill;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

mod support;
use support::{BenchDb, connect, percentile};

const WRITERS: usize = 4;

async fn heap_bytes(c: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_relation_size('bench_orders')")
        .fetch_one(c)
        .await
        .expect("size")
}

/// drydock's backfill of the bench table, as an apply runs it.
async fn backfill(url: &str, policy: &Policy) -> String {
    let target = Postgres::open("bench", url, policy)
        .await
        .expect("open target");
    let spec = Backfill {
        table: "bench_orders".into(),
        set: "cents = amount * 100".into(),
        filter: Some("cents IS NULL".into()),
        // No `batch_size`: an agent's is the most a batch takes; the default starts at 1,000
        // and adapts.
        batch_size: None,
        ..Backfill::default()
    };
    let history = HistoryRow {
        plan_id: "bench",
        step: "backfill",
        checksum: "bench",
        by: "bench",
    };
    let r = target
        .backfill(
            "backfill",
            &spec,
            &["cents".to_string()],
            &history,
            policy,
            drydock::db::Control {
                progress: &mut |_, _, _| {},
                halt: &drydock::db::Halt::default(),
                pause: &std::sync::atomic::AtomicBool::new(false),
            },
        )
        .await
        .expect("backfill")
        .expect("batches");
    format!(
        "{} rows in {} batches over {} lanes (final batch {}, slowest {:.0} ms)",
        r.rows, r.batches, r.lanes, r.final_batch_size, r.slowest_batch_ms
    )
}

async fn setup(url: &str, rows: i64) {
    let mut c = connect(url).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS bench_orders; DROP SCHEMA IF EXISTS drydock CASCADE;
         CREATE TABLE bench_orders (id bigint PRIMARY KEY, amount integer NOT NULL, cents bigint);
         INSERT INTO bench_orders SELECT g, g % 1000 FROM generate_series(1, {rows}) g;"
    )))
    .execute(&mut c)
    .await
    .expect("setup");
    sqlx::raw_sql("VACUUM ANALYZE bench_orders")
        .execute(&mut c)
        .await
        .expect("vacuum");
    // Both methods start with the setup's writes checkpointed (when the role may), so neither
    // pays for the other's.
    sqlx::raw_sql("CHECKPOINT").execute(&mut c).await.ok();
    c.close().await.ok();
}

/// Runs `work` while 4 writers update random rows every 10 ms (a fixed rate).
async fn under_writers<F: std::future::Future<Output = String>>(
    url: &str,
    rows: i64,
    work: F,
) -> (f64, Vec<f64>, String) {
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, stop) = (url.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut c = connect(&url).await;
                let mut lat = Vec::new();
                let mut i = w as i64 * 7_919;
                while !stop.load(Ordering::SeqCst) {
                    let t0 = Instant::now();
                    sqlx::query("UPDATE bench_orders SET amount = amount + 1 WHERE id = $1")
                        .bind(1 + (i * 104_729) % rows)
                        .execute(&mut c)
                        .await
                        .expect("write");
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                c.close().await.ok();
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let outcome = work.await;
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    all.sort_by(f64::total_cmp);
    (wall, all, outcome)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, wall: f64, lat: &[f64], before: i64, after: i64, outcome: &str) {
    let over = lat.iter().filter(|l| **l > 250.0).count();
    println!(
        "{name:<26} {wall:>8.1} {:>8} {:>8.2} {:>9.1} {:>9.1} {over:>9} {:>8.2}x  {outcome}",
        lat.len(),
        percentile(lat, 0.50),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or_default(),
        after as f64 / before as f64
    );
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: i64 = env_or("DRYDOCK_BENCH_ROWS", 5_000_000);
    let runs: usize = env_or("DRYDOCK_BENCH_RUNS", 3);
    let policy = Policy {
        backfill_lanes: env_or("DRYDOCK_BENCH_LANES", Policy::default().backfill_lanes),
        ..Policy::default()
    };
    let db = BenchDb::create("drydock_bench_backfill").await;
    let url = db.url.clone();

    println!(
        "backfill `cents = amount * 100` on {rows} rows; {WRITERS} writers each updating a random row every 10 ms; backfill_lanes = {}",
        policy.backfill_lanes
    );
    let mut ratios = Vec::new();
    for run in 1..=runs {
        println!(
            "run {run}: {:<19} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  outcome",
            "method", "wall s", "writes", "p50 ms", "p99 ms", "max ms", ">250 ms", "heap"
        );
        setup(&url, rows).await;
        let mut c = connect(&url).await;
        let before = heap_bytes(&mut c).await;
        let (update_wall, lat, outcome) = under_writers(&url, rows, async {
            let mut c = connect(&url).await;
            let r = sqlx::raw_sql("UPDATE bench_orders SET cents = amount * 100")
                .execute(&mut c)
                .await
                .expect("update");
            format!("{} rows", r.rows_affected())
        })
        .await;
        let after = heap_bytes(&mut c).await;
        report("one UPDATE", update_wall, &lat, before, after, &outcome);

        setup(&url, rows).await;
        let before = heap_bytes(&mut c).await;
        let (wall, lat, outcome) = under_writers(&url, rows, backfill(&url, &policy)).await;
        let after = heap_bytes(&mut c).await;
        report("drydock backfill", wall, &lat, before, after, &outcome);
        c.close().await.ok();
        println!(
            "run {run}: backfill / one UPDATE = {:.2}x",
            wall / update_wall
        );
        ratios.push(wall / update_wall);
    }
    println!(
        "backfill / one UPDATE over {runs} runs: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    db.drop().await;
}
