//! Shared fixtures: a temporary project with a SQLite production/staging pair and a
//! `drydock.toml`, a drydock server in-process, and rmcp's real client connected to it over a
//! duplex transport. The CLI is driven as the real binary against the same state directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    InitializeRequestParams, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
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
        let engine = self.engine().await;
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = DrydockServer::new(engine);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let agent = Agent {
            info: InitializeRequestParams::new(
                ClientCapabilities::default(),
                Implementation::new(name, "1.0"),
            ),
            progress: Arc::new(AtomicUsize::new(0)),
        };
        let progress = agent.progress.clone();
        let service = agent.serve(client_io).await.expect("client connects");
        Client { service, progress }
    }

    /// Runs the real `drydock` binary with this project's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("run drydock")
    }

    pub fn approve(&self, plan_id: &str, by: &str) {
        let out = self.cli(&["approve", plan_id, "--by", by]);
        assert!(
            out.status.success(),
            "approve failed: {}",
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

    /// Calls a tool that must be refused; returns the `{code, message, fix}` body.
    pub async fn refused(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool}({args}) was expected to fail: {:?}",
            r.structured_content
        );
        let body = r.structured_content.expect("structured error body");
        for field in ["code", "message", "fix"] {
            assert!(
                body[field].as_str().is_some_and(|s| !s.is_empty()),
                "refusal lacks `{field}`: {body}"
            );
        }
        body
    }

    pub async fn close(self) {
        let _ = self.service.cancel().await;
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

pub fn plan_id(v: &Value) -> String {
    v["plan_id"].as_str().expect("plan_id").to_string()
}

pub fn file_exists(p: &Path) -> bool {
    p.exists()
}
