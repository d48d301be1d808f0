//! PostgreSQL targets against the real server `.ci/run` starts: measured dry-runs, the lock
//! discipline of apply (pre-flight, lock_timeout retries, advisory lock, watcher), history,
//! validation, snapshot backups, verified rollback, and a password that never leaks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::walk::run_sql;
use common::{PgProject, pg_connect, pg_secret, plan_id};
use serde_json::{Value, json};
use sqlx::Connection;

fn plan(goal: &str, up: &str, down: &str) -> Value {
    json!({"goal": goal, "target": "production", "steps": [{"name": "change", "up": up, "down": down}]})
}

fn locks_on(statement: &Value, relation: &str) -> Vec<String> {
    statement["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["relation"] == relation)
        .map(|l| l["mode"].as_str().unwrap().to_string())
        .collect()
}

/// Inserts into `accounts` every 20 ms until stopped; returns the worst latency seen (ms).
fn writer(db: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let mut c = pg_connect(&db).await;
        let (mut worst, mut n) = (0u64, 0u64);
        while !stop.load(Ordering::SeqCst) {
            let t0 = Instant::now();
            sqlx::query("INSERT INTO accounts (email) VALUES ('w@example.com')")
                .execute(&mut c)
                .await
                .unwrap();
            worst = worst.max(t0.elapsed().as_millis() as u64);
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.close().await.ok();
        (worst, n)
    })
}

#[tokio::test]
async fn dry_runs_measure_locks_rewrites_and_scans() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;

    let widen = plan_id(
        &c.ok(
            "plan",
            plan(
                "widen amounts",
                "ALTER TABLE ledger ALTER COLUMN amount TYPE bigint",
                "ALTER TABLE ledger ALTER COLUMN amount TYPE integer",
            ),
        )
        .await,
    );
    let dry = c.ok("dry-run", json!({"plan_id": widen})).await;
    assert_eq!(dry["rollback_verified"], true, "{dry}");
    let st = &dry["statements"][0];
    assert_eq!(st["rewritten"], json!(["ledger"]), "{st}");
    assert!(
        locks_on(st, "ledger").contains(&"ACCESS EXCLUSIVE".to_string()),
        "{st}"
    );

    let add = plan_id(
        &c.ok(
            "plan",
            plan(
                "add a counter",
                "ALTER TABLE accounts ADD COLUMN visits integer NOT NULL DEFAULT 0",
                "ALTER TABLE accounts DROP COLUMN visits",
            ),
        )
        .await,
    );
    let dry = c.ok("dry-run", json!({"plan_id": add})).await;
    let st = &dry["statements"][0];
    assert_eq!(
        st["rewritten"],
        json!([]),
        "a constant default is not a rewrite: {st}"
    );
    assert!(locks_on(st, "accounts").contains(&"ACCESS EXCLUSIVE".to_string()));
    assert_eq!(dry["tables"][0]["staging_rows"], 2000);
    assert_eq!(dry["tables"][0]["production_rows"], 20000);

    let check = plan_id(
        &c.ok(
            "plan",
            plan(
                "positive",
                "ALTER TABLE ledger ADD CONSTRAINT amount_positive CHECK (amount >= 0)",
                "ALTER TABLE ledger DROP CONSTRAINT amount_positive",
            ),
        )
        .await,
    );
    let dry = c.ok("dry-run", json!({"plan_id": check})).await;
    assert_eq!(
        dry["statements"][0]["scanned"],
        json!(["ledger"]),
        "a CHECK without NOT VALID scans: {dry}"
    );

    let idx = plan_id(
        &c.ok(
            "plan",
            plan(
                "index",
                "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)",
                "DROP INDEX CONCURRENTLY accounts_email",
            ),
        )
        .await,
    );
    let dry = c.ok("dry-run", json!({"plan_id": idx})).await;
    let st = &dry["statements"][0];
    // Built for real on staging, as apply builds it (then dropped by the verified `down`): its
    // locks were released when it ended, and the dry-run says so rather than guess them.
    assert_eq!(dry["rehearsed"], true, "{dry}");
    assert!(st["note"].as_str().unwrap().contains("for real"), "{st}");
    assert_eq!(locks_on(st, "accounts"), Vec::<String>::new(), "{st}");

    // nothing of any dry-run persisted on staging
    assert!(!p.has_column(&p.staging, "accounts", "visits").await);
    assert_eq!(
        p.scalar(
            &p.staging,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email'"
        )
        .await,
        0
    );
    assert_eq!(
        p.scalar(&p.staging, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ledger' AND column_name = 'amount' AND data_type = 'integer'").await,
        1
    );
    c.close().await;
}

#[tokio::test]
async fn a_migration_walks_the_lifecycle_on_postgres() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let mut body = plan(
        "track visits",
        "ALTER TABLE accounts ADD COLUMN visits integer NOT NULL DEFAULT 0",
        "ALTER TABLE accounts DROP COLUMN visits",
    );
    body["checks"] = json!([{"name": "no-nulls", "sql": "SELECT count(*) = 0 FROM accounts WHERE visits IS NULL", "expect": "true"}]);
    let id = p.project.ready(&c, body).await;

    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["backup"]["verified"], true);
    assert_eq!(applied["backup"]["row_counts"]["accounts"], 20000);
    assert!(p.has_column(&p.prod, "accounts", "visits").await);
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM drydock.history WHERE status = 'applied'"
        )
        .await,
        1
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'drydock_backup'"
        )
        .await,
        1,
        "the snapshot of the affected table"
    );
    let apps = p
        .scalar(
            &p.prod,
            "SELECT count(*) FROM drydock.history WHERE applied_by = 'test-agent (stdio)'",
        )
        .await;
    assert_eq!(apps, 1);

    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");

    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "visits move to analytics"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert!(!p.has_column(&p.prod, "accounts", "visits").await);
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM drydock.history WHERE rolled_back_at IS NOT NULL"
        )
        .await,
        1
    );
    c.close().await;
}

#[tokio::test]
async fn validate_reports_drift_invalid_indexes_and_unvalidated_constraints() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            plan(
                "email index",
                "CREATE INDEX accounts_email ON accounts (email)",
                "DROP INDEX accounts_email",
            ),
        )
        .await;
    c.ok("apply", json!({"plan_id": id})).await;
    run_sql(
        &p.prod,
        "ALTER TABLE ledger ADD CONSTRAINT small CHECK (amount < 1000) NOT VALID; CREATE INDEX by_hand ON ledger (amount)",
    )
    .await;
    let r = c.refused("validate", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "validation-failed");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("NOT VALID") && msg.contains("small"), "{msg}");
    assert!(msg.contains("drift") && msg.contains("by_hand"), "{msg}");
    c.close().await;
}

#[tokio::test]
async fn a_long_transaction_never_makes_writers_queue_behind_the_migration() {
    let p = PgProject::new("lock_timeout = \"300ms\"\nlock_retries = 2").await;
    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            plan(
                "add flag",
                "ALTER TABLE accounts ADD COLUMN flagged boolean",
                "ALTER TABLE accounts DROP COLUMN flagged",
            ),
        )
        .await;

    // A long transaction holds a lock on the table: ALTER TABLE would queue behind it, and every
    // writer would queue behind the ALTER.
    let mut blocker = pg_connect(&p.prod).await;
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM accounts")
        .execute(&mut blocker)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.prod.clone(), stop.clone());
    let t0 = Instant::now();
    let r = c.refused("apply", json!({"plan_id": id})).await;
    let waited = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (worst, writes) = w.await.unwrap();
    assert_eq!(r["code"], "blocked-by-transaction", "{r}");
    assert!(r["message"].as_str().unwrap().contains("accounts"), "{r}");
    assert!(
        worst < 300 + 500,
        "a writer waited {worst} ms (policy.lock_timeout is 300 ms)"
    );
    assert!(writes > 0);
    assert!(waited < Duration::from_secs(10));
    assert!(!p.has_column(&p.prod, "accounts", "flagged").await);
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
    blocker.close().await.ok();

    // once the transaction ends, the same apply goes through
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied");
    c.close().await;
}

#[tokio::test]
async fn lock_timeouts_are_retried_with_backoff_without_stalling_writers() {
    let p = PgProject::new("lock_timeout = \"300ms\"\nlock_retries = 6").await;
    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            plan(
                "add note",
                "ALTER TABLE accounts ADD COLUMN note text",
                "ALTER TABLE accounts DROP COLUMN note",
            ),
        )
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(p.prod.clone(), stop.clone());
    // A fresh transaction (too young for the pre-flight) takes a lock and keeps it for 1.2 s.
    let db = p.prod.clone();
    let blocker = tokio::spawn(async move {
        let mut b = pg_connect(&db).await;
        sqlx::raw_sql("BEGIN; SELECT count(*) FROM accounts")
            .execute(&mut b)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap();
        b.close().await.ok();
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    blocker.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let (worst, _) = w.await.unwrap();
    assert_eq!(applied["status"], "applied", "{applied}");
    assert!(p.has_column(&p.prod, "accounts", "note").await);
    assert!(
        worst < 300 + 500,
        "a writer waited {worst} ms (policy.lock_timeout is 300 ms)"
    );
    c.close().await;
}

#[tokio::test]
async fn two_applies_on_one_target_at_once_one_is_refused() {
    let p = PgProject::new("").await;
    // Two servers (two engines) share the state store, as two agents' servers would.
    let a = p.project.connect().await;
    let b = p.project.connect_as("other-agent").await;
    let slow = plan_id(
        &a.ok(
            "plan",
            plan(
                "slow",
                "ALTER TABLE ledger ADD COLUMN memo text; SELECT pg_sleep(1.5)",
                "ALTER TABLE ledger DROP COLUMN memo",
            ),
        )
        .await,
    );
    let fast = plan_id(
        &b.ok(
            "plan",
            plan(
                "fast",
                "ALTER TABLE accounts ADD COLUMN tier text",
                "ALTER TABLE accounts DROP COLUMN tier",
            ),
        )
        .await,
    );
    for (client, id) in [(&a, &slow), (&b, &fast)] {
        client.ok("dry-run", json!({"plan_id": id})).await;
        p.project.approve(id, "alice");
    }
    let (ra, rb) = tokio::join!(a.call("apply", json!({"plan_id": slow})), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.call("apply", json!({"plan_id": fast})).await
    });
    assert_ne!(ra.is_error, Some(true), "{ra:?}");
    assert_eq!(rb.is_error, Some(true), "{rb:?}");
    let body = common::refusal_body(&rb);
    assert_eq!(body["code"], "target-busy", "{body}");
    assert!(!p.has_column(&p.prod, "accounts", "tier").await);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn the_watcher_cancels_a_step_that_blocks_others_too_long() {
    let p = PgProject::new("max_block = \"400ms\"").await;
    let c = p.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            plan(
                "slow ddl",
                "ALTER TABLE accounts ADD COLUMN slow text; SELECT pg_sleep(5)",
                "ALTER TABLE accounts DROP COLUMN slow",
            ),
        )
        .await,
    );
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let w = {
        let (db, stop) = (p.prod.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let h = writer(db, stop);
            h.await.unwrap()
        })
    };
    let r = c.refused("apply", json!({"plan_id": id})).await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (w_worst, _) = w.await.unwrap();
    worst.store(w_worst, Ordering::SeqCst);
    assert_eq!(r["code"], "sql-failed");
    assert!(
        r["message"].as_str().unwrap().contains("lock watcher"),
        "{r}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "the step was cancelled, not waited out ({elapsed:?})"
    );
    assert!(
        !p.has_column(&p.prod, "accounts", "slow").await,
        "the cancelled step rolled back"
    );
    assert!(
        w_worst < 2_500,
        "writers were released when the watcher cancelled ({w_worst} ms)"
    );
    c.close().await;
}

#[tokio::test]
async fn snapshots_above_the_limit_need_a_backup_command() {
    let p = PgProject::new("snapshot_max_rows = 1000").await;
    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            plan(
                "tier",
                "ALTER TABLE accounts ADD COLUMN tier text",
                "ALTER TABLE accounts DROP COLUMN tier",
            ),
        )
        .await;
    let r = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "backup-unverified");
    assert!(
        r["message"].as_str().unwrap().contains("snapshot_max_rows"),
        "{r}"
    );
    // The fix is this failure's: a backup command (not disk space).
    let fix = r["fix"].as_str().unwrap();
    assert!(fix.contains("[backup] command"), "{r}");
    assert!(!fix.contains("disk"), "{r}");
    assert!(!p.has_column(&p.prod, "accounts", "tier").await);
    c.close().await;

    // with a backup command that reports a fresh, restore-tested backup, the apply proceeds
    let fresh = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let extra = format!(
        "[backup]\ncommand = \"echo '{{\\\"finished_at\\\": \\\"{fresh}\\\", \\\"restore_tested\\\": true}}'\"\n"
    );
    let q = PgProject::with_extra("snapshot_max_rows = 1000", &extra).await;
    let c = q.project.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            plan(
                "tier",
                "ALTER TABLE accounts ADD COLUMN tier text",
                "ALTER TABLE accounts DROP COLUMN tier",
            ),
        )
        .await,
    );
    c.ok("dry-run", json!({"plan_id": id})).await;
    q.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["backup"]["method"], "backup command", "{applied}");
    c.close().await;
}

#[tokio::test]
async fn the_password_appears_in_no_output_log_or_error_log() {
    let p = PgProject::new("").await;
    let secret = pg_secret();
    let c = p.project.connect().await;
    let mut outputs = Vec::new();
    let id = plan_id(
        &c.ok(
            "plan",
            plan(
                "typo",
                "ALTER TABLE acounts ADD COLUMN x int",
                "ALTER TABLE acounts DROP COLUMN x",
            ),
        )
        .await,
    );
    outputs.push(format!(
        "{:?}",
        c.call("dry-run", json!({"plan_id": id})).await
    ));
    outputs.push(format!(
        "{:?}",
        c.call("apply", json!({"plan_id": id})).await
    ));
    outputs.push(format!(
        "{:?}",
        c.call("inspect", json!({"target": "production"})).await
    ));
    outputs.push(format!(
        "{:?}",
        c.call("status", json!({"plan_id": id})).await
    ));
    let checklist = c
        .service
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "drydock://checklist",
        ))
        .await
        .unwrap();
    outputs.push(format!("{checklist:?}"));
    c.close().await;
    for args in [vec!["doctor"], vec!["show", id.as_str()], vec!["plans"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(&p.project.config_path)
            .args(&args)
            .env("DRYDOCK_LOG", "trace")
            .output()
            .unwrap();
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // a target whose server refuses the password: the error names neither URL nor password
    let bad = PgProject::with_extra("", "[targets.broken]\nurl = \"postgres://drydock:wrong-password-xyz@127.0.0.1:1/none\"\nrole = \"scratch\"\n").await;
    let c = bad.project.connect().await;
    let r = c.call("inspect", json!({"target": "broken"})).await;
    let text = format!("{r:?}");
    assert!(!text.contains("wrong-password-xyz"), "{text}");
    c.close().await;
    outputs.push(p.project.errors_md());
    assert!(p.project.errors_md().contains("sql-failed"));
    for o in &outputs {
        assert!(!o.contains(&secret), "the password leaked: {o}");
        assert!(
            !o.contains("postgres://drydock:"),
            "a connection string leaked: {o}"
        );
    }
    let mut conn = pg_connect("postgres").await;
    let _ = sqlx::query("SELECT 1").execute(&mut conn).await;
    conn.close().await.ok();
}

#[tokio::test]
async fn a_failed_concurrent_index_build_leaves_no_invalid_index() {
    let p = PgProject::new("").await;
    // production has a duplicate that staging lacks: the dry-run passes, the apply fails
    run_sql(
        &p.prod,
        "INSERT INTO accounts (email) VALUES ('user1@example.com')",
    )
    .await;
    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            plan(
                "unique emails",
                "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)",
                "DROP INDEX CONCURRENTLY accounts_email_key",
            ),
        )
        .await;
    let r = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(r["code"], "sql-failed");
    assert!(
        r["message"].as_str().unwrap().contains("was dropped"),
        "{r}"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email_key'"
        )
        .await,
        0
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        )
        .await,
        0
    );
    c.close().await;
}

#[tokio::test]
async fn env_urls_resolve_at_open_and_stay_secret() {
    let p = PgProject::with_extra(
        "",
        "[targets.viaenv]\nurl = \"env:DRYDOCK_TEST_VIA_ENV\"\nrole = \"scratch\"\n",
    )
    .await;
    let url = {
        let text = std::fs::read_to_string(&p.project.config_path).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("url = \"postgres://"))
            .unwrap()
            .to_string();
        line.trim_start_matches("url = \"")
            .trim_end_matches('"')
            .to_string()
    };
    let run = |env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"));
        cmd.arg("--config")
            .arg(&p.project.config_path)
            .arg("doctor");
        match env {
            Some(v) => cmd.env("DRYDOCK_TEST_VIA_ENV", v),
            None => cmd.env_remove("DRYDOCK_TEST_VIA_ENV"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = run(Some(&url));
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("target viaenv (scratch, env:DRYDOCK_TEST_VIA_ENV): ok"),
        "{text}"
    );
    assert!(!text.contains(&pg_secret()), "{text}");
    let (code, text) = run(None);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("DRYDOCK_TEST_VIA_ENV") && text.contains("not set"),
        "{text}"
    );
}

/// The engineer's hand on the brake: `drydock pause` holds a running backfill between batches
/// (no row changes while paused, the plan stays `applying`, `status` says who paused it),
/// `resume` lets it finish without a new apply — every row exactly once; a pause set before the
/// apply (as one set before a restart) holds the backfill from its first batch; an agent's
/// token cannot pause.
#[tokio::test]
async fn an_engineer_pauses_and_resumes_a_running_backfill() {
    let p = PgProject::new("apply_wait = \"1s\"").await;
    let c = p.project.connect().await;
    let count = |sql: &'static str| {
        let (p, db) = (&p, p.prod.clone());
        async move { p.scalar(&db, sql).await }
    };
    let planned = c
        .ok(
            "plan",
            json!({"goal": "score every account once", "target": "production",
                   // Batches grow 1.5× while fast (400, 600, 900, …): half a second between
                   // them leaves seconds to pause it part-way.
                   "steps": [{"name": "score", "backfill": {"table": "accounts", "set": "score = score + 1",
                              "batch_size": 400, "pause_ms": 500}, "down": "SELECT 1"}]}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let agent = p.project.token("ci-agent", drydock::identity::Grant::Agent);
    let alice = p.project.token("alice", drydock::identity::Grant::Approver);
    let denied = p.project.cli_with(&["pause", &id], Some(&agent));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("not-permitted"));

    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applying"
    );
    let t0 = Instant::now();
    while count("SELECT count(*) FROM accounts WHERE score = 1").await < 400 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the backfill does not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = p.project.cli_with(&["pause", &id], Some(&alice));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = count("SELECT count(*) FROM accounts WHERE score = 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE score = 1").await,
        held,
        "no batch runs while paused"
    );
    assert!(held < 20_000, "paused part-way: {held}");
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["status"], "applying", "{status}");
    assert_eq!(status["paused"]["by"], "alice", "{status}");
    let out = p.project.cli_with(&["resume", &id], Some(&alice));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = c.wait_applied(&id).await;
    assert_eq!(
        done["status"], "applied",
        "resumed without a new apply: {done}"
    );
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE score = 1").await,
        20_000
    );
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE score <> 1").await,
        0
    );

    // Paused before it starts (a pause outlives the process that set it): the apply holds.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "name everyone", "target": "production",
                   "steps": [{"name": "nick", "backfill": {"table": "accounts", "set": "nickname = 'n'",
                              "batch_size": 2000}, "down": "SELECT 1"}]}),
        )
        .await;
    let second = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": second})).await;
    p.project.approve(&second, "alice");
    let out = p.project.cli(&["pause", &second, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.ok("apply", json!({"plan_id": second})).await["status"],
        "applying"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE nickname = 'n'").await,
        0,
        "a paused plan's backfill does not start"
    );
    let out = p.project.cli(&["resume", &second, "--by", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.wait_applied(&second).await["status"], "applied");
    assert_eq!(
        count("SELECT count(*) FROM accounts WHERE nickname = 'n'").await,
        20_000
    );
    c.close().await;
}

/// A backfill that fills a column where it is NULL saves the keys of exactly the rows it
/// changed, taken from the change itself. A row the application writes while a batch waits on
/// its lock is skipped by that batch (its `where` no longer holds once the write commits) — and
/// so the rollback, which puts NULL back where the backfill wrote, keeps the application's
/// value. (Saving what the batch's snapshot saw, as before, put NULL over it.)
#[tokio::test]
async fn rolling_back_a_fill_keeps_what_the_application_wrote_during_a_batch() {
    let p = PgProject::new("apply_wait = \"1s\"").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "nickname every account", "target": "production",
                   "steps": [{"name": "nick", "backfill": {"table": "accounts", "set": "nickname = 'n' || id",
                              "where": "nickname IS NULL", "batch_size": 500, "pause_ms": 100}}]}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");

    let mut app = pg_connect(&p.prod).await;
    sqlx::raw_sql("UPDATE accounts SET nickname = 'early' WHERE id = 100")
        .execute(&mut app)
        .await
        .unwrap();
    // The application holds row 15000 when the backfill's batch reaches it …
    sqlx::raw_sql("BEGIN; UPDATE accounts SET nickname = 'app' WHERE id = 15000")
        .execute(&mut app)
        .await
        .unwrap();
    let app_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(
        c.ok("apply", json!({"plan_id": id})).await["status"],
        "applying"
    );
    let mut watch = pg_connect(&p.prod).await;
    let t0 = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
        )
        .bind(app_pid)
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no batch reached the row"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // … and commits while the batch waits (well within its lock_timeout).
    sqlx::raw_sql("COMMIT").execute(&mut app).await.unwrap();
    let done = c.wait_applied(&id).await;
    assert_eq!(done["status"], "applied", "{done}");
    let nick = |id: i64| {
        let (p, db) = (&p, p.prod.clone());
        async move {
            p.scalar(
                &db,
                &format!("SELECT count(*) FROM accounts WHERE id = {id} AND nickname = 'n' || id"),
            )
            .await
        }
    };
    assert_eq!(nick(15_000).await, 0, "the batch skipped the row written");
    assert_eq!(nick(15_001).await, 1);
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname LIKE 'n%'"
        )
        .await,
        19_998
    );
    // The batches' key arrays are stored as they are, out of line: compressing them took
    // 15% of the batches' CPU.
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid
             WHERE t.relnamespace = 'drydock_backup'::regnamespace AND a.attname = 'keys' AND a.attstorage = 'e'"
        )
        .await,
        1
    );

    let rolled = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "try the restore"}),
        )
        .await;
    assert_eq!(rolled["status"], "rolled-back", "{rolled}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname IS NULL"
        )
        .await,
        19_998,
        "NULL back where the backfill wrote"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE (id = 15000 AND nickname = 'app') OR (id = 100 AND nickname = 'early')"
        )
        .await,
        2,
        "the application's writes are kept"
    );
    app.close().await.ok();
    watch.close().await.ok();
}

/// A rollback puts a backfill's saved values back in short batches, each taking its rows out
/// of the backup as it restores them. One stopped half way (the application holds a row past
/// every retry) leaves the step half restored: an apply refuses to go on over it, naming the
/// step; the rollback called again finishes, every value as it was before the apply and the
/// application's own write kept.
#[tokio::test]
async fn a_rollback_stopped_half_way_through_its_restore_finishes_when_called_again() {
    let p = PgProject::new("lock_timeout = \"200ms\"\nlock_retries = 2").await;
    let c = p.project.connect().await;
    let scores = "SELECT md5(string_agg(id || ':' || score, ',' ORDER BY id)) FROM accounts";
    let mut app = pg_connect(&p.prod).await;
    sqlx::raw_sql("UPDATE accounts SET score = id % 7")
        .execute(&mut app)
        .await
        .unwrap();
    let before: String = sqlx::query_scalar(scores)
        .fetch_one(&mut app)
        .await
        .unwrap();
    let id = p
        .project
        .ready(
            &c,
            json!({"goal": "score every account", "target": "production", "steps": [
                {"name": "score", "backfill": {"table": "accounts", "set": "score = id % 1000 + 10"}},
                {"name": "index", "up": "CREATE INDEX accounts_score ON accounts (score)",
                 "down": "DROP INDEX accounts_score", "gate": {"kind": "manual"}}]}),
        )
        .await;
    let gated = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(gated["gated"]["step"], "index", "{gated}");

    // The application holds the next-to-last row through every try of its batch.
    sqlx::raw_sql("BEGIN; UPDATE accounts SET email = 'held@example.com' WHERE id = 19990")
        .execute(&mut app)
        .await
        .unwrap();
    let failed = c
        .refused("rollback", json!({"plan_id": id, "reason": "wrong scores"}))
        .await;
    assert_eq!(failed["code"], "sql-failed", "{failed}");
    let restored = p
        .scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score < 10")
        .await;
    assert!(
        restored > 0 && restored < 20_000,
        "batches before the held row committed: {restored}"
    );
    let s = c.ok("status", json!({"plan_id": id})).await;
    let failed_run = s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "rollback")
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed_run["ok"], false, "the failed rollback is a run: {s}");
    let refused = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "rollback-incomplete", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("`score`"),
        "{refused}"
    );

    sqlx::raw_sql("COMMIT").execute(&mut app).await.unwrap();
    let rolled = c
        .ok("rollback", json!({"plan_id": id, "reason": "wrong scores"}))
        .await;
    assert_eq!(rolled["status"], "rolled-back", "{rolled}");
    let after: String = sqlx::query_scalar(scores)
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(after, before, "every score as before the apply");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE id = 19990 AND email = 'held@example.com'"
        )
        .await,
        1,
        "the application's write is kept"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'drydock_backup'::regnamespace AND relname LIKE 'bf\\_%'"
        )
        .await,
        0,
        "the step's saved values are dropped"
    );
    app.close().await.ok();
    c.close().await;
}

/// The server keeps one plain session per target between tool calls for its own reads (no
/// connection per call), idle and as it connected; one the database ended meanwhile is replaced
/// without the agent seeing it.
#[tokio::test]
async fn a_kept_session_the_database_ended_is_replaced_unseen() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let drydock_sessions = |state: &'static str| {
        let (p, db) = (&p, p.prod.clone());
        async move {
            p.scalar(
                &p.prod,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'drydock' AND state = '{state}'"
                ),
            )
            .await
        }
    };
    c.ok("inspect", json!({"target": "production"})).await;
    assert_eq!(drydock_sessions("idle").await, 1, "one session kept, idle");
    assert_eq!(drydock_sessions("idle in transaction").await, 0);
    c.ok("inspect", json!({"target": "production"})).await;
    assert_eq!(
        drydock_sessions("idle").await,
        1,
        "the same one, not a second"
    );

    let ended = p
        .scalar(
            &p.prod,
            &format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = '{}' AND application_name = 'drydock') AS t",
                p.prod
            ),
        )
        .await;
    assert_eq!(ended, 1);
    let inspected = c.ok("inspect", json!({"target": "production"})).await;
    assert!(inspected.to_string().contains("accounts"), "{inspected}");
    c.close().await;
}

/// A backfill interrupted under a drydock without lanes (one checkpoint row per step, keyed by
/// plan and step) resumes from that checkpoint as one lane: the table gains its `lane` column,
/// and the rows before the checkpoint are not updated again.
#[tokio::test]
async fn a_backfill_checkpointed_before_lanes_resumes_where_it_stopped() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "score every account once", "target": "production",
                   "steps": [{"name": "score", "backfill": {"table": "accounts", "set": "score = score + 1"},
                              "down": "SELECT 1"}]}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    run_sql(
        &p.prod,
        &format!(
            "CREATE SCHEMA IF NOT EXISTS drydock;
         CREATE TABLE drydock.backfill_progress (
             plan_id text NOT NULL, step text NOT NULL, last_key text,
             rows_done bigint NOT NULL DEFAULT 0, batches bigint NOT NULL DEFAULT 0,
             done boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (plan_id, step));
         UPDATE accounts SET score = score + 1 WHERE id <= 7000;
         INSERT INTO drydock.backfill_progress (plan_id, step, last_key, rows_done, batches)
         VALUES ('{id}', 'score', '7000', 7000, 7);"
        ),
    )
    .await;
    let body = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(body["status"], "applied", "{body}");
    assert_eq!(body["backfills"][0]["resumed_from"], "7000", "{body}");
    assert_eq!(body["backfills"][0]["lanes"], 1, "{body}");
    assert_eq!(body["backfills"][0]["rows"], 20_000, "{body}");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
            .await,
        20_000,
        "every row exactly once"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            &format!("SELECT count(*) FROM drydock.backfill_progress WHERE plan_id = '{id}' AND lane = 0 AND done")
        )
        .await,
        1
    );
}

/// Lanes fail together: a batch that fails in one lane (a division by zero only production's
/// data holds) stops the other at its next checkpoint, the apply reports the failing batch, and
/// every part's checkpoint counts exactly the rows its committed batches changed.
#[tokio::test]
async fn a_failing_lane_stops_the_others_at_their_checkpoints() {
    const ROWS: i64 = 200_000;
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            &format!(
                "CREATE TABLE counters (id bigint PRIMARY KEY, divisor integer NOT NULL DEFAULT 1, n integer NOT NULL DEFAULT 0);
                 INSERT INTO counters (id) SELECT g FROM generate_series(1, {ROWS}) g; ANALYZE counters;"
            ),
        )
        .await;
    }
    // A failing row every 1,000 from 45,000: the second of the four parts (about 50,000 rows
    // each, cut at a sample's quantiles, so its start varies by thousands) fails in its first
    // batches while the first part is walked beside it, far from its end; the parts after it
    // never start. (One failing row at 70,000 let the first part end first on a loaded machine.)
    run_sql(
        &p.prod,
        "UPDATE counters SET divisor = 0 WHERE id > 45000 AND id % 1000 = 0",
    )
    .await;
    let client = p.project.connect().await;
    let planned = client
        .ok(
            "plan",
            json!({"goal": "count once", "target": "production",
                   "steps": [{"name": "count", "backfill": {"table": "counters", "set": "n = n + 100 / divisor",
                              "batch_size": 2000}, "down": "SELECT 1"}]}),
        )
        .await;
    let id = plan_id(&planned);
    client.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let r = client.call("apply", json!({"plan_id": id})).await;
    let body = serde_json::to_string(&r).unwrap();
    assert!(body.contains("division by zero"), "{body}");
    let lanes = p
        .scalar(
            &p.prod,
            &format!("SELECT count(*) FROM drydock.backfill_progress WHERE plan_id = '{id}'"),
        )
        .await;
    // 200,000 rows: four parts of 50,000 (policy.backfill_lanes × lanes::SEGMENTS, one part per
    // 50,000 rows at most), walked two at a time.
    assert_eq!(lanes, 4, "four parts, each with its checkpoint");
    let done = p
        .scalar(
            &p.prod,
            &format!(
                "SELECT sum(rows_done)::int8 FROM drydock.backfill_progress WHERE plan_id = '{id}'"
            ),
        )
        .await;
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM counters WHERE n = 100")
            .await,
        done,
        "the checkpoints count exactly the rows changed"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM counters WHERE n NOT IN (0, 100)"
        )
        .await,
        0
    );
    let first_part_end = p
        .scalar(
            &p.prod,
            &format!("SELECT upto::int8 FROM drydock.backfill_progress WHERE plan_id = '{id}' AND lane = 0"),
        )
        .await;
    assert!(
        first_part_end < 70_000,
        "the failing row is in the second part"
    );
    assert!(
        p.scalar(
            &p.prod,
            &format!("SELECT count(*) FROM counters WHERE n = 100 AND id <= {first_part_end}")
        )
        .await
            < first_part_end,
        "the first part, walked beside the failing one, stopped before its end"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM counters WHERE n = 100 AND id >= 70000"
        )
        .await,
        0,
        "nothing of the failing batch committed"
    );
}

/// Real schemas hold materialized views made `WITH NO DATA` (refreshed later) and partitioned
/// tables never analysed as a whole: `inspect`, `doctor` and a plan touching them read them
/// (an unpopulated view cannot be counted; it once broke all three).
#[tokio::test]
async fn unpopulated_materialized_views_and_partitioned_tables_are_read() {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        run_sql(
            db,
            "CREATE MATERIALIZED VIEW account_totals AS SELECT id, balance FROM accounts WITH NO DATA;
             CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
             CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO events SELECT g, '2026-03-01' FROM generate_series(1, 500) g;
             ANALYZE events_2026",
        )
        .await;
    }
    let c = p.project.connect().await;
    for table in ["account_totals", "events"] {
        let r = c
            .call("inspect", json!({"target": "production", "table": table}))
            .await;
        assert_ne!(r.is_error, Some(true), "{table}: {r:?}");
    }
    let doctor = p.project.cli(&["doctor"]);
    assert!(
        doctor.status.success(),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    let planned = c
        .ok(
            "plan",
            json!({"goal": "refresh and archive", "target": "production",
                   "steps": [{"name": "refresh", "up": "REFRESH MATERIALIZED VIEW account_totals", "down": "SELECT 1"},
                             {"name": "note", "up": "ALTER TABLE events ADD COLUMN note text", "down": "ALTER TABLE events DROP COLUMN note"}]}),
        )
        .await;
    let impact = planned["analysis"]["impact"].to_string();
    assert!(impact.contains("events"), "{impact}");
    c.close().await;
}

/// drydock's reads leave no prepared statement behind on the sessions it keeps and hands on: a
/// statement the driver prepared under a new name for every read stayed on the server for the
/// session's life (hundreds a call on a kept session, one per batch on a backfill's). A check in
/// the second of two dry-runs — whose session is the one kept and warmed after the first, then
/// used by its reads — counts the session's prepared statements besides drydock's schema read.
#[tokio::test]
async fn drydocks_reads_leave_no_prepared_statements_on_a_session() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let check = json!({"name": "no leftovers",
        "sql": "SELECT count(*) = 0 FROM pg_prepared_statements WHERE name NOT LIKE 'drydock\\_schema\\_read\\_%'",
        "expect": "true"});
    for _ in 0..2 {
        let planned = c
            .ok(
                "plan",
                json!({"goal": "a tier for every account", "target": "production",
                       "steps": [{"name": "tier", "up": "ALTER TABLE accounts ADD COLUMN tier text",
                                  "down": "ALTER TABLE accounts DROP COLUMN tier"}],
                       "checks": [check]}),
            )
            .await;
        let dry = c.ok("dry-run", json!({"plan_id": plan_id(&planned)})).await;
        assert!(
            !dry["warnings"]
                .to_string()
                .contains("check `no leftovers` failed"),
            "{dry}"
        );
    }
    c.close().await;
}
