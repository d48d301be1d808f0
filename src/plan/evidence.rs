//! Evidence of runs as data: what a statement took and how long, the production estimate, and
//! `RunDetail`, what a run records in the state store and drydock reads back (the dry-run's
//! schema fingerprints, whether rollback was verified, the error of a failed step). Data only:
//! the database adapters fill it, the store keeps it, the checklist and the engine read it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sql::LockMode;

/// A lock observed while a statement ran.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LockObservation {
    pub relation: String,
    pub mode: LockMode,
    /// Taken by this statement; false for a lock an earlier statement of the same transaction
    /// took and this one still holds (locks accumulate until the transaction ends).
    #[serde(default = "acquired_default")]
    pub acquired: bool,
    /// What the relation is (a dry-run knows; apply's measurement does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RelationKind>,
}

fn acquired_default() -> bool {
    true
}

/// The kind of a relation a lock was taken on (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RelationKind {
    Table,
    PartitionedTable,
    MaterializedView,
    View,
    Index,
    Sequence,
}

impl RelationKind {
    /// The kind of `pg_class.relkind`, when it is one a dry-run measures.
    pub fn from_relkind(relkind: &str) -> Option<RelationKind> {
        Some(match relkind {
            "r" => RelationKind::Table,
            "p" => RelationKind::PartitionedTable,
            "m" => RelationKind::MaterializedView,
            "v" => RelationKind::View,
            "i" | "I" => RelationKind::Index,
            "S" => RelationKind::Sequence,
            _ => return None,
        })
    }

    /// Whether rows live in it (a lock on it holds up the application's writes and reads).
    pub fn holds_rows(self) -> bool {
        matches!(
            self,
            RelationKind::Table | RelationKind::PartitionedTable | RelationKind::MaterializedView
        )
    }
}

/// One executed statement with what was measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatementRun {
    pub step: String,
    pub index: usize,
    pub sql: String,
    pub duration_ms: f64,
    /// Locks the statement took on relations that existed before the plan.
    pub locks: Vec<LockObservation>,
    /// Tables whose storage was rewritten.
    pub rewritten: Vec<String>,
    /// Tables that were read in full (sequential scans).
    pub scanned: Vec<String>,
    /// The partitioned tables (and their partitioned ancestors) of the partitions in
    /// `scanned`: a statement on a parent reads its partitions, never the parent itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scanned_partitions_of: Vec<String>,
    /// How the statement was measured, when not as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One probe of what the application will hit once a change is applied: a table's triggers
/// fired by a write that is rolled back, or a view read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct AppProbe {
    /// What was probed, as an engineer names it (`triggers customer_last_update on customer (update)`, `view customer_list`).
    pub object: String,
    pub outcome: ProbeOutcome,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOutcome {
    Passed,
    Failed,
    /// It could not run (the role may not write there, a lock it would wait for, an empty
    /// table): neither passed nor failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    pub staging_ms: f64,
    pub production_ms: f64,
    pub basis: String,
}

/// A verified copy of a target's data.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupEvidence {
    pub method: String,
    pub location: String,
    pub verified: bool,
    pub row_counts: BTreeMap<String, u64>,
    pub taken_at: String,
    /// The tables the backup covers; empty with `whole_database`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// The backup covers every table of the database (a full copy, the backup tool's backup).
    #[serde(default)]
    pub whole_database: bool,
}

impl BackupEvidence {
    /// The tables of `needed` this backup does not cover.
    pub fn uncovered<'a>(&self, needed: &'a [String]) -> Vec<&'a String> {
        if self.whole_database {
            return vec![];
        }
        needed.iter().filter(|t| !self.tables.contains(t)).collect()
    }
}

/// What a run records, as drydock reads it back. Each kind fills its part (a dry-run: statements,
/// estimate, fingerprints, rollback verification; an apply: its step, statements or backfill,
/// the error of a failed step; a pre-apply: the fingerprint before); everything else the run
/// reported stays in `report` for readers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A dry-run: `down` restored the schema and the data `up` changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementRun>,
    /// Where the dry-run's measurement disagrees with the static analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// A group plan's dry-run: members that differ from the group's staging.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members_differ: Vec<String>,
    /// The schema before the first step (hash, and its lines for drydock's own comparisons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_before_lines: Option<Vec<String>>,
    /// A dry-run: the schema after `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_after_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_after_up_lines: Option<Vec<String>>,
    /// The rest of the run's report (its shape depends on the run's kind).
    #[serde(flatten)]
    pub report: serde_json::Map<String, serde_json::Value>,
}

impl RunDetail {
    /// A run's report as its detail: the fields drydock reads back are lifted out of it.
    pub fn of(report: &impl Serialize) -> RunDetail {
        serde_json::to_value(report)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// A failed run: what went wrong, and where.
    pub fn failed(step: Option<&str>, error: impl ToString) -> RunDetail {
        RunDetail {
            step: step.map(String::from),
            error: Some(error.to_string()),
            ..RunDetail::default()
        }
    }

    /// With one more reported field.
    pub fn with(mut self, key: &str, value: impl Serialize) -> RunDetail {
        if let Ok(v) = serde_json::to_value(value) {
            self.report.insert(key.to_string(), v);
        }
        self
    }
}

/// The state store keeps evidence as JSON text.
macro_rules! stored_as_json {
    ($($ty:ty),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = serde_json::Error;
            fn try_from(s: String) -> Result<$ty, serde_json::Error> {
                serde_json::from_str(&s)
            }
        }
    )*};
}

stored_as_json!(RunDetail, BackupEvidence);
