//! The team server tried the way an untrusted agent and a hostile web page would: no token, a
//! forged or revoked token, a forged `Host` (DNS rebinding) or `Origin`, an oversized body, an
//! agent token on the approval API, a self-declared client name. Driven as a real process through
//! the official TypeScript SDK's streamable HTTP client and raw HTTP.

mod common;

use common::Project;
use common::http::request;
use common::server::serve_http as serve;
use drydock::identity::Grant;
use serde_json::{Value, json};

fn node(url: &str, token: &str) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let out = std::process::Command::new("node")
        .arg(dir.join("client.mjs"))
        .args(["--http", url, token])
        .current_dir(&dir)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "client.mjs over HTTP failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a report")
}

#[tokio::test]
async fn the_typescript_sdk_works_over_http_as_the_tokens_principal() {
    let p = Project::new().await;
    let agent = p.token("ci-agent", Grant::Agent);
    let server = serve(&p).await;
    let r = node(&format!("http://{}/mcp", server.addr), &agent);
    assert!(r.get("listToolsError").is_none(), "{r}");
    assert_eq!(r["tools"].as_array().map(Vec::len), Some(9), "{r}");
    assert!(
        !r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "approve" || t["name"] == "release"),
        "no MCP tool decides, whatever the token"
    );
    for call in ["plan", "dry-run", "status", "record-mistake"] {
        assert_eq!(r["calls"][call], "ok", "{call}: {r}");
    }
    assert_eq!(r["refusals"]["apply"]["code"], "checklist-unmet", "{r}");
    let id = r["planId"].as_str().expect("a plan").to_string();

    // The author is the token's principal, not the client's self-declared name.
    let admin = p.token("root", Grant::Admin);
    let auth = format!("Bearer {admin}");
    let shown = request(
        &server.addr,
        "GET",
        &format!("/api/plans/{id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json()["author"], "ci-agent", "{}", shown.body);
    let errors = p.errors_md();
    assert!(
        errors.contains("ci-agent") && !errors.contains("ts-sdk-conformance"),
        "ERRORS.md names the principal: {errors}"
    );

    // The agent's own token cannot approve through the API; an approver's can.
    let agent_auth = format!("Bearer {agent}");
    let denied = request(
        &server.addr,
        "POST",
        &format!("/api/plans/{id}/approve"),
        &[("Authorization", &agent_auth)],
        b"",
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.json()["code"], "not-permitted");
    let alice = format!("Bearer {}", p.token("alice", Grant::Approver));
    let approved = request(
        &server.addr,
        "POST",
        &format!("/api/plans/{id}/approve"),
        &[("Authorization", &alice)],
        b"",
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["status"], "approved");
    let audit = p.engine().await.audit_log(50).await.unwrap();
    let row = audit.iter().find(|r| r.action == "approve").unwrap();
    assert_eq!(
        (row.actor.as_str(), row.via.as_deref(), row.role.as_deref()),
        ("alice", Some("api"), Some("approver"))
    );
}

#[tokio::test]
async fn hostile_requests_are_refused_at_the_door() {
    let p = Project::new().await;
    let agent = p.token("ci-agent", Grant::Agent);
    let revoked = p.token("gone", Grant::Approver);
    let admin = p.token("root", Grant::Admin);
    let out = p.cli_with(&["token", "revoke", "gone"], Some(&admin));
    assert!(out.status.success());
    let server = serve(&p).await;
    let a = server.addr.as_str();
    let bearer = format!("Bearer {agent}");

    let none = request(a, "GET", "/api/plans", &[], b"").await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"drydock\"")
    );
    assert_eq!(none.json()["code"], "unauthenticated");
    let mcp = request(
        a,
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(mcp.status, 401, "MCP needs a token too");

    let forged = format!("Bearer ddk_{}_{}", "1".repeat(12), "2".repeat(48));
    let revoked = format!("Bearer {revoked}");
    for auth in [
        forged.as_str(),
        revoked.as_str(),
        "Bearer",
        "Basic cm9vdDpyb290",
    ] {
        let r = request(a, "GET", "/api/plans", &[("Authorization", auth)], b"").await;
        assert_eq!(r.status, 401, "{auth}: {}", r.body);
    }
    let rebinding = request(
        a,
        "GET",
        "/api/plans",
        &[("Host", "attacker.example"), ("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(rebinding.status, 400, "{}", rebinding.body);
    let page = request(
        a,
        "POST",
        "/mcp",
        &[
            ("Origin", "https://attacker.example"),
            ("Authorization", &bearer),
        ],
        b"{}",
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let own_origin = format!("http://{a}");
    let ok = request(
        a,
        "GET",
        "/api/plans",
        &[("Origin", &own_origin), ("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let huge = vec![b'x'; 2 << 20];
    let big = request(
        a,
        "POST",
        "/api/plans/x/reject",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &huge,
    )
    .await;
    assert!(
        matches!(big.status, 413 | 0),
        "oversized body: {}",
        big.status
    );
    let big_mcp = request(
        a,
        "POST",
        "/mcp",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        &huge,
    )
    .await;
    assert!(
        matches!(big_mcp.status, 413 | 0),
        "oversized MCP body: {} {}",
        big_mcp.status,
        big_mcp.body
    );
    let bad_json = request(
        a,
        "POST",
        "/api/plans/x/reject",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        br#"{"reason": 5"#,
    )
    .await;
    assert_eq!(bad_json.status / 100, 4, "{}", bad_json.body);
    let unknown = request(
        a,
        "GET",
        "/api/plans/nope",
        &[("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "unknown-plan");
    // The server still serves after all of it.
    let listed = request(a, "GET", "/api/plans", &[("Authorization", &bearer)], b"").await;
    assert_eq!(listed.json(), json!({"plans": []}));
}

#[tokio::test]
async fn a_remote_address_needs_allow_remote() {
    let p = Project::new().await;
    let out = p.cli_with(&["serve", "--http", "0.0.0.0:0"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow_remote"), "{err}");
}

/// The CLI against the team server: the identity is the token's, a `--by` naming someone else is
/// refused before anything is sent, an agent token cannot decide, and without a token nothing
/// is sent at all.
#[tokio::test]
async fn the_cli_decides_through_the_server_as_the_tokens_principal() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = common::plan_id(&c.ok("plan", common::add_column_plan()).await);
    c.ok("dry-run", json!({"plan_id": id})).await;
    let server = serve(&p).await;
    let url = format!("http://{}", server.addr);
    let alice = p.token("alice", Grant::Approver);
    let bot = p.token("ci-agent", Grant::Agent);
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let none = p.cli_with(&["--server", &url, "approve", &id], None);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(stderr(&none).contains("DRYDOCK_TOKEN"), "{}", stderr(&none));
    let agent = p.cli_with(&["--server", &url, "approve", &id], Some(&bot));
    assert_eq!(agent.status.code(), Some(2));
    assert!(
        stderr(&agent).contains("not-permitted"),
        "{}",
        stderr(&agent)
    );
    let other = p.cli_with(
        &["--server", &url, "approve", &id, "--by", "bob"],
        Some(&alice),
    );
    assert!(
        stderr(&other).contains("identity-mismatch"),
        "{}",
        stderr(&other)
    );
    let listed = p.cli_with(&["--server", &url, "plans", "--format", "json"], Some(&bot));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&id),
        "{}",
        stderr(&listed)
    );
    assert_eq!(
        c.ok("status", json!({"plan_id": id})).await["status"],
        "tested"
    );

    let ok = p.cli_with(
        &["--server", &url, "approve", &id, "--by", "alice"],
        Some(&alice),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["approvals"][0]["by"], "alice");
    let shown = p.cli_with(&["--server", &url, "show", &id], Some(&alice));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("approved"),
        "{}",
        stderr(&shown)
    );
    c.close().await;
}

/// One token may make 600 requests a minute; the 601st is answered 429 with Retry-After, and
/// other tokens are not affected.
#[tokio::test]
async fn a_token_over_its_rate_is_slowed_down_alone() {
    let p = Project::new().await;
    let noisy = format!("Bearer {}", p.token("noisy", Grant::Agent));
    let calm = format!("Bearer {}", p.token("calm", Grant::Agent));
    let server = serve(&p).await;
    let mut statuses = Vec::new();
    for _ in 0..601 {
        let r = request(
            &server.addr,
            "GET",
            "/api/whoami",
            &[("Authorization", &noisy)],
            b"",
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("60"));
            break;
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        600,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));
    let other = request(
        &server.addr,
        "GET",
        "/api/whoami",
        &[("Authorization", &calm)],
        b"",
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.json()["name"], "calm");
}
