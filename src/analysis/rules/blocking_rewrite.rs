//! `blocking-rewrite`: the table is rewritten while ACCESS EXCLUSIVE blocks every read and write
//! (a type change that is not binary-coercible, a volatile default, a stored generated column,
//! VACUUM FULL, CLUSTER).

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::Action;
use crate::sql::LockMode;

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    if !f.rewrites || !(f.lock.blocks_writes() || f.lock == LockMode::DatabaseWrite) {
        return None;
    }
    let table = f.tables.first().map(String::as_str);
    if table.is_some_and(|t| ctx.created.contains(t)) {
        return None;
    }
    let rows = table.map(|t| ctx.rows(t)).unwrap_or(0);
    let (why, fix) = f
        .actions
        .iter()
        .find_map(|a| match a {
            Action::ChangeType { column, from, to, rewrite: true, .. } => Some((
                format!("changing `{column}` from {} to {to} is not binary-coercible", from.as_deref().unwrap_or("its type")),
                "use the change-column-type recipe: add a column of the new type, dual-write with a trigger, backfill in batches, swap in one short transaction, drop the old column later",
            )),
            Action::Rewrite { why } if why.contains("default") => Some((
                why.clone(),
                "add the column without a default (or with a constant one), then backfill it in batches and set the default for new rows",
            )),
            Action::Rewrite { why } => Some((why.clone(), "run it in a maintenance window, or use pg_repack to rewrite without a long exclusive lock")),
            _ => None,
        })
        .unwrap_or_else(|| ("the statement rewrites the table".into(), "rewrite the data in batches instead"));
    Some(hazard(
        Rule::BlockingRewrite,
        ctx.severity(table, Severity::High),
        f,
        format!(
            "{why}: all ~{rows} rows are rewritten while {} blocks reads and writes",
            f.lock
        ),
        fix,
    ))
}

#[cfg(test)]
mod tests {
    use crate::analysis::Rule;
    use crate::analysis::rules::test_support::pg;

    #[test]
    fn err_type_change_that_rewrites() {
        let h = pg("ALTER TABLE users ALTER COLUMN id TYPE bigint");
        assert!(h.iter().any(|h| h.code == Rule::BlockingRewrite), "{h:?}");
    }

    #[test]
    fn ok_binary_coercible_type_change() {
        let h = pg("ALTER TABLE users ALTER COLUMN email TYPE varchar(200)");
        assert!(!h.iter().any(|h| h.code == Rule::BlockingRewrite), "{h:?}");
        let h = pg("ALTER TABLE users ALTER COLUMN email TYPE text");
        assert!(!h.iter().any(|h| h.code == Rule::BlockingRewrite), "{h:?}");
    }

    #[test]
    fn err_volatile_default_and_ok_constant_default() {
        assert!(
            pg("ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()")
                .iter()
                .any(|h| h.code == Rule::BlockingRewrite)
        );
        assert!(
            !pg("ALTER TABLE users ADD COLUMN score int DEFAULT 0")
                .iter()
                .any(|h| h.code == Rule::BlockingRewrite)
        );
        assert!(
            !pg("ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now()")
                .iter()
                .any(|h| h.code == Rule::BlockingRewrite)
        );
    }

    #[test]
    fn err_vacuum_full_and_stored_generated_column() {
        assert!(
            pg("VACUUM FULL users")
                .iter()
                .any(|h| h.code == Rule::BlockingRewrite)
        );
        assert!(pg("ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED").iter().any(|h| h.code == Rule::BlockingRewrite));
    }
}
