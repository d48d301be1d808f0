//! The engineers' command line (clap): serve the MCP server, review plans, approve or reject
//! them, open gates, read the error log, lint SQL files, set a project up. A thin adapter over
//! `engine`; approval exists only here, never as an MCP tool.
//! An adapter: it reaches databases, analysis and the store only through `engine`.

mod decide;
mod follow;
mod passphrase;
mod person;
mod remote;
mod tty;

pub use remote::RemoteRefused;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Part};
use crate::plan::analysis::Severity;

#[derive(Debug, Parser)]
#[command(
    name = "drydock",
    version,
    about = "Safe database migrations for AI agents, over MCP",
    after_help = "Exit codes: 0 done; 2 refused (the message names the unmet condition, its code and the fix; nothing changed), or `doctor` found a problem (an unreachable target, drift between the [export] folder and a target); 3 `lint` found a hazard at or above --fail-on; 1 anything unexpected. With `--format json` (every command but `serve` and `completions`) the output is one JSON document, and a refusal is printed as {\"error\": {code, message, fix}} on stdout too. A command whose output pipe closes (`| head`) ends quietly."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// drydock.toml to use (default: ./drydock.toml, else the embedded demo under ./.drydock).
    #[arg(long, global = true, env = "DRYDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// A team server (`https://review.example.com`): `plans`, `show`, `approve`, `reject` and
    /// `release` go through its API with DRYDOCK_TOKEN (default: `[server] url`).
    #[arg(long, global = true, env = "DRYDOCK_SERVER")]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio (the default for Claude Code and most clients), or the team server.
    Serve {
        /// Serve the team server on this address instead: MCP streamable HTTP at /mcp and the
        /// JSON API at /api, every request with a bearer token. Loopback only unless
        /// `[server] allow_remote = true`. Without a value: `[server] http`.
        #[arg(long, num_args = 0..=1, default_missing_value = "")]
        http: Option<String>,
    },
    /// List plans, newest first.
    Plans {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one plan for review: SQL, analysis, checklist, dry-run evidence.
    Show {
        plan_id: String,
        /// `json` prints the plan as JSON instead of markdown.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Same as `--format json` (kept for scripts written against earlier versions).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Approve a plan's exact checksum. The plan's author cannot approve it. Needs a person: at
    /// a terminal you type the plan's first 8 checksum characters; elsewhere DRYDOCK_TOKEN must
    /// hold an approver token.
    Approve {
        plan_id: String,
        /// Your name, as recorded in the audit log (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Waive a hotfix's (p0/p1) staging-tested, approving it: two distinct approvers' waivers
    /// let it apply without a dry-run. Needs a person, as `approve` does.
    Waive {
        plan_id: String,
        /// The incident: why staging cannot wait.
        #[arg(long)]
        reason: String,
        /// Your name (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Hold a plan's backfills between batches (also across a restart) until `resume`. Needs a
    /// person, as `approve` does.
    Pause {
        plan_id: String,
        /// Your name (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Let a paused plan's backfills go on (no new `apply` needed). Needs a person.
    Resume {
        plan_id: String,
        /// Your name (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reject a plan. Needs a person, as `approve` does.
    Reject {
        plan_id: String,
        /// Why the plan is rejected.
        #[arg(long)]
        reason: String,
        /// Your name (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Open a gated step of a plan. Needs a person, as `approve` does.
    Release {
        plan_id: String,
        step: String,
        /// Your name (with DRYDOCK_TOKEN: the token's, or omitted).
        #[arg(long)]
        by: Option<String>,
        /// Open an `after` gate before its window has passed (needs --reason).
        #[arg(long, requires = "reason")]
        override_window: bool,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the error log (ERRORS.md); `--format json` prints its entries as JSON.
    /// `errors sync` writes every mistake of the shared state store that ERRORS.md lacks.
    Errors {
        #[command(subcommand)]
        command: Option<ErrorsCommand>,
        #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
        format: Format,
    },
    /// drydock's own state store.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Analyse a SQL file against a target's catalog, as `plan` would.
    Lint {
        file: PathBuf,
        #[arg(long)]
        target: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit non-zero when a hazard at or above this severity is found.
        #[arg(long, value_enum, default_value_t = FailOn::High)]
        fail_on: FailOn,
        /// With each hazard, what PostgreSQL measurably does behind its rule and the section of
        /// PostgreSQL's documentation that says so.
        #[arg(long)]
        explain: bool,
    },
    /// Write drydock.toml, .mcp.json and the Claude Code agent file into a directory.
    Init {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Manage bearer tokens (agents, approvers, admins). Needs an admin: a person at a
    /// terminal who types their passphrase, or DRYDOCK_TOKEN holding an admin token.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Passphrases of the people who decide at a terminal (approve, reject, release, waive,
    /// tokens): kept as argon2id hashes, asked without echo.
    Passphrase {
        #[command(subcommand)]
        command: PassphraseCommand,
    },
    /// Where a plan stands: steps, the running step's progress, what it waits for. `--follow`
    /// draws a progress bar while an apply or backfill runs and ends when it stops.
    Status {
        plan_id: String,
        #[arg(long)]
        follow: bool,
        /// How often `--follow` reads the state (e.g. `500ms`).
        #[arg(long, default_value = "1s")]
        every: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write an applied plan's steps into the repository's migration folder as a tool's files
    /// (one migration per step, in order), recording each version in the target's history and,
    /// when the target has it, in the tool's own history table. Defaults: `[export]`.
    Export {
        plan_id: String,
        /// The tool whose layout to write: sqlx, flyway, golang-migrate or plain.
        #[arg(long, value_parser = ["sqlx", "flyway", "golang-migrate", "plain"])]
        tool: Option<String>,
        /// The migration folder (relative to the working directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print a shell completion script: `drydock completions bash > /etc/bash_completion.d/drydock`.
    Completions { shell: clap_complete::Shell },
    /// Check the configuration, the state store and every target.
    Doctor {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// On each PostgreSQL target whose agent SQL would be refused (`unsafe-role`), make the
        /// least-privilege roles (`drydock_migrator` owns the application's objects,
        /// `drydock_checker` reads them) in one transaction, print every statement run and the
        /// keys to add to drydock.toml. Needs an admin.
        #[arg(long)]
        fix: bool,
        /// Your name, when you are the admin at the terminal (with `--fix`).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// Write every mistake recorded in the state store (by any server sharing it) that
    /// ERRORS.md lacks, with its count across servers. Running it again writes nothing.
    Sync,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy the whole state (plans, approvals, runs, audit, tokens, mistakes) into another,
    /// empty store — e.g. from the local SQLite file to the PostgreSQL store a team shares —
    /// then point `[state] url` at it. Refused while an apply or rollback runs.
    Migrate {
        /// `postgres://...`, `env:VAR` (keeps the secret out of the process list) or
        /// `sqlite:PATH`.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for a principal and print it once (the store keeps only its hash).
    Create {
        /// The principal's name (as the audit log and approvals will show it).
        #[arg(long)]
        name: String,
        /// `agent` proposes and applies approved plans; `approver` also decides; `admin` also
        /// manages tokens.
        #[arg(long)]
        role: crate::identity::Grant,
        /// Lifetime, e.g. `90d` (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        /// Your name, when you are the person at the terminal.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List tokens: principal, role, created, expiry, revoked (never a secret).
    List {
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Revoke every live token of a principal, effective at once.
    Revoke {
        name: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum PassphraseCommand {
    /// Set NAME's passphrase (typed by NAME, twice, without echo). An admin sets it up; with no
    /// admin yet, only the first admin's own (`--role admin`).
    Set {
        name: String,
        /// `approver` decides on plans; `admin` also manages tokens and passphrases.
        #[arg(long)]
        role: crate::identity::Grant,
        /// The admin setting it up, when a person at the terminal.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Critical,
    Never,
}

impl FailOn {
    fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Low => Some(Severity::Low),
            FailOn::Medium => Some(Severity::Medium),
            FailOn::High => Some(Severity::High),
            FailOn::Critical => Some(Severity::Critical),
            FailOn::Never => None,
        }
    }
}

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

impl Command {
    /// The output format the command was asked for (how `main` prints a refusal too).
    pub fn format(&self) -> Format {
        match self {
            Command::Plans { format }
            | Command::Approve { format, .. }
            | Command::Waive { format, .. }
            | Command::Pause { format, .. }
            | Command::Resume { format, .. }
            | Command::Reject { format, .. }
            | Command::Release { format, .. }
            | Command::Errors { format, .. }
            | Command::Lint { format, .. }
            | Command::Init { format, .. }
            | Command::Status { format, .. }
            | Command::Doctor { format, .. }
            | Command::State {
                command: StateCommand::Migrate { format, .. },
            }
            | Command::Token {
                command:
                    TokenCommand::Create { format, .. }
                    | TokenCommand::List { format, .. }
                    | TokenCommand::Revoke { format, .. },
            }
            | Command::Passphrase {
                command: PassphraseCommand::Set { format, .. },
            } => *format,
            Command::Show { format, json, .. } => {
                if *json {
                    Format::Json
                } else {
                    *format
                }
            }
            Command::Export { format, .. } => *format,
            Command::Serve { .. } | Command::Completions { .. } => Format::Text,
        }
    }
}

/// Prints `text()`, or `json()` as one line when the command was asked for JSON.
pub(crate) fn emit(
    format: Format,
    text: impl FnOnce() -> String,
    json: impl FnOnce() -> serde_json::Value,
) {
    match format {
        Format::Text => println!("{}", text()),
        Format::Json => println!("{}", json()),
    }
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
            format,
            fail_on,
            explain,
        } => return lint(&engine, &file, &target, format, fail_on, explain).await,
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
async fn lint(
    engine: &Engine,
    file: &Path,
    target: &str,
    format: Format,
    fail_on: FailOn,
    explain: bool,
) -> anyhow::Result<i32> {
    let sql =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let analysis = engine.lint(target, &name, sql).await.map_err(refused)?;
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
                println!(
                    "{:?} {} on {}: {}\n  statement: {}\n  fix: {}",
                    h.severity,
                    h.code,
                    h.table.as_deref().unwrap_or("-"),
                    h.message,
                    h.statement,
                    h.fix
                );
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

async fn doctor(engine: &Engine, format: Format) -> anyhow::Result<i32> {
    let c = &engine.config;
    let config = c
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded demo (no drydock.toml)".into());
    let targets = engine.target_health().await;
    // Redacted: a PostgreSQL store shows as postgres://[redacted] or env:VAR.
    let state = match &c.state.url {
        None => format!("sqlite:{}", c.state_dir.join("state.db").display()),
        Some(url) => url.to_string(),
    };
    let groups: Vec<serde_json::Value> = c
        .groups
        .values()
        .map(|g| match &g.problem {
            None => serde_json::json!({"group": g.name, "ok": true, "members": g.members.len(),
                                       "wave_ends": g.wave_ends(), "parallel": g.parallel}),
            Some(p) => serde_json::json!({"group": g.name, "ok": false, "problem": p}),
        })
        .collect();
    let drift = engine.drift().await;
    let drift_json: Vec<serde_json::Value> = drift
        .iter()
        .map(|(target, d)| match d {
            Ok(d) => serde_json::json!({"target": target, "ok": d.is_empty(), "drift": d}),
            Err(e) => serde_json::json!({"target": target, "ok": false, "error": crate::redact::redact(&e.to_string())}),
        })
        .collect();
    let failures = targets.iter().filter(|t| !t.ok).count()
        + c.groups.values().filter(|g| g.problem.is_some()).count()
        + drift
            .iter()
            .filter(|(_, d)| !d.as_ref().is_ok_and(|d| d.is_empty()))
            .count();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "config": config,
                "state_store": state,
                "state_backend": engine.store.backend(),
                "error_log": c.errors_path,
                "targets": targets,
                "groups": groups,
                "export": c.export.as_ref().map(|e| serde_json::json!({"dir": e.dir, "format": e.format})),
                "repository": drift_json,
                "ok": failures == 0,
            })
        ),
        Format::Text => {
            println!("config: {config}");
            println!(
                "state store: {state} ({}, ok)",
                engine.store.backend().as_str()
            );
            println!("error log: {}", c.errors_path.display());
            if let Some(e) = &c.export {
                println!("migration folder: {} ({})", e.dir.display(), e.format);
            }
            for (target, d) in &drift {
                match d {
                    Ok(d) if d.is_empty() => {
                        println!("repository: target {target} and the folder agree")
                    }
                    Ok(d) => println!("repository: DRIFT on target {target}: {}", d.summary()),
                    Err(e) => println!(
                        "repository: cannot compare target {target} with the folder: {}",
                        crate::redact::redact(&e.to_string())
                    ),
                }
            }
            for g in c.groups.values() {
                match &g.problem {
                    None => println!(
                        "group {}: {} member(s), waves ending at {:?}, parallel {}",
                        g.name,
                        g.members.len(),
                        g.wave_ends(),
                        g.parallel
                    ),
                    Some(p) => println!("group {}: cannot be used: {p}", g.name),
                }
            }
            for t in &targets {
                match (&t.error, t.tables) {
                    (None, Some(n)) => {
                        println!(
                            "target {} ({}, {}): ok, {n} table(s)",
                            t.name, t.role, t.url
                        )
                    }
                    (e, _) => println!(
                        "target {} ({}): {}",
                        t.name,
                        t.role,
                        e.as_deref().unwrap_or("unreachable")
                    ),
                }
                for w in &t.warnings {
                    println!("  warning: {w}");
                }
                for m in &t.migration_tools {
                    println!(
                        "  migration tool {} ({}): at {}, {} version(s){}",
                        m.tool,
                        m.table,
                        m.latest_version.as_deref().unwrap_or("nothing applied"),
                        m.applied,
                        if m.failed.is_empty() {
                            String::new()
                        } else {
                            format!(", FAILED: {}", m.failed.join(", "))
                        }
                    );
                }
            }
        }
    }
    Ok(if failures > 0 { 2 } else { 0 })
}

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

fn init(dir: &Path) -> anyhow::Result<Vec<String>> {
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

/// `drydock token create|list|revoke`.
async fn token(engine: &Engine, command: TokenCommand) -> anyhow::Result<()> {
    use crate::identity::Grant;
    use person::Confirm;
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
            by,
            format,
        } => {
            let expires = expires
                .map(|e| humantime::parse_duration(&e))
                .transpose()
                .map_err(|e| refused(Error::invalid(Part::Argument, format!("--expires: {e}"))))?;
            let confirm = Confirm::Type {
                what: format!("the principal's name (`{name}`)"),
                expected: name.trim().to_string(),
            };
            let who = person::person(engine, by.as_deref(), Grant::Admin, "token create", confirm)
                .await
                .map_err(refused)?;
            let made = engine
                .create_token(&who, &name, role, expires)
                .await
                .map_err(refused)?;
            eprintln!(
                "token for `{}` ({}){}: shown once, keep it secret",
                made.name,
                made.role,
                made.expires_at
                    .as_ref()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            emit(
                format,
                || made.token.clone(),
                || serde_json::json!({"name": made.name, "role": made.role, "expires_at": made.expires_at, "token": made.token}),
            );
        }
        TokenCommand::List { by, format } => {
            let who = person::person(
                engine,
                by.as_deref(),
                Grant::Admin,
                "token list",
                Confirm::Nothing,
            )
            .await
            .map_err(refused)?;
            let tokens = engine.tokens(&who).await.map_err(refused)?;
            if let Format::Json = format {
                println!("{}", serde_json::json!({ "tokens": tokens }));
                return Ok(());
            }
            for t in tokens {
                println!(
                    "{:<20} {:<8} created {} by {}{}{}",
                    t.name,
                    t.role,
                    t.created_at,
                    t.created_by,
                    t.expires_at
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default(),
                    t.revoked_at
                        .map(|r| format!(", REVOKED {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { name, by, format } => {
            let confirm = Confirm::Type {
                what: format!("the principal's name (`{name}`)"),
                expected: name.trim().to_string(),
            };
            let who = person::person(engine, by.as_deref(), Grant::Admin, "token revoke", confirm)
                .await
                .map_err(refused)?;
            let n = engine.revoke_tokens(&who, &name).await.map_err(refused)?;
            emit(
                format,
                || format!("revoked {n} token(s) of `{name}`"),
                || serde_json::json!({"name": name, "revoked": n}),
            );
        }
    }
    Ok(())
}
