//! The analysis checked against what PostgreSQL measurably did: for each statement a dry-run
//! ran, the lock it took on each pre-existing table it names, whether it rewrote a table (a new
//! relfilenode) and whether it read a table in full (a sequential scan). Where the two disagree
//! the measurement wins, and the disagreement is reported.

use crate::plan::analysis::{Analysis, StatementFacts, StatementKind};
use crate::plan::evidence::StatementRun;
use crate::sql::{Dialect, LockMode};

/// What was predicted and measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    Lock,
    Rewrite,
    Scan,
}

impl Aspect {
    pub fn name(self) -> &'static str {
        match self {
            Aspect::Lock => "lock",
            Aspect::Rewrite => "rewrite",
            Aspect::Scan => "scan",
        }
    }
}

/// One statement where the analysis and the measurement differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub step: String,
    pub index: usize,
    /// The statement's kind, as the analysis names it (`alter table add column`).
    pub kind: String,
    pub table: String,
    pub aspect: Aspect,
    pub predicted: String,
    pub measured: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step `{}` statement {}: the analysis predicted {} on `{}`; the dry-run measured {} (the measurement wins)",
            self.step, self.index, self.predicted, self.table, self.measured
        )
    }
}

/// Every disagreement between `analysis` and the statements a dry-run measured. Statements
/// measured through an equivalent (CONCURRENTLY removed) or not run are skipped; on SQLite only
/// rewrites are compared (it has no lock modes or scan counters).
pub fn disagreements(analysis: &Analysis, measured: &[StatementRun]) -> Vec<Disagreement> {
    let postgres = analysis.engine == Dialect::Postgres;
    let mut out = Vec::new();
    for m in measured.iter().filter(|m| m.note.is_none()) {
        let Some(f) = analysis.statement(&m.step, m.index) else {
            continue;
        };
        let at = |table: &str, aspect, predicted: String, measured: String| Disagreement {
            step: m.step.clone(),
            index: m.index,
            kind: f.kind.to_string(),
            table: table.to_string(),
            aspect,
            predicted,
            measured,
        };
        let first = f.tables.first().map(String::as_str).unwrap_or_default();
        let rewrote = !m.rewritten.is_empty();
        // TRUNCATE gives the table new, empty storage: a new relfilenode, no row copied.
        if f.rewrites != rewrote && f.kind != StatementKind::Truncate {
            out.push(at(
                first,
                Aspect::Rewrite,
                if f.rewrites {
                    "a rewrite"
                } else {
                    "no rewrite"
                }
                .into(),
                if rewrote {
                    format!("a rewrite of {}", m.rewritten.join(", "))
                } else {
                    "none".into()
                },
            ));
        }
        if !postgres {
            continue;
        }
        for table in &f.tables {
            if let Some((predicted, measured)) = lock_disagreement(f, m, table) {
                out.push(at(table, Aspect::Lock, predicted, measured));
            }
        }
        // Every other relation holding rows that the statement locked against writes: the
        // analysis did not name it, and an application writing there waits all the same.
        if f.lock != LockMode::NotPredicted {
            for l in m.locks.iter().filter(|l| {
                l.acquired
                    && l.mode.blocks_writes()
                    && l.kind.is_some_and(|k| k.holds_rows())
                    && !f.tables.contains(&l.relation)
            }) {
                out.push(at(
                    &l.relation,
                    Aspect::Lock,
                    "no lock (the analysis does not name it)".into(),
                    l.mode.to_string(),
                ));
            }
        }
        // Whether DML reads a table in full is the planner's choice; DDL's scans are its own.
        let dml = f.kind.writes_rows()
            || matches!(f.kind, StatementKind::Select | StatementKind::Truncate);
        // A statement on a partitioned table reads its partitions: they are its scan.
        let scanned = m
            .scanned
            .iter()
            .chain(&m.scanned_partitions_of)
            .any(|t| t == first);
        if !dml && m.locks.iter().any(|l| l.relation == first) && f.scans != scanned {
            out.push(at(
                first,
                Aspect::Scan,
                if f.scans {
                    "a full scan"
                } else {
                    "no full scan"
                }
                .into(),
                if scanned { "one" } else { "none" }.into(),
            ));
        }
    }
    out
}

/// The lock predicted on `table` against the strongest table-level lock the statement took
/// there. A lock already held at least as strong (taken by an earlier statement of the same
/// transaction) agrees; a table the measurement did not see (created by the plan) is skipped.
fn lock_disagreement(
    f: &StatementFacts,
    m: &StatementRun,
    table: &str,
) -> Option<(String, String)> {
    let predicted = f.lock_on(table);
    if !predicted.is_table_mode() || !m.locks.iter().any(|l| l.relation == table) {
        return None;
    }
    let on_table = || {
        m.locks
            .iter()
            .filter(move |l| l.relation == table && l.mode.is_table_mode())
    };
    let acquired: Option<LockMode> = on_table().filter(|l| l.acquired).map(|l| l.mode).max();
    let held: Option<LockMode> = on_table().filter(|l| !l.acquired).map(|l| l.mode).max();
    let already = held.is_some_and(|h| h >= predicted);
    match acquired {
        Some(mode) if mode == predicted => None,
        Some(mode) if already && mode < predicted => None,
        None if already => None,
        Some(mode) => Some((predicted.to_string(), mode.to_string())),
        None => Some((
            predicted.to_string(),
            format!(
                "no new lock (held: {})",
                held.map(|h| h.to_string()).unwrap_or_else(|| "none".into())
            ),
        )),
    }
}
