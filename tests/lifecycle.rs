//! The whole lifecycle through MCP on SQLite: plan → refused apply → dry-run → approval (CLI) →
//! apply → validate → rollback, with every piece of evidence checked in the target, the state
//! store and ERRORS.md.

mod common;

use common::{Project, add_column_plan, plan_id};
use serde_json::json;

async fn has_tier_column(p: &Project, db: &str) -> bool {
    p.scalar(
        db,
        "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'tier'",
    )
    .await
        == 1
}

#[tokio::test]
async fn a_migration_walks_from_plan_to_rollback() {
    let p = Project::new().await;
    let c = p.connect().await;

    let inspect = c
        .ok("inspect", json!({"target": "production", "table": "users"}))
        .await;
    assert_eq!(inspect["tables"]["users"]["rows"], 2000);
    assert_eq!(inspect["role"], "production");

    // plan
    let planned = c.ok("plan", add_column_plan()).await;
    let id = plan_id(&planned);
    assert_eq!(planned["status"], "planned");
    assert_eq!(planned["checksum"].as_str().unwrap().len(), 64);
    assert_eq!(
        planned["analysis"]["statements"][0]["kind"],
        "alter table add column"
    );
    assert_eq!(planned["analysis"]["impact"][0]["table"], "users");
    assert_eq!(planned["analysis"]["impact"][0]["rows"], 2000);
    let items: Vec<&str> = planned["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert_eq!(
        items,
        [
            "staging-tested",
            "backup-verified",
            "transactional",
            "monitoring",
            "rollback-ready",
            "approved"
        ]
    );
    assert!(
        planned["next_steps"][0]
            .as_str()
            .unwrap()
            .contains("dry-run")
    );

    // apply before any evidence: refused, every unmet item named, logged, nothing changed
    let refused = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "checklist-unmet");
    let unmet: Vec<&str> = refused["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] != "passed")
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert!(
        unmet.contains(&"staging-tested")
            && unmet.contains(&"approved")
            && unmet.contains(&"rollback-ready"),
        "{unmet:?}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("staging-tested")
    );
    assert!(!has_tier_column(&p, "prod.db").await);
    let log = p.errors_md();
    assert!(
        log.contains("checklist-unmet") && log.contains("test-agent") && log.contains(&id),
        "{log}"
    );

    // dry-run on the linked staging's copy
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["ok"], true);
    assert_eq!(dry["rollback_verified"], true);
    assert_eq!(dry["target"], "staging");
    let st = &dry["statements"][0];
    assert_eq!(st["step"], "add-tier");
    assert!(st["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(st["locks"][0]["relation"], "database");
    assert_eq!(dry["checks"][0]["passed"], true);
    assert_eq!(dry["tables"][0]["staging_rows"], 200);
    assert_eq!(dry["tables"][0]["production_rows"], 2000);
    assert!((dry["tables"][0]["ratio"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert!(
        dry["estimate"]["production_ms"].as_f64().unwrap()
            >= dry["estimate"]["staging_ms"].as_f64().unwrap()
    );
    assert!(
        !has_tier_column(&p, "staging.db").await,
        "staging itself must stay untouched"
    );

    // the agent has no approver identity: its name over stdio is no principal's
    let show = p.cli(&["show", &id, "--format", "json"]);
    let author = serde_json::from_slice::<serde_json::Value>(&show.stdout).unwrap()["author"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(author, "test-agent (stdio)");
    assert!(drydock::identity::validate_name(&author).is_err());
    p.approve(&id, "alice");
    let show = p.cli(&["show", &id]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("ALTER TABLE users ADD COLUMN tier") && show.contains("approved by alice"),
        "{show}"
    );

    // apply: backup first, then the step with its history row, with progress notifications
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["applied_steps"], json!(["add-tier"]));
    assert_eq!(applied["backup"]["verified"], true);
    assert_eq!(applied["backup"]["row_counts"]["users"], 2000);
    assert!(std::path::Path::new(applied["backup"]["location"].as_str().unwrap()).exists());
    assert!(has_tier_column(&p, "prod.db").await);
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM _drydock_history WHERE status = 'applied'"
        )
        .await,
        1
    );
    assert!(
        c.progress.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "apply sends progress notifications"
    );

    // a second apply reports instead of re-running
    let again = c.ok("apply", json!({"plan_id": id})).await;
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already applied")
    );
    assert_eq!(
        p.scalar("prod.db", "SELECT count(*) FROM _drydock_history")
            .await,
        1
    );

    // validate
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"], "validated");
    assert_eq!(v["checks"][0]["passed"], true);
    assert!(
        v["builtin"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["passed"] == true),
        "{v}"
    );

    // rollback needs a reason, then restores the pre-apply schema
    let no_reason = c.refused("rollback", json!({"plan_id": id})).await;
    assert_eq!(no_reason["code"], "missing-reason");
    assert!(has_tier_column(&p, "prod.db").await);
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "tier moves to the billing service"}),
        )
        .await;
    assert_eq!(rb["status"], "rolled-back");
    assert_eq!(rb["schema_verified"], true);
    assert!(!has_tier_column(&p, "prod.db").await);
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM _drydock_history WHERE rolled_back_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        p.scalar("prod.db", "SELECT count(*) FROM users").await,
        2000
    );

    // status tells the whole story
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(s["status"], "rolled-back");
    assert_eq!(s["steps"][0]["state"], "rolled-back");
    let kinds: Vec<&str> = s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    // Newest first, each in one line (the brief `status` gives by default); the linked staging
    // followed the apply and the rollback.
    assert_eq!(
        kinds,
        [
            "staging-sync",
            "rollback",
            "validate",
            "staging-sync",
            "apply"
        ]
    );
    assert_eq!(s["runs_total"], 7);
    let list = c.ok("status", json!({})).await;
    assert_eq!(list["plans"][0]["plan_id"], id.as_str());
    c.close().await;
}

#[tokio::test]
async fn repeated_refusals_are_counted_not_copied() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = plan_id(&c.ok("plan", add_column_plan()).await);
    for _ in 0..3 {
        c.refused("apply", json!({"plan_id": id})).await;
    }
    let log = p.errors_md();
    assert_eq!(log.matches("· checklist-unmet ·").count(), 1, "{log}");
    assert!(log.contains("**seen:** 3 times"), "{log}");
    // the lesson now reaches the agent's instructions and later plans on the same table
    let prompt = c
        .service
        .get_prompt(rmcp::model::GetPromptRequestParams::new(
            "migration-specialist",
        ))
        .await
        .unwrap();
    let text = format!("{:?}", prompt.messages);
    assert!(
        text.contains("checklist-unmet") && text.contains("seen 3"),
        "{text}"
    );
    let next = c.ok("plan", add_column_plan()).await;
    assert_eq!(next["lessons"][0]["code"], "checklist-unmet");
    c.close().await;
}

#[tokio::test]
async fn record_mistake_refuses_a_field_it_does_not_know() {
    let p = Project::new().await;
    let c = p.connect().await;
    let r = c
        .call(
            "record-mistake",
            json!({"what": "x", "lesson": "y", "severity": "high"}),
        )
        .await;
    assert_eq!(r.is_error, Some(true), "{r:?}");
    assert!(
        format!("{:?}", r.content).contains("unknown field `severity`"),
        "{r:?}"
    );
    assert!(!p.errors_md().contains("## "), "nothing was recorded");
    c.close().await;
}

#[tokio::test]
async fn concurrent_repeats_of_a_mistake_are_answered_one_to_n_each_once() {
    let p = Project::new().await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(p.connect().await);
    }
    let counts = futures_util::future::join_all(clients.iter().map(|c| async move {
        c.ok(
            "record-mistake",
            json!({"what": "backfilled in one UPDATE", "lesson": "backfill in batches"}),
        )
        .await["count"]
            .as_u64()
            .unwrap()
    }))
    .await;
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=12).collect::<Vec<u64>>(),
        "answered {counts:?}"
    );
    assert!(p.errors_md().contains("**seen:** 12 times"));
    for c in clients {
        c.close().await;
    }
}

#[tokio::test]
async fn a_failed_apply_rolls_back_the_whole_step() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({
                "goal": "add a tier and an audit table",
                "target": "production",
                "steps": [{
                    "up": "ALTER TABLE users ADD COLUMN tier TEXT; CREATE TABLE audit_trail (id INTEGER PRIMARY KEY, note TEXT)",
                    "down": "DROP TABLE audit_trail; ALTER TABLE users DROP COLUMN tier"
                }]
            }),
        )
        .await,
    );
    c.ok("dry-run", json!({"plan_id": id})).await;
    // after the dry-run, production gains a table the plan creates: the apply fails mid-step
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(p.path("prod.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE audit_trail (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    p.approve(&id, "alice");
    let failed = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(failed["code"], "sql-failed");
    assert!(
        failed["message"].as_str().unwrap().contains("statement 2"),
        "{failed}"
    );
    assert!(
        !has_tier_column(&p, "prod.db").await,
        "statement 1 must be rolled back with the step"
    );
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM sqlite_master WHERE name = '_drydock_history'"
        )
        .await,
        0
    );
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(s["status"], "approved");
    assert_eq!(s["steps"][0]["state"], "pending");
    assert!(p.errors_md().contains("sql-failed"));
    c.close().await;
}

#[tokio::test]
async fn gated_steps_wait_for_an_engineer() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, json!({
                "goal": "expand then contract",
                "target": "production",
                "steps": [
                    {"name": "expand", "up": "ALTER TABLE users ADD COLUMN nickname TEXT", "down": "ALTER TABLE users DROP COLUMN nickname"},
                    {"name": "index", "up": "CREATE INDEX users_nickname ON users (nickname)", "down": "DROP INDEX users_nickname", "gate": {"kind": "manual"}}
                ]
            })).await;
    let first = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(first["applied_steps"], json!(["expand"]));
    assert_eq!(first["gated"]["step"], "index");
    assert_eq!(first["status"], "applying");
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(s["steps"][0]["state"], "applied");
    assert_eq!(s["steps"][1]["state"], "gated");
    // still gated on a second call
    let still = c.ok("apply", json!({"plan_id": id})).await;
    assert!(still["applied_steps"].as_array().unwrap().is_empty());

    let rel = p.cli(&["release", &id, "index", "--by", "bob"]);
    assert!(
        rel.status.success(),
        "{}",
        String::from_utf8_lossy(&rel.stderr)
    );
    let done = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(done["applied_steps"], json!(["index"]));
    assert_eq!(done["status"], "applied");
    assert_eq!(
        p.scalar(
            "prod.db",
            "SELECT count(*) FROM sqlite_master WHERE name = 'users_nickname'"
        )
        .await,
        1
    );

    let rb = c
        .ok("rollback", json!({"plan_id": id, "reason": "test"}))
        .await;
    assert_eq!(rb["rolled_back"], json!(["index", "expand"]));
    assert_eq!(rb["schema_verified"], true);
    c.close().await;
}

/// A hotfix skips staging only when two distinct approvers sign the waiver: approvals alone do
/// not waive anything, one waiver is not enough, the same approver twice is one, the author
/// (an agent over stdio) has no identity that could, and a normal plan cannot be waived at all.
#[tokio::test]
async fn a_hotfix_skips_staging_only_with_two_waivers() {
    let p = Project::new().await;
    let c = p.connect().await;
    let mut normal = add_column_plan();
    normal["goal"] = json!("not urgent");
    let normal = plan_id(&c.ok("plan", normal).await);
    let out = p.cli(&["waive", &normal, "--reason", "impatient", "--by", "alice"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a hotfix"));

    let mut plan = add_column_plan();
    plan["urgency"] = json!("p0");
    let id = plan_id(&c.ok("plan", plan).await);
    p.approve(&id, "alice");
    p.approve(&id, "bob");
    let approved_only = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(
        approved_only["code"], "checklist-unmet",
        "two approvals waive nothing"
    );
    // The author over stdio is no principal: no token or passphrase can be had for its name.
    let own = p.cli(&[
        "waive",
        &id,
        "--reason",
        "mine",
        "--by",
        &format!("{} (stdio)", common::AGENT_NAME),
    ]);
    assert!(String::from_utf8_lossy(&own.stderr).contains("needs-a-person"));
    p.waive(&id, "alice");
    p.waive(&id, "alice");
    let one = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(
        one["code"], "checklist-unmet",
        "one approver waiving twice is one waiver"
    );
    p.waive(&id, "bob");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied");
    let staging = applied["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "staging-tested")
        .unwrap()
        .clone();
    assert_eq!(staging["state"], "waived");
    assert!(p.errors_md().contains("hotfix-waiver"));
    c.close().await;
}

#[tokio::test]
async fn templates_render_into_plans() {
    let p = Project::new().await;
    let c = p.connect().await;
    let list = c.ok("render-template", json!({})).await;
    let names: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"migration") && names.contains(&"add-column"));
    let migration = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "migration")
        .unwrap();
    assert!(
        migration["params"]["properties"]["rollback_strategy"].is_object(),
        "{migration}"
    );

    let rendered = c
        .ok("render-template", json!({"template": "add-column", "params": {"table": "users", "column": "plan", "type": "text", "default": "free"}}))
        .await;
    assert_eq!(
        rendered["steps"][0]["up"],
        r#"ALTER TABLE "users" ADD COLUMN "plan" text DEFAULT 'free';"#
    );

    let hostile = c
        .refused("render-template", json!({"template": "add-column", "params": {"table": "users\"; DROP TABLE users; --", "column": "c", "type": "int"}}))
        .await;
    assert_eq!(hostile["code"], "invalid-template-params");

    let planned = c
        .ok(
            "plan",
            json!({"goal": "plan column", "target": "production", "template": "add-column",
                   "params": {"table": "users", "column": "plan", "type": "text", "default": "free"}}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true);
    assert_eq!(dry["checks"].as_array().unwrap().len(), 2);
    c.close().await;
}

/// A rollback whose `down` fails in production (an index made there after the apply holds the
/// column) is in the plan's runs and in the audit, as a failed apply is — not only in the answer.
#[tokio::test]
async fn a_failed_rollback_is_in_the_runs_and_the_audit() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, common::add_column_plan()).await;
    c.ok("apply", json!({"plan_id": id})).await;
    use sqlx::Connection;
    let mut conn =
        sqlx::sqlite::SqliteConnection::connect(&format!("sqlite:{}", p.path("prod.db").display()))
            .await
            .unwrap();
    sqlx::query("CREATE INDEX users_tier ON users (tier)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let refused = c
        .refused("rollback", json!({"plan_id": id, "reason": "wrong tier"}))
        .await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    let status = c.ok("status", json!({"plan_id": id, "detail": true})).await;
    let runs = status["report"]["runs"].as_array().unwrap();
    let failed = runs
        .iter()
        .find(|r| r["kind"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback run: {runs:?}"));
    assert_eq!(failed["ok"], false, "{failed}");
    let audit = p.engine().await.audit_log(100).await.unwrap();
    let row = audit
        .iter()
        .find(|a| a.action == "rollback-failed")
        .unwrap_or_else(|| panic!("{audit:?}"));
    assert_eq!(row.plan_id.as_deref(), Some(id.as_str()));
    assert!(row.detail.contains("wrong tier"), "{}", row.detail);
    c.close().await;
}
