//! The command line's shape (clap): the commands, their options and output formats.

use super::*;

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
    /// Print the steps that take a target to a desired schema (`CREATE TABLE`, `CREATE INDEX`,
    /// `ALTER TABLE … ADD CONSTRAINT` as you want the tables), with their hazards; no plan is
    /// stored. The same steps `plan` with `desired` would store.
    Diff {
        /// The desired schema's file.
        #[arg(long)]
        desired: PathBuf,
        /// The target to compare with (default: the only one configured).
        #[arg(long)]
        target: Option<String>,
        /// A column renamed, `table.old=new` (repeatable); without it, a column gone and one
        /// added is refused as ambiguous.
        #[arg(long = "rename", value_name = "TABLE.OLD=NEW")]
        renames: Vec<String>,
        /// Data may be lost: columns (and with `--scope schema`, tables) missing from the file
        /// are dropped.
        #[arg(long)]
        allow_drop: bool,
        /// Compare every table of the target, not only those the file names.
        #[arg(long)]
        whole_schema: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Analyse a SQL file against a target's catalog, as `plan` would (with `--desired`, the
    /// steps that take the target to the schema in the file).
    Lint {
        file: PathBuf,
        #[arg(long)]
        target: String,
        /// FILE is a desired schema: analyse the steps drydock plans from it.
        #[arg(long)]
        desired: bool,
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
    pub(super) fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Low => Some(Severity::Low),
            FailOn::Medium => Some(Severity::Medium),
            FailOn::High => Some(Severity::High),
            FailOn::Critical => Some(Severity::Critical),
            FailOn::Never => None,
        }
    }
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
            | Command::Diff { format, .. }
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
