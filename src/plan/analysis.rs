//! What drydock's analysis says about a plan, as data: the facts of each statement, the hazards
//! (a `Rule` each, kebab-case on the wire), the impact on the target and the risk. It is stored
//! with the plan and read by the checklist, the dry-run and the review; the analysis module
//! computes it. Data only: this file imports nothing of drydock but the `sql` leaf.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::kind::StatementKind;
use crate::sql::{Dialect, LockMode};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A hazard rule: one per kind of harm, the stable code agents and reviewers match on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Names a table or column that neither the catalog nor an earlier statement defines.
    UnknownObject,
    /// Rewrites the table while holding ACCESS EXCLUSIVE.
    BlockingRewrite,
    /// Scans the table while holding a lock that blocks writes.
    BlockingScan,
    /// Builds an index while blocking writes.
    BlockingIndexBuild,
    /// A strong lock taken early in a transaction is held while later statements do slow work.
    LockHeldLong,
    /// UPDATE/DELETE touching many rows in one statement.
    UnbatchedWrite,
    /// Loses data.
    Destructive,
    /// Breaks running application code.
    BreakingChange,
    /// Cannot run in a transaction.
    NonTransactional,
    /// No `down`, or a `down` that cannot restore the data.
    Irreversible,
    /// Reaches beyond the database (server files, programs, roles, settings): refused.
    Privileged,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::UnknownObject,
        Rule::BlockingRewrite,
        Rule::BlockingScan,
        Rule::BlockingIndexBuild,
        Rule::LockHeldLong,
        Rule::UnbatchedWrite,
        Rule::Destructive,
        Rule::BreakingChange,
        Rule::NonTransactional,
        Rule::Irreversible,
        Rule::Privileged,
    ];

    /// The code on the wire: `blocking-rewrite`.
    pub fn code(self) -> &'static str {
        match self {
            Rule::UnknownObject => "unknown-object",
            Rule::BlockingRewrite => "blocking-rewrite",
            Rule::BlockingScan => "blocking-scan",
            Rule::BlockingIndexBuild => "blocking-index-build",
            Rule::LockHeldLong => "lock-held-long",
            Rule::UnbatchedWrite => "unbatched-write",
            Rule::Destructive => "destructive",
            Rule::BreakingChange => "breaking-change",
            Rule::NonTransactional => "non-transactional",
            Rule::Irreversible => "irreversible",
            Rule::Privileged => "privileged",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A hazard: `{code, severity, statement, table, message, fix}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hazard {
    pub code: Rule,
    pub severity: Severity,
    /// The statement (or step) it concerns.
    pub statement: String,
    pub table: Option<String>,
    /// What goes wrong.
    pub message: String,
    /// The safe way to do it.
    pub fix: String,
}

/// What drydock reads from one statement without running it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatementFacts {
    pub step: String,
    pub index: usize,
    pub sql: String,
    #[schemars(with = "String")]
    pub kind: StatementKind,
    pub tables: Vec<String>,
    /// The lock the statement is expected to take (on each of `tables` unless `locks_on` says
    /// otherwise).
    pub lock: LockMode,
    /// Tables locked in another mode than `lock`: an attached partition, a detached one.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub locks_on: std::collections::BTreeMap<String, LockMode>,
    pub rewrites: bool,
    pub scans: bool,
    pub transactional: bool,
    #[serde(skip)]
    pub has_where: bool,
    #[serde(skip)]
    pub detail: Option<String>,
    /// What the statement does, as the rules read it (PostgreSQL analysis).
    #[serde(skip)]
    pub actions: Vec<Action>,
    /// A statement of a kind the analysis does not model (its lock not predicted, its effects
    /// unknown): what comes after it is read with that in mind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmodelled: bool,
}

impl StatementFacts {
    /// The lock the statement is expected to take on `table`.
    pub fn lock_on(&self, table: &str) -> LockMode {
        self.locks_on.get(table).copied().unwrap_or(self.lock)
    }
}

/// One thing a statement does that a rule may care about.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AddColumn {
        column: String,
    },
    DropColumn {
        column: String,
    },
    DropTable,
    /// `column` renamed `to`.
    RenameColumn {
        column: String,
        to: String,
    },
    /// The table renamed `to`.
    RenameTable {
        to: String,
    },
    /// A view dropped here is created again by a later statement of the same step (one
    /// transaction): running code never sees it missing.
    Recreated,
    /// Columns of the statement's table that an `UPDATE` sets or reads, or a `DELETE` reads, in
    /// its own clauses (not in subqueries): each must exist.
    UsesColumns {
        columns: Vec<String>,
    },
    ChangeType {
        column: String,
        from: Option<String>,
        to: String,
        rewrite: bool,
        narrowing: bool,
    },
    SetNotNull {
        column: String,
        proven: bool,
    },
    AddConstraint {
        kind: String,
        not_valid: bool,
    },
    BuildIndex {
        concurrent: bool,
    },
    Rewrite {
        why: String,
    },
    /// `proven`: a validated CHECK of the partition proves its bound (no scan).
    AttachPartition {
        proven: bool,
    },
    /// A domain constraint checked against every column of the domain.
    AddDomainConstraint {
        domain: String,
        not_valid: bool,
    },
    /// An enum label renamed: code writing the old label fails.
    RenameEnumValue {
        ty: String,
        from: String,
        to: String,
    },
    /// Names a type or schema that neither the catalog nor an earlier statement defines, with
    /// the nearest existing name.
    UnknownName {
        what: &'static str,
        name: String,
        nearest: Option<String>,
    },
    /// A materialized view recomputed; `concurrent` keeps readers reading.
    RefreshMaterializedView {
        concurrent: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TableImpact {
    pub table: String,
    pub exists: bool,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub indexes: Vec<String>,
    pub views: Vec<String>,
    pub foreign_keys: Vec<String>,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Analysis {
    pub engine: Dialect,
    pub statements: Vec<StatementFacts>,
    pub hazards: Vec<Hazard>,
    pub impact: Vec<TableImpact>,
    /// `low`, `medium`, `high` or `critical`.
    pub risk: Severity,
}

impl Analysis {
    /// The facts of one statement of one step.
    pub fn statement(&self, step: &str, index: usize) -> Option<&StatementFacts> {
        self.statements
            .iter()
            .find(|f| f.step == step && f.index == index)
    }

    /// The statements that cannot run in a transaction.
    pub fn non_transactional(&self) -> impl Iterator<Item = &StatementFacts> {
        self.statements.iter().filter(|f| !f.transactional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_codes_are_the_wire_names() {
        for r in Rule::ALL {
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.code())
            );
        }
    }
}
