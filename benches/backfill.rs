//! Backfill of a new column on a large table under concurrent writers: one `UPDATE` against
//! drydock's backfill engine (keyset batches with checkpoints, adaptive size, periodic VACUUM).
//! Prints wall time, the writers' p50/p99/max latency and heap growth for each.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench backfill`
//! (`DRYDOCK_BENCH_ROWS` overrides the 5,000,000 rows). Under `cargo test` it does nothing.

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
    let rows: i64 = std::env::var("DRYDOCK_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5_000_000);
    let db = BenchDb::create("drydock_bench_backfill").await;
    let url = db.url.clone();

    println!(
        "backfill `cents = amount * 100` on {rows} rows; {WRITERS} writers each updating a random row every 10 ms"
    );
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  outcome",
        "method", "wall s", "writes", "p50 ms", "p99 ms", "max ms", ">250 ms", "heap"
    );

    setup(&url, rows).await;
    let mut c = connect(&url).await;
    let before = heap_bytes(&mut c).await;
    let (wall, lat, outcome) = under_writers(&url, rows, async {
        let mut c = connect(&url).await;
        let r = sqlx::raw_sql("UPDATE bench_orders SET cents = amount * 100")
            .execute(&mut c)
            .await
            .expect("update");
        format!("{} rows", r.rows_affected())
    })
    .await;
    let after = heap_bytes(&mut c).await;
    report("one UPDATE", wall, &lat, before, after, &outcome);

    setup(&url, rows).await;
    let before = heap_bytes(&mut c).await;
    let (wall, lat, outcome) = under_writers(&url, rows, async {
        let policy = Policy::default();
        let target = Postgres::open("bench", &url, &policy)
            .await
            .expect("open target");
        let spec = Backfill {
            table: "bench_orders".into(),
            set: "cents = amount * 100".into(),
            filter: Some("cents IS NULL".into()),
            batch_size: Some(1000),
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
                &policy,
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
            "{} rows in {} batches (final batch {}, slowest {:.0} ms)",
            r.rows, r.batches, r.final_batch_size, r.slowest_batch_ms
        )
    })
    .await;
    let after = heap_bytes(&mut c).await;
    report("drydock backfill", wall, &lat, before, after, &outcome);
    c.close().await.ok();

    db.drop().await;
}
