//! `blocking-index-build`: an index is built while writes to the table are blocked.

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::{Action, StatementKind};
use crate::sql::Dialect;

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    let builds = f
        .actions
        .iter()
        .any(|a| matches!(a, Action::BuildIndex { concurrent: false }))
        || (f.actions.is_empty() && f.kind.builds_index() && f.transactional);
    if !builds {
        return None;
    }
    let table = f.tables.first().map(String::as_str);
    if table.is_some_and(|t| ctx.created.contains(t)) {
        return None;
    }
    let rows = table.map(|t| ctx.rows(t)).unwrap_or(0);
    let (message, fix) = if ctx.catalog.engine == Dialect::Sqlite {
        (
            format!("builds an index over ~{rows} rows while holding the database write lock"),
            "run it in a quiet window, or split the table's work so the build is short; SQLite has no concurrent index build",
        )
    } else if table.is_some_and(|t| ctx.catalog.partitions.contains_key(t)) {
        (
            format!(
                "builds an index on every partition (~{rows} rows) while blocking writes to them"
            ),
            "PostgreSQL refuses CONCURRENTLY on a partitioned table: build each partition's index with CREATE INDEX CONCURRENTLY (each alone, outside a transaction), then CREATE INDEX … ON ONLY the parent and ALTER INDEX … ATTACH PARTITION each one (the `add-index` template writes these steps)",
        )
    } else if f.kind == StatementKind::Reindex {
        (
            format!("rebuilds indexes of ~{rows} rows while blocking writes"),
            "use REINDEX … CONCURRENTLY in a step of its own",
        )
    } else if f.kind.is_alter_table() {
        (
            format!(
                "builds a unique index over ~{rows} rows inside ALTER TABLE, under ACCESS EXCLUSIVE"
            ),
            "CREATE UNIQUE INDEX CONCURRENTLY first (its own step), then ADD CONSTRAINT … USING INDEX",
        )
    } else {
        (
            format!("builds an index over ~{rows} rows while blocking writes to the table"),
            "use CREATE INDEX CONCURRENTLY in a step of its own (outside a transaction) and drop the index if the build fails",
        )
    };
    Some(hazard(
        Rule::BlockingIndexBuild,
        ctx.severity(table, Severity::High),
        f,
        message,
        fix,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_index_on_large_table() {
        assert_eq!(
            run(check, "CREATE INDEX i ON users(a)").unwrap().severity,
            Severity::High
        );
    }

    #[test]
    fn err_and_ok_on_postgres() {
        use crate::analysis::Rule;
        use crate::analysis::rules::test_support::pg;
        assert!(
            pg("CREATE INDEX i ON users (name)")
                .iter()
                .any(|h| h.code == Rule::BlockingIndexBuild)
        );
        assert!(
            pg("ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)")
                .iter()
                .any(|h| h.code == Rule::BlockingIndexBuild)
        );
        assert!(
            !pg("CREATE INDEX CONCURRENTLY i ON users (name)")
                .iter()
                .any(|h| h.code == Rule::BlockingIndexBuild)
        );
    }

    #[test]
    fn ok_index_on_small_table_is_low() {
        assert_eq!(
            run(check, "CREATE INDEX i ON flags(a)").unwrap().severity,
            Severity::Low
        );
    }
}
