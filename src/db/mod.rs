//! The databases drydock changes (named `db`, not `target`, so that tools which skip cargo's
//! `target/` folders do not skip it). Each engine adapter (`sqlite`, `postgres`) offers the same
//! operations: introspect, fingerprint the schema, execute a step in a transaction with its
//! history row, run checks read-only, and take a verified backup. The engine module composes them.
//! Imports only `plan`, `config` and the leaves.

pub mod describe;
pub mod marks;
pub mod postgres;
pub use postgres::RoleSetup;
pub mod sqlite;
mod tools;

pub use tools::{MigrationTool, ToolEntry, flyway_checksum, sqlx_checksum};

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Config, TargetConfig, TargetUrl};
use crate::error::{Error, Part, Result};
pub use crate::plan::evidence::{
    AppProbe, BackupEvidence, LockObservation, ProbeOutcome, StatementRun,
};

/// What the analysis reads from a target's catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub engine: crate::sql::Dialect,
    pub tables: BTreeMap<String, TableInfo>,
    /// `table.column` proven NOT NULL by a validated `CHECK (column IS NOT NULL)`.
    pub proven_not_null: std::collections::BTreeSet<String>,
    /// Names of volatile functions (`pg_proc.provolatile = 'v'`).
    pub volatile_functions: std::collections::BTreeSet<String>,
    /// `table.column` → the views whose definition uses that column.
    pub column_views: BTreeMap<String, Vec<String>>,
    /// A partitioned table → its partitions (whose rows its own `rows` sums).
    pub partitions: BTreeMap<String, Vec<String>>,
    /// The application's schemas (PostgreSQL; empty when not read).
    pub schemas: std::collections::BTreeSet<String>,
    /// Every type name the database knows (`pg_type.typname`: built-in, enums, domains, ...);
    /// empty when not read.
    pub types: std::collections::BTreeSet<String>,
}

impl Catalog {
    /// The tables (and materialized views) with a column of type `ty` (a domain, an enum).
    pub fn users_of_type(&self, ty: &str) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, t)| t.columns.iter().any(|c| c.ty == ty))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `Some(nullable)` for a column the catalog has.
    pub fn nullable(&self, table: &str, column: &str) -> Option<bool> {
        self.tables
            .get(table)?
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.nullable)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TableInfo {
    /// What the relation is (`inspect`; omitted for a plain table).
    #[serde(default, skip_serializing_if = "describe::RelationKind::is_table")]
    pub kind: describe::RelationKind,
    /// A partitioned table's key, as PostgreSQL prints it (`inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// A partition's parent and bound (`inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<describe::PartitionOf>,
    /// A materialized view: whether it holds data; an unpopulated one errors when read until
    /// `REFRESH MATERIALIZED VIEW` (`inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub populated: Option<bool>,
    pub rows: u64,
    pub bytes: Option<u64>,
    pub columns: Vec<Column>,
    pub indexes: Vec<String>,
    pub constraints: Vec<String>,
    pub views: Vec<String>,
    /// Foreign keys in other tables that reference this one (`table(col) -> this`).
    pub foreign_keys_in: Vec<String>,
    pub triggers: Vec<String>,
    /// The functions that read this table's columns: its triggers' and those whose body names
    /// the table (`inspect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<describe::FunctionUse>,
    /// PostgreSQL: each trigger's function with the names its body uses (SQL and PL/pgSQL
    /// bodies), for the analysis of a column renamed or dropped under it.
    #[serde(skip)]
    pub trigger_functions: Vec<TriggerFunction>,
    /// SQLite: the table's `CREATE TABLE` statement as the database stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// SQLite: the `CREATE` statements of its indexes and triggers and of the views that read
    /// it — what a table rebuild recreates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recreate: Vec<String>,
}

/// A trigger of a table and the function it runs, with every name the function's body uses
/// (identifiers, lower-cased unless quoted): what a rename or a drop of a column breaks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerFunction {
    pub trigger: String,
    /// `name(argument types)`.
    pub function: String,
    pub names: std::collections::BTreeSet<String>,
    /// The trigger's arguments: how a function written in C is told which columns to use.
    pub arguments: Vec<String>,
}

impl TriggerFunction {
    /// Its body or its arguments name `column`.
    pub fn uses(&self, column: &str) -> bool {
        self.names.contains(column) || self.arguments.iter().any(|a| a == column)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary_key: bool,
}

/// One column as a template that moves it must recreate it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnShape {
    /// `format_type` of the column.
    pub ty: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `ALWAYS` or `BY DEFAULT` for an identity column.
    pub identity: Option<String>,
    pub comment: Option<String>,
    /// The sequence the column owns (serial or identity), schema-qualified.
    pub sequence: Option<String>,
}

/// An index or constraint by name, with its definition as the catalog prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependent {
    pub name: String,
    pub definition: String,
}

/// Everything that hangs off one column (PostgreSQL): what a template moving the column carries
/// over, and what it cannot (`blocking`, described as PostgreSQL describes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnDependents {
    pub column: ColumnShape,
    /// Indexes using the column (not those backing a primary key or unique constraint).
    pub indexes: Vec<Dependent>,
    /// The table's CHECK and FOREIGN KEY constraints using the column.
    pub constraints: Vec<Dependent>,
    /// Plain views that read the column, and the views that read those, in an order they can
    /// be created in (each after the views it reads).
    pub views: Vec<ViewDefinition>,
    /// Rules, policies, materialized views, triggers, primary keys, unique constraints, foreign
    /// keys of other tables that reference the column, ...
    pub blocking: Vec<String>,
}

/// A view as the catalog defines it, to drop and create again around a change of a column it
/// reads (a new type cannot be given to a view's column in place).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ViewDefinition {
    /// Schema-qualified and quoted.
    pub name: String,
    /// `CREATE VIEW … AS …` from `pg_get_viewdef`, with the view's options.
    pub create: String,
    /// What else the view had: its comment, and the privileges granted on it.
    pub after: Vec<String>,
}

/// One row of the target's history table (`drydock.history`, `_drydock_history`): a step the
/// target has applied, in the same transaction as the step itself, and whether it was rolled
/// back (again in the same transaction as the `down`). This is the truth the store follows.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub step: String,
    pub checksum: String,
    pub applied_at: String,
    pub rolled_back_at: Option<String>,
}

/// A step's row in the target's history (any plan), with the version it was exported as into
/// the repository's migration folder.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryVersion {
    pub plan_id: String,
    pub step: String,
    pub version: Option<i64>,
    /// Not rolled back.
    pub applied: bool,
}

impl HistoryEntry {
    pub fn applied(&self) -> bool {
        self.rolled_back_at.is_none()
    }
}

/// Something wrong with a target's schema (an invalid index, an unvalidated constraint, a
/// failed integrity check), and how the object's line in a schema fingerprint starts and ends
/// while it is so.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityProblem {
    pub detail: String,
    pub fingerprint: Option<(String, String)>,
}

impl IntegrityProblem {
    /// Whether the schema fingerprinted as `lines` already had this problem (the same object,
    /// by name, in the same state: a constraint carried to a renamed column stays NOT VALID).
    pub fn predates(&self, lines: &[String]) -> bool {
        self.fingerprint.as_ref().is_some_and(|(start, end)| {
            lines
                .iter()
                .any(|l| l.starts_with(start.as_str()) && l.ends_with(end.as_str()))
        })
    }
}

/// A canonical description of a schema, one line per object/attribute, and its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fingerprint {
    pub hash: String,
    pub lines: Vec<String>,
    /// The lines of objects an extension owns → the extension: how a difference names them
    /// (`extension pg_trgm`, not its forty functions). Not part of the schema's identity, nor
    /// stored: only a difference's wording reads it.
    #[serde(skip)]
    pub owners: BTreeMap<String, String>,
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Fingerprint) -> bool {
        self.hash == other.hash && self.lines == other.lines
    }
}

impl Eq for Fingerprint {}

impl Fingerprint {
    pub fn from_lines(mut lines: Vec<String>) -> Fingerprint {
        use sha2::{Digest, Sha256};
        lines.sort();
        let hash = Sha256::digest(lines.join("\n").as_bytes());
        Fingerprint {
            hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
            lines,
            owners: BTreeMap::new(),
        }
    }

    /// The fingerprint with `owners` (line → extension) known.
    pub fn owned_by(mut self, owners: BTreeMap<String, String>) -> Fingerprint {
        self.owners = owners;
        self
    }

    /// The fingerprint with every date or time literal in a view's definition masked: the
    /// instant a special literal (`'now'::timestamp`, `'today'::date`) froze into the view when
    /// it was created, which a view created again from the same SQL later freezes differently.
    pub fn without_frozen_time(&self) -> Fingerprint {
        let owners = self.owners.clone();
        Fingerprint::from_lines(
            self.lines
                .iter()
                .map(|l| {
                    if l.starts_with("view ") || l.starts_with("materialized view ") {
                        mask_time_literals(l)
                    } else {
                        l.clone()
                    }
                })
                .collect(),
        )
        .owned_by(owners)
    }

    /// What `other` has that `self` lacks and vice versa, briefly: an object on both sides whose
    /// definition changed is one `~` item showing where the two part (a view's 5 KB definition
    /// is not repeated twice to say one word differs); the rest `-`/`+`, each cut short; at most
    /// five of each, with how many more.
    pub fn diff(&self, other: &Fingerprint) -> String {
        let a: std::collections::BTreeSet<&String> = self.lines.iter().collect();
        let b: std::collections::BTreeSet<&String> = other.lines.iter().collect();
        let mut gone: Vec<&String> = a.difference(&b).copied().collect();
        let mut new: Vec<&String> = b.difference(&a).copied().collect();
        // An extension's objects are the extension's: named once, with how many.
        let owner = |l: &String| self.owners.get(l).or_else(|| other.owners.get(l)).cloned();
        let extensions = |lines: &mut Vec<&String>| -> Vec<String> {
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            lines.retain(|l| match owner(l) {
                Some(e) => {
                    *by.entry(e).or_default() += 1;
                    false
                }
                None => true,
            });
            by.into_iter()
                .map(|(e, n)| format!("extension {e} ({n} objects)"))
                .collect()
        };
        let (gone_extensions, new_extensions) = (extensions(&mut gone), extensions(&mut new));
        let mut changed = Vec::new();
        gone.retain(|g| {
            let head = object_of(g);
            match new.iter().position(|n| object_of(n) == head) {
                Some(i) => {
                    changed.push(parted(g, new.remove(i)));
                    false
                }
                None => true,
            }
        });
        let list = |sign: &str, items: Vec<String>| -> Vec<String> {
            let more = items.len().saturating_sub(5);
            let mut out: Vec<String> = items
                .into_iter()
                .take(5)
                .map(|l| format!("{sign}{l}"))
                .collect();
            if more > 0 {
                out.push(format!("({more} more {sign} lines)"));
            }
            out
        };
        [
            list("~", changed),
            list(
                "-",
                gone_extensions
                    .into_iter()
                    .chain(gone.into_iter().map(|l| cut(l, 0, 200)))
                    .collect(),
            ),
            list(
                "+",
                new_extensions
                    .into_iter()
                    .chain(new.into_iter().map(|l| cut(l, 0, 200)))
                    .collect(),
            ),
        ]
        .concat()
        .join("; ")
    }
}

/// A fingerprint line's object: its first two words (`view public.film_list`, `column
/// public.film.length`), what pairs a definition before with the one after.
fn object_of(line: &str) -> &str {
    let mut spaces = line.match_indices(' ').map(|(i, _)| i);
    match (spaces.next(), spaces.next()) {
        (Some(_), Some(second)) => &line[..second],
        _ => line,
    }
}

/// `line` from byte `at` (back to a char boundary), `len` bytes at most, marked where cut.
fn cut(line: &str, at: usize, len: usize) -> String {
    let mut start = at.min(line.len());
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        &line[start..end],
        if end < line.len() { "…" } else { "" }
    )
}

/// One object's definition before and after, from a little before where they part.
fn parted(before: &str, after: &str) -> String {
    let at = before
        .bytes()
        .zip(after.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(before.len().min(after.len()));
    let from = at.saturating_sub(40);
    format!(
        "{}: {} → {}",
        object_of(before),
        cut(before, from, 120),
        cut(after, from, 120)
    )
}

/// `'2026-12-06 20:39:30.235294'::timestamp …` and `'2026-12-06'::date` in `line` (as
/// `pg_get_viewdef` prints a constant) with the value masked.
fn mask_time_literals(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('\'') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('\'') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let (value, tail) = (&after[..close], &after[close + 1..]);
        let dated = value.len() >= 10
            && value.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        let typed = ["::timestamp", "::date", "::time"]
            .iter()
            .any(|t| tail.starts_with(t));
        if dated && typed {
            out.push_str("'(frozen time)'");
        } else {
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A sequence a dry-run moved on staging: sequences are non-transactional, so the dry-run's
/// rollback does not take back a `nextval` or `setval`. drydock puts it back when that is safe:
/// a move backwards always (forward again never hands out a value twice); a move forwards only
/// when no committed row of its column holds a value the dry-run consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SequenceMove {
    pub sequence: String,
    /// Its last value before the dry-run (none: never used).
    pub before: Option<i64>,
    /// Its last value after the dry-run's rollback.
    pub after: Option<i64>,
    pub restored: bool,
    /// Why it was left where the dry-run moved it, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<String>,
}

/// Where agent SQL runs on a target, and so which configured role it runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentUse {
    /// A dry-run's steps (nobody has approved them).
    DryRun,
    /// Checks, in a dry-run and in validate.
    Check,
    /// An approved plan's steps, backfills and rollbacks.
    Apply,
}

impl AgentUse {
    /// The `[targets.X]` key that names its role.
    pub fn setting(self) -> &'static str {
        match self {
            AgentUse::DryRun => "dry_run_role",
            AgentUse::Check => "check_role",
            AgentUse::Apply => "apply_role",
        }
    }

    /// What agent SQL does on a target of `role`: everything, but a dry-run never on production.
    pub fn on(role: crate::config::Role) -> &'static [AgentUse] {
        match role {
            crate::config::Role::Production => &[AgentUse::Apply, AgentUse::Check],
            _ => &[AgentUse::DryRun, AgentUse::Check, AgentUse::Apply],
        }
    }
}

/// A request to stop long work at its next checkpoint (the server is shutting down): a backfill
/// finishes the batch it is in, whose checkpoint commits with it, and goes no further.
#[derive(Debug, Default)]
pub struct Halt(std::sync::atomic::AtomicBool);

impl Halt {
    pub fn request(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The hands on a running backfill: where it reports progress (rows done, rows estimated), the
/// request to stop at the next checkpoint, and the engineer's brake (while set, it waits between
/// batches).
pub struct Control<'a> {
    /// Rows done, rows estimated, and the last sample of the database around it.
    pub progress: &'a mut (dyn FnMut(u64, u64, &Health) + Send),
    pub halt: &'a Halt,
    pub pause: &'a std::sync::atomic::AtomicBool,
}

/// What a backfill did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackfillReport {
    /// Stopped at a checkpoint before the end (a shutdown): the step is not applied yet and
    /// resumes from there on the next `apply`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub halted: bool,
    pub table: String,
    pub key: String,
    /// Rows updated in total (including before a resume).
    pub rows: u64,
    pub batches: u64,
    /// Parts of the key range walked side by side (`policy.backfill_lanes`, PostgreSQL); the
    /// range is cut in four parts per lane, each with its own checkpoint, and a lane that ends
    /// its part takes the next.
    #[serde(default)]
    pub lanes: u64,
    /// The checkpoint this run resumed from, if it did (one per lane that had started).
    pub resumed_from: Option<String>,
    pub final_batch_size: u64,
    /// Watcher samples that saw a session kept waiting over 100 ms by a batch (each halved the
    /// batch size).
    pub blocked_samples: u64,
    pub slowest_batch_ms: f64,
    pub duration_ms: f64,
    /// Time the batches waited for lagging replicas (`policy.max_replica_lag`).
    #[serde(default)]
    pub replica_wait_ms: f64,
    /// The last sample of the database around the backfill.
    #[serde(default)]
    pub health: Health,
}

/// What a backfill sees of the database around it, sampled between batches (PostgreSQL): how
/// far each streaming replica's replay lags, the oldest open transaction (it holds back vacuum),
/// and the dead tuples of the table it walks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    pub replicas: Vec<ReplicaLag>,
    /// Seconds since the oldest transaction still open on the server began (drydock's own
    /// sessions excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_transaction_s: Option<f64>,
    /// `pg_stat_user_tables.n_dead_tup` of the walked table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_tuples: Option<i64>,
    /// Set while batches wait for a replica to catch up: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// One streaming replica, as `pg_stat_replication` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicaLag {
    /// Its `application_name` (and address).
    pub name: String,
    /// `replay_lag` in seconds (none when the replica is caught up and idle).
    pub replay_lag_s: Option<f64>,
    /// WAL written here and not yet replayed there, in bytes.
    pub behind_bytes: i64,
}

impl Health {
    /// The replica lagging most, if one lags more than `max`. A replica that has replayed
    /// everything is not behind, whatever `replay_lag` still shows (PostgreSQL keeps the last
    /// measurement for a while after it caught up).
    pub fn lagging(&self, max: std::time::Duration) -> Option<&ReplicaLag> {
        self.replicas
            .iter()
            .filter(|r| r.behind_bytes > 0 && r.replay_lag_s.is_some_and(|s| s > max.as_secs_f64()))
            .max_by(|a, b| {
                a.replay_lag_s
                    .partial_cmp(&b.replay_lag_s)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }

    /// One line for a progress message.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .replicas
            .iter()
            .map(|r| match r.replay_lag_s {
                Some(s) => format!("replica {} {s:.1} s behind", r.name),
                None => format!("replica {} caught up", r.name),
            })
            .collect();
        if let Some(s) = self.oldest_transaction_s.filter(|s| *s >= 1.0) {
            parts.push(format!("oldest transaction {s:.0} s"));
        }
        if let Some(d) = self.dead_tuples {
            parts.push(format!("{d} dead tuples"));
        }
        if let Some(w) = &self.waiting {
            parts.insert(0, w.clone());
        }
        parts.join("; ")
    }
}

/// Six bytes of SHA-256 in hex: a short, stable name part (a backfill's backup table).
pub(crate) fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A statement to execute, and whether it may run inside a transaction.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub transactional: bool,
}

/// A failure inside a step: which statement, and why. Its transaction was rolled back.
#[derive(Debug)]
pub struct StepFailure {
    pub index: usize,
    pub sql: String,
    pub sqlstate: Option<String>,
    /// Why, as the agent may read it (`agent_error`).
    pub cause: String,
    /// A PL/pgSQL `RAISE`'s own message, which `cause` withholds: shown only when the SQL is
    /// drydock's template text (its guards name what stopped them).
    pub raised: Option<String>,
}

impl StepFailure {
    /// It waited past `lock_timeout` (PostgreSQL's 55P03): its transaction may be tried again.
    pub fn lock_timed_out(&self) -> bool {
        self.sqlstate.as_deref() == Some("55P03")
    }

    /// Why, for the plan's reader: a vouched template's own message in full, else `cause`.
    pub fn reason(&self, body: &crate::plan::Body) -> &str {
        match (&self.raised, body.vouched_template()) {
            (Some(raised), Some(_)) => raised,
            _ => &self.cause,
        }
    }
}

/// The bookkeeping written in the step's own transaction.
pub enum History<'a> {
    Applied(HistoryRow<'a>),
    RolledBack { plan_id: &'a str, step: &'a str },
}

/// What the lock watcher saw during a step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct WatchReport {
    pub samples: u64,
    pub max_blocked_sessions: u64,
    pub longest_wait_ms: u64,
    /// The watcher cancelled the migration because it blocked others past policy.max_block.
    pub cancelled: bool,
}

/// The outcome of one validation query.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckOutcome {
    pub name: String,
    pub expect: String,
    pub passed: bool,
    pub observed: String,
}

/// What a check query returned: its row count and, for a single row, its first column as a
/// boolean (`None` when it is null or not a boolean).
pub type CheckRows = std::result::Result<(usize, Option<Option<bool>>), String>;

/// Judges a check's result against its expectation (`true`, `empty`, `rows:N`).
pub fn judge(check: &crate::plan::Check, rows: CheckRows) -> CheckOutcome {
    use crate::plan::Expect;
    let (passed, observed) = match rows {
        Err(e) => (false, format!("error: {e}")),
        Ok((n, first)) => match check.expect {
            Expect::Empty => (n == 0, format!("{n} row(s)")),
            Expect::Rows(want) => (n as u64 == want, format!("{n} row(s)")),
            Expect::True => match (n, first) {
                (1, Some(Some(b))) => (b, b.to_string()),
                (1, _) => (false, "null or not a boolean".into()),
                _ => (false, format!("{n} row(s), expected exactly one")),
            },
        },
    };
    CheckOutcome {
        name: check.name.clone(),
        expect: check.expect.to_string(),
        passed,
        observed,
    }
}

/// The row of `drydock history` written beside each applied step.
#[derive(Debug, Clone)]
pub struct HistoryRow<'a> {
    pub plan_id: &'a str,
    pub step: &'a str,
    pub checksum: &'a str,
    pub by: &'a str,
}

/// An opened target.
pub enum Target {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

/// How a PostgreSQL dry-run runs the plan (a SQLite dry-run always runs on a scratch copy of the
/// file, step by step as apply does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Every step in one transaction that is rolled back: nothing persists, `CONCURRENTLY` is
    /// measured through its transactional equivalent.
    RolledBack,
    /// Each step as apply runs it: its transactions committed, its non-transactional statements
    /// for real. The caller undoes every step it ran.
    Committed,
}

/// Where a dry-run runs: a scratch copy (SQLite) or a session on the target (PostgreSQL, see
/// `SandboxMode`).
pub enum Sandbox {
    Sqlite(sqlite::Sqlite, std::path::PathBuf),
    Postgres(Box<postgres::PgSandbox>),
}

type StepOutcome = std::result::Result<Vec<StatementRun>, StepFailure>;

impl Target {
    /// The target's name in the config.
    pub fn name(&self) -> &str {
        match self {
            Target::Sqlite(t) => t.name(),
            Target::Postgres(t) => t.name(),
        }
    }

    pub async fn open(config: &Config, target: &TargetConfig) -> Result<Target> {
        let url = target.url.resolve(&config.base_dir())?;
        match url {
            TargetUrl::Sqlite(path) => Ok(Target::Sqlite(
                sqlite::Sqlite::open(&target.name, &path, config.policy.lock_timeout).await?,
            )),
            TargetUrl::Postgres(url) => Ok(Target::Postgres(Box::new(
                postgres::Postgres::open(&target.name, &url, &config.policy)
                    .await?
                    .with_roles(postgres::Roles::configured(target)),
            ))),
            TargetUrl::Env(_) => unreachable!("resolve() never returns Env"),
        }
    }

    pub fn engine(&self) -> crate::sql::Dialect {
        match self {
            Target::Sqlite(_) => crate::sql::Dialect::Sqlite,
            Target::Postgres(_) => crate::sql::Dialect::Postgres,
        }
    }

    pub async fn catalog(&self) -> Result<Catalog> {
        match self {
            Target::Sqlite(t) => t.catalog().await,
            Target::Postgres(t) => t.catalog().await,
        }
    }

    /// The schema lines of `tables`' columns, as their fingerprint has them (`column
    /// schema.table.name …` on PostgreSQL, `table t column …` on SQLite): what the drift check
    /// compares, without reading the rest of the schema where the engine can.
    pub async fn column_lines(
        &self,
        tables: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        match self {
            Target::Sqlite(t) => {
                let prefixes: Vec<String> = tables
                    .iter()
                    .map(|t| format!("table {t} column "))
                    .collect();
                Ok(t.fingerprint()
                    .await?
                    .lines
                    .into_iter()
                    .filter(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
                    .collect())
            }
            Target::Postgres(t) => t.column_lines(tables).await,
        }
    }

    /// What `inspect` tells an agent beyond the catalog.
    pub async fn describe(&self) -> Result<describe::Described> {
        match self {
            Target::Sqlite(t) => t.describe().await,
            Target::Postgres(t) => t.describe().await,
        }
    }

    pub async fn fingerprint(&self) -> Result<Fingerprint> {
        match self {
            Target::Sqlite(t) => t.fingerprint().await,
            Target::Postgres(t) => t.fingerprint().await,
        }
    }

    /// What hangs off `table.column`, for a template that moves the column; `None` when the
    /// column does not exist.
    pub async fn column_dependents(
        &self,
        table: &str,
        column: &str,
    ) -> Result<Option<ColumnDependents>> {
        match self {
            Target::Sqlite(_) => Err(Error::invalid(
                Part::Plan,
                "this template moves a column with PostgreSQL's expand/contract procedure; on a SQLite target write the change as `steps`",
            )),
            Target::Postgres(t) => t.column_dependents(table, column).await,
        }
    }

    /// Of `functions` (called by agent SQL), those the catalog says reach beyond the database,
    /// with why (PostgreSQL; SQLite has no such functions once its statement gate has spoken).
    pub async fn beyond_the_database(&self, functions: &[String]) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.beyond_the_database(functions).await,
        }
    }

    /// The statements that set up least-privilege roles (PostgreSQL; none for SQLite).
    pub async fn role_setup(&self, migrator: &str, checker: &str) -> Result<Option<RoleSetup>> {
        match self {
            Target::Sqlite(_) => Ok(None),
            Target::Postgres(t) => t.role_setup(migrator, checker).await.map(Some),
        }
    }

    pub async fn run_role_setup(&self, setup: &RoleSetup) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.run_role_setup(setup).await,
        }
    }

    /// What drydock will refuse (`unsafe-role`) about the roles agent SQL would run as for
    /// `uses` (PostgreSQL; a SQLite target is a file drydock opens itself, and its agent SQL is
    /// held to the SQLite boundary).
    pub async fn privilege_warnings(&self, uses: &[AgentUse]) -> Result<Vec<String>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.privilege_warnings(uses).await,
        }
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        match self {
            Target::Sqlite(t) => t.row_counts(tables).await,
            Target::Postgres(t) => t.row_counts(tables).await,
        }
    }

    /// Rows of two text columns from a read-only query: a group's members from its discovery
    /// query (`name`, `url`), other migration tools' history (`version`, `ok`/`failed`).
    pub async fn text_pairs(&self, sql: &str) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(t) => t.text_pairs(sql).await,
            Target::Postgres(t) => t.text_pairs(sql).await,
        }
    }

    pub async fn run_checks(&self, checks: &[crate::plan::Check]) -> Result<Vec<CheckOutcome>> {
        match self {
            Target::Sqlite(t) => t.run_checks(checks).await,
            Target::Postgres(t) => t.run_checks(checks).await,
        }
    }

    /// Opens a dry-run sandbox; `scratch` is where a SQLite copy goes.
    pub async fn sandbox(&self, scratch: &std::path::Path, mode: SandboxMode) -> Result<Sandbox> {
        match self {
            Target::Sqlite(t) => Ok(Sandbox::Sqlite(
                t.copy_to(scratch).await?,
                scratch.to_path_buf(),
            )),
            Target::Postgres(t) => Ok(Sandbox::Postgres(Box::new(t.sandbox(mode).await?))),
        }
    }

    /// What SQL built at run time could reach beyond the database here (PostgreSQL; see
    /// `Postgres::dynamic_reach`); SQLite has no such SQL.
    pub async fn dynamic_reach(&self) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.dynamic_reach().await,
        }
    }

    /// What the application will hit on `tables`, probed on the target itself as the apply role,
    /// every write rolled back (PostgreSQL; none on SQLite).
    pub async fn probe_app(&self, tables: &[String], known: &str) -> Result<Vec<AppProbe>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.probe_app(tables, known).await,
        }
    }

    /// Notes that a dry-run's rehearsal begins `step` of `plan_id` here (PostgreSQL; a SQLite
    /// dry-run runs on a copy).
    pub async fn mark_rehearsal(&self, plan_id: &str, step: &str) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.mark_rehearsal(plan_id, step).await,
        }
    }

    /// Forgets the begun steps of `plan_id`'s rehearsal here.
    pub async fn clear_rehearsal(&self, plan_id: &str) -> Result<()> {
        match self {
            Target::Sqlite(_) => Ok(()),
            Target::Postgres(t) => t.clear_rehearsal(plan_id).await,
        }
    }

    /// Steps rehearsals began here and did not undo, as (plan, step).
    pub async fn rehearsals(&self) -> Result<Vec<(String, String)>> {
        match self {
            Target::Sqlite(_) => Ok(vec![]),
            Target::Postgres(t) => t.rehearsals().await,
        }
    }

    /// Whether a dry-run here can run steps as apply does and take them back only by running
    /// their `down` (PostgreSQL); SQLite's scratch copy already runs them so.
    pub fn rehearses(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }

    /// One migration at a time per target, across processes and machines: an advisory lock on
    /// PostgreSQL, an exclusive lock on a file beside the database on SQLite. Never waits: a held
    /// lock is `target-busy`.
    pub async fn lock(&self) -> Result<TargetLock> {
        match self {
            Target::Sqlite(t) => Ok(TargetLock(Held::File(t.lock()?))),
            Target::Postgres(t) => Ok(TargetLock(Held::Postgres(t.lock().await?))),
        }
    }

    /// Executes one step for real, with its history row in the same transaction.
    pub async fn execute(
        &self,
        step: &str,
        statements: &[Stmt],
        tables: &[String],
        history: Option<History<'_>>,
        policy: &crate::config::Policy,
        on_statement: &mut (dyn FnMut(&StatementRun) + Send),
    ) -> Result<(StepOutcome, WatchReport)> {
        match self {
            Target::Sqlite(t) => Ok((
                t.execute(step, statements, history, on_statement).await?,
                WatchReport::default(),
            )),
            Target::Postgres(t) => {
                t.execute(step, statements, tables, history, policy, on_statement)
                    .await
            }
        }
    }

    /// Runs a backfill step in keyset batches, each with its checkpoint.
    pub async fn backfill(
        &self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        history: &HistoryRow<'_>,
        policy: &crate::config::Policy,
        control: Control<'_>,
    ) -> Result<std::result::Result<BackfillReport, StepFailure>> {
        match self {
            Target::Postgres(t) => {
                t.backfill(step, spec, columns, history, policy, control)
                    .await
            }
            Target::Sqlite(t) => t.backfill(step, spec, columns, history, control).await,
        }
    }

    /// The statements that put a backfill step's saved values back (and drop the backup), to
    /// run before its `down`; none when nothing was saved.
    pub async fn backfill_restore(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<Vec<Stmt>> {
        match self {
            Target::Sqlite(t) => {
                t.backfill_restore(&format!("{plan_id}/{step}"), spec, columns)
                    .await
            }
            Target::Postgres(t) => t.backfill_restore(plan_id, step, spec, columns).await,
        }
    }

    /// Puts a backfill step's saved values back in short batches before its `down` (on
    /// PostgreSQL; SQLite's one write lock makes one transaction no worse). The rows put back.
    pub async fn restore_in_batches(
        &self,
        plan_id: &str,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
        policy: &crate::config::Policy,
    ) -> Result<std::result::Result<u64, StepFailure>> {
        match self {
            Target::Sqlite(_) => Ok(Ok(0)),
            Target::Postgres(t) => {
                t.restore_in_batches(plan_id, step, spec, columns, policy)
                    .await
            }
        }
    }

    /// Whether a rollback began putting a backfill step's saved values back and did not end.
    pub async fn restore_begun(&self, plan_id: &str, step: &str) -> Result<bool> {
        match self {
            Target::Sqlite(_) => Ok(false),
            Target::Postgres(t) => t.restore_begun(plan_id, step).await,
        }
    }

    /// Problems a validation must report (integrity, invalid indexes, unvalidated constraints).
    pub async fn integrity(&self) -> Result<Vec<IntegrityProblem>> {
        match self {
            Target::Sqlite(t) => t.integrity().await,
            Target::Postgres(t) => t.integrity().await,
        }
    }

    /// A plan's rows in the target's history table, oldest first.
    /// Every plan's rows in the target's history table, with their exported versions.
    pub async fn history_versions(&self) -> Result<Vec<HistoryVersion>> {
        match self {
            Target::Sqlite(t) => t.history_versions().await,
            Target::Postgres(t) => t.history_versions().await,
        }
    }

    /// Records, in one transaction, the versions `(plan, step, version)` steps were exported as
    /// and `tool`: statements writing the folder's tool's own history table.
    pub async fn record_export(
        &self,
        versions: &[(String, String, i64)],
        tool: &[String],
    ) -> Result<()> {
        match self {
            Target::Sqlite(t) => t.record_export(versions, tool).await,
            Target::Postgres(t) => t.record_export(versions, tool).await,
        }
    }

    pub async fn history(&self, plan_id: &str) -> Result<Vec<HistoryEntry>> {
        match self {
            Target::Sqlite(t) => t.history(plan_id).await,
            Target::Postgres(t) => t.history(plan_id).await,
        }
    }

    /// drydock's own verified backup: a full copy (SQLite) or a snapshot of the affected tables
    /// (PostgreSQL, up to `policy.snapshot_max_rows`).
    pub async fn backup(
        &self,
        dir: &std::path::Path,
        label: &str,
        tables: &[String],
        max_rows: u64,
    ) -> Result<BackupEvidence> {
        match self {
            Target::Sqlite(t) => t.backup(&dir.join(format!("{label}.db"))).await,
            Target::Postgres(t) => t.snapshot(label, tables, max_rows).await,
        }
    }
}

/// Held while a migration runs on a target; `release` when done.
pub struct TargetLock(Held);

enum Held {
    Postgres(postgres::PgLock),
    /// Unlocked when closed (and by the OS when the process dies).
    File(std::fs::File),
}

impl TargetLock {
    pub async fn release(self) {
        match self.0 {
            Held::Postgres(l) => l.release().await,
            Held::File(f) => drop(f),
        }
    }
}

impl Sandbox {
    /// The target the sandbox runs on (a dry-run's staging).
    pub fn target(&self) -> &str {
        match self {
            Sandbox::Sqlite(t, _) => t.name(),
            Sandbox::Postgres(s) => s.target(),
        }
    }

    pub async fn fingerprint(&mut self) -> Result<Fingerprint> {
        match self {
            Sandbox::Sqlite(t, _) => t.fingerprint().await,
            Sandbox::Postgres(s) => s.fingerprint().await,
        }
    }

    pub async fn execute(&mut self, step: &str, statements: &[Stmt]) -> Result<StepOutcome> {
        match self {
            Sandbox::Sqlite(t, _) => t.execute(step, statements, None, &mut |_| {}).await,
            Sandbox::Postgres(s) => s.execute(step, statements).await,
        }
    }

    pub async fn run_checks(&mut self, checks: &[crate::plan::Check]) -> Result<Vec<CheckOutcome>> {
        match self {
            Sandbox::Sqlite(t, _) => t.run_checks(checks).await,
            Sandbox::Postgres(s) => s.run_checks(checks).await,
        }
    }

    /// A content hash of each of `tables` that exists.
    /// The marks that tell, without reading rows, which of `tables` a plan may have written
    /// (PostgreSQL; `None` on SQLite, whose tables are hashed whole).
    pub async fn data_marks(&mut self, tables: &[String]) -> Result<Option<marks::DataMarks>> {
        match self {
            Sandbox::Sqlite(..) => Ok(None),
            Sandbox::Postgres(s) => s.data_marks(tables).await.map(Some),
        }
    }

    /// A point to come back to before `up` (rolled back, PostgreSQL).
    pub async fn rewind_point(&mut self) -> Result<()> {
        match self {
            Sandbox::Sqlite(..) => Ok(()),
            Sandbox::Postgres(s) => s.rewind_point().await,
        }
    }

    /// Back to the data as it was at [`Self::rewind_point`].
    pub async fn rewind(&mut self) -> Result<()> {
        match self {
            Sandbox::Sqlite(..) => Err(Error::invalid(
                Part::Argument,
                "a SQLite sandbox has no point to rewind to",
            )),
            Sandbox::Postgres(s) => s.rewind().await,
        }
    }

    pub async fn content_hashes(&mut self, tables: &[String]) -> Result<BTreeMap<String, String>> {
        match self {
            Sandbox::Sqlite(t, _) => t.content_hashes(tables).await,
            Sandbox::Postgres(s) => s.content_hashes(tables).await,
        }
    }

    /// What the application will hit on `tables`, probed (PostgreSQL; none on SQLite).
    /// `known`: the plan's SQL, whose names a failure may repeat.
    pub async fn probe_app(&mut self, tables: &[String], known: &str) -> Result<Vec<AppProbe>> {
        match self {
            Sandbox::Sqlite(..) => Ok(vec![]),
            Sandbox::Postgres(s) => s.probe_app(tables, known).await,
        }
    }

    /// Saves what a backfill step is about to change (overwritten values, copied keys,
    /// deleted rows).
    pub async fn backfill_save(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        match self {
            Sandbox::Sqlite(t, _) => {
                t.backfill_save(&format!("dry-run/{step}"), spec, columns)
                    .await
            }
            Sandbox::Postgres(s) => s.backfill_save(step, spec, columns).await,
        }
    }

    /// Puts a backfill step's saved values back.
    pub async fn backfill_restore(
        &mut self,
        step: &str,
        spec: &crate::plan::Backfill,
        columns: &[String],
    ) -> Result<()> {
        match self {
            Sandbox::Sqlite(t, _) => {
                t.backfill_undo(&format!("dry-run/{step}"), spec, columns)
                    .await
            }
            Sandbox::Postgres(s) => s.backfill_restore(step, spec, columns).await,
        }
    }

    /// Discards everything the sandbox did; returns the sequences it moved (which a rollback
    /// does not take back), and whether each was put back.
    pub async fn finish(self) -> Vec<SequenceMove> {
        match self {
            Sandbox::Sqlite(_, path) => {
                let _ = std::fs::remove_file(path);
                vec![]
            }
            Sandbox::Postgres(s) => s.finish().await,
        }
    }
}

/// Runs `[backup] command` under `sh -c` and checks its JSON: `{"finished_at": RFC 3339,
/// "restore_tested": bool}` describing the newest backup.
pub async fn backup_command(
    target: &str,
    command: &str,
    max_age: Duration,
) -> Result<BackupEvidence> {
    let fail = |detail: String| {
        Error::BackupFailed {
        target: target.to_string(),
        detail,
        fix: "fix the `[backup] command` of drydock.toml: it must exit 0 and print the newest backup's evidence (README: backups)".into(),
    }
    };
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
        .map_err(|e| fail(format!("could not run the backup command: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "the backup command exited with {}: {}",
            out.status,
            crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    #[derive(Deserialize)]
    struct Newest {
        finished_at: String,
        restore_tested: bool,
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let newest: Newest = serde_json::from_str(text.trim())
        .map_err(|e| fail(format!("the backup command must print {{\"finished_at\": RFC 3339, \"restore_tested\": bool}}: {e}")))?;
    let age = crate::clock::age(&newest.finished_at).ok_or_else(|| {
        fail(format!(
            "finished_at {:?} is not an RFC 3339 timestamp",
            newest.finished_at
        ))
    })?;
    if age > max_age {
        return Err(fail(format!(
            "the newest backup finished at {} ({} ago), older than policy.backup_max_age",
            newest.finished_at,
            humantime::format_duration(Duration::from_secs(age.as_secs()))
        )));
    }
    if !newest.restore_tested {
        return Err(fail(
            "the newest backup has not been restore-tested (restore_tested: false)".into(),
        ));
    }
    Ok(BackupEvidence {
        method: "backup command".into(),
        location: format!("newest backup finished at {}", newest.finished_at),
        verified: true,
        row_counts: BTreeMap::new(),
        taken_at: crate::clock::now(),
        tables: vec![],
        whole_database: true,
    })
}

/// What an agent sees of a database error raised by SQL it wrote: the message's shape and the
/// SQLSTATE. A quoted value in the message that the agent's SQL does not contain is one the
/// server read (a file's content cast to `int`, a row's value cast to `regclass`) and is cut;
/// names the agent wrote stay, so the error still says which object was wrong. DETAIL and HINT
/// lines (which quote row values) are never included.
pub fn agent_error(e: &sqlx::Error, sql: &str) -> String {
    let sqlx::Error::Database(d) = e else {
        return crate::redact::redact(&e.to_string());
    };
    let message = d.message().lines().next().unwrap_or_default();
    // A PL/pgSQL error (RAISE, ASSERT: SQLSTATE class P0) says what the agent's code made it
    // say, which may be anything the code read: only what the agent wrote itself stays.
    let shaped = if raised(e).is_some() && !sql.to_lowercase().contains(&message.to_lowercase()) {
        "an error raised by the plan's PL/pgSQL, its message withheld (it may carry what the code read)".to_string()
    } else {
        // An integrity violation (SQLSTATE class 23) names the column, relation and constraint
        // PostgreSQL checked: those names stay. Elsewhere a quoted name may be a value cast to
        // one (`'…'::regclass` says `relation "…" does not exist`): masked.
        let integrity = d.code().is_some_and(|c| c.starts_with("23"));
        mask_values(message, sql, integrity)
    };
    match d.code() {
        // PostgreSQL's SQLSTATEs are five characters; SQLite's result codes are numbers.
        Some(code) if code.len() == 5 => format!("{shaped} (SQLSTATE {code})"),
        Some(code) => format!("{shaped} (SQLite code {code})"),
        None => shaped,
    }
}

/// The message of a PL/pgSQL error (SQLSTATE class P0), unmasked but redacted.
pub fn raised(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("P0")) => Some(
            crate::redact::redact(d.message().lines().next().unwrap_or_default()),
        ),
        _ => None,
    }
}

/// The words before which PostgreSQL's messages quote a schema object's name.
const OBJECT_WORDS: &[&str] = &[
    "column",
    "relation",
    "table",
    "constraint",
    "index",
    "view",
    "sequence",
    "schema",
    "trigger",
    "type",
    "domain",
    "function",
];

/// Replaces every `"..."` and `'...'` of `message` whose content `sql` does not contain with
/// `"…"` (`'…'`).
pub fn mask_read_values(message: &str, sql: &str) -> String {
    mask_values(message, sql, false)
}

/// `mask_read_values`, keeping the names PostgreSQL quotes after an object's kind when
/// `names` (an integrity violation's message).
fn mask_values(message: &str, sql: &str, names: bool) -> String {
    let known = sql.to_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else {
            if quote == '\'' {
                // An apostrophe ("can't"), not a quote.
                continue;
            }
            // An unterminated quote: whatever follows came from the server.
            out.push('…');
            return out;
        };
        let value = &rest[..close];
        // A name PostgreSQL quotes after the kind of object it names (`column "email"`,
        // `of relation "users"`, `constraint "users_pkey"`) is the schema's, which the agent
        // may read anyway (`inspect`): kept. A value read from rows never comes so.
        let named = names
            && quote == '"'
            && out[..out.len() - 1]
                .split_whitespace()
                .next_back()
                .is_some_and(|w| OBJECT_WORDS.contains(&w.to_lowercase().as_str()));
        if !value.is_empty() && (named || known.contains(&value.to_lowercase())) {
            out.push_str(value);
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    crate::redact::redact(&out)
}

/// The statement timeout for a policy, as the engines want it.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_of_schema_objects_stay_in_a_masked_message_and_values_do_not() {
        let m = super::mask_values(
            "null value in column \"email\" of relation \"users\" violates not-null constraint \"users_email_nn\"",
            "INSERT INTO users SELECT * FROM staged",
            true,
        );
        assert_eq!(
            m,
            "null value in column \"email\" of relation \"users\" violates not-null constraint \"users_email_nn\""
        );
        assert_eq!(
            super::mask_values(
                "invalid input syntax for type integer: \"db-host-7\"",
                "SELECT 1",
                true
            ),
            "invalid input syntax for type integer: \"…\""
        );
        // Outside an integrity violation a quoted name may be a value cast to one.
        assert_eq!(
            super::mask_read_values(
                "relation \"s3cret\" does not exist",
                "SELECT (SELECT v FROM t)::regclass"
            ),
            "relation \"…\" does not exist"
        );
    }

    #[test]
    fn a_changed_definition_is_shown_where_it_parts_not_whole() {
        let long = "x ".repeat(3000);
        let before = super::Fingerprint::from_lines(vec![
            format!("view public.film_list {long} WHERE length > 60 {long}"),
            "table public.gone".to_string(),
        ]);
        let after = super::Fingerprint::from_lines(vec![
            format!("view public.film_list {long} WHERE length > 90 {long}"),
            "table public.new".to_string(),
        ]);
        let d = before.diff(&after);
        assert!(d.len() < 700, "{} characters: {d}", d.len());
        assert!(d.contains("~view public.film_list: "), "{d}");
        assert!(
            d.contains("length > 60") && d.contains("length > 90"),
            "{d}"
        );
        assert!(
            d.contains("-table public.gone") && d.contains("+table public.new"),
            "{d}"
        );
    }

    use super::{Fingerprint, Health, ReplicaLag, mask_read_values};

    #[test]
    fn only_the_instants_frozen_into_views_are_masked() {
        let f = Fingerprint::from_lines(vec![
            "view public.v: SELECT (p.published < ('2026-12-06 20:39:30.235294'::timestamp without time zone - '1 mon'::interval)), '2024-01-01'::date AS since, 'x 2024-01-01'::text".into(),
            "column public.t.at timestamp default '2026-12-06 20:39:30'::timestamp without time zone".into(),
        ]);
        let masked = f.without_frozen_time();
        assert!(masked.lines.iter().any(|l| l.starts_with("view")
            && l.contains("('(frozen time)'::timestamp without time zone - '1 mon'::interval)")
            && l.contains("'(frozen time)'::date")
            && l.contains("'x 2024-01-01'::text")));
        // A column's default is no view: its literal is a value someone chose.
        assert!(
            masked
                .lines
                .iter()
                .any(|l| l.contains("'2026-12-06 20:39:30'"))
        );
    }

    #[test]
    fn a_replica_lags_only_while_it_has_wal_to_replay() {
        let replica = |lag: Option<f64>, behind: i64| ReplicaLag {
            name: "standby1".into(),
            replay_lag_s: lag,
            behind_bytes: behind,
        };
        let max = std::time::Duration::from_secs(10);
        let mut h = Health {
            replicas: vec![replica(Some(12.5), 4096), replica(Some(3.0), 10)],
            dead_tuples: Some(42),
            ..Health::default()
        };
        assert_eq!(h.lagging(max).and_then(|r| r.replay_lag_s), Some(12.5));
        assert!(h.summary().contains(
            "replica standby1 12.5 s behind; replica standby1 3.0 s behind; 42 dead tuples"
        ));
        // Caught up: the last lag PostgreSQL still shows does not hold the backfill.
        h.replicas[0].behind_bytes = 0;
        assert!(h.lagging(max).is_none());
        h.replicas = vec![replica(None, 0)];
        assert!(h.lagging(max).is_none());
    }

    #[test]
    fn values_the_server_read_are_cut_from_errors() {
        let sql = "SELECT pg_read_file('/etc/hostname')::int = 1";
        assert_eq!(
            mask_read_values("invalid input syntax for type integer: \"db-host-7\"", sql),
            "invalid input syntax for type integer: \"…\""
        );
        assert_eq!(
            mask_read_values(
                "relation \"acct1\" does not exist",
                "SELECT ('acct' || id)::regclass"
            ),
            "relation \"…\" does not exist"
        );
        // Names the agent wrote stay.
        assert_eq!(
            mask_read_values(
                "column \"tier\" of relation \"Users\" already exists",
                "ALTER TABLE \"Users\" ADD COLUMN tier text"
            ),
            "column \"tier\" of relation \"Users\" already exists"
        );
        assert_eq!(
            mask_read_values("unterminated \"secret", "SELECT 1"),
            "unterminated \"…"
        );
        // Single quotes too; an apostrophe is not one.
        assert_eq!(
            mask_read_values("bad value 'user1@example.com' here", "SELECT 1"),
            "bad value '…' here"
        );
        assert_eq!(
            mask_read_values("can't do that to \"t\"", "ALTER TABLE t"),
            "can't do that to \"t\""
        );
    }
}
