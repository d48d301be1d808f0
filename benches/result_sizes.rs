//! How large each tool's result is, as an agent reads it into its context: on Pagila (the
//! real-schema fixture: partitions, views, a materialized view, triggers) with the partitioned
//! `payment` grown to 59 partitions, through the real MCP server and rmcp's client. Prints each
//! result's bytes and tokens (bytes / 4) beside the goal (8,000 tokens; `status` 2,000) and
//! says which are over.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench
//! result_sizes` (`.ci/pg-start` starts a suitable throwaway cluster). Under `cargo test` it
//! does nothing.

use std::sync::Arc;

use drydock::mcp::DrydockServer;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

mod support;
use support::{BenchDb, connect};

/// Monthly partitions added to Pagila's seven, for 59 in all.
const MORE_PARTITIONS: i32 = 52;

async fn seed(url: &str) {
    let mut c = connect(url).await;
    for sql in [
        include_str!("../tests/fixtures/pagila/schema.sql"),
        include_str!("../tests/fixtures/pagila/data.sql"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .expect("pagila");
    }
    let more: String = (0..MORE_PARTITIONS)
        .map(|i| {
            let (y, m) = (2023 + i / 12, 1 + i % 12);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            format!(
                "CREATE TABLE payment_p{y}_{m:02} PARTITION OF payment FOR VALUES FROM ('{y}-{m:02}-01') TO ('{ny}-{nm:02}-01');"
            )
        })
        .collect();
    sqlx::raw_sql(AssertSqlSafe(format!("{more} ANALYZE;")))
        .execute(&mut c)
        .await
        .expect("partitions");
    c.close().await.ok();
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// Calls `tool`; returns the result's text as the agent reads it, and its structured content.
async fn call(client: &Client, tool: &str, args: Value) -> (usize, Value) {
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .expect("call");
    let text: usize = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.len()))
        .sum();
    let structured = r.structured_content.unwrap_or(Value::Null);
    assert_ne!(r.is_error, Some(true), "{tool}({args}): {structured}");
    // DRYDOCK_BENCH_DUMP=DIR keeps each result, to see what makes it large.
    if let Ok(dir) = std::env::var("DRYDOCK_BENCH_DUMP") {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(
            format!("{dir}/{n:02}-{tool}.json"),
            serde_json::to_string_pretty(&structured).unwrap_or_default(),
        )
        .ok();
    }
    (text, structured)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let prod = BenchDb::create("drydock_bench_sizes_prod").await;
    let staging = BenchDb::create("drydock_bench_sizes_staging").await;
    seed(&prod.url).await;
    seed(&staging.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = support::engine(&prod.url, &staging.url, dir.path()).await;
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    let server = DrydockServer::new(Arc::new(engine));
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client: Client = ().serve(client_io).await.expect("client");

    let mut rows: Vec<(String, usize, usize)> = Vec::new();
    let mut measure = |what: &str, bytes: usize, goal: usize| {
        rows.push((what.to_string(), bytes, goal));
    };
    let (n, _) = call(&client, "inspect", json!({"target": "production"})).await;
    measure("inspect (first page of tables)", n, 8_000);
    let (n, _) = call(
        &client,
        "inspect",
        json!({"target": "production", "table": "payment"}),
    )
    .await;
    measure("inspect payment (59 partitions)", n, 8_000);
    let (n, _) = call(
        &client,
        "inspect",
        json!({"target": "production", "table": "film"}),
    )
    .await;
    measure("inspect film (views, triggers, full-text)", n, 8_000);
    let (n, planned) = call(
        &client,
        "plan",
        json!({"goal": "find payments by customer", "target": "production", "template": "add-index",
               "params": {"table": "payment", "columns": ["customer_id", "payment_date"]}}),
    )
    .await;
    measure("plan add-index on payment", n, 8_000);
    let id = planned["plan_id"].as_str().expect("plan_id").to_string();
    let (n, _) = call(&client, "dry-run", json!({"plan_id": id})).await;
    measure("dry-run add-index on payment", n, 8_000);
    let (n, _) = call(&client, "dry-run", json!({"plan_id": id})).await;
    measure("dry-run again", n, 8_000);
    let (n, _) = call(&client, "status", json!({"plan_id": id})).await;
    measure("status after two dry-runs", n, 2_000);
    let (n, planned) = call(
        &client,
        "plan",
        json!({"goal": "film length in seconds", "target": "production", "template": "change-column-type",
               "params": {"table": "film", "column": "length", "new_type": "integer"}}),
    )
    .await;
    measure("plan change-column-type film.length (two views)", n, 8_000);
    let id = planned["plan_id"].as_str().expect("plan_id").to_string();
    let (n, _) = call(&client, "dry-run", json!({"plan_id": id})).await;
    measure("dry-run change-column-type", n, 8_000);
    let (n, _) = call(&client, "status", json!({"plan_id": id})).await;
    measure("status after its dry-run", n, 2_000);
    let (n, _) = call(&client, "status", json!({})).await;
    measure("status (the plan list)", n, 2_000);
    client.cancel().await.ok();

    println!(
        "tool results on Pagila with {} payment partitions, as the agent reads them",
        7 + MORE_PARTITIONS
    );
    println!(
        "{:<50} {:>9} {:>8} {:>8}",
        "result", "bytes", "tokens", "goal"
    );
    let mut over = 0;
    for (what, bytes, goal) in &rows {
        let tokens = bytes / 4;
        let flag = if tokens > *goal {
            over += 1;
            "  OVER"
        } else {
            ""
        };
        println!("{what:<50} {bytes:>9} {tokens:>8} {goal:>8}{flag}");
    }
    println!("{over} of {} results over their goal", rows.len());
    prod.drop().await;
    staging.drop().await;
}
