//! `blocking-scan`: the whole table is read to prove a constraint while a lock blocks writes
//! (SET NOT NULL not proven by a validated CHECK; CHECK or FOREIGN KEY without NOT VALID).

use super::{Context, Hazard, Rule, Severity, StatementFacts, hazard};
use crate::analysis::Action;

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    if !f.scans || !f.lock.blocks_writes() {
        return None;
    }
    let table = f.tables.first().map(String::as_str);
    if table.is_some_and(|t| ctx.created.contains(t)) {
        return None;
    }
    let (why, fix) = f.actions.iter().find_map(|a| match a {
        Action::SetNotNull { column, proven: false } => Some((
            format!("SET NOT NULL on `{column}` scans the table to check every row"),
            format!(
                "first ADD CONSTRAINT … CHECK ({column} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (no write lock), then SET NOT NULL (instant), then drop the check"
            ),
        )),
        Action::AttachPartition { proven: false } => Some((
            format!(
                "ATTACH PARTITION reads all of `{}` to prove its rows fit the bound",
                table.unwrap_or("the partition")
            ),
            "first add to the partition a CHECK constraint matching the bound, NOT VALID, then VALIDATE it (no write lock); ATTACH then skips the scan; drop the CHECK afterwards".to_string(),
        )),
        Action::AddDomainConstraint { domain, not_valid: false } => Some((
            format!(
                "the constraint on domain `{domain}` is checked against every column of the domain, in {}",
                f.tables.join(", ")
            ),
            format!("add it NOT VALID (instant), then ALTER DOMAIN {domain} VALIDATE CONSTRAINT (no write lock)"),
        )),
        Action::ChangeType { column, rewrite: false, .. } => Some((
            format!("changing the type of `{column}` validates the CHECK constraints on it again, reading every row"),
            format!("drop the CHECK constraints on `{column}` first and add them back NOT VALID, then VALIDATE them in a separate transaction"),
        )),
        Action::AddConstraint { kind, not_valid: false } => Some((
            format!(
                "adding {} {kind} constraint validates every row",
                if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                }
            ),
            "add it with NOT VALID (instant), then VALIDATE CONSTRAINT in a separate transaction: validation takes only SHARE UPDATE EXCLUSIVE".to_string(),
        )),
        _ => None,
    })?;
    let rows = table.map(|t| ctx.rows(t)).unwrap_or(0);
    Some(hazard(
        Rule::BlockingScan,
        ctx.severity(table, Severity::High),
        f,
        format!("{why} (~{rows} rows) while {} blocks writes", f.lock),
        &fix,
    ))
}

#[cfg(test)]
mod tests {
    use crate::analysis::Rule;
    use crate::analysis::rules::test_support::pg;

    #[test]
    fn err_set_not_null_unproven() {
        assert!(
            pg("ALTER TABLE users ALTER COLUMN name SET NOT NULL")
                .iter()
                .any(|h| h.code == Rule::BlockingScan)
        );
    }

    #[test]
    fn ok_set_not_null_proven_by_validated_check() {
        assert!(
            !pg("ALTER TABLE users ALTER COLUMN email SET NOT NULL")
                .iter()
                .any(|h| h.code == Rule::BlockingScan)
        );
    }

    #[test]
    fn err_check_and_fk_without_not_valid() {
        assert!(
            pg("ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0)")
                .iter()
                .any(|h| h.code == Rule::BlockingScan)
        );
        assert!(
            pg("ALTER TABLE users ADD CONSTRAINT f FOREIGN KEY (id) REFERENCES flags (id)")
                .iter()
                .any(|h| h.code == Rule::BlockingScan)
        );
    }

    #[test]
    fn ok_not_valid_then_validate() {
        assert!(
            !pg("ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0) NOT VALID")
                .iter()
                .any(|h| h.code == Rule::BlockingScan)
        );
        assert!(pg("ALTER TABLE users VALIDATE CONSTRAINT c").is_empty());
    }
}
