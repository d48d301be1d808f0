//! The guarantees of `rollback-ready` tried the way a hurried agent breaks them: a backfill that
//! overwrites a production column with a constant and a no-op `down`, and plain `UPDATE`s whose
//! `down` does not put the data back. Rollback must restore data, not only the schema; the
//! reviewer must see the backfill in full.

mod common;

use common::walk::run_sql;
use common::{PgProject, Project, plan_id};
use serde_json::json;

#[tokio::test]
async fn a_backfill_never_destroys_data() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        p.scalar(
            db,
            "WITH u AS (UPDATE accounts SET nickname = 'nick-' || id RETURNING 1) SELECT count(*) FROM u",
        )
        .await;
    }
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "reset every nickname", "target": "production",
                   "steps": [{"name": "overwrite", "backfill": {"table": "accounts", "set": "nickname = 'same'", "batch_size": 3000}, "down": "SELECT 1"}]}),
        )
        .await;
    let id = plan_id(&planned);
    let facts = planned["analysis"]["statements"].to_string();
    assert!(
        facts.contains("UPDATE \\\"accounts\\\" SET nickname = 'same'")
            || facts.contains("UPDATE \"accounts\" SET nickname = 'same'"),
        "the backfill is analysed as the UPDATE it runs: {facts}"
    );
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    assert_eq!(
        p.scalar(
            &p.staging,
            "SELECT count(*) FROM accounts WHERE nickname = 'nick-' || id"
        )
        .await,
        2000,
        "the dry-run left staging's data as it was"
    );

    // The reviewer sees the UPDATE, not `up: -- none`.
    let show = p.project.cli(&["show", &id]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("SET nickname = 'same'") && shown.contains("overwrites `nickname`"),
        "{shown}"
    );

    p.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname = 'same'"
        )
        .await,
        20000
    );
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "the nicknames were needed"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname = 'nick-' || id"
        )
        .await,
        20000,
        "every overwritten value is back"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'drydock_backup' AND tablename LIKE 'bf_%'"
        )
        .await,
        0,
        "the saved values are dropped once restored"
    );
    c.close().await;
}

#[tokio::test]
async fn a_down_that_loses_data_fails_the_dry_run_on_postgres() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "zero the balances", "target": "production",
                   "steps": [{"name": "zero", "up": "UPDATE accounts SET balance = 0 WHERE balance > 500", "down": "SELECT 1"}]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "rollback-unverified", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("the data of `accounts`"),
        "{refused}"
    );
    // An exact inverse passes: adding a column and dropping it leaves the data as it was.
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "a column", "target": "production",
                   "steps": [{"name": "add", "up": "ALTER TABLE accounts ADD COLUMN tier text DEFAULT 'free'", "down": "ALTER TABLE accounts DROP COLUMN tier"}]}),
        )
        .await,
    );
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    c.close().await;
}

/// The data comparison reads only the tables whose marks moved (storage, columns, rows this
/// transaction wrote), and reads them as they were before `up` by rewinding to a savepoint:
/// every way a plan can lose rows or values without a row count is still caught, and an exact
/// inverse that writes rows (or rewrites the table) still passes.
#[tokio::test]
async fn every_way_of_losing_data_is_seen_by_the_marks() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "CREATE TABLE readings (at date NOT NULL, value numeric NOT NULL) PARTITION BY RANGE (at);
             CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             INSERT INTO readings SELECT DATE '2025-01-01' + g, g / 7.0 FROM generate_series(0, 300) g;
             UPDATE accounts SET nickname = 'n' || id;
             CREATE TABLE cities (name text NOT NULL, population integer NOT NULL);
             CREATE TABLE capitals (state text NOT NULL) INHERITS (cities);
             INSERT INTO capitals VALUES ('Paris', 2100000, 'IDF'), ('Lyon', 500000, 'ARA')",
        )
        .await;
    }
    let c = p.project.connect().await;
    let lost = [
        ("TRUNCATE ledger", "SELECT 1", "ledger"),
        ("DELETE FROM ledger WHERE id = 1", "SELECT 1", "ledger"),
        (
            "ALTER TABLE accounts DROP COLUMN nickname",
            "ALTER TABLE accounts ADD COLUMN nickname text",
            "accounts",
        ),
        (
            "ALTER TABLE readings ALTER COLUMN value TYPE integer",
            "ALTER TABLE readings ALTER COLUMN value TYPE numeric",
            "readings",
        ),
        (
            "DELETE FROM readings_2025 WHERE value > 40",
            "SELECT 1",
            "readings_2025",
        ),
        // Rows of a child by inheritance, deleted through its parent: counted on the child.
        (
            "DELETE FROM cities WHERE population > 1000000",
            "SELECT 1",
            "cities",
        ),
    ];
    for (up, down, table) in lost {
        let id = plan_id(
            &c.ok(
                "plan",
                json!({"goal": format!("lose data: {up}"), "target": "production",
                       "steps": [{"name": "lose", "up": up, "down": down}]}),
            )
            .await,
        );
        let refused = c.refused("dry-run", json!({"plan_id": id})).await;
        assert_eq!(refused["code"], "rollback-unverified", "{up}: {refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains(&format!("the data of `{table}`")),
            "{up}: {refused}"
        );
    }
    let kept = [
        (
            "UPDATE accounts SET balance = balance + 1",
            "UPDATE accounts SET balance = balance - 1",
        ),
        (
            "ALTER TABLE accounts ALTER COLUMN score TYPE bigint",
            "ALTER TABLE accounts ALTER COLUMN score TYPE integer",
        ),
        (
            "ALTER TABLE readings ADD COLUMN note text",
            "ALTER TABLE readings DROP COLUMN note",
        ),
    ];
    for (up, down) in kept {
        let id = plan_id(
            &c.ok(
                "plan",
                json!({"goal": format!("keep data: {up}"), "target": "production",
                       "steps": [{"name": "keep", "up": up, "down": down}]}),
            )
            .await,
        );
        let dry = c.ok("dry-run", json!({"plan_id": id})).await;
        assert_eq!(dry["rollback_verified"], true, "{up}: {dry}");
    }
    c.close().await;
}

#[tokio::test]
async fn a_down_that_loses_data_fails_the_dry_run_on_sqlite() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "anonymise", "target": "production",
                   "steps": [{"name": "wipe", "up": "UPDATE users SET name = 'anonymous'", "down": "SELECT 1"}]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "rollback-unverified", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("the data of `users`"),
        "{refused}"
    );
    c.close().await;
}

#[tokio::test]
async fn a_backup_counts_only_for_its_plan_and_the_tables_it_covers() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let ledger = p
        .project
        .ready(
            &c,
            json!({"goal": "a memo on ledger rows", "target": "production",
                   "steps": [{"name": "memo", "up": "ALTER TABLE ledger ADD COLUMN memo text", "down": "ALTER TABLE ledger DROP COLUMN memo"}]}),
        )
        .await;
    let applied = c.ok("apply", json!({"plan_id": ledger})).await;
    assert_eq!(applied["backup"]["tables"], json!(["ledger"]), "{applied}");

    // A second plan, on another table, within backup_max_age of the first backup.
    let accounts = p
        .project
        .ready(
            &c,
            json!({"goal": "a tier per account", "target": "production",
                   "steps": [{"name": "tier", "up": "ALTER TABLE accounts ADD COLUMN tier text", "down": "ALTER TABLE accounts DROP COLUMN tier"}]}),
        )
        .await;
    let status = c.ok("status", json!({"plan_id": accounts})).await;
    let item = status["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "backup-verified")
        .unwrap()
        .clone();
    assert_ne!(
        item["state"], "passed",
        "another plan's snapshot of another table does not count: {item}"
    );
    let applied = c.ok("apply", json!({"plan_id": accounts})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(
        applied["backup"]["tables"],
        json!(["accounts"]),
        "the plan took its own backup of the table it changes: {applied}"
    );
    c.close().await;
}

/// Plans that build on each other: each dry-runs on a staging that has what the earlier ones
/// applied to production (drydock applies every production step to the linked staging too),
/// and each validates cleanly.
async fn five_in_a_row(project: &Project, plans: Vec<serde_json::Value>) {
    let c = project.connect().await;
    for (n, mut body) in plans.into_iter().enumerate() {
        body["target"] = json!("production");
        body["goal"] = json!(format!("plan {n}"));
        let id = project.ready(&c, body).await;
        let applied = c.ok("apply", json!({"plan_id": id})).await;
        assert_eq!(applied["status"], "applied", "plan {n}: {applied}");
        assert_eq!(
            applied["staging_sync"]["in_background"], true,
            "plan {n}: staging follows production after the answer: {applied}"
        );
        let synced = c.staging_synced(&id).await;
        assert_eq!(
            synced["ok"], true,
            "plan {n}: staging followed production: {synced}"
        );
        let validated = c.ok("validate", json!({"plan_id": id})).await;
        assert_eq!(validated["ok"], true, "plan {n}: {validated}");
        let drift = validated["builtin"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == "schema-matches-dry-run")
            .unwrap()
            .clone();
        assert_eq!(
            drift["passed"], true,
            "plan {n}: compared, not skipped: {drift}"
        );
    }
    c.close().await;
}

fn step(up: &str, down: &str) -> serde_json::Value {
    json!({"steps": [{"name": "s", "up": up, "down": down}]})
}

#[tokio::test]
async fn five_plans_in_a_row_each_dry_run_apply_and_validate_on_postgres() {
    let p = PgProject::new("").await;
    five_in_a_row(
        &p.project,
        vec![
            step("ALTER TABLE accounts ADD COLUMN tier text", "ALTER TABLE accounts DROP COLUMN tier"),
            json!({"steps": [{"name": "fill", "backfill": {"table": "accounts", "set": "tier = 'free'", "where": "tier IS NULL"}}]}),
            step("CREATE INDEX accounts_tier ON accounts (tier)", "DROP INDEX accounts_tier"),
            json!({"steps": [
                {"name": "add", "up": "ALTER TABLE accounts ADD CONSTRAINT tier_known CHECK (tier IN ('free', 'pro')) NOT VALID", "down": "ALTER TABLE accounts DROP CONSTRAINT tier_known"},
                {"name": "validate", "up": "ALTER TABLE accounts VALIDATE CONSTRAINT tier_known", "down": "SELECT 1"}
            ]}),
            step("ALTER TABLE accounts ALTER COLUMN tier SET DEFAULT 'free'", "ALTER TABLE accounts ALTER COLUMN tier DROP DEFAULT"),
        ],
    )
    .await;
    assert_eq!(
        p.scalar(
            &p.staging,
            "SELECT count(*) FROM accounts WHERE tier = 'free'"
        )
        .await,
        2000,
        "staging received the backfill too"
    );
}

#[tokio::test]
async fn five_plans_in_a_row_each_dry_run_apply_and_validate_on_sqlite() {
    let p = Project::new().await;
    five_in_a_row(
        &p,
        vec![
            step(
                "ALTER TABLE users ADD COLUMN tier TEXT",
                "ALTER TABLE users DROP COLUMN tier",
            ),
            step(
                "CREATE INDEX users_tier ON users (tier)",
                "DROP INDEX users_tier",
            ),
            step(
                "ALTER TABLE users ADD COLUMN plan_started TEXT",
                "ALTER TABLE users DROP COLUMN plan_started",
            ),
            step(
                "CREATE INDEX users_tier_started ON users (tier, plan_started)",
                "DROP INDEX users_tier_started",
            ),
            step(
                "DROP INDEX users_tier",
                "CREATE INDEX users_tier ON users (tier)",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_drifted_staging_is_refused() {
    let p = PgProject::new("").await;
    let mut admin = common::pg_connect(&p.prod).await;
    sqlx::raw_sql("ALTER TABLE accounts ADD COLUMN added_by_hand text")
        .execute(&mut admin)
        .await
        .unwrap();
    use sqlx::Connection;
    admin.close().await.ok();
    let c = p.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "a tier", "target": "production",
                   "steps": [{"up": "ALTER TABLE accounts ADD COLUMN tier text", "down": "ALTER TABLE accounts DROP COLUMN tier"}]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "staging-drift", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("added_by_hand"),
        "{refused}"
    );
    c.close().await;
}

fn locks_of(statement: &serde_json::Value) -> Vec<(String, String, bool)> {
    statement["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["relation"].as_str().unwrap().to_string(),
                l["mode"].as_str().unwrap().to_string(),
                l["acquired"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_facts_reported_are_true() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    // A typo is an unknown object, high, whatever the table's size.
    let typo = c
        .ok(
            "plan",
            json!({"goal": "typo", "target": "production",
                   "steps": [{"up": "ALTER TABLE acounts ADD COLUMN tier text", "down": "ALTER TABLE acounts DROP COLUMN tier"}]}),
        )
        .await;
    assert!(
        typo["analysis"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["code"] == "unknown-object" && h["severity"] == "high"),
        "{typo}"
    );
    assert_eq!(typo["analysis"]["risk"], "high");

    // Locks accumulate: the second statement runs while the first one's lock is still held.
    let id = p
        .project
        .ready(
            &c,
            json!({"goal": "two statements", "target": "production",
                   "steps": [{"up": "ALTER TABLE accounts ADD COLUMN tier text; CREATE INDEX ledger_amount ON ledger (amount)",
                              "down": "DROP INDEX ledger_amount; ALTER TABLE accounts DROP COLUMN tier"}]}),
        )
        .await;
    let status = c.ok("status", json!({"plan_id": id, "detail": true})).await;
    let measured = status["report"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "dry-run")
        .unwrap()["detail"]["statements"]
        .clone();
    let second = locks_of(&measured[1]);
    assert!(
        second.contains(&("accounts".into(), "ACCESS EXCLUSIVE".into(), false)),
        "the first statement's lock is held during the second: {second:?}"
    );
    assert!(
        second.contains(&("ledger".into(), "SHARE".into(), true)),
        "{second:?}"
    );
    // apply reports the locks it took, not `[]`.
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    let first = locks_of(&applied["statements"][0]);
    assert!(
        first.contains(&("accounts".into(), "ACCESS EXCLUSIVE".into(), true)),
        "{applied}"
    );
    let validated = c.ok("validate", json!({"plan_id": id})).await;
    let integrity = validated["builtin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "integrity")
        .unwrap()
        .clone();
    assert!(
        !integrity["detail"]
            .as_str()
            .unwrap()
            .contains("integrity_check"),
        "PostgreSQL is not described in SQLite's words: {integrity}"
    );
    c.close().await;
}

/// A backfill that names a key, a column or a table the target does not have is refused when it
/// is planned, naming what is missing and what exists, and nothing is stored: the agent learns
/// it before a dry-run, not when an apply reaches the step.
#[tokio::test]
async fn a_backfill_naming_what_does_not_exist_is_refused_at_plan_time() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let backfill = |b: serde_json::Value| {
        json!({"goal": "fill", "target": "production",
               "steps": [{"name": "fill", "backfill": b, "down": "SELECT 1"}]})
    };
    for (b, names) in [
        (
            json!({"table": "accounts", "set": "nickname = 'x'", "key": "idd"}),
            "no column `idd` to walk by",
        ),
        (
            json!({"table": "accounts", "set": "nick_name = 'x'"}),
            "assigns `nick_name`",
        ),
        (
            json!({"table": "acounts", "set": "nickname = 'x'"}),
            "table `acounts` does not exist",
        ),
    ] {
        let r = c.refused("plan", backfill(b)).await;
        assert_eq!(r["code"], "invalid-input", "{r}");
        let message = r["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{message}");
        assert!(
            message.contains("fill") && r["fix"].as_str().unwrap_or_default().contains("key"),
            "the refusal names the step and says how to fix it: {r}"
        );
    }
    let listed = c.ok("status", json!({})).await;
    assert_eq!(
        listed["plans"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored: {listed}"
    );
    // A column added earlier in the same plan is known to the backfill that fills it.
    c.ok(
        "plan",
        json!({"goal": "add and fill", "target": "production", "steps": [
            {"name": "add", "up": "ALTER TABLE accounts ADD COLUMN tier text", "down": "ALTER TABLE accounts DROP COLUMN tier"},
            {"name": "fill", "backfill": {"table": "accounts", "set": "tier = 'free'"}, "down": "SELECT 1"}]}),
    )
    .await;
}
