//! The repository's migration folder (spec §12): `[export]` writes every production apply as
//! sqlx migrations that sqlx's own `Migrator` reads, treats as applied on the production
//! database (recorded in `_sqlx_migrations` with sqlx's checksums) and replays on a fresh one —
//! the `CREATE INDEX CONCURRENTLY` in a migration of its own with `-- no-transaction`; `doctor`
//! and `validate` catch drift both ways (a deleted file, a stray file, an edited file, a rolled
//! back plan); `drydock export` writes golang-migrate, Flyway and plain layouts on SQLite.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::walk::run_sql;
use common::{PgProject, Project, pg_connect, plan_id};
use serde_json::{Value, json};
use sqlx::Connection;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const TEAM_MIGRATION: &str = "CREATE TABLE widgets (id integer PRIMARY KEY, name text);\n";

/// The accounts table as the fresh database's baseline (the seed is not in the folder).
const BASELINE: &str = "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0, nickname text, score integer NOT NULL DEFAULT 0);
    INSERT INTO accounts (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g";

fn tier_plan() -> Value {
    json!({
        "goal": "Give every account a tier",
        "target": "production",
        "steps": [
            {"name": "expand", "up": "ALTER TABLE accounts ADD COLUMN tier text",
             "down": "ALTER TABLE accounts DROP COLUMN tier"},
            {"name": "index", "up": "CREATE INDEX CONCURRENTLY accounts_tier ON accounts (tier); COMMENT ON INDEX accounts_tier IS 'tiers'",
             "down": "DROP INDEX CONCURRENTLY accounts_tier"},
            {"name": "fill", "backfill": {"table": "accounts", "set": "tier = 'basic'", "where": "tier IS NULL", "batch_size": 5000},
             "down": "SELECT 1"}
        ],
        "checks": [{"name": "every-tier", "sql": "SELECT count(*) = 0 FROM accounts WHERE tier IS NULL", "expect": "true"}]
    })
}

/// `drydock export ID --tool TOOL --dir DIR`, plus `extra`.
fn export_to(
    p: &Project,
    id: &str,
    format: &str,
    dir: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "export",
        id,
        "--tool",
        format,
        "--dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    p.cli(&args)
}

async fn apply_all(c: &common::Client, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let r = c.ok("apply", json!({"plan_id": id})).await;
        if r["status"] == "applied" {
            return r;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "not applied: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A connection as the application's own role would have it: the test cluster's role is named
/// `drydock`, whose `"$user"` schema (drydock's bookkeeping) must not catch sqlx's table.
async fn app_conn(db: &str) -> sqlx::PgConnection {
    let mut c = pg_connect(db).await;
    sqlx::raw_sql("SET search_path = public")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn sqlx_versions(db: &str) -> i64 {
    let mut c = app_conn(db).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    n
}

#[tokio::test]
async fn production_applies_land_in_the_sqlx_folder_that_sqlx_accepts_and_drift_is_caught() {
    let p = PgProject::with_extra("", "[export]\ndir = \"migrations\"\nformat = \"sqlx\"\n").await;
    let folder = p.project.dir.path().join("migrations");
    std::fs::create_dir_all(&folder).unwrap();
    // The team already runs sqlx: its own migration, applied to both databases.
    std::fs::write(
        folder.join("20240101000000_create_widgets.sql"),
        TEAM_MIGRATION,
    )
    .unwrap();
    let team = sqlx::migrate::Migrator::new(folder.as_path())
        .await
        .unwrap();
    for db in [&p.prod, &p.staging] {
        let mut c = app_conn(db).await;
        team.run(&mut c).await.unwrap();
        c.close().await.ok();
    }

    let c = p.project.connect().await;
    let id = p.project.ready(&c, tier_plan()).await;
    let applied = apply_all(&c, &id).await;
    let report = &applied["export"]["report"];
    assert_eq!(report["recorded_in"], "_sqlx_migrations", "{applied}");
    assert_eq!(report["warnings"], json!([]), "{report}");
    // expand, index (CONCURRENTLY alone, then the COMMENT), fill: 4 migrations, up and down.
    let names = files(&folder);
    assert_eq!(names.len(), 1 + 8, "{names:?}");
    let ups: Vec<&String> = names.iter().filter(|n| n.ends_with(".up.sql")).collect();
    assert_eq!(ups.len(), 4, "{names:?}");
    assert!(
        ups[0].ends_with("_give_every_account_a_tier_expand.up.sql"),
        "{ups:?}"
    );
    assert!(ups[1].ends_with("_index_1_of_2.up.sql"), "{ups:?}");
    let concurrent = std::fs::read_to_string(folder.join(ups[1])).unwrap();
    assert!(
        concurrent.starts_with("-- no-transaction\n-- drydock plan "),
        "{concurrent}"
    );
    assert!(
        concurrent.contains("CREATE INDEX CONCURRENTLY accounts_tier"),
        "{concurrent}"
    );
    assert!(!concurrent.contains("COMMENT"), "{concurrent}");
    let fill = std::fs::read_to_string(folder.join(ups[3])).unwrap();
    assert!(
        fill.contains("UPDATE \"accounts\" SET tier = 'basic' WHERE tier IS NULL;"),
        "{fill}"
    );
    // Versions count up from one step to the next, as sqlx orders them.
    let versions: Vec<i64> = ups
        .iter()
        .map(|n| n.split('_').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "{versions:?}"
    );
    assert_eq!(
        report["versions"].as_array().unwrap().len(),
        3,
        "one first version per step: {report}"
    );

    // sqlx reads the folder and counts every migration applied on production: checksums match,
    // nothing runs again.
    let migrator = sqlx::migrate::Migrator::new(folder.as_path())
        .await
        .unwrap();
    assert_eq!(
        migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count(),
        5
    );
    let mut prod = app_conn(&p.prod).await;
    migrator
        .run(&mut prod)
        .await
        .expect("sqlx accepts the exported folder on production");
    prod.close().await.ok();
    assert_eq!(sqlx_versions(&p.prod).await, 5);
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE tier = 'basic'"
        )
        .await,
        20_000
    );

    // A fresh database (a developer's, CI's) replays the folder: the team's table, the column,
    // the index built CONCURRENTLY outside a transaction, its comment, the filled tier.
    let fresh = format!("fresh_{}", p.prod);
    run_sql("postgres", &format!("CREATE DATABASE {fresh}")).await;
    run_sql(&fresh, BASELINE).await;
    let mut conn = app_conn(&fresh).await;
    migrator
        .run(&mut conn)
        .await
        .expect("the folder replays on a fresh database");
    conn.close().await.ok();
    assert_eq!(
        p.scalar(&fresh, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'accounts_tier' AND i.indisvalid AND obj_description(c.oid) = 'tiers'").await,
        1
    );
    assert_eq!(
        p.scalar(&fresh, "SELECT count(*) FROM accounts WHERE tier = 'basic'")
            .await,
        50
    );
    assert_eq!(p.scalar(&fresh, "SELECT count(*) FROM widgets").await, 0);
    // Reverting through sqlx works too: the index step's down is in its last migration.
    let mut conn = app_conn(&fresh).await;
    migrator
        .undo(&mut conn, 20240101000000)
        .await
        .expect("sqlx reverts the exported migrations");
    conn.close().await.ok();
    assert!(!p.has_column(&fresh, "accounts", "tier").await);

    // The folder and production agree.
    let doctor = p.project.cli(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(0), "{}", stdout(&doctor));
    assert!(stdout(&doctor).contains("repository: target production and the folder agree"));
    let v = c.ok("validate", json!({"plan_id": id})).await;
    let repo = v["builtin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "repository")
        .cloned();
    assert_eq!(
        repo.as_ref().map(|r| r["passed"].clone()),
        Some(json!(true)),
        "{v}"
    );

    // Drift one way: an applied step's file deleted. doctor fails; validate fails naming it.
    std::fs::remove_file(folder.join(ups[3])).unwrap();
    let doctor = p.project.cli(&["doctor", "--format", "json"]);
    assert_eq!(doctor.status.code(), Some(2), "{}", stdout(&doctor));
    let d: Value = serde_json::from_str(&stdout(&doctor)).unwrap();
    let missing = &d["repository"][0]["drift"]["missing_files"];
    assert_eq!(missing[0]["step"], "fill", "{d}");
    assert_eq!(missing[0]["plan_id"], id.as_str(), "{d}");
    let refused = c.refused("validate", json!({"plan_id": id})).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("repository: drift"),
        "{refused}"
    );
    // `drydock export` puts it back, the same bytes (sqlx's checksum still matches).
    let out = p.project.cli(&["export", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("1 written, 7 unchanged"),
        "{}",
        stdout(&out)
    );
    let mut prod = app_conn(&p.prod).await;
    migrator.run(&mut prod).await.expect("checksums unchanged");
    prod.close().await.ok();

    // The other way: a migration the target never applied.
    let stray = folder.join("20990101000000_someday.up.sql");
    std::fs::write(&stray, "SELECT 1;\n").unwrap();
    let doctor = p.project.cli(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(2));
    assert!(
        stdout(&doctor).contains("20990101000000_someday.up.sql (never applied)"),
        "{}",
        stdout(&doctor)
    );
    std::fs::remove_file(&stray).unwrap();

    // An exported file edited by hand: validate says so, export refuses to overwrite it.
    let expand = folder.join(ups[0]);
    let original = std::fs::read_to_string(&expand).unwrap();
    std::fs::write(&expand, original.replace("tier text", "tier varchar(10)")).unwrap();
    let refused = c.refused("validate", json!({"plan_id": id})).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("changed since exported"),
        "{refused}"
    );
    let out = p.project.cli(&["export", &id, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(err["error"]["code"], "export-conflict", "{err}");
    std::fs::write(&expand, &original).unwrap();

    // Rolled back: the plan's migrations leave the folder and sqlx's history (the database no
    // longer has them), except a file edited since the export, which stays and is drift.
    std::fs::write(&expand, format!("{original}-- reviewed\n")).unwrap();
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "try the drift report"}),
        )
        .await;
    let un = &rb["unexported"];
    assert_eq!(un["removed"].as_array().unwrap().len(), 7, "{rb}");
    assert_eq!(un["kept"], json!([ups[0]]), "{rb}");
    assert_eq!(un["recorded_in"], "_sqlx_migrations", "{rb}");
    assert_eq!(
        sqlx_versions(&p.prod).await,
        1,
        "only the team's own migration is left"
    );
    let doctor = p.project.cli(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(2));
    assert!(
        stdout(&doctor).contains(&format!("rolled back: plan {id} step `expand`")),
        "{}",
        stdout(&doctor)
    );
    std::fs::remove_file(&expand).unwrap();
    assert_eq!(files(&folder), ["20240101000000_create_widgets.sql"]);
    let doctor = p.project.cli(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(0), "{}", stdout(&doctor));
    // And sqlx, run again, finds production as its history says.
    let mut prod = app_conn(&p.prod).await;
    sqlx::migrate::Migrator::new(folder.as_path())
        .await
        .unwrap()
        .run(&mut prod)
        .await
        .unwrap();
    prod.close().await.ok();
    c.close().await;
}

#[tokio::test]
async fn export_writes_golang_migrate_flyway_and_plain_layouts() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, common::add_column_plan()).await;
    // Not applied yet: nothing to export.
    let dir = p.dir.path().join("golang");
    let early = export_to(&p, &id, "golang-migrate", &dir, &[]);
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("wrong-status"));
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );

    // golang-migrate, beside a golang-migrate history at version 1.
    let db = p.path("prod.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, false)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let out = export_to(&p, &id, "golang-migrate", &dir, &["--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let version = r["versions"][0]["version"].as_i64().unwrap();
    assert_eq!(r["recorded_in"], "schema_migrations", "{r}");
    assert_eq!(
        files(&dir),
        [
            format!("{version}_store_each_user_s_plan_tier_add_tier.down.sql"),
            format!("{version}_store_each_user_s_plan_tier_add_tier.up.sql")
        ]
    );
    let up = std::fs::read_to_string(dir.join(format!(
        "{version}_store_each_user_s_plan_tier_add_tier.up.sql"
    )))
    .unwrap();
    assert!(
        up.contains("ALTER TABLE users ADD COLUMN tier TEXT DEFAULT 'free';"),
        "{up}"
    );
    let down = std::fs::read_to_string(dir.join(format!(
        "{version}_store_each_user_s_plan_tier_add_tier.down.sql"
    )))
    .unwrap();
    assert!(
        down.contains("ALTER TABLE users DROP COLUMN tier;"),
        "{down}"
    );
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let (v, dirty): (i64, bool) = sqlx::query_as("SELECT version, dirty FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    assert_eq!(
        (v, dirty),
        (version, false),
        "golang-migrate now stands at the exported version"
    );

    // The version is the target's: Flyway and plain layouts of the same plan reuse it.
    let flyway = p.dir.path().join("flyway");
    let out = export_to(&p, &id, "flyway", &flyway, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files(&flyway),
        [format!(
            "V{version}__store_each_user_s_plan_tier_add_tier.sql"
        )]
    );
    assert!(
        stdout(&out).contains("warning: the target has no flyway history table"),
        "{}",
        stdout(&out)
    );
    let plain = p.dir.path().join("plain");
    let out = export_to(&p, &id, "plain", &plain, &[]);
    assert!(out.status.success());
    assert_eq!(
        files(&plain),
        [
            format!("{version}_store_each_user_s_plan_tier_add_tier.down.sql"),
            format!("{version}_store_each_user_s_plan_tier_add_tier.sql")
        ]
    );
    // Exporting again changes nothing.
    let again = export_to(&p, &id, "plain", &plain, &[]);
    assert!(
        stdout(&again).contains("0 written, 2 unchanged"),
        "{}",
        stdout(&again)
    );
    // A different migration already at that version is never overwritten.
    let clash = p.dir.path().join("clash");
    std::fs::create_dir_all(&clash).unwrap();
    std::fs::write(clash.join(format!("{version}_theirs.up.sql")), "SELECT 1;").unwrap();
    let out = export_to(&p, &id, "golang-migrate", &clash, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export-conflict") && err.contains("is already used by"),
        "{err}"
    );
    assert_eq!(files(&clash).len(), 1, "nothing written");
    c.close().await;
}

#[tokio::test]
async fn every_command_speaks_json_completions_and_a_followed_backfill() {
    let p = PgProject::new("apply_wait = \"1s\"").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "score every account", "target": "production",
                   "steps": [{"name": "score", "backfill": {"table": "accounts", "set": "score = score + 1",
                              "batch_size": 500, "pause_ms": 400}, "down": "SELECT 1"}]}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    // A refusal in JSON on stdout (and in words on stderr): exit 2.
    let out = p
        .project
        .cli(&["approve", &id, "--by", "", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_str(&stdout(&out)).expect("a JSON refusal");
    assert!(
        err["error"]["code"].is_string() && err["error"]["fix"].is_string(),
        "{err}"
    );
    let out = p
        .project
        .cli(&["approve", &id, "--by", "alice", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(approved["by"], "alice");
    assert_eq!(approved["plan"]["status"], "approved", "{approved}");

    let applying = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applying["status"], "applying");
    // The agent's handle: which tool to poll, with what, how often, until when.
    assert_eq!(applying["poll"]["tool"], "status", "{applying}");
    assert_eq!(applying["poll"]["plan_id"], id.as_str());
    // The engineer follows it from another process: progress lines, then the final status.
    // (Off this thread: the apply runs on this test's runtime.)
    let config = p.project.config_path.clone();
    let follow_id = id.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(config)
            .args([
                "status", &follow_id, "--follow", "--every", "200ms", "--format", "json",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let (last, ticks) = lines.split_last().unwrap();
    assert!(
        ticks
            .iter()
            .any(|t| t["done"].as_u64().is_some_and(|d| d > 0)
                && t["message"].as_str().unwrap().contains("rows backfilled")),
        "{lines:?}"
    );
    assert_eq!(last["status"], "applied", "{last}");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
            .await,
        20_000
    );
    // In words: the one-line end state.
    let out = p.project.cli(&["status", &id, "--follow"]);
    assert!(
        stdout(&out).starts_with(&format!("{id}: applied (1 of 1 step(s) applied)")),
        "{}",
        stdout(&out)
    );

    for (args, key) in [
        (vec!["plans", "--format", "json"], "plans"),
        (vec!["doctor", "--format", "json"], "targets"),
        (vec!["errors", "--format", "json"], "lessons"),
    ] {
        let out = p.project.cli(&args);
        let v: Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(v.get(key).is_some(), "{args:?}: {v}");
    }
    let init_dir = p.project.dir.path().join("fresh");
    let out = p.project.cli(&[
        "init",
        "--dir",
        init_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["done"].as_array().unwrap().len(), 4, "{v}");
    // Without a terminal no admin is made; init says how to make one.
    assert!(
        v["done"][3]
            .as_str()
            .unwrap()
            .contains("drydock passphrase set"),
        "{v}"
    );

    for shell in ["bash", "zsh", "fish"] {
        let out = p.project.cli(&["completions", shell]);
        assert!(out.status.success());
        let script = stdout(&out);
        assert!(
            script.contains("export") && script.contains("--follow"),
            "{shell}"
        );
    }
    c.close().await;
}

/// A hostile step name cannot put SQL into an exported file: names and goals are comments, kept
/// on one line.
#[tokio::test]
async fn a_step_name_cannot_smuggle_sql_into_an_exported_file() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p
        .ready(
            &c,
            json!({"goal": "tier\nDROP TABLE orders; --", "target": "production",
                   "steps": [{"name": "add\nDROP TABLE users; --", "up": "ALTER TABLE users ADD COLUMN tier TEXT",
                              "down": "ALTER TABLE users DROP COLUMN tier"}]}),
        )
        .await;
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applied"
    );
    let dir = p.dir.path().join("plain");
    let out = export_to(&p, &id, "plain", &dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in files(&dir) {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        for line in text.lines() {
            assert!(
                line.starts_with("--") || !line.contains("DROP TABLE"),
                "{name}: SQL outside a comment: {line}"
            );
        }
    }
    c.close().await;
}
