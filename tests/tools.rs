//! Other migration tools' history, as `inspect` and `doctor` report it: a real `_sqlx_migrations`
//! written by sqlx's own migrator from a folder, a golang-migrate table left dirty, and a Flyway
//! history with a failed version — on PostgreSQL, and sqlx's on SQLite.

mod common;

use common::walk::run_sql;
use common::{PgProject, Project, pg_connect};
use serde_json::{Value, json};
use sqlx::Connection;

fn migrations_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("20240101000000_create_widgets.sql"),
        "CREATE TABLE widgets (id integer PRIMARY KEY, name text);",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20240202000000_widget_color.sql"),
        "ALTER TABLE widgets ADD COLUMN color text;",
    )
    .unwrap();
    dir
}

fn tool<'a>(inspected: &'a Value, name: &str) -> &'a Value {
    inspected["migration_tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no migration_tools: {inspected}"))
        .iter()
        .find(|t| t["tool"] == name)
        .unwrap_or_else(|| panic!("{name} not reported: {inspected}"))
}

#[tokio::test]
async fn inspect_and_doctor_report_the_migration_tools_already_in_charge() {
    let p = PgProject::new("").await;
    let folder = migrations_folder();
    let migrator = sqlx::migrate::Migrator::new(folder.path()).await.unwrap();
    let mut c = pg_connect(&p.prod).await;
    migrator.run(&mut c).await.unwrap();
    c.close().await.ok();
    run_sql(
        &p.prod,
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (7, true);
         CREATE SCHEMA flyway;
         CREATE TABLE flyway.flyway_schema_history (installed_rank integer PRIMARY KEY, version varchar(50), description varchar(200),
             type varchar(20), script varchar(1000), checksum integer, installed_by varchar(100), installed_on timestamp DEFAULT now(),
             execution_time integer, success boolean NOT NULL);
         INSERT INTO flyway.flyway_schema_history (installed_rank, version, script, success) VALUES
             (1, '1', 'V1__init.sql', true), (2, '1.1', 'V1_1__more.sql', true), (3, '2', 'V2__broken.sql', false)",
    )
    .await;
    let client = p.project.connect().await;
    let inspected = client.ok("inspect", json!({"target": "production"})).await;
    let sqlx_tool = tool(&inspected, "sqlx");
    assert_eq!(sqlx_tool["table"], "_sqlx_migrations");
    assert_eq!(sqlx_tool["latest_version"], "20240202000000");
    assert_eq!(sqlx_tool["applied"], 2);
    assert_eq!(sqlx_tool["failed"], json!([]));
    let golang = tool(&inspected, "golang-migrate");
    assert_eq!(golang["latest_version"], Value::Null, "{golang}");
    assert_eq!(golang["failed"], json!(["7"]));
    let flyway = tool(&inspected, "flyway");
    assert_eq!(flyway["table"], "flyway.flyway_schema_history");
    assert_eq!(flyway["latest_version"], "1.1");
    assert_eq!(flyway["failed"], json!(["2"]));
    client.close().await;

    let out = p.project.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("migration tool sqlx (_sqlx_migrations): at 20240202000000, 2 version(s)"),
        "{text}"
    );
    assert!(
        text.contains(
            "migration tool flyway (flyway.flyway_schema_history): at 1.1, 3 version(s), FAILED: 2"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn sqlx_history_is_reported_on_sqlite_too() {
    let p = Project::new().await;
    let folder = migrations_folder();
    let migrator = sqlx::migrate::Migrator::new(folder.path()).await.unwrap();
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", p.path("prod.db").display()))
        .await
        .unwrap();
    migrator.run(&mut c).await.unwrap();
    c.close().await.ok();
    let client = p.connect().await;
    let inspected = client.ok("inspect", json!({"target": "production"})).await;
    let sqlx_tool = tool(&inspected, "sqlx");
    assert_eq!(sqlx_tool["latest_version"], "20240202000000");
    assert_eq!(sqlx_tool["applied"], 2);
    client.close().await;
}

/// MCP clients cut long tool results (Claude Code at ~25,000 tokens): on a 200-table database a
/// plan stays small, and `inspect` pages its tables, every one reachable through `next`.
#[tokio::test]
async fn a_large_schema_is_read_in_pages_and_plans_stay_small() {
    let p = PgProject::new("").await;
    run_sql(
        &p.prod,
        "DO $$ BEGIN FOR i IN 1..200 LOOP
             EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, a text, b text, c integer, d timestamptz, e boolean, f numeric, g jsonb)', 'tbl_' || lpad(i::text, 3, '0'));
             EXECUTE format('CREATE INDEX ON %I (a, c)', 'tbl_' || lpad(i::text, 3, '0'));
         END LOOP; END $$",
    )
    .await;
    let c = p.project.connect().await;
    let first = c.ok("inspect", json!({"target": "production"})).await;
    let total = first["total_tables"].as_u64().unwrap() as usize;
    assert!(total >= 202, "{}", first["total_tables"]);
    assert_eq!(first["tables"].as_object().unwrap().len(), 20);
    assert!(
        first.to_string().len() < 32_000,
        "one page is {} characters",
        first.to_string().len()
    );
    let mut seen: Vec<String> = first["tables"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut next = first["next"].as_str().map(String::from);
    while let Some(after) = next {
        let page = c
            .ok(
                "inspect",
                json!({"target": "production", "after": after, "limit": 70}),
            )
            .await;
        seen.extend(page["tables"].as_object().unwrap().keys().cloned());
        next = page["next"].as_str().map(String::from);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), total, "every table once");
    assert_eq!(unique.len(), total);

    let planned = c
        .call(
            "plan",
            json!({"goal": "flag", "target": "production", "template": "add-column",
                   "params": {"table": "tbl_100", "column": "flag", "type": "boolean"}}),
        )
        .await;
    let size: usize = planned
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.len()))
        .sum();
    assert!(size < 40_000, "the plan's result is {size} characters");
    c.close().await;
}
