//! The least-privilege boundary of agent SQL, tried the way a prompt-injected agent would: hostile
//! payloads in every place agent SQL can sit (step `up` and `down`, checks, backfill `set` and
//! `where`, template parameters), hidden behind comments, dollar quotes, DO blocks and function
//! bodies, on a real PostgreSQL cluster (reached as a superuser, as staging often is) and on real
//! SQLite files. Each must be reported at plan time and refused before it executes: the sentinel
//! file a payload would create never appears, and no role, setting, sequence or session changes.
//! Least-privilege roles are proven in use, and error text never carries a value the server read.

mod common;

use common::walk::run_admin_sql;
use common::{APP_ROLE, PgProject, Project, pg_connect, pg_connect_admin, plan_id};
use serde_json::{Value, json};
use sqlx::Connection;

fn tag() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

fn step(up: &str, down: &str) -> Value {
    json!({"name": "change", "up": up, "down": down})
}

fn hazard_codes(plan: &Value) -> Vec<(String, String)> {
    plan["analysis"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["code"].as_str().unwrap().to_string(),
                h["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What a payload could have changed on the cluster, read as its superuser.
async fn cluster_state(db: &str) -> Vec<String> {
    let mut c = pg_connect_admin(db).await;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT 'role ' || rolname || ' ' || rolsuper FROM pg_roles WHERE rolsuper OR rolname LIKE 'evil%'
         UNION ALL SELECT 'file-setting ' || name || '=' || coalesce(setting, '') FROM pg_file_settings
         UNION ALL SELECT 'sequence ' || last_value FROM accounts_id_seq
         UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
         UNION ALL SELECT 'column ' || column_name FROM information_schema.columns WHERE table_name = 'accounts'
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    c.close().await.ok();
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn hostile_postgres_sql_never_runs_before_review() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let sentinel = std::env::temp_dir().join(format!("drydock-sentinel-{}", tag()));
    let touch = format!("touch {}", sentinel.display());
    // A session the agent would like to terminate.
    let mut victim = pg_connect(&p.staging).await;
    let victim_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let before = cluster_state(&p.staging).await;

    let innocent_up = "ALTER TABLE accounts ADD COLUMN tier text";
    let innocent_down = "ALTER TABLE accounts DROP COLUMN tier";
    let evil_role = format!("evil_{}", tag());
    let payloads: Vec<(&str, Value)> = vec![
        (
            "COPY TO PROGRAM in up",
            json!({"steps": [step(&format!("COPY (SELECT 1) TO PROGRAM '{touch}'"), "SELECT 1")]}),
        ),
        (
            "COPY hidden behind a comment and dollar quotes",
            json!({"steps": [step(&format!("/* routine; */ ALTER TABLE accounts ADD COLUMN tier text; -- ok\nCOPY (SELECT 1) TO PROGRAM $q${touch}$q$"), innocent_down)]}),
        ),
        (
            "COPY inside a DO block",
            json!({"steps": [step(&format!("DO $$ BEGIN COPY (SELECT 1) TO PROGRAM '{touch}'; END $$"), "SELECT 1")]}),
        ),
        (
            "COPY TO PROGRAM in down",
            json!({"steps": [step(innocent_up, &format!("ALTER TABLE accounts DROP COLUMN tier; COPY (SELECT 1) TO PROGRAM '{touch}'"))]}),
        ),
        (
            "server file read into a default",
            json!({"steps": [step("ALTER TABLE accounts ADD COLUMN host text DEFAULT pg_read_file('/etc/hostname')", "ALTER TABLE accounts DROP COLUMN host")]}),
        ),
        (
            "server file read in a SQL function body",
            json!({"steps": [step("CREATE FUNCTION host() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('/etc/hostname') $$", "DROP FUNCTION host()")]}),
        ),
        (
            "a trigger that terminates sessions",
            json!({"steps": [step("CREATE FUNCTION kill() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$", "DROP FUNCTION kill()")]}),
        ),
        (
            "terminate another session",
            json!({"steps": [step(&format!("SELECT pg_terminate_backend({victim_pid})"), "SELECT 1")]}),
        ),
        (
            "a new superuser",
            json!({"steps": [step(&format!("CREATE ROLE {evil_role} SUPERUSER LOGIN PASSWORD 'x'"), &format!("DROP ROLE {evil_role}"))]}),
        ),
        (
            "ALTER SYSTEM",
            json!({"steps": [step("ALTER SYSTEM SET work_mem = '77MB'", "ALTER SYSTEM RESET work_mem")]}),
        ),
        (
            "SET ROLE",
            json!({"steps": [step("SET ROLE postgres; ALTER TABLE accounts ADD COLUMN tier text", innocent_down)]}),
        ),
        (
            "set_config of the role",
            json!({"steps": [step("SELECT set_config('session_authorization', 'postgres', false)", "SELECT 1")]}),
        ),
        (
            "an untrusted language",
            json!({"steps": [step("CREATE FUNCTION sh() RETURNS int LANGUAGE plpython3u AS $$ import os; os.system('id') $$", "DROP FUNCTION sh()")]}),
        ),
        (
            "a sequence advanced beside a file read",
            json!({"steps": [step("SELECT nextval('accounts_id_seq'), pg_read_file('/etc/hostname')", "SELECT 1")]}),
        ),
        (
            "a check reading a server file",
            json!({"steps": [step(innocent_up, innocent_down)],
                   "checks": [{"name": "host", "sql": "SELECT pg_read_file('/etc/hostname')::int = 1", "expect": "true"}]}),
        ),
        (
            "a check that creates a table (SELECT INTO)",
            json!({"steps": [step(innocent_up, innocent_down)],
                   "checks": [{"name": "copy", "sql": "SELECT count(*) = 0 AS ok INTO copied FROM accounts", "expect": "true"}]}),
        ),
        (
            "a backfill `set` reading a server file",
            json!({"steps": [step(innocent_up, innocent_down), {"name": "fill", "backfill": {"table": "accounts", "set": "nickname = pg_read_file('/etc/hostname')"}, "down": "UPDATE accounts SET nickname = NULL"}]}),
        ),
        (
            "another session's query text",
            json!({"steps": [step("SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s", "SELECT 1")]}),
        ),
        (
            "SQL given as text to a built-in function",
            json!({"steps": [step("SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')", "SELECT 1")]}),
        ),
        (
            "default privileges on every later schema",
            json!({"steps": [step("ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO PUBLIC", "ALTER DEFAULT PRIVILEGES REVOKE ALL ON SCHEMAS FROM PUBLIC")]}),
        ),
        (
            "a backfill `where` listing a directory",
            json!({"steps": [step(innocent_up, innocent_down), {"name": "fill", "backfill": {"table": "accounts", "set": "nickname = 'x'", "where": "EXISTS (SELECT 1 FROM pg_ls_dir('.'))"}, "down": "UPDATE accounts SET nickname = NULL"}]}),
        ),
    ];
    for (what, mut body) in payloads {
        body["goal"] = json!(what);
        body["target"] = json!("production");
        let planned = c.ok("plan", body).await;
        let codes = hazard_codes(&planned);
        assert!(
            codes.contains(&("privileged".to_string(), "critical".to_string())),
            "{what}: not reported as privileged/critical at plan time: {codes:?}"
        );
        assert_eq!(planned["analysis"]["risk"], "critical", "{what}");
        let refused = c
            .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
            .await;
        assert_eq!(refused["code"], "forbidden-statement", "{what}: {refused}");
        assert!(
            refused["message"].as_str().unwrap().contains('`'),
            "{what}: the refusal names the construct: {refused}"
        );
    }

    // A template parameter is admitted like agent SQL.
    let refused = c
        .refused(
            "plan",
            json!({"goal": "positive", "target": "production", "template": "add-check-constraint",
                   "params": {"table": "ledger", "name": "host_check", "expression": "pg_read_file('/etc/hostname') IS NOT NULL"}}),
        )
        .await;
    assert_eq!(refused["code"], "forbidden-statement", "{refused}");

    // SQL built at run time cannot be read ahead: the gate admits it, names it for reviewers,
    // and it runs as a role PostgreSQL keeps inside the database — whether written in a step or
    // given to the `migration` template.
    let dynamic = format!(
        "DO $x$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ' || quote_literal('{touch}'); END $x$"
    );
    for mut body in [
        json!({"steps": [step(&dynamic, "SELECT 1")]}),
        json!({"template": "migration", "params": {"goal": "tidy", "up": dynamic, "down": "SELECT 1"}}),
    ] {
        body["goal"] = json!("dynamic SQL");
        body["target"] = json!("production");
        let planned = c.ok("plan", body).await;
        assert!(
            hazard_codes(&planned).contains(&("privileged".to_string(), "medium".to_string())),
            "{planned}"
        );
        let refused = c
            .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
            .await;
        assert_eq!(refused["code"], "sql-failed", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("pg_execute_server_program"),
            "PostgreSQL refused it to the role: {refused}"
        );
    }

    // A hotfix waived by two approvers skips staging, not the boundary: apply refuses too.
    let hotfix = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "urgent", "target": "production", "urgency": "p0",
                   "steps": [step(&format!("COPY (SELECT 1) TO PROGRAM '{touch}'"), "SELECT 1")]}),
        )
        .await,
    );
    p.project.waive(&hotfix, "alice");
    p.project.waive(&hotfix, "bob");
    let refused = c.refused("apply", json!({"plan_id": hotfix})).await;
    assert_eq!(refused["code"], "forbidden-statement", "{refused}");

    assert!(!sentinel.exists(), "a payload ran a program on the server");
    assert_eq!(
        cluster_state(&p.staging).await,
        before,
        "a payload changed a role, setting, sequence, function or column"
    );
    let alive: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut victim)
        .await
        .expect("the victim session survives");
    assert_eq!(alive, 1);
    assert!(p.project.errors_md().contains("forbidden-statement"));

    // The sentinel would have caught a payload that ran: the same COPY, run by hand, creates it.
    let mut admin = pg_connect_admin(&p.staging).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "COPY (SELECT 1) TO PROGRAM '{touch}'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    assert!(sentinel.exists(), "the sentinel mechanism works");
    std::fs::remove_file(&sentinel).ok();
    admin.close().await.ok();
    victim.close().await.ok();
    c.close().await;
}

#[tokio::test]
async fn errors_never_carry_a_value_the_server_read() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    // The first account's e-mail, smuggled out through a cast error in a check ...
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "leak through a check", "target": "production",
                   "steps": [step("ALTER TABLE accounts ADD COLUMN tier text", "ALTER TABLE accounts DROP COLUMN tier")],
                   "checks": [{"name": "leak", "sql": "SELECT (SELECT email FROM accounts ORDER BY id LIMIT 1)::int = 1", "expect": "true"}]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "check-failed", "{refused}");
    let text = refused.to_string();
    assert!(!text.contains("user1@example.com"), "{text}");
    assert!(
        text.contains("SQLSTATE"),
        "the error keeps its shape: {text}"
    );
    // ... and through a failing step.
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "leak through a step", "target": "production",
                   "steps": [step("UPDATE accounts SET balance = (SELECT email FROM accounts ORDER BY id LIMIT 1)::int WHERE id = 1", "SELECT 1")]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    let text = refused.to_string();
    assert!(!text.contains("user1@example.com"), "{text}");
    assert!(
        text.contains("invalid input syntax for type integer"),
        "{text}"
    );
    // A value read into a name is cut too.
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "leak through a name", "target": "production",
                   "steps": [step("SELECT (SELECT 'acct' || id FROM accounts ORDER BY id LIMIT 1)::regclass", "SELECT 1")]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    let text = refused.to_string();
    assert!(!text.contains("acct1"), "{text}");
    // A PL/pgSQL RAISE whose message is the data read, unquoted, and a value in single quotes.
    for (what, up) in [
        (
            "raise",
            "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT email FROM accounts ORDER BY id LIMIT 1); END $$",
        ),
        (
            "single quotes",
            "DO $$ BEGIN RAISE EXCEPTION 'bad value ''%''', (SELECT email FROM accounts ORDER BY id LIMIT 1); END $$",
        ),
    ] {
        let id = plan_id(
            &c.ok(
                "plan",
                json!({"goal": format!("leak through a {what}"), "target": "production",
                       "steps": [step(up, "SELECT 1")]}),
            )
            .await,
        );
        let refused = c.refused("dry-run", json!({"plan_id": id})).await;
        assert_eq!(refused["code"], "sql-failed", "{what}: {refused}");
        let text = refused.to_string();
        assert!(!text.contains("user1@example.com"), "{what}: {text}");
        assert!(
            text.contains("P0001"),
            "{what}: the error keeps its shape: {text}"
        );
    }
    assert!(!p.project.errors_md().contains("user1@example.com"));
    // Names the agent wrote stay, so the error still says what was wrong.
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "typo", "target": "production",
                   "steps": [step("ALTER TABLE acounts ADD COLUMN tier text", "ALTER TABLE acounts DROP COLUMN tier")]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("relation \"acounts\" does not exist"),
        "{refused}"
    );
    c.close().await;
}

/// Roles for unapproved work on one database: `mig` owns the tables (what a migration role
/// does), `chk` may only read them, now and for tables `mig` creates later.
/// The hardened setup's roles in `db`: `mig` owns the application's tables (and is what
/// migrations run as), `chk` reads them. Made by the cluster's superuser.
async fn least_privilege_roles(db: &str, mig: &str, chk: &str) {
    let mut c = pg_connect_admin(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{mig}') THEN CREATE ROLE {mig} NOLOGIN; END IF;
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{chk}') THEN CREATE ROLE {chk} NOLOGIN; END IF;
         END $$;
         GRANT CREATE, USAGE ON SCHEMA public TO {mig};
         ALTER TABLE accounts OWNER TO {mig};
         ALTER TABLE ledger OWNER TO {mig};
         ALTER VIEW rich_accounts OWNER TO {mig};
         GRANT USAGE ON SCHEMA public TO {chk};
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {chk};
         ALTER DEFAULT PRIVILEGES FOR ROLE {mig} IN SCHEMA public GRANT SELECT ON TABLES TO {chk};
         GRANT {mig}, {chk} TO {APP_ROLE};"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.ok();
}

#[tokio::test]
async fn unapproved_sql_runs_as_the_least_privilege_roles() {
    let t = tag();
    let (mig, chk) = (format!("mig_{t}"), format!("chk_{t}"));
    // The hardened setup: a superuser login, agent SQL as least-privilege roles.
    let keys = format!("dry_run_role = \"{mig}\"\ncheck_role = \"{chk}\"\napply_role = \"{mig}\"");
    let p = PgProject::new("").await;
    p.superuser_login(&keys, &keys);
    least_privilege_roles(&p.staging, &mig, &chk).await;
    least_privilege_roles(&p.prod, &mig, &chk).await;
    let c = p.project.connect().await;
    let plan = json!({
        "goal": "a tier for every account",
        "target": "production",
        "steps": [step("ALTER TABLE accounts ADD COLUMN tier text", "ALTER TABLE accounts DROP COLUMN tier")],
        "checks": [
            {"name": "checks-run-as-the-check-role", "sql": format!("SELECT current_user = '{chk}'"), "expect": "true"},
            {"name": "tier-readable", "sql": "SELECT count(*) >= 0 FROM accounts WHERE tier IS NULL", "expect": "true"}
        ]
    });
    let planned = c.ok("plan", plan).await;
    let warnings = planned["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .all(|w| !w.as_str().unwrap().contains("superuser")),
        "configured roles silence the superuser warning: {warnings:?}"
    );
    let id = plan_id(&planned);
    let dry = c.ok("dry-run", json!({"plan_id": id})).await;
    assert!(
        dry["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|ch| ch["passed"] == true),
        "{dry}"
    );
    assert!(
        !p.has_column(&p.staging, "accounts", "tier").await,
        "the dry-run left nothing on staging"
    );

    // Steps ran as the dry-run role: a table it does not own cannot be altered in a dry-run,
    // though the login role (a superuser) could.
    for db in [&p.staging, &p.prod] {
        run_admin_sql(db, "CREATE TABLE root_only (id int)").await;
    }
    let other = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "touch a table the migration role does not own", "target": "production",
                   "steps": [step("ALTER TABLE root_only ADD COLUMN x int", "ALTER TABLE root_only DROP COLUMN x")]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": other})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("must be owner of table root_only"),
        "{refused}"
    );
    // drydock compares the data a plan wrote as the dry-run role too (never as the login): a
    // role that may update a table but not read it is refused naming the grant it lacks.
    for db in [&p.staging, &p.prod] {
        run_admin_sql(
            db,
            &format!("INSERT INTO root_only VALUES (1); GRANT UPDATE ON root_only TO {mig}"),
        )
        .await;
    }
    let blind = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "write a table the migration role may not read", "target": "production",
                   "steps": [step("UPDATE root_only SET id = 2", "UPDATE root_only SET id = 1")]}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": blind})).await;
    assert_eq!(refused["code"], "role-privilege", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("permission denied for table root_only"),
        "{refused}"
    );

    // Ordinary migrations still walk to validated under the roles; validate's checks run as the
    // check role on production too.
    p.project.approve(&id, "alice");
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let validated = c.ok("validate", json!({"plan_id": id})).await;
    assert!(
        validated["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|ch| ch["passed"] == true),
        "{validated}"
    );
    c.close().await;
}

/// A login that reaches beyond the database (a superuser, here) with no least-privilege role to
/// run agent SQL as: said at plan time and by doctor, and refused (`unsafe-role`) before any agent
/// SQL runs. Staging has the roles, so the plan is tested and approved; production's apply is
/// refused, and production is unchanged. A role with CREATEROLE is no least-privilege role.
#[tokio::test]
async fn a_privileged_login_without_roles_runs_no_agent_sql() {
    let t = tag();
    let (mig, chk) = (format!("mig_{t}"), format!("chk_{t}"));
    let p = PgProject::new("").await;
    least_privilege_roles(&p.staging, &mig, &chk).await;
    let staging_keys = format!("apply_role = \"{mig}\"\ncheck_role = \"{chk}\"");
    p.superuser_login("", &staging_keys);
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a column", "target": "production",
                   "steps": [step("ALTER TABLE accounts ADD COLUMN tier text", "ALTER TABLE accounts DROP COLUMN tier")]}),
        )
        .await;
    let warnings = planned["warnings"].to_string();
    assert!(
        warnings.contains("superuser")
            && warnings.contains("unsafe-role")
            && warnings.contains("apply_role"),
        "{warnings}"
    );
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    let refused = c.refused("apply", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "unsafe-role", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("superuser")
            && refused["fix"].as_str().unwrap().contains("apply_role"),
        "{refused}"
    );
    assert!(
        !p.has_column(&p.prod, "accounts", "tier").await,
        "no agent SQL ran on production"
    );
    let doctor = p.project.cli(&["doctor"]);
    let out = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        out.contains("superuser") && out.contains("unsafe-role"),
        "{out}"
    );
    c.close().await;

    // A role that may make roles is refused as the login is, and so is a member of the roles
    // that reach the server's files or other sessions, which are named.
    let config = std::fs::read_to_string(&p.project.config_path).unwrap();
    for (role, attributes, said) in [
        (format!("creator_{t}"), "CREATEROLE", "CREATEROLE"),
        (
            format!("reader_{t}"),
            "IN ROLE pg_signal_backend, pg_read_server_files",
            "a member of pg_read_server_files, pg_signal_backend",
        ),
    ] {
        run_admin_sql(
            &p.prod,
            &format!(
                "CREATE ROLE {role} NOLOGIN {attributes}; ALTER TABLE accounts OWNER TO {role}"
            ),
        )
        .await;
        let with_role = config.replacen(
            "role = \"production\"",
            &format!("role = \"production\"\napply_role = \"{role}\""),
            1,
        );
        std::fs::write(&p.project.config_path, with_role).unwrap();
        let c = p.project.connect().await;
        let refused = c.refused("apply", json!({"plan_id": id})).await;
        assert_eq!(refused["code"], "unsafe-role", "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(said),
            "{role}: {refused}"
        );
        assert!(!p.has_column(&p.prod, "accounts", "tier").await);
        c.close().await;
    }
}

#[tokio::test]
async fn hostile_sqlite_sql_never_runs_before_review() {
    let p = Project::new().await;
    let c = p.connect().await;
    let attached = p.path("attached-sentinel.db");
    let vacuumed = p.path("vacuum-sentinel.db");
    let payloads = vec![
        json!({"steps": [step(&format!("ATTACH DATABASE '{}' AS x", attached.display()), "DETACH DATABASE x")]}),
        json!({"steps": [step(&format!("/* tidy */ VACUUM INTO '{}'", vacuumed.display()), "SELECT 1")]}),
        json!({"steps": [step("PRAGMA writable_schema = ON", "PRAGMA writable_schema = OFF")]}),
        json!({"steps": [step("PRAGMA journal_mode = OFF", "PRAGMA journal_mode = DELETE")]}),
        json!({"steps": [step("SELECT load_extension('/tmp/evil')", "SELECT 1")]}),
        json!({"steps": [step("ALTER TABLE users ADD COLUMN tier TEXT", "ALTER TABLE users DROP COLUMN tier")],
               "checks": [{"name": "x", "sql": "SELECT load_extension('/tmp/evil') IS NULL", "expect": "true"}]}),
    ];
    for mut body in payloads {
        body["goal"] = json!("hostile");
        body["target"] = json!("production");
        let planned = c.ok("plan", body.clone()).await;
        assert!(
            hazard_codes(&planned).contains(&("privileged".into(), "critical".into())),
            "{body}"
        );
        let refused = c
            .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
            .await;
        assert_eq!(refused["code"], "forbidden-statement", "{body}: {refused}");
    }
    assert!(!attached.exists() && !vacuumed.exists());
    // The sentinel would have caught it: ATTACH creates the file it names.
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}", p.path("staging.db").display()))
            .await
            .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        vacuumed.display()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    assert!(vacuumed.exists(), "the sentinel mechanism works");
    c.close().await;
}

/// The hardened setup (agent SQL as a least-privilege dry-run role), attacked through drydock's
/// own reads: a step leaves a temporary function and a temporary view named like the table it
/// touches. drydock's content hash after `down` reads that table; were it to read by bare name
/// (the session's temporary schema comes first) or as the login role (a superuser), the view's
/// function would run with every privilege of the server. The effect is checked on the server: a
/// sequence only the superuser may use is never advanced — a sequence, because its value survives
/// the dry-run's rollback. The leftover temporary objects are themselves a failed rollback.
#[tokio::test]
async fn drydock_reads_in_a_dry_run_never_run_agent_objects_with_more_privilege() {
    let t = tag();
    let (mig, chk) = (format!("mig_{t}"), format!("chk_{t}"));
    // The hardened setup: a superuser login, agent SQL as least-privilege roles.
    let keys = format!("dry_run_role = \"{mig}\"\ncheck_role = \"{chk}\"\napply_role = \"{mig}\"");
    let p = PgProject::new("").await;
    p.superuser_login(&keys, &keys);
    least_privilege_roles(&p.staging, &mig, &chk).await;
    least_privilege_roles(&p.prod, &mig, &chk).await;
    let sentinel = format!("sentinel_{t}");
    // A plain table (no key, index or view to render its name elsewhere in the schema), as
    // real schemas have: a view named like it changes only what a read of it by bare name gets.
    for db in [&p.staging, &p.prod] {
        run_admin_sql(db, &format!(
            "CREATE TABLE public.notes (body text); ALTER TABLE public.notes OWNER TO {mig};
             INSERT INTO public.notes SELECT 'note ' || g FROM generate_series(1, 50) g;
             CREATE SEQUENCE public.{sentinel}; REVOKE ALL ON SEQUENCE public.{sentinel} FROM PUBLIC"
        ))
        .await;
    }
    let mut admin = pg_connect_admin(&p.staging).await;
    let c = p.project.connect().await;
    let up = format!(
        "ALTER TABLE notes ADD COLUMN tier text;
         CREATE FUNCTION pg_temp.tap() RETURNS text LANGUAGE sql AS $$ SELECT nextval('public.{sentinel}')::text $$;
         CREATE TEMP VIEW notes AS SELECT pg_temp.tap() AS body"
    );
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a tier for every note", "target": "production",
                   "steps": [step(&up, "ALTER TABLE public.notes DROP COLUMN tier")]}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.call("dry-run", json!({"plan_id": id})).await;
    let (called,): (bool,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT is_called FROM public.{sentinel}"
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    admin.close().await.ok();
    assert!(
        !called,
        "drydock's own read ran the agent's temporary view with more privilege than the dry-run role: {dry:?}"
    );
    let text = format!("{dry:?}");
    assert!(
        dry.is_error == Some(true) && text.contains("rollback-unverified"),
        "temporary objects a step leaves behind are a difference after `down`: {text}"
    );
    c.close().await;
}

/// An agent's `SET statement_timeout = 0` (pg_dump writes one atop every file) is admitted, and
/// holds no further than the policy: the statement after it is cancelled by the server at the
/// policy's limit instead of running unbounded.
#[tokio::test]
async fn an_agent_set_never_raises_a_policy_limit() {
    let p = PgProject::new("statement_timeout = \"1s\"").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a slow step", "target": "production",
                   "steps": [step("SET statement_timeout = 0; SELECT pg_sleep(3)", "SELECT 1")]}),
        )
        .await;
    let refused = c
        .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
        .await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("statement timeout"),
        "the server cancelled the statement at the policy's limit: {refused}"
    );
    c.close().await;
}

/// The `migration` template renders the agent's own statements: their failure is the agent's
/// lesson in ERRORS.md, not a defect of drydock's templates kept to drydock's log.
#[tokio::test]
async fn a_failure_of_the_agents_text_in_the_migration_template_is_the_agents_lesson() {
    let p = PgProject::new("").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a tier", "target": "production", "template": "migration",
                   "params": {"goal": "a tier", "up": "ALTER TABLE accounts ADD COLUMN tier no_such_type",
                              "down": "ALTER TABLE accounts DROP COLUMN tier"}}),
        )
        .await;
    let id = plan_id(&planned);
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    let errors = p.project.errors_md();
    assert!(
        errors.contains(&id) && errors.contains("sql-failed"),
        "the agent's failed SQL is in ERRORS.md under its plan: {errors}"
    );
    // A template drydock vouches for, whose failing step carries the agent's expression.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a score", "target": "production", "template": "backfill",
                   "params": {"table": "accounts", "set": "score = 1 / (balance - balance)", "where": "score = 0"}}),
        )
        .await;
    let id = plan_id(&planned);
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    let errors = p.project.errors_md();
    assert!(
        errors.contains(&id),
        "a failure of the agent's expression in a template is the agent's lesson: {errors}"
    );
    c.close().await;
}

/// `drydock doctor --fix`, by an admin, makes the least-privilege roles on targets that log in as
/// a superuser and prints the keys that name them; with those keys, real migrations walk to
/// validated and back as the roles: an index built CONCURRENTLY with a backfill beside it, and a
/// template's expand/contract (triggers, a shadow column, its batches), with the application
/// writing throughout. The application's own role keeps its access to the tables it no longer owns.
#[tokio::test]
async fn doctor_fix_makes_roles_that_walk_real_migrations() {
    let p = PgProject::new("large_table_rows = 1000").await;
    p.superuser_login("", "");
    // An application's SECURITY DEFINER function, as pagila's rewards_report: what it runs as
    // is the application's decision, so the fix leaves its owner (a superuser) as it is.
    for db in [&p.staging, &p.prod] {
        run_admin_sql(
            db,
            "CREATE FUNCTION public.app_report() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM accounts $$",
        )
        .await;
    }
    let refused = p.project.cli(&["doctor"]);
    assert!(String::from_utf8_lossy(&refused.stdout).contains("unsafe-role"));

    // Not without an admin.
    let none = p.project.cli_with(&["doctor", "--fix"], None);
    assert!(String::from_utf8_lossy(&none.stderr).contains("needs-a-person"));
    let admin = p.project.token("root", drydock::identity::Grant::Admin);
    let out = p
        .project
        .cli_with(&["doctor", "--fix", "--format", "json"], Some(&admin));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fixes = fixed["fixed"].as_array().unwrap();
    assert_eq!(fixes.len(), 2, "{fixed}");
    let mut config = std::fs::read_to_string(&p.project.config_path).unwrap();
    for role in ["production", "staging"] {
        config = config.replacen(
            &format!("role = \"{role}\""),
            &format!("role = \"{role}\"\napply_role = \"drydock_migrator\"\ncheck_role = \"drydock_checker\""),
            1,
        );
    }
    std::fs::write(&p.project.config_path, config).unwrap();
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_class WHERE relname IN ('accounts', 'ledger', 'rich_accounts') AND pg_get_userbyid(relowner) = 'drydock_migrator'").await,
        3
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_proc WHERE proname = 'app_report' AND pg_get_userbyid(proowner) <> 'drydock_migrator'").await,
        1,
        "a SECURITY DEFINER function keeps its owner"
    );
    let clean = p.project.cli(&["doctor", "--format", "json"]);
    assert!(
        !String::from_utf8_lossy(&clean.stdout).contains("unsafe-role"),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let c = p.project.connect().await;
    let id = p
        .project
        .ready(
            &c,
            json!({"goal": "find accounts by email, and name them", "target": "production",
                   "steps": [
                       {"name": "index", "up": "CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)",
                        "down": "DROP INDEX CONCURRENTLY accounts_email"},
                       {"name": "name", "backfill": {"table": "accounts", "set": "nickname = 'n' || id", "where": "nickname IS NULL"},
                        "down": "UPDATE accounts SET nickname = NULL"}],
                   "checks": [{"name": "named", "sql": "SELECT count(*) = 0 FROM accounts WHERE nickname IS NULL", "expect": "true"},
                              {"name": "as-the-checker", "sql": "SELECT current_user = 'drydock_checker'", "expect": "true"}]}),
        )
        .await;
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let v = c.ok("validate", json!({"plan_id": id})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email'"
        )
        .await,
        1
    );
    // The backfill ran as the migrator: the values it saved for rollback are the migrator's.
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'drydock_backup' AND c.relname LIKE 'bf\\_%' AND pg_get_userbyid(c.relowner) = 'drydock_migrator'").await,
        1
    );
    let rb = c
        .ok(
            "rollback",
            json!({"plan_id": id, "reason": "the roles walk back too"}),
        )
        .await;
    assert_eq!(rb["schema_verified"], true, "{rb}");
    assert_eq!(
        p.scalar(
            &p.prod,
            "SELECT count(*) FROM accounts WHERE nickname IS NOT NULL"
        )
        .await,
        0
    );
    c.close().await;

    // A template's expand/contract, as the roles, with the application (its own role, no longer
    // the owner) writing throughout.
    common::walk::walk_project(
        p,
        "change-column-type",
        json!({"table": "accounts", "column": "score", "new_type": "bigint"}),
        &["accounts"],
        None,
        None,
    )
    .await;
}

/// A dry-run's rollback does not take back `nextval` (a serial column's insert) or `setval`:
/// sequences are non-transactional. drydock reads staging's sequences before the plan runs and
/// puts back each the dry-run moved — backwards always, forwards when no committed row holds a
/// value of the range — and says so. Checked on staging's sequences themselves.
#[tokio::test]
async fn a_dry_run_leaves_staging_sequences_where_they_were() {
    let p = PgProject::new("").await;
    let seq = "SELECT last_value FROM accounts_id_seq";
    let ledger = "SELECT last_value FROM ledger_id_seq";
    let (accounts_before, ledger_before) = (
        p.scalar(&p.staging, seq).await,
        p.scalar(&p.staging, ledger).await,
    );
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "seed fifty accounts, and reset the ledger's numbering", "target": "production",
                   "steps": [step(
                       "INSERT INTO accounts (email) SELECT 'seed' || g FROM generate_series(1, 50) g; SELECT setval('ledger_id_seq', 1)",
                       "DELETE FROM accounts WHERE email LIKE 'seed%'; SELECT setval('ledger_id_seq', (SELECT max(id) FROM ledger))"
                   )]}),
        )
        .await;
    let dry = c.ok("dry-run", json!({"plan_id": plan_id(&planned)})).await;
    assert_eq!(p.scalar(&p.staging, seq).await, accounts_before, "{dry}");
    assert_eq!(p.scalar(&p.staging, ledger).await, ledger_before, "{dry}");
    let moved = dry["sequences"].as_array().expect("the moved sequences");
    assert_eq!(moved.len(), 2, "{dry}");
    assert!(moved.iter().all(|s| s["restored"] == true), "{dry}");
    assert!(
        dry["warnings"].to_string().contains("non-transactional"),
        "{dry}"
    );
    c.close().await;
}

/// A function is judged by what the target's catalog says it is, not by its name: an
/// application's `SECURITY DEFINER` function owned by a superuser, executable by everyone as
/// such functions are by default, runs with its owner's privileges whatever role calls it, so a
/// least-privilege role does not stop it. A step calling it is refused before anything runs; the
/// effect is checked on the server (the superuser-only sequence it advances is untouched).
#[tokio::test]
async fn a_security_definer_function_of_a_superuser_is_refused_by_what_it_is() {
    let p = PgProject::new("").await;
    let t = tag();
    for db in [&p.staging, &p.prod] {
        run_admin_sql(db, &format!(
            "CREATE SEQUENCE public.root_seq_{t}; REVOKE ALL ON SEQUENCE public.root_seq_{t} FROM PUBLIC;
             CREATE FUNCTION public.app_refresh_{t}() RETURNS bigint LANGUAGE sql SECURITY DEFINER
                 AS $$ SELECT nextval('public.root_seq_{t}') $$"
        ))
        .await;
    }
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "refresh", "target": "production",
                   "steps": [step(&format!("SELECT public.app_refresh_{t}()"), "SELECT 1")]}),
        )
        .await;
    let refused = c
        .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
        .await;
    assert_eq!(refused["code"], "forbidden-statement", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("SECURITY DEFINER"),
        "{refused}"
    );
    // SQL built at run time could call it where no parser sees the name: on a target where the
    // role may, such SQL is refused, naming the function.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "refresh, dynamically", "target": "production",
                   "steps": [step(&format!("DO $x$ BEGIN EXECUTE 'SELECT public.app_' || 'refresh_{t}()'; END $x$"), "SELECT 1")]}),
        )
        .await;
    let refused = c
        .refused("dry-run", json!({"plan_id": plan_id(&planned)}))
        .await;
    assert_eq!(refused["code"], "forbidden-statement", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("EXECUTE") && message.contains(&format!("app_refresh_{t}")),
        "{refused}"
    );
    let called: bool = {
        let mut admin = pg_connect_admin(&p.staging).await;
        let (called,): (bool,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT is_called FROM public.root_seq_{t}"
        )))
        .fetch_one(&mut admin)
        .await
        .unwrap();
        admin.close().await.ok();
        called
    };
    assert!(!called, "the function ran with its owner's privileges");
    c.close().await;
}

/// drydock's schema read in a dry-run is a statement prepared once on the sandbox's session, and
/// agent SQL can reach a session's prepared statements: a PL/pgSQL `EXECUTE` deallocates it and
/// prepares another under its name, returning the schema as it was before `up` — so that a `down`
/// which undoes nothing would compare equal. drydock checks the statement is still the one it
/// prepared before each read: the dry-run fails, naming the replaced read, and verifies nothing.
/// And a search path that needs quoting (`we'ird\x`, set on staging by its DBA) is the one every
/// agent statement runs under, drydock's reads in between.
#[tokio::test]
async fn an_agent_that_replaces_drydocks_prepared_schema_read_fails_the_dry_run() {
    let p = PgProject::new("").await;
    let path = r#""we'ird\x", public"#;
    run_admin_sql(
        &p.staging,
        &format!("ALTER DATABASE {} SET search_path = {path}", p.staging),
    )
    .await;
    let c = p.project.connect().await;
    let forge = "ALTER TABLE accounts ADD COLUMN tier text;
         DO $$ DECLARE s record; BEGIN
           FOR s IN SELECT name FROM pg_prepared_statements WHERE name LIKE 'drydock%' LOOP
             EXECUTE format('DEALLOCATE %I', s.name);
             EXECUTE format('PREPARE %I AS SELECT ''column public.accounts.id bigint not null''::text', s.name);
           END LOOP;
         END $$";
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a tier for every account", "target": "production",
                   "steps": [step(forge, "SELECT 1")]}),
        )
        .await;
    let id = plan_id(&planned);
    let dry = c.call("dry-run", json!({"plan_id": id})).await;
    let text = format!("{dry:?}");
    assert_eq!(dry.is_error, Some(true), "{text}");
    assert!(
        text.contains("prepared schema read") && text.contains("replaced"),
        "the replaced read is named: {text}"
    );
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_ne!(status["status"], "dry-run-verified", "{status}");

    // The search path, quotes and backslash included, is the one the plan's next statement runs
    // under, after drydock's reads in between.
    let planned = c
        .ok(
            "plan",
            json!({"goal": "a tier, under an odd search path", "target": "production",
                   "steps": [step(
                       "ALTER TABLE accounts ADD COLUMN tier text",
                       &format!(
                           "DO $$ BEGIN IF current_setting('search_path') <> '{}' THEN RAISE EXCEPTION 'search path %', current_setting('search_path'); END IF; END $$;
                            ALTER TABLE accounts DROP COLUMN tier",
                           path.replace('\'', "''")
                       )
                   )]}),
        )
        .await;
    c.ok("dry-run", json!({"plan_id": plan_id(&planned)})).await;
    c.close().await;
}
