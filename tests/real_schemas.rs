//! Schemas nobody here wrote: the dry-run runs what apply will run (each step committed on
//! staging and undone, `CONCURRENTLY` for real), and probes what the application will hit.

mod common;

use common::PgProject;
use common::walk::run_sql;
use serde_json::{Value, json};

const EVENTS: &str = "
    CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL) PARTITION BY RANGE (at);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO events SELECT g, DATE '2025-01-01' + (g % 700), 'k' || (g % 7) FROM generate_series(1, 3000) g;
    ANALYZE;";

fn steps(goal: &str, steps: Value) -> Value {
    json!({"goal": goal, "target": "production", "steps": steps})
}

async fn index_count(p: &PgProject, db: &str, like: &str) -> i64 {
    p.scalar(
        db,
        &format!("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{like}'"),
    )
    .await
}

#[tokio::test]
async fn a_concurrent_index_on_a_partitioned_table_fails_its_dry_run_as_it_would_in_production() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, EVENTS).await;
    }
    let c = p.project.connect().await;

    // PostgreSQL refuses CONCURRENTLY on a partitioned table: the dry-run runs it for real, so
    // it fails there, before anyone approves it.
    let planned = c
        .ok(
            "plan",
            steps(
                "index events by day",
                json!([{"name": "index", "up": "CREATE INDEX CONCURRENTLY events_at ON events (at)",
                        "down": "DROP INDEX CONCURRENTLY IF EXISTS events_at"}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("CONCURRENTLY"),
        "{refused}"
    );
    assert_eq!(index_count(&p, &p.staging, "events%at").await, 0);
    assert!(p.project.errors_md().contains(&id[..8]));

    // The way PostgreSQL allows: the parent's index ON ONLY (invalid until every partition's is
    // attached), each partition's built CONCURRENTLY in a step of its own, then attached.
    let mut built = vec![
        json!({"name": "parent", "up": "CREATE INDEX events_at ON ONLY events (at)",
                                 "down": "DROP INDEX events_at"}),
    ];
    for part in ["events_2025", "events_2026"] {
        built.push(json!({"name": format!("build {part}"),
            "up": format!("CREATE INDEX CONCURRENTLY {part}_at ON {part} (at)"),
            "down": format!("DROP INDEX CONCURRENTLY IF EXISTS {part}_at")}));
        built.push(json!({"name": format!("attach {part}"),
            "up": format!("ALTER INDEX events_at ATTACH PARTITION {part}_at"),
            // An attached index cannot be dropped alone: detaching means re-creating the parent's.
            "down": format!("DROP INDEX events_at; CREATE INDEX events_at ON ONLY events (at)")}));
    }
    let planned = c
        .ok("plan", steps("index events by day", json!(built)))
        .await;
    let id = common::plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rehearsed"], true, "{dry}");
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    // Measured per step: the parent's SHARE lock is the first step's alone; no later step of
    // its own transaction "holds" it.
    for st in dry["statements"].as_array().unwrap() {
        let held: Vec<&Value> = st["locks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["acquired"] == false)
            .collect();
        assert!(held.is_empty(), "a lock carried over between steps: {st}");
    }
    // Staging is left as it was.
    assert_eq!(index_count(&p, &p.staging, "events%at").await, 0);
    p.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'events_at' AND i.indisvalid"
        )
        .await,
        1,
        "the parent's index is valid once every partition's is attached"
    );
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    c.close().await;
}

/// A project whose production and staging hold the Pagila sample schema (published by its
/// author, `tests/fixtures/pagila`) with a few thousand rows.
async fn pagila() -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, include_str!("fixtures/pagila/schema.sql")).await;
        run_sql(db, include_str!("fixtures/pagila/data.sql")).await;
    }
    p
}

#[tokio::test]
async fn a_rename_that_breaks_a_trigger_function_fails_the_dry_run_and_validate_says_so() {
    let p = pagila().await;
    let c = p.project.connect().await;

    // Pagila's `last_updated()` trigger sets NEW.last_update on every UPDATE of customer: a bare
    // rename passes PostgreSQL's checks and breaks every write of the application.
    let planned = c
        .ok(
            "plan",
            steps(
                "a clearer name",
                json!([{"name": "rename",
                        "up": "ALTER TABLE customer RENAME COLUMN last_update TO updated_at",
                        "down": "ALTER TABLE customer RENAME COLUMN updated_at TO last_update"}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "app-probe-failed", "{refused}");
    let message = refused["message"].as_str().unwrap();
    for named in [
        "triggers last_updated on customer (update)",
        "last_update",
        "last_updated()",
    ] {
        assert!(message.contains(named), "{named} in {message}");
    }
    assert!(p.project.errors_md().contains("app-probe-failed"));
    assert!(p.has_column(&p.staging, "customer", "last_update").await);

    // An applied change validated, then the same break made by hand on production: validate
    // probes the target and names it.
    let planned = c
        .ok(
            "plan",
            steps(
                "a note per customer",
                json!([{"name": "note", "up": "ALTER TABLE customer ADD COLUMN note text",
                        "down": "ALTER TABLE customer DROP COLUMN note"}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    let probed: Vec<&str> = dry["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["object"].as_str().unwrap())
        .collect();
    assert!(
        probed.contains(&"triggers last_updated on customer (update)")
            && probed.contains(&"view customer_list"),
        "{probed:?}"
    );
    p.project.approve(&id, "alice");
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );
    assert_eq!(c.ok("validate", json!({"plan_id": id})).await["ok"], true);
    run_sql(
        &p.prod,
        "ALTER TABLE customer RENAME COLUMN last_update TO updated_at",
    )
    .await;
    let refused = c.refused("validate", json!({"plan_id": id})).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("app-probe-failed: triggers last_updated on customer (update)"),
        "{refused}"
    );
    c.close().await;
}
