//! `lock-held-long`: a statement takes a lock that blocks writes, and a later statement of the
//! same step (the same transaction) does slow work, so the lock is held for all of it.

use super::{Context, Hazard, Rule, Severity, StatementFacts, StatementKind};

fn slow(f: &StatementFacts, ctx: &Context) -> Option<String> {
    let table = f.tables.first()?;
    if ctx.created.contains(table) || ctx.rows(table) < ctx.policy.large_table_rows {
        return None;
    }
    let what = if f.rewrites {
        "rewrites"
    } else if f.scans {
        "scans"
    } else if matches!(f.kind, StatementKind::Update | StatementKind::Delete) {
        "writes many rows of"
    } else {
        return None;
    };
    Some(format!("{what} `{table}` (~{} rows)", ctx.rows(table)))
}

/// One pass: strong locks taken so far wait in `held` until a later slow statement shows they
/// are held across slow work.
pub fn check(facts: &[StatementFacts], ctx: &Context) -> Vec<Hazard> {
    let mut out = Vec::new();
    let mut held: Vec<&StatementFacts> = Vec::new();
    for f in facts.iter().filter(|f| f.transactional) {
        if let Some(what) = slow(f, ctx) {
            for first in held.drain(..) {
                let locked = first.tables.first().cloned().unwrap_or_default();
                out.push(Hazard {
                    code: Rule::LockHeldLong,
                    severity: ctx.severity(Some(&locked), Severity::High),
                    statement: first.sql.clone(),
                    table: Some(locked.clone()),
                    message: format!(
                        "statement {} takes {} on `{locked}` and holds it until the transaction ends, while statement {} {what}",
                        first.index, first.lock, f.index
                    ),
                    fix: "put the slow statement first or, better, in a step of its own, so the strong lock is taken last and held briefly".into(),
                });
            }
        }
        let strong =
            f.lock.blocks_writes() && f.tables.first().is_some_and(|t| !ctx.created.contains(t));
        if strong && !held.iter().any(|h| h.tables.first() == f.tables.first()) {
            held.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::analysis::Rule;
    use crate::analysis::rules::test_support::pg;

    #[test]
    fn err_strong_lock_before_slow_work() {
        let h = pg("ALTER TABLE flags ADD COLUMN x int; UPDATE users SET name = lower(name)");
        assert!(h.iter().any(|h| h.code == Rule::LockHeldLong), "{h:?}");
    }

    #[test]
    fn ok_slow_work_alone() {
        let h = pg(
            "UPDATE users SET name = lower(name) WHERE id < 1000; ALTER TABLE flags ADD COLUMN x int",
        );
        assert!(!h.iter().any(|h| h.code == Rule::LockHeldLong), "{h:?}");
    }
}

#[cfg(test)]
mod accumulation {
    use crate::analysis::Rule;
    use crate::analysis::rules::test_support::pg;

    #[test]
    fn not_valid_then_validate_in_one_transaction_blocks_writes_for_the_scan() {
        let h = pg(
            "ALTER TABLE users ADD CONSTRAINT positive CHECK (id > 0) NOT VALID; ALTER TABLE users VALIDATE CONSTRAINT positive",
        );
        assert!(
            h.iter().any(
                |h| matches!(h.code, Rule::LockHeldLong | Rule::BlockingScan)
                    && h.severity >= crate::analysis::Severity::High
            ),
            "{h:?}"
        );
    }
}
