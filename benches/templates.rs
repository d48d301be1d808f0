//! Each data-moving and removal template walked on PostgreSQL under application writers, with the
//! default policy: planned, dry-run on staging, approved, applied through every gate (released),
//! then rolled back. The writers (4 sessions, 200 transactions/s in all, latency from each
//! transaction's scheduled start as `pgbench -R` counts it) update the tables the templates
//! change for the whole apply and rollback. Prints, per template, the writers' p50/p99/max and
//! the walk's wall time.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench templates`
//! (`DRYDOCK_BENCH_ROWS` overrides the 200,000 accounts; `DRYDOCK_BENCH_ONLY=rename-column,…`
//! walks only those; `DRYDOCK_LOG=warn,drydock::phases=info` prints the phases). Under `cargo
//! test` it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drydock::config::Config;
use drydock::engine::{Engine, PlanRequest};
use drydock::identity::{Grant, Principal};
use drydock::plan::{Gate, Urgency};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

mod support;
use support::{BenchDb, connect, paced_writers, percentile};

const WRITERS: usize = 4;
const RATE: f64 = 200.0;

/// The application's tables; `rows` accounts (and as many ledger rows and events).
fn schema(rows: i64) -> String {
    format!(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0,
                                nickname text, score integer NOT NULL DEFAULT 0);
         INSERT INTO accounts (email, balance, nickname, score)
             SELECT 'user' || g || '@example.com', g % 1000, 'n' || g, g % 7 FROM generate_series(1, {rows}) g;
         CREATE TABLE ledger (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), amount integer NOT NULL);
         INSERT INTO ledger (account_id, amount) SELECT g, g % 50 FROM generate_series(1, {rows}) g;
         CREATE INDEX ledger_account ON ledger (account_id);
         CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
         INSERT INTO events (kind, at) SELECT 'k' || g, g FROM generate_series(1, {rows}) g;
         CREATE TABLE events_archive (id bigint PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
         CREATE TABLE audit_old (id bigserial PRIMARY KEY, what text);
         INSERT INTO audit_old (what) SELECT 'w' || g FROM generate_series(1, 1000) g;
         ANALYZE;"
    )
}

/// The templates that move data or remove objects, with what the writers touch while each runs.
fn walks(rows: i64) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "add-not-null-column",
            json!({"table": "accounts", "column": "tier", "type": "text", "default": "free"}),
            "accounts",
        ),
        (
            "change-column-type",
            json!({"table": "accounts", "column": "score", "new_type": "bigint"}),
            "accounts",
        ),
        (
            "rename-column",
            json!({"table": "accounts", "column": "nickname", "new_name": "handle"}),
            "accounts",
        ),
        (
            "backfill",
            json!({"table": "accounts", "set": "email = lower(email)", "where": "email <> lower(email)"}),
            "accounts",
        ),
        (
            "move-data",
            json!({"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"],
                             "where": format!("at <= {}", rows / 2), "delete_source": true}),
            "events",
        ),
        (
            "split-table",
            json!({"table": "accounts", "new_table": "account_profiles", "columns": ["nickname", "score"], "key": "id"}),
            "accounts",
        ),
        ("drop-index", json!({"name": "ledger_account"}), "ledger"),
        (
            "drop-column",
            json!({"table": "accounts", "column": "nickname"}),
            "accounts",
        ),
        ("drop-table", json!({"table": "audit_old"}), "accounts"),
    ]
}

/// What the writers set in the rows they update of `table`.
fn set_of(table: &str) -> &'static str {
    match table {
        "accounts" => "balance = balance + 1",
        "ledger" => "amount = amount + 1",
        _ => "kind = kind",
    }
}

/// Plans, dry-runs and approves `template`; then, under the writers, applies it through every
/// gate and rolls it back (a plan past a final step is left applied).
async fn walk(
    engine: &Arc<Engine>,
    url: &str,
    rows: i64,
    (template, params, table): (&str, Value, &str),
) -> Walked {
    let agent = Principal::person("bench-agent", Grant::Agent);
    let (alice, bob) = (
        Principal::person("alice", Grant::Approver),
        Principal::person("bob", Grant::Approver),
    );
    let planned = engine
        .plan(
            PlanRequest {
                goal: format!("bench {template}"),
                target: "production".into(),
                steps: None,
                template: Some(template.into()),
                params: Some(params),
                checks: vec![],
                urgency: Urgency::Normal,
                supersedes: None,
                desired: None,
            },
            &agent,
        )
        .await
        .unwrap_or_else(|e| panic!("{template}: plan: {e}"));
    let id = planned.plan_id;
    engine
        .dry_run(&id, None, &agent)
        .await
        .unwrap_or_else(|e| panic!("{template}: dry-run: {e}"));
    engine.approve(&id, &alice).await.expect("approve");

    let stop = Arc::new(AtomicBool::new(false));
    let sql = format!("UPDATE {table} SET {} WHERE id = $1", set_of(table));
    let running = paced_writers(url, &sql, rows, (WRITERS, RATE), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let mut outcome = String::from("applied, rolled back");
    for _ in 0..12 {
        let r = engine
            .apply(&id, &agent, None)
            .await
            .unwrap_or_else(|e| panic!("{template}: apply: {e}"));
        let Some(gated) = r.gated else { break };
        if matches!(gated.gate, Some(Gate::After { .. })) {
            // The final steps wait for the rollback window; past one, a rollback cannot bring
            // the data back: the walk stops before it.
            outcome = format!("applied up to `{}`, rolled back", gated.step);
            break;
        }
        engine
            .release(&id, &gated.step, &bob, None)
            .await
            .unwrap_or_else(|e| panic!("{template}: release: {e}"));
    }
    let applied = tokio::time::Instant::now();
    engine
        .rollback(&id, "bench", &agent)
        .await
        .unwrap_or_else(|e| panic!("{template}: rollback: {e}"));
    let wall = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut all, mut during_apply, mut errors) = (Vec::new(), 0.0f64, 0);
    for w in running {
        let (lat, e) = w.await.expect("writer");
        for (at, ms) in lat {
            if at < applied {
                during_apply = during_apply.max(ms);
            }
            all.push(ms);
        }
        errors += e;
    }
    all.sort_by(f64::total_cmp);
    Walked {
        wall,
        during_apply,
        all,
        errors,
        outcome,
    }
}

/// What one walk measured: the writers' latencies (sorted), the worst while the plan was being
/// applied (the rest came during its rollback).
struct Walked {
    wall: f64,
    during_apply: f64,
    all: Vec<f64>,
    errors: u64,
    outcome: String,
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    support::log_phases();
    let only: Vec<String> = std::env::var("DRYDOCK_BENCH_ONLY")
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let rows: i64 = std::env::var("DRYDOCK_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200_000);
    let prod = BenchDb::create("drydock_bench_templates").await;
    let staging = BenchDb::create("drydock_bench_templates_staging").await;
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "templates walked under {WRITERS} writers at {RATE} transactions/s in all on the table each changes ({rows} rows), default policy; latency from each transaction's scheduled start"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}  outcome",
        "template", "walk s", "writes", "p50 ms", "p99 ms", "max ms", "apply max", "errors"
    );
    let mut worst: f64 = 0.0;
    for walk_of in walks(rows)
        .into_iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w.0))
    {
        for (db, n) in [(&prod, rows), (&staging, rows / 10 + 1_000)] {
            let mut c = connect(&db.url).await;
            sqlx::raw_sql(
                "DROP TABLE IF EXISTS accounts, ledger, events, events_archive, audit_old, account_profiles CASCADE;
                 DROP SCHEMA IF EXISTS drydock CASCADE; DROP SCHEMA IF EXISTS drydock_backup CASCADE",
            )
            .execute(&mut c)
            .await
            .expect("reset");
            sqlx::raw_sql(AssertSqlSafe(schema(n)))
                .execute(&mut c)
                .await
                .expect("schema");
        }
        let _ = std::fs::remove_dir_all(dir.path().join(".drydock"));
        let config = format!(
            "[targets.production]\nurl = \"{}\"\nrole = \"production\"\nstaging = \"staging\"\n\n[targets.staging]\nurl = \"{}\"\nrole = \"staging\"\n",
            prod.url, staging.url
        );
        let state = tempfile::tempdir_in(dir.path()).expect("state dir");
        let engine = Arc::new(
            Engine::open(Config::parse(&config, state.path(), None).expect("config"))
                .await
                .expect("engine"),
        );
        let template = walk_of.0;
        let w = walk(&engine, &prod.url, rows, walk_of).await;
        let lat = &w.all;
        worst = worst.max(lat.last().copied().unwrap_or_default());
        println!(
            "{template:<22} {:>8.2} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>10.1} {:>7}  {}",
            w.wall,
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            lat.last().copied().unwrap_or_default(),
            w.during_apply,
            w.errors,
            w.outcome,
        );
    }
    println!("writers' worst latency through every template: {worst:.1} ms (goal ≤ 250 ms)");
    prod.drop().await;
    staging.drop().await;
}
