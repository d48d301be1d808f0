//! The engineer's command line, used the way a hurried engineer uses it: errors that name CLI
//! commands (never an agent's tool), gates shown with the exact command that opens them, a
//! warning when approving a plan whose dry-run failed, one `--format json` spelling for every
//! listing, identities that are never empty, and an `init` that joins an existing `.mcp.json`.

mod common;

use common::{Project, plan_id};
use serde_json::{Value, json};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn errors_speak_to_an_engineer() {
    let p = Project::new().await;
    let out = p.cli(&["show", "pl-nope"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("drydock plans"), "{err}");
    assert!(!err.contains("call `status`"), "{err}");
}

#[tokio::test]
async fn gates_show_their_command_and_releases_never_say_approve() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p
        .ready(
            &c,
            json!({"goal": "expand then contract", "target": "production",
                   "steps": [
                       {"name": "expand", "up": "ALTER TABLE users ADD COLUMN nickname TEXT", "down": "ALTER TABLE users DROP COLUMN nickname"},
                       {"name": "index", "up": "CREATE INDEX users_nickname ON users (nickname)", "down": "DROP INDEX users_nickname", "gate": {"kind": "manual"}}
                   ]}),
        )
        .await;
    c.ok("apply", json!({"plan_id": id})).await;
    // Following a gated plan ends at once: nothing runs until a person releases the gate.
    let t0 = std::time::Instant::now();
    let followed = stdout(&p.cli(&["status", &id, "--follow", "--every", "200ms"]));
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "--follow waited on a gated plan"
    );
    assert!(
        followed.contains("(1 of 2 step(s) applied); next: "),
        "{followed}"
    );
    let shown = stdout(&p.cli(&["show", &id]));
    assert!(
        shown.contains(&format!("drydock release {id} index --by NAME")),
        "{shown}"
    );
    assert!(!shown.contains("{\"kind\""), "gates read as words: {shown}");

    let empty = p.cli(&["release", &id, "index", "--by", "  "]);
    assert!(!empty.status.success());
    assert!(
        stderr(&empty).contains("needs-a-person"),
        "a script naming nobody is not a person: {}",
        stderr(&empty)
    );

    // The author over stdio is no principal: its name can hold no token, so it decides nothing.
    let own = p.cli(&[
        "release",
        &id,
        "index",
        "--by",
        &format!("{} (stdio)", common::AGENT_NAME),
    ]);
    assert!(!own.status.success());
    let err = stderr(&own);
    assert!(err.contains("needs-a-person"), "{err}");
    c.close().await;
}

#[tokio::test]
async fn approving_a_plan_whose_dry_run_failed_warns() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "a typo", "target": "production",
                   "steps": [{"up": "ALTER TABLE usrs ADD COLUMN tier TEXT", "down": "ALTER TABLE usrs DROP COLUMN tier"}]}),
        )
        .await,
    );
    c.refused("dry-run", json!({"plan_id": id})).await;
    let out = p.cli(&["approve", &id, "--by", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: the last dry-run"),
        "{}",
        stderr(&out)
    );
    c.close().await;
}

#[tokio::test]
async fn every_listing_speaks_json() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = plan_id(&c.ok("plan", common::add_column_plan()).await);
    c.refused("apply", json!({"plan_id": id})).await;
    let plans: Value = serde_json::from_str(&stdout(&p.cli(&["plans", "--format", "json"])))
        .expect("plans --format json");
    assert_eq!(plans["plans"][0]["plan_id"], id.as_str());
    let errors: Value = serde_json::from_str(&stdout(&p.cli(&["errors", "--format", "json"])))
        .expect("errors --format json");
    assert_eq!(errors["lessons"][0]["code"], "checklist-unmet");
    let doctor: Value = serde_json::from_str(&stdout(&p.cli(&["doctor", "--format", "json"])))
        .expect("doctor --format json");
    assert_eq!(doctor["ok"], true, "{doctor}");
    let show: Value = serde_json::from_str(&stdout(&p.cli(&["show", &id, "--format", "json"])))
        .expect("show --format json");
    assert_eq!(show["plan_id"], id.as_str());
    c.close().await;
}

#[tokio::test]
async fn init_joins_an_existing_mcp_json_and_passes_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".mcp.json"),
        r#"{"mcpServers": {"github": {"command": "gh-mcp"}}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mcp: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".mcp.json")).unwrap())
            .unwrap();
    assert_eq!(
        mcp["mcpServers"]["github"]["command"], "gh-mcp",
        "the existing server stays"
    );
    let drydock = &mcp["mcpServers"]["drydock"];
    assert_eq!(drydock["args"][0], "serve");
    assert_eq!(drydock["env"]["DATABASE_URL"], "${DATABASE_URL}", "{mcp}");
    assert_eq!(
        drydock["env"]["STAGING_DATABASE_URL"],
        "${STAGING_DATABASE_URL}"
    );
    // Running it again changes nothing.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(stdout(&again).contains("kept the `drydock` server"));
}

#[tokio::test]
async fn a_failing_template_is_not_logged_as_the_agents_lesson() {
    let p = Project::new().await;
    let c = p.connect().await;
    // `add-column` of a column staging already has: the template's own SQL fails in the dry-run.
    let id = plan_id(
        &c.ok(
            "plan",
            json!({"goal": "a name", "target": "production", "template": "add-column",
                   "params": {"table": "users", "column": "name", "type": "text"}}),
        )
        .await,
    );
    let refused = c.refused("dry-run", json!({"plan_id": id})).await;
    assert_eq!(refused["code"], "sql-failed", "{refused}");
    // In ERRORS.md as drydock's own defect, in its section, after the agent's mistakes.
    let log = p.errors_md();
    let (mistakes, defects) = log
        .split_once("# drydock's own defects")
        .unwrap_or_else(|| panic!("no defects section: {log}"));
    assert!(!mistakes.contains("sql-failed"), "{log}");
    assert!(defects.contains("template `add-column`"), "{log}");
    assert!(defects.contains("- **agent:** drydock"), "{log}");
    // An agent's mistake after it goes before the section; neither is a lesson for agents.
    c.refused("apply", json!({"plan_id": id})).await;
    let log = p.errors_md();
    let (mistakes, defects) = log.split_once("# drydock's own defects").unwrap();
    assert!(mistakes.contains("checklist-unmet"), "{log}");
    assert!(!defects.contains("checklist-unmet"), "{log}");
    let next = c
        .ok(
            "plan",
            json!({"goal": "a name", "target": "production", "template": "add-column",
                   "params": {"table": "users", "column": "name", "type": "text"}}),
        )
        .await;
    assert!(
        !next["lessons"].to_string().contains("sql-failed"),
        "{}",
        next["lessons"]
    );
    c.close().await;
}

/// A command piped into `head` ends quietly when `head` has read enough: no panic, no
/// "Broken pipe" backtrace, and the part `head` printed is the command's own output.
#[tokio::test]
async fn a_closed_pipe_ends_a_command_quietly() {
    let p = Project::new().await;
    let sql: String = (0..400)
        .map(|i| format!("ALTER TABLE users RENAME COLUMN name TO name_{i};\n"))
        .collect();
    std::fs::write(p.path("many.sql"), sql).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --config '{}' lint '{}' --target production | head -c 200",
            env!("CARGO_BIN_EXE_drydock"),
            p.config_path.display(),
            p.path("many.sql").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("breaking-change"), "{stdout}");
}

/// The README's first command, `./drydock serve`, on a machine without libclang (the one
/// system library the build needs): it installs it where it can, and where it cannot it says
/// exactly what to install and stops before a long failing build. Found, it says nothing.
#[test]
fn the_first_command_explains_a_missing_libclang() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("drydock"))
        .arg("serve")
        .env("DRYDOCK_INSTALL", "never")
        .env("DRYDOCK_LIBCLANG_GLOBS", "/nonexistent/libclang*.so*")
        .env_remove("LIBCLANG_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs libclang") && stderr.contains("sudo apt-get install libclang-dev"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Compiling"),
        "it stops before building: {stderr}"
    );
    // Where libclang is (this machine: .ci/run found or installed it the same way), nothing is said.
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(". .ci/prerequisites && need_libclang && echo found")
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "found");
    assert!(
        found.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
}

/// `--help` says what each exit code means, so that scripts can branch on them.
#[test]
fn help_documents_the_exit_codes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit codes: 0 done; 2 refused") && help.contains("3 `lint`"),
        "{help}"
    );
}

#[tokio::test]
async fn a_folder_without_drydock_toml_is_not_given_a_demo_nobody_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("DRYDOCK_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["show", "pl-0123456789"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no drydock.toml in this folder"), "{err}");
    assert!(err.contains("drydock init"), "{err}");
    assert!(!err.contains("unknown plan"), "{err}");
    assert!(!dir.path().join(".drydock").exists(), "no demo was created");
    // `serve` creates the demo (stdin closed: it starts and ends); then other commands use it,
    // saying so.
    assert!(run(&["serve"]).status.success());
    assert!(dir.path().join(".drydock/demo-production.db").exists());
    let out = run(&["plans"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using the embedded demo"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn following_an_approved_plan_waits_for_its_apply() {
    let p = Project::new().await;
    let c = p.connect().await;
    let id = p.ready(&c, common::add_column_plan()).await;
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--config")
        .arg(&p.config_path)
        .args([
            "status", &id, "--follow", "--every", "100ms", "--format", "json",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow ended before the apply started"
    );
    let applied = c.ok("apply", json!({"plan_id": id})).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    let out = tokio::task::spawn_blocking(move || follow.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let last: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "applied", "{last}");
    c.close().await;
}
