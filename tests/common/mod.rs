//! Shared fixtures: a temporary project with a SQLite production/staging pair and a
//! `drydock.toml`, a drydock server in-process, and rmcp's real client connected to it over a
//! duplex transport. The CLI is driven as the real binary against the same state directory.
#![allow(dead_code)]

pub mod http;
pub mod server;
pub mod walk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    InitializeRequestParams, ProgressNotificationParam,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use drydock::config::Config;
use drydock::engine::Engine;
use drydock::mcp::DrydockServer;

/// The test's MCP client: a named agent that counts progress notifications.
#[derive(Clone)]
pub struct Agent {
    info: ClientConfig,
    pub progress: Arc<AtomicUsize>,
}

impl ClientHandler for Agent {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Project {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

pub const AGENT_NAME: &str = "test-agent";

impl Project {
    /// A project whose production has 2,000 users and staging 200 (the demo data).
    pub async fn new() -> Project {
        Project::with_policy("").await
    }

    pub async fn with_policy(policy: &str) -> Project {
        Project::build(policy, "").await
    }

    /// A project with extra `[targets.*]` tables appended to the config.
    pub async fn build(policy: &str, extra_targets: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        drydock::demo::seed(&dir.path().join("prod.db"), 2_000)
            .await
            .expect("seed prod");
        drydock::demo::seed(&dir.path().join("staging.db"), 200)
            .await
            .expect("seed staging");
        let config_path = dir.path().join("drydock.toml");
        std::fs::write(
            &config_path,
            format!(
                r#"
[targets.production]
url = "sqlite:prod.db"
role = "production"
staging = "staging"

[targets.staging]
url = "sqlite:staging.db"
role = "staging"

[targets.scratch]
url = "sqlite:scratch.db"
role = "scratch"

{extra_targets}

[policy]
{policy}
"#
            ),
        )
        .expect("write config");
        drydock::demo::seed(&dir.path().join("scratch.db"), 10)
            .await
            .expect("seed scratch");
        Project { dir, config_path }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn errors_md(&self) -> String {
        std::fs::read_to_string(self.path("ERRORS.md")).unwrap_or_default()
    }

    pub async fn engine(&self) -> Arc<Engine> {
        let config = Config::load(&self.config_path).expect("config");
        Arc::new(Engine::open(config).await.expect("engine"))
    }

    /// Connects a named MCP client to a fresh in-process server over a duplex pipe.
    pub async fn connect(&self) -> Client {
        self.connect_as(AGENT_NAME).await
    }

    pub async fn connect_as(&self, name: &str) -> Client {
        self.connect_on(name, ClientLifecycleMode::Initialize).await
    }

    /// Connects on a chosen lifecycle: the `initialize` handshake (revisions up to 2025-11-25)
    /// or `server/discover` with per-request metadata (2026-07-28).
    ///
    /// The server runs on a runtime of its own thread, as it would in its own process: a test
    /// that blocks its thread (running the CLI, which waits for the state store) must not stall
    /// the server's background work halfway through a store transaction — the CLI would then
    /// wait out the store's busy timeout for a lock the stalled server holds.
    pub async fn connect_on(&self, name: &str, lifecycle: ClientLifecycleMode) -> Client {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let config = self.config_path.clone();
        let (ready, started) = tokio::sync::oneshot::channel();
        let (ended, server_ended) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let engine = Config::load(&config).expect("config");
                let engine = Arc::new(Engine::open(engine).await.expect("engine"));
                let _ = ready.send(());
                if let Ok(running) = DrydockServer::new(engine.clone()).serve(server_io).await {
                    let _ = running.waiting().await;
                }
                // What still runs when the client goes (a staging sync after an apply's answer)
                // ends before the runtime does, as in a server that stays up.
                engine.wait_idle(std::time::Duration::from_secs(60)).await;
            });
            let _ = ended.send(());
        });
        started.await.expect("the server starts");
        let agent = Agent {
            info: InitializeRequestParams::new(
                ClientCapabilities::default(),
                Implementation::new(name, "1.0"),
            ),
            progress: Arc::new(AtomicUsize::new(0)),
        };
        let progress = agent.progress.clone();
        let service = agent
            .serve_with_lifecycle(client_io, lifecycle)
            .await
            .expect("client connects");
        Client {
            service,
            progress,
            server_ended,
        }
    }

    /// Runs the real `drydock` binary with this project's config, as a script would (standard
    /// input is not a terminal). A decision (`approve`, `reject`, `release`) with `--by NAME`
    /// carries an approver token minted for NAME, as an engineer's shell would.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let decision = matches!(
            args.first(),
            Some(&("approve" | "reject" | "release" | "waive" | "pause" | "resume"))
        );
        let by = args.windows(2).find(|w| w[0] == "--by").map(|w| w[1]);
        let token = match by {
            Some(by) if decision && drydock::identity::validate_name(by).is_ok() => {
                Some(self.token(by, drydock::identity::Grant::Approver))
            }
            _ => None,
        };
        self.cli_with(args, token.as_deref())
    }

    /// The binary's JSON output (`--format json` among `args`), the command having succeeded.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "drydock {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("drydock {args:?}: {e}"))
    }

    /// Runs the binary with `DRYDOCK_TOKEN` set to `token` (or unset), standard input closed.
    pub fn cli_with(&self, args: &[&str], token: Option<&str>) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("DRYDOCK_TOKEN")
            .stdin(std::process::Stdio::null());
        if let Some(t) = token {
            cmd.env("DRYDOCK_TOKEN", t);
        }
        cmd.output().expect("run drydock")
    }

    /// A fresh token for `name` with `grant`, made the way an admin at the terminal makes one.
    pub fn token(&self, name: &str, grant: drydock::identity::Grant) -> String {
        let config_path = self.config_path.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(async move {
                    let engine = Engine::open(Config::load(&config_path).expect("config"))
                        .await
                        .expect("engine");
                    let admin = drydock::identity::Principal::person(
                        "test-admin",
                        drydock::identity::Grant::Admin,
                    );
                    engine
                        .create_token(&admin, &name, grant, None)
                        .await
                        .expect("token")
                        .token
                })
        })
        .join()
        .expect("token thread")
    }

    /// Plans `body`, dry-runs it and has `alice` approve it: a plan ready to apply.
    pub async fn ready(&self, c: &Client, body: Value) -> String {
        let id = plan_id(&c.ok("plan", body).await);
        c.ok("dry-run", json!({"plan_id": id})).await;
        self.approve(&id, "alice");
        id
    }

    pub fn approve(&self, plan_id: &str, by: &str) {
        let out = self.cli(&["approve", plan_id, "--by", by]);
        assert!(
            out.status.success(),
            "approve failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A hotfix waiver by `by` (an approver), with the incident as the reason.
    pub fn waive(&self, plan_id: &str, by: &str) {
        let out = self.cli(&[
            "waive",
            plan_id,
            "--reason",
            "incident: checkout is down",
            "--by",
            by,
        ]);
        assert!(
            out.status.success(),
            "waive failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reads a single value from a target database.
    pub async fn scalar(&self, db: &str, sql: &'static str) -> i64 {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path(db))
            .connect()
            .await
            .expect("open db");
        let v: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect("query");
        conn.close().await.ok();
        v
    }
}

pub struct Client {
    pub service: RunningService<RoleClient, Agent>,
    pub progress: Arc<AtomicUsize>,
    /// Fires when the server has ended, its background work (a staging sync) included.
    server_ended: tokio::sync::oneshot::Receiver<()>,
}

impl Client {
    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        self.service
            .call_tool(params)
            .await
            .expect("tool call transported")
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert_ne!(
            r.is_error,
            Some(true),
            "{tool}({args}) failed: {:?}",
            r.structured_content
                .or(Some(json!(format!("{:?}", r.content))))
        );
        r.structured_content.expect("structured content")
    }

    /// Polls `status` until the plan is applied and its apply has finished (staging follows
    /// after the status), or 90 s have passed; returns the last status.
    pub async fn wait_applied(&self, id: &str) -> Value {
        let t0 = std::time::Instant::now();
        loop {
            let s = self.ok("status", json!({"plan_id": id})).await;
            if (s["status"] == "applied" && s.get("running").is_none())
                || t0.elapsed() > std::time::Duration::from_secs(90)
            {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// How the linked staging followed the plan's last apply (it follows after the apply's
    /// answer): waits until nothing of the plan runs, then returns the newest `staging-sync` run.
    pub async fn staging_synced(&self, id: &str) -> Value {
        let t0 = std::time::Instant::now();
        while self
            .ok("status", json!({"plan_id": id}))
            .await
            .get("running")
            .is_some()
            && t0.elapsed() < std::time::Duration::from_secs(90)
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let full = self
            .ok("status", json!({"plan_id": id, "detail": true}))
            .await;
        full["report"]["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["kind"] == "staging-sync")
            .max_by_key(|r| r["id"].as_i64())
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Calls a tool that must be refused; returns the `{code, message, fix}` body.
    pub async fn refused(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool}({args}) was expected to fail: {:?}",
            r.structured_content
        );
        let body = refusal_body(&r);
        for field in ["code", "message", "fix"] {
            assert!(
                body[field].as_str().is_some_and(|s| !s.is_empty()),
                "refusal lacks `{field}`: {body}"
            );
        }
        body
    }

    /// Disconnects and waits for the server to end, as a client waits for a graceful shutdown:
    /// what the server still ran after its last answer (a staging sync) is done and recorded.
    pub async fn close(self) {
        let _ = self.service.cancel().await;
        let _ = self.server_ended.await;
    }
}

/// A plan adding a nullable column with a default, with a check and an exact `down`.
pub fn add_column_plan() -> Value {
    json!({
        "goal": "store each user's plan tier",
        "target": "production",
        "steps": [{
            "name": "add-tier",
            "up": "ALTER TABLE users ADD COLUMN tier TEXT DEFAULT 'free'",
            "down": "ALTER TABLE users DROP COLUMN tier"
        }],
        "checks": [{"name": "tier-filled", "sql": "SELECT count(*) = 0 FROM users WHERE tier IS NULL", "expect": "true"}]
    })
}

/// The `{code, message, fix}` of a refused call: JSON text content, as every client shows it
/// (never structured content, which would have to match the tool's success schema).
pub fn refusal_body(r: &CallToolResult) -> Value {
    assert!(
        r.structured_content.is_none(),
        "a refusal carries no structured content: {r:?}"
    );
    let text = r
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .expect("a refusal has text content");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a refusal's text is its JSON body ({e}): {text}"))
}

pub fn plan_id(v: &Value) -> String {
    v["plan_id"].as_str().expect("plan_id").to_string()
}

/// The names of a `status` answer's steps, in order.
pub fn step_names(status: &Value) -> Vec<&str> {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

pub fn file_exists(p: &Path) -> bool {
    p.exists()
}

/// The shared throwaway PostgreSQL cluster `.ci/run` starts (`DRYDOCK_TEST_PG`).
pub fn pg_url() -> String {
    std::env::var("DRYDOCK_TEST_PG").expect(
        "DRYDOCK_TEST_PG is not set: run the tests through .ci/run, which starts a throwaway PostgreSQL cluster",
    )
}

/// The password in `DRYDOCK_TEST_PG`, which must never appear in any output.
pub fn pg_secret() -> String {
    let url = pg_url();
    let creds = url
        .split('@')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    creds
        .split(':')
        .nth(1)
        .expect("the test cluster URL carries a password")
        .to_string()
}

/// The login drydock's targets (and the tests' own sessions) use on the test cluster, as a
/// least-privilege deployment would: no superuser, no CREATEROLE, no member of the roles that
/// reach the server's files, programs or other sessions — drydock refuses agent SQL otherwise
/// (`unsafe-role`). It may create databases (each test's own: it owns them, their `public`
/// schema and so every table a test makes, as an application's migration role does) and read
/// every session's statistics (`pg_read_all_stats`: the lock watcher and the replica-lag
/// throttle read them).
pub const APP_ROLE: &str = "drydock_app";

/// Creates `APP_ROLE` on the cluster of `DRYDOCK_TEST_PG` once per test process (the replica
/// test starts a cluster of its own), with the cluster's superuser and the same password.
fn ensure_app_role() {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let admin = pg_url();
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(&admin) {
        return;
    }
    let bin = std::env::var("DRYDOCK_TEST_PGBIN").unwrap_or_else(|_| "/usr/bin".into());
    // Tests start in parallel: an advisory lock makes the check-and-create one at a time.
    let sql = format!(
        "DO $$ BEGIN
             PERFORM pg_advisory_xact_lock(7272727);
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE} LOGIN CREATEDB PASSWORD '{}';
                 GRANT pg_read_all_stats TO {APP_ROLE};
             END IF;
         END $$",
        pg_secret()
    );
    let out = std::process::Command::new(std::path::Path::new(&bin).join("psql"))
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "creating {APP_ROLE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    done.push(admin);
}

/// `db` on the test cluster, logged in as `APP_ROLE`.
pub fn pg_url_for(db: &str) -> String {
    ensure_app_role();
    let url = pg_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, after_user) = rest.split_once(':').unwrap();
    let base = format!("{scheme}://{APP_ROLE}:{after_user}");
    let base = base.rsplit_once('/').unwrap().0.to_string();
    format!("{base}/{db}")
}

/// `db` on the test cluster, logged in as its superuser: for what only a superuser may do
/// (roles, the server's settings), never for drydock's targets.
pub fn pg_admin_url_for(db: &str) -> String {
    let url = pg_url();
    let base = url.rsplit_once('/').unwrap().0.to_string();
    format!("{base}/{db}")
}

/// A session on `db` as `APP_ROLE`, as the application's own sessions would be.
pub async fn pg_connect(db: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&pg_url_for(db))
        .await
        .expect("connect to the test cluster")
}

/// A session on `db` as the cluster's superuser.
pub async fn pg_connect_admin(db: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&pg_admin_url_for(db))
        .await
        .expect("connect to the test cluster as its superuser")
}

/// A project whose `production` and `staging` targets are fresh databases on the test cluster:
/// `accounts` (20,000 rows in production, 2,000 on staging) with a view, and `ledger`.
pub struct PgProject {
    pub project: Project,
    pub prod: String,
    pub staging: String,
}

const PG_SEED: &str = "
    CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0,
                           nickname text, score integer NOT NULL DEFAULT 0);
    CREATE VIEW rich_accounts AS SELECT id, email FROM accounts WHERE balance > 900;
    CREATE TABLE ledger (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), amount integer NOT NULL);
    CREATE INDEX ledger_account ON ledger (account_id);
";

impl PgProject {
    pub async fn new(policy: &str) -> PgProject {
        PgProject::with_extra(policy, "").await
    }

    pub async fn with_extra(policy: &str, extra: &str) -> PgProject {
        PgProject::with_keys(policy, extra, "", "").await
    }

    /// A project with extra keys in `[targets.production]` and `[targets.staging]`, and a hook
    /// run on each fresh database (as the cluster's superuser) before the config is written.
    pub async fn with_keys(
        policy: &str,
        extra: &str,
        production_keys: &str,
        staging_keys: &str,
    ) -> PgProject {
        use sqlx::Connection;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let tag = format!(
            "{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let (prod, staging) = (format!("prod_{tag}"), format!("stage_{tag}"));
        let mut admin = pg_connect("postgres").await;
        for (db, rows) in [(&prod, 20_000), (&staging, 2_000)] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let mut c = pg_connect(db).await;
            sqlx::raw_sql(PG_SEED).execute(&mut c).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO accounts (email, balance) SELECT 'user' || g || '@example.com', g % 1000 FROM generate_series(1, {rows}) g;
                 INSERT INTO ledger (account_id, amount) SELECT g, g % 50 FROM generate_series(1, {rows}) g;
                 ANALYZE;"
            )))
            .execute(&mut c)
            .await
            .unwrap();
            c.close().await.ok();
        }
        admin.close().await.ok();
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("drydock.toml");
        std::fs::write(
            &config_path,
            format!(
                "[targets.production]\nurl = \"{}\"\nrole = \"production\"\nstaging = \"staging\"\n{production_keys}\n\n[targets.staging]\nurl = \"{}\"\nrole = \"staging\"\n{staging_keys}\n\n{extra}\n\n[policy]\n{policy}\n",
                pg_url_for(&prod),
                pg_url_for(&staging)
            ),
        )
        .unwrap();
        PgProject {
            project: Project { dir, config_path },
            prod,
            staging,
        }
    }

    /// Has both targets log in as the cluster's superuser (the setup that needs least-privilege
    /// roles configured), with `production_keys`/`staging_keys` added to their tables.
    pub fn superuser_login(&self, production_keys: &str, staging_keys: &str) {
        let mut config = std::fs::read_to_string(&self.project.config_path).unwrap();
        for (db, keys) in [(&self.prod, production_keys), (&self.staging, staging_keys)] {
            config = config.replace(
                &format!("url = \"{}\"", pg_url_for(db)),
                &format!("url = \"{}\"\n{keys}", pg_admin_url_for(db)),
            );
        }
        std::fs::write(&self.project.config_path, config).unwrap();
    }

    pub async fn scalar(&self, db: &str, sql: &str) -> i64 {
        use sqlx::Connection;
        let mut c = pg_connect(db).await;
        let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .expect("query");
        c.close().await.ok();
        v
    }

    pub async fn has_column(&self, db: &str, table: &str, column: &str) -> bool {
        self.scalar(
            db,
            &format!("SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"),
        )
        .await
            == 1
    }
}
