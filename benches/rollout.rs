//! A rollout of a small plan (add a column, then an index built CONCURRENTLY) to a group of 100
//! tenant databases, with `parallel` 1, 4 and 8: the wall time, and drydock's overhead per
//! member beyond the SQL itself (the same two statements run by hand on each member, connection
//! included, give the SQL's own time). The state store is on PostgreSQL, as a team's would be.
//!
//! Run: `DRYDOCK_BENCH_PG=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench rollout`
//! (`.ci/pg-start` starts a suitable throwaway cluster). Under `cargo test` it does nothing.

use std::sync::Arc;
use std::time::Instant;

use drydock::config::Config;
use drydock::engine::{Engine, PlanRequest};
use drydock::identity::{Grant, Principal};
use drydock::plan::{Step, Urgency};
use sqlx::{AssertSqlSafe, Connection};

mod support;
use support::{BENCH_ROLE, connect};

const MEMBERS: usize = 100;
const ROWS: usize = 1_000;

fn url_of(base: &str, db: &str) -> String {
    format!("{}/{db}", base.rsplit_once('/').expect("a database URL").0)
}

async fn create(admin: &mut sqlx::PgConnection, base: &str, db: &str, seed: bool) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut *admin)
    .await
    .expect("drop");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE DATABASE {db} OWNER {BENCH_ROLE}"
    )))
    .execute(&mut *admin)
    .await
    .expect("create");
    if seed {
        let mut c = connect(&url_of(base, db)).await;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0);
             INSERT INTO accounts (email, balance) SELECT 'u' || g || '@example.com', g FROM generate_series(1, {ROWS}) g;
             ANALYZE accounts;"
        )))
        .execute(&mut c)
        .await
        .expect("seed");
        c.close().await.ok();
    }
}

fn steps(col: &str) -> Vec<Step> {
    vec![
        Step {
            name: Some("add".into()),
            up: Some(format!("ALTER TABLE accounts ADD COLUMN {col} text")),
            down: Some(format!("ALTER TABLE accounts DROP COLUMN {col}")),
            backfill: None,
            gate: None,
            restore: None,
        },
        Step {
            name: Some("index".into()),
            up: Some(format!(
                "CREATE INDEX CONCURRENTLY accounts_{col} ON accounts ({col})"
            )),
            down: Some(format!("DROP INDEX CONCURRENTLY accounts_{col}")),
            backfill: None,
            gate: None,
            restore: None,
        },
    ]
}

/// The plan's SQL run by hand on every member, one after another: what the SQL itself costs.
async fn by_hand(base: &str, dbs: &[String], col: &str) -> f64 {
    let t0 = Instant::now();
    for db in dbs {
        let mut c = connect(&url_of(base, db)).await;
        for s in steps(col) {
            sqlx::raw_sql(AssertSqlSafe(s.up.unwrap()))
                .execute(&mut c)
                .await
                .expect("by hand");
        }
        c.close().await.ok();
    }
    t0.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(base) = std::env::var("DRYDOCK_BENCH_PG").or_else(|_| std::env::var("DRYDOCK_TEST_PG"))
    else {
        eprintln!(
            "set DRYDOCK_BENCH_PG to a PostgreSQL URL (databases are created and dropped on that server)"
        );
        std::process::exit(2);
    };
    support::log_phases();
    let mut admin = connect(&base).await;
    // drydock and the members' setup log in unprivileged; the superuser only creates databases.
    let app = support::unprivileged(&base).await;
    let tag = std::process::id();
    let dbs: Vec<String> = (0..MEMBERS)
        .map(|i| format!("bench_t{tag}_{i:03}"))
        .collect();
    let t0 = Instant::now();
    for db in &dbs {
        create(&mut admin, &app, db, true).await;
    }
    let (staging, state) = (
        format!("bench_t{tag}_staging"),
        format!("bench_t{tag}_state"),
    );
    create(&mut admin, &app, &staging, true).await;
    create(&mut admin, &app, &state, false).await;
    eprintln!(
        "{MEMBERS} tenant databases created in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "rollout of `ADD COLUMN` + `CREATE INDEX CONCURRENTLY` to {MEMBERS} tenant databases ({ROWS} rows each), one wave, state store on PostgreSQL"
    );
    println!(
        "{:>9} {:>10} {:>12} {:>14} {:>20}",
        "parallel", "wall s", "members/s", "SQL alone s", "overhead/member ms"
    );
    for parallel in [1usize, 4, 8] {
        let col = format!("tier_p{parallel}");
        let mut config = String::new();
        for (i, db) in dbs.iter().enumerate() {
            config.push_str(&format!(
                "[targets.t{i:03}]\nurl = \"{}\"\nrole = \"production\"\n\n",
                url_of(&app, db)
            ));
        }
        let list: Vec<String> = (0..MEMBERS).map(|i| format!("\"t{i:03}\"")).collect();
        config.push_str(&format!(
            "[targets.staging]\nurl = \"{}\"\nrole = \"staging\"\n\n[groups.tenants]\ntargets = [{}]\nstaging = \"staging\"\nwaves = [\"100%\"]\nparallel = {parallel}\n\n[state]\nurl = \"{}\"\n\n[policy]\napply_wait = \"1h\"\n",
            url_of(&app, &staging),
            list.join(", "),
            url_of(&app, &state)
        ));
        let config = Config::parse(&config, dir.path(), None).expect("config");
        let engine = Arc::new(Engine::open(config).await.expect("engine"));
        let agent = Principal::person("bench-agent", Grant::Agent);
        let planned = engine
            .plan(
                PlanRequest {
                    goal: "bench rollout".into(),
                    target: "group:tenants".into(),
                    steps: Some(steps(&col)),
                    template: None,
                    params: None,
                    checks: vec![],
                    urgency: Urgency::Normal,
                    supersedes: None,
                    desired: None,
                },
                &agent,
            )
            .await
            .expect("plan");
        engine
            .dry_run(&planned.plan_id, None, &agent)
            .await
            .expect("dry-run");
        engine
            .approve(
                &planned.plan_id,
                &Principal::person("alice", Grant::Approver),
            )
            .await
            .expect("approve");
        let t0 = Instant::now();
        let applied = engine
            .apply(&planned.plan_id, &agent, None)
            .await
            .expect("apply");
        let wall = t0.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(applied.status.to_string(), "applied", "{}", applied.message);
        // The same SQL by hand, on a fresh column, for the SQL's own cost.
        let hand = format!("hand_p{parallel}");
        let sql = by_hand(&app, &dbs, &hand).await;
        // Staging gets the hand-made column too: the next dry-run finds it shaped as the members.
        by_hand(&app, std::slice::from_ref(&staging), &hand).await;
        let overhead = (wall - sql) / MEMBERS as f64;
        println!(
            "{parallel:>9} {:>10.2} {:>12.1} {:>14.2} {:>20.1}",
            wall / 1000.0,
            MEMBERS as f64 / (wall / 1000.0),
            sql / 1000.0,
            overhead
        );
    }
    println!(
        "overhead/member = (wall − the same SQL by hand, one member after another) / members: what the rollout adds per member beyond the SQL (its lock, history, pre-apply schema, verified backup, checks and state commits, each on its own connection)"
    );
    for db in dbs.iter().chain([&staging, &state]) {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .ok();
    }
    admin.close().await.ok();
}
