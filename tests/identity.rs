//! The trust boundary at the command line, tried the way an agent with a Bash tool would: approve
//! as anyone with `--by`, forge or reuse a token, approve with its own agent token, mint itself a
//! token. Only a person at a terminal (who types what the command names) or the holder of an
//! approver token decides, and the audit log records who, in what role, by which channel.

mod common;

use common::{Project, plan_id};
use drydock::identity::Grant;
use serde_json::json;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn tested_plan(p: &Project) -> (common::Client, String) {
    let c = p.connect().await;
    let id = plan_id(&c.ok("plan", common::add_column_plan()).await);
    c.ok("dry-run", json!({"plan_id": id})).await;
    (c, id)
}

#[tokio::test]
async fn a_script_cannot_approve_as_anyone() {
    let p = Project::new().await;
    let (c, id) = tested_plan(&p).await;
    // `--by alice` from an agent's shell: no terminal, no token.
    for args in [
        vec!["approve", id.as_str(), "--by", "alice"],
        vec!["reject", id.as_str(), "--reason", "no", "--by", "alice"],
        vec!["approve", id.as_str()],
    ] {
        let out = p.cli_with(&args, None);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("needs-a-person"), "{}", stderr(&out));
    }
    // Forged, truncated and agent tokens.
    let agent = p.token("helper-bot", Grant::Agent);
    let forged = format!("ddk_{}_{}", "0".repeat(12), "f".repeat(48));
    let real = p.token("alice", Grant::Approver);
    // Its last character changed (never to itself: a token ending in `0` stayed valid).
    let last = if real.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &real[..real.len() - 1]);
    for (token, code) in [
        (forged.as_str(), "unauthenticated"),
        (tampered.as_str(), "unauthenticated"),
        ("ddk_nope", "unauthenticated"),
        (agent.as_str(), "not-permitted"),
    ] {
        let out = p.cli_with(&["approve", &id], Some(token));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(code), "{code}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains(token) || token == "ddk_nope",
            "a token is never echoed"
        );
    }
    // An approver token with someone else's name.
    let out = p.cli_with(&["approve", &id, "--by", "bob"], Some(&real));
    assert!(
        stderr(&out).contains("identity-mismatch"),
        "{}",
        stderr(&out)
    );
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["status"], "tested", "nothing was approved: {status}");
    assert_eq!(status["approvals"].as_array().map(Vec::len), Some(0));

    // The approver's own token approves, as the token's principal.
    let out = p.cli_with(&["approve", &id], Some(&real));
    assert!(out.status.success(), "{}", stderr(&out));
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["status"], "approved", "{status}");
    assert_eq!(status["approvals"][0]["by"], "alice");
    c.close().await;
}

#[tokio::test]
async fn tokens_are_made_by_admins_shown_once_and_revoked_at_once() {
    let p = Project::new().await;
    let (c, id) = tested_plan(&p).await;
    // Nobody at a terminal and no admin token: no token is made.
    let out = p.cli_with(
        &["token", "create", "--name", "bot", "--role", "admin"],
        None,
    );
    assert!(stderr(&out).contains("needs-a-person"), "{}", stderr(&out));
    let approver = p.token("alice", Grant::Approver);
    let out = p.cli_with(
        &["token", "create", "--name", "bot", "--role", "admin"],
        Some(&approver),
    );
    assert!(stderr(&out).contains("not-permitted"), "{}", stderr(&out));

    let admin = p.token("root", Grant::Admin);
    let out = p.cli_with(
        &[
            "token",
            "create",
            "--name",
            "carol",
            "--role",
            "approver",
            "--expires",
            "90d",
        ],
        Some(&admin),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let carol = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(carol.starts_with("ddk_"), "{carol}");
    let state = std::fs::read(p.path(".drydock/state.db")).unwrap_or_default();
    let state_text = String::from_utf8_lossy(&state);
    let secret = carol.rsplit('_').next().unwrap();
    assert!(!state_text.contains(secret), "only the hash is stored");

    let listed = p.cli_with(&["token", "list", "--format", "json"], Some(&admin));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("\"carol\"") && listed.contains("\"approver\""),
        "{listed}"
    );
    assert!(!listed.contains(secret), "listing never shows a secret");

    // Revoking someone without a live token is refused and leaves no audit row behind.
    let out = p.cli_with(&["token", "revoke", "nobody"], Some(&admin));
    assert!(stderr(&out).contains("no live token"), "{}", stderr(&out));
    let audit = p.engine().await.audit_log(100).await.unwrap();
    assert!(
        !audit.iter().any(|r| r.detail.contains("\"nobody\"")),
        "a refused revoke leaves no audit row"
    );

    // Revoked: refused at once.
    let out = p.cli_with(&["token", "revoke", "carol"], Some(&admin));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.cli_with(&["approve", &id], Some(&carol));
    assert!(
        stderr(&out).contains("unauthenticated") && stderr(&out).contains("revoked"),
        "{}",
        stderr(&out)
    );
    c.close().await;
}

/// `drydock ARGS` at a real terminal (a pseudo-terminal from `script`, as any agent with a shell
/// can make one): each line of `typed` is typed once its prompt has appeared. Returns what the
/// terminal showed.
fn at_terminal(p: &Project, args: &str, typed: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    let command = format!(
        "{} --config {} {args}",
        env!("CARGO_BIN_EXE_drydock"),
        p.config_path.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DRYDOCK_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let shown = shown.clone();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = 0;
    for (prompt, line) in typed {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text = shown.lock().unwrap().clone();
            if let Some(at) = text[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no prompt {prompt:?}: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    child.wait().unwrap();
    reader.join().unwrap();
    shown.lock().unwrap().clone()
}

/// A terminal is not a person: through `script`, typing the plan's checksum (which the agent
/// knows) approves nothing, under anyone's name. The person approves with the passphrase only
/// they know, asked without echo, then confirms the checksum; a wrong confirmation changes
/// nothing. The audit names the principal, its role, the channel and the OS user.
#[tokio::test]
async fn a_person_at_a_terminal_approves_with_their_passphrase() {
    let p = Project::new().await;
    let (c, id) = tested_plan(&p).await;
    let checksum = c.ok("status", json!({"plan_id": id})).await["checksum"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = format!("approve {id} --by dana");

    // The agent's attempt: a terminal, the name, the checksum; no passphrase.
    for guess in [&checksum[..8], "", &checksum] {
        let shown = at_terminal(&p, &approve, &[("passphrase: ", guess)]);
        assert!(shown.contains("unauthenticated"), "{shown}");
    }
    assert_eq!(
        c.ok("status", json!({"plan_id": id})).await["status"],
        "tested",
        "a terminal and the checksum approve nothing"
    );

    // An admin has set dana up; dana types her passphrase (never shown) and confirms.
    let secret = "correct horse battery staple";
    let engine = p.engine().await;
    let admin = drydock::identity::Principal::person("test-admin", Grant::Admin);
    engine
        .set_passphrase(Some(&admin), "dana", Grant::Approver, secret)
        .await
        .unwrap();
    let wrong = at_terminal(
        &p,
        &approve,
        &[("passphrase: ", secret), ("to confirm: ", "deadbeef")],
    );
    assert!(wrong.contains("did not match"), "{wrong}");
    assert!(
        !wrong.contains(secret),
        "the passphrase is not echoed: {wrong}"
    );
    assert_eq!(
        c.ok("status", json!({"plan_id": id})).await["status"],
        "tested"
    );
    let right = at_terminal(
        &p,
        &approve,
        &[("passphrase: ", secret), ("to confirm: ", &checksum[..8])],
    );
    assert!(right.contains("approved"), "{right}");
    assert!(
        !right.contains(secret),
        "the passphrase is not echoed: {right}"
    );
    let status = c.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["status"], "approved", "{status}");
    assert_eq!(status["approvals"][0]["by"], "dana");

    let row = engine
        .audit_log(20)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == "approve")
        .expect("an approve row");
    assert_eq!(row.actor, "dana");
    assert_eq!(row.role.as_deref(), Some("approver"));
    assert_eq!(row.via.as_deref(), Some("cli"));
    c.close().await;
}

/// Tokens and passphrases are an admin's to give: at a terminal without an admin's passphrase,
/// `token create` and `passphrase set` make nothing (an agent minting itself an approver token
/// was the way around every approval). With no admin yet, the first one is set at a terminal.
#[tokio::test]
async fn tokens_and_passphrases_need_an_admins_secret() {
    let p = Project::new().await;
    let engine = p.engine().await;
    let admin_secret = "the first admin's passphrase";
    let first = at_terminal(
        &p,
        "passphrase set root --role admin",
        &[("(admin): ", admin_secret), ("again: ", admin_secret)],
    );
    assert!(first.contains("set the passphrase of `root`"), "{first}");
    assert!(engine.has_admin().await.unwrap());

    // From now on, an admin's passphrase is asked first; guessing mints nothing.
    for args in [
        "token create --name mallory --role approver --by root",
        "passphrase set mallory --role approver --by root",
    ] {
        let shown = at_terminal(&p, args, &[("passphrase: ", "root")]);
        assert!(shown.contains("unauthenticated"), "{args}: {shown}");
    }
    let admin = drydock::identity::Principal::person("root", Grant::Admin);
    assert!(
        engine
            .tokens(&admin)
            .await
            .unwrap()
            .iter()
            .all(|t| t.name != "mallory"),
        "no token was made"
    );
    assert!(
        engine
            .person("mallory", "anything at all", Grant::Approver, "approve")
            .await
            .is_err()
    );

    // The admin, with the passphrase, makes a token.
    let made = at_terminal(
        &p,
        "token create --name carol --role approver --by root",
        &[("passphrase: ", admin_secret), ("to confirm: ", "carol")],
    );
    assert!(made.contains("ddk_"), "{made}");
    assert!(!made.contains(admin_secret), "{made}");
}

/// Over stdio the author is the MCP client's name, marked as no principal's can be (`(stdio)`),
/// and the OS user running the server, on both
/// protocol revisions: the `initialize` handshake names the client once; the 2026-07-28
/// revision has no handshake and names it in every request's metadata. Every audit row of the
/// agent's calls records its role (agent), channel (stdio) and OS user.
#[tokio::test]
async fn stdio_authors_are_the_client_and_the_os_user_on_both_revisions() {
    use rmcp::model::ProtocolVersion;
    use rmcp::service::ClientLifecycleMode;
    let p = Project::new().await;
    let os_user = drydock::identity::os_user();
    for (client, lifecycle) in [
        ("handshake-agent", ClientLifecycleMode::Initialize),
        (
            "discover-agent",
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        ),
    ] {
        let c = p.connect_on(client, lifecycle).await;
        let mut plan = common::add_column_plan();
        plan["goal"] = json!(format!("add a column, for {client}"));
        plan["checks"] = json!([]);
        plan["steps"][0]["up"] = json!(format!(
            "ALTER TABLE users ADD COLUMN by_{}",
            client.replace('-', "_")
        ));
        plan["steps"][0]["down"] = json!(format!(
            "ALTER TABLE users DROP COLUMN by_{}",
            client.replace('-', "_")
        ));
        let id = plan_id(&c.ok("plan", plan).await);
        c.ok("dry-run", json!({"plan_id": id})).await;
        let status = c.ok("status", json!({"plan_id": id})).await;
        assert_eq!(status["author"], format!("{client} (stdio)"), "{status}");
        assert!(drydock::identity::validate_name(status["author"].as_str().unwrap()).is_err());
        let audit = p.engine().await.audit_log(100).await.unwrap();
        for action in ["plan", "dry-run"] {
            let row = audit
                .iter()
                .find(|r| r.plan_id.as_deref() == Some(id.as_str()) && r.action == action)
                .unwrap_or_else(|| panic!("a {action} row for {client}"));
            assert_eq!(
                (row.actor.as_str(), row.role.as_deref(), row.via.as_deref()),
                (
                    format!("{client} (stdio)").as_str(),
                    Some("agent"),
                    Some("stdio")
                ),
                "{action}"
            );
            assert_eq!(row.os_user, os_user, "{action}");
        }
        // A mistake from this client carries its name in ERRORS.md (the first as the entry's
        // agent, the repeat as an occurrence).
        c.refused("apply", json!({"plan_id": id})).await;
        let log = p.errors_md();
        assert!(
            log.contains(&format!("**agent:** {client} (stdio)"))
                || log.contains(&format!("by {client} (stdio) via apply")),
            "{log}"
        );
        c.close().await;
    }
}
