//! `breaking-change`: running application code breaks (rename, drop, type change).

use super::{Context, Hazard, Severity, StatementFacts, hazard};

pub fn check(f: &StatementFacts, ctx: &Context) -> Option<Hazard> {
    let what = match f.kind.as_str() {
        "alter table rename column" => "renames a column that running code still reads and writes",
        "alter table rename" => "renames a table that running code still queries",
        "alter table drop column" => "drops a column that running code may still select or insert",
        "alter table alter column" | "alter table alter column type" => {
            "changes a column's type that running code depends on"
        }
        "drop table" | "drop view" => "removes a relation that running code may still query",
        _ => return None,
    };
    let table = f.tables.first().map(String::as_str);
    Some(hazard(
        "breaking-change",
        ctx.severity(table, Severity::Medium),
        f,
        what.to_string(),
        "use expand/contract: add the new shape, dual-write, backfill, switch reads, then drop the old shape in a later gated step",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn err_rename_column() {
        assert_eq!(
            run(check, "ALTER TABLE users RENAME COLUMN a TO b")
                .unwrap()
                .severity,
            Severity::Medium
        );
    }

    #[test]
    fn err_and_ok_on_postgres() {
        use crate::analysis::rules::test_support::pg;
        assert!(
            pg("ALTER TABLE users RENAME COLUMN name TO full_name")
                .iter()
                .any(|h| h.code == "breaking-change")
        );
        assert!(
            pg("ALTER TABLE users ALTER COLUMN id TYPE bigint")
                .iter()
                .any(|h| h.code == "breaking-change")
        );
        assert!(
            !pg("ALTER TABLE users ADD COLUMN nickname text")
                .iter()
                .any(|h| h.code == "breaking-change")
        );
    }

    #[test]
    fn ok_add_column() {
        assert!(run(check, "ALTER TABLE users ADD COLUMN a int").is_none());
    }
}
