//! The databases drydock changes (named `db`, not `target`, so that tools which skip cargo's
//! `target/` folders do not skip it). Each engine adapter (`sqlite`, `postgres`) offers the same
//! operations: introspect, fingerprint the schema, execute a step in a transaction with its
//! history row, run checks read-only, and take a verified backup. The engine module composes them.
//! Imports only `plan`, `config` and the leaves.

pub mod describe;
pub mod marks;
pub mod postgres;
pub use postgres::{RoleSetup, Spares};
mod backup_command;
mod errors;
mod fingerprint;
pub mod sqlite;
mod target;
mod tools;

pub use backup_command::backup_command;
pub use errors::{agent_error, mask_read_values, raised};
pub use fingerprint::Fingerprint;
pub use target::{Sandbox, SandboxMode, Target, TargetLock};

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
    /// Its comment (PostgreSQL; `COMMENT ON TABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
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
    /// Its comment (PostgreSQL; `COMMENT ON COLUMN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
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

impl BackfillReport {
    /// A backfill of `table` by `key` before any batch: nothing done yet.
    pub fn of(table: &str, key: &str) -> BackfillReport {
        BackfillReport {
            halted: false,
            table: table.to_string(),
            key: key.to_string(),
            rows: 0,
            batches: 0,
            lanes: 0,
            resumed_from: None,
            final_batch_size: 0,
            blocked_samples: 0,
            slowest_batch_ms: 0.0,
            duration_ms: 0.0,
            replica_wait_ms: 0.0,
            health: Health::default(),
        }
    }
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

/// The statement timeout for a policy, as the engines want it.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::{Health, ReplicaLag};

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
}
