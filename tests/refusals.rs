//! Bad input gets a clear `{code, message, fix}` and changes nothing: not the target, not the
//! state store. Each refusal the spine promises is exercised here through the MCP client.

mod common;

use common::{Project, add_column_plan, plan_id};
use serde_json::json;

const EXTRA: &str = r#"
[targets.analytics]
url = "sqlite:analytics.db"
role = "staging"

[targets.pg]
url = "postgres://app:hunter2-secret@127.0.0.1:1/app"
role = "production"
"#;

async fn project() -> Project {
    let p = Project::build("", EXTRA).await;
    drydock::demo::seed(&p.path("analytics.db"), 5)
        .await
        .unwrap();
    p
}

#[tokio::test]
async fn unknown_target_and_unknown_plan() {
    let p = project().await;
    let c = p.connect().await;
    let mut plan = add_column_plan();
    plan["target"] = json!("prod");
    let r = c.refused("plan", plan).await;
    assert_eq!(r["code"], "unknown-target");
    assert!(r["message"].as_str().unwrap().contains("prod"));

    for tool in ["dry-run", "apply", "validate", "status"] {
        let r = c.refused(tool, json!({"plan_id": "pl-nope"})).await;
        assert_eq!(r["code"], "unknown-plan", "{tool}");
    }
    let r = c
        .refused("rollback", json!({"plan_id": "pl-nope", "reason": "x"}))
        .await;
    assert_eq!(r["code"], "unknown-plan");
    let r = c.refused("inspect", json!({"target": "nope"})).await;
    assert_eq!(r["code"], "unknown-target");
    assert_eq!(
        c.ok("status", json!({})).await["plans"],
        json!([]),
        "nothing was stored"
    );
    c.close().await;
}

#[tokio::test]
async fn a_dry_run_never_runs_on_production_or_on_an_unrelated_target() {
    let p = project().await;
    let c = p.connect().await;
    let id = plan_id(&c.ok("plan", add_column_plan()).await);
    let r = c
        .refused("dry-run", json!({"plan_id": id, "target": "production"}))
        .await;
    assert_eq!(r["code"], "production-target");
    assert!(r["fix"].as_str().unwrap().contains("omit `target`"));
    let r = c
        .refused("dry-run", json!({"plan_id": id, "target": "analytics"}))
        .await;
    assert_eq!(r["code"], "plan-target-mismatch");
    // a scratch target is always acceptable
    c.ok("dry-run", json!({"plan_id": id, "target": "scratch"}))
        .await;
    assert!(p.errors_md().contains("production-target"));
    c.close().await;
}

#[tokio::test]
async fn sql_that_fails_is_reported_and_changes_nothing() {
    let p = project().await;
    let c = p.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "typo", "target": "production",
                   "steps": [{"up": "ALTER TABLE usres ADD COLUMN x INTEGER", "down": "ALTER TABLE usres DROP COLUMN x"}]}),
        )
        .await,
    );
    let r = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "sql-failed");
    assert!(r["message"].as_str().unwrap().contains("usres"), "{r}");
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(s["status"], "planned");
    let staging = s["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "staging-tested")
        .unwrap()
        .clone();
    assert_eq!(staging["state"], "failed");
    assert_eq!(
        p.scalar(
            "staging.db",
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        )
        .await,
        2
    );
    let log = p.errors_md();
    assert!(log.contains("sql-failed") && log.contains("usres"), "{log}");
    c.close().await;
}

#[tokio::test]
async fn a_check_cannot_smuggle_a_second_statement() {
    let p = project().await;
    let c = p.connect().await;
    let mut plan = add_column_plan();
    plan["checks"] =
        json!([{"name": "sneaky", "sql": "SELECT 1; DROP TABLE users", "expect": "true"}]);
    let r = c.refused("plan", plan).await;
    assert_eq!(r["code"], "invalid-check");
    assert!(r["message"].as_str().unwrap().contains("sneaky"));
    let mut plan = add_column_plan();
    plan["checks"] = json!([{"name": "writer", "sql": "DELETE FROM users", "expect": "empty"}]);
    assert_eq!(c.refused("plan", plan).await["code"], "invalid-check");
    assert_eq!(
        p.scalar("prod.db", "SELECT count(*) FROM users").await,
        2000
    );
    assert_eq!(c.ok("status", json!({})).await["plans"], json!([]));
    c.close().await;
}

#[tokio::test]
async fn malformed_plans_are_refused_with_the_field_named() {
    let p = project().await;
    let c = p.connect().await;
    let r = c
        .refused("plan", json!({"goal": "nothing", "target": "production"}))
        .await;
    assert_eq!(r["code"], "invalid-input");
    assert!(r["message"].as_str().unwrap().contains("steps"));
    let r = c
        .refused("plan", json!({"goal": "tx", "target": "production", "steps": [{"up": "BEGIN; ALTER TABLE users ADD COLUMN x int; COMMIT", "down": "SELECT 1"}]}))
        .await;
    assert_eq!(r["code"], "invalid-input");
    let mut plan = add_column_plan();
    plan["checks"] = json!([{"name": "c", "sql": "SELECT 1", "expect": "maybe"}]);
    let r = c.call("plan", plan).await;
    assert_eq!(r.is_error, Some(true), "a bad `expect` is refused");
    c.close().await;
}

#[tokio::test]
async fn rejected_plans_cannot_be_applied() {
    let p = project().await;
    let c = p.connect().await;
    let id = plan_id(&c.ok("plan", add_column_plan()).await);
    c.ok("dry-run", json!({"plan_id": id})).await;
    let out = p.cli(&["reject", &id, "--reason", "wrong table", "--by", "carol"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "wrong-status");
    let approve = p.cli(&["approve", &id, "--by", "alice"]);
    assert_eq!(approve.status.code(), Some(2));
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'tier'"
        )
        .await,
        0
    );
    c.close().await;
}

#[tokio::test]
async fn rollback_outside_the_window_is_refused() {
    let p = Project::with_policy("rollback_window = \"1s\"").await;
    let c = p.connect().await;
    let id = p.ready(&c, add_column_plan()).await;
    c.ok("apply", json!({"plan_id": id})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = c
        .refused("rollback", json!({"plan_id": id, "reason": "too late"}))
        .await;
    assert_eq!(r["code"], "rollback-window-closed");
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'tier'"
        )
        .await,
        1
    );
    c.close().await;
}

#[tokio::test]
async fn a_rollback_that_does_not_restore_the_schema_fails_the_dry_run() {
    let p = project().await;
    let c = p.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "index", "target": "production",
                   "steps": [{"up": "CREATE INDEX users_name ON users (name); ALTER TABLE users ADD COLUMN x INTEGER",
                              "down": "ALTER TABLE users DROP COLUMN x"}]}),
        )
        .await,
    );
    let r = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "rollback-unverified");
    assert!(r["message"].as_str().unwrap().contains("users_name"), "{r}");
    c.close().await;
}

#[tokio::test]
async fn connection_strings_never_appear() {
    let p = project().await;
    let c = p.connect().await;
    let r = c.call("inspect", json!({"target": "pg"})).await;
    assert_eq!(r.is_error, Some(true));
    let text = format!("{r:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let mut plan = add_column_plan();
    plan["target"] = json!("pg");
    let r = c.call("plan", plan).await;
    assert!(!format!("{r:?}").contains("hunter2"));
    let checklist = c
        .service
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "drydock://checklist",
        ))
        .await
        .unwrap();
    let text = format!("{checklist:?}");
    assert!(
        text.contains("\\\"pg\\\"") && !text.contains("hunter2"),
        "{text}"
    );
    let doctor = p.cli(&["doctor"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(out.contains("pg") && !out.contains("hunter2"), "{out}");
    assert!(!p.errors_md().contains("hunter2"));
    c.close().await;
}

/// A step's `restore` (values put back in batches by a rollback, before its `down`) is what
/// drydock's drop templates write: an agent's steps carrying one are refused, nothing stored.
#[tokio::test]
async fn an_agents_step_may_not_carry_a_restore() {
    let p = project().await;
    let c = p.connect().await;
    let mut plan = add_column_plan();
    plan["steps"][0]["restore"] = json!({
        "table": "users", "key": "id", "columns": ["tier"], "from": "drydock.users_tier",
        "prepare": "ALTER TABLE users ADD COLUMN IF NOT EXISTS tier text"
    });
    let r = c.refused("plan", plan).await;
    assert!(r["message"].as_str().unwrap().contains("`restore`"), "{r}");
    assert!(r["fix"].as_str().is_some_and(|f| !f.is_empty()), "{r}");
    assert_eq!(c.ok("status", json!({})).await["plans"], json!([]));
    c.close().await;
}
