//! `unbatched-write`: one UPDATE/DELETE touches many rows, holding row locks (and on SQLite the
//! database write lock) for all of it.

use super::{Context, Hazard, Rule, Severity, StatementFacts, StatementKind, hazard};

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    if !matches!(f.kind, StatementKind::Update | StatementKind::Delete) {
        return None;
    }
    let table = f.tables.first()?;
    let rows = ctx.rows(table);
    if rows < ctx.policy.large_table_rows {
        return None;
    }
    Some(hazard(
        Rule::UnbatchedWrite,
        if f.has_where {
            Severity::Medium
        } else {
            Severity::High
        },
        f,
        format!(
            "one statement writes up to ~{rows} rows of `{table}` in a single transaction, blocking writers until it commits"
        ),
        "use a backfill step (keyset batches of ~1000 rows, each its own transaction, with a pause between batches)",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_update_large_table() {
        assert_eq!(
            run(check, "UPDATE users SET a = 1").unwrap().severity,
            Severity::High
        );
    }

    #[test]
    fn ok_update_small_table() {
        assert!(run(check, "UPDATE flags SET a = 1").is_none());
    }
}
