//! The databases drydock changes. Each engine adapter (`sqlite.rs`; PostgreSQL next) offers the
//! same operations: introspect, fingerprint the schema, execute a step in a transaction with its
//! history row, run checks read-only, and take a verified backup. The engine module composes them.

pub mod sqlite;

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Config, TargetConfig, TargetUrl};
use crate::error::{Error, Result};

/// What the analysis reads from a target's catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub engine: &'static str,
    pub tables: BTreeMap<String, TableInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TableInfo {
    pub rows: u64,
    pub bytes: Option<u64>,
    pub columns: Vec<Column>,
    pub indexes: Vec<String>,
    pub constraints: Vec<String>,
    pub views: Vec<String>,
    /// Foreign keys in other tables that reference this one (`table(col) -> this`).
    pub foreign_keys_in: Vec<String>,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub primary_key: bool,
}

/// A canonical description of a schema, one line per object/attribute, and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub hash: String,
    pub lines: Vec<String>,
}

impl Fingerprint {
    pub fn from_lines(mut lines: Vec<String>) -> Fingerprint {
        use sha2::{Digest, Sha256};
        lines.sort();
        let hash = Sha256::digest(lines.join("\n").as_bytes());
        Fingerprint {
            hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
            lines,
        }
    }

    /// What `other` has that `self` lacks and vice versa, briefly.
    pub fn diff(&self, other: &Fingerprint) -> String {
        let a: std::collections::BTreeSet<_> = self.lines.iter().collect();
        let b: std::collections::BTreeSet<_> = other.lines.iter().collect();
        let gone: Vec<_> = a.difference(&b).take(5).map(|s| format!("-{s}")).collect();
        let new: Vec<_> = b.difference(&a).take(5).map(|s| format!("+{s}")).collect();
        [gone, new].concat().join("; ")
    }
}

/// A lock observed while a statement ran.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LockObservation {
    pub relation: String,
    pub mode: String,
}

/// One executed statement with what was measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatementRun {
    pub step: String,
    pub index: usize,
    pub sql: String,
    pub duration_ms: f64,
    pub locks: Vec<LockObservation>,
    pub rewritten: Vec<String>,
    pub scanned: Vec<String>,
}

/// The outcome of one validation query.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckOutcome {
    pub name: String,
    pub expect: String,
    pub passed: bool,
    pub observed: String,
}

/// A verified copy of a target's data.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupEvidence {
    pub method: String,
    pub location: String,
    pub verified: bool,
    pub row_counts: BTreeMap<String, u64>,
    pub taken_at: String,
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
}

impl Target {
    pub async fn open(config: &Config, target: &TargetConfig) -> Result<Target> {
        let url = target.url.resolve(&config.base_dir())?;
        match url {
            TargetUrl::Sqlite(path) => Ok(Target::Sqlite(
                sqlite::Sqlite::open(&target.name, &path, config.policy.lock_timeout).await?,
            )),
            TargetUrl::Postgres(_) => Err(Error::Target {
                target: target.name.clone(),
                cause: "PostgreSQL targets are not supported by this build yet".into(),
            }),
            TargetUrl::Env(_) => unreachable!("resolve() never returns Env"),
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "sqlite",
        }
    }

    pub async fn catalog(&self) -> Result<Catalog> {
        match self {
            Target::Sqlite(t) => t.catalog().await,
        }
    }

    pub async fn fingerprint(&self) -> Result<Fingerprint> {
        match self {
            Target::Sqlite(t) => t.fingerprint().await,
        }
    }

    pub async fn row_counts(&self, tables: &[String]) -> Result<BTreeMap<String, u64>> {
        match self {
            Target::Sqlite(t) => t.row_counts(tables).await,
        }
    }

    pub async fn run_checks(&self, checks: &[crate::plan::Check]) -> Result<Vec<CheckOutcome>> {
        match self {
            Target::Sqlite(t) => t.run_checks(checks).await,
        }
    }
}

/// The statement timeout for a policy, as the engines want it.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}
