//! Hazard rules, one per file. Each has a stable code from the spec's table, a message that
//! states the consequence, and a fix that gives the safe recipe. Severity goes through
//! `Context::severity`, which caps it at `low` on tables created in the plan or below
//! `policy.large_table_rows`.

mod blocking_index_build;
mod blocking_rewrite;
mod blocking_scan;
mod breaking_change;
mod destructive;
mod explain;
mod irreversible;
mod lock_held_long;
mod non_transactional;
mod unbatched_write;
mod unknown_object;

pub use explain::{Explanation, explain};

use super::{Context, Hazard, Rule, Severity, StatementFacts, StatementKind};
use crate::plan::Step;

/// Every statement rule, in report order.
const STATEMENT_RULES: &[fn(&StatementFacts, &Context) -> Option<Hazard>] = &[
    unknown_object::check,
    blocking_rewrite::check,
    blocking_scan::check,
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

/// Rules that need a whole step: its `down`, and the order of its statements.
pub fn check_step(step: &Step, name: &str, facts: &[StatementFacts], ctx: &Context) -> Vec<Hazard> {
    let mut out: Vec<Hazard> = irreversible::check(step, name, facts).into_iter().collect();
    out.extend(lock_held_long::check(facts, ctx));
    out
}

fn hazard(
    code: Rule,
    severity: Severity,
    f: &StatementFacts,
    message: String,
    fix: &str,
) -> Hazard {
    Hazard {
        code,
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
    use crate::db::{Catalog, TableInfo};

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
            engine: crate::sql::Dialect::Sqlite,
            tables,
            ..Catalog::default()
        }
    }

    /// A PostgreSQL catalog: large `users` (with a validated `CHECK (email IS NOT NULL)`, a view
    /// on `email` and an enum-typed column), tiny `flags`.
    pub fn pg_catalog() -> Catalog {
        use crate::db::Column;
        let col = |name: &str, ty: &str| Column {
            name: name.into(),
            ty: ty.into(),
            nullable: true,
            default: None,
            primary_key: false,
            comment: None,
        };
        let mut tables = BTreeMap::new();
        tables.insert(
            "users".to_string(),
            TableInfo {
                rows: 5_000_000,
                columns: vec![
                    col("id", "integer"),
                    col("email", "character varying(100)"),
                    col("name", "text"),
                    col("mood", "mood"),
                ],
                views: vec!["active_users".into()],
                constraints: vec!["users_email_present: CHECK ((email IS NOT NULL))".into()],
                ..TableInfo::default()
            },
        );
        tables.insert(
            "flags".to_string(),
            TableInfo {
                rows: 3,
                columns: vec![col("id", "integer")],
                ..TableInfo::default()
            },
        );
        Catalog {
            engine: crate::sql::Dialect::Postgres,
            tables,
            proven_not_null: ["users.email".to_string()].into_iter().collect(),
            volatile_functions: ["random", "gen_random_uuid", "clock_timestamp"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            column_views: [("users.email".to_string(), vec!["active_users".to_string()])]
                .into_iter()
                .collect(),
            ..Catalog::default()
        }
    }

    /// Every hazard the analysis finds in `sql` (one step with a `down`) on `pg_catalog()`.
    pub fn pg(sql: &str) -> Vec<crate::analysis::Hazard> {
        pg_on(&pg_catalog(), sql)
    }

    /// `pg` on another catalog.
    pub fn pg_on(catalog: &Catalog, sql: &str) -> Vec<crate::analysis::Hazard> {
        let step = crate::plan::Step {
            name: Some("s".into()),
            up: Some(sql.into()),
            down: Some("SELECT 1".into()),
            backfill: None,
            gate: None,
            restore: None,
        };
        let body = crate::plan::Body::new("t", vec![step], vec![]).unwrap();
        crate::analysis::analyze(&body, catalog, &Policy::default(), true)
            .unwrap()
            .hazards
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
            emptied: &created,
            added: &created,
            renamed: &created,
            gone: &created,
            dropped_views: &created,
            replaced_functions: &created,
            production: false,
        };
        let st = &lexer::split(sql).unwrap()[0];
        rule(&classify("s", 1, st, crate::sql::Dialect::Sqlite), &ctx)
    }
}

/// What each rule tells a reviewer, snapshotted: a change to a message or a fix is a reviewed
/// change, never an accident.
#[cfg(test)]
mod snapshots {
    use super::test_support::pg;
    use crate::analysis::Rule;

    /// One statement that breaks each rule, on a production target's catalog.
    const CASES: &[(Rule, &str)] = &[
        (Rule::UnknownObject, "ALTER TABLE userz ADD COLUMN a int"),
        (
            Rule::BlockingRewrite,
            "ALTER TABLE users ALTER COLUMN id TYPE bigint",
        ),
        (
            Rule::BlockingScan,
            "ALTER TABLE users ALTER COLUMN name SET NOT NULL",
        ),
        (Rule::BlockingIndexBuild, "CREATE INDEX i ON users (name)"),
        (
            Rule::LockHeldLong,
            "ALTER TABLE flags ADD COLUMN x int; UPDATE users SET name = lower(name)",
        ),
        (Rule::UnbatchedWrite, "UPDATE users SET name = lower(name)"),
        (Rule::Destructive, "ALTER TABLE users DROP COLUMN name"),
        (
            Rule::BreakingChange,
            "ALTER TABLE users RENAME COLUMN name TO full_name",
        ),
        (
            Rule::NonTransactional,
            "CREATE INDEX CONCURRENTLY i ON users (name)",
        ),
        (Rule::Irreversible, "ALTER TABLE users DROP COLUMN name"),
        (Rule::Privileged, "COPY users TO PROGRAM 'curl example.com'"),
    ];

    #[test]
    fn every_rule_says_what_goes_wrong_and_how_to_fix_it() {
        let mut seen = std::collections::BTreeSet::new();
        for (rule, sql) in CASES {
            let found: Vec<String> = pg(sql)
                .into_iter()
                .filter(|h| h.code == *rule)
                .map(|h| {
                    format!(
                        "{} ({}) on {}\nstatement: {}\nmessage: {}\nfix: {}",
                        h.code,
                        h.severity,
                        h.table.as_deref().unwrap_or("-"),
                        h.statement,
                        h.message,
                        h.fix
                    )
                })
                .collect();
            assert!(!found.is_empty(), "`{sql}` breaks {rule}");
            insta::assert_snapshot!(rule.code(), found.join("\n\n"));
            seen.insert(*rule);
        }
        assert_eq!(seen.len(), Rule::ALL.len(), "every rule has a snapshot");
    }
}
