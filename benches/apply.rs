//! The whole apply of a backfill as an agent and an engineer wait for it: `apply` called over MCP
//! on the real `drydock serve` process (rmcp's client over stdio) until `status` says applied —
//! the checklist, the backup, the pre-apply reads, the backfill's lanes and VACUUMs, the history
//! and the staging sync — against one `UPDATE` of the same column on an identical copy of the
//! table, in the same run, both under the same application writers.
//!
//! The writers run at a fixed rate (4 sessions, 200 transactions/s in all), each transaction's
//! latency counted from its scheduled start as `pgbench -R` does: a writer held up by a lock is
//! late for every transaction it could not start on time, not only the one that waited.
//!
//! Prints, per run and rows: wall time of each and their ratio, heap growth of each, the writers'
//! p50/p99/max, and where the apply's time went (the server's `drydock::phases` on stderr); then
//! min–median–max of the ratios over the runs.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench apply`
//! (`DRYDOCK_BENCH_ROWS` overrides the rows, default `2000000,5000000`; `DRYDOCK_BENCH_RUNS` the
//! 5 runs). Under `cargo test` it does nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drydock::config::Config;
use drydock::engine::Engine;
use drydock::identity::{Grant, Principal};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

mod support;
use support::{BenchDb, connect, paced_writers, percentile};

const WRITERS: usize = 4;
/// Transactions per second of all the writers together.
const RATE: f64 = 200.0;

/// The production's real backups, as `[backup] command` reports them (a table of millions of
/// rows is above `policy.snapshot_max_rows`, so drydock verifies the real backups instead of
/// copying the table): a backup that finished now, restore-tested.
const BACKUP: &str =
    r#"printf '{"finished_at": "%s", "restore_tested": true}' "$(date -u +%Y-%m-%dT%H:%M:%SZ)""#;

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn sql(url: &str, text: &str) {
    let mut c = connect(url).await;
    sqlx::raw_sql(AssertSqlSafe(text.to_string()))
        .execute(&mut c)
        .await
        .expect("bench SQL");
    c.close().await.ok();
}

async fn heap(c: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar("SELECT pg_relation_size($1::regclass)")
        .bind(table)
        .fetch_one(c)
        .await
        .expect("size")
}

/// `bench_orders` (the plan's) and, with `copy`, `bench_copy` (the UPDATE's): identical,
/// freshly vacuumed.
async fn tables(url: &str, rows: i64, copy: bool) {
    for t in ["bench_orders", "bench_copy"]
        .iter()
        .take(1 + copy as usize)
    {
        sql(
            url,
            &format!(
                "DROP TABLE IF EXISTS {t};
                 CREATE TABLE {t} (id bigint PRIMARY KEY, amount integer NOT NULL, cents bigint);
                 INSERT INTO {t} SELECT g, g % 1000 FROM generate_series(1, {rows}) g;"
            ),
        )
        .await;
        sql(url, &format!("VACUUM ANALYZE {t}")).await;
    }
}

/// Runs `work` under the writers on `table`; its wall time, the writers' sorted latencies and
/// what it returned.
async fn under_writers<T, F: std::future::Future<Output = T>>(
    url: &str,
    table: &str,
    rows: i64,
    work: F,
) -> (f64, Vec<f64>, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let sql = format!("UPDATE {table} SET amount = amount + 1 WHERE id = $1");
    let running = paced_writers(url, &sql, rows, (WRITERS, RATE), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let outcome = work.await;
    let wall = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for w in running {
        let (lat, errors) = w.await.expect("writer");
        assert_eq!(errors, 0, "a writer's update failed");
        all.extend(lat.into_iter().map(|(_, ms)| ms));
    }
    all.sort_by(f64::total_cmp);
    (wall, all, outcome)
}

async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .expect("tool call");
    let body = r.structured_content.unwrap_or_default();
    assert_ne!(r.is_error, Some(true), "{tool} failed: {body}");
    body
}

/// `apply` over MCP, then `status` until the plan is applied and its apply has ended.
async fn apply(client: &Client, id: &str) -> String {
    let mut answer = call(client, "apply", json!({"plan_id": id})).await;
    while answer["status"] != "applied" || answer.get("running").is_some() {
        assert!(
            matches!(answer["status"].as_str(), Some("applying" | "applied")),
            "apply: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = call(client, "status", json!({"plan_id": id})).await;
    }
    "applied".into()
}

/// The phases the server said since the last call (lines of its stderr from `offset` on), summed
/// by name.
fn phases(log: &std::path::Path, offset: &mut usize) -> BTreeMap<String, (f64, usize)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let fresh = &text[(*offset).min(text.len())..];
    *offset = text.len();
    let mut out: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for line in fresh.lines().filter(|l| l.contains("drydock::phases")) {
        let field = |name: &str| {
            line.split(&format!(" {name}="))
                .nth(1)
                .map(|r| r.split(' ').next().unwrap_or_default().to_string())
        };
        let (Some(phase), Some(ms)) = (
            line.split("phase=").nth(1).map(|r| {
                r.split(" ms=")
                    .next()
                    .unwrap_or_default()
                    .split(" count=")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            }),
            field("ms").and_then(|m| m.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let count = field("count").and_then(|c| c.parse().ok()).unwrap_or(1);
        let e = out.entry(phase).or_default();
        e.0 += ms;
        e.1 += count;
    }
    out
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn writers_line(lat: &[f64]) -> String {
    format!(
        "{:>6} writes, p50 {:>6.1} ms, p99 {:>7.1} ms, max {:>7.1} ms",
        lat.len(),
        percentile(lat, 0.50),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or_default()
    )
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<i64> = env_or("DRYDOCK_BENCH_ROWS", "2000000,5000000")
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("DRYDOCK_BENCH_ROWS: rows, comma-separated")
        })
        .collect();
    let runs: usize = env_or("DRYDOCK_BENCH_RUNS", "5")
        .parse()
        .expect("DRYDOCK_BENCH_RUNS");
    let mut prod = BenchDb::create("drydock_bench_apply").await;
    let staging = BenchDb::create("drydock_bench_apply_staging").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("drydock.toml");
    std::fs::write(
        &config_path,
        format!(
            "[targets.production]\nurl = \"{}\"\nrole = \"production\"\nstaging = \"staging\"\n\n[targets.staging]\nurl = \"{}\"\nrole = \"staging\"\n\n[backup]\ncommand = '''{BACKUP}'''\n",
            prod.url, staging.url
        ),
    )
    .expect("config");
    let log = dir.path().join("server.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("DRYDOCK_LOG", "warn,drydock::phases=info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("drydock serves");
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client: Client = ().serve((stdout, stdin)).await.expect("MCP over stdio");
    // Approvals come from a person, here through the library on the same state store.
    let engine = Engine::open(Config::load(&config_path).expect("config"))
        .await
        .expect("engine");
    let alice = Principal::person("alice", Grant::Approver);
    let mut offset = 0;

    println!(
        "apply of a backfill `cents = amount * 100` over MCP (until status says applied) against one UPDATE of the same column on an identical copy; {WRITERS} writers at {RATE} transactions/s in all, latency from each one's scheduled start"
    );
    let mut summary = Vec::new();
    for rows in sizes {
        let mut ratios = Vec::new();
        let mut heaps = Vec::new();
        for run in 1..=runs {
            tables(&prod.url, rows, true).await;
            // Staging as small as a representative one may be (policy.min_staging_ratio).
            tables(&staging.url, rows / 10 + 1_000, false).await;
            prod.checkpoint().await;
            let planned = call(
                &client,
                "plan",
                json!({"goal": "cents from amount", "target": "production",
                       "steps": [{"name": "cents", "backfill": {"table": "bench_orders",
                                  "set": "cents = amount * 100", "where": "cents IS NULL"}}]}),
            )
            .await;
            let id = planned["plan_id"].as_str().expect("plan id").to_string();
            call(&client, "dry-run", json!({"plan_id": id})).await;
            engine.approve(&id, &alice).await.expect("approve");
            phases(&log, &mut offset);

            let mut c = connect(&prod.url).await;
            let before = heap(&mut c, "bench_copy").await;
            let (update, update_lat, _) = under_writers(&prod.url, "bench_copy", rows, async {
                sqlx::raw_sql("UPDATE bench_copy SET cents = amount * 100")
                    .execute(&mut connect(&prod.url).await)
                    .await
                    .expect("update")
            })
            .await;
            let update_heap = heap(&mut c, "bench_copy").await as f64 / before as f64;
            prod.checkpoint().await;

            let before = heap(&mut c, "bench_orders").await;
            let (wall, apply_lat, _) =
                under_writers(&prod.url, "bench_orders", rows, apply(&client, &id)).await;
            let apply_heap = heap(&mut c, "bench_orders").await as f64 / before as f64;
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM bench_orders WHERE cents IS NULL")
                    .fetch_one(&mut c)
                    .await
                    .expect("count");
            assert_eq!(done, 0, "rows the apply left");
            c.close().await.ok();
            let spent = phases(&log, &mut offset);

            println!("{rows} rows, run {run}:");
            println!(
                "  one UPDATE   {update:>7.2} s  heap x{update_heap:.2}  writers {}",
                writers_line(&update_lat)
            );
            println!(
                "  drydock apply{wall:>7.2} s  heap x{apply_heap:.2}  writers {}",
                writers_line(&apply_lat)
            );
            println!(
                "  apply / UPDATE = {:.2}x; the apply's phases:",
                wall / update
            );
            for (phase, (ms, count)) in &spent {
                let times = if *count > 1 {
                    format!(" ({count}×)")
                } else {
                    String::new()
                };
                println!("    {phase:<20} {ms:>9.1} ms{times}");
            }
            ratios.push(wall / update);
            heaps.push(apply_heap);
        }
        summary.push((rows, ratios, heaps));
    }
    for (rows, mut ratios, mut heaps) in summary {
        ratios.sort_by(f64::total_cmp);
        heaps.sort_by(f64::total_cmp);
        let mmm = |v: &[f64]| format!("{:.2}–{:.2}–{:.2}", v[0], v[v.len() / 2], v[v.len() - 1]);
        println!(
            "{rows} rows over {} runs: apply / UPDATE min–median–max {}x; apply heap {}x",
            ratios.len(),
            mmm(&ratios),
            mmm(&heaps)
        );
    }
    client.cancel().await.ok();
    child.kill().await.ok();
    prod.drop().await;
    staging.drop().await;
}
