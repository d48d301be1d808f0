//! The zero-downtime templates on real PostgreSQL: each rendered into a plan with no high or
//! critical hazard on a large table, dry-run, approved, applied step by step through its gates
//! with a writer running, validated and rolled back; and a backfill killed with SIGKILL mid-way
//! that resumes and updates every row exactly once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server::{call, spawn_server};
use common::walk::walk;
use common::{PgProject, pg_connect, plan_id};
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use sqlx::Connection;

#[tokio::test]
async fn add_not_null_column() {
    let p = walk(
        "add-not-null-column",
        json!({"table": "accounts", "column": "tier", "type": "text", "default": "free"}),
    )
    .await;
    assert!(!p.has_column(&p.prod, "accounts", "tier").await);
}

#[tokio::test]
async fn rename_column() {
    let p = walk(
        "rename-column",
        json!({"table": "accounts", "column": "nickname", "new_name": "display_name"}),
    )
    .await;
    assert!(
        p.has_column(&p.prod, "accounts", "nickname").await
            && !p.has_column(&p.prod, "accounts", "display_name").await
    );
}

#[tokio::test]
async fn rename_column_keeps_not_null_and_the_default() {
    let p = walk(
        "rename-column",
        json!({"table": "accounts", "column": "score", "new_name": "points"}),
    )
    .await;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'score' AND is_nullable = 'NO' AND column_default = '0'"
        )
        .await,
        1,
        "NOT NULL and the default survive"
    );
}

#[tokio::test]
async fn change_column_type() {
    let p = walk(
        "change-column-type",
        json!({"table": "accounts", "column": "score", "new_type": "bigint"}),
    )
    .await;
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'score' AND data_type = 'integer'").await,
        1
    );
}

#[tokio::test]
async fn backfill() {
    walk("backfill", json!({"table": "accounts", "set": "email = lower(email)", "where": "email <> lower(email)", "batch_size": 500})).await;
}

#[tokio::test]
async fn add_index() {
    let p = walk(
        "add-index",
        json!({"table": "accounts", "columns": ["email"], "unique": true}),
    )
    .await;
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email_key'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn add_foreign_key() {
    walk("add-foreign-key", json!({"table": "ledger", "columns": ["account_id"], "ref_table": "accounts", "ref_columns": ["id"], "name": "ledger_account_fk2"})).await;
}

#[tokio::test]
async fn add_check_constraint() {
    walk(
        "add-check-constraint",
        json!({"table": "accounts", "name": "balance_non_negative", "expression": "balance >= 0"}),
    )
    .await;
}

#[tokio::test]
async fn hostile_identifiers_are_refused_by_every_template() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let hostile = "users\"; DROP TABLE users; --";
    for (template, params) in [
        (
            "add-not-null-column",
            json!({"table": hostile, "column": "c", "type": "text", "default": 1}),
        ),
        (
            "rename-column",
            json!({"table": "accounts", "column": hostile, "new_name": "x"}),
        ),
        (
            "change-column-type",
            json!({"table": "accounts", "column": "balance", "new_type": "bigint", "using": "1); DROP TABLE accounts; --"}),
        ),
        (
            "backfill",
            json!({"table": "accounts", "set": "balance = 0; DROP TABLE accounts"}),
        ),
        ("add-index", json!({"table": hostile, "columns": ["email"]})),
        (
            "add-foreign-key",
            json!({"table": "ledger", "columns": [hostile], "ref_table": "accounts", "ref_columns": ["id"]}),
        ),
        (
            "add-check-constraint",
            json!({"table": "accounts", "name": hostile, "expression": "true"}),
        ),
    ] {
        let r = c.refused("plan", json!({"goal": "evil", "target": "production", "template": template, "params": params})).await;
        assert_eq!(r["code"], "invalid-template-params", "{template}: {r}");
    }
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts").await,
        20000
    );
    c.close().await;
}

#[tokio::test]
async fn a_backfill_killed_mid_way_resumes_and_updates_every_row_exactly_once() {
    const ROWS: i64 = 200_000;
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        let mut c = pg_connect(db).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE counters (id bigint PRIMARY KEY, hits integer NOT NULL DEFAULT 0);
             INSERT INTO counters (id) SELECT g FROM generate_series(1, {ROWS}) g; ANALYZE counters;"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.ok();
    }
    let (mut child, client) = spawn_server(&p.project.config_path).await;
    let r = call(
        &client,
        "plan",
        json!({"goal": "count a visit", "target": "production", "template": "backfill",
               "params": {"table": "counters", "set": "hits = hits + 1", "batch_size": 2000, "pause_ms": 30}}),
    )
    .await;
    let id = r.structured_content.unwrap()["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(&client, "dry-run", json!({"plan_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    p.project.approve(&id, "alice");

    // apply in the background, kill the server once part of the table is done
    let apply = {
        let client_peer = client.peer().clone();
        let id = id.clone();
        tokio::spawn(async move {
            let _ = client_peer
                .call_tool(
                    CallToolRequestParams::new("apply")
                        .with_arguments(json!({"plan_id": id}).as_object().cloned().unwrap()),
                )
                .await;
        })
    };
    let done_before_kill = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let exists = p.scalar(&p.prod, "SELECT count(*) FROM pg_class WHERE oid = to_regclass('drydock.backfill_progress')").await;
        let done = if exists == 1 {
            p.scalar(
                &p.prod,
                "SELECT coalesce(sum(rows_done), 0)::int8 FROM drydock.backfill_progress",
            )
            .await
        } else {
            0
        };
        if done >= 20_000 {
            done_before_kill.store(done as u64, Ordering::SeqCst);
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    apply.abort();
    drop(client);
    let updated = p
        .scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits = 1")
        .await;
    assert!(
        updated > 0 && updated < ROWS,
        "killed mid-way: {updated} rows updated"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits > 1")
            .await,
        0
    );

    // a new server resumes from the checkpoint
    let (_child, client) = spawn_server(&p.project.config_path).await;
    let r = call(&client, "apply", json!({"plan_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let body = r.structured_content.unwrap();
    assert_eq!(body["status"], "applied", "{body}");
    assert!(body["backfills"][0]["resumed_from"].is_string(), "{body}");
    assert_eq!(body["backfills"][0]["rows"], ROWS);
    assert_eq!(
        body["backfills"][0]["lanes"], 2,
        "walked in two lanes, each resumed from its own checkpoint: {body}"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits = 1")
            .await,
        ROWS
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits <> 1")
            .await,
        0
    );
    assert!(done_before_kill.load(Ordering::SeqCst) >= 20_000);
    let _ = client.cancel().await;
}

#[tokio::test]
async fn a_long_step_outlives_the_tool_call_and_reports_progress() {
    const ROWS: i64 = 100_000;
    let p = PgProject::new("apply_wait = \"1s\"").await;
    for db in [&p.prod, &p.staging] {
        let mut c = pg_connect(db).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE counters (id bigint PRIMARY KEY, hits integer NOT NULL DEFAULT 0);
             INSERT INTO counters (id) SELECT g FROM generate_series(1, {ROWS}) g; ANALYZE counters;"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.ok();
    }
    let c = p.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "count", "target": "production", "template": "backfill",
                   "params": {"table": "counters", "set": "hits = hits + 1", "batch_size": 100, "pause_ms": 200}}),
        )
        .await,
    );
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let t0 = Instant::now();
    let first = c.ok("apply", json!({"plan_id": id})).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "apply returned after policy.apply_wait"
    );
    assert_eq!(first["status"], "applying", "{first}");
    assert!(
        first["message"].as_str().unwrap().contains("background"),
        "{first}"
    );
    // a second apply reports instead of restarting
    let again = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(again["status"], "applying");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut saw_progress = false;
    loop {
        let s = c.ok("status", json!({"plan_id": id})).await;
        if s["running"]["done"].as_u64().is_some_and(|d| d > 0) {
            saw_progress = true;
        }
        if s["status"] == "applied" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background apply did not finish: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        saw_progress,
        "status reported the backfill's progress while it ran"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits = 1")
            .await,
        ROWS
    );
    c.close().await;
}

#[tokio::test]
async fn the_watcher_sees_writers_waiting_on_a_backfill_batch() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        let mut c = pg_connect(db).await;
        sqlx::raw_sql(
            "CREATE TABLE counters (id bigint PRIMARY KEY, hits integer NOT NULL DEFAULT 0);
             INSERT INTO counters (id) SELECT g FROM generate_series(1, 1500) g; ANALYZE counters;",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.ok();
    }
    let c = p.project.connect().await;
    // Each row costs ~2 ms, so a batch (a hundred rows or more) holds its row locks for 200 ms
    // and more: a writer that meets one waits past the watcher's 100 ms on any machine. At
    // 0.5 ms a row the batches took ~95 ms and a fast machine's writers never waited that long.
    let id = p
        .project
        .ready(
            &c,
            json!({"goal": "slow count", "target": "production", "template": "backfill",
                   "params": {"table": "counters", "set": "hits = hits + 1 + (SELECT 0 FROM pg_sleep(0.002 + hits * 0))", "batch_size": 500}}),
        )
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (db, stop) = (p.prod.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = pg_connect(&db).await;
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                sqlx::query("UPDATE counters SET hits = hits WHERE id = $1")
                    .bind(1 + i % 1500)
                    .execute(&mut c)
                    .await
                    .unwrap();
                i += 37;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            c.close().await.ok();
        })
    };
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    stop.store(true, Ordering::SeqCst);
    w.await.unwrap();
    assert_eq!(applied["status"], "applied", "{applied}");
    let report = &applied["backfills"][0];
    assert!(report["blocked_samples"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["final_batch_size"].as_u64().unwrap() < 500,
        "{report}"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE hits = 1")
            .await,
        1500
    );
    c.close().await;
}

#[tokio::test]
async fn an_agents_batch_size_is_the_most_a_batch_takes_and_its_pauses_are_in_the_estimate() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "touch balances", "target": "production", "template": "backfill",
                   "params": {"table": "accounts", "set": "balance = balance + 0", "batch_size": 150, "pause_ms": 2}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    // 20,000 production rows in batches of 150 at most: 134 pauses of 2 ms.
    let estimate = &dry["estimate"];
    assert!(
        estimate["production_ms"].as_f64().unwrap() >= 268.0,
        "{estimate}"
    );
    assert!(
        estimate["basis"].as_str().unwrap().contains("pauses"),
        "{estimate}"
    );
    p.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let report = &applied["backfills"][0];
    assert!(
        report["final_batch_size"].as_u64().unwrap() <= 150,
        "{report}"
    );
    assert!(report["batches"].as_u64().unwrap() >= 134, "{report}");
    c.close().await;
}
