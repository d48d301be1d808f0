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
    // The same principal with an approver token is still the author.
    let own = format!("Bearer {}", p.token("ci-agent", Grant::Approver));
    let refused = request(
        &server.addr,
        "POST",
        &format!("/api/plans/{id}/approve"),
        &[("Authorization", &own)],
        b"",
    )
    .await;
    assert_eq!(refused.json()["code"], "self-approval", "{}", refused.body);
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
    // Every answer, a refusal or a page, is never framed, cached or type-sniffed.
    let login = request(a, "GET", "/login", &[], b"").await;
    for r in [&none, &login] {
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{}", r.body);
        assert_eq!(
            r.header("content-security-policy"),
            Some("frame-ancestors 'none'")
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
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

/// The 2026-07-28 revision (no handshake: `server/discover`, then self-contained requests with
/// their metadata and the standard headers) is served beside the handshake revisions the
/// TypeScript SDK speaks; its requests pass the same door, and the author is still the token's
/// principal whatever client name the request's metadata declares.
#[tokio::test]
async fn the_handshake_free_revision_is_served_as_the_tokens_principal() {
    let p = Project::new().await;
    let agent = format!("Bearer {}", p.token("ci-agent", Grant::Agent));
    let server = serve(&p).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "impostor", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let call =
        |auth: Option<String>, method: &'static str, name: Option<&'static str>, params: Value| {
            let addr = server.addr.clone();
            async move {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
                let mut headers = vec![
                    ("Content-Type", "application/json".to_string()),
                    ("Accept", "application/json, text/event-stream".to_string()),
                    ("MCP-Protocol-Version", "2026-07-28".to_string()),
                    ("Mcp-Method", method.to_string()),
                ];
                if let Some(name) = name {
                    headers.push(("Mcp-Name", name.to_string()));
                }
                if let Some(auth) = auth {
                    headers.push(("Authorization", auth));
                }
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                request(&addr, "POST", "/mcp", &headers, body.to_string().as_bytes()).await
            }
        };
    let discovered = call(
        Some(agent.clone()),
        "server/discover",
        None,
        json!({"_meta": meta}),
    )
    .await;
    assert_eq!(discovered.status, 200, "{}", discovered.body);
    let discovered = rpc_result(&discovered.body);
    assert!(
        discovered["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("2026-07-28")) && v.contains(&json!("2025-11-25"))),
        "{discovered}"
    );
    // Without a token the door is shut on this revision too.
    let refused = call(None, "tools/list", None, json!({"_meta": meta})).await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    let mut plan = common::add_column_plan();
    plan["checks"] = json!([]);
    let planned = call(
        Some(agent),
        "tools/call",
        Some("plan"),
        json!({"name": "plan", "arguments": plan, "_meta": meta}),
    )
    .await;
    assert_eq!(planned.status, 200, "{}", planned.body);
    let planned = rpc_result(&planned.body);
    assert_ne!(planned["isError"], true, "{planned}");
    let id = planned["structuredContent"]["plan_id"]
        .as_str()
        .expect("a plan id");
    let status = p.engine().await.status(id).await.unwrap();
    assert_eq!(status.author, "ci-agent");
    let audit = p.engine().await.audit_log(20).await.unwrap();
    let row = audit
        .iter()
        .find(|r| r.action == "plan")
        .expect("a plan row");
    assert_eq!(
        (row.actor.as_str(), row.role.as_deref(), row.via.as_deref()),
        ("ci-agent", Some("agent"), Some("mcp-http"))
    );
}

/// The JSON-RPC result in a response body, sent as JSON or as server-sent events.
fn rpc_result(body: &str) -> Value {
    let found = body
        .lines()
        .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some());
    let found = found.unwrap_or_else(|| panic!("no JSON-RPC response in {body}"));
    found
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("an error: {found}"))
}

/// The team server stopped (SIGTERM) in the middle of a production backfill stops at the next
/// checkpoint: it exits promptly and cleanly, every batch done is recorded in the target, nothing
/// is half-done or logged as an agent's mistake, and the next apply resumes where it stopped —
/// every row updated exactly once.
#[tokio::test]
async fn a_team_server_stopped_mid_backfill_stops_at_a_checkpoint_and_resumes() {
    let p = common::PgProject::new("apply_wait = \"1s\"").await;
    let c = p.project.connect().await;
    let planned = c
        .ok(
            "plan",
            json!({"goal": "score every account once", "target": "production",
                   // Batches grow 1.5× while fast (400, 600, 900, …): half a second between
                   // them leaves seconds after the first batch, however fast the machine.
                   "steps": [{"name": "score", "backfill": {"table": "accounts", "set": "score = score + 1",
                              "batch_size": 400, "pause_ms": 500}, "down": "SELECT 1"}]}),
        )
        .await;
    let id = common::plan_id(&planned);
    c.ok("dry-run", json!({"plan_id": id})).await;
    p.project.approve(&id, "alice");

    let agent = format!("Bearer {}", p.project.token("ci-agent", Grant::Agent));
    let mut server = serve(&p.project).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "apply", "arguments": {"plan_id": id},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientInfo": {"name": "ci", "version": "1"},
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let answered = request(
        &server.addr,
        "POST",
        "/mcp",
        &[
            ("Authorization", agent.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "apply"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    let answered = rpc_result(&answered.body);
    assert_eq!(
        answered["structuredContent"]["status"], "applying",
        "{answered}"
    );
    let started = std::time::Instant::now();
    while p
        .scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
        .await
        < 400
    {
        assert!(
            started.elapsed().as_secs() < 60,
            "the backfill does not progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (clean, took) = server.terminate();
    assert!(clean, "the server exits cleanly on SIGTERM");
    assert!(
        took.as_secs() < 20,
        "it stops at the next checkpoint, not at the end: {took:?}"
    );
    let done = p
        .scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
        .await;
    assert!(
        (400..20_000).contains(&done),
        "stopped part-way: {done} rows"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            &format!("SELECT rows_done FROM drydock.backfill_progress WHERE plan_id = '{id}'")
        )
        .await,
        done,
        "every batch done is checkpointed, and only those"
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            &format!("SELECT count(*) FROM drydock.history WHERE plan_id = '{id}'")
        )
        .await,
        0,
        "the step is not recorded as applied"
    );
    let engine = p.project.engine().await;
    assert_eq!(
        engine.status(&id).await.unwrap().status.to_string(),
        "applying"
    );
    let audit = engine.audit_log(20).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == "apply-halted"),
        "the stop is audited"
    );
    assert!(
        !p.project.errors_md().contains(&id),
        "a shutdown is no agent's mistake"
    );

    // The next apply resumes from the checkpoint: every row exactly once.
    let mut resumed = c.ok("apply", json!({"plan_id": id})).await;
    let started = std::time::Instant::now();
    while resumed["status"] == "applying" && started.elapsed().as_secs() < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        resumed = c.ok("status", json!({"plan_id": id})).await;
    }
    assert_eq!(resumed["status"], "applied", "{resumed}");
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score = 1")
            .await,
        20_000
    );
    assert_eq!(
        p.scalar(&p.prod, "SELECT count(*) FROM accounts WHERE score <> 1")
            .await,
        0
    );
    assert_eq!(
        p.scalar(
            &p.prod,
            &format!("SELECT count(*) FROM drydock.history WHERE plan_id = '{id}'")
        )
        .await,
        1
    );
    c.close().await;
}

/// A review-page session lives only as long as the token that opened it: revoked, the very next
/// request is sent back to the login page (it once kept approving).
#[tokio::test]
async fn a_revoked_token_ends_its_page_sessions_at_once() {
    let p = Project::new().await;
    let alice = p.token("alice", Grant::Approver);
    let admin = p.token("root", Grant::Admin);
    let server = serve(&p).await;
    let a = server.addr.as_str();
    let cookie = |r: &common::http::Response, name: &str| {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} cookie: {:?}", r.headers))
    };
    let form = request(a, "GET", "/login", &[], b"").await;
    let csrf = cookie(&form, "dd_login");
    let logged = request(
        a,
        "POST",
        "/login",
        &[
            ("Cookie", &format!("dd_login={csrf}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("token={alice}&csrf_token={csrf}").as_bytes(),
    )
    .await;
    let session = format!("dd_session={}", cookie(&logged, "dd_session"));
    let home = request(a, "GET", "/", &[("Cookie", &session)], b"").await;
    assert_eq!(home.status, 200, "{}", home.body);

    let out = p.cli_with(&["token", "revoke", "alice"], Some(&admin));
    assert!(out.status.success());
    let after = request(a, "GET", "/", &[("Cookie", &session)], b"").await;
    assert!(
        (300..400).contains(&after.status) && after.header("location") == Some("/login"),
        "{} {:?}",
        after.status,
        after.headers
    );
}

/// A client that never finishes its headers holds only its own connection, and only for
/// `[server] header_read_timeout`: with every connection slot (`max_connections`) taken by such
/// clients, the server cuts them and a login still gets its page (slow clients once locked every
/// login out).
#[tokio::test]
async fn slow_clients_are_cut_and_never_lock_logins_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = Project::new().await;
    let mut config = std::fs::read_to_string(&p.config_path).unwrap();
    config.push_str("\n[server]\nheader_read_timeout = \"1s\"\nmax_connections = 2\n");
    std::fs::write(&p.config_path, config).unwrap();
    let server = serve(&p).await;
    let a = server.addr.clone();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&a).await.unwrap();
        s.write_all(format!("GET /login HTTP/1.1\r\nHost: {a}\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        slow.push(s);
    }
    let login = tokio::spawn({
        let a = a.clone();
        async move { request(&a, "GET", "/login", &[], b"").await }
    });
    for mut s in slow {
        let mut buf = [0u8; 512];
        let cut = tokio::time::timeout(std::time::Duration::from_secs(15), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a 408 before the close is fine
                }
            }
        })
        .await;
        assert!(
            cut.is_ok(),
            "the server never cut a client that sent no whole header"
        );
    }
    let page = tokio::time::timeout(std::time::Duration::from_secs(15), login)
        .await
        .expect("a login is served once the slow clients are cut")
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
}
