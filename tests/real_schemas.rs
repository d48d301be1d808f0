//! Schemas nobody here wrote: the dry-run runs what apply will run (each step committed on
//! staging and undone, `CONCURRENTLY` for real), and probes what the application will hit.

mod common;

use common::PgProject;
use common::walk::run_sql;
use serde_json::{Value, json};
use sqlx::Connection;

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

/// Tool results stay small whatever the schema: Pagila's `payment` grown to 59 partitions, an
/// index on it (119 statements). Each result is under 8,000 tokens (32,000 bytes), `status`
/// under 2,000; what a list left out is counted, and the full report is one call away.
#[tokio::test]
async fn results_fit_an_agents_context_on_a_table_with_59_partitions() {
    let p = pagila().await;
    let more: String = (0..52)
        .map(|i| {
            let (y, m) = (2023 + i / 12, 1 + i % 12);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            format!("CREATE TABLE payment_p{y}_{m:02} PARTITION OF payment FOR VALUES FROM ('{y}-{m:02}-01') TO ('{ny}-{nm:02}-01');")
        })
        .collect();
    for db in [&p.prod, &p.staging] {
        run_sql(db, &more).await;
    }
    let c = p.project.connect().await;
    let size = |v: &Value| v.to_string().len();
    let page = c.ok("inspect", json!({"target": "production"})).await;
    assert!(size(&page) < 32_000, "inspect: {} bytes", size(&page));
    assert_eq!(page["partitions"]["payment"]["count"], 59, "{page}");
    assert!(
        !page["tables"]
            .as_object()
            .unwrap()
            .contains_key("payment_p2022_01"),
        "partitions are listed under their parent"
    );
    let planned = c
        .ok(
            "plan",
            json!({"goal": "payments by customer", "target": "production", "template": "add-index",
                   "params": {"table": "payment", "columns": ["customer_id", "payment_date"]}}),
        )
        .await;
    assert!(size(&planned) < 32_000, "plan: {} bytes", size(&planned));
    assert!(
        planned["omitted"]["statements"].as_u64().unwrap() > 90,
        "{}",
        planned["omitted"]
    );
    let id = common::plan_id(&planned);
    for _ in 0..2 {
        let dry = c.ok("dry-run", json!({"plan_id": id})).await;
        assert!(size(&dry) < 32_000, "dry-run: {} bytes", size(&dry));
        assert_eq!(dry["rollback_verified"], true);
    }
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert!(size(&status) < 8_000, "status: {} bytes", size(&status));
    assert_eq!(status["runs_total"], 2);
    let full = c.ok("status", json!({"plan_id": id, "detail": true})).await;
    assert_eq!(
        full["report"]["analysis"]["statements"]
            .as_array()
            .unwrap()
            .len(),
        119,
        "the whole analysis is one call away"
    );
    c.close().await;
}

/// `inspect` on a schema nobody here wrote tells what a correct plan needs: partitions with
/// their bounds, an unpopulated materialized view, the enum and domain a table's columns use,
/// the views and functions (a trigger's too) that read its columns — compactly, bodies on request.
#[tokio::test]
async fn inspect_tells_an_agent_what_reads_a_tables_columns_on_pagila() {
    let p = pagila().await;
    run_sql(
        &p.prod,
        "CREATE MATERIALIZED VIEW film_titles AS SELECT film_id, title FROM film WITH NO DATA",
    )
    .await;
    let c = p.project.connect().await;
    let page = c.ok("inspect", json!({"target": "production"})).await;
    assert!(
        page.to_string().len() < 32_000,
        "{} bytes",
        page.to_string().len()
    );
    let payment = &page["tables"]["payment"];
    assert_eq!(payment["kind"], "partitioned_table");
    assert_eq!(payment["partition_key"], "RANGE (payment_date)");
    let first = &page["partitions"]["payment"]["listed"][0];
    assert_eq!(first["name"], "payment_p2022_01");
    assert_eq!(
        first["bound"],
        "FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00')"
    );

    let film = c
        .ok("inspect", json!({"target": "production", "table": "film"}))
        .await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    // The enum and the domain its columns use, with their labels and constraints.
    assert_eq!(
        names(&film["types"]["mpaa_rating"]["labels"]),
        ["G", "PG", "PG-13", "R", "NC-17"]
    );
    assert_eq!(film["types"]["year"]["kind"], "domain");
    assert_eq!(film["types"]["year"]["base"], "integer");
    // Triggers' functions with the columns they use: a PL/pgSQL body's, and a C function's
    // told by its arguments (`tsvector_update_trigger`).
    let functions = film["tables"]["film"]["functions"].as_array().unwrap();
    let by_trigger = |t: &str| {
        functions
            .iter()
            .find(|f| f["trigger"] == t)
            .unwrap_or_else(|| panic!("{t}: {functions:?}"))
    };
    assert_eq!(
        names(&by_trigger("last_updated")["columns"]),
        ["last_update"]
    );
    assert_eq!(
        names(&by_trigger("film_fulltext_trigger")["columns"]),
        ["title", "description", "fulltext"]
    );
    // Views with the columns they read; a materialized view says whether it holds data.
    assert!(
        names(&film["views"]["film_list"]["reads"]).contains(&"film.title".to_string()),
        "{}",
        film["views"]
    );
    assert_eq!(film["views"]["film_titles"]["materialized"], true);
    assert_eq!(film["views"]["film_titles"]["populated"], false);
    assert!(
        film["views"]["film_list"].get("definition").is_none(),
        "bodies on request"
    );

    // Functions whose body names the table, with the columns they read; bodies on request.
    let inventory = c
        .ok(
            "inspect",
            json!({"target": "production", "table": "inventory", "bodies": true}),
        )
        .await;
    let functions = inventory["tables"]["inventory"]["functions"]
        .as_array()
        .unwrap();
    let in_stock = functions
        .iter()
        .find(|f| f["function"] == "film_in_stock(integer,integer)")
        .unwrap_or_else(|| panic!("{functions:?}"));
    assert_eq!(
        names(&in_stock["columns"]),
        ["inventory_id", "film_id", "store_id"]
    );
    assert!(
        in_stock["definition"]
            .as_str()
            .unwrap()
            .starts_with("CREATE OR REPLACE FUNCTION public.film_in_stock"),
        "{in_stock}"
    );

    // The analysis reads the same trigger arguments: renaming `title` breaks every write to
    // `film` through `film_fulltext_trigger`, though PostgreSQL accepts the rename.
    let planned = c
        .ok(
            "plan",
            steps(
                "a clearer name",
                json!([{"name": "rename",
                        "up": "ALTER TABLE film RENAME COLUMN title TO name",
                        "down": "ALTER TABLE film RENAME COLUMN name TO title"}]),
            ),
        )
        .await;
    assert!(
        planned["analysis"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["message"]
                .as_str()
                .unwrap()
                .contains("film_fulltext_trigger")),
        "{}",
        planned["analysis"]["hazards"]
    );
    c.close().await;
}

/// A rollback that leaves data changed because the table's trigger wrote it (Pagila's
/// `last_updated` stamps every updated customer) is taught as the trigger's doing, not as a
/// `down` that is not the inverse of `up` — the lesson later plans read is what went wrong.
#[tokio::test]
async fn a_data_difference_a_trigger_wrote_is_taught_as_the_triggers() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            steps(
                "mark a customer",
                json!([{"name": "touch",
                        "up": "UPDATE customer SET activebool = activebool WHERE customer_id = 1",
                        "down": "UPDATE customer SET activebool = activebool WHERE customer_id = 1"}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "rollback-unverified", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("`customer.last_updated`"), "{message}");
    let log = p.project.errors_md();
    assert!(log.contains("fires the table's triggers"), "{log}");
    assert!(!log.contains("exact inverse"), "{log}");
    c.close().await;
}

/// A CHECK added on a partitioned table reads each partition in full, never the parent: the
/// measurement says which parent its partitions belong to, and the analysis's predicted full
/// scan of `payment` agrees with it (it was reported as "measured none" beside the partitions).
#[tokio::test]
async fn a_scan_of_a_partitioned_tables_partitions_is_the_tables_scan() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            steps(
                "no negative payments",
                json!([{"name": "check",
                        "up": "ALTER TABLE payment ADD CONSTRAINT payment_amount_positive CHECK (amount >= 0)",
                        "down": "ALTER TABLE payment DROP CONSTRAINT payment_amount_positive"}]),
            ),
        )
        .await;
    let dry = c
        .ok("dry-run", json!({"plan_id": common::plan_id(&planned)}))
        .await;
    let statement = &dry["statements"][0];
    assert!(
        statement["scanned"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "payment_p2022_01"),
        "{statement}"
    );
    assert_eq!(
        statement["scanned_partitions_of"],
        json!(["payment"]),
        "{statement}"
    );
    let disagreements = dry["disagreements"].as_array().unwrap();
    assert!(
        !disagreements
            .iter()
            .any(|d| d.as_str().unwrap().contains("full scan")),
        "{disagreements:?}"
    );
    c.close().await;
}

/// A schema difference names an extension, not each of its functions and operators: a `down`
/// that leaves `pg_trgm` installed is told as `+extension pg_trgm (N objects)`.
#[tokio::test]
async fn a_difference_names_the_extension_not_its_functions() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            steps(
                "fuzzy search",
                json!([{"name": "trgm", "up": "CREATE EXTENSION pg_trgm", "down": "SELECT 1"}]),
            ),
        )
        .await;
    let refused = c
        .refused("dry-run", json!({"plan_id": common::plan_id(&planned)}))
        .await;
    let message = refused["message"].as_str().unwrap();
    assert_eq!(refused["code"], "rollback-unverified", "{refused}");
    assert!(message.contains("+extension pg_trgm ("), "{message}");
    assert!(!message.contains("similarity"), "{message}");
    c.close().await;
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

/// A template walked from `plan` to `rollback` on Pagila (triggers on every table, views on
/// most, a partitioned `payment`), the shape of `tables` compared before and after.
async fn walk_pagila(template: &str, params: Value, tables: &[&str]) {
    walk_pagila_until(template, params, tables, None).await;
}

/// `walk_pagila`, stopping at the gate of `stop_at` (a final step rollback could not undo).
async fn walk_pagila_until(template: &str, params: Value, tables: &[&str], stop_at: Option<&str>) {
    common::walk::walk_project(pagila().await, template, params, tables, None, stop_at).await;
}

#[tokio::test]
async fn pagila_add_not_null_column_on_a_table_with_triggers_and_views() {
    walk_pagila(
        "add-not-null-column",
        json!({"table": "film", "column": "audience", "type": "text", "default": "everyone"}),
        &["film"],
    )
    .await;
}

#[tokio::test]
async fn pagila_backfill_on_a_table_whose_trigger_writes_another_column() {
    walk_pagila(
        "backfill",
        json!({"table": "rental", "set": "return_date = rental_date + interval '2 days'", "where": "return_date IS NOT NULL", "batch_size": 700}),
        &["rental"],
    )
    .await;
}

#[tokio::test]
async fn pagila_rename_column_under_a_view() {
    walk_pagila(
        "rename-column",
        json!({"table": "customer", "column": "email", "new_name": "email_address"}),
        &["customer"],
    )
    .await;
}

#[tokio::test]
async fn pagila_rename_column_read_by_a_view() {
    // customer_list reads cu.first_name: at the `switched` gate it is created again reading the
    // new column (its own column keeps its name), so that the contract can drop the old one.
    walk_pagila(
        "rename-column",
        json!({"table": "customer", "column": "first_name", "new_name": "given_name"}),
        &["customer"],
    )
    .await;
}

#[tokio::test]
async fn pagila_change_column_type_under_views() {
    walk_pagila(
        "change-column-type",
        json!({"table": "film", "column": "length", "new_type": "integer"}),
        &["film"],
    )
    .await;
}

#[tokio::test]
async fn pagila_add_index_on_a_partitioned_table() {
    walk_pagila(
        "add-index",
        json!({"table": "payment", "columns": ["customer_id", "amount"]}),
        &["payment", "payment_p2022_01"],
    )
    .await;
}

/// Rolled back, every customer row is as it was, the dropped column's values and the
/// `last_update` stamps alike: the values go back in batches with the table's triggers off
/// (`last_updated` would have stamped every row restored).
#[tokio::test]
async fn pagila_drop_column_of_a_table_with_triggers() {
    let p = pagila().await;
    let rows =
        "SELECT md5(string_agg(to_jsonb(c)::text, ',' ORDER BY customer_id)) FROM customer AS c";
    let before: String = {
        let mut c = common::pg_connect(&p.prod).await;
        sqlx::query_scalar(rows).fetch_one(&mut c).await.unwrap()
    };
    let w = common::walk::walk_project(
        p,
        "drop-column",
        json!({"table": "customer", "column": "create_date"}),
        &["customer"],
        None,
        Some("purge"),
    )
    .await;
    let mut c = common::pg_connect(&w.project.prod).await;
    let after: String = sqlx::query_scalar(rows).fetch_one(&mut c).await.unwrap();
    assert_eq!(after, before, "every customer row as before the drop");
}

#[tokio::test]
async fn pagila_drop_column_under_a_view_is_refused_naming_the_view_and_the_way() {
    let p = pagila().await;
    let c = p.project.connect().await;
    let refused = c
        .refused(
            "plan",
            json!({"goal": "drop activebool", "target": "production", "template": "drop-column",
                   "params": {"table": "customer", "column": "activebool"}}),
        )
        .await;
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("customer_list") && message.contains("DROP VIEW"),
        "{refused}"
    );
    c.close().await;
}

#[tokio::test]
async fn pagila_add_check_constraint_on_a_partitioned_table() {
    walk_pagila(
        "add-check-constraint",
        json!({"table": "payment", "name": "payment_amount_non_negative", "expression": "amount >= 0"}),
        &["payment"],
    )
    .await;
}

#[tokio::test]
async fn pagila_add_foreign_key_between_tables_with_triggers() {
    walk_pagila(
        "add-foreign-key",
        json!({"table": "film", "columns": ["language_id"], "ref_table": "language", "ref_columns": ["language_id"], "name": "film_language_fk2"}),
        &["film"],
    )
    .await;
}

/// One migration of a replayed history: walked to validated, or where drydock stopped it.
#[derive(Debug)]
struct Replayed {
    name: String,
    /// `None`: walked plan → dry-run → approve → apply → validate. `Some((stage, code,
    /// message))`: refused there (the migration is then applied by hand, as the project's own
    /// tool would, and the history goes on).
    refused: Option<(&'static str, String, String)>,
}

/// The migrations of `dir` (`NAME.up.sql` with `NAME.down.sql`), in file name order. A
/// migration that ory/pop split into numbered parts (`VERSION` of 14 digits, then a 6-digit
/// part: `20191100000001000002_identities`) is one migration: its parts' ups in order, and
/// their downs in reverse order, as pop runs them.
fn history(dir: &std::path::Path) -> Vec<(String, String, String)> {
    // Diesel's layout: a folder per migration, holding `up.sql` and `down.sql`.
    let mut folders: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("up.sql").exists())
        .collect();
    if !folders.is_empty() {
        folders.sort();
        return folders
            .into_iter()
            .map(|f| {
                let read = |file: &str| std::fs::read_to_string(f.join(file)).unwrap_or_default();
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                (name, read("up.sql"), read("down.sql"))
            })
            .collect();
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".up.sql").map(String::from)
        })
        .collect();
    names.sort();
    let key = |n: &str| {
        let split =
            n.len() > 21 && n[..20].bytes().all(|b| b.is_ascii_digit()) && &n[20..21] == "_";
        if split {
            format!("{}{}", &n[..14], &n[20..])
        } else {
            n.to_string()
        }
    };
    let mut out: Vec<(String, String, String)> = Vec::new();
    for n in names {
        let read = |suffix: &str| {
            std::fs::read_to_string(dir.join(format!("{n}{suffix}"))).unwrap_or_default()
        };
        let (up, down) = (read(".up.sql"), read(".down.sql"));
        let k = key(&n);
        match out.last_mut() {
            Some((last, u, d)) if *last == k => {
                u.push_str(";\n");
                u.push_str(&up);
                *d = format!("{down};\n{d}");
            }
            _ => out.push((k, up, down)),
        }
    }
    out
}

/// Whether `sql` holds no statement (only comments and blanks).
fn blank(sql: &str) -> bool {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or_default().trim())
        .all(str::is_empty)
}

/// Replays a project's migration history through drydock, migration by migration, on a
/// production/staging pair that starts empty (but for the harness's own two tables).
async fn replay(dir: &std::path::Path) -> Vec<Replayed> {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let mut out = Vec::new();
    for (name, up, down) in history(dir) {
        if blank(&up) {
            continue;
        }
        let refused = walk_migration(&p, &c, &name, &up, &down).await.err();
        let mut by_hand = Ok(());
        if refused.is_some() {
            // As the project's own migration tool would: the history goes on.
            for db in [&p.prod, &p.staging] {
                let mut conn = common::pg_connect(db).await;
                by_hand = by_hand.and(
                    sqlx::raw_sql(sqlx::AssertSqlSafe(up.clone()))
                        .execute(&mut conn)
                        .await
                        .map(|_| ()),
                );
                conn.close().await.ok();
            }
        }
        out.push(Replayed { name, refused });
        if let Err(e) = by_hand {
            // This server cannot run the history any further (a newer PostgreSQL's syntax).
            eprintln!("stopped: the migration itself fails on this server: {e}");
            break;
        }
    }
    c.close().await;
    out
}

async fn walk_migration(
    p: &PgProject,
    c: &common::Client,
    name: &str,
    up: &str,
    down: &str,
) -> Result<(), (&'static str, String, String)> {
    let refusal = |stage: &'static str, r: &rmcp::model::CallToolResult| {
        let body = common::refusal_body(r);
        (
            stage,
            body["code"].as_str().unwrap_or_default().to_string(),
            body["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let mut step = json!({"name": "migration", "up": up});
    if !blank(down) {
        step["down"] = json!(down);
    }
    let planned = c
        .call(
            "plan",
            json!({"goal": name, "target": "production", "steps": [step]}),
        )
        .await;
    if planned.is_error == Some(true) {
        return Err(refusal("plan", &planned));
    }
    let id = common::plan_id(&planned.structured_content.unwrap());
    let dry = c.call("dry-run", json!({"plan_id": id})).await;
    if dry.is_error == Some(true) {
        return Err(refusal("dry-run", &dry));
    }
    p.project.approve(&id, "alice");
    let applied = c.call("apply", json!({"plan_id": id})).await;
    if applied.is_error == Some(true) {
        return Err(refusal("apply", &applied));
    }
    let validated = c.call("validate", json!({"plan_id": id})).await;
    if validated.is_error == Some(true) {
        return Err(refusal("validate", &validated));
    }
    Ok(())
}

fn report(history: &str, replayed: &[Replayed]) -> String {
    let refused: Vec<&Replayed> = replayed.iter().filter(|r| r.refused.is_some()).collect();
    let mut text = format!(
        "{history}: {} migrations, {} walked to validated, {} refused\n",
        replayed.len(),
        replayed.len() - refused.len(),
        refused.len()
    );
    for r in refused {
        let (stage, code, message) = r.refused.as_ref().unwrap();
        text.push_str(&format!("  {} [{stage}] {code}: {message}\n", r.name));
    }
    text
}

/// Replays the history in `tests/fixtures/histories/{name}` and checks that drydock refused
/// exactly `expected` (migration → code): each one a refusal an engineer agrees with (the
/// reasons beside each list), every other migration walked to validated.
async fn replay_fixture(name: &str, expected: &[(&str, &str)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/histories")
        .join(name);
    let replayed = replay(&dir).await;
    let text = report(name, &replayed);
    eprintln!("{text}");
    let refused: Vec<(&str, &str)> = replayed
        .iter()
        .filter_map(|r| {
            r.refused
                .as_ref()
                .map(|(_, code, _)| (r.name.as_str(), code.as_str()))
        })
        .collect();
    assert_eq!(refused, expected, "{text}");
    assert!(replayed.len() > 20, "{text}");
}

#[tokio::test]
async fn replaying_authelias_history_refuses_only_downs_that_do_not_undo_their_up() {
    replay_fixture(
        "authelia",
        &[
            // Its down renames the table aside and re-creates an index whose name the renamed
            // table still holds: the down fails.
            ("V0002.WebAuthn", "sql-failed"),
            // Its down rebuilds the table with a new serial: the column's sequence comes back
            // as webauthn_devices_id_seq1.
            ("V0003.WebAuthnKIDLength", "rollback-unverified"),
            // Its down also drops tables an earlier migration left behind.
            ("V0007.ConsistencyFixes", "rollback-unverified"),
            // No down at all.
            ("V0009.FixConstraints", "rollback-unverified"),
            ("V0011.JWTProfileAccessToken", "rollback-unverified"),
            // Its down leaves webauthn_devices without its primary key.
            ("V0012.WebAuthnMultiCookieDomain", "rollback-unverified"),
        ],
    )
    .await;
}

#[tokio::test]
async fn replaying_kratos_history_refuses_only_downs_that_do_not_undo_their_up() {
    replay_fixture(
        "kratos",
        &[
            // Its down leaves seen_at nullable; it was NOT NULL.
            ("20191100000010_errors.postgres", "rollback-unverified"),
            // No down.
            (
                "20191100000011_courier_body_type.postgres",
                "rollback-unverified",
            ),
            // Its down leaves form nullable; it was NOT NULL.
            (
                "20200317160354_create_profile_request_forms.postgres",
                "rollback-unverified",
            ),
            // Its down leaves update_successful with a default it did not have.
            ("20200607165100_settings.postgres", "rollback-unverified"),
            // Its PostgreSQL downs undo more than its up did (they add a column that exists).
            (
                "20200830130642_add_verification_methods.postgres",
                "sql-failed",
            ),
        ],
    )
    .await;
}

/// A history that is not kept in this repository, replayed on demand for a report:
/// `DRYDOCK_REPLAY_DIR=/path/to/migrations cargo test --test real_schemas replay_any -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "replays DRYDOCK_REPLAY_DIR, a history outside the repository"]
async fn replay_any() {
    let dir = std::env::var("DRYDOCK_REPLAY_DIR").expect("DRYDOCK_REPLAY_DIR");
    let replayed = replay(std::path::Path::new(&dir)).await;
    eprintln!("{}", report(&dir, &replayed));
}

/// A project whose production and staging hold `sql` (a published sample database).
async fn sample(sql: &str) -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, sql).await;
        run_sql(db, "ANALYZE").await;
    }
    p
}

const CHINOOK: &str = include_str!("fixtures/chinook/chinook.sql");
const NORTHWIND: &str = include_str!("fixtures/northwind/northwind.sql");

async fn walk_sample(
    sql: &str,
    template: &str,
    params: Value,
    tables: &[&str],
    stop_at: Option<&str>,
) {
    common::walk::walk_project(sample(sql).await, template, params, tables, None, stop_at).await;
}

/// `walk_sample` on the sample with `extra` run after it (a table a template moves rows into).
async fn walk_sample_with(
    sql: &str,
    extra: &str,
    template: &str,
    params: Value,
    tables: &[&str],
    stop_at: Option<&str>,
) {
    let p = sample(sql).await;
    for db in [&p.prod, &p.staging] {
        run_sql(db, &format!("{extra}; ANALYZE")).await;
    }
    common::walk::walk_project(p, template, params, tables, None, stop_at).await;
}

#[tokio::test]
async fn chinook_templates_walk_on_its_tables() {
    walk_sample(
        CHINOOK,
        "add-not-null-column",
        json!({"table": "invoice", "column": "currency", "type": "text", "default": "USD"}),
        &["invoice"],
        None,
    )
    .await;
    walk_sample(
        CHINOOK,
        "rename-column",
        json!({"table": "track", "column": "composer", "new_name": "composers"}),
        &["track"],
        None,
    )
    .await;
    walk_sample(
        CHINOOK,
        "change-column-type",
        json!({"table": "invoice_line", "column": "unit_price", "new_type": "numeric(12,2)"}),
        &["invoice_line"],
        None,
    )
    .await;
    walk_sample(
        CHINOOK,
        "drop-column",
        json!({"table": "customer", "column": "fax"}),
        &["customer"],
        Some("purge"),
    )
    .await;
}

#[tokio::test]
async fn northwind_templates_walk_on_its_tables() {
    walk_sample(
        NORTHWIND,
        "add-index",
        json!({"table": "orders", "columns": ["ship_country", "order_date"]}),
        &["orders"],
        None,
    )
    .await;
    walk_sample(NORTHWIND, "add-check-constraint",
        json!({"table": "order_details", "name": "order_details_quantity_positive", "expression": "quantity > 0"}), &["order_details"], None).await;
    walk_sample(NORTHWIND, "backfill",
        json!({"table": "products", "set": "reorder_level = 10", "where": "reorder_level = 0", "key": "product_id"}), &["products"], None).await;
    walk_sample(NORTHWIND, "split-table",
        json!({"table": "employees", "new_table": "employee_profiles", "columns": ["photo", "notes"], "key": "employee_id"}), &["employees"], Some("contract")).await;
}

#[tokio::test]
async fn an_enum_value_added_by_up_and_used_by_down_is_dry_run_in_separate_transactions() {
    // Lemmy's pattern (four migrations of its history): `up` adds a label, `down` moves the rows
    // off it and rebuilds the type. One transaction cannot hold both: PostgreSQL refuses a new
    // label until the transaction that added it commits. Apply and rollback run them apart.
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE TABLE people (id bigserial PRIMARY KEY, mood mood NOT NULL DEFAULT 'happy');
             INSERT INTO people (mood) SELECT 'sad' FROM generate_series(1, 50)",
        )
        .await;
    }
    let c = p.project.connect().await;
    let down = "UPDATE people SET mood = 'sad' WHERE mood = 'blue';
        ALTER TYPE mood RENAME TO mood__;
        CREATE TYPE mood AS ENUM ('happy', 'sad');
        ALTER TABLE people ALTER COLUMN mood DROP DEFAULT,
            ALTER COLUMN mood TYPE mood USING mood::text::mood,
            ALTER COLUMN mood SET DEFAULT 'happy';
        DROP TYPE mood__";
    let planned = c
        .ok(
            "plan",
            steps(
                "a blue mood",
                json!([{"name": "label", "up": "ALTER TYPE mood ADD VALUE 'blue'", "down": down}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rehearsed"], true, "{dry}");
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    let labels = "SELECT count(*) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = 'mood'";
    assert_eq!(
        p.scalar(&p.staging, labels).await,
        2,
        "staging is left as it was"
    );
    p.project.approve(&id, "alice");
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );
    assert_eq!(p.scalar(&p.prod, labels).await, 3);
    assert_eq!(c.ok("validate", json!({"plan_id": id})).await["ok"], true);
    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "not needed"}))
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(p.scalar(&p.prod, labels).await, 2);
    c.close().await;
}

#[tokio::test]
async fn a_view_that_freezes_now_is_compared_without_the_instant_it_froze() {
    // Lemmy's views (five migrations of its history) compare against `'now'::timestamp`, which
    // PostgreSQL freezes into the view's definition when the view is created: the same SQL run
    // again later (a `down`, production after staging) defines a view that reads differently.
    let p = PgProject::new("").await;
    let view = |extra: &str| {
        format!(
            "CREATE VIEW recent_posts AS SELECT id{extra}, published < ('now'::timestamp - '1 month'::interval) AS old FROM posts"
        )
    };
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            &format!(
                "CREATE TABLE posts (id int PRIMARY KEY, published timestamp NOT NULL); {}",
                view("")
            ),
        )
        .await;
    }
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            steps(
                "the view shows when",
                // A second step: the plan is rehearsed too, whose comparison masks the same.
                json!([{"name": "view",
                        "up": format!("DROP VIEW recent_posts; {}", view(", published")),
                        "down": format!("DROP VIEW recent_posts; {}", view(""))},
                       {"name": "index",
                        "up": "CREATE INDEX CONCURRENTLY posts_published ON posts (published)",
                        "down": "DROP INDEX CONCURRENTLY posts_published"}]),
            ),
        )
        .await;
    let id = common::plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    assert_eq!(dry["rehearsed"], true, "{dry}");
    assert!(dry["warnings"].to_string().contains("'now'"), "{dry}");
    p.project.approve(&id, "alice");
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "back"}))
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    c.close().await;
}

#[tokio::test]
async fn chinook_plain_and_removal_templates_walk_on_its_tables() {
    walk_sample(
        CHINOOK,
        "add-column",
        json!({"table": "track", "column": "isrc", "type": "text"}),
        &["track"],
        None,
    )
    .await;
    walk_sample(
        CHINOOK,
        "drop-index",
        json!({"name": "invoice_customer_id_idx"}),
        &["invoice"],
        None,
    )
    .await;
    walk_sample(CHINOOK, "migration",
        json!({"goal": "genres are unique", "up": "CREATE UNIQUE INDEX CONCURRENTLY genre_name_key ON genre (name)",
               "down": "DROP INDEX CONCURRENTLY genre_name_key"}), &["genre"], None).await;
}

#[tokio::test]
async fn northwind_data_templates_walk_on_its_tables() {
    walk_sample_with(NORTHWIND, "CREATE TABLE orders_archive (LIKE orders INCLUDING ALL)", "move-data",
        json!({"from_table": "orders", "to_table": "orders_archive",
               "columns": ["order_id", "customer_id", "employee_id", "order_date", "required_date", "shipped_date",
                           "ship_via", "freight", "ship_name", "ship_address", "ship_city", "ship_region",
                           "ship_postal_code", "ship_country"],
               "where": "order_date < '1997-01-01'"}),
        &["orders", "orders_archive"], None).await;
    walk_sample_with(NORTHWIND,
        "CREATE TABLE product_notes (product_id smallint PRIMARY KEY REFERENCES products, note text);
         INSERT INTO product_notes SELECT product_id, 'note ' || product_name FROM products WHERE product_id % 2 = 0",
        "merge-tables",
        json!({"table": "products", "from_table": "product_notes", "columns": ["note"], "key": "product_id"}),
        &["products"], Some("contract")).await;
    walk_sample(
        NORTHWIND,
        "drop-table",
        json!({"table": "customer_customer_demo"}),
        &["customers"],
        Some("purge"),
    )
    .await;
}

#[tokio::test]
async fn a_rehearsal_drydock_dies_in_is_taken_back_by_the_next_dry_run() {
    use common::server::{call, spawn_server};
    let p = PgProject::new("").await;
    let (mut child, client) = spawn_server(&p.project.config_path).await;
    let planned = call(
        &client,
        "plan",
        steps(
            "a tier, then a slow step",
            json!([{"name": "tier", "up": "ALTER TABLE accounts ADD COLUMN tier text", "down": "ALTER TABLE accounts DROP COLUMN tier"},
                   {"name": "slow", "up": "SELECT pg_sleep(3)", "down": "SELECT 1"}]),
        ),
    )
    .await;
    let id = common::plan_id(&planned.structured_content.unwrap());
    let (args, task_id) = (json!({"plan_id": id}), id.clone());
    let task = tokio::spawn(async move {
        let r = call(&client, "dry-run", args).await;
        drop(client);
        (task_id, r)
    });
    // The first pass's column is never visible (rolled back); the rehearsal's is, once its
    // first step commits: drydock is killed while the second step runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !p.has_column(&p.staging, "accounts", "tier").await {
        assert!(
            std::time::Instant::now() < deadline,
            "the rehearsal never committed its first step"
        );
        assert!(
            !task.is_finished(),
            "the dry-run ended before its rehearsal committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().ok();
    child.wait().await.ok();
    task.abort();
    assert!(p.has_column(&p.staging, "accounts", "tier").await);

    // The next dry-run (on a new server) takes the committed step back before anything else,
    // and says so; staging is then as production is, and nothing is refused as drift.
    let c = p.project.connect().await;
    let mut dry = serde_json::Value::Null;
    for _ in 0..50 {
        // The dead server's session may hold staging's lock for a moment.
        let r = c.call("dry-run", json!({"plan_id": id})).await;
        if r.is_error != Some(true) {
            dry = r.structured_content.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    assert!(
        dry["warnings"].to_string().contains("was interrupted"),
        "{dry}"
    );
    assert!(!p.has_column(&p.staging, "accounts", "tier").await);
    c.close().await;
}

#[tokio::test]
async fn a_lock_on_a_table_the_analysis_does_not_name_is_a_disagreement() {
    // Dropping a foreign key also takes ACCESS EXCLUSIVE on the table it references (its
    // triggers there go): the statement names only `ledger`, and `accounts` waits too.
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            steps(
                "ledger rows outlive their account",
                json!([{"name": "fk",
                        "up": "ALTER TABLE ledger DROP CONSTRAINT ledger_account_id_fkey",
                        "down": "ALTER TABLE ledger ADD CONSTRAINT ledger_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id)"}]),
            ),
        )
        .await;
    let dry = c
        .ok("dry-run", json!({"plan_id": common::plan_id(&planned)}))
        .await;
    let found = dry["disagreements"].to_string();
    assert!(
        found.contains("on `accounts`") && found.contains("ACCESS EXCLUSIVE"),
        "{dry}"
    );
    c.close().await;
}
