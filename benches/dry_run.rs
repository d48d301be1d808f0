//! What a dry-run costs on a 300,000-row and a 3,000,000-row table: a one-step plan (one
//! rolled-back pass), a two-step plan with `CREATE INDEX CONCURRENTLY` (the pass, then the
//! rehearsal that runs the steps as apply will and undoes them), and (on the smaller table) a
//! template with a backfill of every row. Prints the median and the fastest of a few dry-runs of
//! each beside the plan's inherent work — its SQL run by hand, up, down and up again (what the
//! dry-run runs) — with the overhead (median − inherent) and the ratio. Goal: overhead ≤ 20 ms
//! and ratio ≤ 1.15× at both sizes.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench dry_run`
//! (`.ci/pg-start` starts a suitable throwaway cluster; `DRYDOCK_BENCH_ONLY=ADD` runs only the
//! plans whose name starts so; `DRYDOCK_BENCH_ROWS=300000,3000000`
//! chooses the sizes). Under `cargo test` it does nothing.

use std::time::Instant;

use drydock::engine::PlanRequest;
use drydock::identity::{Grant, Principal};
use drydock::plan::{Step, Urgency};
use sqlx::{AssertSqlSafe, Connection};

mod support;
use support::{BenchDb, connect, percentile};

/// What is dry-run: a name, its steps or its template's params, and its SQL by hand (up, down).
type Case<'a> = (
    &'a str,
    Vec<Step>,
    Option<serde_json::Value>,
    Vec<(&'a str, &'a str)>,
);
const RUNS: usize = 5;

async fn seed(url: &str, rows: i64) {
    let mut c = connect(url).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE bench_accounts (id bigint PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL DEFAULT 0);
         INSERT INTO bench_accounts SELECT g, 'user' || g || '@example.com', g % 1000 FROM generate_series(1, {rows}) g;"
    )))
    .execute(&mut c)
    .await
    .expect("seed");
    // Visibility map set, as a table that has lived has it: an index build reads it.
    sqlx::raw_sql("VACUUM ANALYZE bench_accounts")
        .execute(&mut c)
        .await
        .expect("vacuum");
    c.close().await.ok();
}

fn step(name: &str, up: &str, down: &str) -> Step {
    serde_json::from_value(serde_json::json!({"name": name, "up": up, "down": down})).expect("step")
}

/// The plan's inherent work on `url`, in ms: its SQL run by hand as the dry-run runs it — up,
/// down, and up again — then put back.
async fn by_hand(url: &str, sql: &[(&str, &str)]) -> f64 {
    let mut c = connect(url).await;
    let run = async |c: &mut sqlx::PgConnection, statement: &str| {
        sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
            .execute(&mut *c)
            .await
            .expect("SQL by hand");
    };
    let t0 = Instant::now();
    for (up, _) in sql {
        run(&mut c, up).await;
    }
    for (_, down) in sql.iter().rev() {
        run(&mut c, down).await;
    }
    for (up, _) in sql {
        run(&mut c, up).await;
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    for (_, down) in sql.iter().rev() {
        run(&mut c, down).await;
    }
    c.close().await.ok();
    ms
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    support::log_phases();
    let sizes: Vec<i64> = std::env::var("DRYDOCK_BENCH_ROWS")
        .unwrap_or_else(|_| "300000,3000000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("DRYDOCK_BENCH_ROWS: row counts"))
        .collect();
    println!(
        "{:<58} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "plan", "rehearsed", "median ms", "min ms", "SQL ms", "over ms", "ratio"
    );
    for (i, rows) in sizes.iter().enumerate() {
        bench_size(*rows, i == 0).await;
    }
    println!(
        "goal: overhead ≤ 20 ms and ratio ≤ 1.15× (SQL ms: the plan's SQL by hand, up + down + up)"
    );
}

async fn bench_size(rows: i64, with_template: bool) {
    let prod = BenchDb::create(&format!("drydock_bench_dry_prod_{rows}")).await;
    let staging = BenchDb::create(&format!("drydock_bench_dry_staging_{rows}")).await;
    seed(&prod.url, rows).await;
    seed(&staging.url, rows).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::engine(&prod.url, &staging.url, dir.path()).await;
    let agent = Principal::person("bench-agent", Grant::Agent);
    println!("{rows} rows (staging as large as production), {RUNS} dry-runs each");
    let add = (
        "ALTER TABLE bench_accounts ADD COLUMN tier text",
        "ALTER TABLE bench_accounts DROP COLUMN tier",
    );
    let index = (
        "CREATE INDEX CONCURRENTLY bench_accounts_email ON bench_accounts (email)",
        "DROP INDEX CONCURRENTLY bench_accounts_email",
    );
    let mut cases: Vec<Case> = vec![
        (
            "ADD COLUMN (one step)",
            vec![step("add", add.0, add.1)],
            None,
            vec![add],
        ),
        (
            "ADD COLUMN; CREATE INDEX CONCURRENTLY (two steps)",
            vec![step("add", add.0, add.1), step("index", index.0, index.1)],
            None,
            vec![add, index],
        ),
    ];
    if with_template {
        cases.push((
            "add-not-null-column template (backfill of every row)",
            vec![],
            Some(
                serde_json::json!({"table": "bench_accounts", "column": "tier", "type": "text", "default": "free"}),
            ),
            vec![],
        ));
    }
    let only = std::env::var("DRYDOCK_BENCH_ONLY").unwrap_or_default();
    for (what, steps, params, sql) in cases {
        if !only.is_empty() && !what.starts_with(only.as_str()) {
            continue;
        }
        let mut times = Vec::new();
        let mut rehearsed = false;
        for run in 0..RUNS {
            let planned = engine
                .plan(
                    PlanRequest {
                        goal: format!("bench {what} {run}"),
                        target: "production".into(),
                        steps: (!steps.is_empty()).then(|| steps.clone()),
                        template: params.as_ref().map(|_| "add-not-null-column".into()),
                        params: params.clone(),
                        checks: vec![],
                        urgency: Urgency::Normal,
                        supersedes: None,
                        desired: None,
                    },
                    &agent,
                )
                .await
                .expect("plan");
            let t0 = Instant::now();
            let report = engine
                .dry_run(&planned.plan_id, None, &agent)
                .await
                .expect("dry-run");
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            rehearsed = report.rehearsed;
        }
        times.sort_by(f64::total_cmp);
        let median = percentile(&times, 0.5);
        let (alone, over, ratio) = if sql.is_empty() {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            let raw = by_hand(&staging.url, &sql).await;
            (
                format!("{raw:.1}"),
                format!("{:.1}", median - raw),
                format!("{:.2}", median / raw),
            )
        };
        println!(
            "{what:<58} {rehearsed:>9} {median:>10.1} {:>10.1} {alone:>10} {over:>10} {ratio:>8}",
            times[0]
        );
    }
    drop(engine);
    prod.drop().await;
    staging.drop().await;
}
