//! The real binary, spawned as Claude Code would spawn it: MCP over stdio with rmcp's client.
//! Also proves the zero-setup default: with no drydock.toml, `serve` creates the demo pair.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use tokio::process::Command;

fn args(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn serves_the_demo_over_stdio_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drydock"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_remove("DRYDOCK_CONFIG");
    let client =
        ().serve(TokioChildProcess::new(cmd).unwrap())
            .await
            .expect("initialize over stdio");

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("drydock")
    );

    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(
        tools,
        [
            "apply",
            "dry-run",
            "inspect",
            "plan",
            "record-mistake",
            "render-template",
            "rollback",
            "status",
            "validate"
        ]
    );
    let all = client.list_all_tools().await.unwrap();
    let apply = all.iter().find(|t| t.name == "apply").unwrap();
    assert_eq!(
        apply.annotations.as_ref().and_then(|a| a.destructive_hint),
        Some(true)
    );
    let inspect = all.iter().find(|t| t.name == "inspect").unwrap();
    assert_eq!(
        inspect.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
    let missing: Vec<_> = all
        .iter()
        .filter(|t| t.output_schema.is_none())
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "tools without an output schema: {missing:?}"
    );

    let mut prompts: Vec<String> = client
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    prompts.sort();
    assert_eq!(
        prompts,
        [
            "database-migration-review",
            "hotfix-checklist",
            "migration-specialist"
        ]
    );
    let p = client
        .get_prompt(GetPromptRequestParams::new("hotfix-checklist"))
        .await
        .unwrap();
    assert!(format!("{:?}", p.messages).contains("two distinct engineers"));

    let resources: Vec<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        resources.contains(&"drydock://errors".to_string())
            && resources.contains(&"drydock://checklist".to_string())
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "drydock://plans/{plan_id}")
    );

    // the demo pair exists and is usable end to end
    assert!(dir.path().join(".drydock/demo-production.db").exists());
    assert!(dir.path().join(".drydock/demo-staging.db").exists());
    let r = client
        .call_tool(
            CallToolRequestParams::new("inspect")
                .with_arguments(args(json!({"target": "production"}))),
        )
        .await
        .unwrap();
    let tables = &r.structured_content.unwrap()["tables"];
    assert_eq!(tables["users"]["rows"], 2000);
    assert_eq!(tables["orders"]["views"], json!(["order_totals"]));
    assert_eq!(tables["users"]["views"], json!([]));
    assert_eq!(
        tables["users"]["foreign_keys_in"],
        json!(["orders(user_id) -> users(id)"])
    );

    let r = client
        .call_tool(CallToolRequestParams::new("plan").with_arguments(args(json!({
            "goal": "index orders by status",
            "target": "production",
            "steps": [{"up": "CREATE INDEX orders_status ON orders (status)", "down": "DROP INDEX orders_status"}]
        }))))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let id = r.structured_content.unwrap()["plan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client
        .call_tool(
            CallToolRequestParams::new("dry-run").with_arguments(args(json!({"plan_id": id}))),
        )
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.as_ref().unwrap()["rollback_verified"],
        true,
        "{r:?}"
    );

    let plan = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "drydock://plans/{id}"
        )))
        .await
        .unwrap();
    let text = format!("{plan:?}");
    assert!(
        text.contains("CREATE INDEX orders_status") && text.contains("text/markdown"),
        "{text}"
    );

    // a refused call is a tool result with isError, not a protocol error
    let r = client
        .call_tool(CallToolRequestParams::new("apply").with_arguments(args(json!({"plan_id": id}))))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = r.content[0].as_text().unwrap().text.clone();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "checklist-unmet");
    assert!(body["fix"].as_str().is_some_and(|f| !f.is_empty()));
    assert!(r.structured_content.is_none());
    let errors = client
        .read_resource(ReadResourceRequestParams::new("drydock://errors"))
        .await
        .unwrap();
    assert!(format!("{errors:?}").contains("checklist-unmet"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn cli_lint_prints_hazards_as_json() {
    let dir = tempfile::tempdir().unwrap();
    drydock::demo::seed(&dir.path().join("app.db"), 50)
        .await
        .unwrap();
    std::fs::write(
        dir.path().join("drydock.toml"),
        "[targets.app]\nurl = \"sqlite:app.db\"\nrole = \"production\"\n[policy]\nlarge_table_rows = 10\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m.sql"),
        "ALTER TABLE users DROP COLUMN name;\nDELETE FROM orders;\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .current_dir(dir.path())
        .args(["lint", "m.sql", "--target", "app", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let codes: Vec<&str> = v["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"destructive") && codes.contains(&"breaking-change"),
        "{codes:?}"
    );
    for h in v["hazards"].as_array().unwrap() {
        for f in ["code", "severity", "statement", "message", "fix"] {
            assert!(h.get(f).is_some(), "hazard lacks {f}: {h}");
        }
    }
    assert_eq!(
        out.status.code(),
        Some(3),
        "critical hazards fail the lint at the default --fail-on high"
    );
}

#[tokio::test]
async fn init_writes_config_mcp_json_and_agent_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mcp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".mcp.json")).unwrap())
            .unwrap();
    assert_eq!(mcp["mcpServers"]["drydock"]["args"][0], "serve");
    assert!(
        dir.path()
            .join(".claude/agents/migration-specialist.md")
            .exists()
    );
    let cfg = drydock::config::Config::load(&dir.path().join("drydock.toml"))
        .expect("init writes a valid config");
    assert_eq!(
        cfg.targets["production"].staging.as_deref(),
        Some("staging")
    );
}
