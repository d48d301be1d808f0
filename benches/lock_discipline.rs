//! Writers' latency while a DDL step waits for a lock held by a long transaction: a plain
//! `ALTER TABLE` (which queues, and every writer queues behind it) against drydock's apply
//! (lock_timeout, retried transactions, pre-flight). Prints p50/p99/max of the writers.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench lock_discipline`
//! (`.ci/pg-start` starts a suitable throwaway cluster). Under `cargo test` it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drydock::config::Policy;
use drydock::db::Stmt;
use drydock::db::postgres::Postgres;
use sqlx::{AssertSqlSafe, Connection};

mod support;
use support::{BenchDb, connect, percentile};

const WRITERS: usize = 4;
const ROWS: i64 = 100_000;

enum Ddl {
    Plain,
    Drydock(Duration),
}

async fn scenario(url: &str, ddl: Ddl) -> (Vec<f64>, f64, String) {
    let url = url.to_string();
    let mut setup = connect(&url).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS bench_accounts;
         CREATE TABLE bench_accounts (id bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
         INSERT INTO bench_accounts SELECT g, 0 FROM generate_series(1, {ROWS}) g;
         ANALYZE bench_accounts;"
    )))
    .execute(&mut setup)
    .await
    .expect("setup");
    setup.close().await.ok();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = connect(&url).await;
                let mut lat = Vec::new();
                let mut i = w as i64;
                while !stop.load(Ordering::SeqCst) {
                    let t0 = Instant::now();
                    sqlx::query("UPDATE bench_accounts SET balance = balance + 1 WHERE id = $1")
                        .bind(1 + (i * 7919) % ROWS)
                        .execute(&mut c)
                        .await
                        .expect("write");
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    i += WRITERS as i64;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                c.close().await.ok();
                lat
            })
        })
        .collect();

    // A report query's transaction holds a lock on the table for 3 s.
    let reader = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut c = connect(&url).await;
            sqlx::raw_sql("BEGIN; SELECT count(*) FROM bench_accounts")
                .execute(&mut c)
                .await
                .expect("reader");
            tokio::time::sleep(Duration::from_secs(3)).await;
            sqlx::raw_sql("COMMIT")
                .execute(&mut c)
                .await
                .expect("reader commit");
            c.close().await.ok();
        })
    };

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ddl_sql = "ALTER TABLE bench_accounts ADD COLUMN flag boolean";
    let t0 = Instant::now();
    let outcome = match ddl {
        Ddl::Plain => {
            let mut c = connect(&url).await;
            sqlx::raw_sql(ddl_sql)
                .execute(&mut c)
                .await
                .expect("plain ddl");
            c.close().await.ok();
            "applied".to_string()
        }
        Ddl::Drydock(lock_timeout) => {
            let policy = Policy {
                lock_timeout,
                lock_retries: 8,
                ..Policy::default()
            };
            let target = Postgres::open("bench", &url, &policy)
                .await
                .expect("open target");
            let lock = target.lock().await.expect("advisory lock");
            let stmts = [Stmt {
                sql: ddl_sql.into(),
                transactional: true,
            }];
            let (result, _) = target
                .execute(
                    "ddl",
                    &stmts,
                    &["bench_accounts".into()],
                    None,
                    &policy,
                    &mut |_| {},
                )
                .await
                .expect("execute");
            lock.release().await;
            match result {
                Ok(_) => "applied".to_string(),
                Err(f) => format!("refused: {}", f.cause),
            }
        }
    };
    let ddl_ms = t0.elapsed().as_secs_f64() * 1000.0;
    reader.await.ok();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    all.sort_by(f64::total_cmp);
    (all, ddl_ms, outcome)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let db = BenchDb::create("drydock_bench_locks").await;

    println!(
        "{WRITERS} writers updating a {ROWS}-row table every 10 ms; a 3 s transaction holds a lock on it; the DDL starts 0.5 s into that transaction"
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>10}  outcome",
        "scenario", "writes", "p50 ms", "p99 ms", "max ms", "ddl ms"
    );
    for (name, ddl) in [
        ("plain ALTER TABLE (no timeout)", Ddl::Plain),
        (
            "drydock, lock_timeout 1s",
            Ddl::Drydock(Duration::from_secs(1)),
        ),
        (
            "drydock, lock_timeout 200ms",
            Ddl::Drydock(Duration::from_millis(200)),
        ),
    ] {
        let (lat, ddl_ms, outcome) = scenario(&db.url, ddl).await;
        println!(
            "{name:<34} {:>8} {:>9.2} {:>9.2} {:>9.1} {:>10.0}  {outcome}",
            lat.len(),
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or_default(),
            ddl_ms
        );
    }
    db.drop().await;
}
