//! `drydock init`: a project's config, its MCP client entries and the agent's definition.

use super::*;

const INIT_TOML: &str = r#"# drydock configuration. Connection strings come from the environment (env:VAR), so no
# secret is ever written here; drydock never prints them.

# state_dir = ".drydock"     # drydock's own state (plans, runs, approvals, audit)
# errors = "ERRORS.md"       # the error log agents learn from

[targets.production]
url = "env:DATABASE_URL"          # or "sqlite:app.db"
role = "production"
staging = "staging"               # where dry-runs of production plans run

[targets.staging]
url = "env:STAGING_DATABASE_URL"  # or "sqlite:staging.db"
role = "staging"

[policy]
rollback_window = "7d"
dry_run_max_age = "24h"
backup_max_age = "24h"
lock_timeout = "1s"
max_block = "5s"
large_table_rows = 100000
min_staging_ratio = 0.1

# The repository's migration folder: every production apply writes its steps here as the
# tool's migration files; `drydock doctor` reports drift between it and production.
# [export]
# dir = "migrations"
# format = "sqlx"                 # sqlx | flyway | golang-migrate | plain

# [backup]
# command = "pgbackrest info --output=json | jq -c '{finished_at: (.[0].backup[-1].timestamp.stop | todate), restore_tested: true}'"
"#;

/// Writes what `drydock init` sets up in `dir`; returns what it did, one line each.
pub(super) fn init(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    std::fs::create_dir_all(dir)?;
    let dir = std::path::absolute(dir)?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "drydock".into());
    let toml_path = dir.join("drydock.toml");
    let toml_existed = toml_path.exists();
    if !toml_existed {
        std::fs::write(&toml_path, INIT_TOML)?;
        done.push(format!("wrote {}", toml_path.display()));
    } else {
        done.push(format!("kept {} (already exists)", toml_path.display()));
    }
    // The server inherits the variables its `env:VAR` targets read, from the client's
    // environment (Claude Code expands `${VAR}` in .mcp.json).
    let config = Config::load(&toml_path).map_err(refused)?;
    let env: serde_json::Map<String, serde_json::Value> = config
        .targets
        .values()
        .filter_map(|t| match &t.url {
            crate::config::TargetUrl::Env(var) => Some((
                var.clone(),
                serde_json::Value::String(format!("${{{var}}}")),
            )),
            _ => None,
        })
        .collect();
    let mut server = serde_json::json!({
        "command": exe,
        "args": ["serve", "--config", toml_path.display().to_string()]
    });
    if !env.is_empty() {
        server["env"] = serde_json::Value::Object(env);
    }
    let mcp_path = dir.join(".mcp.json");
    let mut mcp = if mcp_path.exists() {
        let text = std::fs::read_to_string(&mcp_path)?;
        serde_json::from_str::<serde_json::Value>(&text).with_context(|| {
            format!(
                "{} is not valid JSON; fix it (or move it aside) and run `drydock init` again",
                mcp_path.display()
            )
        })?
    } else {
        serde_json::json!({})
    };
    let servers = mcp
        .as_object_mut()
        .context(".mcp.json is not a JSON object")?
        .entry("mcpServers")
        .or_insert_with(|| serde_json::json!({}));
    let servers = servers
        .as_object_mut()
        .context(".mcp.json's `mcpServers` is not a JSON object")?;
    if servers.contains_key("drydock") {
        done.push(format!(
            "kept the `drydock` server in {}",
            mcp_path.display()
        ));
    } else {
        servers.insert("drydock".into(), server);
        std::fs::write(&mcp_path, serde_json::to_string_pretty(&mcp)? + "\n")?;
        done.push(format!(
            "added the `drydock` server to {}",
            mcp_path.display()
        ));
    }
    let agent_path = dir.join(".claude/agents/migration-specialist.md");
    if agent_path.exists() {
        done.push(format!("kept {} (already exists)", agent_path.display()));
    } else {
        let agent = format!(
            "---\nname: migration-specialist\ndescription: Design and execute safe database migrations and data transformations through drydock\ntools: Read, Grep, Glob, mcp__drydock\n---\n\n{}",
            include_str!("../../prompts/migration-specialist.md")
        );
        if let Some(parent) = agent_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&agent_path, agent)?;
        done.push(format!("wrote {}", agent_path.display()));
    }
    Ok(done)
}
