//! Hazard rules, one per file. Each has a stable code from the spec's table, a message that
//! states the consequence, and a fix that gives the safe recipe. Severity goes through
//! `Context::severity`, which caps it at `low` on tables created in the plan or below
//! `policy.large_table_rows`.

mod blocking_index_build;
mod breaking_change;
mod destructive;
mod irreversible;
mod non_transactional;
mod unbatched_write;

use super::{Context, Hazard, Severity, StatementFacts};
use crate::plan::Step;

/// Every statement rule, in report order.
const STATEMENT_RULES: &[fn(&StatementFacts, &Context) -> Option<Hazard>] = &[
    destructive::check,
    breaking_change::check,
    unbatched_write::check,
    blocking_index_build::check,
    non_transactional::check,
];

pub fn check_statement(f: &StatementFacts, ctx: &Context) -> Vec<Hazard> {
    STATEMENT_RULES
        .iter()
        .filter_map(|rule| rule(f, ctx))
        .collect()
}

pub fn check_step(step: &Step, name: &str) -> Vec<Hazard> {
    irreversible::check(step, name).into_iter().collect()
}

fn hazard(
    code: &str,
    severity: Severity,
    f: &StatementFacts,
    message: String,
    fix: &str,
) -> Hazard {
    Hazard {
        code: code.to_string(),
        severity,
        statement: f.sql.clone(),
        table: f.tables.first().cloned(),
        message,
        fix: fix.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::analysis::{Context, StatementFacts, classify, lexer};
    use crate::config::Policy;
    use crate::target::{Catalog, TableInfo};

    /// A catalog with a large `users` table and a tiny `flags` table.
    pub fn catalog() -> Catalog {
        let mut tables = BTreeMap::new();
        tables.insert(
            "users".to_string(),
            TableInfo {
                rows: 5_000_000,
                ..TableInfo::default()
            },
        );
        tables.insert(
            "flags".to_string(),
            TableInfo {
                rows: 3,
                ..TableInfo::default()
            },
        );
        Catalog {
            engine: "sqlite",
            tables,
        }
    }

    pub fn run(
        rule: fn(&StatementFacts, &Context) -> Option<crate::analysis::Hazard>,
        sql: &str,
    ) -> Option<crate::analysis::Hazard> {
        let catalog = catalog();
        let policy = Policy::default();
        let created = BTreeSet::new();
        let ctx = Context {
            catalog: &catalog,
            policy: &policy,
            created: &created,
        };
        let st = &lexer::split(sql).unwrap()[0];
        rule(&classify("s", 1, st, "sqlite"), &ctx)
    }
}
