//! Several servers sharing one state store on PostgreSQL (spec §10): real `drydock serve`
//! processes, a state database, production and staging databases, all in the test cluster.
//! Two servers racing on one plan (exactly one applies, the other names the holder), a server
//! killed mid-backfill (another takes over and every row is updated exactly once), a crashed
//! server on another machine (its lease is taken over when it expires), mistakes counted across
//! servers and synced into each repository's ERRORS.md, and a SQLite store migrated to
//! PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::PgProject;
use common::server::{StdioClient, call, spawn_server};
use serde_json::{Value, json};

/// A fresh database in the test cluster for the state store; its URL.
async fn state_db() -> String {
    use sqlx::Connection;
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "state_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut admin = common::pg_connect("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    common::pg_url_for(&name)
}

/// A PostgreSQL project whose state lives in its own database of the cluster (lease `lease`).
async fn shared_project(lease: &str) -> (PgProject, String) {
    let url = state_db().await;
    let p = PgProject::with_extra(
        "apply_wait = \"1s\"",
        &format!("[state]\nurl = \"{url}\"\nlease = \"{lease}\"\n"),
    )
    .await;
    (p, url)
}

/// A backfill over the 20,000 accounts that takes seconds whatever the machine: half a second
/// between batches (which grow 1.5× while fast: 400, 600, 900, …).
fn slow_backfill() -> Value {
    json!({"goal": "score every account once", "target": "production",
           "steps": [{"name": "score", "backfill": {"table": "accounts", "set": "score = score + 1",
                      "batch_size": 400, "pause_ms": 500}, "down": "SELECT 1"}]})
}

fn ok(r: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{r:?}");
    r.structured_content.clone().expect("structured content")
}

async fn state_scalar(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    v
}

async fn wait_applied(c: &StdioClient, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let s = ok(&call(c, "status", json!({"plan_id": id})).await);
        if (s["status"] == "applied" && s.get("running").is_none())
            || t0.elapsed() > Duration::from_secs(90)
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn planned(p: &PgProject, c: &StdioClient) -> String {
    let id = common::plan_id(&ok(&call(c, "plan", slow_backfill()).await));
    ok(&call(c, "dry-run", json!({"plan_id": id})).await);
    p.project.approve(&id, "alice");
    id
}

/// Two server processes share the state: a plan made on one is seen, approved and applied from
/// the other; both asked to apply it at the same instant, exactly one does and the other names
/// the server holding it; `status` on the loser shows the holder's progress.
#[tokio::test]
async fn two_servers_racing_on_one_plan_apply_it_once() {
    let (p, state) = shared_project("30s").await;
    let (_a_child, a) = spawn_server(&p.project.config_path).await;
    let (_b_child, b) = spawn_server(&p.project.config_path).await;
    let id = planned(&p, &a).await;
    let seen = ok(&call(&b, "status", json!({"plan_id": id})).await);
    assert_eq!(seen["status"], "approved", "server B sees A's plan: {seen}");

    let (ra, rb) = tokio::join!(
        call(&a, "apply", json!({"plan_id": id})),
        call(&b, "apply", json!({"plan_id": id}))
    );
    let (won, lost) = match (ra.is_error, rb.is_error) {
        (Some(true), Some(true)) => panic!("both refused: {ra:?} {rb:?}"),
        (Some(true), _) => ((&b, rb), (&a, ra)),
        (_, Some(true)) => ((&a, ra), (&b, rb)),
        _ => panic!("both applied: {ra:?} {rb:?}"),
    };
    assert_eq!(ok(&won.1)["status"], "applying");
    let body = common::refusal_body(&lost.1);
    assert_eq!(body["code"], "plan-held", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("by server `"),
        "names the holder: {message}"
    );
    assert!(body["fix"].as_str().unwrap().contains("status"), "{body}");

    // The loser's status shows who is applying it, with the holder's progress (heartbeats).
    let t0 = Instant::now();
    let running = loop {
        let s = ok(&call(lost.0, "status", json!({"plan_id": id})).await);
        if s["running"]["done"].as_u64().is_some_and(|d| d > 0) || s["status"] == "applied" {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if running["status"] == "applying" {
        assert!(
            running["running"]["server"].as_str().is_some(),
            "names the server: {running}"
        );
    }

    let done = wait_applied(won.0, &id).await;
    assert_eq!(done["status"], "applied", "{done}");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score <> 1")
            .await,
        0,
        "every row updated exactly once"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            &format!("SELECT count(*) FROM drydock.history WHERE plan_id = '{id}'")
        )
        .await,
        1
    );
    assert_eq!(
        state_scalar(&state, "SELECT count(*) FROM leases").await,
        0,
        "the lease is released"
    );
    assert!(
        !p.project.errors_md().contains("plan-held"),
        "a busy plan is no agent's mistake"
    );
}

/// A server killed (SIGKILL) in the middle of a backfill: the plan is stuck nowhere — another
/// server sharing the store takes the dead server's lease (a process of this machine that no
/// longer exists), resumes from the checkpoint, and every row is updated exactly once.
#[tokio::test]
async fn a_server_killed_mid_backfill_is_taken_over_by_another() {
    let (p, state) = shared_project("30s").await;
    let (mut a_child, a) = spawn_server(&p.project.config_path).await;
    let (_b_child, b) = spawn_server(&p.project.config_path).await;
    let id = planned(&p, &b).await;
    assert_eq!(
        ok(&call(&a, "apply", json!({"plan_id": id})).await)["status"],
        "applying"
    );
    let t0 = Instant::now();
    while p
        .scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
        .await
        < 400
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a_child.start_kill().unwrap();
    a_child.wait().await.unwrap();
    let done_at_kill = p
        .scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
        .await;
    assert!(done_at_kill < 20_000, "killed part-way: {done_at_kill}");
    assert_eq!(
        state_scalar(&state, "SELECT count(*) FROM leases").await,
        1,
        "the dead server's lease is still there"
    );

    let resumed = ok(&call(&b, "apply", json!({"plan_id": id})).await);
    assert!(
        ["applying", "applied"].contains(&resumed["status"].as_str().unwrap()),
        "{resumed}"
    );
    let done = wait_applied(&b, &id).await;
    assert_eq!(done["status"], "applied", "{done}");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score <> 1")
            .await,
        0,
        "every row exactly once across the kill"
    );
}

/// A server on another machine that crashed while applying: its lease is live until it
/// expires (drydock cannot see another machine's processes), so the plan is refused with the
/// holder and the time left, and taken over once the lease has expired.
#[tokio::test]
async fn a_crashed_remote_servers_lease_is_taken_over_when_it_expires() {
    use sqlx::Connection;
    let (p, state) = shared_project("2s").await;
    let (_b_child, b) = spawn_server(&p.project.config_path).await;
    let id = planned(&p, &b).await;
    // What a server on `db-7` leaves behind when it dies mid-apply: a lease with a few
    // seconds to run, on the store's clock.
    let mut c = sqlx::PgConnection::connect(&state).await.unwrap();
    sqlx::query(
        "INSERT INTO leases (plan_id, holder, principal, action, acquired_at, expires_ms)
         VALUES ($1, 'db-7:4242', 'ci-agent', 'apply', '2026-11-26T08:00:00.000Z',
                 CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) + 3000)",
    )
    .bind(&id)
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.ok();

    let r = call(&b, "apply", json!({"plan_id": id})).await;
    let body = common::refusal_body(&r);
    assert_eq!(body["code"], "plan-held", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("db-7:4242") && message.contains("ci-agent"),
        "{message}"
    );
    let status = ok(&call(&b, "status", json!({"plan_id": id})).await);
    assert_eq!(status["running"]["server"], "db-7:4242", "{status}");

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let taken = ok(&call(&b, "apply", json!({"plan_id": id})).await);
    assert!(
        ["applying", "applied"].contains(&taken["status"].as_str().unwrap()),
        "{taken}"
    );
    assert_eq!(wait_applied(&b, &id).await["status"], "applied");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score <> 1")
            .await,
        0
    );
}

/// Each server appends the mistakes it sees to its own repository's ERRORS.md; the shared store
/// counts each mistake once across servers, and `drydock errors sync` writes into a repository's
/// ERRORS.md every shared entry it lacks — idempotently.
#[tokio::test]
async fn mistakes_are_counted_across_servers_and_synced_into_each_repository() {
    let (p, state) = shared_project("30s").await;
    // A second repository: the same targets and the same shared store, its own ERRORS.md.
    let other = tempfile::tempdir().unwrap();
    let other_config = other.path().join("drydock.toml");
    std::fs::copy(&p.project.config_path, &other_config).unwrap();
    let other_errors = other.path().join("ERRORS.md");

    let (_a_child, a) = spawn_server(&p.project.config_path).await;
    let (_b_child, b) = spawn_server(&other_config).await;
    // The same mistake on both servers: applying a plan nobody dry-ran or approved.
    for c in [&a, &b] {
        let id = common::plan_id(&ok(&call(c, "plan", slow_backfill()).await));
        let r = call(c, "apply", json!({"plan_id": id})).await;
        assert_eq!(common::refusal_body(&r)["code"], "checklist-unmet");
    }
    // A mistake only server A saw.
    let r = call(
        &a,
        "record-mistake",
        json!({"what": "planned a NOT NULL column without a default", "lesson": "add the column nullable, backfill, then set NOT NULL"}),
    )
    .await;
    assert_eq!(ok(&r)["count"], 1);

    assert_eq!(
        state_scalar(&state, "SELECT count(*) FROM mistakes").await,
        2,
        "each mistake stored once"
    );
    assert_eq!(
        state_scalar(
            &state,
            "SELECT count FROM mistakes WHERE code = 'checklist-unmet'"
        )
        .await,
        2,
        "counted across servers"
    );
    let before = std::fs::read_to_string(&other_errors).unwrap();
    assert!(before.contains("checklist-unmet"));
    assert!(!before.contains("backfill, then set NOT NULL"));

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(&other_config)
            .args(args)
            .output()
            .unwrap()
    };
    let synced = cli(&["errors", "sync"]);
    assert!(synced.status.success(), "{synced:?}");
    assert!(
        String::from_utf8_lossy(&synced.stdout).starts_with("1 entry written"),
        "{}",
        String::from_utf8_lossy(&synced.stdout)
    );
    let after = std::fs::read_to_string(&other_errors).unwrap();
    assert!(
        after.starts_with(&before),
        "nothing already there is rewritten"
    );
    assert!(after.contains("backfill, then set NOT NULL"), "{after}");
    assert_eq!(after.matches("code=checklist-unmet").count(), 1);
    let again = cli(&["errors", "sync", "--format", "json"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["written"], 0, "idempotent");
    assert_eq!(std::fs::read_to_string(&other_errors).unwrap(), after);
    assert!(
        !after.contains(&common::pg_secret()),
        "no connection string in the log"
    );
}

/// Every transition is compare-and-set: eight servers' stores moving one approved plan to
/// `applying` at the same instant — exactly one succeeds, the others see it moved.
#[tokio::test]
async fn a_transition_raced_by_eight_servers_happens_once() {
    use drydock::store::Store;
    let (p, state) = shared_project("30s").await;
    let (_server, client) = spawn_server(&p.project.config_path).await;
    let id = planned(&p, &client).await;
    let url = drydock::config::TargetUrl::Postgres(state.clone());
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(Store::at(&url).await.unwrap());
    }
    // Twenty rounds: a race lost once in a while would still be caught.
    for round in 0..20 {
        state_scalar(
            &state,
            &format!("WITH u AS (UPDATE plans SET status = 'approved' WHERE id = '{id}' RETURNING 1) SELECT count(*) FROM u"),
        )
        .await;
        assert_eq!(
            race(&stores, &id).await,
            1,
            "round {round}: exactly one server moves the plan"
        );
    }
    assert_eq!(
        state_scalar(
            &state,
            &format!("SELECT count(*) FROM plans WHERE id = '{id}' AND status = 'applying'")
        )
        .await,
        1
    );
}

/// Each store commits approved → applying at the same instant; how many succeeded.
async fn race(stores: &[drydock::store::Store], id: &str) -> usize {
    use drydock::plan::Status;
    use drydock::store::Change;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
    let races: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| {
            let (id, barrier) = (id.to_string(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .commit(Change {
                        plan_id: &id,
                        status: Some((&[Status::Approved], Status::Applying)),
                        ..Change::default()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for r in races {
        won += r.await.unwrap() as usize;
    }
    won
}

/// A server sharing the store but not configured with a plan's target refuses the plan with a
/// clear code instead of guessing where it should run.
#[tokio::test]
async fn a_server_that_does_not_know_a_plans_target_refuses_it() {
    let (p, _state) = shared_project("30s").await;
    let (_a_child, a) = spawn_server(&p.project.config_path).await;
    let id = planned(&p, &a).await;
    // Another repository's config: the same shared store, only the staging target.
    let other = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(&p.project.config_path).unwrap();
    let start = config.find("[targets.production]").unwrap();
    let end = config.find("[targets.staging]").unwrap();
    let mut trimmed = config.clone();
    trimmed.replace_range(start..end, "");
    let trimmed = trimmed.replace("staging = \"staging\"\n", "");
    let other_config = other.path().join("drydock.toml");
    std::fs::write(&other_config, trimmed).unwrap();
    let (_b_child, b) = spawn_server(&other_config).await;
    let r = call(&b, "apply", json!({"plan_id": id})).await;
    let body = common::refusal_body(&r);
    assert_eq!(body["code"], "unknown-target", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("production"),
        "{body}"
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score <> 0")
            .await,
        0,
        "nothing ran"
    );
}

/// A team outgrowing one machine: `drydock state migrate --to` copies the local SQLite store
/// (plans, approvals, runs, audit, tokens) into an empty PostgreSQL store, which then serves the
/// same plans; a second migration into a store with state is refused and changes nothing.
#[tokio::test]
async fn a_sqlite_store_migrates_to_postgres() {
    let p = common::Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, common::add_column_plan()).await;
    c.ok("apply", json!({"plan_id": id})).await;
    c.close().await;
    let before = p.engine().await.status(&id).await.unwrap();

    let url = state_db().await;
    let run = |config: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env("DRYDOCK_STATE_URL", &url)
            .output()
            .unwrap()
    };
    let out = run(
        &p.config_path,
        &["state", "migrate", "--to", "env:DRYDOCK_STATE_URL"],
    );
    assert!(out.status.success(), "{out:?}");
    let copied: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(copied["to"], "postgres");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&common::pg_secret())
            && !String::from_utf8_lossy(&out.stderr).contains(&common::pg_secret())
    );

    // Point the project at the shared store: the same plan, approvals, runs and audit.
    let config = std::fs::read_to_string(&p.config_path).unwrap();
    std::fs::write(
        &p.config_path,
        format!("[state]\nurl = \"env:DRYDOCK_STATE_URL\"\n\n{config}"),
    )
    .unwrap();
    let show = run(&p.config_path, &["show", &id, "--format", "json"]);
    assert!(show.status.success(), "{show:?}");
    let after: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(after["status"], "applied");
    assert_eq!(after["checksum"], before.checksum);
    assert_eq!(
        after["approvals"].as_array().unwrap().len(),
        before.approvals.len()
    );
    assert_eq!(after["runs"].as_array().unwrap().len(), before.runs.len());
    // New rows continue after the copied ids (a new plan writes audit rows).
    let audit_rows = state_scalar(&url, "SELECT count(*) FROM audit").await;
    // SAFETY: set before any thread of this test reads the environment for it.
    unsafe { std::env::set_var("DRYDOCK_STATE_URL", &url) };
    let c = p.connect().await;
    c.ok("plan", common::add_column_plan()).await;
    c.close().await;
    assert!(state_scalar(&url, "SELECT count(*) FROM audit").await > audit_rows);

    // Into a store that has state: refused, nothing copied twice.
    let plans = state_scalar(&url, "SELECT count(*) FROM plans").await;
    let again = run(
        &p.config_path,
        &["state", "migrate", "--to", "env:DRYDOCK_STATE_URL"],
    );
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already has state"), "{stderr}");
    assert_eq!(
        state_scalar(&url, "SELECT count(*) FROM plans").await,
        plans
    );
}
