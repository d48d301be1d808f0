//! `lock-held-long`: a statement takes a lock that blocks writes, and a later statement of the
//! same step (the same transaction) does slow work, so the lock is held for all of it.

use super::{Context, Hazard, Severity, StatementFacts};
use crate::analysis::pg::blocks_writes;

fn slow(f: &StatementFacts, ctx: &Context) -> Option<String> {
    let table = f.tables.first()?;
    if ctx.created.contains(table) || ctx.rows(table) < ctx.policy.large_table_rows {
        return None;
    }
    let what = if f.rewrites {
        "rewrites"
    } else if f.scans {
        "scans"
    } else if matches!(f.kind.as_str(), "update" | "delete") {
        "writes many rows of"
    } else {
        return None;
    };
    Some(format!("{what} `{table}` (~{} rows)", ctx.rows(table)))
}

pub fn check(facts: &[StatementFacts], ctx: &Context) -> Vec<Hazard> {
    let mut out = Vec::new();
    for (i, first) in facts.iter().enumerate() {
        let Some(locked) = first.tables.first() else {
            continue;
        };
        if !first.transactional || !blocks_writes(&first.lock) || ctx.created.contains(locked) {
            continue;
        }
        if let Some((later, what)) = facts[i + 1..]
            .iter()
            .filter(|f| f.transactional)
            .find_map(|f| slow(f, ctx).map(|w| (f, w)))
        {
            out.push(Hazard {
                code: "lock-held-long".into(),
                severity: ctx.severity(Some(locked), Severity::High),
                statement: first.sql.clone(),
                table: Some(locked.clone()),
                message: format!(
                    "statement {} takes {} on `{locked}` and holds it until the transaction ends, while statement {} {what}",
                    first.index, first.lock, later.index
                ),
                fix: "put the slow statement first or, better, in a step of its own, so the strong lock is taken last and held briefly".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::analysis::rules::test_support::pg;

    #[test]
    fn err_strong_lock_before_slow_work() {
        let h = pg("ALTER TABLE flags ADD COLUMN x int; UPDATE users SET name = lower(name)");
        assert!(h.iter().any(|h| h.code == "lock-held-long"), "{h:?}");
    }

    #[test]
    fn ok_slow_work_alone() {
        let h = pg(
            "UPDATE users SET name = lower(name) WHERE id < 1000; ALTER TABLE flags ADD COLUMN x int",
        );
        assert!(!h.iter().any(|h| h.code == "lock-held-long"), "{h:?}");
    }
}
