//! The review page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
//! over WebDriver): an approver logs in with a token, reads the plan with what decides approval on
//! top, approves and sees it approved; the plan's author and an agent get no forms; a POST
//! without the CSRF token is refused; a script in a plan's goal is shown, never run.

mod common;

use common::http::request;
use common::server::{Listening, free_port, listening, serve_http};
use common::{Project, plan_id};
use drydock::identity::Grant;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// chromedriver on a free loopback port (Debian's chromium-driver; .ci/run installs it).
async fn driver() -> Listening {
    let port = free_port();
    let mut cmd = std::process::Command::new("chromedriver");
    cmd.arg(format!("--port={port}"));
    listening(cmd, format!("127.0.0.1:{port}")).await
}

async fn browser(d: &Listening) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://{}", d.addr))
        .await
        .expect("a Chromium session")
}

/// Logs in; returns once the browser has left the login page, or shows the login error.
async fn log_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        let left = c.current_url().await.is_ok_and(|u| u.path() != "/login");
        if left || text_now(c, "error").await.is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the login did not answer");
}

/// The text of element `id` on the page as it is now (a page being replaced gives `None`).
async fn text_now(c: &Client, id: &str) -> Option<String> {
    c.find(Locator::Id(id)).await.ok()?.text().await.ok()
}

/// Waits until element `id` reads `expected` (the page may be navigating).
async fn wait_text(c: &Client, id: &str, expected: &str) -> String {
    let mut last = None;
    for _ in 0..100 {
        last = text_now(c, id).await;
        if last.as_deref() == Some(expected) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last.unwrap_or_default()
}

#[tokio::test]
async fn an_approver_reviews_and_approves_in_the_browser() {
    let p = Project::new().await;
    let agent = p.connect().await;
    let id = plan_id(
        &agent
            .ok(
                "plan",
                json!({"goal": "<script>window.pwned = 1</script> add a nickname", "target": "production",
                       "steps": [{"name": "add", "up": "ALTER TABLE users ADD COLUMN nickname TEXT", "down": "ALTER TABLE users DROP COLUMN nickname"}]}),
            )
            .await,
    );
    agent.ok("dry-run", json!({"plan_id": id})).await;
    let alice = p.token("alice", Grant::Approver);
    let bot = p.token("ci-agent", Grant::Agent);
    // A plan carol wrote over HTTP (an author is a token's principal there), and carol's
    // approver token: the page gives its author no form.
    let carols = p
        .engine()
        .await
        .plan(
            drydock::engine::PlanRequest {
                goal: "carol's own change".into(),
                target: "production".into(),
                steps: Some(vec![drydock::plan::Step {
                    name: Some("add".into()),
                    up: Some("ALTER TABLE users ADD COLUMN motto TEXT".into()),
                    down: Some("ALTER TABLE users DROP COLUMN motto".into()),
                    backfill: None,
                    gate: None,
                    restore: None,
                }]),
                template: None,
                params: None,
                checks: vec![],
                urgency: Default::default(),
                supersedes: None,
                desired: None,
            },
            &drydock::identity::Principal {
                name: "carol".into(),
                grant: Grant::Agent,
                via: drydock::identity::Via::McpHttp,
                os_user: None,
            },
        )
        .await
        .unwrap()
        .plan_id;
    let author = p.token("carol", Grant::Approver);
    let server = serve_http(&p).await;
    let base = format!("http://{}", server.addr);
    let d = driver().await;
    let c = browser(&d).await;

    // A bad token stays on the login page with the reason.
    log_in(&c, &base, "ddk_not_a_token").await;
    let error = text_now(&c, "error").await.unwrap_or_default();
    assert!(error.contains("not authenticated"), "{error}");

    log_in(&c, &base, &alice).await;
    c.goto(&format!("{base}/plans/{id}")).await.unwrap();
    let goal = c
        .find(Locator::Id("goal"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        goal.contains("<script>"),
        "the goal is shown as text: {goal}"
    );
    let pwned = c
        .execute("return window.pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true), "a script in a goal never runs");
    let status = wait_text(&c, "status", "tested").await;
    assert_eq!(status, "tested");
    let source = c.source().await.unwrap();
    let top = source.find("class=\"decide\"").unwrap();
    assert!(
        top < source.find("<h2>Steps</h2>").unwrap(),
        "what decides approval comes first"
    );
    assert!(
        source.contains("<span class=\"kw\">ALTER</span>"),
        "SQL is highlighted"
    );

    // The session cookie is HttpOnly and SameSite=Strict; without the form's CSRF token a POST
    // with that cookie is refused.
    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "dd_session")
        .expect("a session");
    assert_eq!(session.http_only(), Some(true));
    let cookie = format!("dd_session={}", session.value());
    let forged = request(
        &server.addr,
        "POST",
        &format!("/plans/{id}/approve"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"csrf_token=0000",
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let status = agent.ok("status", json!({"plan_id": id})).await;
    assert_eq!(
        status["status"], "tested",
        "the forged POST changed nothing"
    );

    c.find(Locator::Id("approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = wait_text(&c, "status", "approved").await;
    assert_eq!(status, "approved");
    let status = agent.ok("status", json!({"plan_id": id})).await;
    assert_eq!(status["approvals"][0]["by"], "alice", "{status}");
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = c
        .find(Locator::Id("audit"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("alice approver web approve"), "{audit}");

    // A hotfix's page carries the waiver form (a normal plan's does not); alice signs it with
    // the incident as the reason.
    c.goto(&format!("{base}/plans/{id}")).await.unwrap();
    assert!(
        c.find(Locator::Id("waive")).await.is_err(),
        "no waiver on a normal plan"
    );
    let hotfix = plan_id(
        &agent
            .ok(
                "plan",
                json!({"goal": "stop the outage", "target": "production", "urgency": "p0",
                       "steps": [{"name": "add", "up": "ALTER TABLE users ADD COLUMN hotfix TEXT", "down": "ALTER TABLE users DROP COLUMN hotfix"}]}),
            )
            .await,
    );
    c.goto(&format!("{base}/plans/{hotfix}")).await.unwrap();
    c.find(Locator::Css("#waive-form input[name=reason]"))
        .await
        .unwrap()
        .send_keys("checkout is down")
        .await
        .unwrap();
    c.find(Locator::Id("waive"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut waived = json!(null);
    for _ in 0..100 {
        waived = agent.ok("status", json!({"plan_id": hotfix})).await;
        if waived["approvals"][0]["decision"] == "waived" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(waived["approvals"][0]["decision"], "waived", "{waived}");
    assert_eq!(
        waived["approvals"][0]["reason"], "checkout is down",
        "{waived}"
    );
    c.close().await.unwrap();

    // An agent token reads, with no forms; the author gets none either.
    for (token, plan, says) in [
        (&bot, &id, "Read-only"),
        (&author, &carols, "You wrote this plan"),
    ] {
        let c = browser(&d).await;
        log_in(&c, &base, token).await;
        c.goto(&format!("{base}/plans/{plan}")).await.unwrap();
        assert!(
            c.find(Locator::Id("approve")).await.is_err(),
            "no approve form"
        );
        let source = c.source().await.unwrap();
        assert!(source.contains(says), "{says}");
        assert!(!source.contains("name=\"reason\""), "no reject form");
        c.close().await.unwrap();
    }
    agent.close().await;
}

/// Keeps what the browser shows as a test artifact: `target/review-screens/NAME.png`.
async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/review-screens");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test]
async fn the_page_reads_each_state_a_plan_can_be_in() {
    let pg = common::PgProject::new("").await;
    let p = &pg.project;
    let agent = p.connect().await;
    let step = |name: &str| {
        json!([{"name": "add", "up": format!("ALTER TABLE accounts ADD COLUMN {name} TEXT"),
                "down": format!("ALTER TABLE accounts DROP COLUMN {name}")}])
    };
    // A plan, and a newer one submitted to supersede it.
    let first = plan_id(
        &agent
            .ok(
                "plan",
                json!({"goal": "a nickname", "target": "production", "steps": step("nickname")}),
            )
            .await,
    );
    let second = plan_id(
        &agent
            .ok("plan", json!({"goal": "a nickname, better", "target": "production", "steps": step("nick"), "supersedes": first}))
            .await,
    );
    // A plan whose dry-run passes (staging's 2,000 accounts) and whose apply fails
    // (production's 20,000): two statements in one transaction, the second holding the first's
    // lock.
    let failing = plan_id(
        &agent
            .ok(
                "plan",
                json!({"goal": "one account per slot", "target": "production", "steps": [
                    {"name": "slots", "up": "ALTER TABLE accounts ADD COLUMN flag text; CREATE UNIQUE INDEX accounts_slot ON accounts ((id % 5000))",
                     "down": "DROP INDEX accounts_slot; ALTER TABLE accounts DROP COLUMN flag"}]}),
            )
            .await,
    );
    agent.ok("dry-run", json!({"plan_id": failing})).await;
    p.approve(&failing, "alice");
    agent.refused("apply", json!({"plan_id": failing})).await;
    // A plan from a desired schema: the reviewer reads the schema asked for beside the steps.
    let desired = plan_id(
        &agent
            .ok(
                "plan",
                json!({"goal": "a motto", "target": "production", "desired":
                    "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance integer NOT NULL DEFAULT 0,
                                            nickname text, score integer NOT NULL DEFAULT 0, motto text)"}),
            )
            .await,
    );

    let alice = p.token("alice", Grant::Approver);
    let server = serve_http(p).await;
    let base = format!("http://{}", server.addr);
    let d = driver().await;
    let c = browser(&d).await;
    log_in(&c, &base, &alice).await;

    c.goto(&format!("{base}/plans/{desired}")).await.unwrap();
    let mut shown = String::new();
    for _ in 0..100 {
        shown = text_now(&c, "desired").await.unwrap_or_default();
        if shown.contains("motto") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        shown.contains("motto text"),
        "the desired schema on the page: {shown}"
    );
    assert!(
        text_now(&c, "desired-source").await.is_some(),
        "the page says where the steps came from"
    );

    c.goto(&format!("{base}/plans/{first}")).await.unwrap();
    assert_eq!(
        wait_text(&c, "status", &format!("superseded by {second}")).await,
        format!("superseded by {second}")
    );
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "a superseded plan is not decided"
    );
    assert!(c.find(Locator::Id("reject")).await.is_err());
    assert!(c.find(Locator::Id("nothing-to-decide")).await.is_ok());
    screenshot(&c, "superseded").await;

    c.goto(&format!("{base}/")).await.unwrap();
    let list = c
        .find(Locator::Id("plans"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = |id: &str| {
        list.lines()
            .find(|l| l.contains(id))
            .unwrap_or("")
            .to_string()
    };
    assert!(row(&first).contains("superseded by"), "{list}");
    assert!(row(&second).contains("waits for a decision"), "{list}");
    assert!(!row(&failing).contains("waits for a decision"), "{list}");
    screenshot(&c, "plans").await;

    c.goto(&format!("{base}/plans/{failing}")).await.unwrap();
    assert_eq!(
        wait_text(&c, "status", "approved; its apply failed").await,
        "approved; its apply failed"
    );
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "approved already"
    );
    assert!(
        c.find(Locator::Id("reject")).await.is_ok(),
        "it may still be abandoned"
    );
    let source = c.source().await.unwrap();
    assert!(
        source.contains("held from an earlier statement"),
        "measured locks say which were held"
    );
    assert!(source.contains("(acquired)"));
    screenshot(&c, "apply-failed").await;

    c.goto(&format!("{base}/plans/{second}")).await.unwrap();
    assert!(
        c.find(Locator::Id("approve")).await.is_ok(),
        "the newer plan waits for a decision"
    );
    assert!(c.find(Locator::Id("waits")).await.is_ok());
    screenshot(&c, "waits").await;
    c.close().await.unwrap();
    agent.close().await;
}
