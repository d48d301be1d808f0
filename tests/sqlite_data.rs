//! Backfills on SQLite, the embedded default: keyset batches with the checkpoint in each batch's
//! transaction, exactly once across a SIGKILL, rolled back to the values they overwrote; and the
//! data-moving template on the same engine, gates and rollback included.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{call, spawn_server};
use common::{Project, plan_id};
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection};

async fn sqlite(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap()
}

async fn run(path: &Path, sql: &str) {
    let mut c = sqlite(path).await;
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
}

async fn scalar(path: &Path, sql: &str) -> i64 {
    let mut c = sqlite(path).await;
    let v = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
    v
}

const ROWS: i64 = 100_000;

#[tokio::test]
async fn a_sqlite_backfill_killed_mid_way_resumes_exactly_once_and_rolls_back() {
    let p = Project::new().await;
    let (prod, staging) = (p.path("prod.db"), p.path("staging.db"));
    for db in [&prod, &staging] {
        run(
            db,
            &format!(
                "CREATE TABLE counters (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
             INSERT INTO counters (id) SELECT n FROM g"
            ),
        )
        .await;
    }
    let (mut child, client) = spawn_server(&p.config_path).await;
    let r = call(
        &client,
        "plan",
        json!({"goal": "count a visit", "target": "production", "template": "backfill",
               "params": {"table": "counters", "set": "hits = hits + 1", "batch_size": 200, "pause_ms": 20}}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let id = plan_id(&r.structured_content.unwrap());
    let r = call(&client, "dry-run", json!({"plan_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(
        r.structured_content.unwrap()["rollback_verified"],
        true,
        "the dry-run put the overwritten values back"
    );
    p.approve(&id, "alice");

    let apply = {
        let peer = client.peer().clone();
        let id = id.clone();
        tokio::spawn(async move {
            let _ = peer
                .call_tool(
                    CallToolRequestParams::new("apply")
                        .with_arguments(json!({"plan_id": id}).as_object().cloned().unwrap()),
                )
                .await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = scalar(
            &prod,
            "SELECT count(*) FROM sqlite_master WHERE name = '_drydock_backfill_progress'",
        )
        .await;
        if started == 1
            && scalar(
                &prod,
                "SELECT coalesce(sum(rows_done), 0) FROM _drydock_backfill_progress",
            )
            .await
                >= 10_000
        {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    apply.abort();
    drop(client);
    let updated = scalar(&prod, "SELECT count(*) FROM counters WHERE hits = 1").await;
    assert!(updated > 0 && updated < ROWS, "killed mid-way: {updated}");
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM counters WHERE hits > 1").await,
        0
    );
    assert_eq!(
        updated,
        scalar(&prod, "SELECT rows_done FROM _drydock_backfill_progress").await,
        "the checkpoint counts exactly the rows committed"
    );

    let (_child, client) = spawn_server(&p.config_path).await;
    let r = call(&client, "apply", json!({"plan_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let body = r.structured_content.unwrap();
    assert_eq!(body["status"], "applied", "{body}");
    assert!(body["backfills"][0]["resumed_from"].is_string(), "{body}");
    assert_eq!(body["backfills"][0]["rows"], ROWS);
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM counters WHERE hits = 1").await,
        ROWS
    );

    let r = call(
        &client,
        "rollback",
        json!({"plan_id": id, "reason": "the visit was counted twice elsewhere"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM counters WHERE hits = 0").await,
        ROWS,
        "rollback put every overwritten value back"
    );
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '_drydock_bf_%'"
        )
        .await,
        0,
        "the saved values are dropped with the rollback"
    );
    let _ = client.cancel().await;
}

#[tokio::test]
async fn move_data_runs_on_sqlite_through_its_gate_and_back() {
    let p = Project::new().await;
    for db in [p.path("prod.db"), p.path("staging.db")] {
        run(
            &db,
            "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at INTEGER NOT NULL);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)
             INSERT INTO events SELECT n, 'k' || n, n FROM g;
             CREATE TABLE events_archive (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at INTEGER NOT NULL)",
        )
        .await;
    }
    let prod = p.path("prod.db");
    let c = p.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "archive old events", "target": "production", "template": "move-data",
                   "params": {"from_table": "events", "to_table": "events_archive", "columns": ["id", "kind", "at"],
                              "where": "at <= 1000", "delete_source": true, "batch_size": 300}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.approve(&id, "alice");
    let r = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(r["gated"]["step"], "switched", "{r}");
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM events_archive").await,
        1000
    );
    // Until the gate, the application's updates and deletes of copied rows reach their copies.
    run(
        &prod,
        "UPDATE events SET kind = 'changed' WHERE id = 5; DELETE FROM events WHERE id = 6",
    )
    .await;
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) FROM events_archive WHERE (id = 5 AND kind = 'changed') OR id = 6"
        )
        .await,
        1
    );
    run(&prod, "UPDATE events SET kind = 'k5' WHERE id = 5; INSERT INTO events VALUES (6, 'k6', 6); INSERT INTO events_archive VALUES (6, 'k6', 6)").await;
    assert!(
        p.cli(&["release", &id, "switched", "--by", "bob"])
            .status
            .success()
    );
    let r = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(scalar(&prod, "SELECT count(*) FROM events").await, 2000);
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "keep them"}))
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) FROM events WHERE kind = 'k' || id AND at = id"
        )
        .await,
        3000,
        "every deleted row is back as it was"
    );
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM events_archive").await,
        0
    );
    c.close().await;
}

const INVOICES: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
                           amount TEXT NOT NULL, note TEXT, CHECK (length(note) < 100));
    CREATE INDEX invoices_customer ON invoices (customer_id);
    CREATE TRIGGER invoices_touch AFTER UPDATE ON invoices BEGIN UPDATE customers SET name = name WHERE id = NEW.customer_id; END;
    CREATE VIEW big_invoices AS SELECT id, amount FROM invoices WHERE CAST(amount AS INTEGER) > 500;
    CREATE TABLE payments (id INTEGER PRIMARY KEY, invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100) INSERT INTO customers SELECT n, 'c' || n FROM g;
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000)
        INSERT INTO invoices SELECT n, 1 + n % 100, CAST(n AS TEXT), 'n' || n FROM g;
    INSERT INTO payments SELECT id, id FROM invoices";

/// Every schema object's statement, the rebuilt table's from its column list on (a rebuild
/// renames the new table in, which rewrites the name before it).
async fn schema(path: &Path) -> Vec<String> {
    let mut c = sqlite(path).await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE '\\_drydock%' ESCAPE '\\' ORDER BY type, name",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    c.close().await.ok();
    rows.into_iter()
        .map(|(t, n, sql)| {
            let sql = if t == "table" {
                sql[sql.find('(').unwrap_or(0)..].to_string()
            } else {
                sql
            };
            format!("{t} {n}: {sql}")
        })
        .collect()
}

#[tokio::test]
async fn a_column_type_changes_on_sqlite_by_a_table_rebuild_and_rollback_restores_it_exactly() {
    let p = Project::new().await;
    let prod = p.path("prod.db");
    for db in [&prod, &p.path("staging.db")] {
        run(db, INVOICES).await;
    }
    let before = schema(&prod).await;
    let c = p.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "amounts as integers", "target": "production", "template": "change-column-type",
                   "params": {"table": "invoices", "column": "amount", "new_type": "INTEGER"}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.approve(&id, "alice");
    let r = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) FROM invoices WHERE typeof(amount) = 'integer' AND amount = id"
        )
        .await,
        2000
    );
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM payments").await,
        2000,
        "dropping the old table deleted no child row (foreign keys off for the rebuild)"
    );
    let after = schema(&prod).await;
    for kept in [
        "index invoices_customer",
        "trigger invoices_touch",
        "view big_invoices",
    ] {
        assert!(
            after.iter().any(|l| l.starts_with(kept)),
            "{kept} recreated: {after:?}"
        );
    }
    assert!(
        after.iter().any(|l| l.contains("amount INTEGER NOT NULL")),
        "{after:?}"
    );
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "the report wants text"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(schema(&prod).await, before, "every statement as it was");
    assert_eq!(
        scalar(&prod, "SELECT count(*) FROM invoices WHERE typeof(amount) = 'text' AND amount = CAST(id AS TEXT)").await,
        2000
    );
    assert_eq!(scalar(&prod, "SELECT count(*) FROM payments").await, 2000);
    c.close().await;
}

#[tokio::test]
async fn a_not_null_column_is_added_on_sqlite_by_a_rebuild_with_each_rows_value() {
    let p = Project::new().await;
    let prod = p.path("prod.db");
    for db in [&prod, &p.path("staging.db")] {
        run(db, INVOICES).await;
    }
    let before = schema(&prod).await;
    let c = p.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "every invoice has a currency", "target": "production", "template": "add-not-null-column",
                   "params": {"table": "invoices", "column": "cents", "type": "INTEGER", "default": 0,
                              "backfill": "CAST(amount AS INTEGER) * 100"}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.approve(&id, "alice");
    let r = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(
        scalar(
            &prod,
            "SELECT count(*) FROM invoices WHERE cents = id * 100"
        )
        .await,
        2000
    );
    assert_eq!(scalar(&prod, "SELECT count(*) FROM payments").await, 2000);
    let after = schema(&prod).await;
    assert!(
        after
            .iter()
            .any(|l| l.contains("\"cents\" INTEGER NOT NULL DEFAULT 0, CHECK")),
        "{after:?}"
    );
    // New rows take the default; a NULL is refused.
    run(
        &prod,
        "INSERT INTO invoices (id, customer_id, amount) VALUES (5000, 1, '3')",
    )
    .await;
    assert_eq!(
        scalar(&prod, "SELECT cents FROM invoices WHERE id = 5000").await,
        0
    );
    run(&prod, "DELETE FROM invoices WHERE id = 5000").await;
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "not yet"}))
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(schema(&prod).await, before, "every statement as it was");
    c.close().await;
}

#[tokio::test]
async fn constraints_are_added_on_sqlite_by_a_rebuild_and_violations_refuse_the_step() {
    let p = Project::new().await;
    let prod = p.path("prod.db");
    for db in [&prod, &p.path("staging.db")] {
        run(db, INVOICES).await;
        run(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, invoice_id INTEGER NOT NULL); INSERT INTO notes VALUES (1, 5), (2, 99999)").await;
    }
    let c = p.connect().await;
    // A foreign key the data breaks: the dry-run's rebuild fails its foreign_key_check.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "notes belong to invoices", "target": "production", "template": "add-foreign-key",
                   "params": {"table": "notes", "columns": ["invoice_id"], "ref_table": "invoices", "ref_columns": ["id"]}}),
        )
        .await;
    let refused = c
        .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("foreign keys point at nothing"),
        "{refused}"
    );
    // A CHECK the data keeps: added, validated, rolled back.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "positive amounts", "target": "production", "template": "add-check-constraint",
                   "params": {"table": "invoices", "name": "amount_positive", "expression": "CAST(amount AS INTEGER) > 0"}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    p.approve(&id, "alice");
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );
    let mut conn = sqlite(&prod).await;
    let broke =
        sqlx::query("INSERT INTO invoices (id, customer_id, amount) VALUES (9999, 1, '-5')")
            .execute(&mut conn)
            .await;
    conn.close().await.ok();
    assert!(broke.is_err(), "the CHECK holds on the rebuilt table");
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "refunds are negative"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    c.close().await;
}
