//! Kill trials: `drydock serve` (the real binary) is killed with SIGKILL at random instants of an
//! `apply` — and at the instant right after the target commits a step, found by watching the
//! target's history table — then a fresh server finishes the job. On both engines, every trial
//! must end with each step run exactly once (a counter plan ends at exactly +11, one history row
//! per step), the store agreeing with the target, the linked staging holding every step once
//! too, and the plan not stuck. The same for kills during `rollback` (staging rolled back by the
//! rollback that finishes, or by the next dry-run). Then the races: two servers applying one
//! plan at once, and fifty servers migrating a fresh state store at once.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::server::{StdioClient, call, spawn_server};
use common::{PgProject, Project, pg_connect, refusal_body};
use serde_json::{Value, json};
use sqlx::Connection;

/// Random trials per engine, then targeted ones (kill as history row k appears, each k in turn).
const RANDOM_TRIALS: usize = 12;
const TARGETED_TRIALS: usize = 8;
const ROLLBACK_TRIALS: usize = 4;

/// A production database of either engine, read directly.
enum Db {
    Sqlite(PathBuf),
    Pg(String),
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Db {
    async fn connect(&self) -> Conn {
        match self {
            Db::Sqlite(path) => Conn::Sqlite(
                sqlx::SqliteConnection::connect_with(
                    &sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(path)
                        .busy_timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap(),
            ),
            Db::Pg(db) => Conn::Pg(pg_connect(db).await),
        }
    }

    fn history_table(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "_drydock_history",
            Db::Pg(_) => "drydock.history",
        }
    }
}

impl Conn {
    async fn exec(&mut self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            Conn::Pg(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .unwrap();
    }

    /// One integer.
    async fn int(&mut self, sql: &str) -> i64 {
        self.try_int(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn try_int(&mut self, sql: &str) -> sqlx::Result<i64> {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Conn::Sqlite(c) => sqlx::query_scalar::<_, i64>(q).fetch_one(c).await,
            Conn::Pg(c) => sqlx::query_scalar::<_, i64>(q).fetch_one(c).await,
        }
    }
}

/// A tiny deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

enum Kill {
    AfterMs(u64),
    /// As soon as the target's history has `k` rows for the plan (applied or rolled back).
    AtHistoryRow(i64),
}

struct Bench {
    project_config: PathBuf,
    db: Db,
    /// The production target's linked staging, which must follow every step too.
    staging: Db,
}

/// The trial plan: +1, a table, +10 and, on PostgreSQL, a backfill of +100 (its last batch and
/// history row commit together). Returns the steps and the counter they must leave.
fn steps(trial: usize, backfill: bool) -> (Value, i64) {
    let mut steps = vec![
        json!({"name": "bump", "up": format!("UPDATE counters SET n = n + 1 WHERE id = {trial}"),
         "down": format!("UPDATE counters SET n = n - 1 WHERE id = {trial}")}),
        json!({"name": "table", "up": format!("CREATE TABLE t_{trial} (id integer)"), "down": format!("DROP TABLE t_{trial}")}),
        json!({"name": "bump10", "up": format!("UPDATE counters SET n = n + 10 WHERE id = {trial}"),
         "down": format!("UPDATE counters SET n = n - 10 WHERE id = {trial}")}),
    ];
    if backfill {
        steps.push(json!({"name": "fill", "backfill": {"table": "counters", "set": "n = n + 100", "where": format!("id = {trial}")},
            "down": "SELECT 1"}));
    }
    (json!(steps), if backfill { 111 } else { 11 })
}

impl Bench {
    /// Runs `tool` on a fresh server and kills it at `kill`; returns what the target's history
    /// held at the kill and whether the call had already answered.
    async fn killed(&self, tool: &str, args: Value, kill: &Kill, counting: &str) -> (i64, bool) {
        let (mut child, client) = spawn_server(&self.project_config).await;
        let (tool, args2) = (tool.to_string(), args.clone());
        let task = tokio::spawn(async move {
            let r = client
                .call_tool(
                    rmcp::model::CallToolRequestParams::new(tool)
                        .with_arguments(args2.as_object().cloned().unwrap()),
                )
                .await;
            drop(client);
            r.is_ok()
        });
        let mut watch = self.db.connect().await;
        match kill {
            Kill::AfterMs(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Kill::AtHistoryRow(k) => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while watch.try_int(counting).await.unwrap_or(0) < *k
                    && !task.is_finished()
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
        child.start_kill().ok();
        child.wait().await.ok();
        let seen = watch.try_int(counting).await.unwrap_or(0);
        let answered = task.await.unwrap_or(false);
        (seen, answered)
    }

    /// Calls `tool` on a fresh server until it succeeds (a dead server's PostgreSQL lock may take
    /// a moment to go), or returns the refusal; with how long the last call took.
    async fn finish(&self, tool: &str, args: Value) -> (Value, u64) {
        let (_child, client) = spawn_server(&self.project_config).await;
        for _ in 0..100 {
            let t0 = Instant::now();
            let r = call(&client, tool, args.clone()).await;
            let ms = t0.elapsed().as_millis() as u64;
            if r.is_error != Some(true) {
                // Staging follows after an apply's answer: the server stays up until it has
                // (a kill before then is what the next trial's apply or dry-run catches up).
                if let Some(id) = args["plan_id"].as_str() {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while self.status(&client, id).await.get("running").is_some()
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                return (r.structured_content.unwrap_or(Value::Null), ms);
            }
            let body = refusal_body(&r);
            if body["code"] == "target-busy" {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return (body, ms);
        }
        panic!("{tool} stayed busy");
    }

    async fn status(&self, client: &StdioClient, id: &str) -> Value {
        call(client, "status", json!({"plan_id": id}))
            .await
            .structured_content
            .unwrap()
    }
}

/// Kill trials on one engine; returns the outcome lines (all must be ok).
async fn trials(
    project: &Project,
    (db, staging): (Db, Db),
    seed: u64,
    backfill: bool,
) -> Vec<String> {
    let bench = Bench {
        project_config: project.config_path.clone(),
        db,
        staging,
    };
    let history = bench.db.history_table();
    let mut rng = Rng(seed | 1);
    let c = project.connect().await;
    let mut outcomes = Vec::new();
    let mut calibrated_ms = 0u64;
    let mut applied_plans = Vec::new();
    for trial in 0..=(RANDOM_TRIALS + TARGETED_TRIALS) {
        let (plan_steps, expected) = steps(trial, backfill);
        let n = plan_steps.as_array().unwrap().len() as i64;
        let id = project
            .ready(&c, json!({"goal": format!("trial {trial}"), "target": "production", "steps": plan_steps}))
            .await;
        let counting = format!("SELECT count(*) FROM {history} WHERE plan_id = '{id}'");
        let kill = match trial {
            // Trial 0 is not killed: it measures how long an apply takes.
            0 => None,
            t if t <= RANDOM_TRIALS => Some(Kill::AfterMs(rng.next(calibrated_ms + 1))),
            t => Some(Kill::AtHistoryRow((t - RANDOM_TRIALS - 1) as i64 % n + 1)),
        };
        let (seen, answered) = match &kill {
            None => {
                // Kills land within the call's duration (plus the server's start-up).
                calibrated_ms = bench.finish("apply", json!({"plan_id": id})).await.1 + 20;
                (n, true)
            }
            Some(k) => {
                bench
                    .killed("apply", json!({"plan_id": id}), k, &counting)
                    .await
            }
        };
        let (end, _) = bench.finish("apply", json!({"plan_id": id})).await;
        let (_child, client) = spawn_server(&bench.project_config).await;
        let status = bench.status(&client, &id).await;
        let mut conn = bench.db.connect().await;
        let counter = conn
            .int(&format!(
                "SELECT CAST(n AS bigint) FROM counters WHERE id = {trial}"
            ))
            .await;
        let rows = conn.int(&counting).await;
        let distinct = conn
            .int(&format!("SELECT count(DISTINCT step) FROM {history} WHERE plan_id = '{id}' AND rolled_back_at IS NULL"))
            .await;
        let states: Vec<&str> = status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        // Staging follows every step once, the ones a killed apply committed included.
        let mut on_staging = bench.staging.connect().await;
        let staged = on_staging
            .int(&format!(
                "SELECT CAST(n AS bigint) FROM counters WHERE id = {trial}"
            ))
            .await;
        let staged_steps = on_staging
            .int(&format!("SELECT count(DISTINCT step) FROM {history} WHERE plan_id = '{id}' AND rolled_back_at IS NULL"))
            .await;
        let ok = counter == expected
            && rows == n
            && distinct == n
            && staged == expected
            && staged_steps == n
            && status["status"] == "applied"
            && states.iter().all(|s| *s == "applied");
        let at = match &kill {
            None => format!("not killed ({calibrated_ms} ms)"),
            Some(Kill::AfterMs(ms)) => format!("killed at {ms} ms"),
            Some(Kill::AtHistoryRow(k)) => format!("killed as history row {k} appeared"),
        };
        outcomes.push(format!(
            "apply trial {trial:2}: {at:<34} history rows at kill {seen}, answered {answered:5} -> counter {counter}, history {rows}, staging {staged} in {staged_steps} steps, status {}, steps {states:?}: {}",
            status["status"],
            if ok { "ok" } else { "WRONG" }
        ));
        assert!(
            ok,
            "{}\nlast apply answered: {end}",
            outcomes.last().unwrap()
        );
        applied_plans.push((trial, id));
    }
    // Rollbacks killed: at random, or as the k-th step's down commits.
    for (n, (trial, id)) in applied_plans
        .iter()
        .skip(1)
        .take(ROLLBACK_TRIALS)
        .enumerate()
    {
        let counting = format!(
            "SELECT count(*) FROM {history} WHERE plan_id = '{id}' AND rolled_back_at IS NOT NULL"
        );
        let kill = if n % 2 == 0 {
            Kill::AfterMs(rng.next(calibrated_ms + 1))
        } else {
            Kill::AtHistoryRow((n / 2 % 3 + 1) as i64)
        };
        let args = json!({"plan_id": id, "reason": "kill trial"});
        let (seen, _) = bench
            .killed("rollback", args.clone(), &kill, &counting)
            .await;
        let (_child, client) = spawn_server(&bench.project_config).await;
        if bench.status(&client, id).await["status"] != "rolled-back" {
            bench.finish("rollback", args).await;
        }
        let status = bench.status(&client, id).await;
        let mut conn = bench.db.connect().await;
        let counter = conn
            .int(&format!(
                "SELECT CAST(n AS bigint) FROM counters WHERE id = {trial}"
            ))
            .await;
        let rolled = conn.int(&counting).await;
        let table_gone = conn
            .try_int(&format!("SELECT count(*) FROM t_{trial}"))
            .await
            .is_err();
        let steps_of_plan = if backfill { 4 } else { 3 };
        // Staging follows: by the rollback that finished the job, or (killed after recording
        // it, before its staging sync) by the next dry-run there.
        let probe = common::plan_id(
            &c.ok(
                "plan",
                json!({"goal": "after a rollback trial", "target": "production", "steps": [
                {"name": "noop", "up": "SELECT 1", "down": "SELECT 1"}]}),
            )
            .await,
        );
        for _ in 0..100 {
            let r = c.call("dry-run", json!({"plan_id": probe})).await;
            if r.is_error != Some(true) {
                break;
            }
            // The killed server's session may hold staging's lock for a moment.
            assert_eq!(refusal_body(&r)["code"], "target-busy", "{r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let staged = bench
            .staging
            .connect()
            .await
            .int(&format!(
                "SELECT CAST(n AS bigint) FROM counters WHERE id = {trial}"
            ))
            .await;
        let ok = counter == 0
            && staged == 0
            && rolled == steps_of_plan
            && table_gone
            && status["status"] == "rolled-back";
        outcomes.push(format!(
            "rollback trial {trial:2}: {:<34} rolled back at kill {seen} -> counter {counter}, staging {staged}, rolled back {rolled}, table gone {table_gone}, status {}: {}",
            match kill {
                Kill::AfterMs(ms) => format!("killed at {ms} ms"),
                Kill::AtHistoryRow(k) => format!("killed as down {k} committed"),
            },
            status["status"],
            if ok { "ok" } else { "WRONG" }
        ));
        assert!(ok, "{}", outcomes.last().unwrap());
    }
    c.close().await;
    outcomes
}

fn seed() -> u64 {
    let s = std::env::var("DRYDOCK_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill trials: seed {s} (DRYDOCK_KILL_SEED={s} repeats them)");
    s
}

const COUNTERS: &str =
    "CREATE TABLE counters (id integer PRIMARY KEY, n integer NOT NULL DEFAULT 0)";

fn counter_rows() -> String {
    let values: Vec<String> = (0..=40).map(|i| format!("({i}, 0)")).collect();
    format!("INSERT INTO counters (id, n) VALUES {}", values.join(", "))
}

async fn sqlite_project() -> Project {
    let p = Project::new().await;
    for db in ["prod.db", "staging.db"] {
        let mut c = Db::Sqlite(p.path(db)).connect().await;
        c.exec(COUNTERS).await;
        c.exec(&counter_rows()).await;
    }
    p
}

async fn pg_project() -> PgProject {
    let p = PgProject::new("").await;
    for db in [&p.prod, &p.staging] {
        let mut c = Db::Pg(db.clone()).connect().await;
        c.exec(COUNTERS).await;
        c.exec(&counter_rows()).await;
        c.exec("ANALYZE counters").await;
    }
    p
}

#[tokio::test]
async fn killed_applies_and_rollbacks_on_sqlite_never_run_a_step_twice() {
    let p = sqlite_project().await;
    let dbs = (
        Db::Sqlite(p.path("prod.db")),
        Db::Sqlite(p.path("staging.db")),
    );
    let outcomes = trials(&p, dbs, seed(), false).await;
    eprintln!("sqlite:\n{}", outcomes.join("\n"));
}

#[tokio::test]
async fn killed_applies_and_rollbacks_on_postgres_never_run_a_step_twice() {
    let p = pg_project().await;
    let dbs = (Db::Pg(p.prod.clone()), Db::Pg(p.staging.clone()));
    let outcomes = trials(&p.project, dbs, seed(), true).await;
    eprintln!("postgres:\n{}", outcomes.join("\n"));
}

/// Two servers apply the same plan at the same instant: one applies it, the other says the
/// target is busy or that it is already applied; every step runs once.
async fn race(project: &Project, db: Db) {
    let c = project.connect().await;
    let id = project
        .ready(
            &c,
            json!({"goal": "race", "target": "production", "steps": steps(7, false).0}),
        )
        .await;
    let ((_a, ca), (_b, cb)) = tokio::join!(
        spawn_server(&project.config_path),
        spawn_server(&project.config_path)
    );
    let args = json!({"plan_id": id});
    let (ra, rb) = tokio::join!(call(&ca, "apply", args.clone()), call(&cb, "apply", args));
    let mut applied = 0;
    for r in [&ra, &rb] {
        if r.is_error == Some(true) {
            // The loser finds the plan's lease taken in the shared state store.
            let body = refusal_body(r);
            assert_eq!(body["code"], "plan-held", "{body}");
        } else {
            applied += 1;
        }
    }
    assert!(applied >= 1);
    let mut conn = db.connect().await;
    assert_eq!(
        conn.int("SELECT CAST(n AS bigint) FROM counters WHERE id = 7")
            .await,
        11
    );
    assert_eq!(
        conn.int(&format!(
            "SELECT count(*) FROM {} WHERE plan_id = '{id}'",
            db.history_table()
        ))
        .await,
        3
    );
    let s = call(&ca, "status", json!({"plan_id": id}))
        .await
        .structured_content
        .unwrap();
    assert_eq!(s["status"], "applied", "{s}");
    c.close().await;
}

#[tokio::test]
async fn two_servers_applying_one_plan_run_each_step_once() {
    let p = sqlite_project().await;
    race(&p, Db::Sqlite(p.path("prod.db"))).await;
    let p = pg_project().await;
    race(&p.project, Db::Pg(p.prod.clone())).await;
}

#[tokio::test]
async fn servers_started_together_on_a_fresh_state_directory_all_start() {
    let p = Project::new().await;
    let children: Vec<std::process::Child> = (0..50)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
                .arg("--config")
                .arg(&p.config_path)
                .arg("plans")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a server failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
