//! Rollouts to a group (spec §10) on real PostgreSQL: a dozen tenant databases and the group's
//! staging in the test cluster, the state store in another of its databases. One plan, dry-run
//! once on staging with every member pre-checked, approved once, applied wave by wave; a member
//! made to fail halts the rollout (earlier members applied, the failed one rolled back, later
//! ones untouched); fixed, `apply` resumes; `validate` checks every member; `rollback` reverses
//! them all. A server killed mid-rollout is resumed by the next one, no member applied twice.
//! Bad groups are refused with the reason.

mod common;

use std::time::{Duration, Instant};

use common::server::{call, spawn_server};
use common::{Project, pg_connect};
use serde_json::{Value, json};
use sqlx::Connection;

/// A fleet of `n` tenant databases (`tenant01`…), its staging and a state database.
struct Fleet {
    project: Project,
    /// Database names by member, in list order.
    members: Vec<(String, String)>,
    staging: String,
}

impl Fleet {
    async fn new(n: usize) -> Fleet {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let tag = format!(
            "{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut admin = pg_connect("postgres").await;
        let db = |suffix: &str| format!("fleet_{tag}_{suffix}");
        let members: Vec<(String, String)> = (1..=n)
            .map(|i| (format!("tenant{i:02}"), db(&format!("{i:02}"))))
            .collect();
        let all: Vec<String> = members
            .iter()
            .map(|(_, d)| d.clone())
            .chain([db("staging"), db("state"), db("admin")])
            .collect();
        for d in &all {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {d}")))
                .execute(&mut admin)
                .await
                .unwrap();
            if d.ends_with("_state") {
                continue;
            }
            if d.ends_with("_admin") {
                // Where the fleet is registered: the first two tenants, under the shop's name.
                let mut c = pg_connect(d).await;
                sqlx::query("CREATE TABLE tenants (name text, url text)")
                    .execute(&mut c)
                    .await
                    .unwrap();
                for (shop, (_, member_db)) in ["shop_a", "shop_b"].iter().zip(&members) {
                    sqlx::query("INSERT INTO tenants VALUES ($1, $2)")
                        .bind(shop)
                        .bind(common::pg_url_for(member_db))
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
                c.close().await.ok();
                continue;
            }
            let mut c = pg_connect(d).await;
            sqlx::raw_sql(
                "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0);
                 INSERT INTO accounts (email, balance) SELECT 'user' || g || '@example.com', g FROM generate_series(1, 50) g;",
            )
            .execute(&mut c)
            .await
            .unwrap();
            c.close().await.ok();
        }
        admin.close().await.ok();
        let mut config = String::new();
        for (name, d) in &members {
            config.push_str(&format!(
                "[targets.{name}]\nurl = \"{}\"\nrole = \"production\"\n\n",
                common::pg_url_for(d)
            ));
        }
        let names: Vec<String> = members.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        config.push_str(&format!(
            "[targets.fleet_staging]\nurl = \"{}\"\nrole = \"staging\"\n\n\
             [targets.fleet_admin]\nurl = \"{admin}\"\nrole = \"scratch\"\n\n\
             [groups.shops]\ndiscover = \"SELECT name, url FROM tenants ORDER BY name\"\nadmin = \"fleet_admin\"\nstaging = \"fleet_staging\"\n\n\
             [groups.broken]\ndiscover = \"SELECT name, url FROM nowhere\"\nadmin = \"fleet_admin\"\nstaging = \"fleet_staging\"\n\n\
             [groups.tenants]\ntargets = [{list}]\nstaging = \"fleet_staging\"\nwaves = [1, \"25%\", \"100%\"]\nparallel = 4\n\n\
             [groups.one_by_one]\ntargets = [{list}]\nstaging = \"fleet_staging\"\nparallel = 1\n\n\
             [groups.empty]\ntargets = []\nstaging = \"fleet_staging\"\n\n\
             [groups.twice]\ntargets = [\"tenant01\", \"tenant01\"]\nstaging = \"fleet_staging\"\n\n\
             [groups.unstaged]\ntargets = [\"tenant01\"]\n\n\
             [groups.stranger]\ntargets = [\"tenant01\", \"nobody\"]\nstaging = \"fleet_staging\"\n\n\
             [state]\nurl = \"{}\"\n\n[policy]\napply_wait = \"120s\"\n",
            common::pg_url_for(&db("staging")),
            common::pg_url_for(&db("state")),
            list = names.join(", "),
            admin = common::pg_url_for(&db("admin"))
        ));
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("drydock.toml");
        std::fs::write(&config_path, config).unwrap();
        Fleet {
            project: Project { dir, config_path },
            members,
            staging: db("staging"),
        }
    }

    fn db(&self, member: &str) -> &str {
        &self.members.iter().find(|(n, _)| n == member).unwrap().1
    }

    async fn scalar(&self, member: &str, sql: &str) -> i64 {
        let mut c = pg_connect(self.db(member)).await;
        let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.ok();
        v
    }

    async fn exec(&self, member: &str, sql: &str) {
        let mut c = pg_connect(self.db(member)).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.ok();
    }

    async fn has_tier(&self, member: &str) -> bool {
        self.scalar(
            member,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'tier'",
        )
        .await
            == 1
    }

    async fn staging_has_tier(&self) -> bool {
        let mut c = pg_connect(&self.staging).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'tier'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        c.close().await.ok();
        n == 1
    }

    async fn history_rows(&self, member: &str, plan: &str) -> i64 {
        let exists = self
            .scalar(
                member,
                "SELECT count(*) FROM pg_class WHERE oid = to_regclass('drydock.history')",
            )
            .await;
        if exists == 0 {
            return 0;
        }
        self.scalar(
            member,
            &format!(
                "SELECT count(*) FROM drydock.history WHERE plan_id = '{plan}' AND rolled_back_at IS NULL"
            ),
        )
        .await
    }
}

/// Two steps: a column, then a CHECK that a member with a negative balance fails.
fn tiers(target: &str) -> Value {
    json!({"goal": "tier every tenant's accounts", "target": target,
           "steps": [
             {"name": "add-tier", "up": "ALTER TABLE accounts ADD COLUMN tier text",
              "down": "ALTER TABLE accounts DROP COLUMN tier"},
             {"name": "no-debt", "up": "ALTER TABLE accounts ADD CONSTRAINT no_debt CHECK (balance >= 0)",
              "down": "ALTER TABLE accounts DROP CONSTRAINT no_debt"}],
           "checks": [{"name": "tier-column", "sql": "SELECT count(*) = 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'tier'", "expect": "true"}]})
}

fn states(status: &Value) -> Vec<(String, u64, String)> {
    status["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members: {status}"))
        .iter()
        .map(|m| {
            (
                m["target"].as_str().unwrap().to_string(),
                m["wave"].as_u64().unwrap(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rollout_halts_at_a_failed_member_resumes_validates_and_rolls_back() {
    let f = Fleet::new(12).await;
    // tenant07 owes money: the CHECK fails there. tenant05 has a column nobody else has.
    f.exec("tenant07", "UPDATE accounts SET balance = -5 WHERE id = 3")
        .await;
    f.exec("tenant05", "ALTER TABLE accounts ADD COLUMN legacy text")
        .await;
    let c = f.project.connect().await;
    let id = common::plan_id(&c.ok("plan", tiers("group:tenants")).await);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert_eq!(dry["target"], "fleet_staging", "{dry}");
    let differ = dry["members_differ"].as_array().unwrap();
    assert_eq!(differ.len(), 1, "{dry}");
    assert!(
        differ[0].as_str().unwrap().starts_with("tenant05:"),
        "{dry}"
    );
    for (member, _) in &f.members {
        assert!(!f.has_tier(member).await, "a dry-run touches no member");
    }
    f.project.approve(&id, "alice");

    let halted = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(halted["code"], "rollout-halted", "{halted}");
    assert!(
        halted["message"].as_str().unwrap().contains("tenant07"),
        "{halted}"
    );
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(s["status"], "halted", "{s}");
    let members = states(&s);
    // Waves over 12 members: [1], [2, 3], [4 … 12].
    let waves: Vec<u64> = members.iter().map(|m| m.1).collect();
    assert_eq!(waves, vec![1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
    for (member, _, state) in &members[..3] {
        assert_eq!(state, "applied", "{member}: {s}");
    }
    let failed = &members[6];
    assert_eq!(
        (failed.0.as_str(), failed.2.as_str()),
        ("tenant07", "failed")
    );
    assert!(
        s["members"][6]["error"]
            .as_str()
            .unwrap()
            .contains("no_debt"),
        "{s}"
    );
    // The failed member's steps were rolled back on it.
    assert!(!f.has_tier("tenant07").await);
    assert_eq!(f.history_rows("tenant07", &id).await, 0);
    // No member started after the failure (the sliding pool had started those before it),
    // and the members that never started are untouched.
    let audit = f.project.engine().await.audit_log(200).await.unwrap();
    let failed_at = audit
        .iter()
        .position(|r| r.action == "member-failed")
        .expect("the failure is audited");
    assert!(
        !audit[..failed_at]
            .iter()
            .any(|r| r.action == "member-start"),
        "a member started after the failure"
    );
    assert!(members.iter().any(|m| m.2 == "pending"), "{s}");
    for (member, _, state) in &members {
        assert!(
            ["applied", "failed", "pending"].contains(&state.as_str()),
            "{member}: {state}"
        );
        if state == "pending" {
            assert!(!f.has_tier(member).await, "{member} untouched");
            assert_eq!(f.history_rows(member, &id).await, 0);
        }
    }
    for (member, _, state) in &members {
        if state == "applied" {
            assert!(f.has_tier(member).await, "{member}");
            assert_eq!(f.history_rows(member, &id).await, 2, "{member}");
        }
    }
    assert!(f.project.errors_md().contains("rollout-halted"));

    // Fixed; the approval survives the halt and `apply` resumes where it stopped.
    f.exec(
        "tenant07",
        "UPDATE accounts SET balance = 0 WHERE balance < 0",
    )
    .await;
    let pending = states(&c.ok("status", json!({"plan_id": id})).await)
        .iter()
        .filter(|m| m.2 != "applied")
        .count();
    let ticks = c.progress.load(std::sync::atomic::Ordering::SeqCst);
    let resumed = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(resumed["status"], "applied", "{resumed}");
    assert!(
        c.progress.load(std::sync::atomic::Ordering::SeqCst) - ticks >= pending,
        "a progress notification per member applied"
    );
    // The group's staging follows the completed rollout, so the next plan's dry-run runs on
    // what the members now are.
    assert_eq!(resumed["staging_sync"]["ok"], true, "{resumed}");
    assert!(f.staging_has_tier().await);
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert!(states(&s).iter().all(|m| m.2 == "applied"), "{s}");
    for (member, _) in &f.members {
        assert!(f.has_tier(member).await, "{member}");
        assert_eq!(
            f.history_rows(member, &id).await,
            2,
            "{member}: each step once, with the group plan's id"
        );
    }
    let checksum = s["checksum"].as_str().unwrap().to_string();
    assert_eq!(
        f.scalar(
            "tenant12",
            &format!("SELECT count(*) FROM drydock.history WHERE checksum = '{checksum}'")
        )
        .await,
        2
    );
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["status"], "validated", "{v}");
    assert_eq!(v["checks"].as_array().unwrap().len(), 12, "{v}");

    let r = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "tiers are not wanted after all"}),
        )
        .await;
    assert_eq!(r["status"], "rolled-back", "{r}");
    assert_eq!(r["rolled_back"].as_array().unwrap().len(), 12);
    for (member, _) in &f.members {
        assert!(!f.has_tier(member).await, "{member}");
    }
    assert_eq!(r["staging_sync"]["ok"], true, "{r}");
    assert!(!f.staging_has_tier().await);
    let s = c.ok("status", json!({"plan_id": id})).await;
    assert!(states(&s).iter().all(|m| m.2 == "rolled-back"), "{s}");
    c.close().await;
}

#[tokio::test]
async fn bad_groups_are_refused_with_the_reason() {
    let f = Fleet::new(2).await;
    let c = f.project.connect().await;
    let refused = c.refused("plan", tiers("group:nope")).await;
    assert_eq!(refused["code"], "unknown-target", "{refused}");
    for (group, says) in [
        ("empty", "no members"),
        ("twice", "`tenant01` is listed twice"),
        ("unstaged", "no `staging`"),
        ("stranger", "`nobody` names no target"),
    ] {
        let r = c.refused("plan", tiers(&format!("group:{group}"))).await;
        assert_eq!(r["code"], "invalid-group", "{group}: {r}");
        assert!(
            r["message"].as_str().unwrap().contains(says),
            "{group}: {r}"
        );
        assert!(
            r["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("[groups.{group}]"))
        );
    }
    // The good groups still work beside the bad ones.
    let mut gated = tiers("group:tenants");
    gated["steps"][1]["gate"] = json!({"kind": "manual"});
    let r = c.refused("plan", gated).await;
    assert!(r["message"].as_str().unwrap().contains("gate"), "{r}");
    c.ok("plan", tiers("group:tenants")).await;
    c.close().await;

    // `doctor` names the shared store (redacted) and every group, the unusable ones failing it.
    let out = f.project.cli(&["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&common::pg_secret()), "{text}");
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["state_backend"], "postgres");
    assert_eq!(d["state_store"], "postgres://[redacted]");
    let groups = d["groups"].as_array().unwrap();
    let bad: Vec<&str> = groups
        .iter()
        .filter(|g| g["ok"] == false)
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        bad,
        vec!["broken", "empty", "stranger", "twice", "unstaged"],
        "{d}"
    );
    let tenants = groups.iter().find(|g| g["group"] == "tenants").unwrap();
    assert_eq!(tenants["wave_ends"], json!([1, 2]), "{d}");
}

/// A group whose members a query finds (run on its admin target when drydock starts): the plan
/// rolls out to exactly the databases the query returned; a discovery that fails leaves only
/// that group unusable, with the reason.
#[tokio::test]
async fn a_discovered_group_rolls_out_to_what_its_query_returns() {
    let f = Fleet::new(3).await;
    let c = f.project.connect().await;
    let id = common::plan_id(&c.ok("plan", tiers("group:shops")).await);
    c.ok("dry-run", json!({"plan_id": id})).await;
    f.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let s = c.ok("status", json!({"plan_id": id})).await;
    let names: Vec<String> = states(&s).into_iter().map(|m| m.0).collect();
    assert_eq!(names, vec!["shop_a", "shop_b"]);
    assert!(f.has_tier("tenant01").await && f.has_tier("tenant02").await);
    assert!(!f.has_tier("tenant03").await, "not registered, not touched");

    let r = c.refused("plan", tiers("group:broken")).await;
    assert_eq!(r["code"], "invalid-group", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("discovery query failed"), "{message}");
    assert!(!message.contains(&common::pg_secret()), "{message}");
    c.close().await;
}

/// A member that cannot be reached is a failure, never skipped: the dry-run lists it, and the
/// rollout halts at it with the members before it applied and none after it started.
#[tokio::test]
async fn an_unreachable_member_halts_the_rollout() {
    let f = Fleet::new(4).await;
    let c = f.project.connect().await;
    let mut one_by_one = tiers("group:one_by_one");
    one_by_one["goal"] = json!("tier, one member at a time");
    let id = common::plan_id(&c.ok("plan", one_by_one).await);
    // tenant03's database goes away after the plan was made.
    let mut admin = pg_connect("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {} WITH (FORCE)",
        f.db("tenant03")
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.ok();
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    let differ: Vec<&str> = dry["members_differ"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        differ.len() == 1 && differ[0].starts_with("tenant03: cannot be reached"),
        "{dry}"
    );
    assert!(!differ[0].contains(&common::pg_secret()));
    f.project.approve(&id, "alice");
    let halted = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(halted["code"], "rollout-halted", "{halted}");
    let s = c.ok("status", json!({"plan_id": id})).await;
    let members: Vec<(String, String)> = states(&s).into_iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(
        members,
        vec![
            ("tenant01".to_string(), "applied".to_string()),
            ("tenant02".to_string(), "applied".to_string()),
            ("tenant03".to_string(), "failed".to_string()),
            ("tenant04".to_string(), "pending".to_string()),
        ],
        "{s}"
    );
    assert!(!f.has_tier("tenant04").await);
    c.close().await;
}

/// The server applying a rollout is killed (SIGKILL) between members; the next server resumes
/// from the recorded member states: no member is applied twice, every member ends applied.
#[tokio::test]
async fn a_server_killed_mid_rollout_is_resumed_without_applying_a_member_twice() {
    let f = Fleet::new(8).await;
    let c = f.project.connect().await;
    // One member at a time, each taking a moment.
    let mut slow = tiers("group:one_by_one");
    slow["steps"][0]["up"] =
        json!("ALTER TABLE accounts ADD COLUMN tier text; SELECT pg_sleep(0.4)");
    let id = common::plan_id(&c.ok("plan", slow).await);
    c.ok("dry-run", json!({"plan_id": id})).await;
    f.project.approve(&id, "alice");
    c.close().await;

    let (mut server, client) = spawn_server(&f.project.config_path).await;
    let args = json!({"plan_id": id});
    let apply = tokio::spawn(async move { call(&client, "apply", args).await });
    let t0 = Instant::now();
    loop {
        let mut applied = 0;
        for (member, _) in &f.members {
            applied += f.has_tier(member).await as usize;
        }
        if applied >= 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    apply.abort();
    let mut touched = 0;
    for (member, _) in &f.members {
        touched += f.has_tier(member).await as usize;
    }
    assert!(touched < 8, "killed mid-rollout: {touched} members touched");

    let (_server, client) = spawn_server(&f.project.config_path).await;
    let r = call(&client, "apply", json!({"plan_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let s = r.structured_content.unwrap();
    assert_eq!(s["status"], "applied", "{s}");
    for (member, _) in &f.members {
        assert!(f.has_tier(member).await, "{member}");
        assert_eq!(
            f.history_rows(member, &id).await,
            2,
            "{member}: each step exactly once across the kill"
        );
    }
}
