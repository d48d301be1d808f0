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
