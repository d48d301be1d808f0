//! The engineers' command line (clap): serve the MCP server, review plans, approve or reject
//! them, open gates, read the error log, lint SQL files, set a project up. A thin adapter over
//! `engine`; approval exists only here, never as an MCP tool.
//! An adapter: it reaches databases, analysis and the store only through `engine`.

mod args;
mod decide;
mod doctor;
mod follow;
mod init;
mod passphrase;
mod person;
mod remote;
mod token;
mod tty;

pub use args::*;
use doctor::doctor;
use init::init;
use token::token;

pub use remote::RemoteRefused;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Part};
use crate::plan::analysis::Severity;

/// A domain refusal on the command line: printed as `error[code]: message` + `fix:`, exit 2.
#[derive(Debug)]
pub struct Refused(pub Error);

impl Refused {
    /// The refusal as the engineer reads it: redacted, with this CLI's fix.
    pub fn refusal(&self) -> crate::error::Refusal {
        crate::error::Refusal {
            message: crate::redact::redact(&self.0.to_string()),
            fix: engineer_fix(&self.0),
            ..self.0.to_refusal()
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.refusal())
    }
}

/// The fix as an engineer at the command line acts on it: commands of this CLI, not the MCP
/// tools an agent calls.
fn engineer_fix(e: &Error) -> String {
    match e {
        Error::UnknownPlan(_) => "run `drydock plans` to list plans".into(),
        Error::WrongStatus { plan, .. } => {
            format!("run `drydock show {plan}` to see where the plan is and what it waits for")
        }
        Error::ChecklistUnmet { plan, .. } => {
            format!("run `drydock show {plan}` for the unmet checklist items and their evidence")
        }
        Error::UnknownTarget(_) => {
            "use a target named in drydock.toml; `drydock doctor` lists them".into()
        }
        Error::Invalid { .. } => {
            "correct the argument named above and run the command again".into()
        }
        other => other.fix(),
    }
}

impl std::error::Error for Refused {}

pub(crate) fn refused(e: Error) -> anyhow::Error {
    Refused(e).into()
}

/// Runs a command; the exit code is 0, or what `main` derives from the error.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Init { dir, format } = &cli.command {
        let mut done = init(dir)?;
        // The first admin, typed by the person running init at a terminal.
        let config = Config::load(&dir.join("drydock.toml")).map_err(refused)?;
        let engine = Engine::open(config).await.map_err(refused)?;
        done.push(passphrase::first_admin(&engine).await.map_err(refused)?);
        emit(
            *format,
            || done.join("\n"),
            || serde_json::json!({"dir": dir, "done": done}),
        );
        return Ok(0);
    }
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "drydock", &mut std::io::stdout());
        return Ok(0);
    }
    let config = match Config::discover(cli.global.config.as_deref()).map_err(refused)? {
        Some(config) => config,
        // Nothing configured: the embedded SQLite demo pair under `./.drydock/`, which only
        // `serve` creates; another command uses it when it is there, and says so.
        None => {
            let demo = std::env::current_dir()?.join(".drydock");
            let serving = matches!(cli.command, Command::Serve { .. });
            if !serving && cli.global.server.is_none() {
                if !crate::demo::exists(&demo) {
                    return Err(refused(Error::Config(
                        "no drydock.toml in this folder (nor --config, nor DRYDOCK_CONFIG): nothing to work on; run `drydock init` here to write one, or `drydock serve` to try the embedded demo (it creates ./.drydock)".into(),
                    )));
                }
                eprintln!(
                    "drydock: no drydock.toml in this folder; using the embedded demo in {}",
                    demo.display()
                );
            }
            crate::demo::config(&demo).map_err(refused)?
        }
    };
    if let Some(url) = cli.global.server.clone().or(config.server.url.clone())
        && remote::handles(&cli.command)
    {
        return remote::run(&url, cli.command).await;
    }
    if config.source.is_none() {
        // The demo's databases, created with sample data on first use.
        crate::demo::ensure(&config.state_dir)
            .await
            .map_err(refused)?;
    }
    let engine = Arc::new(Engine::open(config).await.map_err(refused)?);
    match cli.command {
        Command::Serve { http } => {
            if let Some(addr) = http {
                let addr = match addr.trim() {
                    "" => engine.config.server.http.clone().ok_or_else(|| {
                        refused(Error::Config(
                            "`serve --http` needs an address, or `[server] http` in drydock.toml"
                                .into(),
                        ))
                    })?,
                    a => a.to_string(),
                };
                let listen = crate::web::Listen::new(&addr, &engine).map_err(refused)?;
                crate::web::serve(engine, listen).await?;
                return Ok(0);
            }
            tracing::info!(targets = engine.config.targets.len(), state = %engine.config.state_dir.display(), "drydock serving MCP on stdio");
            // Said once, whatever the log filter: which of the two setups this is.
            eprintln!(
                "drydock (local mode, stdio): decisions need a person's passphrase at a terminal or an approver token; an agent running as this OS user could still edit drydock's own files ({}). For a boundary no agent crosses, run the team server as its own OS user and give the agent only an agent token (README: threat model).",
                engine.config.state_dir.display()
            );
            crate::mcp::serve_stdio(engine).await?;
        }
        Command::Plans { format } => plans(&engine, format).await?,
        Command::Show {
            plan_id,
            format,
            json,
        } => {
            let format = if json { Format::Json } else { format };
            return follow::status(&engine, &plan_id, false, Default::default(), format).await;
        }
        c @ (Command::Approve { .. }
        | Command::Reject { .. }
        | Command::Waive { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Release { .. }) => decide::decide(&engine, c).await?,
        Command::Errors {
            command: Some(ErrorsCommand::Sync),
            format,
        } => {
            let written = engine.sync_errors().await.map_err(refused)?;
            match format {
                Format::Text => println!(
                    "{written} entr{} written to {}",
                    if written == 1 { "y" } else { "ies" },
                    engine.errors.path().display()
                ),
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"written": written, "path": engine.errors.path()})
                ),
            }
        }
        Command::State {
            command: StateCommand::Migrate { to, format },
        } => {
            let copied = engine.migrate_state(&to).await.map_err(refused)?;
            emit(
                format,
                || serde_json::to_string_pretty(&copied).unwrap_or_default(),
                || serde_json::json!(copied),
            );
        }
        Command::Status {
            plan_id,
            follow,
            every,
            format,
        } => {
            let every = humantime::parse_duration(&every)
                .map_err(|e| refused(Error::invalid(Part::Argument, format!("--every: {e}"))))?;
            return follow::status(&engine, &plan_id, follow, every, format).await;
        }
        Command::Export {
            plan_id,
            tool,
            dir,
            format,
        } => {
            let to = match (tool, dir) {
                (None, None) => None,
                (tool, dir) => {
                    let from_config = engine.config.export.clone();
                    let tool = match tool {
                        Some(f) => crate::config::ExportFormat::parse(&f).map_err(refused)?,
                        None => from_config.as_ref().map(|e| e.format).ok_or_else(|| {
                            refused(Error::invalid(
                                Part::Argument,
                                "`--tool` is needed (no `[export] format` in drydock.toml)",
                            ))
                        })?,
                    };
                    let dir = match dir {
                        Some(d) => std::path::absolute(d)?,
                        None => from_config.map(|e| e.dir).ok_or_else(|| {
                            refused(Error::invalid(
                                Part::Argument,
                                "`--dir` is needed (no `[export] dir` in drydock.toml)",
                            ))
                        })?,
                    };
                    Some(crate::config::ExportConfig { dir, format: tool })
                }
            };
            let who = crate::identity::Principal::person(
                &crate::identity::os_user().unwrap_or_else(|| "engineer".into()),
                crate::identity::Grant::Agent,
            );
            let r = engine.export(&plan_id, to, &who).await.map_err(refused)?;
            emit(
                format,
                || {
                    let mut lines = vec![format!(
                        "exported {} as {} migrations into {}: {} written, {} unchanged",
                        r.plan_id,
                        r.format,
                        r.dir,
                        r.written.len(),
                        r.unchanged.len()
                    )];
                    lines.extend(r.written.iter().map(|f| format!("  wrote {f}")));
                    lines.extend(
                        r.versions
                            .iter()
                            .map(|v| format!("  step `{}`: version {}", v.step, v.version)),
                    );
                    if let Some(t) = &r.recorded_in {
                        lines.push(format!("  recorded as applied in {t}"));
                    }
                    lines.extend(r.warnings.iter().map(|w| format!("  warning: {w}")));
                    lines.join("\n")
                },
                || serde_json::json!(r),
            );
        }
        Command::Errors {
            command: None,
            format,
        } => match format {
            Format::Text => print!("{}", engine.errors.read().map_err(refused)?),
            Format::Json => println!(
                "{}",
                serde_json::json!({ "path": engine.errors.path(), "lessons": engine.errors.lessons().map_err(refused)? })
            ),
        },
        Command::Lint {
            file,
            target,
            desired,
            format,
            fail_on,
            explain,
        } => {
            let how = Lint {
                format,
                fail_on,
                explain,
                desired,
            };
            return lint(&engine, &file, &target, how).await;
        }
        Command::Diff {
            desired,
            target,
            renames,
            allow_drop,
            whole_schema,
            format,
        } => {
            let asked = DiffArgs {
                renames,
                allow_drop,
                whole_schema,
            };
            diff(&engine, &desired, target, asked, format).await?
        }
        Command::Doctor {
            format,
            fix: true,
            by,
        } => fix_roles(&engine, format, by.as_deref()).await?,
        Command::Doctor { format, .. } => return doctor(&engine, format).await,
        Command::Token { command } => token(&engine, command).await?,
        Command::Passphrase {
            command:
                PassphraseCommand::Set {
                    name,
                    role,
                    by,
                    format,
                },
        } => {
            passphrase::set(&engine, &name, role, by.as_deref())
                .await
                .map_err(refused)?;
            emit(
                format,
                || format!("set the passphrase of `{name}` ({role})"),
                || serde_json::json!({"name": name, "role": role}),
            );
        }
        Command::Init { .. } | Command::Completions { .. } => unreachable!("handled above"),
    }
    Ok(0)
}

/// `drydock plans`: one line per plan, or JSON.
async fn plans(engine: &Engine, format: Format) -> anyhow::Result<()> {
    let plans = engine.list().await.map_err(refused)?;
    if let Format::Json = format {
        println!("{}", serde_json::json!({ "plans": plans }));
        return Ok(());
    }
    if plans.is_empty() {
        println!("no plans yet");
    }
    for p in plans {
        println!(
            "{}  {:<11}  {:<12}  {}  ({} at {})",
            p.plan_id,
            p.status.as_str(),
            p.target,
            p.goal,
            p.author,
            p.created_at
        );
    }
    Ok(())
}

/// `drydock lint FILE`: the plan's analysis (hazards, with their explanations on request)
/// without saving a plan.
/// How `lint` reads its file and says what it found.
struct Lint {
    format: Format,
    fail_on: FailOn,
    explain: bool,
    /// The file is a desired schema.
    desired: bool,
}

async fn lint(engine: &Engine, file: &Path, target: &str, how: Lint) -> anyhow::Result<i32> {
    let Lint {
        format,
        fail_on,
        explain,
        desired,
    } = how;
    let sql =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let analysis = if desired {
        let d = crate::plan::Desired {
            sql,
            ..Default::default()
        };
        match engine.diff_desired(target, &d).await.map_err(refused)? {
            Some(diff) => diff.analysis,
            None => {
                match format {
                    Format::Json => println!(
                        "{}",
                        serde_json::json!({"hazards": [], "nothing_to_change": true})
                    ),
                    Format::Text => {
                        println!("`{target}` already has the desired schema: nothing to lint")
                    }
                }
                return Ok(0);
            }
        }
    } else {
        engine.lint(target, &name, sql).await.map_err(refused)?
    };
    let explained = |h: &crate::plan::analysis::Hazard| explain.then(|| Engine::explain(h.code));
    match format {
        Format::Json => {
            let hazards: Vec<serde_json::Value> = analysis
                .hazards
                .iter()
                .map(|h| {
                    let mut v = serde_json::to_value(h).unwrap_or_default();
                    if let Some(e) = explained(h) {
                        v["explain"] = serde_json::json!(e);
                    }
                    v
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"hazards": hazards, "risk": analysis.risk, "statements": analysis.statements})
            )
        }
        Format::Text => {
            if analysis.hazards.is_empty() {
                println!(
                    "no hazards found in {} statement(s)",
                    analysis.statements.len()
                );
            }
            for h in &analysis.hazards {
                print_hazard(h);
                if let Some(e) = explained(h) {
                    println!("  measured: {}\n  docs: {}", e.measured, e.docs);
                }
            }
        }
    }
    let failing = fail_on
        .threshold()
        .is_some_and(|t| analysis.hazards.iter().any(|h| h.severity >= t));
    Ok(if failing { 3 } else { 0 })
}

/// `drydock doctor --fix`: the least-privilege roles, made by an admin.
async fn fix_roles(engine: &Engine, format: Format, by: Option<&str>) -> anyhow::Result<()> {
    let who = person::person(
        engine,
        by,
        crate::identity::Grant::Admin,
        "doctor --fix",
        person::Confirm::Nothing,
    )
    .await
    .map_err(refused)?;
    let fixes = engine.fix_roles(&who).await.map_err(refused)?;
    emit(
        format,
        || {
            if fixes.is_empty() {
                return "every PostgreSQL target already runs agent SQL as a least-privilege role"
                    .into();
            }
            let mut text = String::new();
            for f in &fixes {
                text.push_str(&format!(
                    "-- target `{}`: ran in one transaction
",
                    f.target
                ));
                for s in &f.setup.statements {
                    text.push_str(&format!(
                        "{s};
"
                    ));
                }
            }
            text.push_str("\nadd to drydock.toml:\n");
            for f in &fixes {
                text.push_str(&format!("{}\n", f.config));
            }
            text
        },
        || serde_json::json!({ "fixed": fixes }),
    );
    Ok(())
}

/// A hazard as `lint` and `diff` print it.
fn print_hazard(h: &crate::plan::analysis::Hazard) {
    println!(
        "{:?} {} on {}: {}\n  statement: {}\n  fix: {}",
        h.severity,
        h.code,
        h.table.as_deref().unwrap_or("-"),
        h.message,
        h.statement,
        h.fix
    );
}

/// What `diff` was told beside the file.
struct DiffArgs {
    renames: Vec<String>,
    allow_drop: bool,
    whole_schema: bool,
}

/// `drydock diff --desired FILE`: the steps that take the target there, stored nowhere.
async fn diff(
    engine: &Engine,
    file: &Path,
    target: Option<String>,
    asked: DiffArgs,
    format: Format,
) -> anyhow::Result<()> {
    let sql =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let target = match target {
        Some(t) => t,
        None => {
            let names: Vec<&String> = engine.config.targets.keys().collect();
            match names.as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(refused(crate::error::Error::invalid(
                        crate::error::Part::Argument,
                        format!(
                            "say which target to compare with: --target (one of {})",
                            names
                                .iter()
                                .map(|n| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )));
                }
            }
        }
    };
    let mut renames = std::collections::BTreeMap::new();
    for r in &asked.renames {
        let Some((from, to)) = r.split_once('=') else {
            return Err(refused(crate::error::Error::invalid(
                crate::error::Part::Argument,
                format!("--rename {r:?}: write it as table.old=new"),
            )));
        };
        renames.insert(from.trim().to_string(), to.trim().to_string());
    }
    let d = crate::plan::Desired {
        sql,
        renames,
        allow_drop: asked.allow_drop,
        whole_schema: asked.whole_schema,
    };
    let found = engine.diff_desired(&target, &d).await.map_err(refused)?;
    match (format, found) {
        (Format::Json, None) => println!("{}", serde_json::json!({"nothing_to_change": true})),
        (Format::Json, Some(diff)) => println!("{}", serde_json::to_string(&diff)?),
        (Format::Text, None) => {
            println!("`{target}` already has the desired schema: nothing to change")
        }
        (Format::Text, Some(diff)) => {
            for s in &diff.steps {
                let gate = s
                    .gate
                    .as_ref()
                    .map(|g| format!(" (gate: {})", crate::engine::gate_text(g)))
                    .unwrap_or_default();
                println!("-- step {}{gate}", s.name);
                println!("-- up\n{}", s.up.as_deref().unwrap_or(""));
                println!("-- down\n{}\n", s.down.as_deref().unwrap_or(""));
            }
            diff.hazards.iter().for_each(print_hazard);
        }
    }
    Ok(())
}
