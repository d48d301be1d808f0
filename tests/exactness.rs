//! Data moved exactly right under concurrent writes: the templates that keep two tables in step
//! (`merge-tables`, `split-table`, `move-data`) walked on real PostgreSQL with the application
//! inserting, updating and deleting on both sides while their copy runs; afterwards every key is
//! compared.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::walk::{run_sql, shape};
use common::{PgProject, pg_connect, plan_id};
use serde_json::{Value, json};
use sqlx::Connection;

/// Loops `statements` (each its own transaction, one after another on one connection) until
/// stopped; counts the rounds and the errors.
fn writer(
    db: String,
    statements: &'static [&'static str],
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut c = pg_connect(&db).await;
        let mut rounds = 0;
        while !stop.load(Ordering::SeqCst) {
            for sql in statements {
                if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&mut c)
                    .await
                {
                    eprintln!("writer: {sql}: {e}");
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            }
            rounds += 1;
        }
        c.close().await.ok();
        rounds
    })
}

/// Plans `template`, dry-runs and approves it, then applies it with `writers` running until the
/// apply stops at the gate of step `stop_at`; the writers stop there (each having run at least
/// a few rounds). Returns the project's client and the plan id.
async fn apply_under_writers(
    p: &PgProject,
    template: &str,
    params: Value,
    writers: &[&'static [&'static str]],
    stop_at: &str,
) -> (common::Client, String) {
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": template, "target": "production", "template": template, "params": params}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{template}: {dry}");
    p.project.approve(&id, "alice");
    let (stop, errors) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let running: Vec<_> = writers
        .iter()
        .map(|w| writer(p.prod.clone(), w, stop.clone(), errors.clone()))
        .collect();
    // The writers are at work before the first step runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..8 {
        let r = c.ok("apply", json!({"plan_id": id})).await;
        let gated = r["gated"]["step"]
            .as_str()
            .unwrap_or_else(|| panic!("{template}: not gated: {r}"))
            .to_string();
        if gated == stop_at {
            break;
        }
        let out = p.project.cli(&["release", &id, &gated, "--by", "bob"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in running {
        let rounds = w.await.unwrap();
        assert!(rounds >= 3, "{template}: a writer ran only {rounds} rounds");
    }
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "{template}: the writers saw errors"
    );
    (c, id)
}

/// Releases `step` and applies the rest of the plan.
async fn finish(p: &PgProject, c: &common::Client, id: &str, step: &str) {
    let out = p.project.cli(&["release", id, step, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = c.ok("apply", json!({"plan_id": id})).await;
    assert!(
        r["status"] == "applied" || r["gated"]["gate"]["kind"] == "after",
        "{r}"
    );
}

async fn rolled_back(
    p: &PgProject,
    c: common::Client,
    id: &str,
    tables: &[&str],
    before: &[String],
) {
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "exactness trial"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(shape(&p.prod, tables).await, before);
    c.close().await;
}

/// The merged-into table runs a slow row trigger, so that each batch of the fill is long enough
/// for the writers to change rows ahead of it.
const FLAGS: &str = "CREATE TABLE account_flags (id bigint PRIMARY KEY, vip boolean NOT NULL, note text);
    INSERT INTO account_flags SELECT id, id % 2 = 0, 'note ' || id FROM accounts WHERE id % 3 = 0;
    CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.0002); RETURN NEW; END $$;
    CREATE TRIGGER slow BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION slow();
    ANALYZE";

/// Both tables written: the merged-away table's rows updated, deleted and inserted (paired and
/// not), the merged-into table's rows updated, and new pairs whose merged-away row comes first.
const MERGE_WRITERS: &[&[&str]] = &[
    &[
        "UPDATE account_flags SET note = md5(random()::text), vip = NOT vip WHERE id = 3 * (1 + floor(random() * 6666))::bigint",
    ],
    &[
        "UPDATE account_flags SET note = md5(random()::text) WHERE id = 3 * (1 + floor(random() * 6666))::bigint",
    ],
    &[
        "DELETE FROM account_flags WHERE id = 3 * (1 + floor(random() * 6666))::bigint",
        "INSERT INTO account_flags VALUES (3 * floor(random() * 6666)::bigint + 1, true, 'late') ON CONFLICT (id) DO UPDATE SET note = 'late again'",
    ],
    &[
        "UPDATE accounts SET balance = balance + 1 WHERE id = 1 + floor(random() * 20000)::bigint",
        "INSERT INTO account_flags SELECT last_value + 1, false, 'first' FROM accounts_id_seq ON CONFLICT DO NOTHING",
        "INSERT INTO accounts (email) VALUES (md5(random()::text) || '@example.com')",
    ],
];

#[tokio::test]
async fn merge_tables_under_writers_on_both_tables_leaves_every_key_with_its_newest_values() {
    let p = PgProject::new("large_table_rows = 1000").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, FLAGS).await;
    }
    let tables = ["accounts", "account_flags"];
    let before = shape(&p.prod, &tables).await;
    let params = json!({"table": "accounts", "from_table": "account_flags", "columns": ["vip", "note"], "key": "id"});
    let (c, id) = apply_under_writers(&p, "merge-tables", params, MERGE_WRITERS, "switched").await;
    let stale = p
        .scalar(
            &p.prod,
            "SELECT count(*) FROM accounts a LEFT JOIN account_flags f USING (id)
              WHERE a.vip IS DISTINCT FROM f.vip OR a.note IS DISTINCT FROM f.note",
        )
        .await;
    assert_eq!(stale, 0, "keys whose merged values are not their newest");
    assert!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts a JOIN account_flags f USING (id) WHERE f.note = 'first'"
        )
        .await
            > 0,
        "the writers made pairs whose merged-away row came first"
    );
    rolled_back(&p, c, &id, &tables, &before).await;
}

const PROFILES: &str = "UPDATE accounts SET nickname = 'n' || id, score = id % 7;
    CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.0002); RETURN NEW; END $$;
    CREATE TRIGGER slow BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION slow();
    ANALYZE";

/// The split table's rows updated, inserted and deleted while the copy runs.
const SPLIT_WRITERS: &[&[&str]] = &[
    &["UPDATE accounts SET nickname = md5(random()::text), score = score + 1 WHERE id = 1 + floor(random() * 20000)::bigint"],
    &["UPDATE accounts SET score = score - 1 WHERE id = 1 + floor(random() * 20000)::bigint"],
    &[
        "WITH gone AS (SELECT 1 + floor(random() * 20000)::bigint AS id), l AS (DELETE FROM ledger WHERE account_id = (SELECT id FROM gone))
         DELETE FROM accounts WHERE id = (SELECT id FROM gone)",
        "INSERT INTO accounts (email, nickname, score) VALUES (md5(random()::text) || '@example.com', 'new', 1)",
    ],
];

#[tokio::test]
async fn split_table_under_writers_leaves_the_new_table_exactly_in_step() {
    let p = PgProject::new("large_table_rows = 1000").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, PROFILES).await;
    }
    let tables = ["accounts"];
    let before = shape(&p.prod, &tables).await;
    let params = json!({"table": "accounts", "new_table": "account_profiles", "columns": ["nickname", "score"], "key": "id"});
    let (c, id) = apply_under_writers(&p, "split-table", params, SPLIT_WRITERS, "switched").await;
    let wrong = p
        .scalar(
            &p.prod,
            "SELECT count(*) FROM accounts a FULL JOIN account_profiles s USING (id)
              WHERE a.id IS NULL OR s.id IS NULL OR a.nickname IS DISTINCT FROM s.nickname OR a.score IS DISTINCT FROM s.score",
        )
        .await;
    assert_eq!(
        wrong, 0,
        "keys missing, resurrected or stale in the new table"
    );
    rolled_back(&p, c, &id, &tables, &before).await;
}

const EVENTS: &str = "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
    INSERT INTO events (kind, at) SELECT 'k' || g, g FROM generate_series(1, 20000) g;
    CREATE TABLE events_archive (id bigint PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
    CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.0002); RETURN NEW; END $$;
    CREATE TRIGGER slow BEFORE INSERT ON events_archive FOR EACH ROW EXECUTE FUNCTION slow();
    ANALYZE";

/// The moved rows updated and deleted while they are copied.
const MOVE_WRITERS: &[&[&str]] = &[
    &[
        "UPDATE events SET kind = md5(random()::text) WHERE id = 1 + floor(random() * 12000)::bigint",
    ],
    &[
        "UPDATE events SET kind = md5(random()::text) WHERE id = 1 + floor(random() * 12000)::bigint",
        "DELETE FROM events WHERE id = 1 + floor(random() * 12000)::bigint",
    ],
];

#[tokio::test]
async fn move_data_under_writers_moves_every_row_with_its_newest_values() {
    let p = PgProject::new("large_table_rows = 1000").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, EVENTS).await;
    }
    let tables = ["events", "events_archive"];
    let before = shape(&p.prod, &tables).await;
    let params = json!({"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"],
                        "where": "at <= 10000", "delete_source": true});
    let (c, id) = apply_under_writers(&p, "move-data", params, MOVE_WRITERS, "switched").await;
    // The application has stopped writing the moved rows: what they hold now is what must be moved.
    run_sql(&p.prod, "CREATE TABLE expected AS SELECT * FROM events").await;
    finish(&p, &c, &id, "switched").await;
    let mut conn = pg_connect(&p.prod).await;
    let (missing, left, extra): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM expected e WHERE e.at <= 10000 AND NOT EXISTS
                    (SELECT 1 FROM events_archive a WHERE a.id = e.id AND a.kind = e.kind AND a.at = e.at)),
                (SELECT count(*) FROM events WHERE at <= 10000),
                (SELECT count(*) FROM events_archive a WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE e.id = a.id))",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    assert_eq!(
        (missing, left, extra),
        (0, 0, 0),
        "(rows not moved as they were last written, rows left, rows resurrected)"
    );
    run_sql(&p.prod, "DROP TABLE expected").await;
    rolled_back(&p, c, &id, &tables, &before).await;
}

/// Plans `tier`-then-slow on production through a server, approves it and applies it; the
/// server is killed once production has the first step (the second still running): staging
/// never got the first step's sync. Returns the plan id.
async fn apply_killed_after_first_step(p: &PgProject, column: &str) -> String {
    use common::server::{call, spawn_server};
    let (mut child, client) = spawn_server(&p.project.config_path).await;
    let planned = call(
        &client,
        "plan",
        json!({"goal": "a column, then a slow step", "target": "production", "steps": [
            {"name": "add", "up": format!("ALTER TABLE accounts ADD COLUMN {column} text"), "down": format!("ALTER TABLE accounts DROP COLUMN {column}")},
            {"name": "slow", "up": "SELECT pg_sleep(3)", "down": "SELECT 1"}]}),
    )
    .await;
    let id = plan_id(&planned.structured_content.unwrap());
    let dry = call(&client, "dry-run", json!({"plan_id": id})).await;
    assert_ne!(dry.is_error, Some(true), "{dry:?}");
    p.project.approve(&id, "alice");
    let args = json!({"plan_id": id});
    let task = tokio::spawn(async move {
        let _ = call(&client, "apply", args).await;
        drop(client);
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !p.has_column(&p.prod, "accounts", column).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the first step never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().ok();
    child.wait().await.ok();
    task.abort();
    assert!(!p.has_column(&p.staging, "accounts", column).await);
    id
}

/// Calls `tool` until the dead server's session has let go of the target's lock.
async fn once_free(c: &common::Client, tool: &str, args: Value) -> Value {
    for _ in 0..50 {
        let r = c.call(tool, args.clone()).await;
        if r.is_error != Some(true) {
            return r.structured_content.unwrap();
        }
        let body = common::refusal_body(&r);
        assert_eq!(body["code"], "target-busy", "{tool}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{tool}: the target stayed busy");
}

#[tokio::test]
async fn staging_catches_up_with_a_production_apply_killed_between_steps() {
    let p = PgProject::new("").await;
    let staged = "SELECT count(*) FROM drydock.history WHERE rolled_back_at IS NULL";

    // Resumed: the apply that finishes the plan brings staging the steps the killed one left out.
    let resumed = apply_killed_after_first_step(&p, "tier").await;
    let c = p.project.connect().await;
    let r = once_free(&c, "apply", json!({"plan_id": resumed})).await;
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(r["staging_sync"]["in_background"], true, "{r}");
    let synced = c.staging_synced(&resumed).await;
    assert_eq!(synced["ok"], true, "{synced}");
    assert_eq!(
        synced["detail"]["steps"],
        json!(["add", "slow"]),
        "{synced}"
    );
    assert!(p.has_column(&p.staging, "accounts", "tier").await);
    assert_eq!(p.scalar(&p.staging, staged).await, 2);

    // Never resumed: the next dry-run on those tables brings staging in step first, says so,
    // and is not refused as drift.
    let left = apply_killed_after_first_step(&p, "region").await;
    let next = c
        .ok("plan", json!({"goal": "another column", "target": "production", "steps": [
            {"name": "x", "up": "ALTER TABLE accounts ADD COLUMN nickname2 text", "down": "ALTER TABLE accounts DROP COLUMN nickname2"}]}))
        .await;
    let dry = once_free(&c, "dry-run", json!({"plan_id": plan_id(&next)})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    assert!(
        dry["warnings"]
            .to_string()
            .contains("was behind production"),
        "{dry}"
    );
    assert!(p.has_column(&p.staging, "accounts", "region").await);
    assert_eq!(p.scalar(&p.staging, staged).await, 3);
    // The interrupted plan itself, resumed later, runs only what staging still lacks.
    once_free(&c, "apply", json!({"plan_id": left})).await;
    let synced = c.staging_synced(&left).await;
    assert_eq!(synced["detail"]["steps"], json!(["slow"]), "{synced}");
    c.close().await;
}
