//! What a dry-run costs on a 300,000-row table: a one-step plan (one rolled-back pass), a
//! two-step plan with `CREATE INDEX CONCURRENTLY` (the pass, then the rehearsal that runs the
//! steps as apply will and undoes them), and a template with a backfill of every row. Prints the
//! median and the fastest of a few dry-runs of each, with what the plan's SQL alone costs.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench dry_run`
//! (`.ci/pg-start` starts a suitable throwaway cluster). Under `cargo test` it does nothing.

use std::time::Instant;

use drydock::engine::PlanRequest;
use drydock::identity::{Grant, Principal};
use drydock::plan::{Step, Urgency};
use sqlx::{AssertSqlSafe, Connection};

mod support;
use support::{BenchDb, connect, percentile};

const ROWS: i64 = 300_000;

/// What is dry-run: a name, its steps or its template's params, and its SQL by hand (up, down).
type Case<'a> = (
    &'a str,
    Vec<Step>,
    Option<serde_json::Value>,
    Vec<(&'a str, &'a str)>,
);
const RUNS: usize = 5;

async fn seed(url: &str) {
    let mut c = connect(url).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE bench_accounts (id bigint PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL DEFAULT 0);
         INSERT INTO bench_accounts SELECT g, 'user' || g || '@example.com', g % 1000 FROM generate_series(1, {ROWS}) g;
         ANALYZE bench_accounts;"
    )))
    .execute(&mut c)
    .await
    .expect("seed");
    c.close().await.ok();
}

fn step(name: &str, up: &str, down: &str) -> Step {
    serde_json::from_value(serde_json::json!({"name": name, "up": up, "down": down})).expect("step")
}

/// The plan's SQL run by hand on `url` (up then down), in ms.
async fn by_hand(url: &str, sql: &[(&str, &str)]) -> f64 {
    let mut c = connect(url).await;
    let t0 = Instant::now();
    for (up, _) in sql {
        sqlx::raw_sql(AssertSqlSafe(up.to_string()))
            .execute(&mut c)
            .await
            .expect("up by hand");
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    for (_, down) in sql.iter().rev() {
        sqlx::raw_sql(AssertSqlSafe(down.to_string()))
            .execute(&mut c)
            .await
            .expect("down by hand");
    }
    c.close().await.ok();
    ms
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let prod = BenchDb::create("drydock_bench_dry_prod").await;
    let staging = BenchDb::create("drydock_bench_dry_staging").await;
    seed(&prod.url).await;
    seed(&staging.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::engine(&prod.url, &staging.url, dir.path()).await;
    let agent = Principal::person("bench-agent", Grant::Agent);

    println!(
        "dry-run of plans on a {ROWS}-row table (staging as large as production), {RUNS} runs each"
    );
    println!(
        "{:<58} {:>10} {:>10} {:>10} {:>10}",
        "plan", "rehearsed", "median ms", "min ms", "SQL ms"
    );
    let add = (
        "ALTER TABLE bench_accounts ADD COLUMN tier text",
        "ALTER TABLE bench_accounts DROP COLUMN tier",
    );
    let index = (
        "CREATE INDEX CONCURRENTLY bench_accounts_email ON bench_accounts (email)",
        "DROP INDEX CONCURRENTLY bench_accounts_email",
    );
    let cases: Vec<Case> = vec![
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
        (
            "add-not-null-column template (backfill of every row)",
            vec![],
            Some(
                serde_json::json!({"table": "bench_accounts", "column": "tier", "type": "text", "default": "free"}),
            ),
            vec![],
        ),
    ];
    for (what, steps, params, sql) in cases {
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
        let alone = if sql.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", by_hand(&staging.url, &sql).await)
        };
        println!(
            "{what:<58} {rehearsed:>10} {:>10.1} {:>10.1} {alone:>10}",
            percentile(&times, 0.5),
            times[0]
        );
    }
    drop(engine);
    prod.drop().await;
    staging.drop().await;
}
