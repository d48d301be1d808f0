//! Client compatibility (spec §3): drydock driven by the official MCP TypeScript SDK — what
//! Claude Code and the MCP Inspector are built on — through `tests/conformance/client.mjs`, and
//! by rmcp's client. Both must list every tool, prompt and resource, call every tool (the
//! TypeScript SDK validates each success against the tool's output schema), and see every
//! refusal's `code` and `fix`.

mod common;

use common::{Project, plan_id, refusal_body};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const TOOLS: [&str; 9] = [
    "apply",
    "dry-run",
    "inspect",
    "plan",
    "record-mistake",
    "render-template",
    "rollback",
    "status",
    "validate",
];

fn node_report(p: &Project) -> Value {
    node("client.mjs", p, &[])
}

/// Runs a script of `tests/conformance` with node against the real binary on `p`'s config (and
/// `more` arguments); returns the JSON it prints.
fn node(script: &str, p: &Project, more: &[&str]) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "the TypeScript SDK is not installed: run `npm ci` in tests/conformance (.ci/run does)"
    );
    let out = std::process::Command::new("node")
        .arg(dir.join(script))
        .arg(env!("CARGO_BIN_EXE_drydock"))
        .arg(&p.config_path)
        .args(more)
        .current_dir(&dir)
        .output()
        .expect("node runs (node 20 is on the machine)");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn progress_seen_by_the_typescript_sdk_only_increases_across_a_template_with_a_backfill() {
    let p = common::PgProject::new("").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "every account has a tier", "target": "production", "template": "add-not-null-column",
                   "params": {"table": "accounts", "column": "tier", "type": "text", "default": "free"}}),
        )
        .await;
    let id = plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");
    c.close().await;
    let r = node("progress.mjs", &p.project, &[&id]);
    assert_eq!(r["status"], "applied", "{r}");
    let seen: Vec<(f64, f64)> = r["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["progress"].as_f64().unwrap(),
                n["total"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert!(seen.len() >= 5, "{r}");
    assert!(
        seen.windows(2).all(|w| w[1].0 > w[0].0),
        "progress went back: {seen:?}"
    );
    assert!(
        seen.iter().all(|(done, total)| done <= total),
        "progress past its total: {seen:?}"
    );
    // The statements after the backfill count on from its 20,000 rows.
    let last = seen.last().unwrap().0;
    assert!(last > 20_000.0, "{seen:?}");
}

#[tokio::test]
async fn the_typescript_sdk_uses_every_tool() {
    let p = Project::new().await;
    let r = node_report(&p);
    assert!(r.get("listToolsError").is_none(), "{r}");
    let mut names: Vec<&str> = r["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, TOOLS);
    for t in r["tools"].as_array().unwrap() {
        assert!(t["title"].is_string(), "tool without a title: {t}");
        assert!(
            t["annotations"].is_object(),
            "tool without annotations: {t}"
        );
        assert_eq!(t["output"], true, "tool without an output schema: {t}");
    }
    assert_eq!(r["schemaProblems"], json!([]), "{r}");
    for call in [
        "render-template",
        "inspect",
        "plan",
        "dry-run",
        "status",
        "record-mistake",
        "render-template add-column",
    ] {
        assert_eq!(r["calls"][call], "ok", "{call}: {r}");
    }
    assert_eq!(
        r["calls"]["plan desired"], "desired",
        "a plan from a desired schema, its output as the SDK validates it: {r}"
    );
    for (tool, code) in [
        ("apply", "checklist-unmet"),
        ("validate", "wrong-status"),
        ("rollback", "missing-reason"),
    ] {
        let refusal = &r["refusals"][tool];
        assert_eq!(refusal["code"], code, "{tool}: {r}");
        assert!(
            refusal["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "{tool}: {r}"
        );
        assert_eq!(refusal["structured"], false, "{tool}: {r}");
    }
    assert_eq!(r["prompts"].as_array().unwrap().len(), 3, "{r}");
    let uris: Vec<&str> = r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["uri"].as_str().unwrap())
        .collect();
    for uri in [
        "drydock://errors",
        "drydock://checklist",
        "drydock://plans/{id}",
    ] {
        assert!(uris.contains(&uri), "{uri} missing: {r}");
    }
    assert!(p.errors_md().contains("checklist-unmet"));
}

/// The rules every schema follows, checked on what rmcp's client receives.
fn schema_problems(where_: &str, s: &Value, input: bool, out: &mut Vec<String>) {
    let Some(obj) = s.as_object() else { return };
    if let Some(f) = obj.get("format").and_then(Value::as_str)
        && !["date-time", "date", "time", "uri", "email", "uuid"].contains(&f)
    {
        out.push(format!("{where_}: format {f}"));
    }
    if input && obj.get("type").is_some_and(Value::is_array) {
        out.push(format!("{where_}: type {}", obj["type"]));
    }
    for key in ["properties", "$defs"] {
        for (name, sub) in obj
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if !sub.is_object() {
                out.push(format!("{where_}.{name}: schema is {sub}"));
            }
            schema_problems(&format!("{where_}.{name}"), sub, input, out);
        }
    }
    if let Some(items) = obj.get("items") {
        schema_problems(&format!("{where_}[]"), items, input, out);
    }
}

#[tokio::test]
async fn rmcp_sees_exact_schemas_and_every_refusal() {
    let p = Project::new().await;
    let c = p.connect().await;
    let tools = c.service.list_all_tools().await.unwrap();
    let mut problems = Vec::new();
    for t in &tools {
        assert!(t.title.is_some(), "{} has no title", t.name);
        schema_problems(
            &format!("{}.input", t.name),
            &Value::Object(t.input_schema.as_ref().clone()),
            true,
            &mut problems,
        );
        let output = t.output_schema.as_ref().expect("output schema");
        schema_problems(
            &format!("{}.output", t.name),
            &Value::Object(output.as_ref().clone()),
            false,
            &mut problems,
        );
    }
    assert_eq!(problems, Vec::<String>::new());
    let rollback = tools.iter().find(|t| t.name == "rollback").unwrap();
    assert_eq!(
        rollback.input_schema["required"],
        json!(["plan_id", "reason"]),
        "rollback's reason is required in its schema"
    );
    let plan = tools.iter().find(|t| t.name == "plan").unwrap();
    assert_eq!(plan.input_schema["properties"]["steps"]["type"], "array");
    assert_eq!(plan.input_schema["properties"]["params"]["type"], "object");

    let id = plan_id(&c.ok("plan", common::add_column_plan()).await);
    for (tool, args, code) in [
        ("apply", json!({"plan_id": id}), "checklist-unmet"),
        ("validate", json!({"plan_id": id}), "wrong-status"),
        (
            "rollback",
            json!({"plan_id": id, "reason": " "}),
            "missing-reason",
        ),
        ("dry-run", json!({"plan_id": "pl-nope"}), "unknown-plan"),
        ("inspect", json!({"target": "nowhere"}), "unknown-target"),
        (
            "render-template",
            json!({"template": "nope"}),
            "unknown-template",
        ),
    ] {
        let r = c
            .service
            .call_tool(
                CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{tool}");
        let body = refusal_body(&r);
        assert_eq!(body["code"], code, "{tool}: {body}");
        assert!(body["fix"].as_str().is_some_and(|f| !f.is_empty()));
    }
    c.close().await;
}
